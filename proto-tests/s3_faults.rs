//! S3 faults: a fault-injecting HTTP proxy (written here) in front of the S3 server. The sink must retry through
//! 503 SlowDown, reset connections and stalls, never checkpoint past a failed upload, and end exactly once; refused
//! credentials must stop it at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::env_or_skip;
use crate::support::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// 12% 503 SlowDown, 6% connection reset, 6% a 1.5 s stall (then forwarded), the rest forwarded.
    Faulty,
    /// Every request answered 403 AccessDenied.
    Deny,
    /// Every request forwarded and its request line recorded.
    Record,
}

#[derive(Debug, Default)]
struct Counts {
    requests: AtomicU64,
    faults: AtomicU64,
    /// Request lines (`GET /bucket/key?query HTTP/1.1`), with `Mode::Record`.
    lines: std::sync::Mutex<Vec<String>>,
    /// Where the fault sequence starts (printed; `TICKLAKE_TEST_SEED` replays a run).
    seed: u64,
}

impl Counts {
    fn seeded() -> Counts {
        let seed = std::env::var("TICKLAKE_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
        eprintln!("fault seed {seed} (rerun with TICKLAKE_TEST_SEED={seed})");
        Counts { seed, ..Counts::default() }
    }

    /// The n-th request's roll in [0, 1): a golden-ratio sequence from the seed, so every run injects about the same
    /// share of faults (0.24 of requests), spread evenly, whatever the seed.
    fn roll(&self, n: u64) -> f64 {
        let start = (self.seed >> 11) as f64 / (1u64 << 53) as f64;
        (start + n as f64 * 0.618_033_988_749_895).fract()
    }
}

/// Starts the proxy on a free loopback port; returns its URL.
async fn start_proxy(upstream: String, mode: Mode, counts: Arc<Counts>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else { return };
            let (upstream, counts) = (upstream.clone(), counts.clone());
            tokio::spawn(async move {
                let _ = handle(client, &upstream, mode, &counts).await;
            });
        }
    });
    url
}

