//! The schema tracker path: `binlog_row_metadata=MINIMAL` (a global variable, so this test holds
//! the metadata lock exclusively and restores FULL afterwards, even when it fails).

use connector_core::{Op, Source};
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
