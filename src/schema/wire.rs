//! The JSON wire format: one object per record, snake_case names, typed values.
//!
//! `{"symbol":"HSI","trade_date":"1986-12-31","open":2568.300049,...,"volume":0}`: numbers as numbers, dates as
//! `YYYY-MM-DD`, timestamps as ISO-8601 UTC with milliseconds, nulls as `null`. `encode_row` is on replay's hot
//! path, so it writes bytes directly; `decode_record` is what the sink and the tests read back with, and it also
//! accepts the original CSV header names, which is what existing Python producers send.

use std::io::Write;

use serde_json::Value as Json;

use super::value::{format_timestamp, parse_bigint, parse_date, parse_timestamp, push_date, timestamp_in_range};
use super::{ColumnType, Row, Schema, Value};

/// Appends the JSON object for `row` to `out`.
pub fn encode_row(schema: &Schema, row: &Row, out: &mut Vec<u8>) {
    encode_row_verbatim(schema, row, |_| None, out)
}

/// Like `encode_row`, but a double whose source text (`source(i)` for field `i`) is already a valid JSON number
/// is written as that text: it parses to the same double, and it saves re-formatting (ryu was 8% of replay's CPU).
pub fn encode_row_verbatim<'a>(
    schema: &Schema,
    row: &Row,
    source: impl Fn(usize) -> Option<&'a [u8]>,
    out: &mut Vec<u8>,
) {
    out.push(b'{');
    for (i, (field, value)) in schema.fields.iter().zip(row).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Field names are validated snake_case: no escaping needed.
        out.push(b'"');
        out.extend_from_slice(field.name.as_bytes());
        out.extend_from_slice(b"\":");
        match (value, source(i)) {
            (Value::Float(_), Some(text)) if is_json_number(text) => out.extend_from_slice(text),
            _ => write_value(value, out),
        }
    }
    out.push(b'}');
}

