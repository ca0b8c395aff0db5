//! What `/healthz` and `/readyz` report: the pipeline's phase, set by the runtime and refined by
//! sources (snapshotting or streaming).

use std::sync::atomic::{AtomicU8, Ordering};

/// Where the pipeline is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Connecting source and sink.
    Starting = 0,
    /// Reading the initial snapshot.
    Snapshotting = 1,
    /// Streaming changes from the log.
    Streaming = 2,
    /// Waiting to restart after a retryable error.
    Restarting = 3,
    /// Draining after a shutdown request.
    Stopping = 4,
    /// Finished or stopped.
    Stopped = 5,
    /// Stopped by a fatal error.
    Failed = 6,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Starting,
            1 => Phase::Snapshotting,
            2 => Phase::Streaming,
            3 => Phase::Restarting,
            4 => Phase::Stopping,
            5 => Phase::Stopped,
            _ => Phase::Failed,
        }
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Snapshotting => "snapshotting",
            Phase::Streaming => "streaming",
            Phase::Restarting => "restarting",
            Phase::Stopping => "stopping",
            Phase::Stopped => "stopped",
            Phase::Failed => "failed",
        }
    }
}

/// The pipeline's phase, shared between the runtime, its connectors and the HTTP endpoint.
#[derive(Debug)]
pub struct Health {
    phase: AtomicU8,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            phase: AtomicU8::new(Phase::Starting as u8),
        }
    }
}

impl Health {
    /// Set the phase.
    pub fn set(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
    }

    /// Set the phase if the pipeline is running (a source reporting snapshot or stream), leaving
    /// stopping, stopped and failed alone.
    pub fn set_running(&self, phase: Phase) {
        let _ =
            self.phase.fetch_update(
                Ordering::AcqRel,
                Ordering::Acquire,
                |cur| match Phase::from_u8(cur) {
                    Phase::Starting | Phase::Snapshotting | Phase::Streaming => Some(phase as u8),
                    _ => None,
                },
            );
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    /// Alive: not stopped by a fatal error. Restarts after retryable errors count as alive.
    pub fn is_live(&self) -> bool {
        self.phase() != Phase::Failed
    }

    /// Ready: the source is connected and snapshotting or streaming, and the sink is writing.
    pub fn is_ready(&self) -> bool {
        matches!(self.phase(), Phase::Snapshotting | Phase::Streaming)
    }
}
