//! The initial snapshot: every row of the configured tables as it was at the slot's consistent
//! point, read in parallel chunks under one exported snapshot.
//!
//! - The slot is created with `EXPORT_SNAPSHOT`; that replication connection stays open (idle)
//!   until every reader has imported the snapshot with `SET TRANSACTION SNAPSHOT` in a
//!   `REPEATABLE READ READ ONLY` transaction, then it is closed.
//! - Each table is cut into chunks of heap blocks (`ctid` ranges, TID range scans on PostgreSQL
//!   14+) sized to about `snapshot_chunk_rows` rows from the planner's statistics; the last chunk
//!   of a table is open-ended. `snapshot_parallelism` readers take chunks from a shared queue and
//!   stream them with `COPY (SELECT ...) TO STDOUT`, so memory holds a few batches, not a table.
//! - A partitioned table has no heap (`ctid` ranges on it mean nothing): each of its leaf
//!   partitions is chunked and read in its place, with the partitioned table's columns, and the
//!   rows are emitted under the partitioned table's name, once each (the stream publishes its
//!   changes under that name too, `publish_via_partition_root`). Without `SELECT` on every
//!   partition, the partitioned table is read whole in one chunk.
//! - Rows become [`Op::Read`] events. Streaming then starts at the consistent point: every
//!   transaction committed before it is in the snapshot and none after it, so there is neither a
//!   gap nor a duplicate.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use connector_core::{
    ChangeEvent, Error, ErrorKind, Metrics, Op, Position, Result, Row, SnapshotMarker, SourceInfo,
    TableSchema, Value,
};
use futures_util::StreamExt;
use rustls::ClientConfig;
use tokio::sync::mpsc;
use tokio_postgres::Client;
use tracing::{info, warn};

use crate::catalog::{self, quote_ident, quote_literal, TableInfo};
use crate::config::ConnInfo;
use crate::decode::CONNECTOR;
use crate::error::pg_error;
use crate::position::{Lsn, PgPosition};
use crate::protocol::ReplConnection;
use crate::replication::Tasks;
use crate::types::{convert, Conv};

/// Rows per heap block assumed when the table has no statistics yet.
const DEFAULT_ROWS_PER_BLOCK: f64 = 60.0;

/// What keeps the exported snapshot alive until the readers imported it.
pub enum Exporter {
    /// The replication connection that created the slot with `EXPORT_SNAPSHOT`.
    Replication(ReplConnection),
    /// A transaction that ran `pg_export_snapshot()` (`initial_only`, no slot).
    Transaction(Client),
}

/// One table to read.
pub struct SnapshotTable {
    /// Catalog info.
    pub info: TableInfo,
    /// Its shape, shared by its events.
    pub schema: Arc<TableSchema>,
    /// Conversions per column.
    pub convs: Vec<Conv>,
}

