//! Topic routing: which topic each event goes to.
//!
//! A table's topic comes from its `sink.topics` override or the `sink.topic` template; logical
//! messages go to `sink.message_topic`. Characters Kafka does not allow in topic names become `_`
//! (as Debezium does), so every table maps to a valid name. Routes are cached per table.

use std::collections::HashMap;
use std::sync::Arc;

use connector_core::{ChangeEvent, Error, Result, TableId, TableSchema};

/// Longest topic name Kafka accepts.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Name,
    Database,
    Schema,
    Table,
}

/// A parsed topic template over `{name}`, `{database}`, `{schema}` and `{table}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicTemplate {
    parts: Vec<Part>,
}

impl TopicTemplate {
    /// Parse `text`; unknown placeholders and unbalanced braces are errors.
    pub fn parse(text: &str) -> Result<Self> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| Error::config(format!("{text:?} has an unclosed `{{`")))?;
            parts.push(match &after[..close] {
                "name" => Part::Name,
                "database" => Part::Database,
                "schema" => Part::Schema,
                "table" => Part::Table,
                other => {
                    return Err(Error::config(format!(
                        "{text:?} uses unknown placeholder {{{other}}}: expected {{name}}, \
                         {{database}}, {{schema}} or {{table}}"
                    )))
                }
            });
            rest = &after[close + 1..];
        }
        if rest.contains('}') {
            return Err(Error::config(format!("{text:?} has an unmatched `}}`")));
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        if parts.is_empty() {
            return Err(Error::config(
                "expected a topic name or template, got nothing",
            ));
        }
        Ok(TopicTemplate { parts })
    }

    /// Whether the template has no placeholders (a fixed topic name).
    pub fn is_fixed(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    /// The topic for `table` of pipeline `name`, made valid with [`sanitize`].
    pub fn render(&self, name: &str, table: Option<&TableId>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match (part, table) {
                (Part::Literal(s), _) => out.push_str(s),
                (Part::Name, _) => out.push_str(name),
                (Part::Database, Some(t)) => out.push_str(&t.database),
                (Part::Schema, Some(t)) => out.push_str(&t.schema),
                (Part::Table, Some(t)) => out.push_str(&t.table),
                (_, None) => {}
            }
        }
        sanitize(&out)
    }
}

/// Replace characters Kafka does not allow in topic names (`[a-zA-Z0-9._-]`) by `_`, and cut the
/// name to 249 characters.
pub fn sanitize(topic: &str) -> String {
    let mut s: String = topic
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.truncate(MAX_TOPIC_NAME_LEN);
    if s.is_empty() || s == "." || s == ".." {
        s = format!("_{s}");
    }
    s
}

/// Check a literal topic name (dead-letter, offsets topics).
pub fn validate_topic_name(topic: &str) -> Result<()> {
    if topic.is_empty() || topic.len() > MAX_TOPIC_NAME_LEN || sanitize(topic) != topic {
        return Err(Error::config(format!(
            "{topic:?} is not a valid topic name: expected 1 to 249 of [a-zA-Z0-9._-]"
        )));
    }
    Ok(())
}

/// Maps events to topic names, caching per table.
#[derive(Debug)]
pub struct Router {
    pipeline: Arc<str>,
    default: TopicTemplate,
    overrides: HashMap<(String, String), TopicTemplate>,
    message_topic: Arc<str>,
    cache: HashMap<TableId, Arc<str>>,
    last: Option<(Arc<TableSchema>, Arc<str>)>,
    last_override: Option<(Arc<str>, Arc<str>)>,
}

impl Router {
    /// A router for pipeline `pipeline` with the default template, per-table overrides
    /// (`schema.table` to template) and the logical message topic template.
    pub fn new(
        pipeline: Arc<str>,
        default: &str,
        overrides: &std::collections::BTreeMap<String, String>,
        message_topic: &str,
    ) -> Result<Self> {
        let mut map = HashMap::new();
        for (table, template) in overrides {
            let (schema, name) = table.split_once('.').ok_or_else(|| {
                Error::config(format!(
                    "key `sink.topics.{table}`: expected `schema.table`"
                ))
            })?;
            map.insert(
                (schema.to_string(), name.to_string()),
                TopicTemplate::parse(template)?,
            );
        }
        let message_topic = TopicTemplate::parse(message_topic)?.render(&pipeline, None);
        Ok(Router {
            default: TopicTemplate::parse(default)?,
            overrides: map,
            message_topic: message_topic.into(),
            cache: HashMap::new(),
            last: None,
            last_override: None,
            pipeline,
        })
    }

