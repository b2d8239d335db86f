//! The Athena DDL parses with sqlglot (dialect athena) and names exactly the columns the sink writes.

use crate::env_or_skip;
use crate::support::*;
use ticklake::lake::PartitionSpec;
use ticklake::lake::layout::FileLayout;
use ticklake::schema::Schema;

const PARSE: &str = r#"
import json, sys, sqlglot
trees = sqlglot.parse(sys.stdin.read(), read="athena", error_level=sqlglot.ErrorLevel.RAISE)
create = trees[0]
cols = [c.name for c in create.this.expressions if isinstance(c, sqlglot.exp.ColumnDef)]
parts = create.args.get("properties")
keys = [c.name for p in parts.expressions if isinstance(p, sqlglot.exp.PartitionedByProperty) for c in p.this.expressions]
print(json.dumps({"statements": len(trees), "columns": cols, "keys": keys}))
"#;

#[test]
fn ddl_parses_with_sqlglot_and_matches_the_files() {
    let env = env_or_skip!();
    for (schema, spec, projection) in [
        (Schema::indices(), "year(trade_date)", true),
        (Schema::ticks(), "day(ts),symbol", true),
        (Schema::indices(), "m=month(trade_date),symbol", false),
    ] {
        let mut args = vec![
            "athena",
            "--table",
            "markets.t",
            "--to",
            "s3://lake/p",
            "--schema",
            &schema.name,
            "--partition-by",
            spec,
        ];
        if !projection {
            args.push("--no-projection");
        }
        let ddl = ok(run(env.ticklake().args(&args))).stdout;
        let mut py = env
            .python()
            .args(["-c", PARSE])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(py.stdin.as_mut().unwrap(), &ddl).unwrap();
        drop(py.stdin.take());
        let out = ok(py.wait_with_output().unwrap());
        let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let spec = PartitionSpec::parse(spec, &schema).unwrap();
        let want: Vec<String> = FileLayout::new(&schema, &spec).file_columns().into_iter().map(|(n, _)| n).collect();
        assert_eq!(parsed["columns"], serde_json::json!(want), "{}", String::from_utf8_lossy(&ddl));
        let keys: Vec<&str> = spec.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(parsed["keys"], serde_json::json!(keys));
        assert_eq!(parsed["statements"], if projection { 1 } else { 2 });
    }
}

