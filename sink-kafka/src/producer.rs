//! The librdkafka producer: its context (delivery reports to batch acks, logs to `tracing`), the
//! non-blocking send with backpressure, and topic metadata and creation.
//!
//! librdkafka's warnings and errors (a broker unreachable gives several per reconnect attempt and
//! client) go through one [`FailureLog`] per client: logged when they start, then at most every
//! 30 s with how long and, for the sink's producer, how many messages wait; the producer's first
//! successful delivery after them logs the recovery. They are logged with target `librdkafka`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use connector_core::{Error, ErrorKind, FailureLog, Result, SharedAck, TableSchema};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::Client;
use rdkafka::config::{ClientConfig, FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedHeaders};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};
use rdkafka::ClientContext;
use tracing::{debug, info};

use crate::config::{Connection, CreateTopics};
use crate::error::{hint_of, is_unknown_topic, kafka_error, kind_of};

/// The producer type of the sink.
pub type Producer = ThreadedProducer<SinkContext>;

/// What travels with each message to its delivery report.
#[derive(Debug)]
pub struct Delivery {
    /// The batch share to complete (at-least-once); `None` inside transactions, where the commit
    /// completes the batch.
    pub ack: Option<SharedAck>,
    /// The event's table, to name it in errors.
    pub table: Option<Arc<TableSchema>>,
}

/// The producer's context: turns delivery reports into acks and remembers the first failure.
#[derive(Debug)]
pub struct SinkContext {
    failed: AtomicBool,
    first_failure: Mutex<Option<(ErrorKind, String, Option<&'static str>)>>,
    /// Messages handed to librdkafka and not yet reported.
    queued: AtomicU64,
    client_log: FailureLog,
}

impl Default for SinkContext {
    fn default() -> Self {
        SinkContext {
            failed: AtomicBool::new(false),
            first_failure: Mutex::new(None),
            queued: AtomicU64::new(0),
            client_log: FailureLog::new("kafka producer"),
        }
    }
}

impl SinkContext {
    /// Messages handed to librdkafka and not yet acknowledged or failed.
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    fn buffered(&self) -> Option<String> {
        Some(format!("{} messages queued", self.queued()))
    }

    /// The first delivery failure since the producer started, as an error.
    pub fn failure(&self) -> Option<Error> {
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        let slot = self.first_failure.lock().ok()?;
        slot.as_ref().map(|(kind, message, hint)| {
            let e = Error::new(*kind, message.clone());
            match hint {
                Some(h) => e.with_hint(*h),
                None => e,
            }
        })
    }

    fn record_failure(&self, kind: ErrorKind, message: &str, hint: Option<&'static str>) {
        if let Ok(mut slot) = self.first_failure.lock() {
            if slot.is_none() {
                *slot = Some((kind, message.to_string(), hint));
            }
        }
        self.failed.store(true, Ordering::Release);
    }
}

impl ClientContext for SinkContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_to_tracing(&self.client_log, level, fac, log_message, || {
            self.buffered()
        });
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.client_log
            .failed(format_args!("{error}: {reason}"), || self.buffered());
    }
}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = Box<Delivery>;

    fn delivery(&self, result: &DeliveryResult<'_>, delivery: Box<Delivery>) {
        // (Saturating: a message enqueued by a path that does not count it.)
        let _ = self
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        match result {
            Ok(_) => {
                self.client_log.recovered();
                if let Some(ack) = delivery.ack {
                    // After a failed delivery no later batch is acknowledged: the pipeline
                    // resends from the failed one, and a later position must not become durable
                    // ahead of it.
                    match self.failure() {
                        Some(e) => ack.fail(e),
                        None => ack.done(),
                    }
                }
            }
            Err((e, msg)) => {
                let code = e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
                let kind = kind_of(code);
                let message = format!(
                    "delivering a change of {} with key {} to topic {} failed: {e}",
                    table_name(delivery.table.as_deref()),
                    key_text(msg.key()),
                    msg.topic(),
                );
                let hint = hint_of(code);
                self.record_failure(kind, &message, hint);
                if let Some(ack) = delivery.ack {
                    let mut error = Error::new(kind, message).with_source(e.clone());
                    if let Some(h) = hint {
                        error = error.with_hint(h);
                    }
                    ack.fail(error);
                }
            }
        }
    }
}

/// A context that only routes librdkafka logs to `tracing` (admin clients, consumers), quietly:
/// each client's repeated warnings go through its own [`FailureLog`].
#[derive(Clone, Debug)]
pub struct LogContext {
    client_log: Arc<FailureLog>,
}

impl Default for LogContext {
    fn default() -> Self {
        LogContext {
            client_log: Arc::new(FailureLog::new("kafka client")),
        }
    }
}

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_to_tracing(&self.client_log, level, fac, log_message, || None);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.client_log
            .failed(format_args!("{error}: {reason}"), || None);
    }
}

