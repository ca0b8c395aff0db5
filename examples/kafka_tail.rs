//! Print the records of Kafka topics as they arrive: `key => value`, one per line. Used by the
//! demo; reads with partition assignment (no consumer group), from the beginning.
//!
//! ```sh
//! cargo run --example kafka_tail -- 127.0.0.1:9092 demo.public.orders demo.public.customers
//! ```

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

fn main() {
    let mut args = std::env::args().skip(1);
    let brokers = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let topics: Vec<String> = args.collect();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "cdc-kafka-tail")
        .set("enable.auto.commit", "false")
        .create()
        .expect("a Kafka consumer");
    let mut assigned = TopicPartitionList::new();
    while assigned.count() == 0 {
        for topic in &topics {
            if let Ok(md) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
                for t in md.topics() {
                    for p in t.partitions() {
                        let _ = assigned.add_partition_offset(topic, p.id(), Offset::Beginning);
                    }
                }
            }
        }
        if assigned.count() == 0 {
            eprintln!("kafka_tail: waiting for topics {topics:?} on {brokers}");
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    consumer.assign(&assigned).expect("assign partitions");
    loop {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                let text = |b: Option<&[u8]>| {
                    b.map_or_else(
                        || "null".into(),
                        |b| String::from_utf8_lossy(b).into_owned(),
                    )
                };
                println!("{} | {} => {}", m.topic(), text(m.key()), text(m.payload()));
            }
            Some(Err(e)) => eprintln!("kafka_tail: {e}"),
            None => {}
        }
    }
}
