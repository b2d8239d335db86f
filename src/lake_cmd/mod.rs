//! `ticklake lake stats` and `ticklake lake verify`: what is in the lake, and proof that it is exactly once.
//!
//! `verify` reads the data files themselves (their `kafka_partition` and `kafka_offset` columns), the rejects and
//! the checkpoints, and checks that every offset from where the lake started to its checkpoint is there exactly
//! once, as a row or a reject, and that no object lies outside what the checkpoints cover.

pub mod compact;
pub mod iceberg;
#[cfg(feature = "iceberg")]
mod iceberg_io;
pub mod source;

use std::collections::BTreeMap;

use crate::lake::parquet::{read_footer, read_offsets_ranged};
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
    /// The prefix holds no lake, or not this topic's: an answer about nothing would pass a check on a typo.
    #[error("{0}")]
    NotInLake(String),
    /// A change to the lake that would break what it holds (`lake retype` on a column data files depend on).
    #[error("{0}")]
    Refused(String),
    /// A sink holds the lake (or table) this command must not run beside.
    #[error(
        "{0}. A sink of this table is running: stop it first (`lake remove-orphans` must not delete the files of a cut in flight)"
    )]
    Fenced(String),
}

impl From<crate::lake::fence::FenceError> for LakeCmdError {
    fn from(e: crate::lake::fence::FenceError) -> Self {
        match e {
            crate::lake::fence::FenceError::Store(e) => LakeCmdError::Store(e),
            crate::lake::fence::FenceError::Corrupt(e) => LakeCmdError::Corrupt(e),
            e => LakeCmdError::Fenced(e.to_string()),
        }
    }
}

/// The lake's stored table spec; a prefix without one is no lake to change.
async fn table_spec(store: &Store, url: &LakeUrl) -> Result<crate::lake::table::TableSpec, LakeCmdError> {
    let key = crate::lake::table::table_key();
    let Some(bytes) = store.get(&key).await? else {
        return Err(LakeCmdError::NotInLake(format!(
            "no table spec at {}/{key}: nothing committed yet, or not the sink's --to",
            url.display()
        )));
    };
    toml::from_str(&String::from_utf8_lossy(&bytes))
        .map_err(|e| LakeCmdError::Corrupt(format!("{key} is not a valid table spec: {e}")))
}

/// `lake schema`: the lake's schema as a schema file (for `--schema`, e.g. to write the topics again into a new
/// prefix with a type fixed).
pub async fn schema(url: &LakeUrl, s3: &S3Options) -> Result<String, LakeCmdError> {
    let store = Store::open(url, s3).await?;
    Ok(table_spec(&store, url).await?.schema.to_toml())
}

/// `lake retype`: the repair of a column typed wrongly (by inference from a bad first record, say) before any data
/// file holds it: checks that no sink holds a lease on the lake and that no data file's Parquet schema has the
/// column, then stores the spec with the new type as a new version. Once a file holds the column, the repair is a
/// rewrite into a new prefix (the refusal says how): files of two types under one Athena column would break it.
pub async fn retype(
    url: &LakeUrl,
    s3: &S3Options,
    column: &str,
    ty: crate::schema::ColumnType,
) -> Result<String, LakeCmdError> {
    let store = Store::open(url, s3).await?;
    let mut spec = table_spec(&store, url).await?;
    let objects = store.list("").await?;
    let leases = format!("{STATE_PREFIX}/leases/");
    for o in objects.iter().filter(|o| o.key.starts_with(&leases)) {
        let Some(bytes) = store.get(&o.key).await? else { continue };
        if let Ok(lease) = serde_json::from_slice::<crate::lake::lease::Lease>(&bytes)
            && !lease.released
        {
            return Err(LakeCmdError::Refused(format!(
                "a sink may be writing this lake ({} holds {}; not released): stop every sink of {} first, then retype",
                lease.describe(),
                o.key,
                url.display()
            )));
        }
    }
    let mut holding = Vec::new();
    for o in &objects {
        if o.key.starts_with(&format!("{STATE_PREFIX}/"))
            || !spec.topics.iter().any(|t| parse_data_key(&o.key, t).is_some())
        {
            continue;
        }
        let (meta, _) = read_footer(&store, &o.key, o.size).await?;
        if meta.file_metadata().schema_descr().columns().iter().any(|c| c.name() == column) {
            holding.push(o.key.clone());
        }
    }
    let stored = spec.schema.field(column).map(|f| f.ty);
    if let (Some(first), Some(stored)) = (holding.first(), stored) {
        return Err(LakeCmdError::Refused(format!(
            "{} data file(s) hold column '{column}' as {stored} (the first: {first}): a new type in place would leave files of two types under one Athena column. To repair, write the topic(s) {} again into a new prefix with the type fixed: `ticklake lake schema --to {} > fixed.toml`, set `type = \"{ty}\"` for '{column}', then `ticklake sink --topic TOPIC --to NEW_PREFIX --schema fixed.toml` (Kafka's retention must still hold the records) and point Athena at the new prefix",
            holding.len(),
            spec.topics.join(", "),
            url.display()
        )));
    }
    let version = spec.retype(column, ty).map_err(LakeCmdError::Refused)?;
    store.put(&crate::lake::table::table_key(), spec.to_toml().into_bytes()).await?;
    Ok(format!(
        "column '{column}' of {} is now {ty} (table spec v{version}); no data file held it. Records rejected for the old type stay in the rejects; replay them if they belong",
        url.display()
    ))
}

