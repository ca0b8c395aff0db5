//! The control connection (`tokio-postgres`) and what it reads and manages: tables and their
//! columns, types, the publication, the replication slot, server settings and the `cdc check`
//! preconditions.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use connector_core::{Check, Column, Error, ErrorKind, Result, TableId, TableSchema};
use rustls::ClientConfig;
use tokio_postgres::Client;
use tracing::{debug, info, warn};

use crate::config::{glob_match, is_pattern, ConnInfo, Settings, SslMode};
use crate::error::pg_error;
use crate::position::Lsn;
use crate::types::{TypeCache, TypeRow, SESSION_OPTIONS};

/// Open a `tokio-postgres` connection with this source's session settings; the connection task
/// ends when the client is dropped.
pub async fn connect(
    conn: &ConnInfo,
    tls: Option<&Arc<ClientConfig>>,
    app: &str,
) -> Result<Client> {
    let mut c = tokio_postgres::Config::new();
    c.host(&conn.host)
        .port(conn.port)
        .user(&conn.user)
        .dbname(&conn.database)
        .application_name(app)
        .options(SESSION_OPTIONS)
        .connect_timeout(conn.connect_timeout)
        .ssl_mode(match (tls, conn.sslmode) {
            (None, _) | (_, SslMode::Disable) => tokio_postgres::config::SslMode::Disable,
            (_, SslMode::Prefer) => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
    if let Some(p) = &conn.password {
        c.password(p.expose());
    }
    let what = format!("connecting to {}", conn.redacted());
    let client = match tls {
        Some(cfg) => {
            let (client, connection) = c
                .connect(crate::tls::MakeRustls(Arc::clone(cfg)))
                .await
                .map_err(|e| pg_error(e, &what))?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    debug!(error = %e, "control connection ended");
                }
            });
            client
        }
        None => {
            let (client, connection) = c
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| pg_error(e, &what))?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    debug!(error = %e, "control connection ended");
                }
            });
            client
        }
    };
    Ok(client)
}

/// Quote an identifier.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Quote a string literal.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// One column from the catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnInfo {
    /// Name.
    pub name: String,
    /// Type OID.
    pub type_oid: u32,
    /// Type modifier.
    pub typmod: i32,
    /// `NOT NULL`.
    pub not_null: bool,
    /// Part of the primary key.
    pub pk: bool,
    /// Part of the replica identity index.
    pub ident: bool,
}

/// One table from the catalog.
#[derive(Clone, Debug)]
pub struct TableInfo {
    /// `pg_class.oid`.
    pub oid: u32,
    /// Schema.
    pub schema: String,
    /// Name.
    pub name: String,
    /// `relreplident`: d default, n nothing, f full, i index.
    pub replident: u8,
    /// Columns in order (without dropped and generated ones).
    pub columns: Vec<ColumnInfo>,
}

impl TableInfo {
    /// `schema.table`.
    pub fn display(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// `"schema"."table"`.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    /// Whether the table has a primary key.
    pub fn has_pk(&self) -> bool {
        self.columns.iter().any(|c| c.pk)
    }

    /// Key flag per column: the primary key, else the replica identity index.
    pub fn key_flags(&self) -> Vec<bool> {
        if self.has_pk() {
            self.columns.iter().map(|c| c.pk).collect()
        } else if self.replident == b'i' {
            self.columns.iter().map(|c| c.ident).collect()
        } else {
            vec![false; self.columns.len()]
        }
    }

    /// The table's shape as events carry it.
    pub fn schema(&self, database: &Arc<str>, types: &TypeCache) -> TableSchema {
        let keys = self.key_flags();
        let columns = self
            .columns
            .iter()
            .zip(keys)
            .map(|(c, key)| Column {
                name: c.name.as_str().into(),
                type_name: types.type_name(c.type_oid, c.typmod),
                nullable: !(key || c.not_null),
                key,
            })
            .collect();
        TableSchema::new(
            TableId::new(
                Arc::clone(database),
                self.schema.as_str(),
                self.name.as_str(),
            ),
            columns,
        )
    }
}

/// Which tables' changes to emit: the resolved names, plus patterns (tables created later that
/// match), or all.
#[derive(Clone, Debug, Default)]
pub struct TableSelector {
    exact: HashSet<(String, String)>,
    patterns: Vec<(String, String)>,
    all: bool,
}

impl TableSelector {
    /// From the configured entries and the resolved tables.
    pub fn new(entries: &[String], resolved: &[TableInfo], all: bool) -> Self {
        TableSelector {
            exact: resolved
                .iter()
                .map(|t| (t.schema.clone(), t.name.clone()))
                .collect(),
            patterns: entries
                .iter()
                .filter(|e| is_pattern(e))
                .filter_map(|e| e.split_once('.'))
                .map(|(s, t)| (s.to_string(), t.to_string()))
                .collect(),
            all: all && entries.is_empty(),
        }
    }

