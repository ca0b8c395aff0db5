//! The `file` and `stdout` sinks: one JSON line per event, `{"key":...,"value":...}`, in the
//! shared Debezium-compatible encoding.
//!
//! Writing happens on a dedicated thread that groups whatever batches are queued into one write
//! and (for `file`) one `fsync`, then acknowledges them: `file` reports a batch durable only after
//! its lines are fsynced. `stdout` reports it once written and flushed to the pipe; it is for demos
//! and debugging, and its durability is whatever reads the pipe.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use crate::check::Check;
use crate::clock::now_micros;
use crate::config::{ConfigSection, ConnectorType};
use crate::context::Context;
use crate::encode::{
    BinaryMode, DecimalMode, Encoder, Format, HstoreMode, IntervalMode, Modes, TimePrecisionMode,
    TxnMark,
};
use crate::error::{Error, ErrorKind, Result};
use crate::event::{Batch, ChangeEvent};
use crate::sink::{BatchAck, Sink};

/// `sink: { type: file, path: ..., format: debezium, fsync: true }`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// Always `file`.
    #[serde(rename = "type")]
    pub kind: ConnectorType,
    /// The file events are appended to (created with its directories when missing).
    pub path: PathBuf,
    /// `debezium` (default) or `flat`.
    #[serde(default)]
    pub format: Format,
    /// fsync before acknowledging (default true). With `false`, "durable" means handed to the
    /// operating system: it survives a crash of `cdc`, not of the machine.
    #[serde(default = "default_true")]
    pub fsync: bool,
    /// Wrap keys and values with their Kafka Connect schema, as Kafka Connect's JSON converter does
    /// with `schemas.enable=true`. Default false.
    #[serde(default)]
    pub schemas: bool,
    /// Debezium's `decimal.handling.mode`: `precise`, `double` or `string` (default).
    #[serde(default)]
    pub decimal_handling_mode: DecimalMode,
    /// Debezium's `time.precision.mode`: `adaptive`, `adaptive_time_microseconds`, `connect` or
    /// `isostring` (default).
    #[serde(default)]
    pub time_precision_mode: TimePrecisionMode,
    /// Debezium's `binary.handling.mode`: `bytes`, `base64` (default), `base64-url-safe` or `hex`.
    #[serde(default)]
    pub binary_handling_mode: BinaryMode,
    /// Debezium's `interval.handling.mode`: `numeric` or `string` (default).
    #[serde(default)]
    pub interval_handling_mode: IntervalMode,
    /// Debezium's `hstore.handling.mode`: `json` (default) or `map`.
    #[serde(default)]
    pub hstore_handling_mode: HstoreMode,
    /// Debezium's `provide.transaction.metadata`: every event's `transaction` block (null
    /// without), and a BEGIN line before each transaction's events and an END line after them.
    /// Default false.
    #[serde(default)]
    pub transaction_metadata: bool,
}

/// `sink: { type: stdout, format: debezium }`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutSinkConfig {
    /// Always `stdout`.
    #[serde(rename = "type")]
    pub kind: ConnectorType,
    /// `debezium` (default) or `flat`.
    #[serde(default)]
    pub format: Format,
    /// Wrap keys and values with their Kafka Connect schema, as Kafka Connect's JSON converter does
    /// with `schemas.enable=true`. Default false.
    #[serde(default)]
    pub schemas: bool,
    /// Debezium's `decimal.handling.mode`: `precise`, `double` or `string` (default).
    #[serde(default)]
    pub decimal_handling_mode: DecimalMode,
    /// Debezium's `time.precision.mode`: `adaptive`, `adaptive_time_microseconds`, `connect` or
    /// `isostring` (default).
    #[serde(default)]
    pub time_precision_mode: TimePrecisionMode,
    /// Debezium's `binary.handling.mode`: `bytes`, `base64` (default), `base64-url-safe` or `hex`.
    #[serde(default)]
    pub binary_handling_mode: BinaryMode,
    /// Debezium's `interval.handling.mode`: `numeric` or `string` (default).
    #[serde(default)]
    pub interval_handling_mode: IntervalMode,
    /// Debezium's `hstore.handling.mode`: `json` (default) or `map`.
    #[serde(default)]
    pub hstore_handling_mode: HstoreMode,
    /// Debezium's `provide.transaction.metadata`: every event's `transaction` block (null
    /// without), and a BEGIN line before each transaction's events and an END line after them.
    /// Default false.
    #[serde(default)]
    pub transaction_metadata: bool,
}

