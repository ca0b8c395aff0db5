//! Incremental snapshots (DBLog, as Debezium's) for PostgreSQL: what this source supplies to the
//! driver in [`connector_core::incremental`].
//!
//! - **Signals**: `source.signal_table` (Debezium's columns `id`, `type`, `data`) is added to the
//!   publication and read from the stream like a captured table, but its rows are never emitted:
//!   each inserted row is parsed into a signal and handed to the driver, in commit order.
//! - **Watermarks**: `pg_logical_emit_message(true, 'cdc_incremental', 'low:<id>')` (and
//!   `high:<id>`), each in a transaction of its own on the reader's own connection; they come back
//!   through the stream in commit order and are never emitted as message events (by any pipeline
//!   on the database). Transactional logical messages reach pgoutput from PostgreSQL 14 on.
//! - **Chunks**: `SELECT <columns> FROM <table> WHERE (<key>) > (<last>) AND (<key>) <= (<max>)
//!   [AND (<filter>)] ORDER BY <key> LIMIT n` on a plain (non-replication) connection, read in
//!   text form and converted exactly as streamed values are.
//! - **Position**: the progress rides behind the stream position of every checkpoint while a
//!   snapshot runs ([`progress::compose`]); [`crate::PgPosition::parse`] ignores it.
//!
//! Every streamed row event passes through [`Incremental::process`], which drops the signal
//! table's rows, turns watermarks into the chunk's `op: r` events, and lets the driver drop the
//! buffered rows of keys changed while a window is open.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
use connector_core::incremental::{
    progress, signal, ChunkReader, ChunkRequest, IncrementalSnapshot, Progress, Step, Watermark,
};
use connector_core::metrics::{MetricDef, MetricKind};
use connector_core::{
    ChangeEvent, Error, ErrorKind, Metrics, Op, Position, Result, Row, TableId, TableSchema, Value,
};
use rustls::ClientConfig;
use tokio_postgres::{Client, SimpleQueryMessage};
use tracing::{error, info};

use crate::catalog::{self, quote_ident, quote_literal, TableInfo};
use crate::config::ConnInfo;
use crate::decode::CONNECTOR;
use crate::error::pg_error;
use crate::position::PgPosition;
use crate::types::{convert, Conv, TypeCache};

/// Prefix of the watermark logical messages (never emitted as events).
pub const WATERMARK_PREFIX: &str = "cdc_incremental";
/// Oldest server whose pgoutput streams transactional logical messages (the watermarks).
pub const MIN_SERVER_VERSION: u32 = 140_000;

/// The newest rejected signal, for `cdc snapshot --status`: labels `signal` (its id) and
/// `reason`. Published only when a signal was rejected; one series at a time.
pub const LAST_SIGNAL_ERROR: MetricDef = MetricDef {
    name: "cdc_incremental_snapshot_last_signal_error_info",
    help: "The newest rejected incremental snapshot signal: its id and why (value 1).",
    kind: MetricKind::Gauge,
};

/// Whether `e` is a watermark message (of this or another pipeline).
pub fn is_watermark(e: &ChangeEvent) -> bool {
    e.op == Op::Message
        && e.message
            .as_ref()
            .is_some_and(|m| m.prefix == WATERMARK_PREFIX)
}

/// The incremental snapshot state of a streaming source: the driver, the chunk reader and the
/// signalling table.
pub struct Incremental {
    driver: IncrementalSnapshot,
    reader: PgChunkReader,
    signal: Option<TableId>,
    metrics: Arc<Metrics>,
    published_error: Option<connector_core::incremental::SignalError>,
}

