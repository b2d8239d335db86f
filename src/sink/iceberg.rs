//! `sink --format iceberg`: the cut of a Kafka partition becomes one Iceberg fast-append snapshot, exactly once.
//!
//! ```text
//!  0 schema   columns the cut has and the table lacks: an Iceberg schema update (optional columns)
//!  1 files    Parquet data files under the table's data/ folder (Iceberg's writer: field ids, metrics, partitions)
//!  2 rejects  _ticklake/rejects/<topic>/<topic>-<p>-<first>.jsonl under --to (outside the table), if any
//!  3 commit   one snapshot: the files, and in its summary the topic's next offset per Kafka partition
//! ```
//!
//! Offsets live in the table (see `lake::iceberg::offsets`): a sink resumes from what the snapshot history
//! records. A crash before step 3 leaves data files no snapshot references (orphans: no reader sees them, `lake
//! verify` lists them, Athena `VACUUM` removes them) and the next run consumes the same offsets again. The commit
//! is checked on the very table state it lands on (`lake::iceberg::Guarded`): if another writer moved this
//! partition's offsets, this sink is a zombie and stops (exit 13) without committing; a commit that did not touch
//! them (Athena `OPTIMIZE`, `VACUUM`, another topic's or another partition's sink) costs a reload and a retry.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, RecordBatch, new_null_array};
use arrow::datatypes::SchemaRef as ArrowSchemaRef;
use iceberg::arrow::{RecordBatchPartitionSplitter, schema_to_arrow_schema};
use iceberg::spec::{DataFile, DataFileFormat, Type};
use iceberg::table::Table;
use iceberg::transaction::{AddColumn, ApplyTransactionAction, Transaction};
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::DefaultFileNameGenerator;
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use iceberg::{Catalog, TableCreation, TableIdent};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::buffer::Cut;
use super::commit::{Committed, put_with_retry};
use super::{SinkConfig, SinkError};
use crate::lake::Store;
use crate::lake::iceberg::offsets::{self, Offsets, Verdict};
use crate::lake::iceberg::{self as ice, Guarded, PROP_EVENT_TIME, PROP_KEY, PROP_SCHEMA_NAME, spec};
use crate::lake::layout::KAFKA_COLUMNS;
use crate::lake::state::{Checkpoint, rejects_key};
use crate::lake::table::{TableSpec, default_layout};
use crate::schema::{Field, Schema};

/// An Iceberg failure as a sink error: a catalog or storage that does not answer is worth retrying, anything else
/// is the table's or the flags' fault.
pub fn iceberg_error(what: &str, e: iceberg::Error) -> SinkError {
    SinkError::Iceberg(format!("{what}: {e}"))
}

/// The Iceberg table a sink commits to.
pub struct IcebergTarget {
    catalog: Arc<dyn Catalog>,
    pub ident: TableIdent,
    topic: String,
    /// Who commits (host, pid, start time): recorded in every snapshot this sink makes.
    writer: String,
    /// One commit at a time from this process: the partitions' commits would only conflict with each other.
    commit_lock: tokio::sync::Mutex<()>,
    /// Next offset per Kafka partition as this sink last read or committed it: a commit expects to find exactly
    /// this in the table.
    expected: std::sync::Mutex<Offsets>,
    /// The table as this sink's last commit (or load) left it: a commit prepares from it, and the check on the
    /// state the commit lands on says when it is stale (then it is loaded again). Saves two catalog round trips
    /// and two metadata reads per commit.
    cached: std::sync::Mutex<Option<Table>>,
    /// `--to`: where rejects go (outside the table's folder).
    store: Store,
    row_group_rows: usize,
    retry_for: Duration,
}

fn writer_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    let start = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    format!("{host} pid {} started {start}", std::process::id())
}

/// The ticklake schema of an Iceberg table (its columns minus the Kafka ones, with the roles stored in its
/// properties).
pub fn schema_of(table: &Table) -> Result<Schema, SinkError> {
    let meta = table.metadata();
    let props = meta.properties();
    let mut fields = Vec::new();
    for f in meta.current_schema().as_struct().fields() {
        if KAFKA_COLUMNS.contains(&f.name.as_str()) {
            continue;
        }
        let ty = spec::column_type(&f.field_type).ok_or_else(|| {
            SinkError::Config(format!(
                "table column '{}' is {}: ticklake writes string, bigint, double, date, timestamp and boolean columns only",
                f.name, f.field_type
            ))
        })?;
        let mut field = Field::new(&f.name, &f.name, ty);
        field.required = f.required;
        fields.push(field);
    }
    Ok(Schema {
        name: props.get(PROP_SCHEMA_NAME).cloned().unwrap_or_else(|| "iceberg".into()),
        key: props.get(PROP_KEY).cloned(),
        event_time: props.get(PROP_EVENT_TIME).cloned(),
        fields,
    })
}