/// The handling modes of a file or stdout sink config.
macro_rules! modes {
    ($c:expr) => {
        Modes {
            decimal: $c.decimal_handling_mode,
            time: $c.time_precision_mode,
            binary: $c.binary_handling_mode,
            interval: $c.interval_handling_mode,
            hstore: $c.hstore_handling_mode,
        }
    };
}

fn default_true() -> bool {
    true
}

/// Registry factory for `type: file`.
pub fn file_factory(section: &ConfigSection, ctx: &Context) -> Result<Box<dyn Sink>> {
    let c: FileSinkConfig = section.extract()?;
    Ok(Box::new(LineSink::new(
        Target::File {
            path: c.path,
            fsync: c.fsync,
        },
        Encoder::new(Arc::clone(&ctx.pipeline), c.format)
            .with_schemas(c.schemas)
            .with_modes(modes!(c))
            .with_transaction_metadata(c.transaction_metadata),
    )))
}

/// Registry factory for `type: stdout`.
pub fn stdout_factory(section: &ConfigSection, ctx: &Context) -> Result<Box<dyn Sink>> {
    let c: StdoutSinkConfig = section.extract()?;
    Ok(Box::new(LineSink::new(
        Target::Stdout,
        Encoder::new(Arc::clone(&ctx.pipeline), c.format)
            .with_schemas(c.schemas)
            .with_modes(modes!(c))
            .with_transaction_metadata(c.transaction_metadata),
    )))
}

/// Where lines go.
#[derive(Clone, Debug)]
pub enum Target {
    /// Append to a file, optionally fsyncing before acknowledging.
    File {
        /// The file.
        path: PathBuf,
        /// fsync before acknowledging.
        fsync: bool,
    },
    /// Standard output.
    Stdout,
}

enum Job {
    Write(Vec<u8>, BatchAck),
    Flush(oneshot::Sender<()>),
}

/// Encoded-batch buffers the writer thread hands back for reuse: a batch's lines are a few MB,
/// and allocating them afresh per batch (freed on another thread) cost page faults and resident
/// memory.
type BufferPool = Arc<Mutex<Vec<Vec<u8>>>>;

/// Buffers kept for reuse.
const POOLED_BUFFERS: usize = 2;

/// A sink writing JSON lines to a [`Target`].
pub struct LineSink {
    target: Target,
    encoder: Encoder,
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<std::thread::JoinHandle<()>>,
    pool: BufferPool,
}

impl LineSink {
    /// A sink writing to `target` with `encoder`.
    pub fn new(target: Target, encoder: Encoder) -> Self {
        LineSink {
            target,
            encoder,
            jobs: None,
            writer: None,
            pool: BufferPool::default(),
        }
    }

    fn encode(&self, batch: &Batch) -> Vec<u8> {
        let now = now_micros();
        let mut out = self
            .pool
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_default();
        out.clear();
        out.reserve(batch.events.len() * 512);
        for ev in &batch.events {
            let (begin, end) = self.encoder.transaction_marks(ev);
            if begin {
                self.transaction_line(ev, TxnMark::Begin, &mut out);
            }
            out.extend_from_slice(b"{\"key\":");
            if !self.encoder.write_key(ev, &mut out) {
                out.extend_from_slice(b"null");
            }
            out.extend_from_slice(b",\"value\":");
            self.encoder.write_value(ev, now, &mut out);
            out.extend_from_slice(b"}\n");
            if end {
                self.transaction_line(ev, TxnMark::End, &mut out);
            }
        }
        out
    }

    /// The BEGIN or END line of `ev`'s transaction.
    fn transaction_line(&self, ev: &ChangeEvent, mark: TxnMark, out: &mut Vec<u8>) {
        let Some(txn) = &ev.txn else { return };
        out.extend_from_slice(b"{\"key\":");
        self.encoder.write_transaction_key(txn, mark, out);
        out.extend_from_slice(b",\"value\":");
        self.encoder.write_transaction_value(ev, mark, out);
        out.extend_from_slice(b"}\n");
    }
}

