//! The DBLog chunk window and its watermarks.
//!
//! A chunk is read between a low and a high watermark that the source writes into its own change
//! stream. While the window is open (the low watermark was streamed, the high one not yet) every
//! streamed change to a key of the chunk's table removes that key from the chunk's buffer: the
//! streamed change is at least as new as the row the chunk read. When the high watermark arrives
//! the rows left are emitted, at the high watermark's place in the stream, so no snapshot row older
//! than a streamed change is ever emitted after it.
//!
//! The stream and the chunk read run concurrently, so a streamed change may be seen before the
//! chunk's rows are handed over; the window remembers the keys it saw and drops those rows when
//! they come.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use crate::event::{ChangeEvent, Op, Row, TableId, TableSchema, Value};

/// Which edge of a chunk window a watermark marks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatermarkKind {
    /// Written before the chunk is read: the window opens when it is streamed.
    Low,
    /// Written after the chunk is read: the window closes when it is streamed.
    High,
}

/// A watermark: the edge and the id of the chunk window.
///
/// Its text form (the logical message content, or the `data` of a signal-table row) is
/// `low:<id>` or `high:<id>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watermark {
    /// Which edge.
    pub kind: WatermarkKind,
    /// The window id, unique across restarts.
    pub id: String,
}

impl Watermark {
    /// The text form.
    pub fn encode(&self) -> String {
        self.to_string()
    }

    /// Parse the text form; `None` when it is not a watermark.
    pub fn parse(text: &str) -> Option<Watermark> {
        let (kind, id) = text.split_once(':')?;
        let kind = match kind {
            "low" => WatermarkKind::Low,
            "high" => WatermarkKind::High,
            _ => return None,
        };
        if id.is_empty() {
            return None;
        }
        Some(Watermark {
            kind,
            id: id.to_string(),
        })
    }
}

impl fmt::Display for Watermark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            WatermarkKind::Low => "low",
            WatermarkKind::High => "high",
        };
        write!(f, "{kind}:{}", self.id)
    }
}

/// A key's values encoded into bytes that compare equal exactly when the keys are equal
/// (`Int(5)` and `UInt(5)` alike, floats by their bits).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyBytes(Vec<u8>);

impl KeyBytes {
    /// Encode `values` in order; `None` when a value is unavailable (the key is unknown).
    pub fn encode<'a>(values: impl IntoIterator<Item = &'a Value>) -> Option<KeyBytes> {
        let mut out = Vec::new();
        for v in values {
            encode_value(v, &mut out)?;
        }
        Some(KeyBytes(out))
    }
}

fn encode_value(v: &Value, out: &mut Vec<u8>) -> Option<()> {
    let mut bytes = |tag: u8, b: &[u8]| {
        out.push(tag);
        out.extend_from_slice(&(b.len() as u32).to_be_bytes());
        out.extend_from_slice(b);
    };
    match v {
        Value::Unavailable => return None,
        Value::Null => bytes(0, &[]),
        Value::Bool(b) => bytes(1, &[u8::from(*b)]),
        Value::Int(i) if *i >= 0 => bytes(2, &(*i as u64).to_be_bytes()),
        Value::Int(i) => bytes(3, &i.to_be_bytes()),
        Value::UInt(u) => bytes(2, &u.to_be_bytes()),
        Value::Float32(f) => bytes(4, &f64::from(*f).to_bits().to_be_bytes()),
        Value::Float64(f) => bytes(4, &f.to_bits().to_be_bytes()),
        Value::Decimal(d) => bytes(5, d.as_bytes()),
        Value::Text(s) => bytes(6, s.as_bytes()),
        Value::Bytes(b) => bytes(7, b),
        Value::Json(s) => bytes(8, s.as_bytes()),
        Value::Date(d) => bytes(9, &d.to_be_bytes()),
        Value::Time(t) => bytes(10, &t.to_be_bytes()),
        Value::TimeTz {
            micros,
            offset_secs,
        } => {
            let mut b = micros.to_be_bytes().to_vec();
            b.extend_from_slice(&offset_secs.to_be_bytes());
            bytes(11, &b)
        }
        Value::Timestamp(t) => bytes(12, &t.to_be_bytes()),
        Value::TimestampTz(t) => bytes(13, &t.to_be_bytes()),
        Value::Interval {
            months,
            days,
            micros,
        } => {
            let mut b = months.to_be_bytes().to_vec();
            b.extend_from_slice(&days.to_be_bytes());
            b.extend_from_slice(&micros.to_be_bytes());
            bytes(14, &b)
        }
        Value::Uuid(u) => bytes(15, u),
        Value::Array(items) => {
            out.push(16);
            out.extend_from_slice(&(items.len() as u32).to_be_bytes());
            for item in items {
                encode_value(item, out)?;
            }
        }
    }
    Some(())
}

