//! `ticklake sink`: Kafka → hive-partitioned Parquet in S3 (or a local folder), exactly once.
//!
//! Pipeline, one module per stage: `start` (the table spec) → consume (`worker`, one task per Kafka partition) →
//! `decode` (record → row or reject; `evolve` makes new fields columns) → `buffer` (rows by hive partition, cut) →
//! `commit` (Parquet encode, store, checkpoint); `stats` counts. Offsets live in
//! the lake (`_ticklake/checkpoints/`), never in a local file: rskafka has no consumer groups, and the lake is the
//! only place where "stored" and "checkpointed" can be made to agree.

pub mod buffer;
pub mod commit;
pub mod decode;
pub mod evolve;
mod group;
#[cfg(feature = "iceberg")]
pub mod iceberg;
#[cfg(not(feature = "iceberg"))]
#[path = "iceberg_off.rs"]
pub mod iceberg;
mod start;
pub mod stats;
mod worker;

pub use group::GroupOptions;
use start::{resolve_table, sort_indices};
pub use stats::{FETCH_RETRIES, SinkStats, UPLOAD_SECONDS};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::kafka::{self, Kafka, KafkaConfig};
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
    /// `--format iceberg`: the table and its catalog (`None`: the hive lake).
    pub iceberg: Option<IcebergOptions>,
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
    /// `--strict-schema`: no column is typed by inference; unknown fields are rejects.
    pub strict_schema: bool,
    /// Skip offsets that Kafka already deleted (retention) instead of stopping.
    pub skip_deleted: bool,
    pub retry_for: Duration,
    pub stats_every: Duration,
    /// How long a sink that stopped renewing its lease keeps its partitions (`--lease-ttl`).
    pub lease_ttl: Duration,
    /// The consumer group the checkpoints are committed to, for lag tools (`None`: none).
    pub offsets_group: Option<String>,
    /// `--group`: the partitions are assigned by this consumer group's coordinator (`partitions` is `None`).
    pub group: Option<GroupOptions>,
    /// Serve Prometheus metrics and /healthz here.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// Where an Iceberg sink commits.
#[derive(Debug, Clone)]
pub struct IcebergOptions {
    /// `database.table`.
    pub table: String,
    pub catalog: crate::lake::iceberg::CatalogUrl,
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
    /// The Iceberg catalog or table refused or failed.
    #[error("iceberg: {0}")]
    Iceberg(String),
    /// Flags or configuration that cannot work (exit 2).
    #[error("{0}")]
    Config(String),
    /// The lake's own state cannot be read (a checkpoint or table spec edited or damaged).
    #[error("{0}")]
    Corrupt(String),
    /// Another sink holds the partition (one writer per Kafka partition of a lake).
    #[error(
        "{topic}/{partition}: another sink writes this Kafka partition into this lake: {holder}. This one stopped without writing; stop the other first (or split the partitions with --partitions)"
    )]
    Fenced { topic: String, partition: i32, holder: String },
    /// A bug: a task panicked or was lost. Never "bad flags".
    #[error("internal error: {0}")]
    Internal(String),
    #[error(
        "{topic}/{partition}: the lake's checkpoint needs offset {needed}, but Kafka only keeps offsets from {earliest} on (retention deleted {lost} record(s)). Pass --skip-deleted to continue from {earliest}, accepting the loss (it is recorded in the checkpoint)"
    )]
    RetentionGap { topic: String, partition: i32, needed: i64, earliest: i64, lost: i64 },
}

impl From<crate::lake::fence::FenceError> for SinkError {
    fn from(e: crate::lake::fence::FenceError) -> Self {
        use crate::lake::fence::FenceError;
        match e {
            FenceError::Fenced { topic, partition, holder } => SinkError::Fenced { topic, partition, holder },
            FenceError::Store(e) => SinkError::Store(e),
            FenceError::Corrupt(e) => SinkError::Corrupt(e),
        }
    }
}

impl SinkError {
    pub fn kind(&self) -> crate::exit::Kind {
        use crate::exit::Kind;
        match self {
            SinkError::Kafka(e) => e.kind(),
            SinkError::Store(e) => e.kind(),
            SinkError::Spec(_) | SinkError::Config(_) => Kind::Usage,
            SinkError::Parquet(_) | SinkError::Corrupt(_) | SinkError::Iceberg(_) => Kind::Failure,
            SinkError::Internal(_) => Kind::Internal,
            SinkError::Fenced { .. } => Kind::Fenced,
            SinkError::RetentionGap { .. } => Kind::DataLost,
        }
    }
}

