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

/// Bucket bounds of [`COMMIT_TO_DURABLE`], in seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0,
];

#[derive(Debug, Clone)]
struct Histogram {
    def: MetricDef,
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
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
            sum: 0.0,
            count: 0,
        });
        let i = h.bounds.partition_point(|b| *b < value);
        h.counts[i] += n;
        h.sum += value * n as f64;
        h.count += n;
    }

    /// The `q` quantile (0..=1) of a histogram, interpolated within its bucket; `None` when empty.
    pub fn quantile(&self, def: MetricDef, q: f64) -> Option<f64> {
        let hs = self.histograms.lock().ok()?;
        let h = hs.get(def.name)?;
        if h.count == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * h.count as f64;
        let mut seen = 0u64;
        for (i, c) in h.counts.iter().enumerate() {
            if *c > 0 && (seen + c) as f64 >= rank {
                let lo = if i == 0 { 0.0 } else { h.bounds[i - 1] };
                let hi = h.bounds.get(i).copied().unwrap_or(lo);
                let within = (rank - seen as f64) / *c as f64;
                return Some(lo + (hi - lo) * within.clamp(0.0, 1.0));
            }
            seen += c;
        }
        h.bounds.last().copied()
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
}
