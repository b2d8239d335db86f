//! Reading a JSON record back into a typed row: the sink's hot path (`decode_record_into`, three tiers) and the
//! reference decoder (`decode_record`), whose error messages are the documented ones. Accepts the snake_case names
//! and the original CSV header names (what existing Python producers send).

use serde_json::Value as Json;

use super::cells::{FieldIndex, bool_cell, float_cell, int_cell, str_cell};
use super::value::{parse_bigint, parse_date, parse_timestamp, timestamp_in_range};
use super::{ColumnType, Row, Schema, Value};

/// Why a record does not decode into a row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("JSON {0}, not an object")]
    NotAnObject(&'static str),
    #[error("column '{column}': {reason}")]
    Field { column: String, reason: String },
    #[error("column '{column}' is required but missing or null")]
    Missing { column: String },
}

fn json_kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// Decodes one record value into a row of `schema`. Unknown keys are ignored; a key is looked up by its
/// snake_case name first, then by its CSV header name.
pub fn decode_record(schema: &Schema, bytes: &[u8]) -> Result<Row, DecodeError> {
    decode_record_with(schema, bytes, &mut Vec::new())
}

/// A key the schema does not name, with its (non-null) value: a new column for the sink's schema evolution.
pub type UnknownField = (String, Json);

/// `decode_record`, also collecting the non-null fields the schema does not name into `unknown`.
fn decode_record_with(schema: &Schema, bytes: &[u8], unknown: &mut Vec<UnknownField>) -> Result<Row, DecodeError> {
    let json: Json = serde_json::from_slice(bytes).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let Json::Object(map) = json else {
        return Err(DecodeError::NotAnObject(json_kind(&json)));
    };
    unknown.clear();
    for (k, v) in &map {
        if !v.is_null() && !schema.fields.iter().any(|f| &f.name == k || f.source_name() == k) {
            unknown.push((k.clone(), v.clone()));
        }
    }
    schema
        .fields
        .iter()
        .map(|f| {
            let v = map.get(&f.name).or_else(|| map.get(f.source_name())).unwrap_or(&Json::Null);
            let value =
                json_to_value(v, f.ty).map_err(|reason| DecodeError::Field { column: f.name.clone(), reason })?;
            if f.required && value == Value::Null {
                return Err(DecodeError::Missing { column: f.name.clone() });
            }
            Ok(value)
        })
        .collect()
}

/// Like `decode_record`, but streams the JSON straight into the row (no intermediate `serde_json::Value` map):
/// the sink's hot path. On any error it defers to `decode_record`, whose messages are the documented ones.
pub fn decode_record_fast(schema: &Schema, index: &FieldIndex, bytes: &[u8]) -> Result<Row, DecodeError> {
    let mut row = Vec::new();
    decode_record_into(schema, index, bytes, &mut row, &mut Vec::new())?;
    Ok(row)
}

/// `decode_record_fast` into `row`, reusing its allocation (the sink decodes every record into the same one).
/// Non-null fields the schema does not name are collected into `unknown` (cleared first): the row is still
/// decoded, and the caller decides whether they become columns.
pub fn decode_record_into(
    schema: &Schema,
    index: &FieldIndex,
    bytes: &[u8],
    row: &mut Row,
    unknown: &mut Vec<UnknownField>,
) -> Result<(), DecodeError> {
    use serde::de::DeserializeSeed;
    let required_present =
        |row: &Row| schema.fields.iter().zip(row.iter()).all(|(f, v)| !f.required || *v != Value::Null);
    let reset = |row: &mut Row| {
        row.clear();
        row.resize(schema.fields.len(), Value::Null);
    };
    // Three tiers: the hand-written scanner for plain records; serde_json streaming for escapes and unknown keys;
    // the reference decoder for everything else and for the wording of errors.
    reset(row);
    unknown.clear();
    // The flat scanner refuses any key it does not know, so a record it takes has no unknown field.
    if super::flat::decode(schema, index, bytes, row).is_some() && required_present(row) {
        return Ok(());
    }
    reset(row);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let fast =
        RowSeed { schema, index, row: &mut *row, unknown: &mut *unknown }.deserialize(&mut de).and_then(|()| de.end());
    match fast {
        Ok(()) if required_present(row) => Ok(()),
        _ => {
            *row = decode_record_with(schema, bytes, unknown)?;
            Ok(())
        }
    }
}

