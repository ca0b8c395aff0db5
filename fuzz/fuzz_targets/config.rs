//! Configuration loading from YAML text (connector-core), then each section read as a tree, as
//! the connectors' factories do.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(config) = connector_core::config::load_str(&String::from_utf8_lossy(data)) {
        for section in [&config.source, &config.sink, &config.offsets] {
            let _ = section.extract::<serde_json::Value>();
        }
    }
});
