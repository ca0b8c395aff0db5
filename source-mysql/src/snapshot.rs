//! The initial snapshot: every captured row read at one consistent point whose binlog position is
//! known exactly, so that streaming from that position afterwards has no gap and no duplicate.
//!
//! # Consistent point
//! - **MariaDB**: each snapshot connection runs `START TRANSACTION WITH CONSISTENT SNAPSHOT` and
//!   reads `binlog_snapshot_file` / `binlog_snapshot_position` from `SHOW STATUS`: the binlog
//!   position that matches its read view exactly, without any lock. Connections whose positions
//!   are equal share the same view (no transaction committed between them). The source opens
//!   `snapshot_parallelism` connections and retries a few rounds until all agree; if writes keep
//!   them apart, it takes `FLUSH TABLES WITH READ LOCK` for the few milliseconds it takes to
//!   start them (when the user may), and otherwise carries on with the connections that agree
//!   (at least the first one). The GTID set at the point is `BINLOG_GTID_POS(file, pos)`.
//! - **MySQL 8**: there is no `binlog_snapshot_*`; the source takes `FLUSH TABLES WITH READ LOCK`,
//!   starts the consistent-snapshot transactions, reads `SHOW BINARY LOG STATUS` (or `SHOW MASTER
//!   STATUS`) and `gtid_executed`, and unlocks: writes pause for milliseconds. This needs the
//!   RELOAD privilege.
//!
//! # Reading
//! Each table is split into chunks: tables with a single-column integer primary key into key
//! ranges of about `snapshot_chunk_rows` rows (from MIN/MAX and the row estimate), other tables
//! into one chunk. Connections take chunks from a shared queue and stream their rows (the text
//! protocol, one row at a time) into a bounded channel, so memory stays bounded whatever the
//! table size. Events are operation `read`, in no particular order between chunks.
//!
//! # Restart
//! Checkpoints during the snapshot carry `snapshot=1`: a restart from one runs the snapshot again
//! from a new consistent point (rows already delivered are delivered again). The last snapshot
//! batch's checkpoint is the consistent point itself, from which streaming starts.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use connector_core::metrics::{SNAPSHOT_ROWS, SNAPSHOT_TABLES_DONE, SNAPSHOT_TABLES_TOTAL};
use connector_core::{
    ChangeEvent, Error, ErrorKind, Metrics, Op, Position, Result, Row, SnapshotMarker, SourceInfo,
    TableSchema, Value,
};
use mysql_async::prelude::Queryable as _;
use mysql_async::Conn;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::{Settings, TableFilter};
use crate::ddl::parse_column_type;
use crate::decode::decode_text_value_owned;
use crate::error::classify;
use crate::position::BinlogPosition;
use crate::replication::{connect, exec, query, Flavor, ServerInfo};
use crate::schema::{Charset, Kind, TableDef};

/// Rows sent from a snapshot connection in one message.
const ROWS_PER_MESSAGE: usize = 256;
/// Messages buffered between the snapshot connections and `next_batch`.
const CHANNEL_MESSAGES: usize = 32;
/// Rounds of lock-free alignment before taking a brief read lock.
const ALIGN_ROUNDS: usize = 3;

