//! Hive partitioning: `--partition-by` specs with Iceberg-like transforms, and path escaping.
//!
//! `symbol` (identity), `year(c)`, `month(c)`, `day(c)` (named `dt`, value `YYYY-MM-DD`), `hour(c)`, each
//! optionally renamed (`name=transform(c)`). Values are escaped the way Hive does (`FileUtils.escapePathName`), so
//! `MSCK REPAIR TABLE` and Glue map every path back to the original value.

use crate::schema::value::format_date;
use crate::schema::{ColumnType, RESERVED_WORDS, Row, Schema, Value, normalize_column_name};

/// What Hive writes for a null partition value.
pub const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    Identity,
    Year,
    Month,
    Day,
    Hour,
}

impl Transform {
    pub fn name(self) -> &'static str {
        match self {
            Transform::Identity => "identity",
            Transform::Year => "year",
            Transform::Month => "month",
            Transform::Day => "day",
            Transform::Hour => "hour",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionField {
    /// The key in the path (`year=2020`).
    pub name: String,
    /// Index of the source column in the schema.
    pub source: usize,
    pub transform: Transform,
}

/// A validated partition spec for one schema.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartitionSpec {
    pub fields: Vec<PartitionField>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error(
        "--partition-by '{0}': expected column, transform(column) or name=transform(column) with transform year, month, day or hour"
    )]
    Syntax(String),
    #[error("--partition-by '{spec}': no column '{column}' in schema '{schema}' (columns: {columns})")]
    UnknownColumn { spec: String, column: String, schema: String, columns: String },
    #[error("--partition-by '{spec}': {transform}() needs a date or timestamp column; '{column}' is {ty}")]
    NotTemporal { spec: String, transform: &'static str, column: String, ty: ColumnType },
    #[error("--partition-by '{spec}': hour() needs a timestamp; '{column}' is a date (use day())")]
    HourOfDate { spec: String, column: String },
    #[error(
        "--partition-by '{spec}': '{column}' is {ty}; partition by identity only on string, bigint, boolean or date columns (a timestamp or double makes a partition per value: use day()/hour())"
    )]
    BadIdentity { spec: String, column: String, ty: ColumnType },
    #[error("--partition-by: partition key '{name}' is not usable in Athena: {reason}")]
    BadName { name: String, reason: String },
    #[error("--partition-by: partition key '{name}' appears twice or clashes with a column in the files")]
    Duplicate { name: String },
}

