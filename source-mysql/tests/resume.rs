//! Restarts: mid-transaction, by GTID, by file and offset, across a binlog rotation, after every
//! batch of a mixed transaction, from a purged binlog.

use connector_core::{ErrorKind, Op, Source, Value};
use source_mysql::BinlogPosition;

use crate::common::{int, of_table, ops_ids, read_until, source, TestDb, METADATA};

/// The first column of the create events (an INT key).
pub fn ids(events: &[&connector_core::ChangeEvent]) -> Vec<i64> {
    events
        .iter()
        .filter(|e| e.op == Op::Create)
        .map(|e| match e.after.as_ref().unwrap()[0] {
            Value::Int(i) => i,
            ref v => panic!("{v:?}"),
        })
        .collect()
}

#[tokio::test]
async fn restart_mid_transaction_skips_exactly_the_delivered_events() {
    let _g = METADATA.read().await;
    // GIVEN a 100-row transaction and a source whose batches hold 30 events
    let mut db = TestDb::new("resume_midtxn").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").await;
    let start = db.position().await;
    db.exec(
        "INSERT INTO t WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 100) \
         SELECT n FROM s",
    )
    .await;
    db.exec("INSERT INTO t VALUES (1000)").await;
    let extra = "snapshot: never\nmax_batch_events: 30\n";
    let mut src = source(&db.name, "resume_midtxn", extra);
    src.start(Some(start)).await.unwrap();
    // WHEN it delivers the first batch (mid-transaction) and is dropped without a commit
    let b = src.next_batch().await.unwrap().unwrap();
    let first_ids: Vec<i64> = ids(&b.events.iter().collect::<Vec<_>>());
    let cp = b.checkpoint.clone().unwrap();
    let p = BinlogPosition::parse(cp.as_str()).unwrap();
    assert_eq!(
        p.row as usize,
        b.events.len(),
        "a mid-transaction checkpoint: {cp}"
    );
    assert_eq!(
        b.events.len(),
        30,
        "batches are bounded even inside one rows event"
    );
    assert_eq!(
        b.events.last().unwrap().position,
        cp,
        "the checkpoint is the last event's position"
    );
    drop(src);
    // THEN a new source started from that checkpoint delivers exactly the rest, in order
    let mut src = source(&db.name, "resume_midtxn", extra);
    src.start(Some(cp)).await.unwrap();
    let c = read_until(&mut src, 30, |e| {
        ids(&e.iter().collect::<Vec<_>>()).contains(&1000)
    })
    .await;
    let rest = ids(&of_table(&c.events, "t"));
    let mut all = first_ids.clone();
    all.extend(&rest);
    let mut expected: Vec<i64> = (1..=100).collect();
    expected.push(1000);
    assert_eq!(all, expected);
    // AND the transaction order continues where it stopped
    let next = &of_table(&c.events, "t")[0];
    assert_eq!(
        next.txn.as_ref().unwrap().order as usize,
        first_ids.len() + 1
    );
    db.drop().await;
}

async fn resume_test(prefix: &str, gtid: &str) {
    // GIVEN a source that delivered one transaction and stored its checkpoint
    let mut db = TestDb::new(prefix).await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").await;
    let extra = format!("snapshot: never\ngtid: {gtid}\n");
    let mut src = source(&db.name, prefix, &extra);
    src.start(None).await.unwrap();
    db.exec("INSERT INTO t VALUES (1)").await;
    let c = read_until(&mut src, 30, |e| !e.is_empty()).await;
    let cp = c.last_checkpoint().unwrap();
    src.commit(&cp).await.unwrap();
    assert_eq!(src.committed(), Some(&cp));
    drop(src);
    // WHEN more is written while it is down, and it restarts from the checkpoint
    db.exec("INSERT INTO t VALUES (2)").await;
    db.exec("INSERT INTO t VALUES (3)").await;
    let mut src = source(&db.name, prefix, &extra);
    src.start(Some(cp)).await.unwrap();
    let c = read_until(&mut src, 30, |e| e.len() >= 2).await;
    // THEN exactly the later transactions arrive
    assert_eq!(ids(&of_table(&c.events, "t")), [2, 3]);
    db.drop().await;
}

#[tokio::test]
async fn resumes_by_gtid() {
    let _g = METADATA.read().await;
    resume_test("resume_gtid", "true").await;
}

#[tokio::test]
async fn resumes_by_file_and_offset() {
    let _g = METADATA.read().await;
    resume_test("resume_file", "false").await;
}

