//! Every type, with exact values, through the snapshot and through the stream; edge values (whose
//! text or binary form is tricky) read the same through both.

use connector_core::encode::days_from_civil;
use connector_core::{Op, Source, Value};

use crate::common::{of_table, read_until, source, TestDb, METADATA};

const TABLE: &str = "CREATE TABLE types (
  id INT PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
  mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
  b1 TINYINT(1), bo BOOL,
  d DECIMAL(10,2), dbig DECIMAL(65,30), f FLOAT, db DOUBLE,
  bit1 BIT(1), bit12 BIT(12),
  dt DATE, tm TIME, tm6 TIME(6), dtm DATETIME, dtm3 DATETIME(3), ts TIMESTAMP(6) NULL, yr YEAR,
  c CHAR(5), vc VARCHAR(20), vcl VARCHAR(20) CHARACTER SET latin1, txt TEXT,
  bn BINARY(4), vb VARBINARY(10), bl BLOB,
  e ENUM('small','medium','large'), s SET('a','b','c'),
  j JSON, g GEOMETRY, pt POINT
)";

const COLUMNS: &str = "id, ti, tiu, si, siu, mi, miu, i, iu, bi, biu, b1, bo, d, dbig, f, db, \
    bit1, bit12, dt, tm, tm6, dtm, dtm3, ts, yr, c, vc, vcl, txt, bn, vb, bl, e, s, j, g, pt";

fn values(id: i32) -> String {
    format!(
        "({id}, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, \
         -9223372036854775808, 18446744073709551615, 1, 0, -12345678.90, \
         '12345678901234567890123456789012345.123456789012345678901234567890', 0.1, 2.5e-300, \
         b'1', b'101010101010', '2024-02-29', '-838:59:59', '12:34:56.789012', \
         '9999-12-31 23:59:59', '2024-02-29 13:14:15.123', '2038-01-19 03:14:07.999999', 2155, \
         'ab', 'żółw 🐢', 'café', 'long text', 'ab', x'00ff', x'deadbeef', 'large', 'c,a', \
         '{{\"a\": [1, 2.5, \"x\"], \"b\": null}}', ST_GeomFromText('POINT(1 2)'), POINT(3, 4))"
    )
}

fn nulls(id: i32) -> String {
    let n = COLUMNS.split(',').count() - 1;
    format!("({id}{})", ", NULL".repeat(n))
}

fn zero_dates(id: i32) -> String {
    format!(
        "INSERT INTO types (id, dt, dtm, ts, yr) VALUES ({id}, '0000-00-00', \
         '0000-00-00 00:00:00', '0000-00-00 00:00:00', 0)"
    )
}

fn micros(y: i64, m: u32, d: u32, h: i64, mi: i64, s: i64, us: i64) -> i64 {
    days_from_civil(y, m, d) * 86_400_000_000 + ((h * 60 + mi) * 60 + s) * 1_000_000 + us
}

fn wkb_point(x: f64, y: f64) -> Vec<u8> {
    let mut v = vec![1, 1, 0, 0, 0];
    v.extend_from_slice(&x.to_le_bytes());
    v.extend_from_slice(&y.to_le_bytes());
    v
}

