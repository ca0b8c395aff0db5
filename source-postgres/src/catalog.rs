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
    match tls {
        Some(cfg) => spawn_connection(&c, crate::tls::MakeRustls(Arc::clone(cfg)), &what).await,
        None => spawn_connection(&c, tokio_postgres::NoTls, &what).await,
    }
}

/// Connect, and drive the connection on a task of its own.
async fn spawn_connection<T>(c: &tokio_postgres::Config, tls: T, what: &str) -> Result<Client>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Send + 'static,
{
    let (client, connection) = c.connect(tls).await.map_err(|e| pg_error(e, what))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            debug!(error = %e, "control connection ended");
        }
    });
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
    /// `relkind`: `r` a table, `p` a partitioned table (its rows live in its partitions).
    pub kind: u8,
    /// When it is a partition: its ancestors (`schema`, `table`), nearest first.
    pub ancestors: Vec<(String, String)>,
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

    /// Whether it is a partitioned table (`PARTITION BY`): captured as one table, its
    /// partitions' rows and changes under its name.
    pub fn is_partitioned(&self) -> bool {
        self.kind == b'p'
    }

    /// Whether it is a partition of another table.
    pub fn is_partition(&self) -> bool {
        !self.ancestors.is_empty()
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
                ty: types.column_type(c.type_oid, c.typmod),
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

/// Oldest server that can publish a partitioned table's changes under its own name
/// (`publish_via_partition_root`).
pub const VIA_ROOT_SERVER_VERSION: u32 = 130_000;

/// Resolve `tables:` (exact names and patterns) against the catalog. Exact names that do not
/// exist are an error naming the key; patterns that match nothing are a warning.
///
/// Partitioned tables are captured as one table under their own name: a partition is left out
/// when one of its ancestors is captured (so `public.*` yields the parent, not the parent and its
/// partitions), and a partition captured without its ancestors is a plain table. Before
/// PostgreSQL 13 a partitioned table cannot be published under its own name: configured by name
/// it is refused (a `Config` error), matched by a pattern it is left out (its partitions, when
/// matched, are captured as plain tables).
pub async fn resolve_tables(
    client: &Client,
    entries: &[String],
    all: bool,
    server_version: u32,
) -> Result<Vec<TableInfo>> {
    let rows = client
        .query(
            "SELECT c.oid, n.nspname::text, c.relname::text, c.relreplident::text, \
               c.relkind::text, \
               (SELECT i.inhparent FROM pg_inherits i WHERE i.inhrelid = c.oid AND c.relispartition \
                LIMIT 1) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' \
             ORDER BY 2, 3",
            &[],
        )
        .await
        .map_err(|e| pg_error(e, "listing tables"))?;
    let mut all_tables = Vec::new();
    let mut parents: HashMap<u32, u32> = HashMap::new();
    for r in rows {
        let ident: String = r.get(3);
        let kind: String = r.get(4);
        let oid: u32 = r.get(0);
        if let Some(parent) = r.get::<_, Option<u32>>(5) {
            parents.insert(oid, parent);
        }
        all_tables.push(TableInfo {
            oid,
            schema: r.get(1),
            name: r.get(2),
            replident: ident.bytes().next().unwrap_or(b'd'),
            columns: Vec::new(),
            kind: kind.bytes().next().unwrap_or(b'r'),
            ancestors: Vec::new(),
        });
    }
    let names: HashMap<u32, (String, String)> = all_tables
        .iter()
        .map(|t| (t.oid, (t.schema.clone(), t.name.clone())))
        .collect();
    for t in &mut all_tables {
        let mut at = t.oid;
        while let Some(parent) = parents.get(&at) {
            let Some(name) = names.get(parent) else {
                break;
            };
            if t.ancestors.len() > names.len() {
                break; // a cycle cannot happen; never loop on a broken catalog
            }
            t.ancestors.push(name.clone());
            at = *parent;
        }
    }
    let via_root = server_version >= VIA_ROOT_SERVER_VERSION;
    let mut chosen: Vec<TableInfo> = Vec::new();
    let mut seen = HashSet::new();
    if entries.is_empty() && all {
        for t in all_tables {
            if t.is_partitioned() && !via_root {
                warn!(table = %t.display(), "PostgreSQL before 13 publishes a partitioned \
                    table's changes under its partitions' names: capturing its partitions as \
                    tables of their own");
                continue;
            }
            chosen.push(t);
        }
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
                if f.is_partitioned() && !via_root {
                    if !is_pattern(entry) {
                        return Err(Error::config(format!(
                            "key `source.tables[{i}]`: {entry} is a partitioned table, and \
                             PostgreSQL {} publishes its changes only under its partitions' \
                             names (publish_via_partition_root needs PostgreSQL 13 or newer)",
                            server_version / 10_000
                        ))
                        .with_hint(format!(
                            "list its partitions instead, e.g. {entry}_* (each is then captured \
                             as a table of its own), or upgrade PostgreSQL to 13 or newer"
                        )));
                    }
                    if seen.insert(f.oid) {
                        warn!(table = %f.display(), pattern = %entry, "PostgreSQL before 13 \
                            publishes a partitioned table's changes under its partitions' \
                            names: leaving it out (its partitions that match are captured as \
                            tables of their own)");
                    }
                    continue;
                }
                if seen.insert(f.oid) {
                    chosen.push(f.clone());
                }
            }
        }
    }
    let mut chosen = drop_captured_partitions(chosen, entries);
    let oids: Vec<u32> = chosen.iter().map(|t| t.oid).collect();
    let mut columns = load_columns(client, &oids).await?;
    for t in &mut chosen {
        t.columns = columns.remove(&t.oid).unwrap_or_default();
    }
    Ok(chosen)
}

