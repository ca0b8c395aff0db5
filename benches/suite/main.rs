//! The end-to-end benchmark suite of `cdc` (issue 8).
//!
//! ```sh
//! scripts/bench.sh [part ...]                 # services up, release build, run, table + JSON
//! cargo bench --bench suite -- [part ...]     # the same, services already up
//! ```
//!
//! Every figure runs the real release `cdc` binary as a child process on a generated YAML
//! config, times it from the spawn, polls its `/metrics` endpoint (`cdc_events_total`) every
//! 5 ms to see when the last event is durable, stops it with SIGTERM and takes its peak RSS and
//! CPU seconds from `wait4`. Each figure is the median of `CDC_BENCH_RUNS` (3) runs; ceilings run
//! in the same rounds, interleaved with cdc's runs, so that drift hits both.
//!
//! Parts (default: all): `pg-insert pg-update pg-wide pg-latency pg-snapshot pg-bigtxn
//! pg-transforms mysql-insert mysql-update mysql-wide mysql-latency mysql-snapshot
//! mysql-bigtxn`; groups `pg`, `mysql`, `drain`, `latency`, `snapshot`, `bigtxn`, `all`.
//!
//! Environment (defaults in brackets): `CDC_BENCH_RUNS` [3], `CDC_BENCH_TXNS` [2000],
//! `CDC_BENCH_ROWS_PER_TXN` [100], `CDC_BENCH_WIDE_TXNS` [2000, 10 rows of ~4 KB each],
//! `CDC_BENCH_SNAPSHOT_ROWS` [1000000], `CDC_BENCH_BIG_ROWS` [2000000 rows in one transaction],
//! `CDC_BENCH_BIG_RUNS` [1], `CDC_BENCH_LATENCY_SECS` [20 per run],
//! `CDC_BENCH_LATENCY_RUNS` [3], `CDC_BENCH_RATE` [2000 transactions/s],
//! `CDC_BENCH_SNAPSHOT_KAFKA` [1: also snapshot into Kafka], `CDC_BENCH_SNAPSHOT_KAFKA_RUNS` [1],
//! `CDC_BENCH_PURGE_BINLOGS` [1], `CDC_BENCH_KEEP` [0: keep work files]; for experiments:
//! `CDC_BENCH_SINKS` [file,null,kafka], `CDC_BENCH_CEILINGS` [1], `CDC_BENCH_CDC_YAML` (extra
//! top-level YAML appended to every cdc config, e.g. `pipeline: { max_in_flight_bytes: N }`),
//! `CDC_TEST_PG_URL`, `CDC_TEST_MYSQL_URL`, `CDC_TEST_KAFKA_BROKERS` (from `scripts/services.sh`).
//!
//! Results: a table on stdout, and JSON in `target/bench/<UTC time>-<git sha>.json` and
//! `target/bench/latest.json`.

mod bigtxn;
mod drain;
mod kafka;
mod mysql;
mod pg;
mod proc;
mod report;
mod transforms;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::drain::{SinkKind, Workload};
use crate::proc::{Cdc, Usage};
use crate::report::{median, Figure};

/// Longest wait for a quiet machine before each timed run.
pub const SETTLE: Duration = Duration::from_secs(30);

const PARTS: &[&str] = &[
    "pg-insert",
    "pg-update",
    "pg-wide",
    "pg-latency",
    "pg-snapshot",
    "pg-bigtxn",
    "pg-transforms",
    "mysql-insert",
    "mysql-update",
    "mysql-wide",
    "mysql-latency",
    "mysql-snapshot",
    "mysql-bigtxn",
];

/// Settings and shared paths of a suite run.
pub struct Env {
    pub pg_url: String,
    pub mysql_url: String,
    pub brokers: String,
    pub bin: PathBuf,
    pub work: PathBuf,
    /// Prefix of every database, slot, pipeline and topic name of this run.
    pub tag: String,
    pub runs: usize,
    pub txns: u64,
    pub rows_per_txn: u64,
    pub wide_txns: u64,
    pub snapshot_rows: u64,
    /// Rows of the one transaction of the `*-bigtxn` parts (`CDC_BENCH_BIG_ROWS`).
    pub big_rows: u64,
    /// Runs of the `*-bigtxn` parts (`CDC_BENCH_BIG_RUNS`).
    pub big_runs: usize,
    pub latency_secs: f64,
    pub latency_runs: usize,
    pub rate: u64,
    pub snapshot_kafka: bool,
    pub snapshot_kafka_runs: usize,
    pub purge: bool,
    pub keep: bool,
    /// Sinks of the drain parts (`CDC_BENCH_SINKS`, default `file,null,kafka`).
    pub sinks: Vec<SinkKind>,
    /// Run the ceilings (`CDC_BENCH_CEILINGS`, default 1; 0 for quick experiments).
    pub ceilings: bool,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        eprintln!("suite: {name} is not set: run `eval \"$(scripts/services.sh up)\"` or scripts/bench.sh");
        std::process::exit(2)
    })
}

