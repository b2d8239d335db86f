//! The table a lake holds: `_ticklake/table.toml`, written at the lake's first commit and read by every command.
//!
//! One Athena `LOCATION` is one table, so the spec is per lake prefix, not per topic: the schema with its versions
//! (columns only ever added, each version with the record that brought it), the partition spec, the sort order,
//! the row-group size and the topics that write into it. The decisions made against it live here, as pure
//! functions: whether flags conflict with it, whether a topic or a `--schema` fits it, what a new version adds.

use serde::{Deserialize, Serialize};

use super::state::STATE_PREFIX;
use crate::schema::{ColumnType, Field, Schema};

/// Where the spec lives (hidden from Athena: the prefix starts with `_`).
pub fn table_key() -> String {
    format!("{STATE_PREFIX}/table.toml")
}

pub const FORMAT_VERSION: u32 = 1;

/// One schema version: the columns it added and where they were first seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaVersion {
    pub version: u32,
    /// Columns this version added (every column for version 1).
    pub added: Vec<String>,
    /// What brought the change: `first commit`, `new field in a record`, `--schema`, `new topic`.
    pub reason: String,
    pub topic: String,
    /// The Kafka partition and offset of the record that carried the new field, when a record did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_partition: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_offset: Option<i64>,
    /// When the version was made (RFC 3339, UTC).
    pub at: String,
    /// Columns of this version whose types were inferred from records (not given by a preset or `--schema`), and
    /// from how many: a type learnt from a handful of records deserves a look (`lake stats` shows it, `lake
    /// retype` fixes it while no data file depends on it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inferred: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inferred_from_records: Option<usize>,
}

/// The stored table spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSpec {
    pub format_version: u32,
    /// Topics whose records land in this lake.
    pub topics: Vec<String>,
    /// `--partition-by` in canonical form (`PartitionSpec::describe`), empty for none.
    pub partition_by: String,
    pub sort_by: Vec<String>,
    pub row_group_rows: usize,
    pub versions: Vec<SchemaVersion>,
    /// The newest schema: every column any version added, in the order they were added.
    pub schema: Schema,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error(
        "{flag} '{given}' conflicts with the lake's stored table spec ({flag} '{stored}', in _ticklake/table.toml): the files already written use it. Drop {flag} to keep the lake's layout, or write to a new --to prefix"
    )]
    Layout { flag: &'static str, given: String, stored: String },
    #[error(
        "column '{column}' is {stored} in the lake's table (in _ticklake/table.toml) but {given} in {what}: one Athena table cannot hold both. Fix the records or the schema, or write to a new --to prefix"
    )]
    TypeConflict { column: String, stored: String, given: String, what: String },
    #[error(
        "{what} has no column '{column}', which the lake's table needs (its {role}; in _ticklake/table.toml): topic '{topic}' is not the same table as {tables}. Write it to its own --to prefix (one prefix is one Athena table)"
    )]
    NotSameTable { column: String, role: &'static str, what: String, topic: String, tables: String },
    #[error(
        "--schema '{given}' drops column '{column}' that the lake's table has (in _ticklake/table.toml); a schema may only add columns. Omit --schema to use the stored one"
    )]
    Dropped { given: String, column: String },
}

impl TableSpec {
    pub fn new(topic: &str, schema: Schema, partition_by: String, sort_by: Vec<String>, row_group_rows: usize) -> Self {
        TableSpec {
            format_version: FORMAT_VERSION,
            topics: vec![topic.into()],
            partition_by,
            sort_by,
            row_group_rows,
            versions: vec![SchemaVersion {
                version: 1,
                added: schema.fields.iter().map(|f| f.name.clone()).collect(),
                reason: "first commit".into(),
                topic: topic.into(),
                kafka_partition: None,
                kafka_offset: None,
                at: now(),
                inferred: vec![],
                inferred_from_records: None,
            }],
            schema,
        }
    }

    pub fn version(&self) -> u32 {
        self.versions.last().map_or(0, |v| v.version)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a table spec always serializes")
    }

    /// Flags given on a restart must match what the files were written with; a flag left out takes the stored value.
    pub fn check_layout(&self, partition_by: Option<&str>, sort_by: Option<&[String]>) -> Result<(), TableError> {
        if let Some(p) = partition_by
            && p != self.partition_by
        {
            return Err(TableError::Layout {
                flag: "--partition-by",
                given: p.into(),
                stored: self.partition_by.clone(),
            });
        }
        if let Some(s) = sort_by
            && s != self.sort_by.as_slice()
        {
            return Err(TableError::Layout { flag: "--sort-by", given: s.join(","), stored: self.sort_by.join(",") });
        }
        Ok(())
    }

