//! The sink's side of the table spec: one `TableSpec` shared by the partition workers, grown when a record carries a
//! field the schema lacks, and stored before the first file that has the new column.
//!
//! ```text
//!  worker: record with key k unknown ──► Table::evolve(k = value) ──► new version (in memory, marked unsaved)
//!          re-decode the record with the new schema; the open buffer gains k (NULL for the rows before)
//!  commit: Table::save_if_changed ──► PUT _ticklake/table.toml ──► intent ──► files ...
//! ```
//!
//! The spec is saved at the start of a commit, before the intent: a file never holds a column the stored spec
//! lacks, and a crash at any later step finds the spec already stored (the redo reads it back).

use std::sync::atomic::{AtomicBool, Ordering};

use crate::lake::table::{TableSpec, table_key};
use crate::lake::{Store, StoreError};
use crate::schema::resolve::column_for;
use crate::schema::{Schema, wire::UnknownField};

pub struct Table {
    spec: tokio::sync::Mutex<TableSpec>,
    /// The spec changed (or was never stored) since the last save.
    unsaved: AtomicBool,
    /// Names that a new column must not take: the hive partition keys (a column and a path key of one name would
    /// confuse every reader).
    taken: Vec<String>,
    /// `--strict-schema`: a field the schema lacks is a reject, never a new column.
    strict: bool,
}

impl Table {
    pub fn new(spec: TableSpec, stored: bool, taken: Vec<String>) -> Table {
        Table { spec: tokio::sync::Mutex::new(spec), unsaved: AtomicBool::new(!stored), taken, strict: false }
    }

    pub fn strict(self, strict: bool) -> Table {
        Table { strict, ..self }
    }

    pub async fn schema(&self) -> Schema {
        self.spec.lock().await.schema.clone()
    }

    /// Makes every field of `unknown` a column (those another partition has not added already) and returns the
    /// newest schema, and whether this call made a new version; `Err(reason)` when a field cannot be a column (the
    /// record is then a reject).
    pub async fn evolve(
        &self,
        topic: &str,
        unknown: &[UnknownField],
        partition: i32,
        offset: i64,
    ) -> Result<(Schema, bool), String> {
        let mut spec = self.spec.lock().await;
        let mut grown = spec.schema.clone();
        let mut added = Vec::new();
        for (key, value) in unknown {
            if grown.fields.iter().any(|f| &f.name == key || f.source_name() == key) {
                continue;
            }
            if self.strict && !value.is_null() {
                return Err(format!(
                    "field '{key}' is not a column of the lake's table, and --strict-schema adds none: send it under a column's name, or add it with --schema"
                ));
            }
            if let Some(mut f) = column_for(&grown, key, value)? {
                while self.taken.contains(&f.name) || f.name.starts_with("kafka_") {
                    f.name.push_str("_extra");
                    f.source = Some(key.clone());
                }
                grown.fields.push(f.clone());
                added.push(f);
            }
        }
        if !added.is_empty() {
            let names: Vec<String> = added.iter().map(|f| format!("{} {}", f.name, f.ty)).collect();
            let added_names: Vec<String> = added.iter().map(|f| f.name.clone()).collect();
            let version = spec.evolve(added, "new field in a record", topic, Some((partition, offset)));
            spec.mark_inferred(&added_names, 1);
            tracing::warn!(
                version, partition, offset, columns = %names.join(", "),
                "the records carry new fields: added as nullable columns (rows before read them as NULL; run `ticklake athena --since-version {}` for the ALTER TABLE)",
                version - 1
            );
            self.unsaved.store(true, Ordering::Release);
            return Ok((spec.schema.clone(), true));
        }
        Ok((spec.schema.clone(), false))
    }

    /// Stores the spec if it changed; called at the start of every commit, before its intent.
    pub async fn save_if_changed(&self, store: &Store, retry_for: std::time::Duration) -> Result<(), StoreError> {
        if !self.unsaved.load(Ordering::Acquire) {
            return Ok(());
        }
        let spec = self.spec.lock().await;
        if !self.unsaved.load(Ordering::Acquire) {
            return Ok(());
        }
        super::commit::put_with_retry(store, &table_key(), spec.to_toml().into_bytes(), retry_for).await?;
        self.unsaved.store(false, Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ColumnType;

    #[tokio::test]
    async fn a_new_field_is_added_once_and_never_takes_a_path_key() {
        let spec = TableSpec::new("t", Schema::ticks(), "dt=day(ts),symbol".into(), vec!["ts".into()], 10);
        let t = Table::new(spec, true, vec!["dt".into(), "symbol".into()]);
        let venue = ("venue".to_string(), serde_json::json!("XNAS"));
        let (s, new) = t.evolve("t", std::slice::from_ref(&venue), 1, 7).await.unwrap();
        assert_eq!((s.field("venue").unwrap().ty, new), (ColumnType::String, true));
        let again = t.evolve("t", &[venue], 0, 9).await.unwrap();
        assert_eq!(again, (s, false), "another partition seeing the same field adds nothing");
        let (s, _) = t.evolve("t", &[("dt".to_string(), serde_json::json!("x"))], 0, 10).await.unwrap();
        assert_eq!(s.field("dt_extra").unwrap().source.as_deref(), Some("dt"));
        assert!(t.evolve("t", &[("a".to_string(), serde_json::json!([1]))], 0, 11).await.is_err());
        let spec = t.spec.lock().await;
        assert_eq!((spec.version(), spec.versions[1].kafka_offset), (3, Some(7)));
        assert_eq!(
            (spec.versions[1].inferred.as_slice(), spec.versions[1].inferred_from_records),
            (&["venue".to_string()][..], Some(1)),
            "a column typed from one record says so"
        );
    }

    #[tokio::test]
    async fn strict_tables_add_no_column() {
        let spec = TableSpec::new("t", Schema::ticks(), String::new(), vec![], 10);
        let t = Table::new(spec, true, vec![]).strict(true);
        let e = t.evolve("t", &[("venue".to_string(), serde_json::json!("XNAS"))], 0, 1).await.unwrap_err();
        assert!(e.contains("field 'venue'") && e.contains("--strict-schema"), "{e}");
        let known = t.evolve("t", &[("price".to_string(), serde_json::json!(1.0))], 0, 2).await.unwrap();
        assert!(!known.1, "a known column is no change");
    }
}