/// One request per client connection: read it, then fail it or forward it with `Connection: close`.
async fn handle(mut client: TcpStream, upstream: &str, mode: Mode, counts: &Counts) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let head_end = loop {
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let n = counts.requests.fetch_add(1, Ordering::Relaxed);
    let roll: f64 = if mode == Mode::Record { 1.0 } else { counts.roll(n) };
    if mode == Mode::Record {
        counts.lines.lock().unwrap().push(head.lines().next().unwrap_or_default().to_string());
    }
    if mode == Mode::Deny {
        counts.faults.fetch_add(1, Ordering::Relaxed);
        let body = "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
        let resp = format!(
            "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return client.write_all(resp.as_bytes()).await;
    }
    if roll < 0.12 {
        counts.faults.fetch_add(1, Ordering::Relaxed);
        let body = "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
        let resp = format!(
            "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return client.write_all(resp.as_bytes()).await;
    }
    if roll < 0.18 {
        counts.faults.fetch_add(1, Ordering::Relaxed);
        return Ok(()); // dropped without an answer: the client sees the connection reset/closed
    }
    if roll < 0.24 {
        counts.faults.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let mut rewritten = String::new();
    for line in head[..head_end - 4].split("\r\n") {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            rewritten.push_str(line);
            rewritten.push_str("\r\n");
        }
    }
    rewritten.push_str("Connection: close\r\n\r\n");
    let mut up = TcpStream::connect(upstream).await?;
    up.write_all(rewritten.as_bytes()).await?;
    up.write_all(&buf[head_end..]).await?;
    let mut response = Vec::new();
    up.read_to_end(&mut response).await?;
    client.write_all(&response).await
}

#[tokio::test(flavor = "multi_thread")]
async fn sink_retries_through_s3_faults_and_ends_exactly_once() {
    let env = env_or_skip!();
    let csv = repo_path("data/indices.csv");
    let topic = random_name("s3faults");
    replay_csv(&env, &csv, &topic, 3, &[]);
    let bucket = env.create_bucket();
    let counts = Arc::new(Counts::seeded());
    let upstream = env.s3_endpoint().trim_start_matches("http://").to_string();
    let proxy = start_proxy(upstream, Mode::Faulty, counts.clone()).await;

    let to = format!("s3://{bucket}/faults");
    let mut cmd = sink_cmd(&env, &topic, &to, &["--max-rows", "150"]);
    cmd.env("AWS_ENDPOINT_URL", &proxy);
    let out = tokio::task::spawn_blocking(move || run(&mut cmd)).await.unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "the sink must ride out the faults:\n{err}");
    assert!(err.contains("retrying"), "retries are logged:\n{err}");

    let (requests, faults) = (counts.requests.load(Ordering::Relaxed), counts.faults.load(Ordering::Relaxed));
    eprintln!("s3 faults: {faults} of {requests} requests failed or stalled");
    assert!(requests >= 50, "enough traffic through the proxy: {requests}");
    assert!(faults * 10 >= requests, "at least 10% faults: {faults} of {requests}");

    // Checked through the real endpoint, not the proxy.
    let verify = ok(run(env.ticklake().args(["lake", "verify", "--topic", &topic, "--to", &to])));
    assert!(String::from_utf8_lossy(&verify.stdout).contains("exactly once: yes"));
    assert_eq!(env.read_lake(LakeAt::S3 { bucket: &bucket, prefix: "faults" }).rows.len(), 4000);
}

/// The same faults on the Iceberg path: data files, manifests and metadata go through ticklake's own S3 client and
/// retries (`lake::iceberg::storage`), as the hive lake's do.
#[tokio::test(flavor = "multi_thread")]
async fn iceberg_sink_retries_through_s3_faults_and_ends_exactly_once() {
    let env = env_or_skip!();
    let topic = random_name("icefaults");
    replay_csv(&env, &repo_path("data/indices.csv"), &topic, 3, &[]);
    let bucket = env.create_bucket();
    let dir = tempfile::tempdir().unwrap();
    let catalog = format!("sqlite:{}", dir.path().join("catalog.db").display());
    let table = format!("market.{}", random_name("f").replace('-', "_"));
    let counts = Arc::new(Counts::seeded());
    let upstream = env.s3_endpoint().trim_start_matches("http://").to_string();
    let proxy = start_proxy(upstream, Mode::Faulty, counts.clone()).await;

    let to = format!("s3://{bucket}/warehouse");
    let ice = ["--format", "iceberg", "--catalog", &catalog, "--table", &table];
    let mut cmd = sink_cmd(&env, &topic, &to, &ice);
    cmd.args(["--max-rows", "1000"]).env("AWS_ENDPOINT_URL", &proxy);
    let out = tokio::task::spawn_blocking(move || run(&mut cmd)).await.unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "the Iceberg sink must ride out the faults:\n{err}");
    assert!(err.contains("retrying"), "retries are logged:\n{err}");
    let (requests, faults) = (counts.requests.load(Ordering::Relaxed), counts.faults.load(Ordering::Relaxed));
    eprintln!("iceberg s3 faults: {faults} of {requests} requests failed or stalled");
    assert!(requests >= 30, "enough traffic through the proxy: {requests}");
    assert!(faults * 10 >= requests, "at least 10% faults: {faults} of {requests}");

    // Checked through the real endpoint, not the proxy.
    let verify = run(env.ticklake().args(["lake", "verify", "--topic", &topic, "--to", &to]).args(&ice[2..]));
    let text = String::from_utf8_lossy(&verify.stdout).into_owned();
    assert!(verify.status.success() && text.contains("exactly once: yes"), "{text}\n{}", stderr(&verify));
    let rows: u64 =
        text.lines().filter_map(|l| l.split(" recorded, ").nth(1)?.split(" row(s)").next()?.parse::<u64>().ok()).sum();
    assert_eq!(rows, 4000, "every CSV row is in the table:\n{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_credentials_stop_the_sink_at_once() {
    let env = env_or_skip!();
    let counts = Arc::new(Counts::seeded());
    let upstream = env.s3_endpoint().trim_start_matches("http://").to_string();
    let proxy = start_proxy(upstream, Mode::Deny, counts.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let topic = random_name("denied");
    replay_csv(&env, &repo_path("data/indices.csv"), &topic, 1, &["--limit", "10"]);
    let mut cmd = sink_cmd(&env, &topic, "s3://any-bucket/p", &[]);
    cmd.env("AWS_ENDPOINT_URL", &proxy);
    let out = tokio::task::spawn_blocking(move || run(&mut cmd)).await.unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains("refused our credentials") && err.contains("AccessDenied"), "{err}");
    assert!(counts.requests.load(Ordering::Relaxed) <= 2, "one health-check request, not a retry loop");
    drop(dir);
}

/// The IAM action and resource (and the list prefix) an S3 request line needs, for path-style requests.
fn iam_need(line: &str, bucket: &str) -> (String, String, Option<String>) {
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap(), parts.next().unwrap());
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let key = path.trim_start_matches('/').strip_prefix(bucket).unwrap().trim_start_matches('/');
    let decode = |s: &str| {
        let mut out = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' && i + 2 < b.len() {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(if b[i] == b'+' { b' ' } else { b[i] });
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    };
    if key.is_empty() {
        assert!(method == "GET" || method == "HEAD", "{line}");
        let prefix = query.split('&').find_map(|kv| kv.strip_prefix("prefix=")).map(decode).unwrap_or_default();
        return ("s3:ListBucket".into(), format!("arn:aws:s3:::{bucket}"), Some(prefix));
    }
    let action = match method {
        "GET" | "HEAD" => "s3:GetObject",
        "PUT" => "s3:PutObject",
        "DELETE" => "s3:DeleteObject",
        other => panic!("unexpected {other} in {line}"),
    };
    (action.into(), format!("arn:aws:s3:::{bucket}/{}", decode(key)), None)
}

