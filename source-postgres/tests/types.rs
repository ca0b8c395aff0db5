//! Every type of the README's type table, read by the snapshot (COPY text) and by the stream
//! (pgoutput text), with its exact JSON form; and edge values (infinities, signed zeros, quoted
//! arrays, extreme timestamps, huge intervals), identical through both paths.

use std::sync::Arc;

use connector_core::encode::{write_typed, Modes};
use connector_core::{ChangeEvent, ColumnType, Op, Source, Value};

use crate::common::*;

const DDL: &str = "
CREATE TYPE mood AS ENUM ('happy', 'sad');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TABLE all_types (
  id int PRIMARY KEY, b bool, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, f8nan float8,
  f8inf float8, n numeric(10,2), nnan numeric, t text, vc varchar(20), ch char(3), by bytea,
  d date, dbc date, tm time, ttz timetz, ts timestamp, tstz timestamptz, tsinf timestamptz,
  iv interval, ivneg interval, u uuid, j json, jb jsonb, ip inet, cidr_ cidr, mac macaddr,
  m money, bt bit(4), vb varbit, ai int4[], at text[], a2 int[], atz timestamptz[], e mood,
  ae mood[], dom posint, pt point, r int4range, nul text
)";

const VALUES: &str = "(
  {id}, true, -32768, 2147483647, -9223372036854775808, 0.1, 1.5e300, 'NaN',
  '-Infinity', 12345678.90, 'NaN', E'h\u{e9}llo \"q\"\\n\\t\\\\', 'varchar', 'ab', '\\x00ff10',
  '2024-02-29', '0044-03-15 BC', '23:59:59.999999', '01:02:03+05:30', '2024-01-01 12:34:56.789',
  '2024-01-01 12:34:56.789+02', 'infinity', '1 year 2 mons 3 days 04:05:06.5',
  '-1 year -2 mons +3 days -04:05:06.5', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '{\"a\": [1, 2]}', '{\"b\": 1, \"a\": 2}', '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03',
  1234.56, B'1010', B'101', '{1,NULL,3}', '{\"a b\",NULL,\"c\\\"d\",\"NULL\"}', '{{1,2},{3,4}}',
  '{\"2024-01-01 00:00:00+00\",NULL}', 'happy', '{happy,sad}', 7, '(1,2)', '[1,5)', NULL
)";

/// (column, expected JSON in cdc's default modes, as Debezium writes them with `string`,
/// `isostring` and `base64`: times with `Z`, `timetz` in UTC, `timestamptz` padded to its
/// precision, money a decimal, bits little-endian `Bits` bytes).
const EXPECTED: &[(&str, &str)] = &[
    ("b", "true"),
    ("i2", "-32768"),
    ("i4", "2147483647"),
    ("i8", "-9223372036854775808"),
    ("f4", "0.1"),
    ("f8", "1.5e300"),
    ("f8nan", "\"NaN\""),
    ("f8inf", "\"-Infinity\""),
    ("n", "\"12345678.90\""),
    ("nnan", "\"NaN\""),
    ("t", "\"h\u{e9}llo \\\"q\\\"\\n\\t\\\\\""),
    ("vc", "\"varchar\""),
    ("ch", "\"ab \""),
    ("by", "\"AP8Q\""),
    ("d", "\"2024-02-29Z\""),
    ("dbc", "\"-0043-03-15Z\""),
    ("tm", "\"23:59:59.999999Z\""),
    ("ttz", "\"19:32:03Z\""),
    ("ts", "\"2024-01-01T12:34:56.789Z\""),
    ("tstz", "\"2024-01-01T10:34:56.789000Z\""),
    ("tsinf", "\"infinity\""),
    ("iv", "\"P1Y2M3DT4H5M6.5S\""),
    ("ivneg", "\"P-1Y-2M3DT-4H-5M-6.5S\""),
    ("u", "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\""),
    ("j", "\"{\\\"a\\\": [1, 2]}\""),
    ("jb", "\"{\\\"a\\\": 2, \\\"b\\\": 1}\""),
    ("ip", "\"192.168.0.1/24\""),
    ("cidr_", "\"10.0.0.0/8\""),
    ("mac", "\"08:00:2b:01:02:03\""),
    ("m", "\"1234.56\""),
    ("bt", "\"Cg==\""),
    ("vb", "\"BQ==\""),
    ("ai", "[1,null,3]"),
    ("at", "[\"a b\",null,\"c\\\"d\",\"NULL\"]"),
    ("a2", "[[1,2],[3,4]]"),
    ("atz", "[\"2024-01-01T00:00:00.000000Z\",null]"),
    ("e", "\"happy\""),
    ("ae", "[\"happy\",\"sad\"]"),
    ("dom", "7"),
    ("pt", "\"(1,2)\""),
    ("r", "\"[1,5)\""),
    ("nul", "null"),
];

