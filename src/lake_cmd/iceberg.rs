//! `lake stats` and `lake verify` on an Iceberg table (`--table` with `--catalog`): the answers come from the table
//! metadata (snapshots, manifests) and the `kafka_*` columns, read through the Iceberg crates; the rejects and the
//! orphan listing come from `--to`.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int32Type, Int64Type};
use futures::TryStreamExt;
use iceberg::table::Table;

use super::{LakeCmdError, SMALL_FILE_ROWS};
use crate::lake::iceberg::{self as ice, CatalogUrl, offsets::Offsets};
use crate::lake::state::{Reject, rejects_prefix};
use crate::lake::{LakeUrl, S3Options, Store};

/// Which Iceberg table a `lake` command reads.
#[derive(Debug, Clone)]
pub struct IcebergTable {
    pub table: String,
    pub catalog: CatalogUrl,
}

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

/// The verdict of `lake verify` on an Iceberg table.
#[derive(Debug, Default)]
pub struct IcebergVerify {
    pub recorded: Offsets,
    /// Per Kafka partition: rows, rejects, the lowest offset seen, gaps and duplicates.
    pub partitions: BTreeMap<i32, PartitionCheck>,
    /// Rows whose Kafka partition the topic never recorded (another writer's rows, or another topic's).
    pub foreign_rows: usize,
    pub orphans: Option<Vec<String>>,
    pub snapshots: usize,
}

#[derive(Debug, Default)]
pub struct PartitionCheck {
    pub rows: usize,
    pub rejects: usize,
    pub first: Option<i64>,
    pub missing: Vec<i64>,
    pub duplicated: Vec<i64>,
    /// Offsets at or past the recorded next offset: a commit that recorded too little.
    pub beyond: Vec<i64>,
}

impl IcebergVerify {
    pub fn exactly_once(&self) -> bool {
        self.partitions.values().all(|p| p.missing.is_empty() && p.duplicated.is_empty() && p.beyond.is_empty())
    }

    pub fn render(&self, table: &str, topic: &str) -> String {
        let mut out = format!("iceberg table {table}, topic {topic}: {} snapshot(s)\n", self.snapshots);
        for (p, c) in &self.partitions {
            out.push_str(&format!(
                "kafka partition {p}: offsets {}..{} recorded, {} row(s) + {} reject(s); missing {}, duplicated {}, beyond the recorded offset {}\n",
                c.first.map_or("-".into(), |o| o.to_string()),
                self.recorded.get(p).copied().unwrap_or(0),
                c.rows,
                c.rejects,
                c.missing.len(),
                c.duplicated.len(),
                c.beyond.len()
            ));
            for (what, list) in [("missing", &c.missing), ("duplicated", &c.duplicated), ("beyond", &c.beyond)] {
                if !list.is_empty() {
                    out.push_str(&format!(
                        "  {what}: {:?}{}\n",
                        &list[..list.len().min(10)],
                        if list.len() > 10 { " ..." } else { "" }
                    ));
                }
            }
        }
        if self.foreign_rows > 0 {
            out.push_str(&format!(
                "rows of Kafka partitions the topic never recorded: {} (another writer's, or another topic's)\n",
                self.foreign_rows
            ));
        }
        match &self.orphans {
            Some(o) if !o.is_empty() => out.push_str(&format!(
                "orphan data files (written, never committed: no reader sees them; Athena VACUUM removes them): {}\n{}",
                o.len(),
                o.iter().take(10).map(|k| format!("  {k}\n")).collect::<String>()
            )),
            Some(_) => out.push_str("orphan data files: none\n"),
            None => out.push_str("orphan data files: not listed (the table's folder is not under --to)\n"),
        }
        out.push_str(&format!("exactly once: {}\n", if self.exactly_once() { "yes" } else { "NO" }));
        out
    }
}

/// Pure: the rows' offsets and the rejects against the recorded offsets.
pub fn check(
    recorded: &Offsets,
    rows: &[(i32, i64)],
    rejects: &[(i32, i64)],
) -> (BTreeMap<i32, PartitionCheck>, usize) {
    let mut seen: BTreeMap<i32, BTreeMap<i64, usize>> = BTreeMap::new();
    let mut out: BTreeMap<i32, PartitionCheck> = recorded.keys().map(|p| (*p, PartitionCheck::default())).collect();
    let mut foreign = 0;
    for &(p, o) in rows.iter().chain(rejects) {
        if !recorded.contains_key(&p) {
            foreign += 1;
            continue;
        }
        *seen.entry(p).or_default().entry(o).or_default() += 1;
    }
    for &(p, _) in rows.iter().filter(|(p, _)| recorded.contains_key(p)) {
        out.get_mut(&p).expect("recorded").rows += 1;
    }
    for &(p, _) in rejects.iter().filter(|(p, _)| recorded.contains_key(p)) {
        out.get_mut(&p).expect("recorded").rejects += 1;
    }
    for (p, next) in recorded {
        let c = out.get_mut(p).expect("recorded");
        let counts = seen.remove(p).unwrap_or_default();
        c.first = counts.keys().next().copied();
        let start = c.first.unwrap_or(*next).min(*next);
        for o in start..*next {
            match counts.get(&o) {
                None => c.missing.push(o),
                Some(n) if *n > 1 => c.duplicated.push(o),
                _ => {}
            }
        }
        c.beyond = counts.range(*next..).map(|(o, _)| *o).collect();
    }
    (out, foreign)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_finds_gaps_duplicates_and_offsets_past_the_record() {
        let recorded = Offsets::from([(0, 10), (1, 3)]);
        let mut rows: Vec<(i32, i64)> = (2..10).filter(|o| *o != 5).map(|o| (0, o)).collect();
        rows.push((0, 7)); // twice
        rows.push((1, 0));
        rows.push((1, 1));
        rows.push((1, 4)); // past the record
        rows.push((9, 0)); // a partition the topic never recorded
        let (c, foreign) = check(&recorded, &rows, &[(1, 2)]);
        assert_eq!(foreign, 1);
        assert_eq!((c[&0].first, c[&0].missing.clone(), c[&0].duplicated.clone()), (Some(2), vec![5], vec![7]));
        assert_eq!((c[&1].rows, c[&1].rejects, c[&1].missing.len()), (3, 1, 0));
        assert_eq!(c[&1].beyond, vec![4]);
        let v = IcebergVerify { recorded, partitions: c, ..Default::default() };
        assert!(!v.exactly_once());
        assert!(v.render("t", "x").contains("exactly once: NO"));
        let (ok, _) = check(&Offsets::from([(0, 3)]), &[(0, 0), (0, 1), (0, 2)], &[]);
        assert!(IcebergVerify { partitions: ok, ..Default::default() }.exactly_once());
    }
}
