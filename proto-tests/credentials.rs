//! One credential chain that refreshes (issue 21): S3 credentials from EC2's instance metadata service (IMDSv2) and
//! from ECS's container-credentials endpoint, rotated under a running sink. `check/credentials_server.py` hands out
//! MinIO credentials, rotates them every 20 s (a new MinIO user each time) and revokes the set before 5 s after a
//! rotation (removes its user). The rotation period is 20 s, not EC2's hours or the issue's minute, so that three
//! rotations fit in the time a paced replay of the sample takes; the code path is the same.

use std::collections::BTreeSet;
use std::process::Command;

use crate::env_or_skip;
use crate::support::*;

/// The credentials server, its address, and its events on stderr.
struct CredentialsServer {
    log: Logged,
    addr: String,
}

impl CredentialsServer {
    fn start(env: &TestEnv, report_late: bool) -> CredentialsServer {
        let mut c = env.python();
        c.arg(repo_path("proto-tests/check/credentials_server.py")).args(["--period", "20", "--revoke-after", "5"]);
        if report_late {
            c.arg("--report-late");
        }
        let log = Logged::spawn(&mut c);
        let line = log.wait_for("the credentials server to listen", |l| l.starts_with("listening on "));
        let addr = line.trim_start_matches("listening on ").to_string();
        CredentialsServer { log, addr }
    }

    /// Waits until the n-th set of credentials has been revoked (n rotations have happened and their old sets stopped
    /// working).
    fn wait_revoked(&self, n: usize) {
        assert!(self.log.wait_count(|l| l.starts_with("revoked "), n), "the credentials server stopped");
    }
}

/// A new 3-partition topic and the sample replayed into it at 50 rows/s: 4,000 rows, 80 s of traffic, through three
/// 20 s rotations (the broker needs no AWS credentials: the replay keeps the test's own).
fn paced_replay(env: &TestEnv, prefix: &str) -> (String, Logged) {
    let topic = random_name(prefix);
    ok(run(env.ticklake().args(["topic", "create", &topic, "--partitions", "3"])));
    let mut replay = env.ticklake();
    replay.args(["replay", repo_path("data/indices.csv").to_str().unwrap(), "--topic", &topic, "--rate", "50"]);
    (topic, Logged::spawn(&mut replay))
}

/// `cmd` with no AWS keys of its own: credentials come only from `source` (the chain's IMDS or ECS step).
fn credentials_from(cmd: &mut Command, dir: &std::path::Path, source: (&str, String)) {
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", dir.join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-credentials"))
        .env(source.0, source.1)
        .env("RUST_LOG", "info,ticklake::aws=debug,rskafka=error");
}

/// The distinct access keys a process's log says it fetched.
fn keys_fetched(log: &str) -> BTreeSet<String> {
    log.lines()
        .filter(|l| l.contains("AWS credentials fetched"))
        .filter_map(|l| {
            l.split("access_key=").nth(1)?.split_whitespace().next().map(|k| k.trim_matches('"').to_string())
        })
        .collect()
}

/// A follow-mode sink (as a service runs it) committing every 2 s, so that requests keep going through rotations.
fn follow(env: &TestEnv, topic: &str, to: &str, extra: &[&str], dir: &std::path::Path, src: (&str, String)) -> Logged {
    let mut c = env.ticklake();
    c.args(["sink", "--topic", topic, "--to", to, "--max-age", "2s"]).args(extra);
    credentials_from(&mut c, dir, src);
    Logged::spawn(&mut c)
}

/// Stops a follow-mode sink (SIGTERM: it commits what it holds) and returns its log; it must not have failed.
fn stop(sink: Logged, what: &str) -> String {
    sink.signal("-TERM");
    let (status, log) = sink.finish();
    assert_eq!(status.code(), Some(143), "the {what} sink failed:\n{log}");
    log
}

/// Hive `lake verify`, which must say exactly once; the rows it counts over every Kafka partition.
fn hive_rows(env: &TestEnv, topic: &str, to: &str) -> u64 {
    let report = verify_lake(env, topic, to);
    assert!(report.contains("exactly once: yes"), "{report}");
    report.lines().filter_map(|l| l.split(" covered by ").nth(1)?.split(" row(s)").next()?.parse::<u64>().ok()).sum()
}

