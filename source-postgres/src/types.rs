//! PostgreSQL types: the catalog of type OIDs (names, domains, enums, arrays) and the conversion
//! of a value's text form into a typed [`Value`].
//!
//! Both the replication stream (pgoutput sends text) and snapshot reads (`COPY ... TO STDOUT`)
//! carry text, produced with `DateStyle=ISO`, `IntervalStyle=iso_8601`, `TimeZone=UTC`,
//! `extra_float_digits=1` and `bytea_output=hex`, which [`SESSION_OPTIONS`] sets on every
//! connection. A text that does not parse falls back to [`Value::Text`]; nothing here panics.

use std::collections::HashMap;
use std::sync::Arc;

use connector_core::column_type::{DEFAULT_MONEY_FRACTION_DIGITS, DEFAULT_TIME_PRECISION};
use connector_core::encode::days_from_civil;
use connector_core::{ColumnType, Value};

/// Session settings (startup `options`) every connection of this source uses, so that value
/// texts have one form.
pub const SESSION_OPTIONS: &str = "-c datestyle=ISO -c intervalstyle=iso_8601 -c TimeZone=UTC \
     -c extra_float_digits=1 -c bytea_output=hex";

/// How to turn a value's text into a [`Value`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Conv {
    /// `t`/`f`.
    Bool,
    /// Integers (`int2`, `int4`, `int8`, `oid`).
    Int,
    /// `float4`.
    Float32,
    /// `float8`.
    Float64,
    /// `numeric`: exact text.
    Numeric,
    /// Kept as text.
    Text,
    /// `bytea` in hex output.
    Bytea,
    /// `date`.
    Date,
    /// `time`.
    Time,
    /// `timetz`.
    TimeTz,
    /// `timestamp`.
    Timestamp,
    /// `timestamptz`.
    TimestampTz,
    /// `interval` (ISO 8601 output).
    Interval,
    /// `uuid`.
    Uuid,
    /// `json`, `jsonb`.
    Json,
    /// `money` in the server's monetary format (`$1,234.56`, `-$0.50`): an exact decimal.
    Money,
    /// `bit`/`varbit` (`101`): big-endian bytes of the bit string's value, a boolean for one bit.
    Bits,
    /// `hstore` (`"a"=>"1", "b"=>NULL`): a JSON object of strings.
    Hstore,
    /// An array of the element conversion, with the element delimiter.
    Array(Box<Conv>, u8),
}

/// Conversion of a built-in scalar type OID, if it has a specific one.
pub fn builtin_conv(oid: u32) -> Option<Conv> {
    Some(match oid {
        16 => Conv::Bool,
        20 | 21 | 23 | 26 | 28 => Conv::Int,
        700 => Conv::Float32,
        701 => Conv::Float64,
        1700 => Conv::Numeric,
        25 | 1043 | 1042 | 19 | 18 => Conv::Text,
        17 => Conv::Bytea,
        1082 => Conv::Date,
        1083 => Conv::Time,
        1266 => Conv::TimeTz,
        1114 => Conv::Timestamp,
        1184 => Conv::TimestampTz,
        1186 => Conv::Interval,
        2950 => Conv::Uuid,
        114 | 3802 => Conv::Json,
        790 => Conv::Money,
        1560 | 1562 => Conv::Bits,
        _ => return None,
    })
}

/// What the catalog says about one type.
#[derive(Clone, Debug)]
pub struct TypeRow {
    /// OID.
    pub oid: u32,
    /// `typname`.
    pub name: String,
    /// `typtype`: b base, d domain, e enum, c composite, r range, p pseudo, m multirange.
    pub typtype: u8,
    /// Element type of an array, or 0.
    pub elem: u32,
    /// Base type of a domain, or 0.
    pub base: u32,
    /// Array element delimiter.
    pub delim: u8,
    /// `typcategory` (`A` for arrays).
    pub category: u8,
    /// `typtypmod`: a domain's base type modifier, or -1.
    pub typmod: i32,
    /// An enum's labels in order (empty for other types).
    pub labels: Vec<String>,
}

/// Known types: OID to name and conversion.
#[derive(Clone, Debug, Default)]
pub struct TypeCache {
    rows: HashMap<u32, TypeRow>,
    convs: HashMap<u32, Conv>,
}

