//! Incremental snapshots (Debezium's, after Netflix's DBLog): signalled, chunked in key order,
//! each chunk read between a low and a high watermark in the change stream, resumable from the
//! stored position, while streaming goes on.
//!
//! # What lives here and what each source supplies
//!
//! The machinery is the same for every source and lives in this module:
//! - [`signal`]: parsing Debezium's signals (a signalling-table row or a Kafka signal record) into
//!   a typed [`Signal`], checked against the captured tables, with typed [`SignalError`]s that
//!   name the signal id.
//! - [`window`]: the chunk window: buffering a chunk's rows by key, dropping a key when a change
//!   to it is streamed while the window is open, emitting the rest at the high watermark; the
//!   watermark text form.
//! - [`progress`]: the resumable state and how it rides in the source's position text.
//! - [`settings`]: the shared config keys (`signal_table`, `signal_topic`,
//!   `snapshot_chunk_size`, `snapshot_new_tables`) with their defaults and validation.
//! - [`IncrementalSnapshot`] (this file): the driver that ties them together, and its status and
//!   metrics.
//!
//! A source supplies only its own reads and writes, through [`ChunkReader`] and a few calls:
//! - **the signal-table read**: it captures the signalling table in its stream (PostgreSQL: adds
//!   it to the publication; MySQL: reads its binlog rows), never emits its rows, and hands each
//!   inserted row to [`signal::parse_row`] and the result to [`IncrementalSnapshot::on_signal`];
//!   a Kafka signal consumer hands records to [`signal::parse_kafka`].
//! - **the watermark write** ([`ChunkReader::write_watermark`]): something that appears in its
//!   own change stream in commit order (PostgreSQL: `pg_logical_emit_message` with the source's
//!   prefix; MySQL: a row in the signalling table). When the source streams one back it parses it
//!   with [`Watermark::parse`] and calls [`IncrementalSnapshot::on_watermark`], emitting the
//!   events that returns in place of the watermark.
//! - **the chunk query** ([`ChunkReader::read_chunk`]): `SELECT <columns> FROM <table> WHERE
//!   (<key>) > (<after_key>) AND (<key>) <= (<max_key>) [AND (<filter>)] ORDER BY <key> LIMIT n`,
//!   plus [`ChunkReader::max_key`], [`ChunkReader::estimate_rows`] and
//!   [`ChunkReader::table_schema`].
//! - **the position**: while a snapshot runs it attaches [`IncrementalSnapshot::progress`] to
//!   every checkpoint with [`progress::compose`], and at start gives back what
//!   [`progress::decompose`] found to [`IncrementalSnapshot::new`].
//! - **every streamed row event** goes through [`IncrementalSnapshot::on_stream_event`] before it
//!   is emitted, and [`IncrementalSnapshot::step`] is called when the source has room to read a
//!   chunk (it does nothing while a window is outstanding or the snapshot is paused).

pub mod progress;
pub mod settings;
pub mod signal;
pub mod window;

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{ErrorKind, Result};
use crate::event::{ChangeEvent, Op, Position, Row, SnapshotMarker, TableId, TableSchema, Value};
use crate::metrics::{self, Metrics};

pub use progress::{PendingTable, Progress};
pub use settings::IncrementalSettings;
pub use signal::{Signal, SignalError, SignalProblem, SignalRecord, SnapshotKind};
pub use window::{ChunkWindow, Dedupe, KeyBytes, Watermark, WatermarkKind};

/// Default rows per incremental snapshot chunk (`snapshot_chunk_size`), as Debezium's
/// `incremental.snapshot.chunk.size`.
pub const DEFAULT_SNAPSHOT_CHUNK_SIZE: usize = 1024;
/// Default of `snapshot_new_tables`: a table in `tables:` that was not captured before is
/// snapshotted incrementally on start.
pub const DEFAULT_SNAPSHOT_NEW_TABLES: bool = true;
/// How many rejected signals the status keeps (the newest).
pub const MAX_STATUS_ERRORS: usize = 16;

