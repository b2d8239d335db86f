//! Which schema a stream has: the one decision, used by `replay` (from a CSV header), by `sink` (from the records'
//! keys) and by the sink's schema evolution (a key the schema lacks).
//!
//! The rule, the same from both ends: a preset whose columns all appear, plus every other column, typed by
//! inference; else a schema inferred from the whole sample. A column is never left out: a field the schema does not
//! name is either a new column or the reason for a reject, never silently dropped.

use serde_json::Value as Json;

use super::infer::{InferOptions, infer_schema};
use super::{ColumnType, Field, Schema};

/// How the schema was chosen, for the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaChoice {
    Given,
    /// A preset, plus these extra columns (named as in the schema).
    Preset {
        extras: Vec<String>,
    },
    Inferred,
}

/// The schema of a CSV header and a sample of its rows (cells as text).
pub fn from_header(header: &[String], sample: &[Vec<String>], name: &str) -> (Schema, SchemaChoice) {
    pick(header, sample, name, |p| p.matches_header(header))
}

fn pick(
    header: &[String],
    sample: &[Vec<String>],
    name: &str,
    matches: impl Fn(&Schema) -> bool,
) -> (Schema, SchemaChoice) {
    if let Some(preset) = Schema::presets().into_iter().find(|p| matches(p)) {
        let (schema, extras) = with_extra_columns(preset, header, sample);
        return (schema, SchemaChoice::Preset { extras });
    }
    (infer_schema(header, sample, &InferOptions { name: name.into() }), SchemaChoice::Inferred)
}

/// Presets a header nearly matches: every preset column is there, some only under a spelling that differs in case,
/// spaces or punctuation (`AdjClose` for `Adj Close`). Such a header gets an inferred schema, whose key may not be
/// the one the preset would pick: the caller says so. Per preset, the `(header cell, preset column)` pairs that differ.
pub fn near_presets(header: &[String]) -> Vec<(String, Vec<(String, String)>)> {
    let squash = |s: &str| s.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_ascii_lowercase();
    let mut out = Vec::new();
    for preset in Schema::presets() {
        let mut near = Vec::new();
        let all = preset.fields.iter().all(|f| {
            if header.iter().any(|h| h.trim() == f.source_name()) {
                return true;
            }
            match header.iter().find(|h| squash(h) == squash(f.source_name()) || squash(h) == squash(&f.name)) {
                Some(h) => {
                    near.push((h.trim().to_string(), f.source_name().to_string()));
                    true
                }
                None => false,
            }
        });
        if all && !near.is_empty() {
            out.push((preset.name.clone(), near));
        }
    }
    out
}

/// The schema of a sample of JSON records (keys in the first record's order, then any key a later one adds).
/// Record keys are kept as the fields' source names, so records decode by their own keys.
///
/// A preset's columns keep the preset's types whatever the sample holds: a record whose `open` is `"high"` is a
/// reject, never the reason `open` becomes a string. Inference types only the columns the preset does not have
/// (`SchemaChoice::Preset::extras`), or every column when no preset matches. A key whose sampled values include an
/// array or an object becomes no column: the records carrying it are rejects (`column_for` says why), as they are
/// when such a key first appears later.
pub fn from_records(sample: &[serde_json::Map<String, Json>]) -> (Schema, SchemaChoice) {
    let mut header: Vec<String> = Vec::new();
    for m in sample {
        for k in m.keys() {
            if !header.contains(k) && !nested_somewhere(sample, k) {
                header.push(k.clone());
            }
        }
    }
    let rows: Vec<Vec<String>> =
        sample.iter().map(|m| header.iter().map(|h| m.get(h).map(json_text).unwrap_or_default()).collect()).collect();
    // Records carry a preset's columns by their names (what replay writes) or by the CSV header names.
    let carries = |p: &Schema| p.fields.iter().all(|f| header.iter().any(|h| h == &f.name || h == f.source_name()));
    let (mut schema, choice) = pick(&header, &rows, "inferred", carries);
    let inferred = inferred_columns(&schema, &choice);
    for f in schema.fields.iter_mut().filter(|f| inferred.contains(&f.name)) {
        let key = header.iter().find(|h| h.trim() == f.source_name() || h.trim() == f.name).cloned();
        // A type inferred from the text of a JSON string (`"42"`, `"true"`) would refuse the very records it came
        // from: the decoder takes a bigint from a JSON number only. Such a column is a string.
        let kinds: Vec<&Json> = sample.iter().filter_map(|m| key.as_ref().and_then(|k| m.get(k))).collect();
        if let Some(ty) = json_fit(f.ty, &kinds) {
            f.ty = ty;
        }
    }
    (schema, choice)
}

