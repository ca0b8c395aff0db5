//! `{type: mask, columns: [schema.table.column, ...], with: sha256 | redact | null}`: replaces
//! the values of the columns named, in `before` and `after` (and so in keys), before anything
//! else sees them.
//!
//! - `sha256`: the lower-case hex SHA-256 of the salt followed by the value's text (as written in
//!   the topic; bytes as they are). The salt comes from `salt_env: VARNAME` or `salt_file: PATH`
//!   (its content, without a trailing newline); one of them is required and must not be empty.
//! - `redact`: the string `****`.
//! - `null`: null (the column becomes optional in the Connect schema).
//!
//! Null values stay null and unavailable values stay unavailable. A `sha256` or `redact` column
//! becomes a string in the Connect schema. Values are never logged, and errors never carry them.

use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{
    check_column_patterns, check_exact_columns, config_error, ColumnPattern, SchemaCache,
    Transform, Verdict,
};
use crate::config::{ConfigSection, ConnectorType, Secret};
use crate::context::Context;
use crate::error::Result;
use crate::event::{ChangeEvent, Row, TableSchema, Value};

/// What `redact` writes.
pub const REDACTED: &str = "****";

/// How masked values are replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskWith {
    /// Hex SHA-256 of salt and value.
    Sha256,
    /// `****`.
    Redact,
    /// Null.
    Null,
}

fn mask_with<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<MaskWith, D::Error> {
    match Option::<String>::deserialize(d)?.as_deref() {
        None | Some("null") => Ok(MaskWith::Null),
        Some("sha256") => Ok(MaskWith::Sha256),
        Some("redact") => Ok(MaskWith::Redact),
        Some(other) => Err(serde::de::Error::custom(format!(
            "unknown masking {other:?}: expected sha256, redact or null"
        ))),
    }
}

/// `transforms[i]` with `type: mask`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskConfig {
    /// `mask`.
    #[serde(rename = "type")]
    pub kind: ConnectorType,
    /// The columns to mask (`schema.table.column` globs).
    pub columns: Vec<String>,
    /// How to mask them (`null` may be written bare: YAML reads it as null).
    #[serde(deserialize_with = "mask_with")]
    pub with: MaskWith,
    /// The environment variable holding the salt (`sha256`).
    #[serde(default)]
    pub salt_env: Option<String>,
    /// The file holding the salt (`sha256`).
    #[serde(default)]
    pub salt_file: Option<std::path::PathBuf>,
}

/// The `mask` transform.
pub struct Mask {
    key: String,
    patterns: Vec<ColumnPattern>,
    with: MaskWith,
    /// SHA-256 state after the salt (`sha256`; the empty salt otherwise). Never logged.
    salted: Sha256,
    cache: SchemaCache<Plan>,
}

struct Plan {
    /// `None`: no column of this table is masked.
    masked: Option<(Vec<usize>, Arc<TableSchema>)>,
}

/// Registry factory for `type: mask`.
pub fn factory(section: &ConfigSection, _ctx: &Context) -> Result<Box<dyn Transform>> {
    let config: MaskConfig = section.extract()?;
    Ok(Box::new(Mask::new(section.key(), &config)?))
}

