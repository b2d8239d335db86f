//! The sink's fastest path: a flat JSON object of known keys and plain values, scanned by hand.
//!
//! Every record the sink reads goes through here first. serde_json took about 560 ns for a daily index bar (a
//! `Deserializer`, a visitor per key and per cell); this scanner takes a fraction of that. It only accepts what it
//! can decode exactly as serde_json would: known keys, no escapes, no nesting, numbers in JSON's grammar. For
//! anything else (an escape, an unknown key, an error of any kind) it answers `None` and the caller decodes the
//! record with serde_json, which also words the error. Property tests and `just fuzz` hold the two paths equal.

use super::cells::{FieldIndex, bool_cell, float_cell, int_cell, str_cell};
use super::{ColumnType, Row, Schema, Value};

/// Decodes `bytes` into `row` (already `schema.fields.len()` nulls), or `None` when serde_json must decide.
pub(crate) fn decode(schema: &Schema, index: &FieldIndex, bytes: &[u8], row: &mut Row) -> Option<()> {
    let mut s = Scan { b: bytes, i: 0 };
    s.ws();
    s.eat(b'{')?;
    s.ws();
    if s.peek() == Some(b'}') {
        s.i += 1;
    } else {
        let mut hint = 0;
        loop {
            s.eat(b'"')?;
            let key = s.plain_string()?;
            let f = index.find(key, hint)?;
            hint = f + 1;
            s.ws();
            s.eat(b':')?;
            s.ws();
            row[f] = s.value(schema.fields[f].ty)?;
            s.ws();
            match s.next()? {
                b',' => s.ws(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    s.ws();
    (s.i == bytes.len()).then_some(())
}

struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    /// JSON whitespace.
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
    }

    /// The rest of a string whose opening quote was read: its bytes, if it has no escape and no control character.
    fn plain_string(&mut self) -> Option<&'a [u8]> {
        let rest = &self.b[self.i..];
        let end = memchr::memchr2(b'"', b'\\', rest)?;
        if rest[end] == b'\\' || rest[..end].iter().any(|&c| c < 0x20) {
            return None;
        }
        self.i += end + 1;
        Some(&rest[..end])
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i + word.len();
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }

    /// One value for a column of type `ty`, by the same rules as `CellSeed` in `wire`; `None` for anything else.
    fn value(&mut self, ty: ColumnType) -> Option<Value> {
        match self.peek()? {
            b'"' => {
                self.i += 1;
                str_cell(ty, std::str::from_utf8(self.plain_string()?).ok()?)
            }
            b'n' => self.literal(b"null").map(|()| Value::Null),
            b't' => self.literal(b"true").and_then(|()| bool_cell(ty, true)),
            b'f' => self.literal(b"false").and_then(|()| bool_cell(ty, false)),
            b'-' | b'0'..=b'9' => match self.number()? {
                Number::Int(v) => int_cell(ty, v),
                Number::Float(v) => float_cell(ty, v),
            },
            _ => None,
        }
    }

    /// A number in JSON's grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    ///
    /// Most prices have at most 15 significant digits and no exponent: their value is the digits as an integer
    /// (exact below 2^53) divided by a power of ten (exact up to 10^22), and one IEEE division of two exact values
    /// is correctly rounded, the same double that a full parser gives (Clinger's fast path). Longer numbers and
    /// exponents go to the standard library's parser, which is also correctly rounded; serde_json runs with
    /// `float_roundtrip`, so both paths give the same doubles.
    fn number(&mut self) -> Option<Number> {
        const POW10: [f64; 23] = [
            1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
            1e19, 1e20, 1e21, 1e22,
        ];
        let start = self.i;
        let neg = self.peek() == Some(b'-');
        if neg {
            self.i += 1;
        }
        let mut mantissa = 0u64;
        let int_digits = match self.peek()? {
            b'0' => self.digits(&mut mantissa, 1),
            b'1'..=b'9' => self.digits(&mut mantissa, usize::MAX),
            _ => return None,
        };
        let mut frac_digits = 0;
        if self.peek() == Some(b'.') {
            self.i += 1;
            frac_digits = self.digits(&mut mantissa, usize::MAX);
            if frac_digits == 0 {
                return None;
            }
        }
        let digits = int_digits + frac_digits;
        let mut exponent = false;
        if let Some(b'e' | b'E') = self.peek() {
            exponent = true;
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            let exp_start = self.i;
            while let Some(b'0'..=b'9') = self.peek() {
                self.i += 1;
            }
            if self.i == exp_start {
                return None;
            }
        }
        // ASCII digits, signs, '.', 'e' by construction; only the slow paths need it as text.
        let text = || std::str::from_utf8(&self.b[start..self.i]).ok();
        if frac_digits == 0 && !exponent {
            // "-0", and integers beyond i64, take serde_json's path: it has its own rules for both.
            if neg && mantissa == 0 {
                return None;
            }
            return if digits <= 18 {
                let v = mantissa as i64;
                Some(Number::Int(if neg { -v } else { v }))
            } else {
                text()?.parse().ok().map(Number::Int)
            };
        }
        let v = if !exponent && digits <= 19 && mantissa < (1 << 53) && frac_digits < POW10.len() {
            let v = mantissa as f64 / POW10[frac_digits];
            if neg { -v } else { v }
        } else {
            text()?.parse::<f64>().ok()?
        };
        v.is_finite().then_some(Number::Float(v))
    }

    /// Takes up to `max` decimal digits into `mantissa` (wrapping: only used when 19 digits or fewer); returns how many.
    fn digits(&mut self, mantissa: &mut u64, max: usize) -> usize {
        let mut n = 0;
        while n < max
            && let Some(c @ b'0'..=b'9') = self.peek()
        {
            *mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
            self.i += 1;
            n += 1;
        }
        n
    }
}

enum Number {
    Int(i64),
    Float(f64),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Field;
    use crate::schema::wire::decode_record;
    use proptest::prelude::*;

    fn schema() -> Schema {
        use ColumnType::*;
        Schema {
            name: "t".into(),
            key: None,
            event_time: None,
            fields: vec![
                Field::new("s", "S", String),
                Field::new("d", "D", Date),
                Field::new("x", "X", Double),
                Field::new("n", "N", Bigint),
                Field::new("t", "T", Timestamp),
                Field::new("b", "B", Boolean),
            ],
        }
    }

    fn flat(text: &str) -> Option<Row> {
        let s = schema();
        let mut row = vec![Value::Null; s.fields.len()];
        decode(&s, &FieldIndex::new(&s), text.as_bytes(), &mut row).map(|()| row)
    }

    #[test]
    fn what_it_takes_it_decodes_as_serde_json_does() {
        for text in [
            r#"{"s":"HSI","d":"2020-01-02","x":2568.300049,"n":7,"t":"2024-03-04T09:30:00.125Z","b":true}"#,
            r#" { "S" : "^GSPC" , "X" : -0.5 , "N" : 0.0 , "t" : 1700000000000 , "b" : false } "#,
            r#"{"x":1,"x":2.5,"n":-12,"s":null,"d":null}"#,
            r#"{"x":0.1,"n":123456789012345678}"#,
            r#"{"x":-0.0}"#,
            r#"{"x":9007199254740993.5}"#,
            r#"{"x":1.00000000000000000000000001}"#,
            r#"{"x":123456.7890123456789}"#,
            r#"{}"#,
        ] {
            let row = flat(text).unwrap_or_else(|| panic!("flat path refused {text}"));
            assert_eq!(Ok(row), decode_record(&schema(), text.as_bytes()), "{text}");
        }
        let neg_zero = flat(r#"{"x":-0.0}"#).unwrap();
        assert!(matches!(neg_zero[2], Value::Float(v) if v == 0.0 && v.is_sign_negative()));
    }

    #[test]
    fn anything_unusual_goes_to_serde_json() {
        for text in [
            r#"{"s":"a\"b"}"#,
            r#"{"s":"tab	inside"}"#,
            r#"{"other":1}"#,
            r#"{"x":1e5}"#.replace("1e5", "1e400").as_str(),
            r#"{"n":-0}"#,
            r#"{"n":99999999999999999999}"#,
            r#"{"x":01}"#,
            r#"{"x":1.}"#,
            r#"{"x":.5}"#,
            r#"{"x":1.5.3}"#,
            r#"{"x":[1]}"#,
            r#"{"x":"1.5"}"#,
            r#"{"b":1}"#,
            r#"{"s":true}"#,
            r#"{"x":1,}"#,
            r#"{"x":1} x"#,
            r#"{"x":1"#,
            r#"[1]"#,
            "",
        ] {
            assert_eq!(flat(text), None, "{text}");
        }
    }

    proptest! {
        /// Whenever the flat path answers, serde_json (the reference) gives the same row.
        #[test]
        fn agrees_with_serde_json(
            x in "-?(0|[1-9][0-9]{0,19})(\\.[0-9]{1,25})?([eE][+-]?[0-9]{1,3})?",
            n in "-?(0|[1-9][0-9]{0,20})(\\.0{1,3})?",
            s in "[ -~]{0,8}",
        ) {
            let text = format!(r#"{{"x":{x},"n":{n},"s":"{s}"}}"#);
            if let Some(row) = flat(&text) {
                prop_assert_eq!(Ok(row), decode_record(&schema(), text.as_bytes()));
            }
        }
    }
}