fn expected(id: i64) -> Vec<Value> {
    vec![
        Value::Int(id),
        Value::Int(-128),
        Value::Int(255),
        Value::Int(-32768),
        Value::Int(65535),
        Value::Int(-8_388_608),
        Value::Int(16_777_215),
        Value::Int(-2_147_483_648),
        Value::Int(4_294_967_295),
        Value::Int(i64::MIN),
        Value::UInt(u64::MAX),
        Value::Int(1),
        Value::Int(0),
        Value::Decimal("-12345678.90".into()),
        Value::Decimal("12345678901234567890123456789012345.123456789012345678901234567890".into()),
        Value::Float32(0.1),
        Value::Float64(2.5e-300),
        Value::Bool(true),
        Value::Bytes(vec![0b1010, 0b1010_1010]),
        Value::Date(days_from_civil(2024, 2, 29) as i32),
        Value::Time(-((838 * 3600 + 59 * 60 + 59) * 1_000_000)),
        Value::Time((12 * 3600 + 34 * 60 + 56) * 1_000_000 + 789_012),
        Value::Timestamp(micros(9999, 12, 31, 23, 59, 59, 0)),
        Value::Timestamp(micros(2024, 2, 29, 13, 14, 15, 123_000)),
        Value::TimestampTz(micros(2038, 1, 19, 3, 14, 7, 999_999)),
        Value::Int(2155),
        Value::Text("ab".into()),
        Value::Text("żółw 🐢".into()),
        Value::Text("café".into()),
        Value::Text("long text".into()),
        Value::Bytes(vec![b'a', b'b', 0, 0]),
        Value::Bytes(vec![0, 0xff]),
        Value::Bytes(vec![0xde, 0xad, 0xbe, 0xef]),
        Value::Text("large".into()),
        Value::Text("a,c".into()),
        Value::Text(r#"{"a": [1, 2.5, "x"], "b": null}"#.into()),
        Value::Bytes(wkb_point(1.0, 2.0)),
        Value::Bytes(wkb_point(3.0, 4.0)),
    ]
}

#[tokio::test]
async fn every_type_decodes_to_the_same_exact_value_in_snapshot_and_stream() {
    let _g = METADATA.read().await;
    // GIVEN a table of every type with a row of extreme values, a row of NULLs and zero dates
    let mut db = TestDb::new("types").await;
    db.exec("SET SESSION sql_mode = ''").await;
    db.exec("SET SESSION time_zone = '+00:00'").await;
    db.exec(TABLE).await;
    db.exec(&format!(
        "INSERT INTO types ({COLUMNS}) VALUES {}, {}",
        values(1),
        nulls(2)
    ))
    .await;
    db.exec(&zero_dates(3)).await;

    // WHEN a source snapshots them and then streams the same rows inserted again
    let mut src = source(&db.name, "types", "snapshot: initial\n");
    src.start(None).await.unwrap();
    let snap = read_until(&mut src, 30, |e| e.len() >= 3).await;
    db.exec(&format!(
        "INSERT INTO types ({COLUMNS}) VALUES {}, {}",
        values(11),
        nulls(12)
    ))
    .await;
    db.exec(&zero_dates(13)).await;
    let stream = read_until(&mut src, 30, |e| e.len() >= 3).await;

    let mut reads: Vec<_> = of_table(&snap.events, "types");
    reads.sort_by_key(|e| format!("{:?}", e.after.as_ref().unwrap()[0]));
    let creates = of_table(&stream.events, "types");
    assert_eq!(reads.len(), 3);
    assert_eq!(creates.len(), 3);
    assert!(reads.iter().all(|e| e.op == Op::Read));
    assert!(creates.iter().all(|e| e.op == Op::Create));

    // THEN every value is exactly as expected, in both paths
    let read1 = reads
        .iter()
        .find(|e| e.after.as_ref().unwrap()[0] == Value::Int(1))
        .unwrap();
    let create1 = creates[0];
    let names: Vec<String> = create1
        .table
        .as_ref()
        .unwrap()
        .columns
        .iter()
        .map(|c| c.name.to_string())
        .collect();
    for (k, (want, got)) in expected(1)
        .iter()
        .zip(read1.after.as_ref().unwrap())
        .enumerate()
    {
        assert_eq!(got, want, "snapshot column {}", names[k]);
    }
    for (k, (want, got)) in expected(11)
        .iter()
        .zip(create1.after.as_ref().unwrap())
        .enumerate()
    {
        assert_eq!(got, want, "stream column {}", names[k]);
    }
    // AND NULLs are NULL, and zero dates are NULL (YEAR 0 stays 0)
    for e in [&reads[1], &creates[1]] {
        assert!(e.after.as_ref().unwrap()[1..].iter().all(Value::is_null));
    }
    for e in [&reads[2], &creates[2]] {
        let a = e.after.as_ref().unwrap();
        let at = |n: &str| &a[names.iter().position(|x| x == n).unwrap()];
        assert_eq!(at("dt"), &Value::Null);
        assert_eq!(at("dtm"), &Value::Null);
        assert_eq!(at("ts"), &Value::Null);
        assert_eq!(at("yr"), &Value::Int(0));
    }

    // AND both paths describe the table identically
    let s1 = read1.table.as_ref().unwrap();
    let s2 = create1.table.as_ref().unwrap();
    assert_eq!(s1.columns, s2.columns);
    let types: Vec<&str> = s2.columns.iter().map(|c| &*c.type_name).collect();
    assert_eq!(
        types,
        [
            "int",
            "tinyint",
            "tinyint unsigned",
            "smallint",
            "smallint unsigned",
            "mediumint",
            "mediumint unsigned",
            "int",
            "int unsigned",
            "bigint",
            "bigint unsigned",
            "tinyint",
            "tinyint",
            "decimal(10,2)",
            "decimal(65,30)",
            "float",
            "double",
            "bit(1)",
            "bit(12)",
            "date",
            "time",
            "time(6)",
            "datetime",
            "datetime(3)",
            "timestamp(6)",
            "year",
            "char(5)",
            "varchar(20)",
            "varchar(20)",
            "text",
            "binary(4)",
            "varbinary(10)",
            "blob",
            "enum('small','medium','large')",
            "set('a','b','c')",
            "longtext",
            "geometry",
            "point"
        ]
    );
    src.stop().await.unwrap();
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