#[tokio::test]
async fn a_purged_binlog_is_fatal_with_a_hint_or_a_new_snapshot_when_needed() {
    let _g = METADATA.read().await;
    let mut db = TestDb::new("resume_purged").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").await;
    db.exec("INSERT INTO t VALUES (1)").await;
    // GIVEN a stored position in a binlog file the server no longer has
    let gone = BinlogPosition::new("mysql-bin.000000", 4, None).to_position();
    // WHEN the source starts from it THEN it fails for good, with a hint
    let mut src = source(
        &db.name,
        "resume_purged",
        "snapshot: initial\ngtid: false\n",
    );
    let e = src.start(Some(gone.clone())).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Data, "{e:?}");
    assert!(!e.is_retryable());
    assert!(
        e.report().contains("binlog_expire_logs_seconds"),
        "{}",
        e.report()
    );
    // AND with snapshot: when_needed it takes a new snapshot instead
    let mut src = source(
        &db.name,
        "resume_purged",
        "snapshot: when_needed\ngtid: false\n",
    );
    src.start(Some(gone)).await.unwrap();
    let c = read_until(&mut src, 30, |e| !e.is_empty()).await;
    assert_eq!(c.events[0].op, Op::Read);

    // GIVEN a GTID state the server's binlogs do not contain (by GTID, the server reports it)
    let mut unknown = BinlogPosition::parse(db.position().await.as_str()).unwrap();
    unknown.gtids = Some("0-99-5".into());
    let unknown = unknown.to_position();
    // WHEN streaming by GTID from it THEN the server's refusal is a fatal data error
    let mut src = source(&db.name, "resume_purged", "snapshot: initial\ngtid: true\n");
    src.start(Some(unknown.clone())).await.unwrap();
    let mut err = None;
    for _ in 0..10 {
        if let Err(e) = src.next_batch().await {
            err = Some(e);
            break;
        }
    }
    let err = err.expect("the server refuses the GTID state");
    assert_eq!(err.kind(), ErrorKind::Data, "{err:?}");
    // AND under when_needed the source takes a new snapshot instead
    let mut src = source(
        &db.name,
        "resume_purged",
        "snapshot: when_needed\ngtid: true\n",
    );
    src.start(Some(unknown)).await.unwrap();
    let c = read_until(&mut src, 30, |e| !e.is_empty()).await;
    assert_eq!(c.events[0].op, Op::Read);
    db.drop().await;
}

async fn resume_across_rotation(prefix: &str, gtid: &str) {
    // GIVEN a 100-row transaction, then a binlog rotation (FLUSH BINARY LOGS), and a source whose
    // batches hold 30 events
    let mut db = TestDb::new(prefix).await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").await;
    let start = db.position().await;
    db.exec(
        "INSERT INTO t WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 100) \
         SELECT n FROM s",
    )
    .await;
    db.exec("FLUSH BINARY LOGS").await;
    let extra = format!("snapshot: never\nmax_batch_events: 30\ngtid: {gtid}\n");
    let mut src = source(&db.name, prefix, &extra);
    src.start(Some(start)).await.unwrap();
    // WHEN it is stopped after its first (mid-transaction) batch and restarted from that
    // checkpoint
    let b = src.next_batch().await.unwrap().unwrap();
    let mut got: Vec<i64> = b
        .events
        .iter()
        .map(|e| int(&e.after.as_ref().unwrap()[0]))
        .collect();
    let cp = b.checkpoint.unwrap();
    assert!(BinlogPosition::parse(cp.as_str()).unwrap().row > 0, "{cp}");
    drop(src);
    let mut src = source(&db.name, prefix, &extra);
    src.start(Some(cp)).await.unwrap();
    let c = read_until(&mut src, 30, |e| {
        ops_ids(e, "t").iter().any(|(_, id)| *id == 100)
    })
    .await;
    got.extend(ops_ids(&c.events, "t").iter().map(|(_, id)| *id));
    // AND, once idle past the rotation, stopped again and restarted from its last checkpoint
    // while two more transactions are written in the new binlog file
    let mut cp = c.last_checkpoint().unwrap();
    for _ in 0..3 {
        let b = src.next_batch().await.unwrap().unwrap();
        assert!(of_table(&b.events, "t").is_empty());
        cp = b.checkpoint.unwrap_or(cp);
    }
    assert_eq!(BinlogPosition::parse(cp.as_str()).unwrap().row, 0, "{cp}");
    drop(src);
    db.exec("INSERT INTO t VALUES (1000)").await;
    db.exec("INSERT INTO t VALUES (2000)").await;
    let mut src = source(&db.name, prefix, &extra);
    src.start(Some(cp.clone())).await.unwrap();
    let c = read_until(&mut src, 30, |e| {
        ops_ids(e, "t").iter().any(|(_, id)| *id == 2000)
    })
    .await;
    got.extend(ops_ids(&c.events, "t").iter().map(|(_, id)| *id));

    // THEN every row arrives exactly once, in order, across both restarts and the rotation
    let mut want: Vec<i64> = (1..=100).collect();
    want.extend([1000, 2000]);
    assert_eq!(got, want, "resumed from {cp}");
    db.drop().await;
}

