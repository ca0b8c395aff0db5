//! The [`Source`] implementation: start (preconditions, publication, slot, snapshot or stream),
//! `next_batch`, `commit` and `stop`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use connector_core::{
    Batch, ChangeEvent, Check, ConfigSection, Context, Error, ErrorKind, Metrics, Position, Result,
    SnapshotMarker, Source,
};
use rustls::ClientConfig;
use tokio::sync::mpsc::error::TryRecvError;
use tokio_postgres::Client;
use tracing::{info, warn};

use crate::catalog::{self, quote_ident, TableInfo, TableSelector};
use crate::config::{PostgresConfig, Settings, SnapshotMode};
use crate::decode::Decoder;
use crate::error::pg_error;
use crate::incremental::{self, Incremental};
use crate::position::{Lsn, PgPosition};
use crate::protocol::ReplConnection;
use crate::replication::{self, Chunk, StreamHandle, StreamSetup, Tasks};
use crate::snapshot::{self, Exporter, SnapMsg, SnapshotRun, SnapshotSpec, SnapshotTable};
use crate::types::{TypeCache, SESSION_OPTIONS};

/// How long `next_batch` waits for data before returning an empty batch.
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// How long to wait for a previous walsender to release the slot.
const SLOT_RELEASE_WAIT: Duration = Duration::from_secs(15);
/// Oldest supported server (logical replication with pgoutput).
const MIN_SERVER_VERSION: u32 = 100_000;

/// The registry factory for `type: postgres`.
pub fn factory(section: &ConfigSection, ctx: &Context) -> Result<Box<dyn Source>> {
    let config = PostgresConfig::from_section(section)?;
    Ok(Box::new(PostgresSource::new(config, ctx)?))
}

enum Phase {
    NotStarted,
    Snapshot(SnapshotRun),
    OpenStream(PgPosition),
    Streaming(StreamHandle),
    Finished,
}

/// The PostgreSQL source.
pub struct PostgresSource {
    settings: Settings,
    metrics: Arc<Metrics>,
    tls: Option<Arc<ClientConfig>>,
    client: Option<Arc<Client>>,
    server_version: u32,
    tables: Vec<TableInfo>,
    types: TypeCache,
    phase: Phase,
    health: Arc<connector_core::Health>,
    committed: Lsn,
    background: Tasks,
    held: Option<ChangeEvent>,
    first_sent: bool,
    stash: Option<Chunk>,
    pending_error: Option<Error>,
    /// The signalling table, resolved at start.
    signal_table: Option<TableInfo>,
    /// Incremental snapshots, when a signalling table is configured.
    incremental: Option<Incremental>,
}

impl PostgresSource {
    /// A source for `config` in the pipeline of `ctx`; validates the configuration.
    pub fn new(config: PostgresConfig, ctx: &Context) -> Result<Self> {
        let settings = config.validate(&ctx.pipeline)?;
        let tls =
            crate::tls::client_config(settings.conn.sslmode, settings.conn.sslrootcert.as_deref())?;
        Ok(PostgresSource {
            settings,
            metrics: Arc::clone(&ctx.metrics),
            health: Arc::clone(&ctx.health),
            tls,
            client: None,
            server_version: 0,
            tables: Vec::new(),
            types: TypeCache::default(),
            phase: Phase::NotStarted,
            committed: Lsn::ZERO,
            background: Tasks::default(),
            held: None,
            first_sent: false,
            stash: None,
            pending_error: None,
            signal_table: None,
            incremental: None,
        })
    }

    /// The slot name in use.
    pub fn slot_name(&self) -> &str {
        &self.settings.slot
    }

    /// The publication name in use.
    pub fn publication_name(&self) -> &str {
        &self.settings.publication
    }

    fn client(&self) -> Result<Arc<Client>> {
        self.client
            .clone()
            .ok_or_else(|| Error::internal("the source is not started"))
    }

    fn mode(&self) -> SnapshotMode {
        self.settings.config.snapshot
    }

