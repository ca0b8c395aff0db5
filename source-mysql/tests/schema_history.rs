//! Schema history: after a restart, rows written before a DDL are decoded with the definition
//! of their own time, not the live one, whatever `binlog_row_metadata` is.

use connector_core::{ChangeEvent, Op, Source, Value};
use source_mysql::MysqlSource;

use crate::common::read_until;
use crate::private_server::PrivateMariaDb;

/// `(column, value)` pairs of a create event's row.
fn row(e: &ChangeEvent) -> Vec<(String, Value)> {
    let t = e.table.as_ref().unwrap();
    t.columns
        .iter()
        .map(|c| c.name.to_string())
        .zip(e.after.clone().unwrap())
        .collect()
}

fn creates(events: &[ChangeEvent]) -> Vec<Vec<(String, Value)>> {
    events
        .iter()
        .filter(|e| e.op == Op::Create)
        .map(row)
        .collect()
}

fn has_id(events: &[ChangeEvent], id: i64) -> bool {
    events
        .iter()
        .any(|e| e.op == Op::Create && e.after.as_ref().unwrap()[0] == Value::Int(id))
}

fn pairs(v: &[(&str, i64)]) -> Vec<(String, Value)> {
    v.iter()
        .map(|(c, x)| (c.to_string(), Value::Int(*x)))
        .collect()
}

async fn snapshot_then_checkpoint(src: &mut MysqlSource) -> connector_core::Position {
    let mut last = None;
    loop {
        let b = src.next_batch().await.unwrap().unwrap();
        if b.checkpoint.is_some() {
            last = b.checkpoint;
        }
        if let Some(cp) = last.as_ref().filter(|_| !src.snapshotting()) {
            return cp.clone();
        }
    }
}

#[tokio::test]
async fn rows_before_an_alter_are_decoded_with_their_own_definition_after_a_restart() {
    // GIVEN a server logging MINIMAL row metadata (no column names in the binlog), a table
    // s (id, a, b) and a source that took its snapshot and stored a checkpoint
    let server = PrivateMariaDb::start("history", &["--binlog-row-metadata=MINIMAL"]).await;
    let mut c = server.conn("h").await;
    use mysql_async::prelude::Queryable as _;
    c.query_drop("CREATE TABLE s (id INT PRIMARY KEY, a INT, b INT)")
        .await
        .unwrap();
    let mut src = server.source("h", "history", "snapshot: initial\n");
    src.start(None).await.unwrap();
    let cp = snapshot_then_checkpoint(&mut src).await;
    drop(src);
    // WHEN, while cdc is stopped, a row is written, the columns are reordered, and another row
    // is written
    c.query_drop("INSERT INTO s VALUES (1, 10, 20)")
        .await
        .unwrap();
    c.query_drop("ALTER TABLE s MODIFY a INT AFTER b")
        .await
        .unwrap();
    c.query_drop("INSERT INTO s (id, a, b) VALUES (2, 30, 40)")
        .await
        .unwrap();
    // AND the source restarts from its checkpoint
    let mut src = server.source("h", "history", "snapshot: initial\n");
    src.start(Some(cp.clone())).await.unwrap();
    let got = read_until(&mut src, 30, |e| has_id(e, 2)).await;
    assert!(
        src.used_schema_tracker(),
        "MINIMAL metadata: the tracker decodes"
    );
    let after_ddl = got.last_checkpoint().unwrap();
    drop(src);
    // THEN each row is decoded with the definition of its time
    let expected = vec![
        pairs(&[("id", 1), ("a", 10), ("b", 20)]),
        pairs(&[("id", 2), ("b", 40), ("a", 30)]),
    ];
    assert_eq!(creates(&got.events), expected);
    // AND the DDL is in the history, so a second restart from the same old checkpoint (the
    // history's records after it are dropped and written again) decodes the same
    let history = std::fs::read_to_string(server.history_path("history")).unwrap();
    assert!(history.contains("MODIFY a INT AFTER b"), "{history}");
    let mut src = server.source("h", "history", "snapshot: initial\n");
    src.start(Some(cp)).await.unwrap();
    let again = read_until(&mut src, 30, |e| has_id(e, 2)).await;
    assert_eq!(creates(&again.events), expected);
    drop(src);
    // AND a restart after the DDL decodes new rows with the new definition
    c.query_drop("INSERT INTO s (id, a, b) VALUES (3, 50, 60)")
        .await
        .unwrap();
    let mut src = server.source("h", "history", "snapshot: initial\n");
    src.start(Some(after_ddl)).await.unwrap();
    let later = read_until(&mut src, 30, |e| has_id(e, 3)).await;
    assert_eq!(
        creates(&later.events),
        vec![pairs(&[("id", 3), ("b", 60), ("a", 50)])]
    );
    let _ = c.disconnect().await;
}
