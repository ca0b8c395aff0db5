//! The change event model shared by every source and sink.
//!
//! A [`ChangeEvent`] is one committed change to one row (or a truncate, or a logical message). Its
//! rows are ordered, typed [`Value`]s aligned with the columns of its [`TableSchema`], which is shared
//! (`Arc`) between all events of a table until the table's shape changes.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use crate::column_type::ColumnType;

/// What happened to the row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// A row was inserted.
    Create,
    /// A row was updated.
    Update,
    /// A row was deleted.
    Delete,
    /// A row was read by the initial snapshot.
    Read,
    /// The table was truncated.
    Truncate,
    /// A logical decoding message (`pg_logical_emit_message`) or another non-row event.
    Message,
}

impl Op {
    /// The Debezium `op` code: `c`, `u`, `d`, `r`, `t`, `m`.
    pub fn code(self) -> &'static str {
        match self {
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Read => "r",
            Op::Truncate => "t",
            Op::Message => "m",
        }
    }

    /// A lower-case name, for logs, headers and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Read => "read",
            Op::Truncate => "truncate",
            Op::Message => "message",
        }
    }
}

/// Where a table lives: database, schema and table name. For MySQL the schema is the database.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId {
    /// The database (PostgreSQL database, MySQL database).
    pub database: Arc<str>,
    /// The schema (PostgreSQL namespace; for MySQL the database again).
    pub schema: Arc<str>,
    /// The table name.
    pub table: Arc<str>,
}

impl TableId {
    /// A table id from its three parts.
    pub fn new(
        database: impl Into<Arc<str>>,
        schema: impl Into<Arc<str>>,
        table: impl Into<Arc<str>>,
    ) -> Self {
        TableId {
            database: database.into(),
            schema: schema.into(),
            table: table.into(),
        }
    }
}

impl fmt::Display for TableId {
    /// `schema.table`, the form users write in `tables:` lists.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

/// One column of a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// Column name.
    pub name: Arc<str>,
    /// The source's name for the column type (`int4`, `numeric(10,2)`, `varchar(255)`,
    /// `bigint unsigned`, ...).
    pub type_name: Arc<str>,
    /// Whether the column accepts NULL.
    pub nullable: bool,
    /// Whether the column is part of the key (primary key or replica identity).
    pub key: bool,
    /// The structured type (what Debezium's Connect schema of the column depends on); a domain
    /// has its base type here.
    pub ty: ColumnType,
}

impl Column {
    /// A nullable, non-key column whose structured type is derived from `type_name`.
    pub fn new(name: impl Into<Arc<str>>, type_name: impl Into<Arc<str>>) -> Self {
        let type_name = type_name.into();
        Column {
            name: name.into(),
            ty: ColumnType::from_type_name(&type_name),
            type_name,
            nullable: true,
            key: false,
        }
    }

    /// Set the structured type.
    pub fn with_type(mut self, ty: ColumnType) -> Self {
        self.ty = ty;
        self
    }

    /// Mark this column as part of the key (and not nullable).
    pub fn key(mut self) -> Self {
        self.key = true;
        self.nullable = false;
        self
    }

    /// Mark this column as NOT NULL.
    pub fn not_null(mut self) -> Self {
        self.nullable = false;
        self
    }
}

/// The shape of a table at one point in its log: its id and ordered columns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSchema {
    /// Which table.
    pub id: TableId,
    /// Columns in table order; rows are aligned with them.
    pub columns: Vec<Column>,
}

impl TableSchema {
    /// A schema from its id and columns.
    pub fn new(id: TableId, columns: Vec<Column>) -> Self {
        TableSchema { id, columns }
    }

    /// Whether any column is part of the key.
    pub fn has_key(&self) -> bool {
        self.columns.iter().any(|c| c.key)
    }

    /// Index of the column named `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| &*c.name == name)
    }
}

