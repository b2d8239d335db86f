//! Stage 4 of replay: records → Kafka, batched per partition.
//!
//! ```text
//!  reader thread (CSV → row → record)          tokio runtime
//!  ┌──────────────────────────────┐   chunk    ┌──────────────────────────┐
//!  │ per-partition chunk (≤ 256)  │──channel──▶│ worker p0: linger/bytes  │──produce──▶ broker
//!  │                              │──channel──▶│ worker p1  up to 5 in    │──produce──▶
//!  │                              │──channel──▶│ worker pN  flight each   │──produce──▶
//!  └──────────────────────────────┘ (bounded)  └──────────────────────────┘
//! ```
//!
//! Each partition's batches are encoded in order by its worker and sent by a task of its own (`kafka::in_flight`:
//! order kept, a failed batch resent; one in flight for now, up to five once switched on), so per-symbol order
//! holds. Batches are encoded once (`kafka::producer`) and resent byte for byte: with the
//! idempotent producer (the default where the broker has it) a resend of a batch the broker stored is dropped by the
//! broker, not stored twice. Partitions run in parallel. A batch is acknowledged (counted as sent) only when the
//! broker answered; a batch that still fails when the retry deadline passes stops the replay, and it and everything
//! queued behind it
//! is reported as not acknowledged. Every resend is counted (`retries`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::kafka::in_flight::{self, Encoded};
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
    let partition = sender.partition();
    // Encoding here, sending there: the next batch gathers and encodes while up to five are on the wire.
    let (to_wire, wire_rx) = mpsc::channel::<Encoded>(1);
    let sending = {
        let (counters, wire_sender, retry_for) = (counters.clone(), sender.clone(), cfg.retry_for);
        tokio::spawn(async move {
            let stored = |b: &Encoded, resends| {
                counters.retries.fetch_add(resends, Ordering::Relaxed);
                counters.sent.fetch_add(b.rows, Ordering::Relaxed);
                counters.bytes_sent.fetch_add(b.size, Ordering::Relaxed);
            };
            // The reader stops at once; what it already queued is counted as not acknowledged.
            let giving_up = || counters.aborted.store(true, Ordering::SeqCst);
            in_flight::run(wire_sender, wire_rx, retry_for, stored, giving_up).await
        })
    };
    let mut closed = false;
    let mut unsent = 0;
    let mut early: Option<crate::kafka::Error> = None;
    // Reused batch to batch: grown once to a batch's size instead of from a chunk's on every batch (the regrowth
    // copied the records and faulted in fresh pages each time).
    let (mut batch, mut lines) = (Vec::new(), Vec::new());
    while !closed {
        let Some(first) = rx.recv().await else { break };
        batch.clear();
        lines.clear();
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
        let rows = batch.len() as u64;
        if early.is_some() {
            unsent += rows;
            continue;
        }
        let encoded = match sender.encode(&batch, &lines, cfg.compression) {
            Ok(e) => Encoded { bytes: e, rows, size: bytes as u64 },
            Err(e) => {
                early = Some(e);
                unsent += rows;
                continue;
            }
        };
        if to_wire.send(encoded).await.is_err() {
            // The sending task gave up: it reports its failure; these rows go with it.
            unsent += rows;
        }
    }
    drop(to_wire);
    let failed = sending.await.unwrap_or_else(|e| {
        Some(in_flight::Failed { error: sender.refused(format!("the partition's sending task failed: {e}")), rows: 0 })
    });
    let failure = match (failed, early) {
        (Some(f), _) => Some(ProduceFailure { partition, rows: f.rows + unsent, error: f.error }),
        (None, Some(error)) => Some(ProduceFailure { partition, rows: unsent, error }),
        (None, None) => None,
    };
    if let Some(f) = &failure {
        tracing::error!(partition, rows = f.rows, "{}", f.error);
        counters.failed.fetch_add(f.rows, Ordering::Relaxed);
        counters.aborted.store(true, Ordering::SeqCst);
    }
    failure
}
