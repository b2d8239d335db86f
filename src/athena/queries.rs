//! Ready-to-run queries over the table, filtering on the partition keys.

use crate::lake::partition::{PartitionSpec, Transform};
use crate::schema::Schema;

/// Ready-to-run queries for a lake of daily bars: `(title, SQL)`. They filter on the partition keys (so Athena
/// reads only matching partitions) and use only functions Athena (Trino) and DuckDB share, so the proto-tests run
/// the very same text in DuckDB. `None` when the schema lacks a key, a date event time or a `close` column.
pub fn reference_queries(
    schema: &Schema,
    spec: &PartitionSpec,
    table: &str,
    symbol: &str,
    year: i32,
) -> Option<Vec<(String, String)>> {
    let key = schema.key.as_deref()?;
    let day = schema
        .event_time
        .as_deref()
        .filter(|t| schema.field(t).is_some_and(|f| f.ty == crate::schema::ColumnType::Date))?;
    schema.field("close")?;
    let event = schema.index_of(day)?;
    let mut by_year = String::new();
    let mut by_range = String::new();
    for f in spec.fields.iter().filter(|f| f.source == event) {
        match f.transform {
            Transform::Year => {
                by_year = format!("{} = '{year}' AND ", f.name);
                by_range = format!("{} IN ('{}', '{year}') AND ", f.name, year - 1);
            }
            Transform::Month => {
                by_year = format!("{} BETWEEN '{year}-01' AND '{year}-12' AND ", f.name);
                by_range = format!("{} BETWEEN '{}-07' AND '{year}-06' AND ", f.name, year - 1);
            }
            _ => {}
        }
    }
    let sym = symbol.replace('\'', "''");
    Some(vec![
        (
            format!("latest close per {key} in {year}"),
            format!(
                "SELECT {key}, max_by(close, {day}) AS last_close, max({day}) AS last_day\nFROM {table}\nWHERE {by_year}{day} BETWEEN DATE '{year}-01-01' AND DATE '{year}-12-31'\nGROUP BY {key}\nORDER BY {key}"
            ),
        ),
        (
            format!("monthly average close of {symbol}, {}-07 to {year}-06", year - 1),
            format!(
                "SELECT date_trunc('month', {day}) AS month, avg(close) AS avg_close, count(*) AS days\nFROM {table}\nWHERE {by_range}{key} = '{sym}' AND {day} BETWEEN DATE '{}-07-01' AND DATE '{year}-06-30'\nGROUP BY 1\nORDER BY 1",
                year - 1
            ),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_queries_filter_on_the_partitions() {
        let s = Schema::indices();
        let spec = PartitionSpec::parse("year(trade_date)", &s).unwrap();
        let q = reference_queries(&s, &spec, "markets.indices", "^GSPC", 2021).unwrap();
        assert!(q[0].1.contains("WHERE year = '2021' AND trade_date BETWEEN"), "{}", q[0].1);
        assert!(q[1].1.contains("year IN ('2020', '2021') AND symbol = '^GSPC'"), "{}", q[1].1);
        assert!(reference_queries(&Schema::ticks(), &spec, "t", "A", 2021).is_none());
    }
}
