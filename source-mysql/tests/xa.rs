//! XA transactions: MariaDB 10.5+ (and MySQL) binlog the prepared part at `XA PREPARE` and the
//! outcome (`XA COMMIT` / `XA ROLLBACK`) as a later group of its own.

use connector_core::{ErrorKind, Op, Position, Source, Value};
use mysql_async::prelude::Queryable as _;
use source_mysql::BinlogPosition;

use crate::common::{of_table, ops_ids, read_until, source, TestDb, METADATA};

fn id(e: &connector_core::ChangeEvent) -> i64 {
    match &e.after.as_ref().or(e.before.as_ref()).unwrap()[0] {
        Value::Int(i) => *i,
        other => panic!("{other:?}"),
    }
}

fn ids(events: &[connector_core::ChangeEvent]) -> Vec<i64> {
    of_table(events, "t")
        .iter()
        .filter(|e| e.op != Op::Message)
        .map(|e| id(e))
        .collect()
}

fn pos(p: &Position) -> BinlogPosition {
    BinlogPosition::parse(p.as_str()).unwrap()
}

async fn exec(c: &mut mysql_async::Conn, sql: &str) {
    c.query_drop(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Where the prepared part of XA transaction `xid` starts in the binlog (its GTID event), at or
/// after `from` (other tests write to the same binlog meanwhile).
async fn prepared_at(c: &mut mysql_async::Conn, from: &Position, xid: &str) -> BinlogPosition {
    let from = pos(from);
    let hex: String = xid.bytes().map(|b| format!("{b:02x}")).collect();
    let want = format!("XA START X'{hex}'");
    let files: Vec<mysql_async::Row> = c.query("SHOW BINARY LOGS").await.unwrap();
    for f in files {
        let file: String = f.get(0).unwrap();
        let first = file == from.file;
        if !first && BinlogPosition::new(file.clone(), 4, None) < from {
            continue;
        }
        let sql = if first {
            format!("SHOW BINLOG EVENTS IN '{file}' FROM {}", from.pos)
        } else {
            format!("SHOW BINLOG EVENTS IN '{file}'")
        };
        let rows: Vec<mysql_async::Row> = c.query(sql).await.unwrap();
        for r in rows {
            let info: String = r.get(5).unwrap();
            if info.starts_with(&want) {
                return BinlogPosition::new(file, r.get::<u64, _>(1).unwrap(), None);
            }
        }
    }
    panic!("no prepared XA transaction {xid} in the binlog after {from}");
}

/// Only file and offset (GTID sets are not compared).
fn at(p: &BinlogPosition) -> BinlogPosition {
    BinlogPosition::new(p.file.clone(), p.pos, None)
}

/// Prepare an XA transaction inserting `rows` on `c` (left prepared).
async fn prepare(c: &mut mysql_async::Conn, xid: &str, rows: &str) {
    exec(c, &format!("XA START '{xid}'")).await;
    exec(c, &format!("INSERT INTO t VALUES {rows}")).await;
    exec(c, &format!("XA END '{xid}'")).await;
    exec(c, &format!("XA PREPARE '{xid}'")).await;
}

#[tokio::test]
async fn a_prepared_xa_transaction_holds_checkpoints_and_is_delivered_at_its_commit() {
    let _g = METADATA.read().await;
    // GIVEN an XA transaction prepared (row 1), then another transaction committed (row 2)
    let mut db = TestDb::new("xa_hold").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").await;
    let start = db.position().await;
    let mut xa = db.another().await;
    prepare(&mut xa, "xa_hold_1", "(1)").await;
    db.exec("INSERT INTO t VALUES (2)").await;
    let mut src = source(&db.name, "xa_hold", "snapshot: never\n");
    src.start(Some(start.clone())).await.unwrap();
    let first = read_until(&mut src, 20, |e| ids(e).contains(&2)).await;
    // THEN while it is unresolved only the committed row is delivered, and no checkpoint passes
    // the position before the prepared part (a restart must read it again)
    let unresolved_ids = ids(&first.events);
    let held_cp = first.last_checkpoint();
    // (resolve before asserting: a prepared XA transaction left behind would block the cleanup)
    exec(&mut xa, "XA COMMIT 'xa_hold_1'").await;
    db.exec("INSERT INTO t VALUES (3)").await;
    let prepared = prepared_at(&mut db.conn, &start, "xa_hold_1").await;
    assert_eq!(unresolved_ids, vec![2]);
    for cp in &first.checkpoints {
        assert!(
            at(&pos(cp)) <= prepared,
            "checkpoint {cp} passed {prepared}"
        );
    }
    assert_eq!(at(&pos(held_cp.as_ref().unwrap())), prepared);
    // WHEN it is committed (then row 3)
    let second = read_until(&mut src, 20, |e| ids(e).contains(&3)).await;
    // THEN its row is delivered at the commit's place, once, and checkpoints move on
    assert_eq!(ids(&second.events), vec![1, 3]);
    let done_cp = second.last_checkpoint().unwrap();
    assert!(pos(&done_cp) > pos(&start));
    // AND the event belongs to the XA COMMIT's transaction, after the earlier events' positions
    let one = of_table(&second.events, "t")[0];
    let two = of_table(&first.events, "t")[0];
    assert!(pos(&one.position) > pos(&two.position));
    src.stop().await.unwrap();

    // WHEN the source restarts from a checkpoint taken while it was unresolved
    let mut src = source(&db.name, "xa_hold", "snapshot: never\n");
    src.start(held_cp.or(Some(start))).await.unwrap();
    let again = read_until(&mut src, 20, |e| ids(e).contains(&3)).await;
    // THEN the later transaction comes again (at least once) and the XA row still arrives
    assert_eq!(ids(&again.events), vec![2, 1, 3]);
    src.stop().await.unwrap();

    // AND from the last checkpoint, nothing is delivered again
    let mut src = source(&db.name, "xa_hold", "snapshot: never\n");
    src.start(Some(done_cp)).await.unwrap();
    db.exec("INSERT INTO t VALUES (4)").await;
    let last = read_until(&mut src, 20, |e| ids(e).contains(&4)).await;
    assert_eq!(ids(&last.events), vec![4]);
    let _ = xa.disconnect().await;
    db.drop().await;
}

#[tokio::test]
async fn a_committed_xa_transaction_split_across_batches_keeps_the_checkpoint_before_it() {
    let _g = METADATA.read().await;
    // GIVEN an XA transaction of 7 rows, prepared and committed, and batches of 3 events
    let mut db = TestDb::new("xa_split").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").await;
    let start = db.position().await;
    let mut xa = db.another().await;
    prepare(&mut xa, "xa_split_1", "(1),(2),(3),(4),(5),(6),(7)").await;
    db.exec("INSERT INTO t VALUES (10)").await;
    exec(&mut xa, "XA COMMIT 'xa_split_1'").await;
    db.exec("INSERT INTO t VALUES (11)").await;
    let extra = "snapshot: never\nmax_batch_events: 3\n";
    let mut src = source(&db.name, "xa_split", extra);
    src.start(Some(start.clone())).await.unwrap();
    let c = read_until(&mut src, 20, |e| ids(e).contains(&11)).await;
    let prepared = prepared_at(&mut db.conn, &start, "xa_split_1").await;
    // WHEN they are read
    assert_eq!(ids(&c.events), vec![10, 1, 2, 3, 4, 5, 6, 7, 11]);
    // THEN a batch that ends inside the committed XA rows checkpoints before the prepared part
    let mut seen = 0;
    let mut mid = None;
    for (n, cp) in &c.batches {
        seen += n;
        // rows 1..=6 of the XA transaction are events 2..=7
        if (2..=7).contains(&seen) {
            let cp = cp.clone().expect("a checkpoint");
            assert!(at(&pos(&cp)) <= prepared, "{cp} after {prepared}");
            mid = Some(cp);
        }
    }
    // AND once they are all delivered the checkpoint moves past it
    assert!(at(&pos(&c.last_checkpoint().unwrap())) > prepared);
    // AND a restart from there delivers every XA row
    let mut src = source(&db.name, "xa_split", extra);
    src.start(Some(mid.expect("a batch ended inside the XA rows")))
        .await
        .unwrap();
    let again = read_until(&mut src, 20, |e| ids(e).contains(&11)).await;
    assert_eq!(ids(&again.events), vec![10, 1, 2, 3, 4, 5, 6, 7, 11]);
    let _ = xa.disconnect().await;
    db.drop().await;
}

#[tokio::test]
async fn xa_commit_one_phase_is_a_plain_commit() {
    let _g = METADATA.read().await;
    // GIVEN an XA transaction committed in one phase, then a plain one
    let mut db = TestDb::new("xa_one_phase").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").await;
    let start = db.position().await;
    db.exec("XA START 'xa_one_phase_1'").await;
    db.exec("INSERT INTO t VALUES (1), (2)").await;
    db.exec("XA END 'xa_one_phase_1'").await;
    db.exec("XA COMMIT 'xa_one_phase_1' ONE PHASE").await;
    db.exec("INSERT INTO t VALUES (3)").await;
    let mut src = source(&db.name, "xa_one_phase", "snapshot: never\n");
    src.start(Some(start)).await.unwrap();
    // WHEN read THEN its rows come in order, then the later one
    let c = read_until(&mut src, 20, |e| ids(e).contains(&3)).await;
    assert_eq!(ids(&c.events), vec![1, 2, 3]);
    db.drop().await;
}

#[tokio::test]
async fn held_xa_changes_beyond_the_limit_stop_the_source_naming_the_transaction() {
    let _g = METADATA.read().await;
    // GIVEN a source allowed to hold 2000 bytes for prepared XA transactions
    let mut db = TestDb::new("xa_limit").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(100))")
        .await;
    let start = db.position().await;
    // WHEN a prepared XA transaction changes more than that
    let mut xa = db.another().await;
    exec(&mut xa, "XA START 'xa_limit_1'").await;
    exec(
        &mut xa,
        "INSERT INTO t WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 50) \
         SELECT n, REPEAT('x', 100) FROM s",
    )
    .await;
    exec(&mut xa, "XA END 'xa_limit_1'").await;
    exec(&mut xa, "XA PREPARE 'xa_limit_1'").await;
    exec(&mut xa, "XA ROLLBACK 'xa_limit_1'").await;
    let _ = xa.disconnect().await;
    let mut src = source(
        &db.name,
        "xa_limit",
        "snapshot: never\nmax_xa_held_bytes: 2000\n",
    );
    src.start(Some(start)).await.unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let err = loop {
        assert!(tokio::time::Instant::now() < deadline, "no error");
        match src.next_batch().await {
            Ok(Some(b)) => assert!(ids(&b.events).is_empty()),
            Ok(None) => panic!("finished"),
            Err(e) => break e,
        }
    };
    // THEN it stops with a fatal error naming the XID and the key to raise
    assert_eq!(err.kind(), ErrorKind::Data, "{}", err.report());
    let report = err.report();
    // 'xa_limit_1' in hex
    assert!(report.contains("X'78615f6c696d69745f31'"), "{report}");
    assert!(report.contains("max_xa_held_bytes"), "{report}");
    db.drop().await;
}

#[tokio::test]
async fn a_rolled_back_xa_transaction_emits_nothing() {
    let _g = METADATA.read().await;
    // GIVEN a table and a source streaming from the end of the binlog
    let mut db = TestDb::new("review_xa").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB")
        .await;
    let start = db.position().await;
    // WHEN an XA transaction inserts a row, is prepared, then rolled back (MariaDB 10.5+ writes
    // the prepared part to the binlog at XA PREPARE and a separate `XA ROLLBACK` group later)
    db.exec("XA START 'review_xa1'").await;
    db.exec("INSERT INTO t VALUES (1)").await;
    db.exec("XA END 'review_xa1'").await;
    db.exec("XA PREPARE 'review_xa1'").await;
    db.exec("XA ROLLBACK 'review_xa1'").await;
    // AND a normal transaction commits afterwards (a marker to read up to)
    db.exec("INSERT INTO t VALUES (2)").await;
    let rows: Vec<i64> = {
        use mysql_async::prelude::Queryable as _;
        db.conn.query("SELECT id FROM t ORDER BY id").await.unwrap()
    };
    assert_eq!(rows, vec![2], "the database holds only the committed row");

    let mut src = source(&db.name, "review_xa", "snapshot: never\n");
    src.start(Some(start)).await.unwrap();
    let c = read_until(&mut src, 20, |e| {
        ops_ids(e, "t").iter().any(|(_, id)| *id == 2)
    })
    .await;

    // THEN only the committed row is a change: the rolled-back row 1 never existed
    assert_eq!(ops_ids(&c.events, "t"), vec![(Op::Create, 2)]);
    db.drop().await;
}

#[tokio::test]
async fn a_committed_xa_transaction_is_emitted_once() {
    let _g = METADATA.read().await;
    // GIVEN a table and a source streaming from the end of the binlog
    let mut db = TestDb::new("review_xa_commit").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB")
        .await;
    let start = db.position().await;
    // WHEN an XA transaction is prepared and committed (two binlog groups)
    db.exec("XA START 'review_xa2'").await;
    db.exec("INSERT INTO t VALUES (1)").await;
    db.exec("XA END 'review_xa2'").await;
    db.exec("XA PREPARE 'review_xa2'").await;
    db.exec("XA COMMIT 'review_xa2'").await;
    db.exec("INSERT INTO t VALUES (2)").await;
    let mut src = source(&db.name, "review_xa_commit", "snapshot: never\n");
    src.start(Some(start)).await.unwrap();
    let c = read_until(&mut src, 20, |e| {
        ops_ids(e, "t").iter().any(|(_, id)| *id == 2)
    })
    .await;
    // THEN the committed row arrives once, before the later one
    assert_eq!(
        ops_ids(&c.events, "t"),
        vec![(Op::Create, 1), (Op::Create, 2)]
    );
    let _ = BinlogPosition::parse(c.last_checkpoint().unwrap().as_str()).unwrap();
    db.drop().await;
}
