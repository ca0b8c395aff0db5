//! The schema tracker: table definitions kept in binlog order by applying each DDL statement at
//! its position, so that rows are decoded with the shape they were written with.
//!
//! It parses what changes a table's shape: `CREATE TABLE` (columns, types, primary key, charsets;
//! `LIKE`; MariaDB's `WITH SYSTEM VERSIONING` and its hidden `row_start`/`row_end`), `ALTER TABLE`
//! (`ADD`/`DROP`/`MODIFY`/`CHANGE`/`RENAME COLUMN`, `FIRST`/`AFTER`, MariaDB's `IF [NOT] EXISTS`,
//! `ADD`/`DROP PRIMARY KEY`, `RENAME TO`, `CONVERT TO CHARACTER SET`, `ADD`/`DROP SYSTEM
//! VERSIONING`), `DROP TABLE`, `RENAME TABLE`, `TRUNCATE`, `DROP DATABASE`. Other clauses are
//! skipped; statements it cannot follow mark the table unknown, and a rows event for an unknown
//! table is a clear error. [`parse_dml`] recognises data changes logged as statements.

use std::collections::HashMap;
use std::sync::Arc;

use crate::schema::{Charset, ColumnDef, Kind, TableDef};

/// A token of SQL text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tok {
    /// A word or a quoted identifier (`quoted`).
    Ident(String, bool),
    /// A string literal.
    Str(String),
    /// A number.
    Num(String),
    /// Punctuation.
    Punct(char),
}

impl Tok {
    fn is_kw(&self, kw: &str) -> bool {
        matches!(self, Tok::Ident(s, false) if s.eq_ignore_ascii_case(kw))
    }
    fn is_punct(&self, c: char) -> bool {
        matches!(self, Tok::Punct(p) if *p == c)
    }
}

