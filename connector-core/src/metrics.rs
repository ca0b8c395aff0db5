//! Pipeline metrics: names in one place, updated per batch, rendered in Prometheus text format.
//!
//! Labels have few distinct values (table, operation, error kind); positions are exposed as the
//! single series of an info metric.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Counter or gauge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations counted into buckets.
    Histogram,
}

/// A metric's name, help text and kind.
#[derive(Clone, Copy, Debug)]
pub struct MetricDef {
    /// Prometheus name.
    pub name: &'static str,
    /// One-line description.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: MetricKind,
}

macro_rules! metric {
    ($id:ident, $name:literal, $kind:ident, $help:literal) => {
        #[doc = $help]
        pub const $id: MetricDef = MetricDef {
            name: $name,
            help: $help,
            kind: MetricKind::$kind,
        };
    };
}

metric!(
    EVENTS,
    "cdc_events_total",
    Counter,
    "Change events made durable by the sink, by table and operation."
);
metric!(
    BYTES,
    "cdc_event_bytes_total",
    Counter,
    "Estimated in-memory bytes of events made durable."
);
metric!(
    BATCHES,
    "cdc_batches_total",
    Counter,
    "Batches made durable by the sink."
);
metric!(
    ERRORS,
    "cdc_errors_total",
    Counter,
    "Pipeline errors, by kind."
);
metric!(
    RESTARTS,
    "cdc_restarts_total",
    Counter,
    "Pipeline restarts after retryable errors."
);
metric!(
    TRANSFORM_DROPPED,
    "cdc_transform_dropped_events_total",
    Counter,
    "Events dropped by transforms (filter, outbox); their positions still advance."
);
metric!(
    IN_FLIGHT_BYTES,
    "cdc_in_flight_bytes",
    Gauge,
    "Bytes of events between source and sink not yet durable."
);
metric!(
    IN_FLIGHT_LIMIT,
    "cdc_in_flight_limit_bytes",
    Gauge,
    "The configured bound on in-flight bytes."
);
metric!(
    DURABLE_POSITION,
    "cdc_durable_position_info",
    Gauge,
    "The last durable position (label `position`)."
);
metric!(
    COMMITTED_POSITION,
    "cdc_committed_position_info",
    Gauge,
    "The last position written to the offset store and released to the source."
);
metric!(
    LAST_EVENT_COMMIT_TS,
    "cdc_last_event_commit_timestamp_seconds",
    Gauge,
    "Commit time of the newest durable event."
);
metric!(
    LAG_SECONDS,
    "cdc_lag_seconds",
    Gauge,
    "Seconds between the commit of the newest durable event and its durability."
);
metric!(
    SNAPSHOT_ROWS,
    "cdc_snapshot_rows_total",
    Counter,
    "Rows read by the initial snapshot, by table."
);
metric!(
    SNAPSHOT_TABLES_DONE,
    "cdc_snapshot_tables_done",
    Gauge,
    "Tables whose snapshot is complete."
);
metric!(
    SNAPSHOT_TABLES_TOTAL,
    "cdc_snapshot_tables_total",
    Gauge,
    "Tables the snapshot covers."
);
metric!(
    SOURCE_LAG_BYTES,
    "cdc_source_lag_bytes",
    Gauge,
    "Bytes of log between the server's current position and the released position."
);
metric!(
    UP,
    "cdc_up",
    Gauge,
    "1 while the pipeline is streaming or snapshotting."
);
metric!(
    COMMIT_TO_DURABLE,
    "cdc_commit_to_durable_seconds",
    Histogram,
    "Time from a change's commit in the source to its durability in the sink (streamed changes)."
);
metric!(
    COMMIT_TO_DURABLE_MAX,
    "cdc_commit_to_durable_max_seconds",
    Gauge,
    "The longest commit-to-durable time seen."
);

