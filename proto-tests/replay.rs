//! Replay against the real broker: every row exactly once, keyed, on its murmur2 partition, in order.

use std::collections::{BTreeMap, HashMap};

use crate::env_or_skip;
use crate::support::*;
use ticklake::kafka::partition_for_key;

const PARTITIONS: i32 = 3;

fn epoch_ms_of_date(date: &str) -> i64 {
    let d = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
    d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis()
}

/// Compares one record's JSON value with the CSV row it came from, field by field.
fn assert_index_row_matches(csv: &BTreeMap<String, String>, v: &serde_json::Value) {
    let num = |name: &str| v[name].as_f64().unwrap_or_else(|| panic!("{name} not a number in {v}"));
    assert_eq!(v["symbol"], csv["Index"].as_str());
    assert_eq!(v["trade_date"], csv["Date"].as_str());
    for (json, col) in index_price_columns() {
        assert_eq!(num(&json), csv[&col].parse::<f64>().unwrap(), "{json} of {v}");
    }
    assert_eq!(v["volume"].as_i64(), Some(csv["Volume"].parse::<f64>().unwrap() as i64), "volume of {v}");
    assert_eq!(v.as_object().unwrap().len(), 9, "no extra fields: {v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn index_sample_is_delivered_exactly_once_keyed_partitioned_and_ordered() {
    let env = env_or_skip!();
    let topic = random_name("replay-indices");
    let csv_path = repo_path("data/indices.csv");
    let out = ok(run(env
        .ticklake()
        .args(["replay", csv_path.to_str().unwrap(), "--topic", &topic, "--partitions", "3"])
        .args(["--log-format", "json"])));
    let expected = csv_rows(&csv_path);
    assert_eq!(summary_count(&stderr(&out), "sent"), expected.len() as u64);

    let got = read_topic(&env.brokers, &topic).await;
    assert_eq!(got.len(), expected.len(), "every row once: count");

    // Content: match each record to its CSV row by (symbol, date), which is unique in the sample.
    let mut by_key: HashMap<(String, String), &BTreeMap<String, String>> = HashMap::new();
    for row in &expected {
        assert!(by_key.insert((row["Index"].clone(), row["Date"].clone()), row).is_none());
    }
    let mut seen = std::collections::HashSet::new();
    for r in &got {
        let k = (r.value["symbol"].as_str().unwrap().to_string(), r.value["trade_date"].as_str().unwrap().to_string());
        assert!(seen.insert(k.clone()), "duplicate record {k:?}");
        let row = by_key.get(&k).unwrap_or_else(|| panic!("record not in the CSV: {k:?}"));
        assert_index_row_matches(row, &r.value);
        // Keys are symbols; each symbol on its murmur2 partition (the Java client's choice).
        assert_eq!(r.key.as_deref(), Some(k.0.as_str()));
        assert_eq!(r.partition, partition_for_key(k.0.as_bytes(), PARTITIONS), "partition of {}", k.0);
        // Record timestamp = event time (dates from 2020 on: after the epoch).
        assert_eq!(r.timestamp_ms, epoch_ms_of_date(&k.1), "timestamp of {k:?}");
    }
    assert_eq!(seen.len(), expected.len());

    // Per-symbol order: within each partition, a symbol's records come in CSV order.
    let mut csv_order: HashMap<String, Vec<String>> = HashMap::new();
    for row in &expected {
        csv_order.entry(row["Index"].clone()).or_default().push(row["Date"].clone());
    }
    let mut topic_order: HashMap<String, Vec<String>> = HashMap::new();
    for records in by_partition(&got).values() {
        for r in records {
            topic_order
                .entry(r.value["symbol"].as_str().unwrap().into())
                .or_default()
                .push(r.value["trade_date"].as_str().unwrap().into());
        }
    }
    assert_eq!(topic_order, csv_order);
    assert!(by_partition(&got).len() > 1, "13 symbols over 3 partitions use more than one");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_compression_codec_round_trips() {
    let env = env_or_skip!();
    let csv_path = repo_path("data/indices.csv");
    let expected = csv_rows(&csv_path);
    for codec in ["zstd", "lz4", "snappy", "gzip", "none"] {
        let topic = random_name(&format!("codec-{codec}"));
        replay_csv(&env, &csv_path, &topic, 1, &["--compression", codec, "--limit", "700"]);
        let got = read_topic(&env.brokers, &topic).await;
        assert_eq!(got.len(), 700, "{codec}: count");
        for (r, row) in got.iter().zip(&expected) {
            assert_index_row_matches(row, &r.value);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ticks_from_gzip_and_stdin_keep_extra_columns_and_millisecond_timestamps() {
    let env = env_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let src = repo_path("data/ticks.csv");
    let text = std::fs::read(&src).unwrap();
    let gz = dir.path().join("ticks.csv.gz");
    let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, &text).unwrap();
    enc.finish().unwrap();
    let expected = csv_rows(&src);

    let from_gz = random_name("ticks-gz");
    ok(run(env.ticklake().args(["replay", gz.to_str().unwrap(), "--topic", &from_gz, "--partitions", "2"])));
    let from_stdin = random_name("ticks-stdin");
    let mut child = env
        .ticklake()
        .args(["replay", "-", "--topic", &from_stdin, "--partitions", "2"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &text).unwrap();
    drop(child.stdin.take());
    ok(child.wait_with_output().unwrap());

    for topic in [from_gz, from_stdin] {
        let mut got = read_topic(&env.brokers, &topic).await;
        assert_eq!(got.len(), expected.len(), "{topic}");
        got.sort_by_key(|r| {
            (r.value["ts"].as_str().unwrap().to_string(), r.value["symbol"].as_str().unwrap().to_string())
        });
        let mut want = expected.clone();
        want.sort_by_key(|r| (r["ts"].clone(), r["symbol"].clone()));
        for (r, row) in got.iter().zip(&want) {
            assert_eq!(r.value["ts"], row["ts"].as_str());
            assert_eq!(r.value["symbol"], row["symbol"].as_str());
            assert_eq!(r.value["price"].as_f64(), Some(row["price"].parse().unwrap()));
            assert_eq!(r.value["size"].as_i64(), Some(row["size"].parse().unwrap()));
            assert_eq!(r.value["venue"], row["venue"].as_str(), "the extra column is kept");
            let ts = chrono::DateTime::parse_from_rfc3339(&row["ts"]).unwrap().timestamp_millis();
            assert_eq!(r.timestamp_ms, ts);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn inferred_schema_sampling_limit_and_send_time() {
    let env = env_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("quotes.csv");
    std::fs::write(
        &csv,
        "Ticker,Quote Time,Bid Px,Ask Px\nAAA,2024-01-02 10:00:00,1.5,1.6\nBBB,2024-01-02 10:00:01,2.5,2.75\n",
    )
    .unwrap();

    let topic = random_name("inferred");
    let before = chrono::Utc::now().timestamp_millis();
    let out = replay_csv(&env, &csv, &topic, 1, &["--sample", "--rate", "500", "--limit", "40", "--timestamp", "now"]);
    let log = stderr(&out);
    assert!(log.contains("inferred this schema") && log.contains("bid_px"), "the inferred schema is logged:\n{log}");
    let got = read_topic(&env.brokers, &topic).await;
    assert_eq!(got.len(), 40, "--limit");
    for r in &got {
        let sym = r.value["ticker"].as_str().unwrap();
        assert!(sym == "AAA" || sym == "BBB");
        assert!(r.value["quote_time"].as_str().unwrap().ends_with('Z'));
        assert!(r.value["bid_px"].is_f64());
        assert!(r.timestamp_ms >= before, "--timestamp now");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn loop_starts_over_at_the_end_until_the_limit() {
    let env = env_or_skip!();
    let topic = random_name("loop");
    let csv = repo_path("data/indices.csv");
    replay_csv(&env, &csv, &topic, 1, &["--loop", "--limit", "9000"]);
    let got = read_topic(&env.brokers, &topic).await;
    assert_eq!(got.len(), 9000);
    let expected = csv_rows(&csv);
    // Row 4000 (0-based) is the file's first row again.
    assert_eq!(got[4000].value["symbol"], expected[0]["Index"].as_str());
    assert_eq!(got[4000].value["trade_date"], expected[0]["Date"].as_str());
    assert_eq!(got[8999].value["trade_date"], expected[999]["Date"].as_str());
}

/// Issue 22: replay SIGKILLed at 10 seeded random moments (once it is sending), `replay --resume` each time, then
/// once to the end: the topic holds every CSV row exactly once, on its key's partition, in CSV order per key; a sink
/// then lands exactly that in the lake. `brokers` may be a fault-injecting proxy (see `kafka_faults`).
pub fn kill_and_resume(env: &TestEnv, brokers: &str, seed: u64) {
    use std::time::Duration;
    let csv = repo_path("data/indices.csv");
    let topic = random_name("resume");
    let dir = tempfile::tempdir().unwrap();
    let tl = || {
        let mut c = env.ticklake();
        c.env("KAFKA_BROKERS", brokers);
        c
    };
    ok(run(tl().args(["topic", "create", &topic, "--partitions", "3"])));
    let mut state = seed;
    let mut landed = 0;
    for kill in 0..10 {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        // At 500 rows/s a run sends at most about 500 rows before its kill: all ten kills land mid-file.
        let wait = Duration::from_millis((state >> 33) % 1000);
        let replay =
            Logged::spawn(tl().args(["replay", csv.to_str().unwrap(), "--topic", &topic, "--resume", "--rate", "500"]));
        // The seeded kill moment counts from when replay sends (it logs its producer), not from the spawn: a slow
        // start would eat it. The moment itself is the test's random variable, not a wait for a condition.
        replay.wait_for("replay to start sending", |l| l.contains("producer"));
        std::thread::sleep(wait);
        if !replay.exited() {
            landed += 1;
        }
        replay.signal("-KILL");
        let (status, log) = replay.finish();
        assert!(status.code().is_none_or(|c| c == 0), "replay {kill} failed before its kill:\n{log}");
    }
    eprintln!("{landed} of 10 kills landed while replay was sending");
    assert!(landed >= 8, "the kills must land mid-replay (seed {seed})");
    let out =
        ok(run(tl().args(["replay", csv.to_str().unwrap(), "--topic", &topic, "--resume", "--log-format", "json"])));
    let err = stderr(&out);
    let expected = csv_rows(&csv);
    assert_eq!(summary_count(&err, "read"), expected.len() as u64, "{err}");
    assert_eq!(summary_count(&err, "already_sent") + summary_count(&err, "sent"), expected.len() as u64, "{err}");

    let got = tokio::runtime::Runtime::new().unwrap().block_on(read_topic(brokers, &topic));
    assert_eq!(got.len(), expected.len(), "every row once, no duplicate from a resend or a rerun");
    let mut at: HashMap<(String, String), (i32, i64)> = HashMap::new();
    for r in &got {
        let key = r.key.clone().unwrap();
        assert_eq!(r.partition, partition_for_key(key.as_bytes(), 3));
        let date = r.value["trade_date"].as_str().unwrap().to_string();
        assert!(at.insert((key, date), (r.partition, r.offset)).is_none(), "a row twice");
    }
    let mut last: HashMap<&str, i64> = HashMap::new();
    for row in &expected {
        let (_, offset) = at[&(row["Index"].clone(), row["Date"].clone())];
        if let Some(before) = last.insert(row["Index"].as_str(), offset) {
            assert!(before < offset, "{} out of CSV order", row["Index"]);
        }
    }

    // End to end: the sink lands the topic, and the lake holds each CSV row once.
    let lake = dir.path().join("lake");
    let lake = lake.to_str().unwrap();
    ok(run(tl().args(["sink", "--topic", &topic, "--to", lake, "--exit-at-end"])));
    let verify =
        ok(run(tl().args(["lake", "verify", "--topic", &topic, "--to", lake, "--source", csv.to_str().unwrap()])));
    let text = String::from_utf8_lossy(&verify.stdout).into_owned();
    assert!(text.contains("topic: 4000 of 4000 good line(s) once"), "{text}");
    assert!(text.contains("from the file to the lake, exactly once: yes"), "{text}");
    let rows = env.read_lake(LakeAt::Local(std::path::Path::new(lake))).rows;
    let distinct: std::collections::HashSet<(String, String)> = rows
        .iter()
        .map(|(_, _, r)| (r["symbol"].as_str().unwrap().into(), r["trade_date"].as_str().unwrap().into()))
        .collect();
    assert_eq!((rows.len(), distinct.len()), (expected.len(), expected.len()));
}

#[test]
fn sigkilled_replays_resume_to_every_row_exactly_once() {
    let env = env_or_skip!();
    let seed = std::env::var("TICKLAKE_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("seed {seed} (rerun with TICKLAKE_TEST_SEED={seed})");
    kill_and_resume(&env, &env.brokers.clone(), seed);
}

#[test]
fn resume_refuses_another_file_and_what_has_no_lines() {
    let env = env_or_skip!();
    let topic = random_name("resume-refused");
    let replay = |file: &str, extra: &[&str]| {
        run(env.ticklake().args(["replay", repo_path(file).to_str().unwrap(), "--topic", &topic]).args(extra))
    };
    ok(replay("data/indices.csv", &["--partitions", "3"]));
    let out = replay("data/ticks.csv", &["--resume"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("another file"), "{}", stderr(&out));
    for flag in ["--loop", "--sample"] {
        let out = replay("data/indices.csv", &["--resume", flag, "--limit", "10"]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains("nothing to resume"), "{}", stderr(&out));
    }
    // The same file again: nothing left to send.
    let out = ok(replay("data/indices.csv", &["--resume", "--log-format", "json"]));
    assert_eq!(summary_count(&stderr(&out), "sent"), 0);
    assert_eq!(summary_count(&stderr(&out), "already_sent"), 4000);
}
