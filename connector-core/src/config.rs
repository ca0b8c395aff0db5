//! Loading the pipeline configuration: one YAML file merged with `CDC_`-prefixed environment
//! variables (`__` separates levels: `CDC_SOURCE__PASSWORD` sets `source.password`).
//!
//! The top level is parsed here; each of `source`, `sink` and `offsets` is a [`ConfigSection`]
//! whose `type` picks a connector from the [`Registry`](crate::Registry), and whose other keys that
//! connector parses itself with [`ConfigSection::extract`]. Every section rejects unknown keys, and
//! every error names the file (or environment variable), the key path and what was expected.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use figment::providers::{Env, Format as _, Yaml};
use figment::Figment;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Default bound on the bytes of events between source and sink (`pipeline.max_in_flight_bytes`).
/// 8 MiB drained as fast as 64 MiB in every benchmark (file and Kafka sinks, both sources) and
/// keeps the peak resident memory well under 100 MB; real memory is about twice the estimate
/// (BENCHMARKS.md).
pub const DEFAULT_MAX_IN_FLIGHT_BYTES: usize = 8 * 1024 * 1024;
/// Default interval between offset store writes (`pipeline.offset_flush_interval_ms`).
pub const DEFAULT_OFFSET_FLUSH_INTERVAL_MS: u64 = 1_000;
/// Default time allowed to drain in-flight events at shutdown (`pipeline.shutdown_timeout_ms`).
pub const DEFAULT_SHUTDOWN_TIMEOUT_MS: u64 = 30_000;
/// Default first restart delay after a retryable error (`pipeline.retry.initial_backoff_ms`).
pub const DEFAULT_INITIAL_BACKOFF_MS: u64 = 500;
/// Default longest restart delay (`pipeline.retry.max_backoff_ms`).
pub const DEFAULT_MAX_BACKOFF_MS: u64 = 60_000;
/// Default number of consecutive failed restarts before giving up; 0 means never give up.
pub const DEFAULT_MAX_RESTARTS: u32 = 0;

/// The environment variable prefix.
pub const ENV_PREFIX: &str = "CDC_";

/// Top-level keys; environment variables are only read for these, so that unrelated `CDC_*`
/// variables (`CDC_TEST_PG_URL`) are not mistaken for configuration.
pub const TOP_LEVEL_KEYS: &[&str] = &["name", "source", "sink", "offsets", "pipeline", "http"];

/// Default address of the health and metrics endpoint (`http.address`).
pub const DEFAULT_HTTP_ADDRESS: &str = "127.0.0.1:9187";

/// The health and metrics endpoint under `http:`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Serve `/healthz`, `/readyz` and `/metrics` (default true).
    pub enabled: bool,
    /// Address to listen on (default `127.0.0.1:9187`, loopback only; `0.0.0.0:9187` for all
    /// interfaces, e.g. for Kubernetes probes from outside the pod).
    pub address: String,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            enabled: true,
            address: DEFAULT_HTTP_ADDRESS.to_string(),
        }
    }
}

/// Runtime settings under `pipeline:`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineSettings {
    /// Most bytes of events held between source and sink before the source is paused.
    pub max_in_flight_bytes: usize,
    /// How often the durable position is written to the offset store, in milliseconds (0: after
    /// every durable batch).
    pub offset_flush_interval_ms: u64,
    /// How long a shutdown may take to drain in-flight events before giving up, in milliseconds.
    pub shutdown_timeout_ms: u64,
    /// Restart policy for retryable errors.
    pub retry: RetrySettings,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            max_in_flight_bytes: DEFAULT_MAX_IN_FLIGHT_BYTES,
            offset_flush_interval_ms: DEFAULT_OFFSET_FLUSH_INTERVAL_MS,
            shutdown_timeout_ms: DEFAULT_SHUTDOWN_TIMEOUT_MS,
            retry: RetrySettings::default(),
        }
    }
}

/// Restart policy under `pipeline.retry:`: exponential backoff with equal jitter (see
/// `runtime::backoff`): each delay is random in `[d/2, d]`, `d` doubling per failure from
/// `initial_backoff_ms` up to `max_backoff_ms`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// First delay, in milliseconds.
    pub initial_backoff_ms: u64,
    /// Longest delay, in milliseconds.
    pub max_backoff_ms: u64,
    /// Consecutive restarts without progress before the pipeline stops with the error; 0: never.
    pub max_restarts: u32,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            initial_backoff_ms: DEFAULT_INITIAL_BACKOFF_MS,
            max_backoff_ms: DEFAULT_MAX_BACKOFF_MS,
            max_restarts: DEFAULT_MAX_RESTARTS,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopLevel {
    name: String,
    source: TypeOnly,
    sink: TypeOnly,
    #[serde(default)]
    offsets: Option<TypeOnly>,
    #[serde(default)]
    pipeline: PipelineSettings,
    #[serde(default)]
    http: HttpSettings,
    /// Only the length is read here; each entry becomes a [`ConfigSection`].
    #[serde(default)]
    transforms: Vec<figment::value::Value>,
}

