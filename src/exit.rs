//! Process exit codes, one per kind of failure, so scripts and systemd can tell them apart.

/// Something failed that has no more specific code.
pub const FAILURE: u8 = 1;
/// Bad flags or configuration (clap uses 2 as well).
pub const USAGE: u8 = 2;
/// Bad input data (a CSV row with `--on-error fail`, an unreadable file).
pub const BAD_INPUT: u8 = 3;
/// The broker (or S3) could not be reached within the deadline.
pub const UNREACHABLE: u8 = 4;
/// Credentials refused.
pub const AUTH: u8 = 5;
/// The topic does not exist.
pub const TOPIC_MISSING: u8 = 6;
/// Some rows were read but could not be acknowledged by the broker.
pub const UNACKNOWLEDGED: u8 = 7;
/// The lake's bucket does not exist.
pub const STORAGE_MISSING: u8 = 8;
/// Kafka deleted offsets the lake still needed (retention), and skipping was not allowed.
pub const DATA_LOST: u8 = 9;
/// `lake verify` found a gap, a duplicate or a stray object.
pub const VERIFY_FAILED: u8 = 10;
/// `doctor` found at least one failing check.
pub const DOCTOR_FAILED: u8 = 11;
/// Stopped by Ctrl-C (128 + SIGINT).
pub const INTERRUPTED: u8 = 130;
/// Stopped by SIGTERM (128 + SIGTERM).
pub const TERMINATED: u8 = 143;
