//! The broker side: topics, the plain-producer ceiling, a consumer that timestamps arrivals, and
//! the broker's own produce-to-acknowledgement latency.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{Message, Offset, TopicPartitionList};

/// Partitions of every topic the suite writes (cdc's `create_topics` and the plain producer).
pub const PARTITIONS: i32 = 3;

/// Microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

pub async fn create_topic(brokers: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let r = admin
        .create_topics(
            &[NewTopic::new(
                topic,
                PARTITIONS,
                TopicReplication::Fixed(-1),
            )],
            &AdminOptions::new(),
        )
        .await
        .expect("create topic");
    for t in r {
        if let Err((name, e)) = t {
            if e != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                panic!("creating topic {name}: {e}");
            }
        }
    }
}

/// Messages for the ceiling: `count` messages with keys of `key_len` and values of `value_len`
/// bytes (`value_len` 0: a tombstone, null value).
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub count: u64,
    pub key_len: usize,
    pub value_len: usize,
}

/// A plain idempotent librdkafka producer (`acks=all`, `linger.ms=5`) sending `shapes` into a new
/// topic of [`PARTITIONS`] partitions, then flushing: seconds from the first send to the last
/// acknowledgement, and the CPU seconds this process used meanwhile (librdkafka's threads).
pub async fn plain_producer(brokers: &str, topic: &str, shapes: &[Shape]) -> (f64, f64) {
    create_topic(brokers, topic).await;
    let brokers = brokers.to_string();
    let topic = topic.to_string();
    let shapes = shapes.to_vec();
    tokio::task::spawn_blocking(move || {
        let producer: ThreadedProducer<rdkafka::producer::DefaultProducerContext> =
            ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .set("enable.idempotence", "true")
                .set("acks", "all")
                .set("linger.ms", "5")
                .create()
                .expect("producer");
        // Let it fetch metadata before the clock starts, as cdc's sink does at start.
        let _ = producer
            .client()
            .fetch_metadata(Some(&topic), Duration::from_secs(10));
        let max_value = shapes.iter().map(|s| s.value_len).max().unwrap_or(0);
        let value = vec![b'x'; max_value];
        let cpu0 = self_cpu();
        let start = Instant::now();
        let mut i = 0u64;
        for s in &shapes {
            for _ in 0..s.count {
                i += 1;
                let mut key = format!("{{\"id\":{i}}}");
                key.truncate(s.key_len.max(8));
                while key.len() < s.key_len {
                    key.insert(6, '0');
                }
                let mut record = BaseRecord::to(&topic).key(key.as_bytes());
                if s.value_len > 0 {
                    record = record.payload(&value[..s.value_len]);
                }
                loop {
                    match producer.send(record) {
                        Ok(()) => break,
                        Err((_, back)) => {
                            record = back;
                            std::thread::sleep(Duration::from_micros(500));
                        }
                    }
                }
            }
        }
        producer
            .flush(Duration::from_secs(300))
            .expect("flush the plain producer");
        (start.elapsed().as_secs_f64(), self_cpu() - cpu0)
    })
    .await
    .unwrap()
}

/// What a consumer saw: per record, arrival time minus a timestamp carried in the record.
#[derive(Default, Debug)]
pub struct Arrivals {
    /// Arrival minus the row's own `t_us` column (written at insert time), µs.
    pub from_row: Vec<i64>,
    /// Arrival minus the envelope's `source.ts_us` (the commit time), µs.
    pub from_commit: Vec<i64>,
    /// The record's timestamp (set by librdkafka when cdc handed it to the producer, in
    /// milliseconds) minus the row's `t_us`, µs.
    pub to_produce: Vec<i64>,
}

/// A consumer reading `topic` from the beginning on a thread of its own, until stopped.
pub struct Tail {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Arrivals>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Tail {
    pub fn start(brokers: &str, topic: &str) -> Tail {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", format!("cdc-bench-{}", std::process::id()))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .set("fetch.min.bytes", "1")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&tpl).expect("assign");
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Arrivals::default()));
        let handle = {
            let stop = Arc::clone(&stop);
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) else {
                        continue;
                    };
                    let now = now_us();
                    let Some(payload) = m.payload() else {
                        continue;
                    };
                    let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
                        continue;
                    };
                    let mut s = seen.lock().unwrap();
                    if let Some(t) = v["after"]["t_us"].as_i64() {
                        s.from_row.push(now - t);
                        if let Some(ms) = m.timestamp().to_millis() {
                            s.to_produce.push(ms * 1000 - t);
                        }
                    }
                    if let Some(t) = v["source"]["ts_us"].as_i64() {
                        s.from_commit.push(now - t);
                    }
                }
            })
        };
        Tail {
            stop,
            seen,
            handle: Some(handle),
        }
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().from_row.len()
    }

    pub fn finish(mut self) -> Arrivals {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

struct AckTimes {
    lat: Mutex<Vec<i64>>,
}

impl ClientContext for AckTimes {}

impl ProducerContext for AckTimes {
    type DeliveryOpaque = Box<Instant>;
    fn delivery(&self, r: &DeliveryResult<'_>, sent: Box<Instant>) {
        if r.is_ok() {
            self.lat
                .lock()
                .unwrap()
                .push(sent.elapsed().as_micros() as i64);
        }
    }
}

/// The broker's own latency at a fixed rate: a plain idempotent producer (`linger.ms=5`) sends
/// `rate` messages of `size` bytes a second for `secs`; per message, send to acknowledgement, µs.
pub async fn ack_latency(
    brokers: &str,
    topic: &str,
    rate: u64,
    secs: f64,
    size: usize,
) -> Vec<i64> {
    create_topic(brokers, topic).await;
    let brokers = brokers.to_string();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let producer: ThreadedProducer<AckTimes> = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .create_with_context(AckTimes {
                lat: Mutex::new(Vec::new()),
            })
            .expect("producer");
        let _ = producer
            .client()
            .fetch_metadata(Some(&topic), Duration::from_secs(10));
        let value = vec![b'x'; size];
        // Warm up (the first sends to a new topic wait for its metadata), then discard.
        for i in 0..100u64 {
            let key = format!("{{\"id\":{i}}}");
            let record = BaseRecord::with_opaque_to(&topic, Box::new(Instant::now()))
                .key(key.as_bytes())
                .payload(&value);
            let _ = producer.send(record);
        }
        producer.flush(Duration::from_secs(60)).expect("flush");
        producer.context().lat.lock().unwrap().clear();
        let total = (rate as f64 * secs) as u64;
        let start = Instant::now();
        for i in 0..total {
            let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let key = format!("{{\"id\":{i}}}");
            let record = BaseRecord::with_opaque_to(&topic, Box::new(Instant::now()))
                .key(key.as_bytes())
                .payload(&value);
            if producer.send(record).is_err() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        producer.flush(Duration::from_secs(60)).expect("flush");
        let lat = std::mem::take(&mut *producer.context().lat.lock().unwrap());
        lat
    })
    .await
    .unwrap()
}

/// The `q` quantile (nearest rank) of `v`, sorted in place.
pub fn quantile(v: &mut [i64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1] as f64
}

/// User + system CPU seconds of this process so far.
pub fn self_cpu() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}
