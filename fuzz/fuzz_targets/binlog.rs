//! Binlog events (as in a binlog file) through the stream's decoder: events and rows.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = source_mysql::fuzzing::decode_binlog(data);
});
