//! Object storage at the edge, behind one seam: `ObjectStore`, with a local folder (the embedded default), S3
//! (rust-s3 over rustls) and an in-memory store (tests, with fault injection) behind it.
//!
//! All behave alike: `put` replaces an object whole (a crash never leaves half a file: the folder store writes a
//! temporary file and renames it), `get` of a missing key is `None`, `list` is recursive, and a conditional put
//! (`Put::Create`: only if absent, S3's `If-None-Match: *`; `Put::Replace(etag)`: only over that version, S3's
//! `If-Match`) answers `StoreError::Conflict` when another writer got there first. Everything above this module
//! (the commit protocol, `lake verify`, the table spec) sees only `Store`.

mod local;
mod memory;
mod s3;

pub use memory::{Fault, MemoryStore};

use std::path::PathBuf;
use std::time::Duration;

use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;

/// Where the lake lives, parsed once from `--to`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LakeUrl {
    S3 { bucket: String, prefix: String },
    Local(PathBuf),
}

impl LakeUrl {
    pub fn parse(s: &str) -> Result<LakeUrl, StoreError> {
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(StoreError::Config(format!("'{s}' has no bucket: use s3://bucket/prefix")));
            }
            return Ok(LakeUrl::S3 { bucket: bucket.into(), prefix: prefix.trim_matches('/').into() });
        }
        if s.contains("://") {
            return Err(StoreError::Config(format!("'{s}': only s3://bucket/prefix or a local folder are supported")));
        }
        Ok(LakeUrl::Local(PathBuf::from(s)))
    }

    pub fn display(&self) -> String {
        match self {
            LakeUrl::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            LakeUrl::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
            LakeUrl::Local(p) => p.display().to_string(),
        }
    }
}

/// S3 connection settings (region, endpoint for MinIO and test servers).
#[derive(Debug, Clone)]
pub struct S3Options {
    pub region: Option<String>,
    /// Custom endpoint (`--s3-endpoint` / `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`); implies path-style addressing.
    pub endpoint: Option<String>,
    /// The AWS Glue endpoint for the Glue catalog and `athena --apply` (`AWS_ENDPOINT_URL_GLUE`, else
    /// `AWS_ENDPOINT_URL`, as the AWS SDKs read them): a test S3 server (MinIO) serves no Glue.
    pub glue_endpoint: Option<String>,
    pub request_timeout: Option<Duration>,
    /// How long transient failures of the start-up health check are retried.
    pub retry_for: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Config(String),
    #[error("bucket '{bucket}' does not exist (at {endpoint}). Create it, or check --to and the region")]
    BucketMissing { bucket: String, endpoint: String },
    #[error(
        "S3 refused our credentials for bucket '{bucket}' (HTTP {status}): {body}. Check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, the profile or the instance role, and the bucket policy"
    )]
    Denied { bucket: String, status: u16, body: String },
    #[error(
        "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, use a profile (AWS_PROFILE), or run on EC2 with an instance role"
    )]
    NoCredentials,
    #[error("{op} {key}: {reason}")]
    Request { op: &'static str, key: String, reason: String, transient: bool },
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    /// The S3 endpoint took no connection at start-up.
    #[error(
        "{reason} at {endpoint}: is the S3 endpoint right (--s3-endpoint, AWS_ENDPOINT_URL) and its server running?"
    )]
    Unreachable { endpoint: String, reason: String },
    /// A conditional put lost: the object exists (`Put::Create`) or is not the version read (`Put::Replace`).
    #[error("{key}: another writer changed it first (conditional write refused)")]
    Conflict { key: String },
}

impl StoreError {
    /// The same for every command: refused or missing credentials, a missing bucket, anything else.
    pub fn kind(&self) -> crate::exit::Kind {
        use crate::exit::Kind;
        match self {
            StoreError::Denied { .. } | StoreError::NoCredentials => Kind::Auth,
            StoreError::BucketMissing { .. } => Kind::StorageMissing,
            StoreError::Config(_) => Kind::Usage,
            StoreError::Unreachable { .. } => Kind::Unreachable,
            _ => Kind::Failure,
        }
    }

    /// Worth retrying (5xx, throttling, connection trouble); 403/404 and config errors are not.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Request { transient: true, .. })
    }
}

