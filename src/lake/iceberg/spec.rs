//! ticklake's table description in Iceberg terms: the schema (with field ids), the partition spec (Iceberg
//! transforms) and the sort order. Pure: no catalog, no I/O.
//!
//! Types: string → string, bigint → long, double → double, date → date, timestamp → timestamp (microseconds, the
//! UTC instant, no zone: what Athena's own `CREATE TABLE ... 'table_type'='ICEBERG'` makes of a `timestamp` column,
//! and a type the Glue catalog can describe; Glue has no column type for Iceberg's timestamptz), boolean → boolean.
//! The three Kafka columns follow the schema's: `kafka_partition` int, `kafka_offset` long, `kafka_timestamp`
//! timestamp, all required.

use std::str::FromStr;
use std::sync::Arc;

use iceberg::spec::{
    NestedField, NullOrder, PrimitiveType, Schema as IcebergSchema, SortDirection, SortField, SortOrder, Transform,
    Type, UnboundPartitionSpec,
};

use crate::lake::layout::KAFKA_COLUMNS;
use crate::schema::{ColumnType, Schema};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IcebergSpecError {
    #[error(
        "--partition-by '{0}': expected column or transform(column), transform one of identity, year, month, day, hour, bucket[N], truncate[W]"
    )]
    Syntax(String),
    #[error("--partition-by '{spec}': no column '{column}' in the table (columns: {columns})")]
    UnknownColumn { spec: String, column: String, columns: String },
    #[error("--sort-by: no column '{0}' in the table")]
    UnknownSortColumn(String),
    #[error("{0}")]
    Invalid(String),
}

/// The Iceberg type of a ticklake column type.
pub fn iceberg_type(ty: ColumnType) -> PrimitiveType {
    match ty {
        ColumnType::String => PrimitiveType::String,
        ColumnType::Bigint => PrimitiveType::Long,
        ColumnType::Double => PrimitiveType::Double,
        ColumnType::Date => PrimitiveType::Date,
        ColumnType::Timestamp => PrimitiveType::Timestamp,
        ColumnType::Boolean => PrimitiveType::Boolean,
    }
}

/// The ticklake column type an Iceberg type is read back as (`None`: a type ticklake does not write).
pub fn column_type(ty: &Type) -> Option<ColumnType> {
    match ty {
        Type::Primitive(PrimitiveType::String) => Some(ColumnType::String),
        Type::Primitive(PrimitiveType::Long | PrimitiveType::Int) => Some(ColumnType::Bigint),
        Type::Primitive(PrimitiveType::Double | PrimitiveType::Float) => Some(ColumnType::Double),
        Type::Primitive(PrimitiveType::Date) => Some(ColumnType::Date),
        Type::Primitive(PrimitiveType::Timestamptz | PrimitiveType::Timestamp) => Some(ColumnType::Timestamp),
        Type::Primitive(PrimitiveType::Boolean) => Some(ColumnType::Boolean),
        _ => None,
    }
}

/// The Iceberg schema of a new table: the schema's columns (ids 1..), then the Kafka columns.
pub fn table_schema(schema: &Schema) -> Result<IcebergSchema, IcebergSpecError> {
    let mut fields = Vec::new();
    for (i, f) in schema.fields.iter().enumerate() {
        let id = i as i32 + 1;
        let ty = Type::Primitive(iceberg_type(f.ty));
        fields.push(Arc::new(if f.required {
            NestedField::required(id, &f.name, ty)
        } else {
            NestedField::optional(id, &f.name, ty)
        }));
    }
    let next = schema.fields.len() as i32 + 1;
    fields.push(Arc::new(NestedField::required(next, KAFKA_COLUMNS[0], Type::Primitive(PrimitiveType::Int))));
    fields.push(Arc::new(NestedField::required(next + 1, KAFKA_COLUMNS[1], Type::Primitive(PrimitiveType::Long))));
    fields.push(Arc::new(NestedField::required(next + 2, KAFKA_COLUMNS[2], Type::Primitive(PrimitiveType::Timestamp))));
    IcebergSchema::builder().with_fields(fields).build().map_err(|e| IcebergSpecError::Invalid(e.to_string()))
}

/// One `--partition-by` item: `column` (identity) or `transform(column)`, optionally `name=...`.
fn parse_item(item: &str, spec: &str) -> Result<(Option<String>, Transform, String), IcebergSpecError> {
    let syntax = || IcebergSpecError::Syntax(spec.to_string());
    let (name, expr) = match item.split_once('=') {
        Some((n, e)) => (Some(n.trim().to_string()), e.trim()),
        None => (None, item.trim()),
    };
    if expr.is_empty() {
        return Err(syntax());
    }
    let Some(open) = expr.find('(') else {
        return Ok((name, Transform::Identity, expr.to_string()));
    };
    let column = expr[open + 1..].strip_suffix(')').ok_or_else(syntax)?.trim();
    let transform = Transform::from_str(expr[..open].trim()).map_err(|_| syntax())?;
    if column.is_empty() || matches!(transform, Transform::Void | Transform::Unknown) {
        return Err(syntax());
    }
    Ok((name, transform, column.to_string()))
}

