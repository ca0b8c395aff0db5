//! Transaction and XA assembly: the [`Decoder`] follows event groups (GTID, `BEGIN`, `XID`,
//! `COMMIT`), applies DDL to the schema tracker, holds the changes of prepared XA transactions
//! until they are resolved, and gives each change event its position in its transaction.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use connector_core::{
    ChangeEvent, Error, ErrorKind, LogicalMessage, Op, Position, Result, SnapshotMarker,
    SourceInfo, TableSchema, TxnEnd, TxnInfo, Value,
};
use mysql_async::binlog::events::Event;
use tracing::{debug, warn};

use super::server::Flavor;
use crate::binlog::{
    event_type as et, parse_maria_gtid_list, MariaGtidEvent, MySqlGtidEvent, QueryEvent,
    RotateEvent, RowsEvent, XaPrepareEvent, Xid, LOG_EVENT_ARTIFICIAL_F,
};
use crate::config::TableFilter;
use crate::ddl::{Ddl, Name, SchemaTracker};
use crate::decode::TableShape;
use crate::history::DdlRecord;
use crate::position::{format_uuid, BinlogPosition, GtidSet};
use crate::schema::Collations;
use crate::xa::{xa_statement, HeldChange, Hold, PreparedXa, XaVerb};

/// The transaction being decoded.
#[derive(Debug)]
pub(super) struct Txn {
    start_pos: u64,
    id: Arc<str>,
    gtids_before: Option<Arc<str>>,
    /// The GTID to add to the executed set when it commits.
    gtid: Option<GtidAdd>,
    ts_us: i64,
    server_id: u32,
    thread: Option<u32>,
    began: bool,
    standalone: bool,
    order: u64,
    skip: u64,
    table_orders: Vec<(usize, u64)>,
    /// The data collections of its events (`db.table`) in the order first seen, aligned with
    /// `table_orders`: the END counts of transaction metadata.
    collections: Vec<Arc<str>>,
    /// `file=F;pos=P` of this transaction, for event positions.
    pos_prefix: String,
    /// `;gtids=G` (or empty), for event positions.
    pos_suffix: String,
    /// The order of the last event delivered (not skipped), if any.
    delivered: Option<u64>,
    /// Set in the prepared part of an XA transaction: its captured changes are held here, not
    /// delivered, until its `XA COMMIT` (or dropped at its `XA ROLLBACK`).
    hold: Option<Hold>,
}

#[derive(Clone, Copy, Debug)]
pub(super) enum GtidAdd {
    Maria(u32, u32, u64),
    MySql([u8; 16], u64),
}

/// Decodes binlog events into change events for the captured tables, tracking positions.
pub struct Decoder {
    flavor: Flavor,
    pub(super) filter: TableFilter,
    pub(super) collations: Collations,
    /// Table definitions in binlog order (used when `TABLE_MAP` lacks names).
    pub tracker: SchemaTracker,
    pub(super) file: Arc<str>,
    pub(super) pos: u64,
    gtids: Option<GtidSet>,
    gtids_text: Option<Arc<str>>,
    pub(super) txn: Option<Txn>,
    pub(super) tables: HashMap<u64, Option<Arc<TableShape>>>,
    pub(super) raw_maps: HashMap<u64, Vec<u8>>,
    /// Events to skip in the first transaction (a resume from a mid-transaction checkpoint).
    pending_skip: u64,
    /// The position after the last complete transaction.
    boundary: BinlogPosition,
    /// The position after the last delivered event (mid-transaction) or `boundary`.
    resume_point: BinlogPosition,
    /// Set when a `TABLE_MAP` lacked column names and the tracker was used.
    pub used_tracker: bool,
    /// Whether the server writes event checksums (`binlog_checksum` is not NONE).
    pub server_checksums: bool,
    /// Whether the stream was opened by GTID (not by file and offset).
    pub resume_by_gtid: bool,
    /// Before this `(file sequence, pos)`, only the prepared parts of XA transactions are read
    /// (held for their commit); nothing is delivered and DDL is not applied (the tracker holds
    /// the definitions of this point). Cleared once passed.
    deliver_from: Option<(u64, u64)>,
    /// A reused buffer for event positions.
    pos_buf: String,
    /// XA transactions prepared and not yet resolved, in binlog order, with their held changes.
    prepared: Vec<PreparedXa>,
    /// XA transactions prepared without captured changes (so that their commit is expected).
    prepared_empty: HashSet<Xid>,
    /// Bytes held for XA transactions (prepared ones and the one being read).
    pub(super) held_bytes: usize,
    /// The most bytes held for XA transactions (`max_xa_held_bytes`); past it, an error.
    pub max_xa_held_bytes: usize,
    /// Set when an `XA COMMIT` delivered held changes: the position before the prepared part,
    /// the checkpoint while those changes wait to be delivered.
    released_floor: Option<BinlogPosition>,
    /// Where this decoder started.
    start: BinlogPosition,
    /// DDL statements passed since the last [`Decoder::take_history`], for the schema history.
    history: Vec<DdlRecord>,
    /// Tables whose tracked definition was found to disagree with the binlog's metadata (warned
    /// once each).
    pub(super) disagreed: HashSet<(String, String)>,
    /// The open transaction's latest event, held back until the next event or the commit shows
    /// whether it is the transaction's last (which then carries the END counts).
    held_back: Option<ChangeEvent>,
    /// The last event of a transaction that ended, to hand on before anything else.
    finished: Option<ChangeEvent>,
}

