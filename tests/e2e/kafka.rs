//! PostgreSQL to Kafka through the `cdc` binary, offsets kept in Kafka, with `kill -9` in between.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::common::{run_log, signal, spawn_run, wait_timeout, wait_until, Workdir};
use crate::postgres::Db;

/// `CDC_TEST_KAFKA_BROKERS`; the test fails (never skips) without it.
pub fn brokers() -> String {
    std::env::var("CDC_TEST_KAFKA_BROKERS")
        .expect("CDC_TEST_KAFKA_BROKERS is not set: run `eval \"$(scripts/services.sh up)\"` first")
}

/// One record: partition, key and value (JSON).
pub struct Record {
    pub partition: i32,
    pub key: Option<serde_json::Value>,
    pub value: Option<serde_json::Value>,
}

/// Every record of `topic` from the beginning to the current end, in partition and offset order.
pub fn read_topic(brokers: &str, topic: &str) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "cdc-e2e-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    let Ok(md) = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)) else {
        return Vec::new();
    };
    let partitions = md.topics().first().map_or(0, |t| t.partitions().len()) as i32;
    if partitions == 0 {
        return Vec::new();
    }
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut at_end = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while at_end.len() < partitions as usize && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => panic!("consuming {topic}: {e}"),
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                let json = |b: Option<&[u8]>| b.map(|b| serde_json::from_slice(b).expect("JSON"));
                out.push(Record {
                    partition: m.partition(),
                    key: json(m.key()),
                    value: json(m.payload()),
                });
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_to_kafka_with_kafka_offsets_survives_kill_9_in_key_order() {
    const KEYS: i64 = 60;
    let brokers = brokers();
    // GIVEN a table with rows, and a pipeline into a 3-partition topic with its offsets in Kafka
    let db = Db::new("pgkafka").await;
    db.client
        .batch_execute(&format!(
            "CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);
             INSERT INTO accounts SELECT g, 0 FROM generate_series(1, {KEYS}) g;"
        ))
        .await
        .unwrap();
    let name = db.name.clone();
    let topic = format!("{name}.public.accounts");
    let w = Workdir::new();
    let config = w.write(
        "pg.yaml",
        &format!(
            "name: {name}\n\
             source: {{ type: postgres, url: '{}', tables: [public.accounts], slot: {name} }}\n\
             sink: {{ type: kafka, brokers: '{brokers}', headers: false, create_topics: {{ partitions: 3 }} }}\n\
             offsets: {{ type: kafka, topic: {name}_offsets }}\n\
             pipeline: {{ offset_flush_interval_ms: 100, retry: {{ initial_backoff_ms: 100, max_backoff_ms: 1000 }} }}\n",
            db.url()
        ),
    );
    let mut child = spawn_run(&config, Stdio::null());
    assert!(
        wait_until(Duration::from_secs(60), || read_topic(&brokers, &topic)
            .len()
            >= KEYS as usize),
        "snapshot did not reach the topic\n{}",
        run_log(&config)
    );

    // WHEN balances are incremented while cdc is killed with SIGKILL twice
    let writer_client = crate::postgres::connect(&db.url()).await;
    let writer = tokio::spawn(async move {
        for i in 0..400i64 {
            let id = (i * 7) % KEYS + 1;
            writer_client
                .execute(
                    "UPDATE accounts SET balance = balance + 1 WHERE id = $1",
                    &[&(id as i32)],
                )
                .await
                .unwrap();
            if i % 50 == 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        signal(&child, "KILL");
        child.wait().unwrap();
        child = spawn_run(&config, Stdio::null());
    }
    writer.await.unwrap();

    // THEN every version of every key is in the topic, each key on one partition, the last last
    let rows = db
        .client
        .query("SELECT id, balance FROM accounts", &[])
        .await
        .unwrap();
    let expected: BTreeMap<i64, i64> = rows
        .iter()
        .map(|r| (i64::from(r.get::<_, i32>(0)), i64::from(r.get::<_, i32>(1))))
        .collect();
    let mut per_key: BTreeMap<i64, (std::collections::BTreeSet<i32>, Vec<i64>)> = BTreeMap::new();
    let complete = wait_until(Duration::from_secs(90), || {
        per_key.clear();
        for r in read_topic(&brokers, &topic) {
            let (Some(key), Some(value)) = (r.key, r.value) else {
                continue;
            };
            let id = key["id"].as_i64().expect("key id");
            let balance = value["after"]["balance"].as_i64().expect("after.balance");
            let e = per_key.entry(id).or_default();
            e.0.insert(r.partition);
            e.1.push(balance);
        }
        expected
            .iter()
            .all(|(id, b)| per_key.get(id).and_then(|(_, v)| v.last()) == Some(b))
    });
    assert!(complete, "final balances not reached\n{}", run_log(&config));
    for (id, final_balance) in &expected {
        let (partitions, versions) = &per_key[id];
        assert_eq!(
            partitions.len(),
            1,
            "key {id} on several partitions: {partitions:?}"
        );
        for b in 0..=*final_balance {
            assert!(
                versions.contains(&b),
                "key {id}: balance {b} lost ({versions:?})"
            );
        }
        // Replays after a crash repeat a suffix in order: no version ever follows a newer one
        // except where a replay starts again from an older durable position.
        let descents = versions.windows(2).filter(|w| w[1] < w[0]).count();
        assert!(
            descents <= 2,
            "key {id}: out of order beyond the 2 replays: {versions:?}"
        );
    }
    let log = run_log(&config);
    let resumed = log.matches("resume=\"").count() - log.matches("resume=\"(none)").count();
    assert_eq!(
        resumed, 2,
        "both restarts resumed from the offsets in Kafka\n{log}"
    );

    signal(&child, "TERM");
    let status = wait_timeout(&mut child, Duration::from_secs(30)).expect("exits");
    assert!(status.success(), "{}", run_log(&config));
    db.drop(&name).await;
}