impl TypeCache {
    /// Add catalog rows.
    pub fn add(&mut self, rows: impl IntoIterator<Item = TypeRow>) {
        for r in rows {
            self.rows.insert(r.oid, r);
        }
        self.convs.clear();
    }

    /// Whether the OID is known.
    pub fn knows(&self, oid: u32) -> bool {
        self.rows.contains_key(&oid) || builtin_conv(oid).is_some()
    }

    /// OIDs referenced by known types (domain bases, array elements) that are not known yet.
    pub fn missing_references(&self) -> Vec<u32> {
        let mut out: Vec<u32> = self
            .rows
            .values()
            .flat_map(|r| [r.elem, r.base])
            .filter(|o| *o != 0 && !self.knows(*o))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The conversion for a type OID (text for anything unknown).
    pub fn conv(&mut self, oid: u32) -> Conv {
        if let Some(c) = self.convs.get(&oid) {
            return c.clone();
        }
        let c = self.resolve(oid, 0);
        self.convs.insert(oid, c.clone());
        c
    }

    fn resolve(&self, oid: u32, depth: u32) -> Conv {
        if let Some(c) = builtin_conv(oid) {
            return c;
        }
        if depth > 8 {
            return Conv::Text;
        }
        let Some(r) = self.rows.get(&oid) else {
            return Conv::Text;
        };
        match r.typtype {
            b'd' if r.base != 0 => self.resolve(r.base, depth + 1),
            b'e' => Conv::Text,
            _ if r.name == "hstore" => Conv::Hstore,
            _ if r.category == b'A' && r.elem != 0 => {
                Conv::Array(Box::new(self.resolve(r.elem, depth + 1)), r.delim)
            }
            _ => Conv::Text,
        }
    }

    /// The structured type of a column of type `oid` with modifier `typmod`: a domain as its
    /// base type, an enum with its labels, an array with its element type.
    pub fn column_type(&self, oid: u32, typmod: i32) -> ColumnType {
        self.column_type_at(oid, typmod, 0)
    }

    fn column_type_at(&self, oid: u32, typmod: i32, depth: u32) -> ColumnType {
        let modifier = (typmod >= 0).then_some(typmod as u32);
        let time_precision = modifier.unwrap_or(DEFAULT_TIME_PRECISION);
        match oid {
            16 => return ColumnType::Bool,
            21 => return ColumnType::Int16,
            23 => return ColumnType::Int32,
            20 | 26 | 28 => return ColumnType::Int64,
            700 => return ColumnType::Float32,
            701 => return ColumnType::Float64,
            1700 => {
                return match modifier.filter(|m| *m >= 4).map(|m| m - 4) {
                    Some(m) => ColumnType::Decimal {
                        precision: Some(m >> 16 & 0xFFFF),
                        scale: Some(m & 0xFFFF),
                    },
                    None => ColumnType::Decimal {
                        precision: None,
                        scale: None,
                    },
                }
            }
            790 => {
                return ColumnType::Money {
                    scale: DEFAULT_MONEY_FRACTION_DIGITS,
                }
            }
            25 | 1043 | 1042 | 19 | 18 => return ColumnType::Text,
            17 => return ColumnType::Bytes,
            1082 => return ColumnType::Date,
            1083 => {
                return ColumnType::Time {
                    precision: time_precision,
                }
            }
            1266 => return ColumnType::TimeTz,
            1114 => {
                return ColumnType::Timestamp {
                    precision: time_precision,
                }
            }
            1184 => {
                return ColumnType::TimestampTz {
                    precision: Some(time_precision),
                }
            }
            1186 => return ColumnType::Interval,
            2950 => return ColumnType::Uuid,
            114 | 3802 => return ColumnType::Json,
            142 => return ColumnType::Xml,
            1560 => {
                return ColumnType::Bits {
                    length: modifier.unwrap_or(1),
                }
            }
            // An unbounded varbit has no length; Debezium's is then above 1 (`Bits`).
            1562 => {
                return ColumnType::Bits {
                    length: modifier.unwrap_or(i32::MAX as u32),
                }
            }
            _ => {}
        }
        if depth > 8 {
            return ColumnType::Other;
        }
        let Some(r) = self.rows.get(&oid) else {
            return ColumnType::Other;
        };
        match r.typtype {
            b'd' if r.base != 0 => {
                let typmod = if r.typmod >= 0 { r.typmod } else { typmod };
                self.column_type_at(r.base, typmod, depth + 1)
            }
            b'e' => ColumnType::Enum(r.labels.clone().into()),
            _ if r.name == "hstore" => ColumnType::Hstore,
            _ if r.category == b'A' && r.elem != 0 => {
                ColumnType::Array(Arc::new(self.column_type_at(r.elem, typmod, depth + 1)))
            }
            _ if matches!(
                r.name.as_str(),
                "citext" | "ltree" | "inet" | "cidr" | "macaddr"
            ) =>
            {
                ColumnType::Text
            }
            _ => ColumnType::Other,
        }
    }

    /// The column type name: `int4`, `numeric(10,2)`, `varchar(20)`, `timestamptz(3)`, `_int4`.
    pub fn type_name(&self, oid: u32, typmod: i32) -> Arc<str> {
        let name = self
            .rows
            .get(&oid)
            .map(|r| r.name.as_str())
            .unwrap_or("unknown");
        let with_mod = match oid {
            1700 if typmod >= 4 => {
                let m = typmod - 4;
                Some(format!("{name}({},{})", (m >> 16) & 0xFFFF, m & 0xFFFF))
            }
            1043 | 1042 if typmod >= 4 => Some(format!("{name}({})", typmod - 4)),
            1560 | 1562 if typmod > 0 => Some(format!("{name}({typmod})")),
            1083 | 1266 | 1114 | 1184 if typmod >= 0 => Some(format!("{name}({typmod})")),
            _ => None,
        };
        match with_mod {
            Some(s) => s.into(),
            None => name.into(),
        }
    }
}

/// Convert a value's text per `conv`; `None` when the text does not parse.
pub fn convert(conv: &Conv, s: &[u8]) -> Option<Value> {
    Some(match conv {
        Conv::Text => Value::Text(text(s)?),
        Conv::Int => Value::Int(parse_int(s)?),
        Conv::Bool => match s {
            b"t" => Value::Bool(true),
            b"f" => Value::Bool(false),
            _ => return None,
        },
        Conv::Float32 => Value::Float32(parse_f32(s)?),
        Conv::Float64 => Value::Float64(parse_float(s)?),
        Conv::Numeric => Value::Decimal(std::str::from_utf8(s).ok()?.into()),
        Conv::Bytea => Value::Bytes(parse_bytea(s)?),
        Conv::Date => parse_date_value(s)?,
        Conv::Time => Value::Time(parse_time(s)?),
        Conv::TimeTz => {
            let split = s.iter().rposition(|b| *b == b'+' || *b == b'-')?;
            Value::TimeTz {
                micros: parse_time(&s[..split])?,
                offset_secs: parse_offset(&s[split..])?,
            }
        }
        Conv::Timestamp => Value::Timestamp(parse_timestamp(s, false)?),
        Conv::TimestampTz => Value::TimestampTz(parse_timestamp(s, true)?),
        Conv::Interval => parse_interval(s)?,
        Conv::Uuid => Value::Uuid(parse_uuid(s)?),
        Conv::Json => Value::Json(text(s)?),
        Conv::Money => Value::Decimal(parse_money(s)?.into()),
        Conv::Bits => parse_bits(s)?,
        Conv::Hstore => Value::Json(parse_hstore(s)?),
        Conv::Array(elem, delim) => parse_array(s, elem, *delim)?,
    })
}

/// `money` text in any locale's format: digits, one decimal separator (the last `.` or `,`
/// followed by fewer than 3 digits... or exactly the fraction digits), a sign or parentheses.
fn parse_money(s: &[u8]) -> Option<String> {
    let t = std::str::from_utf8(s).ok()?;
    let negative = t.contains('-') || (t.contains('(') && t.contains(')'));
    // The decimal separator is the last `.` or `,` followed only by digits, at most
    // DEFAULT_MONEY_FRACTION_DIGITS of them (grouping separators are followed by 3).
    let sep = t.rfind(['.', ',']).filter(|&i| {
        let tail = &t[i + 1..];
        let digits = tail.chars().take_while(char::is_ascii_digit).count();
        digits > 0 && digits != 3 && tail[digits..].chars().all(|c| !c.is_ascii_digit())
    });
    let (int, frac) = match sep {
        Some(i) => (&t[..i], &t[i + 1..]),
        None => (t, ""),
    };
    let int: String = int.chars().filter(char::is_ascii_digit).collect();
    let frac: String = frac.chars().filter(char::is_ascii_digit).collect();
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(int.len() + frac.len() + 2);
    if negative {
        out.push('-');
    }
    out.push_str(if int.is_empty() { "0" } else { &int });
    if !frac.is_empty() {
        out.push('.');
        out.push_str(&frac);
    }
    Some(out)
}

/// `bit`/`varbit` text (`101`): a boolean for one bit, else the value's big-endian bytes
/// without leading zero bytes (the encoder writes them little-endian, as Debezium's `Bits`).
fn parse_bits(s: &[u8]) -> Option<Value> {
    if !s.iter().all(|b| *b == b'0' || *b == b'1') {
        return None;
    }
    if s.len() == 1 {
        return Some(Value::Bool(s[0] == b'1'));
    }
    let mut bytes = Vec::with_capacity(s.len().div_ceil(8));
    let lead = s.len() % 8;
    let mut chunks: Vec<&[u8]> = Vec::new();
    if lead > 0 {
        chunks.push(&s[..lead]);
    }
    chunks.extend(s[lead..].chunks(8));
    for chunk in chunks {
        bytes.push(chunk.iter().fold(0u8, |acc, b| acc << 1 | (b - b'0')));
    }
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.drain(..first);
    Some(Value::Bytes(bytes))
}

/// `hstore` text to a JSON object of strings (null values stay null), in the iteration order of
/// the Java `HashMap` Debezium builds, so that the JSON text is the same as Debezium's.
fn parse_hstore(s: &[u8]) -> Option<String> {
    let t = std::str::from_utf8(s).ok()?;
    let mut pairs: Vec<(String, Option<String>)> = Vec::new();
    let mut chars = t.chars().peekable();
    let quoted = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| -> Option<String> {
        let mut out = String::new();
        loop {
            match chars.next()? {
                '\\' => out.push(chars.next()?),
                '"' => return Some(out),
                c => out.push(c),
            }
        }
    };
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        match chars.next() {
            None => break,
            Some('"') => {}
            Some(_) => return None,
        }
        let key = quoted(&mut chars)?;
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next()? != '=' || chars.next()? != '>' {
            return None;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let value = match chars.next()? {
            '"' => Some(quoted(&mut chars)?),
            'N' => {
                for want in ['U', 'L', 'L'] {
                    if chars.next()? != want {
                        return None;
                    }
                }
                None
            }
            _ => return None,
        };
        pairs.retain(|(k, _)| *k != key);
        pairs.push((key, value));
    }
    let ordered = java_hash_map_order(pairs);
    let mut out = Vec::with_capacity(t.len() + 2);
    out.push(b'{');
    for (i, (k, v)) in ordered.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        connector_core::encode::write_str(&mut out, k);
        out.push(b':');
        match v {
            Some(v) => connector_core::encode::write_str(&mut out, v),
            None => out.extend_from_slice(b"null"),
        }
    }
    out.push(b'}');
    String::from_utf8(out).ok()
}

