//! The `kafka` offset store: the last durable position of each pipeline in a compacted topic.
//!
//! - Topic: `offsets.topic` (default `cdc_offsets`), created with one partition and
//!   `cleanup.policy=compact` when missing. Brokers default to the sink's.
//! - Record: key = the pipeline name, value = `{"pipeline":..,"position":..,"updated_at_ms":..}`
//!   (the same JSON as the file store); `clear` writes a tombstone.
//! - `load` reads each partition from the end backwards in growing windows and returns the newest
//!   record for the key. The isolation depends on who writes the pipeline's records:
//!   - without transactions (`at_least_once`, the default), `read_uncommitted`: the pipeline's
//!     own records are never transactional, and another pipeline's open transaction on the shared
//!     topic (which holds back the last stable offset for every `read_committed` reader) neither
//!     hides newer records nor makes the load wait; a record of its own that an earlier
//!     `exactly_once` run wrote in a transaction (marked `"transactional":true`) is read again
//!     `read_committed`, so an aborted transaction's position is never resumed from;
//!   - with `delivery: exactly_once` (the sink writes the record inside its transactions),
//!     `read_committed`, read up to the end the partition had when the load began (not merely to
//!     the last stable offset, which would return an older position while another pipeline's
//!     transaction is open): the loaded position is always the newest committed one. The load
//!     waits (up to `operation_timeout_ms`) while another instance's transaction is open; give
//!     exactly-once pipelines their own `offsets.topic` to never wait on others.
//! - `lock`: with `exactly_once`, initialises the sink's transactional id once, which fences an
//!   older instance and aborts a transaction it left open, so the last stable offset can advance
//!   before `load` runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use connector_core::{ConfigSection, Context, Error, ErrorKind, OffsetStore, Position, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::config::{kafka_sink_of, Connection, Delivery, KafkaOffsetsConfig, PARTITIONER};
use crate::error::kafka_error;
use crate::producer::{LogContext, Topics};

/// First window read backwards from the end of a partition, in records.
const FIRST_WINDOW_RECORDS: i64 = 256;

/// The value of an offsets record.
#[derive(Debug, Serialize, Deserialize)]
pub struct OffsetRecord {
    /// The pipeline (also the record key).
    pub pipeline: String,
    /// The durable position.
    pub position: Position,
    /// When it was written, milliseconds since the Unix epoch.
    pub updated_at_ms: u64,
    /// Written inside a Kafka transaction (an `exactly_once` sink): a `read_uncommitted` load
    /// cannot tell whether that transaction committed, so it reads the key again committed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub transactional: bool,
}

/// The JSON value stored for `position` of `pipeline` outside a transaction.
pub fn encode_position(pipeline: &str, position: &Position) -> Vec<u8> {
    encode_record(pipeline, position, false)
}

/// The JSON value stored for `position` of `pipeline` inside an `exactly_once` transaction.
pub fn encode_transactional_position(pipeline: &str, position: &Position) -> Vec<u8> {
    encode_record(pipeline, position, true)
}

fn encode_record(pipeline: &str, position: &Position, transactional: bool) -> Vec<u8> {
    let record = OffsetRecord {
        pipeline: pipeline.to_string(),
        position: position.clone(),
        updated_at_ms: connector_core::clock::now_millis(),
        transactional,
    };
    serde_json::to_vec(&record).unwrap_or_default()
}

/// The transactional id of the sink of `pipeline` with `delivery: exactly_once`.
pub fn transactional_id(pipeline: &str) -> String {
    format!("cdc-{pipeline}")
}

/// Registry factory for `offsets: { type: kafka }`.
pub fn offset_store_factory(
    section: &ConfigSection,
    ctx: &Context,
) -> Result<Box<dyn OffsetStore>> {
    let (config, connection) = KafkaOffsetsConfig::from_section(section)?;
    let mut store = KafkaOffsetStore::new(
        ctx.pipeline.to_string(),
        config.topic,
        connection,
        Duration::from_millis(config.operation_timeout_ms),
    )?;
    store.replication_factor = config.replication_factor;
    if let Some(sink) = kafka_sink_of(section)? {
        if sink.delivery == Delivery::ExactlyOnce {
            store.fence = Some(transactional_id(&ctx.pipeline));
        }
    }
    Ok(Box::new(store))
}

/// How the offsets topic is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// Everything, up to the high watermark: for pipelines that write their offsets without
    /// transactions.
    Uncommitted,
    /// Committed records only, up to the end the partition had when the read began (waiting for
    /// open transactions below it to end): for exactly-once pipelines.
    Committed,
}

impl Isolation {
    fn level(self) -> &'static str {
        match self {
            Isolation::Uncommitted => "read_uncommitted",
            Isolation::Committed => "read_committed",
        }
    }
}

