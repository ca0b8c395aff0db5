//! The initial snapshot: consistent with the stream while writes go on, restartable, and the
//! `initial_only` and `never` modes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use connector_core::{ChangeEvent, Op, SnapshotMarker, Source, Value};
use source_postgres::PgPosition;

use crate::common::*;

/// Apply events to a table image, failing on any gap or duplicate.
fn apply(image: &mut BTreeMap<i64, i64>, events: &[ChangeEvent]) {
    for e in events {
        if e.table.is_none() {
            continue;
        }
        let id = id(e);
        let v = match e.after.as_ref().map(|r| r[1].clone()) {
            Some(Value::Int(v)) => v,
            _ => 0,
        };
        match e.op {
            Op::Read | Op::Create => {
                assert!(
                    image.insert(id, v).is_none(),
                    "duplicate {:?} of id {id}",
                    e.op
                );
            }
            Op::Update => {
                assert!(
                    image.insert(id, v).is_some(),
                    "update of id {id} never seen (gap)"
                );
            }
            Op::Delete => {
                assert!(
                    image.remove(&id).is_some(),
                    "delete of id {id} never seen (gap)"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn table_image(db: &TestDb) -> BTreeMap<i64, i64> {
    db.client
        .query("SELECT id::int8, v::int8 FROM items WHERE id >= 0", &[])
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_and_stream_have_no_gap_and_no_duplicate_while_writes_go_on() {
    // GIVEN 20,000 rows and a source with small chunks read by 3 connections
    let db = TestDb::new("snapw").await;
    db.exec(
        "CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL); \
         INSERT INTO items SELECT g, 0 FROM generate_series(1, 20000) g; ANALYZE items",
    )
    .await;
    let ctx = connector_core::Context::new(db.name.as_str());
    let mut src = db.source_with(
        &ctx,
        "tables: [public.items]\nsnapshot: initial\nsnapshot_parallelism: 3\nsnapshot_chunk_rows: 1000\nbatch_size: 500\nlag_interval_ms: 100\n",
    );
    src.start(None).await.expect("start");

    // WHEN a writer inserts, updates and deletes throughout the snapshot
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (client, stop) = (db.connect().await, Arc::clone(&stop));
        tokio::spawn(async move {
            let mut n = 0i64;
            while !stop.load(Ordering::Relaxed) || n < 200 {
                n += 1;
                let sql = match n % 4 {
                    0 => format!("INSERT INTO items VALUES ({}, 1)", 100_000 + n),
                    1 => format!("UPDATE items SET v = v + 1 WHERE id = {}", (n * 7919) % 20_000 + 1),
                    2 => format!("DELETE FROM items WHERE id = {}", (n * 104_729) % 20_000 + 1),
                    _ => format!(
                        "BEGIN; UPDATE items SET v = v + 1 WHERE id IN ({}, {}); INSERT INTO items VALUES ({}, 2) ON CONFLICT DO NOTHING; COMMIT",
                        (n * 31) % 20_000 + 1,
                        (n * 37) % 20_000 + 1,
                        200_000 + n
                    ),
                };
                client.batch_execute(&sql).await.unwrap();
            }
            client
                .batch_execute("INSERT INTO items VALUES (-1, 0)")
                .await
                .unwrap();
            n
        })
    };
    let mut image = BTreeMap::new();
    let mut all = Vec::new();
    let mut stopped = false;
    loop {
        let d = drain_until(&mut src, Duration::from_secs(120), |e| !e.is_empty()).await;
        apply(&mut image, &d.events);
        let sentinel = d.events.iter().any(|e| e.table.is_some() && id(e) == -1);
        all.extend(d.events);
        if !stopped
            && all
                .iter()
                .any(|e| e.source.snapshot == SnapshotMarker::Last)
        {
            stop.store(true, Ordering::Relaxed);
            stopped = true;
        }
        if sentinel {
            break;
        }
    }
    let writes = writer.await.unwrap();
    image.remove(&-1);

    // THEN the snapshot rows plus the stream rebuild exactly the table's final state
    let reads = all.iter().filter(|e| e.op == Op::Read).count();
    assert!(reads > 19_000, "{reads} reads");
    assert!(writes >= 200);
    assert_eq!(image, table_image(&db).await);
    // AND the snapshot markers are first ... last, before any streamed event
    let first_stream = all.iter().position(|e| e.op != Op::Read).unwrap();
    assert_eq!(all[0].source.snapshot, SnapshotMarker::First);
    assert_eq!(all[first_stream - 1].source.snapshot, SnapshotMarker::Last);
    assert!(all[1..first_stream - 1]
        .iter()
        .all(|e| e.source.snapshot == SnapshotMarker::True));
    // AND streamed changes happened during the snapshot (the writer overlapped it)
    assert!(all[first_stream..].len() > 50);
    // AND progress and lag are in the metrics
    use connector_core::metrics::{
        SNAPSHOT_ROWS, SNAPSHOT_TABLES_DONE, SNAPSHOT_TABLES_TOTAL, SOURCE_LAG_BYTES,
    };
    assert_eq!(ctx.metrics.total(SNAPSHOT_ROWS) as usize, reads);
    assert_eq!(ctx.metrics.total(SNAPSHOT_TABLES_DONE), 1.0);
    assert_eq!(ctx.metrics.total(SNAPSHOT_TABLES_TOTAL), 1.0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        ctx.metrics.get(SOURCE_LAG_BYTES, &[]).is_some(),
        "{}",
        ctx.metrics.render()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_interrupted_midway_is_taken_again_and_nothing_is_lost() {
    // GIVEN 5,000 rows, a source killed after its first snapshot batch
    let db = TestDb::new("snapkill").await;
    db.exec(
        "CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL); \
         INSERT INTO items SELECT g, 0 FROM generate_series(1, 5000) g",
    )
    .await;
    let cfg = "tables: [public.items]\nsnapshot_chunk_rows: 500\nbatch_size: 200\n";
    let mut src = db.source(cfg);
    src.start(None).await.expect("start");
    let first = drain_until(&mut src, Duration::from_secs(30), |e| e.len() >= 200).await;
    let stored = first.checkpoint.clone().expect("checkpoint");
    assert!(matches!(
        PgPosition::parse(&stored).unwrap(),
        PgPosition::Snapshot { .. }
    ));
    drop(src);

    // WHEN rows change meanwhile and a new source starts from the stored snapshot position
    db.exec("UPDATE items SET v = 5 WHERE id <= 100; DELETE FROM items WHERE id > 4900; INSERT INTO items VALUES (6000, 6)")
        .await;
    let mut src = db.source(cfg);
    src.start(Some(stored)).await.expect("restart");
    let again = drain_until(&mut src, Duration::from_secs(60), |e| {
        e.iter().any(|e| e.source.snapshot == SnapshotMarker::Last)
    })
    .await;
    db.exec("INSERT INTO items VALUES (-1, 0)").await;
    let tail = drain_until(&mut src, Duration::from_secs(30), |e| {
        e.iter().any(|e| id(e) == -1)
    })
    .await;

    // THEN the snapshot is taken again whole, with today's rows, then streaming goes on
    let mut image = BTreeMap::new();
    apply(&mut image, &again.events);
    assert_eq!(image, table_image(&db).await);
    assert_eq!(image[&1], 5);
    assert_eq!(summary(&tail.events), vec![(Op::Create, -1)]);
    assert!(matches!(
        PgPosition::parse(again.checkpoint.as_ref().unwrap()).unwrap(),
        PgPosition::Stream { index: 0, .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_only_reads_the_rows_and_finishes_without_a_slot() {
    // GIVEN rows in two tables, one of them empty
    let db = TestDb::new("snaponly").await;
    db.exec(
        "CREATE TABLE items (id int PRIMARY KEY, v int); CREATE TABLE empty (id int PRIMARY KEY); \
         INSERT INTO items SELECT g, g FROM generate_series(1, 300) g",
    )
    .await;
    let mut src = db.source("tables: [public.items, public.empty]\nsnapshot: initial_only\n");
    src.start(None).await.expect("start");
    // WHEN drained
    let got = drain_until(&mut src, Duration::from_secs(30), |_| false).await;
    // THEN every row arrives once, the source finishes, and no slot was made
    assert_eq!(got.events.len(), 300);
    assert!(src.next_batch().await.unwrap().is_none());
    assert_eq!(db.confirmed_flush(src.slot_name()).await, None);
    let n: i64 = db
        .client
        .query_one(
            "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    // AND a restart from its final position finishes at once
    let mut again = db.source("tables: [public.items, public.empty]\nsnapshot: initial_only\n");
    again.start(got.checkpoint).await.unwrap();
    assert!(again.next_batch().await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_skips_existing_rows_and_streams_new_ones() {
    // GIVEN existing rows and snapshot: never
    let db = TestDb::new("snapnever").await;
    db.exec("CREATE TABLE items (id int PRIMARY KEY, v int); INSERT INTO items VALUES (1, 1)")
        .await;
    let mut src = db.source("tables: [public.items]\nsnapshot: never\n");
    src.start(None).await.expect("start");
    // WHEN a row is inserted
    db.exec("INSERT INTO items VALUES (2, 2)").await;
    let got = drain_n(&mut src, 1).await;
    // THEN only the new row arrives
    assert_eq!(summary(&got.events), vec![(Op::Create, 2)]);
}