/// One chunk for the source to read.
#[derive(Clone, Debug, PartialEq)]
pub struct ChunkRequest {
    /// The table.
    pub table: TableId,
    /// Its schema as [`ChunkReader::table_schema`] gave it; rows are aligned with it.
    pub schema: Arc<TableSchema>,
    /// The columns to order and chunk by (the primary key, or the surrogate key).
    pub key_columns: Vec<Arc<str>>,
    /// Rows with a key greater than this; `None`: from the first row.
    pub after_key: Option<Vec<Value>>,
    /// Rows with a key at most this (the key range end read when the table was begun).
    pub max_key: Option<Vec<Value>>,
    /// At most this many rows.
    pub limit: usize,
    /// The signal's filter, ANDed to the condition.
    pub filter: Option<String>,
}

/// What a source supplies to an incremental snapshot: its reads and its watermark writes.
#[async_trait]
pub trait ChunkReader: Send {
    /// The table's current schema, key columns marked.
    async fn table_schema(&mut self, table: &TableId) -> Result<Arc<TableSchema>>;
    /// An estimate of the table's rows (catalog statistics), for the status.
    async fn estimate_rows(&mut self, table: &TableId) -> Result<Option<u64>>;
    /// The largest key (in `key_columns` order) of the rows passing `filter`; `None` when there
    /// are none.
    async fn max_key(
        &mut self,
        table: &TableId,
        key_columns: &[Arc<str>],
        filter: Option<&str>,
    ) -> Result<Option<Vec<Value>>>;
    /// Read one chunk: rows in key order, aligned with `request.schema`.
    async fn read_chunk(&mut self, request: &ChunkRequest) -> Result<Vec<Row>>;
    /// Write a watermark into the source's own change stream; it must come back through the
    /// stream after every change committed before it, and before every change committed after.
    async fn write_watermark(&mut self, watermark: &Watermark) -> Result<()>;
}

/// What [`IncrementalSnapshot::step`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// A chunk was read between newly written watermarks; wait for them in the stream.
    ChunkRead,
    /// A window is outstanding: its watermarks have not all been streamed yet.
    Waiting,
    /// Paused by a signal.
    Paused,
    /// No snapshot runs.
    Idle,
}

/// Progress and problems, for `/status`, `cdc snapshot --status` and the metrics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Status {
    /// The table being snapshotted.
    pub table: Option<String>,
    /// Tables left, the current one included.
    pub tables_left: usize,
    /// Chunks completed (all tables of this snapshot).
    pub chunks_done: u64,
    /// Rows emitted (all tables of this snapshot).
    pub rows_emitted: u64,
    /// Estimated rows of the current table.
    pub rows_estimated: Option<u64>,
    /// Paused by a signal.
    pub paused: bool,
    /// The newest rejected signals (at most [`MAX_STATUS_ERRORS`]).
    pub errors: Vec<SignalError>,
}

#[derive(Debug)]
struct CurrentTable {
    schema: Arc<TableSchema>,
    key_columns: Vec<Arc<str>>,
    estimated: Option<u64>,
}

#[derive(Debug)]
struct Outstanding {
    window: ChunkWindow,
    limit: usize,
    rows_read: usize,
    last_read: Option<Vec<Value>>,
}

/// What one read step came to.
enum Read {
    Chunk,
    TableDone,
    Rejected(SignalProblem),
}

/// The incremental snapshot driver a source calls. See the module docs for the protocol.
#[derive(Debug)]
pub struct IncrementalSnapshot {
    captured: Vec<TableId>,
    chunk_size: usize,
    progress: Option<Progress>,
    current: Option<CurrentTable>,
    outstanding: Option<Outstanding>,
    errors: Vec<SignalError>,
}

