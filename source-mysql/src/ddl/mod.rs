//! The schema tracker: table definitions kept in binlog order by applying each DDL statement at
//! its position, so that rows are decoded with the shape they were written with.
//!
//! It parses what changes a table's shape: `CREATE TABLE` (columns, types, primary key, charsets;
//! `LIKE`; MariaDB's `WITH SYSTEM VERSIONING` and its hidden `row_start`/`row_end`), `ALTER TABLE`
//! (`ADD`/`DROP`/`MODIFY`/`CHANGE`/`RENAME COLUMN`, `FIRST`/`AFTER`, MariaDB's `IF [NOT] EXISTS`,
//! `ADD`/`DROP PRIMARY KEY`, `RENAME TO`, `CONVERT TO CHARACTER SET`, `ADD`/`DROP SYSTEM
//! VERSIONING`), `DROP TABLE`, `RENAME TABLE`, `TRUNCATE`, `DROP DATABASE`. Other clauses are
//! skipped; statements it cannot follow mark the table unknown, and a rows event for an unknown
//! table is a clear error. [`parse_dml`] recognises data changes logged as statements.
//!
//! The parts: `lexer` splits SQL into tokens ([`tokenize`]), `columns` parses column types
//! ([`parse_column_type`]), `statement` parses statements into the types defined here ([`parse`],
//! [`parse_dml`]), and `tracker` keeps the definitions ([`SchemaTracker`]).

mod columns;
mod lexer;
mod statement;
mod tracker;

use crate::schema::{Charset, ColumnDef};

pub use columns::parse_column_type;
pub use lexer::{tokenize, Tok};
pub use statement::{parse, parse_dml, Dml};
pub use tracker::{SchemaTracker, TableState};

/// A table name, qualified or not.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Name {
    /// Database, when written.
    pub schema: Option<String>,
    /// Table.
    pub table: String,
}

/// Where a column goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// `FIRST`.
    First,
    /// `AFTER col`.
    After(String),
}

/// One `ALTER TABLE` specification. The `bool` of `Add`, `Drop`, `Modify` and `Change` is
/// MariaDB's `IF NOT EXISTS` / `IF EXISTS`: the specification changes nothing when the column
/// already exists / does not exist.
#[derive(Clone, Debug, PartialEq)]
pub enum AlterOp {
    /// `ADD [COLUMN] [IF NOT EXISTS] def [FIRST | AFTER c]`.
    Add(ColumnDef, Option<Place>, bool),
    /// `DROP [COLUMN] [IF EXISTS] c`.
    Drop(String, bool),
    /// `MODIFY [COLUMN] [IF EXISTS] def [place]`.
    Modify(ColumnDef, Option<Place>, bool),
    /// `CHANGE [COLUMN] [IF EXISTS] old def [place]`.
    Change(String, ColumnDef, Option<Place>, bool),
    /// `RENAME COLUMN a TO b`.
    RenameColumn(String, String),
    /// `RENAME [TO|AS] t`.
    Rename(Name),
    /// `ADD PRIMARY KEY (cols)`.
    AddPrimaryKey(Vec<String>),
    /// `DROP PRIMARY KEY`.
    DropPrimaryKey,
    /// `CONVERT TO CHARACTER SET cs`.
    Convert(Charset),
    /// MariaDB's `ADD SYSTEM VERSIONING`; `true` when the statement gives no `ROW START` column
    /// of its own, so the implicit `row_start`/`row_end` are added.
    AddSystemVersioning(bool),
    /// MariaDB's `DROP SYSTEM VERSIONING` (removes the implicit period columns).
    DropSystemVersioning,
    /// Anything that does not change the row shape.
    Other,
}

/// A parsed DDL statement.
#[derive(Clone, Debug, PartialEq)]
pub enum Ddl {
    /// `CREATE TABLE`.
    Create {
        /// The table.
        name: Name,
        /// Its columns (primary key flags set), or `None` for `CREATE TABLE ... SELECT`.
        columns: Option<Vec<ColumnDef>>,
        /// `CREATE TABLE t LIKE other`.
        like: Option<Name>,
    },
    /// `ALTER TABLE`.
    Alter {
        /// The table.
        name: Name,
        /// Its specifications.
        ops: Vec<AlterOp>,
    },
    /// `DROP TABLE`.
    Drop(Vec<Name>),
    /// `RENAME TABLE a TO b, ...`.
    Rename(Vec<(Name, Name)>),
    /// `TRUNCATE [TABLE] t`.
    Truncate(Name),
    /// `DROP DATABASE`.
    DropDatabase(String),
    /// `CREATE INDEX ... ON t`, `DROP INDEX ... ON t`, ...: about a table, no shape change.
    TableOther(Name),
    /// Not a table DDL statement (or not understood).
    Other,
}
