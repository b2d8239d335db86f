//! `lake verify`'s decision, as a pure function of what was read: the listing, the checkpoints, each data file's
//! `(kafka_partition, kafka_offset)` pairs and the rejects'. Every offset from where the lake started to its
//! checkpoint must be there exactly once (as a row or a reject), nothing beyond it, and no object that is not ours.
//! Unit-tested here for every stray-object case, without a store.

use std::collections::BTreeMap;

use super::state::{Checkpoint, STATE_PREFIX, parse_data_key};

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
    /// Compactions started and not finished (their intents): until `lake compact` finishes them, some rows may be
    /// in two files.
    pub compactions: Vec<String>,
    /// Bytes read to decide, and the lake's size (set by the caller that read them).
    pub bytes_read: u64,
    pub lake_bytes: u64,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.stray.is_empty()
            && self.compactions.is_empty()
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
                // Half-open, as the Iceberg verify prints it: `0..1847` is offsets 0 to 1846, the checkpoint 1847.
                "kafka partition {p}: offsets {}..{} covered by {} row(s) + {} reject(s): {status}\n",
                r.start, r.next, r.rows, r.rejects
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
        for c in &self.compactions {
            out.push_str(&format!("a compaction is pending ({c}): run `ticklake lake compact` to finish it\n"));
        }
        for s in self.stray.iter().take(20) {
            out.push_str(&format!("stray object: {s}\n"));
        }
        if self.lake_bytes > 0 {
            out.push_str(&format!(
                "read {} of {} (footers and the two offset columns, by ranged GETs)\n",
                crate::units::human_bytes(self.bytes_read),
                crate::units::human_bytes(self.lake_bytes)
            ));
        }
        out.push_str(if self.ok() { "exactly once: yes\n" } else { "exactly once: NO\n" });
        out
    }
}

/// A name of the sink's pattern, `<topic>-<partition>-<20-digit offset>.parquet`, for some topic.
fn is_another_topics_file(key: &str) -> bool {
    let name = key.rsplit('/').next().unwrap_or("");
    let Some(rest) = name.strip_suffix(".parquet") else { return false };
    let mut parts = rest.rsplitn(3, '-');
    let (offset, partition, stem) = (parts.next(), parts.next(), parts.next());
    matches!((offset, partition, stem), (Some(o), Some(p), Some(s))
        if o.len() == 20 && o.bytes().all(|b| b.is_ascii_digit()) && p.parse::<i32>().is_ok() && !s.is_empty())
}

/// A data file's key and its `(kafka_partition, kafka_offset)` pairs.
pub type FileOffsets = (String, Vec<(i32, i64)>);

