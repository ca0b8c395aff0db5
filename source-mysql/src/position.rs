//! Binlog positions and GTID sets, and their text forms.
//!
//! A position is `key=value` pairs separated by `;`:
//!
//! ```text
//! file=mysql-bin.000003;pos=342;row=5;gtids=0-1-9
//! ```
//!
//! - `file`, `pos`: the binlog file and the byte offset of the first event of the transaction to
//!   read next (at a transaction end: the offset right after it).
//! - `row` (omitted when 0): how many events of the transaction starting at `file:pos` were already
//!   delivered; a resume skips them. Checkpoints inside a large transaction carry it.
//! - `gtids` (omitted when unknown): the executed GTID set at `file:pos`, excluding the transaction
//!   there: MariaDB `domain-server-seq` entries (`0-1-9,1-2-40`), or MySQL `uuid:1-100[:a-b]` entries.
//! - `txn` (with `row` only): the id of the transaction at `file:pos` whose first `row` events
//!   were delivered (its GTID, or `file:pos` without GTIDs): a resume skips events only of that
//!   transaction, and fails when the server sends another one in its place.
//! - `deliver` (`file:pos`): the stream started after the prepared part of XA transactions
//!   that were still unresolved; it reads from `file:pos` of this position to `deliver` only
//!   to hold those prepared parts, and delivers from `deliver` on.
//! - `snapshot=1`: an initial snapshot was under way; resuming from it runs the snapshot again.
//!
//! Positions are ordered by (file sequence number, pos, row); the GTID set follows the same order.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use connector_core::{Error, ErrorKind, Position, Result};

/// MySQL GTID intervals of one source uuid (inclusive).
pub type UuidIntervals = ([u8; 16], Vec<(u64, u64)>);

/// A GTID set of either flavour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GtidSet {
    /// MariaDB: the last sequence number per replication domain, `domain-server-seq`.
    MariaDb(BTreeMap<u32, (u32, u64)>),
    /// MySQL: per source uuid, the executed intervals (inclusive).
    MySql(BTreeMap<[u8; 16], Vec<(u64, u64)>>),
}

impl GtidSet {
    /// An empty MariaDB set.
    pub fn mariadb() -> Self {
        GtidSet::MariaDb(BTreeMap::new())
    }

    /// An empty MySQL set.
    pub fn mysql() -> Self {
        GtidSet::MySql(BTreeMap::new())
    }

    /// Parse a set; `mariadb` picks the flavour when the text is empty.
    pub fn parse(text: &str, mariadb: bool) -> Result<Self> {
        let text = text.trim();
        let bad = |what: &str| {
            Error::new(
                ErrorKind::Data,
                format!("invalid GTID set {text:?}: {what}"),
            )
        };
        if text.is_empty() {
            return Ok(if mariadb {
                GtidSet::mariadb()
            } else {
                GtidSet::mysql()
            });
        }
        // MySQL uuids contain '-' too, but always a ':'.
        if !text.contains(':') {
            let mut m = BTreeMap::new();
            for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let mut it = part.split('-');
                let (Some(d), Some(s), Some(n), None) =
                    (it.next(), it.next(), it.next(), it.next())
                else {
                    return Err(bad("expected domain-server-seq"));
                };
                let d: u32 = d.parse().map_err(|_| bad("domain"))?;
                let s: u32 = s.parse().map_err(|_| bad("server id"))?;
                let n: u64 = n.parse().map_err(|_| bad("sequence number"))?;
                m.insert(d, (s, n));
            }
            return Ok(GtidSet::MariaDb(m));
        }
        let mut m: BTreeMap<[u8; 16], Vec<(u64, u64)>> = BTreeMap::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut it = part.split(':');
            let uuid = parse_uuid(it.next().unwrap_or("")).ok_or_else(|| bad("uuid"))?;
            let entry = m.entry(uuid).or_default();
            for iv in it {
                let (a, b) = match iv.split_once('-') {
                    Some((a, b)) => (a, b),
                    None => (iv, iv),
                };
                let a: u64 = a.parse().map_err(|_| bad("interval"))?;
                let b: u64 = b.parse().map_err(|_| bad("interval"))?;
                if a == 0 || b < a {
                    return Err(bad("interval"));
                }
                entry.push((a, b));
            }
            normalise(entry);
        }
        Ok(GtidSet::MySql(m))
    }

    /// Record a MariaDB GTID as executed.
    pub fn add_mariadb(&mut self, domain: u32, server: u32, seq: u64) {
        if let GtidSet::MariaDb(m) = self {
            m.insert(domain, (server, seq));
        }
    }

    /// Record a MySQL GTID as executed.
    pub fn add_mysql(&mut self, uuid: [u8; 16], gno: u64) {
        if let GtidSet::MySql(m) = self {
            let e = m.entry(uuid).or_default();
            match e.last_mut() {
                Some(last) if last.1 + 1 == gno => last.1 = gno,
                Some(last) if last.0 <= gno && gno <= last.1 => {}
                _ => {
                    e.push((gno, gno));
                    normalise(e);
                }
            }
        }
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        match self {
            GtidSet::MariaDb(m) => m.is_empty(),
            GtidSet::MySql(m) => m.is_empty(),
        }
    }

    /// For MySQL sets: the (uuid, intervals) pairs, for `COM_BINLOG_DUMP_GTID`.
    pub fn mysql_intervals(&self) -> Vec<UuidIntervals> {
        match self {
            GtidSet::MySql(m) => m.iter().map(|(k, v)| (*k, v.clone())).collect(),
            GtidSet::MariaDb(_) => Vec::new(),
        }
    }
}

