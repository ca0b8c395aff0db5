//! The configuration keys of incremental snapshots that every source shares.
//!
//! A source's config struct is `deny_unknown_fields`, which serde cannot combine with
//! `#[serde(flatten)]`; so a source declares these keys itself, with the defaults below
//! (`#[serde(default = "connector_core::incremental::settings::default_snapshot_chunk_size")]`),
//! builds an [`IncrementalSettings`] from them and calls [`IncrementalSettings::validate`], which
//! names the key path of a bad value. The keys, under `source:`:
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `signal_table` | none | `<schema>.<table>` (MySQL `<db>.<table>`) with Debezium's signalling columns `id`, `type`, `data`; rows inserted there are signals |
//! | `signal_topic` | none | a Kafka topic of Debezium signal records (key = pipeline name) |
//! | `snapshot_chunk_size` | 1024 | rows per incremental snapshot chunk |
//! | `snapshot_new_tables` | true | snapshot incrementally, on start, tables of `tables:` not captured before |

use serde::Deserialize;

use crate::error::{Error, Result};

use super::{DEFAULT_SNAPSHOT_CHUNK_SIZE, DEFAULT_SNAPSHOT_NEW_TABLES};

/// Largest `snapshot_chunk_size` accepted: a chunk is held in memory while its window is open.
pub const MAX_SNAPSHOT_CHUNK_SIZE: usize = 1_000_000;

/// Serde default of `snapshot_chunk_size`.
pub fn default_snapshot_chunk_size() -> usize {
    DEFAULT_SNAPSHOT_CHUNK_SIZE
}

/// Serde default of `snapshot_new_tables`.
pub fn default_snapshot_new_tables() -> bool {
    DEFAULT_SNAPSHOT_NEW_TABLES
}

/// The shared incremental snapshot keys of a source section.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IncrementalSettings {
    /// The signalling table, `<schema>.<table>` (MySQL `<db>.<table>`).
    #[serde(default)]
    pub signal_table: Option<String>,
    /// The Kafka signal topic.
    #[serde(default)]
    pub signal_topic: Option<String>,
    /// Rows per chunk (default 1024, as Debezium's `incremental.snapshot.chunk.size`).
    #[serde(default = "default_snapshot_chunk_size")]
    pub snapshot_chunk_size: usize,
    /// Snapshot tables new to `tables:` on start (default true).
    #[serde(default = "default_snapshot_new_tables")]
    pub snapshot_new_tables: bool,
}

impl Default for IncrementalSettings {
    fn default() -> Self {
        IncrementalSettings {
            signal_table: None,
            signal_topic: None,
            snapshot_chunk_size: DEFAULT_SNAPSHOT_CHUNK_SIZE,
            snapshot_new_tables: DEFAULT_SNAPSHOT_NEW_TABLES,
        }
    }
}

impl IncrementalSettings {
    /// Check the values; errors name the key under `section` (`source`).
    pub fn validate(&self, section: &str) -> Result<()> {
        if self.snapshot_chunk_size == 0 || self.snapshot_chunk_size > MAX_SNAPSHOT_CHUNK_SIZE {
            return Err(Error::config(format!(
                "key `{section}.snapshot_chunk_size`: {} is out of range: expected 1 to \
                 {MAX_SNAPSHOT_CHUNK_SIZE}",
                self.snapshot_chunk_size
            )));
        }
        self.signal_table_parts(section)?;
        if let Some(topic) = &self.signal_topic {
            let ok = !topic.is_empty()
                && topic.len() <= 249
                && topic
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !ok {
                return Err(Error::config(format!(
                    "key `{section}.signal_topic`: {topic:?} is not a valid Kafka topic name: \
                     expected 1 to 249 characters of letters, digits, `.`, `_` or `-`"
                )));
            }
        }
        Ok(())
    }

    /// The signalling table as `(schema, table)`, `None` when not configured.
    pub fn signal_table_parts(&self, section: &str) -> Result<Option<(&str, &str)>> {
        let Some(name) = &self.signal_table else {
            return Ok(None);
        };
        match name.split_once('.') {
            Some((schema, table))
                if !schema.is_empty() && !table.is_empty() && !table.contains('.') =>
            {
                Ok(Some((schema, table)))
            }
            _ => Err(Error::config(format!(
                "key `{section}.signal_table`: {name:?} is not a table name: expected \
                 `<schema>.<table>`"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> Result<IncrementalSettings> {
        use figment::providers::{Format as _, Yaml};
        figment::Figment::from(Yaml::string(&format!("{{ {yaml} }}")))
            .extract::<IncrementalSettings>()
            .map_err(|e| Error::config(e.to_string()))
    }

    #[test]
    fn defaults_are_debeziums() {
        let s = load("").unwrap();
        assert_eq!(s, IncrementalSettings::default());
        assert_eq!(s.snapshot_chunk_size, 1024);
        assert!(s.snapshot_new_tables);
        s.validate("source").unwrap();
    }

    #[test]
    fn keys_parse_and_bad_values_name_the_key() {
        let s = load(
            "signal_table: public.debezium_signal, signal_topic: inv-signals, \
             snapshot_chunk_size: 10, snapshot_new_tables: false",
        )
        .unwrap();
        s.validate("source").unwrap();
        assert_eq!(
            s.signal_table_parts("source").unwrap(),
            Some(("public", "debezium_signal"))
        );
        assert_eq!(s.snapshot_chunk_size, 10);
        assert!(!s.snapshot_new_tables);

        for (yaml, key) in [
            ("snapshot_chunk_size: 0", "source.snapshot_chunk_size"),
            ("signal_table: signals", "source.signal_table"),
            ("signal_topic: 'a b'", "source.signal_topic"),
        ] {
            let e = load(yaml).unwrap().validate("source").unwrap_err();
            assert!(e.message().contains(key), "{yaml}: {}", e.message());
        }
        assert!(load("signal_tabel: x").is_err());
    }
}
