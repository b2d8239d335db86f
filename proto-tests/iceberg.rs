//! Iceberg tables (`sink --format iceberg`), read back with pyiceberg through the same catalog: every row once,
//! field by field; the schema, partition spec and sort order; SIGKILLs; a concurrent writer; a second sink fenced;
//! a new field that becomes a column.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::env_or_skip;
use crate::support::*;

/// Where a test table lives: catalog, warehouse (`--to`) and name.
pub(crate) struct Ice {
    pub catalog: String,
    pub to: String,
    warehouse: String,
    pub table: String,
}

impl Ice {
    fn sqlite(dir: &Path) -> Ice {
        let lake = dir.join("lake");
        std::fs::create_dir_all(&lake).unwrap();
        let lake = std::fs::canonicalize(lake).unwrap();
        Ice {
            catalog: format!("sqlite:{}", dir.join("lake/catalog.db").display()),
            to: lake.display().to_string(),
            warehouse: format!("file://{}", lake.display()),
            table: format!("market.{}", random_name("t").replace('-', "_")),
        }
    }

    fn glue(env: &TestEnv) -> Ice {
        let bucket = env.create_bucket();
        Ice {
            catalog: "glue".into(),
            to: format!("s3://{bucket}/warehouse"),
            warehouse: format!("s3://{bucket}/warehouse"),
            table: format!("market.{}", random_name("t").replace('-', "_")),
        }
    }

    /// Apache Iceberg's REST catalog server (`servers.sh start-reference`), its warehouse a MinIO bucket.
    pub(crate) fn rest() -> Ice {
        let uri = std::env::var("TICKLAKE_ICEBERG_REST").expect("TICKLAKE_ICEBERG_REST (set by `just proto`)");
        let warehouse = std::env::var("TICKLAKE_ICEBERG_REST_WAREHOUSE").expect("TICKLAKE_ICEBERG_REST_WAREHOUSE");
        Ice {
            catalog: format!("rest:{uri}"),
            to: warehouse.clone(),
            warehouse,
            table: format!("market.{}", random_name("t").replace('-', "_")),
        }
    }

    /// `ticklake lake verify` on the table, which must pass; its report.
    pub(crate) fn verify(&self, env: &TestEnv, topic: &str) -> String {
        let out = run(env.ticklake().args(["lake", "verify", "--topic", topic, "--to", &self.to]).args([
            "--table",
            &self.table,
            "--catalog",
            &self.catalog,
        ]));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success() && text.contains("exactly once: yes"), "{text}\n{}", stderr(&out));
        text
    }

    pub(crate) fn sink(&self, env: &TestEnv, topic: &str, extra: &[&str]) -> std::process::Command {
        let mut c = sink_cmd(env, topic, &self.to, &["--format", "iceberg", "--catalog", &self.catalog]);
        c.args(["--table", &self.table]).args(extra);
        c
    }

    /// pyiceberg's view of the table (see `check/read_iceberg.py`).
    pub(crate) fn read(&self, env: &TestEnv) -> serde_json::Value {
        let out = ok(run(&mut self.py(env)));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn py(&self, env: &TestEnv) -> std::process::Command {
        let mut c = env.python();
        c.arg(repo_path("proto-tests/check/read_iceberg.py"));
        c.args(["--catalog", &self.catalog, "--warehouse", &self.warehouse, "--table", &self.table]);
        c
    }
}

/// (partition, offset) of every row, which must each appear once, and be exactly the topic's records.
pub(crate) fn assert_every_offset_once(table: &serde_json::Value, records: &[ReadRecord]) {
    let mut seen: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    for r in table["rows"].as_array().unwrap() {
        *seen.entry((r["kafka_partition"].as_i64().unwrap(), r["kafka_offset"].as_i64().unwrap())).or_default() += 1;
    }
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(dups.is_empty(), "offsets stored more than once: {dups:?}");
    let want: Vec<(i64, i64)> = records.iter().map(|r| (r.partition as i64, r.offset)).collect();
    let got: Vec<(i64, i64)> = seen.keys().copied().collect();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    let missing: Vec<_> = want_sorted.iter().filter(|k| !seen.contains_key(k)).take(5).collect();
    assert!(missing.is_empty(), "offsets missing from the table: {missing:?} ({} of {})", got.len(), want.len());
    assert_eq!(got, want_sorted);
}

