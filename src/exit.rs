//! Process exit codes: one table, the only place a failure's code is decided (ripgrep decides its status in one
//! place too). Every error type says what kind of failure it is (`kind()`); `code` maps the kind to the number.
//! The README's exit-code table is checked against this one by a test, so the two cannot drift.

/// What kind of failure ended a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Something failed that has no more specific code (an I/O error, a lake request that kept failing).
    Failure,
    /// Bad flags or configuration (clap uses 2 as well).
    Usage,
    /// Bad input data (a CSV row with `--on-error fail`, an unreadable file, a schema that doesn't fit).
    BadInput,
    /// The broker (or S3) could not be reached within the deadline.
    Unreachable,
    /// Credentials refused (Kafka SASL/TLS, or S3), or none found.
    Auth,
    /// The topic does not exist.
    TopicMissing,
    /// Some rows were read but could not be acknowledged by the broker.
    Unacknowledged,
    /// The lake's bucket does not exist.
    StorageMissing,
    /// Kafka deleted offsets the lake still needed (retention), and skipping was not allowed.
    DataLost,
    /// `lake verify` found a gap, a duplicate or a stray object.
    VerifyFailed,
    /// `doctor` found at least one failing check.
    DoctorFailed,
    /// A bug in ticklake (a panicked task): never "bad flags".
    Internal,
    /// Another sink holds the Kafka partition in this lake (one writer per partition).
    Fenced,
    /// Stopped by Ctrl-C (128 + SIGINT), after flushing.
    Interrupted,
    /// Stopped by SIGTERM (128 + SIGTERM), after flushing.
    Terminated,
}

/// The table: kind, code, and the README's wording.
pub const TABLE: [(Kind, u8, &str); 15] = [
    (Kind::Failure, 1, "other failure"),
    (Kind::Usage, 2, "bad flags or configuration"),
    (
        Kind::BadInput,
        3,
        "bad input (a bad CSV row with `--on-error fail`, an unreadable file, a schema that doesn't fit)",
    ),
    (
        Kind::Unreachable,
        4,
        "broker or S3 endpoint unreachable (or no answer within the deadline), or `--brokers` is not a Kafka port",
    ),
    (Kind::Auth, 5, "credentials refused (Kafka or S3), or no S3 credentials found"),
    (Kind::TopicMissing, 6, "topic missing"),
    (Kind::Unacknowledged, 7, "some rows were not acknowledged by the broker"),
    (Kind::StorageMissing, 8, "the lake's bucket does not exist"),
    (Kind::DataLost, 9, "Kafka deleted offsets the lake still needed (retention)"),
    (Kind::VerifyFailed, 10, "`lake verify` found a gap, a duplicate or a stray object"),
    (Kind::DoctorFailed, 11, "`doctor` found at least one failing check"),
    (Kind::Internal, 12, "internal error (a bug in ticklake: please report it with the log)"),
    (Kind::Fenced, 13, "another sink holds a Kafka partition of this lake (its host and start time are named)"),
    (Kind::Interrupted, 130, "stopped by Ctrl-C, after flushing"),
    (Kind::Terminated, 143, "stopped by SIGTERM, after flushing"),
];

/// The row of `kind` in the table.
fn row(kind: Kind) -> &'static (Kind, u8, &'static str) {
    TABLE.iter().find(|(k, _, _)| *k == kind).expect("every kind is in the table")
}

/// The exit code of `kind`.
pub fn code(kind: Kind) -> u8 {
    row(kind).1
}

/// What the exit code of `kind` means (the README's wording).
pub fn meaning(kind: Kind) -> &'static str {
    row(kind).2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_the_readme_table_is_this_table() {
        let mut codes: Vec<u8> = TABLE.iter().map(|t| t.1).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), TABLE.len(), "one code per kind");
        let readme = include_str!("../README.md");
        let section = readme.split("### Exit codes").nth(1).expect("README has an exit-code table");
        let rows: Vec<(u8, String)> = section
            .lines()
            .skip_while(|l| !l.starts_with("| 0 |"))
            .skip(1)
            .take_while(|l| l.starts_with('|'))
            .map(|l| {
                let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
                (cells[0].parse().expect("a code"), cells[1].to_string())
            })
            .collect();
        let want: Vec<(u8, String)> = TABLE.iter().map(|t| (t.1, t.2.to_string())).collect();
        assert_eq!(rows, want, "README's exit codes differ from src/exit.rs");
    }
}
