//! Trino, the engine of Athena engine v3, reading what ticklake writes: the hive lake on MinIO registered from the
//! same schema and partition spec the DDL comes from (file metastore, `sync_partition_metadata`), the queries
//! `athena --print-queries` prints, answered the same as DuckDB over the lake and over the CSV, column types
//! included; and the Iceberg table through the REST catalog.

use std::collections::BTreeSet;

use ticklake::athena::{TableOptions, table_def};
use ticklake::lake::{LakeUrl, PartitionSpec};
use ticklake::schema::Schema;

use crate::env_or_skip;
use crate::support::*;

/// Statements run on Trino (see `check/trino_query.py`): one JSON object each.
fn trino(env: &TestEnv, statements: &[String]) -> Vec<serde_json::Value> {
    let url = std::env::var("TICKLAKE_TRINO").expect("TICKLAKE_TRINO (set by `just proto`)");
    let mut c = env.python();
    c.arg(repo_path("proto-tests/check/trino_query.py")).arg(url);
    let out = ok(run_with_stdin(&mut c, statements.join("\n;\n").as_bytes()));
    let answers: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for a in &answers {
        assert!(a.get("error").is_none(), "Trino refused: {a}");
    }
    answers
}

/// A value as both engines' answers can be compared: numbers to 9 significant digits (two engines sum doubles in
/// different orders), a midnight timestamp as its date.
fn norm(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Number(n) => format!("{:.9e}", n.as_f64().unwrap()),
        serde_json::Value::String(s) => match s.parse::<f64>() {
            // A date has a `-` past its first character; a negative number only at it.
            Ok(f) if !s.get(1..).unwrap_or_default().contains('-') => format!("{f:.9e}"),
            _ => s.trim_end_matches(" 00:00:00").to_string(),
        },
        other => other.to_string(),
    }
}