/// Every CSV row is in the table once, field by field (prices as doubles, volume as a long, dates as dates).
fn assert_rows_match_csv(table: &serde_json::Value, csv: &Path) {
    let schema = ticklake::schema::Schema::indices();
    let key = |fields: Vec<String>| fields.join("|");
    let mut want: Vec<String> = csv_rows(csv)
        .iter()
        .map(|row| {
            key(schema
                .fields
                .iter()
                .map(|f| {
                    let v = &row[f.source_name()];
                    match f.ty {
                        ticklake::schema::ColumnType::Double => format!("{:?}", v.parse::<f64>().unwrap()),
                        ticklake::schema::ColumnType::Bigint => format!("{}", v.parse::<f64>().unwrap() as i64),
                        _ => v.clone(),
                    }
                })
                .collect())
        })
        .collect();
    let mut got: Vec<String> = table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            key(schema
                .fields
                .iter()
                .map(|f| match &r[&f.name] {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Number(n) if f.ty == ticklake::schema::ColumnType::Double => {
                        format!("{:?}", n.as_f64().unwrap())
                    }
                    other => other.to_string(),
                })
                .collect())
        })
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got.len(), want.len(), "row count");
    let diff: Vec<_> = got.iter().zip(&want).filter(|(g, w)| g != w).take(3).collect();
    assert!(diff.is_empty(), "rows differ (got, csv): {diff:?}");
}

/// A generated index CSV of `rows` rows over `symbols` symbols, replayed into a new topic of `partitions`.
fn sampled_topic(env: &TestEnv, dir: &Path, rows: u32, symbols: u32, partitions: u32) -> (String, Vec<ReadRecord>) {
    let csv = dir.join("indices.csv");
    let (rows, symbols) = (rows.to_string(), symbols.to_string());
    ok(run(env.ticklake().args([
        "sample",
        "indices",
        "--rows",
        &rows,
        "--symbols",
        &symbols,
        "-o",
        csv.to_str().unwrap(),
    ])));
    replay_indices(env, &csv, partitions)
}

fn replay_indices(env: &TestEnv, csv: &Path, partitions: u32) -> (String, Vec<ReadRecord>) {
    let topic = random_name("ice");
    replay_csv(env, csv, &topic, partitions, &[]);
    let records = tokio::runtime::Runtime::new().unwrap().block_on(read_topic(&env.brokers, &topic));
    (topic, records)
}

/// The offsets the newest ticklake snapshot records for `topic`.
fn recorded_offsets(table: &serde_json::Value, topic: &str) -> BTreeMap<String, i64> {
    let current = table["current"].as_i64().unwrap();
    let snaps = table["snapshots"].as_array().unwrap();
    let mut id = Some(current);
    while let Some(i) = id {
        let s = snaps.iter().find(|s| s["id"].as_i64() == Some(i)).unwrap();
        if let Some(v) = s["summary"].get(format!("ticklake.offsets.{topic}")) {
            return serde_json::from_str(v.as_str().unwrap()).unwrap();
        }
        id = s["parent"].as_i64();
    }
    BTreeMap::new()
}