/// What a streamed change did to an open window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dedupe {
    /// The change is not to the window's table, or the window is not open.
    Unrelated,
    /// The change's key was recorded; a buffered row for it (if any) was dropped.
    Removed,
    /// A truncate of the window's table: the whole buffer was dropped.
    Cleared,
}

/// One chunk window: the chunk's rows keyed by their key, and the keys streamed while it is open.
#[derive(Debug)]
pub struct ChunkWindow {
    id: String,
    table: TableId,
    key_columns: Vec<Arc<str>>,
    open: bool,
    /// Rows in key order; a dropped row leaves `None`.
    rows: Vec<Option<Row>>,
    index: HashMap<KeyBytes, usize>,
    /// Keys streamed while open, before the rows were handed over.
    seen: HashSet<KeyBytes>,
    /// Whether the rows were handed over ([`ChunkWindow::fill`]).
    filled: bool,
    /// A truncate was streamed while open before the rows came.
    truncated: bool,
    schema: Option<Arc<TableSchema>>,
}

impl ChunkWindow {
    /// A window `id` for a chunk of `table`, keyed by the columns `key_columns`.
    pub fn new(id: impl Into<String>, table: TableId, key_columns: Vec<Arc<str>>) -> Self {
        ChunkWindow {
            id: id.into(),
            table,
            key_columns,
            open: false,
            rows: Vec::new(),
            index: HashMap::new(),
            seen: HashSet::new(),
            filled: false,
            truncated: false,
            schema: None,
        }
    }

    /// The window's id (what its watermarks carry).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The chunk's table.
    pub fn table(&self) -> &TableId {
        &self.table
    }

    /// Whether the low watermark was streamed and the high one not yet.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Whether the chunk's rows were handed over.
    pub fn is_filled(&self) -> bool {
        self.filled
    }

    /// The low watermark was streamed: from now on streamed changes remove keys.
    pub fn open(&mut self) {
        self.open = true;
    }

    /// The key of `row` (aligned with `schema`), `None` when a key column is missing or
    /// unavailable.
    fn row_key(&self, schema: &TableSchema, row: &Row) -> Option<KeyBytes> {
        let mut values = Vec::with_capacity(self.key_columns.len());
        for name in &self.key_columns {
            values.push(row.get(schema.column_index(name)?)?);
        }
        KeyBytes::encode(values)
    }

    /// Hand over the chunk's rows (in key order, aligned with `schema`). Rows whose key was
    /// already streamed while the window was open are dropped at once.
    pub fn fill(&mut self, schema: Arc<TableSchema>, rows: Vec<Row>) {
        self.filled = true;
        if self.truncated {
            self.schema = Some(schema);
            return;
        }
        for row in rows {
            let Some(key) = self.row_key(&schema, &row) else {
                // A row without a key value cannot be deduplicated; it is kept (it can only
                // come from a surrogate key column holding NULL).
                self.rows.push(Some(row));
                continue;
            };
            if self.seen.contains(&key) {
                continue;
            }
            self.index.insert(key, self.rows.len());
            self.rows.push(Some(row));
        }
        self.seen.clear();
        self.schema = Some(schema);
    }

