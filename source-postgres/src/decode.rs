//! Decoding pgoutput (protocol version 1) into [`ChangeEvent`]s, in place from the stream's
//! buffer: Begin, Commit, Relation, Type, Insert, Update (old key `K` or old tuple `O`), Delete,
//! Truncate, Origin and logical decoding Message.
//!
//! The decoder also keeps the resume point (see [`crate::position`]) after everything decoded so
//! far, and skips the events already delivered when resuming inside a transaction.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use connector_core::{
    ChangeEvent, Column, Error, LogicalMessage, Op, Position, Result, Row, SnapshotMarker,
    SourceInfo, TableId, TableSchema, TxnEnd, TxnInfo, TxnLsns, Value,
};
use tracing::{debug, warn};

use crate::catalog::{TableInfo, TableSelector};
use crate::config::HEARTBEAT_PREFIX;
use crate::error::protocol_error;
use crate::position::{Lsn, PgPosition};
use crate::protocol::PG_EPOCH_OFFSET_US;
use crate::types::{convert, Conv, TypeCache};
use connector_core::encode::PG_MESSAGE_COLLECTION;

/// Debezium's connector name for PostgreSQL.
pub const CONNECTOR: &str = "postgresql";

/// A cursor over one pgoutput message.
struct Cur<'a> {
    b: &'a [u8],
    at: usize,
}

fn truncated() -> Error {
    protocol_error("pgoutput message truncated")
}

