//! MariaDB's INET4, INET6 and UUID: the binlog carries their bytes, the snapshot their text; both
//! paths must print what the server prints.

use connector_core::{Source, Value};
use mysql_async::prelude::Queryable as _;

use crate::common::{of_table, read_until, source, TestDb, METADATA};

#[tokio::test]
async fn inet_and_uuid_values_stream_as_the_server_prints_them() {
    let _g = METADATA.read().await;
    // GIVEN addresses and UUIDs of many shapes (zero runs of every length and place, mapped and
    // compatible IPv4, UUIDs of versions 1, 4 and 7, and UUID() values)
    let mut db = TestDb::new("inet_many").await;
    db.exec("CREATE TABLE n (id INT PRIMARY KEY, i4 INET4, i6 INET6, u UUID)")
        .await;
    let mut values = Vec::new();
    let groups = ["0", "1", "ffff", "db8", "a0b", "0", "0", "10"];
    for mask in 0u32..256 {
        let words: Vec<&str> = (0..8)
            .map(|i| if mask & (1 << i) != 0 { groups[i] } else { "0" })
            .collect();
        values.push(words.join(":"));
    }
    values.extend(
        ["::ffff:10.1.2.3", "::10.1.2.3", "::", "::1", "fe80::1%0"]
            .iter()
            .map(|s| s.to_string()),
    );
    let uuids = [
        "123e4567-e89b-12d3-a456-426614174000",
        "6ccd780c-baba-1026-9564-5b8c656024db",
        "f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
        "017f22e2-79b0-7cc3-98c4-dc0c0c07398f",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "00000000-0000-0000-0000-000000000000",
    ];
    let start = db.position().await;
    let mut id = 0;
    for (k, v) in values.iter().enumerate() {
        if v.contains('%') {
            continue;
        }
        id += 1;
        db.exec(&format!(
            "INSERT INTO n VALUES ({id}, '{}.{}.0.{}', '{v}', '{}')",
            k % 256,
            (k * 7) % 256,
            k % 3,
            uuids[k % uuids.len()]
        ))
        .await;
    }
    for _ in 0..5 {
        id += 1;
        db.exec(&format!("INSERT INTO n VALUES ({id}, NULL, NULL, UUID())"))
            .await;
    }
    type Row = (i64, Option<String>, Option<String>, Option<String>);
    let want: Vec<Row> = db
        .conn
        .query("SELECT id, i4, i6, u FROM n ORDER BY id")
        .await
        .unwrap();
    // WHEN they are streamed
    let mut src = source(&db.name, "inet_many", "snapshot: never\n");
    src.start(Some(start)).await.unwrap();
    let c = read_until(&mut src, 30, |e| of_table(e, "n").len() == want.len()).await;
    // THEN each value is the server's text
    let text = |v: &Value| match v {
        Value::Text(t) => Some(t.clone()),
        Value::Null => None,
        other => panic!("{other:?}"),
    };
    for (e, w) in of_table(&c.events, "n").iter().zip(&want) {
        let a = e.after.as_ref().unwrap();
        assert_eq!(
            (text(&a[1]), text(&a[2]), text(&a[3])),
            (w.1.clone(), w.2.clone(), w.3.clone()),
            "row {}",
            w.0
        );
    }
    src.stop().await.unwrap();
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
