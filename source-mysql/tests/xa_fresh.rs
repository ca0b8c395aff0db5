//! XA transactions prepared before the position a stream starts from (a snapshot taken while
//! they were prepared) and committed after it: their prepared part is read from the binlog
//! before the start, and their changes are delivered at their commit.

use connector_core::{ChangeEvent, Op, Source, Value};
use mysql_async::prelude::Queryable as _;
use source_mysql::BinlogPosition;

use crate::common::{of_table, read_until, source, TestDb, METADATA};

fn ids(events: &[ChangeEvent], op: Op) -> Vec<i64> {
    of_table(events, "t")
        .iter()
        .filter(|e| e.op == op)
        .map(|e| match &e.after.as_ref().unwrap()[0] {
            Value::Int(i) => *i,
            other => panic!("{other:?}"),
        })
        .collect()
}

async fn exec(c: &mut mysql_async::Conn, sql: &str) {
    c.query_drop(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[tokio::test]
async fn an_xa_transaction_prepared_before_the_snapshot_is_delivered_at_its_commit() {
    let _g = METADATA.read().await;
    // (an earlier failed run may have left it prepared: it would block the database's drop)
    let mut c = mysql_async::Conn::from_url(crate::common::url())
        .await
        .unwrap();
    let _ = c.query_drop("XA ROLLBACK 'xa_fresh_1'").await;
    let _ = c.disconnect().await;
    // GIVEN an XA transaction left prepared (row 1) and a committed row 2
    let mut db = TestDb::new("xa_fresh").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").await;
    let mut xa = db.another().await;
    exec(&mut xa, "XA START 'xa_fresh_1'").await;
    exec(&mut xa, "INSERT INTO t VALUES (1)").await;
    exec(&mut xa, "XA END 'xa_fresh_1'").await;
    exec(&mut xa, "XA PREPARE 'xa_fresh_1'").await;
    db.exec("INSERT INTO t VALUES (2)").await;
    // WHEN a source takes its snapshot (which cannot see row 1) and streams from its point
    let mut src = source(&db.name, "xa_fresh", "snapshot: initial\n");
    src.start(None).await.unwrap();
    let snap = read_until(&mut src, 30, |e| ids(e, Op::Read).contains(&2)).await;
    let mut checkpoint = snap.last_checkpoint();
    while src.snapshotting() || checkpoint.is_none() {
        let b = src.next_batch().await.unwrap().unwrap();
        checkpoint = b.checkpoint.or(checkpoint);
    }
    let held = BinlogPosition::parse(checkpoint.as_ref().unwrap().as_str()).unwrap();
    drop(src);
    // AND WHEN it restarts from there, the XA transaction is committed, and row 3 written
    let mut src = source(&db.name, "xa_fresh", "snapshot: initial\n");
    src.start(checkpoint).await.unwrap();
    let quiet = src.next_batch().await.unwrap().unwrap();
    exec(&mut xa, "XA COMMIT 'xa_fresh_1'").await;
    db.exec("INSERT INTO t VALUES (3)").await;
    let streamed = read_until(&mut src, 30, |e| ids(e, Op::Create).contains(&3)).await;
    // THEN row 1 is delivered at its commit, row 2 (in the snapshot) is not delivered again
    assert_eq!(ids(&snap.events, Op::Read), [2]);
    let mut all = quiet.events.clone();
    all.extend(streamed.events.clone());
    assert_eq!(ids(&all, Op::Create), [1, 3]);
    // AND while the XA transaction was prepared the stored position stayed before its prepared
    // part and said where delivery starts
    assert!(held.deliver.is_some(), "{held}");
    // AND once delivered the checkpoint no longer carries the delivery point
    let last = BinlogPosition::parse(streamed.last_checkpoint().unwrap().as_str()).unwrap();
    assert!(last.deliver.is_none(), "{last}");
    let _ = xa.disconnect().await;
    db.drop().await;
}
