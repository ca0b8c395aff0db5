//! `source: { type: mysql, ... }`: the configuration and how it becomes connection options.

use std::path::PathBuf;

use connector_core::{ConnectorType, Error, Result, Secret};
use serde::{Deserialize, Deserializer};

/// Default port.
pub const DEFAULT_PORT: u16 = 3306;
/// Default rows per snapshot chunk (a primary-key range read by one query).
pub const DEFAULT_SNAPSHOT_CHUNK_ROWS: u64 = 50_000;
/// Default number of snapshot connections reading chunks at once.
pub const DEFAULT_SNAPSHOT_PARALLELISM: usize = 2;
/// Default interval of server heartbeats on a quiet binlog, in milliseconds.
pub const DEFAULT_HEARTBEAT_INTERVAL_MS: u64 = 1_000;
/// Default most events in one batch.
pub const DEFAULT_MAX_BATCH_EVENTS: usize = 2_048;
/// Default longest time `next_batch` waits for the first event when the binlog is quiet, in
/// milliseconds (the runtime wants an answer within about a second).
pub const DEFAULT_MAX_BATCH_WAIT_MS: u64 = 500;
/// Default connect timeout, in milliseconds.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;
/// Default most bytes of captured changes held for prepared, not yet committed XA transactions.
pub const DEFAULT_MAX_XA_HELD_BYTES: usize = 64 << 20;
/// Directory of the default schema history file, `<dir>/<pipeline>.schema-history` (the
/// default offsets file is `./data/<pipeline>.offsets`).
pub const DEFAULT_SCHEMA_HISTORY_DIR: &str = "./data";
/// Lowest default server id: ids derived from the pipeline name fall in
/// `[DERIVED_SERVER_ID_BASE, DERIVED_SERVER_ID_BASE + 2^30)`, away from the small ids
/// people give servers.
pub const DERIVED_SERVER_ID_BASE: u32 = 0x4000_0000;

/// What to do when there is no stored position (and, for `when_needed`, when the stored one is
/// no longer in the binlog).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotMode {
    /// Snapshot the tables, then stream from exactly the snapshot's binlog position.
    #[default]
    Initial,
    /// No snapshot: stream from the current end of the binlog.
    Never,
    /// Snapshot the tables, then finish.
    InitialOnly,
    /// As `initial`, and also snapshot again when the stored position was purged.
    WhenNeeded,
}

/// Whether positions use GTIDs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GtidSetting {
    /// Resume by GTID when the server has GTIDs (MariaDB always; MySQL with `gtid_mode=ON`).
    #[default]
    Auto,
    /// Resume by GTID; fail if the server has none.
    On,
    /// Resume by binlog file and offset.
    Off,
}

impl<'de> Deserialize<'de> for GtidSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            B(bool),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::B(true) => Ok(GtidSetting::On),
            Raw::B(false) => Ok(GtidSetting::Off),
            Raw::S(s) if s == "auto" => Ok(GtidSetting::Auto),
            Raw::S(s) if s == "true" || s == "on" => Ok(GtidSetting::On),
            Raw::S(s) if s == "false" || s == "off" => Ok(GtidSetting::Off),
            Raw::S(s) => Err(serde::de::Error::custom(format!(
                "expected true, false or auto, found {s:?}"
            ))),
        }
    }
}

/// TLS for the connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SslMode {
    /// Plain TCP.
    #[default]
    Disabled,
    /// TLS, without verifying the server certificate.
    Required,
    /// TLS, verifying the certificate chain (against `ssl_ca` or the system roots) but not the
    /// host name.
    VerifyCa,
    /// TLS, verifying the chain and that the certificate names the host.
    VerifyIdentity,
}

