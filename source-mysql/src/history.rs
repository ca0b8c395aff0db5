//! The schema history: the table definitions of every binlog position the stream may resume
//! from, so that rows are decoded with the definition of their own time (Debezium's schema
//! history), not with the live catalog of the moment the stream starts.
//!
//! The history is a file of JSON lines, one record a line, in binlog order:
//!
//! - `base`: every table definition the schema tracker holds at `position` (written at a fresh
//!   start: after the snapshot, at the start of a `snapshot: never` stream, or when a resume
//!   finds no history);
//! - `ddl`: a DDL statement (one the tracker follows: `CREATE`/`ALTER`/`DROP`/`RENAME TABLE`,
//!   ...) with `position` = the start of its event group and the default database it ran in.
//!
//! A resume from position `R` takes the last `base` at or before `R` and applies, in order, the
//! `ddl` records after it that start before `R` (a DDL whose group starts at `R` is read again
//! by the stream). Records at or after `R` are dropped: the stream writes them again as it passes
//! their statements. A `ddl` record is appended and fsynced before the batch holding the DDL is
//! returned, so before any position after it can be stored.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use connector_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

use crate::ddl::{SchemaTracker, TableState};
use crate::position::BinlogPosition;
use crate::schema::TableDef;

/// One line of the history file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum Record {
    /// Every tracked table at `position`.
    Base {
        position: String,
        tables: Vec<TrackedTable>,
    },
    /// A DDL statement whose event group starts at `position`, run with default database
    /// `schema`.
    Ddl {
        position: String,
        schema: String,
        sql: String,
    },
}

/// A tracked table in a `base` record.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrackedTable {
    schema: String,
    table: String,
    state: TableState,
}

/// A DDL statement the stream passed, to append to the history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DdlRecord {
    /// The binlog file of its event group.
    pub file: String,
    /// The offset of its event group's first event.
    pub pos: u64,
    /// The default database it ran in.
    pub schema: String,
    /// The statement.
    pub sql: String,
}

/// The schema history file of one pipeline.
#[derive(Clone, Debug)]
pub struct SchemaHistory {
    path: PathBuf,
}

fn key_of(position: &str) -> Option<(u64, u64)> {
    let p = BinlogPosition::parse(position).ok()?;
    Some((p.file_seq(), p.pos))
}

