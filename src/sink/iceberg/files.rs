//! Data files of an Iceberg cut: the cut's rows in the table's Arrow schema, split by the table's partition spec,
//! written by the Iceberg crates' Parquet writer (field ids, metrics) under partition folders named as the Java
//! library names them.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, new_null_array};
use arrow::datatypes::SchemaRef as ArrowSchemaRef;
use iceberg::arrow::{PartitionValueCalculator, arrow_struct_to_literal, schema_to_arrow_schema};
use iceberg::spec::{DataFile, DataFileFormat, Literal, PartitionKey, PartitionSpec, SchemaRef, Type};
use iceberg::table::Table;
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::DefaultFileNameGenerator;
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::iceberg_error;
use crate::sink::SinkError;
use crate::sink::buffer::Cut;

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

/// A slice of rows split by the table's partition spec: the partition values computed column by column (the
/// Iceberg crates' calculator), then each run of rows with equal values as a zero-copy slice keyed by its first
/// row's values. The cut's rows are sorted (by the sort order, which usually leads with the partition's time
/// column), so a slice is one run or a few; a partition found in several runs gets each of them. iceberg-rust's
/// `RecordBatchPartitionSplitter` builds, hashes and clones a struct of literals for every row and copies the slice
/// once per partition it holds.
struct Splitter {
    values: PartitionValueCalculator,
    spec: PartitionSpec,
    schema: SchemaRef,
}

impl Splitter {
    fn new(schema: SchemaRef, spec: PartitionSpec) -> iceberg::Result<Self> {
        Ok(Splitter { values: PartitionValueCalculator::try_new(&spec, &schema)?, spec, schema })
    }

    fn split(&self, batch: &RecordBatch) -> iceberg::Result<Vec<(PartitionKey, RecordBatch)>> {
        use arrow::array::AsArray;
        let invalid = |what: String| iceberg::Error::new(iceberg::ErrorKind::DataInvalid, what);
        let values = self.values.calculate(batch)?;
        let runs = arrow::compute::partition(values.as_struct().columns())
            .map_err(|e| invalid(format!("partition values: {e}")))?;
        runs.ranges()
            .into_iter()
            .map(|run| {
                let first = values.slice(run.start, 1);
                match arrow_struct_to_literal(&first, self.values.partition_type())?.pop().flatten() {
                    Some(Literal::Struct(data)) => Ok((
                        PartitionKey::new(self.spec.clone(), self.schema.clone(), data),
                        batch.slice(run.start, run.end - run.start),
                    )),
                    other => Err(invalid(format!("partition values {other:?} are not a struct"))),
                }
            })
            .collect()
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

/// Writes the cut's rows as data files of `table` (not yet committed: orphans until the snapshot lands), named
/// `<topic>-<kafka partition>-<first offset>-<n>-<random>.parquet`.
pub(super) async fn write_files(
    table: &Table,
    cut: &Cut,
    topic: &str,
    row_group_rows: usize,
) -> Result<Vec<DataFile>, SinkError> {
    let err = |e| iceberg_error("writing data files", e);
    let meta = table.metadata();
    let ischema = meta.current_schema().clone();
    let arrow_schema = Arc::new(schema_to_arrow_schema(&ischema).map_err(err)?);
    let spec = meta.default_partition_spec().clone();
    let suffix = format!("{:016x}", rand::random::<u64>());
    let names = DefaultFileNameGenerator::new(
        format!("{}-{}-{:020}", topic, cut.partition, cut.first),
        Some(suffix),
        DataFileFormat::Parquet,
    );
    let locations = HumanPaths::new(meta);
    let builder = DataFileWriterBuilder::new(RollingFileWriterBuilder::new(
        ParquetWriterBuilder::new(writer_properties(row_group_rows, &ischema), ischema.clone()),
        512 << 20,
        table.file_io().clone(),
        locations,
        names,
    ));
    // Rows go to the writers a slice at a time: the Arrow copy of a whole cut (and its timestamp casts and
    // partition splits) would hold several times the cut's buffered bytes at once.
    let splitter = match spec.is_unpartitioned() {
        true => None,
        false => Some(Splitter::new(ischema, spec.as_ref().clone()).map_err(err)?),
    };
    let mut writers = HashMap::new();
    let mut order = Vec::new();
    let mut closing = Closing::default();
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
                closing.push(writers.remove(k).expect("one writer per key")).await?;
            }
            order.retain(|k| seen.contains(k));
        }
    }
    for k in order {
        closing.push(writers.remove(&k).expect("one writer per key")).await?;
    }
    closing.finish().await
}

