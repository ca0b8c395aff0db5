//! The Kafka offset store against the real broker.

use std::time::Duration;

use connector_core::{config, Context, OffsetStore, Position};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::support::*;

fn store(brokers: &str, pipeline: &str, topic: &str) -> Box<dyn OffsetStore> {
    let yaml = format!(
        "name: {pipeline}\nsource: {{ type: generator }}\nsink: {{ type: kafka, brokers: '{brokers}' }}\n\
         offsets: {{ type: kafka, topic: {topic} }}\n"
    );
    let config = config::load_str(&yaml).unwrap();
    sink_kafka::offset_store_factory(&config.offsets, &Context::new(pipeline)).unwrap()
}

#[tokio::test]
async fn store_load_and_clear_across_restarts() {
    // GIVEN a fresh offsets topic (created by the store)
    let brokers = brokers();
    let topic = unique("offsets");
    let pipeline = unique("p");
    let mut s = store(&brokers, &pipeline, &topic);
    s.lock().await.unwrap();
    assert_eq!(s.load().await.unwrap(), None);
    // WHEN positions are stored
    s.store(&Position::new("0/1A:3")).await.unwrap();
    s.store(&Position::new("0/1B:0")).await.unwrap();
    drop(s);
    // THEN a new instance (a restarted sidecar) loads the last one
    let s = store(&brokers, &pipeline, &topic);
    assert_eq!(s.load().await.unwrap(), Some(Position::new("0/1B:0")));
    assert!(s.describe().contains(&topic), "{}", s.describe());
    // WHEN cleared, THEN nothing is loaded, and a later store wins again
    s.clear().await.unwrap();
    assert_eq!(
        store(&brokers, &pipeline, &topic).load().await.unwrap(),
        None
    );
    s.store(&Position::new("7")).await.unwrap();
    assert_eq!(
        store(&brokers, &pipeline, &topic).load().await.unwrap(),
        Some(Position::new("7"))
    );
    delete_topics(&brokers, &[&topic]).await;
}

#[tokio::test]
async fn two_pipelines_share_a_topic_without_clashing() {
    let brokers = brokers();
    let topic = unique("offsets");
    let (a, b) = (unique("a"), unique("b"));
    let sa = store(&brokers, &a, &topic);
    let sb = store(&brokers, &b, &topic);
    sa.store(&Position::new("a-1")).await.unwrap();
    sb.store(&Position::new("b-1")).await.unwrap();
    sa.store(&Position::new("a-2")).await.unwrap();
    sb.clear().await.unwrap();
    assert_eq!(
        store(&brokers, &a, &topic).load().await.unwrap(),
        Some(Position::new("a-2"))
    );
    assert_eq!(store(&brokers, &b, &topic).load().await.unwrap(), None);
    delete_topics(&brokers, &[&topic]).await;
}

#[tokio::test]
async fn load_finds_an_old_record_behind_many_newer_ones() {
    // GIVEN our record followed by 5,000 records of other pipelines (more than the first windows;
    // distinct keys, so that tansu's compaction has nothing to do)
    let brokers = brokers();
    let topic = unique("offsets");
    let pipeline = unique("old");
    let s = store(&brokers, &pipeline, &topic);
    s.store(&Position::new("ours")).await.unwrap();
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for i in 0..5_000 {
        let key = format!("other-{i}");
        p.send(
            BaseRecord::to(&topic)
                .key(&key)
                .payload("{\"pipeline\":\"x\",\"position\":\"1\",\"updated_at_ms\":0}"),
        )
        .unwrap();
        if i % 1000 == 0 {
            p.poll(Duration::ZERO);
        }
    }
    p.flush(Duration::from_secs(30)).unwrap();
    // THEN load still finds ours
    assert_eq!(
        store(&brokers, &pipeline, &topic).load().await.unwrap(),
        Some(Position::new("ours"))
    );
    delete_topics(&brokers, &[&topic]).await;
}

#[tokio::test]
async fn a_missing_topic_loads_nothing_and_offsets_need_brokers() {
    let brokers = brokers();
    let topic = unique("never");
    assert_eq!(store(&brokers, "p", &topic).load().await.unwrap(), None);
    let config = config::load_str(
        "name: p\nsource: { type: generator }\nsink: { type: stdout }\noffsets: { type: kafka }\n",
    )
    .unwrap();
    let e = sink_kafka::offset_store_factory(&config.offsets, &Context::new("p"))
        .err()
        .unwrap();
    assert!(e.message().contains("offsets.brokers"), "{}", e.report());
}

#[tokio::test]
async fn another_pipelines_open_transaction_neither_hides_nor_delays_newer_positions() {
    // GIVEN a pipeline's position, then another (exactly-once) pipeline's transaction left open
    // on the shared offsets topic, then a newer position of the first pipeline
    let brokers = brokers();
    let topic = unique("offsets");
    let pipeline = unique("plain");
    let s = store(&brokers, &pipeline, &topic);
    s.store(&Position::new("old")).await.unwrap();
    let other = unique("eos");
    let txn: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set(
            "transactional.id",
            sink_kafka::offsets::transactional_id(&other),
        )
        .create()
        .unwrap();
    txn.init_transactions(Duration::from_secs(30)).unwrap();
    txn.begin_transaction().unwrap();
    let value = sink_kafka::offsets::encode_position(&other, &Position::new("1"));
    txn.send(BaseRecord::to(&topic).key(&other).payload(&value))
        .unwrap();
    txn.flush(Duration::from_secs(30)).unwrap();
    s.store(&Position::new("new")).await.unwrap();
    // WHEN the first pipeline loads (a restart), THEN it gets its newest position, at once
    assert_eq!(
        store(&brokers, &pipeline, &topic).load().await.unwrap(),
        Some(Position::new("new"))
    );
    drop(txn);
    delete_topics(&brokers, &[&topic]).await;
}
