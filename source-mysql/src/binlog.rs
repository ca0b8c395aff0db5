//! Parsing of the binlog events this source uses, from their raw bytes (the event body after the
//! 19-byte common header, without the checksum).
//!
//! Layouts follow the MySQL source documentation (`libbinlogevents`) and MariaDB's `log_event.h`;
//! both servers share them except for MariaDB's own GTID (162), GTID list (163) and compressed
//! events (165-171), and MySQL's GTID (33/34) and partial-update (39) events.

use connector_core::{Error, ErrorKind, Result};

/// Event type codes.
pub mod event_type {
    /// `QUERY_EVENT`.
    pub const QUERY: u8 = 2;
    /// `ROTATE_EVENT`.
    pub const ROTATE: u8 = 4;
    /// `FORMAT_DESCRIPTION_EVENT`.
    pub const FORMAT_DESCRIPTION: u8 = 15;
    /// `XID_EVENT`.
    pub const XID: u8 = 16;
    /// `EXECUTE_LOAD_QUERY_EVENT`: a `LOAD DATA` logged as a statement.
    pub const EXECUTE_LOAD_QUERY: u8 = 18;
    /// `TABLE_MAP_EVENT`.
    pub const TABLE_MAP: u8 = 19;
    /// `WRITE_ROWS_EVENT_V1`.
    pub const WRITE_ROWS_V1: u8 = 23;
    /// `UPDATE_ROWS_EVENT_V1`.
    pub const UPDATE_ROWS_V1: u8 = 24;
    /// `DELETE_ROWS_EVENT_V1`.
    pub const DELETE_ROWS_V1: u8 = 25;
    /// `HEARTBEAT_LOG_EVENT`.
    pub const HEARTBEAT: u8 = 27;
    /// `WRITE_ROWS_EVENT` (v2).
    pub const WRITE_ROWS: u8 = 30;
    /// `UPDATE_ROWS_EVENT` (v2).
    pub const UPDATE_ROWS: u8 = 31;
    /// `DELETE_ROWS_EVENT` (v2).
    pub const DELETE_ROWS: u8 = 32;
    /// MySQL `GTID_LOG_EVENT`.
    pub const GTID: u8 = 33;
    /// MySQL `ANONYMOUS_GTID_LOG_EVENT`.
    pub const ANONYMOUS_GTID: u8 = 34;
    /// MySQL `PREVIOUS_GTIDS_LOG_EVENT`.
    pub const PREVIOUS_GTIDS: u8 = 35;
    /// MySQL `XA_PREPARE_LOG_EVENT`.
    pub const XA_PREPARE: u8 = 38;
    /// MySQL `PARTIAL_UPDATE_ROWS_EVENT`.
    pub const PARTIAL_UPDATE_ROWS: u8 = 39;
    /// MySQL `TRANSACTION_PAYLOAD_EVENT`.
    pub const TRANSACTION_PAYLOAD: u8 = 40;
    /// MySQL `HEARTBEAT_LOG_EVENT_V2`.
    pub const HEARTBEAT_V2: u8 = 41;
    /// MariaDB `ANNOTATE_ROWS_EVENT`.
    pub const MARIA_ANNOTATE_ROWS: u8 = 160;
    /// MariaDB `BINLOG_CHECKPOINT_EVENT`.
    pub const MARIA_BINLOG_CHECKPOINT: u8 = 161;
    /// MariaDB `GTID_EVENT`.
    pub const MARIA_GTID: u8 = 162;
    /// MariaDB `GTID_LIST_EVENT`.
    pub const MARIA_GTID_LIST: u8 = 163;
    /// MariaDB `QUERY_COMPRESSED_EVENT`.
    pub const MARIA_QUERY_COMPRESSED: u8 = 165;
    /// MariaDB `WRITE_ROWS_COMPRESSED_EVENT_V1`.
    pub const MARIA_WRITE_ROWS_COMPRESSED_V1: u8 = 166;
    /// MariaDB `UPDATE_ROWS_COMPRESSED_EVENT_V1`.
    pub const MARIA_UPDATE_ROWS_COMPRESSED_V1: u8 = 167;
    /// MariaDB `DELETE_ROWS_COMPRESSED_EVENT_V1`.
    pub const MARIA_DELETE_ROWS_COMPRESSED_V1: u8 = 168;
    /// MariaDB `WRITE_ROWS_COMPRESSED_EVENT`.
    pub const MARIA_WRITE_ROWS_COMPRESSED: u8 = 169;
    /// MariaDB `UPDATE_ROWS_COMPRESSED_EVENT`.
    pub const MARIA_UPDATE_ROWS_COMPRESSED: u8 = 170;
    /// MariaDB `DELETE_ROWS_COMPRESSED_EVENT`.
    pub const MARIA_DELETE_ROWS_COMPRESSED: u8 = 171;
}

/// Header flag of events the server made up (fake rotate, a re-sent format description).
pub const LOG_EVENT_ARTIFICIAL_F: u16 = 0x20;

pub(crate) fn malformed(what: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Protocol,
        format!("malformed binlog event: {what}"),
    )
}

/// A cursor over event bytes.
#[derive(Clone, Copy, Debug)]
pub struct Buf<'a>(pub &'a [u8]);

impl<'a> Buf<'a> {
    /// Bytes left.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nothing is left.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Take `n` bytes.
    #[inline]
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(malformed(format!(
                "needed {n} bytes, {} left",
                self.0.len()
            )));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    /// One byte.
    #[inline]
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    /// Little-endian unsigned integer of `n` bytes (n <= 8).
    #[inline]
    pub fn uint_le(&mut self, n: usize) -> Result<u64> {
        let b = self.take(n)?;
        let mut v = 0u64;
        for (i, x) in b.iter().enumerate() {
            v |= u64::from(*x) << (8 * i);
        }
        Ok(v)
    }

