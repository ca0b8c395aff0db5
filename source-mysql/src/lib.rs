//! `source-mysql`: change data capture from the binlog of MySQL 8.x and MariaDB 10.6+.
//!
//! ```yaml
//! source:
//!   type: mysql
//!   url: mysql://cdc@db.example:3306     # password from CDC_SOURCE__PASSWORD or password_file
//!   tables: [shop.orders, 'crm.*']
//!   snapshot: initial                    # initial | never | initial_only | when_needed
//! ```
//!
//! - **Streaming** ([`replication`]): the source registers as a replica (`server_id`), reads the
//!   binlog through `mysql_async` on a task of its own, verifies CRC32 checksums, and asks for
//!   server heartbeats so that a quiet server is not mistaken for a dead one. MariaDB's own GTID
//!   events are parsed from their bytes ([`binlog`]).
//! - **Rows** ([`decode`]) are decoded from the row images with the table shape of the
//!   `TABLE_MAP` event that precedes them: column names, signedness, charsets and ENUM/SET labels
//!   come from its optional metadata (`binlog_row_metadata=FULL`), or else from the schema tracker
//!   ([`ddl`]) that applies each DDL statement at its binlog position.
//! - **Positions** ([`position`]): binlog file and offset of the transaction, the executed GTID
//!   set, and a count of events already delivered inside a transaction; checkpoints fall on
//!   transaction ends unless a transaction outgrows a batch, and stay before the prepared part
//!   of an XA transaction until it is resolved (its changes are held until `XA COMMIT`).
//! - **Snapshot** ([`snapshot`]): consistent with the stream, lock-free on MariaDB.
//! - **Checks** ([`checks`]) for `cdc check`.
//!
//! The README has the configuration reference, the type table and the guarantees.

#![warn(missing_docs)]

pub mod binlog;
pub mod checks;
mod column_map;
pub mod config;
pub mod ddl;
mod decimal;
pub mod decode;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod history;
pub mod jsonb;
pub mod position;
pub mod replication;
pub mod schema;
pub mod snapshot;
pub mod source;
mod sql;
mod xa;

use connector_core::{ConfigSection, Context, Result, Source};

pub use config::{MysqlConfig, Settings, SnapshotMode};
pub use position::{BinlogPosition, GtidSet};
pub use source::MysqlSource;

/// The registry factory for `type: mysql`.
pub fn factory(section: &ConfigSection, ctx: &Context) -> Result<Box<dyn Source>> {
    let config: MysqlConfig = section.extract()?;
    let settings = Settings::new(config, &ctx.pipeline)?;
    Ok(Box::new(MysqlSource::new(settings, ctx)))
}
