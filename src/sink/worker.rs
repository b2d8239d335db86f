//! Sink stage 1: one task per Kafka partition. Fetch → decode → buffer → (cut → commit) until the end or a stop.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::buffer::PartitionBuffer;
use super::decode::Decoder;
use super::{Ctx, SinkError};
use crate::kafka::Error;
use crate::lake::layout::FileLayout;
use crate::lake::state::{Checkpoint, PendingCut, checkpoint_key};

/// Bytes asked for per fetch (compressed; zstd batches of JSON decompress to about 6x this in memory).
const FETCH_MAX_BYTES: i32 = 1024 * 1024;
/// How long a fetch waits for new data (and so how often quiet partitions check `--max-age`).
const FETCH_WAIT_MS: i32 = 500;
/// Longest wait between two fetch attempts after a failure.
const MAX_FETCH_BACKOFF: std::time::Duration = std::time::Duration::from_secs(5);

/// The partition's checkpoint with its version (every later write is conditional on it).
async fn load_checkpoint(ctx: &Ctx, p: i32) -> Result<Option<Checkpoint>, SinkError> {
    let key = checkpoint_key(&ctx.cfg.topic, p);
    let store = &ctx.committer.store;
    match crate::lake::retry("read", &key, ctx.cfg.retry_for, || store.get_versioned(&key)).await? {
        None => Ok(None),
        Some((bytes, etag)) => {
            serde_json::from_slice::<Checkpoint>(&bytes).map(|cp| Some(Checkpoint { etag: Some(etag), ..cp })).map_err(
                |e| SinkError::Corrupt(format!("{key} is not a valid checkpoint: {e}; it must not be edited by hand")),
            )
        }
    }
}

/// What stops a partition's worker: the sink's stop, or (`--group`) the group taking the partition back.
#[derive(Clone)]
pub(crate) struct Stop {
    pub shutdown: crate::shutdown::Shutdown,
    /// Drop what is buffered instead of committing it (the member lost its group session).
    pub discard: Arc<std::sync::atomic::AtomicBool>,
}

impl Stop {
    pub fn new(shutdown: crate::shutdown::Shutdown) -> Stop {
        Stop { shutdown, discard: Arc::default() }
    }
}

