//! One writer per Kafka partition of a lake: a second sink stops (exit 13) naming the first; a paused sink that
//! wakes after another took over stops at its next write; the lake stays exactly once throughout.

use crate::env_or_skip;
use crate::support::*;

fn sink(env: &TestEnv, topic: &str, to: &str) -> Logged {
    Logged::spawn(env.ticklake().args(["sink", "--topic", topic, "--to", to]).args([
        "--lease-ttl",
        "2s",
        "--max-age",
        "1s",
        "--stats-every",
        "300ms",
    ]))
}

#[test]
fn two_sinks_started_at_once_admit_exactly_one() {
    let env = env_or_skip!();
    let topic = random_name("fence");
    replay_csv(&env, &repo_path("data/indices.csv"), &topic, 2, &[]);
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("lake");
    let to = to.to_str().unwrap();
    let (a, b) = (sink(&env, &topic, to), sink(&env, &topic, to));
    // Exactly one of them stops, with its own code and the other's host and start time; it wrote nothing.
    let a_stopped = wait_until("one of the two sinks stopping", || match (a.exited(), b.exited()) {
        (true, true) => panic!("both stopped"),
        (true, false) => Some(true),
        (false, true) => Some(false),
        (false, false) => None,
    });
    let (stopped, running) = if a_stopped { (a, b) } else { (b, a) };
    let (status, err) = stopped.finish();
    assert_eq!(status.code(), Some(13), "{err}");
    assert!(err.contains("another sink writes this Kafka partition") && err.contains("started 20"), "{err}");
    assert!(err.contains(&format!("on host {}", hostname())), "{err}");
    assert!(!err.contains("caught up"), "the stopped sink consumed nothing:\n{err}");
    // The other one keeps writing: everything lands, once.
    running.wait_for("the remaining sink storing all 4000 rows", |l| l.contains("4000 rows"));
    running.signal("-TERM");
    let (status, err) = running.finish();
    assert_eq!(status.code(), Some(143), "{err}");
    let report = verify_lake(&env, &topic, to);
    assert!(report.contains("exactly once: yes"), "{report}");
    // A third sink after a clean stop starts at once (the lease was released).
    let out = run(&mut sink_cmd(&env, &topic, to, &["--lease-ttl", "2s"]));
    assert!(out.status.success(), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_sink_that_wakes_after_a_takeover_stops_without_a_duplicate() {
    let env = env_or_skip!();
    let topic = random_name("zombie");
    replay_csv(&env, &repo_path("data/indices.csv"), &topic, 2, &[]);
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("lake");
    let to = to.to_str().unwrap();
    let a = sink(&env, &topic, to);
    a.wait_for("the first sink storing all 4000 rows", |l| l.contains("4000 rows"));
    a.signal("-STOP");
    // While it is paused: more records, and a second sink, which waits for the lease to lapse and takes over.
    replay_csv(&env, &repo_path("data/indices.csv"), &topic, 2, &["--limit", "500"]);
    let b = sink(&env, &topic, to);
    b.wait_for("the takeover", |l| l.contains("taking over a lease"));
    b.wait_for("the second sink storing the 500 new rows", |l| l.contains(" 500 rows"));
    // The paused one wakes: its next write (a lease renewal) is refused, and it stops.
    a.signal("-CONT");
    let (status, err) = a.finish();
    assert_eq!(status.code(), Some(13), "{err}");
    assert!(err.contains("took this partition's lease over"), "{err}");
    b.signal("-TERM");
    let (status, err) = b.finish();
    assert_eq!(status.code(), Some(143), "{err}");
    let report = verify_lake(&env, &topic, to);
    assert!(report.contains("exactly once: yes"), "{report}");
    let rows: u64 =
        report.lines().filter_map(|l| l.split(" covered by ").nth(1)?.split(' ').next()?.parse::<u64>().ok()).sum();
    assert_eq!(rows, 4500, "every offset once, none lost:\n{report}");
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string()
}
