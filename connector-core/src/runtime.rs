//! The pipeline runtime: a source task, a channel bounded in bytes, a sink task, and a committer
//! that stores durable positions and hands them back to the source.
//!
//! ```text
//!  source task ──batches──▶ sink task ──acks, in order──▶ committer ──stored──▶ source.commit
//!       ▲  (waits for byte permits)         │ (releases permits when durable)
//!       └───────────────────────────────────┘
//! ```
//!
//! - Backpressure: a batch takes permits for its estimated bytes from a semaphore of
//!   `max_in_flight_bytes` before it is sent, and gives them back only when the sink reports it
//!   durable, so a slow or stalled sink pauses the source and memory stays bounded.
//! - Durability: the committer sees a checkpoint only after every batch up to it is durable; it
//!   writes it to the offset store (unless the sink stores offsets itself), and only then passes it
//!   to [`Source::commit`](crate::Source::commit).
//! - Failures: a retryable error ends the attempt; the supervisor restarts source and sink from the
//!   stored position after an exponential backoff with jitter. A fatal error stops the pipeline.
//!   Restarts are logged through a [`FailureLog`]: the first, then at most one line per 30 s, then
//!   the recovery (the first position stored after them).
//! - Shutdown: the source stops reading, in-flight batches drain into the sink, the last durable
//!   position is stored and committed, all within `shutdown_timeout_ms`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn, Instrument as _};

use crate::config::{Config, PipelineSettings};
use crate::error::{Error, ErrorKind, Result};
use crate::event::{Batch, Op, Position};
use crate::failure_log::FailureLog;
use crate::health::Health;
use crate::health::Phase;
use crate::metrics::{self, Metrics};
use crate::offsets::OffsetStore;
use crate::registry::{Context, Registry};
use crate::sink::{BatchAck, Sink};
use crate::source::Source;
use crate::transform::TransformChain;

/// Re-exported from [`crate::clock`], its home, so that `connector_core::runtime::now_micros`
/// keeps working.
pub use crate::clock::now_micros;

/// How a pipeline run ended without error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The source finished (an `initial_only` snapshot, a generator limit) and everything drained.
    Finished,
    /// A shutdown was requested; in-flight events drained and the durable position was stored.
    Stopped,
}

/// A configured pipeline, ready to run.
pub struct Pipeline {
    config: Config,
    registry: Registry,
    ctx: Context,
}

impl Pipeline {
    /// A pipeline for `config` whose connectors come from `registry`.
    pub fn new(config: Config, registry: Registry) -> Self {
        let ctx = Context::new(config.name.as_str());
        Pipeline {
            config,
            registry,
            ctx,
        }
    }

    /// Use these metrics (shared with an HTTP endpoint) instead of fresh ones.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.ctx.metrics = metrics;
        self
    }

    /// The metrics this pipeline updates.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.ctx.metrics
    }

    /// Use this health (shared with an HTTP endpoint) instead of a fresh one.
    pub fn with_health(mut self, health: Arc<Health>) -> Self {
        self.ctx.health = health;
        self
    }

    /// The pipeline's phase, for health and readiness probes.
    pub fn health(&self) -> &Arc<Health> {
        &self.ctx.health
    }

    /// Run until the source finishes, `shutdown` is cancelled, or a fatal error (or too many
    /// retryable ones) occurs.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<Outcome> {
        let span = tracing::info_span!("pipeline", name = %self.config.name);
        let result = self.run_inner(shutdown).instrument(span).await;
        self.ctx.health.set(match result {
            Ok(_) => Phase::Stopped,
            Err(_) => Phase::Failed,
        });
        result
    }

    async fn run_inner(&self, shutdown: CancellationToken) -> Result<Outcome> {
        let settings = &self.config.pipeline;
        let mut store = self
            .registry
            .build_offset_store(&self.config.offsets, &self.ctx)?;
        store.lock().await?;
        let store: Arc<dyn OffsetStore> = Arc::from(store);
        let metrics = &self.ctx.metrics;
        metrics.set(
            metrics::IN_FLIGHT_LIMIT,
            &[],
            settings.max_in_flight_bytes as f64,
        );
        let mut failures: u32 = 0;
        let restarts = Arc::new(FailureLog::new("pipeline"));
        loop {
            if shutdown.is_cancelled() {
                return Ok(Outcome::Stopped);
            }
            self.ctx.health.set(Phase::Starting);
            let attempt = Attempt {
                pipeline: self,
                store: Arc::clone(&store),
                settings,
                metrics: Arc::clone(metrics),
                restarts: Arc::clone(&restarts),
            }
            .run(&shutdown)
            .await;
            metrics.set(metrics::UP, &[], 0.0);
            let error = match attempt.result {
                Ok(outcome) => {
                    info!(?outcome, "pipeline ended");
                    return Ok(outcome);
                }
                Err(e) => e,
            };
            metrics.add(metrics::ERRORS, &[("kind", error.kind().as_str())], 1);
            if !error.is_retryable() {
                error!(kind = %error.kind(), error = %error.report(), "pipeline failed");
                return Err(error);
            }
            if attempt.progressed {
                failures = 0;
            }
            failures += 1;
            if settings.retry.max_restarts > 0 && failures > settings.retry.max_restarts {
                let n = settings.retry.max_restarts;
                error!(error = %error.report(), "pipeline failed after {n} restarts without progress");
                return Err(error.context(format!("giving up after {n} restarts without progress")));
            }
            let delay = backoff(settings, failures);
            restarts.failed(
                format_args!(
                    "{} error: {}; restarting from the last durable position in {} ms \
                     (restart {failures} without progress)",
                    error.kind(),
                    error.report(),
                    delay.as_millis()
                ),
                || None,
            );
            metrics.add(metrics::RESTARTS, &[], 1);
            self.ctx.health.set(Phase::Restarting);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.cancelled() => return Ok(Outcome::Stopped),
            }
        }
    }
}

