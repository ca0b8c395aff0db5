//! The health and metrics endpoint, scraped for real while a pipeline runs.

use std::process::Stdio;
use std::time::Duration;

use crate::common::{
    free_port, http_get, metric_value, run_log, signal, spawn_run_env, wait_timeout, wait_until,
    Workdir,
};

#[test]
fn healthz_readyz_and_metrics_during_a_running_pipeline() {
    let w = Workdir::new();
    let port = free_port();
    // GIVEN a running pipeline with its endpoint on a free port
    let config = w.write(
        "p.yaml",
        "name: scraped\nsource: { type: generator, rate_per_sec: 2000, tables: [public.a, public.b], \
         update_percent: 10 }\nsink: { type: file, path: '{dir}/out.jsonl' }\n\
         offsets: { type: file, path: '{dir}/o.offsets' }\n\
         pipeline: { offset_flush_interval_ms: 100 }\n",
    );
    let address = format!("127.0.0.1:{port}");
    let mut child = spawn_run_env(&config, Stdio::null(), &[("CDC_HTTP__ADDRESS", &address)]);

    // WHEN it has made events durable
    let scraped = wait_until(Duration::from_secs(20), || {
        http_get(port, "/metrics").is_some_and(|(_, body)| {
            metric_value(
                &body,
                "cdc_events_total",
                &["table=\"public.a\"", "op=\"create\""],
            )
            .is_some_and(|v| v > 100.0)
                // The committed position is published by the committer after its interval:
                // wait for it (and for enough durable streamed events), not for a time.
                && body.contains("cdc_committed_position_info{position=\"")
                && metric_value(&body, "cdc_commit_to_durable_seconds_count", &[])
                    .is_some_and(|v| v > 100.0)
                && metric_value(
                    &body,
                    "cdc_events_total",
                    &["table=\"public.b\"", "op=\"update\""],
                )
                .is_some_and(|v| v > 0.0)
        })
    });
    assert!(scraped, "no events in /metrics\n{}", run_log(&config));

    // THEN it is alive and ready, and the metrics describe it
    let (status, body) = http_get(port, "/healthz").unwrap();
    assert_eq!((status, body.trim()), (200, "ok: streaming"));
    let (status, body) = http_get(port, "/readyz").unwrap();
    assert_eq!((status, body.trim()), (200, "ready: streaming"));
    let (status, m) = http_get(port, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(
        metric_value(
            &m,
            "cdc_events_total",
            &["table=\"public.b\"", "op=\"update\""]
        )
        .unwrap()
            > 0.0
    );
    assert!(metric_value(&m, "cdc_batches_total", &[]).unwrap() > 0.0);
    assert!(metric_value(&m, "cdc_event_bytes_total", &[]).unwrap() > 0.0);
    assert_eq!(
        metric_value(&m, "cdc_in_flight_limit_bytes", &[]),
        Some(cdc::connector_core::config::DEFAULT_MAX_IN_FLIGHT_BYTES as f64)
    );
    assert!(metric_value(&m, "cdc_in_flight_bytes", &[]).is_some());
    assert!(m.contains("cdc_durable_position_info{position=\""), "{m}");
    assert!(m.contains("cdc_committed_position_info{position=\""), "{m}");
    let lag = metric_value(&m, "cdc_lag_seconds", &[]).unwrap();
    assert!((0.0..5.0).contains(&lag), "lag {lag}");
    assert_eq!(metric_value(&m, "cdc_up", &[]), Some(1.0));
    let durable = metric_value(&m, "cdc_commit_to_durable_seconds_count", &[]).unwrap();
    assert!(durable > 100.0, "{m}");
    assert!(metric_value(&m, "cdc_commit_to_durable_max_seconds", &[]).unwrap() < 5.0);
    assert_eq!(metric_value(&m, "cdc_restarts_total", &[]), None);

    signal(&child, "TERM");
    assert!(wait_timeout(&mut child, Duration::from_secs(10))
        .unwrap()
        .success());
}

#[test]
fn readyz_fails_while_the_sink_cannot_be_started_but_healthz_stays_ok() {
    let w = Workdir::new();
    let port = free_port();
    std::fs::write(w.path("not-a-dir"), "x").unwrap();
    // GIVEN a pipeline whose file sink cannot open its file (a retryable I/O error)
    let config = w.write(
        "p.yaml",
        "name: unready\nsource: { type: generator }\n\
         sink: { type: file, path: '{dir}/not-a-dir/out.jsonl' }\n\
         offsets: { type: file, path: '{dir}/o.offsets' }\n\
         pipeline: { retry: { initial_backoff_ms: 200, max_backoff_ms: 400 } }\n",
    );
    let address = format!("127.0.0.1:{port}");
    let mut child = spawn_run_env(&config, Stdio::null(), &[("CDC_HTTP__ADDRESS", &address)]);
    // WHEN it keeps restarting
    assert!(wait_until(Duration::from_secs(20), || {
        http_get(port, "/metrics")
            .is_some_and(|(_, m)| metric_value(&m, "cdc_restarts_total", &[]).unwrap_or(0.0) >= 2.0)
    }));
    // THEN it is not ready, but alive (restarts are not a reason to kill the pod)
    let (status, body) = http_get(port, "/readyz").unwrap();
    assert_eq!(status, 503, "{body}");
    let (status, _) = http_get(port, "/healthz").unwrap();
    assert_eq!(status, 200);
    let (_, m) = http_get(port, "/metrics").unwrap();
    assert!(
        metric_value(&m, "cdc_errors_total", &["kind=\"io\""]).unwrap() >= 2.0,
        "{m}"
    );
    signal(&child, "TERM");
    assert!(wait_timeout(&mut child, Duration::from_secs(10))
        .unwrap()
        .success());
}