/// The table's partition spec and sort order the way `--partition-by`/`--sort-by` write them.
fn layout_of(table: &Table) -> (String, Vec<String>) {
    let meta = table.metadata();
    let schema = meta.current_schema();
    let name = |id: i32| schema.name_by_field_id(id).unwrap_or("?").to_string();
    let parts: Vec<_> =
        meta.default_partition_spec().fields().iter().map(|f| (f.transform, name(f.source_id))).collect();
    let sort = meta.default_sort_order().fields.iter().map(|f| name(f.source_id)).collect();
    (spec::describe_spec(&parts), sort)
}

/// Opens the catalog and the table (creating it from the resolved schema if missing), checks the flags against an
/// existing table, and reads the offsets recorded for the topic. `None`: the topic is empty and the table missing.
pub(super) async fn open(
    cfg: &SinkConfig,
    opts: &super::IcebergOptions,
    store: Store,
    sample: impl AsyncFnOnce() -> Result<Option<Schema>, SinkError>,
) -> Result<Option<(TableSpec, Arc<IcebergTarget>)>, SinkError> {
    let catalog = ice::open_catalog(&opts.catalog, &cfg.lake, &cfg.s3).await.map_err(SinkError::Iceberg)?;
    let ident = ice::table_ident(&opts.table).map_err(SinkError::Config)?;
    let exists = catalog.table_exists(&ident).await.map_err(|e| iceberg_error("catalog", e))?;
    let table = if exists {
        let table = catalog.load_table(&ident).await.map_err(|e| iceberg_error("loading the table", e))?;
        let (parts, sort) = layout_of(&table);
        if let Some(given) = &cfg.partition_by {
            let given = spec::normalize_partition_by(given).map_err(|e| SinkError::Config(e.to_string()))?;
            if given != parts {
                return Err(SinkError::Config(format!(
                    "--partition-by '{given}' conflicts with table {}'s partition spec '{parts}': drop the flag (the table's spec is used), or write to another table",
                    opts.table
                )));
            }
        }
        if let Some(given) = cfg.sort_by.as_ref().filter(|g| **g != sort) {
            return Err(SinkError::Config(format!(
                "--sort-by '{}' conflicts with table {}'s sort order '{}': drop the flag, or write to another table",
                given.join(","),
                opts.table,
                sort.join(",")
            )));
        }
        table
    } else {
        let Some(schema) = (match &cfg.schema {
            Some(s) => Some(s.clone()),
            None => sample().await?,
        }) else {
            return Ok(None);
        };
        schema.validate().map_err(|e| SinkError::Config(e.to_string()))?;
        create(&*catalog, &ident, &schema, cfg).await?
    };
    let mut schema = schema_of(&table)?;
    if let Some(given) = &cfg.schema {
        // Roles come from the flag; its extra columns are added at the first commit (a schema update).
        let t = TableSpec::new(&cfg.topic, schema.clone(), String::new(), vec![], 0);
        let added = t.admit(&cfg.topic, given, "--schema").map_err(|e| SinkError::Config(e.to_string()))?;
        schema.fields.extend(added);
        schema.key = schema.key.or(given.key.clone());
        schema.event_time = schema.event_time.or(given.event_time.clone());
    }
    let recorded = ice::recorded(&table, &cfg.topic).map_err(SinkError::Corrupt)?;
    let (parts, sort) = layout_of(&table);
    tracing::info!(
        table = %opts.table, catalog = %opts.catalog.describe(), location = %table.metadata().location(),
        partition_by = %parts, sort_by = ?sort, recorded = ?recorded.offsets, "iceberg table ready"
    );
    let spec = TableSpec::new(&cfg.topic, schema, parts, sort, cfg.row_group_rows);
    let target = IcebergTarget {
        catalog,
        ident,
        topic: cfg.topic.clone(),
        writer: writer_id(),
        commit_lock: tokio::sync::Mutex::new(()),
        expected: std::sync::Mutex::new(recorded.offsets),
        cached: std::sync::Mutex::new(Some(table)),
        store,
        row_group_rows: cfg.row_group_rows,
        retry_for: cfg.retry_for,
    };
    Ok(Some((spec, Arc::new(target))))
}

