//! Outages under load: the broker down, PostgreSQL and MariaDB restarted, a source connection
//! killed. Each time `cdc` keeps running, and replaying what it wrote (the last event of each key,
//! a delete removing the key) gives exactly the table.
//!
//! A test that stops or restarts a service does it to a private instance of its own
//! (`common::instances`): the shared services are in use by other tests at the same time. The
//! killed-connection tests use the shared servers and kill only their own pipeline's connection.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable as _;
use serde_json::Value;

use crate::common::instances::{MariaDbInstance, PgInstance, TansuInstance};
use crate::common::{
    free_port, http_get, read_jsonl, run_log, signal, spawn_run_env, wait_timeout, wait_until,
    Running, Workdir,
};

/// Rows of the tested table before the load.
const KEYS: u64 = 100;
/// Statements per writer transaction.
const OPS_PER_TXN: u64 = 3;
/// Longest wait for any condition of these tests.
const TIMEOUT: Duration = Duration::from_secs(90);
/// Writer transactions committed between two steps of a test (enough that changes are in flight
/// when an outage starts, and that the stream is seen working after it).
const STEP_TXNS: u64 = 150;

/// A table's rows: id → (v, note).
type Rows = BTreeMap<i64, (i64, String)>;

/// The end state of a replay: the last event of each key, a delete (or a tombstone) removing it.
fn replay<'a>(records: impl IntoIterator<Item = (&'a Value, Option<&'a Value>)>) -> Rows {
    let mut rows = Rows::new();
    for (key, value) in records {
        let Some(id) = key["id"].as_i64() else {
            panic!("event without a key id: {key}");
        };
        match value {
            None | Some(Value::Null) => {
                rows.remove(&id);
            }
            Some(v) if v["op"] == "d" => {
                rows.remove(&id);
            }
            Some(v) => {
                let after = &v["after"];
                let (Some(val), Some(note)) = (after["v"].as_i64(), after["note"].as_str()) else {
                    panic!("event without after.v and after.note: {v}");
                };
                rows.insert(id, (val, note.to_string()));
            }
        }
    }
    rows
}

/// Replay of a file sink's output.
fn replay_file(path: &Path) -> Rows {
    let lines = read_jsonl(path);
    replay(lines.iter().map(|l| (&l["key"], Some(&l["value"]))))
}

/// Replay of a topic (records per partition in offset order; each key lives on one partition).
fn replay_topic(brokers: &str, topic: &str) -> Rows {
    let records = crate::kafka::read_topic(brokers, topic);
    let keys: Vec<Value> = records
        .iter()
        .map(|r| r.key.clone().unwrap_or(Value::Null))
        .collect();
    replay(
        records
            .iter()
            .zip(&keys)
            .map(|(r, k)| (k, r.value.as_ref())),
    )
}

/// What differs between a replay and the table, briefly.
fn diff(replayed: &Rows, table: &Rows) -> String {
    let missing: Vec<_> = table.keys().filter(|k| !replayed.contains_key(k)).collect();
    let extra: Vec<_> = replayed.keys().filter(|k| !table.contains_key(k)).collect();
    let wrong: Vec<_> = table
        .iter()
        .filter_map(|(k, v)| {
            replayed
                .get(k)
                .filter(|r| *r != v)
                .map(|r| format!("{k}: {r:?} instead of {v:?}"))
        })
        .collect();
    format!(
        "{} rows in the table, {} replayed; missing {missing:?}; deleted in the table but present {extra:?}; \
         wrong values {wrong:?}",
        table.len(),
        replayed.len()
    )
}