impl Mask {
    /// A mask from its config (reading the salt); `key` is its key path.
    pub fn new(key: &str, config: &MaskConfig) -> Result<Self> {
        if config.columns.is_empty() {
            return Err(config_error(
                format!("{key}.columns"),
                "expected at least one `schema.table.column`",
            ));
        }
        let patterns = config
            .columns
            .iter()
            .enumerate()
            .map(|(i, p)| ColumnPattern::parse(&format!("{key}.columns[{i}]"), p))
            .collect::<Result<Vec<_>>>()?;
        let salt = match (config.with, &config.salt_env, &config.salt_file) {
            (MaskWith::Sha256, Some(_), Some(_)) => {
                return Err(config_error(
                    key,
                    "expected one of `salt_env` and `salt_file`, not both",
                ))
            }
            (MaskWith::Sha256, Some(var), None) => match std::env::var(var) {
                Ok(s) if !s.is_empty() => Secret::new(s),
                _ => {
                    return Err(config_error(
                        format!("{key}.salt_env"),
                        format!("environment variable {var} is not set or empty"),
                    ))
                }
            },
            (MaskWith::Sha256, None, Some(path)) => match std::fs::read_to_string(path) {
                Ok(s) if !s.trim_end_matches(['\n', '\r']).is_empty() => {
                    Secret::new(s.trim_end_matches(['\n', '\r']))
                }
                Ok(_) => {
                    return Err(config_error(
                        format!("{key}.salt_file"),
                        format!("{} is empty", path.display()),
                    ))
                }
                Err(e) => {
                    return Err(config_error(
                        format!("{key}.salt_file"),
                        format!("cannot read {}: {e}", path.display()),
                    ))
                }
            },
            (MaskWith::Sha256, None, None) => {
                return Err(config_error(
                    key,
                    "`with: sha256` needs a salt: set `salt_env: VARNAME` or `salt_file: PATH`",
                ))
            }
            (_, None, None) => Secret::default(),
            (_, _, _) => {
                return Err(config_error(
                    key,
                    "`salt_env` and `salt_file` apply to `with: sha256` only",
                ))
            }
        };
        Ok(Mask {
            key: key.to_string(),
            patterns,
            with: config.with,
            salted: {
                let mut h = Sha256::new();
                h.update(salt.expose().as_bytes());
                h
            },
            cache: SchemaCache::default(),
        })
    }

    fn entry_key(&self, i: usize) -> String {
        format!("{}.columns[{i}]", self.key)
    }

    fn plan(&self, table: &TableSchema) -> Result<Plan> {
        check_exact_columns(&self.patterns, table, |i| self.entry_key(i))?;
        let named: Vec<&ColumnPattern> = self
            .patterns
            .iter()
            .filter(|p| p.matches_table(&table.id))
            .collect();
        let masked: Vec<usize> = table
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| named.iter().any(|p| p.matches_column(&c.name)))
            .map(|(i, _)| i)
            .collect();
        if masked.is_empty() {
            return Ok(Plan { masked: None });
        }
        let mut schema = table.clone();
        for &i in &masked {
            let c = &mut schema.columns[i];
            match self.with {
                MaskWith::Sha256 | MaskWith::Redact => {
                    c.type_name = "text".into();
                    c.ty = crate::column_type::ColumnType::Text;
                }
                MaskWith::Null => c.nullable = true,
            }
        }
        Ok(Plan {
            masked: Some((masked, Arc::new(schema))),
        })
    }

    fn mask_row(&self, row: &mut Option<Row>, masked: &[usize]) {
        let Some(row) = row else { return };
        for &i in masked {
            let Some(v) = row.get_mut(i) else { continue };
            if matches!(v, Value::Null | Value::Unavailable) {
                continue;
            }
            *v = match self.with {
                MaskWith::Null => Value::Null,
                MaskWith::Redact => Value::Text(REDACTED.to_string()),
                MaskWith::Sha256 => Value::Text(self.digest(v)),
            };
        }
    }

    fn digest(&self, value: &Value) -> String {
        // The hasher state after the salt, made once (hashing the salt per value was a cost).
        let mut h = self.salted.clone();
        match value {
            Value::Bytes(b) => h.update(b),
            Value::Text(s) | Value::Json(s) => h.update(s.as_bytes()),
            other => h.update(super::value_text(other).unwrap_or_default().as_bytes()),
        }
        let digest = h.finalize();
        let mut out = String::with_capacity(64);
        for b in digest {
            out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        out
    }
}

impl Transform for Mask {
    fn check_tables(&mut self, tables: &[TableSchema]) -> Result<()> {
        check_column_patterns(&self.patterns, tables, |i| self.entry_key(i))
    }

