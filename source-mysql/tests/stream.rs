//! Streaming: operations, transaction info, positions, idle behaviour, connection loss.

use std::time::{Duration, Instant};

use connector_core::{ErrorKind, Op, Source, Value};
use source_mysql::BinlogPosition;

use crate::common::{of_table, read_until, source, TestDb, METADATA};

#[tokio::test]
async fn streams_every_operation_with_transaction_info_and_positions() {
    let _g = METADATA.read().await;
    // GIVEN a table and a source streaming from the current end of the binlog
    let mut db = TestDb::new("stream_ops").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL, n BIGINT UNSIGNED)")
        .await;
    let mut src = source(&db.name, "stream_ops", "snapshot: never\n");
    src.start(None).await.unwrap();

    // WHEN rows are inserted in one transaction, then updated, deleted and the table truncated
    db.exec("BEGIN").await;
    db.exec("INSERT INTO t VALUES (1, 'a', 18446744073709551615), (2, 'b', NULL)")
        .await;
    db.exec("INSERT INTO t VALUES (3, 'c', 0)").await;
    db.exec("COMMIT").await;
    db.exec("UPDATE t SET name = 'bb' WHERE id = 2").await;
    db.exec("DELETE FROM t WHERE id = 1").await;
    db.exec("TRUNCATE TABLE t").await;

    let c = read_until(&mut src, 20, |e| e.iter().any(|e| e.op == Op::Truncate)).await;
    let ev: Vec<_> = of_table(&c.events, "t");

    // THEN every change arrives in order with its images
    let ops: Vec<Op> = ev.iter().map(|e| e.op).collect();
    assert_eq!(
        ops,
        [
            Op::Create,
            Op::Create,
            Op::Create,
            Op::Update,
            Op::Delete,
            Op::Truncate
        ]
    );
    assert_eq!(
        ev[0].after.as_ref().unwrap(),
        &vec![
            Value::Int(1),
            Value::Text("a".into()),
            Value::UInt(u64::MAX)
        ]
    );
    assert_eq!(
        ev[1].after.as_ref().unwrap(),
        &vec![Value::Int(2), Value::Text("b".into()), Value::Null]
    );
    assert_eq!(ev[3].before.as_ref().unwrap()[1], Value::Text("b".into()));
    assert_eq!(ev[3].after.as_ref().unwrap()[1], Value::Text("bb".into()));
    assert_eq!(ev[4].before.as_ref().unwrap()[0], Value::Int(1));
    assert!(ev[4].after.is_none());
    assert!(ev[5].before.is_none() && ev[5].after.is_none());

    // AND the schema names columns, types, nullability and the key
    let schema = ev[0].table.as_ref().unwrap();
    assert_eq!(&*schema.id.database, db.name.as_str());
    assert_eq!(&*schema.id.schema, db.name.as_str());
    let cols: Vec<(&str, &str, bool, bool)> = schema
        .columns
        .iter()
        .map(|c| (&*c.name, &*c.type_name, c.nullable, c.key))
        .collect();
    assert_eq!(
        cols,
        [
            ("id", "int", false, true),
            ("name", "varchar(20)", false, false),
            ("n", "bigint unsigned", true, false)
        ]
    );

    // AND the three inserts share one transaction (GTID) with their order
    let t0 = ev[0].txn.as_ref().unwrap();
    let t2 = ev[2].txn.as_ref().unwrap();
    assert_eq!(t0.id, t2.id);
    assert!(
        t0.id.contains('-'),
        "MariaDB GTID domain-server-seq: {}",
        t0.id
    );
    assert_eq!((t0.order, t2.order, t2.table_order), (1, 3, 3));
    assert_ne!(ev[3].txn.as_ref().unwrap().id, t0.id);
    assert!(ev[0].commit_ts_us > 1_600_000_000_000_000);

    // AND the source block carries Debezium's MySQL fields
    let fields: Vec<&str> = ev[0].source.fields.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        fields,
        ["server_id", "gtid", "file", "pos", "row", "thread"]
    );
    assert_eq!(ev[0].source.connector, "mysql");
    assert_eq!(ev[0].source.fields[1].1, Value::Text(t0.id.to_string()));
    assert_eq!(
        ev[1].source.fields[4].1,
        Value::UInt(1),
        "row within the rows event"
    );

    // AND positions never decrease, and checkpoints fall on transaction ends
    let positions: Vec<BinlogPosition> = c
        .events
        .iter()
        .map(|e| BinlogPosition::parse(e.position.as_str()).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] <= w[1]), "{positions:?}");
    for cp in &c.checkpoints {
        assert_eq!(BinlogPosition::parse(cp.as_str()).unwrap().row, 0, "{cp}");
    }
    let last = BinlogPosition::parse(c.last_checkpoint().unwrap().as_str()).unwrap();
    assert!(last > *positions.last().unwrap());
    assert!(last
        .gtids
        .as_deref()
        .unwrap()
        .contains(&*ev[5].txn.as_ref().unwrap().id));
    src.stop().await.unwrap();
    db.drop().await;
}

