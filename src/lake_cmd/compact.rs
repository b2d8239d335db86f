//! `ticklake lake compact`: merge the small files a live feed leaves (one per Kafka partition and hive partition
//! every `--max-age`) into files near `--target-size`, exactly once, resumably (the protocol is in
//! `lake::compact`). It may run while a sink writes the same lake: it only takes files wholly below their
//! partition's checkpoint and never one a pending cut planned.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, new_null_array};
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take_record_batch};

use super::{LakeCmdError, checkpoints};
use crate::lake::compact::{Candidate, Intent, intent_key, intents_prefix, plan};
use crate::lake::layout::{FileLayout, KAFKA_COLUMNS};
use crate::lake::parquet::{ParquetError, read_columns, read_footer, writer_properties};
use crate::lake::state::parse_data_key;
use crate::lake::store::Put;
use crate::lake::table::TableSpec;
use crate::lake::{LakeUrl, PartitionSpec, S3Options, Store, StoreError};

/// Default `--target-size`: what Athena scans best (large files, few opens).
pub const DEFAULT_TARGET_SIZE: u64 = 128 << 20;

/// What a compaction did.
#[derive(Debug, Default)]
pub struct CompactReport {
    pub resumed: usize,
    pub merged: usize,
    pub inputs: usize,
    pub bytes_read: u64,
}

impl CompactReport {
    pub fn summary(&self, topic: &str) -> String {
        format!(
            "lake compact: topic {topic}: {} merge(s) of {} file(s) into {} ({} resumed), read {}",
            self.merged,
            self.inputs,
            self.merged,
            self.resumed,
            crate::units::human_bytes(self.bytes_read)
        )
    }
}

pub async fn run(
    url: &LakeUrl,
    s3: &S3Options,
    topic: &str,
    older_than: Option<std::time::Duration>,
    target_size: u64,
) -> Result<CompactReport, LakeCmdError> {
    let store = Store::open(url, s3).await?;
    let table: TableSpec = match super::check_topic(&store, url, topic, &store.list("").await?).await? {
        Some(t) => t,
        None => {
            return Err(LakeCmdError::Corrupt(format!(
                "no table spec in {} ({}): nothing to compact (run the sink first)",
                url.display(),
                crate::lake::table::table_key()
            )));
        }
    };
    let mut report = CompactReport::default();
    // First finish what an interrupted run started.
    for o in store.list(&intents_prefix(topic)).await? {
        let Some(bytes) = store.get(&o.key).await? else { continue };
        let intent: Intent =
            serde_json::from_slice(&bytes).map_err(|e| LakeCmdError::Corrupt(format!("{}: {e}", o.key)))?;
        tracing::info!(output = %intent.output, inputs = intent.inputs.len(), "finishing an interrupted compaction");
        finish(&store, &table, &intent, &mut report).await?;
        report.resumed += 1;
    }
    let objects = store.list("").await?;
    let cps = checkpoints(&store, topic, &objects).await?;
    let mut candidates = Vec::new();
    for o in &objects {
        let Some((partition, _)) = parse_data_key(&o.key, topic) else { continue };
        if o.key.starts_with("_ticklake/") {
            continue;
        }
        let (meta, pieces) = read_footer(&store, &o.key, o.size).await?;
        report.bytes_read += pieces.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
        let (first, last, newest_ms) = offset_and_time_range(&meta)
            .ok_or_else(|| LakeCmdError::Corrupt(format!("{}: no offset statistics in its footer", o.key)))?;
        candidates.push(Candidate { key: o.key.clone(), size: o.size, partition, first, last, newest_ms });
    }
    let older_than_ms = older_than.map(|d| chrono::Utc::now().timestamp_millis() - d.as_millis() as i64);
    for intent in plan(topic, &candidates, &cps, older_than_ms, target_size) {
        let key = intent_key(topic, intent.partition, &intent.output);
        let bytes = serde_json::to_vec_pretty(&intent).expect("intent serializes");
        match store.put_if(&key, bytes, Put::Create).await {
            Ok(_) => {
                tracing::debug!(output = %intent.output, inputs = intent.inputs.len(), "compaction step: intent recorded")
            }
            // Another compactor is on it: leave it to them (or to the next run).
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
        finish(&store, &table, &intent, &mut report).await?;
    }
    Ok(report)
}

/// Smallest and largest `kafka_offset`, newest `kafka_timestamp`, from a footer's statistics.
fn offset_and_time_range(meta: &parquet::file::metadata::ParquetMetaData) -> Option<(i64, i64, i64)> {
    use parquet::file::statistics::Statistics;
    let schema = meta.file_metadata().schema_descr();
    let col = |name: &str| (0..schema.num_columns()).find(|&i| schema.column(i).name() == name);
    let (o, t) = (col(KAFKA_COLUMNS[1])?, col(KAFKA_COLUMNS[2])?);
    let (mut first, mut last, mut newest) = (i64::MAX, i64::MIN, i64::MIN);
    for rg in meta.row_groups() {
        let Some(Statistics::Int64(s)) = rg.column(o).statistics() else { return None };
        first = first.min(*s.min_opt()?);
        last = last.max(*s.max_opt()?);
        let Some(Statistics::Int64(s)) = rg.column(t).statistics() else { return None };
        newest = newest.max(*s.max_opt()?);
    }
    (first <= last).then_some((first, last, newest))
}

/// Steps 2-4 of the protocol for one intent (idempotent: see `lake::compact`).
async fn finish(
    store: &Store,
    table: &TableSpec,
    intent: &Intent,
    report: &mut CompactReport,
) -> Result<(), LakeCmdError> {
    let spec = PartitionSpec::parse(&table.partition_by, &table.schema)
        .map_err(|e| LakeCmdError::Corrupt(format!("the table spec's partition spec: {e}")))?;
    let layout = Arc::new(FileLayout::new(&table.schema, &spec));
    let mut batches = Vec::new();
    for key in &intent.inputs {
        let Some(bytes) = store.get(key).await? else { continue }; // deleted by an earlier attempt: in the output
        report.bytes_read += bytes.len() as u64;
        for b in read_columns(key, bytes, None)? {
            batches.push(project(&b, &layout).map_err(|e| ParquetError::Read { key: key.clone(), reason: e })?);
        }
    }
    let sort_by: Vec<usize> = table.sort_by.iter().filter_map(|n| layout.arrow.index_of(n).ok()).collect();
    let merged = merge(&layout, &batches, &sort_by).map_err(ParquetError::Encode)?;
    let props = writer_properties(&layout, table.row_group_rows.max(1));
    let bytes = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ParquetError> {
        let enc = |e: &dyn std::fmt::Display| ParquetError::Encode(e.to_string());
        let mut out = Vec::new();
        let mut w =
            parquet::arrow::ArrowWriter::try_new(&mut out, merged.schema(), Some(props)).map_err(|e| enc(&e))?;
        w.write(&merged).map_err(|e| enc(&e))?;
        w.close().map_err(|e| enc(&e))?;
        Ok(out)
    })
    .await
    .map_err(|e| LakeCmdError::Corrupt(format!("encoder: {e}")))??;
    crate::lake::retry("store", &intent.output, std::time::Duration::from_secs(60), || {
        store.put(&intent.output, bytes.clone())
    })
    .await?;
    tracing::debug!(output = %intent.output, "compaction step: output stored");
    for key in intent.inputs.iter().filter(|k| **k != intent.output) {
        crate::lake::retry("delete", key, std::time::Duration::from_secs(60), || store.delete(key)).await?;
        tracing::debug!(input = %key, "compaction step: input deleted");
    }
    store.delete(&intent_key(&intent.topic, intent.partition, &intent.output)).await?;
    tracing::debug!(output = %intent.output, "compaction step: intent removed");
    report.merged += 1;
    report.inputs += intent.inputs.len();
    Ok(())
}

