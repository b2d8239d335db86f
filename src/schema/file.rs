//! Schema files: TOML (what `ticklake schema infer` prints) or JSON, chosen by extension.

use std::path::{Path, PathBuf};

use super::{Schema, SchemaError};

#[derive(Debug, thiserror::Error)]
pub enum SchemaFileError {
    #[error("cannot read schema file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "schema file {path} is not a valid schema: {reason}. `ticklake schema infer DATA.csv` prints a valid one to start from"
    )]
    Parse { path: PathBuf, reason: String },
    #[error("schema file {path}: {source}")]
    Invalid { path: PathBuf, source: SchemaError },
}

/// Reads and validates a schema file (`.json` as JSON, anything else as TOML).
pub fn load_schema_file(path: &Path) -> Result<Schema, SchemaFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| SchemaFileError::Read { path: path.into(), source })?;
    let parsed: Result<Schema, String> = if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
        serde_json::from_str(&text).map_err(|e| e.to_string())
    } else {
        toml::from_str(&text).map_err(|e| e.to_string())
    };
    let schema = parsed.map_err(|reason| SchemaFileError::Parse { path: path.into(), reason })?;
    schema.validate().map_err(|source| SchemaFileError::Invalid { path: path.into(), source })?;
    Ok(schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_toml_and_json_and_reports_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let toml_path = dir.path().join("s.toml");
        std::fs::write(&toml_path, Schema::ticks().to_toml()).unwrap();
        assert_eq!(load_schema_file(&toml_path).unwrap(), Schema::ticks());

        let json_path = dir.path().join("s.json");
        std::fs::write(&json_path, serde_json::to_string(&Schema::indices()).unwrap()).unwrap();
        assert_eq!(load_schema_file(&json_path).unwrap(), Schema::indices());

        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "name = 3").unwrap();
        let e = load_schema_file(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.toml") && e.contains("schema infer"), "{e}");

        let mut reserved = Schema::indices();
        reserved.fields[1].name = "date".into();
        reserved.event_time = Some("date".into());
        std::fs::write(&bad, reserved.to_toml()).unwrap();
        assert!(matches!(load_schema_file(&bad), Err(SchemaFileError::Invalid { .. })));
    }
}
