//! What every drain part shares: the workloads, one cdc run into a sink, the broker ceiling, and
//! the figures with their ratios and targets.

use std::time::Duration;

use serde_json::json;

use crate::kafka::{self, Shape};
use crate::proc::{Cdc, Usage};
use crate::report::{median, Figure};
use crate::Env;

/// The drain workloads (the same for both databases).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// `txns` transactions of `rows_per_txn` inserts, ~230 bytes a row.
    Insert,
    /// `txns` transactions of 80% updates, 10% inserts, 10% deletes of ~230-byte rows.
    Update,
    /// `wide_txns` transactions of 10 inserts of ~4 KB rows (a 4,096-character text of hex
    /// digests: poorly compressible, so PostgreSQL stores it out of line in TOAST).
    Wide,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Insert => "insert",
            Workload::Update => "update",
            Workload::Wide => "wide",
        }
    }

    pub fn table(self) -> &'static str {
        match self {
            Workload::Insert => "ins",
            Workload::Update => "upd",
            Workload::Wide => "wide",
        }
    }

    pub fn txns(self, env: &Env) -> u64 {
        match self {
            Workload::Wide => env.wide_txns,
            _ => env.txns,
        }
    }

    pub fn rows_per_txn(self, env: &Env) -> u64 {
        match self {
            Workload::Wide => 10,
            _ => env.rows_per_txn,
        }
    }

    /// (updates, inserts, deletes) per transaction.
    pub fn mix(self, env: &Env) -> (u64, u64, u64) {
        let n = self.rows_per_txn(env);
        match self {
            Workload::Update => {
                let d = (n / 10).max(1);
                (n - 2 * d, d, d)
            }
            _ => (0, n, 0),
        }
    }

    pub fn events(self, env: &Env) -> u64 {
        self.txns(env) * self.rows_per_txn(env)
    }

    /// Kafka records beyond the events: a tombstone after each delete.
    pub fn tombstones(self, env: &Env) -> u64 {
        self.txns(env) * self.mix(env).2
    }

    /// Rows present before the backlog (the update mix updates and deletes them).
    pub fn prepopulate(self, _env: &Env) -> u64 {
        match self {
            Workload::Update => 20_000,
            _ => 0,
        }
    }

    /// Ids touched by transaction `t` of the update mix: (first updated id, count), (first
    /// inserted id, count), (first deleted id, count). Updated ids cycle over the first part of
    /// the prepopulated rows; deleted ids are the rows the previous transaction inserted (the
    /// first transaction deletes the last prepopulated ones).
    pub fn update_ids(self, env: &Env, t: u64) -> [(u64, u64); 3] {
        let (u, i, d) = self.mix(env);
        let pre = self.prepopulate(env);
        let span = pre - 10 * d;
        let first_u = (t * u) % span.max(1) + 1;
        let first_i = 1_000_000_000 + t * i + 1;
        let first_d = if t == 0 {
            pre - d + 1
        } else {
            1_000_000_000 + (t - 1) * i + 1
        };
        [(first_u, u.min(span)), (first_i, i), (first_d, d)]
    }
}

/// Where a cdc run writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkKind {
    /// The `file` sink (fsync before acknowledging, the default).
    File,
    /// The `stdout` sink into /dev/null: no durable write, shows the cost of the rest.
    Null,
    /// The `kafka` sink (idempotent producer, `acks=all`, `headers: false`).
    Kafka,
}

impl SinkKind {
    pub fn label(self) -> &'static str {
        match self {
            SinkKind::File => "file",
            SinkKind::Null => "null",
            SinkKind::Kafka => "kafka",
        }
    }
}

/// One cdc run draining a backlog.
#[derive(Clone, Debug, Default)]
pub struct CdcRun {
    pub secs: f64,
    pub first_s: f64,
    pub usage: Usage,
    /// Bytes the file sink wrote.
    pub out_bytes: u64,
    /// Average key and value bytes of a line of the file sink's output.
    pub avg_key: f64,
    pub avg_value: f64,
}

/// Run `cdc` with `source_yaml` into `sink` until `events` are durable (timed from the spawn),
/// then SIGTERM it. `position`: stored first with `cdc offsets set`.
pub async fn cdc_drain(
    env: &Env,
    name: &str,
    source_yaml: &str,
    sink: SinkKind,
    events: u64,
    position: Option<&str>,
) -> CdcRun {
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
    if let Some(pos) = position {
        let cfg = dir.join("offsets.yaml");
        std::fs::write(&cfg, &yaml).unwrap();
        let st = std::process::Command::new(&env.bin)
            .args(["offsets", "set", "-c"])
            .arg(&cfg)
            .args(["--position", pos])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "cdc offsets set failed");
    }
    let stdout = (sink == SinkKind::Null).then(|| std::path::Path::new("/dev/null"));
    let mut cdc = Cdc::spawn(&env.bin, &dir, &yaml, stdout);
    let (first_s, secs) = cdc.wait_events(events, Duration::from_secs(600)).await;
    let usage = cdc.stop().await;
    let mut run = CdcRun {
        secs,
        first_s,
        usage,
        ..Default::default()
    };
    if sink == SinkKind::File {
        run.out_bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
        let (k, v) = line_sizes(&out);
        run.avg_key = k;
        run.avg_value = v;
    }
    if !env.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    run
}