#[test]
fn reference_queries_give_the_same_results_on_the_lake_and_on_the_csv() {
    let env = env_or_skip!();
    let csv = repo_path("data/indices.csv");
    let topic = random_name("duckdb");
    replay_csv(&env, &csv, &topic, 3, &[]);
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    ok(run(&mut sink_cmd(&env, &topic, lake.to_str().unwrap(), &[])));
    // The DDL and queries as a user would print them (the location only matters to Athena).
    let printed = ok(run(env.ticklake().args([
        "athena",
        "--table",
        "markets.indices",
        "--to",
        "s3://lake/prices",
        "--schema",
        "indices",
        "--print-queries",
        "--query-symbol",
        "^GSPC",
        "--query-year",
        "2020",
    ])))
    .stdout;
    let text = String::from_utf8(printed).unwrap();
    let queries: String = text.split(";\n").filter(|q| q.contains("SELECT")).map(|q| format!("{q};\n")).collect();
    let script = repo_path("proto-tests/check/duckdb_compare.py");
    let mut py = env
        .python()
        .args([script.to_str().unwrap(), lake.to_str().unwrap(), csv.to_str().unwrap(), "markets.indices"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(py.stdin.as_mut().unwrap(), queries.as_bytes()).unwrap();
    drop(py.stdin.take());
    let out = ok(py.wait_with_output().unwrap());
    let results: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(results.len(), 2, "two reference queries");
    for r in &results {
        assert!(r["lake"].as_array().is_some_and(|rows| !rows.is_empty()), "no rows: {}", r["sql"]);
        assert_eq!(r["lake"], r["csv"], "lake and CSV disagree on:\n{}", r["sql"].as_str().unwrap());
    }
    // One row per symbol in the "latest close" query.
    assert_eq!(results[0]["lake"].as_array().unwrap().len(), 13);
}

#[test]
fn partition_values_read_back_as_the_symbols_in_duckdb() {
    let env = env_or_skip!();
    let topic = random_name("escape");
    replay_csv(&env, &repo_path("data/indices.csv"), &topic, 1, &[]);
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    ok(run(&mut sink_cmd(&env, &topic, lake.to_str().unwrap(), &["--partition-by", "symbol"])));
    assert!(lake.join("symbol=^GSPC").is_dir(), "written literally, as projection looks it up");
    let sql = format!(
        "import duckdb; print(duckdb.connect().execute(\"select count(*) from read_parquet('{}/**/*.parquet', hive_partitioning=true, hive_types={{'symbol': VARCHAR}}) where symbol = '^GSPC'\").fetchone()[0])",
        lake.display()
    );
    let out = ok(run(env.python().args(["-c", &sql])));
    let n: u64 = String::from_utf8(out.stdout).unwrap().trim().parse().unwrap();
    let want = csv_rows(&repo_path("data/indices.csv")).iter().filter(|r| r["Index"] == "^GSPC").count() as u64;
    assert_eq!(n, want, "WHERE symbol = '^GSPC' finds every ^GSPC row");
}

/// A Glue table as boto3 reads it back from the test server: (columns, partition keys, parameters, location).
fn glue_table(env: &TestEnv, db: &str, table: &str) -> serde_json::Value {
    let script = format!(
        "import boto3, json; t = boto3.client('glue', endpoint_url='{}', region_name='us-east-1').get_table(DatabaseName='{db}', Name='{table}')['Table']; print(json.dumps({{'columns': [[c['Name'], c['Type']] for c in t['StorageDescriptor'].get('Columns', [])], 'keys': [k['Name'] for k in t.get('PartitionKeys', [])], 'params': t.get('Parameters', {{}}), 'location': t['StorageDescriptor'].get('Location')}}))",
        env.glue_endpoint()
    );
    serde_json::from_slice(&ok(run(env.python().args(["-c", &script]))).stdout).unwrap()
}

/// Issue 19 items 10 and 11: a printed DDL projects an identity key as `injected` (an enum listed today hides
/// tomorrow's symbols) and starts ranges at the lake's first partition; `--apply` writes the table into Glue and,
/// rerun, applies a new column and a new symbol (an enum kept current).
#[tokio::test(flavor = "multi_thread")]
async fn athena_apply_creates_the_glue_table_and_keeps_it_current() {
    let env = env_or_skip!();
    let topic = random_name("apply");
    replay_csv(&env, &repo_path("data/indices.csv"), &topic, 1, &["--limit", "200"]);
    let bucket = env.create_bucket();
    let to = format!("s3://{bucket}/p");
    ok(run(&mut sink_cmd(&env, &topic, &to, &["--partition-by", "year(trade_date),symbol"])));
    let db = random_name("apply").replace('-', "_");
    let table = format!("{db}.t");
    let athena = |extra: &[&str]| {
        let out = ok(run(env.ticklake().args(["athena", "--table", &table, "--to", &to]).args(extra)));
        String::from_utf8(out.stdout).unwrap()
    };
    let csv: Vec<_> = csv_rows(&repo_path("data/indices.csv")).into_iter().take(200).collect();
    let first_year = csv.iter().map(|r| r["Date"][..4].to_string()).min().unwrap();
    let ddl = athena(&[]);
    assert!(ddl.contains("'projection.symbol.type'='injected'"), "{ddl}");
    assert!(ddl.contains(&format!("'projection.year.range'='{first_year},2100'")), "from the lake: {ddl}");

    let report = athena(&["--apply"]);
    assert!(report.contains(&format!("created Glue table {table}")), "{report}");
    let t = glue_table(&env, &db, "t");
    let symbols: std::collections::BTreeSet<String> = csv.iter().map(|r| r["Index"].clone()).collect();
    let listed = symbols.iter().cloned().collect::<Vec<_>>().join(",");
    assert_eq!(t["keys"], serde_json::json!(["year", "symbol"]), "{t}");
    assert_eq!(t["location"], serde_json::json!(format!("{to}/")), "{t}");
    assert_eq!(t["params"]["projection.symbol.type"], "enum", "{t}");
    assert_eq!(t["params"]["projection.symbol.values"], serde_json::json!(listed), "{t}");
    for (name, ty) in
        [("trade_date", "date"), ("close", "double"), ("volume", "bigint"), ("kafka_timestamp", "timestamp")]
    {
        assert!(t["columns"].as_array().unwrap().contains(&serde_json::json!([name, ty])), "{name} {ty}: {t}");
    }

    // A new field and a new symbol arrive; a rerun applies both.
    let rec = serde_json::json!({"symbol": "NEWSYM", "trade_date": "2021-06-01", "close": 1.5, "venue": "X"});
    produce_more(&env.brokers, &topic, &[serde_json::to_vec(&rec).unwrap()]).await;
    ok(run(&mut sink_cmd(&env, &topic, &to, &[])));
    let report = athena(&["--apply"]);
    assert!(
        report.contains(&format!("updated Glue table {table}")) && report.contains("added column(s) venue"),
        "{report}"
    );
    let t = glue_table(&env, &db, "t");
    assert!(t["columns"].as_array().unwrap().contains(&serde_json::json!(["venue", "string"])), "{t}");
    let values = t["params"]["projection.symbol.values"].as_str().unwrap().to_string();
    assert!(values.split(',').any(|v| v == "NEWSYM"), "{values}");
}