/// The open output of a [`LineSink`].
enum Output {
    Stdout(std::io::Stdout),
    File(LineFile),
}

impl Output {
    fn open(target: &Target) -> Result<Self> {
        match target {
            Target::Stdout => Ok(Output::Stdout(std::io::stdout())),
            Target::File { path, fsync } => LineFile::open(path, *fsync).map(Output::File),
        }
    }

    /// Append `bytes` (whole lines).
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Output::Stdout(out) => out.write_all(bytes),
            Output::File(file) => file.append(bytes),
        }
    }

    /// Make what was appended durable (flushed, fsynced for `file` with `fsync`), or, when a write
    /// or the sync failed, cut the file back to its last acknowledged line.
    fn commit(&mut self, written: std::io::Result<()>) -> std::io::Result<()> {
        match self {
            Output::Stdout(out) => written.and_then(|()| out.flush()),
            Output::File(file) => file.commit(written),
        }
    }
}

/// A file of JSON lines that only ever holds whole lines: a failed or partial write is cut back
/// to the end of the last acknowledged batch, and a torn tail left by a crash is cut off when the
/// file is opened.
struct LineFile {
    file: std::fs::File,
    path: PathBuf,
    fsync: bool,
    /// The length after the last acknowledged group: always the end of a line.
    acknowledged_len: u64,
    /// Bytes appended since.
    appended_len: u64,
}

impl LineFile {
    fn open(path: &Path, fsync: bool) -> Result<Self> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let dir_existed = dir.exists();
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::from(e).context(format!("creating the directory of {}", path.display()))
        })?;
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::from(e).context(format!("opening {}", path.display())))?;
        let len = whole_lines_len(&mut file).map_err(|e| {
            Error::from(e).context(format!("reading the end of {}", path.display()))
        })?;
        let on_disk = file.metadata().map_err(Error::from)?.len();
        if len < on_disk {
            // Never acknowledged: a batch is durable only once all its lines are written.
            tracing::warn!(
                file = %path.display(),
                cut_bytes = on_disk - len,
                "the file ends with a partial line (a crash while writing); cutting it off"
            );
            file.set_len(len)
                .map_err(|e| Error::from(e).context(format!("truncating {}", path.display())))?;
        }
        if fsync && (!existed || !dir_existed) {
            // The new file's directory entry (and any new directory's) must be durable too, or a
            // machine crash can lose the whole file after its lines were acknowledged.
            sync_dirs(dir, dir_existed).map_err(|e| {
                Error::from(e).context(format!("syncing the directory of {}", path.display()))
            })?;
        }
        Ok(LineFile {
            file,
            path: path.to_path_buf(),
            fsync,
            acknowledged_len: len,
            appended_len: 0,
        })
    }

    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all(bytes)?;
        self.appended_len += bytes.len() as u64;
        Ok(())
    }

    fn commit(&mut self, written: std::io::Result<()>) -> std::io::Result<()> {
        let result = written.and_then(|()| {
            if self.fsync {
                self.file.sync_data()
            } else {
                Ok(())
            }
        });
        match result {
            Ok(()) => {
                self.acknowledged_len += std::mem::take(&mut self.appended_len);
                Ok(())
            }
            Err(e) => {
                self.appended_len = 0;
                // Remove what this group wrote (perhaps half a line): the batches fail and are
                // written again after the restart, so the file never holds a torn line.
                if let Err(cut) = self.file.set_len(self.acknowledged_len) {
                    tracing::warn!(
                        file = %self.path.display(),
                        error = %cut,
                        "cutting a failed write back to the last whole line failed"
                    );
                }
                Err(e)
            }
        }
    }
}

/// The length of `file` up to and including its last newline (0 when it has none).
fn whole_lines_len(file: &mut std::fs::File) -> std::io::Result<u64> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    const CHUNK: u64 = 64 * 1024;
    let mut end = file.metadata()?.len();
    let mut buf = vec![0u8; CHUNK as usize];
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Whether `path` can be opened for appending (creating it and its directories), changing
/// nothing in an existing file: a pipeline may be writing it.
fn check_writable(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::from(e).context(format!("creating the directory of {}", path.display()))
        })?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(drop)
        .map_err(|e| Error::from(e).context(format!("opening {}", path.display())))
}

