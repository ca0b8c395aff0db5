//! The replication stream: a reader task that reads the CopyBoth stream, decodes pgoutput and
//! hands bounded chunks of events to `next_batch` through a small queue, and a feedback task on
//! the write half that sends standby status updates.
//!
//! ```text
//!  socket ─▶ reader task (decode) ─▶ bounded queue ─▶ next_batch ─▶ runtime ─▶ commit
//!     ▲                │ keepalive reply requested                               │
//!     └── feedback task ◀── notify ──────────────── committed LSN (watch) ◀─────┘
//! ```
//!
//! The feedback task does not depend on the queue: when the sink stalls and the queue is full,
//! the reader stops reading (so memory stays bounded) but status updates keep going out every
//! `status_interval_ms` (never longer than a third of `wal_sender_timeout`), so the server does
//! not drop the connection. Status updates report only the committed (durable) LSN.

use std::sync::Arc;
use std::time::Duration;

use connector_core::{ChangeEvent, Error, ErrorKind, Metrics, Result};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tokio_postgres::Client;
use tracing::{debug, info, warn};

use crate::catalog;
use crate::decode::{Decoder, RelationMsg};
use crate::error::{protocol_error, server_error};
use crate::position::{Lsn, PgPosition};
use crate::protocol::{parse_error_fields, ReplReader, ReplWriter};

/// Chunks the queue between the reader task and `next_batch` holds (2 kept the drain speed of 4
/// and lowered peak memory with wide rows; BENCHMARKS.md).
const QUEUE_CHUNKS: usize = 2;

/// Decoded events handed to `next_batch`.
pub struct Chunk {
    /// Events in log order.
    pub events: Vec<ChangeEvent>,
    /// The resume point after these events, when it moved.
    pub checkpoint: Option<PgPosition>,
    /// Rough bytes, for batch bounds.
    pub bytes: usize,
}

/// Aborts its tasks when dropped, so a dropped source closes its connections.
#[derive(Default)]
pub struct Tasks(Vec<JoinHandle<()>>);

