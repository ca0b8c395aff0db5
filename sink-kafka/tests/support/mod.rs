//! Test support: the broker address, unique names, topic admin, a consumer that reads a whole
//! topic, tables and events, and driving a sink through the `Sink` trait.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use connector_core::{
    config, Batch, BatchAck, ChangeEvent, Column, Context, Op, Position, Result, Sink, TableId,
    TableSchema, TxnInfo, Value,
};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

/// The broker of the services script; fails loudly when unset.
pub fn brokers() -> String {
    std::env::var("CDC_TEST_KAFKA_BROKERS").unwrap_or_else(|_| {
        panic!(
            "CDC_TEST_KAFKA_BROKERS is not set: start the broker with \
             `eval \"$(scripts/services.sh up)\"` (it exports CDC_TEST_KAFKA_BROKERS=127.0.0.1:9092)"
        )
    })
}

/// A name unique to this test process and call: `prefix_<pid>_<n>_<millis>`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() % 1_000_000_000)
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{ms}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn admin(brokers: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client")
}

/// Create `topic` with `partitions` partitions.
pub async fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    let r = admin(brokers)
        .create_topics(
            &[NewTopic::new(
                topic,
                partitions,
                TopicReplication::Fixed(-1),
            )],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create topics");
    for t in r {
        t.unwrap_or_else(|(name, e)| panic!("creating topic {name}: {e}"));
    }
}

/// Delete topics, only when `CDC_TEST_KAFKA_DELETE_TOPICS=1`: deleting topics on tansu 0.6.0
/// while other clients run makes it answer metadata requests with a topic whose name is null,
/// and librdkafka 2.12 crashes on that (SIGSEGV in `rd_kafka_metadata_update_op`). Test topics
/// have unique names, so leaving them is harmless.
pub async fn delete_topics(brokers: &str, topics: &[&str]) {
    if std::env::var("CDC_TEST_KAFKA_DELETE_TOPICS").as_deref() != Ok("1") {
        return;
    }
    let _ = admin(brokers)
        .delete_topics(topics, &AdminOptions::new())
        .await;
}

/// Topics created by a test, deleted by `cleanup().await` (see [`delete_topics`]).
pub struct TopicGuard {
    pub brokers: String,
    pub topics: Vec<String>,
}

impl TopicGuard {
    pub fn new(brokers: &str) -> Self {
        TopicGuard {
            brokers: brokers.to_string(),
            topics: Vec::new(),
        }
    }

    pub async fn create(&mut self, topic: &str, partitions: i32) {
        create_topic(&self.brokers, topic, partitions).await;
        self.topics.push(topic.to_string());
    }

    pub fn track(&mut self, topic: &str) {
        self.topics.push(topic.to_string());
    }

    pub async fn cleanup(self) {
        let names: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        delete_topics(&self.brokers, &names).await;
    }
}

/// One consumed record.
#[derive(Clone, Debug)]
pub struct Rec {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, String)>,
}

impl Rec {
    pub fn key_str(&self) -> Option<&str> {
        self.key.as_deref().map(|k| std::str::from_utf8(k).unwrap())
    }

    pub fn value_json(&self) -> Option<serde_json::Value> {
        self.value
            .as_deref()
            .map(|v| serde_json::from_slice(v).expect("value is JSON"))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Every record of `topic` (all partitions, from the beginning to the end), in partition then
/// offset order, read with `isolation` (`read_committed` or `read_uncommitted`).
pub fn consume_all_with(brokers: &str, topic: &str, isolation: &str) -> Vec<Rec> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "cdc-test-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", isolation)
        // tansu answers large fetches slowly: keep each fetch small.
        .set("fetch.max.bytes", "4194304")
        .set("max.partition.fetch.bytes", "1048576")
        .create()
        .expect("consumer");
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let partitions = md.topics()[0].partitions().len() as i32;
    assert!(partitions > 0, "topic {topic} has no partitions");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut at_end = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    while at_end.len() < partitions as usize {
        assert!(
            Instant::now() < deadline,
            "reading {topic} did not reach the end"
        );
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => panic!("consuming {topic}: {e}"),
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (
                                    h.key.to_string(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Rec {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                    headers,
                });
            }
        }
    }
    out.sort_by_key(|r| (r.partition, r.offset));
    out
}

