//! The event shapes: key, Debezium envelope, logical message, flat row, and their schemas.

use super::json::{write_int, write_str};
use super::schema::{
    connector_source_fields, type_of_value, write_field_schema, write_fixed_field,
    write_type_members, SNAPSHOT_FIELD_SCHEMA, TRANSACTION_FIELD_SCHEMA,
};
use super::value::{write_fallback, write_typed, write_value};
use super::{Encoder, Format, VERSION};
use crate::column_type::ColumnType;
use crate::event::{ChangeEvent, Column, Op, RawPart, Row, TableSchema, Value};

/// Debezium's schema names of the PostgreSQL logical decoding message records.
const MESSAGE_KEY_SCHEMA: &str = "io.debezium.connector.postgresql.MessageKey";
const MESSAGE_VALUE_SCHEMA: &str = "io.debezium.connector.postgresql.MessageValue";
const MESSAGE_BLOCK_SCHEMA: &str = "io.debezium.connector.postgresql.Message";

impl Encoder {
    /// Append the key of `event` to `out`; returns `false` (and writes nothing) when the event has
    /// no key (a table without key columns). A transform's raw key
    /// ([`RecordOverride::key`](crate::event::RecordOverride)) is written as it is.
    pub fn write_key(&self, event: &ChangeEvent, out: &mut Vec<u8>) -> bool {
        if let Some(raw) = event.record.as_ref().and_then(|r| r.key.as_ref()) {
            return match raw {
                RawPart::Null => false,
                RawPart::Bytes(b) => {
                    out.extend_from_slice(b);
                    true
                }
            };
        }
        if !self.schemas {
            return self.write_bare_key(event, out);
        }
        let start = out.len();
        out.extend_from_slice(b"{\"schema\":");
        self.write_key_schema(event, out);
        out.extend_from_slice(b",\"payload\":");
        if !self.write_bare_key(event, out) {
            out.truncate(start);
            return false;
        }
        out.push(b'}');
        true
    }

    fn write_bare_key(&self, event: &ChangeEvent, out: &mut Vec<u8>) -> bool {
        if let Some(msg) = &event.message {
            out.extend_from_slice(b"{\"prefix\":");
            write_str(out, &msg.prefix);
            out.push(b'}');
            return true;
        }
        let Some(table) = &event.table else {
            return false;
        };
        if !table.has_key() || event.key_row().is_none() {
            return false;
        }
        out.push(b'{');
        let mut first = true;
        for (i, col) in table.columns.iter().enumerate().filter(|(_, c)| c.key) {
            if !first {
                out.push(b',');
            }
            first = false;
            write_str(out, &col.name);
            out.push(b':');
            self.write_column_value(out, col, event.key_value(i).unwrap_or(&Value::Null));
        }
        for (name, value) in event.record.iter().flat_map(|r| &r.key_fields) {
            out.push(b',');
            write_str(out, name);
            out.push(b':');
            write_value(out, value);
        }
        out.push(b'}');
        true
    }

    /// One column's value; a null in a column that does not accept null is the type's zero, as
    /// Debezium writes it (the key-only `before` of a delete, a MySQL zero date).
    fn write_column_value(&self, out: &mut Vec<u8>, col: &Column, v: &Value) {
        if v.is_null() && !col.nullable {
            write_fallback(out, &col.ty, &self.modes);
        } else {
            write_typed(out, v, &col.ty, &self.modes);
        }
    }

    /// Append the value of `event` to `out` in this encoder's format; a transform's raw value
    /// is written as it is (a null one as `null`).
    pub fn write_value(&self, event: &ChangeEvent, now_us: i64, out: &mut Vec<u8>) {
        if let Some(raw) = event.record.as_ref().and_then(|r| r.value.as_ref()) {
            match raw {
                RawPart::Null => out.extend_from_slice(b"null"),
                RawPart::Bytes(b) => out.extend_from_slice(b),
            }
            return;
        }
        if self.schemas {
            out.extend_from_slice(b"{\"schema\":");
            self.write_value_schema(event, out);
            out.extend_from_slice(b",\"payload\":");
            self.write_bare_value(event, now_us, out);
            out.push(b'}');
        } else {
            self.write_bare_value(event, now_us, out);
        }
    }