async fn create(
    catalog: &dyn Catalog,
    ident: &TableIdent,
    schema: &Schema,
    cfg: &SinkConfig,
) -> Result<Table, SinkError> {
    let bad = |e: spec::IcebergSpecError| SinkError::Config(e.to_string());
    let ischema = spec::table_schema(schema).map_err(bad)?;
    let (default_parts, default_sort) = default_layout(schema);
    let parts = spec::partition_spec(cfg.partition_by.as_deref().unwrap_or(&default_parts), &ischema).map_err(bad)?;
    let sort = spec::sort_order(cfg.sort_by.as_deref().unwrap_or(&default_sort), &ischema).map_err(bad)?;
    let mut props = vec![
        ("write.format.default".to_string(), "parquet".to_string()),
        ("write.parquet.compression-codec".to_string(), "zstd".to_string()),
        (PROP_SCHEMA_NAME.to_string(), schema.name.clone()),
    ];
    props.extend(schema.key.clone().map(|k| (PROP_KEY.to_string(), k)));
    props.extend(schema.event_time.clone().map(|k| (PROP_EVENT_TIME.to_string(), k)));
    let creation =
        TableCreation::builder().name(ident.name().to_string()).schema(ischema).partition_spec(parts).sort_order(sort);
    let creation = creation.properties(props).build();
    ice::ensure_namespace(catalog, ident).await.map_err(|e| iceberg_error("creating the namespace", e))?;
    match catalog.create_table(ident.namespace(), creation).await {
        Ok(t) => {
            tracing::info!(table = %ident, "created the iceberg table");
            Ok(t)
        }
        // Another sink created it at the same moment: use theirs.
        Err(e) => match catalog.load_table(ident).await {
            Ok(t) => Ok(t),
            Err(_) => Err(iceberg_error("creating the table", e)),
        },
    }
}

/// Where data files go: `<table>/data/<partition path>/<file>`, with the partition values written the way Iceberg's
/// Java library and Spark write them (`trade_date_year=2021`, `ts_month=2024-03`, `ts_hour=2024-03-04-09`), not as
/// the transforms' raw numbers (`trade_date_year=51`) that iceberg-rust's default generator writes. Readers use
/// the metadata, never the path; the path is for people browsing the bucket.
#[derive(Clone)]
struct HumanPaths {
    data: String,
}

impl HumanPaths {
    fn new(meta: &iceberg::spec::TableMetadata) -> Self {
        let data = meta
            .properties()
            .get("write.data.path")
            .cloned()
            .unwrap_or_else(|| format!("{}/data", meta.location().trim_end_matches('/')));
        HumanPaths { data }
    }
}

/// A partition value as a path segment (see `HumanPaths`).
fn human_value(transform: iceberg::spec::Transform, value: Option<&iceberg::spec::Literal>, raw: String) -> String {
    use iceberg::spec::{Literal, PrimitiveLiteral, Transform};
    let n = match value {
        Some(Literal::Primitive(PrimitiveLiteral::Int(n))) => Some(*n as i64),
        _ => None,
    };
    let month = |m: i64| format!("{:04}-{:02}", 1970 + m.div_euclid(12), m.rem_euclid(12) + 1);
    let escaped = |v: String| crate::lake::partition::escape_hive(&v);
    match (transform, n) {
        (Transform::Year, Some(y)) => format!("{}", 1970 + y),
        (Transform::Month, Some(m)) => month(m),
        (Transform::Hour, Some(h)) => {
            chrono::DateTime::from_timestamp(h * 3600, 0).map_or(raw, |t| t.format("%Y-%m-%d-%H").to_string())
        }
        _ => escaped(raw),
    }
}