/// Exponential backoff with equal jitter: a random delay in `[d/2, d]`, `d` doubling per failure
/// from `initial_backoff_ms` up to `max_backoff_ms`.
pub fn backoff(settings: &PipelineSettings, failures: u32) -> Duration {
    let initial = settings.retry.initial_backoff_ms.max(1);
    let exp = failures.saturating_sub(1).min(30);
    let d = initial
        .saturating_mul(1u64 << exp)
        .min(settings.retry.max_backoff_ms.max(initial));
    let jittered = d / 2 + rand::random_range(0..=d - d / 2);
    Duration::from_millis(jittered)
}

struct AttemptResult {
    result: Result<Outcome>,
    progressed: bool,
}

struct Attempt<'a> {
    pipeline: &'a Pipeline,
    store: Arc<dyn OffsetStore>,
    settings: &'a PipelineSettings,
    metrics: Arc<Metrics>,
    /// The restarts of this pipeline: quiet while they repeat.
    restarts: Arc<FailureLog>,
}

struct InFlight {
    batch: Batch,
    permit: OwnedSemaphorePermit,
}

enum SourceEnd {
    Finished,
    Stopped,
}

impl Attempt<'_> {
    async fn run(self, shutdown: &CancellationToken) -> AttemptResult {
        let not_progressed = |e: Error| AttemptResult {
            result: Err(e),
            progressed: false,
        };
        let registry = &self.pipeline.registry;
        let config = &self.pipeline.config;
        let ctx = &self.pipeline.ctx;
        let mut source = match registry.build_source(&config.source, ctx) {
            Ok(s) => s,
            Err(e) => return not_progressed(e),
        };
        let mut sink = match registry.build_sink(&config.sink, ctx) {
            Ok(s) => s,
            Err(e) => return not_progressed(e),
        };
        let mut transforms = match registry.build_transforms(&config.transforms, ctx) {
            Ok(t) => t,
            Err(e) => return not_progressed(e),
        };
        let source_span = tracing::info_span!("source", r#type = %config.source.kind());
        let sink_span = tracing::info_span!("sink", r#type = %config.sink.kind());
        // The sink starts before the position is loaded: a sink that stores offsets itself
        // (exactly-once) fences older instances in `start`, so none can commit a newer position
        // after the load.
        if let Err(e) = sink.start().instrument(sink_span.clone()).await {
            return not_progressed(e.context("starting the sink"));
        }
        let resume = match self.store.load().await {
            Ok(resume) => resume,
            Err(e) => {
                let _ = sink.stop().await;
                return not_progressed(e);
            }
        };
        if self.restarts.failing() {
            debug!(
                offsets = %self.store.describe(),
                resume = resume.as_ref().map(Position::as_str).unwrap_or("(none)"),
                "restarting pipeline"
            );
        } else {
            info!(
                offsets = %self.store.describe(),
                resume = resume.as_ref().map(Position::as_str).unwrap_or("(none)"),
                "starting pipeline"
            );
        }
        if let Err(e) = source
            .start(resume.clone())
            .instrument(source_span.clone())
            .await
        {
            let _ = sink.stop().await;
            return not_progressed(e.context("starting the source"));
        }
        if let Err(e) = transforms.start(source.as_mut()).await {
            let _ = source.stop().await;
            let _ = sink.stop().await;
            return not_progressed(e);
        }
        self.metrics.set(metrics::UP, &[], 1.0);
        // Streaming unless the source already said it is snapshotting.
        if ctx.health.phase() == Phase::Starting {
            ctx.health.set(Phase::Streaming);
        }

        let stores_offsets = sink.stores_offsets();
        let max = self.settings.max_in_flight_bytes.min(u32::MAX as usize);
        let semaphore = Arc::new(Semaphore::new(max));
        let (batch_tx, batch_rx) = mpsc::channel::<InFlight>(4096);
        let (durable_tx, durable_rx) = watch::channel(resume.clone());
        let (committed_tx, committed_rx) = watch::channel(resume.clone());
        let (final_tx, final_rx) = oneshot::channel::<Option<Position>>();
        let stop_reading = shutdown.child_token();
        let abort = CancellationToken::new();

        let source_task = tokio::spawn(
            SourceTask {
                source,
                transforms,
                tx: Some(batch_tx),
                semaphore: Arc::clone(&semaphore),
                max,
                committed: committed_rx,
                last_committed: resume.clone(),
                stop_reading: stop_reading.clone(),
                metrics: Arc::clone(&self.metrics),
            }
            .run()
            .instrument(source_span),
        );
        let sink_task = tokio::spawn(
            SinkTask {
                sink,
                rx: batch_rx,
                durability: Durability {
                    durable: durable_tx,
                    metrics: Arc::clone(&self.metrics),
                    semaphore,
                    max,
                },
                abort: abort.clone(),
                stop_reading: stop_reading.clone(),
                stop_timeout: Duration::from_millis(self.settings.shutdown_timeout_ms),
            }
            .run()
            .instrument(sink_span),
        );
        let committer_task = tokio::spawn(
            Committer {
                store: Arc::clone(&self.store),
                stores_offsets,
                durable: durable_rx,
                committed: committed_tx,
                interval_ms: self.settings.offset_flush_interval_ms,
                stored: resume.clone(),
                metrics: Arc::clone(&self.metrics),
                restarts: Arc::clone(&self.restarts),
                stop_reading: stop_reading.clone(),
                abort: abort.clone(),
                final_tx,
            }
            .run(),
        );

        let timeout = Duration::from_millis(self.settings.shutdown_timeout_ms);
        let sink_result = {
            let mut sink_task = sink_task;
            tokio::select! {
                r = &mut sink_task => r,
                _ = async {
                    shutdown.cancelled().await;
                    ctx.health.set(Phase::Stopping);
                    tokio::time::sleep(timeout).await
                } => {
                    warn!(timeout_ms = timeout.as_millis() as u64,
                        "shutdown timed out while draining; storing the last durable position");
                    abort.cancel();
                    sink_task.await
                }
            }
        };
        stop_reading.cancel();
        let committer_result = committer_task.await;
        let final_position = final_rx.await.ok().flatten();
        let source_result = join_with_timeout(source_task, timeout, "source").await;

        let progressed = final_position != resume;
        // A committer failure (the offset store) aborts the sink, whose error is then only a
        // consequence: report the committer's first.
        let result = match (
            flatten(committer_result),
            flatten(sink_result),
            source_result,
        ) {
            (Err(e), _, _) => Err(e),
            (_, Err(e), _) => Err(e),
            (_, _, Err(e)) => Err(e),
            (Ok(()), Ok(()), Ok(SourceEnd::Finished)) => Ok(Outcome::Finished),
            (Ok(()), Ok(()), Ok(SourceEnd::Stopped)) => {
                if shutdown.is_cancelled() {
                    Ok(Outcome::Stopped)
                } else {
                    Err(Error::internal("the pipeline stopped without a reason"))
                }
            }
        };
        let durable = final_position
            .as_ref()
            .map(Position::as_str)
            .unwrap_or("(none)");
        if result.is_err() && self.restarts.failing() {
            debug!(durable, "pipeline attempt ended");
        } else {
            info!(durable, "pipeline attempt ended");
        }
        AttemptResult { result, progressed }
    }
}

fn flatten(r: std::result::Result<Result<()>, tokio::task::JoinError>) -> Result<()> {
    match r {
        Ok(r) => r,
        Err(e) => Err(Error::internal("a pipeline task panicked").with_source(e)),
    }
}

async fn join_with_timeout(
    mut handle: JoinHandle<Result<SourceEnd>>,
    timeout: Duration,
    what: &str,
) -> Result<SourceEnd> {
    match tokio::time::timeout(timeout, &mut handle).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(Error::internal(format!("the {what} task panicked")).with_source(e)),
        Err(_) => {
            handle.abort();
            warn!("the {what} did not stop within the shutdown timeout; abandoned it");
            Ok(SourceEnd::Stopped)
        }
    }
}