impl rdkafka::consumer::ConsumerContext for LogContext {}

impl ProducerContext for LogContext {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
}

/// librdkafka's log lines: warnings and errors through `failures` (quiet while they repeat), the
/// rest at their level, all with target `librdkafka`.
fn log_to_tracing(
    failures: &FailureLog,
    level: RDKafkaLogLevel,
    fac: &str,
    message: &str,
    buffered: impl FnOnce() -> Option<String>,
) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error
        | RDKafkaLogLevel::Warning => {
            failures.failed(format_args!("librdkafka {fac}: {message}"), buffered);
        }
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            info!(target: "librdkafka", facility = fac, "librdkafka: {message}")
        }
        RDKafkaLogLevel::Debug => {
            debug!(target: "librdkafka", facility = fac, "librdkafka: {message}")
        }
    }
}

/// `schema.table`, or `logical messages`.
pub fn table_name(table: Option<&TableSchema>) -> String {
    match table {
        Some(t) => format!("table {}", t.id),
        None => "logical messages".to_string(),
    }
}

/// A key for an error message: its text, cut to 200 bytes, or `null`.
pub fn key_text(key: Option<&[u8]>) -> String {
    match key {
        None => "null".to_string(),
        Some(k) => {
            let cut = &k[..k.len().min(200)];
            let mut s = String::from_utf8_lossy(cut).into_owned();
            if k.len() > cut.len() {
                s.push_str("...");
            }
            s
        }
    }
}

/// Create a producer from `config`, mapping configuration errors to `Config` errors.
pub fn create_producer(config: &ClientConfig) -> Result<Arc<Producer>> {
    let producer = ThreadedProducer::from_config_and_context(config, SinkContext::default())
        .map_err(|e| kafka_error("creating the Kafka producer", e))?;
    Ok(Arc::new(producer))
}

/// Why a send did not enqueue.
#[derive(Debug)]
pub enum SendError {
    /// The message is larger than `message.max.bytes` (detected before sending); the delivery is
    /// handed back for a replacement record (the dead letter).
    TooLarge(Box<Delivery>),
    /// Any other error.
    Failed(KafkaError),
}

/// One record to send.
pub struct Outgoing<'a> {
    /// Topic name.
    pub topic: &'a str,
    /// Explicit partition (keyless events), or the partitioner's choice on the key.
    pub partition: Option<i32>,
    /// Key bytes.
    pub key: Option<&'a [u8]>,
    /// Value bytes; `None` is a tombstone.
    pub value: Option<&'a [u8]>,
    /// Headers, if any.
    pub headers: Option<OwnedHeaders>,
}

/// Enqueue one record. A full local queue is backpressure: wait for room and try again, calling
/// `on_wait` each time; never an error.
pub fn send(
    producer: &Producer,
    out: Outgoing<'_>,
    delivery: Box<Delivery>,
    mut on_wait: impl FnMut(),
) -> std::result::Result<(), SendError> {
    let mut record: BaseRecord<'_, [u8], [u8], Box<Delivery>> =
        BaseRecord::with_opaque_to(out.topic, delivery);
    if let Some(h) = out.headers {
        record = record.headers(h);
    }
    if let Some(p) = out.partition {
        record = record.partition(p);
    }
    if let Some(k) = out.key {
        record = record.key(k);
    }
    if let Some(v) = out.value {
        record = record.payload(v);
    }
    loop {
        match producer.send(record) {
            Ok(()) => {
                producer.context().queued.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                on_wait();
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), back)) => {
                return Err(SendError::TooLarge(back.delivery_opaque))
            }
            Err((e, _)) => return Err(SendError::Failed(e)),
        }
    }
}

/// Known topics and their partition counts; creates missing ones when configured.
pub struct Topics {
    connection: Connection,
    create: Option<CreateTopics>,
    timeout: Duration,
    partitions: HashMap<Arc<str>, i32>,
    admin: Option<AdminClient<LogContext>>,
}

impl Topics {
    /// Topics of a cluster reached through `connection`; missing topics are created with `create`.
    pub fn new(connection: Connection, create: Option<CreateTopics>, timeout: Duration) -> Self {
        Topics {
            connection,
            create,
            timeout,
            partitions: HashMap::new(),
            admin: None,
        }
    }

