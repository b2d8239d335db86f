//! TLS and SASL against Apache Kafka's own listeners: SSL and SASL_SSL (with mutual TLS) on a broker of the test's
//! own, whose certificates the test makes (a private CA, PEM files Kafka reads as they are); SASL_PLAINTEXT with
//! SCRAM-SHA-256/512 and PLAIN on the shared broker (`servers.sh start-reference`).

use std::process::Output;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use crate::env_or_skip;
use crate::support::*;

/// A CA and certificates it signed, as PEM files in `dir`.
struct Pki {
    ca: std::path::PathBuf,
    /// The broker's key and certificate in one PEM file (Kafka's `ssl.keystore.type=PEM`).
    server: std::path::PathBuf,
    client_cert: std::path::PathBuf,
    client_key: std::path::PathBuf,
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
        server: write("server.pem", format!("{}{}", server_key.serialize_pem(), server.pem())),
        client_cert: write("client.pem", client.pem()),
        client_key: write("client.key", client_key.serialize_pem()),
    }
}

/// A broker of the test's own with SSL and SASL_SSL listeners (client certificates required when `mutual`); the
/// (SSL, SASL_SSL) addresses.
fn tls_broker(pki: &Pki, mutual: bool) -> (Broker, String, String) {
    let (ssl, sasl_ssl) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let mut lines = vec![
        format!("listeners+=SSL://{ssl},SASL_SSL://{sasl_ssl}"),
        format!("advertised.listeners+=SSL://{ssl},SASL_SSL://{sasl_ssl}"),
        "listener.security.protocol.map=CLIENT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL"
            .to_string(),
        "listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512".into(),
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;".into(),
    ];
    for l in ["ssl", "sasl_ssl"] {
        lines.push(format!("listener.name.{l}.ssl.keystore.type=PEM"));
        lines.push(format!("listener.name.{l}.ssl.keystore.location={}", pki.server.display()));
        lines.push(format!("listener.name.{l}.ssl.truststore.type=PEM"));
        lines.push(format!("listener.name.{l}.ssl.truststore.location={}", pki.ca.display()));
        lines.push(format!("listener.name.{l}.ssl.client.auth={}", if mutual { "required" } else { "none" }));
    }
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    (Broker::with(None, &lines), ssl, sasl_ssl)
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
        let (broker, tls_addr, sasl_ssl) = tls_broker(&pki, mutual);
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
            // Without the client certificate the broker refuses the handshake.
            let out = run_async(tl(&["topic", "list", "--kafka-timeout", "3s", "--ca-file", ca])).await;
            assert!(!out.status.success(), "mutual TLS without a client certificate must fail");
        } else {
            // Doctor speaks TLS too, and checks the advertised (TLS) address.
            let out = run_async(tl(&["doctor", "--ca-file", ca])).await;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            assert_eq!(out.status.code(), Some(0), "{text}");
            assert!(text.contains(&format!("1={tls_addr}")), "{text}");
        }
        // SASL_SSL: a SCRAM user made through the broker's plaintext listener, then TLS and SCRAM together.
        let script = format!(
            r#"
from confluent_kafka.admin import AdminClient, UserScramCredentialUpsertion as U, ScramCredentialInfo as I, ScramMechanism as M
a = AdminClient({{"bootstrap.servers": "{}"}})
for f in a.alter_user_scram_credentials([U("carol", I(M.SCRAM_SHA_512, 8192), b"carol-Pw-3")]).values():
    f.result(timeout=10)
"#,
            broker.addr
        );
        ok(run(env.python().args(["-c", &script])));
        let mut c = env.ticklake();
        c.env("KAFKA_BROKERS", &sasl_ssl)
            .env("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
            .env("KAFKA_SASL_USERNAME", "carol");
        c.env("KAFKA_SASL_PASSWORD", "carol-Pw-3").env("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512");
        c.args(["consume", "--topic", &topic, "--exit-at-end", "--count", "--ca-file", ca]).args(&client);
        let out = ok(run_async(c).await);
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "4000", "{}", stderr(&out));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sasl_scram_users_get_in_and_a_wrong_password_is_refused_without_showing_it() {
    let env = env_or_skip!();
    // Users through the shared broker's plaintext listener; the clients then use its SASL_PLAINTEXT listener.
    let sasl = std::env::var("TICKLAKE_KAFKA_SASL").expect("TICKLAKE_KAFKA_SASL (set by `just proto`)");
    let script = format!(
        r#"
from confluent_kafka.admin import AdminClient, UserScramCredentialUpsertion as U, ScramCredentialInfo as I, ScramMechanism as M
a = AdminClient({{"bootstrap.servers": "{}"}})
for f in a.alter_user_scram_credentials([U("alice", I(M.SCRAM_SHA_256, 4096), b"alice-Pw-1"), U("bob", I(M.SCRAM_SHA_512, 8192), b"bob-Pw-2")]).values():
    f.result(timeout=10)
"#,
        env.brokers
    );
    ok(run(env.python().args(["-c", &script])));

    let dir = tempfile::tempdir().unwrap();
    let bob_file = dir.path().join("bob.pw");
    std::fs::write(&bob_file, "bob-Pw-2\n").unwrap();
    let tl = |user: &str, mechanism: &str| {
        let mut c = env.ticklake();
        c.env("KAFKA_BROKERS", &sasl)
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
    plain.env("KAFKA_BROKERS", &sasl).args(["topic", "list", "--kafka-timeout", "3s"]);
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
    // PLAIN, with the user the broker was formatted with.
    let mut plain = tl(&std::env::var("TICKLAKE_KAFKA_SASL_USER").unwrap(), "PLAIN");
    plain.env("KAFKA_SASL_PASSWORD", std::env::var("TICKLAKE_KAFKA_SASL_PASSWORD").unwrap());
    plain.args(["consume", "--topic", &topic, "--exit-at-end", "--count"]);
    let out = ok(run_async(plain).await);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "500");
}