const TYPE_NAMES: &[(&str, &str)] = &[
    ("n", "numeric(10,2)"),
    ("vc", "varchar(20)"),
    ("ch", "bpchar(3)"),
    ("i8", "int8"),
    ("tstz", "timestamptz"),
    ("ai", "_int4"),
    ("e", "mood"),
    ("dom", "posint"),
    ("bt", "bit(4)"),
];

fn check_row(ev: &ChangeEvent, how: &str) {
    let t = ev.table.as_ref().unwrap();
    let row = ev.after.as_ref().unwrap();
    let mut failures = Vec::new();
    for (name, want) in EXPECTED {
        let i = t
            .column_index(name)
            .unwrap_or_else(|| panic!("no column {name}"));
        let mut out = Vec::new();
        write_typed(&mut out, &row[i], &t.columns[i].ty, &Modes::default());
        let got = String::from_utf8(out).unwrap();
        if got != *want {
            failures.push(format!(
                "{how} {name}: got {got} want {want} ({:?})",
                row[i]
            ));
        }
    }
    for (name, ty) in TYPE_NAMES {
        let c = &t.columns[t.column_index(name).unwrap()];
        if &*c.type_name != *ty {
            failures.push(format!("{how} {name}: type {} want {ty}", c.type_name));
        }
    }
    let labels: Arc<[String]> = vec!["happy".to_string(), "sad".to_string()].into();
    let types = [
        (
            "n",
            ColumnType::Decimal {
                precision: Some(10),
                scale: Some(2),
            },
        ),
        (
            "nnan",
            ColumnType::Decimal {
                precision: None,
                scale: None,
            },
        ),
        ("dom", ColumnType::Int32),
        ("e", ColumnType::Enum(Arc::clone(&labels))),
        ("ae", ColumnType::Array(Arc::new(ColumnType::Enum(labels)))),
        ("m", ColumnType::Money { scale: 2 }),
        ("bt", ColumnType::Bits { length: 4 }),
        ("tm", ColumnType::Time { precision: 6 }),
        ("tstz", ColumnType::TimestampTz { precision: Some(6) }),
        ("f4", ColumnType::Float32),
        ("i2", ColumnType::Int16),
        ("by", ColumnType::Bytes),
    ];
    for (name, ty) in types {
        let c = &t.columns[t.column_index(name).unwrap()];
        if c.ty != ty {
            failures.push(format!("{how} {name}: column type {:?} want {ty:?}", c.ty));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_has_its_documented_json_form_in_snapshot_and_stream() {
    // GIVEN a table with a column of every documented type and one row
    let db = TestDb::new("types").await;
    db.exec("SET lc_monetary = 'C'").await;
    db.exec(DDL).await;
    db.exec(&format!(
        "INSERT INTO all_types VALUES {}",
        VALUES.replace("{id}", "1")
    ))
    .await;
    let mut src = db.source("tables: [public.all_types]\nsnapshot: initial\n");
    src.start(None).await.expect("start");

    // WHEN the snapshot reads it and then the same row is inserted again (streamed)
    let snap = drain_n(&mut src, 1).await;
    db.exec(&format!(
        "INSERT INTO all_types VALUES {}",
        VALUES.replace("{id}", "2")
    ))
    .await;
    let streamed = drain_until(&mut src, std::time::Duration::from_secs(30), |e| {
        e.iter().any(|e| e.op == Op::Create)
    })
    .await;

    // THEN both carry exactly the documented JSON forms and type names
    assert_eq!(snap.events[0].op, Op::Read);
    check_row(&snap.events[0], "snapshot");
    let ev = streamed.events.iter().find(|e| e.op == Op::Create).unwrap();
    check_row(ev, "stream");
    // AND the two shapes are identical
    assert_eq!(snap.events[0].table, ev.table);
}

const EDGE_DDL: &str = "CREATE TABLE edge (
  id int PRIMARY KEY, ninf numeric, nneg numeric, nbig numeric, an numeric[], ab bytea[],
  abox box[], aempty text[], aesc text[], aempty2 int[], tsmax timestamptz, tsmin timestamptz,
  ts5 timestamp, dinf date, ttz timetz, ivl interval, ats timestamptz[], f4 float4
)";
const EDGE_VALUES: &str = "'Infinity', '-0.000', '123456789012345678901234567890.000000000000000000001',
  '{1.5,NaN,-0.0}', '{\"\\\\x00ff\",NULL}', '{\"(1,2),(0,0)\";\"(3,4),(1,1)\"}', '{\"\",\" \",NULL}',
  '{\"a,b\",\"c}d\",\"e\\\\f\",\"g\\\"h\",\"{i}\"}', '{}', '200000-12-31 23:59:59.999999+00',
  '4713-11-24 00:00:00+00 BC', '12345-06-07 08:09:10', 'infinity', '01:02:03+05:53:28',
  '178000000 years -3 days 2562047788:00:54.775807', '{\"0044-03-15 12:00:00+00 BC\",\"infinity\"}',
  '3.4028235e38'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_values_are_identical_in_the_snapshot_and_the_stream() {
    // GIVEN a row of edge values (numeric infinity, signed zero, arrays with quoting, escapes and
    // another delimiter, extreme and BC timestamps, huge intervals) present before the snapshot
    let db = TestDb::new("rv_edge").await;
    db.exec(EDGE_DDL).await;
    db.exec(&format!("INSERT INTO edge VALUES (1, {EDGE_VALUES})"))
        .await;
    let mut src = db.source("tables: [public.edge]\nsnapshot: initial\n");
    src.start(None).await.unwrap();
    let snap = drain_n(&mut src, 1).await;
    // WHEN the same values are inserted while streaming
    db.exec(&format!("INSERT INTO edge VALUES (2, {EDGE_VALUES})"))
        .await;
    let stream = drain_n(&mut src, 1).await;
    let read = snap.events[0].after.clone().unwrap();
    let create = stream.events[0].after.clone().unwrap();
    let names: Vec<String> = stream.events[0]
        .table
        .as_ref()
        .unwrap()
        .columns
        .iter()
        .map(|c| c.name.to_string())
        .collect();
    // THEN both paths give the same, typed (never text-fallback) value for every column
    let json = |v: &Value| {
        let mut out = Vec::new();
        connector_core::encode::write_value(&mut out, v);
        String::from_utf8(out).unwrap()
    };
    let differ: Vec<String> = read
        .iter()
        .zip(&create)
        .enumerate()
        .skip(1)
        .filter(|(_, (r, c))| r != c)
        .map(|(k, (r, c))| format!("{}: snapshot {r:?}, stream {c:?}", names[k]))
        .collect();
    assert!(differ.is_empty(), "{differ:#?}");
    let got: Vec<(String, String)> = names
        .iter()
        .zip(&create)
        .skip(1)
        .map(|(n, v)| (n.clone(), json(v)))
        .collect();
    // Debezium's isostring forms (Java's years past 9999 with `+`, `timetz` in UTC, every part
    // of an interval); the plain forms before had no `Z` and kept the offset.
    let want: Vec<(&str, &str)> = vec![
        ("ninf", r#""Infinity""#),
        ("nneg", r#""0.000""#),
        (
            "nbig",
            r#""123456789012345678901234567890.000000000000000000001""#,
        ),
        ("an", r#"["1.5","NaN","0.0"]"#),
        ("ab", r#"["AP8=",null]"#),
        ("abox", r#"["(1,2),(0,0)","(3,4),(1,1)"]"#),
        ("aempty", r#"[""," ",null]"#),
        ("aesc", r#"["a,b","c}d","e\\f","g\"h","{i}"]"#),
        ("aempty2", "[]"),
        ("tsmax", r#""+200000-12-31T23:59:59.999999Z""#),
        ("tsmin", r#""-4712-11-24T00:00:00Z""#),
        ("ts5", r#""+12345-06-07T08:09:10Z""#),
        ("dinf", r#""infinity""#),
        ("ttz", r#""19:08:35Z""#),
        ("ivl", r#""P178000000Y0M-3DT2562047788H0M54.775807S""#),
        ("ats", r#"["-0043-03-15T12:00:00Z","infinity"]"#),
        ("f4", "3.4028235e38"),
    ];
    let want: Vec<(String, String)> = want
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let wrong: Vec<String> = got
        .iter()
        .zip(&want)
        .filter(|(g, w)| g != w)
        .map(|(g, w)| format!("{}: got {}, want {}", g.0, g.1, w.1))
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}