/// What the snapshot needs.
pub struct SnapshotSpec {
    /// Tables.
    pub tables: Vec<SnapshotTable>,
    /// Exported snapshot name.
    pub snapshot_name: String,
    /// The slot's consistent point (or the WAL position at export for `initial_only`).
    pub consistent: Lsn,
    /// Keeps the snapshot alive until imported.
    pub exporter: Exporter,
    /// Where to connect the readers.
    pub conn: ConnInfo,
    /// TLS for the readers.
    pub tls: Option<Arc<ClientConfig>>,
    /// Control connection (planning).
    pub client: Arc<Client>,
    /// Readers.
    pub parallelism: usize,
    /// Rows per chunk.
    pub chunk_rows: u64,
    /// Most events per message.
    pub batch_size: usize,
    /// Most bytes per message.
    pub max_batch_bytes: usize,
    /// `server_version_num`.
    pub server_version: u32,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

/// What a running snapshot sends.
pub enum SnapMsg {
    /// Rows read (events with marker `True`), and their rough bytes.
    Rows(Vec<ChangeEvent>, usize),
    /// Every table was read.
    Done,
}

/// A running snapshot.
pub struct SnapshotRun {
    /// Rows, then `Done`, or an error.
    pub rx: mpsc::Receiver<Result<SnapMsg>>,
    /// The consistent point.
    pub consistent: Lsn,
    _tasks: Tasks,
}

#[derive(Clone, Copy, Debug)]
struct Item {
    table: usize,
    /// The leaf partition to read (an index into `Shared::partitions`) in place of the
    /// partitioned table `table`: its rows are emitted under the partitioned table's name.
    part: Option<usize>,
    from_block: u64,
    to_block: Option<u64>,
    ranged: bool,
}

/// A leaf partition read in place of its partitioned table.
struct Partition {
    /// `"schema"."table"`.
    quoted: String,
    /// `schema.table`.
    display: String,
}

/// A relation's size, to cut it into chunks.
struct Size {
    pages: i64,
    tuples: f64,
    kind: String,
    blocks: i64,
}

struct Shared {
    tables: Vec<SnapshotTable>,
    partitions: Vec<Partition>,
    queue: Mutex<VecDeque<Item>>,
    remaining: Vec<AtomicUsize>,
    rows: Vec<AtomicU64>,
    tables_done: AtomicUsize,
    position: Position,
    consistent: Lsn,
    ts_us: i64,
    metrics: Arc<Metrics>,
    batch_size: usize,
    max_batch_bytes: usize,
    warned: Mutex<HashSet<(usize, usize)>>,
}

/// Plan the chunks and start the readers.
pub async fn start(spec: SnapshotSpec) -> Result<SnapshotRun> {
    let (items, partitions) = plan(&spec).await?;
    let n_tables = spec.tables.len();
    let mut remaining: Vec<usize> = vec![0; n_tables];
    for it in &items {
        remaining[it.table] += 1;
    }
    let metrics = Arc::clone(&spec.metrics);
    metrics.set(
        connector_core::metrics::SNAPSHOT_TABLES_TOTAL,
        &[],
        n_tables as f64,
    );
    metrics.set(connector_core::metrics::SNAPSHOT_TABLES_DONE, &[], 0.0);
    info!(
        tables = n_tables,
        chunks = items.len(),
        parallelism = spec.parallelism,
        consistent_point = %spec.consistent,
        "initial snapshot starting"
    );
    let readers = spec.parallelism.min(items.len()).max(1);
    let shared = Arc::new(Shared {
        position: PgPosition::Snapshot {
            consistent: spec.consistent,
        }
        .to_position(),
        consistent: spec.consistent,
        ts_us: connector_core::runtime::now_micros(),
        remaining: remaining.into_iter().map(AtomicUsize::new).collect(),
        rows: (0..n_tables).map(|_| AtomicU64::new(0)).collect(),
        tables_done: AtomicUsize::new(0),
        queue: Mutex::new(items.into()),
        tables: spec.tables,
        partitions,
        metrics,
        batch_size: spec.batch_size,
        max_batch_bytes: spec.max_batch_bytes,
        warned: Mutex::new(HashSet::new()),
    });
    let (tx, rx) = mpsc::channel(readers * 2);
    let mut tasks = Tasks::default();
    let consistent = spec.consistent;
    tasks.push(tokio::spawn(coordinate(
        shared,
        readers,
        spec.snapshot_name,
        spec.exporter,
        spec.conn,
        spec.tls,
        tx,
    )));
    Ok(SnapshotRun {
        rx,
        consistent,
        _tasks: tasks,
    })
}

/// The chunks to read, and the leaf partitions read in place of partitioned tables.
///
/// A partitioned table has no heap of its own (`ctid` ranges on it mean nothing): its leaf
/// partitions are chunked and read one by one, under the partitioned table's name and columns.
/// When a leaf may not be read directly (`SELECT` granted on the partitioned table only), the
/// partitioned table is read whole in one chunk instead.
async fn plan(spec: &SnapshotSpec) -> Result<(Vec<Item>, Vec<Partition>)> {
    let oids: Vec<u32> = spec.tables.iter().map(|t| t.info.oid).collect();
    let rows = spec
        .client
        .query(
            "SELECT c.oid, c.relpages::int8, c.reltuples::float8, c.relkind::text, \
               pg_relation_size(c.oid) / current_setting('block_size')::int8 \
             FROM pg_class c WHERE c.oid = ANY($1)",
            &[&oids],
        )
        .await
        .map_err(|e| pg_error(e, "sizing the tables for the snapshot"))?;
    let mut items = Vec::new();
    let mut partitions = Vec::new();
    for (i, t) in spec.tables.iter().enumerate() {
        let row = rows.iter().find(|r| r.get::<_, u32>(0) == t.info.oid);
        let size = match row {
            Some(r) => Size {
                pages: r.get(1),
                tuples: r.get(2),
                kind: r.get(3),
                blocks: r.get(4),
            },
            None => Size {
                pages: 0,
                tuples: -1.0,
                kind: "r".to_string(),
                blocks: 0,
            },
        };
        if size.kind == "p" && spec.server_version >= 120_000 {
            let leaves = leaf_partitions(spec, t).await?;
            if !leaves.is_empty() && leaves.iter().all(|(_, _, readable)| *readable) {
                for (part, size, _) in leaves {
                    partitions.push(part);
                    chunks(spec, &mut items, i, Some(partitions.len() - 1), &size);
                }
                continue;
            }
            if !leaves.is_empty() {
                info!(table = %t.info.display(), "some partitions may not be read directly \
                    (no SELECT on them): reading the partitioned table whole, in one chunk");
            }
        }
        chunks(spec, &mut items, i, None, &size);
    }
    Ok((items, partitions))
}

/// The leaf partitions of a partitioned table, their sizes, and whether this user may read them.
async fn leaf_partitions(
    spec: &SnapshotSpec,
    t: &SnapshotTable,
) -> Result<Vec<(Partition, Size, bool)>> {
    let rows = spec
        .client
        .query(
            "SELECT n.nspname::text, c.relname::text, c.relpages::int8, c.reltuples::float8, \
               c.relkind::text, pg_relation_size(c.oid) / current_setting('block_size')::int8, \
               has_table_privilege(c.oid, 'SELECT') \
             FROM pg_partition_tree($1::oid::regclass) p JOIN pg_class c ON c.oid = p.relid \
               JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE p.isleaf ORDER BY 1, 2",
            &[&t.info.oid],
        )
        .await
        .map_err(|e| {
            pg_error(
                e,
                format!(
                    "listing the partitions of {} for the snapshot",
                    t.info.display()
                ),
            )
        })?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let (schema, name): (String, String) = (r.get(0), r.get(1));
            (
                Partition {
                    quoted: format!("{}.{}", quote_ident(&schema), quote_ident(&name)),
                    display: format!("{schema}.{name}"),
                },
                Size {
                    pages: r.get(2),
                    tuples: r.get(3),
                    kind: r.get(4),
                    blocks: r.get(5),
                },
                r.get(6),
            )
        })
        .collect())
}

