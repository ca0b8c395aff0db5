//! Decoding column values into [`Value`]s: from binlog row images, and from the text protocol
//! (the snapshot). Both produce the same value for the same stored data.
//!
//! The JSON form of each value is the README's type table; zero and partial-zero dates
//! (`0000-00-00`, `2024-00-10`) become `Null`.

use std::sync::Arc;

use connector_core::encode::days_from_civil;
use connector_core::{Result, Row, TableSchema, Value};

use crate::binlog::{bit, column_type as ct, malformed, string_real_type, Buf};
use crate::decimal::{decimal_size, decode_decimal_into};
use crate::jsonb;
use crate::schema::{decode_text, ColumnDef, Kind, TableDef};

/// How to decode one column of a `TABLE_MAP`-described table.
#[derive(Clone, Debug)]
pub struct ColumnPlan {
    /// The column.
    pub def: ColumnDef,
    /// Binlog type code (already resolved to ENUM/SET for `STRING` columns).
    pub binlog_type: u8,
    /// Binlog metadata (see [`crate::binlog::TableMapEvent::parse`]).
    pub meta: u16,
}

/// A table as the binlog describes it at one point: how to decode its rows, and the schema its
/// events carry.
#[derive(Debug)]
pub struct TableShape {
    /// The schema events carry (shared by all events of this shape).
    pub schema: Arc<TableSchema>,
    /// Decoding plan per column.
    pub columns: Vec<ColumnPlan>,
    /// The table definition it was built from.
    pub def: TableDef,
}

impl TableShape {
    /// A shape from its decoding plan.
    pub fn new(def: TableDef, columns: Vec<ColumnPlan>) -> Self {
        TableShape {
            schema: Arc::new(def.to_schema()),
            columns,
            def,
        }
    }

    /// Decode one row image; columns absent from `present` are [`Value::Unavailable`].
    pub fn decode_row(&self, present: &[u8], b: &mut Buf<'_>) -> Result<Row> {
        let n = self.columns.len();
        let n_present = (0..n).filter(|i| bit(present, *i)).count();
        let nulls = b.take(n_present.div_ceil(8))?;
        let mut row = Vec::with_capacity(n);
        let mut j = 0;
        for (i, col) in self.columns.iter().enumerate() {
            if !bit(present, i) {
                row.push(Value::Unavailable);
                continue;
            }
            let is_null = bit(nulls, j);
            j += 1;
            if is_null {
                row.push(Value::Null);
            } else {
                row.push(decode_binlog_value(col, b).map_err(|e| {
                    e.context(format!(
                        "column {}.{}.{} ({})",
                        self.def.schema,
                        self.def.table,
                        col.def.name,
                        col.def.type_name()
                    ))
                })?);
            }
        }
        Ok(row)
    }
}

fn frac_micros(b: &mut Buf<'_>, fsp: u16) -> Result<i64> {
    Ok(match fsp {
        1 | 2 => b.uint_be(1)? as i64 * 10_000,
        3 | 4 => b.uint_be(2)? as i64 * 100,
        5 | 6 => b.uint_be(3)? as i64,
        _ => 0,
    })
}

/// Microseconds since 1970-01-01 of a civil date and time; `None` for zero or partial-zero dates.
pub fn datetime_micros(y: i64, mo: u32, d: u32, h: u64, mi: u64, s: u64, us: i64) -> Option<i64> {
    if mo == 0 || d == 0 || mo > 12 || d > 31 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    Some(days * 86_400_000_000 + ((h * 3600 + mi * 60 + s) as i64) * 1_000_000 + us)
}

fn date_value(y: i64, m: u32, d: u32) -> Value {
    if m == 0 || d == 0 || m > 12 || d > 31 {
        return Value::Null;
    }
    Value::Date(days_from_civil(y, m, d) as i32)
}

fn text_or_bytes(def: &ColumnDef, bytes: &[u8]) -> Value {
    match &def.charset {
        Some(cs) if !cs.is_binary() => Value::Text(decode_text(bytes, cs)),
        _ => Value::Bytes(bytes.to_vec()),
    }
}

