//! Connecting to a cluster: the checks that make a failed connect say why in milliseconds (a refused or unresolved
//! bootstrap address, a port that answers but is not Kafka), the rskafka client with the configured TLS and SASL,
//! and what a failed connect means for the user (credentials refused, TLS, a listener that wants TLS or SASL, no
//! answer). `Kafka::connect` is the one caller; `doctor` shares the TCP probe.

use std::time::Duration;

use rskafka::BackoffConfig;
use rskafka::client::error::{Error as RsError, ProtocolError};
use rskafka::client::{Client, ClientBuilder};

use super::{Error, KafkaConfig, Result, metadata, security};

/// Connects and fetches metadata, within `cfg.timeout`.
///
/// First a plain TCP connect to each bootstrap address, so that "refused" or "no such host" comes back in
/// milliseconds with each address's own reason, instead of after rskafka's retries run out.
pub(super) async fn client(cfg: &KafkaConfig) -> Result<Client> {
    probe_bootstrap(cfg).await?;
    refuse_what_is_not_kafka(cfg).await?;
    let unreachable = |reason: String| Error::Unreachable { brokers: cfg.addr(), timeout: cfg.timeout, reason };
    // rskafka's own deadline (below) ends its retries with the real reason (a refused SASL proof, say); this
    // outer one only catches a connection that hangs. Its slack must outlast one last attempt in flight (a SCRAM
    // handshake on a loaded machine took longer than the 0.5 s once used here, turning "credentials refused"
    // into "no answer").
    let slack = (cfg.timeout / 2).max(Duration::from_secs(2));
    match tokio::time::timeout(cfg.timeout + slack, build_client(cfg, cfg.timeout)).await {
        // Apache Kafka answers a wrong SASL password with SASL_AUTHENTICATION_FAILED, which rskafka retries like
        // a broken connection until the deadline: one more attempt, without retries, tells what the broker said.
        Err(_) => match tokio::time::timeout(cfg.timeout, build_client(cfg, Duration::ZERO)).await {
            Ok(Err(e)) => Err(classify(cfg, e)),
            _ => Err(unreachable(format!("no metadata answer within {:?}", cfg.timeout))),
        },
        Ok(Err(e)) => Err(classify(cfg, e)),
        Ok(Ok(client)) => Ok(client),
    }
}

pub(super) fn is_auth_error(e: &RsError) -> bool {
    let text = e.to_string();
    matches!(e, RsError::ServerError { protocol_error: ProtocolError::SaslAuthenticationFailed, .. })
        || text.contains("Sasl")
        || text.contains("SASL")
}

/// A TLS handshake or certificate failure (rustls reports these as IO errors under the connection error).
fn is_tls_error(e: &RsError) -> bool {
    let text = root_cause(e).to_ascii_lowercase();
    ["certificate", "handshake", "tls", "invalid peer", "unknownissuer", "received corrupt message"]
        .iter()
        .any(|w| text.contains(w))
}

/// An rskafka client for `cfg`, retrying for `deadline` (zero: one attempt).
async fn build_client(cfg: &KafkaConfig, deadline: Duration) -> std::result::Result<Client, RsError> {
    let backoff = BackoffConfig {
        init_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_secs(2),
        base: 2.0,
        deadline: Some(deadline),
    };
    let mut builder = ClientBuilder::new(cfg.brokers.clone()).client_id(cfg.client_id.clone()).backoff_config(backoff);
    if let Some(tls) = &cfg.security.tls {
        builder = builder.tls_config(tls.clone());
    }
    if let Some(sasl) = cfg.security.sasl_config() {
        builder = builder.sasl_config(sasl);
    }
    builder.build().await
}

