//! `source: { type: postgres, ... }`: the configuration, its defaults and validation.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use connector_core::incremental::IncrementalSettings;
use connector_core::{ConfigSection, ConnectorType, Error, Result, Secret};
use serde::Deserialize;

/// Default port.
pub const DEFAULT_PORT: u16 = 5432;
/// Default host when neither `url` nor `host` gives one.
pub const DEFAULT_HOST: &str = "localhost";
/// Default number of connections reading snapshot chunks in parallel.
pub const DEFAULT_SNAPSHOT_PARALLELISM: usize = 2;
/// Default rows per snapshot chunk (a chunk is a range of heap blocks sized to hold about this
/// many rows).
pub const DEFAULT_SNAPSHOT_CHUNK_ROWS: u64 = 100_000;
/// Default interval between standby status updates sent to the server.
pub const DEFAULT_STATUS_INTERVAL_MS: u64 = 10_000;
/// Default heartbeat interval: 0, no heartbeat.
pub const DEFAULT_HEARTBEAT_INTERVAL_MS: u64 = 0;
/// Default interval between samples of the slot's lag (`cdc_source_lag_bytes`).
pub const DEFAULT_LAG_INTERVAL_MS: u64 = 10_000;
/// Default most events in one batch.
pub const DEFAULT_BATCH_SIZE: usize = 4_096;
/// Default most estimated bytes in one batch. 2 MiB: the reader queues a few batches ahead of the
/// pipeline's in-flight bound, so larger batches of wide rows held tens of MB more, at no gain
/// in speed (BENCHMARKS.md).
pub const DEFAULT_MAX_BATCH_BYTES: usize = 2 * 1024 * 1024;
/// Default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;
/// Logical message prefix of the built-in heartbeat (never emitted as an event).
pub const HEARTBEAT_PREFIX: &str = "cdc_heartbeat";

/// When to read the existing rows of the tables.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotMode {
    /// Snapshot when there is no stored position, then stream (default).
    #[default]
    Initial,
    /// Never snapshot; stream from the slot's position.
    Never,
    /// Snapshot, then finish without streaming.
    InitialOnly,
    /// Snapshot when there is no stored position or the slot is gone, then stream.
    WhenNeeded,
    /// Stream at once, and snapshot every table incrementally (in chunks, between watermarks)
    /// while streaming, when there is no stored position. PostgreSQL 14+.
    Incremental,
}

/// TLS use, as libpq's `sslmode`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, without certificate verification (default, as libpq).
    #[default]
    Prefer,
    /// TLS required; the certificate is verified only when `sslrootcert` is given (as libpq).
    Require,
    /// TLS with the certificate chain verified, not the host name.
    VerifyCa,
    /// TLS with the certificate chain and the host name verified.
    VerifyFull,
}

