//! The `pgoutput` fuzz corpus (`fuzz/corpus/pgoutput`) replayed through the same decoder entry
//! point as the fuzz target: every input decodes or fails with an error, never a panic; the
//! seeds (messages captured from a real PostgreSQL by `fuzz/capture-seeds.sh`) decode.

use std::path::PathBuf;

#[test]
fn the_pgoutput_fuzz_corpus_decodes_or_fails_cleanly() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/pgoutput");
    let mut seeds = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        // GIVEN a corpus input WHEN it is decoded
        let r = source_postgres::fuzzing::decode_pgoutput(&data);
        // THEN a captured seed decodes into events
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("seed-")
        {
            seeds += 1;
            match r {
                Ok(n) => assert!(n > 0, "{}: no events", path.display()),
                Err(e) => panic!("{}: {e}", path.display()),
            }
        }
    }
    assert!(seeds > 0, "no seeds in {}", dir.display());
}