/// Split SQL into tokens; comments are dropped, but the content of executable comments
/// (`/*!50100 ... */`, `/*M!100100 ... */`) is kept, as the server runs it.
pub fn tokenize(sql: &str) -> Vec<Tok> {
    let s = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'#' || (c == b'-' && s.get(i + 1) == Some(&b'-')) {
            while i < s.len() && s[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && s.get(i + 1) == Some(&b'*') {
            let exec = s.get(i + 2) == Some(&b'!')
                || (s.get(i + 2) == Some(&b'M') && s.get(i + 3) == Some(&b'!'));
            if exec {
                i += if s[i + 2] == b'M' { 4 } else { 3 };
                while i < s.len() && s[i].is_ascii_digit() {
                    i += 1;
                }
            } else {
                i += 2;
                while i + 1 < s.len() && !(s[i] == b'*' && s[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
        } else if c == b'*' && s.get(i + 1) == Some(&b'/') {
            i += 2; // end of an executable comment
        } else if c == b'`' || c == b'"' || c == b'\'' {
            let mut v = Vec::new();
            i += 1;
            while i < s.len() {
                if s[i] == c {
                    if s.get(i + 1) == Some(&c) {
                        v.push(c);
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                if s[i] == b'\\' && c != b'`' && i + 1 < s.len() {
                    let e = s[i + 1];
                    v.push(match e {
                        b'n' => b'\n',
                        b't' => b'\t',
                        b'0' => 0,
                        b'r' => b'\r',
                        _ => e,
                    });
                    i += 2;
                    continue;
                }
                v.push(s[i]);
                i += 1;
            }
            let text = String::from_utf8_lossy(&v).into_owned();
            out.push(if c == b'\'' {
                Tok::Str(text)
            } else {
                Tok::Ident(text, true)
            });
        } else if c.is_ascii_digit() {
            let st = i;
            while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == b'.') {
                i += 1;
            }
            out.push(Tok::Num(String::from_utf8_lossy(&s[st..i]).into_owned()));
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b'$' || c >= 0x80 {
            let st = i;
            while i < s.len()
                && (s[i].is_ascii_alphanumeric() || s[i] == b'_' || s[i] == b'$' || s[i] >= 0x80)
            {
                i += 1;
            }
            out.push(Tok::Ident(
                String::from_utf8_lossy(&s[st..i]).into_owned(),
                false,
            ));
        } else {
            out.push(Tok::Punct(c as char));
            i += 1;
        }
    }
    out
}

/// A table name, qualified or not.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Name {
    /// Database, when written.
    pub schema: Option<String>,
    /// Table.
    pub table: String,
}

/// Where a column goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// `FIRST`.
    First,
    /// `AFTER col`.
    After(String),
}

/// One `ALTER TABLE` specification. The `bool` of `Add`, `Drop`, `Modify` and `Change` is
/// MariaDB's `IF NOT EXISTS` / `IF EXISTS`: the specification changes nothing when the column
/// already exists / does not exist.
#[derive(Clone, Debug, PartialEq)]
pub enum AlterOp {
    /// `ADD [COLUMN] [IF NOT EXISTS] def [FIRST | AFTER c]`.
    Add(ColumnDef, Option<Place>, bool),
    /// `DROP [COLUMN] [IF EXISTS] c`.
    Drop(String, bool),
    /// `MODIFY [COLUMN] [IF EXISTS] def [place]`.
    Modify(ColumnDef, Option<Place>, bool),
    /// `CHANGE [COLUMN] [IF EXISTS] old def [place]`.
    Change(String, ColumnDef, Option<Place>, bool),
    /// `RENAME COLUMN a TO b`.
    RenameColumn(String, String),
    /// `RENAME [TO|AS] t`.
    Rename(Name),
    /// `ADD PRIMARY KEY (cols)`.
    AddPrimaryKey(Vec<String>),
    /// `DROP PRIMARY KEY`.
    DropPrimaryKey,
    /// `CONVERT TO CHARACTER SET cs`.
    Convert(Charset),
    /// MariaDB's `ADD SYSTEM VERSIONING`; `true` when the statement gives no `ROW START` column
    /// of its own, so the implicit `row_start`/`row_end` are added.
    AddSystemVersioning(bool),
    /// MariaDB's `DROP SYSTEM VERSIONING` (removes the implicit period columns).
    DropSystemVersioning,
    /// Anything that does not change the row shape.
    Other,
}

/// A parsed DDL statement.
#[derive(Clone, Debug, PartialEq)]
pub enum Ddl {
    /// `CREATE TABLE`.
    Create {
        /// The table.
        name: Name,
        /// Its columns (primary key flags set), or `None` for `CREATE TABLE ... SELECT`.
        columns: Option<Vec<ColumnDef>>,
        /// `CREATE TABLE t LIKE other`.
        like: Option<Name>,
    },
    /// `ALTER TABLE`.
    Alter {
        /// The table.
        name: Name,
        /// Its specifications.
        ops: Vec<AlterOp>,
    },
    /// `DROP TABLE`.
    Drop(Vec<Name>),
    /// `RENAME TABLE a TO b, ...`.
    Rename(Vec<(Name, Name)>),
    /// `TRUNCATE [TABLE] t`.
    Truncate(Name),
    /// `DROP DATABASE`.
    DropDatabase(String),
    /// `CREATE INDEX ... ON t`, `DROP INDEX ... ON t`, ...: about a table, no shape change.
    TableOther(Name),
    /// Not a table DDL statement (or not understood).
    Other,
}

struct P<'a> {
    t: &'a [Tok],
    i: usize,
}

impl<'a> P<'a> {
    fn peek(&self) -> Option<&'a Tok> {
        self.t.get(self.i)
    }
    /// The next token, consumed; at the end `None`, and the position stays at the end (a
    /// position past the end made later slicing panic: found by fuzzing).
    fn next(&mut self) -> Option<&'a Tok> {
        let t = self.t.get(self.i);
        if t.is_some() {
            self.i += 1;
        }
        t
    }
    fn kw(&mut self, kw: &str) -> bool {
        if self.peek().is_some_and(|t| t.is_kw(kw)) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    /// Whether the next token is one of `kws` (not consumed).
    fn at_any(&self, kws: &[&str]) -> bool {
        self.peek().is_some_and(|t| kws.iter().any(|k| t.is_kw(k)))
    }
    fn kws(&mut self, kws: &[&str]) -> bool {
        let save = self.i;
        for k in kws {
            if !self.kw(k) {
                self.i = save;
                return false;
            }
        }
        true
    }
    fn punct(&mut self, c: char) -> bool {
        if self.peek().is_some_and(|t| t.is_punct(c)) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn ident(&mut self) -> Option<String> {
        match self.next()? {
            Tok::Ident(s, _) => Some(s.clone()),
            Tok::Str(s) => Some(s.clone()),
            _ => None,
        }
    }
    fn name(&mut self) -> Option<Name> {
        let first = self.ident()?;
        if self.punct('.') {
            let t = self.ident()?;
            Some(Name {
                schema: Some(first),
                table: t,
            })
        } else {
            Some(Name {
                schema: None,
                table: first,
            })
        }
    }
    /// Skip to the next top-level `,` or the closing `)` (not consumed) or the end.
    fn skip_item(&mut self) {
        let mut depth = 0i32;
        while let Some(t) = self.peek() {
            if t.is_punct('(') {
                depth += 1;
            } else if t.is_punct(')') {
                if depth == 0 {
                    return;
                }
                depth -= 1;
            } else if t.is_punct(',') && depth == 0 {
                return;
            }
            self.i += 1;
        }
    }
    fn paren_list(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.punct('(') {
            return out;
        }
        loop {
            match self.next() {
                Some(Tok::Ident(s, _)) | Some(Tok::Str(s)) => {
                    out.push(s.clone());
                    // skip a prefix length or ASC/DESC
                    self.skip_item();
                }
                Some(Tok::Punct(',')) => {}
                Some(Tok::Punct(')')) | None => break,
                _ => {}
            }
        }
        out
    }
}

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

fn column_def(
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

fn table_option_charset(p: &mut P<'_>) -> Option<Charset> {
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

/// Parse one statement.
pub fn parse(sql: &str) -> Ddl {
    let toks = tokenize(sql);
    let mut p = P { t: &toks, i: 0 };
    parse_tokens(&mut p).unwrap_or(Ddl::Other)
}

fn parse_tokens(p: &mut P<'_>) -> Option<Ddl> {
    if p.kw("create") {
        p.kws(&["or", "replace"]);
        p.kw("temporary");
        if p.kw("table") {
            p.kws(&["if", "not", "exists"]);
            let name = p.name()?;
            if p.kw("like") {
                return Some(Ddl::Create {
                    name,
                    columns: None,
                    like: p.name(),
                });
            }
            if p.punct('(') {
                if p.kw("like") {
                    return Some(Ddl::Create {
                        name,
                        columns: None,
                        like: p.name(),
                    });
                }
                // Columns first; table options (charset) follow the closing parenthesis, so
                // find them before applying the default charset.
                let body_start = p.i;
                let mut depth = 1;
                while let Some(t) = p.next() {
                    if t.is_punct('(') {
                        depth += 1;
                    } else if t.is_punct(')') {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                }
                let after = p.i;
                let has_select = p.t[after..].iter().any(|t| t.is_kw("select"));
                let cs = table_option_charset(p);
                p.i = body_start;
                let mut columns = Vec::new();
                let mut pk = Vec::new();
                loop {
                    if p.punct(')') || p.peek().is_none() {
                        break;
                    }
                    if p.punct(',') {
                        continue;
                    }
                    if p.kw("constraint") && !p.peek().is_some_and(|t| t.is_kw("primary")) {
                        p.ident();
                    }
                    if p.kws(&["primary", "key"]) {
                        while p.kw("using") {
                            p.ident();
                        }
                        pk = p.paren_list();
                        p.skip_item();
                        continue;
                    }
                    let is_index = p.at_any(&[
                        "key",
                        "index",
                        "unique",
                        "fulltext",
                        "spatial",
                        "foreign",
                        "check",
                        "period",
                        "constraint",
                    ]);
                    if is_index {
                        p.skip_item();
                        continue;
                    }
                    match column_def(p, cs.as_ref()) {
                        Some((c, _)) => columns.push(c),
                        None => p.skip_item(),
                    }
                }
                for k in pk {
                    if let Some(c) = columns.iter_mut().find(|c| c.name.eq_ignore_ascii_case(&k)) {
                        c.key = true;
                        c.nullable = false;
                    }
                }
                // MariaDB: WITH SYSTEM VERSIONING without period columns of its own adds hidden
                // row_start/row_end after the others.
                if with_system_versioning(p.t) && !has_row_start(p.t) {
                    let keyed = columns.iter().any(|c| c.key);
                    columns.extend(ColumnDef::system_versioning_columns(keyed));
                }
                if has_select {
                    return Some(Ddl::Create {
                        name,
                        columns: None,
                        like: None,
                    });
                }
                return Some(Ddl::Create {
                    name,
                    columns: Some(columns),
                    like: None,
                });
            }
            return Some(Ddl::Create {
                name,
                columns: None,
                like: None,
            });
        }
        // CREATE [UNIQUE|FULLTEXT|SPATIAL] INDEX name ON t
        while p.kw("unique") || p.kw("fulltext") || p.kw("spatial") || p.kw("online") {}
        if p.kw("index") {
            p.ident();
            while p.peek().is_some_and(|t| !t.is_kw("on")) {
                p.i += 1;
            }
            if p.kw("on") {
                return p.name().map(Ddl::TableOther);
            }
        }
        return None;
    }
    if p.kw("alter") {
        p.kw("online");
        p.kw("ignore");
        if !p.kw("table") {
            return None;
        }
        p.kws(&["if", "exists"]);
        let name = p.name()?;
        let mut ops = Vec::new();
        while p.peek().is_some() {
            if p.punct(',') {
                continue;
            }
            ops.extend(alter_spec(p));
            p.skip_item();
            if p.peek().is_some_and(|t| t.is_punct(')')) {
                p.i += 1;
            }
        }
        return Some(Ddl::Alter { name, ops });
    }
    if p.kw("drop") {
        p.kw("temporary");
        if p.kw("table") || p.kw("tables") {
            p.kws(&["if", "exists"]);
            let mut names = Vec::new();
            while let Some(n) = p.name() {
                names.push(n);
                if !p.punct(',') {
                    break;
                }
            }
            return Some(Ddl::Drop(names));
        }
        if p.kw("database") || p.kw("schema") {
            p.kws(&["if", "exists"]);
            return p.ident().map(Ddl::DropDatabase);
        }
        if p.kw("index") {
            p.kws(&["if", "exists"]);
            p.ident();
            if p.kw("on") {
                return p.name().map(Ddl::TableOther);
            }
        }
        return None;
    }
    if p.kw("rename") {
        if !(p.kw("table") || p.kw("tables")) {
            return None;
        }
        let mut pairs = Vec::new();
        loop {
            let a = p.name()?;
            if !p.kw("to") {
                return None;
            }
            let b = p.name()?;
            pairs.push((a, b));
            if !p.punct(',') {
                break;
            }
        }
        return Some(Ddl::Rename(pairs));
    }
    if p.kw("truncate") {
        p.kw("table");
        return p.name().map(Ddl::Truncate);
    }
    None
}

/// A data-changing statement: what a session with `binlog_format=STATEMENT` (or `MIXED`) logs
/// instead of row events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dml {
    /// `INSERT`, `REPLACE`, `UPDATE`, `DELETE` or `LOAD DATA`.
    pub kind: &'static str,
    /// The tables it may change (for multi-table statements, every table it names), or `None`
    /// when they could not be told.
    pub tables: Option<Vec<Name>>,
}

/// Recognise a data-changing statement (`INSERT`, `REPLACE`, `UPDATE`, `DELETE`, `LOAD DATA`,
/// also after a `WITH` clause) and the tables it changes.
pub fn parse_dml(sql: &str) -> Option<Dml> {
    let toks = tokenize(sql);
    let mut p = P { t: &toks, i: 0 };
    let p = &mut p;
    if p.kw("with") {
        // WITH [RECURSIVE] name [(cols)] AS (query) [, ...]
        p.kw("recursive");
        loop {
            p.ident()?;
            if p.peek().is_some_and(|t| t.is_punct('(')) {
                skip_parens(p);
            }
            if !p.kw("as") {
                return None;
            }
            skip_parens(p);
            if !p.punct(',') {
                break;
            }
        }
    }
    let (kind, tables) = if p.kw("insert") || p.kw("replace") {
        let kind = if p.t[p.i - 1].is_kw("insert") {
            "INSERT"
        } else {
            "REPLACE"
        };
        while p.kw("low_priority") || p.kw("delayed") || p.kw("high_priority") || p.kw("ignore") {}
        p.kw("into");
        (kind, p.name().map(|n| vec![n]))
    } else if p.kw("update") {
        while p.kw("low_priority") || p.kw("ignore") {}
        ("UPDATE", table_refs(p, &["set"]))
    } else if p.kw("delete") {
        // (MariaDB's DELETE HISTORY FROM t removes rows of a system-versioned table too.)
        while p.kw("low_priority") || p.kw("quick") || p.kw("ignore") || p.kw("history") {}
        if p.kw("from") {
            // DELETE FROM t ... | DELETE FROM t1, t2 USING refs
            (
                "DELETE",
                table_refs(
                    p,
                    &["using", "where", "order", "limit", "partition", "returning"],
                ),
            )
        } else {
            // DELETE t1, t2 FROM refs
            ("DELETE", table_refs(p, &["from"]))
        }
    } else if p.kw("load") {
        if !(p.kw("data") || p.kw("xml")) {
            return None;
        }
        while p.peek().is_some_and(|t| !t.is_kw("into")) {
            p.i += 1;
        }
        let tables = if p.kws(&["into", "table"]) {
            p.name().map(|n| vec![n])
        } else {
            None
        };
        ("LOAD DATA", tables)
    } else {
        return None;
    };
    Some(Dml { kind, tables })
}

fn skip_parens(p: &mut P<'_>) {
    if !p.punct('(') {
        return;
    }
    let mut depth = 1;
    while let Some(t) = p.next() {
        if t.is_punct('(') {
            depth += 1;
        } else if t.is_punct(')') {
            depth -= 1;
            if depth == 0 {
                return;
            }
        }
    }
}

/// The table names of a table reference list (`t1, d.t2 AS x JOIN t3 ON ...`, `t.*`) up to one
/// of the `stop` keywords at the top level; `None` when a derived table hides what is changed.
fn table_refs(p: &mut P<'_>, stop: &[&str]) -> Option<Vec<Name>> {
    let mut out = Vec::new();
    let mut expect = true;
    while let Some(t) = p.peek() {
        if stop.iter().any(|k| t.is_kw(k)) {
            break;
        }
        if t.is_punct('(') {
            if expect {
                return None;
            }
            skip_parens(p);
            continue;
        }
        if t.is_punct(',') || t.is_kw("join") || t.is_kw("straight_join") {
            expect = true;
            p.i += 1;
            continue;
        }
        if expect {
            // db.t, t, and `t.*` / `db.t.*` in DELETE t.* FROM ...
            let first = p.ident()?;
            let mut name = Name {
                schema: None,
                table: first,
            };
            if p.punct('.') {
                if p.punct('*') {
                    out.push(name);
                    expect = false;
                    continue;
                }
                name = Name {
                    schema: Some(name.table),
                    table: p.ident()?,
                };
                if p.punct('.') {
                    p.punct('*');
                }
            }
            out.push(name);
            expect = false;
            continue;
        }
        p.i += 1;
    }
    Some(out)
}

fn alter_spec(p: &mut P<'_>) -> Vec<AlterOp> {
    let save = p.i;
    if p.kw("add") {
        p.kw("column");
        let if_not_exists = p.kws(&["if", "not", "exists"]);
        if p.punct('(') {
            // ADD (a INT, b INT): several columns, appended in order.
            let mut out = Vec::new();
            while let Some((c, place)) = column_def(p, None) {
                out.push(AlterOp::Add(c, place, if_not_exists));
                if !p.punct(',') {
                    break;
                }
            }
            return out;
        }
    }
    p.i = save;
    vec![alter_one(p)]
}

/// Whether the statement says `WITH SYSTEM VERSIONING` (of the table or a column).
fn with_system_versioning(t: &[Tok]) -> bool {
    t.windows(3)
        .any(|w| w[0].is_kw("with") && w[1].is_kw("system") && w[2].is_kw("versioning"))
}

/// Whether the statement defines a `GENERATED ALWAYS AS ROW START` column.
fn has_row_start(t: &[Tok]) -> bool {
    t.windows(2)
        .any(|w| w[0].is_kw("row") && w[1].is_kw("start"))
}

fn alter_one(p: &mut P<'_>) -> AlterOp {
    if p.kws(&["add", "system", "versioning"]) {
        return AlterOp::AddSystemVersioning(!has_row_start(p.t));
    }
    if p.kws(&["drop", "system", "versioning"]) {
        return AlterOp::DropSystemVersioning;
    }
    if p.kw("add") {
        if p.kw("constraint") {
            p.kws(&["if", "not", "exists"]);
            let kind_follows = p.at_any(&["primary", "unique", "foreign", "check"]);
            if !kind_follows {
                p.ident();
            }
        }
        if p.kws(&["primary", "key"]) {
            while p.kw("using") {
                p.ident();
            }
            return AlterOp::AddPrimaryKey(p.paren_list());
        }
        let is_index = p.at_any(&[
            "key",
            "index",
            "unique",
            "fulltext",
            "spatial",
            "foreign",
            "check",
            "period",
            "partition",
            "constraint",
            "system",
        ]);
        if is_index {
            return AlterOp::Other;
        }
        p.kw("column");
        let if_not_exists = p.kws(&["if", "not", "exists"]);
        return match column_def(p, None) {
            Some((c, place)) => AlterOp::Add(c, place, if_not_exists),
            None => AlterOp::Other,
        };
    }
    if p.kw("drop") {
        if p.kws(&["primary", "key"]) {
            return AlterOp::DropPrimaryKey;
        }
        let is_other = p.at_any(&[
            "index",
            "key",
            "foreign",
            "constraint",
            "check",
            "partition",
            "period",
            "system",
        ]);
        if is_other {
            return AlterOp::Other;
        }
        p.kw("column");
        let if_exists = p.kws(&["if", "exists"]);
        return p
            .ident()
            .map(|c| AlterOp::Drop(c, if_exists))
            .unwrap_or(AlterOp::Other);
    }
    if p.kw("modify") {
        p.kw("column");
        let if_exists = p.kws(&["if", "exists"]);
        return match column_def(p, None) {
            Some((c, place)) => AlterOp::Modify(c, place, if_exists),
            None => AlterOp::Other,
        };
    }
    if p.kw("change") {
        p.kw("column");
        let if_exists = p.kws(&["if", "exists"]);
        let Some(old) = p.ident() else {
            return AlterOp::Other;
        };
        return match column_def(p, None) {
            Some((c, place)) => AlterOp::Change(old, c, place, if_exists),
            None => AlterOp::Other,
        };
    }
    if p.kw("rename") {
        if p.kw("column") {
            let Some(a) = p.ident() else {
                return AlterOp::Other;
            };
            p.kw("to");
            return p
                .ident()
                .map(|b| AlterOp::RenameColumn(a, b))
                .unwrap_or(AlterOp::Other);
        }
        if p.kw("index") || p.kw("key") {
            return AlterOp::Other;
        }
        let _ = p.kw("to") || p.kw("as");
        return p.name().map(AlterOp::Rename).unwrap_or(AlterOp::Other);
    }
    if p.kws(&["convert", "to"]) {
        if p.kws(&["character", "set"]) || p.kw("charset") {
            if let Some(cs) = p.ident() {
                return AlterOp::Convert(Charset::named(&cs));
            }
        }
        return AlterOp::Other;
    }
    AlterOp::Other
}

/// Table definitions by (database, table), kept in binlog order.
#[derive(Clone, Debug, Default)]
pub struct SchemaTracker {
    tables: HashMap<(String, String), TableState>,
}

/// What the tracker knows of a table.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum TableState {
    /// Its definition.
    Known(TableDef),
    /// A statement changed it in a way the tracker could not follow.
    Unknown(String),
}

impl SchemaTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        SchemaTracker::default()
    }

    /// Set a table's definition (from `information_schema`).
    pub fn insert(&mut self, def: TableDef) {
        self.tables.insert(
            (def.schema.to_string(), def.table.to_string()),
            TableState::Known(def),
        );
    }

    /// Set a table's state (from the schema history).
    pub fn set(&mut self, schema: &str, table: &str, state: TableState) {
        self.tables
            .insert((schema.to_string(), table.to_string()), state);
    }

    /// Every table the tracker knows, as `(database, table, state)`, in no particular order.
    pub fn tables(&self) -> impl Iterator<Item = (&str, &str, &TableState)> {
        self.tables
            .iter()
            .map(|((s, t), st)| (s.as_str(), t.as_str(), st))
    }

    /// A table's state.
    pub fn get(&self, schema: &str, table: &str) -> Option<&TableState> {
        self.tables.get(&(schema.to_string(), table.to_string()))
    }

    fn key(name: &Name, default_schema: &str) -> (String, String) {
        (
            name.schema
                .clone()
                .unwrap_or_else(|| default_schema.to_string()),
            name.table.clone(),
        )
    }

    /// Apply a statement run with `default_schema`; returns the parsed statement.
    pub fn apply(&mut self, sql: &str, default_schema: &str) -> Ddl {
        let ddl = parse(sql);
        match &ddl {
            Ddl::Create {
                name,
                columns,
                like,
            } => {
                let key = Self::key(name, default_schema);
                let state = match (columns, like) {
                    (Some(cols), _) => TableState::Known(TableDef {
                        schema: key.0.clone().into(),
                        table: key.1.clone().into(),
                        columns: cols.clone(),
                    }),
                    (None, Some(src)) => match self.tables.get(&Self::key(src, default_schema)) {
                        Some(TableState::Known(d)) => TableState::Known(TableDef {
                            schema: key.0.clone().into(),
                            table: key.1.clone().into(),
                            columns: d.columns.clone(),
                        }),
                        _ => TableState::Unknown(sql.to_string()),
                    },
                    (None, None) => TableState::Unknown(sql.to_string()),
                };
                self.tables.insert(key, state);
            }
            Ddl::Alter { name, ops } => {
                let key = Self::key(name, default_schema);
                let Some(state) = self.tables.remove(&key) else {
                    return ddl;
                };
                let mut new_key = key.clone();
                let state = match state {
                    TableState::Known(mut def) => {
                        let mut ok = true;
                        for op in ops {
                            if let AlterOp::Rename(n) = op {
                                new_key = Self::key(n, default_schema);
                                def.schema = new_key.0.clone().into();
                                def.table = new_key.1.clone().into();
                            } else if !apply_alter(&mut def, op) {
                                ok = false;
                            }
                        }
                        if ok {
                            TableState::Known(def)
                        } else {
                            TableState::Unknown(sql.to_string())
                        }
                    }
                    unknown => unknown,
                };
                self.tables.insert(new_key, state);
            }
            Ddl::Drop(names) => {
                for n in names {
                    self.tables.remove(&Self::key(n, default_schema));
                }
            }
            Ddl::Rename(pairs) => {
                for (a, b) in pairs {
                    if let Some(state) = self.tables.remove(&Self::key(a, default_schema)) {
                        let key = Self::key(b, default_schema);
                        let state = match state {
                            TableState::Known(mut d) => {
                                d.schema = key.0.clone().into();
                                d.table = key.1.clone().into();
                                TableState::Known(d)
                            }
                            u => u,
                        };
                        self.tables.insert(key, state);
                    }
                }
            }
            Ddl::DropDatabase(db) => self.tables.retain(|(s, _), _| s != db),
            Ddl::Truncate(_) | Ddl::TableOther(_) | Ddl::Other => {}
        }
        ddl
    }
}

fn place_column(def: &mut TableDef, c: ColumnDef, place: Option<&Place>) -> bool {
    match place {
        // Before the hidden period columns of a system-versioned table, which stay last.
        None => match def.columns.iter().position(|c| c.hidden) {
            Some(i) => def.columns.insert(i, c),
            None => def.columns.push(c),
        },
        Some(Place::First) => def.columns.insert(0, c),
        Some(Place::After(a)) => match def.index_of(a) {
            Some(i) => def.columns.insert(i + 1, c),
            None => return false,
        },
    }
    true
}

fn apply_alter(def: &mut TableDef, op: &AlterOp) -> bool {
    match op {
        AlterOp::Add(c, _, true) if def.index_of(&c.name).is_some() => true,
        AlterOp::Add(c, place, _) => {
            let c = c.clone();
            if c.key {
                for k in def.columns.iter_mut() {
                    k.key = false;
                }
            }
            place_column(def, c, place.as_ref())
        }
        AlterOp::Drop(name, if_exists) => match def.index_of(name) {
            Some(i) => {
                def.columns.remove(i);
                true
            }
            None => *if_exists,
        },
        AlterOp::Modify(c, place, if_exists) | AlterOp::Change(_, c, place, if_exists) => {
            let old = match op {
                AlterOp::Change(old, ..) => old.as_str(),
                _ => &*c.name,
            };
            let Some(i) = def.index_of(old) else {
                return *if_exists;
            };
            let prev = def.columns.remove(i);
            let mut c = c.clone();
            c.key = c.key || prev.key;
            if c.key {
                c.nullable = false;
            }
            if place.is_none() {
                def.columns.insert(i, c);
                true
            } else {
                place_column(def, c, place.as_ref())
            }
        }
        AlterOp::RenameColumn(a, b) => match def.index_of(a) {
            Some(i) => {
                def.columns[i].name = b.clone().into();
                true
            }
            None => false,
        },
        AlterOp::AddPrimaryKey(cols) => {
            for c in def.columns.iter_mut() {
                c.key = cols.iter().any(|k| c.name.eq_ignore_ascii_case(k));
                if c.key {
                    c.nullable = false;
                }
            }
            true
        }
        AlterOp::DropPrimaryKey => {
            for c in def.columns.iter_mut() {
                c.key = false;
            }
            true
        }
        AlterOp::Convert(cs) => {
            for c in def.columns.iter_mut() {
                if c.charset.as_ref().is_some_and(|x| !x.is_binary()) {
                    c.charset = Some(cs.clone());
                }
            }
            true
        }
        AlterOp::AddSystemVersioning(implicit) => {
            if *implicit && !def.columns.iter().any(|c| c.hidden) {
                let keyed = def.columns.iter().any(|c| c.key);
                def.columns
                    .extend(ColumnDef::system_versioning_columns(keyed));
            }
            true
        }
        AlterOp::DropSystemVersioning => {
            let before = def.columns.len();
            def.columns.retain(|c| !c.hidden);
            // Explicit period columns: what happens to them is not followed.
            def.columns.len() < before
        }
        AlterOp::Rename(_) | AlterOp::Other => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(t: &SchemaTracker, db: &str, table: &str) -> Vec<String> {
        match t.get(db, table) {
            Some(TableState::Known(d)) => d.columns.iter().map(|c| c.name.to_string()).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unterminated_create_table_is_parsed_without_panicking() {
        // GIVEN a CREATE TABLE whose column list is never closed (a fuzzing find: the parser
        // stepped past the last token and sliced beyond the end)
        for sql in ["CREATE TABLE t (a INT", "CREATE TABLE t (", "CREATE TABLE t ((a INT)"] {
            // WHEN it is parsed THEN it does not panic
            let _ = parse(sql);
            let mut t = SchemaTracker::new();
            let _ = t.apply(sql, "db");
        }
    }

    #[test]
    fn create_table_with_types_keys_and_charsets() {
        let mut t = SchemaTracker::new();
        t.apply(
            "CREATE TABLE IF NOT EXISTS `d`.`t` (\n  id INT UNSIGNED NOT NULL AUTO_INCREMENT,\n  \
             name VARCHAR(20) CHARACTER SET latin1 DEFAULT 'x, y' COMMENT 'a (b)',\n  \
             price DECIMAL(10,2) NOT NULL DEFAULT 0.00,\n  st ENUM('a','b''c') DEFAULT 'a',\n  \
             ts DATETIME(3) ON UPDATE CURRENT_TIMESTAMP(3),\n  b BLOB, /* comment */\n  \
             PRIMARY KEY (id), KEY k (name(5))\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            "other",
        );
        let Some(TableState::Known(d)) = t.get("d", "t") else {
            panic!()
        };
        let types: Vec<String> = d.columns.iter().map(|c| c.type_name()).collect();
        assert_eq!(
            types,
            [
                "int unsigned",
                "varchar(20)",
                "decimal(10,2)",
                "enum('a','b''c')",
                "datetime(3)",
                "blob"
            ]
        );
        assert!(d.columns[0].key && !d.columns[0].nullable);
        assert_eq!(&*d.columns[1].charset.as_ref().unwrap().name, "latin1");
        assert!(!d.columns[2].nullable);
        assert_eq!(&*d.columns[3].values[1], "b'c");
    }

    #[test]
    fn alter_add_drop_reorder_change_rename() {
        // GIVEN a tracked table
        let mut t = SchemaTracker::new();
        t.apply("create table t (a int primary key, b int, c int)", "d");
        // WHEN columns are added, moved, dropped, changed and renamed
        t.apply(
            "ALTER TABLE t ADD COLUMN x VARCHAR(5) AFTER a, ADD y INT FIRST",
            "d",
        );
        assert_eq!(names(&t, "d", "t"), ["y", "a", "x", "b", "c"]);
        t.apply(
            "alter table d.t drop column b, modify c bigint unsigned first",
            "d",
        );
        assert_eq!(names(&t, "d", "t"), ["c", "y", "a", "x"]);
        t.apply(
            "ALTER TABLE t CHANGE COLUMN x xx TEXT AFTER y, RENAME COLUMN y TO yy",
            "d",
        );
        assert_eq!(names(&t, "d", "t"), ["c", "yy", "xx", "a"]);
        let Some(TableState::Known(d)) = t.get("d", "t") else {
            panic!()
        };
        assert_eq!(d.columns[0].type_name(), "bigint unsigned");
        assert!(d.columns[3].key);
        // AND renames move the definition
        t.apply("RENAME TABLE t TO t2", "d");
        assert!(t.get("d", "t").is_none());
        t.apply("alter table t2 rename to d.t3, add index i (a)", "d");
        assert_eq!(names(&t, "d", "t3"), ["c", "yy", "xx", "a"]);
        // AND an ALTER it cannot follow marks the table unknown
        t.apply("alter table t3 drop column nope", "d");
        assert!(matches!(t.get("d", "t3"), Some(TableState::Unknown(_))));
        t.apply("DROP TABLE IF EXISTS `t3` /* generated by server */", "d");
        assert!(t.get("d", "t3").is_none());
    }

    #[test]
    fn if_exists_and_if_not_exists_specifications_change_nothing_when_they_do_not_apply() {
        // GIVEN a tracked table (id, a)
        let mut t = SchemaTracker::new();
        t.apply("create table t (id int primary key, a int)", "d");
        // WHEN idempotent specifications that do not apply are run
        for sql in [
            "ALTER TABLE t ADD COLUMN IF NOT EXISTS a INT",
            "alter table t add if not exists (a int, id bigint)",
            "ALTER TABLE t DROP COLUMN IF EXISTS zz",
            "ALTER TABLE t DROP IF EXISTS zz, ADD INDEX IF NOT EXISTS i (a)",
            "ALTER TABLE t MODIFY COLUMN IF EXISTS zz BIGINT",
            "ALTER TABLE t CHANGE COLUMN IF EXISTS zz yy BIGINT",
            "ALTER TABLE t ADD CONSTRAINT IF NOT EXISTS c CHECK (a > 0)",
            "ALTER TABLE t ADD KEY IF NOT EXISTS k (a), DROP INDEX IF EXISTS nope",
        ] {
            t.apply(sql, "d");
            // THEN the table keeps its shape
            assert_eq!(names(&t, "d", "t"), ["id", "a"], "{sql}");
        }
        // AND when they apply, they apply
        t.apply("ALTER TABLE t ADD COLUMN IF NOT EXISTS b INT FIRST", "d");
        assert_eq!(names(&t, "d", "t"), ["b", "id", "a"]);
        t.apply("ALTER TABLE t CHANGE COLUMN IF EXISTS b c BIGINT", "d");
        assert_eq!(names(&t, "d", "t"), ["c", "id", "a"]);
        t.apply("ALTER TABLE t DROP COLUMN IF EXISTS c", "d");
        assert_eq!(names(&t, "d", "t"), ["id", "a"]);
        // AND without IF EXISTS, a missing column still means the tracker lost track
        t.apply("ALTER TABLE t DROP COLUMN zz", "d");
        assert!(matches!(t.get("d", "t"), Some(TableState::Unknown(_))));
    }

    #[test]
    fn system_versioned_tables_keep_their_hidden_period_columns_last() {
        // GIVEN a table created WITH SYSTEM VERSIONING (implicit row_start/row_end)
        let mut t = SchemaTracker::new();
        t.apply(
            "CREATE TABLE sv (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING",
            "d",
        );
        assert_eq!(names(&t, "d", "sv"), ["id", "v", "row_start", "row_end"]);
        // WHEN a column is added THEN it goes before them, as the server stores it
        t.apply("ALTER TABLE sv ADD COLUMN w INT", "d");
        assert_eq!(
            names(&t, "d", "sv"),
            ["id", "v", "w", "row_start", "row_end"]
        );
        // AND versioning can be dropped and added again
        t.apply("ALTER TABLE sv DROP SYSTEM VERSIONING", "d");
        assert_eq!(names(&t, "d", "sv"), ["id", "v", "w"]);
        t.apply("ALTER TABLE sv ADD SYSTEM VERSIONING", "d");
        assert_eq!(
            names(&t, "d", "sv"),
            ["id", "v", "w", "row_start", "row_end"]
        );
        // AND explicit period columns are ordinary columns
        t.apply(
            "CREATE TABLE e (id INT, s TIMESTAMP(6) GENERATED ALWAYS AS ROW START, \
             e TIMESTAMP(6) GENERATED ALWAYS AS ROW END, PERIOD FOR SYSTEM_TIME(s, e)) \
             WITH SYSTEM VERSIONING",
            "d",
        );
        assert_eq!(names(&t, "d", "e"), ["id", "s", "e"]);
    }

    #[test]
    fn data_changing_statements_and_their_tables() {
        let n = |s: Option<&str>, t: &str| Name {
            schema: s.map(str::to_string),
            table: t.to_string(),
        };
        let dml = |sql: &str| parse_dml(sql).unwrap_or_else(|| panic!("{sql}"));
        assert_eq!(
            dml("INSERT INTO t VALUES (1)"),
            Dml {
                kind: "INSERT",
                tables: Some(vec![n(None, "t")])
            }
        );
        assert_eq!(
            dml("/* app */ insert ignore `d`.`t` (a) select 1").tables,
            Some(vec![n(Some("d"), "t")])
        );
        assert_eq!(dml("REPLACE t SET a = 1").kind, "REPLACE");
        assert_eq!(
            dml("UPDATE t1 AS a JOIN d.t2 b ON a.x = b.x LEFT JOIN t3 USING (x) SET a.y = 1")
                .tables,
            Some(vec![n(None, "t1"), n(Some("d"), "t2"), n(None, "t3")])
        );
        assert_eq!(
            dml("DELETE FROM t WHERE a = 1").tables,
            Some(vec![n(None, "t")])
        );
        assert_eq!(
            dml("DELETE t1.*, t2 FROM t1 JOIN t2 WHERE 1").tables,
            Some(vec![n(None, "t1"), n(None, "t2")])
        );
        assert_eq!(
            dml("DELETE HISTORY FROM d.t BEFORE SYSTEM_TIME NOW()").tables,
            Some(vec![n(Some("d"), "t")])
        );
        assert_eq!(
            dml("DELETE FROM t1, t2 USING t1 JOIN t2").tables,
            Some(vec![n(None, "t1"), n(None, "t2")])
        );
        assert_eq!(
            dml("LOAD DATA LOCAL INFILE 'x.csv' REPLACE INTO TABLE d.t FIELDS TERMINATED BY ','"),
            Dml {
                kind: "LOAD DATA",
                tables: Some(vec![n(Some("d"), "t")])
            }
        );
        assert_eq!(
            dml("WITH RECURSIVE s (n) AS (SELECT 1) INSERT INTO t SELECT n FROM s").tables,
            Some(vec![n(None, "t")])
        );
        assert_eq!(dml("UPDATE (SELECT 1) x SET a = 1").tables, None);
        for other in [
            "BEGIN",
            "SAVEPOINT s",
            "TRUNCATE t",
            "SELECT 1",
            "GRANT ALL ON *.* TO x",
            "CREATE TABLE t (a int)",
        ] {
            assert_eq!(parse_dml(other), None, "{other}");
        }
    }

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

    #[test]
    fn other_statements() {
        assert_eq!(
            parse("truncate table `d`.`t`"),
            Ddl::Truncate(Name {
                schema: Some("d".into()),
                table: "t".into()
            })
        );
        assert_eq!(parse("BEGIN"), Ddl::Other);
        assert!(matches!(
            parse("CREATE INDEX i ON t (a)"),
            Ddl::TableOther(_)
        ));
        assert!(matches!(
            parse("/*!40000 ALTER TABLE `t` DISABLE KEYS */"),
            Ddl::Alter { .. }
        ));
    }
}
