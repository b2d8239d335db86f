//! Sink stage 3: buffer one Kafka partition's rows by hive partition, and turn them into a cut.
//!
//! A cut is everything buffered for one Kafka partition, offsets `first..=last`: one or more Parquet files per hive
//! partition (rows sorted by `--sort-by`, then offset; split at `--max-rows`) plus the rejects. Its content
//! depends only on the records in `first..=last`, so redoing a cut after a crash yields the same files.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::decode::Reject;
use crate::lake::columns::Columns;
use crate::lake::layout::FileLayout;
use crate::lake::partition::PartitionSpec;
use crate::lake::state::data_key;
use crate::schema::Row;

#[derive(Debug)]
pub struct PartitionBuffer {
    pub partition: i32,
    /// First offset covered by the buffer (the checkpoint's `next_offset` when it was started).
    pub first: i64,
    /// Last offset taken (row or reject); `first - 1` when empty.
    pub last: i64,
    layout: Arc<FileLayout>,
    /// Schema column of the event time, if any (for `newest_event_ms`).
    event_time: Option<usize>,
    /// Rows per hive partition: (path, rows), in order of first appearance.
    groups: Vec<(String, Columns)>,
    /// Partition key (`PartitionSpec::write_key`) → index in `groups`.
    index: HashMap<Vec<u8>, usize>,
    key: Vec<u8>,
    pub rejects: Vec<Reject>,
    pub rows: usize,
    /// In-memory bytes (allocated), for the flush thresholds and the shared budget.
    pub bytes: usize,
    pub started: Option<Instant>,
    /// Newest event time among the rows (epoch ms); `i64::MIN` when there is none.
    pub newest_event_ms: i64,
}

/// One file of a cut, ready to encode: rows `rows` of `cols`, in that order.
#[derive(Debug)]
pub struct CutFile {
    pub key: String,
    pub cols: Arc<Columns>,
    pub rows: Vec<u32>,
}

#[derive(Debug)]
pub struct Cut {
    /// The file layout the cut's columns follow (the schema version it was buffered under).
    pub layout: Arc<FileLayout>,
    pub partition: i32,
    pub first: i64,
    pub last: i64,
    pub files: Vec<CutFile>,
    pub rejects: Vec<Reject>,
    pub rows: usize,
    pub newest_event_ms: i64,
    /// Cut at a `--max-age` tick (Iceberg): the other partitions cut at the same moment, and its commit round waits
    /// a little for them. Set by the sink's worker.
    pub at_tick: bool,
}

impl PartitionBuffer {
    pub fn new(partition: i32, first: i64, layout: Arc<FileLayout>) -> Self {
        PartitionBuffer {
            partition,
            first,
            last: first - 1,
            event_time: layout.schema.event_time_index(),
            layout,
            groups: Vec::new(),
            index: HashMap::new(),
            key: Vec::new(),
            rejects: vec![],
            rows: 0,
            bytes: 0,
            started: None,
            newest_event_ms: i64::MIN,
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

    /// Adds a row (`values` in schema order) read at `offset` with record timestamp `timestamp_ms`.
    pub fn push_row(&mut self, spec: &PartitionSpec, values: &Row, offset: i64, timestamp_ms: i64) {
        self.touch(offset);
        self.rows += 1;
        if let Some(t) = self.event_time.and_then(|i| values[i].as_epoch_millis()) {
            self.newest_event_ms = self.newest_event_ms.max(t);
        }
        spec.write_key(values, &mut self.key);
        let g = match self.index.get(&self.key[..]) {
            Some(&g) => g,
            None => {
                let path = spec.hive_path(values);
                self.bytes += path.len() + self.key.len() * 2 + 64;
                self.index.insert(self.key.clone(), self.groups.len());
                self.groups.push((path, Columns::new(&self.layout, self.partition)));
                self.groups.len() - 1
            }
        };
        self.bytes += self.groups[g].1.push(values, offset, timestamp_ms);
    }

    /// Moves to a newer schema version's layout: every open hive partition gains the new columns, NULL for the
    /// rows it already holds.
    pub fn adopt(&mut self, layout: Arc<FileLayout>) {
        for (_, cols) in &mut self.groups {
            self.bytes += cols.adopt(&layout);
        }
        self.layout = layout;
    }

    pub fn layout(&self) -> &Arc<FileLayout> {
        &self.layout
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
        for (path, cols) in groups {
            // Ordered by the sort columns, then offset: offsets are unique, so the order is total and the same rows
            // always give the same files.
            let order = cols.order(sort);
            let cols = Arc::new(cols);
            for chunk in order.chunks(max_rows_per_file.max(1)) {
                let first_offset =
                    chunk.iter().map(|&i| cols.kafka_offset[i as usize]).min().expect("chunks are never empty");
                files.push(CutFile {
                    key: data_key(&path, topic, self.partition, first_offset),
                    cols: cols.clone(),
                    rows: chunk.to_vec(),
                });
            }
        }
        let cut = Cut {
            layout: self.layout.clone(),
            partition: self.partition,
            first: self.first,
            last: self.last,
            files,
            rejects: std::mem::take(&mut self.rejects),
            rows: self.rows,
            newest_event_ms: self.newest_event_ms,
            at_tick: false,
        };
        *self = PartitionBuffer::new(self.partition, next_first, self.layout.clone());
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Schema, Value};

    fn row(sym: &str, day: i32) -> Row {
        let mut values = vec![Value::Str(sym.into()), Value::Date(day)];
        values.extend(std::iter::repeat_n(Value::Null, 7));
        values
    }

    #[test]
    fn cut_groups_sorts_splits_and_names_deterministically() {
        let schema = Schema::indices();
        let spec = PartitionSpec::parse("year(trade_date)", &schema).unwrap();
        let mut b = PartitionBuffer::new(0, 100, Arc::new(FileLayout::new(&schema, &spec)));
        b.push_row(&spec, &row("B", 1), 100, 0);
        b.push_row(&spec, &row("A", 1), 101, 0);
        b.push_reject(Reject {
            topic: "t".into(),
            partition: 0,
            offset: 102,
            timestamp_ms: 0,
            reason: "x".into(),
            raw_base64: String::new(),
        });
        b.push_row(&spec, &row("A", 0), 103, 0);
        b.push_row(&spec, &row("C", 400), 104, 86_400_000);
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
        let order: Vec<i64> =
            cut.files.iter().flat_map(|f| f.rows.iter().map(|&r| f.cols.kafka_offset[r as usize])).collect();
        assert_eq!(order, [103, 101, 100, 104], "sorted by date, then symbol, split at 2 rows");
        assert_eq!(cut.newest_event_ms, 400 * 86_400_000);
        let f = &cut.files[0];
        assert_eq!(f.cols.value(f.rows[1] as usize, 0), Some(Value::Str("A".into())));
        assert!(b.is_empty());
        assert_eq!(b.first, 105);
    }
}