/// (column, type) of a `DESCRIBE` answer.
fn described(answer: &serde_json::Value) -> BTreeSet<(String, String)> {
    answer["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_string(), r[1].as_str().unwrap().to_string()))
        .collect()
}

fn rows(v: &serde_json::Value) -> Vec<Vec<String>> {
    v.as_array().unwrap().iter().map(|r| r.as_array().unwrap().iter().map(norm).collect()).collect()
}

/// The Trino `CREATE TABLE` for a hive lake at `location`, from the same `TableDef` the Athena DDL is made of.
fn trino_ddl(table: &str, schema: &Schema, spec: &PartitionSpec, location: &str) -> String {
    let opts = TableOptions {
        table: "x.t".into(),
        location: LakeUrl::parse(location).unwrap(),
        projection: false,
        enum_values: vec![],
        range_starts: vec![],
        first_year: 2020,
    };
    let def = table_def(schema, spec, &opts).unwrap();
    let trino_type = |t: &str| match t {
        "string" => "varchar".to_string(),
        "timestamp" => "timestamp(3)".to_string(),
        "int" => "integer".to_string(),
        other => other.to_string(),
    };
    let mut cols: Vec<String> = def.columns.iter().map(|(n, t)| format!("\"{n}\" {}", trino_type(t))).collect();
    cols.extend(def.partition_keys.iter().map(|k| format!("\"{k}\" varchar")));
    let keys: Vec<String> = def.partition_keys.iter().map(|k| format!("'{k}'")).collect();
    format!(
        "CREATE TABLE {table} ({}) WITH (external_location = '{}', format = 'PARQUET', partitioned_by = ARRAY[{}])",
        cols.join(", "),
        def.location,
        keys.join(", ")
    )
}

#[test]
fn trino_answers_the_athena_queries_as_duckdb_and_the_csv_do_on_both_table_formats() {
    let env = env_or_skip!();
    let csv = repo_path("data/indices.csv");
    let topic = random_name("trino");
    replay_csv(&env, &csv, &topic, 3, &[]);
    // The same records in a hive lake on MinIO (for Trino) and in a local folder (for DuckDB).
    let bucket = env.create_bucket();
    let to = format!("s3://{bucket}/prices");
    ok(run(&mut sink_cmd(&env, &topic, &to, &[])));
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("lake");
    ok(run(&mut sink_cmd(&env, &topic, local.to_str().unwrap(), &[])));

    let db = random_name("trino").replace('-', "_");
    let table = format!("{db}.indices");
    let printed = ok(run(env.ticklake().args(["athena", "--table", &table, "--to", &to, "--print-queries"])));
    let printed = String::from_utf8(printed.stdout).unwrap();
    let queries: Vec<String> = printed
        .split(';')
        .map(|q| q.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n"))
        .filter(|q| q.trim_start().starts_with("SELECT"))
        .collect();
    assert_eq!(queries.len(), 2, "{printed}");

    let schema = Schema::indices();
    let spec = PartitionSpec::parse("year(trade_date)", &schema).unwrap();
    let hive = format!("hive.{table}");
    let mut statements = vec![
        format!("CREATE SCHEMA hive.{db}"),
        trino_ddl(&hive, &schema, &spec, &to),
        format!("CALL hive.system.sync_partition_metadata('{db}', 'indices', 'ADD')"),
        format!("DESCRIBE {hive}"),
    ];
    statements.extend(queries.iter().map(|q| q.replace(&table, &hive)));
    let answers = trino(&env, &statements);

    // Column types as Athena's DDL promises them (timestamps in ms, dates, doubles, bigints, string partition keys).
    let types = described(&answers[3]);
    for (c, t) in [
        ("symbol", "varchar"),
        ("trade_date", "date"),
        ("close", "double"),
        ("volume", "bigint"),
        ("kafka_partition", "integer"),
        ("kafka_offset", "bigint"),
        ("kafka_timestamp", "timestamp(3)"),
        ("year", "varchar"),
    ] {
        assert!(types.contains(&(c.to_string(), t.to_string())), "{c} {t}: {types:?}");
    }

    // The same queries in DuckDB, over the lake and over the CSV.
    let mut compare = env.python();
    compare.arg(repo_path("proto-tests/check/duckdb_compare.py")).arg(&local).arg(&csv).arg(&table);
    let out = ok(run_with_stdin(&mut compare, queries.join(";\n").as_bytes()));
    let duck: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(duck.len(), queries.len());
    for (i, d) in duck.iter().enumerate() {
        let from_trino = rows(&answers[4 + i]["rows"]);
        assert!(!from_trino.is_empty(), "{}", queries[i]);
        let lake: Vec<Vec<String>> =
            d["lake"].as_array().unwrap().iter().map(|r| r.as_array().unwrap().iter().map(norm).collect()).collect();
        let csv_rows: Vec<Vec<String>> =
            d["csv"].as_array().unwrap().iter().map(|r| r.as_array().unwrap().iter().map(norm).collect()).collect();
        assert_eq!(from_trino, lake, "Trino vs DuckDB over the lake: {}", queries[i]);
        assert_eq!(from_trino, csv_rows, "Trino vs the CSV: {}", queries[i]);
    }

    // The Iceberg table through the REST catalog: Trino's count, keys and sums are the CSV's; its types Iceberg's.
    let uri = std::env::var("TICKLAKE_ICEBERG_REST").unwrap();
    let warehouse = std::env::var("TICKLAKE_ICEBERG_REST_WAREHOUSE").unwrap();
    let ice = format!("market.{}", random_name("t").replace('-', "_"));
    let mut sink = sink_cmd(&env, &topic, &warehouse, &["--format", "iceberg", "--catalog", &format!("rest:{uri}")]);
    ok(run(sink.args(["--table", &ice])));
    let answers = trino(
        &env,
        &[
            format!(
                "SELECT count(*), count(DISTINCT symbol), CAST(min(trade_date) AS varchar), CAST(max(trade_date) AS varchar), sum(volume) FROM iceberg.{ice}"
            ),
            format!("DESCRIBE iceberg.{ice}"),
        ],
    );
    let source = csv_rows(&csv);
    let symbols: BTreeSet<&String> = source.iter().map(|r| &r["Index"]).collect();
    let dates: BTreeSet<&String> = source.iter().map(|r| &r["Date"]).collect();
    let volume: f64 = source.iter().map(|r| r["Volume"].parse::<f64>().unwrap()).sum();
    let want = vec![vec![
        norm(&serde_json::json!(source.len())),
        norm(&serde_json::json!(symbols.len())),
        dates.first().unwrap().to_string(),
        dates.last().unwrap().to_string(),
        norm(&serde_json::json!(volume)),
    ]];
    assert_eq!(rows(&answers[0]["rows"]), want);
    let types = described(&answers[1]);
    for (c, t) in
        [("trade_date", "date"), ("close", "double"), ("volume", "bigint"), ("kafka_timestamp", "timestamp(6)")]
    {
        assert!(types.contains(&(c.to_string(), t.to_string())), "{c} {t}: {types:?}");
    }
}
