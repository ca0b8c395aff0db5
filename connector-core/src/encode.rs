//! The one encoder of change events into Debezium-compatible JSON, shared by every sink.
//!
//! Formats:
//! - [`Format::Debezium`]: the key (`{"id":1}`, or no key for keyless tables) and the envelope
//!   `{"before","after","source","op","ts_ms","ts_us","transaction"}` that Kafka Connect sinks,
//!   Flink, ClickHouse, Materialize and RisingWave consume.
//! - [`Format::Flat`]: the row after the change plus `__op`, `__table`, `__source_ts_ms` and
//!   `__deleted`, what Debezium's `ExtractNewRecordState` transform yields (deletes carry the row
//!   before the change and `"__deleted":"true"`).
//!
//! Value forms are documented in the README type table; see [`write_value`].
//!
//! With [`Encoder::with_schemas`], key and value are each wrapped as Kafka Connect's JSON converter
//! does with `schemas.enable=true`: `{"schema":{..},"payload":{..}}`. The Connect type of a column
//! follows the JSON form its [`Value`] variant is written in, refined by the column's `type_name`
//! (integer width) and taken from the `type_name` alone when the value is null; see
//! [`connect_type`].

use std::sync::Arc;

use base64::Engine as _;

use crate::event::{ChangeEvent, Op, RawPart, Row, TableSchema, Value};

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
}

impl Encoder {
    /// An encoder for the pipeline `name` producing `format`.
    pub fn new(name: impl Into<Arc<str>>, format: Format) -> Self {
        Encoder {
            name: name.into(),
            format,
            schemas: false,
        }
    }

    /// Wrap keys and values with their Kafka Connect schema (`{"schema":..,"payload":..}`), as the
    /// JSON converter does with `schemas.enable=true`.
    pub fn with_schemas(mut self, schemas: bool) -> Self {
        self.schemas = schemas;
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

    /// Append the key of `event` to `out`; returns `false` (and writes nothing) when the event has
    /// no key (a table without key columns). A transform's raw key
    /// ([`RecordOverride::key`](crate::event::RecordOverride)) is written as it is.
    pub fn write_key(&self, event: &ChangeEvent, out: &mut Vec<u8>) -> bool {
        if let Some(raw) = event.record.as_ref().and_then(|r| r.key.as_ref()) {
            return match raw {
                RawPart::Null => false,
                RawPart::Bytes(b) => {
                    out.extend_from_slice(b);
                    true
                }
            };
        }
        if !self.schemas {
            return self.write_bare_key(event, out);
        }
        let start = out.len();
        out.extend_from_slice(b"{\"schema\":");
        self.write_key_schema(event, out);
        out.extend_from_slice(b",\"payload\":");
        if !self.write_bare_key(event, out) {
            out.truncate(start);
            return false;
        }
        out.push(b'}');
        true
    }

    fn write_bare_key(&self, event: &ChangeEvent, out: &mut Vec<u8>) -> bool {
        if let Some(msg) = &event.message {
            out.extend_from_slice(b"{\"prefix\":");
            write_str(out, &msg.prefix);
            out.push(b'}');
            return true;
        }
        let Some(table) = &event.table else {
            return false;
        };
        if !table.has_key() || event.key_row().is_none() {
            return false;
        }
        out.push(b'{');
        let mut first = true;
        for (i, col) in table.columns.iter().enumerate().filter(|(_, c)| c.key) {
            if !first {
                out.push(b',');
            }
            first = false;
            write_str(out, &col.name);
            out.push(b':');
            write_value(out, event.key_value(i).unwrap_or(&Value::Null));
        }
        for (name, value) in event.record.iter().flat_map(|r| &r.key_fields) {
            out.push(b',');
            write_str(out, name);
            out.push(b':');
            write_value(out, value);
        }
        out.push(b'}');
        true
    }

    /// Append the value of `event` to `out` in this encoder's format; a transform's raw value
    /// is written as it is (a null one as `null`).
    pub fn write_value(&self, event: &ChangeEvent, now_us: i64, out: &mut Vec<u8>) {
        if let Some(raw) = event.record.as_ref().and_then(|r| r.value.as_ref()) {
            match raw {
                RawPart::Null => out.extend_from_slice(b"null"),
                RawPart::Bytes(b) => out.extend_from_slice(b),
            }
            return;
        }
        if self.schemas {
            out.extend_from_slice(b"{\"schema\":");
            self.write_value_schema(event, out);
            out.extend_from_slice(b",\"payload\":");
            self.write_bare_value(event, now_us, out);
            out.push(b'}');
        } else {
            self.write_bare_value(event, now_us, out);
        }
    }

    fn write_bare_value(&self, event: &ChangeEvent, now_us: i64, out: &mut Vec<u8>) {
        match self.format {
            Format::Debezium => self.write_envelope(event, now_us, out),
            Format::Flat => self.write_flat(event, out),
        }
    }

    fn write_envelope(&self, event: &ChangeEvent, now_us: i64, out: &mut Vec<u8>) {
        out.push(b'{');
        if event.op != Op::Message {
            out.extend_from_slice(b"\"before\":");
            write_row(event.table.as_deref(), event.before.as_ref(), out);
            out.extend_from_slice(b",\"after\":");
            write_row(event.table.as_deref(), event.after.as_ref(), out);
            out.push(b',');
        }
        out.extend_from_slice(b"\"source\":");
        self.write_source(event, out);
        out.extend_from_slice(b",\"op\":\"");
        out.extend_from_slice(event.op.code().as_bytes());
        out.extend_from_slice(b"\",\"ts_ms\":");
        write_int(out, now_us.div_euclid(1000));
        out.extend_from_slice(b",\"ts_us\":");
        write_int(out, now_us);
        if let Some(msg) = &event.message {
            out.extend_from_slice(b",\"message\":{\"prefix\":");
            write_str(out, &msg.prefix);
            out.extend_from_slice(b",\"content\":");
            write_bytes(out, &msg.content);
            out.push(b'}');
        }
        out.extend_from_slice(b",\"transaction\":");
        match &event.txn {
            Some(txn) => {
                out.extend_from_slice(b"{\"id\":");
                write_str(out, &txn.id);
                out.extend_from_slice(b",\"total_order\":");
                write_uint(out, txn.order);
                out.extend_from_slice(b",\"data_collection_order\":");
                write_uint(out, txn.table_order);
                out.push(b'}');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
    }

    fn write_source(&self, event: &ChangeEvent, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"version\":");
        write_str(out, VERSION);
        out.extend_from_slice(b",\"connector\":");
        write_str(out, event.source.connector);
        out.extend_from_slice(b",\"name\":");
        write_str(out, &self.name);
        out.extend_from_slice(b",\"ts_ms\":");
        write_int(out, event.commit_ts_us.div_euclid(1000));
        out.extend_from_slice(b",\"ts_us\":");
        write_int(out, event.commit_ts_us);
        out.extend_from_slice(b",\"snapshot\":");
        write_str(out, event.source.snapshot.as_str());
        if let Some(table) = &event.table {
            out.extend_from_slice(b",\"db\":");
            write_str(out, &table.id.database);
            out.extend_from_slice(b",\"schema\":");
            write_str(out, &table.id.schema);
            out.extend_from_slice(b",\"table\":");
            write_str(out, &table.id.table);
        }
        for (name, value) in &event.source.fields {
            out.push(b',');
            write_str(out, name);
            out.push(b':');
            write_value(out, value);
        }
        out.push(b'}');
    }

    fn write_flat(&self, event: &ChangeEvent, out: &mut Vec<u8>) {
        out.push(b'{');
        let mut first = true;
        if let Some(msg) = &event.message {
            out.extend_from_slice(b"\"prefix\":");
            write_str(out, &msg.prefix);
            out.extend_from_slice(b",\"content\":");
            write_bytes(out, &msg.content);
            first = false;
        } else if let (Some(table), Some(row)) = (&event.table, event.key_row()) {
            for (col, v) in table.columns.iter().zip(row) {
                if !first {
                    out.push(b',');
                }
                first = false;
                write_str(out, &col.name);
                out.push(b':');
                write_value(out, v);
            }
        }
        if !first {
            out.push(b',');
        }
        out.extend_from_slice(b"\"__op\":\"");
        out.extend_from_slice(event.op.code().as_bytes());
        out.extend_from_slice(b"\",\"__table\":");
        match &event.table {
            Some(t) => write_str(out, &t.id.table),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"__source_ts_ms\":");
        write_int(out, event.commit_ts_us.div_euclid(1000));
        out.extend_from_slice(b",\"__deleted\":");
        write_str(
            out,
            if event.op == Op::Delete {
                "true"
            } else {
                "false"
            },
        );
        out.push(b'}');
    }
}

/// A Kafka Connect schema type: the primitive `type` and an optional logical `name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectType {
    /// `boolean`, `int16`, `int32`, `int64`, `float32`, `float64`, `string`, `bytes`, `array`.
    pub kind: &'static str,
    /// Debezium's logical type name (`io.debezium.time.ZonedTimestamp`), if any.
    pub name: Option<&'static str>,
}

impl ConnectType {
    const fn plain(kind: &'static str) -> Self {
        ConnectType { kind, name: None }
    }