impl<'a> Cur<'a> {
    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let s = self.b.get(self.at..self.at + n).ok_or_else(truncated)?;
        self.at += n;
        Ok(s)
    }
    #[inline]
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    #[inline]
    fn u16(&mut self) -> Result<u16> {
        let s = self.take(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
    #[inline]
    fn u32(&mut self) -> Result<u32> {
        let s = self.take(4)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    #[inline]
    fn u64(&mut self) -> Result<u64> {
        let s = self.take(8)?;
        Ok(u64::from_be_bytes(s.try_into().map_err(|_| truncated())?))
    }
    fn cstr(&mut self) -> Result<&'a str> {
        let rest = self.b.get(self.at..).ok_or_else(truncated)?;
        let end = memchr::memchr(0, rest).ok_or_else(truncated)?;
        self.at += end + 1;
        std::str::from_utf8(&rest[..end]).map_err(|_| protocol_error("pgoutput name is not UTF-8"))
    }
}

/// A Relation message, owned, to be resolved against the catalog before it is applied.
#[derive(Clone, Debug)]
pub struct RelationMsg {
    /// Relation OID.
    pub oid: u32,
    /// Schema.
    pub schema: String,
    /// Table.
    pub name: String,
    /// Replica identity setting.
    pub replident: u8,
    /// Columns: flags (1 = part of the replica identity), name, type OID, typmod.
    pub columns: Vec<(u8, String, u32, i32)>,
}

struct Relation {
    schema: Arc<TableSchema>,
    convs: Vec<Conv>,
    ident: Vec<bool>,
    emit: bool,
    txn_gen: u64,
    table_order: u64,
}

struct Txn {
    xid: i64,
    id: Arc<str>,
    commit_lsn: Lsn,
    commit_ts_us: i64,
    count: u64,
    /// Where the transaction's first WAL record is (the Begin message's WAL start).
    first_lsn: Lsn,
    /// The data collections of its events, each once, in the order first seen (a relation, or
    /// `None` for a logical message, which Debezium counts as a collection of its own).
    collections: Vec<Option<u32>>,
}

/// The pgoutput decoder and its state.
pub struct Decoder {
    database: Arc<str>,
    selector: TableSelector,
    relations: HashMap<u32, Relation>,
    /// Type names and conversions.
    pub types: TypeCache,
    /// Catalog view of the tables (nullability, primary key), by OID.
    pub catalog: HashMap<u32, TableInfo>,
    txn: Option<Txn>,
    txn_gen: u64,
    /// Resuming inside this transaction: skip its first n events.
    skip: Option<(Lsn, u64)>,
    /// Everything up to here was delivered before (non-transactional messages at or before it
    /// are skipped).
    start: Lsn,
    checkpoint: PgPosition,
    warned: HashSet<(u32, usize)>,
    pos_buf: String,
    /// The LSN of the last commit message decoded: Debezium's `lastCommitLsn` in `sequence`.
    last_commit: Option<Lsn>,
    /// The open transaction's latest event and its position, held back until the next event or
    /// the commit shows whether it is the transaction's last (which then carries the counts).
    pending: Option<(ChangeEvent, PgPosition)>,
}

impl Decoder {
    /// A decoder resuming after `from`.
    pub fn new(
        database: Arc<str>,
        selector: TableSelector,
        types: TypeCache,
        catalog: HashMap<u32, TableInfo>,
        from: PgPosition,
    ) -> Self {
        let (start, skip) = match from {
            PgPosition::Stream { lsn, index: 0 } => (lsn, None),
            PgPosition::Stream { lsn, index } => (lsn, Some((lsn, index))),
            PgPosition::Snapshot { consistent } => (consistent, None),
        };
        Decoder {
            database,
            selector,
            relations: HashMap::new(),
            types,
            catalog,
            txn: None,
            txn_gen: 0,
            skip,
            start,
            checkpoint: from,
            warned: HashSet::new(),
            pos_buf: String::with_capacity(32),
            last_commit: None,
            pending: None,
        }
    }

    /// The position to resume from after everything decoded so far.
    pub fn checkpoint(&self) -> PgPosition {
        self.checkpoint
    }

    /// Whether a transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.txn.is_some()
    }

    /// A keepalive reported the server's WAL end: when no transaction is open, everything before
    /// it has been received, so it becomes the resume point (an idle slot still advances).
    pub fn keepalive(&mut self, wal_end: Lsn) {
        if self.txn.is_some() {
            return;
        }
        if let PgPosition::Stream { lsn, .. } = self.checkpoint {
            if wal_end > lsn {
                self.checkpoint = PgPosition::stream(wal_end, 0);
            }
        }
    }

    /// Decode one pgoutput message whose XLogData started at `wal_start`, appending events to
    /// `out`. A Relation message is returned to be resolved (catalog lookups) and then applied
    /// with [`Decoder::apply_relation`].
    pub fn handle(
        &mut self,
        data: &[u8],
        wal_start: Lsn,
        out: &mut Vec<ChangeEvent>,
    ) -> Result<Option<RelationMsg>> {
        let mut c = Cur { b: data, at: 1 };
        match data.first().copied().ok_or_else(truncated)? {
            b'B' => {
                let final_lsn = Lsn(c.u64()?);
                let ts = c.u64()? as i64;
                let xid = c.u32()?;
                if let Some((lsn, _)) = self.skip {
                    if final_lsn > lsn {
                        self.skip = None;
                    }
                }
                self.txn_gen += 1;
                self.txn = Some(Txn {
                    xid: i64::from(xid),
                    id: xid.to_string().into(),
                    commit_lsn: final_lsn,
                    // A hostile or corrupt timestamp must not overflow (found by fuzzing).
                    commit_ts_us: ts.saturating_add(PG_EPOCH_OFFSET_US),
                    count: 0,
                    first_lsn: wal_start,
                    collections: Vec::new(),
                });
            }
            b'C' => {
                let _flags = c.u8()?;
                let commit_lsn = Lsn(c.u64()?);
                let end_lsn = Lsn(c.u64()?);
                self.finish_transaction(end_lsn, out);
                self.txn = None;
                self.last_commit = Some(wal_start);
                if matches!(self.skip, Some((l, _)) if l == commit_lsn) {
                    self.skip = None;
                }
                if PgPosition::stream(end_lsn, 0) > self.checkpoint {
                    self.checkpoint = PgPosition::stream(end_lsn, 0);
                }
            }
            b'R' => {
                let oid = c.u32()?;
                let schema = c.cstr()?;
                let schema = if schema.is_empty() {
                    "pg_catalog"
                } else {
                    schema
                }
                .to_string();
                let name = c.cstr()?.to_string();
                let replident = c.u8()?;
                let n = c.u16()? as usize;
                // A column takes at least 10 bytes: the count sizes no more than the message holds.
                let mut columns = Vec::with_capacity(n.min(data.len() / 10));
                for _ in 0..n {
                    let flags = c.u8()?;
                    let col = c.cstr()?.to_string();
                    let type_oid = c.u32()?;
                    let typmod = c.u32()? as i32;
                    columns.push((flags, col, type_oid, typmod));
                }
                return Ok(Some(RelationMsg {
                    oid,
                    schema,
                    name,
                    replident,
                    columns,
                }));
            }
            b'I' => {
                let oid = c.u32()?;
                if let Some(ev) = self.row_event(oid, Op::Create, wal_start, &mut c)? {
                    self.emit(ev, out);
                }
            }
            b'U' => {
                let oid = c.u32()?;
                if let Some(ev) = self.row_event(oid, Op::Update, wal_start, &mut c)? {
                    self.emit(ev, out);
                }
            }
            b'D' => {
                let oid = c.u32()?;
                if let Some(ev) = self.row_event(oid, Op::Delete, wal_start, &mut c)? {
                    self.emit(ev, out);
                }
            }
            b'T' => {
                let n = c.u32()?;
                let _options = c.u8()?;
                for _ in 0..n {
                    let oid = c.u32()?;
                    let Some(rel) = self.relations.get(&oid) else {
                        return Err(protocol_error(format!(
                            "pgoutput truncate of relation {oid} before its Relation message"
                        )));
                    };
                    if !rel.emit {
                        continue;
                    }
                    let Some((n, order)) = self.next_index(Some(oid)) else {
                        continue;
                    };
                    let rel = &self.relations[&oid];
                    let ev = self.event(
                        Op::Truncate,
                        Some(Arc::clone(&rel.schema)),
                        (None, None),
                        n,
                        order,
                        wal_start,
                    );
                    self.emit(ev, out);
                }
            }
            b'M' => {
                let flags = c.u8()?;
                let lsn = Lsn(c.u64()?);
                let prefix = c.cstr()?.to_string();
                let len = c.u32()? as usize;
                let content = c.take(len)?.to_vec();
                let transactional = flags & 1 == 1 && self.txn.is_some();
                if transactional {
                    let Some((n, order)) = self.next_index(None) else {
                        return Ok(None);
                    };
                    let mut ev = self.event(Op::Message, None, (None, None), n, order, lsn);
                    // Debezium's message records name the database in `source.db`.
                    ev.source
                        .fields
                        .push(("db", Value::Text(self.database.to_string())));
                    ev.message = Some(LogicalMessage {
                        prefix,
                        content,
                        transactional,
                    });
                    self.emit(ev, out);
                } else {
                    if lsn <= self.start {
                        debug!(%lsn, "skipping a logical message delivered before");
                        return Ok(None);
                    }
                    let at = PgPosition::stream(lsn, 0);
                    if at > self.checkpoint {
                        self.checkpoint = at;
                    }
                    if prefix == HEARTBEAT_PREFIX {
                        return Ok(None);
                    }
                    out.push(ChangeEvent {
                        record: None,
                        op: Op::Message,
                        table: None,
                        before: None,
                        after: None,
                        commit_ts_us: connector_core::runtime::now_micros(),
                        txn: None,
                        position: at.to_position(),
                        source: SourceInfo {
                            connector: CONNECTOR,
                            snapshot: SnapshotMarker::False,
                            fields: vec![
                                ("db", Value::Text(self.database.to_string())),
                                ("sequence", sequence(self.last_commit, lsn)),
                                ("lsn", Value::Int(lsn.0 as i64)),
                            ],
                        },
                        message: Some(LogicalMessage {
                            prefix,
                            content,
                            transactional: false,
                        }),
                    });
                }
            }
            // Origin and Type carry nothing we need: types are resolved from the catalog.
            b'O' | b'Y' => {}
            other => {
                return Err(protocol_error(format!(
                    "unexpected pgoutput message {:?}",
                    other as char
                )))
            }
        }
        Ok(None)
    }

    /// The next event index in the open transaction and the table order, or `None` when the event
    /// was delivered before (resuming inside this transaction).
    #[inline]
    fn next_index(&mut self, table: Option<u32>) -> Option<(u64, u64)> {
        let txn = self.txn.as_mut()?;
        txn.count += 1;
        let n = txn.count;
        // Count per table before skipping, so that redelivered events keep their numbers.
        let order = match table.and_then(|oid| self.relations.get_mut(&oid)) {
            Some(rel) => {
                if rel.txn_gen != self.txn_gen {
                    rel.txn_gen = self.txn_gen;
                    rel.table_order = 0;
                    txn.collections.push(table);
                }
                rel.table_order += 1;
                rel.table_order
            }
            // A logical message is a data collection of its own in Debezium's counts.
            None => {
                txn.collections.push(None);
                1
            }
        };
        if let Some((lsn, k)) = self.skip {
            if lsn == txn.commit_lsn && n <= k {
                return None;
            }
        }
        Some((n, order))
    }

    fn event(
        &mut self,
        op: Op,
        table: Option<Arc<TableSchema>>,
        rows: (Option<Row>, Option<Row>),
        n: u64,
        table_order: u64,
        lsn: Lsn,
    ) -> ChangeEvent {
        let txn = self.txn.as_ref().expect("only called inside a transaction");
        let pos = PgPosition::stream(txn.commit_lsn, n);
        self.pos_buf.clear();
        let _ = write!(self.pos_buf, "{pos}");
        ChangeEvent {
            record: None,
            op,
            table,
            before: rows.0,
            after: rows.1,
            commit_ts_us: txn.commit_ts_us,
            txn: Some(TxnInfo {
                id: Arc::clone(&txn.id),
                order: n,
                table_order,
                lsns: Some(TxnLsns {
                    event: lsn.0,
                    begin: txn.first_lsn.0,
                }),
                end: None,
            }),
            position: Position::new(self.pos_buf.as_str()),
            source: SourceInfo {
                connector: CONNECTOR,
                snapshot: SnapshotMarker::False,
                fields: vec![
                    ("sequence", sequence(self.last_commit, lsn)),
                    ("txId", Value::Int(txn.xid)),
                    ("lsn", Value::Int(lsn.0 as i64)),
                ],
            },
            message: None,
        }
    }

    /// Hand on the event held back (the resume point follows it), and hold back `ev`.
    fn emit(&mut self, ev: ChangeEvent, out: &mut Vec<ChangeEvent>) {
        let pos = self.txn.as_ref().map_or(self.checkpoint, |t| {
            PgPosition::stream(t.commit_lsn, ev.txn.as_ref().map_or(0, |i| i.order))
        });
        if let Some((prev, at)) = self.pending.replace((ev, pos)) {
            self.checkpoint = at;
            out.push(prev);
        }
    }

    /// At the commit (whose WAL record ends at `end_lsn`): the held-back event is the
    /// transaction's last; it carries the counts of Debezium's END record.
    fn finish_transaction(&mut self, end_lsn: Lsn, out: &mut Vec<ChangeEvent>) {
        let Some((mut ev, at)) = self.pending.take() else {
            return;
        };
        if let (Some(txn), Some(info)) = (&self.txn, ev.txn.as_mut()) {
            let data_collections = txn
                .collections
                .iter()
                .map(|c| match c.and_then(|oid| self.relations.get(&oid)) {
                    Some(rel) => (
                        Arc::from(format!("{}.{}", rel.schema.id.schema, rel.schema.id.table)),
                        rel.table_order,
                    ),
                    None => (Arc::from(PG_MESSAGE_COLLECTION), 1),
                })
                .collect();
            info.end = Some(Arc::new(TxnEnd {
                event_count: txn.count,
                data_collections,
                lsn: Some(end_lsn.0),
            }));
        }
        self.checkpoint = at;
        out.push(ev);
    }

    fn row_event(
        &mut self,
        oid: u32,
        op: Op,
        lsn: Lsn,
        c: &mut Cur<'_>,
    ) -> Result<Option<ChangeEvent>> {
        let Some(rel) = self.relations.get(&oid) else {
            return Err(protocol_error(format!(
                "pgoutput change of relation {oid} before its Relation message"
            )));
        };
        if !rel.emit {
            return Ok(None);
        }
        let Some((n, order)) = self.next_index(Some(oid)) else {
            return Ok(None);
        };
        let rel = &self.relations[&oid];
        let mut before = None;
        let mut after = None;
        let mut old_full = false;
        let mut kind = c.u8()?;
        if kind == b'K' || kind == b'O' {
            let row = read_tuple(c, oid, rel, &mut self.warned)?;
            // A key-only old tuple (`K`) has nulls in the other columns, which Debezium writes
            // as nulls (the type's zero in a NOT NULL column), never as the placeholder.
            old_full = kind == b'O';
            before = Some(row);
            if op == Op::Update {
                kind = c.u8()?;
            }
        }
        if op != Op::Delete {
            if kind != b'N' {
                return Err(protocol_error(format!(
                    "pgoutput {} of relation {oid}: expected a new tuple, got {:?}",
                    op.as_str(),
                    kind as char
                )));
            }
            let mut row = read_tuple(c, oid, rel, &mut self.warned)?;
            // Unchanged TOAST values: take them from the old row when it carries them.
            if let Some(old) = before.as_ref().filter(|_| old_full) {
                for (v, o) in row.iter_mut().zip(old) {
                    if matches!(v, Value::Unavailable) && !matches!(o, Value::Unavailable) {
                        *v = o.clone();
                    }
                }
            } else if let Some(old) = &before {
                for ((v, o), ident) in row.iter_mut().zip(old).zip(&rel.ident) {
                    if *ident && matches!(v, Value::Unavailable) {
                        *v = o.clone();
                    }
                }
            }
            after = Some(row);
        }
        let schema = Arc::clone(&rel.schema);
        Ok(Some(self.event(
            op,
            Some(schema),
            (before, after),
            n,
            order,
            lsn,
        )))
    }

    /// Whether applying `msg` needs catalog lookups first (unknown types or columns).
    pub fn needs_catalog(&self, msg: &RelationMsg) -> (Vec<u32>, bool) {
        let types: Vec<u32> = msg
            .columns
            .iter()
            .map(|c| c.2)
            .filter(|o| !self.types.knows(*o))
            .collect();
        let table = match self.catalog.get(&msg.oid) {
            None => true,
            Some(t) => msg
                .columns
                .iter()
                .any(|(_, name, ..)| !t.columns.iter().any(|c| &c.name == name)),
        };
        (types, table)
    }

    /// Apply a resolved Relation message: events after it carry its columns.
    pub fn apply_relation(&mut self, msg: RelationMsg) {
        let info = self.catalog.get(&msg.oid);
        let catalog_col = |name: &str| info.and_then(|t| t.columns.iter().find(|c| c.name == name));
        let has_pk = info.is_some_and(TableInfo::has_pk);
        let columns: Vec<Column> = msg
            .columns
            .iter()
            .map(|(flags, name, type_oid, typmod)| {
                let cat = catalog_col(name);
                let key = if has_pk {
                    cat.is_some_and(|c| c.pk)
                } else {
                    matches!(msg.replident, b'i' | b'd') && flags & 1 == 1
                };
                Column {
                    name: name.as_str().into(),
                    type_name: self.types.type_name(*type_oid, *typmod),
                    nullable: !(key || cat.is_some_and(|c| c.not_null)),
                    key,
                    ty: self.types.column_type(*type_oid, *typmod),
                }
            })
            .collect();
        let schema = TableSchema::new(
            TableId::new(
                Arc::clone(&self.database),
                msg.schema.as_str(),
                msg.name.as_str(),
            ),
            columns,
        );
        let convs = msg.columns.iter().map(|c| self.types.conv(c.2)).collect();
        let ident = msg.columns.iter().map(|c| c.0 & 1 == 1).collect();
        let emit = self.selector.matches(&msg.schema, &msg.name);
        let (txn_gen, table_order) = self
            .relations
            .get(&msg.oid)
            .map_or((0, 0), |r| (r.txn_gen, r.table_order));
        let schema = match self.relations.get(&msg.oid) {
            Some(r) if *r.schema == schema => Arc::clone(&r.schema),
            _ => {
                if emit {
                    debug!(table = %schema.id, columns = schema.columns.len(), "table shape");
                }
                Arc::new(schema)
            }
        };
        self.warned.retain(|(oid, _)| *oid != msg.oid);
        self.relations.insert(
            msg.oid,
            Relation {
                schema,
                convs,
                ident,
                emit,
                txn_gen,
                table_order,
            },
        );
    }
}

