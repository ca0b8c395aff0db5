//! Adversarial review: shutdown of a pipeline whose Kafka broker went away.

use std::time::{Duration, Instant};

use connector_core::{config, Outcome, Pipeline, Registry};
use rdkafka::mocking::MockCluster;
use tokio_util::sync::CancellationToken;

use crate::support::*;

fn registry() -> Registry {
    let mut r = Registry::with_builtins();
    r.add_sink("kafka", sink_kafka::factory);
    r.add_offset_store("kafka", sink_kafka::offset_store_factory);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_the_broker_down_ends_within_the_shutdown_timeout() {
    // GIVEN a pipeline (generator -> kafka, message_timeout_ms of 1 minute; 5 by default) streaming
    // into a broker, with a shutdown timeout of 2 s
    let cluster = MockCluster::new(1).expect("mock cluster");
    let brokers = cluster.bootstrap_servers();
    let name = unique("rv_down");
    cluster
        .create_topic(&format!("{name}.public.orders"), 1, 1)
        .unwrap();
    let dir = std::env::temp_dir().join(&name);
    let yaml = format!(
        "name: {name}\nsource: {{ type: generator, rate_per_sec: 2000, tables: [public.orders] }}\n\
         sink: {{ type: kafka, brokers: '{brokers}', headers: false, message_timeout_ms: 60000 }}\n\
         offsets: {{ type: file, path: '{}' }}\n\
         pipeline: {{ shutdown_timeout_ms: 2000, offset_flush_interval_ms: 50 }}\n",
        dir.join("o.offsets").display()
    );
    let config = config::load_str(&yaml).unwrap();
    let shutdown = CancellationToken::new();
    let run = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move { Pipeline::new(config, registry()).run(shutdown).await })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!run.is_finished(), "the pipeline is streaming");
    // WHEN the broker goes away, and a shutdown is requested a moment later
    cluster.broker_down(1).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let asked = Instant::now();
    shutdown.cancel();
    // THEN the pipeline stops within its shutdown timeout (plus slack), keeping the last durable
    // position, instead of waiting for librdkafka's message timeout
    let r = tokio::time::timeout(Duration::from_secs(20), run).await;
    let waited = asked.elapsed();
    cluster.broker_up(1).unwrap();
    let outcome = r
        .unwrap_or_else(|_| panic!("still running {waited:?} after the shutdown request"))
        .unwrap();
    assert!(matches!(outcome, Ok(Outcome::Stopped)), "{outcome:?}");
}
