//! Parquet files of the lake: the Arrow schema derived from the one `Schema`, encoding rows into an in-memory file
//! (uploaded in one PUT), and reading files back (for `lake verify` and the tests).
//!
//! Athena-safe by construction: lower-case names (validated in `schema`), timestamps INT64 TIMESTAMP(MILLIS, UTC),
//! dates INT32 DATE, doubles DOUBLE, bigints INT64, ZSTD, dictionary-encoded strings, statistics on.

use arrow::array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::columns::Columns;
use super::layout::{FileLayout, KAFKA_COLUMNS};
use crate::schema::ColumnType;

/// Row-group size that the scan benchmark favoured for daily bars (min/max pruning at a few KiB per column chunk).
pub const DEFAULT_ROW_GROUP_ROWS: usize = 4096;
/// `created_by` in every footer: fixed, so the same rows give byte-identical files (exactly-once redo).
const CREATED_BY: &str = concat!("ticklake ", env!("CARGO_PKG_VERSION"));

/// Writer settings shared by every file.
pub fn writer_properties(layout: &FileLayout, row_group_rows: usize) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("valid zstd level")))
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(row_group_rows.max(1)))
        .set_created_by(CREATED_BY.to_string());
    // Prices rarely repeat: a dictionary for a double column is written, then abandoned, and costs bytes that every
    // scan of the column reads (bench-athena: Q2 bytes per row). Dictionaries stay on for strings, dates, integers.
    for &i in &layout.columns {
        let f = &layout.schema.fields[i];
        if f.ty == ColumnType::Double {
            b = b.set_column_dictionary_enabled(parquet::schema::types::ColumnPath::from(f.name.as_str()), false);
        }
    }
    b.build()
}

#[derive(Debug, thiserror::Error)]
pub enum ParquetError {
    #[error("encoding parquet: {0}")]
    Encode(String),
    #[error("reading parquet {key}: {reason}")]
    Read { key: String, reason: String },
    #[error(transparent)]
    Store(#[from] super::StoreError),
}

/// Encodes rows `rows` of `cols` (in that order) into one Parquet file in memory.
pub fn encode(
    layout: &FileLayout,
    cols: &Columns,
    rows: &[u32],
    props: WriterProperties,
) -> Result<Vec<u8>, ParquetError> {
    let enc = |e: &dyn std::fmt::Display| ParquetError::Encode(e.to_string());
    let batch = RecordBatch::try_new(layout.arrow.clone(), cols.arrays(rows)).map_err(|e| enc(&e))?;
    let mut out = Vec::with_capacity(rows.len() * 16 + 4096);
    let mut w = ArrowWriter::try_new(&mut out, layout.arrow.clone(), Some(props)).map_err(|e| enc(&e))?;
    w.write(&batch).map_err(|e| enc(&e))?;
    w.close().map_err(|e| enc(&e))?;
    Ok(out)
}

/// Reads the named columns of a Parquet file into record batches.
pub fn read_columns(key: &str, bytes: Vec<u8>, columns: Option<&[&str]>) -> Result<Vec<RecordBatch>, ParquetError> {
    let err = |e: &dyn std::fmt::Display| ParquetError::Read { key: key.into(), reason: e.to_string() };
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).map_err(|e| err(&e))?;
    let builder = match columns {
        Some(cols) => {
            let mask = ProjectionMask::columns(builder.parquet_schema(), cols.iter().copied());
            builder.with_projection(mask)
        }
        None => builder,
    };
    builder.build().map_err(|e| err(&e))?.collect::<Result<Vec<_>, _>>().map_err(|e| err(&e))
}

/// `(kafka_partition, kafka_offset)` of every row of a lake file.
pub fn read_offsets(key: &str, bytes: Vec<u8>) -> Result<Vec<(i32, i64)>, ParquetError> {
    offsets_of(key, read_columns(key, bytes, Some(&KAFKA_COLUMNS[..2]))?)
}

/// The parts of a file fetched with ranged GETs, at their offsets; reads anywhere else are errors (they would mean
/// the reader wanted more than the footer and the projected column chunks).
struct Sparse {
    len: u64,
    pieces: Vec<(u64, bytes::Bytes)>,
}

impl Sparse {
    fn slice(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        let end = start + length as u64;
        self.pieces
            .iter()
            .find(|(at, b)| *at <= start && end <= at + b.len() as u64)
            .map(|(at, b)| b.slice((start - at) as usize..(end - at) as usize))
            .ok_or_else(|| parquet::errors::ParquetError::General(format!("bytes {start}..{end} were not fetched")))
    }
}

impl parquet::file::reader::Length for Sparse {
    fn len(&self) -> u64 {
        self.len
    }
}