fn normalise(v: &mut Vec<(u64, u64)>) {
    v.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(v.len());
    for &(a, b) in v.iter() {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    *v = out;
}

/// Parse `3e11fa47-71ca-11e1-9e33-c80aa9429562`.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = s.bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let h = (pair[0] as char).to_digit(16)?;
        let l = (pair[1] as char).to_digit(16)?;
        out[i] = (h * 16 + l) as u8;
    }
    Some(out)
}

/// Format a uuid in its dashed lower-case form.
pub fn format_uuid(u: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

impl fmt::Display for GtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GtidSet::MariaDb(m) => {
                for (i, (d, (s, n))) in m.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{d}-{s}-{n}")?;
                }
            }
            GtidSet::MySql(m) => {
                for (i, (u, ivs)) in m.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    f.write_str(&format_uuid(u))?;
                    for (a, b) in ivs {
                        if a == b {
                            write!(f, ":{a}")?;
                        } else {
                            write!(f, ":{a}-{b}")?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// A typed binlog position (see the module docs for the text form).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BinlogPosition {
    /// Binlog file name.
    pub file: String,
    /// Byte offset of the next transaction (or of the one partly delivered when `row > 0`).
    pub pos: u64,
    /// Events of the transaction at `pos` already delivered.
    pub row: u64,
    /// Executed GTID set at `pos`, as text (kept as text: it is copied into every event).
    pub gtids: Option<String>,
    /// With `row > 0`: the id of the transaction the `row` delivered events belong to.
    pub txn: Option<String>,
    /// Where delivery starts (before it, only XA prepared parts are read): `(file, pos)`.
    pub deliver: Option<(String, u64)>,
    /// An initial snapshot was under way.
    pub snapshot: bool,
}

impl BinlogPosition {
    /// A position at a transaction boundary.
    pub fn new(file: impl Into<String>, pos: u64, gtids: Option<String>) -> Self {
        BinlogPosition {
            file: file.into(),
            pos,
            row: 0,
            gtids,
            txn: None,
            deliver: None,
            snapshot: false,
        }
    }

    /// Parse the text form.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |what: String| {
            Error::new(
                ErrorKind::Data,
                format!("stored position {text:?} is not a MySQL binlog position: {what}"),
            )
            .with_hint(
                "the offsets belong to another source type; reset them with `cdc offsets reset`",
            )
        };
        let mut file = None;
        let mut pos = None;
        let mut row = 0;
        let mut gtids = None;
        let mut txn = None;
        let mut deliver = None;
        let mut snapshot = false;
        for part in text.split(';').filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                return Err(bad(format!("{part:?} is not key=value")));
            };
            match k {
                "file" => file = Some(v.to_string()),
                "pos" => pos = Some(v.parse().map_err(|_| bad(format!("pos {v:?}")))?),
                "row" => row = v.parse().map_err(|_| bad(format!("row {v:?}")))?,
                "gtids" => gtids = Some(v.to_string()),
                "txn" => txn = Some(v.to_string()),
                "deliver" => {
                    let (f, p) = v
                        .rsplit_once(':')
                        .and_then(|(f, p)| Some((f.to_string(), p.parse().ok()?)))
                        .ok_or_else(|| bad(format!("deliver {v:?}")))?;
                    deliver = Some((f, p));
                }
                "snapshot" => snapshot = v == "1" || v == "true",
                _ => return Err(bad(format!("unknown key {k:?}"))),
            }
        }
        let (Some(file), Some(pos)) = (file, pos) else {
            return Err(bad("expected file= and pos=".to_string()));
        };
        Ok(BinlogPosition {
            file,
            pos,
            row,
            gtids,
            txn: txn.filter(|_| row > 0),
            deliver,
            snapshot,
        })
    }

    /// The core [`Position`].
    pub fn to_position(&self) -> Position {
        Position::new(self.to_string())
    }

    /// `(file sequence, pos)` of the `deliver` point, if any.
    pub fn deliver_key(&self) -> Option<(u64, u64)> {
        self.deliver.as_ref().map(|(f, p)| (file_seq(f), *p))
    }

    /// The sequence number of the binlog file (`mysql-bin.000042` → 42).
    pub fn file_seq(&self) -> u64 {
        file_seq(&self.file)
    }
}

