//! Prometheus metrics at the edge: `--metrics-addr` serves `/metrics` (text format 0.0.4) and `/healthz`.
//!
//! The pipelines already count what they do in atomics (the replay's `Counters`, the sink's `SinkStats`), read by
//! the progress and stats lines. `/metrics` renders those same atomics at scrape time, so the log line and the
//! scrape can never disagree and nothing is counted twice. The text format is small and fixed
//! (<https://prometheus.io/docs/instrumenting/exposition_formats/>); `Text` writes it.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::shutdown::Shutdown;

/// Upper bounds (seconds) of the upload latency buckets.
const UPLOAD_BOUNDS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A fixed-bucket histogram, safe to share between tasks.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// One count per bound, plus `+Inf`; not cumulative (made cumulative when rendered).
    counts: [AtomicU64; UPLOAD_BOUNDS.len() + 1],
    sum_micros: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub const fn new() -> Self {
        Histogram {
            bounds: &UPLOAD_BOUNDS,
            counts: [const { AtomicU64::new(0) }; UPLOAD_BOUNDS.len() + 1],
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = self.bounds.iter().position(|b| secs <= *b).unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }
}

/// This process's peak resident set size in bytes (`VmHWM` in `/proc/self/status`); `None` off Linux.
pub fn peak_rss_bytes() -> Option<u64> {
    rss_field("VmHWM:")
}

/// This process's resident set size in bytes now (`VmRSS`).
pub fn rss_bytes() -> Option<u64> {
    rss_field("VmRSS:")
}

fn rss_field(name: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 =
        status.lines().find_map(|l| l.strip_prefix(name))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

/// A Prometheus text-format document being written.
#[derive(Default)]
pub struct Text(String);

impl Text {
    fn header(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    pub fn counter(&mut self, name: &str, help: &str, v: u64) {
        self.header(name, help, "counter");
        let _ = writeln!(self.0, "{name} {v}");
    }

    pub fn gauge(&mut self, name: &str, help: &str, v: f64) {
        self.header(name, help, "gauge");
        let _ = writeln!(self.0, "{name} {v}");
    }

    /// One gauge per partition: `name{kafka_partition="3"} v`.
    pub fn partition_gauges(&mut self, name: &str, help: &str, values: impl IntoIterator<Item = (i32, i64)>) {
        self.header(name, help, "gauge");
        for (p, v) in values {
            let _ = writeln!(self.0, "{name}{{kafka_partition=\"{p}\"}} {v}");
        }
    }

    pub fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        self.header(name, help, "histogram");
        let mut cumulative = 0;
        for (i, c) in h.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            match h.bounds.get(i) {
                Some(b) => writeln!(self.0, "{name}_bucket{{le=\"{b}\"}} {cumulative}"),
                None => writeln!(self.0, "{name}_bucket{{le=\"+Inf\"}} {cumulative}"),
            }
            .expect("writing to a String");
        }
        let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(self.0, "{name}_sum {sum}\n{name}_count {cumulative}");
    }

    pub fn finish(self) -> String {
        self.0
    }
}

/// Renders the current metrics.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// Binds `addr` now (so a taken port is an error before any data moves) and serves `/metrics` and `/healthz` until
/// the process ends. `/healthz` answers 200 while the pipeline runs and 503 once it is stopping.
pub async fn serve(addr: SocketAddr, render: Render, shutdown: Shutdown) -> crate::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(addr).await.map_err(|e| crate::Error::Io {
        context: format!("listening on --metrics-addr {addr} (is another process using the port?)"),
        source: e,
    })?;
    // Port 0 picks a free port: the log names the one bound (tests read it from here, race-free).
    let addr = listener.local_addr().unwrap_or(addr);
    tracing::info!(%addr, "metrics on http://{addr}/metrics");
    Ok(tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { continue };
            let (render, shutdown) = (render.clone(), shutdown.clone());
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(5), answer(&mut conn, &render, &shutdown)).await;
            });
        }
    }))
}

async fn answer(conn: &mut tokio::net::TcpStream, render: &Render, shutdown: &Shutdown) -> std::io::Result<()> {
    // Only the request line matters; read until the end of the headers, at most 8 KiB.
    let mut req = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 8192 {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        req.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(req.split(|b| *b == b'\n').next().unwrap_or_default()).into_owned();
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, ctype, body) = match (method, path) {
        ("GET", "/metrics") => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", render()),
        ("GET", "/healthz") if shutdown.is_set() => ("503 Service Unavailable", "text/plain", "stopping\n".into()),
        ("GET", "/healthz") => ("200 OK", "text/plain", "ok\n".into()),
        ("GET", _) => ("404 Not Found", "text/plain", "try /metrics or /healthz\n".into()),
        _ => ("405 Method Not Allowed", "text/plain", "GET only\n".into()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body.as_bytes()).await?;
    conn.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_is_read_on_linux() {
        let (now, peak) = (rss_bytes().unwrap(), peak_rss_bytes().unwrap());
        assert!(now > 1 << 20 && peak >= now, "{now} {peak}");
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::new();
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(60));
        let mut t = Text::default();
        t.histogram("x_seconds", "x", &h);
        let out = t.finish();
        assert!(out.contains("x_seconds_bucket{le=\"0.01\"} 1\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{le=\"0.025\"} 1\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{le=\"0.05\"} 2\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{le=\"10\"} 2\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_seconds_count 3\n"), "{out}");
        assert!(out.contains("x_seconds_sum 60.035\n"), "{out}");
    }

    #[test]
    fn text_format_has_help_type_and_labels() {
        let mut t = Text::default();
        t.counter("a_total", "things", 7);
        t.partition_gauges("lag", "behind", [(0, 5), (2, 0)]);
        assert_eq!(
            t.finish(),
            "# HELP a_total things\n# TYPE a_total counter\na_total 7\n\
             # HELP lag behind\n# TYPE lag gauge\nlag{kafka_partition=\"0\"} 5\nlag{kafka_partition=\"2\"} 0\n"
        );
    }

    #[tokio::test]
    async fn serves_metrics_and_health() {
        let shutdown = Shutdown::new();
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let render: Render = Arc::new(|| "x 1\n".to_string());
        let server = serve(addr, render, shutdown.clone()).await.unwrap();
        async fn get(addr: SocketAddr, path: &str) -> String {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
            let mut out = String::new();
            c.read_to_string(&mut out).await.unwrap();
            out
        }
        let m = get(addr, "/metrics").await;
        assert!(m.starts_with("HTTP/1.1 200 OK") && m.ends_with("\r\n\r\nx 1\n"), "{m}");
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
        shutdown.trigger(crate::shutdown::StopReason::Terminate);
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 503"));
        assert!(serve(addr, Arc::new(String::new), shutdown).await.is_err(), "a taken port is an error");
        server.abort();
    }
}
