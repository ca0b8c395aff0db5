//! Configuration of the `kafka` sink (`sink:`) and the `kafka` offset store (`offsets:`), and how
//! they become librdkafka client properties.
//!
//! Every key is documented here; these doc comments are the user documentation (the README's
//! reference table follows them). Defaults are the named constants below.

use std::collections::BTreeMap;
use std::path::PathBuf;

use connector_core::encode::{
    BinaryMode, DecimalMode, HstoreMode, IntervalMode, Modes, TimePrecisionMode,
};
use connector_core::{ConfigSection, ConnectorType, Error, Format, Result, Secret};
use rdkafka::config::ClientConfig;
use serde::Deserialize;
use tracing::warn;

use crate::route::TopicTemplate;

/// Default topic template (`sink.topic`): pipeline name, schema (MySQL: database) and table.
pub const DEFAULT_TOPIC_TEMPLATE: &str = "{name}.{schema}.{table}";
/// Default topic of logical messages (`sink.message_topic`).
pub const DEFAULT_MESSAGE_TOPIC: &str = "{name}.message";
/// Default topic of the BEGIN and END records of transaction metadata (`sink.transaction_topic`),
/// Debezium's `<topic.prefix>.transaction`.
pub const DEFAULT_TRANSACTION_TOPIC: &str = "{name}.transaction";
/// Default time librdkafka waits to fill a batch (`sink.linger_ms`).
pub const DEFAULT_LINGER_MS: u64 = 5;
/// Default most bytes in one produce batch per partition (`sink.batch_size_bytes`).
pub const DEFAULT_BATCH_SIZE_BYTES: u64 = 1_000_000;
/// Default most messages in one produce batch per partition (`sink.batch_num_messages`).
pub const DEFAULT_BATCH_NUM_MESSAGES: u64 = 10_000;
/// Default most produce requests in flight per broker connection
/// (`sink.max_in_flight_requests`, `max.in.flight.requests.per.connection`). librdkafka's
/// idempotent producer allows up to 5, but once a partition has 5 requests in flight its broker
/// thread busy-waits (it keeps waking to send a ready batch it may not send yet): against a broker
/// slower than the source, 5 cost a whole core and slowed the drain on 2 cores; 2 measured as fast
/// with a sixth of the CPU (BENCHMARKS.md).
pub const DEFAULT_MAX_IN_FLIGHT_REQUESTS: u32 = 2;
/// Default time a message may take to be acknowledged, retries included (`sink.message_timeout_ms`):
/// 0, infinite (librdkafka's `message.timeout.ms=0`). A broker outage then never fails a message,
/// it only delays it (the in-flight bound pauses the source): a message that timed out would be
/// resent after the restart behind later changes of its key that were still delivered, so a key
/// could read v1, v3, v2 (librdkafka's `enable.gapless.guarantee` does not cover timeouts). Kafka
/// Connect does the same for source producers (`delivery.timeout.ms` = `Integer.MAX_VALUE`).
pub const DEFAULT_MESSAGE_TIMEOUT_MS: u64 = 0;
/// The warning for a finite message timeout with `at_least_once`.
const MESSAGE_TIMEOUT_WARNING: &str = "a finite message timeout: a broker outage longer than it \
     fails messages, and after the restart their resend can land behind later changes of the \
     same key that were still delivered (per-key order breaks transiently); 0 (the default) \
     waits out outages instead";