struct SourceTask {
    source: Box<dyn Source>,
    transforms: TransformChain,
    tx: Option<mpsc::Sender<InFlight>>,
    semaphore: Arc<Semaphore>,
    max: usize,
    committed: watch::Receiver<Option<Position>>,
    last_committed: Option<Position>,
    stop_reading: CancellationToken,
    metrics: Arc<Metrics>,
}

impl SourceTask {
    async fn run(mut self) -> Result<SourceEnd> {
        let result = self.read().await;
        if let Err(e) = &result {
            debug!(error = %e, "source failed; draining what is in flight");
        }
        // Let the sink drain, then hand the final durable position to the source.
        self.stop_reading.cancel();
        self.tx = None;
        loop {
            let more = self.committed.changed().await.is_ok();
            if let Err(e) = self.deliver_commit().await {
                warn!(error = %e.report(), "commit to the source failed while draining");
            }
            if !more {
                break;
            }
        }
        // (The supervisor bounds this whole task by the shutdown timeout.)
        if let Err(e) = self.source.stop().await {
            warn!(error = %e.report(), "stopping the source failed");
        }
        result
    }

    async fn deliver_commit(&mut self) -> Result<()> {
        let latest = self.committed.borrow_and_update().clone();
        if latest.is_some() && latest != self.last_committed {
            if let Some(p) = &latest {
                self.source.commit(p).await?;
            }
            self.last_committed = latest;
        }
        Ok(())
    }