fn enum_value(def: &ColumnDef, index: u64) -> Value {
    if index == 0 {
        // The "" error value MySQL stores for invalid input in non-strict mode.
        return Value::Text(String::new());
    }
    match def.values.get(index as usize - 1) {
        Some(l) => Value::Text(l.clone()),
        None => Value::Text(index.to_string()),
    }
}

fn set_value(def: &ColumnDef, bits: u64) -> Value {
    let mut out = String::new();
    for i in 0..64 {
        if bits & (1 << i) != 0 {
            if !out.is_empty() {
                out.push(',');
            }
            match def.values.get(i) {
                Some(l) => out.push_str(l),
                None => out.push_str(&(i + 1).to_string()),
            }
        }
    }
    Value::Text(out)
}

/// MariaDB's INET4, INET6 and UUID from their binlog bytes (logged like BINARY(n), without
/// trailing zero bytes), in the text form the server prints.
fn fixed_binary_text(kind: Kind, raw: &[u8]) -> Value {
    use std::fmt::Write as _;
    let n = match kind {
        Kind::Inet4 => 4,
        _ => 16,
    };
    let mut b = [0u8; 16];
    let len = raw.len().min(n);
    b[..len].copy_from_slice(&raw[..len]);
    let b = &b[..n];
    let mut out = String::with_capacity(39);
    match kind {
        Kind::Inet4 => {
            let _ = write!(out, "{}.{}.{}.{}", b[0], b[1], b[2], b[3]);
        }
        Kind::Uuid => {
            // The binlog carries the in-memory (RFC 4122 byte order) form.
            for (i, x) in b.iter().enumerate() {
                if matches!(i, 4 | 6 | 8 | 10) {
                    out.push('-');
                }
                let _ = write!(out, "{x:02x}");
            }
        }
        _ => {
            // MariaDB's Inet6::to_string: the first longest run of zero groups (even one) is
            // `::`; IPv4-compatible (::a.b.c.d) and IPv4-mapped (::ffff:a.b.c.d) addresses end
            // in dotted form.
            let w: Vec<u16> = b
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            let (mut gap_pos, mut gap_len) = (usize::MAX, 0);
            let mut i = 0;
            while i < 8 {
                if w[i] == 0 {
                    let start = i;
                    while i < 8 && w[i] == 0 {
                        i += 1;
                    }
                    if i - start > gap_len {
                        (gap_pos, gap_len) = (start, i - start);
                    }
                } else {
                    i += 1;
                }
            }
            let mut i = 0;
            while i < 8 {
                if i == gap_pos {
                    if i == 0 {
                        out.push(':');
                    }
                    out.push(':');
                    i += gap_len;
                    continue;
                }
                if i == 6 && gap_pos == 0 && (gap_len == 6 || (gap_len == 5 && w[5] == 0xffff)) {
                    let _ = write!(out, "{}.{}.{}.{}", b[12], b[13], b[14], b[15]);
                    break;
                }
                let _ = write!(out, "{:x}", w[i]);
                if i + 1 != 8 {
                    out.push(':');
                }
                i += 1;
            }
        }
    }
    Value::Text(out)
}

/// Strip the 4-byte SRID MySQL stores before the WKB of a geometry.
fn geometry_value(bytes: &[u8]) -> Value {
    Value::Bytes(bytes.get(4..).unwrap_or(&[]).to_vec())
}

