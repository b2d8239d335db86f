//! The I/O of `lake stats|verify` on an Iceberg table (the `iceberg` feature): loading the table, scanning its
//! `kafka_*` columns, reading manifests, listing orphans. The verdict itself is `iceberg::check`, pure.

use std::collections::BTreeSet;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int32Type, Int64Type};
use futures::TryStreamExt;
use iceberg::table::Table;

use super::iceberg::{IcebergTable, IcebergVerify, check};
use super::{LakeCmdError, SMALL_FILE_ROWS};
use crate::lake::iceberg as ice;
use crate::lake::state::{Reject, rejects_prefix};
use crate::lake::{LakeUrl, S3Options, Store};

fn err(what: &str) -> impl Fn(iceberg::Error) -> LakeCmdError + '_ {
    move |e| LakeCmdError::Corrupt(format!("iceberg: {what}: {e}"))
}

async fn load(url: &LakeUrl, s3: &S3Options, t: &IcebergTable) -> Result<Table, LakeCmdError> {
    ice::open_table(&t.catalog, url, s3, &t.table).await.map_err(LakeCmdError::Corrupt)
}

/// Every data file any snapshot of the table references (a file an `OPTIMIZE` replaced stays referenced by the
/// older snapshots until they expire).
async fn referenced_files(table: &Table) -> Result<BTreeSet<String>, LakeCmdError> {
    let mut out = BTreeSet::new();
    for snapshot in table.metadata().snapshots() {
        let list = table.manifest_list_reader(snapshot).load().await.map_err(err("reading a manifest list"))?;
        for m in list.entries() {
            let manifest = m.load_manifest(table.file_io()).await.map_err(err("reading a manifest"))?;
            out.extend(manifest.entries().iter().map(|e| e.file_path().to_string()));
        }
    }
    Ok(out)
}

/// Data files under the table's `data/` folder that no snapshot references: written by a sink that crashed before
/// its commit (or by another writer that failed). No reader sees them; Athena `VACUUM` deletes them. `None`: the
/// table's folder is not under `--to`, so it cannot be listed from here.
async fn orphans(url: &LakeUrl, s3: &S3Options, table: &Table) -> Result<Option<Vec<String>>, LakeCmdError> {
    let store = Store::open(url, s3).await?;
    Ok(orphan_objects(url, &store, table).await?.map(|o| o.into_iter().map(|(_, full, _, _)| full).collect()))
}

/// The orphans as (key under `--to`, full path, size, last written).
type Orphan = (String, String, u64, Option<chrono::DateTime<chrono::Utc>>);

async fn orphan_objects(url: &LakeUrl, store: &Store, table: &Table) -> Result<Option<Vec<Orphan>>, LakeCmdError> {
    let warehouse = ice::warehouse(url).map_err(LakeCmdError::Corrupt)?;
    let location = table.metadata().location().trim_end_matches('/');
    let Some(rel) = location.strip_prefix(&format!("{warehouse}/")) else { return Ok(None) };
    let listed = store.list(&format!("{rel}/data/")).await?;
    let referenced = referenced_files(table).await?;
    Ok(Some(
        listed
            .into_iter()
            .map(|o| {
                let full = format!("{warehouse}/{}", o.key);
                (o.key, full, o.size, o.modified)
            })
            .filter(|(_, full, _, _)| full.ends_with(".parquet") && !referenced.contains(full))
            .collect(),
    ))
}

/// The (topic, Kafka partition) a ticklake data file's name carries:
/// `<topic>-<partition>-<first offset, 20 digits>-<n>-<random>.parquet` (see `sink::iceberg::files`).
fn writer_of(path: &str) -> Option<(&str, i32)> {
    let name = path.rsplit('/').next()?.strip_suffix(".parquet")?;
    let mut parts = name.rsplitn(4, '-');
    let (_random, _n, first, rest) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if first.len() != 20 || !first.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (topic, p) = rest.rsplit_once('-')?;
    Some((topic, p.parse().ok()?))
}

