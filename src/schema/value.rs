//! Typed cell values and the text → value parsers shared by CSV input and JSON records.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use super::ColumnType;

/// One typed value. Dates and timestamps are stored the way Parquet stores them.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Days since 1970-01-01.
    Date(i32),
    /// Milliseconds since the epoch, UTC.
    Timestamp(i64),
}

impl Value {
    /// Event time in epoch milliseconds, for dates (midnight UTC) and timestamps.
    pub fn as_epoch_millis(&self) -> Option<i64> {
        match self {
            Value::Date(d) => Some(i64::from(*d) * 86_400_000),
            Value::Timestamp(ms) => Some(*ms),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Why a cell's text does not fit its column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct CellError {
    pub reason: String,
}

fn bad(text: &str, what: &str) -> CellError {
    let shown: String = text.chars().take(40).collect();
    CellError { reason: format!("'{shown}' is not {what}") }
}

/// Is this cell text a null? Empty cells and the spellings spreadsheets and pandas write.
pub fn is_null_text(text: &str) -> bool {
    matches!(text, "" | "null" | "NULL" | "NaN" | "nan" | "NA" | "N/A")
}

/// Parses one cell. `Ok(Value::Null)` for null spellings; the caller decides whether null is allowed.
pub fn parse_cell(text: &str, ty: ColumnType) -> Result<Value, CellError> {
    let text = text.trim();
    if is_null_text(text) {
        return Ok(Value::Null);
    }
    match ty {
        ColumnType::String => Ok(Value::Str(text.to_string())),
        ColumnType::Double => match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Value::Float(v)),
            _ => Err(bad(text, "a finite number")),
        },
        ColumnType::Bigint => parse_bigint(text).map(Value::Int),
        ColumnType::Date => parse_date(text).map(Value::Date),
        ColumnType::Timestamp => parse_timestamp(text).map(Value::Timestamp),
        ColumnType::Boolean => match text {
            "true" | "True" | "TRUE" | "1" => Ok(Value::Bool(true)),
            "false" | "False" | "FALSE" | "0" => Ok(Value::Bool(false)),
            _ => Err(bad(text, "a boolean (true/false)")),
        },
    }
}

/// Whole numbers, also written as floats with no fraction (`1234.0`, the way pandas writes volumes).
pub fn parse_bigint(text: &str) -> Result<i64, CellError> {
    if let Ok(v) = text.parse::<i64>() {
        return Ok(v);
    }
    match text.parse::<f64>() {
        // 2^63 is exactly representable; anything at or beyond it does not fit.
        Ok(v) if v.is_finite() && v.fract() == 0.0 && v.abs() < 9.223_372_036_854_776e18 => Ok(v as i64),
        Ok(v) if v.is_finite() && v.fract() != 0.0 => Err(bad(text, "a whole number")),
        _ => Err(bad(text, "a whole number (bigint)")),
    }
}

const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// `YYYY-MM-DD` to days since the epoch. Hand-parsed for the common shape (it is the hot path of the indices
/// preset), chrono for validation of the calendar.
pub fn parse_date(text: &str) -> Result<i32, CellError> {
    let b = text.as_bytes();
    let date = if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            b[r].iter().try_fold(0u32, |acc, c| c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0')))
        };
        match (num(0..4), num(5..7), num(8..10)) {
            (Some(y), Some(m), Some(d)) => NaiveDate::from_ymd_opt(y as i32, m, d),
            _ => None,
        }
    } else {
        NaiveDate::parse_from_str(text, "%Y/%m/%d").ok()
    };
    use chrono::Datelike;
    date.filter(|d| (0..=9999).contains(&d.year()))
        .map(|d| d.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE)
        .ok_or_else(|| bad(text, "a date (YYYY-MM-DD) within the years 0000-9999"))
}

/// Earliest and latest epoch milliseconds accepted: years 0000 to 9999, what ISO-8601 writes with four digits and
/// what Athena and Parquet readers expect. Outside it, replay would send `+19574-...`, which nothing reads back
/// (found by `just fuzz`).
pub const TIMESTAMP_RANGE: std::ops::RangeInclusive<i64> = -62_167_219_200_000..=253_402_300_799_999;

/// Checks an epoch-milliseconds timestamp against `TIMESTAMP_RANGE`.
pub fn timestamp_in_range(ms: i64) -> Result<i64, String> {
    if TIMESTAMP_RANGE.contains(&ms) {
        Ok(ms)
    } else {
        Err(format!("timestamp {ms} ms is outside the years 0000-9999"))
    }
}

/// ISO-8601 / RFC 3339 (with or without offset; no offset means UTC, with `T` or a space) or epoch milliseconds,
/// within the years 0000-9999.
pub fn parse_timestamp(text: &str) -> Result<i64, CellError> {
    let ms = parse_timestamp_any(text)?;
    timestamp_in_range(ms).map_err(|_| bad(text, "a timestamp within the years 0000-9999"))
}