#[derive(Deserialize)]
struct TypeOnly {
    #[serde(rename = "type")]
    kind: String,
}

/// A loaded configuration: the pipeline name and settings, and the connector sections.
#[derive(Clone, Debug)]
pub struct Config {
    /// The pipeline name: the default for slot names, the offsets key and the topic prefix.
    pub name: String,
    /// Runtime settings.
    pub pipeline: PipelineSettings,
    /// The health and metrics endpoint.
    pub http: HttpSettings,
    /// `source:`.
    pub source: ConfigSection,
    /// `sink:`.
    pub sink: ConfigSection,
    /// `offsets:` (`type: file` at `./data/<name>.offsets` when absent).
    pub offsets: ConfigSection,
    /// `transforms:`, in order: one section per entry, keyed `transforms[i]`.
    pub transforms: Vec<ConfigSection>,
    /// The file it came from, if any.
    pub file: Option<PathBuf>,
}

/// One connector's section of the configuration (`source`, `sink` or `offsets`).
#[derive(Clone, Debug)]
pub struct ConfigSection {
    figment: Arc<Figment>,
    key: Arc<str>,
    kind: String,
}

impl ConfigSection {
    /// The key path of the section (`source`, `transforms[2]`).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value of its `type:` key, which picked the connector.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Parse the section into the connector's config type. The type should be
    /// `#[serde(deny_unknown_fields)]` and accept the `type` key (see [`ConnectorType`]).
    pub fn extract<T: DeserializeOwned>(&self) -> Result<T> {
        self.figment
            .extract_inner::<T>(&self.key)
            .map_err(|e| config_error_in(&self.figment, e, Some(&self.key)))
    }

    /// Parse another top-level section (an offsets store reading the sink's brokers), `None` when
    /// it is absent.
    pub fn extract_other<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        if !self.figment.contains(key) {
            return Ok(None);
        }
        self.figment
            .extract_inner::<T>(key)
            .map(Some)
            .map_err(|e| config_error_in(&self.figment, e, Some(key)))
    }

    /// The pipeline name.
    pub fn pipeline_name(&self) -> Result<String> {
        self.figment
            .extract_inner::<String>("name")
            .map_err(|e| config_error(&self.figment, e))
    }

    /// A section built from YAML text alone, for tests and for connectors built in code.
    pub fn from_yaml(key: &'static str, yaml: &str) -> Result<ConfigSection> {
        let figment = Figment::new().merge(Yaml::string(yaml));
        let figment = Figment::new().merge(figment::providers::Serialized::default(
            key,
            figment
                .extract::<figment::value::Value>()
                .map_err(|e| config_error(&figment, e))?,
        ));
        let kind = figment
            .extract_inner::<TypeOnly>(key)
            .map_err(|e| config_error(&figment, e))?
            .kind;
        Ok(ConfigSection {
            figment: Arc::new(figment),
            key: key.into(),
            kind,
        })
    }
}

/// The `type:` key every connector section carries; embed it in a connector's config struct as
/// `#[serde(rename = "type")] pub kind: ConnectorType` so that `deny_unknown_fields` accepts it.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct ConnectorType(pub String);

/// A secret string (a password): never printed, never serialised.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself, for handing to a driver. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

/// Turn a figment error into an [`Error`] that names the key path, the file or variable it came
/// from and what was expected.
fn config_error(figment: &Figment, e: figment::Error) -> Error {
    config_error_in(figment, e, None)
}

/// As [`config_error`], for errors of `extract_inner(section)`, which reports the section key
/// after the field path: put it first again.
fn config_error_in(figment: &Figment, e: figment::Error, section: Option<&str>) -> Error {
    let mut lines = Vec::new();
    for mut err in e {
        if let Some(key) = section {
            if err.path.last().map(String::as_str) == Some(key) {
                err.path.pop();
            }
            if err.path.first().map(String::as_str) != Some(key) {
                err.path.insert(0, key.to_string());
            }
        }
        let path = err
            .path
            .iter()
            .filter(|p| p.as_str() != "default")
            .cloned()
            .collect::<Vec<_>>()
            .join(".");
        let origin = err
            .metadata
            .as_ref()
            .map(|m| match &m.source {
                Some(figment::Source::File(f)) => format!("in {}", f.display()),
                Some(figment::Source::Custom(c)) => format!("in {c}"),
                _ if m.name.contains("environment") => {
                    let var = format!(
                        "{ENV_PREFIX}{}",
                        path.replace('.', "__").to_ascii_uppercase()
                    );
                    format!("in environment variable {var}")
                }
                _ => format!("in {}", m.name),
            })
            .unwrap_or_else(|| "in the configuration".to_string());
        let what = err.kind.to_string();
        if path.is_empty() {
            lines.push(format!("{what} ({origin})"));
        } else {
            lines.push(format!("key `{path}`: {what} ({origin})"));
        }
    }
    let _ = figment;
    Error::config(format!("invalid configuration: {}", lines.join("; ")))
}

