//! What a JSON token becomes in a column of a given type, and the record-key lookup: the rules both streaming
//! decoders (`flat` and `decode`'s serde path) share, below both so that they cannot drift apart.

use super::value::{parse_date, parse_timestamp, timestamp_in_range};
use super::{ColumnType, Schema, Value};

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
