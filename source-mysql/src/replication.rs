//! Streaming the binlog: connecting as a replica, reading events on a task of their own (with
//! checksum verification and a liveness timeout fed by server heartbeats), and turning them into
//! change events in transaction order.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use connector_core::{
    ChangeEvent, Error, ErrorKind, LogicalMessage, Op, Position, Result, SnapshotMarker,
    SourceInfo, TableSchema, TxnInfo, Value,
};
use futures_util::StreamExt as _;
use mysql_async::binlog::events::Event;
use mysql_async::prelude::Queryable as _;
use mysql_async::{BinlogStreamRequest, Conn};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::binlog::{
    column_type as ct, event_type as et, is_character, parse_maria_gtid_list, real_type, Buf,
    MariaGtidEvent, MySqlGtidEvent, QueryEvent, RotateEvent, RowsEvent, RowsKind, TableMapEvent,
    XaPrepareEvent, Xid, LOG_EVENT_ARTIFICIAL_F,
};
use crate::column_map::{binlog_column_def, check_compatible, fill_string_length, geometry_name};
use crate::config::{Settings, TableFilter};
use crate::ddl::{Ddl, Name, SchemaTracker, TableState};
use crate::decode::{ColumnPlan, TableShape};
use crate::error::classify;
use crate::history::DdlRecord;
use crate::position::{format_uuid, BinlogPosition, GtidSet};
use crate::schema::{Charset, Collations, ColumnDef, Kind, TableDef};
use crate::xa::{xa_statement, HeldChange, Hold, PreparedXa, XaVerb};

/// Which server family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// MariaDB.
    MariaDb,
    /// MySQL (and Percona).
    MySql,
}

/// What `SELECT VERSION()` said.
#[derive(Clone, Debug)]
pub struct ServerInfo {
    /// Family.
    pub flavor: Flavor,
    /// The version string.
    pub version: String,
    /// (major, minor, patch).
    pub numbers: (u16, u16, u16),
}

impl ServerInfo {
    /// Parse a `VERSION()` string.
    pub fn parse(version: &str) -> Self {
        let flavor = if version.to_ascii_lowercase().contains("mariadb") {
            Flavor::MariaDb
        } else {
            Flavor::MySql
        };
        let mut nums = version
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<u16>().unwrap_or(0));
        let numbers = (
            nums.next().unwrap_or(0),
            nums.next().unwrap_or(0),
            nums.next().unwrap_or(0),
        );
        ServerInfo {
            flavor,
            version: version.to_string(),
            numbers,
        }
    }

    /// The statement that shows the current binlog file and position.
    pub fn binlog_status_sql(&self) -> &'static str {
        if self.flavor == Flavor::MySql && self.numbers >= (8, 2, 0) {
            "SHOW BINARY LOG STATUS"
        } else {
            "SHOW MASTER STATUS"
        }
    }
}

/// Connect with the settings' options, within the connect timeout.
pub async fn connect(settings: &Settings) -> Result<Conn> {
    let timeout = Duration::from_millis(settings.config.connect_timeout_ms);
    let what = || format!("connecting to MySQL at {}", settings.address);
    let conn = tokio::time::timeout(timeout, Conn::new(settings.opts.clone()))
        .await
        .map_err(|_| {
            Error::new(
                ErrorKind::Timeout,
                format!("{}: no answer within {} ms", what(), timeout.as_millis()),
            )
        })?
        .map_err(|e| classify(e, &what()))?;
    Ok(conn)
}

/// Run a statement, classifying its error.
pub async fn exec(conn: &mut Conn, sql: &str) -> Result<()> {
    conn.query_drop(sql)
        .await
        .map_err(|e| classify(e, &format!("running `{sql}`")))
}

/// Query rows, classifying the error.
pub async fn query<T: mysql_async::prelude::FromRow + Send + 'static>(
    conn: &mut Conn,
    sql: &str,
) -> Result<Vec<T>> {
    conn.query(sql)
        .await
        .map_err(|e| classify(e, &format!("running `{sql}`")))
}

/// The server's version and family.
pub async fn server_info(conn: &mut Conn) -> Result<ServerInfo> {
    let v: Vec<String> = query(conn, "SELECT VERSION()").await?;
    Ok(ServerInfo::parse(
        v.first().map(String::as_str).unwrap_or(""),
    ))
}

/// The current end of the binlog with its GTID set (MariaDB `gtid_binlog_pos`, MySQL
/// `gtid_executed`).
pub async fn current_position(conn: &mut Conn, info: &ServerInfo) -> Result<BinlogPosition> {
    let rows: Vec<mysql_async::Row> = query(conn, info.binlog_status_sql()).await?;
    let Some(row) = rows.first() else {
        return Err(Error::new(
            ErrorKind::Precondition,
            "the binary log is disabled on the server",
        )
        .with_hint("start the server with log_bin (and binlog_format=ROW)"));
    };
    let file: String = row.get(0).unwrap_or_default();
    let pos: u64 = row.get(1).unwrap_or(4);
    let gtids = gtid_executed(conn, info).await?;
    Ok(BinlogPosition::new(file, pos, gtids))
}

/// The executed GTID set, when the server has GTIDs.
pub async fn gtid_executed(conn: &mut Conn, info: &ServerInfo) -> Result<Option<String>> {
    Ok(match info.flavor {
        Flavor::MariaDb => {
            let v: Vec<Option<String>> = query(conn, "SELECT @@GLOBAL.gtid_binlog_pos").await?;
            Some(v.into_iter().flatten().next().unwrap_or_default())
        }
        Flavor::MySql => {
            let mode: Vec<Option<String>> = query(conn, "SELECT @@GLOBAL.gtid_mode").await?;
            if mode.into_iter().flatten().next().as_deref() == Some("ON") {
                let v: Vec<Option<String>> = query(conn, "SELECT @@GLOBAL.gtid_executed").await?;
                Some(
                    v.into_iter()
                        .flatten()
                        .next()
                        .unwrap_or_default()
                        .replace(['\n', ' '], ""),
                )
            } else {
                None
            }
        }
    })
}

/// Collations from the server, over the built-in table.
pub async fn load_collations(conn: &mut Conn) -> Result<Collations> {
    let mut c = Collations::default();
    let rows: Vec<(u64, String)> = query(
        conn,
        "SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS WHERE ID IS NOT NULL",
    )
    .await?;
    for (id, cs) in rows {
        c.insert(id as u16, &cs);
    }
    Ok(c)
}

/// Open a binlog stream from `from`, by GTID when `use_gtid`, and start a task that reads it.
pub async fn open_stream(
    settings: &Settings,
    info: &ServerInfo,
    from: &BinlogPosition,
    use_gtid: bool,
) -> Result<EventReader> {
    let mut conn = connect(settings).await?;
    let hb_ns = settings.config.heartbeat_interval_ms * 1_000_000;
    exec(
        &mut conn,
        &format!("SET @master_heartbeat_period = {hb_ns}"),
    )
    .await?;
    // While the pipeline applies backpressure this connection is not read; keep the server from
    // dropping it after the default 60 s.
    exec(&mut conn, "SET SESSION net_write_timeout = 3600").await?;
    let file = from.file.clone().into_bytes();
    let mut request = BinlogStreamRequest::new(settings.server_id);
    let mut sids = Vec::new();
    match info.flavor {
        Flavor::MariaDb => {
            exec(&mut conn, "SET @mariadb_slave_capability = 4").await?;
            if use_gtid {
                let gtids = from.gtids.clone().unwrap_or_default();
                exec(
                    &mut conn,
                    &format!("SET @slave_connect_state = '{}'", gtids.replace('\'', "")),
                )
                .await?;
                exec(&mut conn, "SET @slave_gtid_strict_mode = 0").await?;
                exec(&mut conn, "SET @slave_gtid_ignore_duplicates = 0").await?;
            }
        }
        Flavor::MySql => {
            if use_gtid {
                let set = GtidSet::parse(from.gtids.as_deref().unwrap_or(""), false)?;
                for (uuid, ivs) in set.mysql_intervals() {
                    let mut sid = mysql_async::Sid::new(uuid);
                    for (a, b) in ivs {
                        sid = sid.with_interval(mysql_async::GnoInterval::new(a, b + 1));
                    }
                    sids.push(sid);
                }
            }
        }
    }
    if use_gtid && info.flavor == Flavor::MySql {
        request = request.with_gtid().with_gtid_set(sids);
    } else if !use_gtid {
        request = request.with_filename(&file).with_pos(from.pos);
    }
    let connection_id = conn.id();
    let stream = conn.get_binlog_stream(request).await.map_err(|e| {
        classify(e, &format!("requesting the binlog from {}", from)).context(&settings.address)
    })?;
    let silence = silence_timeout(settings.config.heartbeat_interval_ms);
    let (tx, rx) = mpsc::channel(EVENT_CHANNEL_CAPACITY);
    let task = tokio::spawn(read_events(stream, tx, silence));
    Ok(EventReader {
        rx,
        task,
        connection_id,
    })
}

