//! `{type: route, tables: REGEX, topic: TEMPLATE}`: sends the tables whose `schema.table`
//! matches `REGEX` (the whole name) to one topic, `TEMPLATE` with the regex's capture groups
//! (`$1`, `${name}`), as Debezium's `ByLogicalTableRouter` does: sharded tables
//! `shop.orders_1`, `shop.orders_2` with `tables: 'shop\.orders_(.*)'`, `topic: 'shop.orders'`.
//!
//! Rows of different tables may share key values, so the key gets one more field,
//! `__dbz__physicalTableIdentifier` (`key_field`), holding the table's own default topic
//! `<pipeline>.<schema>.<table>`, as Debezium's `key.enforce.uniqueness` does
//! (`key_enforce_uniqueness: false` leaves the key alone). The Connect schema names become
//! `<topic>.Key`, `<topic>.Value` and `<topic>.Envelope`. Keyless tables stay keyless.

use std::sync::Arc;

use regex::Regex;
use serde::Deserialize;

use super::{config_error, table_list, SchemaCache, Transform, Verdict};
use crate::config::{ConfigSection, ConnectorType};
use crate::context::Context;
use crate::error::Result;
use crate::event::{ChangeEvent, RecordOverride, TableSchema, Value};

/// Debezium's key field that keeps keys of different tables apart.
pub const DEFAULT_KEY_FIELD: &str = "__dbz__physicalTableIdentifier";

fn default_true() -> bool {
    true
}

fn default_key_field() -> String {
    DEFAULT_KEY_FIELD.to_string()
}

/// `transforms[i]` with `type: route`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// `route`.
    #[serde(rename = "type")]
    pub kind: ConnectorType,
    /// A regular expression over `schema.table`, matching the whole name.
    pub tables: String,
    /// The topic, with capture groups as `$1` or `${name}`.
    pub topic: String,
    /// Add the table identifier to the key (default true).
    #[serde(default = "default_true")]
    pub key_enforce_uniqueness: bool,
    /// The key field holding the table identifier (default `__dbz__physicalTableIdentifier`).
    #[serde(default = "default_key_field")]
    pub key_field: String,
}

/// The `route` transform.
pub struct Route {
    key: String,
    pipeline: Arc<str>,
    regex: Regex,
    topic: String,
    key_field: Option<Arc<str>>,
    cache: SchemaCache<Option<RecordOverride>>,
}

/// Registry factory for `type: route`.
pub fn factory(section: &ConfigSection, ctx: &Context) -> Result<Box<dyn Transform>> {
    let config: RouteConfig = section.extract()?;
    Ok(Box::new(Route::new(
        section.key(),
        Arc::clone(&ctx.pipeline),
        &config,
    )?))
}

impl Route {
    /// A route from its config; `key` is its key path, `pipeline` the pipeline name.
    pub fn new(key: &str, pipeline: Arc<str>, config: &RouteConfig) -> Result<Self> {
        let regex = Regex::new(&format!("^(?:{})$", config.tables)).map_err(|e| {
            config_error(
                format!("{key}.tables"),
                format!("{:?} is not a valid regular expression: {e}", config.tables),
            )
        })?;
        if config.topic.is_empty() {
            return Err(config_error(format!("{key}.topic"), "expected a topic"));
        }
        for group in referenced_groups(&config.topic) {
            let known = match group.parse::<usize>() {
                Ok(n) => n < regex.captures_len(),
                Err(_) => regex.capture_names().flatten().any(|n| n == group),
            };
            if !known {
                return Err(config_error(
                    format!("{key}.topic"),
                    format!(
                        "{:?} uses capture group ${group}, which {:?} does not have",
                        config.topic, config.tables
                    ),
                ));
            }
        }
        if config.key_enforce_uniqueness && config.key_field.is_empty() {
            return Err(config_error(
                format!("{key}.key_field"),
                "expected a field name",
            ));
        }
        Ok(Route {
            key: key.to_string(),
            pipeline,
            regex,
            topic: config.topic.clone(),
            key_field: config
                .key_enforce_uniqueness
                .then(|| config.key_field.as_str().into()),
            cache: SchemaCache::default(),
        })
    }

    fn plan(&self, table: &TableSchema) -> Option<RecordOverride> {
        let name = table.id.to_string();
        let caps = self.regex.captures(&name)?;
        let mut topic = String::new();
        caps.expand(&self.topic, &mut topic);
        let topic: Arc<str> = topic.into();
        let key_fields = match &self.key_field {
            Some(field) if table.has_key() => vec![(
                Arc::clone(field),
                Value::Text(format!(
                    "{}.{}.{}",
                    self.pipeline, table.id.schema, table.id.table
                )),
            )],
            _ => Vec::new(),
        };
        Some(RecordOverride {
            schema_name: Some(Arc::clone(&topic)),
            topic: Some(topic),
            key_fields,
            ..RecordOverride::default()
        })
    }
}

