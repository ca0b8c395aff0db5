//! A private MariaDB server for tests that must change global settings (`binlog_row_metadata`)
//! or restart the server: its own data directory, port and socket, killed and removed on drop.
//! The shared server is never touched.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use connector_core::{ConfigSection, Context};
use mysql_async::prelude::Queryable as _;
use mysql_async::Conn;
use source_mysql::{MysqlSource, Settings};

/// A running private `mariadbd`.
pub struct PrivateMariaDb {
    /// `mysql://root@127.0.0.1:<port>`.
    pub url: String,
    child: Child,
    dir: PathBuf,
}

impl PrivateMariaDb {
    /// Install a data directory and start a server on a free port with a row-based binlog and
    /// `extra` server options (`--binlog-row-metadata=MINIMAL`); waits until it answers.
    pub async fn start(name: &str, extra: &[&str]) -> PrivateMariaDb {
        let dir = std::env::temp_dir().join(format!("cdc-private-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let data = dir.join("data");
        let install = Command::new("mariadb-install-db")
            .args(["--no-defaults", "--user=root", "--skip-test-db"])
            .arg("--auth-root-authentication-method=normal")
            .arg(format!("--datadir={}", data.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run mariadb-install-db (Debian package mariadb-server)");
        assert!(
            install.success(),
            "mariadb-install-db failed for {}",
            data.display()
        );
        // A port the kernel just handed out and released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        let mut child = Command::new("mariadbd")
            .args(["--no-defaults", "--user=root", "--bind-address=127.0.0.1"])
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--port={port}"))
            .arg(format!("--socket={}", dir.join("sock").display()))
            .arg(format!("--pid-file={}", dir.join("pid").display()))
            .args([
                "--log-bin=mysql-bin",
                "--server-id=7001",
                "--binlog-format=ROW",
                "--binlog-row-image=FULL",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start mariadbd");
        let url = format!("mysql://root@127.0.0.1:{port}");
        // Wait for it to answer (60 s at most).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(mut c) = Conn::from_url(url.as_str()).await {
                if c.query_drop("SELECT 1").await.is_ok() {
                    let _ = c.disconnect().await;
                    break;
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the private mariadbd exited ({status}): {}",
                    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the private mariadbd did not answer within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        PrivateMariaDb { url, child, dir }
    }

    /// A connection with `db` as its default database (created when missing).
    pub async fn conn(&self, db: &str) -> Conn {
        let mut c = Conn::from_url(self.url.as_str()).await.unwrap();
        c.query_drop(format!("CREATE DATABASE IF NOT EXISTS `{db}`"))
            .await
            .unwrap();
        c.query_drop(format!("USE `{db}`")).await.unwrap();
        c
    }

    /// A source on this server for every table of `db`, with extra YAML config lines.
    pub fn source(&self, db: &str, pipeline: &str, extra: &str) -> MysqlSource {
        let yaml = format!(
            "type: mysql\nurl: {}\ntables: ['{db}.*']\nschema_history_path: {}\n{extra}",
            self.url,
            self.dir
                .join(format!("{pipeline}.schema-history"))
                .display()
        );
        let section = ConfigSection::from_yaml("source", &yaml).unwrap();
        let settings = Settings::new(section.extract().unwrap(), pipeline).unwrap();
        MysqlSource::new(settings, &Context::new(pipeline))
    }

    /// The schema history file of `pipeline`'s sources.
    pub fn history_path(&self, pipeline: &str) -> PathBuf {
        self.dir.join(format!("{pipeline}.schema-history"))
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
