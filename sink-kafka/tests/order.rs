//! Per-key order across a broker outage and the retry after it: a later version of a key never
//! reaches the topic before an older one first appears (duplicates from an at-least-once replay
//! are allowed).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use connector_core::{BatchAck, Op, Result, Sink};

use crate::faults::{mock, sink_on, Mock};
use crate::support::*;

/// Keys updated by every batch.
const KEYS: i64 = 4;
/// Batches written, one version of every key each.
const BATCHES: i64 = 60;
/// Pace of the writes, so that the outage spans messages enqueued at different times.
const WRITE_EVERY: Duration = Duration::from_millis(100);
/// How long the broker is down (the injected fault), longer than a short message timeout.
const OUTAGE: Duration = Duration::from_millis(3200);
/// Reconnect within 200 ms of the broker's return (librdkafka backs off up to 10 s).
const PROMPT_RECONNECT: &str = "properties: { reconnect.backoff.max.ms: 200 }";
/// Restarts of the sink (as the runtime does after a failed batch) before the test gives up.
const MAX_RESTARTS: usize = 5;

/// Batch `v` (from 1) updates every key to version `v` (its `qty`).
fn versions() -> Vec<connector_core::Batch> {
    let t = items_table();
    (1..=BATCHES)
        .map(|v| {
            let events = (0..KEYS)
                .map(|id| {
                    let pos = (v * KEYS + id) as u64;
                    event(Op::Update, &t, None, Some(item(id, "n", v)), pos)
                })
                .collect();
            batch(events)
        })
        .collect()
}

/// Write `batches` (the first before the outage, to learn the topic; the rest paced through an
/// outage of [`OUTAGE`]) and return each batch's ack result.
async fn write_through_an_outage(
    m: &Mock,
    sink: &mut dyn Sink,
    batches: &[connector_core::Batch],
) -> Vec<Result<()>> {
    let mut results = write_all(sink, batches[..1].to_vec()).await;
    results[0]
        .as_ref()
        .expect("version 1 durable before the outage");
    m.cluster.broker_down(1).unwrap();
    let down = Instant::now();
    let mut up = false;
    let mut acks = Vec::new();
    let mut ticks = tokio::time::interval(WRITE_EVERY);
    for b in batches[1..].iter().cloned() {
        ticks.tick().await;
        if !up && down.elapsed() >= OUTAGE {
            m.cluster.broker_up(1).unwrap();
            up = true;
        }
        let (ack, rx) = BatchAck::new();
        sink.write(b, ack).await.expect("write accepted");
        acks.push(rx);
    }
    if !up {
        m.cluster.broker_up(1).unwrap();
    }
    for rx in acks {
        results.push(rx.await.expect("ack completed"));
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_and_the_retry_after_it_keep_each_keys_order() {
    // GIVEN a sink with the default settings on a broker that goes down while batches updating
    // the same keys with increasing versions are written
    let m = mock();
    let name = unique("order");
    let topic = format!("{name}.public.items");
    m.cluster.create_topic(&topic, 2, 1).unwrap();
    let batches = versions();
    let (mut sink, _) = sink_on(&m.brokers, &name, PROMPT_RECONNECT, false);
    sink.start().await.unwrap();
    let mut results = write_through_an_outage(&m, sink.as_mut(), &batches).await;
    // WHEN, like the runtime, a failed batch restarts the sink from the first batch not durable
    let mut restarts = 0;
    while let Some(first_failed) = results.iter().position(Result::is_err) {
        restarts += 1;
        assert!(
            restarts <= MAX_RESTARTS,
            "still failing after {MAX_RESTARTS} restarts"
        );
        sink.stop().await.unwrap();
        let (again, _) = sink_on(&m.brokers, &name, PROMPT_RECONNECT, false);
        sink = again;
        sink.start().await.unwrap();
        let retried = write_all(sink.as_mut(), batches[first_failed..].to_vec()).await;
        results.truncate(first_failed);
        results.extend(retried);
    }
    sink.stop().await.unwrap();
    // THEN per key every version is in the topic, each first appearing after the one before it
    let mut first_seen: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for r in consume_all_with(&m.brokers, &topic, "read_uncommitted") {
        let key = r.key_str().expect("keyed").to_string();
        let version = r.value_json().expect("a value")["after"]["qty"]
            .as_i64()
            .expect("after.qty");
        let seen = first_seen.entry(key).or_default();
        if !seen.contains(&version) {
            seen.push(version);
        }
    }
    assert_eq!(first_seen.len(), KEYS as usize, "{first_seen:?}");
    let expected: Vec<i64> = (1..=BATCHES).collect();
    for (key, seen) in &first_seen {
        assert_eq!(
            seen, &expected,
            "key {key}: versions in the order they first reached the topic \
             ({restarts} restart(s) of the sink)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_timed_out_delivery_no_later_batch_is_acknowledged() {
    // GIVEN a sink whose message timeout (overridden) is shorter than a broker outage
    let m = mock();
    let name = unique("order_ack");
    let topic = format!("{name}.public.items");
    m.cluster.create_topic(&topic, 2, 1).unwrap();
    let batches = versions();
    let extra = format!("message_timeout_ms: 3000\n{PROMPT_RECONNECT}");
    let (mut sink, _) = sink_on(&m.brokers, &name, &extra, false);
    sink.start().await.unwrap();
    // WHEN batches are written through the outage
    let results = write_through_an_outage(&m, sink.as_mut(), &batches).await;
    sink.stop().await.unwrap();
    // THEN some batch failed, and none after it is reported durable, even when its records
    // reached the broker (the pipeline resends from the failed one)
    let first_failed = results
        .iter()
        .position(Result::is_err)
        .expect("a delivery timed out during the outage");
    let durable_after: Vec<usize> = (first_failed..results.len())
        .filter(|&i| results[i].is_ok())
        .collect();
    assert!(
        durable_after.is_empty(),
        "batch {first_failed} failed but later batches {durable_after:?} were acknowledged"
    );
}
