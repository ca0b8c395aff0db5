//! TLS (`sslmode`) on both the control connection and the replication stream.

use connector_core::{ErrorKind, Op, Source};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_require_encrypts_the_replication_stream() {
    // GIVEN a server with TLS (Debian's snake-oil certificate) and sslmode: require
    let db = TestDb::new("tls").await;
    let on: String = db.client.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    assert_eq!(
        on, "on",
        "these tests expect the server to accept TLS (ssl = on)"
    );
    db.exec("CREATE TABLE items (id int PRIMARY KEY)").await;
    let mut src = db.source("tables: [public.items]\nsnapshot: never\nsslmode: require\n");
    src.start(None).await.expect("start over TLS");

    // WHEN a row is written
    db.exec("INSERT INTO items VALUES (1)").await;
    let got = drain_n(&mut src, 1).await;

    // THEN it arrives, and the walsender's connection is encrypted
    assert_eq!(summary(&got.events), vec![(Op::Create, 1)]);
    let ssl: bool = db
        .client
        .query_one(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_replication_slots r ON r.active_pid = s.pid \
             WHERE r.slot_name = $1",
            &[&src.slot_name()],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_verify_full_refuses_an_untrusted_certificate() {
    // GIVEN the server's self-signed certificate and sslmode: verify-full
    let db = TestDb::new("tlsv").await;
    db.exec("CREATE TABLE items (id int PRIMARY KEY)").await;
    let mut src = db.source("tables: [public.items]\nsnapshot: never\nsslmode: verify-full\n");
    // WHEN starting THEN it is refused as a fatal precondition naming the certificate, with a fix
    let e = src.start(None).await.expect_err("untrusted certificate");
    assert_eq!(e.kind(), ErrorKind::Precondition, "{}", e.report());
    assert!(e.hint().unwrap().contains("sslrootcert"));
    assert!(
        e.report().to_lowercase().contains("certificate"),
        "{}",
        e.report()
    );
}