struct RowSeed<'a> {
    schema: &'a Schema,
    index: &'a FieldIndex,
    row: &'a mut Row,
    unknown: &'a mut Vec<UnknownField>,
}

impl<'de> serde::de::DeserializeSeed<'de> for RowSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for RowSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut hint = 0;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match self.index.find(key.as_bytes(), hint) {
                Some(i) => {
                    self.row[i] = map.next_value_seed(CellSeed(self.schema.fields[i].ty))?;
                    hint = i + 1;
                }
                None => {
                    // Not `IgnoredAny`: serde_json skips an ignored string without checking its UTF-8, so a record
                    // with invalid UTF-8 in a field we do not read would pass here but fail as JSON (found by
                    // `just fuzz`). Unknown fields are rare; parsing them fully keeps the two decoders in step.
                    let v = map.next_value::<serde_json::Value>()?;
                    if !v.is_null() {
                        self.unknown.push((key.into_owned(), v));
                    }
                }
            }
        }
        Ok(())
    }
}

/// One cell of a known type, straight from the JSON token.
struct CellSeed(ColumnType);

impl<'de> serde::de::DeserializeSeed<'de> for CellSeed {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

// The error texts are never shown: any failure here sends the record to `decode_record`, which words it.
impl<'de> serde::de::Visitor<'de> for CellSeed {
    type Value = Value;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a {}", self.0)
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        bool_cell(self.0, v).ok_or_else(|| E::custom("type"))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        int_cell(self.0, v).ok_or_else(|| E::custom("type"))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        match i64::try_from(v) {
            Ok(i) => self.visit_i64(i),
            Err(_) if self.0 == ColumnType::Double => Ok(Value::Float(v as f64)),
            Err(_) => Err(E::custom("range")),
        }
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        float_cell(self.0, v).ok_or_else(|| E::custom("type"))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        str_cell(self.0, v).ok_or_else(|| E::custom("type"))
    }
}

fn json_to_value(v: &Json, ty: ColumnType) -> Result<Value, String> {
    let wrong = || format!("expected {ty}, got {} {}", json_kind(v), short(v));
    Ok(match (ty, v) {
        (_, Json::Null) => Value::Null,
        (ColumnType::String, Json::String(s)) => Value::Str(s.clone()),
        (ColumnType::String, Json::Number(n)) => Value::Str(n.to_string()),
        (ColumnType::Double, Json::Number(n)) => Value::Float(n.as_f64().ok_or_else(wrong)?),
        (ColumnType::Bigint, Json::Number(n)) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Int(parse_bigint(&n.to_string()).map_err(|e| e.reason)?),
        },
        (ColumnType::Boolean, Json::Bool(b)) => Value::Bool(*b),
        (ColumnType::Date, Json::String(s)) => Value::Date(parse_date(s).map_err(|e| e.reason)?),
        (ColumnType::Timestamp, Json::String(s)) => Value::Timestamp(parse_timestamp(s).map_err(|e| e.reason)?),
        (ColumnType::Timestamp, Json::Number(n)) => {
            Value::Timestamp(timestamp_in_range(n.as_i64().ok_or_else(wrong)?)?)
        }
        _ => return Err(wrong()),
    })
}

fn short(v: &Json) -> String {
    let s = v.to_string();
    if s.len() > 40 { format!("{}...", &s[..s.floor_char_boundary(40)]) } else { s }
}
