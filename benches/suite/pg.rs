//! PostgreSQL parts: backlog drains (against `pg_recvlogical`), steady-state latency (pgbench at a
//! fixed rate) and the initial snapshot (against `COPY ... TO STDOUT`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio_postgres::{Client, NoTls};

use crate::bigtxn;
use crate::drain::{self, CdcRun, DrainResults, Workload};
use crate::kafka::{self, quantile};
use crate::proc::{metric_value, run_timed, settle, Cdc};
use crate::report::{median, Figure};
use crate::{Env, SETTLE};

/// A benchmark database (`<tag>`) and a connection to it.
pub struct Pg {
    pub db: String,
    pub url: String,
    pub c: Client,
    admin: Client,
    user: String,
    password: String,
    host: String,
    port: String,
}

async fn connect(url: &str) -> Client {
    let (c, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to PostgreSQL ({url}): {e}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    c
}

/// `postgres://user:password@host:port/db` → its parts.
fn parse_url(url: &str) -> (String, String, String, String) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (auth, hostpart) = rest.rsplit_once('@').unwrap_or(("postgres", rest));
    let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
    let hostport = hostpart.split('/').next().unwrap_or("127.0.0.1");
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "5432"));
    (
        user.to_string(),
        password.to_string(),
        host.to_string(),
        port.to_string(),
    )
}

impl Pg {
    pub async fn open(env: &Env) -> Pg {
        let admin = connect(&env.pg_url).await;
        // Leftovers of an interrupted earlier run of the suite (inactive slots, databases).
        let stale = admin
            .query(
                "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'cdcb\\_%' AND NOT active",
                &[],
            )
            .await
            .unwrap();
        for row in stale {
            let s: String = row.get(0);
            let _ = admin
                .execute("SELECT pg_drop_replication_slot($1)", &[&s])
                .await;
        }
        let dbs = admin
            .query(
                "SELECT datname FROM pg_database WHERE datname LIKE 'cdcb\\_%'",
                &[],
            )
            .await
            .unwrap();
        for row in dbs {
            let d: String = row.get(0);
            let _ = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {d} WITH (FORCE)"))
                .await;
        }
        let db = env.tag.clone();
        admin
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .unwrap();
        let (prefix, _) = env.pg_url.rsplit_once('/').unwrap();
        let url = format!("{prefix}/{db}");
        let c = connect(&url).await;
        let (user, password, host, port) = parse_url(&env.pg_url);
        Pg {
            db,
            url,
            c,
            admin,
            user,
            password,
            host,
            port,
        }
    }