/// `*` matches any run of characters (IAM's StringLike and resource matching, without `?`).
fn glob(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((head, rest)) => {
            s.starts_with(head) && (0..=s.len() - head.len()).any(|i| glob(rest, &s[head.len() + i..]))
        }
    }
}

fn as_list(v: &serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
        _ => vec![],
    }
}

/// Whether `deploy/iam-policy.json`, for this bucket and prefix, allows the request.
fn allowed(policy: &serde_json::Value, action: &str, resource: &str, prefix: Option<&str>) -> bool {
    policy["Statement"].as_array().unwrap().iter().any(|st| {
        st["Effect"] == "Allow"
            && as_list(&st["Action"]).iter().any(|a| a == action)
            && as_list(&st["Resource"]).iter().any(|r| glob(r, resource))
            && match (st.get("Condition"), prefix) {
                (None, _) => true,
                (Some(c), Some(p)) => as_list(&c["StringLike"]["s3:prefix"]).iter().any(|pat| glob(pat, p)),
                (Some(_), None) => false,
            }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_iam_policy_in_deploy_allows_every_request_and_no_more_than_the_prefix() {
    let env = env_or_skip!();
    let topic = random_name("iam");
    replay_csv(&env, &repo_path("data/indices.csv"), &topic, 2, &[]);
    let bucket = env.create_bucket();
    let counts = Arc::new(Counts::seeded());
    let upstream = env.s3_endpoint().trim_start_matches("http://").to_string();
    let proxy = start_proxy(upstream, Mode::Record, counts.clone()).await;
    let to = format!("s3://{bucket}/lake");
    let commands: Vec<Vec<&str>> = vec![
        vec!["sink", "--topic", &topic, "--to", &to, "--exit-at-end", "--max-rows", "700"],
        vec!["lake", "stats", "--topic", &topic, "--to", &to],
        vec!["lake", "verify", "--topic", &topic, "--to", &to],
        vec!["athena", "--table", "db.t", "--topic", &topic, "--to", &to],
        vec!["doctor", "--to", &to],
    ];
    for args in commands {
        let mut cmd = env.ticklake();
        cmd.args(&args).env("AWS_ENDPOINT_URL", &proxy);
        ok(tokio::task::spawn_blocking(move || run(&mut cmd)).await.unwrap());
    }
    let text = std::fs::read_to_string(repo_path("deploy/iam-policy.json")).unwrap();
    let policy: serde_json::Value =
        serde_json::from_str(&text.replace("BUCKET", &bucket).replace("PREFIX", "lake")).unwrap();
    let lines = counts.lines.lock().unwrap().clone();
    let mut actions = std::collections::BTreeSet::new();
    for line in &lines {
        let (action, resource, prefix) = iam_need(line, &bucket);
        assert!(
            allowed(&policy, &action, &resource, prefix.as_deref()),
            "the policy denies {action} on {resource} ({prefix:?}) for {line}"
        );
        actions.insert(action);
    }
    let want: std::collections::BTreeSet<String> =
        ["s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject"].map(String::from).into();
    assert_eq!(actions, want, "every action of the policy is used, none is missing");
    // Least privilege: outside the prefix, nothing.
    assert!(!allowed(&policy, "s3:GetObject", &format!("arn:aws:s3:::{bucket}/other/x"), None));
    assert!(!allowed(&policy, "s3:ListBucket", &format!("arn:aws:s3:::{bucket}"), Some("other/")));
    assert!(!allowed(&policy, "s3:PutObject", "arn:aws:s3:::another-bucket/lake/x", None));
}
