//! Runs one pipeline from a YAML file with the built-in connectors and the Kafka sink and offset
//! store: `cdc-kafka-pipeline PIPELINE.yaml`. A test and demo helper (the tests kill it with
//! SIGKILL mid-stream); the `cdc` binary is the product.
//!
//! Exit status: 0 when the pipeline finished or was stopped (SIGINT/SIGTERM), 1 on error, 2 on
//! bad usage.

use connector_core::{config, Pipeline, Registry};
use tokio_util::sync::CancellationToken;

fn registry() -> Registry {
    let mut r = Registry::with_builtins();
    r.add_sink("kafka", sink_kafka::factory);
    r.add_offset_store("kafka", sink_kafka::offset_store_factory);
    r
}

#[tokio::main]
async fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: cdc-kafka-pipeline PIPELINE.yaml");
        std::process::exit(2);
    };
    let config = match config::load(std::path::Path::new(&path)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {}", e.report());
            std::process::exit(1);
        }
    };
    let token = CancellationToken::new();
    let stop = token.clone();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        stop.cancel();
    });
    match Pipeline::new(config, registry()).run(token).await {
        Ok(outcome) => eprintln!("pipeline ended: {outcome:?}"),
        Err(e) => {
            eprintln!("error: {}", e.report());
            std::process::exit(1);
        }
    }
}
