//! `pg-transforms`: what a chain of `filter` (tables and a CEL `when` evaluated on every event) +
//! `mask` (sha256 of a text column) + `route` (one topic for the table) costs in throughput. The
//! same PostgreSQL insert backlog is drained by cdc with and without the chain, into each sink of
//! `CDC_BENCH_SINKS`, interleaved per round, each run on its own copy of one template slot. The
//! filter keeps every event so that both runs deliver the same count. Target (issue 17): the chain
//! costs at most 15% of the plain run's events/s.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::drain::{cdc_drain, SinkKind};
use crate::pg::Pg;
use crate::proc::settle;
use crate::report::{median, Figure};
use crate::{Env, SETTLE};

const TABLE: &str = "xf_orders";
const PART: &str = "pg-transforms";

/// The chain under test (top-level YAML appended to the cdc config).
fn chain_yaml(tag: &str) -> String {
    format!(
        "transforms:\n\
         \x20 - {{ type: filter, tables: [public.{TABLE}], ops: [c, u, d, r], when: \"op != 't' && after.id > 0\" }}\n\
         \x20 - {{ type: mask, columns: [public.{TABLE}.name], with: sha256, salt_env: CDC_BENCH_SALT }}\n\
         \x20 - {{ type: route, tables: 'public\\.xf_(.*)', topic: '{tag}_xf.$1' }}\n"
    )
}

async fn sql(pg: &Pg, sql: &str, slot: &str) {
    pg.c.execute(sql, &[&slot])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The part: figures per sink (plain, chain, and the chain's cost in percent).
pub async fn drain(env: &Env, pg: &Pg) -> (Vec<Figure>, serde_json::Value) {
    let per = env.rows_per_txn;
    let txns = env.txns;
    let publication = format!("pub_{TABLE}");
    pg.exec(&format!(
        "CREATE TABLE {TABLE} (id int8 PRIMARY KEY, name text NOT NULL, amount numeric(12,2) NOT NULL, \
         created_at timestamptz NOT NULL, payload text NOT NULL); \
         CREATE PUBLICATION {publication} FOR TABLE {TABLE}"
    ))
    .await;
    let template = format!("{}_{TABLE}_tpl", env.tag);
    sql(
        pg,
        "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
        &template,
    )
    .await;
    let t = Instant::now();
    for i in 0..txns {
        let from = i * per + 1;
        pg.exec(&format!(
            "INSERT INTO {TABLE} SELECT g, 'name-' || g, (g % 100000) / 100.0, now(), \
             repeat(md5(g::text), 5) FROM generate_series({from}, {}) g",
            from + per - 1
        ))
        .await;
    }
    let events = txns * per;
    eprintln!(
        "[{PART}] backlog: {events} inserts in {txns} transactions written in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    std::env::set_var("CDC_BENCH_SALT", "bench-salt");
    let base_extra = std::env::var("CDC_BENCH_CDC_YAML").unwrap_or_default();
    let mut rates: Vec<(SinkKind, Vec<f64>, Vec<f64>)> = env
        .sinks
        .iter()
        .map(|&s| (s, Vec::new(), Vec::new()))
        .collect();
    for round in 0..env.runs {
        for (sink, plain, chained) in &mut rates {
            for with_chain in [false, true] {
                let name = format!(
                    "{}_{TABLE}_{}{}{round}",
                    env.tag,
                    sink.label(),
                    if with_chain { "x" } else { "p" }
                );
                pg.c.execute(
                    "SELECT pg_copy_logical_replication_slot($1, $2)",
                    &[&template, &name],
                )
                .await
                .unwrap();
                let src = format!(
                    "source: {{ type: postgres, url: \"{}\", sslmode: disable, tables: [public.{TABLE}], \
                     slot: {name}, publication: {publication}, snapshot: never }}\n",
                    pg.url
                );
                let extra = if with_chain {
                    format!("{base_extra}\n{}", chain_yaml(&env.tag))
                } else {
                    base_extra.clone()
                };
                std::env::set_var("CDC_BENCH_CDC_YAML", &extra);
                settle(SETTLE).await;
                let run = cdc_drain(env, &name, &src, *sink, events, None).await;
                std::env::set_var("CDC_BENCH_CDC_YAML", &base_extra);
                drop_slot(pg, &name).await;
                let rate = events as f64 / run.secs.max(1e-9);
                eprintln!(
                    "[{PART}] round {round}: cdc {} {}: {:.3} s, {rate:.0} ev/s",
                    sink.label(),
                    if with_chain {
                        "with the chain"
                    } else {
                        "plain"
                    },
                    run.secs
                );
                if with_chain {
                    chained.push(rate);
                } else {
                    plain.push(rate);
                }
            }
        }
    }
    drop_slot(pg, &template).await;
    let mut figures = Vec::new();
    for (sink, plain, chained) in rates {
        let label = sink.label();
        let cost: Vec<f64> = plain
            .iter()
            .zip(&chained)
            .map(|(p, c)| (1.0 - c / p) * 100.0)
            .collect();
        let cost_median = median(&cost);
        figures.push(Figure::new(
            PART,
            format!("cdc → {label}, no transforms"),
            "ev/s",
            plain,
        ));
        figures.push(Figure::new(
            PART,
            format!("cdc → {label}, filter + mask + route"),
            "ev/s",
            chained,
        ));
        let mut f = Figure::new(PART, format!("chain cost → {label}"), "%", cost);
        f.target = Some("at most 15% of throughput".to_string());
        f.met = Some(cost_median <= 15.0);
        figures.push(f);
    }
    let info = json!({
        "part": PART,
        "events": events,
        "transactions": txns,
        "chain": chain_yaml(&env.tag),
    });
    (figures, info)
}

async fn drop_slot(pg: &Pg, slot: &str) {
    for _ in 0..100 {
        let gone =
            pg.c.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                 WHERE slot_name = $1 AND NOT active",
                &[&slot],
            )
            .await
            .is_ok()
                && pg
                    .c
                    .query_opt(
                        "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
                        &[&slot],
                    )
                    .await
                    .map(|r| r.is_none())
                    .unwrap_or(false);
        if gone {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("warning: could not drop slot {slot}");
}