/// Runs a store operation, retrying transient failures (5xx, throttling, resets, timeouts) until `retry_for` has
/// passed (see `crate::backoff`). Permanent failures (403, 404, configuration) return at once. rust-s3 retries
/// safe requests only once by default, which a throttled bucket easily exhausts.
pub async fn retry<T, F, Fut>(what: &str, key: &str, retry_for: Duration, op: F) -> Result<T, StoreError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let label = format!("{what} {key}");
    crate::backoff::retry(&label, retry_for, MAX_S3_BACKOFF, StoreError::is_transient, |attempt| {
        if attempt > 0 {
            RETRIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        op()
    })
    .await
}

/// A conditional PUT with retries. A retry after a lost response may find its own earlier write there (and be
/// refused for it): the object holding exactly these bytes counts as success.
pub async fn put_conditional_with_retry(
    store: &Store,
    key: &str,
    bytes: Vec<u8>,
    mode: Put,
    retry_for: Duration,
) -> Result<Etag, StoreError> {
    let attempts = std::sync::atomic::AtomicU32::new(0);
    let put = retry("store", key, retry_for, || {
        attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        store.put_if(key, bytes.clone(), mode.clone())
    })
    .await;
    match put {
        Err(StoreError::Conflict { .. }) if attempts.load(std::sync::atomic::Ordering::Relaxed) > 1 => {
            match store.get_versioned(key).await? {
                Some((b, etag)) if b == bytes => Ok(etag),
                _ => Err(StoreError::Conflict { key: key.into() }),
            }
        }
        other => other,
    }
}

/// Lake requests retried after a transient failure, process-wide (the sink publishes it as a metric).
pub static RETRIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Longest wait between two S3 attempts.
const MAX_S3_BACKOFF: Duration = Duration::from_secs(10);

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Key relative to the lake root.
    pub key: String,
    pub size: u64,
    /// When it was last written, as the store tells it (`None` where it cannot: the in-memory store).
    pub modified: Option<chrono::DateTime<chrono::Utc>>,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            region: None,
            endpoint: None,
            glue_endpoint: None,
            request_timeout: None,
            retry_for: Duration::from_secs(30),
        }
    }
}

/// An object's version, for conditional writes: S3's ETag, a content hash for the folder and memory stores.
pub type Etag = String;

/// How a put treats an existing object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Put {
    /// Replace whatever is there.
    Overwrite,
    /// Only if the key is absent (S3 `If-None-Match: *`).
    Create,
    /// Only over this version (S3 `If-Match`).
    Replace(Etag),
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The seam between the lake's logic and where its bytes live. Keys are relative to the lake root.
pub trait ObjectStore: Send + Sync + std::fmt::Debug {
    /// Stores `bytes` at `key` as `mode` allows; returns the new version.
    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>, mode: Put) -> BoxFuture<'a, Etag>;
    /// The object and its version; `None` if absent.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<(Vec<u8>, Etag)>>;
    /// Bytes `range` of an object (a ranged GET: Parquet footers and column chunks without the whole file).
    fn get_range<'a>(&'a self, key: &'a str, range: Range<u64>) -> BoxFuture<'a, Vec<u8>>;
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()>;
    /// An object's size without its bytes (S3's HEAD); `None` if absent.
    fn head<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<u64>>;
    /// Every object under `under`, recursively (order unspecified; `Store::list` sorts).
    fn list<'a>(&'a self, under: &'a str) -> BoxFuture<'a, Vec<ObjectInfo>>;
    /// The server's clock, for a skew check; `None` where there is no server.
    fn server_time<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Option<chrono::DateTime<chrono::Utc>>> {
        Box::pin(async { Ok(None) })
    }
}

/// A lake root: every key is relative to it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store(Arc<dyn ObjectStore>);

