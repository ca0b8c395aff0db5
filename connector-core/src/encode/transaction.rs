//! Debezium's transaction metadata (`provide.transaction.metadata`): the `transaction` block of
//! every event, and the BEGIN and END records of the `<name>.transaction` topic, key and value, as
//! Debezium 3.6 writes them (`io.debezium.connector.common.TransactionMetadataKey`/`Value`).
//!
//! Debezium keeps the per-collection counts of an END record in a Java `HashMap` keyed by the
//! collection's name and writes them in that map's iteration order; [`java_hash_map_order`]
//! reproduces it, so that the `data_collections` array is equal to Debezium's, not only its set.

use super::json::{write_int, write_str, write_uint};
use super::Encoder;
use crate::event::{ChangeEvent, TxnInfo};

/// Which record of a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnMark {
    /// Written before the transaction's first event.
    Begin,
    /// Written after its last event, with the counts.
    End,
}

/// Debezium's key schema of transaction records.
const KEY_SCHEMA: &[u8] = b"{\"type\":\"struct\",\"fields\":[\
    {\"type\":\"string\",\"optional\":false,\"field\":\"id\"}],\"optional\":false,\
    \"name\":\"io.debezium.connector.common.TransactionMetadataKey\",\"version\":1}";

/// Debezium's value schema of transaction records.
const VALUE_SCHEMA: &[u8] = b"{\"type\":\"struct\",\"fields\":[\
    {\"type\":\"string\",\"optional\":false,\"field\":\"status\"},\
    {\"type\":\"string\",\"optional\":false,\"field\":\"id\"},\
    {\"type\":\"int64\",\"optional\":true,\"field\":\"event_count\"},\
    {\"type\":\"array\",\"items\":{\"type\":\"struct\",\"fields\":[\
    {\"type\":\"string\",\"optional\":false,\"field\":\"data_collection\"},\
    {\"type\":\"int64\",\"optional\":false,\"field\":\"event_count\"}],\
    \"optional\":true,\"name\":\"event.collection\",\"version\":1},\
    \"optional\":true,\"field\":\"data_collections\"},\
    {\"type\":\"int64\",\"optional\":false,\"field\":\"ts_ms\"}],\"optional\":false,\
    \"name\":\"io.debezium.connector.common.TransactionMetadataValue\",\"version\":1}";

/// The data collection Debezium's PostgreSQL connector counts a logical decoding message under.
/// Debezium writes the object's `toString()`, this name followed by `@` and a per-run identity
/// hash; cdc writes the name without the hash.
pub const PG_MESSAGE_COLLECTION: &str =
    "io.debezium.connector.postgresql.LogicalDecodingMessageMonitor$LogicalDecodingMessageId";

/// Append a transaction id: `id`, or `id:lsn` (Debezium's PostgreSQL form).
fn write_txn_id(out: &mut Vec<u8>, id: &str, lsn: Option<u64>) {
    write_str(out, id);
    if let Some(lsn) = lsn {
        // Reopen the string: its closing quote becomes `:lsn"`.
        out.pop();
        out.push(b':');
        write_uint(out, lsn);
        out.push(b'"');
    }
}

impl Encoder {
    /// Write Debezium's transaction metadata: the `transaction` block of every event (null
    /// without) and, in sinks that honour it, the BEGIN and END records.
    pub fn with_transaction_metadata(mut self, on: bool) -> Self {
        self.transaction_metadata = on;
        self
    }

    /// Whether transaction metadata is written.
    pub fn transaction_metadata(&self) -> bool {
        self.transaction_metadata
    }

    /// The `transaction` block of an event (`null` when metadata is off or the event has no
    /// transaction).
    pub(super) fn write_transaction(&self, event: &ChangeEvent, out: &mut Vec<u8>) {
        match event.txn.as_ref().filter(|_| self.transaction_metadata) {
            Some(txn) => {
                out.extend_from_slice(b"{\"id\":");
                write_txn_id(out, &txn.id, txn.lsns.map(|l| l.event));
                out.extend_from_slice(b",\"total_order\":");
                write_uint(out, txn.order);
                out.extend_from_slice(b",\"data_collection_order\":");
                write_uint(out, txn.table_order);
                out.push(b'}');
            }
            None => out.extend_from_slice(b"null"),
        }
    }

    /// The records of `event`'s transaction that go with it: BEGIN before it (its first event),
    /// END after it (its last); none when metadata is off.
    pub fn transaction_marks(&self, event: &ChangeEvent) -> (bool, bool) {
        match event.txn.as_ref().filter(|_| self.transaction_metadata) {
            Some(txn) => (txn.order == 1, txn.end.is_some()),
            None => (false, false),
        }
    }

    fn mark_id(txn: &TxnInfo, mark: TxnMark) -> Option<u64> {
        match mark {
            TxnMark::Begin => txn.lsns.map(|l| l.begin),
            TxnMark::End => txn.end.as_ref().and_then(|e| e.lsn),
        }
    }

