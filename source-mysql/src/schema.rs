//! The column type model shared by the snapshot (from `information_schema`), the schema tracker
//! (from DDL) and the stream (from `TABLE_MAP` events), with canonical type names, and charsets.

use std::collections::HashMap;
use std::sync::Arc;

use connector_core::{Column, ColumnType, TableId, TableSchema};

/// The SQL type of a column, as far as decoding and naming need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    /// TINYINT (and BOOL, which is TINYINT(1)).
    TinyInt,
    /// SMALLINT.
    SmallInt,
    /// MEDIUMINT.
    MediumInt,
    /// INT.
    Int,
    /// BIGINT.
    BigInt,
    /// FLOAT.
    Float,
    /// DOUBLE.
    Double,
    /// DECIMAL(p,s).
    Decimal,
    /// BIT(n).
    Bit,
    /// DATE.
    Date,
    /// TIME(fsp).
    Time,
    /// DATETIME(fsp).
    DateTime,
    /// TIMESTAMP(fsp).
    Timestamp,
    /// YEAR.
    Year,
    /// CHAR(n) / BINARY(n) (binary charset).
    Char,
    /// VARCHAR(n) / VARBINARY(n).
    VarChar,
    /// TINYTEXT / TINYBLOB.
    TinyText,
    /// TEXT / BLOB.
    Text,
    /// MEDIUMTEXT / MEDIUMBLOB.
    MediumText,
    /// LONGTEXT / LONGBLOB.
    LongText,
    /// ENUM.
    Enum,
    /// SET.
    Set,
    /// JSON (MySQL's binary JSON).
    Json,
    /// GEOMETRY and its subtypes.
    Geometry,
    /// MySQL 9 VECTOR.
    Vector,
    /// MariaDB INET4 (10.10+): 4 bytes, as text `192.168.0.1`.
    Inet4,
    /// MariaDB INET6 (10.5+): 16 bytes, as text `2001:db8::1`.
    Inet6,
    /// MariaDB UUID (10.7+): 16 bytes, as text `123e4567-e89b-12d3-a456-426614174000`.
    Uuid,
    /// A type this source does not know; decoded as bytes when its binlog type allows.
    Unknown,
}

/// A character set, by the name MySQL uses.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Charset {
    /// `utf8mb4`, `latin1`, `binary`, ...
    pub name: Arc<str>,
    /// Most bytes per character.
    pub max_len: u8,
    /// The decoding fast path.
    pub class: CharsetClass,
}

/// How text of a charset is decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CharsetClass {
    /// UTF-8 (utf8mb3, utf8mb4) and ASCII: validated as is.
    Utf8,
    /// Binary: bytes, not text.
    Binary,
    /// Anything else: converted with `encoding_rs`.
    Other,
}

impl Charset {
    /// The `binary` charset (BINARY, VARBINARY, BLOB).
    pub fn binary() -> Self {
        Charset::named("binary")
    }

    /// `utf8mb4`.
    pub fn utf8mb4() -> Self {
        Charset::named("utf8mb4")
    }

    /// Whether this is the binary charset.
    pub fn is_binary(&self) -> bool {
        self.class == CharsetClass::Binary
    }

    /// A charset from its name.
    pub fn named(name: &str) -> Self {
        let name = name.to_ascii_lowercase();
        let name = if name == "utf8" {
            "utf8mb3".into()
        } else {
            name
        };
        let max_len = match name.as_str() {
            "utf8mb4" | "utf16" | "utf16le" | "utf32" | "gb18030" => 4,
            "utf8mb3" | "ujis" | "eucjpms" => 3,
            "ucs2" | "gbk" | "gb2312" | "big5" | "sjis" | "cp932" | "euckr" => 2,
            _ => 1,
        };
        let class = match name.as_str() {
            "utf8mb4" | "utf8mb3" | "ascii" => CharsetClass::Utf8,
            "binary" => CharsetClass::Binary,
            _ => CharsetClass::Other,
        };
        Charset {
            name: name.into(),
            max_len,
            class,
        }
    }
}

/// One column's type and attributes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ColumnDef {
    /// Name.
    pub name: Arc<str>,
    /// Type.
    pub kind: Kind,
    /// UNSIGNED (integers, decimals, floats).
    pub unsigned: bool,
    /// Characters (CHAR/VARCHAR), bits (BIT), precision (DECIMAL).
    pub length: u32,
    /// Scale (DECIMAL) or fractional-second precision (TIME/DATETIME/TIMESTAMP).
    pub scale: u32,
    /// Charset of character columns; `None` for non-character types.
    pub charset: Option<Charset>,
    /// ENUM/SET labels, in order.
    pub values: Arc<[String]>,
    /// Geometry subtype name (`point`, `polygon`, ...), or `geometry`.
    pub geometry: Option<Arc<str>>,
    /// NULL allowed.
    pub nullable: bool,
    /// Part of the primary key.
    pub key: bool,
    /// An implicit `row_start`/`row_end` column of a MariaDB system-versioned table: not listed
    /// by `information_schema` nor `SELECT *`, but in every row image, after the other columns.
    pub hidden: bool,
}

