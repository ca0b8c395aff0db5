//! `cdc check` against a Kafka broker nobody listens on: a short verdict naming each failed check
//! and its fix, not the client library's reconnect warnings.

use crate::common::{cdc_output, Workdir};

#[test]
fn check_against_an_unreachable_broker_names_the_failed_checks_and_their_fixes_in_few_lines() {
    // GIVEN a pipeline whose sink and offsets point at a closed port
    let w = Workdir::new();
    let config = w.write(
        "unreachable.yaml",
        "name: unreachable\nsource: { type: generator }\n\
         sink: { type: kafka, brokers: '127.0.0.1:9' }\noffsets: { type: kafka }\n",
    );
    // WHEN checked (output through pipes, where librdkafka used to print the most)
    let out = cdc_output(&["check", "-c", config.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let all = format!("{stdout}{stderr}");
    // THEN it fails in at most 12 lines, naming the broker check and its fix
    assert!(!out.status.success(), "{all}");
    let lines = all.lines().count();
    assert!(lines <= 12, "{lines} lines:\n{all}");
    assert!(stdout.contains("[FAIL] kafka brokers 127.0.0.1:9"), "{all}");
    let fixes = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("fix:"));
    let failed = stdout.lines().filter(|l| l.contains("[FAIL]")).count();
    assert!(failed >= 1, "{all}");
    assert_eq!(
        fixes.count(),
        failed,
        "every failed check has its fix:\n{all}"
    );
    assert!(stdout.contains("sink.brokers"), "{all}");
}
