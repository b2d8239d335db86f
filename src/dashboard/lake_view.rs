//! The lake as the page shows it: per Kafka partition the checkpoint and the lag behind the topic's end, freshness
//! (now minus the newest event time stored), the last commits, the hive partitions written to today, small files.
//!
//! Bounded reads, as `lake stats`: one listing, the checkpoints, and the footer of each data file *once* (files
//! are immutable: their rows and newest event time are kept by key). Never a data page.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use crate::lake::parquet::read_footer;
use crate::lake::state::parse_data_key;
use crate::lake::{LakeUrl, S3Options, Store};
use crate::lake_cmd::{LakeCmdError, SMALL_FILE_ROWS, check_topic, checkpoints};

/// Commits listed (newest first).
const COMMITS: usize = 10;

#[derive(Debug, Clone)]
struct FileFacts {
    rows: i64,
    /// Newest event time in the file (ms), from the column's statistics or the hive path.
    newest: Option<i64>,
}

type Cut = (Option<chrono::DateTime<chrono::Utc>>, i64, u64);

pub struct LakeView {
    url: LakeUrl,
    s3: S3Options,
    topic: String,
    store: Option<Store>,
    /// The table's event-time column, once the topic was found in the lake.
    event_time: Option<String>,
    footers: HashMap<String, FileFacts>,
}

/// The largest value of `column` in a file's footer statistics, as ms since the epoch (DATE or TIMESTAMP(MILLIS)).
fn newest_in_footer(meta: &parquet::file::metadata::ParquetMetaData, column: &str) -> Option<i64> {
    use parquet::file::statistics::Statistics;
    let mut newest: Option<i64> = None;
    for rg in meta.row_groups() {
        for c in rg.columns() {
            if c.column_path().string() != column {
                continue;
            }
            let v = match c.statistics()? {
                Statistics::Int32(s) => s.max_opt().map(|d| i64::from(*d) * 86_400_000),
                Statistics::Int64(s) => s.max_opt().copied(),
                _ => None,
            };
            newest = newest.max(v);
        }
    }
    newest
}

/// The event time a hive path names (`trade_date=2020-01-03`, `day=...`): the end of that day, in ms.
fn newest_in_path(key: &str, column: &str) -> Option<i64> {
    let value = key.split('/').find_map(|seg| seg.strip_prefix(&format!("{column}=")))?;
    let day = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").ok()?;
    Some(day.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

impl LakeView {
    pub fn new(url: LakeUrl, s3: S3Options, topic: String) -> LakeView {
        LakeView { url, s3, topic, store: None, event_time: None, footers: HashMap::new() }
    }

    /// The lake panel now; `ends` are the topic's end offsets per partition, for the lag.
    pub async fn refresh(&mut self, ends: &BTreeMap<i32, i64>) -> Result<Value, LakeCmdError> {
        if self.store.is_none() {
            self.store = Some(Store::open(&self.url, &self.s3).await?);
        }
        let store = self.store.as_ref().expect("opened above");
        let objects = store.list("").await?;
        // The topic is checked (and the table spec read) once: its event-time column does not change.
        if self.event_time.is_none() {
            let spec = check_topic(store, &self.url, &self.topic, &objects).await?;
            self.event_time = Some(spec.and_then(|s| s.schema.event_time).unwrap_or_default());
        }
        let event_time = self.event_time.clone().unwrap_or_default();
        let today = chrono::Utc::now().date_naive();
        let (mut files, mut rows, mut small, mut newest) = (0u64, 0i64, 0u64, None::<i64>);
        // Per cut (Kafka partition, first offset): newest write, rows, files.
        let mut commits: BTreeMap<(i32, i64), Cut> = BTreeMap::new();
        let mut filling: BTreeMap<String, (u64, i64)> = BTreeMap::new();
        for o in &objects {
            let Some((partition, first)) = parse_data_key(&o.key, &self.topic) else { continue };
            let facts = match self.footers.get(&o.key) {
                Some(f) => f.clone(),
                None => {
                    let (meta, _) = read_footer(store, &o.key, o.size).await?;
                    let f = FileFacts {
                        rows: meta.file_metadata().num_rows(),
                        newest: newest_in_footer(&meta, &event_time).or_else(|| newest_in_path(&o.key, &event_time)),
                    };
                    self.footers.insert(o.key.clone(), f.clone());
                    f
                }
            };
            files += 1;
            rows += facts.rows;
            small += u64::from(facts.rows < SMALL_FILE_ROWS);
            newest = newest.max(facts.newest);
            let c = commits.entry((partition, first)).or_default();
            c.0 = c.0.max(o.modified);
            c.1 += facts.rows;
            c.2 += 1;
            if o.modified.is_some_and(|m| m.date_naive() == today) {
                let dir = o.key.rsplit_once('/').map_or("", |(d, _)| d).to_string();
                let f = filling.entry(dir).or_default();
                f.0 += 1;
                f.1 += facts.rows;
            }
        }
        // Files of the listing are gone (compaction): forget them.
        let keys: std::collections::HashSet<&str> = objects.iter().map(|o| o.key.as_str()).collect();
        self.footers.retain(|k, _| keys.contains(k.as_str()));
        let mut commits: Vec<_> = commits.into_iter().collect();
        commits.sort_by_key(|((p, o), (at, _, _))| std::cmp::Reverse((*at, *o, *p)));
        let commits: Vec<Value> = commits
            .into_iter()
            .take(COMMITS)
            .map(|((p, o), (at, r, n))| {
                json!({ "what": format!("partition {p} from offset {o}"), "time": at.map(|t| t.timestamp_millis()), "rows": r, "files": n })
            })
            .collect();
        let mut partitions = Vec::new();
        for (p, cp) in checkpoints(store, &self.topic, &objects).await? {
            let end = ends.get(&p).copied();
            partitions.push(json!({
                "partition": p,
                "checkpoint": cp.next_offset,
                "end": end,
                "lag": end.map(|e| (e - cp.next_offset).max(0)),
                "pending": cp.pending.is_some(),
            }));
        }
        let now = chrono::Utc::now().timestamp_millis();
        Ok(json!({
            "lake": self.url.display(),
            "checked_at": now,
            "partitions": partitions,
            "newest_event": newest,
            "freshness_ms": newest.map(|n| now - n),
            "commits": commits,
            "filling_today": filling.into_iter().rev().take(10).map(|(d, (n, r))| json!({"path": d, "files": n, "rows": r})).collect::<Vec<_>>(),
            "files": files,
            "rows": rows,
            "small_files": small,
            "small_file_rows": SMALL_FILE_ROWS,
            "compaction_helps": small >= 10 && small * 2 >= files,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hive_path_names_its_day() {
        let key = "lake/symbol=HSI/trade_date=2020-01-03/indices-0-00000000000000000007.parquet";
        assert_eq!(newest_in_path(key, "trade_date"), Some(1_578_009_600_000));
        assert_eq!(newest_in_path(key, "ts"), None);
    }
}