fn quote(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

/// How the snapshot selects a column so that its text reads as the binlog value does.
fn select_expr(c: &crate::schema::ColumnDef) -> String {
    match c.kind {
        // The text protocol prints FLOAT with 6 significant digits; as a DOUBLE it is exact.
        Kind::Float => format!("CAST({} AS DOUBLE)", quote(&c.name)),
        _ => quote(&c.name),
    }
}

fn quote_str(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// Read the definitions of the captured tables from `information_schema`.
pub async fn load_table_defs(conn: &mut Conn, filter: &TableFilter) -> Result<Vec<TableDef>> {
    // MariaDB's system-versioned tables are `SYSTEM VERSIONED`, not `BASE TABLE`.
    let tables: Vec<(String, String, String)> = query(
        conn,
        "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES \
         WHERE TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') AND TABLE_SCHEMA NOT IN \
         ('mysql', 'information_schema', 'performance_schema', 'sys') \
         ORDER BY TABLE_SCHEMA, TABLE_NAME",
    )
    .await?;
    let versioned: HashSet<(String, String)> = tables
        .iter()
        .filter(|(s, t, ty)| ty == "SYSTEM VERSIONED" && filter.matches(s, t))
        .map(|(s, t, _)| (s.clone(), t.clone()))
        .collect();
    let tables: Vec<(String, String)> = tables
        .into_iter()
        .filter(|(s, t, _)| filter.matches(s, t))
        .map(|(s, t, _)| (s, t))
        .collect();
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let mut schemas: Vec<&str> = tables.iter().map(|(s, _)| s.as_str()).collect();
    schemas.dedup();
    let in_list = schemas
        .iter()
        .map(|s| quote_str(s))
        .collect::<Vec<_>>()
        .join(",");
    let cols: Vec<mysql_async::Row> = query(
        conn,
        &format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, \
             CHARACTER_SET_NAME, GENERATION_EXPRESSION FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA IN ({in_list}) ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION"
        ),
    )
    .await?;
    let pks: Vec<(String, String, String)> = query(
        conn,
        &format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA IN ({in_list}) AND INDEX_NAME = 'PRIMARY'"
        ),
    )
    .await?;
    let mut defs: HashMap<(String, String), TableDef> = tables
        .iter()
        .map(|(s, t)| {
            (
                (s.clone(), t.clone()),
                TableDef {
                    schema: s.as_str().into(),
                    table: t.as_str().into(),
                    columns: Vec::new(),
                },
            )
        })
        .collect();
    // Versioned tables with their own `GENERATED ALWAYS AS ROW START` column.
    let mut explicit_period: HashSet<(String, String)> = HashSet::new();
    for mut r in cols {
        let s: String = r.take(0).unwrap_or_default();
        let t: String = r.take(1).unwrap_or_default();
        let generation: Option<String> = r.take(6).unwrap_or_default();
        if generation.is_some_and(|g| g.eq_ignore_ascii_case("ROW START")) {
            explicit_period.insert((s.clone(), t.clone()));
        }
        let Some(def) = defs.get_mut(&(s, t)) else {
            continue;
        };
        let name: String = r.take(2).unwrap_or_default();
        let ty: String = r.take(3).unwrap_or_default();
        let nullable: String = r.take(4).unwrap_or_default();
        let cs: Option<String> = r.take(5).unwrap_or_default();
        let mut c = parse_column_type(&ty);
        c.name = name.into();
        c.nullable = nullable == "YES";
        if let Some(cs) = cs {
            if c.charset.as_ref().is_some_and(|x| !x.is_binary()) || c.kind == Kind::Json {
                c.charset = Some(Charset::named(&cs));
            }
        }
        if c.kind == Kind::Json && c.charset.is_some() {
            // MySQL's JSON has no charset column; MariaDB reports its JSON as longtext.
            c.charset = None;
        }
        def.columns.push(c);
    }
    for (s, t, col) in pks {
        if let Some(def) = defs.get_mut(&(s, t)) {
            if let Some(i) = def.index_of(&col) {
                def.columns[i].key = true;
                def.columns[i].nullable = false;
            }
        }
    }
    // The implicit period columns are in every row image (after the other columns) but not in
    // information_schema: add them, so that the snapshot selects what the stream carries.
    for key in versioned.difference(&explicit_period) {
        if let Some(def) = defs.get_mut(key) {
            let keyed = def.columns.iter().any(|c| c.key);
            def.columns
                .extend(crate::schema::ColumnDef::system_versioning_columns(keyed));
        }
    }
    let mut out: Vec<TableDef> = defs.into_values().collect();
    out.sort_by(|a, b| (&a.schema, &a.table).cmp(&(&b.schema, &b.table)));
    Ok(out)
}