    /// Big-endian unsigned integer of `n` bytes (n <= 8).
    #[inline]
    pub fn uint_be(&mut self, n: usize) -> Result<u64> {
        let b = self.take(n)?;
        let mut v = 0u64;
        for x in b {
            v = (v << 8) | u64::from(*x);
        }
        Ok(v)
    }

    /// 16-bit little-endian.
    pub fn u16(&mut self) -> Result<u16> {
        Ok(self.uint_le(2)? as u16)
    }

    /// 32-bit little-endian.
    pub fn u32(&mut self) -> Result<u32> {
        Ok(self.uint_le(4)? as u32)
    }

    /// 64-bit little-endian.
    pub fn u64(&mut self) -> Result<u64> {
        self.uint_le(8)
    }

    /// A length-encoded integer (`net_field_length`).
    pub fn lenenc(&mut self) -> Result<u64> {
        match self.u8()? {
            x @ 0..=250 => Ok(u64::from(x)),
            251 => Ok(0), // NULL marker; not used where we call this
            252 => self.uint_le(2),
            253 => self.uint_le(3),
            _ => self.uint_le(8),
        }
    }

    /// A length-encoded string.
    pub fn lenenc_bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.lenenc()? as usize;
        self.take(n)
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}

/// A `QUERY_EVENT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryEvent {
    /// The session's thread id.
    pub thread_id: u32,
    /// The default database of the statement.
    pub schema: String,
    /// The statement.
    pub query: String,
}

impl QueryEvent {
    /// Parse a query event body (`compressed`: MariaDB's `QUERY_COMPRESSED_EVENT`).
    pub fn parse(data: &[u8], compressed: bool) -> Result<Self> {
        let mut b = Buf(data);
        let thread_id = b.u32()?;
        let _exec_time = b.u32()?;
        let db_len = b.u8()? as usize;
        let _error_code = b.u16()?;
        let status_len = b.u16()? as usize;
        b.take(status_len)?;
        let schema = String::from_utf8_lossy(b.take(db_len)?).into_owned();
        b.u8()?; // NUL
        let raw = b.rest();
        let query = if compressed {
            String::from_utf8_lossy(&maria_uncompress(raw)?).into_owned()
        } else {
            String::from_utf8_lossy(raw).into_owned()
        };
        Ok(QueryEvent {
            thread_id,
            schema,
            query,
        })
    }
}

impl QueryEvent {
    /// Parse an `EXECUTE_LOAD_QUERY_EVENT` body: a query event whose post-header has 13 more
    /// bytes (file id, start and end of the file name in the statement, duplicate handling).
    pub fn parse_execute_load(data: &[u8]) -> Result<Self> {
        if data.len() < 26 {
            return Err(malformed(
                "EXECUTE_LOAD_QUERY event shorter than its post-header",
            ));
        }
        let mut v = Vec::with_capacity(data.len() - 13);
        v.extend_from_slice(&data[..13]);
        v.extend_from_slice(&data[26..]);
        QueryEvent::parse(&v, false)
    }
}

/// Uncompress MariaDB's compressed event payload: a header byte (`0x80 | n`, n = bytes of the
/// uncompressed length that follow, big-endian), then zlib data.
pub fn maria_uncompress(data: &[u8]) -> Result<Vec<u8>> {
    use std::io::Read as _;
    let mut b = Buf(data);
    let h = b.u8()?;
    let n = (h & 0x07) as usize;
    if h & 0x80 == 0 || n == 0 || n > 4 {
        return Err(malformed("compressed event header"));
    }
    let len = b.uint_be(n)?;
    let data = b.rest();
    // The declared length sizes nothing before it is checked: zlib cannot expand more than
    // `ZLIB_MAX_RATIO` to 1, and the output is read only up to the declared length.
    let most = (data.len() as u64).saturating_mul(ZLIB_MAX_RATIO) + 64;
    if len > most {
        return Err(malformed(format!(
            "compressed event declares {len} bytes uncompressed from {} compressed bytes",
            data.len()
        )));
    }
    let len = len as usize;
    let mut out = Vec::with_capacity(len.min(data.len().saturating_mul(4)));
    flate2::read::ZlibDecoder::new(data)
        .take(len as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| malformed("compressed event data").with_source(e))?;
    if out.len() != len {
        return Err(malformed(format!(
            "compressed event declares {len} bytes uncompressed, its data holds {}{}",
            out.len().min(len),
            if out.len() > len { " or more" } else { "" }
        )));
    }
    Ok(out)
}

/// The most a zlib (deflate) stream expands: 1032 to 1.
const ZLIB_MAX_RATIO: u64 = 1032;

/// A `ROTATE_EVENT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotateEvent {
    /// Offset in the next file.
    pub pos: u64,
    /// The next file.
    pub file: String,
}

impl RotateEvent {
    /// Parse.
    pub fn parse(data: &[u8]) -> Result<Self> {
        let mut b = Buf(data);
        let pos = b.u64()?;
        Ok(RotateEvent {
            pos,
            file: String::from_utf8_lossy(b.rest()).into_owned(),
        })
    }
}

/// An XA transaction identifier: `formatID`, `gtrid` and `bqual`, as in `XA START gtrid, bqual,
/// formatID`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Xid {
    /// `formatID` (1 unless given).
    pub format_id: i64,
    /// The global transaction id part.
    pub gtrid: Vec<u8>,
    /// The branch qualifier.
    pub bqual: Vec<u8>,
}

impl std::fmt::Display for Xid {
    /// The form the servers write in the binlog: `X'6131',X'',1`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        write!(
            f,
            "X'{}',X'{}',{}",
            hex(&self.gtrid),
            hex(&self.bqual),
            self.format_id
        )
    }
}

