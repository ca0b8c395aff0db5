//! What the `*-bigtxn` parts share: one source transaction of `big_rows` inserts (~230 bytes a
//! row) drained into the file sink, to show that cdc's memory stays bounded by
//! `pipeline.max_in_flight_bytes` however large a transaction is (issue 13: peak RSS < 150 MiB).

use serde_json::json;

use crate::drain::CdcRun;
use crate::report::{median, Figure};
use crate::Env;

/// The bound on cdc's peak resident memory while it drains one big transaction, MiB.
pub const RSS_TARGET_MIB: f64 = 150.0;

/// The table of the big transaction (the `insert` workload's columns).
pub const TABLE: &str = "big";

/// Report one run.
pub fn record(part: &str, round: usize, run: &CdcRun, runs: &mut Vec<CdcRun>) {
    eprintln!(
        "[{part}] round {round}: cdc -> file {:.3} s (first event {:.3} s), peak RSS {:.0} MiB, CPU {:.2} s",
        run.secs, run.first_s, run.usage.rss_mib, run.usage.cpu_s
    );
    runs.push(run.clone());
}

/// The figures of a big-transaction part: the drain rate, and the peak RSS with its target.
pub fn figures(env: &Env, part: &str, runs: &[CdcRun]) -> Vec<Figure> {
    let rows = env.big_rows;
    let secs: Vec<f64> = runs.iter().map(|r| r.secs).collect();
    let rss: Vec<f64> = runs.iter().map(|r| r.usage.rss_mib).collect();
    let peak = rss.iter().copied().fold(f64::NAN, f64::max);
    let mut rate = Figure::new(
        part,
        format!("cdc → file (fsync), 1 transaction of {rows} rows"),
        "ev/s",
        secs.iter().map(|s| rows as f64 / s).collect(),
    )
    .detail("secs", secs.clone())
    .detail("rows", rows)
    .detail("rss_mib", rss.clone());
    rate.rss_mib = Some(peak);
    rate.cpu_s = Some(median(
        &runs.iter().map(|r| r.usage.cpu_s).collect::<Vec<_>>(),
    ));
    rate.first_s = Some(median(&runs.iter().map(|r| r.first_s).collect::<Vec<_>>()));
    if let Some(r) = runs.iter().find(|r| r.out_bytes > 0) {
        rate = rate.detail("out_mb", r.out_bytes as f64 / 1e6);
    }
    let mut mem = Figure::new(part, "cdc peak RSS (VmHWM)", "MiB", rss);
    mem.target = Some(format!("< {RSS_TARGET_MIB:.0} MiB"));
    mem.met = Some(peak < RSS_TARGET_MIB);
    vec![rate, mem]
}

pub fn info(env: &Env, part: &str, write_secs: f64) -> serde_json::Value {
    json!({
        "part": part,
        "rows_in_one_transaction": env.big_rows,
        "backlog_write_secs": write_secs,
        "rss_target_mib": RSS_TARGET_MIB,
    })
}