impl ColumnDef {
    /// A column of `kind` with nothing else set.
    pub fn new(name: impl Into<Arc<str>>, kind: Kind) -> Self {
        ColumnDef {
            name: name.into(),
            kind,
            unsigned: false,
            length: 0,
            scale: 0,
            charset: None,
            values: Arc::from(Vec::new()),
            geometry: None,
            nullable: true,
            key: false,
            hidden: false,
        }
    }

    /// The implicit `row_start` and `row_end` columns MariaDB adds to a table created `WITH
    /// SYSTEM VERSIONING` without its own period columns: `timestamp(6) NOT NULL`, hidden.
    /// `row_end` is part of the primary key when the table has one (`keyed`), as the server
    /// makes it (history rows share the other key columns).
    pub fn system_versioning_columns(keyed: bool) -> [ColumnDef; 2] {
        ["row_start", "row_end"].map(|name| {
            let mut c = ColumnDef::new(name, Kind::Timestamp);
            c.scale = 6;
            c.nullable = false;
            c.hidden = true;
            c.key = keyed && name == "row_end";
            c
        })
    }

    /// Whether values are bytes rather than text (binary charset strings, BLOBs).
    pub fn is_binary(&self) -> bool {
        self.charset.as_ref().is_none_or(Charset::is_binary)
    }

    /// The canonical type name (`int unsigned`, `varchar(20)`, `decimal(10,2)`, `datetime(3)`,
    /// `enum('a','b')`, `longblob`, ...). Display widths are not part of it.
    pub fn type_name(&self) -> String {
        let unsigned = if self.unsigned { " unsigned" } else { "" };
        let bin = self.is_binary();
        let fsp = |base: &str| {
            if self.scale > 0 {
                format!("{base}({})", self.scale)
            } else {
                base.to_string()
            }
        };
        let labels = || {
            self.values
                .iter()
                .map(|v| format!("'{}'", v.replace('\'', "''")))
                .collect::<Vec<_>>()
                .join(",")
        };
        match self.kind {
            Kind::TinyInt => format!("tinyint{unsigned}"),
            Kind::SmallInt => format!("smallint{unsigned}"),
            Kind::MediumInt => format!("mediumint{unsigned}"),
            Kind::Int => format!("int{unsigned}"),
            Kind::BigInt => format!("bigint{unsigned}"),
            Kind::Float => format!("float{unsigned}"),
            Kind::Double => format!("double{unsigned}"),
            Kind::Decimal => format!("decimal({},{}){unsigned}", self.length, self.scale),
            Kind::Bit => format!("bit({})", self.length),
            Kind::Date => "date".into(),
            Kind::Time => fsp("time"),
            Kind::DateTime => fsp("datetime"),
            Kind::Timestamp => fsp("timestamp"),
            Kind::Year => "year".into(),
            Kind::Char if bin => format!("binary({})", self.length),
            Kind::Char => format!("char({})", self.length),
            Kind::VarChar if bin => format!("varbinary({})", self.length),
            Kind::VarChar => format!("varchar({})", self.length),
            Kind::TinyText => if bin { "tinyblob" } else { "tinytext" }.into(),
            Kind::Text => if bin { "blob" } else { "text" }.into(),
            Kind::MediumText => if bin { "mediumblob" } else { "mediumtext" }.into(),
            Kind::LongText => if bin { "longblob" } else { "longtext" }.into(),
            Kind::Enum => format!("enum({})", labels()),
            Kind::Set => format!("set({})", labels()),
            Kind::Json => "json".into(),
            Kind::Geometry => self.geometry.as_deref().unwrap_or("geometry").to_string(),
            Kind::Vector => format!("vector({})", self.length),
            Kind::Inet4 => "inet4".into(),
            Kind::Inet6 => "inet6".into(),
            Kind::Uuid => "uuid".into(),
            Kind::Unknown => "unknown".into(),
        }
    }

    /// The core [`Column`].
    pub fn to_column(&self) -> Column {
        Column {
            name: Arc::clone(&self.name),
            type_name: self.type_name().into(),
            nullable: self.nullable,
            key: self.key,
            ty: self.column_type(),
        }
    }

