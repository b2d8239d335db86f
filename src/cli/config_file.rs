//! `--config ticklake.toml`: the same keys as the flags, and `ticklake config show`.
//!
//! Precedence: flags > environment > file > built-in defaults. The file's values become the flags' *default values*
//! in the clap command before parsing, and clap already ranks a flag above its environment variable above its
//! default; so one rule, kept by clap, covers every flag, with no second copy of the flag list to drift.
//!
//! Keys are the long flag names (`max-age` or `max_age`). Top-level keys apply to every command that has the flag
//! (`brokers`, `to`, `s3-endpoint`, ...); a table named after a command applies to it (`[sink]`, `[topic.create]`).
//! An unknown key or table is an error naming the file and the key: a typo must not be silently ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, Command, CommandFactory, FromArgMatches};

use crate::cli::Cli;

/// Flag or environment names whose values are never printed.
const SECRET_WORDS: [&str; 3] = ["password", "secret", "token"];

/// The `--config` path from the command line (`--config F`, `--config=F`) or `TICKLAKE_CONFIG`.
pub fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let s = a.to_string_lossy();
        if s == "--" {
            break;
        }
        if s == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = s.strip_prefix("--config=") {
            return Some(PathBuf::from(v));
        }
    }
    std::env::var_os("TICKLAKE_CONFIG").filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// The clap command with a config file's values as defaults, and which (command path, arg id) came from it.
pub struct Configured {
    pub command: Command,
    pub from_file: BTreeSet<(String, String)>,
    pub path: Option<PathBuf>,
}

/// Builds the command, applying the file at `path` if any.
pub fn command(path: Option<&Path>) -> Result<Configured, String> {
    let cmd = Cli::command();
    let Some(path) = path else { return Ok(Configured { command: cmd, from_file: BTreeSet::new(), path: None }) };
    let text = std::fs::read_to_string(path).map_err(|e| format!("--config {}: {e}", path.display()))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| format!("--config {}: {e}", path.display()))?;
    let mut from_file = BTreeSet::new();
    let mut errors = Vec::new();
    let command = walk(cmd, Some(&table), &BTreeMap::new(), "", &mut from_file, &mut errors);
    if !errors.is_empty() {
        return Err(format!("--config {}: {}", path.display(), errors.join("; ")));
    }
    Ok(Configured { command, from_file, path: Some(path.to_path_buf()) })
}

/// Parses the process's arguments with the config file applied. Exits like clap on a usage error.
pub fn parse_cli(args: Vec<OsString>) -> Cli {
    let configured = match command(config_path(&args).as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(i32::from(crate::exit::code(crate::exit::Kind::Usage)));
        }
    };
    let matches = configured.command.get_matches_from(args);
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

fn key(s: &str) -> String {
    s.replace('_', "-")
}

/// An arg's config key: its long flag, or its id for positionals.
fn arg_key(a: &clap::Arg) -> String {
    a.get_long().map_or_else(|| key(a.get_id().as_str()), String::from)
}

fn has_arg_deep(cmd: &Command, k: &str) -> bool {
    cmd.get_arguments().any(|a| arg_key(a) == k) || cmd.get_subcommands().any(|s| has_arg_deep(s, k))
}

fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Datetime(d) => Some(d.to_string()),
        toml::Value::Array(items) => Some(items.iter().filter_map(scalar).collect::<Vec<_>>().join(",")),
        toml::Value::Table(_) => None,
    }
}

fn walk(
    mut cmd: Command,
    table: Option<&toml::Table>,
    inherited: &BTreeMap<String, String>,
    path: &str,
    from_file: &mut BTreeSet<(String, String)>,
    errors: &mut Vec<String>,
) -> Command {
    let mut values = inherited.clone();
    for (k, v) in table.into_iter().flatten() {
        let where_ = if path.is_empty() { String::new() } else { format!(" in [{path}]") };
        match (v, scalar(v)) {
            (toml::Value::Table(_), _) => {
                if !cmd.get_subcommands().any(|s| s.get_name() == k) {
                    let names: Vec<&str> = cmd.get_subcommands().map(|s| s.get_name()).collect();
                    errors.push(format!(
                        "unknown table [{}{k}]{where_} (commands: {})",
                        dotted(path),
                        names.join(", ")
                    ));
                }
            }
            (_, Some(s)) => {
                if has_arg_deep(&cmd, &key(k)) {
                    values.insert(key(k), s);
                } else {
                    errors.push(format!("unknown key '{k}'{where_}: keys are the long flag names, see --help"));
                }
            }
            (_, None) => {}
        }
    }
    let args: Vec<(String, String)> = cmd.get_arguments().map(|a| (a.get_id().to_string(), arg_key(a))).collect();
    for (id, k) in args {
        if let Some(v) = values.get(&k) {
            from_file.insert((path.to_string(), id.clone()));
            let v = v.clone();
            cmd = cmd.mut_arg(id, |a| a.default_value(v).required(false));
        }
    }
    let subs: Vec<String> = cmd.get_subcommands().map(|s| s.get_name().to_string()).collect();
    for s in subs {
        let sub_table = table.and_then(|t| t.get(&s)).and_then(|v| v.as_table());
        let sub_path = if path.is_empty() { s.clone() } else { format!("{path}.{s}") };
        cmd = cmd.mut_subcommand(&s, |c| walk(c, sub_table, &values, &sub_path, from_file, errors));
    }
    cmd
}

