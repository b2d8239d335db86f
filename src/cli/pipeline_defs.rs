//! The clap derive structs of the two pipelines, `replay` and `sink` (the biggest flag sets): no logic here.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::defs::{KafkaArgs, LakeArgs};
use super::values::{parse_bytes, parse_duration};
use crate::replay::{OnError, TimestampMode};

#[derive(Debug, Args)]
pub struct SinkArgs {
    /// The topic to land in the lake.
    #[arg(long, short, env = "TICKLAKE_TOPIC")]
    pub topic: String,
    #[command(flatten)]
    pub lake: LakeArgs,
    /// Kafka partitions to consume, e.g. `0,2,5-7` (default: all), so several sinks can split a topic.
    #[arg(long)]
    pub partitions: Option<String>,
    /// Table format: `hive` (Parquet under hive partition folders) or `iceberg` (an Apache Iceberg table in a
    /// catalog: needs --table and --catalog).
    #[arg(long, value_enum, default_value = "hive")]
    pub format: FormatArg,
    /// Iceberg: the table, `database.table` (created if missing).
    #[arg(long, required_if_eq("format", "iceberg"))]
    pub table: Option<String>,
    /// Iceberg: the catalog, `glue` (AWS Glue, what Athena reads), `sqlite:PATH` (a local file) or `rest:URL`.
    #[arg(long, required_if_eq("format", "iceberg"))]
    pub catalog: Option<String>,
    /// Schema: a preset (`indices`, `ticks`) or a schema file. Default: the one the lake was started with, else
    /// the preset whose fields the records carry, else inferred from the first records.
    #[arg(long)]
    pub schema: Option<String>,
    /// Refuse inference: the schema is --schema, the lake's stored one or a preset's columns alone; a record
    /// field the schema lacks makes the record a reject instead of a new column.
    #[arg(long)]
    pub strict_schema: bool,
    /// Partitioning: columns and transforms, e.g. `year(trade_date)` or `dt=day(ts),symbol`; with --format iceberg
    /// also `bucket[N](col)` and `truncate[W](col)`. Default: per schema.
    #[arg(long)]
    pub partition_by: Option<String>,
    /// Row order inside each file, e.g. `trade_date,symbol`. Default: per schema.
    #[arg(long)]
    pub sort_by: Option<String>,
    /// Rows per Parquet row group.
    #[arg(long, default_value_t = crate::lake::parquet::DEFAULT_ROW_GROUP_ROWS)]
    pub row_group_rows: usize,
    /// Cut when a Kafka partition has buffered this many rows (also the most rows per file).
    #[arg(long, default_value_t = crate::sink::DEFAULT_MAX_ROWS)]
    pub max_rows: usize,
    /// Cut when the Parquet a Kafka partition would write reaches about this size.
    #[arg(long, default_value = "128MiB", value_parser = parse_bytes)]
    pub max_bytes: u64,
    /// Cut when a Kafka partition's oldest buffered row is this old (also when the partition went quiet).
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    pub max_age: Duration,
    /// Memory for buffered rows across all partitions; a partition cuts early when the total would exceed it.
    #[arg(long, default_value = "128MiB", value_parser = parse_bytes)]
    pub max_buffer: u64,
    /// Records larger than this are rejected (kept, base64, under _ticklake/rejects/).
    #[arg(long, default_value = "1MiB", value_parser = parse_bytes)]
    pub max_record_bytes: u64,
    /// Stop once every partition reaches the end seen at start (batch jobs, tests).
    #[arg(long)]
    pub exit_at_end: bool,
    /// If Kafka already deleted offsets the lake still needs (retention), continue from the earliest kept offset
    /// and record the loss, instead of stopping.
    #[arg(long)]
    pub skip_deleted: bool,
    /// How long a failing upload or fetch is retried before the sink stops (nothing is checkpointed past a failed
    /// upload; a fetch resumes at the same offset).
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub retry_for: Duration,
    /// Interval of the stats line.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub stats_every: Duration,
    /// One sink per Kafka partition of a lake: this sink renews its partitions' leases every third of this; a
    /// second sink stops (exit 13) while they are renewed, and takes over a lease not renewed for this long.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub lease_ttl: Duration,
    /// The consumer group the lake's checkpoints are committed to after each commit, so lag tools
    /// (kafka-consumer-groups.sh, Redpanda Console, Burrow, MSK's OffsetLag metrics) show the sink's progress.
    /// Default `ticklake-<topic>`; `off` to commit none. Never read back: the lake's checkpoint decides.
    #[arg(long, env = "TICKLAKE_OFFSETS_GROUP")]
    pub offsets_group: Option<String>,
    /// Scale out: join this Kafka consumer group; the broker's coordinator spreads the topic's partitions over the
    /// sinks of the group (start one per host). The group assigns work; the lake's leases and checkpoints still
    /// decide what is written. Not with --partitions or --exit-at-end.
    #[arg(long, env = "TICKLAKE_GROUP")]
    pub group: Option<String>,
    /// `--group`: how long the coordinator waits for a silent member's heartbeat before it gives its partitions to
    /// the others (within the broker's group.min/max.session.timeout.ms, 6 s to 30 min by default).
    #[arg(long, default_value = "45s", value_parser = parse_duration)]
    pub session_timeout: Duration,
    /// Serve Prometheus metrics on http://ADDR/metrics (and /healthz), e.g. 127.0.0.1:9464.
    #[arg(long, env = "TICKLAKE_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Hive,
    Iceberg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressionArg {
    Zstd,
    Lz4,
    Snappy,
    Gzip,
    None,
}

/// `--idempotence`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IdempotenceArg {
    /// On when the broker grants a producer id (every Kafka since 0.11, Redpanda, MSK); said once either way.
    Auto,
    /// Required: stop if the broker has no idempotent producer.
    On,
    /// Off: a batch resent after a lost answer may be stored twice.
    Off,
}