/// The replication stream a transaction id belongs to: MariaDB's domain (`0` of `0-1-42`),
/// MySQL's source uuid; `None` for a `file:pos` id (no GTID).
fn gtid_stream(id: &str) -> Option<&str> {
    let parts: Vec<&str> = id.split('-').collect();
    if parts.len() == 3 && parts.iter().all(|p| p.parse::<u64>().is_ok()) {
        return Some(parts[0]);
    }
    match id.rsplit_once(':') {
        Some((uuid, gno)) if parse_uuid(uuid).is_some() && gno.parse::<u64>().is_ok() => Some(uuid),
        _ => None,
    }
}

/// Whether the events-to-skip count of the resume position `from` (`row`) applies to the
/// transaction `id` that starts at `file:start_pos`: `Ok(false)` for a transaction of another
/// GTID domain (or source uuid) sent first in a resume by GTID, an error when the server sends
/// another transaction in the place of the one whose events were delivered.
pub fn skip_applies(
    from: &BinlogPosition,
    id: &str,
    file: &str,
    start_pos: u64,
    by_gtid: bool,
) -> Result<bool> {
    let mismatch = |what: String| {
        Error::new(
            ErrorKind::Data,
            format!(
                "cannot resume inside a transaction from {from}: {} of its events were \
                 delivered, but {what} (transaction {id} at {file}:{start_pos})",
                from.row
            ),
        )
        .with_hint(
            "the binlog no longer matches the stored position (another server, a rewritten \
             binlog): skipping would drop or repeat events of the wrong transaction; reset the \
             offsets (`cdc offsets reset`) to take a new snapshot",
        )
    };
    match from.txn.as_deref() {
        Some(expected) if expected == id => Ok(true),
        Some(expected) => match (gtid_stream(expected), gtid_stream(id)) {
            (Some(a), Some(b)) if by_gtid && a != b => Ok(false),
            _ => Err(mismatch(format!(
                "the server sent another transaction first, not {expected}"
            ))),
        },
        None if !by_gtid && file == from.file && start_pos == from.pos => Ok(true),
        None if by_gtid => Err(mismatch(
            "the position does not name that transaction (no `txn=`), so a resume by GTID \
             cannot tell it from another"
                .to_string(),
        )
        .with_hint("resume by file and offset (`gtid: false`) while the binlog file exists")),
        None => Err(mismatch(format!(
            "the first transaction the server sent is not the one at {}:{}",
            from.file, from.pos
        ))),
    }
}

/// The numeric suffix of a binlog file name.
pub fn file_seq(file: &str) -> u64 {
    file.rsplit('.')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

impl fmt::Display for BinlogPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "file={};pos={}", self.file, self.pos)?;
        if self.row > 0 {
            write!(f, ";row={}", self.row)?;
        }
        if let Some(g) = &self.gtids {
            write!(f, ";gtids={g}")?;
        }
        if let Some(t) = self.txn.as_ref().filter(|_| self.row > 0) {
            write!(f, ";txn={t}")?;
        }
        if let Some((file, pos)) = &self.deliver {
            write!(f, ";deliver={file}:{pos}")?;
        }
        if self.snapshot {
            f.write_str(";snapshot=1")?;
        }
        Ok(())
    }
}