    const fn named(kind: &'static str, name: &'static str) -> Self {
        ConnectType {
            kind,
            name: Some(name),
        }
    }
}

/// The lower-case base of a source type name: `numeric(10,2)` gives `numeric`, `INT UNSIGNED`
/// gives `int`, `character varying` stays as is.
fn base_type_name(type_name: &str) -> (String, bool) {
    let lower = type_name.trim().to_ascii_lowercase();
    let unsigned = lower.contains(" unsigned");
    let base = lower
        .split('(')
        .next()
        .unwrap_or("")
        .replace(" unsigned", "")
        .replace(" zerofill", "");
    (base.trim().to_string(), unsigned)
}

/// The Connect type implied by a source type name alone (used for null values).
fn connect_type_of_name(type_name: &str) -> ConnectType {
    let (base, unsigned) = base_type_name(type_name);
    if base.starts_with('_') || base.ends_with("[]") {
        return ConnectType::plain("array");
    }
    match base.as_str() {
        "bool" | "boolean" => ConnectType::plain("boolean"),
        "int2" | "smallint" | "smallserial" | "tinyint" if !unsigned || base == "tinyint" => {
            ConnectType::plain("int16")
        }
        "int4" | "int" | "integer" | "mediumint" | "serial" | "year" if !unsigned => {
            ConnectType::plain("int32")
        }
        "smallint" | "mediumint" => ConnectType::plain("int32"),
        "int" | "integer" | "int8" | "bigint" | "bigserial" => ConnectType::plain("int64"),
        "float4" | "real" | "float" => ConnectType::plain("float32"),
        "float8" | "double" | "double precision" => ConnectType::plain("float64"),
        "json" | "jsonb" => ConnectType::named("string", "io.debezium.data.Json"),
        "bytea" | "blob" | "tinyblob" | "mediumblob" | "longblob" | "binary" | "varbinary" => {
            ConnectType::plain("bytes")
        }
        "date" => ConnectType::named("string", "io.debezium.time.IsoDate"),
        "time" | "time without time zone" => {
            ConnectType::named("string", "io.debezium.time.IsoTime")
        }
        "timetz" | "time with time zone" => {
            ConnectType::named("string", "io.debezium.time.ZonedTime")
        }
        "timestamp" | "timestamp without time zone" | "datetime" => {
            ConnectType::named("string", "io.debezium.time.IsoTimestamp")
        }
        "timestamptz" | "timestamp with time zone" => {
            ConnectType::named("string", "io.debezium.time.ZonedTimestamp")
        }
        "interval" => ConnectType::named("string", "io.debezium.time.Interval"),
        "uuid" => ConnectType::named("string", "io.debezium.data.Uuid"),
        _ => ConnectType::plain("string"),
    }
}

/// The Connect type of a column: the JSON form of `sample`'s variant decides the family, the
/// source `type_name` refines integer widths and decides alone when `sample` is absent, null or
/// unavailable.
pub fn connect_type(type_name: &str, sample: Option<&Value>) -> ConnectType {
    let by_name = connect_type_of_name(type_name);
    let int_width = |fallback: &'static str| match by_name.kind {
        "int16" | "int32" | "int64" => ConnectType::plain(by_name.kind),
        _ => ConnectType::plain(fallback),
    };
    match sample {
        None | Some(Value::Null) | Some(Value::Unavailable) => by_name,
        Some(Value::Bool(_)) => ConnectType::plain("boolean"),
        Some(Value::Int(_)) | Some(Value::UInt(_)) => int_width("int64"),
        Some(Value::Float32(_)) => ConnectType::plain("float32"),
        Some(Value::Float64(_)) => ConnectType::plain("float64"),
        Some(Value::Decimal(_)) | Some(Value::Text(_)) => ConnectType::plain("string"),
        Some(Value::Json(_)) => ConnectType::named("string", "io.debezium.data.Json"),
        Some(Value::Bytes(_)) => ConnectType::plain("bytes"),
        Some(Value::Date(_)) => ConnectType::named("string", "io.debezium.time.IsoDate"),
        Some(Value::Time(_)) => ConnectType::named("string", "io.debezium.time.IsoTime"),
        Some(Value::TimeTz { .. }) => ConnectType::named("string", "io.debezium.time.ZonedTime"),
        Some(Value::Timestamp(_)) => ConnectType::named("string", "io.debezium.time.IsoTimestamp"),
        Some(Value::TimestampTz(_)) => {
            ConnectType::named("string", "io.debezium.time.ZonedTimestamp")
        }
        Some(Value::Interval { .. }) => ConnectType::named("string", "io.debezium.time.Interval"),
        Some(Value::Uuid(_)) => ConnectType::named("string", "io.debezium.data.Uuid"),
        Some(Value::Array(_)) => ConnectType::plain("array"),
    }
}

