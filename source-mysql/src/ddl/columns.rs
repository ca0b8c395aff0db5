//! Column type parsing: a column's type and attributes (`int(10) unsigned`, `varchar(20)
//! character set latin1 not null`, `enum('a','b')`), from `information_schema` or a DDL column
//! definition, and a table's default charset option.

use std::sync::Arc;

use super::lexer::{tokenize, Tok, P};
use super::Place;
use crate::schema::{Charset, ColumnDef, Kind};

/// Parse a column type (`int(10) unsigned`, `varchar(20) character set latin1`,
/// `enum('a','b')`) from `information_schema.COLUMNS.COLUMN_TYPE` or a DDL column definition.
pub fn parse_column_type(column_type: &str) -> ColumnDef {
    let toks = tokenize(column_type);
    let mut p = P { t: &toks, i: 0 };
    let mut c = ColumnDef::new("", Kind::Unknown);
    parse_type(&mut p, &mut c);
    parse_attributes(&mut p, &mut c, None);
    c
}

fn parse_type(p: &mut P<'_>, c: &mut ColumnDef) {
    let Some(Tok::Ident(word, _)) = p.next() else {
        return;
    };
    let w = word.to_ascii_lowercase();
    let mut charset: Option<Charset> = Some(Charset::utf8mb4());
    let mut binary = false;
    c.kind = match w.as_str() {
        "tinyint" | "int1" => Kind::TinyInt,
        "bool" | "boolean" => {
            c.length = 1;
            Kind::TinyInt
        }
        "smallint" | "int2" => Kind::SmallInt,
        "mediumint" | "int3" | "middleint" => Kind::MediumInt,
        "int" | "integer" | "int4" => Kind::Int,
        "bigint" | "int8" => Kind::BigInt,
        "serial" => {
            c.unsigned = true;
            c.nullable = false;
            Kind::BigInt
        }
        "float" | "float4" => Kind::Float,
        "double" | "real" | "float8" => {
            p.kw("precision");
            Kind::Double
        }
        "decimal" | "dec" | "numeric" | "fixed" => {
            c.length = 10;
            Kind::Decimal
        }
        "bit" => {
            c.length = 1;
            Kind::Bit
        }
        "date" => Kind::Date,
        "time" => Kind::Time,
        "datetime" => Kind::DateTime,
        "timestamp" => Kind::Timestamp,
        "year" => Kind::Year,
        "char" | "character" => {
            c.length = 1;
            if p.kw("varying") {
                Kind::VarChar
            } else {
                Kind::Char
            }
        }
        "nchar" => {
            charset = Some(Charset::named("utf8mb3"));
            c.length = 1;
            if p.kw("varchar") || p.kw("varying") {
                Kind::VarChar
            } else {
                Kind::Char
            }
        }
        "national" => {
            charset = Some(Charset::named("utf8mb3"));
            let k = if p.kw("varchar") {
                Kind::VarChar
            } else {
                p.kw("char");
                p.kw("character");
                if p.kw("varying") {
                    Kind::VarChar
                } else {
                    Kind::Char
                }
            };
            c.length = 1;
            k
        }
        "nvarchar" => {
            charset = Some(Charset::named("utf8mb3"));
            Kind::VarChar
        }
        "varchar" | "varchar2" => Kind::VarChar,
        "binary" => {
            binary = true;
            c.length = 1;
            Kind::Char
        }
        "varbinary" => {
            binary = true;
            Kind::VarChar
        }
        "tinytext" => Kind::TinyText,
        "text" => Kind::Text,
        "mediumtext" => Kind::MediumText,
        "longtext" | "long" => {
            p.kw("varchar");
            Kind::LongText
        }
        "json" => {
            // MariaDB's JSON is LONGTEXT; the binlog type tells MySQL's binary JSON apart.
            Kind::Json
        }
        "tinyblob" => {
            binary = true;
            Kind::TinyText
        }
        "blob" => {
            binary = true;
            Kind::Text
        }
        "mediumblob" => {
            binary = true;
            Kind::MediumText
        }
        "longblob" => {
            binary = true;
            Kind::LongText
        }
        "enum" => Kind::Enum,
        "set" => Kind::Set,
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" | "geomcollection" => {
            c.geometry = Some(w.clone().into());
            charset = None;
            Kind::Geometry
        }
        "vector" => Kind::Vector,
        "inet4" => Kind::Inet4,
        "inet6" => Kind::Inet6,
        "uuid" => Kind::Uuid,
        _ => Kind::Unknown,
    };
    if !matches!(
        c.kind,
        Kind::Char
            | Kind::VarChar
            | Kind::TinyText
            | Kind::Text
            | Kind::MediumText
            | Kind::LongText
            | Kind::Enum
            | Kind::Set
            | Kind::Json
    ) {
        charset = None;
    }
    if binary {
        charset = Some(Charset::binary());
    }
    c.charset = charset;
    if p.peek().is_some_and(|t| t.is_punct('(')) {
        p.i += 1;
        if matches!(c.kind, Kind::Enum | Kind::Set) {
            let mut values = Vec::new();
            while let Some(t) = p.next() {
                match t {
                    Tok::Str(s) => values.push(s.clone()),
                    Tok::Punct(')') => break,
                    _ => {}
                }
            }
            c.values = Arc::from(values);
        } else {
            let a = match p.next() {
                Some(Tok::Num(n)) => n.parse::<u32>().unwrap_or(0),
                _ => 0,
            };
            let b = if p.punct(',') {
                match p.next() {
                    Some(Tok::Num(n)) => n.parse::<u32>().ok(),
                    _ => None,
                }
            } else {
                None
            };
            p.punct(')');
            match c.kind {
                Kind::Time | Kind::DateTime | Kind::Timestamp => c.scale = a,
                Kind::Decimal => {
                    c.length = a;
                    c.scale = b.unwrap_or(0);
                }
                Kind::Char | Kind::VarChar | Kind::Bit | Kind::Vector => c.length = a,
                Kind::TinyInt if a == 1 => c.length = 1,
                _ => {}
            }
        }
    }
    if matches!(c.kind, Kind::Float) {
        // FLOAT(p) with p > 24 is a DOUBLE.
        if c.length > 24 {
            c.kind = Kind::Double;
        }
    }
    // Display widths are not part of the canonical type: keep `length` only where it matters.
    if matches!(
        c.kind,
        Kind::TinyInt | Kind::SmallInt | Kind::MediumInt | Kind::Int | Kind::BigInt
    ) {
        c.length = 0;
    }
}

