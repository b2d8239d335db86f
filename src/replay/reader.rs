//! Replay's blocking half: read CSV rows, type them, encode them, pace them, and hand chunks to the partition
//! workers (`produce`). Runs on a blocking thread; `run` in the parent module wires it to the async side.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::Sender;

use super::encode::RecordEncoder;
use super::pacing::Pacer;
use super::produce::{Chunk, Counters};
use super::row::{RowError, RowParser};
use super::source::CsvSource;
use super::{BadRow, OnError, ReplayConfig, ReplayError};
use crate::schema::Row;
use crate::shutdown::Shutdown;

pub(super) enum ReaderEnd {
    Done,
    BadRow(BadRow),
}

/// The blocking half of the pipeline: reads, types, encodes, paces and hands chunks to partition workers.
pub(super) struct Reader {
    pub(super) cfg: ReplayConfig,
    pub(super) parser: RowParser,
    pub(super) encoder: RecordEncoder,
    pub(super) senders: Vec<Sender<Chunk>>,
    /// Per-partition records not yet handed to their worker.
    pub(super) pending: Vec<Chunk>,
    pub(super) pacer: Pacer,
    pub(super) counters: Arc<Counters>,
    pub(super) shutdown: Shutdown,
    pub(super) rejects: Option<std::io::BufWriter<std::fs::File>>,
    pub(super) consumed: Arc<AtomicU64>,
    /// Rows handed to the producer so far (for `--limit`).
    pub(super) accepted: u64,
    /// The row buffer, reused for every CSV row.
    pub(super) row: Row,
    /// Progress is the byte offset of the last row taken (plain files), not bytes read ahead.
    pub(super) track_position: bool,
    /// `--resume`: per partition, the last line the topic holds; rows up to it are skipped as sent.
    pub(super) resume: Option<Vec<u64>>,
    /// Rows skipped by `resume` so far.
    pub(super) already: u64,
    /// Records per chunk handed to a worker: `CHUNK_ROWS` flat out from a file; 1 when paced or from stdin, where
    /// the next row may be long in coming and the worker's linger should batch instead.
    pub(super) chunk_rows: usize,
}

/// Why the reader stopped taking rows.
enum Step {
    Go,
    Stop,
    Bad(BadRow),
}

impl Reader {
    pub(super) fn run(mut self, first: CsvSource) -> Result<ReaderEnd, ReplayError> {
        let result = if self.cfg.sample { self.run_sample(first) } else { self.run_sequential(first) };
        // Whatever happened, what was read and typed is sent.
        self.flush_all();
        if let Some(w) = &mut self.rejects {
            w.flush().map_err(|source| ReplayError::Rejects {
                path: self.cfg.rejects.clone().unwrap_or_default(),
                source,
            })?;
        }
        if self.encoder.future > 0 {
            tracing::warn!(
                rows = self.encoder.future,
                "rows with event times more than an hour ahead got the send time as Kafka timestamp (Apache Kafka 4 refuses timestamps over message.timestamp.after.max.ms ahead, 1 h by default); their event time is in the value"
            );
        }
        if self.encoder.pre_epoch > 0 {
            tracing::warn!(
                rows = self.encoder.pre_epoch,
                "rows with event times before 1970 got the send time as Kafka timestamp (Kafka timestamps must be non-negative); their event time is in the value"
            );
        }
        result
    }

    fn run_sequential(&mut self, mut src: CsvSource) -> Result<ReaderEnd, ReplayError> {
        loop {
            while let Some((line, rec)) = src.next_row()? {
                match self.take(src.name(), line, &rec)? {
                    Step::Go => {}
                    Step::Stop => return Ok(ReaderEnd::Done),
                    Step::Bad(b) => return Ok(ReaderEnd::BadRow(b)),
                }
            }
            if !self.cfg.loop_input || self.counters.read.load(Ordering::Relaxed) == 0 {
                return Ok(ReaderEnd::Done);
            }
            self.consumed.store(0, Ordering::Relaxed);
            src = CsvSource::new(&self.cfg.input, self.consumed.clone())?;
        }
    }

    fn run_sample(&mut self, mut src: CsvSource) -> Result<ReaderEnd, ReplayError> {
        let mut rows: Vec<Row> = Vec::new();
        while let Some((line, rec)) = src.next_row()? {
            self.counters.read.fetch_add(1, Ordering::Relaxed);
            match self.parser.parse(&rec) {
                Ok(row) => rows.push(row),
                Err(error) => {
                    if let Step::Bad(b) = self.reject(src.name(), line, &rec, error)? {
                        return Ok(ReaderEnd::BadRow(b));
                    }
                }
            }
        }
        if rows.is_empty() {
            return Err(ReplayError::Config(format!("{}: no valid rows to sample from", src.name())));
        }
        tracing::info!(rows = rows.len(), "sampling rows at random, with replacement");
        let mut rng = rand::rng();
        loop {
            let row = &rows[rand::Rng::random_range(&mut rng, 0..rows.len())];
            if let Step::Stop = self.send(row, None, None) {
                return Ok(ReaderEnd::Done);
            }
        }
    }