/// The default name Iceberg tools give a partition field (`trade_date_year`, `symbol_bucket`, ...).
fn default_name(transform: Transform, column: &str) -> String {
    match transform {
        Transform::Identity => column.to_string(),
        Transform::Year => format!("{column}_year"),
        Transform::Month => format!("{column}_month"),
        Transform::Day => format!("{column}_day"),
        Transform::Hour => format!("{column}_hour"),
        Transform::Bucket(_) => format!("{column}_bucket"),
        Transform::Truncate(_) => format!("{column}_trunc"),
        Transform::Void | Transform::Unknown => format!("{column}_void"),
    }
}

/// `--partition-by` as an Iceberg partition spec over `schema` (the Iceberg schema of the table).
pub fn partition_spec(text: &str, schema: &IcebergSchema) -> Result<UnboundPartitionSpec, IcebergSpecError> {
    let mut b = UnboundPartitionSpec::builder().with_spec_id(0);
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, transform, column) = parse_item(item, text)?;
        let field = schema.field_by_name(&column).ok_or_else(|| IcebergSpecError::UnknownColumn {
            spec: text.to_string(),
            column: column.clone(),
            columns: schema.as_struct().fields().iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", "),
        })?;
        let name = name.unwrap_or_else(|| default_name(transform, &column));
        b = b
            .add_partition_field(field.id, name, transform)
            .map_err(|e| IcebergSpecError::Invalid(format!("--partition-by '{text}': {e}")))?;
    }
    Ok(b.build())
}

/// A partition spec written the way `--partition-by` takes it (`year(trade_date),bucket[16](symbol)`), to compare
/// a flag with a table's spec.
pub fn describe_spec(fields: &[(Transform, String)]) -> String {
    fields
        .iter()
        .map(|(t, c)| match t {
            Transform::Identity => c.clone(),
            t => format!("{t}({c})"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `--partition-by` normalised the same way (names dropped), for the comparison with `describe_spec`.
pub fn normalize_partition_by(text: &str) -> Result<String, IcebergSpecError> {
    let mut fields = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (_, t, c) = parse_item(item, text)?;
        fields.push((t, c));
    }
    Ok(describe_spec(&fields))
}

/// `--sort-by` as an Iceberg sort order (ascending, nulls last, as the hive sink sorts).
pub fn sort_order(columns: &[String], schema: &IcebergSchema) -> Result<SortOrder, IcebergSpecError> {
    if columns.is_empty() {
        return Ok(SortOrder::unsorted_order());
    }
    let mut b = SortOrder::builder();
    b.with_order_id(1);
    for c in columns {
        let field = schema.field_by_name(c).ok_or_else(|| IcebergSpecError::UnknownSortColumn(c.clone()))?;
        b.with_sort_field(
            SortField::builder()
                .source_id(field.id)
                .direction(SortDirection::Ascending)
                .null_order(NullOrder::Last)
                .transform(Transform::Identity)
                .build(),
        );
    }
    b.build(schema).map_err(|e| IcebergSpecError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_maps_types_and_appends_kafka_columns() {
        let s = table_schema(&Schema::indices()).unwrap();
        let names: Vec<&str> = s.as_struct().fields().iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names.last(), Some(&"kafka_timestamp"));
        assert_eq!(names.len(), Schema::indices().fields.len() + 3);
        let date = s.field_by_name("trade_date").unwrap();
        assert_eq!(*date.field_type, Type::Primitive(PrimitiveType::Date));
        assert_eq!(*s.field_by_name("volume").unwrap().field_type, Type::Primitive(PrimitiveType::Long));
        assert!(s.field_by_name("kafka_offset").unwrap().required);
        for ty in [
            ColumnType::String,
            ColumnType::Bigint,
            ColumnType::Double,
            ColumnType::Date,
            ColumnType::Timestamp,
            ColumnType::Boolean,
        ] {
            assert_eq!(column_type(&Type::Primitive(iceberg_type(ty))), Some(ty));
        }
    }

    #[test]
    fn partition_specs_take_iceberg_transforms() {
        let s = table_schema(&Schema::indices()).unwrap();
        let spec = partition_spec("year(trade_date), bucket[16](symbol), t=truncate[2](symbol)", &s).unwrap();
        let got: Vec<(String, String)> =
            spec.fields().iter().map(|f| (f.name.clone(), f.transform.to_string())).collect();
        assert_eq!(
            got,
            [
                ("trade_date_year".into(), "year".into()),
                ("symbol_bucket".into(), "bucket[16]".into()),
                ("t".into(), "truncate[2]".into())
            ]
        );
        assert_eq!(
            normalize_partition_by("year(trade_date) ,symbol").unwrap(),
            describe_spec(&[(Transform::Year, "trade_date".into()), (Transform::Identity, "symbol".into())])
        );
        assert!(matches!(partition_spec("yaer(trade_date)", &s), Err(IcebergSpecError::Syntax(_))));
        assert!(matches!(partition_spec("year(nope)", &s), Err(IcebergSpecError::UnknownColumn { .. })));
        assert!(matches!(partition_spec("bucket(symbol", &s), Err(IcebergSpecError::Syntax(_))));
        assert!(partition_spec("", &s).unwrap().fields().is_empty());
    }

    #[test]
    fn sort_orders_name_columns() {
        let s = table_schema(&Schema::indices()).unwrap();
        let o = sort_order(&["trade_date".into(), "symbol".into()], &s).unwrap();
        assert_eq!(o.fields.len(), 2);
        assert_eq!(o.fields[0].source_id, s.field_by_name("trade_date").unwrap().id);
        assert!(sort_order(&[], &s).unwrap().is_unsorted());
        assert!(sort_order(&["nope".into()], &s).is_err());
    }
}
