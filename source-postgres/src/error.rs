//! Mapping PostgreSQL and I/O errors into [`connector_core::Error`], classified for retry by
//! SQLSTATE in one place, with the cause kept attached and a hint where the operator can act.

use std::fmt;

use connector_core::{Error, ErrorKind};

/// An error reported by the server (an `ErrorResponse`), from our replication transport.
#[derive(Debug, Clone, Default)]
pub struct ServerError {
    /// `ERROR`, `FATAL`, `PANIC`.
    pub severity: String,
    /// The SQLSTATE.
    pub code: String,
    /// The primary message.
    pub message: String,
    /// The detail, if any.
    pub detail: Option<String>,
    /// The server's hint, if any.
    pub hint: Option<String>,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} (SQLSTATE {})",
            self.severity, self.message, self.code
        )?;
        if let Some(d) = &self.detail {
            write!(f, "; detail: {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ServerError {}

/// The kind of a server error, by SQLSTATE alone: a reworded server message changes no retry
/// decision (the message only picks a hint, see `hint_for`).
pub fn kind_for_sqlstate(code: &str) -> ErrorKind {
    match code {
        "28P01" | "28000" => ErrorKind::Authentication,
        "42501" => ErrorKind::Permission,
        // object_in_use: the slot is active for another (possibly our previous, dying) walsender.
        "55006" => ErrorKind::Unavailable,
        "53300" => ErrorKind::Unavailable,
        "57014" => ErrorKind::Timeout,
        "40001" | "40P01" | "55P03" => ErrorKind::Unavailable,
        "57P01" | "57P02" | "57P03" => ErrorKind::Connection,
        _ if code.starts_with("08") => ErrorKind::Connection,
        _ if code.starts_with("58") => ErrorKind::Io,
        _ if code.starts_with("22") => ErrorKind::Data,
        _ if code.starts_with("XX") => ErrorKind::Internal,
        _ => ErrorKind::Precondition,
    }
}

/// A hint for errors an operator can fix.
fn hint_for(code: &str, message: &str) -> Option<String> {
    let hint = match code {
        "28P01" | "28000" => {
            "check the user and password (`source.password`, `source.password_file` or \
             CDC_SOURCE__PASSWORD) and the server's pg_hba.conf entry for this host, including a \
             `replication` line for replication connections"
        }
        "42501" if message.contains("replication") => {
            "grant the REPLICATION attribute: ALTER ROLE <user> REPLICATION (on RDS: GRANT \
             rds_replication TO <user>)"
        }
        "42501" => "grant the missing privilege (e.g. GRANT SELECT ON <table> TO <user>)",
        "53400" if message.contains("replication slot") => {
            "all replication slots are in use: drop unused slots (pg_drop_replication_slot) or \
             raise max_replication_slots"
        }
        "53300" if message.contains("wal_sender") || message.contains("standby") => {
            "too many WAL senders: raise max_wal_senders or stop other replication clients"
        }
        "55006" => {
            "the replication slot is in use by another connection; stop the other consumer \
             (see pg_stat_replication) or configure another `source.slot`"
        }
        "3D000" => "the database does not exist: check `source.database` or the URL",
        _ if message.contains("wal_level") => {
            "set `wal_level = logical` in postgresql.conf (ALTER SYSTEM SET wal_level = logical) \
             and restart PostgreSQL"
        }
        _ => return None,
    };
    Some(hint.to_string())
}

/// An error from our replication transport's `ErrorResponse`.
pub fn server_error(e: ServerError, context: impl fmt::Display) -> Error {
    let kind = kind_for_sqlstate(&e.code);
    let hint = hint_for(&e.code, &e.message).or_else(|| e.hint.clone());
    let mut err = Error::new(kind, format!("{context}: {}", e.message)).with_source(e);
    if let Some(h) = hint {
        err = err.with_hint(h);
    }
    err
}

/// An error from `tokio-postgres`, with context naming what was being done.
pub fn pg_error(e: tokio_postgres::Error, context: impl fmt::Display) -> Error {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code().to_string();
        let message = db.message().to_string();
        let kind = kind_for_sqlstate(&code);
        let hint = hint_for(&code, &message).or_else(|| db.hint().map(str::to_string));
        let mut err = Error::new(kind, format!("{context}: {message}")).with_source(e);
        if let Some(h) = hint {
            err = err.with_hint(h);
        }
        return err;
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    if text.contains("certificate") {
        return Error::new(ErrorKind::Precondition, format!("{context}: {text}"))
            .with_source(e)
            .with_hint(
                "the server's TLS certificate was not accepted: set `source.sslrootcert` to the \
                 CA that signed it, or use `source.sslmode: require` (encrypted, not verified)",
            );
    }
    let kind = if text.contains("password missing") || text.contains("authentication") {
        ErrorKind::Authentication
    } else if text.contains("timed out") || text.contains("timeout") {
        ErrorKind::Timeout
    } else {
        ErrorKind::Connection
    };
    let mut err = Error::new(kind, format!("{context}: {text}")).with_source(e);
    if kind == ErrorKind::Authentication {
        err = err.with_hint(hint_for("28P01", "").unwrap_or_default());
    }
    err
}

/// An I/O error on a connection (connection kinds are retryable).
pub fn io_error(e: std::io::Error, context: impl fmt::Display) -> Error {
    let kind = Error::from(std::io::Error::new(e.kind(), "")).kind();
    Error::new(kind, format!("{context}: {e}")).with_source(e)
}

/// The server spoke something we did not expect.
pub fn protocol_error(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Protocol, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_are_classified() {
        assert_eq!(kind_for_sqlstate("28P01"), ErrorKind::Authentication);
        assert_eq!(kind_for_sqlstate("42501"), ErrorKind::Permission);
        assert_eq!(kind_for_sqlstate("08006"), ErrorKind::Connection);
        assert!(kind_for_sqlstate("55006").is_retryable());
        assert_eq!(kind_for_sqlstate("55000"), ErrorKind::Precondition);
        let e = server_error(
            ServerError {
                code: "55000".into(),
                message: "logical decoding requires wal_level >= logical".into(),
                ..ServerError::default()
            },
            "creating slot s",
        );
        assert!(e.hint().unwrap().contains("wal_level = logical"));
        assert!(e.message().starts_with("creating slot s: "));
    }

    #[test]
    fn retry_follows_the_sqlstate_whatever_the_message_says() {
        let server = |code: &str, message: &str| {
            server_error(
                ServerError {
                    code: code.into(),
                    message: message.into(),
                    ..ServerError::default()
                },
                "x",
            )
        };
        // A serialization failure is retried even if its text mentions a fatal-sounding cause.
        assert!(server("40001", "password authentication failed").is_retryable());
        // An authentication failure is fatal even if its text sounds transient.
        let auth = server("28P01", "connection timed out, try again");
        assert_eq!(auth.kind(), ErrorKind::Authentication);
        assert!(!auth.is_retryable());
        // Admin shutdown (57P01) and connection failures (08xxx) are retried.
        assert!(server("57P01", "").is_retryable());
        assert!(server("08001", "").is_retryable());
        // Data errors (22xxx) and internal errors (XX000) are not.
        assert!(!server("22P02", "").is_retryable());
        assert!(!server("XX000", "").is_retryable());
    }
}