/// `source: { type: postgres, ... }`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// Always `postgres`.
    #[serde(rename = "type")]
    pub kind: ConnectorType,
    /// Connection URL, `postgres://user[:password]@host[:port]/database[?sslmode=...]`. The
    /// separate keys below override its parts.
    #[serde(default)]
    pub url: Option<DbUrl>,
    /// Server host name or address. Default `localhost`.
    #[serde(default)]
    pub host: Option<String>,
    /// Server port. Default 5432.
    #[serde(default)]
    pub port: Option<u16>,
    /// User name (needs the REPLICATION attribute and SELECT on the tables).
    #[serde(default)]
    pub user: Option<String>,
    /// Password; also from the environment as `CDC_SOURCE__PASSWORD`. Never logged.
    #[serde(default)]
    pub password: Option<Secret>,
    /// A file whose first line is the password (used when `password` is not set).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Database name. Default: the user name.
    #[serde(default)]
    pub database: Option<String>,
    /// TLS: `disable`, `prefer` (default), `require`, `verify-ca` or `verify-full`.
    #[serde(default)]
    pub sslmode: Option<SslMode>,
    /// PEM file of the certificate authorities to trust (default: the Mozilla roots).
    #[serde(default)]
    pub sslrootcert: Option<PathBuf>,
    /// Tables to capture: exact `schema.table` names and patterns where `*` matches any
    /// characters and `?` one (`public.*`, `app.order_*`). Resolved against the catalog at start.
    #[serde(default)]
    pub tables: Vec<String>,
    /// Publication to stream from; created for `tables` when missing, checked when present.
    /// Default `<pipeline name>_pub`, lower-cased, other characters than `[a-z0-9_]` as `_`.
    #[serde(default)]
    pub publication: Option<String>,
    /// Create the publication `FOR ALL TABLES` (needs superuser) instead of for `tables`; with an
    /// empty `tables`, every table is captured.
    #[serde(default)]
    pub publication_all_tables: bool,
    /// Logical replication slot name. Default: the pipeline name, lower-cased, other characters
    /// than `[a-z0-9_]` as `_`.
    #[serde(default)]
    pub slot: Option<String>,
    /// Snapshot mode: `initial` (default), `never`, `initial_only`, `when_needed` or
    /// `incremental`.
    #[serde(default)]
    pub snapshot: SnapshotMode,
    /// Connections reading snapshot chunks in parallel, sharing one exported snapshot. Default 2.
    #[serde(default = "default_snapshot_parallelism")]
    pub snapshot_parallelism: usize,
    /// About how many rows one snapshot chunk holds. Default 100000.
    #[serde(default = "default_snapshot_chunk_rows")]
    pub snapshot_chunk_rows: u64,
    /// Interval between standby status updates (the released position and liveness), in
    /// milliseconds. Sent by a task of its own, so a slow sink never starves them; made shorter
    /// automatically when `wal_sender_timeout` is shorter. Default 10000.
    #[serde(default = "default_status_interval_ms")]
    pub status_interval_ms: u64,
    /// Set the server's `wal_sender_timeout` for this pipeline's replication connection, in
    /// milliseconds (default: the server's setting).
    #[serde(default)]
    pub wal_sender_timeout_ms: Option<u64>,
    /// Interval between heartbeats, in milliseconds; 0 (default) disables them. A heartbeat runs
    /// `heartbeat_action_query`, or else emits a non-transactional logical message with prefix
    /// `cdc_heartbeat` (never delivered as an event) so that the slot advances even when this
    /// database writes nothing.
    #[serde(default = "default_heartbeat_interval_ms")]
    pub heartbeat_interval_ms: u64,
    /// SQL run at each heartbeat instead of the logical message, e.g.
    /// `INSERT INTO cdc_heartbeat (id, ts) VALUES (1, now()) ON CONFLICT (id) DO UPDATE SET ts = now()`.
    #[serde(default)]
    pub heartbeat_action_query: Option<String>,
    /// Interval between samples of the slot's lag behind the server's WAL
    /// (`cdc_source_lag_bytes`), in milliseconds; 0 disables sampling. Default 10000.
    #[serde(default = "default_lag_interval_ms")]
    pub lag_interval_ms: u64,
    /// Most events in one batch. Default 4096.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Most estimated bytes of events in one batch (a single larger row still makes a batch of
    /// its own). Default 2097152.
    #[serde(default = "default_max_batch_bytes")]
    pub max_batch_bytes: usize,
    /// Timeout for establishing a connection, in milliseconds. Default 10000.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Debezium's signalling table, `schema.table` with the columns `id varchar primary key,
    /// type varchar, data text`: a row inserted there is a signal (`execute-snapshot`,
    /// `stop-snapshot`, `pause-snapshot`, `resume-snapshot`). It is added to the publication
    /// (it need not be in `tables`) and its rows are never emitted. Needs PostgreSQL 14+.
    #[serde(default)]
    pub signal_table: Option<String>,
    /// A Kafka topic of Debezium signal records: not supported by this source yet.
    #[serde(default)]
    pub signal_topic: Option<String>,
    /// Rows per incremental snapshot chunk. Default 1024 (Debezium's).
    #[serde(default = "connector_core::incremental::settings::default_snapshot_chunk_size")]
    pub snapshot_chunk_size: usize,
    /// Snapshot incrementally, on start, tables of `tables` not captured before. Default true.
    #[serde(default = "connector_core::incremental::settings::default_snapshot_new_tables")]
    pub snapshot_new_tables: bool,
}

