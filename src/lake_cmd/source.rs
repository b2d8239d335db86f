//! `lake verify --source FILE`: exactly once from the CSV file to the lake.
//!
//! Two links, each checked from what it holds. CSV -> topic: every record replay sends from a file names its line
//! (`replay::resume`'s headers), so reading the topic tells, per CSV line, how many records it became: every good
//! line must be there once, and no line that replay rejects (the same schema decides) at all. Topic -> lake: the
//! hive verify proves every offset from the lake's start to its checkpoint is in the lake once; with the
//! checkpoint at the topic's end, every record of the topic is. Together: every CSV row (minus the rejects) is in
//! the lake exactly once. The topic must still hold the file's records (retention), which the check says if not.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use crate::kafka::{Kafka, KafkaConfig};
use crate::replay::resume::{H_LINE, H_SOURCE, source_id};
use crate::replay::row::RowParser;
use crate::replay::source::{CsvSource, Input};

/// What the CSV file and the topic hold, line by line.
#[derive(Debug, Default)]
pub struct SourceReport {
    pub file: String,
    pub rows: u64,
    pub rejected: u64,
    /// Good lines with no record in the topic (first few).
    pub missing: Vec<u64>,
    pub missing_count: u64,
    /// Lines with more than one record (first few).
    pub twice: Vec<u64>,
    pub twice_count: u64,
    /// Records of rejected lines (never expected).
    pub rejected_sent: u64,
    /// Records of the topic from other sources.
    pub other: u64,
    /// Per partition: the topic's start and end, and whether it starts at 0 (retention deleted nothing).
    pub topic: BTreeMap<i32, (i64, i64)>,
}

impl SourceReport {
    pub fn ok(&self) -> bool {
        self.missing_count == 0 && self.twice_count == 0 && self.rejected_sent == 0
    }

    pub fn render(&self) -> String {
        let mut out = format!(
            "source {}: {} row(s), {} rejected by the schema (never sent)\n",
            self.file, self.rows, self.rejected
        );
        let good = self.rows - self.rejected;
        out.push_str(&format!(
            "topic: {} of {good} good line(s) once, {} missing, {} more than once, {} rejected line(s) sent; {} record(s) of other sources\n",
            good - self.missing_count - self.twice_count,
            self.missing_count,
            self.twice_count,
            self.rejected_sent,
            self.other
        ));
        if !self.missing.is_empty() {
            out.push_str(&format!("  missing lines, e.g. {:?}\n", self.missing));
            if self.topic.values().any(|&(start, _)| start > 0) {
                out.push_str("  (the topic no longer starts at offset 0: retention may have deleted them)\n");
            }
        }
        if !self.twice.is_empty() {
            out.push_str(&format!("  lines sent more than once, e.g. {:?}\n", self.twice));
        }
        out
    }
}

/// Reads `file` and the topic's records of it.
pub async fn check(kafka_cfg: KafkaConfig, file: &std::path::Path, topic: &str) -> crate::Result<SourceReport> {
    let kafka = Kafka::connect(kafka_cfg).await?;
    let info = kafka.topic(topic).await?;
    let input = Input::File(file.to_path_buf());
    let ours =
        source_id(&input, info.partitions.len() as i32).map_err(crate::Error::Usage)?.expect("a file has an identity");
    // Which lines are good rows: the same reading and typing replay does (preset or inferred schema).
    let path = file.to_path_buf();
    let (all_lines, rejected) = tokio::task::spawn_blocking(move || -> Result<(Vec<u64>, HashSet<u64>), String> {
        let mut src = CsvSource::new(&Input::File(path), Arc::new(AtomicU64::new(0))).map_err(|e| e.to_string())?;
        let (schema, _) = src.resolve_schema(None).map_err(|e| e.to_string())?;
        let parser = RowParser::new(schema, &src.header).map_err(|e| e.to_string())?;
        let (mut lines, mut rejected) = (Vec::new(), HashSet::new());
        while let Some((line, rec)) = src.next_row().map_err(|e| e.to_string())? {
            lines.push(line);
            if parser.parse(&rec).is_err() {
                rejected.insert(line);
            }
        }
        Ok((lines, rejected))
    })
    .await
    .map_err(|e| crate::Error::Internal(e.to_string()))?
    .map_err(crate::Error::Usage)?;
    let mut report = SourceReport {
        file: file.display().to_string(),
        rows: all_lines.len() as u64,
        rejected: rejected.len() as u64,
        ..Default::default()
    };
    // Every record of the topic: its line, if it is of this file.
    let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
    for &p in &info.partitions {
        let pc = kafka.partition(topic, p).await?;
        let offsets = kafka.offsets(&pc).await?;
        report.topic.insert(p, (offsets.earliest, offsets.high_watermark));
        let mut next = offsets.earliest;
        while next < offsets.high_watermark {
            let (records, _) = kafka.fetch(&pc, next, 8 << 20, 1000).await?;
            if records.is_empty() {
                break;
            }
            let from = next;
            for r in records.into_iter().filter(|r| r.offset >= from) {
                next = r.offset + 1;
                let h = |name: &str| r.record.headers.get(name).map(|v| String::from_utf8_lossy(v).into_owned());
                match (h(H_SOURCE), h(H_LINE).and_then(|l| l.parse::<u64>().ok())) {
                    (Some(s), Some(line)) if s == ours => *seen.entry(line).or_default() += 1,
                    _ => report.other += 1,
                }
            }
        }
    }
    // Compare line by line: every line the CSV reader numbered is either good (once) or rejected (never).
    for line in all_lines {
        let n = seen.remove(&line).unwrap_or(0);
        if rejected.contains(&line) {
            report.rejected_sent += n as u64;
        } else if n == 0 {
            report.missing_count += 1;
            if report.missing.len() < 10 {
                report.missing.push(line);
            }
        } else if n > 1 {
            report.twice_count += 1;
            if report.twice.len() < 10 {
                report.twice.push(line);
            }
        }
    }
    // Lines the file does not have (a record naming line 9999 of a 4000-line file): not this file's.
    report.other += seen.values().map(|&n| n as u64).sum::<u64>();
    Ok(report)
}
