//! The properties the fuzz targets check (`proto-tests/fuzz/`), here so that unit tests run them too.
//!
//! Hostile input must never panic and never allocate without bound: it is parsed or rejected with a reason, and
//! whatever is accepted round-trips exactly.

use csv::ByteRecord;

use crate::replay::row::RowParser;
use crate::schema::{Schema, wire};

/// CSV bytes (after each preset's header) → rows → the JSON replay sends → decoded back: the same row, by both
/// decoders. A row the parser refuses must name a reason. Returns the rows accepted.
pub fn csv_row(data: &[u8]) -> usize {
    let mut accepted = 0;
    for schema in Schema::presets() {
        let header: Vec<String> = schema.fields.iter().map(|f| f.source_name().to_string()).collect();
        let mut text = header.join(",").into_bytes();
        text.push(b'\n');
        text.extend_from_slice(data);
        let parser = RowParser::new(schema.clone(), &header).expect("a preset binds its own header");
        let index = wire::FieldIndex::new(&schema);
        let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(&text[..]);
        let mut rec = ByteRecord::new();
        while let Ok(true) = reader.read_byte_record(&mut rec) {
            match parser.parse(&rec) {
                Ok(row) => {
                    let mut json = Vec::new();
                    wire::encode_row_verbatim(&schema, &row, |i| parser.cell(&rec, i), &mut json);
                    let back = wire::decode_record(&schema, &json).unwrap_or_else(|e| {
                        panic!("replay's JSON {} does not decode: {e}", String::from_utf8_lossy(&json))
                    });
                    assert_eq!(back, row, "round trip through {}", String::from_utf8_lossy(&json));
                    assert_eq!(wire::decode_record_fast(&schema, &index, &json).ok(), Some(row));
                    accepted += 1;
                }
                Err(e) => assert!(!e.reason.is_empty()),
            }
        }
    }
    accepted
}

/// Any record value → the sink's decoder: a row or a reject with a reason; a row re-encodes and decodes to itself,
/// and the fast decoder agrees with the reference one.
pub fn record_json(data: &[u8]) {
    let schema = Schema::indices();
    let index = wire::FieldIndex::new(&schema);
    let fast = wire::decode_record_fast(&schema, &index, data);
    let slow = wire::decode_record(&schema, data);
    assert_eq!(fast.is_ok(), slow.is_ok(), "decoders disagree on {}", String::from_utf8_lossy(data));
    match slow {
        Ok(row) => {
            assert_eq!(fast.ok().as_ref(), Some(&row));
            let mut json = Vec::new();
            wire::encode_row(&schema, &row, &mut json);
            assert_eq!(wire::decode_record(&schema, &json).ok(), Some(row));
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The seeds the fuzz corpus starts from, plus cases fuzzing found worth keeping.
    const CSV_SEEDS: &[&[u8]] = &[
        b"HSI,2020-01-02,1,2,0.5,1.5,1.5,100,0.2\n",
        b"2024-03-04T09:30:00.123Z,AAPL,187.5,100\n",
        b"\"x,y\",2020-01-02,1e308,-0,0.1,,,,\n",
        b"a,b\n\"unclosed\n",
        b"HSI,2020-02-30,NaN,inf,1,1,1,1,1\n",
        b"\xff\xfe,2020-01-02,1,1,1,1,1,1,1\n",
        // Found by `just fuzz`: a timestamp in the year 19574.
        b"555555555555554,\t\x001,,\n",
    ];
    const JSON_SEEDS: &[&[u8]] = &[
        br#"{"symbol":"HSI","trade_date":"2020-01-02","close":1.5}"#,
        br#"{"Index":"HSI","Date":"1987-01-02","Adj Close":2.5,"Volume":"7"}"#,
        br#"{"symbol":"HSI","trade_date":"2020-01-02","close":"text"}"#,
        br#"[1,2]"#,
        br#"{"symbol":"HSI","symbol":"X","trade_date":"2020-01-02"}"#,
        b"{\"symbol\":\"\\ud800\",\"trade_date\":\"2020-01-02\"}",
        br#"{"symbol":"HSI","trade_date":"2020-01-02","volume":1e400}"#,
        // Found by `just fuzz`: invalid UTF-8 in a field the schema does not read.
        b"{\"Index\":\"HSI\",\"Dndex\":\"HS\x8b\",\"Date\":\"1988-01-02\",\"Adj Cu-e\":\"7\"}",
        b"",
    ];

    #[test]
    fn seeds_hold_the_properties() {
        let accepted: usize = CSV_SEEDS.iter().map(|s| csv_row(s)).sum();
        assert!(accepted >= 3, "the seeds must exercise the round trip, not only rejections ({accepted})");
        for s in JSON_SEEDS {
            record_json(s);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn random_bytes_hold_the_properties(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = csv_row(&data);
            record_json(&data);
        }

        #[test]
        fn csv_like_text_holds_the_properties(data in "[A-Z^.]{0,6},20[0-9]{2}-[01][0-9]-[0-3][0-9],[-0-9.e]{0,8},[0-9.]{0,5},[0-9]{0,4},,[0-9.]{0,4},[0-9]{0,6},[0-9.]{0,3}\n") {
            let _ = csv_row(data.as_bytes());
        }
    }
}
