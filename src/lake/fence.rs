//! One writer per Kafka partition of a lake (see `lake::lease`), for the sink and for the `lake` commands that must
//! not run beside one (`lake remove-orphans`). Before a worker reads its checkpoint it takes the
//! partition's lease; a background task renews every held lease at a third of `--lease-ttl`; every checkpoint write
//! is conditional on the version this sink last read or wrote. So:
//!
//! ```text
//!  second sink, holder alive   sees the lease renewed while it waits    -> exits 13 naming the holder, writes nothing
//!  holder crashed, same host    its pid is gone                          -> taken over at once
//!  holder dead or paused        no renewal for the TTL (newcomer's clock) -> taken over; the checkpoint is rewritten
//!  paused holder wakes          its renewal or next checkpoint write is refused (412) -> stops with exit 13
//! ```
//!
//! What a woken holder may still do before its next conditional write is upload files of the cut it had recorded:
//! the new holder redoes that same cut (same names, and the same bytes with the same flags), so nothing is counted
//! twice. The residual window is documented in the README (a takeover under different `--max-rows` or
//! `--partition-by` while the old holder is paused mid-upload).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::lease::{Lease, host_name, lease_key, pid_runs_ticklake};
use super::store::{Etag, Put, put_conditional_with_retry};
use super::{Store, StoreError};
use crate::shutdown::Shutdown;

#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    /// Another writer holds the partition (its host and start time in `holder`).
    #[error("{topic}/{partition}: held by {holder}")]
    Fenced { topic: String, partition: i32, holder: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Corrupt(String),
}

pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);

pub struct Fence {
    store: Store,
    topic: String,
    /// What the leases are named under: the topic for a hive lake; `iceberg/<database.table>/<topic>` for an
    /// Iceberg table (its leases live under `--to`, beside the tables of the warehouse, outside any table's folder).
    scope: String,
    me: Lease,
    ttl: Duration,
    /// How long a lease request's transient failures (5xx, resets) are retried, as every lake request is.
    retry_for: Duration,
    /// Held leases: partition → the version this sink last wrote.
    held: Mutex<HashMap<i32, (Etag, Lease)>>,
    /// Another sink took a partition over.
    lost: AtomicBool,
    /// When each held lease was last written (taken or renewed): another sink can take it over no sooner than the
    /// TTL after that.
    written: Mutex<HashMap<i32, Instant>>,
    /// Renewals and releases one at a time (a renewal must not bring a lease back that was just released).
    writing: tokio::sync::Mutex<()>,
}

impl Fence {
    pub fn new(store: Store, topic: &str, ttl: Duration, retry_for: Duration) -> Fence {
        let n: u64 = rand::random();
        let me = Lease {
            writer: format!("{n:016x}"),
            host: host_name(),
            pid: std::process::id(),
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            renewals: 0,
            ttl_ms: ttl.as_millis() as u64,
            released: false,
            group: None,
        };
        Fence {
            store,
            topic: topic.into(),
            scope: topic.into(),
            me,
            ttl,
            retry_for,
            held: Mutex::new(HashMap::new()),
            lost: AtomicBool::new(false),
            writing: tokio::sync::Mutex::new(()),
            written: Mutex::new(HashMap::new()),
        }
    }

    /// Leases for the writers of an Iceberg table (see `scope`).
    pub fn for_iceberg_table(self, table: &str) -> Fence {
        Fence { scope: format!("iceberg/{table}/{}", self.topic), ..self }
    }

    /// `sink --group`: the leases name the group (`lake stats`, and a waiting sink's messages, show it).
    pub fn in_group(mut self, group: &str) -> Fence {
        self.me.group = Some(group.to_string());
        self
    }

    pub fn writer(&self) -> &str {
        &self.me.writer
    }

    fn fenced(&self, partition: i32, holder: Option<&Lease>) -> FenceError {
        FenceError::Fenced {
            topic: self.topic.clone(),
            partition,
            holder: holder.map_or_else(|| "another sink".into(), Lease::describe),
        }
    }

