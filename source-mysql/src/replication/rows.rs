//! Row decoding: builds the decoding plan of each `TABLE_MAP` from the binlog's optional
//! metadata or the tracked table definition, and decodes row events into change events.

use std::sync::Arc;

use connector_core::{ChangeEvent, Error, ErrorKind, Op, Result, TableSchema};
use tracing::warn;

use super::Decoder;
use crate::binlog::{
    column_type as ct, is_character, real_type, Buf, RowsEvent, RowsKind, TableMapEvent,
};
use crate::column_map::{binlog_column_def, check_compatible, fill_string_length, geometry_name};
use crate::ddl::TableState;
use crate::decode::{ColumnPlan, TableShape};
use crate::schema::{Charset, ColumnDef, Kind, TableDef};

impl Decoder {
    pub(super) fn schema_for_opt(&self, schema: &str, table: &str) -> Option<Arc<TableSchema>> {
        match self.tracker.get(schema, table) {
            Some(TableState::Known(d)) => Some(Arc::new(d.to_schema())),
            _ => None,
        }
    }

    pub(super) fn schema_for(&self, schema: &str, table: &str) -> Option<Arc<TableSchema>> {
        self.schema_for_opt(schema, table).or_else(|| {
            Some(Arc::new(TableSchema::new(
                connector_core::TableId::new(schema, schema, table),
                Vec::new(),
            )))
        })
    }

    pub(super) fn on_table_map(&mut self, data: &[u8]) -> Result<()> {
        let table_id = data
            .get(..6)
            .map(|b| Buf(b).uint_le(6).unwrap_or(0))
            .unwrap_or(0);
        if let (Some(raw), Some(_)) = (self.raw_maps.get(&table_id), self.tables.get(&table_id)) {
            if raw.as_slice() == data {
                return Ok(());
            }
        }
        let tme = TableMapEvent::parse(data)?;
        let shape = if self.filter.matches(&tme.schema, &tme.table) {
            Some(Arc::new(self.shape_of(&tme)?))
        } else {
            None
        };
        self.tables.insert(table_id, shape);
        self.raw_maps.insert(table_id, data.to_vec());
        Ok(())
    }