    /// Append the key of the `mark` record of `txn`: `{"id":..}` (with its schema when the
    /// encoder writes schemas).
    pub fn write_transaction_key(&self, txn: &TxnInfo, mark: TxnMark, out: &mut Vec<u8>) {
        if self.schemas {
            out.extend_from_slice(b"{\"schema\":");
            out.extend_from_slice(KEY_SCHEMA);
            out.extend_from_slice(b",\"payload\":");
        }
        out.extend_from_slice(b"{\"id\":");
        write_txn_id(out, &txn.id, Self::mark_id(txn, mark));
        out.push(b'}');
        if self.schemas {
            out.push(b'}');
        }
    }

    /// Append the value of the `mark` record of `event`'s transaction: `status`, `id`,
    /// `event_count` and `data_collections` (null for BEGIN), `ts_ms` (the commit time). Writes
    /// `null` for an event without a transaction.
    pub fn write_transaction_value(&self, event: &ChangeEvent, mark: TxnMark, out: &mut Vec<u8>) {
        let Some(txn) = &event.txn else {
            out.extend_from_slice(b"null");
            return;
        };
        if self.schemas {
            out.extend_from_slice(b"{\"schema\":");
            out.extend_from_slice(VALUE_SCHEMA);
            out.extend_from_slice(b",\"payload\":");
        }
        out.extend_from_slice(match mark {
            TxnMark::Begin => b"{\"status\":\"BEGIN\",\"id\":",
            TxnMark::End => b"{\"status\":\"END\",\"id\":",
        });
        write_txn_id(out, &txn.id, Self::mark_id(txn, mark));
        match (mark, &txn.end) {
            (TxnMark::End, Some(end)) => {
                out.extend_from_slice(b",\"event_count\":");
                write_uint(out, end.event_count);
                out.extend_from_slice(b",\"data_collections\":[");
                let names: Vec<&str> = end.data_collections.iter().map(|(n, _)| &**n).collect();
                for (i, k) in java_hash_map_order(&names).into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    let (name, count) = &end.data_collections[k];
                    out.extend_from_slice(b"{\"data_collection\":");
                    write_str(out, name);
                    out.extend_from_slice(b",\"event_count\":");
                    write_uint(out, *count);
                    out.push(b'}');
                }
                out.push(b']');
            }
            _ => out.extend_from_slice(b",\"event_count\":null,\"data_collections\":null"),
        }
        out.extend_from_slice(b",\"ts_ms\":");
        write_int(out, event.commit_ts_us.div_euclid(1000));
        out.push(b'}');
        if self.schemas {
            out.push(b'}');
        }
    }
}

