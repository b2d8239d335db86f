//! Sink stage 1: one task per Kafka partition. Fetch → decode → buffer → (cut → commit) until the end or a stop.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::buffer::PartitionBuffer;
use super::{Ctx, SinkError};
use crate::kafka::Error;
use crate::lake::state::{Checkpoint, PendingCut, checkpoint_key};

/// Bytes asked for per fetch (compressed; zstd batches of JSON decompress to about 6x this in memory).
const FETCH_MAX_BYTES: i32 = 2 * 1024 * 1024;
/// How long a fetch waits for new data (and so how often quiet partitions check `--max-age`).
const FETCH_WAIT_MS: i32 = 500;
/// Longest wait between two fetch attempts after a failure.
const MAX_FETCH_BACKOFF: std::time::Duration = std::time::Duration::from_secs(5);

async fn load_checkpoint(ctx: &Ctx, p: i32) -> Result<Option<Checkpoint>, SinkError> {
    let key = checkpoint_key(&ctx.cfg.topic, p);
    match super::commit::get_with_retry(&ctx.committer.store, &key, ctx.cfg.retry_for).await? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            SinkError::Config(format!("{key} is not a valid checkpoint: {e}; it must not be edited by hand"))
        }),
    }
}

pub(crate) async fn run_partition(ctx: Arc<Ctx>, p: i32) -> Result<(), SinkError> {
    let topic = ctx.cfg.topic.clone();
    let pc = ctx.kafka.partition(&topic, p).await?;
    let offsets = ctx.kafka.offsets(&pc).await?;
    let mut cp = match load_checkpoint(&ctx, p).await? {
        Some(cp) => cp,
        None => Checkpoint::new(&topic, p, offsets.earliest),
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
        ctx.committer.save_checkpoint(&cp).await?;
    }
    let mut redo = cp.pending;
    if let Some(r) = redo {
        tracing::info!(partition = p, first = r.first, last = r.last, "redoing a cut interrupted by a crash");
        cp.next_offset = r.first;
    }
    if let Ok(mut m) = ctx.stats.checkpoint.lock() {
        m.insert(p, cp.next_offset);
    }
    let end = offsets.high_watermark;
    let mut next = cp.next_offset;
    let mut buf = PartitionBuffer::new(p, next);
    let what = format!("fetch from {topic}/{p}");

    loop {
        if ctx.cfg.exit_at_end && next >= end && redo.is_none() {
            break;
        }
        if ctx.shutdown.is_set() {
            break;
        }
        // A broker restart or a leader moving fails fetches for a while: retry within --retry-for, from the same
        // offset (nothing was consumed), instead of stopping the sink.
        let fetch =
            crate::backoff::retry(&what, ctx.cfg.retry_for, MAX_FETCH_BACKOFF, Error::is_transient, |attempt| {
                if attempt > 0 {
                    crate::metrics::FETCH_RETRIES.fetch_add(1, Ordering::Relaxed);
                }
                ctx.kafka.deadline("fetch", &topic, p, pc.fetch_records(next, 1..FETCH_MAX_BYTES, FETCH_WAIT_MS))
            });
        let (records, hw) = tokio::select! {
            r = fetch => r?,
            _ = ctx.shutdown.wait() => break,
        };
        for rec in records {
            if rec.offset < next {
                continue; // a batch that starts before the offset asked for
            }
            if let Some(r) = redo
                && rec.offset > r.last
            {
                // The interrupted cut ended at r.last: redo exactly it, then go on.
                buf.cover_to(r.last);
                commit(&ctx, &mut cp, &mut buf).await?;
                redo = None;
            }
            ctx.stats.records.fetch_add(1, Ordering::Relaxed);
            let before = buf.bytes;
            match ctx.decoder.decode(p, &rec) {
                Ok(row) => buf.push_row(&ctx.spec, row),
                Err(reject) => {
                    tracing::debug!(partition = p, offset = rec.offset, reason = %reject.reason, "rejected");
                    buf.push_reject(reject)
                }
            }
            ctx.buffered.fetch_add(buf.bytes - before, Ordering::Relaxed);
            next = rec.offset + 1;
            if let Some(r) = redo
                && rec.offset == r.last
            {
                commit(&ctx, &mut cp, &mut buf).await?;
                redo = None;
            }
            // Per record, not per fetch: one fetch can hold far more rows than --max-rows.
            if redo.is_none() && should_flush(&ctx, &buf) {
                commit(&ctx, &mut cp, &mut buf).await?;
            }
        }
        if let Ok(mut lag) = ctx.stats.lag.lock() {
            lag.insert(p, (hw - next).max(0));
        }
        // A quiet partition still cuts at --max-age.
        if redo.is_none() && should_flush(&ctx, &buf) {
            commit(&ctx, &mut cp, &mut buf).await?;
        }
    }
    // The end or a stop: store what is buffered. An unfinished redo stays recorded; the next run completes it.
    if redo.is_none() && !buf.is_empty() {
        commit(&ctx, &mut cp, &mut buf).await?;
    }
    tracing::debug!(partition = p, next_offset = cp.next_offset, "partition done");
    Ok(())
}

fn should_flush(ctx: &Ctx, buf: &PartitionBuffer) -> bool {
    if buf.is_empty() {
        return false;
    }
    let est_file = buf.bytes as u64 * ctx.ratio_ppm.load(Ordering::Relaxed) / 1_000_000;
    buf.rows >= ctx.cfg.max_rows
        || est_file >= ctx.cfg.max_bytes
        || buf.started.is_some_and(|s| s.elapsed() >= ctx.cfg.max_age)
        || ctx.buffered.load(Ordering::Relaxed) > ctx.cfg.max_buffer
}

async fn commit(ctx: &Ctx, cp: &mut Checkpoint, buf: &mut PartitionBuffer) -> Result<(), SinkError> {
    let bytes = buf.bytes;
    let cut = buf.cut(&ctx.cfg.topic, &ctx.sort, ctx.cfg.max_rows);
    let newest = ctx.event_time.map_or(i64::MIN, |i| {
        let rows = cut.files.iter().flat_map(|f| f.rows.iter());
        rows.filter_map(|r| r.values.get(i).and_then(|v| v.as_epoch_millis())).max().unwrap_or(i64::MIN)
    });
    let t = std::time::Instant::now();
    let done = ctx.committer.commit(cp, cut, bytes).await;
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
    if let Ok(mut m) = ctx.stats.checkpoint.lock() {
        m.insert(cp.partition, cp.next_offset);
    }
    tracing::debug!(
        partition = cp.partition, next_offset = cp.next_offset, files = done.files, rows = done.rows,
        took = ?t.elapsed(), "cut committed"
    );
    Ok(())
}
