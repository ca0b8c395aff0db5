//! `{type: outbox, table: schema.table}`: the transactional outbox pattern, as Debezium's outbox
//! `EventRouter` does it with its defaults.
//!
//! The outbox table has the columns `id`, `aggregatetype`, `aggregateid`, `type` and `payload`
//! (names configurable). A row inserted into it (or read by the snapshot) becomes one record:
//! - topic `outbox.event.<aggregatetype>` (`route_topic`, where `${routedByValue}` stands for the
//!   `aggregatetype` value);
//! - key: `aggregateid` as JSON (`"order-17"`), so one aggregate's events share a partition;
//! - value: the `payload`: a JSON column's document as it is (JSON kept as JSON), as is a text
//!   column holding a JSON object or array (MariaDB's JSON); any other value in its JSON form
//!   (a text as a JSON string); a null payload gives a null value;
//! - header `id`: the event id's text.
//!
//! Updates and deletes of the outbox table are dropped (the usual insert-then-delete keeps the
//! table empty), as are its truncates. Every other table passes through unchanged.

use std::sync::Arc;

use serde::Deserialize;

use super::{config_error, data_error, event_at, table_list, SchemaCache, Transform, Verdict};
use crate::config::{ConfigSection, ConnectorType};
use crate::context::Context;
use crate::error::Result;
use crate::event::{ChangeEvent, Op, RawPart, TableSchema, Value};

/// Default topic template: Debezium's `route.topic.replacement`.
pub const DEFAULT_ROUTE_TOPIC: &str = "outbox.event.${routedByValue}";
/// What `route_topic` replaces with the `route_by_column` value.
pub const ROUTED_BY_VALUE: &str = "${routedByValue}";

macro_rules! default_column {
    ($f:ident, $name:literal) => {
        fn $f() -> String {
            $name.to_string()
        }
    };
}
default_column!(default_id, "id");
default_column!(default_key, "aggregateid");
default_column!(default_type, "type");
default_column!(default_payload, "payload");
default_column!(default_route_by, "aggregatetype");

fn default_route_topic() -> String {
    DEFAULT_ROUTE_TOPIC.to_string()
}

/// `transforms[i]` with `type: outbox`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// `outbox`.
    #[serde(rename = "type")]
    pub kind: ConnectorType,
    /// The outbox table, `schema.table`.
    pub table: String,
    /// The topic template (default `outbox.event.${routedByValue}`).
    #[serde(default = "default_route_topic")]
    pub route_topic: String,
    /// The event id column, written as the `id` header (default `id`).
    #[serde(default = "default_id")]
    pub id_column: String,
    /// The column that becomes the record key (default `aggregateid`).
    #[serde(default = "default_key")]
    pub key_column: String,
    /// The event type column (default `type`).
    #[serde(default = "default_type")]
    pub type_column: String,
    /// The column that becomes the record value (default `payload`).
    #[serde(default = "default_payload")]
    pub payload_column: String,
    /// The column whose value routes the record (default `aggregatetype`).
    #[serde(default = "default_route_by")]
    pub route_by_column: String,
}

/// The `outbox` transform.
pub struct Outbox {
    key: String,
    schema: String,
    table: String,
    config: OutboxConfig,
    cache: SchemaCache<Indexes>,
}

/// Where the outbox columns are in a schema of the outbox table.
struct Indexes {
    id: usize,
    key: usize,
    payload: usize,
    route_by: usize,
}

/// Registry factory for `type: outbox`.
pub fn factory(section: &ConfigSection, _ctx: &Context) -> Result<Box<dyn Transform>> {
    let config: OutboxConfig = section.extract()?;
    Ok(Box::new(Outbox::new(section.key(), config)?))
}

impl Outbox {
    /// An outbox router from its config; `key` is its key path.
    pub fn new(key: &str, config: OutboxConfig) -> Result<Self> {
        let (schema, table) = config
            .table
            .split_once('.')
            .filter(|(s, t)| !s.is_empty() && !t.is_empty())
            .ok_or_else(|| {
                config_error(
                    format!("{key}.table"),
                    format!("{:?} is not `schema.table`", config.table),
                )
            })?;
        if config.route_topic.is_empty() {
            return Err(config_error(
                format!("{key}.route_topic"),
                "expected a topic",
            ));
        }
        Ok(Outbox {
            key: key.to_string(),
            schema: schema.to_string(),
            table: table.to_string(),
            cache: SchemaCache::default(),
            config,
        })
    }

