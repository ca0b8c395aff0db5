//! Tests of the decoder on hand-built binlog events: transactions, resumes, XA and
//! statement-logged changes.

use connector_core::{ErrorKind, Op, Value};
use mysql_async::binlog::events::Event;

use super::Decoder;
use super::Flavor;
use crate::binlog::{column_type as ct, event_type as et, Xid};
use crate::config::{TableFilter, TablePattern};
use crate::ddl::SchemaTracker;
use crate::position::BinlogPosition;
use crate::schema::Collations;
use crate::xa::{xa_statement, XaVerb};
use mysql_async::binlog::events::FormatDescriptionEvent;
use mysql_async::binlog::BinlogVersion;

/// A v4 event: 19-byte header then `body` (no checksum: the reader's default format
/// description has checksums off).
fn event(reader: &mut FormatDescriptionEvent<'static>, t: u8, log_pos: u32, body: &[u8]) -> Event {
    let mut v = Vec::new();
    v.extend_from_slice(&1_700_000_000u32.to_le_bytes());
    v.push(t);
    v.extend_from_slice(&7u32.to_le_bytes());
    v.extend_from_slice(&((19 + body.len()) as u32).to_le_bytes());
    v.extend_from_slice(&log_pos.to_le_bytes());
    v.extend_from_slice(&0u16.to_le_bytes());
    v.extend_from_slice(body);
    Event::read(reader, &v[..]).unwrap()
}

fn mysql8_transaction(reader: &mut FormatDescriptionEvent<'static>) -> Vec<Event> {
    let sid = crate::position::parse_uuid("3e11fa47-71ca-11e1-9e33-c80aa9429562").unwrap();
    // Gtid_log_event: flags, sid, gno 7, lt_type 2, last_committed, sequence_number,
    // immediate_commit_timestamp (7 bytes).
    let mut gtid = vec![1u8];
    gtid.extend_from_slice(&sid);
    gtid.extend_from_slice(&7u64.to_le_bytes());
    gtid.push(2);
    gtid.extend_from_slice(&0u64.to_le_bytes());
    gtid.extend_from_slice(&1u64.to_le_bytes());
    gtid.extend_from_slice(&1_700_000_000_654_321u64.to_le_bytes()[..7]);
    // Query_event "BEGIN" of thread 42.
    let begin = query_body("BEGIN");
    // Table_map_log_event with FULL metadata: (id INT UNSIGNED PK, doc JSON,
    // price DECIMAL(10,2), name VARCHAR(20) utf8mb4).
    let types = [ct::LONG, ct::JSON, ct::NEWDECIMAL, ct::VARCHAR];
    let meta = [4, 10, 2, 80, 0];
    let mut opt = vec![1, 1, 0b1000_0000]; // signedness: id unsigned, price signed
    opt.extend_from_slice(&[2, 3, 0xfc, 0xff, 0x00]); // default charset 255
    let mut names = Vec::new();
    for n in ["id", "doc", "price", "name"] {
        names.push(n.len() as u8);
        names.extend_from_slice(n.as_bytes());
    }
    opt.push(4);
    opt.push(names.len() as u8);
    opt.extend_from_slice(&names);
    opt.extend_from_slice(&[8, 1, 0]); // primary key: id
    let tmap = crate::binlog::tests::table_map_bytes(&types, &meta, &opt);
    // Write_rows_log_event v2: table id, flags, extra-data length 2, 4 columns, all present.
    let mut rows = vec![0x02, 0x01, 0, 0, 0, 0, 0, 0, 2, 0, 4, 0x0f];
    rows.push(0x00); // null bitmap
    rows.extend_from_slice(&u32::MAX.to_le_bytes());
    // {"a":1} as a small binary JSON object
    let doc = [0x00, 1, 0, 12, 0, 11, 0, 1, 0, 0x05, 1, 0, b'a'];
    rows.extend_from_slice(&(doc.len() as u32).to_le_bytes());
    rows.extend_from_slice(&doc);
    rows.extend_from_slice(&[0x80, 0, 0, 12, 50]); // DECIMAL(10,2) 12.50
    rows.extend_from_slice(&[1, b'x']);
    vec![
        event(reader, et::GTID, 200, &gtid),
        event(reader, et::QUERY, 300, &begin),
        event(reader, et::TABLE_MAP, 400, &tmap),
        event(reader, et::WRITE_ROWS, 500, &rows),
        event(reader, et::XID, 531, &9u64.to_le_bytes()),
    ]
}

