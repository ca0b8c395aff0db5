//! `cdc check` for the MySQL source: each precondition as a named [`Check`] with its fix.

use connector_core::Check;
use mysql_async::Conn;

use crate::config::{GtidSetting, Settings};
use crate::replication::{connect, query, server_info, Flavor};
use crate::snapshot::load_table_defs;

/// Run every check.
pub async fn run(settings: &Settings) -> Vec<Check> {
    let mut out = Vec::new();
    let mut conn = match connect(settings).await {
        Ok(c) => {
            out.push(Check::pass(
                "connection",
                format!("connected to {}", settings.address),
            ));
            c
        }
        Err(e) => {
            out.push(Check::from_error("connection", &e));
            return out;
        }
    };
    checks_on(&mut conn, settings, &mut out).await;
    let _ = conn.disconnect().await;
    out
}

async fn var(conn: &mut Conn, name: &str) -> Option<String> {
    let rows: Vec<(String, String)> = query(conn, &format!("SHOW GLOBAL VARIABLES LIKE '{name}'"))
        .await
        .ok()?;
    rows.into_iter().next().map(|(_, v)| v)
}

async fn checks_on(conn: &mut Conn, settings: &Settings, out: &mut Vec<Check>) {
    let info = match server_info(conn).await {
        Ok(i) => i,
        Err(e) => {
            out.push(Check::from_error("server version", &e));
            return;
        }
    };
    let mariadb = info.flavor == Flavor::MariaDb;
    out.push(Check::pass("server version", info.version.clone()));

    match var(conn, "log_bin").await.as_deref() {
        Some("ON") => out.push(Check::pass("log_bin", "the binary log is enabled")),
        other => out.push(Check::fail(
            "log_bin",
            format!("the binary log is {}", other.unwrap_or("unknown")),
            "start the server with log_bin (for example `log_bin = mysql-bin` in the [mysqld] \
             section) and restart it",
        )),
    }
    match var(conn, "binlog_format").await {
        Some(v) if v.eq_ignore_ascii_case("ROW") => out.push(Check::pass("binlog_format", v)),
        other => out.push(Check::fail(
            "binlog_format",
            format!("{} (row events are needed)", other.unwrap_or_default()),
            "SET GLOBAL binlog_format = 'ROW'; and `binlog_format = ROW` in the server config",
        )),
    }
    match var(conn, "binlog_row_image").await {
        Some(v) if v.eq_ignore_ascii_case("FULL") => out.push(Check::pass("binlog_row_image", v)),
        other => out.push(Check::fail(
            "binlog_row_image",
            format!(
                "{} (before images would miss columns)",
                other.unwrap_or_default()
            ),
            "SET GLOBAL binlog_row_image = 'FULL'; and in the server config",
        )),
    }
    match var(conn, "binlog_row_metadata").await {
        Some(v) if v.eq_ignore_ascii_case("FULL") => out.push(Check::pass(
            "binlog_row_metadata",
            "FULL: rows carry column names, signedness and charsets",
        )),
        other => out.push(Check::warn(
            "binlog_row_metadata",
            format!(
                "{}: column names come from the schema tracker, which follows DDL in the binlog \
                 but starts from the live catalog",
                other.unwrap_or_else(|| "not supported".into())
            ),
            "SET GLOBAL binlog_row_metadata = 'FULL'; and in the server config (MySQL 8.0.1+, \
             MariaDB 10.5+)",
        )),
    }
    match var(conn, "binlog_checksum").await {
        Some(v) => out.push(Check::pass(
            "binlog_checksum",
            format!("{v} (CRC32 checksums are verified)"),
        )),
        None => out.push(Check::pass("binlog_checksum", "NONE")),
    }

    // Privileges.
    let grants: Vec<String> = query(conn, "SHOW GRANTS FOR CURRENT_USER()")
        .await
        .unwrap_or_default();
    let all = grants.join("\n").to_ascii_uppercase();
    let global: Vec<&str> = all.lines().filter(|l| l.contains(" ON *.* ")).collect();
    let has = |p: &str| {
        global
            .iter()
            .any(|l| l.contains("ALL PRIVILEGES") || l.contains(p))
    };
    let mut missing = Vec::new();
    if !has("REPLICATION SLAVE") && !has("REPLICATION REPLICA") {
        missing.push("REPLICATION SLAVE");
    }
    if mariadb {
        if !has("BINLOG MONITOR") && !has("REPLICATION CLIENT") && !has("SUPER") {
            missing.push("BINLOG MONITOR");
        }
    } else if !has("REPLICATION CLIENT") {
        missing.push("REPLICATION CLIENT");
    }
    let select_anywhere = all
        .lines()
        .any(|l| l.contains("ALL PRIVILEGES") || l.contains("SELECT"));
    if !select_anywhere {
        missing.push("SELECT");
    }
    if missing.is_empty() {
        out.push(Check::pass(
            "privileges",
            "replication and SELECT privileges granted",
        ));
    } else {
        out.push(Check::fail(
            "privileges",
            format!("missing {}", missing.join(", ")),
            format!(
                "GRANT {} ON *.* TO the user (SELECT may be limited to the captured databases)",
                missing.join(", ")
            ),
        ));
    }
    if !mariadb && !has("RELOAD") {
        out.push(Check::warn(
            "privileges: RELOAD",
            "missing: the MySQL snapshot needs FLUSH TABLES WITH READ LOCK for a moment",
            "GRANT RELOAD ON *.* TO the user, or use `snapshot: never`",
        ));
    }

    // Server ids.
    let own: Option<u32> = var(conn, "server_id").await.and_then(|v| v.parse().ok());
    if own == Some(settings.server_id) {
        out.push(Check::fail(
            "server_id",
            format!("the server's own server_id is {}", settings.server_id),
            "set `server_id` in the source config to a value no server or replica uses",
        ));
    } else {
        let hosts: Result<Vec<mysql_async::Row>, _> = query(conn, "SHOW SLAVE HOSTS").await;
        let clash = hosts.ok().and_then(|rows| {
            rows.into_iter().find_map(|mut r| {
                let id: Option<u32> = r.take(0);
                (id == Some(settings.server_id)).then(|| r.take::<String, _>(1).unwrap_or_default())
            })
        });
        match clash {
            Some(host) => out.push(Check::warn(
                "server_id",
                format!(
                    "{} is used by a connected replica ({host}); it may be this pipeline",
                    settings.server_id
                ),
                "if another replica uses it, set `server_id` to a free value",
            )),
            None => out.push(Check::pass(
                "server_id",
                format!(
                    "{} differs from the server's ({})",
                    settings.server_id,
                    own.map(|v| v.to_string()).unwrap_or_default()
                ),
            )),
        }
    }

    // GTIDs.
    if mariadb {
        let strict = var(conn, "gtid_strict_mode").await.unwrap_or_default();
        out.push(Check::pass(
            "gtid",
            format!("MariaDB GTIDs (gtid_strict_mode={strict})"),
        ));
    } else {
        let mode = var(conn, "gtid_mode").await.unwrap_or_default();
        match (settings.config.gtid, mode.as_str()) {
            (_, "ON") => out.push(Check::pass("gtid", "gtid_mode=ON")),
            (GtidSetting::On, m) => out.push(Check::fail(
                "gtid",
                format!("`gtid: true` but gtid_mode={m}"),
                "enable gtid_mode=ON and enforce_gtid_consistency=ON, or set `gtid: auto`",
            )),
            (_, m) => out.push(Check::pass(
                "gtid",
                format!("gtid_mode={m}: positions use binlog file and offset"),
            )),
        }
    }
    let expire = var(conn, "binlog_expire_logs_seconds")
        .await
        .and_then(|v| v.parse::<u64>().ok());
    match expire {
        Some(s) if s > 0 && s < 86_400 => out.push(Check::warn(
            "binlog retention",
            format!("binlog_expire_logs_seconds={s}: binlogs are purged after less than a day"),
            "raise binlog_expire_logs_seconds so the binlog outlives any downtime of cdc",
        )),
        Some(s) => out.push(Check::pass(
            "binlog retention",
            format!("binlog_expire_logs_seconds={s}"),
        )),
        None => {}
    }

    // Tables.
    match load_table_defs(conn, &settings.filter).await {
        Ok(defs) if defs.is_empty() => out.push(Check::fail(
            "tables",
            format!("no table matches {:?}", settings.config.tables),
            "check `tables` (db.table, db.*) and that the user may SELECT them",
        )),
        Ok(defs) => {
            out.push(Check::pass(
                "tables",
                format!("{} table(s) match", defs.len()),
            ));
            for d in defs.iter().filter(|d| !d.columns.iter().any(|c| c.key)) {
                out.push(Check::warn(
                    format!("table {}.{}", d.schema, d.table),
                    "no primary key: events have no key and the snapshot reads it in one chunk",
                    "add a primary key",
                ));
            }
        }
        Err(e) => out.push(Check::from_error("tables", &e)),
    }
}
