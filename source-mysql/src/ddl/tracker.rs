//! The schema tracker: table definitions by database and table, changed by applying each DDL
//! statement in binlog order.

use std::collections::HashMap;

use super::statement::parse;
use super::{AlterOp, Ddl, Name, Place};
use crate::schema::{ColumnDef, TableDef};

/// Table definitions by (database, table), kept in binlog order.
#[derive(Clone, Debug, Default)]
pub struct SchemaTracker {
    tables: HashMap<(String, String), TableState>,
}

/// What the tracker knows of a table.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum TableState {
    /// Its definition.
    Known(TableDef),
    /// A statement changed it in a way the tracker could not follow.
    Unknown(String),
}

impl SchemaTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        SchemaTracker::default()
    }

    /// Set a table's definition (from `information_schema`).
    pub fn insert(&mut self, def: TableDef) {
        self.tables.insert(
            (def.schema.to_string(), def.table.to_string()),
            TableState::Known(def),
        );
    }

    /// Set a table's state (from the schema history).
    pub fn set(&mut self, schema: &str, table: &str, state: TableState) {
        self.tables
            .insert((schema.to_string(), table.to_string()), state);
    }

    /// Every table the tracker knows, as `(database, table, state)`, in no particular order.
    pub fn tables(&self) -> impl Iterator<Item = (&str, &str, &TableState)> {
        self.tables
            .iter()
            .map(|((s, t), st)| (s.as_str(), t.as_str(), st))
    }

    /// A table's state.
    pub fn get(&self, schema: &str, table: &str) -> Option<&TableState> {
        self.tables.get(&(schema.to_string(), table.to_string()))
    }

    fn key(name: &Name, default_schema: &str) -> (String, String) {
        (
            name.schema
                .clone()
                .unwrap_or_else(|| default_schema.to_string()),
            name.table.clone(),
        )
    }

    /// Apply a statement run with `default_schema`; returns the parsed statement.
    pub fn apply(&mut self, sql: &str, default_schema: &str) -> Ddl {
        let ddl = parse(sql);
        match &ddl {
            Ddl::Create {
                name,
                columns,
                like,
            } => {
                let key = Self::key(name, default_schema);
                let state = match (columns, like) {
                    (Some(cols), _) => TableState::Known(TableDef {
                        schema: key.0.clone().into(),
                        table: key.1.clone().into(),
                        columns: cols.clone(),
                    }),
                    (None, Some(src)) => match self.tables.get(&Self::key(src, default_schema)) {
                        Some(TableState::Known(d)) => TableState::Known(TableDef {
                            schema: key.0.clone().into(),
                            table: key.1.clone().into(),
                            columns: d.columns.clone(),
                        }),
                        _ => TableState::Unknown(sql.to_string()),
                    },
                    (None, None) => TableState::Unknown(sql.to_string()),
                };
                self.tables.insert(key, state);
            }
            Ddl::Alter { name, ops } => {
                let key = Self::key(name, default_schema);
                let Some(state) = self.tables.remove(&key) else {
                    return ddl;
                };
                let mut new_key = key.clone();
                let state = match state {
                    TableState::Known(mut def) => {
                        let mut ok = true;
                        for op in ops {
                            if let AlterOp::Rename(n) = op {
                                new_key = Self::key(n, default_schema);
                                def.schema = new_key.0.clone().into();
                                def.table = new_key.1.clone().into();
                            } else if !apply_alter(&mut def, op) {
                                ok = false;
                            }
                        }
                        if ok {
                            TableState::Known(def)
                        } else {
                            TableState::Unknown(sql.to_string())
                        }
                    }
                    unknown => unknown,
                };
                self.tables.insert(new_key, state);
            }
            Ddl::Drop(names) => {
                for n in names {
                    self.tables.remove(&Self::key(n, default_schema));
                }
            }
            Ddl::Rename(pairs) => {
                for (a, b) in pairs {
                    if let Some(state) = self.tables.remove(&Self::key(a, default_schema)) {
                        let key = Self::key(b, default_schema);
                        let state = match state {
                            TableState::Known(mut d) => {
                                d.schema = key.0.clone().into();
                                d.table = key.1.clone().into();
                                TableState::Known(d)
                            }
                            u => u,
                        };
                        self.tables.insert(key, state);
                    }
                }
            }
            Ddl::DropDatabase(db) => self.tables.retain(|(s, _), _| s != db),
            Ddl::Truncate(_) | Ddl::TableOther(_) | Ddl::Other => {}
        }
        ddl
    }
}

fn place_column(def: &mut TableDef, c: ColumnDef, place: Option<&Place>) -> bool {
    match place {
        // Before the hidden period columns of a system-versioned table, which stay last.
        None => match def.columns.iter().position(|c| c.hidden) {
            Some(i) => def.columns.insert(i, c),
            None => def.columns.push(c),
        },
        Some(Place::First) => def.columns.insert(0, c),
        Some(Place::After(a)) => match def.index_of(a) {
            Some(i) => def.columns.insert(i + 1, c),
            None => return false,
        },
    }
    true
}

