//! Bounded retries with jittered exponential backoff, shared by every network edge (Kafka produce, S3).
//!
//! Foundation layer. One loop, so the policy (first wait 100 ms, doubling, full jitter in the upper half, a cap,
//! and a deadline after which the last error is returned) cannot drift between the edges. A stop signal ends a
//! wait early (`Shutdown::process().waits_cancelled()`), with the last error.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// First wait after a failure.
const INITIAL: Duration = Duration::from_millis(100);

/// Runs `op` until it succeeds, fails with an error `transient` rejects, or `retry_for` has passed. `op` gets the
/// attempt number (0 for the first try). `what` names the operation in the retry log line.
pub async fn retry<T, E, F, Fut>(
    what: &str,
    retry_for: Duration,
    max_backoff: Duration,
    transient: impl Fn(&E) -> bool,
    mut op: F,
) -> Result<T, E>
where
    E: Display,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let give_up = tokio::time::Instant::now() + retry_for;
    let mut backoff = INITIAL;
    let mut attempt = 0;
    loop {
        match op(attempt).await {
            Ok(v) => return Ok(v),
            Err(e) if transient(&e) && tokio::time::Instant::now() + backoff < give_up => {
                let stop = crate::shutdown::Shutdown::process();
                if stop.cancels_waits() {
                    return Err(e);
                }
                tracing::warn!("{what} failed, retrying in about {backoff:?}: {e}");
                tokio::select! {
                    _ = tokio::time::sleep(backoff.mul_f64(rand::random_range(0.5..1.0))) => {}
                    // A stop signal ends the wait (see `crate::shutdown`): the last error is the answer.
                    _ = stop.waits_cancelled() => return Err(e),
                }
                backoff = (backoff * 2).min(max_backoff);
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn retries_transient_errors_until_success_or_deadline() {
        let calls = AtomicU32::new(0);
        let ok: Result<u32, String> = retry(
            "t",
            Duration::from_secs(10),
            Duration::from_secs(1),
            |_| true,
            |n| {
                calls.fetch_add(1, Ordering::Relaxed);
                async move { if n < 3 { Err("busy".to_string()) } else { Ok(n) } }
            },
        )
        .await;
        assert_eq!(ok, Ok(3));
        assert_eq!(calls.load(Ordering::Relaxed), 4);

        let gave_up: Result<(), String> =
            retry("t", Duration::from_secs(2), Duration::from_secs(1), |_| true, |_| async { Err("down".to_string()) })
                .await;
        assert_eq!(gave_up, Err("down".to_string()));

        let permanent = AtomicU32::new(0);
        let r: Result<(), String> = retry(
            "t",
            Duration::from_secs(10),
            Duration::from_secs(1),
            |e: &String| e != "403",
            |_| {
                permanent.fetch_add(1, Ordering::Relaxed);
                async { Err("403".to_string()) }
            },
        )
        .await;
        assert!(r.is_err());
        assert_eq!(permanent.load(Ordering::Relaxed), 1, "a permanent error is not retried");
    }
}
