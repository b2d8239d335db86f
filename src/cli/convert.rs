//! Raw flags into the validated configs the commands run with: durations, URLs, partition lists, schemas and
//! partition specs are checked here, once, before any network round trip.

use std::path::PathBuf;
use std::time::Duration;

use super::defs::*;
use super::values::{env_default, parse_partition_list};
use crate::consume::{ConsumeConfig, StartAt};
use crate::kafka::security::{Mechanism, Security, TlsFiles};
use crate::kafka::{Compression, KafkaConfig};
use crate::replay::{Input, OnError, Pace, ProduceConfig, ReplayConfig};
use crate::schema::{Schema, SchemaError, load_schema_file};

impl TryFrom<&KafkaArgs> for KafkaConfig {
    type Error = crate::kafka::Error;
    fn try_from(a: &KafkaArgs) -> Result<Self, Self::Error> {
        let files = TlsFiles {
            ca_file: a.ca_file.clone(),
            client_cert: a.client_cert.clone(),
            client_key: a.client_key.clone(),
        };
        let sasl = if a.sasl_mechanism == Mechanism::AwsMskIam && a.security_protocol.sasl() {
            // MSK IAM signs for the cluster's region; the credentials come from the AWS chain, not a user.
            let region =
                std::env::var("AWS_REGION").or_else(|_| std::env::var("AWS_DEFAULT_REGION")).map_err(|_| {
                    crate::kafka::Error::Config(
                        "--sasl-mechanism AWS_MSK_IAM signs for the cluster's region: set AWS_REGION (e.g. us-east-1)"
                            .into(),
                    )
                })?;
            Some((Mechanism::AwsMskIam, region))
        } else {
            a.sasl_username.clone().map(|u| (a.sasl_mechanism, u))
        };
        let security = Security::new(a.security_protocol, &files, sasl, a.sasl_password_file.as_deref())?;
        Ok(KafkaConfig { security, ..KafkaConfig::new(&a.brokers, a.timeout)? })
    }
}

impl LakeArgs {
    pub fn url(&self) -> Result<crate::lake::LakeUrl, crate::Error> {
        crate::lake::LakeUrl::parse(&self.to).map_err(|e| crate::Error::Usage(e.to_string()))
    }
    pub fn s3(&self) -> crate::lake::S3Options {
        crate::lake::S3Options {
            region: self.region.clone().or_else(|| env_default("region").map(|(_, v)| v)),
            endpoint: self.s3_endpoint.clone().or_else(|| env_default("s3_endpoint").map(|(_, v)| v)),
            glue_endpoint: env_default("glue_endpoint").map(|(_, v)| v),
            request_timeout: Some(Duration::from_secs(30)),
            retry_for: Duration::from_secs(30),
        }
    }
}

impl IcebergTableArgs {
    /// The Iceberg table `lake stats|verify` read (`None`: the hive lake).
    pub fn table(&self) -> Result<Option<crate::lake_cmd::iceberg::IcebergTable>, crate::Error> {
        let (Some(table), Some(catalog)) = (&self.table, &self.catalog) else { return Ok(None) };
        crate::lake::iceberg::table_name(table).map_err(crate::Error::Usage)?;
        Ok(Some(crate::lake_cmd::iceberg::IcebergTable {
            table: table.clone(),
            catalog: crate::lake::iceberg::CatalogUrl::parse(catalog).map_err(crate::Error::Usage)?,
        }))
    }
}

