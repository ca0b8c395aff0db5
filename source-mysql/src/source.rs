//! The [`Source`] implementation: snapshot, then stream; checkpoints; `cdc check`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use connector_core::{
    Batch, ChangeEvent, Check, Context, Error, ErrorKind, Metrics, Position, Reason, Result, Source,
};
use mysql_async::Conn;
use tokio::sync::mpsc::error::TryRecvError;
use tracing::{debug, info, warn};

use crate::config::{GtidSetting, Settings, SnapshotMode};
use crate::ddl::SchemaTracker;
use crate::error::PURGED_HINT;
use crate::history::{self, SchemaHistory};
use crate::position::BinlogPosition;
use crate::replication::{
    connect, current_position, load_collations, log_open, open_stream, query, server_info, Decoder,
    EventReader, Flavor, ServerInfo,
};
use crate::snapshot::{load_table_defs, Snapshot};

/// Where the table definitions of a stream's start come from.
enum Start {
    /// The snapshot's (read in its transaction).
    Snapshot(SchemaTracker),
    /// The live catalog: a stream without a snapshot and without a stored position.
    Fresh,
    /// The schema history at the stored position.
    Resume,
}

enum Phase {
    Idle,
    Snapshot(Box<Snapshot>),
    Streaming(Box<Stream>),
    Finished,
}

struct Stream {
    reader: EventReader,
    decoder: Decoder,
    /// Decoded events beyond the batch bound (a rows event is decoded whole).
    pending: VecDeque<ChangeEvent>,
    /// While `pending` holds changes of a committed XA transaction: the position before its
    /// prepared part (checkpoints must not pass it until they are delivered), and how many
    /// events at the front of `pending` are to be delivered until then.
    pending_floor: Option<(BinlogPosition, usize)>,
    /// Where the DDL statements the decoder passes are appended.
    history: SchemaHistory,
    /// While checkpoints are before it: the point delivery started from (see
    /// [`BinlogPosition::deliver`]), carried in them.
    deliver: Option<(String, u64)>,
}

/// The MySQL / MariaDB binlog source.
pub struct MysqlSource {
    settings: Settings,
    metrics: Arc<Metrics>,
    info: Option<ServerInfo>,
    phase: Phase,
    last_checkpoint: Option<BinlogPosition>,
    committed: Option<Position>,
    /// Whether this attempt streamed any event (a purged-binlog error before the first one may
    /// turn into a new snapshot under `when_needed`).
    streamed_any: bool,
}

impl MysqlSource {
    /// A source for validated settings.
    pub fn new(settings: Settings, ctx: &Context) -> Self {
        MysqlSource {
            settings,
            metrics: Arc::clone(&ctx.metrics),
            info: None,
            phase: Phase::Idle,
            last_checkpoint: None,
            committed: None,
            streamed_any: false,
        }
    }

    /// The replica server id this source registers with.
    pub fn server_id(&self) -> u32 {
        self.settings.server_id
    }

    /// The last position handed to [`Source::commit`].
    pub fn committed(&self) -> Option<&Position> {
        self.committed.as_ref()
    }

    /// The server connection id of the binlog stream, while streaming.
    pub fn binlog_connection_id(&self) -> Option<u32> {
        match &self.phase {
            Phase::Streaming(s) => Some(s.reader.connection_id),
            _ => None,
        }
    }

    /// Whether a snapshot is running.
    pub fn snapshotting(&self) -> bool {
        matches!(self.phase, Phase::Snapshot(_))
    }

    /// Whether the decoder had to use the schema tracker (no column names in the binlog).
    pub fn used_schema_tracker(&self) -> bool {
        match &self.phase {
            Phase::Streaming(s) => s.decoder.used_tracker,
            _ => false,
        }
    }

