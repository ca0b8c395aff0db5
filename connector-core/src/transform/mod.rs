//! Transforms between source and sink: the [`Transform`] trait, the [`TransformChain`] the
//! runtime applies to every batch, and the built-ins `filter`, `columns`, `mask`, `route` and
//! `outbox`.
//!
//! A pipeline's `transforms:` list is applied in order to every event after the source read it
//! and before the sink sees it. A transform may change an event in place (drop columns, replace
//! values, set a [`RecordOverride`](crate::event::RecordOverride) with another topic, key or value)
//! or drop it. Dropping never holds positions back: the batch keeps its checkpoint, so a batch
//! whose events were all dropped still moves the durable position (and the PostgreSQL slot, the
//! stored MySQL position) forward.
//!
//! A framework user registers their own transform like a connector:
//!
//! ```
//! # use connector_core::{Registry, Context, ConfigSection, Result, ChangeEvent};
//! # use connector_core::transform::{Transform, Verdict};
//! struct DropMessages;
//! impl Transform for DropMessages {
//!     fn apply(&mut self, event: &mut ChangeEvent) -> Result<Verdict> {
//!         Ok(if event.table.is_none() { Verdict::Drop } else { Verdict::Keep })
//!     }
//! }
//! let mut registry = Registry::with_builtins();
//! registry.add_transform("drop-messages", |_section: &ConfigSection, _ctx: &Context| {
//!     Ok(Box::new(DropMessages) as Box<dyn Transform>)
//! });
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::ConfigSection;
use crate::context::Context;
use crate::error::{Error, ErrorKind, Result};
use crate::event::{Batch, ChangeEvent, TableId, TableSchema, Value};
use crate::source::Source;

pub mod columns;
pub mod filter;
pub mod mask;
pub mod outbox;
pub mod route;

/// What a transform decided about one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Pass the (possibly changed) event on.
    Keep,
    /// Drop the event: no later transform and no sink sees it. Its position still advances.
    Drop,
}

/// A step between source and sink.
///
/// The runtime builds a pipeline's transforms once per run attempt, calls
/// [`check_tables`](Transform::check_tables) once the source has started (when it knows its
/// tables), then [`apply`](Transform::apply) to every event in source order, from one task.
pub trait Transform: Send {
    /// Check the configuration against the tables the source captures (a pattern that matches no
    /// table, a column that does not exist): a [`ErrorKind::Config`] error naming the key path.
    /// Called at start with every table the source knows then; not called when it knows none.
    fn check_tables(&mut self, tables: &[TableSchema]) -> Result<()> {
        let _ = tables;
        Ok(())
    }

    /// Change `event` in place, or drop it. An error stops the pipeline; it should name the
    /// event's table and position (see [`event_at`]) and never carry a row value.
    fn apply(&mut self, event: &mut ChangeEvent) -> Result<Verdict>;
}

/// Builds a transform from its `transforms[i]` section.
pub type TransformFactory =
    Arc<dyn Fn(&ConfigSection, &Context) -> Result<Box<dyn Transform>> + Send + Sync>;

/// The `transforms:` list, built: applied in order to every batch.
#[derive(Default)]
pub struct TransformChain {
    steps: Vec<(Arc<str>, Box<dyn Transform>)>,
}

impl std::fmt::Debug for TransformChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.steps.iter().map(|(k, _)| k))
            .finish()
    }
}

impl TransformChain {
    /// A chain of `steps`, each with the key path of its section (`transforms[0]`).
    pub fn new(steps: Vec<(Arc<str>, Box<dyn Transform>)>) -> Self {
        TransformChain { steps }
    }

    /// Whether there are no transforms.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// After the source started: check every transform against the tables it captures (when
    /// it knows them).
    pub async fn start(&mut self, source: &mut dyn Source) -> Result<()> {
        if self.steps.is_empty() {
            return Ok(());
        }
        if let Some(tables) = source.captured_tables().await? {
            self.check_tables(&tables)?;
        }
        Ok(())
    }

    /// Check every transform against the tables the source captures.
    pub fn check_tables(&mut self, tables: &[TableSchema]) -> Result<()> {
        for (_, t) in &mut self.steps {
            t.check_tables(tables)?;
        }
        Ok(())
    }

