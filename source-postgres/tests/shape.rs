//! Unchanged TOAST values (a TOASTed primary key included) and schema changes, mid-stream and
//! across a restart from before them.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_from_before_an_alter_table_replays_each_event_with_its_own_shape() {
    // GIVEN a source that stored a position, then went down
    let db = TestDb::new("rv_alter").await;
    db.exec("CREATE TABLE t (id int PRIMARY KEY, a int)").await;
    let cfg = "tables: [public.t]\nsnapshot: never\n";
    let mut src = db.source(cfg);
    src.start(None).await.unwrap();
    db.exec("INSERT INTO t VALUES (1, 10)").await;
    let got = drain_n(&mut src, 1).await;
    let before_alter = got.checkpoint.clone().expect("a checkpoint");
    drop(src);
    // WHEN, while it is down, the table changes shape twice between inserts
    db.exec("INSERT INTO t VALUES (2, 20)").await;
    db.exec("ALTER TABLE t ADD COLUMN b text").await;
    db.exec("INSERT INTO t VALUES (3, 30, 'x')").await;
    db.exec("ALTER TABLE t DROP COLUMN a").await;
    db.exec("INSERT INTO t VALUES (4, 'y')").await;
    // AND it restarts from the stored position (a new walsender: Relation messages are sent
    // again, with the historic shapes, while the live catalog has the newest one)
    let mut src = db.source(cfg);
    src.start(Some(before_alter)).await.unwrap();
    let got = drain_n(&mut src, 3).await;

    // THEN every event carries the columns and values of its own time
    let rows: Vec<(Vec<String>, Vec<Value>)> = got
        .events
        .iter()
        .map(|e| {
            (
                e.table
                    .as_ref()
                    .unwrap()
                    .columns
                    .iter()
                    .map(|c| c.name.to_string())
                    .collect(),
                e.after.clone().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (
                vec!["id".to_string(), "a".to_string()],
                vec![Value::Int(2), Value::Int(20)]
            ),
            (
                vec!["id".to_string(), "a".to_string(), "b".to_string()],
                vec![Value::Int(3), Value::Int(30), Value::Text("x".into())]
            ),
            (
                vec!["id".to_string(), "b".to_string()],
                vec![Value::Int(4), Value::Text("y".into())]
            ),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_keeps_a_toasted_primary_key_that_it_did_not_change() {
    // GIVEN a table whose text primary key is stored out of line (TOAST, no compression)
    let db = TestDb::new("rv_toastkey").await;
    db.exec(
        "CREATE TABLE t (id text PRIMARY KEY, v int); \
         ALTER TABLE t ALTER COLUMN id SET STORAGE EXTERNAL",
    )
    .await;
    let key = "k".repeat(2_500);
    db.exec(&format!("INSERT INTO t VALUES ('{key}', 1)")).await;
    let mut src = db.source("tables: [public.t]\nsnapshot: never\n");
    src.start(None).await.unwrap();
    // WHEN another column of the row is updated (the key's TOAST value is unchanged)
    db.exec("UPDATE t SET v = 2").await;
    let got = drain_n(&mut src, 1).await;
    // THEN the update carries the real key (what sinks key and partition on), never the
    // unavailable placeholder
    let e = &got.events[0];
    assert_eq!(e.op, Op::Update);
    assert_eq!(e.after.as_ref().unwrap()[0], Value::Text(key.clone()));
    let enc = connector_core::Encoder::new("p", connector_core::Format::Debezium);
    let mut k = Vec::new();
    assert!(enc.write_key(e, &mut k));
    assert_eq!(
        String::from_utf8(k).unwrap(),
        format!("{{\"id\":\"{key}\"}}")
    );
}
