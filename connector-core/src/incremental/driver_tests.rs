//! The driver against an in-memory table whose change log the test replays in order, with
//! changes made between the watermarks while chunks are read.

use std::collections::BTreeMap;

use super::*;
use crate::error::Error;
use crate::event::Column;

const FILTER_EVEN: &str = "id % 2 = 0";
const FILTER_BAD: &str = "no_such_column = 1";

// A test's script of entries: their size does not matter.
#[allow(clippy::large_enum_variant)]
enum Entry {
    Change(ChangeEvent),
    Mark(Watermark),
}

/// A table in memory, its change log, and changes to make before and after each chunk read.
struct Fake {
    schema: Arc<TableSchema>,
    nokey: Arc<TableSchema>,
    rows: BTreeMap<i64, String>,
    log: Vec<Entry>,
    seed: u64,
    /// Changes made before and after each chunk read (0: none).
    churn: usize,
    reads: usize,
    fail_retryable: bool,
}

fn table() -> TableId {
    TableId::new("db", "public", "t")
}

fn other() -> TableId {
    TableId::new("db", "public", "nokey")
}

impl Fake {
    fn new(n: i64, churn: usize) -> Self {
        Fake {
            schema: Arc::new(TableSchema::new(
                table(),
                vec![Column::new("id", "int8").key(), Column::new("v", "text")],
            )),
            nokey: Arc::new(TableSchema::new(
                other(),
                vec![Column::new("id", "int8"), Column::new("v", "text")],
            )),
            rows: (1..=n).map(|i| (i, format!("v{i}"))).collect(),
            log: Vec::new(),
            seed: 42,
            churn,
            reads: 0,
            fail_retryable: false,
        }
    }

    fn next(&mut self) -> u64 {
        self.seed = self
            .seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.seed >> 33
    }

    fn row(id: i64, v: &str) -> Row {
        vec![Value::Int(id), Value::Text(v.to_string())]
    }

    /// Update, delete or insert a random key and log the change.
    fn mutate(&mut self) {
        let max = self.rows.keys().next_back().copied().unwrap_or(0) + 5;
        let id = (self.next() % max as u64) as i64 + 1;
        let what = self.next() % 3;
        let schema = Arc::clone(&self.schema);
        let pos = Position::new(format!("{}", self.log.len()));
        let e = match (self.rows.get(&id).cloned(), what) {
            (Some(old), 0) => {
                self.rows.remove(&id);
                ChangeEvent::row(Op::Delete, schema, Some(Self::row(id, &old)), None, pos)
            }
            (Some(old), _) => {
                let new = format!("u{}", self.next());
                self.rows.insert(id, new.clone());
                ChangeEvent::row(
                    Op::Update,
                    schema,
                    Some(Self::row(id, &old)),
                    Some(Self::row(id, &new)),
                    pos,
                )
            }
            (None, _) => {
                let new = format!("c{}", self.next());
                self.rows.insert(id, new.clone());
                ChangeEvent::row(Op::Create, schema, None, Some(Self::row(id, &new)), pos)
            }
        };
        self.log.push(Entry::Change(e));
    }
}

#[async_trait]
impl ChunkReader for Fake {
    async fn table_schema(&mut self, t: &TableId) -> Result<Arc<TableSchema>> {
        Ok(if *t == table() {
            Arc::clone(&self.schema)
        } else {
            Arc::clone(&self.nokey)
        })
    }

    async fn estimate_rows(&mut self, _: &TableId) -> Result<Option<u64>> {
        Ok(Some(self.rows.len() as u64))
    }

    async fn max_key(
        &mut self,
        _: &TableId,
        key: &[Arc<str>],
        filter: Option<&str>,
    ) -> Result<Option<Vec<Value>>> {
        assert_eq!(key, [Arc::<str>::from("id")]);
        Ok(self
            .rows
            .keys()
            .rev()
            .find(|k| filter != Some(FILTER_EVEN) || *k % 2 == 0)
            .map(|k| vec![Value::Int(*k)]))
    }

    async fn read_chunk(&mut self, req: &ChunkRequest) -> Result<Vec<Row>> {
        if self.fail_retryable {
            return Err(Error::new(ErrorKind::Connection, "connection reset"));
        }
        if req.filter.as_deref() == Some(FILTER_BAD) {
            return Err(Error::new(
                ErrorKind::Config,
                "column \"no_such_column\" does not exist",
            ));
        }
        self.reads += 1;
        for _ in 0..self.churn {
            self.mutate();
        }
        let after = match req.after_key.as_deref() {
            Some([Value::Int(k)]) => *k,
            None => i64::MIN,
            other => panic!("{other:?}"),
        };
        let max = match req.max_key.as_deref() {
            Some([Value::Int(k)]) => *k,
            other => panic!("{other:?}"),
        };
        let rows = self
            .rows
            .range(after.saturating_add(1)..=max)
            .filter(|(k, _)| req.filter.as_deref() != Some(FILTER_EVEN) || *k % 2 == 0)
            .take(req.limit)
            .map(|(k, v)| Fake::row(*k, v))
            .collect();
        for _ in 0..self.churn {
            self.mutate();
        }
        Ok(rows)
    }

