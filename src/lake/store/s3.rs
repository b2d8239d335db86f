//! The lake in S3 (rust-s3 over rustls): credentials from the AWS SDK's default chain (`crate::aws`, one cache for
//! the process, refreshed before expiry), a start-up health check that maps a missing bucket and refused
//! credentials to typed errors, and conditional writes (`If-None-Match: *`, `If-Match: <etag>`; S3 and moto answer
//! 412 when they do not hold, and `If-Match` on a missing key 404).
//!
//! Every request signs with the chain's current credentials. A request refused with a 403 (or a 400 `ExpiredToken`)
//! asks the chain for credentials again; if it hands out another access key (the old set expired early or was
//! revoked in a rotation), the request is sent once more with it, counted as a retry: a rotation is not a stop. The
//! same key refused again is a real refusal, reported as before.

use std::future::Future;
use std::ops::Range;
use std::sync::{Arc, RwLock};

use s3::error::S3Error;
use s3::{Bucket, Region};

use super::{BoxFuture, Etag, ObjectInfo, ObjectStore, Put, S3Options, StoreError, retry};
use crate::aws::{self, AwsCredentials};

#[derive(Debug)]
pub struct S3Store {
    /// The bucket signing with the credentials of this access key.
    bucket: RwLock<(Arc<Bucket>, String)>,
    creds: Arc<AwsCredentials>,
    prefix: String,
}

/// The process's credential chain, resolved on first use.
async fn shared_credentials() -> Result<Arc<AwsCredentials>, StoreError> {
    aws::shared_chain().await.map_err(credentials_error)
}

fn credentials_error(e: aws::CredentialsError) -> StoreError {
    match e {
        aws::CredentialsError::None => StoreError::NoCredentials,
        // IMDS or the container endpoint not answering is worth retrying like any other request.
        aws::CredentialsError::Fetch(reason) => {
            StoreError::Request { op: "credentials", key: String::new(), reason, transient: true }
        }
    }
}

fn signing(c: &aws_credential_types::Credentials) -> Result<s3::creds::Credentials, StoreError> {
    s3::creds::Credentials::new(Some(c.access_key_id()), Some(c.secret_access_key()), None, c.session_token(), None)
        .map_err(|e| StoreError::Config(e.to_string()))
}

/// A refusal that new credentials may turn around (see the module doc): any 403 (a revoked role session or a
/// removed user answers AccessDenied, as MinIO does for a removed user's credentials), and a 400 naming an expired
/// token. Whether they do is decided by the chain: only a different access key is worth a second request.
fn stale(e: &S3Error) -> bool {
    match e {
        S3Error::HttpFailWithBody(403, _) => true,
        S3Error::HttpFailWithBody(400, body) => aws::is_stale_credentials(body),
        _ => false,
    }
}

fn s3_error(op: &'static str, key: &str, e: s3::error::S3Error) -> StoreError {
    let (transient, reason) = match &e {
        S3Error::HttpFailWithBody(code, body) => (*code >= 500 || *code == 429, format!("HTTP {code}: {body}")),
        S3Error::Reqwest(_) | S3Error::Io(_) => (true, e.to_string()),
        _ => (false, e.to_string()),
    };
    StoreError::Request { op, key: key.to_string(), reason, transient }
}

fn etag_of(headers: &std::collections::HashMap<String, String>) -> Etag {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("etag")).map(|(_, v)| v.clone()).unwrap_or_default()
}

impl S3Store {
    pub async fn open(bucket: &str, prefix: &str, opts: &S3Options) -> Result<S3Store, StoreError> {
        // One retry layer: ours (`store::retry`, counted and bounded by --retry-for). rust-s3 would otherwise
        // retry reads once more inside each of our attempts, uncounted.
        s3::set_retries(0);
        if let Some(endpoint) = &opts.endpoint {
            probe_endpoint(endpoint).await?;
        }
        let region_name = opts.region.clone().unwrap_or_else(|| "us-east-1".into());
        let region = match &opts.endpoint {
            Some(endpoint) => Region::Custom { region: region_name, endpoint: endpoint.clone() },
            None => region_name.parse().map_err(|e| StoreError::Config(format!("region: {e}")))?,
        };
        let chain = shared_credentials().await?;
        let creds =
            retry("credentials", prefix, opts.retry_for, || async { chain.get(None).await.map_err(credentials_error) })
                .await?;
        let mut b = Bucket::new(bucket, region, signing(&creds)?).map_err(|e| StoreError::Config(e.to_string()))?;
        if opts.endpoint.is_some() {
            b = b.with_path_style();
        }
        if let Some(t) = opts.request_timeout {
            b = b.with_request_timeout(t).map_err(|e| StoreError::Config(e.to_string()))?;
        }
        let signed_by = creds.access_key_id().to_string();
        let store =
            S3Store { bucket: RwLock::new((Arc::from(b), signed_by)), creds: chain, prefix: prefix.to_string() };
        retry("health check", prefix, opts.retry_for, || store.health_check(opts)).await?;
        Ok(store)
    }

