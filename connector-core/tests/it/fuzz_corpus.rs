//! The `config` fuzz corpus (`fuzz/corpus/config`) replayed through the same code as the fuzz
//! target: every input loads or fails with an error, never a panic; the seeds (the files of
//! `configs/`) load.

use std::path::PathBuf;

#[test]
fn the_config_fuzz_corpus_loads_or_fails_cleanly() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/config");
    let mut seeds = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        // GIVEN a corpus input WHEN it is loaded as the fuzz target does
        let r = connector_core::config::load_str(&String::from_utf8_lossy(&data));
        if let Ok(config) = &r {
            for section in [&config.source, &config.sink, &config.offsets] {
                let _ = section.extract::<serde_json::Value>();
            }
        }
        // THEN a seed taken from configs/ loads
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("seed-")
        {
            seeds += 1;
            if let Err(e) = r {
                panic!("{}: {e}", path.display());
            }
        }
    }
    assert!(seeds > 0, "no seeds in {}", dir.display());
}