impl IncrementalSnapshot {
    /// A driver for a source capturing `captured`, reading `chunk_size` rows per chunk, resuming
    /// `resume` (the progress found in the stored position) if any.
    pub fn new(captured: Vec<TableId>, chunk_size: usize, resume: Option<Progress>) -> Self {
        let progress = resume.map(|mut p| {
            // Tables no longer captured (config edited) are dropped; when the current one goes,
            // the next starts from its beginning.
            let first = p.current().map(|t| t.table.clone());
            p.tables.retain(|t| captured.contains(&t.table));
            if p.current().map(|t| &t.table) != first.as_ref() {
                reset_table(&mut p);
            }
            let readable = |k: &Option<Vec<progress::KeyValue>>| {
                k.as_deref()
                    .is_none_or(|k| progress::key_from_stored(k).is_ok())
            };
            if !readable(&p.last_key) || !readable(&p.max_key) {
                tracing::warn!(
                    table = ?p.current().map(|t| t.table.to_string()),
                    "incremental snapshot: stored chunk keys are not readable; the table is read again from its start"
                );
                reset_table(&mut p);
            }
            p
        });
        let mut s = IncrementalSnapshot {
            captured,
            chunk_size: chunk_size.max(1),
            progress,
            current: None,
            outstanding: None,
            errors: Vec::new(),
        };
        s.finish_if_empty();
        s
    }

    /// The tables the source captures.
    pub fn captured(&self) -> &[TableId] {
        &self.captured
    }

    /// Whether a snapshot is running (possibly paused).
    pub fn is_running(&self) -> bool {
        self.progress.is_some()
    }

    /// The state to store with the stream position; `None` when no snapshot runs.
    pub fn progress(&self) -> Option<&Progress> {
        self.progress.as_ref()
    }

    /// Snapshot `tables` (the `snapshot: incremental` initial mode, tables new to the config),
    /// without filters, after the tables already pending.
    pub fn add_tables(&mut self, tables: &[TableId]) {
        let pending: Vec<PendingTable> = tables
            .iter()
            .map(|t| PendingTable {
                table: t.clone(),
                filter: None,
                surrogate_key: None,
                signal_id: None,
            })
            .collect();
        self.enqueue(pending);
    }

    fn enqueue(&mut self, tables: Vec<PendingTable>) {
        let chunk_size = self.chunk_size;
        let p = self.progress.get_or_insert_with(|| Progress {
            id: new_snapshot_id(),
            tables: Vec::new(),
            begun: false,
            last_key: None,
            max_key: None,
            chunk_size,
            paused: false,
            chunks_done: 0,
            rows_emitted: 0,
            windows: 0,
        });
        for t in tables {
            if !p.tables.iter().any(|q| q.table == t.table) {
                p.tables.push(t);
            }
        }
        self.finish_if_empty();
    }

    /// Carry out a signal. A signal that cannot be carried out is recorded in the status and
    /// returned, for the source to log; nothing else changes.
    pub fn on_signal(&mut self, record: SignalRecord) -> Result<(), SignalError> {
        let id = record.id.clone();
        match record.signal {
            Signal::ExecuteSnapshot {
                kind: SnapshotKind::Blocking,
                ..
            } => Err(self.reject(SignalError {
                id,
                problem: SignalProblem::Unsupported {
                    what: "a blocking snapshot (`type: blocking`)".into(),
                },
            })),
            Signal::ExecuteSnapshot {
                collections,
                additional_conditions,
                surrogate_key,
                ..
            } => {
                let tables = collections
                    .into_iter()
                    .map(|table| PendingTable {
                        filter: additional_conditions
                            .iter()
                            .find(|c| c.data_collection == table)
                            .map(|c| c.filter.clone()),
                        table,
                        surrogate_key: surrogate_key.clone(),
                        signal_id: Some(id.clone()),
                    })
                    .collect();
                self.enqueue(tables);
                Ok(())
            }
            Signal::StopSnapshot { collections } => {
                let Some(p) = self.progress.as_mut() else {
                    return Ok(());
                };
                let current = p.current().map(|t| t.table.clone());
                if collections.is_empty() {
                    p.tables.clear();
                } else {
                    p.tables.retain(|t| !collections.contains(&t.table));
                }
                if p.current().map(|t| &t.table) != current.as_ref() {
                    // The current table was stopped: its outstanding window is abandoned (its
                    // watermarks are ignored when they come) and the next table starts afresh.
                    self.outstanding = None;
                    self.current = None;
                    reset_table(p);
                }
                self.finish_if_empty();
                Ok(())
            }
            Signal::PauseSnapshot => {
                if let Some(p) = self.progress.as_mut() {
                    p.paused = true;
                }
                Ok(())
            }
            Signal::ResumeSnapshot => {
                if let Some(p) = self.progress.as_mut() {
                    p.paused = false;
                }
                Ok(())
            }
        }
    }

