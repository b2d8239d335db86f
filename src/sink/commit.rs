//! Sink stages 4-6: encode a cut's files, store them, then checkpoint. The exactly-once protocol.
//!
//! ```text
//!  0 table       the table spec, if it changed (first commit, new column)  PUT _ticklake/table.toml
//!  1 intent      checkpoint.pending = {first, last}   PUT _ticklake/checkpoints/<topic>/<p>.json
//!  2 files       PUT <hive path>/<topic>-<p>-<first offset>.parquet   (one per hive partition / --max-rows)
//!  3 rejects     PUT _ticklake/rejects/<topic>/<topic>-<p>-<first>.jsonl  (if any)
//!  4 checkpoint  checkpoint.next_offset = last + 1, pending = none      PUT checkpoint
//! ```
//!
//! A crash anywhere leaves either no intent (nothing was written: the next run consumes from `next_offset` again)
//! or an intent (the next run re-reads exactly `first..=last` and redoes the cut; names and bytes are the same, so
//! objects are overwritten, never added twice). The checkpoint only moves after every file of the cut is stored.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use super::SinkError;
use super::buffer::Cut;
use crate::lake::parquet::{encode, writer_properties};
use crate::lake::state::{Checkpoint, PendingCut, checkpoint_key, rejects_key};
use crate::lake::store::Put;
use crate::lake::{Store, StoreError};

/// Files encoded and uploaded at once per cut.
const UPLOAD_CONCURRENCY: usize = 4;

/// Parquet encodes running at once in the whole process. Each holds a file's Arrow arrays and output, and each runs
/// on a blocking-pool thread with its own allocator heap: unbounded, they were a large part of peak RSS.
pub(super) static ENCODE_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

#[derive(Clone)]
pub struct Committer {
    pub store: Store,
    pub topic: String,
    /// The table spec, stored before the first intent and again before any file with a new column.
    pub table: Arc<super::evolve::Table>,
    /// This sink's leases: checkpoint writes are conditional, and a refused one means another sink took over.
    pub fence: Arc<crate::lake::fence::Fence>,
    pub row_group_rows: usize,
    /// How long a failing PUT is retried (jittered exponential backoff) before the sink stops.
    pub retry_for: Duration,
}

/// What a commit wrote.
#[derive(Debug, Default, Clone, Copy)]
pub struct Committed {
    pub files: usize,
    pub rows: usize,
    pub rejects: usize,
    pub bytes: u64,
    /// Approximate in-memory bytes the cut held (to learn the compression ratio).
    pub buffered: usize,
}

/// PUT with retries (see `lake::retry`).
pub async fn put_with_retry(store: &Store, key: &str, bytes: Vec<u8>, retry_for: Duration) -> Result<(), StoreError> {
    crate::lake::retry("store", key, retry_for, || store.put(key, bytes.clone())).await
}

pub use crate::lake::store::put_conditional_with_retry;

/// GET with retries (see `lake::retry`).
pub async fn get_with_retry(store: &Store, key: &str, retry_for: Duration) -> Result<Option<Vec<u8>>, StoreError> {
    crate::lake::retry("read", key, retry_for, || store.get(key)).await
}