/// Default timeout of metadata, topic creation and transaction calls (`sink.operation_timeout_ms`).
pub const DEFAULT_OPERATION_TIMEOUT_MS: u64 = 30_000;
/// Default interval between transaction commits with `delivery: exactly_once`
/// (`sink.transaction_interval_ms`).
pub const DEFAULT_TRANSACTION_INTERVAL_MS: u64 = 100;
/// Default broker-side timeout of an open transaction (`sink.transaction_timeout_ms`): a crashed
/// instance's open transaction is aborted by the broker after this long at the latest.
pub const DEFAULT_TRANSACTION_TIMEOUT_MS: u64 = 60_000;
/// Default partitions of auto-created topics (`sink.create_topics.partitions`).
pub const DEFAULT_PARTITIONS: i32 = 1;
/// Default replication factor of auto-created topics: the broker's default
/// (`sink.create_topics.replication_factor`).
pub const DEFAULT_REPLICATION_FACTOR: i32 = -1;
/// Default offsets topic (`offsets.topic`).
pub const DEFAULT_OFFSETS_TOPIC: &str = "cdc_offsets";
/// The partitioner: murmur2 on the key bytes, the Java client's choice, so a key lands on the same
/// partition as it would with Debezium or Kafka Connect.
pub const PARTITIONER: &str = "murmur2_random";