    /// The partition count of `topic` (cached): creating it if it is missing and creation is
    /// configured, else a `Precondition` error with a hint.
    pub fn ensure<C: ClientContext>(
        &mut self,
        client: &Client<C>,
        rt: &tokio::runtime::Runtime,
        topic: &Arc<str>,
    ) -> Result<i32> {
        if let Some(n) = self.partitions.get(topic) {
            return Ok(*n);
        }
        let n = match partition_count(client, topic, self.timeout)? {
            Some(n) => n,
            None => match self.create.clone() {
                Some(create) => {
                    let config: Vec<(String, String)> = create
                        .config
                        .iter()
                        .map(|(k, v)| (k.clone(), v.to_string()))
                        .collect();
                    self.create_topic(
                        client,
                        rt,
                        topic,
                        create.partitions,
                        create.replication_factor,
                        &config,
                    )?
                }
                None => {
                    return Err(Error::new(
                        ErrorKind::Precondition,
                        format!("topic {topic} does not exist"),
                    )
                    .with_hint(
                        "create it (the broker does not create topics here), or set \
                         `sink.create_topics: { partitions: N }` to let cdc create missing topics",
                    ))
                }
            },
        };
        self.partitions.insert(Arc::clone(topic), n);
        Ok(n)
    }

    /// Like [`Topics::ensure`], but a missing topic is always created, compacted with one
    /// partition (the offsets topic).
    pub fn ensure_compacted<C: ClientContext>(
        &mut self,
        client: &Client<C>,
        rt: &tokio::runtime::Runtime,
        topic: &Arc<str>,
        replication_factor: i32,
    ) -> Result<i32> {
        if let Some(n) = self.partitions.get(topic) {
            return Ok(*n);
        }
        let n = match partition_count(client, topic, self.timeout)? {
            Some(n) => n,
            None => self.create_topic(
                client,
                rt,
                topic,
                1,
                replication_factor,
                &[("cleanup.policy".to_string(), "compact".to_string())],
            )?,
        };
        self.partitions.insert(Arc::clone(topic), n);
        Ok(n)
    }

    fn create_topic<C: ClientContext>(
        &mut self,
        client: &Client<C>,
        rt: &tokio::runtime::Runtime,
        topic: &str,
        partitions: i32,
        replication_factor: i32,
        config: &[(String, String)],
    ) -> Result<i32> {
        if self.admin.is_none() {
            let mut cc = self.connection.client_config();
            self.connection.apply_properties(&mut cc);
            let admin = <AdminClient<LogContext> as FromClientConfigAndContext<LogContext>>::from_config_and_context(&cc, LogContext::default())
                .map_err(|e| kafka_error("creating the Kafka admin client", e))?;
            self.admin = Some(admin);
        }
        let admin = self.admin.as_ref().expect("set above");
        let mut new = NewTopic::new(
            topic,
            partitions,
            TopicReplication::Fixed(replication_factor),
        );
        for (k, v) in config {
            new = new.set(k, v);
        }
        let opts = AdminOptions::new().operation_timeout(Some(self.timeout));
        let what = format!("creating topic {topic}");
        let results = rt
            .block_on(admin.create_topics([&new], &opts))
            .map_err(|e| kafka_error(what.clone(), e))?;
        for r in results {
            match r {
                Ok(_) => info!(topic, partitions, replication_factor, "created topic"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => {
                    let mut e = Error::new(kind_of(code), format!("{what}: {code}"));
                    if let Some(h) = hint_of(code) {
                        e = e.with_hint(h);
                    }
                    return Err(e);
                }
            }
        }
        // Wait until the metadata shows the new topic.
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(n) = partition_count(client, topic, self.timeout)? {
                return Ok(n);
            }
            if Instant::now() >= deadline {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!("{what}: it did not appear in the metadata"),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The partition count of `topic`, or `None` when it does not exist.
pub fn partition_count<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Option<i32>> {
    let md = client
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| kafka_error(format!("reading the metadata of topic {topic}"), e))?;
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
        return Ok(None);
    };
    if let Some(err) = t.error() {
        let code = RDKafkaErrorCode::from(err);
        if is_unknown_topic(code) {
            return Ok(None);
        }
        let mut e = Error::new(
            kind_of(code),
            format!("reading the metadata of topic {topic}: {code}"),
        );
        if let Some(h) = hint_of(code) {
            e = e.with_hint(h);
        }
        return Err(e);
    }
    if t.partitions().is_empty() {
        return Ok(None);
    }
    Ok(Some(t.partitions().len() as i32))
}

/// A client used only for metadata (checks), from `connection`.
pub fn metadata_client(
    connection: &Connection,
) -> Result<rdkafka::consumer::BaseConsumer<LogContext>> {
    let mut cc = connection.client_config();
    cc.set("group.id", "cdc-check")
        .set("enable.auto.commit", "false");
    connection.apply_properties(&mut cc);
    rdkafka::consumer::BaseConsumer::from_config_and_context(&cc, LogContext::default())
        .map_err(|e| kafka_error("creating a Kafka client", e))
}
