//! The AWS Glue Data Catalog as an Iceberg catalog, over ticklake's Glue client (`crate::aws::glue`): a table is a Glue table of
//! type ICEBERG whose `metadata_location` parameter names its current metadata file, and a commit writes the next
//! metadata file, then moves that parameter with Glue's `VersionId` as the optimistic lock (a concurrent commit gets
//! `ConcurrentModificationException`, which the Iceberg crates retry from a fresh load). This is how Iceberg's Java
//! and Python Glue catalogs keep a table, so Athena, Spark and pyiceberg read what ticklake commits.
//!
//! ticklake's own rather than `iceberg-catalog-glue`: that crate builds its file IO on OpenDAL and reqsign
//! unconditionally (a second S3 client and credential chain, about 3 MB of the binary) even when, as here, every
//! file goes through ticklake's store (`storage`) and every credential through the SDK's one chain (`crate::aws`).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use iceberg::io::{FileIO, FileIOBuilder};
use iceberg::spec::{TableMetadata, TableMetadataBuilder};
use iceberg::table::Table;
use iceberg::{
    Catalog, Error, ErrorKind, MetadataLocation, Namespace, NamespaceIdent, Result, Runtime, TableCommit,
    TableCreation, TableIdent,
};

use crate::aws::glue::{Column, Database, Glue, GlueError, StorageDescriptor, Table as GlueTable};
use crate::lake::S3Options;

/// The Glue table parameters Iceberg's catalogs agree on.
pub const TABLE_TYPE: &str = "table_type";
pub const ICEBERG: &str = "ICEBERG";
pub const METADATA_LOCATION: &str = "metadata_location";
pub const PREVIOUS_METADATA_LOCATION: &str = "previous_metadata_location";
/// A Glue database's location, as a namespace property (the default parent of its tables).
const LOCATION_URI: &str = "location_uri";

/// A Glue client on the process's credential chain; the endpoint is `AWS_ENDPOINT_URL_GLUE`, else
/// `AWS_ENDPOINT_URL` (unset for AWS), the region ticklake's S3 one (`--region`, else the SDK's own lookup).
pub async fn client(s3: &S3Options) -> std::result::Result<Glue, GlueError> {
    Glue::new(s3.region.as_deref(), s3.glue_endpoint.as_deref()).await
}

/// An Iceberg type as Hive (Glue, Athena) names it.
pub fn hive_type(t: &iceberg::spec::Type) -> String {
    use iceberg::spec::{PrimitiveType as P, Type};
    match t {
        Type::Primitive(p) => match p {
            P::Boolean => "boolean",
            P::Int => "int",
            P::Long => "bigint",
            P::Float => "float",
            P::Double => "double",
            P::Date => "date",
            P::Timestamp | P::Timestamptz | P::TimestampNs | P::TimestamptzNs => "timestamp",
            P::String => "string",
            P::Binary | P::Fixed(_) | P::Uuid => "binary",
            P::Decimal { precision, scale } => return format!("decimal({precision},{scale})"),
            P::Time => "string",
        }
        .to_string(),
        _ => "string".to_string(),
    }
}

/// The Glue table of type ICEBERG for `meta` at `metadata_location`: its current schema's columns (with the field
/// ids and optionality Iceberg's own Glue catalogs record), its location, and the previous metadata file if any.
pub fn iceberg_table_input(
    name: &str,
    metadata_location: &str,
    meta: &TableMetadata,
    previous: Option<&str>,
) -> GlueTable {
    let columns = meta
        .current_schema()
        .as_struct()
        .fields()
        .iter()
        .map(|f| {
            let mut c = Column::new(&f.name, &hive_type(&f.field_type));
            c.parameters.insert("iceberg.field.id".into(), f.id.to_string());
            c.parameters.insert("iceberg.field.optional".into(), (!f.required).to_string());
            c.parameters.insert("iceberg.field.current".into(), "true".into());
            c
        })
        .collect();
    let sd = StorageDescriptor { columns, location: Some(meta.location().to_string()), ..StorageDescriptor::default() };
    let mut input = GlueTable {
        name: name.to_string(),
        table_type: Some("EXTERNAL_TABLE".into()),
        storage_descriptor: Some(sd),
        ..GlueTable::default()
    };
    input.parameters.insert(TABLE_TYPE.into(), ICEBERG.into());
    input.parameters.insert(METADATA_LOCATION.into(), metadata_location.into());
    if let Some(p) = previous {
        input.parameters.insert(PREVIOUS_METADATA_LOCATION.into(), p.into());
    }
    input
}