/// Decides whether the lake of `topic` holds every offset exactly once. `files` are the data files' keys with their
/// offset columns; `rejects` the rejects' (partition, offset).
pub fn check(
    topic: &str,
    listed: &[String],
    checkpoints: &BTreeMap<i32, Checkpoint>,
    files: &[FileOffsets],
    rejects: &[(i32, i64)],
) -> VerifyReport {
    let mut seen: BTreeMap<i32, BTreeMap<i64, u32>> = BTreeMap::new();
    let mut report = VerifyReport::default();
    let mut rows: BTreeMap<i32, u64> = BTreeMap::new();
    let mut rejects_by: BTreeMap<i32, u64> = BTreeMap::new();
    for key in listed {
        if key.starts_with(&format!("{STATE_PREFIX}/")) || parse_data_key(key, topic).is_some() {
            continue;
        }
        if is_another_topics_file(key) {
            continue; // another topic's file in a shared prefix (the table spec allows several)
        }
        report.stray.push(key.clone());
    }
    for (key, offsets) in files {
        let Some((p, first)) = parse_data_key(key, topic) else { continue };
        report.files += 1;
        if offsets.iter().any(|&(fp, _)| fp != p) || offsets.iter().map(|&(_, off)| off).min() != Some(first) {
            report.stray.push(format!("{key} (its rows do not match its name)"));
        }
        for &(fp, off) in offsets {
            *seen.entry(fp).or_default().entry(off).or_default() += 1;
            *rows.entry(fp).or_default() += 1;
        }
    }
    for &(p, off) in rejects {
        *seen.entry(p).or_default().entry(off).or_default() += 1;
        *rejects_by.entry(p).or_default() += 1;
    }
    let all: std::collections::BTreeSet<i32> = checkpoints.keys().chain(seen.keys()).copied().collect();
    for p in all {
        let offsets = seen.remove(&p).unwrap_or_default();
        let (start, next, pending, skipped) = match checkpoints.get(&p) {
            Some(cp) => (cp.start_offset, cp.next_offset, cp.pending.is_some(), cp.skipped.clone()),
            None => (0, 0, false, vec![]),
        };
        let mut r = PartitionReport {
            start,
            next,
            pending,
            rows: rows.get(&p).copied().unwrap_or(0),
            rejects: rejects_by.get(&p).copied().unwrap_or(0),
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
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::state::{PendingCut, data_key};

    fn cp(p: i32, start: i64, next: i64) -> Checkpoint {
        let mut c = Checkpoint::new("t", p, start);
        c.next_offset = next;
        c
    }

    fn lake(files: &[(i32, Vec<i64>)]) -> (Vec<String>, Vec<FileOffsets>) {
        let f: Vec<FileOffsets> = files
            .iter()
            .map(|(p, offs)| (data_key("year=2020", "t", *p, offs[0]), offs.iter().map(|&o| (*p, o)).collect()))
            .collect();
        let mut keys: Vec<String> = f.iter().map(|(k, _)| k.clone()).collect();
        keys.push("_ticklake/checkpoints/t/0.json".into());
        (keys, f)
    }

    #[test]
    fn exactly_once_is_every_offset_once_and_nothing_else() {
        let (keys, files) = lake(&[(0, vec![0, 1, 2]), (0, vec![4, 5])]);
        let cps = BTreeMap::from([(0, cp(0, 0, 6))]);
        let r = check("t", &keys, &cps, &files, &[(0, 3)]);
        assert!(r.ok(), "{}", r.render("t"));
        assert_eq!((r.partitions[&0].rows, r.partitions[&0].rejects, r.files), (5, 1, 2));
    }

    #[test]
    fn gaps_duplicates_beyond_pending_and_strays_all_fail() {
        let cps = BTreeMap::from([(0, cp(0, 0, 6))]);
        let (keys, files) = lake(&[(0, vec![0, 1, 2])]);
        let r = check("t", &keys, &cps, &files, &[]);
        assert_eq!(r.partitions[&0].missing, [(3, 5)], "a gap");
        let (keys, files) = lake(&[(0, vec![0, 1, 2]), (0, vec![2, 3, 4, 5])]);
        let r = check("t", &keys, &cps, &files, &[]);
        assert_eq!(r.partitions[&0].duplicates, [2], "a duplicate");
        let (keys, files) = lake(&[(0, vec![0, 1, 2, 3, 4, 5, 6])]);
        assert_eq!(check("t", &keys, &cps, &files, &[]).partitions[&0].beyond, 1, "beyond the checkpoint");
        let mut pending = cp(0, 0, 6);
        pending.pending = Some(PendingCut { first: 6, last: 9 });
        let (keys, files) = lake(&[(0, vec![0, 1, 2, 3, 4, 5])]);
        let r = check("t", &keys, &BTreeMap::from([(0, pending)]), &files, &[]);
        assert!(!r.ok() && r.partitions[&0].pending, "a pending cut");
        // Strays: an unknown object, a file whose rows do not match its name; another topic's file is not ours.
        let (mut keys, mut files) = lake(&[(0, vec![0, 1, 2, 3, 4, 5])]);
        keys.push("year=2020/notes.txt".into());
        keys.push("year=2020/prices-0-00000000000000000000.parquet".into());
        files[0].1[0] = (1, 0);
        let r = check("t", &keys, &cps, &files, &[]);
        assert_eq!(r.stray.len(), 2, "{:?}", r.stray);
        assert!(r.stray.iter().any(|s| s.contains("do not match its name")));
        // Offsets skipped on purpose (retention, --skip-deleted) are not a gap.
        let mut skipped = cp(0, 0, 6);
        skipped.skipped.push(PendingCut { first: 3, last: 5 });
        let (keys, files) = lake(&[(0, vec![0, 1, 2])]);
        assert!(check("t", &keys, &BTreeMap::from([(0, skipped)]), &files, &[]).ok());
    }
}
