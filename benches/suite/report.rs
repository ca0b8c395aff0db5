//! Figures (median of runs, ratio to a ceiling, target), the printed table and the JSON file.

use std::fmt::Write as _;

use serde_json::{json, Map, Value};

/// One measured figure: a value per run, its median, and how it compares.
#[derive(Clone, Debug, Default)]
pub struct Figure {
    pub part: String,
    pub label: String,
    /// Unit of `runs` / `median`: "ev/s", "msg/s", "rows/s", "ms", "s".
    pub unit: &'static str,
    pub runs: Vec<f64>,
    /// What `ratio` is against, e.g. "pg_recvlogical".
    pub vs: Option<String>,
    pub ratio: Option<f64>,
    /// The target as text, and whether the median meets it.
    pub target: Option<String>,
    pub met: Option<bool>,
    /// Highest peak RSS of the cdc process over the runs, MiB.
    pub rss_mib: Option<f64>,
    /// Median CPU seconds of the cdc process.
    pub cpu_s: Option<f64>,
    /// Median seconds from spawn to the first durable event.
    pub first_s: Option<f64>,
    /// Anything else worth keeping (per-run details, sizes, counts).
    pub detail: Map<String, Value>,
}

impl Figure {
    pub fn new(part: &str, label: impl Into<String>, unit: &'static str, runs: Vec<f64>) -> Self {
        Figure {
            part: part.to_string(),
            label: label.into(),
            unit,
            runs,
            ..Default::default()
        }
    }

    pub fn median(&self) -> f64 {
        median(&self.runs)
    }

    pub fn detail(mut self, key: &str, v: impl Into<Value>) -> Self {
        self.detail.insert(key.to_string(), v.into());
        self
    }

    pub fn to_json(&self) -> Value {
        json!({
            "part": self.part,
            "figure": self.label,
            "unit": self.unit,
            "median": self.median(),
            "runs": self.runs,
            "vs": self.vs,
            "ratio": self.ratio,
            "target": self.target,
            "met": self.met,
            "peak_rss_mib": self.rss_mib,
            "cpu_s": self.cpu_s,
            "first_event_s": self.first_s,
            "detail": self.detail,
        })
    }
}

pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// A number with thousands separators (rates) or 2-3 significant decimals (small values).
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    if v.abs() >= 1000.0 {
        let n = v.round() as i64;
        let s = n.abs().to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        if n < 0 {
            out.insert(0, '-');
        }
        out
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn compact(v: f64) -> String {
    if v.abs() >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v.abs() >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v.abs() >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        num(v)
    }
}

/// The results table, as printed and as pasted into BENCHMARKS.md.
pub fn table(figures: &[Figure]) -> String {
    let header = [
        "part",
        "figure",
        "median",
        "runs",
        "vs ceiling",
        "target",
        "peak RSS",
        "CPU s",
        "1st event",
    ];
    let mut rows: Vec<[String; 9]> = Vec::new();
    for f in figures {
        let runs = f
            .runs
            .iter()
            .map(|v| compact(*v))
            .collect::<Vec<_>>()
            .join(" ");
        let vs = match (&f.ratio, &f.vs) {
            (Some(r), Some(vs)) => format!("{:.0}% of {vs}", r * 100.0),
            _ => String::new(),
        };
        let target = match (&f.target, f.met) {
            (Some(t), Some(true)) => format!("{t} met"),
            (Some(t), Some(false)) => format!("{t} MISSED"),
            (Some(t), None) => t.clone(),
            _ => String::new(),
        };
        rows.push([
            f.part.clone(),
            f.label.clone(),
            format!("{} {}", num(f.median()), f.unit),
            runs,
            vs,
            target,
            f.rss_mib.map(|v| format!("{v:.0} MiB")).unwrap_or_default(),
            f.cpu_s.map(|v| format!("{v:.2}")).unwrap_or_default(),
            f.first_s.map(|v| format!("{v:.3} s")).unwrap_or_default(),
        ]);
    }
    let mut widths = header.map(str::len);
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        out.push('|');
        for (i, c) in cells.iter().enumerate() {
            let pad = widths[i] - c.chars().count();
            if i == 2 {
                let _ = write!(out, " {}{} |", " ".repeat(pad), c);
            } else {
                let _ = write!(out, " {}{} |", c, " ".repeat(pad));
            }
        }
        out.push('\n');
    };
    line(&mut out, &header.map(String::from));
    out.push('|');
    for (i, w) in widths.iter().enumerate() {
        if i == 2 {
            let _ = write!(out, "{}:|", "-".repeat(w + 1));
        } else {
            let _ = write!(out, "{}|", "-".repeat(w + 2));
        }
    }
    out.push('\n');
    for r in &rows {
        line(&mut out, r);
    }
    out
}