impl SchemaHistory {
    /// The history at `path` (`source.schema_history_path`).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SchemaHistory { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io_error(&self, what: &str, e: std::io::Error) -> Error {
        Error::new(
            ErrorKind::Io,
            format!("{what} the schema history {}", self.path.display()),
        )
        .with_source(e)
    }

    fn bad(&self, line: usize, what: String) -> Error {
        Error::new(
            ErrorKind::Data,
            format!(
                "schema history {} line {line} is not valid: {what}",
                self.path.display()
            ),
        )
        .with_hint(
            "restore the file from a backup, or reset the offsets (`cdc offsets reset`) and \
             delete the file to take a new snapshot",
        )
    }

    /// Start the history over at `at` with the tracker's definitions (atomically: a new file
    /// replaces the old one).
    pub fn reset(&self, at: &BinlogPosition, tracker: &SchemaTracker) -> Result<()> {
        let mut tables: Vec<TrackedTable> = tracker
            .tables()
            .map(|(s, t, st)| TrackedTable {
                schema: s.to_string(),
                table: t.to_string(),
                state: st.clone(),
            })
            .collect();
        tables.sort_by(|a, b| (&a.schema, &a.table).cmp(&(&b.schema, &b.table)));
        let base = Record::Base {
            position: boundary(at),
            tables,
        };
        self.replace(&[base])
    }

    /// Write `records` as the whole file: a temporary file, fsynced, renamed over the old one,
    /// and the directory fsynced.
    fn replace(&self, records: &[Record]) -> Result<()> {
        let mut bytes = Vec::new();
        for r in records {
            serde_json::to_writer(&mut bytes, r)
                .map_err(|e| Error::internal("serialising the schema history").with_source(e))?;
            bytes.push(b'\n');
        }
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            File::open(&dir)?.sync_all()
        };
        write().map_err(|e| self.io_error("writing", e))
    }

    /// Append DDL records and fsync them.
    pub fn append(&self, records: &[DdlRecord]) -> Result<()> {
        let mut bytes = Vec::new();
        for r in records {
            let rec = Record::Ddl {
                position: BinlogPosition::new(r.file.clone(), r.pos, None).to_string(),
                schema: r.schema.clone(),
                sql: r.sql.clone(),
            };
            serde_json::to_writer(&mut bytes, &rec)
                .map_err(|e| Error::internal("serialising the schema history").with_source(e))?;
            bytes.push(b'\n');
        }
        let write = || -> std::io::Result<()> {
            let mut f = OpenOptions::new().append(true).open(&self.path)?;
            f.write_all(&bytes)?;
            f.sync_all()
        };
        write().map_err(|e| self.io_error("appending to", e))
    }

    /// The table definitions at `at`, rebuilt from the history; `None` when the file is missing
    /// or has no `base` record at or before `at`. Records at or after `at` are dropped from the
    /// file (the stream writes them again).
    pub fn rebuild(&self, at: &BinlogPosition) -> Result<Option<SchemaTracker>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io_error("reading", e)),
        };
        let target = (at.file_seq(), at.pos);
        let mut records = Vec::new();
        let mut torn = false;
        let mut lines = text.split_inclusive('\n').enumerate().peekable();
        while let Some((i, line)) = lines.next() {
            if line.trim().is_empty() {
                continue;
            }
            let rec: Record = match serde_json::from_str(line) {
                Ok(r) => r,
                // A last line cut short by a crash while it was appended: its DDL was never
                // followed by a stored position (the append is fsynced first).
                Err(_) if lines.peek().is_none() && !line.ends_with('\n') => {
                    torn = true;
                    break;
                }
                Err(e) => return Err(self.bad(i + 1, e.to_string())),
            };
            let position = match &rec {
                Record::Base { position, .. } | Record::Ddl { position, .. } => position,
            };
            let key = key_of(position)
                .ok_or_else(|| self.bad(i + 1, format!("position {position:?}")))?;
            records.push((key, rec));
        }
        // The last base at or before the target, then the DDL after it that start before it.
        let Some(base) = records
            .iter()
            .rposition(|(k, r)| matches!(r, Record::Base { .. }) && *k <= target)
        else {
            return Ok(None);
        };
        let keep = records[base..]
            .iter()
            .take_while(|(k, r)| match r {
                Record::Base { .. } => *k <= target,
                Record::Ddl { .. } => *k < target,
            })
            .count()
            + base;
        let mut tracker = SchemaTracker::new();
        for (_, rec) in &records[base..keep] {
            match rec {
                Record::Base { tables, .. } => {
                    tracker = SchemaTracker::new();
                    for t in tables {
                        tracker.set(&t.schema, &t.table, t.state.clone());
                    }
                }
                Record::Ddl { schema, sql, .. } => {
                    tracker.apply(sql, schema);
                }
            }
        }
        if torn || keep < records.len() || base > 0 {
            let kept: Vec<Record> = records.drain(base..keep).map(|(_, r)| r).collect();
            self.replace(&kept)?;
        }
        Ok(Some(tracker))
    }
}

/// `file=F;pos=P` of a position (row, GTIDs and snapshot flag dropped).
fn boundary(at: &BinlogPosition) -> String {
    BinlogPosition::new(at.file.clone(), at.pos, None).to_string()
}

