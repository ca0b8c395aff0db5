//! MySQL binary JSON to text.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = source_mysql::jsonb::to_text(data);
});