/// One typed value. Exact values never pass through a float; a value the log did not carry is
/// [`Value::Unavailable`], never `Null`.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// The log did not carry this value (an unchanged TOAST column in PostgreSQL, a column left out
    /// of a minimal row image). Encoded as the documented placeholder, never as null.
    Unavailable,
    /// Boolean.
    Bool(bool),
    /// Signed integer of any width.
    Int(i64),
    /// Unsigned integer of any width (MySQL `BIGINT UNSIGNED` up to 2^64-1).
    UInt(u64),
    /// Single-precision float, kept as such so that it prints as written (`0.1`, not `0.100000001`).
    Float32(f32),
    /// Double-precision float.
    Float64(f64),
    /// An exact decimal as its canonical text (`-12.340`, `NaN`, `Infinity`).
    Decimal(Box<str>),
    /// Text, already converted to UTF-8.
    Text(String),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// A JSON document as its text.
    Json(String),
    /// A date as days since 1970-01-01 (negative before).
    Date(i32),
    /// A time of day as microseconds since midnight. MySQL `TIME` may be negative or exceed a day.
    Time(i64),
    /// A time of day with a zone offset east of UTC, in seconds.
    TimeTz {
        /// Microseconds since midnight, local to the offset.
        micros: i64,
        /// Offset east of UTC, in seconds.
        offset_secs: i32,
    },
    /// A timestamp without time zone as microseconds since 1970-01-01 00:00:00.
    Timestamp(i64),
    /// A point in time as microseconds since the Unix epoch, UTC.
    TimestampTz(i64),
    /// A duration of months, days and microseconds (PostgreSQL `interval`).
    Interval {
        /// Months.
        months: i32,
        /// Days.
        days: i32,
        /// Microseconds.
        micros: i64,
    },
    /// A UUID.
    Uuid([u8; 16]),
    /// An array; elements are values (nested arrays for multi-dimensional ones).
    Array(Vec<Value>),
}

impl Value {
    /// A rough count of heap and inline bytes this value holds, for the in-flight bound.
    pub fn estimated_size(&self) -> usize {
        const INLINE: usize = std::mem::size_of::<Value>();
        INLINE
            + match self {
                Value::Decimal(s) => s.len(),
                Value::Text(s) | Value::Json(s) => s.capacity(),
                Value::Bytes(b) => b.capacity(),
                Value::Array(items) => items.iter().map(Value::estimated_size).sum(),
                _ => 0,
            }
    }

    /// Whether this is `Null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// A row: values aligned with the columns of the event's [`TableSchema`].
pub type Row = Vec<Value>;

/// The transaction an event belongs to.
///
/// With Debezium's transaction metadata on (`transaction_metadata: true`), a sink writes a BEGIN
/// record before the event whose `order` is 1 and an END record after the event that carries
/// [`TxnInfo::end`]; a source sets `end` on the last event of each transaction (the counts are
/// only known at the commit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnInfo {
    /// The source's transaction id (PostgreSQL xid, MySQL GTID), as text: the same for every
    /// event of the transaction.
    pub id: Arc<str>,
    /// 1-based order of the event within its transaction.
    pub order: u64,
    /// 1-based order of the event among the events of its table within its transaction.
    pub table_order: u64,
    /// PostgreSQL: the LSNs Debezium appends to `id` in its transaction ids (`txId:LSN`): the
    /// event's own, and the transaction's first WAL record's (the BEGIN record's). `None`: the
    /// ids are `id` as it is.
    pub lsns: Option<TxnLsns>,
    /// Set on the last event of its transaction: what the END record carries.
    pub end: Option<Arc<TxnEnd>>,
}

impl TxnInfo {
    /// An event of transaction `id`, `order`-th in it and `table_order`-th of its table.
    pub fn new(id: Arc<str>, order: u64, table_order: u64) -> Self {
        TxnInfo {
            id,
            order,
            table_order,
            lsns: None,
            end: None,
        }
    }
}

/// The log positions of Debezium's PostgreSQL transaction ids (`txId:LSN`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnLsns {
    /// The event's LSN (the id in the event's `transaction` block).
    pub event: u64,
    /// The LSN of the transaction's first WAL record (the BEGIN record's id).
    pub begin: u64,
}

