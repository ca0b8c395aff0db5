//! Transaction metadata through the Kafka sink (rdkafka's `MockCluster`): BEGIN and END records in
//! `<name>.transaction`, every event with its `transaction` block, delivered with the batch.

use std::sync::Arc;

use connector_core::{Op, TxnEnd};
use serde_json::json;

use crate::faults::{mock, sink_on};
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_is_framed_by_begin_and_end_records_in_the_transaction_topic() {
    // GIVEN a sink with transaction metadata and a transaction of three events, the last
    // carrying the counts
    let m = mock();
    let name = unique("txnmeta");
    let (mut sink, _ctx) = sink_on(
        &m.brokers,
        &name,
        "transaction_metadata: true\ncreate_topics: { partitions: 1 }",
        false,
    );
    let t = items_table();
    let mut events: Vec<_> = (0..3)
        .map(|i| event(Op::Create, &t, None, Some(item(i, "n", i)), i as u64))
        .collect();
    let table = format!("{}.{}", t.id.schema, t.id.table);
    events[2].txn.as_mut().unwrap().end = Some(Arc::new(TxnEnd {
        event_count: 3,
        data_collections: vec![(table.as_str().into(), 3)],
        lsn: None,
    }));
    // WHEN it is delivered
    deliver(sink.as_mut(), vec![batch(events)]).await;
    // THEN the transaction topic holds BEGIN then END, keyed by the transaction id
    let txn = consume_all(&m.brokers, &format!("{name}.transaction"));
    let values: Vec<serde_json::Value> = txn.iter().map(|r| r.value_json().unwrap()).collect();
    assert_eq!(values.len(), 2);
    assert_eq!(txn[0].key_str(), Some(r#"{"id":"tx0"}"#));
    assert_eq!(values[0]["status"], "BEGIN");
    assert_eq!(values[0]["event_count"], serde_json::Value::Null);
    assert_eq!(values[1]["status"], "END");
    assert_eq!(values[1]["event_count"], 3);
    assert_eq!(
        values[1]["data_collections"],
        json!([{"data_collection": table, "event_count": 3}])
    );
    assert_eq!(values[0]["ts_ms"], 1_700_000_000_000i64);
    // AND each event carries its block, and no headers were written on the transaction records
    let rows = consume_all(&m.brokers, &format!("{name}.{table}"));
    let orders: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| r.value_json().unwrap()["transaction"].clone())
        .collect();
    assert_eq!(
        orders,
        (1..=3)
            .map(|n| json!({"id": "tx0", "total_order": n, "data_collection_order": n}))
            .collect::<Vec<_>>()
    );
    assert!(txn.iter().all(|r| r.headers.is_empty()));
}