fn dotted(path: &str) -> String {
    if path.is_empty() { String::new() } else { format!("{path}.") }
}

fn is_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| n.contains(w))
}

/// A TOML string literal.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// `ticklake config show [COMMAND ARGS...]`: the effective settings with where each comes from, as TOML that can
/// be saved as a config file. Without a command: every command, from the environment, the file and defaults.
pub fn show(config: Option<&Path>, command_line: &[String]) -> Result<String, String> {
    let configured = command(config)?;
    let mut out = String::new();
    let file = configured.path.as_ref().map_or("no --config file".into(), |p| format!("--config {}", p.display()));
    let _ = writeln!(out, "# effective configuration: flags > environment > {file} > defaults");
    let leaves: Vec<Vec<String>> = if command_line.is_empty() {
        let mut all = Vec::new();
        leaf_paths(&configured.command, &mut Vec::new(), &mut all);
        all.into_iter().filter(|p| !matches!(p[0].as_str(), "config" | "completions" | "man" | "help")).collect()
    } else {
        vec![command_line.to_vec()]
    };
    // Built once: every listed command is parsed against the same relaxed tree, and shown in declared flag order
    // (applying the file moves the args it touched to the end).
    let relaxed = relax(configured.command.clone());
    let plain = Cli::command();
    for argv in leaves {
        let full = std::iter::once("ticklake".to_string()).chain(argv.iter().cloned());
        let m = relaxed.clone().try_get_matches_from(full).map_err(|e| e.to_string())?;
        let (path, leaf_matches, leaf_cmd) = leaf(&plain, &m);
        let _ = writeln!(out, "\n[{path}]");
        for a in leaf_cmd.get_arguments() {
            let id = a.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            let k = arg_key(a).replace('-', "_");
            let raw: Option<Vec<String>> =
                leaf_matches.get_raw(id).map(|vals| vals.map(|v| v.to_string_lossy().into_owned()).collect());
            let source = match leaf_matches.value_source(id) {
                Some(ValueSource::CommandLine) => "flag".to_string(),
                Some(ValueSource::EnvVariable) => {
                    format!("env {}", a.get_env().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default())
                }
                Some(ValueSource::DefaultValue) if configured.from_file.contains(&(path.clone(), id.to_string())) => {
                    "file".to_string()
                }
                Some(_) => "default".to_string(),
                None => String::new(),
            };
            match raw {
                Some(vals) if !vals.is_empty() => {
                    let v = if is_secret(id) { "****".to_string() } else { vals.join(",") };
                    let _ = writeln!(out, "{k} = {}  # {source}", quoted(&v));
                }
                _ => match super::values::env_default(&k) {
                    Some((var, v)) => {
                        let _ = writeln!(out, "{k} = {}  # env {var}", quoted(&v));
                    }
                    None => {
                        let _ = writeln!(out, "# {k} (unset)");
                    }
                },
            }
        }
    }
    let _ = writeln!(out, "\n# secrets (from the environment only; S3 also reads AWS_PROFILE and the instance role)");
    for name in
        ["KAFKA_SASL_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"]
    {
        match std::env::var(name) {
            Ok(v) if is_secret(name) => {
                let _ = writeln!(out, "# {name} = **** ({} characters)", v.chars().count());
            }
            Ok(v) => {
                let shown: String = v.chars().take(4).collect();
                let _ = writeln!(out, "# {name} = {shown}...");
            }
            Err(_) => {
                let _ = writeln!(out, "# {name} (unset)");
            }
        }
    }
    Ok(out.trim_end().to_string())
}

fn leaf_paths(cmd: &Command, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let subs: Vec<&Command> = cmd.get_subcommands().collect();
    if subs.is_empty() && !prefix.is_empty() {
        out.push(prefix.clone());
    }
    for s in subs {
        prefix.push(s.get_name().to_string());
        leaf_paths(s, prefix, out);
        prefix.pop();
    }
}

/// Every arg optional and no subcommand required, so that any command can be shown without its required flags.
fn relax(mut cmd: Command) -> Command {
    let ids: Vec<String> = cmd.get_arguments().map(|a| a.get_id().to_string()).collect();
    for id in ids {
        cmd = cmd.mut_arg(id, |a| a.required(false));
    }
    let groups: Vec<String> = cmd.get_groups().map(|g| g.get_id().to_string()).collect();
    for g in groups {
        cmd = cmd.mut_group(g, |g| g.required(false));
    }
    cmd = cmd.subcommand_required(false).arg_required_else_help(false);
    let subs: Vec<String> = cmd.get_subcommands().map(|s| s.get_name().to_string()).collect();
    for s in subs {
        cmd = cmd.mut_subcommand(&s, relax);
    }
    cmd
}