/// `source: { type: mysql, ... }`. Its `Debug` form hides the URL's password.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlConfig {
    /// Always `mysql`.
    #[serde(rename = "type")]
    pub kind: ConnectorType,
    /// `mysql://user:password@host:3306`. The other connection keys override its parts.
    #[serde(default)]
    pub url: Option<String>,
    /// Server host name or address (instead of, or overriding, the URL's).
    #[serde(default)]
    pub host: Option<String>,
    /// Server port. Default 3306.
    #[serde(default)]
    pub port: Option<u16>,
    /// User name.
    #[serde(default)]
    pub user: Option<String>,
    /// Password; prefer the environment variable `CDC_SOURCE__PASSWORD` or `password_file`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// A file whose content (trailing newline removed) is the password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Tables to capture, `db.table`; `*` and `?` are wildcards (`db.*`, `shop.order_*`).
    pub tables: Vec<String>,
    /// Snapshot mode: `initial` (default), `never`, `initial_only`, `when_needed`.
    #[serde(default)]
    pub snapshot: SnapshotMode,
    /// Snapshot connections reading chunks at once (they share one consistent point). Default 2.
    #[serde(default = "default_snapshot_parallelism")]
    pub snapshot_parallelism: usize,
    /// Rows per snapshot chunk (a primary-key range). Default 50000.
    #[serde(default = "default_snapshot_chunk_rows")]
    pub snapshot_chunk_rows: u64,
    /// Replica server id this source registers with; must differ from the server's and every
    /// other replica's. Default: derived from the pipeline name.
    #[serde(default)]
    pub server_id: Option<u32>,
    /// Resume by GTID: `auto` (default), `true`, `false`.
    #[serde(default)]
    pub gtid: GtidSetting,
    /// Interval of server heartbeats on a quiet binlog, in milliseconds. A connection silent for
    /// three intervals (at least 5 s) is treated as lost. Default 1000.
    #[serde(default = "default_heartbeat_interval_ms")]
    pub heartbeat_interval_ms: u64,
    /// Most events in one batch. While streaming, a batch never holds more: the events decoded
    /// beyond it (the rest of a rows event or of a transaction) wait for the next batch, and the
    /// checkpoint is the last event delivered. During the snapshot, rows arrive in messages of
    /// up to 256 and a batch ends after the message that reaches the limit, so it may hold up to
    /// 255 more. Default 2048.
    #[serde(default = "default_max_batch_events")]
    pub max_batch_events: usize,
    /// Longest wait for a first event before returning an empty or checkpoint-only batch, in
    /// milliseconds. Default 500.
    #[serde(default = "default_max_batch_wait_ms")]
    pub max_batch_wait_ms: u64,
    /// Connect timeout, in milliseconds. Default 10000.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Most bytes (estimated, in memory) of captured changes held for XA transactions that are
    /// prepared but not yet committed or rolled back; past it the source stops with an error
    /// naming the transaction. Default 64 MiB.
    #[serde(default = "default_max_xa_held_bytes")]
    pub max_xa_held_bytes: usize,
    /// TLS: `disabled` (default), `required`, `verify_ca`, `verify_identity`.
    #[serde(default)]
    pub ssl_mode: SslMode,
    /// PEM file of the CA certificate(s) to verify the server with.
    #[serde(default)]
    pub ssl_ca: Option<PathBuf>,
    /// The schema history file: every DDL statement the stream passed, with its binlog position,
    /// and the table definitions at the snapshot (see the README). Keep it with the offsets: a
    /// resume rebuilds the table definitions of its position from it. Default
    /// `./data/<pipeline>.schema-history`, beside the default offsets file.
    #[serde(default)]
    pub schema_history_path: Option<PathBuf>,
}

impl std::fmt::Debug for MysqlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlConfig")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("password_file", &self.password_file)
            .field("tables", &self.tables)
            .field("snapshot", &self.snapshot)
            .field("snapshot_parallelism", &self.snapshot_parallelism)
            .field("snapshot_chunk_rows", &self.snapshot_chunk_rows)
            .field("server_id", &self.server_id)
            .field("gtid", &self.gtid)
            .field("heartbeat_interval_ms", &self.heartbeat_interval_ms)
            .field("max_batch_events", &self.max_batch_events)
            .field("max_batch_wait_ms", &self.max_batch_wait_ms)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("max_xa_held_bytes", &self.max_xa_held_bytes)
            .field("ssl_mode", &self.ssl_mode)
            .field("ssl_ca", &self.ssl_ca)
            .field("schema_history_path", &self.schema_history_path)
            .finish()
    }
}