/// Every record of `topic`, `read_committed`.
pub fn consume_all(brokers: &str, topic: &str) -> Vec<Rec> {
    consume_all_with(brokers, topic, "read_committed")
}

/// `public.items (id int4 key, name text, qty int4)`.
pub fn items_table() -> Arc<TableSchema> {
    Arc::new(TableSchema::new(
        TableId::new("shop", "public", "items"),
        vec![
            Column::new("id", "int4").key(),
            Column::new("name", "text"),
            Column::new("qty", "int4"),
        ],
    ))
}

/// `public.audit (note text)`: no key.
pub fn keyless_table() -> Arc<TableSchema> {
    Arc::new(TableSchema::new(
        TableId::new("shop", "public", "audit"),
        vec![Column::new("note", "text")],
    ))
}

pub fn item(id: i64, name: &str, qty: i64) -> Vec<Value> {
    vec![Value::Int(id), Value::Text(name.into()), Value::Int(qty)]
}

/// A row event at position `pos` in transaction `txid`.
pub fn event(
    op: Op,
    table: &Arc<TableSchema>,
    before: Option<Vec<Value>>,
    after: Option<Vec<Value>>,
    pos: u64,
) -> ChangeEvent {
    let mut ev = ChangeEvent::row(
        op,
        Arc::clone(table),
        before,
        after,
        Position::new(pos.to_string()),
    );
    ev.commit_ts_us = 1_700_000_000_000_000 + pos as i64;
    ev.txn = Some(TxnInfo::new(
        format!("tx{}", pos / 10).into(),
        pos % 10 + 1,
        pos % 10 + 1,
    ));
    ev
}

/// A batch whose checkpoint is its last event's position.
pub fn batch(events: Vec<ChangeEvent>) -> Batch {
    let cp = events.last().map(|e| e.position.clone());
    Batch::new(events, cp)
}

/// Build a sink from a sink YAML section (`type: kafka` and the rest) for pipeline `name`, with
/// optional offsets section YAML.
pub fn build_sink(
    name: &str,
    sink_yaml: &str,
    offsets_yaml: Option<&str>,
) -> Result<Box<dyn Sink>> {
    let mut yaml = format!(
        "name: {name}\nsource: {{ type: generator }}\nsink:\n{}\n",
        indent(sink_yaml)
    );
    if let Some(o) = offsets_yaml {
        yaml.push_str(&format!("offsets:\n{}\n", indent(o)));
    }
    let config = config::load_str(&yaml)?;
    sink_kafka::factory(&config.sink, &Context::new(name))
}

pub fn indent(yaml: &str) -> String {
    yaml.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Write `batches`, flush, and return each batch's ack result.
pub async fn write_all(sink: &mut dyn Sink, batches: Vec<Batch>) -> Vec<Result<()>> {
    let mut acks = Vec::new();
    for b in batches {
        let (ack, rx) = BatchAck::new();
        sink.write(b, ack).await.expect("write accepted");
        acks.push(rx);
    }
    let _ = sink.flush().await;
    let mut out = Vec::new();
    for rx in acks {
        out.push(rx.await.expect("ack completed"));
    }
    out
}

/// Start `sink`, write `batches`, flush, stop; every ack must be durable.
pub async fn deliver(sink: &mut dyn Sink, batches: Vec<Batch>) {
    sink.start().await.expect("sink starts");
    for (i, r) in write_all(sink, batches).await.into_iter().enumerate() {
        if let Err(e) = r {
            panic!("batch {i} failed: {}", e.report());
        }
    }
    sink.stop().await.unwrap();
}
