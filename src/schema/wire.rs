//! The JSON wire format: one object per record, snake_case names, typed values.
//!
//! `{"symbol":"HSI","trade_date":"1986-12-31","open":2568.300049,...,"volume":0}`: numbers as numbers, dates as
//! `YYYY-MM-DD`, timestamps as ISO-8601 UTC with milliseconds, nulls as `null`. `encode_row` is on replay's hot
//! path, so it writes bytes directly. Reading it back lives in `decode` (re-exported here: one format, one name).

use std::io::Write;

pub use super::cells::FieldIndex;
pub use super::decode::{DecodeError, UnknownField, decode_record, decode_record_fast, decode_record_into};
use super::value::{format_timestamp, push_date};
use super::{Row, Schema, Value};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ColumnType;
    use crate::schema::value::parse_date;
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