    fn reject(&mut self, e: SignalError) -> SignalError {
        if self.errors.len() == MAX_STATUS_ERRORS {
            self.errors.remove(0);
        }
        self.errors.push(e.clone());
        e
    }

    /// Record a signal the source could not parse, for the status.
    pub fn record_rejected(&mut self, e: SignalError) {
        self.reject(e);
    }

    /// A streamed change, before the source emits it: drops the key from an open window.
    pub fn on_stream_event(&mut self, event: &ChangeEvent) -> Dedupe {
        match self.outstanding.as_mut() {
            Some(o) => o.window.on_stream_event(event),
            None => Dedupe::Unrelated,
        }
    }

    /// The next chunk to read, without reading it: `None` while a window is outstanding, while
    /// paused, when no snapshot runs, or when the current table was not begun yet (see
    /// [`step`](IncrementalSnapshot::step), which begins tables).
    pub fn next_chunk_request(&self) -> Option<ChunkRequest> {
        if self.outstanding.is_some() {
            return None;
        }
        let p = self.progress.as_ref()?;
        if p.paused || !p.begun {
            return None;
        }
        let table = p.current()?;
        let current = self.current.as_ref()?;
        Some(ChunkRequest {
            table: table.table.clone(),
            schema: Arc::clone(&current.schema),
            key_columns: current.key_columns.clone(),
            after_key: p
                .last_key
                .as_deref()
                .and_then(|k| progress::key_from_stored(k).ok()),
            max_key: p
                .max_key
                .as_deref()
                .and_then(|k| progress::key_from_stored(k).ok()),
            limit: self.chunk_size,
            filter: table.filter.clone(),
        })
    }

    /// Read the next chunk if there is room: begin the current table if needed (schema, key,
    /// estimate, key range end), write the low watermark, read the chunk, write the high
    /// watermark. A table that cannot be read (no key, a failing filter: a non-retryable error)
    /// is dropped from the snapshot and recorded in the status; a retryable error is returned
    /// (the pipeline restarts and resumes from the stored progress).
    pub async fn step(&mut self, reader: &mut dyn ChunkReader) -> Result<Step> {
        loop {
            if self.outstanding.is_some() {
                return Ok(Step::Waiting);
            }
            let Some(p) = self.progress.as_ref() else {
                return Ok(Step::Idle);
            };
            if p.paused {
                return Ok(Step::Paused);
            }
            let Some(pending) = p.current().cloned() else {
                self.progress = None;
                return Ok(Step::Idle);
            };
            match self.read_step(reader, &pending).await {
                Ok(Read::Chunk) => return Ok(Step::ChunkRead),
                Ok(Read::TableDone) => self.table_done(),
                Ok(Read::Rejected(problem)) => self.drop_table(&pending, problem),
                Err(e) if e.is_retryable() => return Err(e),
                Err(e) => {
                    let problem = match e.kind() {
                        ErrorKind::Internal => return Err(e),
                        _ => SignalProblem::ReadFailed {
                            table: pending.table.to_string(),
                            detail: e.report(),
                        },
                    };
                    self.drop_table(&pending, problem);
                }
            }
        }
    }

