//! `{type: columns, include: [schema.table.column, ...]}` or `{type: columns, exclude: [...]}`:
//! removes columns from `before`, `after`, the key and the Kafka Connect schema.
//!
//! Every part of an entry may be a glob (`public.users.*_token`, `*.*.password`). With `include`,
//! the tables the entries name keep only the columns named (other tables pass unchanged); with
//! `exclude`, the columns named are removed. A key column may leave the key as long as one key
//! column stays: removing every key column of a keyed table would merge the keys of all its rows
//! (and their order), so that is a config error naming the entry.

use std::sync::Arc;

use serde::Deserialize;

use super::{
    check_column_patterns, check_exact_columns, config_error, ColumnPattern, SchemaCache,
    Transform, Verdict,
};
use crate::config::{ConfigSection, ConnectorType};
use crate::context::Context;
use crate::error::Result;
use crate::event::{ChangeEvent, Row, TableSchema};

/// `transforms[i]` with `type: columns`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnsConfig {
    /// `columns`.
    #[serde(rename = "type")]
    pub kind: ConnectorType,
    /// Keep only these columns of the tables they name (`schema.table.column` globs).
    #[serde(default)]
    pub include: Option<Vec<String>>,
    /// Remove these columns (`schema.table.column` globs).
    #[serde(default)]
    pub exclude: Option<Vec<String>>,
}

/// The `columns` transform.
pub struct Columns {
    key: String,
    list_key: &'static str,
    include: bool,
    patterns: Vec<ColumnPattern>,
    cache: SchemaCache<Plan>,
}

/// What to do with one table schema.
struct Plan {
    /// `None`: the table passes unchanged.
    keep: Option<(Vec<usize>, Arc<TableSchema>)>,
}

/// Registry factory for `type: columns`.
pub fn factory(section: &ConfigSection, _ctx: &Context) -> Result<Box<dyn Transform>> {
    let config: ColumnsConfig = section.extract()?;
    Ok(Box::new(Columns::new(section.key(), &config)?))
}

impl Columns {
    /// A columns transform from its config; `key` is its key path.
    pub fn new(key: &str, config: &ColumnsConfig) -> Result<Self> {
        let (list_key, include, list) = match (&config.include, &config.exclude) {
            (Some(list), None) => ("include", true, list),
            (None, Some(list)) => ("exclude", false, list),
            _ => {
                return Err(config_error(
                    key,
                    "expected exactly one of `include` and `exclude`",
                ))
            }
        };
        if list.is_empty() {
            return Err(config_error(
                format!("{key}.{list_key}"),
                "expected at least one `schema.table.column`",
            ));
        }
        let patterns = list
            .iter()
            .enumerate()
            .map(|(i, p)| ColumnPattern::parse(&format!("{key}.{list_key}[{i}]"), p))
            .collect::<Result<Vec<_>>>()?;
        Ok(Columns {
            key: key.to_string(),
            list_key,
            include,
            patterns,
            cache: SchemaCache::default(),
        })
    }

    fn entry_key(&self, i: usize) -> String {
        format!("{}.{}[{i}]", self.key, self.list_key)
    }

