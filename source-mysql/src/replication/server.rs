//! Server facts: connecting and running statements, and probing the server for its version
//! and family, binlog position, executed GTID set and collations.

use std::time::Duration;

use connector_core::{Error, ErrorKind, Result};
use mysql_async::Conn;

use crate::config::Settings;
use crate::error::classify;
use crate::position::BinlogPosition;
use crate::schema::Collations;
/// Re-exported: the statement helpers live in [`crate::sql`], so that modules this one uses
/// (such as `xa`) can run statements without importing `replication`.
pub use crate::sql::{exec, query};

/// Which server family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// MariaDB.
    MariaDb,
    /// MySQL (and Percona).
    MySql,
}

/// What `SELECT VERSION()` said.
#[derive(Clone, Debug)]
pub struct ServerInfo {
    /// Family.
    pub flavor: Flavor,
    /// The version string.
    pub version: String,
    /// (major, minor, patch).
    pub numbers: (u16, u16, u16),
}

impl ServerInfo {
    /// Parse a `VERSION()` string.
    pub fn parse(version: &str) -> Self {
        let flavor = if version.to_ascii_lowercase().contains("mariadb") {
            Flavor::MariaDb
        } else {
            Flavor::MySql
        };
        let mut nums = version
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<u16>().unwrap_or(0));
        let numbers = (
            nums.next().unwrap_or(0),
            nums.next().unwrap_or(0),
            nums.next().unwrap_or(0),
        );
        ServerInfo {
            flavor,
            version: version.to_string(),
            numbers,
        }
    }

    /// The statement that shows the current binlog file and position.
    pub fn binlog_status_sql(&self) -> &'static str {
        if self.flavor == Flavor::MySql && self.numbers >= (8, 2, 0) {
            "SHOW BINARY LOG STATUS"
        } else {
            "SHOW MASTER STATUS"
        }
    }
}

/// Connect with the settings' options, within the connect timeout.
pub async fn connect(settings: &Settings) -> Result<Conn> {
    let timeout = Duration::from_millis(settings.config.connect_timeout_ms);
    let what = || format!("connecting to MySQL at {}", settings.address);
    let conn = tokio::time::timeout(timeout, Conn::new(settings.opts.clone()))
        .await
        .map_err(|_| {
            Error::new(
                ErrorKind::Timeout,
                format!("{}: no answer within {} ms", what(), timeout.as_millis()),
            )
        })?
        .map_err(|e| classify(e, &what()))?;
    Ok(conn)
}

/// The server's version and family.
pub async fn server_info(conn: &mut Conn) -> Result<ServerInfo> {
    let v: Vec<String> = query(conn, "SELECT VERSION()").await?;
    Ok(ServerInfo::parse(
        v.first().map(String::as_str).unwrap_or(""),
    ))
}

/// The current end of the binlog with its GTID set (MariaDB `gtid_binlog_pos`, MySQL
/// `gtid_executed`).
pub async fn current_position(conn: &mut Conn, info: &ServerInfo) -> Result<BinlogPosition> {
    let rows: Vec<mysql_async::Row> = query(conn, info.binlog_status_sql()).await?;
    let Some(row) = rows.first() else {
        return Err(Error::new(
            ErrorKind::Precondition,
            "the binary log is disabled on the server",
        )
        .with_hint("start the server with log_bin (and binlog_format=ROW)"));
    };
    let file: String = row.get(0).unwrap_or_default();
    let pos: u64 = row.get(1).unwrap_or(4);
    let gtids = gtid_executed(conn, info).await?;
    Ok(BinlogPosition::new(file, pos, gtids))
}

/// The executed GTID set, when the server has GTIDs.
pub async fn gtid_executed(conn: &mut Conn, info: &ServerInfo) -> Result<Option<String>> {
    Ok(match info.flavor {
        Flavor::MariaDb => {
            let v: Vec<Option<String>> = query(conn, "SELECT @@GLOBAL.gtid_binlog_pos").await?;
            Some(v.into_iter().flatten().next().unwrap_or_default())
        }
        Flavor::MySql => {
            let mode: Vec<Option<String>> = query(conn, "SELECT @@GLOBAL.gtid_mode").await?;
            if mode.into_iter().flatten().next().as_deref() == Some("ON") {
                let v: Vec<Option<String>> = query(conn, "SELECT @@GLOBAL.gtid_executed").await?;
                Some(
                    v.into_iter()
                        .flatten()
                        .next()
                        .unwrap_or_default()
                        .replace(['\n', ' '], ""),
                )
            } else {
                None
            }
        }
    })
}

/// Collations from the server, over the built-in table.
pub async fn load_collations(conn: &mut Conn) -> Result<Collations> {
    let mut c = Collations::default();
    let rows: Vec<(u64, String)> = query(
        conn,
        "SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS WHERE ID IS NOT NULL",
    )
    .await?;
    for (id, cs) in rows {
        c.insert(id as u16, &cs);
    }
    Ok(c)
}
