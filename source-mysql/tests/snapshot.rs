//! The initial snapshot: consistent with the stream under concurrent writes, restartable, modes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use connector_core::{ChangeEvent, Op, Source, Value};
use mysql_async::prelude::Queryable as _;
use source_mysql::BinlogPosition;

use crate::common::{of_table, read_until, source, TestDb, METADATA};

/// Apply events to a per-key state, asserting that each one is possible: a read or create of a
/// key not yet present, an update or delete of a key present with exactly its before image.
fn apply(state: &mut BTreeMap<i64, Vec<Value>>, reads: &mut BTreeMap<i64, usize>, e: &ChangeEvent) {
    let key = |r: &Vec<Value>| match r[0] {
        Value::Int(k) => k,
        ref v => panic!("key {v:?}"),
    };
    match e.op {
        Op::Read => {
            let a = e.after.clone().unwrap();
            *reads.entry(key(&a)).or_default() += 1;
            assert!(state.insert(key(&a), a).is_none(), "duplicate read");
        }
        Op::Create => {
            let a = e.after.clone().unwrap();
            let k = key(&a);
            assert!(
                state.insert(k, a).is_none(),
                "insert of key {k} already present: a duplicate"
            );
        }
        Op::Update => {
            let b = e.before.clone().unwrap();
            let a = e.after.clone().unwrap();
            let old = state.remove(&key(&b));
            assert_eq!(old.as_ref(), Some(&b), "update of key {}: a gap", key(&b));
            state.insert(key(&a), a);
        }
        Op::Delete => {
            let b = e.before.clone().unwrap();
            let old = state.remove(&key(&b));
            assert_eq!(old.as_ref(), Some(&b), "delete of key {}: a gap", key(&b));
        }
        _ => {}
    }
}

async fn table_state(conn: &mut mysql_async::Conn) -> BTreeMap<i64, Vec<Value>> {
    let rows: Vec<(i64, i64, String)> = conn.query("SELECT id, v, pad FROM t").await.unwrap();
    rows.into_iter()
        .map(|(id, v, pad)| (id, vec![Value::Int(id), Value::Int(v), Value::Text(pad)]))
        .collect()
}