    async fn preflight(&self, conn: &mut Conn) -> Result<()> {
        let vars: Vec<(String, String)> = query(
            conn,
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin', 'binlog_format', \
             'binlog_row_image')",
        )
        .await?;
        let get = |k: &str| {
            vars.iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.to_ascii_uppercase())
        };
        if get("log_bin").as_deref() != Some("ON") {
            return Err(Error::new(
                ErrorKind::Precondition,
                format!("the binary log is disabled on {}", self.settings.address),
            )
            .with_hint("start the server with log_bin, binlog_format=ROW, binlog_row_image=FULL"));
        }
        if get("binlog_format").as_deref() != Some("ROW") {
            return Err(Error::new(
                ErrorKind::Precondition,
                format!(
                    "binlog_format is {} on {}, not ROW",
                    get("binlog_format").unwrap_or_default(),
                    self.settings.address
                ),
            )
            .with_hint("SET GLOBAL binlog_format = 'ROW' and set it in the server config"));
        }
        if get("binlog_row_image").as_deref() != Some("FULL") {
            warn!(
                binlog_row_image = get("binlog_row_image").unwrap_or_default(),
                "binlog_row_image is not FULL: columns missing from row images are delivered as \
                 unavailable"
            );
        }
        Ok(())
    }

    async fn binlog_files(conn: &mut Conn) -> Result<Vec<String>> {
        let rows: Vec<mysql_async::Row> = query(conn, "SHOW BINARY LOGS").await?;
        Ok(rows
            .into_iter()
            .filter_map(|mut r| r.take::<String, _>(0))
            .collect())
    }

    async fn start_streaming(
        &mut self,
        conn: &mut Conn,
        info: &ServerInfo,
        from: &BinlogPosition,
        start: Start,
    ) -> Result<()> {
        let collations = load_collations(conn).await?;
        let history = SchemaHistory::new(self.settings.history_path.clone());
        let fresh = !matches!(start, Start::Resume);
        let tracker = self.tracker_at(conn, &history, from, start).await?;
        // A fresh start after the prepared part of XA transactions committed later: read from
        // the earliest such part, holding them, and deliver from `from` on.
        let early = if fresh {
            let xids = crate::xa::prepared_before(conn, from).await?;
            if xids.is_empty() {
                None
            } else {
                let mut e = crate::xa::earliest_prepared_part(conn, from, &xids).await?;
                e.gtids = match info.flavor {
                    Flavor::MariaDb => {
                        let sql = format!(
                            "SELECT BINLOG_GTID_POS('{}', {})",
                            e.file.replace('\'', ""),
                            e.pos
                        );
                        query::<Option<String>>(conn, &sql)
                            .await?
                            .into_iter()
                            .flatten()
                            .next()
                    }
                    Flavor::MySql => None,
                };
                e.deliver = Some((from.file.clone(), from.pos));
                info!(xids = %xids.join(" "), from = %e, deliver = %from,
                    "XA transactions were prepared before the stream's start: reading their \
                     prepared parts first");
                Some(e)
            }
        } else {
            None
        };
        let from = early.as_ref().unwrap_or(from);
        let files = Self::binlog_files(conn).await?;
        let file_present = files.contains(&from.file);
        let use_gtid = match self.settings.config.gtid {
            GtidSetting::Off => false,
            GtidSetting::On => {
                if from.gtids.is_none() {
                    return Err(Error::new(
                        ErrorKind::Precondition,
                        format!("`gtid: true` but the position {from} has no GTID set"),
                    )
                    .with_hint(
                        "enable GTIDs on the server (MySQL: gtid_mode=ON) or set `gtid: auto`",
                    ));
                }
                true
            }
            // Resume by file and offset while the file exists; by GTID after a failover or
            // when the file is gone.
            GtidSetting::Auto => !file_present && from.gtids.is_some(),
        };
        if !use_gtid && !file_present {
            return Err(purged_error(from, &files));
        }
        log_open(from, use_gtid);
        let reader = open_stream(&self.settings, info, from, use_gtid).await?;
        let mut decoder = Decoder::new(
            info.flavor,
            self.settings.filter.clone(),
            collations,
            tracker,
            from,
        )?;
        let checksum: Vec<String> = query(conn, "SELECT @@GLOBAL.binlog_checksum").await?;
        decoder.server_checksums = checksum
            .first()
            .is_some_and(|c| !c.eq_ignore_ascii_case("NONE"));
        decoder.max_xa_held_bytes = self.settings.config.max_xa_held_bytes;
        decoder.resume_by_gtid = use_gtid;
        info!(position = %from, gtid = use_gtid, server_id = self.settings.server_id,
            "streaming the binlog");
        self.phase = Phase::Streaming(Box::new(Stream {
            reader,
            decoder,
            pending: VecDeque::new(),
            pending_floor: None,
            history,
            deliver: from.deliver.clone(),
        }));
        Ok(())
    }

    /// The table definitions at `from`: the snapshot's, the live catalog's at a fresh start,
    /// or rebuilt from the schema history on a resume. A fresh start begins the history anew.
    async fn tracker_at(
        &self,
        conn: &mut Conn,
        history: &SchemaHistory,
        from: &BinlogPosition,
        start: Start,
    ) -> Result<SchemaTracker> {
        // Before a `deliver` point no DDL is applied: the definitions are those of that point.
        let at = match &from.deliver {
            Some((file, pos)) => BinlogPosition::new(file.clone(), *pos, None),
            None => from.clone(),
        };
        let from = &at;
        let tracker = match start {
            Start::Snapshot(t) => t,
            Start::Fresh => live_tracker(conn, &self.settings).await?,
            Start::Resume => {
                let (h, at) = (history.clone(), from.clone());
                match history::blocking(move || h.rebuild(&at)).await? {
                    Some(t) => {
                        info!(position = %from, history = %history.path().display(),
                            "table definitions rebuilt from the schema history");
                        return Ok(t);
                    }
                    None => {
                        warn!(position = %from, history = %history.path().display(),
                            "no schema history covers the resume position: table definitions \
                             are read from the live catalog, so rows written before a later \
                             DDL may be decoded with the wrong columns unless \
                             binlog_row_metadata=FULL; the history starts here");
                        live_tracker(conn, &self.settings).await?
                    }
                }
            }
        };
        let (h, at, t) = (history.clone(), from.clone(), tracker.clone());
        history::blocking(move || h.reset(&at, &t)).await?;
        Ok(tracker)
    }

    async fn start_snapshot(&mut self, info: &ServerInfo) -> Result<()> {
        let snap = Snapshot::start(&self.settings, info, Arc::clone(&self.metrics)).await?;
        self.phase = Phase::Snapshot(Box::new(snap));
        Ok(())
    }

    async fn after_snapshot(&mut self, snap: Box<Snapshot>) -> Result<()> {
        if self.settings.config.snapshot == SnapshotMode::InitialOnly {
            self.phase = Phase::Finished;
            return Ok(());
        }
        let info = self
            .info
            .clone()
            .ok_or_else(|| Error::internal("no server info"))?;
        let mut conn = connect(&self.settings).await?;
        let mut tracker = SchemaTracker::new();
        for d in snap.defs.clone() {
            tracker.insert(d);
        }
        let point = snap.point.clone();
        drop(snap);
        let r = self
            .start_streaming(&mut conn, &info, &point, Start::Snapshot(tracker))
            .await;
        let _ = conn.disconnect().await;
        r
    }

    async fn snapshot_batch(&mut self) -> Result<Option<Batch>> {
        let max = self.settings.config.max_batch_events;
        let wait = Duration::from_millis(self.settings.config.max_batch_wait_ms);
        let Phase::Snapshot(snap) = &mut self.phase else {
            return Err(Error::internal("not snapshotting"));
        };
        let (events, done) = snap.next(max, wait).await?;
        if !done {
            let cp = snap.in_progress_position().clone();
            return Ok(Some(Batch::new(events, Some(cp))));
        }
        let point = snap.point.clone();
        let Phase::Snapshot(snap) = std::mem::replace(&mut self.phase, Phase::Idle) else {
            unreachable!("checked above");
        };
        self.after_snapshot(snap).await?;
        // When the stream reads XA prepared parts from before the snapshot point first, the
        // point is not a safe resume position yet: where the stream starts is.
        let point = match &self.phase {
            Phase::Streaming(s) if s.deliver.is_some() => {
                let mut p = s.decoder.resume_point();
                p.deliver = s.deliver.clone();
                p
            }
            _ => point,
        };
        self.last_checkpoint = Some(point.clone());
        Ok(Some(Batch::new(events, Some(point.to_position()))))
    }

    async fn stream_batch(&mut self) -> Result<Option<Batch>> {
        let max = self.settings.config.max_batch_events;
        let deadline = tokio::time::Instant::now()
            + Duration::from_millis(self.settings.config.max_batch_wait_ms);
        let Phase::Streaming(stream) = &mut self.phase else {
            return Err(Error::internal("not streaming"));
        };
        let mut events: Vec<ChangeEvent> = Vec::with_capacity(max.min(16_384));
        while events.len() < max {
            match stream.pending.pop_front() {
                Some(e) => events.push(e),
                None => break,
            }
        }
        let lifted = match &mut stream.pending_floor {
            Some((_, left)) => {
                *left = left.saturating_sub(events.len());
                *left == 0
            }
            None => false,
        };
        if lifted {
            stream.pending_floor = None;
        }
        // The earliest floor of XA transactions committed in this batch, and the end (in
        // `events`) of their released changes.
        let mut released: Option<(BinlogPosition, usize)> = None;
        while stream.pending.is_empty() && events.len() < max {
            // Wait while nothing was produced or a transaction is open (so checkpoints fall on
            // transaction ends unless a transaction outgrows a batch); else drain what is ready.
            let wait = events.is_empty() || stream.decoder.in_transaction();
            let item = if wait {
                match tokio::time::timeout_at(deadline, stream.reader.rx.recv()).await {
                    Ok(item) => item,
                    Err(_) => break,
                }
            } else {
                match stream.reader.rx.try_recv() {
                    Ok(item) => Some(item),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => None,
                }
            };
            let Some(item) = item else {
                return Err(Error::new(
                    ErrorKind::Connection,
                    "the binlog reader stopped",
                ));
            };
            let ev = match item {
                Ok(ev) => ev,
                Err(e)
                    if e.reason() == Some(Reason::PositionPurged)
                        && self.settings.config.snapshot == SnapshotMode::WhenNeeded
                        && !self.streamed_any =>
                {
                    // The server could not find the GTID or position to resume from.
                    warn!(error = %e.report(), "the stored position was purged; taking a new snapshot (snapshot: when_needed)");
                    let info = self
                        .info
                        .clone()
                        .ok_or_else(|| Error::internal("no server info"))?;
                    self.start_snapshot(&info).await?;
                    return Ok(Some(Batch::default()));
                }
                Err(e) => return Err(e),
            };
            stream.decoder.process(&ev, &mut events)?;
            let ddl = stream.decoder.take_history();
            if !ddl.is_empty() {
                // Durable before any position after the statements is stored.
                let h = stream.history.clone();
                history::blocking(move || h.append(&ddl)).await?;
            }
            if let Some(f) = stream.decoder.take_released_floor() {
                released = Some(match released {
                    Some((g, _)) if g < f => (g, events.len()),
                    _ => (f, events.len()),
                });
            }
            if events.len() > max {
                stream.pending.extend(events.drain(max..));
            }
        }
        // Pending is filled only when it was empty: its first `end - max` events are up to the
        // last released XA change.
        if let Some((f, end)) = released.filter(|(_, end)| *end > max) {
            stream.pending_floor = Some(match stream.pending_floor.take() {
                Some((g, left)) => (g.min(f), left.max(end - max)),
                None => (f, end - max),
            });
        }
        // Every event's position is a valid resume point (it counts the events of its
        // transaction delivered up to it); when decoded events wait for the next batch, the
        // checkpoint is the last one delivered.
        let mut resume = if stream.pending.is_empty() {
            stream.decoder.resume_point()
        } else {
            match events.last() {
                Some(e) => BinlogPosition::parse(e.position.as_str())?,
                None => stream.decoder.resume_point(),
            }
        };
        // XA transactions: their changes are held from the prepared part to the XA COMMIT, so a
        // restart must read again from before the prepared part while one is unresolved, or
        // while the changes of a committed one wait in `pending` (later transactions are then
        // delivered again: at least once).
        for floor in [
            stream.pending_floor.as_ref().map(|(f, _)| f),
            stream.decoder.xa_floor(),
        ]
        .into_iter()
        .flatten()
        {
            if *floor < resume {
                resume = floor.clone();
            }
        }
        if let Some((file, pos)) = stream.deliver.clone() {
            if (resume.file_seq(), resume.pos) < (crate::position::file_seq(&file), pos) {
                resume.deliver = Some((file, pos));
            } else {
                stream.deliver = None;
            }
        }
        let checkpoint = if self.last_checkpoint.as_ref() != Some(&resume) {
            Some(resume.to_position())
        } else if events.is_empty() {
            None
        } else {
            Some(resume.to_position())
        };
        self.last_checkpoint = Some(resume);
        self.streamed_any |= !events.is_empty();
        Ok(Some(Batch::new(events, checkpoint)))
    }
}

