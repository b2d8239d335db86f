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
//! Each partition has exactly one batch in flight: rskafka has no idempotent producer, so two in-flight batches
//! to one partition could be reordered by a retry, and per-symbol order is a promise. Partitions run in
//! parallel. A batch is acknowledged (counted as sent) only when the broker answered with offsets; a batch that
//! still fails when the retry deadline passes stops the replay, and it and everything queued behind it is
//! reported as not acknowledged.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rskafka::client::partition::PartitionClient;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::kafka::{Compression, Kafka, Record};

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
}

/// Counters shared by the reader, the workers and the progress display.
#[derive(Debug, Default)]
pub struct Counters {
    pub read: AtomicU64,
    pub sent: AtomicU64,
    pub skipped: AtomicU64,
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
        t.counter("ticklake_replay_rejects_total", "Rows skipped as bad input (--on-error skip).", n(&self.skipped));
        t.counter("ticklake_replay_failed_total", "Rows the broker never acknowledged.", n(&self.failed));
        t.counter("ticklake_replay_retries_total", "Produce requests retried.", n(&self.retries));
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

/// A chunk of records for one partition.
pub type Chunk = Vec<Record>;

/// Spawns one worker for `partition`; returns the sender the reader feeds.
pub fn spawn_worker(
    kafka: Kafka,
    client: Arc<PartitionClient>,
    cfg: ProduceConfig,
    counters: Arc<Counters>,
    queue: usize,
) -> (mpsc::Sender<Chunk>, tokio::task::JoinHandle<Option<ProduceFailure>>) {
    let (tx, rx) = mpsc::channel(queue);
    let handle = tokio::spawn(worker(kafka, client, rx, cfg, counters));
    (tx, handle)
}

async fn worker(
    kafka: Kafka,
    client: Arc<PartitionClient>,
    mut rx: mpsc::Receiver<Chunk>,
    cfg: ProduceConfig,
    counters: Arc<Counters>,
) -> Option<ProduceFailure> {
    let mut failure: Option<ProduceFailure> = None;
    let mut closed = false;
    while !closed {
        let Some(mut batch) = rx.recv().await else { break };
        let mut bytes: usize = batch.iter().map(Record::approximate_size).sum();
        let deadline = Instant::now() + cfg.linger;
        while bytes < cfg.batch_bytes {
            tokio::select! {
                biased;
                more = rx.recv() => match more {
                    Some(chunk) => {
                        bytes += chunk.iter().map(Record::approximate_size).sum::<usize>();
                        batch.extend(chunk);
                    }
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
        match send_with_retry(&kafka, &client, batch, &cfg, &counters).await {
            Ok(()) => {
                counters.sent.fetch_add(n, Ordering::Relaxed);
                counters.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::error!(partition = client.partition(), rows = n, "{error}");
                counters.failed.fetch_add(n, Ordering::Relaxed);
                counters.aborted.store(true, Ordering::SeqCst);
                failure = Some(ProduceFailure { partition: client.partition(), rows: n, error });
            }
        }
    }
    failure
}

/// A batch's keys and values in one buffer, to rebuild the records for a retry: rskafka's `produce` consumes the
/// batch, and cloning every record for every attempt cost two allocations per record on the hot path.
struct Snapshot {
    bytes: Vec<u8>,
    /// Per record: key length (`None` = no key), value length, timestamp.
    items: Vec<(Option<u32>, u32, chrono::DateTime<chrono::Utc>)>,
}

impl Snapshot {
    /// `None` when a record has headers or no value (never the case for replay's records): then clone instead.
    fn take(batch: &[Record]) -> Option<Snapshot> {
        let size: usize = batch.iter().map(Record::approximate_size).sum();
        let mut bytes = Vec::with_capacity(size);
        let mut items = Vec::with_capacity(batch.len());
        for r in batch {
            let value = r.value.as_ref().filter(|_| r.headers.is_empty())?;
            let key_len = r.key.as_ref().map(|k| {
                bytes.extend_from_slice(k);
                k.len() as u32
            });
            bytes.extend_from_slice(value);
            items.push((key_len, value.len() as u32, r.timestamp));
        }
        Some(Snapshot { bytes, items })
    }

    fn restore(&self) -> Vec<Record> {
        let mut at = 0;
        let mut take = |n: u32| {
            let s = self.bytes[at..at + n as usize].to_vec();
            at += n as usize;
            s
        };
        self.items
            .iter()
            .map(|&(key_len, value_len, timestamp)| Record {
                key: key_len.map(&mut take),
                value: Some(take(value_len)),
                headers: Default::default(),
                timestamp,
            })
            .collect()
    }
}

/// Longest wait between two produce attempts.
const MAX_PRODUCE_BACKOFF: Duration = Duration::from_secs(5);

/// Produces one batch, retrying transient failures until `cfg.retry_for` has passed (see `crate::backoff`).
async fn send_with_retry(
    kafka: &Kafka,
    client: &PartitionClient,
    batch: Vec<Record>,
    cfg: &ProduceConfig,
    counters: &Counters,
) -> Result<(), crate::kafka::Error> {
    let snapshot = Snapshot::take(&batch);
    let fallback = if snapshot.is_none() { Some(batch.clone()) } else { None };
    let mut first = Some(batch);
    let what = format!("produce to {}/{}", client.topic(), client.partition());
    crate::backoff::retry(&what, cfg.retry_for, MAX_PRODUCE_BACKOFF, crate::kafka::Error::is_transient, |attempt| {
        if attempt > 0 {
            counters.retries.fetch_add(1, Ordering::Relaxed);
        }
        let records = match (first.take(), &snapshot, &fallback) {
            (Some(b), _, _) => b,
            (None, Some(s), _) => s.restore(),
            (None, None, Some(f)) => f.clone(),
            (None, None, None) => unreachable!("a snapshot or a fallback copy is always kept"),
        };
        kafka.deadline("produce", client.topic(), client.partition(), client.produce(records, cfg.compression))
    })
    .await
    .map(|_offsets| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_restores_the_batch_exactly() {
        let ts = chrono::DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        let batch = vec![
            Record {
                key: Some(b"HSI".to_vec()),
                value: Some(b"{\"a\":1}".to_vec()),
                headers: Default::default(),
                timestamp: ts,
            },
            Record { key: None, value: Some(b"{}".to_vec()), headers: Default::default(), timestamp: ts },
            Record { key: Some(vec![]), value: Some(vec![]), headers: Default::default(), timestamp: ts },
        ];
        assert_eq!(Snapshot::take(&batch).unwrap().restore(), batch);
        let mut with_header = batch.clone();
        with_header[0].headers.insert("h".into(), vec![1]);
        assert!(Snapshot::take(&with_header).is_none());
    }
}