impl Xid {
    /// The XID of an `XA START|END|PREPARE|COMMIT|ROLLBACK xid ...` statement, with `XA` and the
    /// verb already removed: `X'..',X'..',1` as the servers write it, or `'a'`, `'a','b'`,
    /// `0x61, 0x62, 3` as users may.
    pub fn parse_sql(rest: &str) -> Option<Xid> {
        use crate::ddl::Tok;
        let toks = crate::ddl::tokenize(rest);
        let mut i = 0;
        let string = |i: &mut usize| -> Option<Vec<u8>> {
            match toks.get(*i)? {
                Tok::Ident(x, false) if x.eq_ignore_ascii_case("x") => {
                    let Some(Tok::Str(h)) = toks.get(*i + 1) else {
                        return None;
                    };
                    *i += 2;
                    hex_bytes(h)
                }
                Tok::Str(s) => {
                    *i += 1;
                    Some(s.clone().into_bytes())
                }
                Tok::Ident(s, true) => {
                    *i += 1;
                    Some(s.clone().into_bytes())
                }
                Tok::Num(n) if n.len() > 2 && n[..2].eq_ignore_ascii_case("0x") => {
                    *i += 1;
                    hex_bytes(&n[2..])
                }
                _ => None,
            }
        };
        let gtrid = string(&mut i)?;
        let mut xid = Xid {
            format_id: 1,
            gtrid,
            bqual: Vec::new(),
        };
        if toks.get(i).is_some_and(|t| *t == Tok::Punct(',')) {
            i += 1;
            xid.bqual = string(&mut i)?;
            if toks.get(i).is_some_and(|t| *t == Tok::Punct(',')) {
                i += 1;
                let negative = toks.get(i).is_some_and(|t| *t == Tok::Punct('-'));
                if negative {
                    i += 1;
                }
                let Some(Tok::Num(n)) = toks.get(i) else {
                    return None;
                };
                let v: i64 = n.parse().ok()?;
                xid.format_id = if negative { -v } else { v };
            }
        }
        Some(xid)
    }
}

fn hex_bytes(h: &str) -> Option<Vec<u8>> {
    let h = h.as_bytes();
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(h.len().div_ceil(2));
    let mut i = 0;
    if h.len() % 2 == 1 {
        out.push(digit(h[0])?);
        i = 1;
    }
    while i + 1 < h.len() {
        out.push(digit(h[i])? << 4 | digit(h[i + 1])?);
        i += 2;
    }
    Some(out)
}

/// MariaDB `GTID_EVENT` (162): starts an event group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MariaGtidEvent {
    /// Sequence number.
    pub seq: u64,
    /// Replication domain.
    pub domain: u32,
    /// Flags (`FL_STANDALONE` = 1: a group without BEGIN/COMMIT, i.e. DDL; `FL_PREPARED_XA`:
    /// the prepared part of an XA transaction; `FL_COMPLETED_XA`: its `XA COMMIT`/`ROLLBACK`).
    pub flags: u8,
    /// The XID of an XA group (`FL_PREPARED_XA` or `FL_COMPLETED_XA`).
    pub xid: Option<Xid>,
}

impl MariaGtidEvent {
    /// `FL_STANDALONE`.
    pub const FL_STANDALONE: u8 = 1;
    /// `FL_GROUP_COMMIT_ID`: a commit id follows the flags.
    pub const FL_GROUP_COMMIT_ID: u8 = 2;
    /// `FL_PREPARED_XA`: the group is the prepared part of an XA transaction (10.5+), ended by an
    /// `XA_PREPARE` event.
    pub const FL_PREPARED_XA: u8 = 64;
    /// `FL_COMPLETED_XA`: the group is an `XA COMMIT` or `XA ROLLBACK` of a prepared one.
    pub const FL_COMPLETED_XA: u8 = 128;

    /// Parse.
    pub fn parse(data: &[u8]) -> Result<Self> {
        let mut b = Buf(data);
        let seq = b.u64()?;
        let domain = b.u32()?;
        let flags = b.u8()?;
        let mut xid = None;
        if flags & (Self::FL_PREPARED_XA | Self::FL_COMPLETED_XA) != 0 {
            // Lenient: the XID also comes with the XA_PREPARE event and the XA statements.
            xid = (|| {
                if flags & Self::FL_GROUP_COMMIT_ID != 0 {
                    b.take(8).ok()?;
                }
                let format_id = i64::from(b.u32().ok()? as i32);
                let gl = b.u8().ok()? as usize;
                let bl = b.u8().ok()? as usize;
                Some(Xid {
                    format_id,
                    gtrid: b.take(gl).ok()?.to_vec(),
                    bqual: b.take(bl).ok()?.to_vec(),
                })
            })();
        }
        Ok(MariaGtidEvent {
            seq,
            domain,
            flags,
            xid,
        })
    }

    /// Whether the group has no BEGIN/COMMIT (a DDL statement).
    pub fn standalone(&self) -> bool {
        self.flags & Self::FL_STANDALONE != 0
    }

    /// Whether the group is the prepared part of an XA transaction.
    pub fn prepared_xa(&self) -> bool {
        self.flags & Self::FL_PREPARED_XA != 0
    }
}

/// `XA_PREPARE_LOG_EVENT` (38): ends the prepared part of an XA transaction (`XA PREPARE`), or,
/// with `one_phase`, a whole one (`XA COMMIT ... ONE PHASE` on MySQL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XaPrepareEvent {
    /// `XA COMMIT ... ONE PHASE`: the transaction is committed here.
    pub one_phase: bool,
    /// The transaction.
    pub xid: Xid,
}

impl XaPrepareEvent {
    /// Parse: one_phase (1), formatID (4), gtrid_length (4), bqual_length (4), data.
    pub fn parse(data: &[u8]) -> Result<Self> {
        let mut b = Buf(data);
        let one_phase = b.u8()? != 0;
        let format_id = i64::from(b.u32()? as i32);
        let gl = b.u32()? as usize;
        let bl = b.u32()? as usize;
        if gl > 64 || bl > 64 {
            return Err(malformed("XA_PREPARE event: XID longer than 64 bytes"));
        }
        Ok(XaPrepareEvent {
            one_phase,
            xid: Xid {
                format_id,
                gtrid: b.take(gl)?.to_vec(),
                bqual: b.take(bl)?.to_vec(),
            },
        })
    }
}

