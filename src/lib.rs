//! `cdc`: change data capture from PostgreSQL and MySQL/MariaDB into Kafka.
//!
//! This crate wires the connectors into one [`registry()`] and provides the command line
//! ([`cli::main`]). A third party builds its own binary on the same runtime by adding its
//! connectors to the registry:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     let mut registry = cdc::registry();
//!     // registry.add_source("my-source", my_crate::factory);
//!     cdc::cli::main(registry)
//! }
//! ```

pub mod cli;
pub mod http;

pub use connector_core;
use connector_core::Registry;

/// Every connector this binary knows, by its `type:` name. The one place connectors are wired:
///
/// | section   | `type:`     | crate            |
/// |-----------|-------------|------------------|
/// | `source`  | `generator` | `connector-core` |
/// | `source`  | `postgres`  | `source-postgres` |
/// | `source`  | `mysql`     | `source-mysql`    |
/// | `sink`    | `kafka`     | `sink-kafka`      |
/// | `offsets` | `kafka`     | `sink-kafka`      |
/// | `sink`    | `stdout`    | `connector-core` |
/// | `sink`    | `file`      | `connector-core` |
/// | `offsets` | `file`      | `connector-core` |
pub fn registry() -> Registry {
    let mut registry = Registry::with_builtins();
    registry.add_source("postgres", source_postgres::factory);
    registry.add_source("mysql", source_mysql::factory);
    registry.add_sink("kafka", sink_kafka::factory);
    registry.add_offset_store("kafka", sink_kafka::offset_store_factory);
    registry
}
