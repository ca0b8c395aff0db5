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

use std::sync::Arc;

use base64::Engine as _;

use crate::event::{ChangeEvent, Op, Row, TableSchema, Value};

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
}

impl Encoder {
    /// An encoder for the pipeline `name` producing `format`.
    pub fn new(name: impl Into<Arc<str>>, format: Format) -> Self {
        Encoder {
            name: name.into(),
            format,
        }
    }

    /// The format produced.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Append the key of `event` to `out`; returns `false` (and writes nothing) when the event has
    /// no key (a table without key columns).
    pub fn write_key(&self, event: &ChangeEvent, out: &mut Vec<u8>) -> bool {
        if let Some(msg) = &event.message {
            out.extend_from_slice(b"{\"prefix\":");
            write_str(out, &msg.prefix);
            out.push(b'}');
            return true;
        }
        let (Some(table), Some(row)) = (&event.table, event.key_row()) else {
            return false;
        };
        write_key_of(table, row, out)
    }

    /// Append the value of `event` to `out` in this encoder's format.
    pub fn write_value(&self, event: &ChangeEvent, now_us: i64, out: &mut Vec<u8>) {
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

/// Append a JSON string literal.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc = ESCAPE[b as usize];
        if esc == 0 {
            continue;
        }
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
    fn keyless_tables_have_no_key() {
        let t = Arc::new(TableSchema::new(
            TableId::new("d", "s", "t"),
            vec![Column::new("a", "text")],
        ));
        let ev = ChangeEvent::row(
            Op::Create,
            t,
            None,
            Some(vec![Value::Text("x".into())]),
            Position::new("p"),
        );
        let mut key = Vec::new();
        assert!(!Encoder::new("n", Format::Debezium).write_key(&ev, &mut key));
        assert!(key.is_empty());
    }
}