impl Committer {
    /// Stores `cp` only over the version this sink last read or wrote (or only if absent); a refusal means another
    /// sink took the partition over, and this one must stop (`Fenced`).
    pub async fn save_checkpoint(&self, cp: &mut Checkpoint) -> Result<(), SinkError> {
        // The write is conditional on the version last read: a sink paused past its lease, whose partition another
        // took over, could still read the new holder's checkpoint and write over it. Its lease says so first.
        self.fence.ensure_held(cp.partition).await?;
        cp.writer = Some(self.fence.writer().to_string());
        let bytes = serde_json::to_vec_pretty(cp).expect("checkpoint serializes");
        let mode = cp.etag.clone().map_or(Put::Create, Put::Replace);
        let key = checkpoint_key(&cp.topic, cp.partition);
        match put_conditional_with_retry(&self.store, &key, bytes, mode, self.retry_for).await {
            Ok(etag) => {
                cp.etag = Some(etag);
                Ok(())
            }
            Err(StoreError::Conflict { .. }) => {
                let found = self.store.get(&key).await.ok().flatten();
                let by = found.and_then(|b| serde_json::from_slice::<Checkpoint>(&b).ok()).and_then(|c| c.writer);
                tracing::error!(
                    kafka_partition = cp.partition,
                    checkpoint_writer = by.as_deref().unwrap_or("?"),
                    "the partition's checkpoint changed since this sink wrote it"
                );
                Err(self.fence.refused(cp.partition).await.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Commits one cut and advances `cp` (see the module docs for the protocol).
    pub async fn commit(&self, cp: &mut Checkpoint, cut: Cut, buffered: usize) -> Result<Committed, SinkError> {
        let intent = PendingCut { first: cut.first, last: cut.last };
        let mut keys: Vec<String> = cut.files.iter().map(|f| f.key.clone()).collect();
        if !cut.rejects.is_empty() {
            keys.push(rejects_key(&self.topic, cut.partition, cut.first));
        }
        keys.sort();
        self.table.save_if_changed(&self.store, self.retry_for).await?;
        if cp.pending == Some(intent) {
            // A redo: objects the interrupted attempt planned but this one will not rewrite must go.
            for old in cp.pending_keys.iter().filter(|k| keys.binary_search(k).is_err()) {
                tracing::info!(key = %old, "removing an object of the interrupted attempt that the redo does not rewrite");
                crate::lake::retry("delete", old, self.retry_for, || self.store.delete(old)).await?;
            }
        }
        if cp.pending != Some(intent) || cp.pending_keys != keys {
            cp.pending = Some(intent);
            cp.pending_keys = keys;
            self.save_checkpoint(cp).await?;
        }

        let mut done = Committed { rows: cut.rows, rejects: cut.rejects.len(), buffered, ..Committed::default() };
        let mut tasks: JoinSet<Result<(usize, u64), SinkError>> = JoinSet::new();
        let total = cut.files.len();
        let mut files = cut.files.into_iter().enumerate();
        let layout = cut.layout;
        let mut stored = 0usize;
        loop {
            while tasks.len() < UPLOAD_CONCURRENCY {
                let Some((i, file)) = files.next() else { break };
                let (store, layout, props, retry) = (
                    self.store.clone(),
                    layout.clone(),
                    writer_properties(&layout, self.row_group_rows),
                    self.retry_for,
                );
                tasks.spawn(async move {
                    let (cols, rows) = (file.cols, file.rows);
                    let slot = ENCODE_SLOTS.acquire().await.expect("the encode semaphore is never closed");
                    let bytes = tokio::task::spawn_blocking(move || encode(&layout, &cols, &rows, props))
                        .await
                        .map_err(|e| SinkError::Internal(format!("encoder panicked: {e}")))??;
                    drop(slot);
                    let n = bytes.len() as u64;
                    let t = std::time::Instant::now();
                    put_with_retry(&store, &file.key, bytes, retry).await?;
                    super::UPLOAD_SECONDS.observe(t.elapsed());
                    Ok((i, n))
                });
            }
            let Some(joined) = tasks.join_next().await else { break };
            let step = joined.map_err(|e| SinkError::Internal(format!("upload task failed: {e}"))).and_then(|r| r).map(
                |(_, n)| {
                    done.files += 1;
                    done.bytes += n;
                },
            );
            if let Err(e) = step {
                // Let the uploads already under way finish first: when `commit` returns, nothing of this cut is
                // still being written (a blocking-pool write cannot be cancelled, and could otherwise land after
                // a redo has cleaned up).
                while tasks.join_next().await.is_some() {}
                return Err(e);
            }
            stored += 1;
        }
        debug_assert_eq!(stored, total);

        if !cut.rejects.is_empty() {
            let mut lines = Vec::new();
            for r in &cut.rejects {
                serde_json::to_writer(&mut lines, r).expect("reject serializes");
                lines.push(b'\n');
            }
            put_with_retry(&self.store, &rejects_key(&self.topic, cut.partition, cut.first), lines, self.retry_for)
                .await?;
        }

        cp.next_offset = cut.last + 1;
        cp.pending = None;
        cp.pending_keys.clear();
        self.save_checkpoint(cp).await?;
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::layout::FileLayout;
    use crate::lake::partition::PartitionSpec;
    use crate::lake::store::{Fault, MemoryStore};
    use crate::lake::table::TableSpec;
    use crate::schema::{Schema, Value};
    use crate::sink::buffer::PartitionBuffer;
    use crate::sink::decode::Reject;

    /// The same cut every time: rows over three hive partitions and one reject, offsets 10..=16.
    fn cut() -> (Cut, usize) {
        cut_split("year(trade_date)", 1000)
    }

    fn cut_split(partition_by: &str, max_rows_per_file: usize) -> (Cut, usize) {
        let schema = Schema::indices();
        let spec = PartitionSpec::parse(partition_by, &schema).unwrap();
        let mut b = PartitionBuffer::new(0, 10, Arc::new(FileLayout::new(&schema, &spec)));
        for (i, day) in [0, 400, 800, 1, 401, 2].into_iter().enumerate() {
            let mut values = vec![Value::Str("HSI".into()), Value::Date(day), Value::Float(1.5)];
            values.extend(std::iter::repeat_n(Value::Null, 6));
            b.push_row(&spec, &values, 10 + i as i64, 0);
        }
        b.push_reject(Reject {
            topic: "t".into(),
            partition: 0,
            offset: 16,
            timestamp_ms: 0,
            reason: "not JSON".into(),
            raw_base64: "eA==".into(),
        });
        let bytes = b.bytes;
        (b.cut("t", &[1], max_rows_per_file), bytes)
    }

    /// A committer over `store`; `stored` says whether the table spec is already in it (a restart).
    /// Its lease of partition 0 is held, in a store of its own (the crash tests count the lake's PUTs).
    async fn committer(store: Store, stored: bool) -> Committer {
        let leases = Store::new(Arc::new(crate::lake::store::MemoryStore::default()));
        let fence =
            Arc::new(crate::lake::fence::Fence::new(leases, "t", Duration::from_secs(30), Duration::from_secs(1)));
        fence.acquire(0, &crate::shutdown::Shutdown::new()).await.unwrap();
        let schema = Schema::indices();
        let spec = PartitionSpec::parse("year(trade_date)", &schema).unwrap();
        let table = TableSpec::new("t", schema.clone(), spec.describe(&schema), vec![], 4096);
        Committer {
            store,
            topic: "t".into(),
            table: Arc::new(super::super::evolve::Table::new(table, stored, vec![])),
            fence,
            row_group_rows: 4096,
            retry_for: Duration::from_secs(1),
        }
    }

    fn memory() -> (Store, Arc<MemoryStore>) {
        let m = Arc::new(MemoryStore::default());
        (Store::new(m.clone()), m)
    }

    /// Every object but the table spec's bytes (it holds the time it was made; compared by presence).
    fn snapshot(m: &MemoryStore) -> Vec<(String, Vec<u8>)> {
        m.snapshot()
            .into_iter()
            .map(|(k, v)| {
                if k.ends_with("table.toml") {
                    (k, vec![])
                } else if k.contains("/checkpoints/") {
                    // Compared without the writer id, which is random per sink process.
                    let mut cp: Checkpoint = serde_json::from_slice(&v).unwrap();
                    cp.writer = None;
                    (k, serde_json::to_vec(&cp).unwrap())
                } else {
                    (k, v)
                }
            })
            .collect()
    }

    async fn restart_checkpoint(store: &Store) -> Checkpoint {
        let (bytes, etag) = store.get_versioned("_ticklake/checkpoints/t/0.json").await.unwrap().unwrap();
        Checkpoint { etag: Some(etag), ..serde_json::from_slice(&bytes).unwrap() }
    }

    #[tokio::test]
    async fn a_crash_after_any_put_redoes_the_same_cut() {
        let (clean_store, clean) = memory();
        let mut cp = Checkpoint::new("t", 0, 10);
        let (c, bytes) = cut();
        let done = committer(clean_store, false).await.commit(&mut cp, c, bytes).await.unwrap();
        assert_eq!((done.files, done.rows, done.rejects), (3, 6, 1));
        assert_eq!((cp.next_offset, cp.pending), (17, None));
        let want = snapshot(&clean);
        assert_eq!(want.len(), 3 + 1 + 1 + 1, "3 data files, rejects, checkpoint, table spec");
        let puts = clean.puts.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(puts, 7, "table spec, intent, 3 files, rejects, checkpoint");

        // A crash (every later put fails) after 0..7 successful puts: every step of the protocol.
        for n in 0..puts {
            let (store, m) = memory();
            m.inject(Some(Fault::CrashAfterPuts(n)));
            let mut cp = Checkpoint::new("t", 0, 10);
            let (c, bytes) = cut();
            assert!(
                committer(store.clone(), false).await.commit(&mut cp, c, bytes).await.is_err(),
                "crash after {n} puts"
            );
            m.inject(None);
            // Restart: the checkpoint as the lake holds it, then the sink's redo of the recorded cut.
            if n < 2 {
                assert!(store.get("_ticklake/checkpoints/t/0.json").await.unwrap().is_none(), "{n}: no intent yet");
                assert!(m.snapshot().keys().all(|k| k.starts_with("_ticklake/table")), "{n}: nothing but the spec");
                let (c, bytes) = cut();
                committer(store.clone(), n == 1)
                    .await
                    .commit(&mut Checkpoint::new("t", 0, 10), c, bytes)
                    .await
                    .unwrap();
            } else {
                assert!(m.snapshot().contains_key("_ticklake/table.toml"), "{n}: the spec is stored before the intent");
                let mut cp = restart_checkpoint(&store).await;
                if n == puts - 1 {
                    assert_eq!((cp.next_offset, cp.pending), (10, Some(PendingCut { first: 10, last: 16 })));
                } else {
                    assert_eq!(cp.pending, Some(PendingCut { first: 10, last: 16 }), "{n}: intent recorded");
                    assert_eq!(cp.next_offset, 10, "{n}: checkpoint not advanced before the files are stored");
                }
                let (c, bytes) = cut();
                committer(store.clone(), true).await.commit(&mut cp, c, bytes).await.unwrap();
            }
            assert_eq!(snapshot(&m), want, "crash after {n} puts: same objects, same bytes, nothing extra");
        }
    }

    #[tokio::test]
    async fn a_redo_under_other_flags_leaves_no_stray_objects() {
        // The clean result: month partitions, one row per file.
        let (clean_store, clean) = memory();
        let (c, bytes) = cut_split("month(trade_date)", 1);
        committer(clean_store, false).await.commit(&mut Checkpoint::new("t", 0, 10), c, bytes).await.unwrap();
        let want = snapshot(&clean);

        // Crash mid-upload under year partitions, then redo the same range under the new flags.
        let (store, m) = memory();
        m.inject(Some(Fault::CrashAfterPuts(3)));
        let mut cp = Checkpoint::new("t", 0, 10);
        let (c, bytes) = cut_split("year(trade_date)", 1000);
        assert!(committer(store.clone(), false).await.commit(&mut cp, c, bytes).await.is_err());
        m.inject(None);
        let mut cp = restart_checkpoint(&store).await;
        assert_eq!(cp.pending_keys.len(), 4, "three data files and the rejects were planned");
        let (c, bytes) = cut_split("month(trade_date)", 1);
        committer(store, true).await.commit(&mut cp, c, bytes).await.unwrap();
        assert_eq!(snapshot(&m), want, "no object of the year= attempt is left");
    }
}
