//! The structured type of a column: what a Kafka Connect schema for it, as Debezium writes it,
//! depends on (integer width, decimal precision and scale, time precision, bit length, enum
//! labels, a domain's base type).
//!
//! Sources fill it from their catalogs; [`ColumnType::from_type_name`] derives it from a type name
//! alone (PostgreSQL or MySQL spelling) for columns built without one.

use std::sync::Arc;

/// The default fractional-second precision of PostgreSQL `time`/`timestamp` without a modifier.
pub const DEFAULT_TIME_PRECISION: u32 = 6;

/// Digits after the point of PostgreSQL `money` (Debezium's `money.fraction.digits` default).
pub const DEFAULT_MONEY_FRACTION_DIGITS: u32 = 2;

/// The type of a column, independent of the source.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum ColumnType {
    /// Not known more precisely: written as a string.
    #[default]
    Other,
    /// Boolean.
    Bool,
    /// 16-bit integer (PostgreSQL `int2`, MySQL `tinyint`/`smallint`).
    Int16,
    /// 32-bit integer.
    Int32,
    /// 64-bit integer (also MySQL `bigint unsigned`, Debezium's `long` unsigned mode).
    Int64,
    /// Single-precision float.
    Float32,
    /// Double-precision float.
    Float64,
    /// An exact decimal; `precision`/`scale` as declared (`None`: variable scale).
    Decimal {
        /// Declared precision (total digits).
        precision: Option<u32>,
        /// Declared scale (digits after the point).
        scale: Option<u32>,
    },
    /// PostgreSQL `money`: a decimal with `scale` digits after the point.
    Money {
        /// Digits after the point.
        scale: u32,
    },
    /// Character data.
    Text,
    /// Binary data.
    Bytes,
    /// A JSON document.
    Json,
    /// An XML document.
    Xml,
    /// A UUID.
    Uuid,
    /// A date.
    Date,
    /// A time of day with `precision` fractional-second digits.
    Time {
        /// Fractional-second digits (0-6).
        precision: u32,
    },
    /// A time of day with a zone offset.
    TimeTz,
    /// A timestamp without zone with `precision` fractional-second digits.
    Timestamp {
        /// Fractional-second digits (0-6).
        precision: u32,
    },
    /// A point in time with `precision` fractional-second digits (`None`: as many as needed).
    TimestampTz {
        /// Fractional-second digits the ISO form is padded to.
        precision: Option<u32>,
    },
    /// A duration (PostgreSQL `interval`).
    Interval,
    /// A bit string of `length` bits (length 1 is a boolean, as Debezium writes `bit(1)`).
    Bits {
        /// Number of bits.
        length: u32,
    },
    /// One of the labels.
    Enum(Arc<[String]>),
    /// A set of the labels (MySQL `SET`).
    Set(Arc<[String]>),
    /// PostgreSQL `hstore`.
    Hstore,
    /// MySQL `YEAR`.
    Year,
    /// An array of the element type.
    Array(Arc<ColumnType>),
}

