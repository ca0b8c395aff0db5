//! Adversarial review: scenarios that break (or could break) the source's promises.

use connector_core::{Op, Source, Value};
use source_mysql::BinlogPosition;

use crate::common::{of_table, read_until, source, TestDb, METADATA};

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        other => panic!("{other:?}"),
    }
}

/// `(op, id)` of the row events of `table`.
fn ops_ids(events: &[connector_core::ChangeEvent], table: &str) -> Vec<(Op, i64)> {
    of_table(events, table)
        .iter()
        .filter(|e| e.op != Op::Message)
        .map(|e| {
            let row = e.after.as_ref().or(e.before.as_ref()).unwrap();
            (e.op, int(&row[0]))
        })
        .collect()
}

#[tokio::test]
async fn a_rolled_back_xa_transaction_emits_nothing() {
    let _g = METADATA.read().await;
    // GIVEN a table and a source streaming from the end of the binlog
    let mut db = TestDb::new("review_xa").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB")
        .await;
    let start = db.position().await;
    // WHEN an XA transaction inserts a row, is prepared, then rolled back (MariaDB 10.5+ writes
    // the prepared part to the binlog at XA PREPARE and a separate `XA ROLLBACK` group later)
    db.exec("XA START 'review_xa1'").await;
    db.exec("INSERT INTO t VALUES (1)").await;
    db.exec("XA END 'review_xa1'").await;
    db.exec("XA PREPARE 'review_xa1'").await;
    db.exec("XA ROLLBACK 'review_xa1'").await;
    // AND a normal transaction commits afterwards (a marker to read up to)
    db.exec("INSERT INTO t VALUES (2)").await;
    let rows: Vec<i64> = {
        use mysql_async::prelude::Queryable as _;
        db.conn.query("SELECT id FROM t ORDER BY id").await.unwrap()
    };
    assert_eq!(rows, vec![2], "the database holds only the committed row");

    let mut src = source(&db.name, "review_xa", "snapshot: never\n");
    src.start(Some(start)).await.unwrap();
    let c = read_until(&mut src, 20, |e| {
        ops_ids(e, "t").iter().any(|(_, id)| *id == 2)
    })
    .await;

    // THEN only the committed row is a change: the rolled-back row 1 never existed
    assert_eq!(ops_ids(&c.events, "t"), vec![(Op::Create, 2)]);
    db.drop().await;
}

#[tokio::test]
async fn a_committed_xa_transaction_is_emitted_once() {
    let _g = METADATA.read().await;
    // GIVEN a table and a source streaming from the end of the binlog
    let mut db = TestDb::new("review_xa_commit").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB")
        .await;
    let start = db.position().await;
    // WHEN an XA transaction is prepared and committed (two binlog groups)
    db.exec("XA START 'review_xa2'").await;
    db.exec("INSERT INTO t VALUES (1)").await;
    db.exec("XA END 'review_xa2'").await;
    db.exec("XA PREPARE 'review_xa2'").await;
    db.exec("XA COMMIT 'review_xa2'").await;
    db.exec("INSERT INTO t VALUES (2)").await;
    let mut src = source(&db.name, "review_xa_commit", "snapshot: never\n");
    src.start(Some(start)).await.unwrap();
    let c = read_until(&mut src, 20, |e| {
        ops_ids(e, "t").iter().any(|(_, id)| *id == 2)
    })
    .await;
    // THEN the committed row arrives once, before the later one
    assert_eq!(
        ops_ids(&c.events, "t"),
        vec![(Op::Create, 1), (Op::Create, 2)]
    );
    let _ = BinlogPosition::parse(c.last_checkpoint().unwrap().as_str()).unwrap();
    db.drop().await;
}