/// What Debezium's END record of a transaction carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnEnd {
    /// Events of the transaction.
    pub event_count: u64,
    /// Events per data collection (`schema.table`, or a logical message's collection), in the
    /// order each was first seen in the transaction.
    pub data_collections: Vec<(Arc<str>, u64)>,
    /// PostgreSQL: the LSN Debezium appends to the END record's id (the end of the commit
    /// record).
    pub lsn: Option<u64>,
}

/// Whether an event comes from the snapshot, in Debezium's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SnapshotMarker {
    /// Streamed from the log.
    #[default]
    False,
    /// Read by the snapshot.
    True,
    /// The first event of the snapshot.
    First,
    /// The last event of the snapshot.
    Last,
    /// Read by an incremental (signalled, chunked) snapshot.
    Incremental,
}

impl SnapshotMarker {
    /// Debezium's `source.snapshot` value.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotMarker::False => "false",
            SnapshotMarker::True => "true",
            SnapshotMarker::First => "first",
            SnapshotMarker::Last => "last",
            SnapshotMarker::Incremental => "incremental",
        }
    }
}

/// The connector-specific part of the envelope's `source` block.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct SourceInfo {
    /// Debezium connector name: `postgresql`, `mysql`, `generator`, ...
    pub connector: &'static str,
    /// Snapshot or stream.
    pub snapshot: SnapshotMarker,
    /// Further fields in order (`lsn`, `txId`, `file`, `pos`, `gtid`, ...).
    pub fields: Vec<(&'static str, Value)>,
}

/// A logical message carried by the log (operation [`Op::Message`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogicalMessage {
    /// The message prefix (`pg_logical_emit_message`'s second argument).
    pub prefix: String,
    /// The message content.
    pub content: Vec<u8>,
    /// Whether the message was emitted inside a transaction.
    pub transactional: bool,
}

/// An opaque, serialisable point in a source's log from which it can resume.
///
/// The runtime never looks inside: it stores positions and hands them back. Each source defines the
/// text form and the order of its own positions (a typed position that parses from and formats to
/// this text); positions of one source's events never decrease.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Position(Arc<str>);

impl Position {
    /// A position from its text form.
    pub fn new(text: impl Into<Arc<str>>) -> Self {
        Position(text.into())
    }

    /// The text form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Position({})", self.0)
    }
}

/// One committed change.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeEvent {
    /// What happened.
    pub op: Op,
    /// The table and its shape when the change was written. `None` only for [`Op::Message`].
    pub table: Option<Arc<TableSchema>>,
    /// The row before the change (updates and deletes, when the log carries it).
    pub before: Option<Row>,
    /// The row after the change (creates, updates, snapshot reads).
    pub after: Option<Row>,
    /// Commit time of the transaction, microseconds since the Unix epoch (for snapshot reads, the
    /// time the snapshot was taken).
    pub commit_ts_us: i64,
    /// The transaction and the event's order within it, when the source has transactions.
    pub txn: Option<TxnInfo>,
    /// Where this event is in the source's log.
    pub position: Position,
    /// Connector-specific fields of the `source` block.
    pub source: SourceInfo,
    /// The message, for [`Op::Message`].
    pub message: Option<LogicalMessage>,
    /// What a transform changed about the record this event becomes (topic, key, value,
    /// headers); `None` for an event written as the sink would write it.
    pub record: Option<Box<RecordOverride>>,
}

/// A part of a record given as is by a transform instead of being encoded from the event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawPart {
    /// No bytes: a null key or value.
    Null,
    /// These bytes.
    Bytes(Vec<u8>),
}