/// Does any sampled record hold an array or an object under `key`?
fn nested_somewhere(sample: &[serde_json::Map<String, Json>], key: &str) -> bool {
    sample.iter().any(|m| m.get(key).is_some_and(|v| v.is_array() || v.is_object()))
}

/// The columns of `schema` whose types came from inference rather than from a preset or a schema file.
pub fn inferred_columns(schema: &Schema, choice: &SchemaChoice) -> Vec<String> {
    match choice {
        SchemaChoice::Given => vec![],
        SchemaChoice::Preset { extras } => extras.clone(),
        SchemaChoice::Inferred => schema.fields.iter().map(|f| f.name.clone()).collect(),
    }
}

/// The column a record key that `schema` lacks becomes, typed by its first value (the same inference as replay's,
/// told apart by JSON kind). `Ok(None)` for a null (nothing to store, and no type to learn yet); `Err` for a value
/// a flat column cannot hold (an array or an object), which makes the record a reject.
pub fn column_for(schema: &Schema, key: &str, value: &Json) -> Result<Option<Field>, String> {
    match value {
        Json::Null => return Ok(None),
        Json::Array(_) | Json::Object(_) => {
            return Err(format!(
                "field '{key}' holds {}; the lake stores flat columns (send it as a JSON string to keep it)",
                if value.is_array() { "an array" } else { "an object" }
            ));
        }
        _ => {}
    }
    // Named and typed as replay would a CSV column of this one cell, then corrected by the JSON kind.
    let (with, names) = with_extra_columns(schema.clone(), &[key.to_string()], &[vec![json_text(value)]]);
    let Some(mut f) = names.first().and_then(|n| with.field(n)).cloned() else {
        return Ok(None); // the key names a column already (by its name or its source)
    };
    f.ty = match value {
        Json::Bool(_) => ColumnType::Boolean,
        Json::Number(n) if n.is_i64() => ColumnType::Bigint,
        Json::Number(_) => ColumnType::Double,
        _ => json_fit(f.ty, &[value]).unwrap_or(f.ty),
    };
    f.source = (f.name != key).then(|| key.to_string());
    Ok(Some(f))
}

/// The type a column inferred from JSON values' text must have instead, if any: strings never become numbers or
/// booleans (dates and timestamps are read from strings, so they stay).
fn json_fit(inferred: ColumnType, values: &[&Json]) -> Option<ColumnType> {
    let strings = values.iter().any(|v| v.is_string());
    let numeric = matches!(inferred, ColumnType::Bigint | ColumnType::Double | ColumnType::Boolean);
    (strings && numeric).then_some(ColumnType::String)
}

fn json_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        v => v.to_string(),
    }
}

