//! Column definitions from `TABLE_MAP` column types and metadata, and whether a tracked
//! definition can decode a binlog column.

use connector_core::{Error, ErrorKind, Result};

use crate::binlog::{column_type as ct, string_real_type};
use crate::schema::{Charset, ColumnDef, Kind};

pub(crate) fn geometry_name(code: u64) -> &'static str {
    match code {
        1 => "point",
        2 => "linestring",
        3 => "polygon",
        4 => "multipoint",
        5 => "multilinestring",
        6 => "multipolygon",
        7 => "geometrycollection",
        _ => "geometry",
    }
}

/// A column definition from the binlog type and metadata alone (names and charsets are added from
/// the optional metadata).
pub(crate) fn binlog_column_def(rt: u8, meta: u16, name: String) -> ColumnDef {
    let kind = match rt {
        ct::TINY => Kind::TinyInt,
        ct::SHORT => Kind::SmallInt,
        ct::INT24 => Kind::MediumInt,
        ct::LONG => Kind::Int,
        ct::LONGLONG => Kind::BigInt,
        ct::FLOAT => Kind::Float,
        ct::DOUBLE => Kind::Double,
        ct::NEWDECIMAL | ct::DECIMAL => Kind::Decimal,
        ct::BIT => Kind::Bit,
        ct::DATE | ct::NEWDATE => Kind::Date,
        ct::TIME | ct::TIME2 => Kind::Time,
        ct::DATETIME | ct::DATETIME2 => Kind::DateTime,
        ct::TIMESTAMP | ct::TIMESTAMP2 => Kind::Timestamp,
        ct::YEAR => Kind::Year,
        ct::STRING => Kind::Char,
        ct::VARCHAR | ct::VAR_STRING => Kind::VarChar,
        ct::BLOB | ct::TINY_BLOB | ct::MEDIUM_BLOB | ct::LONG_BLOB => match meta {
            1 => Kind::TinyText,
            2 => Kind::Text,
            3 => Kind::MediumText,
            _ => Kind::LongText,
        },
        ct::ENUM => Kind::Enum,
        ct::SET => Kind::Set,
        ct::JSON => Kind::Json,
        ct::GEOMETRY => Kind::Geometry,
        ct::VECTOR => Kind::Vector,
        _ => Kind::Unknown,
    };
    let mut d = ColumnDef::new(name, kind);
    match kind {
        Kind::Decimal => {
            d.length = u32::from(meta >> 8);
            d.scale = u32::from(meta & 0xff);
        }
        Kind::Bit => d.length = u32::from(meta >> 8) + 8 * u32::from(meta & 0xff),
        Kind::Time | Kind::DateTime | Kind::Timestamp => {
            if matches!(rt, ct::TIME2 | ct::DATETIME2 | ct::TIMESTAMP2) {
                d.scale = u32::from(meta);
            }
        }
        Kind::Char
        | Kind::VarChar
        | Kind::TinyText
        | Kind::Text
        | Kind::MediumText
        | Kind::LongText => d.charset = Some(Charset::utf8mb4()),
        Kind::Vector => d.length = u32::from(meta) / 4,
        _ => {}
    }
    d
}

pub(crate) fn fill_string_length(def: &mut ColumnDef, rt: u8, meta: u16) {
    let max_len = u32::from(def.charset.as_ref().map_or(1, |c| c.max_len.max(1)));
    match rt {
        ct::VARCHAR | ct::VAR_STRING => def.length = u32::from(meta) / max_len,
        ct::STRING => def.length = u32::from(string_real_type(meta).1) / max_len,
        _ => {}
    }
}

/// Whether a tracked column can decode a binlog column of type `rt`.
pub(crate) fn check_compatible(c: &ColumnDef, rt: u8) -> Result<()> {
    let ok = match c.kind {
        Kind::TinyInt => rt == ct::TINY,
        Kind::SmallInt => rt == ct::SHORT,
        Kind::MediumInt => rt == ct::INT24,
        Kind::Int => rt == ct::LONG,
        Kind::BigInt => rt == ct::LONGLONG,
        Kind::Float => rt == ct::FLOAT,
        Kind::Double => rt == ct::DOUBLE,
        Kind::Decimal => rt == ct::NEWDECIMAL,
        Kind::Bit => rt == ct::BIT,
        Kind::Date => matches!(rt, ct::DATE | ct::NEWDATE),
        Kind::Time => matches!(rt, ct::TIME | ct::TIME2),
        Kind::DateTime => matches!(rt, ct::DATETIME | ct::DATETIME2),
        Kind::Timestamp => matches!(rt, ct::TIMESTAMP | ct::TIMESTAMP2),
        Kind::Year => rt == ct::YEAR,
        Kind::Char | Kind::VarChar => matches!(rt, ct::STRING | ct::VARCHAR | ct::VAR_STRING),
        Kind::TinyText | Kind::Text | Kind::MediumText | Kind::LongText => {
            matches!(
                rt,
                ct::BLOB | ct::TINY_BLOB | ct::MEDIUM_BLOB | ct::LONG_BLOB
            )
        }
        Kind::Enum => rt == ct::ENUM,
        Kind::Set => rt == ct::SET,
        Kind::Json => matches!(rt, ct::JSON | ct::BLOB),
        Kind::Geometry => matches!(rt, ct::GEOMETRY | ct::BLOB),
        Kind::Vector => rt == ct::VECTOR,
        // MariaDB's INET4, INET6 and UUID are BINARY(4)/(16) in the binlog.
        Kind::Inet4 | Kind::Inet6 | Kind::Uuid => rt == ct::STRING,
        Kind::Unknown => true,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Data,
            format!(
                "the tracked type {} does not match binlog column type {rt}",
                c.type_name()
            ),
        )
        .with_hint("set binlog_row_metadata=FULL on the server; the schema tracker is out of date"))
    }
}