fn expand(args: &[String]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    let wanted: Vec<&str> = if args.is_empty() {
        vec!["all"]
    } else {
        args.iter().map(String::as_str).collect()
    };
    for a in wanted {
        let matched: Vec<&'static str> = PARTS
            .iter()
            .copied()
            .filter(|p| match a {
                "all" => true,
                "pg" | "postgres" => p.starts_with("pg-"),
                "mysql" | "mariadb" => p.starts_with("mysql-"),
                "drain" => p.ends_with("-insert") || p.ends_with("-update") || p.ends_with("-wide"),
                "latency" => p.ends_with("-latency"),
                "snapshot" => p.ends_with("-snapshot"),
                "bigtxn" => p.ends_with("-bigtxn"),
                other => *p == other,
            })
            .collect();
        if matched.is_empty() {
            eprintln!(
                "suite: unknown part {a:?}; parts: {}; groups: all pg mysql drain latency snapshot bigtxn",
                PARTS.join(" ")
            );
            std::process::exit(2);
        }
        for m in matched {
            if !out.contains(&m) {
                out.push(m);
            }
        }
    }
    // Keep the canonical order (PostgreSQL first, drains before latency and snapshot).
    out.sort_by_key(|p| PARTS.iter().position(|q| q == p));
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this target without it,
    // and must not start a several-minute benchmark that needs services.
    if !args.iter().any(|a| a == "--bench") {
        println!("suite: the end-to-end benchmark runs under `cargo bench --bench suite` (scripts/bench.sh); skipped");
        return;
    }
    let parts = expand(
        &args
            .iter()
            .filter(|a| !a.starts_with("--"))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(parts));
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn git(args: &[&str]) -> String {
    std::process::Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// `YYYYMMDDTHHMMSSZ` and ISO-8601 of now, UTC.
fn utc_now() -> (String, String) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (h, mi, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    (
        format!("{y:04}{m:02}{d:02}T{h:02}{mi:02}{s:02}Z"),
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"),
    )
}

fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_default();
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": model,
        "memory_gib": mem_kib as f64 / 1024.0 / 1024.0,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
    })
}

