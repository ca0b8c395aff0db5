//! The [`Sink`] trait: what a connector that writes change events somewhere implements, and the
//! [`BatchAck`] through which it reports a batch durable.
//!
//! # Delivery contract
//!
//! - A sink receives batches in source order through [`Sink::write`], each with a [`BatchAck`].
//! - It calls [`BatchAck::durable`] once **every** event of the batch is durable: it survives a
//!   crash of `cdc` and of the sink's own process (broker acknowledgement with the configured
//!   `acks`, fsync). Accepted into a buffer is not durable. Acks may be completed out of order and
//!   from any task or thread; the runtime turns them into an in-order durable position, which is
//!   "the highest position that is durably written": the checkpoint of the newest batch such that it
//!   and all batches before it are acknowledged.
//! - A batch that cannot be written is reported with [`BatchAck::fail`]; an ack dropped without
//!   either call counts as failed. A failed batch is never acknowledged: the runtime restarts the
//!   pipeline from the last durable position (retryable errors) or stops (fatal ones).
//! - Order: a sink keeps the order of events that share a key (Kafka: one key, one partition, in
//!   the order given, across retries with an idempotent producer).
//! - Duplicates: after a restart the source re-sends everything after the last durable position; a
//!   sink may see events it already wrote, in their original order.
//! - Backpressure: `write` may wait (a full producer queue); it should not fail for it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::oneshot;

use crate::check::Check;
use crate::error::{Error, ErrorKind, Result};
use crate::event::Batch;

/// A connector that writes change events.
///
/// The runtime drives one sink from one task: `start`, `write` for each batch in order, `flush` at
/// shutdown, then `stop`.
#[async_trait]
pub trait Sink: Send {
    /// Connect and verify that writing is possible (topics exist, the file can be opened).
    async fn start(&mut self) -> Result<()>;

    /// Accept a batch. May return before the batch is durable; call `ack.durable()` when it is.
    async fn write(&mut self, batch: Batch, ack: BatchAck) -> Result<()>;

    /// Wait until every accepted batch is durable (its ack completed) or has failed.
    async fn flush(&mut self) -> Result<()>;

    /// Release connections. Called once at the end of a run, after `flush`.
    async fn stop(&mut self) -> Result<()> {
        Ok(())
    }

    /// Whether the sink writes each batch's checkpoint itself, atomically with the batch's records
    /// (exactly-once delivery). The runtime then reads the offset store at start but never writes it.
    fn stores_offsets(&self) -> bool {
        false
    }

    /// Check what this sink needs (connectivity, permissions), without changing anything.
    async fn check(&mut self) -> Vec<Check> {
        Vec::new()
    }
}

/// Completes when a batch is durable (or failed). Handed to [`Sink::write`] with each batch.
///
/// Exactly one of [`durable`](BatchAck::durable) or [`fail`](BatchAck::fail) should be called;
/// dropping the ack without either reports the batch failed, so a lost ack can never be mistaken
/// for a durable write. Use [`BatchAck::share`] when a batch completes through many deliveries.
#[derive(Debug)]
pub struct BatchAck {
    tx: Option<oneshot::Sender<Result<()>>>,
}

impl BatchAck {
    /// An ack and the receiver the runtime waits on.
    pub fn new() -> (BatchAck, oneshot::Receiver<Result<()>>) {
        let (tx, rx) = oneshot::channel();
        (BatchAck { tx: Some(tx) }, rx)
    }

    /// Every event of the batch is durable.
    pub fn durable(mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Ok(()));
        }
    }

    /// The batch could not be written.
    pub fn fail(mut self, error: Error) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Err(error));
        }
    }

    /// Split this ack between several deliveries: the batch is durable once every clone of the
    /// returned [`SharedAck`] is marked done, failed as soon as one fails or is dropped undone.
    pub fn share(self) -> SharedAck {
        SharedAck {
            inner: Arc::new(SharedInner {
                ack: Mutex::new(Some(self)),
                failure: Mutex::new(None),
                failed: AtomicBool::new(false),
            }),
            done: false,
        }
    }
}

impl Drop for BatchAck {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Err(Error::new(
                ErrorKind::Internal,
                "a sink dropped a batch acknowledgement without reporting it durable or failed",
            )));
        }
    }
}

#[derive(Debug)]
struct SharedInner {
    ack: Mutex<Option<BatchAck>>,
    failure: Mutex<Option<Error>>,
    failed: AtomicBool,
}

impl Drop for SharedInner {
    fn drop(&mut self) {
        let ack = self.ack.get_mut().ok().and_then(Option::take);
        if let Some(ack) = ack {
            if self.failed.load(Ordering::Acquire) {
                let err = self
                    .failure
                    .get_mut()
                    .ok()
                    .and_then(Option::take)
                    .unwrap_or_else(|| {
                        Error::internal("a delivery of the batch was dropped unacknowledged")
                    });
                ack.fail(err);
            } else {
                ack.durable();
            }
        }
    }
}

/// One share of a [`BatchAck`]: clone it once per delivery, call [`done`](SharedAck::done) when the
/// delivery is durable or [`fail`](SharedAck::fail) when it is not.
#[derive(Debug)]
pub struct SharedAck {
    inner: Arc<SharedInner>,
    done: bool,
}

impl Clone for SharedAck {
    fn clone(&self) -> Self {
        SharedAck {
            inner: Arc::clone(&self.inner),
            done: false,
        }
    }
}

impl SharedAck {
    /// This delivery is durable.
    pub fn done(mut self) {
        self.done = true;
    }

    /// This delivery failed; the whole batch fails with `error` (the first failure is kept).
    pub fn fail(mut self, error: Error) {
        self.done = true;
        if let Ok(mut slot) = self.inner.failure.lock() {
            if slot.is_none() {
                *slot = Some(error);
            }
        }
        self.inner.failed.store(true, Ordering::Release);
    }
}

impl Drop for SharedAck {
    fn drop(&mut self) {
        if !self.done {
            self.inner.failed.store(true, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dropped_ack_is_a_failure() {
        let (ack, rx) = BatchAck::new();
        drop(ack);
        assert!(rx.await.unwrap().is_err());
    }

    #[tokio::test]
    async fn shared_ack_completes_when_every_share_is_done() {
        let (ack, mut rx) = BatchAck::new();
        let shared = ack.share();
        let a = shared.clone();
        let b = shared.clone();
        shared.clone().done();
        shared.done();
        a.done();
        assert!(
            rx.try_recv().is_err(),
            "not complete while one share is pending"
        );
        b.done();
        assert!(rx.await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn one_failed_share_fails_the_batch() {
        let (ack, rx) = BatchAck::new();
        let shared = ack.share();
        let a = shared.clone();
        shared.done();
        a.fail(Error::new(ErrorKind::Data, "message too large"));
        let err = rx.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Data);
    }

    #[tokio::test]
    async fn a_share_dropped_undone_fails_the_batch() {
        let (ack, rx) = BatchAck::new();
        let shared = ack.share();
        let a = shared.clone();
        shared.done();
        drop(a);
        assert!(rx.await.unwrap().is_err());
    }
}