    async fn read(&mut self) -> Result<SourceEnd> {
        let mut committer_alive = true;
        loop {
            self.deliver_commit().await?;
            let batch = tokio::select! {
                biased;
                _ = self.stop_reading.cancelled() => return Ok(SourceEnd::Stopped),
                r = self.source.next_batch() => r?,
            };
            let Some(mut batch) = batch else {
                return Ok(SourceEnd::Finished);
            };
            // Dropped events leave the batch; its checkpoint stays, so positions still advance.
            let dropped = self.transforms.apply(&mut batch)?;
            if dropped > 0 {
                self.metrics
                    .add(metrics::TRANSFORM_DROPPED, &[], dropped as u64);
            }
            if batch.is_empty() {
                continue;
            }
            let size = batch.estimated_size().clamp(1, self.max) as u32;
            let permit = loop {
                tokio::select! {
                    biased;
                    _ = self.stop_reading.cancelled() => return Ok(SourceEnd::Stopped),
                    p = Arc::clone(&self.semaphore).acquire_many_owned(size) => {
                        break p.map_err(|e| Error::internal("in-flight semaphore closed").with_source(e))?;
                    }
                    changed = self.committed.changed(), if committer_alive => match changed {
                        Ok(()) => self.deliver_commit().await?,
                        Err(_) => committer_alive = false,
                    },
                }
            };
            let Some(tx) = &self.tx else {
                return Ok(SourceEnd::Stopped);
            };
            if tx.send(InFlight { batch, permit }).await.is_err() {
                return Ok(SourceEnd::Stopped);
            }
        }
    }
}

struct Pending {
    checkpoint: Option<Position>,
    ack: oneshot::Receiver<Result<()>>,
    _permit: OwnedSemaphorePermit,
    summary: BatchSummary,
}

#[derive(Default)]
struct BatchSummary {
    counts: Vec<(String, Op, u64)>,
    bytes: u64,
    newest_commit_ts_us: i64,
    /// Commit times of streamed (not snapshot) events, run-length encoded: transactions share one.
    commit_times: Vec<(i64, u64)>,
}

