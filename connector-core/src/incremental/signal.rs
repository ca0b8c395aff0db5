//! Debezium's signals, parsed into a typed [`Signal`].
//!
//! A signal arrives either as a row of the signalling table (columns `id`, `type`, `data`; the
//! source reads the row from its change stream) or as a Kafka record whose key is the pipeline name
//! and whose value is `{"type": ..., "data": {...}}`. The field names are Debezium's:
//!
//! ```json
//! {"data-collections": ["public.orders"], "type": "incremental",
//!  "additional-conditions": [{"data-collection": "public.orders", "filter": "region = 'EU'"}],
//!  "surrogate-key": "order_no"}
//! ```
//!
//! Signal types: `execute-snapshot`, `stop-snapshot`, `pause-snapshot`, `resume-snapshot`. Each
//! name in `data-collections` (and in `additional-conditions`) is checked against the tables the
//! source captures: an exact `schema.table` (or `database.schema.table`) name, or a pattern where
//! `*` matches any characters and `?` one, as in `tables:`. Fields Debezium does not know are
//! ignored, as Debezium does.
//!
//! A signal that cannot be carried out is a [`SignalError`]: it names the signal's id and what was
//! wrong. It is reported (logged, shown in the status), never raised: streaming goes on.

use std::fmt;

use serde_json::Value as Json;

use crate::config::{glob_match, is_pattern};
use crate::error::{Error, ErrorKind};
use crate::event::TableId;

/// `type` of a signal that starts a snapshot.
pub const EXECUTE_SNAPSHOT: &str = "execute-snapshot";
/// `type` of a signal that stops a snapshot (all tables, or those listed).
pub const STOP_SNAPSHOT: &str = "stop-snapshot";
/// `type` of a signal that pauses a running incremental snapshot.
pub const PAUSE_SNAPSHOT: &str = "pause-snapshot";
/// `type` of a signal that resumes a paused incremental snapshot.
pub const RESUME_SNAPSHOT: &str = "resume-snapshot";

/// Which kind of snapshot an `execute-snapshot` signal asks for (its data's `type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotKind {
    /// Chunked, between watermarks, while streaming goes on (default).
    Incremental,
    /// Streaming pauses while the tables are read (Debezium's blocking snapshot).
    Blocking,
}

impl SnapshotKind {
    /// Debezium's lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotKind::Incremental => "incremental",
            SnapshotKind::Blocking => "blocking",
        }
    }
}

/// An extra condition that narrows the rows of one table (`additional-conditions`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdditionalCondition {
    /// The table (`data-collection`), resolved against the captured tables.
    pub data_collection: TableId,
    /// An SQL condition (`filter`), appended to the chunk query with `AND (...)`.
    pub filter: String,
}

/// A parsed signal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signal {
    /// Snapshot these tables.
    ExecuteSnapshot {
        /// The tables (`data-collections`), resolved against the captured tables, in the order
        /// given, each once.
        collections: Vec<TableId>,
        /// Incremental (default) or blocking.
        kind: SnapshotKind,
        /// Row filters per table.
        additional_conditions: Vec<AdditionalCondition>,
        /// A column to chunk by instead of the primary key (`surrogate-key`).
        surrogate_key: Option<String>,
    },
    /// Stop the snapshot of these tables; empty means all.
    StopSnapshot {
        /// The tables to drop from the snapshot; empty: the whole snapshot.
        collections: Vec<TableId>,
    },
    /// Pause the running incremental snapshot after its open chunk.
    PauseSnapshot,
    /// Resume a paused incremental snapshot.
    ResumeSnapshot,
}

/// A signal with the id it was sent under (the signalling table's `id`, or the Kafka record's
/// place).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignalRecord {
    /// The signal's id, for logs and the status.
    pub id: String,
    /// What it asks for.
    pub signal: Signal,
}

