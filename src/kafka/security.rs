//! TLS and SASL to the broker: rustls (ring, no OpenSSL) and rskafka's SASL PLAIN / SCRAM-SHA-256 / SCRAM-SHA-512,
//! and Amazon MSK's IAM access control (`AWS_MSK_IAM`: OAUTHBEARER with a SigV4 token, see `msk_iam`).
//!
//! Secrets come from the environment (`KAFKA_SASL_PASSWORD`) or a file (`--sasl-password-file`), never from a flag
//! (flags show in `ps`), and are kept in a `Secret` whose `Debug` and `Display` print `****`, so no log line, error
//! or `config show` can carry them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rskafka::client::{Credentials, SaslConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::Error;

/// Kafka's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Protocol {
    #[default]
    #[value(alias = "PLAINTEXT")]
    Plaintext,
    #[value(alias = "SSL")]
    Ssl,
    #[value(name = "sasl_plaintext", alias = "SASL_PLAINTEXT", alias = "sasl-plaintext")]
    SaslPlaintext,
    #[value(name = "sasl_ssl", alias = "SASL_SSL", alias = "sasl-ssl")]
    SaslSsl,
}

impl Protocol {
    pub fn tls(self) -> bool {
        matches!(self, Protocol::Ssl | Protocol::SaslSsl)
    }
    pub fn sasl(self) -> bool {
        matches!(self, Protocol::SaslPlaintext | Protocol::SaslSsl)
    }
}

/// Kafka's `sasl.mechanism`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mechanism {
    #[value(name = "PLAIN", alias = "plain")]
    Plain,
    #[value(name = "SCRAM-SHA-256", alias = "scram-sha-256")]
    ScramSha256,
    #[value(name = "SCRAM-SHA-512", alias = "scram-sha-512")]
    ScramSha512,
    /// Amazon MSK IAM: the name MSK's documentation and AWS's Java library (`aws-msk-iam-auth`) use; on the wire
    /// it is OAUTHBEARER with a presigned token, as AWS's other signers send it.
    #[value(name = "AWS_MSK_IAM", alias = "aws_msk_iam")]
    AwsMskIam,
}

impl std::fmt::Display for Mechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
            Mechanism::AwsMskIam => "AWS_MSK_IAM",
        })
    }
}

/// A value that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Self {
        Secret(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("****")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("****")
    }
}

/// Where TLS material comes from.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// PEM CA bundle; `None` = the system's roots (falling back to Mozilla's, built in).
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// How to talk to the broker. `Debug` never shows the password.
#[derive(Clone, Default)]
pub struct Security {
    pub protocol: Protocol,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The mechanism, the user (for AWS_MSK_IAM: the cluster's region) and the password (empty for AWS_MSK_IAM:
    /// its credentials come from the AWS chain on each connection).
    pub sasl: Option<(Mechanism, String, Secret)>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("protocol", &self.protocol)
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl.as_ref().map(|(m, u, p)| (m, u, p)))
            .finish()
    }
}

impl Security {
    /// Builds the settings, reading certificates, keys and the password now, so a bad path fails at start.
    pub fn new(
        protocol: Protocol,
        files: &TlsFiles,
        sasl: Option<(Mechanism, String)>,
        password_file: Option<&Path>,
    ) -> Result<Security, Error> {
        let tls = if protocol.tls() {
            Some(Arc::new(tls_config(files)?))
        } else {
            if files.ca_file.is_some() || files.client_cert.is_some() {
                return Err(Error::Config("--ca-file / --client-cert need --security-protocol ssl or sasl_ssl".into()));
            }
            None
        };
        let sasl = match (protocol.sasl(), sasl) {
            (true, Some((Mechanism::AwsMskIam, region))) => Some((Mechanism::AwsMskIam, region, Secret(String::new()))),
            (true, Some((mechanism, user))) => Some((mechanism, user, password(password_file)?)),
            (true, None) => {
                return Err(Error::Config(format!(
                    "--security-protocol {protocol:?} needs --sasl-username (or KAFKA_SASL_USERNAME)"
                )));
            }
            (false, Some(_)) => {
                return Err(Error::Config(
                    "--sasl-username is set but --security-protocol is not sasl_plaintext or sasl_ssl".into(),
                ));
            }
            (false, None) => None,
        };
        Ok(Security { protocol, tls, sasl })
    }