/// Java's `String.hashCode` (over UTF-16 code units).
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The order in which a `java.util.HashMap<String, _>` that had `names` put into it, in this
/// order and all distinct, iterates: by bucket (the spread hash masked by the table size, which
/// starts at 16 and doubles when the map is more than 3/4 full), then in insertion order. (A
/// bucket of 8 or more names would be restructured; collection counts never get there.)
pub fn java_hash_map_order(names: &[&str]) -> Vec<usize> {
    let mut capacity: usize = 16;
    while names.len() > capacity * 3 / 4 {
        capacity *= 2;
    }
    let bucket = |s: &str| {
        let h = java_string_hash(s) as u32;
        ((h ^ (h >> 16)) as usize) & (capacity - 1)
    };
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_by_key(|&i| (bucket(names[i]), i));
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::Format;
    use crate::event::{Column, Op, Position, TableId, TableSchema, TxnEnd, TxnLsns, Value};
    use std::sync::Arc;

    #[test]
    fn java_string_hash_is_javas() {
        // Values of `"...".hashCode()` in Java.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("public.a"), 1_293_599_260);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_string_hash("public.é"), 1_293_599_396);
    }

    #[test]
    fn data_collections_come_in_java_hash_map_order() {
        // Debezium 3.6.3 wrote public.a before public.b whichever came first.
        assert_eq!(java_hash_map_order(&["public.b", "public.a"]), [1, 0]);
        assert_eq!(java_hash_map_order(&["public.a", "public.b"]), [0, 1]);
        // 14 names (the table grows to 32 buckets), as jshell printed `keySet()` after putting them.
        let names = [
            "public.orders",
            "public.customers",
            "public.small",
            "inventory.items",
            "public.b",
            "public.a",
            "s.t1",
            "s.t2",
            "s.t3",
            "x.y",
            "public.line_items",
            "public.z",
            "public.aa",
            "public.ab",
        ];
        let order: Vec<&str> = java_hash_map_order(&names)
            .into_iter()
            .map(|i| names[i])
            .collect();
        assert_eq!(
            order,
            [
                "x.y",
                "public.orders",
                "public.customers",
                "public.a",
                "public.small",
                "public.b",
                "public.line_items",
                "s.t2",
                "s.t1",
                "s.t3",
                "public.z",
                "public.aa",
                "public.ab",
                "inventory.items"
            ]
        );
    }

    fn event_in_txn(end: bool) -> ChangeEvent {
        let table = Arc::new(TableSchema::new(
            TableId::new("db", "public", "a"),
            vec![Column::new("id", "int4").key()],
        ));
        let mut ev = ChangeEvent::row(
            Op::Create,
            table,
            None,
            Some(vec![Value::Int(1)]),
            Position::new("1"),
        );
        ev.commit_ts_us = 1_796_304_097_033_123;
        let mut txn = TxnInfo::new("735".into(), 1, 1);
        txn.lsns = Some(TxnLsns {
            event: 39_732_104,
            begin: 39_732_104,
        });
        if end {
            txn.end = Some(Arc::new(TxnEnd {
                event_count: 5,
                data_collections: vec![
                    ("public.a".into(), 2),
                    ("public.b".into(), 2),
                    (PG_MESSAGE_COLLECTION.into(), 1),
                ],
                lsn: Some(39_732_872),
            }));
        }
        ev.txn = Some(txn);
        ev
    }

    #[test]
    fn begin_and_end_records_are_debeziums_byte_for_byte() {
        // Debezium 3.6.3's PostgreSQL connector, provide.transaction.metadata=true, JsonConverter
        // with schemas (captured with scripts/compat.sh debezium).
        let enc = Encoder::new("p", Format::Debezium)
            .with_schemas(true)
            .with_transaction_metadata(true);
        let ev = event_in_txn(true);
        let txn = ev.txn.as_ref().unwrap();
        let mut key = Vec::new();
        enc.write_transaction_key(txn, TxnMark::Begin, &mut key);
        assert_eq!(
            String::from_utf8(key).unwrap(),
            r#"{"schema":{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"}],"optional":false,"name":"io.debezium.connector.common.TransactionMetadataKey","version":1},"payload":{"id":"735:39732104"}}"#
        );
        let mut value = Vec::new();
        enc.write_transaction_value(&ev, TxnMark::Begin, &mut value);
        assert_eq!(
            String::from_utf8(value).unwrap(),
            r#"{"schema":{"type":"struct","fields":[{"type":"string","optional":false,"field":"status"},{"type":"string","optional":false,"field":"id"},{"type":"int64","optional":true,"field":"event_count"},{"type":"array","items":{"type":"struct","fields":[{"type":"string","optional":false,"field":"data_collection"},{"type":"int64","optional":false,"field":"event_count"}],"optional":true,"name":"event.collection","version":1},"optional":true,"field":"data_collections"},{"type":"int64","optional":false,"field":"ts_ms"}],"optional":false,"name":"io.debezium.connector.common.TransactionMetadataValue","version":1},"payload":{"status":"BEGIN","id":"735:39732104","event_count":null,"data_collections":null,"ts_ms":1796304097033}}"#
        );
        let plain = Encoder::new("p", Format::Debezium).with_transaction_metadata(true);
        let mut key = Vec::new();
        plain.write_transaction_key(txn, TxnMark::End, &mut key);
        assert_eq!(key, br#"{"id":"735:39732872"}"#);
        let mut value = Vec::new();
        plain.write_transaction_value(&ev, TxnMark::End, &mut value);
        let v: serde_json::Value = serde_json::from_slice(&value).unwrap();
        assert_eq!(v["status"], "END");
        assert_eq!(v["id"], "735:39732872");
        assert_eq!(v["event_count"], 5);
        assert_eq!(v["ts_ms"], 1_796_304_097_033i64);
        let names: Vec<&str> = v["data_collections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["data_collection"].as_str().unwrap())
            .collect();
        assert_eq!(names[..2], ["public.a", "public.b"]);
        assert_eq!(v["data_collections"][0]["event_count"], 2);
    }

    #[test]
    fn the_transaction_block_is_null_without_metadata_and_debeziums_with_it() {
        let ev = event_in_txn(false);
        let (begin, end) = Encoder::new("p", Format::Debezium).transaction_marks(&ev);
        assert!(!begin && !end);
        let mut out = Vec::new();
        Encoder::new("p", Format::Debezium).write_transaction(&ev, &mut out);
        assert_eq!(out, b"null");
        let on = Encoder::new("p", Format::Debezium).with_transaction_metadata(true);
        assert_eq!(on.transaction_marks(&ev), (true, false));
        assert_eq!(on.transaction_marks(&event_in_txn(true)), (true, true));
        let mut out = Vec::new();
        on.write_transaction(&ev, &mut out);
        assert_eq!(
            out,
            br#"{"id":"735:39732104","total_order":1,"data_collection_order":1}"#
        );
    }
}
