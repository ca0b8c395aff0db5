//! PostgreSQL to a file through the `cdc` binary, with writes going on and `kill -9` in between.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use crate::common::{
    cdc_output, free_port, http_get, metric_value, read_jsonl, run_log, signal, spawn_run,
    spawn_run_env, versions, wait_timeout, wait_until, Workdir,
};

/// `CDC_TEST_PG_URL`; the test fails (never skips) without it.
pub fn pg_url() -> String {
    std::env::var("CDC_TEST_PG_URL")
        .expect("CDC_TEST_PG_URL is not set: run `eval \"$(scripts/services.sh up)\"` first")
}

fn url_for(db: &str) -> String {
    let base = pg_url();
    let (prefix, _) = base.rsplit_once('/').expect("URL has a database");
    format!("{prefix}/{db}")
}

pub async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// A database of its own, dropped (with the test's slot) at the end.
pub struct Db {
    pub name: String,
    pub client: Client,
}

impl Db {
    pub async fn new(prefix: &str) -> Db {
        let name = format!("e2e_{prefix}_{}", std::process::id());
        let admin = connect(&pg_url()).await;
        // Leftovers of an earlier run that failed half-way: an abandoned slot pins WAL.
        let stale = format!("e2e_{prefix}_%");
        let _ = admin
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                 WHERE slot_name LIKE $1 AND NOT active",
                &[&stale],
            )
            .await;
        for row in admin
            .query(
                "SELECT datname FROM pg_database WHERE datname LIKE $1",
                &[&stale],
            )
            .await
            .unwrap_or_default()
        {
            let db: String = row.get(0);
            let _ = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .await;
        }
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            admin.batch_execute(&sql).await.expect(&sql);
        }
        let client = connect(&url_for(&name)).await;
        Db { name, client }
    }

    pub fn url(&self) -> String {
        url_for(&self.name)
    }

    pub async fn drop(self, slot: &str) {
        let admin = connect(&pg_url()).await;
        let _ = admin
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await;
        let _ = admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_to_file_survives_kill_9_with_writes_going_on() {
    const KEYS: i64 = 200;
    // GIVEN a table with rows already in it (for the snapshot)
    let db = Db::new("pgfile").await;
    db.client
        .batch_execute(&format!(
            "CREATE TABLE orders (id int PRIMARY KEY, qty int NOT NULL, note text);
             INSERT INTO orders SELECT g, 0, 'initial' FROM generate_series(1, {KEYS}) g;"
        ))
        .await
        .unwrap();
    let slot = db.name.clone();
    let w = Workdir::new();
    let config = w.write(
        "pg.yaml",
        &format!(
            "name: {slot}\nsource: {{ type: postgres, url: '{}', tables: [public.orders], slot: {slot} }}\n\
             sink: {{ type: file, path: '{{dir}}/out.jsonl' }}\n\
             offsets: {{ type: file, path: '{{dir}}/pg.offsets' }}\n\
             pipeline: {{ offset_flush_interval_ms: 100, retry: {{ initial_backoff_ms: 100, max_backoff_ms: 1000 }} }}\n",
            db.url()
        ),
    );
    let out = w.path("out.jsonl");

    // WHEN cdc runs while a writer increments quantities, and is killed with SIGKILL twice
    let mut child = spawn_run(&config, Stdio::null());
    // (versions written before the snapshot's consistent point are, rightly, not in the log)
    assert!(
        wait_until(Duration::from_secs(30), || read_jsonl(&out).len()
            >= KEYS as usize),
        "snapshot did not arrive\n{}",
        run_log(&config)
    );
    let writer_client = connect(&db.url()).await;
    let writer = tokio::spawn(async move {
        for i in 0..600i64 {
            let id = (i * 37) % KEYS + 1;
            writer_client
                .execute(
                    "UPDATE orders SET qty = qty + 1, note = 'w' WHERE id = $1",
                    &[&(id as i32)],
                )
                .await
                .unwrap();
            if i % 100 == 0 {
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        }
    });
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let env = [
        ("CDC_HTTP__ADDRESS", address.as_str()),
        ("CDC_SOURCE__LAG_INTERVAL_MS", "200"),
    ];
    for _ in 0..2 {
        let before = read_jsonl(&out).len();
        assert!(
            wait_until(Duration::from_secs(30), || read_jsonl(&out).len()
                > before + 50),
            "no progress\n{}",
            run_log(&config)
        );
        signal(&child, "KILL");
        child.wait().unwrap();
        child = spawn_run_env(&config, Stdio::null(), &env);
    }
    writer.await.unwrap();

    // THEN every version of every row reaches the file, the last one last
    let rows = db
        .client
        .query("SELECT id, qty FROM orders ORDER BY id", &[])
        .await
        .unwrap();
    let expected: BTreeMap<i64, i64> = rows
        .iter()
        .map(|r| (i64::from(r.get::<_, i32>(0)), i64::from(r.get::<_, i32>(1))))
        .collect();
    let complete = wait_until(Duration::from_secs(60), || {
        let seen = versions(&out);
        expected
            .iter()
            .all(|(id, qty)| seen.get(id).and_then(|v| v.last()) == Some(qty))
    });
    let seen = versions(&out);
    assert!(complete, "final state not reached\n{}", run_log(&config));
    for (id, final_qty) in &expected {
        let v = &seen[id];
        for q in 0..=*final_qty {
            assert!(v.contains(&q), "key {id}: version {q} lost (saw {v:?})");
        }
    }

    // AND its endpoint reports snapshot progress and the slot's lag in bytes
    let (_, m) = http_get(port, "/metrics").expect("metrics endpoint");
    assert_eq!(
        metric_value(&m, "cdc_snapshot_tables_total", &[]),
        None,
        "no snapshot after a resume"
    );
    assert!(
        metric_value(&m, "cdc_source_lag_bytes", &[]).is_some(),
        "{m}"
    );
    assert!(
        metric_value(
            &m,
            "cdc_events_total",
            &["table=\"public.orders\"", "op=\"update\""]
        )
        .is_some(),
        "{m}"
    );
    assert_eq!(http_get(port, "/readyz").map(|r| r.0), Some(200));

    // AND SIGTERM stops it cleanly
    signal(&child, "TERM");
    let status = wait_timeout(&mut child, Duration::from_secs(30)).expect("exits");
    assert!(status.success(), "{}", run_log(&config));
    db.drop(&slot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_info_and_drop_are_safe_while_the_pipeline_runs() {
    // GIVEN a running PostgreSQL pipeline
    let db = Db::new("slotcmd").await;
    db.client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);")
        .await
        .unwrap();
    let slot = db.name.clone();
    let w = Workdir::new();
    let config = w.write(
        "pg.yaml",
        &format!(
            "name: {slot}\nsource: {{ type: postgres, url: '{}', tables: [public.t], slot: {slot} }}\n\
             sink: {{ type: file, path: '{{dir}}/out.jsonl' }}\noffsets: {{ type: file, path: '{{dir}}/o.offsets' }}\n",
            db.url()
        ),
    );
    let c = config.to_str().unwrap();
    let mut child = spawn_run(&config, Stdio::null());
    assert!(wait_until(Duration::from_secs(30), || read_jsonl(
        &w.path("out.jsonl")
    )
    .len()
        == 1));

    // WHEN asked about its slot, THEN it is shown active once streaming
    let mut text = String::new();
    wait_until(Duration::from_secs(10), || {
        let info = cdc_output(&["slot", "info", "-c", c]);
        assert!(
            info.status.success(),
            "{}",
            String::from_utf8_lossy(&info.stderr)
        );
        text = String::from_utf8_lossy(&info.stdout).into_owned();
        text.contains("active (walsender pid")
    });
    assert!(text.contains(&format!("slot {slot}")), "{text}");
    assert!(text.contains("active (walsender pid"), "{text}");
    assert!(text.contains("confirmed_flush_lsn:"), "{text}");

    // WHEN asked to drop it while running, THEN it refuses
    let out = cdc_output(&["slot", "drop", "-c", c, "--yes"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the pipeline is running"));

    // WHEN the pipeline is stopped, drop needs --yes, then drops it
    signal(&child, "TERM");
    assert!(wait_timeout(&mut child, Duration::from_secs(30))
        .unwrap()
        .success());
    assert_eq!(
        cdc_output(&["slot", "drop", "-c", c]).status.code(),
        Some(2)
    );
    let out = cdc_output(&["slot", "drop", "-c", c, "--yes"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("dropped"));
    let info = cdc_output(&["slot", "info", "-c", c]);
    assert!(String::from_utf8_lossy(&info.stdout).contains("does not exist"));
    db.drop(&slot).await;
}
