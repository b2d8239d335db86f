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
