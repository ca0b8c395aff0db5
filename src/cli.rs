//! The `cdc` command line: `run`, `check`, `offsets`, `slot` and `snapshot`.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use connector_core::{
    config, Check, CheckStatus, Config, Context, Error, ErrorKind, Outcome, Pipeline, Position,
    Registry,
};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Exit code for a pipeline or check that failed.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for an invalid configuration or command line.
pub const EXIT_CONFIG: u8 = 2;
/// Exit code after a second shutdown signal (exit at once).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Change data capture from PostgreSQL and MySQL/MariaDB into Kafka.
#[derive(Debug, Parser)]
#[command(name = "cdc", version, propagate_version = true)]
pub struct Cli {
    /// Log format on stderr. Filter with RUST_LOG (default `info`), e.g. `RUST_LOG=debug,rdkafka=warn`.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the pipeline until it is stopped (SIGINT/SIGTERM drain and exit 0) or fails.
    Run {
        /// The pipeline's YAML file. Environment variables `CDC_<KEY>__<SUBKEY>` override its keys.
        #[arg(short, long, env = "CDC_CONFIG")]
        config: PathBuf,
    },
    /// Validate the configuration, connect, and check each connector's preconditions.
    Check {
        /// The pipeline's YAML file.
        #[arg(short, long, env = "CDC_CONFIG")]
        config: PathBuf,
    },
    /// Show, set or reset the stored position of a pipeline.
    Offsets {
        /// What to do with the offsets.
        #[command(subcommand)]
        action: OffsetsAction,
    },
    /// Inspect or drop the replication slot of a PostgreSQL pipeline.
    Slot {
        /// What to do with the slot.
        #[command(subcommand)]
        action: SlotAction,
    },
    /// Ask the running pipeline for an incremental snapshot of tables (an `execute-snapshot`
    /// signal written into `source.signal_table`), or show the progress of the running one.
    Snapshot {
        /// The pipeline's YAML file.
        #[arg(short, long, env = "CDC_CONFIG")]
        config: PathBuf,
        /// A captured table to snapshot (`schema.table`, or a pattern); repeat for more.
        #[arg(long = "table", required_unless_present = "status")]
        tables: Vec<String>,
        /// An SQL condition: only rows matching it are read (`additional-conditions`).
        #[arg(long, conflicts_with = "status")]
        filter: Option<String>,
        /// Show the running snapshot's progress (from the pipeline's `/metrics`).
        #[arg(long, conflicts_with = "tables")]
        status: bool,
    },
}

/// `cdc slot ...`.
#[derive(Debug, Subcommand)]
pub enum SlotAction {
    /// Print the slot's state: active or not, confirmed position, WAL it retains, lag.
    Info {
        /// The pipeline's YAML file.
        #[arg(short, long, env = "CDC_CONFIG")]
        config: PathBuf,
    },
    /// Drop the slot (refused while the pipeline runs). The next run starts over as the snapshot
    /// mode says; changes in between are not captured.
    Drop {
        /// The pipeline's YAML file.
        #[arg(short, long, env = "CDC_CONFIG")]
        config: PathBuf,
        /// Confirm.
        #[arg(long)]
        yes: bool,
    },
}

/// `cdc offsets ...`.
#[derive(Debug, Subcommand)]
pub enum OffsetsAction {
    /// Print the stored position.
    Show {
        /// The pipeline's YAML file.
        #[arg(short, long, env = "CDC_CONFIG")]
        config: PathBuf,
    },
    /// Store a position (the pipeline must not be running).
    Set {
        /// The pipeline's YAML file.
        #[arg(short, long, env = "CDC_CONFIG")]
        config: PathBuf,
        /// The position, in the source's text form (as `offsets show` prints it).
        #[arg(long)]
        position: String,
    },
    /// Forget the stored position: the next run starts as configured by the snapshot mode.
    Reset {
        /// The pipeline's YAML file.
        #[arg(short, long, env = "CDC_CONFIG")]
        config: PathBuf,
        /// Confirm.
        #[arg(long)]
        yes: bool,
    },
}

/// Parse the command line, run the command with `registry`, and return the exit code.
pub fn main(registry: Registry) -> ExitCode {
    let cli = Cli::parse();
    // `cdc check` prints its verdict on stdout: only errors go to the log unless RUST_LOG says
    // otherwise (each client's connection warnings would repeat what the failed check says).
    let default_filter = match cli.command {
        Command::Check { .. } => "error",
        _ => "info",
    };
    init_logging(cli.log_format, default_filter);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("cdc-worker")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cdc: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let code = runtime.block_on(execute(cli.command, registry));
    // Connectors may leave blocking threads behind (a stuck DNS lookup); do not wait for them.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    ExitCode::from(code)
}