impl ColumnType {
    /// The type a type name implies (`int4`, `numeric(10,2)`, `timestamptz(3)`, `_int4`,
    /// `bigint unsigned`, `enum('a','b')`, `datetime(3)`, `bit(8)`, ...). Unknown names give
    /// [`ColumnType::Other`].
    pub fn from_type_name(type_name: &str) -> ColumnType {
        let t = type_name.trim();
        if let Some(elem) = t.strip_prefix('_').or_else(|| t.strip_suffix("[]")) {
            return ColumnType::Array(Arc::new(ColumnType::from_type_name(elem)));
        }
        let lower = t.to_ascii_lowercase();
        let unsigned = lower.contains(" unsigned");
        let (base, args) = match lower.find('(') {
            Some(open) => {
                let close = lower.rfind(')').unwrap_or(lower.len());
                (lower[..open].trim(), t.get(open + 1..close).unwrap_or(""))
            }
            None => (
                lower
                    .trim_end_matches(" zerofill")
                    .trim_end_matches(" unsigned")
                    .trim(),
                "",
            ),
        };
        let nums: Vec<u32> = args
            .split(',')
            .filter_map(|a| a.trim().parse().ok())
            .collect();
        let first = nums.first().copied();
        match base {
            "bool" | "boolean" => ColumnType::Bool,
            "tinyint" => ColumnType::Int16,
            "int2" | "smallint" | "smallserial" if !unsigned => ColumnType::Int16,
            "smallint" | "mediumint" => ColumnType::Int32,
            "int4" | "int" | "integer" | "serial" if !unsigned => ColumnType::Int32,
            "int" | "integer" | "int8" | "bigint" | "bigserial" | "oid" => ColumnType::Int64,
            "float4" | "real" | "float" => ColumnType::Float32,
            "float8" | "double" | "double precision" => ColumnType::Float64,
            "numeric" | "decimal" => ColumnType::Decimal {
                precision: first,
                scale: nums.get(1).copied().or(first.map(|_| 0)),
            },
            "money" => ColumnType::Money {
                scale: DEFAULT_MONEY_FRACTION_DIGITS,
            },
            "json" | "jsonb" => ColumnType::Json,
            "xml" => ColumnType::Xml,
            "uuid" => ColumnType::Uuid,
            "bytea" | "blob" | "tinyblob" | "mediumblob" | "longblob" | "binary" | "varbinary" => {
                ColumnType::Bytes
            }
            "date" => ColumnType::Date,
            "time" | "time without time zone" => ColumnType::Time {
                precision: first.unwrap_or(DEFAULT_TIME_PRECISION),
            },
            "timetz" | "time with time zone" => ColumnType::TimeTz,
            "timestamp" | "timestamp without time zone" => ColumnType::Timestamp {
                precision: first.unwrap_or(DEFAULT_TIME_PRECISION),
            },
            "datetime" => ColumnType::Timestamp {
                precision: first.unwrap_or(0),
            },
            "timestamptz" | "timestamp with time zone" => ColumnType::TimestampTz {
                precision: Some(first.unwrap_or(DEFAULT_TIME_PRECISION)),
            },
            "interval" => ColumnType::Interval,
            "bit" | "varbit" | "bit varying" => ColumnType::Bits {
                length: first.unwrap_or(1),
            },
            "enum" => ColumnType::Enum(labels(args).into()),
            "set" => ColumnType::Set(labels(args).into()),
            "hstore" => ColumnType::Hstore,
            "year" => ColumnType::Year,
            "text" | "varchar" | "char" | "character" | "character varying" | "bpchar" | "name"
            | "tinytext" | "mediumtext" | "longtext" | "citext" => ColumnType::Text,
            _ => ColumnType::Other,
        }
    }
}

/// `'a','it''s'` → `["a", "it's"]`.
fn labels(args: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    let mut chars = args.chars().peekable();
    while let Some(c) = chars.next() {
        match (in_quote, c) {
            (false, '\'') => in_quote = true,
            (true, '\'') if chars.peek() == Some(&'\'') => {
                cur.push('\'');
                chars.next();
            }
            (true, '\'') => {
                in_quote = false;
                out.push(std::mem::take(&mut cur));
            }
            (true, c) => cur.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_give_their_types() {
        let t = ColumnType::from_type_name;
        assert_eq!(t("int4"), ColumnType::Int32);
        assert_eq!(t("int unsigned"), ColumnType::Int64);
        assert_eq!(t("smallint unsigned"), ColumnType::Int32);
        assert_eq!(t("tinyint unsigned"), ColumnType::Int16);
        assert_eq!(t("bigint unsigned"), ColumnType::Int64);
        assert_eq!(
            t("numeric(10,2)"),
            ColumnType::Decimal {
                precision: Some(10),
                scale: Some(2)
            }
        );
        assert_eq!(
            t("numeric"),
            ColumnType::Decimal {
                precision: None,
                scale: None
            }
        );
        assert_eq!(t("timestamp(3)"), ColumnType::Timestamp { precision: 3 });
        assert_eq!(t("time"), ColumnType::Time { precision: 6 });
        assert_eq!(t("datetime"), ColumnType::Timestamp { precision: 0 });
        assert_eq!(
            t("timestamptz"),
            ColumnType::TimestampTz { precision: Some(6) }
        );
        assert_eq!(t("bit(3)"), ColumnType::Bits { length: 3 });
        assert_eq!(
            t("enum('a','it''s')"),
            ColumnType::Enum(vec!["a".to_string(), "it's".to_string()].into())
        );
        assert_eq!(t("_int4"), ColumnType::Array(Arc::new(ColumnType::Int32)));
        assert_eq!(t("mystery"), ColumnType::Other);
    }
}