    /// The topic of `table`.
    pub fn table_topic(&mut self, table: &Arc<TableSchema>) -> Arc<str> {
        if let Some((t, topic)) = &self.last {
            if Arc::ptr_eq(t, table) {
                return Arc::clone(topic);
            }
        }
        let topic = match self.cache.get(&table.id) {
            Some(topic) => Arc::clone(topic),
            None => {
                let id = &table.id;
                let template = self
                    .overrides
                    .get(&(id.schema.to_string(), id.table.to_string()))
                    .unwrap_or(&self.default);
                let topic: Arc<str> = template.render(&self.pipeline, Some(id)).into();
                self.cache.insert(id.clone(), Arc::clone(&topic));
                topic
            }
        };
        self.last = Some((Arc::clone(table), Arc::clone(&topic)));
        topic
    }

    /// The topic of `event`: a transform's topic override, else its table's or the message topic.
    pub fn topic(&mut self, event: &ChangeEvent) -> Arc<str> {
        if let Some(topic) = event.record.as_ref().and_then(|r| r.topic.as_ref()) {
            return self.override_topic(topic);
        }
        match &event.table {
            Some(table) => self.table_topic(table),
            None => Arc::clone(&self.message_topic),
        }
    }

    /// A transform's topic, made valid with [`sanitize`] (cached for the last one seen).
    fn override_topic(&mut self, topic: &Arc<str>) -> Arc<str> {
        if let Some((given, valid)) = &self.last_override {
            if Arc::ptr_eq(given, topic) || given == topic {
                return Arc::clone(valid);
            }
        }
        let valid: Arc<str> = sanitize(topic).into();
        self.last_override = Some((Arc::clone(topic), Arc::clone(&valid)));
        valid
    }

    /// Topics known without seeing any event: the per-table overrides without placeholders.
    pub fn fixed_topics(&self) -> Vec<String> {
        self.overrides
            .values()
            .filter(|t| t.is_fixed())
            .map(|t| t.render(&self.pipeline, None))
            .collect()
    }
}

/// A partition for keyless events of `table`: the same for every event of the table, so that
/// their order is kept too.
pub fn keyless_partition(table: Option<&TableId>, partitions: i32) -> i32 {
    if partitions <= 1 {
        return 0;
    }
    // FNV-1a over `database.schema.table`: stable across processes and versions.
    let mut h: u32 = 0x811c_9dc5;
    if let Some(t) = table {
        for part in [&t.database, &t.schema, &t.table] {
            for b in part.bytes().chain(std::iter::once(b'.')) {
                h ^= u32::from(b);
                h = h.wrapping_mul(0x0100_0193);
            }
        }
    }
    (h % partitions as u32) as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_core::Column;

    fn table(schema: &str, name: &str) -> Arc<TableSchema> {
        Arc::new(TableSchema::new(
            TableId::new("db", schema, name),
            vec![Column::new("id", "int4").key()],
        ))
    }

    #[test]
    fn templates_render_and_sanitize() {
        let t = TopicTemplate::parse("{name}.{schema}.{table}").unwrap();
        let id = TableId::new("db", "public", "order items$");
        assert_eq!(t.render("inv", Some(&id)), "inv.public.order_items_");
        let t = TopicTemplate::parse("cdc-{database}-{table}").unwrap();
        assert_eq!(t.render("inv", Some(&id)), "cdc-db-order_items_");
        assert!(TopicTemplate::parse("x{nope}").is_err());
        assert!(TopicTemplate::parse("x{name").is_err());
        assert!(TopicTemplate::parse("x}").is_err());
        assert!(TopicTemplate::parse("fixed").unwrap().is_fixed());
        assert_eq!(sanitize(&"a".repeat(300)).len(), MAX_TOPIC_NAME_LEN);
        assert_eq!(sanitize("ünï"), "_n_");
    }

    #[test]
    fn overrides_win_and_messages_have_their_topic() {
        let mut overrides = std::collections::BTreeMap::new();
        overrides.insert("public.orders".to_string(), "orders".to_string());
        let mut r = Router::new(
            "inv".into(),
            "{name}.{schema}.{table}",
            &overrides,
            "{name}.message",
        )
        .unwrap();
        assert_eq!(&*r.table_topic(&table("public", "orders")), "orders");
        assert_eq!(
            &*r.table_topic(&table("public", "items")),
            "inv.public.items"
        );
        assert_eq!(&*r.table_topic(&table("public", "orders")), "orders");
        let msg = ChangeEvent {
            op: connector_core::Op::Message,
            table: None,
            before: None,
            after: None,
            commit_ts_us: 0,
            txn: None,
            position: connector_core::Position::new("1"),
            source: Default::default(),
            message: None,
            record: None,
        };
        assert_eq!(&*r.topic(&msg), "inv.message");
        assert_eq!(r.fixed_topics(), vec!["orders".to_string()]);
    }

    #[test]
    fn keyless_partition_is_stable_per_table() {
        let a = TableId::new("d", "s", "a");
        let p = keyless_partition(Some(&a), 12);
        assert!((0..12).contains(&p));
        assert_eq!(p, keyless_partition(Some(&a.clone()), 12));
        assert_eq!(keyless_partition(Some(&a), 1), 0);
    }
}
