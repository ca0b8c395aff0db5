//! Running the real `cdc` binary as a child: a generated YAML config, its `/metrics` endpoint
//! polled for progress, and its resource usage from `wait4` (peak RSS, user + system CPU).

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How often `/metrics` is polled while waiting for events.
pub const POLL: Duration = Duration::from_millis(5);

/// Resource usage of an exited child.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// Peak resident set size, MiB (`ru_maxrss`).
    pub rss_mib: f64,
    /// User + system CPU seconds.
    pub cpu_s: f64,
    /// Exit code (or 128 + signal).
    pub code: i32,
}

/// A running `cdc run -c FILE`.
pub struct Cdc {
    pub pid: libc::pid_t,
    pub port: u16,
    pub t0: Instant,
    pub dir: PathBuf,
    pub log: PathBuf,
    exited: Option<(Instant, Usage)>,
    /// The highest `VmHWM` read from /proc/PID/status, KiB. (`ru_maxrss` cannot be used: Linux
    /// carries the parent's peak RSS at the spawn into the child's `ru_maxrss`.)
    hwm_kib: u64,
}

/// A free local TCP port (bound, then released: a small race, fine on a quiet machine).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    l.local_addr().unwrap().port()
}

impl Cdc {
    /// Write `yaml` (plus an `http` section on a free port) into `dir/cdc.yaml` and start
    /// `cdc run` on it; its standard output goes to `stdout` (or nowhere), logs to `dir/cdc.log`.
    pub fn spawn(bin: &Path, dir: &Path, yaml: &str, stdout: Option<&Path>) -> Cdc {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let cfg = dir.join("cdc.yaml");
        // CDC_BENCH_CDC_YAML: extra top-level keys for experiments (e.g. a `pipeline:` section).
        let extra = std::env::var("CDC_BENCH_CDC_YAML").unwrap_or_default();
        let full = format!(
            "{yaml}http: {{ address: \"127.0.0.1:{port}\" }}\n{}",
            extra.replace("\\n", "\n")
        );
        std::fs::write(&cfg, full).unwrap();
        let log = dir.join("cdc.log");
        let out = match stdout {
            Some(p) => Stdio::from(std::fs::File::create(p).unwrap()),
            None => Stdio::null(),
        };
        let t0 = Instant::now();
        let child = Command::new(bin)
            .arg("run")
            .arg("-c")
            .arg(&cfg)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .expect("spawn cdc");
        let pid = child.id() as libc::pid_t;
        // The child is reaped with wait4 below (for its rusage), never through `Child`.
        drop(child);
        Cdc {
            pid,
            port,
            t0,
            dir: dir.to_path_buf(),
            log,
            exited: None,
            hwm_kib: 0,
        }
    }

