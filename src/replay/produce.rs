//! Stage 4 of replay: records → Kafka, batched per partition.
//!
//! ```text
//!  reader thread (CSV → row → record)          tokio runtime
//!  ┌──────────────────────────────┐   chunk    ┌──────────────────────────┐
//!  │ per-partition chunk (≤ 256)  │──channel──▶│ worker p0: linger/bytes  │──produce──▶ broker
//!  │                              │──channel──▶│ worker p1   one batch in │──produce──▶
//!  │                              │──channel──▶│ worker pN   flight each  │──produce──▶
//!  └──────────────────────────────┘ (bounded)  └──────────────────────────┘
//! ```
//!
//! Each partition has exactly one batch in flight, so a resend can never overtake a later batch and per-symbol order
//! holds. Batches are encoded once (`kafka::producer`) and resent byte for byte: with the idempotent producer (the
//! default where the broker has it) a resend of a batch the broker stored is dropped by the broker, not stored
//! twice. Partitions run in parallel. A batch is acknowledged (counted as sent) only when the broker answered; a
//! batch that still fails when the retry deadline passes stops the replay, and it and everything queued behind it
//! is reported as not acknowledged. Every resend is counted (`retries`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::kafka::producer::{Idempotence, PartitionSender};
use crate::kafka::{Compression, Record};

/// Producer knobs, validated.
#[derive(Debug, Clone)]
pub struct ProduceConfig {
    /// How long a partition's first record waits for company before its batch goes.
    pub linger: Duration,
    /// Uncompressed bytes per batch (per partition) before it goes without waiting for `linger`.
    pub batch_bytes: usize,
    pub compression: Compression,
    /// How long a failing batch is retried before the replay gives up on it.
    pub retry_for: Duration,
    pub idempotence: Idempotence,
}

/// Counters shared by the reader, the workers and the progress display.
#[derive(Debug, Default)]
pub struct Counters {
    pub read: AtomicU64,
    pub sent: AtomicU64,
    pub skipped: AtomicU64,
    /// Rows `--resume` found in the topic already (not sent again).
    pub already: AtomicU64,
    pub failed: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub retries: AtomicU64,
    /// Set by a worker that gave up; tells the reader to stop.
    pub aborted: AtomicBool,
}

impl Counters {
    /// Prometheus text for `/metrics` (see `crate::metrics`).
    pub fn render(&self) -> String {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut t = crate::metrics::Text::default();
        t.counter("ticklake_replay_rows_read_total", "CSV rows read.", n(&self.read));
        t.counter("ticklake_replay_rows_sent_total", "Rows acknowledged by the broker.", n(&self.sent));
        t.counter("ticklake_replay_bytes_sent_total", "Uncompressed record bytes acknowledged.", n(&self.bytes_sent));
        t.counter(
            "ticklake_replay_rows_already_sent_total",
            "Rows --resume found in the topic already.",
            n(&self.already),
        );
        t.counter("ticklake_replay_rejects_total", "Rows skipped as bad input (--on-error skip).", n(&self.skipped));
        t.counter("ticklake_replay_failed_total", "Rows the broker never acknowledged.", n(&self.failed));
        t.counter("ticklake_replay_retries_total", "Produce requests resent.", n(&self.retries));
        t.finish()
    }
}

/// What a worker that gave up reports.
#[derive(Debug)]
pub struct ProduceFailure {
    pub partition: i32,
    pub rows: u64,
    pub error: crate::kafka::Error,
}

/// A chunk of records for one partition, each with its CSV line (0 when lines mean nothing: --sample).
pub type Chunk = Vec<(Record, u64)>;

/// Moves a chunk's records and lines onto the batch being gathered.
fn take(chunk: Chunk, batch: &mut Vec<Record>, lines: &mut Vec<u64>, bytes: &mut usize) {
    for (r, line) in chunk {
        *bytes += r.approximate_size();
        batch.push(r);
        lines.push(line);
    }
}

/// Spawns one worker for `sender`'s partition; returns the channel the reader feeds.
pub fn spawn_worker(
    sender: PartitionSender,
    cfg: ProduceConfig,
    counters: Arc<Counters>,
    queue: usize,
) -> (mpsc::Sender<Chunk>, tokio::task::JoinHandle<Option<ProduceFailure>>) {
    let (tx, rx) = mpsc::channel(queue);
    let handle = tokio::spawn(worker(sender, rx, cfg, counters));
    (tx, handle)
}

async fn worker(
    mut sender: PartitionSender,
    mut rx: mpsc::Receiver<Chunk>,
    cfg: ProduceConfig,
    counters: Arc<Counters>,
) -> Option<ProduceFailure> {
    let mut failure: Option<ProduceFailure> = None;
    let mut closed = false;
    let partition = sender.partition();
    while !closed {
        let Some(first) = rx.recv().await else { break };
        let mut batch = Vec::with_capacity(first.len());
        let mut lines = Vec::with_capacity(first.len());
        let mut bytes = 0;
        take(first, &mut batch, &mut lines, &mut bytes);
        let deadline = Instant::now() + cfg.linger;
        while bytes < cfg.batch_bytes {
            tokio::select! {
                biased;
                more = rx.recv() => match more {
                    Some(chunk) => take(chunk, &mut batch, &mut lines, &mut bytes),
                    None => { closed = true; break }
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        if let Some(f) = &mut failure {
            // Already gave up: everything behind the failed batch is reported, not sent out of order.
            f.rows += batch.len() as u64;
            counters.failed.fetch_add(batch.len() as u64, Ordering::Relaxed);
            continue;
        }
        let n = batch.len() as u64;
        let sent = match sender.encode(&batch, &lines, cfg.compression) {
            Ok(encoded) => sender.send(encoded, n as usize, cfg.retry_for).await,
            Err(e) => Err(e),
        };
        match sent {
            Ok(s) => {
                counters.retries.fetch_add(s.resends, Ordering::Relaxed);
                counters.sent.fetch_add(n, Ordering::Relaxed);
                counters.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::error!(partition, rows = n, "{error}");
                counters.failed.fetch_add(n, Ordering::Relaxed);
                counters.aborted.store(true, Ordering::SeqCst);
                failure = Some(ProduceFailure { partition, rows: n, error });
            }
        }
    }
    failure
}