/// The deepest subcommand matched: its dotted path, matches and definition.
fn leaf<'a>(root: &'a Command, m: &'a ArgMatches) -> (String, &'a ArgMatches, &'a Command) {
    let (mut cmd, mut m, mut path) = (root, m, Vec::new());
    while let Some((name, sub)) = m.subcommand() {
        path.push(name.to_string());
        cmd = cmd.find_subcommand(name).expect("matched subcommands exist");
        m = sub;
    }
    (path.join("."), m, cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(file: &str, args: &[&str]) -> Result<Cli, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ticklake.toml");
        std::fs::write(&path, file).unwrap();
        let c = command(Some(&path))?;
        let m = c.command.try_get_matches_from(args).map_err(|e| e.to_string())?;
        Cli::from_arg_matches(&m).map_err(|e| e.to_string())
    }

    fn sink(cli: Cli) -> crate::cli::SinkArgs {
        match cli.command {
            crate::cli::Command::Sink(a) => *a,
            _ => panic!("not sink"),
        }
    }

    #[test]
    fn file_values_sit_between_flags_and_defaults() {
        let file = "brokers = \"file:9092\"\n[sink]\ntopic = \"ticks\"\nmax_age = \"60s\"\nexit-at-end = true\npartitions = [0, 2]\n";
        let a = sink(parse(file, &["ticklake", "sink"]).unwrap());
        assert_eq!(a.topic, "ticks", "a required flag can come from the file");
        assert_eq!(a.max_age, std::time::Duration::from_secs(60));
        assert!(a.exit_at_end);
        assert_eq!(a.partitions.as_deref(), Some("0,2"));
        assert_eq!(a.max_rows, crate::sink::DEFAULT_MAX_ROWS, "untouched flags keep their defaults");
        // A flag beats the file.
        let a = sink(parse(file, &["ticklake", "sink", "--max-age", "5s", "--topic", "t"]).unwrap());
        assert_eq!(a.max_age, std::time::Duration::from_secs(5));
        assert_eq!(a.topic, "t");
        // Top-level keys reach every command with the flag.
        let cli = parse(file, &["ticklake", "topic", "list"]).unwrap();
        let crate::cli::Command::Topic(crate::cli::TopicCommand::List { kafka }) = cli.command else { panic!() };
        if std::env::var_os("KAFKA_BROKERS").is_none() {
            assert_eq!(kafka.brokers, "file:9092");
        }
    }

    #[test]
    fn typos_are_errors_naming_the_key() {
        let e = parse("[sink]\nmax_ages = \"1s\"\n", &["ticklake", "sink"]).err().unwrap();
        assert!(e.contains("unknown key 'max_ages' in [sink]"), "{e}");
        let e = parse("[sinks]\ntopic = \"t\"\n", &["ticklake", "sink"]).err().unwrap();
        assert!(e.contains("unknown table [sinks]"), "{e}");
        let e = parse("brokerz = \"x\"\n", &["ticklake", "sink"]).err().unwrap();
        assert!(e.contains("unknown key 'brokerz'"), "{e}");
        assert!(parse("[sink\n", &["ticklake"]).err().unwrap().contains("ticklake.toml"));
    }

    #[test]
    fn config_path_from_flag_forms() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(config_path(&args(&["t", "--config", "a.toml", "sink"])), Some(PathBuf::from("a.toml")));
        assert_eq!(config_path(&args(&["t", "sink", "--config=b.toml"])), Some(PathBuf::from("b.toml")));
    }

    #[test]
    fn show_names_sources_and_masks_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[sink]\nmax_age = \"60s\"\n").unwrap();
        let out = show(Some(&path), &["sink".into(), "--max-rows".into(), "7".into()]).unwrap();
        assert!(out.contains("[sink]"), "{out}");
        assert!(out.contains("max_age = \"60s\"  # file"), "{out}");
        assert!(out.contains("max_rows = \"7\"  # flag"), "{out}");
        assert!(out.contains("max_buffer = \"128MiB\"  # default"), "{out}");
        assert!(out.contains("# partitions (unset)"), "{out}");
        assert!(is_secret("sasl_password") && is_secret("AWS_SECRET_ACCESS_KEY") && !is_secret("brokers"));
        // Every command at once, and the output is itself a valid config file.
        let all = show(Some(&path), &[]).unwrap();
        assert!(all.contains("[replay]") && all.contains("[topic.create]") && all.contains("[doctor]"), "{all}");
        let reparsed: toml::Table = toml::from_str(&all).unwrap();
        assert!(reparsed.contains_key("sink"));
    }
}