fn check_round_trip(env: &TestEnv, ice: &Ice) {
    let csv = repo_path("data/indices.csv");
    let (topic, records) = replay_indices(env, &csv, 3);
    let out = ok(run(&mut ice.sink(env, &topic, &["--max-rows", "1500"])));
    assert!(stderr(&out).contains("created the iceberg table"), "{}", stderr(&out));
    let table = ice.read(env);
    assert_rows_match_csv(&table, &csv);
    assert_every_offset_once(&table, &records);
    // The schema, partition spec and sort order ticklake was asked for (the indices defaults).
    let schema: Vec<(String, String, bool)> = serde_json::from_value(table["schema"].clone()).unwrap();
    let types: BTreeMap<&str, &str> = schema.iter().map(|(n, t, _)| (n.as_str(), t.as_str())).collect();
    assert_eq!(types["trade_date"], "date");
    assert_eq!(types["close"], "double");
    assert_eq!(types["volume"], "long");
    assert_eq!(types["symbol"], "string");
    assert_eq!(types["kafka_partition"], "int");
    assert_eq!(types["kafka_offset"], "long");
    assert_eq!(types["kafka_timestamp"], "timestamp");
    assert_eq!(table["partition_spec"], serde_json::json!([["trade_date_year", "year", "trade_date"]]));
    let sort: Vec<Vec<String>> = serde_json::from_value(table["sort_order"].clone()).unwrap();
    assert_eq!(sort.iter().map(|s| s[0].as_str()).collect::<Vec<_>>(), ["trade_date", "symbol"]);
    assert_eq!(table["properties"]["write.parquet.compression-codec"], "zstd");
    // The offsets each partition resumes from, in the newest snapshot's summary.
    let recorded = recorded_offsets(&table, &topic);
    for (p, recs) in by_partition(&records) {
        assert_eq!(recorded[&p.to_string()], recs.last().unwrap().offset + 1, "partition {p}");
    }
    // Data files follow Athena's naming rule (no leading _ or .) and sit in year folders.
    for f in table["files"].as_array().unwrap() {
        let name = f.as_str().unwrap().rsplit('/').next().unwrap();
        assert!(!name.starts_with('_') && !name.starts_with('.') && name.ends_with(".parquet"), "{f}");
        // The partition folder reads like the Java library writes it (a year, not years since 1970).
        let year = f.as_str().unwrap().split("trade_date_year=").nth(1).unwrap().split('/').next().unwrap();
        assert!(year.len() == 4 && year.starts_with("20"), "{f}");
    }
    // ticklake's own view agrees: verify from the kafka_* columns, stats from the metadata.
    let report = ice.verify(env, &topic);
    assert!(report.contains("orphan data files: none"), "{report}");
    let stats = ok(run(env.ticklake().args(["lake", "stats", "--topic", &topic, "--to", &ice.to]).args([
        "--table",
        &ice.table,
        "--catalog",
        &ice.catalog,
    ])));
    let stats = String::from_utf8_lossy(&stats.stdout).into_owned();
    assert!(stats.contains(&format!("{} row(s)", records.len())), "{stats}");
    assert!(stats.contains("partition spec: year(trade_date)"), "{stats}");
    // An existing table's spec is used as it is: conflicting flags stop before any data moves (exit 2).
    let snapshots = table["snapshots"].as_array().unwrap().len();
    for flags in [["--partition-by", "month(trade_date)"], ["--sort-by", "symbol"]] {
        let out = run(&mut ice.sink(env, &topic, &flags));
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("conflicts with table"), "{}", stderr(&out));
    }
    // A second run resumes from the recorded offsets: nothing new, no new snapshot.
    ok(run(&mut ice.sink(env, &topic, &[])));
    let again = ice.read(env);
    assert_eq!(again["snapshots"].as_array().unwrap().len(), snapshots);
    assert_every_offset_once(&again, &records);
}

#[test]
fn sqlite_catalog_table_reads_back_every_csv_row_once() {
    let env = env_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    check_round_trip(&env, &Ice::sqlite(dir.path()));
}

#[test]
fn rest_catalog_table_on_s3_reads_back_every_csv_row_once() {
    let env = env_or_skip!();
    check_round_trip(&env, &Ice::rest());
}

#[test]
fn glue_catalog_table_on_s3_reads_back_every_csv_row_once() {
    let env = env_or_skip!();
    let ice = Ice::glue(&env);
    check_round_trip(&env, &ice);
    // Glue holds the table the way Athena reads it.
    let script = format!(
        "import boto3, json; t = boto3.client('glue', endpoint_url='{}', region_name='us-east-1').get_table(DatabaseName='market', Name='{}')['Table']; print(json.dumps(t['Parameters']))",
        env.glue_endpoint(),
        ice.table.split('.').nth(1).unwrap()
    );
    let params: serde_json::Value =
        serde_json::from_slice(&ok(run(env.python().args(["-c", &script]))).stdout).unwrap();
    assert_eq!(params["table_type"].as_str().map(str::to_ascii_uppercase).as_deref(), Some("ICEBERG"));
    let metadata = params["metadata_location"].as_str().unwrap();
    assert!(metadata.starts_with(&ice.warehouse), "{params}");
    // `ticklake athena` knows there is nothing to create, and names the maintenance commands.
    let text = ok(run(env.ticklake().args(["athena", "--to", &ice.to, "--table", &ice.table, "--catalog", "glue"])));
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("Nothing to create"), "{text}");
    assert!(text.contains(metadata), "{text}");
    assert!(text.contains(&format!("OPTIMIZE {} REWRITE DATA USING BIN_PACK;", ice.table)), "{text}");
    assert!(text.contains(&format!("VACUUM {};", ice.table)), "{text}");
}