/// Average key and value sizes of the file sink's `{"key":K,"value":V}` lines (values of
/// deletes included; a tombstone is a key with a null value).
fn line_sizes(path: &std::path::Path) -> (f64, f64) {
    let Ok(text) = std::fs::read(path) else {
        return (0.0, 0.0);
    };
    let (mut n, mut k, mut v) = (0usize, 0usize, 0usize);
    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let sep = b",\"value\":";
        if let Some(at) = line.windows(sep.len()).position(|w| w == sep) {
            n += 1;
            k += at.saturating_sub(7);
            v += line.len().saturating_sub(at + sep.len() + 1);
        }
    }
    if n == 0 {
        return (0.0, 0.0);
    }
    (k as f64 / n as f64, v as f64 / n as f64)
}

/// The broker ceiling for a workload's Kafka records: as many messages of the same sizes.
pub async fn broker_ceiling(
    env: &Env,
    topic: &str,
    w: Workload,
    key: f64,
    value: f64,
) -> (f64, f64, u64) {
    let events = w.events(env);
    let tombstones = w.tombstones(env);
    let shapes = [
        Shape {
            count: events,
            key_len: key.round() as usize,
            value_len: value.round().max(1.0) as usize,
        },
        Shape {
            count: tombstones,
            key_len: key.round() as usize,
            value_len: 0,
        },
    ];
    let (secs, cpu) = kafka::plain_producer(&env.brokers, topic, &shapes).await;
    (secs, cpu, events + tombstones)
}

/// The measurements of one drain part, gathered per round.
#[derive(Default)]
pub struct DrainResults {
    /// Source ceiling seconds per round.
    pub ceiling_secs: Vec<f64>,
    /// Bytes the source ceiling read (pgoutput stream, binlog range).
    pub source_bytes: u64,
    pub broker_secs: Vec<f64>,
    /// CPU seconds of the plain producer (librdkafka) per round.
    pub broker_cpu: Vec<f64>,
    pub broker_msgs: u64,
    pub file: Vec<CdcRun>,
    pub null: Vec<CdcRun>,
    pub kafka: Vec<CdcRun>,
    /// A reference that is not a ceiling (label, seconds per round): another tool that decodes
    /// every row, for context when the ceiling only copies bytes.
    pub reference: Option<(String, Vec<f64>)>,
}

impl DrainResults {
    /// Keep a `cdc` run under its sink, and report it.
    pub fn record(&mut self, part: &str, round: usize, sink: SinkKind, run: CdcRun) {
        eprintln!(
            "[{part}] round {round}: cdc -> {} {:.3} s (first event {:.3} s), peak RSS {:.0} MiB, CPU {:.2} s",
            sink.label(),
            run.secs,
            run.first_s,
            run.usage.rss_mib,
            run.usage.cpu_s
        );
        match sink {
            SinkKind::File => self.file.push(run),
            SinkKind::Null => self.null.push(run),
            SinkKind::Kafka => self.kafka.push(run),
        }
    }

    /// The broker ceiling of one round, into `topic`, with the key and value sizes of the first
    /// file run (nothing when ceilings are off or there is no file run).
    pub async fn broker_round(
        &mut self,
        env: &Env,
        part: &str,
        round: usize,
        topic: &str,
        w: Workload,
    ) {
        let Some((key, value)) = self
            .file
            .first()
            .filter(|_| env.ceilings)
            .map(|f| (f.avg_key, f.avg_value))
        else {
            return;
        };
        crate::proc::settle(crate::SETTLE).await;
        let (secs, cpu, msgs) = broker_ceiling(env, topic, w, key, value).await;
        self.broker_secs.push(secs);
        self.broker_cpu.push(cpu);
        self.broker_msgs = msgs;
        eprintln!(
            "[{part}] round {round}: plain producer {msgs} messages in {secs:.3} s, CPU {cpu:.2} s"
        );
    }
}