/// What a failed connect means for the user: credentials refused, TLS, a listener that wants TLS or SASL, or no
/// answer (with rskafka's innermost reason).
fn classify(cfg: &KafkaConfig, e: RsError) -> Error {
    let unreachable = |reason: String| Error::Unreachable { brokers: cfg.addr(), timeout: cfg.timeout, reason };
    if is_auth_error(&e) {
        Error::AuthRefused { brokers: cfg.addr(), reason: e.to_string() }
    } else if is_tls_error(&e) {
        Error::Tls { brokers: cfg.addr(), reason: root_cause(&e) }
    } else if root_cause(&e).contains("early eof") && cfg.security.protocol == security::Protocol::Plaintext {
        unreachable(format!(
            "the broker closed the connection without answering: it may want TLS or SASL (--security-protocol \
             ssl, sasl_plaintext or sasl_ssl): {}",
            root_cause(&e)
        ))
    } else {
        unreachable(root_cause(&e))
    }
}

/// Succeeds if at least one bootstrap address accepts a TCP connection.
async fn probe_bootstrap(cfg: &KafkaConfig) -> Result<()> {
    let per_try = cfg.timeout.min(Duration::from_secs(5));
    let mut reasons = Vec::new();
    for addr in &cfg.brokers {
        match tcp_probe(addr, per_try).await {
            Ok(_) => return Ok(()),
            // A resolved failure names the socket address already; say the configured one once.
            Err(e) if e.reason.starts_with(addr.as_str()) => reasons.push(e.reason),
            Err(e) => reasons.push(format!("{addr}: {}", e.reason)),
        }
    }
    Err(Error::Unreachable { brokers: cfg.addr(), timeout: per_try, reason: reasons.join("; ") })
}

/// Without TLS, one Metadata request to each bootstrap address (as `doctor` sends) tells in a round trip whether a
/// port that took the TCP connection speaks Kafka at all: an S3 or HTTP port answers with bytes no broker sends, and
/// is refused at once with that reason instead of after the metadata deadline. Only that answer stops the start;
/// a slow or silent answer (a SASL listener closes the connection on a request before its handshake) is left to
/// the client's own connect.
async fn refuse_what_is_not_kafka(cfg: &KafkaConfig) -> Result<()> {
    if cfg.security.tls.is_some() {
        return Ok(());
    }
    let per_try = cfg.timeout.min(Duration::from_secs(2));
    let mut reasons = Vec::new();
    for addr in &cfg.brokers {
        match metadata::fetch(addr, Some(&[]), None, per_try).await {
            Err(e) if e.contains(metadata::NOT_KAFKA) => reasons.push(format!("{addr}: {e}")),
            _ => return Ok(()),
        }
    }
    Err(Error::Unreachable {
        brokers: cfg.addr(),
        timeout: per_try,
        reason: format!(
            "{}; is --brokers (KAFKA_BROKERS) the broker's address? `ticklake doctor` checks it",
            reasons.join("; ")
        ),
    })
}

/// Why a TCP probe failed: the name did not resolve, or no resolved address took the connection.
#[derive(Debug, Clone)]
pub struct TcpFailure {
    pub resolved: bool,
    pub reason: String,
}

/// Resolves `host:port` and opens (then drops) a TCP connection to the first address that takes it, each step
/// within `timeout`; returns how long it took. Shared by the connect pre-check and `doctor`.
pub async fn tcp_probe(addr: &str, timeout: Duration) -> std::result::Result<Duration, TcpFailure> {
    let started = std::time::Instant::now();
    let fail = |resolved, reason| TcpFailure { resolved, reason };
    let resolved: Vec<_> = match tokio::time::timeout(timeout, tokio::net::lookup_host(addr)).await {
        Ok(Ok(a)) => a.collect(),
        Ok(Err(e)) => return Err(fail(false, format!("cannot resolve: {e}"))),
        Err(_) => return Err(fail(false, format!("name lookup took more than {timeout:?}"))),
    };
    let mut last = String::from("the name resolves to no address");
    for a in resolved {
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(a)).await {
            Ok(Ok(_)) => return Ok(started.elapsed()),
            Ok(Err(e)) => last = format!("{a}: {e}"),
            Err(_) => {
                last = format!(
                    "{a}: no answer to TCP connect within {timeout:?} (a firewall or security group dropping it?)"
                )
            }
        }
    }
    Err(fail(true, last))
}

/// The innermost error message: rskafka wraps "connection refused" several levels deep.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let inner = cur.to_string();
    let outer = e.to_string();
    if outer.contains(&inner) { outer } else { format!("{outer}: {inner}") }
}
