//! The pipeline runtime: positions are stored and committed only once the sink made them durable
//! (also when acknowledgements complete out of order), failed batches and restarts, bounded
//! in-flight bytes, shutdown (also while the sink never acknowledges), a second instance, and
//! offset store failures.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use connector_core::config::load_str;
use connector_core::testing::{AckMode, MemorySinkHandle, RecordingSource, SourceRecord};
use connector_core::{
    metrics, Batch, BatchAck, ChangeEvent, Column, Error, ErrorKind, FileOffsetStore, OffsetStore,
    Op, Outcome, Pipeline, Position, Registry, Result, Sink, Source, TableId, TableSchema, Value,
};
use tokio_util::sync::CancellationToken;

struct Harness {
    sink: MemorySinkHandle,
    record: Arc<Mutex<SourceRecord>>,
    violations: Arc<Mutex<Vec<String>>>,
    offsets: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn new(mode: AckMode) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Harness {
            sink: MemorySinkHandle::new(mode),
            record: Arc::default(),
            violations: Arc::default(),
            offsets: dir.path().join("t.offsets"),
            _dir: dir,
        }
    }

    /// A pipeline: generator (wrapped to record commits) -> memory sink -> file offsets.
    fn pipeline(&self, source: &str, settings: &str) -> Pipeline {
        let yaml = format!(
            "name: t\nsource: {{ type: recorded, {source} }}\nsink: {{ type: memory }}\n\
             offsets: {{ type: file, path: {:?} }}\npipeline: {{ {settings} }}\n",
            self.offsets.display().to_string()
        );
        let config = load_str(&yaml).unwrap();
        let mut registry = Registry::with_builtins();
        let sink = self.sink.clone();
        registry.add_sink("memory", move |_, _| {
            Ok(Box::new(sink.sink()) as Box<dyn Sink>)
        });
        let (record, sink, violations) = (
            Arc::clone(&self.record),
            self.sink.clone(),
            Arc::clone(&self.violations),
        );
        registry.add_source("recorded", move |section, ctx| {
            let inner = connector_core::generator::factory(section, ctx)?;
            let (sink, violations) = (sink.clone(), Arc::clone(&violations));
            // THEN (always): a position reaches the source only once the sink made it durable.
            let source = RecordingSource::new(inner, Arc::clone(&record)).on_commit(move |p| {
                let durable = sink.state().durable_checkpoint.clone();
                let ok = durable.as_ref().is_some_and(|d| seq(p) <= seq(d));
                if !ok {
                    violations
                        .lock()
                        .unwrap()
                        .push(format!("commit {p} while durable was {durable:?}"));
                }
            });
            Ok(Box::new(source) as Box<dyn Source>)
        });
        Pipeline::new(config, registry)
    }

    async fn stored(&self) -> Option<Position> {
        FileOffsetStore::new("t", &self.offsets)
            .load()
            .await
            .unwrap()
    }

    fn commits(&self) -> Vec<Position> {
        self.record.lock().unwrap().commits.clone()
    }

    fn assert_no_violations(&self) {
        let v = self.violations.lock().unwrap();
        assert!(
            v.is_empty(),
            "positions committed before they were durable: {v:?}"
        );
    }
}

fn seq(p: &Position) -> u64 {
    p.as_str().parse().unwrap()
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

const FAST: &str =
    "offset_flush_interval_ms: 0, retry: { initial_backoff_ms: 10, max_backoff_ms: 40 }";

#[tokio::test]
async fn offsets_are_stored_and_committed_only_after_the_sink_reports_durable() {
    // GIVEN a sink that holds every acknowledgement until the test releases it
    let h = Harness::new(AckMode::Manual);
    let pipeline = h.pipeline("rate_per_sec: 0, batch_size: 10, limit: 100", FAST);
    let stop = CancellationToken::new();
    let run = tokio::spawn({
        let stop = stop.clone();
        async move { pipeline.run(stop).await }
    });

    // WHEN three batches were written but none acknowledged
    eventually("three pending batches", || h.sink.pending() >= 3).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // THEN nothing is stored and nothing committed to the source
    assert_eq!(h.stored().await, None);
    assert!(h.commits().is_empty());

    // WHEN the first two batches become durable
    h.sink.release(2);
    // THEN exactly their checkpoint (event 19) is stored and committed, nothing beyond
    eventually("commit of 19", || h.commits().last().map(seq) == Some(19)).await;
    assert_eq!(h.stored().await, Some(Position::new("19")));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.commits().last().map(seq), Some(19));

    // WHEN everything is acknowledged
    h.sink.set_mode(AckMode::Immediate);
    // THEN the pipeline finishes with the last event stored
    let outcome = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(outcome, Outcome::Finished);
    assert_eq!(h.stored().await, Some(Position::new("99")));
    assert_eq!(h.sink.state().durable.len(), 100);
    h.assert_no_violations();
}