    fn apply(&mut self, event: &mut ChangeEvent) -> Result<Verdict> {
        let Some(table) = &event.table else {
            return Ok(Verdict::Keep);
        };
        let mut cache = std::mem::take(&mut self.cache);
        let plan = cache.get(table, |t| self.plan(t));
        self.cache = cache;
        if let Some((masked, schema)) = &plan?.masked {
            self.mask_row(&mut event.before, masked);
            self.mask_row(&mut event.after, masked);
            event.table = Some(Arc::clone(schema));
        }
        Ok(Verdict::Keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::Encoder;
    use crate::event::{Column, Op, Position, TableId};
    use crate::{ErrorKind, Format};

    fn users() -> Arc<TableSchema> {
        Arc::new(TableSchema::new(
            TableId::new("db", "public", "users"),
            vec![
                Column::new("email", "varchar(255)").key(),
                Column::new("age", "int4"),
                Column::new("note", "text"),
            ],
        ))
    }

    fn row(email: &str) -> Row {
        vec![Value::Text(email.into()), Value::Int(41), Value::Null]
    }

    fn mask(yaml: &str) -> Result<Mask> {
        let section = ConfigSection::from_yaml("transforms[0]", yaml)?;
        Mask::new("transforms[0]", &section.extract()?)
    }

    fn encoded(ev: &ChangeEvent) -> String {
        let enc = Encoder::new("p", Format::Debezium).with_schemas(true);
        let mut out = Vec::new();
        enc.write_key(ev, &mut out);
        enc.write_value(ev, 0, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn sha256_hashes_salt_and_value_in_both_images_and_the_key() {
        std::env::set_var("CDC_TEST_MASK_SALT_1", "pepper");
        let mut m = mask(
            "{ type: mask, columns: [public.users.email, public.users.age, public.users.note], \
             with: sha256, salt_env: CDC_TEST_MASK_SALT_1 }",
        )
        .unwrap();
        let mut ev = ChangeEvent::row(
            Op::Update,
            users(),
            Some(row("old@example.com")),
            Some(row("new@example.com")),
            Position::new("1"),
        );
        m.apply(&mut ev).unwrap();
        // sha256("pepper" + "new@example.com"), computed independently with sha256sum.
        let expected = {
            let mut h = Sha256::new();
            h.update(b"pepper");
            h.update(b"new@example.com");
            h.finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        assert_eq!(ev.after.as_ref().unwrap()[0], Value::Text(expected));
        assert_eq!(
            ev.after.as_ref().unwrap()[2],
            Value::Null,
            "null stays null"
        );
        let text = encoded(&ev);
        assert!(!text.contains("example.com"), "{text}");
        assert!(!text.contains("41"), "{text}");
        assert!(
            text.contains(r#"{"type":"string","optional":true,"field":"age"}"#),
            "{text}"
        );
    }

    #[test]
    fn redact_and_null() {
        let mut m = mask("{ type: mask, columns: ['*.users.email'], with: redact }").unwrap();
        let mut ev = ChangeEvent::row(
            Op::Delete,
            users(),
            Some(row("a@b.c")),
            None,
            Position::new("1"),
        );
        m.apply(&mut ev).unwrap();
        assert_eq!(ev.before.as_ref().unwrap()[0], Value::Text(REDACTED.into()));
        let mut m = mask("{ type: mask, columns: [public.users.age], with: null }").unwrap();
        let mut ev = ChangeEvent::row(
            Op::Create,
            users(),
            None,
            Some(row("a@b.c")),
            Position::new("1"),
        );
        m.apply(&mut ev).unwrap();
        assert_eq!(ev.after.as_ref().unwrap()[1], Value::Null);
        assert!(ev.table.as_ref().unwrap().columns[1].nullable);
    }

    #[test]
    fn salt_is_required_for_sha256_and_columns_must_exist() {
        let e = mask("{ type: mask, columns: [public.users.email], with: sha256 }")
            .err()
            .unwrap();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.message().contains("needs a salt"), "{}", e.message());
        let e = mask(
            "{ type: mask, columns: [public.users.email], with: sha256, \
             salt_env: CDC_TEST_MASK_SALT_UNSET }",
        )
        .err()
        .unwrap();
        assert!(
            e.message().contains("transforms[0].salt_env"),
            "{}",
            e.message()
        );
        let e = mask("{ type: mask, columns: [public.users.email], with: hide }")
            .err()
            .unwrap();
        assert!(
            e.message().contains("transforms[0].with"),
            "{}",
            e.message()
        );
        let mut m = mask("{ type: mask, columns: [public.users.mail], with: redact }").unwrap();
        let mut ev = ChangeEvent::row(
            Op::Create,
            users(),
            None,
            Some(row("x@y.z")),
            Position::new("1"),
        );
        let e = m.apply(&mut ev).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(
            e.message().contains("transforms[0].columns[0]"),
            "{}",
            e.message()
        );
        assert!(!e.message().contains("x@y.z"));
    }
}