/// What was wrong with a signal.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignalProblem {
    /// `data` (or the Kafka value) is not valid JSON.
    MalformedJson {
        /// The parser's message.
        detail: String,
    },
    /// A field has the wrong JSON type.
    BadField {
        /// The field (`data-collections`, `additional-conditions[0].filter`, ...).
        field: String,
        /// What was expected there.
        expected: &'static str,
    },
    /// The signal's `type` is not one cdc carries out.
    UnknownType {
        /// The type as sent.
        kind: String,
    },
    /// `execute-snapshot` without a non-empty `data-collections`.
    MissingDataCollections,
    /// The data's `type` is neither `incremental` nor `blocking`.
    UnknownSnapshotKind {
        /// The kind as sent.
        kind: String,
    },
    /// A table named in the signal is not captured by this pipeline.
    NotCaptured {
        /// The name as sent.
        collection: String,
    },
    /// An additional condition names a table that is not in `data-collections`.
    ConditionNotInCollections {
        /// The name as sent.
        collection: String,
    },
    /// The snapshot kind is valid but this pipeline does not carry it out.
    Unsupported {
        /// What is not supported.
        what: String,
    },
    /// The table cannot be chunked: no primary key and no `surrogate-key`.
    NoKey {
        /// The table.
        table: String,
    },
    /// The surrogate key is not a column of the table.
    UnknownSurrogateKey {
        /// The table.
        table: String,
        /// The column as sent.
        column: String,
    },
    /// The source failed to read the table with this signal's settings (a filter that fails).
    ReadFailed {
        /// The table.
        table: String,
        /// The error as reported by the source.
        detail: String,
    },
}

impl fmt::Display for SignalProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignalProblem::MalformedJson { detail } => write!(f, "malformed JSON: {detail}"),
            SignalProblem::BadField { field, expected } => {
                write!(f, "field `{field}`: expected {expected}")
            }
            SignalProblem::UnknownType { kind } => write!(
                f,
                "unknown signal type {kind:?}: expected one of `{EXECUTE_SNAPSHOT}`, \
                 `{STOP_SNAPSHOT}`, `{PAUSE_SNAPSHOT}`, `{RESUME_SNAPSHOT}`"
            ),
            SignalProblem::MissingDataCollections => write!(
                f,
                "`{EXECUTE_SNAPSHOT}` needs a non-empty `data-collections` list of tables"
            ),
            SignalProblem::UnknownSnapshotKind { kind } => write!(
                f,
                "unknown snapshot `type` {kind:?}: expected `incremental` or `blocking`"
            ),
            SignalProblem::NotCaptured { collection } => write!(
                f,
                "table {collection:?} is not captured by this pipeline (add it to `tables:`)"
            ),
            SignalProblem::ConditionNotInCollections { collection } => write!(
                f,
                "`additional-conditions` names {collection:?}, which is not in `data-collections`"
            ),
            SignalProblem::Unsupported { what } => write!(f, "{what} is not supported"),
            SignalProblem::NoKey { table } => write!(
                f,
                "table {table} has no primary key: give a `surrogate-key` column to chunk it by"
            ),
            SignalProblem::UnknownSurrogateKey { table, column } => {
                write!(f, "`surrogate-key` {column:?} is not a column of {table}")
            }
            SignalProblem::ReadFailed { table, detail } => {
                write!(f, "reading {table} failed: {detail}")
            }
        }
    }
}

/// A signal that cannot be carried out: its id and the problem. Reported, not raised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignalError {
    /// The signal's id.
    pub id: String,
    /// What was wrong.
    pub problem: SignalProblem,
}

impl SignalError {
    fn new(id: &str, problem: SignalProblem) -> Self {
        SignalError {
            id: id.to_string(),
            problem,
        }
    }
}

impl fmt::Display for SignalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "signal {:?}: {}", self.id, self.problem)
    }
}

impl std::error::Error for SignalError {}

impl From<SignalError> for Error {
    /// As a [`ErrorKind::Data`] error: tied to the signal, so retrying cannot help.
    fn from(e: SignalError) -> Self {
        Error::new(ErrorKind::Data, e.to_string())
    }
}

/// Parse a row of the signalling table: its `id`, `type` and `data` columns (`data` may be NULL or
/// empty for signals without data). `captured` is the list of tables the source captures.
pub fn parse_row(
    id: &str,
    kind: &str,
    data: Option<&str>,
    captured: &[TableId],
) -> Result<SignalRecord, SignalError> {
    let data = match data.map(str::trim) {
        None | Some("") => Json::Object(Default::default()),
        Some(text) => serde_json::from_str::<Json>(text).map_err(|e| {
            SignalError::new(
                id,
                SignalProblem::MalformedJson {
                    detail: e.to_string(),
                },
            )
        })?,
    };
    let signal = parse_typed(kind, &data, captured).map_err(|p| SignalError::new(id, p))?;
    Ok(SignalRecord {
        id: id.to_string(),
        signal,
    })
}

