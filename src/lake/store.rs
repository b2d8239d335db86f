//! Object storage at the edge: a local folder (the embedded default) or S3 (rust-s3 over rustls).
//!
//! Both behave alike for the sink: `put` replaces an object whole (a crash never leaves half a file: the local
//! store writes a temporary file and renames it), `get` of a missing key is `None`, `list` is recursive.

use std::path::{Path, PathBuf};
use std::time::Duration;

use s3::creds::Credentials;
use s3::{Bucket, Region};

/// Where the lake lives, parsed once from `--to`.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Custom endpoint (`--s3-endpoint` / `AWS_ENDPOINT_URL`); implies path-style addressing.
    pub endpoint: Option<String>,
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
}

impl StoreError {
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
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options { region: None, endpoint: None, request_timeout: None, retry_for: Duration::from_secs(30) }
    }
}

/// A lake root: every key is relative to it.
#[derive(Debug, Clone)]
pub enum Store {
    Local { root: PathBuf },
    S3 { bucket: Box<Bucket>, prefix: String },
}

fn s3_error(op: &'static str, key: &str, e: s3::error::S3Error) -> StoreError {
    let (transient, reason) = match &e {
        s3::error::S3Error::HttpFailWithBody(code, body) => {
            (*code >= 500 || *code == 429, format!("HTTP {code}: {body}"))
        }
        s3::error::S3Error::Reqwest(_) | s3::error::S3Error::Io(_) => (true, e.to_string()),
        _ => (false, e.to_string()),
    };
    StoreError::Request { op, key: key.to_string(), reason, transient }
}

impl Store {
    /// Opens the lake; for S3 resolves credentials (env, profile, EC2 instance role) and checks the bucket.
    pub async fn open(url: &LakeUrl, opts: &S3Options) -> Result<Store, StoreError> {
        match url {
            // Nothing is created here: a sink that fails before its first commit (an unreachable broker, a typo'd
            // topic) leaves no empty folder behind. Folders appear with the first object written into them.
            LakeUrl::Local(root) => {
                if root.exists() && !root.is_dir() {
                    return Err(StoreError::Io {
                        op: "open the lake folder",
                        path: root.clone(),
                        source: std::io::Error::other("it exists and is not a folder"),
                    });
                }
                Ok(Store::Local { root: root.clone() })
            }
            LakeUrl::S3 { bucket, prefix } => {
                let region_name = opts.region.clone().unwrap_or_else(|| "us-east-1".into());
                let region = match &opts.endpoint {
                    Some(endpoint) => Region::Custom { region: region_name, endpoint: endpoint.clone() },
                    None => region_name.parse().map_err(|e| StoreError::Config(format!("region: {e}")))?,
                };
                // The credential chain may call the EC2 metadata service (blocking HTTP): off the runtime.
                let creds = tokio::task::spawn_blocking(Credentials::default)
                    .await
                    .map_err(|e| StoreError::Config(e.to_string()))?
                    .map_err(|_| StoreError::NoCredentials)?;
                let mut b = Bucket::new(bucket, region, creds).map_err(|e| StoreError::Config(e.to_string()))?;
                if opts.endpoint.is_some() {
                    b = b.with_path_style();
                }
                if let Some(t) = opts.request_timeout {
                    b = b.with_request_timeout(t).map_err(|e| StoreError::Config(e.to_string()))?;
                }
                let store = Store::S3 { bucket: b, prefix: prefix.clone() };
                retry("health check", prefix, opts.retry_for, || store.health_check(opts)).await?;
                Ok(store)
            }
        }
    }

    /// Maps "bucket missing" and "credentials refused" to typed errors before any data moves.
    async fn health_check(&self, opts: &S3Options) -> Result<(), StoreError> {
        let Store::S3 { bucket, prefix } = self else { return Ok(()) };
        match bucket.list_page(format!("{prefix}/"), None, None, None, Some(1)).await {
            Ok(_) => Ok(()),
            Err(s3::error::S3Error::HttpFailWithBody(404, _)) => Err(StoreError::BucketMissing {
                bucket: bucket.name(),
                endpoint: opts.endpoint.clone().unwrap_or_else(|| "AWS".into()),
            }),
            Err(s3::error::S3Error::HttpFailWithBody(status @ (401 | 403), body)) => {
                Err(StoreError::Denied { bucket: bucket.name(), status, body: body.chars().take(300).collect() })
            }
            Err(e) => Err(s3_error("list", prefix, e)),
        }
    }

