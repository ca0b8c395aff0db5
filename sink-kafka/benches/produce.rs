//! Throughput of the Kafka sink next to a plain librdkafka producer, in the same run, against the
//! broker of `scripts/services.sh` (`CDC_TEST_KAFKA_BROKERS`). Not a timed test: it prints.
//!
//! ```text
//! eval "$(scripts/services.sh up)"
//! CARGO_TARGET_DIR=/work/target-kafka cargo bench -p sink-kafka --bench produce
//! ```
//!
//! - sink: 200,000 generator events (made before the clock starts) written through the `Sink`
//!   trait in batches of 1,000 (encoding, routing, producing, waiting for every ack), at-least-once.
//! - plain: an idempotent `ThreadedProducer` with `linger.ms=5` sending 200,000 keyed messages of
//!   the same average size, then flushing.
//!
//! Then the same into rdkafka's in-process `MockCluster`, a much faster broker, to show the sink's
//! own cost. Both write to their own new topic with 3 partitions, without headers (tansu 0.6.0 has no index
//! on its header table, so header rows make its later fetches slow for everybody). Each is run
//! twice, alternating. `BENCH_EVENTS` changes the count.

use std::time::{Duration, Instant};

use connector_core::generator::{Generator, GeneratorConfig};
use connector_core::{config, Batch, BatchAck, ConfigSection, Context, Encoder, Format};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

const PARTITIONS: i32 = 3;
const BATCH: usize = 1_000;

fn brokers() -> String {
    std::env::var("CDC_TEST_KAFKA_BROKERS").unwrap_or_else(|_| {
        panic!("CDC_TEST_KAFKA_BROKERS is not set: run `eval \"$(scripts/services.sh up)\"` first")
    })
}

/// Where the bench writes: the services broker, or rdkafka's in-process mock cluster (a broker
/// much faster than tansu, to show the sink's own cost).
enum Target {
    Broker(String),
    Mock(rdkafka::mocking::MockCluster<'static, DefaultProducerContext>),
}

impl Target {
    fn brokers(&self) -> String {
        match self {
            Target::Broker(b) => b.clone(),
            Target::Mock(m) => m.bootstrap_servers(),
        }
    }

    async fn create_topic(&self, topic: &str) {
        match self {
            Target::Broker(b) => create_topic(b, topic).await,
            Target::Mock(m) => m.create_topic(topic, PARTITIONS, 1).unwrap(),
        }
    }
}

async fn create_topic(brokers: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
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
        .unwrap();
    for t in r {
        t.unwrap();
    }
}

fn generator(name: &str, limit: u64, payload_bytes: usize) -> Generator {
    let section = ConfigSection::from_yaml(
        "source",
        &format!(
            "type: generator\nrate_per_sec: 0\nlimit: {limit}\nbatch_size: {BATCH}\n\
             tables: [public.bench]\npayload_bytes: {payload_bytes}\n"
        ),
    )
    .unwrap();
    let config: GeneratorConfig = section.extract().unwrap();
    Generator::new(config, &Context::new(name)).unwrap()
}

async fn run_sink(
    target: &Target,
    name: &str,
    events: u64,
    format: Format,
    payload_bytes: usize,
) -> (f64, f64) {
    let brokers = target.brokers();
    let topic = format!("{name}.public.bench");
    target.create_topic(&topic).await;
    let g = generator(name, events, payload_bytes);
    let mut batches = Vec::new();
    let mut n = 0;
    while n < events {
        let evs: Vec<_> = (n..(n + BATCH as u64).min(events))
            .map(|i| g.event(i))
            .collect();
        n += evs.len() as u64;
        let cp = evs.last().map(|e| e.position.clone());
        batches.push(Batch::new(evs, cp));
    }
    // Average message size, for the plain producer.
    let enc = Encoder::new(name, format);
    let mut bytes = 0usize;
    for ev in batches.iter().flat_map(|b| &b.events).take(1_000) {
        let mut k = Vec::new();
        let mut v = Vec::new();
        enc.write_key(ev, &mut k);
        enc.write_value(ev, 0, &mut v);
        bytes += k.len() + v.len();
    }
    let avg = bytes as f64 / 1_000.0;
    let yaml = format!(
        "name: {name}\nsource: {{ type: generator }}\nsink: {{ type: kafka, brokers: '{brokers}', \
         headers: false, format: {} }}\n",
        match format {
            Format::Debezium => "debezium",
            Format::Flat => "flat",
        }
    );
    let config = config::load_str(&yaml).unwrap();
    let mut sink = sink_kafka::factory(&config.sink, &Context::new(name)).unwrap();
    sink.start().await.unwrap();
    let start = Instant::now();
    let mut acks = Vec::with_capacity(batches.len());
    for b in batches {
        let (ack, rx) = BatchAck::new();
        sink.write(b, ack).await.unwrap();
        acks.push(rx);
    }
    sink.flush().await.unwrap();
    for rx in acks {
        rx.await.unwrap().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    sink.stop().await.unwrap();
    (events as f64 / secs, avg)
}

async fn run_plain(target: &Target, topic: &str, events: u64, size: usize) -> f64 {
    let brokers = target.brokers();
    target.create_topic(topic).await;
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let key_len = 12.min(size);
    let payload = vec![b'x'; size - key_len];
    let start = Instant::now();
    for i in 0..events {
        let key = format!("{{\"id\":{:>6}}}", i % 1_000_000);
        let mut record = BaseRecord::to(topic)
            .key(&key[..key_len.min(key.len())])
            .payload(&payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120)).unwrap();
    events as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let brokers = brokers();
    let events: u64 = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let run = std::process::id();
    let broker = Target::Broker(brokers);
    let mock = Target::Mock(rdkafka::mocking::MockCluster::new(1).unwrap());
    // The Debezium envelope of a generator row (~550 bytes), and the flat form (~230 bytes), into
    // the services broker; then the envelope into the mock cluster.
    for (target, where_, format, payload_bytes) in [
        (&broker, "broker", Format::Debezium, 100),
        (&broker, "broker", Format::Flat, 40),
        (&mock, "mock cluster", Format::Debezium, 100),
    ] {
        let mut rows = Vec::new();
        let mut size = 0.0;
        for round in 0..2 {
            let (sink_rate, avg) = run_sink(
                target,
                &format!("bench_sink_{run}_{format:?}_{round}"),
                events,
                format,
                payload_bytes,
            )
            .await;
            size = avg;
            let plain_rate = run_plain(
                target,
                &format!("bench_plain_{run}_{format:?}_{round}"),
                events,
                avg.round() as usize,
            )
            .await;
            println!(
                "{where_}, {format:?}, round {round}: sink {sink_rate:>7.0} events/s, plain producer \
                 {plain_rate:>7.0} msgs/s, ratio {:.2}",
                sink_rate / plain_rate
            );
            rows.push((sink_rate, plain_rate));
        }
        let sink: f64 = rows.iter().map(|r| r.0).sum::<f64>() / rows.len() as f64;
        let plain: f64 = rows.iter().map(|r| r.1).sum::<f64>() / rows.len() as f64;
        println!(
            "{where_}, {format:?}: {events} events of {size:.0} bytes (key + value): sink {sink:.0}/s, \
             plain producer {plain:.0}/s, ratio {:.2}",
            sink / plain
        );
    }
}