/// The lake's table spec (`None` for a lake from before the spec) and the topics it holds: the spec's list, else
/// the topics with checkpoints.
async fn lake_topics(
    store: &Store,
    objects: &[ObjectInfo],
) -> Result<(Option<crate::lake::table::TableSpec>, Vec<String>), LakeCmdError> {
    let spec_key = crate::lake::table::table_key();
    if objects.iter().any(|o| o.key == spec_key)
        && let Some(bytes) = store.get(&spec_key).await?
    {
        let spec: crate::lake::table::TableSpec = toml::from_str(&String::from_utf8_lossy(&bytes))
            .map_err(|e| LakeCmdError::Corrupt(format!("{spec_key} is not a valid table spec: {e}")))?;
        let topics = spec.topics.clone();
        return Ok((Some(spec), topics));
    }
    let under = format!("{STATE_PREFIX}/checkpoints/");
    let mut topics: Vec<String> = objects
        .iter()
        .filter_map(|o| o.key.strip_prefix(&under)?.split_once('/').map(|(t, _)| t.to_string()))
        .collect();
    topics.dedup();
    Ok((None, topics))
}

/// Refuses a lake command on a prefix that holds no lake, or on a topic the lake does not hold, naming what it
/// holds: `lake verify --topic indcies` must not print "exactly once: yes" about zero files. Returns the table spec
/// it read (`None` for a lake from before the spec), so the caller reads it once.
pub(crate) async fn check_topic(
    store: &Store,
    url: &LakeUrl,
    topic: &str,
    objects: &[ObjectInfo],
) -> Result<Option<crate::lake::table::TableSpec>, LakeCmdError> {
    let (spec, topics) = lake_topics(store, objects).await?;
    if topics.iter().any(|t| t == topic) {
        return Ok(spec);
    }
    let lake = url.display();
    Err(LakeCmdError::NotInLake(if topics.is_empty() && objects.is_empty() {
        format!(
            "no lake at {lake}: nothing is stored under this prefix. Check --to (it must be the sink's --to, e.g. s3://bucket/prefix), or run the sink first"
        )
    } else if topics.is_empty() {
        format!(
            "no ticklake lake at {lake}: {} object(s), but no table spec ({}) and no checkpoints. Check --to (it must be the sink's --to)",
            objects.len(),
            crate::lake::table::table_key()
        )
    } else {
        format!(
            "the lake at {lake} does not hold topic '{topic}'; it holds {}. Check --topic",
            topics.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ")
        )
    }))
}