    fn is_outbox(&self, t: &TableSchema) -> bool {
        *t.id.schema == *self.schema && *t.id.table == *self.table
    }

    fn indexes(&self, t: &TableSchema) -> Result<Indexes> {
        let c = &self.config;
        let find = |name: &str, field: &str| {
            t.column_index(name).ok_or_else(|| {
                config_error(
                    format!("{}.{field}", self.key),
                    format!("the outbox table {} has no column {name:?}", t.id),
                )
            })
        };
        find(&c.type_column, "type_column")?;
        Ok(Indexes {
            id: find(&c.id_column, "id_column")?,
            key: find(&c.key_column, "key_column")?,
            payload: find(&c.payload_column, "payload_column")?,
            route_by: find(&c.route_by_column, "route_by_column")?,
        })
    }
}

impl Transform for Outbox {
    fn check_tables(&mut self, tables: &[TableSchema]) -> Result<()> {
        match tables.iter().find(|t| self.is_outbox(t)) {
            Some(t) => self.indexes(t).map(|_| ()),
            None => Err(config_error(
                format!("{}.table", self.key),
                format!(
                    "{:?} is not a captured table (the source captures {})",
                    self.config.table,
                    table_list(tables)
                ),
            )),
        }
    }

    fn apply(&mut self, event: &mut ChangeEvent) -> Result<Verdict> {
        let Some(table) = &event.table else {
            return Ok(Verdict::Keep);
        };
        if !self.is_outbox(table) {
            return Ok(Verdict::Keep);
        }
        if !matches!(event.op, Op::Create | Op::Read) {
            return Ok(Verdict::Drop);
        }
        let mut cache = std::mem::take(&mut self.cache);
        let idx = cache.get(table, |t| self.indexes(t));
        self.cache = cache;
        let idx = idx?;
        let Some(row) = &event.after else {
            return Ok(Verdict::Drop);
        };
        let get = |i: usize| row.get(i).unwrap_or(&Value::Null);
        let Some(routed_by) = super::value_text(get(idx.route_by)) else {
            return Err(data_error(format!(
                "the outbox row of {} has no {:?}: it cannot be routed",
                event_at(event),
                self.config.route_by_column
            )));
        };
        let topic = self.config.route_topic.replace(ROUTED_BY_VALUE, &routed_by);
        let mut key = Vec::new();
        crate::encode::write_value(&mut key, get(idx.key));
        let value = match get(idx.payload) {
            Value::Null | Value::Unavailable => RawPart::Null,
            Value::Json(doc) => RawPart::Bytes(doc.as_bytes().to_vec()),
            // A JSON object or array in a text column (MariaDB's JSON is LONGTEXT), as Debezium's
            // `table.expand.json.payload` reads it.
            Value::Text(text) if is_json_document(text) => RawPart::Bytes(text.as_bytes().to_vec()),
            other => {
                let mut out = Vec::new();
                crate::encode::write_value(&mut out, other);
                RawPart::Bytes(out)
            }
        };
        let mut headers = Vec::new();
        if let Some(id) = super::value_text(get(idx.id)) {
            headers.push((Arc::from("id"), id.into_bytes()));
        }
        let record = event.record.get_or_insert_with(Box::default);
        record.topic = Some(topic.into());
        record.key = Some(RawPart::Bytes(key));
        record.value = Some(value);
        record.headers.extend(headers);
        Ok(Verdict::Keep)
    }
}