/// How long the binlog connection may stay silent (no event, no heartbeat) before it is treated
/// as lost: three heartbeat intervals, at least 5 s.
pub fn silence_timeout(heartbeat_interval_ms: u64) -> Duration {
    Duration::from_millis((heartbeat_interval_ms * 3).max(5_000))
}

/// Raw events buffered between the reading task and the decoder.
const EVENT_CHANNEL_CAPACITY: usize = 512;

/// The reading task's handle and its events.
pub struct EventReader {
    /// Events in binlog order, or the error that ended the stream.
    pub rx: mpsc::Receiver<Result<Event>>,
    task: JoinHandle<()>,
    /// The server's id of the binlog connection (`KILL`-able, in the process list).
    pub connection_id: u32,
}

impl Drop for EventReader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read_events(
    mut stream: mysql_async::BinlogStream,
    tx: mpsc::Sender<Result<Event>>,
    silence: Duration,
) {
    loop {
        let next = tokio::select! {
            _ = tx.closed() => return,
            n = tokio::time::timeout(silence, stream.next()) => n,
        };
        let item = match next {
            Err(_) => Err(Error::new(
                ErrorKind::Connection,
                format!(
                    "the binlog connection was silent for {} s (no event and no heartbeat)",
                    silence.as_secs()
                ),
            )),
            Ok(None) => Err(Error::new(
                ErrorKind::Connection,
                "the server ended the binlog stream",
            )),
            Ok(Some(Err(e))) => Err(classify(e, "reading the binlog")),
            Ok(Some(Ok(ev))) => verify_checksum(&ev).map(|()| ev),
        };
        let failed = item.is_err();
        if tx.send(item).await.is_err() || failed {
            return;
        }
    }
}

/// Verify an event's CRC32 checksum (when the server writes them; `binlog_checksum=CRC32`).
pub fn verify_checksum(ev: &Event) -> Result<()> {
    let footer = ev.footer();
    if !footer.get_checksum_enabled() {
        return Ok(());
    }
    let Ok(Some(alg)) = footer.get_checksum_alg() else {
        return Ok(());
    };
    if alg != mysql_async::binlog::BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32 {
        return Ok(());
    }
    let Some(stored) = ev.checksum() else {
        return Ok(());
    };
    let stored = u32::from_le_bytes(stored);
    let computed = ev.calc_checksum(alg);
    if stored != computed {
        return Err(Error::new(
            ErrorKind::Connection,
            format!(
                "binlog event checksum mismatch (type {}, end position {}): stored {stored:#010x}, \
                 computed {computed:#010x}",
                ev.header().event_type_raw(),
                ev.header().log_pos()
            ),
        ));
    }
    Ok(())
}

/// The transaction being decoded.
#[derive(Debug)]
struct Txn {
    start_pos: u64,
    id: Arc<str>,
    gtids_before: Option<Arc<str>>,
    /// The GTID to add to the executed set when it commits.
    gtid: Option<GtidAdd>,
    ts_us: i64,
    server_id: u32,
    thread: Option<u32>,
    began: bool,
    standalone: bool,
    order: u64,
    skip: u64,
    table_orders: Vec<(usize, u64)>,
    /// `file=F;pos=P` of this transaction, for event positions.
    pos_prefix: String,
    /// `;gtids=G` (or empty), for event positions.
    pos_suffix: String,
    /// The order of the last event delivered (not skipped), if any.
    delivered: Option<u64>,
    /// Set in the prepared part of an XA transaction: its captured changes are held here, not
    /// delivered, until its `XA COMMIT` (or dropped at its `XA ROLLBACK`).
    hold: Option<Hold>,
}

#[derive(Clone, Copy, Debug)]
enum GtidAdd {
    Maria(u32, u32, u64),
    MySql([u8; 16], u64),
}

/// Decodes binlog events into change events for the captured tables, tracking positions.
pub struct Decoder {
    flavor: Flavor,
    filter: TableFilter,
    collations: Collations,
    /// Table definitions in binlog order (used when `TABLE_MAP` lacks names).
    pub tracker: SchemaTracker,
    file: Arc<str>,
    pos: u64,
    gtids: Option<GtidSet>,
    gtids_text: Option<Arc<str>>,
    txn: Option<Txn>,
    tables: HashMap<u64, Option<Arc<TableShape>>>,
    raw_maps: HashMap<u64, Vec<u8>>,
    /// Events to skip in the first transaction (a resume from a mid-transaction checkpoint).
    pending_skip: u64,
    /// The position after the last complete transaction.
    boundary: BinlogPosition,
    /// The position after the last delivered event (mid-transaction) or `boundary`.
    resume_point: BinlogPosition,
    /// Set when a `TABLE_MAP` lacked column names and the tracker was used.
    pub used_tracker: bool,
    /// Whether the server writes event checksums (`binlog_checksum` is not NONE).
    pub server_checksums: bool,
    /// Whether the stream was opened by GTID (not by file and offset).
    pub resume_by_gtid: bool,
    /// Before this `(file sequence, pos)`, only the prepared parts of XA transactions are read
    /// (held for their commit); nothing is delivered and DDL is not applied (the tracker holds
    /// the definitions of this point). Cleared once passed.
    deliver_from: Option<(u64, u64)>,
    /// A reused buffer for event positions.
    pos_buf: String,
    /// XA transactions prepared and not yet resolved, in binlog order, with their held changes.
    prepared: Vec<PreparedXa>,
    /// XA transactions prepared without captured changes (so that their commit is expected).
    prepared_empty: HashSet<Xid>,
    /// Bytes held for XA transactions (prepared ones and the one being read).
    held_bytes: usize,
    /// The most bytes held for XA transactions (`max_xa_held_bytes`); past it, an error.
    pub max_xa_held_bytes: usize,
    /// Set when an `XA COMMIT` delivered held changes: the position before the prepared part,
    /// the checkpoint while those changes wait to be delivered.
    released_floor: Option<BinlogPosition>,
    /// Where this decoder started.
    start: BinlogPosition,
    /// DDL statements passed since the last [`Decoder::take_history`], for the schema history.
    history: Vec<DdlRecord>,
    /// Tables whose tracked definition was found to disagree with the binlog's metadata (warned
    /// once each).
    disagreed: HashSet<(String, String)>,
}

impl Decoder {
    /// A decoder starting at `from`.
    pub fn new(
        flavor: Flavor,
        filter: TableFilter,
        collations: Collations,
        tracker: SchemaTracker,
        from: &BinlogPosition,
    ) -> Result<Self> {
        let gtids = match &from.gtids {
            Some(t) => Some(GtidSet::parse(t, flavor == Flavor::MariaDb)?),
            None => None,
        };
        let mut boundary = from.clone();
        boundary.row = 0;
        boundary.snapshot = false;
        Ok(Decoder {
            flavor,
            filter,
            collations,
            tracker,
            file: from.file.as_str().into(),
            pos: from.pos,
            gtids_text: gtids.as_ref().map(|g| g.to_string().into()),
            gtids,
            txn: None,
            tables: HashMap::new(),
            raw_maps: HashMap::new(),
            pending_skip: from.row,
            resume_point: from.clone(),
            boundary,
            used_tracker: false,
            server_checksums: true,
            resume_by_gtid: false,
            deliver_from: from.deliver_key(),
            pos_buf: String::with_capacity(96),
            prepared: Vec::new(),
            prepared_empty: HashSet::new(),
            held_bytes: 0,
            max_xa_held_bytes: crate::config::DEFAULT_MAX_XA_HELD_BYTES,
            released_floor: None,
            start: from.clone(),
            history: Vec::new(),
            disagreed: HashSet::new(),
        })
    }

    /// While an XA transaction is prepared but not resolved: the position before its prepared
    /// part (the earliest such), which checkpoints must not pass.
    pub fn xa_floor(&self) -> Option<&BinlogPosition> {
        self.prepared.first().map(|p| &p.before)
    }

    /// The position before the prepared part of the XA transactions whose `XA COMMIT` delivered
    /// held changes since the last call (the earliest such): a checkpoint while those changes
    /// are not all delivered must not pass it.
    pub fn take_released_floor(&mut self) -> Option<BinlogPosition> {
        self.released_floor.take()
    }