/// Debezium's `source.sequence`: the JSON text `["<lastCommitLsn>","<lsn>"]` (null when no commit
/// was decoded yet).
fn sequence(last_commit: Option<Lsn>, lsn: Lsn) -> Value {
    Value::Text(match last_commit {
        Some(c) => format!("[\"{}\",\"{}\"]", c.0, lsn.0),
        None => format!("[null,\"{}\"]", lsn.0),
    })
}

/// Read a TupleData into values aligned with the relation's columns.
#[inline]
fn read_tuple(
    c: &mut Cur<'_>,
    oid: u32,
    rel: &Relation,
    warned: &mut HashSet<(u32, usize)>,
) -> Result<Row> {
    let n = c.u16()? as usize;
    if n != rel.convs.len() {
        return Err(protocol_error(format!(
            "pgoutput tuple of {} has {n} columns, its Relation message {}",
            rel.schema.id,
            rel.convs.len()
        )));
    }
    let mut row = Vec::with_capacity(n);
    for (i, conv) in rel.convs.iter().enumerate() {
        let v = match c.u8()? {
            b'n' => Value::Null,
            b'u' => Value::Unavailable,
            b't' => {
                let len = c.u32()? as usize;
                let s = c.take(len)?;
                match convert(conv, s) {
                    Some(v) => v,
                    None => {
                        if warned.insert((oid, i)) {
                            warn!(table = %rel.schema.id, column = %rel.schema.columns[i].name,
                                type_name = %rel.schema.columns[i].type_name,
                                "a value did not parse as its type; passing it on as text");
                        }
                        Value::Text(String::from_utf8_lossy(s).into_owned())
                    }
                }
            }
            b'b' => {
                let len = c.u32()? as usize;
                Value::Bytes(c.take(len)?.to_vec())
            }
            other => {
                return Err(protocol_error(format!(
                    "pgoutput tuple of {}: unknown column kind {:?}",
                    rel.schema.id, other as char
                )))
            }
        };
        row.push(v);
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    fn relation(oid: u32, cols: &[(&str, u32, u8)], replident: u8) -> Vec<u8> {
        let mut m = vec![b'R'];
        m.extend_from_slice(&oid.to_be_bytes());
        m.extend_from_slice(b"public\0t\0");
        m.push(replident);
        m.extend_from_slice(&(cols.len() as u16).to_be_bytes());
        for (name, ty, flags) in cols {
            m.push(*flags);
            m.extend_from_slice(name.as_bytes());
            m.push(0);
            m.extend_from_slice(&ty.to_be_bytes());
            m.extend_from_slice(&(-1i32).to_be_bytes());
        }
        m
    }

    fn tuple(vals: &[Option<&str>]) -> Vec<u8> {
        let mut m = (vals.len() as u16).to_be_bytes().to_vec();
        for v in vals {
            match v {
                None => m.push(b'n'),
                Some("\u{0}u") => m.push(b'u'),
                Some(s) => {
                    m.push(b't');
                    m.extend_from_slice(&(s.len() as u32).to_be_bytes());
                    m.extend_from_slice(s.as_bytes());
                }
            }
        }
        m
    }

    fn decoder(from: PgPosition) -> Decoder {
        let selector = TableSelector::new(&["public.*".into()], &[], false);
        Decoder::new(
            "db".into(),
            selector,
            TypeCache::default(),
            HashMap::new(),
            from,
        )
    }

    fn begin(lsn: u64, xid: u32) -> Vec<u8> {
        msg(&[
            b"B",
            &lsn.to_be_bytes(),
            &0u64.to_be_bytes(),
            &xid.to_be_bytes(),
        ])
    }

    fn commit(lsn: u64, end: u64) -> Vec<u8> {
        msg(&[
            b"C\0",
            &lsn.to_be_bytes(),
            &end.to_be_bytes(),
            &0u64.to_be_bytes(),
        ])
    }

    fn run(d: &mut Decoder, msgs: &[Vec<u8>]) -> Vec<ChangeEvent> {
        let mut out = Vec::new();
        for m in msgs {
            if let Some(r) = d.handle(m, Lsn(1), &mut out).unwrap() {
                d.apply_relation(r);
            }
        }
        out
    }

    #[test]
    fn a_begin_with_an_out_of_range_commit_time_does_not_overflow() {
        // GIVEN a Begin whose commit timestamp is the largest i64 (a fuzzing find: adding the
        // PostgreSQL epoch offset overflowed)
        let mut d = decoder(PgPosition::stream(Lsn(0), 0));
        let b = msg(&[
            b"B",
            &100u64.to_be_bytes(),
            &i64::MAX.to_be_bytes(),
            &5u32.to_be_bytes(),
        ]);
        // WHEN it is decoded THEN it does not panic and the time saturates
        let mut out = Vec::new();
        d.handle(&b, Lsn(1), &mut out).unwrap();
        assert_eq!(d.txn.as_ref().unwrap().commit_ts_us, i64::MAX);
    }

    #[test]
    fn toast_and_old_tuples() {
        let mut d = decoder(PgPosition::stream(Lsn(0), 0));
        let rel = relation(7, &[("id", 23, 1), ("big", 25, 0)], b'd');
        let upd_default = msg(&[
            b"U",
            &7u32.to_be_bytes(),
            b"N",
            &tuple(&[Some("1"), Some("\u{0}u")]),
        ]);
        let upd_full = msg(&[
            b"U",
            &7u32.to_be_bytes(),
            b"O",
            &tuple(&[Some("1"), Some("old big")]),
            b"N",
            &tuple(&[Some("1"), Some("\u{0}u")]),
        ]);
        let del_key = msg(&[b"D", &7u32.to_be_bytes(), b"K", &tuple(&[Some("1"), None])]);
        let evs = run(
            &mut d,
            &[
                rel,
                begin(100, 5),
                upd_default,
                upd_full,
                del_key,
                commit(100, 140),
            ],
        );
        assert_eq!(evs.len(), 3);
        assert_eq!(evs[0].after.as_ref().unwrap()[1], Value::Unavailable);
        assert_eq!(evs[0].before, None);
        assert_eq!(
            evs[1].after.as_ref().unwrap()[1],
            Value::Text("old big".into())
        );
        // Debezium: the key columns and null elsewhere (was the unavailable placeholder).
        assert_eq!(
            evs[2].before.as_ref().unwrap(),
            &vec![Value::Int(1), Value::Null]
        );
        assert_eq!(evs[2].position.as_str(), "0/64:3");
        assert_eq!(evs[2].txn.as_ref().unwrap().order, 3);
        assert_eq!(
            evs[2].source.fields[0],
            ("sequence", Value::Text("[null,\"1\"]".into()))
        );
        assert_eq!(d.checkpoint(), PgPosition::stream(Lsn(140), 0));
        assert!(evs[0].table.as_ref().unwrap().columns[0].key);
    }

    #[test]
    fn resuming_inside_a_transaction_skips_what_was_delivered() {
        let mut d = decoder(PgPosition::stream(Lsn(100), 2));
        let rel = relation(7, &[("id", 23, 1)], b'd');
        let ins = |v: &str| msg(&[b"I", &7u32.to_be_bytes(), b"N", &tuple(&[Some(v)])]);
        let evs = run(
            &mut d,
            &[
                rel,
                begin(100, 5),
                ins("1"),
                ins("2"),
                ins("3"),
                commit(100, 140),
                begin(200, 6),
                ins("4"),
                commit(200, 240),
            ],
        );
        let ids: Vec<_> = evs
            .iter()
            .map(|e| e.after.as_ref().unwrap()[0].clone())
            .collect();
        assert_eq!(ids, vec![Value::Int(3), Value::Int(4)]);
        assert_eq!(evs[0].position.as_str(), "0/64:3");
        assert_eq!(evs[0].txn.as_ref().unwrap().order, 3);
        assert_eq!(evs[0].txn.as_ref().unwrap().table_order, 3);
    }

    #[test]
    fn keepalives_advance_only_between_transactions() {
        let mut d = decoder(PgPosition::stream(Lsn(50), 0));
        d.keepalive(Lsn(60));
        assert_eq!(d.checkpoint(), PgPosition::stream(Lsn(60), 0));
        run(&mut d, &[begin(100, 1)]);
        d.keepalive(Lsn(90));
        assert_eq!(d.checkpoint(), PgPosition::stream(Lsn(60), 0));
        run(&mut d, &[commit(100, 140)]);
        d.keepalive(Lsn(120));
        assert_eq!(d.checkpoint(), PgPosition::stream(Lsn(140), 0));
    }

    #[test]
    fn the_last_event_of_a_transaction_carries_debeziums_end_counts() {
        // GIVEN a transaction over two tables with a logical message
        let mut d = decoder(PgPosition::stream(Lsn(0), 0));
        let ins = |oid: u32, v: &str| msg(&[b"I", &oid.to_be_bytes(), b"N", &tuple(&[Some(v)])]);
        let mut message = vec![b'M', 1];
        message.extend_from_slice(&300u64.to_be_bytes());
        message.extend_from_slice(b"pfx\0");
        message.extend_from_slice(&2u32.to_be_bytes());
        message.extend_from_slice(b"hi");
        let mut out = Vec::new();
        let feed = |d: &mut Decoder, m: &[u8], wal_start: u64, out: &mut Vec<ChangeEvent>| {
            if let Some(r) = d.handle(m, Lsn(wal_start), out).unwrap() {
                d.apply_relation(r);
            }
        };
        feed(&mut d, &relation(7, &[("id", 23, 1)], b'd'), 0, &mut out);
        let mut b = relation(8, &[("id", 23, 1)], b'd');
        b[12] = b'u'; // table `public.u`
        feed(&mut d, &b, 0, &mut out);
        feed(&mut d, &begin(400, 5), 90, &mut out);
        feed(&mut d, &ins(7, "1"), 100, &mut out);
        feed(&mut d, &ins(8, "2"), 200, &mut out);
        feed(&mut d, &message, 300, &mut out);
        feed(&mut d, &ins(7, "3"), 350, &mut out);
        // WHEN the commit has not arrived, THEN the latest event is held back and the resume
        // point does not cover it
        assert_eq!(out.len(), 3);
        assert_eq!(d.checkpoint(), PgPosition::stream(Lsn(400), 3));
        feed(&mut d, &commit(400, 480), 480, &mut out);
        // WHEN it has, THEN the last event carries the counts and every event Debezium's ids
        assert_eq!(out.len(), 4);
        let txns: Vec<&TxnInfo> = out.iter().map(|e| e.txn.as_ref().unwrap()).collect();
        assert_eq!(
            txns.iter()
                .map(|t| (t.order, t.table_order))
                .collect::<Vec<_>>(),
            [(1, 1), (2, 1), (3, 1), (4, 2)]
        );
        assert!(txns[..3].iter().all(|t| t.end.is_none()));
        assert_eq!(
            txns[1].lsns,
            Some(TxnLsns {
                event: 200,
                begin: 90
            })
        );
        let end = txns[3].end.as_deref().unwrap();
        assert_eq!(end.event_count, 4);
        assert_eq!(end.lsn, Some(480));
        let names: Vec<(&str, u64)> = end
            .data_collections
            .iter()
            .map(|(n, c)| (&**n, *c))
            .collect();
        assert_eq!(
            names,
            [("public.t", 2), ("public.u", 1), (PG_MESSAGE_COLLECTION, 1)]
        );
        assert_eq!(d.checkpoint(), PgPosition::stream(Lsn(480), 0));
    }
}
