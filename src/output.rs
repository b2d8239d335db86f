//! Where output goes: data on stdout (a closed pipe is not an error), logs, summaries and errors on stderr, in
//! text (colour only on a terminal, never with `NO_COLOR`) or JSON lines. A foundation every command uses.

use std::io::Write;

use crate::{Error, Result};

/// Log lines on stderr: text for people, or JSON lines for a log pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Set when logs are JSON: then summaries and errors are JSON log lines too (one format on stderr).
static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A command's summary on stderr: the line for people, or with `--log-format json` one JSON line that also carries
/// the counts as numbers (`{"level":"INFO","fields":{"message":..,"summary":"replay","sent":4000,..}}`), so scripts
/// and tests read numbers instead of parsing prose.
pub fn report_summary(command: &str, text: &str, counts: &[(&str, u64)]) {
    if JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
        let mut fields = serde_json::Map::new();
        fields.insert("message".into(), text.into());
        fields.insert("summary".into(), command.into());
        for (k, v) in counts {
            fields.insert((*k).into(), (*v).into());
        }
        let line = serde_json::json!({
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "level": "INFO",
            "fields": fields,
            "target": "ticklake",
        });
        eprintln!("{line}");
    } else {
        eprintln!("{text}");
    }
}

/// A fatal error on stderr: `error: ...`, or an error event with `--log-format json`.
pub fn report_error(text: &str) {
    if JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
        tracing::error!("{text}");
    } else {
        eprintln!("error: {text}");
    }
}

/// Colour only on a terminal, and never with `NO_COLOR` set (no-color.org): a file or journald gets plain text.
pub fn colour_on_stderr() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::IsTerminal::is_terminal(&std::io::stderr())
}

/// Logs go to stderr (stdout carries data only). `RUST_LOG` overrides the level flags.
pub fn init_logging(format: LogFormat, quiet: bool, verbose: u8) {
    JSON_LOGS.store(format == LogFormat::Json, std::sync::atomic::Ordering::Relaxed);
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    // rskafka logs every connection retry as a warning; our own errors say what failed, so keep it quiet.
    let default = format!("{level},rskafka=error");
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour_on_stderr());
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.with_target(false).try_init(),
    };
}

pub fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::Io { context: "writing to stdout".into(), source: e })
        }
        _ => Ok(()),
    }
}