    /// The DDL statements passed since the last call, to append to the schema history before
    /// a position after them is stored.
    pub fn take_history(&mut self) -> Vec<DdlRecord> {
        std::mem::take(&mut self.history)
    }

    /// Where a restart would resume now: after the last delivered event.
    pub fn resume_point(&self) -> BinlogPosition {
        match &self.txn {
            Some(Txn {
                delivered: Some(order),
                start_pos,
                gtids_before,
                id,
                ..
            }) => BinlogPosition {
                file: self.file.to_string(),
                pos: *start_pos,
                row: *order,
                gtids: gtids_before.as_deref().map(str::to_string),
                txn: Some(id.to_string()),
                deliver: None,
                snapshot: false,
            },
            _ => self.resume_point.clone(),
        }
    }

    /// Whether the event group starting at `pos` of the current file lies before the point
    /// delivery starts from (see `deliver_from`).
    fn before_delivery(&self, pos: u64) -> bool {
        self.deliver_from
            .is_some_and(|d| (crate::position::file_seq(&self.file), pos) < d)
    }

    /// The point delivery starts from, while it is not passed yet.
    pub fn delivery_start(&self) -> Option<(u64, u64)> {
        self.deliver_from
    }

    /// Whether a transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.txn.is_some()
    }

    fn boundary_after(&self) -> BinlogPosition {
        BinlogPosition {
            file: self.file.to_string(),
            pos: self.pos,
            row: 0,
            gtids: self.gtids_text.as_deref().map(str::to_string),
            txn: None,
            deliver: None,
            snapshot: false,
        }
    }

    /// Decode one event, appending change events to `out`.
    pub fn process(&mut self, ev: &Event, out: &mut Vec<ChangeEvent>) -> Result<()> {
        let h = ev.header();
        let t = h.event_type_raw();
        let artificial = h.flags_raw() & LOG_EVENT_ARTIFICIAL_F != 0;
        let data = ev.data();
        let prev_pos = self.pos;
        let log_pos = u64::from(h.log_pos());
        if t == et::ROTATE {
            // The fake rotate that opens a stream comes before any format description, so the
            // reader did not strip its checksum: drop it here.
            let no_fde_yet = matches!(
                ev.footer().get_checksum_alg(),
                Ok(None)
                    | Ok(Some(
                        mysql_async::binlog::BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_OFF
                    ))
            );
            let data = if no_fde_yet && self.server_checksums && data.len() > 12 {
                &data[..data.len() - 4]
            } else {
                data
            };
            let r = RotateEvent::parse(data)?;
            if self.txn.is_some() && !artificial {
                return Err(Error::new(
                    ErrorKind::Protocol,
                    "binlog rotated inside a transaction",
                ));
            }
            self.file = r.file.as_str().into();
            self.pos = r.pos;
            if self.txn.is_none() {
                self.boundary = self.boundary_after();
                // A resume point inside a transaction not reached yet stays (it carries the
                // count of events to skip).
                if self.resume_point.row == 0 {
                    self.resume_point = self.boundary.clone();
                }
            }
            return Ok(());
        }
        if t == et::HEARTBEAT || t == et::HEARTBEAT_V2 {
            return Ok(());
        }
        if log_pos > self.pos && !artificial {
            self.pos = log_pos;
        }
        let ts_us = i64::from(h.timestamp()) * 1_000_000;
        match t {
            et::MARIA_GTID => {
                let g = MariaGtidEvent::parse(data)?;
                let server = h.server_id();
                self.begin(
                    prev_pos,
                    format!("{}-{}-{}", g.domain, server, g.seq).into(),
                    Some(GtidAdd::Maria(g.domain, server, g.seq)),
                    ts_us,
                    server,
                    g.standalone(),
                )?;
                // A MariaDB GTID event stands for BEGIN unless the group is standalone (DDL).
                if let Some(txn) = &mut self.txn {
                    txn.began = !g.standalone() && self.flavor == Flavor::MariaDb;
                    if g.prepared_xa() {
                        // The prepared part of an XA transaction (10.5+): hold its changes.
                        txn.hold = Some(Hold {
                            xid: g.xid,
                            ..Hold::default()
                        });
                    }
                }
            }
            et::GTID | et::ANONYMOUS_GTID => {
                let g = MySqlGtidEvent::parse(data)?;
                let anonymous = t == et::ANONYMOUS_GTID || g.sid == [0; 16];
                let id: Arc<str> = if anonymous {
                    format!("{}:{}", self.file, prev_pos).into()
                } else {
                    format!("{}:{}", format_uuid(&g.sid), g.gno).into()
                };
                let add = (!anonymous).then_some(GtidAdd::MySql(g.sid, g.gno));
                if add.is_some() && self.gtids.is_none() {
                    self.gtids = Some(GtidSet::mysql());
                }
                self.begin(
                    prev_pos,
                    id,
                    add,
                    g.commit_ts_us.unwrap_or(ts_us),
                    h.server_id(),
                    false,
                )?;
            }
            et::MARIA_GTID_LIST if self.gtids.is_none() && !artificial => {
                let mut set = GtidSet::mariadb();
                for (d, s, n) in parse_maria_gtid_list(data)? {
                    set.add_mariadb(d, s, n);
                }
                self.gtids_text = Some(set.to_string().into());
                self.gtids = Some(set);
            }
            et::QUERY | et::MARIA_QUERY_COMPRESSED => {
                let q = QueryEvent::parse(data, t == et::MARIA_QUERY_COMPRESSED)?;
                self.on_query(q, prev_pos, ts_us, h.server_id(), out)?;
            }
            et::EXECUTE_LOAD_QUERY => {
                // LOAD DATA in statement format: its rows are not in the binlog.
                let q = QueryEvent::parse_execute_load(data)?;
                if let Some(e) = self.statement_change_error(q.query.trim(), &q.schema, prev_pos) {
                    return Err(e);
                }
            }
            et::XID => self.end_txn(out),
            et::XA_PREPARE => {
                let x = XaPrepareEvent::parse(data)?;
                self.on_xa_prepare(Some(x.xid), x.one_phase, out)?;
            }
            et::TABLE_MAP => self.on_table_map(data)?,
            _ if RowsEvent::kind_of(t).is_some() => self.on_rows(t, data, out)?,
            _ => {}
        }
        Ok(())
    }

    fn begin(
        &mut self,
        start_pos: u64,
        id: Arc<str>,
        gtid: Option<GtidAdd>,
        ts_us: i64,
        server_id: u32,
        standalone: bool,
    ) -> Result<()> {
        if let Some(open) = &self.txn {
            if let Some(hold) = open.hold.as_ref().filter(|h| !h.changes.is_empty()) {
                return Err(Error::new(
                    ErrorKind::Protocol,
                    format!(
                        "the XA transaction {} that started at {}:{} ended without XA PREPARE",
                        hold.xid
                            .as_ref()
                            .map_or("(unknown XID)".to_string(), Xid::to_string),
                        self.file,
                        open.start_pos
                    ),
                ));
            }
            warn!(txn = %open.id, "a transaction started before the previous one ended; closing it");
            self.commit();
        }
        // A resume inside a transaction skips the events delivered before, of that transaction
        // only (by GTID, other domains' transactions may come first after a failover).
        let skip = if self.pending_skip > 0
            && crate::position::skip_applies(
                &self.start,
                &id,
                &self.file,
                start_pos,
                self.resume_by_gtid,
            )? {
            std::mem::take(&mut self.pending_skip)
        } else {
            0
        };
        let pos_prefix = format!("file={};pos={start_pos}", self.file);
        let mut pos_suffix = match &self.gtids_text {
            Some(g) => format!(";gtids={g}"),
            None => String::new(),
        };
        pos_suffix.push_str(";txn=");
        pos_suffix.push_str(&id);
        self.txn = Some(Txn {
            pos_prefix,
            pos_suffix,
            delivered: None,
            start_pos,
            id,
            gtids_before: self.gtids_text.clone(),
            gtid,
            ts_us,
            server_id,
            thread: None,
            began: false,
            standalone,
            order: 0,
            skip,
            table_orders: Vec::new(),
            hold: None,
        });
        Ok(())
    }

    /// End the open transaction at its commit: changes still held (an XA transaction whose group
    /// ended without `XA PREPARE`) are delivered.
    fn end_txn(&mut self, out: &mut Vec<ChangeEvent>) {
        if let Some(hold) = self.txn.as_mut().and_then(|t| t.hold.take()) {
            self.held_bytes -= hold.bytes;
            self.release(hold.changes, out);
        }
        self.commit();
    }

    /// Deliver held changes as events of the open transaction.
    fn release(&mut self, changes: Vec<HeldChange>, out: &mut Vec<ChangeEvent>) {
        for c in changes {
            self.emit(
                out,
                c.op,
                c.table,
                c.before,
                c.after,
                c.row_in_event,
                c.message,
            );
        }
    }

    /// The end of an XA transaction's prepared part (`XA_PREPARE` event): keep its changes until
    /// its `XA COMMIT`, or deliver them now for `XA COMMIT ... ONE PHASE`.
    fn on_xa_prepare(
        &mut self,
        xid: Option<Xid>,
        one_phase: bool,
        out: &mut Vec<ChangeEvent>,
    ) -> Result<()> {
        let Some(txn) = self.txn.as_mut() else {
            return Ok(());
        };
        let Some(hold) = txn.hold.take() else {
            self.commit();
            return Ok(());
        };
        self.held_bytes -= hold.bytes;
        if one_phase {
            self.release(hold.changes, out);
            self.commit();
            return Ok(());
        }
        let Some(xid) = xid.or(hold.xid) else {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!(
                    "cannot tell the XID of the XA transaction prepared at {}:{}",
                    self.file, txn.start_pos
                ),
            ));
        };
        if hold.changes.is_empty() {
            if self.prepared_empty.len() >= 65_536 {
                self.prepared_empty.clear();
            }
            self.prepared_empty.insert(xid);
        } else {
            let before = BinlogPosition {
                file: self.file.to_string(),
                pos: txn.start_pos,
                row: 0,
                gtids: txn.gtids_before.as_deref().map(str::to_string),
                txn: None,
                deliver: None,
                snapshot: false,
            };
            debug!(xid = %xid, changes = hold.changes.len(), at = %before,
                "holding the changes of a prepared XA transaction until it is committed");
            self.held_bytes += hold.bytes;
            self.prepared.push(PreparedXa {
                xid,
                before,
                changes: hold.changes,
                bytes: hold.bytes,
            });
        }
        self.commit();
        Ok(())
    }

    /// `XA COMMIT` or `XA ROLLBACK` of a prepared transaction (its own event group): deliver its
    /// held changes as this group's events, or drop them.
    #[allow(clippy::too_many_arguments)]
    fn on_xa_resolve(
        &mut self,
        commit: bool,
        rest: &str,
        prev_pos: u64,
        ts_us: i64,
        server_id: u32,
        thread: u32,
        out: &mut Vec<ChangeEvent>,
    ) -> Result<()> {
        let xid = Xid::parse_sql(rest);
        let one_phase = commit && rest.trim_end().to_ascii_uppercase().ends_with("ONE PHASE");
        // `XA COMMIT ... ONE PHASE` (or a completion) of the transaction open here.
        if let Some(txn) = self.txn.as_mut() {
            let own = txn
                .hold
                .as_ref()
                .is_some_and(|h| one_phase || (xid.is_some() && h.xid == xid));
            if own {
                txn.thread = Some(thread);
                if commit {
                    self.end_txn(out);
                } else {
                    let hold = txn.hold.take().unwrap_or_default();
                    self.held_bytes -= hold.bytes;
                    self.commit();
                }
                return Ok(());
            }
        }
        if self.txn.is_none() {
            let id: Arc<str> = format!("{}:{}", self.file, prev_pos).into();
            self.begin(prev_pos, id, None, ts_us, server_id, true)?;
        }
        if let Some(txn) = &mut self.txn {
            txn.thread = Some(thread);
        }
        let found = xid
            .as_ref()
            .and_then(|x| self.prepared.iter().position(|p| p.xid == *x));
        match found {
            Some(i) => {
                let group = self.prepared.remove(i);
                self.held_bytes -= group.bytes;
                debug!(xid = %group.xid, commit, changes = group.changes.len(),
                    "a prepared XA transaction was resolved");
                // Committed before the delivery point: in the snapshot, or before the start.
                if commit && !self.before_delivery(prev_pos) {
                    self.released_floor = Some(match self.released_floor.take() {
                        Some(f) if f < group.before => f,
                        _ => group.before,
                    });
                    self.release(group.changes, out);
                }
            }
            None => {
                let known = xid.as_ref().is_some_and(|x| self.prepared_empty.remove(x));
                if commit && !known && !self.before_delivery(prev_pos) {
                    debug!(
                        xid = %xid.as_ref().map_or_else(|| rest.trim().to_string(), Xid::to_string),
                        at = %format!("{}:{prev_pos}", self.file),
                        start = %self.start,
                        "XA COMMIT of a transaction not seen prepared: prepared before the \
                         position this stream resumed from, so without captured changes (a \
                         fresh start reads the prepared parts from before it)"
                    );
                }
            }
        }
        self.commit();
        Ok(())
    }

    /// The error when held XA changes outgrow `max_xa_held_bytes`.
    fn held_error(&self) -> Error {
        let (xid, at) = match self
            .txn
            .as_ref()
            .and_then(|t| t.hold.as_ref().map(|h| (t, h)))
        {
            Some((t, h)) => (
                h.xid
                    .as_ref()
                    .map_or("(unknown XID)".to_string(), Xid::to_string),
                format!("{}:{}", self.file, t.start_pos),
            ),
            None => match self.prepared.iter().max_by_key(|p| p.bytes) {
                Some(p) => (p.xid.to_string(), p.before.to_string()),
                None => ("(none)".to_string(), String::new()),
            },
        };
        Error::new(
            ErrorKind::Data,
            format!(
                "the XA transaction {xid} (prepared part at {at}) is not committed or rolled back \
                 yet and the captured changes held for prepared XA transactions ({} in all) \
                 passed {} bytes",
                self.prepared.len()
                    + usize::from(self.txn.as_ref().is_some_and(|t| t.hold.is_some())),
                self.max_xa_held_bytes
            ),
        )
        .with_hint(
            "raise source.max_xa_held_bytes, or resolve the prepared transaction (XA RECOVER \
             lists them; XA COMMIT or XA ROLLBACK it)",
        )
    }

    fn commit(&mut self) {
        if let Some(txn) = self.txn.take() {
            // Before the delivery point of a stream started without a GTID set (MySQL), keep
            // none rather than a partial one.
            let partial = self.gtids.is_none() && self.deliver_from.is_some();
            if let Some(add) = txn.gtid.filter(|_| !partial) {
                let set = self.gtids.get_or_insert_with(|| match add {
                    GtidAdd::Maria(..) => GtidSet::mariadb(),
                    GtidAdd::MySql(..) => GtidSet::mysql(),
                });
                match add {
                    GtidAdd::Maria(d, s, n) => set.add_mariadb(d, s, n),
                    GtidAdd::MySql(u, n) => set.add_mysql(u, n),
                }
                self.gtids_text = Some(set.to_string().into());
            }
        }
        self.boundary = self.boundary_after();
        self.resume_point = self.boundary.clone();
        if self
            .deliver_from
            .is_some_and(|d| (self.boundary.file_seq(), self.boundary.pos) >= d)
        {
            self.deliver_from = None;
        }
    }

    fn on_query(
        &mut self,
        q: QueryEvent,
        prev_pos: u64,
        ts_us: i64,
        server_id: u32,
        out: &mut Vec<ChangeEvent>,
    ) -> Result<()> {
        let sql = q.query.trim();
        let xa = xa_statement(sql);
        if sql.eq_ignore_ascii_case("BEGIN") || matches!(xa, Some((XaVerb::Start, _))) {
            if self.txn.is_none() {
                let id: Arc<str> = format!("{}:{}", self.file, prev_pos).into();
                self.begin(prev_pos, id, None, ts_us, server_id, false)?;
            }
            if let Some(txn) = &mut self.txn {
                txn.began = true;
                txn.thread = Some(q.thread_id);
                if let Some((XaVerb::Start, rest)) = xa {
                    // MySQL's prepared XA part starts with `XA START`: hold its changes.
                    if txn.hold.is_none() {
                        txn.hold = Some(Hold {
                            xid: Xid::parse_sql(rest),
                            ..Hold::default()
                        });
                    }
                }
            }
            return Ok(());
        }
        match xa {
            // The XA_PREPARE event that follows ends the group.
            Some((XaVerb::End, _)) => return Ok(()),
            Some((XaVerb::Prepare, rest)) => {
                return self.on_xa_prepare(Xid::parse_sql(rest), false, out)
            }
            Some((verb @ (XaVerb::Commit | XaVerb::Rollback), rest)) => {
                return self.on_xa_resolve(
                    verb == XaVerb::Commit,
                    rest,
                    prev_pos,
                    ts_us,
                    server_id,
                    q.thread_id,
                    out,
                );
            }
            _ => {}
        }
        if sql.eq_ignore_ascii_case("COMMIT") || sql.eq_ignore_ascii_case("ROLLBACK") {
            if self.txn.is_some() {
                self.end_txn(out);
            }
            return Ok(());
        }
        // A statement: DDL (or something else that is not row-based).
        let standalone_txn = match &self.txn {
            None => {
                let id: Arc<str> = format!("{}:{}", self.file, prev_pos).into();
                self.begin(prev_pos, id, None, ts_us, server_id, true)?;
                true
            }
            Some(t) => !t.began || t.standalone,
        };
        if let Some(txn) = &mut self.txn {
            txn.thread = Some(q.thread_id);
        }
        let group = self.txn.as_ref().map_or(prev_pos, |t| t.start_pos);
        if self.before_delivery(group) {
            // The tracker already holds the definitions of the delivery point.
            if standalone_txn {
                self.commit();
            }
            return Ok(());
        }
        let ddl = self.tracker.apply(sql, &q.schema);
        if !matches!(ddl, Ddl::Other | Ddl::Truncate(_)) {
            self.history.push(DdlRecord {
                file: self.file.to_string(),
                pos: self.txn.as_ref().map_or(prev_pos, |t| t.start_pos),
                schema: q.schema.clone(),
                sql: sql.to_string(),
            });
        }
        // Any DDL may change table ids' shapes: forget cached shapes.
        if !matches!(ddl, Ddl::Other) {
            self.tables.clear();
            self.raw_maps.clear();
        } else if let Some(e) = self.statement_change_error(sql, &q.schema, prev_pos) {
            return Err(e);
        }
        let targets: Vec<Name> = match &ddl {
            Ddl::Create { name, .. } | Ddl::Alter { name, .. } | Ddl::TableOther(name) => {
                vec![name.clone()]
            }
            Ddl::Truncate(name) => vec![name.clone()],
            Ddl::Drop(names) => names.clone(),
            Ddl::Rename(pairs) => pairs
                .iter()
                .flat_map(|(a, b)| [a.clone(), b.clone()])
                .collect(),
            Ddl::DropDatabase(_) | Ddl::Other => Vec::new(),
        };
        let captured: Vec<(String, String)> = targets
            .iter()
            .map(|n| {
                (
                    n.schema.clone().unwrap_or_else(|| q.schema.clone()),
                    n.table.clone(),
                )
            })
            .filter(|(s, t)| self.filter.matches(s, t))
            .collect();
        let db_level = matches!(&ddl, Ddl::DropDatabase(db) if self.filter.patterns().iter().any(|p| p.exact_schema() == Some(db.as_str())));
        if !captured.is_empty() || db_level {
            if let Ddl::Truncate(_) = ddl {
                let (s, t) = &captured[0];
                let table = self.schema_for(s, t);
                self.emit(out, Op::Truncate, table, None, None, 0, None);
            } else {
                let table = captured
                    .first()
                    .and_then(|(s, t)| self.schema_for_opt(s, t));
                let msg = LogicalMessage {
                    prefix: "ddl".to_string(),
                    content: sql.as_bytes().to_vec(),
                    transactional: false,
                };
                self.emit(out, Op::Message, table, None, None, 0, Some(msg));
            }
        }
        if standalone_txn {
            self.commit();
        }
        Ok(())
    }

    /// A data change logged as an SQL statement (a session with `binlog_format=STATEMENT` or
    /// `MIXED`) that may touch a captured table: its rows are not in the binlog, so the stream
    /// cannot carry them; an error rather than a silent gap.
    fn statement_change_error(&self, sql: &str, schema: &str, at: u64) -> Option<Error> {
        let dml = crate::ddl::parse_dml(sql)?;
        let captured: Vec<String> = match &dml.tables {
            Some(names) if !names.is_empty() => names
                .iter()
                .map(|n| (n.schema.as_deref().unwrap_or(schema), n.table.as_str()))
                .filter(|(s, t)| self.filter.matches(s, t))
                .map(|(s, t)| format!("{s}.{t}"))
                .collect(),
            // The tables could not be told: the statement's database decides.
            _ => {
                let db_captured = !schema.is_empty()
                    && self
                        .filter
                        .patterns()
                        .iter()
                        .any(|p| connector_core::config::glob_match(&p.schema, schema));
                if db_captured {
                    vec![format!("a table of database {schema}")]
                } else {
                    Vec::new()
                }
            }
        };
        if captured.is_empty() {
            return None;
        }
        let mut shown: String = sql.chars().take(200).collect();
        if shown.len() < sql.len() {
            shown.push_str("...");
        }
        Some(
            Error::new(
                ErrorKind::Precondition,
                format!(
                    "{} on {} was logged as an SQL statement, not as row events (at {}:{at}; a \
                     session with binlog_format STATEMENT or MIXED): the rows it changed are not \
                     in the binlog and cannot be captured: `{shown}`",
                    dml.kind,
                    captured.join(", "),
                    self.file
                ),
            )
            .with_hint(
                "every session that changes captured tables must log in binlog_format=ROW: SET \
                 GLOBAL binlog_format = 'ROW' (and in the server config) and do not let sessions \
                 override it (SET SESSION binlog_format needs SUPER or BINLOG ADMIN); then take a \
                 new snapshot of the table, since the change is missing downstream",
            ),
        )
    }

    fn schema_for_opt(&self, schema: &str, table: &str) -> Option<Arc<TableSchema>> {
        match self.tracker.get(schema, table) {
            Some(TableState::Known(d)) => Some(Arc::new(d.to_schema())),
            _ => None,
        }
    }

    fn schema_for(&self, schema: &str, table: &str) -> Option<Arc<TableSchema>> {
        self.schema_for_opt(schema, table).or_else(|| {
            Some(Arc::new(TableSchema::new(
                connector_core::TableId::new(schema, schema, table),
                Vec::new(),
            )))
        })
    }

    fn on_table_map(&mut self, data: &[u8]) -> Result<()> {
        let table_id = data
            .get(..6)
            .map(|b| Buf(b).uint_le(6).unwrap_or(0))
            .unwrap_or(0);
        if let (Some(raw), Some(_)) = (self.raw_maps.get(&table_id), self.tables.get(&table_id)) {
            if raw.as_slice() == data {
                return Ok(());
            }
        }
        let tme = TableMapEvent::parse(data)?;
        let shape = if self.filter.matches(&tme.schema, &tme.table) {
            Some(Arc::new(self.shape_of(&tme)?))
        } else {
            None
        };
        self.tables.insert(table_id, shape);
        self.raw_maps.insert(table_id, data.to_vec());
        Ok(())
    }

    /// Build the decoding plan of a table map: names, signedness, charsets and labels from its
    /// optional metadata, or else from the schema tracker.
    pub fn shape_of(&mut self, tme: &TableMapEvent) -> Result<TableShape> {
        let n = tme.types.len();
        let o = &tme.optional;
        let full = o.column_names.as_ref().is_some_and(|v| v.len() == n);
        let tracked = match self.tracker.get(&tme.schema, &tme.table) {
            Some(TableState::Known(d)) => Some(d.clone()),
            _ => None,
        };
        if let (true, Some(d)) = (full, &tracked) {
            let names = o.column_names.as_deref().unwrap_or_default();
            if let Some(what) = crate::history::disagreement(d, names) {
                if self
                    .disagreed
                    .insert((tme.schema.clone(), tme.table.clone()))
                {
                    warn!(table = %format!("{}.{}", tme.schema, tme.table), at = %format!("{}:{}", self.file, self.pos),
                        "the schema history disagrees with the binlog's column metadata ({what}); \
                         rows are decoded with the binlog's, but with binlog_row_metadata=MINIMAL \
                         they would be wrong: report the DDL that led here");
                }
            }
        }
        if !full {
            self.used_tracker = true;
            let Some(d) = &tracked else {
                return Err(self.untracked_error(tme));
            };
            if d.columns.len() != n {
                return Err(Error::new(
                    ErrorKind::Data,
                    format!(
                        "table {}.{}: the binlog row has {n} columns but the tracked schema has {} \
                         ({})",
                        tme.schema,
                        tme.table,
                        d.columns.len(),
                        d.columns
                            .iter()
                            .map(|c| c.name.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
                .with_hint(
                    "set binlog_row_metadata=FULL on the server so that rows carry their column \
                     names; the schema tracker lost track of this table",
                ));
            }
        }
        let mut numeric_i = 0;
        let mut char_i = 0;
        let mut enum_i = 0;
        let mut set_i = 0;
        let mut es_i = 0;
        let mut geo_i = 0;
        let mut columns = Vec::with_capacity(n);
        for i in 0..n {
            let t = tme.types[i];
            let meta = tme.meta[i];
            let rt = real_type(t, meta);
            let from_tracker = tracked.as_ref().and_then(|d| d.columns.get(i));
            let mut def = if full {
                let name = o
                    .column_names
                    .as_ref()
                    .map(|v| v[i].clone())
                    .unwrap_or_default();
                binlog_column_def(rt, meta, name)
            } else {
                let tc = from_tracker
                    .cloned()
                    .unwrap_or_else(|| ColumnDef::new("", Kind::Unknown));
                check_compatible(&tc, rt).map_err(|e| {
                    e.context(format!(
                        "table {}.{} column {}",
                        tme.schema, tme.table, tc.name
                    ))
                })?;
                let mut d = tc;
                if rt == ct::JSON {
                    d.kind = Kind::Json;
                } else if d.kind == Kind::Json {
                    // MariaDB's JSON is LONGTEXT, as its information_schema says.
                    d.kind = Kind::LongText;
                    d.charset = Some(Charset::utf8mb4());
                }
                d
            };
            def.nullable = tme.nullable[i];
            let is_numeric = matches!(
                t,
                ct::TINY
                    | ct::SHORT
                    | ct::INT24
                    | ct::LONG
                    | ct::LONGLONG
                    | ct::NEWDECIMAL
                    | ct::FLOAT
                    | ct::DOUBLE
                    | ct::DECIMAL
            );
            if is_numeric {
                if let Some(s) = &o.signedness {
                    def.unsigned = s.get(numeric_i).copied().unwrap_or(def.unsigned);
                }
                numeric_i += 1;
            }
            if is_character(t, meta) {
                if let Some(cs) = &o.column_charsets {
                    if let Some(id) = cs.get(char_i) {
                        def.charset = Some(self.collations.charset(*id));
                    }
                }
                char_i += 1;
                if full {
                    fill_string_length(&mut def, rt, meta);
                }
            }
            if rt == ct::ENUM || rt == ct::SET {
                if let Some(cs) = &o.enum_set_charsets {
                    if let Some(id) = cs.get(es_i) {
                        def.charset = Some(self.collations.charset(*id));
                    }
                }
                es_i += 1;
                let values = if rt == ct::ENUM {
                    let v = o.enum_values.as_ref().and_then(|v| v.get(enum_i));
                    enum_i += 1;
                    v
                } else {
                    let v = o.set_values.as_ref().and_then(|v| v.get(set_i));
                    set_i += 1;
                    v
                };
                if let Some(v) = values {
                    let cs = def.charset.clone().unwrap_or_else(Charset::utf8mb4);
                    def.values = v
                        .iter()
                        .map(|l| crate::schema::decode_text(l, &cs))
                        .collect::<Vec<_>>()
                        .into();
                }
            }
            if t == ct::GEOMETRY {
                if let Some(g) = o.geometry_types.as_ref().and_then(|g| g.get(geo_i)) {
                    def.geometry = Some(geometry_name(*g).into());
                }
                geo_i += 1;
            }
            if full && rt == ct::STRING {
                // The binlog describes MariaDB's INET4, INET6 and UUID as binary strings; the
                // tracked definition (information_schema, DDL) knows the type.
                let known = from_tracker
                    .filter(|c| c.name.eq_ignore_ascii_case(&def.name))
                    .or_else(|| {
                        tracked.as_ref().and_then(|d| {
                            d.columns
                                .iter()
                                .find(|c| c.name.eq_ignore_ascii_case(&def.name))
                        })
                    });
                if let Some(k) =
                    known.filter(|c| matches!(c.kind, Kind::Inet4 | Kind::Inet6 | Kind::Uuid))
                {
                    def.kind = k.kind;
                    def.charset = None;
                    def.length = 0;
                }
            }
            columns.push(ColumnPlan {
                def,
                binlog_type: rt,
                meta,
            });
        }
        if let Some(pk) = &o.primary_key {
            for c in columns.iter_mut() {
                c.def.key = false;
            }
            for &i in pk {
                if let Some(c) = columns.get_mut(i) {
                    c.def.key = true;
                }
            }
        } else if full {
            // No PK metadata: take keys from the tracker when it agrees on the names.
            if let Some(d) = &tracked {
                for c in columns.iter_mut() {
                    c.def.key = d
                        .columns
                        .iter()
                        .any(|tc| tc.key && tc.name.eq_ignore_ascii_case(&c.def.name));
                }
            }
        }
        let def = TableDef {
            schema: tme.schema.as_str().into(),
            table: tme.table.as_str().into(),
            columns: columns.iter().map(|c| c.def.clone()).collect(),
        };
        Ok(TableShape::new(def, columns))
    }

    fn untracked_error(&self, tme: &TableMapEvent) -> Error {
        let why = match self.tracker.get(&tme.schema, &tme.table) {
            Some(TableState::Unknown(sql)) => {
                format!("the schema tracker could not follow `{sql}`")
            }
            _ => "the schema tracker does not know the table".to_string(),
        };
        Error::new(
            ErrorKind::Data,
            format!(
                "table {}.{}: the binlog carries no column names (binlog_row_metadata is not FULL) \
                 and {why}",
                tme.schema, tme.table
            ),
        )
        .with_hint("SET GLOBAL binlog_row_metadata = FULL (and in the server config), then restart")
    }

    fn on_rows(&mut self, t: u8, data: &[u8], out: &mut Vec<ChangeEvent>) -> Result<()> {
        let rows = RowsEvent::parse(t, data)?;
        let Some(entry) = self.tables.get(&rows.table_id) else {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!(
                    "rows event for table id {} without a preceding table map",
                    rows.table_id
                ),
            ));
        };
        let Some(shape) = entry.clone() else {
            return Ok(()); // not captured
        };
        if rows.partial {
            return Err(Error::new(
                ErrorKind::Data,
                format!(
                    "table {}: a partial JSON update (PARTIAL_UPDATE_ROWS_EVENT) does not carry \
                     the full row",
                    shape.schema.id
                ),
            )
            .with_hint(
                "SET GLOBAL binlog_row_value_options = '' so updates log full JSON values",
            ));
        }
        if self.txn.is_none() {
            let id: Arc<str> = format!("{}:{}", self.file, self.pos).into();
            self.begin(self.pos, id, None, 0, 0, false)?;
        }
        let mut b = Buf(&rows.rows);
        let mut row_index = 0u64;
        while !b.is_empty() {
            let (op, before, after) = match rows.kind {
                RowsKind::Write => (
                    Op::Create,
                    None,
                    Some(shape.decode_row(rows.present, &mut b)?),
                ),
                RowsKind::Delete => (
                    Op::Delete,
                    Some(shape.decode_row(rows.present, &mut b)?),
                    None,
                ),
                RowsKind::Update => {
                    let before = shape.decode_row(rows.present, &mut b)?;
                    let after =
                        shape.decode_row(rows.present_after.unwrap_or(rows.present), &mut b)?;
                    (Op::Update, Some(before), Some(after))
                }
            };
            self.emit(
                out,
                op,
                Some(Arc::clone(&shape.schema)),
                before,
                after,
                row_index,
                None,
            );
            row_index += 1;
        }
        if self.held_bytes > self.max_xa_held_bytes {
            return Err(self.held_error());
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        out: &mut Vec<ChangeEvent>,
        op: Op,
        table: Option<Arc<TableSchema>>,
        before: Option<Vec<Value>>,
        after: Option<Vec<Value>>,
        row_in_event: u64,
        message: Option<LogicalMessage>,
    ) {
        let file = Arc::clone(&self.file);
        let Some(txn) = self.txn.as_mut() else {
            return;
        };
        if let Some(hold) = txn.hold.as_mut() {
            // The prepared part of an XA transaction: delivered at its XA COMMIT, if any.
            let change = HeldChange {
                op,
                table,
                before,
                after,
                row_in_event,
                message,
            };
            let bytes = change.estimated_size();
            hold.bytes += bytes;
            self.held_bytes += bytes;
            hold.changes.push(change);
            return;
        }
        if self
            .deliver_from
            .is_some_and(|d| (crate::position::file_seq(&file), txn.start_pos) < d)
        {
            return; // before the stream's start: only XA prepared parts are read there
        }
        txn.order += 1;
        let key = table.as_ref().map_or(0, |t| Arc::as_ptr(t) as usize);
        let table_order = match txn.table_orders.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                txn.table_orders.push((key, 1));
                1
            }
        };
        if txn.order <= txn.skip {
            return; // delivered before the restart
        }
        txn.delivered = Some(txn.order);
        // The event's position: its transaction's start and its order in it (a valid resume
        // point: a restart from it skips the events up to and including this one).
        let mut buf = std::mem::take(&mut self.pos_buf);
        buf.clear();
        buf.push_str(&txn.pos_prefix);
        buf.push_str(";row=");
        buf.push_str(itoa::Buffer::new().format(txn.order));
        buf.push_str(&txn.pos_suffix);
        let position = Position::new(Arc::<str>::from(buf.as_str()));
        self.pos_buf = buf;
        let gtid_value = if txn.gtid.is_some() {
            Value::Text(txn.id.to_string())
        } else {
            Value::Null
        };
        let ev = ChangeEvent {
            record: None,
            op,
            table,
            before,
            after,
            commit_ts_us: txn.ts_us,
            txn: Some(TxnInfo {
                id: Arc::clone(&txn.id),
                order: txn.order,
                table_order,
            }),
            position,
            source: SourceInfo {
                connector: "mysql",
                snapshot: SnapshotMarker::False,
                fields: vec![
                    ("server_id", Value::UInt(u64::from(txn.server_id))),
                    ("gtid", gtid_value),
                    ("file", Value::Text(file.to_string())),
                    ("pos", Value::UInt(txn.start_pos)),
                    ("row", Value::UInt(row_in_event)),
                    (
                        "thread",
                        txn.thread
                            .map_or(Value::Null, |t| Value::UInt(u64::from(t))),
                    ),
                ],
            },
            message,
        };
        out.push(ev);
    }
}

