//! MariaDB to a file through the `cdc` binary, with writes going on and `kill -9` in between.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use mysql_async::prelude::Queryable as _;
use mysql_async::Conn;

use crate::common::{
    read_jsonl, run_log, signal, spawn_run, versions, wait_timeout, wait_until, Workdir,
};

/// `CDC_TEST_MYSQL_URL`; the test fails (never skips) without it.
fn mysql_url() -> String {
    std::env::var("CDC_TEST_MYSQL_URL")
        .expect("CDC_TEST_MYSQL_URL is not set: run `eval \"$(scripts/services.sh up)\"` first")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_to_file_survives_kill_9_with_writes_going_on() {
    const KEYS: i64 = 200;
    // GIVEN a database of its own with rows already in it
    let db = format!("e2e_myfile_{}", std::process::id());
    let mut conn = Conn::from_url(mysql_url()).await.expect("connect");
    for sql in [
        format!("DROP DATABASE IF EXISTS {db}"),
        format!("CREATE DATABASE {db}"),
        format!(
            "CREATE TABLE {db}.orders (id INT PRIMARY KEY, qty INT NOT NULL, note VARCHAR(20))"
        ),
        format!("INSERT INTO {db}.orders SELECT seq, 0, 'initial' FROM {db}.seq_1_to_{KEYS}"),
    ] {
        conn.query_drop(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let w = Workdir::new();
    let config = w.write(
        "my.yaml",
        &format!(
            "name: {db}\nsource: {{ type: mysql, url: '{}', tables: [{db}.orders], schema_history_path: '{{dir}}/my.schema-history' }}\n\
             sink: {{ type: file, path: '{{dir}}/out.jsonl' }}\n\
             offsets: {{ type: file, path: '{{dir}}/my.offsets' }}\n\
             pipeline: {{ offset_flush_interval_ms: 100, retry: {{ initial_backoff_ms: 100, max_backoff_ms: 1000 }} }}\n",
            mysql_url()
        ),
    );
    let out = w.path("out.jsonl");
    let mut child = spawn_run(&config, Stdio::null());
    assert!(
        wait_until(Duration::from_secs(30), || read_jsonl(&out).len()
            >= KEYS as usize),
        "snapshot did not arrive\n{}",
        run_log(&config)
    );

    // WHEN quantities are incremented while cdc is killed with SIGKILL twice
    let mut writer_conn = Conn::from_url(mysql_url()).await.unwrap();
    let table = format!("{db}.orders");
    let writer = tokio::spawn(async move {
        for i in 0..600i64 {
            let id = (i * 37) % KEYS + 1;
            writer_conn
                .exec_drop(
                    format!("UPDATE {table} SET qty = qty + 1, note = 'w' WHERE id = ?"),
                    (id,),
                )
                .await
                .unwrap();
            if i % 100 == 0 {
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        }
    });
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
        child = spawn_run(&config, Stdio::null());
    }
    writer.await.unwrap();

    // THEN every version of every row reaches the file, the last one last
    let expected: BTreeMap<i64, i64> = conn
        .query::<(i64, i64), _>(format!("SELECT id, qty FROM {db}.orders"))
        .await
        .unwrap()
        .into_iter()
        .collect();
    let complete = wait_until(Duration::from_secs(60), || {
        let seen = versions(&out);
        expected
            .iter()
            .all(|(id, qty)| seen.get(id).and_then(|v| v.last()) == Some(qty))
    });
    assert!(complete, "final state not reached\n{}", run_log(&config));
    let seen = versions(&out);
    for (id, final_qty) in &expected {
        for q in 0..=*final_qty {
            assert!(seen[id].contains(&q), "key {id}: version {q} lost");
        }
    }
    signal(&child, "TERM");
    let status = wait_timeout(&mut child, Duration::from_secs(30)).expect("exits");
    assert!(status.success(), "{}", run_log(&config));
    conn.query_drop(format!("DROP DATABASE IF EXISTS {db}"))
        .await
        .unwrap();
}
