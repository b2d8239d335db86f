//! The feed as the page shows it, kept in memory and bounded: per symbol the last price, its change and a chart
//! series; the newest rows; per Kafka partition the records seen, their rate and the end offset. Pure: records in,
//! JSON out; the network is in `dashboard::run`.
//!
//! The chart kind follows the schema: records with a `close` (daily bars, the `indices` preset) are a line of the
//! close, one point per record; records with a `price` (the `ticks` preset) are one-minute candles. A record that
//! is not a JSON object, or has neither, is counted per partition and never shown as data.
//!
//! Sampling: the page is sent at most `FLUSHES_PER_SECOND` updates a second, each carrying every symbol's changed
//! points (at most a chart's `POINTS`), the `ROWS` newest rows and the counts. Every record is counted; at 5,000
//! records/s most are not drawn one by one, and the page does the same work at any feed rate.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::Serialize;
use serde_json::{Value, json};

/// Points per symbol's chart (days of a line, minutes of candles).
pub const POINTS: usize = 300;
/// Rows in the newest-rows table.
pub const ROWS: usize = 20;
/// Updates per second sent to a page.
pub const FLUSHES_PER_SECOND: u64 = 4;
/// Longest string value kept for the page (a hostile 10 kB string is cut, and shown as text).
const MAX_TEXT: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Daily bars: a line of the close.
    Line,
    /// Ticks: one-minute candles of the price.
    Candles,
}

/// One point of a chart: time (ms since the epoch: the day, or the minute), open, high, low, close.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point(pub i64, pub f64, pub f64, pub f64, pub f64);

#[derive(Debug, Default)]
struct Symbol {
    kind: Option<Kind>,
    points: VecDeque<Point>,
    /// The time of the earliest point changed since the last flush.
    touched: Option<i64>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct PartitionCounts {
    pub records: u64,
    pub malformed: u64,
    /// The high watermark the last fetch saw.
    pub end: i64,
    /// Records per second over the last flushes.
    pub rate: f64,
}

#[derive(Debug, Default)]
pub struct Feed {
    symbols: BTreeMap<String, Symbol>,
    rows: VecDeque<Value>,
    new_rows: usize,
    partitions: BTreeMap<i32, PartitionCounts>,
    /// Records per partition at each of the last flushes, for the rate.
    window: VecDeque<(std::time::Instant, BTreeMap<i32, u64>)>,
}

/// A text value as the page may show it: at most `MAX_TEXT` characters.
fn clip(s: &str) -> Value {
    if s.chars().count() <= MAX_TEXT {
        return Value::from(s);
    }
    Value::from(s.chars().take(MAX_TEXT).collect::<String>() + "…")
}

/// The event time of a record: its `trade_date` (a day) or `ts`, else the Kafka timestamp.
fn event_time(obj: &serde_json::Map<String, Value>, kafka_ms: i64) -> i64 {
    if let Some(d) = obj.get("trade_date").and_then(Value::as_str)
        && let Ok(day) = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
    {
        return day.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp_millis();
    }
    if let Some(t) = obj.get("ts").and_then(Value::as_str)
        && let Ok(t) = chrono::DateTime::parse_from_rfc3339(t)
    {
        return t.timestamp_millis();
    }
    kafka_ms
}

impl Feed {
    /// The high watermark a fetch of `partition` saw.
    pub fn end(&mut self, partition: i32, end: i64) {
        self.partitions.entry(partition).or_default().end = end;
    }