impl Incremental {
    /// For a source capturing `tables` of `database`, resuming `resume` (the progress found in
    /// the stored position).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        database: Arc<str>,
        tables: &[TableInfo],
        types: &TypeCache,
        signal: Option<&TableInfo>,
        chunk_size: usize,
        resume: Option<Progress>,
        conn: ConnInfo,
        tls: Option<Arc<ClientConfig>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let captured: Vec<TableId> = tables.iter().map(|t| table_id(&database, t)).collect();
        if let Some(p) = &resume {
            info!(snapshot = %p.id, tables_left = p.tables.len(), chunks_done = p.chunks_done,
                "resuming the incremental snapshot at its next chunk");
        }
        let driver = IncrementalSnapshot::new(captured, chunk_size, resume);
        let mut types = types.clone();
        let tables = tables
            .iter()
            .map(|t| {
                let convs = t.columns.iter().map(|c| types.conv(c.type_oid)).collect();
                (
                    table_id(&database, t),
                    ReadTable {
                        info: t.clone(),
                        convs,
                        schema: Arc::new(t.schema(&database, &types)),
                    },
                )
            })
            .collect();
        Incremental {
            driver,
            reader: PgChunkReader {
                conn,
                tls,
                client: None,
                tables,
            },
            signal: signal.map(|t| table_id(&database, t)),
            metrics,
            published_error: None,
        }
    }

    /// Snapshot `tables` (new to the configuration, or all of them for `snapshot: incremental`).
    pub fn add_tables(&mut self, tables: &[TableId]) {
        self.driver.add_tables(tables);
    }

    /// The driver's status.
    pub fn status(&self) -> connector_core::incremental::Status {
        self.driver.status()
    }

    /// Read the next chunk if none is outstanding (the source has room).
    pub async fn step(&mut self) -> Result<Step> {
        self.driver.step(&mut self.reader).await
    }

    /// `checkpoint` with the snapshot's progress attached while one runs.
    pub fn compose(&self, checkpoint: PgPosition) -> Position {
        Position::new(progress::compose(
            &checkpoint.to_string(),
            self.driver.progress(),
        ))
    }

    /// Pass a batch of streamed events through the snapshot: signal rows are carried out and
    /// dropped, watermarks are replaced by the chunk's rows, every other row event is offered
    /// to the open window first (DBLog dedupe).
    pub fn process(&mut self, events: Vec<ChangeEvent>) -> Vec<ChangeEvent> {
        let running = self.driver.progress().map(|p| p.id.clone());
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            if is_watermark(&e) {
                self.on_watermark(&e, &mut out);
                continue;
            }
            let Some(table) = e.table.as_ref() else {
                out.push(e);
                continue;
            };
            if self.signal.as_ref() == Some(&table.id) {
                if e.op == Op::Create {
                    self.on_signal_row(&e);
                }
                continue;
            }
            self.driver.on_stream_event(&e);
            out.push(e);
        }
        let now = self.driver.progress().map(|p| p.id.as_str());
        if let Some(id) = running.as_deref().filter(|id| now != Some(*id)) {
            info!(snapshot = %id, "incremental snapshot finished");
        }
        self.driver.record_metrics(&self.metrics);
        let status = self.driver.status();
        if let Some(e) = status.errors.last() {
            if self.published_error.as_ref() != Some(e) {
                let reason = e.problem.to_string();
                self.metrics.set_info(
                    LAST_SIGNAL_ERROR,
                    &[("signal", e.id.as_str()), ("reason", reason.as_str())],
                );
                self.published_error = Some(e.clone());
            }
        }
        out
    }

    fn on_watermark(&mut self, e: &ChangeEvent, out: &mut Vec<ChangeEvent>) {
        let Some(m) = &e.message else { return };
        let Some(w) = std::str::from_utf8(&m.content)
            .ok()
            .and_then(Watermark::parse)
        else {
            return;
        };
        let rows = self.driver.on_watermark(&w, &e.position, e.commit_ts_us);
        let fields: Vec<(&'static str, Value)> = e
            .source
            .fields
            .iter()
            .filter(|(k, _)| *k != "db")
            .cloned()
            .collect();
        out.extend(rows.into_iter().map(|mut r| {
            r.source.connector = CONNECTOR;
            r.source.fields = fields.clone();
            r
        }));
    }

    fn on_signal_row(&mut self, e: &ChangeEvent) {
        let (Some(schema), Some(row)) = (e.table.as_ref(), e.after.as_ref()) else {
            return;
        };
        let col = |name: &str| {
            schema
                .column_index(name)
                .and_then(|i| row.get(i))
                .and_then(value_text)
        };
        let id = col("id").unwrap_or_default();
        let kind = col("type").unwrap_or_default();
        let data = col("data");
        let parsed = signal::parse_row(&id, &kind, data.as_deref(), self.driver.captured());
        let result = match parsed {
            Ok(record) => self.driver.on_signal(record),
            Err(e) => {
                self.driver.record_rejected(e.clone());
                Err(e)
            }
        };
        match result {
            Ok(()) => info!(signal = %id, kind = %kind, "incremental snapshot: signal accepted"),
            Err(e) => error!(signal = %e.id, "incremental snapshot: {e}"),
        }
    }
}

/// A signal column's text.
fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::Null | Value::Unavailable => None,
        Value::Text(s) | Value::Json(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        other => Some(format!("{other:?}")),
    }
}

fn table_id(database: &Arc<str>, t: &TableInfo) -> TableId {
    TableId::new(Arc::clone(database), t.schema.as_str(), t.name.as_str())
}