#[tokio::test]
async fn an_update_with_a_minimal_row_image_keeps_the_rows_key() {
    let _g = METADATA.read().await;
    // GIVEN a table whose updates are logged with minimal row images (the before image carries the
    // primary key, the after image only the changed columns), a configuration the source supports
    // (it warns, and marks the missing columns unavailable)
    let mut db = TestDb::new("review_minimal_key").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, a INT)").await;
    db.exec("INSERT INTO t VALUES (1, 1), (2, 1)").await;
    let mut src = source(&db.name, "review_minimal_key", "snapshot: never\n");
    src.start(None).await.unwrap();
    db.exec("SET SESSION binlog_row_image = 'MINIMAL'").await;
    // WHEN two different rows are updated without touching their key
    db.exec("UPDATE t SET a = 2 WHERE id = 1").await;
    db.exec("UPDATE t SET a = 2 WHERE id = 2").await;
    let c = read_until(&mut src, 20, |e| of_table(e, "t").len() >= 2).await;
    let ev = of_table(&c.events, "t");

    // THEN each update is keyed by its row's primary key (what a Kafka sink partitions and
    // compacts on), never by the unavailable placeholder shared by every row
    let enc = connector_core::Encoder::new("p", connector_core::Format::Debezium);
    let keys: Vec<String> = ev
        .iter()
        .map(|e| {
            let mut k = Vec::new();
            assert!(enc.write_key(e, &mut k));
            String::from_utf8(k).unwrap()
        })
        .collect();
    assert_eq!(keys, vec![r#"{"id":1}"#, r#"{"id":2}"#]);
    db.drop().await;
}

/// Edge values whose text form (the snapshot's text protocol) is not the stored value, or whose
/// binary form (the binlog) is tricky: they must read the same through both paths.
const EDGE_TABLE: &str = "CREATE TABLE edge (
  id INT PRIMARY KEY, f FLOAT, f2 FLOAT, db DOUBLE, db2 DOUBLE,
  t2 TIME(2), t6 TIME(6), t6b TIME(6), dt6 DATETIME(6), d5 DECIMAL(5,5), d65 DECIMAL(65,30),
  bu BIGINT UNSIGNED, b64 BIT(64), dz DECIMAL(10,2) ZEROFILL
)";
const EDGE_COLUMNS: &str = "f, f2, db, db2, t2, t6, t6b, dt6, d5, d65, bu, b64, dz";
const EDGE_VALUES: &str = "16777217, 0.123456789, 0.1e0 + 0.2e0, 1e0 / 3, '-00:00:01.5', \
    '-00:00:00.000001', '-838:59:59.000000', '9999-12-31 23:59:59.999999', -0.00001, \
    '-0.000000000000000000000000000001', 18446744073709551615, b'1111111111111111111111111111111111111111111111111111111111111111', 12.5";

#[tokio::test]
async fn edge_values_read_the_same_in_the_snapshot_and_the_stream() {
    let _g = METADATA.read().await;
    // GIVEN a row of edge values present before the snapshot
    let mut db = TestDb::new("review_edge").await;
    db.exec(EDGE_TABLE).await;
    db.exec(&format!(
        "INSERT INTO edge (id, {EDGE_COLUMNS}) VALUES (1, {EDGE_VALUES})"
    ))
    .await;
    let mut src = source(&db.name, "review_edge", "snapshot: initial\n");
    src.start(None).await.unwrap();
    let snap = read_until(&mut src, 30, |e| !of_table(e, "edge").is_empty()).await;
    // WHEN the same values are inserted again while streaming
    db.exec(&format!(
        "INSERT INTO edge (id, {EDGE_COLUMNS}) VALUES (2, {EDGE_VALUES})"
    ))
    .await;
    let stream = read_until(&mut src, 30, |e| !of_table(e, "edge").is_empty()).await;
    let read = of_table(&snap.events, "edge")[0].after.clone().unwrap();
    let create = of_table(&stream.events, "edge")[0].after.clone().unwrap();
    let names: Vec<String> = of_table(&stream.events, "edge")[0]
        .table
        .as_ref()
        .unwrap()
        .columns
        .iter()
        .map(|c| c.name.to_string())
        .collect();

    // THEN the stream has the stored values exactly
    let want = vec![
        Value::Int(2),
        Value::Float32(16_777_216.0),
        Value::Float32(0.123_456_79_f32),
        Value::Float64(0.1 + 0.2),
        Value::Float64(1.0 / 3.0),
        Value::Time(-1_500_000),
        Value::Time(-1),
        Value::Time(-(838 * 3600 + 59 * 60 + 59) * 1_000_000),
        Value::Timestamp(253_402_300_799_999_999),
        Value::Decimal("-0.00001".into()),
        Value::Decimal("-0.000000000000000000000000000001".into()),
        Value::UInt(u64::MAX),
        Value::Bytes(vec![0xff; 8]),
        Value::Decimal("12.50".into()),
    ];
    assert_eq!(create, want);
    // AND the snapshot read the very same values
    let differ: Vec<String> = read
        .iter()
        .zip(&create)
        .enumerate()
        .skip(1)
        .filter(|(_, (r, c))| r != c)
        .map(|(k, (r, c))| format!("{}: snapshot {r:?}, stream {c:?}", names[k]))
        .collect();
    assert!(differ.is_empty(), "snapshot and stream differ: {differ:#?}");
    src.stop().await.unwrap();
    db.drop().await;
}

