//! The JSON form of one value, as Debezium writes a value of its column's type in the encoder's
//! [`Modes`]; see the README type table.

use base64::Engine as _;

use super::json::{write_bytes, write_int, write_str, write_uint};
use super::modes::{BinaryMode, DecimalMode, HstoreMode, IntervalMode, Modes, TimePrecisionMode};
use super::time::{
    micro_duration, write_debezium_interval, write_iso_date, write_iso_time, write_iso_timestamp,
    write_zoned_time, DAY_US,
};
use super::UNAVAILABLE_VALUE;
use crate::column_type::ColumnType;
use crate::event::Value;

/// Append the JSON form of one value in cdc's default modes, its type taken from the value alone
/// (source fields, keys of columns built without a type).
pub fn write_value(out: &mut Vec<u8>, v: &Value) {
    write_typed(out, v, &ColumnType::Other, &Modes::default());
}

/// Append the JSON form of `v`, a value of a column of type `ty`, in `modes`.
pub fn write_typed(out: &mut Vec<u8>, v: &Value, ty: &ColumnType, modes: &Modes) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Unavailable => match ty {
            ColumnType::Bytes if modes.binary == BinaryMode::Bytes => {
                write_bytes(out, UNAVAILABLE_VALUE.as_bytes())
            }
            _ => write_str(out, UNAVAILABLE_VALUE),
        },
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(i) => write_int(out, *i),
        Value::UInt(u) => write_uint(out, *u),
        Value::Float32(f) => write_f32(out, *f),
        Value::Float64(f) => write_f64(out, *f),
        Value::Decimal(s) => write_decimal(out, s, ty, modes.decimal),
        Value::Text(s) => write_str(out, s),
        Value::Json(s) => match (ty, modes.hstore) {
            (ColumnType::Hstore, HstoreMode::Map) => out.extend_from_slice(s.as_bytes()),
            _ => write_str(out, s),
        },
        Value::Bytes(b) => match ty {
            ColumnType::Bits { .. } => {
                // Sources carry bits big-endian; Debezium's `Bits` are little-endian.
                let mut le = b.clone();
                le.reverse();
                write_bytes(out, &le);
            }
            _ => write_binary(out, b, modes.binary),
        },
        Value::Date(days) => match modes.time {
            TimePrecisionMode::Isostring => write_iso_date(out, i64::from(*days)),
            _ => write_int(out, i64::from(*days)),
        },
        Value::Time(micros) => {
            let precision = match ty {
                ColumnType::Time { precision } => *precision,
                _ => 6,
            };
            match modes.time {
                TimePrecisionMode::Isostring => write_iso_time(out, micros.rem_euclid(DAY_US)),
                TimePrecisionMode::Adaptive if precision <= 3 => {
                    write_int(out, micros.div_euclid(1000))
                }
                TimePrecisionMode::Connect => write_int(out, micros.div_euclid(1000)),
                _ => write_int(out, *micros),
            }
        }
        Value::TimeTz {
            micros,
            offset_secs,
        } => write_zoned_time(out, *micros, *offset_secs),
        Value::Timestamp(us) => {
            let precision = match ty {
                ColumnType::Timestamp { precision } => *precision,
                _ => 6,
            };
            match modes.time {
                TimePrecisionMode::Isostring => write_iso_timestamp(out, *us, None),
                _ if *us == i64::MAX || *us == i64::MIN => write_int(out, *us),
                TimePrecisionMode::Connect => write_int(out, us.div_euclid(1000)),
                _ if precision <= 3 => write_int(out, us.div_euclid(1000)),
                _ => write_int(out, *us),
            }
        }
        Value::TimestampTz(us) => {
            let width = match ty {
                ColumnType::TimestampTz { precision } => *precision,
                _ => None,
            };
            write_iso_timestamp(out, *us, width)
        }
        Value::Interval {
            months,
            days,
            micros,
        } => match modes.interval {
            IntervalMode::String => write_debezium_interval(out, *months, *days, *micros),
            IntervalMode::Numeric => write_int(out, micro_duration(*months, *days, *micros)),
        },
        Value::Uuid(u) => {
            out.push(b'"');
            write_uuid(out, u);
            out.push(b'"');
        }
        Value::Array(items) => {
            let elem = match ty {
                ColumnType::Array(e) => e.as_ref(),
                _ => &ColumnType::Other,
            };
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_typed(out, item, elem, modes);
            }
            out.push(b']');
        }
    }
}