/// The element type name of an array type name: `_int4` and `int4[]` give `int4`.
fn element_type_name(type_name: &str) -> &str {
    let t = type_name.trim();
    t.strip_prefix('_')
        .or_else(|| t.strip_suffix("[]"))
        .unwrap_or_default()
}

/// Append the members of a type schema (`"type":..[,"name":..][,"items":{..}]`) without braces.
fn write_type_members(out: &mut Vec<u8>, type_name: &str, sample: Option<&Value>) {
    let t = connect_type(type_name, sample);
    out.extend_from_slice(b"\"type\":");
    write_str(out, t.kind);
    if let Some(name) = t.name {
        out.extend_from_slice(b",\"name\":");
        write_str(out, name);
        out.extend_from_slice(b",\"version\":1");
    }
    if t.kind == "array" {
        let element = element_type_name(type_name);
        let item = match sample {
            Some(Value::Array(items)) => items.iter().find(|v| !v.is_null()),
            _ => None,
        };
        out.extend_from_slice(b",\"items\":{");
        write_type_members(out, element, item);
        out.extend_from_slice(b",\"optional\":true}");
    }
}

/// Append one field schema `{"type":..,"optional":..,"field":..}`.
fn write_field_schema(
    out: &mut Vec<u8>,
    field: &str,
    type_name: &str,
    sample: Option<&Value>,
    optional: bool,
) {
    out.push(b'{');
    write_type_members(out, type_name, sample);
    out.extend_from_slice(if optional {
        b",\"optional\":true,\"field\":"
    } else {
        b",\"optional\":false,\"field\":"
    });
    write_str(out, field);
    out.push(b'}');
}

/// Append a field schema of a fixed primitive type.
fn write_fixed_field(out: &mut Vec<u8>, field: &str, kind: &str, optional: bool) {
    out.extend_from_slice(b"{\"type\":");
    write_str(out, kind);
    out.extend_from_slice(if optional {
        b",\"optional\":true,\"field\":"
    } else {
        b",\"optional\":false,\"field\":"
    });
    write_str(out, field);
    out.push(b'}');
}