    /// Whether changes of `schema.table` are emitted.
    pub fn matches(&self, schema: &str, table: &str) -> bool {
        self.all
            || self
                .exact
                .contains(&(schema.to_string(), table.to_string()))
            || self
                .patterns
                .iter()
                .any(|(s, t)| glob_match(s, schema) && glob_match(t, table))
    }
}

/// Resolve `tables:` (exact names and patterns) against the catalog. Exact names that do not
/// exist are an error naming the key; patterns that match nothing are a warning.
pub async fn resolve_tables(
    client: &Client,
    entries: &[String],
    all: bool,
) -> Result<Vec<TableInfo>> {
    let rows = client
        .query(
            "SELECT c.oid, n.nspname::text, c.relname::text, c.relreplident::text \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' \
             ORDER BY 2, 3",
            &[],
        )
        .await
        .map_err(|e| pg_error(e, "listing tables"))?;
    let mut all_tables = Vec::new();
    for r in rows {
        let ident: String = r.get(3);
        all_tables.push(TableInfo {
            oid: r.get(0),
            schema: r.get(1),
            name: r.get(2),
            replident: ident.bytes().next().unwrap_or(b'd'),
            columns: Vec::new(),
        });
    }
    let mut chosen: Vec<TableInfo> = Vec::new();
    let mut seen = HashSet::new();
    if entries.is_empty() && all {
        chosen = all_tables;
    } else {
        for (i, entry) in entries.iter().enumerate() {
            let Some((s, t)) = entry.split_once('.') else {
                continue;
            };
            let found: Vec<&TableInfo> = all_tables
                .iter()
                .filter(|x| glob_match(s, &x.schema) && glob_match(t, &x.name))
                .collect();
            if found.is_empty() {
                if is_pattern(entry) {
                    warn!(pattern = %entry, "no table matches this `tables` pattern");
                } else {
                    return Err(Error::new(
                        ErrorKind::Precondition,
                        format!("key `source.tables[{i}]`: table {entry} does not exist"),
                    )
                    .with_hint("create the table, fix the name (schema.table), or remove it"));
                }
            }
            for f in found {
                if seen.insert(f.oid) {
                    chosen.push(f.clone());
                }
            }
        }
    }
    let oids: Vec<u32> = chosen.iter().map(|t| t.oid).collect();
    let mut columns = load_columns(client, &oids).await?;
    for t in &mut chosen {
        t.columns = columns.remove(&t.oid).unwrap_or_default();
    }
    Ok(chosen)
}

/// Columns of the given tables, by table OID.
pub async fn load_columns(client: &Client, oids: &[u32]) -> Result<HashMap<u32, Vec<ColumnInfo>>> {
    let rows = client
        .query(
            "SELECT a.attrelid, a.attname::text, a.atttypid, a.atttypmod, a.attnotnull, \
               EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary \
                       AND a.attnum = ANY(i.indkey)), \
               EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisreplident \
                       AND a.attnum = ANY(i.indkey)) \
             FROM pg_attribute a \
             WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped \
               AND a.attgenerated = '' \
             ORDER BY a.attrelid, a.attnum",
            &[&oids],
        )
        .await
        .map_err(|e| pg_error(e, "reading table columns"))?;
    let mut out: HashMap<u32, Vec<ColumnInfo>> = HashMap::new();
    for r in rows {
        out.entry(r.get(0)).or_default().push(ColumnInfo {
            name: r.get(1),
            type_oid: r.get(2),
            typmod: r.get(3),
            not_null: r.get(4),
            pk: r.get(5),
            ident: r.get(6),
        });
    }
    Ok(out)
}

/// Load the built-in types plus `extra` OIDs and everything they reference into `cache`.
pub async fn load_types(client: &Client, cache: &mut TypeCache, extra: &[u32]) -> Result<()> {
    let mut want: Vec<u32> = extra.iter().copied().filter(|o| !cache.knows(*o)).collect();
    let mut first = true;
    loop {
        if !first && want.is_empty() {
            return Ok(());
        }
        let rows = client
            .query(
                "SELECT oid, typname::text, typtype::text, typelem, typbasetype, typdelim::text, \
                        typcategory::text \
                 FROM pg_type WHERE ($2 AND oid < 16384) OR oid = ANY($1)",
                &[&want, &first],
            )
            .await
            .map_err(|e| pg_error(e, "reading types"))?;
        let byte = |s: String| s.bytes().next().unwrap_or(b' ');
        cache.add(rows.into_iter().map(|r| TypeRow {
            oid: r.get(0),
            name: r.get(1),
            typtype: byte(r.get(2)),
            elem: r.get(3),
            base: r.get(4),
            delim: byte(r.get(5)),
            category: byte(r.get(6)),
        }));
        first = false;
        let missing = cache.missing_references();
        if missing == want {
            return Ok(());
        }
        want = missing;
    }
}

/// A publication's state.
pub struct Publication {
    /// `FOR ALL TABLES`.
    pub all_tables: bool,
    /// The tables it covers (`schema`, `table`).
    pub tables: HashSet<(String, String)>,
    /// Operations it publishes that are off.
    pub missing_ops: Vec<&'static str>,
}

/// Read a publication, `None` when it does not exist.
pub async fn publication(client: &Client, name: &str) -> Result<Option<Publication>> {
    let row = client
        .query_opt(
            "SELECT puballtables, pubinsert, pubupdate, pubdelete, pubtruncate \
             FROM pg_publication WHERE pubname = $1",
            &[&name],
        )
        .await
        .map_err(|e| pg_error(e, format!("reading publication {name}")))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut missing_ops = Vec::new();
    for (i, op) in [(1, "insert"), (2, "update"), (3, "delete"), (4, "truncate")] {
        if !row.get::<_, bool>(i) {
            missing_ops.push(op);
        }
    }
    let tables = client
        .query(
            "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1",
            &[&name],
        )
        .await
        .map_err(|e| pg_error(e, format!("reading the tables of publication {name}")))?
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Ok(Some(Publication {
        all_tables: row.get(0),
        tables,
        missing_ops,
    }))
}

/// Create the publication when missing; when present, check that it covers every table.
pub async fn ensure_publication(
    client: &Client,
    settings: &Settings,
    tables: &[TableInfo],
) -> Result<()> {
    let name = &settings.publication;
    match publication(client, name).await? {
        None => {
            let sql = if settings.config.publication_all_tables {
                format!("CREATE PUBLICATION {} FOR ALL TABLES", quote_ident(name))
            } else {
                if tables.is_empty() {
                    return Err(Error::new(
                        ErrorKind::Precondition,
                        format!(
                            "cannot create publication {name}: no table matches `source.tables`"
                        ),
                    )
                    .with_hint("create the tables first, or fix the patterns in `source.tables`"));
                }
                let list: Vec<String> = tables.iter().map(TableInfo::quoted).collect();
                format!(
                    "CREATE PUBLICATION {} FOR TABLE {}",
                    quote_ident(name),
                    list.join(", ")
                )
            };
            info!(publication = %name, "creating the publication");
            client.batch_execute(&sql).await.map_err(|e| {
                pg_error(e, format!("creating publication {name}")).with_hint(format!(
                    "the user must own the tables (FOR ALL TABLES needs a superuser), or create \
                     it yourself: {sql}"
                ))
            })?;
            Ok(())
        }
        Some(p) => {
            if !p.missing_ops.is_empty() {
                warn!(publication = %name, off = ?p.missing_ops,
                    "the publication does not publish every operation; those changes are not captured");
            }
            if p.all_tables {
                return Ok(());
            }
            let missing: Vec<&TableInfo> = tables
                .iter()
                .filter(|t| !p.tables.contains(&(t.schema.clone(), t.name.clone())))
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            let names: Vec<String> = missing.iter().map(|t| t.display()).collect();
            let quoted: Vec<String> = missing.iter().map(|t| t.quoted()).collect();
            Err(Error::new(
                ErrorKind::Precondition,
                format!(
                    "publication {name} does not cover configured table(s) {}",
                    names.join(", ")
                ),
            )
            .with_hint(format!(
                "ALTER PUBLICATION {} ADD TABLE {}; or set `source.publication` to another name \
                 so that it is created",
                quote_ident(name),
                quoted.join(", ")
            )))
        }
    }
}

/// A replication slot's state.
#[derive(Clone, Debug)]
pub struct SlotInfo {
    /// Output plugin.
    pub plugin: Option<String>,
    /// `logical` or `physical`.
    pub slot_type: String,
    /// Database of a logical slot.
    pub database: Option<String>,
    /// PID of the walsender using it.
    pub active_pid: Option<i32>,
    /// Confirmed flush position.
    pub confirmed_flush: Option<Lsn>,
}

/// Read a slot, `None` when it does not exist.
pub async fn slot(client: &Client, name: &str) -> Result<Option<SlotInfo>> {
    let row = client
        .query_opt(
            "SELECT plugin::text, slot_type, database::text, active_pid, confirmed_flush_lsn::text \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&name],
        )
        .await
        .map_err(|e| pg_error(e, format!("reading replication slot {name}")))?;
    Ok(row.map(|r| SlotInfo {
        plugin: r.get(0),
        slot_type: r.get(1),
        database: r.get(2),
        active_pid: r.get(3),
        confirmed_flush: r.get::<_, Option<String>>(4).and_then(|s| s.parse().ok()),
    }))
}

/// Wait (up to `wait`) until no walsender uses the slot: after a restart, the previous
/// connection's walsender may take a moment to exit.
pub async fn wait_slot_inactive(
    client: &Client,
    name: &str,
    wait: std::time::Duration,
) -> Result<Option<SlotInfo>> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let info = slot(client, name).await?;
        match &info {
            Some(SlotInfo {
                active_pid: Some(pid),
                ..
            }) => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(Error::new(
                        ErrorKind::Unavailable,
                        format!("replication slot {name} is in use by process {pid}"),
                    )
                    .with_hint(
                        "another consumer reads this slot: stop it, or configure another \
                         `source.slot`",
                    ));
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            _ => return Ok(info),
        }
    }
}

