//! The schema tracker path: `binlog_row_metadata=MINIMAL` (a global variable, so these tests hold
//! the metadata lock exclusively and restore FULL afterwards, even when they fail): rows decoded
//! in binlog order through DDL, and idempotent ALTERs that change nothing.

use connector_core::{Op, Source, Value};
use mysql_async::prelude::Queryable as _;

use crate::common::{read_until, source, url, TestDb, METADATA};
use crate::ddl::{assert_shapes, write_through_ddl};

async fn set_row_metadata(value: &str) {
    let mut c = mysql_async::Conn::from_url(url()).await.unwrap();
    c.query_drop(format!("SET GLOBAL binlog_row_metadata = '{value}'"))
        .await
        .unwrap();
    c.disconnect().await.unwrap();
}

#[tokio::test]
async fn without_table_map_names_the_tracker_decodes_rows_in_binlog_order() {
    let _g = METADATA.write().await;
    set_row_metadata("MINIMAL").await;
    let result = tokio::spawn(async {
        // GIVEN a source started (its tracker seeded from the catalog) before any change
        let mut db = TestDb::new("tracker").await;
        db.exec("CREATE TABLE seed (id INT PRIMARY KEY)").await;
        let mut src = source(&db.name, "tracker", "snapshot: never\n");
        src.start(None).await.unwrap();
        // WHEN rows are written around CREATE, ADD, DROP and reordering ALTERs with MINIMAL
        // row metadata (no column names in TABLE_MAP events)
        let _ = write_through_ddl(&mut db).await;
        let c = read_until(&mut src, 30, |e| e.iter().any(|e| e.op == Op::Update)).await;
        // THEN the tracker gives each row the shape it was written with
        assert!(src.used_schema_tracker());
        assert_shapes(&c.events);
        src.stop().await.unwrap();
        db.drop().await;
    })
    .await;
    set_row_metadata("FULL").await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test]
async fn idempotent_alters_that_change_nothing_keep_the_tracker_in_step() {
    let _g = METADATA.write().await;
    set_row_metadata("MINIMAL").await;
    let result = tokio::spawn(async {
        // GIVEN binlog_row_metadata=MINIMAL (the schema tracker names the columns) and a source
        // streaming a table (id, a)
        let mut db = TestDb::new("review_ifexists").await;
        db.exec("CREATE TABLE t (id INT PRIMARY KEY, a INT)").await;
        let mut src = source(&db.name, "review_ifexists", "snapshot: never\n");
        src.start(None).await.unwrap();
        // WHEN a re-run migration issues MariaDB's idempotent ALTERs, which change nothing here
        // (the column exists / does not exist), with rows written after each
        db.exec("ALTER TABLE t ADD COLUMN IF NOT EXISTS a INT")
            .await;
        db.exec("INSERT INTO t VALUES (1, 10)").await;
        db.exec("ALTER TABLE t DROP COLUMN IF EXISTS zz").await;
        db.exec("INSERT INTO t VALUES (2, 20)").await;
        let mut rows = Vec::new();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        while rows.len() < 2 {
            assert!(tokio::time::Instant::now() < deadline, "timed out");
            let b = src.next_batch().await.unwrap_or_else(|e| {
                panic!("the stream stopped on a valid no-op ALTER: {}", e.report())
            });
            for e in b.unwrap().events {
                if e.op == Op::Create {
                    rows.push(e);
                }
            }
        }
        // THEN both rows arrive with the table's real shape
        for (e, (id, a)) in rows.iter().zip([(1, 10), (2, 20)]) {
            let names: Vec<&str> = e
                .table
                .as_ref()
                .unwrap()
                .columns
                .iter()
                .map(|c| &*c.name)
                .collect();
            assert_eq!(names, ["id", "a"]);
            assert_eq!(
                e.after.as_ref().unwrap(),
                &vec![Value::Int(id), Value::Int(a)]
            );
        }
        src.stop().await.unwrap();
        db.drop().await;
    })
    .await;
    set_row_metadata("FULL").await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}