    /// Takes partition `p`'s lease, waiting out a holder that stopped renewing; `Fenced` if the holder is alive.
    pub async fn acquire(&self, p: i32, shutdown: &Shutdown) -> Result<(), FenceError> {
        let key = lease_key(&self.scope, p);
        let mut watched: Option<(Etag, Instant)> = None;
        loop {
            let store = &self.store;
            let current = crate::lake::retry("read", &key, self.retry_for, || store.get_versioned(&key)).await?;
            let mode = match &current {
                None => Put::Create,
                Some((bytes, etag)) => {
                    let lease: Lease = serde_json::from_slice(bytes)
                        .map_err(|e| FenceError::Corrupt(format!("{key} is not a valid lease: {e}")))?;
                    let ttl = self.ttl.max(Duration::from_millis(lease.ttl_ms));
                    let stale = match &watched {
                        Some((seen, since)) if seen == etag => since.elapsed() >= ttl,
                        // Renewed since we first looked: the holder is alive.
                        Some(_) => return Err(self.fenced(p, Some(&lease))),
                        None => false,
                    };
                    if !(stale || lease.writer == self.me.writer || lease.free_now(&self.me.host, pid_runs_ticklake)) {
                        if watched.is_none() {
                            tracing::info!(
                                kafka_partition = p, holder = %lease.describe(),
                                "the partition's lease is held: waiting up to {ttl:?} for it to be renewed or to lapse"
                            );
                            watched = Some((etag.clone(), Instant::now()));
                        }
                        tokio::select! {
                            _ = tokio::time::sleep((ttl / 6).min(Duration::from_millis(500))) => {}
                            _ = shutdown.wait() => return Err(self.fenced(p, Some(&lease))),
                        }
                        continue;
                    }
                    if stale {
                        tracing::warn!(kafka_partition = p, holder = %lease.describe(), "taking over a lease that was not renewed for {ttl:?}");
                    }
                    Put::Replace(etag.clone())
                }
            };
            let lease = Lease { renewals: 0, ..self.me.clone() };
            // Counted from the request, not its answer: a process paused in between learns nothing from the answer.
            let sent = Instant::now();
            let bytes = serde_json::to_vec_pretty(&lease).expect("lease serializes");
            match put_conditional_with_retry(&self.store, &key, bytes, mode, self.retry_for).await {
                Ok(etag) => {
                    self.held.lock().expect("lock").insert(p, (etag, lease));
                    self.written.lock().expect("lock").insert(p, sent);
                    return Ok(());
                }
                // Someone else wrote it between our read and our write: look again.
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Renews every held lease at a third of the TTL until `stop`; a refused renewal (another sink took over) stops
    /// the sink through `sink`.
    pub async fn renew_until(&self, stop: Shutdown, sink: Shutdown) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.ttl / 3) => {}
                _ = stop.wait() => return,
            }
            self.renew_held(&sink).await;
        }
    }

    /// Renews every held lease once; a refused renewal (another sink took over) stops the sink through `sink`.
    pub async fn renew_held(&self, sink: &Shutdown) {
        let _one = self.writing.lock().await;
        let held: Vec<(i32, (Etag, Lease))> =
            self.held.lock().expect("lock").iter().map(|(p, v)| (*p, v.clone())).collect();
        for (p, (etag, lease)) in held {
            let next = Lease { renewals: lease.renewals + 1, ..lease };
            let bytes = serde_json::to_vec_pretty(&next).expect("lease serializes");
            let key = lease_key(&self.scope, p);
            match put_conditional_with_retry(&self.store, &key, bytes, Put::Replace(etag), self.ttl / 3).await {
                Ok(etag) => {
                    self.held.lock().expect("lock").insert(p, (etag, next));
                }
                Err(StoreError::Conflict { .. }) => {
                    // A renewal whose answer was lost still counts: if the lease is ours, take its version.
                    if let Ok(Some((bytes, etag))) = self.store.get_versioned(&key).await
                        && serde_json::from_slice::<Lease>(&bytes).is_ok_and(|l| l.writer == self.me.writer)
                    {
                        let mine: Lease = serde_json::from_slice(&bytes).expect("parsed above");
                        self.held.lock().expect("lock").insert(p, (etag, mine));
                        continue;
                    }
                    let holder = self.holder(p).await;
                    tracing::error!(
                        kafka_partition = p, holder = %holder.as_ref().map_or("?".into(), Lease::describe),
                        "another sink took this partition's lease over: stopping"
                    );
                    self.lost.store(true, Ordering::Relaxed);
                    self.held.lock().expect("lock").remove(&p);
                    sink.trigger(crate::shutdown::StopReason::Terminate);
                }
                // A transient failure: the next round tries again (the TTL leaves two more).
                Err(e) => tracing::warn!(kafka_partition = p, "renewing the lease failed: {e}"),
            }
        }
    }

    /// Whether another sink took a held partition over while this one was away (its group session lost: paused,
    /// cut off), read from the leases themselves, each read retried until the store answers (within `retry_for`).
    /// A renewal could not tell: one that failed for a transient reason (the first requests after a pause often
    /// do) says nothing, and the partition would then be given back and this member rejoin as if it had never
    /// been replaced. A partition taken over stops the sink (exit 13), as a refused write does.
    pub async fn check_taken_over(&self, sink: &Shutdown) -> bool {
        let _one = self.writing.lock().await;
        let held: Vec<i32> = self.held.lock().expect("lock").keys().copied().collect();
        let mut taken = false;
        for p in held {
            let key = lease_key(&self.scope, p);
            let read = super::store::retry("store", &key, self.retry_for, || self.store.get_versioned(&key)).await;
            let lease = match read {
                Ok(found) => found.and_then(|(bytes, _)| serde_json::from_slice::<Lease>(&bytes).ok()),
                Err(e) => {
                    tracing::warn!(kafka_partition = p, "reading the lease failed: {e}");
                    continue;
                }
            };
            if let Some(holder) = lease.filter(|l| l.writer != self.me.writer && !l.released) {
                tracing::error!(
                    kafka_partition = p, holder = %holder.describe(),
                    "another sink took this partition's lease over while this one was away: stopping"
                );
                self.lost.store(true, Ordering::Relaxed);
                self.held.lock().expect("lock").remove(&p);
                sink.trigger(crate::shutdown::StopReason::Terminate);
                taken = true;
            }
        }
        taken
    }

    /// Before a checkpoint write or a commit that only the table checks (Iceberg): if `p`'s lease was last written half a TTL ago or more
    /// (this process was paused, or cut off from the store), renew every lease first, so that a sink that another
    /// took over while it was paused learns it before it commits, not after. `Fenced` if `p` is no longer held.
    pub async fn ensure_held(&self, p: i32) -> Result<(), FenceError> {
        let fresh = self.written.lock().expect("lock").get(&p).is_some_and(|at| at.elapsed() < self.ttl / 2);
        if !fresh {
            // A refusal marks the fence lost (the sink's outcome); the caller's error stops the sink.
            self.renew_held(&Shutdown::new()).await;
        }
        if self.held.lock().expect("lock").contains_key(&p) { Ok(()) } else { Err(self.refused(p).await) }
    }

    /// Whether another sink took a partition over (then the sink's outcome is `Fenced`, whatever else happened).
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    /// The current holder of `p`'s lease, for messages.
    pub async fn holder(&self, p: i32) -> Option<Lease> {
        let (bytes, _) = self.store.get_versioned(&lease_key(&self.scope, p)).await.ok()??;
        serde_json::from_slice(&bytes).ok()
    }

    /// The error for a refused checkpoint write of `p`.
    pub async fn refused(&self, p: i32) -> FenceError {
        self.lost.store(true, Ordering::Relaxed);
        let holder = self.holder(p).await;
        self.fenced(p, holder.as_ref())
    }

    /// Gives `p`'s lease back (the group moved the partition): its next owner starts at once.
    pub async fn release_one(&self, p: i32) {
        let _one = self.writing.lock().await;
        let held = self.held.lock().expect("lock").remove(&p);
        if let Some((etag, lease)) = held {
            let bytes = serde_json::to_vec_pretty(&Lease { released: true, ..lease }).expect("lease serializes");
            if let Err(e) = self.store.put_if(&lease_key(&self.scope, p), bytes, Put::Replace(etag)).await {
                tracing::debug!(kafka_partition = p, "lease not released: {e}");
            }
        }
    }

    /// Gives every held lease back (a clean stop): the next sink starts at once.
    pub async fn release(&self) {
        let held: Vec<(i32, (Etag, Lease))> = self.held.lock().expect("lock").drain().collect();
        for (p, (etag, lease)) in held {
            let bytes = serde_json::to_vec_pretty(&Lease { released: true, ..lease }).expect("lease serializes");
            if let Err(e) = self.store.put_if(&lease_key(&self.scope, p), bytes, Put::Replace(etag)).await {
                tracing::debug!(kafka_partition = p, "lease not released: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::store::MemoryStore;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_live_holder_fences_a_newcomer_and_a_released_lease_is_free() {
        let store = Store::new(Arc::new(MemoryStore::default()));
        let ttl = Duration::from_millis(600);
        let a = Arc::new(Fence::new(store.clone(), "t", ttl, Duration::from_secs(1)));
        let shutdown = Shutdown::new();
        a.acquire(0, &shutdown).await.unwrap();
        // A renews; B, on the same host with A's pid alive (this process), waits, sees the renewal, and stops.
        let renewing = tokio::spawn({
            let (a, s) = (a.clone(), shutdown.clone());
            async move { a.renew_until(s.clone(), s).await }
        });
        let b = Fence::new(store.clone(), "t", ttl, Duration::from_secs(1));
        let e = b.acquire(0, &Shutdown::new()).await.unwrap_err();
        assert!(matches!(e, FenceError::Fenced { partition: 0, .. }), "{e}");
        assert!(e.to_string().contains(&format!("pid {}", std::process::id())), "{e}");
        shutdown.trigger(crate::shutdown::StopReason::Terminate);
        renewing.await.unwrap();
        a.release().await;
        b.acquire(0, &Shutdown::new()).await.unwrap();
        assert_eq!(b.holder(0).await.unwrap().writer, b.writer());
    }

    #[tokio::test]
    async fn a_holder_that_stops_renewing_is_taken_over_and_then_refused() {
        let store = Store::new(Arc::new(MemoryStore::default()));
        let ttl = Duration::from_millis(300);
        let a = Fence::new(store.clone(), "t", ttl, Duration::from_secs(1));
        a.acquire(3, &Shutdown::new()).await.unwrap();
        // A is paused: no renewal. B waits the TTL out, then takes over.
        let b = Fence::new(store.clone(), "t", ttl, Duration::from_secs(1));
        b.acquire(3, &Shutdown::new()).await.unwrap();
        // B wrote its lease just now: it may write its checkpoint without asking the store again.
        b.ensure_held(3).await.unwrap();
        // A wakes before its renewal timer: its next checkpoint write or commit asks first, and is refused.
        let a2 = Fence::new(store.clone(), "t", ttl, Duration::from_secs(1));
        a2.acquire(4, &Shutdown::new()).await.unwrap();
        let b2 = Fence::new(store.clone(), "t", ttl, Duration::from_secs(1));
        b2.acquire(4, &Shutdown::new()).await.unwrap();
        let e = a2.ensure_held(4).await.unwrap_err();
        assert!(matches!(e, FenceError::Fenced { partition: 4, .. }) && a2.lost(), "{e}");
        assert!(e.to_string().contains(&b2.holder(4).await.unwrap().describe()), "names the new holder: {e}");
        // A wakes: its renewal is refused, and it stops.
        let shutdown = Shutdown::new();
        a.renew_until(shutdown.clone(), shutdown.clone()).await;
        assert!(a.lost() && shutdown.is_set());
    }
}