/// Drop a slot (waiting for it to become inactive first).
pub async fn drop_slot(client: &Client, name: &str) -> Result<()> {
    if wait_slot_inactive(client, name, std::time::Duration::from_secs(15))
        .await?
        .is_none()
    {
        return Ok(());
    }
    client
        .execute("SELECT pg_drop_replication_slot($1)", &[&name])
        .await
        .map_err(|e| pg_error(e, format!("dropping replication slot {name}")))?;
    Ok(())
}

/// A server setting's value.
pub async fn setting(client: &Client, name: &str) -> Result<Option<String>> {
    let row = client
        .query_opt("SELECT setting FROM pg_settings WHERE name = $1", &[&name])
        .await
        .map_err(|e| pg_error(e, format!("reading setting {name}")))?;
    Ok(row.map(|r| r.get(0)))
}

/// The server's `server_version_num`.
pub async fn server_version(client: &Client) -> Result<u32> {
    Ok(setting(client, "server_version_num")
        .await?
        .and_then(|s| s.parse().ok())
        .unwrap_or(0))
}

/// Fail unless `wal_level` is `logical`.
pub async fn ensure_wal_level(client: &Client) -> Result<()> {
    let level = setting(client, "wal_level").await?.unwrap_or_default();
    if level == "logical" {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::Precondition,
        format!("wal_level is {level:?}; logical replication needs `logical`"),
    )
    .with_hint(
        "set `wal_level = logical` in postgresql.conf (or ALTER SYSTEM SET wal_level = logical) \
         and restart PostgreSQL",
    ))
}