/// `mysql://user:secret@host` → `mysql://user:***@host`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".to_string();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

fn default_snapshot_parallelism() -> usize {
    DEFAULT_SNAPSHOT_PARALLELISM
}
fn default_snapshot_chunk_rows() -> u64 {
    DEFAULT_SNAPSHOT_CHUNK_ROWS
}
fn default_heartbeat_interval_ms() -> u64 {
    DEFAULT_HEARTBEAT_INTERVAL_MS
}
fn default_max_batch_events() -> usize {
    DEFAULT_MAX_BATCH_EVENTS
}
fn default_max_batch_wait_ms() -> u64 {
    DEFAULT_MAX_BATCH_WAIT_MS
}
fn default_connect_timeout_ms() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_MS
}
fn default_max_xa_held_bytes() -> usize {
    DEFAULT_MAX_XA_HELD_BYTES
}

/// A `db.table` pattern with `*` and `?` wildcards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TablePattern {
    /// Database pattern.
    pub schema: String,
    /// Table pattern.
    pub table: String,
}

impl TablePattern {
    /// Whether `schema.table` matches.
    pub fn matches(&self, schema: &str, table: &str) -> bool {
        glob(&self.schema, schema) && glob(&self.table, table)
    }

    /// Whether the database part has no wildcard.
    pub fn exact_schema(&self) -> Option<&str> {
        (!self.schema.contains(['*', '?'])).then_some(self.schema.as_str())
    }
}

use connector_core::config::glob_match as glob;

/// The table filter.
#[derive(Clone, Debug)]
pub struct TableFilter {
    patterns: Vec<TablePattern>,
}

impl TableFilter {
    /// A filter of these patterns.
    pub fn new(patterns: Vec<TablePattern>) -> Self {
        TableFilter { patterns }
    }

    /// Whether `schema.table` is captured.
    pub fn matches(&self, schema: &str, table: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(schema, table))
    }

    /// The patterns.
    pub fn patterns(&self) -> &[TablePattern] {
        &self.patterns
    }
}