/// The capture groups `$1`, `${name}` a replacement template refers to (`$$` is a dollar).
fn referenced_groups(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = template.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        if bytes.get(i + 1) == Some(&b'$') {
            i += 2;
            continue;
        }
        if bytes.get(i + 1) == Some(&b'{') {
            if let Some(end) = template[i + 2..].find('}') {
                out.push(template[i + 2..i + 2 + end].to_string());
                i += end + 3;
                continue;
            }
        }
        let name: String = template[i + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            i += name.len();
            out.push(name);
        }
        i += 1;
    }
    out
}

impl Transform for Route {
    fn check_tables(&mut self, tables: &[TableSchema]) -> Result<()> {
        if !tables
            .iter()
            .any(|t| self.regex.is_match(&t.id.to_string()))
        {
            return Err(config_error(
                format!("{}.tables", self.key),
                format!(
                    "{:?} matches no captured table (the source captures {})",
                    self.regex.as_str(),
                    table_list(tables)
                ),
            ));
        }
        Ok(())
    }

    fn apply(&mut self, event: &mut ChangeEvent) -> Result<Verdict> {
        let Some(table) = &event.table else {
            return Ok(Verdict::Keep);
        };
        let mut cache = std::mem::take(&mut self.cache);
        let plan = cache.get(table, |t| Ok(self.plan(t)));
        self.cache = cache;
        if let Some(over) = plan?.as_ref() {
            let record = event.record.get_or_insert_with(Box::default);
            record.topic.clone_from(&over.topic);
            record.schema_name.clone_from(&over.schema_name);
            record.key_fields.extend(over.key_fields.iter().cloned());
        }
        Ok(Verdict::Keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::Encoder;
    use crate::event::{Column, Op, Position, TableId};
    use crate::Format;

    fn shard(n: u32) -> Arc<TableSchema> {
        Arc::new(TableSchema::new(
            TableId::new("db", "shop", format!("orders_{n}")),
            vec![Column::new("id", "int4").key(), Column::new("v", "text")],
        ))
    }

    fn route(yaml: &str) -> Result<Route> {
        let section = ConfigSection::from_yaml("transforms[0]", yaml)?;
        Route::new("transforms[0]", "inv".into(), &section.extract()?)
    }

    #[test]
    fn shards_go_to_one_topic_with_distinct_keys() {
        let mut r =
            route(r"{ type: route, tables: 'shop\.orders_(\d+)', topic: 'shop.orders.all$1' }")
                .unwrap();
        let mut ev = ChangeEvent::row(
            Op::Create,
            shard(2),
            None,
            Some(vec![Value::Int(1), Value::Text("x".into())]),
            Position::new("1"),
        );
        r.apply(&mut ev).unwrap();
        let rec = ev.record.as_ref().unwrap();
        assert_eq!(rec.topic.as_deref(), Some("shop.orders.all2"));
        let mut key = Vec::new();
        Encoder::new("inv", Format::Debezium).write_key(&ev, &mut key);
        assert_eq!(
            String::from_utf8(key).unwrap(),
            r#"{"id":1,"__dbz__physicalTableIdentifier":"inv.shop.orders_2"}"#
        );
        let mut key = Vec::new();
        Encoder::new("inv", Format::Debezium)
            .with_schemas(true)
            .write_key(&ev, &mut key);
        let key = String::from_utf8(key).unwrap();
        assert!(
            key.contains(
                r#"{"type":"string","optional":false,"field":"__dbz__physicalTableIdentifier"}"#
            ),
            "{key}"
        );
        assert!(key.contains(r#""name":"shop.orders.all2.Key""#), "{key}");
    }

    #[test]
    fn other_tables_pass_and_bad_config_is_named() {
        let mut r = route(r"{ type: route, tables: 'shop\.orders_(\d+)', topic: 'all' }").unwrap();
        let t = Arc::new(TableSchema::new(
            TableId::new("db", "shop", "items"),
            vec![Column::new("id", "int4").key()],
        ));
        let mut ev = ChangeEvent::row(
            Op::Create,
            t.clone(),
            None,
            Some(vec![Value::Int(1)]),
            Position::new("1"),
        );
        r.apply(&mut ev).unwrap();
        assert!(ev.record.is_none());
        let e = r.check_tables(&[(*t).clone()]).unwrap_err();
        assert!(
            e.message().contains("transforms[0].tables"),
            "{}",
            e.message()
        );
        let e = route("{ type: route, tables: 'a(', topic: x }")
            .err()
            .unwrap();
        assert!(
            e.message().contains("transforms[0].tables"),
            "{}",
            e.message()
        );
        let e = route(r"{ type: route, tables: 'a\.(b)', topic: 'x$2' }")
            .err()
            .unwrap();
        assert!(
            e.message().contains("transforms[0].topic"),
            "{}",
            e.message()
        );
        assert!(route(r"{ type: route, tables: 'a\.(?P<t>b)', topic: 'x${t}' }").is_ok());
    }
}