#[tokio::test]
async fn snapshot_under_concurrent_writes_has_no_gap_and_no_duplicate() {
    let _g = METADATA.read().await;
    // GIVEN 20,000 rows and a writer inserting, updating and deleting throughout
    let mut db = TestDb::new("snap_concurrent").await;
    db.exec("CREATE TABLE t (id BIGINT PRIMARY KEY, v BIGINT NOT NULL, pad VARCHAR(100) NOT NULL)")
        .await;
    db.exec(
        "INSERT INTO t WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 20000) \
         SELECT n, 0, REPEAT('x', 50) FROM s",
    )
    .await;
    db.exec("ANALYZE TABLE t").await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut wconn = db.another().await;
    let wstop = Arc::clone(&stop);
    let writer = tokio::spawn(async move {
        let mut i: i64 = 0;
        while !wstop.load(Ordering::Relaxed) || i < 300 {
            i += 1;
            let k = (i * 7919) % 20_000 + 1;
            wconn
                .query_drop(format!("UPDATE t SET v = v + 1 WHERE id = {k}"))
                .await
                .unwrap();
            wconn
                .query_drop(format!(
                    "INSERT INTO t VALUES ({}, {i}, 'new')",
                    100_000 + i
                ))
                .await
                .unwrap();
            if i % 3 == 0 {
                wconn
                    .query_drop(format!(
                        "DELETE FROM t WHERE id = {}",
                        (i * 31) % 20_000 + 1
                    ))
                    .await
                    .unwrap();
            }
        }
        wconn
            .query_drop("INSERT INTO t VALUES (999999999, 0, 'end')")
            .await
            .unwrap();
        i
    });
    // WHEN a source snapshots with three connections and small chunks, then streams
    let mut src = source(
        &db.name,
        "snap_concurrent",
        "snapshot: initial\nsnapshot_parallelism: 3\nsnapshot_chunk_rows: 1500\nmax_batch_events: 1000\n",
    );
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    src.start(None).await.unwrap();
    let mut c = read_until(&mut src, 60, |e| {
        e.iter().any(|e| e.op != Op::Read) || e.len() > 15_000
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let writes = writer.await.unwrap();
    let rest = read_until(&mut src, 60, |e| {
        e.iter()
            .any(|e| e.op == Op::Create && e.after.as_ref().unwrap()[0] == Value::Int(999_999_999))
    })
    .await;
    c.events.extend(rest.events);
    c.checkpoints.extend(rest.checkpoints);

    // THEN every key is read at most once, and the snapshot is marked first..last
    let mut state = BTreeMap::new();
    let mut reads = BTreeMap::new();
    let events = of_table(&c.events, "t");
    for e in &events {
        apply(&mut state, &mut reads, e);
    }
    assert!(reads.values().all(|n| *n == 1));
    let read_events: Vec<_> = events.iter().filter(|e| e.op == Op::Read).collect();
    assert!(read_events.len() > 10_000, "{}", read_events.len());
    assert_eq!(read_events[0].source.snapshot.as_str(), "first");
    assert_eq!(read_events.last().unwrap().source.snapshot.as_str(), "last");
    // AND no stream event precedes the end of the snapshot
    let last_read = events.iter().rposition(|e| e.op == Op::Read).unwrap();
    assert!(events[..last_read].iter().all(|e| e.op == Op::Read));
    // AND replaying snapshot then stream gives exactly the table's final state
    let mut conn = db.another().await;
    assert_eq!(
        state,
        table_state(&mut conn).await,
        "after {writes} write rounds"
    );
    // AND checkpoints were flagged while the snapshot ran, then became the consistent point
    let cps: Vec<BinlogPosition> = c
        .checkpoints
        .iter()
        .map(|p| BinlogPosition::parse(p.as_str()).unwrap())
        .collect();
    let first_plain = cps.iter().position(|p| !p.snapshot).unwrap();
    assert!(cps[..first_plain].iter().all(|p| p.snapshot));
    assert!(cps[first_plain..].iter().all(|p| !p.snapshot));
    src.stop().await.unwrap();
    db.drop().await;
}

#[tokio::test]
async fn restart_mid_snapshot_takes_it_again_and_then_streams() {
    let _g = METADATA.read().await;
    // GIVEN 3,000 rows and a source stopped (dropped without commit) in the middle of its snapshot
    let mut db = TestDb::new("snap_restart").await;
    db.exec("CREATE TABLE t (id BIGINT PRIMARY KEY, v BIGINT NOT NULL, pad VARCHAR(100) NOT NULL)")
        .await;
    db.exec(
        "INSERT INTO t WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 3000) \
         SELECT n, n, 'p' FROM s",
    )
    .await;
    let extra = "snapshot_chunk_rows: 200\nmax_batch_events: 100\nsnapshot_parallelism: 1\n";
    let mut src = source(&db.name, "snap_restart", extra);
    src.start(None).await.unwrap();
    let first = read_until(&mut src, 30, |e| e.len() >= 300).await;
    let cp = first.last_checkpoint().unwrap();
    assert!(BinlogPosition::parse(cp.as_str()).unwrap().snapshot, "{cp}");
    drop(src);
    db.exec("UPDATE t SET v = -1 WHERE id = 1").await;

    // WHEN a new source starts from that checkpoint
    let mut src = source(&db.name, "snap_restart", extra);
    src.start(Some(cp)).await.unwrap();
    assert!(src.snapshotting());
    let c = read_until(&mut src, 30, |e| {
        e.iter().filter(|e| e.op == Op::Read).count() >= 3000
    })
    .await;
    // THEN the snapshot runs again in full, seeing the change made meanwhile
    let mut state = BTreeMap::new();
    let mut reads = BTreeMap::new();
    for e in of_table(&c.events, "t") {
        apply(&mut state, &mut reads, e);
    }
    assert_eq!(state.len(), 3000);
    assert_eq!(state[&1][1], Value::Int(-1));
    // AND streaming follows
    db.exec("INSERT INTO t VALUES (5000, 5, 'after')").await;
    let c = read_until(&mut src, 30, |e| e.iter().any(|e| e.op == Op::Create)).await;
    let create = c.events.iter().find(|e| e.op == Op::Create).unwrap();
    assert_eq!(create.after.as_ref().unwrap()[0], Value::Int(5000));
    db.drop().await;
}

#[tokio::test]
async fn initial_only_finishes_and_never_skips_the_snapshot() {
    let _g = METADATA.read().await;
    let mut db = TestDb::new("snap_modes").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").await;
    db.exec("CREATE TABLE nokey (a INT, b TEXT)").await;
    db.exec("INSERT INTO t VALUES (1), (2)").await;
    db.exec("INSERT INTO nokey VALUES (1, 'x'), (1, 'x')").await;
    // GIVEN snapshot: initial_only WHEN it has read everything THEN the source finishes
    let mut src = source(&db.name, "snap_modes", "snapshot: initial_only\n");
    src.start(None).await.unwrap();
    let c = read_until(&mut src, 30, |_| false).await;
    assert!(c.finished);
    assert_eq!(c.events.len(), 4);
    assert_eq!(
        of_table(&c.events, "nokey").len(),
        2,
        "tables without a key are read whole"
    );
    // AND a restart from its final checkpoint finishes at once
    let cp = c.last_checkpoint().unwrap();
    let mut src = source(&db.name, "snap_modes", "snapshot: initial_only\n");
    src.start(Some(cp)).await.unwrap();
    assert!(src.next_batch().await.unwrap().is_none());
    // GIVEN snapshot: never THEN only changes made after the start arrive
    let mut src = source(&db.name, "snap_modes2", "snapshot: never\n");
    src.start(None).await.unwrap();
    db.exec("INSERT INTO t VALUES (3)").await;
    let c = read_until(&mut src, 30, |e| !e.is_empty()).await;
    assert_eq!(c.events.len(), 1);
    assert_eq!(c.events[0].op, Op::Create);
    db.drop().await;
}