/// Parse a record of the Kafka signal topic. Records whose key is not `pipeline` are meant for
/// another pipeline and give `Ok(None)`, as Debezium ignores them. `id` names the record in errors
/// (Debezium uses its offset).
pub fn parse_kafka(
    id: &str,
    key: Option<&[u8]>,
    value: &[u8],
    pipeline: &str,
    captured: &[TableId],
) -> Result<Option<SignalRecord>, SignalError> {
    if key != Some(pipeline.as_bytes()) {
        return Ok(None);
    }
    let value: Json = serde_json::from_slice(value).map_err(|e| {
        SignalError::new(
            id,
            SignalProblem::MalformedJson {
                detail: e.to_string(),
            },
        )
    })?;
    let bad = |field: &str, expected| {
        SignalError::new(
            id,
            SignalProblem::BadField {
                field: field.to_string(),
                expected,
            },
        )
    };
    let kind = value
        .get("type")
        .and_then(Json::as_str)
        .ok_or_else(|| bad("type", "a string"))?;
    let empty = Json::Object(Default::default());
    let data = match value.get("data") {
        None | Some(Json::Null) => &empty,
        Some(d @ Json::Object(_)) => d,
        Some(_) => return Err(bad("data", "an object")),
    };
    let signal = parse_typed(kind, data, captured).map_err(|p| SignalError::new(id, p))?;
    Ok(Some(SignalRecord {
        id: id.to_string(),
        signal,
    }))
}

fn parse_typed(kind: &str, data: &Json, captured: &[TableId]) -> Result<Signal, SignalProblem> {
    if !data.is_object() {
        return Err(bad_field("data", "a JSON object"));
    }
    match kind.trim() {
        EXECUTE_SNAPSHOT => parse_execute(data, captured),
        STOP_SNAPSHOT => {
            let collections = match data.get("data-collections") {
                None | Some(Json::Null) => Vec::new(),
                Some(list) => resolve_list(list, captured)?,
            };
            Ok(Signal::StopSnapshot { collections })
        }
        PAUSE_SNAPSHOT => Ok(Signal::PauseSnapshot),
        RESUME_SNAPSHOT => Ok(Signal::ResumeSnapshot),
        other => Err(SignalProblem::UnknownType {
            kind: other.to_string(),
        }),
    }
}

fn parse_execute(data: &Json, captured: &[TableId]) -> Result<Signal, SignalProblem> {
    let collections = match data.get("data-collections") {
        None | Some(Json::Null) => return Err(SignalProblem::MissingDataCollections),
        Some(list) => resolve_list(list, captured)?,
    };
    if collections.is_empty() {
        return Err(SignalProblem::MissingDataCollections);
    }
    let kind = match data.get("type") {
        None | Some(Json::Null) => SnapshotKind::Incremental,
        Some(Json::String(s)) if s.eq_ignore_ascii_case("incremental") => SnapshotKind::Incremental,
        Some(Json::String(s)) if s.eq_ignore_ascii_case("blocking") => SnapshotKind::Blocking,
        Some(Json::String(s)) => {
            return Err(SignalProblem::UnknownSnapshotKind { kind: s.clone() })
        }
        Some(_) => return Err(bad_field("type", "a string")),
    };
    let mut additional_conditions = Vec::new();
    match data.get("additional-conditions") {
        None | Some(Json::Null) => {}
        Some(Json::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let field = |name: &str| format!("additional-conditions[{i}].{name}");
                let name = item
                    .get("data-collection")
                    .and_then(Json::as_str)
                    .ok_or_else(|| bad_field(&field("data-collection"), "a string"))?;
                let filter = item
                    .get("filter")
                    .and_then(Json::as_str)
                    .ok_or_else(|| bad_field(&field("filter"), "a string"))?;
                let table = resolve_one(name, captured)?;
                let [table] = <[TableId; 1]>::try_from(table).map_err(|_| {
                    bad_field(&field("data-collection"), "one table name, not a pattern")
                })?;
                if !collections.contains(&table) {
                    return Err(SignalProblem::ConditionNotInCollections {
                        collection: name.to_string(),
                    });
                }
                if !filter.trim().is_empty() {
                    additional_conditions.push(AdditionalCondition {
                        data_collection: table,
                        filter: filter.to_string(),
                    });
                }
            }
        }
        Some(_) => return Err(bad_field("additional-conditions", "an array")),
    }
    let surrogate_key = match data.get("surrogate-key") {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) if s.trim().is_empty() => None,
        Some(Json::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad_field("surrogate-key", "a string")),
    };
    Ok(Signal::ExecuteSnapshot {
        collections,
        kind,
        additional_conditions,
        surrogate_key,
    })
}

fn bad_field(field: &str, expected: &'static str) -> SignalProblem {
    SignalProblem::BadField {
        field: field.to_string(),
        expected,
    }
}