/// The SQL of the writer's transaction number `t`: `OPS_PER_TXN` upserts or deletes of keys
/// spread over `1..=KEYS + KEYS / 2`, so rows are updated, deleted and inserted again.
fn txn_statements(mysql: bool, t: u64) -> Vec<String> {
    (0..OPS_PER_TXN)
        .map(|o| {
            let step = t * OPS_PER_TXN + o;
            let id = (step * 7919) % (KEYS + KEYS / 2) + 1;
            if step.is_multiple_of(7) {
                format!("DELETE FROM items WHERE id = {id}")
            } else if mysql {
                format!(
                    "INSERT INTO items VALUES ({id}, {step}, 'n{step}') \
                     ON DUPLICATE KEY UPDATE v = VALUES(v), note = VALUES(note)"
                )
            } else {
                format!(
                    "INSERT INTO items VALUES ({id}, {step}, 'n{step}') \
                     ON CONFLICT (id) DO UPDATE SET v = excluded.v, note = excluded.note"
                )
            }
        })
        .collect()
}

/// A writer task's shared state: transactions committed so far, and the stop flag.
#[derive(Default)]
struct Load {
    committed: AtomicU64,
    stop: AtomicBool,
}

impl Load {
    fn committed(&self) -> u64 {
        self.committed.load(Ordering::SeqCst)
    }

    /// Stop the writer and wait for it.
    async fn end(&self, writer: tokio::task::JoinHandle<()>) {
        self.stop.store(true, Ordering::SeqCst);
        writer.await.expect("the writer task");
    }

    /// Wait until `n` more transactions than now are committed.
    fn wait_more(&self, n: u64, what: &str) {
        let target = self.committed() + n;
        assert!(
            wait_until(TIMEOUT, || self.committed() >= target),
            "{what}: the writer did not commit {n} more transactions"
        );
    }
}

