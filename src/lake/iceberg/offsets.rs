//! Kafka offsets in an Iceberg table's snapshot summaries, the way the Iceberg Kafka Connect sink keeps them: each
//! snapshot ticklake commits records, per topic, the next offset of every Kafka partition it knows (this commit's
//! merged with what earlier snapshots recorded), plus the writer that committed it. A sink resumes from the newest
//! snapshot in the current snapshot's ancestry that carries its topic's key; snapshots of other writers (Athena
//! `OPTIMIZE`, pyiceberg, another topic's sink) are walked past. Pure: summaries in, offsets out.

use std::collections::{BTreeMap, HashMap};

/// Snapshot-summary key holding a topic's offsets: `{"0": 1200, "1": 977}` (partition → next offset).
pub fn offsets_key(topic: &str) -> String {
    format!("ticklake.offsets.{topic}")
}

/// Snapshot-summary key naming the sink that committed the snapshot (host, pid, start time).
pub const WRITER_KEY: &str = "ticklake.writer";

/// Next offset per Kafka partition.
pub type Offsets = BTreeMap<i32, i64>;

/// What the newest ticklake snapshot of a topic recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    pub offsets: Offsets,
    /// The writer of that snapshot.
    pub writer: Option<String>,
    /// Its snapshot id.
    pub snapshot_id: Option<i64>,
}

/// The offsets recorded for `topic`, from snapshot summaries newest first (the current snapshot, its parent, ...).
/// A summary whose value does not parse is an error: it was edited by hand, and resuming past it could lose data.
pub fn recorded<'a>(
    topic: &str,
    ancestry: impl IntoIterator<Item = (i64, &'a HashMap<String, String>)>,
) -> Result<Recorded, String> {
    let key = offsets_key(topic);
    for (id, summary) in ancestry {
        if let Some(v) = summary.get(&key) {
            let parsed: BTreeMap<String, i64> = serde_json::from_str(v)
                .map_err(|e| format!("snapshot {id}: '{key}' is not a map of partition to offset ({e}): {v}"))?;
            let mut offsets = Offsets::new();
            for (p, o) in parsed {
                let p: i32 = p.parse().map_err(|_| format!("snapshot {id}: '{key}' has a partition '{p}'"))?;
                offsets.insert(p, o);
            }
            return Ok(Recorded { offsets, writer: summary.get(WRITER_KEY).cloned(), snapshot_id: Some(id) });
        }
    }
    Ok(Recorded::default())
}

/// The summary properties of a commit that moves `partition` to `next`, merged with `base` (what the table recorded
/// when the commit was prepared).
pub fn summary(topic: &str, base: &Offsets, partition: i32, next: i64, writer: &str) -> HashMap<String, String> {
    let mut merged = base.clone();
    merged.insert(partition, next);
    let map: BTreeMap<String, i64> = merged.iter().map(|(p, o)| (p.to_string(), *o)).collect();
    HashMap::from([
        (offsets_key(topic), serde_json::to_string(&map).expect("offsets serialize")),
        (WRITER_KEY.to_string(), writer.to_string()),
    ])
}

/// What a commit must find in the table it is applied to (checked on the very state the catalog then commits over).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The offsets are as prepared: commit.
    Go,
    /// This commit is already in the table (its answer was lost): done, do not commit again.
    AlreadyCommitted,
    /// Another partition's offsets moved (this sink's other workers, or another sink of other partitions): prepare
    /// the summary again from the new state.
    Rebase,
    /// Another writer moved this partition's offsets: this sink is a zombie and must stop.
    Fenced { found: Option<i64>, writer: Option<String> },
}

/// Compares the table's recorded offsets with those the commit was prepared from.
pub fn judge(now: &Recorded, base: &Offsets, partition: i32, next: i64, writer: &str) -> Verdict {
    let found = now.offsets.get(&partition).copied();
    let expected = base.get(&partition).copied();
    if found == expected {
        if now.offsets == *base { Verdict::Go } else { Verdict::Rebase }
    } else if found == Some(next) && now.writer.as_deref() == Some(writer) {
        Verdict::AlreadyCommitted
    } else {
        Verdict::Fenced { found, writer: now.writer.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(topic: &str, offsets: &[(i32, i64)], writer: &str) -> HashMap<String, String> {
        let base: Offsets = offsets.iter().copied().collect();
        let (p, o) = offsets[0];
        summary(topic, &base, p, o, writer)
    }

    #[test]
    fn newest_ticklake_snapshot_wins_and_others_are_walked_past() {
        let optimize = HashMap::from([("operation".to_string(), "replace".to_string())]);
        let other_topic = snap("ticks", &[(0, 99)], "w2");
        let newer = snap("indices", &[(0, 30), (1, 12)], "w1");
        let older = snap("indices", &[(0, 10)], "w1");
        let chain = [(4, &optimize), (3, &other_topic), (2, &newer), (1, &older)];
        let r = recorded("indices", chain).unwrap();
        assert_eq!(r.offsets, Offsets::from([(0, 30), (1, 12)]));
        assert_eq!((r.writer.as_deref(), r.snapshot_id), (Some("w1"), Some(2)));
        assert_eq!(recorded("nothing", chain).unwrap(), Recorded::default());
        let bad = HashMap::from([(offsets_key("indices"), "{\"x\": 1}".to_string())]);
        assert!(recorded("indices", [(9, &bad)]).unwrap_err().contains("snapshot 9"));
    }

    #[test]
    fn summary_merges_with_the_base() {
        let s = summary("t", &Offsets::from([(0, 5), (1, 7)]), 1, 20, "me");
        assert_eq!(s[&offsets_key("t")], r#"{"0":5,"1":20}"#);
        assert_eq!(s[WRITER_KEY], "me");
    }

    #[test]
    fn judge_tells_go_rebase_done_and_fenced() {
        let base = Offsets::from([(0, 5), (1, 7)]);
        let rec = |o: &[(i32, i64)], w: &str| Recorded {
            offsets: o.iter().copied().collect(),
            writer: Some(w.into()),
            snapshot_id: Some(1),
        };
        assert_eq!(judge(&rec(&[(0, 5), (1, 7)], "x"), &base, 0, 9, "me"), Verdict::Go);
        assert_eq!(judge(&rec(&[(0, 5), (1, 8)], "x"), &base, 0, 9, "me"), Verdict::Rebase);
        assert_eq!(judge(&rec(&[(0, 9), (1, 7)], "me"), &base, 0, 9, "me"), Verdict::AlreadyCommitted);
        assert_eq!(
            judge(&rec(&[(0, 9), (1, 7)], "zombie"), &base, 0, 9, "me"),
            Verdict::Fenced { found: Some(9), writer: Some("zombie".into()) }
        );
        // A first commit finds nothing recorded; someone else's first commit fences it.
        assert_eq!(judge(&Recorded::default(), &Offsets::new(), 0, 9, "me"), Verdict::Go);
        assert!(matches!(judge(&rec(&[(0, 3)], "x"), &Offsets::new(), 0, 9, "me"), Verdict::Fenced { .. }));
    }
}