    /// The columns `candidate` (a new topic's schema, or a `--schema`) adds to the table, or why it does not fit.
    ///
    /// The rule (README, "Schema changes"): every column both have is of the same type; a `--schema` for a topic
    /// the table holds keeps every stored column (a schema may only grow); a new topic carries the table's key and
    /// event-time columns (its rows must partition and sort like the others). Extra columns are an evolution.
    pub fn admit(&self, topic: &str, candidate: &Schema, what: &str) -> Result<Vec<Field>, TableError> {
        for f in &candidate.fields {
            if let Some(s) = self.schema.field(&f.name)
                && s.ty != f.ty
            {
                return Err(TableError::TypeConflict {
                    column: f.name.clone(),
                    stored: s.ty.to_string(),
                    given: f.ty.to_string(),
                    what: what.into(),
                });
            }
        }
        if self.topics.iter().any(|t| t == topic) {
            if let Some(missing) = self.schema.fields.iter().find(|f| candidate.field(&f.name).is_none()) {
                return Err(TableError::Dropped { given: candidate.name.clone(), column: missing.name.clone() });
            }
        } else {
            for (role, col) in [("key", &self.schema.key), ("event-time column", &self.schema.event_time)] {
                if let Some(c) = col
                    && candidate.field(c).is_none()
                {
                    return Err(TableError::NotSameTable {
                        column: c.clone(),
                        role,
                        what: what.into(),
                        topic: topic.into(),
                        tables: self.topics.join(", "),
                    });
                }
            }
        }
        Ok(candidate.fields.iter().filter(|f| self.schema.field(&f.name).is_none()).cloned().collect())
    }

    /// Adds `fields` (nullable) as a new schema version; returns it.
    pub fn evolve(&mut self, fields: Vec<Field>, reason: &str, topic: &str, at: Option<(i32, i64)>) -> u32 {
        let version = self.version() + 1;
        let added = fields.iter().map(|f| f.name.clone()).collect();
        for mut f in fields {
            f.required = false;
            self.schema.fields.push(f);
        }
        self.versions.push(SchemaVersion {
            version,
            added,
            reason: reason.into(),
            topic: topic.into(),
            kafka_partition: at.map(|a| a.0),
            kafka_offset: at.map(|a| a.1),
            at: now(),
            inferred: vec![],
            inferred_from_records: None,
        });
        version
    }

    /// Notes that the newest version's `columns` were typed by inference from `records` records.
    pub fn mark_inferred(&mut self, columns: &[String], records: usize) {
        let Some(v) = self.versions.last_mut() else { return };
        let columns: Vec<String> = columns.iter().filter(|c| v.added.contains(c)).cloned().collect();
        if !columns.is_empty() {
            v.inferred = columns;
            v.inferred_from_records = Some(records);
        }
    }

    /// Changes the stored type of `column` (the repair of a column inferred wrongly). The caller has checked that no
    /// data file holds the column; here: it exists, plays no role (key, event time, partition source), and the type
    /// differs. Recorded as a new version, so the change is visible in `lake stats`.
    pub fn retype(&mut self, column: &str, ty: ColumnType) -> Result<u32, String> {
        let Some(f) = self.schema.field(column) else {
            let names: Vec<&str> = self.schema.fields.iter().map(|f| f.name.as_str()).collect();
            return Err(format!("the lake's table has no column '{column}' (it has {})", names.join(", ")));
        };
        if f.ty == ty {
            return Err(format!("column '{column}' is {ty} already"));
        }
        let role = if self.schema.key.as_deref() == Some(column) {
            Some("key")
        } else if self.schema.event_time.as_deref() == Some(column) {
            Some("event-time column")
        } else if self.partition_by.contains(&format!("({column})"))
            || self.partition_by.split(',').any(|p| p == column)
        {
            Some("partition source")
        } else {
            None
        };
        if let Some(role) = role {
            return Err(format!("column '{column}' is the table's {role}: its type cannot change in place"));
        }
        let from = f.ty;
        let version = self.version() + 1;
        for f in &mut self.schema.fields {
            if f.name == column {
                f.ty = ty;
            }
        }
        self.versions.push(SchemaVersion {
            version,
            added: vec![],
            reason: format!("retyped {column} from {from} to {ty} (lake retype)"),
            topic: self.topics.first().cloned().unwrap_or_default(),
            kafka_partition: None,
            kafka_offset: None,
            at: now(),
            inferred: vec![],
            inferred_from_records: None,
        });
        Ok(version)
    }