    async fn write_watermark(&mut self, w: &Watermark) -> Result<()> {
        self.log.push(Entry::Mark(w.clone()));
        Ok(())
    }
}

/// Replays the log through the driver as a source would, checking as it goes that every
/// snapshot row equals the row's state at that point of the log (never older than a streamed
/// change), and keeps the emitted topic.
struct Replay {
    done: usize,
    state: BTreeMap<i64, String>,
    topic: Vec<ChangeEvent>,
}

impl Replay {
    fn new(initial: &BTreeMap<i64, String>) -> Self {
        Replay {
            done: 0,
            state: initial.clone(),
            topic: Vec::new(),
        }
    }

    fn drain(&mut self, snap: &mut IncrementalSnapshot, fake: &Fake) {
        while self.done < fake.log.len() {
            let pos = Position::new(self.done.to_string());
            match &fake.log[self.done] {
                Entry::Change(e) => {
                    snap.on_stream_event(e);
                    let (id, v) = id_value(e);
                    match v {
                        Some(v) => self.state.insert(id, v),
                        None => self.state.remove(&id),
                    };
                    self.topic.push(e.clone());
                }
                Entry::Mark(w) => {
                    for e in snap.on_watermark(w, &pos, 0) {
                        assert_eq!(e.op, Op::Read);
                        assert_eq!(e.source.snapshot, SnapshotMarker::Incremental);
                        assert_eq!(e.source.snapshot.as_str(), "incremental");
                        assert_eq!(e.position, pos);
                        let (id, v) = id_value(&e);
                        assert_eq!(
                            self.state.get(&id),
                            v.as_ref(),
                            "snapshot row {id} is older than the log at {pos}"
                        );
                        self.topic.push(e);
                    }
                }
            }
            self.done += 1;
        }
    }

    /// Last event per key, deletes removing.
    fn materialise(&self) -> BTreeMap<i64, String> {
        let mut out = BTreeMap::new();
        for e in &self.topic {
            let (id, v) = id_value(e);
            match v {
                Some(v) => out.insert(id, v),
                None => out.remove(&id),
            };
        }
        out
    }

    fn reads(&self) -> usize {
        self.topic.iter().filter(|e| e.op == Op::Read).count()
    }
}

fn id_value(e: &ChangeEvent) -> (i64, Option<String>) {
    let id = match e.key_value(0) {
        Some(Value::Int(i)) => *i,
        other => panic!("{other:?}"),
    };
    let v = e.after.as_ref().map(|r| match &r[1] {
        Value::Text(s) => s.clone(),
        other => panic!("{other:?}"),
    });
    (id, if e.op == Op::Delete { None } else { v })
}

fn execute(id: &str, data: &str, captured: &[TableId]) -> SignalRecord {
    signal::parse_row(id, signal::EXECUTE_SNAPSHOT, Some(data), captured).unwrap()
}

fn signal(id: &str, kind: &str) -> SignalRecord {
    signal::parse_row(id, kind, None, &[table()]).unwrap()
}

async fn run_to_end(snap: &mut IncrementalSnapshot, fake: &mut Fake, replay: &mut Replay) {
    for _ in 0..10_000 {
        match snap.step(fake).await.unwrap() {
            Step::ChunkRead => replay.drain(snap, fake),
            Step::Idle => return,
            other => panic!("{other:?}"),
        }
    }
    panic!("the snapshot did not end");
}

#[tokio::test]
async fn a_quiet_table_is_read_whole_in_chunks() {
    let mut fake = Fake::new(2500, 0);
    let mut replay = Replay::new(&fake.rows);
    let mut snap = IncrementalSnapshot::new(vec![table()], 1000, None);
    snap.on_signal(execute(
        "s1",
        r#"{"data-collections":["public.t"]}"#,
        &[table()],
    ))
    .unwrap();
    assert!(snap.is_running());
    run_to_end(&mut snap, &mut fake, &mut replay).await;
    assert_eq!(replay.reads(), 2500);
    assert_eq!(fake.reads, 3);
    assert_eq!(replay.materialise(), fake.rows);
    assert!(snap.progress().is_none());
    assert_eq!(snap.status(), Status::default());
}

