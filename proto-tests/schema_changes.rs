//! Schema changes and the stored table spec: no field dropped silently, columns that grow, flags that conflict.

use crate::env_or_skip;
use crate::support::*;

/// Reads a whole local lake as one table with DuckDB (`union_by_name`) and with pyarrow (unified schemas), and
/// prints {"duckdb": [[..]], "pyarrow": [[..]], "columns": [..]}: every row's `cols`, ordered by offset.
const UNION_READ: &str = r#"
import glob, json, sys
import duckdb, pyarrow as pa, pyarrow.dataset as ds, pyarrow.parquet as pq
root, cols = sys.argv[1], sys.argv[2].split(",")
files = sorted(glob.glob(root + "/**/*.parquet", recursive=True))
con = duckdb.connect()
q = f"select {','.join(cols)} from read_parquet({files!r}, union_by_name=true, hive_partitioning=true) order by kafka_partition, kafka_offset"
dk = [list(r) for r in con.execute(q).fetchall()]
schema = pa.unify_schemas([pq.read_schema(f) for f in files])
t = ds.dataset(files, schema=schema, format="parquet").to_table(columns=["kafka_partition"] + cols).sort_by([("kafka_partition", "ascending"), ("kafka_offset", "ascending")]).drop(["kafka_partition"])
pa_rows = [list(r.values()) for r in t.to_pylist()]
print(json.dumps({"duckdb": dk, "pyarrow": pa_rows, "columns": schema.names}, default=str))
"#;

const PARSE_ALTER: &str = r#"
import json, sys, sqlglot
tree = sqlglot.parse_one(sys.stdin.read(), read="athena", error_level=sqlglot.ErrorLevel.RAISE)
assert isinstance(tree, sqlglot.exp.Alter), type(tree)
print(json.dumps({"table": tree.this.sql(), "columns": [c.name for c in tree.find_all(sqlglot.exp.ColumnDef)]}))
"#;

const PARSE_CREATE: &str = r#"
import json, sys, sqlglot
create = sqlglot.parse(sys.stdin.read(), read="athena", error_level=sqlglot.ErrorLevel.RAISE)[0]
print(json.dumps([c.name for c in create.this.expressions if isinstance(c, sqlglot.exp.ColumnDef)]))
"#;

fn python_json(env: &TestEnv, script: &str, args: &[&str], stdin: &[u8]) -> serde_json::Value {
    let out = ok(run_with_stdin(env.python().args(["-c", script]).args(args), stdin));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn athena(env: &TestEnv, args: &[&str]) -> std::process::Output {
    run(env.ticklake().arg("athena").args(args))
}

#[test]
fn an_extra_csv_column_reaches_the_lake_with_the_csv_values() {
    let env = env_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    // data/indices.csv with an Exchange column, as a user would add one.
    let csv = dir.path().join("with_exchange.csv");
    let mut text = String::new();
    for (i, line) in std::fs::read_to_string(repo_path("data/indices.csv")).unwrap().lines().take(400).enumerate() {
        text.push_str(line);
        text.push_str(if i == 0 { ",Exchange\n" } else { "," });
        if i > 0 {
            text.push_str(&format!("X{}\n", i % 7));
        }
    }
    std::fs::write(&csv, &text).unwrap();
    let topic = random_name("extra");
    replay_csv(&env, &csv, &topic, 1, &[]);
    let lake = dir.path().join("lake");
    ok(run(&mut sink_cmd(&env, &topic, lake.to_str().unwrap(), &[])));
    let dump = env.read_lake(LakeAt::Local(&lake));
    let csv_rows = csv_rows(&csv);
    assert_eq!(dump.rows.len(), csv_rows.len());
    let mut got: Vec<(String, String, String)> = dump
        .rows
        .iter()
        .map(|(_, _, r)| {
            let s = |k: &str| r.get(k).and_then(|v| v.as_str()).unwrap_or("<missing>").to_string();
            (s("symbol"), s("trade_date"), s("exchange_value"))
        })
        .collect();
    let mut want: Vec<(String, String, String)> =
        csv_rows.iter().map(|r| (r["Index"].clone(), r["Date"].clone(), r["Exchange"].clone())).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "every row's Exchange value is in the lake");
    // The DDL names it too, from the stored table spec alone.
    let ddl = ok(athena(&env, &["--to", lake.to_str().unwrap(), "--table", "m.t"])).stdout;
    let cols = python_json(&env, PARSE_CREATE, &[], &ddl);
    assert!(cols.as_array().unwrap().iter().any(|c| c == "exchange_value"), "{cols}");

    // The project's own sample: ticks.csv's venue column.
    let topic = random_name("venue");
    replay_csv(&env, &repo_path("data/ticks.csv"), &topic, 2, &["--limit", "300"]);
    let lake = dir.path().join("ticks");
    ok(run(&mut sink_cmd(&env, &topic, lake.to_str().unwrap(), &[])));
    let dump = env.read_lake(LakeAt::Local(&lake));
    assert_eq!(dump.rows.len(), 300);
    assert!(dump.rows.iter().all(|(_, _, r)| r.get("venue").is_some_and(|v| v.is_string())), "venue kept");
}