    /// The columns added after schema version `version`, in order (for `ALTER TABLE ... ADD COLUMNS`).
    pub fn added_since(&self, version: u32) -> Vec<&Field> {
        self.versions
            .iter()
            .filter(|v| v.version > version)
            .flat_map(|v| v.added.iter())
            .filter_map(|name| self.schema.field(name))
            .collect()
    }

    /// A short multi-line description for `lake stats`.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "table: schema '{}' v{}, {} columns; topics {}; partition by {}; sort by {}; row groups of {} rows\n",
            self.schema.name,
            self.version(),
            self.schema.fields.len(),
            self.topics.join(", "),
            if self.partition_by.is_empty() { "(none)" } else { &self.partition_by },
            if self.sort_by.is_empty() { "(none)".to_string() } else { self.sort_by.join(",") },
            self.row_group_rows,
        );
        for v in &self.versions {
            let from = match (v.kafka_partition, v.kafka_offset) {
                (Some(p), Some(o)) => format!(" at {}/kafka partition {p}/offset {o}", v.topic),
                _ => format!(" ({})", v.topic),
            };
            out.push_str(&format!("  v{} {}{from}, {}: {}\n", v.version, v.reason, v.at, v.added.join(", ")));
            if let Some(n) = v.inferred_from_records {
                let typed: Vec<String> = v
                    .inferred
                    .iter()
                    .map(|c| format!("{c} {}", self.schema.field(c).map_or("?", |f| f.ty.athena_name())))
                    .collect();
                out.push_str(&format!(
                    "    typed by inference from {n} record(s): {}{}\n",
                    typed.join(", "),
                    if n < 100 {
                        " (few records: check them; `ticklake lake retype` fixes a wrong one while no data file holds it)"
                    } else {
                        ""
                    }
                ));
            }
        }
        out
    }
}

/// Default partitioning and row order for a schema, chosen with the scan benchmark (see README).
pub fn default_layout(schema: &Schema) -> (String, Vec<String>) {
    match schema.name.as_str() {
        "indices" => ("year(trade_date)".into(), vec!["trade_date".into(), "symbol".into()]),
        "ticks" => ("day(ts),symbol".into(), vec!["ts".into()]),
        _ => match (schema.event_time.as_deref(), schema.field(schema.event_time.as_deref().unwrap_or(""))) {
            (Some(t), Some(f)) if f.ty == ColumnType::Date => (format!("year({t})"), vec![t.into()]),
            (Some(t), Some(_)) => (format!("day({t})"), vec![t.into()]),
            _ => (String::new(), vec![]),
        },
    }
}

