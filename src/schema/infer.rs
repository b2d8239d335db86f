//! Schema inference from a CSV header and a sample of rows, and the column-name rules behind it.

use super::value::{is_null_text, parse_date, parse_timestamp};
use super::{ColumnType, Field, Schema};

/// Athena (Hive DDL and Trino DML) reserved words that a column could plausibly be named after.
/// Source: Athena docs, "Reserved keywords" (DDL and DML lists), narrowed to names that occur in data.
pub const RESERVED_WORDS: &[&str] = &[
    "all",
    "alter",
    "and",
    "array",
    "as",
    "between",
    "bigint",
    "binary",
    "boolean",
    "both",
    "by",
    "case",
    "cast",
    "char",
    "column",
    "commit",
    "constraint",
    "create",
    "cross",
    "cube",
    "current",
    "date",
    "decimal",
    "delete",
    "describe",
    "distinct",
    "double",
    "drop",
    "else",
    "end",
    "exchange",
    "exists",
    "extract",
    "false",
    "fetch",
    "float",
    "for",
    "from",
    "full",
    "function",
    "grant",
    "group",
    "grouping",
    "having",
    "if",
    "in",
    "insert",
    "int",
    "integer",
    "interval",
    "into",
    "is",
    "join",
    "left",
    "like",
    "local",
    "map",
    "natural",
    "none",
    "not",
    "null",
    "of",
    "on",
    "or",
    "order",
    "out",
    "outer",
    "partition",
    "percent",
    "range",
    "reduce",
    "rows",
    "right",
    "rollup",
    "select",
    "set",
    "smallint",
    "table",
    "then",
    "time",
    "timestamp",
    "to",
    "true",
    "union",
    "update",
    "user",
    "using",
    "values",
    "when",
    "where",
    "window",
    "with",
];