    /// Startup `options` of the replication connection.
    fn replication_options(&self) -> String {
        match self.settings.config.wal_sender_timeout_ms {
            Some(ms) => format!("{SESSION_OPTIONS} -c wal_sender_timeout={ms}"),
            None => SESSION_OPTIONS.to_string(),
        }
    }

    async fn replication_connection(&self) -> Result<ReplConnection> {
        ReplConnection::connect(
            &self.settings.conn,
            self.tls.as_ref(),
            &self.replication_options(),
            &format!("cdc-{}", self.settings.pipeline),
        )
        .await
    }

    fn snapshot_tables(&mut self) -> Vec<SnapshotTable> {
        let db: Arc<str> = self.settings.conn.database.as_str().into();
        let mut out = Vec::new();
        for t in &self.tables {
            let convs = t
                .columns
                .iter()
                .map(|c| self.types.conv(c.type_oid))
                .collect();
            out.push(SnapshotTable {
                schema: Arc::new(t.schema(&db, &self.types)),
                info: t.clone(),
                convs,
            });
        }
        out
    }

    fn snapshot_spec(
        &mut self,
        name: String,
        consistent: Lsn,
        exporter: Exporter,
    ) -> Result<SnapshotSpec> {
        let c = &self.settings.config;
        let (parallelism, chunk_rows, batch_size, max_batch_bytes) = (
            c.snapshot_parallelism,
            c.snapshot_chunk_rows,
            c.batch_size,
            c.max_batch_bytes,
        );
        Ok(SnapshotSpec {
            tables: self.snapshot_tables(),
            snapshot_name: name,
            consistent,
            exporter,
            conn: self.settings.conn.clone(),
            tls: self.tls.clone(),
            client: self.client()?,
            parallelism,
            chunk_rows,
            batch_size,
            max_batch_bytes,
            server_version: self.server_version,
            metrics: Arc::clone(&self.metrics),
        })
    }

    /// Create the slot with an exported snapshot (dropping an old one) and start reading.
    async fn begin_snapshot(&mut self, slot_exists: bool) -> Result<()> {
        let client = self.client()?;
        let slot = self.settings.slot.clone();
        if slot_exists {
            warn!(slot = %slot, "dropping the replication slot to take a consistent snapshot");
            catalog::drop_slot(&client, &slot).await?;
        }
        let mut repl = self.replication_connection().await?;
        let rows = repl
            .simple_query(&format!(
                "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput EXPORT_SNAPSHOT",
                quote_ident(&slot)
            ))
            .await
            .map_err(|e| e.context(format!("creating replication slot {slot}")))?;
        let (consistent, name) = match rows.first().map(|r| (r.get(1), r.get(2))) {
            Some((Some(Some(lsn)), Some(Some(name)))) => (
                lsn.parse::<Lsn>()
                    .map_err(|_| Error::new(ErrorKind::Protocol, "bad consistent point"))?,
                name.clone(),
            ),
            _ => {
                return Err(Error::new(
                    ErrorKind::Protocol,
                    "CREATE_REPLICATION_SLOT returned no snapshot",
                ))
            }
        };
        info!(slot = %slot, consistent_point = %consistent, "created the replication slot");
        let spec = self.snapshot_spec(name, consistent, Exporter::Replication(repl))?;
        self.phase = Phase::Snapshot(snapshot::start(spec).await?);
        self.health.set_running(connector_core::Phase::Snapshotting);
        Ok(())
    }

