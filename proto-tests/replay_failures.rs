//! Replay's failure paths: bad rows, brokers that can't be reached, Ctrl-C.

use std::time::Duration;

use crate::env_or_skip;
use crate::support::*;

const HEADER: &str = "Index,Date,Open,High,Low,Close,Adj Close,Volume,CloseUSD";

/// 10 good rows, a bad one at line 7 (a price that is text) and one at line 10 (too few fields).
fn csv_with_bad_rows(dir: &std::path::Path) -> std::path::PathBuf {
    let mut text = format!("{HEADER}\n");
    for i in 0..12 {
        let line = i + 2;
        match line {
            7 => text.push_str("HSI,2020-01-07,abc,1,1,1,1,0.0,1\n"),
            10 => text.push_str("HSI,2020-01-10,1,1\n"),
            _ => text.push_str(&format!("HSI,2020-01-{:02},{i}.5,1,1,1,1,{i}.0,1\n", line)),
        }
    }
    let p = dir.join("bad.csv");
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_row_fails_after_sending_every_good_row_before_it() {
    let env = env_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let csv = csv_with_bad_rows(dir.path());
    let topic = random_name("bad-fail");
    let out = run(env.ticklake().args(["replay", csv.to_str().unwrap(), "--topic", &topic, "--partitions", "1"]));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "bad input exit code:\n{err}");
    let other = random_name("bad-fail-json");
    let json = run(env
        .ticklake()
        .args(["replay", csv.to_str().unwrap(), "--topic", &other, "--partitions", "1"])
        .args(["--log-format", "json"]));
    assert_eq!(json.status.code(), Some(3));
    assert!(
        err.contains("bad.csv:7") && err.contains("column 'Open'") && err.contains("'abc' is not a finite number"),
        "{err}"
    );
    assert!(err.contains("--on-error skip"), "says what to do:\n{err}");
    let got = read_topic(&env.brokers, &topic).await;
    let dates: Vec<&str> = got.iter().map(|r| r.value["trade_date"].as_str().unwrap()).collect();
    assert_eq!(dates, ["2020-01-02", "2020-01-03", "2020-01-04", "2020-01-05", "2020-01-06"]);
    assert_eq!(summary_count(&stderr(&json), "sent"), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_rows_are_skipped_into_the_rejects_file() {
    let env = env_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let csv = csv_with_bad_rows(dir.path());
    let rejects = dir.path().join("rejects.jsonl");
    let topic = random_name("bad-skip");
    let out = replay_csv(
        &env,
        &csv,
        &topic,
        1,
        &["--on-error", "skip", "--rejects", rejects.to_str().unwrap(), "--log-format", "json"],
    );
    let err = stderr(&out);
    assert_eq!(summary_count(&err, "skipped"), 2);
    assert_eq!(summary_count(&err, "sent"), 10);
    assert_eq!(read_topic(&env.brokers, &topic).await.len(), 10);

    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&rejects).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["line"], 7);
    assert_eq!(lines[0]["column"], "Open");
    assert_eq!(lines[0]["raw"], "HSI,2020-01-07,abc,1,1,1,1,0.0,1");
    assert!(lines[0]["file"].as_str().unwrap().ends_with("bad.csv"));
    assert_eq!(lines[1]["line"], 10);
    assert!(lines[1]["reason"].as_str().unwrap().contains("has 4 fields"), "{}", lines[1]);
}

#[test]
fn unreachable_broker_is_a_clear_error_within_seconds() {
    let env = env_or_skip!();
    let csv = repo_path("data/indices.csv");
    // A closed port: refused at once.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let out = run(env.ticklake().args(["replay", csv.to_str().unwrap(), "--topic", "x", "--brokers", &addr]));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains(&addr) && err.contains("refused") && err.contains("advertised.listeners"), "{err}");

    // A listener that accepts TCP but never answers a Kafka request: the deadline turns it into an error.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let keep = std::thread::spawn(move || {
        let conns: Vec<_> = silent.incoming().take(4).collect();
        std::thread::sleep(Duration::from_secs(8));
        drop(conns);
    });
    let out = run(env.ticklake().args([
        "replay",
        csv.to_str().unwrap(),
        "--topic",
        "x",
        "--brokers",
        &addr,
        "--kafka-timeout",
        "3s",
    ]));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains(&addr) && err.contains("no metadata answer within 3s"), "{err}");
    drop(keep);
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_flushes_prints_the_summary_and_loses_nothing_acknowledged() {
    let env = env_or_skip!();
    let csv = repo_path("data/indices.csv");
    let topic = random_name("sigint");
    let replay = Logged::spawn(
        env.ticklake()
            .args(["replay", csv.to_str().unwrap(), "--topic", &topic, "--partitions", "2", "--rate", "400"])
            .args(["--log-format", "json", "--metrics-addr", "127.0.0.1:0"]),
    );
    // Ctrl-C once the broker acknowledged at least 100 rows (an event, read from /metrics), not after a sleep.
    let addr = replay.metrics_addr();
    wait_until("100 rows acknowledged", || {
        let sent = http_get(&addr, "/metrics").ok().and_then(|(_, t)| metric(&t, "ticklake_replay_rows_sent_total"));
        sent.filter(|n| *n >= 100.0)
    });
    replay.signal("-INT");
    let (status, err) = replay.finish();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("stopped by Interrupt"), "{err}");
    let sent = summary_count(&err, "sent");
    assert!((100..4000).contains(&sent), "rate-limited replay stopped midway: sent {sent}");
    assert_eq!(summary_count(&err, "failed"), 0);
    // Every row reported as sent is on the topic, and nothing else (no retries happened, so no duplicates).
    assert_eq!(read_topic(&env.brokers, &topic).await.len() as u64, sent);
}