/// Log at debug how a stream was opened.
pub fn log_open(from: &BinlogPosition, gtid: bool) {
    debug!(position = %from, gtid, "opening the binlog stream");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TablePattern;
    use mysql_async::binlog::events::FormatDescriptionEvent;
    use mysql_async::binlog::BinlogVersion;

    /// A v4 event: 19-byte header then `body` (no checksum: the reader's default format
    /// description has checksums off).
    fn event(
        reader: &mut FormatDescriptionEvent<'static>,
        t: u8,
        log_pos: u32,
        body: &[u8],
    ) -> Event {
        let mut v = Vec::new();
        v.extend_from_slice(&1_700_000_000u32.to_le_bytes());
        v.push(t);
        v.extend_from_slice(&7u32.to_le_bytes());
        v.extend_from_slice(&((19 + body.len()) as u32).to_le_bytes());
        v.extend_from_slice(&log_pos.to_le_bytes());
        v.extend_from_slice(&0u16.to_le_bytes());
        v.extend_from_slice(body);
        Event::read(reader, &v[..]).unwrap()
    }

    fn mysql8_transaction(reader: &mut FormatDescriptionEvent<'static>) -> Vec<Event> {
        let sid = crate::position::parse_uuid("3e11fa47-71ca-11e1-9e33-c80aa9429562").unwrap();
        // Gtid_log_event: flags, sid, gno 7, lt_type 2, last_committed, sequence_number,
        // immediate_commit_timestamp (7 bytes).
        let mut gtid = vec![1u8];
        gtid.extend_from_slice(&sid);
        gtid.extend_from_slice(&7u64.to_le_bytes());
        gtid.push(2);
        gtid.extend_from_slice(&0u64.to_le_bytes());
        gtid.extend_from_slice(&1u64.to_le_bytes());
        gtid.extend_from_slice(&1_700_000_000_654_321u64.to_le_bytes()[..7]);
        // Query_event "BEGIN" of thread 42.
        let begin = query_body("BEGIN");
        // Table_map_log_event with FULL metadata: (id INT UNSIGNED PK, doc JSON,
        // price DECIMAL(10,2), name VARCHAR(20) utf8mb4).
        let types = [ct::LONG, ct::JSON, ct::NEWDECIMAL, ct::VARCHAR];
        let meta = [4, 10, 2, 80, 0];
        let mut opt = vec![1, 1, 0b1000_0000]; // signedness: id unsigned, price signed
        opt.extend_from_slice(&[2, 3, 0xfc, 0xff, 0x00]); // default charset 255
        let mut names = Vec::new();
        for n in ["id", "doc", "price", "name"] {
            names.push(n.len() as u8);
            names.extend_from_slice(n.as_bytes());
        }
        opt.push(4);
        opt.push(names.len() as u8);
        opt.extend_from_slice(&names);
        opt.extend_from_slice(&[8, 1, 0]); // primary key: id
        let tmap = crate::binlog::tests::table_map_bytes(&types, &meta, &opt);
        // Write_rows_log_event v2: table id, flags, extra-data length 2, 4 columns, all present.
        let mut rows = vec![0x02, 0x01, 0, 0, 0, 0, 0, 0, 2, 0, 4, 0x0f];
        rows.push(0x00); // null bitmap
        rows.extend_from_slice(&u32::MAX.to_le_bytes());
        // {"a":1} as a small binary JSON object
        let doc = [0x00, 1, 0, 12, 0, 11, 0, 1, 0, 0x05, 1, 0, b'a'];
        rows.extend_from_slice(&(doc.len() as u32).to_le_bytes());
        rows.extend_from_slice(&doc);
        rows.extend_from_slice(&[0x80, 0, 0, 12, 50]); // DECIMAL(10,2) 12.50
        rows.extend_from_slice(&[1, b'x']);
        vec![
            event(reader, et::GTID, 200, &gtid),
            event(reader, et::QUERY, 300, &begin),
            event(reader, et::TABLE_MAP, 400, &tmap),
            event(reader, et::WRITE_ROWS, 500, &rows),
            event(reader, et::XID, 531, &9u64.to_le_bytes()),
        ]
    }

    fn decoder(from: &BinlogPosition) -> Decoder {
        let filter = TableFilter::new(vec![TablePattern {
            schema: "db".into(),
            table: "*".into(),
        }]);
        Decoder::new(
            Flavor::MySql,
            filter,
            Collations::default(),
            SchemaTracker::new(),
            from,
        )
        .unwrap()
    }

    #[test]
    fn a_mysql8_transaction_decodes_with_its_gtid_json_and_metadata() {
        // GIVEN a MySQL 8 transaction as the server sends it
        let mut reader = FormatDescriptionEvent::new(BinlogVersion::Version4);
        let events = mysql8_transaction(&mut reader);
        let uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let from = BinlogPosition::new("binlog.000001", 157, Some(format!("{uuid}:1-6")));
        // WHEN it is decoded
        let mut d = decoder(&from);
        let mut out = Vec::new();
        for e in &events {
            d.process(e, &mut out).unwrap();
        }
        // THEN one create event carries the row, its GTID, commit time and source fields
        assert_eq!(out.len(), 1);
        let e = &out[0];
        assert_eq!(e.op, Op::Create);
        assert_eq!(
            e.after.as_ref().unwrap(),
            &vec![
                Value::Int(4_294_967_295),
                Value::Json(r#"{"a":1}"#.into()),
                Value::Decimal("12.50".into()),
                Value::Text("x".into()),
            ]
        );
        let txn = e.txn.as_ref().unwrap();
        assert_eq!(&*txn.id, format!("{uuid}:7"));
        assert_eq!(e.commit_ts_us, 1_700_000_000_654_321);
        assert_eq!(e.source.fields[5].1, Value::UInt(42), "thread from BEGIN");
        let types: Vec<&str> = e
            .table
            .as_ref()
            .unwrap()
            .columns
            .iter()
            .map(|c| &*c.type_name)
            .collect();
        assert_eq!(
            types,
            ["int unsigned", "json", "decimal(10,2)", "varchar(20)"]
        );
        assert!(e.table.as_ref().unwrap().columns[0].key);
        assert_eq!(
            e.position.as_str(),
            format!("file=binlog.000001;pos=157;row=1;gtids={uuid}:1-6;txn={uuid}:7")
        );
        // AND after the XID the resume point is the next transaction, with the GTID added
        assert_eq!(
            d.resume_point().to_string(),
            format!("file=binlog.000001;pos=531;gtids={uuid}:1-7")
        );
    }

    #[test]
    fn crc32_checksums_are_verified() {
        use mysql_async::binlog::events::BinlogEventFooter;
        use mysql_async::binlog::BinlogChecksumAlg;
        // GIVEN a reader whose format description says events end with a CRC32
        let alg = BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32;
        let fde = FormatDescriptionEvent::new(BinlogVersion::Version4)
            .with_footer(BinlogEventFooter::new(alg));
        let build = |checksum: u32, body: &[u8]| {
            let mut v = Vec::new();
            v.extend_from_slice(&1_700_000_000u32.to_le_bytes());
            v.push(et::XID);
            v.extend_from_slice(&7u32.to_le_bytes());
            v.extend_from_slice(&((19 + body.len() + 4) as u32).to_le_bytes());
            v.extend_from_slice(&100u32.to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes());
            v.extend_from_slice(body);
            v.extend_from_slice(&checksum.to_le_bytes());
            Event::read(&fde, &v[..]).unwrap()
        };
        let body = 9u64.to_le_bytes();
        let good = build(0, &body).calc_checksum(alg);
        // WHEN the stored checksum matches THEN the event passes
        verify_checksum(&build(good, &body)).unwrap();
        // AND WHEN a byte changed on the way THEN it is a (retryable) error
        let e = verify_checksum(&build(good, &8u64.to_le_bytes())).unwrap_err();
        assert!(e.message().contains("checksum mismatch"), "{e}");
        assert!(e.is_retryable());
    }

    #[test]
    fn resuming_inside_the_transaction_skips_what_was_delivered() {
        // GIVEN the position of the transaction's first (and only) event
        let mut reader = FormatDescriptionEvent::new(BinlogVersion::Version4);
        let events = mysql8_transaction(&mut reader);
        let mut from = BinlogPosition::new("binlog.000001", 157, None);
        from.row = 1;
        // WHEN the transaction is decoded again from it
        let mut d = decoder(&from);
        let mut out = Vec::new();
        for e in &events[..4] {
            d.process(e, &mut out).unwrap();
        }
        // THEN nothing is delivered twice, and the resume point stays inside the transaction
        assert!(out.is_empty());
        assert_eq!(d.resume_point().row, 1);
        d.process(&events[4], &mut out).unwrap();
        assert_eq!(d.resume_point().row, 0);
        assert_eq!(d.resume_point().pos, 531);
    }

    fn query_body(sql: &str) -> Vec<u8> {
        let mut q = Vec::new();
        q.extend_from_slice(&42u32.to_le_bytes());
        q.extend_from_slice(&0u32.to_le_bytes());
        q.push(0);
        q.extend_from_slice(&0u16.to_le_bytes());
        q.extend_from_slice(&0u16.to_le_bytes());
        q.push(0);
        q.extend_from_slice(sql.as_bytes());
        q
    }

    fn mysql_gtid_body(gno: u64) -> Vec<u8> {
        let sid = crate::position::parse_uuid("3e11fa47-71ca-11e1-9e33-c80aa9429562").unwrap();
        let mut g = vec![1u8];
        g.extend_from_slice(&sid);
        g.extend_from_slice(&gno.to_le_bytes());
        g
    }

    fn xa_prepare_body(one_phase: bool, gtrid: &[u8]) -> Vec<u8> {
        let mut x = vec![u8::from(one_phase)];
        x.extend_from_slice(&1u32.to_le_bytes());
        x.extend_from_slice(&(gtrid.len() as u32).to_le_bytes());
        x.extend_from_slice(&0u32.to_le_bytes());
        x.extend_from_slice(gtrid);
        x
    }

    #[test]
    fn a_mysql_xa_transaction_is_held_from_prepare_to_commit_or_rollback() {
        // GIVEN MySQL's XA groups: GTID, XA START, rows, XA END, XA_PREPARE; later GTID and
        // XA COMMIT (or XA ROLLBACK) of the same XID
        let mut reader = FormatDescriptionEvent::new(BinlogVersion::Version4);
        let tx = mysql8_transaction(&mut reader);
        let prepared = |r: &mut FormatDescriptionEvent<'static>, gtrid: &str, one_phase: bool| {
            vec![
                event(r, et::GTID, 200, &mysql_gtid_body(7)),
                event(
                    r,
                    et::QUERY,
                    300,
                    &query_body(&format!("XA START X'{}',X'',1", hex(gtrid))),
                ),
                event(r, et::TABLE_MAP, 400, tx[2].data()),
                event(r, et::WRITE_ROWS, 500, tx[3].data()),
                event(
                    r,
                    et::QUERY,
                    550,
                    &query_body(&format!("XA END X'{}',X'',1", hex(gtrid))),
                ),
                event(
                    r,
                    et::XA_PREPARE,
                    600,
                    &xa_prepare_body(one_phase, gtrid.as_bytes()),
                ),
            ]
        };
        fn hex(s: &str) -> String {
            s.bytes().map(|b| format!("{b:02x}")).collect()
        }
        let resolve = |r: &mut FormatDescriptionEvent<'static>, verb: &str, gtrid: &str| {
            vec![
                event(r, et::GTID, 700, &mysql_gtid_body(8)),
                event(
                    r,
                    et::QUERY,
                    800,
                    &query_body(&format!("XA {verb} X'{}',X'',1", hex(gtrid))),
                ),
            ]
        };
        let from = BinlogPosition::new("binlog.000001", 157, None);
        // WHEN the prepared part is read THEN nothing is delivered and the resume point stays
        // before it
        let mut d = decoder(&from);
        let mut out = Vec::new();
        for e in &prepared(&mut reader, "a", false) {
            d.process(e, &mut out).unwrap();
        }
        assert!(out.is_empty());
        assert_eq!(d.xa_floor().map(|p| p.pos), Some(157));
        // AND WHEN it is committed THEN its row is delivered as the commit group's event
        for e in &resolve(&mut reader, "COMMIT", "a") {
            d.process(e, &mut out).unwrap();
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].op, Op::Create);
        assert!(out[0]
            .position
            .as_str()
            .starts_with("file=binlog.000001;pos=600;row=1"));
        assert!(d.xa_floor().is_none());
        assert_eq!(d.take_released_floor().map(|p| p.pos), Some(157));
        assert_eq!(d.resume_point().pos, 800);

        // WHEN another is prepared and rolled back THEN nothing is delivered
        let mut d = decoder(&from);
        let mut out = Vec::new();
        for e in
            prepared(&mut reader, "b", false)
                .iter()
                .chain(&resolve(&mut reader, "ROLLBACK", "b"))
        {
            d.process(e, &mut out).unwrap();
        }
        assert!(out.is_empty());
        assert!(d.xa_floor().is_none());

        // WHEN one is committed in one phase (XA_PREPARE with one_phase) THEN it is delivered
        let mut d = decoder(&from);
        let mut out = Vec::new();
        for e in &prepared(&mut reader, "c", true) {
            d.process(e, &mut out).unwrap();
        }
        assert_eq!(out.len(), 1);
        assert!(d.xa_floor().is_none());
    }

    #[test]
    fn xa_statements_and_xids_are_recognised() {
        assert_eq!(
            xa_statement("XA COMMIT X'7831',X'',1").map(|(v, r)| (v, r.trim())),
            Some((XaVerb::Commit, "X'7831',X'',1"))
        );
        assert_eq!(
            xa_statement("xa  rollback 'a'").map(|(v, _)| v),
            Some(XaVerb::Rollback)
        );
        assert!(xa_statement("XACOMMIT").is_none());
        assert!(xa_statement("SELECT 1").is_none());
        let x = Xid::parse_sql(" X'41',X'42',3").unwrap();
        assert_eq!(x.to_string(), "X'41',X'42',3");
        assert_eq!(Xid::parse_sql("'A', 'B', 3"), Some(x.clone()));
        assert_eq!(Xid::parse_sql("0x41,0x42,3 ONE PHASE"), Some(x));
        assert_eq!(Xid::parse_sql("'a'").unwrap().to_string(), "X'61',X'',1");
    }

    #[test]
    fn statement_logged_changes_to_captured_tables_are_errors() {
        let from = BinlogPosition::new("binlog.000001", 157, None);
        let d = decoder(&from);
        for sql in [
            "INSERT INTO t VALUES (1)",
            "insert low_priority ignore db.t (a) values (1)",
            "REPLACE INTO `t` SET a = 1",
            "UPDATE other.u JOIN db.t ON u.a = t.a SET u.b = 1",
            "DELETE FROM t WHERE a = 1",
            "DELETE t.* FROM t, other.u WHERE t.a = u.a",
            "LOAD DATA INFILE '/tmp/x' INTO TABLE t",
            "WITH x AS (SELECT 1) UPDATE t SET a = 1",
        ] {
            let e = d
                .statement_change_error(sql, "db", 100)
                .unwrap_or_else(|| panic!("no error for {sql}"));
            assert_eq!(e.kind(), ErrorKind::Precondition);
            assert!(e.message().contains("db.t"), "{}", e.message());
            assert!(e.hint().unwrap_or("").contains("binlog_format"));
        }
        for sql in [
            "INSERT INTO other.t VALUES (1)",
            "UPDATE u SET a = 1",
            "SAVEPOINT a",
            "SELECT 1",
            "CREATE USER x",
        ] {
            assert!(
                d.statement_change_error(sql, "other", 100).is_none(),
                "{sql}"
            );
        }
    }
}