    /// One record of the topic.
    pub fn record(&mut self, partition: i32, offset: i64, key: Option<&[u8]>, value: Option<&[u8]>, kafka_ms: i64) {
        let counts = self.partitions.entry(partition).or_default();
        counts.records += 1;
        let obj = match value.and_then(|v| serde_json::from_slice::<Value>(v).ok()) {
            Some(Value::Object(o)) => o,
            _ => {
                counts.malformed += 1;
                return;
            }
        };
        let (kind, price) = match (obj.get("close").and_then(Value::as_f64), obj.get("price").and_then(Value::as_f64)) {
            (Some(c), _) => (Kind::Line, c),
            (None, Some(p)) => (Kind::Candles, p),
            _ => {
                counts.malformed += 1;
                return;
            }
        };
        let symbol = match obj.get("symbol") {
            Some(Value::String(s)) => s.clone(),
            _ => key.map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default(),
        };
        let at = event_time(&obj, kafka_ms);
        let s = self.symbols.entry(symbol.clone()).or_default();
        s.kind.get_or_insert(kind);
        let t = if kind == Kind::Candles { at - at.rem_euclid(60_000) } else { at };
        match s.points.iter().rposition(|p| p.0 <= t) {
            Some(i) if s.points[i].0 == t && kind == Kind::Candles => {
                let p = &mut s.points[i];
                *p = Point(p.0, p.1, p.2.max(price), p.3.min(price), price);
            }
            Some(i) if s.points[i].0 == t => s.points[i] = Point(t, price, price, price, price),
            Some(i) => s.points.insert(i + 1, Point(t, price, price, price, price)),
            None => s.points.push_front(Point(t, price, price, price, price)),
        }
        while s.points.len() > POINTS {
            s.points.pop_front();
        }
        s.touched = Some(s.touched.map_or(t, |old| old.min(t)));
        let mut row = serde_json::Map::new();
        row.insert("partition".into(), partition.into());
        row.insert("offset".into(), offset.into());
        row.insert("time".into(), at.into());
        row.insert("symbol".into(), clip(&symbol));
        row.insert("price".into(), price.into());
        let fields: serde_json::Map<String, Value> = obj
            .iter()
            .take(16)
            .map(|(k, v)| {
                let shown = match v {
                    Value::String(t) => clip(t),
                    Value::Array(_) | Value::Object(_) => clip(&v.to_string()),
                    other => other.clone(),
                };
                (k.chars().take(40).collect(), shown)
            })
            .collect();
        row.insert("fields".into(), Value::Object(fields));
        self.rows.push_back(Value::Object(row));
        self.new_rows += 1;
        while self.rows.len() > ROWS {
            self.rows.pop_front();
        }
    }

    fn symbol_json(name: &str, s: &Symbol, from: Option<i64>) -> Value {
        let last = s.points.back().map(|p| p.4);
        let prev = s.points.len().checked_sub(2).map(|i| s.points[i].4);
        let points: Vec<&Point> = match from {
            Some(t) => s.points.iter().filter(|p| p.0 >= t).collect(),
            None => s.points.iter().collect(),
        };
        json!({
            "symbol": clip(name),
            "kind": s.kind,
            "last": last,
            "change": last.zip(prev).map(|(l, p)| l - p),
            "points": points,
        })
    }

    /// Everything the page shows, for a page that just opened.
    pub fn snapshot(&self) -> Value {
        json!({
            "symbols": self.symbols.iter().map(|(n, s)| Self::symbol_json(n, s, None)).collect::<Vec<_>>(),
            "rows": self.rows,
            "partitions": self.partitions,
        })
    }

    /// The end offsets the fetches saw, per partition.
    pub fn ends(&self) -> BTreeMap<i32, i64> {
        self.partitions.iter().map(|(p, c)| (*p, c.end)).collect()
    }

