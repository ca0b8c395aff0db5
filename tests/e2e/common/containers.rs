//! PostgreSQL, MariaDB and Apache Kafka in containers (`testcontainers`), for the tests that need
//! what the local services cannot give: a broker with Kafka transactions (the local `tansu` has
//! no `EndTxn`), so that exactly-once and the transactional offsets run against a real Kafka.
//!
//! Containers are used only when a Docker engine answers (`GET /_ping` on `DOCKER_HOST` or
//! `/var/run/docker.sock`); without one, [`Containers::start`] returns why, and the tests that
//! need a real Kafka say so and skip that part. Nothing fails for lack of Docker.

use std::io::{Read, Write};
use std::time::Duration;

use testcontainers_modules::kafka::apache;
use testcontainers_modules::mariadb::Mariadb;
use testcontainers_modules::postgres::Postgres;
use testcontainers_modules::testcontainers::runners::AsyncRunner;
use testcontainers_modules::testcontainers::{ContainerAsync, ImageExt};

/// How long the engine has to answer the ping.
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a container has to become ready (images may have to be pulled first).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(300);

/// Why no Docker engine can be used, or `None` when one answers.
pub fn docker_unavailable() -> Option<String> {
    let host = std::env::var("DOCKER_HOST").unwrap_or_default();
    let answer = if let Some(addr) = host.strip_prefix("tcp://") {
        let addr = addr.trim_end_matches('/');
        let sock = addr
            .parse()
            .map_err(|e| format!("DOCKER_HOST={host}: {e}"))
            .and_then(|a| {
                std::net::TcpStream::connect_timeout(&a, PING_TIMEOUT)
                    .map_err(|e| format!("DOCKER_HOST={host}: {e}"))
            });
        sock.and_then(|s| {
            s.set_read_timeout(Some(PING_TIMEOUT)).ok();
            ping(s).map_err(|e| format!("DOCKER_HOST={host}: {e}"))
        })
    } else {
        let path = host
            .strip_prefix("unix://")
            .unwrap_or("/var/run/docker.sock")
            .to_string();
        std::os::unix::net::UnixStream::connect(&path)
            .map_err(|e| format!("{path}: {e}"))
            .and_then(|s| {
                s.set_read_timeout(Some(PING_TIMEOUT)).ok();
                ping(s).map_err(|e| format!("{path}: {e}"))
            })
    };
    answer.err()
}

/// `GET /_ping` on a connection to the engine's API: Ok when it answers 200.
fn ping(mut s: impl Read + Write) -> Result<(), String> {
    s.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    match text.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        Some(code) => Err(format!("the engine answered {code} to /_ping")),
        None => Err("no answer to /_ping".into()),
    }
}

/// The three services in containers of this test, removed when dropped.
pub struct Containers {
    _pg: ContainerAsync<Postgres>,
    _mariadb: ContainerAsync<Mariadb>,
    _kafka: ContainerAsync<apache::Kafka>,
    /// `postgres://postgres:postgres@HOST:PORT/postgres` (`wal_level=logical`).
    pub pg_url: String,
    /// `mysql://root@HOST:PORT` (row-based binlog with full images and metadata).
    pub mysql_url: String,
    /// `HOST:PORT` of the Kafka broker (KRaft, one node, transactions available).
    pub brokers: String,
}

impl Containers {
    /// Start PostgreSQL 15, MariaDB 10.11 and Apache Kafka when a Docker engine answers; else
    /// why not.
    pub async fn start() -> Result<Containers, String> {
        if let Some(why) = docker_unavailable() {
            return Err(format!("no Docker engine answers ({why})"));
        }
        let pg = Postgres::default()
            .with_tag("15-alpine")
            .with_cmd([
                "-c",
                "wal_level=logical",
                "-c",
                "max_wal_senders=10",
                "-c",
                "max_replication_slots=10",
                "-c",
                "fsync=off",
            ])
            .with_startup_timeout(STARTUP_TIMEOUT)
            .start();
        let mariadb = Mariadb::default()
            .with_tag("10.11")
            .with_cmd([
                "--log-bin=binlog",
                "--server-id=1",
                "--binlog-format=ROW",
                "--binlog-row-image=FULL",
                "--binlog-row-metadata=FULL",
            ])
            .with_startup_timeout(STARTUP_TIMEOUT)
            .start();
        let kafka = apache::Kafka::default()
            .with_startup_timeout(STARTUP_TIMEOUT)
            .start();
        let (pg, mariadb, kafka) = tokio::join!(pg, mariadb, kafka);
        let pg = pg.map_err(|e| format!("starting PostgreSQL in a container: {e}"))?;
        let mariadb = mariadb.map_err(|e| format!("starting MariaDB in a container: {e}"))?;
        let kafka = kafka.map_err(|e| format!("starting Kafka in a container: {e}"))?;
        let port = |r: Result<u16, _>, what: &str| {
            r.map_err(
                |e: testcontainers_modules::testcontainers::TestcontainersError| {
                    format!("the port of {what}: {e}")
                },
            )
        };
        let host = pg
            .get_host()
            .await
            .map_err(|e| format!("the containers' host: {e}"))?;
        let pg_port = port(pg.get_host_port_ipv4(5432).await, "PostgreSQL")?;
        let my_port = port(mariadb.get_host_port_ipv4(3306).await, "MariaDB")?;
        let kafka_port = port(kafka.get_host_port_ipv4(apache::KAFKA_PORT).await, "Kafka")?;
        Ok(Containers {
            pg_url: format!("postgres://postgres:postgres@{host}:{pg_port}/postgres"),
            mysql_url: format!("mysql://root@{host}:{my_port}"),
            brokers: format!("{host}:{kafka_port}"),
            _pg: pg,
            _mariadb: mariadb,
            _kafka: kafka,
        })
    }
}
