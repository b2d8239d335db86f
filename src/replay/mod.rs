//! `ticklake replay`: CSV → typed rows → JSON records → Kafka.
//!
//! Pipeline stages, one module each: `source` (CSV bytes, schema choice) → `row` (typed row) → `encode` (record
//! and partition) → `pacing` (when it may go) → `produce` (per-partition batches). The first four run on one
//! blocking reader thread; producing runs on the tokio runtime.

pub mod encode;
pub mod pacing;
pub mod produce;
pub mod progress;
mod reader;
pub mod resume;
use reader::{Reader, ReaderEnd};
pub mod row;
pub mod source;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::exit::Kind;
use crate::kafka::{self, Kafka, KafkaConfig};
use crate::schema::Schema;
use crate::shutdown::{Shutdown, StopReason};
use encode::RecordEncoder;
pub use encode::TimestampMode;
pub use pacing::Pace;
use pacing::Pacer;
pub use produce::ProduceConfig;
use produce::{Counters, ProduceFailure};
use row::{RowError, RowParser};
pub use source::Input;
use source::{CsvSource, SchemaChoice, SourceError};

/// Records per chunk handed from the reader to a partition worker when running flat out.
const CHUNK_ROWS: usize = 256;
/// Chunks queued per partition before the reader waits (backpressure).
const QUEUE_CHUNKS: usize = 32;

/// What to do with a row that does not fit the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnError {
    /// Stop at the first bad row (after sending every good row before it).
    Fail,
    /// Count it, write it to `--rejects`, go on.
    Skip,
}

/// Validated replay settings (built from the CLI flags by `cli`).
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    pub input: Input,
    pub topic: String,
    /// Explicit schema; `None` = preset matching the header, else inferred.
    pub schema: Option<Schema>,
    /// Create the topic with this many partitions if it is missing.
    pub create_partitions: Option<i32>,
    pub pace: Pace,
    /// Random rows with replacement, forever (until `limit` or a signal), like a live feed.
    pub sample: bool,
    /// Replace each row's event time with the send time (`--stamp-now`).
    pub stamp_now: bool,
    /// Start again at the top of the file at its end.
    pub loop_input: bool,
    /// Skip the rows the topic holds already (`resume`).
    pub resume: bool,
    pub limit: Option<u64>,
    pub timestamp: TimestampMode,
    pub on_error: OnError,
    pub rejects: Option<PathBuf>,
    pub produce: ProduceConfig,
    /// Draw a progress bar (only sensible on a terminal).
    pub progress: bool,
    /// Serve Prometheus metrics and /healthz here.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{path}: {source}")]
    Schema { path: String, source: crate::schema::SchemaError },
    #[error(transparent)]
    Kafka(#[from] kafka::Error),
    #[error("cannot write rejects file {path}: {source}")]
    Rejects { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Config(String),
    /// A bug: a task panicked.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ReplayError {
    pub fn kind(&self) -> Kind {
        match self {
            ReplayError::Source(_) | ReplayError::Schema { .. } => Kind::BadInput,
            ReplayError::Kafka(e) => e.kind(),
            ReplayError::Rejects { .. } => Kind::Failure,
            ReplayError::Config(_) => Kind::Usage,
            ReplayError::Internal(_) => Kind::Internal,
        }
    }
}

/// A bad row that stopped the replay (`--on-error fail`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    pub path: String,
    pub line: u64,
    pub error: RowError,
}

impl std::fmt::Display for BadRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {}. Every good row before it was sent. Fix the row, or pass `--on-error skip --rejects rejects.jsonl` to skip bad rows and keep them for later",
            self.path, self.line, self.error
        )
    }
}

/// How a replay ended.
#[derive(Debug)]
pub enum Ended {
    /// The input ran out (or `--limit` was reached).
    Complete,
    Stopped(StopReason),
    BadRow(BadRow),
    Unacknowledged(Vec<ProduceFailure>),
}

