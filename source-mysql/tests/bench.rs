//! The benchmark (ignored by default; run it in release mode):
//!
//! ```text
//! eval "$(scripts/services.sh up)"
//! CARGO_TARGET_DIR=/work/target-mysql cargo test -p source-mysql --release --test main \
//!     -- --ignored --nocapture --test-threads=1 bench_drain
//! ```
//!
//! It writes 200,000 rows (2,000 transactions of 100 rows, about 230 bytes a row), then reads
//! the same binlog range three ways: `mariadb-binlog --read-from-remote-server --raw` (the
//! ceiling), this source alone (`next_batch` until every row is seen), and a whole pipeline into
//! the fsynced `file` sink (with the default in-flight bound). It prints
//! rates, ratios and peak resident memory. Add `--features bench-mimalloc` to measure with
//! mimalloc as the allocator. Run the benchmarks one at a time (`--test-threads=1`).

use std::time::{Duration, Instant};

use connector_core::{FileOffsetStore, OffsetStore, Op, Pipeline, Registry, Source};
use source_mysql::BinlogPosition;

use crate::common::{source, url, TestDb, METADATA};

const TRANSACTIONS: usize = 2_000;
const ROWS_PER_TRANSACTION: usize = 100;
const ROWS: usize = TRANSACTIONS * ROWS_PER_TRANSACTION;