fn init_logging(format: LogFormat, default_filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Run one command; returns the exit code.
pub async fn execute(command: Command, registry: Registry) -> u8 {
    let result = match command {
        Command::Run { config } => run(&config, registry).await,
        Command::Check { config } => check(&config, registry).await,
        Command::Offsets { action } => offsets(action, registry).await,
        Command::Slot { action } => slot(action).await,
        Command::Snapshot {
            config,
            tables,
            filter,
            status,
        } => snapshot(&config, &tables, filter.as_deref(), status).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cdc: {}", e.report());
            if e.kind() == ErrorKind::Config {
                EXIT_CONFIG
            } else {
                EXIT_FAILURE
            }
        }
    }
}

fn load(path: &Path) -> Result<Config, Error> {
    config::load(path)
}

async fn run(path: &Path, registry: Registry) -> Result<u8, Error> {
    let config = load(path)?;
    let http = config.http.clone();
    let pipeline = Pipeline::new(config, registry);
    let endpoint = if http.enabled {
        Some(
            crate::http::serve(
                &http,
                Arc::clone(pipeline.metrics()),
                Arc::clone(pipeline.health()),
            )
            .await?,
        )
    } else {
        None
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(watch_signals(shutdown.clone()));
    let result = pipeline.run(shutdown).await;
    if let Some(endpoint) = endpoint {
        endpoint.stop().await;
    }
    match result? {
        Outcome::Finished => info!("source finished; all events are durable"),
        Outcome::Stopped => info!("stopped; the last durable position is stored"),
    }
    Ok(0)
}

/// First SIGINT/SIGTERM: drain and stop. Second: exit at once (the offset store is only ever
/// replaced atomically, so it stays intact).
async fn watch_signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        warn!("cannot install signal handlers; stop with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: draining in-flight events, then stopping"),
        _ = int.recv() => info!("SIGINT: draining in-flight events, then stopping"),
    }
    shutdown.cancel();
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    warn!("second signal: exiting now");
    std::process::exit(i32::from(EXIT_INTERRUPTED));
}

async fn check(path: &Path, registry: Registry) -> Result<u8, Error> {
    let config = load(path)?;
    println!(
        "[  ok] config {}: pipeline {:?}, source {}, sink {}, offsets {}",
        path.display(),
        config.name,
        config.source.kind(),
        config.sink.kind(),
        config.offsets.kind()
    );
    let ctx = Context::new(config.name.as_str());
    // The three run at once, each within CHECK_TIMEOUT, so an unreachable service answers in
    // seconds rather than after every client's own timeout in turn.
    let source_label = format!("source ({})", config.source.kind());
    let source = async {
        match registry.build_source(&config.source, &ctx) {
            Ok(mut source) => {
                let checks = within_check_timeout("source", source.check()).await;
                let transforms = if config.transforms.is_empty() {
                    None
                } else {
                    let checks = check_transforms(&config, &registry, &ctx, Some(&mut *source));
                    Some(within_check_timeout("transforms", checks).await)
                };
                (checks, transforms)
            }
            Err(e) => {
                let transforms = if config.transforms.is_empty() {
                    None
                } else {
                    Some(check_transforms(&config, &registry, &ctx, None).await)
                };
                (vec![Check::from_error("config", &e)], transforms)
            }
        }
    };
    let sink_label = format!("sink ({})", config.sink.kind());
    let sink = async {
        match registry.build_sink(&config.sink, &ctx) {
            Ok(mut sink) => within_check_timeout("sink", sink.check()).await,
            Err(e) => vec![Check::from_error("config", &e)],
        }
    };
    let offsets_label = format!("offsets ({})", config.offsets.kind());
    let offsets = async {
        match registry.build_offset_store(&config.offsets, &ctx) {
            Ok(store) => {
                let loaded = async {
                    vec![match store.load().await {
                        Ok(Some(p)) => {
                            Check::pass(store.describe(), format!("stored position {p}"))
                        }
                        Ok(None) => Check::pass(
                            store.describe(),
                            "no stored position: the first run starts as the snapshot mode says",
                        ),
                        Err(e) => Check::from_error(store.describe(), &e),
                    }]
                };
                within_check_timeout("offsets", loaded).await
            }
            Err(e) => vec![Check::from_error("config", &e)],
        }
    };
    let ((source, transforms), sink, offsets) = tokio::join!(source, sink, offsets);
    let mut checks = vec![(source_label, source)];
    if let Some(transforms) = transforms {
        checks.push((
            format!("transforms ({})", config.transforms.len()),
            transforms,
        ));
    }
    checks.push((sink_label, sink));
    checks.push((offsets_label, offsets));
    let mut failed = 0;
    for (label, list) in &checks {
        println!("{label}:");
        for c in list {
            if c.status == CheckStatus::Fail {
                failed += 1;
            }
            println!("  {c}");
        }
    }
    if failed > 0 {
        println!("{failed} check(s) failed");
        Ok(EXIT_FAILURE)
    } else {
        println!("all checks passed");
        Ok(0)
    }
}