    fn plan(&self, table: &TableSchema) -> Result<Plan> {
        check_exact_columns(&self.patterns, table, |i| self.entry_key(i))?;
        let named: Vec<&ColumnPattern> = self
            .patterns
            .iter()
            .filter(|p| p.matches_table(&table.id))
            .collect();
        if named.is_empty() {
            return Ok(Plan { keep: None });
        }
        let keep: Vec<usize> = table
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| named.iter().any(|p| p.matches_column(&c.name)) == self.include)
            .map(|(i, _)| i)
            .collect();
        if keep.len() == table.columns.len() {
            return Ok(Plan { keep: None });
        }
        if table.has_key() && !keep.iter().any(|&i| table.columns[i].key) {
            let first = self
                .patterns
                .iter()
                .position(|p| p.matches_table(&table.id))
                .unwrap_or(0);
            return Err(config_error(
                self.entry_key(first),
                format!(
                    "would remove every key column of {} ({}): keep at least one",
                    table.id,
                    table
                        .columns
                        .iter()
                        .filter(|c| c.key)
                        .map(|c| c.name.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let schema = TableSchema::new(
            table.id.clone(),
            keep.iter().map(|&i| table.columns[i].clone()).collect(),
        );
        Ok(Plan {
            keep: Some((keep, Arc::new(schema))),
        })
    }
}

fn project(row: &mut Option<Row>, keep: &[usize]) {
    if let Some(r) = row {
        let mut old = std::mem::take(r);
        r.reserve(keep.len());
        for &i in keep {
            if let Some(v) = old.get_mut(i) {
                r.push(std::mem::replace(v, crate::event::Value::Null));
            }
        }
    }
}

impl Transform for Columns {
    fn check_tables(&mut self, tables: &[TableSchema]) -> Result<()> {
        check_column_patterns(&self.patterns, tables, |i| self.entry_key(i))?;
        for t in tables {
            self.plan(t)?;
        }
        Ok(())
    }

    fn apply(&mut self, event: &mut ChangeEvent) -> Result<Verdict> {
        let Some(table) = &event.table else {
            return Ok(Verdict::Keep);
        };
        let mut cache = std::mem::take(&mut self.cache);
        let plan = cache.get(table, |t| self.plan(t));
        self.cache = cache;
        if let Some((keep, schema)) = &plan?.keep {
            project(&mut event.before, keep);
            project(&mut event.after, keep);
            event.table = Some(Arc::clone(schema));
        }
        Ok(Verdict::Keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::Encoder;
    use crate::event::{Column, Op, Position, TableId, Value};
    use crate::{ErrorKind, Format};

    fn users() -> Arc<TableSchema> {
        Arc::new(TableSchema::new(
            TableId::new("db", "public", "users"),
            vec![
                Column::new("id", "int4").key(),
                Column::new("email", "text"),
                Column::new("password_hash", "text"),
                Column::new("api_token", "text"),
            ],
        ))
    }

    fn row() -> Row {
        vec![
            Value::Int(7),
            Value::Text("a@example.com".into()),
            Value::Text("HASH".into()),
            Value::Text("TOKEN".into()),
        ]
    }

    fn columns(yaml: &str) -> Result<Columns> {
        let section = ConfigSection::from_yaml("transforms[1]", yaml)?;
        Columns::new("transforms[1]", &section.extract()?)
    }

    #[test]
    fn exclude_removes_from_rows_and_schema() {
        let mut c =
            columns("{ type: columns, exclude: [public.users.password_hash, '*.*.*_token'] }")
                .unwrap();
        let mut ev = ChangeEvent::row(
            Op::Update,
            users(),
            Some(row()),
            Some(row()),
            Position::new("1"),
        );
        assert_eq!(c.apply(&mut ev).unwrap(), Verdict::Keep);
        let t = ev.table.as_ref().unwrap();
        let names: Vec<&str> = t.columns.iter().map(|c| &*c.name).collect();
        assert_eq!(names, ["id", "email"]);
        assert_eq!(ev.after.as_ref().unwrap().len(), 2);
        assert_eq!(
            ev.before.as_ref().unwrap()[1],
            Value::Text("a@example.com".into())
        );
        let enc = Encoder::new("p", Format::Debezium).with_schemas(true);
        let mut out = Vec::new();
        enc.write_value(&ev, 0, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            !text.contains("password_hash") && !text.contains("HASH"),
            "{text}"
        );
        assert!(
            !text.contains("api_token") && !text.contains("TOKEN"),
            "{text}"
        );
    }

    #[test]
    fn include_keeps_named_columns_of_named_tables_only() {
        let mut c =
            columns("{ type: columns, include: [public.users.id, public.users.email] }").unwrap();
        let mut ev = ChangeEvent::row(Op::Create, users(), None, Some(row()), Position::new("1"));
        c.apply(&mut ev).unwrap();
        assert_eq!(ev.table.as_ref().unwrap().columns.len(), 2);
        let other = Arc::new(TableSchema::new(
            TableId::new("db", "public", "orders"),
            vec![Column::new("id", "int4").key(), Column::new("x", "text")],
        ));
        let mut ev = ChangeEvent::row(
            Op::Create,
            Arc::clone(&other),
            None,
            Some(vec![Value::Int(1), Value::Text("y".into())]),
            Position::new("1"),
        );
        c.apply(&mut ev).unwrap();
        assert!(Arc::ptr_eq(ev.table.as_ref().unwrap(), &other));
    }

    #[test]
    fn removing_every_key_column_is_refused() {
        let mut c = columns("{ type: columns, include: [public.users.email] }").unwrap();
        let mut ev = ChangeEvent::row(Op::Create, users(), None, Some(row()), Position::new("1"));
        let e = c.apply(&mut ev).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(
            e.message().contains("transforms[1].include[0]"),
            "{}",
            e.message()
        );
        assert!(e.message().contains("key column"), "{}", e.message());
    }

    #[test]
    fn unknown_columns_and_tables_are_config_errors() {
        let mut c = columns("{ type: columns, exclude: [public.users.emial] }").unwrap();
        let mut ev = ChangeEvent::row(Op::Create, users(), None, Some(row()), Position::new("1"));
        let e = c.apply(&mut ev).unwrap_err();
        assert!(
            e.message().contains("transforms[1].exclude[0]"),
            "{}",
            e.message()
        );
        assert!(e.message().contains("emial"), "{}", e.message());
        let mut c = columns("{ type: columns, exclude: [public.user.email] }").unwrap();
        let e = c.check_tables(&[(*users()).clone()]).unwrap_err();
        assert!(
            e.message().contains("matches no captured table"),
            "{}",
            e.message()
        );
        assert!(columns("{ type: columns }").is_err());
        assert!(columns("{ type: columns, exclude: [a.b] }").is_err());
    }
}
