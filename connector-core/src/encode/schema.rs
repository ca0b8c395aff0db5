//! Kafka Connect schemas as `JsonConverter` (`schemas.enable=true`) writes them, equal to
//! Debezium's for each column type and handling mode: type names `int8`..`int64`, `float`,
//! `double`, `boolean`, `string`, `bytes`, `array`, `map`, `struct`, with Debezium's logical
//! `name`, `version` and `parameters`.

use super::json::write_str;
use super::modes::{BinaryMode, DecimalMode, HstoreMode, IntervalMode, Modes, TimePrecisionMode};
use super::value::fixed_scale;
use crate::column_type::ColumnType;
use crate::event::Value;

/// The column type a value implies when its column's type is not known ([`ColumnType::Other`]).
pub fn type_of_value(v: &Value) -> ColumnType {
    match v {
        Value::Bool(_) => ColumnType::Bool,
        Value::Int(_) | Value::UInt(_) => ColumnType::Int64,
        Value::Float32(_) => ColumnType::Float32,
        Value::Float64(_) => ColumnType::Float64,
        Value::Decimal(_) => ColumnType::Decimal {
            precision: None,
            scale: None,
        },
        Value::Bytes(_) => ColumnType::Bytes,
        Value::Json(_) => ColumnType::Json,
        Value::Date(_) => ColumnType::Date,
        Value::Time(_) => ColumnType::Time { precision: 6 },
        Value::TimeTz { .. } => ColumnType::TimeTz,
        Value::Timestamp(_) => ColumnType::Timestamp { precision: 6 },
        Value::TimestampTz(_) => ColumnType::TimestampTz { precision: None },
        Value::Interval { .. } => ColumnType::Interval,
        Value::Uuid(_) => ColumnType::Uuid,
        Value::Array(items) => ColumnType::Array(std::sync::Arc::new(
            items
                .iter()
                .find(|v| !v.is_null())
                .map_or(ColumnType::Other, type_of_value),
        )),
        Value::Null | Value::Unavailable | Value::Text(_) => ColumnType::Other,
    }
}

fn named(out: &mut Vec<u8>, kind: &str, name: &str) {
    out.extend_from_slice(b"\"type\":");
    write_str(out, kind);
    out.extend_from_slice(b",\"name\":");
    write_str(out, name);
    out.extend_from_slice(b",\"version\":1");
}

fn plain(out: &mut Vec<u8>, kind: &str) {
    out.extend_from_slice(b"\"type\":");
    write_str(out, kind);
}

fn parameters(out: &mut Vec<u8>, params: &[(&str, &str)]) {
    out.extend_from_slice(b",\"parameters\":{");
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, k);
        out.push(b':');
        write_str(out, v);
    }
    out.push(b'}');
}