fn default_snapshot_parallelism() -> usize {
    DEFAULT_SNAPSHOT_PARALLELISM
}
fn default_snapshot_chunk_rows() -> u64 {
    DEFAULT_SNAPSHOT_CHUNK_ROWS
}
fn default_status_interval_ms() -> u64 {
    DEFAULT_STATUS_INTERVAL_MS
}
fn default_heartbeat_interval_ms() -> u64 {
    DEFAULT_HEARTBEAT_INTERVAL_MS
}
fn default_lag_interval_ms() -> u64 {
    DEFAULT_LAG_INTERVAL_MS
}
fn default_batch_size() -> usize {
    DEFAULT_BATCH_SIZE
}
fn default_max_batch_bytes() -> usize {
    DEFAULT_MAX_BATCH_BYTES
}
fn default_connect_timeout_ms() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_MS
}

/// A connection URL; its `Debug` form hides the password.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct DbUrl(pub String);

impl std::fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.0;
        // postgres://user:password@host -> postgres://user:***@host
        if let (Some(scheme), Some(at)) = (s.find("://"), s.rfind('@')) {
            let auth = &s[scheme + 3..at];
            if let Some(colon) = auth.find(':') {
                return write!(f, "\"{}:***{}\"", &s[..scheme + 3 + colon], &s[at..]);
            }
        }
        write!(f, "{s:?}")
    }
}

/// Where and how to connect, resolved from `url` and the separate keys.
#[derive(Clone)]
pub struct ConnInfo {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User.
    pub user: String,
    /// Password, if any.
    pub password: Option<Secret>,
    /// Database.
    pub database: String,
    /// TLS mode.
    pub sslmode: SslMode,
    /// CA file.
    pub sslrootcert: Option<PathBuf>,
    /// Connect timeout.
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for ConnInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl ConnInfo {
    /// `postgres://user@host:port/database`, without the password, for logs and messages.
    pub fn redacted(&self) -> String {
        format!(
            "postgres://{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }
}

/// A validated configuration with names resolved.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The raw configuration.
    pub config: PostgresConfig,
    /// Connection parameters.
    pub conn: ConnInfo,
    /// Publication name.
    pub publication: String,
    /// Slot name.
    pub slot: String,
    /// Pipeline name.
    pub pipeline: Arc<str>,
}

/// Lower-case, `[a-z0-9_]` only, at most 63 bytes: a safe default slot/publication name.
pub fn sanitize_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        s.push_str("cdc");
    }
    s.truncate(63);
    s
}

/// Remove `sslmode` and `sslrootcert` from a URL's query (tokio-postgres does not know
/// `verify-full`), returning them.
fn split_ssl_params(url: &str) -> (String, Option<String>, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None, None);
    };
    let (mut mode, mut root) = (None, None);
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| {
            if let Some(v) = kv.strip_prefix("sslmode=") {
                mode = Some(v.to_string());
                false
            } else if let Some(v) = kv.strip_prefix("sslrootcert=") {
                root = Some(v.to_string());
                false
            } else {
                !kv.is_empty()
            }
        })
        .collect();
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, mode, root)
}

impl PostgresConfig {
    /// Parse the section.
    pub fn from_section(section: &ConfigSection) -> Result<Self> {
        section.extract()
    }

    /// The shared incremental snapshot keys.
    pub fn incremental(&self) -> IncrementalSettings {
        IncrementalSettings {
            signal_table: self.signal_table.clone(),
            signal_topic: self.signal_topic.clone(),
            snapshot_chunk_size: self.snapshot_chunk_size,
            snapshot_new_tables: self.snapshot_new_tables,
        }
    }

