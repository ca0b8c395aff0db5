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
//! - With transaction metadata: a BEGIN record before a transaction's first event and an END
//!   record after its last (for the transaction topic). As Debezium counts the delete and the
//!   create of a key change as two events, the events after a split in the same transaction, and
//!   the END counts, are numbered one higher per split.

use std::sync::Arc;

use connector_core::encode::TxnMark;
use connector_core::{ChangeEvent, Encoder, Op, TableId, TxnEnd, Value};

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
    /// A BEGIN or END record of the event's transaction (for the transaction topic).
    pub transaction: bool,
}

/// The key changes split in the current transaction: the events after them are numbered this
/// much higher, in all and per table.
#[derive(Debug)]
struct Splits {
    txn: Arc<str>,
    total: u64,
    tables: Vec<(TableId, u64)>,
}

impl Splits {
    fn table(&self, id: Option<&TableId>) -> u64 {
        id.and_then(|id| self.tables.iter().find(|(t, _)| t == id))
            .map_or(0, |(_, n)| *n)
    }

    /// `event` numbered after the splits so far.
    fn renumber(&self, event: &ChangeEvent) -> ChangeEvent {
        let mut ev = event.clone();
        let table = self.table(ev.table.as_ref().map(|t| &t.id));
        if let Some(txn) = ev.txn.as_mut() {
            txn.order += self.total;
            txn.table_order += table;
            if let Some(end) = &txn.end {
                let data_collections = end
                    .data_collections
                    .iter()
                    .map(|(name, n)| {
                        let more = self
                            .tables
                            .iter()
                            .find(|(t, _)| format!("{}.{}", t.schema, t.table) == **name)
                            .map_or(0, |(_, k)| *k);
                        (Arc::clone(name), n + more)
                    })
                    .collect();
                txn.end = Some(Arc::new(TxnEnd {
                    event_count: end.event_count + self.total,
                    data_collections,
                    lsn: end.lsn,
                }));
            }
        }
        ev
    }
}

/// Turns events into records, reusing its buffers.
#[derive(Debug)]
pub struct RecordEncoder {
    encoder: Encoder,
    tombstones: bool,
    key: Vec<u8>,
    value: Vec<u8>,
    splits: Option<Splits>,
}

impl RecordEncoder {
    /// A record encoder with `encoder`, emitting tombstones after deletes when `tombstones`.
    pub fn new(encoder: Encoder, tombstones: bool) -> Self {
        RecordEncoder {
            encoder,
            tombstones,
            key: Vec::with_capacity(128),
            value: Vec::with_capacity(1024),
            splits: None,
        }
    }

