//! Pacing: when may the next row go? A pure function of the clock, so it is tested without sleeping.

use std::time::{Duration, Instant};

/// How fast rows are sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// As fast as the broker acknowledges.
    FlatOut,
    /// A fixed number of rows per second.
    Rate(f64),
    /// Event-time gaps replayed this many times faster (1 = real time). Expects rows sorted by event time; a row
    /// whose time goes backwards goes at once.
    Speed(f64),
}

/// The longest a pacer lets the sender fall behind before it stops trying to catch up (no burst after a stall).
const MAX_CATCH_UP: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Pacer {
    pace: Pace,
    start: Option<Instant>,
    rows: u64,
    first_event: Option<i64>,
    max_event: i64,
}

impl Pacer {
    pub fn new(pace: Pace) -> Self {
        Pacer { pace, start: None, rows: 0, first_event: None, max_event: i64::MIN }
    }

    /// How long to wait, from `now`, before sending the next row (event time `event_ms`).
    pub fn delay(&mut self, now: Instant, event_ms: Option<i64>) -> Duration {
        let start = *self.start.get_or_insert(now);
        let offset = match self.pace {
            Pace::FlatOut => return Duration::ZERO,
            Pace::Rate(per_sec) => {
                let at = Duration::from_secs_f64(self.rows as f64 / per_sec);
                self.rows += 1;
                at
            }
            Pace::Speed(speed) => {
                let Some(ev) = event_ms else { return Duration::ZERO };
                let first = *self.first_event.get_or_insert(ev);
                self.max_event = self.max_event.max(ev);
                Duration::from_secs_f64((self.max_event - first) as f64 / 1000.0 / speed)
            }
        };
        let target = start + offset;
        if now > target + MAX_CATCH_UP {
            // Fell behind (a stall, a slow broker): re-anchor so the schedule resumes from now.
            self.start = Some(start + (now - target));
            return Duration::ZERO;
        }
        target.saturating_duration_since(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_spaces_rows_evenly() {
        let t = Instant::now();
        let mut p = Pacer::new(Pace::Rate(10.0));
        assert_eq!(p.delay(t, None), Duration::ZERO);
        assert_eq!(p.delay(t, None), Duration::from_millis(100));
        assert_eq!(p.delay(t + Duration::from_millis(150), None), Duration::from_millis(50));
    }

    #[test]
    fn speed_scales_event_gaps_and_ignores_backward_time() {
        let t = Instant::now();
        let mut p = Pacer::new(Pace::Speed(60.0));
        assert_eq!(p.delay(t, Some(0)), Duration::ZERO);
        assert_eq!(p.delay(t, Some(60_000)), Duration::from_secs(1));
        assert_eq!(p.delay(t, Some(30_000)), Duration::from_secs(1), "backwards time waits for nothing new");
        assert_eq!(p.delay(t + Duration::from_secs(1), Some(120_000)), Duration::from_secs(1));
    }

    #[test]
    fn no_burst_after_a_stall() {
        let t = Instant::now();
        let mut p = Pacer::new(Pace::Rate(100.0));
        p.delay(t, None);
        assert_eq!(p.delay(t + Duration::from_secs(10), None), Duration::ZERO);
        assert_eq!(p.delay(t + Duration::from_secs(10), None), Duration::from_millis(10));
    }

    #[test]
    fn flat_out_never_waits() {
        let mut p = Pacer::new(Pace::FlatOut);
        assert_eq!(p.delay(Instant::now(), Some(5)), Duration::ZERO);
    }
}
