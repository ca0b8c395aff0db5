//! Quiet logs while the Kafka broker is down: the failure is logged when it starts, then at most
//! every 30 s, then at its recovery — not once per reconnect attempt and client. The broker is
//! rdkafka's in-process `MockCluster` (the shared broker must not be stopped).

use std::process::Stdio;
use std::time::Duration;

use rdkafka::mocking::MockCluster;

use crate::common::{run_log, signal, spawn_run, wait_timeout, wait_until, Workdir};

/// How long the broker stays down: the stimulus, not a wait for a condition.
const OUTAGE: Duration = Duration::from_secs(10);

#[test]
fn a_broker_outage_under_load_logs_a_bounded_number_of_lines() {
    // GIVEN a pipeline streaming 2,000 events/s into the mock broker
    let cluster = MockCluster::new(1).unwrap();
    let name = format!("quiet_{}", std::process::id());
    cluster
        .create_topic(&format!("{name}.public.orders"), 3, 1)
        .unwrap();
    let w = Workdir::new();
    let config = w.write(
        "quiet.yaml",
        &format!(
            "name: {name}\nsource: {{ type: generator, rate_per_sec: 2000, tables: [public.orders] }}\n\
             sink: {{ type: kafka, brokers: '{}', headers: false }}\n\
             offsets: {{ type: file, path: '{{dir}}/o.offsets' }}\n\
             pipeline: {{ offset_flush_interval_ms: 100 }}\n",
            cluster.bootstrap_servers()
        ),
    );
    let mut child = spawn_run(&config, Stdio::null());
    assert!(
        wait_until(Duration::from_secs(30), || {
            std::fs::read_to_string(w.path("o.offsets")).is_ok()
        }),
        "no position stored: {}",
        run_log(&config)
    );
    let before = run_log(&config).lines().count();
    // WHEN the broker is down for a while, then back
    cluster.broker_down(1).unwrap();
    std::thread::sleep(OUTAGE);
    cluster.broker_up(1).unwrap();
    let recovered = wait_until(Duration::from_secs(60), || {
        run_log(&config).contains("recovered")
    });
    signal(&child, "TERM");
    assert!(wait_timeout(&mut child, Duration::from_secs(30)).is_some());
    // THEN the outage gave a handful of lines, among them its start and its recovery (before the
    // limiter: one per librdkafka warning and client error, about two a second)
    let log = run_log(&config);
    let during: Vec<&str> = log.lines().skip(before).collect();
    let warnings = during
        .iter()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .count();
    assert!(recovered, "no recovery logged:\n{log}");
    assert!(warnings >= 1, "the outage was not logged:\n{log}");
    assert!(
        during.len() <= 12,
        "{} lines ({warnings} warnings) for a {} s outage:\n{}",
        during.len(),
        OUTAGE.as_secs(),
        during.join("\n")
    );
}