    /// Begin the table if needed and read one chunk.
    async fn read_step(
        &mut self,
        reader: &mut dyn ChunkReader,
        pending: &PendingTable,
    ) -> Result<Read> {
        if self.current.is_none() {
            let schema = reader.table_schema(&pending.table).await?;
            let key_columns = match self.key_columns(&schema, pending) {
                Ok(k) => k,
                Err(problem) => return Ok(Read::Rejected(problem)),
            };
            let estimated = reader.estimate_rows(&pending.table).await?;
            self.current = Some(CurrentTable {
                schema,
                key_columns,
                estimated,
            });
        }
        let Some(current) = self.current.as_ref() else {
            return Ok(Read::TableDone);
        };
        let begun = self.progress.as_ref().is_some_and(|p| p.begun);
        if !begun {
            let max = reader
                .max_key(
                    &pending.table,
                    &current.key_columns,
                    pending.filter.as_deref(),
                )
                .await?;
            let Some(p) = self.progress.as_mut() else {
                return Ok(Read::TableDone);
            };
            p.begun = true;
            p.last_key = None;
            p.max_key = max.as_deref().and_then(progress::key_to_stored);
            if p.max_key.is_none() {
                return Ok(Read::TableDone);
            }
        }
        let Some(request) = self.next_chunk_request() else {
            return Ok(Read::TableDone);
        };
        let Some(p) = self.progress.as_mut() else {
            return Ok(Read::TableDone);
        };
        p.windows += 1;
        let id = format!("{}-{}", p.id, p.windows);
        let mut window = ChunkWindow::new(
            id.clone(),
            request.table.clone(),
            request.key_columns.clone(),
        );
        reader
            .write_watermark(&Watermark {
                kind: WatermarkKind::Low,
                id: id.clone(),
            })
            .await?;
        let rows = reader.read_chunk(&request).await?;
        let rows_read = rows.len();
        let last_read = rows.last().and_then(|r| {
            request
                .key_columns
                .iter()
                .map(|c| {
                    request
                        .schema
                        .column_index(c)
                        .and_then(|i| r.get(i).cloned())
                })
                .collect::<Option<Vec<_>>>()
        });
        window.fill(Arc::clone(&request.schema), rows);
        self.outstanding = Some(Outstanding {
            window,
            limit: request.limit,
            rows_read,
            last_read,
        });
        reader
            .write_watermark(&Watermark {
                kind: WatermarkKind::High,
                id,
            })
            .await?;
        Ok(Read::Chunk)
    }

    fn key_columns(
        &self,
        schema: &TableSchema,
        pending: &PendingTable,
    ) -> Result<Vec<Arc<str>>, SignalProblem> {
        match &pending.surrogate_key {
            Some(column) => match schema.column_index(column) {
                Some(i) => Ok(vec![Arc::clone(&schema.columns[i].name)]),
                None => Err(SignalProblem::UnknownSurrogateKey {
                    table: pending.table.to_string(),
                    column: column.clone(),
                }),
            },
            None if schema.has_key() => Ok(schema
                .columns
                .iter()
                .filter(|c| c.key)
                .map(|c| Arc::clone(&c.name))
                .collect()),
            None => Err(SignalProblem::NoKey {
                table: pending.table.to_string(),
            }),
        }
    }

    fn drop_table(&mut self, pending: &PendingTable, problem: SignalProblem) {
        let id = pending
            .signal_id
            .clone()
            .unwrap_or_else(|| "(configuration)".to_string());
        tracing::error!(table = %pending.table, signal = %id, "incremental snapshot: {problem}");
        self.reject(SignalError { id, problem });
        self.table_done();
    }

    fn table_done(&mut self) {
        self.current = None;
        self.outstanding = None;
        if let Some(p) = self.progress.as_mut() {
            if !p.tables.is_empty() {
                p.tables.remove(0);
            }
            reset_table(p);
        }
        self.finish_if_empty();
    }

    fn finish_if_empty(&mut self) {
        if self.progress.as_ref().is_some_and(|p| p.tables.is_empty()) {
            self.progress = None;
            self.current = None;
            self.outstanding = None;
        }
    }