/// Iceberg `lake verify` over a table, which must pass; the rows it counts.
fn iceberg_rows(env: &TestEnv, topic: &str, to: &str, ice: &[&str]) -> u64 {
    let out = run(env.ticklake().args(["lake", "verify", "--topic", topic, "--to", to]).args(ice));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success() && text.contains("exactly once: yes"), "{text}\n{}", stderr(&out));
    text.lines().filter_map(|l| l.split(" recorded, ").nth(1)?.split(" row(s)").next()?.parse::<u64>().ok()).sum()
}

/// IMDSv2: a hive sink, an Iceberg sink and `lake compact` through three rotations with no refused request (the
/// chain fetches the next set before the old one stops working) and every offset once.
#[test]
fn imds_credentials_rotate_under_running_sinks_without_a_refused_request() {
    let env = env_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let server = CredentialsServer::start(&env, false);
    let imds = ("AWS_EC2_METADATA_SERVICE_ENDPOINT", format!("http://{}", server.addr));
    let bucket = env.create_bucket();
    let (topic, replay) = paced_replay(&env, "rotate");

    let hive_to = format!("s3://{bucket}/lake");
    let hive = follow(&env, &topic, &hive_to, &[], dir.path(), imds.clone());
    let ice_to = format!("s3://{bucket}/warehouse");
    let catalog = format!("sqlite:{}", dir.path().join("catalog.db").display());
    let table = format!("market.{}", random_name("r").replace('-', "_"));
    let ice = ["--format", "iceberg", "--catalog", &catalog, "--table", &table];
    let iceberg = follow(&env, &topic, &ice_to, &ice, dir.path(), imds.clone());

    server.wait_revoked(3);
    let (status, replayed) = replay.finish();
    assert!(status.success(), "{replayed}");
    let hive_log = stop(hive, "hive");
    let ice_log = stop(iceberg, "iceberg");
    for (what, log) in [("hive", &hive_log), ("iceberg", &ice_log)] {
        let keys = keys_fetched(log);
        assert!(keys.len() >= 3, "the {what} sink followed three rotations, it fetched {keys:?}:\n{log}");
        assert!(!log.contains("refused stale credentials"), "refreshed before expiry, never refused:\n{log}");
        assert!(!log.contains("retrying"), "no failed request:\n{log}");
        eprintln!("{what} sink: {} credential sets fetched through IMDSv2", keys.len());
    }
    assert_eq!(hive_rows(&env, &topic, &hive_to), 4000);
    assert_eq!(iceberg_rows(&env, &topic, &ice_to, &ice[2..]), 4000);

    let mut compact = env.ticklake();
    compact.args(["lake", "compact", "--topic", &topic, "--to", &hive_to]);
    credentials_from(&mut compact, dir.path(), imds);
    let out = run(&mut compact);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(hive_rows(&env, &topic, &hive_to), 4000);
}

/// ECS container credentials whose server reports them valid for an hour but revokes them at each rotation (an
/// early revocation the chain cannot see coming): a request refused for them is sent again with the next set, a
/// retry and not a stop; every offset once.
#[test]
fn container_credentials_revoked_early_cost_a_resend_never_a_stop() {
    let env = env_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let server = CredentialsServer::start(&env, true);
    let ecs = ("AWS_CONTAINER_CREDENTIALS_FULL_URI", format!("http://{}/ecs", server.addr));
    let bucket = env.create_bucket();
    let (topic, replay) = paced_replay(&env, "revoked");
    let to = format!("s3://{bucket}/lake");
    let sink = follow(&env, &topic, &to, &[], dir.path(), ecs.clone());

    server.wait_revoked(3);
    let (status, replayed) = replay.finish();
    assert!(status.success(), "{replayed}");
    let log = stop(sink, "hive");
    let resent = log.lines().filter(|l| l.contains("refused stale credentials")).count();
    let keys = keys_fetched(&log);
    eprintln!("ECS credentials: {} sets fetched, {resent} request(s) sent again after a revocation", keys.len());
    assert!(resent >= 2 && keys.len() >= 3, "revocations were met and ridden out ({keys:?}):\n{log}");
    assert_eq!(hive_rows(&env, &topic, &to), 4000);

    let mut compact = env.ticklake();
    compact.args(["lake", "compact", "--topic", &topic, "--to", &to]);
    credentials_from(&mut compact, dir.path(), ecs);
    let out = run(&mut compact);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(hive_rows(&env, &topic, &to), 4000);
}