    /// `initial_only`: a snapshot without a slot, exported by a plain transaction.
    async fn begin_snapshot_only(&mut self) -> Result<()> {
        let exp = catalog::connect(&self.settings.conn, self.tls.as_ref(), "cdc-export").await?;
        exp.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            .await
            .map_err(|e| pg_error(e, "starting the snapshot transaction"))?;
        let row = exp
            .query_one(
                "SELECT pg_export_snapshot(), pg_current_wal_lsn()::text",
                &[],
            )
            .await
            .map_err(|e| pg_error(e, "exporting a snapshot"))?;
        let name: String = row.get(0);
        let lsn: String = row.get(1);
        let consistent = lsn
            .parse()
            .map_err(|_| Error::new(ErrorKind::Protocol, "bad WAL position"))?;
        let spec = self.snapshot_spec(name, consistent, Exporter::Transaction(exp))?;
        self.phase = Phase::Snapshot(snapshot::start(spec).await?);
        self.health.set_running(connector_core::Phase::Snapshotting);
        Ok(())
    }

    /// Create the slot without a snapshot; its consistent point.
    async fn create_slot(&self) -> Result<Lsn> {
        let slot = &self.settings.slot;
        let mut repl = self.replication_connection().await?;
        let rows = repl
            .simple_query(&format!(
                "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput NOEXPORT_SNAPSHOT",
                quote_ident(slot)
            ))
            .await
            .map_err(|e| e.context(format!("creating replication slot {slot}")))?;
        let lsn = rows
            .first()
            .and_then(|r| r.get(1).cloned().flatten())
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Protocol,
                    "CREATE_REPLICATION_SLOT returned no LSN",
                )
            })?;
        info!(slot = %slot, consistent_point = %lsn, "created the replication slot");
        Ok(lsn)
    }

    /// Connect the replication stream from `from` and start the reader and feedback tasks.
    async fn open_stream(&mut self, from: PgPosition) -> Result<()> {
        let PgPosition::Stream { lsn: start, .. } = from else {
            return Err(Error::internal("streaming from a snapshot position"));
        };
        let client = self.client()?;
        let slot = &self.settings.slot;
        let info = catalog::wait_slot_inactive(&client, slot, SLOT_RELEASE_WAIT)
            .await?
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Precondition,
                    format!("replication slot {slot} disappeared"),
                )
            })?;
        let confirmed = info.confirmed_flush.unwrap_or(Lsn::ZERO);
        if confirmed > start {
            return Err(Error::new(
                ErrorKind::Data,
                format!(
                    "replication slot {slot} was released up to {confirmed}, beyond the stored \
                     position {from}: the changes in between cannot be read again"
                ),
            )
            .with_hint(
                "another consumer used this slot, or the offsets were restored from a backup; \
                 reset the pipeline's offsets to take a new snapshot (snapshot: initial)",
            ));
        }
        let mut committed = confirmed.max(self.committed);
        if let PgPosition::Stream { lsn, index: 0 } = from {
            committed = committed.max(lsn);
        }
        self.committed = committed;
        let mut sql = format!(
            "START_REPLICATION SLOT {} LOGICAL {start} (proto_version '1', publication_names {}",
            quote_ident(slot),
            catalog::quote_literal(&quote_ident(&self.settings.publication)),
        );
        if self.server_version >= 140_000 {
            sql.push_str(", messages 'true'");
        }
        sql.push(')');
        let conn = self.replication_connection().await?;
        let (reader, writer) = conn.start_replication(&sql).await?;
        let status_interval = self.status_interval(&client).await;
        let database: Arc<str> = self.settings.conn.database.as_str().into();
        // The signalling table is decoded like a captured table; its rows are taken out (and
        // carried out) by the incremental snapshot before the batch is returned.
        let decoded: Vec<TableInfo> = self
            .tables
            .iter()
            .chain(self.signal_table.as_ref())
            .cloned()
            .collect();
        let selector = TableSelector::new(
            &self.settings.config.tables,
            &decoded,
            self.settings.config.publication_all_tables,
        );
        let catalog: HashMap<u32, TableInfo> = decoded.into_iter().map(|t| (t.oid, t)).collect();
        let decoder = Decoder::new(database, selector, self.types.clone(), catalog, from);
        info!(slot = %slot, from = %from, status_interval_ms = status_interval.as_millis() as u64,
            "streaming changes");
        let handle = replication::spawn(StreamSetup {
            reader,
            writer,
            decoder,
            client,
            committed,
            status_interval,
            batch_size: self.settings.config.batch_size,
            max_batch_bytes: self.settings.config.max_batch_bytes,
        });
        self.phase = Phase::Streaming(handle);
        self.health.set_running(connector_core::Phase::Streaming);
        Ok(())
    }

    /// `status_interval_ms`, but at most a third of `wal_sender_timeout`.
    async fn status_interval(&self, client: &Client) -> Duration {
        let configured = Duration::from_millis(self.settings.config.status_interval_ms);
        let timeout_ms = match self.settings.config.wal_sender_timeout_ms {
            Some(ms) => Some(ms),
            None => catalog::setting(client, "wal_sender_timeout")
                .await
                .ok()
                .flatten()
                .and_then(|s| s.parse::<u64>().ok()),
        };
        match timeout_ms {
            Some(ms) if ms > 0 => configured.min(Duration::from_millis((ms / 3).max(50))),
            _ => configured,
        }
    }

    async fn snapshot_batch(&mut self) -> Result<Option<Batch>> {
        let Phase::Snapshot(run) = &mut self.phase else {
            return Err(Error::internal("not snapshotting"));
        };
        let consistent = run.consistent;
        let first = match tokio::time::timeout(IDLE_WAIT, run.rx.recv()).await {
            Err(_) => return Ok(Some(Batch::default())),
            Ok(None) => return Err(Error::internal("the snapshot ended without a result")),
            Ok(Some(r)) => r?,
        };
        let (batch_size, max_bytes) = (
            self.settings.config.batch_size,
            self.settings.config.max_batch_bytes,
        );
        let mut events = Vec::new();
        let mut bytes = 0;
        let mut done = false;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                SnapMsg::Rows(rows, b) => {
                    bytes += b;
                    // Usually one message makes the batch: keep its vector (it has room for
                    // the held row) rather than copying it into a new one.
                    if events.is_empty() {
                        events = rows;
                    } else {
                        events.extend(rows);
                    }
                }
                SnapMsg::Done => done = true,
            }
            if done || events.len() >= batch_size || bytes >= max_bytes {
                break;
            }
            match run.rx.try_recv() {
                Ok(r) => next = Some(r?),
                Err(_) => break,
            }
        }
        let mut out = events;
        if let Some(held) = self.held.take() {
            out.insert(0, held);
        }
        if !done {
            // Hold the newest row back: it may be the last one, marked `last`.
            self.held = out.pop();
        }
        if !self.first_sent {
            if let Some(e) = out.first_mut() {
                e.source.snapshot = SnapshotMarker::First;
                self.first_sent = true;
            }
        }
        let checkpoint = if done {
            if let Some(e) = out.last_mut() {
                e.source.snapshot = SnapshotMarker::Last;
            }
            self.phase = if self.mode() == SnapshotMode::InitialOnly {
                Phase::Finished
            } else {
                Phase::OpenStream(PgPosition::stream(consistent, 0))
            };
            PgPosition::stream(consistent, 0)
        } else {
            PgPosition::Snapshot { consistent }
        };
        Ok(Some(Batch::new(out, Some(checkpoint.to_position()))))
    }

    async fn stream_batch(&mut self) -> Result<Option<Batch>> {
        if let Some(inc) = self.incremental.as_mut() {
            // The source has room: read the next chunk unless a window is outstanding.
            inc.step().await?;
        }
        let Phase::Streaming(h) = &mut self.phase else {
            return Err(Error::internal("not streaming"));
        };
        let first = match self.stash.take() {
            Some(c) => c,
            None => match tokio::time::timeout(IDLE_WAIT, h.rx.recv()).await {
                Err(_) => return Ok(Some(Batch::default())),
                Ok(None) => {
                    return Err(Error::new(
                        ErrorKind::Connection,
                        "the replication stream ended",
                    ))
                }
                Ok(Some(r)) => r?,
            },
        };
        let (batch_size, max_bytes) = (
            self.settings.config.batch_size,
            self.settings.config.max_batch_bytes,
        );
        let mut events = first.events;
        let mut checkpoint = first.checkpoint;
        let mut bytes = first.bytes;
        while events.len() < batch_size && bytes < max_bytes {
            match h.rx.try_recv() {
                Ok(Ok(c)) => {
                    if events.len() + c.events.len() > batch_size || bytes + c.bytes > max_bytes {
                        self.stash = Some(c);
                        break;
                    }
                    events.extend(c.events);
                    bytes += c.bytes;
                    if c.checkpoint.is_some() {
                        checkpoint = c.checkpoint;
                    }
                }
                Ok(Err(e)) => {
                    self.pending_error = Some(e);
                    break;
                }
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => break,
            }
        }
        match self.incremental.as_mut() {
            Some(inc) => {
                let events = inc.process(events);
                Ok(Some(Batch::new(events, checkpoint.map(|c| inc.compose(c)))))
            }
            None => {
                if events.iter().any(incremental::is_watermark) {
                    events.retain(|e| !incremental::is_watermark(e));
                }
                Ok(Some(Batch::new(
                    events,
                    checkpoint.map(PgPosition::to_position),
                )))
            }
        }
    }

    /// Resolve the signalling table (adding it to the publication) and set up the incremental
    /// snapshot, resuming the progress stored with `resume`.
    /// `needed`: set it up even without a signalling table (tables to snapshot at start).
    async fn prepare_incremental(&mut self, resume: Option<&Position>, needed: bool) -> Result<()> {
        self.signal_table = None;
        self.incremental = None;
        let settings = self.settings.config.incremental();
        let client = self.client()?;
        let info = match settings.signal_table_parts("source")? {
            Some((schema, table)) => {
                let info = incremental::prepare_signal_table(
                    &client,
                    schema,
                    table,
                    &self.settings.publication,
                    self.server_version,
                )
                .await?;
                let oids: Vec<u32> = info.columns.iter().map(|c| c.type_oid).collect();
                catalog::load_types(&client, &mut self.types, &oids).await?;
                Some(info)
            }
            None => None,
        };
        let progress = match resume {
            Some(p) => connector_core::incremental::progress::decompose(p.as_str())?.1,
            None => None,
        };
        if info.is_none() && !needed && progress.is_none() {
            return Ok(());
        }
        incremental::ensure_server_version(self.server_version)?;
        self.incremental = Some(Incremental::new(
            self.settings.conn.database.as_str().into(),
            &self.tables,
            &self.types,
            info.as_ref(),
            settings.snapshot_chunk_size,
            progress,
            self.settings.conn.clone(),
            self.tls.clone(),
            Arc::clone(&self.metrics),
        ));
        self.signal_table = info;
        Ok(())
    }
}