/// `lake remove-orphans`: deletes the data files of `topic` that no snapshot references (a crashed or fenced
/// sink's uploads) and that were last written more than `older_than` ago, for any catalog. It first takes the
/// topic's leases as a sink would (`lake::fence`): a live sink of the table makes it stop with exit 13 before it
/// deletes anything, a crashed one's lease is taken over (at once on the same host, after the lease TTL
/// elsewhere), and no sink can start while it runs. The table is read after the leases are held, so a commit that
/// landed before counts. The age bound covers what leases cannot: a sink paused past its TTL that wakes with a cut
/// whose files are written but not yet committed (as Iceberg's own remove_orphan_files keeps files of the last days).
pub async fn remove_orphans(
    url: &LakeUrl,
    s3: &S3Options,
    t: &IcebergTable,
    topic: &str,
    lease_ttl: std::time::Duration,
    older_than: std::time::Duration,
) -> Result<String, LakeCmdError> {
    let store = Store::open(url, s3).await?;
    let table = load(url, s3, t).await?;
    check_topic_recorded(&table, t, topic)?;
    let Some(listed) = orphan_objects(url, &store, &table).await? else {
        return Err(LakeCmdError::Refused(format!(
            "table {}'s folder ({}) is not under --to {}: pass the warehouse the table lives in",
            t.table,
            table.metadata().location(),
            url.display()
        )));
    };
    let mut partitions: BTreeSet<i32> =
        ice::recorded(&table, topic).map_err(LakeCmdError::Corrupt)?.offsets.into_keys().collect();
    partitions.extend(
        listed.iter().filter_map(|(_, full, _, _)| writer_of(full)).filter(|(w, _)| *w == topic).map(|(_, p)| p),
    );
    let fence =
        crate::lake::fence::Fence::new(store.clone(), topic, lease_ttl, s3.retry_for).for_iceberg_table(&t.table);
    let shutdown = crate::shutdown::Shutdown::process().clone();
    for &p in &partitions {
        if let Err(e) = fence.acquire(p, &shutdown).await {
            fence.release().await;
            return Err(e.into());
        }
    }
    let result = async {
        let table = load(url, s3, t).await?;
        let orphans = orphan_objects(url, &store, &table).await?.unwrap_or_default();
        let before = chrono::Utc::now() - chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::MAX);
        let (mine, recent): (Vec<_>, Vec<_>) = orphans
            .iter()
            .filter(|(_, full, _, _)| writer_of(full).is_some_and(|(w, _)| w == topic))
            .partition(|(_, _, _, modified)| modified.is_some_and(|m| m <= before));
        let bytes: u64 = mine.iter().map(|(_, _, size, _)| size).sum();
        for (key, full, _, _) in &mine {
            tracing::info!(file = %full, "removing an orphan data file");
            crate::lake::retry("delete", key, s3.retry_for, || store.delete(key)).await?;
        }
        Ok::<_, LakeCmdError>(format!(
            "removed {} orphan data file(s) ({}) of topic {topic} from table {}; kept {} written in the last {:?} (--older-than) and {} of other writers",
            mine.len(),
            crate::units::human_bytes(bytes),
            t.table,
            recent.len(),
            older_than,
            orphans.len() - mine.len() - recent.len()
        ))
    }
    .await;
    fence.release().await;
    result
}

/// Every file a set of snapshots references: their manifest lists, manifests and data files.
async fn files_of<'a>(
    table: &Table,
    snapshots: impl IntoIterator<Item = &'a iceberg::spec::SnapshotRef>,
) -> Result<BTreeSet<String>, LakeCmdError> {
    let mut out = BTreeSet::new();
    for snapshot in snapshots {
        out.insert(snapshot.manifest_list().to_string());
        let list = table.manifest_list_reader(snapshot).load().await.map_err(err("reading a manifest list"))?;
        // A fast append's manifest list repeats its parent's manifests: each is read once.
        for m in list.entries() {
            if !out.insert(m.manifest_path.clone()) {
                continue;
            }
            let manifest = m.load_manifest(table.file_io()).await.map_err(err("reading a manifest"))?;
            out.extend(manifest.entries().iter().map(|e| e.file_path().to_string()));
        }
    }
    Ok(out)
}