#[tokio::test]
async fn changes_during_each_window_win_over_the_chunk_and_the_replay_equals_the_table() {
    for churn in [1, 5, 40] {
        let mut fake = Fake::new(3000, churn);
        let mut replay = Replay::new(&fake.rows);
        let mut snap = IncrementalSnapshot::new(vec![table()], 97, None);
        snap.add_tables(&[table()]);
        run_to_end(&mut snap, &mut fake, &mut replay).await;
        assert_eq!(replay.materialise(), fake.rows, "churn {churn}");
        // Rows changed inside a window were not emitted as reads: at most one read per row.
        assert!(replay.reads() <= 3000 + fake.log.len(), "churn {churn}");
        let streamed = replay.topic.len() - replay.reads();
        assert!(streamed > 0);
    }
}

#[tokio::test]
async fn a_window_whose_rows_come_late_still_drops_keys_streamed_first() {
    // GIVEN a window opened (low watermark streamed) before the source hands over the rows.
    let schema = Fake::new(0, 0).schema;
    let mut w = ChunkWindow::new("x-1", table(), vec!["id".into()]);
    w.open();
    let upd = ChangeEvent::row(
        Op::Update,
        Arc::clone(&schema),
        Some(Fake::row(2, "a")),
        Some(Fake::row(2, "b")),
        Position::new("1"),
    );
    assert_eq!(w.on_stream_event(&upd), Dedupe::Removed);
    // WHEN the rows come THEN the streamed key is not emitted.
    w.fill(schema, vec![Fake::row(1, "a"), Fake::row(2, "a")]);
    assert_eq!(w.close().unwrap().1, vec![Fake::row(1, "a")]);
}

#[tokio::test]
async fn resumes_at_the_next_chunk_from_the_stored_progress() {
    let mut fake = Fake::new(1000, 2);
    let mut replay = Replay::new(&fake.rows);
    let mut snap = IncrementalSnapshot::new(vec![table()], 100, None);
    snap.on_signal(execute(
        "s1",
        r#"{"data-collections":["public.t"]}"#,
        &[table()],
    ))
    .unwrap();
    for _ in 0..3 {
        assert_eq!(snap.step(&mut fake).await.unwrap(), Step::ChunkRead);
        replay.drain(&mut snap, &fake);
    }
    // A fourth chunk is read but the process dies before its high watermark is streamed.
    let stored = compose_and_back(snap.progress().unwrap());
    assert_eq!(stored.chunks_done, 3);
    assert_eq!(snap.step(&mut fake).await.unwrap(), Step::ChunkRead);
    let old_marks: Vec<Watermark> = fake
        .log
        .iter()
        .filter_map(|e| match e {
            Entry::Mark(w) => Some(w.clone()),
            _ => None,
        })
        .collect();
    // The restarted source resumes from the stored progress and replays the log from where the
    // stored position was (the replay already covered everything up to it).
    let mut snap = IncrementalSnapshot::new(vec![table()], 100, Some(stored));
    // Watermarks of the earlier run are ignored.
    for w in &old_marks {
        assert!(snap.on_watermark(w, &Position::new("x"), 0).is_empty());
    }
    replay.drain(&mut snap, &fake);
    let reads_before = fake.reads;
    run_to_end(&mut snap, &mut fake, &mut replay).await;
    assert_eq!(replay.materialise(), fake.rows);
    // The table's 10 chunks were read once each, plus the one lost in the crash.
    assert_eq!(reads_before, 4);
    assert!(fake.reads <= 11, "{}", fake.reads);
    assert!(replay.reads() <= 1000 + 100, "{}", replay.reads());
}

fn compose_and_back(p: &Progress) -> Progress {
    let text = progress::compose("0/16B3748:3", Some(p));
    let (stream, back) = progress::decompose(&text).unwrap();
    assert_eq!(stream, "0/16B3748:3");
    back.unwrap()
}