/// Decode one non-null binlog value.
pub fn decode_binlog_value(col: &ColumnPlan, b: &mut Buf<'_>) -> Result<Value> {
    let def = &col.def;
    let meta = col.meta;
    Ok(match col.binlog_type {
        ct::TINY => {
            let v = b.u8()?;
            Value::Int(if def.unsigned {
                i64::from(v)
            } else {
                i64::from(v as i8)
            })
        }
        ct::SHORT => {
            let v = b.u16()?;
            Value::Int(if def.unsigned {
                i64::from(v)
            } else {
                i64::from(v as i16)
            })
        }
        ct::INT24 => {
            let v = b.uint_le(3)? as u32;
            Value::Int(if def.unsigned {
                i64::from(v)
            } else {
                i64::from(((v << 8) as i32) >> 8)
            })
        }
        ct::LONG => {
            let v = b.u32()?;
            Value::Int(if def.unsigned {
                i64::from(v)
            } else {
                i64::from(v as i32)
            })
        }
        ct::LONGLONG => {
            let v = b.u64()?;
            if def.unsigned {
                Value::UInt(v)
            } else {
                Value::Int(v as i64)
            }
        }
        ct::FLOAT => Value::Float32(f32::from_le_bytes(
            b.take(4)?.try_into().map_err(|_| malformed("float"))?,
        )),
        ct::DOUBLE => Value::Float64(f64::from_le_bytes(
            b.take(8)?.try_into().map_err(|_| malformed("double"))?,
        )),
        ct::NEWDECIMAL => {
            let (p, s) = (u32::from(meta >> 8), u32::from(meta & 0xff));
            let raw = b.take(decimal_size(p, s))?;
            let mut text = [0u8; 80];
            let n = decode_decimal_into(raw, p, s, &mut text)?;
            Value::Decimal(
                std::str::from_utf8(&text[..n])
                    .map_err(|_| malformed("decimal"))?
                    .into(),
            )
        }
        ct::YEAR => {
            let v = b.u8()?;
            Value::Int(if v == 0 { 0 } else { 1900 + i64::from(v) })
        }
        ct::DATE | ct::NEWDATE => {
            let v = b.uint_le(3)? as u32;
            date_value(i64::from(v >> 9), (v >> 5) & 15, v & 31)
        }
        ct::TIME2 => {
            let fsp = meta;
            let packed: i64 = match fsp {
                1 | 2 => {
                    let mut int = b.uint_be(3)? as i64 - 0x80_0000;
                    let mut frac = b.u8()? as i64;
                    if int < 0 && frac != 0 {
                        int += 1;
                        frac -= 0x100;
                    }
                    (int << 24) + frac * 10_000
                }
                3 | 4 => {
                    let mut int = b.uint_be(3)? as i64 - 0x80_0000;
                    let mut frac = b.uint_be(2)? as i64;
                    if int < 0 && frac != 0 {
                        int += 1;
                        frac -= 0x10000;
                    }
                    (int << 24) + frac * 100
                }
                5 | 6 => b.uint_be(6)? as i64 - 0x8000_0000_0000,
                _ => (b.uint_be(3)? as i64 - 0x80_0000) << 24,
            };
            let neg = packed < 0;
            let a = packed.unsigned_abs();
            let hms = a >> 24;
            let frac = (a % (1 << 24)) as i64;
            let h = (hms >> 12) & 0x3ff;
            let mi = (hms >> 6) & 0x3f;
            let s = hms & 0x3f;
            let micros = ((h * 3600 + mi * 60 + s) as i64) * 1_000_000 + frac;
            Value::Time(if neg { -micros } else { micros })
        }
        ct::TIME => {
            let v = b.uint_le(3)? as u32;
            let v = i64::from(((v << 8) as i32) >> 8);
            let a = v.abs();
            let micros = ((a / 10000) * 3600 + (a / 100 % 100) * 60 + a % 100) * 1_000_000;
            Value::Time(if v < 0 { -micros } else { micros })
        }
        ct::DATETIME2 => {
            let int = b.uint_be(5)? as i64 - 0x80_0000_0000;
            let frac = frac_micros(b, meta)?;
            let ymd = int >> 17;
            let ym = ymd >> 5;
            let hms = int & 0x1ffff;
            match datetime_micros(
                ym / 13,
                (ym % 13) as u32,
                (ymd & 31) as u32,
                (hms >> 12) as u64,
                ((hms >> 6) & 63) as u64,
                (hms & 63) as u64,
                frac,
            ) {
                Some(us) => Value::Timestamp(us),
                None => Value::Null,
            }
        }
        ct::DATETIME => {
            let v = b.u64()?;
            let (date, time) = (v / 1_000_000, v % 1_000_000);
            match datetime_micros(
                (date / 10000) as i64,
                (date / 100 % 100) as u32,
                (date % 100) as u32,
                time / 10000,
                time / 100 % 100,
                time % 100,
                0,
            ) {
                Some(us) => Value::Timestamp(us),
                None => Value::Null,
            }
        }
        ct::TIMESTAMP2 => {
            let secs = b.uint_be(4)? as i64;
            let frac = frac_micros(b, meta)?;
            if secs == 0 && frac == 0 {
                Value::Null
            } else {
                Value::TimestampTz(secs * 1_000_000 + frac)
            }
        }
        ct::TIMESTAMP => {
            let secs = i64::from(b.u32()?);
            if secs == 0 {
                Value::Null
            } else {
                Value::TimestampTz(secs * 1_000_000)
            }
        }
        ct::VARCHAR | ct::VAR_STRING => {
            let len = if meta < 256 {
                b.u8()? as usize
            } else {
                b.u16()? as usize
            };
            text_or_bytes(def, b.take(len)?)
        }
        ct::STRING => {
            let (_, max) = string_real_type(meta);
            let len = if max < 256 {
                b.u8()? as usize
            } else {
                b.u16()? as usize
            };
            let raw = b.take(len)?;
            if matches!(def.kind, Kind::Inet4 | Kind::Inet6 | Kind::Uuid) {
                return Ok(fixed_binary_text(def.kind, raw));
            }
            if def.is_binary() && (max as usize) > len {
                // BINARY(n) is logged without its trailing zero bytes; the column holds them.
                let mut v = raw.to_vec();
                v.resize(max as usize, 0);
                Value::Bytes(v)
            } else {
                text_or_bytes(def, raw)
            }
        }
        ct::ENUM => {
            let (_, pack) = string_real_type(meta);
            enum_value(def, b.uint_le(usize::from(pack.clamp(1, 2)))?)
        }
        ct::SET => {
            let (_, pack) = string_real_type(meta);
            set_value(def, b.uint_le(usize::from(pack.clamp(1, 8)))?)
        }
        ct::BIT => {
            let bits = u32::from(meta >> 8) + 8 * u32::from(meta & 0xff);
            let raw = b.take(bits.div_ceil(8) as usize)?;
            if bits == 1 {
                Value::Bool(raw[0] & 1 != 0)
            } else {
                Value::Bytes(raw.to_vec())
            }
        }
        ct::BLOB | ct::TINY_BLOB | ct::MEDIUM_BLOB | ct::LONG_BLOB => {
            let len = b.uint_le(usize::from(meta.clamp(1, 4)))? as usize;
            let raw = b.take(len)?;
            match def.kind {
                Kind::Json => Value::Json(minify_json(raw)),
                Kind::Geometry => geometry_value(raw),
                _ => text_or_bytes(def, raw),
            }
        }
        ct::JSON => {
            let len = b.uint_le(usize::from(meta.clamp(1, 4)))? as usize;
            let raw = b.take(len)?;
            if raw.is_empty() {
                // MySQL writes an empty value for JSON null in some cases.
                Value::Json("null".into())
            } else {
                Value::Json(jsonb::to_text(raw)?)
            }
        }
        ct::GEOMETRY => {
            let len = b.uint_le(usize::from(meta.clamp(1, 4)))? as usize;
            geometry_value(b.take(len)?)
        }
        ct::VECTOR => {
            let len = b.uint_le(usize::from(meta.clamp(1, 4)))? as usize;
            Value::Bytes(b.take(len)?.to_vec())
        }
        ct::NULL => Value::Null,
        other => return Err(malformed(format!("column type {other} is not supported"))),
    })
}

