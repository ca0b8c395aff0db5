//! `transforms:` end to end: PostgreSQL and MariaDB into the real broker through the `cdc` binary.

use std::process::Stdio;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Headers as _;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::common::{
    cdc_output, free_port, http_get, metric_value, run_log, signal, spawn_run_env, wait_timeout,
    wait_until, Workdir,
};
use crate::kafka::brokers;
use crate::postgres::Db;

/// One record as bytes, with its headers.
struct Raw {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
}

impl Raw {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(self.value.as_deref().expect("a value")).expect("JSON value")
    }
}

/// Every record of `topic` from the beginning to the current end (empty when it does not exist).
fn read_raw(brokers: &str, topic: &str) -> Vec<Raw> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "cdc-e2e-transforms")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let Ok(md) = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)) else {
        return Vec::new();
    };
    let partitions = md
        .topics()
        .first()
        .filter(|t| t.error().is_none())
        .map_or(0, |t| t.partitions().len()) as i32;
    if partitions == 0 {
        return Vec::new();
    }
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut at_end = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while at_end.len() < partitions as usize && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => panic!("consuming {topic}: {e}"),
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Raw {
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                    headers,
                });
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Hex SHA-256 of `text`, by `sha256sum` (independent of cdc's own hashing).
fn sha256sum(text: &str) -> String {
    use std::io::Write as _;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// Stop a run with SIGTERM (it drains and stores its position) and wait for it.
fn stop(child: &mut crate::common::Running, config: &std::path::Path) {
    signal(child, "TERM");
    let status = wait_timeout(child, Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| s.success()),
        "cdc did not stop cleanly: {status:?}\n{}",
        run_log(config)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outbox_mask_and_columns_reach_kafka_transformed() {
    let brokers = brokers();
    // GIVEN users with secrets and an outbox table
    let db = Db::new("xform").await;
    let name = db.name.clone();
    let aggregate = format!("order_{}", std::process::id());
    db.client
        .batch_execute(
            "CREATE TABLE users (id int PRIMARY KEY, email text, password_hash text, name text);
             CREATE TABLE outbox (id uuid PRIMARY KEY, aggregatetype text NOT NULL,
                 aggregateid text NOT NULL, type text NOT NULL, payload jsonb);",
        )
        .await
        .unwrap();
    let w = Workdir::new();
    let config = w.write(
        "pg.yaml",
        &format!(
            "name: {name}\n\
             source: {{ type: postgres, url: '{}', tables: [public.users, public.outbox], slot: {name} }}\n\
             sink: {{ type: kafka, brokers: '{brokers}', schemas: true, create_topics: {{ partitions: 1 }} }}\n\
             offsets: {{ type: file, path: '{{dir}}/pg.offsets' }}\n\
             transforms:\n\
             \x20 - {{ type: columns, exclude: [public.users.password_hash] }}\n\
             \x20 - {{ type: mask, columns: [public.users.email], with: sha256, salt_env: E2E_SALT }}\n\
             \x20 - {{ type: outbox, table: public.outbox }}\n",
            db.url()
        ),
    );
    let mut child = spawn_run_env(&config, Stdio::null(), &[("E2E_SALT", "s4lt")]);
    let users_topic = format!("{name}.public.users");
    let outbox_topic = format!("outbox.event.{aggregate}");
    assert!(
        wait_until(Duration::from_secs(60), || run_log(&config)
            .contains("streaming")),
        "cdc did not start\n{}",
        run_log(&config)
    );

    // WHEN a user is inserted and updated, and two outbox events are inserted then deleted
    db.client
        .batch_execute(&format!(
            "INSERT INTO users VALUES (1, 'alice@example.com', 'HASH-SECRET', 'Alice');
             UPDATE users SET email = 'alice@new.example.com' WHERE id = 1;
             BEGIN;
             INSERT INTO outbox VALUES ('4d47e190-0402-4048-bc2c-89dd54343cdc', '{aggregate}', 'A-17',
                 'OrderCreated', '{{\"id\": 17, \"total\": 9.5}}');
             DELETE FROM outbox;
             COMMIT;
             BEGIN;
             INSERT INTO outbox VALUES ('5e47e190-0402-4048-bc2c-89dd54343cdc', '{aggregate}', 'A-18',
                 'OrderCreated', '{{\"id\": 18}}');
             DELETE FROM outbox;
             COMMIT;
             INSERT INTO users VALUES (2, 'marker@example.com', 'x', 'Marker');"
        ))
        .await
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || read_raw(&brokers, &users_topic)
            .len()
            >= 3),
        "the users' changes did not arrive\n{}",
        run_log(&config)
    );
    stop(&mut child, &config);

    // THEN the outbox rows are one record each on outbox.event.<aggregatetype>, nothing for the
    // deletes, and the outbox table's own topic stays empty
    let events = read_raw(&brokers, &outbox_topic);
    assert_eq!(events.len(), 2, "{}", run_log(&config));
    assert_eq!(events[0].key.as_deref(), Some(&br#""A-17""#[..]));
    assert_eq!(
        events[0].json(),
        serde_json::json!({"id": 17, "total": 9.5})
    );
    assert_eq!(
        events[0]
            .headers
            .iter()
            .find(|(k, _)| k == "id")
            .map(|(_, v)| v.as_slice()),
        Some(&b"4d47e190-0402-4048-bc2c-89dd54343cdc"[..])
    );
    assert_eq!(events[1].key.as_deref(), Some(&br#""A-18""#[..]));
    assert_eq!(events[1].json(), serde_json::json!({"id": 18}));
    assert!(read_raw(&brokers, &format!("{name}.public.outbox")).is_empty());

    // AND no byte of the users' topic carries a raw e-mail or the excluded column
    let users = read_raw(&brokers, &users_topic);
    for r in &users {
        for part in [r.key.as_deref(), r.value.as_deref()].into_iter().flatten() {
            for secret in [
                "alice@example.com",
                "alice@new.example.com",
                "example.com",
                "HASH-SECRET",
                "password_hash",
            ] {
                assert!(
                    !contains(part, secret),
                    "{secret} in {}",
                    String::from_utf8_lossy(part)
                );
            }
        }
    }
    let update = users
        .iter()
        .map(Raw::json)
        .find(|v| v["payload"]["op"] == "u")
        .expect("the update");
    assert_eq!(
        update["payload"]["after"],
        serde_json::json!({"id": 1, "email": sha256sum("s4ltalice@new.example.com"), "name": "Alice"})
    );
    let fields: Vec<String> = update["schema"]["fields"][1]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        fields,
        ["id", "email", "name"],
        "the Connect schema lost the column too"
    );
    db.drop(&name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_dropping_a_busy_table_lets_the_slot_advance() {
    let brokers = brokers();
    // GIVEN a busy table that a filter drops entirely
    let db = Db::new("xfilter").await;
    let name = db.name.clone();
    db.client
        .batch_execute(
            "CREATE TABLE busy (id serial PRIMARY KEY, v text);
             CREATE TABLE quiet (id int PRIMARY KEY);",
        )
        .await
        .unwrap();
    let w = Workdir::new();
    let config = w.write(
        "pg.yaml",
        &format!(
            "name: {name}\n\
             source: {{ type: postgres, url: '{}', tables: [public.busy, public.quiet], slot: {name} }}\n\
             sink: {{ type: kafka, brokers: '{brokers}', create_topics: {{ partitions: 1 }} }}\n\
             offsets: {{ type: file, path: '{{dir}}/pg.offsets' }}\n\
             pipeline: {{ offset_flush_interval_ms: 100 }}\n\
             transforms:\n\
             \x20 - {{ type: filter, tables: [public.quiet] }}\n",
            db.url()
        ),
    );
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let mut child = spawn_run_env(&config, Stdio::null(), &[("CDC_HTTP__ADDRESS", &address)]);
    assert!(
        wait_until(Duration::from_secs(60), || run_log(&config)
            .contains("streaming")),
        "cdc did not start\n{}",
        run_log(&config)
    );

    // WHEN the busy table keeps changing
    let writer_client = crate::postgres::connect(&db.url()).await;
    let stop_writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_flag = std::sync::Arc::clone(&stop_writing);
    let writer = tokio::spawn(async move {
        while !stop_flag.load(std::sync::atomic::Ordering::Relaxed) {
            writer_client
                .batch_execute("INSERT INTO busy (v) SELECT 'x' FROM generate_series(1, 50)")
                .await
                .unwrap();
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let row = db
        .client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap();
    let target: String = row.get(0);

    // THEN the slot's confirmed position passes a point written while it was busy, and nothing of
    // the busy table reaches Kafka
    let admin = crate::postgres::connect(&crate::postgres::pg_url()).await;
    let mut advanced = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let row = admin
            .query_one(
                "SELECT coalesce(confirmed_flush_lsn >= $2::text::pg_lsn, false) \
                 FROM pg_replication_slots WHERE slot_name = $1",
                &[&name, &target],
            )
            .await;
        if row.is_ok_and(|r| r.get::<_, bool>(0)) {
            advanced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_writing.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    assert!(
        advanced,
        "the slot did not pass {target}\n{}",
        run_log(&config)
    );
    // AND the dropped events are counted
    let dropped = http_get(port, "/metrics")
        .and_then(|(_, body)| metric_value(&body, "cdc_transform_dropped_events_total", &[]));
    assert!(
        dropped.is_some_and(|n| n >= 50.0),
        "cdc_transform_dropped_events_total: {dropped:?}"
    );
    stop(&mut child, &config);
    assert!(read_raw(&brokers, &format!("{name}.public.busy")).is_empty());
    db.drop(&name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_outbox_and_mask_with_the_position_moving_past_dropped_events() {
    use mysql_async::prelude::Queryable as _;
    let brokers = brokers();
    let url = std::env::var("CDC_TEST_MYSQL_URL").expect("CDC_TEST_MYSQL_URL");
    // GIVEN a database with users, a busy table and an outbox (MariaDB's JSON payload)
    let db = format!("e2e_xform_{}", std::process::id());
    let aggregate = format!("cart_{}", std::process::id());
    let mut conn = mysql_async::Conn::from_url(url.as_str())
        .await
        .expect("connect");
    for sql in [
        format!("DROP DATABASE IF EXISTS {db}"),
        format!("CREATE DATABASE {db}"),
        format!(
            "CREATE TABLE {db}.users (id INT PRIMARY KEY, email VARCHAR(100), name VARCHAR(20))"
        ),
        format!("CREATE TABLE {db}.busy (id INT AUTO_INCREMENT PRIMARY KEY, v INT)"),
        format!(
            "CREATE TABLE {db}.outbox (id VARCHAR(36) PRIMARY KEY, aggregatetype VARCHAR(100), \
             aggregateid VARCHAR(100), type VARCHAR(100), payload JSON)"
        ),
    ] {
        conn.query_drop(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let w = Workdir::new();
    let config = w.write(
        "my.yaml",
        &format!(
            "name: {db}\n\
             source: {{ type: mysql, url: '{url}', tables: ['{db}.*'] }}\n\
             sink: {{ type: kafka, brokers: '{brokers}', create_topics: {{ partitions: 1 }} }}\n\
             offsets: {{ type: file, path: '{{dir}}/my.offsets' }}\n\
             pipeline: {{ offset_flush_interval_ms: 100 }}\n\
             transforms:\n\
             \x20 - {{ type: filter, when: \"source.table != 'busy'\" }}\n\
             \x20 - {{ type: mask, columns: ['{db}.users.email'], with: redact }}\n\
             \x20 - {{ type: outbox, table: {db}.outbox }}\n"
        ),
    );
    let mut child = spawn_run_env(&config, Stdio::null(), &[]);
    let users_topic = format!("{db}.{db}.users");
    assert!(
        wait_until(Duration::from_secs(60), || run_log(&config)
            .contains("streaming the binlog")),
        "cdc did not start streaming\n{}",
        run_log(&config)
    );
    // WHEN a user, an outbox event (inserted then deleted) and a marker are written
    for sql in [
        format!("INSERT INTO {db}.users VALUES (1, 'bob@example.org', 'Bob')"),
        format!(
            "INSERT INTO {db}.outbox VALUES ('e-1', '{aggregate}', 'C-1', 'CartPaid', \
             '{{\"cart\": 1, \"paid\": true}}')"
        ),
        format!("DELETE FROM {db}.outbox"),
        format!("INSERT INTO {db}.users VALUES (2, 'marker@example.org', 'M')"),
    ] {
        conn.query_drop(&sql).await.unwrap();
    }
    assert!(
        wait_until(Duration::from_secs(60), || read_raw(&brokers, &users_topic)
            .len()
            >= 2),
        "the users did not arrive\n{}",
        run_log(&config)
    );
    let position = |config: &std::path::Path| {
        let out = cdc_output(&["offsets", "show", "-c", config.to_str().unwrap()]);
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(wait_until(Duration::from_secs(30), || !position(&config)
        .contains("(none)")));
    // AND then only the busy table changes, which the filter drops
    let before = position(&config);
    for _ in 0..20 {
        conn.query_drop(format!("INSERT INTO {db}.busy (v) VALUES (1), (2), (3)"))
            .await
            .unwrap();
    }
    // THEN the stored position still moves on
    assert!(
        wait_until(Duration::from_secs(60), || position(&config) != before),
        "the stored position stayed at {before}\n{}",
        run_log(&config)
    );
    stop(&mut child, &config);
    // AND the outbox event is one record with its JSON payload, its delete gave nothing
    let events = read_raw(&brokers, &format!("outbox.event.{aggregate}"));
    assert_eq!(events.len(), 1, "{}", run_log(&config));
    assert_eq!(events[0].key.as_deref(), Some(&br#""C-1""#[..]));
    assert_eq!(
        events[0].json(),
        serde_json::json!({"cart": 1, "paid": true})
    );
    assert!(events[0]
        .headers
        .iter()
        .any(|(k, v)| k == "id" && v == b"e-1"));
    // AND the e-mails are redacted everywhere, nothing of busy was written
    for r in read_raw(&brokers, &users_topic) {
        let value = r.value.unwrap_or_default();
        assert!(
            !contains(&value, "example.org"),
            "{}",
            String::from_utf8_lossy(&value)
        );
        assert!(contains(&value, "****"));
    }
    assert!(read_raw(&brokers, &format!("{db}.{db}.busy")).is_empty());
    let _ = conn
        .query_drop(format!("DROP DATABASE IF EXISTS {db}"))
        .await;
}

#[test]
fn bad_transforms_are_config_errors_naming_the_key_path() {
    let w = Workdir::new();
    // GIVEN an unknown transform type, then an invalid expression
    for (yaml, expected) in [
        ("- { type: explode }", "key `transforms[0].type`"),
        (
            "- { type: filter, ops: [c] }\n  - { type: filter, when: 'after.(' }",
            "transforms[1].when",
        ),
        (
            "- { type: route, tables: 'a(', topic: x }",
            "transforms[0].tables",
        ),
        (
            "- { type: filter, tables: [shop.nothing] }",
            "transforms[0].tables[0]",
        ),
    ] {
        let config = w.write(
            "bad.yaml",
            &format!(
                "name: t\nsource: {{ type: generator, tables: [shop.orders], limit: 1 }}\n\
                 sink: {{ type: stdout }}\ntransforms:\n  {yaml}\n"
            ),
        );
        // WHEN checked and run
        let check = cdc_output(&["check", "-c", config.to_str().unwrap()]);
        let run = cdc_output(&["run", "-c", config.to_str().unwrap()]);
        // THEN both name the key path; the run exits with the config error code
        let stdout = String::from_utf8_lossy(&check.stdout);
        assert!(!check.status.success(), "{stdout}");
        assert!(stdout.contains(expected), "{expected}: {stdout}");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(stderr.contains(expected), "{expected}: {stderr}");
        assert_ne!(run.status.code(), Some(0), "{stderr}");
    }
}

#[test]
fn the_example_config_builds_its_transforms() {
    // GIVEN the example config with transforms and its salt
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("configs/postgres-kafka-transforms.yaml");
    std::env::set_var("CDC_MASK_SALT", "example");
    let config = cdc::connector_core::config::load(&path).unwrap();
    // THEN every transform builds
    let ctx = cdc::connector_core::Context::new(config.name.as_str());
    let chain = cdc::registry()
        .build_transforms(&config.transforms, &ctx)
        .unwrap_or_else(|e| panic!("{}", e.report()));
    assert!(!chain.is_empty());
    assert_eq!(config.transforms.len(), 5);
}
