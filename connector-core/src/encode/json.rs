//! JSON primitives: string literals with escaping, integers, base64 bytes.

use base64::Engine as _;

/// Append a signed integer.
pub fn write_int(out: &mut Vec<u8>, i: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
}

/// Append an unsigned integer.
pub fn write_uint(out: &mut Vec<u8>, u: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(u).as_bytes());
}

/// Append bytes as a base64 JSON string (Debezium's `binary.handling.mode=bytes` in JSON).
pub fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.push(b'"');
    let start = out.len();
    out.resize(start + base64::encoded_len(b.len(), true).unwrap_or(0), 0);
    let written = base64::engine::general_purpose::STANDARD
        .encode_slice(b, &mut out[start..])
        .unwrap_or(0);
    out.truncate(start + written);
    out.push(b'"');
}

const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t[0x08] = b'b';
    t[0x0c] = b'f';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Whether any of the 8 bytes of `w` must be escaped in a JSON string (a control character, `"`
/// or `\\`): the "has a byte less than n" and "has a zero byte" word tricks, exact as a boolean.
#[inline]
fn word_needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let control = w.wrapping_sub(ONES * 0x20) & !w;
    let q = w ^ (ONES * u64::from(b'"'));
    let quote = q.wrapping_sub(ONES) & !q;
    let b = w ^ (ONES * u64::from(b'\\'));
    let backslash = b.wrapping_sub(ONES) & !b;
    (control | quote | backslash) & HIGHS != 0
}

/// Append a JSON string literal.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Skip 8 bytes at a time while none needs escaping (most text).
        if let Some(chunk) = bytes.get(i..i + 8) {
            let w = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
            if !word_needs_escape(w) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let esc = ESCAPE[b as usize];
        if esc != 0 {
            out.extend_from_slice(&bytes[start..i]);
            out.push(b'\\');
            out.push(esc);
            if esc == b'u' {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xf) as usize]);
            }
            start = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-at-a-time escaping `write_str` must match.
    fn write_str_reference(out: &mut Vec<u8>, s: &str) {
        out.push(b'"');
        for &b in s.as_bytes() {
            match ESCAPE[b as usize] {
                0 => out.push(b),
                b'u' => out.extend_from_slice(format!("\\u{:04x}", b).as_bytes()),
                e => out.extend_from_slice(&[b'\\', e]),
            }
        }
        out.push(b'"');
    }

    #[test]
    fn write_str_matches_the_reference_for_every_byte_at_every_offset() {
        let mut samples: Vec<String> = Vec::new();
        for b in 0u8..=127 {
            for pos in 0..18 {
                let mut s = "abcdefghijklmnopq".to_string();
                s.insert(pos.min(s.len()), b as char);
                samples.push(s);
            }
        }
        samples.push("é\"ü\\x\u{7f}\u{1f}\n€ and a long tail of plain text 0123456789".into());
        samples.push(String::new());
        samples.push("\"".repeat(20));
        for s in &samples {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            write_str(&mut a, s);
            write_str_reference(&mut b, s);
            assert_eq!(a, b, "{s:?}");
            let back: String = serde_json::from_slice(&a).unwrap();
            assert_eq!(&back, s);
        }
    }
}