/// A Glue error as an Iceberg one (retried already if transient: the caller may try again later).
fn glue_error(what: &str, e: GlueError) -> Error {
    let retryable = e.transient;
    Error::new(ErrorKind::Unexpected, format!("glue {what}: {e}")).with_retryable(retryable)
}

fn database(ns: &NamespaceIdent) -> Result<&str> {
    match ns.as_ref().as_slice() {
        [db] if !db.is_empty() => Ok(db),
        _ => Err(Error::new(ErrorKind::DataInvalid, format!("{ns:?}: Glue namespaces are one database name"))),
    }
}

/// The Glue Data Catalog as an Iceberg catalog; files through `file_io` (ticklake's store).
pub struct GlueCatalog {
    glue: Glue,
    warehouse: String,
    file_io: FileIO,
    runtime: Runtime,
}

impl std::fmt::Debug for GlueCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlueCatalog").field("warehouse", &self.warehouse).finish_non_exhaustive()
    }
}

impl GlueCatalog {
    pub async fn new(s3: &S3Options, warehouse: String, storage: Arc<dyn iceberg::io::StorageFactory>) -> Result<Self> {
        Ok(GlueCatalog {
            glue: client(s3).await.map_err(|e| glue_error("connecting", e))?,
            warehouse,
            file_io: FileIOBuilder::new(storage).build(),
            runtime: Runtime::try_current()?,
        })
    }

    fn table(&self, ident: TableIdent, metadata_location: String, metadata: TableMetadata) -> Result<Table> {
        Table::builder()
            .file_io(self.file_io.clone())
            .metadata_location(metadata_location)
            .metadata(metadata)
            .identifier(ident)
            .runtime(self.runtime.clone())
            .build()
    }

    /// The Glue table, `None` if missing.
    async fn glue_table(&self, ident: &TableIdent) -> Result<Option<GlueTable>> {
        let db = database(ident.namespace())?;
        self.glue.get_table(db, ident.name()).await.map_err(|e| glue_error(&format!("get-table {ident}"), e))
    }

    /// The table and the Glue `VersionId` it was read at (the lock of the next commit).
    async fn load(&self, ident: &TableIdent) -> Result<(Table, Option<String>)> {
        let Some(t) = self.glue_table(ident).await? else {
            return Err(Error::new(ErrorKind::TableNotFound, format!("no Glue table {ident}")));
        };
        let location = t.parameters.get(METADATA_LOCATION).ok_or_else(|| {
            Error::new(
                ErrorKind::DataInvalid,
                format!("Glue table {ident} is not an Iceberg table (no {METADATA_LOCATION})"),
            )
        })?;
        let metadata = TableMetadata::read_from(&self.file_io, location).await?;
        Ok((self.table(ident.clone(), location.clone(), metadata)?, t.version_id.clone()))
    }

    async fn create_glue_table(&self, db: &str, input: GlueTable, ident: &TableIdent) -> Result<()> {
        match self.glue.create_table(db, &input).await {
            Ok(()) => Ok(()),
            Err(e) if e.already_exists() => {
                Err(Error::new(ErrorKind::TableAlreadyExists, format!("Glue table {ident} exists")))
            }
            Err(e) => Err(glue_error(&format!("create-table {ident}"), e)),
        }
    }
}

#[async_trait]
impl Catalog for GlueCatalog {
    /// Glue has one level of databases.
    async fn list_namespaces(&self, parent: Option<&NamespaceIdent>) -> Result<Vec<NamespaceIdent>> {
        if parent.is_some() {
            return Ok(Vec::new());
        }
        let dbs = self.glue.get_databases().await.map_err(|e| glue_error("get-databases", e))?;
        Ok(dbs.into_iter().map(|d| NamespaceIdent::new(d.name)).collect())
    }

    async fn create_namespace(&self, ns: &NamespaceIdent, properties: HashMap<String, String>) -> Result<Namespace> {
        let db = database(ns)?;
        let mut input = Database { name: db.to_string(), ..Database::default() };
        for (k, v) in &properties {
            match k.as_str() {
                LOCATION_URI => input.location_uri = Some(v.clone()),
                "description" => input.description = Some(v.clone()),
                _ => drop(input.parameters.insert(k.clone(), v.clone())),
            }
        }
        match self.glue.create_database(&input).await {
            Ok(()) => Ok(Namespace::with_properties(ns.clone(), properties)),
            Err(e) if e.already_exists() => {
                Err(Error::new(ErrorKind::NamespaceAlreadyExists, format!("Glue database {db} exists")))
            }
            Err(e) => Err(glue_error(&format!("create-database {db}"), e)),
        }
    }