    /// Sample the peak resident memory (`VmHWM`) while the process lives.
    pub fn sample_rss(&mut self) {
        if self.exited.is_some() {
            return;
        }
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", self.pid)) {
            if let Some(kib) = status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            {
                self.hwm_kib = self.hwm_kib.max(kib);
            }
        }
    }

    /// Seconds since the spawn.
    pub fn elapsed(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    /// Reap the child if it exited; returns whether it did.
    pub fn poll_exit(&mut self) -> bool {
        if self.exited.is_some() {
            return true;
        }
        self.sample_rss();
        if let Some(mut u) = wait4(self.pid, false) {
            u.rss_mib = self.hwm_kib as f64 / 1024.0;
            self.exited = Some((Instant::now(), u));
        }
        self.exited.is_some()
    }

    /// The log's last lines, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "cdc ({}) {what}; last log lines:\n{}",
            self.dir.display(),
            self.log_tail()
        )
    }

    /// `/metrics` text, if the endpoint answers.
    pub fn metrics(&self) -> Option<String> {
        http_get(self.port, "/metrics").map(|(_, body)| body)
    }

    /// Wait until `/readyz` answers 200.
    pub async fn wait_ready(&mut self, timeout: Duration) -> f64 {
        loop {
            if let Some((200, _)) = http_get(self.port, "/readyz") {
                return self.elapsed();
            }
            if self.poll_exit() {
                self.fail("exited before it was ready");
            }
            if self.t0.elapsed() > timeout {
                self.fail("was not ready in time");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Poll `cdc_events_total` until it reaches `n`; returns (seconds to the first durable
    /// event, seconds to the n-th), both from the spawn.
    pub async fn wait_events(&mut self, n: u64, timeout: Duration) -> (f64, f64) {
        let mut first = None;
        loop {
            if let Some(text) = self.metrics() {
                let done = metric_sum(&text, "cdc_events_total");
                let t = self.elapsed();
                if done > 0.0 && first.is_none() {
                    first = Some(t);
                }
                if done >= n as f64 {
                    return (first.unwrap_or(t), t);
                }
            }
            if self.poll_exit() {
                self.fail(&format!("exited before {n} events were durable"));
            }
            if self.t0.elapsed() > timeout {
                let got = self
                    .metrics()
                    .map(|t| metric_sum(&t, "cdc_events_total"))
                    .unwrap_or(0.0);
                self.fail(&format!("made only {got} of {n} events durable in time"));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Wait for the process to exit by itself (an `initial_only` snapshot); seconds from the
    /// spawn to the exit, and its usage. Also records the first durable event's time.
    pub async fn wait_exit(&mut self, timeout: Duration) -> (Option<f64>, f64, Usage) {
        let mut first = None;
        loop {
            if self.poll_exit() {
                let (at, u) = self.exited.unwrap();
                if u.code != 0 {
                    self.fail(&format!("exited with {}", u.code));
                }
                return (first, at.duration_since(self.t0).as_secs_f64(), u);
            }
            if first.is_none() {
                if let Some(text) = self.metrics() {
                    if metric_sum(&text, "cdc_events_total") > 0.0 {
                        first = Some(self.elapsed());
                    }
                }
            }
            if self.t0.elapsed() > timeout {
                self.fail("did not finish in time");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// SIGTERM (drain and exit 0), then wait; its usage.
    pub async fn stop(mut self) -> Usage {
        if !self.poll_exit() {
            unsafe {
                libc::kill(self.pid, libc::SIGTERM);
            }
        }
        let t = Instant::now();
        while !self.poll_exit() {
            if t.elapsed() > Duration::from_secs(40) {
                unsafe {
                    libc::kill(self.pid, libc::SIGKILL);
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let u = self.exited.unwrap().1;
        if u.code != 0 {
            self.fail(&format!("exited with {} after SIGTERM", u.code));
        }
        u
    }
}

impl Drop for Cdc {
    fn drop(&mut self) {
        if self.exited.is_none() {
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
            }
            let _ = wait4(self.pid, true);
        }
    }
}

/// `wait4` on `pid`: `None` while it runs (unless `block`).
pub fn wait4(pid: libc::pid_t, block: bool) -> Option<Usage> {
    let mut status = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let flags = if block { 0 } else { libc::WNOHANG };
    let r = unsafe { libc::wait4(pid, &mut status, flags, &mut ru) };
    if r <= 0 {
        return None;
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(Usage {
        rss_mib: ru.ru_maxrss as f64 / 1024.0,
        cpu_s: secs(ru.ru_utime) + secs(ru.ru_stime),
        code,
    })
}

/// Run a command to completion; wall seconds and usage. Panics when it fails.
pub fn run_timed(cmd: &mut Command) -> (f64, Usage) {
    let t = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let pid = child.id() as libc::pid_t;
    drop(child);
    let u = wait4(pid, true).expect("wait4");
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(u.code, 0, "{cmd:?} failed with {}", u.code);
    (secs, u)
}

/// A tiny HTTP/1.1 GET against 127.0.0.1:`port`: (status, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// Sum of every series of `name` in Prometheus text.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The value of the series `name{labels}` (labels as written, e.g. `quantile="0.99"`).
pub fn metric_value(text: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{labels}}} ")
    };
    text.lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// One-minute load average.
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// (busy, total) jiffies of all CPUs, from /proc/stat; waiting for I/O counts as busy.
fn cpu_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0);
    (total - idle, total)
}

/// Sectors (512 bytes) written to block devices so far, from /proc/diskstats (whole disks only).
fn sectors_written() -> u64 {
    std::fs::read_to_string("/proc/diskstats")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let name = *f.get(2)?;
            // Whole disks (vda, sda, nvme0n1), not partitions or loop devices.
            let whole =
                (name.starts_with("vd") || name.starts_with("sd") || name.starts_with("xvd"))
                    && !name.ends_with(|c: char| c.is_ascii_digit())
                    || (name.starts_with("nvme") && !name.contains('p'));
            whole.then(|| f.get(9)?.parse::<u64>().ok()).flatten()
        })
        .sum()
}

/// Wait until the machine is quiet, at most `max`: under 15% of the CPUs busy (I/O wait
/// included) and under 2 MB written to disk over 200 ms. The broker keeps writing for a while
/// after a large produce, and the databases flush what a backlog or a table load left dirty;
/// either would slow the next run. Returns the seconds waited.
pub async fn settle(max: Duration) -> f64 {
    let t = Instant::now();
    loop {
        let (b0, t0) = cpu_jiffies();
        let w0 = sectors_written();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (b1, t1) = cpu_jiffies();
        let w1 = sectors_written();
        let busy = (b1 - b0) as f64 / (t1 - t0).max(1) as f64;
        let written = (w1 - w0) * 512;
        if (busy < 0.15 && written < 2_000_000) || t.elapsed() > max {
            return t.elapsed().as_secs_f64();
        }
    }
}
