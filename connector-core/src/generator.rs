//! The `generator` source: synthetic rows at a configured rate and shape.
//!
//! It is the worked example of writing a source (config struct, factory, `Source` impl in one small
//! file) and a load source for tests and benchmarks. Its output is a pure function of the event
//! number, so a pipeline restarted from any position produces the same events again: tests use that
//! to prove nothing was lost.
//!
//! ```yaml
//! source:
//!   type: generator
//!   rate_per_sec: 1000       # events per second; 0 = as fast as possible
//!   limit: 10000             # stop after this many events; 0 = never
//!   tables: [public.orders]  # events are spread over these round robin
//! ```
//!
//! Positions are the event number (`"41"`); resuming from `"41"` starts at event 42.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use tokio::time::Instant;

use crate::check::Check;
use crate::config::{ConfigSection, ConnectorType};
use crate::context::Context;
use crate::error::{Error, ErrorKind, Result};
use crate::event::{
    Batch, ChangeEvent, Column, Op, Position, SnapshotMarker, SourceInfo, TableId, TableSchema,
    TxnInfo, Value,
};
use crate::source::Source;

/// Default events per second.
pub const DEFAULT_RATE_PER_SEC: u64 = 1_000;
/// Default most events per batch.
pub const DEFAULT_BATCH_SIZE: usize = 1_000;
/// Default size of the `payload` column.
pub const DEFAULT_PAYLOAD_BYTES: usize = 64;

/// `source: { type: generator, ... }`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorConfig {
    /// Always `generator`.
    #[serde(rename = "type")]
    pub kind: ConnectorType,
    /// Events per second; 0 means as fast as possible. Default 1000.
    #[serde(default = "default_rate")]
    pub rate_per_sec: u64,
    /// Most events in one batch. Default 1000.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Stop (and let the pipeline finish) after this many events; 0 means never. Default 0.
    #[serde(default)]
    pub limit: u64,
    /// Tables (`schema.table`) the events are spread over, round robin. Default `[public.generated]`.
    #[serde(default = "default_tables")]
    pub tables: Vec<String>,
    /// Bytes of the `payload` text column. Default 64.
    #[serde(default = "default_payload_bytes")]
    pub payload_bytes: usize,
    /// Events per transaction. Default 1.
    #[serde(default = "default_transaction_size")]
    pub transaction_size: u64,
    /// Percent of events that update an earlier row. Default 0.
    #[serde(default)]
    pub update_percent: u8,
    /// Percent of events that delete an earlier row. Default 0.
    #[serde(default)]
    pub delete_percent: u8,
}

fn default_rate() -> u64 {
    DEFAULT_RATE_PER_SEC
}
fn default_batch_size() -> usize {
    DEFAULT_BATCH_SIZE
}
fn default_tables() -> Vec<String> {
    vec!["public.generated".to_string()]
}
fn default_payload_bytes() -> usize {
    DEFAULT_PAYLOAD_BYTES
}
fn default_transaction_size() -> u64 {
    1
}

/// The registry factory for `type: generator`.
pub fn factory(section: &ConfigSection, ctx: &Context) -> Result<Box<dyn Source>> {
    let config: GeneratorConfig = section.extract()?;
    Ok(Box::new(Generator::new(config, ctx)?))
}

/// The generator source.
pub struct Generator {
    config: GeneratorConfig,
    tables: Vec<Arc<TableSchema>>,
    next: u64,
    started: Option<(Instant, u64)>,
    committed: Option<Position>,
}

impl Generator {
    /// A generator for `config`.
    pub fn new(config: GeneratorConfig, _ctx: &Context) -> Result<Self> {
        if config.batch_size == 0 {
            return Err(Error::config(
                "key `source.batch_size`: expected at least 1",
            ));
        }
        if config.transaction_size == 0 {
            return Err(Error::config(
                "key `source.transaction_size`: expected at least 1",
            ));
        }
        if u16::from(config.update_percent) + u16::from(config.delete_percent) > 100 {
            return Err(Error::config(
                "keys `source.update_percent` + `source.delete_percent`: expected at most 100 together",
            ));
        }
        if config.tables.is_empty() {
            return Err(Error::config(
                "key `source.tables`: expected at least one table",
            ));
        }
        let mut tables = Vec::new();
        for (i, t) in config.tables.iter().enumerate() {
            let Some((schema, table)) = t.split_once('.') else {
                return Err(Error::config(format!(
                    "key `source.tables[{i}]`: {t:?} is not of the form schema.table"
                )));
            };
            tables.push(Arc::new(TableSchema::new(
                TableId::new("generator", schema, table),
                vec![
                    Column::new("id", "int8").key(),
                    Column::new("seq", "int8").not_null(),
                    Column::new("name", "text"),
                    Column::new("amount", "numeric(12,2)"),
                    Column::new("created_at", "timestamptz"),
                    Column::new("payload", "text"),
                ],
            )));
        }
        Ok(Generator {
            config,
            tables,
            next: 0,
            started: None,
            committed: None,
        })
    }

