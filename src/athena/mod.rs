//! `ticklake athena`: the `CREATE EXTERNAL TABLE` that matches what the sink writes (`ddl`), the `ALTER TABLE`
//! after a schema change, and ready queries (`queries`), for the table the lake's stored spec describes.
//!
//! Built from the same `Schema`, `PartitionSpec` and `FileLayout` the sink uses, so the DDL cannot drift from the
//! files. Partition projection (Athena computes partitions from the template instead of a catalog) per key:
//! `integer` for `year()`, `date` for `month()`/`day()`/`hour()`, `enum` for identity keys whose values are known,
//! else `injected` (queries must then filter the key with `=`).

mod ddl;
#[cfg(feature = "iceberg")]
mod glue;
#[cfg(feature = "iceberg")]
mod iceberg;
mod queries;

pub use ddl::{
    DdlError, LOCAL_PLACEHOLDER, MAX_ENUM_VALUES, TableDef, TableOptions, add_columns, create_table, identity_values,
    table_def,
};
pub use queries::reference_queries;

use crate::lake::partition::{PartitionSpec, Transform};
use crate::lake::table::{TableSpec, table_key};
use crate::lake::{LakeUrl, S3Options, Store, StoreError};
use crate::schema::Schema;

#[derive(Debug, Clone)]
pub struct Request {
    pub table: String,
    pub lake: LakeUrl,
    pub s3: S3Options,
    /// A lake from before the table spec: read this topic's schema.
    pub topic: Option<String>,
    /// Print for this schema instead of reading the lake.
    pub schema: Option<Schema>,
    pub partition_by: Option<String>,
    pub projection: bool,
    /// `--first-year`: where ranges of time keys start when the lake holds no value of them (else this year).
    pub first_year: Option<i32>,
    /// `--apply`: create or update the table in the AWS Glue Data Catalog instead of printing the DDL.
    pub apply: bool,
    /// `--print-queries`: (symbol, year).
    pub queries: Option<(String, i32)>,
    /// Print `ALTER TABLE ... ADD COLUMNS` for the columns added after this schema version, instead of the DDL.
    pub since_version: Option<u32>,
    /// An Iceberg table in this catalog instead of the hive lake.
    pub catalog: Option<crate::lake::iceberg::CatalogUrl>,
}