impl Encoder {
    /// `<name>.<schema>.<table>.<suffix>`, or `<name>.message.<suffix>` for logical messages.
    fn write_schema_name(&self, event: &ChangeEvent, suffix: &str, out: &mut Vec<u8>) {
        let name = match (
            &event.table,
            event.record.as_ref().and_then(|r| r.schema_name.as_ref()),
        ) {
            (_, Some(base)) => format!("{base}.{suffix}"),
            (Some(t), None) => format!("{}.{}.{}.{suffix}", self.name, t.id.schema, t.id.table),
            (None, None) => format!("{}.message.{suffix}", self.name),
        };
        write_str(out, &name);
    }

    /// The fields of the row struct, comma-separated without brackets: every column, typed from
    /// its value in `rows` (the first row with a non-null value) or its type name.
    fn write_row_fields(&self, table: &TableSchema, rows: &[Option<&Row>], out: &mut Vec<u8>) {
        for (i, col) in table.columns.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let sample = rows
                .iter()
                .filter_map(|r| r.and_then(|r| r.get(i)))
                .find(|v| !v.is_null() && !matches!(v, Value::Unavailable));
            let any_null = rows
                .iter()
                .any(|r| r.and_then(|r| r.get(i)).is_some_and(Value::is_null));
            write_field_schema(
                out,
                &col.name,
                &col.type_name,
                sample,
                col.nullable || any_null,
            );
        }
    }

    fn write_key_schema(&self, event: &ChangeEvent, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"type\":\"struct\",\"fields\":[");
        if event.message.is_some() {
            write_fixed_field(out, "prefix", "string", false);
        } else if let (Some(table), Some(row)) = (&event.table, event.key_row()) {
            let mut first = true;
            for (col, v) in table.columns.iter().zip(row) {
                if !col.key {
                    continue;
                }
                if !first {
                    out.push(b',');
                }
                first = false;
                write_field_schema(out, &col.name, &col.type_name, Some(v), v.is_null());
            }
            for (name, value) in event.record.iter().flat_map(|r| &r.key_fields) {
                out.push(b',');
                write_field_schema(out, name, "", Some(value), value.is_null());
            }
        }
        out.extend_from_slice(b"],\"optional\":false,\"name\":");
        self.write_schema_name(event, "Key", out);
        out.push(b'}');
    }

    fn write_value_schema(&self, event: &ChangeEvent, out: &mut Vec<u8>) {
        match self.format {
            Format::Debezium => self.write_envelope_schema(event, out),
            Format::Flat => self.write_flat_schema(event, out),
        }
    }

    fn write_message_fields(out: &mut Vec<u8>) {
        write_fixed_field(out, "prefix", "string", false);
        out.push(b',');
        write_fixed_field(out, "content", "bytes", false);
    }

    fn write_envelope_schema(&self, event: &ChangeEvent, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"type\":\"struct\",\"fields\":[");
        if let Some(table) = &event.table {
            if event.op != Op::Message {
                let rows = [event.after.as_ref(), event.before.as_ref()];
                for field in ["before", "after"] {
                    out.extend_from_slice(b"{\"type\":\"struct\",\"fields\":[");
                    self.write_row_fields(table, &rows, out);
                    out.extend_from_slice(b"],\"optional\":true,\"name\":");
                    self.write_schema_name(event, "Value", out);
                    out.extend_from_slice(b",\"field\":");
                    write_str(out, field);
                    out.extend_from_slice(b"},");
                }
            }
        }
        out.extend_from_slice(b"{\"type\":\"struct\",\"fields\":[");
        for (i, field) in ["version", "connector", "name"].iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_fixed_field(out, field, "string", false);
        }
        out.push(b',');
        write_fixed_field(out, "ts_ms", "int64", false);
        out.push(b',');
        write_fixed_field(out, "ts_us", "int64", true);
        out.push(b',');
        write_fixed_field(out, "snapshot", "string", true);
        if event.table.is_some() {
            for field in ["db", "schema", "table"] {
                out.push(b',');
                write_fixed_field(out, field, "string", false);
            }
        }
        for (name, value) in &event.source.fields {
            out.push(b',');
            write_field_schema(out, name, "", Some(value), true);
        }
        out.extend_from_slice(b"],\"optional\":false,\"name\":");
        let source_name = format!("io.debezium.connector.{}.Source", event.source.connector);
        write_str(out, &source_name);
        out.extend_from_slice(b",\"field\":\"source\"},");
        write_fixed_field(out, "op", "string", false);
        out.push(b',');
        write_fixed_field(out, "ts_ms", "int64", true);
        out.push(b',');
        write_fixed_field(out, "ts_us", "int64", true);
        if event.message.is_some() {
            out.extend_from_slice(b",{\"type\":\"struct\",\"fields\":[");
            Self::write_message_fields(out);
            out.extend_from_slice(b"],\"optional\":true,\"field\":\"message\"}");
        }
        out.extend_from_slice(b",{\"type\":\"struct\",\"fields\":[");
        write_fixed_field(out, "id", "string", false);
        out.push(b',');
        write_fixed_field(out, "total_order", "int64", false);
        out.push(b',');
        write_fixed_field(out, "data_collection_order", "int64", false);
        out.extend_from_slice(
            b"],\"optional\":true,\"name\":\"event.block\",\"version\":1,\"field\":\"transaction\"}",
        );
        out.extend_from_slice(b"],\"optional\":false,\"name\":");
        self.write_schema_name(event, "Envelope", out);
        out.extend_from_slice(b",\"version\":1}");
    }

    fn write_flat_schema(&self, event: &ChangeEvent, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"type\":\"struct\",\"fields\":[");
        let mut any = false;
        if event.message.is_some() {
            Self::write_message_fields(out);
            any = true;
        } else if let (Some(table), Some(row)) = (&event.table, event.key_row()) {
            self.write_row_fields(table, &[Some(row)], out);
            any = !table.columns.is_empty();
        }
        if any {
            out.push(b',');
        }
        write_fixed_field(out, "__op", "string", false);
        out.push(b',');
        write_fixed_field(out, "__table", "string", true);
        out.push(b',');
        write_fixed_field(out, "__source_ts_ms", "int64", true);
        out.push(b',');
        write_fixed_field(out, "__deleted", "string", true);
        out.extend_from_slice(b"],\"optional\":false,\"name\":");
        self.write_schema_name(event, "Value", out);
        out.push(b'}');
    }
}