#[tokio::test]
async fn pause_and_resume() {
    let mut fake = Fake::new(300, 0);
    let mut replay = Replay::new(&fake.rows);
    let mut snap = IncrementalSnapshot::new(vec![table()], 100, None);
    snap.add_tables(&[table()]);
    assert_eq!(snap.step(&mut fake).await.unwrap(), Step::ChunkRead);
    // Paused with a window outstanding: the window still completes.
    snap.on_signal(signal("p", signal::PAUSE_SNAPSHOT)).unwrap();
    assert_eq!(snap.step(&mut fake).await.unwrap(), Step::Waiting);
    replay.drain(&mut snap, &fake);
    assert_eq!(replay.reads(), 100);
    assert_eq!(snap.step(&mut fake).await.unwrap(), Step::Paused);
    assert!(snap.status().paused);
    assert!(snap.progress().unwrap().paused);
    assert_eq!(snap.next_chunk_request(), None);
    snap.on_signal(signal("r", signal::RESUME_SNAPSHOT))
        .unwrap();
    let req = snap.next_chunk_request().unwrap();
    assert_eq!(req.after_key, Some(vec![Value::Int(100)]));
    assert_eq!(req.max_key, Some(vec![Value::Int(300)]));
    assert_eq!(req.limit, 100);
    run_to_end(&mut snap, &mut fake, &mut replay).await;
    assert_eq!(replay.reads(), 300);
}

#[tokio::test]
async fn stop_abandons_the_open_window_and_goes_on_with_the_other_tables() {
    let captured = vec![table(), other()];
    let mut fake = Fake::new(300, 0);
    let mut replay = Replay::new(&fake.rows);
    let mut snap = IncrementalSnapshot::new(captured.clone(), 100, None);
    snap.on_signal(execute(
        "s1",
        r#"{"data-collections":["public.t","public.nokey"], "surrogate-key": "id"}"#,
        &captured,
    ))
    .unwrap();
    assert_eq!(snap.status().tables_left, 2);
    assert_eq!(snap.step(&mut fake).await.unwrap(), Step::ChunkRead);
    snap.on_signal(
        signal::parse_row(
            "stop1",
            signal::STOP_SNAPSHOT,
            Some(r#"{"data-collections":["public.t"]}"#),
            &captured,
        )
        .unwrap(),
    )
    .unwrap();
    // The stopped table's watermarks are ignored: nothing of it is emitted.
    replay.drain(&mut snap, &fake);
    assert_eq!(replay.reads(), 0);
    assert_eq!(snap.status().table.as_deref(), Some("public.nokey"));
    assert_eq!(snap.status().tables_left, 1);
    // Stop all.
    snap.on_signal(signal("stop2", signal::STOP_SNAPSHOT))
        .unwrap();
    assert!(!snap.is_running());
    assert_eq!(snap.step(&mut fake).await.unwrap(), Step::Idle);
}

#[tokio::test]
async fn filters_narrow_the_rows() {
    let mut fake = Fake::new(250, 0);
    let mut replay = Replay::new(&fake.rows);
    let mut snap = IncrementalSnapshot::new(vec![table()], 50, None);
    snap.on_signal(execute(
        "s1",
        &format!(
            r#"{{"data-collections":["public.t"],
                "additional-conditions":[{{"data-collection":"public.t","filter":"{FILTER_EVEN}"}}]}}"#
        ),
        &[table()],
    ))
    .unwrap();
    assert_eq!(
        snap.progress().unwrap().tables[0].filter.as_deref(),
        Some(FILTER_EVEN)
    );
    run_to_end(&mut snap, &mut fake, &mut replay).await;
    assert_eq!(replay.reads(), 125);
    assert!(replay.topic.iter().all(|e| id_value(e).0 % 2 == 0));
}

#[tokio::test]
async fn tables_that_cannot_be_read_are_reported_and_the_rest_goes_on() {
    let captured = vec![other(), table()];
    let mut fake = Fake::new(10, 0);
    let mut replay = Replay::new(&fake.rows);
    let mut snap = IncrementalSnapshot::new(captured.clone(), 100, None);
    // No primary key and no surrogate key.
    snap.on_signal(execute(
        "no-key",
        r#"{"data-collections":["public.nokey"]}"#,
        &captured,
    ))
    .unwrap();
    // A filter the database rejects.
    snap.on_signal(execute(
        "bad-filter",
        &format!(
            r#"{{"data-collections":["public.t"],
                "additional-conditions":[{{"data-collection":"public.t","filter":"{FILTER_BAD}"}}]}}"#
        ),
        &captured,
    ))
    .unwrap();
    assert_eq!(snap.step(&mut fake).await.unwrap(), Step::Idle);
    let errors = snap.status().errors;
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0].id, "no-key");
    assert_eq!(
        errors[0].problem,
        SignalProblem::NoKey {
            table: "public.nokey".into()
        }
    );
    assert_eq!(errors[1].id, "bad-filter");
    assert!(
        matches!(&errors[1].problem, SignalProblem::ReadFailed { table, detail }
            if table == "public.t" && detail.contains("no_such_column")),
        "{errors:?}"
    );
    // An unknown surrogate key names the column.
    snap.on_signal(execute(
        "sk",
        r#"{"data-collections":["public.t"], "surrogate-key": "nope"}"#,
        &captured,
    ))
    .unwrap();
    assert_eq!(snap.step(&mut fake).await.unwrap(), Step::Idle);
    assert!(matches!(
        &snap.status().errors[2].problem,
        SignalProblem::UnknownSurrogateKey { column, .. } if column == "nope"
    ));
    // Blocking snapshots are refused with the signal id.
    let e = snap
        .on_signal(execute(
            "blk",
            r#"{"data-collections":["public.t"], "type": "blocking"}"#,
            &captured,
        ))
        .unwrap_err();
    assert_eq!(e.id, "blk");
    assert!(matches!(e.problem, SignalProblem::Unsupported { .. }));
    assert!(!snap.is_running());
    // Nothing was emitted for the failing tables; the stream was untouched.
    replay.drain(&mut snap, &fake);
    assert_eq!(replay.reads(), 0);
}

