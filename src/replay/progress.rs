//! Progress on stderr: a bar on a terminal (rows/s, bytes/s, ETA for files), a log line every 10 s otherwise.

use crate::units::human_bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::Notify;

use super::produce::Counters;

/// A running progress display; `finish` stops it.
pub struct Progress {
    stop: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// `total_bytes`: the input size (ETA by bytes read); `limit`: a row limit (ETA by rows).
    pub fn start(
        bar: bool,
        counters: Arc<Counters>,
        consumed: Arc<AtomicU64>,
        total_bytes: Option<u64>,
        limit: Option<u64>,
    ) -> Progress {
        let stop = Arc::new(Notify::new());
        let wake = stop.clone();
        let task = tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let pb = if bar {
                let (len, by_rows) = match (limit, total_bytes) {
                    (Some(l), _) => (Some(l), true),
                    (None, Some(b)) => (Some(b), false),
                    _ => (None, true),
                };
                let pb = match len {
                    Some(l) => ProgressBar::new(l),
                    None => ProgressBar::no_length(),
                };
                pb.set_draw_target(ProgressDrawTarget::stderr_with_hz(5));
                let template = if len.is_some() {
                    "{spinner} [{elapsed_precise}] [{wide_bar}] {percent}% ETA {eta} {msg}"
                } else {
                    "{spinner} [{elapsed_precise}] {msg}"
                };
                pb.set_style(ProgressStyle::with_template(template).expect("valid template").progress_chars("=> "));
                Some((pb, by_rows))
            } else {
                None
            };
            let mut tick =
                tokio::time::interval(if pb.is_some() { Duration::from_millis(200) } else { Duration::from_secs(10) });
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = wake.notified() => break,
                }
                let secs = started.elapsed().as_secs_f64().max(1e-9);
                let sent = counters.sent.load(Ordering::Relaxed);
                let bytes = counters.bytes_sent.load(Ordering::Relaxed);
                let msg = format!(
                    "{} sent, {:.0} rows/s, {}/s, {} skipped",
                    sent,
                    sent as f64 / secs,
                    human_bytes((bytes as f64 / secs) as u64),
                    counters.skipped.load(Ordering::Relaxed)
                );
                match &pb {
                    Some((pb, by_rows)) => {
                        pb.set_position(if *by_rows { sent } else { consumed.load(Ordering::Relaxed) });
                        pb.set_message(msg);
                    }
                    None => tracing::info!("progress: {msg}"),
                }
            }
            if let Some((pb, _)) = pb {
                pb.finish_and_clear();
            }
        });
        Progress { stop, task }
    }

    /// Stops the display and clears the bar.
    pub async fn finish(self) {
        self.stop.notify_one();
        let _ = self.task.await;
    }
}