/// Cut one relation (a table, or a leaf partition `part` of table `table`) into heap-block
/// chunks; a relation without a heap, or a server without TID range scans, is one chunk.
fn chunks(
    spec: &SnapshotSpec,
    items: &mut Vec<Item>,
    table: usize,
    part: Option<usize>,
    size: &Size,
) {
    let ranged_ok = spec.server_version >= 140_000;
    if !ranged_ok || size.kind != "r" || size.blocks <= 0 {
        items.push(Item {
            table,
            part,
            from_block: 0,
            to_block: None,
            ranged: false,
        });
        return;
    }
    let per_block = if size.pages > 0 && size.tuples > 0.0 {
        size.tuples / size.pages as f64
    } else {
        DEFAULT_ROWS_PER_BLOCK
    };
    let step = ((spec.chunk_rows as f64 / per_block.max(1.0)).ceil() as u64).max(1);
    let blocks = size.blocks as u64;
    let mut from = 0;
    while from < blocks {
        let to = from + step;
        items.push(Item {
            table,
            part,
            from_block: from,
            to_block: (to < blocks).then_some(to),
            ranged: true,
        });
        from = to;
    }
}

async fn coordinate(
    shared: Arc<Shared>,
    readers: usize,
    snapshot_name: String,
    exporter: Exporter,
    conn: ConnInfo,
    tls: Option<Arc<ClientConfig>>,
    tx: mpsc::Sender<Result<SnapMsg>>,
) {
    let (imported_tx, mut imported_rx) = mpsc::channel::<()>(readers);
    let (done_tx, mut done_rx) = mpsc::channel::<Result<()>>(readers);
    let mut workers = Tasks::default();
    for _ in 0..readers {
        let (shared, name, conn, tls, tx, imported, done) = (
            Arc::clone(&shared),
            snapshot_name.clone(),
            conn.clone(),
            tls.clone(),
            tx.clone(),
            imported_tx.clone(),
            done_tx.clone(),
        );
        workers.push(tokio::spawn(async move {
            let r = read_chunks(shared, &name, &conn, tls.as_ref(), tx, imported).await;
            let _ = done.send(r).await;
        }));
    }
    drop((imported_tx, done_tx));
    let mut finished = 0;
    let mut imported = 0;
    let mut exporter = Some(exporter);
    let mut failure = None;
    while finished < readers {
        tokio::select! {
            Some(()) = imported_rx.recv(), if exporter.is_some() => {
                imported += 1;
                if imported == readers {
                    // Every reader holds the snapshot: release the exporting connection.
                    exporter = None;
                }
            }
            r = done_rx.recv() => match r {
                Some(Ok(())) => finished += 1,
                Some(Err(e)) => { failure = Some(e); break; }
                None => break,
            },
        }
    }
    drop(exporter);
    let msg = match failure {
        Some(e) => Err(e.context("initial snapshot")),
        None if finished == readers => {
            let rows: u64 = shared.rows.iter().map(|r| r.load(Ordering::Relaxed)).sum();
            info!(rows, tables = shared.tables.len(), "initial snapshot done");
            Ok(SnapMsg::Done)
        }
        None => Err(Error::internal("a snapshot reader ended without a result")),
    };
    let _ = tx.send(msg).await;
    drop(workers);
}

