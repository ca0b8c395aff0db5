//! `connector-core`: the event model, the [`Source`] and [`Sink`] traits with their delivery
//! contract, the pipeline runtime, offset stores, configuration loading, errors and metrics.
//!
//! It knows no database and no Kafka. The built-in `generator` source and `file`/`stdout` sinks
//! live here as worked examples and test tools.

#![warn(missing_docs)]

mod builtin;
pub mod check;
pub mod clock;
pub mod column_type;
pub mod config;
pub mod context;
pub mod encode;
pub mod error;
pub mod event;
pub mod failure_log;
pub mod file_sink;
pub mod generator;
pub mod health;
pub mod incremental;
pub mod metrics;
pub mod offsets;
pub mod registry;
pub mod runtime;
pub mod sink;
pub mod source;
#[cfg(feature = "test-utils")]
pub mod testing;
pub mod transform;

/// Re-exported so that connector crates implement the traits without depending on it themselves.
pub use async_trait::async_trait;
pub use check::{Check, CheckStatus};
pub use config::{Config, ConfigSection, ConnectorType, PipelineSettings, Secret};
pub use context::Context;
pub use encode::{Encoder, Format};
pub use error::{BoxError, Error, ErrorKind, Reason, Result};
pub use event::{
    Batch, ChangeEvent, Column, ColumnType, LogicalMessage, Op, Position, RawPart, RecordOverride,
    Row, SnapshotMarker, SourceInfo, TableId, TableSchema, TxnEnd, TxnInfo, TxnLsns, Value,
};
pub use failure_log::FailureLog;
pub use health::{Health, Phase};
pub use metrics::Metrics;
pub use offsets::{FileOffsetStore, OffsetStore};
pub use registry::Registry;
pub use runtime::{Outcome, Pipeline};
pub use sink::{BatchAck, SharedAck, Sink};
pub use source::Source;
pub use transform::{Transform, TransformChain, Verdict};
