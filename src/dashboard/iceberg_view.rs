//! The lake panel for an Iceberg table (`--table --catalog`): per Kafka partition the offsets the newest ticklake
//! snapshot recorded and the lag behind the topic's end, the last snapshots (time, operation, rows and files
//! added), the table's totals and whether its files are small on average. From the table's metadata only: one
//! catalog load per refresh, no manifest and no data file read.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::lake::iceberg as ice;
use crate::lake::{LakeUrl, S3Options};
use crate::lake_cmd::iceberg::IcebergTable;
use crate::lake_cmd::{LakeCmdError, SMALL_FILE_ROWS};

/// Snapshots listed (newest first).
const SNAPSHOTS: usize = 10;

/// A number from a snapshot summary (`added-records`, `total-data-files`, ...).
fn count(summary: &std::collections::HashMap<String, String>, key: &str) -> Option<i64> {
    summary.get(key)?.parse().ok()
}

pub async fn refresh(
    url: &LakeUrl,
    s3: &S3Options,
    t: &IcebergTable,
    topic: &str,
    ends: &BTreeMap<i32, i64>,
) -> Result<Value, LakeCmdError> {
    let table = ice::open_table(&t.catalog, url, s3, &t.table).await.map_err(LakeCmdError::Corrupt)?;
    let meta = table.metadata();
    let recorded = ice::recorded(&table, topic).map_err(LakeCmdError::Corrupt)?;
    let partitions: Vec<Value> = recorded
        .offsets
        .iter()
        .map(|(p, next)| {
            let end = ends.get(p).copied();
            json!({ "partition": p, "checkpoint": next, "end": end, "lag": end.map(|e| (e - next).max(0)), "pending": false })
        })
        .collect();
    let mut snapshots: Vec<_> = meta.snapshots().collect();
    snapshots.sort_by_key(|s| std::cmp::Reverse(s.timestamp_ms()));
    let commits: Vec<Value> = snapshots
        .iter()
        .take(SNAPSHOTS)
        .map(|s| {
            let summary = &s.summary().additional_properties;
            json!({
                "time": s.timestamp_ms(),
                "what": format!("snapshot {} ({})", s.snapshot_id(), s.summary().operation.as_str()),
                "rows": count(summary, "added-records"),
                "files": count(summary, "added-data-files"),
            })
        })
        .collect();
    let current = meta.current_snapshot().map(|s| s.summary().additional_properties.clone()).unwrap_or_default();
    let (files, rows) =
        (count(&current, "total-data-files").unwrap_or(0), count(&current, "total-records").unwrap_or(0));
    let now = chrono::Utc::now().timestamp_millis();
    let last_commit = meta.current_snapshot().map(|s| s.timestamp_ms());
    Ok(json!({
        "lake": format!("iceberg table {} ({}) at {}", t.table, t.catalog.describe(), meta.location()),
        "checked_at": now,
        "partitions": partitions,
        "newest_event": null,
        "freshness_ms": null,
        "last_commit_ms": last_commit.map(|t| now - t),
        "commits": commits,
        "filling_today": [],
        "files": files,
        "rows": rows,
        "snapshots": snapshots.len(),
        "small_files": null,
        "small_file_rows": SMALL_FILE_ROWS,
        "compaction_helps": files >= 10 && rows / files.max(1) < SMALL_FILE_ROWS,
        "compaction_hint": "Athena: OPTIMIZE <table> REWRITE DATA USING BIN_PACK, then VACUUM",
    }))
}
