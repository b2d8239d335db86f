//! `sink --group NAME`: the broker's group coordinator spreads the topic's partitions over the sinks of one group
//! (`kafka::membership`); this module starts and stops the partition workers as the assignment changes.
//!
//! The group assigns work; the lake decides what counts. A newly assigned partition's worker first takes its lease
//! (waiting while the previous owner still gives it back, or until a silent one's lease lapses), then starts from
//! the lake's checkpoint or the Iceberg table's offsets, never from the group's offsets. A revocation stops every
//! worker (the eager protocol), each commits what it buffered through the usual fenced commit, the leases are
//! released, and only then does the member rejoin. A member whose session was lost first renews its leases: if
//! another sink took one over meanwhile, it stops with the fencing code; else it drops its buffers and rejoins.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::worker::{self, Stop};
use super::{Ctx, SinkError};
use crate::kafka::coordinator::WireCoordinator;
use crate::kafka::membership::{self, Change, Member, Settings};
use crate::lake::fence::FenceError;
use crate::shutdown::{Shutdown, StopReason};

/// How long the coordinator waits for every member to rejoin in a rebalance: a revoked worker's last commit must
/// fit in it (a member that takes longer is dropped from the generation and joins again; the lake stays fenced).
pub const REBALANCE_TIMEOUT: Duration = Duration::from_secs(60);

/// `--group`.
#[derive(Debug, Clone)]
pub struct GroupOptions {
    pub name: String,
    pub session_timeout: Duration,
}

/// Runs the sink as a member of the group until the sink stops; `partitions`: every partition of the topic.
pub(super) async fn run(
    ctx: Arc<Ctx>,
    opts: &GroupOptions,
    partitions: Vec<i32>,
    member: watch::Sender<Member>,
) -> Result<(), SinkError> {
    let settings = Settings {
        group: opts.name.clone(),
        topic: ctx.cfg.topic.clone(),
        partitions,
        session_timeout: opts.session_timeout,
        rebalance_timeout: REBALANCE_TIMEOUT,
    };
    tracing::info!(group = %opts.name, session_timeout = ?opts.session_timeout, "joining the consumer group");
    let coord = WireCoordinator::new(ctx.kafka.config().clone(), settings.clone());
    let (tx, mut changes) = mpsc::channel(4);
    let leave = Shutdown::new();
    let mut membership = tokio::spawn(membership::run(coord, settings, tx, member, leave.clone()));
    let mut workers: tokio::task::JoinSet<(i32, Result<(), SinkError>)> = tokio::task::JoinSet::new();
    let mut stops: Vec<Stop> = Vec::new();
    let mut first_error: Option<SinkError> = None;
    let fail = |e: SinkError, first: &mut Option<SinkError>| {
        tracing::error!("{e}");
        if first.is_none() {
            *first = Some(e);
            ctx.shutdown.trigger(StopReason::Terminate);
        }
    };
    let outcome = loop {
        tokio::select! {
            change = changes.recv() => match change {
                None => break (&mut membership).await,
                Some(Change::Assigned { generation, partitions }) => {
                    tracing::info!(group = %opts.name, generation, partitions = ?partitions, "the group assigned this member its partitions");
                    if let Ok(mut g) = ctx.stats.group.lock() {
                        *g = Some((opts.name.clone(), partitions.clone()));
                    }
                    if let Some(t) = &ctx.iceberg {
                        t.set_partitions(partitions.len());
                    }
                    for p in partitions {
                        let stop = Stop::new(Shutdown::new());
                        if ctx.shutdown.is_set() {
                            stop.shutdown.trigger(StopReason::Terminate);
                        }
                        stops.push(stop.clone());
                        let ctx = ctx.clone();
                        workers.spawn(async move { (p, start_partition(ctx, p, stop).await) });
                    }
                }
                Some(Change::Revoke { partitions, lost, done }) => {
                    ctx.stats.rebalances.fetch_add(1, Ordering::Relaxed);
                    // Still ours? A lease another sink took over while this one was away (paused, cut off) stops
                    // it (exit 13), read from the leases: a renewal that failed for a transient reason could not tell.
                    let taken = ctx.committer.fence.check_taken_over(&ctx.shutdown).await;
                    if lost && !taken {
                        ctx.committer.fence.renew_held(&ctx.shutdown).await;
                    }
                    for s in stops.drain(..) {
                        s.discard.store(lost && !ctx.committer.fence.lost(), Ordering::Relaxed);
                        s.shutdown.trigger(StopReason::Terminate);
                    }
                    while let Some(joined) = workers.join_next().await {
                        match joined {
                            Ok((_, Ok(()))) => {}
                            Ok((p, Err(e))) => fail(with_partition(e, p), &mut first_error),
                            Err(e) => fail(SinkError::Internal(format!("partition worker panicked: {e}")), &mut first_error),
                        }
                    }
                    for &p in &partitions {
                        ctx.committer.fence.release_one(p).await;
                        if let Some(g) = &ctx.group_offsets {
                            g.forget(p);
                        }
                        if let Ok(mut m) = ctx.stats.lag.lock() {
                            m.remove(&p);
                        }
                        if let Ok(mut m) = ctx.stats.checkpoint.lock() {
                            m.remove(&p);
                        }
                    }
                    if let Ok(mut g) = ctx.stats.group.lock() {
                        *g = Some((opts.name.clone(), vec![]));
                    }
                    tracing::info!(group = %opts.name, partitions = ?partitions, lost, "gave the partitions back to the group");
                    let _ = done.send(());
                }
            },
            Some(joined) = workers.join_next(), if !workers.is_empty() => match joined {
                Ok((_, Ok(()))) => {}
                Ok((p, Err(e))) => fail(with_partition(e, p), &mut first_error),
                Err(e) => fail(SinkError::Internal(format!("partition worker panicked: {e}")), &mut first_error),
            },
            _ = ctx.shutdown.wait(), if !leave.is_set() => {
                for s in &stops {
                    s.shutdown.trigger(StopReason::Terminate);
                }
                leave.trigger(StopReason::Terminate);
            }
        }
    };
    if let Some(e) = first_error {
        return Err(e);
    }
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(SinkError::Config(format!(
            "{e}. The group id must not be shared with consumers of another protocol; the principal needs READ on the group"
        ))),
        Err(e) => Err(SinkError::Internal(format!("the group membership task failed: {e}"))),
    }
}

fn with_partition(e: SinkError, p: i32) -> SinkError {
    match e {
        SinkError::Internal(m) => SinkError::Internal(format!("partition {p}: {m}")),
        e => e,
    }
}

/// Takes the partition's lease (patiently: its previous owner may still be committing what it had), then runs its
/// worker from the lake's checkpoint.
async fn start_partition(ctx: Arc<Ctx>, p: i32, stop: Stop) -> Result<(), SinkError> {
    let mut told = false;
    loop {
        if stop.shutdown.is_set() {
            return Ok(());
        }
        match ctx.committer.fence.acquire(p, &stop.shutdown).await {
            Ok(()) => break,
            Err(FenceError::Fenced { holder, .. }) => {
                if !told && !stop.shutdown.is_set() {
                    told = true;
                    tracing::info!(kafka_partition = p, holder = %holder, "waiting for the partition's previous owner to give its lease back (or for the lease to lapse)");
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = stop.shutdown.wait() => return Ok(()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(t) = &ctx.iceberg {
        t.refresh(p).await?;
    }
    tracing::info!(kafka_partition = p, "partition taken: starting from the lake's checkpoint");
    worker::run_partition(ctx, p, stop).await
}