/// Appends, typed by inference, the header columns that `schema` does not read; returns their names.
pub fn with_extra_columns(mut schema: Schema, header: &[String], sample: &[Vec<String>]) -> (Schema, Vec<String>) {
    let unbound: Vec<usize> = (0..header.len())
        .filter(|&i| !schema.fields.iter().any(|f| f.source_name() == header[i].trim() || f.name == header[i].trim()))
        .collect();
    if unbound.is_empty() {
        return (schema, vec![]);
    }
    let sub_header: Vec<String> = unbound.iter().map(|&i| header[i].clone()).collect();
    let sub_rows: Vec<Vec<String>> =
        sample.iter().map(|r| unbound.iter().map(|&i| r.get(i).cloned().unwrap_or_default()).collect()).collect();
    let extra = infer_schema(&sub_header, &sub_rows, &InferOptions::default());
    let mut names = vec![];
    for mut f in extra.fields {
        f.required = false;
        while schema.fields.iter().any(|g| g.name == f.name) {
            f.name.push_str("_extra");
        }
        names.push(f.name.clone());
        schema.fields.push(f);
    }
    (schema, names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Json) -> serde_json::Map<String, Json> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn records_with_a_preset_and_more_keep_every_key() {
        let rec = obj(serde_json::json!({"symbol":"HSI","trade_date":"2020-01-02","open":1.0,"high":1.0,"low":1.0,
            "close":1.0,"adj_close":1.0,"volume":5,"close_usd":2.0,"exchange_value":"HKEX"}));
        let (s, choice) = from_records(&[rec]);
        assert_eq!(s.name, "indices");
        assert_eq!(choice, SchemaChoice::Preset { extras: vec!["exchange_value".into()] });
        assert_eq!(s.field("exchange_value").unwrap().ty, ColumnType::String);
        assert_eq!(s.fields.len(), Schema::indices().fields.len() + 1);
    }

    #[test]
    fn records_by_csv_header_names_pick_the_preset_and_others_are_inferred() {
        let by_header = obj(serde_json::json!({"Index":"HSI","Date":"1987-01-02","Open":1.0,"High":1.0,"Low":1.0,
            "Close":1.0,"Adj Close":1.0,"Volume":0.0,"CloseUSD":2.0}));
        let (s, choice) = from_records(&[by_header]);
        assert_eq!((s.name.as_str(), choice), ("indices", SchemaChoice::Preset { extras: vec![] }));
        let other = obj(serde_json::json!({"Ticker":"A","When":"2024-01-02T00:00:00Z","Px":1.5,"Qty":3,"Code":"42"}));
        let (s, choice) = from_records(&[other]);
        assert_eq!((s.name.as_str(), choice), ("inferred", SchemaChoice::Inferred));
        assert_eq!(s.field("px").unwrap().source.as_deref(), Some("Px"));
        assert_eq!(s.field("qty").unwrap().ty, ColumnType::Bigint);
        assert_eq!(s.field("code").unwrap().ty, ColumnType::String, "a JSON string of digits stays a string");
    }

    #[test]
    fn a_bad_value_among_the_sample_never_retypes_a_preset_column() {
        let good = |close: f64| {
            obj(serde_json::json!({"symbol":"HSI","trade_date":"2020-01-02","open":1.0,"high":1.0,"low":1.0,
                "close":close,"adj_close":1.0,"volume":5,"close_usd":2.0}))
        };
        let mut bad = good(1.0);
        bad.insert("open".into(), serde_json::json!("high"));
        bad.insert("tags".into(), serde_json::json!(["a", "b"]));
        bad.insert("venue".into(), serde_json::json!("XHKG"));
        let (s, choice) = from_records(&[good(1.0), good(2.0), bad, good(3.0)]);
        assert_eq!(s.field("open").unwrap().ty, ColumnType::Double, "the preset's type stays");
        assert_eq!(choice, SchemaChoice::Preset { extras: vec!["venue".into()] }, "an array-valued key is no column");
        assert!(s.field("tags").is_none());
        assert_eq!(inferred_columns(&s, &choice), ["venue"]);
        let (s, choice) = from_records(&[obj(serde_json::json!({"Ticker":"A","Px":"x","Qty":[1]}))]);
        let mut inferred = inferred_columns(&s, &choice);
        inferred.sort();
        assert_eq!(inferred, ["px", "ticker"], "no preset: every column is inferred");
    }

    #[test]
    fn a_header_close_to_a_preset_is_named() {
        let h = |s: &str| s.split(',').map(String::from).collect::<Vec<_>>();
        let near = near_presets(&h("Index,Date,Open,High,Low,Close,AdjClose,Volume,CloseUSD"));
        assert_eq!(near, [("indices".to_string(), vec![("AdjClose".to_string(), "Adj Close".to_string())])]);
        assert!(near_presets(&h("Index,Date,Open,High,Low,Close,Adj Close,Volume,CloseUSD")).is_empty(), "exact");
        assert!(near_presets(&h("Index,Date,Open")).is_empty(), "too far");
    }

    #[test]
    fn a_new_key_becomes_a_typed_nullable_column() {
        let s = Schema::ticks();
        let col = |k: &str, v: Json| column_for(&s, k, &v);
        let f = col("venue", serde_json::json!("XNAS")).unwrap().unwrap();
        assert_eq!(
            (f.name.as_str(), f.ty, f.required, f.source.as_deref()),
            ("venue", ColumnType::String, false, None)
        );
        assert_eq!(col("Bid Size", serde_json::json!(3)).unwrap().unwrap().ty, ColumnType::Bigint);
        assert_eq!(col("Bid Size", serde_json::json!(3)).unwrap().unwrap().name, "bid_size");
        assert_eq!(col("bid", serde_json::json!(1.5)).unwrap().unwrap().ty, ColumnType::Double);
        assert_eq!(col("halted", serde_json::json!(true)).unwrap().unwrap().ty, ColumnType::Boolean);
        assert_eq!(col("d", serde_json::json!("2024-01-02")).unwrap().unwrap().ty, ColumnType::Date);
        assert_eq!(col("n", serde_json::json!("7")).unwrap().unwrap().ty, ColumnType::String);
        assert_eq!(col("Exchange", serde_json::json!("X")).unwrap().unwrap().name, "exchange_value");
        assert_eq!(col("Price", serde_json::json!("X")).unwrap().unwrap().name, "price_extra", "never shadows");
        assert_eq!(col("price", serde_json::json!(1.0)).unwrap(), None, "a known column is not new");
        assert_eq!(col("later", Json::Null).unwrap(), None);
        assert!(col("tags", serde_json::json!(["a"])).unwrap_err().contains("an array"));
    }
}
