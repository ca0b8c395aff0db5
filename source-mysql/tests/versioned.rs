//! MariaDB system-versioned tables: `information_schema` reports them as `SYSTEM VERSIONED` and
//! leaves out their implicit `row_start`/`row_end` columns, which every row image carries.

use connector_core::{Op, Source, Value};
use mysql_async::prelude::Queryable as _;

use crate::common::{int, of_table, read_until, source, url, TestDb, METADATA};

const ROW_END_MAX: i64 = 2_147_483_647_999_999;

fn shape(e: &connector_core::ChangeEvent) -> Vec<(String, String, bool, bool)> {
    e.table
        .as_ref()
        .unwrap()
        .columns
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                c.type_name.to_string(),
                c.nullable,
                c.key,
            )
        })
        .collect()
}

#[tokio::test]
async fn snapshot_and_stream_rows_of_a_versioned_table_have_the_same_shape() {
    let _g = METADATA.read().await;
    // GIVEN a versioned table with implicit period columns, and one with explicit ones
    let mut db = TestDb::new("versioned_shape").await;
    db.exec("CREATE TABLE sv (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING")
        .await;
    db.exec(
        "CREATE TABLE ev (id INT PRIMARY KEY, v INT, \
         s TIMESTAMP(6) GENERATED ALWAYS AS ROW START, \
         e TIMESTAMP(6) GENERATED ALWAYS AS ROW END, PERIOD FOR SYSTEM_TIME(s, e)) \
         WITH SYSTEM VERSIONING",
    )
    .await;
    db.exec("INSERT INTO sv (id, v) VALUES (1, 10)").await;
    db.exec("INSERT INTO ev (id, v) VALUES (1, 10)").await;
    let mut src = source(&db.name, "versioned_shape", "snapshot: initial\n");
    src.start(None).await.unwrap();
    let snap = read_until(&mut src, 30, |e| {
        !of_table(e, "sv").is_empty() && !of_table(e, "ev").is_empty()
    })
    .await;
    // WHEN rows are inserted while streaming
    db.exec("INSERT INTO sv (id, v) VALUES (2, 20)").await;
    db.exec("INSERT INTO ev (id, v) VALUES (2, 20)").await;
    let stream = read_until(&mut src, 30, |e| {
        !of_table(e, "sv").is_empty() && !of_table(e, "ev").is_empty()
    })
    .await;
    for table in ["sv", "ev"] {
        let read = of_table(&snap.events, table)[0];
        let create = of_table(&stream.events, table)[0];
        assert_eq!((read.op, create.op), (Op::Read, Op::Create));
        // THEN both carry the period columns, described identically
        assert_eq!(shape(read), shape(create), "{table}");
        assert_eq!(shape(read).len(), 4, "{table}: {:?}", shape(read));
        // AND a current row ends at the maximum timestamp in both
        let (r, c) = (read.after.as_ref().unwrap(), create.after.as_ref().unwrap());
        assert_eq!(r[3], Value::TimestampTz(ROW_END_MAX), "{table}");
        assert_eq!(c[3], Value::TimestampTz(ROW_END_MAX), "{table}");
        assert!(matches!(r[2], Value::TimestampTz(_)), "{table}");
    }
    let names: Vec<String> = shape(of_table(&snap.events, "sv")[0])
        .into_iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(names, ["id", "v", "row_start", "row_end"]);
    src.stop().await.unwrap();
    db.drop().await;
}

async fn set_row_metadata(value: &str) {
    let mut c = mysql_async::Conn::from_url(url()).await.unwrap();
    c.query_drop(format!("SET GLOBAL binlog_row_metadata = '{value}'"))
        .await
        .unwrap();
    c.disconnect().await.unwrap();
}

#[tokio::test]
async fn the_schema_tracker_follows_a_versioned_table() {
    let _g = METADATA.write().await;
    set_row_metadata("MINIMAL").await;
    let result = tokio::spawn(async {
        // GIVEN binlog_row_metadata=MINIMAL, a versioned table in the catalog at start, and one
        // created while streaming
        let mut db = TestDb::new("versioned_tracker").await;
        db.exec("CREATE TABLE a (id INT PRIMARY KEY) WITH SYSTEM VERSIONING")
            .await;
        let mut src = source(&db.name, "versioned_tracker", "snapshot: never\n");
        src.start(None).await.unwrap();
        db.exec("CREATE TABLE b (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING")
            .await;
        // WHEN rows are written, also after a column is added
        db.exec("INSERT INTO a VALUES (1)").await;
        db.exec("INSERT INTO b (id, v) VALUES (1, 2)").await;
        db.exec("SET SESSION system_versioning_alter_history = KEEP")
            .await;
        db.exec("ALTER TABLE b ADD COLUMN w INT").await;
        db.exec("INSERT INTO b (id, v, w) VALUES (2, 3, 4)").await;
        let c = read_until(&mut src, 30, |e| {
            of_table(e, "b")
                .iter()
                .filter(|e| e.op == Op::Create)
                .count()
                == 2
        })
        .await;
        // THEN the tracker names the columns, the period columns last
        assert!(src.used_schema_tracker());
        let names = |e: &connector_core::ChangeEvent| -> Vec<String> {
            shape(e).into_iter().map(|c| c.0).collect()
        };
        let a: Vec<_> = of_table(&c.events, "a");
        assert_eq!(names(a[0]), ["id", "row_start", "row_end"]);
        let b: Vec<_> = of_table(&c.events, "b")
            .into_iter()
            .filter(|e| e.op == Op::Create)
            .collect();
        assert_eq!(names(b[0]), ["id", "v", "row_start", "row_end"]);
        assert_eq!(names(b[1]), ["id", "v", "w", "row_start", "row_end"]);
        assert_eq!(b[1].after.as_ref().unwrap()[2], Value::Int(4));
        assert_eq!(
            b[1].after.as_ref().unwrap()[4],
            Value::TimestampTz(ROW_END_MAX)
        );
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
async fn the_snapshot_reads_a_system_versioned_table() {
    let _g = METADATA.read().await;
    // GIVEN a captured MariaDB system-versioned table with rows, and a plain table
    let mut db = TestDb::new("review_versioned").await;
    db.exec("CREATE TABLE sv (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING")
        .await;
    db.exec("CREATE TABLE plain (id INT PRIMARY KEY)").await;
    db.exec("INSERT INTO sv (id, v) VALUES (1, 10), (2, 20)")
        .await;
    db.exec("INSERT INTO plain VALUES (1)").await;
    // WHEN an initial snapshot runs
    let mut src = source(&db.name, "review_versioned", "snapshot: initial_only\n");
    src.start(None).await.unwrap();
    let c = read_until(&mut src, 30, |_| false).await;
    assert!(c.finished);
    // THEN it read the rows of both tables
    assert_eq!(of_table(&c.events, "plain").len(), 1);
    let ids: Vec<i64> = of_table(&c.events, "sv")
        .iter()
        .map(|e| int(&e.after.as_ref().unwrap()[0]))
        .collect();
    assert_eq!(ids.len(), 2, "the versioned table's rows: {ids:?}");
    db.drop().await;
}
