//! pgoutput messages (length-prefixed) through the stream's decoder.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = source_postgres::fuzzing::decode_pgoutput(data);
});
