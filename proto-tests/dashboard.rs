//! Issue 24: the dashboard in headless Chromium (Debian's, driven by playwright-core from npm). The page loads with
//! the sample's symbols; records sent after it loaded appear (a new symbol, a hostile one rendered as text, a
//! 10 kB string, malformed records counted); the lake panel's checkpoints move when the sink commits; a
//! screenshot is written. And the guard: a non-loopback address without a token is refused (exit 2), and with one
//! every request without it gets 401.

use std::collections::BTreeSet;

use crate::env_or_skip;
use crate::support::*;

/// `METHOD path` with extra header lines, the connection closed after the answer: (head, body).
fn request(addr: &str, method: &str, path: &str, headers: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    write!(c, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}\r\n").unwrap();
    let mut text = String::new();
    c.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_string(), body.to_string())
}

fn get(addr: &str, path: &str, headers: &str) -> (String, String) {
    request(addr, "GET", path, headers)
}

/// The address a dashboard logged.
fn address(d: &Logged) -> String {
    let line = d.wait_for("the dashboard's address", |l| l.contains("dashboard on http://"));
    line.split("http://").nth(1).unwrap().split('/').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_shows_the_feed_live_and_the_lake_moving() {
    let env = env_or_skip!();
    let node_modules = std::env::var("TICKLAKE_NODE_MODULES").expect("TICKLAKE_NODE_MODULES (set by `just proto`)");
    let topic = random_name("dash");
    let csv = repo_path("data/indices.csv");
    replay_csv(&env, &csv, &topic, 3, &[]);
    let symbols: BTreeSet<String> = csv_rows(&csv).into_iter().map(|r| r["Index"].clone()).collect();
    let lake = tempfile::tempdir().unwrap();
    let to = lake.path().to_str().unwrap().to_string();
    let sink = Logged::spawn(
        env.ticklake()
            .args(["sink", "--topic", &topic, "--to", &to, "--max-age", "1s"])
            .args(["--metrics-addr", "127.0.0.1:0"]),
    );
    let metrics = format!("http://{}/metrics", sink.metrics_addr());
    sink.wait_for("the sink's first commit", |l| l.contains("sink: ") && !l.contains(" 0 files"));
    let dash = Logged::spawn(env.ticklake().args(["dashboard", "--topic", &topic, "--to", &to]).args([
        "--listen",
        "127.0.0.1:0",
        "--lake-every",
        "1s",
        "--metrics",
        &metrics,
    ]));
    let addr = address(&dash);
    let (head, _) = get(&addr, "/", "");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-security-policy: default-src 'none'"), "{head}");

    let out = tempfile::tempdir().unwrap();
    let shot = out.path().join("dashboard.png");
    let list = symbols.iter().cloned().collect::<Vec<_>>().join(",");
    let hostile = "<img src=x onerror=alert(1)>";
    let browser = Logged::spawn(
        std::process::Command::new("node")
            .arg(repo_path("proto-tests/check/dashboard.mjs"))
            .args([&format!("http://{addr}/"), shot.to_str().unwrap(), &list, "ZZNEW", hostile])
            .env("TICKLAKE_NODE_MODULES", &node_modules),
    );
    let loaded = browser
        .wait_for("the page with the sample's symbols", |l| l.starts_with("LOADED ") || l.starts_with("RESULT "));
    assert!(loaded.starts_with("LOADED "), "{loaded}");
    // After the page loaded: a new symbol, a hostile symbol with a 10 kB string, two records that are no data.
    let long = "A".repeat(10_000);
    produce_more(&env.brokers, &topic, &[
        br#"{"symbol":"ZZNEW","trade_date":"2020-01-06","open":1.0,"high":1.0,"low":1.0,"close":123.25,"adj_close":1.0,"volume":5,"close_usd":1.0}"#.to_vec(),
        format!(r#"{{"symbol":"{hostile}","trade_date":"2020-01-06","close":2.5,"note":"{long}"}}"#).into_bytes(),
        br#"{"ts":"2024-03-04T09:30:05.000Z","symbol":"ZZTICK","price":10.5,"size":3}"#.to_vec(),
        br#"{"ts":"2024-03-04T09:30:45.000Z","symbol":"ZZTICK","price":11.0,"size":1}"#.to_vec(),
        b"not json at all".to_vec(),
        br#"["an","array"]"#.to_vec(),
    ])
    .await;
    let line = browser.wait_for("the browser's result", |l| l.starts_with("RESULT "));
    let result: serde_json::Value = serde_json::from_str(line.strip_prefix("RESULT ").unwrap()).unwrap();
    eprintln!("browser: {result}");
    assert!(result["error"].is_null(), "{result:#}\ndashboard:\n{}", dash.lines().join("\n"));
    assert_eq!(result["status"], 200);
    let at_load: BTreeSet<String> = serde_json::from_value(result["symbolsAtLoad"].clone()).unwrap();
    assert!(symbols.is_subset(&at_load), "the sample's symbols {symbols:?} at load: {at_load:?}");
    assert_eq!(result["newSymbolText"], "ZZNEW");
    assert_eq!(result["chartKinds"], serde_json::json!({"ZZNEW": "line", "ZZTICK": "candles"}), "{result}");
    assert_eq!(result["imgElements"], 0, "the hostile symbol is text, not an element: {result}");
    assert_eq!(result["pwned"], false);
    assert!(result["dialogs"].as_array().unwrap().is_empty(), "no script ran: {result}");
    assert!(result["pageErrors"].as_array().unwrap().is_empty(), "{result}");
    assert!(result["consoleErrors"].as_array().unwrap().is_empty(), "no refused script or resource: {result}");
    assert!(result["malformed"].as_u64().unwrap() >= 2, "{result}");
    assert_eq!(result["cellWithLongString"], true, "the long string is shown (as text, cut): {result}");
    assert!(result["checkpointsAfter"].as_i64() > result["checkpointsAtLoad"].as_i64(), "{result}");
    assert_eq!(result["filtered"], serde_json::json!(["ZZNEW"]));
    assert!(result["sinkRecordsShown"].as_f64().is_some_and(|n| n >= 4000.0), "the sink's metrics: {result}");
    let bytes = std::fs::metadata(&shot).unwrap().len();
    assert!(bytes > 20_000 && result["screenshotBytes"] == bytes, "screenshot {bytes} bytes: {result}");
    // The artifact: kept where CI keeps test output, if it says where.
    if let Ok(dir) = std::env::var("TICKLAKE_ARTIFACTS") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&shot, std::path::Path::new(&dir).join("dashboard.png")).unwrap();
    }
    for p in [&dash, &sink] {
        p.signal("-TERM");
    }
    let (status, log) = dash.finish();
    assert_eq!(status.code(), Some(143), "{log}");
}

