//! Command dispatch: turns parsed flags into configs and runs the matching pipeline or command.

use std::io::Write;

use crate::cli::{Cli, Command, GlobalArgs, LogFormat, SampleLayout, SchemaCommand, TopicCommand};
use crate::kafka::KafkaConfig;
use crate::replay::{self, Ended, ReplayConfig};
use crate::schema::Schema;
use crate::shutdown::Shutdown;
use crate::{Error, Result};

/// Set when logs are JSON: then summaries and errors are JSON log lines too (one format on stderr).
static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A summary line on stderr: plain text, or an info event with `--log-format json`.
pub fn report_line(text: &str) {
    if JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
        tracing::info!("{text}");
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
pub fn init_logging(g: &GlobalArgs) {
    JSON_LOGS.store(g.log_format == LogFormat::Json, std::sync::atomic::Ordering::Relaxed);
    let level = match (g.quiet, g.verbose) {
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
    let _ = match g.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.with_target(false).try_init(),
    };
}

fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::Io { context: "writing to stdout".into(), source: e })
        }
        _ => Ok(()),
    }
}

/// Runs one command; returns the process exit code.
pub async fn run(cli: Cli) -> Result<u8> {
    let shutdown = Shutdown::new();
    shutdown.listen_for_signals();
    match cli.command {
        Command::Replay(args) => {
            let cfg = ReplayConfig::try_from(&args)?;
            let kafka = KafkaConfig::try_from(&args.kafka)?;
            let report = replay::run(kafka, cfg, shutdown).await?;
            report_line(&report.summary());
            match &report.ended {
                Ended::BadRow(b) => tracing::error!("{b}"),
                Ended::Unacknowledged(failures) => {
                    for f in failures {
                        tracing::error!(
                            "partition {}: {} row(s) not acknowledged by the broker: {}",
                            f.partition,
                            f.rows,
                            f.error
                        );
                    }
                }
                _ => {}
            }
            Ok(report.exit_code())
        }
        Command::Topic(t) => {
            let text = match t {
                TopicCommand::Create { name, partitions, replication_factor, if_not_exists, kafka } => {
                    crate::topic::create(
                        KafkaConfig::try_from(&kafka)?,
                        &name,
                        partitions,
                        replication_factor,
                        if_not_exists,
                    )
                    .await?
                }
                TopicCommand::List { kafka } => crate::topic::list(KafkaConfig::try_from(&kafka)?).await?,
                TopicCommand::Describe { name, kafka } => {
                    crate::topic::describe(KafkaConfig::try_from(&kafka)?, &name).await?
                }
                TopicCommand::Delete { name, kafka } => {
                    crate::topic::delete(KafkaConfig::try_from(&kafka)?, &name).await?
                }
            };
            print(&text)?;
            Ok(0)
        }
        Command::Consume(args) => {
            let cfg = crate::consume::ConsumeConfig::try_from(&args)?;
            let n = crate::consume::run(KafkaConfig::try_from(&args.kafka)?, cfg, shutdown.clone()).await?;
            tracing::debug!(records = n, "consume finished");
            Ok(shutdown.reason().map_or(0, |r| r.exit_code()))
        }
        Command::Schema(SchemaCommand::Show { preset }) => {
            let s = Schema::preset(&preset)
                .ok_or_else(|| Error::Usage(crate::schema::SchemaError::UnknownPreset(preset).to_string()))?;
            print(s.to_toml().trim_end())?;
            Ok(0)
        }
        Command::Schema(SchemaCommand::Infer { input }) => {
            let input = replay::Input::parse(&input);
            let schema = tokio::task::spawn_blocking(move || -> Result<Schema> {
                let mut src = replay::source::CsvSource::new(&input, Default::default())?;
                Ok(src.resolve_schema(None)?.0)
            })
            .await
            .expect("schema inference panicked")?;
            print(schema.to_toml().trim_end())?;
            Ok(0)
        }
        Command::Sink(args) => {
            let cfg = crate::sink::SinkConfig::try_from(args.as_ref())?;
            let report = crate::sink::run(KafkaConfig::try_from(&args.kafka)?, cfg, shutdown).await?;
            report_line(&report.summary);
            Ok(report.stopped.map_or(0, |r| r.exit_code()))
        }
        Command::Lake(crate::cli::LakeCommand::Stats { topic, lake }) => {
            print(&crate::inspect::stats(&lake.url()?, &lake.s3(), &topic).await?)?;
            Ok(0)
        }
        Command::Lake(crate::cli::LakeCommand::Verify { topic, lake }) => {
            let report = crate::inspect::verify(&lake.url()?, &lake.s3(), &topic).await?;
            print(report.render(&topic).trim_end())?;
            Ok(if report.ok() { 0 } else { crate::exit::VERIFY_FAILED })
        }
        Command::Athena(a) => {
            let req = crate::athena::Request {
                table: a.table.clone(),
                lake: a.lake.url()?,
                s3: a.lake.s3(),
                topic: a.topic.clone(),
                schema: crate::cli::resolve_schema_arg(a.schema.as_deref())?,
                partition_by: a.partition_by.clone(),
                projection: !a.no_projection,
                first_year: a.first_year,
                queries: a.print_queries.then(|| (a.query_symbol.clone(), a.query_year)),
                since_version: a.since_version,
            };
            print(&crate::athena::run(&req).await?)?;
            Ok(0)
        }
        Command::Doctor(a) => {
            let lake = match &a.to {
                Some(to) => {
                    let args = crate::cli::LakeArgs {
                        to: to.clone(),
                        s3_endpoint: a.s3_endpoint.clone(),
                        region: a.region.clone(),
                    };
                    let s3 = crate::lake::S3Options { retry_for: std::time::Duration::from_secs(5), ..args.s3() };
                    Some((args.url()?, s3))
                }
                None => None,
            };
            let cfg = crate::doctor::DoctorConfig {
                kafka: KafkaConfig::try_from(&a.kafka)?,
                topic: a.topic.clone(),
                write_test: a.write_test,
                lake,
            };
            let report = crate::doctor::run(&cfg).await;
            print(&report.summary())?;
            Ok(if report.failed() == 0 { 0 } else { crate::exit::DOCTOR_FAILED })
        }
        Command::Config(crate::cli::ConfigCommand::Show { command_line }) => {
            print(&crate::config::show(cli.global.config.as_deref(), &command_line).map_err(Error::Usage)?)?;
            Ok(0)
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "ticklake", &mut std::io::stdout());
            Ok(0)
        }
        Command::Man { dir } => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let io = |e, what: &str| Error::Io { context: format!("writing the man page {what}"), source: e };
            match dir {
                None => {
                    let mut out = Vec::new();
                    clap_mangen::Man::new(cmd).render(&mut out).map_err(|e| io(e, "to stdout"))?;
                    print(String::from_utf8_lossy(&out).trim_end())?;
                }
                Some(d) => {
                    std::fs::create_dir_all(&d).map_err(|e| io(e, &d.display().to_string()))?;
                    clap_mangen::generate_to(cmd, &d).map_err(|e| io(e, &d.display().to_string()))?;
                }
            }
            Ok(0)
        }
        Command::Sample(a) => {
            let start = chrono::NaiveDate::parse_from_str(&a.start, "%Y-%m-%d")
                .map_err(|_| Error::Usage(format!("--start '{}' is not a date like 2015-01-02", a.start)))?;
            tokio::task::spawn_blocking(move || {
                write_sample(a.layout, a.out.as_deref(), a.rows, a.symbols, start, a.seed)
            })
            .await
            .expect("sample writer panicked")?;
            Ok(0)
        }
    }
}

fn write_sample(
    layout: SampleLayout,
    out: Option<&std::path::Path>,
    rows: u64,
    symbols: usize,
    start: chrono::NaiveDate,
    seed: u64,
) -> Result<()> {
    let io = |source, path: &std::path::Path| Error::Io { context: format!("writing {}", path.display()), source };
    let mut sink: Box<dyn Write> = match out {
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
        Some(p) => {
            let f = std::io::BufWriter::new(std::fs::File::create(p).map_err(|e| io(e, p))?);
            if p.extension().is_some_and(|e| e == "gz") {
                Box::new(flate2::write::GzEncoder::new(f, flate2::Compression::default()))
            } else {
                Box::new(f)
            }
        }
    };
    let path = out.unwrap_or(std::path::Path::new("<stdout>"));
    match layout {
        SampleLayout::Indices => crate::sample::write_indices(&mut sink, rows, symbols, start, seed),
        SampleLayout::Ticks => crate::sample::write_ticks(&mut sink, rows, symbols, start, seed),
    }
    .and_then(|_| sink.flush())
    .map_err(|e| io(e, path))
}
