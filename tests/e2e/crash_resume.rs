//! Crashes, restarts and shutdown signals of the real binary: nothing accepted is lost.

use std::process::Stdio;
use std::time::Duration;

use crate::common::{
    generator_counts, run_log, signal, spawn_run, wait_timeout, wait_until, Workdir,
};

const LIMIT: u64 = 60_000;

fn generator_to_file(w: &Workdir, rate: u64, limit: u64) -> std::path::PathBuf {
    w.write(
        "p.yaml",
        &format!(
            "name: crash\nsource: {{ type: generator, rate_per_sec: {rate}, limit: {limit}, batch_size: 500, \
             update_percent: 20, delete_percent: 5 }}\n\
             sink: {{ type: file, path: '{{dir}}/out.jsonl' }}\n\
             offsets: {{ type: file, path: '{{dir}}/crash.offsets' }}\n\
             pipeline: {{ offset_flush_interval_ms: 200 }}\n"
        ),
    )
}

fn stored_position(w: &Workdir) -> Option<u64> {
    let text = std::fs::read_to_string(w.path("crash.offsets")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).expect("offsets file is valid JSON");
    v["position"].as_str()?.parse().ok()
}

#[test]
fn kill_9_and_restart_resumes_from_the_file_store_with_nothing_lost() {
    let w = Workdir::new();
    let config = generator_to_file(&w, 20_000, LIMIT);
    for round in 0..3 {
        // GIVEN a running pipeline that has stored a position
        let mut child = spawn_run(&config, Stdio::null());
        let before = stored_position(&w);
        assert!(
            wait_until(Duration::from_secs(20), || stored_position(&w) > before),
            "round {round}: no progress\n{}",
            run_log(&config)
        );
        std::thread::sleep(Duration::from_millis(150 * (round + 1)));
        // WHEN it is killed with SIGKILL mid-stream
        signal(&child, "KILL");
        child.wait().unwrap();
    }
    // AND restarted until the generator's limit
    let mut child = spawn_run(&config, Stdio::null());
    let status = wait_timeout(&mut child, Duration::from_secs(60)).expect("finishes");
    assert!(status.success(), "{}", run_log(&config));

    // THEN every event is in the file at least once, and the store holds the last one
    let counts = generator_counts(&w.path("out.jsonl"));
    let missing: Vec<u64> = (0..LIMIT)
        .filter(|n| !counts.contains_key(n))
        .take(10)
        .collect();
    assert!(missing.is_empty(), "lost events, e.g. {missing:?}");
    assert_eq!(counts.len() as u64, LIMIT);
    assert_eq!(stored_position(&w), Some(LIMIT - 1));
    let resumed = run_log(&config).matches("resume=\"").count();
    assert_eq!(
        resumed, 4,
        "four runs, three of them resumed from a stored position"
    );
}

#[test]
fn sigterm_drains_in_flight_events_stores_the_last_one_and_exits_0() {
    let w = Workdir::new();
    // GIVEN a pipeline producing steadily with no limit
    let config = generator_to_file(&w, 10_000, 0);
    let mut child = spawn_run(&config, Stdio::null());
    assert!(
        wait_until(Duration::from_secs(20), || stored_position(&w).is_some()),
        "{}",
        run_log(&config)
    );
    // WHEN it gets SIGTERM
    signal(&child, "TERM");
    // THEN it exits 0 within the shutdown bound
    let status = wait_timeout(&mut child, Duration::from_secs(10)).expect("exits within 10 s");
    assert!(status.success(), "{}", run_log(&config));
    // AND everything it wrote is contiguous, written once, and the stored position is the last
    let counts = generator_counts(&w.path("out.jsonl"));
    let last = *counts.keys().last().unwrap();
    assert_eq!(counts.len() as u64, last + 1, "no gaps");
    assert!(
        counts.values().all(|&c| c == 1),
        "no duplicates without a crash"
    );
    assert_eq!(stored_position(&w), Some(last));
}

#[test]
fn a_second_signal_exits_at_once_and_leaves_the_offset_store_intact() {
    let w = Workdir::new();
    // GIVEN a pipeline writing to a stdout pipe that nobody reads: it cannot drain
    let config = w.write(
        "p.yaml",
        "name: stuck\nsource: { type: generator, rate_per_sec: 2000, batch_size: 10 }\n\
         sink: { type: stdout }\noffsets: { type: file, path: '{dir}/stuck.offsets' }\n\
         pipeline: { offset_flush_interval_ms: 0, shutdown_timeout_ms: 60000 }\n",
    );
    let mut child = spawn_run(&config, Stdio::piped());
    assert!(
        wait_until(Duration::from_secs(20), || w.path("stuck.offsets").exists()),
        "{}",
        run_log(&config)
    );
    std::thread::sleep(Duration::from_millis(500));
    // WHEN it gets SIGTERM, it keeps trying to drain
    signal(&child, "TERM");
    assert!(wait_timeout(&mut child, Duration::from_millis(700)).is_none());
    // AND WHEN it gets a second SIGTERM
    signal(&child, "TERM");
    // THEN it exits at once with 130, and the offsets file is intact
    let status = wait_timeout(&mut child, Duration::from_secs(3)).expect("exits at once");
    assert_eq!(status.code(), Some(130), "{}", run_log(&config));
    let text = std::fs::read_to_string(w.path("stuck.offsets")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(v["pipeline"], "stuck");
}
