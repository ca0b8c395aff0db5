//! Resuming inside a transaction by GTID: the events-to-skip count of the stored position is
//! applied only to the transaction it was counted in.

use connector_core::{Position, Source};
use source_mysql::BinlogPosition;

use crate::common::{of_table, read_until, source, TestDb, METADATA};
use crate::resume::ids;

/// Start from `from` and read until an error; panics if 10 is delivered first.
async fn first_error(src: &mut dyn Source, from: Position) -> String {
    if let Err(e) = src.start(Some(from)).await {
        return e.to_string();
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no error; delivered {seen:?}"
        );
        match src.next_batch().await {
            Err(e) => return e.to_string(),
            Ok(Some(b)) => {
                seen.extend(ids(&b.events.iter().collect::<Vec<_>>()));
                assert!(!seen.contains(&10), "delivered {seen:?} without an error");
            }
            Ok(None) => panic!("finished without an error; delivered {seen:?}"),
        }
    }
}

#[tokio::test]
async fn a_resume_by_gtid_skips_only_events_of_the_transaction_it_counted() {
    let _g = METADATA.read().await;
    // GIVEN two transactions of 5 rows, and a source by GTID with batches of 2 that delivered
    // the first 2 rows of the first one
    let mut db = TestDb::new("gtid_skip").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").await;
    let start = db.position().await;
    db.exec("INSERT INTO t VALUES (1),(2),(3),(4),(5)").await;
    db.exec("INSERT INTO t VALUES (6),(7),(8),(9),(10)").await;
    let extra = "snapshot: never\ngtid: true\nmax_batch_events: 2\n";
    let mut src = source(&db.name, "gtid_skip", extra);
    src.start(Some(start)).await.unwrap();
    let b = src.next_batch().await.unwrap().unwrap();
    assert_eq!(ids(&b.events.iter().collect::<Vec<_>>()), [1, 2]);
    let cp = BinlogPosition::parse(b.checkpoint.unwrap().as_str()).unwrap();
    let first_txn = b.events[0].txn.as_ref().unwrap().id.to_string();
    assert_eq!(cp.row, 2);
    assert_eq!(cp.txn.as_deref(), Some(first_txn.as_str()), "{cp}");
    // (the GTID set before the second transaction)
    let all = read_until(&mut src, 30, |e| ids(&of_table(e, "t")).contains(&10)).await;
    let second = of_table(&all.events, "t")
        .into_iter()
        .find(|e| ids(&[e]) == [6])
        .unwrap()
        .position
        .clone();
    let after_first = BinlogPosition::parse(second.as_str()).unwrap().gtids;
    drop(src);

    // WHEN it resumes from its checkpoint THEN it delivers exactly the rest
    let mut src = source(&db.name, "gtid_skip", extra);
    src.start(Some(cp.to_position())).await.unwrap();
    let c = read_until(&mut src, 30, |e| ids(&of_table(e, "t")).contains(&10)).await;
    assert_eq!(ids(&of_table(&c.events, "t")), [3, 4, 5, 6, 7, 8, 9, 10]);
    drop(src);

    // WHEN a position's GTID set leads the server to another transaction than the one its
    // count belongs to THEN the resume fails naming both, and skips nothing of the other
    let mut wrong = cp.clone();
    wrong.gtids = after_first.clone();
    let mut src = source(&db.name, "gtid_skip", extra);
    let e = first_error(&mut src, wrong.to_position()).await;
    assert!(
        e.contains(&format!("not {first_txn}")) && e.contains("cannot resume inside"),
        "{e}"
    );
    // AND a position that does not name its transaction (written before `txn=` existed)
    // cannot be resumed inside a transaction by GTID: an error, not a silent skip of 6 and 7
    let mut legacy = wrong.clone();
    legacy.txn = None;
    let mut src = source(&db.name, "gtid_skip", extra);
    let e = first_error(&mut src, legacy.to_position()).await;
    assert!(e.contains("does not name that transaction"), "{e}");
    db.drop().await;
}
