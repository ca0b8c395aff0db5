//! MariaDB/MySQL parts: backlog drains (against `mariadb-binlog --read-from-remote-server --raw`),
//! steady-state latency (a rate-limited writer) and the initial snapshot (against a plain
//! `SELECT` through the `mariadb` client).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Row};
use serde_json::json;

use crate::bigtxn;
use crate::drain::{self, DrainResults, Workload};
use crate::kafka::{self, quantile, Tail};
use crate::proc::{run_timed, settle, Cdc};
use crate::report::{median, Figure};
use crate::{Env, SETTLE};

/// A benchmark database (`<tag>`) and a connection to it.
pub struct My {
    pub db: String,
    pub base: String,
    pub c: Conn,
    opts: Opts,
}

/// A binlog position: file, offset, and the GTID state there.
#[derive(Clone, Debug)]
pub struct BinlogPos {
    pub file: String,
    pub pos: u64,
    pub gtids: String,
}

impl BinlogPos {
    /// cdc's text form of a position.
    pub fn to_cdc(&self) -> String {
        if self.gtids.is_empty() {
            format!("file={};pos={}", self.file, self.pos)
        } else {
            format!("file={};pos={};gtids={}", self.file, self.pos, self.gtids)
        }
    }
}

impl My {
    pub async fn open(env: &Env) -> My {
        let base = env.mysql_url.trim_end_matches('/').to_string();
        let opts = Opts::from_url(&base).expect("CDC_TEST_MYSQL_URL");
        let mut admin = Conn::new(opts.clone())
            .await
            .unwrap_or_else(|e| panic!("connect to MySQL ({base}): {e}"));
        let stale: Vec<String> = admin
            .query("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'cdcb\\_%'")
            .await
            .unwrap();
        for d in stale {
            let _ = admin
                .query_drop(format!("DROP DATABASE IF EXISTS {d}"))
                .await;
        }
        let db = env.tag.clone();
        admin
            .query_drop(format!("CREATE DATABASE {db}"))
            .await
            .unwrap();
        drop(admin);
        let opts = Opts::from_url(&format!("{base}/{db}")).unwrap();
        let c = Conn::new(opts.clone()).await.unwrap();
        My { db, base, c, opts }
    }

