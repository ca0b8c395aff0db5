//! Exactly-once delivery and the transactional offsets against a real Apache Kafka, with the
//! sources in containers too (`common::containers`), through `kill -9`: a `read_committed`
//! consumer sees every version of every row exactly once, in order.
//!
//! They need a Docker engine (the local broker `tansu` has no Kafka transactions). Without one,
//! each test prints that it did not run that part and why, and passes: the local services and
//! rdkafka's `MockCluster` tests cover the rest.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use mysql_async::prelude::Queryable as _;

use crate::common::containers::Containers;
use crate::common::{run_log, signal, spawn_run, wait_timeout, wait_until, Workdir};
use crate::kafka::read_topic;

/// Rows of the table.
const KEYS: i64 = 30;
/// Updates written while cdc is killed three times (after updates 50, 150 and 250).
const UPDATES: i64 = 300;

/// The containers, or `None` after saying why this test's real-Kafka part does not run.
async fn containers(test: &str) -> Option<Containers> {
    match Containers::start().await {
        Ok(c) => Some(c),
        Err(why) => {
            println!(
                "{test}: {why}: exactly-once and the transactional offsets against a real Kafka \
                 are not run here (the local services and rdkafka's MockCluster tests cover the rest)"
            );
            None
        }
    }
}

/// Where the rows live, and how the writer reaches them.
enum Db {
    Pg(tokio_postgres::Client),
    My(mysql_async::Conn),
}

impl Db {
    async fn exec(&mut self, sql: &str) {
        match self {
            Db::Pg(c) => c
                .batch_execute(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
            Db::My(c) => c
                .query_drop(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
        }
    }

    async fn balances(&mut self) -> BTreeMap<i64, i64> {
        let sql = "SELECT id, balance FROM accounts";
        match self {
            Db::Pg(c) => c
                .query(sql, &[])
                .await
                .unwrap()
                .iter()
                .map(|r| (i64::from(r.get::<_, i32>(0)), i64::from(r.get::<_, i32>(1))))
                .collect(),
            Db::My(c) => c
                .query::<(i64, i64), _>(sql)
                .await
                .unwrap()
                .into_iter()
                .collect(),
        }
    }
}

/// GIVEN `accounts` rows at balance 0 and a pipeline with `delivery: exactly_once` and its
/// offsets in Kafka; WHEN balances are incremented while cdc is killed with SIGKILL three times; THEN a
/// `read_committed` consumer sees, per key, the balances 0, 1, ... final, each exactly once.
async fn exactly_once_through_kill_9(
    c: &Containers,
    mut db: Db,
    name: &str,
    source_yaml: &str,
    table_topic: &str,
) {
    let w = Workdir::new();
    let brokers = &c.brokers;
    let topic = format!("{name}.{table_topic}");
    let config = w.write(
        "eo.yaml",
        &format!(
            "name: {name}\n{source_yaml}\
             sink: {{ type: kafka, brokers: '{brokers}', delivery: exactly_once, headers: false, \
                      create_topics: {{ partitions: 3 }} }}\n\
             offsets: {{ type: kafka, topic: {name}_offsets }}\n\
             pipeline: {{ offset_flush_interval_ms: 100, retry: {{ initial_backoff_ms: 100, max_backoff_ms: 1000 }} }}\n"
        ),
    );
    let mut child = spawn_run(&config, Stdio::null());
    assert!(
        wait_until(Duration::from_secs(120), || read_topic(brokers, &topic)
            .len()
            >= KEYS as usize),
        "snapshot did not reach the topic\n{}",
        run_log(&config)
    );
    for i in 0..UPDATES {
        let id = (i * 7) % KEYS + 1;
        db.exec(&format!(
            "UPDATE accounts SET balance = balance + 1 WHERE id = {id}"
        ))
        .await;
        if i % (UPDATES / 3) == UPDATES / 6 {
            signal(&child, "KILL");
            child.wait().unwrap();
            child = spawn_run(&config, Stdio::null());
        }
    }
    let expected = db.balances().await;
    let mut per_key: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    let complete = wait_until(Duration::from_secs(120), || {
        per_key.clear();
        for r in read_topic(brokers, &topic) {
            let (Some(key), Some(value)) = (r.key, r.value) else {
                continue;
            };
            let id = key["id"].as_i64().expect("key id");
            let balance = value["after"]["balance"].as_i64().expect("after.balance");
            per_key.entry(id).or_default().push(balance);
        }
        expected
            .iter()
            .all(|(id, b)| per_key.get(id).and_then(|v| v.last()) == Some(b))
    });
    assert!(complete, "final balances not reached\n{}", run_log(&config));
    for (id, last) in &expected {
        let want: Vec<i64> = (0..=*last).collect();
        assert_eq!(
            per_key[id], want,
            "key {id}: each balance exactly once, in order"
        );
    }
    signal(&child, "TERM");
    let status = wait_timeout(&mut child, Duration::from_secs(30)).expect("exits");
    assert!(status.success(), "{}", run_log(&config));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_exactly_once_into_real_kafka_through_kill_9() {
    let Some(c) = containers("postgres_exactly_once_into_real_kafka_through_kill_9").await else {
        return;
    };
    let (client, conn) = tokio_postgres::connect(&c.pg_url, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL in its container");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut db = Db::Pg(client);
    db.exec(&format!(
        "CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL); \
         INSERT INTO accounts SELECT g, 0 FROM generate_series(1, {KEYS}) g"
    ))
    .await;
    let name = "eo_pg";
    let source = format!(
        "source: {{ type: postgres, url: '{}', tables: [public.accounts], slot: {name} }}\n",
        c.pg_url
    );
    exactly_once_through_kill_9(&c, db, name, &source, "public.accounts").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_exactly_once_into_real_kafka_through_kill_9() {
    let Some(c) = containers("mariadb_exactly_once_into_real_kafka_through_kill_9").await else {
        return;
    };
    let conn = mysql_async::Conn::from_url(format!("{}/test", c.mysql_url))
        .await
        .expect("connect to MariaDB in its container");
    let mut db = Db::My(conn);
    db.exec("CREATE TABLE accounts (id INT PRIMARY KEY, balance INT NOT NULL)")
        .await;
    db.exec(&format!(
        "INSERT INTO accounts SELECT seq, 0 FROM seq_1_to_{KEYS}"
    ))
    .await;
    let name = "eo_my";
    let source = format!(
        "source: {{ type: mysql, url: '{}', tables: [test.accounts] }}\n",
        c.mysql_url
    );
    exactly_once_through_kill_9(&c, db, name, &source, "test.accounts").await;
}