/// The `cdc check` preconditions, each with a fix.
pub async fn checks(client: &Client, settings: &Settings) -> Vec<Check> {
    let mut out = Vec::new();
    out.push(Check::pass(
        "connection",
        format!("connected to {}", settings.conn.redacted()),
    ));
    match setting(client, "wal_level").await {
        Ok(Some(l)) if l == "logical" => out.push(Check::pass("wal_level", "logical")),
        Ok(l) => out.push(Check::fail(
            "wal_level",
            format!("{} (needs logical)", l.unwrap_or_default()),
            "set `wal_level = logical` in postgresql.conf and restart PostgreSQL",
        )),
        Err(e) => out.push(Check::from_error("wal_level", &e)),
    }
    let our_slot = slot(client, &settings.slot).await.ok().flatten();
    let count = |sql: &'static str| async move {
        client
            .query_one(sql, &[])
            .await
            .map(|r| r.get::<_, i64>(0))
            .map_err(|e| pg_error(e, "counting"))
    };
    let max_slots: i64 = setting(client, "max_replication_slots")
        .await
        .ok()
        .flatten()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    match count("SELECT count(*) FROM pg_replication_slots").await {
        Ok(used) if our_slot.is_some() => out.push(Check::pass(
            "replication slots",
            format!(
                "slot {} exists ({used} of {max_slots} in use)",
                settings.slot
            ),
        )),
        Ok(used) if used < max_slots => out.push(Check::pass(
            "replication slots",
            format!(
                "{} of {max_slots} free; slot {} will be created",
                max_slots - used,
                settings.slot
            ),
        )),
        Ok(used) => out.push(Check::fail(
            "replication slots",
            format!("all {used} of {max_slots} slots are in use"),
            "drop unused slots (SELECT pg_drop_replication_slot(name)) or raise \
             max_replication_slots and restart",
        )),
        Err(e) => out.push(Check::from_error("replication slots", &e)),
    }
    let max_senders: i64 = setting(client, "max_wal_senders")
        .await
        .ok()
        .flatten()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    match count("SELECT count(*) FROM pg_stat_replication").await {
        Ok(used) if used < max_senders => out.push(Check::pass(
            "wal senders",
            format!("{} of {max_senders} free", max_senders - used),
        )),
        Ok(used) => out.push(Check::fail(
            "wal senders",
            format!("all {used} of {max_senders} WAL senders are in use"),
            "raise max_wal_senders and restart, or stop other replication clients",
        )),
        Err(e) => out.push(Check::from_error("wal senders", &e)),
    }
    let role = client
        .query_one(
            "SELECT r.rolreplication, r.rolsuper, \
               EXISTS (SELECT 1 FROM pg_roles g WHERE g.rolname = 'rds_replication' \
                       AND pg_has_role(current_user, g.oid, 'member')) \
             FROM pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await;
    match role {
        Ok(r) if r.get::<_, bool>(0) || r.get::<_, bool>(1) || r.get::<_, bool>(2) => out.push(
            Check::pass("replication privilege", "the user may replicate"),
        ),
        Ok(_) => out.push(Check::fail(
            "replication privilege",
            format!(
                "user {} lacks the REPLICATION attribute",
                settings.conn.user
            ),
            format!(
                "ALTER ROLE {} REPLICATION (on RDS: GRANT rds_replication TO {})",
                quote_ident(&settings.conn.user),
                quote_ident(&settings.conn.user)
            ),
        )),
        Err(e) => out.push(Check::from_error(
            "replication privilege",
            &pg_error(e, "reading role"),
        )),
    }
    let tables = match resolve_tables(
        client,
        &settings.config.tables,
        settings.config.publication_all_tables,
    )
    .await
    {
        Ok(t) => {
            out.push(Check::pass(
                "tables",
                format!(
                    "{} table(s): {}",
                    t.len(),
                    t.iter()
                        .map(TableInfo::display)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
            t
        }
        Err(e) => {
            out.push(Check::from_error("tables", &e));
            Vec::new()
        }
    };
    for t in &tables {
        let name = format!("table {}", t.display());
        match client
            .query_one("SELECT has_table_privilege($1::oid, 'SELECT')", &[&t.oid])
            .await
        {
            Ok(r) if r.get::<_, bool>(0) => {}
            Ok(_) => out.push(Check::fail(
                format!("{name} select"),
                "no SELECT privilege (the snapshot cannot read it)",
                format!(
                    "GRANT SELECT ON {} TO {}",
                    t.quoted(),
                    quote_ident(&settings.conn.user)
                ),
            )),
            Err(e) => out.push(Check::from_error(name.clone(), &pg_error(e, "privilege"))),
        }
        match (t.has_pk(), t.replident) {
            (_, b'f') => out.push(Check::pass(
                format!("{name} replica identity"),
                "FULL: updates and deletes carry the whole old row",
            )),
            (true, b'd') => out.push(Check::pass(
                format!("{name} replica identity"),
                "primary key: deletes carry the key; unchanged TOAST values are unavailable",
            )),
            (_, b'i') => out.push(Check::pass(
                format!("{name} replica identity"),
                "index: deletes carry the index columns",
            )),
            _ => out.push(Check::warn(
                format!("{name} replica identity"),
                "no primary key and no replica identity: updates and deletes carry no \
                 before-image (and PostgreSQL rejects them once the table is published)",
                format!(
                    "add a primary key, or ALTER TABLE {} REPLICA IDENTITY FULL",
                    t.quoted()
                ),
            )),
        }
    }
    match publication(client, &settings.publication).await {
        Ok(Some(p)) => {
            let missing: Vec<String> = tables
                .iter()
                .filter(|t| {
                    !p.all_tables && !p.tables.contains(&(t.schema.clone(), t.name.clone()))
                })
                .map(TableInfo::display)
                .collect();
            if missing.is_empty() {
                out.push(Check::pass(
                    "publication",
                    format!("{} covers every table", settings.publication),
                ));
            } else {
                out.push(Check::fail(
                    "publication",
                    format!(
                        "{} does not cover {}",
                        settings.publication,
                        missing.join(", ")
                    ),
                    format!(
                        "ALTER PUBLICATION {} ADD TABLE {}",
                        quote_ident(&settings.publication),
                        tables
                            .iter()
                            .filter(|t| missing.contains(&t.display()))
                            .map(TableInfo::quoted)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        Ok(None) => {
            let can = client
                .query_one(
                    "SELECT has_database_privilege(current_database(), 'CREATE')",
                    &[],
                )
                .await
                .map(|r| r.get::<_, bool>(0))
                .unwrap_or(false);
            if can {
                out.push(Check::pass(
                    "publication",
                    format!("{} will be created", settings.publication),
                ));
            } else {
                out.push(Check::fail(
                    "publication",
                    format!(
                        "{} does not exist and the user may not create it",
                        settings.publication
                    ),
                    format!(
                        "GRANT CREATE ON DATABASE {} TO {}, or create the publication yourself",
                        quote_ident(&settings.conn.database),
                        quote_ident(&settings.conn.user)
                    ),
                ));
            }
        }
        Err(e) => out.push(Check::from_error("publication", &e)),
    }
    out
}
