//! The resumable state of an incremental snapshot, stored with the stream position.
//!
//! [`Progress`] is what a restart needs to resume at the next chunk, not at the start: the tables
//! left (the first is the current one) with their filters, the key of the last row of the last
//! completed chunk, the key range end read when the table was begun, the chunk size and whether
//! the snapshot is paused. It serialises to compact JSON; a source puts it into the text of its
//! [`Position`](crate::Position) with [`compose`], so that the offset store writes it atomically
//! with the stream position, and takes it out again with [`decompose`].

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::event::{TableId, Value};

/// Separator between a source's own position text and the snapshot progress in a composed
/// position. Stream positions never contain it.
pub const PROGRESS_SEPARATOR: &str = "#incremental=";

/// One table still to snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingTable {
    /// `[database, schema, table]`.
    #[serde(rename = "t", with = "table_id")]
    pub table: TableId,
    /// The signal's `additional-conditions` filter for this table.
    #[serde(rename = "f", default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// The signal's `surrogate-key` column, chunked by instead of the primary key.
    #[serde(rename = "k", default, skip_serializing_if = "Option::is_none")]
    pub surrogate_key: Option<String>,
    /// The id of the signal that asked for it (for errors in the status).
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub signal_id: Option<String>,
}

/// The state of a running incremental snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The snapshot's id: window ids are `<id>-<n>`, so watermarks of another run never match.
    #[serde(rename = "id")]
    pub id: String,
    /// Tables left; the first is the current one.
    #[serde(rename = "tables")]
    pub tables: Vec<PendingTable>,
    /// Whether the current table was begun (its key range end read).
    #[serde(rename = "begun", default)]
    pub begun: bool,
    /// Key of the last row of the last completed chunk of the current table; `None`: from the
    /// start.
    #[serde(rename = "last", default, skip_serializing_if = "Option::is_none")]
    pub last_key: Option<Vec<KeyValue>>,
    /// The current table's largest key when it was begun (the key range end); `None` for an empty
    /// table.
    #[serde(rename = "max", default, skip_serializing_if = "Option::is_none")]
    pub max_key: Option<Vec<KeyValue>>,
    /// Rows per chunk.
    #[serde(rename = "chunk")]
    pub chunk_size: usize,
    /// Paused by a `pause-snapshot` signal.
    #[serde(rename = "paused", default)]
    pub paused: bool,
    /// Chunks completed so far (all tables).
    #[serde(rename = "chunks", default)]
    pub chunks_done: u64,
    /// Rows emitted so far (all tables).
    #[serde(rename = "rows", default)]
    pub rows_emitted: u64,
    /// Window counter, so that every window of this snapshot has its own id.
    #[serde(rename = "n", default)]
    pub windows: u64,
}

impl Progress {
    /// The compact JSON form.
    pub fn encode(&self) -> String {
        // Serialising plain data into a string cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parse the JSON form; errors say the stored position is damaged.
    pub fn decode(text: &str) -> Result<Progress> {
        serde_json::from_str(text).map_err(|e| {
            Error::new(
                ErrorKind::Data,
                format!("stored incremental snapshot progress is not readable: {e}"),
            )
            .with_hint("the offsets were written by another version or edited by hand")
        })
    }

    /// The current table, if any.
    pub fn current(&self) -> Option<&PendingTable> {
        self.tables.first()
    }
}

/// `stream` with the progress attached when a snapshot runs.
pub fn compose(stream: &str, progress: Option<&Progress>) -> String {
    match progress {
        Some(p) => format!("{stream}{PROGRESS_SEPARATOR}{}", p.encode()),
        None => stream.to_string(),
    }
}

/// Split a composed position into the source's own text and the progress.
pub fn decompose(text: &str) -> Result<(&str, Option<Progress>)> {
    match text.split_once(PROGRESS_SEPARATOR) {
        Some((stream, json)) => Ok((stream, Some(Progress::decode(json)?))),
        None => Ok((text, None)),
    }
}

/// A key value as stored in the progress JSON: tagged by type, so that it reads back as the same
/// [`Value`] (`{"i":5}`, `{"s":"EU-1"}`, `{"uuid":"…"}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum KeyValue {
    /// NULL.
    #[serde(rename = "n")]
    Null,
    /// Boolean.
    #[serde(rename = "b")]
    Bool(bool),
    /// Signed integer.
    #[serde(rename = "i")]
    Int(i64),
    /// Unsigned integer.
    #[serde(rename = "u")]
    UInt(u64),
    /// `f32` by its bits.
    #[serde(rename = "f4")]
    Float32(u32),
    /// `f64` by its bits.
    #[serde(rename = "f8")]
    Float64(u64),
    /// Decimal text.
    #[serde(rename = "dec")]
    Decimal(String),
    /// Text.
    #[serde(rename = "s")]
    Text(String),
    /// Bytes, base64.
    #[serde(rename = "x")]
    Bytes(String),
    /// JSON text.
    #[serde(rename = "j")]
    Json(String),
    /// Days since the epoch.
    #[serde(rename = "d")]
    Date(i32),
    /// Microseconds since midnight.
    #[serde(rename = "t")]
    Time(i64),
    /// Microseconds since midnight and an offset in seconds.
    #[serde(rename = "tz")]
    TimeTz(i64, i32),
    /// Microseconds since the epoch, no zone.
    #[serde(rename = "ts")]
    Timestamp(i64),
    /// Microseconds since the epoch, UTC.
    #[serde(rename = "tstz")]
    TimestampTz(i64),
    /// Months, days, microseconds.
    #[serde(rename = "iv")]
    Interval(i32, i32, i64),
    /// UUID bytes, base64.
    #[serde(rename = "uuid")]
    Uuid(String),
    /// Array.
    #[serde(rename = "a")]
    Array(Vec<KeyValue>),
}

