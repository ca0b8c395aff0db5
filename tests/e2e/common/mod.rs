//! Helpers shared by the end-to-end tests.

#![allow(dead_code)]

pub mod containers;
pub mod instances;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `cdc` binary under test.
pub fn cdc() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cdc"));
    c.env("RUST_LOG", "info");
    // Tests run in parallel: each endpoint on a port of its own (tests that scrape it set one).
    c.env("CDC_HTTP__ADDRESS", "127.0.0.1:0");
    c
}

/// Run `cdc` with `args` to completion.
pub fn cdc_output(args: &[&str]) -> Output {
    cdc().args(args).output().expect("cdc runs")
}

/// A temporary directory for one test, with a config file written into it.
pub struct Workdir {
    pub dir: tempfile::TempDir,
}

impl Workdir {
    pub fn new() -> Self {
        Workdir {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Write `text` to `name`, replacing `{dir}` with this directory.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(
            &p,
            text.replace("{dir}", &self.dir.path().display().to_string()),
        )
        .expect("write config");
        p
    }
}

/// Send `signal` (`TERM`, `KILL`, `INT`) to a child.
pub fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} failed");
}

/// Wait for a child to exit within `timeout`; `None` if it did not.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `cdc` child, killed when dropped (a failing test must not leave it running: it
/// would hold its replication slot and pin WAL).
pub struct Running(Child);

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Spawn `cdc run -c config` with stderr to a log file next to the config.
pub fn spawn_run(config: &Path, stdout: Stdio) -> Running {
    spawn_run_env(config, stdout, &[])
}

/// [`spawn_run`] with extra environment variables.
pub fn spawn_run_env(config: &Path, stdout: Stdio, env: &[(&str, &str)]) -> Running {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(config.with_extension("log"))
        .expect("log file");
    cdc()
        .args(["run", "-c"])
        .arg(config)
        .envs(env.iter().copied())
        .stdout(stdout)
        .stderr(log)
        .spawn()
        .map(Running)
        .expect("cdc spawns")
}

/// The log of runs of `config`.
pub fn run_log(config: &Path) -> String {
    std::fs::read_to_string(config.with_extension("log")).unwrap_or_default()
}

/// Parse a JSON-lines file written by the `file` sink; lines cut short by a crash are skipped.
pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Per key, the `qty` values seen in `after` rows, in file order.
pub fn versions(path: &Path) -> BTreeMap<i64, Vec<i64>> {
    let mut seen: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for line in read_jsonl(path) {
        let after = &line["value"]["after"];
        if let (Some(id), Some(qty)) = (after["id"].as_i64(), after["qty"].as_i64()) {
            seen.entry(id).or_default().push(qty);
        }
    }
    seen
}

/// How many times each generator event number appears in a file sink's output.
pub fn generator_counts(path: &Path) -> BTreeMap<u64, usize> {
    let mut counts = BTreeMap::new();
    for line in read_jsonl(path) {
        let seq = line["value"]["source"]["seq"]
            .as_u64()
            .expect("generator events carry source.seq");
        *counts.entry(seq).or_insert(0) += 1;
    }
    counts
}

/// Poll `f` every 20 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `GET http://127.0.0.1:{port}{path}`: status code and body, `None` when nothing listens.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// The value of the first series of `metric` whose labels contain every `label`.
pub fn metric_value(text: &str, metric: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.split(['{', ' ']).next() == Some(metric) && labels.iter().all(|lb| l.contains(lb))
        })
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}