/// The iteration order of a `java.util.HashMap` filled with `pairs` in order: by bucket
/// (`(h ^ h >>> 16) & (capacity - 1)` of `String.hashCode`), insertion order within a bucket; the
/// capacity doubles from 16 whenever the size passes 3/4 of it. (Buckets past 8 entries become
/// trees in Java; hstore values that collide that much are not expected.)
fn java_hash_map_order<V>(pairs: Vec<(String, V)>) -> Vec<(String, V)> {
    let mut capacity: usize = 16;
    while pairs.len() > capacity * 3 / 4 {
        capacity *= 2;
    }
    let bucket = |k: &str| {
        let h = k
            .encode_utf16()
            .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
        let h = h as u32;
        ((h ^ (h >> 16)) as usize) & (capacity - 1)
    };
    let mut keyed: Vec<(usize, usize, (String, V))> = pairs
        .into_iter()
        .enumerate()
        .map(|(i, p)| (bucket(&p.0), i, p))
        .collect();
    keyed.sort_by_key(|(b, i, _)| (*b, *i));
    keyed.into_iter().map(|(_, _, p)| p).collect()
}

/// `float4` parsed as `f32` directly, so that `0.1` stays `0.1`.
fn parse_f32(s: &[u8]) -> Option<f32> {
    let t = std::str::from_utf8(s).ok()?;
    Some(match t {
        "NaN" => f32::NAN,
        "Infinity" => f32::INFINITY,
        "-Infinity" => f32::NEG_INFINITY,
        _ => t.parse().ok()?,
    })
}