/// The longest one connector's checks may take in `cdc check`.
pub const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `checks`, or one failed check if they take longer than [`CHECK_TIMEOUT`].
async fn within_check_timeout(
    section: &str,
    checks: impl std::future::Future<Output = Vec<Check>>,
) -> Vec<Check> {
    match tokio::time::timeout(CHECK_TIMEOUT, checks).await {
        Ok(checks) => checks,
        Err(_) => vec![Check::fail(
            section,
            format!("no answer within {} s", CHECK_TIMEOUT.as_secs()),
            format!(
                "check the address in `{section}` and that the service is reachable from this \
                 host (firewall, DNS, TLS)"
            ),
        )],
    }
}

/// `cdc check` of the `transforms:` list: each entry builds, and matches the tables the source
/// captures (when it can tell them).
async fn check_transforms(
    config: &Config,
    registry: &Registry,
    ctx: &Context,
    source: Option<&mut (dyn connector_core::Source + 'static)>,
) -> Vec<Check> {
    let mut chain = match registry.build_transforms(&config.transforms, ctx) {
        Ok(chain) => chain,
        Err(e) => return vec![Check::from_error("config", &e)],
    };
    let names = config
        .transforms
        .iter()
        .map(|t| t.kind())
        .collect::<Vec<_>>()
        .join(", ");
    let Some(source) = source else {
        return vec![Check::pass("config", format!("valid: {names}"))];
    };
    match source.captured_tables().await {
        Ok(Some(tables)) => match chain.check_tables(&tables) {
            Ok(()) => vec![Check::pass(
                "config",
                format!(
                    "valid: {names}; every pattern matches the {} captured table(s)",
                    tables.len()
                ),
            )],
            Err(e) => vec![Check::from_error("config", &e)],
        },
        Ok(None) => vec![Check::pass("config", format!("valid: {names}"))],
        Err(e) => vec![
            Check::pass("config", format!("valid: {names}")),
            Check::from_error("captured tables", &e),
        ],
    }
}

async fn offsets(action: OffsetsAction, registry: Registry) -> Result<u8, Error> {
    let path = match &action {
        OffsetsAction::Show { config }
        | OffsetsAction::Set { config, .. }
        | OffsetsAction::Reset { config, .. } => config.clone(),
    };
    let config = load(&path)?;
    let ctx = Context::new(config.name.as_str());
    let mut store = registry.build_offset_store(&config.offsets, &ctx)?;
    match action {
        OffsetsAction::Show { .. } => {
            match store.load().await? {
                Some(p) => println!("{}\t{p}", config.name),
                None => println!("{}\t(none)", config.name),
            }
            Ok(0)
        }
        OffsetsAction::Set { position, .. } => {
            store.lock().await?;
            let old = store.load().await?;
            store.store(&Position::new(position.as_str())).await?;
            println!(
                "{}: position {} (was {}) in {}",
                config.name,
                position,
                old.as_ref().map_or("(none)", Position::as_str),
                store.describe()
            );
            Ok(0)
        }
        OffsetsAction::Reset { yes, .. } => {
            if !yes {
                return Err(Error::config(
                    "`cdc offsets reset` forgets where the pipeline is: add --yes to confirm",
                ));
            }
            store.lock().await?;
            let old = store.load().await?;
            store.clear().await?;
            println!(
                "{}: position reset (was {}) in {}",
                config.name,
                old.as_ref().map_or("(none)", Position::as_str),
                store.describe()
            );
            Ok(0)
        }
    }
}

async fn slot(action: SlotAction) -> Result<u8, Error> {
    let path = match &action {
        SlotAction::Info { config } | SlotAction::Drop { config, .. } => config.clone(),
    };
    let config = load(&path)?;
    if config.source.kind() != "postgres" {
        return Err(Error::config(format!(
            "`cdc slot` manages PostgreSQL replication slots; this pipeline's source is {:?}",
            config.source.kind()
        )));
    }
    match action {
        SlotAction::Info { .. } => {
            let (name, report) = source_postgres::admin::slot_report(&config.source).await?;
            let Some(r) = report else {
                println!("slot {name}: does not exist (the next run creates it)");
                return Ok(0);
            };
            let state = match r.active_pid {
                Some(pid) => format!("active (walsender pid {pid}: the pipeline is running)"),
                None => "inactive".to_string(),
            };
            let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            let bytes = |v: Option<i64>| v.map_or_else(|| "-".into(), |b| format!("{b} bytes"));
            println!("slot {}", r.slot);
            println!("  state:               {state}");
            println!("  database:            {}", opt(&r.database));
            println!("  plugin:              {}", opt(&r.plugin));
            println!("  confirmed_flush_lsn: {}", opt(&r.confirmed_flush_lsn));
            println!("  restart_lsn:         {}", opt(&r.restart_lsn));
            println!("  current_wal_lsn:     {}", r.current_wal_lsn);
            println!("  lag:                 {}", bytes(r.lag_bytes));
            println!("  WAL retained:        {}", bytes(r.retained_bytes));
            println!("  wal_status:          {}", opt(&r.wal_status));
            Ok(0)
        }
        SlotAction::Drop { yes, .. } => {
            if !yes {
                return Err(Error::config(
                    "`cdc slot drop` discards the slot and the changes it holds: add --yes to confirm",
                ));
            }
            let (name, existed) = source_postgres::admin::drop_slot(&config.source).await?;
            if existed {
                println!("slot {name}: dropped");
            } else {
                println!("slot {name}: did not exist");
            }
            Ok(0)
        }
    }
}

async fn snapshot(
    path: &Path,
    tables: &[String],
    filter: Option<&str>,
    status: bool,
) -> Result<u8, Error> {
    let config = load(path)?;
    if status {
        return snapshot_status(&config).await;
    }
    if config.source.kind() != "postgres" {
        return Err(Error::config(format!(
            "`cdc snapshot` signals PostgreSQL pipelines; this pipeline's source is {:?} \
             (not wired for incremental snapshots yet)",
            config.source.kind()
        )));
    }
    let id =
        source_postgres::admin::execute_snapshot_signal(&config.source, tables, filter).await?;
    println!(
        "signal {id} recorded: execute-snapshot of {}; the running pipeline takes it from its \
         stream (`cdc snapshot --status` shows the progress)",
        tables.join(", ")
    );
    Ok(0)
}

/// The incremental snapshot metrics of the running pipeline, from its `/metrics`.
async fn snapshot_status(config: &Config) -> Result<u8, Error> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    if !config.http.enabled {
        return Err(Error::config(
            "key `http.enabled` is false: the pipeline publishes no status to read",
        ));
    }
    let address = config.http.address.replacen("0.0.0.0:", "127.0.0.1:", 1);
    let unreachable = |e: std::io::Error| {
        Error::new(
            ErrorKind::Connection,
            format!("cannot read http://{address}/metrics: is the pipeline running?"),
        )
        .with_source(e)
    };
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .map_err(unreachable)?;
    stream
        .write_all(
            format!("GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .map_err(unreachable)?;
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .await
        .map_err(unreachable)?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let value = |name: &str| -> Option<(String, f64)> {
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.split(['{', ' ']).next() == Some(name))
            .filter_map(|l| {
                let v: f64 = l.rsplit(' ').next()?.parse().ok()?;
                let table = l
                    .split_once("table=\"")
                    .and_then(|(_, rest)| rest.split_once('"'))
                    .map(|(t, _)| t.to_string())
                    .unwrap_or_default();
                Some((table, v))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
    };
    let get = |name: &str| value(name).map_or(0.0, |(_, v)| v);
    let tables_left = get("cdc_incremental_snapshot_tables_left");
    let errors = get("cdc_incremental_snapshot_signal_errors");
    if tables_left == 0.0 {
        println!("no incremental snapshot is running");
    } else {
        let estimated = value("cdc_incremental_snapshot_rows_estimated");
        println!("incremental snapshot running");
        if let Some((table, _)) = estimated.as_ref().filter(|(t, _)| !t.is_empty()) {
            println!("  table:          {table}");
        }
        println!("  tables left:    {tables_left}");
        println!(
            "  chunks done:    {}",
            get("cdc_incremental_snapshot_chunks")
        );
        println!("  rows emitted:   {}", get("cdc_incremental_snapshot_rows"));
        if let Some((_, n)) = estimated {
            println!("  rows estimated: {n}");
        }
    }
    println!("  rejected signals: {errors} (the pipeline's log names each one and why)");
    let last = body
        .lines()
        .find(|l| l.starts_with("cdc_incremental_snapshot_last_signal_error_info{"));
    if let Some(line) = last {
        let label = |name: &str| -> String {
            let Some((_, rest)) = line.split_once(&format!("{name}=\"")) else {
                return String::new();
            };
            let mut out = String::new();
            let mut chars = rest.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some('n') => out.push('\n'),
                        Some(o) => out.push(o),
                        None => {}
                    },
                    '"' => break,
                    c => out.push(c),
                }
            }
            out
        };
        println!(
            "  last rejected signal {:?}: {}",
            label("signal"),
            label("reason")
        );
    }
    Ok(0)
}
