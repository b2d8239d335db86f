//! `ticklake sink`: Kafka → hive-partitioned Parquet in S3 (or a local folder), exactly once.
//!
//! Pipeline, one module per stage: consume (`worker`, one task per Kafka partition) → `decode` (record → row or
//! reject) → `buffer` (rows by hive partition, cut) → `commit` (Parquet encode, store, checkpoint). Offsets live in
//! the lake (`_ticklake/checkpoints/`), never in a local file: rskafka has no consumer groups, and the lake is the
//! only place where "stored" and "checkpointed" can be made to agree.

pub mod buffer;
pub mod commit;
pub mod decode;
pub mod evolve;
mod worker;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::kafka::{self, Kafka, KafkaConfig};
use crate::lake::state::schema_key;
use crate::lake::table::{TableSpec, default_layout, table_key};
use crate::lake::{LakeUrl, PartitionSpec, S3Options, SpecError, Store, StoreError};
use crate::schema::Schema;
use crate::shutdown::Shutdown;

pub const DEFAULT_MAX_ROWS: usize = 1_000_000;
pub const DEFAULT_MAX_BYTES: u64 = 128 << 20;
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
pub const DEFAULT_MAX_BUFFER: usize = 128 << 20;

/// Validated sink settings.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub topic: String,
    pub lake: LakeUrl,
    pub s3: S3Options,
    /// Kafka partitions to consume (`None` = all).
    pub partitions: Option<Vec<i32>>,
    pub schema: Option<Schema>,
    /// `--partition-by`; `None` = the schema's default.
    pub partition_by: Option<String>,
    /// `--sort-by` column names; `None` = the schema's default.
    pub sort_by: Option<Vec<String>>,
    pub row_group_rows: usize,
    /// Rows buffered per Kafka partition before a cut; also the most rows in one file.
    pub max_rows: usize,
    /// Target size of the Parquet written by one cut (estimated from the compression seen so far).
    pub max_bytes: u64,
    pub max_age: Duration,
    /// Memory budget for rows buffered across all partitions.
    pub max_buffer: usize,
    pub max_record_bytes: usize,
    pub exit_at_end: bool,
    /// Skip offsets that Kafka already deleted (retention) instead of stopping.
    pub skip_deleted: bool,
    pub retry_for: Duration,
    pub stats_every: Duration,
    /// Serve Prometheus metrics and /healthz here.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Kafka(#[from] kafka::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Parquet(#[from] crate::lake::parquet::ParquetError),
    /// Flags or configuration that cannot work (exit 2).
    #[error("{0}")]
    Config(String),
    /// The lake's own state cannot be read (a checkpoint or table spec edited or damaged).
    #[error("{0}")]
    Corrupt(String),
    /// A bug: a task panicked or was lost. Never "bad flags".
    #[error("internal error: {0}")]
    Internal(String),
    #[error(
        "{topic}/{partition}: the lake's checkpoint needs offset {needed}, but Kafka only keeps offsets from {earliest} on (retention deleted {lost} record(s)). Pass --skip-deleted to continue from {earliest}, accepting the loss (it is recorded in the checkpoint)"
    )]
    RetentionGap { topic: String, partition: i32, needed: i64, earliest: i64, lost: i64 },
}