/// The topic's checkpoints, read from the objects of one listing of the lake.
pub(crate) async fn checkpoints(
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
    check_topic(&store, url, topic, &objects).await?;
    let cps = checkpoints(&store, topic, &objects).await?;
    let mut files = Vec::new();
    // Only the footers and the two offset columns of each data file, by ranged GETs: a lake of 100 GB is verified
    // by reading a few percent of it.
    let mut read = 0u64;
    for o in &objects {
        if o.key.starts_with(&format!("{STATE_PREFIX}/")) || parse_data_key(&o.key, topic).is_none() {
            continue;
        }
        let (offsets, fetched) = read_offsets_ranged(&store, &o.key, o.size).await?;
        read += fetched;
        files.push((o.key.clone(), offsets));
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
    let lake_bytes = objects.iter().map(|o| o.size).sum();
    let keys: Vec<String> = objects.into_iter().map(|o| o.key).collect();
    let mut report = check(topic, &keys, &cps, &files, &rejects);
    report.bytes_read = read;
    report.lake_bytes = lake_bytes;
    let intents = crate::lake::compact::intents_prefix(topic);
    report.compactions = keys.iter().filter(|k| k.starts_with(&intents)).cloned().collect();
    Ok(report)
}

/// A file with fewer rows than this is "small" for `lake stats`: Athena queries files of 100k+ rows an order of
/// magnitude faster than files of hundreds.
pub const SMALL_FILE_ROWS: i64 = 10_000;

/// `lake stats`: hive partitions, files, rows (from footers), bytes, and per Kafka partition the checkpoint.
pub async fn stats(url: &LakeUrl, s3: &S3Options, topic: &str) -> Result<String, LakeCmdError> {
    let store = Store::open(url, s3).await?;
    let objects = store.list("").await?;
    let spec = check_topic(&store, url, topic, &objects).await?;
    // Per hive partition: files and rows (the newest ones are printed: a live feed fills today's).
    let mut hive: BTreeMap<String, (u64, i64)> = BTreeMap::new();
    let (mut files, mut bytes, mut rows, mut read, mut small) = (0u64, 0u64, 0i64, 0u64, 0u64);
    for o in &objects {
        if o.key.starts_with(&format!("{STATE_PREFIX}/")) || parse_data_key(&o.key, topic).is_none() {
            continue;
        }
        files += 1;
        bytes += o.size;
        let (meta, pieces) = read_footer(&store, &o.key, o.size).await?;
        read += pieces.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
        rows += meta.file_metadata().num_rows();
        let h = hive.entry(o.key.rsplit_once('/').map_or("", |(d, _)| d).to_string()).or_default();
        h.0 += 1;
        h.1 += meta.file_metadata().num_rows();
        if meta.file_metadata().num_rows() < SMALL_FILE_ROWS {
            small += 1;
        }
    }
    let mut out = format!(
        "lake {} topic {topic}: {} hive partition(s), {files} file(s), {rows} row(s), {}\n",
        url.display(),
        hive.len(),
        crate::units::human_bytes(bytes)
    );
    let shown = hive.len().min(5);
    for (path, (n, r)) in hive.iter().skip(hive.len() - shown) {
        let path = if path.is_empty() { "(no hive partitioning)" } else { path };
        out.push_str(&format!("  hive partition {path}: {n} file(s), {r} row(s)\n"));
    }
    if hive.len() > shown {
        out.push_str(&format!("  (and {} older hive partition(s))\n", hive.len() - shown));
    }
    out.push_str(&format!(
        "small files (under {SMALL_FILE_ROWS} rows): {small}{}\n",
        if small >= 10 && small * 2 >= files {
            "; Athena opens every file it scans, so many small ones cost more than their bytes: run `ticklake lake \
             compact` (deploy/ has a nightly timer)"
        } else {
            ""
        }
    ));
    out.push_str(&format!(
        "read {} of {} to answer (Parquet footers only, by ranged GETs)\n",
        crate::units::human_bytes(read),
        crate::units::human_bytes(bytes)
    ));
    match spec {
        Some(t) => out.push_str(&t.describe()),
        None => out.push_str("table: no stored table spec (a lake from before the spec)\n"),
    }
    for (p, cp) in checkpoints(&store, topic, &objects).await? {
        // Who writes it now (a lease not released): its host and pid, and with `--group` the consumer group.
        let lease = match store.get(&crate::lake::lease::lease_key(topic, p)).await? {
            Some(bytes) => serde_json::from_slice::<crate::lake::lease::Lease>(&bytes).ok().filter(|l| !l.released),
            None => None,
        };
        out.push_str(&format!(
            "kafka partition {p}: checkpoint {} (started at {}){}{}\n",
            cp.next_offset,
            cp.start_offset,
            if cp.pending.is_some() { ", a cut is pending" } else { "" },
            lease.map_or(String::new(), |l| format!(", held by {}", l.describe()))
        ));
    }
    Ok(out.trim_end().to_string())
}