    /// Check values and resolve connection parameters and names. Errors name the key.
    pub fn validate(self, pipeline: &str) -> Result<Settings> {
        let key = |k: &str| format!("key `source.{k}`");
        if self.tables.is_empty() && !self.publication_all_tables {
            return Err(Error::config(format!(
                "{}: expected at least one table (`schema.table` or a pattern like `public.*`), \
                 or `publication_all_tables: true`",
                key("tables")
            )));
        }
        for (i, t) in self.tables.iter().enumerate() {
            let ok = t
                .split_once('.')
                .is_some_and(|(s, n)| !s.is_empty() && !n.is_empty());
            if !ok {
                return Err(Error::config(format!(
                    "{}: {t:?} is not of the form `schema.table` (patterns: `public.*`)",
                    key(&format!("tables[{i}]"))
                )));
            }
        }
        for (name, v) in [
            ("snapshot_parallelism", self.snapshot_parallelism as u64),
            ("snapshot_chunk_rows", self.snapshot_chunk_rows),
            ("batch_size", self.batch_size as u64),
            ("status_interval_ms", self.status_interval_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
        ] {
            if v == 0 {
                return Err(Error::config(format!("{}: expected at least 1", key(name))));
            }
        }
        if self.snapshot_parallelism > 16 {
            return Err(Error::config(format!(
                "{}: {} is too many: expected 1 to 16",
                key("snapshot_parallelism"),
                self.snapshot_parallelism
            )));
        }
        if self.max_batch_bytes < 1024 {
            return Err(Error::config(format!(
                "{}: expected at least 1024",
                key("max_batch_bytes")
            )));
        }
        if self.heartbeat_action_query.is_some() && self.heartbeat_interval_ms == 0 {
            return Err(Error::config(format!(
                "{}: set `source.heartbeat_interval_ms` too, or the query never runs",
                key("heartbeat_action_query")
            )));
        }
        for (name, v) in [("slot", &self.slot), ("publication", &self.publication)] {
            if let Some(v) = v {
                if v.is_empty() || v.len() > 63 || v.contains('"') {
                    return Err(Error::config(format!(
                        "{}: {v:?} is not a valid name: expected 1 to 63 characters, no `\"`",
                        key(name)
                    )));
                }
            }
        }
        if let Some(slot) = &self.slot {
            if !slot
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                return Err(Error::config(format!(
                    "{}: {slot:?}: slot names may contain only lower-case letters, digits and `_`",
                    key("slot")
                )));
            }
        }

        self.incremental().validate("source")?;
        if self.signal_topic.is_some() {
            return Err(Error::config(format!(
                "{}: a Kafka signal channel is not supported by the PostgreSQL source yet; use \
                 `source.signal_table`",
                key("signal_topic")
            )));
        }

        let (mut host, mut port, mut user, mut password, mut database) =
            (None, None, None, None, None);
        let (mut url_mode, mut url_root) = (None, None);
        if let Some(DbUrl(url)) = &self.url {
            let (clean, mode, root) = split_ssl_params(url);
            url_mode = mode;
            url_root = root;
            let parsed: tokio_postgres::Config = clean.parse().map_err(|e| {
                // The parser's message never includes the URL (and so no password).
                Error::config(format!("{}: not a valid PostgreSQL URL: {e}", key("url")))
            })?;
            if let Some(h) = parsed.get_hosts().first() {
                match h {
                    tokio_postgres::config::Host::Tcp(h) => host = Some(h.clone()),
                    #[cfg(unix)]
                    tokio_postgres::config::Host::Unix(_) => {
                        return Err(Error::config(format!(
                            "{}: Unix socket hosts are not supported; use a TCP host",
                            key("url")
                        )))
                    }
                }
            }
            port = parsed.get_ports().first().copied();
            user = parsed.get_user().map(str::to_string);
            password = parsed
                .get_password()
                .map(|p| Secret::new(String::from_utf8_lossy(p).into_owned()));
            database = parsed.get_dbname().map(str::to_string);
        }
        let sslmode = match (self.sslmode, url_mode.as_deref()) {
            (Some(m), _) => m,
            (None, None) => SslMode::default(),
            (None, Some(m)) => match m {
                "disable" => SslMode::Disable,
                "allow" | "prefer" => SslMode::Prefer,
                "require" => SslMode::Require,
                "verify-ca" => SslMode::VerifyCa,
                "verify-full" => SslMode::VerifyFull,
                other => {
                    return Err(Error::config(format!(
                        "{}: unknown sslmode {other:?} in the URL: expected disable, prefer, \
                         require, verify-ca or verify-full",
                        key("url")
                    )))
                }
            },
        };
        let user = self.user.clone().or(user).ok_or_else(|| {
            Error::config(format!(
                "{}: missing: set `source.user` or a user in `source.url`",
                key("user")
            ))
        })?;
        let mut password = self.password.clone().or(password);
        if self.password.is_none() {
            if let Some(file) = &self.password_file {
                let text = std::fs::read_to_string(file).map_err(|e| {
                    Error::config(format!(
                        "{}: cannot read {}: {e}",
                        key("password_file"),
                        file.display()
                    ))
                })?;
                password = Some(Secret::new(text.lines().next().unwrap_or("").to_string()));
            }
        }
        let conn = ConnInfo {
            host: self
                .host
                .clone()
                .or(host)
                .unwrap_or_else(|| DEFAULT_HOST.to_string()),
            port: self.port.or(port).unwrap_or(DEFAULT_PORT),
            database: self
                .database
                .clone()
                .or(database)
                .unwrap_or_else(|| user.clone()),
            user,
            password,
            sslmode,
            sslrootcert: self.sslrootcert.clone().or(url_root.map(PathBuf::from)),
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
        };
        let base = sanitize_name(pipeline);
        let publication = self
            .publication
            .clone()
            .unwrap_or_else(|| format!("{}_pub", truncate(&base, 59)));
        let slot = self.slot.clone().unwrap_or(base);
        Ok(Settings {
            config: self,
            conn,
            publication,
            slot,
            pipeline: pipeline.into(),
        })
    }
}