impl SinkError {
    pub fn kind(&self) -> crate::exit::Kind {
        use crate::exit::Kind;
        match self {
            SinkError::Kafka(e) => e.kind(),
            SinkError::Store(e) => e.kind(),
            SinkError::Spec(_) | SinkError::Config(_) => Kind::Usage,
            SinkError::Parquet(_) | SinkError::Corrupt(_) => Kind::Failure,
            SinkError::Internal(_) => Kind::Internal,
            SinkError::RetentionGap { .. } => Kind::DataLost,
        }
    }
}

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
        format!(
            "sink: {records} records ({:.0}/s), {} rows, {} files, {}, {} rejects{changes}, lag {} ({:.0} s)",
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

/// Everything the partition workers share.
pub(crate) struct Ctx {
    pub cfg: SinkConfig,
    pub kafka: Kafka,
    pub committer: commit::Committer,
    pub spec: PartitionSpec,
    pub sort: Vec<usize>,
    pub stats: Arc<SinkStats>,
    /// Bytes buffered across all partitions (the `--max-buffer` budget).
    pub buffered: AtomicUsize,
    /// Parquet bytes per buffered byte, ×1e6, learned from each cut (to aim at `--max-bytes`).
    pub ratio_ppm: AtomicU64,
    pub shutdown: Shutdown,
}

/// The outcome of a sink run.
#[derive(Debug)]
pub struct SinkReport {
    pub summary: String,
    pub stopped: Option<crate::shutdown::StopReason>,
}

/// Runs the sink until the end (`exit_at_end`) or a stop signal.
pub async fn run(kafka_cfg: KafkaConfig, cfg: SinkConfig, shutdown: Shutdown) -> Result<SinkReport, SinkError> {
    let started = Instant::now();
    let store = Store::open(&cfg.lake, &cfg.s3).await?;
    let kafka = Kafka::connect(kafka_cfg).await?;
    let topic = kafka.topic(&cfg.topic).await.map_err(|e| {
        e.with_topic_hint(&format!(
            "The sink reads a topic that exists: replay into it first (`ticklake replay FILE --topic {0} --partitions N` creates it), or `ticklake topic create {0} --partitions N`. (The sink's --partitions selects partitions to read; it creates nothing.)",
            cfg.topic
        ))
    })?;
    let partitions: Vec<i32> = match &cfg.partitions {
        None => topic.partitions.clone(),
        Some(ps) => {
            if let Some(bad) = ps.iter().find(|p| !topic.partitions.contains(p)) {
                return Err(SinkError::Config(format!(
                    "--partitions: topic '{}' has no partition {bad} (it has {:?})",
                    cfg.topic, topic.partitions
                )));
            }
            ps.clone()
        }
    };
    let Some((table, stored)) = resolve_table(&store, &kafka, &cfg, &partitions, &shutdown).await? else {
        return Ok(SinkReport {
            summary: "sink: the topic is empty; nothing to do".into(),
            stopped: shutdown.reason(),
        });
    };
    let schema = table.schema.clone();
    let spec = PartitionSpec::parse(&table.partition_by, &schema)?;
    let sort = sort_indices(&schema, &table.sort_by)?;
    tracing::info!(
        topic = %cfg.topic, lake = %cfg.lake.display(), schema = %schema.name, schema_version = table.version(),
        partition_by = %table.partition_by, sort_by = ?table.sort_by, partitions = ?partitions, "sink starting"
    );
    let taken = spec.fields.iter().map(|f| f.name.clone()).collect();
    let stats = Arc::new(SinkStats::default());
    let ctx = Arc::new(Ctx {
        committer: commit::Committer {
            store,
            topic: cfg.topic.clone(),
            table: Arc::new(evolve::Table::new(table, stored, taken)),
            row_group_rows: cfg.row_group_rows,
            retry_for: cfg.retry_for,
        },
        spec,
        sort,
        stats: stats.clone(),
        buffered: AtomicUsize::new(0),
        ratio_ppm: AtomicU64::new(150_000),
        shutdown: shutdown.clone(),
        kafka,
        cfg: cfg.clone(),
    });

    let metrics = match cfg.metrics_addr {
        Some(addr) => {
            let ctx = ctx.clone();
            let render = Arc::new(move || ctx.stats.render(ctx.buffered.load(Ordering::Relaxed)));
            Some(
                crate::metrics::serve(addr, render, shutdown.clone())
                    .await
                    .map_err(|e| SinkError::Config(e.to_string()))?,
            )
        }
        None => None,
    };
    let mut workers = tokio::task::JoinSet::new();
    for p in partitions {
        let ctx = ctx.clone();
        workers.spawn(async move { worker::run_partition(ctx, p).await });
    }
    let ticker = {
        let stats = stats.clone();
        let every = cfg.stats_every;
        tokio::spawn(async move {
            let mut prev = 0;
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                tracing::info!("{}", stats.line(started.elapsed(), prev, every));
                prev = stats.records.load(Ordering::Relaxed);
            }
        })
    };
    let mut first_error = None;
    while let Some(joined) = workers.join_next().await {
        let result = joined.unwrap_or_else(|e| Err(SinkError::Internal(format!("partition worker panicked: {e}"))));
        if let Err(e) = result {
            tracing::error!("{e}");
            if first_error.is_none() {
                first_error = Some(e);
                // One partition failed: stop the others cleanly (they flush and checkpoint what they have).
                shutdown.trigger(crate::shutdown::StopReason::Terminate);
            }
        }
    }
    ticker.abort();
    if let Some(m) = metrics {
        m.abort();
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let total = started.elapsed();
    let records = stats.records.load(Ordering::Relaxed);
    let mut summary = stats.line(total, 0, total).replacen("sink:", "sink done:", 1);
    if let Some(peak) = crate::metrics::peak_rss_bytes() {
        summary.push_str(&format!(", peak RSS {} MiB", peak >> 20));
    }
    tracing::debug!(records, "sink finished");
    Ok(SinkReport { summary, stopped: shutdown.reason() })
}

/// Schema column indices of the sort columns.
fn sort_indices(schema: &Schema, names: &[String]) -> Result<Vec<usize>, SinkError> {
    names
        .iter()
        .map(|n| {
            schema
                .index_of(n)
                .ok_or_else(|| SinkError::Config(format!("--sort-by: no column '{n}' in schema '{}'", schema.name)))
        })
        .collect()
}

/// The lake's table spec, and whether it is stored as it is. A lake that has one keeps it: flags that conflict stop
/// the sink before any data moves, a `--schema` or a new topic may only add columns. A new lake takes `--schema`,
/// else the schema of the first records (`schema::resolve`), with `--partition-by`/`--sort-by` or their defaults;
/// its spec is stored at the first commit. `None`: the topic is empty and `--exit-at-end` was given.
async fn resolve_table(
    store: &Store,
    kafka: &Kafka,
    cfg: &SinkConfig,
    partitions: &[i32],
    shutdown: &Shutdown,
) -> Result<Option<(TableSpec, bool)>, SinkError> {
    let lake = cfg.lake.display();
    let read = |key: String, bytes: Vec<u8>| -> Result<String, SinkError> {
        String::from_utf8(bytes).map_err(|_| SinkError::Corrupt(format!("{lake}/{key} is not UTF-8 text")))
    };
    if let Some(bytes) = commit::get_with_retry(store, &table_key(), cfg.retry_for).await? {
        let text = read(table_key(), bytes)?;
        let mut table: TableSpec = toml::from_str(&text).map_err(|e| {
            SinkError::Corrupt(format!(
                "{lake}/{} is not a valid table spec: {e}; it must not be edited by hand",
                table_key()
            ))
        })?;
        let given_spec = match &cfg.partition_by {
            Some(p) => Some(PartitionSpec::parse(p, &table.schema)?.describe(&table.schema)),
            None => None,
        };
        table
            .check_layout(given_spec.as_deref(), cfg.sort_by.as_deref())
            .map_err(|e| SinkError::Config(e.to_string()))?;
        let mut stored = table.row_group_rows == cfg.row_group_rows;
        table.row_group_rows = cfg.row_group_rows;
        let admit = |table: &mut TableSpec, candidate: &Schema, what: &str, reason: &str| {
            let added = table.admit(&cfg.topic, candidate, what).map_err(|e| SinkError::Config(e.to_string()))?;
            if !added.is_empty() {
                tracing::warn!(columns = ?added.iter().map(|f| &f.name).collect::<Vec<_>>(), "{what} adds columns to the lake's table");
                table.evolve(added, reason, &cfg.topic, None);
            }
            Ok::<_, SinkError>(())
        };
        if !table.topics.contains(&cfg.topic) {
            let candidate = match &cfg.schema {
                Some(s) => s.clone(),
                None => match sample_records(kafka, cfg, partitions, shutdown).await? {
                    None => return Ok(None),
                    Some(sample) => crate::schema::resolve::from_records(&sample).0,
                },
            };
            admit(&mut table, &candidate, &format!("the records of topic '{}'", cfg.topic), "new topic")?;
            table.topics.push(cfg.topic.clone());
            stored = false;
        } else if let Some(given) = &cfg.schema {
            let version = table.version();
            admit(&mut table, given, "--schema", "--schema")?;
            stored &= table.version() == version;
        }
        return Ok(Some((table, stored)));
    }
    // A lake from before the table spec: its schema per topic, reused as it was.
    let legacy = match commit::get_with_retry(store, &schema_key(&cfg.topic), cfg.retry_for).await? {
        Some(bytes) => Some(toml::from_str::<Schema>(&read(schema_key(&cfg.topic), bytes)?).map_err(|e| {
            SinkError::Corrupt(format!("{lake}/{} is not a valid schema: {e}", schema_key(&cfg.topic)))
        })?),
        None => None,
    };
    let schema = match (legacy, &cfg.schema) {
        (Some(stored), Some(given)) if &stored != given => {
            let t = TableSpec::new(&cfg.topic, stored, String::new(), vec![], 0);
            let added = t.admit(&cfg.topic, given, "--schema").map_err(|e| SinkError::Config(e.to_string()))?;
            let mut schema = t.schema;
            schema.fields.extend(added);
            schema
        }
        (Some(stored), _) => stored,
        (None, Some(given)) => given.clone(),
        (None, None) => match sample_records(kafka, cfg, partitions, shutdown).await? {
            None => return Ok(None),
            Some(sample) => {
                let (schema, choice) = crate::schema::resolve::from_records(&sample);
                match choice {
                    crate::schema::resolve::SchemaChoice::Preset { extras } => tracing::info!(
                        schema = %schema.name, extra_columns = ?extras,
                        "the records carry the fields of a preset (extra fields kept as columns)"
                    ),
                    _ => tracing::info!("no preset matches the records; inferred this schema:\n{}", schema.to_toml()),
                }
                schema
            }
        },
    };
    schema.validate().map_err(|e| SinkError::Config(e.to_string()))?;
    let (default_spec, default_sort) = default_layout(&schema);
    let spec = PartitionSpec::parse(cfg.partition_by.as_deref().unwrap_or(&default_spec), &schema)?;
    let sort = cfg.sort_by.clone().unwrap_or(default_sort);
    sort_indices(&schema, &sort)?;
    let describe = spec.describe(&schema);
    Ok(Some((TableSpec::new(&cfg.topic, schema, describe, sort, cfg.row_group_rows), false)))
}

/// Up to 1,000 JSON objects from the start of the first non-empty partition; waits for data unless
/// `--exit-at-end` (then `None` for an empty topic).
async fn sample_records(
    kafka: &Kafka,
    cfg: &SinkConfig,
    partitions: &[i32],
    shutdown: &Shutdown,
) -> Result<Option<Vec<serde_json::Map<String, serde_json::Value>>>, SinkError> {
    loop {
        for &p in partitions {
            let pc = kafka.partition(&cfg.topic, p).await?;
            let o = kafka.offsets(&pc).await?;
            if o.high_watermark <= o.earliest {
                continue;
            }
            let (records, _) = kafka.fetch(&pc, o.earliest, 4_000_000, 100).await?;
            let objects: Vec<_> = records
                .iter()
                .filter_map(|r| serde_json::from_slice::<serde_json::Value>(r.record.value.as_deref()?).ok())
                .filter_map(|v| if let serde_json::Value::Object(m) = v { Some(m) } else { None })
                .take(1000)
                .collect();
            if !objects.is_empty() {
                return Ok(Some(objects));
            }
        }
        if cfg.exit_at_end || shutdown.is_set() {
            return Ok(None);
        }
        tracing::info!(topic = %cfg.topic, "no JSON records yet; waiting for data to choose a schema (or pass --schema)");
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = shutdown.wait() => return Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_layouts() {
        let other = serde_json::json!({"Ticker":"A","When":"2024-01-02T00:00:00Z","Px":1.5,"Qty":3});
        let (s, _) = crate::schema::resolve::from_records(&[other.as_object().unwrap().clone()]);
        assert_eq!(default_layout(&s).0, "day(when_value)");
        assert_eq!(
            default_layout(&Schema::indices()),
            ("year(trade_date)".into(), vec!["trade_date".into(), "symbol".into()])
        );
    }
}
