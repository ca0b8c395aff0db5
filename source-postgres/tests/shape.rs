//! Unchanged TOAST values and schema changes mid-stream.

use connector_core::encode::{write_value, UNAVAILABLE_VALUE};
use connector_core::{Op, Source, Value};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_toast_is_unavailable_never_null_and_full_identity_fills_it() {
    // GIVEN a row whose large text is stored out of line
    let db = TestDb::new("toast").await;
    db.exec(
        "CREATE TABLE docs (id int PRIMARY KEY, big text, small int); \
         ALTER TABLE docs ALTER COLUMN big SET STORAGE EXTERNAL",
    )
    .await;
    let mut src = db.source("tables: [public.docs]\nsnapshot: never\n");
    src.start(None).await.unwrap();
    db.exec("INSERT INTO docs VALUES (1, repeat('abcdefghij', 10000), 1)")
        .await;

    // WHEN another column is updated, with the default replica identity and then with FULL
    db.exec("UPDATE docs SET small = 2 WHERE id = 1").await;
    db.exec("ALTER TABLE docs REPLICA IDENTITY FULL; UPDATE docs SET small = 3 WHERE id = 1")
        .await;
    let got = drain_n(&mut src, 3).await;
    let big = "abcdefghij".repeat(10_000);

    // THEN the insert carries the value, the first update marks it unavailable (not null)...
    assert_eq!(
        got.events[0].after.as_ref().unwrap()[1],
        Value::Text(big.clone())
    );
    let upd = &got.events[1];
    assert_eq!(upd.op, Op::Update);
    assert_eq!(upd.after.as_ref().unwrap()[1], Value::Unavailable);
    assert_eq!(upd.after.as_ref().unwrap()[2], Value::Int(2));
    let mut json = Vec::new();
    write_value(&mut json, &upd.after.as_ref().unwrap()[1]);
    assert_eq!(json, format!("\"{UNAVAILABLE_VALUE}\"").as_bytes());
    // ...and with REPLICA IDENTITY FULL the old row supplies the real value
    let full = &got.events[2];
    assert_eq!(full.after.as_ref().unwrap()[1], Value::Text(big.clone()));
    assert_eq!(full.before.as_ref().unwrap()[1], Value::Text(big));
    assert_eq!(full.before.as_ref().unwrap()[2], Value::Int(2));
    assert_eq!(full.after.as_ref().unwrap()[2], Value::Int(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_table_mid_stream_changes_the_shape_without_a_restart() {
    // GIVEN a streaming source on a table (id, a)
    let db = TestDb::new("alter").await;
    db.exec("CREATE TABLE t (id int PRIMARY KEY, a int)").await;
    let mut src = db.source("tables: [public.t]\nsnapshot: never\n");
    src.start(None).await.unwrap();

    // WHEN columns are added and dropped between inserts
    db.exec("INSERT INTO t VALUES (1, 10)").await;
    db.exec("ALTER TABLE t ADD COLUMN b text NOT NULL DEFAULT 'x'")
        .await;
    db.exec("INSERT INTO t VALUES (2, 20, 'y')").await;
    db.exec("ALTER TABLE t DROP COLUMN a").await;
    db.exec("INSERT INTO t VALUES (3, 'z'); UPDATE t SET b = 'w' WHERE id = 1")
        .await;
    db.exec("ALTER TABLE t ADD COLUMN c numeric(5,1)").await;
    db.exec("INSERT INTO t VALUES (4, 'v', 1.5)").await;
    let got = drain_n(&mut src, 5).await;

    // THEN every event carries the columns of its time, with types and nullability
    let shape = |i: usize| -> Vec<String> {
        got.events[i]
            .table
            .as_ref()
            .unwrap()
            .columns
            .iter()
            .map(|c| {
                format!(
                    "{}:{}:{}",
                    c.name,
                    c.type_name,
                    if c.nullable { "null" } else { "notnull" }
                )
            })
            .collect()
    };
    assert_eq!(shape(0), vec!["id:int4:notnull", "a:int4:null"]);
    assert_eq!(
        shape(1),
        vec!["id:int4:notnull", "a:int4:null", "b:text:notnull"]
    );
    assert_eq!(shape(2), vec!["id:int4:notnull", "b:text:notnull"]);
    assert_eq!(
        shape(4),
        vec!["id:int4:notnull", "b:text:notnull", "c:numeric(5,1):null"]
    );
    assert_eq!(
        got.events[1].after.as_ref().unwrap(),
        &vec![Value::Int(2), Value::Int(20), Value::Text("y".into())]
    );
    assert_eq!(
        got.events[3].after.as_ref().unwrap(),
        &vec![Value::Int(1), Value::Text("w".into())]
    );
    assert_eq!(
        got.events[4].after.as_ref().unwrap()[2],
        Value::Decimal("1.5".into())
    );
    // AND events of one shape share one schema
    assert!(std::sync::Arc::ptr_eq(
        got.events[2].table.as_ref().unwrap(),
        got.events[3].table.as_ref().unwrap()
    ));
}