/// The snapshots `lake expire` removes: older than `cutoff_ms`, except the newest `retain_last` of the current
/// ancestry and, for every topic, the newest snapshot recording its offsets (where a sink resumes from).
pub(crate) fn to_expire(table: &Table, cutoff_ms: i64, retain_last: usize) -> Vec<i64> {
    let ancestry = ice::ancestry(table);
    let mut keep: BTreeSet<i64> = ancestry.iter().take(retain_last.max(1)).map(|(id, _)| *id).collect();
    let mut topics = BTreeSet::new();
    for (id, summary) in &ancestry {
        for key in summary.keys().filter(|k| k.starts_with("ticklake.offsets.")) {
            if topics.insert(key.clone()) {
                keep.insert(*id);
            }
        }
    }
    table
        .metadata()
        .snapshots()
        .filter(|s| s.timestamp_ms() < cutoff_ms && !keep.contains(&s.snapshot_id()))
        .map(|s| s.snapshot_id())
        .collect()
}

/// `lake expire`: snapshot retention for catalogs nothing else cleans (sqlite, REST; Athena's `VACUUM` does it for
/// Glue). Expires snapshots older than `older_than` through the Iceberg crates' own action (keeping the newest
/// `retain_last` and each topic's newest offsets) and sets `write.metadata.previous-versions-max` to
/// `keep_metadata` in the same commit (the table's metadata log is trimmed to it, now and at every later commit,
/// as Java's writers do); then deletes what only the expired snapshots referenced (manifest lists, manifests, data
/// files an `OPTIMIZE` replaced) and the metadata files the table no longer lists, last written before
/// `older_than` (a younger one may be a commit in flight). Safe while a sink writes: the catalog's commit check
/// orders the two, and the sink's offsets live in a snapshot that is kept.
pub async fn expire(
    url: &LakeUrl,
    s3: &S3Options,
    t: &IcebergTable,
    older_than: std::time::Duration,
    retain_last: usize,
    keep_metadata: usize,
) -> Result<String, LakeCmdError> {
    use iceberg::transaction::{ApplyTransactionAction, Transaction};
    let catalog = ice::open_catalog(&t.catalog, url, s3).await.map_err(LakeCmdError::Corrupt)?;
    let ident = ice::table_ident(&t.table).map_err(LakeCmdError::Corrupt)?;
    let table = catalog.load_table(&ident).await.map_err(err("loading the table"))?;
    let now = chrono::Utc::now();
    let cutoff = now - chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::MAX);
    let ids = to_expire(&table, cutoff.timestamp_millis(), retain_last);
    let before = table.metadata().snapshots().len();
    const VERSIONS_MAX: &str = iceberg::spec::TableProperties::PROPERTY_METADATA_PREVIOUS_VERSIONS_MAX;
    let keep = keep_metadata.max(1).to_string();
    let policy_set = table.metadata().properties().get(VERSIONS_MAX) == Some(&keep);
    // What the table references after the expiry: read once, for the deletes of both steps below.
    let (table, referenced) = if ids.is_empty() && policy_set {
        let referenced = files_of(&table, table.metadata().snapshots()).await?;
        (table, referenced)
    } else {
        let expired: Vec<_> =
            table.metadata().snapshots().filter(|s| ids.contains(&s.snapshot_id())).cloned().collect();
        let mut tx = Transaction::new(&table);
        if !ids.is_empty() {
            // By id alone: the age cutoff is applied above (with the offsets' snapshots kept), not by the action.
            let action = tx.expire_snapshots().expire_snapshot_ids(ids.clone()).expire_older_than_ms(i64::MIN);
            tx = action.apply(tx).map_err(err("expiring snapshots"))?;
        }
        let policy = tx.update_table_properties().set(VERSIONS_MAX.into(), keep.clone());
        let tx = policy.apply(tx).map_err(err("setting the metadata log's length"))?;
        let after = tx.commit(&*catalog).await.map_err(err("committing the expiry"))?;
        let still = files_of(&after, after.metadata().snapshots()).await?;
        let gone: Vec<String> = files_of(&table, &expired).await?.into_iter().filter(|f| !still.contains(f)).collect();
        for f in &gone {
            after.file_io().delete(f).await.map_err(err("deleting a file of an expired snapshot"))?;
        }
        tracing::info!(snapshots = ids.len(), files = gone.len(), "expired");
        (after, still)
    };
    // The metadata folder's files the table no longer lists or references: metadata files beyond the log, and
    // manifest lists and manifests of snapshots expired earlier (an expiry stopped before its deletes, or another
    // tool's). Those written within `older_than` stay: one may belong to a commit in flight.
    let warehouse = ice::warehouse(url).map_err(LakeCmdError::Corrupt)?;
    let location = table.metadata().location().trim_end_matches('/');
    let mut old_metadata = 0;
    if let Some(rel) = location.strip_prefix(&format!("{warehouse}/")) {
        let store = Store::open(url, s3).await?;
        let mut listed: BTreeSet<String> =
            table.metadata().metadata_log().iter().map(|m| m.metadata_file.clone()).collect();
        listed.extend(table.metadata_location().map(String::from));
        listed.extend(referenced);
        for o in store.list(&format!("{rel}/metadata/")).await? {
            let full = format!("{warehouse}/{}", o.key);
            let old = o.modified.is_some_and(|m| m <= cutoff);
            let ours = o.key.ends_with(".metadata.json") || o.key.ends_with(".avro");
            if ours && old && !listed.contains(&full) && !listed.contains(&o.key) {
                crate::lake::retry("delete", &o.key, s3.retry_for, || store.delete(&o.key)).await?;
                old_metadata += 1;
            }
        }
    }
    Ok(format!(
        "table {}: expired {} of {before} snapshot(s) older than {older_than:?} (kept the newest {} and each topic's latest offsets); removed {old_metadata} file(s) of the metadata folder the table no longer lists (it lists the last {keep} metadata files: {VERSIONS_MAX})",
        t.table,
        ids.len(),
        retain_last.max(1)
    ))
}

