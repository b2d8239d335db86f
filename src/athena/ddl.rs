//! The DDL text: `CREATE EXTERNAL TABLE` with partition projection, and `ALTER TABLE ... ADD COLUMNS`. Built from
//! the same `Schema`, `PartitionSpec` and `FileLayout` the sink writes with, so it cannot drift from the files.

use crate::lake::LakeUrl;
use crate::lake::layout::FileLayout;
use crate::lake::partition::{PartitionSpec, Transform};
use crate::schema::{RESERVED_WORDS, Schema};

/// What the DDL needs beyond the schema and spec.
#[derive(Debug, Clone)]
pub struct TableOptions {
    /// `db.table`.
    pub table: String,
    pub location: LakeUrl,
    pub projection: bool,
    /// Values of identity keys for an `enum` projection, by key name: given only when the table is kept current
    /// (`athena --apply`, rerun as the lake grows); a printed DDL projects identity keys as `injected`, since an
    /// enum from today's listing hides every value that arrives tomorrow.
    pub enum_values: Vec<(String, Vec<String>)>,
    /// The first value of each time key in the lake (its own format: `2020`, `2024-03`, `2024-03-04`,
    /// `2024-03-04-09`), where projection ranges start: a range from 1900 makes an hourly key span a million hours.
    pub range_starts: Vec<(String, String)>,
    /// Where ranges start for a key the lake has no value of yet (`--first-year`, else this year).
    pub first_year: i32,
}

/// The table as Athena's catalog holds it, from which both the DDL and the Glue API input are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDef {
    /// A comment to print above the DDL (a local lake's placeholder location).
    pub note: String,
    /// `database.table`.
    pub table: String,
    /// File columns (name, Athena type), in file order.
    pub columns: Vec<(String, String)>,
    /// Partition keys (always `string`: projection substitutes them into paths).
    pub partition_keys: Vec<String>,
    /// With a trailing `/`.
    pub location: String,
    /// TBLPROPERTIES, in order.
    pub properties: Vec<(String, String)>,
    pub projection: bool,
}

/// The first value of each time key (`year()`, `month()`, `day()`, `hour()`) found in the lake's object keys:
/// where its projection range starts. Hive values of these keys sort as text in time order (zero-padded).
pub fn range_starts(spec: &PartitionSpec, object_keys: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for f in spec.fields.iter().filter(|f| f.transform != Transform::Identity) {
        let prefix = format!("{}=", f.name);
        let first = object_keys
            .iter()
            .filter(|k| !k.starts_with("_ticklake/"))
            .filter_map(|k| k.split('/').find_map(|seg| seg.strip_prefix(&prefix)))
            .map(crate::lake::partition::unescape_hive)
            .min();
        if let Some(v) = first {
            out.push((f.name.clone(), v));
        }
    }
    out
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DdlError {
    #[error("--table '{0}' must be database.table, lower-case letters, digits and _")]
    TableName(String),
    #[error("column '{0}' is an Athena reserved word")]
    Reserved(String),
}

/// What `ticklake athena` was asked for.
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
    let def = table_def(schema, spec, opts)?;
    let mut ddl = def.note.clone();
    ddl.push_str(&format!("CREATE EXTERNAL TABLE IF NOT EXISTS {} (\n", def.table));
    let cols: Vec<String> = def.columns.iter().map(|(n, t)| format!("  {} {t}", quote(n))).collect();
    ddl.push_str(&cols.join(",\n"));
    ddl.push_str("\n)\n");
    if !def.partition_keys.is_empty() {
        let keys: Vec<String> = def.partition_keys.iter().map(|k| format!("{} string", quote(k))).collect();
        ddl.push_str(&format!("PARTITIONED BY ({})\n", keys.join(", ")));
    }
    ddl.push_str(&format!("STORED AS PARQUET\nLOCATION '{}'\n", def.location));
    let props: Vec<String> =
        def.properties.iter().map(|(k, v)| format!("  '{k}'='{}'", v.replace('\'', "''"))).collect();
    ddl.push_str(&format!("TBLPROPERTIES (\n{}\n);\n", props.join(",\n")));
    if !def.projection && !def.partition_keys.is_empty() {
        ddl.push_str(&format!("MSCK REPAIR TABLE {};\n", def.table));
    }
    Ok(ddl)
}

/// The table definition (see `TableDef`): columns, partition keys, location and properties with projection.
pub fn table_def(schema: &Schema, spec: &PartitionSpec, opts: &TableOptions) -> Result<TableDef, DdlError> {
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
    let mut props = vec![("parquet.compression".to_string(), "ZSTD".to_string())];
    let projection = opts.projection && !spec.fields.is_empty();
    if projection {
        props.push(("projection.enabled".into(), "true".into()));
        for f in &spec.fields {
            let key = |k: &str| format!("projection.{}.{k}", f.name);
            let y = opts.first_year;
            let first = opts.range_starts.iter().find(|(k, _)| k == &f.name).map(|(_, v)| v.clone());
            match f.transform {
                Transform::Year => {
                    props.push((key("type"), "integer".into()));
                    props.push((key("range"), format!("{},2100", first.unwrap_or_else(|| y.to_string()))));
                }
                Transform::Month | Transform::Day | Transform::Hour => {
                    let (format, unit, start) = match f.transform {
                        Transform::Month => ("yyyy-MM", "MONTHS", format!("{y}-01")),
                        Transform::Day => ("yyyy-MM-dd", "DAYS", format!("{y}-01-01")),
                        _ => ("yyyy-MM-dd-HH", "HOURS", format!("{y}-01-01-00")),
                    };
                    props.push((key("type"), "date".into()));
                    props.push((key("format"), format.into()));
                    props.push((key("range"), format!("{},NOW", first.unwrap_or(start))));
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
    Ok(TableDef {
        note,
        table: opts.table.clone(),
        columns: columns.into_iter().map(|(n, t)| (n, t.to_string())).collect(),
        partition_keys: spec.fields.iter().map(|f| f.name.clone()).collect(),
        location,
        properties: props,
        projection,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(projection: bool) -> TableOptions {
        TableOptions {
            table: "markets.indices".into(),
            location: LakeUrl::parse("s3://lake/prices").unwrap(),
            projection,
            enum_values: vec![],
            range_starts: vec![],
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
    fn ranges_start_at_the_lakes_first_partition() {
        let s = Schema::ticks();
        let spec = PartitionSpec::parse("h=hour(ts),symbol", &s).unwrap();
        let keys: Vec<String> =
            ["h=2024-03-04-10/symbol=A/x.parquet", "h=2024-03-04-09/symbol=B/y.parquet", "_ticklake/table.toml"]
                .map(String::from)
                .to_vec();
        let starts = range_starts(&spec, &keys);
        assert_eq!(starts, vec![("h".to_string(), "2024-03-04-09".to_string())]);
        let mut o = opts(true);
        o.range_starts = starts;
        let ddl = create_table(&s, &spec, &o).unwrap();
        assert!(ddl.contains("'projection.h.range'='2024-03-04-09,NOW'"), "{ddl}");
        assert!(ddl.contains("'projection.symbol.type'='injected'"), "no enum unless kept current: {ddl}");
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
