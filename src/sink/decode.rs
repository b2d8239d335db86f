//! Sink stage 2: Kafka record → lake row, or a reject with its reason (never dropped silently).

use base64::Engine;

use crate::kafka::RecordAndOffset;
pub use crate::lake::state::Reject;
use crate::schema::{Row, Schema, wire};

/// Records larger than this are rejected rather than decoded (a bound on what one record can cost).
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct Decoder {
    pub schema: Schema,
    pub topic: String,
    pub max_record_bytes: usize,
    index: wire::FieldIndex,
}

impl Decoder {
    pub fn new(schema: Schema, topic: &str, max_record_bytes: usize) -> Decoder {
        Decoder { index: wire::FieldIndex::new(&schema), schema, topic: topic.into(), max_record_bytes }
    }

    /// A reject of `rec` for `reason`.
    pub fn reject(&self, partition: i32, rec: &RecordAndOffset, reason: String) -> Reject {
        let bytes = rec.record.value.as_deref().unwrap_or_default();
        Reject {
            topic: self.topic.clone(),
            partition,
            offset: rec.offset,
            timestamp_ms: rec.record.timestamp.timestamp_millis(),
            reason,
            raw_base64: base64::engine::general_purpose::STANDARD
                .encode(&bytes[..bytes.len().min(self.max_record_bytes)]),
        }
    }

    /// Decodes `rec` into `row` (reused from record to record), or says why it is a reject. Non-null fields the
    /// schema lacks land in `unknown` (the row is decoded without them): the caller makes them columns.
    pub fn decode(
        &self,
        partition: i32,
        rec: &RecordAndOffset,
        row: &mut Row,
        unknown: &mut Vec<wire::UnknownField>,
    ) -> Result<(), Reject> {
        let bytes = rec.record.value.as_deref().unwrap_or_default();
        let reject = |reason: String| self.reject(partition, rec, reason);
        if rec.record.value.is_none() {
            return Err(reject("record has no value (a tombstone)".into()));
        }
        if bytes.len() > self.max_record_bytes {
            return Err(reject(format!(
                "record is {} bytes, over the {}-byte limit (--max-record-bytes); the first {} bytes are kept here",
                bytes.len(),
                self.max_record_bytes,
                self.max_record_bytes
            )));
        }
        wire::decode_record_into(&self.schema, &self.index, bytes, row, unknown).map_err(|e| reject(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::Record;
    use crate::schema::Value;

    fn rec(offset: i64, value: &[u8]) -> RecordAndOffset {
        RecordAndOffset {
            record: Record {
                key: None,
                value: Some(value.to_vec()),
                headers: Default::default(),
                timestamp: chrono::DateTime::from_timestamp_millis(5).unwrap(),
            },
            offset,
        }
    }

    #[test]
    fn rows_and_rejects() {
        let d = Decoder::new(Schema::indices(), "t", 200);
        let (mut row, mut unknown) = (Vec::new(), Vec::new());
        d.decode(1, &rec(9, br#"{"symbol":"HSI","trade_date":"2020-01-02","close":1.5}"#), &mut row, &mut unknown)
            .unwrap();
        assert_eq!((row.len(), &row[0], &row[5]), (9, &Value::Str("HSI".into()), &Value::Float(1.5)));
        assert!(unknown.is_empty());
        let extra = br#"{"symbol":"HSI","trade_date":"2020-01-02","close":1.5,"venue":"X","gone":null}"#;
        d.decode(1, &rec(9, extra), &mut row, &mut unknown).unwrap();
        assert_eq!(unknown, [("venue".to_string(), serde_json::json!("X"))], "a new field is reported, a null is not");
        for (bytes, why) in [
            (&b"junk{"[..], "not JSON"),
            (br#""HSI""#, "not an object"),
            (br#"{"symbol":"HSI","trade_date":"2020-01-02","close":"high"}"#, "column 'close'"),
            (&[b'x'; 300][..], "over the 200-byte limit"),
        ] {
            let r = d.decode(1, &rec(10, bytes), &mut row, &mut unknown).unwrap_err();
            assert!(r.reason.contains(why), "{} vs {why}", r.reason);
            assert_eq!((r.partition, r.offset), (1, 10));
        }
    }
}