    fn write_bare_value(&self, event: &ChangeEvent, now_us: i64, out: &mut Vec<u8>) {
        match self.format {
            Format::Debezium => self.write_envelope(event, now_us, out),
            Format::Flat => self.write_flat(event, out),
        }
    }

    fn write_row(&self, table: Option<&TableSchema>, row: Option<&Row>, out: &mut Vec<u8>) {
        let (Some(table), Some(row)) = (table, row) else {
            out.extend_from_slice(b"null");
            return;
        };
        out.push(b'{');
        for (i, (col, v)) in table.columns.iter().zip(row).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(out, &col.name);
            out.push(b':');
            self.write_column_value(out, col, v);
        }
        out.push(b'}');
    }

    fn write_content(&self, out: &mut Vec<u8>, content: &[u8]) {
        write_typed(
            out,
            &Value::Bytes(content.to_vec()),
            &ColumnType::Bytes,
            &self.modes,
        );
    }

    fn write_envelope(&self, event: &ChangeEvent, now_us: i64, out: &mut Vec<u8>) {
        out.push(b'{');
        if let Some(msg) = &event.message {
            out.extend_from_slice(b"\"op\":\"m\",\"ts_ms\":");
            write_int(out, event.commit_ts_us.div_euclid(1000));
            out.extend_from_slice(b",\"source\":");
            self.write_source(event, out);
            out.extend_from_slice(b",\"transaction\":");
            self.write_transaction(event, out);
            out.extend_from_slice(b",\"message\":{\"prefix\":");
            write_str(out, &msg.prefix);
            out.extend_from_slice(b",\"content\":");
            self.write_content(out, &msg.content);
            out.extend_from_slice(b"}}");
            return;
        }
        out.extend_from_slice(b"\"before\":");
        self.write_row(event.table.as_deref(), event.before.as_ref(), out);
        out.extend_from_slice(b",\"after\":");
        self.write_row(event.table.as_deref(), event.after.as_ref(), out);
        out.extend_from_slice(b",\"source\":");
        self.write_source(event, out);
        out.extend_from_slice(b",\"transaction\":");
        self.write_transaction(event, out);
        out.extend_from_slice(b",\"op\":\"");
        out.extend_from_slice(event.op.code().as_bytes());
        out.extend_from_slice(b"\",\"ts_ms\":");
        write_int(out, now_us.div_euclid(1000));
        out.extend_from_slice(b",\"ts_us\":");
        write_int(out, now_us);
        out.extend_from_slice(b",\"ts_ns\":");
        write_int(out, now_us.saturating_mul(1000));
        out.push(b'}');
    }

    /// The `source` block with Debezium's fields for the connector, in Debezium's order.
    fn write_source(&self, event: &ChangeEvent, out: &mut Vec<u8>) {
        let field = |name: &str| {
            event
                .source
                .fields
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v)
        };
        out.extend_from_slice(b"{\"version\":");
        write_str(out, VERSION);
        out.extend_from_slice(b",\"connector\":");
        write_str(out, event.source.connector);
        out.extend_from_slice(b",\"name\":");
        write_str(out, &self.name);
        out.extend_from_slice(b",\"ts_ms\":");
        write_int(out, event.commit_ts_us.div_euclid(1000));
        out.extend_from_slice(b",\"snapshot\":");
        write_str(out, event.source.snapshot.as_str());
        out.extend_from_slice(b",\"db\":");
        match &event.table {
            Some(t) => write_str(out, &t.id.database),
            None => write_value(out, field("db").unwrap_or(&Value::Text(String::new()))),
        }
        out.extend_from_slice(b",\"sequence\":");
        write_value(out, field("sequence").unwrap_or(&Value::Null));
        out.extend_from_slice(b",\"ts_us\":");
        write_int(out, event.commit_ts_us);
        out.extend_from_slice(b",\"ts_ns\":");
        write_int(out, event.commit_ts_us.saturating_mul(1000));
        let own = connector_source_fields(event.source.connector);
        if own.is_empty() {
            if let Some(t) = &event.table {
                out.extend_from_slice(b",\"schema\":");
                write_str(out, &t.id.schema);
                out.extend_from_slice(b",\"table\":");
                write_str(out, &t.id.table);
            }
            for (name, value) in &event.source.fields {
                out.push(b',');
                write_str(out, name);
                out.push(b':');
                write_value(out, value);
            }
        } else {
            for (name, kind, optional) in own {
                out.push(b',');
                write_str(out, name);
                out.push(b':');
                match (*name, &event.table) {
                    ("schema", Some(t)) => write_str(out, &t.id.schema),
                    ("table", Some(t)) => write_str(out, &t.id.table),
                    _ => match field(name) {
                        Some(v) if !v.is_null() => write_value(out, v),
                        _ if *optional => out.extend_from_slice(b"null"),
                        _ if *kind == "string" => out.extend_from_slice(b"\"\""),
                        _ => out.push(b'0'),
                    },
                }
            }
        }
        out.push(b'}');
    }

    fn write_flat(&self, event: &ChangeEvent, out: &mut Vec<u8>) {
        out.push(b'{');
        let mut first = true;
        if let Some(msg) = &event.message {
            out.extend_from_slice(b"\"prefix\":");
            write_str(out, &msg.prefix);
            out.extend_from_slice(b",\"content\":");
            self.write_content(out, &msg.content);
            first = false;
        } else if let (Some(table), Some(row)) = (&event.table, event.key_row()) {
            for (col, v) in table.columns.iter().zip(row) {
                if !first {
                    out.push(b',');
                }
                first = false;
                write_str(out, &col.name);
                out.push(b':');
                self.write_column_value(out, col, v);
            }
        }
        if !first {
            out.push(b',');
        }
        out.extend_from_slice(b"\"__op\":\"");
        out.extend_from_slice(event.op.code().as_bytes());
        out.extend_from_slice(b"\",\"__table\":");
        match &event.table {
            Some(t) => write_str(out, &t.id.table),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"__source_ts_ms\":");
        write_int(out, event.commit_ts_us.div_euclid(1000));
        out.extend_from_slice(b",\"__deleted\":");
        write_str(
            out,
            if event.op == Op::Delete {
                "true"
            } else {
                "false"
            },
        );
        out.push(b'}');
    }

    /// `<name>.<schema>.<table>.<suffix>`, or `<base>.<suffix>` when a transform renamed the
    /// record's schemas (route).
    fn write_schema_name(&self, event: &ChangeEvent, suffix: &str, out: &mut Vec<u8>) {
        let name = match (
            &event.table,
            event.record.as_ref().and_then(|r| r.schema_name.as_ref()),
        ) {
            (_, Some(base)) => format!("{base}.{suffix}"),
            (Some(t), None) => format!("{}.{}.{}.{suffix}", self.name, t.id.schema, t.id.table),
            (None, None) => format!("{}.message.{suffix}", self.name),
        };
        write_str(out, &name);
    }

    /// The column's type; for columns of unknown type, the type of their first non-null value.
    fn column_type(col: &Column, i: usize, rows: &[Option<&Row>]) -> ColumnType {
        match &col.ty {
            ColumnType::Other => rows
                .iter()
                .filter_map(|r| r.and_then(|r| r.get(i)))
                .find(|v| !v.is_null() && !matches!(v, Value::Unavailable))
                .map_or(ColumnType::Other, type_of_value),
            ty => ty.clone(),
        }
    }

    /// The fields of the row struct, comma-separated without brackets.
    fn write_row_fields(&self, table: &TableSchema, rows: &[Option<&Row>], out: &mut Vec<u8>) {
        for (i, col) in table.columns.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let ty = Self::column_type(col, i, rows);
            write_field_schema(out, &col.name, &ty, &self.modes, col.nullable);
        }
    }

    fn write_key_schema(&self, event: &ChangeEvent, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"type\":\"struct\",\"fields\":[");
        if event.message.is_some() {
            write_fixed_field(out, "prefix", "string", true);
            out.extend_from_slice(b"],\"optional\":false,\"name\":");
            write_str(out, MESSAGE_KEY_SCHEMA);
            out.extend_from_slice(b",\"version\":1}");
            return;
        }
        if let (Some(table), Some(row)) = (&event.table, event.key_row()) {
            let rows = [Some(row)];
            let mut first = true;
            for (i, col) in table.columns.iter().enumerate() {
                if !col.key {
                    continue;
                }
                if !first {
                    out.push(b',');
                }
                first = false;
                let ty = Self::column_type(col, i, &rows);
                write_field_schema(out, &col.name, &ty, &self.modes, col.nullable);
            }
            for (name, value) in event.record.iter().flat_map(|r| &r.key_fields) {
                out.push(b',');
                write_field_schema(
                    out,
                    name,
                    &type_of_value(value),
                    &self.modes,
                    value.is_null(),
                );
            }
        }
        out.extend_from_slice(b"],\"optional\":false,\"name\":");
        self.write_schema_name(event, "Key", out);
        out.push(b'}');
    }

    fn write_value_schema(&self, event: &ChangeEvent, out: &mut Vec<u8>) {
        match self.format {
            Format::Debezium => self.write_envelope_schema(event, out),
            Format::Flat => self.write_flat_schema(event, out),
        }
    }

    fn write_message_fields(&self, out: &mut Vec<u8>) {
        write_fixed_field(out, "prefix", "string", true);
        out.extend_from_slice(b",{");
        write_type_members(out, &ColumnType::Bytes, &self.modes);
        out.extend_from_slice(b",\"optional\":true,\"field\":\"content\"}");
    }

    fn write_source_schema(&self, event: &ChangeEvent, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"type\":\"struct\",\"fields\":[");
        for (i, field) in ["version", "connector", "name"].iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_fixed_field(out, field, "string", false);
        }
        out.push(b',');
        write_fixed_field(out, "ts_ms", "int64", false);
        out.push(b',');
        out.extend_from_slice(SNAPSHOT_FIELD_SCHEMA);
        out.push(b',');
        write_fixed_field(out, "db", "string", false);
        out.push(b',');
        write_fixed_field(out, "sequence", "string", true);
        out.push(b',');
        write_fixed_field(out, "ts_us", "int64", true);
        out.push(b',');
        write_fixed_field(out, "ts_ns", "int64", true);
        let own = connector_source_fields(event.source.connector);
        if own.is_empty() {
            if event.table.is_some() {
                for field in ["schema", "table"] {
                    out.push(b',');
                    write_fixed_field(out, field, "string", false);
                }
            }
            for (name, value) in &event.source.fields {
                out.push(b',');
                write_field_schema(out, name, &type_of_value(value), &self.modes, true);
            }
        } else {
            for (name, kind, optional) in own {
                out.push(b',');
                write_fixed_field(out, name, kind, *optional);
            }
        }
        out.extend_from_slice(b"],\"optional\":false,\"name\":");
        let source_name = format!("io.debezium.connector.{}.Source", event.source.connector);
        write_str(out, &source_name);
        out.extend_from_slice(b",\"version\":1,\"field\":\"source\"}");
    }

    fn write_envelope_schema(&self, event: &ChangeEvent, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"type\":\"struct\",\"fields\":[");
        if event.message.is_some() {
            write_fixed_field(out, "op", "string", false);
            out.push(b',');
            write_fixed_field(out, "ts_ms", "int64", true);
            out.push(b',');
            self.write_source_schema(event, out);
            out.push(b',');
            out.extend_from_slice(TRANSACTION_FIELD_SCHEMA);
            out.extend_from_slice(b",{\"type\":\"struct\",\"fields\":[");
            self.write_message_fields(out);
            out.extend_from_slice(b"],\"optional\":false,\"name\":");
            write_str(out, MESSAGE_BLOCK_SCHEMA);
            out.extend_from_slice(b",\"version\":1,\"field\":\"message\"}");
            out.extend_from_slice(b"],\"optional\":false,\"name\":");
            write_str(out, MESSAGE_VALUE_SCHEMA);
            out.extend_from_slice(b",\"version\":1}");
            return;
        }
        if let Some(table) = &event.table {
            let rows = [event.after.as_ref(), event.before.as_ref()];
            for field in ["before", "after"] {
                out.extend_from_slice(b"{\"type\":\"struct\",\"fields\":[");
                self.write_row_fields(table, &rows, out);
                out.extend_from_slice(b"],\"optional\":true,\"name\":");
                self.write_schema_name(event, "Value", out);
                out.extend_from_slice(b",\"field\":");
                write_str(out, field);
                out.extend_from_slice(b"},");
            }
        }
        self.write_source_schema(event, out);
        out.push(b',');
        out.extend_from_slice(TRANSACTION_FIELD_SCHEMA);
        out.push(b',');
        write_fixed_field(out, "op", "string", false);
        for field in ["ts_ms", "ts_us", "ts_ns"] {
            out.push(b',');
            write_fixed_field(out, field, "int64", true);
        }
        out.extend_from_slice(b"],\"optional\":false,\"name\":");
        self.write_schema_name(event, "Envelope", out);
        out.extend_from_slice(b",\"version\":2}");
    }

    fn write_flat_schema(&self, event: &ChangeEvent, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"type\":\"struct\",\"fields\":[");
        let mut any = false;
        if event.message.is_some() {
            self.write_message_fields(out);
            any = true;
        } else if let (Some(table), Some(row)) = (&event.table, event.key_row()) {
            self.write_row_fields(table, &[Some(row)], out);
            any = !table.columns.is_empty();
        }
        if any {
            out.push(b',');
        }
        write_fixed_field(out, "__op", "string", false);
        out.push(b',');
        write_fixed_field(out, "__table", "string", true);
        out.push(b',');
        write_fixed_field(out, "__source_ts_ms", "int64", true);
        out.push(b',');
        write_fixed_field(out, "__deleted", "string", true);
        out.extend_from_slice(b"],\"optional\":false,\"name\":");
        self.write_schema_name(event, "Value", out);
        out.push(b'}');
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    use super::super::{Modes, UNAVAILABLE_VALUE};
    use crate::event::{Column, Position, SnapshotMarker, SourceInfo, TableId, TxnInfo};
    use std::sync::Arc;

    fn table() -> Arc<TableSchema> {
        Arc::new(TableSchema::new(
            TableId::new("app", "public", "orders"),
            vec![Column::new("id", "int4").key(), Column::new("note", "text")],
        ))
    }

    #[test]
    fn envelope_and_key_are_debezium_shaped() {
        let mut ev = ChangeEvent::row(
            Op::Update,
            table(),
            Some(vec![Value::Int(7), Value::Text("old".into())]),
            Some(vec![Value::Int(7), Value::Unavailable]),
            Position::new("0/10:1"),
        );
        ev.commit_ts_us = 1_700_000_000_123_456;
        ev.txn = Some(TxnInfo::new("42".into(), 3, 2));
        ev.source = SourceInfo {
            connector: "postgresql",
            snapshot: SnapshotMarker::False,
            fields: vec![("lsn", Value::Int(16))],
        };
        let enc = Encoder::new("inv", Format::Debezium).with_transaction_metadata(true);
        let mut key = Vec::new();
        assert!(enc.write_key(&ev, &mut key));
        assert_eq!(key, br#"{"id":7}"#);
        let mut out = Vec::new();
        enc.write_value(&ev, 1_700_000_001_000_000, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["op"], "u");
        assert_eq!(v["before"]["note"], "old");
        assert_eq!(v["after"]["note"], UNAVAILABLE_VALUE);
        assert_eq!(v["source"]["name"], "inv");
        assert_eq!(v["source"]["ts_ms"], 1_700_000_000_123i64);
        assert_eq!(v["source"]["table"], "orders");
        assert_eq!(v["source"]["lsn"], 16);
        assert_eq!(v["transaction"]["total_order"], 3);
        assert_eq!(v["transaction"]["data_collection_order"], 2);
        assert_eq!(v["ts_ms"], 1_700_000_001_000i64);
    }

    #[test]
    fn flat_delete_carries_the_old_row_and_marker() {
        let ev = ChangeEvent::row(
            Op::Delete,
            table(),
            Some(vec![Value::Int(7), Value::Text("gone".into())]),
            None,
            Position::new("p"),
        );
        let mut out = Vec::new();
        Encoder::new("inv", Format::Flat).write_value(&ev, 0, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(v["note"], "gone");
        assert_eq!(v["__op"], "d");
        assert_eq!(v["__deleted"], "true");
    }

    #[test]
    fn an_update_with_an_unavailable_key_in_after_is_keyed_from_before() {
        // An update logged with a minimal row image: `after` lacks the unchanged key column.
        let ev = ChangeEvent::row(
            Op::Update,
            table(),
            Some(vec![Value::Int(7), Value::Unavailable]),
            Some(vec![Value::Unavailable, Value::Text("new".into())]),
            Position::new("p"),
        );
        let mut key = Vec::new();
        assert!(Encoder::new("inv", Format::Debezium).write_key(&ev, &mut key));
        assert_eq!(key, br#"{"id":7}"#);
    }

    /// A create in a table without key columns.
    fn keyless_create() -> ChangeEvent {
        let t = Arc::new(TableSchema::new(
            TableId::new("d", "s", "t"),
            vec![Column::new("a", "text")],
        ));
        ChangeEvent::row(
            Op::Create,
            t,
            None,
            Some(vec![Value::Text("x".into())]),
            Position::new("p"),
        )
    }

    #[test]
    fn keyless_tables_have_no_key() {
        let ev = keyless_create();
        let mut key = Vec::new();
        assert!(!Encoder::new("n", Format::Debezium).write_key(&ev, &mut key));
        assert!(key.is_empty());
    }

    #[test]
    fn schemas_wrap_key_and_value_with_connect_schemas() {
        let mut ev = ChangeEvent::row(
            Op::Create,
            table(),
            None,
            Some(vec![Value::Int(7), Value::Null]),
            Position::new("p"),
        );
        ev.source = SourceInfo {
            connector: "postgresql",
            snapshot: SnapshotMarker::False,
            fields: vec![("lsn", Value::Int(16))],
        };
        let enc = Encoder::new("inv", Format::Debezium).with_schemas(true);
        let mut key = Vec::new();
        assert!(enc.write_key(&ev, &mut key));
        let k: serde_json::Value = serde_json::from_slice(&key).unwrap();
        assert_eq!(k["payload"]["id"], 7);
        assert_eq!(k["schema"]["type"], "struct");
        assert_eq!(k["schema"]["name"], "inv.public.orders.Key");
        assert_eq!(k["schema"]["fields"][0]["field"], "id");
        assert_eq!(k["schema"]["fields"][0]["type"], "int32");
        assert_eq!(k["schema"]["fields"][0]["optional"], false);

        let mut out = Vec::new();
        enc.write_value(&ev, 5_000, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["payload"]["op"], "c");
        assert_eq!(v["payload"]["after"]["id"], 7);
        let fields = v["schema"]["fields"].as_array().unwrap();
        let names: Vec<&str> = fields
            .iter()
            .map(|f| f["field"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "before",
                "after",
                "source",
                "transaction",
                "op",
                "ts_ms",
                "ts_us",
                "ts_ns"
            ]
        );
        assert_eq!(v["schema"]["name"], "inv.public.orders.Envelope");
        let after = &fields[1];
        assert_eq!(after["optional"], true);
        assert_eq!(after["fields"][1]["field"], "note");
        assert_eq!(after["fields"][1]["type"], "string");
        assert_eq!(after["fields"][1]["optional"], true);
        let source = &fields[2];
        assert_eq!(source["name"], "io.debezium.connector.postgresql.Source");
        assert!(source["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["field"] == "lsn" && f["type"] == "int64"));

        let mut flat = Vec::new();
        Encoder::new("inv", Format::Flat)
            .with_schemas(true)
            .write_value(&ev, 0, &mut flat);
        let f: serde_json::Value = serde_json::from_slice(&flat).unwrap();
        assert_eq!(f["payload"]["id"], 7);
        assert_eq!(f["schema"]["fields"][0]["field"], "id");
        assert_eq!(f["schema"]["fields"][2]["field"], "__op");
        assert_eq!(f["schema"]["name"], "inv.public.orders.Value");
    }

    #[test]
    fn schemas_leave_keyless_tables_without_a_key() {
        let ev = keyless_create();
        let mut key = Vec::new();
        let enc = Encoder::new("n", Format::Debezium).with_schemas(true);
        assert!(!enc.write_key(&ev, &mut key));
        assert!(key.is_empty());
    }

    #[test]
    fn a_key_only_before_has_nulls_and_zeros_for_not_null_columns() {
        // GIVEN a table with a nullable and a NOT NULL non-key column, and a delete whose `before`
        // carries only the key (REPLICA IDENTITY DEFAULT).
        let t = Arc::new(TableSchema::new(
            TableId::new("app", "public", "orders"),
            vec![
                Column::new("id", "int4").key(),
                Column::new("note", "text"),
                Column::new("qty", "int4").not_null(),
            ],
        ));
        let ev = ChangeEvent::row(
            Op::Delete,
            t,
            Some(vec![Value::Int(7), Value::Null, Value::Null]),
            None,
            Position::new("p"),
        );
        // WHEN it is encoded with schemas
        let mut out = Vec::new();
        Encoder::new("inv", Format::Debezium)
            .with_schemas(true)
            .write_value(&ev, 0, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        // THEN the key is there, the nullable column null and the NOT NULL one its zero, as
        // Debezium writes them (never the unavailable placeholder).
        assert_eq!(
            v["payload"]["before"],
            serde_json::json!({"id": 7, "note": null, "qty": 0})
        );
        assert_eq!(v["schema"]["fields"][0]["fields"][2]["optional"], false);
    }

    #[test]
    fn logical_messages_are_debeziums_message_records() {
        let mut ev = ChangeEvent {
            op: Op::Message,
            table: None,
            before: None,
            after: None,
            commit_ts_us: 1_700_000_000_000_000,
            txn: None,
            position: Position::new("p"),
            source: SourceInfo {
                connector: "postgresql",
                snapshot: SnapshotMarker::False,
                fields: vec![("lsn", Value::Int(16))],
            },
            message: Some(crate::event::LogicalMessage {
                prefix: "audit".into(),
                content: b"hi".to_vec(),
                transactional: false,
            }),
            record: None,
        };
        ev.source.fields.push(("txId", Value::Null));
        let enc = Encoder::new("inv", Format::Debezium).with_schemas(true);
        let mut key = Vec::new();
        assert!(enc.write_key(&ev, &mut key));
        let k: serde_json::Value = serde_json::from_slice(&key).unwrap();
        assert_eq!(k["schema"]["name"], MESSAGE_KEY_SCHEMA);
        assert_eq!(k["schema"]["fields"][0]["optional"], true);
        assert_eq!(k["payload"]["prefix"], "audit");
        let mut out = Vec::new();
        enc.write_value(&ev, 0, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["schema"]["name"], MESSAGE_VALUE_SCHEMA);
        let p = &v["payload"];
        assert_eq!(p["op"], "m");
        assert_eq!(p["ts_ms"], 1_700_000_000_000i64);
        assert_eq!(
            p["message"],
            serde_json::json!({"prefix": "audit", "content": "aGk="})
        );
        assert!(p.get("after").is_none());
        assert_eq!(p["source"]["lsn"], 16);
        assert_eq!(p["source"]["schema"], "");
        let fields: Vec<&str> = v["schema"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, ["op", "ts_ms", "source", "transaction", "message"]);
    }

    #[test]
    fn postgres_source_blocks_have_debeziums_fields() {
        let mut ev = ChangeEvent::row(
            Op::Create,
            table(),
            None,
            Some(vec![Value::Int(7), Value::Null]),
            Position::new("p"),
        );
        ev.source = SourceInfo {
            connector: "postgresql",
            snapshot: SnapshotMarker::False,
            fields: vec![
                ("sequence", Value::Text("[null,\"16\"]".into())),
                ("txId", Value::Int(5)),
                ("lsn", Value::Int(16)),
            ],
        };
        let mut out = Vec::new();
        Encoder::new("inv", Format::Debezium)
            .with_modes(Modes::debezium())
            .write_value(&ev, 0, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let keys: Vec<&str> = v["source"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = [
            "version",
            "connector",
            "name",
            "ts_ms",
            "snapshot",
            "db",
            "sequence",
            "ts_us",
            "ts_ns",
            "schema",
            "table",
            "txId",
            "lsn",
            "xmin",
            "origin",
            "origin_lsn",
        ];
        expected.sort_unstable();
        assert_eq!(keys, expected);
        assert_eq!(v["source"]["sequence"], "[null,\"16\"]");
        assert_eq!(v["source"]["xmin"], serde_json::Value::Null);
    }

    #[test]
    fn mysql_zero_dates_are_null_or_the_epoch_as_debezium_writes_them() {
        // GIVEN MySQL zero dates (decoded as nulls) in a nullable and in NOT NULL columns
        let t = Arc::new(TableSchema::new(
            TableId::new("shop", "shop", "t"),
            vec![
                Column::new("id", "int").key(),
                Column::new("d", "date"),
                Column::new("d_nn", "date").not_null(),
                Column::new("dt_nn", "datetime").not_null(),
            ],
        ));
        let ev = ChangeEvent::row(
            Op::Create,
            t,
            None,
            Some(vec![Value::Int(1), Value::Null, Value::Null, Value::Null]),
            Position::new("p"),
        );
        let after = |modes: Modes| {
            let mut out = Vec::new();
            Encoder::new("n", Format::Debezium)
                .with_modes(modes)
                .write_value(&ev, 0, &mut out);
            serde_json::from_slice::<serde_json::Value>(&out).unwrap()["after"].clone()
        };
        // THEN null where null is allowed, the epoch elsewhere, in each time mode
        assert_eq!(
            after(Modes::default()),
            serde_json::json!({"id": 1, "d": null, "d_nn": "1970-01-01Z",
                               "dt_nn": "1970-01-01T00:00:00Z"})
        );
        assert_eq!(
            after(Modes::debezium()),
            serde_json::json!({"id": 1, "d": null, "d_nn": 0, "dt_nn": 0})
        );
    }
}