impl iceberg::writer::file_writer::location_generator::LocationGenerator for HumanPaths {
    fn generate_location(&self, key: Option<&iceberg::spec::PartitionKey>, file_name: &str) -> String {
        let Some(key) = key.filter(|k| !k.spec().is_unpartitioned()) else {
            return format!("{}/{file_name}", self.data);
        };
        let types = key.spec().partition_type(key.schema()).map(|t| t.fields().to_vec()).unwrap_or_default();
        let path: Vec<String> = key
            .spec()
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let value = key.data()[i].as_ref();
                let raw = types.get(i).map_or("null".into(), |t| f.transform.to_human_string(&t.field_type, value));
                format!("{}={}", f.name, human_value(f.transform, value, raw))
            })
            .collect();
        format!("{}/{}/{file_name}", self.data, path.join("/"))
    }
}

/// Rows converted to Arrow and handed to the Iceberg writers at a time.
const WRITE_SLICE_ROWS: usize = 8_192;

/// Writer settings for data files: those of the hive lake (ZSTD, statistics, `--row-group-rows`, no dictionary for
/// double columns, whose values rarely repeat).
fn writer_properties(row_group_rows: usize, schema: &iceberg::spec::Schema) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("valid zstd level")))
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(row_group_rows.max(1)))
        .set_created_by(concat!("ticklake ", env!("CARGO_PKG_VERSION")).to_string());
    for f in schema.as_struct().fields() {
        if *f.field_type == Type::Primitive(iceberg::spec::PrimitiveType::Double) {
            b = b.set_column_dictionary_enabled(parquet::schema::types::ColumnPath::from(f.name.as_str()), false);
        }
    }
    b.build()
}

/// A cut's rows in the table's Arrow schema (with field ids): columns matched by name, timestamps to
/// microseconds, NULL for a table column the cut lacks (added by another writer).
fn conform(batch: &RecordBatch, to: &ArrowSchemaRef) -> Result<RecordBatch, SinkError> {
    let mut cols: Vec<ArrayRef> = Vec::with_capacity(to.fields().len());
    for f in to.fields() {
        match batch.schema().index_of(f.name()) {
            Ok(i) => cols.push(
                arrow::compute::cast(batch.column(i), f.data_type())
                    .map_err(|e| SinkError::Iceberg(format!("column {}: {e}", f.name())))?,
            ),
            Err(_) if f.is_nullable() => cols.push(new_null_array(f.data_type(), batch.num_rows())),
            Err(_) => {
                return Err(SinkError::Config(format!(
                    "the table has a required column '{}' that the records do not carry",
                    f.name()
                )));
            }
        }
    }
    RecordBatch::try_new(to.clone(), cols).map_err(|e| SinkError::Iceberg(format!("building a batch: {e}")))
}

impl IcebergTarget {
    /// Where the partition resumes: the next offset recorded in the table (`None`: never committed).
    pub fn next_offset(&self, partition: i32) -> Option<i64> {
        self.expected.lock().expect("not poisoned").get(&partition).copied()
    }

    async fn load(&self) -> Result<Table, SinkError> {
        let (catalog, ident) = (&self.catalog, &self.ident);
        crate::backoff::retry(
            "load the iceberg table",
            self.retry_for,
            Duration::from_secs(5),
            |_: &iceberg::Error| true,
            |_| catalog.load_table(ident),
        )
        .await
        .map_err(|e| iceberg_error("loading the table", e))
    }

    /// Adds the columns of `schema` the table lacks (optional columns, one schema update); returns the table.
    async fn ensure_columns(&self, schema: &Schema) -> Result<Table, SinkError> {
        loop {
            let cached = self.cached.lock().expect("not poisoned").clone();
            let table = match cached {
                Some(t) => t,
                None => self.load().await?,
            };
            let current = table.metadata().current_schema();
            let missing: Vec<&Field> =
                schema.fields.iter().filter(|f| current.field_by_name(&f.name).is_none()).collect();
            if missing.is_empty() {
                return Ok(table);
            }
            let tx = Transaction::new(&table);
            let mut update = tx.update_schema();
            for f in &missing {
                update = update.add_column(AddColumn::optional(&f.name, Type::Primitive(spec::iceberg_type(f.ty))));
            }
            let tx = update.apply(tx).map_err(|e| iceberg_error("schema update", e))?;
            let committed = tx.commit(&*self.catalog).await;
            *self.cached.lock().expect("not poisoned") = None;
            match committed {
                Ok(_) => tracing::warn!(
                    table = %self.ident, columns = ?missing.iter().map(|f| &f.name).collect::<Vec<_>>(),
                    "added columns to the iceberg table"
                ),
                // Another writer changed the schema at the same time: look again.
                Err(e) if e.retryable() => continue,
                Err(e) => return Err(iceberg_error("schema update", e)),
            }
        }
    }