/// Whether `name` matches the glob `pattern` (`*` any characters, `?` one), as `tables:` entries
/// such as `public.*` or `shop.order_?` are matched by every source.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Whether a `tables:` entry is a pattern rather than an exact name.
pub fn is_pattern(entry: &str) -> bool {
    entry.contains(['*', '?'])
}

/// Load `path` merged with the environment.
pub fn load(path: &Path) -> Result<Config> {
    if !path.exists() {
        return Err(Error::config(format!(
            "configuration file {} does not exist",
            path.display()
        )));
    }
    let figment = Figment::new()
        .merge(Yaml::file_exact(path))
        .merge(env_provider());
    from_figment(figment, Some(path.to_path_buf()))
}

/// Load YAML text merged with the environment (tests, embedded configs).
pub fn load_str(yaml: &str) -> Result<Config> {
    let figment = Figment::new()
        .merge(Yaml::string(yaml))
        .merge(env_provider());
    from_figment(figment, None)
}

fn env_provider() -> Env {
    Env::prefixed(ENV_PREFIX).split("__").filter(|k| {
        let first = k.as_str().split('.').next().unwrap_or("");
        TOP_LEVEL_KEYS
            .iter()
            .any(|top| first.eq_ignore_ascii_case(top))
    })
}

fn from_figment(figment: Figment, file: Option<PathBuf>) -> Result<Config> {
    let top: TopLevel = figment.extract().map_err(|e| config_error(&figment, e))?;
    validate_name(&top.name)?;
    validate_settings(&top.pipeline)?;
    let mut figment = figment;
    let offsets_kind = match top.offsets {
        Some(o) => o.kind,
        None => {
            let default = format!("./data/{}.offsets", top.name);
            figment = figment.join(figment::providers::Serialized::default(
                "offsets",
                serde_json::json!({ "type": "file", "path": default }),
            ));
            "file".to_string()
        }
    };
    let figment = Arc::new(figment);
    let section = |key: &'static str, kind: String| ConfigSection {
        figment: Arc::clone(&figment),
        key: key.into(),
        kind,
    };
    let transforms = transform_sections(&figment, top.transforms.len())?;
    Ok(Config {
        name: top.name,
        pipeline: top.pipeline,
        http: top.http,
        source: section("source", top.source.kind),
        sink: section("sink", top.sink.kind),
        offsets: section("offsets", offsets_kind),
        transforms,
        file,
    })
}

/// One [`ConfigSection`] per entry of the `transforms:` list, keyed `transforms[i]` so that
/// errors name the entry (`transforms[2].when`), each with its `type:`.
fn transform_sections(figment: &Arc<Figment>, count: usize) -> Result<Vec<ConfigSection>> {
    let origin = figment.find_metadata("transforms").cloned();
    let values: Vec<figment::value::Value> = if count == 0 {
        Vec::new()
    } else {
        figment
            .extract_inner("transforms")
            .map_err(|e| config_error(figment, e))?
    };
    let mut sections = Vec::with_capacity(values.len());
    for (i, value) in values.into_iter().enumerate() {
        let key: Arc<str> = format!("transforms[{i}]").into();
        let kind = value
            .find_ref("type")
            .and_then(|v| v.as_str().map(str::to_string))
            .ok_or_else(|| {
                Error::config(format!(
                    "key `{key}.type`: missing: every transform names its `type`"
                ))
            })?;
        let provider = SectionProvider {
            key: key.to_string(),
            value,
            metadata: origin
                .clone()
                .unwrap_or_else(|| figment::Metadata::named("the configuration")),
        };
        sections.push(ConfigSection {
            figment: Arc::new(Figment::from(provider)),
            key,
            kind,
        });
    }
    Ok(sections)
}

/// A figment provider of one value under one key, keeping the metadata (file) it came from.
struct SectionProvider {
    key: String,
    value: figment::value::Value,
    metadata: figment::Metadata,
}

impl figment::Provider for SectionProvider {
    fn metadata(&self) -> figment::Metadata {
        self.metadata.clone()
    }

