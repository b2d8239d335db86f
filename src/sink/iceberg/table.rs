//! The Iceberg table a sink starts from: the ticklake schema and layout of an existing table, or a new table
//! created from the resolved schema, `--partition-by` and `--sort-by`.

use iceberg::table::Table;
use iceberg::{Catalog, TableCreation, TableIdent};

use super::iceberg_error;
use crate::lake::iceberg::{self as ice, PROP_EVENT_TIME, PROP_KEY, PROP_SCHEMA_NAME, spec};
use crate::lake::layout::KAFKA_COLUMNS;
use crate::lake::table::default_layout;
use crate::schema::{Field, Schema};
use crate::sink::{SinkConfig, SinkError};

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
pub(super) fn layout_of(table: &Table) -> (String, Vec<String>) {
    let meta = table.metadata();
    let schema = meta.current_schema();
    let name = |id: i32| schema.name_by_field_id(id).unwrap_or("?").to_string();
    let parts: Vec<_> =
        meta.default_partition_spec().fields().iter().map(|f| (f.transform, name(f.source_id))).collect();
    let sort = meta.default_sort_order().fields.iter().map(|f| name(f.source_id)).collect();
    (spec::describe_spec(&parts), sort)
}

/// `write.metadata.previous-versions-max` on tables the sink creates (`lake expire --keep-metadata`'s default too).
pub const PREVIOUS_VERSIONS: usize = 10;

pub(super) async fn create(
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
        // A live feed commits every --max-age: each commit's metadata file lists every snapshot, so the files it
        // replaces are deleted after the commit, keeping the newest ten (Iceberg's defaults: not deleted, 100 kept).
        (super::PROP_DELETE_AFTER_COMMIT.to_string(), "true".to_string()),
        ("write.metadata.previous-versions-max".to_string(), PREVIOUS_VERSIONS.to_string()),
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
