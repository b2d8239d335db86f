//! What needs the Iceberg crates: opening catalogs and tables, and the commit guard.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use iceberg::table::Table;
use iceberg::{
    Catalog, CatalogBuilder, Namespace, NamespaceIdent, Result as IcebergResult, TableCommit, TableCreation, TableIdent,
};

use super::{CatalogUrl, SQL_CATALOG_NAME, offsets, table_name, warehouse};
use crate::lake::{LakeUrl, S3Options};

/// `--table db.name` as a table identifier.
pub fn table_ident(s: &str) -> Result<TableIdent, String> {
    let (db, table) = table_name(s)?;
    TableIdent::from_strs([db, table]).map_err(|e| e.to_string())
}

/// Opens the catalog. Its files (local or S3, per path) go through ticklake's own store (`storage`).
pub async fn open_catalog(url: &CatalogUrl, lake: &LakeUrl, s3: &S3Options) -> Result<Arc<dyn Catalog>, String> {
    let warehouse = warehouse(lake)?;
    let factory = Arc::new(super::storage::LakeStorageFactory::new(s3));
    let mut props = HashMap::new();
    let err = |e: iceberg::Error| format!("opening the {} catalog: {e}", url.describe());
    match url {
        CatalogUrl::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            props.insert(
                iceberg_catalog_sql::SQL_CATALOG_PROP_URI.into(),
                format!("sqlite://{}?mode=rwc", path.display()),
            );
            props.insert(iceberg_catalog_sql::SQL_CATALOG_PROP_WAREHOUSE.into(), warehouse);
            props.insert(iceberg_catalog_sql::SQL_CATALOG_PROP_BIND_STYLE.into(), "QMark".into());
            let c = iceberg_catalog_sql::SqlCatalogBuilder::default()
                .with_storage_factory(factory)
                .load(SQL_CATALOG_NAME, props)
                .await
                .map_err(err)?;
            Ok(Arc::new(c))
        }
        CatalogUrl::Glue => Ok(Arc::new(super::glue::GlueCatalog::new(s3, warehouse, factory).await.map_err(err)?)),
        CatalogUrl::Rest(uri) => {
            props.insert(iceberg_catalog_rest::REST_CATALOG_PROP_URI.into(), uri.clone());
            props.insert(iceberg_catalog_rest::REST_CATALOG_PROP_WAREHOUSE.into(), warehouse);
            let c = iceberg_catalog_rest::RestCatalogBuilder::default()
                .with_storage_factory(factory)
                .load("rest", props)
                .await
                .map_err(err)?;
            Ok(Arc::new(c))
        }
    }
}

/// Opens the catalog and loads `table` (`database.table`).
pub async fn open_table(url: &CatalogUrl, lake: &LakeUrl, s3: &S3Options, table: &str) -> Result<Table, String> {
    let catalog = open_catalog(url, lake, s3).await?;
    let ident = table_ident(table)?;
    catalog
        .load_table(&ident)
        .await
        .map_err(|e| format!("iceberg table {table} in the {} catalog: {e}", url.describe()))
}

/// Creates the table's namespace (a Glue database) if it is missing.
pub async fn ensure_namespace(catalog: &dyn Catalog, ident: &TableIdent) -> IcebergResult<()> {
    let ns = ident.namespace();
    if !catalog.namespace_exists(ns).await? {
        match catalog.create_namespace(ns, HashMap::new()).await {
            Ok(_) => {}
            // Another sink created it first.
            Err(_) if catalog.namespace_exists(ns).await? => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A catalog that runs a check on every table it loads for a commit, and refuses the commit when the check fails.
/// `Transaction::commit` loads the table, applies its actions to that state and commits them with a requirement
/// on it (the catalog refuses the commit if the table moved in between, and the transaction then loads again):
/// so the check always sees the state the commit lands on, not an earlier one.
pub struct Guarded<F> {
    pub inner: Arc<dyn Catalog>,
    pub check: F,
    /// Why the last check refused, if it did.
    pub refused: Mutex<Option<offsets::Verdict>>,
}

impl<F> std::fmt::Debug for Guarded<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded").field("inner", &self.inner).finish()
    }
}

#[async_trait]
impl<F> Catalog for Guarded<F>
where
    F: Fn(&Table) -> offsets::Verdict + Send + Sync,
{
    async fn list_namespaces(&self, parent: Option<&NamespaceIdent>) -> IcebergResult<Vec<NamespaceIdent>> {
        self.inner.list_namespaces(parent).await
    }
    async fn create_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: HashMap<String, String>,
    ) -> IcebergResult<Namespace> {
        self.inner.create_namespace(namespace, properties).await
    }
    async fn get_namespace(&self, namespace: &NamespaceIdent) -> IcebergResult<Namespace> {
        self.inner.get_namespace(namespace).await
    }
    async fn namespace_exists(&self, namespace: &NamespaceIdent) -> IcebergResult<bool> {
        self.inner.namespace_exists(namespace).await
    }
    async fn update_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: HashMap<String, String>,
    ) -> IcebergResult<()> {
        self.inner.update_namespace(namespace, properties).await
    }
    async fn drop_namespace(&self, namespace: &NamespaceIdent) -> IcebergResult<()> {
        self.inner.drop_namespace(namespace).await
    }
    async fn list_tables(&self, namespace: &NamespaceIdent) -> IcebergResult<Vec<TableIdent>> {
        self.inner.list_tables(namespace).await
    }
    async fn create_table(&self, namespace: &NamespaceIdent, creation: TableCreation) -> IcebergResult<Table> {
        self.inner.create_table(namespace, creation).await
    }
    async fn load_table(&self, table: &TableIdent) -> IcebergResult<Table> {
        let t = self.inner.load_table(table).await?;
        match (self.check)(&t) {
            offsets::Verdict::Go => Ok(t),
            other => {
                let msg = format!("{other:?}");
                *self.refused.lock().expect("not poisoned") = Some(other);
                Err(iceberg::Error::new(iceberg::ErrorKind::PreconditionFailed, msg))
            }
        }
    }
    async fn drop_table(&self, table: &TableIdent) -> IcebergResult<()> {
        self.inner.drop_table(table).await
    }
    async fn purge_table(&self, table: &TableIdent) -> IcebergResult<()> {
        self.inner.purge_table(table).await
    }
    async fn table_exists(&self, table: &TableIdent) -> IcebergResult<bool> {
        self.inner.table_exists(table).await
    }
    async fn rename_table(&self, src: &TableIdent, dest: &TableIdent) -> IcebergResult<()> {
        self.inner.rename_table(src, dest).await
    }
    async fn register_table(&self, table: &TableIdent, metadata_location: String) -> IcebergResult<Table> {
        self.inner.register_table(table, metadata_location).await
    }
    async fn update_table(&self, commit: TableCommit) -> IcebergResult<Table> {
        self.inner.update_table(commit).await
    }
}

/// The snapshot summaries of a table's current snapshot and its ancestors, newest first.
pub fn ancestry(table: &Table) -> Vec<(i64, &HashMap<String, String>)> {
    let meta = table.metadata();
    let mut out = Vec::new();
    let mut next = meta.current_snapshot_id();
    while let Some(id) = next {
        let Some(s) = meta.snapshot_by_id(id) else { break };
        out.push((id, &s.summary().additional_properties));
        next = s.parent_snapshot_id();
    }
    out
}

/// The offsets `topic` has recorded in `table`.
pub fn recorded(table: &Table, topic: &str) -> Result<offsets::Recorded, String> {
    offsets::recorded(topic, ancestry(table))
}