/// CSV header → lower-case snake_case (`Adj Close` → `adj_close`, `CloseUSD` → `close_usd`).
pub fn normalize_column_name(raw: &str) -> String {
    let chars: Vec<char> = raw.trim().chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_alphanumeric() {
            // A new word starts at an upper-case letter that follows a lower-case letter or digit, or that
            // precedes a lower-case letter after upper-case ones (`CloseUSD` → close_usd, `USDClose` → usd_close).
            if c.is_ascii_uppercase() && i > 0 {
                let prev = chars[i - 1];
                let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
                if prev.is_ascii_lowercase() || prev.is_ascii_digit() || (prev.is_ascii_uppercase() && next_lower) {
                    out.push('_');
                }
            }
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    let out = out.trim_matches('_').replace("__", "_");
    match out.chars().next() {
        None => "column".into(),
        Some(c) if c.is_ascii_digit() => format!("c_{out}"),
        _ => out,
    }
}

/// A name for a column whose natural name is a reserved word.
pub fn unreserve(name: &str) -> String {
    match name {
        "date" => "trade_date".into(),
        "timestamp" | "time" => "ts".into(),
        other => format!("{other}_value"),
    }
}

/// Knobs for inference.
#[derive(Debug, Clone)]
pub struct InferOptions {
    pub name: String,
}

impl Default for InferOptions {
    fn default() -> Self {
        InferOptions { name: "inferred".into() }
    }
}

const KEY_NAMES: &[&str] = &["symbol", "ticker", "index", "instrument", "security", "isin", "code", "name"];

/// Infers a schema from the header and sample rows (already split into cells).
///
/// Each column gets the narrowest type every non-null sample cell parses as, trying bigint, double, date,
/// timestamp, boolean, then string. The key is the first string column named like a symbol (or the first string
/// column); the event time is the first date or timestamp column.
pub fn infer_schema(header: &[String], rows: &[Vec<String>], opts: &InferOptions) -> Schema {
    let mut fields: Vec<Field> = Vec::with_capacity(header.len());
    for (i, raw) in header.iter().enumerate() {
        let cells = rows.iter().filter_map(|r| r.get(i)).map(|c| c.trim()).filter(|c| !is_null_text(c));
        let ty = infer_type(cells);
        let mut name = normalize_column_name(raw);
        if super::RESERVED_WORDS.contains(&name.as_str()) {
            name = unreserve(&name);
        }
        while fields.iter().any(|f| f.name == name) {
            name.push('_');
            name.push('2');
        }
        fields.push(Field::new(&name, raw.trim(), ty));
    }
    let key = fields
        .iter()
        .filter(|f| f.ty == ColumnType::String)
        .find(|f| KEY_NAMES.contains(&f.source_name().to_ascii_lowercase().as_str()))
        .or_else(|| fields.iter().find(|f| f.ty == ColumnType::String))
        .map(|f| f.name.clone());
    let event_time = fields.iter().find(|f| f.ty.is_temporal()).map(|f| f.name.clone());
    for f in &mut fields {
        f.required = Some(&f.name) == key.as_ref() || Some(&f.name) == event_time.as_ref();
    }
    Schema { name: opts.name.clone(), key, event_time, fields }
}

fn infer_type<'a>(cells: impl Iterator<Item = &'a str> + Clone) -> ColumnType {
    let all = |p: &dyn Fn(&str) -> bool| {
        let mut any = false;
        for c in cells.clone() {
            any = true;
            if !p(c) {
                return false;
            }
        }
        any
    };
    if all(&|c| c.parse::<i64>().is_ok()) {
        ColumnType::Bigint
    } else if all(&|c| c.parse::<f64>().is_ok_and(f64::is_finite)) {
        // A column of whole floats (`0.0`, `1200.0`) is still a double here: inference can't know the writer
        // meant a count. Presets and schema files say `bigint` where that is the truth (the indices volume).
        ColumnType::Double
    } else if all(&|c| parse_date(c).is_ok()) {
        ColumnType::Date
    } else if all(&|c| parse_timestamp(c).is_ok()) {
        ColumnType::Timestamp
    } else if all(&|c| matches!(c.to_ascii_lowercase().as_str(), "true" | "false")) {
        ColumnType::Boolean
    } else {
        ColumnType::String
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_snake_case() {
        assert_eq!(normalize_column_name("Adj Close"), "adj_close");
        assert_eq!(normalize_column_name("CloseUSD"), "close_usd");
        assert_eq!(normalize_column_name("USDClose"), "usd_close");
        assert_eq!(normalize_column_name("  Last Price (USD) "), "last_price_usd");
        assert_eq!(normalize_column_name("bid-size"), "bid_size");
        assert_eq!(normalize_column_name("1st"), "c_1st");
        assert_eq!(normalize_column_name("%%"), "column");
    }

    #[test]
    fn infers_types_key_and_event_time() {
        let header: Vec<String> = ["Ticker", "Date", "Last", "Qty", "When", "Flag", "Note"].map(String::from).to_vec();
        let rows = vec![
            ["AAPL", "2024-01-02", "190.5", "100", "2024-01-02T09:30:00Z", "true", "x"].map(String::from).to_vec(),
            ["MSFT", "2024-01-03", "", "7", "2024-01-02 09:31:00", "false", "3"].map(String::from).to_vec(),
        ];
        let s = infer_schema(&header, &rows, &InferOptions::default());
        let types: Vec<_> = s.fields.iter().map(|f| (f.name.as_str(), f.ty)).collect();
        assert_eq!(
            types,
            vec![
                ("ticker", ColumnType::String),
                ("trade_date", ColumnType::Date),
                ("last", ColumnType::Double),
                ("qty", ColumnType::Bigint),
                ("when_value", ColumnType::Timestamp),
                ("flag", ColumnType::Boolean),
                ("note", ColumnType::String),
            ]
        );
        assert_eq!(s.key.as_deref(), Some("ticker"));
        assert_eq!(s.event_time.as_deref(), Some("trade_date"));
        s.validate().unwrap();
    }
}
