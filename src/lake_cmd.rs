//! `ticklake lake stats` and `ticklake lake verify`: what is in the lake, and proof that it is exactly once.
//!
//! `verify` reads the data files themselves (their `kafka_partition` and `kafka_offset` columns), the rejects and
//! the checkpoints, and checks that every offset from where the lake started to its checkpoint is there exactly
//! once, as a row or a reject, and that no object lies outside what the checkpoints cover.

use std::collections::BTreeMap;

use crate::lake::parquet::read_offsets;
use crate::lake::state::{Checkpoint, Reject, STATE_PREFIX, checkpoint_prefix, parse_data_key, rejects_prefix};
use crate::lake::verify::{VerifyReport, check};
use crate::lake::{LakeUrl, ObjectInfo, S3Options, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum LakeCmdError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Parquet(#[from] crate::lake::parquet::ParquetError),
    #[error("{0}")]
    Corrupt(String),
}

/// The topic's checkpoints, read from the objects of one listing of the lake.
async fn checkpoints(
    store: &Store,
    topic: &str,
    objects: &[ObjectInfo],
) -> Result<BTreeMap<i32, Checkpoint>, LakeCmdError> {
    let prefix = checkpoint_prefix(topic);
    let mut out = BTreeMap::new();
    for o in objects.iter().filter(|o| o.key.starts_with(&prefix)) {
        let bytes = store.get(&o.key).await?.unwrap_or_default();
        let cp: Checkpoint =
            serde_json::from_slice(&bytes).map_err(|e| LakeCmdError::Corrupt(format!("{}: {e}", o.key)))?;
        out.insert(cp.partition, cp);
    }
    Ok(out)
}

/// Checks the lake of `topic` for gaps, duplicates and stray objects: reads what `lake::verify::check` needs (the
/// listing, the checkpoints, each data file's offset columns, the rejects) and lets it decide.
pub async fn verify(url: &LakeUrl, s3: &S3Options, topic: &str) -> Result<VerifyReport, LakeCmdError> {
    let store = Store::open(url, s3).await?;
    // One listing serves data files, rejects and checkpoints.
    let objects = store.list("").await?;
    let cps = checkpoints(&store, topic, &objects).await?;
    let mut files = Vec::new();
    for o in &objects {
        if o.key.starts_with(&format!("{STATE_PREFIX}/")) || parse_data_key(&o.key, topic).is_none() {
            continue;
        }
        let bytes = store.get(&o.key).await?.unwrap_or_default();
        files.push((o.key.clone(), read_offsets(&o.key, bytes)?));
    }
    let rejects_under = rejects_prefix(topic);
    let mut rejects = Vec::new();
    for o in objects.iter().filter(|o| o.key.starts_with(&rejects_under)) {
        let bytes = store.get(&o.key).await?.unwrap_or_default();
        for line in String::from_utf8_lossy(&bytes).lines() {
            let r: Reject = serde_json::from_str(line).map_err(|e| LakeCmdError::Corrupt(format!("{}: {e}", o.key)))?;
            rejects.push((r.partition, r.offset));
        }
    }
    let keys: Vec<String> = objects.into_iter().map(|o| o.key).collect();
    Ok(check(topic, &keys, &cps, &files, &rejects))
}

/// `lake stats`: hive partitions, files, rows (from footers), bytes, and per Kafka partition the checkpoint.
pub async fn stats(url: &LakeUrl, s3: &S3Options, topic: &str) -> Result<String, LakeCmdError> {
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
            .map_err(|e| LakeCmdError::Corrupt(format!("{}: {e}", o.key)))?;
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
