//! `lake compact`'s decisions, as pure functions: which files may be merged, into which groups, and the record that
//! makes a merge resumable.
//!
//! A group is the files of one topic, one Kafka partition and one hive partition, oldest first, up to
//! `--target-size`; its output takes the name of its first input (`<topic>-<partition>-<first offset>.parquet`,
//! the sink's own scheme, so every reader and `lake verify` treat it as any other file). The protocol:
//!
//! ```text
//!  1 intent   PUT _ticklake/compactions/<topic>/<partition>/<output name>.json  {inputs, output}   (only if absent)
//!  2 output   PUT <output>: the inputs' rows, deduplicated by offset, in the lake's sort order  (replaces input 1)
//!  3 inputs   DELETE every other input
//!  4 done     DELETE the intent
//! ```
//!
//! A rerun finishes any intent first: it merges whatever inputs remain (the output among them) and drops rows
//! whose offset it has already taken, so the output is the same however many steps the crash left done.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::state::{Checkpoint, STATE_PREFIX};

/// What the footer says about a data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub key: String,
    pub size: u64,
    pub partition: i32,
    /// Smallest and largest `kafka_offset`.
    pub first: i64,
    pub last: i64,
    /// Newest `kafka_timestamp`, epoch ms.
    pub newest_ms: i64,
}

impl Candidate {
    /// The hive path (the folder).
    pub fn hive(&self) -> &str {
        self.key.rsplit_once('/').map_or("", |(d, _)| d)
    }
}

/// Files merged into one: `inputs[0]`'s name is the output's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    pub topic: String,
    pub partition: i32,
    pub inputs: Vec<String>,
    pub output: String,
}

pub fn intents_prefix(topic: &str) -> String {
    format!("{STATE_PREFIX}/compactions/{topic}/")
}

pub fn intent_key(topic: &str, partition: i32, output: &str) -> String {
    let name = output.rsplit('/').next().unwrap_or(output);
    format!("{}{partition}/{name}.json", intents_prefix(topic))
}

/// The merges worth doing: files wholly below their partition's checkpoint and not planned by a pending cut (the
/// sink owns those), newer than `older_than_ms` only if it is `None`, grouped by Kafka partition and hive folder,
/// oldest first, cut at `target_size` bytes; a group of one file is left alone.
pub fn plan(
    topic: &str,
    candidates: &[Candidate],
    checkpoints: &BTreeMap<i32, Checkpoint>,
    older_than_ms: Option<i64>,
    target_size: u64,
) -> Vec<Intent> {
    let mut groups: BTreeMap<(i32, &str), Vec<&Candidate>> = BTreeMap::new();
    for c in candidates {
        let Some(cp) = checkpoints.get(&c.partition) else { continue };
        let committed = c.last < cp.next_offset && !cp.pending_keys.contains(&c.key);
        let old_enough = older_than_ms.is_none_or(|t| c.newest_ms < t);
        if committed && old_enough {
            groups.entry((c.partition, c.hive())).or_default().push(c);
        }
    }
    let mut out = Vec::new();
    for ((partition, _), mut files) in groups {
        files.sort_by_key(|c| c.first);
        let mut chunk: Vec<&Candidate> = Vec::new();
        let mut size = 0;
        for f in files {
            if !chunk.is_empty() && size + f.size > target_size {
                push_group(&mut out, topic, partition, std::mem::take(&mut chunk));
                size = 0;
            }
            size += f.size;
            chunk.push(f);
        }
        push_group(&mut out, topic, partition, chunk);
    }
    out
}

fn push_group(out: &mut Vec<Intent>, topic: &str, partition: i32, chunk: Vec<&Candidate>) {
    if chunk.len() >= 2 {
        out.push(Intent {
            topic: topic.into(),
            partition,
            output: chunk[0].key.clone(),
            inputs: chunk.iter().map(|c| c.key.clone()).collect(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(key: &str, p: i32, first: i64, last: i64, size: u64) -> Candidate {
        Candidate { key: key.into(), size, partition: p, first, last, newest_ms: last * 1000 }
    }

    #[test]
    fn only_committed_files_of_one_partition_and_folder_are_merged_up_to_the_target() {
        let mut cp0 = Checkpoint::new("t", 0, 0);
        cp0.next_offset = 300;
        cp0.pending_keys = vec!["y=1/t-0-00000000000000000250.parquet".into()];
        let mut cp1 = Checkpoint::new("t", 1, 0);
        cp1.next_offset = 100;
        let cps = BTreeMap::from([(0, cp0), (1, cp1)]);
        let files = vec![
            c("y=1/t-0-00000000000000000100.parquet", 0, 100, 199, 10),
            c("y=1/t-0-00000000000000000000.parquet", 0, 0, 99, 10),
            c("y=1/t-0-00000000000000000200.parquet", 0, 200, 249, 10),
            c("y=1/t-0-00000000000000000250.parquet", 0, 250, 299, 10), // a pending cut's
            c("y=1/t-0-00000000000000000300.parquet", 0, 300, 310, 10), // beyond the checkpoint
            c("y=2/t-0-00000000000000000050.parquet", 0, 50, 60, 10),   // alone in its folder
            c("y=1/t-1-00000000000000000000.parquet", 1, 0, 49, 10),
            c("y=1/t-1-00000000000000000050.parquet", 1, 50, 99, 10),
            c("y=1/t-2-00000000000000000000.parquet", 2, 0, 9, 10), // no checkpoint: not ours to touch
        ];
        let planned = plan("t", &files, &cps, None, 25);
        // (partition, first offsets of the inputs)
        let got: Vec<(i32, Vec<i64>)> = planned
            .iter()
            .map(|i| {
                (i.partition, i.inputs.iter().map(|k| files.iter().find(|f| &f.key == k).unwrap().first).collect())
            })
            .collect();
        assert_eq!(got, vec![(0, vec![0, 100]), (1, vec![0, 50])], "{planned:#?}");
        assert_eq!(planned[0].output, "y=1/t-0-00000000000000000000.parquet", "named after its first input");
        assert_eq!(
            intent_key("t", 0, &planned[0].output),
            "_ticklake/compactions/t/0/t-0-00000000000000000000.parquet.json"
        );
        // --older-than: only files whose newest row is older.
        assert!(plan("t", &files, &cps, Some(50_000), 1000).iter().all(|i| i.partition == 1));
    }
}
