//! Step 3 of the Iceberg sink: the commit round (see the module docs of `sink::iceberg`). Every cut queued goes
//! into one snapshot, each partition judged as a single cut's commit would be; and, with
//! `write.metadata.delete-after-commit.enabled`, the metadata files the commit's log no longer lists are deleted.

use std::time::Duration;

use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};

use super::{IcebergTarget, SinkError};
use crate::lake::iceberg::offsets::{self, Verdict};
use crate::lake::iceberg::{self as ice, Guarded};

/// A cut waiting for a commit round: its partition, the offset after it, its files, and where its outcome goes.
pub(super) struct Pending {
    pub(super) partition: i32,
    pub(super) next: i64,
    pub(super) files: Vec<iceberg::spec::DataFile>,
    pub(super) done: tokio::sync::oneshot::Sender<Result<(), SinkError>>,
}

/// The table property that has a commit delete the metadata files its metadata log no longer lists (the log keeps
/// `write.metadata.previous-versions-max`), as Iceberg's Java library does; tables the sink creates set it.
pub const PROP_DELETE_AFTER_COMMIT: &str = "write.metadata.delete-after-commit.enabled";

/// After a commit from `before` to `after`: with `PROP_DELETE_AFTER_COMMIT` on, deletes the metadata files
/// `before` listed (or was) that `after` no longer lists. Never the current one; a failed delete leaves a file no
/// metadata lists, which `lake expire` removes later (a warning, not a stop).
async fn delete_dropped_metadata(before: &Table, after: &Table) {
    let on =
        after.metadata().properties().get(PROP_DELETE_AFTER_COMMIT).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if !on {
        return;
    }
    let listed = |t: &Table| -> Vec<String> {
        let log = t.metadata().metadata_log().iter().map(|l| l.metadata_file.clone());
        log.chain(t.metadata_location().map(str::to_string)).collect()
    };
    let kept = listed(after);
    for file in listed(before).into_iter().filter(|f| !kept.contains(f)) {
        match after.file_io().delete(&file).await {
            Ok(()) => tracing::debug!(file, "deleted a metadata file the table no longer lists"),
            Err(e) => tracing::warn!(
                file,
                "could not delete a metadata file the table no longer lists (lake expire removes it later): {e}"
            ),
        }
    }
}

impl IcebergTarget {
    /// One commit round: every queued cut in one snapshot (see the module docs). Each cut's outcome goes to its
    /// writer: done, already committed (an answer lost), fenced (another writer moved its partition), or an error.
    pub(super) async fn commit_round(&self, mut round: Vec<Pending>) {
        // One cut per partition a round (a partition's cuts come one after another; a second would wait).
        let mut seen = std::collections::BTreeSet::new();
        let (now_round, later): (Vec<_>, Vec<_>) = round.drain(..).partition(|c| seen.insert(c.partition));
        self.pending.lock().expect("not poisoned").extend(later);
        let mut round = now_round;
        let deadline = std::time::Instant::now() + self.retry_for;
        while !round.is_empty() {
            let cached = self.cached.lock().expect("not poisoned").take();
            let table = match cached {
                Some(t) => Ok(t),
                None => self.load().await,
            };
            let now = table.and_then(|t| ice::recorded(&t, &self.topic).map_err(SinkError::Corrupt).map(|r| (t, r)));
            let (table, now) = match now {
                Ok(x) => x,
                Err(e) => {
                    let msg = e.to_string();
                    for c in round {
                        let _ = c.done.send(Err(SinkError::Iceberg(msg.clone())));
                    }
                    return;
                }
            };
            // Each cut on its own: its partition where this sink left it (go), already at its end by this sink (an
            // answer lost: done), or elsewhere (fenced).
            let mut go = Vec::new();
            for c in round.drain(..) {
                let expected = self.next_offset(c.partition);
                let mut base = now.offsets.clone();
                match expected {
                    Some(o) => base.insert(c.partition, o),
                    None => base.remove(&c.partition),
                };
                match offsets::judge(&now, &base, c.partition, c.next, &self.writer) {
                    Verdict::Go | Verdict::Rebase => go.push(c),
                    Verdict::AlreadyCommitted => {
                        self.expected.lock().expect("not poisoned").insert(c.partition, c.next);
                        let _ = c.done.send(Ok(()));
                    }
                    Verdict::Fenced { found, writer } => {
                        let _ = c.done.send(Err(SinkError::Fenced {
                            topic: self.topic.clone(),
                            partition: c.partition,
                            holder: format!(
                                "table {} records next offset {} for it (expected {}), committed by {}",
                                self.ident,
                                found.map_or("none".into(), |o| o.to_string()),
                                expected.map_or("none".into(), |o| o.to_string()),
                                writer.unwrap_or_else(|| "another writer".into())
                            ),
                        }));
                    }
                }
            }
            if let Some(fence) = self.fence.get() {
                let mut held = Vec::with_capacity(go.len());
                for c in go {
                    match fence.ensure_held(c.partition).await {
                        Ok(()) => held.push(c),
                        Err(e) => {
                            let _ = c.done.send(Err(e.into()));
                        }
                    }
                }
                go = held;
            }
            if go.is_empty() {
                return;
            }
            // The summary: what the table records now, with every cut's partition at its end.
            let base = now.offsets.clone();
            let mut merged = base.clone();
            let (last, rest) = go.split_last().expect("not empty");
            for c in rest {
                merged.insert(c.partition, c.next);
            }
            let props = offsets::summary(&self.topic, &merged, last.partition, last.next, &self.writer);
            let files: Vec<_> = go.iter().flat_map(|c| c.files.iter().cloned()).collect();
            let tx = Transaction::new(&table);
            let append =
                tx.fast_append().with_check_duplicate(false).add_data_files(files).set_snapshot_properties(props);
            let tx = match append.apply(tx) {
                Ok(tx) => tx,
                Err(e) => {
                    let msg = format!("preparing the commit: {e}");
                    for c in go {
                        let _ = c.done.send(Err(SinkError::Iceberg(msg.clone())));
                    }
                    return;
                }
            };
            // Committed only over the state it was prepared from: anything else, and the round looks again.
            let topic = self.topic.clone();
            let guard = Guarded {
                inner: self.catalog.clone(),
                check: move |t: &Table| match ice::recorded(t, &topic) {
                    Ok(r) if r.offsets == base => Verdict::Go,
                    _ => Verdict::Rebase,
                },
                refused: std::sync::Mutex::new(None),
            };
            let result = tx.commit(&guard).await;
            let refused = guard.refused.lock().expect("not poisoned").take();
            match result {
                Ok(committed) => {
                    delete_dropped_metadata(&table, &committed).await;
                    *self.cached.lock().expect("not poisoned") = Some(committed);
                    if go.len() > 1 {
                        tracing::debug!(cuts = go.len(), "one snapshot for several cuts");
                    }
                    for c in go {
                        self.expected.lock().expect("not poisoned").insert(c.partition, c.next);
                        let _ = c.done.send(Ok(()));
                    }
                    return;
                }
                Err(_) if refused.is_some() => round = go,
                Err(e) if std::time::Instant::now() < deadline => {
                    tracing::warn!(cuts = go.len(), "iceberg commit failed, retrying: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    round = go;
                }
                Err(e) => {
                    let msg = format!("committing: {e}");
                    for c in go {
                        let _ = c.done.send(Err(SinkError::Iceberg(msg.clone())));
                    }
                    return;
                }
            }
        }
    }
}