/// MariaDB `GTID_LIST_EVENT` (163): the GTID state at the start of a binlog file.
pub fn parse_maria_gtid_list(data: &[u8]) -> Result<Vec<(u32, u32, u64)>> {
    let mut b = Buf(data);
    let n = (b.u32()? & 0x0FFF_FFFF) as usize;
    // Each GTID takes 16 bytes: a count the event cannot hold sizes nothing.
    if n > b.len() / 16 {
        return Err(malformed(format!(
            "GTID_LIST event declares {n} GTIDs, its {} bytes hold {}",
            b.len(),
            b.len() / 16
        )));
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push((b.u32()?, b.u32()?, b.u64()?));
    }
    Ok(out)
}

/// MySQL `GTID_LOG_EVENT` (33) / `ANONYMOUS_GTID_LOG_EVENT` (34).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MySqlGtidEvent {
    /// Source uuid (all zero for anonymous).
    pub sid: [u8; 16],
    /// Transaction number.
    pub gno: u64,
    /// `immediate_commit_timestamp` in microseconds, when present (8.0.1+).
    pub commit_ts_us: Option<i64>,
}

impl MySqlGtidEvent {
    /// Parse.
    pub fn parse(data: &[u8]) -> Result<Self> {
        let mut b = Buf(data);
        let _flags = b.u8()?;
        let mut sid = [0u8; 16];
        sid.copy_from_slice(b.take(16)?);
        let gno = b.u64()?;
        let mut commit_ts_us = None;
        // Logical clock (lt_type = 2, last_committed, sequence_number), then commit timestamps.
        if b.len() >= 17 && b.u8()? == 2 {
            b.take(16)?;
            if b.len() >= 7 {
                let raw = b.uint_le(7)?;
                let ts = raw & !(1u64 << 55);
                commit_ts_us = Some(ts as i64);
            }
        }
        Ok(MySqlGtidEvent {
            sid,
            gno,
            commit_ts_us,
        })
    }
}

/// `TABLE_MAP_EVENT` optional metadata (present with `binlog_row_metadata=FULL`; some fields are
/// written with MINIMAL too).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OptionalMetadata {
    /// Signedness of each numeric column, in order (true = unsigned).
    pub signedness: Option<Vec<bool>>,
    /// Collation of each character column, in order.
    pub column_charsets: Option<Vec<u16>>,
    /// Column names.
    pub column_names: Option<Vec<String>>,
    /// Labels of each SET column.
    pub set_values: Option<Vec<Vec<Vec<u8>>>>,
    /// Labels of each ENUM column.
    pub enum_values: Option<Vec<Vec<Vec<u8>>>>,
    /// Geometry subtype of each geometry column.
    pub geometry_types: Option<Vec<u64>>,
    /// Primary key columns.
    pub primary_key: Option<Vec<usize>>,
    /// Collation of each ENUM/SET column.
    pub enum_set_charsets: Option<Vec<u16>>,
    /// Visibility of each column (MySQL invisible columns).
    pub visibility: Option<Vec<bool>>,
}

/// A `TABLE_MAP_EVENT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableMapEvent {
    /// The table id that rows events refer to.
    pub table_id: u64,
    /// Database.
    pub schema: String,
    /// Table.
    pub table: String,
    /// Binlog column types.
    pub types: Vec<u8>,
    /// Per-column metadata, decoded to one number per column (see [`TableMapEvent::parse`]).
    pub meta: Vec<u16>,
    /// Per-column nullability.
    pub nullable: Vec<bool>,
    /// Optional metadata.
    pub optional: OptionalMetadata,
}

/// Column type codes (`enum_field_types`).
pub mod column_type {
    #![allow(missing_docs)]
    pub const DECIMAL: u8 = 0;
    pub const TINY: u8 = 1;
    pub const SHORT: u8 = 2;
    pub const LONG: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const DOUBLE: u8 = 5;
    pub const NULL: u8 = 6;
    pub const TIMESTAMP: u8 = 7;
    pub const LONGLONG: u8 = 8;
    pub const INT24: u8 = 9;
    pub const DATE: u8 = 10;
    pub const TIME: u8 = 11;
    pub const DATETIME: u8 = 12;
    pub const YEAR: u8 = 13;
    pub const NEWDATE: u8 = 14;
    pub const VARCHAR: u8 = 15;
    pub const BIT: u8 = 16;
    pub const TIMESTAMP2: u8 = 17;
    pub const DATETIME2: u8 = 18;
    pub const TIME2: u8 = 19;
    pub const TYPED_ARRAY: u8 = 20;
    pub const VECTOR: u8 = 242;
    pub const JSON: u8 = 245;
    pub const NEWDECIMAL: u8 = 246;
    pub const ENUM: u8 = 247;
    pub const SET: u8 = 248;
    pub const TINY_BLOB: u8 = 249;
    pub const MEDIUM_BLOB: u8 = 250;
    pub const LONG_BLOB: u8 = 251;
    pub const BLOB: u8 = 252;
    pub const VAR_STRING: u8 = 253;
    pub const STRING: u8 = 254;
    pub const GEOMETRY: u8 = 255;
}

/// For a `STRING` column, the real type (`STRING`, `ENUM` or `SET`) and the length (bytes, or the
/// pack length for ENUM/SET) from its two metadata bytes (kept as `byte0 << 8 | byte1`).
pub fn string_real_type(meta: u16) -> (u8, u16) {
    let b0 = (meta >> 8) as u8;
    let b1 = (meta & 0xff) as u8;
    if b0 & 0x30 != 0x30 {
        (
            b0 | 0x30,
            u16::from(b1) | ((u16::from(b0 & 0x30) ^ 0x30) << 4),
        )
    } else {
        (b0, u16::from(b1))
    }
}

