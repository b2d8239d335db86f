//! AWS credentials for ticklake's own S3 client (the hive lake, Iceberg files, rejects, leases): the AWS SDK's
//! default chain (environment, profile and SSO, web identity for EKS, ECS container credentials, IMDSv2 with its
//! token), the same chain the Glue clients use, cached here and refreshed *before* it expires. An instance role's
//! credentials rotate every few hours; a request signed just before expiry must not come back 403 and stop a sink
//! that is meant to run for months.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};

/// The Glue Data Catalog calls (the Glue Iceberg catalog, `athena --apply`).
#[cfg(feature = "iceberg")]
pub mod glue;

/// How long before their expiry credentials are fetched again: 5 minutes (EC2's metadata service hands out the
/// next set well before the old one expires), or half the lifetime of shorter-lived ones.
pub const REFRESH_AHEAD: Duration = Duration::from_secs(300);

/// When credentials fetched at `fetched` that expire at `expiry` are fetched again; `None`: never (static keys).
pub fn refresh_at(fetched: SystemTime, expiry: Option<SystemTime>) -> Option<SystemTime> {
    let expiry = expiry?;
    let life = expiry.duration_since(fetched).unwrap_or_default();
    Some(expiry - REFRESH_AHEAD.min(life / 2))
}

/// Credential fetches so far, process-wide (the first included): a metric and a test's witness of refreshes.
pub static FETCHES: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(
        "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, use a profile (AWS_PROFILE), or run on EC2/ECS/EKS with a role"
    )]
    None,
    #[error("fetching AWS credentials: {0}")]
    Fetch(String),
}

/// The AWS SDK's settings loader (region, endpoints, the default credential chain) with ticklake's HTTPS client:
/// rustls on ring, as everywhere else in ticklake (the SDK's default client would add aws-lc, a second crypto
/// library). The chain's own requests (IMDSv2, ECS, STS, SSO) go through it too.
pub fn sdk_config() -> aws_config::ConfigLoader {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    let https = aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https)
}

/// The process's credential chain (S3, Glue), resolved on first use: one cache, one refresh, for every client.
pub async fn shared_chain() -> Result<std::sync::Arc<AwsCredentials>, CredentialsError> {
    static CHAIN: tokio::sync::OnceCell<std::sync::Arc<AwsCredentials>> = tokio::sync::OnceCell::const_new();
    CHAIN.get_or_try_init(|| async { AwsCredentials::default_chain().await.map(std::sync::Arc::new) }).await.cloned()
}

/// The credentials of the default chain, cached until `refresh_at`.
#[derive(Debug)]
pub struct AwsCredentials {
    provider: SharedCredentialsProvider,
    cached: tokio::sync::Mutex<Option<(Credentials, Option<SystemTime>)>>,
}

impl AwsCredentials {
    /// The AWS SDK's default credential chain, as every AWS SDK reads it.
    pub async fn default_chain() -> Result<AwsCredentials, CredentialsError> {
        let config = sdk_config().load().await;
        let provider = config.credentials_provider().ok_or(CredentialsError::None)?;
        Ok(AwsCredentials::new(provider))
    }

    pub fn new(provider: SharedCredentialsProvider) -> AwsCredentials {
        AwsCredentials { provider, cached: tokio::sync::Mutex::new(None) }
    }

    /// The current credentials: the cached ones until their refresh time, else fetched anew. `stale`: the caller's
    /// request was refused with credentials of this access key (expired or revoked early): fetch anew if the cache
    /// still holds them.
    pub async fn get(&self, stale: Option<&str>) -> Result<Credentials, CredentialsError> {
        let mut cached = self.cached.lock().await;
        if let Some((c, refresh)) = cached.as_ref() {
            let due = refresh.is_some_and(|t| SystemTime::now() >= t);
            if !due && stale != Some(c.access_key_id()) {
                return Ok(c.clone());
            }
        }
        FETCHES.fetch_add(1, Ordering::Relaxed);
        let fresh = self.provider.provide_credentials().await.map_err(|e| match e {
            aws_credential_types::provider::error::CredentialsError::CredentialsNotLoaded(_) => CredentialsError::None,
            other => CredentialsError::Fetch(
                std::error::Error::source(&other).map_or(other.to_string(), |s| format!("{other}: {s}")),
            ),
        })?;
        let refresh = refresh_at(SystemTime::now(), fresh.expiry());
        tracing::debug!(access_key = fresh.access_key_id(), ?refresh, "AWS credentials fetched");
        *cached = Some((fresh.clone(), refresh));
        Ok(fresh)
    }
}

