//! Amazon MSK IAM access control (`--sasl-mechanism AWS_MSK_IAM`): SASL OAUTHBEARER whose token is a SigV4
//! presigned `kafka-cluster:Connect` request for `kafka.<region>.amazonaws.com`, base64url without padding, as
//! AWS's signer libraries (Java, Python, Go, JavaScript, .NET; none for Rust) make it. The credentials are the
//! same chain as S3's (`crate::aws`: cached, refreshed before expiry); a token lives 15 minutes and is made anew
//! for every connection (rskafka asks on each SASL handshake), so a broker restart or a new connection after a
//! rotation never presents an expired one.
//!
//! The signing itself is aws-sigv4's (signing key, signature); what is ticklake's is the request it signs, laid
//! out byte for byte as `aws-msk-iam-sasl-signer-python` lays it out (checked in proto-tests/kafka_iam.rs).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};

/// How long a token is valid (the signers' default).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// The user agent ticklake's tokens carry (the signers put theirs in the URL; MSK logs it).
pub fn user_agent() -> String {
    format!("ticklake/{}", env!("CARGO_PKG_VERSION"))
}

/// SigV4's URI encoding: everything but `A-Z a-z 0-9 - _ . ~`, upper-case hex.
const SIGV4: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

fn enc(s: &str) -> String {
    utf8_percent_encode(s, SIGV4).to_string()
}

/// The credentials a token is signed with.
#[derive(Clone)]
pub struct SigningCredentials<'a> {
    pub access_key: &'a str,
    pub secret_key: &'a str,
    pub session_token: Option<&'a str>,
}

/// The token for `region` signed at `at`, and when it expires.
pub fn token(creds: &SigningCredentials<'_>, region: &str, at: SystemTime, user_agent: &str) -> (String, SystemTime) {
    use base64::Engine;
    let time = chrono::DateTime::<chrono::Utc>::from(at);
    let (date, stamp) = (time.format("%Y%m%d").to_string(), time.format("%Y%m%dT%H%M%SZ").to_string());
    let host = format!("kafka.{region}.amazonaws.com");
    let scope = format!("{date}/{region}/kafka-cluster/aws4_request");
    let expires = TOKEN_LIFETIME.as_secs().to_string();
    // The query in the order the signers write it; SigV4 signs it sorted by name.
    let mut query = vec![
        ("Action", "kafka-cluster:Connect".to_string()),
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256".to_string()),
        ("X-Amz-Credential", format!("{}/{scope}", creds.access_key)),
        ("X-Amz-Date", stamp.clone()),
        ("X-Amz-Expires", expires),
        ("X-Amz-SignedHeaders", "host".to_string()),
    ];
    if let Some(t) = creds.session_token {
        query.push(("X-Amz-Security-Token", t.to_string()));
    }
    let mut sorted = query.clone();
    sorted.sort();
    let canonical_query = sorted.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&");
    let empty_payload = hex(&Sha256::digest(b""));
    let canonical = format!("GET\n/\n{canonical_query}\nhost:{host}\n\nhost\n{empty_payload}");
    let to_sign = format!("AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}", hex(&Sha256::digest(canonical.as_bytes())));
    let key = aws_sigv4::sign::v4::generate_signing_key(creds.secret_key, at, region, "kafka-cluster");
    let signature = aws_sigv4::sign::v4::calculate_signature(key, to_sign.as_bytes());
    query.push(("X-Amz-Signature", signature));
    query.push(("User-Agent", user_agent.to_string()));
    let url = format!(
        "https://{host}/?{}",
        query.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
    );
    (base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url), at + TOKEN_LIFETIME)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// rskafka's OAUTHBEARER settings for MSK IAM: each SASL handshake signs a token with the chain's current
/// credentials.
pub fn sasl_config(region: String) -> rskafka::client::SaslConfig {
    let chain: Arc<tokio::sync::OnceCell<crate::aws::AwsCredentials>> = Arc::new(tokio::sync::OnceCell::new());
    let callback: rskafka::client::OauthCallback = Arc::new(move || {
        let (chain, region) = (chain.clone(), region.clone());
        Box::pin(async move {
            let chain = chain.get_or_try_init(crate::aws::AwsCredentials::default_chain).await?;
            let c = chain.get(None).await?;
            let creds = SigningCredentials {
                access_key: c.access_key_id(),
                secret_key: c.secret_access_key(),
                session_token: c.session_token(),
            };
            let (token, _) = token(&creds, &region, SystemTime::now(), &user_agent());
            Ok(token)
        })
    });
    rskafka::client::SaslConfig::Oauthbearer(rskafka::client::OauthBearerCredentials {
        callback,
        authz_id: None,
        bearer_kvs: vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(t: &str) -> String {
        use base64::Engine;
        String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(t).unwrap()).unwrap()
    }

    #[test]
    fn token_is_a_presigned_connect_url() {
        let creds = SigningCredentials { access_key: "AKID", secret_key: "secret", session_token: Some("a/b+c=") };
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_565_600);
        let (t, expires) = token(&creds, "eu-west-1", at, "ticklake/test");
        assert!(!t.contains('=') && !t.contains('+') && !t.contains('/'), "base64url without padding: {t}");
        assert_eq!(expires, at + Duration::from_secs(900));
        let url = decode(&t);
        assert!(url.starts_with("https://kafka.eu-west-1.amazonaws.com/?Action=kafka-cluster%3AConnect&"), "{url}");
        assert!(url.contains("X-Amz-Credential=AKID%2F20261206%2Feu-west-1%2Fkafka-cluster%2Faws4_request"), "{url}");
        assert!(url.contains("&X-Amz-Date=20261206T140000Z&X-Amz-Expires=900&"), "{url}");
        assert!(url.contains("X-Amz-Security-Token=a%2Fb%2Bc%3D&X-Amz-Signature="), "{url}");
        assert!(url.ends_with("&User-Agent=ticklake%2Ftest"), "{url}");
        // The signature covers the credentials and the time: another secret or second signs differently.
        let other = SigningCredentials { secret_key: "secret2", ..creds.clone() };
        assert_ne!(token(&other, "eu-west-1", at, "ticklake/test").0, t);
        assert_ne!(token(&creds, "eu-west-1", at + Duration::from_secs(1), "ticklake/test").0, t);
        let no_session = SigningCredentials { session_token: None, ..creds };
        assert!(!decode(&token(&no_session, "eu-west-1", at, "x").0).contains("Security-Token"));
    }
}
