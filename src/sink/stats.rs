//! The sink's counters: the stats line on stderr and the Prometheus text of `/metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Time of each object PUT to the lake, retries included (process-wide, like the default registry of other
/// Prometheus clients: one pipeline runs per process).
pub static UPLOAD_SECONDS: crate::metrics::Histogram = crate::metrics::Histogram::new();
/// Fetches retried after a transient failure (a broker restart, a leader moving).
pub static FETCH_RETRIES: AtomicU64 = AtomicU64::new(0);

/// Counters for the stats line and `/metrics`.
#[derive(Debug)]
pub struct SinkStats {
    pub records: AtomicU64,
    pub rows: AtomicU64,
    pub rejects: AtomicU64,
    pub files: AtomicU64,
    pub bytes: AtomicU64,
    /// Schema versions this run made (new fields that became columns).
    pub schema_changes: AtomicU64,
    /// Per partition: high watermark minus next offset.
    pub lag: Mutex<BTreeMap<i32, i64>>,
    /// Per partition: the checkpoint's next offset (everything before it is in the lake).
    pub checkpoint: Mutex<BTreeMap<i32, i64>>,
    /// Newest event time (epoch ms) among rows stored in the lake; `i64::MIN` before the first.
    pub newest_event_ms: AtomicI64,
    /// `--group`: the group's name and this member's partitions now.
    pub group: Mutex<Option<(String, Vec<i32>)>>,
    /// Rebalances this member went through (partitions given back).
    pub rebalances: AtomicU64,
}

impl Default for SinkStats {
    fn default() -> Self {
        SinkStats {
            records: AtomicU64::new(0),
            rows: AtomicU64::new(0),
            rejects: AtomicU64::new(0),
            files: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            schema_changes: AtomicU64::new(0),
            lag: Mutex::default(),
            checkpoint: Mutex::default(),
            newest_event_ms: AtomicI64::new(i64::MIN),
            group: Mutex::default(),
            rebalances: AtomicU64::new(0),
        }
    }
}

impl SinkStats {
    /// Prometheus text for `/metrics` (see `crate::metrics`); `buffered` is the bytes held in memory now.
    pub fn render(&self, buffered: usize) -> String {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let map = |m: &Mutex<BTreeMap<i32, i64>>| m.lock().map(|m| m.clone()).unwrap_or_default();
        let mut t = crate::metrics::Text::default();
        t.counter("ticklake_sink_records_total", "Kafka records consumed (rows and rejects).", n(&self.records));
        t.counter("ticklake_sink_rows_written_total", "Rows stored in the lake and checkpointed.", n(&self.rows));
        t.counter("ticklake_sink_bytes_written_total", "Parquet bytes stored in the lake.", n(&self.bytes));
        t.counter("ticklake_sink_files_written_total", "Parquet files stored in the lake.", n(&self.files));
        t.counter("ticklake_sink_rejects_total", "Records stored under _ticklake/rejects/.", n(&self.rejects));
        t.counter(
            "ticklake_sink_schema_changes_total",
            "Schema versions made by this run: record fields that became new columns.",
            n(&self.schema_changes),
        );
        t.counter(
            "ticklake_sink_retries_total",
            "Lake requests retried after a transient failure.",
            crate::lake::store::RETRIES.load(Ordering::Relaxed),
        );
        t.counter(
            "ticklake_sink_fetch_retries_total",
            "Kafka fetches retried after a transient failure.",
            FETCH_RETRIES.load(Ordering::Relaxed),
        );
        t.histogram(
            "ticklake_sink_upload_seconds",
            "Time to store one Parquet file, retries included.",
            &UPLOAD_SECONDS,
        );
        t.partition_gauges(
            "ticklake_sink_lag_records",
            "High watermark minus the next offset to read.",
            map(&self.lag),
        );
        t.partition_gauges(
            "ticklake_sink_checkpoint_offset",
            "Next offset of the partition's checkpoint: every offset before it is in the lake.",
            map(&self.checkpoint),
        );
        t.gauge(
            "ticklake_sink_buffered_bytes",
            "Row bytes buffered in memory (the --max-buffer budget).",
            buffered as f64,
        );
        if let Some((_, parts)) = self.group.lock().ok().and_then(|g| g.clone()) {
            t.gauge(
                "ticklake_sink_assigned_partitions",
                "Kafka partitions the consumer group assigned to this sink (--group).",
                parts.len() as f64,
            );
            t.counter(
                "ticklake_sink_rebalances_total",
                "Group rebalances in which this sink gave its partitions back (--group).",
                n(&self.rebalances),
            );
        }
        let newest = self.newest_event_ms.load(Ordering::Relaxed);
        if newest != i64::MIN {
            let now = chrono::Utc::now().timestamp_millis();
            t.gauge(
                "ticklake_sink_newest_event_time_seconds",
                "Newest event time stored in the lake.",
                newest as f64 / 1e3,
            );
            t.gauge(
                "ticklake_sink_freshness_seconds",
                "Now minus the newest event time stored in the lake.",
                (now - newest) as f64 / 1e3,
            );
        }
        t.finish()
    }

    pub fn line(&self, elapsed: Duration, prev_records: u64, window: Duration) -> String {
        let records = self.records.load(Ordering::Relaxed);
        let lag = self.lag.lock().map(|l| l.iter().map(|(p, v)| format!("{p}:{v}")).collect::<Vec<_>>().join(" "));
        let changes = match self.schema_changes.load(Ordering::Relaxed) {
            0 => String::new(),
            n => format!(", {n} schema change(s)"),
        };
        let group = match self.group.lock().ok().and_then(|g| g.clone()) {
            Some((g, parts)) => format!(", group {g} partitions {parts:?}"),
            None => String::new(),
        };
        format!(
            "sink: {records} records ({:.0}/s), {} rows, {} files, {}, {} rejects{changes}, lag {}{group} ({:.0} s)",
            (records - prev_records) as f64 / window.as_secs_f64().max(1e-9),
            self.rows.load(Ordering::Relaxed),
            self.files.load(Ordering::Relaxed),
            crate::units::human_bytes(self.bytes.load(Ordering::Relaxed)),
            self.rejects.load(Ordering::Relaxed),
            lag.unwrap_or_default(),
            elapsed.as_secs_f64(),
        )
    }
}