fn decoder(from: &BinlogPosition) -> Decoder {
    let filter = TableFilter::new(vec![TablePattern {
        schema: "db".into(),
        table: "*".into(),
    }]);
    Decoder::new(
        Flavor::MySql,
        filter,
        Collations::default(),
        SchemaTracker::new(),
        from,
    )
    .unwrap()
}

#[test]
fn a_mysql8_transaction_decodes_with_its_gtid_json_and_metadata() {
    // GIVEN a MySQL 8 transaction as the server sends it
    let mut reader = FormatDescriptionEvent::new(BinlogVersion::Version4);
    let events = mysql8_transaction(&mut reader);
    let uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    let from = BinlogPosition::new("binlog.000001", 157, Some(format!("{uuid}:1-6")));
    // WHEN it is decoded
    let mut d = decoder(&from);
    let mut out = Vec::new();
    for e in &events {
        d.process(e, &mut out).unwrap();
    }
    // THEN one create event carries the row, its GTID, commit time and source fields
    assert_eq!(out.len(), 1);
    let e = &out[0];
    assert_eq!(e.op, Op::Create);
    assert_eq!(
        e.after.as_ref().unwrap(),
        &vec![
            Value::Int(4_294_967_295),
            Value::Json(r#"{"a":1}"#.into()),
            Value::Decimal("12.50".into()),
            Value::Text("x".into()),
        ]
    );
    let txn = e.txn.as_ref().unwrap();
    assert_eq!(&*txn.id, format!("{uuid}:7"));
    assert_eq!(e.commit_ts_us, 1_700_000_000_654_321);
    assert_eq!(e.source.fields[5].1, Value::UInt(42), "thread from BEGIN");
    let types: Vec<&str> = e
        .table
        .as_ref()
        .unwrap()
        .columns
        .iter()
        .map(|c| &*c.type_name)
        .collect();
    assert_eq!(
        types,
        ["int unsigned", "json", "decimal(10,2)", "varchar(20)"]
    );
    assert!(e.table.as_ref().unwrap().columns[0].key);
    assert_eq!(
        e.position.as_str(),
        format!("file=binlog.000001;pos=157;row=1;gtids={uuid}:1-6;txn={uuid}:7")
    );
    // AND after the XID the resume point is the next transaction, with the GTID added
    assert_eq!(
        d.resume_point().to_string(),
        format!("file=binlog.000001;pos=531;gtids={uuid}:1-7")
    );
}

#[test]
fn resuming_inside_the_transaction_skips_what_was_delivered() {
    // GIVEN the position of the transaction's first (and only) event
    let mut reader = FormatDescriptionEvent::new(BinlogVersion::Version4);
    let events = mysql8_transaction(&mut reader);
    let mut from = BinlogPosition::new("binlog.000001", 157, None);
    from.row = 1;
    // WHEN the transaction is decoded again from it
    let mut d = decoder(&from);
    let mut out = Vec::new();
    for e in &events[..4] {
        d.process(e, &mut out).unwrap();
    }
    // THEN nothing is delivered twice, and the resume point stays inside the transaction
    assert!(out.is_empty());
    assert_eq!(d.resume_point().row, 1);
    d.process(&events[4], &mut out).unwrap();
    assert_eq!(d.resume_point().row, 0);
    assert_eq!(d.resume_point().pos, 531);
}

fn query_body(sql: &str) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&42u32.to_le_bytes());
    q.extend_from_slice(&0u32.to_le_bytes());
    q.push(0);
    q.extend_from_slice(&0u16.to_le_bytes());
    q.extend_from_slice(&0u16.to_le_bytes());
    q.push(0);
    q.extend_from_slice(sql.as_bytes());
    q
}