/// What Debezium writes for a null in a column that does not accept null (the key-only `before`
/// of a delete, a MySQL zero date in a `NOT NULL` column): the type's zero value.
pub fn write_fallback(out: &mut Vec<u8>, ty: &ColumnType, modes: &Modes) {
    let zero = match ty {
        ColumnType::Bool | ColumnType::Bits { length: 0 | 1 } => Value::Bool(false),
        ColumnType::Int16 | ColumnType::Int32 | ColumnType::Int64 | ColumnType::Year => {
            Value::Int(0)
        }
        ColumnType::Float32 => Value::Float32(0.0),
        ColumnType::Float64 => Value::Float64(0.0),
        ColumnType::Decimal { scale, .. } => Value::Decimal(zero_decimal(scale.unwrap_or(0))),
        ColumnType::Money { scale } => Value::Decimal(zero_decimal(*scale)),
        ColumnType::Bytes | ColumnType::Bits { .. } => Value::Bytes(Vec::new()),
        ColumnType::Date => Value::Date(0),
        ColumnType::Time { .. } => Value::Time(0),
        ColumnType::TimeTz => Value::TimeTz {
            micros: 0,
            offset_secs: 0,
        },
        ColumnType::Timestamp { .. } => Value::Timestamp(0),
        ColumnType::TimestampTz { .. } => Value::TimestampTz(0),
        ColumnType::Interval => Value::Interval {
            months: 0,
            days: 0,
            micros: 0,
        },
        ColumnType::Json | ColumnType::Hstore => Value::Json("{}".into()),
        ColumnType::Array(_) => Value::Array(Vec::new()),
        ColumnType::Other
        | ColumnType::Text
        | ColumnType::Xml
        | ColumnType::Uuid
        | ColumnType::Enum(_)
        | ColumnType::Set(_) => Value::Text(String::new()),
    };
    write_typed(out, &zero, ty, modes);
}

fn zero_decimal(scale: u32) -> Box<str> {
    if scale == 0 {
        "0".into()
    } else {
        format!("0.{}", "0".repeat(scale as usize)).into()
    }
}

fn write_f32(out: &mut Vec<u8>, f: f32) {
    if f.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(f).as_bytes());
    } else {
        write_non_finite(out, f64::from(f));
    }
}

fn write_f64(out: &mut Vec<u8>, f: f64) {
    if f.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(f).as_bytes());
    } else {
        write_non_finite(out, f);
    }
}

fn write_non_finite(out: &mut Vec<u8>, f: f64) {
    write_str(
        out,
        if f.is_nan() {
            "NaN"
        } else if f > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        },
    );
}

fn write_binary(out: &mut Vec<u8>, b: &[u8], mode: BinaryMode) {
    match mode {
        BinaryMode::Bytes | BinaryMode::Base64 => write_bytes(out, b),
        BinaryMode::Base64UrlSafe => {
            out.push(b'"');
            out.extend_from_slice(
                base64::engine::general_purpose::URL_SAFE
                    .encode(b)
                    .as_bytes(),
            );
            out.push(b'"');
        }
        BinaryMode::Hex => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.reserve(b.len() * 2 + 2);
            out.push(b'"');
            for x in b {
                out.push(HEX[(x >> 4) as usize]);
                out.push(HEX[(x & 0xf) as usize]);
            }
            out.push(b'"');
        }
    }
}

/// The scale of a decimal column in precise mode: `Some` for a fixed-scale `Decimal`, `None` for
/// a `VariableScaleDecimal`.
pub fn fixed_scale(ty: &ColumnType) -> Option<u32> {
    match ty {
        ColumnType::Decimal {
            precision: Some(_),
            scale,
        } => Some(scale.unwrap_or(0)),
        ColumnType::Money { scale } => Some(*scale),
        _ => None,
    }
}

