//! Test support: a database per test (created as user `cdc`, dropped with its slots at the end),
//! a source built from YAML, and helpers that drive it like the runtime does.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use connector_core::{Batch, ChangeEvent, ConfigSection, Context, Op, Position, Source, Value};
use source_postgres::PostgresSource;
use tokio_postgres::{Client, NoTls};

/// `CDC_TEST_PG_URL`; the tests fail (never skip) without it.
pub fn pg_url() -> String {
    std::env::var("CDC_TEST_PG_URL").expect(
        "CDC_TEST_PG_URL is not set: run `eval \"$(scripts/services.sh up)\"` first \
         (e.g. postgres://cdc:cdc@127.0.0.1:5432/cdc)",
    )
}

/// `pg_url()` with another database.
pub fn url_for(db: &str) -> String {
    let base = pg_url();
    let (prefix, rest) = base.rsplit_once('/').expect("URL has a database");
    let query = rest
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("{prefix}/{db}{query}")
}

/// Connect with tokio-postgres.
pub async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to the test database: {e}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A database of its own for one test.
pub struct TestDb {
    /// Database name (also used as pipeline, slot and publication prefix).
    pub name: String,
    /// A client connected to it.
    pub client: Client,
}

impl TestDb {
    /// Create `t_<prefix>_<pid>_<n>`.
    pub async fn new(prefix: &str) -> TestDb {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("t_{prefix}_{}_{n}", std::process::id());
        let admin = connect(&pg_url()).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        let client = connect(&url_for(&name)).await;
        TestDb { name, client }
    }

    /// The database URL.
    pub fn url(&self) -> String {
        url_for(&self.name)
    }

    /// A new client.
    pub async fn connect(&self) -> Client {
        connect(&self.url()).await
    }

    /// Run SQL.
    pub async fn exec(&self, sql: &str) {
        self.client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// A source for this database: `extra` YAML lines are appended (tables, snapshot...).
    pub fn source(&self, extra: &str) -> PostgresSource {
        self.source_named(&self.name, extra)
    }

    /// A source with the given pipeline name (its slot and publication defaults follow it).
    pub fn source_named(&self, pipeline: &str, extra: &str) -> PostgresSource {
        self.source_with(&Context::new(pipeline), extra)
    }

    /// A source with the given context (to read its metrics).
    pub fn source_with(&self, ctx: &Context, extra: &str) -> PostgresSource {
        let mut yaml = format!(
            "type: postgres\nurl: \"{}\"\nlag_interval_ms: 0\n{extra}",
            self.url()
        );
        if !extra.contains("sslmode") {
            yaml.push_str("sslmode: disable\n");
        }
        if !extra.contains("status_interval_ms") {
            yaml.push_str("status_interval_ms: 200\n");
        }
        let section = ConfigSection::from_yaml("source", &yaml).expect("yaml");
        let config = section.extract().expect("config");
        PostgresSource::new(config, ctx).expect("source")
    }

    /// The slot's `confirmed_flush_lsn` as a number.
    pub async fn confirmed_flush(&self, slot: &str) -> Option<u64> {
        let row = self
            .client
            .query_opt(
                "SELECT (confirmed_flush_lsn - '0/0')::int8 FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .expect("slot query");
        row.and_then(|r| r.get::<_, Option<i64>>(0))
            .map(|v| v as u64)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop the slots of this database and the database itself, from a thread of its own
        // (Drop cannot await), so that nothing pins WAL after the test.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let admin = connect(&pg_url()).await;
                for _ in 0..50 {
                    let _ = admin
                        .execute(
                            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
                             WHERE database = $1 AND active_pid IS NOT NULL",
                            &[&name],
                        )
                        .await;
                    let _ = admin
                        .execute(
                            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                             WHERE database = $1 AND NOT active",
                            &[&name],
                        )
                        .await;
                    let left: i64 = admin
                        .query_one(
                            "SELECT count(*) FROM pg_replication_slots WHERE database = $1",
                            &[&name],
                        )
                        .await
                        .map(|r| r.get(0))
                        .unwrap_or(0);
                    if left == 0 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let _ = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            });
        })
        .join();
    }
}

/// What a test drained: events and the last checkpoint.
#[derive(Default)]
pub struct Drained {
    /// Events in order.
    pub events: Vec<ChangeEvent>,
    /// The last checkpoint seen.
    pub checkpoint: Option<Position>,
    /// Batches seen.
    pub batches: usize,
}

/// Call `next_batch` until `done(events)` holds (or panic after `timeout`), committing each
/// checkpoint as the runtime would once the batch is durable.
pub async fn drain_until(
    source: &mut PostgresSource,
    timeout: Duration,
    mut done: impl FnMut(&[ChangeEvent]) -> bool,
) -> Drained {
    let mut out = Drained::default();
    let start = Instant::now();
    while !done(&out.events) {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} with {} events",
            out.events.len()
        );
        match source.next_batch().await.expect("next_batch") {
            None => break,
            Some(batch) => take(source, &mut out, batch).await,
        }
    }
    out
}

async fn take(source: &mut PostgresSource, out: &mut Drained, batch: Batch) {
    out.batches += 1;
    out.events.extend(batch.events);
    if let Some(cp) = batch.checkpoint {
        source.commit(&cp).await.expect("commit");
        out.checkpoint = Some(cp);
    }
}

/// Drain until `n` events arrived.
pub async fn drain_n(source: &mut PostgresSource, n: usize) -> Drained {
    drain_until(source, Duration::from_secs(60), |e| e.len() >= n).await
}

/// Drain for a while (to see that nothing more arrives).
pub async fn drain_for(source: &mut PostgresSource, d: Duration) -> Drained {
    let mut out = Drained::default();
    let start = Instant::now();
    while start.elapsed() < d {
        match source.next_batch().await.expect("next_batch") {
            None => break,
            Some(batch) => take(source, &mut out, batch).await,
        }
    }
    out
}

/// The value of column `name` in the event's after (or before) row.
pub fn col<'a>(ev: &'a ChangeEvent, name: &str) -> &'a Value {
    let t = ev.table.as_ref().expect("row event");
    let i = t
        .column_index(name)
        .unwrap_or_else(|| panic!("no column {name} in {}", t.id));
    &ev.key_row().expect("row")[i]
}

/// The integer `id` of a row event.
pub fn id(ev: &ChangeEvent) -> i64 {
    match col(ev, "id") {
        Value::Int(i) => *i,
        other => panic!("id is {other:?}"),
    }
}

/// Ops and ids, for compact assertions.
pub fn summary(events: &[ChangeEvent]) -> Vec<(Op, i64)> {
    events
        .iter()
        .filter(|e| e.table.is_some())
        .map(|e| (e.op, id(e)))
        .collect()
}