impl BatchSummary {
    fn of(batch: &Batch) -> Self {
        let mut s = BatchSummary::default();
        let mut last: Option<(*const crate::event::TableSchema, Op, usize)> = None;
        for ev in &batch.events {
            s.newest_commit_ts_us = s.newest_commit_ts_us.max(ev.commit_ts_us);
            if ev.op != Op::Read && ev.commit_ts_us > 0 {
                match s.commit_times.last_mut() {
                    Some((ts, n)) if *ts == ev.commit_ts_us => *n += 1,
                    _ => s.commit_times.push((ev.commit_ts_us, 1)),
                }
            }
            let ptr = ev.table.as_ref().map_or(std::ptr::null(), Arc::as_ptr);
            if let Some((p, op, idx)) = last {
                if p == ptr && op == ev.op {
                    s.counts[idx].2 += 1;
                    continue;
                }
            }
            let label = ev
                .table
                .as_ref()
                .map_or_else(|| "(message)".to_string(), |t| t.id.to_string());
            let idx = match s
                .counts
                .iter()
                .position(|(l, o, _)| *l == label && *o == ev.op)
            {
                Some(i) => i,
                None => {
                    s.counts.push((label, ev.op, 0));
                    s.counts.len() - 1
                }
            };
            s.counts[idx].2 += 1;
            last = Some((ptr, ev.op, idx));
        }
        s.bytes = batch.estimated_size() as u64;
        s
    }
}

struct SinkTask {
    sink: Box<dyn Sink>,
    rx: mpsc::Receiver<InFlight>,
    durability: Durability,
    abort: CancellationToken,
    stop_reading: CancellationToken,
    /// How long `Sink::stop` may take.
    stop_timeout: Duration,
}

/// Turns completed acknowledgements, in order, into the durable position and metrics.
struct Durability {
    durable: watch::Sender<Option<Position>>,
    metrics: Arc<Metrics>,
    semaphore: Arc<Semaphore>,
    max: usize,
}

type PendingQueue = VecDeque<Pending>;

impl SinkTask {
    async fn run(mut self) -> Result<()> {
        let result = self.drive().await;
        if let Err(e) = &result {
            // Stop the source; nothing more can be made durable by this sink.
            self.stop_reading.cancel();
            debug!(error = %e, "sink failed");
        }
        match tokio::time::timeout(self.stop_timeout, self.sink.stop()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %e.report(), "stopping the sink failed"),
            Err(_) => warn!("the sink did not stop within the shutdown timeout; abandoned it"),
        }
        result
    }

    async fn drive(&mut self) -> Result<()> {
        let mut pending = PendingQueue::new();
        loop {
            tokio::select! {
                biased;
                _ = self.abort.cancelled() => return Err(gave_up(&pending)),
                res = front_ack(&mut pending), if !pending.is_empty() => {
                    self.durability.complete(&mut pending, res)?;
                }
                item = self.rx.recv() => match item {
                    Some(InFlight { batch, permit }) => {
                        let (ack, ack_rx) = BatchAck::new();
                        pending.push_back(Pending {
                            checkpoint: batch.checkpoint.clone(),
                            ack: ack_rx,
                            _permit: permit,
                            summary: BatchSummary::of(&batch),
                        });
                        let write = self.sink.write(batch, ack);
                        acking_while(write, &mut pending, &self.durability, &self.abort).await?;
                    }
                    None => break,
                },
            }
        }
        // The source is done: flush, then wait for every outstanding acknowledgement.
        let flush = self.sink.flush();
        acking_while(flush, &mut pending, &self.durability, &self.abort).await?;
        while !pending.is_empty() {
            tokio::select! {
                biased;
                _ = self.abort.cancelled() => return Err(gave_up(&pending)),
                res = front_ack(&mut pending) => self.durability.complete(&mut pending, res)?,
            }
        }
        Ok(())
    }
}

fn gave_up(pending: &PendingQueue) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!(
            "gave up waiting for {} batches to become durable",
            pending.len()
        ),
    )
}

async fn front_ack(
    pending: &mut PendingQueue,
) -> std::result::Result<Result<()>, oneshot::error::RecvError> {
    match pending.front_mut() {
        Some(p) => (&mut p.ack).await,
        None => std::future::pending().await,
    }
}

/// Await a sink call (which may wait for backpressure or a flush) while still turning completed
/// acknowledgements into durable positions.
async fn acking_while(
    op: impl std::future::Future<Output = Result<()>>,
    pending: &mut PendingQueue,
    durability: &Durability,
    abort: &CancellationToken,
) -> Result<()> {
    tokio::pin!(op);
    loop {
        tokio::select! {
            biased;
            _ = abort.cancelled() => return Err(gave_up(pending)),
            r = &mut op => return r,
            res = front_ack(pending), if !pending.is_empty() => durability.complete(pending, res)?,
        }
    }
}