#[tokio::test]
async fn a_failed_batch_is_never_committed_and_the_pipeline_resumes_from_the_last_durable_position()
{
    // GIVEN a sink whose third batch fails with a retryable error
    let h = Harness::new(AckMode::Immediate);
    h.sink
        .fail_ack_of_write(3, Error::new(ErrorKind::Connection, "broker went away"));
    let pipeline = h.pipeline("rate_per_sec: 0, batch_size: 10, limit: 200", FAST);
    let metrics = Arc::clone(pipeline.metrics());

    // WHEN the pipeline runs to the end
    let outcome = pipeline.run(CancellationToken::new()).await.unwrap();

    // THEN it restarted once, from a durable position, and every event arrived
    assert_eq!(outcome, Outcome::Finished);
    assert_eq!(metrics.total(metrics::RESTARTS), 1.0);
    let starts = h.record.lock().unwrap().starts.clone();
    assert_eq!(starts.len(), 2);
    assert_eq!(starts[0], None);
    let resumed = seq(starts[1].as_ref().expect("resumed from a stored position"));
    assert!(
        resumed < 20,
        "resumed at {resumed}, after the failed batch 20..29"
    );
    let mut seen: Vec<u64> = h
        .sink
        .state()
        .durable
        .iter()
        .map(|e| seq(&e.position))
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen, (0..200).collect::<Vec<_>>());
    assert_eq!(h.stored().await, Some(Position::new("199")));
    h.assert_no_violations();
}

#[tokio::test]
async fn fatal_errors_stop_the_pipeline_without_restarting() {
    // GIVEN a sink that rejects a batch for a reason tied to the data
    let h = Harness::new(AckMode::Immediate);
    h.sink.fail_ack_of_write(
        2,
        Error::new(ErrorKind::Data, "message too large: table t key 11"),
    );
    let pipeline = h.pipeline("rate_per_sec: 0, batch_size: 10, limit: 100", FAST);
    let metrics = Arc::clone(pipeline.metrics());

    // WHEN it runs
    let err = pipeline.run(CancellationToken::new()).await.unwrap_err();

    // THEN it stops with that error, no restart, and only the first batch is stored
    assert_eq!(err.kind(), ErrorKind::Data);
    assert!(err.message().contains("key 11"), "{err}");
    assert_eq!(metrics.total(metrics::RESTARTS), 0.0);
    assert_eq!(h.stored().await, Some(Position::new("9")));
    h.assert_no_violations();
}

