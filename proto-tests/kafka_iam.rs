//! Amazon MSK IAM tokens (issue 21): ticklake's token is byte for byte the one AWS's own signer
//! (`aws-msk-iam-sasl-signer-python`, `check/msk_iam_token.py`) makes for the same credentials, region and signing
//! time, with and without a session token, over seeded random keys, regions and times.

use std::time::{Duration, SystemTime};

use rand::{Rng, SeedableRng};
use ticklake::kafka::msk_iam::{SigningCredentials, token};

use crate::env_or_skip;
use crate::support::*;

#[test]
fn msk_iam_tokens_match_aws_signer_byte_for_byte() {
    let env = env_or_skip!();
    let seed = std::env::var("TICKLAKE_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("msk iam seed {seed} (rerun with TICKLAKE_TEST_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let alnum = |rng: &mut rand::rngs::StdRng, n: usize, extra: &str| -> String {
        let set: Vec<char> =
            ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".to_string() + extra).chars().collect();
        (0..n).map(|_| set[rng.random_range(0..set.len())]).collect()
    };
    for case in 0..6 {
        let access = format!("ASIA{}", alnum(&mut rng, 16, "").to_uppercase());
        let secret = alnum(&mut rng, 40, "/+");
        // Session tokens carry '/', '+' and '=' (base64), which the URL must encode as the signer does.
        let session = (case % 2 == 0).then(|| alnum(&mut rng, 200, "/+="));
        let region = ["us-east-1", "eu-west-1", "ap-southeast-2", "sa-east-1"][rng.random_range(0..4)];
        let secs = 1_700_000_000 + rng.random_range(0..200_000_000u64);
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        let when = chrono::DateTime::<chrono::Utc>::from(at).format("%Y-%m-%dT%H:%M:%SZ").to_string();

        let mut py = env.python();
        py.arg(repo_path("proto-tests/check/msk_iam_token.py")).args([
            "--region",
            region,
            "--access-key",
            &access,
            "--secret-key",
            &secret,
            "--time",
            &when,
        ]);
        if let Some(s) = &session {
            py.args(["--session-token", s]);
        }
        let out = ok(run(&mut py));
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let (theirs, their_expiry, agent) = (lines[0], lines[1].parse::<u64>().unwrap(), lines[2]);

        let creds = SigningCredentials { access_key: &access, secret_key: &secret, session_token: session.as_deref() };
        let (ours, expiry) = token(&creds, region, at, agent);
        assert_eq!(ours, theirs, "case {case}: {region} at {when}, session token: {}", session.is_some());
        let expiry_ms = expiry.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64;
        assert_eq!(expiry_ms, their_expiry, "case {case}: the expiry");
    }
}

/// A broker whose OAUTHBEARER listener accepts only SigV4 tokens signed with `access`/`secret` for us-east-1
/// (`kafka/SigV4Validator.java`, compiled here against the broker's jars).
fn iam_broker(dir: &std::path::Path, access: &str, secret: &str) -> Broker {
    let libs = std::env::var("TICKLAKE_KAFKA_LIBS").expect("TICKLAKE_KAFKA_LIBS (set by `just proto`)");
    let classes = dir.join("classes");
    let javac = run(std::process::Command::new("javac")
        .args(["-cp", &format!("{libs}/*"), "-d"])
        .arg(&classes)
        .arg(repo_path("proto-tests/kafka/SigV4Validator.java")));
    assert!(javac.status.success(), "javac: {}", stderr(&javac));
    let jaas = format!(
        "listener.name.client.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub=\"broker\" accessKey=\"{access}\" secretKey=\"{secret}\" region=\"us-east-1\";"
    );
    Broker::with_classpath(
        None,
        &[
            "listener.security.protocol.map=CLIENT:SASL_PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "sasl.enabled.mechanisms=OAUTHBEARER",
            "listener.name.client.oauthbearer.sasl.server.callback.handler.class=ticklake.test.SigV4Validator",
            &jaas,
        ],
        Some(classes.to_str().unwrap()),
    )
}

/// ticklake with `--sasl-mechanism AWS_MSK_IAM` against `broker`, signing with `access`/`secret`.
fn iam(env: &TestEnv, broker: &Broker, access: &str, secret: &str) -> std::process::Command {
    let mut c = env.ticklake();
    c.env("KAFKA_BROKERS", &broker.addr)
        .env("KAFKA_SECURITY_PROTOCOL", "sasl_plaintext")
        .env("KAFKA_SASL_MECHANISM", "AWS_MSK_IAM")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", access)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env_remove("AWS_SESSION_TOKEN");
    c
}

/// Apache Kafka accepts ticklake's MSK IAM token through an OAUTHBEARER listener that checks the SigV4 signature
/// (replay and consume each row once), and refuses one signed with another secret (exit 5, the broker's refusal).
#[test]
fn kafka_accepts_msk_iam_tokens_and_refuses_a_wrong_signature() {
    let env = env_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let (access, secret) = ("AKIATICKLAKETEST0001", "ticklake-test-secret-key-0123456789abcdef");
    let broker = iam_broker(dir.path(), access, secret);
    let topic = random_name("iam");
    ok(run(iam(&env, &broker, access, secret).args(["topic", "create", &topic, "--partitions", "2"])));
    let csv = repo_path("data/indices.csv");
    ok(run(iam(&env, &broker, access, secret).args([
        "replay",
        csv.to_str().unwrap(),
        "--topic",
        &topic,
        "--limit",
        "300",
    ])));
    let out =
        ok(run(iam(&env, &broker, access, secret).args(["consume", "--topic", &topic, "--exit-at-end", "--count"])));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "300", "every replayed row read back through IAM");

    let wrong = run(iam(&env, &broker, access, "not-the-secret").args(["topic", "describe", &topic]));
    let e = stderr(&wrong);
    assert_eq!(wrong.status.code(), Some(5), "a wrong signature is refused credentials: {e}");
    assert!(e.contains("refused our credentials"), "{e}");
}
