//! `lake compact`: a lake of many small cuts becomes a few files with the same rows in the lake's order; SIGKILLed
//! at random moments while a sink writes the same lake, a rerun still leaves every offset exactly once.

use crate::env_or_skip;
use crate::support::*;

fn data_files(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_dir() && !name.starts_with('_') {
                stack.push(e.path());
            } else if name.ends_with(".parquet") && !name.starts_with('.') {
                out.push(e.path().strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// Every row as (kafka_partition, kafka_offset, the row as JSON), sorted.
fn rows(env: &TestEnv, lake: &std::path::Path) -> Vec<(i64, i64, String)> {
    let mut out: Vec<(i64, i64, String)> = env
        .read_lake(LakeAt::Local(lake))
        .rows
        .into_iter()
        .map(|(_, hive, row)| {
            let key = (row["kafka_partition"].as_i64().unwrap(), row["kafka_offset"].as_i64().unwrap());
            (key.0, key.1, format!("{hive:?}{row:?}"))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn compaction_merges_small_cuts_into_few_files_with_the_same_rows() {
    let env = env_or_skip!();
    let topic = random_name("compact");
    replay_csv(&env, &repo_path("data/indices.csv"), &topic, 2, &[]);
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let to = lake.to_str().unwrap();
    ok(run(&mut sink_cmd(&env, &topic, to, &["--max-rows", "100"])));
    let before_files = data_files(&lake);
    let groups: std::collections::BTreeSet<(String, String)> = before_files
        .iter()
        .map(|f| {
            let (dir, name) = f.rsplit_once('/').unwrap();
            (dir.to_string(), name.rsplit('-').nth(1).unwrap().to_string())
        })
        .collect();
    assert!(before_files.len() >= 40, "many small cuts: {}", before_files.len());
    let before = rows(&env, &lake);
    let answer = |lake: &std::path::Path| {
        let script = repo_path("proto-tests/scripts/query_lake.py");
        String::from_utf8(ok(run(env.python().args([script.to_str().unwrap(), lake.to_str().unwrap()]))).stdout)
            .unwrap()
    };
    let query_before = answer(&lake);

    let out = ok(run(env.ticklake().args(["lake", "compact", "--topic", &topic, "--to", to, "--log-format", "json"])));
    assert!(summary_count(&stderr(&out), "inputs") > groups.len() as u64, "{}", stderr(&out));
    let after_files = data_files(&lake);
    assert_eq!(after_files.len(), groups.len(), "one file per hive partition and Kafka partition: {after_files:?}");
    assert_eq!(rows(&env, &lake), before, "the same rows, field by field");
    assert_eq!(answer(&lake), query_before, "DuckDB answers the same");
    assert!(verify_lake(&env, &topic, to).contains("exactly once: yes"));
    // In each file the rows follow the lake's order: trade_date, symbol, then offset.
    let dump = env.read_lake(LakeAt::Local(&lake));
    for f in &after_files {
        let keys: Vec<(String, String, i64)> = dump
            .rows
            .iter()
            .filter(|(file, _, _)| file.ends_with(f.as_str()))
            .map(|(_, _, r)| {
                let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                (s("trade_date"), s("symbol"), r["kafka_offset"].as_i64().unwrap())
            })
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "{f} is in the lake's sort order");
    }
    // A second run has nothing left to merge.
    let out = ok(run(env.ticklake().args(["lake", "compact", "--topic", &topic, "--to", to, "--log-format", "json"])));
    assert_eq!(summary_count(&stderr(&out), "merged"), 0);
}

#[test]
fn compaction_killed_at_random_moments_while_a_sink_writes_stays_exactly_once() {
    let env = env_or_skip!();
    let topic = random_name("compact-kill");
    ok(run(env.ticklake().args(["topic", "create", &topic, "--partitions", "1"])));
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let to = lake.to_str().unwrap().to_string();
    let csv = repo_path("data/indices.csv");
    let replay = Logged::spawn(
        env.ticklake()
            .args(["replay", csv.to_str().unwrap(), "--topic", &topic, "--rate", "250"])
            .args(["--log-format", "json"]),
    );
    let sink = Logged::spawn(env.ticklake().args(["sink", "--topic", &topic, "--to", &to]).args([
        "--max-rows",
        "60",
        "--max-age",
        "1s",
        "--stats-every",
        "300ms",
        "--lease-ttl",
        "3s",
    ]));
    sink.wait_for("the sink's first files", |l| l.contains(" files") && !l.contains(" 0 files"));
    // Each round kills a compaction right after its k-th protocol step (k random, seeded): after the intent, after
    // the output, between deletes... The replay is paced so that every round finds new small files to merge.
    let mut state: u64 =
        std::env::var("TICKLAKE_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("seed {state} (rerun with TICKLAKE_TEST_SEED={state})");
    let (mut kills, mut rounds) = (0, 0);
    while kills < 10 {
        rounds += 1;
        assert!(rounds < 100, "only {kills} kills landed in {rounds} rounds");
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let k = 1 + ((state >> 33) % 4) as usize;
        // Something to merge: the sink has left at least three files in a folder since the last round (an event on
        // the file system, polled).
        wait_until("the sink leaving files to merge", || (data_files(&lake).len() >= 4).then_some(()));
        let c = Logged::spawn(
            env.ticklake()
                .args(["lake", "compact", "--topic", &topic, "--to", &to])
                .env("RUST_LOG", "debug,rskafka=error"),
        );
        if c.wait_count(|l| l.contains("compaction step:"), k) {
            c.signal("-KILL");
            kills += 1;
            let _ = c.finish();
        } else {
            let (status, err) = c.finish();
            assert!(status.success(), "a compaction failed:\n{err}");
        }
    }
    let (status, err) = replay.finish();
    assert!(status.success(), "{err}");
    let sent = summary_count(&err, "sent");
    sink.wait_for("the sink storing every row", |l| l.contains(&format!(" {sent} rows")));
    // The rerun finishes whatever a kill left half done, and merges the rest.
    ok(run(env.ticklake().args(["lake", "compact", "--topic", &topic, "--to", &to])));
    sink.signal("-TERM");
    let (status, err) = sink.finish();
    assert_eq!(status.code(), Some(143), "{err}");
    let report = verify_lake(&env, &topic, &to);
    assert!(report.contains("exactly once: yes") && report.contains(&format!("covered by {sent} row(s)")), "{report}");
    assert_eq!(rows(&env, &lake).len() as u64, sent);
}