fn parse_timestamp_any(text: &str) -> Result<i64, CellError> {
    if !text.is_empty() && text.bytes().all(|c| c.is_ascii_digit()) {
        return text.parse::<i64>().map_err(|_| bad(text, "epoch milliseconds"));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, fmt) {
            return Ok(t.and_utc().timestamp_millis());
        }
    }
    if let Ok(t) = DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z") {
        return Ok(t.timestamp_millis());
    }
    Err(bad(text, "a timestamp (ISO-8601 like 2024-01-02T09:30:00.123Z, or epoch milliseconds)"))
}

/// Days since the epoch → `YYYY-MM-DD`.
pub fn format_date(days: i32) -> String {
    let mut s = String::with_capacity(10);
    push_date(days, &mut s);
    s
}

/// Appends `YYYY-MM-DD` (hand-formatted: chrono's strftime was a visible share of replay's CPU).
pub fn push_date(days: i32, out: &mut String) {
    use chrono::Datelike;
    match NaiveDate::from_num_days_from_ce_opt(days + UNIX_EPOCH_DAYS_FROM_CE) {
        Some(d) if (0..=9999).contains(&d.year()) => {
            let (y, m, dd) = (d.year() as u32, d.month(), d.day());
            for digit in [y / 1000, y / 100 % 10, y / 10 % 10, y % 10] {
                out.push(char::from(b'0' + digit as u8));
            }
            out.push('-');
            out.push(char::from(b'0' + (m / 10) as u8));
            out.push(char::from(b'0' + (m % 10) as u8));
            out.push('-');
            out.push(char::from(b'0' + (dd / 10) as u8));
            out.push(char::from(b'0' + (dd % 10) as u8));
        }
        Some(d) => out.push_str(&d.format("%Y-%m-%d").to_string()),
        None => out.push_str(&days.to_string()),
    }
}

/// Epoch ms → ISO-8601 UTC with milliseconds (`2024-01-02T09:30:00.123Z`).
pub fn format_timestamp(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn dates_and_timestamps_stay_within_four_digit_years() {
        // Found by `just fuzz`: epoch milliseconds in the year 19574 were sent as "+19574-..." and not read back.
        assert!(parse_cell("555555555555554", ColumnType::Timestamp).unwrap_err().reason.contains("0000-9999"));
        assert_eq!(parse_cell("253402300799999", ColumnType::Timestamp), Ok(Value::Timestamp(253_402_300_799_999)));
        assert!(parse_cell("19574/01/02", ColumnType::Date).is_err());
        assert!(timestamp_in_range(i64::MAX).is_err());
    }

    #[test]
    fn volumes_written_as_floats_are_bigints() {
        assert_eq!(parse_cell("0.0", ColumnType::Bigint), Ok(Value::Int(0)));
        assert_eq!(parse_cell("123456.0", ColumnType::Bigint), Ok(Value::Int(123_456)));
        assert!(parse_cell("1.5", ColumnType::Bigint).unwrap_err().reason.contains("whole number"));
        assert!(parse_cell("1e300", ColumnType::Bigint).is_err());
    }

    #[test]
    fn nulls_and_bad_numbers() {
        assert_eq!(parse_cell("", ColumnType::Double), Ok(Value::Null));
        assert_eq!(parse_cell("null", ColumnType::Date), Ok(Value::Null));
        assert!(parse_cell("abc", ColumnType::Double).is_err());
        assert!(parse_cell("inf", ColumnType::Double).is_err());
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-01"), Ok(0));
        assert_eq!(parse_date("1965-01-05"), Ok(-1822));
        assert_eq!(parse_date("1986-12-31").map(format_date), Ok("1986-12-31".into()));
        assert!(parse_date("2023-02-30").is_err());
        assert!(parse_date("20x3-02-03").is_err());
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:01.5Z"), Ok(1500));
        assert_eq!(parse_timestamp("1970-01-01 00:00:02"), Ok(2000));
        assert_eq!(parse_timestamp("1970-01-01T01:00:00+01:00"), Ok(0));
        assert_eq!(parse_timestamp("1700000000123"), Ok(1_700_000_000_123));
        assert_eq!(format_timestamp(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert!(parse_timestamp("yesterday").is_err());
    }

    proptest! {
        #[test]
        fn date_text_round_trips(days in -40_000i32..60_000) {
            prop_assert_eq!(parse_date(&format_date(days)), Ok(days));
        }

        #[test]
        fn timestamp_text_round_trips(ms in -2_000_000_000_000i64..4_000_000_000_000) {
            prop_assert_eq!(parse_timestamp(&format_timestamp(ms)), Ok(ms));
        }

        #[test]
        fn double_text_round_trips(v in proptest::num::f64::NORMAL) {
            prop_assert_eq!(parse_cell(&v.to_string(), ColumnType::Double), Ok(Value::Float(v)));
        }
    }
}