/// Parse column attributes up to the end of the definition; returns the `FIRST`/`AFTER` place.
fn parse_attributes(
    p: &mut P<'_>,
    c: &mut ColumnDef,
    table_charset: Option<&Charset>,
) -> Option<Place> {
    let mut place = None;
    let mut explicit_charset = false;
    let char_kind = c.charset.as_ref().is_some_and(|cs| !cs.is_binary());
    let mut depth = 0i32;
    while let Some(t) = p.peek() {
        if depth == 0 && (t.is_punct(',') || t.is_punct(')')) {
            break;
        }
        if t.is_punct('(') {
            depth += 1;
            p.i += 1;
            continue;
        }
        if t.is_punct(')') {
            depth -= 1;
            p.i += 1;
            continue;
        }
        if depth > 0 {
            p.i += 1;
            continue;
        }
        if p.kw("unsigned") {
            c.unsigned = true;
        } else if p.kw("signed") {
            c.unsigned = false;
        } else if p.kw("zerofill") {
            c.unsigned = true;
        } else if p.kws(&["not", "null"]) {
            c.nullable = false;
        } else if p.kw("null") {
            c.nullable = true;
        } else if p.kws(&["primary", "key"]) || p.kws(&["primary"]) {
            c.key = true;
            c.nullable = false;
        } else if p.kws(&["character", "set"]) || p.kw("charset") || p.kw("charset") {
            p.punct('=');
            if let Some(cs) = p.ident() {
                if char_kind || c.kind == Kind::Json {
                    c.charset = Some(Charset::named(&cs));
                }
                explicit_charset = true;
            }
        } else if p.kw("collate") {
            p.punct('=');
            if let Some(coll) = p.ident() {
                if !explicit_charset && char_kind {
                    let cs = coll.split('_').next().unwrap_or("utf8mb4");
                    c.charset = Some(Charset::named(cs));
                    explicit_charset = true;
                }
            }
        } else if p.kw("default") || p.kw("comment") || p.kw("on") {
            // DEFAULT expr / COMMENT 'x' / ON UPDATE CURRENT_TIMESTAMP: skip one value
            p.kw("update");
            if p.peek().is_some_and(|t| t.is_punct('(')) {
                let mut d = 0;
                while let Some(t) = p.next() {
                    if t.is_punct('(') {
                        d += 1;
                    } else if t.is_punct(')') {
                        d -= 1;
                        if d == 0 {
                            break;
                        }
                    }
                }
            } else {
                p.punct('-');
                p.next();
                if p.peek().is_some_and(|t| t.is_punct('(')) {
                    let mut d = 0;
                    while let Some(t) = p.next() {
                        if t.is_punct('(') {
                            d += 1;
                        } else if t.is_punct(')') {
                            d -= 1;
                            if d == 0 {
                                break;
                            }
                        }
                    }
                }
            }
        } else if p.kw("first") {
            place = Some(Place::First);
        } else if p.kw("after") {
            place = p.ident().map(Place::After);
        } else {
            p.i += 1;
        }
    }
    if char_kind && !explicit_charset {
        if let Some(cs) = table_charset {
            if c.kind != Kind::Json {
                c.charset = Some(cs.clone());
            }
        }
    }
    place
}