/// The effective type of a column: `STRING` columns may really be ENUM or SET.
pub fn real_type(t: u8, meta: u16) -> u8 {
    if t == column_type::STRING {
        let (rt, _) = string_real_type(meta);
        if rt == column_type::ENUM || rt == column_type::SET {
            return rt;
        }
    }
    t
}

fn is_numeric(t: u8) -> bool {
    use column_type::*;
    matches!(
        t,
        TINY | SHORT | INT24 | LONG | LONGLONG | NEWDECIMAL | FLOAT | DOUBLE | DECIMAL
    )
}

/// Whether the optional metadata lists a charset for this column.
pub fn is_character(t: u8, meta: u16) -> bool {
    use column_type::*;
    match t {
        STRING => {
            let (rt, _) = string_real_type(meta);
            rt == STRING
        }
        VAR_STRING | VARCHAR | BLOB | TINY_BLOB | MEDIUM_BLOB | LONG_BLOB => true,
        _ => false,
    }
}

fn is_enum_or_set(t: u8, meta: u16) -> bool {
    let rt = real_type(t, meta);
    rt == column_type::ENUM || rt == column_type::SET
}

impl TableMapEvent {
    /// Parse. Metadata is reduced to one `u16` per column: the 2-byte forms keep their bytes in
    /// order `byte0 << 8 | byte1` for `STRING`/`NEWDECIMAL`/`BIT` (precision/real type first) and
    /// little-endian for `VARCHAR`; 1-byte forms are the byte.
    pub fn parse(data: &[u8]) -> Result<Self> {
        use column_type::*;
        let mut b = Buf(data);
        let table_id = b.uint_le(6)?;
        let _flags = b.u16()?;
        let schema_len = b.u8()? as usize;
        let schema = String::from_utf8_lossy(b.take(schema_len)?).into_owned();
        b.u8()?;
        let table_len = b.u8()? as usize;
        let table = String::from_utf8_lossy(b.take(table_len)?).into_owned();
        b.u8()?;
        let n = b.lenenc()? as usize;
        let types = b.take(n)?.to_vec();
        let meta_len = b.lenenc()? as usize;
        let mut m = Buf(b.take(meta_len)?);
        let mut meta = Vec::with_capacity(n);
        for &t in &types {
            let v = match t {
                FLOAT | DOUBLE | BLOB | TINY_BLOB | MEDIUM_BLOB | LONG_BLOB | GEOMETRY | JSON
                | TIMESTAMP2 | DATETIME2 | TIME2 | VECTOR => {
                    if t == VECTOR {
                        m.u32()? as u16
                    } else {
                        u16::from(m.u8()?)
                    }
                }
                VARCHAR | VAR_STRING => m.u16()?,
                NEWDECIMAL | STRING | BIT | ENUM | SET => {
                    let b0 = m.u8()?;
                    let b1 = m.u8()?;
                    (u16::from(b0) << 8) | u16::from(b1)
                }
                TYPED_ARRAY => {
                    // MySQL multi-valued index arrays: element type then its metadata.
                    let inner = m.u8()?;
                    match inner {
                        VARCHAR | VAR_STRING | NEWDECIMAL | STRING | BIT => {
                            m.u16()?;
                        }
                        FLOAT | DOUBLE | TIMESTAMP2 | DATETIME2 | TIME2 | BLOB => {
                            m.u8()?;
                        }
                        _ => {}
                    }
                    0
                }
                _ => 0,
            };
            meta.push(v);
        }
        let bitmap = b.take(n.div_ceil(8))?;
        let nullable = (0..n)
            .map(|i| bitmap[i / 8] & (1 << (i % 8)) != 0)
            .collect();
        let mut tme = TableMapEvent {
            table_id,
            schema,
            table,
            types,
            meta,
            nullable,
            optional: OptionalMetadata::default(),
        };
        tme.parse_optional(b.rest())?;
        Ok(tme)
    }

    fn parse_optional(&mut self, data: &[u8]) -> Result<()> {
        let mut b = Buf(data);
        let n_numeric = self.types.iter().filter(|t| is_numeric(**t)).count();
        let n_char = self
            .types
            .iter()
            .zip(&self.meta)
            .filter(|(t, m)| is_character(**t, **m))
            .count();
        let n_enum_set = self
            .types
            .iter()
            .zip(&self.meta)
            .filter(|(t, m)| is_enum_or_set(**t, **m))
            .count();
        while !b.is_empty() {
            let kind = b.u8()?;
            let len = b.lenenc()? as usize;
            let mut v = Buf(b.take(len)?);
            let o = &mut self.optional;
            match kind {
                1 => o.signedness = Some(read_bits(&mut v, n_numeric)?),
                2 => o.column_charsets = Some(read_default_charsets(&mut v, n_char)?),
                3 => o.column_charsets = Some(read_lenenc_list(&mut v)?),
                4 => {
                    let mut names = Vec::with_capacity(self.types.len());
                    while !v.is_empty() {
                        names.push(String::from_utf8_lossy(v.lenenc_bytes()?).into_owned());
                    }
                    o.column_names = Some(names);
                }
                5 | 6 => {
                    let mut all = Vec::new();
                    while !v.is_empty() {
                        let count = v.lenenc()?;
                        // Each label takes at least its length byte.
                        if count > v.len() as u64 {
                            return Err(malformed(format!(
                                "TABLE_MAP of {}.{}: {} labels declared for an ENUM/SET \
                                 column, {} bytes left",
                                self.schema,
                                self.table,
                                count,
                                v.len()
                            )));
                        }
                        let mut labels = Vec::with_capacity(count as usize);
                        for _ in 0..count {
                            labels.push(v.lenenc_bytes()?.to_vec());
                        }
                        all.push(labels);
                    }
                    if kind == 5 {
                        o.set_values = Some(all);
                    } else {
                        o.enum_values = Some(all);
                    }
                }
                7 => {
                    let mut g = Vec::new();
                    while !v.is_empty() {
                        g.push(v.lenenc()?);
                    }
                    o.geometry_types = Some(g);
                }
                8 => {
                    let mut pk = Vec::new();
                    while !v.is_empty() {
                        pk.push(v.lenenc()? as usize);
                    }
                    o.primary_key = Some(pk);
                }
                9 => {
                    let mut pk = Vec::new();
                    while !v.is_empty() {
                        pk.push(v.lenenc()? as usize);
                        v.lenenc()?; // prefix length
                    }
                    o.primary_key = Some(pk);
                }
                10 => o.enum_set_charsets = Some(read_default_charsets(&mut v, n_enum_set)?),
                11 => o.enum_set_charsets = Some(read_lenenc_list(&mut v)?),
                12 => o.visibility = Some(read_bits(&mut v, self.types.len())?),
                _ => {} // unknown fields are skipped by their length
            }
        }
        Ok(())
    }
}

