//! The sink against the real broker and S3 server; the lake is read back with pyarrow, not with ticklake.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use crate::env_or_skip;
use crate::support::*;

/// Replays `csv` into a new topic with `partitions`; returns the topic.
fn replay(env: &TestEnv, csv: &std::path::Path, partitions: u32) -> String {
    let topic = random_name("sink");
    replay_csv(env, csv, &topic, partitions, &[]);
    topic
}

/// Every (kafka_partition, kafka_offset) of the dump, asserting none appears twice.
fn offsets_once(dump: &LakeDump) -> BTreeMap<i64, Vec<i64>> {
    let mut seen = HashSet::new();
    let mut by_p: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (file, _, row) in &dump.rows {
        let key = (row["kafka_partition"].as_i64().unwrap(), row["kafka_offset"].as_i64().unwrap());
        assert!(seen.insert(key), "offset {key:?} twice (again in {file})");
        by_p.entry(key.0).or_default().push(key.1);
    }
    for v in by_p.values_mut() {
        v.sort_unstable();
    }
    by_p
}

#[test]
fn index_sample_lands_in_s3_exactly_once_with_athena_safe_types() {
    let env = env_or_skip!();
    let csv = repo_path("data/indices.csv");
    let topic = replay(&env, &csv, 3);
    let bucket = env.create_bucket();
    let to = format!("s3://{bucket}/prices");
    let out = ok(run(&mut sink_cmd(&env, &topic, &to, &[])));
    assert!(stderr(&out).contains("sink done: 4000 records"), "{}", stderr(&out));

    let dump = env.read_lake(LakeAt::S3 { bucket: &bucket, prefix: "prices" });
    let expected = csv_rows(&csv);
    assert_eq!(dump.rows.len(), expected.len(), "same number of rows");
    let by_p = offsets_once(&dump);
    let total: usize = by_p.values().map(Vec::len).sum();
    assert_eq!(total, expected.len());
    for offsets in by_p.values() {
        assert_eq!(*offsets, (0..offsets.len() as i64).collect::<Vec<_>>(), "each partition from 0 without a gap");
    }

    let by_key: HashMap<(&str, &str), &BTreeMap<String, String>> =
        expected.iter().map(|r| ((r["Index"].as_str(), r["Date"].as_str()), r)).collect();
    for (file, hive, row) in &dump.rows {
        let date = row["trade_date"].as_str().unwrap();
        let sym = row["symbol"].as_str().unwrap();
        let src = by_key.get(&(sym, date)).unwrap_or_else(|| panic!("row not in the CSV: {sym} {date}"));
        for (col, csv_col) in index_price_columns() {
            assert_eq!(row[&col].as_f64().unwrap(), src[&csv_col].parse::<f64>().unwrap(), "{col} of {sym} {date}");
        }
        assert_eq!(row["volume"].as_i64(), Some(src["Volume"].parse::<f64>().unwrap() as i64));
        assert_eq!(hive["year"].as_str().unwrap(), &date[..4], "hive path of {file}");
        assert!(file.starts_with(&format!("year={}/", &date[..4])));
        let name = file.rsplit('/').next().unwrap();
        assert!(!name.starts_with('_') && !name.starts_with('.'), "{name}");
        let day_ms = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis();
        assert_eq!(row["kafka_timestamp"].as_i64(), Some(day_ms), "kafka_timestamp carries the record timestamp");
    }
    // Athena-safe physical types in every file.
    for (file, cols) in &dump.types {
        let cols = cols.as_object().unwrap();
        let t = |c: &str| {
            cols[c].as_array().unwrap().iter().map(|v| v.as_str().unwrap_or("").to_string()).collect::<Vec<_>>()
        };
        assert_eq!(t("trade_date")[..2], ["INT32".to_string(), "Date".to_string()], "{file}");
        let ts = t("kafka_timestamp");
        assert_eq!(ts[0], "INT64", "{file}: never INT96");
        assert!(ts[1].contains("timeUnit=milliseconds") && ts[1].contains("isAdjustedToUTC=true"), "{file}: {ts:?}");
        assert_eq!(t("close")[0], "DOUBLE");
        assert_eq!(t("volume")[0], "INT64");
        assert!(cols.values().all(|c| c[2] == "ZSTD"), "{file}: ZSTD");
        assert!(cols.keys().all(|c| c.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')));
    }

    let verify = ok(run(env.ticklake().args(["lake", "verify", "--topic", &topic, "--to", &to])));
    assert!(String::from_utf8_lossy(&verify.stdout).contains("exactly once: yes"));
}

#[test]
fn sigkill_at_random_moments_never_loses_or_duplicates() {
    let env = env_or_skip!();
    // Enough rows that the sink is still working when it is killed (the debug build takes several seconds).
    const ROWS: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("indices.csv");
    ok(run(env.ticklake().args([
        "sample",
        "indices",
        "--rows",
        &ROWS.to_string(),
        "--symbols",
        "20",
        "-o",
        csv.to_str().unwrap(),
    ])));
    let topic = replay(&env, &csv, 3);
    let bucket = env.create_bucket();
    let to = format!("s3://{bucket}/crash");
    // Small cuts (many commits, each several files) so that kills land while buffering, mid-upload and between
    // the upload and the checkpoint.
    let sink =
        |env: &TestEnv| sink_cmd(env, &topic, &to, &["--max-rows", "400", "--partition-by", "year(trade_date),symbol"]);
    let mut kills = 0;
    let mut rng_state: u64 =
        std::env::var("TICKLAKE_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("seed {rng_state} (rerun with TICKLAKE_TEST_SEED={rng_state})");
    while kills < 12 {
        rng_state = rng_state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let wait = Duration::from_millis(100 + (rng_state >> 33) % 600);
        let log_path = dir.path().join(format!("sink-{kills}.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        let mut child = sink(&env).stderr(log).spawn().unwrap();
        // The random wait starts once the sink is consuming, not at spawn: on a loaded machine the debug build can
        // take longer than the whole window to start, and then no kill would land inside a commit.
        let started = std::time::Instant::now();
        while !std::fs::read_to_string(&log_path).unwrap_or_default().contains("sink starting")
            && child.try_wait().unwrap().is_none()
            && started.elapsed() < Duration::from_secs(60)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(wait);
        if child.try_wait().unwrap().is_some() {
            break; // finished before the kill: the assertion below says whether enough kills happened
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
    }
    assert!(kills >= 10, "only {kills} kills before the sink finished: give it more rows");
    let last = ok(run(&mut sink(&env)));
    // How many restarts found a cut recorded but not finished (a kill between intent and checkpoint).
    let mut redone = stderr(&last).matches("redoing a cut").count();
    for i in 0..kills {
        redone += std::fs::read_to_string(dir.path().join(format!("sink-{i}.log")))
            .unwrap_or_default()
            .matches("redoing a cut")
            .count();
    }
    eprintln!("crash test: {kills} SIGKILLs, {redone} restart(s) redid an interrupted cut");
    assert!(redone > 0, "no kill landed between a cut's intent and its checkpoint: make cuts smaller");

    let verify = run(env.ticklake().args(["lake", "verify", "--topic", &topic, "--to", &to]));
    let report = String::from_utf8_lossy(&verify.stdout).into_owned();
    assert!(verify.status.success() && report.contains("exactly once: yes"), "{report}");

    let dump = env.read_lake(LakeAt::S3 { bucket: &bucket, prefix: "crash" });
    assert_eq!(dump.rows.len(), ROWS, "every row once after {kills} kills");
    let by_p = offsets_once(&dump);
    for offsets in by_p.values() {
        assert_eq!(*offsets, (0..offsets.len() as i64).collect::<Vec<_>>());
    }
    // No stray objects: every data object is named after the first offset it holds.
    let mut first_in_file: HashMap<&str, i64> = HashMap::new();
    for (file, _, row) in &dump.rows {
        let o = row["kafka_offset"].as_i64().unwrap();
        let e = first_in_file.entry(file.as_str()).or_insert(o);
        *e = (*e).min(o);
    }
    for obj in dump.objects.iter().filter(|o| !o.starts_with("_ticklake/")) {
        let first = first_in_file.get(obj.as_str()).unwrap_or_else(|| panic!("stray object {obj}"));
        assert!(obj.ends_with(&format!("-{first:020}.parquet")), "{obj} vs first offset {first}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rejects_are_kept_with_reasons_and_checkpointed_past() {
    let env = env_or_skip!();
    let topic = random_name("rejects");
    let good = |d: &str| {
        format!(r#"{{"symbol":"HSI","trade_date":"{d}","open":1.0,"high":2.0,"low":0.5,"close":1.5,"adj_close":1.5,"volume":10,"close_usd":0.2}}"#).into_bytes()
    };
    let values = vec![
        good("2020-01-02"),
        b"{not json".to_vec(),
        br#""HSI""#.to_vec(),
        good("2020-01-03"),
        br#"{"symbol":"HSI","trade_date":"2020-01-06","close":"high"}"#.to_vec(),
        good("2020-01-07"),
    ];
    produce_raw(&env.brokers, &topic, 1, &values).await;
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("lake");
    let out = ok(run(&mut sink_cmd(&env, &topic, to.to_str().unwrap(), &["--schema", "indices"])));
    assert!(stderr(&out).contains("3 rows") && stderr(&out).contains("3 rejects"), "{}", stderr(&out));

    let dump = env.read_lake(LakeAt::Local(&to));
    let offsets: Vec<i64> = dump.rows.iter().map(|(_, _, r)| r["kafka_offset"].as_i64().unwrap()).collect();
    assert_eq!(offsets, vec![0, 3, 5]);
    let rejects_dir = to.join("_ticklake/rejects").join(&topic);
    let files: Vec<_> = std::fs::read_dir(&rejects_dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1);
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&files[0]).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let got: Vec<(i64, String)> =
        lines.iter().map(|l| (l["offset"].as_i64().unwrap(), l["reason"].as_str().unwrap().to_string())).collect();
    assert_eq!(got.len(), 3);
    assert!(got[0].0 == 1 && got[0].1.starts_with("not JSON"), "{got:?}");
    assert!(got[1].0 == 2 && got[1].1.contains("not an object"), "{got:?}");
    assert!(got[2].0 == 4 && got[2].1.contains("column 'close'"), "{got:?}");
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD.decode(lines[0]["raw_base64"].as_str().unwrap()).unwrap();
    assert_eq!(raw, b"{not json");
    let cp: serde_json::Value =
        serde_json::from_slice(&std::fs::read(to.join(format!("_ticklake/checkpoints/{topic}/0.json"))).unwrap())
            .unwrap();
    assert_eq!(cp["next_offset"], 6, "checkpointed past the rejects");
    let verify = ok(run(env.ticklake().args(["lake", "verify", "--topic", &topic, "--to", to.to_str().unwrap()])));
    assert!(String::from_utf8_lossy(&verify.stdout).contains("3 row(s) + 3 reject(s): ok"));
}

#[tokio::test(flavor = "multi_thread")]
async fn local_folder_lake_from_records_with_csv_header_names() {
    let env = env_or_skip!();
    let topic = random_name("pyproducer");
    // What the usual Python producer sends: the CSV row as a dict, original header names, volume as a float.
    let values: Vec<Vec<u8>> = ["^GSPC", "BRK B", "000001.SS"]
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(r#"{{"Index": "{s}", "Date": "1987-01-0{}", "Open": 1.5, "High": 2.0, "Low": 1.0, "Close": 1.75, "Adj Close": 1.75, "Volume": 0.0, "CloseUSD": 0.25}}"#, i + 2).into_bytes()
        })
        .collect();
    produce_raw(&env.brokers, &topic, 1, &values).await;
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("lake");
    ok(run(&mut sink_cmd(&env, &topic, to.to_str().unwrap(), &["--partition-by", "symbol"])));
    let dump = env.read_lake(LakeAt::Local(&to));
    let mut got: Vec<(String, String, f64)> = dump
        .rows
        .iter()
        .map(|(_, hive, row)| {
            (
                hive["symbol"].as_str().unwrap().to_string(),
                row["trade_date"].as_str().unwrap().to_string(),
                row["close"].as_f64().unwrap(),
            )
        })
        .collect();
    got.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        got,
        vec![
            ("^GSPC".into(), "1987-01-02".into(), 1.75),
            ("BRK B".into(), "1987-01-03".into(), 1.75),
            ("000001.SS".into(), "1987-01-04".into(), 1.75)
        ],
        "hive values unescape back to the symbols"
    );
    assert!(dump.objects.iter().any(|o| o.starts_with("symbol=^GSPC/")), "written literally: {:?}", dump.objects);
    assert!(
        dump.rows.iter().all(|(_, _, row)| !row.contains_key("symbol")),
        "identity partition columns live in the path only"
    );
    let table = std::fs::read_to_string(to.join("_ticklake/table.toml")).unwrap();
    assert!(table.contains("name = \"indices\""), "the preset was recognised from the header names:\n{table}");
    assert!(table.contains("partition_by = \"symbol\""), "{table}");
}

#[test]
fn missing_bucket_and_missing_topic_are_typed_errors_before_any_data_moves() {
    let env = env_or_skip!();
    let out = run(&mut sink_cmd(&env, "x", &format!("s3://{}/p", random_name("nobucket")), &[]));
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    let dir = tempfile::tempdir().unwrap();
    let out = run(&mut sink_cmd(&env, &random_name("nope"), dir.path().to_str().unwrap(), &[]));
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing written");
}

#[test]
fn two_sinks_split_a_topic_by_partition_into_one_lake() {
    let env = env_or_skip!();
    let csv = repo_path("data/indices.csv");
    let topic = replay(&env, &csv, 3);
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("lake");
    let to = to.to_str().unwrap();
    let a = sink_cmd(&env, &topic, to, &["--partitions", "0"]).spawn().unwrap();
    let b = sink_cmd(&env, &topic, to, &["--partitions", "1-2"]).spawn().unwrap();
    ok(a.wait_with_output().unwrap());
    ok(b.wait_with_output().unwrap());
    let verify = ok(run(env.ticklake().args(["lake", "verify", "--topic", &topic, "--to", to])));
    let report = String::from_utf8_lossy(&verify.stdout).into_owned();
    assert!(
        report.contains("kafka partition 0:")
            && report.contains("kafka partition 2:")
            && report.contains("exactly once: yes"),
        "{report}"
    );
    assert_eq!(env.read_lake(LakeAt::Local(std::path::Path::new(to))).rows.len(), 4000);
}

#[tokio::test(flavor = "multi_thread")]
async fn max_age_cuts_a_quiet_partition_and_sigterm_flushes() {
    let env = env_or_skip!();
    let topic = random_name("quiet");
    let row = |d: u32| format!(r#"{{"symbol":"HSI","trade_date":"2020-01-{d:02}","close":1.5}}"#).into_bytes();
    produce_raw(&env.brokers, &topic, 1, &(1..=5).map(row).collect::<Vec<_>>()).await;
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("lake");
    let sink = Logged::spawn(env.ticklake().args([
        "sink",
        "--topic",
        &topic,
        "--to",
        to.to_str().unwrap(),
        "--schema",
        "indices",
        "--max-age",
        "1s",
        "--stats-every",
        "500ms",
    ]));
    // Nothing more arrives: the age limit alone must cut the buffer while the sink keeps running.
    sink.wait_for("a cut by --max-age", |l| l.contains("5 rows, 1 files"));
    assert_eq!(env.read_lake(LakeAt::Local(&to)).rows.len(), 5);
    // More rows, then SIGTERM once the sink has consumed them (its stats line says 8 records) but before their age
    // is up: the stop must flush them.
    produce_more(&env.brokers, &topic, &(6..=8).map(row).collect::<Vec<_>>()).await;
    sink.wait_for("the sink consuming the 3 new records", |l| l.contains("sink: 8 records"));
    sink.signal("-TERM");
    let (status, err) = sink.finish();
    assert_eq!(status.code(), Some(143), "{err}");
    assert!(err.contains("sink: ") && err.contains("lag 0:"), "periodic stats lines:\n{err}");
    assert!(err.contains("sink done: 8 records"), "{err}");
    assert_eq!(env.read_lake(LakeAt::Local(&to)).rows.len(), 8);
    let verify = ok(run(env.ticklake().args(["lake", "verify", "--topic", &topic, "--to", to.to_str().unwrap()])));
    assert!(String::from_utf8_lossy(&verify.stdout).contains("exactly once: yes"));
}
