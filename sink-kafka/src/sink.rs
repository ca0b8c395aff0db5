//! The `kafka` sink: a worker thread that encodes batches into records and produces them.
//!
//! ```text
//!  write(batch, ack) ──jobs (bounded)──▶ worker thread ──send──▶ librdkafka ──▶ brokers
//!                                          │                        │
//!                                          │ exactly_once: commit   │ delivery reports
//!                                          ▼ every interval         ▼ (polling thread)
//!                                   acks durable on commit   at_least_once: one SharedAck
//!                                                            share per message
//! ```
//!
//! - `at_least_once`: an idempotent producer (`acks=all`). Every record carries one share of its
//!   batch's ack; the batch is durable once every record is acknowledged by the broker, and fails
//!   as soon as one delivery fails. After any failure the worker produces nothing more (the
//!   pipeline restarts from the last durable position), so no later change of a key overtakes a
//!   lost one.
//! - `exactly_once`: a transactional producer (`transactional.id = cdc-<pipeline>`). Batches are
//!   grouped into one transaction per `transaction_interval_ms`; the transaction also carries the
//!   newest checkpoint as a record of the offsets topic; the acks complete when the commit
//!   succeeds. A commit failure aborts the transaction and fails its batches.
//! - The worker owns routing, encoding and topic metadata; blocking librdkafka calls (metadata,
//!   topic creation, transactions, waiting on a full queue) happen there, never on the runtime.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use connector_core::metrics::{MetricDef, MetricKind};
use connector_core::runtime::now_micros;
use connector_core::{
    Batch, BatchAck, Check, ConfigSection, Context, Encoder, Error, ErrorKind, Metrics, Position,
    Result, SharedAck, Sink,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{Producer as _, PurgeConfig};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::config::{Delivery, KafkaOffsetsConfig, KafkaSinkConfig, TypeOnly};
use crate::encode::{RecordEncoder, HEADER_OP, HEADER_POSITION, HEADER_TXID};
use crate::error::{code_of, hint_of, kafka_error, kind_of};
use crate::offsets::{current_thread_runtime, encode_transactional_position, transactional_id};
use crate::producer::{
    create_producer, key_text, metadata_client, partition_count, send, table_name,
    Delivery as DeliveryInfo, Outgoing, Producer, SendError, Topics,
};
use crate::route::{keyless_partition, Router};

/// Messages handed to the producer (records, tombstones, dead letters, offset records).
pub const MESSAGES: MetricDef = MetricDef {
    name: "cdc_kafka_messages_total",
    help: "Messages handed to the Kafka producer.",
    kind: MetricKind::Counter,
};
/// Key and value bytes handed to the producer.
pub const MESSAGE_BYTES: MetricDef = MetricDef {
    name: "cdc_kafka_message_bytes_total",
    help: "Key and value bytes handed to the Kafka producer.",
    kind: MetricKind::Counter,
};
/// Events sent to the dead-letter topic.
pub const DEAD_LETTERS: MetricDef = MetricDef {
    name: "cdc_kafka_dead_letters_total",
    help: "Events too large for the broker, sent to the dead-letter topic.",
    kind: MetricKind::Counter,
};
/// Transactions, by result (`committed`, `aborted`).
pub const TRANSACTIONS: MetricDef = MetricDef {
    name: "cdc_kafka_transactions_total",
    help: "Kafka transactions of an exactly_once sink, by result.",
    kind: MetricKind::Counter,
};
/// Times the producer's local queue was full and the sink waited.
pub const QUEUE_FULL_WAITS: MetricDef = MetricDef {
    name: "cdc_kafka_queue_full_waits_total",
    help: "Times the Kafka producer's local queue was full and the sink waited (backpressure).",
    kind: MetricKind::Counter,
};

/// Batches queued between `write` and the worker.
const JOB_QUEUE_BATCHES: usize = 16;
/// The longest `cdc check` waits for the brokers' metadata (at most `operation_timeout_ms`).
const CHECK_TIMEOUT: Duration = Duration::from_secs(8);
/// Retries of a commit that failed with a retriable error.
const COMMIT_RETRIES: u32 = 3;

/// Registry factory for `sink: { type: kafka }`.
pub fn factory(section: &ConfigSection, ctx: &Context) -> Result<Box<dyn Sink>> {
    let config = KafkaSinkConfig::from_section(section)?;
    let offsets_topic = if config.delivery == Delivery::ExactlyOnce {
        Some(exactly_once_offsets(section, &config)?)
    } else {
        None
    };
    Ok(Box::new(KafkaSink::new(config, ctx, offsets_topic)?))
}

/// With `exactly_once`, the offsets must live in Kafka on the same cluster (one transaction spans
/// records and offset): returns the offsets topic and its replication factor.
fn exactly_once_offsets(
    section: &ConfigSection,
    config: &KafkaSinkConfig,
) -> Result<(String, i32)> {
    let hint =
        "add `offsets: { type: kafka }` (on the sink's brokers), or use `delivery: at_least_once`";
    let kind = section
        .extract_other::<TypeOnly>("offsets")?
        .map(|t| t.kind);
    if kind.as_deref() != Some("kafka") {
        return Err(Error::config(format!(
            "key `sink.delivery`: exactly_once needs `offsets: {{ type: kafka }}`, not {}",
            kind.as_deref()
                .map_or("none".to_string(), |k| format!("`type: {k}`"))
        ))
        .with_hint(hint));
    }
    let offsets: KafkaOffsetsConfig = section
        .extract_other("offsets")?
        .ok_or_else(|| Error::config("key `offsets`: missing"))?;
    if let Some(brokers) = &offsets.brokers {
        if brokers != &config.brokers {
            return Err(Error::config(
                "key `offsets.brokers`: with `sink.delivery: exactly_once` the offsets must be on \
                 the sink's brokers (one transaction covers records and offset); remove it",
            )
            .with_hint(hint));
        }
    }
    Ok((offsets.topic, offsets.replication_factor))
}

enum Job {
    Start(oneshot::Sender<Result<()>>),
    Batch(Batch, BatchAck),
    Flush(oneshot::Sender<Result<()>>),
}

/// The Kafka sink.
pub struct KafkaSink {
    config: KafkaSinkConfig,
    pipeline: Arc<str>,
    metrics: Arc<Metrics>,
    encoder: Encoder,
    offsets: Option<(String, i32)>,
    jobs: Option<mpsc::Sender<Job>>,
    worker: Option<JoinHandle<()>>,
    producer: Option<Arc<Producer>>,
}

impl KafkaSink {
    /// A sink for pipeline `ctx.pipeline`; `offsets` is the offsets topic (and its replication
    /// factor) for `exactly_once`.
    pub fn new(
        config: KafkaSinkConfig,
        ctx: &Context,
        offsets: Option<(String, i32)>,
    ) -> Result<Self> {
        if config.delivery == Delivery::ExactlyOnce && offsets.is_none() {
            return Err(Error::config(
                "key `sink.delivery`: exactly_once needs the offsets topic",
            ));
        }
        let encoder = Encoder::new(Arc::clone(&ctx.pipeline), config.format)
            .with_schemas(config.schemas)
            .with_modes(config.modes())
            .with_transaction_metadata(config.transaction_metadata);
        // Fail on bad templates now rather than at the first event.
        Router::new(
            Arc::clone(&ctx.pipeline),
            &config.topic,
            &config.topics,
            &config.message_topic,
        )?;
        Ok(KafkaSink {
            config,
            pipeline: Arc::clone(&ctx.pipeline),
            metrics: Arc::clone(&ctx.metrics),
            encoder,
            offsets,
            jobs: None,
            worker: None,
            producer: None,
        })
    }

    fn transactional_id(&self) -> Option<String> {
        (self.config.delivery == Delivery::ExactlyOnce).then(|| transactional_id(&self.pipeline))
    }

    fn stopped() -> Error {
        Error::new(
            ErrorKind::Unavailable,
            "the Kafka producer thread has stopped",
        )
    }
}

#[async_trait]
impl Sink for KafkaSink {
    async fn start(&mut self) -> Result<()> {
        let txn_id = self.transactional_id();
        let producer = create_producer(&self.config.producer_config(txn_id.as_deref()))?;
        let router = Router::new(
            Arc::clone(&self.pipeline),
            &self.config.topic,
            &self.config.topics,
            &self.config.message_topic,
        )?;
        let (tx, rx) = mpsc::channel(JOB_QUEUE_BATCHES);
        let timeout = Duration::from_millis(self.config.operation_timeout_ms);
        let worker = Worker {
            producer: Arc::clone(&producer),
            rx,
            router,
            records: RecordEncoder::new(self.encoder.clone(), self.config.tombstones),
            topics: Topics::new(
                self.config.connection(),
                self.config.create_topics.clone(),
                timeout,
            ),
            pipeline: Arc::clone(&self.pipeline),
            dead_letter_topic: self.config.dead_letter_topic.clone().map(Arc::from),
            transaction_topic: self.config.transaction_topic(&self.pipeline).map(Arc::from),
            headers: self.config.headers,
            offsets: self.offsets.clone().map(|(t, rf)| (Arc::from(t), rf)),
            transactional: txn_id.is_some(),
            interval: Duration::from_millis(self.config.transaction_interval_ms),
            timeout,
            flush_timeout: Duration::from_millis(self.config.message_timeout_ms) + timeout,
            metrics: Arc::clone(&self.metrics),
            failure: None,
            txn: None,
        };
        let handle = std::thread::Builder::new()
            .name("cdc-kafka-producer".into())
            .spawn(move || worker.run())
            .map_err(|e| Error::internal("spawning the Kafka producer thread").with_source(e))?;
        self.jobs = Some(tx.clone());
        self.worker = Some(handle);
        self.producer = Some(producer);
        let (reply, started) = oneshot::channel();
        tx.send(Job::Start(reply))
            .await
            .map_err(|_| Self::stopped())?;
        started.await.map_err(|_| Self::stopped())??;
        info!(
            brokers = %self.config.brokers,
            delivery = ?self.config.delivery,
            transactional_id = txn_id.as_deref().unwrap_or("-"),
            "kafka sink started"
        );
        Ok(())
    }

    async fn write(&mut self, batch: Batch, ack: BatchAck) -> Result<()> {
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| Error::internal("kafka sink written before start"))?;
        jobs.send(Job::Batch(batch, ack))
            .await
            .map_err(|_| Self::stopped())
    }

    async fn flush(&mut self) -> Result<()> {
        let Some(jobs) = &self.jobs else {
            return Ok(());
        };
        let (reply, done) = oneshot::channel();
        jobs.send(Job::Flush(reply))
            .await
            .map_err(|_| Self::stopped())?;
        done.await.map_err(|_| Self::stopped())?
    }

    async fn stop(&mut self) -> Result<()> {
        self.jobs = None;
        if let Some(producer) = &self.producer {
            // After a drain nothing is queued and this does nothing. After an aborted drain (the
            // broker is down) it fails what is still queued or in flight at once, so the worker
            // is not left waiting out `message_timeout_ms` in a flush or on a full queue.
            producer.purge(PurgeConfig::default().queue().inflight());
        }
        if let Some(handle) = self.worker.take() {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        if let Some(producer) = self.producer.take() {
            // Dropping the producer purges what is still queued (failing those acks) and joins
            // its polling thread: do it off the runtime.
            let _ = tokio::task::spawn_blocking(move || drop(producer)).await;
        }
        Ok(())
    }

    fn stores_offsets(&self) -> bool {
        self.config.delivery == Delivery::ExactlyOnce
    }

    async fn check(&mut self) -> Vec<Check> {
        let config = self.config.clone();
        let pipeline = Arc::clone(&self.pipeline);
        let offsets = self.offsets.clone();
        tokio::task::spawn_blocking(move || check(&config, &pipeline, offsets.as_ref()))
            .await
            .unwrap_or_else(|e| {
                vec![Check::from_error(
                    "kafka",
                    &Error::internal("the Kafka check panicked").with_source(e),
                )]
            })
    }
}

/// `cdc check`: connectivity and authentication (a metadata request), the topics that can be
/// known before any event, and the delivery mode.
fn check(config: &KafkaSinkConfig, pipeline: &str, offsets: Option<&(String, i32)>) -> Vec<Check> {
    let mut checks = Vec::new();
    let name = format!("kafka brokers {}", config.brokers);
    let timeout = Duration::from_millis(config.operation_timeout_ms).min(CHECK_TIMEOUT);
    let client = match metadata_client(&config.connection()) {
        Ok(c) => c,
        Err(e) => return vec![Check::from_error(name, &e)],
    };
    use rdkafka::consumer::Consumer as _;
    match client.fetch_metadata(None, timeout) {
        Ok(md) => checks.push(Check::pass(
            name,
            format!(
                "reachable and authenticated: {} broker(s), {} topic(s) visible",
                md.brokers().len(),
                md.topics().len()
            ),
        )),
        Err(e) => {
            let mut e = kafka_error(
                format!("no metadata within {} ms: {e}", timeout.as_millis()),
                e,
            );
            if e.hint().is_none() {
                e = e.with_hint(
                    "check `sink.brokers` (host and port) and TLS/SASL settings: the brokers must \
                     be reachable from cdc",
                );
            }
            checks.push(Check::from_error(name, &e));
            return checks;
        }
    }
    let mut fixed: Vec<(String, &str)> = Router::new(
        pipeline.into(),
        &config.topic,
        &config.topics,
        &config.message_topic,
    )
    .map(|r| r.fixed_topics())
    .unwrap_or_default()
    .into_iter()
    .map(|t| (t, "table topic"))
    .collect();
    if let Some(dlq) = &config.dead_letter_topic {
        fixed.push((dlq.clone(), "dead-letter topic"));
    }
    if let Some(topic) = config.transaction_topic(pipeline) {
        fixed.push((topic, "transaction topic"));
    }
    if let Some((topic, _)) = offsets {
        fixed.push((topic.clone(), "offsets topic"));
    }
    for (topic, role) in fixed {
        let check_name = format!("topic {topic}");
        match partition_count(client.client(), &topic, timeout) {
            Ok(Some(n)) => {
                checks.push(Check::pass(check_name, format!("{role}, {n} partition(s)")))
            }
            Ok(None) if config.create_topics.is_some() || role == "offsets topic" => checks.push(
                Check::pass(check_name, format!("{role}, missing: created on first use")),
            ),
            Ok(None) => checks.push(Check::fail(
                check_name,
                format!("{role} does not exist"),
                "create it, or set `sink.create_topics` to let cdc create missing topics",
            )),
            Err(e) => checks.push(Check::from_error(check_name, &e)),
        }
    }
    checks.push(Check::pass(
        "topic naming",
        format!(
            "tables go to {:?}{}",
            config.topic,
            if config.create_topics.is_some() {
                ", created when missing"
            } else {
                "; each must exist before its table's first change"
            }
        ),
    ));
    checks.push(match config.delivery {
        Delivery::AtLeastOnce => Check::pass("delivery", "at_least_once (idempotent producer)"),
        Delivery::ExactlyOnce => Check::pass(
            "delivery",
            format!(
                "exactly_once with transactional.id {} (not initialised by the check, which would \
                 fence a running instance); the broker must support transactions",
                transactional_id(pipeline)
            ),
        ),
    });
    checks
}

/// The open transaction of an `exactly_once` worker.
struct Txn {
    started: Instant,
    acks: Vec<BatchAck>,
    checkpoint: Option<Position>,
    records: u64,
}

struct Worker {
    producer: Arc<Producer>,
    rx: mpsc::Receiver<Job>,
    router: Router,
    records: RecordEncoder,
    topics: Topics,
    pipeline: Arc<str>,
    dead_letter_topic: Option<Arc<str>>,
    /// Where BEGIN and END records go, with transaction metadata.
    transaction_topic: Option<Arc<str>>,
    headers: bool,
    offsets: Option<(Arc<str>, i32)>,
    transactional: bool,
    interval: Duration,
    timeout: Duration,
    flush_timeout: Duration,
    metrics: Arc<Metrics>,
    /// The sticky failure: once set, nothing more is produced and every batch fails.
    failure: Option<Error>,
    txn: Option<Txn>,
}

impl Worker {
    fn run(mut self) {
        let rt = match current_thread_runtime() {
            Ok(rt) => rt,
            Err(e) => {
                self.failure = Some(e);
                // Fail whatever arrives.
                while let Some(job) = self.rx.blocking_recv() {
                    self.reject(job);
                }
                return;
            }
        };
        loop {
            let job = match &self.txn {
                Some(txn) => {
                    let left = self.interval.saturating_sub(txn.started.elapsed());
                    let rx = &mut self.rx;
                    match rt.block_on(async { tokio::time::timeout(left, rx.recv()).await }) {
                        Ok(job) => job,
                        Err(_) => {
                            self.commit();
                            continue;
                        }
                    }
                }
                None => rt.block_on(self.rx.recv()),
            };
            let Some(job) = job else { break };
            match job {
                Job::Start(reply) => {
                    let _ = reply.send(self.start(&rt));
                }
                Job::Batch(batch, ack) => self.batch(&rt, batch, ack),
                Job::Flush(reply) => {
                    let r = self.flush();
                    let _ = reply.send(r);
                }
            }
        }
        if let Some(txn) = self.txn.take() {
            debug!(
                batches = txn.acks.len(),
                "aborting the open transaction at stop"
            );
            if let Err(e) = self.producer.abort_transaction(self.timeout) {
                warn!(error = %e, "aborting the open transaction at stop failed");
            }
            self.metrics.add(TRANSACTIONS, &[("result", "aborted")], 1);
            let e = Error::new(ErrorKind::Unavailable, "the sink stopped before the commit");
            for ack in txn.acks {
                ack.fail(e.clone());
            }
        }
    }

    fn reject(&self, job: Job) {
        let e = self
            .failure
            .as_ref()
            .cloned()
            .unwrap_or_else(KafkaSink::stopped);
        match job {
            Job::Start(reply) | Job::Flush(reply) => {
                let _ = reply.send(Err(e));
            }
            Job::Batch(_, ack) => ack.fail(e),
        }
    }

    fn start(&mut self, rt: &tokio::runtime::Runtime) -> Result<()> {
        let client = self.producer.client();
        client
            .fetch_metadata(None, self.timeout)
            .map_err(|e| kafka_error("connecting to the Kafka brokers", e))?;
        if let Some(dlq) = self.dead_letter_topic.clone() {
            self.topics
                .ensure(client, rt, &dlq)
                .map_err(|e| e.context("the dead-letter topic"))?;
        }
        if let Some(topic) = self.transaction_topic.clone() {
            self.topics
                .ensure(client, rt, &topic)
                .map_err(|e| e.context("the transaction topic"))?;
        }
        if let Some((topic, rf)) = self.offsets.clone() {
            self.topics
                .ensure_compacted(client, rt, &topic, rf)
                .map_err(|e| e.context("the offsets topic"))?;
        }
        if self.transactional {
            self.producer
                .init_transactions(self.timeout)
                .map_err(|e| kafka_error("initialising Kafka transactions", e))?;
        }
        Ok(())
    }

    fn batch(&mut self, rt: &tokio::runtime::Runtime, batch: Batch, ack: BatchAck) {
        if self.failure.is_none() {
            self.failure = self.producer.context().failure();
        }
        if let Some(e) = &self.failure {
            ack.fail(e.clone());
            return;
        }
        if self.transactional {
            self.batch_in_transaction(rt, batch, ack);
        } else {
            let shared = ack.share();
            match self.produce(rt, &batch, Some(&shared)) {
                Ok(()) => shared.done(),
                Err(e) => {
                    shared.fail(e.clone());
                    self.failure = Some(e);
                }
            }
        }
    }

    fn batch_in_transaction(&mut self, rt: &tokio::runtime::Runtime, batch: Batch, ack: BatchAck) {
        if self.txn.is_none() {
            if let Err(e) = self.producer.begin_transaction() {
                let e = kafka_error("beginning a Kafka transaction", e);
                ack.fail(e.clone());
                self.failure = Some(e);
                return;
            }
            self.txn = Some(Txn {
                started: Instant::now(),
                acks: Vec::new(),
                checkpoint: None,
                records: 0,
            });
        }
        let produced = self.produce(rt, &batch, None);
        let txn = self.txn.as_mut().expect("opened above");
        txn.acks.push(ack);
        if let Some(cp) = batch.checkpoint {
            txn.checkpoint = Some(cp);
        }
        match produced {
            Ok(()) => {
                if txn.started.elapsed() >= self.interval {
                    self.commit();
                }
            }
            Err(e) => self.abort(e),
        }
    }

    /// Commit the open transaction (with the offset record) and complete its acks.
    fn commit(&mut self) {
        let Some(mut txn) = self.txn.take() else {
            return;
        };
        if let (Some(cp), Some((topic, _))) = (&txn.checkpoint, &self.offsets) {
            let value = encode_transactional_position(&self.pipeline, cp);
            let sent = send(
                &self.producer,
                Outgoing {
                    topic,
                    partition: None,
                    key: Some(self.pipeline.as_bytes()),
                    value: Some(&value),
                    headers: None,
                },
                Box::new(DeliveryInfo {
                    ack: None,
                    table: None,
                }),
                || {},
            );
            if let Err(e) = sent {
                let e = match e {
                    SendError::TooLarge(_) => Error::internal("the offset record is too large"),
                    SendError::Failed(e) => kafka_error("writing the offset record", e),
                };
                self.txn = Some(txn);
                self.abort(e);
                return;
            }
            txn.records += 1;
        }
        let mut attempt = 0;
        let result = loop {
            match self.producer.commit_transaction(self.timeout) {
                Ok(()) => break Ok(()),
                Err(KafkaError::Transaction(e)) if e.is_retriable() && attempt < COMMIT_RETRIES => {
                    attempt += 1;
                    debug!(error = %e, attempt, "retrying the transaction commit");
                }
                Err(e) => break Err(e),
            }
        };
        match result {
            Ok(()) => {
                self.metrics
                    .add(TRANSACTIONS, &[("result", "committed")], 1);
                debug!(
                    batches = txn.acks.len(),
                    records = txn.records,
                    "committed a transaction"
                );
                for ack in txn.acks {
                    ack.durable();
                }
            }
            Err(e) => {
                let requires_abort =
                    matches!(&e, KafkaError::Transaction(t) if t.txn_requires_abort());
                // A delivery failure inside the transaction names the table and key: prefer it;
                // then the producer's fatal error (fencing), which says why it cannot go on.
                let error = self
                    .producer
                    .context()
                    .failure()
                    .or_else(|| fatal_error(&self.producer))
                    .unwrap_or_else(|| kafka_error("committing the Kafka transaction", e));
                self.txn = Some(txn);
                if requires_abort {
                    self.abort(error);
                } else {
                    self.fail_txn(error);
                }
            }
        }
    }

    /// Abort the open transaction and fail its batches with `error` (sticky).
    fn abort(&mut self, error: Error) {
        if let Err(e) = self.producer.abort_transaction(self.timeout) {
            warn!(error = %e, "aborting the Kafka transaction failed");
        }
        self.metrics.add(TRANSACTIONS, &[("result", "aborted")], 1);
        self.fail_txn(error);
    }

    fn fail_txn(&mut self, error: Error) {
        if let Some(txn) = self.txn.take() {
            for ack in txn.acks {
                ack.fail(error.clone());
            }
        }
        self.failure = Some(error);
    }

    fn flush(&mut self) -> Result<()> {
        if self.transactional {
            self.commit();
        } else if let Err(e) = self.producer.flush(self.flush_timeout) {
            return Err(kafka_error("flushing the Kafka producer", e));
        }
        match &self.failure {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Encode and enqueue every record of `batch`; `share` is the batch's ack (at-least-once).
    fn produce(
        &mut self,
        rt: &tokio::runtime::Runtime,
        batch: &Batch,
        share: Option<&SharedAck>,
    ) -> Result<()> {
        let now = now_micros();
        let mut messages = 0u64;
        let mut bytes = 0u64;
        let mut waits = 0u64;
        let mut dead = 0u64;
        let producer = &self.producer;
        for event in &batch.events {
            let topic = self.router.topic(event);
            let partitions = self
                .topics
                .ensure(producer.client(), rt, &topic)
                .map_err(|e| {
                    e.context(format!(
                        "routing a change of {}",
                        table_name(event.table.as_deref())
                    ))
                })?;
            let table_id = event.table.as_ref().map(|t| &t.id);
            let dlq = self.dead_letter_topic.as_deref();
            let txn_topic = self.transaction_topic.as_deref();
            let with_headers = self.headers;
            let metrics_waits = &mut waits;
            self.records.for_each(event, now, |rec| {
                // BEGIN and END records: keyed, without headers (as Debezium's).
                let (topic, record_headers) = match (rec.transaction, txn_topic) {
                    (true, Some(t)) => (t, None),
                    _ => (
                        &*topic,
                        with_override_headers(
                            event,
                            with_headers.then(|| headers(rec.op.code(), event)),
                        ),
                    ),
                };
                let partition = match rec.key {
                    Some(_) => None,
                    None => Some(keyless_partition(table_id, partitions)),
                };
                let delivery = Box::new(DeliveryInfo {
                    ack: share.cloned(),
                    table: event.table.clone(),
                });
                let size = rec.key.map_or(0, <[u8]>::len) + rec.value.map_or(0, <[u8]>::len);
                let out = Outgoing {
                    topic,
                    partition,
                    key: rec.key,
                    value: rec.value,
                    headers: record_headers,
                };
                match send(producer, out, delivery, || *metrics_waits += 1) {
                    Ok(()) => {
                        messages += 1;
                        bytes += size as u64;
                        Ok(())
                    }
                    Err(SendError::TooLarge(delivery)) => {
                        let Some(dlq) = dlq else {
                            return Err(Error::new(
                                ErrorKind::Data,
                                format!(
                                    "a change of {} with key {} is too large for topic {topic}: \
                                     {size} bytes exceed `message.max.bytes`",
                                    table_name(event.table.as_deref()),
                                    key_text(rec.key),
                                ),
                            )
                            .with_hint(
                                hint_of(rdkafka::error::RDKafkaErrorCode::MessageSizeTooLarge)
                                    .unwrap_or_default(),
                            ));
                        };
                        let value = dead_letter_value(event, topic, rec.op.code(), size);
                        let dead_headers = headers(rec.op.code(), event)
                            .insert(Header {
                                key: "cdc.error",
                                value: Some("message_too_large"),
                            })
                            .insert(Header {
                                key: "cdc.topic",
                                value: Some(topic),
                            });
                        let out = Outgoing {
                            topic: dlq,
                            partition: None,
                            key: rec.key,
                            value: Some(&value),
                            headers: Some(dead_headers),
                        };
                        warn!(
                            table = %table_name(event.table.as_deref()),
                            topic = %topic,
                            size_bytes = size,
                            dead_letter_topic = dlq,
                            "a change too large for the broker goes to the dead-letter topic"
                        );
                        send(producer, out, delivery, || *metrics_waits += 1)
                            .map_err(|e| send_error(producer, e, event, rec.key, dlq))?;
                        dead += 1;
                        messages += 1;
                        Ok(())
                    }
                    Err(e) => Err(send_error(producer, e, event, rec.key, topic)),
                }
            })?;
        }
        let m = &self.metrics;
        m.add(MESSAGES, &[], messages);
        m.add(MESSAGE_BYTES, &[], bytes);
        if waits > 0 {
            m.add(QUEUE_FULL_WAITS, &[], waits);
        }
        if dead > 0 {
            m.add(DEAD_LETTERS, &[], dead);
        }
        if let Some(txn) = &mut self.txn {
            txn.records += messages;
        }
        Ok(())
    }
}

/// The producer's fatal error (fenced by a newer instance, an idempotence failure), if it has one:
/// after it the producer cannot be used again.
fn fatal_error(producer: &Producer) -> Option<Error> {
    let (code, reason) = producer.client().fatal_error()?;
    let mut e = Error::new(
        kind_of(code),
        format!("the Kafka producer hit a fatal error: {reason}"),
    );
    if let Some(h) = hint_of(code) {
        e = e.with_hint(h);
    }
    Some(e)
}

/// The error of a send that could not enqueue.
fn send_error(
    producer: &Producer,
    e: SendError,
    event: &connector_core::ChangeEvent,
    key: Option<&[u8]>,
    topic: &str,
) -> Error {
    let what = format!(
        "producing a change of {} with key {} to topic {topic}",
        table_name(event.table.as_deref()),
        key_text(key)
    );
    match e {
        SendError::TooLarge(_) => {
            let code = rdkafka::error::RDKafkaErrorCode::MessageSizeTooLarge;
            Error::new(kind_of(code), format!("{what}: message too large"))
                .with_hint(hint_of(code).unwrap_or_default())
        }
        SendError::Failed(e) => {
            if code_of(&e) == Some(rdkafka::error::RDKafkaErrorCode::Fatal) {
                if let Some(fatal) = fatal_error(producer) {
                    return fatal.context(what);
                }
            }
            kafka_error(what, e)
        }
    }
}

/// The record headers of one event.
fn headers(op: &str, event: &connector_core::ChangeEvent) -> OwnedHeaders {
    let h = OwnedHeaders::new_with_capacity(3)
        .insert(Header {
            key: HEADER_OP,
            value: Some(op),
        })
        .insert(Header {
            key: HEADER_POSITION,
            value: Some(event.position.as_str()),
        });
    match &event.txn {
        Some(txn) => h.insert(Header {
            key: HEADER_TXID,
            value: Some(&*txn.id),
        }),
        None => h,
    }
}

/// `headers` plus the headers a transform added (the outbox `id`), which are written whether or
/// not `sink.headers` is on.
fn with_override_headers(
    event: &connector_core::ChangeEvent,
    headers: Option<OwnedHeaders>,
) -> Option<OwnedHeaders> {
    let extra = match &event.record {
        Some(r) if !r.headers.is_empty() => &r.headers,
        _ => return headers,
    };
    let mut h = headers.unwrap_or_else(|| OwnedHeaders::new_with_capacity(extra.len()));
    for (key, value) in extra {
        h = h.insert(Header {
            key,
            value: Some(value.as_slice()),
        });
    }
    Some(h)
}

/// What the dead-letter topic receives for an event too large to produce.
fn dead_letter_value(
    event: &connector_core::ChangeEvent,
    topic: &str,
    op: &str,
    size: usize,
) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "error": "message too large",
        "topic": topic,
        "table": event.table.as_ref().map(|t| t.id.to_string()),
        "op": op,
        "position": event.position.as_str(),
        "txid": event.txn.as_ref().map(|t| t.id.to_string()),
        "size_bytes": size,
    }))
    .unwrap_or_default()
}