impl KeyValue {
    /// From a value; `None` for [`Value::Unavailable`] (not a key).
    pub fn from_value(v: &Value) -> Option<KeyValue> {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        Some(match v {
            Value::Unavailable => return None,
            Value::Null => KeyValue::Null,
            Value::Bool(b) => KeyValue::Bool(*b),
            Value::Int(i) => KeyValue::Int(*i),
            Value::UInt(u) => KeyValue::UInt(*u),
            Value::Float32(f) => KeyValue::Float32(f.to_bits()),
            Value::Float64(f) => KeyValue::Float64(f.to_bits()),
            Value::Decimal(d) => KeyValue::Decimal(d.to_string()),
            Value::Text(s) => KeyValue::Text(s.clone()),
            Value::Bytes(b) => KeyValue::Bytes(b64(b)),
            Value::Json(s) => KeyValue::Json(s.clone()),
            Value::Date(d) => KeyValue::Date(*d),
            Value::Time(t) => KeyValue::Time(*t),
            Value::TimeTz {
                micros,
                offset_secs,
            } => KeyValue::TimeTz(*micros, *offset_secs),
            Value::Timestamp(t) => KeyValue::Timestamp(*t),
            Value::TimestampTz(t) => KeyValue::TimestampTz(*t),
            Value::Interval {
                months,
                days,
                micros,
            } => KeyValue::Interval(*months, *days, *micros),
            Value::Uuid(u) => KeyValue::Uuid(b64(u)),
            Value::Array(items) => KeyValue::Array(
                items
                    .iter()
                    .map(KeyValue::from_value)
                    .collect::<Option<_>>()?,
            ),
        })
    }

    /// Back to a value; errors when stored bytes are not valid base64.
    pub fn to_value(&self) -> Result<Value> {
        let unb64 = |s: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| {
                    Error::new(
                        ErrorKind::Data,
                        format!("stored incremental snapshot key {s:?} is not base64: {e}"),
                    )
                })
        };
        Ok(match self {
            KeyValue::Null => Value::Null,
            KeyValue::Bool(b) => Value::Bool(*b),
            KeyValue::Int(i) => Value::Int(*i),
            KeyValue::UInt(u) => Value::UInt(*u),
            KeyValue::Float32(f) => Value::Float32(f32::from_bits(*f)),
            KeyValue::Float64(f) => Value::Float64(f64::from_bits(*f)),
            KeyValue::Decimal(d) => Value::Decimal(d.as_str().into()),
            KeyValue::Text(s) => Value::Text(s.clone()),
            KeyValue::Bytes(b) => Value::Bytes(unb64(b)?),
            KeyValue::Json(s) => Value::Json(s.clone()),
            KeyValue::Date(d) => Value::Date(*d),
            KeyValue::Time(t) => Value::Time(*t),
            KeyValue::TimeTz(micros, offset_secs) => Value::TimeTz {
                micros: *micros,
                offset_secs: *offset_secs,
            },
            KeyValue::Timestamp(t) => Value::Timestamp(*t),
            KeyValue::TimestampTz(t) => Value::TimestampTz(*t),
            KeyValue::Interval(months, days, micros) => Value::Interval {
                months: *months,
                days: *days,
                micros: *micros,
            },
            KeyValue::Uuid(u) => {
                let bytes = unb64(u)?;
                Value::Uuid(bytes.try_into().map_err(|_| {
                    Error::new(
                        ErrorKind::Data,
                        format!("stored incremental snapshot key {u:?} is not a 16-byte UUID"),
                    )
                })?)
            }
            KeyValue::Array(items) => Value::Array(
                items
                    .iter()
                    .map(KeyValue::to_value)
                    .collect::<Result<_>>()?,
            ),
        })
    }
}