/// fsync `dir`, and its parent too when `dir` was just created.
fn sync_dirs(dir: &Path, dir_existed: bool) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()?;
    if !dir_existed {
        if let Some(parent) = dir.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(parent)?.sync_all()?;
        }
    }
    Ok(())
}

fn writer_loop(mut out: Output, mut jobs: mpsc::Receiver<Job>, what: String, pool: BufferPool) {
    let mut failed: Option<(ErrorKind, String)> = None;
    while let Some(first) = jobs.blocking_recv() {
        let mut group = vec![first];
        while let Ok(more) = jobs.try_recv() {
            group.push(more);
        }
        let mut acks = Vec::new();
        let mut flushes = Vec::new();
        let mut written: std::io::Result<()> = Ok(());
        for job in group {
            match job {
                Job::Write(bytes, ack) => {
                    if failed.is_none() && written.is_ok() && !bytes.is_empty() {
                        written = out.append(&bytes);
                    }
                    if let Ok(mut p) = pool.lock() {
                        if p.len() < POOLED_BUFFERS {
                            p.push(bytes);
                        }
                    }
                    acks.push(ack);
                }
                Job::Flush(done) => flushes.push(done),
            }
        }
        if failed.is_none() {
            if let Err(e) = out.commit(written) {
                // A closed standard output means nobody reads: retrying cannot help.
                let kind = if what == "stdout" && e.kind() == std::io::ErrorKind::BrokenPipe {
                    ErrorKind::Precondition
                } else {
                    ErrorKind::Io
                };
                failed = Some((kind, format!("writing to {what}: {e}")));
            }
        }
        for ack in acks {
            match &failed {
                None => ack.durable(),
                Some((kind, msg)) => ack.fail(Error::new(*kind, msg.clone())),
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

#[async_trait]
impl Sink for LineSink {
    async fn start(&mut self) -> Result<()> {
        let out = Output::open(&self.target)?;
        let (tx, rx) = mpsc::channel(64);
        let what = match &self.target {
            Target::Stdout => "stdout".to_string(),
            Target::File { path, .. } => path.display().to_string(),
        };
        let pool = Arc::clone(&self.pool);
        let handle = std::thread::Builder::new()
            .name("cdc-line-writer".into())
            .spawn(move || writer_loop(out, rx, what, pool))
            .map_err(|e| Error::internal("spawning the writer thread").with_source(e))?;
        self.jobs = Some(tx);
        self.writer = Some(handle);
        Ok(())
    }

    async fn write(&mut self, batch: Batch, ack: BatchAck) -> Result<()> {
        let bytes = self.encode(&batch);
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| Error::internal("sink written before start"))?;
        jobs.send(Job::Write(bytes, ack))
            .await
            .map_err(|_| Error::new(ErrorKind::Io, "the writer thread has stopped"))
    }

    async fn flush(&mut self) -> Result<()> {
        let Some(jobs) = &self.jobs else {
            return Ok(());
        };
        let (tx, rx) = oneshot::channel();
        jobs.send(Job::Flush(tx))
            .await
            .map_err(|_| Error::new(ErrorKind::Io, "the writer thread has stopped"))?;
        rx.await
            .map_err(|_| Error::new(ErrorKind::Io, "the writer thread has stopped"))
    }

    async fn stop(&mut self) -> Result<()> {
        self.jobs = None;
        if let Some(handle) = self.writer.take() {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        Ok(())
    }

    async fn check(&mut self) -> Vec<Check> {
        match &self.target {
            Target::Stdout => vec![Check::pass("stdout", "writable")],
            Target::File { path, .. } => match check_writable(path) {
                Ok(_) => vec![Check::pass(
                    format!("file {}", path.display()),
                    "can be opened for appending",
                )],
                Err(e) => vec![Check::from_error(format!("file {}", path.display()), &e)],
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_is_cut_back_to_the_last_whole_line() {
        // GIVEN a file holding one acknowledged line
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let mut file = LineFile::open(&path, true).unwrap();
        file.append(b"{\"key\":1}\n").unwrap();
        file.commit(Ok(())).unwrap();
        // WHEN a write gets half a line out and then fails (disk full)
        file.append(b"{\"key\":2}\n{\"ke").unwrap();
        let failed = file.commit(Err(std::io::Error::other("no space left on device")));
        // THEN the error is reported and the file holds only the acknowledged line
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"key\":1}\n");
        // AND later writes (after the restart) start on a line boundary
        let mut file = LineFile::open(&path, true).unwrap();
        file.append(b"{\"key\":2}\n").unwrap();
        file.commit(Ok(())).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"key\":1}\n{\"key\":2}\n"
        );
    }

    #[test]
    fn a_torn_tail_left_by_a_crash_is_cut_off_on_open() {
        // GIVEN a file whose last line was cut by a crash (never acknowledged)
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/events.jsonl");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "{\"key\":1}\n{\"key\":2}\n{\"key\":3,\"va").unwrap();
        // WHEN the sink opens it, THEN only whole lines remain and appends follow them
        let mut file = LineFile::open(&path, false).unwrap();
        file.append(b"{\"key\":3}\n").unwrap();
        file.commit(Ok(())).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"key\":1}\n{\"key\":2}\n{\"key\":3}\n"
        );
        // AND a file without any newline is emptied; `cdc check` changes nothing
        std::fs::write(&path, "{\"ke").unwrap();
        check_writable(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"ke");
        LineFile::open(&path, false).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"");
    }

    #[test]
    fn a_new_file_in_new_directories_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x/y/events.jsonl");
        let mut file = LineFile::open(&path, true).unwrap();
        file.append(b"{}\n").unwrap();
        file.commit(Ok(())).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}\n");
    }

    #[test]
    fn transaction_metadata_frames_each_transaction_with_begin_and_end_lines() {
        use crate::event::{Column, Op, Position, TableId, TableSchema, TxnEnd, TxnInfo, Value};
        // GIVEN a transaction of two events, the second its last
        let table = Arc::new(TableSchema::new(
            TableId::new("db", "public", "a"),
            vec![Column::new("id", "int4").key()],
        ));
        let events: Vec<ChangeEvent> = (1..=2)
            .map(|n| {
                let mut ev = ChangeEvent::row(
                    Op::Create,
                    Arc::clone(&table),
                    None,
                    Some(vec![Value::Int(n as i64)]),
                    Position::new(n.to_string()),
                );
                let mut txn = TxnInfo::new("7".into(), n, n);
                if n == 2 {
                    txn.end = Some(Arc::new(TxnEnd {
                        event_count: 2,
                        data_collections: vec![("public.a".into(), 2)],
                        lsn: None,
                    }));
                }
                ev.txn = Some(txn);
                ev
            })
            .collect();
        let batch = Batch::new(events, None);
        let lines = |metadata: bool| {
            let sink = LineSink::new(
                Target::Stdout,
                Encoder::new("p", Format::Debezium).with_transaction_metadata(metadata),
            );
            String::from_utf8(sink.encode(&batch))
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .collect::<Vec<_>>()
        };
        // WHEN it is written with transaction metadata, THEN BEGIN, the events, END
        let on = lines(true);
        assert_eq!(on.len(), 4);
        assert_eq!(on[0]["key"], serde_json::json!({"id": "7"}));
        assert_eq!(on[0]["value"]["status"], "BEGIN");
        assert_eq!(on[1]["value"]["transaction"]["total_order"], 1);
        assert_eq!(on[2]["value"]["transaction"]["data_collection_order"], 2);
        assert_eq!(on[3]["value"]["status"], "END");
        assert_eq!(on[3]["value"]["event_count"], 2);
        assert_eq!(
            on[3]["value"]["data_collections"],
            serde_json::json!([{"data_collection": "public.a", "event_count": 2}])
        );
        // AND without it, only the events, with a null transaction block
        let off = lines(false);
        assert_eq!(off.len(), 2);
        assert!(off[0]["value"]["transaction"].is_null());
    }
}