metric!(
    INCREMENTAL_TABLES_LEFT,
    "cdc_incremental_snapshot_tables_left",
    Gauge,
    "Tables the running incremental snapshot has still to read, the current one included."
);
metric!(
    INCREMENTAL_CHUNKS,
    "cdc_incremental_snapshot_chunks",
    Gauge,
    "Chunks the running incremental snapshot has completed."
);
metric!(
    INCREMENTAL_ROWS,
    "cdc_incremental_snapshot_rows",
    Gauge,
    "Rows the running incremental snapshot has emitted."
);
metric!(
    INCREMENTAL_ROWS_ESTIMATED,
    "cdc_incremental_snapshot_rows_estimated",
    Gauge,
    "Estimated rows of the table the incremental snapshot is reading, by table."
);
metric!(
    INCREMENTAL_SIGNAL_ERRORS,
    "cdc_incremental_snapshot_signal_errors",
    Gauge,
    "Rejected signals kept in the status (the newest 16)."
);

/// Bucket bounds of [`COMMIT_TO_DURABLE`], in seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0,
];

/// Quantiles of every histogram exported as `<name>_quantile_seconds{quantile=..}` (since start).
pub const EXPORTED_QUANTILES: &[(f64, &str)] =
    &[(0.5, "0.5"), (0.9, "0.9"), (0.99, "0.99"), (0.999, "0.999")];

/// Sub-buckets per power of two of [`FineCounts`]: values are kept within 1/64 (1.6%).
const FINE_SUB: u64 = 64;
/// Powers of two above the exact range: microsecond values up to 2^42 (about 50 days).
const FINE_OCTAVES: u64 = 36;

/// A log-linear histogram of microsecond values (exact below 64 µs, then 64 buckets per power of
/// two), so that quantiles are precise to 1.6% whatever the exported bucket bounds are; 2,368
/// counters, ~19 KiB per histogram metric.
#[derive(Debug, Clone)]
struct FineCounts(Vec<u64>);

impl FineCounts {
    fn new() -> Self {
        FineCounts(vec![0; ((FINE_OCTAVES + 1) * FINE_SUB) as usize])
    }

    fn index(us: u64) -> usize {
        if us < FINE_SUB {
            return us as usize;
        }
        let exp = 63 - u64::from(us.leading_zeros()); // >= 6
        let octave = (exp - 5).min(FINE_OCTAVES);
        let sub = if exp - 5 > FINE_OCTAVES {
            FINE_SUB - 1
        } else {
            (us >> (exp - 6)) & (FINE_SUB - 1)
        };
        (octave * FINE_SUB + sub) as usize
    }

    /// The middle of bucket `i`, in microseconds.
    fn value(i: usize) -> f64 {
        let i = i as u64;
        if i < FINE_SUB {
            return i as f64;
        }
        let (octave, sub) = (i / FINE_SUB, i % FINE_SUB);
        let shift = octave - 1; // bucket width is 2^shift
        let low = (FINE_SUB + sub) << shift;
        low as f64 + ((1u64 << shift) as f64 - 1.0) / 2.0
    }

    fn add(&mut self, seconds: f64, n: u64) {
        let us = (seconds.max(0.0) * 1e6).round() as u64;
        self.0[Self::index(us)] += n;
    }

    /// The `q` quantile (nearest rank), in seconds.
    fn quantile(&self, q: f64, count: u64) -> Option<f64> {
        if count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * count as f64).ceil() as u64).clamp(1, count);
        let mut seen = 0u64;
        for (i, c) in self.0.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Self::value(i) / 1e6);
            }
        }
        None
    }
}

#[derive(Debug, Clone)]
struct Histogram {
    def: MetricDef,
    bounds: &'static [f64],
    counts: Vec<u64>,
    fine: FineCounts,
    sum: f64,
    count: u64,
}

/// `cdc_x_seconds` → `cdc_x_quantile_seconds`.
fn quantile_name(name: &str) -> String {
    match name.strip_suffix("_seconds") {
        Some(base) => format!("{base}_quantile_seconds"),
        None => format!("{name}_quantile"),
    }
}

