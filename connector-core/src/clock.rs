//! Wall-clock helpers shared by the runtime, the connectors and the sinks.
//!
//! A clock before the Unix epoch reads as 0 rather than failing: these stamps are informational
//! (event `ts_us`, `updated_at_ms` in stored offsets), never used for ordering.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_and_millis_read_the_same_clock() {
        let ms = now_millis();
        let us = now_micros();
        let ms_after = now_millis();
        assert!(ms > 1_600_000_000_000, "a clock after 2020: {ms}");
        assert!((ms..=ms_after).contains(&((us / 1000) as u64)));
    }
}
