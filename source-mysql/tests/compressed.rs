//! MariaDB's compressed binlog events (`log_bin_compress`, a global variable: this test holds the
//! metadata lock exclusively and restores it afterwards, even when it fails).

use connector_core::{Op, Source, Value};
use mysql_async::prelude::Queryable as _;

use crate::common::{of_table, read_until, source, url, TestDb, METADATA};

async fn set_compress(on: bool) {
    let mut c = mysql_async::Conn::from_url(url()).await.unwrap();
    c.query_drop(format!(
        "SET GLOBAL log_bin_compress = {}",
        if on { "ON" } else { "OFF" }
    ))
    .await
    .unwrap();
    c.disconnect().await.unwrap();
}

#[tokio::test]
async fn compressed_query_and_rows_events_decode_like_plain_ones() {
    let _g = METADATA.write().await;
    set_compress(true).await;
    let result = tokio::spawn(async {
        // GIVEN a source streaming while the server compresses its binlog events
        let mut db = TestDb::new("compressed").await;
        let mut src = source(&db.name, "compressed", "snapshot: never\n");
        src.start(None).await.unwrap();
        // WHEN a table is created (a long statement: a compressed query event) and rows larger
        // than log_bin_compress_min_len are inserted, updated and deleted
        db.exec(&format!(
            "CREATE TABLE t (id INT PRIMARY KEY, body TEXT) /* {} */",
            "x".repeat(400)
        ))
        .await;
        let body = "y".repeat(2000);
        db.exec(&format!(
            "INSERT INTO t VALUES (1, '{body}'), (2, '{body}')"
        ))
        .await;
        db.exec("UPDATE t SET body = CONCAT(body, 'z') WHERE id = 1")
            .await;
        db.exec("DELETE FROM t WHERE id = 2").await;
        let c = read_until(&mut src, 30, |e| e.iter().any(|e| e.op == Op::Delete)).await;
        // THEN they arrive as from an uncompressed binlog
        let ev = of_table(&c.events, "t");
        let ops: Vec<Op> = ev.iter().map(|e| e.op).collect();
        assert_eq!(
            ops,
            [Op::Message, Op::Create, Op::Create, Op::Update, Op::Delete]
        );
        assert_eq!(ev[1].after.as_ref().unwrap()[1], Value::Text(body.clone()));
        assert_eq!(
            ev[3].after.as_ref().unwrap()[1],
            Value::Text(format!("{body}z"))
        );
        src.stop().await.unwrap();
        db.drop().await;
    })
    .await;
    set_compress(false).await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}
