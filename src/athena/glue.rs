//! `ticklake athena --apply`: the table Athena reads, written into the AWS Glue Data Catalog through the Glue API
//! (the Glue client the Glue Iceberg catalog uses), instead of a DDL for someone to paste.
//!
//! A hive lake: the same `TableDef` the printed DDL comes from (columns, partition keys, projection properties,
//! location) becomes a `TableInput`; a missing database or table is created, an existing one updated, so a rerun
//! applies the columns a schema change added, keeps the enum of each identity key current and moves range starts.
//! An Iceberg table on another catalog (sqlite, REST): a Glue table of type ICEBERG pointing at its current
//! metadata, created or moved forward. The Glue endpoint is `AWS_ENDPOINT_URL_GLUE`, else `AWS_ENDPOINT_URL`
//! (unset for AWS); the region is the S3 one.

use super::ddl::TableDef;
use crate::aws::glue::{Column, Database, Glue, SerDeInfo, StorageDescriptor, Table};
use crate::lake::S3Options;
use crate::lake::iceberg::CatalogUrl;
use crate::lake::iceberg::glue::{client, iceberg_table_input};

/// Parquet as Hive and Athena name it.
const PARQUET_SERDE: &str = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";
const PARQUET_INPUT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat";
const PARQUET_OUTPUT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat";

/// What Glue must hold for a hive lake: the `TableInput` of `def`.
pub fn hive_table_input(def: &TableDef) -> Result<Table, String> {
    let (_, name) =
        def.table.split_once('.').ok_or_else(|| format!("--table '{}' must be database.table", def.table))?;
    let mut serde = SerDeInfo { serialization_library: Some(PARQUET_SERDE.into()), ..SerDeInfo::default() };
    serde.parameters.insert("serialization.format".into(), "1".into());
    let sd = StorageDescriptor {
        columns: def.columns.iter().map(|(n, t)| Column::new(n, t)).collect(),
        location: Some(def.location.clone()),
        input_format: Some(PARQUET_INPUT.into()),
        output_format: Some(PARQUET_OUTPUT.into()),
        serde_info: Some(serde),
    };
    let mut input = Table {
        name: name.to_string(),
        table_type: Some("EXTERNAL_TABLE".into()),
        storage_descriptor: Some(sd),
        partition_keys: def.partition_keys.iter().map(|k| Column::new(k, "string")).collect(),
        ..Table::default()
    };
    input.parameters.insert("EXTERNAL".into(), "TRUE".into());
    input.parameters.insert("classification".into(), "parquet".into());
    input.parameters.extend(def.properties.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(input)
}

/// Creates the database if it is missing.
async fn ensure_database(glue: &Glue, db: &str) -> Result<(), String> {
    if glue.get_database(db).await.map_err(|e| e.to_string())?.is_some() {
        return Ok(());
    }
    match glue.create_database(&Database { name: db.to_string(), ..Database::default() }).await {
        Ok(()) => tracing::info!(database = db, "created the Glue database"),
        // Created by someone else since: as good.
        Err(e) if e.already_exists() => {}
        Err(e) => return Err(e.to_string()),
    }
    Ok(())
}

/// Creates or replaces `input` in database `db`.
async fn put(glue: &Glue, db: &str, input: Table, exists: bool) -> Result<(), String> {
    let sent = match exists {
        true => glue.update_table(db, &input, None, false).await,
        false => glue.create_table(db, &input).await,
    };
    sent.map_err(|e| format!("{e} (table {db}.{})", input.name))
}

/// `--apply` for a hive lake: creates or updates the Glue table; says what changed.
pub async fn apply_hive(def: &TableDef, s3: &S3Options) -> Result<String, String> {
    let (db, name) =
        def.table.split_once('.').ok_or_else(|| format!("--table '{}' must be database.table", def.table))?;
    let input = hive_table_input(def)?;
    let glue = client(s3).await.map_err(|e| e.to_string())?;
    ensure_database(&glue, db).await?;
    let before = glue.get_table(db, name).await.map_err(|e| e.to_string())?;
    if let Some(t) = &before
        && t.parameters.get("table_type").is_some_and(|v| v.eq_ignore_ascii_case("ICEBERG"))
    {
        return Err(format!(
            "Glue table {} is an Iceberg table: --apply for a hive lake would replace it. Use another --table",
            def.table
        ));
    }
    let changes = describe_changes(before.as_ref(), &input);
    put(&glue, db, input, before.is_some()).await?;
    Ok(format!(
        "{} Glue table {} at {}: {}",
        if before.is_some() { "updated" } else { "created" },
        def.table,
        def.location,
        changes
    ))
}

/// What `input` changes against the table Glue held (for the report: columns added, enum values, ranges).
fn describe_changes(before: Option<&Table>, input: &Table) -> String {
    let cols = |sd: Option<&StorageDescriptor>| -> Vec<String> {
        sd.map(|sd| sd.columns.iter().map(|c| c.name.clone()).collect()).unwrap_or_default()
    };
    let new_cols = cols(input.storage_descriptor.as_ref());
    let Some(before) = before else {
        return format!(
            "{} column(s), partition keys {}",
            new_cols.len(),
            input.partition_keys.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
        );
    };
    let old_cols = cols(before.storage_descriptor.as_ref());
    let added: Vec<&String> = new_cols.iter().filter(|c| !old_cols.contains(c)).collect();
    let mut out = vec![if added.is_empty() {
        "no new column".to_string()
    } else {
        format!("added column(s) {}", added.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", "))
    }];
    let (old, new) = (&before.parameters, &input.parameters);
    let mut keys: Vec<&String> = new.keys().filter(|k| k.ends_with(".values") || k.ends_with(".range")).collect();
    keys.sort();
    for k in keys {
        if old.get(k) != new.get(k) {
            out.push(format!("{k} {} -> {}", old.get(k).map_or("(none)", String::as_str), new[k]));
        }
    }
    out.join("; ")
}