impl TryFrom<&SinkArgs> for crate::sink::SinkConfig {
    type Error = crate::Error;
    fn try_from(a: &SinkArgs) -> Result<Self, Self::Error> {
        let usage = |m: String| crate::Error::Usage(m);
        if a.max_rows == 0 || a.row_group_rows == 0 {
            return Err(usage("--max-rows and --row-group-rows must be at least 1".into()));
        }
        // Before any I/O: the spec's syntax always; its columns too when the schema is given here.
        let schema = resolve_schema_arg(a.schema.as_deref())?;
        let iceberg = match a.format {
            FormatArg::Hive => {
                if a.table.is_some() || a.catalog.is_some() {
                    return Err(usage("--table and --catalog are for --format iceberg".into()));
                }
                None
            }
            FormatArg::Iceberg => {
                let (Some(table), Some(catalog)) = (&a.table, &a.catalog) else {
                    return Err(usage("--format iceberg needs --table database.table and --catalog".into()));
                };
                crate::lake::iceberg::table_name(table).map_err(usage)?;
                #[cfg(feature = "iceberg")]
                if let Some(p) = &a.partition_by {
                    crate::lake::iceberg::spec::normalize_partition_by(p).map_err(|e| usage(e.to_string()))?;
                }
                Some(crate::sink::IcebergOptions {
                    table: table.clone(),
                    catalog: crate::lake::iceberg::CatalogUrl::parse(catalog).map_err(usage)?,
                })
            }
        };
        if let Some(p) = a.partition_by.as_ref().filter(|_| iceberg.is_none()) {
            match &schema {
                Some(s) => crate::lake::PartitionSpec::parse(p, s).map(|_| ()),
                None => crate::lake::PartitionSpec::check_syntax(p),
            }
            .map_err(|e| usage(e.to_string()))?;
        }
        if let (Some(s), Some(cols)) = (&schema, &a.sort_by)
            && let Some(bad) = cols.split(',').map(str::trim).find(|c| !c.is_empty() && s.field(c).is_none())
        {
            return Err(usage(format!("--sort-by: no column '{bad}' in schema '{}'", s.name)));
        }
        Ok(crate::sink::SinkConfig {
            topic: a.topic.clone(),
            lake: a.lake.url()?,
            s3: crate::lake::S3Options { retry_for: a.retry_for, ..a.lake.s3() },
            partitions: a.partitions.as_deref().map(parse_partition_list).transpose().map_err(usage)?,
            iceberg,
            schema,
            partition_by: a.partition_by.clone(),
            sort_by: a
                .sort_by
                .as_ref()
                .map(|s| s.split(',').map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect()),
            row_group_rows: a.row_group_rows,
            max_rows: a.max_rows,
            max_bytes: a.max_bytes.max(1),
            max_age: a.max_age,
            max_buffer: usize::try_from(a.max_buffer).unwrap_or(usize::MAX),
            max_record_bytes: usize::try_from(a.max_record_bytes).unwrap_or(usize::MAX),
            exit_at_end: a.exit_at_end,
            strict_schema: a.strict_schema,
            skip_deleted: a.skip_deleted,
            retry_for: a.retry_for,
            stats_every: a.stats_every.max(Duration::from_millis(100)),
            lease_ttl: a.lease_ttl.max(Duration::from_millis(300)),
            offsets_group: match (a.offsets_group.as_deref(), &a.group) {
                (Some("off"), _) => None,
                (Some(g), Some(member_of)) if g != member_of => {
                    return Err(usage(format!(
                        "--offsets-group {g} with --group {member_of}: a member commits its checkpoints to its own group; drop --offsets-group"
                    )));
                }
                (Some(g), _) => Some(g.to_string()),
                (None, Some(member_of)) => Some(member_of.clone()),
                (None, None) => Some(crate::kafka::group_offsets::default_group(&a.topic)),
            },
            group: match &a.group {
                None => None,
                Some(_) if a.partitions.is_some() => {
                    return Err(usage(
                        "--group and --partitions: the group assigns the partitions; use one or the other".into(),
                    ));
                }
                Some(_) if a.exit_at_end => {
                    return Err(usage(
                        "--group and --exit-at-end: a member's partitions change with the group; run the members until they are stopped (SIGTERM commits what they hold)".into(),
                    ));
                }
                Some(g) if g.is_empty() || g == "off" => return Err(usage("--group needs a group name".into())),
                Some(g) => Some(crate::sink::GroupOptions { name: g.clone(), session_timeout: a.session_timeout }),
            },
            metrics_addr: a.metrics_addr,
        })
    }
}

impl From<CompressionArg> for Compression {
    fn from(c: CompressionArg) -> Self {
        match c {
            CompressionArg::Zstd => Compression::Zstd,
            CompressionArg::Lz4 => Compression::Lz4,
            CompressionArg::Snappy => Compression::Snappy,
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::None => Compression::NoCompression,
        }
    }
}

/// Resolves `--schema`: a preset name, or a path to a schema file.
pub fn resolve_schema_arg(arg: Option<&str>) -> Result<Option<Schema>, crate::Error> {
    let Some(arg) = arg else { return Ok(None) };
    if let Some(p) = Schema::preset(arg) {
        return Ok(Some(p));
    }
    let path = PathBuf::from(arg);
    if !path.exists() && !arg.contains('.') && !arg.contains('/') {
        return Err(crate::Error::Usage(SchemaError::UnknownPreset(arg.into()).to_string()));
    }
    Ok(Some(load_schema_file(&path)?))
}