/// `sink: { type: kafka, ... }`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// Always `kafka`.
    #[serde(rename = "type")]
    pub kind: ConnectorType,
    /// Bootstrap brokers, `host:port[,host:port...]`. Required.
    pub brokers: String,
    /// Topic of each table's events, a template over `{name}` (pipeline), `{database}`, `{schema}`
    /// (MySQL: the database) and `{table}`. Characters Kafka does not allow in topic names become
    /// `_`. Default `{name}.{schema}.{table}`.
    #[serde(default = "default_topic")]
    pub topic: String,
    /// Per-table topics, `schema.table: topic` (the topic may use the same placeholders). Default none.
    #[serde(default)]
    pub topics: BTreeMap<String, String>,
    /// Topic of logical messages (PostgreSQL `pg_logical_emit_message`), a template over `{name}`.
    /// Default `{name}.message`.
    #[serde(default = "default_message_topic")]
    pub message_topic: String,
    /// Value format: `debezium` (the envelope, default) or `flat` (the row plus `__op`/`__deleted`).
    #[serde(default)]
    pub format: Format,
    /// Wrap keys and values with their Kafka Connect schema (`{"schema":..,"payload":..}`), as Kafka
    /// Connect's JSON converter does with `schemas.enable=true`. Default false.
    #[serde(default)]
    pub schemas: bool,
    /// Follow each delete by a tombstone (same key, null value) so that compaction can drop the key.
    /// Default true.
    #[serde(default = "default_true")]
    pub tombstones: bool,
    /// Add the headers `cdc.op`, `cdc.position` and `cdc.txid` to every record. Default false, as
    /// Debezium writes no headers: each header costs the broker a stored row per record (on the
    /// local broker, three headers cut throughput about 4x).
    #[serde(default)]
    pub headers: bool,
    /// Debezium's `decimal.handling.mode`: `precise`, `double` or `string` (default).
    #[serde(default)]
    pub decimal_handling_mode: DecimalMode,
    /// Debezium's `time.precision.mode`: `adaptive`, `adaptive_time_microseconds`, `connect` or
    /// `isostring` (default).
    #[serde(default)]
    pub time_precision_mode: TimePrecisionMode,
    /// Debezium's `binary.handling.mode`: `bytes`, `base64` (default), `base64-url-safe` or `hex`.
    #[serde(default)]
    pub binary_handling_mode: BinaryMode,
    /// Debezium's `interval.handling.mode`: `numeric` or `string` (default).
    #[serde(default)]
    pub interval_handling_mode: IntervalMode,
    /// Debezium's `hstore.handling.mode`: `json` (default) or `map`.
    #[serde(default)]
    pub hstore_handling_mode: HstoreMode,
    /// Debezium's `provide.transaction.metadata`: every event's `transaction` block (`id`,
    /// `total_order`, `data_collection_order`; null without), and a BEGIN record before each
    /// transaction's events and an END record after them (`event_count`, `data_collections`) in
    /// `transaction_topic`. Default false.
    #[serde(default)]
    pub transaction_metadata: bool,
    /// Topic of the BEGIN and END records, a template over `{name}`. Default `{name}.transaction`.
    #[serde(default = "default_transaction_topic")]
    pub transaction_topic: String,
    /// Create missing topics with these settings; without it a missing topic stops the pipeline.
    /// Default: not set (topics must exist).
    #[serde(default)]
    pub create_topics: Option<CreateTopics>,
    /// `at_least_once` (default: idempotent producer, duplicates possible after a restart) or
    /// `exactly_once` (transactions; records and the offset are committed together; needs
    /// `offsets: { type: kafka }` on the same brokers and a broker with transactions).
    #[serde(default)]
    pub delivery: Delivery,
    /// How long librdkafka waits to fill a batch, in milliseconds (`linger.ms`). Default 5.
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u64,
    /// Most bytes of one produce batch per partition (`batch.size`). Default 1000000.
    #[serde(default = "default_batch_size_bytes")]
    pub batch_size_bytes: u64,
    /// Most messages of one produce batch per partition (`batch.num.messages`). Default 10000.
    #[serde(default = "default_batch_num_messages")]
    pub batch_num_messages: u64,
    /// Most produce requests in flight per broker connection, 1 to 5
    /// (`max.in.flight.requests.per.connection`). Default 2.
    #[serde(default = "default_max_in_flight_requests")]
    pub max_in_flight_requests: u32,
    /// Compression of produce batches: `none` (default), `gzip`, `snappy`, `lz4` or `zstd`.
    #[serde(default)]
    pub compression: Compression,
    /// How long a message may take to be acknowledged, retries included, in milliseconds
    /// (`message.timeout.ms`); past it the batch fails and the pipeline restarts. 0 (the default)
    /// is infinite: an outage only delays. Any other value can break per-key order on the retry
    /// (warned at load). With `exactly_once` it is capped at `transaction_timeout_ms` (0 becomes
    /// `transaction_timeout_ms`).
    #[serde(default = "default_message_timeout_ms")]
    pub message_timeout_ms: u64,
    /// Timeout of metadata requests, topic creation and transaction calls, in milliseconds.
    /// Default 30000.
    #[serde(default = "default_operation_timeout_ms")]
    pub operation_timeout_ms: u64,
    /// Where events too large for `message.max.bytes` go: a record with the same key and headers
    /// whose value describes the event (table, operation, position, sizes). Default: not set (a
    /// too-large event stops the pipeline).
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    /// With `exactly_once`: commit a transaction this often, in milliseconds (and at shutdown).
    /// Longer means fewer commits and more throughput, and consumers see changes later. Default 100.
    #[serde(default = "default_transaction_interval_ms")]
    pub transaction_interval_ms: u64,
    /// With `exactly_once`: the broker aborts a transaction left open longer than this, in
    /// milliseconds (`transaction.timeout.ms`). Default 60000.
    #[serde(default = "default_transaction_timeout_ms")]
    pub transaction_timeout_ms: u64,
    /// TLS; present (even as `{}`) turns TLS on. Default off.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// SASL authentication (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512). Default off.
    #[serde(default)]
    pub sasl: Option<SaslConfig>,
    /// Any librdkafka property, passed verbatim and applied last (it overrides the keys above).
    #[serde(default)]
    pub properties: BTreeMap<String, PropertyValue>,
}

/// Delivery guarantee of the sink.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Idempotent producer; every change at least once, duplicates after a restart.
    #[default]
    AtLeastOnce,
    /// Transactional producer; records and offsets committed atomically.
    ExactlyOnce,
}

/// Compression codec of produce batches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// No compression.
    #[default]
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// librdkafka's `compression.type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// `sink.create_topics`: how missing topics are created.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTopics {
    /// Partitions of a new topic. Default 1.
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    /// Replication factor of a new topic; -1 means the broker's default. Default -1.
    #[serde(default = "default_replication_factor")]
    pub replication_factor: i32,
    /// Topic configuration of a new topic (`cleanup.policy: compact`, `retention.ms: ...`).
    #[serde(default)]
    pub config: BTreeMap<String, PropertyValue>,
}