/// Key values to their stored form; `None` when one is unavailable.
pub fn key_to_stored(values: &[Value]) -> Option<Vec<KeyValue>> {
    values.iter().map(KeyValue::from_value).collect()
}

/// Stored key values back to values.
pub fn key_from_stored(values: &[KeyValue]) -> Result<Vec<Value>> {
    values.iter().map(KeyValue::to_value).collect()
}

mod table_id {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::event::TableId;

    pub fn serialize<S: Serializer>(t: &TableId, s: S) -> Result<S::Ok, S::Error> {
        [&*t.database, &*t.schema, &*t.table].serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TableId, D::Error> {
        let [database, schema, table] = <[String; 3]>::deserialize(d)?;
        Ok(TableId::new(database, schema, table))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Progress {
        Progress {
            id: "k3x9".into(),
            tables: vec![
                PendingTable {
                    table: TableId::new("shop", "public", "orders"),
                    filter: Some("region = 'EU' AND note <> '#incremental='".into()),
                    surrogate_key: None,
                    signal_id: Some("sig-1".into()),
                },
                PendingTable {
                    table: TableId::new("shop", "public", "customers"),
                    filter: None,
                    surrogate_key: Some("email".into()),
                    signal_id: None,
                },
            ],
            begun: true,
            last_key: Some(vec![KeyValue::Int(1024), KeyValue::Text("EU".into())]),
            max_key: Some(vec![KeyValue::Int(99_999), KeyValue::Text("US".into())]),
            chunk_size: 1024,
            paused: true,
            chunks_done: 3,
            rows_emitted: 3072,
            windows: 4,
        }
    }

    #[test]
    fn progress_round_trips_through_json() {
        let p = sample();
        let text = p.encode();
        assert!(text.len() < 400, "{text}");
        assert_eq!(Progress::decode(&text).unwrap(), p);
        // Defaults for what a fresh snapshot leaves out.
        let minimal = r#"{"id":"a","tables":[],"chunk":8}"#;
        let m = Progress::decode(minimal).unwrap();
        assert!(!m.paused && !m.begun && m.last_key.is_none() && m.chunks_done == 0);
    }

    #[test]
    fn positions_carry_the_progress_and_give_it_back() {
        let p = sample();
        let text = compose("0/16B3748:3", Some(&p));
        let (stream, back) = decompose(&text).unwrap();
        assert_eq!(stream, "0/16B3748:3");
        assert_eq!(back, Some(p));
        assert_eq!(compose("0/1:0", None), "0/1:0");
        assert_eq!(decompose("0/1:0").unwrap(), ("0/1:0", None));
        let e = decompose("0/1:0#incremental={broken").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Data);
    }

    #[test]
    fn every_key_type_reads_back_as_the_same_value() {
        let values = vec![
            Value::Null,
            Value::Bool(true),
            Value::Int(-7),
            Value::UInt(u64::MAX),
            Value::Float32(0.1),
            Value::Float64(-2.5e300),
            Value::Decimal("12.340".into()),
            Value::Text("a \"quoted\" key".into()),
            Value::Bytes(vec![0, 255, 10]),
            Value::Json("{\"a\":1}".into()),
            Value::Date(-3),
            Value::Time(86_399_999_999),
            Value::TimeTz {
                micros: 5,
                offset_secs: -3600,
            },
            Value::Timestamp(1),
            Value::TimestampTz(-1),
            Value::Interval {
                months: 1,
                days: 2,
                micros: 3,
            },
            Value::Uuid([7; 16]),
            Value::Array(vec![Value::Int(1), Value::Text("x".into())]),
        ];
        let stored = key_to_stored(&values).unwrap();
        let json = serde_json::to_string(&stored).unwrap();
        let back: Vec<KeyValue> = serde_json::from_str(&json).unwrap();
        assert_eq!(key_from_stored(&back).unwrap(), values);
        assert_eq!(key_to_stored(&[Value::Unavailable]), None);
        assert!(KeyValue::Uuid("AAAA".into()).to_value().is_err());
    }
}