impl Tasks {
    /// Track a task.
    pub fn push(&mut self, h: JoinHandle<()>) {
        self.0.push(h);
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

/// A running stream, as seen from the source.
pub struct StreamHandle {
    /// Chunks from the reader task; an `Err` ends the stream.
    pub rx: mpsc::Receiver<Result<Chunk>>,
    committed: watch::Sender<Lsn>,
    feedback: Option<JoinHandle<()>>,
    _tasks: Tasks,
}

impl StreamHandle {
    /// Release the slot up to `lsn` (durable downstream); the feedback task reports it.
    pub fn commit(&self, lsn: Lsn) {
        self.committed.send_if_modified(|cur| {
            if lsn > *cur {
                *cur = lsn;
                true
            } else {
                false
            }
        });
    }

    /// Send a last status update and close the connection.
    pub async fn shutdown(mut self) {
        let feedback = self.feedback.take();
        drop(self.committed);
        if let Some(f) = feedback {
            let _ = tokio::time::timeout(Duration::from_secs(2), f).await;
        }
    }
}

/// Everything the reader task needs.
pub struct StreamSetup {
    /// The stream's read half.
    pub reader: ReplReader,
    /// The stream's write half.
    pub writer: ReplWriter,
    /// The decoder, positioned at the resume point.
    pub decoder: Decoder,
    /// Control connection, for catalog lookups on Relation messages.
    pub client: Arc<Client>,
    /// The LSN already released (reported as flushed until a commit moves it).
    pub committed: Lsn,
    /// Status update interval.
    pub status_interval: Duration,
    /// Most events per chunk.
    pub batch_size: usize,
    /// Most bytes per chunk.
    pub max_batch_bytes: usize,
}

/// Spawn the reader and feedback tasks.
pub fn spawn(setup: StreamSetup) -> StreamHandle {
    let (tx, rx) = mpsc::channel(QUEUE_CHUNKS);
    let (committed_tx, committed_rx) = watch::channel(setup.committed);
    let reply = Arc::new(Notify::new());
    let mut tasks = Tasks::default();
    let feedback = tokio::spawn(feedback(
        setup.writer,
        committed_rx,
        Arc::clone(&reply),
        setup.status_interval,
    ));
    let reader = ReaderTask {
        reader: setup.reader,
        decoder: setup.decoder,
        client: setup.client,
        tx,
        reply,
        out: Vec::with_capacity(setup.batch_size.min(65_536)),
        out_bytes: 0,
        sent_checkpoint: None,
        batch_size: setup.batch_size,
        max_batch_bytes: setup.max_batch_bytes,
    };
    tasks.push(tokio::spawn(reader.run()));
    StreamHandle {
        rx,
        committed: committed_tx,
        feedback: Some(feedback),
        _tasks: tasks,
    }
}

async fn feedback(
    mut writer: ReplWriter,
    mut committed: watch::Receiver<Lsn>,
    reply: Arc<Notify>,
    interval: Duration,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let closing = tokio::select! {
            _ = ticker.tick() => false,
            _ = reply.notified() => false,
            changed = committed.changed() => changed.is_err(),
        };
        let lsn = *committed.borrow_and_update();
        if let Err(e) = writer.send_status(lsn, false).await {
            debug!(error = %e.report(), "sending a standby status update failed");
            return;
        }
        if closing {
            writer.close().await;
            return;
        }
    }
}

struct ReaderTask {
    reader: ReplReader,
    decoder: Decoder,
    client: Arc<Client>,
    tx: mpsc::Sender<Result<Chunk>>,
    reply: Arc<Notify>,
    out: Vec<ChangeEvent>,
    out_bytes: usize,
    sent_checkpoint: Option<PgPosition>,
    batch_size: usize,
    max_batch_bytes: usize,
}

/// The receiver is gone: the source was dropped or stopped.
struct Closed;

impl ReaderTask {
    async fn run(mut self) {
        match self.read().await {
            Ok(Closed) => debug!("replication stream closed"),
            Err(e) => {
                let _ = self.tx.send(Err(e)).await;
            }
        }
    }

    async fn read(&mut self) -> Result<Closed> {
        loop {
            while let Some((tag, range)) = self.reader.next_frame()? {
                let frame = self.reader.frame(range);
                match tag {
                    b'd' => match frame.first() {
                        Some(b'w') if frame.len() >= 25 => {
                            let wal_start = Lsn(u64::from_be_bytes(
                                frame[1..9]
                                    .try_into()
                                    .map_err(|_| protocol_error("XLogData"))?,
                            ));
                            let msg = &frame[25..];
                            let len = msg.len();
                            let rel = self.decoder.handle(msg, wal_start, &mut self.out)?;
                            self.out_bytes += len + 160;
                            if let Some(rel) = rel {
                                resolve_relation(&self.client, &mut self.decoder, rel).await?;
                            }
                            let full = self.out.len() >= self.batch_size
                                || self.out_bytes >= self.max_batch_bytes;
                            if full && self.flush().await.is_err() {
                                return Ok(Closed);
                            }
                        }
                        Some(b'k') if frame.len() >= 18 => {
                            let wal_end = Lsn(u64::from_be_bytes(
                                frame[1..9]
                                    .try_into()
                                    .map_err(|_| protocol_error("keepalive"))?,
                            ));
                            if frame[17] != 0 {
                                self.reply.notify_one();
                            }
                            self.decoder.keepalive(wal_end);
                        }
                        _ => {
                            return Err(protocol_error(format!(
                                "{}: unexpected CopyData message",
                                self.reader.what()
                            )))
                        }
                    },
                    b'E' => {
                        let e = parse_error_fields(frame);
                        return Err(server_error(e, self.reader.what()));
                    }
                    b'N' => {
                        let n = parse_error_fields(frame);
                        info!(notice = %n.message, "server notice on the replication stream");
                    }
                    b'c' => {
                        return Err(Error::new(
                            ErrorKind::Connection,
                            format!("{}: the server ended the stream", self.reader.what()),
                        ))
                    }
                    _ => {}
                }
            }
            if self.flush().await.is_err() {
                return Ok(Closed);
            }
            self.reader.fill().await?;
        }
    }