/// A batch in the newest layout: columns by name, NULL where an older file lacks one (schema evolution).
fn project(b: &RecordBatch, layout: &FileLayout) -> Result<RecordBatch, String> {
    let cols: Vec<ArrayRef> = layout
        .arrow
        .fields()
        .iter()
        .map(|f| b.column_by_name(f.name()).cloned().unwrap_or_else(|| new_null_array(f.data_type(), b.num_rows())))
        .collect();
    RecordBatch::try_new(layout.arrow.clone(), cols).map_err(|e| e.to_string())
}

/// All rows once per offset, in the lake's order: the sort columns, then the offset (one Kafka partition).
fn merge(layout: &FileLayout, batches: &[RecordBatch], sort_by: &[usize]) -> Result<RecordBatch, String> {
    let all = concat_batches(&layout.arrow, batches).map_err(|e| e.to_string())?;
    let offset_col = layout.arrow.index_of(KAFKA_COLUMNS[1]).map_err(|e| e.to_string())?;
    // Nulls last, as the sink sorts.
    let options = Some(arrow::compute::SortOptions { descending: false, nulls_first: false });
    let mut keys: Vec<SortColumn> =
        sort_by.iter().map(|&i| SortColumn { values: all.column(i).clone(), options }).collect();
    keys.push(SortColumn { values: all.column(offset_col).clone(), options: None });
    let order = lexsort_to_indices(&keys, None).map_err(|e| e.to_string())?;
    let offsets = all.column(offset_col).as_any().downcast_ref::<Int64Array>().ok_or("kafka_offset is not int64")?;
    let mut seen = HashSet::new();
    let keep: Vec<u32> = order.values().iter().copied().filter(|&i| seen.insert(offsets.value(i as usize))).collect();
    take_record_batch(&all, &arrow::array::UInt32Array::from(keep)).map_err(|e| e.to_string())
}
