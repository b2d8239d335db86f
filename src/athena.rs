//! `ticklake athena`: the `CREATE EXTERNAL TABLE` that matches what the sink writes.
//!
//! Built from the same `Schema`, `PartitionSpec` and `FileLayout` the sink uses, so the DDL cannot drift from the
//! files. Partition projection (Athena computes partitions from the template instead of a catalog) per key:
//! `integer` for `year()`, `date` for `month()`/`day()`/`hour()`, `enum` for identity keys whose values are known,
//! else `injected` (queries must then filter the key with `=`).

use crate::lake::layout::FileLayout;
use crate::lake::partition::{PartitionSpec, Transform};
use crate::lake::table::{TableSpec, table_key};
use crate::lake::{LakeUrl, S3Options, Store, StoreError};
use crate::schema::{RESERVED_WORDS, Schema};

/// What the DDL needs beyond the schema and spec.
#[derive(Debug, Clone)]
pub struct TableOptions {
    /// `db.table`.
    pub table: String,
    pub location: LakeUrl,
    pub projection: bool,
    /// Known values of identity keys (from listing the lake), by key name.
    pub enum_values: Vec<(String, Vec<String>)>,
    /// First year / date of the data, for `integer` and `date` ranges (default 1900 / 1900-01-01).
    pub first_year: i32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DdlError {
    #[error("--table '{0}' must be database.table, lower-case letters, digits and _")]
    TableName(String),
    #[error("column '{0}' is an Athena reserved word")]
    Reserved(String),
}

/// What `ticklake athena` was asked for.
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
    pub first_year: i32,
    /// `--print-queries`: (symbol, year).
    pub queries: Option<(String, i32)>,
    /// Print `ALTER TABLE ... ADD COLUMNS` for the columns added after this schema version, instead of the DDL.
    pub since_version: Option<u32>,
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
    // With the lake at hand, list it for enum projection values.
    let enum_values = match &store {
        Some(st) if !identity.is_empty() && req.projection => {
            let keys: Vec<String> = st.list("").await?.into_iter().map(|o| o.key).collect();
            identity_values(&spec, &keys)
        }
        _ => vec![],
    };
    for key in identity.iter().filter(|k| !enum_values.iter().any(|(e, _)| e == *k)) {
        tracing::warn!(
            key,
            "projection type 'injected': every query must filter {key} with = (run against the lake to list its values for an enum)"
        );
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
        first_year: req.first_year,
    };
    let mut out = create_table(&schema, &spec, &opts)?.trim_end().to_string();
    if let Some((symbol, year)) = &req.queries {
        let queries = reference_queries(&schema, &spec, &req.table, symbol, *year).ok_or_else(|| {
            usage(format!(
                "no reference queries for schema '{}' (they need a key, a date and a close column)",
                schema.name
            ))
        })?;
        for (title, sql) in queries {
            out.push_str(&format!("\n\n-- {title}\n{sql};"));
        }
    }
    Ok(out)
}

fn quote(name: &str) -> String {
    format!("`{name}`")
}

/// Most values an `enum` projection lists; beyond that, `injected` (Athena's docs suggest enum for a few dozen).
pub const MAX_ENUM_VALUES: usize = 1000;

/// The values of each identity partition key found in the lake's object keys, for `enum` projection. A key is left
/// out (so it gets `injected`) when it has no values, more than `MAX_ENUM_VALUES`, or a value that projection could
/// not substitute literally (one with an escaped character, or a comma, the enum separator).
pub fn identity_values(spec: &PartitionSpec, object_keys: &[String]) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for f in spec.fields.iter().filter(|f| f.transform == Transform::Identity) {
        let prefix = format!("{}=", f.name);
        let mut values = std::collections::BTreeSet::new();
        for key in object_keys.iter().filter(|k| !k.starts_with("_ticklake/")) {
            for seg in key.split('/') {
                if let Some(v) = seg.strip_prefix(&prefix) {
                    values.insert(crate::lake::partition::unescape_hive(v));
                }
            }
        }
        let usable = !values.is_empty()
            && values.len() <= MAX_ENUM_VALUES
            && values.iter().all(|v| crate::lake::partition::is_literal(v) && !v.contains(','));
        if usable {
            out.push((f.name.clone(), values.into_iter().collect()));
        }
    }
    out
}

