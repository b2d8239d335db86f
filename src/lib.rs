//! ticklake: replay market data from CSV into Kafka, land the stream in S3 as hive-partitioned Parquet.
//!
//! Layers (imports point down): `main` → `app`/`cli` → pipelines (`replay`, `sink`) and commands (`topic`,
//! `consume`, `sample`, `inspect`) → foundations (`schema`, `kafka`, `lake`, `backoff`, `shutdown`, `exit`).
#![deny(unsafe_code, rust_2018_idioms)]

pub mod app;
pub mod athena;
pub mod backoff;
pub mod cli;
pub mod config;
pub mod consume;
pub mod doctor;
pub mod exit;
#[doc(hidden)]
pub mod fuzzing;
pub mod inspect;
pub mod kafka;
pub mod lake;
pub mod metrics;
pub mod replay;
pub mod sample;
pub mod schema;
pub mod shutdown;
pub mod sink;
pub mod topic;
pub mod units;

/// Top-level error: every stage's error, each knowing its exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Kafka(#[from] kafka::Error),
    #[error(transparent)]
    Replay(#[from] replay::ReplayError),
    #[error(transparent)]
    SchemaFile(#[from] schema::SchemaFileError),
    #[error(transparent)]
    Source(#[from] replay::source::SourceError),
    #[error(transparent)]
    Sink(#[from] sink::SinkError),
    #[error(transparent)]
    Inspect(#[from] inspect::InspectError),
    #[error(transparent)]
    Athena(#[from] athena::AthenaError),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::Kafka(e) => e.exit_code(),
            Error::Replay(e) => e.exit_code(),
            Error::SchemaFile(_) | Error::Source(_) => exit::BAD_INPUT,
            Error::Sink(e) => e.exit_code(),
            Error::Inspect(inspect::InspectError::Store(e)) => store_exit_code(e),
            Error::Inspect(_) => exit::FAILURE,
            Error::Athena(athena::AthenaError::Usage(_) | athena::AthenaError::Ddl(_)) => exit::USAGE,
            Error::Athena(athena::AthenaError::Store(e)) => store_exit_code(e),
            Error::Io { .. } => exit::FAILURE,
        }
    }
}

/// The exit code of a lake (S3 or folder) failure, the same for every command.
pub fn store_exit_code(e: &lake::StoreError) -> u8 {
    match e {
        lake::StoreError::Denied { .. } | lake::StoreError::NoCredentials => exit::AUTH,
        lake::StoreError::BucketMissing { .. } => exit::STORAGE_MISSING,
        _ => exit::FAILURE,
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