fn read_bits(v: &mut Buf<'_>, n: usize) -> Result<Vec<bool>> {
    let bytes = v.rest();
    if bytes.len() * 8 < n {
        return Err(malformed("optional metadata bitmap too short"));
    }
    Ok((0..n)
        .map(|i| bytes[i / 8] & (0x80 >> (i % 8)) != 0)
        .collect())
}

fn read_lenenc_list(v: &mut Buf<'_>) -> Result<Vec<u16>> {
    let mut out = Vec::new();
    while !v.is_empty() {
        out.push(v.lenenc()? as u16);
    }
    Ok(out)
}

fn read_default_charsets(v: &mut Buf<'_>, n: usize) -> Result<Vec<u16>> {
    let default = v.lenenc()? as u16;
    let mut out = vec![default; n];
    while !v.is_empty() {
        let idx = v.lenenc()? as usize;
        let cs = v.lenenc()? as u16;
        if idx < n {
            out[idx] = cs;
        }
    }
    Ok(out)
}

/// What a rows event does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowsKind {
    /// Inserts: after images.
    Write,
    /// Updates: before and after images.
    Update,
    /// Deletes: before images.
    Delete,
}

/// A rows event, with its rows still encoded.
#[derive(Debug)]
pub struct RowsEvent<'a> {
    /// Which table map it refers to.
    pub table_id: u64,
    /// Insert, update or delete.
    pub kind: RowsKind,
    /// Number of columns of the table.
    pub columns: usize,
    /// Columns present in the before image (deletes, updates) or the after image (writes).
    pub present: &'a [u8],
    /// Columns present in the after image of updates.
    pub present_after: Option<&'a [u8]>,
    /// MySQL partial JSON updates (`PARTIAL_UPDATE_ROWS_EVENT`).
    pub partial: bool,
    /// The encoded rows.
    pub rows: std::borrow::Cow<'a, [u8]>,
}

impl<'a> RowsEvent<'a> {
    /// Whether `event_type` is a rows event, and which kind.
    pub fn kind_of(event_type: u8) -> Option<(RowsKind, bool, bool)> {
        use event_type::*;
        // (kind, v2 with extra data, MariaDB-compressed)
        Some(match event_type {
            WRITE_ROWS_V1 => (RowsKind::Write, false, false),
            UPDATE_ROWS_V1 => (RowsKind::Update, false, false),
            DELETE_ROWS_V1 => (RowsKind::Delete, false, false),
            WRITE_ROWS => (RowsKind::Write, true, false),
            UPDATE_ROWS | PARTIAL_UPDATE_ROWS => (RowsKind::Update, true, false),
            DELETE_ROWS => (RowsKind::Delete, true, false),
            MARIA_WRITE_ROWS_COMPRESSED_V1 => (RowsKind::Write, false, true),
            MARIA_UPDATE_ROWS_COMPRESSED_V1 => (RowsKind::Update, false, true),
            MARIA_DELETE_ROWS_COMPRESSED_V1 => (RowsKind::Delete, false, true),
            MARIA_WRITE_ROWS_COMPRESSED => (RowsKind::Write, true, true),
            MARIA_UPDATE_ROWS_COMPRESSED => (RowsKind::Update, true, true),
            MARIA_DELETE_ROWS_COMPRESSED => (RowsKind::Delete, true, true),
            _ => return None,
        })
    }

    /// Parse the header of a rows event of type `event_type`.
    pub fn parse(event_type: u8, data: &'a [u8]) -> Result<Self> {
        let (kind, v2, compressed) =
            Self::kind_of(event_type).ok_or_else(|| malformed("not a rows event"))?;
        let mut b = Buf(data);
        let table_id = b.uint_le(6)?;
        let _flags = b.u16()?;
        if v2 {
            let extra = b.u16()? as usize;
            b.take(extra.saturating_sub(2))?;
        }
        let columns = b.lenenc()? as usize;
        let bitmap_len = columns.div_ceil(8);
        let present = b.take(bitmap_len)?;
        let present_after = if kind == RowsKind::Update {
            Some(b.take(bitmap_len)?)
        } else {
            None
        };
        let rest = b.rest();
        let rows = if compressed {
            std::borrow::Cow::Owned(maria_uncompress(rest)?)
        } else {
            std::borrow::Cow::Borrowed(rest)
        };
        Ok(RowsEvent {
            table_id,
            kind,
            columns,
            present,
            present_after,
            partial: event_type == event_type::PARTIAL_UPDATE_ROWS,
            rows,
        })
    }
}

