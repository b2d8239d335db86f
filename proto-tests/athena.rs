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

#[test]
fn enum_projection_lists_the_lake_values() {
    let env = env_or_skip!();
    let topic = random_name("enum");
    replay_csv(&env, &repo_path("data/indices.csv"), &topic, 1, &["--limit", "200"]);
    let bucket = env.create_bucket();
    let to = format!("s3://{bucket}/p");
    ok(run(&mut sink_cmd(&env, &topic, &to, &["--partition-by", "symbol"])));
    let ddl = ok(run(env.ticklake().args([
        "athena",
        "--table",
        "m.t",
        "--to",
        &to,
        "--topic",
        &topic,
        "--partition-by",
        "symbol",
    ])));
    let ddl = String::from_utf8(ddl.stdout).unwrap();
    let symbols: std::collections::BTreeSet<String> =
        csv_rows(&repo_path("data/indices.csv")).into_iter().take(200).map(|r| r["Index"].clone()).collect();
    let listed = symbols.into_iter().collect::<Vec<_>>().join(",");
    assert!(ddl.contains("'projection.symbol.type'='enum'"), "{ddl}");
    assert!(ddl.contains(&format!("'projection.symbol.values'='{listed}'")), "{ddl}");
    assert!(ddl.contains("^GSPC"), "values as projection substitutes them:\n{ddl}");
}
