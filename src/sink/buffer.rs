//! Sink stage 3: buffer one Kafka partition's rows by hive partition, and turn them into a cut.
//!
//! A cut is everything buffered for one Kafka partition, offsets `first..=last`: one or more Parquet files per hive
//! partition (rows sorted by `--sort-by`, then offset; split at `--max-rows`) plus the rejects. Its content
//! depends only on the records in `first..=last`, so redoing a cut after a crash yields the same files.

use std::collections::HashMap;
use std::time::Instant;

use super::decode::Reject;
use crate::lake::parquet::LakeRow;
use crate::lake::partition::PartitionSpec;
use crate::lake::state::data_key;
use crate::schema::Value;

#[derive(Debug)]
pub struct PartitionBuffer {
    pub partition: i32,
    /// First offset covered by the buffer (the checkpoint's `next_offset` when it was started).
    pub first: i64,
    /// Last offset taken (row or reject); `first - 1` when empty.
    pub last: i64,
    /// Rows per hive partition: (path, rows), in order of first appearance.
    groups: Vec<(String, Vec<LakeRow>)>,
    /// Partition key (`PartitionSpec::write_key`) → index in `groups`.
    index: HashMap<Vec<u8>, usize>,
    key: Vec<u8>,
    pub rejects: Vec<Reject>,
    pub rows: usize,
    /// Approximate in-memory bytes (for the flush thresholds and the shared budget).
    pub bytes: usize,
    pub started: Option<Instant>,
}

/// One file of a cut, ready to encode.
#[derive(Debug)]
pub struct CutFile {
    pub key: String,
    pub rows: Vec<LakeRow>,
}

#[derive(Debug)]
pub struct Cut {
    pub partition: i32,
    pub first: i64,
    pub last: i64,
    pub files: Vec<CutFile>,
    pub rejects: Vec<Reject>,
    pub rows: usize,
}

impl PartitionBuffer {
    pub fn new(partition: i32, first: i64) -> Self {
        PartitionBuffer {
            partition,
            first,
            last: first - 1,
            groups: Vec::new(),
            index: HashMap::new(),
            key: Vec::new(),
            rejects: vec![],
            rows: 0,
            bytes: 0,
            started: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.last < self.first
    }

    fn touch(&mut self, offset: i64) {
        debug_assert!(offset > self.last, "offsets only move forward");
        self.last = offset;
        self.started.get_or_insert_with(Instant::now);
    }

    pub fn push_row(&mut self, spec: &PartitionSpec, row: LakeRow) {
        self.touch(row.kafka_offset);
        self.rows += 1;
        self.bytes += row.approx_bytes();
        spec.write_key(&row.values, &mut self.key);
        match self.index.get(&self.key[..]) {
            Some(&g) => self.groups[g].1.push(row),
            None => {
                let path = spec.hive_path(&row.values);
                self.bytes += path.len() + self.key.len() + 64;
                self.index.insert(self.key.clone(), self.groups.len());
                self.groups.push((path, vec![row]));
            }
        }
    }

    pub fn push_reject(&mut self, r: Reject) {
        self.touch(r.offset);
        self.bytes += r.raw_base64.len() + r.reason.len() + 64;
        self.rejects.push(r);
    }

    /// Marks offsets up to `offset` as covered without a row (used when Kafka skips offsets, e.g. compaction or
    /// transaction markers, so that the cut's range still ends where consumption ended).
    pub fn cover_to(&mut self, offset: i64) {
        if offset > self.last {
            self.last = offset;
        }
    }

    /// Takes everything buffered as a cut; `sort` gives the schema column indices to order rows by.
    pub fn cut(&mut self, topic: &str, sort: &[usize], max_rows_per_file: usize) -> Cut {
        let next_first = self.last + 1;
        let mut groups = std::mem::take(&mut self.groups);
        groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut files = Vec::new();
        for (path, mut rows) in groups {
            // Offsets are unique, so the order is total and an unstable sort (no merge buffer) is deterministic.
            rows.sort_unstable_by(|a, b| {
                for &i in sort {
                    let o = cmp_values(&a.values[i], &b.values[i]);
                    if o != std::cmp::Ordering::Equal {
                        return o;
                    }
                }
                a.kafka_offset.cmp(&b.kafka_offset)
            });
            // Split by moving rows, not copying them: a cut may hold most of the memory budget.
            let per_file = max_rows_per_file.max(1);
            while !rows.is_empty() {
                let rest = rows.split_off(rows.len().min(per_file));
                let chunk = std::mem::replace(&mut rows, rest);
                let first_offset = chunk.iter().map(|r| r.kafka_offset).min().expect("chunks are never empty");
                files.push(CutFile { key: data_key(&path, topic, self.partition, first_offset), rows: chunk });
            }
        }
        let cut = Cut {
            partition: self.partition,
            first: self.first,
            last: self.last,
            files,
            rejects: std::mem::take(&mut self.rejects),
            rows: self.rows,
        };
        *self = PartitionBuffer::new(self.partition, next_first);
        cut
    }
}

/// Total order for sorting rows: nulls last, then by value.
fn cmp_values(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a, b) {
        (Value::Null, Value::Null) => Equal,
        (Value::Null, _) => Greater,
        (_, Value::Null) => Less,
        (Value::Str(x), Value::Str(y)) => x.cmp(y),
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Float(x), Value::Float(y)) => x.total_cmp(y),
        (Value::Date(x), Value::Date(y)) => x.cmp(y),
        (Value::Timestamp(x), Value::Timestamp(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Schema;

    fn row(sym: &str, day: i32, offset: i64) -> LakeRow {
        let mut values = vec![Value::Str(sym.into()), Value::Date(day)];
        values.extend(std::iter::repeat_n(Value::Null, 7));
        LakeRow { values, kafka_partition: 0, kafka_offset: offset, kafka_timestamp: 0 }
    }

    #[test]
    fn cut_groups_sorts_splits_and_names_deterministically() {
        let schema = Schema::indices();
        let spec = PartitionSpec::parse("year(trade_date)", &schema).unwrap();
        let mut b = PartitionBuffer::new(0, 100);
        b.push_row(&spec, row("B", 1, 100));
        b.push_row(&spec, row("A", 1, 101));
        b.push_reject(Reject {
            topic: "t".into(),
            partition: 0,
            offset: 102,
            timestamp_ms: 0,
            reason: "x".into(),
            raw_base64: String::new(),
        });
        b.push_row(&spec, row("A", 0, 103));
        b.push_row(&spec, row("C", 400, 104));
        let cut = b.cut("t", &[1, 0], 2);
        assert_eq!((cut.first, cut.last, cut.rows, cut.rejects.len()), (100, 104, 4, 1));
        let names: Vec<_> = cut.files.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(
            names,
            [
                "year=1970/t-0-00000000000000000101.parquet",
                "year=1970/t-0-00000000000000000100.parquet",
                "year=1971/t-0-00000000000000000104.parquet"
            ]
        );
        let order: Vec<i64> = cut.files.iter().flat_map(|f| f.rows.iter().map(|r| r.kafka_offset)).collect();
        assert_eq!(order, [103, 101, 100, 104], "sorted by date, then symbol, split at 2 rows");
        assert!(b.is_empty());
        assert_eq!(b.first, 105);
    }
}
