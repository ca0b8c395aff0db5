//! The one encoder of change events into Debezium-compatible JSON, shared by every sink.
//!
//! Formats:
//! - [`Format::Debezium`]: the key (`{"id":1}`, or no key for keyless tables) and the envelope
//!   `{"before","after","source","transaction","op","ts_ms","ts_us","ts_ns"}` that Kafka Connect
//!   sinks, Flink, ClickHouse, Materialize and RisingWave consume; logical messages as Debezium's
//!   PostgreSQL connector writes them (`op` `m`, a `message` block with `prefix` and `content`).
//! - [`Format::Flat`]: the row after the change plus `__op`, `__table`, `__source_ts_ms` and
//!   `__deleted`, what Debezium's `ExtractNewRecordState` transform yields (deletes carry the row
//!   before the change and `"__deleted":"true"`).
//!
//! Values are written as Debezium writes them for their column's [`ColumnType`] in the
//! encoder's [`Modes`] (see [`value`]). With [`Encoder::with_schemas`], key and value are each
//! wrapped as Kafka Connect's JSON converter does with `schemas.enable=true`:
//! `{"schema":{..},"payload":{..}}`, with Debezium's schemas (see [`schema`]).
//!
//! Files: `json` (string/number/base64 primitives), `time` (calendar and Debezium's time forms),
//! `value` (one value per type and mode, [`ColumnType`](crate::column_type::ColumnType)), `schema` (Connect schemas), `modes` (the handling
//! modes), `envelope` (the event shapes).

mod envelope;
mod json;
pub mod modes;
pub mod schema;
mod time;
mod transaction;
pub mod value;

use std::sync::Arc;

pub use json::{write_bytes, write_int, write_str, write_uint};
pub use modes::{
    BinaryMode, DecimalMode, HstoreMode, IntervalMode, ModeKeys, Modes, TimePrecisionMode,
};
pub use time::{civil_from_days, days_from_civil};
pub use transaction::{java_hash_map_order, TxnMark, PG_MESSAGE_COLLECTION};
pub use value::{write_typed, write_value};

/// What a value the log did not carry is written as (Debezium's placeholder).
pub const UNAVAILABLE_VALUE: &str = "__debezium_unavailable_value";

/// The envelope's `source.version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Which JSON shape to produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Debezium's envelope (default).
    #[default]
    Debezium,
    /// The row after the change with `__op`/`__deleted` markers.
    Flat,
}

/// Encodes events for one pipeline.
#[derive(Clone, Debug)]
pub struct Encoder {
    name: Arc<str>,
    format: Format,
    schemas: bool,
    modes: Modes,
    transaction_metadata: bool,
}

impl Encoder {
    /// An encoder for the pipeline `name` producing `format` in cdc's default modes.
    pub fn new(name: impl Into<Arc<str>>, format: Format) -> Self {
        Encoder {
            name: name.into(),
            format,
            schemas: false,
            modes: Modes::default(),
            transaction_metadata: false,
        }
    }

    /// Wrap keys and values with their Kafka Connect schema (`{"schema":..,"payload":..}`), as the
    /// JSON converter does with `schemas.enable=true`.
    pub fn with_schemas(mut self, schemas: bool) -> Self {
        self.schemas = schemas;
        self
    }

    /// Write values (and schemas) in Debezium's handling `modes`.
    pub fn with_modes(mut self, modes: Modes) -> Self {
        self.modes = modes;
        self
    }

    /// The format produced.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Whether keys and values carry their Kafka Connect schema.
    pub fn schemas(&self) -> bool {
        self.schemas
    }

    /// The handling modes.
    pub fn modes(&self) -> Modes {
        self.modes
    }
}