/// Everything the partition workers share.
pub(crate) struct Ctx {
    pub cfg: SinkConfig,
    pub kafka: Kafka,
    pub committer: commit::Committer,
    /// `--format iceberg`: the table that commits take the place of the hive lake's checkpoints.
    pub iceberg: Option<Arc<iceberg::IcebergTarget>>,
    pub spec: PartitionSpec,
    pub sort: Vec<usize>,
    pub stats: Arc<SinkStats>,
    /// Bytes buffered across all partitions (the `--max-buffer` budget).
    pub buffered: AtomicUsize,
    /// Parquet bytes per buffered byte, ×1e6, learned from each cut (to aim at `--max-bytes`).
    pub ratio_ppm: AtomicU64,
    pub shutdown: Shutdown,
    /// Commits each new checkpoint to the consumer group, for lag tools (`kafka::group_offsets`).
    pub group_offsets: Option<crate::kafka::group_offsets::GroupOffsets>,
    /// When the sink started: `--format iceberg` cuts by age at multiples of `--max-age` from here, so that the
    /// partitions' cuts meet in one commit round (one snapshot) instead of one snapshot each.
    pub epoch: std::time::Instant,
}

/// Runs a worker for each of `partitions` (`--partitions`, or all) until they end; the first error stops the others.
async fn run_partitions(
    ctx: &Arc<Ctx>,
    partitions: Vec<i32>,
    shutdown: &Shutdown,
    renewing: &Shutdown,
) -> Result<(), SinkError> {
    // One writer per Kafka partition: every lease before any data moves, in partition order, so that two sinks
    // started at once cannot split the partitions between them (the second waits on the first's lowest one). An
    // Iceberg table takes leases too (under --to, named after the table): its commits check the partition's
    // offsets on the table itself, which stops a zombie at its commit; the lease stops a second sink at start,
    // before it consumes or uploads anything.
    for &p in &partitions {
        if let Err(e) = ctx.committer.fence.acquire(p, shutdown).await {
            renewing.trigger(crate::shutdown::StopReason::Terminate);
            ctx.committer.fence.release().await;
            return Err(e.into());
        }
    }
    shutdown.mark_running();
    let mut workers = tokio::task::JoinSet::new();
    for p in partitions {
        let ctx = ctx.clone();
        let stop = worker::Stop::new(shutdown.clone());
        workers.spawn(async move { worker::run_partition(ctx, p, stop).await });
    }
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
    first_error.map_or(Ok(()), Err)
}

