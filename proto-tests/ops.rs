//! Operations: `doctor` against a broker that advertises a wrong address, `/metrics` scraped while replay and
//! sink run, JSON logs.

use std::time::{Duration, Instant};

use crate::env_or_skip;
use crate::support::*;

fn doctor(env: &TestEnv, brokers: &str, extra: &[&str]) -> (Option<i32>, String) {
    let out = run(env.ticklake().args(["doctor", "--brokers", brokers]).args(extra));
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn doctor_shows_an_unresolvable_advertised_name_and_how_to_fix_it() {
    let env = env_or_skip!();
    let broker = Broker::memory(Some("ip-10-1-2-3.ec2.invalid:{port}"));
    let (code, out) = doctor(&env, &broker.addr, &["--write-test"]);
    assert_eq!(code, Some(11), "{out}");
    assert!(out.contains(&format!("\u{2713} bootstrap {}", broker.addr)), "bootstrap works:\n{out}");
    assert!(out.contains("advertised: 1=ip-10-1-2-3.ec2.invalid:"), "shows what is advertised:\n{out}");
    let cross = out.lines().find(|l| l.contains("\u{2717} broker 1 advertises ip-10-1-2-3.ec2.invalid")).unwrap();
    assert!(cross.contains("cannot resolve"), "{out}");
    assert!(out.contains("advertised.listeners=PLAINTEXT://"), "names the fix:\n{out}");
    assert!(out.contains("\u{2717} produce/fetch round trip skipped"), "{out}");
    assert!(out.trim_end().ends_with("failed"), "{out}");
}

#[test]
fn doctor_shows_an_unreachable_advertised_port() {
    let env = env_or_skip!();
    let closed = free_port();
    let broker = Broker::memory(Some(&format!("127.0.0.1:{closed}")));
    let (code, out) = doctor(&env, &broker.addr, &[]);
    assert_eq!(code, Some(11), "{out}");
    assert!(out.contains(&format!("\u{2717} broker 1 advertises 127.0.0.1:{closed}")), "{out}");
    assert!(out.contains("security group") && out.contains("waiting for a node assignment"), "{out}");
    // And a pipeline, which only sees the advertised address fail, points at doctor.
    let csv = repo_path("data/indices.csv");
    let replay = run(env.ticklake().args(["replay", csv.to_str().unwrap(), "-t", "t", "--partitions", "1"]).args([
        "--brokers",
        &broker.addr,
        "--kafka-timeout",
        "2s",
    ]));
    assert_eq!(replay.status.code(), Some(4), "{}", stderr(&replay));
    assert!(stderr(&replay).contains("`ticklake doctor`"), "{}", stderr(&replay));
}

#[test]
fn doctor_passes_everything_on_a_healthy_setup() {
    let env = env_or_skip!();
    let bucket = env.create_bucket();
    let topic = random_name("doctor");
    ok(run(env.ticklake().args(["topic", "create", &topic, "--partitions", "3"])));
    let to = format!("s3://{bucket}/lake");
    let (code, out) =
        doctor(&env, &env.brokers, &["--topic", &topic, "--write-test", "--to", &to, "--group", "doctor-probe"]);
    assert_eq!(code, Some(0), "{out}");
    for want in [
        "\u{2713} consumer group 'doctor-probe': its coordinator answers",
        "\u{2713} bootstrap",
        "\u{2713} metadata",
        "reachable from here",
        &format!("\u{2713} topic '{topic}': 3 partition(s)"),
        "\u{2713} produce/fetch round trip",
        "\u{2713} bucket reachable",
        "\u{2713} write and read back _ticklake/doctor/probe-",
        "\u{2713} clock within",
        "\u{2713} delete _ticklake/doctor/probe-",
    ] {
        assert!(out.contains(want), "missing '{want}':\n{out}");
    }
    assert!(!out.contains('\u{2717}'), "{out}");
    // The probe is gone, and so is the scratch topic.
    let dump = env.read_lake(LakeAt::S3 { bucket: &bucket, prefix: "lake" });
    assert!(dump.objects.is_empty(), "{:?}", dump.objects);
    let topics = String::from_utf8(ok(run(env.ticklake().args(["topic", "list"]))).stdout).unwrap();
    assert!(!topics.contains("ticklake-doctor-"), "{topics}");
    // A missing bucket and a missing topic are crosses with their own fixes.
    let (code, out) = doctor(&env, &env.brokers, &["--topic", "no-such-topic", "--to", "s3://no-such-bucket/x"]);
    assert_eq!(code, Some(11), "{out}");
    assert!(out.contains("ticklake topic create no-such-topic"), "{out}");
    assert!(out.contains("aws s3 mb"), "{out}");
}

/// Scrapes until `done` holds for the text, or fails after 30 s showing the last scrape.
fn scrape_until(addr: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = http_get(addr, "/metrics").map(|r| r.1).unwrap_or_default();
        if done(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "{what} within 30 s; last scrape:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn metrics_are_scraped_while_replay_and_sink_run() {
    let env = env_or_skip!();
    let csv = repo_path("data/indices.csv");
    let topic = random_name("metrics");
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("lake");
    // Replay at 1,000 rows/s: about 4 s, long enough to scrape it mid-way. Port 0: the log names the bound port.
    let replay = Logged::spawn(
        env.ticklake()
            .args(["replay", csv.to_str().unwrap(), "--topic", &topic, "--partitions", "2", "--rate", "1000"])
            .args(["--metrics-addr", "127.0.0.1:0", "--log-format", "json"]),
    );
    let replay_addr = replay.metrics_addr();
    let mid = scrape_until(&replay_addr, "replay rows acknowledged", |t| {
        metric(t, "ticklake_replay_rows_sent_total").is_some_and(|n| n > 0.0)
    });
    assert!(mid.contains("# TYPE ticklake_replay_rows_read_total counter"), "{mid}");
    assert_eq!(http_get(&replay_addr, "/healthz").unwrap().0, "HTTP/1.1 200 OK");
    let sent_mid = metric(&mid, "ticklake_replay_rows_sent_total").unwrap();
    let (status, err) = replay.finish();
    assert!(status.success(), "{err}");
    assert_eq!(summary_count(&err, "sent"), 4000);
    assert!(sent_mid < 4000.0, "scraped mid-way ({sent_mid} of 4000)");

    // The sink keeps running (no --exit-at-end); everything it reports must match the lake.
    let sink =
        Logged::spawn(
            env.ticklake()
                .args(["--log-format", "json", "sink", "--topic", &topic, "--to", to.to_str().unwrap()])
                .args(["--max-age", "1s", "--stats-every", "1s", "--metrics-addr", "127.0.0.1:0"]),
        );
    let sink_addr = sink.metrics_addr();
    let text = scrape_until(&sink_addr, "4000 rows written, lag 0 on both partitions", |t| {
        metric(t, "ticklake_sink_rows_written_total") == Some(4000.0)
            && metric(t, "ticklake_sink_lag_records{kafka_partition=\"0\"}") == Some(0.0)
            && metric(t, "ticklake_sink_lag_records{kafka_partition=\"1\"}") == Some(0.0)
    });
    let cp: f64 = (0..2)
        .map(|p| metric(&text, &format!("ticklake_sink_checkpoint_offset{{kafka_partition=\"{p}\"}}")).unwrap())
        .sum();
    assert_eq!(cp, 4000.0, "checkpoints cover every record:\n{text}");
    let files = metric(&text, "ticklake_sink_files_written_total").unwrap();
    let lake = env.read_lake(LakeAt::Local(&to));
    let distinct_files: std::collections::BTreeSet<&String> = lake.rows.iter().map(|(f, _, _)| f).collect();
    assert_eq!(files as usize, distinct_files.len(), "{text}");
    assert_eq!(metric(&text, "ticklake_sink_upload_seconds_count"), Some(files), "one upload timing per file");
    assert_eq!(metric(&text, "ticklake_sink_buffered_bytes"), Some(0.0), "{text}");
    // Newest event time = the CSV's latest date, midnight UTC.
    let latest = csv_rows(&csv).iter().map(|r| r["Date"].clone()).max().unwrap();
    let midnight = chrono::NaiveDate::parse_from_str(&latest, "%Y-%m-%d").unwrap().and_hms_opt(0, 0, 0).unwrap();
    assert_eq!(
        metric(&text, "ticklake_sink_newest_event_time_seconds"),
        Some(midnight.and_utc().timestamp() as f64),
        "{text}"
    );
    let freshness = metric(&text, "ticklake_sink_freshness_seconds").unwrap();
    assert!(freshness > 0.0, "{text}");
    assert_eq!(http_get(&sink_addr, "/healthz").unwrap(), ("HTTP/1.1 200 OK".to_string(), "ok\n".to_string()));
    assert!(http_get(&sink_addr, "/nope").unwrap().0.contains("404"));

    sink.signal("-TERM");
    let (status, err) = sink.finish();
    assert_eq!(status.code(), Some(143), "{err}");
    // --log-format json: every line on stderr is one JSON object, the stats and summary lines included.
    let lines: Vec<serde_json::Value> =
        err.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}\n{err}"))).collect();
    let messages: Vec<&str> = lines.iter().filter_map(|v| v["fields"]["message"].as_str()).collect();
    assert!(messages.iter().any(|m| m.starts_with("sink: ")), "{err}");
    assert!(messages.iter().any(|m| m.starts_with("sink done: 4000 records")), "{err}");
    assert!(lines.iter().all(|v| v["level"].is_string() && v["timestamp"].is_string()), "{err}");
}

/// (partition, current offset, lag) per row of `group` that has an offset.
fn describe_group(env: &TestEnv, group: &str) -> Vec<(i32, i64, i64)> {
    describe_group_rows(env, group).into_iter().filter_map(|r| Some((r.partition, r.current?, r.lag?))).collect()
}

/// Issue 23 (visibility): after each commit the sink commits its checkpoints to the consumer group
/// `ticklake-<topic>` (or `--offsets-group`), so Kafka's lag tools show the lake's progress; the group is never
/// read back (a new lake starts from nothing, whatever the group says).
#[test]
fn lag_tools_see_the_lakes_checkpoints_in_a_consumer_group() {
    let env = env_or_skip!();
    let topic = random_name("lag");
    let csv = repo_path("data/indices.csv");
    let replay =
        || ok(run(env.ticklake().args(["replay", csv.to_str().unwrap(), "--topic", &topic, "--partitions", "3"])));
    replay();
    let dir = tempfile::tempdir().unwrap();
    let sink = |lake: &str, extra: &[&str]| {
        let to = dir.path().join(lake);
        ok(run(env
            .ticklake()
            .args(["sink", "--topic", &topic, "--to", to.to_str().unwrap(), "--exit-at-end"])
            .args(extra)))
    };
    sink("a", &[]);
    let group = format!("ticklake-{topic}");
    let rows = describe_group(&env, &group);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows.iter().map(|r| r.1).sum::<i64>(), 4000, "the checkpoints: {rows:?}");
    assert!(rows.iter().all(|r| r.2 == 0), "caught up: {rows:?}");
    // More records on the topic: the lag tools show the lake 4,000 behind until the sink runs again.
    replay();
    assert_eq!(describe_group(&env, &group).iter().map(|r| r.2).sum::<i64>(), 4000);
    sink("a", &[]);
    assert!(describe_group(&env, &group).iter().all(|r| r.2 == 0 && r.1 > 0));
    // Never read back: a new lake starts at the topic's start although the group says 8,000.
    let other = random_name("group");
    let out = sink("b", &["--offsets-group", &other, "--log-format", "json"]);
    assert_eq!(summary_count(&stderr(&out), "rows"), 8000);
    assert_eq!(describe_group(&env, &other).iter().map(|r| r.1).sum::<i64>(), 8000);
    // `off` commits nothing: a second topic's sink leaves its default group without offsets.
    let quiet = random_name("lag-off");
    ok(run(env.ticklake().args(["replay", csv.to_str().unwrap(), "--topic", &quiet, "--partitions", "3"])));
    let to = dir.path().join("c");
    ok(run(env
        .ticklake()
        .args(["sink", "--topic", &quiet, "--to", to.to_str().unwrap(), "--exit-at-end"])
        .args(["--offsets-group", "off"])));
    assert!(describe_group(&env, &format!("ticklake-{quiet}")).is_empty());
}