/// Append the members of the schema of a column of type `ty` (`"type":..` and what goes with it),
/// without `optional` and `field` and without braces.
pub fn write_type_members(out: &mut Vec<u8>, ty: &ColumnType, modes: &Modes) {
    use TimePrecisionMode as T;
    match ty {
        ColumnType::Other | ColumnType::Text => plain(out, "string"),
        ColumnType::Bool | ColumnType::Bits { length: 0 | 1 } => plain(out, "boolean"),
        ColumnType::Int16 => plain(out, "int16"),
        ColumnType::Int32 => plain(out, "int32"),
        ColumnType::Int64 => plain(out, "int64"),
        ColumnType::Float32 => plain(out, "float"),
        ColumnType::Float64 => plain(out, "double"),
        ColumnType::Decimal { .. } | ColumnType::Money { .. } => match modes.decimal {
            DecimalMode::String => plain(out, "string"),
            DecimalMode::Double => plain(out, "double"),
            DecimalMode::Precise => match fixed_scale(ty) {
                Some(scale) => {
                    named(out, "bytes", "org.apache.kafka.connect.data.Decimal");
                    let scale = scale.to_string();
                    match ty {
                        ColumnType::Decimal {
                            precision: Some(p), ..
                        } => parameters(
                            out,
                            &[
                                ("scale", &scale),
                                ("connect.decimal.precision", &p.to_string()),
                            ],
                        ),
                        _ => parameters(out, &[("scale", &scale)]),
                    }
                }
                None => {
                    out.extend_from_slice(
                        b"\"type\":\"struct\",\"fields\":[\
                          {\"type\":\"int32\",\"optional\":false,\"field\":\"scale\"},\
                          {\"type\":\"bytes\",\"optional\":false,\"field\":\"value\"}],\
                          \"name\":\"io.debezium.data.VariableScaleDecimal\",\"version\":1,\
                          \"doc\":\"Variable scaled decimal\"",
                    );
                }
            },
        },
        ColumnType::Bytes => match modes.binary {
            BinaryMode::Bytes => plain(out, "bytes"),
            _ => plain(out, "string"),
        },
        ColumnType::Json => named(out, "string", "io.debezium.data.Json"),
        ColumnType::Xml => named(out, "string", "io.debezium.data.Xml"),
        ColumnType::Uuid => named(out, "string", "io.debezium.data.Uuid"),
        ColumnType::Date => match modes.time {
            T::Isostring => named(out, "string", "io.debezium.time.IsoDate"),
            T::Connect => named(out, "int32", "org.apache.kafka.connect.data.Date"),
            _ => named(out, "int32", "io.debezium.time.Date"),
        },
        ColumnType::Time { precision } => match modes.time {
            T::Isostring => named(out, "string", "io.debezium.time.IsoTime"),
            T::Connect => named(out, "int32", "org.apache.kafka.connect.data.Time"),
            T::Adaptive if *precision <= 3 => named(out, "int32", "io.debezium.time.Time"),
            _ => named(out, "int64", "io.debezium.time.MicroTime"),
        },
        ColumnType::TimeTz => named(out, "string", "io.debezium.time.ZonedTime"),
        ColumnType::Timestamp { precision } => match modes.time {
            T::Isostring => named(out, "string", "io.debezium.time.IsoTimestamp"),
            T::Connect => named(out, "int64", "org.apache.kafka.connect.data.Timestamp"),
            _ if *precision <= 3 => named(out, "int64", "io.debezium.time.Timestamp"),
            _ => named(out, "int64", "io.debezium.time.MicroTimestamp"),
        },
        ColumnType::TimestampTz { .. } => named(out, "string", "io.debezium.time.ZonedTimestamp"),
        ColumnType::Interval => match modes.interval {
            IntervalMode::String => named(out, "string", "io.debezium.time.Interval"),
            IntervalMode::Numeric => named(out, "int64", "io.debezium.time.MicroDuration"),
        },
        ColumnType::Bits { length } => {
            named(out, "bytes", "io.debezium.data.Bits");
            parameters(out, &[("length", &length.to_string())]);
        }
        ColumnType::Enum(labels) => {
            named(out, "string", "io.debezium.data.Enum");
            parameters(out, &[("allowed", &labels.join(","))]);
        }
        ColumnType::Set(labels) => {
            named(out, "string", "io.debezium.data.EnumSet");
            parameters(out, &[("allowed", &labels.join(","))]);
        }
        ColumnType::Hstore => match modes.hstore {
            HstoreMode::Json => named(out, "string", "io.debezium.data.Json"),
            HstoreMode::Map => out.extend_from_slice(
                b"\"type\":\"map\",\"keys\":{\"type\":\"string\",\"optional\":false},\
                  \"values\":{\"type\":\"string\",\"optional\":true}",
            ),
        },
        ColumnType::Year => named(out, "int32", "io.debezium.time.Year"),
        ColumnType::Array(elem) => {
            out.extend_from_slice(b"\"type\":\"array\",\"items\":{");
            write_type_members(out, elem, modes);
            out.extend_from_slice(b",\"optional\":true}");
        }
    }
}

/// Append one field schema `{"type":..,"optional":..,"field":..}`.
pub fn write_field_schema(
    out: &mut Vec<u8>,
    field: &str,
    ty: &ColumnType,
    modes: &Modes,
    optional: bool,
) {
    out.push(b'{');
    write_type_members(out, ty, modes);
    out.extend_from_slice(if optional {
        b",\"optional\":true,\"field\":"
    } else {
        b",\"optional\":false,\"field\":"
    });
    write_str(out, field);
    out.push(b'}');
}

/// Append a field schema of a fixed primitive type.
pub fn write_fixed_field(out: &mut Vec<u8>, field: &str, kind: &str, optional: bool) {
    out.extend_from_slice(b"{\"type\":");
    write_str(out, kind);
    out.extend_from_slice(if optional {
        b",\"optional\":true,\"field\":"
    } else {
        b",\"optional\":false,\"field\":"
    });
    write_str(out, field);
    out.push(b'}');
}

/// Debezium's `source.snapshot` schema: an optional `Enum` defaulting to `false`.
pub const SNAPSHOT_FIELD_SCHEMA: &[u8] = b"{\"type\":\"string\",\"optional\":true,\
    \"name\":\"io.debezium.data.Enum\",\"version\":1,\"parameters\":{\"allowed\":\
    \"true,first,first_in_data_collection,last_in_data_collection,last,false,incremental\"},\
    \"default\":\"false\",\"field\":\"snapshot\"}";