/// Other compilers or test runs would distort every figure: wait for them (up to 10 minutes).
async fn wait_for_quiet() {
    let busy = || {
        std::process::Command::new("pgrep")
            .args(["-f", "rustc |cargo test|cargo build"])
            .output()
            .map(|o| !o.stdout.is_empty())
            .unwrap_or(false)
    };
    let t = Instant::now();
    let mut said = false;
    while busy() && t.elapsed() < Duration::from_secs(600) {
        if !said {
            eprintln!("suite: a cargo build or test is running; waiting for it to finish");
            said = true;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    if busy() {
        eprintln!("suite: WARNING: builds still running; figures will be distorted");
    }
}

async fn run(parts: Vec<&'static str>) {
    let env = Env {
        pg_url: if parts.iter().any(|p| p.starts_with("pg-")) {
            required("CDC_TEST_PG_URL")
        } else {
            String::new()
        },
        mysql_url: if parts.iter().any(|p| p.starts_with("mysql-")) {
            required("CDC_TEST_MYSQL_URL")
        } else {
            String::new()
        },
        brokers: required("CDC_TEST_KAFKA_BROKERS"),
        bin: PathBuf::from(env!("CARGO_BIN_EXE_cdc")),
        work: target_dir()
            .join("bench")
            .join(format!("work-{}", std::process::id())),
        tag: format!("cdcb_{}", std::process::id()),
        runs: env_or("CDC_BENCH_RUNS", 3usize).max(1),
        txns: env_or("CDC_BENCH_TXNS", 2000u64).max(1),
        rows_per_txn: env_or("CDC_BENCH_ROWS_PER_TXN", 100u64).max(10),
        wide_txns: env_or("CDC_BENCH_WIDE_TXNS", 2000u64).max(1),
        snapshot_rows: env_or("CDC_BENCH_SNAPSHOT_ROWS", 1_000_000u64).max(1),
        big_rows: env_or("CDC_BENCH_BIG_ROWS", 2_000_000u64).max(1),
        big_runs: env_or("CDC_BENCH_BIG_RUNS", 1usize).max(1),
        latency_secs: env_or("CDC_BENCH_LATENCY_SECS", 20.0f64).max(1.0),
        latency_runs: env_or("CDC_BENCH_LATENCY_RUNS", 3usize).max(1),
        rate: env_or("CDC_BENCH_RATE", 2000u64).max(1),
        snapshot_kafka: env_or("CDC_BENCH_SNAPSHOT_KAFKA", 1u8) == 1,
        snapshot_kafka_runs: env_or("CDC_BENCH_SNAPSHOT_KAFKA_RUNS", 1usize),
        purge: env_or("CDC_BENCH_PURGE_BINLOGS", 1u8) == 1,
        keep: env_or("CDC_BENCH_KEEP", 0u8) == 1,
        sinks: std::env::var("CDC_BENCH_SINKS")
            .unwrap_or_else(|_| "file,null,kafka".into())
            .split(',')
            .filter_map(|s| match s.trim() {
                "file" => Some(SinkKind::File),
                "null" => Some(SinkKind::Null),
                "kafka" => Some(SinkKind::Kafka),
                _ => None,
            })
            .collect(),
        ceilings: env_or("CDC_BENCH_CEILINGS", 1u8) == 1,
    };
    std::fs::create_dir_all(&env.work).unwrap();
    wait_for_quiet().await;
    let started = Instant::now();
    let load_before = proc::loadavg();
    eprintln!(
        "suite: parts {}; {} runs each; cdc = {}; load average {load_before:.2}",
        parts.join(" "),
        env.runs,
        env.bin.display()
    );
    let mut figures: Vec<Figure> = Vec::new();
    let mut infos: Vec<Value> = Vec::new();
    let mut part_secs = serde_json::Map::new();

    let pg_parts: Vec<&str> = parts
        .iter()
        .copied()
        .filter(|p| p.starts_with("pg-"))
        .collect();
    if !pg_parts.is_empty() {
        let pg = pg::Pg::open(&env).await;
        for part in &pg_parts {
            let t = Instant::now();
            let (f, i) = match *part {
                "pg-insert" => pg::drain(&env, &pg, Workload::Insert).await,
                "pg-update" => pg::drain(&env, &pg, Workload::Update).await,
                "pg-wide" => pg::drain(&env, &pg, Workload::Wide).await,
                "pg-latency" => pg::latency(&env, &pg).await,
                "pg-snapshot" => pg::snapshot(&env, &pg).await,
                "pg-bigtxn" => pg::bigtxn(&env, &pg).await,
                "pg-transforms" => transforms::drain(&env, &pg).await,
                _ => unreachable!(),
            };
            part_secs.insert(part.to_string(), json!(t.elapsed().as_secs_f64()));
            figures.extend(f);
            infos.push(i);
        }
        pg.cleanup().await;
    }
    let my_parts: Vec<&str> = parts
        .iter()
        .copied()
        .filter(|p| p.starts_with("mysql-"))
        .collect();
    if !my_parts.is_empty() {
        let mut my = mysql::My::open(&env).await;
        for part in &my_parts {
            let t = Instant::now();
            let (f, i) = match *part {
                "mysql-insert" => mysql::drain(&env, &mut my, Workload::Insert).await,
                "mysql-update" => mysql::drain(&env, &mut my, Workload::Update).await,
                "mysql-wide" => mysql::drain(&env, &mut my, Workload::Wide).await,
                "mysql-latency" => mysql::latency(&env, &mut my).await,
                "mysql-snapshot" => mysql::snapshot(&env, &mut my).await,
                "mysql-bigtxn" => mysql::bigtxn(&env, &mut my).await,
                _ => unreachable!(),
            };
            part_secs.insert(part.to_string(), json!(t.elapsed().as_secs_f64()));
            figures.extend(f);
            infos.push(i);
        }
        my.cleanup(env.purge).await;
    }
    if !env.keep {
        let _ = std::fs::remove_dir_all(&env.work);
    }

    let load_after = proc::loadavg();
    let total = started.elapsed().as_secs_f64();
    let targets = targets(&figures);
    let table = report::table(&figures);
    println!();
    println!("{table}");
    println!("Targets (issue 8):");
    for t in &targets {
        println!(
            "  [{}] {}",
            if t["met"].as_bool() == Some(true) {
                "met   "
            } else {
                "MISSED"
            },
            t["text"].as_str().unwrap_or_default()
        );
    }
    println!(
        "\nmedians of {} runs; load average {load_before:.2} before, {load_after:.2} after; {:.0} s in all",
        env.runs, total
    );

    let (stamp, iso) = utc_now();
    let sha = git(&["rev-parse", "--short", "HEAD"]);
    let dirty = !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty();
    let doc = json!({
        "suite": "cdc end-to-end benchmarks (issue 8)",
        "date": iso,
        "commit": sha,
        "dirty": dirty,
        "parts": parts,
        "machine": machine(),
        "load_average": {"before": load_before, "after": load_after},
        "settings": {
            "runs": env.runs, "transactions": env.txns, "rows_per_transaction": env.rows_per_txn,
            "wide_transactions": env.wide_txns, "snapshot_rows": env.snapshot_rows,
            "latency_secs_per_run": env.latency_secs, "latency_runs": env.latency_runs,
            "rate_per_s": env.rate, "kafka_partitions": kafka::PARTITIONS,
            "snapshot_kafka_runs": if env.snapshot_kafka { env.snapshot_kafka_runs } else { 0 },
        },
        "seconds": {"total": total, "parts": part_secs},
        "figures": figures.iter().map(Figure::to_json).collect::<Vec<_>>(),
        "targets": targets,
        "parts_info": infos,
        "table": table,
    });
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    let name = format!(
        "{stamp}-{}{}.json",
        if sha.is_empty() { "nogit" } else { &sha },
        if dirty { "-dirty" } else { "" }
    );
    let text = serde_json::to_string_pretty(&doc).unwrap();
    std::fs::write(dir.join(&name), &text).unwrap();
    std::fs::write(dir.join("latest.json"), &text).unwrap();
    println!("results: {}", dir.join(name).display());
}

/// Every target of issue 8 that the figures measure, met or missed.
fn targets(figures: &[Figure]) -> Vec<Value> {
    let mut out = Vec::new();
    for f in figures {
        if let (Some(t), Some(met)) = (&f.target, f.met) {
            let value = match (f.ratio, f.unit) {
                (Some(r), _) => {
                    format!("{:.0}% of {}", r * 100.0, f.vs.clone().unwrap_or_default())
                }
                (None, unit) => format!("{} {unit}", report::num(f.median())),
            };
            out.push(json!({
                "text": format!("{} {}: {t} (measured {value})", f.part, f.label),
                "met": met,
            }));
        }
    }
    // The big-transaction parts have a target of their own (`bigtxn::RSS_TARGET_MIB`).
    let rss: Vec<&Figure> = figures
        .iter()
        .filter(|f| f.rss_mib.is_some() && !f.part.ends_with("-bigtxn"))
        .collect();
    if let Some(worst) = rss
        .iter()
        .max_by(|a, b| a.rss_mib.unwrap().total_cmp(&b.rss_mib.unwrap()))
    {
        let peak = worst.rss_mib.unwrap();
        out.push(json!({
            "text": format!(
                "peak RSS < 100 MiB in every cdc run (highest {peak:.0} MiB: {} {})",
                worst.part, worst.label
            ),
            "met": peak < 100.0,
        }));
    }
    out
}

/// One `initial_only` snapshot run: spawn to exit.
pub struct SnapRun {
    pub secs: f64,
    pub first_s: Option<f64>,
    pub usage: Usage,
    pub out_bytes: u64,
}

pub async fn snapshot_run(env: &Env, name: &str, source_yaml: &str, sink: SinkKind) -> SnapRun {
    let dir = env.work.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("events.jsonl");
    let sink_yaml = match sink {
        SinkKind::File => format!("sink: {{ type: file, path: \"{}\" }}\n", out.display()),
        SinkKind::Null => "sink: { type: stdout }\n".to_string(),
        SinkKind::Kafka => format!(
            "sink: {{ type: kafka, brokers: \"{}\", headers: false, create_topics: {{ partitions: {} }} }}\n",
            env.brokers,
            kafka::PARTITIONS
        ),
    };
    let yaml = format!(
        "name: {name}\n{source_yaml}{sink_yaml}offsets: {{ type: file, path: \"{}\" }}\n",
        dir.join("offsets").display()
    );
    let mut cdc = Cdc::spawn(&env.bin, &dir, &yaml, None);
    let (first_s, secs, usage) = cdc.wait_exit(Duration::from_secs(900)).await;
    let out_bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    if !env.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    SnapRun {
        secs,
        first_s,
        usage,
        out_bytes,
    }
}

/// The `cdc` runs of a snapshot part, by sink.
#[derive(Default)]
pub struct SnapRuns {
    pub file: Vec<SnapRun>,
    pub null: Vec<SnapRun>,
    pub kafka: Vec<SnapRun>,
}

/// One round of a snapshot part's `cdc` runs: into the file always, into `/dev/null` when the
/// `null` sink is selected, into Kafka for the first `snapshot_kafka_runs` rounds. `source_yaml`
/// gives the `source:` section for a run's pipeline name; `prefix` names the runs.
pub async fn snapshot_round(
    env: &Env,
    part: &str,
    round: usize,
    prefix: &str,
    source_yaml: impl Fn(&str) -> String,
    runs: &mut SnapRuns,
) {
    let kafka = env.snapshot_kafka && round < env.snapshot_kafka_runs;
    for (sink, suffix, wanted) in [
        (SinkKind::File, "", true),
        (SinkKind::Null, "n", env.sinks.contains(&SinkKind::Null)),
        (SinkKind::Kafka, "k", kafka),
    ] {
        if !wanted {
            continue;
        }
        let name = format!("{}_{prefix}{suffix}{round}", env.tag);
        proc::settle(SETTLE).await;
        let r = snapshot_run(env, &name, &source_yaml(&name), sink).await;
        eprintln!(
            "[{part}] round {round}: cdc -> {} {:.3} s, RSS {:.0} MiB, CPU {:.2} s",
            sink.label(),
            r.secs,
            r.usage.rss_mib,
            r.usage.cpu_s
        );
        match sink {
            SinkKind::File => runs.file.push(r),
            SinkKind::Null => runs.null.push(r),
            SinkKind::Kafka => runs.kafka.push(r),
        }
    }
}

pub fn snapshot_figures(
    part: &str,
    ceiling: &str,
    rows: u64,
    ceiling_secs: &[f64],
    runs: &SnapRuns,
) -> Vec<Figure> {
    let mut out = vec![Figure::new(
        part,
        format!("{ceiling} (ceiling)"),
        "rows/s",
        ceiling_secs.iter().map(|s| rows as f64 / s).collect(),
    )
    .detail("secs", ceiling_secs.to_vec())];
    let csecs = median(ceiling_secs);
    for (label, runs, target) in [
        ("cdc initial_only → file (fsync)", &runs.file, true),
        (
            "cdc initial_only → /dev/null (stdout sink)",
            &runs.null,
            false,
        ),
        ("cdc initial_only → kafka", &runs.kafka, false),
    ] {
        if runs.is_empty() {
            continue;
        }
        let secs: Vec<f64> = runs.iter().map(|r| r.secs).collect();
        let mut f = Figure::new(
            part,
            label,
            "rows/s",
            secs.iter().map(|s| rows as f64 / s).collect(),
        );
        let ratio = csecs / median(&secs);
        f.vs = Some(ceiling.to_string());
        f.ratio = Some(ratio);
        if target {
            f.target = Some("≥70%".into());
            f.met = Some(ratio >= 0.70);
        }
        f.rss_mib = runs.iter().map(|r| r.usage.rss_mib).reduce(f64::max);
        f.cpu_s = Some(median(
            &runs.iter().map(|r| r.usage.cpu_s).collect::<Vec<_>>(),
        ));
        let firsts: Vec<f64> = runs.iter().filter_map(|r| r.first_s).collect();
        if !firsts.is_empty() {
            f.first_s = Some(median(&firsts));
        }
        f = f.detail("secs", secs).detail("rows", rows).detail(
            "rss_mib",
            runs.iter().map(|r| r.usage.rss_mib).collect::<Vec<_>>(),
        );
        if let Some(r) = runs.iter().find(|r| r.out_bytes > 0) {
            f = f.detail("out_mb", r.out_bytes as f64 / 1e6);
        }
        out.push(f);
    }
    out
}

/// p50, p99 (with the < 50 ms target when `target`) and max figures, in ms.
pub fn latency_figures(
    part: &str,
    label: &str,
    p50: &[f64],
    p99: &[f64],
    max: &[f64],
    target: bool,
) -> Vec<Figure> {
    let mut f99 = Figure::new(part, format!("{label} p99"), "ms", p99.to_vec());
    if target {
        f99.target = Some("p99 < 50 ms".into());
        f99.met = Some(f99.median() < 50.0);
    }
    vec![
        Figure::new(part, format!("{label} p50"), "ms", p50.to_vec()),
        f99,
        Figure::new(part, format!("{label} max"), "ms", max.to_vec()),
    ]
}
