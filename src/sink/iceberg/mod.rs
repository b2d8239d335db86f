//! `sink --format iceberg`: the cuts of the sink's Kafka partitions become Iceberg fast-append snapshots, exactly
//! once; the cuts that are ready together go into one snapshot (a group commit).
//!
//! ```text
//!  0 schema   columns the cut has and the table lacks: an Iceberg schema update (optional columns)
//!  1 files    Parquet data files under the table's data/ folder (Iceberg's writer: field ids, metrics, partitions)
//!  2 rejects  _ticklake/rejects/<topic>/<topic>-<p>-<first>.jsonl under --to (outside the table), if any
//!  3 commit   one snapshot for every cut waiting: their files, and in its summary the topic's next offset per
//!             Kafka partition
//! ```
//!
//! Step 3 is a group commit: a cut whose files are written joins the queue; whoever holds the commit lock takes
//! every cut queued and commits them as one snapshot, checking each partition's offsets as a single cut's commit
//! would; a cut committed by another's round is done when its writer gets the lock. A live feed whose partitions
//! cut together makes one or two snapshots a round instead of one per partition.
//!
//! Offsets live in the table (see `lake::iceberg::offsets`): a sink resumes from what the snapshot history
//! records. A crash before step 3 leaves data files no snapshot references (orphans: no reader sees them, `lake
//! verify` lists them, Athena `VACUUM` removes them) and the next run consumes the same offsets again. The commit
//! is checked on the very table state it lands on (`lake::iceberg::Guarded`): if another writer moved this
//! partition's offsets, this sink is a zombie and stops (exit 13) without committing; a commit that did not touch
//! them (Athena `OPTIMIZE`, `VACUUM`, another topic's or another partition's sink) costs a reload and a retry.

mod files;
mod round;
mod table;

use std::sync::Arc;
use std::time::Duration;

use iceberg::spec::Type;
use iceberg::table::Table;
use iceberg::transaction::{AddColumn, ApplyTransactionAction, Transaction};
use iceberg::{Catalog, TableIdent};

use super::buffer::Cut;
use super::commit::{Committed, put_with_retry};
use super::{SinkConfig, SinkError};
use crate::lake::Store;
use crate::lake::iceberg::offsets::Offsets;
use crate::lake::iceberg::{self as ice, spec};
use crate::lake::state::{Checkpoint, rejects_key};
use crate::lake::table::TableSpec;
use crate::schema::{Field, Schema};
pub use round::PROP_DELETE_AFTER_COMMIT;
use round::Pending;
pub use table::schema_of;
use table::{create, layout_of};

/// An Iceberg failure as a sink error: a catalog or storage that does not answer is worth retrying, anything else
/// is the table's or the flags' fault.
pub fn iceberg_error(what: &str, e: iceberg::Error) -> SinkError {
    SinkError::Iceberg(format!("{what}: {e}"))
}

/// The Iceberg table a sink commits to.
pub struct IcebergTarget {
    catalog: Arc<dyn Catalog>,
    pub ident: TableIdent,
    topic: String,
    /// Who commits (host, pid, start time): recorded in every snapshot this sink makes.
    writer: String,
    /// One commit at a time from this process: the partitions' commits would only conflict with each other.
    commit_lock: tokio::sync::Mutex<()>,
    /// Cuts whose files are written, waiting for the next commit round.
    pending: std::sync::Mutex<Vec<Pending>>,
    /// A cut joined `pending`.
    queued: tokio::sync::Notify,
    /// How many Kafka partitions this sink writes: a round with a cut of each needs no more waiting.
    partitions: std::sync::atomic::AtomicUsize,
    /// How long a round waits for the other partitions' cuts of the same `--max-age` tick.
    linger: Duration,
    /// Next offset per Kafka partition as this sink last read or committed it: a commit expects to find exactly
    /// this in the table.
    expected: std::sync::Mutex<Offsets>,
    /// The table as this sink's last commit (or load) left it: a commit prepares from it, and the check on the
    /// state the commit lands on says when it is stale (then it is loaded again). Saves two catalog round trips
    /// and two metadata reads per commit.
    cached: std::sync::Mutex<Option<Table>>,
    /// `--to`: where rejects go (outside the table's folder).
    store: Store,
    /// The sink's leases: checked before each commit (`Fence::ensure_held`).
    fence: std::sync::OnceLock<Arc<crate::lake::fence::Fence>>,
    row_group_rows: usize,
    retry_for: Duration,
}

fn writer_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    let start = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    format!("{host} pid {} started {start}", std::process::id())
}

