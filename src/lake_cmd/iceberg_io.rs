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
    let warehouse = ice::warehouse(url).map_err(LakeCmdError::Corrupt)?;
    let location = table.metadata().location().trim_end_matches('/');
    let Some(rel) = location.strip_prefix(&format!("{warehouse}/")) else { return Ok(None) };
    let store = Store::open(url, s3).await?;
    let listed = store.list(&format!("{rel}/data/")).await?;
    let referenced = referenced_files(table).await?;
    Ok(Some(
        listed
            .into_iter()
            .map(|o| format!("{warehouse}/{}", o.key))
            .filter(|k| k.ends_with(".parquet") && !referenced.contains(k))
            .collect(),
    ))
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