/// The table definitions of the live catalog.
async fn live_tracker(conn: &mut Conn, settings: &Settings) -> Result<SchemaTracker> {
    let mut t = SchemaTracker::new();
    for d in load_table_defs(conn, &settings.filter).await? {
        t.insert(d);
    }
    Ok(t)
}

fn purged_error(from: &BinlogPosition, files: &[String]) -> Error {
    Error::new(
        ErrorKind::Data,
        format!(
            "cannot resume from {from}: binlog file {} is no longer on the server (it has {})",
            from.file,
            match (files.first(), files.last()) {
                (Some(a), Some(b)) => format!("{a} .. {b}"),
                _ => "none".to_string(),
            }
        ),
    )
    .with_reason(Reason::PositionPurged)
    .with_hint(PURGED_HINT)
}

#[async_trait]
impl Source for MysqlSource {
    async fn start(&mut self, resume: Option<Position>) -> Result<()> {
        self.phase = Phase::Idle;
        self.streamed_any = false;
        let mut conn = connect(&self.settings).await?;
        let result = async {
            let info = server_info(&mut conn).await?;
            debug!(version = %info.version, "connected");
            self.preflight(&mut conn).await?;
            self.info = Some(info.clone());
            let mode = self.settings.config.snapshot;
            let resume = resume.map(|p| BinlogPosition::parse(p.as_str())).transpose()?;
            self.last_checkpoint = resume.clone();
            match resume {
                Some(p) if p.snapshot => {
                    info!(position = %p, "the previous snapshot did not finish; taking it again");
                    if mode == SnapshotMode::Never {
                        let mut p = p;
                        p.snapshot = false;
                        self.start_streaming(&mut conn, &info, &p, Start::Resume)
                            .await
                    } else {
                        self.start_snapshot(&info).await
                    }
                }
                Some(_) if mode == SnapshotMode::InitialOnly => {
                    self.phase = Phase::Finished;
                    Ok(())
                }
                Some(p) => {
                    match self
                        .start_streaming(&mut conn, &info, &p, Start::Resume)
                        .await
                    {
                        Err(e) if e.reason() == Some(Reason::PositionPurged)
                            && mode == SnapshotMode::WhenNeeded =>
                        {
                            warn!(error = %e.report(), "the stored position was purged; taking a new snapshot (snapshot: when_needed)");
                            self.start_snapshot(&info).await
                        }
                        r => r,
                    }
                }
                None if mode == SnapshotMode::Never => {
                    let p = current_position(&mut conn, &info).await?;
                    self.start_streaming(&mut conn, &info, &p, Start::Fresh)
                        .await
                }
                None => self.start_snapshot(&info).await,
            }
        }
        .await;
        let _ = conn.disconnect().await;
        result
    }

    async fn captured_tables(&mut self) -> Result<Option<Vec<connector_core::TableSchema>>> {
        let mut conn = connect(&self.settings).await?;
        let defs = load_table_defs(&mut conn, &self.settings.filter).await;
        let _ = conn.disconnect().await;
        Ok(Some(defs?.iter().map(|d| d.to_schema()).collect()))
    }

    async fn next_batch(&mut self) -> Result<Option<Batch>> {
        match &self.phase {
            Phase::Idle => Err(Error::internal("next_batch before start")),
            Phase::Finished => Ok(None),
            Phase::Snapshot(_) => self.snapshot_batch().await,
            Phase::Streaming(_) => self.stream_batch().await,
        }
    }

    async fn commit(&mut self, position: &Position) -> Result<()> {
        // The binlog is kept by the server's own expiry; there is nothing to release. Parse to
        // catch a foreign position early.
        BinlogPosition::parse(position.as_str())?;
        self.committed = Some(position.clone());
        Ok(())
    }

    async fn stop(&mut self) -> Result<()> {
        self.phase = Phase::Idle;
        Ok(())
    }

    async fn check(&mut self) -> Vec<Check> {
        crate::checks::run(&self.settings).await
    }
}