    /// Call `f` with each record of `event`, in order. Stops at the first error.
    pub fn for_each<E>(
        &mut self,
        event: &ChangeEvent,
        now_us: i64,
        mut f: impl FnMut(RecordRef<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let (begin, end) = self.encoder.transaction_marks(event);
        let metadata = self.encoder.transaction_metadata();
        if metadata {
            let txn = event.txn.as_ref().map(|t| &t.id);
            if self.splits.as_ref().is_some_and(|s| Some(&s.txn) != txn) {
                self.splits = None;
            }
        }
        if begin {
            self.transaction_record(event, TxnMark::Begin, &mut f)?;
        }
        let original = event;
        let renumbered;
        let event = match &self.splits {
            Some(splits) => {
                renumbered = splits.renumber(event);
                &renumbered
            }
            None => event,
        };
        if event.op == Op::Update && key_changed(event) {
            let delete = ChangeEvent {
                op: Op::Delete,
                after: None,
                ..event.clone()
            };
            self.one(&delete, now_us, &mut f)?;
            let mut create = ChangeEvent {
                op: Op::Create,
                before: None,
                ..event.clone()
            };
            if let (Some(txn), true) = (create.txn.as_mut(), metadata) {
                // Debezium numbers the create after the delete, and so every later event.
                txn.order += 1;
                txn.table_order += 1;
                let splits = self.splits.get_or_insert_with(|| Splits {
                    txn: Arc::clone(&txn.id),
                    total: 0,
                    tables: Vec::new(),
                });
                splits.total += 1;
                if let Some(id) = create.table.as_ref().map(|t| &t.id) {
                    match splits.tables.iter_mut().find(|(t, _)| t == id) {
                        Some((_, n)) => *n += 1,
                        None => splits.tables.push((id.clone(), 1)),
                    }
                }
            }
            self.one(&create, now_us, &mut f)?;
        } else {
            self.one(event, now_us, &mut f)?;
        }
        if end {
            match &self.splits {
                Some(splits) => {
                    let last = splits.renumber(original);
                    self.transaction_record(&last, TxnMark::End, &mut f)?;
                }
                None => self.transaction_record(original, TxnMark::End, &mut f)?,
            }
        }
        Ok(())
    }

    /// The BEGIN or END record of `event`'s transaction.
    fn transaction_record<E>(
        &mut self,
        event: &ChangeEvent,
        mark: TxnMark,
        f: &mut impl FnMut(RecordRef<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let Some(txn) = &event.txn else {
            return Ok(());
        };
        self.key.clear();
        self.value.clear();
        self.encoder.write_transaction_key(txn, mark, &mut self.key);
        self.encoder
            .write_transaction_value(event, mark, &mut self.value);
        f(RecordRef {
            key: Some(&self.key),
            value: Some(&self.value),
            op: event.op,
            transaction: true,
        })
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
            transaction: false,
        })?;
        if event.op == Op::Delete && self.tombstones && has_key {
            f(RecordRef {
                key: Some(&self.key),
                value: None,
                op: Op::Delete,
                transaction: false,
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

    #[test]
    fn a_key_change_counts_as_two_events_in_the_transaction_as_debeziums() {
        use connector_core::{TxnEnd, TxnInfo};
        // GIVEN Debezium's probe transaction: insert into b, a key change in a, delete from b
        let a = table();
        let b = Arc::new(TableSchema::new(
            TableId::new("db", "public", "b"),
            vec![Column::new("id", "int4").key(), Column::new("v", "text")],
        ));
        let txn = |order, table_order| TxnInfo::new("738".into(), order, table_order);
        let mut ins = ChangeEvent::row(
            Op::Create,
            Arc::clone(&b),
            None,
            Some(row(5, "q")),
            Position::new("1"),
        );
        ins.txn = Some(txn(1, 1));
        let mut upd = ChangeEvent::row(
            Op::Update,
            a,
            Some(row(30, "x")),
            Some(row(31, "x")),
            Position::new("2"),
        );
        upd.txn = Some(txn(2, 1));
        let mut del = ChangeEvent::row(Op::Delete, b, Some(row(5, "q")), None, Position::new("3"));
        let mut last = txn(3, 2);
        last.end = Some(Arc::new(TxnEnd {
            event_count: 3,
            data_collections: vec![("public.b".into(), 2), ("public.t".into(), 1)],
            lsn: None,
        }));
        del.txn = Some(last);
        // WHEN the sink encodes it with transaction metadata
        let enc = Encoder::new("p", Format::Debezium).with_transaction_metadata(true);
        let mut rec = RecordEncoder::new(enc, true);
        let mut out = Vec::new();
        for ev in [&ins, &upd, &del] {
            rec.for_each::<()>(ev, 0, |r| {
                let v = r
                    .value
                    .map(|v| serde_json::from_slice::<serde_json::Value>(v).unwrap());
                out.push((r.transaction, v));
                Ok(())
            })
            .unwrap();
        }
        // THEN BEGIN, the events numbered as Debezium numbers them, END with both halves counted
        let kinds: Vec<String> = out
            .iter()
            .map(|(t, v)| match (t, v) {
                (true, Some(v)) => v["status"].as_str().unwrap().to_string(),
                (false, Some(v)) => format!(
                    "{}{}/{}",
                    v["op"].as_str().unwrap(),
                    v["transaction"]["total_order"],
                    v["transaction"]["data_collection_order"]
                ),
                (_, None) => "tombstone".into(),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "BEGIN",
                "c1/1",
                "d2/1",
                "tombstone",
                "c3/2",
                "d4/2",
                "tombstone",
                "END"
            ]
        );
        let end = out.last().unwrap().1.as_ref().unwrap();
        assert_eq!(end["event_count"], 4);
        assert_eq!(
            end["data_collections"],
            // Java's HashMap order, as Debezium writes them.
            serde_json::json!([
                {"data_collection": "public.t", "event_count": 2},
                {"data_collection": "public.b", "event_count": 2}
            ])
        );
        // AND without metadata there are no transaction records and the block is null
        let mut plain = RecordEncoder::new(Encoder::new("p", Format::Debezium), true);
        let recs = collect(&mut plain, &upd);
        assert_eq!(recs.len(), 3);
        assert!(recs[0]
            .1
            .as_deref()
            .unwrap()
            .contains(r#""transaction":null"#));
    }
}