/// `tls:`: TLS settings; the system's CA store is used when `ca_file` is absent.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificate(s) to verify the brokers with, PEM (`ssl.ca.location`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate for mutual TLS, PEM (`ssl.certificate.location`).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Client private key for mutual TLS, PEM (`ssl.key.location`).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Password of the private key (`ssl.key.password`).
    #[serde(default)]
    pub key_password: Option<Secret>,
    /// Check that the broker's certificate names the host connected to. Default true.
    #[serde(default = "default_true")]
    pub verify_hostname: bool,
}

/// `sasl:`: SASL authentication.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaslConfig {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: SaslMechanism,
    /// User name.
    pub username: String,
    /// Password; also from the environment (`CDC_SINK__SASL__PASSWORD`).
    pub password: Secret,
}

/// A SASL mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum SaslMechanism {
    /// Plain user name and password (use with TLS).
    #[serde(rename = "PLAIN", alias = "plain")]
    Plain,
    /// SCRAM with SHA-256.
    #[serde(rename = "SCRAM-SHA-256", alias = "scram-sha-256")]
    ScramSha256,
    /// SCRAM with SHA-512.
    #[serde(rename = "SCRAM-SHA-512", alias = "scram-sha-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// librdkafka's `sasl.mechanism` value.
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// A librdkafka property value as written in YAML (string, number or boolean).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum PropertyValue {
    /// A boolean, written `true`/`false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Text(String),
}

impl std::fmt::Display for PropertyValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PropertyValue::Bool(b) => write!(f, "{b}"),
            PropertyValue::Int(i) => write!(f, "{i}"),
            PropertyValue::Float(x) => write!(f, "{x}"),
            PropertyValue::Text(s) => f.write_str(s),
        }
    }
}

/// `offsets: { type: kafka, ... }`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaOffsetsConfig {
    /// Always `kafka`.
    #[serde(rename = "type")]
    pub kind: ConnectorType,
    /// The compacted topic holding one record per pipeline (key: pipeline name). Created (one
    /// partition, `cleanup.policy=compact`) when missing. Default `cdc_offsets`.
    #[serde(default = "default_offsets_topic")]
    pub topic: String,
    /// Bootstrap brokers. Default: the `kafka` sink's brokers, TLS, SASL and properties.
    #[serde(default)]
    pub brokers: Option<String>,
    /// Replication factor of the offsets topic when it is created; -1: the broker's default.
    #[serde(default = "default_replication_factor")]
    pub replication_factor: i32,
    /// Timeout of reading, writing and creating the offsets topic, in milliseconds. Default 30000.
    #[serde(default = "default_operation_timeout_ms")]
    pub operation_timeout_ms: u64,
    /// TLS, when `brokers` is given. Default off.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// SASL, when `brokers` is given. Default off.
    #[serde(default)]
    pub sasl: Option<SaslConfig>,
    /// librdkafka properties, when `brokers` is given.
    #[serde(default)]
    pub properties: BTreeMap<String, PropertyValue>,
}

/// Only the `type` of a section (to look at another section without knowing its shape).
#[derive(Deserialize)]
pub(crate) struct TypeOnly {
    #[serde(rename = "type")]
    pub kind: String,
}