    /// Writes the cut's rows as data files of `table` (not yet committed: orphans until the snapshot lands).
    async fn write_files(&self, table: &Table, cut: &Cut) -> Result<Vec<DataFile>, SinkError> {
        let err = |e| iceberg_error("writing data files", e);
        let meta = table.metadata();
        let ischema = meta.current_schema().clone();
        let arrow_schema = Arc::new(schema_to_arrow_schema(&ischema).map_err(err)?);
        let spec = meta.default_partition_spec().clone();
        let suffix = format!("{:016x}", rand::random::<u64>());
        let names = DefaultFileNameGenerator::new(
            format!("{}-{}-{:020}", self.topic, cut.partition, cut.first),
            Some(suffix),
            DataFileFormat::Parquet,
        );
        let locations = HumanPaths::new(meta);
        let builder = DataFileWriterBuilder::new(RollingFileWriterBuilder::new(
            ParquetWriterBuilder::new(writer_properties(self.row_group_rows, &ischema), ischema.clone()),
            512 << 20,
            table.file_io().clone(),
            locations,
            names,
        ));
        // Rows go to the writers a slice at a time: the Arrow copy of a whole cut (and its timestamp casts and
        // partition splits) would hold several times the cut's buffered bytes at once.
        let splitter = match spec.is_unpartitioned() {
            true => None,
            false => Some(RecordBatchPartitionSplitter::try_new_with_computed_values(ischema, spec).map_err(err)?),
        };
        let mut writers = HashMap::new();
        let mut order = Vec::new();
        let mut files = Vec::new();
        for f in &cut.files {
            for rows in f.rows.chunks(WRITE_SLICE_ROWS) {
                let batch = RecordBatch::try_new(cut.layout.arrow.clone(), f.cols.arrays(rows))
                    .map_err(|e| SinkError::Iceberg(format!("building a batch: {e}")))?;
                let batch = conform(&batch, &arrow_schema)?;
                let parts = match &splitter {
                    None => vec![(None, batch)],
                    Some(s) => s.split(&batch).map_err(err)?.into_iter().map(|(k, b)| (Some(k), b)).collect(),
                };
                let mut seen = Vec::with_capacity(parts.len());
                for (key, part) in parts {
                    let k = key.as_ref().map(|k| k.data().clone());
                    if !writers.contains_key(&k) {
                        order.push(k.clone());
                        writers.insert(k.clone(), builder.build(key).await.map_err(err)?);
                    }
                    writers.get_mut(&k).expect("inserted").write(part).await.map_err(err)?;
                    seen.push(k);
                }
                // Rows are sorted (by the sort order, which usually leads with the partition's time column): a
                // partition the slice did not touch is done, and its writer (open column buffers and dictionaries)
                // is closed now rather than held open with every other partition's until the end of the cut.
                for k in order.iter().filter(|k| !seen.contains(k)) {
                    let mut w = writers.remove(k).expect("one writer per key");
                    files.extend(w.close().await.map_err(err)?);
                }
                order.retain(|k| seen.contains(k));
            }
        }
        for k in order {
            let mut w = writers.remove(&k).expect("one writer per key");
            files.extend(w.close().await.map_err(err)?);
        }
        Ok(files)
    }