impl TryFrom<&ReplayArgs> for ReplayConfig {
    type Error = crate::Error;
    fn try_from(a: &ReplayArgs) -> Result<Self, Self::Error> {
        let usage = |m: &str| Err(crate::Error::Usage(m.to_string()));
        if let Some(r) = a.rate
            && !(r > 0.0 && r.is_finite())
        {
            return usage("--rate must be a positive number of rows per second");
        }
        if let Some(s) = a.speed
            && !(s > 0.0 && s.is_finite())
        {
            return usage("--speed must be a positive factor (1 = real time, 60 = a minute per second)");
        }
        if a.partitions.is_some_and(|p| p < 1) {
            return usage("--partitions must be at least 1");
        }
        if a.rejects.is_some() && a.on_error == OnError::Fail {
            return usage("--rejects only makes sense with --on-error skip");
        }
        if a.topic.is_empty() {
            return usage("--topic must not be empty");
        }
        let pace = match (a.rate, a.speed, a.sample) {
            (Some(r), _, _) => Pace::Rate(r),
            (None, Some(s), _) => Pace::Speed(s),
            (None, None, true) => Pace::Rate(1.0),
            (None, None, false) => Pace::FlatOut,
        };
        let progress = match a.progress {
            When::Always => true,
            When::Never => false,
            When::Auto => std::io::IsTerminal::is_terminal(&std::io::stderr()),
        };
        Ok(ReplayConfig {
            input: Input::parse(&a.input),
            topic: a.topic.clone(),
            schema: resolve_schema_arg(a.schema.as_deref())?,
            create_partitions: a.partitions,
            pace,
            sample: a.sample,
            stamp_now: a.stamp_now,
            loop_input: a.loop_input,
            resume: a.resume,
            limit: a.limit,
            timestamp: a.timestamp,
            on_error: a.on_error,
            rejects: a.rejects.clone(),
            produce: ProduceConfig {
                linger: a.linger,
                batch_bytes: usize::try_from(a.batch_bytes).unwrap_or(usize::MAX).max(1),
                compression: a.compression.into(),
                retry_for: a.retry_for,
                idempotence: a.idempotence.into(),
            },
            progress,
            metrics_addr: a.metrics_addr,
        })
    }
}

impl TryFrom<&ConsumeArgs> for ConsumeConfig {
    type Error = crate::Error;
    fn try_from(a: &ConsumeArgs) -> Result<Self, Self::Error> {
        let start = match a.offset.as_str() {
            "earliest" | "beginning" => StartAt::Earliest,
            "latest" | "end" => StartAt::Latest,
            n => StartAt::Offset(n.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
                crate::Error::Usage(format!("--offset '{n}' must be earliest, latest or a non-negative offset"))
            })?),
        };
        Ok(ConsumeConfig {
            topic: a.topic.clone(),
            partition: a.partition,
            start,
            limit: a.limit,
            exit_at_end: a.exit_at_end,
            meta: a.meta,
            count: a.count,
        })
    }
}

/// `ticklake athena`'s request.
pub fn athena_request(a: &AthenaArgs) -> Result<crate::athena::Request, crate::Error> {
    Ok(crate::athena::Request {
        table: a.table.clone(),
        lake: a.lake.url()?,
        s3: a.lake.s3(),
        topic: a.topic.clone(),
        schema: resolve_schema_arg(a.schema.as_deref())?,
        partition_by: a.partition_by.clone(),
        projection: !a.no_projection,
        first_year: a.first_year,
        apply: a.apply,
        queries: a.print_queries.then(|| (a.query_symbol.clone(), a.query_year)),
        since_version: a.since_version,
        catalog: a
            .catalog
            .as_deref()
            .map(crate::lake::iceberg::CatalogUrl::parse)
            .transpose()
            .map_err(crate::Error::Usage)?,
    })
}

/// `ticklake doctor`'s checks: the lake's only if `--to` was given, with a short retry (a check, not a pipeline).
pub fn doctor_config(a: &DoctorArgs) -> Result<crate::doctor::DoctorConfig, crate::Error> {
    let lake = match &a.to {
        Some(to) => {
            let args = LakeArgs { to: to.clone(), s3_endpoint: a.s3_endpoint.clone(), region: a.region.clone() };
            let s3 = crate::lake::S3Options { retry_for: Duration::from_secs(5), ..args.s3() };
            Some((args.url()?, s3))
        }
        None => None,
    };
    Ok(crate::doctor::DoctorConfig {
        kafka: KafkaConfig::try_from(&a.kafka)?,
        topic: a.topic.clone(),
        write_test: a.write_test,
        group: a.group.clone(),
        lake,
    })
}