/// The final account of a replay.
#[derive(Debug)]
pub struct Report {
    pub read: u64,
    pub sent: u64,
    pub skipped: u64,
    /// Rows `--resume` found in the topic already.
    pub already: u64,
    pub failed: u64,
    pub bytes: u64,
    pub retries: u64,
    pub elapsed: Duration,
    pub schema: Schema,
    pub ended: Ended,
    /// `--sample`: `read` is the pool the rows were drawn from, not rows consumed.
    pub sampled: bool,
}

impl Report {
    /// Logs why the run ended badly, if it did (the summary line says how much).
    pub fn log_failures(&self) {
        match &self.ended {
            Ended::BadRow(b) => tracing::error!("{b}"),
            Ended::Unacknowledged(failures) => {
                for f in failures {
                    tracing::error!(
                        "kafka partition {}: {} row(s) not acknowledged by the broker: {}",
                        f.partition,
                        f.rows,
                        f.error
                    );
                }
            }
            _ => {}
        }
    }

    /// How the run failed, if it did (`None`: it completed).
    pub fn failure(&self) -> Option<Kind> {
        match &self.ended {
            Ended::Complete => None,
            Ended::Stopped(r) => Some(r.kind()),
            Ended::BadRow(_) => Some(Kind::BadInput),
            Ended::Unacknowledged(_) => Some(Kind::Unacknowledged),
        }
    }

    /// The summary's numbers, for `--log-format json`.
    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("read", self.read),
            ("sent", self.sent),
            ("skipped", self.skipped),
            ("already_sent", self.already),
            ("failed", self.failed),
            ("retries", self.retries),
            ("bytes", self.bytes),
        ]
    }

    /// The one-line summary printed at the end.
    pub fn summary(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        let counts = if self.sampled {
            format!("{} rows sent, drawn at random from a pool of {} rows", self.sent, self.read)
        } else if self.already > 0 {
            format!("{} rows read, {} in the topic already (--resume), {} sent", self.read, self.already, self.sent)
        } else {
            format!("{} rows read, {} sent", self.read, self.sent)
        };
        format!(
            "replay: {counts}, {} skipped, {} failed, {} retries, {} in {:.2} s ({:.0} rows/s, {}/s){}",
            self.skipped,
            self.failed,
            self.retries,
            crate::units::human_bytes(self.bytes),
            secs,
            self.sent as f64 / secs.max(1e-9),
            crate::units::human_bytes((self.bytes as f64 / secs.max(1e-9)) as u64),
            match &self.ended {
                Ended::Complete => String::new(),
                Ended::Stopped(r) => format!("; stopped by {r:?}"),
                Ended::BadRow(_) => "; stopped at a bad row".into(),
                Ended::Unacknowledged(f) => format!("; {} partition(s) gave up", f.len()),
            }
        )
    }
}

/// `ticklake schema infer FILE`: the schema replay would pick for `input`, as TOML.
pub async fn infer_schema_toml(input: Input) -> Result<String, ReplayError> {
    tokio::task::spawn_blocking(move || -> Result<String, ReplayError> {
        let mut src = CsvSource::new(&input, Default::default())?;
        Ok(src.resolve_schema(None)?.0.to_toml())
    })
    .await
    .map_err(|e| ReplayError::Internal(format!("schema inference: {e}")))?
}

/// Partitions of a topic that `--sample` creates (a live feed of a row a second).
pub const LIVE_FEED_PARTITIONS: i32 = 1;