fn mysql_gtid_body(gno: u64) -> Vec<u8> {
    let sid = crate::position::parse_uuid("3e11fa47-71ca-11e1-9e33-c80aa9429562").unwrap();
    let mut g = vec![1u8];
    g.extend_from_slice(&sid);
    g.extend_from_slice(&gno.to_le_bytes());
    g
}

fn xa_prepare_body(one_phase: bool, gtrid: &[u8]) -> Vec<u8> {
    let mut x = vec![u8::from(one_phase)];
    x.extend_from_slice(&1u32.to_le_bytes());
    x.extend_from_slice(&(gtrid.len() as u32).to_le_bytes());
    x.extend_from_slice(&0u32.to_le_bytes());
    x.extend_from_slice(gtrid);
    x
}

#[test]
fn a_mysql_xa_transaction_is_held_from_prepare_to_commit_or_rollback() {
    // GIVEN MySQL's XA groups: GTID, XA START, rows, XA END, XA_PREPARE; later GTID and
    // XA COMMIT (or XA ROLLBACK) of the same XID
    let mut reader = FormatDescriptionEvent::new(BinlogVersion::Version4);
    let tx = mysql8_transaction(&mut reader);
    let prepared = |r: &mut FormatDescriptionEvent<'static>, gtrid: &str, one_phase: bool| {
        vec![
            event(r, et::GTID, 200, &mysql_gtid_body(7)),
            event(
                r,
                et::QUERY,
                300,
                &query_body(&format!("XA START X'{}',X'',1", hex(gtrid))),
            ),
            event(r, et::TABLE_MAP, 400, tx[2].data()),
            event(r, et::WRITE_ROWS, 500, tx[3].data()),
            event(
                r,
                et::QUERY,
                550,
                &query_body(&format!("XA END X'{}',X'',1", hex(gtrid))),
            ),
            event(
                r,
                et::XA_PREPARE,
                600,
                &xa_prepare_body(one_phase, gtrid.as_bytes()),
            ),
        ]
    };
    fn hex(s: &str) -> String {
        s.bytes().map(|b| format!("{b:02x}")).collect()
    }
    let resolve = |r: &mut FormatDescriptionEvent<'static>, verb: &str, gtrid: &str| {
        vec![
            event(r, et::GTID, 700, &mysql_gtid_body(8)),
            event(
                r,
                et::QUERY,
                800,
                &query_body(&format!("XA {verb} X'{}',X'',1", hex(gtrid))),
            ),
        ]
    };
    let from = BinlogPosition::new("binlog.000001", 157, None);
    // WHEN the prepared part is read THEN nothing is delivered and the resume point stays
    // before it
    let mut d = decoder(&from);
    let mut out = Vec::new();
    for e in &prepared(&mut reader, "a", false) {
        d.process(e, &mut out).unwrap();
    }
    assert!(out.is_empty());
    assert_eq!(d.xa_floor().map(|p| p.pos), Some(157));
    // AND WHEN it is committed THEN its row is delivered as the commit group's event
    for e in &resolve(&mut reader, "COMMIT", "a") {
        d.process(e, &mut out).unwrap();
    }
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].op, Op::Create);
    assert!(out[0]
        .position
        .as_str()
        .starts_with("file=binlog.000001;pos=600;row=1"));
    assert!(d.xa_floor().is_none());
    assert_eq!(d.take_released_floor().map(|p| p.pos), Some(157));
    assert_eq!(d.resume_point().pos, 800);

    // WHEN another is prepared and rolled back THEN nothing is delivered
    let mut d = decoder(&from);
    let mut out = Vec::new();
    for e in prepared(&mut reader, "b", false)
        .iter()
        .chain(&resolve(&mut reader, "ROLLBACK", "b"))
    {
        d.process(e, &mut out).unwrap();
    }
    assert!(out.is_empty());
    assert!(d.xa_floor().is_none());

    // WHEN one is committed in one phase (XA_PREPARE with one_phase) THEN it is delivered
    let mut d = decoder(&from);
    let mut out = Vec::new();
    for e in &prepared(&mut reader, "c", true) {
        d.process(e, &mut out).unwrap();
    }
    assert_eq!(out.len(), 1);
    assert!(d.xa_floor().is_none());
}