/// Append `{"k1":v1,...}` of the key columns of `row`; `false` when the table has no key.
pub fn write_key_of(table: &TableSchema, row: &Row, out: &mut Vec<u8>) -> bool {
    if !table.has_key() {
        return false;
    }
    out.push(b'{');
    let mut first = true;
    for (col, v) in table.columns.iter().zip(row) {
        if !col.key {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        write_str(out, &col.name);
        out.push(b':');
        write_value(out, v);
    }
    out.push(b'}');
    true
}

fn write_row(table: Option<&TableSchema>, row: Option<&Row>, out: &mut Vec<u8>) {
    let (Some(table), Some(row)) = (table, row) else {
        out.extend_from_slice(b"null");
        return;
    };
    out.push(b'{');
    for (i, (col, v)) in table.columns.iter().zip(row).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, &col.name);
        out.push(b':');
        write_value(out, v);
    }
    out.push(b'}');
}

/// Append the JSON form of one value (the README's type table).
pub fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Unavailable => write_str(out, UNAVAILABLE_VALUE),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(i) => write_int(out, *i),
        Value::UInt(u) => write_uint(out, *u),
        Value::Float32(f) => {
            if f.is_finite() {
                out.extend_from_slice(ryu::Buffer::new().format_finite(*f).as_bytes());
            } else {
                write_non_finite(out, f64::from(*f));
            }
        }
        Value::Float64(f) => {
            if f.is_finite() {
                out.extend_from_slice(ryu::Buffer::new().format_finite(*f).as_bytes());
            } else {
                write_non_finite(out, *f);
            }
        }
        Value::Decimal(s) => write_str(out, s),
        Value::Text(s) | Value::Json(s) => write_str(out, s),
        Value::Bytes(b) => write_bytes(out, b),
        Value::Date(days) => {
            out.push(b'"');
            write_date(out, *days);
            out.push(b'"');
        }
        Value::Time(micros) => {
            out.push(b'"');
            write_time(out, *micros);
            out.push(b'"');
        }
        Value::TimeTz {
            micros,
            offset_secs,
        } => {
            out.push(b'"');
            write_time(out, *micros);
            write_offset(out, *offset_secs);
            out.push(b'"');
        }
        Value::Timestamp(us) => write_timestamp(out, *us, false),
        Value::TimestampTz(us) => write_timestamp(out, *us, true),
        Value::Interval {
            months,
            days,
            micros,
        } => {
            out.push(b'"');
            write_interval(out, *months, *days, *micros);
            out.push(b'"');
        }
        Value::Uuid(u) => {
            out.push(b'"');
            write_uuid(out, u);
            out.push(b'"');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
    }
}

fn write_non_finite(out: &mut Vec<u8>, f: f64) {
    write_str(
        out,
        if f.is_nan() {
            "NaN"
        } else if f > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        },
    );
}

/// Append a signed integer.
pub fn write_int(out: &mut Vec<u8>, i: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
}

/// Append an unsigned integer.
pub fn write_uint(out: &mut Vec<u8>, u: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(u).as_bytes());
}

/// Append bytes as a base64 JSON string (Debezium's `binary.handling.mode=bytes` in JSON).
pub fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.push(b'"');
    let start = out.len();
    out.resize(start + base64::encoded_len(b.len(), true).unwrap_or(0), 0);
    let written = base64::engine::general_purpose::STANDARD
        .encode_slice(b, &mut out[start..])
        .unwrap_or(0);
    out.truncate(start + written);
    out.push(b'"');
}

const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t[0x08] = b'b';
    t[0x0c] = b'f';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Whether any of the 8 bytes of `w` must be escaped in a JSON string (a control character, `"`
/// or `\\`): the "has a byte less than n" and "has a zero byte" word tricks, exact as a boolean.
#[inline]
fn word_needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let control = w.wrapping_sub(ONES * 0x20) & !w;
    let q = w ^ (ONES * u64::from(b'"'));
    let quote = q.wrapping_sub(ONES) & !q;
    let b = w ^ (ONES * u64::from(b'\\'));
    let backslash = b.wrapping_sub(ONES) & !b;
    (control | quote | backslash) & HIGHS != 0
}

/// Append a JSON string literal.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Skip 8 bytes at a time while none needs escaping (most text).
        if let Some(chunk) = bytes.get(i..i + 8) {
            let w = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
            if !word_needs_escape(w) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let esc = ESCAPE[b as usize];
        if esc != 0 {
            out.extend_from_slice(&bytes[start..i]);
            out.push(b'\\');
            out.push(esc);
            if esc == b'u' {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xf) as usize]);
            }
            start = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Civil date (year, month, day) from days since 1970-01-01 (proleptic Gregorian).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn write_padded(out: &mut Vec<u8>, v: u64, width: usize) {
    let mut buf = itoa::Buffer::new();
    let s = buf.format(v);
    for _ in s.len()..width {
        out.push(b'0');
    }
    out.extend_from_slice(s.as_bytes());
}