    /// A watermark was streamed at `position` (commit time `commit_ts_us`). The low watermark of
    /// the outstanding window opens it; its high watermark closes it and returns the chunk's rows
    /// left, as `op: r` events with `source.snapshot = "incremental"` at `position`, for the
    /// source to complete (connector name, source fields) and emit in place of the watermark.
    /// Watermarks of other windows (an earlier run, a stopped table) are ignored.
    pub fn on_watermark(
        &mut self,
        watermark: &Watermark,
        position: &Position,
        commit_ts_us: i64,
    ) -> Vec<ChangeEvent> {
        let Some(o) = self.outstanding.as_mut() else {
            return Vec::new();
        };
        if o.window.id() != watermark.id {
            return Vec::new();
        }
        match watermark.kind {
            WatermarkKind::Low => {
                o.window.open();
                Vec::new()
            }
            WatermarkKind::High if !o.window.is_open() => {
                // The low watermark was not seen (the stream resumed between them): the window
                // could not deduplicate, so it is abandoned and the chunk read again.
                tracing::warn!(window = %watermark.id, "incremental snapshot: high watermark without its low one; reading the chunk again");
                self.outstanding = None;
                Vec::new()
            }
            WatermarkKind::High => self.close(position, commit_ts_us),
        }
    }

    fn close(&mut self, position: &Position, commit_ts_us: i64) -> Vec<ChangeEvent> {
        let Some(o) = self.outstanding.take() else {
            return Vec::new();
        };
        let Some((schema, rows)) = o.window.close() else {
            return Vec::new();
        };
        let events: Vec<ChangeEvent> = rows
            .into_iter()
            .map(|row| {
                let mut e = ChangeEvent::row(
                    Op::Read,
                    Arc::clone(&schema),
                    None,
                    Some(row),
                    position.clone(),
                );
                e.commit_ts_us = commit_ts_us;
                e.source.snapshot = SnapshotMarker::Incremental;
                e
            })
            .collect();
        let Some(p) = self.progress.as_mut() else {
            return events;
        };
        p.chunks_done += 1;
        p.rows_emitted += events.len() as u64;
        let last = o.last_read.as_deref().and_then(progress::key_to_stored);
        let reached_end = o.rows_read < o.limit
            || last.is_none()
            || match (&last, &p.max_key) {
                (Some(l), Some(m)) => stored_key_bytes(l) == stored_key_bytes(m),
                _ => true,
            };
        p.last_key = last;
        if reached_end {
            self.table_done();
        }
        events
    }

    /// Progress and problems.
    pub fn status(&self) -> Status {
        let p = self.progress.as_ref();
        Status {
            table: p.and_then(|p| p.current()).map(|t| t.table.to_string()),
            tables_left: p.map_or(0, |p| p.tables.len()),
            chunks_done: p.map_or(0, |p| p.chunks_done),
            rows_emitted: p.map_or(0, |p| p.rows_emitted),
            rows_estimated: self.current.as_ref().and_then(|c| c.estimated),
            paused: p.is_some_and(|p| p.paused),
            errors: self.errors.clone(),
        }
    }

    /// Publish the status as metrics (call per batch, not per event).
    pub fn record_metrics(&self, metrics: &Metrics) {
        let s = self.status();
        let table = s.table.as_deref().unwrap_or("");
        metrics.set(metrics::INCREMENTAL_TABLES_LEFT, &[], s.tables_left as f64);
        metrics.set(metrics::INCREMENTAL_CHUNKS, &[], s.chunks_done as f64);
        metrics.set(metrics::INCREMENTAL_ROWS, &[], s.rows_emitted as f64);
        metrics.set(
            metrics::INCREMENTAL_ROWS_ESTIMATED,
            &[("table", table)],
            s.rows_estimated.unwrap_or(0) as f64,
        );
        metrics.set(
            metrics::INCREMENTAL_SIGNAL_ERRORS,
            &[],
            s.errors.len() as f64,
        );
    }
}

fn reset_table(p: &mut Progress) {
    p.begun = false;
    p.last_key = None;
    p.max_key = None;
}

fn stored_key_bytes(k: &[progress::KeyValue]) -> Option<KeyBytes> {
    let values = progress::key_from_stored(k).ok()?;
    KeyBytes::encode(values.iter())
}

/// A snapshot id unique across runs: time and randomness, in base 36.
fn new_snapshot_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let r: u32 = rand::random();
    format!("{}{}", base36(nanos), base36(u64::from(r)))
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod driver_tests;
