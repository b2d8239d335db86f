//! Stage 3 of replay: typed row → Kafka record (key, JSON value, timestamp) and its partition.

use chrono::{DateTime, Utc};

use crate::kafka::{Record, partition_for_key};
use crate::schema::{Row, Schema, wire};

/// What the record timestamp carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TimestampMode {
    /// The row's event time (its date at midnight UTC, or its timestamp).
    Event,
    /// The time the row was sent.
    Now,
}

/// Encodes rows of one schema for a topic with a known partition count.
#[derive(Debug)]
pub struct RecordEncoder {
    schema: Schema,
    key: Option<usize>,
    event_time: Option<usize>,
    partitions: i32,
    mode: TimestampMode,
    /// Round-robin counter for unkeyed rows.
    next_unkeyed: i32,
    /// Rows whose event time is before 1970: Kafka timestamps must be non-negative (the Java producer refuses
    /// them), so these get the send time; the event time is still in the value.
    pub pre_epoch: u64,
    /// Rows whose event time is more than `MAX_FUTURE_MS` ahead of the send time: Apache Kafka 4 refuses such
    /// timestamps by default (`message.timestamp.after.max.ms`, 1 h), so these get the send time too.
    pub future: u64,
    /// Said once: the event times are older than a broker's default time retention keeps.
    warned_old: bool,
}

/// Kafka's default time retention (`retention.ms`, 7 days).
const DEFAULT_RETENTION_MS: i64 = 7 * 86_400_000;

/// How far ahead of now a record timestamp may be (Apache Kafka 4's default `message.timestamp.after.max.ms`).
pub const MAX_FUTURE_MS: i64 = 3_600_000;

/// One encoded record bound for `partition`.
#[derive(Debug)]
pub struct Encoded {
    pub partition: i32,
    pub record: Record,
}

impl RecordEncoder {
    pub fn new(schema: Schema, partitions: i32, mode: TimestampMode) -> Self {
        RecordEncoder {
            key: schema.key_index(),
            event_time: schema.event_time_index(),
            schema,
            partitions,
            mode,
            next_unkeyed: 0,
            pre_epoch: 0,
            future: 0,
            warned_old: false,
        }
    }

    /// The partition `row` goes to: its key's murmur2 partition, or the next one round-robin for an unkeyed row
    /// (deterministic in file order, so a rerun puts every row where the first run did).
    pub fn partition(&mut self, row: &Row) -> i32 {
        match self.key.and_then(|i| row[i].as_str()) {
            Some(k) => partition_for_key(k.as_bytes(), self.partitions),
            None => {
                self.next_unkeyed = (self.next_unkeyed + 1) % self.partitions;
                self.next_unkeyed
            }
        }
    }

    /// Event time of a row in epoch ms, if the schema has one.
    pub fn event_millis(&self, row: &Row) -> Option<i64> {
        self.event_time.and_then(|i| row[i].as_epoch_millis())
    }

    /// Encodes `row` for `partition` (from `partition`); `source(i)` may give field `i`'s CSV text, written
    /// verbatim when it is a JSON number. (The `ticklake.source`/`ticklake.line` headers are written with the batch,
    /// `kafka::batch`.)
    pub fn encode<'a>(
        &mut self,
        row: &Row,
        partition: i32,
        source: impl Fn(usize) -> Option<&'a [u8]>,
        value_capacity: usize,
    ) -> Encoded {
        let mut value = Vec::with_capacity(value_capacity);
        wire::encode_row_verbatim(&self.schema, row, source, &mut value);
        let key = self.key.and_then(|i| row[i].as_str()).map(|k| k.as_bytes().to_vec());
        let ts = match (self.mode, self.event_millis(row)) {
            (TimestampMode::Event, Some(ms)) if ms < 0 => {
                self.pre_epoch += 1;
                None
            }
            (TimestampMode::Event, Some(ms)) => {
                // One clock read per row, not two (perf: the clock was 1.6% of a flat-out replay's CPU).
                let now = Utc::now().timestamp_millis();
                if ms > now + MAX_FUTURE_MS {
                    self.future += 1;
                    None
                } else {
                    if !self.warned_old && ms < now - DEFAULT_RETENTION_MS {
                        self.warned_old = true;
                        tracing::warn!(
                            "the rows' event times become their Kafka timestamps (--timestamp event), and some are older than 7 days: under time retention (retention.ms, 7 days by default) the broker deletes such records at its next retention check (every 5 min by default), before a sink may have read them. Keep them with retention.ms=-1 on the topic (kafka-configs --alter --entity-type topics --entity-name TOPIC --add-config retention.ms=-1), or pass --timestamp now"
                        );
                    }
                    DateTime::from_timestamp_millis(ms)
                }
            }
            _ => None,
        };
        let record =
            Record { key, value: Some(value), headers: Default::default(), timestamp: ts.unwrap_or_else(now_millis) };
        Encoded { partition, record }
    }
}

/// Now, truncated to milliseconds (Kafka's timestamp resolution).
fn now_millis() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).expect("now is representable")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Value;

    fn row(sym: &str, day: i32) -> Row {
        let mut r = vec![Value::Str(sym.into()), Value::Date(day)];
        r.extend(std::iter::repeat_n(Value::Float(1.0), 5));
        r.push(Value::Int(7));
        r.push(Value::Float(2.0));
        r
    }

    #[test]
    fn key_partition_and_event_timestamp() {
        let mut enc = RecordEncoder::new(Schema::indices(), 3, TimestampMode::Event);
        let p = enc.partition(&row("HSI", 1));
        let e = enc.encode(&row("HSI", 1), p, |_| None, 256);
        assert_eq!(e.record.key.as_deref(), Some(&b"HSI"[..]));
        assert_eq!(e.partition, partition_for_key(b"HSI", 3));
        assert_eq!(e.record.timestamp.timestamp_millis(), 86_400_000);
        let decoded = wire::decode_record(&Schema::indices(), e.record.value.as_ref().unwrap()).unwrap();
        assert_eq!(decoded, row("HSI", 1));
    }

    #[test]
    fn pre_epoch_rows_get_the_send_time() {
        let mut enc = RecordEncoder::new(Schema::indices(), 1, TimestampMode::Event);
        let before = Utc::now().timestamp_millis();
        let e = enc.encode(&row("NYA", -1000), 0, |_| None, 256);
        assert!(e.record.timestamp.timestamp_millis() >= before);
        assert_eq!(enc.pre_epoch, 1);
    }
}