/// Bytes read through a `Store`, process-wide (`lake verify`/`stats` report what they read).
pub static BYTES_READ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Store {
    /// Opens the lake; for S3 resolves credentials (env, profile, EC2 instance role) and checks the bucket. A
    /// local folder is not created here: it appears with the first object written into it.
    pub async fn open(url: &LakeUrl, opts: &S3Options) -> Result<Store, StoreError> {
        match url {
            LakeUrl::Local(root) => Ok(Store(Arc::new(local::LocalStore::open(root)?))),
            LakeUrl::S3 { bucket, prefix } => Ok(Store(Arc::new(s3::S3Store::open(bucket, prefix, opts).await?))),
        }
    }

    /// A store over `backend` (tests: `MemoryStore`, with faults).
    pub fn new(backend: Arc<dyn ObjectStore>) -> Store {
        Store(backend)
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.0.put(key, bytes, Put::Overwrite).await.map(|_| ())
    }

    /// A conditional put: `StoreError::Conflict` when `mode` does not hold.
    pub async fn put_if(&self, key: &str, bytes: Vec<u8>, mode: Put) -> Result<Etag, StoreError> {
        self.0.put(key, bytes, mode).await
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get_versioned(key).await?.map(|(b, _)| b))
    }

    pub async fn get_versioned(&self, key: &str) -> Result<Option<(Vec<u8>, Etag)>, StoreError> {
        let got = self.0.get(key).await?;
        if let Some((b, _)) = &got {
            BYTES_READ.fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(got)
    }

    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>, StoreError> {
        let b = self.0.get_range(key, range).await?;
        BYTES_READ.fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(b)
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.0.delete(key).await
    }

    /// The object's size; `None` if absent.
    pub async fn head(&self, key: &str) -> Result<Option<u64>, StoreError> {
        self.0.head(key).await
    }

    /// Every object under `under` (relative), recursively, sorted by key.
    pub async fn list(&self, under: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let mut out = self.0.list(under).await?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// The S3 server's clock (the `Date` header of a GET of `key`), to measure clock skew; `None` for a folder.
    /// SigV4 refuses requests more than 15 minutes off (RequestTimeTooSkewed).
    pub async fn server_time(&self, key: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        self.0.server_time(key).await
    }
}

/// A version tag for stores without one of their own: FNV-1a over the bytes and their length.
pub(crate) fn content_etag(bytes: &[u8]) -> Etag {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes.iter().chain(&(bytes.len() as u64).to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lake_urls() {
        assert_eq!(LakeUrl::parse("s3://b/p/q/").unwrap(), LakeUrl::S3 { bucket: "b".into(), prefix: "p/q".into() });
        assert_eq!(LakeUrl::parse("s3://b").unwrap(), LakeUrl::S3 { bucket: "b".into(), prefix: "".into() });
        assert_eq!(LakeUrl::parse("./lake").unwrap(), LakeUrl::Local("./lake".into()));
        assert!(LakeUrl::parse("gs://x").is_err());
        assert!(LakeUrl::parse("s3:///x").is_err());
    }

    #[tokio::test]
    async fn conditional_puts_admit_one_writer_in_every_store() {
        let dir = tempfile::tempdir().unwrap();
        let local = Store::open(&LakeUrl::Local(dir.path().into()), &S3Options::default()).await.unwrap();
        for store in [local, Store::new(Arc::new(MemoryStore::default()))] {
            let v1 = store.put_if("cp.json", b"1".to_vec(), Put::Create).await.unwrap();
            assert!(matches!(
                store.put_if("cp.json", b"x".to_vec(), Put::Create).await,
                Err(StoreError::Conflict { .. })
            ));
            let v2 = store.put_if("cp.json", b"2".to_vec(), Put::Replace(v1.clone())).await.unwrap();
            let stale = store.put_if("cp.json", b"3".to_vec(), Put::Replace(v1)).await;
            assert!(matches!(stale, Err(StoreError::Conflict { .. })), "a zombie's write over an old version");
            assert_eq!(store.get_versioned("cp.json").await.unwrap(), Some((b"2".to_vec(), v2)));
            assert!(matches!(
                store.put_if("nope", b"1".to_vec(), Put::Replace("x".into())).await,
                Err(StoreError::Conflict { .. })
            ));
            store.put("big", (0u8..100).collect()).await.unwrap();
            assert_eq!(store.head("big").await.unwrap(), Some(100));
            assert_eq!(store.head("bi").await.unwrap(), None);
            assert_eq!(store.get_range("big", 90..100).await.unwrap(), (90u8..100).collect::<Vec<_>>());
        }
    }

    #[tokio::test]
    async fn local_store_put_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&LakeUrl::Local(dir.path().into()), &S3Options::default()).await.unwrap();
        store.put("a/b/c.parquet", b"xyz".to_vec()).await.unwrap();
        store.put("a/d.json", b"{}".to_vec()).await.unwrap();
        store.put("a/d.json", b"{1}".to_vec()).await.unwrap();
        assert_eq!(store.get("a/d.json").await.unwrap(), Some(b"{1}".to_vec()));
        assert_eq!(store.get("nope").await.unwrap(), None);
        let keys: Vec<_> = store.list("a").await.unwrap().into_iter().map(|o| o.key).collect();
        assert_eq!(keys, vec!["a/b/c.parquet", "a/d.json"]);
        store.delete("a/d.json").await.unwrap();
        assert_eq!(store.list("").await.unwrap().len(), 1);
    }
}
