//! The Iceberg crates' storage (`iceberg::io::Storage`) over ticklake's own object store: Iceberg data, manifests
//! and metadata files go through the same S3 client (rust-s3), credentials, retries (`store::retry`, counted in
//! `ticklake_lake_retries_total`) and fault tests as the hive lake, and a local warehouse through the same atomic
//! folder writes. One S3 stack in the binary instead of a second one (OpenDAL with reqsign) for Iceberg alone.
//!
//! Paths are absolute, as the catalogs hand them out: `s3://bucket/key` (`s3a://`, `s3n://` too) or a local path
//! (`/path`, `file:///path`). One `Store` per bucket, opened on first use (its start-up checks included) and
//! shared by every `FileIO` the factory builds, so loading a table per commit costs no new connection checks.

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use iceberg::io::{FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage, StorageConfig, StorageFactory};
use iceberg::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

use crate::lake::{LakeUrl, S3Options, Store, StoreError, retry};

/// Where an Iceberg path lives: which store, and the key inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Located {
    pub url: LakeUrl,
    pub key: String,
}

/// Splits an absolute Iceberg path into a store (a bucket, or the local file system's root) and a key.
pub(crate) fn locate(path: &str) -> Result<Located> {
    for scheme in ["s3://", "s3a://", "s3n://"] {
        if let Some(rest) = path.strip_prefix(scheme) {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() || key.is_empty() {
                return Err(Error::new(ErrorKind::DataInvalid, format!("'{path}' names no bucket and key")));
            }
            return Ok(Located { url: LakeUrl::S3 { bucket: bucket.into(), prefix: String::new() }, key: key.into() });
        }
    }
    let local = match path.strip_prefix("file://").or_else(|| path.strip_prefix("file:")) {
        Some(p) => format!("/{}", p.trim_start_matches('/')),
        None if path.starts_with('/') => path.to_string(),
        None => {
            return Err(Error::new(
                ErrorKind::FeatureUnsupported,
                format!("'{path}': ticklake stores Iceberg files in S3 (s3://) or a local folder (an absolute path)"),
            ));
        }
    };
    Ok(Located { url: LakeUrl::Local(PathBuf::from("/")), key: local.trim_start_matches('/').to_string() })
}

fn iceberg_error(e: StoreError) -> Error {
    let transient = e.is_transient();
    Error::new(ErrorKind::Unexpected, e.to_string()).with_retryable(transient)
}

/// The stores, one per bucket (and one for local paths), shared by every storage the factory builds.
#[derive(Debug, Default)]
struct Stores {
    s3: S3Options,
    open: tokio::sync::Mutex<HashMap<LakeUrl, Store>>,
}

impl Stores {
    async fn get(&self, path: &str) -> Result<(Store, String)> {
        let Located { url, key } = locate(path)?;
        let mut open = self.open.lock().await;
        if let Some(store) = open.get(&url) {
            return Ok((store.clone(), key));
        }
        let store = Store::open(&url, &self.s3).await.map_err(iceberg_error)?;
        open.insert(url, store.clone());
        Ok((store, key))
    }
}

/// Builds `LakeStorage` for the catalogs (`with_storage_factory`).
///
/// Serializable because the trait asks it (typetag): ticklake never ships a storage to another process, and a
/// deserialized one starts with default S3 settings (endpoint and region from the environment only).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LakeStorageFactory {
    #[serde(skip)]
    stores: Arc<Stores>,
}

impl LakeStorageFactory {
    pub fn new(s3: &S3Options) -> LakeStorageFactory {
        LakeStorageFactory { stores: Arc::new(Stores { s3: s3.clone(), open: Default::default() }) }
    }
}