#[tokio::test]
async fn mid_transaction_resume_by_gtid_across_a_rotation_loses_nothing() {
    let _g = METADATA.read().await;
    resume_across_rotation("review_rot_gtid", "true").await;
}

#[tokio::test]
async fn mid_transaction_resume_by_file_across_a_rotation_loses_nothing() {
    let _g = METADATA.read().await;
    resume_across_rotation("review_rot_file", "false").await;
}

fn source_for(tables: &str, pipeline: &str, extra: &str) -> source_mysql::MysqlSource {
    let yaml = format!(
        "type: mysql\nurl: {}\ntables: {tables}\nschema_history_path: {}\n{extra}",
        crate::common::url(),
        crate::common::history_path(pipeline).display()
    );
    let section = connector_core::ConfigSection::from_yaml("source", &yaml).unwrap();
    let settings = source_mysql::Settings::new(section.extract().unwrap(), pipeline).unwrap();
    source_mysql::MysqlSource::new(settings, &connector_core::Context::new(pipeline))
}

#[tokio::test]
async fn restarts_after_every_batch_of_a_mixed_transaction_deliver_each_change_once() {
    let _g = METADATA.read().await;
    // GIVEN one transaction of several statements over two captured tables and an uncaptured
    // one (multi-row statements: several rows per rows event), and a source with batches of 4
    let mut db = TestDb::new("review_mixed").await;
    db.exec("CREATE TABLE a (id INT PRIMARY KEY, v INT)").await;
    db.exec("CREATE TABLE b (id INT PRIMARY KEY, v INT)").await;
    db.exec("CREATE TABLE u (id INT PRIMARY KEY, v INT)").await;
    let start = db.position().await;
    db.exec("BEGIN").await;
    db.exec("INSERT INTO a VALUES (1,0),(2,0),(3,0)").await;
    db.exec("INSERT INTO u VALUES (1,0),(2,0),(3,0),(4,0),(5,0)")
        .await;
    db.exec("INSERT INTO b VALUES (11,0),(12,0)").await;
    db.exec("UPDATE a SET v = 1").await;
    db.exec("INSERT INTO u VALUES (6,0)").await;
    db.exec("DELETE FROM b WHERE id = 11").await;
    db.exec("INSERT INTO a VALUES (4,0)").await;
    db.exec("COMMIT").await;
    db.exec("INSERT INTO b VALUES (99,0)").await;
    let tables = format!("['{0}.a', '{0}.b']", db.name);
    let extra = "snapshot: never\nmax_batch_events: 4\n";
    let summary = |events: &[connector_core::ChangeEvent]| -> Vec<String> {
        events
            .iter()
            .map(|e| {
                let row = e.after.as_ref().or(e.before.as_ref()).unwrap();
                format!(
                    "{}{}:{}",
                    e.op.code(),
                    e.table.as_ref().unwrap().id.table,
                    int(&row[0])
                )
            })
            .collect()
    };
    // WHEN the source is restarted from the checkpoint of every batch it delivers
    let mut delivered = Vec::new();
    let mut from = Some(start);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while !delivered.iter().any(|s: &String| s == "cb:99") {
        assert!(tokio::time::Instant::now() < deadline, "{delivered:?}");
        let mut src = source_for(&tables, "review_mixed", extra);
        src.start(from.clone()).await.unwrap();
        let b = loop {
            let b = src.next_batch().await.unwrap().unwrap();
            if !b.events.is_empty() {
                break b;
            }
        };
        delivered.extend(summary(&b.events));
        from = b.checkpoint.or(from);
    }
    // THEN every captured change arrives exactly once, in order
    assert_eq!(
        delivered,
        [
            "ca:1", "ca:2", "ca:3", "cb:11", "cb:12", "ua:1", "ua:2", "ua:3", "db:11", "ca:4",
            "cb:99"
        ]
    );
    db.drop().await;
}