    /// What changed since the last flush, with the rates brought up to date.
    pub fn flush(&mut self, now: std::time::Instant) -> Value {
        let seen: BTreeMap<i32, u64> = self.partitions.iter().map(|(p, c)| (*p, c.records)).collect();
        self.window.push_back((now, seen.clone()));
        while self.window.len() > 1 && now.duration_since(self.window[0].0).as_secs_f64() > 5.0 {
            self.window.pop_front();
        }
        let (t0, first) = &self.window[0];
        let span = now.duration_since(*t0).as_secs_f64();
        for (p, c) in self.partitions.iter_mut() {
            let before = first.get(p).copied().unwrap_or(0);
            c.rate = if span > 0.0 { (c.records - before) as f64 / span } else { 0.0 };
        }
        let changed: BTreeSet<&String> =
            self.symbols.iter().filter(|(_, s)| s.touched.is_some()).map(|(n, _)| n).collect();
        let symbols: Vec<Value> =
            changed.iter().map(|n| Self::symbol_json(n, &self.symbols[*n], self.symbols[*n].touched)).collect();
        let rows: Vec<&Value> = self.rows.iter().skip(self.rows.len() - self.new_rows.min(self.rows.len())).collect();
        let update = json!({ "symbols": symbols, "rows": rows, "partitions": self.partitions });
        for s in self.symbols.values_mut() {
            s.touched = None;
        }
        self.new_rows = 0;
        update
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(symbol: &str, day: &str, close: f64) -> Vec<u8> {
        format!(r#"{{"symbol":"{symbol}","trade_date":"{day}","open":1.0,"close":{close},"volume":5}}"#).into_bytes()
    }

    #[test]
    fn daily_bars_are_a_line_with_the_change_from_the_day_before() {
        let mut f = Feed::default();
        f.record(0, 0, Some(b"HSI"), Some(&bar("HSI", "2020-01-02", 10.0)), 0);
        f.record(0, 1, Some(b"HSI"), Some(&bar("HSI", "2020-01-03", 12.5)), 0);
        let snap = f.snapshot();
        let hsi = &snap["symbols"][0];
        assert_eq!(
            (hsi["kind"].as_str(), hsi["last"].as_f64(), hsi["change"].as_f64()),
            (Some("line"), Some(12.5), Some(2.5))
        );
        assert_eq!(hsi["points"].as_array().unwrap().len(), 2);
        let update = f.flush(std::time::Instant::now());
        assert_eq!(update["rows"].as_array().unwrap().len(), 2);
        assert_eq!(update["partitions"]["0"]["records"], 2);
        // Nothing new: no symbol and no row in the next update.
        let update = f.flush(std::time::Instant::now());
        assert!(update["symbols"].as_array().unwrap().is_empty() && update["rows"].as_array().unwrap().is_empty());
    }

    #[test]
    fn ticks_make_one_minute_candles() {
        let mut f = Feed::default();
        for (i, (ts, price)) in
            [("09:30:01", 10.0), ("09:30:40", 12.0), ("09:30:59", 9.0), ("09:31:00", 11.0)].iter().enumerate()
        {
            let v = format!(r#"{{"ts":"2024-03-04T{ts}.000Z","symbol":"MSFT","price":{price},"size":1}}"#);
            f.record(1, i as i64, None, Some(v.as_bytes()), 0);
        }
        let snap = f.snapshot();
        let msft = &snap["symbols"][0];
        assert_eq!(msft["kind"], "candles");
        let candles: Vec<Point> = serde_json::from_value::<Vec<(i64, f64, f64, f64, f64)>>(msft["points"].clone())
            .unwrap()
            .into_iter()
            .map(|(t, o, h, l, c)| Point(t, o, h, l, c))
            .collect();
        assert_eq!(candles.len(), 2);
        assert_eq!((candles[0].1, candles[0].2, candles[0].3, candles[0].4), (10.0, 12.0, 9.0, 9.0));
        assert_eq!(candles[1].0 - candles[0].0, 60_000);
    }

    #[test]
    fn malformed_records_are_counted_never_shown_and_text_is_bounded() {
        let mut f = Feed::default();
        f.record(2, 0, None, Some(b"not json"), 0);
        f.record(2, 1, None, Some(b"[1,2]"), 0);
        f.record(2, 2, None, Some(br#"{"symbol":"X"}"#), 0);
        f.record(2, 3, None, None, 0);
        let long = "A".repeat(10_000);
        let hostile = format!(r#"{{"symbol":"<img src=x onerror=alert(1)>","close":1.0,"note":"{long}"}}"#);
        f.record(2, 4, None, Some(hostile.as_bytes()), 0);
        let snap = f.snapshot();
        assert_eq!(snap["partitions"]["2"]["malformed"], 4);
        assert_eq!(snap["partitions"]["2"]["records"], 5);
        assert_eq!(snap["symbols"].as_array().unwrap().len(), 1);
        assert_eq!(snap["symbols"][0]["symbol"], "<img src=x onerror=alert(1)>");
        let note = snap["rows"][0]["fields"]["note"].as_str().unwrap();
        assert!(note.chars().count() <= MAX_TEXT + 1, "{}", note.len());
    }

    #[test]
    fn memory_is_bounded_by_points_and_rows() {
        let mut f = Feed::default();
        let start = chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap();
        for i in 0..(POINTS as i64 * 3) {
            let day = (start + chrono::Duration::days(i)).format("%Y-%m-%d").to_string();
            f.record(0, i, None, Some(&bar("S", &day, i as f64)), 0);
        }
        let snap = f.snapshot();
        assert_eq!(snap["symbols"][0]["points"].as_array().unwrap().len(), POINTS);
        assert_eq!(snap["rows"].as_array().unwrap().len(), ROWS);
        assert_eq!(snap["symbols"][0]["last"].as_f64(), Some((POINTS * 3 - 1) as f64));
    }
}
