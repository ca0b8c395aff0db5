//! Print the records of Kafka topics as they arrive: `key => value`, one per line. Used by the
//! demo; reads with partition assignment (no consumer group), from the beginning, and adds each
//! topic when it appears.
//!
//! ```sh
//! cargo run --example kafka_tail -- 127.0.0.1:9092 demo.public.orders demo.public.customers
//! ```

use std::time::{Duration, Instant};

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
    // Topics appear one by one (each when its table's first change is produced): poll those
    // that exist, and every second look again for the others and add them from their beginning.
    let mut missing: Vec<String> = topics.clone();
    let mut last_lookup: Option<Instant> = None;
    let mut reported = usize::MAX;
    loop {
        if !missing.is_empty() && last_lookup.is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            last_lookup = Some(Instant::now());
            let mut added = TopicPartitionList::new();
            missing.retain(|topic| {
                let Ok(md) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) else {
                    return true;
                };
                let mut found = false;
                for t in md.topics().iter().filter(|t| t.error().is_none()) {
                    for p in t.partitions() {
                        found = true;
                        let _ = added.add_partition_offset(topic, p.id(), Offset::Beginning);
                    }
                }
                !found
            });
            if added.count() > 0 {
                consumer
                    .incremental_assign(&added)
                    .expect("assign partitions");
            }
            if !missing.is_empty() && missing.len() != reported {
                reported = missing.len();
                eprintln!("kafka_tail: waiting for topics {missing:?} on {brokers}");
            }
        }
        if consumer.assignment().map_or(0, |a| a.count()) == 0 {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
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