    /// The event with number `n`: a pure function of `n` and the config.
    pub fn event(&self, n: u64) -> ChangeEvent {
        let table = &self.tables[(n % self.tables.len() as u64) as usize];
        let h = splitmix(n);
        let roll = (h % 100) as u8;
        let op = if n == 0 {
            Op::Create
        } else if roll < self.config.delete_percent {
            Op::Delete
        } else if roll < self.config.delete_percent + self.config.update_percent {
            Op::Update
        } else {
            Op::Create
        };
        let id = match op {
            Op::Create => n,
            _ => splitmix(h) % n,
        };
        let ts = 1_700_000_000_000_000 + n as i64 * 1_000;
        let row = |version: u64| -> Vec<Value> {
            let mut payload = String::with_capacity(self.config.payload_bytes);
            let seed = splitmix(id ^ version);
            while payload.len() < self.config.payload_bytes {
                let c = b'a' + ((seed.wrapping_add(payload.len() as u64 * 7)) % 26) as u8;
                payload.push(c as char);
            }
            vec![
                Value::Int(id as i64),
                Value::Int(n as i64),
                Value::Text(format!("name-{id}-{version}")),
                Value::Decimal(format!("{}.{:02}", seed % 100_000, seed % 100).into()),
                Value::TimestampTz(ts),
                Value::Text(payload),
            ]
        };
        let (before, after) = match op {
            Op::Create => (None, Some(row(n))),
            Op::Update => (Some(row(n - 1)), Some(row(n))),
            _ => (Some(row(n - 1)), None),
        };
        let size = self.config.transaction_size;
        let mut ev = ChangeEvent::row(
            op,
            Arc::clone(table),
            before,
            after,
            Position::new(n.to_string()),
        );
        ev.commit_ts_us = crate::clock::now_micros();
        ev.txn = Some(TxnInfo::new(
            (n / size).to_string().into(),
            n % size + 1,
            n % size + 1,
        ));
        ev.source = SourceInfo {
            connector: "generator",
            snapshot: SnapshotMarker::False,
            fields: vec![("seq", Value::UInt(n))],
        };
        ev
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[async_trait]
impl Source for Generator {
    async fn captured_tables(&mut self) -> Result<Option<Vec<TableSchema>>> {
        Ok(Some(self.tables.iter().map(|t| (**t).clone()).collect()))
    }

    async fn start(&mut self, resume: Option<Position>) -> Result<()> {
        self.next = match &resume {
            None => 0,
            Some(p) => {
                p.as_str().parse::<u64>().map_err(|e| {
                    Error::new(
                        ErrorKind::Data,
                        format!("stored position {p} is not a generator position"),
                    )
                    .with_source(e)
                    .with_hint("run `cdc offsets reset` for this pipeline")
                })? + 1
            }
        };
        self.started = None;
        Ok(())
    }

    async fn next_batch(&mut self) -> Result<Option<Batch>> {
        let limit = self.config.limit;
        if limit > 0 && self.next >= limit {
            return Ok(None);
        }
        let mut count = self.config.batch_size as u64;
        if limit > 0 {
            count = count.min(limit - self.next);
        }
        if self.config.rate_per_sec > 0 {
            let (start, first) = *self.started.get_or_insert((Instant::now(), self.next));
            let rate = self.config.rate_per_sec;
            // Wait until the next event is due, then take everything that is due, up to a batch.
            let due_at = |k: u64| start + Duration::from_micros(k.saturating_mul(1_000_000) / rate);
            let produced = self.next - first;
            tokio::time::sleep_until(due_at(produced + 1)).await;
            let elapsed = start.elapsed().as_micros() as u64;
            let due = (elapsed.saturating_mul(rate) / 1_000_000).saturating_sub(produced);
            count = count.min(due.max(1));
        }
        let events: Vec<ChangeEvent> = (self.next..self.next + count)
            .map(|n| self.event(n))
            .collect();
        self.next += count;
        let checkpoint = events.last().map(|e| e.position.clone());
        Ok(Some(Batch::new(events, checkpoint)))
    }

    async fn commit(&mut self, position: &Position) -> Result<()> {
        self.committed = Some(position.clone());
        Ok(())
    }

    async fn check(&mut self) -> Vec<Check> {
        vec![Check::pass(
            "generator",
            format!(
                "{} table(s), {} events/s",
                self.tables.len(),
                self.config.rate_per_sec
            ),
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generator(yaml: &str) -> Generator {
        let section = ConfigSection::from_yaml("source", yaml).unwrap();
        Generator::new(section.extract().unwrap(), &Context::new("t")).unwrap()
    }

    #[tokio::test]
    async fn resumes_after_the_stored_position_with_the_same_events() {
        let mut g = generator("type: generator\nrate_per_sec: 0\nbatch_size: 10\nlimit: 25\nupdate_percent: 30\ndelete_percent: 10\n");
        g.start(None).await.unwrap();
        let mut all = Vec::new();
        while let Some(b) = g.next_batch().await.unwrap() {
            all.extend(b.events);
        }
        assert_eq!(all.len(), 25);
        let mut g2 = generator("type: generator\nrate_per_sec: 0\nbatch_size: 10\nlimit: 25\nupdate_percent: 30\ndelete_percent: 10\n");
        g2.start(Some(Position::new("14"))).await.unwrap();
        let b = g2.next_batch().await.unwrap().unwrap();
        assert_eq!(b.events[0].position.as_str(), "15");
        assert_eq!(b.events[0].after, all[15].after);
        assert_eq!(b.events[0].op, all[15].op);
        assert!(all.iter().any(|e| e.op == Op::Update));
        assert!(all.iter().any(|e| e.op == Op::Delete));
    }

    #[tokio::test]
    async fn config_errors_name_the_key() {
        let section =
            ConfigSection::from_yaml("source", "type: generator\ntables: [nodot]\n").unwrap();
        let e = Generator::new(section.extract().unwrap(), &Context::new("t"))
            .err()
            .unwrap();
        assert!(e.message().contains("source.tables[0]"), "{e}");
    }
}