async fn session_setup(conn: &mut Conn) -> Result<()> {
    exec(
        conn,
        "SET SESSION time_zone = '+00:00', NAMES utf8mb4, SESSION net_write_timeout = 86400, \
         SESSION net_read_timeout = 86400, SESSION wait_timeout = 86400",
    )
    .await?;
    exec(
        conn,
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    )
    .await
}

async fn start_snapshot_txn(conn: &mut Conn) -> Result<()> {
    exec(conn, "START TRANSACTION WITH CONSISTENT SNAPSHOT").await
}

async fn maria_snapshot_point(conn: &mut Conn) -> Result<(String, u64)> {
    let rows: Vec<(String, String)> =
        query(conn, "SHOW SESSION STATUS LIKE 'binlog_snapshot_%'").await?;
    let mut file = None;
    let mut pos = None;
    for (k, v) in rows {
        match k.to_ascii_lowercase().as_str() {
            "binlog_snapshot_file" => file = Some(v),
            "binlog_snapshot_position" => pos = v.parse::<u64>().ok(),
            _ => {}
        }
    }
    match (file, pos) {
        (Some(f), Some(p)) if !f.is_empty() => Ok((f, p)),
        _ => Err(Error::new(
            ErrorKind::Precondition,
            "the server did not report binlog_snapshot_file/position",
        )
        .with_hint("enable the binary log (log_bin) on the server")),
    }
}

/// Open the snapshot connections at one consistent point; returns them and the point.
async fn open_consistent(
    settings: &Settings,
    info: &ServerInfo,
) -> Result<(Vec<Conn>, BinlogPosition)> {
    let n = settings.config.snapshot_parallelism;
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let mut c = connect(settings).await?;
        session_setup(&mut c).await?;
        conns.push(c);
    }
    match info.flavor {
        Flavor::MariaDb => {
            let mut points = Vec::new();
            for round in 0..=ALIGN_ROUNDS {
                let mut locked = false;
                if round == ALIGN_ROUNDS && n > 1 {
                    match exec(&mut conns[0], "FLUSH TABLES WITH READ LOCK").await {
                        Ok(()) => locked = true,
                        Err(e) => info!(
                            error = %e.report(),
                            "cannot take a brief read lock to align the snapshot connections; \
                             reading with those that agree"
                        ),
                    }
                }
                points.clear();
                for c in conns.iter_mut() {
                    start_snapshot_txn(c).await?;
                    points.push(maria_snapshot_point(c).await?);
                }
                if locked {
                    exec(&mut conns[0], "UNLOCK TABLES").await?;
                }
                if round == ALIGN_ROUNDS || points.iter().all(|p| *p == points[0]) {
                    break;
                }
                for c in conns.iter_mut() {
                    exec(c, "COMMIT").await?;
                }
            }
            // Keep the largest group that agrees (at least one connection).
            let mut best = points[0].clone();
            let mut best_count = 0;
            for p in &points {
                let count = points.iter().filter(|q| *q == p).count();
                if count > best_count {
                    best = p.clone();
                    best_count = count;
                }
            }
            let mut kept = Vec::new();
            for (c, p) in conns.into_iter().zip(points.iter()) {
                if *p == best {
                    kept.push(c);
                } else {
                    let _ = c.disconnect().await;
                }
            }
            if kept.len() < n {
                warn!(
                    connections = kept.len(),
                    configured = n,
                    "writes kept the snapshot connections from sharing one point; reading with fewer"
                );
            }
            let gtid: Vec<Option<String>> = query(
                &mut kept[0],
                &format!("SELECT BINLOG_GTID_POS({}, {})", quote_str(&best.0), best.1),
            )
            .await?;
            let gtids = gtid.into_iter().flatten().next();
            Ok((kept, BinlogPosition::new(best.0, best.1, gtids)))
        }
        Flavor::MySql => {
            exec(&mut conns[0], "FLUSH TABLES WITH READ LOCK")
                .await
                .map_err(|e| {
                    e.context("taking the brief read lock that aligns the snapshot with the binlog")
                        .with_hint("GRANT RELOAD ON *.* TO the user (MySQL needs FLUSH TABLES WITH READ LOCK for a consistent snapshot)")
                })?;
            let result = async {
                for c in conns.iter_mut() {
                    start_snapshot_txn(c).await?;
                }
                crate::replication::current_position(&mut conns[0], info).await
            }
            .await;
            exec(&mut conns[0], "UNLOCK TABLES").await?;
            Ok((conns, result?))
        }
    }
}

