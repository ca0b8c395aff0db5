//! `sink-kafka`: the Kafka sink and the Kafka offset store of `cdc`.
//!
//! - [`factory`] builds the sink for `sink: { type: kafka, ... }`: keyed, ordered, acknowledged
//!   delivery of change events with the shared Debezium-compatible encoder, topic routing by
//!   template and per-table overrides, tombstones after deletes, key changes split into delete and
//!   create, headers with operation, position and transaction id, a dead-letter topic for events too
//!   large for the broker, and `delivery: exactly_once` with Kafka transactions that commit the
//!   records together with the pipeline's offset.
//! - [`offset_store_factory`] builds the store for `offsets: { type: kafka, ... }`: the last
//!   durable position per pipeline in a compacted topic (read committed for exactly-once
//!   pipelines, uncommitted for the others), so that a sidecar keeps no local state.
//!
//! The delivery contract of [`connector_core::Sink`] holds: a batch is reported durable only when
//! the broker acknowledged every record of it (at-least-once) or the transaction holding it
//! committed (exactly-once); a failed delivery fails its batch and nothing after it is produced.
//! See the crate README for the configuration reference, guarantees and error table.

#![warn(missing_docs)]

pub mod config;
pub mod encode;
pub mod error;
pub mod offsets;
pub mod producer;
pub mod route;
pub mod sink;

pub use config::{Delivery, KafkaOffsetsConfig, KafkaSinkConfig};
pub use offsets::{offset_store_factory, KafkaOffsetStore};
pub use sink::{factory, KafkaSink};