    pub async fn exec(&mut self, sql: &str) {
        self.c
            .query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn position(&mut self) -> BinlogPos {
        let row: Row = self
            .c
            .query_first("SHOW MASTER STATUS")
            .await
            .unwrap()
            .expect("binary logging is on");
        let file: String = row.get(0).unwrap();
        let pos: u64 = row.get(1).unwrap();
        let gtids: Option<String> = self
            .c
            .query_first("SELECT @@gtid_binlog_pos")
            .await
            .unwrap_or(None);
        BinlogPos {
            file,
            pos,
            gtids: gtids.unwrap_or_default(),
        }
    }

    async fn binlog_size(&mut self, file: &str) -> u64 {
        let rows: Vec<Row> = self.c.query("SHOW BINARY LOGS").await.unwrap();
        rows.into_iter()
            .find(|r| r.get::<String, _>(0).as_deref() == Some(file))
            .and_then(|r| r.get::<u64, _>(1))
            .unwrap_or(0)
    }

    /// Write out the pages a load left dirty (InnoDB flushes them slowly in the background, and
    /// the runs that follow would compete with it): lower `innodb_max_dirty_pages_pct` to 0
    /// until they are written, then restore it.
    async fn flush_dirty(&mut self) {
        let old: Option<f64> = self
            .c
            .query_first("SELECT @@GLOBAL.innodb_max_dirty_pages_pct")
            .await
            .ok()
            .flatten();
        let Some(old) = old else {
            return;
        };
        if self
            .c
            .query_drop("SET GLOBAL innodb_max_dirty_pages_pct = 0")
            .await
            .is_err()
        {
            return;
        }
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(120) {
            let dirty: Option<(String, u64)> = self
                .c
                .query_first("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'")
                .await
                .ok()
                .flatten();
            if dirty.is_none_or(|(_, n)| n < 100) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let _ = self
            .c
            .query_drop(format!("SET GLOBAL innodb_max_dirty_pages_pct = {old}"))
            .await;
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.arg(format!("--host={}", self.opts.ip_or_hostname()))
            .arg(format!("--port={}", self.opts.tcp_port()))
            .arg(format!("--user={}", self.opts.user().unwrap_or("root")))
            .arg(format!("--password={}", self.opts.pass().unwrap_or("")));
        cmd
    }

    fn source_yaml(&self, table: &str, snapshot: &str) -> String {
        format!(
            "source: {{ type: mysql, url: \"{}\", tables: [{}.{table}], snapshot: {snapshot} }}\n",
            self.base, self.db
        )
    }

    /// Drop the database; purge binary logs before the current one (unless disabled).
    pub async fn cleanup(mut self, purge: bool) {
        let db = self.db.clone();
        let _ = self
            .c
            .query_drop(format!("DROP DATABASE IF EXISTS {db}"))
            .await;
        if purge {
            if let Ok(Some(row)) = self.c.query_first::<Row, _>("SHOW MASTER STATUS").await {
                let file: String = row.get(0).unwrap_or_default();
                let _ = self
                    .c
                    .query_drop(format!("PURGE BINARY LOGS TO '{file}'"))
                    .await;
            }
        }
        let _ = self.c.disconnect().await;
    }
}

/// `SELECT` of ~230-byte rows with ids `from..=to` (MariaDB's sequence engine).
fn narrow_rows(from: u64, to: u64) -> String {
    format!(
        "SELECT seq, CONCAT('name-', seq), (seq % 100000) / 100, NOW(6), REPEAT(MD5(seq), 5) \
         FROM seq_{from}_to_{to}"
    )
}

fn create_table(w: Workload) -> String {
    let t = w.table();
    match w {
        Workload::Wide => format!(
            "CREATE TABLE {t} (id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL, doc TEXT NOT NULL)"
        ),
        _ => format!(
            "CREATE TABLE {t} (id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL, amount DECIMAL(12,2) NOT NULL, \
             created_at DATETIME(6) NOT NULL, payload VARCHAR(200) NOT NULL)"
        ),
    }
}

fn backlog_txn(env: &Env, w: Workload, t: u64) -> Vec<String> {
    let table = w.table();
    match w {
        Workload::Insert => {
            let per = w.rows_per_txn(env);
            let from = t * per + 1;
            vec![format!(
                "INSERT INTO {table} {}",
                narrow_rows(from, from + per - 1)
            )]
        }
        Workload::Wide => {
            let per = w.rows_per_txn(env);
            let from = t * per + 1;
            vec![format!(
                "INSERT INTO {table} SELECT s.seq, CONCAT('name-', s.seq), \
                 (SELECT GROUP_CONCAT(MD5(CONCAT(s.seq, '-', i.seq)) SEPARATOR '') FROM seq_1_to_128 i) \
                 FROM seq_{from}_to_{} s",
                from + per - 1
            )]
        }
        Workload::Update => {
            let [(u, un), (i, n_i), (d, n_d)] = w.update_ids(env, t);
            vec![
                "START TRANSACTION".into(),
                format!(
                    "UPDATE {table} SET amount = amount + 1, created_at = NOW(6) WHERE id BETWEEN {u} AND {}",
                    u + un - 1
                ),
                format!("INSERT INTO {table} {}", narrow_rows(i, i + n_i - 1)),
                format!(
                    "DELETE FROM {table} WHERE id BETWEEN {d} AND {}",
                    d + n_d - 1
                ),
                "COMMIT".into(),
            ]
        }
    }
}

/// Backlog drain of one workload: the binlog range of the backlog (a file of its own: the logs
/// are flushed before and after it) read by `mariadb-binlog --raw` and by cdc into file,
/// /dev/null and Kafka from a stored position, and the plain producer, interleaved per round.
pub async fn drain(env: &Env, my: &mut My, w: Workload) -> (Vec<Figure>, serde_json::Value) {
    let part = format!("mysql-{}", w.name());
    let table = w.table();
    my.exec(&create_table(w)).await;
    if w.prepopulate(env) > 0 {
        my.exec(&format!(
            "INSERT INTO {table} {}",
            narrow_rows(1, w.prepopulate(env))
        ))
        .await;
    }
    my.exec("FLUSH BINARY LOGS").await;
    let start = my.position().await;
    let t = Instant::now();
    for i in 0..w.txns(env) {
        for sql in backlog_txn(env, w, i) {
            my.exec(&sql).await;
        }
    }
    let write_secs = t.elapsed().as_secs_f64();
    my.exec("FLUSH BINARY LOGS").await;
    my.flush_dirty().await;
    let range = my.binlog_size(&start.file).await.saturating_sub(start.pos);
    eprintln!(
        "[{part}] backlog: {} events in {} transactions written in {write_secs:.1} s; binlog {} from {} ({:.1} MB)",
        w.events(env),
        w.txns(env),
        start.file,
        start.pos,
        range as f64 / 1e6
    );
    let events = w.events(env);
    let mut r = DrainResults {
        source_bytes: range,
        ..Default::default()
    };
    for round in 0..env.runs {
        if env.ceilings {
            let dir = env.work.join(format!("{}_{table}_raw{round}", env.tag));
            std::fs::create_dir_all(&dir).unwrap();
            settle(SETTLE).await;
            let (secs, _) = run_timed(
                my.command("mariadb-binlog")
                    .args(["--read-from-remote-server", "--raw"])
                    .arg(format!("--start-position={}", start.pos))
                    .arg(format!("--result-file={}/", dir.display()))
                    .arg(&start.file)
                    .stderr(Stdio::null()),
            );
            let _ = std::fs::remove_dir_all(&dir);
            r.ceiling_secs.push(secs);
            eprintln!("[{part}] round {round}: mariadb-binlog --raw {secs:.3} s");
            // MariaDB's own decoder printing every row (`--verbose`): what decoding costs.
            settle(SETTLE).await;
            let (secs, _) = run_timed(
                my.command("mariadb-binlog")
                    .args(["--read-from-remote-server", "--verbose"])
                    .arg(format!("--start-position={}", start.pos))
                    .arg(&start.file)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null()),
            );
            r.reference
                .get_or_insert_with(|| ("mariadb-binlog --verbose".to_string(), Vec::new()))
                .1
                .push(secs);
            eprintln!("[{part}] round {round}: mariadb-binlog --verbose {secs:.3} s");
        }
        for &sink in &env.sinks {
            let name = format!("{}_{table}_{}{round}", env.tag, sink.label());
            let src = my.source_yaml(table, "never");
            settle(SETTLE).await;
            let run = drain::cdc_drain(env, &name, &src, sink, events, Some(&start.to_cdc())).await;
            r.record(&part, round, sink, run);
        }
        r.broker_round(
            env,
            &part,
            round,
            &format!("{}_my{table}_plain{round}", env.tag),
            w,
        )
        .await;
    }
    let figures = drain::figures(env, &part, "mariadb-binlog --raw", w, &r);
    let info = json!({
        "part": part,
        "workload": drain::workload_json(env, w),
        "backlog_write_secs": write_secs,
        "binlog_file": start.file,
        "binlog_bytes": range,
    });
    (figures, info)
}

/// One transaction of `big_rows` inserts (a binlog file of its own) drained into the file sink
/// from the position before it: cdc's peak memory against its target (`bigtxn`).
pub async fn bigtxn(env: &Env, my: &mut My) -> (Vec<Figure>, serde_json::Value) {
    let part = "mysql-bigtxn";
    let table = bigtxn::TABLE;
    my.exec(&create_table(Workload::Insert).replacen("TABLE ins ", &format!("TABLE {table} "), 1))
        .await;
    my.exec("FLUSH BINARY LOGS").await;
    let start = my.position().await;
    let t = Instant::now();
    my.exec(&format!(
        "INSERT INTO {table} {}",
        narrow_rows(1, env.big_rows)
    ))
    .await;
    let write_secs = t.elapsed().as_secs_f64();
    my.exec("FLUSH BINARY LOGS").await;
    my.flush_dirty().await;
    let range = my.binlog_size(&start.file).await.saturating_sub(start.pos);
    eprintln!(
        "[{part}] backlog: 1 transaction of {} rows written in {write_secs:.1} s; binlog {} from {} ({:.1} MB)",
        env.big_rows,
        start.file,
        start.pos,
        range as f64 / 1e6
    );
    let mut runs = Vec::new();
    for round in 0..env.big_runs {
        let name = format!("{}_{table}_file{round}", env.tag);
        let src = my.source_yaml(table, "never");
        settle(SETTLE).await;
        let run = drain::cdc_drain(
            env,
            &name,
            &src,
            drain::SinkKind::File,
            env.big_rows,
            Some(&start.to_cdc()),
        )
        .await;
        bigtxn::record(part, round, &run, &mut runs);
    }
    my.exec(&format!("DROP TABLE {table}")).await;
    let mut info = bigtxn::info(env, part, write_secs);
    info["binlog_bytes"] = json!(range);
    (bigtxn::figures(env, part, &runs), info)
}

/// `conns` connections insert single-row transactions on a shared schedule of `rate` a second
/// for `secs` (a late insert is sent at once: the schedule does not stretch). Returns rows
/// written and the achieved rate.
async fn rate_writer(url: &str, table: &str, rate: u64, secs: f64, conns: u64) -> (u64, f64) {
    let total = (rate as f64 * secs) as u64;
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let mut tasks = Vec::new();
    for k in 0..conns {
        let opts = Opts::from_url(url).unwrap();
        let sql = format!(
            "INSERT INTO {table} (t_us, payload) VALUES \
             (CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED), REPEAT('x', 200))"
        );
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::new(opts).await.unwrap();
            let mut n = 0u64;
            let mut i = k;
            while i < total {
                let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
                tokio::time::sleep_until(due).await;
                c.query_drop(&sql).await.unwrap();
                n += 1;
                i += conns;
            }
            let _ = c.disconnect().await;
            n
        }));
    }
    let mut n = 0;
    for t in tasks {
        n += t.await.unwrap();
    }
    let took = start.elapsed().as_secs_f64();
    (n, n as f64 / took)
}

