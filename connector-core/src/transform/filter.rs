//! `{type: filter, tables: [PATTERNS], ops: [c, u, d, r, t, m], when: EXPR}`: keeps the events
//! that match every condition given, drops the others.
//!
//! `when` is a [CEL](https://cel.dev) expression (the `cel` crate) over:
//! - `op`: the Debezium operation code (`"c"`, `"u"`, `"d"`, `"r"`, `"t"`, `"m"`);
//! - `before`, `after`: the row images as maps from column name to value (null when absent);
//! - `source`: `connector`, `db`, `schema`, `table`, `snapshot` and the connector's own fields
//!   (`lsn`, `txId`, `file`, `pos`, ...).
//!
//! Values are CEL ints, uints, doubles, bools, bytes, lists or null; every other value is the
//! string it is written as in the topic (decimals, dates, timestamps, UUIDs, JSON documents).
//! An expression that names another variable, or does not parse, is a config error at start; one
//! that fails on an event, or yields something other than a bool, stops the pipeline with an
//! error naming the event's table and position.

use std::collections::HashMap;
use std::sync::Arc;

use cel::common::ast::{EntryExpr, Expr as AstExpr, IdedExpr, LiteralValue, MapExpr, StructExpr};
use cel::objects::{Key, Map};
use serde::Deserialize;

use super::{
    config_error, data_error, event_at, table_list, SchemaCache, TablePattern, Transform, Verdict,
};
use crate::config::{ConfigSection, ConnectorType};
use crate::context::Context;
use crate::error::Result;
use crate::event::{ChangeEvent, Op, Row, TableSchema, Value};

/// The variables a `when` expression may use.
pub const VARIABLES: &[&str] = &["op", "before", "after", "source"];

/// `transforms[i]` with `type: filter`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// `filter`.
    #[serde(rename = "type")]
    pub kind: ConnectorType,
    /// Keep events of these tables only (`schema.table` globs). Default: every table.
    #[serde(default)]
    pub tables: Option<Vec<String>>,
    /// Keep these operations only (`c`, `u`, `d`, `r`, `t`, `m`). Default: every operation.
    #[serde(default)]
    pub ops: Option<Vec<String>>,
    /// Keep events for which this CEL expression is true. Default: no condition.
    #[serde(default)]
    pub when: Option<String>,
}

/// The `filter` transform.
pub struct Filter {
    key: String,
    tables: Option<Vec<TablePattern>>,
    /// Per table: whether `tables` matches it (glob matching per event was a cost).
    matched: SchemaCache<bool>,
    ops: Option<Vec<Op>>,
    when: Option<Expr>,
}

struct Expr {
    program: cel::Program,
    /// CEL's standard library, built once: building it per event cost most of the filter's time.
    env: Arc<cel::Env>,
    /// Per table: the columns the expression reads (index and CEL map key), made once per schema.
    keys: SchemaCache<Vec<(usize, Key)>>,
    /// The columns of `before`/`after` the expression reads, when it reads them by name only
    /// (`after.id`, `has(after.id)`, `after["id"]`); `None`: it may read any column.
    fields: Option<Vec<String>>,
    uses_before: bool,
    uses_after: bool,
    uses_source: bool,
}

/// Registry factory for `type: filter`.
pub fn factory(section: &ConfigSection, _ctx: &Context) -> Result<Box<dyn Transform>> {
    let config: FilterConfig = section.extract()?;
    Ok(Box::new(Filter::new(section.key(), &config)?))
}

