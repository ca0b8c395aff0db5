//! Dates, times and durations: the civil calendar, cdc's plain ISO forms and Debezium's forms
//! (`IsoDate`/`IsoTime`/`IsoTimestamp` with their `Z`, `ZonedTimestamp` padded to the column's
//! precision, `ZonedTime` in UTC, `Interval`'s `PnYnMnDTnHnMnS` and `MicroDuration`).

use super::json::write_int;

/// Microseconds in a day.
pub const DAY_US: i64 = 86_400_000_000;

/// Civil date (year, month, day) from days since 1970-01-01 (proleptic Gregorian).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub(crate) fn write_padded(out: &mut Vec<u8>, v: u64, width: usize) {
    let mut buf = itoa::Buffer::new();
    let s = buf.format(v);
    for _ in s.len()..width {
        out.push(b'0');
    }
    out.extend_from_slice(s.as_bytes());
}

pub(crate) fn write_civil(out: &mut Vec<u8>, days: i64) {
    let (y, m, d) = civil_from_days(days);
    if y < 0 {
        out.push(b'-');
    }
    write_padded(out, y.unsigned_abs(), 4);
    out.push(b'-');
    write_padded(out, u64::from(m), 2);
    out.push(b'-');
    write_padded(out, u64::from(d), 2);
}

pub(crate) fn write_fraction(out: &mut Vec<u8>, micros: u64) {
    if micros == 0 {
        return;
    }
    let mut digits = 6;
    let mut v = micros;
    while v.is_multiple_of(10) {
        v /= 10;
        digits -= 1;
    }
    out.push(b'.');
    write_padded(out, v, digits);
}

/// Java's `ISO_LOCAL_DATE` year: at least 4 digits, `+` beyond 9999, `-` before year 0.
fn write_java_civil(out: &mut Vec<u8>, days: i64) {
    let (y, _, _) = civil_from_days(days);
    if y > 9999 {
        out.push(b'+');
    }
    write_civil(out, days);
}

/// Java's `ISO_LOCAL_TIME` of a time of day: `HH:MM:SS` and the fraction without trailing zeros,
/// or padded to exactly `width` digits when `width` is 1..=9.
fn write_java_time(out: &mut Vec<u8>, tod_us: i64, width: Option<u32>) {
    let m = tod_us.rem_euclid(DAY_US) as u64;
    let secs = m / 1_000_000;
    write_padded(out, secs / 3600, 2);
    out.push(b':');
    write_padded(out, secs / 60 % 60, 2);
    out.push(b':');
    write_padded(out, secs % 60, 2);
    let frac = m % 1_000_000;
    match width {
        Some(w @ 1..=9) => {
            out.push(b'.');
            let mut digits = [b'0'; 9];
            let nanos = frac * 1000;
            for (i, d) in digits.iter_mut().enumerate() {
                *d = b'0' + (nanos / 10u64.pow(8 - i as u32) % 10) as u8;
            }
            out.extend_from_slice(&digits[..w as usize]);
        }
        _ => write_fraction(out, frac),
    }
}

/// Debezium's `IsoDate`: `2024-01-01Z`.
pub fn write_iso_date(out: &mut Vec<u8>, days: i64) {
    out.push(b'"');
    write_java_civil(out, days);
    out.extend_from_slice(b"Z\"");
}

/// Debezium's `IsoTime` (and `ZonedTime` of a UTC time): `12:34:56.5Z`.
pub fn write_iso_time(out: &mut Vec<u8>, tod_us: i64) {
    out.push(b'"');
    write_java_time(out, tod_us, None);
    out.extend_from_slice(b"Z\"");
}

/// Debezium's `ZonedTime` of a PostgreSQL `timetz`: the instant shifted to UTC.
pub fn write_zoned_time(out: &mut Vec<u8>, micros: i64, offset_secs: i32) {
    write_iso_time(out, micros - i64::from(offset_secs) * 1_000_000);
}

/// Debezium's `IsoTimestamp` (`2024-01-01T00:00:00.000001Z`) or, with `width`, `ZonedTimestamp`
/// padded to that many fraction digits; PostgreSQL's infinities as `infinity`/`-infinity`.
pub fn write_iso_timestamp(out: &mut Vec<u8>, us: i64, width: Option<u32>) {
    out.push(b'"');
    if us == i64::MAX {
        out.extend_from_slice(b"infinity\"");
        return;
    }
    if us == i64::MIN {
        out.extend_from_slice(b"-infinity\"");
        return;
    }
    write_java_civil(out, us.div_euclid(DAY_US));
    out.push(b'T');
    write_java_time(out, us.rem_euclid(DAY_US), width);
    out.extend_from_slice(b"Z\"");
}