struct ReadTable {
    info: TableInfo,
    convs: Vec<Conv>,
    schema: Arc<TableSchema>,
}

/// The [`ChunkReader`] of PostgreSQL: reads and watermark writes on a connection of its own.
pub struct PgChunkReader {
    conn: ConnInfo,
    tls: Option<Arc<ClientConfig>>,
    client: Option<Client>,
    tables: HashMap<TableId, ReadTable>,
}

impl PgChunkReader {
    async fn client(&mut self) -> Result<&Client> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            let c = catalog::connect(&self.conn, self.tls.as_ref(), "cdc-incremental").await?;
            self.client = Some(c);
        }
        self.client
            .as_ref()
            .ok_or_else(|| Error::internal("no incremental snapshot connection"))
    }

    fn table(&self, table: &TableId) -> Result<&ReadTable> {
        self.tables.get(table).ok_or_else(|| {
            Error::internal(format!(
                "incremental snapshot of {table}, which is not captured"
            ))
        })
    }

    async fn query(
        &mut self,
        sql: &str,
        what: &str,
    ) -> Result<Vec<tokio_postgres::SimpleQueryRow>> {
        let client = self.client().await?;
        let messages = client
            .simple_query(sql)
            .await
            .map_err(|e| pg_error(e, what))?;
        Ok(messages
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => Some(r),
                _ => None,
            })
            .collect())
    }
}

/// `("a", "b")`.
fn key_list(columns: &[Arc<str>]) -> String {
    let cols: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    format!("({})", cols.join(", "))
}

/// A row constructor of key values as SQL literals, typed by the column they are compared with.
fn key_literals(table: &str, values: &[Value]) -> Result<String> {
    let mut out = String::from("(");
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&literal(table, v)?);
    }
    out.push(')');
    Ok(out)
}

/// A key value as an SQL literal: a quoted literal of unknown type, which the row comparison
/// resolves to the column's type; dates and times are computed from their epoch offsets.
fn literal(table: &str, v: &Value) -> Result<String> {
    let f = |x: f64| {
        if x.is_nan() {
            "'NaN'".to_string()
        } else if x.is_infinite() {
            if x > 0.0 {
                "'Infinity'".into()
            } else {
                "'-Infinity'".into()
            }
        } else {
            format!("'{x:?}'")
        }
    };
    Ok(match v {
        Value::Null => "NULL".into(),
        Value::Bool(b) => format!("'{b}'"),
        Value::Int(i) => format!("'{i}'"),
        Value::UInt(u) => format!("'{u}'"),
        Value::Float32(x) => f(f64::from(*x)),
        Value::Float64(x) => f(*x),
        Value::Decimal(d) => quote_literal(d),
        Value::Text(s) | Value::Json(s) => quote_literal(s),
        Value::Bytes(b) => {
            let mut s = String::with_capacity(b.len() * 2 + 4);
            s.push_str("'\\x");
            for byte in b {
                let _ = write!(s, "{byte:02x}");
            }
            s.push('\'');
            s
        }
        Value::Uuid(u) => {
            let mut s = String::with_capacity(38);
            s.push('\'');
            for (i, byte) in u.iter().enumerate() {
                if matches!(i, 4 | 6 | 8 | 10) {
                    s.push('-');
                }
                let _ = write!(s, "{byte:02x}");
            }
            s.push('\'');
            s
        }
        Value::Date(d) => format!("(DATE '1970-01-01' + {d})"),
        Value::Time(t) => format!("(TIME '00:00' + {t} * INTERVAL '1 microsecond')"),
        Value::Timestamp(t) => {
            format!("(TIMESTAMP '1970-01-01 00:00' + {t} * INTERVAL '1 microsecond')")
        }
        Value::TimestampTz(t) => {
            format!("(TIMESTAMPTZ '1970-01-01 00:00+00' + {t} * INTERVAL '1 microsecond')")
        }
        other => {
            return Err(Error::new(
                ErrorKind::Data,
                format!(
                    "table {table}: a key of this type ({other:?}) cannot be chunked by an \
                     incremental snapshot"
                ),
            ))
        }
    })
}

fn parse_row(t: &ReadTable, r: &tokio_postgres::SimpleQueryRow) -> Row {
    t.convs
        .iter()
        .enumerate()
        .map(|(i, conv)| match r.get(i) {
            None => Value::Null,
            Some(s) => convert(conv, s.as_bytes()).unwrap_or_else(|| Value::Text(s.to_string())),
        })
        .collect()
}