fn write_decimal(out: &mut Vec<u8>, text: &str, ty: &ColumnType, mode: DecimalMode) {
    match mode {
        DecimalMode::String => write_str(out, text),
        DecimalMode::Double => match text {
            "NaN" => write_non_finite(out, f64::NAN),
            "Infinity" => write_non_finite(out, f64::INFINITY),
            "-Infinity" => write_non_finite(out, f64::NEG_INFINITY),
            _ => match text.parse::<f64>() {
                Ok(f) => write_f64(out, f),
                Err(_) => write_str(out, text),
            },
        },
        DecimalMode::Precise => {
            let Some(parsed) = ParsedDecimal::parse(text) else {
                // NaN and the infinities have no Connect `Decimal` form: Debezium writes null.
                out.extend_from_slice(b"null");
                return;
            };
            match fixed_scale(ty) {
                Some(scale) => write_bytes(out, &parsed.unscaled_bytes(scale)),
                None => {
                    out.extend_from_slice(b"{\"scale\":");
                    write_uint(out, u64::from(parsed.scale));
                    out.extend_from_slice(b",\"value\":");
                    write_bytes(out, &parsed.unscaled_bytes(parsed.scale));
                    out.push(b'}');
                }
            }
        }
    }
}

/// A finite decimal: sign, all digits (integer then fraction) and the count of fraction digits.
struct ParsedDecimal {
    negative: bool,
    digits: Vec<u8>,
    scale: u32,
}

impl ParsedDecimal {
    fn parse(text: &str) -> Option<ParsedDecimal> {
        let (negative, body) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(ParsedDecimal {
            negative,
            digits: int.bytes().chain(frac.bytes()).map(|b| b - b'0').collect(),
            scale: frac.len() as u32,
        })
    }

    /// The unscaled value at `scale` (rounded half up when digits are dropped), as Java's
    /// `BigInteger.toByteArray`: minimal big-endian two's complement.
    fn unscaled_bytes(&self, scale: u32) -> Vec<u8> {
        let mut digits = self.digits.clone();
        if scale >= self.scale {
            digits.extend(std::iter::repeat_n(0, (scale - self.scale) as usize));
        } else {
            let drop = (self.scale - scale) as usize;
            let keep = digits.len() - drop;
            let round_up = digits[keep] >= 5;
            digits.truncate(keep);
            if round_up {
                let mut i = digits.len();
                loop {
                    if i == 0 {
                        digits.insert(0, 1);
                        break;
                    }
                    i -= 1;
                    if digits[i] == 9 {
                        digits[i] = 0;
                    } else {
                        digits[i] += 1;
                        break;
                    }
                }
            }
        }
        // Decimal digits to a big-endian magnitude.
        let mut mag: Vec<u8> = Vec::new();
        for d in digits {
            let mut carry = u32::from(d);
            for byte in mag.iter_mut().rev() {
                let v = u32::from(*byte) * 10 + carry;
                *byte = (v & 0xff) as u8;
                carry = v >> 8;
            }
            while carry > 0 {
                mag.insert(0, (carry & 0xff) as u8);
                carry >>= 8;
            }
        }
        while mag.first() == Some(&0) {
            mag.remove(0);
        }
        if mag.is_empty() {
            return vec![0];
        }
        if !self.negative {
            if mag[0] & 0x80 != 0 {
                mag.insert(0, 0);
            }
            return mag;
        }
        // Two's complement of the magnitude.
        let mut carry = true;
        for byte in mag.iter_mut().rev() {
            *byte = !*byte;
            if carry {
                let (v, c) = byte.overflowing_add(1);
                *byte = v;
                carry = c;
            }
        }
        if mag[0] & 0x80 == 0 {
            mag.insert(0, 0xff);
        }
        while mag.len() > 1 && mag[0] == 0xff && mag[1] & 0x80 != 0 {
            mag.remove(0);
        }
        mag
    }
}

