//! DDL mid-stream: rows are decoded with the shape they were written with.

use connector_core::{Op, Source, Value};

use crate::common::{of_table, read_until, source, TestDb, METADATA};

/// Write rows, add a column, write, drop a column, write, move a column first, write, and
/// return the source position from before the first rows.
pub async fn write_through_ddl(db: &mut TestDb) -> connector_core::Position {
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, a VARCHAR(10), b INT)")
        .await;
    let start = db.position().await;
    db.exec("INSERT INTO t VALUES (1, 'one', 10)").await;
    db.exec("ALTER TABLE t ADD COLUMN c DECIMAL(5,2) AFTER a")
        .await;
    db.exec("INSERT INTO t VALUES (2, 'two', 2.50, 20)").await;
    db.exec("ALTER TABLE t DROP COLUMN a").await;
    db.exec("INSERT INTO t VALUES (3, 3.75, 30)").await;
    db.exec("ALTER TABLE t MODIFY COLUMN b BIGINT FIRST").await;
    db.exec("INSERT INTO t (id, c, b) VALUES (4, 4.00, 40)")
        .await;
    db.exec("UPDATE t SET b = 41 WHERE id = 4").await;
    start
}

/// Check what [`write_through_ddl`] produced.
pub fn assert_shapes(events: &[connector_core::ChangeEvent]) {
    let rows: Vec<_> = of_table(events, "t")
        .into_iter()
        .filter(|e| e.op != Op::Message)
        .collect();
    let shape = |i: usize| -> Vec<String> {
        rows[i]
            .table
            .as_ref()
            .unwrap()
            .columns
            .iter()
            .map(|c| format!("{} {}", c.name, c.type_name))
            .collect()
    };
    assert_eq!(rows.len(), 5, "{rows:#?}");
    assert_eq!(shape(0), ["id int", "a varchar(10)", "b int"]);
    assert_eq!(
        rows[0].after.as_ref().unwrap(),
        &vec![Value::Int(1), Value::Text("one".into()), Value::Int(10)]
    );
    assert_eq!(
        shape(1),
        ["id int", "a varchar(10)", "c decimal(5,2)", "b int"]
    );
    assert_eq!(
        rows[1].after.as_ref().unwrap(),
        &vec![
            Value::Int(2),
            Value::Text("two".into()),
            Value::Decimal("2.50".into()),
            Value::Int(20)
        ]
    );
    assert_eq!(shape(2), ["id int", "c decimal(5,2)", "b int"]);
    assert_eq!(
        rows[2].after.as_ref().unwrap(),
        &vec![Value::Int(3), Value::Decimal("3.75".into()), Value::Int(30)]
    );
    assert_eq!(shape(3), ["b bigint", "id int", "c decimal(5,2)"]);
    assert_eq!(
        rows[3].after.as_ref().unwrap(),
        &vec![Value::Int(40), Value::Int(4), Value::Decimal("4.00".into())]
    );
    assert_eq!(rows[4].op, Op::Update);
    assert_eq!(rows[4].before.as_ref().unwrap()[0], Value::Int(40));
    assert_eq!(rows[4].after.as_ref().unwrap()[0], Value::Int(41));
    assert!(rows[3].table.as_ref().unwrap().columns[1].key);
}

#[tokio::test]
async fn rows_written_before_ddl_but_read_after_it_keep_their_old_shape() {
    let _g = METADATA.read().await;
    // GIVEN rows written around ADD, DROP and reordering ALTERs, all before the source starts
    let mut db = TestDb::new("ddl_shapes").await;
    let start = write_through_ddl(&mut db).await;
    // WHEN a source streams from before the first row (the live catalog has moved on)
    let mut src = source(&db.name, "ddl_shapes", "snapshot: never\n");
    src.start(Some(start)).await.unwrap();
    let c = read_until(&mut src, 30, |e| {
        e.iter().filter(|e| e.op == Op::Update).count() >= 1
    })
    .await;
    // THEN each row is decoded with the columns it was written with
    assert_shapes(&c.events);
    // AND the DDL statements arrive as `ddl` messages in binlog order
    let ddl: Vec<String> = c
        .events
        .iter()
        .filter(|e| e.op == Op::Message)
        .map(|e| {
            let m = e.message.as_ref().unwrap();
            assert_eq!(m.prefix, "ddl");
            String::from_utf8(m.content.clone()).unwrap()
        })
        .collect();
    assert_eq!(ddl.len(), 3, "{ddl:?}");
    assert!(ddl[0].contains("ADD COLUMN c"));
    assert!(ddl[2].contains("FIRST"));
    assert!(
        !src.used_schema_tracker(),
        "binlog_row_metadata=FULL carries the names"
    );
    src.stop().await.unwrap();
    db.drop().await;
}