/// JSON's number grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
pub fn is_json_number(t: &[u8]) -> bool {
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < t.len() && t[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    let mut i = 0;
    if t.first() == Some(&b'-') {
        i += 1;
    }
    match t.get(i) {
        Some(b'0') => i += 1,
        Some(c) if c.is_ascii_digit() => {
            digits(&mut i);
        }
        _ => return false,
    }
    if t.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(t.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(t.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == t.len()
}

fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Str(s) => serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail"),
        Value::Int(v) => out.extend_from_slice(itoa::Buffer::new().format(*v).as_bytes()),
        Value::Float(v) => {
            // Finite by construction (parse_cell refuses NaN and infinities), so ryu's output is valid JSON.
            let mut b = ryu::Buffer::new();
            out.extend_from_slice(b.format_finite(*v).as_bytes());
        }
        Value::Bool(v) => out.extend_from_slice(if *v { b"true" } else { b"false" }),
        Value::Date(d) => {
            let mut s = String::with_capacity(12);
            s.push('"');
            push_date(*d, &mut s);
            s.push('"');
            out.extend_from_slice(s.as_bytes());
        }
        Value::Timestamp(ms) => write!(out, "\"{}\"", format_timestamp(*ms)).expect("vec write"),
    }
}

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

/// Field lookup for `decode_record_fast`: snake_case and CSV header names → field index.
///
/// Records from replay carry the keys in schema order, so the field after the previous one is tried first; then a
/// scan of the (few) names. Hashing every key (SipHash) was 3% of the sink's CPU.
#[derive(Debug, Clone)]
pub struct FieldIndex {
    /// snake_case name per field, in schema order.
    names: Vec<String>,
    /// (CSV header name, field) where it differs from the snake_case name.
    aliases: Vec<(String, usize)>,
}

impl FieldIndex {
    pub fn new(schema: &Schema) -> FieldIndex {
        let names: Vec<String> = schema.fields.iter().map(|f| f.name.clone()).collect();
        let mut aliases: Vec<(String, usize)> = Vec::new();
        for (i, f) in schema.fields.iter().enumerate() {
            let src = f.source_name();
            // A header name that is another field's snake_case name never shadows it.
            if src != f.name && !names.iter().any(|n| n == src) && !aliases.iter().any(|(a, _)| a == src) {
                aliases.push((src.to_string(), i));
            }
        }
        FieldIndex { names, aliases }
    }

    /// The field `key` names (compared byte for byte, as UTF-8); `hint` is the field tried first.
    pub(crate) fn find(&self, key: &[u8], hint: usize) -> Option<usize> {
        if self.names.get(hint).is_some_and(|n| n.as_bytes() == key) {
            return Some(hint);
        }
        let named = self.names.iter().position(|n| n.as_bytes() == key);
        named.or_else(|| self.aliases.iter().find(|(a, _)| a.as_bytes() == key).map(|a| a.1))
    }
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

/// The value a column of type `ty` takes from a JSON integer, float, string or boolean; `None` where the token
/// does not fit (the reference decoder, `decode_record`, then says why). Shared by the two streaming decoders
/// (`CellSeed` here, `flat`) so that they cannot drift apart.
pub(crate) fn int_cell(ty: ColumnType, v: i64) -> Option<Value> {
    match ty {
        ColumnType::Bigint => Some(Value::Int(v)),
        ColumnType::Double => Some(Value::Float(v as f64)),
        ColumnType::Timestamp => timestamp_in_range(v).ok().map(Value::Timestamp),
        ColumnType::String => Some(Value::Str(v.to_string())),
        _ => None,
    }
}

/// See `int_cell`.
pub(crate) fn float_cell(ty: ColumnType, v: f64) -> Option<Value> {
    match ty {
        ColumnType::Double => Some(Value::Float(v)),
        // Whole floats (`0.0`, how pandas writes volumes) are bigints; anything else is refused.
        ColumnType::Bigint if v.fract() == 0.0 && v.abs() < 9.2e18 => Some(Value::Int(v as i64)),
        _ => None,
    }
}

/// See `int_cell`.
pub(crate) fn str_cell(ty: ColumnType, v: &str) -> Option<Value> {
    match ty {
        ColumnType::String => Some(Value::Str(v.to_string())),
        ColumnType::Date => parse_date(v).ok().map(Value::Date),
        ColumnType::Timestamp => parse_timestamp(v).ok().map(Value::Timestamp),
        _ => None,
    }
}

/// See `int_cell`.
pub(crate) fn bool_cell(ty: ColumnType, v: bool) -> Option<Value> {
    (ty == ColumnType::Boolean).then_some(Value::Bool(v))
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn index_row() -> Row {
        vec![
            Value::Str("HSI".into()),
            Value::Date(parse_date("1986-12-31").unwrap()),
            Value::Float(2568.300049),
            Value::Float(2568.300049),
            Value::Float(2568.300049),
            Value::Float(2568.300049),
            Value::Float(2568.300049),
            Value::Int(0),
            Value::Float(333.87900637),
        ]
    }

    #[test]
    fn encodes_the_documented_shape() {
        let mut out = Vec::new();
        encode_row(&Schema::indices(), &index_row(), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"symbol":"HSI","trade_date":"1986-12-31","open":2568.300049,"high":2568.300049,"low":2568.300049,"close":2568.300049,"adj_close":2568.300049,"volume":0,"close_usd":333.87900637}"#
        );
    }

    #[test]
    fn decodes_original_header_names() {
        let json = br#"{"Index":"HSI","Date":"1986-12-31","Open":2568.300049,"High":2568.300049,"Low":2568.300049,"Close":2568.300049,"Adj Close":2568.300049,"Volume":0.0,"CloseUSD":333.87900637}"#;
        assert_eq!(decode_record(&Schema::indices(), json).unwrap(), index_row());
        let idx = FieldIndex::new(&Schema::indices());
        assert_eq!(decode_record_fast(&Schema::indices(), &idx, json).unwrap(), index_row());
    }

    #[test]
    fn decode_errors_say_what_is_wrong() {
        let s = Schema::indices();
        assert!(matches!(decode_record(&s, b"{nope"), Err(DecodeError::NotJson(_))));
        assert_eq!(decode_record(&s, br#""HSI""#), Err(DecodeError::NotAnObject("a string")));
        let e = decode_record(&s, br#"{"symbol":"HSI","trade_date":"1986-12-31","close":"high"}"#).unwrap_err();
        assert_eq!(e.to_string(), r#"column 'close': expected double, got a string "high""#);
        assert_eq!(
            decode_record(&s, br#"{"trade_date":"1986-12-31"}"#),
            Err(DecodeError::Missing { column: "symbol".into() })
        );
    }

    #[test]
    fn json_number_grammar() {
        for ok in ["0", "-0", "12", "2568.300049", "1e5", "1E+5", "-1.5e-3"] {
            assert!(is_json_number(ok.as_bytes()), "{ok}");
        }
        for bad in ["", "-", "01", ".5", "5.", "+5", "1e", "NaN", "inf", "1,5", " 1"] {
            assert!(!is_json_number(bad.as_bytes()), "{bad}");
        }
    }

    fn arb_row() -> impl Strategy<Value = Row> {
        (
            "\\PC{0,12}",
            -40_000i32..60_000,
            proptest::option::of(proptest::num::f64::NORMAL | proptest::num::f64::ZERO),
            proptest::option::of(any::<i64>()),
        )
            .prop_map(|(sym, d, px, vol)| {
                let px = px.map_or(Value::Null, Value::Float);
                vec![
                    Value::Str(sym),
                    Value::Date(d),
                    px.clone(),
                    px.clone(),
                    px.clone(),
                    px.clone(),
                    px.clone(),
                    vol.map_or(Value::Null, Value::Int),
                    px,
                ]
            })
    }

    proptest! {
        #[test]
        fn row_json_row_round_trips(row in arb_row()) {
            let s = Schema::indices();
            let mut out = Vec::new();
            encode_row(&s, &row, &mut out);
            prop_assert_eq!(decode_record(&s, &out).unwrap(), row);
        }

        #[test]
        fn fast_and_reference_decoders_agree(row in arb_row(), junk in proptest::collection::vec(any::<u8>(), 0..40)) {
            let s = Schema::indices();
            let idx = FieldIndex::new(&s);
            let mut out = Vec::new();
            encode_row(&s, &row, &mut out);
            prop_assert_eq!(decode_record_fast(&s, &idx, &out), decode_record(&s, &out));
            prop_assert_eq!(decode_record_fast(&s, &idx, &junk), decode_record(&s, &junk));
            let mut tail = out.clone();
            tail.extend_from_slice(b" x");
            prop_assert_eq!(decode_record_fast(&s, &idx, &tail), decode_record(&s, &tail));
        }

        #[test]
        fn verbatim_numbers_decode_to_the_same_doubles(text in "-?(0|[1-9][0-9]{0,6})(\\.[0-9]{1,12})?([eE][+-]?[0-9]{1,2})?") {
            let s = Schema { name: "t".into(), key: None, event_time: None, fields: vec![crate::schema::Field::new("px", "px", ColumnType::Double)] };
            let v: f64 = text.parse().unwrap();
            prop_assume!(v.is_finite());
            let row = vec![Value::Float(v)];
            let mut out = Vec::new();
            encode_row_verbatim(&s, &row, |_| Some(text.as_bytes()), &mut out);
            prop_assert_eq!(decode_record(&s, &out).unwrap(), row);
        }
    }
}