#[typetag::serde(name = "ticklake")]
impl StorageFactory for LakeStorageFactory {
    /// The catalog's storage properties (S3 endpoint, keys a REST catalog may vend) are not used: the S3 settings
    /// are ticklake's own (`--s3-endpoint`, `AWS_ENDPOINT_URL_S3`, the credential chain), for hive and Iceberg alike.
    fn build(&self, _config: &StorageConfig) -> Result<Arc<dyn Storage>> {
        Ok(Arc::new(LakeStorage { stores: self.stores.clone() }))
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LakeStorage {
    #[serde(skip)]
    stores: Arc<Stores>,
}

impl LakeStorage {
    fn retry_for(&self) -> std::time::Duration {
        self.stores.s3.retry_for
    }
}

#[async_trait]
#[typetag::serde(name = "ticklake")]
impl Storage for LakeStorage {
    async fn exists(&self, path: &str) -> Result<bool> {
        let (store, key) = self.stores.get(path).await?;
        let size = retry("iceberg head", &key, self.retry_for(), || store.head(&key)).await.map_err(iceberg_error)?;
        Ok(size.is_some())
    }

    async fn metadata(&self, path: &str) -> Result<FileMetadata> {
        let (store, key) = self.stores.get(path).await?;
        match retry("iceberg head", &key, self.retry_for(), || store.head(&key)).await.map_err(iceberg_error)? {
            Some(size) => Ok(FileMetadata { size }),
            None => Err(Error::new(ErrorKind::DataInvalid, format!("{path}: no such file"))),
        }
    }

    async fn read(&self, path: &str) -> Result<Bytes> {
        let (store, key) = self.stores.get(path).await?;
        match retry("iceberg read", &key, self.retry_for(), || store.get(&key)).await.map_err(iceberg_error)? {
            Some(b) => Ok(Bytes::from(b)),
            None => Err(Error::new(ErrorKind::DataInvalid, format!("{path}: no such file"))),
        }
    }

    async fn reader(&self, path: &str) -> Result<Box<dyn FileRead>> {
        let (store, key) = self.stores.get(path).await?;
        Ok(Box::new(Reader { store, key, retry_for: self.retry_for() }))
    }

    async fn write(&self, path: &str, bs: Bytes) -> Result<()> {
        let (store, key) = self.stores.get(path).await?;
        let bytes = bs.to_vec();
        retry("iceberg write", &key, self.retry_for(), || store.put(&key, bytes.clone())).await.map_err(iceberg_error)
    }

    async fn writer(&self, path: &str) -> Result<Box<dyn FileWrite>> {
        let (store, key) = self.stores.get(path).await?;
        Ok(Box::new(Writer { store, key, retry_for: self.retry_for(), buf: Vec::new(), closed: false }))
    }

    async fn delete(&self, path: &str) -> Result<()> {
        let (store, key) = self.stores.get(path).await?;
        retry("iceberg delete", &key, self.retry_for(), || store.delete(&key)).await.map_err(iceberg_error)
    }

    async fn delete_prefix(&self, path: &str) -> Result<()> {
        let (store, key) = self.stores.get(path).await?;
        let under = format!("{}/", key.trim_end_matches('/'));
        let objects =
            retry("iceberg list", &under, self.retry_for(), || store.list(&under)).await.map_err(iceberg_error)?;
        for o in objects {
            retry("iceberg delete", &o.key, self.retry_for(), || store.delete(&o.key)).await.map_err(iceberg_error)?;
        }
        Ok(())
    }

    async fn delete_stream(&self, mut paths: BoxStream<'static, String>) -> Result<()> {
        while let Some(path) = paths.next().await {
            self.delete(&path).await?;
        }
        Ok(())
    }

    fn new_input(&self, path: &str) -> Result<InputFile> {
        Ok(InputFile::new(Arc::new(self.clone()), path.to_string()))
    }

    fn new_output(&self, path: &str) -> Result<OutputFile> {
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_string()))
    }
}

/// Ranged reads of one file (Parquet footers and column chunks, manifests).
struct Reader {
    store: Store,
    key: String,
    retry_for: std::time::Duration,
}

#[async_trait]
impl FileRead for Reader {
    async fn read(&self, range: Range<u64>) -> Result<Bytes> {
        let b = retry("iceberg read", &self.key, self.retry_for, || self.store.get_range(&self.key, range.clone()))
            .await
            .map_err(iceberg_error)?;
        Ok(Bytes::from(b))
    }
}