/// `--apply` for an Iceberg table: with the Glue catalog there is nothing to do; with another catalog, the Glue
/// table of type ICEBERG at the table's current metadata, created or moved forward.
pub async fn apply_iceberg(
    name: &str,
    catalog: &CatalogUrl,
    table: &iceberg::table::Table,
    s3: &S3Options,
) -> Result<String, String> {
    if matches!(catalog, CatalogUrl::Glue) {
        return Ok(format!(
            "Iceberg table {name} is in the Glue catalog already (the sink commits there): nothing to apply"
        ));
    }
    let (db, tbl) = name.split_once('.').ok_or_else(|| format!("--table '{name}' must be database.table"))?;
    let metadata = table.metadata_location().ok_or("the table has no metadata location")?.to_string();
    let glue = client(s3).await.map_err(|e| e.to_string())?;
    ensure_database(&glue, db).await?;
    let before = glue.get_table(db, tbl).await.map_err(|e| e.to_string())?;
    let previous = before.as_ref().and_then(|t| t.parameters.get("metadata_location")).cloned();
    if before.is_some() && previous.is_none() {
        return Err(format!("Glue table {name} exists and is not an Iceberg table: use another --table"));
    }
    let input = iceberg_table_input(tbl, &metadata, table.metadata(), previous.as_deref());
    put(&glue, db, input, before.is_some()).await?;
    tracing::warn!(
        "Glue and the {} catalog now both point at table {name}'s files: run Athena's VACUUM (or `ticklake lake remove-orphans`) from one of them only, and rerun --apply after the sink's commits for Athena to see them",
        catalog.describe()
    );
    Ok(format!(
        "{} Glue table {name} (ICEBERG) at {metadata}{}",
        if before.is_some() { "updated" } else { "registered" },
        previous.map_or(String::new(), |p| format!(" (was {p})"))
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hive_table_input_is_the_ddls_table() {
        let s = crate::schema::Schema::ticks();
        let spec = crate::lake::PartitionSpec::parse("day(ts),symbol", &s).unwrap();
        let opts = super::super::TableOptions {
            table: "m.ticks".into(),
            location: crate::lake::LakeUrl::parse("s3://b/ticks").unwrap(),
            projection: true,
            enum_values: vec![("symbol".into(), vec!["A".into(), "B".into()])],
            range_starts: vec![("dt".into(), "2024-03-04".into())],
            first_year: 2024,
        };
        let def = super::super::ddl::table_def(&s, &spec, &opts).unwrap();
        let input = hive_table_input(&def).unwrap();
        assert_eq!(input.name, "ticks");
        let sd = input.storage_descriptor.as_ref().unwrap();
        assert_eq!(sd.location.as_deref(), Some("s3://b/ticks/"));
        let cols: Vec<(&str, &str)> =
            sd.columns.iter().map(|c| (c.name.as_str(), c.r#type.as_deref().unwrap())).collect();
        assert_eq!(cols, def.columns.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect::<Vec<_>>());
        let keys: Vec<&str> = input.partition_keys.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(keys, ["dt", "symbol"]);
        let p = &input.parameters;
        assert_eq!(p["projection.symbol.values"], "A,B");
        assert_eq!(p["projection.dt.range"], "2024-03-04,NOW");
        assert_eq!(
            describe_changes(None, &input),
            format!("{} column(s), partition keys dt, symbol", def.columns.len())
        );
    }
}
