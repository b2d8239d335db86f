//! A new user's trial (issue 19), one test per bug it found: a bad first record never retypes a preset column, a
//! check never passes on nothing, errors that end (an unreachable S3 endpoint, a port that is not Kafka, Ctrl-C
//! during retries), counts that add up, a closed stdout, the DDL for every schema, words that say what happened.

use std::io::{BufRead, Read};
use std::process::Stdio;

use crate::env_or_skip;
use crate::support::*;

/// An indices record as replay writes it, with `close` set to `close`.
fn index_record(symbol: &str, day: u32, close: f64) -> serde_json::Value {
    serde_json::json!({"symbol": symbol, "trade_date": format!("2020-01-{:02}", day), "open": close, "high": close,
        "low": close, "close": close, "adj_close": close, "volume": 5, "close_usd": close})
}

fn bytes(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Item 1: the 3rd record says `"open":"high"` and the 4th carries an array: the preset's `open` stays a double,
/// both records are rejects, the stored spec, the Parquet files and the DDL agree; the extra column the records do
/// bring is marked as inferred, in the log and in `lake stats`.
#[tokio::test(flavor = "multi_thread")]
async fn a_bad_value_among_the_first_records_is_a_reject_and_never_retypes_a_preset_column() {
    let env = env_or_skip!();
    let topic = random_name("poison");
    let mut records: Vec<serde_json::Value> = (1..=20).map(|d| index_record("HSI", d, d as f64 + 0.5)).collect();
    records[2]["open"] = serde_json::json!("high");
    records[3]["tags"] = serde_json::json!(["a", "b"]);
    for r in records.iter_mut().skip(5) {
        r["venue"] = serde_json::json!("XHKG");
    }
    produce_raw(&env.brokers, &topic, 1, &records.iter().map(bytes).collect::<Vec<_>>()).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let out = ok(run(&mut sink_cmd(&env, &topic, lake.to_str().unwrap(), &[])));
    let err = stderr(&out);
    assert!(err.contains("18 rows") && err.contains("2 rejects"), "{err}");
    assert!(err.contains("columns typed by inference from the first records") && err.contains("venue string"), "{err}");

    let spec: toml::Value =
        toml::from_str(&std::fs::read_to_string(lake.join("_ticklake/table.toml")).unwrap()).unwrap();
    let fields = spec["schema"]["fields"].as_array().unwrap();
    let ty = |name: &str| fields.iter().find(|f| f["name"].as_str() == Some(name)).map(|f| f["type"].as_str().unwrap());
    assert_eq!(ty("open"), Some("double"), "{spec}");
    assert_eq!(ty("tags"), None, "an array-valued field is no column");
    let dump = env.read_lake(LakeAt::Local(&lake));
    assert_eq!(dump.rows.len(), 18);
    for (file, types) in &dump.types {
        assert_eq!(types["open"][0], "DOUBLE", "{file}: {types:?}");
    }
    let rejects = walk_files(&lake.join("_ticklake/rejects"));
    let reasons: String = rejects.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect();
    assert!(reasons.contains("'open'") && reasons.contains("an array"), "{reasons}");

    let ddl = stdout(&ok(run(env.ticklake().args(["athena", "--table", "m.i", "--to", lake.to_str().unwrap()]))));
    assert!(ddl.contains("`open` double"), "{ddl}");
    let stats =
        stdout(&ok(run(env.ticklake().args(["lake", "stats", "--topic", &topic, "--to", lake.to_str().unwrap()]))));
    assert!(stats.contains("typed by inference from 20 record(s): venue string (few records"), "{stats}");
    verify_lake(&env, &topic, lake.to_str().unwrap());
}

/// Item 1's strict mode: no column from inference; a field beyond the preset is a reject; records that match no
/// preset stop a new lake with exit 2.
#[tokio::test(flavor = "multi_thread")]
async fn strict_schema_refuses_inference() {
    let env = env_or_skip!();
    let topic = random_name("strict");
    let mut records: Vec<serde_json::Value> = (1..=6).map(|d| index_record("HSI", d, 1.0)).collect();
    records[4]["venue"] = serde_json::json!("XHKG");
    produce_raw(&env.brokers, &topic, 1, &records.iter().map(bytes).collect::<Vec<_>>()).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let out = ok(run(&mut sink_cmd(&env, &topic, lake.to_str().unwrap(), &["--strict-schema"])));
    assert!(stderr(&out).contains("5 rows") && stderr(&out).contains("1 reject"), "{}", stderr(&out));
    let spec = std::fs::read_to_string(lake.join("_ticklake/table.toml")).unwrap();
    assert!(!spec.contains("venue") && !spec.contains("inferred"), "{spec}");

    let other = random_name("strict-none");
    produce_raw(&env.brokers, &other, 1, &[br#"{"Ticker":"A","Px":1.5}"#.to_vec()]).await;
    let out = run(&mut sink_cmd(&env, &other, dir.path().join("l2").to_str().unwrap(), &["--strict-schema"]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("match no preset") && stderr(&out).contains("--schema"), "{}", stderr(&out));
}

/// Item 1's repair path: `lake retype` refuses while files hold the column (naming the rewrite), and works once
/// none does; the rewrite it names (`lake schema`, edit, sink into a new prefix) gives a lake of the right type.
#[tokio::test(flavor = "multi_thread")]
async fn a_wrongly_inferred_column_is_repaired_by_retype_or_by_the_rewrite_it_names() {
    let env = env_or_skip!();
    let topic = random_name("retype");
    // `code` is typed from the first records as a bigint; the feed later sends strings (rejects then).
    let records: Vec<Vec<u8>> = (1..=8)
        .map(|d| {
            let mut r = index_record("HSI", d, 1.0);
            r["code"] = if d < 5 { serde_json::json!(d) } else { serde_json::json!(format!("C{d}")) };
            bytes(&r)
        })
        .collect();
    produce_raw(&env.brokers, &topic, 1, &records[..4]).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    ok(run(&mut sink_cmd(&env, &topic, lake.to_str().unwrap(), &[])));
    produce_more(&env.brokers, &topic, &records[4..]).await;
    let out = ok(run(&mut sink_cmd(&env, &topic, lake.to_str().unwrap(), &[])));
    assert!(stderr(&out).contains("4 rejects"), "strings in a bigint column: {}", stderr(&out));
    let retype = |to: &std::path::Path| {
        run(env.ticklake().args([
            "lake",
            "retype",
            "--to",
            to.to_str().unwrap(),
            "--column",
            "code",
            "--type",
            "string",
        ]))
    };
    let out = retype(&lake);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(e.contains("hold column 'code' as bigint") && e.contains("ticklake lake schema --to"), "{e}");

    // The rewrite: the lake's schema with the type fixed, into a new prefix, from the topic.
    let schema = stdout(&ok(run(env.ticklake().args(["lake", "schema", "--to", lake.to_str().unwrap()]))));
    let fixed = schema.replace("name = \"code\"\ntype = \"bigint\"", "name = \"code\"\ntype = \"string\"");
    assert_ne!(fixed, schema, "{schema}");
    let file = dir.path().join("fixed.toml");
    std::fs::write(&file, fixed).unwrap();
    let lake2 = dir.path().join("lake2");
    let out = ok(run(&mut sink_cmd(&env, &topic, lake2.to_str().unwrap(), &["--schema", file.to_str().unwrap()])));
    assert!(stderr(&out).contains("8 rows") && stderr(&out).contains("0 rejects"), "{}", stderr(&out));

    // Before any data file holds it (the files removed: a lake whose first commit never landed its files).
    for f in walk_files(&lake).iter().filter(|p| p.extension().is_some_and(|e| e == "parquet")) {
        std::fs::remove_file(f).unwrap();
    }
    let out = ok(retype(&lake));
    assert!(stdout(&out).contains("is now string"), "{}", stdout(&out));
    let stats =
        stdout(&ok(run(env.ticklake().args(["lake", "stats", "--topic", &topic, "--to", lake.to_str().unwrap()]))));
    assert!(stats.contains("retyped code from bigint to string"), "{stats}");
}

/// Item 2: a typo in --topic or --to is an error naming what the lake holds, never "exactly once: yes".
#[tokio::test(flavor = "multi_thread")]
async fn lake_verify_and_stats_refuse_a_topic_or_prefix_the_lake_does_not_hold() {
    let env = env_or_skip!();
    let topic = random_name("indices");
    let bucket = env.create_bucket();
    let to = format!("s3://{bucket}/prices");
    replay_csv(&env, &repo_path("data/indices.csv"), &topic, 1, &["--limit", "50"]);
    ok(run(&mut sink_cmd(&env, &topic, &to, &[])));
    verify_lake(&env, &topic, &to);
    for cmd in ["verify", "stats", "compact"] {
        let out = run(env.ticklake().args(["lake", cmd, "--topic", "indcies", "--to", &to]));
        assert_eq!(out.status.code(), Some(2), "{cmd}: {}{}", stdout(&out), stderr(&out));
        assert!(
            stderr(&out).contains(&format!("does not hold topic 'indcies'; it holds '{topic}'")),
            "{}",
            stderr(&out)
        );
        assert!(!stdout(&out).contains("exactly once: yes"));
        let out = run(env.ticklake().args(["lake", cmd, "--topic", &topic, "--to", &format!("s3://{bucket}/pricez")]));
        assert_eq!(out.status.code(), Some(2), "{cmd}: {}{}", stdout(&out), stderr(&out));
        assert!(stderr(&out).contains(&format!("no lake at s3://{bucket}/pricez")), "{}", stderr(&out));
    }
}

/// Item 4: a stamped row of a date-only schema gets today's date, and its record timestamp is its send time.
#[tokio::test(flavor = "multi_thread")]
async fn stamp_now_on_a_date_schema_timestamps_records_at_their_send_time() {
    let env = env_or_skip!();
    let topic = random_name("stamp");
    let before = chrono::Utc::now().timestamp_millis();
    replay_csv(&env, &repo_path("data/indices.csv"), &topic, 1, &["--limit", "5", "--stamp-now"]);
    let after = chrono::Utc::now().timestamp_millis();
    let today = chrono::Utc::now().date_naive().to_string();
    let records = read_topic(&env.brokers, &topic).await;
    assert_eq!(records.len(), 5);
    for r in records {
        assert!((before..=after).contains(&r.timestamp_ms), "{} not in {before}..={after}", r.timestamp_ms);
        assert_eq!(r.value["trade_date"], serde_json::json!(today), "{}", r.value);
    }
}

/// Item 5: an S3 endpoint that refuses connections fails at start-up with the cause (exit 4, no retries), and
/// one that takes connections and drops them (transient failures) is retried until Ctrl-C, which ends it with 130.
#[test]
fn an_unreachable_s3_endpoint_fails_at_once_and_ctrl_c_ends_the_retries() {
    let env = env_or_skip!();
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    for args in [
        vec!["sink", "--topic", "t", "--to", "s3://b/p", "--s3-endpoint", &endpoint],
        vec!["lake", "stats", "--topic", "t", "--to", "s3://b/p", "--s3-endpoint", &endpoint],
    ] {
        let out = run(env.ticklake().args(&args));
        let e = stderr(&out);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {e}");
        assert!(e.contains(&format!("connection refused at {endpoint}: is the S3 endpoint right")), "{e}");
        assert!(!e.contains("retrying"), "a refused connection at start-up is not retried: {e}");
    }

    // A server that accepts and closes at once: a transient failure, retried, until the signal.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dropping = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    let sink =
        Logged::spawn(env.ticklake().args(["sink", "--topic", "t", "--to", "s3://b/p", "--s3-endpoint", &dropping]));
    sink.wait_for("a retry", |l| l.contains("retrying in about"));
    sink.signal("-INT");
    let (status, err) = sink.finish();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("stopped by Interrupt while waiting"), "{err}");
}

/// Item 6: `--brokers` pointing at a port that answers but is not Kafka (the S3 server's) says so at once.
#[test]
fn a_port_that_is_not_kafka_is_named_by_replay_and_sink() {
    let env = env_or_skip!();
    let s3 = env.s3_endpoint();
    let addr = s3.trim_start_matches("http://").trim_end_matches('/').to_string();
    let csv = repo_path("data/indices.csv");
    for args in [
        vec!["replay", csv.to_str().unwrap(), "--topic", "t", "--brokers", &addr],
        vec!["sink", "--topic", "t", "--to", "./never", "--brokers", &addr],
    ] {
        let out = run(env.ticklake().args(&args));
        let e = stderr(&out);
        assert_eq!(out.status.code(), Some(4), "{e}");
        assert!(e.contains("does not look like a Kafka broker") && e.contains(&addr), "{e}");
        assert!(!e.contains("no metadata answer"), "{e}");
    }
}

/// Item 7: Ctrl-C during a paced replay: read = sent + skipped + failed, three times out of three.
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_during_a_paced_replay_leaves_counts_that_add_up() {
    let env = env_or_skip!();
    let csv = repo_path("data/indices.csv");
    for round in 0..3 {
        let topic = random_name("paced");
        let replay = Logged::spawn(
            env.ticklake()
                .args(["replay", csv.to_str().unwrap(), "--topic", &topic, "--partitions", "1", "--rate", "50"])
                .args(["--log-format", "json", "--metrics-addr", "127.0.0.1:0"]),
        );
        let addr = replay.metrics_addr();
        wait_until("rows sent", || {
            let t = http_get(&addr, "/metrics").ok()?.1;
            metric(&t, "ticklake_replay_rows_sent_total").filter(|n| *n >= 5.0)
        });
        replay.signal("-INT");
        let (status, err) = replay.finish();
        assert_eq!(status.code(), Some(130), "{err}");
        let (read, sent) = (summary_count(&err, "read"), summary_count(&err, "sent"));
        let (skipped, failed) = (summary_count(&err, "skipped"), summary_count(&err, "failed"));
        assert_eq!(read, sent + skipped + failed, "round {round}: {err}");
        assert_eq!(read_topic(&env.brokers, &topic).await.len() as u64, sent, "round {round}");
    }
}

/// Item 8: a reader that closes stdout early ends the command quietly with 0.
#[test]
fn a_closed_stdout_ends_quietly() {
    let env = env_or_skip!();
    for args in [vec!["completions", "zsh"], vec!["sample", "indices", "--rows", "200000"]] {
        let mut child = env.ticklake().args(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        assert!(!first.is_empty());
        // The reader is gone (dropped with its pipe end): the next writes fail with EPIPE.
        let status = child.wait().unwrap();
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert_eq!(status.code(), Some(0), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}

/// Item 9: `--print-queries` on a schema without reference queries prints the DDL and says what it skipped.
#[test]
fn print_queries_prints_the_ddl_for_every_schema() {
    let env = env_or_skip!();
    let out = run(env
        .ticklake()
        .args(["athena", "--table", "m.ticks", "--schema", "ticks", "--to", "s3://my-bucket/ticks"])
        .arg("--print-queries"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ddl = stdout(&out);
    assert!(
        ddl.contains("CREATE EXTERNAL TABLE") && ddl.contains("-- no reference queries for schema 'ticks'"),
        "{ddl}"
    );
}

/// Item 12: a header one spelling away from a preset is named, with the key the inferred schema chose.
#[test]
fn a_header_close_to_a_preset_is_named_with_the_key_chosen() {
    let env = env_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("near.csv");
    let text = std::fs::read_to_string(repo_path("data/indices.csv")).unwrap().replacen("Adj Close", "AdjClose", 1);
    std::fs::write(&csv, text.lines().take(20).collect::<Vec<_>>().join("\n")).unwrap();
    let topic = random_name("near");
    let out = replay_csv(&env, &csv, &topic, 1, &[]);
    let e = stderr(&out);
    assert!(e.contains("header is close to preset indices: `AdjClose` vs `Adj Close`?"), "{e}");
    assert!(e.contains("keys records by `index`"), "{e}");
}

/// Item 13: `config show` names the environment variables the S3 settings come from.
#[test]
fn config_show_names_the_environment_behind_the_s3_settings() {
    let env = env_or_skip!();
    let out = ok(run(env
        .ticklake()
        .args(["config", "show", "sink", "--topic", "t"])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
        .env("AWS_REGION", "eu-west-1")));
    let text = stdout(&out);
    assert!(text.contains("s3_endpoint = \"http://127.0.0.1:1\"  # env AWS_ENDPOINT_URL"), "{text}");
    assert!(text.contains("region = \"eu-west-1\"  # env AWS_REGION"), "{text}");
}

fn walk_files(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else { return out };
    for e in entries.map(Result::unwrap) {
        if e.file_type().unwrap().is_dir() {
            out.extend(walk_files(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// Item 16: a stamped live feed gets a day layout by default (one folder per day, not one per year).
#[test]
fn a_stamped_live_feed_is_partitioned_by_day() {
    let env = env_or_skip!();
    let topic = random_name("live");
    let csv = repo_path("data/indices.csv");
    ok(run(env
        .ticklake()
        .args(["replay", csv.to_str().unwrap(), "--topic", &topic, "--sample", "--stamp-now"])
        .args(["--rate", "1000", "--limit", "30"])));
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let out = ok(run(&mut sink_cmd(&env, &topic, lake.to_str().unwrap(), &[])));
    assert!(stderr(&out).contains("a live feed"), "{}", stderr(&out));
    let today = chrono::Utc::now().date_naive().to_string();
    assert!(lake.join(format!("dt={today}")).is_dir(), "{:?}", walk_files(&lake));
    let spec = std::fs::read_to_string(lake.join("_ticklake/table.toml")).unwrap();
    assert!(spec.contains("partition_by = \"dt=day(trade_date)\""), "{spec}");
}