fn default_true() -> bool {
    true
}
fn default_topic() -> String {
    DEFAULT_TOPIC_TEMPLATE.to_string()
}
fn default_message_topic() -> String {
    DEFAULT_MESSAGE_TOPIC.to_string()
}
fn default_transaction_topic() -> String {
    DEFAULT_TRANSACTION_TOPIC.to_string()
}
fn default_linger_ms() -> u64 {
    DEFAULT_LINGER_MS
}
fn default_batch_size_bytes() -> u64 {
    DEFAULT_BATCH_SIZE_BYTES
}
fn default_batch_num_messages() -> u64 {
    DEFAULT_BATCH_NUM_MESSAGES
}
fn default_max_in_flight_requests() -> u32 {
    DEFAULT_MAX_IN_FLIGHT_REQUESTS
}
fn default_message_timeout_ms() -> u64 {
    DEFAULT_MESSAGE_TIMEOUT_MS
}
fn default_operation_timeout_ms() -> u64 {
    DEFAULT_OPERATION_TIMEOUT_MS
}
fn default_transaction_interval_ms() -> u64 {
    DEFAULT_TRANSACTION_INTERVAL_MS
}
fn default_transaction_timeout_ms() -> u64 {
    DEFAULT_TRANSACTION_TIMEOUT_MS
}
fn default_partitions() -> i32 {
    DEFAULT_PARTITIONS
}
fn default_replication_factor() -> i32 {
    DEFAULT_REPLICATION_FACTOR
}
fn default_offsets_topic() -> String {
    DEFAULT_OFFSETS_TOPIC.to_string()
}

/// How to reach a cluster: brokers, TLS, SASL and verbatim properties.
#[derive(Clone, Debug)]
pub struct Connection {
    /// Bootstrap brokers.
    pub brokers: String,
    /// TLS settings.
    pub tls: Option<TlsConfig>,
    /// SASL settings.
    pub sasl: Option<SaslConfig>,
    /// Verbatim librdkafka properties.
    pub properties: BTreeMap<String, PropertyValue>,
}

impl Connection {
    /// A client configuration with the connection settings, without the verbatim properties
    /// (apply them last with [`Connection::apply_properties`]).
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        let protocol = match (&self.tls, &self.sasl) {
            (None, None) => "plaintext",
            (Some(_), None) => "ssl",
            (None, Some(_)) => "sasl_plaintext",
            (Some(_), Some(_)) => "sasl_ssl",
        };
        c.set("security.protocol", protocol);
        if let Some(tls) = &self.tls {
            if let Some(p) = &tls.ca_file {
                c.set("ssl.ca.location", p.display().to_string());
            }
            if let Some(p) = &tls.cert_file {
                c.set("ssl.certificate.location", p.display().to_string());
            }
            if let Some(p) = &tls.key_file {
                c.set("ssl.key.location", p.display().to_string());
            }
            if let Some(p) = &tls.key_password {
                c.set("ssl.key.password", p.expose());
            }
            c.set(
                "ssl.endpoint.identification.algorithm",
                if tls.verify_hostname { "https" } else { "none" },
            );
        }
        if let Some(sasl) = &self.sasl {
            c.set("sasl.mechanism", sasl.mechanism.as_str());
            c.set("sasl.username", &sasl.username);
            c.set("sasl.password", sasl.password.expose());
        }
        c
    }

    /// Apply the verbatim `properties:` (last, so they win).
    pub fn apply_properties(&self, c: &mut ClientConfig) {
        for (k, v) in &self.properties {
            c.set(k, v.to_string());
        }
    }
}

impl KafkaSinkConfig {
    /// The topic of transaction records for pipeline `name`, when transaction metadata is on.
    pub fn transaction_topic(&self, name: &str) -> Option<String> {
        if !self.transaction_metadata {
            return None;
        }
        TopicTemplate::parse(&self.transaction_topic)
            .ok()
            .map(|t| t.render(name, None))
    }

    /// The handling modes the mode keys select.
    pub fn modes(&self) -> Modes {
        Modes {
            decimal: self.decimal_handling_mode,
            time: self.time_precision_mode,
            binary: self.binary_handling_mode,
            interval: self.interval_handling_mode,
            hstore: self.hstore_handling_mode,
        }
    }

    /// Parse and validate the `sink:` section.
    pub fn from_section(section: &ConfigSection) -> Result<Self> {
        let c: KafkaSinkConfig = section.extract()?;
        c.validate()?;
        Ok(c)
    }

