//! The Athena DDL parses with sqlglot (dialect athena) and names exactly the columns the sink writes.

use crate::env_or_skip;
use crate::support::*;
use ticklake::lake::PartitionSpec;
use ticklake::lake::parquet::FileLayout;
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
