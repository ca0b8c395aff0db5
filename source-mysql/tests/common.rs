//! Test helpers: databases, sources, reading until a condition.

use std::time::Duration;

use connector_core::{Batch, ChangeEvent, ConfigSection, Context, Op, Position, Source, Value};
use mysql_async::prelude::Queryable as _;
use mysql_async::Conn;
use source_mysql::{BinlogPosition, MysqlSource, Settings};

/// Held for reading by every test that writes rows, and for writing by the test that switches
/// the server's `binlog_row_metadata` (a global variable) to MINIMAL.
pub static METADATA: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// The MariaDB URL; tests fail (never skip) without it.
pub fn url() -> String {
    std::env::var("CDC_TEST_MYSQL_URL").unwrap_or_else(|_| {
        panic!(
            "CDC_TEST_MYSQL_URL is not set: run `eval \"$(scripts/services.sh up)\"` to start \
             MariaDB with a row-based binlog, then run the tests again"
        )
    })
}

/// A database of its own for one test.
pub struct TestDb {
    pub name: String,
    pub conn: Conn,
}

impl TestDb {
    pub async fn new(prefix: &str) -> TestDb {
        let name = format!("cdc_{prefix}");
        let mut conn = Conn::from_url(url()).await.expect("connect to MariaDB");
        conn.query_drop(format!("DROP DATABASE IF EXISTS `{name}`"))
            .await
            .unwrap();
        conn.query_drop(format!("CREATE DATABASE `{name}`"))
            .await
            .unwrap();
        conn.query_drop(format!("USE `{name}`")).await.unwrap();
        conn.query_drop("SET SESSION max_recursive_iterations = 10000000")
            .await
            .unwrap();
        TestDb { name, conn }
    }

    /// Run statements (separated by `;` at line ends are not supported: one statement a call).
    pub async fn exec(&mut self, sql: &str) {
        self.conn
            .query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Another connection to the same database.
    pub async fn another(&self) -> Conn {
        let mut c = Conn::from_url(url()).await.unwrap();
        c.query_drop(format!("USE `{}`", self.name)).await.unwrap();
        c
    }

    /// The current end of the binlog as a source position.
    pub async fn position(&mut self) -> Position {
        let row: mysql_async::Row = self
            .conn
            .query_first("SHOW MASTER STATUS")
            .await
            .unwrap()
            .unwrap();
        let file: String = row.get(0).unwrap();
        let pos: u64 = row.get(1).unwrap();
        let gtid: Option<String> = self
            .conn
            .query_first("SELECT @@GLOBAL.gtid_binlog_pos")
            .await
            .unwrap();
        BinlogPosition::new(file, pos, gtid).to_position()
    }

    pub async fn drop(mut self) {
        let _ = self
            .conn
            .query_drop(format!("DROP DATABASE IF EXISTS `{}`", self.name))
            .await;
        let _ = self.conn.disconnect().await;
    }
}

/// A source for every table of `db`, with extra YAML config lines.
pub fn source(db: &str, pipeline: &str, extra: &str) -> MysqlSource {
    let history = if extra.contains("schema_history_path") {
        String::new()
    } else {
        format!(
            "schema_history_path: {}\n",
            history_path(pipeline).display()
        )
    };
    let yaml = format!(
        "type: mysql\nurl: {}\ntables: ['{db}.*']\n{history}{extra}",
        url()
    );
    let section = ConfigSection::from_yaml("source", &yaml).unwrap();
    let settings = Settings::new(section.extract().unwrap(), pipeline).unwrap();
    MysqlSource::new(settings, &Context::new(pipeline))
}

/// The schema history file of a test pipeline: in a directory of this test process, so that no
/// history of an earlier run is taken for this one's.
pub fn history_path(pipeline: &str) -> std::path::PathBuf {
    std::env::temp_dir()
        .join(format!("cdc-mysql-tests-{}", std::process::id()))
        .join(format!("{pipeline}.schema-history"))
}

/// What a source produced.
#[derive(Default)]
pub struct Collected {
    pub events: Vec<ChangeEvent>,
    pub checkpoints: Vec<Position>,
    pub batches: Vec<(usize, Option<Position>)>,
    pub finished: bool,
}

impl Collected {
    pub fn push(&mut self, b: Batch) {
        self.batches.push((b.events.len(), b.checkpoint.clone()));
        if let Some(c) = b.checkpoint {
            self.checkpoints.push(c);
        }
        self.events.extend(b.events);
    }

    pub fn last_checkpoint(&self) -> Option<Position> {
        self.checkpoints.last().cloned()
    }
}

/// Read batches until `done(events so far)` or the source finishes; panics after `secs`.
pub async fn read_until(
    src: &mut dyn Source,
    secs: u64,
    mut done: impl FnMut(&[ChangeEvent]) -> bool,
) -> Collected {
    let mut c = Collected::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !done(&c.events) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {secs} s with {} events",
            c.events.len()
        );
        match src.next_batch().await.expect("next_batch") {
            Some(b) => c.push(b),
            None => {
                c.finished = true;
                break;
            }
        }
    }
    c
}

/// Events of `table` only (DDL messages included when they name it).
pub fn of_table<'a>(events: &'a [ChangeEvent], table: &str) -> Vec<&'a ChangeEvent> {
    events
        .iter()
        .filter(|e| e.table.as_ref().is_some_and(|t| &*t.id.table == table))
        .collect()
}

pub fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        other => panic!("{other:?}"),
    }
}

/// `(op, id)` of the row events of `table`.
pub fn ops_ids(events: &[ChangeEvent], table: &str) -> Vec<(Op, i64)> {
    of_table(events, table)
        .iter()
        .filter(|e| e.op != Op::Message)
        .map(|e| {
            let row = e.after.as_ref().or(e.before.as_ref()).unwrap();
            (e.op, int(&row[0]))
        })
        .collect()
}
