//! Stage 2 of replay: CSV cells → a typed row of the schema.

use csv::ByteRecord;

use crate::schema::{Row, Schema, SchemaError, Value, parse_cell};

/// Why a CSV row was refused; `column` is the CSV header name when one column is at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub column: Option<String>,
    pub reason: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.column {
            Some(c) => write!(f, "column '{c}': {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

/// A schema bound to a CSV header: knows which cell feeds which field.
#[derive(Debug, Clone)]
pub struct RowParser {
    schema: Schema,
    /// For each schema field, its column position in the CSV.
    positions: Vec<usize>,
    width: usize,
}

impl RowParser {
    pub fn new(schema: Schema, header: &[String]) -> Result<Self, SchemaError> {
        let positions = schema.bind_header(header)?;
        Ok(RowParser { schema, positions, width: header.len() })
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The CSV cell that feeds schema field `field`.
    pub fn cell<'r>(&self, rec: &'r ByteRecord, field: usize) -> Option<&'r [u8]> {
        rec.get(self.positions[field]).map(|c| c.trim_ascii())
    }

    pub fn parse(&self, rec: &ByteRecord) -> Result<Row, RowError> {
        let mut row = Vec::with_capacity(self.schema.fields.len());
        self.parse_into(rec, &mut row)?;
        Ok(row)
    }

    /// Parses into `row`, reusing its allocation (the replay hot path keeps one row buffer).
    pub fn parse_into(&self, rec: &ByteRecord, row: &mut Row) -> Result<(), RowError> {
        row.clear();
        if rec.len() != self.width {
            return Err(RowError {
                column: None,
                reason: format!("has {} fields, the header has {}", rec.len(), self.width),
            });
        }
        for (field, &pos) in self.schema.fields.iter().zip(&self.positions) {
            let col = || Some(field.source_name().to_string());
            let text = std::str::from_utf8(&rec[pos])
                .map_err(|_| RowError { column: col(), reason: "is not valid UTF-8".into() })?;
            let v = parse_cell(text, field.ty).map_err(|e| RowError { column: col(), reason: e.reason })?;
            if field.required && v == Value::Null {
                return Err(RowError { column: col(), reason: "is required but empty".into() });
            }
            row.push(v);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser() -> RowParser {
        let header: Vec<String> =
            "Index,Date,Open,High,Low,Close,Adj Close,Volume,CloseUSD".split(',').map(String::from).collect();
        RowParser::new(Schema::indices(), &header).unwrap()
    }

    #[test]
    fn parses_the_documented_example() {
        let rec = ByteRecord::from(vec![
            "HSI",
            "1986-12-31",
            "2568.300049",
            "2568.300049",
            "2568.300049",
            "2568.300049",
            "2568.300049",
            "0.0",
            "333.87900637",
        ]);
        let row = parser().parse(&rec).unwrap();
        assert_eq!(row[0], Value::Str("HSI".into()));
        assert_eq!(row[7], Value::Int(0));
        assert_eq!(row[8], Value::Float(333.87900637));
    }

    #[test]
    fn names_the_bad_column() {
        let rec = ByteRecord::from(vec!["HSI", "1986-12-31", "x", "1", "1", "1", "1", "0", "1"]);
        let e = parser().parse(&rec).unwrap_err();
        assert_eq!(e.to_string(), "column 'Open': 'x' is not a finite number");
        let rec = ByteRecord::from(vec!["", "1986-12-31", "1", "1", "1", "1", "1", "0", "1"]);
        assert_eq!(parser().parse(&rec).unwrap_err().column.as_deref(), Some("Index"));
        let rec = ByteRecord::from(vec!["HSI"]);
        assert!(parser().parse(&rec).unwrap_err().reason.contains("has 1 fields"));
    }
}