    /// A change was streamed: when the window is open and the change is to its table, drop the
    /// buffered row of its key (or the whole buffer for a truncate). A change whose key cannot
    /// be read (unavailable key columns) is a change to an unknown row: nothing can be dropped for
    /// it, and it is counted as unrelated.
    pub fn on_stream_event(&mut self, event: &ChangeEvent) -> Dedupe {
        if !self.open {
            return Dedupe::Unrelated;
        }
        let Some(schema) = event.table.as_deref() else {
            return Dedupe::Unrelated;
        };
        if schema.id != self.table {
            return Dedupe::Unrelated;
        }
        if event.op == Op::Truncate {
            self.rows.clear();
            self.index.clear();
            self.seen.clear();
            if !self.filled {
                self.truncated = true;
            }
            return Dedupe::Cleared;
        }
        let mut values = Vec::with_capacity(self.key_columns.len());
        for name in &self.key_columns {
            let Some(i) = schema.column_index(name) else {
                return Dedupe::Unrelated;
            };
            match event.key_value(i) {
                Some(v) => values.push(v),
                None => return Dedupe::Unrelated,
            }
        }
        let Some(key) = KeyBytes::encode(values) else {
            return Dedupe::Unrelated;
        };
        if self.filled {
            if let Some(i) = self.index.remove(&key) {
                self.rows[i] = None;
            }
        } else {
            self.seen.insert(key);
        }
        Dedupe::Removed
    }

    /// The rows still buffered, in key order.
    pub fn buffered(&self) -> usize {
        self.rows.iter().filter(|r| r.is_some()).count()
    }