fn write_date(out: &mut Vec<u8>, days: i32) {
    write_civil(out, i64::from(days));
}

fn write_civil(out: &mut Vec<u8>, days: i64) {
    let (y, m, d) = civil_from_days(days);
    if y < 0 {
        out.push(b'-');
    }
    write_padded(out, y.unsigned_abs(), 4);
    out.push(b'-');
    write_padded(out, u64::from(m), 2);
    out.push(b'-');
    write_padded(out, u64::from(d), 2);
}

fn write_fraction(out: &mut Vec<u8>, micros: u64) {
    if micros == 0 {
        return;
    }
    let mut digits = 6;
    let mut v = micros;
    while v.is_multiple_of(10) {
        v /= 10;
        digits -= 1;
    }
    out.push(b'.');
    write_padded(out, v, digits);
}

/// `HH:MM:SS[.ffffff]`; negative or beyond 24 hours for MySQL `TIME` (`-838:59:59`).
fn write_time(out: &mut Vec<u8>, micros: i64) {
    if micros < 0 {
        out.push(b'-');
    }
    let m = micros.unsigned_abs();
    let secs = m / 1_000_000;
    write_padded(out, secs / 3600, 2);
    out.push(b':');
    write_padded(out, secs / 60 % 60, 2);
    out.push(b':');
    write_padded(out, secs % 60, 2);
    write_fraction(out, m % 1_000_000);
}