impl parquet::file::reader::ChunkReader for Sparse {
    type T = bytes::buf::Reader<bytes::Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        use bytes::Buf;
        let (at, b) = self
            .pieces
            .iter()
            .find(|(at, b)| *at <= start && start < at + b.len() as u64)
            .ok_or_else(|| parquet::errors::ParquetError::General(format!("byte {start} was not fetched")))?;
        Ok(b.slice((start - at) as usize..).reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        self.slice(start, length)
    }
}

/// `(kafka_partition, kafka_offset)` of every row of the lake file `key` (`size` bytes), read with ranged GETs: the
/// footer, then only those two column chunks of each row group, never the whole file (`lake verify` on a large
/// lake). Returns the pairs and the bytes fetched.
pub async fn read_offsets_ranged(
    store: &super::Store,
    key: &str,
    size: u64,
) -> Result<(Vec<(i32, i64)>, u64), ParquetError> {
    let err = |reason: String| ParquetError::Read { key: key.into(), reason };
    let (meta, footer_pieces) = read_footer(store, key, size).await?;
    let schema = meta.file_metadata().schema_descr();
    let wanted: Vec<usize> =
        (0..schema.num_columns()).filter(|&i| KAFKA_COLUMNS[..2].contains(&schema.column(i).name())).collect();
    if wanted.len() != 2 {
        return Err(err("no kafka_partition/kafka_offset columns".into()));
    }
    let mut fetched: u64 = footer_pieces.iter().map(|(_, b)| b.len() as u64).sum();
    let mut pieces = footer_pieces;
    // The two columns sit side by side in every row group: adjacent chunks are fetched in one GET.
    let mut ranges: Vec<std::ops::Range<u64>> = meta
        .row_groups()
        .iter()
        .flat_map(|rg| wanted.iter().map(move |&i| rg.column(i).byte_range()))
        .map(|(start, len)| start..start + len)
        .collect();
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<std::ops::Range<u64>> = Vec::new();
    for r in ranges {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    for r in merged {
        let b = store.get_range(key, r.clone()).await?;
        fetched += b.len() as u64;
        pieces.push((r.start, bytes::Bytes::from(b)));
    }
    let sparse = Sparse { len: size, pieces };
    let options = parquet::arrow::arrow_reader::ArrowReaderOptions::default();
    let arrow_meta = parquet::arrow::arrow_reader::ArrowReaderMetadata::try_new(std::sync::Arc::new(meta), options)
        .map_err(|e| err(e.to_string()))?;
    let mask = ProjectionMask::leaves(arrow_meta.metadata().file_metadata().schema_descr(), wanted);
    let batches = ParquetRecordBatchReaderBuilder::new_with_metadata(sparse, arrow_meta)
        .with_projection(mask)
        .build()
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    Ok((offsets_of(key, batches)?, fetched))
}

/// A lake file's footer (row groups, row counts, column chunk ranges) with two ranged GETs: the last 8 bytes, then
/// the metadata they point to. Returns it with the fetched pieces (offset, bytes).
pub async fn read_footer(
    store: &super::Store,
    key: &str,
    size: u64,
) -> Result<(parquet::file::metadata::ParquetMetaData, Vec<(u64, bytes::Bytes)>), ParquetError> {
    use parquet::file::metadata::ParquetMetaDataReader;
    let err = |reason: String| ParquetError::Read { key: key.into(), reason };
    if size < 12 {
        return Err(err(format!("{size} bytes is too small for a Parquet file")));
    }
    let tail = store.get_range(key, size - 8..size).await?;
    if tail.len() != 8 || &tail[4..] != b"PAR1" {
        return Err(err("no Parquet footer (PAR1) at the end".into()));
    }
    let meta_len = u64::from(u32::from_le_bytes(tail[..4].try_into().expect("4 bytes")));
    let meta_start = size.checked_sub(8 + meta_len).ok_or_else(|| err("footer longer than the file".into()))?;
    let footer = store.get_range(key, meta_start..size - 8).await?;
    let meta = ParquetMetaDataReader::decode_metadata(&footer).map_err(|e| err(e.to_string()))?;
    Ok((meta, vec![(meta_start, bytes::Bytes::from(footer)), (size - 8, bytes::Bytes::from(tail))]))
}

fn offsets_of(key: &str, batches: Vec<RecordBatch>) -> Result<Vec<(i32, i64)>, ParquetError> {
    use arrow::array::{Array, Int32Array, Int64Array};
    let mut out = Vec::new();
    for b in batches {
        let p = b.column_by_name(KAFKA_COLUMNS[0]).and_then(|c| c.as_any().downcast_ref::<Int32Array>().cloned());
        let o = b.column_by_name(KAFKA_COLUMNS[1]).and_then(|c| c.as_any().downcast_ref::<Int64Array>().cloned());
        let (Some(p), Some(o)) = (p, o) else {
            return Err(ParquetError::Read {
                key: key.into(),
                reason: "no kafka_partition/kafka_offset columns".into(),
            });
        };
        out.extend((0..p.len()).map(|i| (p.value(i), o.value(i))));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    use crate::lake::partition::PartitionSpec;
    use crate::schema::{Schema, Value};

    /// Ten index rows in partition 2, offsets 100..110, with a null.
    fn rows(layout: &FileLayout) -> (Columns, Vec<u32>) {
        let mut cols = Columns::new(layout, 2);
        for i in 0..10 {
            let values = vec![
                Value::Str(if i % 2 == 0 { "HSI".into() } else { "^GSPC".into() }),
                Value::Date(18_000 + i),
                Value::Float(1.5 + f64::from(i)),
                Value::Null,
                Value::Float(0.25),
                Value::Float(f64::from(i)),
                Value::Float(f64::from(i)),
                Value::Int(i64::from(i) * 1000),
                Value::Float(2.0),
            ];
            cols.push(&values, 100 + i64::from(i), 1_700_000_000_000 + i64::from(i));
        }
        (cols, (0..10).collect())
    }

    #[test]
    fn round_trip_with_athena_safe_physical_types() {
        let schema = Schema::indices();
        let spec = PartitionSpec::parse("year(trade_date)", &schema).unwrap();
        let layout = FileLayout::new(&schema, &spec);
        let (cols, order) = rows(&layout);
        let bytes = encode(&layout, &cols, &order, writer_properties(&layout, 4)).unwrap();
        assert_eq!(
            encode(&layout, &cols, &order, writer_properties(&layout, 4)).unwrap(),
            bytes,
            "deterministic bytes"
        );

        let reader = SerializedFileReader::new(bytes::Bytes::from(bytes.clone())).unwrap();
        let meta = reader.metadata();
        assert_eq!(meta.num_row_groups(), 3, "row groups of 4 rows");
        let schema_text = format!("{:?}", meta.file_metadata().schema_descr().columns());
        for col in meta.file_metadata().schema_descr().columns() {
            let name = col.name();
            let phys = format!("{:?}", col.physical_type());
            let logical = format!("{:?}", col.logical_type_ref());
            match name {
                "trade_date" => assert!(phys == "INT32" && logical.contains("Date"), "{name}: {phys} {logical}"),
                "kafka_timestamp" => assert!(
                    phys == "INT64" && logical.contains("MILLIS") && logical.contains("is_adjusted_to_u_t_c: true"),
                    "{name}: {phys} {logical}"
                ),
                "open" | "close" | "close_usd" => assert_eq!(phys, "DOUBLE"),
                "volume" | "kafka_offset" => assert_eq!(phys, "INT64"),
                _ => {}
            }
        }
        assert!(!schema_text.contains("INT96"));
        let rg = meta.row_group(0);
        assert!(rg.columns().iter().all(|c| format!("{:?}", c.compression()).starts_with("ZSTD")));
        assert!(rg.column(0).statistics().is_some(), "statistics on");

        assert_eq!(read_offsets("t", bytes).unwrap(), (100..110).map(|o| (2, o)).collect::<Vec<_>>());
    }

    #[test]
    fn identity_partition_columns_stay_out_of_the_files() {
        let schema = Schema::indices();
        let spec = PartitionSpec::parse("symbol", &schema).unwrap();
        let layout = FileLayout::new(&schema, &spec);
        assert!(layout.arrow.field_with_name("symbol").is_err());
        assert_eq!(layout.file_columns().last().unwrap(), &("kafka_timestamp".to_string(), "timestamp"));
    }

    #[tokio::test]
    async fn offsets_are_read_with_ranged_gets_of_the_footer_and_two_columns() {
        let schema = Schema::indices();
        let spec = PartitionSpec::parse("year(trade_date)", &schema).unwrap();
        let layout = FileLayout::new(&schema, &spec);
        let (cols, order) = rows(&layout);
        // Row groups of 4 rows: three of them, each with its own two chunks to fetch.
        let bytes = encode(&layout, &cols, &order, writer_properties(&layout, 4)).unwrap();
        let want = read_offsets("f", bytes.clone()).unwrap();
        let m = std::sync::Arc::new(crate::lake::store::MemoryStore::default());
        m.insert("f.parquet", bytes.clone());
        let store = crate::lake::Store::new(m);
        let (got, fetched) = read_offsets_ranged(&store, "f.parquet", bytes.len() as u64).await.unwrap();
        assert_eq!(got, want);
        assert!(fetched < bytes.len() as u64, "fetched {fetched} of {} bytes", bytes.len());
        assert!(read_offsets_ranged(&store, "f.parquet", 4).await.is_err(), "too small to be Parquet");
    }
}