#[tokio::test]
async fn too_many_restarts_without_progress_give_up() {
    // GIVEN a sink that fails every batch with a retryable error, and at most 2 restarts
    let h = Harness::new(AckMode::Immediate);
    let pipeline = h.pipeline(
        "rate_per_sec: 0, batch_size: 10, limit: 100",
        "offset_flush_interval_ms: 0, retry: { initial_backoff_ms: 5, max_backoff_ms: 10, max_restarts: 2 }",
    );
    let sink = h.sink.clone();
    let failer = tokio::spawn(async move {
        loop {
            sink.fail_ack_of_write(1, Error::new(ErrorKind::Timeout, "timed out"));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    // WHEN it runs
    let err = pipeline.run(CancellationToken::new()).await.unwrap_err();
    failer.abort();
    // THEN it gives up with the error after the allowed restarts
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(
        err.message().contains("giving up after 2 restarts"),
        "{err}"
    );
    assert_eq!(h.record.lock().unwrap().starts.len(), 3);
}

#[tokio::test]
async fn in_flight_bytes_stay_bounded_under_a_stalled_sink() {
    // GIVEN a sink that never acknowledges and a 64 KiB in-flight bound
    let h = Harness::new(AckMode::Manual);
    let limit = 64 * 1024;
    let pipeline = h.pipeline(
        "rate_per_sec: 0, batch_size: 5, payload_bytes: 200",
        &format!("max_in_flight_bytes: {limit}, shutdown_timeout_ms: 300"),
    );
    let stop = CancellationToken::new();
    let run = tokio::spawn({
        let stop = stop.clone();
        async move { pipeline.run(stop).await }
    });

    // WHEN the source has had ample time to run ahead
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (produced, bytes) = {
        let r = h.record.lock().unwrap();
        (r.produced, r.produced_bytes)
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    // THEN it stopped once the bound was reached: at most the bound plus the one batch waiting
    // for permits, and it produced nothing more while stalled
    let batch_bytes = bytes / (produced / 5);
    assert!(produced > 0);
    assert!(
        bytes <= limit + batch_bytes,
        "{bytes} bytes produced with a bound of {limit} (batches of {batch_bytes})"
    );
    assert_eq!(h.record.lock().unwrap().produced, produced);
    assert!(h.commits().is_empty());

    // WHEN asked to stop while nothing can drain
    stop.cancel();
    // THEN it gives up draining after the shutdown timeout and stores nothing that was not durable
    let res = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .unwrap()
        .unwrap();
    assert!(
        res.is_ok() || res.as_ref().unwrap_err().kind() == ErrorKind::Timeout,
        "{res:?}"
    );
    assert_eq!(h.stored().await, None);
}

#[tokio::test]
async fn shutdown_drains_in_flight_events_and_stores_the_last_durable_position() {
    // GIVEN a steadily producing pipeline with a slow offset flush interval
    let h = Harness::new(AckMode::Immediate);
    let pipeline = h.pipeline(
        "rate_per_sec: 2000, batch_size: 50",
        "offset_flush_interval_ms: 60000",
    );
    let stop = CancellationToken::new();
    let run = tokio::spawn({
        let stop = stop.clone();
        async move { pipeline.run(stop).await }
    });
    eventually("some events", || h.sink.state().durable.len() > 200).await;

    // WHEN shut down
    stop.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    // THEN it stopped cleanly, the last durable event is stored and was committed to the source
    assert_eq!(outcome, Outcome::Stopped);
    let (last, written, durable) = {
        let s = h.sink.state();
        (
            s.durable.last().unwrap().position.clone(),
            s.written.len(),
            s.durable.len(),
        )
    };
    assert_eq!(
        written, durable,
        "everything written was drained to durable"
    );
    assert_eq!(h.stored().await, Some(last.clone()));
    assert_eq!(h.commits().last(), Some(&last));
    h.assert_no_violations();
}

#[tokio::test]
async fn a_second_instance_of_a_running_pipeline_is_refused() {
    // GIVEN a running pipeline
    let h = Harness::new(AckMode::Immediate);
    let stop = CancellationToken::new();
    let first = h.pipeline("rate_per_sec: 100", FAST);
    let run = tokio::spawn({
        let stop = stop.clone();
        async move { first.run(stop).await }
    });
    eventually("the first to run", || h.sink.state().starts == 1).await;

    // WHEN a second instance with the same offsets starts
    let err = h
        .pipeline("rate_per_sec: 100", FAST)
        .run(CancellationToken::new())
        .await
        .unwrap_err();

    // THEN it is refused, fatally, naming the lock
    assert_eq!(err.kind(), ErrorKind::Fenced);
    assert!(err.message().contains("is running"), "{err}");
    stop.cancel();
    run.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_offset_store_that_cannot_write_stops_the_pipeline_with_its_own_error() {
    // GIVEN an offsets file whose temporary file cannot be created (a directory is in the way)
    let h = Harness::new(AckMode::Immediate);
    std::fs::create_dir_all(h.offsets.with_file_name("t.offsets.tmp")).unwrap();
    let pipeline = h.pipeline(
        "rate_per_sec: 0, batch_size: 10, limit: 100",
        "offset_flush_interval_ms: 0, retry: { initial_backoff_ms: 5, max_backoff_ms: 10, max_restarts: 1 }",
    );
    // WHEN it runs
    let err = pipeline.run(CancellationToken::new()).await.unwrap_err();
    // THEN it fails with the store's error (not a consequence of it), and nothing was committed
    assert!(
        err.message().contains("storing the durable position"),
        "{}",
        err.report()
    );
    assert!(h.commits().is_empty());
    assert_eq!(h.stored().await, None);
}

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
