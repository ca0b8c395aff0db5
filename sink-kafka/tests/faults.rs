//! Fault injection with rdkafka's in-process `MockCluster`: a batch is reported durable only when
//! the broker accepted every record of it; failures fail the batch.
//!
//! The mock implements the transactional protocol (init, fencing, commit) but not read_committed
//! filtering of aborted records, so exactly-once is checked here for its protocol paths and acks.

use std::collections::BTreeSet;
use std::time::Duration;

use connector_core::{config, BatchAck, Context, ErrorKind, Op, Result, Sink};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use crate::support::*;

pub(crate) struct Mock {
    pub(crate) cluster: MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    pub(crate) brokers: String,
}

pub(crate) fn mock() -> Mock {
    let cluster = MockCluster::new(1).expect("mock cluster");
    let brokers = cluster.bootstrap_servers();
    Mock { cluster, brokers }
}

pub(crate) fn sink_on(
    brokers: &str,
    name: &str,
    extra: &str,
    eos: bool,
) -> (Box<dyn Sink>, Context) {
    let mut yaml = format!(
        "name: {name}\nsource: {{ type: generator }}\nsink:\n  type: kafka\n  brokers: '{brokers}'\n  \
         operation_timeout_ms: 10000\n{}\n",
        indent(extra)
    );
    if eos {
        yaml.push_str("offsets: { type: kafka }\n");
    }
    let config = config::load_str(&yaml).unwrap();
    let ctx = Context::new(name);
    (sink_kafka::factory(&config.sink, &ctx).unwrap(), ctx)
}

/// `count` create events with ids from `first`, in batches of `per_batch`.
fn creates(first: i64, count: i64, per_batch: usize) -> Vec<connector_core::Batch> {
    let t = items_table();
    let events: Vec<_> = (first..first + count)
        .map(|id| event(Op::Create, &t, None, Some(item(id, "n", id)), id as u64))
        .collect();
    events
        .chunks(per_batch)
        .map(|c| batch(c.to_vec()))
        .collect()
}

/// Keys of a batch, as the sink writes them.
fn keys_of(b: &connector_core::Batch) -> Vec<String> {
    b.events
        .iter()
        .map(|e| match &e.after.as_ref().unwrap()[0] {
            connector_core::Value::Int(id) => format!("{{\"id\":{id}}}"),
            other => panic!("{other:?}"),
        })
        .collect()
}

/// THE invariant: every batch reported durable has all its records in the topic.
fn assert_durable_batches_are_in_the_topic(
    brokers: &str,
    topic: &str,
    batches: &[connector_core::Batch],
    results: &[Result<()>],
) {
    let present: BTreeSet<String> = consume_all_with(brokers, topic, "read_uncommitted")
        .iter()
        .filter_map(|r| r.key_str().map(str::to_string))
        .collect();
    for (b, r) in batches.iter().zip(results) {
        if r.is_ok() {
            for k in keys_of(b) {
                assert!(
                    present.contains(&k),
                    "batch reported durable but {k} is missing"
                );
            }
        }
    }
}

#[tokio::test]
async fn retried_produce_errors_deliver_each_record_once() {
    // GIVEN a broker that rejects the next produce requests with a retriable error
    let m = mock();
    let name = unique("retry");
    let topic = format!("{name}.public.items");
    m.cluster.create_topic(&topic, 2, 1).unwrap();
    let (mut sink, _) = sink_on(&m.brokers, &name, "", false);
    sink.start().await.unwrap();
    m.cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 6],
    );
    // WHEN three batches are written
    let batches = creates(0, 150, 50);
    let results = write_all(sink.as_mut(), batches.clone()).await;
    sink.stop().await.unwrap();
    // THEN librdkafka retried: every batch is durable and every record is there exactly once
    for r in &results {
        r.as_ref().expect("durable after retries");
    }
    let recs = consume_all_with(&m.brokers, &topic, "read_uncommitted");
    assert_eq!(recs.len(), 150);
    let keys: BTreeSet<_> = recs.iter().map(|r| r.key.clone()).collect();
    assert_eq!(
        keys.len(),
        150,
        "no duplicates from the idempotent producer"
    );
    assert_durable_batches_are_in_the_topic(&m.brokers, &topic, &batches, &results);
}