/// The outcome of a sink run.
#[derive(Debug)]
pub struct SinkReport {
    pub summary: String,
    /// The summary's numbers, for `--log-format json`.
    pub counts: Vec<(&'static str, u64)>,
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
    // With --group, every partition: the table is sampled from all, the group assigns them.
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
    let empty = || SinkReport {
        summary: "sink: the topic is empty; nothing to do".into(),
        counts: vec![],
        stopped: shutdown.reason(),
    };
    let (table, stored, target) = match &cfg.iceberg {
        Some(opts) => {
            let sample = async || {
                let records = start::sample_records(&kafka, &cfg, &partitions, &shutdown).await?;
                records.map(|r| start::schema_from_records(&r, &cfg).map(|(s, _)| s)).transpose()
            };
            match iceberg::open(&cfg, opts, store.clone(), partitions.len(), sample).await? {
                None => return Ok(empty()),
                Some((table, target)) => (table, true, Some(target)),
            }
        }
        None => match resolve_table(&store, &kafka, &cfg, &partitions, &shutdown).await? {
            None => return Ok(empty()),
            Some((table, stored)) => (table, stored, None),
        },
    };
    let schema = table.schema.clone();
    // An Iceberg table partitions its files itself (its own spec, applied by its writer): the buffer keeps one group.
    let spec = match target {
        Some(_) => PartitionSpec::default(),
        None => PartitionSpec::parse(&table.partition_by, &schema)?,
    };
    let sort = sort_indices(&schema, &table.sort_by)?;
    tracing::info!(
        topic = %cfg.topic, lake = %cfg.lake.display(), schema = %schema.name, schema_version = table.version(),
        partition_by = %table.partition_by, sort_by = ?table.sort_by, partitions = ?partitions, "sink starting"
    );
    let taken = spec.fields.iter().map(|f| f.name.clone()).collect();
    let stats = Arc::new(SinkStats::default());
    let fence = crate::lake::fence::Fence::new(store.clone(), &cfg.topic, cfg.lease_ttl, cfg.retry_for);
    let fence = match &cfg.group {
        Some(g) => fence.in_group(&g.name),
        None => fence,
    };
    let fence = Arc::new(match &cfg.iceberg {
        Some(opts) => fence.for_iceberg_table(&opts.table),
        None => fence,
    });
    if let Some(t) = &target {
        t.set_fence(fence.clone());
    }
    let member = cfg.group.as_ref().map(|_| tokio::sync::watch::channel(crate::kafka::membership::Member::default()));
    let renewing = {
        let (fence, stop, sink) = (fence.clone(), Shutdown::new(), shutdown.clone());
        let handle = tokio::spawn({
            let stop = stop.clone();
            async move { fence.renew_until(stop, sink).await }
        });
        (handle, stop)
    };
    let ctx = Arc::new(Ctx {
        committer: commit::Committer {
            store,
            topic: cfg.topic.clone(),
            table: Arc::new(evolve::Table::new(table, stored, taken).strict(cfg.strict_schema)),
            fence: fence.clone(),
            row_group_rows: cfg.row_group_rows,
            retry_for: cfg.retry_for,
        },
        iceberg: target.clone(),
        spec,
        sort,
        stats: stats.clone(),
        buffered: AtomicUsize::new(0),
        ratio_ppm: AtomicU64::new(150_000),
        shutdown: shutdown.clone(),
        epoch: std::time::Instant::now(),
        group_offsets: cfg.offsets_group.clone().map(|g| {
            tracing::info!(group = %g, "committing the lake's checkpoints to this consumer group (for lag tools; never read back)");
            let member = member.as_ref().map(|(_, rx)| rx.clone());
            crate::kafka::group_offsets::GroupOffsets::start(kafka.config().clone(), g, cfg.topic.clone(), member)
        }),
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
    let ticker = {
        let stats = stats.clone();
        let every = cfg.stats_every;
        tokio::spawn(async move {
            let mut prev = 0;
            let mut tick = tokio::time::interval(every);
            // A process paused (SIGSTOP) and woken prints one line, not one per missed tick.
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            tick.tick().await;
            loop {
                tick.tick().await;
                tracing::info!("{}", stats.line(started.elapsed(), prev, every));
                prev = stats.records.load(Ordering::Relaxed);
            }
        })
    };
    let first_error = match (&cfg.group, member) {
        (Some(opts), Some((tx, _))) => {
            shutdown.mark_running();
            group::run(ctx.clone(), opts, partitions, tx).await.err()
        }
        _ => run_partitions(&ctx, partitions, &shutdown, &renewing.1).await.err(),
    };
    ticker.abort();
    if let Some(m) = metrics {
        m.abort();
    }
    // The last checkpoints reach the group too (a `--exit-at-end` run's lag reads 0 afterwards).
    if let Some(g) = &ctx.group_offsets {
        g.finish(cfg.retry_for.min(std::time::Duration::from_secs(10))).await;
    }
    renewing.1.trigger(crate::shutdown::StopReason::Terminate);
    let _ = renewing.0.await;
    // Another sink took a partition over: that is the outcome (exit 13), whatever else failed on the way (a
    // process paused past its lease wakes to timeouts too).
    match first_error {
        Some(e @ SinkError::Fenced { .. }) => return Err(e),
        Some(e) if !fence.lost() => return Err(e),
        _ => {}
    }
    if fence.lost() {
        return Err(SinkError::Fenced {
            topic: cfg.topic.clone(),
            partition: -1,
            holder: "another sink took a partition over while this one ran".into(),
        });
    }
    fence.release().await;
    let total = started.elapsed();
    let records = stats.records.load(Ordering::Relaxed);
    let mut summary = stats.line(total, 0, total).replacen("sink:", "sink done:", 1);
    if let Some(peak) = crate::metrics::peak_rss_bytes() {
        summary.push_str(&format!(", peak RSS {} MiB", peak >> 20));
    }
    tracing::debug!(records, "sink finished");
    let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let counts = vec![
        ("records", records),
        ("rows", n(&stats.rows)),
        ("files", n(&stats.files)),
        ("bytes", n(&stats.bytes)),
        ("rejects", n(&stats.rejects)),
        ("schema_changes", n(&stats.schema_changes)),
    ];
    Ok(SinkReport { summary, counts, stopped: shutdown.reason() })
}
