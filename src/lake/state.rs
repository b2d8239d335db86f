//! The lake's own bookkeeping under `_ticklake/` (hidden from Athena: the name starts with `_`).
//!
//! - `_ticklake/checkpoints/<topic>/<partition>.json`: the exactly-once state of one Kafka partition.
//! - `_ticklake/schemas/<topic>.toml`: the schema the lake was started with, reused on every restart.
//! - `_ticklake/rejects/<topic>/<topic>-<partition>-<first offset>.jsonl`: records that could not become rows.
//!
//! Data files are named from their cut, never randomly: `<hive path>/<topic>-<partition>-<first offset>.parquet`,
//! the offset zero-padded to 20 digits so names sort by offset. Redoing a cut rewrites the same names.

use serde::{Deserialize, Serialize};

pub const STATE_PREFIX: &str = "_ticklake";

/// A record that could not become a row: one JSON line of `_ticklake/rejects/<topic>/...jsonl`, written by the sink
/// and read back by `lake verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
    pub reason: String,
    /// The record value, base64.
    pub raw_base64: String,
}

/// A cut that was decided (and recorded) but whose files may not all be stored yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCut {
    pub first: i64,
    pub last: i64,
}

/// The exactly-once state of one Kafka partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub topic: String,
    pub partition: i32,
    /// The offset this lake started from on this partition: the lake covers `[start_offset, next_offset)`.
    pub start_offset: i64,
    /// Every offset below this is in the lake, as a row or as a reject.
    pub next_offset: i64,
    /// Set between "cut decided" and "all of the cut's files stored": a restart redoes exactly this cut.
    pub pending: Option<PendingCut>,
    /// The object keys the pending cut writes. A redo under other flags (`--max-rows`, `--partition-by`, ...)
    /// plans other keys; it deletes these first, so the interrupted attempt leaves nothing behind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_keys: Vec<String>,
    /// Offsets that Kafka had already deleted (retention) when the sink was told to skip ahead.
    #[serde(default)]
    pub skipped: Vec<PendingCut>,
    /// The sink that wrote it (its lease's writer id). A new holder rewrites the checkpoint with its id, so the
    /// object's version changes and a paused former holder's next conditional write is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<String>,
    /// The version last read or written (not stored): every checkpoint write is conditional on it.
    #[serde(skip)]
    pub etag: Option<String>,
}

impl Checkpoint {
    pub fn new(topic: &str, partition: i32, start: i64) -> Checkpoint {
        Checkpoint {
            topic: topic.into(),
            partition,
            start_offset: start,
            next_offset: start,
            pending: None,
            pending_keys: vec![],
            skipped: vec![],
            writer: None,
            etag: None,
        }
    }
}

pub fn checkpoint_prefix(topic: &str) -> String {
    format!("{STATE_PREFIX}/checkpoints/{topic}/")
}

pub fn checkpoint_key(topic: &str, partition: i32) -> String {
    format!("{}{partition}.json", checkpoint_prefix(topic))
}

pub fn schema_key(topic: &str) -> String {
    format!("{STATE_PREFIX}/schemas/{topic}.toml")
}

pub fn rejects_prefix(topic: &str) -> String {
    format!("{STATE_PREFIX}/rejects/{topic}/")
}

pub fn rejects_key(topic: &str, partition: i32, first: i64) -> String {
    format!("{}{}-{partition}-{first:020}.jsonl", rejects_prefix(topic), file_stem(topic))
}

/// Topic as used in file names: never with a leading `_` or `.` (Athena would skip the file).
fn file_stem(topic: &str) -> &str {
    let s = topic.trim_start_matches(['_', '.']);
    if s.is_empty() { "topic" } else { s }
}

/// `<hive path>/<topic>-<partition>-<first offset>.parquet`.
pub fn data_key(hive_path: &str, topic: &str, partition: i32, first_offset: i64) -> String {
    let name = format!("{}-{partition}-{first_offset:020}.parquet", file_stem(topic));
    if hive_path.is_empty() { name } else { format!("{hive_path}/{name}") }
}

/// Parses a data file name back into (partition, first offset) for a topic; `None` if it is not ours.
pub fn parse_data_key(key: &str, topic: &str) -> Option<(i32, i64)> {
    let name = key.rsplit('/').next()?;
    let rest = name.strip_prefix(file_stem(topic))?.strip_prefix('-')?.strip_suffix(".parquet")?;
    let (p, o) = rest.rsplit_once('-')?;
    if o.len() != 20 {
        return None;
    }
    Some((p.parse().ok()?, o.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_deterministic_and_parse_back() {
        let k = data_key("year=2020/symbol=^GSPC", "indices", 3, 42);
        assert_eq!(k, "year=2020/symbol=^GSPC/indices-3-00000000000000000042.parquet");
        assert_eq!(parse_data_key(&k, "indices"), Some((3, 42)));
        assert_eq!(parse_data_key("x/other-3-00000000000000000042.parquet", "indices"), None);
        assert_eq!(data_key("", "__private", 0, 0), "private-0-00000000000000000000.parquet");
        assert!(rejects_key("t", 1, 7).starts_with("_ticklake/rejects/t/t-1-"));
    }
}
