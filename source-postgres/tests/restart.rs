//! Restarts lose nothing: mid-stream, mid-transaction, between several changes at one LSN, with
//! interleaved transactions, and between the events of one multi-table TRUNCATE.

use std::time::{Duration, Instant};

use connector_core::{ChangeEvent, Op, Position, Source};
use source_postgres::{Lsn, PgPosition, PostgresSource};

use crate::common::*;

/// Read batches until `n` events, committing only the checkpoints of the first `commit_upto`
/// events' batches; returns (events received, last committed checkpoint, events up to it).
async fn read_then_crash(
    src: &mut PostgresSource,
    n: usize,
    commit_upto: usize,
) -> (Vec<ChangeEvent>, Option<Position>, usize) {
    let mut events = Vec::new();
    let mut committed = None;
    let mut upto = 0;
    let start = Instant::now();
    while events.len() < n {
        assert!(start.elapsed() < Duration::from_secs(60), "timed out");
        let b = src.next_batch().await.unwrap().unwrap();
        events.extend(b.events);
        if events.len() <= commit_upto {
            if let Some(cp) = b.checkpoint {
                src.commit(&cp).await.unwrap();
                committed = Some(cp);
                upto = events.len();
            }
        }
    }
    (events, committed, upto)
}

async fn wait_flushed(db: &TestDb, slot: &str, at_least: Lsn) {
    let start = Instant::now();
    while db.confirmed_flush(slot).await.unwrap_or(0) < at_least.0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "slot never advanced to {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_stream_and_mid_transaction_resumes_without_loss() {
    // GIVEN 5 transactions of 10 single-row inserts and a source with batches of 4 events
    let db = TestDb::new("killmid").await;
    db.exec("CREATE TABLE items (id int PRIMARY KEY, v int)")
        .await;
    let cfg = "tables: [public.items]\nsnapshot: never\nbatch_size: 4\n";
    let mut a = db.source(cfg);
    a.start(None).await.unwrap();
    for t in 0..5 {
        let mut sql = String::from("BEGIN;");
        for i in 1..=10 {
            sql.push_str(&format!("INSERT INTO items VALUES ({}, 0);", t * 10 + i));
        }
        sql.push_str("COMMIT;");
        db.exec(&sql).await;
    }
    // WHEN it is killed after 30 events, with only the first ~22 committed (mid-transaction)
    let (seen, committed, upto) = read_then_crash(&mut a, 30, 22).await;
    drop(a);
    let cp = committed.expect("committed something");
    let last_committed_id = id(&seen[upto - 1]);

    // THEN a new source from the committed position delivers every later event, in order
    let mut b = db.source(cfg);
    b.start(Some(cp)).await.unwrap();
    let got = drain_until(&mut b, Duration::from_secs(30), |e| {
        e.iter().any(|e| id(e) == 50)
    })
    .await;
    let ids: Vec<i64> = got.events.iter().map(id).collect();
    assert_eq!(ids, ((last_committed_id + 1)..=50).collect::<Vec<_>>());
    // AND the redelivered events are identical to the first delivery (same positions and order)
    for e in &got.events {
        if let Some(old) = seen.iter().find(|o| id(o) == id(e)) {
            assert_eq!(old.position, e.position);
            assert_eq!(old.txn, e.txn);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_changes_at_one_commit_survive_restarts_between_them() {
    // GIVEN 100 rows inserted by one statement, then updated by one statement
    let db = TestDb::new("onelsn").await;
    db.exec("CREATE TABLE items (id int PRIMARY KEY, v int)")
        .await;
    let cfg = "tables: [public.items]\nsnapshot: never\nbatch_size: 10\n";
    let mut src = db.source(cfg);
    src.start(None).await.unwrap();
    db.exec("INSERT INTO items SELECT g, 0 FROM generate_series(1, 100) g")
        .await;
    db.exec("UPDATE items SET v = 1").await;

    // WHEN the source is killed three times, each after committing 30 more events
    let mut delivered: Vec<(Op, i64)> = Vec::new();
    for round in 0..3 {
        let (seen, committed, upto) = read_then_crash(&mut src, 35, 30).await;
        let cp = committed.expect("commit");
        assert!(
            matches!(PgPosition::parse(&cp).unwrap(), PgPosition::Stream { index, .. } if index > 0),
            "round {round}: expected a position inside the transaction, got {cp:?}"
        );
        delivered.extend(summary(&seen[..upto]));
        drop(src);
        src = db.source(cfg);
        src.start(Some(cp))
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
    }
    let rest = drain_until(&mut src, Duration::from_secs(30), |e| {
        e.iter().any(|e| e.op == Op::Update && id(e) == 100)
    })
    .await;
    delivered.extend(summary(&rest.events));

    // THEN the committed prefixes plus the rest are exactly the 200 changes, once each, in order
    let want: Vec<(Op, i64)> = (1..=100)
        .map(|i| (Op::Create, i))
        .chain((1..=100).map(|i| (Op::Update, i)))
        .collect();
    assert_eq!(delivered, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleaved_transactions_arrive_whole_in_commit_order_across_restarts() {
    // GIVEN two connections whose transactions interleave; B commits first
    let db = TestDb::new("interleave").await;
    db.exec("CREATE TABLE items (id int PRIMARY KEY, v int)")
        .await;
    let cfg = "tables: [public.items]\nsnapshot: never\n";
    let mut src = db.source(cfg);
    src.start(None).await.unwrap();
    let (a, b) = (db.connect().await, db.connect().await);
    a.batch_execute("BEGIN; INSERT INTO items VALUES (1, 0)")
        .await
        .unwrap();
    b.batch_execute("BEGIN; INSERT INTO items VALUES (101, 0)")
        .await
        .unwrap();
    a.batch_execute("INSERT INTO items VALUES (2, 0)")
        .await
        .unwrap();
    b.batch_execute("INSERT INTO items VALUES (102, 0); COMMIT")
        .await
        .unwrap();

    // WHEN B's transaction is delivered and committed (the slot is released past it) and the
    // source dies before A commits
    let got = drain_n(&mut src, 2).await;
    assert_eq!(
        summary(&got.events),
        vec![(Op::Create, 101), (Op::Create, 102)]
    );
    // (The commit may come in a later chunk than the rows: drain until the position is (end, 0).)
    let mut cp = got.checkpoint.clone().unwrap();
    let start = Instant::now();
    let lsn = loop {
        if let PgPosition::Stream { lsn, index: 0 } = PgPosition::parse(&cp).unwrap() {
            break lsn;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{cp:?}");
        let more = drain_for(&mut src, Duration::from_millis(200)).await;
        assert!(more.events.is_empty());
        cp = more.checkpoint.unwrap_or(cp);
    };
    wait_flushed(&db, src.slot_name(), lsn).await;
    drop(src);
    a.batch_execute("INSERT INTO items VALUES (3, 0); COMMIT")
        .await
        .unwrap();

    // THEN after a restart A arrives whole, including the rows written before B committed
    let mut src = db.source(cfg);
    src.start(Some(cp)).await.unwrap();
    let got = drain_n(&mut src, 3).await;
    assert_eq!(
        summary(&got.events),
        vec![(Op::Create, 1), (Op::Create, 2), (Op::Create, 3)]
    );
    let txn = got.events[0].txn.clone().unwrap();
    assert!(got
        .events
        .iter()
        .all(|e| e.txn.as_ref().unwrap().id == txn.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_is_retryable_and_resuming_loses_nothing() {
    // GIVEN a streaming source that delivered and committed one row
    let db = TestDb::new("connloss").await;
    db.exec("CREATE TABLE items (id int PRIMARY KEY, v int)")
        .await;
    let cfg = "tables: [public.items]\nsnapshot: never\n";
    let mut src = db.source(cfg);
    src.start(None).await.unwrap();
    db.exec("INSERT INTO items VALUES (1, 0)").await;
    let got = drain_n(&mut src, 1).await;
    let cp = got.checkpoint.unwrap();

    // WHEN the server kills the walsender while more rows are written
    db.exec(&format!(
        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '{}'",
        src.slot_name()
    ))
    .await;
    db.exec("INSERT INTO items VALUES (2, 0)").await;
    let start = Instant::now();
    let mut early = Vec::new();
    let err = loop {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no error surfaced"
        );
        match src.next_batch().await {
            Err(e) => break e,
            // The kill is asynchronous: row 2 may still arrive first (uncommitted, so redelivered).
            Ok(Some(b)) => early.extend(summary(&b.events)),
            Ok(None) => panic!("ended"),
        }
    };
    assert!(
        early.is_empty() || early == vec![(Op::Create, 2)],
        "{early:?}"
    );

    // THEN next_batch fails with a retryable connection error, and a restart resumes after the
    // durable position with nothing lost
    assert!(err.is_retryable(), "{}", err.report());
    drop(src);
    let mut src = db.source(cfg);
    src.start(Some(cp)).await.unwrap();
    let got = drain_n(&mut src, 1).await;
    assert_eq!(summary(&got.events), vec![(Op::Create, 2)]);
}

/// Read until an insert arrives, never committing (the slot keeps everything).
async fn until_insert(
    src: &mut source_postgres::PostgresSource,
) -> Vec<connector_core::ChangeEvent> {
    let start = std::time::Instant::now();
    let mut out = Vec::new();
    while !out
        .iter()
        .any(|e: &connector_core::ChangeEvent| e.op == Op::Create)
    {
        assert!(start.elapsed() < Duration::from_secs(30), "timed out");
        out.extend(src.next_batch().await.unwrap().unwrap().events);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_table_truncate_survives_a_restart_between_each_of_its_events() {
    // GIVEN three captured tables and an uncaptured one, all in the publication
    let db = TestDb::new("rv_trunc").await;
    db.exec(
        "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY); \
         CREATE TABLE c (id int PRIMARY KEY); CREATE TABLE x (id int PRIMARY KEY); \
         CREATE PUBLICATION rv_pub FOR TABLE a, b, c, x",
    )
    .await;
    let cfg = "tables: [public.a, public.b, public.c]\npublication: rv_pub\nsnapshot: never\n";
    let mut src = db.source(cfg);
    src.start(None).await.unwrap();
    // WHEN one statement truncates all four tables, followed by an insert
    db.exec("TRUNCATE a, x, b, c").await;
    db.exec("INSERT INTO a VALUES (1)").await;
    let summary = |events: &[connector_core::ChangeEvent]| -> Vec<(Op, String)> {
        events
            .iter()
            .map(|e| (e.op, e.table.as_ref().unwrap().id.table.to_string()))
            .collect()
    };
    let all = until_insert(&mut src).await;
    drop(src);
    // THEN each captured table's truncate arrives once, in statement order, then the insert
    assert_eq!(
        summary(&all),
        vec![
            (Op::Truncate, "a".to_string()),
            (Op::Truncate, "b".to_string()),
            (Op::Truncate, "c".to_string()),
            (Op::Create, "a".to_string()),
        ]
    );
    // AND a restart from the position of each truncate delivers exactly what came after it,
    // with the same positions
    for k in 0..3 {
        let mut src = db.source(cfg);
        src.start(Some(all[k].position.clone())).await.unwrap();
        let rest = until_insert(&mut src).await;
        assert_eq!(
            summary(&rest),
            summary(&all[k + 1..]),
            "resumed from event {k}"
        );
        let pos = |v: &[connector_core::ChangeEvent]| -> Vec<Position> {
            v.iter().map(|e| e.position.clone()).collect()
        };
        assert_eq!(pos(&rest), pos(&all[k + 1..]));
    }
}