    /// Maps "bucket missing" and "credentials refused" to typed errors before any data moves.
    async fn health_check(&self, opts: &S3Options) -> Result<(), StoreError> {
        let prefix = &self.prefix;
        let name = self.bucket.read().expect("not poisoned").0.name();
        match self.call(|b| async move { b.list_page(format!("{prefix}/"), None, None, None, Some(1)).await }).await? {
            Ok(_) => Ok(()),
            Err(S3Error::HttpFailWithBody(404, _)) => Err(StoreError::BucketMissing {
                bucket: name,
                endpoint: opts.endpoint.clone().unwrap_or_else(|| "AWS".into()),
            }),
            Err(S3Error::HttpFailWithBody(status @ (401 | 403), body)) => {
                Err(StoreError::Denied { bucket: name, status, body: body.chars().take(300).collect() })
            }
            Err(e) => Err(s3_error("list", prefix, e)),
        }
    }

    /// The bucket signing with the chain's current credentials (`stale`: the access key a request was just refused
    /// with, to fetch past it).
    async fn bucket(&self, stale: Option<&str>) -> Result<(Arc<Bucket>, String), StoreError> {
        let creds = self.creds.get(stale).await.map_err(credentials_error)?;
        {
            // Every request passes here: the same key (nearly always) needs only the read lock.
            let current = self.bucket.read().expect("not poisoned");
            if current.1 == creds.access_key_id() {
                return Ok(current.clone());
            }
        }
        let mut current = self.bucket.write().expect("not poisoned");
        if current.1 != creds.access_key_id() {
            let mut b = (*current.0).clone();
            b.set_credentials(signing(&creds)?);
            *current = (Arc::new(b), creds.access_key_id().to_string());
        }
        Ok(current.clone())
    }

    /// Runs one request with the current credentials; refused as stale, once more with fresh ones. The outer error
    /// is a credentials failure, the inner one the request's.
    async fn call<T, F, Fut>(&self, request: F) -> Result<Result<T, S3Error>, StoreError>
    where
        F: Fn(Arc<Bucket>) -> Fut,
        Fut: Future<Output = Result<T, S3Error>>,
    {
        let (bucket, key) = self.bucket(None).await?;
        match request(bucket).await {
            Err(e) if stale(&e) => {
                let (fresh, new_key) = self.bucket(Some(&key)).await?;
                if new_key == key {
                    return Ok(Err(e));
                }
                tracing::info!(old = key, new = new_key, "S3 refused stale credentials; sending again with new ones");
                super::RETRIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(request(fresh).await)
            }
            other => Ok(other),
        }
    }

    fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() { key.to_string() } else { format!("{}/{key}", self.prefix) }
    }
}

/// `host:port` of an endpoint URL (`http://127.0.0.1:9000/` -> `127.0.0.1:9000`; the scheme's port by default).
fn endpoint_addr(endpoint: &str) -> Result<String, StoreError> {
    let (default_port, rest) = match endpoint.split_once("://") {
        Some(("http", rest)) => (80, rest),
        Some(("https", rest)) => (443, rest),
        _ => {
            return Err(StoreError::Config(format!(
                "S3 endpoint '{endpoint}' must start with http:// or https:// (--s3-endpoint, AWS_ENDPOINT_URL)"
            )));
        }
    };
    let host = rest.split('/').next().unwrap_or_default();
    let has_port = host.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) && !host.ends_with(']');
    Ok(if has_port { host.to_string() } else { format!("{host}:{default_port}") })
}

/// A TCP connect to a custom endpoint before the first request: a refused connection or an unknown host at
/// start-up is a wrong endpoint or a server that is not running, not a transient failure to retry for minutes.
async fn probe_endpoint(endpoint: &str) -> Result<(), StoreError> {
    let addr = endpoint_addr(endpoint)?;
    let timeout = std::time::Duration::from_secs(5);
    let reason = match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
        Ok(Ok(_)) => return Ok(()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer to a TCP connect within {timeout:?}"),
    };
    Err(StoreError::Unreachable { endpoint: endpoint.to_string(), reason })
}