#[async_trait]
impl Source for PostgresSource {
    async fn start(&mut self, resume: Option<Position>) -> Result<()> {
        self.phase = Phase::NotStarted;
        self.held = None;
        self.first_sent = false;
        self.stash = None;
        self.pending_error = None;
        self.background = Tasks::default();
        let stored = resume.clone();
        let resume = resume.as_ref().map(PgPosition::parse).transpose()?;
        let conn = &self.settings.conn;
        let client = Arc::new(catalog::connect(conn, self.tls.as_ref(), "cdc").await?);
        self.client = Some(Arc::clone(&client));
        self.server_version = catalog::server_version(&client).await?;
        if self.server_version < MIN_SERVER_VERSION {
            return Err(Error::new(
                ErrorKind::Precondition,
                format!(
                    "PostgreSQL {} is too old: logical replication with pgoutput needs 10 or newer",
                    self.server_version
                ),
            ));
        }
        let mode = self.mode();
        if mode != SnapshotMode::InitialOnly {
            catalog::ensure_wal_level(&client).await?;
        }
        let cfg = &self.settings.config;
        self.tables = catalog::resolve_tables(
            &client,
            &cfg.tables,
            cfg.publication_all_tables,
            self.server_version,
        )
        .await?;
        if self.tables.is_empty() && !cfg.publication_all_tables {
            return Err(Error::new(
                ErrorKind::Precondition,
                "key `source.tables`: no table matches",
            )
            .with_hint("create the tables first, or fix the patterns"));
        }
        let oids: Vec<u32> = self
            .tables
            .iter()
            .flat_map(|t| t.columns.iter().map(|c| c.type_oid))
            .collect();
        catalog::load_types(&client, &mut self.types, &oids).await?;
        info!(
            server = %conn.redacted(),
            tables = self.tables.len(),
            slot = %self.settings.slot,
            publication = %self.settings.publication,
            ?mode,
            resume = %resume.map(|p| p.to_string()).unwrap_or_else(|| "(none)".into()),
            "starting the PostgreSQL source"
        );

        if mode == SnapshotMode::InitialOnly {
            if let Some(PgPosition::Stream { .. }) = resume {
                info!("the initial_only snapshot finished before; nothing to do");
                self.phase = Phase::Finished;
                return Ok(());
            }
            return self.begin_snapshot_only().await;
        }

        // Tables of `tables:` that an existing publication lacks were not captured before:
        // added to it, and snapshotted incrementally (`snapshot_new_tables`).
        let new_tables = if resume.is_some() && cfg.snapshot_new_tables {
            incremental::add_new_tables(
                &client,
                &self.settings.publication,
                &self.tables,
                self.server_version,
            )
            .await?
        } else {
            Vec::new()
        };
        catalog::ensure_publication(&client, &self.settings, &self.tables, self.server_version)
            .await?;
        let slot = catalog::slot(&client, &self.settings.slot).await?;
        if let Some(s) = &slot {
            let ours = s.slot_type == "logical"
                && s.plugin.as_deref() == Some("pgoutput")
                && s.database.as_deref() == Some(conn.database.as_str());
            if !ours {
                return Err(Error::new(
                    ErrorKind::Precondition,
                    format!(
                        "replication slot {} exists but is not a pgoutput slot of database {} \
                         (type {}, plugin {:?}, database {:?})",
                        self.settings.slot, conn.database, s.slot_type, s.plugin, s.database
                    ),
                )
                .with_hint("configure another `source.slot`, or drop that slot"));
            }
        }
        let lag = Duration::from_millis(cfg.lag_interval_ms);
        let beat = Duration::from_millis(cfg.heartbeat_interval_ms);
        if !lag.is_zero() || !beat.is_zero() {
            self.background.push(tokio::spawn(replication::monitor(
                Arc::clone(&client),
                self.settings.slot.clone(),
                lag,
                beat,
                cfg.heartbeat_action_query.clone(),
                Arc::clone(&self.metrics),
            )));
        }
        let initial_incremental = resume.is_none() && mode == SnapshotMode::Incremental;
        self.prepare_incremental(
            stored.as_ref(),
            initial_incremental || !new_tables.is_empty(),
        )
        .await?;
        if let Some(inc) = self.incremental.as_mut() {
            let db: Arc<str> = self.settings.conn.database.as_str().into();
            let ids = |ts: &[TableInfo]| -> Vec<connector_core::TableId> {
                ts.iter()
                    .map(|t| {
                        connector_core::TableId::new(
                            Arc::clone(&db),
                            t.schema.as_str(),
                            t.name.as_str(),
                        )
                    })
                    .collect()
            };
            if initial_incremental {
                info!(
                    tables = self.tables.len(),
                    "snapshot: incremental: streaming at once, snapshotting every table in chunks"
                );
                inc.add_tables(&ids(&self.tables));
            } else if !new_tables.is_empty() {
                let names: Vec<String> = new_tables.iter().map(TableInfo::display).collect();
                info!(tables = ?names, "tables new to the configuration: snapshotting them incrementally");
                inc.add_tables(&ids(&new_tables));
            }
        }
        match (resume, slot) {
            (None, slot) if matches!(mode, SnapshotMode::Never | SnapshotMode::Incremental) => {
                let at = match slot {
                    Some(s) => s.confirmed_flush.unwrap_or(Lsn::ZERO),
                    None => self.create_slot().await?,
                };
                self.open_stream(PgPosition::stream(at, 0)).await
            }
            (None, slot) => self.begin_snapshot(slot.is_some()).await,
            (Some(PgPosition::Snapshot { .. }), slot) => {
                warn!("the initial snapshot was interrupted; taking it again from the start");
                self.begin_snapshot(slot.is_some()).await
            }
            (Some(from), Some(_)) => self.open_stream(from).await,
            (Some(from), None) if mode == SnapshotMode::WhenNeeded => {
                warn!(slot = %self.settings.slot, stored = %from,
                    "the replication slot is gone; taking a new snapshot");
                self.begin_snapshot(false).await
            }
            (Some(from), None) => Err(Error::new(
                ErrorKind::Precondition,
                format!(
                    "replication slot {} does not exist, so the changes after the stored \
                     position {from} cannot be read",
                    self.settings.slot
                ),
            )
            .with_hint(
                "set `source.snapshot: when_needed` to take a new snapshot, or reset the \
                 pipeline's offsets",
            )),
        }
    }