    /// The structured type, as Debezium's MySQL connector maps it (unsigned integers widened,
    /// `BIGINT UNSIGNED` as `int64`, `bit(1)` a boolean, `TIMESTAMP` zoned, `ENUM`/`SET` with
    /// their labels).
    pub fn column_type(&self) -> ColumnType {
        let labels = || -> Arc<[String]> { Arc::from(self.values.to_vec()) };
        match self.kind {
            Kind::TinyInt => ColumnType::Int16,
            Kind::SmallInt if self.unsigned => ColumnType::Int32,
            Kind::SmallInt => ColumnType::Int16,
            Kind::MediumInt => ColumnType::Int32,
            Kind::Int if self.unsigned => ColumnType::Int64,
            Kind::Int => ColumnType::Int32,
            Kind::BigInt => ColumnType::Int64,
            Kind::Float => ColumnType::Float32,
            Kind::Double => ColumnType::Float64,
            Kind::Decimal => ColumnType::Decimal {
                precision: Some(self.length),
                scale: Some(self.scale),
            },
            Kind::Bit => ColumnType::Bits {
                length: self.length,
            },
            Kind::Date => ColumnType::Date,
            Kind::Time => ColumnType::Time {
                precision: self.scale,
            },
            Kind::DateTime => ColumnType::Timestamp {
                precision: self.scale,
            },
            Kind::Timestamp => ColumnType::TimestampTz {
                precision: (self.scale > 0).then_some(self.scale),
            },
            Kind::Year => ColumnType::Year,
            Kind::Char
            | Kind::VarChar
            | Kind::TinyText
            | Kind::Text
            | Kind::MediumText
            | Kind::LongText
                if self.is_binary() =>
            {
                ColumnType::Bytes
            }
            Kind::Char
            | Kind::VarChar
            | Kind::TinyText
            | Kind::Text
            | Kind::MediumText
            | Kind::LongText
            | Kind::Inet4
            | Kind::Inet6
            | Kind::Uuid => ColumnType::Text,
            Kind::Enum => ColumnType::Enum(labels()),
            Kind::Set => ColumnType::Set(labels()),
            Kind::Json => ColumnType::Json,
            Kind::Geometry | Kind::Vector | Kind::Unknown => ColumnType::Other,
        }
    }
}

/// A table's columns in order.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableDef {
    /// Database.
    pub schema: Arc<str>,
    /// Table.
    pub table: Arc<str>,
    /// Columns in table order.
    pub columns: Vec<ColumnDef>,
}

impl TableDef {
    /// The core [`TableSchema`] (database = schema = the MySQL database).
    pub fn to_schema(&self) -> TableSchema {
        TableSchema::new(
            TableId::new(
                Arc::clone(&self.schema),
                Arc::clone(&self.schema),
                Arc::clone(&self.table),
            ),
            self.columns.iter().map(ColumnDef::to_column).collect(),
        )
    }

    /// Index of a column by name (case-insensitive, as MySQL column names are).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }
}

/// Collation ids to charsets: a built-in table of common collations, extended from the server's
/// `information_schema.COLLATIONS` at start.
#[derive(Clone, Debug)]
pub struct Collations {
    by_id: HashMap<u16, Charset>,
}

impl Default for Collations {
    fn default() -> Self {
        let mut by_id = HashMap::new();
        // (id, charset): ids shared by MySQL and MariaDB.
        for (id, cs) in [
            (8u16, "latin1"),
            (5, "latin1"),
            (15, "latin1"),
            (31, "latin1"),
            (47, "latin1"),
            (48, "latin1"),
            (49, "latin1"),
            (94, "latin1"),
            (11, "ascii"),
            (65, "ascii"),
            (33, "utf8mb3"),
            (83, "utf8mb3"),
            (192, "utf8mb3"),
            (45, "utf8mb4"),
            (46, "utf8mb4"),
            (224, "utf8mb4"),
            (255, "utf8mb4"),
            (63, "binary"),
            (35, "ucs2"),
            (54, "utf16"),
            (56, "utf16le"),
            (60, "utf32"),
            (28, "gbk"),
            (24, "gb2312"),
            (1, "big5"),
            (13, "sjis"),
            (95, "cp932"),
            (12, "ujis"),
            (19, "euckr"),
            (9, "latin2"),
            (7, "koi8r"),
            (22, "koi8u"),
            (25, "greek"),
            (16, "hebrew"),
            (30, "latin5"),
            (41, "latin7"),
            (26, "cp1250"),
            (14, "cp1251"),
            (51, "cp1251"),
            (57, "cp1256"),
            (59, "cp1257"),
            (248, "gb18030"),
        ] {
            by_id.insert(id, Charset::named(cs));
        }
        // MySQL 8 utf8mb4_0900_* collations (255-323) and MariaDB's uca1400 ones are utf8mb4 too
        // for the ids not listed; the server table below overrides.
        for id in 256..=323u16 {
            by_id.insert(id, Charset::utf8mb4());
        }
        Collations { by_id }
    }
}