/// Leave out the partitions one of whose ancestors is captured: their rows are read, and their
/// changes published, under that ancestor's name.
fn drop_captured_partitions(chosen: Vec<TableInfo>, entries: &[String]) -> Vec<TableInfo> {
    let captured: HashSet<(String, String)> = chosen
        .iter()
        .map(|t| (t.schema.clone(), t.name.clone()))
        .collect();
    chosen
        .into_iter()
        .filter(|t| {
            let Some((s, n)) = t.ancestors.iter().rev().find(|a| captured.contains(*a)) else {
                return true;
            };
            let named = entries.iter().any(|e| *e == t.display());
            let root = format!("{s}.{n}");
            if named {
                warn!(table = %t.display(), captured_as = %root, "this table is a partition of a \
                    captured partitioned table: its rows and changes are captured under the \
                    partitioned table's name");
            } else {
                debug!(table = %t.display(), captured_as = %root, "partition captured under its \
                    partitioned table");
            }
            false
        })
        .collect()
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
                        typcategory::text, typtypmod, \
                        array(SELECT enumlabel::text FROM pg_enum WHERE enumtypid = pg_type.oid \
                              ORDER BY enumsortorder) \
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
            typmod: r.get(7),
            labels: r.get(8),
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
    /// The tables it publishes under their own names (`schema`, `table`), as
    /// `pg_publication_tables` lists them: with `publish_via_partition_root` a partitioned table
    /// (and not its partitions), else the partitions.
    pub tables: HashSet<(String, String)>,
    /// Operations it publishes that are off.
    pub missing_ops: Vec<&'static str>,
    /// `publish_via_partition_root` (PostgreSQL 13+): partitions' changes are published under
    /// the name (and shape) of their topmost published ancestor.
    pub via_root: bool,
}

/// Read a publication, `None` when it does not exist.
pub async fn publication(
    client: &Client,
    name: &str,
    server_version: u32,
) -> Result<Option<Publication>> {
    let via_root = if server_version >= VIA_ROOT_SERVER_VERSION {
        "pubviaroot"
    } else {
        "false"
    };
    let row = client
        .query_opt(
            &format!(
                "SELECT puballtables, pubinsert, pubupdate, pubdelete, pubtruncate, {via_root} \
                 FROM pg_publication WHERE pubname = $1"
            ),
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
        via_root: row.get(5),
    }))
}