#[test]
fn xa_statements_and_xids_are_recognised() {
    assert_eq!(
        xa_statement("XA COMMIT X'7831',X'',1").map(|(v, r)| (v, r.trim())),
        Some((XaVerb::Commit, "X'7831',X'',1"))
    );
    assert_eq!(
        xa_statement("xa  rollback 'a'").map(|(v, _)| v),
        Some(XaVerb::Rollback)
    );
    assert!(xa_statement("XACOMMIT").is_none());
    assert!(xa_statement("SELECT 1").is_none());
    let x = Xid::parse_sql(" X'41',X'42',3").unwrap();
    assert_eq!(x.to_string(), "X'41',X'42',3");
    assert_eq!(Xid::parse_sql("'A', 'B', 3"), Some(x.clone()));
    assert_eq!(Xid::parse_sql("0x41,0x42,3 ONE PHASE"), Some(x));
    assert_eq!(Xid::parse_sql("'a'").unwrap().to_string(), "X'61',X'',1");
}

#[test]
fn statement_logged_changes_to_captured_tables_are_errors() {
    let from = BinlogPosition::new("binlog.000001", 157, None);
    let d = decoder(&from);
    for sql in [
        "INSERT INTO t VALUES (1)",
        "insert low_priority ignore db.t (a) values (1)",
        "REPLACE INTO `t` SET a = 1",
        "UPDATE other.u JOIN db.t ON u.a = t.a SET u.b = 1",
        "DELETE FROM t WHERE a = 1",
        "DELETE t.* FROM t, other.u WHERE t.a = u.a",
        "LOAD DATA INFILE '/tmp/x' INTO TABLE t",
        "WITH x AS (SELECT 1) UPDATE t SET a = 1",
    ] {
        let e = d
            .statement_change_error(sql, "db", 100)
            .unwrap_or_else(|| panic!("no error for {sql}"));
        assert_eq!(e.kind(), ErrorKind::Precondition);
        assert!(e.message().contains("db.t"), "{}", e.message());
        assert!(e.hint().unwrap_or("").contains("binlog_format"));
    }
    for sql in [
        "INSERT INTO other.t VALUES (1)",
        "UPDATE u SET a = 1",
        "SAVEPOINT a",
        "SELECT 1",
        "CREATE USER x",
    ] {
        assert!(
            d.statement_change_error(sql, "other", 100).is_none(),
            "{sql}"
        );
    }
}

#[test]
fn the_last_event_of_a_transaction_carries_debeziums_end_counts() {
    // GIVEN a transaction of two row events (the same rows event twice)
    let mut reader = FormatDescriptionEvent::new(BinlogVersion::Version4);
    let mut events = mysql8_transaction(&mut reader);
    let xid = events.pop().unwrap();
    let rows = events.pop().unwrap();
    let uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    let mut d = decoder(&BinlogPosition::new(
        "binlog.000001",
        157,
        Some(format!("{uuid}:1-6")),
    ));
    let mut out = Vec::new();
    for e in events.iter().chain([&rows, &rows]) {
        d.process(e, &mut out).unwrap();
    }
    // WHEN the commit has not arrived, THEN the latest event is held back and the resume point
    // does not cover it
    assert_eq!(out.len(), 1);
    assert_eq!(d.resume_point().row, 1);
    assert!(out[0].txn.as_ref().unwrap().end.is_none());
    // WHEN it has, THEN the last event carries the counts of the END record
    d.process(&xid, &mut out).unwrap();
    assert_eq!(out.len(), 2);
    let txn = out[1].txn.as_ref().unwrap();
    assert_eq!((txn.order, txn.table_order), (2, 2));
    let end = txn.end.as_deref().unwrap();
    assert_eq!(end.event_count, 2);
    let table = &out[0].table.as_ref().unwrap().id;
    assert_eq!(
        end.data_collections,
        vec![(format!("{}.{}", table.database, table.table).into(), 2)]
    );
    assert_eq!(&*txn.id, format!("{uuid}:7"), "Debezium's id: the GTID");
    assert_eq!(d.resume_point().row, 0);
}