impl Collations {
    /// Add (or replace) a collation.
    pub fn insert(&mut self, id: u16, charset: &str) {
        self.by_id.insert(id, Charset::named(charset));
    }

    /// The charset of a collation id (utf8mb4 when unknown, as it is the servers' default).
    pub fn charset(&self, id: u16) -> Charset {
        self.by_id
            .get(&id)
            .cloned()
            .unwrap_or_else(Charset::utf8mb4)
    }
}

/// Decode text in `charset` to UTF-8. Unknown charsets and invalid bytes are replaced lossily.
pub fn decode_text(bytes: &[u8], charset: &Charset) -> String {
    if charset.class == CharsetClass::Utf8 {
        return match std::str::from_utf8(bytes) {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(bytes).into_owned(),
        };
    }
    match &*charset.name {
        "utf8mb4" | "utf8mb3" | "ascii" => match std::str::from_utf8(bytes) {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(bytes).into_owned(),
        },
        "latin1" => {
            // MySQL's latin1 is Windows-1252; plain ASCII is the fast path.
            if bytes.is_ascii() {
                // SAFETY-free: ASCII is valid UTF-8.
                String::from_utf8_lossy(bytes).into_owned()
            } else {
                encoding_rs::WINDOWS_1252
                    .decode_without_bom_handling(bytes)
                    .0
                    .into_owned()
            }
        }
        "utf32" => bytes
            .chunks(4)
            .map(|c| {
                let v = c.iter().fold(0u32, |a, b| (a << 8) | u32::from(*b));
                char::from_u32(v).unwrap_or('\u{fffd}')
            })
            .collect(),
        name => {
            let enc = match name {
                "latin2" => encoding_rs::ISO_8859_2,
                "latin5" => encoding_rs::WINDOWS_1254,
                "latin7" => encoding_rs::ISO_8859_13,
                "greek" => encoding_rs::ISO_8859_7,
                "hebrew" => encoding_rs::ISO_8859_8,
                "koi8r" => encoding_rs::KOI8_R,
                "koi8u" => encoding_rs::KOI8_U,
                "cp1250" => encoding_rs::WINDOWS_1250,
                "cp1251" => encoding_rs::WINDOWS_1251,
                "cp1256" => encoding_rs::WINDOWS_1256,
                "cp1257" => encoding_rs::WINDOWS_1257,
                "cp866" => encoding_rs::IBM866,
                "tis620" => encoding_rs::WINDOWS_874,
                "macroman" => encoding_rs::MACINTOSH,
                "gbk" | "gb2312" => encoding_rs::GBK,
                "gb18030" => encoding_rs::GB18030,
                "big5" => encoding_rs::BIG5,
                "sjis" | "cp932" => encoding_rs::SHIFT_JIS,
                "ujis" | "eucjpms" => encoding_rs::EUC_JP,
                "euckr" => encoding_rs::EUC_KR,
                "ucs2" | "utf16" => encoding_rs::UTF_16BE,
                "utf16le" => encoding_rs::UTF_16LE,
                _ => return String::from_utf8_lossy(bytes).into_owned(),
            };
            enc.decode_without_bom_handling(bytes).0.into_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_type_names() {
        let mut c = ColumnDef::new("a", Kind::Int);
        c.unsigned = true;
        assert_eq!(c.type_name(), "int unsigned");
        let mut v = ColumnDef::new("v", Kind::VarChar);
        v.length = 20;
        v.charset = Some(Charset::utf8mb4());
        assert_eq!(v.type_name(), "varchar(20)");
        v.charset = Some(Charset::binary());
        assert_eq!(v.type_name(), "varbinary(20)");
        let mut d = ColumnDef::new("d", Kind::Decimal);
        d.length = 10;
        d.scale = 2;
        assert_eq!(d.type_name(), "decimal(10,2)");
        let mut e = ColumnDef::new("e", Kind::Enum);
        e.values = Arc::from(vec!["a".to_string(), "it's".to_string()]);
        assert_eq!(e.type_name(), "enum('a','it''s')");
        let mut t = ColumnDef::new("t", Kind::DateTime);
        t.scale = 3;
        assert_eq!(t.type_name(), "datetime(3)");
    }

    #[test]
    fn charsets_decode_to_utf8() {
        assert_eq!(
            decode_text(b"caf\xe9 \x80", &Charset::named("latin1")),
            "café €"
        );
        assert_eq!(decode_text("żółw".as_bytes(), &Charset::utf8mb4()), "żółw");
        assert_eq!(
            decode_text(&[0, b'h', 0, b'i'], &Charset::named("ucs2")),
            "hi"
        );
        assert_eq!(decode_text(&[0xb1], &Charset::named("latin2")), "ą");
        assert_eq!(Collations::default().charset(8).name.as_ref(), "latin1");
        assert_eq!(Collations::default().charset(63).name.as_ref(), "binary");
    }
}