#[inline]
fn text(s: &[u8]) -> Option<String> {
    std::str::from_utf8(s).ok().map(str::to_owned)
}

#[inline]
fn parse_int(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first()? {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if neg {
        Some(v)
    } else {
        v.checked_neg()
    }
}

fn parse_float(s: &[u8]) -> Option<f64> {
    let t = std::str::from_utf8(s).ok()?;
    Some(match t {
        "NaN" => f64::NAN,
        "Infinity" => f64::INFINITY,
        "-Infinity" => f64::NEG_INFINITY,
        _ => t.parse().ok()?,
    })
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn parse_bytea(s: &[u8]) -> Option<Vec<u8>> {
    let hex = s.strip_prefix(b"\\x")?;
    if hex.len() % 2 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(hex.len() / 2);
    for pair in hex.chunks_exact(2) {
        out.push(hex_val(pair[0])? << 4 | hex_val(pair[1])?);
    }
    Some(out)
}

fn digits(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 18 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0i64, |v, d| v * 10 + i64::from(d - b'0')))
}

/// `YYYY-MM-DD` (years may be longer, ` BC` handled by the caller) → days since 1970-01-01.
fn parse_ymd(s: &[u8]) -> Option<i64> {
    let mut parts = s.splitn(3, |b| *b == b'-');
    let y = digits(parts.next()?)?;
    let m = digits(parts.next()?)?;
    let d = digits(parts.next()?)?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, m as u32, d as u32))
}