fn seed() -> u64 {
    let s = std::env::var("TICKLAKE_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("seed {s} (rerun with TICKLAKE_TEST_SEED={s})");
    s
}

#[test]
fn sigkill_at_random_moments_never_loses_or_duplicates_a_row() {
    let env = env_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let (topic, records) = sampled_topic(&env, dir.path(), 60000, 20, 3);
    let ice = Ice::sqlite(dir.path());
    let sink = |extra: &[&str]| {
        let mut c = ice.sink(&env, &topic, &["--max-rows", "500"]);
        c.args(extra);
        c
    };
    let mut state = seed();
    let mut kills = 0;
    while kills < 12 {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        // Each round waits for a commit of its own (an event), then kills after a random delay: mid-write,
        // mid-commit or between commits.
        let wait = Duration::from_millis((state >> 33) % 400);
        let mut cmd = sink(&[]);
        cmd.env("RUST_LOG", "info,ticklake::sink=debug,rskafka=error");
        let sink = Logged::spawn(&mut cmd);
        let committed = sink.wait_count(|l| l.contains("cut committed"), 1);
        if !committed || sink.exited() {
            break;
        }
        std::thread::sleep(wait);
        if sink.exited() {
            break;
        }
        sink.signal("-KILL");
        let _ = sink.finish();
        kills += 1;
    }
    eprintln!("iceberg crash test: {kills} SIGKILLs");
    assert!(kills >= 10, "only {kills} kills before the sink finished: give it more rows");
    ok(run(&mut sink(&[])));
    let table = ice.read(&env);
    assert_every_offset_once(&table, &records);
    // Files written by a killed sink before its commit are orphans: listed, never read.
    let report = ice.verify(&env, &topic);
    eprintln!("{report}");
    assert!(
        report.contains("orphan data files (written, never committed"),
        "no kill landed between upload and commit: {report}"
    );
}

#[test]
fn a_concurrent_writer_costs_a_retry_never_a_row() {
    let env = env_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let (topic, _) = sampled_topic(&env, dir.path(), 20000, 10, 2);
    let ice = Ice::sqlite(dir.path());
    // A sink that follows the topic, in small cuts (many commits).
    let cmd = ice.sink(&env, &topic, &["--max-rows", "300", "--max-age", "1s"]);
    let args: Vec<String> =
        cmd.get_args().filter(|a| *a != "--exit-at-end").map(|a| a.to_string_lossy().into()).collect();
    let mut follow = env.ticklake();
    follow.args(&args).env("RUST_LOG", "info,ticklake::sink=debug,rskafka=error");
    let sink = Logged::spawn(&mut follow);
    sink.wait_count(|l| l.contains("cut committed"), 2);
    // Another writer commits in the middle of the run: pyiceberg rewrites every file (what OPTIMIZE does) and
    // appends a row of its own (kafka_partition 99, outside the topic).
    let rows = dir.path().join("other.json");
    std::fs::write(
        &rows,
        r#"[{"symbol": "OTHER", "trade_date": "2020-01-01", "kafka_partition": 99, "kafka_offset": 0, "kafka_timestamp": "2020-01-01T00:00:00+00:00"}]"#,
    )
    .unwrap();
    for _ in 0..3 {
        ok(run(ice.py(&env).arg("--rewrite")));
        ok(run(ice.py(&env).args(["--append-from", rows.to_str().unwrap()])));
    }
    // More records after the other writer's commits; the sink takes them too.
    replay_csv(&env, &dir.path().join("indices.csv"), &topic, 2, &[]);
    let records = tokio::runtime::Runtime::new().unwrap().block_on(read_topic(&env.brokers, &topic));
    let total = records.len() as i64;
    wait_until("the sink to commit every record", || {
        let t = ice.read(&env);
        let n = t["rows"].as_array().unwrap().iter().filter(|r| r["kafka_partition"].as_i64() != Some(99)).count();
        (n as i64 >= total).then_some(())
    });
    sink.signal("-TERM");
    let (status, log) = sink.finish();
    assert!(status.code() == Some(143) || status.success(), "{log}");
    let mut table = ice.read(&env);
    let rows = table["rows"].as_array_mut().unwrap();
    let others = rows.iter().filter(|r| r["kafka_partition"].as_i64() == Some(99)).count();
    assert_eq!(others, 3, "the other writer's rows stay");
    rows.retain(|r| r["kafka_partition"].as_i64() != Some(99));
    assert_every_offset_once(&table, &records);
}

#[test]
fn a_second_sink_on_the_same_partitions_is_fenced() {
    let env = env_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let (topic, records) = sampled_topic(&env, dir.path(), 30000, 10, 1);
    let ice = Ice::sqlite(dir.path());
    // Create the table first, so both sinks start from the same state.
    ok(run(&mut ice.sink(&env, &topic, &["--max-rows", "100000000"])));
    replay_csv(&env, &dir.path().join("indices.csv"), &topic, 1, &[]);
    let records_after = tokio::runtime::Runtime::new().unwrap().block_on(read_topic(&env.brokers, &topic));
    assert!(records_after.len() > records.len());
    let a = Logged::spawn(&mut ice.sink(&env, &topic, &["--max-rows", "400"]));
    let b = Logged::spawn(&mut ice.sink(&env, &topic, &["--max-rows", "400"]));
    let (sa, la) = a.finish();
    let (sb, lb) = b.finish();
    let codes = [sa.code(), sb.code()];
    assert!(codes.contains(&Some(13)), "neither sink was fenced: {codes:?}\n{la}\n{lb}");
    let fenced = if sa.code() == Some(13) { &la } else { &lb };
    assert!(fenced.contains("another sink writes this Kafka partition"), "{fenced}");
    // Whatever the survivor did not finish, a last run does.
    ok(run(&mut ice.sink(&env, &topic, &[])));
    assert_every_offset_once(&ice.read(&env), &records_after);
    ice.verify(&env, &topic);
}

#[test]
fn a_field_appearing_mid_stream_becomes_a_column() {
    let env = env_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let topic = random_name("ice-evolve");
    let row = |i: usize, extra: bool| {
        let mut v = serde_json::json!({"symbol": format!("S{}", i % 3), "trade_date": "2024-01-02", "close": i as f64});
        if extra {
            v["venue"] = serde_json::json!(format!("V{i}"));
        }
        serde_json::to_vec(&v).unwrap()
    };
    let first: Vec<Vec<u8>> = (0..50).map(|i| row(i, false)).collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(produce_raw(&env.brokers, &topic, 1, &first));
    let ice = Ice::sqlite(dir.path());
    ok(run(&mut ice.sink(&env, &topic, &[])));
    let mut second: Vec<Vec<u8>> = (50..100).map(|i| row(i, true)).collect();
    // Offset 60 cannot be stored (a string in the table's double column): a reject, kept with its reason, never a row.
    second[10] = br#"{"symbol": "S1", "trade_date": "2024-01-02", "close": "high"}"#.to_vec();
    rt.block_on(produce_more(&env.brokers, &topic, &second));
    let out = ok(run(&mut ice.sink(&env, &topic, &[])));
    assert!(stderr(&out).contains("added columns to the iceberg table"), "{}", stderr(&out));
    let table = ice.read(&env);
    let names: Vec<String> =
        table["schema"].as_array().unwrap().iter().map(|f| f[0].as_str().unwrap().to_string()).collect();
    assert!(names.contains(&"venue".to_string()), "{names:?}");
    let mut rows: Vec<(i64, serde_json::Value)> = table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["kafka_offset"].as_i64().unwrap(), r["venue"].clone()))
        .collect();
    rows.sort_by_key(|r| r.0);
    assert_eq!(rows.len(), 99);
    assert!(rows.iter().all(|r| r.0 != 60), "the bad record is not a row");
    let report = ice.verify(&env, &topic);
    assert!(report.contains("99 row(s) + 1 reject(s)"), "{report}");
    let rejects = std::fs::read_dir(Path::new(&ice.to).join("_ticklake/rejects").join(&topic)).unwrap().count();
    assert_eq!(rejects, 1);
    for (offset, venue) in rows {
        if offset < 50 {
            assert!(venue.is_null(), "offset {offset}: {venue}");
        } else {
            assert_eq!(venue, serde_json::json!(format!("V{offset}")), "offset {offset}");
        }
    }
}