/// Offsets kept in a compacted Kafka topic.
pub struct KafkaOffsetStore {
    pipeline: String,
    topic: Arc<str>,
    connection: Connection,
    timeout: Duration,
    replication_factor: i32,
    fence: Option<String>,
    producer: FutureProducer<LogContext>,
    topic_ready: AtomicBool,
}

impl KafkaOffsetStore {
    /// A store for `pipeline` in `topic` on the cluster of `connection`.
    pub fn new(
        pipeline: String,
        topic: String,
        connection: Connection,
        timeout: Duration,
    ) -> Result<Self> {
        use rdkafka::config::FromClientConfigAndContext as _;
        let mut cc = connection.client_config();
        cc.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("partitioner", PARTITIONER)
            .set("linger.ms", "0")
            .set("message.timeout.ms", timeout.as_millis().to_string());
        connection.apply_properties(&mut cc);
        let producer = FutureProducer::from_config_and_context(&cc, LogContext::default())
            .map_err(|e| kafka_error("creating the offsets producer", e))?;
        Ok(KafkaOffsetStore {
            pipeline,
            topic: topic.into(),
            connection,
            timeout,
            replication_factor: crate::config::DEFAULT_REPLICATION_FACTOR,
            fence: None,
            producer,
            topic_ready: AtomicBool::new(false),
        })
    }

    /// Initialise `transactional_id` in [`OffsetStore::lock`] to fence older instances.
    pub fn with_fencing(mut self, transactional_id: Option<String>) -> Self {
        self.fence = transactional_id;
        self
    }

    async fn ensure_topic(&self) -> Result<()> {
        if self.topic_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let connection = self.connection.clone();
        let topic = Arc::clone(&self.topic);
        let timeout = self.timeout;
        let rf = self.replication_factor;
        let producer_client = self.producer.clone();
        blocking(move || {
            let rt = current_thread_runtime()?;
            let mut topics = Topics::new(connection, None, timeout);
            topics.ensure_compacted(producer_client.client(), &rt, &topic, rf)?;
            Ok(())
        })
        .await?;
        self.topic_ready.store(true, Ordering::Release);
        Ok(())
    }

    async fn write(&self, value: Option<Vec<u8>>) -> Result<()> {
        self.ensure_topic().await?;
        let mut record: FutureRecord<'_, str, [u8]> =
            FutureRecord::to(&self.topic).key(self.pipeline.as_str());
        if let Some(v) = &value {
            record = record.payload(v.as_slice());
        }
        self.producer
            .send(record, self.timeout)
            .await
            .map(|_| ())
            .map_err(|(e, _)| {
                kafka_error(
                    format!("writing the position to Kafka topic {}", self.topic),
                    e,
                )
            })
    }
}

impl KafkaOffsetStore {
    /// The newest record of this pipeline, read with `isolation`.
    async fn read(&self, isolation: Isolation) -> Result<Option<OffsetRecord>> {
        let connection = self.connection.clone();
        let topic = Arc::clone(&self.topic);
        let key = self.pipeline.clone();
        let timeout = self.timeout;
        let found =
            blocking(move || read_latest(&connection, &topic, key.as_bytes(), isolation, timeout))
                .await?;
        let Some(Some(value)) = found else {
            return Ok(None);
        };
        let record: OffsetRecord = serde_json::from_slice(&value).map_err(|e| {
            Error::new(
                ErrorKind::Data,
                format!(
                    "the record of pipeline {:?} in Kafka topic {} is not a position",
                    self.pipeline, self.topic
                ),
            )
            .with_source(e)
            .with_hint("inspect it, or run `cdc offsets reset` to start over")
        })?;
        Ok(Some(record))
    }
}

#[async_trait]
impl OffsetStore for KafkaOffsetStore {
    async fn lock(&mut self) -> Result<()> {
        let Some(id) = self.fence.clone() else {
            return Ok(());
        };
        let connection = self.connection.clone();
        let timeout = self.timeout;
        blocking(move || {
            use rdkafka::config::FromClientConfigAndContext as _;
            let mut cc = connection.client_config();
            cc.set("transactional.id", &id);
            connection.apply_properties(&mut cc);
            let p: BaseProducer<LogContext> =
                BaseProducer::from_config_and_context(&cc, LogContext::default())
                    .map_err(|e| kafka_error("creating the fencing producer", e))?;
            p.init_transactions(timeout).map_err(|e| {
                kafka_error(
                    format!("initialising transactional id {id} to fence older instances"),
                    e,
                )
            })
        })
        .await
    }

    async fn load(&self) -> Result<Option<Position>> {
        // Exactly-once pipelines (the ones that fence) write their positions in transactions.
        let isolation = if self.fence.is_some() {
            Isolation::Committed
        } else {
            Isolation::Uncommitted
        };
        let mut record = self.read(isolation).await?;
        // A pipeline that ran `exactly_once` before may have left a record of a transaction that
        // never committed: only a committed read can tell, so read the key again that way.
        if isolation == Isolation::Uncommitted && record.as_ref().is_some_and(|r| r.transactional) {
            record = self.read(Isolation::Committed).await?;
        }
        Ok(record.map(|r| r.position))
    }