async fn read_chunks(
    shared: Arc<Shared>,
    snapshot_name: &str,
    conn: &ConnInfo,
    tls: Option<&Arc<ClientConfig>>,
    tx: mpsc::Sender<Result<SnapMsg>>,
    imported: mpsc::Sender<()>,
) -> Result<()> {
    let client = catalog::connect(conn, tls, "cdc-snapshot").await?;
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(|e| pg_error(e, "starting the snapshot transaction"))?;
    client
        .batch_execute(&format!(
            "SET TRANSACTION SNAPSHOT {}",
            quote_literal(snapshot_name)
        ))
        .await
        .map_err(|e| pg_error(e, "importing the exported snapshot"))?;
    client
        .batch_execute("SET LOCAL statement_timeout = 0")
        .await
        .map_err(|e| pg_error(e, "setting statement_timeout"))?;
    let _ = imported.send(()).await;
    loop {
        let item = match shared.queue.lock() {
            Ok(mut q) => q.pop_front(),
            Err(_) => return Err(Error::internal("snapshot queue poisoned")),
        };
        let Some(item) = item else {
            break;
        };
        read_chunk(&shared, &client, item, &tx).await?;
        if shared.remaining[item.table].fetch_sub(1, Ordering::AcqRel) == 1 {
            let t = &shared.tables[item.table];
            let done = shared.tables_done.fetch_add(1, Ordering::AcqRel) + 1;
            shared.metrics.set(
                connector_core::metrics::SNAPSHOT_TABLES_DONE,
                &[],
                done as f64,
            );
            info!(
                table = %t.info.display(),
                rows = shared.rows[item.table].load(Ordering::Relaxed),
                done,
                total = shared.tables.len(),
                "snapshot of table done"
            );
        }
    }
    let _ = client.batch_execute("COMMIT").await;
    Ok(())
}

