//! The statement parser: recognises the DDL statements that change a table's shape (into
//! [`Ddl`]) and the data-changing statements a statement-format binlog carries (into [`Dml`]).

use super::columns::{column_def, table_option_charset};
use super::lexer::{tokenize, Tok, P};
use super::{AlterOp, Ddl, Name};
use crate::schema::{Charset, ColumnDef};

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

#[cfg(test)]
mod tests {
    use super::*;

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
