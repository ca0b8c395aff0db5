//! MySQL's binary JSON format (`json_binary.h`) to compact JSON text, keeping the stored key order.
//!
//! ```text
//! doc    ::= type value
//! type   ::= 0x00 small object | 0x01 large object | 0x02 small array | 0x03 large array
//!          | 0x04 literal (0 null, 1 true, 2 false) | 0x05 int16 | 0x06 uint16 | 0x07 int32
//!          | 0x08 uint32 | 0x09 int64 | 0x0a uint64 | 0x0b double | 0x0c string | 0x0f opaque
//! object ::= count size key-entry* value-entry* key* value*     (counts/offsets: 2 bytes small,
//! array  ::= count size value-entry* value*                      4 bytes large, little-endian)
//! key-entry   ::= key-offset key-length(2)
//! value-entry ::= type offset-or-inlined-value
//! ```
//! Offsets are relative to the start of the object or array (after its type byte). Literals and
//! 16-bit integers are inlined in value entries, and 32-bit integers too in the large format.

use connector_core::Result;

use crate::binlog::malformed;
use crate::decimal::decode_decimal;

/// Convert a binary JSON document to JSON text.
pub fn to_text(doc: &[u8]) -> Result<String> {
    let (&t, rest) = doc
        .split_first()
        .ok_or_else(|| malformed("empty JSON value"))?;
    let mut out = String::with_capacity(doc.len() * 2);
    let limit = doc.len().saturating_mul(MAX_EXPANSION) + 64;
    write_value(t, rest, &mut out, 0, limit)?;
    Ok(out)
}

const MAX_DEPTH: usize = 100;

/// The most text a document may print per byte of it. A document MySQL wrote stores each value
/// once and prints fewer than 8 characters per byte (a control character in a string: 6);
/// only offsets shared between entries (corrupt or hostile data) print more, exponentially with
/// the depth, so past this the document is refused.
const MAX_EXPANSION: usize = 16;

fn get(data: &[u8], at: usize, n: usize) -> Result<&[u8]> {
    data.get(at..at + n)
        .ok_or_else(|| malformed("JSON value out of bounds"))
}

fn uint(data: &[u8], at: usize, n: usize) -> Result<u64> {
    let b = get(data, at, n)?;
    Ok(b.iter()
        .enumerate()
        .fold(0u64, |v, (i, x)| v | (u64::from(*x) << (8 * i))))
}

fn var_len(data: &[u8], at: usize) -> Result<(usize, usize)> {
    let mut len = 0usize;
    for i in 0..5 {
        let b = *data
            .get(at + i)
            .ok_or_else(|| malformed("JSON length out of bounds"))?;
        len |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((len, i + 1));
        }
    }
    Err(malformed("JSON length too long"))
}

fn write_value(t: u8, data: &[u8], out: &mut String, depth: usize, limit: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(malformed("JSON nested too deeply"));
    }
    match t {
        0x00 => write_container(data, false, true, out, depth, limit),
        0x01 => write_container(data, true, true, out, depth, limit),
        0x02 => write_container(data, false, false, out, depth, limit),
        0x03 => write_container(data, true, false, out, depth, limit),
        0x04 => {
            out.push_str(match get(data, 0, 1)?[0] {
                0 => "null",
                1 => "true",
                2 => "false",
                _ => return Err(malformed("JSON literal")),
            });
            Ok(())
        }
        0x05 => push_int(out, i64::from(uint(data, 0, 2)? as u16 as i16)),
        0x06 => push_int(out, uint(data, 0, 2)? as i64),
        0x07 => push_int(out, i64::from(uint(data, 0, 4)? as u32 as i32)),
        0x08 => push_int(out, uint(data, 0, 4)? as i64),
        0x09 => push_int(out, uint(data, 0, 8)? as i64),
        0x0a => {
            out.push_str(&uint(data, 0, 8)?.to_string());
            Ok(())
        }
        0x0b => {
            let f = f64::from_le_bytes(
                get(data, 0, 8)?
                    .try_into()
                    .map_err(|_| malformed("JSON double"))?,
            );
            if f.is_finite() {
                let mut buf = ryu::Buffer::new();
                let s = buf.format_finite(f);
                out.push_str(s.strip_suffix(".0").unwrap_or(s));
            } else {
                out.push_str("null");
            }
            Ok(())
        }
        0x0c => {
            let (len, n) = var_len(data, 0)?;
            let s = get(data, n, len)?;
            push_str(out, &String::from_utf8_lossy(s));
            Ok(())
        }
        0x0f => write_opaque(data, out),
        _ => Err(malformed(format!("JSON type {t:#x}"))),
    }
}