fn cdc_figure(part: &str, label: &str, runs: &[CdcRun], events: u64, source_bytes: u64) -> Figure {
    let rates: Vec<f64> = runs.iter().map(|r| events as f64 / r.secs).collect();
    let mut f = Figure::new(part, label, "ev/s", rates);
    f.rss_mib = runs.iter().map(|r| r.usage.rss_mib).reduce(f64::max);
    f.cpu_s = Some(median(
        &runs.iter().map(|r| r.usage.cpu_s).collect::<Vec<_>>(),
    ));
    f.first_s = Some(median(&runs.iter().map(|r| r.first_s).collect::<Vec<_>>()));
    let secs: Vec<f64> = runs.iter().map(|r| r.secs).collect();
    let med = median(&secs);
    let cpu = f.cpu_s.unwrap_or(0.0);
    f = f
        .detail("secs", secs.clone())
        .detail("events", events)
        .detail("source_mb_per_s", source_bytes as f64 / 1e6 / med)
        .detail("cpu_us_per_event", cpu * 1e6 / events as f64)
        .detail(
            "rss_mib",
            runs.iter().map(|r| r.usage.rss_mib).collect::<Vec<_>>(),
        )
        .detail(
            "cpu_s_runs",
            runs.iter().map(|r| r.usage.cpu_s).collect::<Vec<_>>(),
        );
    if let Some(r) = runs.iter().find(|r| r.out_bytes > 0) {
        f = f
            .detail("out_mb", r.out_bytes as f64 / 1e6)
            .detail("out_mb_per_s", r.out_bytes as f64 / 1e6 / med);
    }
    f
}

/// Figures of a drain part: the two ceilings, then cdc into each sink with its ratio and target.
pub fn figures(
    env: &Env,
    part: &str,
    ceiling_label: &str,
    w: Workload,
    r: &DrainResults,
) -> Vec<Figure> {
    let events = w.events(env);
    let mut out = Vec::new();
    let src_secs = median(&r.ceiling_secs);
    out.push(
        Figure::new(
            part,
            format!("{ceiling_label} (source ceiling)"),
            "ev/s",
            r.ceiling_secs.iter().map(|s| events as f64 / s).collect(),
        )
        .detail("secs", r.ceiling_secs.clone())
        .detail("events", events)
        .detail("source_mb", r.source_bytes as f64 / 1e6)
        .detail("source_mb_per_s", r.source_bytes as f64 / 1e6 / src_secs),
    );
    if let Some((label, secs)) = r.reference.as_ref().filter(|(_, s)| !s.is_empty()) {
        out.push(
            Figure::new(
                part,
                format!("{label} (reference)"),
                "ev/s",
                secs.iter().map(|s| events as f64 / s).collect(),
            )
            .detail("secs", secs.clone()),
        );
    }
    let broker_secs = median(&r.broker_secs);
    if !r.broker_secs.is_empty() {
        let avg = r
            .file
            .first()
            .map(|f| f.avg_key + f.avg_value)
            .unwrap_or(0.0);
        out.push(
            Figure::new(
                part,
                "plain producer (broker ceiling)",
                "msg/s",
                r.broker_secs
                    .iter()
                    .map(|s| r.broker_msgs as f64 / s)
                    .collect(),
            )
            .detail("secs", r.broker_secs.clone())
            .detail("producer_cpu_s", r.broker_cpu.clone())
            .detail("messages", r.broker_msgs)
            .detail("avg_message_bytes", avg),
        );
    }
    let ratio_to = |runs: &[CdcRun], ceiling_secs: f64| {
        let secs = median(&runs.iter().map(|r| r.secs).collect::<Vec<_>>());
        ceiling_secs / secs
    };
    if !r.file.is_empty() {
        let mut f = cdc_figure(part, "cdc → file (fsync)", &r.file, events, r.source_bytes);
        let ratio = ratio_to(&r.file, src_secs);
        f.vs = Some(ceiling_label.to_string());
        f.ratio = Some(ratio);
        f.target = Some("≥70%".into());
        f.met = Some(ratio >= 0.70);
        out.push(f);
    }
    if !r.null.is_empty() {
        let mut f = cdc_figure(
            part,
            "cdc → /dev/null (stdout sink)",
            &r.null,
            events,
            r.source_bytes,
        );
        f.vs = Some(ceiling_label.to_string());
        f.ratio = Some(ratio_to(&r.null, src_secs));
        out.push(f);
    }
    if !r.kafka.is_empty() {
        let mut f = cdc_figure(part, "cdc → kafka", &r.kafka, events, r.source_bytes);
        // The lower ceiling is the one that takes longer for this backlog.
        let (bound, label) = if broker_secs > src_secs {
            (broker_secs, "broker")
        } else {
            (src_secs, ceiling_label)
        };
        let ratio = ratio_to(&r.kafka, bound);
        f.vs = Some(format!("min ceiling ({label})"));
        f.ratio = Some(ratio);
        f.target = Some("≥70%".into());
        f.met = Some(ratio >= 0.70);
        f = f.detail(
            "msgs_per_s",
            r.broker_msgs as f64 / median(&r.kafka.iter().map(|r| r.secs).collect::<Vec<_>>()),
        );
        out.push(f);
    }
    out
}

pub fn workload_json(env: &Env, w: Workload) -> serde_json::Value {
    json!({
        "workload": w.name(),
        "transactions": w.txns(env),
        "rows_per_transaction": w.rows_per_txn(env),
        "events": w.events(env),
        "mix_updates_inserts_deletes": [w.mix(env).0, w.mix(env).1, w.mix(env).2],
        "prepopulated_rows": w.prepopulate(env),
    })
}