#[test]
fn other_hosts_need_a_token_and_requests_without_it_get_401() {
    let env = env_or_skip!();
    let topic = random_name("dash-auth");
    ok(run(env.ticklake().args(["topic", "create", &topic, "--partitions", "1"])));
    let refused = run(env.ticklake().args(["dashboard", "--topic", &topic, "--listen", "0.0.0.0:0"]));
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("--auth-token-file"), "{}", stderr(&refused));

    let dir = tempfile::tempdir().unwrap();
    let token = format!("{:032x}", rand::random::<u128>());
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let dash = Logged::spawn(
        env.ticklake()
            .args(["dashboard", "--topic", &topic, "--listen", "0.0.0.0:0"])
            .arg("--auth-token-file")
            .arg(&file),
    );
    let port = address(&dash).rsplit(':').next().unwrap().to_string();
    let addr = format!("127.0.0.1:{port}");
    for path in ["/", "/app.js", "/api/snapshot", "/api/events"] {
        let (head, _) = get(&addr, path, "");
        assert!(head.starts_with("HTTP/1.1 401"), "{path} without the token: {head}");
        let (head, _) = get(&addr, path, "Authorization: Bearer wrong-token-wrong-token\r\n");
        assert!(head.starts_with("HTTP/1.1 401"), "{path} with a wrong token: {head}");
    }
    let (head, body) = get(&addr, "/api/snapshot", &format!("Authorization: Bearer {token}\r\n"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.contains(&topic), "{body}");
    // A first visit by link sets the cookie the page's requests then carry.
    let (head, _) = get(&addr, &format!("/?token={token}"), "");
    assert!(
        head.starts_with("HTTP/1.1 200") && head.to_ascii_lowercase().contains("set-cookie: ticklake_dashboard="),
        "{head}"
    );
    assert!(head.contains("HttpOnly"), "{head}");
    let (head, _) = get(&addr, "/app.js", &format!("Cookie: ticklake_dashboard={token}\r\n"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // Read-only: nothing but GET.
    let (head, _) =
        request(&addr, "POST", "/api/snapshot", &format!("Authorization: Bearer {token}\r\nContent-Length: 0\r\n"));
    assert!(head.starts_with("HTTP/1.1 405"), "{head}");
    dash.signal("-TERM");
    let (status, log) = dash.finish();
    assert_eq!(status.code(), Some(143), "{log}");
}

/// An Iceberg table's lake panel (`--table --catalog`, the REST catalog on MinIO): per Kafka partition the offsets
/// the table's newest ticklake snapshot recorded, lag 0 against the topic's end, the snapshots as the last commits,
/// and the table's totals.
#[test]
fn an_iceberg_tables_panel_shows_its_snapshot_offsets_and_commits() {
    let env = env_or_skip!();
    let topic = random_name("dash-ice");
    replay_csv(&env, &repo_path("data/indices.csv"), &topic, 3, &[]);
    let ice = crate::iceberg::Ice::rest();
    ok(run(&mut ice.sink(&env, &topic, &[])));
    let dash = Logged::spawn(env.ticklake().args(["dashboard", "--topic", &topic, "--to", &ice.to]).args([
        "--table",
        &ice.table,
        "--catalog",
        &ice.catalog,
        "--listen",
        "127.0.0.1:0",
        "--lake-every",
        "1s",
    ]));
    let addr = address(&dash);
    // The panel is filled by the first lake refresh: the snapshot answers what the page would be sent on open.
    let lake = wait_until("the Iceberg panel with the topic's partitions", || {
        let (_, body) = get(&addr, "/api/snapshot", "");
        let snap: serde_json::Value = serde_json::from_str(&body).ok()?;
        let lake = snap["lake"].clone();
        (lake["partitions"].as_array().is_some_and(|p| p.len() == 3) && lake["partitions"][0]["end"].is_i64())
            .then_some(lake)
    });
    assert!(lake["error"].is_null(), "{lake:#}");
    assert!(lake["lake"].as_str().unwrap().contains(&ice.table), "{lake:#}");
    let checkpoints: i64 =
        lake["partitions"].as_array().unwrap().iter().map(|p| p["checkpoint"].as_i64().unwrap()).sum();
    assert_eq!(checkpoints, 4000, "the table's offsets cover the 4,000 records: {lake:#}");
    assert!(lake["partitions"].as_array().unwrap().iter().all(|p| p["lag"] == 0), "{lake:#}");
    assert_eq!(lake["rows"], 4000, "{lake:#}");
    let commits = lake["commits"].as_array().unwrap();
    assert!(!commits.is_empty() && commits[0]["what"].as_str().unwrap().starts_with("snapshot "), "{lake:#}");
    let added: i64 = commits.iter().map(|c| c["rows"].as_i64().unwrap_or(0)).sum();
    assert!(added > 0 && added <= 4000, "{lake:#}");
    dash.signal("-TERM");
    let (status, log) = dash.finish();
    assert_eq!(status.code(), Some(143), "{log}");
}