/// Opens the catalog and the table (creating it from the resolved schema if missing), checks the flags against an
/// existing table, and reads the offsets recorded for the topic. `None`: the topic is empty and the table missing.
pub(super) async fn open(
    cfg: &SinkConfig,
    opts: &super::IcebergOptions,
    store: Store,
    partitions: usize,
    sample: impl AsyncFnOnce() -> Result<Option<Schema>, SinkError>,
) -> Result<Option<(TableSpec, Arc<IcebergTarget>)>, SinkError> {
    let catalog = ice::open_catalog(&opts.catalog, &cfg.lake, &cfg.s3).await.map_err(SinkError::Iceberg)?;
    let ident = ice::table_ident(&opts.table).map_err(SinkError::Config)?;
    let exists = catalog.table_exists(&ident).await.map_err(|e| iceberg_error("catalog", e))?;
    let table = if exists {
        let table = catalog.load_table(&ident).await.map_err(|e| iceberg_error("loading the table", e))?;
        let (parts, sort) = layout_of(&table);
        if let Some(given) = &cfg.partition_by {
            let given = spec::normalize_partition_by(given).map_err(|e| SinkError::Config(e.to_string()))?;
            if given != parts {
                return Err(SinkError::Config(format!(
                    "--partition-by '{given}' conflicts with table {}'s partition spec '{parts}': drop the flag (the table's spec is used), or write to another table",
                    opts.table
                )));
            }
        }
        if let Some(given) = cfg.sort_by.as_ref().filter(|g| **g != sort) {
            return Err(SinkError::Config(format!(
                "--sort-by '{}' conflicts with table {}'s sort order '{}': drop the flag, or write to another table",
                given.join(","),
                opts.table,
                sort.join(",")
            )));
        }
        table
    } else {
        let Some(schema) = (match &cfg.schema {
            Some(s) => Some(s.clone()),
            None => sample().await?,
        }) else {
            return Ok(None);
        };
        schema.validate().map_err(|e| SinkError::Config(e.to_string()))?;
        create(&*catalog, &ident, &schema, cfg).await?
    };
    let mut schema = schema_of(&table)?;
    if let Some(given) = &cfg.schema {
        // Roles come from the flag; its extra columns are added at the first commit (a schema update).
        let t = TableSpec::new(&cfg.topic, schema.clone(), String::new(), vec![], 0);
        let added = t.admit(&cfg.topic, given, "--schema").map_err(|e| SinkError::Config(e.to_string()))?;
        schema.fields.extend(added);
        schema.key = schema.key.or(given.key.clone());
        schema.event_time = schema.event_time.or(given.event_time.clone());
    }
    let recorded = ice::recorded(&table, &cfg.topic).map_err(SinkError::Corrupt)?;
    let (parts, sort) = layout_of(&table);
    tracing::info!(
        table = %opts.table, catalog = %opts.catalog.describe(), location = %table.metadata().location(),
        partition_by = %parts, sort_by = ?sort, recorded = ?recorded.offsets, "iceberg table ready"
    );
    let spec = TableSpec::new(&cfg.topic, schema, parts, sort, cfg.row_group_rows);
    let target = IcebergTarget {
        catalog,
        ident,
        topic: cfg.topic.clone(),
        writer: writer_id(),
        commit_lock: tokio::sync::Mutex::new(()),
        pending: std::sync::Mutex::new(Vec::new()),
        queued: tokio::sync::Notify::new(),
        partitions: std::sync::atomic::AtomicUsize::new(partitions),
        linger: (cfg.max_age / 4).min(Duration::from_millis(200)),
        expected: std::sync::Mutex::new(recorded.offsets),
        cached: std::sync::Mutex::new(Some(table)),
        store,
        fence: std::sync::OnceLock::new(),
        row_group_rows: cfg.row_group_rows,
        retry_for: cfg.retry_for,
    };
    Ok(Some((spec, Arc::new(target))))
}

impl IcebergTarget {
    /// Where the partition resumes: the next offset recorded in the table (`None`: never committed).
    pub fn next_offset(&self, partition: i32) -> Option<i64> {
        self.expected.lock().expect("not poisoned").get(&partition).copied()
    }

    /// The sink's leases: a commit first makes sure this sink still holds its partitions (a sink paused past its
    /// lease TTL, whose partitions another sink took over, must not commit what it prepared before the pause).
    pub fn set_fence(&self, fence: Arc<crate::lake::fence::Fence>) {
        let _ = self.fence.set(fence);
    }

