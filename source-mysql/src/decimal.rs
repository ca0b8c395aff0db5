//! MySQL's binary packed DECIMAL: its byte size and its exact text, for row images (via
//! [`crate::decode`]) and binary JSON values (via [`crate::jsonb`]).

use connector_core::Result;

use crate::binlog::{malformed, Buf};

const DIG2BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];

/// The byte size of a binary DECIMAL(precision, scale).
pub fn decimal_size(precision: u32, scale: u32) -> usize {
    let intg = precision.saturating_sub(scale) as usize;
    let scale = scale as usize;
    (intg / 9) * 4 + DIG2BYTES[intg % 9] + (scale / 9) * 4 + DIG2BYTES[scale % 9]
}

/// Decode MySQL's binary packed DECIMAL exactly into its canonical text (`-12.30`).
pub fn decode_decimal(raw: &[u8], precision: u32, scale: u32) -> Result<String> {
    let mut out = [0u8; 80];
    let n = decode_decimal_into(raw, precision, scale, &mut out)?;
    Ok(String::from_utf8_lossy(&out[..n]).into_owned())
}

fn push_digits(out: &mut [u8], at: &mut usize, mut v: u64, width: usize) {
    // `width` digits, zero-padded, most significant first.
    for i in (0..width).rev() {
        out[*at + i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    *at += width;
}

/// Decode a binary DECIMAL into `out`, returning the length of its text.
pub fn decode_decimal_into(
    raw: &[u8],
    precision: u32,
    scale: u32,
    out: &mut [u8; 80],
) -> Result<usize> {
    let size = decimal_size(precision, scale);
    if raw.len() < size || size == 0 || precision > 65 || scale > 38 || scale > precision {
        return Err(malformed(format!(
            "decimal({precision},{scale}) of {} bytes",
            raw.len()
        )));
    }
    let mut buf = [0u8; 40];
    let d = &mut buf[..size];
    d.copy_from_slice(&raw[..size]);
    let negative = d[0] & 0x80 == 0;
    d[0] ^= 0x80;
    if negative {
        for x in d.iter_mut() {
            *x ^= 0xff;
        }
    }
    let intg = (precision - scale) as usize;
    let scale = scale as usize;
    let mut b = Buf(d);
    // Integer digits, zero-padded to `intg`, then trimmed.
    let mut digits = [0u8; 80];
    let mut at = 0;
    let lead = intg % 9;
    if lead > 0 {
        let v = b.uint_be(DIG2BYTES[lead])?;
        push_digits(&mut digits, &mut at, v, lead);
    }
    for _ in 0..intg / 9 {
        let v = b.uint_be(4)?;
        push_digits(&mut digits, &mut at, v, 9);
    }
    let first = digits[..at].iter().position(|c| *c != b'0').unwrap_or(at);
    let int_part: &[u8] = if first == at {
        b"0"
    } else {
        &digits[first..at]
    };
    let mut all_zero = first == at;
    let mut frac = [0u8; 40];
    let mut fat = 0;
    for _ in 0..scale / 9 {
        let v = b.uint_be(4)?;
        push_digits(&mut frac, &mut fat, v, 9);
    }
    let tail = scale % 9;
    if tail > 0 {
        let v = b.uint_be(DIG2BYTES[tail])?;
        push_digits(&mut frac, &mut fat, v, tail);
    }
    if frac[..fat].iter().any(|c| *c != b'0') {
        all_zero = false;
    }
    let mut n = 0;
    if negative && !all_zero {
        out[0] = b'-';
        n = 1;
    }
    out[n..n + int_part.len()].copy_from_slice(int_part);
    n += int_part.len();
    if scale > 0 {
        out[n] = b'.';
        n += 1;
        out[n..n + fat].copy_from_slice(&frac[..fat]);
        n += fat;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_examples_from_the_mysql_documentation() {
        // GIVEN the documented encoding of 1234567890.1234 as DECIMAL(14,4)
        let pos = [0x81, 0x0D, 0xFB, 0x38, 0xD2, 0x04, 0xD2];
        assert_eq!(decode_decimal(&pos, 14, 4).unwrap(), "1234567890.1234");
        // AND of -1234567890.1234 (every byte inverted)
        let neg = [0x7E, 0xF2, 0x04, 0xC7, 0x2D, 0xFB, 0x2D];
        assert_eq!(decode_decimal(&neg, 14, 4).unwrap(), "-1234567890.1234");
    }

    #[test]
    fn decimal_edge_cases_are_exact() {
        // 0.00 as DECIMAL(5,2): intg 3 → 2 bytes, frac 2 → 1 byte, sign bit set.
        assert_eq!(decode_decimal(&[0x80, 0x00, 0x00], 5, 2).unwrap(), "0.00");
        // -0.50: positive 0.50 is 80 00 32; negative inverts: 7f ff cd
        assert_eq!(decode_decimal(&[0x7f, 0xff, 0xcd], 5, 2).unwrap(), "-0.50");
        // 65 digits: 99999999999999999999999999999999999.999999999999999999999999999999
        let size = decimal_size(65, 30);
        let mut v = vec![0u8; size];
        // integer part 35 digits: 8 digits (4 bytes) + 3 groups; fraction 30: 3 groups + 3 digits
        let mut w = Vec::new();
        w.extend_from_slice(&99_999_999u32.to_be_bytes());
        for _ in 0..3 {
            w.extend_from_slice(&999_999_999u32.to_be_bytes());
        }
        for _ in 0..3 {
            w.extend_from_slice(&999_999_999u32.to_be_bytes());
        }
        w.extend_from_slice(&999u16.to_be_bytes());
        v.copy_from_slice(&w);
        v[0] |= 0x80;
        let s = decode_decimal(&v, 65, 30).unwrap();
        assert_eq!(s, format!("{}.{}", "9".repeat(35), "9".repeat(30)));
        assert!(decode_decimal(&[0x80], 14, 4).is_err());
    }
}