impl Filter {
    /// A filter from its config; `key` is its key path (`transforms[0]`).
    pub fn new(key: &str, config: &FilterConfig) -> Result<Self> {
        let tables = config
            .tables
            .as_ref()
            .map(|list| {
                list.iter()
                    .enumerate()
                    .map(|(i, t)| TablePattern::parse(&format!("{key}.tables[{i}]"), t))
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?;
        let ops = config
            .ops
            .as_ref()
            .map(|list| {
                list.iter()
                    .enumerate()
                    .map(|(i, o)| {
                        parse_op(o).ok_or_else(|| {
                            config_error(
                                format!("{key}.ops[{i}]"),
                                format!(
                                    "unknown operation {o:?}: expected one of c, u, d, r, t, m"
                                ),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?;
        let when = config
            .when
            .as_deref()
            .map(|text| compile(&format!("{key}.when"), text))
            .transpose()?;
        Ok(Filter {
            key: key.to_string(),
            tables,
            matched: SchemaCache::default(),
            ops,
            when,
        })
    }

    fn eval(key: &str, expr: &mut Expr, event: &ChangeEvent) -> Result<bool> {
        let mut ctx = cel::Context::with_env(Arc::clone(&expr.env));
        ctx.add_variable_from_value("op", event.op.code());
        let keys = match &event.table {
            Some(t) if expr.uses_before || expr.uses_after => {
                let fields = &expr.fields;
                Some(expr.keys.get(t, |t| {
                    Ok(t.columns
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| {
                            fields
                                .as_ref()
                                .is_none_or(|f| f.iter().any(|n| *n == *c.name))
                        })
                        .map(|(i, c)| (i, Key::String(Arc::new(c.name.to_string()))))
                        .collect())
                })?)
            }
            _ => None,
        };
        if expr.uses_before {
            ctx.add_variable_from_value(
                "before",
                row_value(keys.as_deref().map(Vec::as_slice), event.before.as_ref()),
            );
        }
        if expr.uses_after {
            ctx.add_variable_from_value(
                "after",
                row_value(keys.as_deref().map(Vec::as_slice), event.after.as_ref()),
            );
        }
        if expr.uses_source {
            ctx.add_variable_from_value("source", source_value(event));
        }
        match expr.program.execute(&ctx) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(other) => Err(data_error(format!(
                "`{}.when` gave a {:?}, not a bool, on {}",
                key,
                other.type_of(),
                event_at(event)
            ))),
            Err(e) => Err(data_error(format!(
                "`{}.when` failed on {}: {}",
                key,
                event_at(event),
                safe_message(&e)
            ))),
        }
    }
}

impl Transform for Filter {
    fn check_tables(&mut self, tables: &[TableSchema]) -> Result<()> {
        if let Some(patterns) = &self.tables {
            for (i, p) in patterns.iter().enumerate() {
                if !tables.iter().any(|t| p.matches(&t.id)) {
                    return Err(config_error(
                        format!("{}.tables[{i}]", self.key),
                        format!(
                            "{:?} matches no captured table (the source captures {})",
                            p.as_str(),
                            table_list(tables)
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: &mut ChangeEvent) -> Result<Verdict> {
        if let Some(ops) = &self.ops {
            if !ops.contains(&event.op) {
                return Ok(Verdict::Drop);
            }
        }
        if let Some(patterns) = &self.tables {
            let matched = match &event.table {
                Some(t) => *self
                    .matched
                    .get(t, |t| Ok(patterns.iter().any(|p| p.matches(&t.id))))?,
                None => false,
            };
            if !matched {
                return Ok(Verdict::Drop);
            }
        }
        if let Some(expr) = &mut self.when {
            if !Self::eval(&self.key, expr, event)? {
                return Ok(Verdict::Drop);
            }
        }
        Ok(Verdict::Keep)
    }
}

fn parse_op(code: &str) -> Option<Op> {
    Some(match code {
        "c" => Op::Create,
        "u" => Op::Update,
        "d" => Op::Delete,
        "r" => Op::Read,
        "t" => Op::Truncate,
        "m" => Op::Message,
        _ => return None,
    })
}

fn compile(key: &str, text: &str) -> Result<Expr> {
    let program = cel::Program::compile(text)
        .map_err(|e| config_error(key, format!("{text:?} is not a valid CEL expression: {e}")))?;
    let refs = program.references();
    let mut bound = Vec::new();
    bound_names(program.expression(), &mut bound);
    if let Some(unknown) = refs
        .variables()
        .into_iter()
        .find(|v| !VARIABLES.contains(v) && !bound.iter().any(|b| b == v))
    {
        return Err(config_error(
            key,
            format!(
                "{text:?} uses unknown variable `{unknown}`: expected {}",
                VARIABLES.join(", ")
            ),
        ));
    }
    let (before, after) = (
        fields_read(program.expression(), "before"),
        fields_read(program.expression(), "after"),
    );
    let fields = before.zip(after).map(|(mut b, a)| {
        b.extend(a);
        b
    });
    Ok(Expr {
        env: Arc::new(cel::Env::stdlib()),
        keys: SchemaCache::default(),
        fields,
        uses_before: refs.has_variable("before"),
        uses_after: refs.has_variable("after"),
        uses_source: refs.has_variable("source"),
        program,
    })
}

/// The names macros bind (`k` in `after.exists(k, k == 'amount')`, and the macros' own
/// accumulators): variables of the expression, not of the event.
fn bound_names(e: &IdedExpr, out: &mut Vec<String>) {
    match &e.expr {
        AstExpr::Comprehension(c) => {
            out.push(c.iter_var.clone());
            out.extend(c.iter_var2.clone());
            out.push(c.accu_var.clone());
            for x in [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ] {
                bound_names(x, out);
            }
        }
        AstExpr::Select(sel) => bound_names(&sel.operand, out),
        AstExpr::Call(call) => {
            for x in call.target.iter().map(|t| &**t).chain(&call.args) {
                bound_names(x, out);
            }
        }
        AstExpr::List(list) => list.elements.iter().for_each(|x| bound_names(x, out)),
        AstExpr::Map(MapExpr { entries }) | AstExpr::Struct(StructExpr { entries, .. }) => {
            for entry in entries {
                match &entry.expr {
                    EntryExpr::StructField(f) => bound_names(&f.value, out),
                    EntryExpr::MapEntry(m) => {
                        bound_names(&m.key, out);
                        bound_names(&m.value, out);
                    }
                }
            }
        }
        AstExpr::Ident(_) | AstExpr::Literal(_) | AstExpr::Unspecified => {}
    }
}

/// The columns an expression reads from the row image `var`, when every use of it is a field
/// selection (`after.id`, `has(after.id)`) or an index by a string literal (`after["id"]`);
/// `None` when it may read any column (`after` passed whole, indexed by a computed key, ...).
/// Only these columns are converted to CEL on each event.
fn fields_read(expr: &IdedExpr, var: &str) -> Option<Vec<String>> {
    let mut names = Vec::new();
    walk_fields(expr, var, &mut names).then_some(names)
}

/// [`fields_read`]'s walk: false as soon as `var` is used other than by name.
fn walk_fields(e: &IdedExpr, var: &str, names: &mut Vec<String>) -> bool {
    fn all<'a>(
        mut items: impl Iterator<Item = &'a IdedExpr>,
        var: &str,
        names: &mut Vec<String>,
    ) -> bool {
        items.all(|x| walk_fields(x, var, names))
    }
    match &e.expr {
        AstExpr::Ident(name) => name != var,
        AstExpr::Select(sel) => match &sel.operand.expr {
            AstExpr::Ident(name) if name == var => {
                names.push(sel.field.clone());
                true
            }
            _ => walk_fields(&sel.operand, var, names),
        },
        AstExpr::Call(call) => {
            if let ("_[_]", None, [target, index]) =
                (call.func_name.as_str(), &call.target, call.args.as_slice())
            {
                if let (AstExpr::Ident(name), AstExpr::Literal(LiteralValue::String(key))) =
                    (&target.expr, &index.expr)
                {
                    if name == var {
                        names.push(key.inner().to_string());
                        return true;
                    }
                }
            }
            all(
                call.target.iter().map(|t| &**t).chain(&call.args),
                var,
                names,
            )
        }
        AstExpr::Comprehension(c) => all(
            &mut [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ]
            .into_iter(),
            var,
            names,
        ),
        AstExpr::List(list) => all(list.elements.iter(), var, names),
        AstExpr::Map(MapExpr { entries }) | AstExpr::Struct(StructExpr { entries, .. }) => {
            entries.iter().all(|entry| match &entry.expr {
                EntryExpr::StructField(f) => walk_fields(&f.value, var, names),
                EntryExpr::MapEntry(m) => {
                    walk_fields(&m.key, var, names) && walk_fields(&m.value, var, names)
                }
            })
        }
        AstExpr::Literal(_) | AstExpr::Unspecified => true,
    }
}

/// A row as a CEL map of the columns `keys` names (null without a row).
fn row_value(keys: Option<&[(usize, Key)]>, row: Option<&Row>) -> cel::Value {
    let (Some(keys), Some(row)) = (keys, row) else {
        return cel::Value::Null;
    };
    let map: HashMap<Key, cel::Value> = keys
        .iter()
        .filter_map(|(i, k)| Some((k.clone(), to_cel(row.get(*i)?))))
        .collect();
    cel::Value::Map(Map { map: Arc::new(map) })
}

fn source_value(event: &ChangeEvent) -> cel::Value {
    let mut map: HashMap<Key, cel::Value> = HashMap::new();
    let mut put = |k: &str, v: cel::Value| {
        map.insert(Key::String(Arc::new(k.to_string())), v);
    };
    put("connector", event.source.connector.into());
    put("snapshot", event.source.snapshot.as_str().into());
    if let Some(t) = &event.table {
        put("db", t.id.database.as_ref().into());
        put("schema", t.id.schema.as_ref().into());
        put("table", t.id.table.as_ref().into());
    }
    for (name, value) in &event.source.fields {
        put(name, to_cel(value));
    }
    cel::Value::Map(Map { map: Arc::new(map) })
}

/// One value in CEL.
pub fn to_cel(value: &Value) -> cel::Value {
    match value {
        Value::Null | Value::Unavailable => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Int(i) => cel::Value::Int(*i),
        Value::UInt(u) => cel::Value::UInt(*u),
        Value::Float32(f) => cel::Value::Float(f64::from(*f)),
        Value::Float64(f) => cel::Value::Float(*f),
        Value::Text(s) | Value::Json(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Bytes(b) => cel::Value::Bytes(Arc::new(b.clone())),
        Value::Array(items) => cel::Value::List(Arc::new(items.iter().map(to_cel).collect())),
        other => match super::value_text(other) {
            Some(s) => cel::Value::String(Arc::new(s)),
            None => cel::Value::Null,
        },
    }
}

/// What went wrong, without the values involved (they may be personal data).
fn safe_message(e: &cel::ExecutionError) -> String {
    use cel::ExecutionError as E;
    match e {
        E::NoSuchKey(k) => format!("no such key {k:?}"),
        E::UndeclaredReference(r) => format!("undeclared reference to {r:?}"),
        E::UnexpectedType { got, want } => format!("unexpected type {got}, want {want}"),
        E::NoSuchOverload(o) => o.to_string(),
        E::InvalidArgumentCount { expected, actual } => {
            format!("expected {expected} arguments, got {actual}")
        }
        E::FunctionError { function, .. } => format!("function {function:?} failed"),
        E::DivisionByZero(_) | E::RemainderByZero(_) => "division by zero".to_string(),
        E::Overflow(op, _, _) => format!("overflow in `{op}`"),
        E::UnsupportedBinaryOperator(op, a, b) => format!(
            "`{op}` does not apply to {:?} and {:?}",
            a.type_of(),
            b.type_of()
        ),
        E::ValuesNotComparable(a, b) => {
            format!("{:?} and {:?} cannot be compared", a.type_of(), b.type_of())
        }
        E::IndexOutOfBounds(_) => "index out of bounds".to_string(),
        _ => "the expression cannot be evaluated on this event".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Column, Position, TableId};
    use crate::ErrorKind;

    fn table(name: &str) -> Arc<TableSchema> {
        Arc::new(TableSchema::new(
            TableId::new("db", "public", name),
            vec![
                Column::new("id", "int4").key(),
                Column::new("status", "text"),
                Column::new("amount", "numeric"),
            ],
        ))
    }

    fn event(op: Op, name: &str, status: &str) -> ChangeEvent {
        let row = vec![
            Value::Int(1),
            Value::Text(status.into()),
            Value::Decimal("12.50".into()),
        ];
        let (before, after) = match op {
            Op::Delete => (Some(row), None),
            _ => (None, Some(row)),
        };
        ChangeEvent::row(op, table(name), before, after, Position::new("0/16B3748"))
    }

    fn filter(yaml: &str) -> Result<Filter> {
        let section = ConfigSection::from_yaml("transforms[0]", yaml)?;
        let config: FilterConfig = section.extract()?;
        Filter::new("transforms[0]", &config)
    }

    #[test]
    fn keeps_what_matches_every_condition() {
        let mut f = filter(
            "{ type: filter, tables: [public.ord*], ops: [c, u], \
             when: \"after.status != 'draft' && op == 'c'\" }",
        )
        .unwrap();
        let mut keep = event(Op::Create, "orders", "paid");
        assert_eq!(f.apply(&mut keep).unwrap(), Verdict::Keep);
        for mut drop in [
            event(Op::Create, "orders", "draft"),
            event(Op::Create, "items", "paid"),
            event(Op::Delete, "orders", "paid"),
            event(Op::Update, "orders", "paid"),
        ] {
            assert_eq!(f.apply(&mut drop).unwrap(), Verdict::Drop, "{drop:?}");
        }
    }

    #[test]
    fn expressions_see_source_and_typed_values() {
        let mut f = filter(
            "{ type: filter, when: \"source.table == 'orders' && after.id == 1 \
             && after.amount == '12.50' && before == null\" }",
        )
        .unwrap();
        assert_eq!(
            f.apply(&mut event(Op::Create, "orders", "x")).unwrap(),
            Verdict::Keep
        );
        assert_eq!(
            f.apply(&mut event(Op::Create, "items", "x")).unwrap(),
            Verdict::Drop
        );
    }

    #[test]
    fn only_the_columns_read_by_name_are_converted_and_whole_rows_stay_whole() {
        // GIVEN expressions reading columns by name, and ones using a row image whole
        let read = |text: &str| compile("k", text).unwrap().fields;
        // THEN by-name reads list exactly those columns (of both images)
        assert_eq!(
            read("after.status == 'x' && has(before.id) || after['amount'] == '1'"),
            Some(vec!["id".to_string(), "status".into(), "amount".into()])
        );
        assert_eq!(read("op == 'c'"), Some(vec![]));
        // AND a row used whole, or indexed by a computed key, converts every column
        assert_eq!(read("size(after) == 3"), None);
        assert_eq!(read("after[op] == 1"), None);
        assert_eq!(read("'amount' in after"), None);
        assert_eq!(read("after.exists(k, k == 'amount')"), None);
        // AND WHEN such filters run THEN they see the values they need
        for (when, want) in [
            ("size(after) == 3", Verdict::Keep),
            ("'amount' in after", Verdict::Keep),
            ("after.exists(k, k == 'amount')", Verdict::Keep),
            ("after.all(k, k != 'nope')", Verdict::Keep),
            (
                "after.status == 'paid' && !has(after.amount)",
                Verdict::Drop,
            ),
            (
                "after.status == 'paid' && after['amount'] == '12.50'",
                Verdict::Keep,
            ),
        ] {
            let mut f = filter(&format!("{{ type: filter, when: \"{when}\" }}")).unwrap();
            let got = f.apply(&mut event(Op::Create, "orders", "paid")).unwrap();
            assert_eq!(got, want, "{when}");
        }
    }

    #[test]
    fn bad_config_names_the_key_path() {
        let e = filter("{ type: filter, when: \"after.(\" }").err().unwrap();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(
            e.message().contains("transforms[0].when"),
            "{}",
            e.message()
        );
        let e = filter("{ type: filter, when: \"aftr.id == 1\" }")
            .err()
            .unwrap();
        assert!(
            e.message().contains("unknown variable `aftr`"),
            "{}",
            e.message()
        );
        let e = filter("{ type: filter, ops: [c, x] }").err().unwrap();
        assert!(
            e.message().contains("transforms[0].ops[1]"),
            "{}",
            e.message()
        );
        let e = filter("{ type: filter, tables: [nodot] }").err().unwrap();
        assert!(
            e.message().contains("transforms[0].tables[0]"),
            "{}",
            e.message()
        );
        let e = filter("{ type: filter, colour: red }").err().unwrap();
        assert!(e.message().contains("colour"), "{}", e.message());
    }

    #[test]
    fn patterns_matching_no_captured_table_are_config_errors() {
        let mut f = filter("{ type: filter, tables: [public.orders, shop.*] }").unwrap();
        let known = [(*table("orders")).clone()];
        let e = f.check_tables(&known).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(
            e.message().contains("transforms[0].tables[1]"),
            "{}",
            e.message()
        );
        assert!(e.message().contains("public.orders"), "{}", e.message());
    }

    #[test]
    fn run_time_failures_name_table_and_position_but_no_value() {
        let mut f = filter("{ type: filter, when: \"after.status > 3\" }").unwrap();
        let e = f
            .apply(&mut event(Op::Create, "orders", "secret-value"))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Data);
        let m = e.message();
        assert!(
            m.contains("public.orders") && m.contains("0/16B3748"),
            "{m}"
        );
        assert!(!m.contains("secret-value"), "{m}");
        let mut f = filter("{ type: filter, when: \"after.id\" }").unwrap();
        let e = f.apply(&mut event(Op::Create, "orders", "x")).unwrap_err();
        assert!(e.message().contains("not a bool"), "{}", e.message());
    }
}