/// One unit of snapshot work.
#[derive(Clone, Debug)]
struct Chunk {
    table: usize,
    sql: String,
}

enum Msg {
    Rows(usize, Vec<Row>),
    ChunkDone(usize),
    WorkerDone,
}

/// A running snapshot.
pub struct Snapshot {
    rx: mpsc::Receiver<Result<Msg>>,
    tasks: Vec<JoinHandle<()>>,
    workers_left: usize,
    /// The consistent point streaming continues from.
    pub point: BinlogPosition,
    /// The definitions read (they seed the schema tracker).
    pub defs: Vec<TableDef>,
    schemas: Vec<Arc<TableSchema>>,
    chunks_left: Vec<usize>,
    tables_done: usize,
    started_us: i64,
    emitted_any: bool,
    held: Option<ChangeEvent>,
    position: Position,
    metrics: Arc<Metrics>,
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Snapshot {
    /// Start a snapshot of the captured tables.
    pub async fn start(
        settings: &Settings,
        info: &ServerInfo,
        metrics: Arc<Metrics>,
    ) -> Result<Snapshot> {
        let started_us = connector_core::runtime::now_micros();
        let (mut conns, point) = open_consistent(settings, info).await?;
        let defs = load_table_defs(&mut conns[0], &settings.filter).await?;
        let schemas: Vec<Arc<TableSchema>> = defs.iter().map(|d| Arc::new(d.to_schema())).collect();
        let mut chunks = VecDeque::new();
        let mut chunks_left = vec![0usize; defs.len()];
        for (i, d) in defs.iter().enumerate() {
            let list = d
                .columns
                .iter()
                .map(select_expr)
                .collect::<Vec<_>>()
                .join(", ");
            let from = format!("{}.{}", quote(&d.schema), quote(&d.table));
            // (A versioned table's hidden row_end is in its key, but the current rows, the only
            // ones read, have one row_end: the other key columns split them.)
            let pk: Vec<&crate::schema::ColumnDef> =
                d.columns.iter().filter(|c| c.key && !c.hidden).collect();
            let int_pk = (pk.len() == 1
                && matches!(
                    pk[0].kind,
                    Kind::TinyInt | Kind::SmallInt | Kind::MediumInt | Kind::Int | Kind::BigInt
                ))
            .then(|| pk[0]);
            let mut table_chunks = Vec::new();
            if let Some(k) = int_pk {
                let col = quote(&k.name);
                let sql = format!(
                    "SELECT CAST(MIN({col}) AS CHAR), CAST(MAX({col}) AS CHAR) FROM {from}"
                );
                let r: Vec<(Option<String>, Option<String>)> = query(&mut conns[0], &sql).await?;
                let est: Vec<Option<u64>> = query(
                    &mut conns[0],
                    &format!(
                        "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} \
                         AND TABLE_NAME = {}",
                        quote_str(&d.schema),
                        quote_str(&d.table)
                    ),
                )
                .await?;
                let est = est.into_iter().flatten().next().unwrap_or(0);
                if let Some((Some(lo), Some(hi))) = r.into_iter().next() {
                    let lo: i128 = lo.parse().unwrap_or(0);
                    let hi: i128 = hi.parse().unwrap_or(0);
                    let n =
                        (est / settings.config.snapshot_chunk_rows + 1).clamp(1, 10_000) as i128;
                    let step = ((hi - lo + 1) / n).max(1);
                    let mut a = lo;
                    while a <= hi {
                        let b = if a + step > hi { hi } else { a + step - 1 };
                        table_chunks.push(format!(
                            "SELECT {list} FROM {from} WHERE {col} BETWEEN {a} AND {b}"
                        ));
                        a = b + 1;
                    }
                }
            } else {
                table_chunks.push(format!("SELECT {list} FROM {from}"));
            }
            chunks_left[i] = table_chunks.len();
            for sql in table_chunks {
                chunks.push_back(Chunk { table: i, sql });
            }
        }
        let tables_done = chunks_left.iter().filter(|left| **left == 0).count();
        metrics.set(SNAPSHOT_TABLES_TOTAL, &[], defs.len() as f64);
        metrics.set(SNAPSHOT_TABLES_DONE, &[], tables_done as f64);
        info!(
            tables = defs.len(),
            chunks = chunks.len(),
            connections = conns.len(),
            point = %point,
            "starting the snapshot"
        );
        let queue = Arc::new(Mutex::new(chunks));
        let (tx, rx) = mpsc::channel(CHANNEL_MESSAGES);
        let defs_arc = Arc::new(defs.clone());
        let workers_left = conns.len();
        let tasks = conns
            .into_iter()
            .map(|conn| {
                tokio::spawn(worker(
                    conn,
                    Arc::clone(&queue),
                    Arc::clone(&defs_arc),
                    tx.clone(),
                ))
            })
            .collect();
        let mut flagged = point.clone();
        flagged.snapshot = true;
        Ok(Snapshot {
            rx,
            tasks,
            workers_left,
            position: flagged.to_position(),
            point,
            defs,
            schemas,
            chunks_left,
            tables_done,
            started_us,
            emitted_any: false,
            held: None,
            metrics,
        })
    }

    fn event(&mut self, table: usize, row: Row) -> ChangeEvent {
        let marker = if self.emitted_any {
            SnapshotMarker::True
        } else {
            self.emitted_any = true;
            SnapshotMarker::First
        };
        ChangeEvent {
            record: None,
            op: Op::Read,
            table: Some(Arc::clone(&self.schemas[table])),
            before: None,
            after: Some(row),
            commit_ts_us: self.started_us,
            txn: None,
            position: self.position.clone(),
            source: SourceInfo {
                connector: "mysql",
                snapshot: marker,
                fields: vec![
                    ("server_id", Value::UInt(0)),
                    ("gtid", Value::Null),
                    ("file", Value::Text(self.point.file.clone())),
                    ("pos", Value::UInt(self.point.pos)),
                    ("row", Value::UInt(0)),
                    ("thread", Value::Null),
                ],
            },
            message: None,
        }
    }

    /// The next events, up to `max` and `wait`; `Ok((events, true))` when the snapshot is complete
    /// (the last event is marked `last`).
    pub async fn next(&mut self, max: usize, wait: Duration) -> Result<(Vec<ChangeEvent>, bool)> {
        let deadline = tokio::time::Instant::now() + wait;
        // Sized up front: growing it by doubling copied each batch twice over.
        let mut out: Vec<ChangeEvent> = Vec::with_capacity(max.min(16_384));
        let mut counts: HashMap<usize, u64> = HashMap::new();
        let mut finished = false;
        while out.len() < max {
            if self.workers_left == 0 {
                finished = true;
                break;
            }
            let msg = if out.is_empty() {
                match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                    Ok(m) => m,
                    Err(_) => break,
                }
            } else {
                match self.rx.try_recv() {
                    Ok(m) => Some(m),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                }
            };
            let Some(msg) = msg else {
                return Err(Error::internal(
                    "the snapshot workers stopped without a result",
                ));
            };
            match msg? {
                Msg::Rows(t, rows) => {
                    *counts.entry(t).or_default() += rows.len() as u64;
                    for r in rows {
                        let ev = self.event(t, r);
                        if let Some(prev) = self.held.replace(ev) {
                            out.push(prev);
                        }
                    }
                }
                Msg::ChunkDone(t) => {
                    self.chunks_left[t] -= 1;
                    if self.chunks_left[t] == 0 {
                        self.tables_done += 1;
                        self.metrics
                            .set(SNAPSHOT_TABLES_DONE, &[], self.tables_done as f64);
                    }
                }
                Msg::WorkerDone => self.workers_left -= 1,
            }
        }
        for (t, n) in counts {
            let label = self.schemas[t].id.to_string();
            self.metrics.add(SNAPSHOT_ROWS, &[("table", &label)], n);
        }
        if finished {
            if let Some(mut last) = self.held.take() {
                last.source.snapshot = SnapshotMarker::Last;
                out.push(last);
            }
            info!(point = %self.point, "snapshot complete");
        }
        Ok((out, finished))
    }