    fn data(
        &self,
    ) -> std::result::Result<
        figment::value::Map<figment::Profile, figment::value::Dict>,
        figment::Error,
    > {
        let mut dict = figment::value::Dict::new();
        dict.insert(self.key.clone(), self.value.clone());
        Ok(figment::Profile::Default.collect(dict))
    }
}

fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(Error::config(format!(
            "key `name`: {name:?} is not a valid pipeline name: expected 1 to 63 characters of \
             letters, digits, `_`, `-` or `.`"
        )))
    }
}

fn validate_settings(s: &PipelineSettings) -> Result<()> {
    if s.max_in_flight_bytes < 64 * 1024 {
        return Err(Error::config(format!(
            "key `pipeline.max_in_flight_bytes`: {} is too small: expected at least 65536",
            s.max_in_flight_bytes
        )));
    }
    if s.retry.initial_backoff_ms == 0 || s.retry.max_backoff_ms < s.retry.initial_backoff_ms {
        return Err(Error::config(
            "key `pipeline.retry`: expected 0 < initial_backoff_ms <= max_backoff_ms",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct DemoSource {
        #[serde(rename = "type")]
        kind: ConnectorType,
        port: u16,
        password: Option<Secret>,
    }

    const GOOD: &str = "name: inv\nsource: { type: demo, port: 5432 }\nsink: { type: stdout }\n";

    #[test]
    fn loads_and_defaults_the_offsets_store() {
        let c = load_str(GOOD).unwrap();
        assert_eq!(c.name, "inv");
        assert_eq!(c.source.kind(), "demo");
        assert_eq!(c.offsets.kind(), "file");
        assert_eq!(c.pipeline, PipelineSettings::default());
        let s: DemoSource = c.source.extract().unwrap();
        assert_eq!(s.port, 5432);
    }

    #[test]
    fn unknown_top_level_key_is_named() {
        let e = load_str(&format!("{GOOD}colour: blue\n")).unwrap_err();
        eprintln!("{}", e.message());
        assert!(e.message().contains("colour"), "{}", e.message());
    }

    #[test]
    fn connector_errors_carry_the_key_path() {
        let c =
            load_str("name: inv\nsource: { type: demo, port: lots, prot: 1 }\nsink: { type: x }\n")
                .unwrap();
        let e = c.source.extract::<DemoSource>().unwrap_err();
        let m = e.message();
        eprintln!("{m}");
        assert!(m.contains("key `source.port`"), "{m}");
        assert!(m.contains("expected u16"), "{m}");
    }

    #[test]
    fn nested_pipeline_settings_reject_unknown_keys() {
        let e = load_str(&format!(
            "{GOOD}pipeline: {{ retry: {{ max_backofms: 3 }} }}\n"
        ))
        .unwrap_err();
        assert!(e.message().contains("pipeline.retry"), "{}", e.message());
        assert!(e.message().contains("max_backofms"), "{}", e.message());
    }

    #[test]
    fn bad_name_is_rejected() {
        let e = load_str("name: 'a b'\nsource: { type: x }\nsink: { type: y }\n").unwrap_err();
        assert!(e.message().contains("`name`"), "{}", e.message());
    }

    #[test]
    fn globs_match_table_patterns() {
        assert!(glob_match("order_*", "order_2024"));
        assert!(glob_match("t?", "t1"));
        assert!(!glob_match("t?", "t12"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXbYc"));
        assert!(!glob_match("a*b", "ac"));
        assert!(is_pattern("public.*") && !is_pattern("public.t"));
    }

    #[test]
    fn transforms_become_sections_keyed_by_index() {
        let c = load_str(&format!(
            "{GOOD}transforms:\n  - {{ type: filter, ops: [c] }}\n  - {{ type: mask, columns: [a.b.c], with: redact }}\n"
        ))
        .unwrap();
        assert_eq!(c.transforms.len(), 2);
        assert_eq!(c.transforms[1].key(), "transforms[1]");
        assert_eq!(c.transforms[1].kind(), "mask");
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Demo {
            #[serde(rename = "type")]
            kind: ConnectorType,
            ops: Vec<u8>,
        }
        let e = c.transforms[0].extract::<Demo>().unwrap_err();
        assert!(
            e.message().contains("key `transforms[0].ops"),
            "{}",
            e.message()
        );
        let e = load_str(&format!("{GOOD}transforms:\n  - {{ ops: [c] }}\n")).unwrap_err();
        assert!(
            e.message().contains("transforms[0].type"),
            "{}",
            e.message()
        );
        assert!(load_str(GOOD).unwrap().transforms.is_empty());
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "\"***\"");
    }
}
