//! `ticklake consume`: a console consumer. Records as JSON lines on stdout, like the console tools people know.
//!
//! rskafka has no consumer groups: this reads partitions directly from a start offset and commits nothing.

use std::io::Write;

use crate::kafka::{Kafka, KafkaConfig};
use crate::schema::value::format_timestamp;
use crate::shutdown::Shutdown;

/// Bytes asked for per fetch.
const FETCH_MAX_BYTES: i32 = 4 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Earliest,
    /// The high watermark: only records produced from now on.
    Latest,
    Offset(i64),
}

#[derive(Debug, Clone)]
pub struct ConsumeConfig {
    pub topic: String,
    pub partition: Option<i32>,
    pub start: StartAt,
    pub limit: Option<u64>,
    pub exit_at_end: bool,
    /// Wrap each value with partition, offset, key and timestamp.
    pub meta: bool,
    /// Print only the count at the end.
    pub count: bool,
}

/// One line of output for a record: the value's bytes as they are when they are JSON (no re-ordering or
/// re-formatting of numbers), else the value as a JSON string.
pub fn render(meta: bool, partition: i32, rec: &crate::kafka::RecordAndOffset) -> String {
    let as_json = |bytes: Option<&Vec<u8>>| -> String {
        match bytes {
            None => "null".into(),
            Some(v) if serde_json::from_slice::<serde::de::IgnoredAny>(v).is_ok() => {
                String::from_utf8_lossy(v).trim().to_string()
            }
            Some(v) => serde_json::Value::from(String::from_utf8_lossy(v).into_owned()).to_string(),
        }
    };
    let value = as_json(rec.record.value.as_ref());
    if !meta {
        return value;
    }
    let key = match &rec.record.key {
        None => "null".to_string(),
        Some(k) => serde_json::Value::from(String::from_utf8_lossy(k).into_owned()).to_string(),
    };
    format!(
        r#"{{"partition":{partition},"offset":{},"timestamp":"{}","key":{key},"value":{value}}}"#,
        rec.offset,
        format_timestamp(rec.record.timestamp.timestamp_millis()),
    )
}

/// Prints records until the limit, the end (with `exit_at_end`) or a stop. Returns how many were printed.
pub async fn run(kafka_cfg: KafkaConfig, cfg: ConsumeConfig, shutdown: Shutdown) -> Result<u64, crate::kafka::Error> {
    let kafka = Kafka::connect(kafka_cfg).await?;
    let topic = kafka.topic(&cfg.topic).await?;
    let ids: Vec<i32> = match cfg.partition {
        Some(p) if topic.partitions.contains(&p) => vec![p],
        Some(p) => {
            return Err(crate::kafka::Error::Config(format!(
                "topic '{}' has no partition {p}; it has {:?}",
                cfg.topic, topic.partitions
            )));
        }
        None => topic.partitions.clone(),
    };
    struct Cursor {
        client: std::sync::Arc<rskafka::client::partition::PartitionClient>,
        next: i64,
        end: i64,
    }
    let mut cursors = Vec::new();
    for p in ids {
        let client = kafka.partition(&cfg.topic, p).await?;
        let o = kafka.offsets(&client).await?;
        let next = match cfg.start {
            StartAt::Earliest => o.earliest,
            StartAt::Latest => o.high_watermark,
            StartAt::Offset(n) => n.max(o.earliest),
        };
        cursors.push(Cursor { client, next, end: o.high_watermark });
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut printed = 0u64;
    let wait_ms = if cursors.len() > 1 { 100 } else { 500 };
    loop {
        let mut all_done = true;
        for c in &mut cursors {
            if cfg.exit_at_end && c.next >= c.end {
                continue;
            }
            all_done = false;
            let (records, _hw) = tokio::select! {
                r = kafka.fetch(&c.client, c.next, FETCH_MAX_BYTES, wait_ms) => r?,
                _ = shutdown.wait() => break,
            };
            for rec in records {
                if rec.offset < c.next {
                    continue; // a compressed batch starts before the offset asked for
                }
                c.next = rec.offset + 1;
                if cfg.exit_at_end && rec.offset >= c.end {
                    continue;
                }
                if !cfg.count && writeln!(out, "{}", render(cfg.meta, c.client.partition(), &rec)).is_err() {
                    return Ok(printed); // stdout closed (`| head`): not an error
                }
                printed += 1;
                if cfg.limit.is_some_and(|l| printed >= l) {
                    break;
                }
            }
            if cfg.limit.is_some_and(|l| printed >= l) {
                break;
            }
        }
        let limit_reached = cfg.limit.is_some_and(|l| printed >= l);
        if out.flush().is_err() || shutdown.is_set() || (cfg.exit_at_end && all_done) || limit_reached {
            if cfg.count {
                let _ = writeln!(out, "{printed}");
            }
            return Ok(printed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::{Record, RecordAndOffset};

    fn rec(value: &[u8]) -> RecordAndOffset {
        RecordAndOffset {
            record: Record {
                key: Some(b"HSI".to_vec()),
                value: Some(value.to_vec()),
                headers: Default::default(),
                timestamp: chrono::DateTime::from_timestamp_millis(0).unwrap(),
            },
            offset: 7,
        }
    }

    #[test]
    fn values_are_printed_as_sent() {
        let r = rec(br#"{"z":1.50,"a":2}"#);
        assert_eq!(render(false, 0, &r), r#"{"z":1.50,"a":2}"#);
        assert_eq!(
            render(true, 3, &r),
            r#"{"partition":3,"offset":7,"timestamp":"1970-01-01T00:00:00.000Z","key":"HSI","value":{"z":1.50,"a":2}}"#
        );
        assert_eq!(render(false, 0, &rec(b"not \"json")), r#""not \"json""#);
    }
}
