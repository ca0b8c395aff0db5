//! The `file` and `stdout` sinks: one JSON line per event, `{"key":...,"value":...}`, in the
//! shared Debezium-compatible encoding.
//!
//! Writing happens on a dedicated thread that groups whatever batches are queued into one write
//! and (for `file`) one `fsync`, then acknowledges them: `file` reports a batch durable only after
//! its lines are fsynced. `stdout` reports it once written and flushed to the pipe; it is for demos
//! and debugging, and its durability is whatever reads the pipe.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use crate::check::Check;
use crate::config::{ConfigSection, ConnectorType};
use crate::encode::{
    BinaryMode, DecimalMode, Encoder, Format, HstoreMode, IntervalMode, Modes, TimePrecisionMode,
};
use crate::error::{Error, ErrorKind, Result};
use crate::event::Batch;
use crate::registry::Context;
use crate::runtime::now_micros;
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
            .with_modes(modes!(c)),
    )))
}

/// Registry factory for `type: stdout`.
pub fn stdout_factory(section: &ConfigSection, ctx: &Context) -> Result<Box<dyn Sink>> {
    let c: StdoutSinkConfig = section.extract()?;
    Ok(Box::new(LineSink::new(
        Target::Stdout,
        Encoder::new(Arc::clone(&ctx.pipeline), c.format)
            .with_schemas(c.schemas)
            .with_modes(modes!(c)),
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
            out.extend_from_slice(b"{\"key\":");
            if !self.encoder.write_key(ev, &mut out) {
                out.extend_from_slice(b"null");
            }
            out.extend_from_slice(b",\"value\":");
            self.encoder.write_value(ev, now, &mut out);
            out.extend_from_slice(b"}\n");
        }
        out
    }
}

fn open_target(target: &Target) -> Result<(Box<dyn Write + Send>, Option<std::fs::File>)> {
    match target {
        Target::Stdout => Ok((Box::new(std::io::stdout()), None)),
        Target::File { path, fsync } => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    Error::from(e).context(format!("creating the directory of {}", path.display()))
                })?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| Error::from(e).context(format!("opening {}", path.display())))?;
            let sync = if *fsync {
                Some(file.try_clone().map_err(Error::from)?)
            } else {
                None
            };
            Ok((Box::new(file), sync))
        }
    }
}

fn writer_loop(
    mut out: Box<dyn Write + Send>,
    sync: Option<std::fs::File>,
    mut jobs: mpsc::Receiver<Job>,
    what: String,
    pool: BufferPool,
) {
    let mut failed: Option<(ErrorKind, String)> = None;
    while let Some(first) = jobs.blocking_recv() {
        let mut group = vec![first];
        while let Ok(more) = jobs.try_recv() {
            group.push(more);
        }
        let mut acks = Vec::new();
        let mut flushes = Vec::new();
        let mut result: std::io::Result<()> = Ok(());
        for job in group {
            match job {
                Job::Write(bytes, ack) => {
                    if failed.is_none() && result.is_ok() && !bytes.is_empty() {
                        result = out.write_all(&bytes);
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
        if failed.is_none() && result.is_ok() {
            result = out.flush();
            if let (Ok(()), Some(f)) = (&result, &sync) {
                result = f.sync_data();
            }
        }
        if let Err(e) = result {
            // A closed standard output means nobody reads: retrying cannot help.
            let kind = if what == "stdout" && e.kind() == std::io::ErrorKind::BrokenPipe {
                ErrorKind::Precondition
            } else {
                ErrorKind::Io
            };
            failed = Some((kind, format!("writing to {what}: {e}")));
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
        let (out, sync) = open_target(&self.target)?;
        let (tx, rx) = mpsc::channel(64);
        let what = match &self.target {
            Target::Stdout => "stdout".to_string(),
            Target::File { path, .. } => path.display().to_string(),
        };
        let pool = Arc::clone(&self.pool);
        let handle = std::thread::Builder::new()
            .name("cdc-line-writer".into())
            .spawn(move || writer_loop(out, sync, rx, what, pool))
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
            Target::File { path, .. } => match open_target(&self.target) {
                Ok(_) => vec![Check::pass(
                    format!("file {}", path.display()),
                    "can be opened for appending",
                )],
                Err(e) => vec![Check::from_error(format!("file {}", path.display()), &e)],
            },
        }
    }
}
