//! Debezium's handling modes, with Debezium's names and meanings, as keys of every JSON-writing
//! sink section. cdc's defaults are the readable ones: decimals as strings, times as ISO strings,
//! intervals as ISO durations, hstore as JSON, binary as base64 strings.

use serde::{Deserialize, Serialize};

/// `decimal_handling_mode` (Debezium's `decimal.handling.mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecimalMode {
    /// Connect `Decimal` bytes (`VariableScaleDecimal` when the column declares no scale).
    Precise,
    /// A double.
    Double,
    /// The exact decimal as a string (cdc's default).
    #[default]
    String,
}

/// `time_precision_mode` (Debezium's `time.precision.mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimePrecisionMode {
    /// `io.debezium.time.*` epoch numbers at the column's precision (Debezium's default).
    Adaptive,
    /// As `adaptive`, but every `time` in microseconds (`MicroTime`).
    AdaptiveTimeMicroseconds,
    /// Kafka Connect's `Date`/`Time`/`Timestamp` logical types (milliseconds).
    Connect,
    /// `IsoDate`/`IsoTime`/`IsoTimestamp` strings (cdc's default).
    #[default]
    Isostring,
}

/// `binary_handling_mode` (Debezium's `binary.handling.mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize, Serialize)]
pub enum BinaryMode {
    /// Connect `bytes` (base64 in JSON; Debezium's default).
    #[serde(rename = "bytes")]
    Bytes,
    /// A base64 string (cdc's default).
    #[default]
    #[serde(rename = "base64")]
    Base64,
    /// A URL-safe base64 string.
    #[serde(rename = "base64-url-safe")]
    Base64UrlSafe,
    /// A lower-case hex string.
    #[serde(rename = "hex")]
    Hex,
}

/// `interval_handling_mode` (Debezium's `interval.handling.mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntervalMode {
    /// `io.debezium.time.MicroDuration` microseconds (Debezium's default).
    Numeric,
    /// `io.debezium.time.Interval` ISO 8601 string (cdc's default).
    #[default]
    String,
}

/// `hstore_handling_mode` (Debezium's `hstore.handling.mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HstoreMode {
    /// `io.debezium.data.Json` string (the default of both).
    #[default]
    Json,
    /// A Connect map of strings.
    Map,
}

/// The handling modes of one encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Modes {
    /// Decimals and money.
    pub decimal: DecimalMode,
    /// Dates, times and timestamps without zone.
    pub time: TimePrecisionMode,
    /// Binary columns.
    pub binary: BinaryMode,
    /// Intervals.
    pub interval: IntervalMode,
    /// hstore.
    pub hstore: HstoreMode,
}

impl Modes {
    /// Debezium's own defaults (`precise`, `adaptive`, `bytes`, `numeric`, `json`).
    pub fn debezium() -> Self {
        Modes {
            decimal: DecimalMode::Precise,
            time: TimePrecisionMode::Adaptive,
            binary: BinaryMode::Bytes,
            interval: IntervalMode::Numeric,
            hstore: HstoreMode::Json,
        }
    }
}

/// The mode keys of a sink section, to embed field by field in a sink config (serde's `flatten`
/// does not combine with `deny_unknown_fields`, so each sink lists them; see [`ModeKeys::modes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModeKeys {
    /// `precise`, `double` or `string` (default).
    #[serde(default)]
    pub decimal_handling_mode: DecimalMode,
    /// `adaptive`, `adaptive_time_microseconds`, `connect` or `isostring` (default).
    #[serde(default)]
    pub time_precision_mode: TimePrecisionMode,
    /// `bytes`, `base64` (default), `base64-url-safe` or `hex`.
    #[serde(default)]
    pub binary_handling_mode: BinaryMode,
    /// `numeric` or `string` (default).
    #[serde(default)]
    pub interval_handling_mode: IntervalMode,
    /// `json` (default) or `map`.
    #[serde(default)]
    pub hstore_handling_mode: HstoreMode,
}

impl ModeKeys {
    /// The modes these keys select.
    pub fn modes(&self) -> Modes {
        Modes {
            decimal: self.decimal_handling_mode,
            time: self.time_precision_mode,
            binary: self.binary_handling_mode,
            interval: self.interval_handling_mode,
            hstore: self.hstore_handling_mode,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_names_are_debeziums() {
        let k: ModeKeys = serde_json::from_str(
            r#"{"decimal_handling_mode":"precise","time_precision_mode":"adaptive_time_microseconds",
                "binary_handling_mode":"base64-url-safe","interval_handling_mode":"numeric",
                "hstore_handling_mode":"map"}"#,
        )
        .unwrap();
        assert_eq!(k.modes().decimal, DecimalMode::Precise);
        assert_eq!(k.modes().time, TimePrecisionMode::AdaptiveTimeMicroseconds);
        assert_eq!(k.modes().binary, BinaryMode::Base64UrlSafe);
        assert_eq!(k.modes().interval, IntervalMode::Numeric);
        assert_eq!(k.modes().hstore, HstoreMode::Map);
        assert_eq!(ModeKeys::default().modes(), Modes::default());
        let err = serde_json::from_str::<ModeKeys>(r#"{"decimal_handling_mode":"exact"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`precise`, `double`, `string`"), "{err}");
    }
}
