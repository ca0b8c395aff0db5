//! Classification of driver and server errors into [`connector_core::Error`] kinds: the one place
//! that decides what is retried.

use connector_core::{Error, ErrorKind, Reason};

/// Server error codes this source treats specially.
pub mod code {
    /// `ER_ACCESS_DENIED_ERROR`.
    pub const ACCESS_DENIED: u16 = 1045;
    /// `ER_DBACCESS_DENIED_ERROR`.
    pub const DB_ACCESS_DENIED: u16 = 1044;
    /// `ER_SPECIFIC_ACCESS_DENIED_ERROR`.
    pub const SPECIFIC_ACCESS_DENIED: u16 = 1227;
    /// `ER_TABLEACCESS_DENIED_ERROR`.
    pub const TABLE_ACCESS_DENIED: u16 = 1142;
    /// `ER_MASTER_FATAL_ERROR_READING_BINLOG`: purged binlog, unknown GTID, bad position.
    pub const FATAL_READING_BINLOG: u16 = 1236;
    /// `ER_CON_COUNT_ERROR`.
    pub const TOO_MANY_CONNECTIONS: u16 = 1040;
    /// `ER_LOCK_WAIT_TIMEOUT`.
    pub const LOCK_WAIT_TIMEOUT: u16 = 1205;
    /// `ER_LOCK_DEADLOCK`.
    pub const DEADLOCK: u16 = 1213;
    /// `ER_SERVER_SHUTDOWN`.
    pub const SERVER_SHUTDOWN: u16 = 1053;
    /// `ER_QUERY_INTERRUPTED`.
    pub const QUERY_INTERRUPTED: u16 = 1317;
    /// `ER_CONNECTION_KILLED`.
    pub const CONNECTION_KILLED: u16 = 1927;
    /// `ER_NO_SUCH_TABLE`.
    pub const NO_SUCH_TABLE: u16 = 1146;
    /// `ER_BAD_DB_ERROR`.
    pub const BAD_DB: u16 = 1049;
}

/// The hint for a purged binlog.
pub const PURGED_HINT: &str = "the binlog needed to resume was purged (PURGE BINARY LOGS, \
    binlog_expire_logs_seconds / expire_logs_days): raise binlog_expire_logs_seconds so the \
    binlog outlives downtime, then reset the offsets (`cdc offsets reset`) to take a new \
    snapshot, or set `snapshot: when_needed` to do that automatically";

/// The server error code of a driver error, if it is one.
pub fn server_code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s) => Some(s.code),
        _ => None,
    }
}

/// Classify a driver error; `what` says what was being done (`reading the binlog`).
pub fn classify(e: mysql_async::Error, what: &str) -> Error {
    use mysql_async::Error as E;
    let (kind, hint) = match &e {
        E::Io(_) => (ErrorKind::Connection, None),
        E::Driver(d) => match d {
            mysql_async::DriverError::ConnectionClosed
            | mysql_async::DriverError::PoolDisconnected => (ErrorKind::Connection, None),
            _ => (ErrorKind::Protocol, None),
        },
        E::Server(s) => match s.code {
            code::ACCESS_DENIED => (
                ErrorKind::Authentication,
                Some("check `user`/`password` (or `password_file`, `CDC_SOURCE__PASSWORD`)"),
            ),
            code::DB_ACCESS_DENIED | code::SPECIFIC_ACCESS_DENIED | code::TABLE_ACCESS_DENIED => (
                ErrorKind::Permission,
                Some(
                    "GRANT SELECT, RELOAD, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO the \
                     user (MariaDB: also BINLOG MONITOR)",
                ),
            ),
            code::FATAL_READING_BINLOG => (ErrorKind::Data, Some(PURGED_HINT)),
            code::TOO_MANY_CONNECTIONS
            | code::LOCK_WAIT_TIMEOUT
            | code::DEADLOCK
            | code::SERVER_SHUTDOWN
            | code::QUERY_INTERRUPTED
            | code::CONNECTION_KILLED => (ErrorKind::Unavailable, None),
            code::NO_SUCH_TABLE | code::BAD_DB => (ErrorKind::Precondition, None),
            _ => (ErrorKind::Unavailable, None),
        },
        E::Url(_) => (ErrorKind::Config, None),
        E::Other(_) => (ErrorKind::Internal, None),
    };
    let purged = server_code(&e) == Some(code::FATAL_READING_BINLOG);
    let mut err = Error::new(kind, what.to_string()).with_source(e);
    if purged {
        err = err.with_reason(Reason::PositionPurged);
    }
    if let Some(h) = hint {
        err = err.with_hint(h);
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_retryable_and_purged_binlogs_are_not() {
        let io = mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        )));
        assert!(classify(io, "x").is_retryable());
        let purged = mysql_async::Error::Server(mysql_async::ServerError {
            code: code::FATAL_READING_BINLOG,
            message: "Could not find first log file name in binary log index file".into(),
            state: "HY000".into(),
        });
        let e = classify(purged, "reading the binlog");
        assert_eq!(e.kind(), ErrorKind::Data);
        assert!(e.hint().unwrap().contains("binlog_expire_logs_seconds"));
        assert_eq!(e.reason(), Some(Reason::PositionPurged));
    }

    #[test]
    fn the_purged_reason_comes_from_the_server_code_not_the_message() {
        // GIVEN a server error whose message talks about a purged binlog but whose code does not
        let other = mysql_async::Error::Server(mysql_async::ServerError {
            code: code::LOCK_WAIT_TIMEOUT,
            message: "binlog file is no longer on the server".into(),
            state: "HY000".into(),
        });
        // THEN it is not a purged position, and stays retryable
        let e = classify(other, "reading the binlog");
        assert_eq!(e.reason(), None);
        assert!(e.is_retryable());
        // AND a 1236 with any wording is one
        let reworded = mysql_async::Error::Server(mysql_async::ServerError {
            code: code::FATAL_READING_BINLOG,
            message: "some future wording".into(),
            state: "HY000".into(),
        });
        assert_eq!(
            classify(reworded, "x").reason(),
            Some(Reason::PositionPurged)
        );
    }
}
