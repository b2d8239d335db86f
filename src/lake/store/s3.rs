//! The lake in S3 (rust-s3 over rustls): credentials from the standard chain, a start-up health check that maps a
//! missing bucket and refused credentials to typed errors, and conditional writes (`If-None-Match: *`,
//! `If-Match: <etag>`; S3 and moto answer 412 when they do not hold, and `If-Match` on a missing key 404).

use std::ops::Range;

use s3::creds::Credentials;
use s3::{Bucket, Region};

use super::{BoxFuture, Etag, ObjectInfo, ObjectStore, Put, S3Options, StoreError, retry};

#[derive(Debug)]
pub struct S3Store {
    bucket: Box<Bucket>,
    prefix: String,
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

fn etag_of(headers: &std::collections::HashMap<String, String>) -> Etag {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("etag")).map(|(_, v)| v.clone()).unwrap_or_default()
}

impl S3Store {
    pub async fn open(bucket: &str, prefix: &str, opts: &S3Options) -> Result<S3Store, StoreError> {
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
        let store = S3Store { bucket: b, prefix: prefix.to_string() };
        retry("health check", prefix, opts.retry_for, || store.health_check(opts)).await?;
        Ok(store)
    }

    /// Maps "bucket missing" and "credentials refused" to typed errors before any data moves.
    async fn health_check(&self, opts: &S3Options) -> Result<(), StoreError> {
        let prefix = &self.prefix;
        match self.bucket.list_page(format!("{prefix}/"), None, None, None, Some(1)).await {
            Ok(_) => Ok(()),
            Err(s3::error::S3Error::HttpFailWithBody(404, _)) => Err(StoreError::BucketMissing {
                bucket: self.bucket.name(),
                endpoint: opts.endpoint.clone().unwrap_or_else(|| "AWS".into()),
            }),
            Err(s3::error::S3Error::HttpFailWithBody(status @ (401 | 403), body)) => {
                Err(StoreError::Denied { bucket: self.bucket.name(), status, body: body.chars().take(300).collect() })
            }
            Err(e) => Err(s3_error("list", prefix, e)),
        }
    }

    fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() { key.to_string() } else { format!("{}/{key}", self.prefix) }
    }
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
            let sent = if headers.is_empty() {
                self.bucket.put_object(&full, &bytes).await
            } else {
                self.bucket.put_object_with_headers(&full, &bytes, Some(headers)).await
            };
            match sent {
                Ok(r) => Ok(etag_of(&r.headers())),
                // 412: the condition failed; 404: If-Match on a key that is gone; 409: a concurrent conditional write.
                Err(s3::error::S3Error::HttpFailWithBody(412 | 409, _)) if mode != Put::Overwrite => {
                    Err(StoreError::Conflict { key: full })
                }
                Err(s3::error::S3Error::HttpFailWithBody(404, _)) if matches!(mode, Put::Replace(_)) => {
                    Err(StoreError::Conflict { key: full })
                }
                Err(e) => Err(s3_error("put", &full, e)),
            }
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<(Vec<u8>, Etag)>> {
        Box::pin(async move {
            let full = self.full_key(key);
            match self.bucket.get_object(&full).await {
                Ok(r) => {
                    let etag = etag_of(&r.headers());
                    Ok(Some((r.to_vec(), etag)))
                }
                Err(s3::error::S3Error::HttpFailWithBody(404, _)) => Ok(None),
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
            let r = self
                .bucket
                .get_object_range(&full, range.start, Some(range.end - 1))
                .await
                .map_err(|e| s3_error("get", &full, e))?;
            Ok(r.to_vec())
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let full = self.full_key(key);
            self.bucket.delete_object(&full).await.map_err(|e| s3_error("delete", &full, e))?;
            Ok(())
        })
    }

    fn list<'a>(&'a self, under: &'a str) -> BoxFuture<'a, Vec<ObjectInfo>> {
        Box::pin(async move {
            let full = self.full_key(under);
            let pages = self.bucket.list(full.clone(), None).await.map_err(|e| s3_error("list", &full, e))?;
            let strip = if self.prefix.is_empty() { 0 } else { self.prefix.len() + 1 };
            Ok(pages
                .into_iter()
                .flat_map(|p| p.contents)
                .map(|o| ObjectInfo { key: o.key[strip.min(o.key.len())..].to_string(), size: o.size })
                .collect())
        })
    }

    fn server_time<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<chrono::DateTime<chrono::Utc>>> {
        Box::pin(async move {
            let full = self.full_key(key);
            let resp = self.bucket.get_object(&full).await.map_err(|e| s3_error("get", &full, e))?;
            let headers = resp.headers();
            let date = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("date")).map(|(_, v)| v.clone());
            Ok(date.and_then(|d| chrono::DateTime::parse_from_rfc2822(&d).ok()).map(|d| d.with_timezone(&chrono::Utc)))
        })
    }
}