    /// Apply every transform, in order, to every event of `batch`; dropped events leave the batch,
    /// its checkpoint stays. Returns how many events were dropped.
    pub fn apply(&mut self, batch: &mut Batch) -> Result<usize> {
        if self.steps.is_empty() {
            return Ok(0);
        }
        let before = batch.events.len();
        let mut failure = None;
        batch.events.retain_mut(|event| {
            if failure.is_some() {
                return false;
            }
            for (_, t) in &mut self.steps {
                match t.apply(event) {
                    Ok(Verdict::Keep) => {}
                    Ok(Verdict::Drop) => return false,
                    Err(e) => {
                        failure = Some(e);
                        return false;
                    }
                }
            }
            true
        });
        match failure {
            Some(e) => Err(e),
            None => Ok(before - batch.events.len()),
        }
    }
}

/// `table T at position P` (or `a logical message at position P`), for run-time errors.
pub fn event_at(event: &ChangeEvent) -> String {
    match &event.table {
        Some(t) => format!("table {} at position {}", t.id, event.position),
        None => format!("a logical message at position {}", event.position),
    }
}

/// A config error for `key` (a key path such as `transforms[2].when`).
pub fn config_error(key: impl std::fmt::Display, what: impl std::fmt::Display) -> Error {
    Error::config(format!("key `{key}`: {what}"))
}

/// A run-time data error of a transform.
pub fn data_error(what: impl Into<String>) -> Error {
    Error::new(ErrorKind::Data, what)
}

/// A `schema.table` glob (`public.*`, `shop.order_?`), matched as `tables:` entries are.
#[derive(Clone, Debug)]
pub struct TablePattern {
    schema: String,
    table: String,
    text: String,
}

impl TablePattern {
    /// Parse `text` (`schema.table`, either part a glob); `key` names it in errors.
    pub fn parse(key: &str, text: &str) -> Result<Self> {
        let (schema, table) = text
            .split_once('.')
            .filter(|(s, t)| !s.is_empty() && !t.is_empty() && !t.contains('.'))
            .ok_or_else(|| {
                config_error(
                    key,
                    format!("{text:?} is not `schema.table` (globs allowed)"),
                )
            })?;
        Ok(TablePattern {
            schema: schema.to_string(),
            table: table.to_string(),
            text: text.to_string(),
        })
    }