impl Decoder {
    /// A decoder starting at `from`.
    pub fn new(
        flavor: Flavor,
        filter: TableFilter,
        collations: Collations,
        tracker: SchemaTracker,
        from: &BinlogPosition,
    ) -> Result<Self> {
        let gtids = match &from.gtids {
            Some(t) => Some(GtidSet::parse(t, flavor == Flavor::MariaDb)?),
            None => None,
        };
        let mut boundary = from.clone();
        boundary.row = 0;
        boundary.snapshot = false;
        Ok(Decoder {
            flavor,
            filter,
            collations,
            tracker,
            file: from.file.as_str().into(),
            pos: from.pos,
            gtids_text: gtids.as_ref().map(|g| g.to_string().into()),
            gtids,
            txn: None,
            tables: HashMap::new(),
            raw_maps: HashMap::new(),
            pending_skip: from.row,
            resume_point: from.clone(),
            boundary,
            used_tracker: false,
            server_checksums: true,
            resume_by_gtid: false,
            deliver_from: from.deliver_key(),
            pos_buf: String::with_capacity(96),
            prepared: Vec::new(),
            prepared_empty: HashSet::new(),
            held_bytes: 0,
            max_xa_held_bytes: crate::config::DEFAULT_MAX_XA_HELD_BYTES,
            released_floor: None,
            start: from.clone(),
            history: Vec::new(),
            disagreed: HashSet::new(),
            held_back: None,
            finished: None,
        })
    }

    /// While an XA transaction is prepared but not resolved: the position before its prepared
    /// part (the earliest such), which checkpoints must not pass.
    pub fn xa_floor(&self) -> Option<&BinlogPosition> {
        self.prepared.first().map(|p| &p.before)
    }

    /// The position before the prepared part of the XA transactions whose `XA COMMIT` delivered
    /// held changes since the last call (the earliest such): a checkpoint while those changes
    /// are not all delivered must not pass it.
    pub fn take_released_floor(&mut self) -> Option<BinlogPosition> {
        self.released_floor.take()
    }

    /// The DDL statements passed since the last call, to append to the schema history before
    /// a position after them is stored.
    pub fn take_history(&mut self) -> Vec<DdlRecord> {
        std::mem::take(&mut self.history)
    }

    /// Where a restart would resume now: after the last delivered event.
    pub fn resume_point(&self) -> BinlogPosition {
        match &self.txn {
            Some(Txn {
                delivered: Some(order),
                start_pos,
                gtids_before,
                id,
                ..
            }) => BinlogPosition {
                file: self.file.to_string(),
                pos: *start_pos,
                row: *order,
                gtids: gtids_before.as_deref().map(str::to_string),
                txn: Some(id.to_string()),
                deliver: None,
                snapshot: false,
            },
            _ => self.resume_point.clone(),
        }
    }

    /// Whether the event group starting at `pos` of the current file lies before the point
    /// delivery starts from (see `deliver_from`).
    fn before_delivery(&self, pos: u64) -> bool {
        self.deliver_from
            .is_some_and(|d| (crate::position::file_seq(&self.file), pos) < d)
    }