/// Whether bit `i` is set in a little-endian-within-byte bitmap.
#[inline]
pub fn bit(bitmap: &[u8], i: usize) -> bool {
    bitmap.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::column_type::*;
    use super::*;
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    /// The unit tests' allocator: records the largest allocation of each thread and refuses
    /// any over 256 MiB (the test binary aborts), so a length read from an event that sizes an
    /// allocation fails the test instead of taking the machine's memory.
    struct Probe;

    const REFUSED_BYTES: usize = 256 << 20;

    thread_local! {
        static LARGEST: Cell<usize> = const { Cell::new(0) };
    }

    fn note(n: usize) -> bool {
        let _ = LARGEST.try_with(|c| c.set(c.get().max(n)));
        n <= REFUSED_BYTES
    }

    unsafe impl GlobalAlloc for Probe {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            if note(l.size()) {
                System.alloc(l)
            } else {
                std::ptr::null_mut()
            }
        }
        unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
            if note(l.size()) {
                System.alloc_zeroed(l)
            } else {
                std::ptr::null_mut()
            }
        }
        unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
            if note(new) {
                System.realloc(p, l, new)
            } else {
                std::ptr::null_mut()
            }
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            System.dealloc(p, l)
        }
    }

    #[global_allocator]
    static PROBE: Probe = Probe;

    /// Run `f` and return its result with the largest single allocation it made.
    pub fn largest_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
        LARGEST.with(|c| c.set(0));
        let r = f();
        (r, LARGEST.with(Cell::get))
    }

    /// The error of `r`, with its kind checked to be a protocol error.
    pub fn protocol_err<T: std::fmt::Debug>(r: Result<T>) -> String {
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol);
        e.to_string()
    }

    #[test]
    fn declared_lengths_beyond_the_event_are_errors_not_allocations() {
        use std::io::Write as _;
        // GIVEN a compressed event declaring 0xFFFFFFFF uncompressed bytes
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(b"BEGIN").unwrap();
        let zdata = z.finish().unwrap();
        let mut ev = vec![0x84, 0xff, 0xff, 0xff, 0xff];
        ev.extend_from_slice(&zdata);
        // WHEN it is uncompressed THEN an error names the length, and nothing was sized by it
        let (r, largest) = largest_allocation(|| maria_uncompress(&ev));
        assert!(protocol_err(r).contains("declares 4294967295 bytes"));
        assert!(largest < 64 * 1024, "{largest}");

        // GIVEN a zlib bomb declaring 16 bytes: 32 MiB of zeros in a few KiB
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&vec![0u8; 32 << 20]).unwrap();
        let mut ev = vec![0x81, 16];
        ev.extend_from_slice(&z.finish().unwrap());
        // THEN only the declared length is inflated before the error
        let (r, largest) = largest_allocation(|| maria_uncompress(&ev));
        assert!(
            protocol_err(r).contains("declares 16 bytes uncompressed, its data holds 16 or more")
        );
        assert!(largest < 1 << 20, "{largest}");

        // GIVEN a GTID_LIST event declaring 0x0FFFFFFF GTIDs in 4 bytes
        let (r, largest) = largest_allocation(|| parse_maria_gtid_list(&[0xff, 0xff, 0xff, 0x0f]));
        assert!(protocol_err(r).contains("declares 268435455 GTIDs"));
        assert!(largest < 1024, "{largest}");

        // GIVEN a TABLE_MAP whose ENUM column declares 2^56 labels in its optional metadata
        let mut opt = vec![6, 10, 0xfe];
        opt.extend_from_slice(&(1u64 << 56).to_le_bytes());
        opt.push(0);
        let bytes = table_map_bytes(&[STRING], &[0xf7, 1], &opt);
        let (r, largest) = largest_allocation(|| TableMapEvent::parse(&bytes));
        assert!(protocol_err(r).contains("db.t: 72057594037927936 labels declared"));
        assert!(largest < 1024, "{largest}");
    }

    /// Build a TABLE_MAP body: id 0x0102 for `db`.`t` with `types`, raw metadata bytes, all
    /// nullable, and raw optional metadata.
    pub fn table_map_bytes(types: &[u8], meta: &[u8], optional: &[u8]) -> Vec<u8> {
        let mut v = vec![0x02, 0x01, 0, 0, 0, 0, 1, 0];
        v.push(2);
        v.extend_from_slice(b"db\0");
        v.push(1);
        v.extend_from_slice(b"t\0");
        v.push(types.len() as u8);
        v.extend_from_slice(types);
        v.push(meta.len() as u8);
        v.extend_from_slice(meta);
        v.extend(std::iter::repeat_n(0xff, types.len().div_ceil(8)));
        v.extend_from_slice(optional);
        v
    }

    #[test]
    fn table_map_with_mysql8_full_metadata() {
        // GIVEN a table map built per MySQL's Table_map_log_event layout: columns
        // (id INT UNSIGNED PK, name VARCHAR(20) utf8mb4, price DECIMAL(10,2), st ENUM('a','b'),
        //  doc JSON, ts DATETIME(3))
        let types = [LONG, VARCHAR, NEWDECIMAL, STRING, JSON, DATETIME2];
        // VARCHAR(20) utf8mb4: 80 bytes LE; DECIMAL(10,2); ENUM: real type 0xf7, pack 1; JSON: 4;
        // DATETIME2: fsp 3.
        let meta = [80, 0, 10, 2, 0xf7, 1, 4, 3];
        let mut opt = Vec::new();
        // SIGNEDNESS over numeric columns (id, price): 1000_0000
        opt.extend_from_slice(&[1, 1, 0b1000_0000]);
        // DEFAULT_CHARSET: default 255 (utf8mb4_0900_ai_ci: lenenc 0xfc 0xff 0x00), no exceptions
        opt.extend_from_slice(&[2, 3, 0xfc, 0xff, 0x00]);
        // COLUMN_NAME
        let names: &[&str] = &["id", "name", "price", "st", "doc", "ts"];
        let mut n = Vec::new();
        for s in names {
            n.push(s.len() as u8);
            n.extend_from_slice(s.as_bytes());
        }
        opt.push(4);
        opt.push(n.len() as u8);
        opt.extend_from_slice(&n);
        // ENUM_STR_VALUE: one enum column with 2 labels
        opt.extend_from_slice(&[6, 5, 2, 1, b'a', 1, b'b']);
        // SIMPLE_PRIMARY_KEY: column 0
        opt.extend_from_slice(&[8, 1, 0]);
        // ENUM_AND_SET_DEFAULT_CHARSET: 45
        opt.extend_from_slice(&[10, 1, 45]);
        // an unknown field (type 200) is skipped
        opt.extend_from_slice(&[200, 2, 9, 9]);
        let bytes = table_map_bytes(&types, &meta, &opt);

        // WHEN it is parsed
        let t = TableMapEvent::parse(&bytes).unwrap();

        // THEN every piece is where the documentation says
        assert_eq!(t.table_id, 0x0102);
        assert_eq!((t.schema.as_str(), t.table.as_str()), ("db", "t"));
        assert_eq!(t.meta, vec![0, 80, (10 << 8) | 2, 0xf701, 4, 3]);
        assert_eq!(real_type(STRING, t.meta[3]), ENUM);
        let o = &t.optional;
        assert_eq!(o.signedness, Some(vec![true, false]));
        assert_eq!(o.column_charsets, Some(vec![255]));
        assert_eq!(
            o.column_names.as_deref().unwrap(),
            &["id", "name", "price", "st", "doc", "ts"]
        );
        assert_eq!(
            o.enum_values,
            Some(vec![vec![b"a".to_vec(), b"b".to_vec()]])
        );
        assert_eq!(o.primary_key, Some(vec![0]));
        assert_eq!(o.enum_set_charsets, Some(vec![45]));
    }

    #[test]
    fn char_columns_longer_than_255_bytes_keep_their_length() {
        // CHAR(100) utf8mb4 = 400 bytes: the high bits of the length hide in byte 0.
        let len: u16 = 400;
        let b0 = (0xfe ^ (((len >> 4) & 0x30) as u8)) as u16;
        let meta = (b0 << 8) | (len & 0xff);
        assert_eq!(string_real_type(meta), (STRING, 400));
    }

    #[test]
    fn mysql_gtid_event_layout() {
        // GIVEN a Gtid_log_event body: flags, sid, gno, lt_type 2, last_committed,
        // sequence_number, immediate_commit_timestamp (7 bytes), transaction_length...
        let mut v = vec![1u8];
        let sid: [u8; 16] = core::array::from_fn(|i| i as u8);
        v.extend_from_slice(&sid);
        v.extend_from_slice(&42u64.to_le_bytes());
        v.push(2);
        v.extend_from_slice(&7u64.to_le_bytes());
        v.extend_from_slice(&8u64.to_le_bytes());
        let ts: u64 = 1_700_000_000_123_456;
        v.extend_from_slice(&ts.to_le_bytes()[..7]);
        v.extend_from_slice(&[0xfc, 0x10, 0x01]);
        // WHEN parsed THEN sid, gno and the commit time in microseconds come out
        let g = MySqlGtidEvent::parse(&v).unwrap();
        assert_eq!(g.sid, sid);
        assert_eq!(g.gno, 42);
        assert_eq!(g.commit_ts_us, Some(1_700_000_000_123_456));
        // AND an old (5.7) event without timestamps parses too
        let g = MySqlGtidEvent::parse(&v[..25]).unwrap();
        assert_eq!((g.gno, g.commit_ts_us), (42, None));
    }

    #[test]
    fn mariadb_gtid_and_gtid_list_layouts() {
        let mut v = Vec::new();
        v.extend_from_slice(&77u64.to_le_bytes());
        v.extend_from_slice(&3u32.to_le_bytes());
        v.push(MariaGtidEvent::FL_STANDALONE);
        let g = MariaGtidEvent::parse(&v).unwrap();
        assert_eq!((g.seq, g.domain, g.standalone()), (77, 3, true));

        let mut l = Vec::new();
        l.extend_from_slice(&2u32.to_le_bytes());
        for (d, s, n) in [(0u32, 1u32, 9u64), (1, 2, 5)] {
            l.extend_from_slice(&d.to_le_bytes());
            l.extend_from_slice(&s.to_le_bytes());
            l.extend_from_slice(&n.to_le_bytes());
        }
        assert_eq!(
            parse_maria_gtid_list(&l).unwrap(),
            vec![(0, 1, 9), (1, 2, 5)]
        );
    }

    #[test]
    fn rows_event_v2_header_and_truncated_input() {
        // GIVEN an UPDATE_ROWS_EVENT (v2) header with 2 bytes of extra data
        let mut v = vec![5, 0, 0, 0, 0, 0, 1, 0, 2, 0, 3, 0xff, 0xff, 0xaa];
        let r = RowsEvent::parse(event_type::UPDATE_ROWS, &v).unwrap();
        assert_eq!((r.table_id, r.columns, r.kind), (5, 3, RowsKind::Update));
        assert_eq!(r.present, &[0xff]);
        assert_eq!(r.present_after, Some(&[0xff][..]));
        assert_eq!(&r.rows[..], &[0xaa]);
        // AND truncated input is an error, never a panic
        v.truncate(11);
        assert!(RowsEvent::parse(event_type::UPDATE_ROWS, &v).is_err());
        assert!(TableMapEvent::parse(&[1, 2, 3]).is_err());
    }

    #[test]
    fn query_event_layout() {
        let mut v = Vec::new();
        v.extend_from_slice(&9u32.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.push(2);
        v.extend_from_slice(&0u16.to_le_bytes());
        v.extend_from_slice(&3u16.to_le_bytes());
        v.extend_from_slice(&[0, 0, 0]);
        v.extend_from_slice(b"db\0TRUNCATE t");
        let q = QueryEvent::parse(&v, false).unwrap();
        assert_eq!(q.thread_id, 9);
        assert_eq!(q.schema, "db");
        assert_eq!(q.query, "TRUNCATE t");
    }
}