/// A topic the table holds no offsets of is an error naming the topics it does hold, as for a hive lake.
fn check_topic_recorded(table: &Table, t: &IcebergTable, topic: &str) -> Result<(), LakeCmdError> {
    let key = crate::lake::iceberg::offsets::offsets_key(topic);
    let mut topics = BTreeSet::new();
    for s in table.metadata().snapshots() {
        for k in s.summary().additional_properties.keys() {
            if k == &key {
                return Ok(());
            }
            if let Some(other) = k.strip_prefix("ticklake.offsets.") {
                topics.insert(other.to_string());
            }
        }
    }
    Err(LakeCmdError::NotInLake(if topics.is_empty() {
        format!("table {} holds no offsets of any topic: no ticklake sink committed to it yet", t.table)
    } else {
        format!(
            "table {} does not hold topic '{topic}'; it holds {}. Check --topic",
            t.table,
            topics.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ")
        )
    }))
}

/// (kafka_partition, kafka_offset) of every row of the current snapshot.
async fn offsets_in_rows(table: &Table) -> Result<Vec<(i32, i64)>, LakeCmdError> {
    let scan = table.scan().select(["kafka_partition", "kafka_offset"]).build().map_err(err("planning the scan"))?;
    let batches: Vec<_> =
        scan.to_arrow().await.map_err(err("scanning"))?.try_collect().await.map_err(err("scanning"))?;
    let mut out = Vec::new();
    for b in batches {
        let p = b.column(0).as_primitive::<Int32Type>();
        let o = b.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            if p.is_valid(i) && o.is_valid(i) {
                out.push((p.value(i), o.value(i)));
            }
        }
    }
    Ok(out)
}

