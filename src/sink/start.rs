//! What a sink starts from: the lake's table spec (or a new one, from `--schema` or the first records), checked
//! against the flags before any data moves.

use std::time::Duration;

use super::{SinkConfig, SinkError, commit};
use crate::kafka::Kafka;
use crate::lake::state::schema_key;
use crate::lake::table::{TableSpec, default_layout, table_key};
use crate::lake::{PartitionSpec, Store};
use crate::schema::Schema;
use crate::shutdown::Shutdown;

/// Schema column indices of the sort columns.
pub(super) fn sort_indices(schema: &Schema, names: &[String]) -> Result<Vec<usize>, SinkError> {
    names
        .iter()
        .map(|n| {
            schema
                .index_of(n)
                .ok_or_else(|| SinkError::Config(format!("--sort-by: no column '{n}' in schema '{}'", schema.name)))
        })
        .collect()
}

/// The lake's table spec, and whether it is stored as it is. A lake that has one keeps it: flags that conflict stop
/// the sink before any data moves, a `--schema` or a new topic may only add columns. A new lake takes `--schema`,
/// else the schema of the first records (`schema::resolve`), with `--partition-by`/`--sort-by` or their defaults;
/// its spec is stored at the first commit. `None`: the topic is empty and `--exit-at-end` was given.
pub(super) async fn resolve_table(
    store: &Store,
    kafka: &Kafka,
    cfg: &SinkConfig,
    partitions: &[i32],
    shutdown: &Shutdown,
) -> Result<Option<(TableSpec, bool)>, SinkError> {
    let lake = cfg.lake.display();
    let read = |key: String, bytes: Vec<u8>| -> Result<String, SinkError> {
        String::from_utf8(bytes).map_err(|_| SinkError::Corrupt(format!("{lake}/{key} is not UTF-8 text")))
    };
    if let Some(bytes) = commit::get_with_retry(store, &table_key(), cfg.retry_for).await? {
        let text = read(table_key(), bytes)?;
        let mut table: TableSpec = toml::from_str(&text).map_err(|e| {
            SinkError::Corrupt(format!(
                "{lake}/{} is not a valid table spec: {e}; it must not be edited by hand",
                table_key()
            ))
        })?;
        let given_spec = match &cfg.partition_by {
            Some(p) => Some(PartitionSpec::parse(p, &table.schema)?.describe(&table.schema)),
            None => None,
        };
        table
            .check_layout(given_spec.as_deref(), cfg.sort_by.as_deref())
            .map_err(|e| SinkError::Config(e.to_string()))?;
        let mut stored = table.row_group_rows == cfg.row_group_rows;
        table.row_group_rows = cfg.row_group_rows;
        let admit = |table: &mut TableSpec, candidate: &Schema, what: &str, reason: &str| {
            let added = table.admit(&cfg.topic, candidate, what).map_err(|e| SinkError::Config(e.to_string()))?;
            if !added.is_empty() {
                tracing::warn!(columns = ?added.iter().map(|f| &f.name).collect::<Vec<_>>(), "{what} adds columns to the lake's table");
                table.evolve(added, reason, &cfg.topic, None);
            }
            Ok::<_, SinkError>(())
        };
        if !table.topics.contains(&cfg.topic) {
            let mut inferred_from = None;
            let candidate = match &cfg.schema {
                Some(s) => s.clone(),
                None => match sample_records(kafka, cfg, partitions, shutdown).await? {
                    None => return Ok(None),
                    Some(sample) => {
                        let (schema, inferred) = schema_from_records(&sample, cfg)?;
                        inferred_from = Some((inferred, sample.len()));
                        schema
                    }
                },
            };
            let version = table.version();
            admit(&mut table, &candidate, &format!("the records of topic '{}'", cfg.topic), "new topic")?;
            if let Some((cols, n)) = inferred_from.filter(|_| table.version() > version) {
                table.mark_inferred(&cols, n);
            }
            table.topics.push(cfg.topic.clone());
            stored = false;
        } else if let Some(given) = &cfg.schema {
            let version = table.version();
            admit(&mut table, given, "--schema", "--schema")?;
            stored &= table.version() == version;
        }
        return Ok(Some((table, stored)));
    }
    // A lake from before the table spec: its schema per topic, reused as it was.
    let legacy = match commit::get_with_retry(store, &schema_key(&cfg.topic), cfg.retry_for).await? {
        Some(bytes) => Some(toml::from_str::<Schema>(&read(schema_key(&cfg.topic), bytes)?).map_err(|e| {
            SinkError::Corrupt(format!("{lake}/{} is not a valid schema: {e}", schema_key(&cfg.topic)))
        })?),
        None => None,
    };
    let mut inferred_from = None;
    let mut sampled_days = Vec::new();
    let schema = match (legacy, &cfg.schema) {
        (Some(stored), Some(given)) if &stored != given => {
            let t = TableSpec::new(&cfg.topic, stored, String::new(), vec![], 0);
            let added = t.admit(&cfg.topic, given, "--schema").map_err(|e| SinkError::Config(e.to_string()))?;
            let mut schema = t.schema;
            schema.fields.extend(added);
            schema
        }
        (Some(stored), _) => stored,
        (None, Some(given)) => given.clone(),
        (None, None) => match sample_records(kafka, cfg, partitions, shutdown).await? {
            None => return Ok(None),
            Some(sample) => {
                let (schema, inferred) = schema_from_records(&sample, cfg)?;
                inferred_from = Some((inferred, sample.len()));
                sampled_days = event_days(&schema, &sample);
                schema
            }
        },
    };
    schema.validate().map_err(|e| SinkError::Config(e.to_string()))?;
    let today = chrono::Utc::now().timestamp().div_euclid(86_400) as i32;
    let (default_spec, default_sort) = crate::lake::table::default_layout_for(&schema, &sampled_days, today);
    if cfg.partition_by.is_none() && default_spec != default_layout(&schema).0 {
        tracing::info!(
            partition_by = %default_spec,
            "the first records are from today (a live feed): partitioned by day, so each day's files share a folder; pass --partition-by to choose (the first commit fixes the layout)"
        );
    }
    let spec = PartitionSpec::parse(cfg.partition_by.as_deref().unwrap_or(&default_spec), &schema)?;
    let sort = cfg.sort_by.clone().unwrap_or(default_sort);
    sort_indices(&schema, &sort)?;
    let describe = spec.describe(&schema);
    let mut table = TableSpec::new(&cfg.topic, schema, describe, sort, cfg.row_group_rows);
    if let Some((cols, n)) = inferred_from {
        table.mark_inferred(&cols, n);
    }
    Ok(Some((table, false)))
}