fn truncate(s: &str, n: usize) -> &str {
    &s[..s.len().min(n)]
}

pub use connector_core::config::{glob_match, is_pattern};

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Settings> {
        let section = ConfigSection::from_yaml("source", yaml)?;
        PostgresConfig::from_section(&section)?.validate("Inventory-Pipe.1")
    }

    #[test]
    fn the_issue_contract_parses_with_defaults() {
        let s = parse(
            "type: postgres\nurl: \"postgres://cdc@127.0.0.1:5432/app\"\ntables: [public.orders]\nsnapshot: initial\n",
        )
        .unwrap();
        assert_eq!(s.conn.host, "127.0.0.1");
        assert_eq!(s.conn.user, "cdc");
        assert_eq!(s.conn.database, "app");
        assert_eq!(s.slot, "inventory_pipe_1");
        assert_eq!(s.publication, "inventory_pipe_1_pub");
        assert_eq!(s.config.snapshot, SnapshotMode::Initial);
        assert_eq!(s.conn.sslmode, SslMode::Prefer);
        assert_eq!(s.config.batch_size, DEFAULT_BATCH_SIZE);
    }

    #[test]
    fn url_parts_are_overridden_and_the_password_is_never_shown() {
        let s = parse(
            "type: postgres\nurl: \"postgres://u:hunter2@db:6000/x?sslmode=verify-full\"\nhost: other\ndatabase: y\ntables: [a.b]\n",
        )
        .unwrap();
        assert_eq!(s.conn.host, "other");
        assert_eq!(s.conn.port, 6000);
        assert_eq!(s.conn.database, "y");
        assert_eq!(s.conn.sslmode, SslMode::VerifyFull);
        assert_eq!(s.conn.password.as_ref().unwrap().expose(), "hunter2");
        assert!(!format!("{:?}", s).contains("hunter2"));
        assert!(!s.conn.redacted().contains("hunter2"));
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse("type: postgres\nuser: u\ntables: [orders]\n").unwrap_err();
        assert!(e.message().contains("source.tables[0]"), "{e}");
        let e = parse("type: postgres\nuser: u\n").unwrap_err();
        assert!(e.message().contains("source.tables"), "{e}");
        let e = parse("type: postgres\nuser: u\ntables: [a.b]\nsnapshot: sometimes\n").unwrap_err();
        assert!(e.message().contains("source.snapshot"), "{e}");
        let e = parse("type: postgres\nuser: u\ntables: [a.b]\nslott: x\n").unwrap_err();
        assert!(e.message().contains("slott"), "{e}");
        let e = parse("type: postgres\ntables: [a.b]\n").unwrap_err();
        assert!(e.message().contains("source.user"), "{e}");
        let e = parse("type: postgres\nuser: u\ntables: [a.b]\nslot: My-Slot\n").unwrap_err();
        assert!(e.message().contains("source.slot"), "{e}");
        let e = parse("type: postgres\nuser: u\ntables: [a.b]\nsslmode: sometimes\n").unwrap_err();
        assert!(e.message().contains("source.sslmode"), "{e}");
    }

    #[test]
    fn globs_match() {
        assert!(glob_match("order_*", "order_items"));
        assert!(glob_match("*", ""));
        assert!(glob_match("o?der", "order"));
        assert!(!glob_match("order_*", "orders"));
        assert!(glob_match("*_log", "audit_log"));
        assert!(!glob_match("*_log", "audit_logs"));
    }
}