pub async fn verify(
    url: &LakeUrl,
    s3: &S3Options,
    t: &IcebergTable,
    topic: &str,
) -> Result<IcebergVerify, LakeCmdError> {
    let table = load(url, s3, t).await?;
    check_topic_recorded(&table, t, topic)?;
    let recorded = ice::recorded(&table, topic).map_err(LakeCmdError::Corrupt)?.offsets;
    let rows = offsets_in_rows(&table).await?;
    let store = Store::open(url, s3).await?;
    let mut rejects = Vec::new();
    for o in store.list(&rejects_prefix(topic)).await? {
        let bytes = store.get(&o.key).await?.unwrap_or_default();
        for line in String::from_utf8_lossy(&bytes).lines() {
            let r: Reject = serde_json::from_str(line).map_err(|e| LakeCmdError::Corrupt(format!("{}: {e}", o.key)))?;
            // A cut's rejects are stored before its commit: those of a cut that never committed are redone.
            if recorded.get(&r.partition).is_some_and(|next| r.offset < *next) {
                rejects.push((r.partition, r.offset));
            }
        }
    }
    rejects.sort_unstable();
    rejects.dedup();
    let (partitions, foreign_rows) = check(&recorded, &rows, &rejects);
    Ok(IcebergVerify {
        recorded,
        partitions,
        foreign_rows,
        orphans: orphans(url, s3, &table).await?,
        snapshots: table.metadata().snapshots().count(),
    })
}

pub async fn stats(url: &LakeUrl, s3: &S3Options, t: &IcebergTable, topic: &str) -> Result<String, LakeCmdError> {
    let table = load(url, s3, t).await?;
    check_topic_recorded(&table, t, topic)?;
    let meta = table.metadata();
    let scan = table.scan().build().map_err(err("planning the scan"))?;
    let tasks: Vec<_> =
        scan.plan_files().await.map_err(err("planning the scan"))?.try_collect().await.map_err(err("planning"))?;
    let (mut rows, mut bytes, mut small) = (0u64, 0u64, 0usize);
    let mut partitions = BTreeSet::new();
    for task in &tasks {
        rows += task.record_count.unwrap_or(0);
        bytes += task.length;
        if task.record_count.unwrap_or(0) < SMALL_FILE_ROWS as u64 {
            small += 1;
        }
        partitions.insert(task.data_file_path.rsplit_once('/').map_or(String::new(), |(d, _)| d.to_string()));
    }
    let schema = meta.current_schema();
    let name = |id: i32| schema.name_by_field_id(id).unwrap_or("?").to_string();
    let spec: Vec<String> = meta
        .default_partition_spec()
        .fields()
        .iter()
        .map(|f| format!("{}({})", f.transform, name(f.source_id)))
        .collect();
    let sort: Vec<String> = meta.default_sort_order().fields.iter().map(|f| name(f.source_id)).collect();
    let mut out = format!(
        "iceberg table {} ({}) at {}: {} file(s), {rows} row(s), {} in {} partition folder(s); {} snapshot(s), schema {} ({} columns)\n",
        t.table,
        t.catalog.describe(),
        meta.location(),
        tasks.len(),
        crate::units::human_bytes(bytes),
        partitions.len(),
        meta.snapshots().count(),
        meta.current_schema_id(),
        schema.as_struct().fields().len(),
    );
    out.push_str(&format!("partition spec: {}\nsort order: {}\n", spec.join(", "), sort.join(", ")));
    out.push_str(&format!(
        "small files (under {SMALL_FILE_ROWS} rows): {small}{}\n",
        if small >= 10 && small * 2 >= tasks.len() {
            "; compact them with Athena: OPTIMIZE <table> REWRITE DATA USING BIN_PACK (then VACUUM)"
        } else {
            ""
        }
    ));
    let recorded = ice::recorded(&table, topic).map_err(LakeCmdError::Corrupt)?;
    if recorded.offsets.is_empty() {
        out.push_str(&format!("topic {topic}: no offsets recorded in this table\n"));
    }
    for (p, o) in &recorded.offsets {
        out.push_str(&format!("kafka partition {p}: next offset {o}\n"));
    }
    if let Some(w) = recorded.writer {
        out.push_str(&format!("last committed by {w}\n"));
    }
    Ok(out.trim_end().to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn data_file_names_name_their_writer() {
        let f = "s3://w/db/t/data/year=2021/my-topic-3-00000000000000000042-00001-0123456789abcdef.parquet";
        assert_eq!(super::writer_of(f), Some(("my-topic", 3)));
        assert_eq!(super::writer_of("x/00000-0-abc.parquet"), None, "another writer's file");
    }
}