fn apply_alter(def: &mut TableDef, op: &AlterOp) -> bool {
    match op {
        AlterOp::Add(c, _, true) if def.index_of(&c.name).is_some() => true,
        AlterOp::Add(c, place, _) => {
            let c = c.clone();
            if c.key {
                for k in def.columns.iter_mut() {
                    k.key = false;
                }
            }
            place_column(def, c, place.as_ref())
        }
        AlterOp::Drop(name, if_exists) => match def.index_of(name) {
            Some(i) => {
                def.columns.remove(i);
                true
            }
            None => *if_exists,
        },
        AlterOp::Modify(c, place, if_exists) | AlterOp::Change(_, c, place, if_exists) => {
            let old = match op {
                AlterOp::Change(old, ..) => old.as_str(),
                _ => &*c.name,
            };
            let Some(i) = def.index_of(old) else {
                return *if_exists;
            };
            let prev = def.columns.remove(i);
            let mut c = c.clone();
            c.key = c.key || prev.key;
            if c.key {
                c.nullable = false;
            }
            if place.is_none() {
                def.columns.insert(i, c);
                true
            } else {
                place_column(def, c, place.as_ref())
            }
        }
        AlterOp::RenameColumn(a, b) => match def.index_of(a) {
            Some(i) => {
                def.columns[i].name = b.clone().into();
                true
            }
            None => false,
        },
        AlterOp::AddPrimaryKey(cols) => {
            for c in def.columns.iter_mut() {
                c.key = cols.iter().any(|k| c.name.eq_ignore_ascii_case(k));
                if c.key {
                    c.nullable = false;
                }
            }
            true
        }
        AlterOp::DropPrimaryKey => {
            for c in def.columns.iter_mut() {
                c.key = false;
            }
            true
        }
        AlterOp::Convert(cs) => {
            for c in def.columns.iter_mut() {
                if c.charset.as_ref().is_some_and(|x| !x.is_binary()) {
                    c.charset = Some(cs.clone());
                }
            }
            true
        }
        AlterOp::AddSystemVersioning(implicit) => {
            if *implicit && !def.columns.iter().any(|c| c.hidden) {
                let keyed = def.columns.iter().any(|c| c.key);
                def.columns
                    .extend(ColumnDef::system_versioning_columns(keyed));
            }
            true
        }
        AlterOp::DropSystemVersioning => {
            let before = def.columns.len();
            def.columns.retain(|c| !c.hidden);
            // Explicit period columns: what happens to them is not followed.
            def.columns.len() < before
        }
        AlterOp::Rename(_) | AlterOp::Other => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(t: &SchemaTracker, db: &str, table: &str) -> Vec<String> {
        match t.get(db, table) {
            Some(TableState::Known(d)) => d.columns.iter().map(|c| c.name.to_string()).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unterminated_create_table_is_parsed_without_panicking() {
        // GIVEN a CREATE TABLE whose column list is never closed (a fuzzing find: the parser
        // stepped past the last token and sliced beyond the end)
        for sql in [
            "CREATE TABLE t (a INT",
            "CREATE TABLE t (",
            "CREATE TABLE t ((a INT)",
        ] {
            // WHEN it is parsed THEN it does not panic
            let _ = parse(sql);
            let mut t = SchemaTracker::new();
            let _ = t.apply(sql, "db");
        }
    }

    #[test]
    fn create_table_with_types_keys_and_charsets() {
        let mut t = SchemaTracker::new();
        t.apply(
            "CREATE TABLE IF NOT EXISTS `d`.`t` (\n  id INT UNSIGNED NOT NULL AUTO_INCREMENT,\n  \
             name VARCHAR(20) CHARACTER SET latin1 DEFAULT 'x, y' COMMENT 'a (b)',\n  \
             price DECIMAL(10,2) NOT NULL DEFAULT 0.00,\n  st ENUM('a','b''c') DEFAULT 'a',\n  \
             ts DATETIME(3) ON UPDATE CURRENT_TIMESTAMP(3),\n  b BLOB, /* comment */\n  \
             PRIMARY KEY (id), KEY k (name(5))\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            "other",
        );
        let Some(TableState::Known(d)) = t.get("d", "t") else {
            panic!()
        };
        let types: Vec<String> = d.columns.iter().map(|c| c.type_name()).collect();
        assert_eq!(
            types,
            [
                "int unsigned",
                "varchar(20)",
                "decimal(10,2)",
                "enum('a','b''c')",
                "datetime(3)",
                "blob"
            ]
        );
        assert!(d.columns[0].key && !d.columns[0].nullable);
        assert_eq!(&*d.columns[1].charset.as_ref().unwrap().name, "latin1");
        assert!(!d.columns[2].nullable);
        assert_eq!(&*d.columns[3].values[1], "b'c");
    }

    #[test]
    fn alter_add_drop_reorder_change_rename() {
        // GIVEN a tracked table
        let mut t = SchemaTracker::new();
        t.apply("create table t (a int primary key, b int, c int)", "d");
        // WHEN columns are added, moved, dropped, changed and renamed
        t.apply(
            "ALTER TABLE t ADD COLUMN x VARCHAR(5) AFTER a, ADD y INT FIRST",
            "d",
        );
        assert_eq!(names(&t, "d", "t"), ["y", "a", "x", "b", "c"]);
        t.apply(
            "alter table d.t drop column b, modify c bigint unsigned first",
            "d",
        );
        assert_eq!(names(&t, "d", "t"), ["c", "y", "a", "x"]);
        t.apply(
            "ALTER TABLE t CHANGE COLUMN x xx TEXT AFTER y, RENAME COLUMN y TO yy",
            "d",
        );
        assert_eq!(names(&t, "d", "t"), ["c", "yy", "xx", "a"]);
        let Some(TableState::Known(d)) = t.get("d", "t") else {
            panic!()
        };
        assert_eq!(d.columns[0].type_name(), "bigint unsigned");
        assert!(d.columns[3].key);
        // AND renames move the definition
        t.apply("RENAME TABLE t TO t2", "d");
        assert!(t.get("d", "t").is_none());
        t.apply("alter table t2 rename to d.t3, add index i (a)", "d");
        assert_eq!(names(&t, "d", "t3"), ["c", "yy", "xx", "a"]);
        // AND an ALTER it cannot follow marks the table unknown
        t.apply("alter table t3 drop column nope", "d");
        assert!(matches!(t.get("d", "t3"), Some(TableState::Unknown(_))));
        t.apply("DROP TABLE IF EXISTS `t3` /* generated by server */", "d");
        assert!(t.get("d", "t3").is_none());
    }

    #[test]
    fn if_exists_and_if_not_exists_specifications_change_nothing_when_they_do_not_apply() {
        // GIVEN a tracked table (id, a)
        let mut t = SchemaTracker::new();
        t.apply("create table t (id int primary key, a int)", "d");
        // WHEN idempotent specifications that do not apply are run
        for sql in [
            "ALTER TABLE t ADD COLUMN IF NOT EXISTS a INT",
            "alter table t add if not exists (a int, id bigint)",
            "ALTER TABLE t DROP COLUMN IF EXISTS zz",
            "ALTER TABLE t DROP IF EXISTS zz, ADD INDEX IF NOT EXISTS i (a)",
            "ALTER TABLE t MODIFY COLUMN IF EXISTS zz BIGINT",
            "ALTER TABLE t CHANGE COLUMN IF EXISTS zz yy BIGINT",
            "ALTER TABLE t ADD CONSTRAINT IF NOT EXISTS c CHECK (a > 0)",
            "ALTER TABLE t ADD KEY IF NOT EXISTS k (a), DROP INDEX IF EXISTS nope",
        ] {
            t.apply(sql, "d");
            // THEN the table keeps its shape
            assert_eq!(names(&t, "d", "t"), ["id", "a"], "{sql}");
        }
        // AND when they apply, they apply
        t.apply("ALTER TABLE t ADD COLUMN IF NOT EXISTS b INT FIRST", "d");
        assert_eq!(names(&t, "d", "t"), ["b", "id", "a"]);
        t.apply("ALTER TABLE t CHANGE COLUMN IF EXISTS b c BIGINT", "d");
        assert_eq!(names(&t, "d", "t"), ["c", "id", "a"]);
        t.apply("ALTER TABLE t DROP COLUMN IF EXISTS c", "d");
        assert_eq!(names(&t, "d", "t"), ["id", "a"]);
        // AND without IF EXISTS, a missing column still means the tracker lost track
        t.apply("ALTER TABLE t DROP COLUMN zz", "d");
        assert!(matches!(t.get("d", "t"), Some(TableState::Unknown(_))));
    }

    #[test]
    fn system_versioned_tables_keep_their_hidden_period_columns_last() {
        // GIVEN a table created WITH SYSTEM VERSIONING (implicit row_start/row_end)
        let mut t = SchemaTracker::new();
        t.apply(
            "CREATE TABLE sv (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING",
            "d",
        );
        assert_eq!(names(&t, "d", "sv"), ["id", "v", "row_start", "row_end"]);
        // WHEN a column is added THEN it goes before them, as the server stores it
        t.apply("ALTER TABLE sv ADD COLUMN w INT", "d");
        assert_eq!(
            names(&t, "d", "sv"),
            ["id", "v", "w", "row_start", "row_end"]
        );
        // AND versioning can be dropped and added again
        t.apply("ALTER TABLE sv DROP SYSTEM VERSIONING", "d");
        assert_eq!(names(&t, "d", "sv"), ["id", "v", "w"]);
        t.apply("ALTER TABLE sv ADD SYSTEM VERSIONING", "d");
        assert_eq!(
            names(&t, "d", "sv"),
            ["id", "v", "w", "row_start", "row_end"]
        );
        // AND explicit period columns are ordinary columns
        t.apply(
            "CREATE TABLE e (id INT, s TIMESTAMP(6) GENERATED ALWAYS AS ROW START, \
             e TIMESTAMP(6) GENERATED ALWAYS AS ROW END, PERIOD FOR SYSTEM_TIME(s, e)) \
             WITH SYSTEM VERSIONING",
            "d",
        );
        assert_eq!(names(&t, "d", "e"), ["id", "s", "e"]);
    }
}