    /// Hand over what was decoded (and the resume point, when it moved).
    async fn flush(&mut self) -> std::result::Result<(), Closed> {
        let cp = self.decoder.checkpoint();
        let moved = self.sent_checkpoint != Some(cp);
        if self.out.is_empty() && !moved {
            return Ok(());
        }
        let events = std::mem::replace(
            &mut self.out,
            Vec::with_capacity(self.batch_size.min(65_536)),
        );
        let chunk = Chunk {
            events,
            checkpoint: moved.then_some(cp),
            bytes: self.out_bytes,
        };
        self.out_bytes = 0;
        self.sent_checkpoint = Some(cp);
        self.tx.send(Ok(chunk)).await.map_err(|_| Closed)
    }
}

/// Look up what a Relation message needs from the catalog (new types, new columns' nullability
/// and keys), then apply it.
async fn resolve_relation(client: &Client, decoder: &mut Decoder, rel: RelationMsg) -> Result<()> {
    let (types, table) = decoder.needs_catalog(&rel);
    if !types.is_empty() {
        catalog::load_types(client, &mut decoder.types, &types).await?;
    }
    if table {
        let mut cols = catalog::load_columns(client, &[rel.oid]).await?;
        let columns = cols.remove(&rel.oid).unwrap_or_default();
        let info = decoder
            .catalog
            .entry(rel.oid)
            .or_insert_with(|| catalog::TableInfo {
                oid: rel.oid,
                schema: rel.schema.clone(),
                name: rel.name.clone(),
                replident: rel.replident,
                columns: Vec::new(),
                kind: b'r',
                ancestors: Vec::new(),
            });
        info.columns = columns;
        info.replident = rel.replident;
    }
    decoder.apply_relation(rel);
    Ok(())
}

/// Sample the slot's lag and run heartbeats on the control connection until dropped.
pub async fn monitor(
    client: Arc<Client>,
    slot: String,
    lag_interval: Duration,
    heartbeat_interval: Duration,
    heartbeat_query: Option<String>,
    metrics: Arc<Metrics>,
) {
    let enabled = |d: Duration| !d.is_zero();
    let mut lag = tokio::time::interval(if enabled(lag_interval) {
        lag_interval
    } else {
        Duration::from_secs(3600)
    });
    let mut beat = tokio::time::interval(if enabled(heartbeat_interval) {
        heartbeat_interval
    } else {
        Duration::from_secs(3600)
    });
    lag.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned = false;
    loop {
        tokio::select! {
            _ = lag.tick(), if enabled(lag_interval) => {
                let r = client
                    .query_opt(
                        "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::float8 \
                         FROM pg_replication_slots WHERE slot_name = $1",
                        &[&slot],
                    )
                    .await;
                match r {
                    Ok(Some(row)) => {
                        if let Some(v) = row.get::<_, Option<f64>>(0) {
                            metrics.set(connector_core::metrics::SOURCE_LAG_BYTES, &[], v);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => debug!(error = %e, "sampling the slot lag failed"),
                }
            }
            _ = beat.tick(), if enabled(heartbeat_interval) => {
                let r = match &heartbeat_query {
                    Some(q) => client.batch_execute(q).await,
                    None => client
                        .batch_execute(&format!(
                            "SELECT pg_logical_emit_message(false, '{}', '')",
                            crate::config::HEARTBEAT_PREFIX
                        ))
                        .await,
                };
                if let Err(e) = r {
                    if !warned {
                        warn!(error = %e, "the heartbeat failed (warning once)");
                        warned = true;
                    }
                }
            }
            else => return,
        }
    }
}