/// `CREATE EXTERNAL TABLE` (plus `MSCK REPAIR TABLE` without projection).
pub fn create_table(schema: &Schema, spec: &PartitionSpec, opts: &TableOptions) -> Result<String, DdlError> {
    // Athena reads S3 only: a local lake gets a placeholder to replace once the folder is copied to S3.
    let (location, note) = match &opts.location {
        LakeUrl::S3 { .. } => (format!("{}/", opts.location.display().trim_end_matches('/')), String::new()),
        local => (
            LOCAL_PLACEHOLDER.to_string(),
            format!(
                "-- {} is a local folder and Athena reads S3 only: copy it (aws s3 sync {} {LOCAL_PLACEHOLDER})\n-- and replace {LOCAL_PLACEHOLDER} below with where it went.\n",
                local.display(),
                local.display()
            ),
        ),
    };
    let layout = FileLayout::new(schema, spec);
    let columns = layout.file_columns();
    for (name, _) in &columns {
        if RESERVED_WORDS.contains(&name.as_str()) {
            return Err(DdlError::Reserved(name.clone()));
        }
    }
    check_table_name(&opts.table)?;
    let mut ddl = note;
    ddl.push_str(&format!("CREATE EXTERNAL TABLE IF NOT EXISTS {} (\n", opts.table));
    let cols: Vec<String> = columns.iter().map(|(n, t)| format!("  {} {t}", quote(n))).collect();
    ddl.push_str(&cols.join(",\n"));
    ddl.push_str("\n)\n");
    if !spec.fields.is_empty() {
        let keys: Vec<String> = spec.fields.iter().map(|f| format!("{} string", quote(&f.name))).collect();
        ddl.push_str(&format!("PARTITIONED BY ({})\n", keys.join(", ")));
    }
    ddl.push_str(&format!("STORED AS PARQUET\nLOCATION '{location}'\n"));
    let mut props = vec![("parquet.compression".to_string(), "ZSTD".to_string())];
    if opts.projection && !spec.fields.is_empty() {
        props.push(("projection.enabled".into(), "true".into()));
        for f in &spec.fields {
            let key = |k: &str| format!("projection.{}.{k}", f.name);
            let y = opts.first_year;
            match f.transform {
                Transform::Year => {
                    props.push((key("type"), "integer".into()));
                    props.push((key("range"), format!("{y},2100")));
                }
                Transform::Month | Transform::Day | Transform::Hour => {
                    let (format, unit) = match f.transform {
                        Transform::Month => ("yyyy-MM", "MONTHS"),
                        Transform::Day => ("yyyy-MM-dd", "DAYS"),
                        _ => ("yyyy-MM-dd-HH", "HOURS"),
                    };
                    let start = match f.transform {
                        Transform::Month => format!("{y}-01"),
                        Transform::Day => format!("{y}-01-01"),
                        _ => format!("{y}-01-01-00"),
                    };
                    props.push((key("type"), "date".into()));
                    props.push((key("format"), format.into()));
                    props.push((key("range"), format!("{start},NOW")));
                    props.push((key("interval"), "1".into()));
                    props.push((key("interval.unit"), unit.into()));
                }
                Transform::Identity => match opts.enum_values.iter().find(|(k, _)| k == &f.name) {
                    Some((_, values)) if !values.is_empty() => {
                        props.push((key("type"), "enum".into()));
                        props.push((key("values"), values.join(",")));
                    }
                    _ => props.push((key("type"), "injected".into())),
                },
            }
        }
        let template: Vec<String> = spec.fields.iter().map(|f| format!("{0}=${{{0}}}", f.name)).collect();
        props.push(("storage.location.template".into(), format!("{location}{}/", template.join("/"))));
    }
    let props: Vec<String> = props.iter().map(|(k, v)| format!("  '{k}'='{}'", v.replace('\'', "''"))).collect();
    ddl.push_str(&format!("TBLPROPERTIES (\n{}\n);\n", props.join(",\n")));
    if !opts.projection && !spec.fields.is_empty() {
        ddl.push_str(&format!("MSCK REPAIR TABLE {};\n", opts.table));
    }
    Ok(ddl)
}