#[derive(Debug, thiserror::Error)]
pub enum AthenaError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Ddl(#[from] DdlError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The lake's table spec, `None` if it has none (nothing committed yet, or a lake from before the spec).
pub async fn read_table(store: &Store) -> Result<Option<TableSpec>, AthenaError> {
    let Some(bytes) = store.get(&table_key()).await? else { return Ok(None) };
    let spec = toml::from_str(&String::from_utf8_lossy(&bytes))
        .map_err(|e| AthenaError::Usage(format!("{} is not a valid table spec: {e}", table_key())))?;
    Ok(Some(spec))
}

/// The text `ticklake athena` prints: the schema and layout come from the lake's stored table spec (so the DDL
/// cannot drift from the files), else from `--schema`/`--partition-by`, else from a legacy per-topic schema.
pub async fn run(req: &Request) -> Result<String, AthenaError> {
    let usage = AthenaError::Usage;
    if let Some(catalog) = &req.catalog {
        #[cfg(feature = "iceberg")]
        {
            let table =
                crate::lake::iceberg::open_table(catalog, &req.lake, &req.s3, &req.table).await.map_err(usage)?;
            if req.apply {
                return glue::apply_iceberg(&req.table, catalog, &table, &req.s3).await.map_err(usage);
            }
            return Ok(iceberg::text(&req.table, catalog, &req.lake, &table));
        }
        #[cfg(not(feature = "iceberg"))]
        return Err(usage(format!("--catalog {}: {}", catalog.describe(), crate::lake::iceberg::NOT_BUILT)));
    }
    let lake = req.lake.display();
    let mut store = None;
    let (schema, spec_text, table) = match &req.schema {
        Some(s) => {
            let (default_spec, _) = crate::lake::table::default_layout(s);
            (s.clone(), req.partition_by.clone().unwrap_or(default_spec), None)
        }
        None => {
            let st = Store::open(&req.lake, &req.s3).await?;
            let found = read_table(&st).await?;
            let out = match found {
                Some(t) => {
                    if let Some(topic) = req.topic.as_ref().filter(|topic| !t.topics.contains(topic)) {
                        return Err(usage(format!(
                            "the lake at {lake} holds topic(s) {}, not '{topic}' (in {}); drop --topic",
                            t.topics.join(", "),
                            table_key()
                        )));
                    }
                    let stored = t.partition_by.clone();
                    if let Some(p) = &req.partition_by {
                        let given = PartitionSpec::parse(p, &t.schema).map_err(|e| usage(e.to_string()))?;
                        if given.describe(&t.schema) != stored {
                            return Err(usage(format!(
                                "--partition-by '{p}' differs from the lake's stored spec '{stored}' (in {}): drop --partition-by",
                                table_key()
                            )));
                        }
                    }
                    (t.schema.clone(), stored, Some(t))
                }
                None => {
                    let Some(topic) = &req.topic else {
                        return Err(usage(format!(
                            "no table spec in {lake} ({}): run the sink into it first, or pass --schema",
                            table_key()
                        )));
                    };
                    let key = crate::lake::state::schema_key(topic);
                    let bytes = st.get(&key).await?.ok_or_else(|| {
                        usage(format!(
                            "no schema for topic '{topic}' in {lake} ({key}): run the sink first, or pass --schema"
                        ))
                    })?;
                    let s: Schema =
                        toml::from_str(&String::from_utf8_lossy(&bytes)).map_err(|e| usage(format!("{key}: {e}")))?;
                    let (default_spec, _) = crate::lake::table::default_layout(&s);
                    (s, req.partition_by.clone().unwrap_or(default_spec), None)
                }
            };
            store = Some(st);
            out
        }
    };
    if let Some(v) = req.since_version {
        let t = table.as_ref().ok_or_else(|| {
            usage(format!("--since-version needs the lake's table spec ({} in {lake}); drop --schema", table_key()))
        })?;
        let added = t.added_since(v);
        if added.is_empty() {
            return Ok(format!(
                "-- no columns added after schema version {v} (the table is at version {})",
                t.version()
            ));
        }
        return Ok(add_columns(&req.table, &added)?.trim_end().to_string());
    }
    let spec = PartitionSpec::parse(&spec_text, &schema).map_err(|e| usage(e.to_string()))?;
    let identity: Vec<&str> =
        spec.fields.iter().filter(|f| f.transform == Transform::Identity).map(|f| f.name.as_str()).collect();
    // With the lake at hand, list it: where time ranges start, and (when applying, so the table is kept current by
    // rerunning) the values of identity keys for an enum.
    let keys: Vec<String> = match &store {
        Some(st) if req.projection && !spec.fields.is_empty() => {
            st.list("").await?.into_iter().map(|o| o.key).collect()
        }
        _ => vec![],
    };
    let enum_values = if req.apply { identity_values(&spec, &keys) } else { vec![] };
    let range_starts = ddl::range_starts(&spec, &keys);
    let this_year = chrono::Datelike::year(&chrono::Utc::now().date_naive());
    if req.projection {
        for key in identity.iter().filter(|k| !enum_values.iter().any(|(e, _)| e == *k)) {
            tracing::warn!(
                key,
                "projection type 'injected': every query must filter {key} with = ('{key}' values keep arriving, and an enum listed today would hide tomorrow's; `ticklake athena --apply`, rerun as the lake grows, keeps an enum of the lake's values current instead)"
            );
        }
        for f in spec.fields.iter().filter(|f| f.transform != Transform::Identity) {
            if !range_starts.iter().any(|(k, _)| k == &f.name) {
                tracing::info!(
                    key = %f.name,
                    "the lake holds no value of {} yet: its projection range starts in {} (--first-year)",
                    f.name,
                    req.first_year.unwrap_or(this_year)
                );
            }
        }
    }
    if let Some(t) = &table {
        tracing::info!(
            version = t.version(),
            "the lake's table is at schema version {0}; after a schema change, `--since-version {0}` prints the ALTER TABLE",
            t.version()
        );
    }
    let opts = TableOptions {
        table: req.table.clone(),
        location: req.lake.clone(),
        projection: req.projection,
        enum_values,
        range_starts,
        first_year: req.first_year.unwrap_or(this_year),
    };
    if req.apply {
        #[cfg(feature = "iceberg")]
        return glue::apply_hive(&ddl::table_def(&schema, &spec, &opts)?, &req.s3).await.map_err(usage);
        #[cfg(not(feature = "iceberg"))]
        return Err(usage(format!("--apply: {}", crate::lake::iceberg::NOT_BUILT)));
    }
    let mut out = create_table(&schema, &spec, &opts)?.trim_end().to_string();
    if let Some((symbol, year)) = &req.queries {
        // The DDL stands on its own: queries that cannot be made for this schema are skipped, and said so.
        match reference_queries(&schema, &spec, &req.table, symbol, *year) {
            Some(queries) => {
                for (title, sql) in queries {
                    out.push_str(&format!("\n\n-- {title}\n{sql};"));
                }
            }
            None => {
                let why = format!(
                    "no reference queries for schema '{}': they need a key, a date event-time column and a close column",
                    schema.name
                );
                tracing::warn!("--print-queries: {why}; printed the DDL only");
                out.push_str(&format!("\n\n-- {why}"));
            }
        }
    }
    Ok(out)
}
