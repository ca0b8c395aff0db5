//! Every operation: insert, update, delete, truncate, logical messages; config errors; checks.

use std::time::Duration;

use connector_core::{CheckStatus, Op, SnapshotMarker, Source, Value};
use source_postgres::PgPosition;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_arrives_with_its_transaction_and_positions() {
    // GIVEN a table with a primary key and a source that streams it (no snapshot)
    let db = TestDb::new("ops").await;
    db.exec("CREATE TABLE public.orders (id int PRIMARY KEY, note text NOT NULL, qty int)")
        .await;
    let mut src = db.source("tables: [public.orders]\nsnapshot: never\n");
    src.start(None).await.expect("start");

    // WHEN one transaction inserts, updates and deletes, and others truncate and emit messages
    db.exec(
        "BEGIN; INSERT INTO orders VALUES (1, 'a', 10), (2, 'b', 20); \
         UPDATE orders SET qty = 11 WHERE id = 1; DELETE FROM orders WHERE id = 2; COMMIT",
    )
    .await;
    db.exec("TRUNCATE orders").await;
    db.exec("SELECT pg_logical_emit_message(true, 'app', 'in-txn')")
        .await;
    db.exec("SELECT pg_logical_emit_message(false, 'app', 'outside')")
        .await;
    let got = drain_n(&mut src, 7).await;

    // THEN every change arrives in order with typed rows, transaction info and positions
    let ev = &got.events;
    let ops: Vec<Op> = ev.iter().map(|e| e.op).collect();
    assert_eq!(
        ops,
        vec![
            Op::Create,
            Op::Create,
            Op::Update,
            Op::Delete,
            Op::Truncate,
            Op::Message,
            Op::Message
        ]
    );
    let t = ev[0].table.as_ref().unwrap();
    assert_eq!(&*t.id.schema, "public");
    assert_eq!(&*t.id.table, "orders");
    assert_eq!(&*t.id.database, db.name.as_str());
    let cols: Vec<(&str, &str, bool, bool)> = t
        .columns
        .iter()
        .map(|c| (&*c.name, &*c.type_name, c.nullable, c.key))
        .collect();
    assert_eq!(
        cols,
        vec![
            ("id", "int4", false, true),
            ("note", "text", false, false),
            ("qty", "int4", true, false)
        ]
    );
    assert_eq!(
        ev[0].after.as_ref().unwrap(),
        &vec![Value::Int(1), Value::Text("a".into()), Value::Int(10)]
    );
    assert_eq!(ev[2].after.as_ref().unwrap()[2], Value::Int(11));
    assert_eq!(
        ev[2].before, None,
        "default replica identity carries no old row"
    );
    // The delete's before image holds the key and null elsewhere, as Debezium's (the columns the
    // WAL did not carry were the unavailable placeholder before).
    assert_eq!(
        ev[3].before.as_ref().unwrap(),
        &vec![Value::Int(2), Value::Null, Value::Null]
    );
    let txn = ev[0].txn.as_ref().unwrap();
    assert_eq!(txn.order, 1);
    assert!(ev[..4].iter().all(|e| e.txn.as_ref().unwrap().id == txn.id));
    assert_eq!(ev[3].txn.as_ref().unwrap().order, 4);
    assert_eq!(ev[3].txn.as_ref().unwrap().table_order, 4);
    assert!(ev[0].commit_ts_us > 1_600_000_000_000_000);
    assert_eq!(ev[0].source.connector, "postgresql");
    assert_eq!(ev[0].source.snapshot, SnapshotMarker::False);
    let names: Vec<&str> = ev[0].source.fields.iter().map(|f| f.0).collect();
    assert_eq!(names, ["sequence", "txId", "lsn"]);
    let xid: i64 = txn.id.parse().unwrap();
    assert_eq!(ev[0].source.fields[1].1, Value::Int(xid));
    // Positions: (commit LSN, n) within the transaction, strictly increasing overall.
    let pos: Vec<PgPosition> = ev
        .iter()
        .map(|e| PgPosition::parse(&e.position).unwrap())
        .collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{pos:?}");
    assert!(matches!(pos[3], PgPosition::Stream { index: 4, .. }));
    let msg = ev[5].message.as_ref().unwrap();
    assert_eq!(
        (
            msg.prefix.as_str(),
            msg.content.as_slice(),
            msg.transactional
        ),
        ("app", &b"in-txn"[..], true)
    );
    assert!(ev[5].table.is_none());
    let msg = ev[6].message.as_ref().unwrap();
    assert_eq!(
        (msg.content.as_slice(), msg.transactional),
        (&b"outside"[..], false)
    );
    assert!(matches!(
        PgPosition::parse(got.checkpoint.as_ref().unwrap()).unwrap(),
        PgPosition::Stream { index: 0, .. }
    ));
    src.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patterns_select_tables_and_others_are_not_emitted() {
    // GIVEN three tables of which a pattern selects two
    let db = TestDb::new("pat").await;
    db.exec(
        "CREATE TABLE order_a (id int PRIMARY KEY); CREATE TABLE order_b (id int PRIMARY KEY); \
         CREATE TABLE other (id int PRIMARY KEY)",
    )
    .await;
    let mut src = db.source("tables: [\"public.order_*\"]\nsnapshot: never\n");
    src.start(None).await.expect("start");
    // WHEN all three change
    db.exec("INSERT INTO other VALUES (9); INSERT INTO order_a VALUES (1); INSERT INTO order_b VALUES (2)")
        .await;
    let got = drain_n(&mut src, 2).await;
    let more = drain_for(&mut src, Duration::from_millis(700)).await;
    // THEN only the matching tables' changes arrive
    let names: Vec<String> = got
        .events
        .iter()
        .map(|e| e.table.as_ref().unwrap().id.table.to_string())
        .collect();
    assert_eq!(names, vec!["order_a", "order_b"]);
    assert!(more.events.is_empty());
    // AND the publication was created for exactly those tables
    let n: i64 = db
        .client
        .query_one(
            "SELECT count(*) FROM pg_publication_tables WHERE pubname = $1",
            &[&src.publication_name()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_publication_that_misses_a_table_is_refused_with_a_fix() {
    // GIVEN a publication that covers only one of two configured tables
    let db = TestDb::new("pubchk").await;
    db.exec(
        "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY); \
         CREATE PUBLICATION mine FOR TABLE a",
    )
    .await;
    let mut src = db.source("tables: [public.a, public.b]\npublication: mine\nsnapshot: never\n");
    // WHEN the source starts
    let e = src.start(None).await.expect_err("must fail");
    // THEN the error names the table and the hint has the fix
    assert_eq!(e.kind(), connector_core::ErrorKind::Precondition);
    assert!(e.message().contains("public.b"), "{}", e.message());
    assert!(
        e.hint().unwrap().contains("ALTER PUBLICATION"),
        "{:?}",
        e.hint()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_tables_bad_passwords_and_checks_are_reported_clearly() {
    let db = TestDb::new("errs").await;
    db.exec("CREATE TABLE keyed (id int PRIMARY KEY); CREATE TABLE keyless (v text)")
        .await;
    // GIVEN a configured table that does not exist
    let mut src = db.source("tables: [public.nope]\n");
    let e = src.start(None).await.expect_err("must fail");
    // THEN the error names the key and the table
    assert!(e.message().contains("source.tables[0]"), "{}", e.message());
    assert!(e.message().contains("public.nope"), "{}", e.message());
    assert!(!e.is_retryable());

    // GIVEN a wrong password
    let url = db.url().replace("cdc:cdc@", "cdc:wrong@");
    let section = connector_core::ConfigSection::from_yaml(
        "source",
        &format!("type: postgres\nurl: \"{url}\"\nsslmode: disable\ntables: [public.keyed]\n"),
    )
    .unwrap();
    let mut bad = source_postgres::PostgresSource::new(
        section.extract().unwrap(),
        &connector_core::Context::new("x"),
    )
    .unwrap();
    let e = bad.start(None).await.expect_err("must fail");
    // THEN it is an authentication error (fatal) with a hint, and the password is not shown
    assert_eq!(
        e.kind(),
        connector_core::ErrorKind::Authentication,
        "{}",
        e.report()
    );
    assert!(e.hint().is_some());
    assert!(!e.report().contains("wrong"), "{}", e.report());

    // GIVEN a keyed and a keyless table WHEN checking THEN the keyless one warns with a fix
    let mut src = db.source("tables: [public.keyed, public.keyless]\n");
    let checks = src.check().await;
    for c in &checks {
        eprintln!("{c}");
    }
    let find = |name: &str| {
        checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    assert_eq!(find("wal_level").status, CheckStatus::Pass);
    assert_eq!(find("replication privilege").status, CheckStatus::Pass);
    assert_eq!(
        find("table public.keyless replica identity").status,
        CheckStatus::Warn
    );
    assert!(find("table public.keyless replica identity")
        .hint
        .as_ref()
        .unwrap()
        .contains("REPLICA IDENTITY FULL"));
    assert_eq!(
        find("table public.keyed replica identity").status,
        CheckStatus::Pass
    );
    assert_eq!(find("publication").status, CheckStatus::Pass);
    assert!(checks.iter().all(|c| c.status != CheckStatus::Fail));
}

#[test]
fn config_errors_name_their_keys() {
    let parse = |extra: &str| {
        let yaml = format!("type: postgres\nurl: \"postgres://u@h/d\"\n{extra}");
        let section = connector_core::ConfigSection::from_yaml("source", &yaml).unwrap();
        source_postgres::source::factory(&section, &connector_core::Context::new("p")).err()
    };
    let e = parse("tables: [public.t]\nsnapshot_parallelism: 0\n").unwrap();
    assert!(e.message().contains("source.snapshot_parallelism"), "{e}");
    let e = parse("tables: [public.t]\nbatch_sise: 10\n").unwrap();
    assert!(e.message().contains("batch_sise"), "{e}");
    let e = parse("tables: [public.t]\nheartbeat_action_query: SELECT 1\n").unwrap();
    assert!(e.message().contains("source.heartbeat_action_query"), "{e}");
    let e = parse("tables: [public.t]\nsslmode: verify-everything\n").unwrap();
    assert!(e.message().contains("source.sslmode"), "{e}");
    assert!(parse("tables: [public.t]\nsnapshot: initial\n").is_none());
}