/// The LOCATION printed for a lake in a local folder.
pub const LOCAL_PLACEHOLDER: &str = "s3://YOUR-BUCKET/YOUR-PREFIX/";

fn check_table_name(table: &str) -> Result<(), DdlError> {
    let valid = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    match table.split_once('.') {
        Some((db, t)) if valid(db) && valid(t) => Ok(()),
        _ => Err(DdlError::TableName(table.into())),
    }
}

/// `ALTER TABLE ... ADD COLUMNS` for columns a schema change added (Athena matches Parquet columns by name, so the
/// older files read them as NULL). Path columns never change, so these are always file columns.
pub fn add_columns(table: &str, fields: &[&crate::schema::Field]) -> Result<String, DdlError> {
    check_table_name(table)?;
    if let Some(f) = fields.iter().find(|f| RESERVED_WORDS.contains(&f.name.as_str())) {
        return Err(DdlError::Reserved(f.name.clone()));
    }
    let cols: Vec<String> = fields.iter().map(|f| format!("{} {}", quote(&f.name), f.ty.athena_name())).collect();
    Ok(format!("ALTER TABLE {} ADD COLUMNS ({});\n", table, cols.join(", ")))
}

/// Ready-to-run queries for a lake of daily bars: `(title, SQL)`. They filter on the partition keys (so Athena
/// reads only matching partitions) and use only functions Athena (Trino) and DuckDB share, so the proto-tests run
/// the very same text in DuckDB. `None` when the schema lacks a key, a date event time or a `close` column.
pub fn reference_queries(
    schema: &Schema,
    spec: &PartitionSpec,
    table: &str,
    symbol: &str,
    year: i32,
) -> Option<Vec<(String, String)>> {
    let key = schema.key.as_deref()?;
    let day = schema
        .event_time
        .as_deref()
        .filter(|t| schema.field(t).is_some_and(|f| f.ty == crate::schema::ColumnType::Date))?;
    schema.field("close")?;
    let event = schema.index_of(day)?;
    let mut by_year = String::new();
    let mut by_range = String::new();
    for f in spec.fields.iter().filter(|f| f.source == event) {
        match f.transform {
            Transform::Year => {
                by_year = format!("{} = '{year}' AND ", f.name);
                by_range = format!("{} IN ('{}', '{year}') AND ", f.name, year - 1);
            }
            Transform::Month => {
                by_year = format!("{} BETWEEN '{year}-01' AND '{year}-12' AND ", f.name);
                by_range = format!("{} BETWEEN '{}-07' AND '{year}-06' AND ", f.name, year - 1);
            }
            _ => {}
        }
    }
    let sym = symbol.replace('\'', "''");
    Some(vec![
        (
            format!("latest close per {key} in {year}"),
            format!(
                "SELECT {key}, max_by(close, {day}) AS last_close, max({day}) AS last_day\nFROM {table}\nWHERE {by_year}{day} BETWEEN DATE '{year}-01-01' AND DATE '{year}-12-31'\nGROUP BY {key}\nORDER BY {key}"
            ),
        ),
        (
            format!("monthly average close of {symbol}, {}-07 to {year}-06", year - 1),
            format!(
                "SELECT date_trunc('month', {day}) AS month, avg(close) AS avg_close, count(*) AS days\nFROM {table}\nWHERE {by_range}{key} = '{sym}' AND {day} BETWEEN DATE '{}-07-01' AND DATE '{year}-06-30'\nGROUP BY 1\nORDER BY 1",
                year - 1
            ),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(projection: bool) -> TableOptions {
        TableOptions {
            table: "markets.indices".into(),
            location: LakeUrl::parse("s3://lake/prices").unwrap(),
            projection,
            enum_values: vec![],
            first_year: 1965,
        }
    }

    #[test]
    fn indices_default_layout_golden() {
        let s = Schema::indices();
        let spec = PartitionSpec::parse("year(trade_date)", &s).unwrap();
        let want = "CREATE EXTERNAL TABLE IF NOT EXISTS markets.indices (
  `symbol` string,
  `trade_date` date,
  `open` double,
  `high` double,
  `low` double,
  `close` double,
  `adj_close` double,
  `volume` bigint,
  `close_usd` double,
  `kafka_partition` int,
  `kafka_offset` bigint,
  `kafka_timestamp` timestamp
)
PARTITIONED BY (`year` string)
STORED AS PARQUET
LOCATION 's3://lake/prices/'
TBLPROPERTIES (
  'parquet.compression'='ZSTD',
  'projection.enabled'='true',
  'projection.year.type'='integer',
  'projection.year.range'='1965,2100',
  'storage.location.template'='s3://lake/prices/year=${year}/'
);
";
        assert_eq!(create_table(&s, &spec, &opts(true)).unwrap(), want);
    }

    #[test]
    fn ticks_default_layout_golden() {
        let s = Schema::ticks();
        let spec = PartitionSpec::parse("day(ts),symbol", &s).unwrap();
        let mut o = opts(true);
        o.table = "markets.ticks".into();
        o.location = LakeUrl::parse("s3://lake/ticks").unwrap();
        o.first_year = 2020;
        let want = "CREATE EXTERNAL TABLE IF NOT EXISTS markets.ticks (
  `ts` timestamp,
  `price` double,
  `size` bigint,
  `kafka_partition` int,
  `kafka_offset` bigint,
  `kafka_timestamp` timestamp
)
PARTITIONED BY (`dt` string, `symbol` string)
STORED AS PARQUET
LOCATION 's3://lake/ticks/'
TBLPROPERTIES (
  'parquet.compression'='ZSTD',
  'projection.enabled'='true',
  'projection.dt.type'='date',
  'projection.dt.format'='yyyy-MM-dd',
  'projection.dt.range'='2020-01-01,NOW',
  'projection.dt.interval'='1',
  'projection.dt.interval.unit'='DAYS',
  'projection.symbol.type'='injected',
  'storage.location.template'='s3://lake/ticks/dt=${dt}/symbol=${symbol}/'
);
";
        assert_eq!(create_table(&s, &spec, &o).unwrap(), want);
    }

    #[test]
    fn custom_spec_without_projection_golden() {
        let s = Schema::indices();
        let spec = PartitionSpec::parse("m=month(trade_date),symbol", &s).unwrap();
        let mut o = opts(false);
        o.table = "markets.bars".into();
        o.location = LakeUrl::parse("s3://lake/bars").unwrap();
        let want = "CREATE EXTERNAL TABLE IF NOT EXISTS markets.bars (
  `trade_date` date,
  `open` double,
  `high` double,
  `low` double,
  `close` double,
  `adj_close` double,
  `volume` bigint,
  `close_usd` double,
  `kafka_partition` int,
  `kafka_offset` bigint,
  `kafka_timestamp` timestamp
)
PARTITIONED BY (`m` string, `symbol` string)
STORED AS PARQUET
LOCATION 's3://lake/bars/'
TBLPROPERTIES (
  'parquet.compression'='ZSTD'
);
MSCK REPAIR TABLE markets.bars;
";
        assert_eq!(create_table(&s, &spec, &o).unwrap(), want);
    }

    #[test]
    fn ticks_day_and_symbol_with_and_without_projection() {
        let s = Schema::ticks();
        let spec = PartitionSpec::parse("day(ts),symbol", &s).unwrap();
        let ddl = create_table(&s, &spec, &opts(true)).unwrap();
        assert!(ddl.contains("PARTITIONED BY (`dt` string, `symbol` string)"));
        assert!(!ddl.contains("`symbol` string,\n"), "identity keys are not file columns:\n{ddl}");
        assert!(
            ddl.contains("'projection.dt.format'='yyyy-MM-dd'")
                && ddl.contains("'projection.dt.range'='1965-01-01,NOW'")
        );
        assert!(ddl.contains("'projection.symbol.type'='injected'"));
        assert!(ddl.contains("'storage.location.template'='s3://lake/prices/dt=${dt}/symbol=${symbol}/'"));
        let mut o = opts(true);
        o.enum_values = vec![("symbol".into(), vec!["AAPL".into(), "MSFT".into()])];
        assert!(create_table(&s, &spec, &o).unwrap().contains("'projection.symbol.values'='AAPL,MSFT'"));
        let plain = create_table(&s, &spec, &opts(false)).unwrap();
        assert!(!plain.contains("projection") && plain.ends_with("MSCK REPAIR TABLE markets.indices;\n"));
    }

    #[test]
    fn enum_values_come_from_the_object_keys() {
        let s = Schema::ticks();
        let spec = PartitionSpec::parse("day(ts),symbol", &s).unwrap();
        let keys: Vec<String> = [
            "dt=2024-01-02/symbol=AAPL/t-0-1.parquet",
            "dt=2024-01-02/symbol=BRK B/t-0-2.parquet",
            "dt=2024-01-03/symbol=AAPL/t-0-3.parquet",
            "_ticklake/checkpoints/t/0.json",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            identity_values(&spec, &keys),
            vec![("symbol".to_string(), vec!["AAPL".to_string(), "BRK B".to_string()])]
        );
        let mut odd = keys.clone();
        odd.push("dt=2024-01-03/symbol=A%2FB/t-0-4.parquet".into());
        assert!(identity_values(&spec, &odd).is_empty(), "A/B cannot be projected literally: injected");
    }

    #[test]
    fn reference_queries_filter_on_the_partitions() {
        let s = Schema::indices();
        let spec = PartitionSpec::parse("year(trade_date)", &s).unwrap();
        let q = reference_queries(&s, &spec, "markets.indices", "^GSPC", 2021).unwrap();
        assert!(q[0].1.contains("WHERE year = '2021' AND trade_date BETWEEN"), "{}", q[0].1);
        assert!(q[1].1.contains("year IN ('2020', '2021') AND symbol = '^GSPC'"), "{}", q[1].1);
        assert!(reference_queries(&Schema::ticks(), &spec, "t", "A", 2021).is_none());
    }

    #[test]
    fn bad_names_and_locations_are_refused() {
        let s = Schema::indices();
        let spec = PartitionSpec::default();
        let mut o = opts(true);
        o.table = "Indices".into();
        assert!(matches!(create_table(&s, &spec, &o), Err(DdlError::TableName(_))));
        let mut o = opts(true);
        o.location = LakeUrl::parse("./lake").unwrap();
        let ddl = create_table(&s, &spec, &o).unwrap();
        assert!(ddl.starts_with("-- ./lake is a local folder"), "{ddl}");
        assert!(ddl.contains(&format!("LOCATION '{LOCAL_PLACEHOLDER}'")), "{ddl}");
    }

    #[test]
    fn added_columns_become_one_alter_table() {
        let f = crate::schema::Field::new("exchange_value", "Exchange", crate::schema::ColumnType::String);
        let g = crate::schema::Field::new("bid", "bid", crate::schema::ColumnType::Double);
        assert_eq!(
            add_columns("m.t", &[&f, &g]).unwrap(),
            "ALTER TABLE m.t ADD COLUMNS (`exchange_value` string, `bid` double);\n"
        );
        assert!(matches!(add_columns("T", &[&f]), Err(DdlError::TableName(_))));
    }
}