/// Write transactions into PostgreSQL at `url` until stopped; on any error, reconnect (polling
/// while the server is down) and go on. A transaction whose commit failed may or may not have
/// been applied: the tests compare with the table as it ends, not with the writer's plan.
async fn pg_writer(url: String, load: Arc<Load>) {
    let mut client: Option<tokio_postgres::Client> = None;
    let mut t = 0u64;
    while !load.stop.load(Ordering::SeqCst) {
        let Some(c) = &client else {
            match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
                Ok((c, conn)) => {
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    client = Some(c);
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
            continue;
        };
        let sql = format!("BEGIN; {}; COMMIT", txn_statements(false, t).join("; "));
        match c.batch_execute(&sql).await {
            Ok(()) => {
                t += 1;
                load.committed.fetch_add(1, Ordering::SeqCst);
                // A steady load, not a flood: the 2 cores are shared with cdc and other tests.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err(_) => client = None,
        }
    }
}

/// [`pg_writer`] for MySQL/MariaDB.
async fn mysql_writer(url: String, db: String, load: Arc<Load>) {
    let mut conn: Option<mysql_async::Conn> = None;
    let mut t = 0u64;
    while !load.stop.load(Ordering::SeqCst) {
        let Some(c) = conn.as_mut() else {
            match mysql_async::Conn::from_url(format!("{url}/{db}")).await {
                Ok(c) => conn = Some(c),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
            continue;
        };
        let mut ok = c.query_drop("START TRANSACTION").await.is_ok();
        for sql in txn_statements(true, t) {
            ok = ok && c.query_drop(sql).await.is_ok();
        }
        ok = ok && c.query_drop("COMMIT").await.is_ok();
        if ok {
            t += 1;
            load.committed.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(2)).await;
        } else {
            conn = None;
        }
    }
}

async fn pg_connect(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    c
}

async fn pg_table(c: &tokio_postgres::Client) -> Rows {
    c.query("SELECT id, v, note FROM items", &[])
        .await
        .expect("read items")
        .iter()
        .map(|r| (i64::from(r.get::<_, i32>(0)), (r.get(1), r.get(2))))
        .collect()
}

async fn mysql_table(c: &mut mysql_async::Conn, db: &str) -> Rows {
    c.query::<(i64, i64, String), _>(format!("SELECT id, v, note FROM {db}.items"))
        .await
        .expect("read items")
        .into_iter()
        .map(|(id, v, note)| (id, (v, note)))
        .collect()
}

const PG_TABLE: &str =
    "CREATE TABLE items (id int PRIMARY KEY, v int8 NOT NULL, note text NOT NULL)";

/// A `cdc` run with its `/metrics` endpoint on a port of its own.
struct Cdc {
    child: Running,
    config: std::path::PathBuf,
    http: u16,
}

impl Cdc {
    fn spawn(w: &Workdir, yaml: &str) -> Cdc {
        let config = w.write("pipeline.yaml", yaml);
        let http = free_port();
        let address = format!("127.0.0.1:{http}");
        let child = spawn_run_env(&config, Stdio::null(), &[("CDC_HTTP__ADDRESS", &address)]);
        Cdc {
            child,
            config,
            http,
        }
    }

    /// The sum of every series of counter `metric` (0 while the endpoint does not answer).
    fn counter(&self, metric: &str) -> f64 {
        let Some((200, text)) = http_get(self.http, "/metrics") else {
            return 0.0;
        };
        text.lines()
            .filter(|l| l.split(['{', ' ']).next() == Some(metric))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Durable events so far.
    fn events(&self) -> f64 {
        self.counter("cdc_events_total")
    }

    /// Wait until `n` more events than now are durable.
    fn wait_events(&self, n: f64, what: &str) {
        let target = self.events() + n;
        assert!(
            wait_until(TIMEOUT, || self.events() >= target),
            "{what}: {n} more durable events did not come\n{}",
            self.log()
        );
    }

    fn log(&self) -> String {
        run_log(&self.config)
    }

    /// The pipeline restarted at least once (it saw the outage).
    fn assert_restarted(&self) {
        assert!(
            self.counter("cdc_restarts_total") >= 1.0,
            "cdc did not see the outage\n{}",
            self.log()
        );
    }

    /// cdc must still be running (it survived the outage), then stop with SIGTERM and exit 0.
    fn stop(mut self) {
        assert!(
            self.child.try_wait().expect("try_wait").is_none(),
            "cdc exited during the test\n{}",
            self.log()
        );
        signal(&self.child, "TERM");
        let status = wait_timeout(&mut self.child, Duration::from_secs(30)).expect("cdc exits");
        assert!(status.success(), "cdc exit {status}\n{}", self.log());
    }
}

/// The pipeline settings of these tests: fast retries, frequent offset flushes.
const PIPELINE: &str = "pipeline: { offset_flush_interval_ms: 100, retry: { initial_backoff_ms: 100, max_backoff_ms: 1000 } }\n";

/// Wait until replaying (`replayed`) equals the table as the load left it (`expected`).
fn assert_replay_converges(cdc: &Cdc, mut replayed: impl FnMut() -> Rows, expected: Rows) {
    assert!(
        expected.len() > KEYS as usize / 2,
        "the load left too few rows to check: {}",
        expected.len()
    );
    let mut last = Rows::new();
    let same = wait_until(TIMEOUT, || {
        last = replayed();
        last == expected
    });
    assert!(
        same,
        "replaying cdc's output does not give the table: {}\n{}",
        diff(&last, &expected),
        cdc.log()
    );
}

/// The pid of the walsender serving `slot` (None while no one streams from it).
async fn walsender(c: &tokio_postgres::Client, slot: &str) -> Option<i32> {
    c.query_opt(
        "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1",
        &[&slot],
    )
    .await
    .ok()
    .flatten()
    .and_then(|r| r.get::<_, Option<i32>>(0))
}

/// Poll until `slot` is served by a walsender other than `old`; its pid.
async fn wait_walsender(c: &tokio_postgres::Client, slot: &str, old: Option<i32>) -> i32 {
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        if let Some(pid) = walsender(c, slot).await.filter(|p| Some(*p) != old) {
            return pid;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no new walsender for slot {slot} (old {old:?})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pg_pipeline(name: &str, url: &str) -> String {
    format!(
        "name: {name}\n\
         source: {{ type: postgres, url: '{url}', tables: [public.items], slot: {name} }}\n\
         sink: {{ type: file, path: '{{dir}}/out.jsonl' }}\n\
         offsets: {{ type: file, path: '{{dir}}/offsets' }}\n{PIPELINE}"
    )
}

fn mysql_pipeline(name: &str, url: &str, db: &str) -> String {
    format!(
        "name: {name}\n\
         source: {{ type: mysql, url: '{url}', tables: [{db}.items] }}\n\
         sink: {{ type: file, path: '{{dir}}/out.jsonl' }}\n\
         offsets: {{ type: file, path: '{{dir}}/offsets' }}\n{PIPELINE}"
    )
}

/// PostgreSQL restarted (`pg_ctl restart -m fast`) while a writer goes on: cdc reconnects and
/// the file replays to the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_under_load_loses_nothing() {
    // GIVEN a private PostgreSQL with a table, and cdc streaming it into a file
    let pg = tokio::task::block_in_place(PgInstance::start);
    let url = pg.url("postgres");
    let admin = pg_connect(&url).await;
    admin
        .batch_execute(&format!(
            "{PG_TABLE}; INSERT INTO items SELECT g, 0, 'initial' FROM generate_series(1, {KEYS}) g"
        ))
        .await
        .unwrap();
    let w = Workdir::new();
    let slot = "outage_pg_restart";
    let cdc = Cdc::spawn(&w, &pg_pipeline(slot, &url));
    cdc.wait_events(KEYS as f64, "snapshot");
    let load = Arc::new(Load::default());
    let writer = tokio::spawn(pg_writer(url.clone(), load.clone()));
    load.wait_more(STEP_TXNS, "before the restart");
    cdc.wait_events(1.0, "streaming before the restart");
    let before = walsender(&admin, slot).await;
    assert!(before.is_some(), "cdc streams from {slot}");
    drop(admin);

    // WHEN the server restarts under the load
    tokio::task::block_in_place(|| pg.restart());

    // THEN cdc streams again from a new walsender, and the file replays to the table
    let admin = pg_connect(&url).await;
    wait_walsender(&admin, slot, before).await;
    load.wait_more(STEP_TXNS, "after the restart");
    load.end(writer).await;
    let table = pg_table(&admin).await;
    cdc.assert_restarted();
    assert_replay_converges(&cdc, || replay_file(&w.path("out.jsonl")), table);
    cdc.stop();
}

/// The walsender of cdc's slot ended with `pg_terminate_backend` on the shared server while a
/// writer goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_walsender_terminated_under_load_loses_nothing() {
    // GIVEN a database of its own on the shared server, and cdc streaming it into a file
    let db = crate::postgres::Db::new("outkill").await;
    db.client
        .batch_execute(&format!(
            "{PG_TABLE}; INSERT INTO items SELECT g, 0, 'initial' FROM generate_series(1, {KEYS}) g"
        ))
        .await
        .unwrap();
    let slot = db.name.clone();
    let w = Workdir::new();
    let cdc = Cdc::spawn(&w, &pg_pipeline(&slot, &db.url()));
    cdc.wait_events(KEYS as f64, "snapshot");
    let load = Arc::new(Load::default());
    let writer = tokio::spawn(pg_writer(db.url(), load.clone()));
    load.wait_more(STEP_TXNS, "before the kill");
    cdc.wait_events(1.0, "streaming before the kill");

    // WHEN the walsender of this pipeline's slot (and only it) is terminated
    let old = wait_walsender(&db.client, &slot, None).await;
    let killed: bool = db
        .client
        .query_one("SELECT pg_terminate_backend($1)", &[&old])
        .await
        .unwrap()
        .get(0);
    assert!(killed, "walsender {old} terminated");

    // THEN cdc streams again, and the file replays to the table
    wait_walsender(&db.client, &slot, Some(old)).await;
    load.wait_more(STEP_TXNS, "after the kill");
    load.end(writer).await;
    let out = w.path("out.jsonl");
    let table = pg_table(&db.client).await;
    assert_replay_converges(&cdc, || replay_file(&out), table);
    cdc.stop();
    db.drop(&slot).await;
}

/// Local ports of the established TCP connections of process `pid` to port `remote`
/// (from `/proc`: the process's socket inodes, matched in `/proc/net/tcp{,6}`).
fn connections_to(pid: u32, remote: u16) -> HashSet<u16> {
    let inodes: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| {
                let link = std::fs::read_link(e.ok()?.path()).ok()?;
                let s = link.to_str()?;
                Some(s.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
            })
            .collect()
        })
        .unwrap_or_default();
    let port = |addr: &str| u16::from_str_radix(addr.rsplit(':').next()?, 16).ok();
    let mut out = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            if f.len() > 9 && f[3] == "01" && port(f[2]) == Some(remote) && inodes.contains(f[9]) {
                out.extend(port(f[1]));
            }
        }
    }
    out
}