    /// Takes one CSV row through typing, encoding and pacing.
    fn take(&mut self, path: &str, line: u64, rec: &csv::ByteRecord) -> Result<Step, ReplayError> {
        self.counters.read.fetch_add(1, Ordering::Relaxed);
        if self.track_position
            && let Some(pos) = rec.position()
        {
            self.consumed.store(pos.byte(), Ordering::Relaxed);
        }
        let mut row = std::mem::take(&mut self.row);
        let step = match self.parser.parse_into(rec, &mut row) {
            Ok(()) => {
                let (queued, already) = (self.accepted, self.already);
                let step = self.send(&row, Some(rec), Some(line));
                if self.accepted == queued && self.already == already {
                    // A stop came while this row waited for its turn (pacing): it was never sent, so it is not
                    // counted as read either, and the summary's counts add up (read = sent + skipped + failed).
                    self.counters.read.fetch_sub(1, Ordering::Relaxed);
                }
                Ok(step)
            }
            Err(error) => self.reject(path, line, rec, error),
        };
        self.row = row;
        step
    }

    fn reject(&mut self, path: &str, line: u64, rec: &csv::ByteRecord, error: RowError) -> Result<Step, ReplayError> {
        if self.cfg.on_error == OnError::Fail {
            return Ok(Step::Bad(BadRow { path: path.to_string(), line, error }));
        }
        self.counters.skipped.fetch_add(1, Ordering::Relaxed);
        if let Some(w) = &mut self.rejects {
            let mut raw = csv::WriterBuilder::new().from_writer(vec![]);
            let _ = raw.write_byte_record(rec);
            let raw = raw.into_inner().unwrap_or_default();
            let entry = serde_json::json!({
                "file": path,
                "line": line,
                "column": error.column,
                "reason": error.reason,
                "raw": String::from_utf8_lossy(&raw).trim_end(),
            });
            writeln!(w, "{entry}").map_err(|source| ReplayError::Rejects {
                path: self.cfg.rejects.clone().unwrap_or_default(),
                source,
            })?;
        } else {
            tracing::warn!("skipped {path}:{line}: {error}");
        }
        Ok(Step::Go)
    }

    /// With `--stamp-now`: the event-time column and the value "now" takes in it.
    fn stamp_at(&self) -> Option<(usize, crate::schema::Value)> {
        if !self.cfg.stamp_now {
            return None;
        }
        let i = self.parser.schema().event_time_index()?;
        let now = chrono::Utc::now().timestamp_millis();
        Some(match self.parser.schema().fields[i].ty {
            crate::schema::ColumnType::Date => (i, crate::schema::Value::Date(now.div_euclid(86_400_000) as i32)),
            _ => (i, crate::schema::Value::Timestamp(now)),
        })
    }

    fn should_stop(&self) -> bool {
        self.shutdown.is_set() || self.counters.aborted.load(Ordering::Relaxed)
    }

    /// Paces, encodes and queues one row (from CSV line `line`). `Stop` when the limit is reached or a stop was
    /// asked for. A row `--resume` finds in the topic already is counted and skipped, unpaced.
    fn send(&mut self, row: &Row, rec: Option<&csv::ByteRecord>, line: Option<u64>) -> Step {
        if self.should_stop() {
            return Step::Stop;
        }
        let p = self.encoder.partition(row);
        if let (Some(points), Some(line)) = (&self.resume, line)
            && line <= points[p as usize]
        {
            self.already += 1;
            self.counters.already.fetch_add(1, Ordering::Relaxed);
            return Step::Go;
        }
        let delay = self.pacer.delay(Instant::now(), self.encoder.event_millis(row));
        if !delay.is_zero() {
            self.flush_all();
            if !self.sleep(delay) {
                return Step::Stop;
            }
        }
        let parser = &self.parser;
        let stamped;
        let (row, verbatim_except) = match self.stamp_at() {
            Some((i, now)) => {
                let mut r = row.clone();
                r[i] = now;
                stamped = r;
                (&stamped, Some(i))
            }
            None => (row, None),
        };
        let e = self.encoder.encode(
            row,
            p,
            |i| if Some(i) == verbatim_except { None } else { rec.and_then(|r| parser.cell(r, i)) },
            256,
        );
        let p = e.partition as usize;
        self.pending[p].push((e.record, line.unwrap_or(0)));
        if self.pending[p].len() >= self.chunk_rows {
            self.flush(p);
        }
        self.accepted += 1;
        if self.cfg.limit.is_some_and(|l| self.accepted >= l) { Step::Stop } else { Step::Go }
    }

    /// Sleeps up to `d`, waking early for a stop. False if a stop was asked for.
    fn sleep(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        while Instant::now() < until {
            if self.should_stop() {
                return false;
            }
            std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
        }
        !self.should_stop()
    }

    fn flush(&mut self, p: usize) {
        if self.pending[p].is_empty() {
            return;
        }
        let chunk = std::mem::take(&mut self.pending[p]);
        let n = chunk.len() as u64;
        if self.senders[p].blocking_send(chunk).is_err() {
            // The worker is gone (it can only end after its channel closes, so this is a bug guard).
            self.counters.failed.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn flush_all(&mut self) {
        for p in 0..self.pending.len() {
            self.flush(p);
        }
    }
}