pub(crate) async fn run_partition(ctx: Arc<Ctx>, p: i32, stop: Stop) -> Result<(), SinkError> {
    let topic = ctx.cfg.topic.clone();
    let pc = ctx.kafka.partition(&topic, p).await?;
    let offsets = ctx.kafka.offsets(&pc).await?;
    // The partition's lease is held (`sink::run` took it). The checkpoint is rewritten with this sink's id, so that
    // a paused former holder's next conditional write is refused.
    // An Iceberg table records where each partition resumes in its snapshots; the checkpoint is only in memory.
    let mut cp = match &ctx.iceberg {
        Some(t) => Checkpoint::new(&topic, p, t.next_offset(p).unwrap_or(offsets.earliest)),
        None => match load_checkpoint(&ctx, p).await? {
            Some(mut cp) => {
                if cp.writer.as_deref() != Some(ctx.committer.fence.writer()) {
                    ctx.committer.save_checkpoint(&mut cp).await?;
                }
                cp
            }
            None => Checkpoint::new(&topic, p, offsets.earliest),
        },
    };
    // Retention: offsets the checkpoint still needs may be gone.
    let needed = cp.pending.map_or(cp.next_offset, |c| c.first);
    if offsets.earliest > needed {
        let lost = offsets.earliest - needed;
        if !ctx.cfg.skip_deleted {
            return Err(SinkError::RetentionGap { topic, partition: p, needed, earliest: offsets.earliest, lost });
        }
        tracing::warn!(
            partition = p,
            lost,
            "skipping offsets {needed}..{} that Kafka already deleted",
            offsets.earliest
        );
        cp.skipped.push(PendingCut { first: needed, last: offsets.earliest - 1 });
        cp.pending = None;
        cp.next_offset = offsets.earliest;
        if ctx.iceberg.is_none() {
            ctx.committer.save_checkpoint(&mut cp).await?;
        }
    }
    let redo = cp.pending;
    if let Some(r) = redo {
        tracing::info!(partition = p, first = r.first, last = r.last, "redoing a cut interrupted by a crash");
        cp.next_offset = r.first;
    }
    if let Ok(mut m) = ctx.stats.checkpoint.lock() {
        m.insert(p, cp.next_offset);
    }
    // Lag tools see where the lake stands from the start (a partition another member gave up included).
    if let Some(g) = &ctx.group_offsets {
        g.publish(p, cp.next_offset);
    }
    let end = offsets.high_watermark;
    let schema = ctx.committer.table.schema().await;
    let buf = PartitionBuffer::new(p, cp.next_offset, Arc::new(FileLayout::new(&schema, &ctx.spec)));
    let mut state = State { cp, inflight: None, buf, published_bytes: 0, unpublished_records: 0 };
    let consumed = consume(&ctx, p, &pc, end, redo, &mut state, &stop.shutdown).await;
    // Whatever happened, the commit under way finishes (or fails) before this returns: nothing of this partition is
    // still being written when the sink exits.
    let joined = finish_inflight(&mut state).await;
    let redo_left = consumed?;
    joined?;
    // The end or a stop: store what is buffered. An unfinished redo stays recorded; the next run completes it. A
    // member that lost its group session drops it instead: the partition's next owner reads it again.
    if stop.discard.load(Ordering::Relaxed) {
        ctx.buffered.fetch_sub(state.published_bytes, Ordering::Relaxed);
        tracing::info!(partition = p, rows = state.buf.rows, "dropped the buffered rows (the group session was lost)");
        return Ok(());
    }
    if !redo_left && !state.buf.is_empty() {
        start_commit(&ctx, &mut state).await?;
        finish_inflight(&mut state).await?;
    }
    tracing::debug!(partition = p, next_offset = state.cp.next_offset, "partition done");
    Ok(())
}

/// A partition's checkpoint, its buffer, and the one commit that may run while the next cut fills.
struct State {
    cp: Checkpoint,
    inflight: Option<tokio::task::JoinHandle<Result<Checkpoint, SinkError>>>,
    buf: PartitionBuffer,
    /// How much of `buf.bytes` is on the shared budget (`Ctx::buffered`), and the records not yet counted in the
    /// stats. Every worker updating the same atomics for every record made two cores fight over one cache line;
    /// they are published every `PUBLISH_EVERY` records, at the end of each fetch, and before a cut.
    published_bytes: usize,
    unpublished_records: u64,
}

/// Records between two updates of the shared counters (the budget may be overshot by this many records' bytes per
/// partition, a few hundred KiB).
const PUBLISH_EVERY: u64 = 1024;

impl State {
    fn unpublished_bytes(&self) -> usize {
        self.buf.bytes - self.published_bytes
    }

    fn publish(&mut self, ctx: &Ctx) {
        ctx.buffered.fetch_add(self.unpublished_bytes(), Ordering::Relaxed);
        self.published_bytes = self.buf.bytes;
        ctx.stats.records.fetch_add(std::mem::take(&mut self.unpublished_records), Ordering::Relaxed);
    }
}