/// What transforms changed about the record(s) an event becomes. A sink honours every field it
/// can; the Kafka sink honours all of them.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct RecordOverride {
    /// The topic (destination) instead of the sink's own routing.
    pub topic: Option<Arc<str>>,
    /// The base of the Kafka Connect schema names (`<base>.Key`, `<base>.Value`,
    /// `<base>.Envelope`) instead of `<pipeline>.<schema>.<table>`.
    pub schema_name: Option<Arc<str>>,
    /// Fields appended to the key after the key columns (the route transform's
    /// `__dbz__physicalTableIdentifier`).
    pub key_fields: Vec<(Arc<str>, Value)>,
    /// The key bytes, written as is, instead of the encoded key columns.
    pub key: Option<RawPart>,
    /// The value bytes, written as is, instead of the encoded envelope (no tombstone follows).
    pub value: Option<RawPart>,
    /// Headers added to the record.
    pub headers: Vec<(Arc<str>, Vec<u8>)>,
}

impl ChangeEvent {
    /// A row event with no transaction info and an empty source block; fill in the rest by field.
    pub fn row(
        op: Op,
        table: Arc<TableSchema>,
        before: Option<Row>,
        after: Option<Row>,
        position: Position,
    ) -> Self {
        ChangeEvent {
            op,
            table: Some(table),
            before,
            after,
            commit_ts_us: 0,
            txn: None,
            position,
            source: SourceInfo::default(),
            message: None,
            record: None,
        }
    }

    /// A rough count of bytes this event holds in memory, for the in-flight bound.
    pub fn estimated_size(&self) -> usize {
        let row = |r: &Option<Row>| {
            r.as_ref()
                .map_or(0, |r| r.iter().map(Value::estimated_size).sum())
        };
        std::mem::size_of::<ChangeEvent>()
            + row(&self.before)
            + row(&self.after)
            + self.position.as_str().len()
            + self
                .source
                .fields
                .iter()
                .map(|(_, v)| 16 + v.estimated_size())
                .sum::<usize>()
            + self
                .message
                .as_ref()
                .map_or(0, |m| m.prefix.len() + m.content.len())
    }

    /// The row that identifies the key: `after` for creates, updates and reads, `before` for
    /// deletes (or `after` when there is no `before`).
    pub fn key_row(&self) -> Option<&Row> {
        match self.op {
            Op::Delete => self.before.as_ref().or(self.after.as_ref()),
            _ => self.after.as_ref().or(self.before.as_ref()),
        }
    }

    /// The value of column `index` for the key: from [`key_row`](ChangeEvent::key_row), or from
    /// the other image when the log did not carry it there (an update logged with a minimal row
    /// image marks unchanged key columns of `after` unavailable; `before` has them).
    pub fn key_value(&self, index: usize) -> Option<&Value> {
        let primary = self.key_row()?.get(index);
        match primary {
            Some(Value::Unavailable) | None => {
                let other = match self.op {
                    Op::Delete => self.after.as_ref(),
                    _ => self.before.as_ref(),
                };
                other
                    .and_then(|r| r.get(index))
                    .filter(|v| !matches!(v, Value::Unavailable))
                    .or(primary)
            }
            some => some,
        }
    }
}

/// A batch of events handed from a source to a sink, with the position to resume from once the
/// whole batch (and every earlier batch) is durable.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    /// Events in source order.
    pub events: Vec<ChangeEvent>,
    /// The position that becomes safe to resume from once this batch and all batches before it are
    /// durable. `None` when the batch ends at a point the source cannot resume from.
    pub checkpoint: Option<Position>,
}

impl Batch {
    /// A batch of events ending at `checkpoint`.
    pub fn new(events: Vec<ChangeEvent>, checkpoint: Option<Position>) -> Self {
        Batch { events, checkpoint }
    }

    /// A batch with no events that only moves the checkpoint (an idle source whose log advanced).
    pub fn checkpoint_only(position: Position) -> Self {
        Batch {
            events: Vec::new(),
            checkpoint: Some(position),
        }
    }

    /// Whether the batch carries neither events nor a checkpoint.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.checkpoint.is_none()
    }

    /// A rough count of bytes the batch holds, for the in-flight bound.
    pub fn estimated_size(&self) -> usize {
        std::mem::size_of::<Batch>()
            + self
                .events
                .iter()
                .map(ChangeEvent::estimated_size)
                .sum::<usize>()
    }
}