fn strip_bc(s: &[u8]) -> (&[u8], bool) {
    match s.strip_suffix(b" BC") {
        Some(rest) => (rest, true),
        None => (s, false),
    }
}

/// Days for a date, applying ` BC` (1 BC is astronomical year 0).
fn parse_date_days(s: &[u8]) -> Option<i64> {
    let (s, bc) = strip_bc(s);
    if !bc {
        return parse_ymd(s);
    }
    let mut parts = s.splitn(2, |b| *b == b'-');
    let y = digits(parts.next()?)?;
    let rest = parts.next()?;
    let mut md = rest.splitn(2, |b| *b == b'-');
    let m = digits(md.next()?)?;
    let d = digits(md.next()?)?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(1 - y, m as u32, d as u32))
}

fn parse_date_value(s: &[u8]) -> Option<Value> {
    match s {
        // Dates have no infinite `Value`; keep PostgreSQL's word.
        b"infinity" | b"-infinity" => Some(Value::Text(text(s)?)),
        _ => Some(Value::Date(i32::try_from(parse_date_days(s)?).ok()?)),
    }
}

/// `HH:MM:SS[.ffffff]` → microseconds (24:00:00 allowed).
fn parse_time(s: &[u8]) -> Option<i64> {
    if s.len() < 8 || s[2] != b':' || s[5] != b':' {
        return None;
    }
    let h = digits(&s[0..2])?;
    let m = digits(&s[3..5])?;
    let sec = digits(&s[6..8])?;
    let frac = match &s[8..] {
        [] => 0,
        [b'.', f @ ..] if !f.is_empty() && f.len() <= 6 => {
            digits(f)? * 10i64.pow(6 - f.len() as u32)
        }
        _ => return None,
    };
    if h > 24 || m > 59 || sec > 60 {
        return None;
    }
    Some(((h * 60 + m) * 60 + sec) * 1_000_000 + frac)
}

