//! One error type for connectors and the runtime, classified for retry in one place.
//!
//! Every error carries an [`ErrorKind`] that says who is at fault and whether restarting the pipeline
//! from the last durable position can help ([`Error::is_retryable`]), a message that names what was
//! wrong and where (config key path, table, column), an optional hint for the operator, and the
//! underlying cause, kept attached as [`std::error::Error::source`].

use std::fmt;
use std::sync::Arc;

/// A boxed error cause, kept attached to an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, at the granularity that decides what the runtime does about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The configuration is invalid (bad value, unknown key, missing key). Fatal.
    Config,
    /// A network connection could not be made or was lost. Retryable.
    Connection,
    /// An operation timed out. Retryable.
    Timeout,
    /// A local or remote I/O error that may go away (disk full, broken pipe). Retryable.
    Io,
    /// The remote side is temporarily unable to serve (broker not available, too many connections,
    /// lock timeout, serialization failure). Retryable.
    Unavailable,
    /// Credentials were rejected. Fatal: an operator must fix them.
    Authentication,
    /// The user lacks a privilege (REPLICATION, SELECT, topic ACL). Fatal.
    Permission,
    /// A precondition on the remote system does not hold (`wal_level`, `binlog_format`, a missing
    /// topic, a missing table). Fatal, with a hint.
    Precondition,
    /// The data cannot be carried on: tied to the data itself, so retrying cannot help (binlog purged,
    /// incompatible schema change, a message larger than the broker accepts). Fatal.
    Data,
    /// The remote side spoke a protocol we did not expect. Fatal.
    Protocol,
    /// Another instance took over (a fenced transactional producer, a slot in use). Fatal.
    Fenced,
    /// A bug in `cdc` or a connector. Fatal.
    Internal,
}

impl ErrorKind {
    /// Whether a restart from the last durable position may succeed. The one place this is decided.
    pub fn is_retryable(self) -> bool {
        match self {
            ErrorKind::Connection | ErrorKind::Timeout | ErrorKind::Io | ErrorKind::Unavailable => {
                true
            }
            ErrorKind::Config
            | ErrorKind::Authentication
            | ErrorKind::Permission
            | ErrorKind::Precondition
            | ErrorKind::Data
            | ErrorKind::Protocol
            | ErrorKind::Fenced
            | ErrorKind::Internal => false,
        }
    }

    /// A short lower-case name, used in logs and as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::Connection => "connection",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Io => "io",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Authentication => "authentication",
            ErrorKind::Permission => "permission",
            ErrorKind::Precondition => "precondition",
            ErrorKind::Data => "data",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Fenced => "fenced",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an error happened, where the code that makes it knows more than its [`ErrorKind`] and
/// another part acts on it. Decided from the server's error code or our own check, never from the
/// message text, so rewording a message changes no behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The position to resume from is no longer on the server (a purged binlog, an unknown GTID,
    /// WAL removed before the slot read it). With `snapshot: when_needed` a source takes a new
    /// snapshot instead of failing.
    PositionPurged,
}

/// The error type of `cdc`: a kind, a message, an optional operator hint and the attached cause.
///
/// It is [`Clone`] (the cause is shared) so that a retry loop or a sink failing several
/// acknowledgements with one cause keeps the same error, kind and cause chain included.
#[derive(Clone, thiserror::Error)]
pub struct Error {
    kind: ErrorKind,
    reason: Option<Reason>,
    message: String,
    hint: Option<String>,
    #[source]
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// A new error of `kind` with a message that says what was wrong and where.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            reason: None,
            message: message.into(),
            hint: None,
            source: None,
        }
    }

    /// A configuration error.
    pub fn config(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config, message)
    }

    /// An internal error (a bug).
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, message)
    }

    /// Attach the underlying cause.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(Arc::from(source.into()));
        self
    }

    /// Say why, for a caller that acts on it (see [`Reason`]).
    pub fn with_reason(mut self, reason: Reason) -> Self {
        self.reason = Some(reason);
        self
    }

    /// Why, when the code that made the error said so.
    pub fn reason(&self) -> Option<Reason> {
        self.reason
    }

    /// Attach a hint telling the operator how to fix it.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Prefix the message with more context (`"table public.orders: " + message`).
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// The kind, which decides retry.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message without the cause chain.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The operator hint, if any.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// Whether restarting the pipeline from the last durable position may help.
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }

    /// The message followed by each cause in the chain, then the hint: what an operator reads.
    pub fn report(&self) -> String {
        let mut out = self.message.clone();
        let mut cause: Option<&(dyn std::error::Error + 'static)> =
            self.source.as_deref().map(|e| e as _);
        while let Some(c) = cause {
            let text = c.to_string();
            if !out.contains(&text) {
                out.push_str(": ");
                out.push_str(&text);
            }
            cause = c.source();
        }
        if let Some(hint) = &self.hint {
            out.push_str("\n  hint: ");
            out.push_str(hint);
        }
        out
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} error: {}", self.kind, self.report())
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let kind = match e.kind() {
            K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::NotConnected
            | K::BrokenPipe
            | K::UnexpectedEof => ErrorKind::Connection,
            K::TimedOut | K::WouldBlock => ErrorKind::Timeout,
            K::PermissionDenied => ErrorKind::Permission,
            _ => ErrorKind::Io,
        };
        Error::new(kind, "I/O error").with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_classification_lives_in_one_place() {
        assert!(Error::new(ErrorKind::Connection, "x").is_retryable());
        assert!(Error::new(ErrorKind::Timeout, "x").is_retryable());
        assert!(!Error::config("x").is_retryable());
        assert!(!Error::new(ErrorKind::Data, "binlog purged").is_retryable());
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        assert!(Error::from(io).is_retryable());
    }

    #[test]
    fn a_clone_keeps_kind_reason_hint_and_cause() {
        let e = Error::new(ErrorKind::Data, "cannot resume")
            .with_reason(Reason::PositionPurged)
            .with_source(std::io::Error::other("file gone"))
            .with_hint("take a new snapshot");
        let copy = e.clone();
        assert_eq!(copy.kind(), ErrorKind::Data);
        assert_eq!(copy.reason(), Some(Reason::PositionPurged));
        assert_eq!(copy.hint(), Some("take a new snapshot"));
        assert_eq!(copy.report(), e.report());
        assert!(std::error::Error::source(&copy).is_some());
        assert_eq!(Error::config("x").reason(), None);
    }

    #[test]
    fn report_keeps_the_cause_and_hint() {
        let cause = std::io::Error::other("disk on fire");
        let e = Error::new(ErrorKind::Io, "writing offsets to ./x")
            .with_source(cause)
            .with_hint("free some space");
        let r = e.report();
        assert!(r.contains("writing offsets to ./x: disk on fire"), "{r}");
        assert!(r.contains("hint: free some space"), "{r}");
        assert!(std::error::Error::source(&e).is_some());
    }
}