/// The thread id of the binlog dump of process `pid` on the server of `conn` (port `port`).
async fn binlog_dump_thread(conn: &mut mysql_async::Conn, pid: u32, port: u16) -> Option<u64> {
    let mine = connections_to(pid, port);
    let threads: Vec<(u64, String)> = conn
        .query(
            "SELECT ID, HOST FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'",
        )
        .await
        .ok()?;
    threads.into_iter().find_map(|(id, host)| {
        let client_port: u16 = host.rsplit(':').next()?.parse().ok()?;
        mine.contains(&client_port).then_some(id)
    })
}

/// Poll until cdc (`pid`) has a binlog dump thread other than `old`; its id.
async fn wait_dump_thread(
    conn: &mut mysql_async::Conn,
    pid: u32,
    port: u16,
    old: Option<u64>,
) -> u64 {
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        if let Some(id) = binlog_dump_thread(conn, pid, port)
            .await
            .filter(|id| Some(*id) != old)
        {
            return id;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no new binlog dump thread of cdc (old {old:?})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A database `db` with the `items` table on the server at `url`.
async fn mysql_setup(url: &str, db: &str) -> mysql_async::Conn {
    let mut conn = mysql_async::Conn::from_url(url.to_string())
        .await
        .expect("connect");
    for sql in [
        format!("DROP DATABASE IF EXISTS {db}"),
        format!("CREATE DATABASE {db}"),
        format!("CREATE TABLE {db}.items (id INT PRIMARY KEY, v BIGINT NOT NULL, note VARCHAR(40) NOT NULL)"),
        format!("INSERT INTO {db}.items SELECT seq, 0, 'initial' FROM {db}.seq_1_to_{KEYS}"),
    ] {
        conn.query_drop(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    conn
}

/// The port of a `mysql://user:password@host:port` URL.
fn url_port(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or(3306)
}

/// MariaDB restarted (clean shutdown, start again) while a writer goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_restart_under_load_loses_nothing() {
    // GIVEN a private MariaDB with a table, and cdc streaming it into a file
    let mut my = tokio::task::block_in_place(MariaDbInstance::start);
    let url = my.url();
    let db = "outage";
    let conn = mysql_setup(&url, db).await;
    let w = Workdir::new();
    let cdc = Cdc::spawn(&w, &mysql_pipeline("outage_my_restart", &url, db));
    cdc.wait_events(KEYS as f64, "snapshot");
    let load = Arc::new(Load::default());
    let writer = tokio::spawn(mysql_writer(url.clone(), db.to_string(), load.clone()));
    load.wait_more(STEP_TXNS, "before the restart");
    cdc.wait_events(1.0, "streaming before the restart");
    drop(conn);

    // WHEN the server restarts under the load
    tokio::task::block_in_place(|| my.restart());

    // THEN cdc streams again (a binlog dump of its own on the new server), and the file replays
    // to the table
    let mut conn = mysql_async::Conn::from_url(url.clone()).await.unwrap();
    wait_dump_thread(&mut conn, cdc.child.id(), my.port, None).await;
    load.wait_more(STEP_TXNS, "after the restart");
    load.end(writer).await;
    let table = mysql_table(&mut conn, db).await;
    cdc.assert_restarted();
    assert_replay_converges(&cdc, || replay_file(&w.path("out.jsonl")), table);
    cdc.stop();
}

/// cdc's binlog dump thread ended with `KILL` on the shared server while a writer goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_binlog_dump_killed_under_load_loses_nothing() {
    // GIVEN a database of its own on the shared server, and cdc streaming it into a file
    let url = std::env::var("CDC_TEST_MYSQL_URL")
        .expect("CDC_TEST_MYSQL_URL is not set: run `eval \"$(scripts/services.sh up)\"` first");
    let db = format!("e2e_outkill_{}", std::process::id());
    let mut conn = mysql_setup(&url, &db).await;
    let w = Workdir::new();
    let cdc = Cdc::spawn(&w, &mysql_pipeline(&db, &url, &db));
    cdc.wait_events(KEYS as f64, "snapshot");
    let load = Arc::new(Load::default());
    let writer = tokio::spawn(mysql_writer(url.clone(), db.clone(), load.clone()));
    load.wait_more(STEP_TXNS, "before the kill");
    cdc.wait_events(1.0, "streaming before the kill");

    // WHEN this pipeline's binlog dump thread (and only it) is killed
    let port = url_port(&url);
    let old = wait_dump_thread(&mut conn, cdc.child.id(), port, None).await;
    conn.query_drop(format!("KILL {old}")).await.unwrap();

    // THEN cdc streams again, and the file replays to the table
    wait_dump_thread(&mut conn, cdc.child.id(), port, Some(old)).await;
    load.wait_more(STEP_TXNS, "after the kill");
    load.end(writer).await;
    let out = w.path("out.jsonl");
    let table = mysql_table(&mut conn, &db).await;
    assert_replay_converges(&cdc, || replay_file(&out), table);
    cdc.stop();
    conn.query_drop(format!("DROP DATABASE IF EXISTS {db}"))
        .await
        .unwrap();
}

/// The broker stopped under load for longer than a batch may take (`message_timeout_ms`), so
/// that cdc's sink fails and the pipeline restarts against a broker that is not there, then
/// started again: the topic replays to the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_under_load_loses_nothing() {
    // GIVEN a private broker, a database of its own on the shared PostgreSQL, and cdc streaming
    // it into a 3-partition topic
    let mut broker = tokio::task::block_in_place(TansuInstance::start);
    let brokers = broker.brokers();
    let db = crate::postgres::Db::new("outbroker").await;
    db.client
        .batch_execute(&format!(
            "{PG_TABLE}; INSERT INTO items SELECT g, 0, 'initial' FROM generate_series(1, {KEYS}) g"
        ))
        .await
        .unwrap();
    let name = db.name.clone();
    let topic = format!("{name}.public.items");
    let w = Workdir::new();
    let cdc = Cdc::spawn(
        &w,
        &format!(
            "name: {name}\n\
             source: {{ type: postgres, url: '{}', tables: [public.items], slot: {name} }}\n\
             sink: {{ type: kafka, brokers: '{brokers}', headers: false, create_topics: {{ partitions: 3 }}, \
                      message_timeout_ms: 2000, operation_timeout_ms: 2000 }}\n\
             offsets: {{ type: file, path: '{{dir}}/offsets' }}\n{PIPELINE}",
            db.url()
        ),
    );
    cdc.wait_events(KEYS as f64, "snapshot");
    let load = Arc::new(Load::default());
    let writer = tokio::spawn(pg_writer(db.url(), load.clone()));
    load.wait_more(STEP_TXNS, "before the outage");
    cdc.wait_events(1.0, "streaming before the outage");

    // WHEN the broker is down while the writer goes on, until cdc's sink has failed and the
    // pipeline has restarted twice without a broker
    let restarts = cdc.counter("cdc_restarts_total");
    tokio::task::block_in_place(|| broker.stop());
    assert!(
        wait_until(TIMEOUT, || cdc.counter("cdc_restarts_total")
            >= restarts + 2.0),
        "cdc did not notice the broker outage\n{}",
        cdc.log()
    );
    load.wait_more(STEP_TXNS, "during the outage");
    tokio::task::block_in_place(|| broker.start_again());

    // THEN cdc delivers again, and the topic replays to the table
    cdc.wait_events(1.0, "delivering after the outage");
    load.wait_more(STEP_TXNS, "after the outage");
    load.end(writer).await;
    let table = pg_table(&db.client).await;
    assert_replay_converges(&cdc, || replay_topic(&brokers, &topic), table);
    cdc.stop();
    db.drop(&name).await;
}
