//! TLS and SASL. SASL SCRAM-SHA-256/512 runs against the real broker with authentication on (Tansu with sqlite
//! storage keeps SCRAM users). Tansu 0.6 accepts `--cert/--key` but never wraps its connections in TLS (its
//! acceptor is built and left unused, `tansu-broker` 0.6.0 `src/broker.rs`), so the client's TLS is tested
//! against a TLS terminator written here with rustls, in front of the real broker, which advertises it.

use std::process::Output;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::net::{TcpListener, TcpStream};

use crate::env_or_skip;
use crate::support::*;

/// A CA and a certificate it signed, as PEM files in `dir`.
struct Pki {
    ca: std::path::PathBuf,
    server_cert: Vec<rustls::pki_types::CertificateDer<'static>>,
    server_key: rustls::pki_types::PrivateKeyDer<'static>,
    client_cert: std::path::PathBuf,
    client_key: std::path::PathBuf,
    client_ca: rustls::pki_types::CertificateDer<'static>,
}

fn pki(dir: &std::path::Path) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(vec![]).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "ticklake test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |names: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names).unwrap().signed_by(&key, &issuer).unwrap();
        (cert, key)
    };
    let (server, server_key) = leaf(vec!["127.0.0.1".into(), "localhost".into()]);
    let (client, client_key) = leaf(vec!["ticklake-client".into()]);
    let write = |name: &str, pem: String| {
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap();
        p
    };
    Pki {
        ca: write("ca.pem", ca.pem()),
        server_cert: vec![server.der().clone()],
        server_key: rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
        client_cert: write("client.pem", client.pem()),
        client_key: write("client.key", client_key.serialize_pem()),
        client_ca: ca.der().clone(),
    }
}

/// Terminates TLS on `listener` and forwards the plaintext to `upstream`; with `client_ca`, client certificates
/// signed by it are required (mutual TLS).
fn terminator(listener: TcpListener, upstream: String, pki: &Pki, mutual: bool) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder =
        rustls::ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions().unwrap();
    let builder = if mutual {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.client_ca.clone()).unwrap();
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let config = builder.with_single_cert(pki.server_cert.clone(), pki.server_key.clone_key()).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let Ok(mut up) = TcpStream::connect(&upstream).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
            });
        }
    });
}