/// How many data files of a cut are closed (last row group encoded, uploaded) at once.
const CLOSING_AT_ONCE: usize = 4;

/// Data files being closed in tasks of their own while the cut's next rows are encoded: a cut of 40 hive-style
/// partitions was 40 uploads one after another. The files come back in the order they were closed.
#[derive(Default)]
struct Closing {
    tasks: std::collections::VecDeque<tokio::task::JoinHandle<iceberg::Result<Vec<DataFile>>>>,
    files: Vec<DataFile>,
}

impl Closing {
    async fn push<W>(&mut self, mut writer: W) -> Result<(), SinkError>
    where
        W: IcebergWriter + Send + 'static,
    {
        if self.tasks.len() >= CLOSING_AT_ONCE {
            self.take_oldest().await?;
        }
        self.tasks.push_back(tokio::spawn(async move { writer.close().await }));
        Ok(())
    }

    async fn take_oldest(&mut self) -> Result<(), SinkError> {
        if let Some(task) = self.tasks.pop_front() {
            let closed = task.await.map_err(|e| SinkError::Internal(format!("closing a data file: {e}")))?;
            self.files.extend(closed.map_err(|e| iceberg_error("writing data files", e))?);
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<Vec<DataFile>, SinkError> {
        while !self.tasks.is_empty() {
            self.take_oldest().await?;
        }
        Ok(self.files)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Date32Array, Int64Array, RecordBatch};
    use iceberg::arrow::schema_to_arrow_schema;
    use iceberg::spec::{Literal, NestedField, PartitionSpec, PrimitiveType, Schema, Struct, Transform, Type};

    use super::{Splitter, human_value};

    #[test]
    fn a_slice_splits_into_runs_of_one_partition_each_keyed_by_its_values() {
        let schema = Schema::builder()
            .with_fields(vec![
                NestedField::required(1, "trade_date", Type::Primitive(PrimitiveType::Date)).into(),
                NestedField::optional(2, "volume", Type::Primitive(PrimitiveType::Long)).into(),
            ])
            .build()
            .unwrap();
        let spec = PartitionSpec::builder(schema.clone())
            .add_partition_field("trade_date", "trade_date_year", Transform::Year)
            .unwrap()
            .build()
            .unwrap();
        let arrow_schema = Arc::new(schema_to_arrow_schema(&schema).unwrap());
        // 2020-12-31, 2021-01-01, 2021-06-01, 2020-01-01 (out of order: its own run), 2021-02-01.
        let days = [18627, 18628, 18779, 18262, 18659];
        let batch = RecordBatch::try_new(
            arrow_schema,
            vec![Arc::new(Date32Array::from(days.to_vec())), Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5]))],
        )
        .unwrap();
        let split = Splitter::new(Arc::new(schema), spec).unwrap().split(&batch).unwrap();
        let got: Vec<(Struct, Vec<i64>)> = split
            .iter()
            .map(|(k, b)| {
                let volume = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec();
                (k.data().clone(), volume)
            })
            .collect();
        let year = |y: i32| Struct::from_iter([Some(Literal::int(y - 1970))]);
        assert_eq!(
            got,
            [(year(2020), vec![1]), (year(2021), vec![2, 3]), (year(2020), vec![4]), (year(2021), vec![5])]
        );
    }

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