/// Debezium's `transaction` block schema.
pub const TRANSACTION_FIELD_SCHEMA: &[u8] = b"{\"type\":\"struct\",\"fields\":[\
    {\"type\":\"string\",\"optional\":false,\"field\":\"id\"},\
    {\"type\":\"int64\",\"optional\":false,\"field\":\"total_order\"},\
    {\"type\":\"int64\",\"optional\":false,\"field\":\"data_collection_order\"}],\
    \"optional\":true,\"name\":\"event.block\",\"version\":1,\"field\":\"transaction\"}";

/// A connector's own `source` fields after the common ones: name, Connect type, optional.
pub fn connector_source_fields(connector: &str) -> &'static [(&'static str, &'static str, bool)] {
    match connector {
        "postgresql" => &[
            ("schema", "string", false),
            ("table", "string", false),
            ("txId", "int64", true),
            ("lsn", "int64", true),
            ("xmin", "int64", true),
            ("origin", "string", true),
            ("origin_lsn", "int64", true),
        ],
        "mysql" => &[
            ("table", "string", true),
            ("server_id", "int64", false),
            ("gtid", "string", true),
            ("file", "string", false),
            ("pos", "int64", false),
            ("row", "int32", false),
            ("thread", "int64", true),
            ("query", "string", true),
        ],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn schema(ty: &ColumnType, modes: Modes) -> serde_json::Value {
        let mut out = Vec::new();
        write_field_schema(&mut out, "c", ty, &modes, true);
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn schemas_are_debeziums_per_type_and_mode() {
        let dbz = Modes::debezium();
        let d = schema(
            &ColumnType::Decimal {
                precision: Some(10),
                scale: Some(2),
            },
            dbz,
        );
        assert_eq!(d["type"], "bytes");
        assert_eq!(d["name"], "org.apache.kafka.connect.data.Decimal");
        assert_eq!(d["parameters"]["scale"], "2");
        assert_eq!(d["parameters"]["connect.decimal.precision"], "10");
        let m = schema(&ColumnType::Money { scale: 2 }, dbz);
        assert_eq!(m["parameters"], serde_json::json!({"scale": "2"}));
        let v = schema(
            &ColumnType::Decimal {
                precision: None,
                scale: None,
            },
            dbz,
        );
        assert_eq!(v["name"], "io.debezium.data.VariableScaleDecimal");
        assert_eq!(v["fields"][0]["field"], "scale");
        assert_eq!(schema(&ColumnType::Float32, dbz)["type"], "float");
        assert_eq!(schema(&ColumnType::Float64, dbz)["type"], "double");
        assert_eq!(
            schema(&ColumnType::Time { precision: 6 }, dbz)["name"],
            "io.debezium.time.MicroTime"
        );
        assert_eq!(
            schema(&ColumnType::Timestamp { precision: 6 }, dbz)["name"],
            "io.debezium.time.MicroTimestamp"
        );
        assert_eq!(schema(&ColumnType::Date, dbz)["type"], "int32");
        assert_eq!(schema(&ColumnType::Bytes, dbz)["type"], "bytes");
        assert_eq!(
            schema(&ColumnType::Bytes, Modes::default())["type"],
            "string"
        );
        let bits = schema(&ColumnType::Bits { length: 3 }, dbz);
        assert_eq!(bits["name"], "io.debezium.data.Bits");
        assert_eq!(bits["parameters"]["length"], "3");
        assert_eq!(
            schema(&ColumnType::Bits { length: 1 }, dbz)["type"],
            "boolean"
        );
        let e = schema(&ColumnType::Enum(vec!["a".into(), "b".into()].into()), dbz);
        assert_eq!(e["name"], "io.debezium.data.Enum");
        assert_eq!(e["parameters"]["allowed"], "a,b");
        assert_eq!(
            schema(&ColumnType::Hstore, dbz)["name"],
            "io.debezium.data.Json"
        );
        let map = schema(
            &ColumnType::Hstore,
            Modes {
                hstore: HstoreMode::Map,
                ..dbz
            },
        );
        assert_eq!(map["type"], "map");
        assert_eq!(map["values"]["optional"], true);
        let arr = schema(&ColumnType::Array(Arc::new(ColumnType::Int32)), dbz);
        assert_eq!(arr["items"]["type"], "int32");
        assert_eq!(
            schema(&ColumnType::Interval, dbz)["name"],
            "io.debezium.time.MicroDuration"
        );
        assert_eq!(
            schema(&ColumnType::Date, Modes::default())["name"],
            "io.debezium.time.IsoDate"
        );
        let _: serde_json::Value = serde_json::from_slice(SNAPSHOT_FIELD_SCHEMA).unwrap();
        let _: serde_json::Value = serde_json::from_slice(TRANSACTION_FIELD_SCHEMA).unwrap();
    }
}
