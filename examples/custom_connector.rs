//! An outside crate's own connector on the `cdc` runtime: a `countdown` source, registered next to
//! the built-in ones, in a binary of its own. Everything else (config, sinks, offsets, retries,
//! signals, `cdc check`) comes from `cdc`.
//!
//! ```sh
//! cargo run --example custom_connector -- run -c my-countdown.yaml
//! ```
//! with
//! ```yaml
//! name: countdown
//! source: { type: countdown, from: 10 }
//! sink: { type: stdout }
//! ```

use std::sync::Arc;

use cdc::connector_core::{
    async_trait, Batch, ChangeEvent, Column, ConfigSection, ConnectorType, Context, Op, Position,
    Result, Source, TableId, TableSchema, Value,
};

/// `source: { type: countdown, from: N }`: emits N, N-1, ..., 1 as rows of `demo.countdown`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CountdownConfig {
    #[serde(rename = "type")]
    _kind: ConnectorType,
    /// Where to count down from.
    from: u64,
}

struct Countdown {
    next: u64,
    table: Arc<TableSchema>,
}

#[async_trait]
impl Source for Countdown {
    async fn start(&mut self, resume: Option<Position>) -> Result<()> {
        // Positions are the last number emitted; resume just below it.
        if let Some(p) = resume {
            self.next = p.as_str().parse::<u64>().unwrap_or(1).saturating_sub(1);
        }
        Ok(())
    }

    async fn next_batch(&mut self) -> Result<Option<Batch>> {
        if self.next == 0 {
            return Ok(None); // finished: the pipeline drains and exits 0
        }
        let n = self.next;
        self.next -= 1;
        let position = Position::new(n.to_string());
        let row = vec![Value::UInt(n)];
        let event = ChangeEvent::row(
            Op::Create,
            self.table.clone(),
            None,
            Some(row),
            position.clone(),
        );
        Ok(Some(Batch::new(vec![event], Some(position))))
    }

    async fn commit(&mut self, _durable: &Position) -> Result<()> {
        Ok(()) // nothing to release
    }
}

fn countdown(section: &ConfigSection, _ctx: &Context) -> Result<Box<dyn Source>> {
    let config: CountdownConfig = section.extract()?;
    let table = TableSchema::new(
        TableId::new("demo", "demo", "countdown"),
        vec![Column::new("n", "bigint unsigned").key()],
    );
    Ok(Box::new(Countdown {
        next: config.from,
        table: Arc::new(table),
    }))
}

fn main() -> std::process::ExitCode {
    let mut registry = cdc::registry();
    registry.add_source("countdown", countdown);
    cdc::cli::main(registry)
}