#[tokio::test]
async fn a_rejected_produce_fails_the_batch_and_is_never_acknowledged() {
    // GIVEN a broker that refuses writes to the topic (authorization)
    let m = mock();
    let name = unique("reject");
    let topic = format!("{name}.public.items");
    m.cluster.create_topic(&topic, 1, 1).unwrap();
    let (mut sink, _) = sink_on(&m.brokers, &name, "", false);
    sink.start().await.unwrap();
    m.cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 50],
    );
    // WHEN batches are written
    let batches = creates(0, 30, 10);
    let results = write_all(sink.as_mut(), batches.clone()).await;
    sink.stop().await.unwrap();
    // THEN the first batch fails with a permission error naming table and key, and no batch is
    // reported durable for records the broker refused
    let e = results[0].as_ref().expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::Permission, "{}", e.report());
    assert!(e.report().contains("public.items"), "{}", e.report());
    assert!(e.report().contains("{\"id\":"), "{}", e.report());
    assert!(e.hint().is_some());
    assert_durable_batches_are_in_the_topic(&m.brokers, &topic, &batches, &results);
}

#[tokio::test]
async fn a_broker_outage_fails_the_batch_instead_of_acknowledging_it() {
    // GIVEN a started sink whose broker then goes down
    let m = mock();
    let name = unique("down");
    let topic = format!("{name}.public.items");
    m.cluster.create_topic(&topic, 1, 1).unwrap();
    let (mut sink, _) = sink_on(&m.brokers, &name, "message_timeout_ms: 3000", false);
    sink.start().await.unwrap();
    m.cluster.broker_down(1).unwrap();
    // WHEN a batch is written
    let batches = creates(0, 20, 20);
    let results = write_all(sink.as_mut(), batches.clone()).await;
    sink.stop().await.unwrap();
    // THEN it fails with a retryable error (the pipeline restarts from the last durable position)
    let e = results[0]
        .as_ref()
        .expect_err("not acknowledged while the broker is down");
    assert!(e.is_retryable(), "{}", e.report());
    // WHEN the broker is back, a new sink delivers
    m.cluster.broker_up(1).unwrap();
    let (mut sink, _) = sink_on(&m.brokers, &name, "", false);
    sink.start().await.unwrap();
    let results = write_all(sink.as_mut(), batches.clone()).await;
    sink.stop().await.unwrap();
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert_durable_batches_are_in_the_topic(&m.brokers, &topic, &batches, &results);
}

#[tokio::test]
async fn a_full_local_queue_is_backpressure_not_an_error() {
    // GIVEN a producer queue of 10 messages and a slow broker
    let m = mock();
    let name = unique("queue");
    let topic = format!("{name}.public.items");
    m.cluster.create_topic(&topic, 1, 1).unwrap();
    m.cluster
        .broker_round_trip_time(1, Duration::from_millis(20))
        .unwrap();
    let (mut sink, ctx) = sink_on(
        &m.brokers,
        &name,
        "properties: { queue.buffering.max.messages: 10 }",
        false,
    );
    sink.start().await.unwrap();
    // WHEN 2,000 events are written
    let batches = creates(0, 2_000, 500);
    let results = write_all(sink.as_mut(), batches.clone()).await;
    sink.stop().await.unwrap();
    // THEN all are durable, after waiting for room
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(ctx.metrics.total(sink_kafka::sink::QUEUE_FULL_WAITS) > 0.0);
    assert_eq!(
        consume_all_with(&m.brokers, &topic, "read_uncommitted").len(),
        2_000
    );
}

#[tokio::test]
async fn exactly_once_acks_complete_on_commit_with_the_offset_record() {
    // GIVEN an exactly_once sink with a long transaction interval
    let m = mock();
    let name = unique("eos");
    let topic = format!("{name}.public.items");
    m.cluster.create_topic(&topic, 2, 1).unwrap();
    m.cluster.create_topic("cdc_offsets", 1, 1).unwrap();
    let (mut sink, ctx) = sink_on(
        &m.brokers,
        &name,
        "delivery: exactly_once\ntransaction_interval_ms: 60000",
        true,
    );
    assert!(sink.stores_offsets());
    sink.start().await.unwrap();
    // WHEN two batches are written
    let batches = creates(0, 20, 10);
    let mut rxs = Vec::new();
    for b in batches.clone() {
        let (ack, rx) = BatchAck::new();
        sink.write(b, ack).await.unwrap();
        rxs.push(rx);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // THEN nothing is durable before the commit
    for rx in &mut rxs {
        assert!(
            rx.try_recv().is_err(),
            "acknowledged before the transaction committed"
        );
    }
    // WHEN flushed (commit), THEN both are durable and the offset record holds the checkpoint
    sink.flush().await.unwrap();
    for rx in rxs {
        rx.await.unwrap().expect("durable after commit");
    }
    sink.stop().await.unwrap();
    assert_eq!(
        ctx.metrics
            .get(sink_kafka::sink::TRANSACTIONS, &[("result", "committed")]),
        Some(1.0)
    );
    let offsets = consume_all_with(&m.brokers, "cdc_offsets", "read_committed");
    let ours: Vec<_> = offsets
        .iter()
        .filter(|r| r.key_str() == Some(name.as_str()))
        .collect();
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0].value_json().unwrap()["position"], "19");
    assert_eq!(
        consume_all_with(&m.brokers, &topic, "read_committed").len(),
        20
    );
    // AND the kafka offset store reads it back
    let yaml = format!(
        "name: {name}\nsource: {{ type: generator }}\nsink: {{ type: kafka, brokers: '{}', delivery: exactly_once }}\noffsets: {{ type: kafka }}\n",
        m.brokers
    );
    let config = config::load_str(&yaml).unwrap();
    let store =
        sink_kafka::offset_store_factory(&config.offsets, &Context::new(name.as_str())).unwrap();
    assert_eq!(store.load().await.unwrap().unwrap().as_str(), "19");
}