type Labels = Vec<(&'static str, String)>;
type Series = BTreeMap<&'static str, (MetricDef, BTreeMap<Labels, f64>)>;

/// The metrics of one process.
#[derive(Debug, Default)]
pub struct Metrics {
    series: Mutex<Series>,
    histograms: Mutex<BTreeMap<&'static str, Histogram>>,
}

impl Metrics {
    /// An empty set of metrics.
    pub fn new() -> Self {
        Metrics::default()
    }

    fn update(&self, def: MetricDef, labels: &[(&'static str, &str)], f: impl FnOnce(&mut f64)) {
        let Ok(mut series) = self.series.lock() else {
            return;
        };
        let entry = series
            .entry(def.name)
            .or_insert_with(|| (def, BTreeMap::new()));
        let key: Labels = labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect();
        f(entry.1.entry(key).or_insert(0.0));
    }

    /// Add `by` to a counter.
    pub fn add(&self, def: MetricDef, labels: &[(&'static str, &str)], by: u64) {
        self.update(def, labels, |v| *v += by as f64);
    }

    /// Set a gauge.
    pub fn set(&self, def: MetricDef, labels: &[(&'static str, &str)], value: f64) {
        self.update(def, labels, |v| *v = value);
    }

    /// Set an info metric: its only series carries `labels`, with value 1.
    pub fn set_info(&self, def: MetricDef, labels: &[(&'static str, &str)]) {
        if let Ok(mut series) = self.series.lock() {
            let entry = series
                .entry(def.name)
                .or_insert_with(|| (def, BTreeMap::new()));
            entry.1.clear();
            entry.1.insert(
                labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect(),
                1.0,
            );
        }
    }

    /// The current value of a series, if it exists.
    pub fn get(&self, def: MetricDef, labels: &[(&'static str, &str)]) -> Option<f64> {
        let series = self.series.lock().ok()?;
        let key: Labels = labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect();
        series.get(def.name)?.1.get(&key).copied()
    }

    /// Sum of all series of a metric.
    pub fn total(&self, def: MetricDef) -> f64 {
        self.series
            .lock()
            .ok()
            .and_then(|s| s.get(def.name).map(|(_, m)| m.values().sum()))
            .unwrap_or(0.0)
    }

    /// Count `n` observations of `value` into histogram `def` with bucket bounds `bounds`.
    pub fn observe(&self, def: MetricDef, bounds: &'static [f64], value: f64, n: u64) {
        let Ok(mut hs) = self.histograms.lock() else {
            return;
        };
        let h = hs.entry(def.name).or_insert_with(|| Histogram {
            def,
            bounds,
            counts: vec![0; bounds.len() + 1],
            fine: FineCounts::new(),
            sum: 0.0,
            count: 0,
        });
        let i = h.bounds.partition_point(|b| *b < value);
        h.counts[i] += n;
        h.fine.add(value, n);
        h.sum += value * n as f64;
        h.count += n;
    }

    /// The `q` quantile (0..=1) of a histogram's observations since start, within 1.6% (from its
    /// fine-grained counts, not its exported buckets); `None` when empty.
    pub fn quantile(&self, def: MetricDef, q: f64) -> Option<f64> {
        let hs = self.histograms.lock().ok()?;
        let h = hs.get(def.name)?;
        h.fine.quantile(q, h.count)
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Ok(hs) = self.histograms.lock() {
            for h in hs.values() {
                let name = h.def.name;
                let _ = writeln!(out, "# HELP {name} {}", h.def.help);
                let _ = writeln!(out, "# TYPE {name} histogram");
                let mut cumulative = 0;
                for (i, c) in h.counts.iter().enumerate() {
                    cumulative += c;
                    match h.bounds.get(i) {
                        Some(b) => {
                            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
                        }
                        None => {
                            let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
                        }
                    }
                }
                let _ = writeln!(out, "{name}_sum {}", h.sum);
                let _ = writeln!(out, "{name}_count {}", h.count);
                if h.count > 0 {
                    let qname = quantile_name(name);
                    let _ = writeln!(
                        out,
                        "# HELP {qname} Quantiles of {name} since start (within 1.6%)."
                    );
                    let _ = writeln!(out, "# TYPE {qname} gauge");
                    for (q, label) in EXPORTED_QUANTILES {
                        if let Some(v) = h.fine.quantile(*q, h.count) {
                            let _ = writeln!(out, "{qname}{{quantile=\"{label}\"}} {v}");
                        }
                    }
                }
            }
        }
        let Ok(series) = self.series.lock() else {
            return out;
        };
        for (def, values) in series.values() {
            let kind = match def.kind {
                MetricKind::Counter => "counter",
                MetricKind::Gauge | MetricKind::Histogram => "gauge",
            };
            let _ = writeln!(out, "# HELP {} {}", def.name, def.help);
            let _ = writeln!(out, "# TYPE {} {}", def.name, kind);
            for (labels, v) in values {
                out.push_str(def.name);
                if !labels.is_empty() {
                    out.push('{');
                    for (i, (k, val)) in labels.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let escaped = val
                            .replace('\\', "\\\\")
                            .replace('"', "\\\"")
                            .replace('\n', "\\n");
                        let _ = write!(out, "{k}=\"{escaped}\"");
                    }
                    out.push('}');
                }
                let _ = writeln!(out, " {v}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new();
        m.add(EVENTS, &[("table", "public.t"), ("op", "create")], 3);
        m.add(EVENTS, &[("table", "public.t"), ("op", "create")], 2);
        m.set_info(DURABLE_POSITION, &[("position", "0/1\"A")]);
        let text = m.render();
        assert!(text.contains("# TYPE cdc_events_total counter"), "{text}");
        assert!(
            text.contains("cdc_events_total{table=\"public.t\",op=\"create\"} 5"),
            "{text}"
        );
        assert!(text.contains("position=\"0/1\\\"A\""), "{text}");
        assert_eq!(m.total(EVENTS), 5.0);
    }

    #[test]
    fn histograms_render_cumulative_buckets_and_quantiles() {
        let m = Metrics::new();
        m.observe(COMMIT_TO_DURABLE, LATENCY_BUCKETS, 0.004, 90);
        m.observe(COMMIT_TO_DURABLE, LATENCY_BUCKETS, 0.04, 10);
        let text = m.render();
        assert!(
            text.contains("cdc_commit_to_durable_seconds_bucket{le=\"0.005\"} 90"),
            "{text}"
        );
        assert!(
            text.contains("cdc_commit_to_durable_seconds_bucket{le=\"+Inf\"} 100"),
            "{text}"
        );
        assert!(
            text.contains("cdc_commit_to_durable_seconds_count 100"),
            "{text}"
        );
        let p50 = m.quantile(COMMIT_TO_DURABLE, 0.5).unwrap();
        assert!((0.002..=0.005).contains(&p50), "{p50}");
        let p99 = m.quantile(COMMIT_TO_DURABLE, 0.99).unwrap();
        assert!((0.03..=0.05).contains(&p99), "{p99}");
    }

    #[test]
    fn quantiles_are_exact_within_two_percent_and_exported() {
        let m = Metrics::new();
        // 1..=10,000 ms, once each: the q quantile is q * 10 s.
        for ms in 1..=10_000u64 {
            m.observe(COMMIT_TO_DURABLE, LATENCY_BUCKETS, ms as f64 / 1e3, 1);
        }
        for (q, want) in [(0.5, 5.0), (0.9, 9.0), (0.99, 9.9), (0.001, 0.01)] {
            let got = m.quantile(COMMIT_TO_DURABLE, q).unwrap();
            assert!((got - want).abs() / want < 0.02, "q{q}: {got} vs {want}");
        }
        // Sub-millisecond values and the largest ones stay in range.
        m.observe(COMMIT_TO_DURABLE, LATENCY_BUCKETS, 0.000_003, 1);
        m.observe(COMMIT_TO_DURABLE, LATENCY_BUCKETS, 1e9, 1);
        assert!(m.quantile(COMMIT_TO_DURABLE, 1.0).unwrap() > 1e6);
        assert_eq!(m.quantile(COMMIT_TO_DURABLE, 0.0), Some(0.000_003));
        let text = m.render();
        assert!(
            text.contains("# TYPE cdc_commit_to_durable_quantile_seconds gauge"),
            "{text}"
        );
        let line = text
            .lines()
            .find(|l| l.starts_with("cdc_commit_to_durable_quantile_seconds{quantile=\"0.99\"}"))
            .expect("p99 line");
        let v: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!((v - 9.9).abs() / 9.9 < 0.02, "{line}");
        assert_eq!(quantile_name("cdc_x_seconds"), "cdc_x_quantile_seconds");
    }
}
