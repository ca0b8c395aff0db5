//! `cdc check`.

use connector_core::{CheckStatus, Source};

use crate::common::{source, TestDb};

#[tokio::test]
async fn check_reports_each_precondition_with_its_fix() {
    // GIVEN a configured source on the test server
    let mut db = TestDb::new("checks").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").await;
    db.exec("CREATE TABLE nokey (a INT)").await;
    let mut src = source(&db.name, "checks", "");
    // WHEN it is checked
    let checks = src.check().await;
    let status = |name: &str| {
        checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no check {name}: {checks:#?}"))
            .status
    };
    // THEN the server's settings pass and the keyless table is a warning
    for name in [
        "connection",
        "log_bin",
        "binlog_format",
        "binlog_row_image",
        "binlog_row_metadata",
        "privileges",
        "server_id",
        "gtid",
        "tables",
    ] {
        assert_eq!(status(name), CheckStatus::Pass, "{name}: {checks:#?}");
    }
    let nokey = format!("table {}.nokey", db.name);
    assert_eq!(status(&nokey), CheckStatus::Warn);
    // AND a server_id equal to the server's own fails with a fix
    let mut clash = source(&db.name, "checks", "server_id: 1\n");
    let checks = clash.check().await;
    let c = checks.iter().find(|c| c.name == "server_id").unwrap();
    assert_eq!(c.status, CheckStatus::Fail);
    assert!(c.hint.as_deref().unwrap().contains("server_id"));
    // AND a server nobody listens on fails the connection check
    let mut down = crate::common::source(&db.name, "checks", "port: 1\nconnect_timeout_ms: 2000\n");
    let checks = down.check().await;
    assert_eq!(checks[0].status, CheckStatus::Fail);
    db.drop().await;
}
