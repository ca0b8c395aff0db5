//! From change events to Kafka records, with the shared [`Encoder`].
//!
//! - Key: [`Encoder::write_key`] (the Debezium key `{"id":1}`; no key for keyless tables).
//! - Value: [`Encoder::write_value`] in the configured format.
//! - A delete is followed by a tombstone (same key, null value) unless `tombstones: false`; keyless
//!   tables get none (a tombstone without a key compacts nothing).
//! - An update whose key columns changed becomes a delete of the old key (plus its tombstone) and
//!   a create of the new key, as Debezium does, so that each key's history stays on its partition.
//! - Headers: `cdc.op` (the record's operation code), `cdc.position` (the event's source position)
//!   and `cdc.txid` (the source transaction id, when there is one).

use connector_core::{ChangeEvent, Encoder, Op, Value};

/// Header carrying the record's operation code (`c`, `u`, `d`, `r`, `t`, `m`).
pub const HEADER_OP: &str = "cdc.op";
/// Header carrying the event's source position.
pub const HEADER_POSITION: &str = "cdc.position";
/// Header carrying the source transaction id.
pub const HEADER_TXID: &str = "cdc.txid";

/// One record derived from an event, borrowed from the encoder's buffers.
#[derive(Debug)]
pub struct RecordRef<'a> {
    /// The key bytes; `None` for keyless tables.
    pub key: Option<&'a [u8]>,
    /// The value bytes; `None` for a tombstone.
    pub value: Option<&'a [u8]>,
    /// The operation code of this record (`d` for the delete half of a key change).
    pub op: Op,
}

/// Turns events into records, reusing its buffers.
#[derive(Debug)]
pub struct RecordEncoder {
    encoder: Encoder,
    tombstones: bool,
    key: Vec<u8>,
    value: Vec<u8>,
}

impl RecordEncoder {
    /// A record encoder with `encoder`, emitting tombstones after deletes when `tombstones`.
    pub fn new(encoder: Encoder, tombstones: bool) -> Self {
        RecordEncoder {
            encoder,
            tombstones,
            key: Vec::with_capacity(128),
            value: Vec::with_capacity(1024),
        }
    }