    /// The point delivery starts from, while it is not passed yet.
    pub fn delivery_start(&self) -> Option<(u64, u64)> {
        self.deliver_from
    }

    /// Whether a transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.txn.is_some()
    }

    fn boundary_after(&self) -> BinlogPosition {
        BinlogPosition {
            file: self.file.to_string(),
            pos: self.pos,
            row: 0,
            gtids: self.gtids_text.as_deref().map(str::to_string),
            txn: None,
            deliver: None,
            snapshot: false,
        }
    }

    /// Decode one event, appending change events to `out`.
    pub fn process(&mut self, ev: &Event, out: &mut Vec<ChangeEvent>) -> Result<()> {
        let h = ev.header();
        let t = h.event_type_raw();
        let artificial = h.flags_raw() & LOG_EVENT_ARTIFICIAL_F != 0;
        let data = ev.data();
        let prev_pos = self.pos;
        let log_pos = u64::from(h.log_pos());
        if t == et::ROTATE {
            // The fake rotate that opens a stream comes before any format description, so the
            // reader did not strip its checksum: drop it here.
            let no_fde_yet = matches!(
                ev.footer().get_checksum_alg(),
                Ok(None)
                    | Ok(Some(
                        mysql_async::binlog::BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_OFF
                    ))
            );
            let data = if no_fde_yet && self.server_checksums && data.len() > 12 {
                &data[..data.len() - 4]
            } else {
                data
            };
            let r = RotateEvent::parse(data)?;
            if self.txn.is_some() && !artificial {
                return Err(Error::new(
                    ErrorKind::Protocol,
                    "binlog rotated inside a transaction",
                ));
            }
            self.file = r.file.as_str().into();
            self.pos = r.pos;
            if self.txn.is_none() {
                self.boundary = self.boundary_after();
                // A resume point inside a transaction not reached yet stays (it carries the
                // count of events to skip).
                if self.resume_point.row == 0 {
                    self.resume_point = self.boundary.clone();
                }
            }
            return Ok(());
        }
        if t == et::HEARTBEAT || t == et::HEARTBEAT_V2 {
            return Ok(());
        }
        if log_pos > self.pos && !artificial {
            self.pos = log_pos;
        }
        let ts_us = i64::from(h.timestamp()) * 1_000_000;
        match t {
            et::MARIA_GTID => {
                let g = MariaGtidEvent::parse(data)?;
                let server = h.server_id();
                self.begin(
                    prev_pos,
                    format!("{}-{}-{}", g.domain, server, g.seq).into(),
                    Some(GtidAdd::Maria(g.domain, server, g.seq)),
                    ts_us,
                    server,
                    g.standalone(),
                )?;
                // A MariaDB GTID event stands for BEGIN unless the group is standalone (DDL).
                if let Some(txn) = &mut self.txn {
                    txn.began = !g.standalone() && self.flavor == Flavor::MariaDb;
                    if g.prepared_xa() {
                        // The prepared part of an XA transaction (10.5+): hold its changes.
                        txn.hold = Some(Hold {
                            xid: g.xid,
                            ..Hold::default()
                        });
                    }
                }
            }
            et::GTID | et::ANONYMOUS_GTID => {
                let g = MySqlGtidEvent::parse(data)?;
                let anonymous = t == et::ANONYMOUS_GTID || g.sid == [0; 16];
                let id: Arc<str> = if anonymous {
                    format!("{}:{}", self.file, prev_pos).into()
                } else {
                    format!("{}:{}", format_uuid(&g.sid), g.gno).into()
                };
                let add = (!anonymous).then_some(GtidAdd::MySql(g.sid, g.gno));
                if add.is_some() && self.gtids.is_none() {
                    self.gtids = Some(GtidSet::mysql());
                }
                self.begin(
                    prev_pos,
                    id,
                    add,
                    g.commit_ts_us.unwrap_or(ts_us),
                    h.server_id(),
                    false,
                )?;
            }
            et::MARIA_GTID_LIST if self.gtids.is_none() && !artificial => {
                let mut set = GtidSet::mariadb();
                for (d, s, n) in parse_maria_gtid_list(data)? {
                    set.add_mariadb(d, s, n);
                }
                self.gtids_text = Some(set.to_string().into());
                self.gtids = Some(set);
            }
            et::QUERY | et::MARIA_QUERY_COMPRESSED => {
                let q = QueryEvent::parse(data, t == et::MARIA_QUERY_COMPRESSED)?;
                self.on_query(q, prev_pos, ts_us, h.server_id(), out)?;
            }
            et::EXECUTE_LOAD_QUERY => {
                // LOAD DATA in statement format: its rows are not in the binlog.
                let q = QueryEvent::parse_execute_load(data)?;
                if let Some(e) = self.statement_change_error(q.query.trim(), &q.schema, prev_pos) {
                    return Err(e);
                }
            }
            et::XID => self.end_txn(out),
            et::XA_PREPARE => {
                let x = XaPrepareEvent::parse(data)?;
                self.on_xa_prepare(Some(x.xid), x.one_phase, out)?;
            }
            et::TABLE_MAP => self.on_table_map(data)?,
            _ if RowsEvent::kind_of(t).is_some() => self.on_rows(t, data, out)?,
            _ => {}
        }
        if let Some(last) = self.finished.take() {
            out.push(last);
        }
        Ok(())
    }

    pub(super) fn begin(
        &mut self,
        start_pos: u64,
        id: Arc<str>,
        gtid: Option<GtidAdd>,
        ts_us: i64,
        server_id: u32,
        standalone: bool,
    ) -> Result<()> {
        if let Some(open) = &self.txn {
            if let Some(hold) = open.hold.as_ref().filter(|h| !h.changes.is_empty()) {
                return Err(Error::new(
                    ErrorKind::Protocol,
                    format!(
                        "the XA transaction {} that started at {}:{} ended without XA PREPARE",
                        hold.xid
                            .as_ref()
                            .map_or("(unknown XID)".to_string(), Xid::to_string),
                        self.file,
                        open.start_pos
                    ),
                ));
            }
            warn!(txn = %open.id, "a transaction started before the previous one ended; closing it");
            self.commit();
        }
        // A resume inside a transaction skips the events delivered before, of that transaction
        // only (by GTID, other domains' transactions may come first after a failover).
        let skip = if self.pending_skip > 0
            && crate::position::skip_applies(
                &self.start,
                &id,
                &self.file,
                start_pos,
                self.resume_by_gtid,
            )? {
            std::mem::take(&mut self.pending_skip)
        } else {
            0
        };
        let pos_prefix = format!("file={};pos={start_pos}", self.file);
        let mut pos_suffix = match &self.gtids_text {
            Some(g) => format!(";gtids={g}"),
            None => String::new(),
        };
        pos_suffix.push_str(";txn=");
        pos_suffix.push_str(&id);
        self.txn = Some(Txn {
            pos_prefix,
            pos_suffix,
            delivered: None,
            start_pos,
            id,
            gtids_before: self.gtids_text.clone(),
            gtid,
            ts_us,
            server_id,
            thread: None,
            began: false,
            standalone,
            order: 0,
            skip,
            table_orders: Vec::new(),
            collections: Vec::new(),
            hold: None,
        });
        Ok(())
    }

    /// End the open transaction at its commit: changes still held (an XA transaction whose group
    /// ended without `XA PREPARE`) are delivered.
    fn end_txn(&mut self, out: &mut Vec<ChangeEvent>) {
        if let Some(hold) = self.txn.as_mut().and_then(|t| t.hold.take()) {
            self.held_bytes -= hold.bytes;
            self.release(hold.changes, out);
        }
        self.commit();
    }

    /// Deliver held changes as events of the open transaction.
    fn release(&mut self, changes: Vec<HeldChange>, out: &mut Vec<ChangeEvent>) {
        for c in changes {
            self.emit(
                out,
                c.op,
                c.table,
                c.before,
                c.after,
                c.row_in_event,
                c.message,
            );
        }
    }

    /// The end of an XA transaction's prepared part (`XA_PREPARE` event): keep its changes until
    /// its `XA COMMIT`, or deliver them now for `XA COMMIT ... ONE PHASE`.
    fn on_xa_prepare(
        &mut self,
        xid: Option<Xid>,
        one_phase: bool,
        out: &mut Vec<ChangeEvent>,
    ) -> Result<()> {
        let Some(txn) = self.txn.as_mut() else {
            return Ok(());
        };
        let Some(hold) = txn.hold.take() else {
            self.commit();
            return Ok(());
        };
        self.held_bytes -= hold.bytes;
        if one_phase {
            self.release(hold.changes, out);
            self.commit();
            return Ok(());
        }
        let Some(xid) = xid.or(hold.xid) else {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!(
                    "cannot tell the XID of the XA transaction prepared at {}:{}",
                    self.file, txn.start_pos
                ),
            ));
        };
        if hold.changes.is_empty() {
            if self.prepared_empty.len() >= 65_536 {
                self.prepared_empty.clear();
            }
            self.prepared_empty.insert(xid);
        } else {
            let before = BinlogPosition {
                file: self.file.to_string(),
                pos: txn.start_pos,
                row: 0,
                gtids: txn.gtids_before.as_deref().map(str::to_string),
                txn: None,
                deliver: None,
                snapshot: false,
            };
            debug!(xid = %xid, changes = hold.changes.len(), at = %before,
                "holding the changes of a prepared XA transaction until it is committed");
            self.held_bytes += hold.bytes;
            self.prepared.push(PreparedXa {
                xid,
                before,
                changes: hold.changes,
                bytes: hold.bytes,
            });
        }
        self.commit();
        Ok(())
    }

    /// `XA COMMIT` or `XA ROLLBACK` of a prepared transaction (its own event group): deliver its
    /// held changes as this group's events, or drop them.
    #[allow(clippy::too_many_arguments)]
    fn on_xa_resolve(
        &mut self,
        commit: bool,
        rest: &str,
        prev_pos: u64,
        ts_us: i64,
        server_id: u32,
        thread: u32,
        out: &mut Vec<ChangeEvent>,
    ) -> Result<()> {
        let xid = Xid::parse_sql(rest);
        let one_phase = commit && rest.trim_end().to_ascii_uppercase().ends_with("ONE PHASE");
        // `XA COMMIT ... ONE PHASE` (or a completion) of the transaction open here.
        if let Some(txn) = self.txn.as_mut() {
            let own = txn
                .hold
                .as_ref()
                .is_some_and(|h| one_phase || (xid.is_some() && h.xid == xid));
            if own {
                txn.thread = Some(thread);
                if commit {
                    self.end_txn(out);
                } else {
                    let hold = txn.hold.take().unwrap_or_default();
                    self.held_bytes -= hold.bytes;
                    self.commit();
                }
                return Ok(());
            }
        }
        if self.txn.is_none() {
            let id: Arc<str> = format!("{}:{}", self.file, prev_pos).into();
            self.begin(prev_pos, id, None, ts_us, server_id, true)?;
        }
        if let Some(txn) = &mut self.txn {
            txn.thread = Some(thread);
        }
        let found = xid
            .as_ref()
            .and_then(|x| self.prepared.iter().position(|p| p.xid == *x));
        match found {
            Some(i) => {
                let group = self.prepared.remove(i);
                self.held_bytes -= group.bytes;
                debug!(xid = %group.xid, commit, changes = group.changes.len(),
                    "a prepared XA transaction was resolved");
                // Committed before the delivery point: in the snapshot, or before the start.
                if commit && !self.before_delivery(prev_pos) {
                    self.released_floor = Some(match self.released_floor.take() {
                        Some(f) if f < group.before => f,
                        _ => group.before,
                    });
                    self.release(group.changes, out);
                }
            }
            None => {
                let known = xid.as_ref().is_some_and(|x| self.prepared_empty.remove(x));
                if commit && !known && !self.before_delivery(prev_pos) {
                    debug!(
                        xid = %xid.as_ref().map_or_else(|| rest.trim().to_string(), Xid::to_string),
                        at = %format!("{}:{prev_pos}", self.file),
                        start = %self.start,
                        "XA COMMIT of a transaction not seen prepared: prepared before the \
                         position this stream resumed from, so without captured changes (a \
                         fresh start reads the prepared parts from before it)"
                    );
                }
            }
        }
        self.commit();
        Ok(())
    }

    /// The error when held XA changes outgrow `max_xa_held_bytes`.
    pub(super) fn held_error(&self) -> Error {
        let (xid, at) = match self
            .txn
            .as_ref()
            .and_then(|t| t.hold.as_ref().map(|h| (t, h)))
        {
            Some((t, h)) => (
                h.xid
                    .as_ref()
                    .map_or("(unknown XID)".to_string(), Xid::to_string),
                format!("{}:{}", self.file, t.start_pos),
            ),
            None => match self.prepared.iter().max_by_key(|p| p.bytes) {
                Some(p) => (p.xid.to_string(), p.before.to_string()),
                None => ("(none)".to_string(), String::new()),
            },
        };
        Error::new(
            ErrorKind::Data,
            format!(
                "the XA transaction {xid} (prepared part at {at}) is not committed or rolled back \
                 yet and the captured changes held for prepared XA transactions ({} in all) \
                 passed {} bytes",
                self.prepared.len()
                    + usize::from(self.txn.as_ref().is_some_and(|t| t.hold.is_some())),
                self.max_xa_held_bytes
            ),
        )
        .with_hint(
            "raise source.max_xa_held_bytes, or resolve the prepared transaction (XA RECOVER \
             lists them; XA COMMIT or XA ROLLBACK it)",
        )
    }

    fn commit(&mut self) {
        if let Some(mut last) = self.held_back.take() {
            if let (Some(txn), Some(info)) = (&self.txn, last.txn.as_mut()) {
                let data_collections = txn
                    .collections
                    .iter()
                    .zip(&txn.table_orders)
                    .map(|(name, (_, n))| (Arc::clone(name), *n))
                    .collect();
                info.end = Some(Arc::new(TxnEnd {
                    event_count: txn.order,
                    data_collections,
                    lsn: None,
                }));
            }
            self.finished = Some(last);
        }
        if let Some(txn) = self.txn.take() {
            // Before the delivery point of a stream started without a GTID set (MySQL), keep
            // none rather than a partial one.
            let partial = self.gtids.is_none() && self.deliver_from.is_some();
            if let Some(add) = txn.gtid.filter(|_| !partial) {
                let set = self.gtids.get_or_insert_with(|| match add {
                    GtidAdd::Maria(..) => GtidSet::mariadb(),
                    GtidAdd::MySql(..) => GtidSet::mysql(),
                });
                match add {
                    GtidAdd::Maria(d, s, n) => set.add_mariadb(d, s, n),
                    GtidAdd::MySql(u, n) => set.add_mysql(u, n),
                }
                self.gtids_text = Some(set.to_string().into());
            }
        }
        self.boundary = self.boundary_after();
        self.resume_point = self.boundary.clone();
        if self
            .deliver_from
            .is_some_and(|d| (self.boundary.file_seq(), self.boundary.pos) >= d)
        {
            self.deliver_from = None;
        }
    }

    fn on_query(
        &mut self,
        q: QueryEvent,
        prev_pos: u64,
        ts_us: i64,
        server_id: u32,
        out: &mut Vec<ChangeEvent>,
    ) -> Result<()> {
        let sql = q.query.trim();
        let xa = xa_statement(sql);
        if sql.eq_ignore_ascii_case("BEGIN") || matches!(xa, Some((XaVerb::Start, _))) {
            if self.txn.is_none() {
                let id: Arc<str> = format!("{}:{}", self.file, prev_pos).into();
                self.begin(prev_pos, id, None, ts_us, server_id, false)?;
            }
            if let Some(txn) = &mut self.txn {
                txn.began = true;
                txn.thread = Some(q.thread_id);
                if let Some((XaVerb::Start, rest)) = xa {
                    // MySQL's prepared XA part starts with `XA START`: hold its changes.
                    if txn.hold.is_none() {
                        txn.hold = Some(Hold {
                            xid: Xid::parse_sql(rest),
                            ..Hold::default()
                        });
                    }
                }
            }
            return Ok(());
        }
        match xa {
            // The XA_PREPARE event that follows ends the group.
            Some((XaVerb::End, _)) => return Ok(()),
            Some((XaVerb::Prepare, rest)) => {
                return self.on_xa_prepare(Xid::parse_sql(rest), false, out)
            }
            Some((verb @ (XaVerb::Commit | XaVerb::Rollback), rest)) => {
                return self.on_xa_resolve(
                    verb == XaVerb::Commit,
                    rest,
                    prev_pos,
                    ts_us,
                    server_id,
                    q.thread_id,
                    out,
                );
            }
            _ => {}
        }
        if sql.eq_ignore_ascii_case("COMMIT") || sql.eq_ignore_ascii_case("ROLLBACK") {
            if self.txn.is_some() {
                self.end_txn(out);
            }
            return Ok(());
        }
        // A statement: DDL (or something else that is not row-based).
        let standalone_txn = match &self.txn {
            None => {
                let id: Arc<str> = format!("{}:{}", self.file, prev_pos).into();
                self.begin(prev_pos, id, None, ts_us, server_id, true)?;
                true
            }
            Some(t) => !t.began || t.standalone,
        };
        if let Some(txn) = &mut self.txn {
            txn.thread = Some(q.thread_id);
        }
        let group = self.txn.as_ref().map_or(prev_pos, |t| t.start_pos);
        if self.before_delivery(group) {
            // The tracker already holds the definitions of the delivery point.
            if standalone_txn {
                self.commit();
            }
            return Ok(());
        }
        let ddl = self.tracker.apply(sql, &q.schema);
        if !matches!(ddl, Ddl::Other | Ddl::Truncate(_)) {
            self.history.push(DdlRecord {
                file: self.file.to_string(),
                pos: self.txn.as_ref().map_or(prev_pos, |t| t.start_pos),
                schema: q.schema.clone(),
                sql: sql.to_string(),
            });
        }
        // Any DDL may change table ids' shapes: forget cached shapes.
        if !matches!(ddl, Ddl::Other) {
            self.tables.clear();
            self.raw_maps.clear();
        } else if let Some(e) = self.statement_change_error(sql, &q.schema, prev_pos) {
            return Err(e);
        }
        let targets: Vec<Name> = match &ddl {
            Ddl::Create { name, .. } | Ddl::Alter { name, .. } | Ddl::TableOther(name) => {
                vec![name.clone()]
            }
            Ddl::Truncate(name) => vec![name.clone()],
            Ddl::Drop(names) => names.clone(),
            Ddl::Rename(pairs) => pairs
                .iter()
                .flat_map(|(a, b)| [a.clone(), b.clone()])
                .collect(),
            Ddl::DropDatabase(_) | Ddl::Other => Vec::new(),
        };
        let captured: Vec<(String, String)> = targets
            .iter()
            .map(|n| {
                (
                    n.schema.clone().unwrap_or_else(|| q.schema.clone()),
                    n.table.clone(),
                )
            })
            .filter(|(s, t)| self.filter.matches(s, t))
            .collect();
        let db_level = matches!(&ddl, Ddl::DropDatabase(db) if self.filter.patterns().iter().any(|p| p.exact_schema() == Some(db.as_str())));
        if !captured.is_empty() || db_level {
            if let Ddl::Truncate(_) = ddl {
                let (s, t) = &captured[0];
                let table = self.schema_for(s, t);
                self.emit(out, Op::Truncate, table, None, None, 0, None);
            } else {
                let table = captured
                    .first()
                    .and_then(|(s, t)| self.schema_for_opt(s, t));
                let msg = LogicalMessage {
                    prefix: "ddl".to_string(),
                    content: sql.as_bytes().to_vec(),
                    transactional: false,
                };
                self.emit(out, Op::Message, table, None, None, 0, Some(msg));
            }
        }
        if standalone_txn {
            self.commit();
        }
        Ok(())
    }

    /// A data change logged as an SQL statement (a session with `binlog_format=STATEMENT` or
    /// `MIXED`) that may touch a captured table: its rows are not in the binlog, so the stream
    /// cannot carry them; an error rather than a silent gap.
    pub(super) fn statement_change_error(&self, sql: &str, schema: &str, at: u64) -> Option<Error> {
        let dml = crate::ddl::parse_dml(sql)?;
        let captured: Vec<String> = match &dml.tables {
            Some(names) if !names.is_empty() => names
                .iter()
                .map(|n| (n.schema.as_deref().unwrap_or(schema), n.table.as_str()))
                .filter(|(s, t)| self.filter.matches(s, t))
                .map(|(s, t)| format!("{s}.{t}"))
                .collect(),
            // The tables could not be told: the statement's database decides.
            _ => {
                let db_captured = !schema.is_empty()
                    && self
                        .filter
                        .patterns()
                        .iter()
                        .any(|p| connector_core::config::glob_match(&p.schema, schema));
                if db_captured {
                    vec![format!("a table of database {schema}")]
                } else {
                    Vec::new()
                }
            }
        };
        if captured.is_empty() {
            return None;
        }
        let mut shown: String = sql.chars().take(200).collect();
        if shown.len() < sql.len() {
            shown.push_str("...");
        }
        Some(
            Error::new(
                ErrorKind::Precondition,
                format!(
                    "{} on {} was logged as an SQL statement, not as row events (at {}:{at}; a \
                     session with binlog_format STATEMENT or MIXED): the rows it changed are not \
                     in the binlog and cannot be captured: `{shown}`",
                    dml.kind,
                    captured.join(", "),
                    self.file
                ),
            )
            .with_hint(
                "every session that changes captured tables must log in binlog_format=ROW: SET \
                 GLOBAL binlog_format = 'ROW' (and in the server config) and do not let sessions \
                 override it (SET SESSION binlog_format needs SUPER or BINLOG ADMIN); then take a \
                 new snapshot of the table, since the change is missing downstream",
            ),
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn emit(
        &mut self,
        out: &mut Vec<ChangeEvent>,
        op: Op,
        table: Option<Arc<TableSchema>>,
        before: Option<Vec<Value>>,
        after: Option<Vec<Value>>,
        row_in_event: u64,
        message: Option<LogicalMessage>,
    ) {
        let file = Arc::clone(&self.file);
        let Some(txn) = self.txn.as_mut() else {
            return;
        };
        if let Some(hold) = txn.hold.as_mut() {
            // The prepared part of an XA transaction: delivered at its XA COMMIT, if any.
            let change = HeldChange {
                op,
                table,
                before,
                after,
                row_in_event,
                message,
            };
            let bytes = change.estimated_size();
            hold.bytes += bytes;
            self.held_bytes += bytes;
            hold.changes.push(change);
            return;
        }
        if self
            .deliver_from
            .is_some_and(|d| (crate::position::file_seq(&file), txn.start_pos) < d)
        {
            return; // before the stream's start: only XA prepared parts are read there
        }
        txn.order += 1;
        let key = table.as_ref().map_or(0, |t| Arc::as_ptr(t) as usize);
        let table_order = match txn.table_orders.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                txn.table_orders.push((key, 1));
                txn.collections.push(table.as_ref().map_or_else(
                    || Arc::from(""),
                    |t| Arc::from(format!("{}.{}", t.id.database, t.id.table)),
                ));
                1
            }
        };
        if txn.order <= txn.skip {
            return; // delivered before the restart
        }
        // The event's position: its transaction's start and its order in it (a valid resume
        // point: a restart from it skips the events up to and including this one).
        let mut buf = std::mem::take(&mut self.pos_buf);
        buf.clear();
        buf.push_str(&txn.pos_prefix);
        buf.push_str(";row=");
        buf.push_str(itoa::Buffer::new().format(txn.order));
        buf.push_str(&txn.pos_suffix);
        let position = Position::new(Arc::<str>::from(buf.as_str()));
        self.pos_buf = buf;
        let gtid_value = if txn.gtid.is_some() {
            Value::Text(txn.id.to_string())
        } else {
            Value::Null
        };
        let ev = ChangeEvent {
            record: None,
            op,
            table,
            before,
            after,
            commit_ts_us: txn.ts_us,
            txn: Some(TxnInfo::new(Arc::clone(&txn.id), txn.order, table_order)),
            position,
            source: SourceInfo {
                connector: "mysql",
                snapshot: SnapshotMarker::False,
                fields: vec![
                    ("server_id", Value::UInt(u64::from(txn.server_id))),
                    ("gtid", gtid_value),
                    ("file", Value::Text(file.to_string())),
                    ("pos", Value::UInt(txn.start_pos)),
                    ("row", Value::UInt(row_in_event)),
                    (
                        "thread",
                        txn.thread
                            .map_or(Value::Null, |t| Value::UInt(u64::from(t))),
                    ),
                ],
            },
            message,
        };
        if let Some(last) = self.finished.take() {
            out.push(last);
        }
        // Hand on the event held back (the resume point follows it) and hold back this one.
        if let Some(prev) = self.held_back.replace(ev) {
            txn.delivered = prev.txn.as_ref().map(|t| t.order);
            out.push(prev);
        }
    }
}