/// How a tracked definition disagrees with the column names a `TABLE_MAP` event carries
/// (`binlog_row_metadata=FULL`), if it does.
pub fn disagreement(tracked: &TableDef, binlog_names: &[String]) -> Option<String> {
    let same = tracked.columns.len() == binlog_names.len()
        && tracked
            .columns
            .iter()
            .zip(binlog_names)
            .all(|(c, n)| c.name.eq_ignore_ascii_case(n));
    (!same).then(|| {
        format!(
            "tracked columns ({}), binlog columns ({})",
            tracked
                .columns
                .iter()
                .map(|c| c.name.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            binlog_names.join(", ")
        )
    })
}

/// Run a history operation off the runtime's worker threads (it fsyncs).
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("schema history task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ColumnDef, Kind};

    fn def(cols: &[&str]) -> TableDef {
        TableDef {
            schema: "db".into(),
            table: "s".into(),
            columns: cols.iter().map(|c| ColumnDef::new(*c, Kind::Int)).collect(),
        }
    }

    fn names(t: &SchemaTracker) -> Vec<String> {
        match t.get("db", "s") {
            Some(TableState::Known(d)) => d.columns.iter().map(|c| c.name.to_string()).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_definition_disagreeing_with_the_binlog_names_is_told() {
        let d = def(&["id", "a", "b"]);
        let same: Vec<String> = ["ID", "a", "b"].map(String::from).to_vec();
        assert!(disagreement(&d, &same).is_none());
        let moved: Vec<String> = ["id", "b", "a"].map(String::from).to_vec();
        let what = disagreement(&d, &moved).unwrap();
        assert!(
            what.contains("(id, a, b)") && what.contains("(id, b, a)"),
            "{what}"
        );
        assert!(disagreement(&d, &same[..2]).is_some());
    }

    #[test]
    fn a_resume_rebuilds_the_definitions_of_its_position() {
        // GIVEN a history with a base at 100 and a DDL at 200
        let dir = std::env::temp_dir().join(format!("cdc-history-unit-{}", std::process::id()));
        let h = SchemaHistory::new(dir.join("h"));
        let mut t = SchemaTracker::new();
        t.insert(def(&["id", "a", "b"]));
        h.reset(&BinlogPosition::new("bin.000001", 100, None), &t)
            .unwrap();
        h.append(&[DdlRecord {
            file: "bin.000001".into(),
            pos: 200,
            schema: "db".into(),
            sql: "ALTER TABLE s MODIFY a INT AFTER b".into(),
        }])
        .unwrap();
        // WHEN the schema is rebuilt after the DDL THEN it has the new order
        let after = h
            .rebuild(&BinlogPosition::new("bin.000001", 300, None))
            .unwrap()
            .unwrap();
        assert_eq!(names(&after), ["id", "b", "a"]);
        // AND WHEN at the DDL's own start (it is read again) THEN the old order, and the DDL
        // record is dropped from the file
        let at = h
            .rebuild(&BinlogPosition::new("bin.000001", 200, None))
            .unwrap()
            .unwrap();
        assert_eq!(names(&at), ["id", "a", "b"]);
        assert_eq!(
            std::fs::read_to_string(h.path()).unwrap().lines().count(),
            1
        );
        // AND before the base there is no history
        assert!(h
            .rebuild(&BinlogPosition::new("bin.000001", 50, None))
            .unwrap()
            .is_none());
        // AND a torn last line is ignored, a broken middle one is an error naming the line
        let mut f = OpenOptions::new().append(true).open(h.path()).unwrap();
        f.write_all(b"{\"kind\":\"ddl\",\"posi").unwrap();
        let at = h
            .rebuild(&BinlogPosition::new("bin.000001", 300, None))
            .unwrap()
            .unwrap();
        assert_eq!(names(&at), ["id", "a", "b"]);
        std::fs::write(h.path(), "{}\n{}\n").unwrap();
        let e = h
            .rebuild(&BinlogPosition::new("bin.000001", 300, None))
            .unwrap_err();
        assert!(e.message().contains("line 1"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