    /// rskafka's SASL settings.
    pub fn sasl_config(&self) -> Option<SaslConfig> {
        let (m, user, pass) = self.sasl.as_ref()?;
        if *m == Mechanism::AwsMskIam {
            return Some(super::msk_iam::sasl_config(user.clone()));
        }
        let c = Credentials::new(user.clone(), pass.expose().to_string());
        Some(match m {
            Mechanism::Plain => SaslConfig::Plain(c),
            Mechanism::ScramSha256 => SaslConfig::ScramSha256(c),
            Mechanism::ScramSha512 => SaslConfig::ScramSha512(c),
            Mechanism::AwsMskIam => unreachable!("answered above"),
        })
    }
}

/// The SASL password: from `file` (one line) or `KAFKA_SASL_PASSWORD`.
fn password(file: Option<&Path>) -> Result<Secret, Error> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("--sasl-password-file {}: {e}", path.display())))?;
        let line = text.lines().next().unwrap_or_default().to_string();
        if line.is_empty() {
            return Err(Error::Config(format!("--sasl-password-file {} is empty", path.display())));
        }
        return Ok(Secret(line));
    }
    match std::env::var("KAFKA_SASL_PASSWORD") {
        Ok(p) if !p.is_empty() => Ok(Secret(p)),
        _ => Err(Error::Config(
            "SASL needs a password: set KAFKA_SASL_PASSWORD or pass --sasl-password-file (there is no password flag: \
             flags show in `ps`)"
                .into(),
        )),
    }
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| Error::Config(format!("{what} {}: {e}", path.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Config(format!("{what} {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Config(format!("{what} {}: no PEM certificate in it", path.display())));
    }
    Ok(certs)
}

/// rustls client settings: the CA file or the system's roots, and an optional client certificate (mutual TLS).
pub fn tls_config(files: &TlsFiles) -> Result<rustls::ClientConfig, Error> {
    let mut roots = rustls::RootCertStore::empty();
    match &files.ca_file {
        Some(path) => {
            for c in read_certs(path, "--ca-file")? {
                roots.add(c).map_err(|e| Error::Config(format!("--ca-file {}: {e}", path.display())))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots);
    match (&files.client_cert, &files.client_key) {
        (Some(cert), Some(key)) => {
            let certs = read_certs(cert, "--client-cert")?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| Error::Config(format!("--client-key {}: {e}", key.display())))?;
            builder.with_client_auth_cert(certs, key).map_err(|e| Error::Config(format!("client certificate: {e}")))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(Error::Config("--client-cert and --client-key go together".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Security {
            protocol: Protocol::SaslSsl,
            tls: None,
            sasl: Some((Mechanism::ScramSha512, "alice".into(), Secret("hunter2".into()))),
        };
        let shown = format!("{s:?} {}", Secret("hunter2".into()));
        assert!(!shown.contains("hunter2") && shown.contains("alice") && shown.contains("****"), "{shown}");
    }

    #[test]
    fn settings_are_checked_at_start() {
        let none = TlsFiles::default();
        assert!(
            Security::new(Protocol::SaslPlaintext, &none, None, None).unwrap_err().to_string().contains("username")
        );
        let ca = TlsFiles { ca_file: Some("/no/such/ca.pem".into()), ..TlsFiles::default() };
        assert!(Security::new(Protocol::Ssl, &ca, None, None).unwrap_err().to_string().contains("/no/such/ca.pem"));
        assert!(Security::new(Protocol::Plaintext, &ca, None, None).is_err(), "a CA without TLS is a mistake");
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret\n").unwrap();
        let s = Security::new(Protocol::SaslPlaintext, &none, Some((Mechanism::Plain, "u".into())), Some(&pw)).unwrap();
        assert_eq!(s.sasl.unwrap().2.expose(), "s3cret", "one line, without the newline");
        let half = TlsFiles { client_cert: Some(pw.clone()), ..TlsFiles::default() };
        assert!(tls_config(&half).is_err());
        assert!(tls_config(&none).is_ok(), "system roots (or the built-in ones)");
    }
}