async fn run_async(mut cmd: std::process::Command) -> Output {
    tokio::task::spawn_blocking(move || run(&mut cmd)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_a_private_ca_and_mutual_tls() {
    let env = env_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    for mutual in [false, true] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tls_addr = listener.local_addr().unwrap().to_string();
        // The broker advertises the terminator: clients come back through TLS for every request.
        let broker = Broker::memory(Some(&tls_addr));
        terminator(listener, broker.addr.clone(), &pki, mutual);
        let tl = |extra: &[&str]| {
            let mut c = env.ticklake();
            c.env("KAFKA_BROKERS", &tls_addr).env("KAFKA_SECURITY_PROTOCOL", "SSL").args(extra);
            c
        };
        let ca = pki.ca.to_str().unwrap();
        let client: Vec<&str> = if mutual {
            vec!["--client-cert", pki.client_cert.to_str().unwrap(), "--client-key", pki.client_key.to_str().unwrap()]
        } else {
            vec![]
        };
        let topic = random_name("tls");
        let csv = repo_path("data/indices.csv");
        let mut replay =
            tl(&["replay", csv.to_str().unwrap(), "--topic", &topic, "--partitions", "2", "--ca-file", ca]);
        replay.args(&client).env("TICKLAKE_LOG_FORMAT", "json");
        let out = ok(run_async(replay).await);
        assert_eq!(summary_count(&stderr(&out), "sent"), 4000);
        let mut consume = tl(&["consume", "--topic", &topic, "--exit-at-end", "--count", "--ca-file", ca]);
        consume.args(&client);
        let out = ok(run_async(consume).await);
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "4000");

        // The system roots do not know the private CA: a clear TLS error, exit 5, pointing at --ca-file.
        let mut untrusted = tl(&["topic", "list", "--kafka-timeout", "3s"]);
        untrusted.args(&client);
        let out = run_async(untrusted).await;
        assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
        assert!(stderr(&out).contains("TLS with Kafka") && stderr(&out).contains("--ca-file"), "{}", stderr(&out));
        if mutual {
            // Without the client certificate the terminator refuses the handshake.
            let out = run_async(tl(&["topic", "list", "--kafka-timeout", "3s", "--ca-file", ca])).await;
            assert!(!out.status.success(), "mutual TLS without a client certificate must fail");
        } else {
            // Doctor speaks TLS too, and checks the advertised (TLS) address.
            let out = run_async(tl(&["doctor", "--ca-file", ca])).await;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            assert_eq!(out.status.code(), Some(0), "{text}");
            assert!(text.contains(&format!("advertised: 111={tls_addr}")), "{text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sasl_scram_users_get_in_and_a_wrong_password_is_refused_without_showing_it() {
    let env = env_or_skip!();
    let mut broker = Broker::sqlite();
    // Users first, while the broker is open; then restart it with authentication required.
    let script = format!(
        r#"
from confluent_kafka.admin import AdminClient, UserScramCredentialUpsertion as U, ScramCredentialInfo as I, ScramMechanism as M
a = AdminClient({{"bootstrap.servers": "{}"}})
for f in a.alter_user_scram_credentials([U("alice", I(M.SCRAM_SHA_256, 4096), b"alice-Pw-1"), U("bob", I(M.SCRAM_SHA_512, 8192), b"bob-Pw-2")]).values():
    f.result(timeout=10)
"#,
        broker.addr
    );
    ok(run(env.python().args(["-c", &script])));
    broker.kill();
    broker.start_with(&["--authentication"]);

    let dir = tempfile::tempdir().unwrap();
    let bob_file = dir.path().join("bob.pw");
    std::fs::write(&bob_file, "bob-Pw-2\n").unwrap();
    let tl = |user: &str, mechanism: &str| {
        let mut c = env.ticklake();
        c.env("KAFKA_BROKERS", &broker.addr)
            .env("KAFKA_SECURITY_PROTOCOL", "sasl_plaintext")
            .env("KAFKA_SASL_MECHANISM", mechanism)
            .env("KAFKA_SASL_USERNAME", user)
            .env_remove("KAFKA_SASL_PASSWORD");
        c
    };
    let topic = random_name("sasl");
    let csv = repo_path("data/indices.csv");
    // alice, SCRAM-SHA-256, password from the environment.
    let mut replay = tl("alice", "SCRAM-SHA-256");
    replay.env("KAFKA_SASL_PASSWORD", "alice-Pw-1");
    replay.args(["replay", csv.to_str().unwrap(), "--topic", &topic, "--partitions", "2", "--limit", "500"]);
    replay.env("TICKLAKE_LOG_FORMAT", "json");
    let out = ok(run_async(replay).await);
    assert_eq!(summary_count(&stderr(&out), "sent"), 500);
    // bob, SCRAM-SHA-512, password from a file.
    let mut consume = tl("bob", "SCRAM-SHA-512");
    consume.args(["consume", "--topic", &topic, "--exit-at-end", "--count", "--sasl-password-file"]).arg(&bob_file);
    let out = ok(run_async(consume).await);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "500");

    // A wrong password: refused, exit 5, its own message, and the password appears nowhere, even at trace level.
    let secret = "Wr0ng-and-SECRET-pw";
    let mut wrong = tl("alice", "SCRAM-SHA-256");
    wrong.env("KAFKA_SASL_PASSWORD", secret).env("RUST_LOG", "trace").args(["-vv", "topic", "list"]);
    wrong.args(["--kafka-timeout", "3s"]);
    let out = run_async(wrong).await;
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(out.status.code(), Some(5), "{all}");
    assert!(all.contains("refused our credentials"), "{all}");
    assert!(!all.contains(secret), "the password leaked:\n{all}");
    // Nor in --help or config show, with the secret in the environment.
    for args in [vec!["sink", "--help"], vec!["config", "show", "sink"]] {
        let mut c = tl("alice", "SCRAM-SHA-256");
        c.env("KAFKA_SASL_PASSWORD", secret).args(&args);
        let out = ok(run_async(c).await);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(!text.contains(secret), "{args:?} shows the password:\n{text}");
        assert!(text.contains("sasl"), "{args:?}:\n{text}");
    }
    // A client without SASL is told what to try: unreachable (4), not a hang.
    let mut plain = env.ticklake();
    plain.env("KAFKA_BROKERS", &broker.addr).args(["topic", "list", "--kafka-timeout", "3s"]);
    let out = run_async(plain).await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("--security-protocol"), "{}", stderr(&out));
    // And doctor authenticates.
    let mut doctor = tl("bob", "SCRAM-SHA-512");
    doctor.args(["doctor", "--topic", &topic, "--sasl-password-file"]).arg(&bob_file);
    let out = run_async(doctor).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("authenticated with SCRAM-SHA-512 as 'bob'"), "{text}");
}