/// An S3 error code that means the credentials used are no longer good (expired, or revoked in a rotation), not
/// that the request is forbidden: fetch credentials again and resend once.
pub fn is_stale_credentials(body: &str) -> bool {
    [
        "<Code>ExpiredToken</Code>",
        "<Code>InvalidAccessKeyId</Code>",
        "<Code>InvalidToken</Code>",
        "<Code>TokenRefreshRequired</Code>",
    ]
    .iter()
    .any(|c| body.contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn refreshes_five_minutes_ahead_or_halfway_through_a_short_life() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let six_hours = t0 + Duration::from_secs(6 * 3600);
        assert_eq!(refresh_at(t0, Some(six_hours)), Some(six_hours - Duration::from_secs(300)));
        let two_minutes = t0 + Duration::from_secs(120);
        assert_eq!(refresh_at(t0, Some(two_minutes)), Some(t0 + Duration::from_secs(60)));
        assert_eq!(refresh_at(t0, None), None);
        assert_eq!(refresh_at(t0, Some(t0 - Duration::from_secs(1))), Some(t0 - Duration::from_secs(1)));
    }

    #[test]
    fn stale_credential_codes() {
        assert!(is_stale_credentials("<Error><Code>ExpiredToken</Code><Message>The provided token has expired"));
        assert!(is_stale_credentials("<Error><Code>InvalidAccessKeyId</Code></Error>"));
        assert!(!is_stale_credentials("<Error><Code>AccessDenied</Code></Error>"));
    }

    /// A provider that hands out key N on its N-th call, expiring `life` after it.
    #[derive(Debug)]
    struct Counting {
        calls: Arc<AtomicU32>,
        life: Option<Duration>,
    }

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            let expiry = self.life.map(|l| SystemTime::now() + l);
            aws_credential_types::provider::future::ProvideCredentials::ready(Ok(Credentials::new(
                format!("key{n}"),
                "secret",
                Some("token".into()),
                expiry,
                "test",
            )))
        }
    }

    #[tokio::test]
    async fn cached_until_due_and_fetched_again_when_refused() {
        let calls = Arc::new(AtomicU32::new(0));
        let creds = AwsCredentials::new(SharedCredentialsProvider::new(Counting {
            calls: calls.clone(),
            life: Some(Duration::from_secs(3600)),
        }));
        assert_eq!(creds.get(None).await.unwrap().access_key_id(), "key0");
        assert_eq!(creds.get(None).await.unwrap().access_key_id(), "key0");
        assert_eq!(calls.load(Ordering::SeqCst), 1, "cached, not fetched per request");
        // Refused with an older key than the cache holds: no new fetch (another request already refreshed).
        assert_eq!(creds.get(Some("key-older")).await.unwrap().access_key_id(), "key0");
        assert_eq!(creds.get(Some("key0")).await.unwrap().access_key_id(), "key1");
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        // Credentials at the end of their life are fetched again on the next request; static keys never are.
        let ending = AwsCredentials::new(SharedCredentialsProvider::new(Counting {
            calls: calls.clone(),
            life: Some(Duration::ZERO),
        }));
        let a = ending.get(None).await.unwrap();
        let b = ending.get(None).await.unwrap();
        assert_ne!(a.access_key_id(), b.access_key_id(), "fetched again, not used past expiry");
        let fixed = AwsCredentials::new(SharedCredentialsProvider::new(Counting { calls: calls.clone(), life: None }));
        let a = fixed.get(None).await.unwrap();
        assert_eq!(fixed.get(None).await.unwrap().access_key_id(), a.access_key_id());
    }
}