#[async_trait]
impl ChunkReader for PgChunkReader {
    async fn table_schema(&mut self, table: &TableId) -> Result<Arc<TableSchema>> {
        Ok(Arc::clone(&self.table(table)?.schema))
    }

    async fn estimate_rows(&mut self, table: &TableId) -> Result<Option<u64>> {
        let oid = self.table(table)?.info.oid;
        // A partitioned table has no rows of its own: sum its partitions' estimates.
        let sql = format!(
            "SELECT sum(reltuples)::float8 FROM pg_class WHERE reltuples >= 0 AND (oid = {oid} \
             OR oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = {oid}))"
        );
        let rows = self
            .query(&sql, &format!("estimating the rows of {table}"))
            .await?;
        Ok(rows
            .first()
            .and_then(|r| r.get(0))
            .and_then(|s| s.parse::<f64>().ok())
            .map(|n| n.max(0.0) as u64))
    }

    async fn max_key(
        &mut self,
        table: &TableId,
        key_columns: &[Arc<str>],
        filter: Option<&str>,
    ) -> Result<Option<Vec<Value>>> {
        let t = self.table(table)?;
        let mut idx = Vec::new();
        for k in key_columns {
            let i = t
                .info
                .columns
                .iter()
                .position(|c| c.name == **k)
                .ok_or_else(|| Error::internal(format!("{table} has no key column {k}")))?;
            idx.push(i);
        }
        let convs: Vec<Conv> = idx.iter().map(|i| t.convs[*i].clone()).collect();
        let order: Vec<String> = key_columns
            .iter()
            .map(|c| format!("{} DESC", quote_ident(c)))
            .collect();
        let cols: Vec<String> = key_columns.iter().map(|c| quote_ident(c)).collect();
        let mut sql = format!("SELECT {} FROM {}", cols.join(", "), t.info.quoted());
        if let Some(f) = filter {
            let _ = write!(sql, " WHERE ({f})");
        }
        let _ = write!(sql, " ORDER BY {} LIMIT 1", order.join(", "));
        let rows = self
            .query(&sql, &format!("reading the largest key of {table}"))
            .await?;
        Ok(rows.first().map(|r| {
            convs
                .iter()
                .enumerate()
                .map(|(i, conv)| match r.get(i) {
                    None => Value::Null,
                    Some(s) => {
                        convert(conv, s.as_bytes()).unwrap_or_else(|| Value::Text(s.to_string()))
                    }
                })
                .collect()
        }))
    }

    async fn read_chunk(&mut self, request: &ChunkRequest) -> Result<Vec<Row>> {
        let table = request.table.to_string();
        let t = self.table(&request.table)?;
        let cols: Vec<String> = t
            .info
            .columns
            .iter()
            .map(|c| quote_ident(&c.name))
            .collect();
        let key = key_list(&request.key_columns);
        let mut conditions = Vec::new();
        if let Some(after) = &request.after_key {
            conditions.push(format!("{key} > {}", key_literals(&table, after)?));
        }
        if let Some(max) = &request.max_key {
            conditions.push(format!("{key} <= {}", key_literals(&table, max)?));
        }
        if let Some(f) = &request.filter {
            conditions.push(format!("({f})"));
        }
        let mut sql = format!("SELECT {} FROM {}", cols.join(", "), t.info.quoted());
        if !conditions.is_empty() {
            let _ = write!(sql, " WHERE {}", conditions.join(" AND "));
        }
        let order: Vec<String> = request.key_columns.iter().map(|c| quote_ident(c)).collect();
        let _ = write!(
            sql,
            " ORDER BY {} LIMIT {}",
            order.join(", "),
            request.limit
        );
        let rows = self
            .query(&sql, &format!("reading a chunk of {table}"))
            .await?;
        let t = self.table(&request.table)?;
        Ok(rows.iter().map(|r| parse_row(t, r)).collect())
    }

    async fn write_watermark(&mut self, watermark: &Watermark) -> Result<()> {
        let sql = format!(
            "SELECT pg_logical_emit_message(true, {}, {})",
            quote_literal(WATERMARK_PREFIX),
            quote_literal(&watermark.encode())
        );
        self.query(&sql, "writing an incremental snapshot watermark")
            .await
            .map(|_| ())
    }
}