    /// The high watermark was streamed: the rows left, with the schema they were read with.
    /// `None` when the rows were never handed over (a source that wrote the high watermark before
    /// [`fill`](ChunkWindow::fill): a bug).
    pub fn close(self) -> Option<(Arc<TableSchema>, Vec<Row>)> {
        let schema = self.schema?;
        Some((schema, self.rows.into_iter().flatten().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Column, Position};

    fn schema() -> Arc<TableSchema> {
        Arc::new(TableSchema::new(
            TableId::new("db", "public", "t"),
            vec![Column::new("id", "int4").key(), Column::new("v", "text")],
        ))
    }

    fn row(id: i64, v: &str) -> Row {
        vec![Value::Int(id), Value::Text(v.into())]
    }

    fn window() -> ChunkWindow {
        ChunkWindow::new("w1", TableId::new("db", "public", "t"), vec!["id".into()])
    }

    fn change(op: Op, id: i64) -> ChangeEvent {
        let (before, after) = match op {
            Op::Delete => (Some(row(id, "old")), None),
            Op::Update => (Some(row(id, "old")), Some(row(id, "new"))),
            _ => (None, Some(row(id, "new"))),
        };
        ChangeEvent::row(op, schema(), before, after, Position::new("1"))
    }

    fn ids(rows: &[Row]) -> Vec<i64> {
        rows.iter()
            .map(|r| match r[0] {
                Value::Int(i) => i,
                _ => panic!(),
            })
            .collect()
    }

    #[test]
    fn watermarks_round_trip() {
        for kind in [WatermarkKind::Low, WatermarkKind::High] {
            let w = Watermark {
                kind,
                id: "abc-7".into(),
            };
            assert_eq!(Watermark::parse(&w.encode()), Some(w));
        }
        assert_eq!(Watermark::parse("mid:x"), None);
        assert_eq!(Watermark::parse("low:"), None);
        assert_eq!(Watermark::parse("heartbeat"), None);
    }

    #[test]
    fn streamed_update_and_delete_inside_the_window_remove_buffered_rows() {
        let mut w = window();
        w.fill(schema(), (1..=5).map(|i| row(i, "snap")).collect());
        w.open();
        assert_eq!(w.on_stream_event(&change(Op::Update, 2)), Dedupe::Removed);
        assert_eq!(w.on_stream_event(&change(Op::Delete, 4)), Dedupe::Removed);
        assert_eq!(w.on_stream_event(&change(Op::Create, 9)), Dedupe::Removed);
        assert_eq!(w.buffered(), 3);
        let (_, rows) = w.close().unwrap();
        assert_eq!(ids(&rows), vec![1, 3, 5]);
    }

    #[test]
    fn changes_before_the_window_opens_do_not_remove_rows() {
        let mut w = window();
        w.fill(schema(), (1..=3).map(|i| row(i, "snap")).collect());
        assert_eq!(w.on_stream_event(&change(Op::Update, 2)), Dedupe::Unrelated);
        w.open();
        let (_, rows) = w.close().unwrap();
        assert_eq!(ids(&rows), vec![1, 2, 3]);
    }

    #[test]
    fn changes_streamed_before_the_rows_arrive_still_drop_them() {
        let mut w = window();
        w.open();
        w.on_stream_event(&change(Op::Delete, 1));
        w.on_stream_event(&change(Op::Update, 3));
        w.fill(schema(), (1..=4).map(|i| row(i, "snap")).collect());
        let (_, rows) = w.close().unwrap();
        assert_eq!(ids(&rows), vec![2, 4]);
    }

    #[test]
    fn other_tables_and_messages_are_unrelated() {
        let mut w = window();
        w.fill(schema(), vec![row(1, "snap")]);
        w.open();
        let other = Arc::new(TableSchema::new(
            TableId::new("db", "public", "u"),
            vec![Column::new("id", "int4").key()],
        ));
        let e = ChangeEvent::row(
            Op::Delete,
            other,
            Some(vec![Value::Int(1)]),
            None,
            Position::new("1"),
        );
        assert_eq!(w.on_stream_event(&e), Dedupe::Unrelated);
        let mut m = change(Op::Message, 1);
        m.table = None;
        assert_eq!(w.on_stream_event(&m), Dedupe::Unrelated);
        assert_eq!(w.buffered(), 1);
    }

    #[test]
    fn truncate_inside_the_window_drops_everything() {
        let mut w = window();
        w.fill(schema(), (1..=3).map(|i| row(i, "snap")).collect());
        w.open();
        let mut t = change(Op::Truncate, 0);
        t.after = None;
        assert_eq!(w.on_stream_event(&t), Dedupe::Cleared);
        assert!(w.close().unwrap().1.is_empty());
        // Truncated before the rows came: they are dropped when they come.
        let mut w = window();
        w.open();
        w.on_stream_event(&t);
        w.fill(schema(), vec![row(1, "snap")]);
        assert!(w.close().unwrap().1.is_empty());
    }

    #[test]
    fn keys_compare_by_value_across_integer_kinds_and_use_before_for_minimal_images() {
        assert_eq!(
            KeyBytes::encode([&Value::Int(5)]),
            KeyBytes::encode([&Value::UInt(5)])
        );
        assert_ne!(
            KeyBytes::encode([&Value::Int(-1)]),
            KeyBytes::encode([&Value::UInt(u64::MAX)])
        );
        assert_ne!(
            KeyBytes::encode([&Value::Text("ab".into()), &Value::Text("c".into())]),
            KeyBytes::encode([&Value::Text("a".into()), &Value::Text("bc".into())])
        );
        assert_eq!(KeyBytes::encode([&Value::Unavailable]), None);
        // An update whose after image lacks the key takes it from before.
        let mut w = window();
        w.fill(schema(), vec![row(1, "snap"), row(2, "snap")]);
        w.open();
        let e = ChangeEvent::row(
            Op::Update,
            schema(),
            Some(row(2, "old")),
            Some(vec![Value::Unavailable, Value::Text("new".into())]),
            Position::new("1"),
        );
        assert_eq!(w.on_stream_event(&e), Dedupe::Removed);
        assert_eq!(ids(&w.close().unwrap().1), vec![1]);
    }

    #[test]
    fn closing_without_rows_is_reported() {
        let mut w = window();
        w.open();
        assert!(w.close().is_none());
    }
}
