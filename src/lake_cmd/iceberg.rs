//! `lake stats` and `lake verify` on an Iceberg table (`--table` with `--catalog`): the answers come from the table
//! metadata (snapshots, manifests) and the `kafka_*` columns, read through the Iceberg crates; the rejects and the
//! orphan listing come from `--to`.

use std::collections::BTreeMap;

#[cfg(not(feature = "iceberg"))]
use super::LakeCmdError;
#[cfg(feature = "iceberg")]
pub use super::iceberg_io::{expire, remove_orphans, stats, verify};
use crate::lake::iceberg::{CatalogUrl, offsets::Offsets};
#[cfg(not(feature = "iceberg"))]
use crate::lake::{LakeUrl, S3Options};

/// Which Iceberg table a `lake` command reads.
#[derive(Debug, Clone)]
pub struct IcebergTable {
    pub table: String,
    pub catalog: CatalogUrl,
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

#[cfg(not(feature = "iceberg"))]
pub async fn verify(
    _url: &LakeUrl,
    _s3: &S3Options,
    t: &IcebergTable,
    _topic: &str,
) -> Result<IcebergVerify, LakeCmdError> {
    Err(LakeCmdError::Corrupt(format!("--table {}: {}", t.table, crate::lake::iceberg::NOT_BUILT)))
}

#[cfg(not(feature = "iceberg"))]
pub async fn remove_orphans(
    _url: &LakeUrl,
    _s3: &S3Options,
    t: &IcebergTable,
    _topic: &str,
    _lease_ttl: std::time::Duration,
    _older_than: std::time::Duration,
) -> Result<String, LakeCmdError> {
    Err(LakeCmdError::Corrupt(format!("--table {}: {}", t.table, crate::lake::iceberg::NOT_BUILT)))
}

#[cfg(not(feature = "iceberg"))]
pub async fn expire(
    _url: &LakeUrl,
    _s3: &S3Options,
    t: &IcebergTable,
    _older_than: std::time::Duration,
    _retain_last: usize,
    _keep_metadata: usize,
) -> Result<String, LakeCmdError> {
    Err(LakeCmdError::Corrupt(format!("--table {}: {}", t.table, crate::lake::iceberg::NOT_BUILT)))
}

#[cfg(not(feature = "iceberg"))]
pub async fn stats(_url: &LakeUrl, _s3: &S3Options, t: &IcebergTable, _topic: &str) -> Result<String, LakeCmdError> {
    Err(LakeCmdError::Corrupt(format!("--table {}: {}", t.table, crate::lake::iceberg::NOT_BUILT)))
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