    /// Whether `id` matches.
    pub fn matches(&self, id: &TableId) -> bool {
        crate::config::glob_match(&self.schema, &id.schema)
            && crate::config::glob_match(&self.table, &id.table)
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// A `schema.table.column` glob, as `columns` and `mask` take them.
#[derive(Clone, Debug)]
pub struct ColumnPattern {
    table: TablePattern,
    column: String,
    exact: bool,
    text: String,
}

impl ColumnPattern {
    /// Parse `text` (`schema.table.column`, any part a glob); `key` names it in errors.
    pub fn parse(key: &str, text: &str) -> Result<Self> {
        let mut parts = text.split('.');
        let (Some(schema), Some(table), Some(column), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(config_error(
                key,
                format!("{text:?} is not `schema.table.column` (globs allowed)"),
            ));
        };
        if schema.is_empty() || table.is_empty() || column.is_empty() {
            return Err(config_error(
                key,
                format!("{text:?} is not `schema.table.column` (globs allowed)"),
            ));
        }
        Ok(ColumnPattern {
            table: TablePattern::parse(key, &format!("{schema}.{table}"))?,
            column: column.to_string(),
            exact: !crate::config::is_pattern(text),
            text: text.to_string(),
        })
    }

    /// Whether it names tables like `id`.
    pub fn matches_table(&self, id: &TableId) -> bool {
        self.table.matches(id)
    }

    /// Whether it names column `column`.
    pub fn matches_column(&self, column: &str) -> bool {
        crate::config::glob_match(&self.column, column)
    }

    /// Whether no part is a glob (it must then name an existing column).
    pub fn is_exact(&self) -> bool {
        self.exact
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Check column patterns against known tables: every pattern must name at least one column of
/// the tables known; an exact one whose table is known must name an existing column.
/// `key(i)` is the key path of pattern `i`.
pub fn check_column_patterns(
    patterns: &[ColumnPattern],
    tables: &[TableSchema],
    key: impl Fn(usize) -> String,
) -> Result<()> {
    for (i, p) in patterns.iter().enumerate() {
        let mut table_seen = false;
        let mut column_seen = false;
        for t in tables.iter().filter(|t| p.matches_table(&t.id)) {
            table_seen = true;
            if t.columns.iter().any(|c| p.matches_column(&c.name)) {
                column_seen = true;
            }
        }
        if !table_seen {
            return Err(config_error(
                key(i),
                format!(
                    "{:?} matches no captured table (the source captures {})",
                    p.as_str(),
                    table_list(tables)
                ),
            ));
        }
        if !column_seen {
            return Err(config_error(
                key(i),
                format!("{:?} matches no column of the tables it names", p.as_str()),
            ));
        }
    }
    Ok(())
}

/// Check one table schema seen at run time against exact column patterns naming it.
pub fn check_exact_columns(
    patterns: &[ColumnPattern],
    table: &TableSchema,
    key: impl Fn(usize) -> String,
) -> Result<()> {
    for (i, p) in patterns.iter().enumerate() {
        if p.is_exact()
            && p.matches_table(&table.id)
            && !table.columns.iter().any(|c| p.matches_column(&c.name))
        {
            return Err(config_error(
                key(i),
                format!("table {} has no column {:?}", table.id, p.column),
            ));
        }
    }
    Ok(())
}

/// `a.b, c.d` of up to 10 tables, for errors.
pub fn table_list(tables: &[TableSchema]) -> String {
    let mut names: Vec<String> = tables.iter().take(10).map(|t| t.id.to_string()).collect();
    if tables.len() > 10 {
        names.push(format!("and {} more", tables.len() - 10));
    }
    if names.is_empty() {
        "no table".to_string()
    } else {
        names.join(", ")
    }
}

/// A per-table cache of what a transform derived from a table's schema, refreshed when the
/// schema changes (a new `Arc`).
#[derive(Debug)]
pub struct SchemaCache<T> {
    entries: HashMap<TableId, (Arc<TableSchema>, Arc<T>)>,
    last: Option<(Arc<TableSchema>, Arc<T>)>,
}

impl<T> Default for SchemaCache<T> {
    fn default() -> Self {
        SchemaCache {
            entries: HashMap::new(),
            last: None,
        }
    }
}

impl<T> SchemaCache<T> {
    /// What was derived from `table`, deriving it with `make` the first time this schema is seen.
    pub fn get(
        &mut self,
        table: &Arc<TableSchema>,
        make: impl FnOnce(&Arc<TableSchema>) -> Result<T>,
    ) -> Result<Arc<T>> {
        if let Some((t, v)) = &self.last {
            if Arc::ptr_eq(t, table) {
                return Ok(Arc::clone(v));
            }
        }
        let value = match self.entries.get(&table.id) {
            Some((t, v)) if Arc::ptr_eq(t, table) || **t == **table => Arc::clone(v),
            _ => {
                let v = Arc::new(make(table)?);
                self.entries
                    .insert(table.id.clone(), (Arc::clone(table), Arc::clone(&v)));
                v
            }
        };
        self.last = Some((Arc::clone(table), Arc::clone(&value)));
        Ok(value)
    }
}

/// The text of a value as it is written in the topic, unquoted: `alice@example.com`, `42`,
/// `2024-01-31`; `None` for null and unavailable values.
pub fn value_text(value: &Value) -> Option<String> {
    match value {
        Value::Null | Value::Unavailable => None,
        Value::Text(s) | Value::Json(s) => Some(s.clone()),
        Value::Decimal(s) => Some(s.to_string()),
        other => {
            let mut out = Vec::new();
            crate::encode::write_value(&mut out, other);
            if out.first() == Some(&b'"') {
                serde_json::from_slice::<String>(&out).ok()
            } else {
                String::from_utf8(out).ok()
            }
        }
    }
}
