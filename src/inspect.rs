//! `ticklake lake stats` and `ticklake lake verify`: what is in the lake, and proof that it is exactly once.
//!
//! `verify` reads the data files themselves (their `kafka_partition` and `kafka_offset` columns), the rejects and
//! the checkpoints, and checks that every offset from where the lake started to its checkpoint is there exactly
//! once, as a row or a reject, and that no object lies outside what the checkpoints cover.

use std::collections::BTreeMap;

use crate::lake::parquet::read_offsets;
use crate::lake::state::{Checkpoint, STATE_PREFIX, checkpoint_prefix, parse_data_key, rejects_prefix};
use crate::lake::{LakeUrl, ObjectInfo, S3Options, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Parquet(#[from] crate::lake::parquet::ParquetError),
    #[error("{0}")]
    Corrupt(String),
}

/// What `verify` found for one Kafka partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PartitionReport {
    pub start: i64,
    pub next: i64,
    pub rows: u64,
    pub rejects: u64,
    pub duplicates: Vec<i64>,
    pub missing: Vec<(i64, i64)>,
    /// Offsets present at or beyond the checkpoint (or before the start).
    pub beyond: u64,
    pub pending: bool,
}

#[derive(Debug, Default)]
pub struct VerifyReport {
    pub partitions: BTreeMap<i32, PartitionReport>,
    pub files: usize,
    pub stray: Vec<String>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.stray.is_empty()
            && self
                .partitions
                .values()
                .all(|p| p.duplicates.is_empty() && p.missing.is_empty() && p.beyond == 0 && !p.pending)
    }

    pub fn render(&self, topic: &str) -> String {
        let mut out = format!("lake verify: topic {topic}, {} data file(s)\n", self.files);
        for (p, r) in &self.partitions {
            let status = if r.duplicates.is_empty() && r.missing.is_empty() && r.beyond == 0 && !r.pending {
                "ok"
            } else {
                "FAIL"
            };
            out.push_str(&format!(
                "kafka partition {p}: offsets {}..{} covered by {} row(s) + {} reject(s): {status}\n",
                r.start,
                r.next - 1,
                r.rows,
                r.rejects
            ));
            if !r.duplicates.is_empty() {
                let shown: Vec<_> = r.duplicates.iter().take(10).collect();
                out.push_str(&format!("  {} duplicate offset(s), e.g. {shown:?}\n", r.duplicates.len()));
            }
            for (a, b) in r.missing.iter().take(10) {
                out.push_str(&format!("  missing offsets {a}..{b}\n"));
            }
            if r.beyond > 0 {
                out.push_str(&format!("  {} row(s) outside the checkpointed range\n", r.beyond));
            }
            if r.pending {
                out.push_str("  a cut is pending (the sink stopped mid-commit): run the sink again to complete it\n");
            }
        }
        for s in self.stray.iter().take(20) {
            out.push_str(&format!("stray object: {s}\n"));
        }
        out.push_str(if self.ok() { "exactly once: yes\n" } else { "exactly once: NO\n" });
        out
    }
}

/// The topic's checkpoints, read from the objects of one listing of the lake.
async fn checkpoints(
    store: &Store,
    topic: &str,
    objects: &[ObjectInfo],
) -> Result<BTreeMap<i32, Checkpoint>, InspectError> {
    let prefix = checkpoint_prefix(topic);
    let mut out = BTreeMap::new();
    for o in objects.iter().filter(|o| o.key.starts_with(&prefix)) {
        let bytes = store.get(&o.key).await?.unwrap_or_default();
        let cp: Checkpoint =
            serde_json::from_slice(&bytes).map_err(|e| InspectError::Corrupt(format!("{}: {e}", o.key)))?;
        out.insert(cp.partition, cp);
    }
    Ok(out)
}