fn best(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

/// Peak resident memory since the last reset, in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Reset the peak resident memory counter (Linux: `5` into `clear_refs`).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Run a pipeline (mysql source → fsynced file sink) from `start` until every row is durable;
/// returns seconds, peak RSS in MiB and lines written.
async fn pipeline_run(
    db: &str,
    dir: &std::path::Path,
    start: &connector_core::Position,
    in_flight: usize,
) -> (f64, f64, usize) {
    let out = dir.join(format!("events-{in_flight}.jsonl"));
    let offsets = dir.join(format!("bench-{in_flight}.offsets"));
    FileOffsetStore::new("bench_e2e", &offsets)
        .store(start)
        .await
        .unwrap();
    let batch = std::env::var("CDC_BENCH_MAX_BATCH_EVENTS").unwrap_or_else(|_| "2048".into());
    let yaml = format!(
        "name: bench_e2e\nsource: {{ type: mysql, url: '{}', tables: ['{db}.b'], snapshot: never, max_batch_events: {batch} }}\n\
         sink: {{ type: file, path: '{}' }}\noffsets: {{ type: file, path: '{}' }}\n\
         pipeline: {{ max_in_flight_bytes: {in_flight} }}\n",
        url(),
        out.display(),
        offsets.display()
    );
    let config = connector_core::config::load_str(&yaml).unwrap();
    let mut registry = Registry::with_builtins();
    registry.add_source("mysql", source_mysql::factory);
    let pipeline = Pipeline::new(config, registry);
    let metrics = std::sync::Arc::clone(pipeline.metrics());
    let token = tokio_util::sync::CancellationToken::new();
    reset_peak_rss();
    let t = Instant::now();
    let run = tokio::spawn({
        let token = token.clone();
        async move { pipeline.run(token).await }
    });
    while metrics.total(connector_core::metrics::EVENTS) < ROWS as f64 {
        assert!(t.elapsed() < Duration::from_secs(120), "pipeline too slow");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = t.elapsed().as_secs_f64();
    let rss = peak_rss_mib();
    token.cancel();
    run.await.unwrap().unwrap();
    let lines = std::fs::read_to_string(&out).unwrap().lines().count();
    (secs, rss, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --release -- --ignored --nocapture --test-threads=1 bench_drain"]
async fn bench_drain_200k_inserts() {
    let _g = METADATA.read().await;
    // GIVEN 200,000 rows written in 2,000 transactions of 100
    let mut db = TestDb::new("bench").await;
    db.exec(
        "CREATE TABLE b (id BIGINT PRIMARY KEY, account INT NOT NULL, amount DECIMAL(12,2) NOT NULL, \
         status VARCHAR(16) NOT NULL, created_at DATETIME(6) NOT NULL, payload VARCHAR(200) NOT NULL)",
    )
    .await;
    let start = db.position().await;
    let t = Instant::now();
    for tx in 0..TRANSACTIONS {
        db.exec(&format!(
            "INSERT INTO b WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < \
             {ROWS_PER_TRANSACTION}) SELECT {tx} * {ROWS_PER_TRANSACTION} + n, n % 1000, \
             (n * 37 % 100000) / 100, 'pending', NOW(6), REPEAT(CHAR(97 + n % 26), 180) FROM s"
        ))
        .await;
    }
    let end = db.position().await;
    eprintln!(
        "wrote {ROWS} rows in {:.1} s; binlog range {start} .. {end}",
        t.elapsed().as_secs_f64()
    );
    let start_pos = BinlogPosition::parse(start.as_str()).unwrap();

    // WHEN mariadb-binlog reads the same range raw (the ceiling)
    let opts = mysql_async::Opts::from_url(&url()).unwrap();
    let dir = std::env::temp_dir().join(format!("cdc-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut ceilings = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let status = std::process::Command::new("mariadb-binlog")
            .arg("--read-from-remote-server")
            .arg("--raw")
            .arg(format!("--host={}", opts.ip_or_hostname()))
            .arg(format!("--port={}", opts.tcp_port()))
            .arg(format!("--user={}", opts.user().unwrap_or("root")))
            .arg(format!("--password={}", opts.pass().unwrap_or("")))
            .arg(format!("--start-position={}", start_pos.pos))
            .arg(format!("--result-file={}/", dir.display()))
            .arg(&start_pos.file)
            .status()
            .expect("run mariadb-binlog");
        ceilings.push(t.elapsed().as_secs_f64());
        assert!(status.success());
    }
    let ceiling = best(&ceilings);
    let raw_bytes: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();

    // AND this source drains it (start → every row delivered by next_batch), three times
    let mut drains = Vec::new();
    let mut drain_rss: f64 = 0.0;
    let mut batches = 0;
    for _ in 0..3 {
        reset_peak_rss();
        let t = Instant::now();
        let extra = match std::env::var("CDC_BENCH_MAX_BATCH_EVENTS") {
            Ok(n) => format!("snapshot: never\nmax_batch_events: {n}\n"),
            Err(_) => "snapshot: never\n".to_string(),
        };
        let mut src = source(&db.name, "bench", &extra);
        src.start(Some(start.clone())).await.unwrap();
        let mut seen = 0;
        batches = 0;
        while seen < ROWS {
            let b = src.next_batch().await.unwrap().unwrap();
            batches += 1;
            seen += b.events.iter().filter(|e| e.op == Op::Create).count();
        }
        drains.push(t.elapsed().as_secs_f64());
        drain_rss = drain_rss.max(peak_rss_mib());
        src.stop().await.unwrap();
    }
    let drain = best(&drains);

    // AND a whole pipeline drains it into the fsynced file sink
    let mut e2e_runs = Vec::new();
    for in_flight in [64usize << 20] {
        e2e_runs.push((
            in_flight,
            pipeline_run(&db.name, &dir, &start, in_flight).await,
        ));
    }

    // THEN print the figures
    let rate = |s: f64| ROWS as f64 / s;
    eprintln!("--- 200,000 inserts (2,000 x 100 rows), {raw_bytes} bytes of binlog ---");
    eprintln!(
        "mariadb-binlog --raw      : {ceiling:.3} s  {:>9.0} rows/s  (ceiling; best of {ceilings:.3?})",
        rate(ceiling)
    );
    eprintln!(
        "source next_batch drain   : {drain:.3} s  {:>9.0} rows/s  {:.0}% of ceiling, {batches} batches, peak RSS {drain_rss:.1} MiB (best of {drains:.3?})",
        rate(drain),
        100.0 * ceiling / drain
    );
    for (in_flight, (e2e, e2e_rss, lines)) in e2e_runs {
        eprintln!(
            "pipeline into file sink   : {e2e:.3} s  {:>9.0} rows/s  {:.0}% of ceiling, {lines} lines, peak RSS {e2e_rss:.1} MiB (max_in_flight_bytes {} MiB)",
            rate(e2e),
            100.0 * ceiling / e2e,
            in_flight >> 20
        );
        assert!(lines >= ROWS);
    }
    let _ = std::fs::remove_dir_all(&dir);
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: transport only"]
async fn bench_transport_split() {
    use connector_core::ConfigSection;
    let _g = METADATA.read().await;
    let mut db = TestDb::new("bench_split").await;
    db.exec(
        "CREATE TABLE b (id BIGINT PRIMARY KEY, account INT NOT NULL, amount DECIMAL(12,2) NOT NULL, \
         status VARCHAR(16) NOT NULL, created_at DATETIME(6) NOT NULL, payload VARCHAR(200) NOT NULL)",
    )
    .await;
    let start = db.position().await;
    for tx in 0..TRANSACTIONS {
        db.exec(&format!(
            "INSERT INTO b WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < \
             {ROWS_PER_TRANSACTION}) SELECT {tx} * {ROWS_PER_TRANSACTION} + n, n % 1000, \
             (n * 37 % 100000) / 100, 'pending', NOW(6), REPEAT(CHAR(97 + n % 26), 180) FROM s"
        ))
        .await;
    }
    let end = BinlogPosition::parse(db.position().await.as_str()).unwrap();
    let from = BinlogPosition::parse(start.as_str()).unwrap();
    let yaml = format!("type: mysql\nurl: {}\ntables: ['{}.*']\n", url(), db.name);
    let section = ConfigSection::from_yaml("source", &yaml).unwrap();
    let settings = source_mysql::Settings::new(section.extract().unwrap(), "split").unwrap();
    let mut conn = source_mysql::replication::connect(&settings).await.unwrap();
    let info = source_mysql::replication::server_info(&mut conn)
        .await
        .unwrap();
    let t = Instant::now();
    let mut reader = source_mysql::replication::open_stream(&settings, &info, &from, false)
        .await
        .unwrap();
    let mut all = Vec::new();
    while let Some(ev) = reader.rx.recv().await {
        let ev = ev.unwrap();
        let done = u64::from(ev.header().log_pos()) >= end.pos;
        all.push(ev);
        if done {
            break;
        }
    }
    eprintln!(
        "transport only: {} events in {:.3} s",
        all.len(),
        t.elapsed().as_secs_f64()
    );
    for round in 0..3 {
        let mut tracker = source_mysql::ddl::SchemaTracker::new();
        for d in source_mysql::snapshot::load_table_defs(&mut conn, &settings.filter)
            .await
            .unwrap()
        {
            tracker.insert(d);
        }
        let mut dec = source_mysql::replication::Decoder::new(
            info.flavor,
            settings.filter.clone(),
            source_mysql::schema::Collations::default(),
            tracker,
            &from,
        )
        .unwrap();
        let t = Instant::now();
        let mut out = Vec::with_capacity(8192);
        let mut n = 0;
        for ev in &all {
            dec.process(ev, &mut out).unwrap();
            if out.len() >= 8192 {
                n += out.len();
                out.clear();
            }
        }
        n += out.len();
        eprintln!(
            "decode only (round {round}): {n} events in {:.3} s",
            t.elapsed().as_secs_f64()
        );
    }
    let t = Instant::now();
    let mut src = source(&db.name, "bench_split2", "snapshot: never\n");
    src.start(Some(start.clone())).await.unwrap();
    eprintln!("start: {:.3} s", t.elapsed().as_secs_f64());
    db.drop().await;
}
