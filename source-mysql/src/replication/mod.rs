//! Streaming the binlog: connecting as a replica, reading events on a task of their own (with
//! checksum verification and a liveness timeout fed by server heartbeats), and turning them into
//! change events in transaction order.
//!
//! One job per module: `server` probes the server ([`ServerInfo`], [`current_position`]),
//! `reader` reads the binlog stream ([`open_stream`], [`EventReader`]), `transaction` assembles
//! transactions and XA transactions into change events ([`Decoder`]), and `rows` decodes row
//! events against table definitions ([`Decoder::shape_of`]).

mod reader;
mod rows;
mod server;
mod transaction;

#[cfg(test)]
mod tests;

pub use reader::{log_open, open_stream, silence_timeout, verify_checksum, EventReader};
pub use server::{
    connect, current_position, exec, gtid_executed, load_collations, query, server_info, Flavor,
    ServerInfo,
};
pub use transaction::Decoder;