/// Whether `text` is a JSON object or array.
fn is_json_document(text: &str) -> bool {
    let t = text.trim_start();
    (t.starts_with('{') || t.starts_with('['))
        && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Column, Position, TableId};
    use crate::ErrorKind;

    fn outbox_table() -> Arc<TableSchema> {
        Arc::new(TableSchema::new(
            TableId::new("db", "public", "outbox"),
            vec![
                Column::new("id", "uuid").key(),
                Column::new("aggregatetype", "varchar(255)"),
                Column::new("aggregateid", "varchar(255)"),
                Column::new("type", "varchar(255)"),
                Column::new("payload", "jsonb"),
            ],
        ))
    }

    fn row() -> Vec<Value> {
        vec![
            Value::Uuid([0x4d; 16]),
            Value::Text("order".into()),
            Value::Text("17".into()),
            Value::Text("OrderCreated".into()),
            Value::Json(r#"{"id":17,"total":9.5}"#.into()),
        ]
    }

    fn outbox(yaml: &str) -> Result<Outbox> {
        let section = ConfigSection::from_yaml("transforms[3]", yaml)?;
        Outbox::new("transforms[3]", section.extract()?)
    }

    #[test]
    fn an_insert_becomes_one_routed_record() {
        let mut o = outbox("{ type: outbox, table: public.outbox }").unwrap();
        let mut ev = ChangeEvent::row(
            Op::Create,
            outbox_table(),
            None,
            Some(row()),
            Position::new("1"),
        );
        assert_eq!(o.apply(&mut ev).unwrap(), Verdict::Keep);
        let rec = ev.record.as_ref().unwrap();
        assert_eq!(rec.topic.as_deref(), Some("outbox.event.order"));
        assert_eq!(rec.key, Some(RawPart::Bytes(br#""17""#.to_vec())));
        assert_eq!(
            rec.value,
            Some(RawPart::Bytes(br#"{"id":17,"total":9.5}"#.to_vec()))
        );
        assert_eq!(
            rec.headers,
            vec![(
                Arc::from("id"),
                b"4d4d4d4d-4d4d-4d4d-4d4d-4d4d4d4d4d4d".to_vec()
            )]
        );
    }

    #[test]
    fn a_text_payload_holding_json_stays_json_and_other_text_is_a_string() {
        let mut o = outbox("{ type: outbox, table: public.outbox }").unwrap();
        for (payload, expected) in [
            (r#"{"a": [1, 2]}"#, &br#"{"a": [1, 2]}"#[..]),
            ("plain words", &br#""plain words""#[..]),
            ("{not json", &br#""{not json""#[..]),
        ] {
            let mut r = row();
            r[4] = Value::Text(payload.into());
            let mut ev = ChangeEvent::row(
                Op::Create,
                outbox_table(),
                None,
                Some(r),
                Position::new("1"),
            );
            o.apply(&mut ev).unwrap();
            assert_eq!(
                ev.record.as_ref().unwrap().value,
                Some(RawPart::Bytes(expected.to_vec()))
            );
        }
    }

    #[test]
    fn deletes_and_updates_are_dropped_and_other_tables_pass() {
        let mut o = outbox(
            "{ type: outbox, table: public.outbox, route_topic: 'events.${routedByValue}.v1' }",
        )
        .unwrap();
        let mut del = ChangeEvent::row(
            Op::Delete,
            outbox_table(),
            Some(row()),
            None,
            Position::new("1"),
        );
        assert_eq!(o.apply(&mut del).unwrap(), Verdict::Drop);
        let mut upd = ChangeEvent::row(
            Op::Update,
            outbox_table(),
            Some(row()),
            Some(row()),
            Position::new("1"),
        );
        assert_eq!(o.apply(&mut upd).unwrap(), Verdict::Drop);
        let other = Arc::new(TableSchema::new(
            TableId::new("db", "public", "orders"),
            vec![Column::new("id", "int4").key()],
        ));
        let mut ev = ChangeEvent::row(
            Op::Delete,
            other,
            Some(vec![Value::Int(1)]),
            None,
            Position::new("1"),
        );
        assert_eq!(o.apply(&mut ev).unwrap(), Verdict::Keep);
        assert!(ev.record.is_none());
        let mut ev = ChangeEvent::row(
            Op::Read,
            outbox_table(),
            None,
            Some(row()),
            Position::new("1"),
        );
        o.apply(&mut ev).unwrap();
        assert_eq!(
            ev.record.as_ref().unwrap().topic.as_deref(),
            Some("events.order.v1")
        );
    }

    #[test]
    fn missing_table_or_columns_are_config_errors() {
        let mut o = outbox("{ type: outbox, table: public.outbox, payload_column: body }").unwrap();
        let e = o.check_tables(&[(*outbox_table()).clone()]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(
            e.message().contains("transforms[3].payload_column"),
            "{}",
            e.message()
        );
        let mut o = outbox("{ type: outbox, table: public.events }").unwrap();
        let e = o.check_tables(&[(*outbox_table()).clone()]).unwrap_err();
        assert!(
            e.message().contains("transforms[3].table"),
            "{}",
            e.message()
        );
        assert!(outbox("{ type: outbox, table: nodot }").is_err());
    }
}
