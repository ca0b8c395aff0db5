//! Integration tests of the Kafka sink and offset store against the broker of
//! `scripts/services.sh` (`CDC_TEST_KAFKA_BROKERS`) and against rdkafka's in-process
//! `MockCluster` for fault injection. Every test uses its own topics and pipeline names.

mod faults;
mod fencing;
mod offsets;
mod order;
mod pipeline;
mod produce;
mod support;
mod transaction_metadata;