#[tokio::test]
async fn quiet_binlog_returns_promptly_and_advances_past_other_databases() {
    let _g = METADATA.read().await;
    // GIVEN a source on a quiet database
    let mut db = TestDb::new("stream_idle").await;
    let mut other = TestDb::new("stream_idle_other").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").await;
    other.exec("CREATE TABLE u (id INT PRIMARY KEY)").await;
    let mut src = source(&db.name, "stream_idle", "snapshot: never\n");
    src.start(None).await.unwrap();
    // WHEN nothing happens THEN next_batch answers within about a second, without events
    for _ in 0..3 {
        let t = Instant::now();
        let b = src.next_batch().await.unwrap().unwrap();
        assert!(b.events.is_empty());
        assert!(
            t.elapsed() < Duration::from_millis(1_200),
            "{:?}",
            t.elapsed()
        );
    }
    // WHEN another database is written THEN a checkpoint-only batch moves the position past it
    let before = other.position().await;
    other.exec("INSERT INTO u VALUES (1)").await;
    let before = BinlogPosition::parse(before.as_str()).unwrap();
    let mut moved = false;
    for _ in 0..10 {
        let b = src.next_batch().await.unwrap().unwrap();
        assert!(b.events.is_empty());
        if let Some(cp) = b.checkpoint {
            if BinlogPosition::parse(cp.as_str()).unwrap() > before {
                moved = true;
                break;
            }
        }
    }
    assert!(moved, "no checkpoint past the other database's transaction");
    src.stop().await.unwrap();
    db.drop().await;
    other.drop().await;
}

#[tokio::test]
async fn a_killed_binlog_connection_is_a_retryable_error() {
    let _g = METADATA.read().await;
    // GIVEN a streaming source
    let mut db = TestDb::new("stream_kill").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").await;
    let mut src = source(&db.name, "stream_kill", "snapshot: never\n");
    src.start(None).await.unwrap();
    let id = src.binlog_connection_id().unwrap();
    // WHEN the server kills its binlog connection
    db.exec(&format!("KILL {id}")).await;
    // THEN next_batch fails with a retryable connection error
    let mut err = None;
    for _ in 0..20 {
        match src.next_batch().await {
            Ok(_) => continue,
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let err = err.expect("an error after the kill");
    assert!(err.is_retryable(), "{err:?}");
    assert!(
        matches!(err.kind(), ErrorKind::Connection | ErrorKind::Unavailable),
        "{err:?}"
    );
    db.drop().await;
}

#[tokio::test]
async fn minimal_row_images_mark_the_missing_columns_unavailable() {
    let _g = METADATA.read().await;
    // GIVEN a session that logs minimal row images (primary key before, changed columns after)
    let mut db = TestDb::new("stream_minimal").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, a INT, b VARCHAR(10))")
        .await;
    db.exec("INSERT INTO t VALUES (1, 1, 'x')").await;
    let mut src = source(&db.name, "stream_minimal", "snapshot: never\n");
    src.start(None).await.unwrap();
    db.exec("SET SESSION binlog_row_image = 'MINIMAL'").await;
    // WHEN a column is updated
    db.exec("UPDATE t SET a = 2 WHERE id = 1").await;
    let c = read_until(&mut src, 20, |e| !e.is_empty()).await;
    // THEN the columns the binlog did not carry are Unavailable, never NULL
    let e = &c.events[0];
    assert_eq!(e.op, Op::Update);
    assert_eq!(
        e.before.as_ref().unwrap(),
        &vec![Value::Int(1), Value::Unavailable, Value::Unavailable]
    );
    assert_eq!(
        e.after.as_ref().unwrap(),
        &vec![Value::Unavailable, Value::Int(2), Value::Unavailable]
    );
    db.drop().await;
}

#[tokio::test]
async fn heartbeats_keep_a_quiet_connection_alive() {
    let _g = METADATA.read().await;
    // GIVEN a source streaming a binlog nobody writes to, whose silence timeout is 5 s
    let mut db = TestDb::new("stream_heartbeat").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").await;
    let mut src = source(
        &db.name,
        "stream_heartbeat",
        "snapshot: never\nheartbeat_interval_ms: 200\n",
    );
    src.start(None).await.unwrap();
    let silence = source_mysql::replication::silence_timeout(200);
    // WHEN it stays quiet for longer than that
    let until = Instant::now() + silence + Duration::from_secs(1);
    while Instant::now() < until {
        // THEN the server's heartbeats keep it from being taken for dead
        src.next_batch()
            .await
            .expect("a quiet server is not an error");
    }
    // AND it still streams
    db.exec("INSERT INTO t VALUES (1)").await;
    let c = read_until(&mut src, 20, |e| !e.is_empty()).await;
    assert_eq!(c.events[0].op, Op::Create);
    db.drop().await;
}

#[tokio::test]
async fn an_update_with_a_minimal_row_image_keeps_the_rows_key() {
    let _g = METADATA.read().await;
    // GIVEN a table whose updates are logged with minimal row images (the before image carries the
    // primary key, the after image only the changed columns), a configuration the source supports
    // (it warns, and marks the missing columns unavailable)
    let mut db = TestDb::new("review_minimal_key").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, a INT)").await;
    db.exec("INSERT INTO t VALUES (1, 1), (2, 1)").await;
    let mut src = source(&db.name, "review_minimal_key", "snapshot: never\n");
    src.start(None).await.unwrap();
    db.exec("SET SESSION binlog_row_image = 'MINIMAL'").await;
    // WHEN two different rows are updated without touching their key
    db.exec("UPDATE t SET a = 2 WHERE id = 1").await;
    db.exec("UPDATE t SET a = 2 WHERE id = 2").await;
    let c = read_until(&mut src, 20, |e| of_table(e, "t").len() >= 2).await;
    let ev = of_table(&c.events, "t");

    // THEN each update is keyed by its row's primary key (what a Kafka sink partitions and
    // compacts on), never by the unavailable placeholder shared by every row
    let enc = connector_core::Encoder::new("p", connector_core::Format::Debezium);
    let keys: Vec<String> = ev
        .iter()
        .map(|e| {
            let mut k = Vec::new();
            assert!(enc.write_key(e, &mut k));
            String::from_utf8(k).unwrap()
        })
        .collect();
    assert_eq!(keys, vec![r#"{"id":1}"#, r#"{"id":2}"#]);
    db.drop().await;
}