    async fn store(&self, position: &Position) -> Result<()> {
        self.write(Some(encode_position(&self.pipeline, position)))
            .await
    }

    async fn clear(&self) -> Result<()> {
        self.write(None).await
    }

    fn describe(&self) -> String {
        format!(
            "kafka topic {} at {} (key {})",
            self.topic, self.connection.brokers, self.pipeline
        )
    }
}

/// Run blocking librdkafka work off the async runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal("a Kafka offsets task panicked").with_source(e))?
}

/// A runtime for driving librdkafka's admin futures from a blocking thread.
pub(crate) fn current_thread_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| Error::internal("building a runtime for Kafka admin calls").with_source(e))
}

/// The newest record for `key` in `topic` (`Some(None)`: a tombstone), read with `isolation` up
/// to the end each partition had when the read began.
pub fn read_latest(
    connection: &Connection,
    topic: &str,
    key: &[u8],
    isolation: Isolation,
    timeout: Duration,
) -> Result<Option<Option<Vec<u8>>>> {
    use rdkafka::config::FromClientConfigAndContext as _;
    let mut cc = connection.client_config();
    cc.set("group.id", "cdc-offsets-reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", isolation.level())
        .set("auto.offset.reset", "earliest");
    connection.apply_properties(&mut cc);
    let consumer: BaseConsumer<LogContext> =
        BaseConsumer::from_config_and_context(&cc, LogContext::default())
            .map_err(|e| kafka_error("creating the offsets reader", e))?;
    let what = || format!("reading positions from Kafka topic {topic}");
    let Some(partitions) = crate::producer::partition_count(consumer.client(), topic, timeout)?
    else {
        return Ok(None);
    };
    // (timestamp, value) of the newest record for the key over all partitions.
    let mut best: Option<(i64, Option<Vec<u8>>)> = None;
    for partition in 0..partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, timeout)
            .map_err(|e| kafka_error(what(), e))?;
        let mut end = high;
        let mut window = FIRST_WINDOW_RECORDS;
        while end > low {
            let start = (end - window).max(low);
            // Reading uncommitted, the partition's end (EOF) is the high watermark. Reading
            // committed, EOF comes at the last stable offset, which another instance's open
            // transaction holds back: read on until the position passes `high`.
            let stop_at_eof = end == high && isolation == Isolation::Uncommitted;
            let found = scan(
                &consumer,
                topic,
                partition,
                start,
                end,
                stop_at_eof,
                key,
                timeout,
            )
            .map_err(|e| e.context(what()))?;
            if let Some(f) = found {
                if best.as_ref().is_none_or(|(ts, _)| f.0 >= *ts) {
                    best = Some(f);
                }
                break;
            }
            end = start;
            window = window.saturating_mul(4);
        }
    }
    Ok(best.map(|(_, v)| v))
}

/// The last record for `key` in `[start, end)` of one partition, reading until the consumer's
/// position reaches `end` or, with `to_end`, the partition's end (EOF).
#[allow(clippy::too_many_arguments)]
fn scan(
    consumer: &BaseConsumer<LogContext>,
    topic: &str,
    partition: i32,
    start: i64,
    end: i64,
    to_end: bool,
    key: &[u8],
    timeout: Duration,
) -> Result<Option<(i64, Option<Vec<u8>>)>> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(start))
        .map_err(|e| kafka_error("assigning the offsets partition", e))?;
    consumer
        .assign(&tpl)
        .map_err(|e| kafka_error("assigning the offsets partition", e))?;
    let deadline = Instant::now() + timeout;
    let mut found = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "partition {partition} did not reach its end within {} ms",
                    timeout.as_millis()
                ),
            )
            .with_hint(
                "a transaction may be open on the offsets topic (a crashed exactly_once \
                 instance); the broker aborts it after `sink.transaction_timeout_ms`",
            ));
        }
        match consumer.poll(left.min(Duration::from_millis(200))) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) if p == partition && to_end => break,
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => return Err(kafka_error("reading", e)),
            Some(Ok(m)) if m.partition() != partition => {}
            Some(Ok(m)) => {
                if m.offset() >= end {
                    break;
                }
                if m.key() == Some(key) {
                    let ts = m.timestamp().to_millis().unwrap_or(0);
                    found = Some((ts, m.payload().map(<[u8]>::to_vec)));
                }
                if m.offset() >= end - 1 {
                    break;
                }
            }
        }
        // Control records and aborted records are skipped without a message: the position
        // still moves past them.
        if position(consumer, topic, partition).is_some_and(|p| p >= end) {
            break;
        }
    }
    Ok(found)
}

/// The consumer's next offset in `partition`, if known.
fn position(consumer: &BaseConsumer<LogContext>, topic: &str, partition: i32) -> Option<i64> {
    let tpl = consumer.position().ok()?;
    match tpl.find_partition(topic, partition)?.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}