/// A file written whole at `close`: one PUT (S3) or one atomic rename (folder), as the hive lake writes, so a crash
/// never leaves half a file where a reader could find it.
struct Writer {
    store: Store,
    key: String,
    retry_for: std::time::Duration,
    buf: Vec<u8>,
    closed: bool,
}

#[async_trait]
impl FileWrite for Writer {
    async fn write(&mut self, bs: Bytes) -> Result<()> {
        if self.closed {
            return Err(Error::new(ErrorKind::Unexpected, format!("{}: written after close", self.key)));
        }
        self.buf.extend_from_slice(&bs);
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        if self.closed {
            return Err(Error::new(ErrorKind::Unexpected, format!("{}: closed twice", self.key)));
        }
        self.closed = true;
        let bytes = std::mem::take(&mut self.buf);
        retry("iceberg write", &self.key, self.retry_for, || self.store.put(&self.key, bytes.clone()))
            .await
            .map_err(iceberg_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_store_and_key() {
        let s3 = |b: &str| LakeUrl::S3 { bucket: b.into(), prefix: String::new() };
        let root = LakeUrl::Local(PathBuf::from("/"));
        assert_eq!(
            locate("s3://b/w/db/t/metadata/v1.json").unwrap(),
            Located { url: s3("b"), key: "w/db/t/metadata/v1.json".into() }
        );
        assert_eq!(locate("s3a://b/k").unwrap().url, s3("b"));
        assert_eq!(
            locate("/tmp/w/t/data/x.parquet").unwrap(),
            Located { url: root.clone(), key: "tmp/w/t/data/x.parquet".into() }
        );
        assert_eq!(locate("file:///tmp/x").unwrap(), Located { url: root.clone(), key: "tmp/x".into() });
        assert_eq!(locate("file:/tmp/x").unwrap(), Located { url: root, key: "tmp/x".into() });
        assert!(locate("s3://b").is_err());
        assert!(locate("gs://b/k").is_err());
        assert!(locate("relative/path").is_err());
    }

    #[tokio::test]
    async fn writes_reads_ranges_and_deletes_through_the_lake_store() {
        let dir = tempfile::tempdir().unwrap();
        let factory = LakeStorageFactory::new(&S3Options::default());
        let storage = factory.build(&StorageConfig::new()).unwrap();
        let base = dir.path().display().to_string();
        let path = format!("{base}/w/db/t/data/a.parquet");
        let out = storage.new_output(&path).unwrap();
        assert!(!out.exists().await.unwrap());
        let mut w = storage.writer(&path).await.unwrap();
        w.write(Bytes::from_static(b"0123")).await.unwrap();
        assert!(!storage.exists(&path).await.unwrap(), "nothing is visible before close");
        w.write(Bytes::from_static(b"456789")).await.unwrap();
        w.close().await.unwrap();
        assert!(w.close().await.is_err());
        assert_eq!(storage.metadata(&path).await.unwrap().size, 10);
        assert_eq!(storage.read(&format!("file://{path}")).await.unwrap(), Bytes::from_static(b"0123456789"));
        let r = storage.reader(&path).await.unwrap();
        assert_eq!(r.read(3..7).await.unwrap(), Bytes::from_static(b"3456"));
        storage.write(&format!("{base}/w/db/t/metadata/v1.json"), Bytes::from_static(b"{}")).await.unwrap();
        storage.delete_prefix(&format!("{base}/w/db/t/data")).await.unwrap();
        assert!(!storage.exists(&path).await.unwrap());
        assert!(storage.exists(&format!("{base}/w/db/t/metadata/v1.json")).await.unwrap());
        storage.delete(&format!("{base}/w/db/t/metadata/v1.json")).await.unwrap();
        assert!(storage.metadata(&format!("{base}/w/db/t/metadata/v1.json")).await.is_err());
    }
}
