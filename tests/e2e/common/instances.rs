//! Private service instances for tests that stop or restart a service: a PostgreSQL cluster, a
//! MariaDB server and a tansu broker of their own, on free ports, in a temporary directory, so
//! that the shared services (used by every other test at the same time) are never touched.
//!
//! Each instance waits for readiness by polling (never by sleeping a fixed time), and is stopped
//! and removed when dropped, also when the test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, wait_timeout, wait_until};

/// The longest wait for an instance to start, stop or answer.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Run `cmd` to completion; panic with its output when it fails.
fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `chown -R user: path`.
fn chown(path: &Path, user: &str) {
    run(
        Command::new("chown")
            .arg("-R")
            .arg(format!("{user}:"))
            .arg(path),
        "chown",
    );
}

/// A temporary directory that the service's OS user may enter (it is created root-only).
fn service_dir(prefix: &str, user: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("tempdir");
    chown(dir.path(), user);
    dir
}

/// Send `sig` to process `pid`.
fn kill(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on a pid this module started; no memory is shared.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Stop a child with SIGTERM, then SIGKILL if it has not exited within `READY_TIMEOUT`.
fn terminate(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        kill(child.id(), libc::SIGTERM);
        if wait_timeout(child, READY_TIMEOUT).is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// SIGKILL a child (if any) and reap it.
fn kill_child(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Is something accepting TCP connections on `127.0.0.1:port`?
fn tcp_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    )
    .is_ok()
}

// ----------------------------------------------------------------------------------------------
// PostgreSQL

/// The PostgreSQL 15 server binaries.
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A PostgreSQL cluster of its own (`initdb` in a temporary directory, run as the `postgres` OS
/// user with trust authentication on 127.0.0.1), with `wal_level=logical`.
pub struct PgInstance {
    dir: tempfile::TempDir,
    pub port: u16,
}

impl PgInstance {
    /// Create and start a cluster.
    pub fn start() -> PgInstance {
        let dir = service_dir("cdc-pg-", "postgres");
        let inst = PgInstance {
            dir,
            port: free_port(),
        };
        run(
            inst.as_postgres(&format!("{PG_BIN}/initdb"))
                .arg("-D")
                .arg(inst.data())
                .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]),
            "initdb",
        );
        inst.pg_ctl(&["start"]);
        inst
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn as_postgres(&self, program: &str) -> Command {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", program]);
        c
    }

    /// `pg_ctl <args>` with the instance's options; `-w` waits until the server accepts
    /// connections (pg_ctl polls), then this polls `pg_isready` as well.
    fn pg_ctl(&self, args: &[&str]) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c wal_level=logical \
             -c max_wal_senders=10 -c max_replication_slots=10 -c fsync=off \
             -c synchronous_commit=off -c autovacuum=off",
            self.port,
            self.dir.path().display()
        );
        run(
            self.as_postgres(&format!("{PG_BIN}/pg_ctl"))
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(self.dir.path().join("server.log"))
                .args(["-w", "-t", "60", "-o", &options])
                .args(args),
            &format!("pg_ctl {}", args.join(" ")),
        );
        if args.first() != Some(&"stop") {
            self.wait_ready();
        }
    }

    fn wait_ready(&self) {
        let ready = wait_until(READY_TIMEOUT, || {
            Command::new(format!("{PG_BIN}/pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        });
        assert!(ready, "private PostgreSQL on port {} not ready", self.port);
    }

    /// Restart the server (`pg_ctl restart -m fast`: sessions are ended, the walsender too).
    pub fn restart(&self) {
        self.pg_ctl(&["restart", "-m", "fast"]);
    }

    /// The URL of database `db` as the superuser `postgres`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The server log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for PgInstance {
    fn drop(&mut self) {
        let _ = self
            .as_postgres(&format!("{PG_BIN}/pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["-w", "-t", "30", "stop", "-m", "immediate"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

// ----------------------------------------------------------------------------------------------
// MariaDB

/// A MariaDB server of its own (`mariadb-install-db` in a temporary directory, `mariadbd` as a
/// child process as the `mysql` OS user, no option files read), with a row-based binlog with
/// full images and metadata, and a user `cdc`/`cdc` with every privilege.
pub struct MariaDbInstance {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl MariaDbInstance {
    /// Create and start a server.
    pub fn start() -> MariaDbInstance {
        let dir = service_dir("cdc-mariadb-", "mysql");
        let mut inst = MariaDbInstance {
            dir,
            port: free_port(),
            child: None,
        };
        run(
            Command::new("mariadb-install-db")
                .arg("--no-defaults")
                .arg("--user=mysql")
                .arg(format!("--datadir={}", inst.data().display()))
                .args(["--skip-test-db", "--auth-root-authentication-method=socket"]),
            "mariadb-install-db",
        );
        inst.start_server();
        inst.sql(
            "CREATE USER 'cdc'@'%' IDENTIFIED BY 'cdc'; \
             GRANT ALL PRIVILEGES ON *.* TO 'cdc'@'%' WITH GRANT OPTION;",
        );
        inst
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("mariadb.sock")
    }

    fn start_server(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("stderr.log"))
            .expect("log file");
        let d = self.dir.path();
        let child = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg("--user=mysql")
            .arg(format!("--datadir={}", self.data().display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!("--pid-file={}", d.join("mariadbd.pid").display()))
            .arg(format!("--log-error={}", d.join("error.log").display()))
            .arg(format!(
                "--log-bin={}",
                self.data().join("binlog").display()
            ))
            .args([
                "--server-id=1",
                "--binlog-format=ROW",
                "--binlog-row-image=FULL",
                "--binlog-row-metadata=FULL",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=64M",
                "--innodb-flush-log-at-trx-commit=2",
                "--sync-binlog=0",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("mariadbd spawns");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let ready = wait_until(READY_TIMEOUT, || {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("private mariadbd exited ({status}):\n{}", self.error_log());
            }
            self.client()
                .args(["-e", "SELECT 1"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
                && tcp_open(self.port)
        });
        assert!(
            ready,
            "private MariaDB on port {} not ready:\n{}",
            self.port,
            self.error_log()
        );
    }

    /// The `mariadb` client as root over the instance's socket.
    fn client(&self) -> Command {
        let mut c = Command::new("mariadb");
        c.arg("--no-defaults")
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-u", "root"]);
        c
    }

    /// Run `sql` as root.
    pub fn sql(&self, sql: &str) {
        run(
            self.client().args(["-e", sql]),
            &format!("mariadb -e {sql:?}"),
        );
    }

    /// Stop the server (SIGTERM: a clean shutdown that ends every session) and start it again.
    pub fn restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child);
        }
        self.start_server();
    }

    /// `mysql://cdc:cdc@127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mysql://cdc:cdc@127.0.0.1:{}", self.port)
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for MariaDbInstance {
    fn drop(&mut self) {
        // Nothing of it is kept: no clean shutdown needed.
        kill_child(&mut self.child);
    }
}

// ----------------------------------------------------------------------------------------------
// tansu

/// Where `scripts/services.sh` installs tansu (`cargo install tansu`), or `PATH`.
fn tansu_binary() -> PathBuf {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|p| p.join("tansu")));
    }
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        candidates.push(PathBuf::from(home).join("bin/tansu"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".cargo/bin/tansu"));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .expect("tansu is not installed: run scripts/services.sh up")
}

/// A tansu broker of its own with SQLite storage in a temporary directory (kept across
/// [`TansuInstance::stop`] and [`TansuInstance::start_again`], on the same port).
pub struct TansuInstance {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl TansuInstance {
    /// Start a broker with empty storage.
    pub fn start() -> TansuInstance {
        let mut inst = TansuInstance {
            dir: tempfile::Builder::new()
                .prefix("cdc-tansu-")
                .tempdir()
                .expect("tempdir"),
            port: free_port(),
            child: None,
        };
        inst.start_again();
        inst
    }

    fn storage(&self) -> PathBuf {
        self.dir.path().join("tansu.db")
    }

    /// `127.0.0.1:PORT`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Start the broker (again) on its port with its storage; wait until it accepts connections
    /// and its `header(topition, offset_id)` index exists (tansu 0.6.0 creates none, and every
    /// fetch then scans the header table: see FACTS.md).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "tansu already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("tansu.log"))
            .expect("log file");
        let listener = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(tansu_binary())
            .args(["broker", "--cluster-id", "cdc-e2e"])
            .args(["--listener-url", &listener])
            .args(["--advertised-listener-url", &listener])
            // tansu resolves the path after `sqlite://` against its working directory.
            .arg("--storage-engine")
            .arg(format!("sqlite://{}", self.storage().display()))
            .current_dir("/")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("tansu spawns");
        self.child = Some(child);
        let ready = wait_until(READY_TIMEOUT, || {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("private tansu exited ({status}):\n{}", self.log());
            }
            tcp_open(self.port) && self.index_headers()
        });
        assert!(
            ready,
            "private tansu on port {} not ready:\n{}",
            self.port,
            self.log()
        );
    }

    /// Create the header index; false while tansu has not created its schema yet.
    fn index_headers(&self) -> bool {
        Command::new("sqlite3")
            .arg(self.storage())
            .arg("create index if not exists header_topition_offset on header(topition, offset_id)")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// Stop the broker (SIGTERM, then SIGKILL); its storage is kept.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child);
        }
        let closed = wait_until(READY_TIMEOUT, || !tcp_open(self.port));
        assert!(closed, "private tansu still listens on {}", self.port);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tansu.log")).unwrap_or_default()
    }
}

impl Drop for TansuInstance {
    fn drop(&mut self) {
        kill_child(&mut self.child);
    }
}