#[test]
fn bucket_and_truncate_transforms_partition_the_table() {
    let env = env_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let csv = repo_path("data/indices.csv");
    let (topic, records) = replay_indices(&env, &csv, 1);
    let ice = Ice::sqlite(dir.path());
    let spec = "year(trade_date),bucket[4](symbol),first=truncate[1](symbol)";
    ok(run(&mut ice.sink(&env, &topic, &["--partition-by", spec])));
    let table = ice.read(&env);
    assert_eq!(
        table["partition_spec"],
        serde_json::json!([
            ["trade_date_year", "year", "trade_date"],
            ["symbol_bucket", "bucket[4]", "symbol"],
            ["first", "truncate[1]", "symbol"]
        ])
    );
    assert_rows_match_csv(&table, &csv);
    assert_every_offset_once(&table, &records);
    // pyiceberg computes the same buckets: its filter on a symbol prunes to that symbol's bucket files and finds
    // exactly that symbol's rows.
    let script = format!(
        "import sys, json; sys.argv = ['x', '--catalog', {c:?}, '--warehouse', {w:?}, '--table', {t:?}]\n\
         from pyiceberg.catalog.sql import SqlCatalog\n\
         cat = SqlCatalog('ticklake', uri='sqlite:///' + {c:?}[len('sqlite:'):], warehouse={w:?})\n\
         t = cat.load_table({t:?})\n\
         scan = t.scan(row_filter=\"symbol == 'NYA'\")\n\
         print(json.dumps({{'files': len(list(scan.plan_files())), 'all': len(list(t.scan().plan_files())), 'rows': scan.to_arrow().num_rows}}))",
        c = ice.catalog,
        w = ice.warehouse,
        t = ice.table
    );
    let out: serde_json::Value = serde_json::from_slice(&ok(run(env.python().args(["-c", &script]))).stdout).unwrap();
    let nya = csv_rows(&csv).iter().filter(|r| r["Index"] == "NYA").count() as u64;
    assert_eq!(out["rows"].as_u64(), Some(nya), "{out}");
    assert!(out["files"].as_u64() < out["all"].as_u64(), "bucket pruning: {out}");
}