    /// Check values serde cannot, naming the key path.
    pub fn validate(&self) -> Result<()> {
        if self.brokers.trim().is_empty() {
            return Err(Error::config(
                "key `sink.brokers`: expected at least one host:port",
            ));
        }
        TopicTemplate::parse(&self.topic).map_err(|e| e.context("key `sink.topic`"))?;
        TopicTemplate::parse(&self.message_topic)
            .map_err(|e| e.context("key `sink.message_topic`"))?;
        TopicTemplate::parse(&self.transaction_topic)
            .map_err(|e| e.context("key `sink.transaction_topic`"))?;
        for (table, topic) in &self.topics {
            if table
                .split_once('.')
                .is_none_or(|(s, t)| s.is_empty() || t.is_empty())
            {
                return Err(Error::config(format!(
                    "key `sink.topics.{table}`: expected a `schema.table` key"
                )));
            }
            TopicTemplate::parse(topic)
                .map_err(|e| e.context(format!("key `sink.topics.{table}`")))?;
        }
        if let Some(dlq) = &self.dead_letter_topic {
            crate::route::validate_topic_name(dlq)
                .map_err(|e| e.context("key `sink.dead_letter_topic`"))?;
        }
        if !(1..=5).contains(&self.max_in_flight_requests) {
            return Err(Error::config(format!(
                "key `sink.max_in_flight_requests`: {} is out of range: expected 1 to 5 (the \
                 idempotent producer keeps order with at most 5)",
                self.max_in_flight_requests
            )));
        }
        if let Some(ct) = &self.create_topics {
            if ct.partitions < 1 {
                return Err(Error::config(
                    "key `sink.create_topics.partitions`: expected at least 1",
                ));
            }
            if ct.replication_factor == 0 || ct.replication_factor < -1 {
                return Err(Error::config(
                    "key `sink.create_topics.replication_factor`: expected -1 (broker default) or at least 1",
                ));
            }
        }
        if self.transaction_interval_ms == 0 {
            return Err(Error::config(
                "key `sink.transaction_interval_ms`: expected at least 1",
            ));
        }
        if self.operation_timeout_ms == 0 {
            return Err(Error::config(
                "key `sink.operation_timeout_ms`: expected at least 1",
            ));
        }
        if self.delivery == Delivery::AtLeastOnce && self.message_timeout_ms != 0 {
            warn!(
                key = "sink.message_timeout_ms",
                value = self.message_timeout_ms,
                "{MESSAGE_TIMEOUT_WARNING}"
            );
        }
        for (key, value) in &self.properties {
            let v = value.to_string();
            if self.delivery == Delivery::AtLeastOnce
                && matches!(key.as_str(), "message.timeout.ms" | "delivery.timeout.ms")
                && v != "0"
            {
                warn!(property = %key, value = %v, "{MESSAGE_TIMEOUT_WARNING}");
            }
            let weakens = match key.as_str() {
                "enable.idempotence" => v == "false",
                "acks" | "request.required.acks" => !(v == "all" || v == "-1"),
                _ => false,
            };
            if weakens {
                warn!(
                    property = %key,
                    value = %v,
                    "sink.properties weakens delivery: acknowledged changes may be lost or reordered"
                );
            }
        }
        Ok(())
    }

    /// The connection settings.
    pub fn connection(&self) -> Connection {
        Connection {
            brokers: self.brokers.clone(),
            tls: self.tls.clone(),
            sasl: self.sasl.clone(),
            properties: self.properties.clone(),
        }
    }