async fn resume_across_rotation(prefix: &str, gtid: &str) {
    // GIVEN a 100-row transaction, then a binlog rotation (FLUSH BINARY LOGS), and a source whose
    // batches hold 30 events
    let mut db = TestDb::new(prefix).await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").await;
    let start = db.position().await;
    db.exec(
        "INSERT INTO t WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 100) \
         SELECT n FROM s",
    )
    .await;
    db.exec("FLUSH BINARY LOGS").await;
    let extra = format!("snapshot: never\nmax_batch_events: 30\ngtid: {gtid}\n");
    let mut src = source(&db.name, prefix, &extra);
    src.start(Some(start)).await.unwrap();
    // WHEN it is stopped after its first (mid-transaction) batch and restarted from that
    // checkpoint
    let b = src.next_batch().await.unwrap().unwrap();
    let mut got: Vec<i64> = b
        .events
        .iter()
        .map(|e| int(&e.after.as_ref().unwrap()[0]))
        .collect();
    let cp = b.checkpoint.unwrap();
    assert!(BinlogPosition::parse(cp.as_str()).unwrap().row > 0, "{cp}");
    drop(src);
    let mut src = source(&db.name, prefix, &extra);
    src.start(Some(cp)).await.unwrap();
    let c = read_until(&mut src, 30, |e| {
        ops_ids(e, "t").iter().any(|(_, id)| *id == 100)
    })
    .await;
    got.extend(ops_ids(&c.events, "t").iter().map(|(_, id)| *id));
    // AND, once idle past the rotation, stopped again and restarted from its last checkpoint
    // while two more transactions are written in the new binlog file
    let mut cp = c.last_checkpoint().unwrap();
    for _ in 0..3 {
        let b = src.next_batch().await.unwrap().unwrap();
        assert!(of_table(&b.events, "t").is_empty());
        cp = b.checkpoint.unwrap_or(cp);
    }
    assert_eq!(BinlogPosition::parse(cp.as_str()).unwrap().row, 0, "{cp}");
    drop(src);
    db.exec("INSERT INTO t VALUES (1000)").await;
    db.exec("INSERT INTO t VALUES (2000)").await;
    let mut src = source(&db.name, prefix, &extra);
    src.start(Some(cp.clone())).await.unwrap();
    let c = read_until(&mut src, 30, |e| {
        ops_ids(e, "t").iter().any(|(_, id)| *id == 2000)
    })
    .await;
    got.extend(ops_ids(&c.events, "t").iter().map(|(_, id)| *id));

    // THEN every row arrives exactly once, in order, across both restarts and the rotation
    let mut want: Vec<i64> = (1..=100).collect();
    want.extend([1000, 2000]);
    assert_eq!(got, want, "resumed from {cp}");
    db.drop().await;
}

#[tokio::test]
async fn mid_transaction_resume_by_gtid_across_a_rotation_loses_nothing() {
    let _g = METADATA.read().await;
    resume_across_rotation("review_rot_gtid", "true").await;
}