#[tokio::test]
async fn a_retryable_read_error_is_returned_and_keeps_the_progress() {
    let mut fake = Fake::new(10, 0);
    let mut snap = IncrementalSnapshot::new(vec![table()], 100, None);
    snap.add_tables(&[table()]);
    fake.fail_retryable = true;
    let e = snap.step(&mut fake).await.unwrap_err();
    assert!(e.is_retryable());
    assert!(snap.is_running());
    assert!(snap.status().errors.is_empty());
}

#[tokio::test]
async fn an_empty_table_finishes_without_a_chunk() {
    let mut fake = Fake::new(0, 0);
    let mut snap = IncrementalSnapshot::new(vec![table()], 100, None);
    snap.add_tables(&[table()]);
    assert_eq!(snap.step(&mut fake).await.unwrap(), Step::Idle);
    assert_eq!(fake.reads, 0);
    assert!(fake.log.is_empty());
}

#[tokio::test]
async fn status_and_metrics_show_the_progress() {
    let mut fake = Fake::new(250, 0);
    let mut replay = Replay::new(&fake.rows);
    let mut snap = IncrementalSnapshot::new(vec![table()], 100, None);
    snap.add_tables(&[table()]);
    assert_eq!(snap.step(&mut fake).await.unwrap(), Step::ChunkRead);
    replay.drain(&mut snap, &fake);
    let s = snap.status();
    assert_eq!(s.table.as_deref(), Some("public.t"));
    assert_eq!((s.chunks_done, s.rows_emitted), (1, 100));
    assert_eq!(s.rows_estimated, Some(250));
    let m = Metrics::new();
    snap.record_metrics(&m);
    assert_eq!(m.get(metrics::INCREMENTAL_ROWS, &[]), Some(100.0));
    assert_eq!(m.get(metrics::INCREMENTAL_CHUNKS, &[]), Some(1.0));
    assert_eq!(
        m.get(
            metrics::INCREMENTAL_ROWS_ESTIMATED,
            &[("table", "public.t")]
        ),
        Some(250.0)
    );
    assert_eq!(m.get(metrics::INCREMENTAL_TABLES_LEFT, &[]), Some(1.0));
}

#[test]
fn a_resumed_progress_forgets_tables_no_longer_captured() {
    let p = Progress {
        id: "a".into(),
        tables: vec![
            PendingTable {
                table: other(),
                filter: None,
                surrogate_key: None,
                signal_id: None,
            },
            PendingTable {
                table: table(),
                filter: None,
                surrogate_key: None,
                signal_id: None,
            },
        ],
        begun: true,
        last_key: Some(vec![progress::KeyValue::Int(5)]),
        max_key: Some(vec![progress::KeyValue::Int(9)]),
        chunk_size: 10,
        paused: false,
        chunks_done: 1,
        rows_emitted: 10,
        windows: 1,
    };
    let snap = IncrementalSnapshot::new(vec![table()], 10, Some(p.clone()));
    let back = snap.progress().unwrap();
    assert_eq!(back.tables.len(), 1);
    assert!(!back.begun && back.last_key.is_none());
    let snap = IncrementalSnapshot::new(vec![], 10, Some(p.clone()));
    assert!(!snap.is_running());
    // Damaged stored keys: the table is read again from its start rather than from a wrong key.
    let mut damaged = p;
    damaged.tables.remove(0);
    damaged.last_key = Some(vec![progress::KeyValue::Uuid("not base64!".into())]);
    let snap = IncrementalSnapshot::new(vec![table()], 10, Some(damaged));
    let back = snap.progress().unwrap();
    assert!(!back.begun && back.last_key.is_none() && back.max_key.is_none());
}