    /// The producer's client configuration (`transactional_id` for exactly-once).
    pub fn producer_config(&self, transactional_id: Option<&str>) -> ClientConfig {
        let conn = self.connection();
        let mut c = conn.client_config();
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("partitioner", PARTITIONER)
            .set("linger.ms", self.linger_ms.to_string())
            .set("batch.size", self.batch_size_bytes.to_string())
            .set("batch.num.messages", self.batch_num_messages.to_string())
            .set(
                "max.in.flight.requests.per.connection",
                self.max_in_flight_requests.to_string(),
            )
            .set("compression.type", self.compression.as_str())
            .set("message.timeout.ms", self.message_timeout_ms.to_string());
        if let Some(id) = transactional_id {
            // librdkafka requires message.timeout.ms <= transaction.timeout.ms.
            let message_timeout_ms = match self.message_timeout_ms {
                0 => self.transaction_timeout_ms,
                ms => ms.min(self.transaction_timeout_ms),
            };
            c.set("transactional.id", id)
                .set(
                    "transaction.timeout.ms",
                    self.transaction_timeout_ms.to_string(),
                )
                .set("message.timeout.ms", message_timeout_ms.to_string());
        }
        conn.apply_properties(&mut c);
        c
    }
}

impl KafkaOffsetsConfig {
    /// Parse the `offsets:` section; brokers (and TLS, SASL, properties) default to the sink's.
    pub fn from_section(section: &ConfigSection) -> Result<(Self, Connection)> {
        let c: KafkaOffsetsConfig = section.extract()?;
        crate::route::validate_topic_name(&c.topic)
            .map_err(|e| e.context("key `offsets.topic`"))?;
        if c.operation_timeout_ms == 0 {
            return Err(Error::config(
                "key `offsets.operation_timeout_ms`: expected at least 1",
            ));
        }
        let conn = match &c.brokers {
            Some(brokers) => Connection {
                brokers: brokers.clone(),
                tls: c.tls.clone(),
                sasl: c.sasl.clone(),
                properties: c.properties.clone(),
            },
            None => {
                let sink = kafka_sink_of(section)?.ok_or_else(|| {
                    Error::config(
                        "key `offsets.brokers`: required unless the sink is `type: kafka` (whose \
                         brokers are used by default)",
                    )
                })?;
                if c.tls.is_some() || c.sasl.is_some() || !c.properties.is_empty() {
                    return Err(Error::config(
                        "keys `offsets.tls`, `offsets.sasl`, `offsets.properties`: only allowed \
                         together with `offsets.brokers` (otherwise the sink's are used)",
                    ));
                }
                sink.connection()
            }
        };
        Ok((c, conn))
    }
}

