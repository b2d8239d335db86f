//! ticklake: replay market data from CSV into Kafka, land the stream in S3 as hive-partitioned Parquet.
//!
//! Layers (imports point down): `main` → `app` → `cli` → pipelines (`replay`, `sink`) and commands (`athena`,
//! `lake_cmd`, `doctor`, `topic`, `consume`, `sample`) → foundations (`schema`, `kafka`, `lake`, `output`,
//! `metrics`, `backoff`, `shutdown`, `exit`, `units`). README "Development" has the module map.
#![deny(unsafe_code, rust_2018_idioms)]

pub mod app;
pub mod athena;
pub mod aws;
pub mod backoff;
pub mod cli;
pub mod consume;
pub mod dashboard;
pub mod doctor;
pub mod exit;
#[doc(hidden)]
pub mod fuzzing;
pub mod kafka;
pub mod lake;
pub mod lake_cmd;
pub mod memcopy;
pub mod metrics;
pub mod output;
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
    Lake(#[from] lake_cmd::LakeCmdError),
    #[error(transparent)]
    Athena(#[from] athena::AthenaError),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    /// A bug: a task panicked.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// What kind of failure this is; `exit::code` turns it into the process's exit code.
    pub fn kind(&self) -> exit::Kind {
        use exit::Kind;
        match self {
            Error::Usage(_) => Kind::Usage,
            Error::Kafka(e) => e.kind(),
            Error::Replay(e) => e.kind(),
            Error::SchemaFile(_) | Error::Source(_) => Kind::BadInput,
            Error::Sink(e) => e.kind(),
            Error::Lake(lake_cmd::LakeCmdError::Store(e)) => e.kind(),
            Error::Lake(lake_cmd::LakeCmdError::NotInLake(_) | lake_cmd::LakeCmdError::Refused(_)) => Kind::Usage,
            Error::Lake(lake_cmd::LakeCmdError::Fenced(_)) => Kind::Fenced,
            Error::Lake(_) => Kind::Failure,
            Error::Athena(athena::AthenaError::Usage(_) | athena::AthenaError::Ddl(_)) => Kind::Usage,
            Error::Athena(athena::AthenaError::Store(e)) => e.kind(),
            Error::Io { .. } => Kind::Failure,
            Error::Internal(_) => Kind::Internal,
        }
    }

    /// Stdout was closed by its reader (`ticklake sample ... | head -1`): the command ends quietly with 0, as `cat`
    /// and `rg` do, instead of reporting an error nobody asked about.
    pub fn is_closed_stdout(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }

    pub fn exit_code(&self) -> u8 {
        exit::code(self.kind())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use exit::code;

    /// Every documented failure of every command, and the code it exits with (README "Exit codes").
    #[test]
    fn each_commands_failures_exit_with_their_documented_code() {
        let unreachable = || kafka::Error::Unreachable {
            brokers: "b:1".into(),
            timeout: std::time::Duration::from_secs(1),
            reason: "refused".into(),
        };
        let topic_missing =
            || kafka::Error::TopicMissing { topic: "t".into(), brokers: "b:1".into(), hint: String::new() };
        let bucket_missing = || lake::StoreError::BucketMissing { bucket: "b".into(), endpoint: "AWS".into() };
        let no_creds = || lake::StoreError::NoCredentials;
        let stop = |r: shutdown::StopReason| r.kind();
        let cases: Vec<(&str, exit::Kind, u8)> = vec![
            ("any", Error::Usage("--rate 0".into()).kind(), 2),
            ("replay", Error::Replay(replay::ReplayError::Kafka(unreachable())).kind(), 4),
            ("replay", Error::Replay(replay::ReplayError::Kafka(topic_missing())).kind(), 6),
            ("replay", Error::Replay(replay::ReplayError::Config("x".into())).kind(), 2),
            ("replay", Error::Replay(replay::ReplayError::Internal("panic".into())).kind(), 12),
            ("replay", stop(shutdown::StopReason::Interrupt), 130),
            ("replay", stop(shutdown::StopReason::Terminate), 143),
            ("sink", Error::Sink(sink::SinkError::Kafka(unreachable())).kind(), 4),
            ("sink", Error::Sink(sink::SinkError::Kafka(topic_missing())).kind(), 6),
            ("sink", Error::Sink(sink::SinkError::Store(bucket_missing())).kind(), 8),
            ("sink", Error::Sink(sink::SinkError::Store(no_creds())).kind(), 5),
            ("sink", Error::Sink(sink::SinkError::Config("--partitions 9".into())).kind(), 2),
            ("sink", Error::Sink(sink::SinkError::Internal("worker panicked".into())).kind(), 12),
            ("sink", Error::Sink(sink::SinkError::Corrupt("checkpoint".into())).kind(), 1),
            (
                "sink",
                Error::Sink(sink::SinkError::RetentionGap {
                    topic: "t".into(),
                    partition: 0,
                    needed: 0,
                    earliest: 5,
                    lost: 5,
                })
                .kind(),
                9,
            ),
            ("lake verify", Error::Lake(lake_cmd::LakeCmdError::Store(no_creds())).kind(), 5),
            ("lake stats", Error::Lake(lake_cmd::LakeCmdError::Store(bucket_missing())).kind(), 8),
            ("lake verify", exit::Kind::VerifyFailed, 10),
            ("lake verify", Error::Lake(lake_cmd::LakeCmdError::NotInLake("typo".into())).kind(), 2),
            ("athena", Error::Athena(athena::AthenaError::Store(no_creds())).kind(), 5),
            ("athena", Error::Athena(athena::AthenaError::Store(bucket_missing())).kind(), 8),
            ("athena", Error::Athena(athena::AthenaError::Usage("no spec".into())).kind(), 2),
            ("doctor", exit::Kind::DoctorFailed, 11),
            ("topic", Error::Kafka(unreachable()).kind(), 4),
            ("consume", Error::Kafka(topic_missing()).kind(), 6),
            ("schema infer", Error::Source(replay::source::SourceError::Empty { path: "x".into() }).kind(), 3),
        ];
        for (command, kind, want) in cases {
            assert_eq!(code(kind), want, "{command}: {kind:?}");
        }
    }
}
