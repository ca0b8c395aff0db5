//! The `binlog` and `jsonb` fuzz corpora (`fuzz/corpus/`) replayed through the same entry
//! points as the fuzz targets: every input decodes or fails with an error, never a panic; the
//! seeds decode (binlog seeds are events captured from a real MariaDB by
//! `fuzz/capture-seeds.sh`; jsonb seeds are documents built by MySQL's layout).

use std::path::PathBuf;

fn replay(target: &str, decode: impl Fn(&[u8]) -> Result<(), String>) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut seeds = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        // GIVEN a corpus input WHEN it is decoded
        let r = decode(&data);
        // THEN a seed decodes
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

#[test]
fn the_binlog_fuzz_corpus_decodes_or_fails_cleanly() {
    replay("binlog", |d| {
        source_mysql::fuzzing::decode_binlog(d)
            .map(drop)
            .map_err(|e| e.to_string())
    });
}

#[test]
fn the_jsonb_fuzz_corpus_decodes_or_fails_cleanly() {
    replay("jsonb", |d| {
        source_mysql::jsonb::to_text(d)
            .map(drop)
            .map_err(|e| e.to_string())
    });
}