impl PartitionSpec {
    /// Parses a comma-separated spec against `schema`.
    pub fn parse(text: &str, schema: &Schema) -> Result<PartitionSpec, SpecError> {
        let mut fields: Vec<PartitionField> = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (rename, expr) = match part.split_once('=') {
                Some((n, e)) => (Some(n.trim()), e.trim()),
                None => (None, part),
            };
            let (transform, column) = match expr.split_once('(') {
                Some((t, rest)) => {
                    let col = rest.strip_suffix(')').ok_or_else(|| SpecError::Syntax(part.into()))?.trim();
                    let t = match t.trim() {
                        "year" => Transform::Year,
                        "month" => Transform::Month,
                        "day" => Transform::Day,
                        "hour" => Transform::Hour,
                        "identity" => Transform::Identity,
                        _ => return Err(SpecError::Syntax(part.into())),
                    };
                    (t, col)
                }
                None => (Transform::Identity, expr),
            };
            let source = schema.index_of(column).ok_or_else(|| SpecError::UnknownColumn {
                spec: part.into(),
                column: column.into(),
                schema: schema.name.clone(),
                columns: schema.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", "),
            })?;
            let ty = schema.fields[source].ty;
            match transform {
                Transform::Identity
                    if !matches!(
                        ty,
                        ColumnType::String | ColumnType::Bigint | ColumnType::Boolean | ColumnType::Date
                    ) =>
                {
                    return Err(SpecError::BadIdentity { spec: part.into(), column: column.into(), ty });
                }
                Transform::Year | Transform::Month | Transform::Day | Transform::Hour if !ty.is_temporal() => {
                    return Err(SpecError::NotTemporal {
                        spec: part.into(),
                        transform: transform.name(),
                        column: column.into(),
                        ty,
                    });
                }
                Transform::Hour if ty == ColumnType::Date => {
                    return Err(SpecError::HourOfDate { spec: part.into(), column: column.into() });
                }
                _ => {}
            }
            let name = match (rename, transform) {
                (Some(n), _) => n.to_string(),
                (None, Transform::Identity) => column.to_string(),
                (None, Transform::Day) => "dt".into(),
                (None, t) => t.name().into(),
            };
            if normalize_column_name(&name) != name {
                return Err(SpecError::BadName { name, reason: "use lower-case snake_case".into() });
            }
            if RESERVED_WORDS.contains(&name.as_str()) {
                return Err(SpecError::BadName { name, reason: "it is a reserved word".into() });
            }
            let clashes_with_file_column = transform != Transform::Identity && schema.index_of(&name).is_some();
            if fields.iter().any(|f| f.name == name) || clashes_with_file_column || name.starts_with("kafka_") {
                return Err(SpecError::Duplicate { name });
            }
            fields.push(PartitionField { name, source, transform });
        }
        Ok(PartitionSpec { fields })
    }

    /// Checks a spec's syntax without a schema (transform names, brackets, key names), so that a typo stops the
    /// command before it connects anywhere; `parse` checks the columns once the schema is known.
    pub fn check_syntax(text: &str) -> Result<(), SpecError> {
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (rename, expr) = match part.split_once('=') {
                Some((n, e)) => (Some(n.trim()), e.trim()),
                None => (None, part),
            };
            let column = match expr.split_once('(') {
                Some((t, rest)) => {
                    if !matches!(t.trim(), "year" | "month" | "day" | "hour" | "identity") {
                        return Err(SpecError::Syntax(part.into()));
                    }
                    rest.strip_suffix(')').ok_or_else(|| SpecError::Syntax(part.into()))?.trim()
                }
                None => expr,
            };
            if column.is_empty() || column.contains(['(', ')', ' ']) {
                return Err(SpecError::Syntax(part.into()));
            }
            if let Some(n) = rename
                && normalize_column_name(n) != n
            {
                return Err(SpecError::BadName { name: n.into(), reason: "use lower-case snake_case".into() });
            }
        }
        Ok(())
    }

    /// Schema columns that live in the path, not in the files (identity partitions).
    pub fn is_path_column(&self, schema_index: usize) -> bool {
        self.fields.iter().any(|f| f.transform == Transform::Identity && f.source == schema_index)
    }

    /// The partition value of `field` for `row`, unescaped.
    pub fn value(field: &PartitionField, row: &Row) -> Option<String> {
        let v = &row[field.source];
        match field.transform {
            Transform::Identity => match v {
                Value::Null => None,
                Value::Str(s) => Some(s.clone()),
                Value::Int(i) => Some(i.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                Value::Date(d) => Some(format_date(*d)),
                Value::Float(f) => Some(f.to_string()),
                Value::Timestamp(ms) => Some(ms.to_string()),
            },
            t => {
                let ms = v.as_epoch_millis()?;
                let dt = chrono::DateTime::from_timestamp_millis(ms)?;
                Some(match t {
                    Transform::Year => dt.format("%Y").to_string(),
                    Transform::Month => dt.format("%Y-%m").to_string(),
                    Transform::Day => dt.format("%Y-%m-%d").to_string(),
                    _ => dt.format("%Y-%m-%d-%H").to_string(),
                })
            }
        }
    }

    /// Writes into `buf` a compact key of the row's partition: rows with equal keys have equal hive paths. No
    /// formatting and, once `buf` has grown, no allocation: the sink computes it for every row and formats the
    /// path only for a new key (formatting every row's path was a few percent of the sink's CPU).
    pub fn write_key(&self, row: &Row, buf: &mut Vec<u8>) {
        use chrono::{Datelike, Timelike};
        buf.clear();
        for f in &self.fields {
            let v = &row[f.source];
            let (tag, n): (u8, i64) = match f.transform {
                Transform::Identity => match v {
                    Value::Null => (0, 0),
                    Value::Str(s) => {
                        // 0xFF never occurs in UTF-8: it ends the string unambiguously.
                        buf.push(1);
                        buf.extend_from_slice(s.as_bytes());
                        buf.push(0xFF);
                        continue;
                    }
                    Value::Int(i) => (2, *i),
                    Value::Bool(b) => (3, i64::from(*b)),
                    Value::Date(d) => (4, i64::from(*d)),
                    Value::Float(x) => (5, x.to_bits() as i64),
                    Value::Timestamp(ms) => (6, *ms),
                },
                t => match v.as_epoch_millis().and_then(chrono::DateTime::from_timestamp_millis) {
                    None => (0, 0),
                    Some(dt) => match t {
                        Transform::Year => (7, i64::from(dt.year())),
                        Transform::Month => (8, i64::from(dt.year()) * 12 + i64::from(dt.month0())),
                        Transform::Day => (9, i64::from(dt.num_days_from_ce())),
                        _ => (10, i64::from(dt.num_days_from_ce()) * 24 + i64::from(dt.hour())),
                    },
                },
            };
            buf.push(tag);
            buf.extend_from_slice(&n.to_le_bytes());
        }
    }

    /// `year=2020/symbol=^GSPC` (empty for an unpartitioned table).
    pub fn hive_path(&self, row: &Row) -> String {
        let mut out = String::new();
        for f in &self.fields {
            if !out.is_empty() {
                out.push('/');
            }
            out.push_str(&f.name);
            out.push('=');
            match Self::value(f, row) {
                Some(v) if !v.is_empty() => out.push_str(&escape_hive(&v)),
                _ => out.push_str(NULL_PARTITION),
            }
        }
        out
    }

    pub fn describe(&self, schema: &Schema) -> String {
        self.fields
            .iter()
            .map(|f| match f.transform {
                Transform::Identity => f.name.clone(),
                t => format!("{}={}({})", f.name, t.name(), schema.fields[f.source].name),
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Characters escaped in partition values: only those a path segment cannot hold as such. Control characters and
/// DEL, `/` (a separator), `\\`, `%` (so that decoding is exact) and `=` (the key/value separator).
///
/// Everything else is written literally, as AWS's own writer does (aws-sdk-pandas builds partition paths as
/// `f"{name}={value}"`), because Athena partition projection substitutes values into `storage.location.template`
/// as they are: a projected `^GSPC` is looked up under `symbol=^GSPC/`. Hive's fuller escaping (`%5E` for `^`)
/// would hide such partitions from projection. What is escaped is still Hive's `%XX` form, so `MSCK REPAIR
/// TABLE`, Glue and DuckDB decode every path back to the exact value (decoding a literal value is the identity).
fn needs_escape(c: char) -> bool {
    matches!(c, '\u{00}'..='\u{1F}' | '\u{7F}' | '/' | '\\' | '%' | '=')
}

/// Does this value survive projection's literal substitution (nothing to escape)?
pub fn is_literal(value: &str) -> bool {
    !value.chars().any(needs_escape)
}

/// Escapes a partition value for a path: `a/b` → `a%2Fb`; `^GSPC` stays `^GSPC`.
pub fn escape_hive(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if needs_escape(c) {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Hive's `unescapePathName`: `%XX` → the byte, anything else as is.
pub fn unescape_hive(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The key is a faithful stand-in for the path: equal keys ⇔ equal paths.
        #[test]
        fn equal_keys_iff_equal_paths(
            a in (0i64..4_000_000_000_000i64, "[A-Z^.]{0,3}"),
            b in (0i64..4_000_000_000_000i64, "[A-Z^.]{0,3}"),
            near in 0i64..90_000_000,
        ) {
            let schema = Schema::ticks();
            let b = if near % 2 == 0 { (a.0 + near, b.1) } else { b };
            for spec in ["year(ts)", "month(ts)", "day(ts),symbol", "hour(ts)", "symbol"] {
                let spec = PartitionSpec::parse(spec, &schema).unwrap();
                let row = |(ts, sym): &(i64, String)| {
                    let mut r = vec![Value::Null; schema.fields.len()];
                    r[0] = Value::Timestamp(*ts);
                    r[1] = if sym.is_empty() { Value::Null } else { Value::Str(sym.clone()) };
                    r
                };
                let (ra, rb) = (row(&a), row(&b));
                let (mut ka, mut kb) = (Vec::new(), Vec::new());
                spec.write_key(&ra, &mut ka);
                spec.write_key(&rb, &mut kb);
                prop_assert_eq!(ka == kb, spec.hive_path(&ra) == spec.hive_path(&rb));
            }
        }
    }

    fn row(sym: &str, day: i32) -> Row {
        let mut r = vec![Value::Str(sym.into()), Value::Date(day)];
        r.extend(std::iter::repeat_n(Value::Null, 7));
        r
    }

    #[test]
    fn specs_parse_and_make_paths() {
        let s = Schema::indices();
        let spec = PartitionSpec::parse("year(trade_date), symbol", &s).unwrap();
        assert_eq!(spec.hive_path(&row("^GSPC", 0)), "year=1970/symbol=^GSPC");
        assert!(spec.is_path_column(0) && !spec.is_path_column(1));
        let spec = PartitionSpec::parse("day(trade_date),m=month(trade_date)", &s).unwrap();
        assert_eq!(spec.hive_path(&row("X", 31)), "dt=1970-02-01/m=1970-02");
        assert_eq!(PartitionSpec::parse("symbol", &s).unwrap().hive_path(&row("BRK B", 0)), "symbol=BRK B");
        assert_eq!(
            PartitionSpec::parse("symbol", &s).unwrap().hive_path(&row("", 0)),
            "symbol=__HIVE_DEFAULT_PARTITION__"
        );
        let ticks = Schema::ticks();
        let spec = PartitionSpec::parse("day(ts),symbol,hour(ts)", &ticks).unwrap();
        let r = vec![Value::Timestamp(3_600_000 * 25), Value::Str("A/B".into()), Value::Null, Value::Null];
        assert_eq!(spec.hive_path(&r), "dt=1970-01-02/symbol=A%2FB/hour=1970-01-02-01");
    }

    #[test]
    fn specs_athena_cannot_take_are_refused() {
        let s = Schema::indices();
        assert!(matches!(PartitionSpec::parse("year(close)", &s), Err(SpecError::NotTemporal { .. })));
        assert!(matches!(PartitionSpec::parse("hour(trade_date)", &s), Err(SpecError::HourOfDate { .. })));
        assert!(matches!(PartitionSpec::parse("close", &s), Err(SpecError::BadIdentity { .. })));
        assert!(matches!(PartitionSpec::parse("nope", &s), Err(SpecError::UnknownColumn { .. })));
        assert!(matches!(PartitionSpec::parse("date=day(trade_date)", &s), Err(SpecError::BadName { .. })));
        assert!(matches!(PartitionSpec::parse("Year=year(trade_date)", &s), Err(SpecError::BadName { .. })));
        assert!(matches!(PartitionSpec::parse("open=year(trade_date)", &s), Err(SpecError::Duplicate { .. })));
        assert!(matches!(PartitionSpec::parse("symbol,symbol", &s), Err(SpecError::Duplicate { .. })));
        assert!(matches!(PartitionSpec::parse("year(trade_date", &s), Err(SpecError::Syntax(_))));
    }

    #[test]
    fn only_what_a_path_cannot_hold_is_escaped() {
        assert_eq!(escape_hive("^GSPC"), "^GSPC");
        assert_eq!(escape_hive("000001.SS"), "000001.SS");
        assert_eq!(escape_hive("a=b/c:d%"), "a%3Db%2Fc:d%25");
        assert_eq!(escape_hive("BRK B"), "BRK B");
        assert_eq!(escape_hive("Zürich"), "Zürich");
        assert_eq!(escape_hive("tab\there"), "tab%09here");
        assert!(is_literal("^GSPC") && is_literal("BRK B") && !is_literal("BRK/B"));
    }

    proptest! {
        #[test]
        fn escaping_round_trips(v in "\\PC{0,20}") {
            prop_assert_eq!(unescape_hive(&escape_hive(&v)), v.clone());
            prop_assert!(!escape_hive(&v).contains('/'));
        }
    }

    #[test]
    fn syntax_is_checked_without_a_schema() {
        for ok in ["year(trade_date)", "dt=day(ts),symbol", "m=month( t )", ""] {
            PartitionSpec::check_syntax(ok).unwrap();
        }
        for bad in ["yaer(trade_date)", "day(ts", "day()", "Dt=day(ts)", "a b"] {
            assert!(PartitionSpec::check_syntax(bad).is_err(), "{bad}");
        }
    }
}
