//! Adversarial review of the runtime: a checkpoint-only batch acknowledged before earlier batches,
//! and a shutdown while the sink never acknowledges.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use connector_core::config::load_str;
use connector_core::testing::{AckMode, MemorySinkHandle};
use connector_core::{
    Batch, BatchAck, ChangeEvent, Column, FileOffsetStore, OffsetStore, Op, Outcome, Pipeline,
    Position, Registry, Result, Sink, Source, TableId, TableSchema, Value,
};
use tokio_util::sync::CancellationToken;

/// A source that plays a script of batches, then idles; records what was committed to it.
struct Scripted {
    script: VecDeque<Batch>,
    commits: Arc<Mutex<Vec<Position>>>,
}

#[async_trait]
impl Source for Scripted {
    async fn start(&mut self, _resume: Option<Position>) -> Result<()> {
        Ok(())
    }

    async fn next_batch(&mut self) -> Result<Option<Batch>> {
        match self.script.pop_front() {
            Some(b) => Ok(Some(b)),
            None => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(Some(Batch::default()))
            }
        }
    }

    async fn commit(&mut self, position: &Position) -> Result<()> {
        self.commits.lock().unwrap().push(position.clone());
        Ok(())
    }
}

/// A sink that acknowledges batches without events at once and holds the others until the test
/// releases them: acknowledgements complete out of order.
#[derive(Clone, Default)]
struct OutOfOrder {
    held: Arc<Mutex<Vec<BatchAck>>>,
}

#[async_trait]
impl Sink for OutOfOrder {
    async fn start(&mut self) -> Result<()> {
        Ok(())
    }

    async fn write(&mut self, batch: Batch, ack: BatchAck) -> Result<()> {
        if batch.events.is_empty() {
            ack.durable();
        } else {
            self.held.lock().unwrap().push(ack);
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

fn row(n: i64) -> ChangeEvent {
    let t = Arc::new(TableSchema::new(
        TableId::new("db", "public", "t"),
        vec![Column::new("id", "int4").key()],
    ));
    ChangeEvent::row(
        Op::Create,
        t,
        None,
        Some(vec![Value::Int(n)]),
        Position::new(n.to_string()),
    )
}

async fn stored(path: &std::path::Path) -> Option<Position> {
    FileOffsetStore::new("r", path).load().await.unwrap()
}

#[tokio::test]
async fn a_checkpoint_only_batch_acknowledged_first_waits_for_the_batches_before_it() {
    // GIVEN a source that sends a batch of events (checkpoint 1), then a checkpoint-only batch
    // (checkpoint 2), and a sink that acknowledges the checkpoint-only batch at once but holds
    // the first one
    let dir = tempfile::tempdir().unwrap();
    let offsets = dir.path().join("r.offsets");
    let commits = Arc::new(Mutex::new(Vec::new()));
    let sink = OutOfOrder::default();
    let mut registry = Registry::with_builtins();
    {
        let commits = Arc::clone(&commits);
        registry.add_source("scripted", move |_, _| {
            let script = VecDeque::from([
                Batch::new(vec![row(1)], Some(Position::new("1"))),
                Batch::checkpoint_only(Position::new("2")),
            ]);
            Ok(Box::new(Scripted {
                script,
                commits: Arc::clone(&commits),
            }) as Box<dyn Source>)
        });
        let sink = sink.clone();
        registry.add_sink("ooo", move |_, _| {
            Ok(Box::new(sink.clone()) as Box<dyn Sink>)
        });
    }
    let yaml = format!(
        "name: r\nsource: {{ type: scripted }}\nsink: {{ type: ooo }}\n\
         offsets: {{ type: file, path: {:?} }}\npipeline: {{ offset_flush_interval_ms: 0 }}\n",
        offsets.display().to_string()
    );
    let pipeline = Pipeline::new(load_str(&yaml).unwrap(), registry);
    let stop = CancellationToken::new();
    let run = tokio::spawn({
        let stop = stop.clone();
        async move { pipeline.run(stop).await }
    });
    // WHEN both were written and only the checkpoint-only one is acknowledged
    let start = Instant::now();
    while sink.held.lock().unwrap().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(5), "nothing written");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // THEN neither position is stored nor released to the source
    assert_eq!(stored(&offsets).await, None);
    assert!(commits.lock().unwrap().is_empty());
    // WHEN the first batch becomes durable THEN both positions follow, in order
    sink.held.lock().unwrap().pop().unwrap().durable();
    let start = Instant::now();
    while stored(&offsets).await != Some(Position::new("2")) {
        assert!(start.elapsed() < Duration::from_secs(5), "never stored");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(outcome, Outcome::Stopped);
    assert_eq!(commits.lock().unwrap().last(), Some(&Position::new("2")));
}

#[tokio::test]
async fn shutdown_while_the_sink_never_acknowledges_keeps_the_last_durable_position() {
    // GIVEN a generator pipeline whose sink made the first batches durable and then stopped
    // acknowledging (a stalled broker), with a shutdown timeout of 500 ms
    let dir = tempfile::tempdir().unwrap();
    let offsets = dir.path().join("r.offsets");
    let sink = MemorySinkHandle::new(AckMode::Immediate);
    let mut registry = Registry::with_builtins();
    {
        let sink = sink.clone();
        registry.add_sink("memory", move |_, _| {
            Ok(Box::new(sink.sink()) as Box<dyn Sink>)
        });
    }
    let yaml = format!(
        "name: r\nsource: {{ type: generator, rate_per_sec: 2000, batch_size: 20 }}\n\
         sink: {{ type: memory }}\noffsets: {{ type: file, path: {:?} }}\n\
         pipeline: {{ offset_flush_interval_ms: 0, shutdown_timeout_ms: 500 }}\n",
        offsets.display().to_string()
    );
    let pipeline = Pipeline::new(load_str(&yaml).unwrap(), registry);
    let stop = CancellationToken::new();
    let run = tokio::spawn({
        let stop = stop.clone();
        async move { pipeline.run(stop).await }
    });
    let start = Instant::now();
    while sink.state().durable.len() < 100 {
        assert!(start.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sink.state().mode = AckMode::Manual;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // WHEN a shutdown is requested while batches wait for acknowledgement forever
    let asked = Instant::now();
    stop.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("the shutdown timeout is honoured")
        .unwrap()
        .unwrap();
    // THEN it stops within about the shutdown timeout, storing exactly the last durable position
    assert_eq!(outcome, Outcome::Stopped);
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
    let durable = sink.state().durable_checkpoint.clone();
    assert!(sink.pending() > 0, "some batches were never acknowledged");
    assert_eq!(stored(&offsets).await, durable);
}