    async fn next_batch(&mut self) -> Result<Option<Batch>> {
        if let Some(e) = self.pending_error.take() {
            return Err(e);
        }
        loop {
            match &self.phase {
                Phase::NotStarted => return Err(Error::internal("next_batch before start")),
                Phase::Finished => return Ok(None),
                Phase::OpenStream(from) => {
                    let from = *from;
                    self.open_stream(from).await?;
                }
                Phase::Snapshot(_) => return self.snapshot_batch().await,
                Phase::Streaming(_) => return self.stream_batch().await,
            }
        }
    }

    async fn commit(&mut self, position: &Position) -> Result<()> {
        if let PgPosition::Stream { lsn, index: 0 } = PgPosition::parse(position)? {
            if lsn > self.committed {
                self.committed = lsn;
            }
            if let Phase::Streaming(h) = &self.phase {
                h.commit(lsn);
            }
        }
        Ok(())
    }

    async fn stop(&mut self) -> Result<()> {
        if let Phase::Streaming(h) = std::mem::replace(&mut self.phase, Phase::Finished) {
            h.shutdown().await;
        }
        self.background = Tasks::default();
        self.client = None;
        Ok(())
    }

    async fn captured_tables(&mut self) -> Result<Option<Vec<connector_core::TableSchema>>> {
        let tables = if self.client.is_some() {
            self.tables.clone()
        } else {
            let client =
                catalog::connect(&self.settings.conn, self.tls.as_ref(), "cdc-check").await?;
            let version = catalog::server_version(&client).await?;
            let cfg = &self.settings.config;
            catalog::resolve_tables(&client, &cfg.tables, cfg.publication_all_tables, version)
                .await?
        };
        let db = self.settings.conn.database.as_str();
        Ok(Some(
            tables
                .iter()
                .map(|t| {
                    let columns = t
                        .columns
                        .iter()
                        .map(|c| {
                            let col = connector_core::Column::new(c.name.as_str(), "");
                            if c.pk {
                                col.key()
                            } else {
                                col
                            }
                        })
                        .collect();
                    connector_core::TableSchema::new(
                        connector_core::TableId::new(db, t.schema.as_str(), t.name.as_str()),
                        columns,
                    )
                })
                .collect(),
        ))
    }

    async fn check(&mut self) -> Vec<Check> {
        match catalog::connect(&self.settings.conn, self.tls.as_ref(), "cdc-check").await {
            Ok(client) => catalog::checks(&client, &self.settings).await,
            Err(e) => vec![Check::from_error("connection", &e)],
        }
    }
}