fn push_int(out: &mut String, v: i64) -> Result<()> {
    out.push_str(itoa::Buffer::new().format(v));
    Ok(())
}

fn write_container(
    data: &[u8],
    large: bool,
    object: bool,
    out: &mut String,
    depth: usize,
    limit: usize,
) -> Result<()> {
    let w = if large { 4 } else { 2 };
    let count = uint(data, 0, w)? as usize;
    let _size = uint(data, w, w)? as usize;
    let key_entry = w + 2;
    let value_entry = 1 + w;
    let keys_at = 2 * w;
    let values_at = keys_at + if object { count * key_entry } else { 0 };
    out.push(if object { '{' } else { '[' });
    for i in 0..count {
        if out.len() > limit {
            return Err(malformed(format!(
                "JSON document prints more than {MAX_EXPANSION} characters per byte \
                 (entries share offsets)"
            )));
        }
        if i > 0 {
            out.push(',');
        }
        if object {
            let e = keys_at + i * key_entry;
            let off = uint(data, e, w)? as usize;
            let len = uint(data, e + w, 2)? as usize;
            push_str(out, &String::from_utf8_lossy(get(data, off, len)?));
            out.push(':');
        }
        let e = values_at + i * value_entry;
        let t = get(data, e, 1)?[0];
        let inlined = matches!(t, 0x04..=0x06) || (large && matches!(t, 0x07 | 0x08));
        if inlined {
            write_value(t, get(data, e + 1, w)?, out, depth + 1, limit)?;
        } else {
            let off = uint(data, e + 1, w)? as usize;
            let v = data
                .get(off..)
                .ok_or_else(|| malformed("JSON offset out of bounds"))?;
            write_value(t, v, out, depth + 1, limit)?;
        }
    }
    out.push(if object { '}' } else { ']' });
    Ok(())
}

fn write_opaque(data: &[u8], out: &mut String) -> Result<()> {
    let field_type = get(data, 0, 1)?[0];
    let (len, n) = var_len(data, 1)?;
    let v = get(data, 1 + n, len)?;
    match field_type {
        // DECIMAL: precision, scale, binary decimal; printed as a number.
        246 => {
            let p = u32::from(*v.first().ok_or_else(|| malformed("JSON decimal"))?);
            let s = u32::from(*v.get(1).ok_or_else(|| malformed("JSON decimal"))?);
            out.push_str(&decode_decimal(&v[2..], p, s)?);
        }
        // DATE, TIME, DATETIME, TIMESTAMP: a packed 64-bit integer; printed as a string.
        10 | 11 | 12 | 7 => {
            let packed = uint(v, 0, 8)? as i64;
            push_str(out, &packed_temporal(field_type, packed));
        }
        _ => {
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::STANDARD.encode(v);
            push_str(out, &format!("base64:type{field_type}:{b64}"));
        }
    }
    Ok(())
}

fn packed_temporal(field_type: u8, packed: i64) -> String {
    let neg = packed < 0;
    let a = packed.unsigned_abs();
    let int = a >> 24;
    let frac = a % (1 << 24);
    let frac_s = if frac > 0 {
        format!(".{frac:06}")
    } else {
        String::new()
    };
    if field_type == 11 {
        let h = (int >> 12) % (1 << 10);
        let m = (int >> 6) % (1 << 6);
        let s = int % (1 << 6);
        return format!("{}{h:02}:{m:02}:{s:02}{frac_s}", if neg { "-" } else { "" });
    }
    let ymd = int >> 17;
    let ym = ymd >> 5;
    let hms = int % (1 << 17);
    let (y, mo, d) = (ym / 13, ym % 13, ymd % (1 << 5));
    if field_type == 10 {
        return format!("{y:04}-{mo:02}-{d:02}");
    }
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}{frac_s}",
        hms >> 12,
        (hms >> 6) % (1 << 6),
        hms % (1 << 6)
    )
}

fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars() {
        assert_eq!(to_text(&[0x04, 0x01]).unwrap(), "true");
        assert_eq!(to_text(&[0x05, 0xff, 0xff]).unwrap(), "-1");
        assert_eq!(
            to_text(&[0x0c, 0x03, b'a', b'"', b'b']).unwrap(),
            r#""a\"b""#
        );
        let mut d = vec![0x0b];
        d.extend_from_slice(&1.5f64.to_le_bytes());
        assert_eq!(to_text(&d).unwrap(), "1.5");
        let mut u = vec![0x0a];
        u.extend_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(to_text(&u).unwrap(), "18446744073709551615");
    }

    #[test]
    fn small_object_with_nested_array_as_mysql_writes_it() {
        // GIVEN {"a": 1, "bb": [true, "x"]} in the small format (built by the layout in
        // json_binary.h): count=2, size, key entries (offset, len), value entries (type, off).
        let array: Vec<u8> = {
            // count 2, size, entries: literal true inlined, string at offset
            let mut a = vec![2, 0, 0, 0];
            a.extend_from_slice(&[0x04, 0x01, 0x00]); // true inlined
            a.extend_from_slice(&[0x0c, 10, 0]); // string at offset 10
            a.extend_from_slice(&[1, b'x']);
            let size = a.len() as u16;
            a[2..4].copy_from_slice(&size.to_le_bytes());
            a
        };
        let mut o = vec![2, 0, 0, 0];
        let keys_at = 4 + 2 * 4 + 2 * 3; // after header, key entries, value entries
        o.extend_from_slice(&(keys_at as u16).to_le_bytes());
        o.extend_from_slice(&1u16.to_le_bytes());
        o.extend_from_slice(&((keys_at + 1) as u16).to_le_bytes());
        o.extend_from_slice(&2u16.to_le_bytes());
        o.extend_from_slice(&[0x05, 1, 0]); // int16 1 inlined
        let arr_at = keys_at + 3;
        o.push(0x02);
        o.extend_from_slice(&(arr_at as u16).to_le_bytes());
        o.extend_from_slice(b"abb");
        o.extend_from_slice(&array);
        let size = o.len() as u16;
        o[2..4].copy_from_slice(&size.to_le_bytes());
        let mut doc = vec![0x00];
        doc.extend_from_slice(&o);
        // WHEN converted THEN the text keeps the stored key order
        assert_eq!(to_text(&doc).unwrap(), r#"{"a":1,"bb":[true,"x"]}"#);
        // AND a truncated document is an error, not a panic
        assert!(to_text(&doc[..10]).is_err());
    }

    #[test]
    fn large_array_inlines_int32_and_opaque_decimal() {
        // [70000, 12.5 (DECIMAL(3,1))] in the large format.
        let mut a = Vec::new();
        a.extend_from_slice(&2u32.to_le_bytes());
        a.extend_from_slice(&0u32.to_le_bytes());
        a.push(0x07);
        a.extend_from_slice(&70000u32.to_le_bytes());
        let opaque_at = (8 + 2 * 5) as u32;
        a.push(0x0f);
        a.extend_from_slice(&opaque_at.to_le_bytes());
        // opaque: type 246, len 4, precision 3 scale 1, decimal 12.5 → 0x8c 0x05
        a.extend_from_slice(&[246, 4, 3, 1, 0x8c, 0x05]);
        let mut doc = vec![0x03];
        doc.extend_from_slice(&a);
        assert_eq!(to_text(&doc).unwrap(), "[70000,12.5]");
    }

    #[test]
    fn entries_sharing_offsets_are_refused_before_they_multiply() {
        use crate::binlog::tests::{largest_allocation, protocol_err};
        // GIVEN 40 nested 10-byte arrays whose two entries both point at the next one, the
        // last holding two `true`: 411 bytes that print 2^41 values
        let mut doc = vec![0x02];
        for _ in 0..40 {
            doc.extend_from_slice(&[2, 0, 10, 0, 0x02, 10, 0, 0x02, 10, 0]);
        }
        doc.extend_from_slice(&[2, 0, 10, 0, 0x04, 1, 0, 0x04, 1, 0]);
        // WHEN converted THEN an error, quickly, without growing past a small bound
        let (r, largest) = largest_allocation(|| to_text(&doc));
        assert!(protocol_err(r).contains("more than 16 characters per byte"));
        assert!(largest < 64 * 1024, "{largest}");
    }

    #[test]
    fn opaque_datetime() {
        // 2024-02-29 13:14:15 packed: ((ym<<5|d)<<17 | hms) << 24
        let ym: i64 = 2024 * 13 + 2;
        let packed = (((ym << 5 | 29) << 17) | (13 << 12 | 14 << 6 | 15)) << 24;
        let mut doc = vec![0x0f, 12, 8];
        doc.extend_from_slice(&packed.to_le_bytes());
        assert_eq!(to_text(&doc).unwrap(), r#""2024-02-29 13:14:15""#);
    }
}
