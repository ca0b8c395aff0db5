//! Exactly-once fencing order, on rdkafka's `MockCluster` (the services broker has no `EndTxn`):
//! on every start and restart the runtime starts the sink — whose `init_transactions` fences
//! older instances of the pipeline and aborts their open transactions — before it reads the
//! stored position, so no older instance can commit a newer position after the load.
//!
//! The mock gives every producer its own producer id, so it cannot show a fenced commit itself
//! (see `faults::a_fenced_producer_stops_with_a_fatal_error` for the error path): this test
//! records the order of the real sink's completed start and the real store's load.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use connector_core::{
    config, Batch, BatchAck, Check, ConfigSection, Context, Error, ErrorKind, OffsetStore, Outcome,
    Pipeline, Position, Registry, Result, Sink,
};
use tokio_util::sync::CancellationToken;

use crate::support::*;

type Log = Arc<Mutex<Vec<&'static str>>>;

/// The Kafka sink, logging its completed starts and failing the first batch of the first run
/// with a retryable error (to force a restart).
struct LoggingSink {
    inner: Box<dyn Sink>,
    log: Log,
}

#[async_trait]
impl Sink for LoggingSink {
    async fn start(&mut self) -> Result<()> {
        self.inner.start().await?;
        self.log.lock().unwrap().push("sink started");
        Ok(())
    }

    async fn write(&mut self, batch: Batch, ack: BatchAck) -> Result<()> {
        let first_run = self
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|e| **e == "sink started")
            .count()
            == 1;
        if first_run {
            ack.fail(Error::new(
                ErrorKind::Unavailable,
                "injected: broker went away",
            ));
            return Ok(());
        }
        self.inner.write(batch, ack).await
    }

    async fn flush(&mut self) -> Result<()> {
        self.inner.flush().await
    }

    async fn stop(&mut self) -> Result<()> {
        self.inner.stop().await
    }

    fn stores_offsets(&self) -> bool {
        self.inner.stores_offsets()
    }

    async fn check(&mut self) -> Vec<Check> {
        self.inner.check().await
    }
}

/// The Kafka offset store, logging its loads.
struct LoggingStore {
    inner: Box<dyn OffsetStore>,
    log: Log,
}

#[async_trait]
impl OffsetStore for LoggingStore {
    async fn lock(&mut self) -> Result<()> {
        self.inner.lock().await
    }

    async fn load(&self) -> Result<Option<Position>> {
        self.log.lock().unwrap().push("position loaded");
        self.inner.load().await
    }

    async fn store(&self, position: &Position) -> Result<()> {
        self.inner.store(position).await
    }

    async fn clear(&self) -> Result<()> {
        self.inner.clear().await
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_fences_older_instances_before_each_load_of_the_position() {
    // GIVEN an exactly_once pipeline on the mock cluster whose first run fails after it started
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let name = unique("fence");
    let offsets_topic = format!("{name}_offsets");
    cluster
        .create_topic(&format!("{name}.public.orders"), 1, 1)
        .unwrap();
    cluster.create_topic(&offsets_topic, 1, 1).unwrap();
    let yaml = format!(
        "name: {name}\nsource: {{ type: generator, rate_per_sec: 0, limit: 200, batch_size: 50, \
         tables: [public.orders] }}\nsink: {{ type: kafka, brokers: '{brokers}', delivery: \
         exactly_once, headers: false, operation_timeout_ms: 10000 }}\n\
         offsets: {{ type: kafka, topic: {offsets_topic} }}\n\
         pipeline: {{ retry: {{ initial_backoff_ms: 10, max_backoff_ms: 20 }} }}\n"
    );
    let log = Log::default();
    let mut registry = Registry::with_builtins();
    registry.add_sink("kafka", {
        let log = Arc::clone(&log);
        move |section: &ConfigSection, ctx: &Context| -> Result<Box<dyn Sink>> {
            Ok(Box::new(LoggingSink {
                inner: sink_kafka::factory(section, ctx)?,
                log: Arc::clone(&log),
            }))
        }
    });
    registry.add_offset_store("kafka", {
        let log = Arc::clone(&log);
        move |section: &ConfigSection, ctx: &Context| -> Result<Box<dyn OffsetStore>> {
            Ok(Box::new(LoggingStore {
                inner: sink_kafka::offset_store_factory(section, ctx)?,
                log: Arc::clone(&log),
            }))
        }
    });
    // WHEN it runs (and restarts once) to the end of its source
    let outcome = Pipeline::new(config::load_str(&yaml).unwrap(), registry)
        .run(CancellationToken::new())
        .await
        .expect("the pipeline runs");
    assert_eq!(outcome, Outcome::Finished);
    // THEN each load of the position came after that run's sink had initialised its transactions
    assert_eq!(
        *log.lock().unwrap(),
        [
            "sink started",
            "position loaded",
            "sink started",
            "position loaded"
        ]
    );
}