/// Steady state: single-row transactions at `rate` a second, each row carrying `NOW(6)` of its
/// INSERT, streamed by cdc into Kafka; a consumer compares each arrival with that time. (The
/// binlog's event timestamps have one-second resolution, so cdc's own histogram is no use here.)
/// What is measured is INSERT start → record received by a consumer: an upper bound of commit →
/// broker acknowledgement.
pub async fn latency(env: &Env, my: &mut My) -> (Vec<Figure>, serde_json::Value) {
    let part = "mysql-latency";
    let (mut p50, mut p99, mut max) = (vec![], vec![], vec![]);
    let (mut h50, mut h99, mut hmax) = (vec![], vec![], vec![]);
    let mut rates = vec![];
    let mut usages = vec![];
    let mut counts = vec![];
    for round in 0..env.latency_runs {
        let table = format!("lat{round}");
        my.exec(&format!(
            "CREATE TABLE {table} (id BIGINT AUTO_INCREMENT PRIMARY KEY, t_us BIGINT NOT NULL, payload VARCHAR(255) NOT NULL)"
        ))
        .await;
        let name = format!("{}_mylat{round}", env.tag);
        let topic = format!("{name}.{}.{table}", my.db);
        kafka::create_topic(&env.brokers, &topic).await;
        let dir = env.work.join(&name);
        let yaml = format!(
            "name: {name}\n{}sink: {{ type: kafka, brokers: \"{}\", headers: false, create_topics: {{ partitions: {} }} }}\n\
             offsets: {{ type: file, path: \"{}\" }}\n",
            my.source_yaml(&table, "never"),
            env.brokers,
            kafka::PARTITIONS,
            dir.join("offsets").display()
        );
        settle(SETTLE).await;
        let mut cdc = Cdc::spawn(&env.bin, &dir, &yaml, None);
        cdc.wait_ready(Duration::from_secs(60)).await;
        let tail = Tail::start(&env.brokers, &topic);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let url = format!("{}/{}", my.base, my.db);
        let (n, achieved) = rate_writer(&url, &table, env.rate, env.latency_secs, 4).await;
        rates.push(achieved);
        cdc.wait_events(n, Duration::from_secs(300)).await;
        let t = Instant::now();
        while tail.count() < n as usize && t.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let usage = cdc.stop().await;
        usages.push(usage);
        let mut arrivals = tail.finish();
        counts.push(json!({"rows": n, "consumed": arrivals.from_row.len()}));
        let v = &mut arrivals.from_row;
        p50.push(quantile(v, 0.5) / 1e3);
        p99.push(quantile(v, 0.99) / 1e3);
        max.push(quantile(v, 1.0) / 1e3);
        let h = &mut arrivals.to_produce;
        h50.push(quantile(h, 0.5) / 1e3);
        h99.push(quantile(h, 0.99) / 1e3);
        hmax.push(quantile(h, 1.0) / 1e3);
        eprintln!(
            "[{part}] round {round}: {n} transactions at {achieved:.0}/s; INSERT->consumer p50 {:.1} ms p99 {:.1} ms \
             max {:.1} ms; RSS {:.0} MiB",
            p50[round], p99[round], max[round], usage.rss_mib
        );
        if !env.keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    let mut figs = crate::latency_figures(
        part,
        "INSERT (NOW(6)) → record received (bounds commit → ack)",
        &p50,
        &p99,
        &max,
        true,
    );
    if let Some(f) = figs.first_mut() {
        f.rss_mib = usages.iter().map(|u| u.rss_mib).reduce(f64::max);
        f.cpu_s = Some(median(&usages.iter().map(|u| u.cpu_s).collect::<Vec<_>>()));
    }
    figs.extend(crate::latency_figures(
        part,
        "INSERT (NOW(6)) → handed to the producer (record timestamp, ms)",
        &h50,
        &h99,
        &hmax,
        false,
    ));
    let info = json!({
        "part": part,
        "rate_per_s": env.rate,
        "secs_per_run": env.latency_secs,
        "achieved_rate": rates,
        "counts": counts,
        "load": "4 connections, one single-row INSERT (autocommit) each on a shared schedule",
    });
    (figs, info)
}

/// Snapshot of `snapshot_rows` rows: `mariadb --quick -e 'SELECT * FROM snap'` into /dev/null
/// against cdc's `initial_only` snapshot into the file sink (and Kafka when enabled).
pub async fn snapshot(env: &Env, my: &mut My) -> (Vec<Figure>, serde_json::Value) {
    let part = "mysql-snapshot";
    let rows = env.snapshot_rows;
    my.exec(&create_table(Workload::Insert).replace("TABLE ins", "TABLE snap"))
        .await;
    let t = Instant::now();
    let chunk = 100_000;
    let mut from = 1;
    while from <= rows {
        let to = (from + chunk - 1).min(rows);
        my.exec(&format!("INSERT INTO snap {}", narrow_rows(from, to)))
            .await;
        from = to + 1;
    }
    my.exec("ANALYZE TABLE snap").await;
    my.flush_dirty().await;
    eprintln!(
        "[{part}] {rows} rows written in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let mut dump = vec![];
    let mut runs = crate::SnapRuns::default();
    for round in 0..env.runs {
        settle(SETTLE).await;
        let (secs, _) = run_timed(
            my.command("mariadb")
                .args(["--quick", "--batch", "--skip-column-names"])
                .arg(format!("--database={}", my.db))
                .args(["-e", "SELECT * FROM snap"])
                .stdout(Stdio::null()),
        );
        dump.push(secs);
        eprintln!("[{part}] round {round}: SELECT {secs:.3} s");
        crate::snapshot_round(
            env,
            part,
            round,
            "mysnap",
            |_| my.source_yaml("snap", "initial_only"),
            &mut runs,
        )
        .await;
    }
    let figs = crate::snapshot_figures(part, "mariadb --quick SELECT", rows, &dump, &runs);
    let info = json!({"part": part, "rows": rows});
    (figs, info)
}
