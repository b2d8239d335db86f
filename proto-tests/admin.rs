//! Topic admin and the console consumer, through the binary.

use crate::env_or_skip;
use crate::support::*;

#[test]
fn topic_create_list_describe_delete() {
    let env = env_or_skip!();
    let topic = random_name("admin");
    ok(run(env.ticklake().args(["topic", "create", &topic, "--partitions", "4"])));
    let again = run(env.ticklake().args(["topic", "create", &topic, "--partitions", "4"]));
    assert!(!again.status.success() && stderr(&again).contains("already exists"), "{}", stderr(&again));
    ok(run(env.ticklake().args(["topic", "create", &topic, "--partitions", "4", "--if-not-exists"])));

    let list = String::from_utf8(ok(run(env.ticklake().args(["topic", "list"]))).stdout).unwrap();
    assert!(list.lines().any(|l| l == format!("{topic}\t4 partition(s)")), "{list}");
    let describe = String::from_utf8(ok(run(env.ticklake().args(["topic", "describe", &topic]))).stdout).unwrap();
    assert_eq!(describe.lines().count(), 2 + 4, "{describe}");

    let missing = run(env.ticklake().args(["topic", "describe", &random_name("nope")]));
    assert_eq!(missing.status.code(), Some(6), "topic missing has its own exit code");
    assert!(stderr(&missing).contains("does not exist"), "{}", stderr(&missing));

    ok(run(env.ticklake().args(["topic", "delete", &topic])));
}

#[test]
fn consume_prints_json_lines_from_every_partition() {
    let env = env_or_skip!();
    let topic = random_name("consume");
    let csv = repo_path("data/indices.csv");
    replay_csv(&env, &csv, &topic, 3, &["--limit", "500"]);

    let out = ok(run(env.ticklake().args(["consume", "--topic", &topic, "--exit-at-end"])));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 500);
    assert!(lines.iter().all(|v| v["symbol"].is_string() && v["close"].is_f64()));

    let out = ok(run(env.ticklake().args([
        "consume",
        "--topic",
        &topic,
        "--partition",
        "0",
        "--offset",
        "2",
        "--limit",
        "3",
        "--meta",
    ])));
    let metas: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(metas.iter().map(|m| m["offset"].as_i64().unwrap()).collect::<Vec<_>>(), vec![2, 3, 4]);

    let count = ok(run(env.ticklake().args(["consume", "--topic", &topic, "--exit-at-end", "--count"])));
    assert_eq!(String::from_utf8(count.stdout).unwrap().trim(), "500");
    let limited = ok(run(env.ticklake().args(["consume", "--topic", &topic, "--limit", "7"])));
    assert_eq!(String::from_utf8(limited.stdout).unwrap().lines().count(), 7, "--limit across partitions");
    assert!(metas.iter().all(|m| m["partition"] == 0 && m["key"] == m["value"]["symbol"]));
}