fn write_uuid(out: &mut Vec<u8>, u: &[u8; 16]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push(b'-');
        }
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 0xf) as usize]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn json(v: &Value) -> String {
        let mut out = Vec::new();
        write_value(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    fn typed(v: &Value, ty: &ColumnType, modes: Modes) -> String {
        let mut out = Vec::new();
        write_typed(&mut out, v, ty, &modes);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn values_have_their_documented_json_forms() {
        assert_eq!(json(&Value::Null), "null");
        assert_eq!(
            json(&Value::Unavailable),
            "\"__debezium_unavailable_value\""
        );
        assert_eq!(json(&Value::UInt(u64::MAX)), "18446744073709551615");
        assert_eq!(json(&Value::Int(i64::MIN)), "-9223372036854775808");
        assert_eq!(json(&Value::Float32(0.1)), "0.1");
        assert_eq!(json(&Value::Float64(f64::NAN)), "\"NaN\"");
        assert_eq!(json(&Value::Float64(f64::NEG_INFINITY)), "\"-Infinity\"");
        assert_eq!(json(&Value::Decimal("-12.340".into())), "\"-12.340\"");
        assert_eq!(
            json(&Value::Text("a\"b\\c\n\u{1}é".into())),
            r#""a\"b\\c\n\u0001é""#
        );
        assert_eq!(json(&Value::Bytes(vec![0, 1, 2, 255])), "\"AAEC/w==\"");
        // Debezium's isostring forms (the old plain forms lacked the `Z`).
        assert_eq!(json(&Value::Date(0)), "\"1970-01-01Z\"");
        assert_eq!(json(&Value::Date(19_723)), "\"2024-01-01Z\"");
        assert_eq!(json(&Value::Time(45_296_500_000)), "\"12:34:56.5Z\"");
        assert_eq!(
            json(&Value::TimeTz {
                micros: 3_600_000_000,
                offset_secs: -5 * 3600 - 1800
            }),
            "\"06:30:00Z\""
        );
        assert_eq!(
            json(&Value::Timestamp(1_704_067_200_000_001)),
            "\"2024-01-01T00:00:00.000001Z\""
        );
        assert_eq!(
            json(&Value::TimestampTz(-1)),
            "\"1969-12-31T23:59:59.999999Z\""
        );
        assert_eq!(json(&Value::TimestampTz(i64::MAX)), "\"infinity\"");
        assert_eq!(
            json(&Value::Interval {
                months: 14,
                days: 3,
                micros: 14_706_500_000
            }),
            "\"P1Y2M3DT4H5M6.5S\""
        );
        assert_eq!(
            json(&Value::Uuid([
                0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38,
                0x0a, 0x11
            ])),
            "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\""
        );
        assert_eq!(
            json(&Value::Array(vec![Value::Int(1), Value::Null])),
            "[1,null]"
        );
    }

    #[test]
    fn decimals_in_each_mode() {
        let fixed = ColumnType::Decimal {
            precision: Some(10),
            scale: Some(2),
        };
        let var = ColumnType::Decimal {
            precision: None,
            scale: None,
        };
        let precise = Modes {
            decimal: DecimalMode::Precise,
            ..Modes::default()
        };
        let d = |s: &str| Value::Decimal(s.into());
        // 1234.56 → unscaled 123456 = 0x01E240.
        assert_eq!(typed(&d("1234.56"), &fixed, precise), "\"AeJA\"");
        // -1.00 → -100 = 0x9C.
        assert_eq!(typed(&d("-1.00"), &fixed, precise), "\"nA==\"");
        // 128 at scale 0 needs a sign byte: 0x0080.
        let int = ColumnType::Decimal {
            precision: Some(5),
            scale: Some(0),
        };
        assert_eq!(typed(&d("128"), &int, precise), "\"AIA=\"");
        assert_eq!(typed(&d("-128"), &int, precise), "\"gA==\"");
        assert_eq!(typed(&d("0"), &int, precise), "\"AA==\"");
        assert_eq!(
            typed(&d("-12.340"), &var, precise),
            "{\"scale\":3,\"value\":\"z8w=\"}"
        );
        assert_eq!(typed(&d("NaN"), &var, precise), "null");
        let money = ColumnType::Money { scale: 2 };
        assert_eq!(typed(&d("1234.565"), &money, precise), "\"AeJB\"");
        let double = Modes {
            decimal: DecimalMode::Double,
            ..Modes::default()
        };
        assert_eq!(typed(&d("1234.50"), &fixed, double), "1234.5");
        assert_eq!(
            typed(&d("1234.50"), &fixed, Modes::default()),
            "\"1234.50\""
        );
    }

    #[test]
    fn times_in_each_mode() {
        let mode = |time| Modes {
            time,
            ..Modes::default()
        };
        let t6 = ColumnType::Time { precision: 6 };
        let t0 = ColumnType::Time { precision: 0 };
        let v = Value::Time(45_296_500_000);
        assert_eq!(
            typed(&v, &t6, mode(TimePrecisionMode::Adaptive)),
            "45296500000"
        );
        assert_eq!(
            typed(&v, &t0, mode(TimePrecisionMode::Adaptive)),
            "45296500"
        );
        assert_eq!(
            typed(&v, &t0, mode(TimePrecisionMode::AdaptiveTimeMicroseconds)),
            "45296500000"
        );
        assert_eq!(typed(&v, &t6, mode(TimePrecisionMode::Connect)), "45296500");
        let ts3 = ColumnType::Timestamp { precision: 3 };
        let ts = Value::Timestamp(1_704_067_200_123_000);
        assert_eq!(
            typed(&ts, &ts3, mode(TimePrecisionMode::Adaptive)),
            "1704067200123"
        );
        assert_eq!(
            typed(
                &ts,
                &ColumnType::Timestamp { precision: 6 },
                mode(TimePrecisionMode::Adaptive)
            ),
            "1704067200123000"
        );
        assert_eq!(
            typed(
                &Value::Date(19_723),
                &ColumnType::Date,
                mode(TimePrecisionMode::Connect)
            ),
            "19723"
        );
        assert_eq!(
            typed(
                &Value::TimestampTz(1_704_067_200_000_000),
                &ColumnType::TimestampTz { precision: Some(6) },
                Modes::debezium()
            ),
            "\"2024-01-01T00:00:00.000000Z\""
        );
        let iv = Value::Interval {
            months: 1,
            days: 0,
            micros: 0,
        };
        assert_eq!(
            typed(&iv, &ColumnType::Interval, Modes::debezium()),
            "2629800000000"
        );
    }

    #[test]
    fn binary_bits_and_hstore() {
        let b = Value::Bytes(vec![0xfb, 0xff]);
        let mode = |binary| Modes {
            binary,
            ..Modes::default()
        };
        assert_eq!(
            typed(&b, &ColumnType::Bytes, mode(BinaryMode::Base64)),
            "\"+/8=\""
        );
        assert_eq!(
            typed(&b, &ColumnType::Bytes, mode(BinaryMode::Base64UrlSafe)),
            "\"-_8=\""
        );
        assert_eq!(
            typed(&b, &ColumnType::Bytes, mode(BinaryMode::Hex)),
            "\"fbff\""
        );
        // Big-endian 0x01 0x02 → little-endian 0x02 0x01.
        assert_eq!(
            typed(
                &Value::Bytes(vec![1, 2]),
                &ColumnType::Bits { length: 16 },
                Modes::default()
            ),
            "\"AgE=\""
        );
        let h = Value::Json(r#"{"a":"1"}"#.into());
        assert_eq!(
            typed(&h, &ColumnType::Hstore, Modes::default()),
            r#""{\"a\":\"1\"}""#
        );
        let map = Modes {
            hstore: HstoreMode::Map,
            ..Modes::default()
        };
        assert_eq!(typed(&h, &ColumnType::Hstore, map), r#"{"a":"1"}"#);
        let arr = ColumnType::Array(Arc::new(ColumnType::Date));
        assert_eq!(
            typed(&Value::Array(vec![Value::Date(1)]), &arr, Modes::debezium()),
            "[1]"
        );
    }

    #[test]
    fn fallbacks_are_the_zero_of_the_type() {
        let f = |ty: &ColumnType, modes: Modes| {
            let mut out = Vec::new();
            write_fallback(&mut out, ty, &modes);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(f(&ColumnType::Int32, Modes::default()), "0");
        assert_eq!(f(&ColumnType::Text, Modes::default()), "\"\"");
        assert_eq!(f(&ColumnType::Date, Modes::default()), "\"1970-01-01Z\"");
        assert_eq!(f(&ColumnType::Date, Modes::debezium()), "0");
        assert_eq!(
            f(
                &ColumnType::Decimal {
                    precision: Some(10),
                    scale: Some(2)
                },
                Modes::debezium()
            ),
            "\"AA==\""
        );
    }
}
