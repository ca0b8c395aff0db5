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

/// The XA transactions the server holds prepared (`XA RECOVER`).
async fn prepared_xids(conn: &mut mysql_async::Conn) -> connector_core::Result<Vec<Xid>> {
    let rows: Vec<(i64, usize, usize, Vec<u8>)> = crate::sql::query(conn, "XA RECOVER").await?;
    Ok(rows
        .into_iter()
        .filter(|(_, g, b, data)| g + b <= data.len())
        .map(|(format_id, g, b, data)| Xid {
            format_id,
            gtrid: data[..g].to_vec(),
            bqual: data[g..g + b].to_vec(),
        })
        .collect())
}

/// Every event of `file` from `from_pos` as `(pos, event type, info)`, one row at a time
/// (`SHOW BINLOG EVENTS`; a file may hold millions).
async fn scan_events(
    conn: &mut mysql_async::Conn,
    file: &str,
    from_pos: u64,
    mut f: impl FnMut(u64, &str, &str),
) -> connector_core::Result<()> {
    use mysql_async::prelude::Queryable as _;
    let sql = format!(
        "SHOW BINLOG EVENTS IN '{}' FROM {from_pos}",
        file.replace('\'', "")
    );
    let what = |e| crate::error::classify(e, &format!("running `{sql}`"));
    let mut result = conn.query_iter(sql.as_str()).await.map_err(what)?;
    result
        .for_each(|mut r: mysql_async::Row| {
            let pos: u64 = r.take(1).unwrap_or(0);
            let kind: String = r.take(2).unwrap_or_default();
            let info: String = r.take(5).unwrap_or_default();
            f(pos, &kind, &info);
        })
        .await
        .map_err(what)
}

/// The binlog files the server has, oldest first.
async fn binlog_files(conn: &mut mysql_async::Conn) -> connector_core::Result<Vec<String>> {
    let rows: Vec<mysql_async::Row> = crate::sql::query(conn, "SHOW BINARY LOGS").await?;
    Ok(rows.into_iter().filter_map(|mut r| r.take(0)).collect())
}

/// The XA transactions (in `Xid` display form) whose prepared part a stream starting at `from`
/// must read from before `from`: those `XA RECOVER` lists and those committed after `from`,
/// unless their prepared part is after `from`.
pub(crate) async fn prepared_before(
    conn: &mut mysql_async::Conn,
    from: &BinlogPosition,
) -> connector_core::Result<Vec<String>> {
    let recovered = match prepared_xids(conn).await {
        Ok(r) => r,
        // MySQL 8 needs XA_RECOVER_ADMIN: without it only the transactions committed since
        // `from` are found (those still prepared are then missed at their commit).
        Err(e) if e.kind() == connector_core::ErrorKind::Permission => {
            tracing::warn!(error = %e.report(),
                "cannot list prepared XA transactions (XA RECOVER): grant XA_RECOVER_ADMIN \
                 (MySQL 8) so that XA transactions prepared before the stream's start and \
                 committed later are delivered");
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    let mut started = std::collections::HashSet::new();
    let mut committed = Vec::new();
    for file in binlog_files(conn).await? {
        if crate::position::file_seq(&file) < from.file_seq() {
            continue;
        }
        let pos = if file == from.file { from.pos } else { 4 };
        scan_events(conn, &file, pos, |_, _, info| match xa_statement(info) {
            Some((XaVerb::Start, rest)) => {
                if let Some(x) = Xid::parse_sql(rest.split(" GTID ").next().unwrap_or("")) {
                    started.insert(x.to_string());
                }
            }
            Some((XaVerb::Commit, rest)) => {
                if let Some(x) = Xid::parse_sql(rest) {
                    if !started.contains(&x.to_string()) {
                        committed.push(x.to_string());
                    }
                }
            }
            _ => {}
        })
        .await?;
    }
    committed.extend(recovered.iter().map(Xid::to_string));
    committed.retain(|x| !started.contains(x));
    committed.sort();
    committed.dedup();
    Ok(committed)
}

/// The earliest start of the prepared parts of `xids` (display form) in the binlog before
/// `before`, searched from `before`'s file backwards; an error naming the XIDs not found in any
/// file the server still has.
pub(crate) async fn earliest_prepared_part(
    conn: &mut mysql_async::Conn,
    before: &BinlogPosition,
    xids: &[String],
) -> connector_core::Result<BinlogPosition> {
    use connector_core::{Error, ErrorKind};
    let mut files = binlog_files(conn).await?;
    files.retain(|f| crate::position::file_seq(f) <= before.file_seq());
    let mut missing: Vec<String> = xids.to_vec();
    missing.sort();
    missing.dedup();
    let mut earliest = None;
    for file in files.iter().rev() {
        let mut group_start = 4u64;
        let in_start_file = file == &before.file;
        scan_events(conn, file, 4, |pos, kind, info| {
            if in_start_file && pos >= before.pos {
                return;
            }
            if kind.eq_ignore_ascii_case("Gtid") {
                group_start = pos;
            }
            // MariaDB writes `XA START xid GTID d-s-n` in the GTID event, MySQL a query event
            // after it.
            if let Some((XaVerb::Start, rest)) = xa_statement(info) {
                let x = Xid::parse_sql(rest.split(" GTID ").next().unwrap_or(""));
                if let Some(i) = x.and_then(|x| missing.iter().position(|m| *m == x.to_string())) {
                    missing.swap_remove(i);
                    earliest = Some(BinlogPosition::new(file.clone(), group_start, None));
                }
            }
        })
        .await?;
        if missing.is_empty() {
            break;
        }
    }
    match (missing.is_empty(), earliest) {
        (true, Some(p)) => Ok(p),
        _ => Err(Error::new(
            ErrorKind::Data,
            format!(
                "XA transactions prepared before the stream's start {before} are not in the \
                 binlog the server still has ({}): their changes could not be delivered when \
                 they are committed",
                missing.join(", ")
            ),
        )
        .with_hint(
            "commit or roll back the prepared XA transactions (XA RECOVER lists them), then \
             take the snapshot again (`cdc offsets reset`)",
        )),
    }
}