async fn read_chunk(
    shared: &Shared,
    client: &Client,
    item: Item,
    tx: &mpsc::Sender<Result<SnapMsg>>,
) -> Result<()> {
    let t = &shared.tables[item.table];
    let cols: Vec<String> = t
        .info
        .columns
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect();
    let select = if cols.is_empty() {
        "*".to_string()
    } else {
        cols.join(", ")
    };
    let filter = match (item.ranged, item.to_block) {
        (false, _) => String::new(),
        (true, Some(to)) => format!(
            " WHERE ctid >= '({},0)'::tid AND ctid < '({to},0)'::tid",
            item.from_block
        ),
        (true, None) => format!(" WHERE ctid >= '({},0)'::tid", item.from_block),
    };
    // A leaf partition is read in place of its partitioned table, with the latter's columns
    // (by name: a partition's column order may differ) and under its name.
    let (from, doing) = match item.part.map(|p| &shared.partitions[p]) {
        Some(p) => (
            p.quoted.clone(),
            format!(
                "reading table {} (partition {}) for the snapshot",
                t.info.display(),
                p.display
            ),
        ),
        None => (
            t.info.quoted(),
            format!("reading table {} for the snapshot", t.info.display()),
        ),
    };
    let sql = format!("COPY (SELECT {select} FROM {from}{filter}) TO STDOUT");
    let what = || doing.clone();
    let stream = client
        .copy_out(&sql)
        .await
        .map_err(|e| pg_error(e, what()))?;
    futures_util::pin_mut!(stream);
    let mut pending: Vec<u8> = Vec::new();
    // One more than a batch: `next_batch` puts the row it held back in front of it.
    let mut events: Vec<ChangeEvent> = Vec::with_capacity(shared.batch_size.min(8192) + 1);
    let mut bytes = 0usize;
    let mut scratch = Vec::new();
    while let Some(data) = stream.next().await {
        let data = data.map_err(|e| pg_error(e, what()))?;
        // The server sends a row per message: parse straight from it unless a row was split.
        let split = !pending.is_empty();
        if split {
            pending.extend_from_slice(&data);
        }
        let buf: &[u8] = if split { &pending } else { &data };
        let mut consumed = 0;
        while let Some(nl) = memchr::memchr(b'\n', &buf[consumed..]) {
            let line = &buf[consumed..consumed + nl];
            consumed += nl + 1;
            bytes += line.len() + 160;
            let row = parse_line(shared, item.table, line, &mut scratch)?;
            events.push(ChangeEvent {
                record: None,
                op: Op::Read,
                table: Some(Arc::clone(&t.schema)),
                before: None,
                after: Some(row),
                commit_ts_us: shared.ts_us,
                txn: None,
                position: shared.position.clone(),
                source: SourceInfo {
                    connector: CONNECTOR,
                    snapshot: SnapshotMarker::True,
                    fields: vec![
                        (
                            "sequence",
                            Value::Text(format!("[null,\"{}\"]", shared.consistent.0)),
                        ),
                        ("lsn", Value::Int(shared.consistent.0 as i64)),
                    ],
                },
                message: None,
            });
            if events.len() >= shared.batch_size || bytes >= shared.max_batch_bytes {
                send(shared, item.table, &mut events, &mut bytes, tx).await?;
            }
        }
        if split {
            pending.drain(..consumed);
        } else {
            pending.extend_from_slice(&data[consumed..]);
        }
    }
    if !pending.is_empty() {
        return Err(Error::new(
            ErrorKind::Protocol,
            format!("{}: COPY data ended inside a row", what()),
        ));
    }
    send(shared, item.table, &mut events, &mut bytes, tx).await
}