    async fn get_namespace(&self, ns: &NamespaceIdent) -> Result<Namespace> {
        let db = database(ns)?;
        let found = self.glue.get_database(db).await.map_err(|e| glue_error(&format!("get-database {db}"), e))?;
        let Some(d) = found else {
            return Err(Error::new(ErrorKind::NamespaceNotFound, format!("no Glue database {db}")));
        };
        let mut props: HashMap<String, String> = d.parameters.into_iter().collect();
        if let Some(l) = d.location_uri {
            props.insert(LOCATION_URI.to_string(), l);
        }
        Ok(Namespace::with_properties(ns.clone(), props))
    }

    async fn namespace_exists(&self, ns: &NamespaceIdent) -> Result<bool> {
        match self.get_namespace(ns).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NamespaceNotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn update_namespace(&self, ns: &NamespaceIdent, _properties: HashMap<String, String>) -> Result<()> {
        Err(Error::new(ErrorKind::FeatureUnsupported, format!("{ns:?}: ticklake does not change Glue databases")))
    }

    async fn drop_namespace(&self, ns: &NamespaceIdent) -> Result<()> {
        let db = database(ns)?;
        self.glue.delete_database(db).await.map_err(|e| glue_error(&format!("delete-database {db}"), e))
    }

    /// The Iceberg tables of a database (Glue also holds hive ones: skipped).
    async fn list_tables(&self, ns: &NamespaceIdent) -> Result<Vec<TableIdent>> {
        let db = database(ns)?;
        let tables = self.glue.get_tables(db).await.map_err(|e| glue_error(&format!("get-tables {db}"), e))?;
        Ok(tables
            .into_iter()
            .filter(|t| t.parameters.get(TABLE_TYPE).is_some_and(|v| v.eq_ignore_ascii_case(ICEBERG)))
            .map(|t| TableIdent::new(ns.clone(), t.name))
            .collect())
    }

    /// Writes the first metadata file under the table's location (given, else the database's location or
    /// `<warehouse>/<db>.db/<table>`, as Iceberg's Glue catalogs place it), then creates the Glue table.
    async fn create_table(&self, ns: &NamespaceIdent, mut creation: TableCreation) -> Result<Table> {
        let db = database(ns)?;
        let name = creation.name.clone();
        if creation.location.is_none() {
            let ns_props = self.get_namespace(ns).await?;
            creation.location = Some(match ns_props.properties().get(LOCATION_URI) {
                Some(l) => format!("{}/{name}", l.trim_end_matches('/')),
                None => format!("{}/{db}.db/{name}", self.warehouse.trim_end_matches('/')),
            });
        }
        let location = creation.location.clone().unwrap_or_default();
        let metadata = TableMetadataBuilder::from_table_creation(creation)?.build()?.metadata;
        let metadata_location = MetadataLocation::new_with_metadata(location, &metadata);
        metadata.write_to(&self.file_io, &metadata_location).await?;
        let at = metadata_location.to_string();
        let ident = TableIdent::new(ns.clone(), name.clone());
        let input = iceberg_table_input(&name, &at, &metadata, None);
        self.create_glue_table(db, input, &ident).await?;
        self.table(ident, at, metadata)
    }

    async fn load_table(&self, ident: &TableIdent) -> Result<Table> {
        Ok(self.load(ident).await?.0)
    }

    async fn drop_table(&self, ident: &TableIdent) -> Result<()> {
        let db = database(ident.namespace())?;
        match self.glue.delete_table(db, ident.name()).await {
            Ok(()) => Ok(()),
            Err(e) if e.not_found() => Err(Error::new(ErrorKind::TableNotFound, format!("no Glue table {ident}"))),
            Err(e) => Err(glue_error(&format!("delete-table {ident}"), e)),
        }
    }

    async fn purge_table(&self, ident: &TableIdent) -> Result<()> {
        let table = self.load_table(ident).await?;
        self.drop_table(ident).await?;
        iceberg::drop_table_data(&table).await
    }

    async fn table_exists(&self, ident: &TableIdent) -> Result<bool> {
        Ok(self.glue_table(ident).await?.is_some())
    }

    async fn rename_table(&self, src: &TableIdent, _dest: &TableIdent) -> Result<()> {
        Err(Error::new(
            ErrorKind::FeatureUnsupported,
            format!(
                "{src}: Glue cannot rename a table; ticklake does not copy one (use Athena's ALTER TABLE ... RENAME or a new --table)"
            ),
        ))
    }

    /// A Glue table of type ICEBERG at an existing metadata file.
    async fn register_table(&self, ident: &TableIdent, metadata_location: String) -> Result<Table> {
        let db = database(ident.namespace())?;
        let metadata = TableMetadata::read_from(&self.file_io, &metadata_location).await?;
        let input = iceberg_table_input(ident.name(), &metadata_location, &metadata, None);
        self.create_glue_table(db, input, ident).await?;
        self.table(ident.clone(), metadata_location, metadata)
    }

    /// Applies the commit to the table as Glue holds it now, writes the next metadata file and moves the Glue
    /// table to it under the `VersionId` read (a concurrent commit in between: a retryable conflict).
    async fn update_table(&self, commit: TableCommit) -> Result<Table> {
        let ident = commit.identifier().clone();
        let db = database(ident.namespace())?.to_string();
        let (current, version) = self.load(&ident).await?;
        let previous = current.metadata_location_result()?.to_string();
        let staged = commit.apply(current)?;
        let at = staged.metadata_location_result()?.to_string();
        staged.metadata().write_to(staged.file_io(), &MetadataLocation::from_str(&at)?).await?;
        let input = iceberg_table_input(ident.name(), &at, staged.metadata(), Some(&previous));
        // No archived table version per commit (SkipArchive): a live feed commits thousands of times a day, and
        // Glue keeps at most 100,000 versions of a table (the snapshots are Iceberg's history).
        match self.glue.update_table(&db, &input, version.as_deref(), true).await {
            Ok(()) => Ok(staged),
            Err(e) if e.conflict() => Err(Error::new(
                ErrorKind::CatalogCommitConflicts,
                format!("Glue table {ident} moved during the commit (another writer)"),
            )
            .with_retryable(true)),
            Err(e) if e.not_found() => Err(Error::new(ErrorKind::TableNotFound, format!("no Glue table {ident}"))),
            Err(e) => Err(glue_error(&format!("update-table {ident}"), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iceberg::spec::{NestedField, PrimitiveType, Schema, Type};

    #[test]
    fn a_table_input_names_the_metadata_and_the_columns_as_iceberg_glue_catalogs_do() {
        let schema = Schema::builder()
            .with_fields(vec![
                NestedField::required(1, "symbol", Type::Primitive(PrimitiveType::String)).into(),
                NestedField::optional(2, "close", Type::Primitive(PrimitiveType::Double)).into(),
                NestedField::required(3, "ts", Type::Primitive(PrimitiveType::Timestamptz)).into(),
                NestedField::optional(4, "volume", Type::Primitive(PrimitiveType::Long)).into(),
            ])
            .build()
            .unwrap();
        let creation =
            TableCreation::builder().name("t".into()).location("s3://b/w/m.db/t".into()).schema(schema).build();
        let meta = TableMetadataBuilder::from_table_creation(creation).unwrap().build().unwrap().metadata;
        let input = iceberg_table_input("t", "s3://b/w/m.db/t/metadata/1.json", &meta, Some("s3://b/0.json"));
        let params = &input.parameters;
        assert_eq!(params[TABLE_TYPE], "ICEBERG");
        assert_eq!(params[METADATA_LOCATION], "s3://b/w/m.db/t/metadata/1.json");
        assert_eq!(params[PREVIOUS_METADATA_LOCATION], "s3://b/0.json");
        let sd = input.storage_descriptor.as_ref().unwrap();
        assert_eq!(sd.location.as_deref(), Some("s3://b/w/m.db/t"));
        let cols: Vec<(&str, &str, &str)> = sd
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.r#type.as_deref().unwrap(), c.parameters["iceberg.field.optional"].as_str()))
            .collect();
        assert_eq!(
            cols,
            [
                ("symbol", "string", "false"),
                ("close", "double", "true"),
                ("ts", "timestamp", "false"),
                ("volume", "bigint", "true")
            ]
        );
        assert_eq!(sd.columns[2].parameters["iceberg.field.id"], "3");
    }

    #[test]
    fn glue_namespaces_are_one_level() {
        assert_eq!(database(&NamespaceIdent::new("market".into())).unwrap(), "market");
        assert!(database(&NamespaceIdent::from_strs(["a", "b"]).unwrap()).is_err());
    }
}