/// The default layout for a new lake whose first records are `sample`: a feed stamped with the time it is sent
/// (`replay --sample --stamp-now`, or a live source) gets `day(...)` of its event time instead of a year layout,
/// or every day of a year lands in one folder of small files. Live means every sampled event time is on `today`
/// or the day before (days since 1970). The layout is fixed by the lake's first commit: this is the moment to choose.
pub fn default_layout_for(schema: &Schema, sample_days: &[i32], today: i32) -> (String, Vec<String>) {
    let (spec, sort) = default_layout(schema);
    let live = !sample_days.is_empty() && sample_days.iter().all(|d| (today - 1..=today).contains(d));
    match schema.event_time.as_deref() {
        Some(t) if live && spec.starts_with("year(") => (format!("day({t})"), sort),
        _ => (spec, sort),
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> TableSpec {
        TableSpec::new("t", Schema::indices(), "year=year(trade_date)".into(), vec!["trade_date".into()], 4096)
    }

    #[test]
    fn round_trips_as_toml_and_versions_grow() {
        let mut t = table();
        let v = t.evolve(vec![Field::new("exchange_value", "Exchange", ColumnType::String)], "r", "t", Some((2, 40)));
        assert_eq!((v, t.version()), (2, 2));
        let back: TableSpec = toml::from_str(&t.to_toml()).unwrap();
        assert_eq!(back, t);
        let added: Vec<_> = t.added_since(1).iter().map(|f| f.name.clone()).collect();
        assert_eq!(added, ["exchange_value"]);
        assert_eq!(t.added_since(0).len(), 10);
        assert!(t.added_since(2).is_empty());
        assert!(t.describe().contains("v2 r at t/kafka partition 2/offset 40"), "{}", t.describe());
    }

    #[test]
    fn inferred_columns_are_shown_and_a_retype_is_a_version() {
        let mut t = table();
        t.evolve(vec![Field::new("venue", "venue", ColumnType::Double)], "new field in a record", "t", Some((0, 3)));
        t.mark_inferred(&["venue".into(), "not_added_here".into()], 1);
        assert_eq!(t.versions[1].inferred, ["venue"]);
        assert!(
            t.describe().contains("typed by inference from 1 record(s): venue double (few records"),
            "{}",
            t.describe()
        );
        assert_eq!(t.retype("venue", ColumnType::String), Ok(3));
        assert_eq!(t.schema.field("venue").unwrap().ty, ColumnType::String);
        assert!(t.describe().contains("retyped venue from double to string"), "{}", t.describe());
        assert!(t.retype("venue", ColumnType::String).unwrap_err().contains("already"));
        assert!(t.retype("symbol", ColumnType::Bigint).unwrap_err().contains("key"));
        assert!(t.retype("trade_date", ColumnType::String).unwrap_err().contains("event-time"));
        assert!(t.retype("nope", ColumnType::String).unwrap_err().contains("has no column 'nope'"));
        let back: TableSpec = toml::from_str(&t.to_toml()).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn flags_must_match_the_stored_layout() {
        let t = table();
        t.check_layout(None, None).unwrap();
        t.check_layout(Some("year=year(trade_date)"), Some(&["trade_date".into()])).unwrap();
        let e = t.check_layout(Some("dt=day(trade_date)"), None).unwrap_err().to_string();
        assert!(e.contains("'year=year(trade_date)'") && e.contains("Drop --partition-by"), "{e}");
        let e = t.check_layout(None, Some(&["symbol".into()])).unwrap_err().to_string();
        assert!(e.contains("--sort-by 'symbol'"), "{e}");
    }

    #[test]
    fn a_schema_may_grow_never_shrink_or_change_types() {
        let t = table();
        let mut more = Schema::indices();
        more.fields.push(Field::new("venue", "venue", ColumnType::String));
        assert_eq!(t.admit("t", &more, "--schema").unwrap().len(), 1);
        assert!(t.admit("t", &Schema::indices(), "--schema").unwrap().is_empty());
        let mut fewer = Schema::indices();
        fewer.fields.pop();
        assert!(matches!(t.admit("t", &fewer, "--schema"), Err(TableError::Dropped { .. })));
        let mut other = Schema::indices();
        other.fields[2].ty = ColumnType::String;
        assert!(matches!(t.admit("t", &other, "--schema"), Err(TableError::TypeConflict { .. })));
    }

    #[test]
    fn a_second_topic_joins_only_the_same_table() {
        let t = table();
        assert!(t.admit("u", &Schema::indices(), "records of topic 'u'").unwrap().is_empty());
        let mut fewer = Schema::indices();
        fewer.fields.truncate(6);
        assert!(t.admit("u", &fewer, "records of topic 'u'").is_ok(), "missing optional columns read as NULL");
        let e = t.admit("u", &Schema::ticks(), "records of topic 'u'").unwrap_err();
        assert!(matches!(e, TableError::TypeConflict { .. } | TableError::NotSameTable { .. }), "{e}");
    }

    #[test]
    fn a_live_feed_is_partitioned_by_day() {
        let s = Schema::indices();
        let today = 20_000;
        assert_eq!(default_layout_for(&s, &[today, today - 1], today).0, "day(trade_date)");
        assert_eq!(default_layout_for(&s, &[today, 100], today).0, "year(trade_date)", "history stays yearly");
        assert_eq!(default_layout_for(&s, &[], today).0, "year(trade_date)");
        assert_eq!(default_layout_for(&Schema::ticks(), &[today], today).0, "day(ts),symbol");
    }

    #[test]
    fn default_layouts() {
        let other = serde_json::json!({"Ticker":"A","When":"2024-01-02T00:00:00Z","Px":1.5,"Qty":3});
        let (s, _) = crate::schema::resolve::from_records(&[other.as_object().unwrap().clone()]);
        assert_eq!(default_layout(&s).0, "day(when_value)");
        assert_eq!(
            default_layout(&Schema::indices()),
            ("year(trade_date)".into(), vec!["trade_date".into(), "symbol".into()])
        );
    }
}
