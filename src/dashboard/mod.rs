//! `ticklake dashboard`: the feed and the lake in a browser, from the same binary. Reads the topic (the recent
//! past of each partition, then live), the lake (bounded reads, every `lake_every`), and serves one page over HTTP
//! with Server-Sent Events. Nothing it serves changes anything.

pub mod feed;
pub mod http;
#[cfg(feature = "iceberg")]
pub mod iceberg_view;
pub mod lake_view;
pub mod metrics_view;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::broadcast;

use crate::kafka::{Kafka, KafkaConfig};
use crate::lake::{LakeUrl, S3Options};
use crate::lake_cmd::LakeCmdError;
use crate::lake_cmd::iceberg::IcebergTable;
use crate::shutdown::Shutdown;

/// Bytes asked for per fetch.
const FETCH_MAX_BYTES: i32 = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct DashboardConfig {
    pub topic: String,
    /// The lake (`--to`), and with `--table --catalog` the Iceberg table in it.
    pub lake: Option<(LakeUrl, S3Options, Option<IcebergTable>)>,
    pub listen: SocketAddr,
    pub token: Option<String>,
    /// Records per partition shown from before the page opened.
    pub history: i64,
    pub lake_every: Duration,
    /// The running replay's and sink's `/metrics` addresses (`--metrics`), read every `lake_every`.
    pub metrics: Vec<String>,
}

/// Refuses what is unsafe before anything starts: a non-loopback address without a token.
pub fn check(cfg: &DashboardConfig) -> Result<(), crate::Error> {
    if !cfg.listen.ip().is_loopback() && cfg.token.is_none() {
        return Err(crate::Error::Usage(format!(
            "--listen {} is reachable from other hosts: give a token (--auth-token-file FILE or \
             TICKLAKE_DASHBOARD_TOKEN), or listen on 127.0.0.1 and open it through an SSH tunnel",
            cfg.listen
        )));
    }
    if cfg.token.as_deref().is_some_and(|t| t.trim().len() < 16) {
        return Err(crate::Error::Usage("the dashboard token must have at least 16 characters".into()));
    }
    Ok(())
}

/// Serves until a stop signal.
pub async fn run(kafka_cfg: KafkaConfig, cfg: DashboardConfig, shutdown: Shutdown) -> crate::Result<()> {
    check(&cfg)?;
    let kafka = Kafka::connect(kafka_cfg).await?;
    let topic = kafka.topic(&cfg.topic).await?;
    let (events, _) = broadcast::channel(64);
    let shared = Arc::new(http::Shared {
        topic: cfg.topic.clone(),
        feed: Default::default(),
        lake: std::sync::Mutex::new(Value::Null),
        metrics: std::sync::Mutex::new(Value::Null),
        events,
        token: cfg.token.as_deref().map(http::digest),
        stop: shutdown.clone(),
    });
    let listener = tokio::net::TcpListener::bind(cfg.listen).await.map_err(|e| crate::Error::Io {
        context: format!("listening on --listen {} (is another process using the port?)", cfg.listen),
        source: e,
    })?;
    let addr = listener.local_addr().unwrap_or(cfg.listen);
    let mut tasks = tokio::task::JoinSet::new();
    for p in topic.partitions.clone() {
        tasks.spawn(follow(kafka.clone(), cfg.topic.clone(), p, cfg.history, shared.clone(), shutdown.clone()));
    }
    tasks.spawn(flush(shared.clone(), shutdown.clone()));
    if let Some((url, s3, table)) = cfg.lake.clone() {
        let view = match table {
            None => LakePanel::Hive(lake_view::LakeView::new(url, s3, cfg.topic.clone())),
            Some(t) => LakePanel::Iceberg { url, s3, table: t, topic: cfg.topic.clone() },
        };
        tasks.spawn(watch_lake(view, cfg.lake_every, shared.clone(), shutdown.clone()));
    }
    if !cfg.metrics.is_empty() {
        tasks.spawn(watch_metrics(cfg.metrics.clone(), cfg.lake_every, shared.clone(), shutdown.clone()));
    }
    tracing::info!(topic = %cfg.topic, partitions = topic.partitions.len(), "dashboard on http://{addr}/");
    let stop = shutdown.clone();
    let served = axum::serve(listener, http::router(shared)).with_graceful_shutdown(async move { stop.wait().await });
    let result = served.await.map_err(|e| crate::Error::Io { context: "serving the dashboard".into(), source: e });
    shutdown.trigger(crate::shutdown::StopReason::Terminate);
    tasks.shutdown().await;
    result
}

/// One partition: its last `history` records, then live, into the feed. A fetch that fails is logged and tried
/// again (the page shows the partition's counts standing still meanwhile).
async fn follow(kafka: Kafka, topic: String, p: i32, history: i64, shared: Arc<http::Shared>, stop: Shutdown) {
    let mut next = None;
    while !stop.is_set() {
        tokio::select! {
            Err(e) = read_partition(&kafka, &topic, p, history, &shared, &mut next) => {
                // Retention deleted what was next: start again from the recent past.
                if matches!(e, crate::kafka::Error::OffsetOutOfRange { .. }) {
                    next = None;
                }
                tracing::warn!(kafka_partition = p, "reading the topic: {e}; trying again");
                tokio::select! { _ = tokio::time::sleep(Duration::from_secs(1)) => {}, _ = stop.wait() => {} }
            },
            _ = stop.wait() => {}
        }
    }
}

