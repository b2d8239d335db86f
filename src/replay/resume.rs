//! `replay --resume`: where each partition of the topic left off, read from the topic itself.
//!
//! Every record replay sends from a file carries two headers: `ticklake.source`, the file's identity (a hash of
//! its first 64 KiB, its size, and the topic's partition count at the time), and `ticklake.line`, the 1-based
//! line of its CSV row. A row's partition is a function of its key (murmur2; unkeyed rows go round-robin in file
//! order, which a rerun repeats), and a partition's records are stored in line order (one batch in flight per
//! partition, idempotent resends), so the last record of each partition says exactly which of that partition's
//! rows the topic holds: every row up to its line. A rerun skips those and sends the rest. It refuses when the
//! tail was written from another file, under another partition count, or without the headers.

use std::io::Read;

use sha2::{Digest, Sha256};

use super::ReplayError;
use super::source::Input;
use crate::kafka::{Kafka, Record};

pub const H_SOURCE: &str = "ticklake.source";
pub const H_LINE: &str = "ticklake.line";

/// Bytes hashed for a file's identity: enough to tell files apart, cheap for a file of any size.
const IDENTITY_BYTES: usize = 64 * 1024;

/// The `ticklake.source` value of a file: `<hash>:<size>:<partitions>`. `None` for stdin (no identity, no resume).
pub fn source_id(input: &Input, partitions: i32) -> Result<Option<String>, String> {
    let Input::File(path) = input else { return Ok(None) };
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let size = f.metadata().map_err(|e| format!("{}: {e}", path.display()))?.len();
    let mut head = Vec::with_capacity(IDENTITY_BYTES);
    (&mut f).take(IDENTITY_BYTES as u64).read_to_end(&mut head).map_err(|e| format!("{}: {e}", path.display()))?;
    let hash = Sha256::digest(&head);
    let hex: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
    Ok(Some(format!("{hex}:{size}:{partitions}")))
}

/// The line a partition's last record names, checked against this run's source. `Ok(None)`: no headers.
pub fn tail_line(record: &Record, ours: &str, partition: i32) -> Result<u64, String> {
    let header = |name: &str| record.headers.get(name).map(|v| String::from_utf8_lossy(v).into_owned());
    let (Some(source), Some(line)) = (header(H_SOURCE), header(H_LINE)) else {
        return Err(format!(
            "the last record of partition {partition} has no {H_SOURCE}/{H_LINE} headers (another producer, or a \
             replay before ticklake sent them, or --sample/--loop): --resume cannot tell which rows it holds. \
             Replay into a new topic, or without --resume"
        ));
    };
    let line: u64 =
        line.parse().map_err(|_| format!("partition {partition}: {H_LINE} '{line}' is not a line number"))?;
    if source == ours {
        return Ok(line);
    }
    let parts = |s: &str| s.rsplit_once(':').map(|(file, p)| (file.to_string(), p.to_string()));
    match (parts(&source), parts(ours)) {
        (Some((f1, p1)), Some((f2, p2))) if f1 == f2 && p1 != p2 => Err(format!(
            "the topic had {p1} partitions when this file was replayed into it and has {p2} now: rows moved to other \
             partitions, so --resume cannot tell which were sent. Replay into a new topic"
        )),
        _ => Err(format!(
            "the last record of partition {partition} comes from another file (source {source}; this file is {ours}): \
             the file changed since the first run, or another file was replayed into the topic. --resume only \
             continues the same file"
        )),
    }
}

/// Per partition id, the last line the topic holds (0: none).
pub async fn resume_points(
    kafka: &Kafka,
    topic: &str,
    partitions: &[i32],
    ours: &str,
) -> Result<Vec<u64>, ReplayError> {
    let mut points = vec![0; partitions.iter().max().map_or(0, |&m| m as usize + 1)];
    for &p in partitions {
        let pc = kafka.partition(topic, p).await?;
        let offsets = kafka.offsets(&pc).await?;
        if offsets.high_watermark <= offsets.earliest {
            continue;
        }
        let last = offsets.high_watermark - 1;
        let (records, _) = kafka.fetch(&pc, last, 1 << 20, 1000).await?;
        let Some(r) = records.into_iter().find(|r| r.offset == last) else {
            return Err(ReplayError::Config(format!(
                "partition {p}: the record at offset {last} (the last) could not be read; --resume needs it"
            )));
        };
        points[p as usize] = tail_line(&r.record, ours, p).map_err(ReplayError::Config)?;
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(source: Option<&str>, line: Option<&str>) -> Record {
        let mut headers = std::collections::BTreeMap::new();
        if let Some(s) = source {
            headers.insert(H_SOURCE.to_string(), s.as_bytes().to_vec());
        }
        if let Some(l) = line {
            headers.insert(H_LINE.to_string(), l.as_bytes().to_vec());
        }
        Record { key: None, value: Some(vec![]), headers, timestamp: chrono::Utc::now() }
    }

    #[test]
    fn the_tail_of_the_same_file_says_where_to_go_on() {
        assert_eq!(tail_line(&rec(Some("ab:10:3"), Some("42")), "ab:10:3", 0), Ok(42));
        assert!(tail_line(&rec(Some("ab:10:3"), Some("42")), "ab:10:4", 0).unwrap_err().contains("3 partitions"));
        assert!(tail_line(&rec(Some("cd:10:3"), Some("42")), "ab:10:3", 1).unwrap_err().contains("another file"));
        assert!(tail_line(&rec(None, None), "ab:10:3", 2).unwrap_err().contains("no ticklake.source"));
        assert!(tail_line(&rec(Some("ab:10:3"), Some("x")), "ab:10:3", 0).is_err());
    }

    #[test]
    fn a_file_is_known_by_its_head_and_size() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.csv");
        std::fs::write(&a, "h\n1\n").unwrap();
        let id = source_id(&Input::File(a.clone()), 3).unwrap().unwrap();
        assert!(id.ends_with(":4:3"), "{id}");
        assert_eq!(source_id(&Input::File(a.clone()), 3).unwrap().unwrap(), id);
        std::fs::write(&a, "h\n2\n").unwrap();
        assert_ne!(source_id(&Input::File(a), 3).unwrap().unwrap(), id, "an edit changes it");
        assert_eq!(source_id(&Input::Stdin, 3).unwrap(), None);
    }
}
