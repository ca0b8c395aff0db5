//! Quiet logs for repeated failures: a failure that keeps happening (a broker unreachable, a
//! database restarting, a connection refused on every reconnect) is logged once when it starts,
//! then at most once every [`REPEAT_INTERVAL`] with how long it has lasted, how many reports were
//! folded in and what is buffered, then once when it recovers.
//!
//! ```
//! use connector_core::failure_log::FailureLog;
//! let log = FailureLog::new("kafka brokers");
//! for _ in 0..1000 {
//!     log.failed("connection refused", || Some("12 messages queued".into())); // one line
//! }
//! log.recovered(); // one line
//! ```
//!
//! The runtime's restart loop, the Kafka sink (its librdkafka client logs and delivery errors) and
//! sources' reconnect loops share it, so an outage gives a few lines, not one per attempt.

use std::fmt::Display;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::{info, warn};

/// At most one line per this interval while a failure goes on.
pub const REPEAT_INTERVAL: Duration = Duration::from_secs(30);

/// What a report of a failure should produce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// The first report of a failure: log it.
    Started,
    /// The failure goes on and the interval has passed: log it with these figures.
    Ongoing {
        /// Since the first report.
        failing_for: Duration,
        /// Reports folded in since the last line.
        suppressed: u64,
    },
    /// Within the interval: say nothing.
    Quiet,
}

/// The end of a failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// How long it lasted.
    pub failed_for: Duration,
    /// Reports of it, in all.
    pub reports: u64,
}

#[derive(Debug)]
struct Streak {
    since: Instant,
    last_line: Instant,
    suppressed: u64,
    reports: u64,
}

/// The state of one repeated failure; see the module docs. Cheap to call on every failure.
#[derive(Debug)]
pub struct FailureLog {
    subject: String,
    interval: Duration,
    streak: Mutex<Option<Streak>>,
}

impl FailureLog {
    /// A log for failures of `subject` (`kafka brokers 127.0.0.1:9092`, `postgres source`).
    pub fn new(subject: impl Into<String>) -> Self {
        Self::with_interval(subject, REPEAT_INTERVAL)
    }

    /// Like [`FailureLog::new`] with another repeat interval.
    pub fn with_interval(subject: impl Into<String>, interval: Duration) -> Self {
        FailureLog {
            subject: subject.into(),
            interval,
            streak: Mutex::new(None),
        }
    }

    /// What it is about.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Whether a failure is going on.
    pub fn failing(&self) -> bool {
        self.lock().is_some()
    }

    /// Note a failure at `now`: what should be logged.
    pub fn report_at(&self, now: Instant) -> Report {
        let mut streak = self.lock();
        match streak.as_mut() {
            None => {
                *streak = Some(Streak {
                    since: now,
                    last_line: now,
                    suppressed: 0,
                    reports: 1,
                });
                Report::Started
            }
            Some(s) => {
                s.reports += 1;
                if now.saturating_duration_since(s.last_line) >= self.interval {
                    s.last_line = now;
                    let suppressed = std::mem::take(&mut s.suppressed);
                    Report::Ongoing {
                        failing_for: now.saturating_duration_since(s.since),
                        suppressed,
                    }
                } else {
                    s.suppressed += 1;
                    Report::Quiet
                }
            }
        }
    }

    /// Note a success at `now`: the failure that ended, if one was going on.
    pub fn recover_at(&self, now: Instant) -> Option<Recovery> {
        self.lock().take().map(|s| Recovery {
            failed_for: now.saturating_duration_since(s.since),
            reports: s.reports,
        })
    }

    /// Note a failure and log it (WARN) when [`FailureLog::report_at`] says so; `buffered` says
    /// what waits meanwhile (called only for a line). Returns whether a line was written.
    pub fn failed(&self, error: impl Display, buffered: impl FnOnce() -> Option<String>) -> bool {
        match self.report_at(Instant::now()) {
            Report::Started => {
                warn!(
                    subject = %self.subject,
                    error = %error,
                    buffered = buffered().as_deref().unwrap_or("-"),
                    "{} failing (repeats are logged at most every {} s until it recovers)",
                    self.subject,
                    self.interval.as_secs()
                );
                true
            }
            Report::Ongoing {
                failing_for,
                suppressed,
            } => {
                warn!(
                    subject = %self.subject,
                    error = %error,
                    failing_for_s = failing_for.as_secs(),
                    suppressed,
                    buffered = buffered().as_deref().unwrap_or("-"),
                    "{} still failing after {} s",
                    self.subject,
                    failing_for.as_secs()
                );
                true
            }
            Report::Quiet => false,
        }
    }

    /// Note a success and log the recovery (INFO) if a failure was going on.
    pub fn recovered(&self) -> bool {
        match self.recover_at(Instant::now()) {
            Some(r) => {
                info!(
                    subject = %self.subject,
                    failed_for_s = r.failed_for.as_secs(),
                    reports = r.reports,
                    "{} recovered after {} s",
                    self.subject,
                    r.failed_for.as_secs()
                );
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Streak>> {
        self.streak.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_failure_gives_one_line_per_interval_then_one_at_recovery() {
        // GIVEN a failure reported every 100 ms for 95 s
        let log = FailureLog::new("kafka brokers");
        let t0 = Instant::now();
        let mut lines = Vec::new();
        for i in 0..950u64 {
            let now = t0 + Duration::from_millis(100 * i);
            match log.report_at(now) {
                Report::Quiet => {}
                r => lines.push((i, r)),
            }
        }
        // THEN a line at the start and one every 30 s, each counting what it folded in
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert_eq!(lines[0], (0, Report::Started));
        assert_eq!(
            lines[1],
            (
                300,
                Report::Ongoing {
                    failing_for: Duration::from_secs(30),
                    suppressed: 299
                }
            )
        );
        assert!(log.failing());
        // AND one at the recovery, none after it, and a new failure starts a new streak
        let r = log.recover_at(t0 + Duration::from_secs(95)).unwrap();
        assert_eq!(r.failed_for, Duration::from_secs(95));
        assert_eq!(r.reports, 950);
        assert_eq!(log.recover_at(t0 + Duration::from_secs(96)), None);
        assert_eq!(log.report_at(t0 + Duration::from_secs(97)), Report::Started);
    }
}