/// The validated settings. Its `Debug` form leaves out the connection options (they hold the
/// password).
#[derive(Clone)]
pub struct Settings {
    /// The config as written.
    pub config: MysqlConfig,
    /// Connection options (password inside; never printed).
    pub opts: mysql_async::Opts,
    /// `host:port`, for messages.
    pub address: String,
    /// The replica server id.
    pub server_id: u32,
    /// Table filter.
    pub filter: TableFilter,
    /// The schema history file (`schema_history_path` or its default).
    pub history_path: PathBuf,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("config", &self.config)
            .field("address", &self.address)
            .field("server_id", &self.server_id)
            .field("filter", &self.filter)
            .field("history_path", &self.history_path)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Validate `config` for the pipeline `pipeline`.
    pub fn new(config: MysqlConfig, pipeline: &str) -> Result<Self> {
        let mut builder = match &config.url {
            Some(url) => {
                let opts = mysql_async::Opts::from_url(url).map_err(|e| {
                    // The URL may hold a password: do not echo it.
                    Error::config(format!(
                        "key `source.url`: not a valid mysql:// URL ({})",
                        url_error_kind(&e)
                    ))
                })?;
                mysql_async::OptsBuilder::from_opts(opts)
            }
            None => {
                if config.host.is_none() {
                    return Err(Error::config(
                        "key `source.url` or `source.host`: one of them is required",
                    ));
                }
                mysql_async::OptsBuilder::default().tcp_port(DEFAULT_PORT)
            }
        };
        if let Some(h) = &config.host {
            builder = builder.ip_or_hostname(h.clone());
        }
        if let Some(p) = config.port {
            builder = builder.tcp_port(p);
        }
        if let Some(u) = &config.user {
            builder = builder.user(Some(u.clone()));
        }
        match (&config.password, &config.password_file) {
            (Some(_), Some(_)) => {
                return Err(Error::config(
                    "keys `source.password` and `source.password_file`: set only one",
                ))
            }
            (Some(p), None) => builder = builder.pass(Some(p.expose().to_string())),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Error::config(format!(
                        "key `source.password_file`: cannot read {}",
                        path.display()
                    ))
                    .with_source(e)
                })?;
                builder = builder.pass(Some(text.trim_end_matches(['\n', '\r']).to_string()));
            }
            (None, None) => {}
        }
        if config.tables.is_empty() {
            return Err(Error::config(
                "key `source.tables`: expected at least one `db.table` pattern",
            ));
        }
        let mut patterns = Vec::new();
        for (i, t) in config.tables.iter().enumerate() {
            let Some((s, tb)) = t.split_once('.') else {
                return Err(Error::config(format!(
                    "key `source.tables[{i}]`: {t:?} is not of the form db.table (use db.* for \
                     every table of a database)"
                )));
            };
            if s.is_empty() || tb.is_empty() {
                return Err(Error::config(format!(
                    "key `source.tables[{i}]`: {t:?} has an empty part"
                )));
            }
            patterns.push(TablePattern {
                schema: s.trim_matches('`').to_string(),
                table: tb.trim_matches('`').to_string(),
            });
        }
        if config.snapshot_parallelism == 0 || config.snapshot_parallelism > 64 {
            return Err(Error::config(
                "key `source.snapshot_parallelism`: expected 1 to 64",
            ));
        }
        if config.snapshot_chunk_rows == 0 {
            return Err(Error::config(
                "key `source.snapshot_chunk_rows`: expected at least 1",
            ));
        }
        if config.max_batch_events == 0 {
            return Err(Error::config(
                "key `source.max_batch_events`: expected at least 1",
            ));
        }
        if config.max_xa_held_bytes == 0 {
            return Err(Error::config(
                "key `source.max_xa_held_bytes`: expected at least 1",
            ));
        }
        if config.heartbeat_interval_ms == 0 || config.heartbeat_interval_ms > 4_294_967 {
            return Err(Error::config(
                "key `source.heartbeat_interval_ms`: expected 1 to 4294967",
            ));
        }
        if config.max_batch_wait_ms > 1_000 {
            return Err(Error::config(
                "key `source.max_batch_wait_ms`: expected at most 1000 (the runtime expects an \
                 answer within about a second)",
            ));
        }
        if config.server_id == Some(0) {
            return Err(Error::config(
                "key `source.server_id`: 0 is not a valid replica server id",
            ));
        }
        builder = builder
            .prefer_socket(false)
            .tcp_nodelay(true)
            .tcp_keepalive(Some(30_000u32))
            .stmt_cache_size(0)
            .wait_timeout(Some(28_800));
        match config.ssl_mode {
            SslMode::Disabled => {
                if config.ssl_ca.is_some() {
                    return Err(Error::config(
                        "key `source.ssl_ca`: set `ssl_mode: verify_ca` or `verify_identity` \
                         to use it",
                    ));
                }
                builder = builder.ssl_opts(None::<mysql_async::SslOpts>);
            }
            mode => {
                let mut ssl = mysql_async::SslOpts::default();
                if let Some(ca) = &config.ssl_ca {
                    ssl = ssl.with_root_certs(vec![ca.clone().into()]);
                }
                ssl = match mode {
                    SslMode::Required => ssl
                        .with_danger_accept_invalid_certs(true)
                        .with_danger_skip_domain_validation(true),
                    SslMode::VerifyCa => ssl.with_danger_skip_domain_validation(true),
                    _ => ssl,
                };
                builder = builder.ssl_opts(Some(ssl));
            }
        }
        let opts: mysql_async::Opts = builder.into();
        let address = format!("{}:{}", opts.ip_or_hostname(), opts.tcp_port());
        let server_id = config
            .server_id
            .unwrap_or_else(|| derive_server_id(pipeline));
        let history_path = match &config.schema_history_path {
            Some(p) if p.as_os_str().is_empty() => {
                return Err(Error::config(
                    "key `source.schema_history_path`: expected a file path",
                ))
            }
            Some(p) => p.clone(),
            None => PathBuf::from(format!(
                "{DEFAULT_SCHEMA_HISTORY_DIR}/{pipeline}.schema-history"
            )),
        };
        Ok(Settings {
            config,
            opts,
            address,
            server_id,
            filter: TableFilter { patterns },
            history_path,
        })
    }
}