/// A sink following the topic, as a service runs it (no `--exit-at-end`), with debug logs of the commit steps.
fn follow(env: &TestEnv, ice: &Ice, topic: &str, extra: &[&str]) -> Logged {
    let cmd = ice.sink(env, topic, extra);
    let args: Vec<String> =
        cmd.get_args().filter(|a| *a != "--exit-at-end").map(|a| a.to_string_lossy().into()).collect();
    let mut c = env.ticklake();
    c.args(&args).env("RUST_LOG", "info,ticklake::sink=debug,rskafka=error");
    Logged::spawn(&mut c)
}

/// Issue 19 item 3: a second sink on a table a sink is writing stops at start, naming the holder, before it
/// consumes or uploads anything (no orphan, no lost commit for the first one).
#[test]
fn a_second_sink_on_a_running_table_stops_at_start_before_writing() {
    let env = env_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let (topic, records) = sampled_topic(&env, dir.path(), 3000, 10, 2);
    for ice in [Ice::sqlite(dir.path()), Ice::rest()] {
        let first = follow(&env, &ice, &topic, &["--max-rows", "500"]);
        first.wait_for("the first sink's commit", |l| l.contains("cut committed"));
        let out = run(ice.sink(&env, &topic, &[]).env("RUST_LOG", "info,ticklake::sink=debug,rskafka=error"));
        let e = stderr(&out);
        assert_eq!(out.status.code(), Some(13), "{e}");
        assert!(e.contains("another sink writes this Kafka partition"), "{e}");
        assert!(e.contains(&format!("pid {}", first.child.0.id())), "the holder is named: {e}");
        assert!(!e.contains("data files written") && !e.contains("cut committed"), "it wrote nothing: {e}");
        first.wait_for("the first sink to catch up", |l| l.contains("caught up"));
        first.signal("-TERM");
        let (status, log) = first.finish();
        assert_eq!(status.code(), Some(143), "the first sink was never fenced: {log}");
        assert_every_offset_once(&ice.read(&env), &records);
        assert!(ice.verify(&env, &topic).contains("orphan data files: none"));
    }
}

