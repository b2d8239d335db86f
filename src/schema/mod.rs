//! The schema: the one definition of a dataset's columns.
//!
//! Foundation layer. Everything that needs to know "which columns, of which type" reads it from here:
//! CSV parsing (`replay`), the JSON wire format (`wire` to write, `decode` to read), the Arrow/Parquet layout
//! (`lake::layout`) and the Athena DDL (`athena`). Which schema a stream has is decided once, in `resolve`, for
//! every command. A column list is never written twice.
//!
//! Column types are named after Athena's (`string`, `bigint`, `double`, `date`, `timestamp`, `boolean`) so a
//! schema file reads like the table it will become.

mod cells;
mod decode;
mod file;
mod flat;
mod infer;
pub mod resolve;
pub mod value;
pub mod wire;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use file::{SchemaFileError, load_schema_file};
pub use infer::{InferOptions, RESERVED_WORDS, infer_schema, normalize_column_name};
pub use value::{CellError, Value, parse_cell};

/// The type of a column, by its Athena name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    String,
    Bigint,
    Double,
    /// Days since 1970-01-01: Parquet INT32 DATE.
    Date,
    /// Milliseconds since the epoch, UTC: Parquet INT64 TIMESTAMP(MILLIS, UTC). Athena reads timestamp(3).
    Timestamp,
    Boolean,
}

impl ColumnType {
    pub fn athena_name(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Bigint => "bigint",
            ColumnType::Double => "double",
            ColumnType::Date => "date",
            ColumnType::Timestamp => "timestamp",
            ColumnType::Boolean => "boolean",
        }
    }

    /// Can this column carry a row's event time?
    pub fn is_temporal(self) -> bool {
        matches!(self, ColumnType::Date | ColumnType::Timestamp)
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.athena_name())
    }
}

/// One column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// Lower-case snake_case name used on the wire, in Parquet and in Athena.
    pub name: String,
    /// The CSV header this column is read from (defaults to `name`). Kept so that records carrying the original
    /// header names (what existing Python producers send) decode too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(rename = "type")]
    pub ty: ColumnType,
    /// A missing or empty cell is an error for a required column, a null otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
}

impl Field {
    pub fn new(name: &str, source: &str, ty: ColumnType) -> Self {
        Field { name: name.to_string(), source: (source != name).then(|| source.to_string()), ty, required: false }
    }

    fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// The CSV header name.
    pub fn source_name(&self) -> &str {
        self.source.as_deref().unwrap_or(&self.name)
    }
}

/// A dataset's columns plus the roles some of them play.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    /// Preset name, or a user's name for their schema file.
    pub name: String,
    /// Column whose value is the Kafka record key (the symbol). Rows with the same key land on one partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Column holding the event time (a date or timestamp): record timestamp, `--speed` pacing, partitioning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<String>,
    pub fields: Vec<Field>,
}

/// Errors in a schema's own definition (not in data).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SchemaError {
    #[error("schema '{schema}' has no columns")]
    Empty { schema: String },
    #[error(
        "column name '{name}' is not lower-case snake_case (Athena matches columns by lower-case name); use '{suggestion}'"
    )]
    BadName { name: String, suggestion: String },
    #[error("column name '{name}' is a reserved word in Athena; rename it (for example '{suggestion}')")]
    Reserved { name: String, suggestion: String },
    #[error("column '{name}' appears twice")]
    Duplicate { name: String },
    #[error("the {role} column '{name}' is not one of the schema's columns")]
    UnknownRole { role: &'static str, name: String },
    #[error("the event-time column '{name}' is {ty}; it must be a date or a timestamp")]
    EventTimeType { name: String, ty: ColumnType },
    #[error("the key column '{name}' is {ty}; it must be a string")]
    KeyType { name: String, ty: ColumnType },
    #[error(
        "CSV header has no column '{column}' that schema '{schema}' needs; the header is: {header}. Pass a schema that fits (--schema FILE) or let ticklake infer one (omit --schema)"
    )]
    MissingColumn { schema: String, column: String, header: String },
    #[error(
        "unknown schema preset '{0}': the presets are 'indices' and 'ticks'; anything else is read as a schema file path"
    )]
    UnknownPreset(String),
}