/// Remove insignificant whitespace from JSON text, keeping key order (MariaDB JSON columns and
/// MySQL's JSON text in the snapshot), so that both paths print documents the same way.
pub fn minify_json(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut in_str = false;
    let mut escape = false;
    for &c in raw {
        if in_str {
            out.push(c);
            if escape {
                escape = false;
            } else if c == b'\\' {
                escape = true;
            } else if c == b'"' {
                in_str = false;
            }
        } else if c == b'"' {
            in_str = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A DECIMAL's text without the zero padding of ZEROFILL columns (`00000012.50` → `12.50`),
/// sign and scale kept: the form the binlog decoding gives.
pub fn decimal_without_padding(text: &str) -> std::borrow::Cow<'_, str> {
    let (sign, body) = match text.strip_prefix('-') {
        Some(b) => ("-", b),
        None => ("", text),
    };
    let b = body.as_bytes();
    if b.first() != Some(&b'0') || !b.get(1).is_some_and(u8::is_ascii_digit) {
        return std::borrow::Cow::Borrowed(text);
    }
    let digits = body.trim_start_matches('0');
    let zero = if digits.starts_with(|c: char| c.is_ascii_digit()) {
        ""
    } else {
        "0"
    };
    std::borrow::Cow::Owned(format!("{sign}{zero}{digits}"))
}

fn parse_num<T: std::str::FromStr>(s: &str, what: &str) -> Result<T> {
    s.trim()
        .parse()
        .map_err(|_| malformed(format!("{what} value {s:?}")))
}

/// Parse `[-]H+:MM:SS[.ffffff]` into microseconds.
pub fn parse_time_text(s: &str) -> Result<i64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (hms, frac) = body.split_once('.').unwrap_or((body, ""));
    let mut it = hms.split(':');
    let h: i64 = parse_num(it.next().unwrap_or(""), "time")?;
    let m: i64 = parse_num(it.next().unwrap_or("0"), "time")?;
    let sec: i64 = parse_num(it.next().unwrap_or("0"), "time")?;
    let us = frac_text_micros(frac)?;
    let v = (h * 3600 + m * 60 + sec) * 1_000_000 + us;
    Ok(if neg { -v } else { v })
}

fn frac_text_micros(frac: &str) -> Result<i64> {
    if frac.is_empty() {
        return Ok(0);
    }
    let digits: String = frac.chars().take(6).collect();
    let v: i64 = parse_num(&digits, "fraction")?;
    Ok(v * 10i64.pow(6 - digits.len() as u32))
}

fn parse_date_text(s: &str) -> Result<(i64, u32, u32)> {
    let mut it = s.split('-');
    let y = parse_num(it.next().unwrap_or(""), "date")?;
    let m = parse_num(it.next().unwrap_or(""), "date")?;
    let d = parse_num(it.next().unwrap_or(""), "date")?;
    Ok((y, m, d))
}

/// Parse `YYYY-MM-DD HH:MM:SS[.ffffff]` into microseconds since the epoch; `None` for zero dates.
pub fn parse_datetime_text(s: &str) -> Result<Option<i64>> {
    let (date, time) = s.split_once([' ', 'T']).unwrap_or((s, "00:00:00"));
    let (y, m, d) = parse_date_text(date)?;
    let us = parse_time_text(time)?;
    Ok(datetime_micros(y, m, d, 0, 0, 0, us))
}

/// [`decode_text_value`] of a value the caller owns: text and binary strings keep its buffer
/// instead of copying it (the snapshot's bulk of bytes).
pub fn decode_text_value_owned(def: &ColumnDef, raw: Vec<u8>) -> Result<Value> {
    match def.kind {
        Kind::Char
        | Kind::VarChar
        | Kind::TinyText
        | Kind::Text
        | Kind::MediumText
        | Kind::LongText => Ok(if def.is_binary() {
            Value::Bytes(raw)
        } else {
            Value::Text(match String::from_utf8(raw) {
                Ok(s) => s,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            })
        }),
        Kind::Vector | Kind::Unknown => Ok(Value::Bytes(raw)),
        _ => decode_text_value(def, &raw),
    }
}

/// Decode one non-null value from the text protocol (session `time_zone='+00:00'`, `NAMES
/// utf8mb4`), as the snapshot reads it.
pub fn decode_text_value(def: &ColumnDef, raw: &[u8]) -> Result<Value> {
    let text = || std::str::from_utf8(raw).map_err(|_| malformed("non-UTF-8 text"));
    Ok(match def.kind {
        Kind::TinyInt | Kind::SmallInt | Kind::MediumInt | Kind::Int | Kind::Year => {
            Value::Int(parse_num(text()?, "integer")?)
        }
        Kind::BigInt if def.unsigned => Value::UInt(parse_num(text()?, "integer")?),
        Kind::BigInt => Value::Int(parse_num(text()?, "integer")?),
        // The snapshot selects FLOAT as DOUBLE (the text protocol prints FLOAT with 6 significant
        // digits): the double is the float exactly, so narrowing gives the stored value.
        Kind::Float => Value::Float32(parse_num::<f64>(text()?, "float")? as f32),
        Kind::Double => Value::Float64(parse_num(text()?, "double")?),
        Kind::Decimal => Value::Decimal(decimal_without_padding(text()?).into()),
        Kind::Bit => {
            if def.length == 1 {
                Value::Bool(raw.last().is_some_and(|b| b & 1 != 0))
            } else {
                let n = (def.length as usize).div_ceil(8);
                let mut v = vec![0u8; n.saturating_sub(raw.len())];
                v.extend_from_slice(&raw[raw.len().saturating_sub(n)..]);
                Value::Bytes(v)
            }
        }
        Kind::Date => {
            let (y, m, d) = parse_date_text(text()?)?;
            date_value(y, m, d)
        }
        Kind::Time => Value::Time(parse_time_text(text()?)?),
        Kind::DateTime => match parse_datetime_text(text()?)? {
            Some(us) => Value::Timestamp(us),
            None => Value::Null,
        },
        Kind::Timestamp => match parse_datetime_text(text()?)? {
            Some(us) => Value::TimestampTz(us),
            None => Value::Null,
        },
        Kind::Json => Value::Json(minify_json(raw)),
        Kind::Geometry => geometry_value(raw),
        Kind::Enum | Kind::Set => Value::Text(text()?.to_string()),
        Kind::Vector | Kind::Unknown => Value::Bytes(raw.to_vec()),
        // The server's text form, which the binlog path reproduces.
        Kind::Inet4 | Kind::Inet6 | Kind::Uuid => Value::Text(text()?.to_string()),
        Kind::Char
        | Kind::VarChar
        | Kind::TinyText
        | Kind::Text
        | Kind::MediumText
        | Kind::LongText => {
            if def.is_binary() {
                Value::Bytes(raw.to_vec())
            } else {
                Value::Text(match std::str::from_utf8(raw) {
                    Ok(s) => s.to_owned(),
                    Err(_) => String::from_utf8_lossy(raw).into_owned(),
                })
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Charset;

    #[test]
    fn owned_text_values_decode_as_borrowed_ones() {
        let mut bin = ColumnDef::new("b", Kind::VarChar);
        bin.charset = Some(Charset::binary());
        let cases: Vec<(ColumnDef, &[u8])> = vec![
            (ColumnDef::new("t", Kind::VarChar), b"h\xc3\xa9llo"),
            (ColumnDef::new("t", Kind::Text), b"bad \xff utf-8"),
            (bin, b"\x00\x01"),
            (ColumnDef::new("d", Kind::Decimal), b"-012.50"),
            (ColumnDef::new("i", Kind::BigInt), b"42"),
            (ColumnDef::new("u", Kind::Unknown), b"raw"),
        ];
        for (def, raw) in cases {
            assert_eq!(
                decode_text_value_owned(&def, raw.to_vec()).unwrap(),
                decode_text_value(&def, raw).unwrap(),
                "{:?}",
                def.kind
            );
        }
    }

    fn plan(kind: Kind, t: u8, meta: u16) -> ColumnPlan {
        ColumnPlan {
            def: ColumnDef::new("c", kind),
            binlog_type: t,
            meta,
        }
    }

    fn dec(col: &ColumnPlan, bytes: &[u8]) -> Value {
        let mut b = Buf(bytes);
        let v = decode_binlog_value(col, &mut b).unwrap();
        assert!(b.is_empty(), "bytes left over");
        v
    }

    #[test]
    fn integers_by_width_and_sign() {
        let mut p = plan(Kind::TinyInt, ct::TINY, 0);
        assert_eq!(dec(&p, &[0xff]), Value::Int(-1));
        p.def.unsigned = true;
        assert_eq!(dec(&p, &[0xff]), Value::Int(255));
        let p = plan(Kind::MediumInt, ct::INT24, 0);
        assert_eq!(dec(&p, &[0x00, 0x00, 0x80]), Value::Int(-8_388_608));
        let mut p = plan(Kind::BigInt, ct::LONGLONG, 0);
        p.def.unsigned = true;
        assert_eq!(dec(&p, &[0xff; 8]), Value::UInt(u64::MAX));
    }

    #[test]
    fn temporal_types() {
        // DATETIME2(3) 2024-02-29 13:14:15.123: ym = 2024*13+2
        let ym: i64 = 2024 * 13 + 2;
        let int = ((ym << 5 | 29) << 17) | (13 << 12 | 14 << 6 | 15);
        let v = (int + 0x80_0000_0000) as u64;
        let mut bytes = v.to_be_bytes()[3..].to_vec();
        bytes.extend_from_slice(&1230u16.to_be_bytes());
        let p = plan(Kind::DateTime, ct::DATETIME2, 3);
        let expected = datetime_micros(2024, 2, 29, 13, 14, 15, 123_000).unwrap();
        assert_eq!(dec(&p, &bytes), Value::Timestamp(expected));
        // zero datetime → Null
        let zero = (0x80_0000_0000u64).to_be_bytes()[3..].to_vec();
        assert_eq!(
            dec(&plan(Kind::DateTime, ct::DATETIME2, 0), &zero),
            Value::Null
        );
        // TIME2(0) -838:59:59
        let hms: i64 = (838 << 12) | (59 << 6) | 59;
        let packed = (-hms) + 0x80_0000;
        let b = (packed as u64).to_be_bytes()[5..].to_vec();
        assert_eq!(
            dec(&plan(Kind::Time, ct::TIME2, 0), &b),
            Value::Time(-((838 * 3600 + 59 * 60 + 59) * 1_000_000))
        );
        // TIME2(2) -00:00:01.5 : intpart -1 → stored as (-2, frac 0x100-50)
        let b = [0x7f, 0xff, 0xfe, 0xce];
        assert_eq!(
            dec(&plan(Kind::Time, ct::TIME2, 2), &b),
            Value::Time(-1_500_000)
        );
        // DATE 2024-01-02 and 0000-00-00
        let d: u32 = (2024 << 9) | (1 << 5) | 2;
        assert_eq!(
            dec(&plan(Kind::Date, ct::DATE, 0), &d.to_le_bytes()[..3]),
            Value::Date(days_from_civil(2024, 1, 2) as i32)
        );
        assert_eq!(dec(&plan(Kind::Date, ct::DATE, 0), &[0, 0, 0]), Value::Null);
        // TIMESTAMP2(6)
        let mut b = 1_700_000_000u32.to_be_bytes().to_vec();
        b.extend_from_slice(&[0x01, 0xe2, 0x40]); // 123456
        assert_eq!(
            dec(&plan(Kind::Timestamp, ct::TIMESTAMP2, 6), &b),
            Value::TimestampTz(1_700_000_000_123_456)
        );
    }

    #[test]
    fn strings_enums_sets_bits() {
        let mut p = plan(Kind::VarChar, ct::VARCHAR, 20);
        p.def.charset = Some(Charset::named("latin1"));
        assert_eq!(dec(&p, b"\x04caf\xe9"), Value::Text("café".into()));
        p.def.charset = Some(Charset::binary());
        assert_eq!(dec(&p, b"\x02\x00\x01"), Value::Bytes(vec![0, 1]));
        let mut e = plan(Kind::Enum, ct::ENUM, 0xf701);
        e.def.values = Arc::from(vec!["x".to_string(), "y".to_string()]);
        assert_eq!(dec(&e, &[2]), Value::Text("y".into()));
        let mut s = plan(Kind::Set, ct::SET, 0xf801);
        s.def.values = Arc::from(vec!["a".to_string(), "b".to_string(), "c".to_string()]);
        assert_eq!(dec(&s, &[0b101]), Value::Text("a,c".into()));
        // BIT(1) → Bool, BIT(10) → 2 big-endian bytes
        assert_eq!(
            dec(&plan(Kind::Bit, ct::BIT, 0x0100), &[1]),
            Value::Bool(true)
        );
        assert_eq!(
            dec(&plan(Kind::Bit, ct::BIT, 0x0201), &[0x03, 0xff]),
            Value::Bytes(vec![3, 255])
        );
    }

    #[test]
    fn mariadb_inet_and_uuid_print_as_the_server_does() {
        let text = |kind, hex: &str| {
            let raw: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            match fixed_binary_text(kind, &raw) {
                Value::Text(t) => t,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(text(Kind::Inet4, "c0a80001"), "192.168.0.1");
        assert_eq!(text(Kind::Inet4, ""), "0.0.0.0");
        for (hex, want) in [
            ("20010db8000000000000000000000001", "2001:db8::1"),
            ("", "::"),
            ("00000000000000000000000000000001", "::1"),
            ("00000000000000000000ffff01020304", "::ffff:1.2.3.4"),
            ("00000000000000000000000001020304", "::1.2.3.4"),
            ("00010000000000010000000000000001", "1:0:0:1::1"),
            ("00010000000100000001000000010000", "1::1:0:1:0:1:0"),
            ("00010000000000000000000000000000", "1::"),
            (
                "fe800000000000000202b3fffe1e8329",
                "fe80::202:b3ff:fe1e:8329",
            ),
        ] {
            assert_eq!(text(Kind::Inet6, hex), want, "{hex}");
        }
        assert_eq!(
            text(Kind::Uuid, "123e4567e89b12d3a456426614174000"),
            "123e4567-e89b-12d3-a456-426614174000"
        );
        assert_eq!(text(Kind::Uuid, ""), "00000000-0000-0000-0000-000000000000");
    }

    #[test]
    fn text_protocol_values_match_binlog_values() {
        let mut t = ColumnDef::new("t", Kind::Time);
        t.scale = 6;
        assert_eq!(
            decode_text_value(&t, b"-838:59:59.000000").unwrap(),
            Value::Time(-((838 * 3600 + 59 * 60 + 59) * 1_000_000))
        );
        let d = ColumnDef::new("d", Kind::DateTime);
        assert_eq!(
            decode_text_value(&d, b"2024-02-29 13:14:15.123").unwrap(),
            Value::Timestamp(datetime_micros(2024, 2, 29, 13, 14, 15, 123_000).unwrap())
        );
        assert_eq!(
            decode_text_value(&d, b"0000-00-00 00:00:00").unwrap(),
            Value::Null
        );
        // ZEROFILL padding is not part of a DECIMAL's value; FLOAT comes as its exact double
        let mut dz = ColumnDef::new("dz", Kind::Decimal);
        dz.length = 10;
        dz.scale = 2;
        for (text, want) in [
            ("00000012.50", "12.50"),
            ("00000000.00", "0.00"),
            ("0.50", "0.50"),
            ("-0.50", "-0.50"),
            ("-012.5", "-12.5"),
            ("0000", "0"),
            ("120", "120"),
        ] {
            assert_eq!(
                decode_text_value(&dz, text.as_bytes()).unwrap(),
                Value::Decimal(want.into()),
                "{text}"
            );
        }
        let f = ColumnDef::new("f", Kind::Float);
        assert_eq!(
            decode_text_value(&f, b"0.12345679104328156").unwrap(),
            Value::Float32(0.123_456_79)
        );
        assert_eq!(
            decode_text_value(&f, b"16777216").unwrap(),
            Value::Float32(16_777_216.0)
        );
        let j = ColumnDef::new("j", Kind::Json);
        assert_eq!(
            decode_text_value(&j, br#"{"a": [1, 2], "b c": "x y"}"#).unwrap(),
            Value::Json(r#"{"a":[1,2],"b c":"x y"}"#.into())
        );
    }
}
