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
