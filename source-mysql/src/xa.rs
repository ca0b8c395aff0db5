//! XA transactions: what is held between a transaction's prepared part and its `XA COMMIT`,
//! and how `XA ...` statements are recognised.

use std::sync::Arc;

use connector_core::{LogicalMessage, Op, TableSchema, Value};

use crate::binlog::Xid;
use crate::position::BinlogPosition;

/// The captured changes of an XA transaction's prepared part, while it is read.
#[derive(Debug, Default)]
pub(crate) struct Hold {
    /// From `XA START` or MariaDB's GTID event; the `XA_PREPARE` event has it too.
    pub(crate) xid: Option<Xid>,
    pub(crate) changes: Vec<HeldChange>,
    pub(crate) bytes: usize,
}

/// A change held for an XA transaction, without the position and transaction fields it gets when
/// it is delivered (those of its `XA COMMIT`).
#[derive(Debug)]
pub(crate) struct HeldChange {
    pub(crate) op: Op,
    pub(crate) table: Option<Arc<TableSchema>>,
    pub(crate) before: Option<Vec<Value>>,
    pub(crate) after: Option<Vec<Value>>,
    pub(crate) row_in_event: u64,
    pub(crate) message: Option<LogicalMessage>,
}

impl HeldChange {
    pub(crate) fn estimated_size(&self) -> usize {
        let row = |r: &Option<Vec<Value>>| {
            r.as_ref()
                .map_or(0, |r| r.iter().map(Value::estimated_size).sum::<usize>())
        };
        std::mem::size_of::<HeldChange>()
            + row(&self.before)
            + row(&self.after)
            + self.message.as_ref().map_or(0, |m| m.content.len())
    }
}

/// An XA transaction prepared (its part in the binlog read) but not yet committed or rolled back.
#[derive(Debug)]
pub(crate) struct PreparedXa {
    pub(crate) xid: Xid,
    /// The position before its prepared part: checkpoints stay at or before it until it is
    /// resolved, so that a restart reads the prepared part again.
    pub(crate) before: BinlogPosition,
    pub(crate) changes: Vec<HeldChange>,
    pub(crate) bytes: usize,
}

/// `XA <verb> ...` statements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum XaVerb {
    Start,
    End,
    Prepare,
    Commit,
    Rollback,
}

/// The verb of an `XA ...` statement and the text after it (the XID and options).
pub(crate) fn xa_statement(sql: &str) -> Option<(XaVerb, &str)> {
    let b = sql.as_bytes();
    if b.len() < 3 || !b[..2].eq_ignore_ascii_case(b"XA") || !b[2].is_ascii_whitespace() {
        return None;
    }
    let rest = sql[2..].trim_start();
    for (word, verb) in [
        ("START", XaVerb::Start),
        ("BEGIN", XaVerb::Start),
        ("END", XaVerb::End),
        ("PREPARE", XaVerb::Prepare),
        ("COMMIT", XaVerb::Commit),
        ("ROLLBACK", XaVerb::Rollback),
    ] {
        let rb = rest.as_bytes();
        if rb.len() > word.len()
            && rb[..word.len()].eq_ignore_ascii_case(word.as_bytes())
            && rb[word.len()].is_ascii_whitespace()
        {
            return Some((verb, &rest[word.len()..]));
        }
    }
    None
}
