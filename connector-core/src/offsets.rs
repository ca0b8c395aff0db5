//! Offset stores: where a pipeline keeps its last durable position.
//!
//! The `file` store is the embedded default. Writes are atomic (write a temporary file, fsync it,
//! rename it over the old one, fsync the directory), so a crash at any moment leaves either the old
//! or the new position, never a torn file. A running pipeline holds an exclusive lock on
//! `<path>.lock`, so a second instance of the same pipeline, or `cdc offsets set` while it runs,
//! fails instead of racing it.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::config::{ConfigSection, ConnectorType};
use crate::error::{Error, ErrorKind, Result};
use crate::event::Position;

/// Keeps the last durable position of one pipeline.
#[async_trait]
pub trait OffsetStore: Send + Sync {
    /// Take exclusive ownership of this pipeline's offsets for the life of the store; fails when
    /// another process (a running pipeline) holds them.
    async fn lock(&mut self) -> Result<()> {
        Ok(())
    }

    /// The stored position, if any.
    async fn load(&self) -> Result<Option<Position>>;

    /// Store `position`, replacing the previous one, durably.
    async fn store(&self, position: &Position) -> Result<()>;

    /// Forget the stored position (the next run starts from the beginning).
    async fn clear(&self) -> Result<()>;

    /// Where the offsets live, for messages (`file ./data/inventory.offsets`).
    fn describe(&self) -> String;
}

/// `offsets: { type: file, path: ... }`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileOffsetConfig {
    /// Always `file`.
    #[serde(rename = "type")]
    pub kind: ConnectorType,
    /// The offsets file. Default `./data/<name>.offsets`.
    pub path: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct FileContent {
    pipeline: String,
    position: Position,
    updated_at_ms: u64,
}

/// The embedded file offset store.
#[derive(Debug)]
pub struct FileOffsetStore {
    pipeline: String,
    path: PathBuf,
    lock: Option<File>,
}

impl FileOffsetStore {
    /// A store for `pipeline` at `path` (directories are created on first write).
    pub fn new(pipeline: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        FileOffsetStore {
            pipeline: pipeline.into(),
            path: path.into(),
            lock: None,
        }
    }

    /// Build from the `offsets:` section.
    pub fn from_config(section: &ConfigSection) -> Result<Self> {
        let c: FileOffsetConfig = section.extract()?;
        Ok(FileOffsetStore::new(section.pipeline_name()?, c.path))
    }

    /// The offsets file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io_error(&self, what: &str, e: std::io::Error) -> Error {
        Error::from(e).context(format!("{what} offsets file {}", self.path.display()))
    }

    fn ensure_dir(&self) -> Result<()> {
        if let Some(dir) = self.path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| self.io_error("creating the directory of the", e))?;
            }
        }
        Ok(())
    }

    fn sibling(&self, suffix: &str) -> PathBuf {
        let mut name = self
            .path
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        name.push(suffix);
        self.path.with_file_name(name)
    }

    fn load_sync(&self) -> Result<Option<Position>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io_error("reading", e)),
        };
        let content: FileContent = serde_json::from_str(&text).map_err(|e| {
            Error::new(
                ErrorKind::Data,
                format!("offsets file {} is not valid", self.path.display()),
            )
            .with_source(e)
            .with_hint("inspect it, or run `cdc offsets reset` to start over")
        })?;
        if content.pipeline != self.pipeline {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "offsets file {} belongs to pipeline {:?}, not {:?}",
                    self.path.display(),
                    content.pipeline,
                    self.pipeline
                ),
            )
            .with_hint("give each pipeline its own offsets path"));
        }
        Ok(Some(content.position))
    }

    fn store_sync(&self, position: &Position) -> Result<()> {
        self.ensure_dir()?;
        let content = FileContent {
            pipeline: self.pipeline.clone(),
            position: position.clone(),
            updated_at_ms: crate::clock::now_millis(),
        };
        let mut bytes = serde_json::to_vec_pretty(&content)
            .map_err(|e| Error::internal("serialising offsets").with_source(e))?;
        bytes.push(b'\n');
        let tmp = self.sibling(".tmp");
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent() {
                let dir = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| self.io_error("writing", e))
    }
}

#[async_trait]
impl OffsetStore for FileOffsetStore {
    async fn lock(&mut self) -> Result<()> {
        if self.lock.is_some() {
            return Ok(());
        }
        self.ensure_dir()?;
        let lock_path = self.sibling(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| self.io_error("opening the lock of the", e))?;
        match file.try_lock() {
            Ok(()) => {
                self.lock = Some(file);
                Ok(())
            }
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::new(
                ErrorKind::Fenced,
                format!(
                    "pipeline {:?} is running: another process holds {}",
                    self.pipeline,
                    lock_path.display()
                ),
            )
            .with_hint("stop the running pipeline first")),
            Err(std::fs::TryLockError::Error(e)) => Err(self.io_error("locking the", e)),
        }
    }

    async fn load(&self) -> Result<Option<Position>> {
        self.load_sync()
    }

    async fn store(&self, position: &Position) -> Result<()> {
        // Two fsyncs: on a busy disk they take tens of milliseconds, which must not stall the
        // runtime's worker thread (and the acknowledgements queued on it).
        let this = FileOffsetStore {
            pipeline: self.pipeline.clone(),
            path: self.path.clone(),
            lock: None,
        };
        let position = position.clone();
        tokio::task::spawn_blocking(move || this.store_sync(&position))
            .await
            .map_err(|e| Error::internal("the offsets writer task failed").with_source(e))?
    }

    async fn clear(&self) -> Result<()> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io_error("removing", e)),
        }
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stores_loads_and_clears() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/p.offsets");
        let store = FileOffsetStore::new("p", &path);
        assert_eq!(store.load().await.unwrap(), None);
        store.store(&Position::new("0/1A:3")).await.unwrap();
        store.store(&Position::new("0/1B:0")).await.unwrap();
        assert_eq!(store.load().await.unwrap(), Some(Position::new("0/1B:0")));
        assert!(!path.with_file_name("p.offsets.tmp").exists());
        store.clear().await.unwrap();
        assert_eq!(store.load().await.unwrap(), None);
    }

    #[tokio::test]
    async fn another_pipelines_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.offsets");
        FileOffsetStore::new("a", &path)
            .store(&Position::new("1"))
            .await
            .unwrap();
        let e = FileOffsetStore::new("b", &path).load().await.unwrap_err();
        assert!(e.message().contains("belongs to pipeline"), "{e}");
    }

    #[tokio::test]
    async fn a_second_lock_holder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.offsets");
        let mut first = FileOffsetStore::new("a", &path);
        first.lock().await.unwrap();
        let mut second = FileOffsetStore::new("a", &path);
        let e = second.lock().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Fenced);
        drop(first);
        second.lock().await.unwrap();
    }
}