/// Incremental snapshots need PostgreSQL 14+: their watermarks are transactional logical
/// messages, which pgoutput streams from 14 on.
pub fn ensure_server_version(server_version: u32) -> Result<()> {
    if server_version < MIN_SERVER_VERSION {
        return Err(Error::new(
            ErrorKind::Precondition,
            format!(
                "incremental snapshots (`source.signal_table`, `snapshot: incremental`, \
                 `snapshot_new_tables`) need PostgreSQL 14 or newer (their watermarks are \
                 transactional logical messages); this server is {server_version}"
            ),
        ));
    }
    Ok(())
}

/// The captured tables an existing publication (created by an earlier run for `tables:`)
/// does not publish: tables added to the configuration since. They are added to it, to be
/// snapshotted incrementally. Nothing happens for a missing publication, a `FOR ALL TABLES` one,
/// or a server older than 14 (the publication check then names what is missing).
pub async fn add_new_tables(
    client: &Client,
    publication: &str,
    tables: &[TableInfo],
    server_version: u32,
) -> Result<Vec<TableInfo>> {
    if server_version < MIN_SERVER_VERSION {
        return Ok(Vec::new());
    }
    let Some(p) = catalog::publication(client, publication, server_version).await? else {
        return Ok(Vec::new());
    };
    if p.all_tables {
        return Ok(Vec::new());
    }
    let gaps = catalog::publication_gaps(&p, tables);
    let new: Vec<TableInfo> = tables
        .iter()
        .filter(|t| gaps.missing.iter().any(|(name, _)| *name == t.display()))
        .cloned()
        .collect();
    if new.is_empty() {
        return Ok(new);
    }
    let list: Vec<String> = new.iter().map(TableInfo::quoted).collect();
    let sql = format!(
        "ALTER PUBLICATION {} ADD TABLE {}",
        quote_ident(publication),
        list.join(", ")
    );
    info!(publication = %publication, tables = %list.join(", "), "adding tables new to the configuration to the publication");
    client.batch_execute(&sql).await.map_err(|e| {
        pg_error(e, format!("adding tables to publication {publication}"))
            .with_hint(format!("the user must own the tables, or run: {sql}"))
    })?;
    Ok(new)
}

/// Resolve the signalling table `schema.table`, check its columns and add it to the
/// publication when it is not in it.
pub async fn prepare_signal_table(
    client: &Client,
    schema: &str,
    table: &str,
    publication: &str,
    server_version: u32,
) -> Result<TableInfo> {
    let name = format!("{schema}.{table}");
    let key = "key `source.signal_table`";
    ensure_server_version(server_version)?;
    let mut found =
        catalog::resolve_tables(client, std::slice::from_ref(&name), false, server_version)
            .await
            .map_err(|e| {
                Error::new(e.kind(), format!("{key}: {}", e.message())).with_hint(format!(
                    "create it: CREATE TABLE {name} (id varchar(64) PRIMARY KEY, type varchar(32) \
                 NOT NULL, data text)"
                ))
            })?;
    let info = found
        .pop()
        .ok_or_else(|| Error::new(ErrorKind::Precondition, format!("{key}: {name} not found")))?;
    for col in ["id", "type", "data"] {
        if !info.columns.iter().any(|c| c.name == col) {
            return Err(Error::new(
                ErrorKind::Precondition,
                format!("{key}: table {name} has no column `{col}`"),
            )
            .with_hint("a signalling table has Debezium's columns `id`, `type` and `data`"));
        }
    }
    let p = catalog::publication(client, publication, server_version)
        .await?
        .ok_or_else(|| Error::internal(format!("publication {publication} is missing")))?;
    let covered = p.all_tables || p.tables.contains(&(info.schema.clone(), info.name.clone()));
    if !covered {
        let sql = format!(
            "ALTER PUBLICATION {} ADD TABLE {}",
            quote_ident(publication),
            info.quoted()
        );
        info!(publication = %publication, table = %name, "adding the signalling table to the publication");
        client.batch_execute(&sql).await.map_err(|e| {
            pg_error(e, format!("adding {name} to publication {publication}"))
                .with_hint(format!("the user must own the table, or run: {sql}"))
        })?;
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_become_literals_of_the_column_type() {
        let v = [
            Value::Int(-5),
            Value::Text("O'Brien".into()),
            Value::Uuid([0x12; 16]),
            Value::Bytes(vec![0xde, 0xad]),
            Value::Date(3),
        ];
        assert_eq!(
            key_literals("t", &v).unwrap(),
            "('-5', 'O''Brien', '12121212-1212-1212-1212-121212121212', '\\xdead', \
             (DATE '1970-01-01' + 3))"
        );
        let e = literal("public.t", &Value::Array(vec![])).unwrap_err();
        assert!(e.message().contains("public.t"), "{e}");
    }
}