    /// Build the decoding plan of a table map: names, signedness, charsets and labels from its
    /// optional metadata, or else from the schema tracker.
    pub fn shape_of(&mut self, tme: &TableMapEvent) -> Result<TableShape> {
        let n = tme.types.len();
        let o = &tme.optional;
        let full = o.column_names.as_ref().is_some_and(|v| v.len() == n);
        let tracked = match self.tracker.get(&tme.schema, &tme.table) {
            Some(TableState::Known(d)) => Some(d.clone()),
            _ => None,
        };
        if let (true, Some(d)) = (full, &tracked) {
            let names = o.column_names.as_deref().unwrap_or_default();
            if let Some(what) = crate::history::disagreement(d, names) {
                if self
                    .disagreed
                    .insert((tme.schema.clone(), tme.table.clone()))
                {
                    warn!(table = %format!("{}.{}", tme.schema, tme.table), at = %format!("{}:{}", self.file, self.pos),
                        "the schema history disagrees with the binlog's column metadata ({what}); \
                         rows are decoded with the binlog's, but with binlog_row_metadata=MINIMAL \
                         they would be wrong: report the DDL that led here");
                }
            }
        }
        if !full {
            self.used_tracker = true;
            let Some(d) = &tracked else {
                return Err(self.untracked_error(tme));
            };
            if d.columns.len() != n {
                return Err(Error::new(
                    ErrorKind::Data,
                    format!(
                        "table {}.{}: the binlog row has {n} columns but the tracked schema has {} \
                         ({})",
                        tme.schema,
                        tme.table,
                        d.columns.len(),
                        d.columns
                            .iter()
                            .map(|c| c.name.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
                .with_hint(
                    "set binlog_row_metadata=FULL on the server so that rows carry their column \
                     names; the schema tracker lost track of this table",
                ));
            }
        }
        let mut numeric_i = 0;
        let mut char_i = 0;
        let mut enum_i = 0;
        let mut set_i = 0;
        let mut es_i = 0;
        let mut geo_i = 0;
        let mut columns = Vec::with_capacity(n);
        for i in 0..n {
            let t = tme.types[i];
            let meta = tme.meta[i];
            let rt = real_type(t, meta);
            let from_tracker = tracked.as_ref().and_then(|d| d.columns.get(i));
            let mut def = if full {
                let name = o
                    .column_names
                    .as_ref()
                    .map(|v| v[i].clone())
                    .unwrap_or_default();
                binlog_column_def(rt, meta, name)
            } else {
                let tc = from_tracker
                    .cloned()
                    .unwrap_or_else(|| ColumnDef::new("", Kind::Unknown));
                check_compatible(&tc, rt).map_err(|e| {
                    e.context(format!(
                        "table {}.{} column {}",
                        tme.schema, tme.table, tc.name
                    ))
                })?;
                let mut d = tc;
                if rt == ct::JSON {
                    d.kind = Kind::Json;
                } else if d.kind == Kind::Json {
                    // MariaDB's JSON is LONGTEXT, as its information_schema says.
                    d.kind = Kind::LongText;
                    d.charset = Some(Charset::utf8mb4());
                }
                d
            };
            def.nullable = tme.nullable[i];
            let is_numeric = matches!(
                t,
                ct::TINY
                    | ct::SHORT
                    | ct::INT24
                    | ct::LONG
                    | ct::LONGLONG
                    | ct::NEWDECIMAL
                    | ct::FLOAT
                    | ct::DOUBLE
                    | ct::DECIMAL
            );
            if is_numeric {
                if let Some(s) = &o.signedness {
                    def.unsigned = s.get(numeric_i).copied().unwrap_or(def.unsigned);
                }
                numeric_i += 1;
            }
            if is_character(t, meta) {
                if let Some(cs) = &o.column_charsets {
                    if let Some(id) = cs.get(char_i) {
                        def.charset = Some(self.collations.charset(*id));
                    }
                }
                char_i += 1;
                if full {
                    fill_string_length(&mut def, rt, meta);
                }
            }
            if rt == ct::ENUM || rt == ct::SET {
                if let Some(cs) = &o.enum_set_charsets {
                    if let Some(id) = cs.get(es_i) {
                        def.charset = Some(self.collations.charset(*id));
                    }
                }
                es_i += 1;
                let values = if rt == ct::ENUM {
                    let v = o.enum_values.as_ref().and_then(|v| v.get(enum_i));
                    enum_i += 1;
                    v
                } else {
                    let v = o.set_values.as_ref().and_then(|v| v.get(set_i));
                    set_i += 1;
                    v
                };
                if let Some(v) = values {
                    let cs = def.charset.clone().unwrap_or_else(Charset::utf8mb4);
                    def.values = v
                        .iter()
                        .map(|l| crate::schema::decode_text(l, &cs))
                        .collect::<Vec<_>>()
                        .into();
                }
            }
            if t == ct::GEOMETRY {
                if let Some(g) = o.geometry_types.as_ref().and_then(|g| g.get(geo_i)) {
                    def.geometry = Some(geometry_name(*g).into());
                }
                geo_i += 1;
            }
            if full && rt == ct::STRING {
                // The binlog describes MariaDB's INET4, INET6 and UUID as binary strings; the
                // tracked definition (information_schema, DDL) knows the type.
                let known = from_tracker
                    .filter(|c| c.name.eq_ignore_ascii_case(&def.name))
                    .or_else(|| {
                        tracked.as_ref().and_then(|d| {
                            d.columns
                                .iter()
                                .find(|c| c.name.eq_ignore_ascii_case(&def.name))
                        })
                    });
                if let Some(k) =
                    known.filter(|c| matches!(c.kind, Kind::Inet4 | Kind::Inet6 | Kind::Uuid))
                {
                    def.kind = k.kind;
                    def.charset = None;
                    def.length = 0;
                }
            }
            columns.push(ColumnPlan {
                def,
                binlog_type: rt,
                meta,
            });
        }
        if let Some(pk) = &o.primary_key {
            for c in columns.iter_mut() {
                c.def.key = false;
            }
            for &i in pk {
                if let Some(c) = columns.get_mut(i) {
                    c.def.key = true;
                }
            }
        } else if full {
            // No PK metadata: take keys from the tracker when it agrees on the names.
            if let Some(d) = &tracked {
                for c in columns.iter_mut() {
                    c.def.key = d
                        .columns
                        .iter()
                        .any(|tc| tc.key && tc.name.eq_ignore_ascii_case(&c.def.name));
                }
            }
        }
        let def = TableDef {
            schema: tme.schema.as_str().into(),
            table: tme.table.as_str().into(),
            columns: columns.iter().map(|c| c.def.clone()).collect(),
        };
        Ok(TableShape::new(def, columns))
    }

    fn untracked_error(&self, tme: &TableMapEvent) -> Error {
        let why = match self.tracker.get(&tme.schema, &tme.table) {
            Some(TableState::Unknown(sql)) => {
                format!("the schema tracker could not follow `{sql}`")
            }
            _ => "the schema tracker does not know the table".to_string(),
        };
        Error::new(
            ErrorKind::Data,
            format!(
                "table {}.{}: the binlog carries no column names (binlog_row_metadata is not FULL) \
                 and {why}",
                tme.schema, tme.table
            ),
        )
        .with_hint("SET GLOBAL binlog_row_metadata = FULL (and in the server config), then restart")
    }

    pub(super) fn on_rows(&mut self, t: u8, data: &[u8], out: &mut Vec<ChangeEvent>) -> Result<()> {
        let rows = RowsEvent::parse(t, data)?;
        let Some(entry) = self.tables.get(&rows.table_id) else {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!(
                    "rows event for table id {} without a preceding table map",
                    rows.table_id
                ),
            ));
        };
        let Some(shape) = entry.clone() else {
            return Ok(()); // not captured
        };
        if rows.partial {
            return Err(Error::new(
                ErrorKind::Data,
                format!(
                    "table {}: a partial JSON update (PARTIAL_UPDATE_ROWS_EVENT) does not carry \
                     the full row",
                    shape.schema.id
                ),
            )
            .with_hint(
                "SET GLOBAL binlog_row_value_options = '' so updates log full JSON values",
            ));
        }
        if self.txn.is_none() {
            let id: Arc<str> = format!("{}:{}", self.file, self.pos).into();
            self.begin(self.pos, id, None, 0, 0, false)?;
        }
        let mut b = Buf(&rows.rows);
        let mut row_index = 0u64;
        while !b.is_empty() {
            let (op, before, after) = match rows.kind {
                RowsKind::Write => (
                    Op::Create,
                    None,
                    Some(shape.decode_row(rows.present, &mut b)?),
                ),
                RowsKind::Delete => (
                    Op::Delete,
                    Some(shape.decode_row(rows.present, &mut b)?),
                    None,
                ),
                RowsKind::Update => {
                    let before = shape.decode_row(rows.present, &mut b)?;
                    let after =
                        shape.decode_row(rows.present_after.unwrap_or(rows.present), &mut b)?;
                    (Op::Update, Some(before), Some(after))
                }
            };
            self.emit(
                out,
                op,
                Some(Arc::clone(&shape.schema)),
                before,
                after,
                row_index,
                None,
            );
            row_index += 1;
        }
        if self.held_bytes > self.max_xa_held_bytes {
            return Err(self.held_error());
        }
        Ok(())
    }
}