impl Schema {
    /// Checks the rules every consumer of the schema relies on: Athena-safe names, roles that exist.
    pub fn validate(&self) -> Result<(), SchemaError> {
        if self.fields.is_empty() {
            return Err(SchemaError::Empty { schema: self.name.clone() });
        }
        let mut seen = std::collections::HashSet::new();
        for f in &self.fields {
            let normal = normalize_column_name(&f.name);
            if normal != f.name {
                return Err(SchemaError::BadName { name: f.name.clone(), suggestion: normal });
            }
            if RESERVED_WORDS.contains(&f.name.as_str()) {
                return Err(SchemaError::Reserved { name: f.name.clone(), suggestion: infer::unreserve(&f.name) });
            }
            if !seen.insert(f.name.as_str()) {
                return Err(SchemaError::Duplicate { name: f.name.clone() });
            }
        }
        if let Some(k) = &self.key {
            let f = self.field(k).ok_or_else(|| SchemaError::UnknownRole { role: "key", name: k.clone() })?;
            if f.ty != ColumnType::String {
                return Err(SchemaError::KeyType { name: k.clone(), ty: f.ty });
            }
        }
        if let Some(t) = &self.event_time {
            let f = self.field(t).ok_or_else(|| SchemaError::UnknownRole { role: "event-time", name: t.clone() })?;
            if !f.ty.is_temporal() {
                return Err(SchemaError::EventTimeType { name: t.clone(), ty: f.ty });
            }
        }
        Ok(())
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    pub fn key_index(&self) -> Option<usize> {
        self.key.as_deref().and_then(|k| self.index_of(k))
    }

    pub fn event_time_index(&self) -> Option<usize> {
        self.event_time.as_deref().and_then(|k| self.index_of(k))
    }

    /// The built-in layout of the usual "stock market indices" CSV.
    pub fn indices() -> Schema {
        use ColumnType::*;
        Schema {
            name: "indices".into(),
            key: Some("symbol".into()),
            event_time: Some("trade_date".into()),
            fields: vec![
                Field::new("symbol", "Index", String).required(),
                Field::new("trade_date", "Date", Date).required(),
                Field::new("open", "Open", Double),
                Field::new("high", "High", Double),
                Field::new("low", "Low", Double),
                Field::new("close", "Close", Double),
                Field::new("adj_close", "Adj Close", Double),
                Field::new("volume", "Volume", Bigint),
                Field::new("close_usd", "CloseUSD", Double),
            ],
        }
    }

    /// The built-in intraday tick layout. Columns beyond these four are kept, typed by inference.
    pub fn ticks() -> Schema {
        use ColumnType::*;
        Schema {
            name: "ticks".into(),
            key: Some("symbol".into()),
            event_time: Some("ts".into()),
            fields: vec![
                Field::new("ts", "ts", Timestamp).required(),
                Field::new("symbol", "symbol", String).required(),
                Field::new("price", "price", Double),
                Field::new("size", "size", Bigint),
            ],
        }
    }

    pub fn preset(name: &str) -> Option<Schema> {
        match name {
            "indices" => Some(Schema::indices()),
            "ticks" => Some(Schema::ticks()),
            _ => None,
        }
    }

    pub fn presets() -> [Schema; 2] {
        [Schema::indices(), Schema::ticks()]
    }

    /// Does a CSV header carry every column of this schema (by source name)?
    pub fn matches_header(&self, header: &[String]) -> bool {
        self.fields.iter().all(|f| header.iter().any(|h| h.trim() == f.source_name()))
    }

    /// For each schema field, the position of its column in the CSV header.
    pub fn bind_header(&self, header: &[String]) -> Result<Vec<usize>, SchemaError> {
        self.fields
            .iter()
            .map(|f| {
                header.iter().position(|h| h.trim() == f.source_name()).ok_or_else(|| SchemaError::MissingColumn {
                    schema: self.name.clone(),
                    column: f.source_name().to_string(),
                    header: header.join(","),
                })
            })
            .collect()
    }

    /// Schema as TOML, the format `schema infer` prints and `--schema FILE` reads.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a schema always serializes")
    }
}

/// `ticklake schema show NAME`: a preset as TOML.
pub fn preset_toml(name: &str) -> Result<String, SchemaError> {
    Schema::preset(name).map(|s| s.to_toml()).ok_or_else(|| SchemaError::UnknownPreset(name.into()))
}

/// One typed row, aligned with `Schema::fields`.
pub type Row = Vec<Value>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid() {
        for s in Schema::presets() {
            s.validate().unwrap();
        }
    }

    #[test]
    fn indices_binds_the_usual_header() {
        let header: Vec<String> =
            "Index,Date,Open,High,Low,Close,Adj Close,Volume,CloseUSD".split(',').map(String::from).collect();
        let s = Schema::indices();
        assert!(s.matches_header(&header));
        assert_eq!(s.bind_header(&header).unwrap(), (0..9).collect::<Vec<_>>());
        assert!(!Schema::ticks().matches_header(&header));
    }

    #[test]
    fn validation_rejects_what_athena_cannot_take() {
        let mut s = Schema::indices();
        s.fields[1].name = "date".into();
        s.event_time = Some("date".into());
        assert!(matches!(s.validate(), Err(SchemaError::Reserved { .. })));
        let mut s = Schema::indices();
        s.fields[2].name = "Open".into();
        assert!(matches!(s.validate(), Err(SchemaError::BadName { .. })));
        let mut s = Schema::indices();
        s.key = Some("open".into());
        assert!(matches!(s.validate(), Err(SchemaError::KeyType { .. })));
        let mut s = Schema::indices();
        s.event_time = Some("close".into());
        assert!(matches!(s.validate(), Err(SchemaError::EventTimeType { .. })));
    }

    #[test]
    fn toml_round_trip() {
        for s in Schema::presets() {
            let back: Schema = toml::from_str(&s.to_toml()).unwrap();
            assert_eq!(back, s);
        }
    }
}