    /// `--group`: this sink writes `n` partitions now.
    pub fn set_partitions(&self, n: usize) {
        self.partitions.store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Reads where `partition` resumes from the table as it is now (`--group`: another member may have committed
    /// it since this sink last looked).
    pub async fn refresh(&self, partition: i32) -> Result<(), SinkError> {
        let table = self.load().await?;
        let recorded = ice::recorded(&table, &self.topic).map_err(SinkError::Corrupt)?;
        {
            let mut expected = self.expected.lock().expect("not poisoned");
            match recorded.offsets.get(&partition) {
                Some(&o) => expected.insert(partition, o),
                None => expected.remove(&partition),
            };
        }
        *self.cached.lock().expect("not poisoned") = Some(table);
        Ok(())
    }

    async fn load(&self) -> Result<Table, SinkError> {
        let (catalog, ident) = (&self.catalog, &self.ident);
        crate::backoff::retry(
            "load the iceberg table",
            self.retry_for,
            Duration::from_secs(5),
            |_: &iceberg::Error| true,
            |_| catalog.load_table(ident),
        )
        .await
        .map_err(|e| iceberg_error("loading the table", e))
    }

    /// Adds the columns of `schema` the table lacks (optional columns, one schema update); returns the table.
    async fn ensure_columns(&self, schema: &Schema) -> Result<Table, SinkError> {
        loop {
            let cached = self.cached.lock().expect("not poisoned").clone();
            let table = match cached {
                Some(t) => t,
                None => self.load().await?,
            };
            let current = table.metadata().current_schema();
            let missing: Vec<&Field> =
                schema.fields.iter().filter(|f| current.field_by_name(&f.name).is_none()).collect();
            if missing.is_empty() {
                return Ok(table);
            }
            let tx = Transaction::new(&table);
            let mut update = tx.update_schema();
            for f in &missing {
                update = update.add_column(AddColumn::optional(&f.name, Type::Primitive(spec::iceberg_type(f.ty))));
            }
            let tx = update.apply(tx).map_err(|e| iceberg_error("schema update", e))?;
            let committed = tx.commit(&*self.catalog).await;
            *self.cached.lock().expect("not poisoned") = None;
            match committed {
                Ok(_) => tracing::warn!(
                    table = %self.ident, columns = ?missing.iter().map(|f| &f.name).collect::<Vec<_>>(),
                    "added columns to the iceberg table"
                ),
                // Another writer changed the schema at the same time: look again.
                Err(e) if e.retryable() => continue,
                Err(e) => return Err(iceberg_error("schema update", e)),
            }
        }
    }

    /// Commits one cut (see the module docs) and advances `cp`.
    pub async fn commit(&self, cp: &mut Checkpoint, cut: Cut, buffered: usize) -> Result<Committed, SinkError> {
        let p = cut.partition;
        let next = cut.last + 1;
        let table = {
            let _one = self.commit_lock.lock().await;
            self.ensure_columns(&cut.layout.schema).await?
        };
        let files = if cut.rows > 0 {
            // The same bound as the hive sink's encodes: at most two cuts are being written at once.
            let _slot = super::commit::ENCODE_SLOTS.acquire().await.expect("the encode semaphore is never closed");
            files::write_files(&table, &cut, &self.topic, self.row_group_rows).await?
        } else {
            Vec::new()
        };
        let bytes: u64 = files.iter().map(|f| f.file_size_in_bytes()).sum();
        tracing::debug!(partition = p, files = files.len(), "data files written; committing");
        if !cut.rejects.is_empty() {
            let mut lines = Vec::new();
            for r in &cut.rejects {
                serde_json::to_writer(&mut lines, r).expect("reject serializes");
                lines.push(b'\n');
            }
            put_with_retry(&self.store, &rejects_key(&self.topic, p, cut.first), lines, self.retry_for).await?;
        }
        let n_files = files.len();
        let at_tick = cut.at_tick;
        let (done, mut outcome) = tokio::sync::oneshot::channel();
        self.pending.lock().expect("not poisoned").push(Pending { partition: p, next, files, done });
        self.queued.notify_waiters();
        // A cut at a --max-age tick: the other partitions cut at the same moment, give their files a moment to join,
        // without the commit lock (a partition still updating the schema or about to write its files needs it
        // first). A cut for size or at the end commits at once, with whatever else is queued.
        let until = tokio::time::Instant::now() + if at_tick { self.linger } else { Duration::ZERO };
        let mut answer = None;
        loop {
            let joined = self.queued.notified();
            tokio::pin!(joined);
            joined.as_mut().enable();
            match outcome.try_recv() {
                Ok(a) => {
                    answer = Some(a);
                    break;
                }
                Err(tokio::sync::oneshot::error::TryRecvError::Closed) => break,
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {}
            }
            let waiting = self.pending.lock().expect("not poisoned").len();
            if waiting >= self.partitions.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            if tokio::time::timeout_at(until, joined).await.is_err() {
                break;
            }
        }
        let answer = match answer {
            Some(a) => Ok(a),
            None => {
                let _one = self.commit_lock.lock().await;
                // Committed by the round of whoever held the lock before: done. Else this round commits it.
                match outcome.try_recv() {
                    Ok(a) => Ok(a),
                    Err(_) => {
                        let round = std::mem::take(&mut *self.pending.lock().expect("not poisoned"));
                        self.commit_round(round).await;
                        // The cuts this round committed have their answers: their writers stop waiting.
                        self.queued.notify_waiters();
                        outcome.try_recv()
                    }
                }
            }
        };
        answer.map_err(|_| SinkError::Iceberg("the commit round ended without an answer".into()))??;
        cp.next_offset = next;
        Ok(Committed { files: n_files, rows: cut.rows, rejects: cut.rejects.len(), bytes, buffered })
    }
}