fn write_offset(out: &mut Vec<u8>, offset_secs: i32) {
    if offset_secs == 0 {
        out.push(b'Z');
        return;
    }
    out.push(if offset_secs < 0 { b'-' } else { b'+' });
    let o = offset_secs.unsigned_abs();
    write_padded(out, u64::from(o / 3600), 2);
    out.push(b':');
    write_padded(out, u64::from(o / 60 % 60), 2);
    if !o.is_multiple_of(60) {
        out.push(b':');
        write_padded(out, u64::from(o % 60), 2);
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.ffffff]` with a trailing `Z` for `TimestampTz`; `infinity`/`-infinity` for
/// PostgreSQL's infinite timestamps (`i64::MAX`/`i64::MIN`).
fn write_timestamp(out: &mut Vec<u8>, us: i64, utc: bool) {
    out.push(b'"');
    if us == i64::MAX {
        out.extend_from_slice(b"infinity\"");
        return;
    }
    if us == i64::MIN {
        out.extend_from_slice(b"-infinity\"");
        return;
    }
    let days = us.div_euclid(86_400_000_000);
    let tod = us.rem_euclid(86_400_000_000);
    write_civil(out, days);
    out.push(b'T');
    write_time(out, tod);
    if utc {
        out.push(b'Z');
    }
    out.push(b'"');
}

/// ISO-8601 duration, `P1Y2M3DT4H5M6.5S`, `PT0S` for zero; negative parts carry their sign.
fn write_interval(out: &mut Vec<u8>, months: i32, days: i32, micros: i64) {
    out.push(b'P');
    let years = months / 12;
    let months = months % 12;
    if years != 0 {
        write_int(out, i64::from(years));
        out.push(b'Y');
    }
    if months != 0 {
        write_int(out, i64::from(months));
        out.push(b'M');
    }
    if days != 0 {
        write_int(out, i64::from(days));
        out.push(b'D');
    }
    if micros != 0 || (years == 0 && months == 0 && days == 0) {
        out.push(b'T');
        let neg = micros < 0;
        let m = micros.unsigned_abs();
        let secs = m / 1_000_000;
        let (h, mi, s, frac) = (secs / 3600, secs / 60 % 60, secs % 60, m % 1_000_000);
        let sign = |out: &mut Vec<u8>| {
            if neg {
                out.push(b'-');
            }
        };
        if h != 0 {
            sign(out);
            write_uint(out, h);
            out.push(b'H');
        }
        if mi != 0 {
            sign(out);
            write_uint(out, mi);
            out.push(b'M');
        }
        if s != 0 || frac != 0 || (h == 0 && mi == 0) {
            sign(out);
            write_uint(out, s);
            write_fraction(out, frac);
            out.push(b'S');
        }
    }
}

fn write_uuid(out: &mut Vec<u8>, u: &[u8; 16]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push(b'-');
        }
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 0xf) as usize]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-at-a-time escaping `write_str` must match.
    fn write_str_reference(out: &mut Vec<u8>, s: &str) {
        out.push(b'"');
        for &b in s.as_bytes() {
            match ESCAPE[b as usize] {
                0 => out.push(b),
                b'u' => out.extend_from_slice(format!("\\u{:04x}", b).as_bytes()),
                e => out.extend_from_slice(&[b'\\', e]),
            }
        }
        out.push(b'"');
    }

    #[test]
    fn write_str_matches_the_reference_for_every_byte_at_every_offset() {
        let mut samples: Vec<String> = Vec::new();
        for b in 0u8..=127 {
            for pos in 0..18 {
                let mut s = "abcdefghijklmnopq".to_string();
                s.insert(pos.min(s.len()), b as char);
                samples.push(s);
            }
        }
        samples.push("é\"ü\\x\u{7f}\u{1f}\n€ and a long tail of plain text 0123456789".into());
        samples.push(String::new());
        samples.push("\"".repeat(20));
        for s in &samples {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            write_str(&mut a, s);
            write_str_reference(&mut b, s);
            assert_eq!(a, b, "{s:?}");
            let back: String = serde_json::from_slice(&a).unwrap();
            assert_eq!(&back, s);
        }
    }
    use crate::event::{Column, Position, SnapshotMarker, SourceInfo, TableId, TxnInfo};

    fn json(v: &Value) -> String {
        let mut out = Vec::new();
        write_value(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    fn table() -> Arc<TableSchema> {
        Arc::new(TableSchema::new(
            TableId::new("app", "public", "orders"),
            vec![Column::new("id", "int4").key(), Column::new("note", "text")],
        ))
    }

    #[test]
    fn values_have_their_documented_json_forms() {
        assert_eq!(json(&Value::Null), "null");
        assert_eq!(
            json(&Value::Unavailable),
            "\"__debezium_unavailable_value\""
        );
        assert_eq!(json(&Value::UInt(u64::MAX)), "18446744073709551615");
        assert_eq!(json(&Value::Int(i64::MIN)), "-9223372036854775808");
        assert_eq!(json(&Value::Float32(0.1)), "0.1");
        assert_eq!(json(&Value::Float64(f64::NAN)), "\"NaN\"");
        assert_eq!(json(&Value::Float64(f64::NEG_INFINITY)), "\"-Infinity\"");
        assert_eq!(json(&Value::Decimal("-12.340".into())), "\"-12.340\"");
        assert_eq!(
            json(&Value::Text("a\"b\\c\n\u{1}é".into())),
            r#""a\"b\\c\n\u0001é""#
        );
        assert_eq!(json(&Value::Bytes(vec![0, 1, 2, 255])), "\"AAEC/w==\"");
        assert_eq!(json(&Value::Date(0)), "\"1970-01-01\"");
        assert_eq!(json(&Value::Date(19_723)), "\"2024-01-01\"");
        assert_eq!(json(&Value::Date(-719_893)), "\"-0001-01-01\"");
        assert_eq!(json(&Value::Time(45_296_500_000)), "\"12:34:56.5\"");
        assert_eq!(json(&Value::Time(-3_020_399_000_000)), "\"-838:59:59\"");
        assert_eq!(
            json(&Value::TimeTz {
                micros: 3_600_000_000,
                offset_secs: -5 * 3600 - 1800
            }),
            "\"01:00:00-05:30\""
        );
        assert_eq!(
            json(&Value::Timestamp(1_704_067_200_000_001)),
            "\"2024-01-01T00:00:00.000001\""
        );
        assert_eq!(
            json(&Value::TimestampTz(-1)),
            "\"1969-12-31T23:59:59.999999Z\""
        );
        assert_eq!(json(&Value::TimestampTz(i64::MAX)), "\"infinity\"");
        assert_eq!(
            json(&Value::Interval {
                months: 14,
                days: 3,
                micros: 14_706_500_000
            }),
            "\"P1Y2M3DT4H5M6.5S\""
        );
        assert_eq!(
            json(&Value::Interval {
                months: 0,
                days: 0,
                micros: 0
            }),
            "\"PT0S\""
        );
        assert_eq!(
            json(&Value::Uuid([
                0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38,
                0x0a, 0x11
            ])),
            "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\""
        );
        assert_eq!(
            json(&Value::Array(vec![Value::Int(1), Value::Null])),
            "[1,null]"
        );
    }

    #[test]
    fn civil_date_round_trips() {
        for days in [-1_000_000, -719_893, -1, 0, 1, 59, 60, 11_016, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn envelope_and_key_are_debezium_shaped() {
        let mut ev = ChangeEvent::row(
            Op::Update,
            table(),
            Some(vec![Value::Int(7), Value::Text("old".into())]),
            Some(vec![Value::Int(7), Value::Unavailable]),
            Position::new("0/10:1"),
        );
        ev.commit_ts_us = 1_700_000_000_123_456;
        ev.txn = Some(TxnInfo {
            id: "42".into(),
            order: 3,
            table_order: 2,
        });
        ev.source = SourceInfo {
            connector: "postgresql",
            snapshot: SnapshotMarker::False,
            fields: vec![("lsn", Value::Int(16))],
        };
        let enc = Encoder::new("inv", Format::Debezium);
        let mut key = Vec::new();
        assert!(enc.write_key(&ev, &mut key));
        assert_eq!(key, br#"{"id":7}"#);
        let mut out = Vec::new();
        enc.write_value(&ev, 1_700_000_001_000_000, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["op"], "u");
        assert_eq!(v["before"]["note"], "old");
        assert_eq!(v["after"]["note"], UNAVAILABLE_VALUE);
        assert_eq!(v["source"]["name"], "inv");
        assert_eq!(v["source"]["ts_ms"], 1_700_000_000_123i64);
        assert_eq!(v["source"]["table"], "orders");
        assert_eq!(v["source"]["lsn"], 16);
        assert_eq!(v["transaction"]["total_order"], 3);
        assert_eq!(v["transaction"]["data_collection_order"], 2);
        assert_eq!(v["ts_ms"], 1_700_000_001_000i64);
    }

    #[test]
    fn flat_delete_carries_the_old_row_and_marker() {
        let ev = ChangeEvent::row(
            Op::Delete,
            table(),
            Some(vec![Value::Int(7), Value::Text("gone".into())]),
            None,
            Position::new("p"),
        );
        let mut out = Vec::new();
        Encoder::new("inv", Format::Flat).write_value(&ev, 0, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(v["note"], "gone");
        assert_eq!(v["__op"], "d");
        assert_eq!(v["__deleted"], "true");
    }

    #[test]
    fn an_update_with_an_unavailable_key_in_after_is_keyed_from_before() {
        // An update logged with a minimal row image: `after` lacks the unchanged key column.
        let ev = ChangeEvent::row(
            Op::Update,
            table(),
            Some(vec![Value::Int(7), Value::Unavailable]),
            Some(vec![Value::Unavailable, Value::Text("new".into())]),
            Position::new("p"),
        );
        let mut key = Vec::new();
        assert!(Encoder::new("inv", Format::Debezium).write_key(&ev, &mut key));
        assert_eq!(key, br#"{"id":7}"#);
    }

    /// A create in a table without key columns.
    fn keyless_create() -> ChangeEvent {
        let t = Arc::new(TableSchema::new(
            TableId::new("d", "s", "t"),
            vec![Column::new("a", "text")],
        ));
        ChangeEvent::row(
            Op::Create,
            t,
            None,
            Some(vec![Value::Text("x".into())]),
            Position::new("p"),
        )
    }

    #[test]
    fn keyless_tables_have_no_key() {
        let ev = keyless_create();
        let mut key = Vec::new();
        assert!(!Encoder::new("n", Format::Debezium).write_key(&ev, &mut key));
        assert!(key.is_empty());
    }

    #[test]
    fn connect_types_follow_the_value_and_the_type_name() {
        assert_eq!(connect_type("int4", Some(&Value::Int(1))).kind, "int32");
        assert_eq!(connect_type("int4", Some(&Value::Null)).kind, "int32");
        assert_eq!(connect_type("smallint", None).kind, "int16");
        assert_eq!(
            connect_type("bigint unsigned", Some(&Value::UInt(1))).kind,
            "int64"
        );
        assert_eq!(
            connect_type("tinyint(1)", Some(&Value::Bool(true))).kind,
            "boolean"
        );
        assert_eq!(connect_type("numeric(12,2)", None).kind, "string");
        assert_eq!(
            connect_type("timestamptz", Some(&Value::Null)).name,
            Some("io.debezium.time.ZonedTimestamp")
        );
        assert_eq!(
            connect_type("whatever", Some(&Value::Float64(1.0))).kind,
            "float64"
        );
        assert_eq!(connect_type("_int4", None).kind, "array");
        assert_eq!(connect_type("mystery", None).kind, "string");
    }

    #[test]
    fn schemas_wrap_key_and_value_with_connect_schemas() {
        let mut ev = ChangeEvent::row(
            Op::Create,
            table(),
            None,
            Some(vec![Value::Int(7), Value::Null]),
            Position::new("p"),
        );
        ev.source = SourceInfo {
            connector: "postgresql",
            snapshot: SnapshotMarker::False,
            fields: vec![("lsn", Value::Int(16))],
        };
        let enc = Encoder::new("inv", Format::Debezium).with_schemas(true);
        let mut key = Vec::new();
        assert!(enc.write_key(&ev, &mut key));
        let k: serde_json::Value = serde_json::from_slice(&key).unwrap();
        assert_eq!(k["payload"]["id"], 7);
        assert_eq!(k["schema"]["type"], "struct");
        assert_eq!(k["schema"]["name"], "inv.public.orders.Key");
        assert_eq!(k["schema"]["fields"][0]["field"], "id");
        assert_eq!(k["schema"]["fields"][0]["type"], "int32");
        assert_eq!(k["schema"]["fields"][0]["optional"], false);

        let mut out = Vec::new();
        enc.write_value(&ev, 5_000, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["payload"]["op"], "c");
        assert_eq!(v["payload"]["after"]["id"], 7);
        let fields = v["schema"]["fields"].as_array().unwrap();
        let names: Vec<&str> = fields
            .iter()
            .map(|f| f["field"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "before",
                "after",
                "source",
                "op",
                "ts_ms",
                "ts_us",
                "transaction"
            ]
        );
        assert_eq!(v["schema"]["name"], "inv.public.orders.Envelope");
        let after = &fields[1];
        assert_eq!(after["optional"], true);
        assert_eq!(after["fields"][1]["field"], "note");
        assert_eq!(after["fields"][1]["type"], "string");
        assert_eq!(after["fields"][1]["optional"], true);
        let source = &fields[2];
        assert_eq!(source["name"], "io.debezium.connector.postgresql.Source");
        assert!(source["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["field"] == "lsn" && f["type"] == "int64"));

        let mut flat = Vec::new();
        Encoder::new("inv", Format::Flat)
            .with_schemas(true)
            .write_value(&ev, 0, &mut flat);
        let f: serde_json::Value = serde_json::from_slice(&flat).unwrap();
        assert_eq!(f["payload"]["id"], 7);
        assert_eq!(f["schema"]["fields"][0]["field"], "id");
        assert_eq!(f["schema"]["fields"][2]["field"], "__op");
        assert_eq!(f["schema"]["name"], "inv.public.orders.Value");
    }

    #[test]
    fn schemas_leave_keyless_tables_without_a_key() {
        let ev = keyless_create();
        let mut key = Vec::new();
        let enc = Encoder::new("n", Format::Debezium).with_schemas(true);
        assert!(!enc.write_key(&ev, &mut key));
        assert!(key.is_empty());
    }
}