impl PartialOrd for BinlogPosition {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for BinlogPosition {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.file_seq(), self.pos, self.row, !self.snapshot).cmp(&(
            other.file_seq(),
            other.pos,
            other.row,
            !other.snapshot,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_round_trips_and_orders() {
        // GIVEN positions in text form
        let a = BinlogPosition::parse("file=mysql-bin.000003;pos=342;gtids=0-1-9").unwrap();
        let b = BinlogPosition::parse("file=mysql-bin.000003;pos=342;row=5;gtids=0-1-9").unwrap();
        let c = BinlogPosition::parse("file=mysql-bin.000010;pos=4").unwrap();
        // THEN they format back identically and order by file number, offset, row
        assert_eq!(a.to_string(), "file=mysql-bin.000003;pos=342;gtids=0-1-9");
        assert_eq!(
            b.to_string(),
            "file=mysql-bin.000003;pos=342;row=5;gtids=0-1-9"
        );
        assert!(a < b && b < c);
        assert!(BinlogPosition::parse("lsn=0/1").is_err());
        let t = BinlogPosition::parse("file=f.000001;pos=4;row=2;gtids=0-1-9;txn=0-1-10").unwrap();
        assert_eq!(t.txn.as_deref(), Some("0-1-10"));
        assert_eq!(
            t.to_string(),
            "file=f.000001;pos=4;row=2;gtids=0-1-9;txn=0-1-10"
        );
        let d = BinlogPosition::parse("file=f.000001;pos=4;deliver=f.000002:400").unwrap();
        assert_eq!(d.deliver, Some(("f.000002".to_string(), 400)));
        assert_eq!(d.to_string(), "file=f.000001;pos=4;deliver=f.000002:400");
        let s = BinlogPosition::parse("file=f.000001;pos=4;snapshot=1").unwrap();
        assert!(s.snapshot);
        assert_eq!(s.to_string(), "file=f.000001;pos=4;snapshot=1");
    }

    #[test]
    fn a_skip_count_applies_only_to_its_own_transaction() {
        let from =
            BinlogPosition::parse("file=b.000001;pos=100;row=2;gtids=0-1-9;txn=0-1-10").unwrap();
        // the transaction it names: skip
        assert!(skip_applies(&from, "0-1-10", "b.000001", 100, true).unwrap());
        // another domain's, first after a failover: deliver it, keep the skip
        assert!(!skip_applies(&from, "1-2-5", "b.000007", 4, true).unwrap());
        // another of the same domain: an error naming both
        let e = skip_applies(&from, "0-1-11", "b.000001", 100, true).unwrap_err();
        assert!(
            e.message().contains("0-1-11") && e.message().contains("not 0-1-10"),
            "{e}"
        );
        // by file and offset, another transaction is always an error
        assert!(skip_applies(&from, "1-2-5", "b.000001", 100, false).is_err());
        // a position without txn: by file and offset, the transaction at file:pos
        let old = BinlogPosition::parse("file=b.000001;pos=100;row=2").unwrap();
        assert!(skip_applies(&old, "b.000001:100", "b.000001", 100, false).unwrap());
        assert!(skip_applies(&old, "b.000001:300", "b.000001", 300, false).is_err());
        assert!(skip_applies(&old, "0-1-10", "b.000001", 100, true).is_err());
        // MySQL ids: the source uuid is the stream
        let u = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let v = "4e11fa47-71ca-11e1-9e33-c80aa9429562";
        let m = BinlogPosition::parse(&format!("file=b.1;pos=4;row=1;txn={u}:7")).unwrap();
        assert!(!skip_applies(&m, &format!("{v}:3"), "b.1", 4, true).unwrap());
        assert!(skip_applies(&m, &format!("{u}:8"), "b.1", 4, true).is_err());
    }

    #[test]
    fn mariadb_gtid_sets() {
        let mut g = GtidSet::parse("0-1-9,2-5-100", true).unwrap();
        g.add_mariadb(0, 1, 10);
        g.add_mariadb(1, 3, 1);
        assert_eq!(g.to_string(), "0-1-10,1-3-1,2-5-100");
        assert!(GtidSet::parse("0-1", true).is_err());
    }

    #[test]
    fn mysql_gtid_sets_merge_intervals() {
        let u = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let mut g = GtidSet::parse(&format!("{u}:1-5:7"), false).unwrap();
        g.add_mysql(parse_uuid(u).unwrap(), 6);
        assert_eq!(g.to_string(), format!("{u}:1-7"));
        g.add_mysql(parse_uuid(u).unwrap(), 9);
        assert_eq!(g.to_string(), format!("{u}:1-7:9"));
        assert_eq!(g.mysql_intervals()[0].1, vec![(1, 7), (9, 9)]);
    }
}