impl Durability {
    /// The front batch's acknowledgement arrived: advance the durable position or fail.
    fn complete(
        &self,
        pending: &mut PendingQueue,
        res: std::result::Result<Result<()>, oneshot::error::RecvError>,
    ) -> Result<()> {
        let done = pending
            .pop_front()
            .ok_or_else(|| Error::internal("an acknowledgement without a batch"))?;
        match res {
            Ok(Ok(())) => {
                self.on_durable(done);
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::internal("a batch acknowledgement was lost")),
        }
    }

    fn on_durable(&self, done: Pending) {
        let m = &self.metrics;
        for (table, op, n) in &done.summary.counts {
            m.add(
                metrics::EVENTS,
                &[("table", table.as_str()), ("op", op.as_str())],
                *n,
            );
        }
        m.add(metrics::BYTES, &[], done.summary.bytes);
        m.add(metrics::BATCHES, &[], 1);
        let now_us = now_micros();
        let mut max_latency = 0.0f64;
        for (ts, n) in &done.summary.commit_times {
            let latency = (now_us - ts).max(0) as f64 / 1e6;
            max_latency = max_latency.max(latency);
            m.observe(
                metrics::COMMIT_TO_DURABLE,
                metrics::LATENCY_BUCKETS,
                latency,
                *n,
            );
        }
        if max_latency > 0.0 {
            let prev = m.get(metrics::COMMIT_TO_DURABLE_MAX, &[]).unwrap_or(0.0);
            if max_latency > prev {
                m.set(metrics::COMMIT_TO_DURABLE_MAX, &[], max_latency);
            }
        }
        if done.summary.newest_commit_ts_us > 0 {
            m.set(
                metrics::LAST_EVENT_COMMIT_TS,
                &[],
                done.summary.newest_commit_ts_us as f64 / 1e6,
            );
            m.set(
                metrics::LAG_SECONDS,
                &[],
                (now_us - done.summary.newest_commit_ts_us).max(0) as f64 / 1e6,
            );
        }
        if let Some(cp) = done.checkpoint {
            m.set_info(metrics::DURABLE_POSITION, &[("position", cp.as_str())]);
            self.durable.send_replace(Some(cp));
        }
        drop(done._permit);
        let in_flight = self.max.saturating_sub(self.semaphore.available_permits());
        m.set(metrics::IN_FLIGHT_BYTES, &[], in_flight as f64);
    }
}

struct Committer {
    store: Arc<dyn OffsetStore>,
    stores_offsets: bool,
    durable: watch::Receiver<Option<Position>>,
    committed: watch::Sender<Option<Position>>,
    interval_ms: u64,
    stored: Option<Position>,
    metrics: Arc<Metrics>,
    restarts: Arc<FailureLog>,
    stop_reading: CancellationToken,
    abort: CancellationToken,
    final_tx: oneshot::Sender<Option<Position>>,
}

impl Committer {
    async fn run(mut self) -> Result<()> {
        let result = self.commit_loop().await;
        let final_result = match result {
            Ok(()) => self.persist().await,
            Err(e) => {
                self.stop_reading.cancel();
                self.abort.cancel();
                Err(e)
            }
        };
        let stored = self.stored.clone();
        let _ = self.final_tx.send(stored);
        final_result
    }

    async fn commit_loop(&mut self) -> Result<()> {
        let mut ticker = tokio::time::interval(Duration::from_millis(self.interval_ms.max(1)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                changed = self.durable.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    if self.interval_ms == 0 {
                        self.persist().await?;
                    }
                }
                _ = ticker.tick(), if self.interval_ms > 0 => self.persist().await?,
            }
        }
    }

    /// Store the newest durable position (if it moved), then release it to the source.
    async fn persist(&mut self) -> Result<()> {
        let latest = self.durable.borrow_and_update().clone();
        let Some(position) = latest else {
            return Ok(());
        };
        if self.stored.as_ref() == Some(&position) {
            return Ok(());
        }
        if !self.stores_offsets {
            self.store.store(&position).await.map_err(|e| {
                e.context(format!(
                    "storing the durable position in {}",
                    self.store.describe()
                ))
            })?;
        }
        self.metrics.set_info(
            metrics::COMMITTED_POSITION,
            &[("position", position.as_str())],
        );
        self.stored = Some(position.clone());
        self.committed.send_replace(Some(position));
        // Progress: restarts before it, if any, are over.
        self.restarts.recovered();
        Ok(())
    }
}