    fn full_key(prefix: &str, key: &str) -> String {
        if prefix.is_empty() { key.to_string() } else { format!("{prefix}/{key}") }
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        match self {
            Store::Local { root } => {
                let path = root.join(key);
                let bytes_len = bytes.len();
                tokio::task::spawn_blocking(move || write_atomic(&path, &bytes))
                    .await
                    .map_err(|e| StoreError::Config(e.to_string()))??;
                tracing::trace!(key, bytes = bytes_len, "stored");
                Ok(())
            }
            Store::S3 { bucket, prefix } => {
                let full = Self::full_key(prefix, key);
                bucket.put_object(&full, &bytes).await.map_err(|e| s3_error("put", &full, e))?;
                Ok(())
            }
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Store::Local { root } => {
                let path = root.join(key);
                match tokio::fs::read(&path).await {
                    Ok(b) => Ok(Some(b)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(StoreError::Io { op: "read", path, source }),
                }
            }
            Store::S3 { bucket, prefix } => {
                let full = Self::full_key(prefix, key);
                match bucket.get_object(&full).await {
                    Ok(r) => Ok(Some(r.to_vec())),
                    Err(s3::error::S3Error::HttpFailWithBody(404, _)) => Ok(None),
                    Err(e) => Err(s3_error("get", &full, e)),
                }
            }
        }
    }

    /// The S3 server's clock (the `Date` header of a HEAD on `key`), to measure clock skew; `None` for a folder.
    /// SigV4 refuses requests more than 15 minutes off (RequestTimeTooSkewed).
    pub async fn server_time(&self, key: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        let Store::S3 { bucket, prefix } = self else { return Ok(None) };
        let full = Self::full_key(prefix, key);
        let resp = bucket.get_object(&full).await.map_err(|e| s3_error("get", &full, e))?;
        let headers = resp.headers();
        let date = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("date")).map(|(_, v)| v.clone());
        Ok(date.and_then(|d| chrono::DateTime::parse_from_rfc2822(&d).ok()).map(|d| d.with_timezone(&chrono::Utc)))
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self {
            Store::Local { root } => match tokio::fs::remove_file(root.join(key)).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(source) => Err(StoreError::Io { op: "delete", path: root.join(key), source }),
            },
            Store::S3 { bucket, prefix } => {
                let full = Self::full_key(prefix, key);
                bucket.delete_object(&full).await.map_err(|e| s3_error("delete", &full, e))?;
                Ok(())
            }
        }
    }

    /// Every object under `under` (relative), recursively, sorted by key.
    pub async fn list(&self, under: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let mut out = match self {
            Store::Local { root } => {
                let root = root.clone();
                let under = under.to_string();
                tokio::task::spawn_blocking(move || list_local(&root, &under))
                    .await
                    .map_err(|e| StoreError::Config(e.to_string()))??
            }
            Store::S3 { bucket, prefix } => {
                let full = Self::full_key(prefix, under);
                let pages = bucket.list(full.clone(), None).await.map_err(|e| s3_error("list", &full, e))?;
                let strip = if prefix.is_empty() { 0 } else { prefix.len() + 1 };
                pages
                    .into_iter()
                    .flat_map(|p| p.contents)
                    .map(|o| ObjectInfo { key: o.key[strip.min(o.key.len())..].to_string(), size: o.size })
                    .collect()
            }
        };
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

/// Writes a file whole: temporary file in the same folder, fsync, rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::io::Write;
    let io = |op, source| StoreError::Io { op, path: path.to_path_buf(), source };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io("create folder", e))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // A leading dot keeps half-written files hidden from Athena and from our own listing; the counter keeps two
    // writes of one key from sharing a temporary file.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.tmp-{}-{seq}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(|e| io("create", e))?;
    f.write_all(bytes).map_err(|e| io("write", e))?;
    f.sync_all().map_err(|e| io("fsync", e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| io("rename", e))
}

fn list_local(root: &Path, under: &str) -> Result<Vec<ObjectInfo>, StoreError> {
    let mut out = Vec::new();
    let start = root.join(under);
    let mut stack = vec![start];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(StoreError::Io { op: "list", path: dir, source }),
        };
        for entry in entries {
            let entry = entry.map_err(|source| StoreError::Io { op: "list", path: dir.clone(), source })?;
            let path = entry.path();
            let meta = entry.metadata().map_err(|source| StoreError::Io { op: "stat", path: path.clone(), source })?;
            if meta.is_dir() {
                stack.push(path);
            } else if !entry.file_name().to_string_lossy().starts_with('.') {
                let key = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
                out.push(ObjectInfo { key, size: meta.len() });
            }
        }
    }
    Ok(out)
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