/// Resolve a `data-collections` array: each entry once, in order.
fn resolve_list(list: &Json, captured: &[TableId]) -> Result<Vec<TableId>, SignalProblem> {
    let items = list
        .as_array()
        .ok_or_else(|| bad_field("data-collections", "an array of table names"))?;
    let mut out: Vec<TableId> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let name = item
            .as_str()
            .ok_or_else(|| bad_field(&format!("data-collections[{i}]"), "a string"))?;
        for table in resolve_one(name, captured)? {
            if !out.contains(&table) {
                out.push(table);
            }
        }
    }
    Ok(out)
}

/// The captured tables a name stands for: one for an exact name, every match for a pattern; none
/// is an error.
fn resolve_one(name: &str, captured: &[TableId]) -> Result<Vec<TableId>, SignalProblem> {
    let name = name.trim();
    let full = |t: &TableId| format!("{}.{}.{}", t.database, t.schema, t.table);
    let found: Vec<TableId> = if is_pattern(name) {
        captured
            .iter()
            .filter(|t| glob_match(name, &t.to_string()) || glob_match(name, &full(t)))
            .cloned()
            .collect()
    } else {
        captured
            .iter()
            .filter(|t| t.to_string() == name || full(t) == name)
            .cloned()
            .collect()
    };
    if found.is_empty() {
        return Err(SignalProblem::NotCaptured {
            collection: name.to_string(),
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn captured() -> Vec<TableId> {
        vec![
            TableId::new("shop", "public", "orders"),
            TableId::new("shop", "public", "customers"),
            TableId::new("shop", "audit", "log"),
        ]
    }

    fn orders() -> TableId {
        TableId::new("shop", "public", "orders")
    }

    #[test]
    fn execute_snapshot_with_debeziums_field_names() {
        let data = r#"{"data-collections": ["public.orders", "shop.public.customers"],
            "type": "INCREMENTAL",
            "additional-conditions": [{"data-collection": "public.orders", "filter": "region = 'EU'"}],
            "surrogate-key": "order_no", "unknown-to-us": 1}"#;
        let r = parse_row("sig-1", "execute-snapshot", Some(data), &captured()).unwrap();
        assert_eq!(r.id, "sig-1");
        assert_eq!(
            r.signal,
            Signal::ExecuteSnapshot {
                collections: vec![orders(), TableId::new("shop", "public", "customers")],
                kind: SnapshotKind::Incremental,
                additional_conditions: vec![AdditionalCondition {
                    data_collection: orders(),
                    filter: "region = 'EU'".into(),
                }],
                surrogate_key: Some("order_no".into()),
            }
        );
    }

    #[test]
    fn kind_defaults_to_incremental_and_patterns_expand() {
        let r = parse_row(
            "2",
            "execute-snapshot",
            Some(r#"{"data-collections": ["public.*", "public.orders"]}"#),
            &captured(),
        )
        .unwrap();
        match r.signal {
            Signal::ExecuteSnapshot {
                collections, kind, ..
            } => {
                assert_eq!(kind, SnapshotKind::Incremental);
                assert_eq!(collections.len(), 2, "{collections:?}");
            }
            other => panic!("{other:?}"),
        }
        let r = parse_row(
            "3",
            "execute-snapshot",
            Some(r#"{"data-collections": ["audit.log"], "type": "blocking"}"#),
            &captured(),
        )
        .unwrap();
        assert!(matches!(
            r.signal,
            Signal::ExecuteSnapshot {
                kind: SnapshotKind::Blocking,
                ..
            }
        ));
    }

    #[test]
    fn stop_pause_resume() {
        let all = parse_row("s", "stop-snapshot", None, &captured()).unwrap();
        assert_eq!(
            all.signal,
            Signal::StopSnapshot {
                collections: vec![]
            }
        );
        let some = parse_row(
            "s2",
            "stop-snapshot",
            Some(r#"{"data-collections": ["public.orders"], "type": "incremental"}"#),
            &captured(),
        )
        .unwrap();
        assert_eq!(
            some.signal,
            Signal::StopSnapshot {
                collections: vec![orders()]
            }
        );
        assert_eq!(
            parse_row("p", "pause-snapshot", Some(""), &captured())
                .unwrap()
                .signal,
            Signal::PauseSnapshot
        );
        assert_eq!(
            parse_row("r", "resume-snapshot", Some("{}"), &captured())
                .unwrap()
                .signal,
            Signal::ResumeSnapshot
        );
    }

    fn problem(id: &str, kind: &str, data: &str) -> SignalError {
        parse_row(id, kind, Some(data), &captured()).unwrap_err()
    }

    #[test]
    fn bad_signals_name_the_id_and_the_problem() {
        let e = problem("a1", "execute-snapshot", "{\"data-collections\": [");
        assert_eq!(e.id, "a1");
        assert!(matches!(e.problem, SignalProblem::MalformedJson { .. }));
        assert!(
            e.to_string().starts_with("signal \"a1\": malformed JSON"),
            "{e}"
        );

        let e = problem("a2", "execute-snapshott", "{}");
        assert_eq!(
            e.problem,
            SignalProblem::UnknownType {
                kind: "execute-snapshott".into()
            }
        );
        assert!(e.to_string().contains("execute-snapshott"), "{e}");

        let e = problem("a3", "execute-snapshot", r#"{"type": "incremental"}"#);
        assert_eq!(e.problem, SignalProblem::MissingDataCollections);
        let e = problem("a3b", "execute-snapshot", r#"{"data-collections": []}"#);
        assert_eq!(e.problem, SignalProblem::MissingDataCollections);

        let e = problem(
            "a4",
            "execute-snapshot",
            r#"{"data-collections": ["public.orderz"]}"#,
        );
        assert_eq!(
            e.problem,
            SignalProblem::NotCaptured {
                collection: "public.orderz".into()
            }
        );
        assert!(e.to_string().contains("public.orderz"), "{e}");

        let e = problem(
            "a5",
            "execute-snapshot",
            r#"{"data-collections": "public.orders"}"#,
        );
        assert!(
            matches!(&e.problem, SignalProblem::BadField { field, .. } if field == "data-collections")
        );

        let e = problem(
            "a6",
            "execute-snapshot",
            r#"{"data-collections": ["public.orders"], "type": "eager"}"#,
        );
        assert!(matches!(
            e.problem,
            SignalProblem::UnknownSnapshotKind { .. }
        ));

        let e = problem(
            "a7",
            "execute-snapshot",
            r#"{"data-collections": ["public.orders"],
                "additional-conditions": [{"data-collection": "public.customers", "filter": "x"}]}"#,
        );
        assert!(matches!(
            e.problem,
            SignalProblem::ConditionNotInCollections { .. }
        ));

        let e = problem(
            "a8",
            "execute-snapshot",
            r#"{"data-collections": ["public.orders"],
                "additional-conditions": [{"data-collection": "public.orders"}]}"#,
        );
        assert!(
            matches!(&e.problem, SignalProblem::BadField { field, .. } if field == "additional-conditions[0].filter"),
            "{e}"
        );

        let e = problem("a9", "stop-snapshot", r#"{"data-collections": ["nope.t"]}"#);
        assert!(matches!(e.problem, SignalProblem::NotCaptured { .. }));

        let e = problem("a10", "pause-snapshot", "[1]");
        assert!(matches!(e.problem, SignalProblem::BadField { .. }));

        let core: Error = e.into();
        assert_eq!(core.kind(), ErrorKind::Data);
        assert!(core.message().contains("a10"));
    }

    #[test]
    fn kafka_signals_are_keyed_by_pipeline_name() {
        let value = br#"{"type": "execute-snapshot", "data": {"data-collections": ["public.orders"], "type": "INCREMENTAL"}}"#;
        let r = parse_kafka("7", Some(b"inventory"), value, "inventory", &captured())
            .unwrap()
            .unwrap();
        assert_eq!(r.id, "7");
        assert!(matches!(r.signal, Signal::ExecuteSnapshot { .. }));
        // Another pipeline's signal is not ours.
        assert_eq!(
            parse_kafka("8", Some(b"other"), value, "inventory", &captured()).unwrap(),
            None
        );
        assert_eq!(
            parse_kafka("8", None, value, "inventory", &captured()).unwrap(),
            None
        );
        let e =
            parse_kafka("9", Some(b"inventory"), b"{nope", "inventory", &captured()).unwrap_err();
        assert_eq!(e.id, "9");
        assert!(matches!(e.problem, SignalProblem::MalformedJson { .. }));
        let e = parse_kafka(
            "10",
            Some(b"inventory"),
            br#"{"data": {}}"#,
            "inventory",
            &captured(),
        )
        .unwrap_err();
        assert!(matches!(&e.problem, SignalProblem::BadField { field, .. } if field == "type"));
        let r = parse_kafka(
            "11",
            Some(b"inventory"),
            br#"{"type": "pause-snapshot"}"#,
            "inventory",
            &captured(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.signal, Signal::PauseSnapshot);
    }
}
