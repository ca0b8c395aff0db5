//! Operations on a pipeline's replication slot, for `cdc slot info|drop`.

use connector_core::{ConfigSection, Error, ErrorKind, Result};

use crate::catalog;
use crate::config::{PostgresConfig, Settings};
use crate::error::pg_error;

/// What `cdc slot info` prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotReport {
    /// Slot name.
    pub slot: String,
    /// Database the slot belongs to.
    pub database: Option<String>,
    /// Output plugin.
    pub plugin: Option<String>,
    /// PID of the walsender reading it (the pipeline is running), if any.
    pub active_pid: Option<i32>,
    /// Oldest WAL the slot still needs.
    pub restart_lsn: Option<String>,
    /// Position up to which changes were confirmed durable.
    pub confirmed_flush_lsn: Option<String>,
    /// The server's current WAL position.
    pub current_wal_lsn: String,
    /// Bytes of WAL between the current position and `confirmed_flush_lsn`.
    pub lag_bytes: Option<i64>,
    /// Bytes of WAL the slot retains (current position minus `restart_lsn`).
    pub retained_bytes: Option<i64>,
    /// `reserved`, `extended`, `unreserved` or `lost`.
    pub wal_status: Option<String>,
}

async fn settings_and_client(
    section: &ConfigSection,
) -> Result<(Settings, tokio_postgres::Client)> {
    let pipeline = section.pipeline_name()?;
    let settings = PostgresConfig::from_section(section)?.validate(&pipeline)?;
    let tls =
        crate::tls::client_config(settings.conn.sslmode, settings.conn.sslrootcert.as_deref())?;
    let client = catalog::connect(&settings.conn, tls.as_ref(), "cdc-admin").await?;
    Ok((settings, client))
}

/// The state of the pipeline's slot; `None` when it does not exist.
pub async fn slot_report(section: &ConfigSection) -> Result<(String, Option<SlotReport>)> {
    let (settings, client) = settings_and_client(section).await?;
    let row = client
        .query_opt(
            "SELECT s.database::text, s.plugin::text, s.active_pid, s.restart_lsn::text, \
                    s.confirmed_flush_lsn::text, pg_current_wal_lsn()::text, \
                    (pg_current_wal_lsn() - s.confirmed_flush_lsn)::int8, \
                    (pg_current_wal_lsn() - s.restart_lsn)::int8, s.wal_status \
             FROM pg_replication_slots s WHERE s.slot_name = $1",
            &[&settings.slot],
        )
        .await
        .map_err(|e| pg_error(e, format!("reading replication slot {}", settings.slot)))?;
    let report = row.map(|r| SlotReport {
        slot: settings.slot.clone(),
        database: r.get(0),
        plugin: r.get(1),
        active_pid: r.get(2),
        restart_lsn: r.get(3),
        confirmed_flush_lsn: r.get(4),
        current_wal_lsn: r.get(5),
        lag_bytes: r.get(6),
        retained_bytes: r.get(7),
        wal_status: r.get(8),
    });
    Ok((settings.slot, report))
}

/// Drop the pipeline's slot. Refused while a walsender reads it (the pipeline is running).
/// Returns the slot name and whether it existed.
pub async fn drop_slot(section: &ConfigSection) -> Result<(String, bool)> {
    let (settings, client) = settings_and_client(section).await?;
    let Some(info) = catalog::slot(&client, &settings.slot).await? else {
        return Ok((settings.slot, false));
    };
    if let Some(pid) = info.active_pid {
        return Err(Error::new(
            ErrorKind::Fenced,
            format!(
                "replication slot {} is in use by process {pid}: the pipeline is running",
                settings.slot
            ),
        )
        .with_hint("stop the pipeline first"));
    }
    client
        .execute("SELECT pg_drop_replication_slot($1)", &[&settings.slot])
        .await
        .map_err(|e| pg_error(e, format!("dropping replication slot {}", settings.slot)))?;
    Ok((settings.slot, true))
}

/// Record an `execute-snapshot` signal for `tables` (names as in `tables:`, `schema.table`) in
/// the pipeline's signalling table, each with `filter` as its `additional-conditions` when
/// given, for `cdc snapshot`. The tables are checked against the configuration (and the filter
/// against each table) first; nothing is written when one fails. Returns the signal id once the
/// row is committed.
pub async fn execute_snapshot_signal(
    section: &ConfigSection,
    tables: &[String],
    filter: Option<&str>,
) -> Result<String> {
    use connector_core::incremental::signal::{self, EXECUTE_SNAPSHOT};

    let (settings, client) = settings_and_client(section).await?;
    let incremental = settings.config.incremental();
    let Some((schema, table)) = incremental.signal_table_parts("source")? else {
        return Err(Error::config(
            "key `source.signal_table`: not set, so this pipeline takes no signals",
        )
        .with_hint(
            "add `signal_table: <schema>.<table>` (Debezium's columns `id`, `type`, `data`) \
             to the source and restart the pipeline",
        ));
    };
    if tables.is_empty() {
        return Err(Error::config("give at least one --table"));
    }
    let version = catalog::server_version(&client).await?;
    let cfg = &settings.config;
    let resolved =
        catalog::resolve_tables(&client, &cfg.tables, cfg.publication_all_tables, version).await?;
    let database = settings.conn.database.as_str();
    let captured: Vec<connector_core::TableId> = resolved
        .iter()
        .map(|t| connector_core::TableId::new(database, t.schema.as_str(), t.name.as_str()))
        .collect();
    let conditions: Vec<serde_json::Value> = match filter {
        Some(f) => tables
            .iter()
            .map(|t| serde_json::json!({"data-collection": t, "filter": f}))
            .collect(),
        None => Vec::new(),
    };
    let data = serde_json::json!({
        "data-collections": tables,
        "type": "incremental",
        "additional-conditions": conditions,
    })
    .to_string();
    let id = format!(
        "cdc-snapshot-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros())
    );
    // The same checks the running pipeline makes: refuse here what it would reject.
    let record = signal::parse_row(&id, EXECUTE_SNAPSHOT, Some(&data), &captured)
        .map_err(|e| Error::config(e.problem.to_string()))?;
    if let (
        Some(f),
        signal::Signal::ExecuteSnapshot {
            collections: chosen,
            ..
        },
    ) = (filter, &record.signal)
    {
        for t in chosen {
            let sql = format!(
                "SELECT 1 FROM {}.{} WHERE ({f}) LIMIT 0",
                catalog::quote_ident(&t.schema),
                catalog::quote_ident(&t.table)
            );
            client.batch_execute(&sql).await.map_err(|e| {
                Error::config(format!(
                    "--filter {f:?} does not work on table {t}: {}",
                    pg_error(e, "checking the filter").message()
                ))
            })?;
        }
    }
    let sql = format!(
        "INSERT INTO {}.{} (id, type, data) VALUES ($1, $2, $3)",
        catalog::quote_ident(schema),
        catalog::quote_ident(table)
    );
    client
        .execute(&sql, &[&id, &EXECUTE_SNAPSHOT, &data])
        .await
        .map_err(|e| pg_error(e, format!("writing the signal into {schema}.{table}")))?;
    Ok(id)
}