/// The parts Debezium reads from a PostgreSQL interval (as the JDBC driver's `PGInterval` does):
/// years, months, days, hours, minutes and seconds with their fraction, each carrying its sign.
struct IntervalParts {
    years: i64,
    months: i64,
    days: i64,
    hours: i64,
    minutes: i64,
    micros: i64,
}

fn interval_parts(months: i32, days: i32, micros: i64) -> IntervalParts {
    let months = i64::from(months);
    IntervalParts {
        years: months / 12,
        months: months % 12,
        days: i64::from(days),
        hours: micros / 3_600_000_000,
        minutes: micros / 60_000_000 % 60,
        micros: micros % 60_000_000,
    }
}

/// Debezium's `io.debezium.time.Interval` string: `P1Y2M3DT4H5M6.5S`, every part present.
pub fn write_debezium_interval(out: &mut Vec<u8>, months: i32, days: i32, micros: i64) {
    let p = interval_parts(months, days, micros);
    out.extend_from_slice(b"\"P");
    write_int(out, p.years);
    out.push(b'Y');
    write_int(out, p.months);
    out.push(b'M');
    write_int(out, p.days);
    out.extend_from_slice(b"DT");
    write_int(out, p.hours);
    out.push(b'H');
    write_int(out, p.minutes);
    out.push(b'M');
    if p.micros < 0 {
        out.push(b'-');
    }
    let m = p.micros.unsigned_abs();
    out.extend_from_slice(itoa::Buffer::new().format(m / 1_000_000).as_bytes());
    write_fraction(out, m % 1_000_000);
    out.extend_from_slice(b"S\"");
}

/// Debezium's `io.debezium.time.MicroDuration`: months count 365.25/12 days, computed in
/// floating point as Debezium does.
pub fn micro_duration(months: i32, days: i32, micros: i64) -> i64 {
    const DAYS_PER_MONTH_AVG: f64 = 365.25 / 12.0;
    let p = interval_parts(months, days, micros);
    let number_of_days = ((p.years * 12) + p.months) as f64 * DAYS_PER_MONTH_AVG + p.days as f64;
    let seconds = p.micros as f64 / 1e6;
    let number_of_seconds =
        (((number_of_days * 24.0 + p.hours as f64) * 60.0) + p.minutes as f64) * 60.0 + seconds;
    (number_of_seconds * 1e6) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn civil_date_round_trips() {
        for days in [-1_000_000, -719_893, -1, 0, 1, 59, 60, 11_016, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn debezium_iso_forms() {
        assert_eq!(s(|o| write_iso_date(o, 19_723)), "\"2024-01-01Z\"");
        assert_eq!(s(|o| write_iso_time(o, 45_296_500_000)), "\"12:34:56.5Z\"");
        assert_eq!(s(|o| write_iso_time(o, 0)), "\"00:00:00Z\"");
        assert_eq!(
            s(|o| write_zoned_time(o, 3_600_000_000, -5 * 3600 - 1800)),
            "\"06:30:00Z\""
        );
        assert_eq!(
            s(|o| write_iso_timestamp(o, 1_704_067_200_000_001, None)),
            "\"2024-01-01T00:00:00.000001Z\""
        );
        assert_eq!(
            s(|o| write_iso_timestamp(o, 1_704_067_200_000_000, None)),
            "\"2024-01-01T00:00:00Z\""
        );
        assert_eq!(
            s(|o| write_iso_timestamp(o, 1_704_067_200_500_000, Some(6))),
            "\"2024-01-01T00:00:00.500000Z\""
        );
        assert_eq!(
            s(|o| write_iso_timestamp(o, 1_704_067_200_000_000, Some(3))),
            "\"2024-01-01T00:00:00.000Z\""
        );
        assert_eq!(
            s(|o| write_iso_timestamp(o, i64::MAX, Some(6))),
            "\"infinity\""
        );
    }

    #[test]
    fn debezium_interval_forms() {
        assert_eq!(
            s(|o| write_debezium_interval(o, 14, 3, 14_706_500_000)),
            "\"P1Y2M3DT4H5M6.5S\""
        );
        assert_eq!(
            s(|o| write_debezium_interval(o, 0, 0, 0)),
            "\"P0Y0M0DT0H0M0S\""
        );
        assert_eq!(
            s(|o| write_debezium_interval(o, -14, 3, -14_706_500_000)),
            "\"P-1Y-2M3DT-4H-5M-6.5S\""
        );
        // 1 month = 30.4375 days.
        assert_eq!(micro_duration(1, 0, 0), 2_629_800_000_000);
        assert_eq!(micro_duration(0, 1, 1_500_000), 86_401_500_000);
    }
}