#[tokio::test]
async fn mid_transaction_resume_by_file_across_a_rotation_loses_nothing() {
    let _g = METADATA.read().await;
    resume_across_rotation("review_rot_file", "false").await;
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

#[tokio::test]
async fn mariadb_inet_and_uuid_types_read_the_same_in_the_snapshot_and_the_stream() {
    let _g = METADATA.read().await;
    // GIVEN a table with MariaDB's INET4 (10.10+), INET6 (10.5+) and UUID (10.7+) types and one
    // row present before the snapshot
    let mut db = TestDb::new("review_inet").await;
    db.exec("CREATE TABLE n (id INT PRIMARY KEY, i4 INET4, i6 INET6, u UUID)")
        .await;
    let values = "'192.168.0.1', '2001:db8::1', '123e4567-e89b-12d3-a456-426614174000'";
    db.exec(&format!("INSERT INTO n VALUES (1, {values})"))
        .await;
    let mut src = source(&db.name, "review_inet", "snapshot: initial\n");
    src.start(None).await.unwrap();
    let snap = read_until(&mut src, 30, |e| !of_table(e, "n").is_empty()).await;
    // WHEN the same values are inserted while streaming
    db.exec(&format!("INSERT INTO n VALUES (2, {values})"))
        .await;
    let stream = read_until(&mut src, 30, |e| !of_table(e, "n").is_empty()).await;
    let read = of_table(&snap.events, "n")[0];
    let create = of_table(&stream.events, "n")[0];

    // THEN both paths deliver the values in their text form, as the server shows them
    let want = [
        Value::Text("192.168.0.1".into()),
        Value::Text("2001:db8::1".into()),
        Value::Text("123e4567-e89b-12d3-a456-426614174000".into()),
    ];
    assert_eq!(
        (
            &read.after.as_ref().unwrap()[1..],
            &create.after.as_ref().unwrap()[1..]
        ),
        (&want[..], &want[..]),
        "(snapshot, stream)"
    );
    // AND describe the columns identically
    assert_eq!(
        read.table.as_ref().unwrap().columns,
        create.table.as_ref().unwrap().columns
    );
    src.stop().await.unwrap();
    db.drop().await;
}

fn source_for(tables: &str, pipeline: &str, extra: &str) -> source_mysql::MysqlSource {
    let yaml = format!(
        "type: mysql\nurl: {}\ntables: {tables}\nschema_history_path: {}\n{extra}",
        crate::common::url(),
        crate::common::history_path(pipeline).display()
    );
    let section = connector_core::ConfigSection::from_yaml("source", &yaml).unwrap();
    let settings = source_mysql::Settings::new(section.extract().unwrap(), pipeline).unwrap();
    source_mysql::MysqlSource::new(settings, &connector_core::Context::new(pipeline))
}

#[tokio::test]
async fn restarts_after_every_batch_of_a_mixed_transaction_deliver_each_change_once() {
    let _g = METADATA.read().await;
    // GIVEN one transaction of several statements over two captured tables and an uncaptured
    // one (multi-row statements: several rows per rows event), and a source with batches of 4
    let mut db = TestDb::new("review_mixed").await;
    db.exec("CREATE TABLE a (id INT PRIMARY KEY, v INT)").await;
    db.exec("CREATE TABLE b (id INT PRIMARY KEY, v INT)").await;
    db.exec("CREATE TABLE u (id INT PRIMARY KEY, v INT)").await;
    let start = db.position().await;
    db.exec("BEGIN").await;
    db.exec("INSERT INTO a VALUES (1,0),(2,0),(3,0)").await;
    db.exec("INSERT INTO u VALUES (1,0),(2,0),(3,0),(4,0),(5,0)")
        .await;
    db.exec("INSERT INTO b VALUES (11,0),(12,0)").await;
    db.exec("UPDATE a SET v = 1").await;
    db.exec("INSERT INTO u VALUES (6,0)").await;
    db.exec("DELETE FROM b WHERE id = 11").await;
    db.exec("INSERT INTO a VALUES (4,0)").await;
    db.exec("COMMIT").await;
    db.exec("INSERT INTO b VALUES (99,0)").await;
    let tables = format!("['{0}.a', '{0}.b']", db.name);
    let extra = "snapshot: never\nmax_batch_events: 4\n";
    let summary = |events: &[connector_core::ChangeEvent]| -> Vec<String> {
        events
            .iter()
            .map(|e| {
                let row = e.after.as_ref().or(e.before.as_ref()).unwrap();
                format!(
                    "{}{}:{}",
                    e.op.code(),
                    e.table.as_ref().unwrap().id.table,
                    int(&row[0])
                )
            })
            .collect()
    };
    // WHEN the source is restarted from the checkpoint of every batch it delivers
    let mut delivered = Vec::new();
    let mut from = Some(start);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while !delivered.iter().any(|s: &String| s == "cb:99") {
        assert!(tokio::time::Instant::now() < deadline, "{delivered:?}");
        let mut src = source_for(&tables, "review_mixed", extra);
        src.start(from.clone()).await.unwrap();
        let b = loop {
            let b = src.next_batch().await.unwrap().unwrap();
            if !b.events.is_empty() {
                break b;
            }
        };
        delivered.extend(summary(&b.events));
        from = b.checkpoint.or(from);
    }
    // THEN every captured change arrives exactly once, in order
    assert_eq!(
        delivered,
        [
            "ca:1", "ca:2", "ca:3", "cb:11", "cb:12", "ua:1", "ua:2", "ua:3", "db:11", "ca:4",
            "cb:99"
        ]
    );
    db.drop().await;
}

async fn set_row_metadata(value: &str) {
    use mysql_async::prelude::Queryable as _;
    let mut c = mysql_async::Conn::from_url(crate::common::url())
        .await
        .unwrap();
    c.query_drop(format!("SET GLOBAL binlog_row_metadata = '{value}'"))
        .await
        .unwrap();
    c.disconnect().await.unwrap();
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