/// What keeps a publication from publishing each captured table's changes under that table's
/// own name. Empty when it covers every table.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PublicationGaps {
    /// Tables it does not publish (`schema.table`, quoted).
    pub missing: Vec<(String, String)>,
    /// Partitioned tables whose changes it publishes under their partitions' names only
    /// (`publish_via_partition_root` is off): `schema.table`.
    pub needs_via_root: Vec<String>,
    /// Partitions whose changes it publishes under a partitioned ancestor's name, which is not
    /// captured: (`schema.table`, the ancestor's `schema.table`).
    pub under_ancestor: Vec<(String, String)>,
}

impl PublicationGaps {
    /// Whether every table is covered.
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.needs_via_root.is_empty() && self.under_ancestor.is_empty()
    }

    /// The error to stop with (`Precondition`), naming the tables, with the statements that fix
    /// it; `None` when every table is covered.
    pub fn error(&self, publication: &str) -> Option<Error> {
        if self.is_empty() {
            return None;
        }
        let pub_q = quote_ident(publication);
        let mut problems = Vec::new();
        let mut fixes = Vec::new();
        if !self.needs_via_root.is_empty() {
            problems.push(format!(
                "publication {publication} publishes the changes of partitioned table(s) {} \
                 under their partitions' names (publish_via_partition_root is off), so they \
                 would not be captured",
                self.needs_via_root.join(", ")
            ));
            fixes.push(format!(
                "ALTER PUBLICATION {pub_q} SET (publish_via_partition_root = true)"
            ));
        }
        if !self.missing.is_empty() {
            let names: Vec<&str> = self.missing.iter().map(|m| m.0.as_str()).collect();
            let quoted: Vec<&str> = self.missing.iter().map(|m| m.1.as_str()).collect();
            problems.push(format!(
                "publication {publication} does not cover configured table(s) {}",
                names.join(", ")
            ));
            fixes.push(format!(
                "ALTER PUBLICATION {pub_q} ADD TABLE {}",
                quoted.join(", ")
            ));
        }
        if !self.under_ancestor.is_empty() {
            let pairs: Vec<String> = self
                .under_ancestor
                .iter()
                .map(|(t, a)| format!("{t} under {a}"))
                .collect();
            problems.push(format!(
                "publication {publication} publishes the changes of partition(s) under their \
                 partitioned table's name (publish_via_partition_root), which is not captured: \
                 {}",
                pairs.join(", ")
            ));
            fixes.push(
                "capture the partitioned table instead of its partitions (its partitions' rows \
                 and changes then arrive under its name)"
                    .to_string(),
            );
        }
        Some(
            Error::new(ErrorKind::Precondition, problems.join("; ")).with_hint(format!(
                "{}; or set `source.publication` to another name so that it is created",
                fixes.join("; ")
            )),
        )
    }
}

/// Under which name `p` publishes each captured table's changes, compared with the table's own.
///
/// pgoutput publishes a row change under the topmost published ancestor of its partition when
/// the publication has `publish_via_partition_root`, else under the partition itself; a
/// captured partitioned table is therefore covered only by a publication with that option that
/// lists it (and none of its ancestors).
pub fn publication_gaps(p: &Publication, tables: &[TableInfo]) -> PublicationGaps {
    let mut gaps = PublicationGaps::default();
    for t in tables {
        if t.is_partitioned() && !p.via_root {
            gaps.needs_via_root.push(t.display());
            continue;
        }
        let own = (t.schema.clone(), t.name.clone());
        let published_as = t
            .ancestors
            .iter()
            .rev()
            .chain(std::iter::once(&own))
            .find(|n| p.tables.contains(*n));
        match published_as {
            // FOR ALL TABLES covers every table it can publish (not unlogged ones, for instance).
            None if p.all_tables => {}
            None => gaps.missing.push((t.display(), t.quoted())),
            Some(n) if *n == own => {}
            Some((s, n)) => gaps.under_ancestor.push((t.display(), format!("{s}.{n}"))),
        }
    }
    gaps
}

