//! Changes logged as SQL statements (a session with `binlog_format=STATEMENT`): their rows are
//! not in the binlog, so the source stops rather than skip them.

use connector_core::{ErrorKind, Op, Source};

use crate::common::{of_table, ops_ids, source, TestDb, METADATA};

#[tokio::test]
async fn a_statement_logged_update_stops_the_source_with_a_precondition_error() {
    let _g = METADATA.read().await;
    // GIVEN two captured tables
    let mut db = TestDb::new("stmt_update").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT)").await;
    db.exec("CREATE TABLE u (id INT PRIMARY KEY)").await;
    db.exec("INSERT INTO t VALUES (1, 0)").await;
    let start = db.position().await;
    // WHEN a statement-format session truncates one (a statement in any format), then updates
    // the other
    db.exec("SET SESSION binlog_format = 'STATEMENT'").await;
    db.exec("TRUNCATE TABLE u").await;
    db.exec("UPDATE t SET v = 1 WHERE id = 1").await;
    db.exec("SET SESSION binlog_format = 'ROW'").await;
    db.exec("INSERT INTO t VALUES (2, 0)").await;
    let mut src = source(&db.name, "stmt_update", "snapshot: never\n");
    src.start(Some(start)).await.unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let err = loop {
        assert!(tokio::time::Instant::now() < deadline, "no error");
        match src.next_batch().await {
            Ok(Some(b)) => assert!(of_table(&b.events, "t").is_empty()),
            Ok(None) => panic!("finished"),
            Err(e) => break e,
        }
    };
    // THEN the update (not the truncate) is a fatal error that names the table and the
    // statement kind, with a hint at ROW
    assert_eq!(err.kind(), ErrorKind::Precondition, "{}", err.report());
    let report = err.report();
    assert!(
        report.contains(&format!("UPDATE on {}.t", db.name)),
        "{report}"
    );
    assert!(report.contains("binlog_format = 'ROW'"), "{report}");
    db.drop().await;
}

#[tokio::test]
async fn a_statement_logged_load_data_stops_the_source() {
    let _g = METADATA.read().await;
    // GIVEN a captured table and a file the server wrote (SELECT ... INTO OUTFILE)
    let mut db = TestDb::new("stmt_load").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").await;
    let file = format!(
        "/tmp/cdc_stmt_load_{}_{}.tsv",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    db.exec(&format!("SELECT 7 INTO OUTFILE '{file}'")).await;
    let start = db.position().await;
    // WHEN a statement-format session loads it (an EXECUTE_LOAD_QUERY event, no rows)
    db.exec("SET SESSION binlog_format = 'STATEMENT'").await;
    db.exec(&format!("LOAD DATA INFILE '{file}' INTO TABLE t"))
        .await;
    db.exec("SET SESSION binlog_format = 'ROW'").await;
    db.exec("INSERT INTO t VALUES (8)").await;
    let mut src = source(&db.name, "stmt_load", "snapshot: never\n");
    src.start(Some(start)).await.unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let err = loop {
        assert!(tokio::time::Instant::now() < deadline, "no error");
        match src.next_batch().await {
            Ok(Some(b)) => assert!(of_table(&b.events, "t").is_empty()),
            Ok(None) => panic!("finished"),
            Err(e) => break e,
        }
    };
    // THEN the source stops with a precondition error naming the table
    assert_eq!(err.kind(), ErrorKind::Precondition, "{}", err.report());
    let report = err.report();
    assert!(
        report.contains(&format!("LOAD DATA on {}.t", db.name)),
        "{report}"
    );
    let _ = std::fs::remove_file(&file); // best effort: the server's file, on this machine
    db.drop().await;
}

#[tokio::test]
async fn a_change_logged_as_a_statement_is_not_dropped_silently() {
    let _g = METADATA.read().await;
    // GIVEN a source streaming a captured table (the server's global binlog_format is ROW)
    let mut db = TestDb::new("review_stmt").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").await;
    let start = db.position().await;
    // WHEN one session logs its insert as a statement (a session may override binlog_format
    // with the BINLOG ADMIN/SUPER privilege), and a later insert is row-logged
    db.exec("SET SESSION binlog_format = 'STATEMENT'").await;
    db.exec("INSERT INTO t VALUES (1)").await;
    db.exec("SET SESSION binlog_format = 'ROW'").await;
    db.exec("INSERT INTO t VALUES (2)").await;
    let mut src = source(&db.name, "review_stmt", "snapshot: never\n");
    src.start(Some(start)).await.unwrap();
    let mut events = Vec::new();
    let mut failed = None;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while !ops_ids(&events, "t").iter().any(|(_, id)| *id == 2) {
        assert!(tokio::time::Instant::now() < deadline, "timed out");
        match src.next_batch().await {
            Ok(Some(b)) => events.extend(b.events),
            Ok(None) => break,
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    // THEN the change to row 1 is either delivered or stops the source with an error: it is
    // never skipped while row 2 is delivered as if nothing were missing
    let delivered = ops_ids(&events, "t");
    assert!(
        failed.is_some() || delivered.contains(&(Op::Create, 1)),
        "row 1 was silently lost: delivered {delivered:?}"
    );
    db.drop().await;
}