/// Issue 19 item 3: the data files a killed sink uploaded but never committed are removed by `lake
/// remove-orphans` for the sqlite and the Glue catalog, which refuses while a sink of the table runs.
#[test]
fn orphans_of_a_killed_sink_are_removed_for_each_catalog() {
    let env = env_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let (topic, records) = sampled_topic(&env, dir.path(), 6000, 10, 2);
    for ice in [Ice::sqlite(dir.path()), Ice::glue(&env), Ice::rest()] {
        let remove = |older_than: &str| {
            run(env.ticklake().args(["lake", "remove-orphans", "--topic", &topic, "--to", &ice.to]).args([
                "--table",
                &ice.table,
                "--catalog",
                &ice.catalog,
                "--older-than",
                older_than,
            ]))
        };
        // Kill right after a cut's files are written, before its commit lands, until a kill leaves an orphan
        // (the commit races the signal; each round is one more cut).
        let mut orphaned = false;
        for _ in 0..10 {
            let sink = follow(&env, &ice, &topic, &["--max-rows", "300"]);
            // A cut's files written after a commit landed (the table records the topic), its own commit may not.
            if !sink.wait_count(|l| l.contains("cut committed"), 1) {
                break;
            }
            let written = sink.count(|l| l.contains("data files written; committing"));
            if !sink.wait_count(|l| l.contains("data files written; committing"), written + 1) {
                break;
            }
            sink.signal("-KILL");
            let _ = sink.finish();
            let report = ice.verify(&env, &topic);
            if report.contains("orphan data files (written, never committed") {
                orphaned = true;
                break;
            }
        }
        assert!(orphaned, "{}: no kill landed between upload and commit in 10 rounds", ice.catalog);
        // While a sink of the table runs: refused, nothing deleted.
        let running = follow(&env, &ice, &topic, &["--max-rows", "300"]);
        running.wait_for("the sink to hold its leases", |l| l.contains("cut committed"));
        let out = remove("0s");
        assert_eq!(out.status.code(), Some(13), "{}", stderr(&out));
        assert!(stderr(&out).contains("stop it first"), "{}", stderr(&out));
        running.wait_for("the sink to catch up", |l| l.contains("caught up"));
        running.signal("-TERM");
        let _ = running.finish();
        // Young orphans are kept by the default age bound; --older-than 0s takes them.
        let kept = remove("1h");
        assert!(String::from_utf8_lossy(&ok(kept).stdout).contains("removed 0 orphan"));
        let out = ok(remove("0s"));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(text.contains("removed ") && !text.contains("removed 0 "), "{text}");
        assert!(ice.verify(&env, &topic).contains("orphan data files: none"), "{}", ice.catalog);
        assert_every_offset_once(&ice.read(&env), &records);
    }
}

/// Issue 19 item 11: `athena --apply` registers a sqlite-catalog table in Glue at its current metadata, and moves
/// it forward after more commits; pyiceberg reads the same rows through Glue.
#[test]
fn athena_apply_registers_an_iceberg_table_in_glue() {
    let env = env_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let (topic, records) = sampled_topic(&env, dir.path(), 400, 5, 1);
    let ice = Ice::sqlite(dir.path());
    ok(run(&mut ice.sink(&env, &topic, &[])));
    let apply = || {
        let out = ok(run(env.ticklake().args([
            "athena",
            "--to",
            &ice.to,
            "--table",
            &ice.table,
            "--catalog",
            &ice.catalog,
            "--apply",
        ])));
        (String::from_utf8_lossy(&out.stdout).into_owned(), stderr(&out))
    };
    let (text, log) = apply();
    assert!(text.contains(&format!("registered Glue table {} (ICEBERG)", ice.table)), "{text}");
    assert!(log.contains("run Athena's VACUUM"), "the two-catalog warning: {log}");
    let via_glue =
        Ice { catalog: "glue".into(), to: ice.to.clone(), warehouse: ice.warehouse.clone(), table: ice.table.clone() };
    assert_eq!(via_glue.read(&env)["rows"].as_array().unwrap().len(), records.len());
    replay_csv(&env, &dir.path().join("indices.csv"), &topic, 1, &[]);
    ok(run(&mut ice.sink(&env, &topic, &[])));
    let (text, _) = apply();
    assert!(text.contains("updated Glue table") && text.contains("(was "), "{text}");
    assert_eq!(via_glue.read(&env)["rows"].as_array().unwrap().len(), 2 * records.len());
}