#[tokio::test]
async fn a_fenced_producer_stops_with_a_fatal_error() {
    // GIVEN an exactly_once sink whose commit the broker answers with "producer fenced" (what
    // Kafka does once a newer instance initialised the same transactional id; the mock cluster
    // hands every instance its own producer id, so the fence is injected)
    let m = mock();
    let name = unique("fence");
    let topic = format!("{name}.public.items");
    m.cluster.create_topic(&topic, 1, 1).unwrap();
    m.cluster.create_topic("cdc_offsets", 1, 1).unwrap();
    let (mut sink, _) = sink_on(&m.brokers, &name, "delivery: exactly_once", true);
    sink.start().await.unwrap();
    m.cluster.request_errors(
        RDKafkaApiKey::EndTxn,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED; 5],
    );
    // WHEN it writes
    let results = write_all(sink.as_mut(), creates(0, 5, 5)).await;
    sink.stop().await.unwrap();
    // THEN the batch fails with a fatal Fenced error and a hint
    let e = results[0].as_ref().expect_err("fenced");
    assert_eq!(e.kind(), ErrorKind::Fenced, "{}", e.report());
    assert!(!e.is_retryable());
    assert!(
        e.hint().unwrap_or("").contains("another instance"),
        "{}",
        e.report()
    );
}

#[tokio::test]
async fn a_failed_commit_fails_its_batches() {
    // GIVEN an exactly_once sink whose broker fails the next commits
    let m = mock();
    let name = unique("endtxn");
    let topic = format!("{name}.public.items");
    m.cluster.create_topic(&topic, 1, 1).unwrap();
    m.cluster.create_topic("cdc_offsets", 1, 1).unwrap();
    let (mut sink, _) = sink_on(
        &m.brokers,
        &name,
        "delivery: exactly_once\ntransaction_interval_ms: 60000",
        true,
    );
    sink.start().await.unwrap();
    m.cluster.request_errors(
        RDKafkaApiKey::EndTxn,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_INVALID_TXN_STATE; 10],
    );
    // WHEN batches are written and flushed
    let results = write_all(sink.as_mut(), creates(0, 10, 5)).await;
    sink.stop().await.unwrap();
    // THEN none is acknowledged
    for r in &results {
        assert!(r.is_err(), "acknowledged although the commit failed");
    }
}

#[tokio::test]
async fn writes_after_a_failure_are_refused_so_nothing_overtakes_a_lost_change() {
    // GIVEN a sink whose first batch failed (missing topic)
    let m = mock();
    let name = unique("sticky");
    let (mut sink, _) = sink_on(
        &m.brokers,
        &name,
        "topics: { public.items: no_such_topic_here }",
        false,
    );
    m.cluster
        .topic_error(
            "no_such_topic_here",
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
        )
        .unwrap();
    sink.start().await.unwrap();
    let results = write_all(sink.as_mut(), creates(0, 10, 5)).await;
    sink.stop().await.unwrap();
    // THEN both batches fail, the second without being produced
    assert!(results.iter().all(Result::is_err), "{results:?}");
}

#[tokio::test]
async fn snappy_round_trips() {
    let m = mock();
    crate::produce::codec_round_trip(&m.brokers, "snappy", async |topic: &str| {
        m.cluster.create_topic(topic, 1, 1).unwrap()
    })
    .await;
}