pub(super) fn column_def(
    p: &mut P<'_>,
    table_charset: Option<&Charset>,
) -> Option<(ColumnDef, Option<Place>)> {
    let name = p.ident()?;
    let mut c = ColumnDef::new("", Kind::Unknown);
    parse_type(p, &mut c);
    c.name = name.into();
    let place = parse_attributes(p, &mut c, table_charset);
    Some((c, place))
}

pub(super) fn table_option_charset(p: &mut P<'_>) -> Option<Charset> {
    let mut cs = None;
    while let Some(t) = p.peek() {
        if t.is_punct(';') {
            break;
        }
        if p.kws(&["character", "set"]) || p.kw("charset") {
            p.punct('=');
            cs = p.ident().map(|s| Charset::named(&s));
        } else if p.kw("collate") {
            p.punct('=');
            if let Some(c) = p.ident() {
                if cs.is_none() {
                    cs = Some(Charset::named(c.split('_').next().unwrap_or("utf8mb4")));
                }
            }
        } else {
            p.i += 1;
        }
    }
    cs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_types_from_information_schema() {
        let c = parse_column_type("bigint(20) unsigned zerofill");
        assert_eq!(c.type_name(), "bigint unsigned");
        let c = parse_column_type("enum('x','y')");
        assert_eq!(c.values.len(), 2);
        assert_eq!(
            parse_column_type("varbinary(16)").type_name(),
            "varbinary(16)"
        );
        assert_eq!(parse_column_type("bit(1)").type_name(), "bit(1)");
        assert_eq!(parse_column_type("time(6)").type_name(), "time(6)");
        assert_eq!(parse_column_type("point").type_name(), "point");
        for t in ["inet4", "inet6", "uuid"] {
            let c = parse_column_type(t);
            assert_eq!((c.type_name().as_str(), c.charset.is_none()), (t, true));
        }
    }
}