/// Create the publication when missing (with `publish_via_partition_root` on PostgreSQL 13+);
/// check that it publishes every table's changes under the table's own name.
pub async fn ensure_publication(
    client: &Client,
    settings: &Settings,
    tables: &[TableInfo],
    server_version: u32,
) -> Result<()> {
    let name = &settings.publication;
    let p = match publication(client, name, server_version).await? {
        Some(p) => p,
        None => {
            let sql = create_publication_sql(settings, tables, server_version)?;
            info!(publication = %name, "creating the publication");
            client.batch_execute(&sql).await.map_err(|e| {
                pg_error(e, format!("creating publication {name}")).with_hint(format!(
                    "the user must own the tables (FOR ALL TABLES needs a superuser), or create \
                     it yourself: {sql}"
                ))
            })?;
            publication(client, name, server_version)
                .await?
                .ok_or_else(|| Error::internal(format!("publication {name} was not created")))?
        }
    };
    if !p.missing_ops.is_empty() {
        warn!(publication = %name, off = ?p.missing_ops,
            "the publication does not publish every operation; those changes are not captured");
    }
    match publication_gaps(&p, tables).error(name) {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

/// The `CREATE PUBLICATION` statement for the captured tables.
fn create_publication_sql(
    settings: &Settings,
    tables: &[TableInfo],
    server_version: u32,
) -> Result<String> {
    let name = &settings.publication;
    let can_via_root = server_version >= VIA_ROOT_SERVER_VERSION;
    if settings.config.publication_all_tables {
        // FOR ALL TABLES publishes every partition either under its root (with the option) or
        // under its own name (without): partitioned tables need the former, partitions captured
        // on their own the latter.
        let parent = tables.iter().find(|t| t.is_partitioned());
        let partition = tables.iter().find(|t| t.is_partition());
        if let (Some(parent), Some(partition)) = (parent, partition) {
            return Err(Error::new(
                ErrorKind::Precondition,
                format!(
                    "cannot create publication {name} FOR ALL TABLES: it would publish the \
                     changes of partitioned table {} only with publish_via_partition_root, and \
                     those of partition {} (captured without its partitioned table) only \
                     without it",
                    parent.display(),
                    partition.display()
                ),
            )
            .with_hint(
                "capture partitioned tables whole (list the partitioned table, not its \
                 partitions), or set `publication_all_tables: false`",
            ));
        }
        let with = if can_via_root && partition.is_none() {
            " WITH (publish_via_partition_root = true)"
        } else {
            ""
        };
        return Ok(format!(
            "CREATE PUBLICATION {} FOR ALL TABLES{with}",
            quote_ident(name)
        ));
    }
    if tables.is_empty() {
        return Err(Error::new(
            ErrorKind::Precondition,
            format!("cannot create publication {name}: no table matches `source.tables`"),
        )
        .with_hint("create the tables first, or fix the patterns in `source.tables`"));
    }
    let list: Vec<String> = tables.iter().map(TableInfo::quoted).collect();
    let with = if can_via_root {
        " WITH (publish_via_partition_root = true)"
    } else {
        ""
    };
    Ok(format!(
        "CREATE PUBLICATION {} FOR TABLE {}{with}",
        quote_ident(name),
        list.join(", ")
    ))
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
    let version = server_version(client).await.unwrap_or(0);
    let tables = match resolve_tables(
        client,
        &settings.config.tables,
        settings.config.publication_all_tables,
        version,
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
    // A publication that could not be created as the tables need (not for want of tables: the
    // `tables` check reports that).
    let create_error = create_publication_sql(settings, &tables, version)
        .err()
        .filter(|_| !tables.is_empty());
    match publication(client, &settings.publication, version).await {
        Ok(Some(p)) => match publication_gaps(&p, &tables).error(&settings.publication) {
            None => out.push(Check::pass(
                "publication",
                format!("{} covers every table", settings.publication),
            )),
            Some(e) => out.push(Check::from_error("publication", &e)),
        },
        Ok(None) if create_error.is_some() => {
            if let Some(e) = &create_error {
                out.push(Check::from_error("publication", e));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, kind: u8, ancestors: &[&str]) -> TableInfo {
        TableInfo {
            oid: 0,
            schema: "public".into(),
            name: name.into(),
            replident: b'd',
            columns: Vec::new(),
            kind,
            ancestors: ancestors
                .iter()
                .map(|a| ("public".to_string(), a.to_string()))
                .collect(),
        }
    }

    fn publication(tables: &[&str], via_root: bool) -> Publication {
        Publication {
            all_tables: false,
            tables: tables
                .iter()
                .map(|t| ("public".to_string(), t.to_string()))
                .collect(),
            missing_ops: Vec::new(),
            via_root,
        }
    }

    #[test]
    fn a_partitioned_table_needs_publish_via_partition_root() {
        let m = table("m", b'p', &[]);
        // Without the option, pg_publication_tables lists the partitions, not `m`.
        let gaps = publication_gaps(
            &publication(&["m_1", "m_2"], false),
            std::slice::from_ref(&m),
        );
        assert_eq!(gaps.needs_via_root, ["public.m"]);
        let e = gaps.error("p").unwrap();
        assert_eq!(e.kind(), ErrorKind::Precondition);
        assert!(e
            .hint()
            .unwrap()
            .starts_with("ALTER PUBLICATION \"p\" SET (publish_via_partition_root = true)"));
        assert!(publication_gaps(&publication(&["m"], true), std::slice::from_ref(&m)).is_empty());
        let gaps = publication_gaps(&publication(&["other"], true), &[m]);
        assert_eq!(
            gaps.missing,
            [("public.m".to_string(), "\"public\".\"m\"".to_string())]
        );
        assert!(gaps
            .error("p")
            .unwrap()
            .hint()
            .unwrap()
            .contains("ADD TABLE \"public\".\"m\""));
    }

    #[test]
    fn a_partition_is_covered_only_when_published_under_its_own_name() {
        let leaf = table("m_1", b'r', &["m"]);
        assert!(
            publication_gaps(&publication(&["m_1"], true), std::slice::from_ref(&leaf)).is_empty()
        );
        assert!(publication_gaps(
            &publication(&["m_1", "m_2"], false),
            std::slice::from_ref(&leaf)
        )
        .is_empty());
        // With the option and its parent in the publication, its changes arrive under `m`.
        let gaps = publication_gaps(&publication(&["m"], true), std::slice::from_ref(&leaf));
        assert_eq!(
            gaps.under_ancestor,
            [("public.m_1".to_string(), "public.m".to_string())]
        );
        assert!(gaps
            .error("p")
            .unwrap()
            .message()
            .contains("m_1 under public.m"));
        // A sub-partitioned table under a published root: the topmost published ancestor wins.
        let sub = table("m_2", b'p', &["m"]);
        let gaps = publication_gaps(&publication(&["m", "m_2"], true), &[sub]);
        assert_eq!(gaps.under_ancestor.len(), 1);
        // FOR ALL TABLES covers whatever it can publish.
        let mut all = publication(&[], true);
        all.all_tables = true;
        assert!(publication_gaps(&all, &[table("unlogged", b'r', &[])]).is_empty());
    }

    #[test]
    fn partitions_of_a_captured_table_are_left_out() {
        let chosen = vec![
            table("m", b'p', &[]),
            table("m_1", b'r', &["m"]),
            table("m_2", b'p', &["m"]),
            table("m_2a", b'r', &["m_2", "m"]),
            table("n_1", b'r', &["n"]),
            table("o_1a", b'r', &["o_1", "o"]),
            table("o_1", b'p', &["o"]),
        ];
        let kept: Vec<String> = drop_captured_partitions(chosen, &["public.m_1".into()])
            .iter()
            .map(TableInfo::display)
            .collect();
        assert_eq!(kept, ["public.m", "public.n_1", "public.o_1"]);
    }
}