/// `+HH[:MM[:SS]]` / `-HH...` → seconds east of UTC.
fn parse_offset(s: &[u8]) -> Option<i32> {
    let (sign, rest) = match s.first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let mut parts = rest.split(|b| *b == b':');
    let h = digits(parts.next()?)?;
    let m = parts.next().map_or(Some(0), digits)?;
    let sec = parts.next().map_or(Some(0), digits)?;
    Some(sign * (h * 3600 + m * 60 + sec) as i32)
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM]][ BC]` → microseconds since the Unix epoch (UTC for
/// `tz`); `infinity` → `i64::MAX`, `-infinity` → `i64::MIN`.
fn parse_timestamp(s: &[u8], tz: bool) -> Option<i64> {
    match s {
        b"infinity" => return Some(i64::MAX),
        b"-infinity" => return Some(i64::MIN),
        _ => {}
    }
    let (s, bc) = strip_bc(s);
    let space = s.iter().position(|b| *b == b' ')?;
    let (date, rest) = (&s[..space], &s[space + 1..]);
    let (time, offset) = if tz {
        let at = rest.iter().rposition(|b| *b == b'+' || *b == b'-')?;
        (&rest[..at], parse_offset(&rest[at..])?)
    } else {
        (rest, 0)
    };
    let days = if bc {
        let mut d = date.to_vec();
        d.extend_from_slice(b" BC");
        parse_date_days(&d)?
    } else {
        parse_ymd(date)?
    };
    let micros = parse_time(time)?;
    days.checked_mul(86_400_000_000)?
        .checked_add(micros)?
        .checked_sub(i64::from(offset) * 1_000_000)
}

/// ISO 8601 interval output (`P1Y2M3DT4H5M6.5S`, `P-1Y-2M`, `PT0S`).
fn parse_interval(s: &[u8]) -> Option<Value> {
    let body = s.strip_prefix(b"P")?;
    let (mut months, mut days, mut micros) = (0i64, 0i64, 0i64);
    let mut in_time = false;
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'T' {
            in_time = true;
            i += 1;
            continue;
        }
        let start = i;
        while i < body.len() && (body[i] == b'-' || body[i] == b'.' || body[i].is_ascii_digit()) {
            i += 1;
        }
        let num = std::str::from_utf8(&body[start..i]).ok()?;
        let unit = *body.get(i)?;
        i += 1;
        match (in_time, unit) {
            (false, b'Y') => months += num.parse::<i64>().ok()? * 12,
            (false, b'M') => months += num.parse::<i64>().ok()?,
            (false, b'W') => days += num.parse::<i64>().ok()? * 7,
            (false, b'D') => days += num.parse::<i64>().ok()?,
            (true, b'H') => micros += num.parse::<i64>().ok()? * 3_600_000_000,
            (true, b'M') => micros += num.parse::<i64>().ok()? * 60_000_000,
            (true, b'S') => micros += parse_seconds(num)?,
            _ => return None,
        }
    }
    Some(Value::Interval {
        months: i32::try_from(months).ok()?,
        days: i32::try_from(days).ok()?,
        micros,
    })
}

/// `-6.5` → -6_500_000 microseconds.
fn parse_seconds(num: &str) -> Option<i64> {
    let (neg, t) = match num.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, num),
    };
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    if frac.len() > 6 {
        return None;
    }
    let mut v = digits(whole.as_bytes())? * 1_000_000;
    if !frac.is_empty() {
        v += digits(frac.as_bytes())? * 10i64.pow(6 - frac.len() as u32);
    }
    Some(if neg { -v } else { v })
}

fn parse_uuid(s: &[u8]) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    let mut n = 0;
    let mut hi: Option<u8> = None;
    for &b in s {
        if b == b'-' {
            continue;
        }
        let v = hex_val(b)?;
        match hi.take() {
            None => hi = Some(v),
            Some(h) => {
                *out.get_mut(n)? = h << 4 | v;
                n += 1;
            }
        }
    }
    (n == 16 && hi.is_none()).then_some(out)
}

/// PostgreSQL array text (`{1,2,NULL}`, `{{a,"b c"},{NULL,"NULL"}}`, `[0:1]={1,2}`).
fn parse_array(s: &[u8], elem: &Conv, delim: u8) -> Option<Value> {
    let s = if s.first() == Some(&b'[') {
        let eq = s.iter().position(|b| *b == b'=')?;
        &s[eq + 1..]
    } else {
        s
    };
    let mut pos = 0;
    let v = parse_array_level(s, &mut pos, elem, delim)?;
    (pos == s.len()).then_some(v)
}

fn parse_array_level(s: &[u8], pos: &mut usize, elem: &Conv, delim: u8) -> Option<Value> {
    if s.get(*pos) != Some(&b'{') {
        return None;
    }
    *pos += 1;
    let mut items = Vec::new();
    if s.get(*pos) == Some(&b'}') {
        *pos += 1;
        return Some(Value::Array(items));
    }
    loop {
        match s.get(*pos)? {
            b'{' => items.push(parse_array_level(s, pos, elem, delim)?),
            b'"' => {
                *pos += 1;
                let mut buf = Vec::new();
                loop {
                    match *s.get(*pos)? {
                        b'\\' => {
                            buf.push(*s.get(*pos + 1)?);
                            *pos += 2;
                        }
                        b'"' => {
                            *pos += 1;
                            break;
                        }
                        b => {
                            buf.push(b);
                            *pos += 1;
                        }
                    }
                }
                items.push(convert(elem, &buf)?);
            }
            _ => {
                let start = *pos;
                while let Some(&b) = s.get(*pos) {
                    if b == delim || b == b'}' {
                        break;
                    }
                    *pos += 1;
                }
                let raw = s[start..*pos].trim_ascii();
                if raw.eq_ignore_ascii_case(b"NULL") {
                    items.push(Value::Null);
                } else {
                    items.push(convert(elem, raw)?);
                }
            }
        }
        match *s.get(*pos)? {
            b'}' => {
                *pos += 1;
                return Some(Value::Array(items));
            }
            b if b == delim => *pos += 1,
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(conv: Conv, s: &str) -> Value {
        convert(&conv, s.as_bytes()).unwrap_or_else(|| panic!("{s:?} did not parse"))
    }

    #[test]
    fn scalars_parse() {
        assert_eq!(c(Conv::Int, "-9223372036854775808"), Value::Int(i64::MIN));
        assert_eq!(c(Conv::Int, "42"), Value::Int(42));
        assert!(convert(&Conv::Int, b"9223372036854775808").is_none());
        assert_eq!(c(Conv::Bool, "t"), Value::Bool(true));
        assert_eq!(c(Conv::Float32, "0.1"), Value::Float32(0.1));
        assert!(matches!(c(Conv::Float64, "NaN"), Value::Float64(f) if f.is_nan()));
        assert_eq!(
            c(Conv::Float64, "-Infinity"),
            Value::Float64(f64::NEG_INFINITY)
        );
        assert_eq!(
            c(Conv::Numeric, "-12.340"),
            Value::Decimal("-12.340".into())
        );
        assert_eq!(c(Conv::Bytea, "\\x00ff"), Value::Bytes(vec![0, 255]));
        assert_eq!(c(Conv::Date, "2024-01-01"), Value::Date(19_723));
        assert_eq!(c(Conv::Date, "0001-01-01 BC"), Value::Date(-719_528));
        assert_eq!(c(Conv::Date, "0002-01-01 BC"), Value::Date(-719_893));
        assert_eq!(c(Conv::Time, "12:34:56.5"), Value::Time(45_296_500_000));
        assert_eq!(
            c(Conv::TimeTz, "01:00:00-05:30"),
            Value::TimeTz {
                micros: 3_600_000_000,
                offset_secs: -19_800
            }
        );
        assert_eq!(
            c(Conv::Timestamp, "2024-01-01 00:00:00.000001"),
            Value::Timestamp(1_704_067_200_000_001)
        );
        assert_eq!(
            c(Conv::TimestampTz, "2024-01-01 02:00:00+02"),
            Value::TimestampTz(1_704_067_200_000_000)
        );
        assert_eq!(
            c(Conv::TimestampTz, "infinity"),
            Value::TimestampTz(i64::MAX)
        );
        assert_eq!(
            c(Conv::Interval, "P1Y2M3DT4H5M6.5S"),
            Value::Interval {
                months: 14,
                days: 3,
                micros: 14_706_500_000
            }
        );
        assert_eq!(
            c(Conv::Interval, "P-1Y-2M3DT-4H-5M-6.5S"),
            Value::Interval {
                months: -14,
                days: 3,
                micros: -14_706_500_000
            }
        );
        assert_eq!(
            c(Conv::Interval, "PT0S"),
            Value::Interval {
                months: 0,
                days: 0,
                micros: 0
            }
        );
        assert!(matches!(
            c(Conv::Uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            Value::Uuid(u) if u[0] == 0xa0 && u[15] == 0x11
        ));
    }

    #[test]
    fn arrays_parse() {
        let a = |s: &str| c(Conv::Array(Box::new(Conv::Int), b','), s);
        assert_eq!(
            a("{1,NULL,3}"),
            Value::Array(vec![Value::Int(1), Value::Null, Value::Int(3)])
        );
        assert_eq!(a("{}"), Value::Array(vec![]));
        assert_eq!(
            a("{{1,2},{3,4}}"),
            Value::Array(vec![
                Value::Array(vec![Value::Int(1), Value::Int(2)]),
                Value::Array(vec![Value::Int(3), Value::Int(4)])
            ])
        );
        assert_eq!(
            a("[0:1]={5,6}"),
            Value::Array(vec![Value::Int(5), Value::Int(6)])
        );
        let t = c(
            Conv::Array(Box::new(Conv::Text), b','),
            r#"{a,"b c","NULL",NULL,"q\"x\\y"}"#,
        );
        assert_eq!(
            t,
            Value::Array(vec![
                Value::Text("a".into()),
                Value::Text("b c".into()),
                Value::Text("NULL".into()),
                Value::Null,
                Value::Text("q\"x\\y".into()),
            ])
        );
        assert!(convert(&Conv::Array(Box::new(Conv::Int), b','), b"{1,x}").is_none());
    }

    #[test]
    fn money_bits_and_hstore_parse_as_debezium_reads_them() {
        assert_eq!(
            c(Conv::Money, "$1,234.56"),
            Value::Decimal("1234.56".into())
        );
        assert_eq!(c(Conv::Money, "-$0.50"), Value::Decimal("-0.50".into()));
        assert_eq!(
            c(Conv::Money, "1.234,56 €"),
            Value::Decimal("1234.56".into())
        );
        assert_eq!(c(Conv::Money, "$1,000"), Value::Decimal("1000".into()));
        assert_eq!(c(Conv::Bits, "1"), Value::Bool(true));
        assert_eq!(c(Conv::Bits, "101"), Value::Bytes(vec![0b101]));
        assert_eq!(c(Conv::Bits, "100000000"), Value::Bytes(vec![0b1, 0]));
        assert_eq!(c(Conv::Bits, "000"), Value::Bytes(vec![]));
        assert_eq!(
            c(
                Conv::Hstore,
                r#""b"=>"2", "a"=>"1", "n"=>NULL, "q\"x"=>"y""#
            ),
            // Java HashMap buckets: "a" 1, "b" 2, "q\"x" 6, "n" 14.
            Value::Json(r#"{"a":"1","b":"2","q\"x":"y","n":null}"#.into())
        );
    }

    #[test]
    fn type_names_carry_modifiers() {
        let mut cache = TypeCache::default();
        let row = |oid, name: &str| TypeRow {
            oid,
            name: name.into(),
            typtype: b'b',
            elem: 0,
            base: 0,
            delim: b',',
            category: b'N',
            typmod: -1,
            labels: Vec::new(),
        };
        cache.add([row(1700, "numeric"), row(1043, "varchar"), row(23, "int4")]);
        assert_eq!(&*cache.type_name(1700, (10 << 16 | 2) + 4), "numeric(10,2)");
        assert_eq!(&*cache.type_name(1043, 24), "varchar(20)");
        assert_eq!(&*cache.type_name(23, -1), "int4");
        assert_eq!(cache.conv(99_999), Conv::Text);
    }
}