impl ObjectStore for S3Store {
    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>, mode: Put) -> BoxFuture<'a, Etag> {
        Box::pin(async move {
            let full = self.full_key(key);
            let mut headers = http::HeaderMap::new();
            match &mode {
                Put::Overwrite => {}
                Put::Create => {
                    headers.insert(http::header::IF_NONE_MATCH, http::HeaderValue::from_static("*"));
                }
                Put::Replace(etag) => {
                    let v = http::HeaderValue::from_str(etag)
                        .map_err(|e| StoreError::Config(format!("etag '{etag}': {e}")))?;
                    headers.insert(http::header::IF_MATCH, v);
                }
            }
            let (path, body, headers) = (&full, &bytes, &headers);
            let sent = self
                .call(move |b| async move {
                    if headers.is_empty() {
                        b.put_object(path, body).await
                    } else {
                        b.put_object_with_headers(path, body, Some(headers.clone())).await
                    }
                })
                .await?;
            match sent {
                Ok(r) => Ok(etag_of(&r.headers())),
                // 412: the condition failed; 404: If-Match on a key that is gone; 409: a concurrent conditional write.
                Err(S3Error::HttpFailWithBody(412 | 409, _)) if mode != Put::Overwrite => {
                    Err(StoreError::Conflict { key: full })
                }
                Err(S3Error::HttpFailWithBody(404, _)) if matches!(mode, Put::Replace(_)) => {
                    Err(StoreError::Conflict { key: full })
                }
                Err(e) => Err(s3_error("put", &full, e)),
            }
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<(Vec<u8>, Etag)>> {
        Box::pin(async move {
            let full = self.full_key(key);
            let path = &full;
            match self.call(move |b| async move { b.get_object(path).await }).await? {
                Ok(r) => {
                    let etag = etag_of(&r.headers());
                    Ok(Some((r.to_vec(), etag)))
                }
                Err(S3Error::HttpFailWithBody(404, _)) => Ok(None),
                Err(e) => Err(s3_error("get", &full, e)),
            }
        })
    }

    fn get_range<'a>(&'a self, key: &'a str, range: Range<u64>) -> BoxFuture<'a, Vec<u8>> {
        Box::pin(async move {
            let full = self.full_key(key);
            if range.is_empty() {
                return Ok(vec![]);
            }
            let path = &full;
            let r = self
                .call(move |b| async move { b.get_object_range(path, range.start, Some(range.end - 1)).await })
                .await?
                .map_err(|e| s3_error("get", &full, e))?;
            Ok(r.to_vec())
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let full = self.full_key(key);
            let path = &full;
            self.call(move |b| async move { b.delete_object(path).await })
                .await?
                .map_err(|e| s3_error("delete", &full, e))?;
            Ok(())
        })
    }

    fn head<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<u64>> {
        Box::pin(async move {
            let full = self.full_key(key);
            let path = &full;
            match self.call(move |b| async move { b.head_object(path).await }).await? {
                Ok((_, 404)) | Err(S3Error::HttpFailWithBody(404, _)) => Ok(None),
                Ok((h, _)) => Ok(Some(h.content_length.unwrap_or(0).max(0) as u64)),
                Err(e) => Err(s3_error("head", &full, e)),
            }
        })
    }

    fn list<'a>(&'a self, under: &'a str) -> BoxFuture<'a, Vec<ObjectInfo>> {
        Box::pin(async move {
            let full = self.full_key(under);
            let path = &full;
            let pages = self
                .call(move |b| async move { b.list(path.clone(), None).await })
                .await?
                .map_err(|e| s3_error("list", &full, e))?;
            let strip = if self.prefix.is_empty() { 0 } else { self.prefix.len() + 1 };
            Ok(pages
                .into_iter()
                .flat_map(|p| p.contents)
                .map(|o| ObjectInfo {
                    key: o.key[strip.min(o.key.len())..].to_string(),
                    size: o.size,
                    modified: chrono::DateTime::parse_from_rfc3339(&o.last_modified).ok().map(|t| t.to_utc()),
                })
                .collect())
        })
    }

    fn server_time<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<chrono::DateTime<chrono::Utc>>> {
        Box::pin(async move {
            let full = self.full_key(key);
            let path = &full;
            let resp = self
                .call(move |b| async move { b.get_object(path).await })
                .await?
                .map_err(|e| s3_error("get", &full, e))?;
            let headers = resp.headers();
            let date = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("date")).map(|(_, v)| v.clone());
            Ok(date.and_then(|d| chrono::DateTime::parse_from_rfc2822(&d).ok()).map(|d| d.with_timezone(&chrono::Utc)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_addresses() {
        assert_eq!(endpoint_addr("http://127.0.0.1:29001").unwrap(), "127.0.0.1:29001");
        assert_eq!(endpoint_addr("https://s3.example.com/").unwrap(), "s3.example.com:443");
        assert_eq!(endpoint_addr("http://minio/path").unwrap(), "minio:80");
        assert_eq!(endpoint_addr("http://[::1]:9000").unwrap(), "[::1]:9000");
        assert!(matches!(endpoint_addr("127.0.0.1:9000"), Err(StoreError::Config(_))));
    }

    #[tokio::test]
    async fn a_refused_endpoint_is_unreachable_at_once() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let e = probe_endpoint(&format!("http://127.0.0.1:{port}")).await.unwrap_err();
        assert!(e.to_string().contains("connection refused at http://127.0.0.1:"), "{e}");
        assert_eq!(e.kind(), crate::exit::Kind::Unreachable);
    }
}