/// Fetches `p` from `next` (or its recent past) into the feed until a fetch fails; `next` follows what was read.
async fn read_partition(
    kafka: &Kafka,
    topic: &str,
    p: i32,
    history: i64,
    shared: &http::Shared,
    next: &mut Option<i64>,
) -> Result<std::convert::Infallible, crate::kafka::Error> {
    let pc = kafka.partition(topic, p).await?;
    let mut at = match *next {
        Some(n) => n,
        None => {
            let o = kafka.offsets(&pc).await?;
            (o.high_watermark - history).max(o.earliest)
        }
    };
    loop {
        let (records, hw) = kafka.fetch(&pc, at, FETCH_MAX_BYTES, 500).await?;
        let mut feed = shared.feed.lock().expect("feed lock");
        feed.end(p, hw);
        for r in records.into_iter().filter(|r| r.offset >= at) {
            let ms = r.record.timestamp.timestamp_millis();
            feed.record(p, r.offset, r.record.key.as_deref(), r.record.value.as_deref(), ms);
            *next = Some(r.offset + 1);
        }
        at = next.unwrap_or(at);
    }
}

/// The feed's changes to every open page, `feed::FLUSHES_PER_SECOND` times a second at most.
async fn flush(shared: Arc<http::Shared>, stop: Shutdown) {
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / feed::FLUSHES_PER_SECOND));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while !stop.is_set() {
        tokio::select! { _ = tick.tick() => {}, _ = stop.wait() => return }
        let update = shared.feed.lock().expect("feed lock").flush(std::time::Instant::now());
        if shared.events.receiver_count() > 0 {
            let _ = shared.events.send(("update", Arc::new(update.to_string())));
        }
    }
}

/// Where the lake panel comes from: a hive lake's files and checkpoints, or an Iceberg table's metadata.
enum LakePanel {
    Hive(lake_view::LakeView),
    #[cfg_attr(not(feature = "iceberg"), allow(dead_code))]
    Iceberg {
        url: LakeUrl,
        s3: S3Options,
        table: IcebergTable,
        topic: String,
    },
}

impl LakePanel {
    async fn refresh(&mut self, ends: &BTreeMap<i32, i64>) -> Result<Value, LakeCmdError> {
        match self {
            LakePanel::Hive(view) => view.refresh(ends).await,
            #[cfg(feature = "iceberg")]
            LakePanel::Iceberg { url, s3, table, topic } => iceberg_view::refresh(url, s3, table, topic, ends).await,
            #[cfg(not(feature = "iceberg"))]
            LakePanel::Iceberg { table, .. } => {
                Err(LakeCmdError::Corrupt(format!("--table {}: {}", table.table, crate::lake::iceberg::NOT_BUILT)))
            }
        }
    }
}

/// The lake panel, every `every`; a failed read is shown on the page (and logged), then tried again.
async fn watch_lake(mut view: LakePanel, every: Duration, shared: Arc<http::Shared>, stop: Shutdown) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.is_set() {
        tokio::select! { _ = tick.tick() => {}, _ = stop.wait() => return }
        let ends: BTreeMap<i32, i64> = shared.feed.lock().expect("feed lock").ends();
        let lake = match view.refresh(&ends).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("reading the lake: {e}");
                serde_json::json!({ "error": e.to_string(), "checked_at": chrono::Utc::now().timestamp_millis() })
            }
        };
        let text = Arc::new(lake.to_string());
        *shared.lake.lock().expect("lake lock") = lake;
        let _ = shared.events.send(("lake", text));
    }
}

/// The pipeline's `/metrics` pages, every `every`: values and rates per source; a source that does not answer is
/// shown with its error.
async fn watch_metrics(urls: Vec<String>, every: Duration, shared: Arc<http::Shared>, stop: Shutdown) {
    let mut sources: Vec<metrics_view::Source> = urls.iter().map(|_| Default::default()).collect();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.is_set() {
        tokio::select! { _ = tick.tick() => {}, _ = stop.wait() => return }
        let mut shown = Vec::new();
        for (url, source) in urls.iter().zip(sources.iter_mut()) {
            shown.push(match metrics_view::fetch(url, Duration::from_secs(5)).await {
                Ok(text) => {
                    let rows = source.rows(std::time::Instant::now(), metrics_view::parse(&text));
                    serde_json::json!({ "url": url, "metrics": rows })
                }
                Err(e) => serde_json::json!({ "url": url, "error": e }),
            });
        }
        let value = serde_json::json!({ "sources": shown });
        let text = Arc::new(value.to_string());
        *shared.metrics.lock().expect("metrics lock") = value;
        let _ = shared.events.send(("metrics", text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(listen: &str, token: Option<&str>) -> DashboardConfig {
        DashboardConfig {
            topic: "t".into(),
            lake: None,
            listen: listen.parse().unwrap(),
            token: token.map(str::to_string),
            history: 10,
            lake_every: Duration::from_secs(5),
            metrics: vec![],
        }
    }

    #[test]
    fn other_hosts_need_a_token_and_tokens_are_not_short() {
        assert!(check(&cfg("127.0.0.1:8080", None)).is_ok());
        assert!(check(&cfg("[::1]:8080", None)).is_ok());
        let e = check(&cfg("0.0.0.0:8080", None)).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        assert!(check(&cfg("0.0.0.0:8080", Some("0123456789abcdef"))).is_ok());
        assert!(check(&cfg("0.0.0.0:8080", Some("short"))).is_err());
    }
}