    /// Call `f` with each record of `event`, in order. Stops at the first error.
    pub fn for_each<E>(
        &mut self,
        event: &ChangeEvent,
        now_us: i64,
        mut f: impl FnMut(RecordRef<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if event.op == Op::Update && key_changed(event) {
            let delete = ChangeEvent {
                op: Op::Delete,
                after: None,
                ..event.clone()
            };
            self.one(&delete, now_us, &mut f)?;
            let create = ChangeEvent {
                op: Op::Create,
                before: None,
                ..event.clone()
            };
            return self.one(&create, now_us, &mut f);
        }
        self.one(event, now_us, &mut f)
    }

    fn one<E>(
        &mut self,
        event: &ChangeEvent,
        now_us: i64,
        f: &mut impl FnMut(RecordRef<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.key.clear();
        self.value.clear();
        let has_key = self.encoder.write_key(event, &mut self.key);
        self.encoder.write_value(event, now_us, &mut self.value);
        // A transform's null value (an outbox row without payload) is a Kafka null.
        let null_value = event.record.as_ref().and_then(|r| r.value.as_ref())
            == Some(&connector_core::RawPart::Null);
        f(RecordRef {
            key: has_key.then_some(self.key.as_slice()),
            value: (!null_value).then_some(self.value.as_slice()),
            op: event.op,
        })?;
        if event.op == Op::Delete && self.tombstones && has_key {
            f(RecordRef {
                key: Some(&self.key),
                value: None,
                op: Op::Delete,
            })?;
        }
        Ok(())
    }
}

/// Whether an update changed its key columns (both images present and carrying the key values).
pub fn key_changed(event: &ChangeEvent) -> bool {
    let (Some(table), Some(before), Some(after)) = (&event.table, &event.before, &event.after)
    else {
        return false;
    };
    table
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.key)
        .any(|(i, _)| match (before.get(i), after.get(i)) {
            (Some(Value::Unavailable), _) | (_, Some(Value::Unavailable)) => false,
            (Some(b), Some(a)) => b != a,
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_core::{Column, Format, Position, TableId, TableSchema};
    use std::sync::Arc;

    fn table() -> Arc<TableSchema> {
        Arc::new(TableSchema::new(
            TableId::new("db", "public", "t"),
            vec![Column::new("id", "int4").key(), Column::new("v", "text")],
        ))
    }

    fn collect(
        enc: &mut RecordEncoder,
        ev: &ChangeEvent,
    ) -> Vec<(Option<String>, Option<String>, Op)> {
        let mut out = Vec::new();
        enc.for_each::<()>(ev, 0, |r| {
            out.push((
                r.key.map(|k| String::from_utf8_lossy(k).into_owned()),
                r.value.map(|v| String::from_utf8_lossy(v).into_owned()),
                r.op,
            ));
            Ok(())
        })
        .unwrap();
        out
    }

    fn row(id: i64, v: &str) -> Vec<Value> {
        vec![Value::Int(id), Value::Text(v.into())]
    }

    #[test]
    fn delete_is_followed_by_a_tombstone_unless_disabled() {
        let ev = ChangeEvent::row(
            Op::Delete,
            table(),
            Some(row(1, "a")),
            None,
            Position::new("1"),
        );
        let mut enc = RecordEncoder::new(Encoder::new("p", Format::Debezium), true);
        let recs = collect(&mut enc, &ev);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].0.as_deref(), Some(r#"{"id":1}"#));
        assert!(recs[0].1.as_deref().unwrap().contains(r#""op":"d""#));
        assert_eq!(recs[1], (Some(r#"{"id":1}"#.into()), None, Op::Delete));
        let mut enc = RecordEncoder::new(Encoder::new("p", Format::Debezium), false);
        assert_eq!(collect(&mut enc, &ev).len(), 1);
    }

    #[test]
    fn key_change_splits_into_delete_tombstone_create() {
        let ev = ChangeEvent::row(
            Op::Update,
            table(),
            Some(row(1, "a")),
            Some(row(2, "b")),
            Position::new("1"),
        );
        assert!(key_changed(&ev));
        let mut enc = RecordEncoder::new(Encoder::new("p", Format::Debezium), true);
        let recs = collect(&mut enc, &ev);
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0].0.as_deref(), Some(r#"{"id":1}"#));
        assert_eq!(recs[0].2, Op::Delete);
        assert!(recs[0].1.as_deref().unwrap().contains(r#""after":null"#));
        assert_eq!(recs[1], (Some(r#"{"id":1}"#.into()), None, Op::Delete));
        assert_eq!(recs[2].0.as_deref(), Some(r#"{"id":2}"#));
        assert_eq!(recs[2].2, Op::Create);
        assert!(recs[2].1.as_deref().unwrap().contains(r#""before":null"#));

        let same = ChangeEvent::row(
            Op::Update,
            table(),
            Some(row(1, "a")),
            Some(row(1, "b")),
            Position::new("1"),
        );
        assert!(!key_changed(&same));
        assert_eq!(collect(&mut enc, &same).len(), 1);
    }

    #[test]
    fn keyless_deletes_get_no_tombstone() {
        let t = Arc::new(TableSchema::new(
            TableId::new("d", "s", "k"),
            vec![Column::new("a", "text")],
        ));
        let ev = ChangeEvent::row(
            Op::Delete,
            t,
            Some(vec![Value::Text("x".into())]),
            None,
            Position::new("1"),
        );
        let mut enc = RecordEncoder::new(Encoder::new("p", Format::Debezium), true);
        let recs = collect(&mut enc, &ev);
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].0, None);
    }
}
