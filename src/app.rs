//! Command dispatch, and nothing else: each arm turns parsed flags into the command's config and calls its `run`.
//! What a command prints and how it fails live in the command; which code a failure exits with lives in `exit`.

use crate::cli::{Cli, Command, ConfigCommand, LakeCommand, SchemaCommand, TopicCommand};
use crate::exit::Kind;
use crate::kafka::KafkaConfig;
use crate::output::{print, report_summary};
use crate::replay::{self, ReplayConfig};
use crate::shutdown::Shutdown;
use crate::{Error, Result};

/// Runs one command: `Ok(None)` when it did its job, `Ok(Some(kind))` when it ran to its end but failed (a bad row,
/// a verify that found a gap, a stop signal), `Err` when it could not run.
pub async fn run(cli: Cli) -> Result<Option<Kind>> {
    let shutdown = Shutdown::process().clone();
    shutdown.listen_for_signals();
    let stopped = |s: &Shutdown| s.reason().map(|r| r.kind());
    match cli.command {
        Command::Replay(args) => {
            let report =
                replay::run(KafkaConfig::try_from(&args.kafka)?, ReplayConfig::try_from(&args)?, shutdown).await?;
            report_summary("replay", &report.summary(), &report.counts());
            report.log_failures();
            Ok(report.failure())
        }
        Command::Topic(t) => {
            let text = match t {
                TopicCommand::Create { name, partitions, replication_factor, if_not_exists, kafka } => {
                    let kafka = KafkaConfig::try_from(&kafka)?;
                    crate::topic::create(kafka, &name, partitions, replication_factor, if_not_exists).await?
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
            Ok(None)
        }
        Command::Consume(args) => {
            let cfg = crate::consume::ConsumeConfig::try_from(&args)?;
            crate::consume::run(KafkaConfig::try_from(&args.kafka)?, cfg, shutdown.clone()).await?;
            Ok(stopped(&shutdown))
        }
        Command::Dashboard(args) => {
            let cfg = crate::dashboard::DashboardConfig::try_from(args.as_ref())?;
            crate::dashboard::run(KafkaConfig::try_from(&args.kafka)?, cfg, shutdown.clone()).await?;
            Ok(stopped(&shutdown))
        }
        Command::Schema(SchemaCommand::Show { preset }) => {
            print(crate::schema::preset_toml(&preset).map_err(|e| Error::Usage(e.to_string()))?.trim_end())?;
            Ok(None)
        }
        Command::Schema(SchemaCommand::Infer { input }) => {
            print(replay::infer_schema_toml(replay::Input::parse(&input)).await?.trim_end())?;
            Ok(None)
        }
        Command::Sink(args) => {
            let cfg = crate::sink::SinkConfig::try_from(args.as_ref())?;
            let report = crate::sink::run(KafkaConfig::try_from(&args.kafka)?, cfg, shutdown).await?;
            report_summary("sink", &report.summary, &report.counts);
            Ok(report.stopped.map(|r| r.kind()))
        }
        Command::Lake(LakeCommand::Stats { topic, lake, iceberg }) => {
            let text = match iceberg.table()? {
                Some(t) => crate::lake_cmd::iceberg::stats(&lake.url()?, &lake.s3(), &t, &topic).await?,
                None => crate::lake_cmd::stats(&lake.url()?, &lake.s3(), &topic).await?,
            };
            print(&text)?;
            Ok(None)
        }
        Command::Lake(LakeCommand::Verify { topic, lake, iceberg, source, kafka }) => {
            // The lake's own verdict, and per Kafka partition the next offset it holds (its checkpoint, or the
            // offsets the Iceberg table's newest ticklake snapshot recorded).
            let (lake_ok, next): (bool, std::collections::BTreeMap<i32, i64>) = match iceberg.table()? {
                Some(t) => {
                    let report = crate::lake_cmd::iceberg::verify(&lake.url()?, &lake.s3(), &t, &topic).await?;
                    print(report.render(&t.table, &topic).trim_end())?;
                    (report.exactly_once(), report.recorded.clone())
                }
                None => {
                    let report = crate::lake_cmd::verify(&lake.url()?, &lake.s3(), &topic).await?;
                    print(report.render(&topic).trim_end())?;
                    (report.ok(), report.partitions.iter().map(|(p, r)| (*p, r.next)).collect())
                }
            };
            let Some(file) = source else { return Ok((!lake_ok).then_some(Kind::VerifyFailed)) };
            let from_file = crate::lake_cmd::source::check(KafkaConfig::try_from(&kafka)?, &file, &topic).await?;
            print(from_file.render().trim_end())?;
            // The lake caught up with the topic: its next offset is the topic's end in every partition.
            let behind: Vec<String> = from_file
                .topic
                .iter()
                .filter(|&(p, &(_, end))| next.get(p).map_or(end > 0, |n| *n < end))
                .map(|(p, (_, end))| {
                    format!("partition {p}: lake at {}, topic at {end}", next.get(p).copied().unwrap_or(0))
                })
                .collect();
            if !behind.is_empty() {
                print(&format!("the lake has not caught up with the topic ({}): run the sink", behind.join("; ")))?;
            }
            let end_to_end = lake_ok && from_file.ok() && behind.is_empty();
            print(if end_to_end {
                "from the file to the lake, exactly once: yes"
            } else {
                "from the file to the lake, exactly once: NO"
            })?;
            Ok((!end_to_end).then_some(Kind::VerifyFailed))
        }
        Command::Lake(LakeCommand::RemoveOrphans { topic, target, lease_ttl, older_than }) => {
            let (url, s3, t) = target.resolve()?;
            print(&crate::lake_cmd::iceberg::remove_orphans(&url, &s3, &t, &topic, lease_ttl, older_than).await?)?;
            Ok(None)
        }
        Command::Lake(LakeCommand::Expire { target, older_than, retain_last, keep_metadata }) => {
            let (url, s3, t) = target.resolve()?;
            print(&crate::lake_cmd::iceberg::expire(&url, &s3, &t, older_than, retain_last, keep_metadata).await?)?;
            Ok(None)
        }
        Command::Lake(LakeCommand::Schema { lake }) => {
            print(crate::lake_cmd::schema(&lake.url()?, &lake.s3()).await?.trim_end())?;
            Ok(None)
        }
        Command::Lake(LakeCommand::Retype { lake, column, ty }) => {
            print(&crate::lake_cmd::retype(&lake.url()?, &lake.s3(), &column, ty).await?)?;
            Ok(None)
        }
        Command::Lake(LakeCommand::Compact { topic, lake, older_than, target_size }) => {
            let report =
                crate::lake_cmd::compact::run(&lake.url()?, &lake.s3(), &topic, older_than, target_size).await?;
            report_summary(
                "compact",
                &report.summary(&topic),
                &[
                    ("merged", report.merged as u64),
                    ("inputs", report.inputs as u64),
                    ("bytes_read", report.bytes_read),
                ],
            );
            Ok(None)
        }
        Command::Athena(a) => {
            print(&crate::athena::run(&crate::cli::athena_request(&a)?).await?)?;
            Ok(None)
        }
        Command::Doctor(a) => {
            let report = crate::doctor::run(&crate::cli::doctor_config(&a)?).await;
            print(&report.summary())?;
            Ok((report.failed() > 0).then_some(Kind::DoctorFailed))
        }
        Command::Config(ConfigCommand::Show { command_line }) => {
            print(&crate::cli::config_file::show(cli.global.config.as_deref(), &command_line).map_err(Error::Usage)?)?;
            Ok(None)
        }
        Command::Completions { shell } => {
            crate::cli::docs::completions(shell)?;
            Ok(None)
        }
        Command::Man { dir } => {
            crate::cli::docs::man(dir.as_deref())?;
            Ok(None)
        }
        Command::Sample(a) => {
            let start = chrono::NaiveDate::parse_from_str(&a.start, "%Y-%m-%d")
                .map_err(|_| Error::Usage(format!("--start '{}' is not a date like 2015-01-02", a.start)))?;
            tokio::task::spawn_blocking(move || {
                crate::sample::write_to(a.layout, a.out.as_deref(), a.rows, a.symbols, start, a.seed)
            })
            .await
            .map_err(|e| Error::Internal(format!("sample writer: {e}")))??;
            Ok(None)
        }
    }
}
