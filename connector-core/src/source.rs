//! The [`Source`] trait: what a connector that reads a database's log implements.
//!
//! # Delivery contract
//!
//! `cdc` delivers **at least once**: every committed change reaches the sink, and after a crash some
//! changes may be delivered again.
//!
//! - **Positions.** Every event carries the [`Position`] of its change; every batch may carry a
//!   *checkpoint*, the position to resume from once that batch and all earlier batches are durable.
//!   Positions never decrease within one source.
//! - **Durable** means the sink has written the change where it survives a crash of `cdc` and of the
//!   sink's own process (the broker acknowledged it with the configured `acks`, the file was
//!   fsynced). Being accepted into a buffer is not durable.
//! - **Release.** The runtime calls [`Source::commit`] with a checkpoint only after the sink has
//!   reported every event at or before it durable *and* the checkpoint is in the offset store. Only
//!   then may a source release the log up to it (flush the replication slot's LSN, allow a binlog to
//!   be purged). A source must never release beyond the last committed checkpoint.
//! - **Resume.** On start (and on every restart after a retryable error) the source is handed the
//!   last stored checkpoint and must produce every change after it again. Changes after the
//!   checkpoint that were already delivered are delivered again: these are the only duplicates,
//!   and they repeat in their original order.
//! - **Order.** Events of one transaction are contiguous and in log order; transactions are in
//!   commit order. So changes to one key, and to one table, reach the sink in commit order.

use async_trait::async_trait;

use crate::check::Check;
use crate::error::Result;
use crate::event::{Batch, Position, TableSchema};

/// A connector that reads changes from a database.
///
/// The runtime drives one source from one task: `start`, then `next_batch` and `commit` in turn,
/// then `stop`. It never calls two methods at once. At shutdown or restart it may drop a pending
/// `next_batch` future; nothing is lost by that, since it resumes from the last durable checkpoint.
#[async_trait]
pub trait Source: Send {
    /// Connect, verify preconditions and prepare to produce every change after `resume` (the last
    /// durable checkpoint), or from the beginning as the snapshot mode says when `resume` is `None`.
    async fn start(&mut self, resume: Option<Position>) -> Result<()>;

    /// The next batch of events, in log order. `Ok(None)` means the source has finished (an
    /// `initial_only` snapshot is done, a generator reached its limit).
    ///
    /// When the log is idle this returns within about a second, with an empty batch or a
    /// checkpoint-only batch (see [`Batch::checkpoint_only`]) so that commits and shutdown reach
    /// the source promptly and an idle source can still advance its durable position.
    async fn next_batch(&mut self) -> Result<Option<Batch>>;

    /// `position` and everything before it is durable downstream and stored: the source may
    /// release the log up to it. Called between `next_batch` calls, with non-decreasing positions.
    async fn commit(&mut self, position: &Position) -> Result<()>;

    /// Release connections. Called once at the end of a run, after the last `commit`.
    async fn stop(&mut self) -> Result<()> {
        Ok(())
    }

    /// Check the preconditions this source needs (connectivity, server settings, privileges),
    /// without changing anything. Used by `cdc check`.
    async fn check(&mut self) -> Vec<Check> {
        Vec::new()
    }

    /// The tables this source captures, with their columns, as far as it knows them now (after
    /// `start`, or by asking the database when not started): transforms check their patterns
    /// against them. `None` when the source cannot know (the default).
    async fn captured_tables(&mut self) -> Result<Option<Vec<TableSchema>>> {
        Ok(None)
    }
}