/// The `sink:` section as a Kafka sink config, if the sink is `type: kafka`.
pub(crate) fn kafka_sink_of(section: &ConfigSection) -> Result<Option<KafkaSinkConfig>> {
    match section.extract_other::<TypeOnly>("sink")? {
        Some(t) if t.kind == "kafka" => section.extract_other::<KafkaSinkConfig>("sink"),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(yaml: &str) -> Result<KafkaSinkConfig> {
        KafkaSinkConfig::from_section(&ConfigSection::from_yaml("sink", yaml)?)
    }

    #[test]
    fn handling_modes_take_debeziums_names_and_refuse_others() {
        let c = sink(
            "type: kafka\nbrokers: 'b:9092'\ndecimal_handling_mode: precise\n\
             time_precision_mode: adaptive\nbinary_handling_mode: bytes\n\
             interval_handling_mode: numeric\nhstore_handling_mode: json\n",
        )
        .unwrap();
        assert_eq!(c.modes(), Modes::debezium());
        let e = sink("type: kafka\nbrokers: 'b:9092'\ntime_precision_mode: micro\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("time_precision_mode"), "{e}");
        assert!(
            e.contains("`adaptive`, `adaptive_time_microseconds`, `connect`, `isostring`"),
            "{e}"
        );
    }

    #[test]
    fn defaults_are_the_named_constants() {
        let c = sink("type: kafka\nbrokers: 'b:9092'\n").unwrap();
        assert_eq!(c.topic, DEFAULT_TOPIC_TEMPLATE);
        assert_eq!(c.message_topic, DEFAULT_MESSAGE_TOPIC);
        assert_eq!(c.linger_ms, DEFAULT_LINGER_MS);
        assert_eq!(c.max_in_flight_requests, DEFAULT_MAX_IN_FLIGHT_REQUESTS);
        assert!(c.tombstones);
        assert!(!c.schemas);
        assert!(!c.headers, "headers are opt-in, as Debezium writes none");
        assert_eq!(c.modes(), Modes::default());
        assert_eq!(c.delivery, Delivery::AtLeastOnce);
        assert_eq!(c.compression, Compression::None);
        let pc = c.producer_config(None);
        assert_eq!(pc.get("enable.idempotence"), Some("true"));
        assert_eq!(pc.get("acks"), Some("all"));
        assert_eq!(pc.get("security.protocol"), Some("plaintext"));
        assert_eq!(pc.get("transactional.id"), None);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let e = sink("type: kafka\nbrokers: b\nlinger: 5\n").unwrap_err();
        assert!(e.message().contains("linger"), "{e}");
        let e = sink("type: kafka\nbrokers: b\ncompression: brotli\n").unwrap_err();
        assert!(e.message().contains("sink.compression"), "{e}");
        let e = sink("type: kafka\nbrokers: b\ntopic: '{name}.{tabel}'\n").unwrap_err();
        assert!(e.message().contains("sink.topic"), "{e}");
        assert!(e.message().contains("tabel"), "{e}");
        let e = sink("type: kafka\nbrokers: b\ntopics: { orders: x }\n").unwrap_err();
        assert!(e.message().contains("sink.topics.orders"), "{e}");
        let e = sink("type: kafka\nbrokers: b\nmax_in_flight_requests: 6\n").unwrap_err();
        assert!(e.message().contains("max_in_flight_requests"), "{e}");
        let e = sink("type: kafka\nbrokers: b\ncreate_topics: { partitions: 0 }\n").unwrap_err();
        assert!(e.message().contains("create_topics.partitions"), "{e}");
    }

    #[test]
    fn tls_sasl_and_properties_become_librdkafka_properties() {
        let c = sink(
            "type: kafka\nbrokers: b\ntls: { ca_file: /ca.pem }\nsasl: { mechanism: SCRAM-SHA-512, \
             username: u, password: p }\nproperties: { linger.ms: 50, socket.keepalive.enable: true, \
             client.id: me }\n",
        )
        .unwrap();
        let pc = c.producer_config(Some("cdc-x"));
        assert_eq!(pc.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(pc.get("ssl.ca.location"), Some("/ca.pem"));
        assert_eq!(pc.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(pc.get("sasl.password"), Some("p"));
        assert_eq!(pc.get("linger.ms"), Some("50"), "properties win");
        assert_eq!(pc.get("socket.keepalive.enable"), Some("true"));
        assert_eq!(pc.get("client.id"), Some("me"));
        assert_eq!(pc.get("transactional.id"), Some("cdc-x"));
        assert!(!format!("{c:?}").contains("\"p\""), "secrets do not print");
    }

    #[test]
    fn offsets_default_to_the_sinks_brokers() {
        let config = connector_core::config::load_str(
            "name: p\nsource: { type: generator }\nsink: { type: kafka, brokers: 'k:1', sasl: \
             { mechanism: PLAIN, username: u, password: x } }\noffsets: { type: kafka }\n",
        )
        .unwrap();
        let (c, conn) = KafkaOffsetsConfig::from_section(&config.offsets).unwrap();
        assert_eq!(c.topic, DEFAULT_OFFSETS_TOPIC);
        assert_eq!(conn.brokers, "k:1");
        assert!(conn.sasl.is_some());

        let config = connector_core::config::load_str(
            "name: p\nsource: { type: generator }\nsink: { type: stdout }\noffsets: { type: kafka }\n",
        )
        .unwrap();
        let e = KafkaOffsetsConfig::from_section(&config.offsets).unwrap_err();
        assert!(e.message().contains("offsets.brokers"), "{e}");
    }
}