/// Fetch → decode → buffer, cutting when a limit is reached, until the end or a stop. Returns whether an
/// interrupted cut (redo) is still unfinished.
async fn consume(
    ctx: &Arc<Ctx>,
    p: i32,
    pc: &rskafka::client::partition::PartitionClient,
    end: i64,
    mut redo: Option<PendingCut>,
    st: &mut State,
    stop: &crate::shutdown::Shutdown,
) -> Result<bool, SinkError> {
    let topic = &ctx.cfg.topic;
    let what = format!("fetch from {topic}/{p}");
    let mut next = st.cp.next_offset;
    let mut row = Vec::new();
    let mut unknown = Vec::new();
    let mut decoder = Decoder::new(st.buf.layout().schema.clone(), topic, ctx.cfg.max_record_bytes);
    let mut caught_up = false;
    loop {
        if ctx.cfg.exit_at_end && next >= end && redo.is_none() {
            break;
        }
        if stop.is_set() {
            break;
        }
        // A broker restart or a leader moving fails fetches for a while: retry within --retry-for, from the same
        // offset (nothing was consumed), instead of stopping the sink.
        let fetch =
            crate::backoff::retry(&what, ctx.cfg.retry_for, MAX_FETCH_BACKOFF, Error::is_transient, |attempt| {
                if attempt > 0 {
                    super::FETCH_RETRIES.fetch_add(1, Ordering::Relaxed);
                }
                ctx.kafka.fetch(pc, next, FETCH_MAX_BYTES, FETCH_WAIT_MS)
            });
        // Iceberg: a buffer due at the next --max-age tick is cut at the tick, not at the first fetch that returns
        // after it (a fetch waits for a record up to FETCH_WAIT_MS), so that every partition's cut joins the same
        // commit round. The fetch given up is made again from the same offset.
        let tick_due = if redo.is_none() { iceberg_tick(ctx, st) } else { None };
        let at_tick = async {
            match tick_due {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        let (records, hw) = tokio::select! {
            _ = at_tick => {
                flush_if_due(ctx, st, true).await?;
                continue;
            }
            r = fetch => match r {
                // Retention deleted the offsets the lake still needs while the sink ran (a topic of old record
                // timestamps under time retention loses them at the broker's next check): the same data-loss
                // stop as at start (exit 9), never a fetch retried at an offset that is gone.
                Err(Error::OffsetOutOfRange { .. }) => {
                    let o = ctx.kafka.offsets(pc).await?;
                    if o.earliest > next {
                        return Err(SinkError::RetentionGap {
                            topic: topic.to_string(),
                            partition: p,
                            needed: next,
                            earliest: o.earliest,
                            lost: o.earliest - next,
                        });
                    }
                    return Err(Error::OffsetOutOfRange { topic: topic.to_string(), partition: p, offset: next }.into());
                }
                r => r?,
            },
            _ = stop.wait() => break,
        };
        for rec in records {
            if rec.offset < next {
                continue; // a batch that starts before the offset asked for
            }
            if let Some(r) = redo
                && rec.offset > r.last
            {
                // The interrupted cut ended at r.last: redo exactly it, then go on.
                st.buf.cover_to(r.last);
                start_commit(ctx, st).await?;
                redo = None;
            }
            let mut decoded = decoder.decode(p, &rec, &mut row, &mut unknown);
            if decoded.is_ok() && !unknown.is_empty() {
                decoded = evolve(ctx, st, &mut decoder, p, &rec, &mut row, &mut unknown).await;
            }
            match decoded {
                Ok(()) => st.buf.push_row(&ctx.spec, &row, rec.offset, rec.record.timestamp.timestamp_millis()),
                Err(reject) => {
                    tracing::debug!(partition = p, offset = rec.offset, reason = %reject.reason, "rejected");
                    st.buf.push_reject(reject)
                }
            }
            st.unpublished_records += 1;
            if st.unpublished_records >= PUBLISH_EVERY {
                st.publish(ctx);
            }
            next = rec.offset + 1;
            if let Some(r) = redo
                && rec.offset == r.last
            {
                start_commit(ctx, st).await?;
                redo = None;
            }
            // Per record, not per fetch: one fetch can hold far more rows than --max-rows.
            if redo.is_none() {
                flush_if_due(ctx, st, false).await?;
            }
        }
        st.publish(ctx);
        if let Ok(mut lag) = ctx.stats.lag.lock() {
            lag.insert(p, (hw - next).max(0));
        }
        if !caught_up && next >= hw {
            caught_up = true;
            if !ctx.cfg.exit_at_end {
                tracing::info!(
                    kafka_partition = p,
                    offset = next,
                    "caught up with the end of the partition; following it"
                );
            }
        }
        // A quiet partition still cuts at --max-age.
        if redo.is_none() {
            flush_if_due(ctx, st, true).await?;
        }
    }
    Ok(redo.is_some())
}

/// A record carries fields the schema lacks: they become columns (a new schema version, shared by every partition),
/// the buffer gains them, and the record is decoded again. A field that cannot be a column makes it a reject.
async fn evolve(
    ctx: &Ctx,
    st: &mut State,
    decoder: &mut Decoder,
    p: i32,
    rec: &crate::kafka::RecordAndOffset,
    row: &mut crate::schema::Row,
    unknown: &mut Vec<crate::schema::wire::UnknownField>,
) -> Result<(), super::decode::Reject> {
    let schema = match ctx.committer.table.evolve(&ctx.cfg.topic, unknown, p, rec.offset).await {
        Ok((s, new_version)) => {
            if new_version {
                ctx.stats.schema_changes.fetch_add(1, Ordering::Relaxed);
            }
            s
        }
        Err(reason) => return Err(decoder.reject(p, rec, reason)),
    };
    if schema.fields.len() != decoder.schema.fields.len() {
        st.buf.adopt(Arc::new(FileLayout::new(&schema, &ctx.spec)));
        *decoder = Decoder::new(schema, &ctx.cfg.topic, ctx.cfg.max_record_bytes);
    }
    decoder.decode(p, rec, row, unknown)?;
    if !unknown.is_empty() {
        let names: Vec<&str> = unknown.iter().map(|(k, _)| k.as_str()).collect();
        return Err(decoder.reject(p, rec, format!("field(s) {} could not become columns", names.join(", "))));
    }
    Ok(())
}

/// Whether a limit is reached; `--max-age` only with `check_age` (reading the clock for every record was 1% of the
/// sink's CPU, and an age needs no record-level precision).
fn should_flush(ctx: &Ctx, st: &State, check_age: bool) -> bool {
    let buf = &st.buf;
    if buf.is_empty() {
        return false;
    }
    let est_file = buf.bytes as u64 * ctx.ratio_ppm.load(Ordering::Relaxed) / 1_000_000;
    buf.rows >= ctx.cfg.max_rows
        || est_file >= ctx.cfg.max_bytes
        || (check_age && buf.started.is_some_and(|s| aged(ctx, s)))
        || ctx.buffered.load(Ordering::Relaxed) + st.unpublished_bytes() > ctx.cfg.max_buffer
}

/// Whether a buffer started at `started` is due by `--max-age`. Hive: when it is that old. Iceberg: at the first
/// multiple of `--max-age` since the sink started after it began (never later than `--max-age`), so that every
/// partition cuts at the same moments and their cuts share a commit round: one snapshot, not one per partition.
fn aged(ctx: &Ctx, started: std::time::Instant) -> bool {
    if ctx.iceberg.is_none() {
        return started.elapsed() >= ctx.cfg.max_age;
    }
    next_tick(ctx, started).is_none_or(|t| std::time::Instant::now() >= t)
}

/// The first multiple of `--max-age` since the sink started that comes after `started`.
fn next_tick(ctx: &Ctx, started: std::time::Instant) -> Option<std::time::Instant> {
    let age = ctx.cfg.max_age.as_nanos().max(1);
    let ticks = started.saturating_duration_since(ctx.epoch).as_nanos() / age + 1;
    Some(ctx.epoch + std::time::Duration::from_nanos(u64::try_from(ticks * age).ok()?))
}

/// The `--max-age` tick at which an Iceberg sink's non-empty buffer is due (see `aged`); `None` for hive.
fn iceberg_tick(ctx: &Ctx, st: &State) -> Option<std::time::Instant> {
    ctx.iceberg.as_ref()?;
    next_tick(ctx, st.buf.started.filter(|_| !st.buf.is_empty())?)
}

/// Cuts when a limit is reached. With a commit under way it first waits for it: that frees its share of the
/// memory budget, which may be all the budget needed (cutting right away would make a tiny file).
async fn flush_if_due(ctx: &Arc<Ctx>, st: &mut State, check_age: bool) -> Result<(), SinkError> {
    if !should_flush(ctx, st, check_age) {
        return Ok(());
    }
    if st.inflight.is_some() {
        finish_inflight(st).await?;
        if !should_flush(ctx, st, check_age) {
            return Ok(());
        }
    }
    start_commit(ctx, st).await
}

/// Waits for the commit under way, if any, and takes its advanced checkpoint.
async fn finish_inflight(st: &mut State) -> Result<(), SinkError> {
    if let Some(h) = st.inflight.take() {
        st.cp = h.await.map_err(|e| SinkError::Internal(format!("commit task failed: {e}")))??;
    }
    Ok(())
}

/// Cuts the buffer and commits it in the background, so that fetching and decoding the next cut overlaps with
/// encoding and uploading this one. One commit per partition at a time (the checkpoint holds one intent, and
/// checkpoints only move forward): a second cut first waits for the first, which is also the back pressure.
async fn start_commit(ctx: &Arc<Ctx>, st: &mut State) -> Result<(), SinkError> {
    finish_inflight(st).await?;
    // The commit task takes the cut's bytes off the shared budget: they must be on it first.
    st.publish(ctx);
    let bytes = st.buf.bytes;
    let at_tick = ctx.iceberg.is_some() && st.buf.started.is_some_and(|s| aged(ctx, s));
    let mut cut = st.buf.cut(&ctx.cfg.topic, &ctx.sort, ctx.cfg.max_rows);
    cut.at_tick = at_tick;
    st.published_bytes = 0; // a fresh buffer: none of it is on the budget yet
    let newest = cut.newest_event_ms;
    let (ctx, mut cp) = (ctx.clone(), st.cp.clone());
    st.inflight = Some(tokio::spawn(async move {
        let t = std::time::Instant::now();
        let done = match &ctx.iceberg {
            Some(table) => table.commit(&mut cp, cut, bytes).await,
            None => ctx.committer.commit(&mut cp, cut, bytes).await,
        };
        // The cut's rows are freed by now (moved into the encode tasks): release their share of the budget.
        ctx.buffered.fetch_sub(bytes, Ordering::Relaxed);
        let done = done?;
        if done.buffered > 0 && done.bytes > 0 {
            let ppm = (done.bytes.saturating_mul(1_000_000) / done.buffered as u64).clamp(1_000, 1_000_000);
            ctx.ratio_ppm.store(ppm, Ordering::Relaxed);
        }
        ctx.stats.rows.fetch_add(done.rows as u64, Ordering::Relaxed);
        ctx.stats.rejects.fetch_add(done.rejects as u64, Ordering::Relaxed);
        ctx.stats.files.fetch_add(done.files as u64, Ordering::Relaxed);
        ctx.stats.bytes.fetch_add(done.bytes, Ordering::Relaxed);
        ctx.stats.newest_event_ms.fetch_max(newest, Ordering::Relaxed);
        // The gauge moves when the checkpoint is stored, not when the worker next looks at this task.
        if let Ok(mut m) = ctx.stats.checkpoint.lock() {
            m.insert(cp.partition, cp.next_offset);
        }
        if let Some(g) = &ctx.group_offsets {
            g.publish(cp.partition, cp.next_offset);
        }
        tracing::debug!(
            partition = cp.partition, next_offset = cp.next_offset, files = done.files, rows = done.rows,
            took = ?t.elapsed(), "cut committed"
        );
        Ok(cp)
    }));
    Ok(())
}
