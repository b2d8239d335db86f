//! The command line, split the way ripgrep splits its flags: `defs` (the clap derive structs: what can be typed),
//! `values` (parsers for one value: durations, sizes, partition lists), `convert` (flags into the validated
//! `*Config` each command runs with, checked once, before any I/O) and `docs` (completions and man pages).
//!
//! Every connection flag can also come from the environment (`KAFKA_BROKERS`, ...).

pub mod config_file;
mod convert;
mod dashboard_defs;
mod defs;
pub mod docs;
mod pipeline_defs;
mod values;

pub use convert::{athena_request, doctor_config, resolve_schema_arg};
pub use dashboard_defs::DashboardArgs;
pub use defs::*;
pub use values::{parse_bytes, parse_duration, parse_partition_list};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::{Pace, ReplayConfig};
    use clap::CommandFactory;
    use clap::Parser;
    use std::time::Duration;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn completions_and_man_pages_cover_the_commands() {
        let mut bash = Vec::new();
        clap_complete::generate(clap_complete::Shell::Bash, &mut Cli::command(), "ticklake", &mut bash);
        let bash = String::from_utf8(bash).unwrap();
        for want in ["ticklake__subcmd__sink", "--metrics-addr", "--write-test", "doctor"] {
            assert!(bash.contains(want), "bash completion lacks {want}");
        }
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("ticklake.bash");
        std::fs::write(&script, &bash).unwrap();
        let syntax = std::process::Command::new("bash").arg("-n").arg(&script).output().unwrap();
        assert!(syntax.status.success(), "bash -n: {}", String::from_utf8_lossy(&syntax.stderr));

        clap_mangen::generate_to(Cli::command(), dir.path()).unwrap();
        let sink = std::fs::read_to_string(dir.path().join("ticklake-sink.1")).unwrap();
        assert!(sink.contains(".TH ticklake-sink 1") && sink.contains("max\\-buffer"), "{sink}");
    }

    #[test]
    fn partition_lists() {
        assert_eq!(parse_partition_list("0,2,5-7"), Ok(vec![0, 2, 5, 6, 7]));
        assert_eq!(parse_partition_list("3,3,1"), Ok(vec![1, 3]));
        assert!(parse_partition_list("7-5").is_err());
        assert!(parse_partition_list("x").is_err());
        assert!(parse_partition_list("").is_err());
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_bytes("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("100"), Ok(100));
        assert!(parse_bytes("12 parsecs").is_err());
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("soon").is_err());
    }

    fn replay(args: &[&str]) -> Result<ReplayConfig, crate::Error> {
        let mut full = vec!["ticklake", "replay"];
        full.extend_from_slice(args);
        let cli = Cli::try_parse_from(full).unwrap();
        let Command::Replay(a) = cli.command else { unreachable!() };
        ReplayConfig::try_from(&a)
    }

    #[test]
    fn replay_flags_are_validated_once() {
        let c = replay(&["data/x.csv", "--topic", "t", "--rate", "5", "--schema", "ticks"]).unwrap();
        assert_eq!(c.pace, Pace::Rate(5.0));
        assert_eq!(c.schema.unwrap().name, "ticks");
        assert_eq!(replay(&["-", "-t", "t", "--sample"]).unwrap().pace, Pace::Rate(1.0));
        assert!(replay(&["x", "-t", "t", "--rate", "0"]).is_err());
        assert!(replay(&["x", "-t", "t", "--schema", "candles"]).unwrap_err().to_string().contains("presets"));
        assert!(replay(&["x", "-t", "t", "--rejects", "r.jsonl"]).is_err());
    }

    #[test]
    fn a_typo_in_the_sink_layout_stops_before_any_io() {
        let sink = |args: &[&str]| {
            let mut full = vec!["ticklake", "sink", "--topic", "t", "--to", "./lake"];
            full.extend_from_slice(args);
            let Command::Sink(a) = Cli::try_parse_from(full).unwrap().command else { unreachable!() };
            crate::sink::SinkConfig::try_from(a.as_ref()).map(|_| ())
        };
        assert!(sink(&["--partition-by", "year(trade_date)"]).is_ok());
        assert!(sink(&["--partition-by", "yaer(trade_date)"]).unwrap_err().to_string().contains("yaer"));
        assert!(sink(&["--schema", "indices", "--partition-by", "day(nope)"]).is_err(), "columns too, with a schema");
        assert!(sink(&["--schema", "indices", "--sort-by", "nope"]).unwrap_err().to_string().contains("'nope'"));
    }
}
