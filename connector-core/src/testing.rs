//! Test tools (feature `test-utils`): an in-memory sink whose acknowledgements a test controls and
//! whose failures it injects, and a source wrapper that records what it produced and committed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::event::{Batch, ChangeEvent, Position};
use crate::sink::{BatchAck, Sink};
use crate::source::Source;
use crate::Check;

/// How the [`MemorySink`] acknowledges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckMode {
    /// Every batch is durable as soon as it is written.
    Immediate,
    /// Batches wait until the test calls [`MemorySinkHandle::release`].
    Manual,
}

/// What happened to the sink, shared between the test and every sink instance it builds.
#[derive(Debug)]
pub struct MemorySinkState {
    /// How batches are acknowledged.
    pub mode: AckMode,
    /// Every event written, in order, across restarts.
    pub written: Vec<ChangeEvent>,
    /// Every event acknowledged durable, in order.
    pub durable: Vec<ChangeEvent>,
    /// Checkpoint of the newest durable batch.
    pub durable_checkpoint: Option<Position>,
    /// Batches written and not yet acknowledged.
    pending: VecDeque<(Vec<ChangeEvent>, Option<Position>, BatchAck)>,
    /// Fail the acknowledgement of the batch written after this many more writes.
    fail_ack_after: Option<(usize, Error)>,
    /// Batches written.
    pub writes: usize,
    /// Sinks started.
    pub starts: usize,
}

/// The test's handle on a [`MemorySink`]'s state.
#[derive(Clone, Debug)]
pub struct MemorySinkHandle(Arc<Mutex<MemorySinkState>>);

impl MemorySinkHandle {
    /// A handle for a sink acknowledging in `mode`.
    pub fn new(mode: AckMode) -> Self {
        MemorySinkHandle(Arc::new(Mutex::new(MemorySinkState {
            mode,
            written: Vec::new(),
            durable: Vec::new(),
            durable_checkpoint: None,
            pending: VecDeque::new(),
            fail_ack_after: None,
            writes: 0,
            starts: 0,
        })))
    }

    /// Lock the state.
    pub fn state(&self) -> MutexGuard<'_, MemorySinkState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new sink sharing this state (one per pipeline attempt).
    pub fn sink(&self) -> MemorySink {
        MemorySink(self.clone())
    }

    /// Acknowledge the oldest `n` pending batches as durable.
    pub fn release(&self, n: usize) {
        let mut s = self.state();
        for _ in 0..n {
            let Some((events, checkpoint, ack)) = s.pending.pop_front() else {
                break;
            };
            s.durable.extend(events);
            if checkpoint.is_some() {
                s.durable_checkpoint = checkpoint;
            }
            ack.durable();
        }
    }

    /// Batches waiting for acknowledgement.
    pub fn pending(&self) -> usize {
        self.state().pending.len()
    }

    /// Switch the acknowledgement mode (switching to `Immediate` releases what is pending).
    pub fn set_mode(&self, mode: AckMode) {
        self.state().mode = mode;
        if mode == AckMode::Immediate {
            self.release(usize::MAX);
        }
    }

    /// Fail the acknowledgement of the `n`-th batch written from now on (1 = the next one).
    pub fn fail_ack_of_write(&self, n: usize, error: Error) {
        self.state().fail_ack_after = Some((n, error));
    }
}

/// A sink keeping events in memory; see [`MemorySinkHandle`].
#[derive(Debug)]
pub struct MemorySink(MemorySinkHandle);

#[async_trait]
impl Sink for MemorySink {
    async fn start(&mut self) -> Result<()> {
        let mut s = self.0.state();
        s.starts += 1;
        // Batches of an earlier attempt that were never acknowledged are gone with it.
        s.pending.clear();
        Ok(())
    }

    async fn write(&mut self, batch: Batch, ack: BatchAck) -> Result<()> {
        let mode;
        {
            let mut s = self.0.state();
            s.writes += 1;
            s.written.extend(batch.events.iter().cloned());
            if let Some((n, err)) = s.fail_ack_after.take() {
                if n <= 1 {
                    ack.fail(err);
                    return Ok(());
                }
                s.fail_ack_after = Some((n - 1, err));
            }
            s.pending.push_back((batch.events, batch.checkpoint, ack));
            mode = s.mode;
        }
        if mode == AckMode::Immediate {
            self.0.release(usize::MAX);
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        loop {
            if self.0.pending() == 0 {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    async fn check(&mut self) -> Vec<Check> {
        vec![Check::pass("memory", "always writable")]
    }
}

/// What a [`RecordingSource`] saw.
#[derive(Debug, Default)]
pub struct SourceRecord {
    /// Events produced, across restarts.
    pub produced: usize,
    /// Estimated bytes produced, across restarts.
    pub produced_bytes: usize,
    /// Positions passed to `commit`, in order.
    pub commits: Vec<Position>,
    /// Resume positions passed to `start`, in order.
    pub starts: Vec<Option<Position>>,
}

/// A check run on every commit.
pub type CommitHook = Box<dyn Fn(&Position) + Send>;

/// Wraps a source and records what it produced and what was committed to it.
pub struct RecordingSource {
    inner: Box<dyn Source>,
    record: Arc<Mutex<SourceRecord>>,
    on_commit: Option<CommitHook>,
}

impl RecordingSource {
    /// Wrap `inner`, recording into `record`.
    pub fn new(inner: Box<dyn Source>, record: Arc<Mutex<SourceRecord>>) -> Self {
        RecordingSource {
            inner,
            record,
            on_commit: None,
        }
    }

    /// Call `f` on every commit, before the inner source sees it (to check invariants).
    pub fn on_commit(mut self, f: impl Fn(&Position) + Send + 'static) -> Self {
        self.on_commit = Some(Box::new(f));
        self
    }

    fn record(&self) -> MutexGuard<'_, SourceRecord> {
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Source for RecordingSource {
    async fn start(&mut self, resume: Option<Position>) -> Result<()> {
        self.record().starts.push(resume.clone());
        self.inner.start(resume).await
    }

    async fn next_batch(&mut self) -> Result<Option<Batch>> {
        let batch = self.inner.next_batch().await?;
        if let Some(b) = &batch {
            let mut r = self.record();
            r.produced += b.events.len();
            r.produced_bytes += b.estimated_size();
        }
        Ok(batch)
    }

    async fn commit(&mut self, position: &Position) -> Result<()> {
        if let Some(f) = &self.on_commit {
            f(position);
        }
        self.record().commits.push(position.clone());
        self.inner.commit(position).await
    }

    async fn stop(&mut self) -> Result<()> {
        self.inner.stop().await
    }
}