/// The table's `*.metadata.json` files under a local warehouse: (count, bytes).
fn metadata_files(root: &Path) -> (usize, u64) {
    let mut out = (0, 0);
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().map(Result::unwrap) {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(".metadata.json") {
                out = (out.0 + 1, out.1 + e.metadata().unwrap().len());
            }
        }
    }
    out
}

/// Issue 21: `lake expire` keeps a table's metadata bounded for the catalogs Athena does not clean (sqlite, REST):
/// after a sink of many small commits, the snapshots are expired down to the newest two, the metadata files the
/// table no longer lists are deleted, every offset is still in the table once, and a sink resumes from the
/// offsets of the snapshot that was kept.
#[test]
fn lake_expire_bounds_the_metadata_and_keeps_every_offset() {
    let env = env_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = sampled_topic(&env, dir.path(), 3000, 10, 3);
    let csv = dir.path().join("indices.csv");
    for ice in [Ice::sqlite(dir.path()), Ice::rest()] {
        let (topic, records) = if ice.catalog.starts_with("sqlite:") {
            let records = tokio::runtime::Runtime::new().unwrap().block_on(read_topic(&env.brokers, &first));
            (first.clone(), records)
        } else {
            replay_indices(&env, &csv, 3)
        };
        // Cuts of 50 rows: 60 of them, in fewer snapshots (the cuts that are ready together share one).
        ok(run(&mut ice.sink(&env, &topic, &["--max-rows", "50"])));
        let before = ice.verify(&env, &topic);
        let snapshots = |report: &str| -> usize {
            report.lines().next().unwrap().rsplit(": ").next().unwrap().split(' ').next().unwrap().parse().unwrap()
        };
        assert!(snapshots(&before) >= 8, "many small commits: {before}");
        let local = ice.catalog.starts_with("sqlite:");
        let (files_before, bytes_before) = if local { metadata_files(Path::new(&ice.to)) } else { (0, 0) };
        if local {
            // The sink's own commits already deleted the metadata files beyond the newest ten earlier ones
            // (`write.metadata.delete-after-commit.enabled`, set on the tables it creates).
            assert!(snapshots(&before) > 11, "more commits than metadata files kept: {before}");
            assert!(files_before <= 11, "{files_before} metadata files for {} snapshots", snapshots(&before));
        }

        let out = ok(run(env.ticklake().args(["lake", "expire", "--to", &ice.to, "--table", &ice.table]).args([
            "--catalog",
            &ice.catalog,
            "--older-than",
            "0s",
            "--retain-last",
            "2",
            "--keep-metadata",
            "3",
        ])));
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        eprintln!("{said}");
        assert!(said.contains(&format!("expired {} of {}", snapshots(&before) - 2, snapshots(&before))), "{said}");
        let after = ice.verify(&env, &topic);
        assert_eq!(snapshots(&after), 2, "{after}");
        assert_every_offset_once(&ice.read(&env), &records);
        if local {
            let (files, bytes) = metadata_files(Path::new(&ice.to));
            eprintln!("metadata files: {files_before} ({bytes_before} bytes) -> {files} ({bytes} bytes)");
            assert!(
                // The three earlier files it still lists were written before the expiry (each listing every
                // snapshot), the current one lists two.
                files < files_before && bytes * 2 < bytes_before,
                "{files_before}/{bytes_before} -> {files}/{bytes}"
            );
        }
        // The sink resumes from the kept snapshot's offsets: more records, each once.
        replay_csv(&env, &csv, &topic, 3, &[]);
        ok(run(&mut ice.sink(&env, &topic, &[])));
        let all = tokio::runtime::Runtime::new().unwrap().block_on(read_topic(&env.brokers, &topic));
        assert_eq!(all.len(), 2 * records.len());
        assert_every_offset_once(&ice.read(&env), &all);
        ice.verify(&env, &topic);
    }
}