impl From<IdempotenceArg> for crate::kafka::producer::Idempotence {
    fn from(a: IdempotenceArg) -> Self {
        match a {
            IdempotenceArg::Auto => Self::Auto,
            IdempotenceArg::On => Self::On,
            IdempotenceArg::Off => Self::Off,
        }
    }
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// CSV file to read (`.gz` is decompressed), or `-` for stdin. A header row is required.
    pub input: String,
    /// Topic to write to.
    #[arg(long, short, env = "TICKLAKE_TOPIC")]
    pub topic: String,
    /// Schema: a preset (`indices`, `ticks`) or a schema file (TOML or JSON). Default: the preset whose columns the
    /// header has, else inferred from the first rows (and logged, so it can be saved).
    #[arg(long)]
    pub schema: Option<String>,
    /// Create the topic with N partitions if it does not exist.
    #[arg(long)]
    pub partitions: Option<i32>,
    /// Send N rows per second.
    #[arg(long, conflicts_with = "speed")]
    pub rate: Option<f64>,
    /// Replay event-time gaps X times faster than they happened (the file must be sorted by event time).
    #[arg(long)]
    pub speed: Option<f64>,
    /// Send random rows (with replacement) forever, like a live feed; 1 row/s unless --rate says otherwise.
    #[arg(long, conflicts_with = "loop_input")]
    pub sample: bool,
    /// Stamp each row's event time with the moment it is sent (a date column gets today's date, UTC), so a replayed
    /// feed lands in today's partitions, like a live one. The record timestamp follows (with --timestamp event).
    #[arg(long)]
    pub stamp_now: bool,
    /// Start again at the top of the file when it ends.
    #[arg(long = "loop")]
    pub loop_input: bool,
    /// Stop after sending N rows.
    #[arg(long)]
    pub limit: Option<u64>,
    /// Record timestamp: the row's event time or the send time.
    #[arg(long, value_enum, default_value_t = TimestampMode::Event)]
    pub timestamp: TimestampMode,
    /// A row that does not fit the schema: stop (after sending every good row before it) or skip it.
    #[arg(long, value_enum, default_value_t = OnError::Fail)]
    pub on_error: OnError,
    /// With `--on-error skip`: write each bad row, with its line and reason, to this file (JSON lines).
    #[arg(long)]
    pub rejects: Option<PathBuf>,
    /// Compression of record batches.
    #[arg(long, value_enum, default_value_t = CompressionArg::Zstd)]
    pub compression: CompressionArg,
    /// How long a partition's batch waits to fill before it is sent.
    #[arg(long, default_value = "5ms", value_parser = parse_duration)]
    pub linger: Duration,
    /// Uncompressed bytes per batch per partition before it is sent without waiting.
    #[arg(long, default_value = "512KiB", value_parser = parse_bytes)]
    pub batch_bytes: u64,
    /// How long a failing batch is retried (with backoff) before the replay gives up and reports it.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub retry_for: Duration,
    /// Go on where a replay of this file into this topic stopped (killed, failed, Ctrl-C): each partition's last
    /// record names the CSV line it came from, and the rows up to it are skipped. Not with --sample or --loop.
    #[arg(long)]
    pub resume: bool,
    /// Kafka's idempotent producer (a producer id and per-partition sequence numbers): a batch resent after a lost
    /// answer is stored once, not twice.
    #[arg(long, value_enum, default_value_t = IdempotenceArg::Auto)]
    pub idempotence: IdempotenceArg,
    /// Progress bar: auto (on a terminal), always, never.
    #[arg(long, value_enum, default_value_t = When::Auto)]
    pub progress: When,
    /// Serve Prometheus metrics on http://ADDR/metrics (and /healthz), e.g. 127.0.0.1:9464.
    #[arg(long, env = "TICKLAKE_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum When {
    Auto,
    Always,
    Never,
}