    /// Commits one cut (see the module docs) and advances `cp`.
    pub async fn commit(&self, cp: &mut Checkpoint, cut: Cut, buffered: usize) -> Result<Committed, SinkError> {
        let p = cut.partition;
        let next = cut.last + 1;
        let table = {
            let _one = self.commit_lock.lock().await;
            self.ensure_columns(&cut.layout.schema).await?
        };
        let files = if cut.rows > 0 {
            // The same bound as the hive sink's encodes: at most two cuts are being written at once.
            let _slot = super::commit::ENCODE_SLOTS.acquire().await.expect("the encode semaphore is never closed");
            self.write_files(&table, &cut).await?
        } else {
            Vec::new()
        };
        let bytes: u64 = files.iter().map(|f| f.file_size_in_bytes()).sum();
        if !cut.rejects.is_empty() {
            let mut lines = Vec::new();
            for r in &cut.rejects {
                serde_json::to_writer(&mut lines, r).expect("reject serializes");
                lines.push(b'\n');
            }
            put_with_retry(&self.store, &rejects_key(&self.topic, p, cut.first), lines, self.retry_for).await?;
        }
        let _one = self.commit_lock.lock().await;
        let expected = self.next_offset(p);
        let deadline = std::time::Instant::now() + self.retry_for;
        loop {
            let cached = self.cached.lock().expect("not poisoned").take();
            let table = match cached {
                Some(t) => t,
                None => self.load().await?,
            };
            let now = ice::recorded(&table, &self.topic).map_err(SinkError::Corrupt)?;
            // Prepared from what the table records now, with this partition where this sink left it.
            let mut base = now.offsets.clone();
            match expected {
                Some(o) => base.insert(p, o),
                None => base.remove(&p),
            };
            let verdict = match offsets::judge(&now, &base, p, next, &self.writer) {
                Verdict::Go => {
                    let props = offsets::summary(&self.topic, &base, p, next, &self.writer);
                    let tx = Transaction::new(&table);
                    let append = tx
                        .fast_append()
                        .with_check_duplicate(false)
                        .add_data_files(files.clone())
                        .set_snapshot_properties(props);
                    let tx = append.apply(tx).map_err(|e| iceberg_error("preparing the commit", e))?;
                    let (topic, writer) = (self.topic.clone(), self.writer.clone());
                    let guard = Guarded {
                        inner: self.catalog.clone(),
                        check: move |t: &Table| match ice::recorded(t, &topic) {
                            Ok(r) => offsets::judge(&r, &base, p, next, &writer),
                            Err(_) => Verdict::Fenced { found: None, writer: None },
                        },
                        refused: std::sync::Mutex::new(None),
                    };
                    let result = tx.commit(&guard).await;
                    let refused = guard.refused.lock().expect("not poisoned").take();
                    match result {
                        Ok(committed) => {
                            *self.cached.lock().expect("not poisoned") = Some(committed);
                            Verdict::Go
                        }
                        Err(e) => match refused {
                            Some(v) => v,
                            None if std::time::Instant::now() < deadline => {
                                tracing::warn!(partition = p, "iceberg commit failed, retrying: {e}");
                                tokio::time::sleep(Duration::from_millis(500)).await;
                                continue;
                            }
                            None => return Err(iceberg_error("committing", e)),
                        },
                    }
                }
                v => v,
            };
            match verdict {
                Verdict::Go | Verdict::AlreadyCommitted => break,
                Verdict::Rebase => continue,
                Verdict::Fenced { found, writer } => {
                    return Err(SinkError::Fenced {
                        topic: self.topic.clone(),
                        partition: p,
                        holder: format!(
                            "table {} records next offset {} for it (expected {}), committed by {}",
                            self.ident,
                            found.map_or("none".into(), |o| o.to_string()),
                            expected.map_or("none".into(), |o| o.to_string()),
                            writer.unwrap_or_else(|| "another writer".into())
                        ),
                    });
                }
            }
        }
        self.expected.lock().expect("not poisoned").insert(p, next);
        cp.next_offset = next;
        Ok(Committed { files: files.len(), rows: cut.rows, rejects: cut.rejects.len(), bytes, buffered })
    }
}

#[cfg(test)]
mod tests {
    use iceberg::spec::{Literal, Transform};

    use super::human_value;

    #[test]
    fn partition_paths_read_like_the_java_library_writes_them() {
        let v = |n: i32| Literal::int(n);
        assert_eq!(human_value(Transform::Year, Some(&v(51)), "51".into()), "2021");
        assert_eq!(human_value(Transform::Month, Some(&v(650)), "650".into()), "2024-03");
        assert_eq!(human_value(Transform::Month, Some(&v(-1)), "-1".into()), "1969-12");
        assert_eq!(human_value(Transform::Hour, Some(&v(475_209)), "x".into()), "2024-03-18-09");
        assert_eq!(human_value(Transform::Day, None, "2024-03-04".into()), "2024-03-04");
        assert_eq!(human_value(Transform::Identity, None, "A/B".into()), "A%2FB");
        assert_eq!(human_value(Transform::Bucket(4), Some(&v(3)), "3".into()), "3");
    }
}