#[test]
fn a_field_that_appears_half_way_becomes_a_column_and_a_type_conflict_a_reject() {
    let env = env_or_skip!();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let topic = random_name("grow");
    let tick = |i: usize, extra: &str| {
        format!(
            r#"{{"ts":"2024-03-04T09:30:{:02}.000Z","symbol":"S{}","price":{}.5,"size":{i}{extra}}}"#,
            i % 60,
            i % 3,
            i
        )
        .into_bytes()
    };
    let first: Vec<Vec<u8>> = (0..50).map(|i| tick(i, "")).collect();
    rt.block_on(produce_raw(&env.brokers, &topic, 1, &first));
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let to = lake.to_str().unwrap();
    ok(run(&mut sink_cmd(&env, &topic, to, &[])));
    let before = ok(athena(&env, &["--to", to, "--table", "m.t"])).stdout;

    // Half-way: a new field (venue), then a record whose bid does not fit the column bid's first value made.
    let mut more: Vec<Vec<u8>> = (50..100).map(|i| tick(i, &format!(r#","venue":"V{}","bid":{i}"#, i % 2))).collect();
    more.push(tick(100, r#","venue":"V0","bid":"high""#));
    rt.block_on(produce_more(&env.brokers, &topic, &more));
    let out = ok(run(&mut sink_cmd(&env, &topic, to, &[])));
    let log = stderr(&out);
    assert!(log.contains("new fields") && log.contains("venue string") && log.contains("bid bigint"), "{log}");
    assert!(ok(run(env.ticklake().args(["lake", "verify", "--topic", &topic, "--to", to]))).status.success());

    let read = python_json(&env, UNION_READ, &[to, "kafka_offset,size,venue,bid"], b"");
    for reader in ["duckdb", "pyarrow"] {
        let rows = read[reader].as_array().unwrap();
        assert_eq!(rows.len(), 100, "{reader}: 100 rows, the 101st is a reject");
        for r in rows {
            let i = r[0].as_i64().unwrap();
            if i < 50 {
                assert!(r[2].is_null() && r[3].is_null(), "{reader}: older rows read NULL: {r}");
            } else {
                assert_eq!(r[2], serde_json::json!(format!("V{}", i % 2)), "{reader}: {r}");
                assert_eq!(r[3], serde_json::json!(i), "{reader}: {r}");
            }
        }
    }
    let rejects: Vec<_> = walk(&lake).into_iter().filter(|p| p.contains("_ticklake/rejects/")).collect();
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    let reject = std::fs::read_to_string(lake.join(&rejects[0])).unwrap();
    assert!(reject.contains("\"offset\":100") && reject.contains("column 'bid'"), "{reject}");

    // The DDL's columns are the union of the files' columns; the ALTER TABLE adds exactly the new ones.
    let ddl = ok(athena(&env, &["--to", to, "--table", "m.t"])).stdout;
    let mut ddl_cols: Vec<String> = serde_json::from_value(python_json(&env, PARSE_CREATE, &[], &ddl)).unwrap();
    let mut union: Vec<String> = serde_json::from_value(read["columns"].clone()).unwrap();
    union.retain(|c| c != "dt" && c != "symbol"); // hive keys: PARTITIONED BY, not columns
    ddl_cols.sort();
    union.sort();
    assert_eq!(ddl_cols, union);
    let alter = ok(athena(&env, &["--to", to, "--table", "m.t", "--since-version", "1"])).stdout;
    let parsed = python_json(&env, PARSE_ALTER, &[], &alter);
    assert_eq!(parsed["columns"], serde_json::json!(["venue", "bid"]), "{}", String::from_utf8_lossy(&alter));
    assert_ne!(before, ddl);
    let stats = ok(run(env.ticklake().args(["lake", "stats", "--topic", &topic, "--to", to]))).stdout;
    let stats = String::from_utf8_lossy(&stats);
    assert!(stats.contains("v2 new field in a record") && stats.contains("kafka partition 0/offset 50"), "{stats}");
}

#[test]
fn a_restart_with_a_conflicting_layout_stops_before_any_data_moves() {
    let env = env_or_skip!();
    let topic = random_name("spec");
    replay_csv(&env, &repo_path("data/indices.csv"), &topic, 1, &["--limit", "300"]);
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let to = lake.to_str().unwrap();
    ok(run(&mut sink_cmd(&env, &topic, to, &[])));
    let files_before = walk(&lake);
    replay_csv(&env, &repo_path("data/indices.csv"), &topic, 1, &["--limit", "10"]);
    let out = run(&mut sink_cmd(&env, &topic, to, &["--partition-by", "month(trade_date)"]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(e.contains("'year=year(trade_date)'") && e.contains("Drop --partition-by"), "{e}");
    let out = run(&mut sink_cmd(&env, &topic, to, &["--sort-by", "symbol"]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(walk(&lake), files_before, "nothing written");
    // The same flags as stored are fine, and so is no flag.
    ok(run(&mut sink_cmd(&env, &topic, to, &["--partition-by", "year(trade_date)"])));

    // A topic of another table into the same prefix is refused; athena prints the same DDL as for the schema.
    let other = random_name("other");
    replay_csv(&env, &repo_path("data/ticks.csv"), &other, 1, &["--limit", "10"]);
    let out = run(&mut sink_cmd(&env, &other, to, &[]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("own --to prefix"), "{}", stderr(&out));
    let from_lake = ok(athena(&env, &["--to", to, "--table", "m.t"])).stdout;
    // With --schema the lake is not read: its ranges start at --first-year (the lake's own start at its first row).
    let first = csv_rows(&repo_path("data/indices.csv")).iter().map(|r| r["Date"][..4].to_string()).min().unwrap();
    let from_schema =
        ok(athena(&env, &["--to", to, "--table", "m.t", "--schema", "indices", "--first-year", &first])).stdout;
    assert_eq!(String::from_utf8_lossy(&from_lake), String::from_utf8_lossy(&from_schema));
}

/// Every file under `root`, relative, sorted.
fn walk(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}
