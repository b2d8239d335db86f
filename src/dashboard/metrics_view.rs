//! The running replay's and sink's `/metrics` (`--metrics URL`, repeatable), shown as values and rates: each
//! `ticklake_*` metric summed over its labels; a counter (`*_total`) also as a rate per second between two reads.
//! Parsing and rates are pure; `fetch` is the one HTTP GET (hyper's client, already in the tree).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Metrics shown per source.
const SHOWN: usize = 40;

/// `ticklake_*` samples of a Prometheus text page, summed over their labels (histogram buckets left out).
pub fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| l.starts_with("ticklake_")) {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        if name.ends_with("_bucket") {
            continue;
        }
        let value = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        if let Some(v) = value.filter(|v| v.is_finite()) {
            *out.entry(name.to_string()).or_insert(0.0) += v;
        }
    }
    out
}

/// One source's last read, for the rates.
#[derive(Default)]
pub struct Source {
    last: Option<(Instant, BTreeMap<String, f64>)>,
}

impl Source {
    /// The panel rows for a new read at `now`: name, value, and for counters the rate since the last read.
    pub fn rows(&mut self, now: Instant, read: BTreeMap<String, f64>) -> Vec<Value> {
        let rows = read
            .iter()
            .take(SHOWN)
            .map(|(name, v)| {
                let rate = match (&self.last, name.ends_with("_total")) {
                    (Some((at, before)), true) => before.get(name).and_then(|b| {
                        let secs = now.duration_since(*at).as_secs_f64();
                        (secs > 0.0 && v >= b).then(|| (v - b) / secs)
                    }),
                    _ => None,
                };
                json!({ "name": name, "value": v, "rate": rate })
            })
            .collect();
        self.last = Some((now, read));
        rows
    }
}

/// `GET url` (http only: the metrics endpoints listen on plain HTTP), its body as text, within `timeout`.
pub async fn fetch(url: &str, timeout: Duration) -> Result<String, String> {
    use http_body_util::BodyExt;
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("{url}: only http:// metrics endpoints are read"));
    }
    let host = uri.host().ok_or_else(|| format!("{url}: no host"))?.to_string();
    let port = uri.port_u16().unwrap_or(80);
    let path = uri.path_and_query().map_or("/metrics", |p| p.as_str()).to_string();
    let get = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| e.to_string())?;
        let io = hyper_util::rt::TokioIo::new(tcp);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = http::Request::get(path)
            .header(http::header::HOST, format!("{host}:{port}"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status()));
        }
        let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(String::from_utf8_lossy(&body).into_owned())
    };
    match tokio::time::timeout(timeout, get).await {
        Ok(r) => r.map_err(|e| format!("{url}: {e}")),
        Err(_) => Err(format!("{url}: no answer within {timeout:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "# HELP ticklake_sink_records_total Records read.\n# TYPE ticklake_sink_records_total counter\n\
        ticklake_sink_records_total{kafka_partition=\"0\"} 10\nticklake_sink_records_total{kafka_partition=\"1\"} 5\n\
        ticklake_sink_lag_records{kafka_partition=\"0\"} 3\nticklake_sink_commit_seconds_bucket{le=\"1\"} 4\n\
        other_metric 1\nticklake_bad NaN\n";

    #[test]
    fn samples_are_summed_over_labels_and_counters_get_rates() {
        let m = parse(PAGE);
        assert_eq!(m.get("ticklake_sink_records_total"), Some(&15.0));
        assert_eq!(m.get("ticklake_sink_lag_records"), Some(&3.0));
        assert!(!m.contains_key("other_metric") && !m.contains_key("ticklake_sink_commit_seconds_bucket"));
        assert!(!m.contains_key("ticklake_bad"));
        let mut s = Source::default();
        let t0 = Instant::now();
        let first = s.rows(t0, m.clone());
        assert!(first.iter().all(|r| r["rate"].is_null()), "no rate before a second read");
        let mut later = m;
        later.insert("ticklake_sink_records_total".into(), 35.0);
        let rows = s.rows(t0 + Duration::from_secs(2), later);
        let rec = rows.iter().find(|r| r["name"] == "ticklake_sink_records_total").unwrap();
        assert_eq!(rec["rate"].as_f64(), Some(10.0));
        let lag = rows.iter().find(|r| r["name"] == "ticklake_sink_lag_records").unwrap();
        assert!(lag["rate"].is_null(), "a gauge has no rate");
    }
}