    /// The checkpoint for batches while the snapshot runs (`snapshot=1`).
    pub fn in_progress_position(&self) -> &Position {
        &self.position
    }
}

async fn worker(
    mut conn: Conn,
    queue: Arc<Mutex<VecDeque<Chunk>>>,
    defs: Arc<Vec<TableDef>>,
    tx: mpsc::Sender<Result<Msg>>,
) {
    let result = async {
        loop {
            let chunk = match queue.lock() {
                Ok(mut q) => q.pop_front(),
                Err(_) => None,
            };
            let Some(chunk) = chunk else {
                break;
            };
            read_chunk(&mut conn, &chunk, &defs[chunk.table], &tx).await?;
            if tx.send(Ok(Msg::ChunkDone(chunk.table))).await.is_err() {
                return Ok(());
            }
        }
        exec(&mut conn, "COMMIT").await?;
        let _ = conn.disconnect().await;
        let _ = tx.send(Ok(Msg::WorkerDone)).await;
        Ok::<(), Error>(())
    }
    .await;
    if let Err(e) = result {
        let _ = tx.send(Err(e)).await;
    }
}

async fn read_chunk(
    conn: &mut Conn,
    chunk: &Chunk,
    def: &TableDef,
    tx: &mpsc::Sender<Result<Msg>>,
) -> Result<()> {
    let what = || format!("reading {}.{} for the snapshot", def.schema, def.table);
    let mut result = conn
        .query_iter(chunk.sql.as_str())
        .await
        .map_err(|e| classify(e, &what()))?;
    let mut rows = Vec::with_capacity(ROWS_PER_MESSAGE);
    while let Some(row) = result.next().await.map_err(|e| classify(e, &what()))? {
        let raw = row.unwrap();
        let mut out = Vec::with_capacity(raw.len());
        for (v, c) in raw.into_iter().zip(&def.columns) {
            out.push(match v {
                mysql_async::Value::NULL => Value::Null,
                mysql_async::Value::Bytes(b) => decode_text_value_owned(c, b)
                    .map_err(|e| e.context(format!("{}.{}.{}", def.schema, def.table, c.name)))?,
                other => {
                    return Err(Error::new(
                        ErrorKind::Protocol,
                        format!("unexpected text-protocol value {other:?}"),
                    ))
                }
            });
        }
        rows.push(out);
        if rows.len() >= ROWS_PER_MESSAGE {
            let batch = std::mem::replace(&mut rows, Vec::with_capacity(ROWS_PER_MESSAGE));
            if tx.send(Ok(Msg::Rows(chunk.table, batch))).await.is_err() {
                return Ok(());
            }
        }
    }
    if !rows.is_empty() {
        let _ = tx.send(Ok(Msg::Rows(chunk.table, rows))).await;
    }
    Ok(())
}