fn url_error_kind(e: &mysql_async::UrlError) -> &'static str {
    match e {
        mysql_async::UrlError::UnsupportedScheme { .. } => "expected the mysql:// scheme",
        mysql_async::UrlError::Parse(_) => "malformed URL",
        _ => "invalid or incomplete URL",
    }
}

/// A replica server id derived from the pipeline name (FNV-1a), in a high range.
pub fn derive_server_id(pipeline: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in pipeline.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    DERIVED_SERVER_ID_BASE + (h & 0x3fff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_core::ConfigSection;

    fn settings(yaml: &str) -> Result<Settings> {
        let s = ConfigSection::from_yaml("source", yaml)?;
        Settings::new(s.extract()?, "pipe")
    }

    #[test]
    fn url_and_overrides() {
        let s = settings(
            "type: mysql\nurl: mysql://u:secret@db.example:3307\ntables: [shop.orders, 'crm.*']\nport: 3308\n",
        )
        .unwrap();
        assert_eq!(s.address, "db.example:3308");
        assert_eq!(s.opts.user(), Some("u"));
        assert_eq!(s.server_id, derive_server_id("pipe"));
        assert!(s.server_id >= DERIVED_SERVER_ID_BASE);
        assert!(s.filter.matches("crm", "anything"));
        assert!(s.filter.matches("shop", "orders"));
        assert!(!s.filter.matches("shop", "orders2"));
        assert_eq!(s.config.snapshot, SnapshotMode::Initial);
        assert_eq!(s.config.gtid, GtidSetting::Auto);
        // the password never shows in Debug output of the settings or the config
        let debug = format!("{s:?}");
        assert!(!debug.contains("secret"), "{debug}");
        assert!(debug.contains("mysql://u:***@db.example:3307"), "{debug}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = settings("type: mysql\nhost: h\ntables: [nodot]\n")
            .err()
            .unwrap();
        assert!(e.message().contains("source.tables[0]"), "{e}");
        let e = settings("type: mysql\nhost: h\ntables: [a.b]\nsnapshot: sometimes\n")
            .err()
            .unwrap();
        assert!(e.message().contains("source.snapshot"), "{e}");
        let e = settings("type: mysql\nhost: h\ntables: [a.b]\nsnapshot_paralelism: 3\n")
            .err()
            .unwrap();
        assert!(e.message().contains("snapshot_paralelism"), "{e}");
        let e = settings("type: mysql\ntables: [a.b]\n").err().unwrap();
        assert!(e.message().contains("source.host"), "{e}");
        let e = settings("type: mysql\nurl: 'postgres://u:hunter2@h'\ntables: [a.b]\n")
            .err()
            .unwrap();
        assert!(!e.report().contains("hunter2"), "{}", e.report());
        let s =
            settings("type: mysql\nhost: h\ntables: [a.b]\ngtid: false\nsnapshot: when_needed\n")
                .unwrap();
        assert_eq!(s.config.gtid, GtidSetting::Off);
        assert_eq!(s.config.snapshot, SnapshotMode::WhenNeeded);
        assert_eq!(s.config.max_xa_held_bytes, DEFAULT_MAX_XA_HELD_BYTES);
        let e = settings("type: mysql\nhost: h\ntables: [a.b]\nmax_xa_held_bytes: 0\n")
            .err()
            .unwrap();
        assert!(e.message().contains("source.max_xa_held_bytes"), "{e}");
    }

    #[test]
    fn globs() {
        assert!(glob("order_*", "order_2024"));
        assert!(glob("t?", "t1"));
        assert!(!glob("t?", "t12"));
        assert!(glob("*", ""));
    }
}
