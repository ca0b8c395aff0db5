//! Debezium's transaction metadata through the `cdc` binary, PostgreSQL to Kafka: BEGIN and END
//! records in `<name>.transaction` and the `transaction` block of every event.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{run_log, signal, spawn_run, wait_timeout, wait_until, Workdir};
use crate::kafka::{brokers, read_topic};
use crate::postgres::{connect, pg_url, Db};

/// How long the pipeline may take (a safety net, not a timing assertion).
const TIMEOUT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_table_transaction_is_framed_by_begin_and_end_with_debeziums_counts() {
    let brokers = brokers();
    // GIVEN two tables and a pipeline with transaction metadata, streaming from now
    let db = Db::new("txnmeta").await;
    db.client
        .batch_execute(
            "CREATE TABLE a (id int PRIMARY KEY, v text);
             CREATE TABLE b (id int PRIMARY KEY, v text);",
        )
        .await
        .unwrap();
    let name = db.name.clone();
    let w = Workdir::new();
    let config = w.write(
        "txn.yaml",
        &format!(
            "name: {name}\n\
             source: {{ type: postgres, url: '{}', tables: [public.a, public.b], slot: {name}, snapshot: never }}\n\
             sink: {{ type: kafka, brokers: '{brokers}', transaction_metadata: true, create_topics: {{ partitions: 1 }} }}\n\
             offsets: {{ type: file, path: '{{dir}}/offsets' }}\n",
            db.url()
        ),
    );
    let mut child = spawn_run(&config, Stdio::null());
    let admin = connect(&pg_url()).await;
    let mut slot = false;
    for _ in 0..(TIMEOUT.as_millis() / 50) {
        slot = admin
            .query_opt(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
                &[&name],
            )
            .await
            .unwrap()
            .is_some();
        if slot || matches!(child.try_wait(), Ok(Some(_))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(slot, "cdc created no slot\n{}", run_log(&config));

    // WHEN a transaction writes both tables (with a key change in b), and then a second one
    db.client
        .batch_execute(
            "BEGIN;
             INSERT INTO a VALUES (1, 'x'); INSERT INTO b VALUES (1, 'y');
             INSERT INTO a VALUES (2, 'z'); UPDATE b SET id = 2 WHERE id = 1;
             COMMIT;
             INSERT INTO a VALUES (3, 'w');",
        )
        .await
        .unwrap();
    let txn_topic = format!("{name}.transaction");
    assert!(
        wait_until(TIMEOUT, || read_topic(&brokers, &txn_topic).len() >= 4),
        "no BEGIN/END records\n{}",
        run_log(&config)
    );
    signal(&child, "TERM");
    let status = wait_timeout(&mut child, Duration::from_secs(30)).expect("cdc exits");
    assert!(status.success(), "{}", run_log(&config));

    // THEN the transaction topic holds BEGIN, END, BEGIN, END with Debezium's fields and counts
    let txns: Vec<(Value, Value)> = read_topic(&brokers, &txn_topic)
        .into_iter()
        .map(|r| (r.key.unwrap(), r.value.unwrap()))
        .collect();
    let statuses: Vec<&str> = txns
        .iter()
        .map(|(_, v)| v["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["BEGIN", "END", "BEGIN", "END"]);
    let (begin_key, begin) = &txns[0];
    let (end_key, end) = &txns[1];
    assert_eq!(begin_key["id"], begin["id"]);
    assert_eq!(end_key["id"], end["id"]);
    assert_eq!(begin["event_count"], Value::Null);
    assert_eq!(begin["data_collections"], Value::Null);
    // A key change is a delete and a create: five events, public.a before public.b (Debezium's
    // HashMap order).
    assert_eq!(end["event_count"], 5);
    assert_eq!(
        end["data_collections"],
        json!([
            {"data_collection": "public.a", "event_count": 2},
            {"data_collection": "public.b", "event_count": 3}
        ])
    );
    assert_eq!(begin["ts_ms"], end["ts_ms"], "both carry the commit time");
    assert_eq!(txns[3].1["event_count"], 1);

    // AND every event carries its transaction block, numbered as Debezium numbers them
    let events = |table: &str| -> Vec<Value> {
        read_topic(&brokers, &format!("{name}.public.{table}"))
            .into_iter()
            .filter_map(|r| r.value)
            .collect()
    };
    let (a, b) = (events("a"), events("b"));
    let xid = a[0]["source"]["txId"].as_i64().unwrap();
    let block = |v: &Value| {
        let t = &v["transaction"];
        (
            v["op"].as_str().unwrap().to_string(),
            t["total_order"].as_u64().unwrap(),
            t["data_collection_order"].as_u64().unwrap(),
        )
    };
    let first_txn = |v: &&Value| v["source"]["txId"].as_i64() == Some(xid);
    assert_eq!(
        a.iter().filter(first_txn).map(block).collect::<Vec<_>>(),
        [("c".to_string(), 1, 1), ("c".to_string(), 3, 2)]
    );
    assert_eq!(
        b.iter().filter(first_txn).map(block).collect::<Vec<_>>(),
        [
            ("c".to_string(), 2, 1),
            ("d".to_string(), 4, 2),
            ("c".to_string(), 5, 3)
        ]
    );
    // Debezium's PostgreSQL ids: txId:LSN, the event's LSN in its block
    for v in a.iter().chain(&b).filter(first_txn) {
        assert_eq!(
            v["transaction"]["id"],
            format!("{xid}:{}", v["source"]["lsn"]),
            "{v}"
        );
    }
    for id in [&begin["id"], &end["id"]] {
        assert!(id.as_str().unwrap().starts_with(&format!("{xid}:")), "{id}");
    }
    assert_eq!(
        begin["id"], a[0]["transaction"]["id"],
        "BEGIN's LSN is the transaction's first record"
    );
    db.drop(&name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mariadb_transaction_is_framed_by_begin_and_end_lines_with_its_gtid() {
    use crate::common::read_jsonl;
    use mysql_async::prelude::Queryable as _;
    let url = std::env::var("CDC_TEST_MYSQL_URL")
        .expect("CDC_TEST_MYSQL_URL is not set: run `eval \"$(scripts/services.sh up)\"` first");
    // GIVEN two tables with a row, and a pipeline with transaction metadata into a file
    let db = format!("e2e_txnmeta_{}", std::process::id());
    let mut conn = mysql_async::Conn::from_url(url.as_str()).await.unwrap();
    for sql in [
        format!("DROP DATABASE IF EXISTS {db}"),
        format!("CREATE DATABASE {db}"),
        format!("CREATE TABLE {db}.a (id INT PRIMARY KEY, v TEXT)"),
        format!("CREATE TABLE {db}.b (id INT PRIMARY KEY, v TEXT)"),
        format!("INSERT INTO {db}.a VALUES (0, 'snapshot')"),
    ] {
        conn.query_drop(&sql).await.unwrap();
    }
    let w = Workdir::new();
    let config = w.write(
        "my.yaml",
        &format!(
            "name: {db}\n\
             source: {{ type: mysql, url: '{url}', tables: [{db}.a, {db}.b], schema_history_path: '{{dir}}/history' }}\n\
             sink: {{ type: file, path: '{{dir}}/out.jsonl', transaction_metadata: true }}\n\
             offsets: {{ type: file, path: '{{dir}}/offsets' }}\n"
        ),
    );
    let out = w.path("out.jsonl");
    let mut child = spawn_run(&config, Stdio::null());
    // (the snapshot's row: streaming starts after it)
    assert!(
        wait_until(TIMEOUT, || !read_jsonl(&out).is_empty()),
        "no snapshot\n{}",
        run_log(&config)
    );
    // WHEN a transaction writes both tables
    conn.query_drop(format!(
        "BEGIN; INSERT INTO {db}.a VALUES (1, 'x'); INSERT INTO {db}.b VALUES (1, 'y'); \
         INSERT INTO {db}.a VALUES (2, 'z'); COMMIT"
    ))
    .await
    .unwrap();
    assert!(
        wait_until(TIMEOUT, || read_jsonl(&out).len() >= 6),
        "the transaction did not arrive\n{}",
        run_log(&config)
    );
    signal(&child, "TERM");
    let status = wait_timeout(&mut child, Duration::from_secs(30)).expect("cdc exits");
    assert!(status.success(), "{}", run_log(&config));
    // THEN BEGIN, the three events with their blocks, END with the counts, keyed by the GTID
    let lines = read_jsonl(&out);
    let streamed = &lines[1..];
    assert_eq!(streamed.len(), 5, "{streamed:?}");
    let gtid = streamed[1]["value"]["source"]["gtid"].clone();
    assert!(gtid.is_string(), "{gtid}");
    assert_eq!(streamed[0]["value"]["status"], "BEGIN");
    assert_eq!(streamed[0]["key"]["id"], gtid);
    let blocks: Vec<Value> = streamed[1..4]
        .iter()
        .map(|l| l["value"]["transaction"].clone())
        .collect();
    assert_eq!(
        blocks,
        [(1, 1), (2, 1), (3, 2)]
            .map(|(t, d)| json!({"id": gtid, "total_order": t, "data_collection_order": d}))
    );
    let end = &streamed[4]["value"];
    assert_eq!(end["status"], "END");
    assert_eq!(end["id"], gtid);
    assert_eq!(end["event_count"], 3);
    let mut collections: Vec<(String, u64)> = end["data_collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["data_collection"].as_str().unwrap().to_string(),
                c["event_count"].as_u64().unwrap(),
            )
        })
        .collect();
    collections.sort();
    assert_eq!(
        collections,
        [(format!("{db}.a"), 2), (format!("{db}.b"), 1)]
    );
    conn.query_drop(format!("DROP DATABASE IF EXISTS {db}"))
        .await
        .unwrap();
}
