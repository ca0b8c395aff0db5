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