    pub async fn exec(&self, sql: &str) {
        self.c
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn lsn(&self) -> String {
        self.c
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await
            .unwrap()
            .get(0)
    }

    async fn create_slot(&self, slot: &str) {
        self.c
            .execute(
                "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
                &[&slot],
            )
            .await
            .unwrap();
    }

    /// A new slot at exactly the template's position (so it holds the same backlog).
    async fn copy_slot(&self, template: &str, slot: &str) {
        self.c
            .execute(
                "SELECT pg_copy_logical_replication_slot($1, $2)",
                &[&template, &slot],
            )
            .await
            .unwrap();
    }

    async fn drop_slot(&self, slot: &str) {
        for _ in 0..100 {
            let r = self
                .c
                .execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                     WHERE slot_name = $1 AND NOT active",
                    &[&slot],
                )
                .await;
            let gone = self
                .c
                .query_opt(
                    "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
                    &[&slot],
                )
                .await
                .map(|r| r.is_none())
                .unwrap_or(false);
            if r.is_ok() && gone {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!("warning: could not drop slot {slot}");
    }

    /// Write out what a load left dirty, so that the runs that follow do not pay for it:
    /// `CHECKPOINT` (as the benchmark user when it may, else as the `postgres` superuser).
    async fn checkpoint(&self) {
        if self.c.batch_execute("CHECKPOINT").await.is_ok() {
            return;
        }
        let url = format!(
            "postgres://postgres@{}:{}/{}",
            self.host, self.port, self.db
        );
        match tokio_postgres::connect(&url, NoTls).await {
            Ok((c, conn)) => {
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                if let Err(e) = c.batch_execute("CHECKPOINT").await {
                    eprintln!("warning: CHECKPOINT failed: {e}");
                }
            }
            Err(e) => eprintln!("warning: no CHECKPOINT (not allowed, and {url}: {e})"),
        }
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("PGPASSWORD", &self.password)
            .env("PGHOST", &self.host)
            .env("PGPORT", &self.port)
            .env("PGUSER", &self.user)
            .env("PGDATABASE", &self.db);
        cmd
    }

    /// Drop this run's slots and database.
    pub async fn cleanup(self) {
        let slots = self
            .admin
            .query(
                "SELECT slot_name FROM pg_replication_slots WHERE database = $1",
                &[&self.db],
            )
            .await
            .unwrap_or_default();
        drop(self.c);
        for row in slots {
            let s: String = row.get(0);
            for _ in 0..50 {
                if self
                    .admin
                    .execute("SELECT pg_drop_replication_slot($1)", &[&s])
                    .await
                    .is_ok()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let _ = self
            .admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db))
            .await;
    }

    fn source_yaml(&self, table: &str, slot: &str, publication: &str, snapshot: &str) -> String {
        format!(
            "source: {{ type: postgres, url: \"{}\", sslmode: disable, tables: [public.{table}], \
             slot: {slot}, publication: {publication}, snapshot: {snapshot} }}\n",
            self.url
        )
    }
}

/// `SELECT` of `~230`-byte rows with ids `from..=to`.
fn narrow_rows(from: u64, to: u64) -> String {
    format!(
        "SELECT g, 'name-' || g, (g % 100000) / 100.0, now(), repeat(md5(g::text), 5) \
         FROM generate_series({from}, {to}) g"
    )
}

fn create_table(w: Workload) -> String {
    let t = w.table();
    match w {
        Workload::Wide => format!(
            "CREATE TABLE {t} (id int8 PRIMARY KEY, name text NOT NULL, doc text NOT NULL)"
        ),
        _ => format!(
            "CREATE TABLE {t} (id int8 PRIMARY KEY, name text NOT NULL, amount numeric(12,2) NOT NULL, \
             created_at timestamptz NOT NULL, payload text NOT NULL)"
        ),
    }
}

fn backlog_txn(env: &Env, w: Workload, t: u64) -> String {
    let table = w.table();
    match w {
        Workload::Insert => {
            let per = w.rows_per_txn(env);
            let from = t * per + 1;
            format!("INSERT INTO {table} {}", narrow_rows(from, from + per - 1))
        }
        Workload::Wide => {
            let per = w.rows_per_txn(env);
            let from = t * per + 1;
            format!(
                "INSERT INTO {table} SELECT g, 'name-' || g, \
                 (SELECT string_agg(md5(g::text || '-' || i::text), '') FROM generate_series(1, 128) i) \
                 FROM generate_series({from}, {}) g",
                from + per - 1
            )
        }
        Workload::Update => {
            let [(u, un), (i, n_i), (d, n_d)] = w.update_ids(env, t);
            format!(
                "BEGIN; UPDATE {table} SET amount = amount + 1, created_at = now() WHERE id BETWEEN {u} AND {}; \
                 INSERT INTO {table} {}; DELETE FROM {table} WHERE id BETWEEN {d} AND {}; COMMIT",
                u + un - 1,
                narrow_rows(i, i + n_i - 1),
                d + n_d - 1
            )
        }
    }
}

/// Backlog drain of one workload: pg_recvlogical, cdc into file, /dev/null and Kafka, and the
/// plain producer, interleaved per round, each cdc run on its own copy of one template slot
/// created before the backlog.
pub async fn drain(env: &Env, pg: &Pg, w: Workload) -> (Vec<Figure>, serde_json::Value) {
    let part = format!("pg-{}", w.name());
    let table = w.table();
    let publication = format!("pub_{table}");
    pg.exec(&create_table(w)).await;
    if w.prepopulate(env) > 0 {
        pg.exec(&format!(
            "INSERT INTO {table} {}",
            narrow_rows(1, w.prepopulate(env))
        ))
        .await;
    }
    pg.exec(&format!(
        "CREATE PUBLICATION {publication} FOR TABLE {table}"
    ))
    .await;
    let template = format!("{}_{table}_tpl", env.tag);
    pg.create_slot(&template).await;
    let t = Instant::now();
    for i in 0..w.txns(env) {
        pg.exec(&backlog_txn(env, w, i)).await;
    }
    let write_secs = t.elapsed().as_secs_f64();
    let end = pg.lsn().await;
    pg.checkpoint().await;
    let row_bytes: f64 =
        pg.c.query_one(
            &format!("SELECT avg(pg_column_size({table}.*))::float8 FROM {table}"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let toast: i64 = pg
        .c
        .query_one(
            &format!(
                "SELECT coalesce(pg_relation_size(reltoastrelid), 0) FROM pg_class WHERE relname = '{table}'"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    eprintln!(
        "[{part}] backlog: {} events in {} transactions written in {write_secs:.1} s; rows ~{row_bytes:.0} bytes, \
         TOAST {:.1} MB; WAL end {end}",
        w.events(env),
        w.txns(env),
        toast as f64 / 1e6
    );
    let events = w.events(env);
    let mut r = DrainResults::default();
    for round in 0..env.runs {
        if env.ceilings {
            // Source ceiling: pg_recvlogical with pgoutput v1 into a file, up to the backlog's end.
            let slot = format!("{}_{table}_recv{round}", env.tag);
            pg.copy_slot(&template, &slot).await;
            let out = env.work.join(format!("{slot}.pgoutput"));
            settle(SETTLE).await;
            let (secs, _) = run_timed(
                pg.command("pg_recvlogical")
                    .args(["-d", &pg.url, "--slot", &slot, "--start", "--no-loop"])
                    .args([
                        "-o",
                        "proto_version=1",
                        "-o",
                        &format!("publication_names={publication}"),
                    ])
                    .args(["-E", &end, "-f"])
                    .arg(&out)
                    .stderr(Stdio::null()),
            );
            r.source_bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
            let _ = std::fs::remove_file(&out);
            pg.drop_slot(&slot).await;
            r.ceiling_secs.push(secs);
            eprintln!("[{part}] round {round}: pg_recvlogical {secs:.3} s");
        }

        for &sink in &env.sinks {
            let name = format!("{}_{table}_{}{round}", env.tag, sink.label());
            pg.copy_slot(&template, &name).await;
            let src = pg.source_yaml(table, &name, &publication, "never");
            settle(SETTLE).await;
            let run: CdcRun = drain::cdc_drain(env, &name, &src, sink, events, None).await;
            pg.drop_slot(&name).await;
            r.record(&part, round, sink, run);
        }
        r.broker_round(
            env,
            &part,
            round,
            &format!("{}_{table}_plain{round}", env.tag),
            w,
        )
        .await;
    }
    pg.drop_slot(&template).await;
    let figures = drain::figures(env, &part, "pg_recvlogical", w, &r);
    let info = json!({
        "part": part,
        "workload": drain::workload_json(env, w),
        "backlog_write_secs": write_secs,
        "avg_row_bytes": row_bytes,
        "toast_bytes": toast,
        "pgoutput_bytes": r.source_bytes,
    });
    (figures, info)
}

/// One transaction of `big_rows` inserts drained into the file sink from a slot created before
/// it: cdc's peak memory against its target (`bigtxn`).
pub async fn bigtxn(env: &Env, pg: &Pg) -> (Vec<Figure>, serde_json::Value) {
    let part = "pg-bigtxn";
    let table = bigtxn::TABLE;
    let publication = format!("pub_{table}");
    pg.exec(&create_table(Workload::Insert).replacen("TABLE ins ", &format!("TABLE {table} "), 1))
        .await;
    pg.exec(&format!(
        "CREATE PUBLICATION {publication} FOR TABLE {table}"
    ))
    .await;
    let template = format!("{}_{table}_tpl", env.tag);
    pg.create_slot(&template).await;
    let t = Instant::now();
    pg.exec(&format!(
        "INSERT INTO {table} {}",
        narrow_rows(1, env.big_rows)
    ))
    .await;
    let write_secs = t.elapsed().as_secs_f64();
    pg.checkpoint().await;
    eprintln!(
        "[{part}] backlog: 1 transaction of {} rows written in {write_secs:.1} s",
        env.big_rows
    );
    let mut runs = Vec::new();
    for round in 0..env.big_runs {
        let name = format!("{}_{table}_file{round}", env.tag);
        pg.copy_slot(&template, &name).await;
        let src = pg.source_yaml(table, &name, &publication, "never");
        settle(SETTLE).await;
        let run =
            drain::cdc_drain(env, &name, &src, drain::SinkKind::File, env.big_rows, None).await;
        pg.drop_slot(&name).await;
        bigtxn::record(part, round, &run, &mut runs);
    }
    pg.drop_slot(&template).await;
    pg.exec(&format!("DROP TABLE {table}")).await;
    (
        bigtxn::figures(env, part, &runs),
        bigtxn::info(env, part, write_secs),
    )
}

/// Steady state: pgbench inserts single-row transactions at `rate` a second while cdc streams
/// them into Kafka: cdc's own commit-to-acknowledgement quantiles (the commit timestamp of each
/// event, in microseconds, against the time its batch is acknowledged), and the broker's
/// produce-to-acknowledgement at the same rate. No consumer runs meanwhile: tansu answers every
/// fetch only after its full `fetch.wait.max.ms`, so a consumer polling it loads the broker and
/// the 2 cores, and moved cdc's p50 from ~8 to ~18 ms.
pub async fn latency(env: &Env, pg: &Pg) -> (Vec<Figure>, serde_json::Value) {
    let part = "pg-latency";
    let (mut p50, mut p99, mut max) = (vec![], vec![], vec![]);
    let (mut b50, mut b99, mut bmax) = (vec![], vec![], vec![]);
    let mut tps = vec![];
    let mut usages = vec![];
    let mut counts = vec![];
    for round in 0..env.latency_runs {
        let table = format!("lat{round}");
        let publication = format!("pub_{table}");
        pg.exec(&format!(
            "CREATE TABLE {table} (id bigserial PRIMARY KEY, t_us int8 NOT NULL, payload text NOT NULL); \
             CREATE PUBLICATION {publication} FOR TABLE {table}"
        ))
        .await;
        let name = format!("{}_pglat{round}", env.tag);
        let topic = format!("{name}.public.{table}");
        kafka::create_topic(&env.brokers, &topic).await;
        let dir = env.work.join(&name);
        let yaml = format!(
            "name: {name}\n{}sink: {{ type: kafka, brokers: \"{}\", headers: false, create_topics: {{ partitions: {} }} }}\n\
             offsets: {{ type: file, path: \"{}\" }}\n",
            pg.source_yaml(&table, &name, &publication, "never"),
            env.brokers,
            kafka::PARTITIONS,
            dir.join("offsets").display()
        );
        settle(SETTLE).await;
        let mut cdc = Cdc::spawn(&env.bin, &dir, &yaml, None);
        cdc.wait_ready(Duration::from_secs(60)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let script = env.work.join(format!("{name}.sql"));
        std::fs::write(
            &script,
            format!(
                "INSERT INTO {table} (t_us, payload) VALUES \
                 ((extract(epoch from clock_timestamp()) * 1000000)::int8, repeat('x', 200));\n"
            ),
        )
        .unwrap();
        let mut cmd = pg.command("pgbench");
        cmd.args(["-n", "-c", "4", "-j", "2"])
            .args(["-R", &env.rate.to_string()])
            .args([
                "-T",
                &format!("{}", env.latency_secs.round().max(1.0) as u64),
            ])
            .arg("-f")
            .arg(&script);
        let output = tokio::task::spawn_blocking(move || cmd.output().expect("run pgbench"))
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "pgbench failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        let achieved = text
            .lines()
            .find(|l| l.starts_with("tps = "))
            .and_then(|l| l[6..].split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(f64::NAN);
        tps.push(achieved);
        let n: i64 =
            pg.c.query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await
                .unwrap()
                .get(0);
        cdc.wait_events(n as u64, Duration::from_secs(300)).await;
        let m = cdc.metrics().unwrap_or_default();
        let q = |label: &str| {
            metric_value(
                &m,
                "cdc_commit_to_durable_quantile_seconds",
                &format!("quantile=\"{label}\""),
            )
            .map_or(f64::NAN, |v| v * 1e3)
        };
        p50.push(q("0.5"));
        p99.push(q("0.99"));
        max.push(
            metric_value(&m, "cdc_commit_to_durable_max_seconds", "").map_or(f64::NAN, |v| v * 1e3),
        );
        let count = metric_value(&m, "cdc_commit_to_durable_seconds_count", "").unwrap_or(0.0);
        let usage = cdc.stop().await;
        usages.push(usage);
        counts.push(json!({"rows": n, "observed": count}));
        pg.drop_slot(&name).await;
        eprintln!(
            "[{part}] round {round}: {n} transactions at {achieved:.0}/s; cdc commit->ack p50 {:.1} ms p99 {:.1} ms \
             max {:.1} ms; RSS {:.0} MiB, CPU {:.2} s",
            p50[round], p99[round], max[round], usage.rss_mib, usage.cpu_s
        );
        if !env.keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
        // The broker alone at the same rate (a shorter run).
        settle(SETTLE).await;
        let mut lat = kafka::ack_latency(
            &env.brokers,
            &format!("{}_pgack{round}", env.tag),
            env.rate,
            env.latency_secs.min(10.0),
            700,
        )
        .await;
        b50.push(quantile(&mut lat, 0.5) / 1e3);
        b99.push(quantile(&mut lat, 0.99) / 1e3);
        bmax.push(quantile(&mut lat, 1.0) / 1e3);
    }
    let mut figs = crate::latency_figures(
        part,
        "cdc commit → broker ack (cdc's exact quantiles)",
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
        "broker alone: produce → ack (plain producer)",
        &b50,
        &b99,
        &bmax,
        false,
    ));
    let info = json!({
        "part": part,
        "rate_per_s": env.rate,
        "secs_per_run": env.latency_secs,
        "pgbench_tps": tps,
        "counts": counts,
        "load": "pgbench -n -c 4 -j 2 -R RATE -T SECS, one single-row INSERT (~230 bytes) per transaction",
    });
    (figs, info)
}

/// Snapshot of `snapshot_rows` rows: `COPY ... TO STDOUT` (psql into /dev/null) against cdc's
/// `initial_only` snapshot into the file sink (and Kafka when enabled), from spawn to exit.
pub async fn snapshot(env: &Env, pg: &Pg) -> (Vec<Figure>, serde_json::Value) {
    let part = "pg-snapshot";
    let rows = env.snapshot_rows;
    pg.exec(
        "CREATE TABLE snap (id int8 PRIMARY KEY, name text NOT NULL, amount numeric(12,2) NOT NULL, \
         created_at timestamptz NOT NULL, payload text NOT NULL)",
    )
    .await;
    let t = Instant::now();
    let chunk = 100_000;
    let mut from = 1;
    while from <= rows {
        let to = (from + chunk - 1).min(rows);
        pg.exec(&format!("INSERT INTO snap {}", narrow_rows(from, to)))
            .await;
        from = to + 1;
    }
    pg.exec("VACUUM (ANALYZE) snap").await;
    pg.checkpoint().await;
    let size: i64 =
        pg.c.query_one("SELECT pg_table_size('snap')", &[])
            .await
            .unwrap()
            .get(0);
    eprintln!(
        "[{part}] {rows} rows ({:.0} MB) written in {:.1} s",
        size as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let mut copy = vec![];
    let mut runs = crate::SnapRuns::default();
    for round in 0..env.runs {
        settle(SETTLE).await;
        let (secs, _) = run_timed(
            pg.command("psql")
                .args(["-X", "-q", "-c", "COPY snap TO STDOUT"])
                .stdout(Stdio::null()),
        );
        copy.push(secs);
        eprintln!("[{part}] round {round}: COPY {secs:.3} s");
        crate::snapshot_round(
            env,
            part,
            round,
            "pgsnap",
            |name| pg.source_yaml("snap", name, "unused_pub", "initial_only"),
            &mut runs,
        )
        .await;
    }
    let figs = crate::snapshot_figures(part, "COPY ... TO STDOUT", rows, &copy, &runs);
    let info = json!({"part": part, "rows": rows, "table_bytes": size});
    (figs, info)
}
