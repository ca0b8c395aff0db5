//! Partitioned tables: captured whole under the partitioned table's name (by name or by pattern,
//! snapshotted once and in chunks of its partitions, streamed through `publish_via_partition_root`),
//! a partition listed on its own, and PostgreSQL 12, where a partitioned table cannot be captured.

use std::time::Duration;

use connector_core::{Op, Source, Value};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_table_matched_by_a_pattern_is_snapshotted_once() {
    // GIVEN a partitioned table with two partitions holding 4 rows, captured by `public.*`
    let db = TestDb::new("rv_part").await;
    db.exec(
        "CREATE TABLE m (id int, k int, PRIMARY KEY (id, k)) PARTITION BY LIST (k); \
         CREATE TABLE m_1 PARTITION OF m FOR VALUES IN (1); \
         CREATE TABLE m_2 PARTITION OF m FOR VALUES IN (2); \
         INSERT INTO m VALUES (1, 1), (2, 1), (3, 2), (4, 2)",
    )
    .await;
    let mut src = db.source("tables: [public.*]\nsnapshot: initial\n");
    src.start(None).await.unwrap();
    // WHEN the initial snapshot runs, then a row is updated
    let snap = drain_until(&mut src, Duration::from_secs(30), |e| {
        e.last()
            .is_some_and(|e| e.source.snapshot == connector_core::SnapshotMarker::Last)
    })
    .await;
    db.exec("UPDATE m SET id = 10 WHERE id = 1").await;
    let stream = drain_n(&mut src, 1).await;
    let tables = |events: &[connector_core::ChangeEvent]| -> Vec<String> {
        let mut v: Vec<String> = events
            .iter()
            .map(|e| {
                let row = e.after.as_ref().or(e.before.as_ref()).unwrap();
                format!("{}:{:?}", e.table.as_ref().unwrap().id.table, row[0])
            })
            .collect();
        v.sort();
        v
    };
    // THEN every row is read once, under the partitioned table's name, which its later changes
    // are streamed under too
    let streamed_table = stream.events[0]
        .table
        .as_ref()
        .unwrap()
        .id
        .table
        .to_string();
    assert_eq!(streamed_table, "m");
    assert_eq!(
        tables(&snap.events),
        ["m:Int(1)", "m:Int(2)", "m:Int(3)", "m:Int(4)"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_table_configured_by_name_streams_its_changes_or_is_refused() {
    // GIVEN a partitioned table configured by its (parent) name
    let db = TestDb::new("rv_parent").await;
    db.exec(
        "CREATE TABLE m (id int, k int, PRIMARY KEY (id, k)) PARTITION BY LIST (k); \
         CREATE TABLE m_1 PARTITION OF m FOR VALUES IN (1); \
         CREATE TABLE other (id int PRIMARY KEY)",
    )
    .await;
    let mut src = db.source("tables: [public.m, public.other]\nsnapshot: never\n");
    // WHEN the source starts, and rows of the table change, through it and through its partitions
    // (one created after the start), then the table is truncated
    src.start(None).await.expect("start");
    db.exec(
        "INSERT INTO m VALUES (1, 1); CREATE TABLE m_2 PARTITION OF m FOR VALUES IN (2); \
         INSERT INTO m_2 VALUES (2, 2); UPDATE m_1 SET id = 10 WHERE id = 1; \
         UPDATE m SET k = 1 WHERE id = 2; DELETE FROM m WHERE id = 10; TRUNCATE m; \
         INSERT INTO other VALUES (1)",
    )
    .await;
    let got = drain_until(&mut src, Duration::from_secs(30), |e| {
        e.iter()
            .any(|e| e.table.as_ref().unwrap().id.table.as_ref() == "other")
    })
    .await;
    // THEN every change is delivered, in order, under the partitioned table's name and shape
    let tables: Vec<(Op, String)> = got
        .events
        .iter()
        .map(|e| (e.op, e.table.as_ref().unwrap().id.to_string()))
        .collect();
    let m = "public.m".to_string();
    let want: Vec<(Op, String)> = [
        Op::Create,
        Op::Create,
        Op::Update,
        // a row moved to another partition: a delete from the old one, an insert into the new
        Op::Delete,
        Op::Create,
        Op::Delete,
        Op::Truncate,
    ]
    .into_iter()
    .map(|op| (op, m.clone()))
    .chain([(Op::Create, "public.other".to_string())])
    .collect();
    assert_eq!(tables, want);
    let e = &got.events[2];
    assert_eq!(
        e.after.as_ref().unwrap(),
        &vec![Value::Int(10), Value::Int(1)]
    );
    let keys: Vec<(String, bool)> = e
        .table
        .as_ref()
        .unwrap()
        .columns
        .iter()
        .map(|c| (c.name.to_string(), c.key))
        .collect();
    assert_eq!(
        keys,
        vec![("id".to_string(), true), ("k".to_string(), true)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_publication_without_publish_via_partition_root_is_refused_with_the_fix() {
    // GIVEN a publication created by someone else for a partitioned table, without
    // publish_via_partition_root (its changes are published under the partitions' names)
    let db = TestDb::new("rv_viaroot").await;
    db.exec(
        "CREATE TABLE m (id int, k int, PRIMARY KEY (id, k)) PARTITION BY LIST (k); \
         CREATE TABLE m_1 PARTITION OF m FOR VALUES IN (1); \
         CREATE PUBLICATION mine FOR TABLE m",
    )
    .await;
    let cfg = "tables: [public.m]\npublication: mine\nsnapshot: never\n";
    let fix = "ALTER PUBLICATION \"mine\" SET (publish_via_partition_root = true)";
    // WHEN the source starts
    let mut src = db.source(cfg);
    let e = src.start(None).await.expect_err("must fail");
    // THEN it refuses (a precondition) naming the table, with the statement that fixes it
    assert_eq!(e.kind(), connector_core::ErrorKind::Precondition);
    assert!(e.message().contains("public.m"), "{}", e.message());
    assert!(e.hint().unwrap().contains(fix), "{:?}", e.hint());
    // AND `cdc check` reports the same
    let checks = src.check().await;
    let publication = checks.iter().find(|c| c.name == "publication").unwrap();
    assert_eq!(
        publication.status,
        connector_core::CheckStatus::Fail,
        "{publication}"
    );
    assert!(
        publication.hint.as_deref().unwrap().contains(fix),
        "{publication}"
    );
    // AND once the fix is applied, the table's changes are captured under its name
    db.exec(&format!(
        "{fix}; CREATE TABLE m_2 PARTITION OF m FOR VALUES IN (2)"
    ))
    .await;
    let mut src = db.source(cfg);
    src.start(None).await.expect("start");
    let checks = src.check().await;
    let publication = checks.iter().find(|c| c.name == "publication").unwrap();
    assert_eq!(
        publication.status,
        connector_core::CheckStatus::Pass,
        "{publication}"
    );
    db.exec("INSERT INTO m VALUES (1, 1), (2, 2)").await;
    let got = drain_n(&mut src, 2).await;
    let names: Vec<String> = got
        .events
        .iter()
        .map(|e| e.table.as_ref().unwrap().id.to_string())
        .collect();
    assert_eq!(names, ["public.m", "public.m"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_listed_without_its_partitioned_table_is_a_table_of_its_own() {
    // GIVEN a partitioned table with rows in two partitions, of which only one is configured
    let db = TestDb::new("rv_leaf").await;
    db.exec(
        "CREATE TABLE m (id int, k int, PRIMARY KEY (id, k)) PARTITION BY LIST (k); \
         CREATE TABLE m_1 PARTITION OF m FOR VALUES IN (1); \
         CREATE TABLE m_2 PARTITION OF m FOR VALUES IN (2); \
         INSERT INTO m VALUES (1, 1), (2, 2)",
    )
    .await;
    let mut src = db.source("tables: [public.m_1]\nsnapshot: initial\n");
    src.start(None).await.expect("start");
    // WHEN it is snapshotted, and rows are inserted into both partitions through the parent
    let snap = drain_n(&mut src, 1).await;
    db.exec("INSERT INTO m VALUES (3, 2), (4, 1)").await;
    let got = drain_n(&mut src, 1).await;
    let more = drain_for(&mut src, Duration::from_millis(700)).await;
    // THEN only that partition's rows arrive, under its own name
    let rows = |events: &[connector_core::ChangeEvent]| -> Vec<(String, i64)> {
        events
            .iter()
            .map(|e| (e.table.as_ref().unwrap().id.to_string(), id(e)))
            .collect()
    };
    assert_eq!(rows(&snap.events), [("public.m_1".to_string(), 1)]);
    assert_eq!(rows(&got.events), [("public.m_1".to_string(), 4)]);
    assert!(more.events.is_empty(), "{:?}", rows(&more.events));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_table_is_snapshotted_in_chunks_of_its_partitions_each_row_once() {
    // GIVEN a two-level partitioned table with thousands of rows in several partitions (one of
    // them partitioned again), and a small chunk size
    let db = TestDb::new("rv_partchunk").await;
    db.exec(
        "CREATE TABLE m (id int, k int, v text, PRIMARY KEY (id, k)) PARTITION BY LIST (k); \
         CREATE TABLE m_1 PARTITION OF m FOR VALUES IN (1); \
         CREATE TABLE m_2 (v text, k int NOT NULL, id int NOT NULL); \
         ALTER TABLE m ATTACH PARTITION m_2 FOR VALUES IN (2); \
         CREATE TABLE m_3 PARTITION OF m FOR VALUES IN (3) PARTITION BY RANGE (id); \
         CREATE TABLE m_3a PARTITION OF m_3 FOR VALUES FROM (0) TO (5000); \
         CREATE TABLE m_3b PARTITION OF m_3 FOR VALUES FROM (5000) TO (MAXVALUE); \
         INSERT INTO m SELECT i, 1 + i % 3, repeat('x', 100) FROM generate_series(1, 9000) i; \
         ANALYZE m",
    )
    .await;
    let mut src = db.source(
        "tables: [public.m]\nsnapshot: initial\nsnapshot_chunk_rows: 500\n\
         snapshot_parallelism: 3\nbatch_size: 256\n",
    );
    src.start(None).await.expect("start");
    // WHEN the snapshot runs
    let snap = drain_until(&mut src, Duration::from_secs(60), |e| {
        e.last()
            .is_some_and(|e| e.source.snapshot == connector_core::SnapshotMarker::Last)
    })
    .await;
    // THEN every row arrives exactly once, under the partitioned table, with its columns in the
    // partitioned table's order (a partition attached with another column order included)
    let mut ids: Vec<i64> = snap.events.iter().map(id).collect();
    ids.sort();
    assert_eq!(ids, (1..=9000).collect::<Vec<i64>>());
    for e in &snap.events {
        let t = e.table.as_ref().unwrap();
        assert_eq!(t.id.to_string(), "public.m");
        let row = e.after.as_ref().unwrap();
        assert_eq!(row[1], Value::Int(1 + id(e) % 3), "{row:?}");
        assert_eq!(row[2], Value::Text("x".repeat(100)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_postgres_13_a_partitioned_table_is_refused_by_name_and_left_out_of_patterns() {
    // GIVEN a partitioned table (resolved as PostgreSQL 12 would have to)
    let db = TestDb::new("rv_pg12").await;
    db.exec(
        "CREATE TABLE m (id int, k int, PRIMARY KEY (id, k)) PARTITION BY LIST (k); \
         CREATE TABLE m_1 PARTITION OF m FOR VALUES IN (1); \
         CREATE TABLE other (id int PRIMARY KEY)",
    )
    .await;
    let resolve = |entries: &[&str], version: u32| {
        let entries: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
        let client = &db.client;
        async move {
            source_postgres::catalog::resolve_tables(client, &entries, false, version)
                .await
                .map(|t| t.iter().map(|t| t.display()).collect::<Vec<_>>())
        }
    };
    // WHEN it is configured by name THEN that is a configuration error naming the key
    let e = resolve(&["public.other", "public.m"], 120_000)
        .await
        .expect_err("must fail");
    assert_eq!(e.kind(), connector_core::ErrorKind::Config);
    assert!(e.message().contains("source.tables[1]"), "{}", e.message());
    assert!(e.message().contains("partitioned"), "{}", e.message());
    assert!(e.hint().is_some());
    // WHEN a pattern matches it THEN its partitions are captured as tables of their own
    assert_eq!(
        resolve(&["public.*"], 120_000).await.unwrap(),
        ["public.m_1", "public.other"]
    );
    // AND from PostgreSQL 13 on, it is captured whole, without its partitions
    assert_eq!(
        resolve(&["public.*"], 150_000).await.unwrap(),
        ["public.m", "public.other"]
    );
    assert_eq!(
        resolve(&["public.m_1", "public.m"], 150_000).await.unwrap(),
        ["public.m"]
    );
}
