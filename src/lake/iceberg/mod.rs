//! Apache Iceberg tables (`--format iceberg`): which catalog, which table, the storage the Iceberg crates write
//! through, and a catalog wrapper that checks Kafka offsets on the very table state a commit is applied to.
//!
//! `spec` maps ticklake's schema, partitioning and sort order to Iceberg's; `offsets` keeps Kafka offsets in
//! snapshot summaries. The Iceberg crates (`iceberg`, `iceberg-catalog-{sql,rest}`, and `glue`, ticklake's Glue catalog over the AWS SDK) write the metadata; data
//! and metadata files go through `storage`, the crates' storage trait over ticklake's own object store.

//!
//! This module's own items are pure (flags, names, offsets) and always built; what needs the Iceberg crates is in
//! `catalog` and `spec`, built with the `iceberg` feature (on by default; the fuzz targets build without it).

#[cfg(feature = "iceberg")]
mod catalog;
#[cfg(feature = "iceberg")]
pub mod glue;
pub mod offsets;
#[cfg(feature = "iceberg")]
pub mod spec;
#[cfg(feature = "iceberg")]
pub mod storage;

#[cfg(feature = "iceberg")]
pub use catalog::*;

use std::path::PathBuf;

use super::LakeUrl;

/// Table properties ticklake sets at creation: the roles of the schema's columns (so a later sink and `ticklake
/// athena` know the key and event-time columns).
pub const PROP_SCHEMA_NAME: &str = "ticklake.schema";
pub const PROP_KEY: &str = "ticklake.key";
pub const PROP_EVENT_TIME: &str = "ticklake.event-time";

/// What a build without the `iceberg` feature says to an Iceberg flag.
pub const NOT_BUILT: &str = "this ticklake was built without Iceberg support (cargo feature `iceberg`, on by default)";

/// The catalog name in a SQL catalog: other tools open the same file as `SqlCatalog("ticklake", uri=...)`.
pub const SQL_CATALOG_NAME: &str = "ticklake";

/// `--catalog`: where the table is registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogUrl {
    /// The AWS Glue Data Catalog (what Athena reads). The AWS SDK's settings apply (`AWS_REGION`,
    /// `AWS_ENDPOINT_URL`, credentials chain).
    Glue,
    /// An SQLite file (the embedded default for local use and tests).
    Sqlite(PathBuf),
    /// An Iceberg REST catalog (S3 Tables, Polaris, Nessie, ...).
    Rest(String),
}

impl CatalogUrl {
    pub fn parse(s: &str) -> Result<CatalogUrl, String> {
        if s == "glue" {
            Ok(CatalogUrl::Glue)
        } else if let Some(p) = s.strip_prefix("sqlite:") {
            let p = p.trim_start_matches("//");
            if p.is_empty() {
                return Err(format!("--catalog '{s}': sqlite: needs a file, e.g. sqlite:./lake/catalog.db"));
            }
            Ok(CatalogUrl::Sqlite(PathBuf::from(p)))
        } else if let Some(u) = s.strip_prefix("rest:") {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(format!("--catalog '{s}': rest: needs an http(s) URL, e.g. rest:https://host/path"));
            }
            Ok(CatalogUrl::Rest(u.to_string()))
        } else {
            Err(format!("--catalog '{s}': expected glue, sqlite:PATH or rest:URL"))
        }
    }

    pub fn describe(&self) -> String {
        match self {
            CatalogUrl::Glue => "glue".into(),
            CatalogUrl::Sqlite(p) => format!("sqlite:{}", p.display()),
            CatalogUrl::Rest(u) => format!("rest:{u}"),
        }
    }
}

/// `--table db.name`: (database, table), one namespace level, as Glue and Athena have.
pub fn table_name(s: &str) -> Result<(String, String), String> {
    let parts: Vec<&str> = s.split('.').collect();
    let ok = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if parts.len() != 2 || !parts.iter().all(|p| ok(p)) {
        return Err(format!(
            "--table '{s}': expected database.table in lower-case letters, digits and _ (Athena and Glue names), e.g. market.indices"
        ));
    }
    Ok((parts[0].to_string(), parts[1].to_string()))
}

/// The warehouse location the Iceberg crates write to: `s3://bucket/prefix` or `file:///absolute/folder`.
pub fn warehouse(lake: &LakeUrl) -> Result<String, String> {
    match lake {
        LakeUrl::S3 { bucket, prefix } => {
            Ok(format!("s3://{bucket}/{}", prefix.trim_end_matches('/')).trim_end_matches('/').to_string())
        }
        LakeUrl::Local(p) => {
            std::fs::create_dir_all(p).map_err(|e| format!("{}: {e}", p.display()))?;
            let abs = std::fs::canonicalize(p).map_err(|e| format!("{}: {e}", p.display()))?;
            Ok(format!("file://{}", abs.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_urls_and_table_names_parse() {
        assert_eq!(CatalogUrl::parse("glue"), Ok(CatalogUrl::Glue));
        assert_eq!(CatalogUrl::parse("sqlite:./lake/c.db"), Ok(CatalogUrl::Sqlite("./lake/c.db".into())));
        assert_eq!(CatalogUrl::parse("rest:https://h/p"), Ok(CatalogUrl::Rest("https://h/p".into())));
        assert!(CatalogUrl::parse("sqlite:").is_err());
        assert!(CatalogUrl::parse("rest:h").is_err());
        assert!(CatalogUrl::parse("hive").unwrap_err().contains("glue, sqlite:PATH or rest:URL"));
        assert_eq!(table_name("market.indices").unwrap(), ("market".into(), "indices".into()));
        for bad in ["indices", "a.b.c", "Market.indices", "m.ind-ices", ".x"] {
            assert!(table_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            warehouse(&LakeUrl::S3 { bucket: "b".into(), prefix: "w/".into() }).unwrap(),
            "s3://b/w".to_string()
        );
        assert_eq!(warehouse(&LakeUrl::S3 { bucket: "b".into(), prefix: "".into() }).unwrap(), "s3://b");
    }
}
