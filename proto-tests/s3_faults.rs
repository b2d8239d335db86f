//! S3 faults: a fault-injecting HTTP proxy (written here) in front of the S3 server. The sink must retry through
//! 503 SlowDown, reset connections and stalls, never checkpoint past a failed upload, and end exactly once; refused
//! credentials must stop it at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
}

#[derive(Debug, Default)]
struct Counts {
    requests: AtomicU64,
    faults: AtomicU64,
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
    counts.requests.fetch_add(1, Ordering::Relaxed);
    let roll: f64 = rand::random();
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
    let counts = Arc::new(Counts::default());
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

#[tokio::test(flavor = "multi_thread")]
async fn refused_credentials_stop_the_sink_at_once() {
    let env = env_or_skip!();
    let counts = Arc::new(Counts::default());
    let upstream = env.s3_endpoint().trim_start_matches("http://").to_string();
    let proxy = start_proxy(upstream, Mode::Deny, counts.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let topic = random_name("denied");
    replay_csv(&env, &repo_path("data/indices.csv"), &topic, 1, &["--limit", "10"]);
    let mut cmd = sink_cmd(&env, &topic, "s3://any-bucket/p", &[]);
    cmd.env("AWS_ENDPOINT_URL", &proxy);
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || run(&mut cmd)).await.unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains("refused our credentials") && err.contains("AccessDenied"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "no retrying a 403: took {:?}", started.elapsed());
    assert!(counts.requests.load(Ordering::Relaxed) <= 2, "one health-check request, not a retry loop");
    drop(dir);
}