/// Runs a replay to its end. Prints nothing on stdout; progress and the summary go to stderr.
pub async fn run(kafka_cfg: KafkaConfig, cfg: ReplayConfig, shutdown: Shutdown) -> Result<Report, ReplayError> {
    if (cfg.loop_input || cfg.sample) && cfg.input == Input::Stdin {
        return Err(ReplayError::Config("--loop and --sample need a file, not stdin".into()));
    }
    if cfg.resume && (cfg.loop_input || cfg.sample) {
        return Err(ReplayError::Config(
            "--resume continues a file from the line each partition reached; with --sample or --loop a line is sent \
             many times, so there is nothing to resume"
                .into(),
        ));
    }
    if cfg.resume && cfg.input == Input::Stdin {
        return Err(ReplayError::Config(
            "--resume needs a file (it knows the file by its first 64 KiB and size); stdin has no identity".into(),
        ));
    }
    let started = Instant::now();
    let consumed = Arc::new(AtomicU64::new(0));

    // Open the input and decide the schema before touching the network: bad input fails fast.
    let (source, schema) = {
        let (input, given, consumed) = (cfg.input.clone(), cfg.schema.clone(), consumed.clone());
        tokio::task::spawn_blocking(move || -> Result<_, ReplayError> {
            let mut src = CsvSource::new(&input, consumed)?;
            let (schema, choice) = src.resolve_schema(given)?;
            log_schema_choice(&src, &schema, &choice);
            Ok((src, schema))
        })
        .await
        .expect("schema task panicked")?
    };
    let parser = RowParser::new(schema.clone(), &source.header)
        .map_err(|e| ReplayError::Schema { path: source.name().to_string(), source: e })?;

    let kafka = Kafka::connect(kafka_cfg).await?;
    shutdown.mark_running();
    let topic = match kafka.topic(&cfg.topic).await {
        Ok(t) => t,
        // A live feed (`--sample`) creates its topic like `--partitions` does: one partition carries a row a second
        // with room to spare. A batch replay without `--partitions` stops instead (a typo'd topic name).
        Err(kafka::Error::TopicMissing { .. }) if cfg.create_partitions.is_some() || cfg.sample => {
            let n = cfg.create_partitions.unwrap_or(LIVE_FEED_PARTITIONS);
            tracing::info!(topic = %cfg.topic, partitions = n, "creating topic");
            match kafka.create_topic(&cfg.topic, n, 1).await {
                Ok(()) | Err(kafka::Error::TopicExists { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            kafka.topic(&cfg.topic).await?
        }
        Err(e) => {
            return Err(e
                .with_topic_hint(&format!(
                    "Pass --partitions N to create it (or `ticklake topic create {} --partitions N`)",
                    cfg.topic
                ))
                .into());
        }
    };
    let partitions = topic.partitions.len() as i32;
    if let Some(want) = cfg.create_partitions
        && want != partitions
    {
        tracing::warn!(topic = %cfg.topic, have = partitions, asked = want, "topic exists with a different partition count; using it as it is");
    }

    // Records carry their file and line (`resume`), except where lines repeat (--sample, --loop).
    let source_id = match cfg.sample || cfg.loop_input {
        true => None,
        false => resume::source_id(&cfg.input, partitions).map_err(ReplayError::Config)?,
    };
    let resume_points = match (&source_id, cfg.resume) {
        (Some(id), true) => {
            let points = resume::resume_points(&kafka, &cfg.topic, &topic.partitions, id).await?;
            tracing::info!(lines = ?points, "--resume: each partition holds its rows up to these lines; sending the rest");
            Some(points)
        }
        _ => None,
    };

    let counters = Arc::new(Counters::default());
    let metrics = match cfg.metrics_addr {
        Some(addr) => {
            let c = counters.clone();
            let served = crate::metrics::serve(addr, Arc::new(move || c.render()), shutdown.clone()).await;
            Some(served.map_err(|e| ReplayError::Config(e.to_string()))?)
        }
        None => None,
    };
    let mut senders = Vec::new();
    let mut workers = Vec::new();
    let producer = Arc::new(
        crate::kafka::producer::Producer::start(kafka.config(), &cfg.topic, cfg.produce.idempotence, source_id.clone())
            .await?,
    );
    for &p in &topic.partitions {
        let (tx, handle) =
            produce::spawn_worker(producer.partition(p), cfg.produce.clone(), counters.clone(), QUEUE_CHUNKS);
        senders.push(tx);
        workers.push(handle);
    }

    let rejects = match &cfg.rejects {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|source| ReplayError::Rejects { path: path.clone(), source })?,
        )),
        None => None,
    };
    let progress =
        progress::Progress::start(cfg.progress, counters.clone(), consumed.clone(), cfg.input.size_bytes(), cfg.limit);
    let reader = Reader {
        cfg: cfg.clone(),
        parser,
        // A stamped row's event time is its send time; a date column can only hold its day, so the record timestamp
        // comes from the clock in milliseconds, not from the stamped date's midnight.
        encoder: RecordEncoder::new(
            schema.clone(),
            partitions,
            if cfg.stamp_now { TimestampMode::Now } else { cfg.timestamp },
        ),
        resume: resume_points,
        already: 0,
        senders,
        pending: vec![Vec::new(); partitions as usize],
        pacer: Pacer::new(cfg.pace),
        counters: counters.clone(),
        shutdown: shutdown.clone(),
        rejects,
        consumed,
        accepted: 0,
        row: Vec::new(),
        track_position: CsvSource::tracks_position(&cfg.input),
        chunk_rows: if cfg.pace == Pace::FlatOut && cfg.input != Input::Stdin { CHUNK_ROWS } else { 1 },
    };
    let reader_end = tokio::task::spawn_blocking(move || reader.run(source)).await.expect("reader thread panicked")?;

    let mut failures = Vec::new();
    for w in workers {
        if let Some(f) = w.await.expect("produce worker panicked") {
            failures.push(f);
        }
    }
    progress.finish().await;
    if let Some(m) = metrics {
        m.abort();
    }

    let ended = if !failures.is_empty() {
        Ended::Unacknowledged(failures)
    } else {
        match reader_end {
            ReaderEnd::BadRow(b) => Ended::BadRow(b),
            ReaderEnd::Done => shutdown.reason().map_or(Ended::Complete, Ended::Stopped),
        }
    };
    Ok(Report {
        read: counters.read.load(Ordering::SeqCst),
        sent: counters.sent.load(Ordering::SeqCst),
        skipped: counters.skipped.load(Ordering::SeqCst),
        already: counters.already.load(Ordering::SeqCst),
        failed: counters.failed.load(Ordering::SeqCst),
        bytes: counters.bytes_sent.load(Ordering::SeqCst),
        retries: counters.retries.load(Ordering::SeqCst),
        elapsed: started.elapsed(),
        schema,
        ended,
        sampled: cfg.sample,
    })
}