/// The event day (days since 1970) of each sampled record that has one.
fn event_days(schema: &Schema, sample: &[serde_json::Map<String, serde_json::Value>]) -> Vec<i32> {
    use crate::schema::value::{parse_date, parse_timestamp};
    let Some(f) = schema.event_time.as_deref().and_then(|t| schema.field(t)) else { return vec![] };
    sample
        .iter()
        .filter_map(|m| m.get(&f.name).or_else(|| m.get(f.source_name()))?.as_str())
        .filter_map(|v| match f.ty {
            crate::schema::ColumnType::Date => parse_date(v).ok(),
            _ => parse_timestamp(v).ok().map(|ms| ms.div_euclid(86_400_000) as i32),
        })
        .collect()
}

/// The schema a new lake (or a topic new to it) takes from its first records (`schema::resolve::from_records`),
/// and the columns whose types were inferred, logged with how many records they were learnt from. Under
/// `--strict-schema`: a preset's own columns only (a field beyond them makes its record a reject), and records that
/// match no preset stop the sink.
pub(super) fn schema_from_records(
    sample: &[serde_json::Map<String, serde_json::Value>],
    cfg: &SinkConfig,
) -> Result<(Schema, Vec<String>), SinkError> {
    use crate::schema::resolve::{SchemaChoice, from_records, inferred_columns};
    let (mut schema, choice) = from_records(sample);
    let mut inferred = inferred_columns(&schema, &choice);
    match (&choice, cfg.strict_schema) {
        (SchemaChoice::Preset { extras }, true) => {
            schema.fields.retain(|f| !extras.contains(&f.name));
            if !extras.is_empty() {
                tracing::warn!(schema = %schema.name, fields = ?extras, "--strict-schema: these fields are not columns of the preset; records carrying them are rejects");
            }
            inferred.clear();
        }
        (_, true) => {
            let keys: Vec<&str> = sample.first().map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default();
            return Err(SinkError::Config(format!(
                "--strict-schema: the records of topic '{}' match no preset (the first one has the fields {}); pass --schema FILE (`ticklake schema infer SOURCE.csv` writes one to check and save) or drop --strict-schema",
                cfg.topic,
                keys.join(", ")
            )));
        }
        (SchemaChoice::Preset { extras }, false) if extras.is_empty() => {
            tracing::info!(schema = %schema.name, "the records carry the fields of a preset");
        }
        (SchemaChoice::Preset { extras }, false) => tracing::info!(
            schema = %schema.name, extra_columns = ?extras,
            "the records carry the fields of a preset, and more (kept as columns)"
        ),
        _ => tracing::info!("no preset matches the records; inferred this schema:\n{}", schema.to_toml()),
    }
    if !inferred.is_empty() {
        let typed: Vec<String> =
            inferred.iter().filter_map(|c| schema.field(c)).map(|f| format!("{} {}", f.name, f.ty)).collect();
        tracing::warn!(
            records = sample.len(), columns = %typed.join(", "),
            "columns typed by inference from the first records: check them (`ticklake lake stats` lists them). A wrong type can be fixed with `ticklake lake retype` before any data file holds the column; --schema or --strict-schema avoid inference"
        );
    }
    Ok((schema, inferred))
}

/// Up to 1,000 JSON objects from the start of the first non-empty partition; waits for data unless
/// `--exit-at-end` (then `None` for an empty topic).
pub(super) async fn sample_records(
    kafka: &Kafka,
    cfg: &SinkConfig,
    partitions: &[i32],
    shutdown: &Shutdown,
) -> Result<Option<Vec<serde_json::Map<String, serde_json::Value>>>, SinkError> {
    loop {
        for &p in partitions {
            let pc = kafka.partition(&cfg.topic, p).await?;
            let o = kafka.offsets(&pc).await?;
            if o.high_watermark <= o.earliest {
                continue;
            }
            let (records, _) = kafka.fetch(&pc, o.earliest, 4_000_000, 100).await?;
            let objects: Vec<_> = records
                .iter()
                .filter_map(|r| serde_json::from_slice::<serde_json::Value>(r.record.value.as_deref()?).ok())
                .filter_map(|v| if let serde_json::Value::Object(m) = v { Some(m) } else { None })
                .take(1000)
                .collect();
            if !objects.is_empty() {
                return Ok(Some(objects));
            }
        }
        if cfg.exit_at_end || shutdown.is_set() {
            return Ok(None);
        }
        tracing::info!(topic = %cfg.topic, "no JSON records yet; waiting for data to choose a schema (or pass --schema)");
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = shutdown.wait() => return Ok(None),
        }
    }
}