/// Checks the lake of `topic` for gaps, duplicates and stray objects.
pub async fn verify(url: &LakeUrl, s3: &S3Options, topic: &str) -> Result<VerifyReport, InspectError> {
    let store = Store::open(url, s3).await?;
    // One listing serves data files, rejects and checkpoints.
    let objects = store.list("").await?;
    let cps = checkpoints(&store, topic, &objects).await?;
    let mut seen: BTreeMap<i32, BTreeMap<i64, u32>> = BTreeMap::new();
    let mut report = VerifyReport::default();
    let mut rows: BTreeMap<i32, u64> = BTreeMap::new();
    let mut rejects: BTreeMap<i32, u64> = BTreeMap::new();
    for o in objects.iter().cloned() {
        if o.key.starts_with(&format!("{STATE_PREFIX}/")) {
            continue;
        }
        let Some((p, first)) = parse_data_key(&o.key, topic) else {
            if o.key.ends_with(".parquet") && !o.key.rsplit('/').next().unwrap_or("").contains(topic) {
                continue; // another topic's file in a shared prefix
            }
            report.stray.push(o.key);
            continue;
        };
        let bytes = store.get(&o.key).await?.unwrap_or_default();
        let offsets = read_offsets(&o.key, bytes)?;
        report.files += 1;
        if offsets.iter().any(|&(fp, _)| fp != p) || offsets.iter().map(|&(_, off)| off).min() != Some(first) {
            report.stray.push(format!("{} (its rows do not match its name)", o.key));
        }
        for (fp, off) in offsets {
            *seen.entry(fp).or_default().entry(off).or_default() += 1;
            *rows.entry(fp).or_default() += 1;
        }
    }
    let rejects_under = rejects_prefix(topic);
    for o in objects.iter().filter(|o| o.key.starts_with(&rejects_under)) {
        let bytes = store.get(&o.key).await?.unwrap_or_default();
        for line in String::from_utf8_lossy(&bytes).lines() {
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| InspectError::Corrupt(format!("{}: {e}", o.key)))?;
            let (Some(p), Some(off)) = (v["partition"].as_i64(), v["offset"].as_i64()) else {
                return Err(InspectError::Corrupt(format!("{}: a reject without partition/offset", o.key)));
            };
            *seen.entry(p as i32).or_default().entry(off).or_default() += 1;
            *rejects.entry(p as i32).or_default() += 1;
        }
    }
    let all: std::collections::BTreeSet<i32> = cps.keys().chain(seen.keys()).copied().collect();
    for p in all {
        let offsets = seen.remove(&p).unwrap_or_default();
        let (start, next, pending, skipped) = match cps.get(&p) {
            Some(cp) => (cp.start_offset, cp.next_offset, cp.pending.is_some(), cp.skipped.clone()),
            None => (0, 0, false, vec![]),
        };
        let mut r = PartitionReport {
            start,
            next,
            pending,
            rows: rows.get(&p).copied().unwrap_or(0),
            rejects: rejects.get(&p).copied().unwrap_or(0),
            ..Default::default()
        };
        r.duplicates = offsets.iter().filter(|(_, n)| **n > 1).map(|(o, _)| *o).collect();
        r.beyond = offsets.keys().filter(|o| **o < start || **o >= next).count() as u64;
        let skipped_has = |o: i64| skipped.iter().any(|s| s.first <= o && o <= s.last);
        let mut gap_start: Option<i64> = None;
        for o in start..next {
            let present = offsets.contains_key(&o) || skipped_has(o);
            match (present, gap_start) {
                (false, None) => gap_start = Some(o),
                (true, Some(g)) => {
                    r.missing.push((g, o - 1));
                    gap_start = None;
                }
                _ => {}
            }
        }
        if let Some(g) = gap_start {
            r.missing.push((g, next - 1));
        }
        report.partitions.insert(p, r);
    }
    Ok(report)
}

/// `lake stats`: hive partitions, files, rows (from footers), bytes, and per Kafka partition the checkpoint.
pub async fn stats(url: &LakeUrl, s3: &S3Options, topic: &str) -> Result<String, InspectError> {
    let store = Store::open(url, s3).await?;
    let objects = store.list("").await?;
    let mut hive = std::collections::BTreeSet::new();
    let (mut files, mut bytes, mut rows) = (0u64, 0u64, 0i64);
    for o in &objects {
        if o.key.starts_with(&format!("{STATE_PREFIX}/")) || parse_data_key(&o.key, topic).is_none() {
            continue;
        }
        files += 1;
        bytes += o.size;
        hive.insert(o.key.rsplit_once('/').map_or("", |(d, _)| d).to_string());
        let data = store.get(&o.key).await?.unwrap_or_default();
        let reader = parquet::file::reader::SerializedFileReader::new(bytes::Bytes::from(data))
            .map_err(|e| InspectError::Corrupt(format!("{}: {e}", o.key)))?;
        rows += parquet::file::reader::FileReader::metadata(&reader).file_metadata().num_rows();
    }
    let mut out = format!(
        "lake {} topic {topic}: {} hive partition(s), {files} file(s), {rows} row(s), {}\n",
        url.display(),
        hive.len(),
        crate::units::human_bytes(bytes)
    );
    match store.get(&crate::lake::table::table_key()).await? {
        Some(b) => match toml::from_str::<crate::lake::table::TableSpec>(&String::from_utf8_lossy(&b)) {
            Ok(t) => out.push_str(&t.describe()),
            Err(e) => {
                out.push_str(&format!("table: {} is not a valid table spec: {e}\n", crate::lake::table::table_key()))
            }
        },
        None => out.push_str("table: no stored table spec (nothing committed yet, or a lake from before the spec)\n"),
    }
    for (p, cp) in checkpoints(&store, topic, &objects).await? {
        out.push_str(&format!(
            "kafka partition {p}: checkpoint {} (started at {}){}\n",
            cp.next_offset,
            cp.start_offset,
            if cp.pending.is_some() { ", a cut is pending" } else { "" }
        ));
    }
    Ok(out.trim_end().to_string())
}