fn log_schema_choice(src: &CsvSource, schema: &Schema, choice: &SchemaChoice) {
    match choice {
        SchemaChoice::Given => tracing::info!(input = src.name(), schema = %schema.name, "using the given schema"),
        SchemaChoice::Preset { extras } if extras.is_empty() => {
            tracing::info!(input = src.name(), schema = %schema.name, "header matches a preset")
        }
        SchemaChoice::Preset { extras } => tracing::info!(
            input = src.name(), schema = %schema.name, extra = ?extras,
            "header matches a preset; extra columns kept with inferred types"
        ),
        SchemaChoice::Inferred => {
            tracing::info!(
                input = src.name(),
                "no preset matches the header; inferred this schema (save it with `ticklake schema infer FILE > schema.toml`):\n{}",
                schema.to_toml()
            );
            let key = schema.key.as_deref().unwrap_or("(none: records are spread round-robin)");
            for (preset, near) in crate::schema::resolve::near_presets(&src.header) {
                let pairs: Vec<String> = near.iter().map(|(h, p)| format!("`{h}` vs `{p}`")).collect();
                tracing::warn!(
                    input = src.name(),
                    "header is close to preset {preset}: {}? The inferred schema keys records by `{key}`; rename the header to use the preset",
                    pairs.join(", ")
                );
            }
        }
    }
}
