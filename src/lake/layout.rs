//! Which columns a lake file holds and their Arrow types: the schema's columns minus those that live in the path
//! (identity partitions), then the three Kafka columns. Below both the row buffer (`columns`) and the encoder
//! (`parquet`), which agree on it.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field as ArrowField, Schema as ArrowSchema, TimeUnit};

use super::partition::PartitionSpec;
use crate::schema::{ColumnType, Schema};

/// The columns every lake row carries besides the schema's.
pub const KAFKA_COLUMNS: [&str; 3] = ["kafka_partition", "kafka_offset", "kafka_timestamp"];
pub fn arrow_type(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::String => DataType::Utf8,
        ColumnType::Bigint => DataType::Int64,
        ColumnType::Double => DataType::Float64,
        ColumnType::Date => DataType::Date32,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        ColumnType::Boolean => DataType::Boolean,
    }
}

/// Which schema columns go into the files (identity-partitioned ones live in the path), and the Arrow schema.
#[derive(Debug, Clone)]
pub struct FileLayout {
    pub schema: Schema,
    /// Schema field indices written into files, in order.
    pub columns: Vec<usize>,
    pub arrow: Arc<ArrowSchema>,
}

impl FileLayout {
    pub fn new(schema: &Schema, spec: &PartitionSpec) -> FileLayout {
        let columns: Vec<usize> = (0..schema.fields.len()).filter(|&i| !spec.is_path_column(i)).collect();
        let mut fields: Vec<ArrowField> = columns
            .iter()
            .map(|&i| {
                let f = &schema.fields[i];
                ArrowField::new(&f.name, arrow_type(f.ty), !f.required)
            })
            .collect();
        fields.push(ArrowField::new(KAFKA_COLUMNS[0], DataType::Int32, false));
        fields.push(ArrowField::new(KAFKA_COLUMNS[1], DataType::Int64, false));
        fields.push(ArrowField::new(KAFKA_COLUMNS[2], arrow_type(ColumnType::Timestamp), false));
        FileLayout { schema: schema.clone(), columns, arrow: Arc::new(ArrowSchema::new(fields)) }
    }

    /// (name, Athena type) of every column in the files, for the DDL.
    pub fn file_columns(&self) -> Vec<(String, &'static str)> {
        let mut out: Vec<(String, &'static str)> = self
            .columns
            .iter()
            .map(|&i| (self.schema.fields[i].name.clone(), self.schema.fields[i].ty.athena_name()))
            .collect();
        out.push((KAFKA_COLUMNS[0].into(), "int"));
        out.push((KAFKA_COLUMNS[1].into(), "bigint"));
        out.push((KAFKA_COLUMNS[2].into(), "timestamp"));
        out
    }
}