async fn send(
    shared: &Shared,
    table: usize,
    events: &mut Vec<ChangeEvent>,
    bytes: &mut usize,
    tx: &mpsc::Sender<Result<SnapMsg>>,
) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let n = events.len() as u64;
    let batch = std::mem::replace(events, Vec::with_capacity(shared.batch_size.min(8192) + 1));
    tx.send(Ok(SnapMsg::Rows(batch, *bytes)))
        .await
        .map_err(|_| Error::new(ErrorKind::Connection, "the snapshot consumer is gone"))?;
    *bytes = 0;
    shared.rows[table].fetch_add(n, Ordering::Relaxed);
    let name = shared.tables[table].info.display();
    shared.metrics.add(
        connector_core::metrics::SNAPSHOT_ROWS,
        &[("table", name.as_str())],
        n,
    );
    Ok(())
}

/// One line of `COPY ... TO STDOUT` (text format) into a row.
fn parse_line(shared: &Shared, table: usize, line: &[u8], scratch: &mut Vec<u8>) -> Result<Row> {
    let t = &shared.tables[table];
    let mut row = Vec::with_capacity(t.convs.len());
    for (i, field) in line.split(|b| *b == b'\t').enumerate() {
        let Some(conv) = t.convs.get(i) else {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!("snapshot of {}: more fields than columns", t.info.display()),
            ));
        };
        if field == b"\\N" {
            row.push(Value::Null);
            continue;
        }
        let raw: &[u8] = if memchr::memchr(b'\\', field).is_some() {
            unescape(field, scratch);
            scratch
        } else {
            field
        };
        let v = match convert(conv, raw) {
            Some(v) => v,
            None => {
                let first = shared
                    .warned
                    .lock()
                    .map(|mut w| w.insert((table, i)))
                    .unwrap_or(false);
                if first {
                    warn!(table = %t.info.display(), column = %t.info.columns[i].name,
                        "a value did not parse as its type; passing it on as text");
                }
                Value::Text(String::from_utf8_lossy(raw).into_owned())
            }
        };
        row.push(v);
    }
    if row.len() != t.convs.len() {
        return Err(Error::new(
            ErrorKind::Protocol,
            format!(
                "snapshot of {}: {} fields for {} columns",
                t.info.display(),
                row.len(),
                t.convs.len()
            ),
        ));
    }
    Ok(row)
}

/// Undo COPY text escapes into `out`.
fn unescape(field: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        if b != b'\\' || i + 1 == field.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let n = field[i + 1];
        i += 2;
        match n {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = u32::from(n - b'0');
                let mut k = 0;
                while k < 2 && i < field.len() && (b'0'..=b'7').contains(&field[i]) {
                    v = v * 8 + u32::from(field[i] - b'0');
                    i += 1;
                    k += 1;
                }
                out.push(v as u8);
            }
            b'x' => {
                let mut v = 0u32;
                let mut k = 0;
                while k < 2 && i < field.len() && field[i].is_ascii_hexdigit() {
                    v = v * 16 + (field[i] as char).to_digit(16).unwrap_or(0);
                    i += 1;
                    k += 1;
                }
                if k == 0 {
                    out.push(b'x');
                } else {
                    out.push(v as u8);
                }
            }
            other => out.push(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_escapes_are_undone() {
        let mut out = Vec::new();
        unescape(b"a\\tb\\\\c\\nd\\101\\x41", &mut out);
        assert_eq!(out, b"a\tb\\c\ndAA");
        unescape(b"\\\\x00ff", &mut out);
        assert_eq!(out, b"\\x00ff");
    }
}
