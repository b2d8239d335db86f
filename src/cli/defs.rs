//! The clap derive structs: every flag, its help, its default and its environment variable. No logic here.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub use super::pipeline_defs::{CompressionArg, FormatArg, ReplayArgs, SinkArgs, When};
use super::values::{parse_bytes, parse_duration};
use crate::kafka::DEFAULT_BROKERS;
use crate::kafka::security::{Mechanism, Protocol};
pub use crate::output::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "ticklake",
    version,
    about = "Replay market data from CSV into Kafka, land it in S3 as Parquet or Apache Iceberg for Athena"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "TICKLAKE_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// More log output (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only warnings and errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// A TOML file with the same keys as the flags (flags > environment > file > defaults); see `config show`.
    #[arg(long, global = true, env = "TICKLAKE_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct KafkaArgs {
    /// Bootstrap brokers, comma-separated host:port.
    #[arg(long, env = "KAFKA_BROKERS", default_value = DEFAULT_BROKERS)]
    pub brokers: String,
    /// Deadline for each Kafka operation (connect, metadata, one produce or fetch), retries included.
    #[arg(long = "kafka-timeout", env = "KAFKA_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// plaintext, ssl, sasl_plaintext or sasl_ssl (Kafka's security.protocol).
    #[arg(long, env = "KAFKA_SECURITY_PROTOCOL", value_enum, ignore_case = true, default_value_t = Protocol::Plaintext)]
    pub security_protocol: Protocol,
    /// SASL mechanism with sasl_*: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, or AWS_MSK_IAM (Amazon MSK's IAM access
    /// control: credentials from the AWS chain, region from AWS_REGION; no username or password).
    #[arg(long, env = "KAFKA_SASL_MECHANISM", value_enum, ignore_case = true, default_value_t = Mechanism::ScramSha512)]
    pub sasl_mechanism: Mechanism,
    /// SASL user. The password comes from KAFKA_SASL_PASSWORD or --sasl-password-file, never from a flag.
    #[arg(long, env = "KAFKA_SASL_USERNAME")]
    pub sasl_username: Option<String>,
    /// A file whose first line is the SASL password (instead of KAFKA_SASL_PASSWORD).
    #[arg(long, env = "KAFKA_SASL_PASSWORD_FILE")]
    pub sasl_password_file: Option<PathBuf>,
    /// PEM CA bundle for the broker's certificate (default: the system's roots).
    #[arg(long, env = "KAFKA_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (with --client-key).
    #[arg(long, env = "KAFKA_CLIENT_CERT")]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(long, env = "KAFKA_CLIENT_KEY")]
    pub client_key: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replay a CSV file (or .gz, or - for stdin) into a Kafka topic.
    Replay(ReplayArgs),
    /// Create, list, describe or delete topics.
    #[command(subcommand)]
    Topic(TopicCommand),
    /// Print records of a topic as JSON lines on stdout.
    Consume(ConsumeArgs),
    /// Show a preset schema or infer one from a CSV file.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Generate deterministic sample CSV data (what `data/` holds).
    Sample(SampleArgs),
    /// Land a topic in S3 (or a local folder) as hive-partitioned Parquet or an Apache Iceberg table, exactly once.
    Sink(Box<SinkArgs>),
    /// Inspect and maintain a lake: stats, verify (every offset exactly once), compact, schema, retype.
    #[command(subcommand)]
    Lake(LakeCommand),
    /// Print the Athena CREATE EXTERNAL TABLE (with partition projection) matching what the sink writes.
    Athena(AthenaArgs),
    /// The feed and the lake in a browser: prices, charts, lag, commits, small files (http://127.0.0.1:8080).
    Dashboard(Box<super::DashboardArgs>),
    /// Why can't I connect? Checks Kafka (bootstrap, advertised brokers, topic) and the lake, with fixes.
    Doctor(DoctorArgs),
    /// The effective configuration and where each value comes from.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script: `ticklake completions bash > /etc/bash_completion.d/ticklake`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one page per command into --dir.
    Man {
        /// Write ticklake.1 and ticklake-<command>.1 here instead of printing ticklake.1.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective settings (secrets masked) as TOML, each with its source: flag, env, file or default.
    /// Without a command line, every command; with one (`config show sink --topic t`), that command.
    Show {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command_line: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Also check this topic: exists, partitions, leaders.
    #[arg(long, short, env = "TICKLAKE_TOPIC")]
    pub topic: Option<String>,
    /// Also produce and fetch one record on a scratch topic (created and deleted).
    #[arg(long)]
    pub write_test: bool,
    /// Also check that this consumer group's coordinator answers (`sink --group`).
    #[arg(long, env = "TICKLAKE_GROUP")]
    pub group: Option<String>,
    /// Also check the lake: s3://bucket/prefix (reachable, credentials, write/read/delete a probe, clock skew) or
    /// a local folder.
    #[arg(long, env = "TICKLAKE_TO")]
    pub to: Option<String>,
    /// S3 endpoint for MinIO or a test server [default: $AWS_ENDPOINT_URL].
    #[arg(long = "s3-endpoint")]
    pub s3_endpoint: Option<String>,
    /// AWS region of the bucket [default: $AWS_REGION, then $AWS_DEFAULT_REGION].
    #[arg(long)]
    pub region: Option<String>,
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

#[derive(Debug, Args)]
pub struct AthenaArgs {
    /// `database.table`.
    #[arg(long)]
    pub table: String,
    #[command(flatten)]
    pub lake: LakeArgs,
    /// Only for a lake written before the stored table spec: read this topic's schema (`_ticklake/schemas/`).
    /// A lake with a table spec (`_ticklake/table.toml`) needs neither this nor --partition-by.
    #[arg(long, short)]
    pub topic: Option<String>,
    /// Print for this schema (a preset or a schema file) instead of reading the lake.
    #[arg(long)]
    pub schema: Option<String>,
    /// With --schema: the sink's --partition-by (default: the schema's default, as the sink). Read from the lake
    /// otherwise.
    #[arg(long)]
    pub partition_by: Option<String>,
    /// Print `ALTER TABLE ... ADD COLUMNS` for the columns added after this schema version (the version the
    /// Athena table was created at; `lake stats` and this command's log show the current one) instead of the DDL.
    #[arg(long, value_name = "VERSION")]
    pub since_version: Option<u32>,
    /// An Iceberg table written by `sink --format iceberg`: its catalog (`glue`, `sqlite:PATH`, `rest:URL`). Prints
    /// what Athena needs for it (with glue: nothing to create) and the maintenance commands.
    #[arg(long)]
    pub catalog: Option<String>,
    /// A plain partitioned table plus MSCK REPAIR TABLE instead of partition projection.
    #[arg(long)]
    pub no_projection: bool,
    /// Where year/date projection ranges start for a key the lake holds no value of yet (default: this year).
    /// With a lake, each range starts at its first partition.
    #[arg(long)]
    pub first_year: Option<i32>,
    /// Create or update the table in the AWS Glue Data Catalog (what Athena reads) instead of printing the DDL:
    /// columns, partition keys, projection (an enum of the lake's values for identity keys, current each time it
    /// runs), location. For an Iceberg table on another catalog: register or update it in Glue at its current
    /// metadata.
    #[arg(long)]
    pub apply: bool,
    /// Also print ready queries that hit the partitions (latest close per symbol in a year, a monthly average).
    #[arg(long)]
    pub print_queries: bool,
    /// Symbol and year used by --print-queries.
    #[arg(long, default_value = "HSI")]
    pub query_symbol: String,
    #[arg(long, default_value_t = 2021)]
    pub query_year: i32,
}

#[derive(Debug, Args, Clone)]
pub struct LakeArgs {
    /// The lake: s3://bucket/prefix, or a local folder (`athena` prints a local lake's DDL with a placeholder LOCATION).
    #[arg(long, env = "TICKLAKE_TO", default_value = "./lake")]
    pub to: String,
    /// S3 endpoint for MinIO or a test server (path-style addressing); unset for AWS [default: $AWS_ENDPOINT_URL].
    // Read from the environment in `s3()`, not by clap: clap's usage line in an error would list an argument the
    // environment set as if the user had to pass it.
    #[arg(long = "s3-endpoint")]
    pub s3_endpoint: Option<String>,
    /// AWS region of the bucket [default: $AWS_REGION, then $AWS_DEFAULT_REGION].
    #[arg(long)]
    pub region: Option<String>,
}

/// `lake stats|verify` on an Iceberg table instead of the hive lake.
#[derive(Debug, Args)]
pub struct IcebergTableArgs {
    /// An Iceberg table (`database.table`, written by `sink --format iceberg`) instead of the hive lake.
    #[arg(long, requires = "catalog")]
    pub table: Option<String>,
    /// The Iceberg table's catalog: `glue`, `sqlite:PATH` or `rest:URL`.
    #[arg(long, requires = "table")]
    pub catalog: Option<String>,
}

/// The Iceberg table a maintenance command works on, all three required: the warehouse, the table, its catalog.
#[derive(Debug, Args)]
pub struct IcebergTarget {
    /// The warehouse (the sink's --to).
    #[command(flatten)]
    pub lake: LakeArgs,
    /// The Iceberg table (`database.table`).
    #[arg(long)]
    pub table: String,
    /// Its catalog: `glue`, `sqlite:PATH` or `rest:URL`.
    #[arg(long)]
    pub catalog: String,
}

impl IcebergTarget {
    /// The warehouse, its S3 settings and the table.
    pub fn resolve(
        self,
    ) -> Result<(crate::lake::LakeUrl, crate::lake::S3Options, crate::lake_cmd::iceberg::IcebergTable), crate::Error>
    {
        let t = IcebergTableArgs { table: Some(self.table), catalog: Some(self.catalog) }.table()?.expect("both given");
        Ok((self.lake.url()?, self.lake.s3(), t))
    }
}

#[derive(Debug, Subcommand)]
pub enum LakeCommand {
    /// Hive partitions, files, rows and bytes of a topic's lake, and its checkpoints.
    Stats {
        /// The Kafka topic whose lake to read (the sink's --topic).
        #[arg(long, short, env = "TICKLAKE_TOPIC")]
        topic: String,
        #[command(flatten)]
        lake: LakeArgs,
        #[command(flatten)]
        iceberg: IcebergTableArgs,
    },
    /// Check from the files themselves that every offset is in the lake exactly once; exits non-zero otherwise.
    /// With --source FILE: also that every row of the CSV file replay sent (minus the rows the schema rejects) is
    /// in the topic exactly once, and the lake caught up with the topic: exactly once from the file to the lake.
    Verify {
        /// The Kafka topic whose lake to read (the sink's --topic).
        #[arg(long, short, env = "TICKLAKE_TOPIC")]
        topic: String,
        #[command(flatten)]
        lake: LakeArgs,
        #[command(flatten)]
        iceberg: IcebergTableArgs,
        /// The CSV file replayed into the topic (reads the topic's records of it: the broker must still hold them).
        #[arg(long)]
        source: Option<std::path::PathBuf>,
        #[command(flatten)]
        kafka: KafkaArgs,
    },
    /// Iceberg: delete the data files of the topic that no snapshot references (a crashed sink's uploads), for any
    /// catalog. Takes the topic's leases first, as a sink would: exits 13 while a sink of the table runs.
    RemoveOrphans {
        /// The Kafka topic whose orphans to remove (the sink's --topic).
        #[arg(long, short, env = "TICKLAKE_TOPIC")]
        topic: String,
        #[command(flatten)]
        target: IcebergTarget,
        /// How long a lease not renewed means its sink is gone (the sink's --lease-ttl).
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        lease_ttl: Duration,
        /// Only orphans last written longer ago than this (a paused sink may still commit a younger one).
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        older_than: Duration,
    },
    /// Iceberg snapshot retention (for the sqlite and REST catalogs; Athena's VACUUM does it for Glue): expire
    /// snapshots older than --older-than, keeping the newest --retain-last and each topic's latest offsets, and
    /// delete the files only they referenced and the metadata files the table no longer lists.
    Expire {
        #[command(flatten)]
        target: IcebergTarget,
        /// Expire snapshots (and delete unlisted metadata files) older than this.
        #[arg(long, default_value = "5d", value_parser = parse_duration)]
        older_than: Duration,
        /// Always keep this many of the newest snapshots.
        #[arg(long, default_value_t = 1)]
        retain_last: usize,
        /// How many earlier metadata files the table lists (`write.metadata.previous-versions-max`, set on the
        /// table: every later commit trims its list to it); unlisted ones are deleted.
        #[arg(long, default_value_t = 10)]
        keep_metadata: usize,
    },
    /// Print the lake's schema as a schema file (TOML, for --schema).
    Schema {
        #[command(flatten)]
        lake: LakeArgs,
    },
    /// Change the stored type of a column while no data file holds it: the repair of a column typed wrongly by
    /// inference (`lake stats` lists the inferred ones). Refused once a file holds the column (it says how to
    /// rewrite instead) or while a sink holds the lake.
    Retype {
        #[command(flatten)]
        lake: LakeArgs,
        /// The column, by its name in the lake.
        #[arg(long)]
        column: String,
        /// Its new type: string, bigint, double, date, timestamp or boolean.
        #[arg(long = "type", value_parser = parse_column_type)]
        ty: crate::schema::ColumnType,
    },
    /// Merge the small files of each hive partition (per Kafka partition) into files near --target-size, exactly
    /// once and resumably; safe while a sink writes the same lake.
    Compact {
        /// The Kafka topic whose lake to read (the sink's --topic).
        #[arg(long, short, env = "TICKLAKE_TOPIC")]
        topic: String,
        #[command(flatten)]
        lake: LakeArgs,
        /// Only files whose newest record (kafka_timestamp) is older than this, e.g. `1d` (default: every file).
        #[arg(long, value_parser = parse_duration)]
        older_than: Option<Duration>,
        /// Size to aim the merged files at.
        #[arg(long, default_value = "128MiB", value_parser = parse_bytes)]
        target_size: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        name: String,
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        #[arg(long, default_value_t = 1)]
        replication_factor: i16,
        /// Succeed if the topic already exists.
        #[arg(long)]
        if_not_exists: bool,
        #[command(flatten)]
        kafka: KafkaArgs,
    },
    /// List topics with their partition counts.
    List {
        #[command(flatten)]
        kafka: KafkaArgs,
    },
    /// Show a topic's partitions with their earliest offset and high watermark.
    Describe {
        name: String,
        #[command(flatten)]
        kafka: KafkaArgs,
    },
    /// Delete a topic.
    Delete {
        name: String,
        #[command(flatten)]
        kafka: KafkaArgs,
    },
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// The topic to read.
    #[arg(long, short, env = "TICKLAKE_TOPIC")]
    pub topic: String,
    /// Only this partition (default: all).
    #[arg(long)]
    pub partition: Option<i32>,
    /// Where to start: earliest, latest, or an offset number.
    #[arg(long, default_value = "earliest")]
    pub offset: String,
    /// Stop after N records.
    #[arg(long)]
    pub limit: Option<u64>,
    /// Stop once every partition reaches the high watermark seen at start (otherwise follow, like tail -f).
    #[arg(long)]
    pub exit_at_end: bool,
    /// Print each record with its partition, offset, key and timestamp instead of the bare value.
    #[arg(long)]
    pub meta: bool,
    /// Print only the number of records read (decodes nothing: a drain, e.g. to measure fetch throughput).
    #[arg(long, conflicts_with = "meta")]
    pub count: bool,
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Print a preset schema (indices, ticks) as TOML.
    Show { preset: String },
    /// Infer a schema from a CSV file's header and first rows; prints TOML to save and pass as --schema.
    Infer { input: String },
}

#[derive(Debug, Args)]
pub struct SampleArgs {
    /// Which layout.
    #[arg(value_enum)]
    pub layout: crate::sample::Layout,
    /// Output file (default: stdout). A `.gz` name is compressed.
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Number of rows (approximate for indices: whole trading days for every symbol).
    #[arg(long, default_value_t = 4000)]
    pub rows: u64,
    /// Number of symbols.
    #[arg(long, default_value_t = 13)]
    pub symbols: usize,
    /// First day (YYYY-MM-DD).
    #[arg(long, default_value = "2015-01-02")]
    pub start: String,
    /// Seed of the deterministic generator: same seed, same bytes.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

fn parse_column_type(s: &str) -> Result<crate::schema::ColumnType, String> {
    serde_json::from_value(serde_json::Value::String(s.to_ascii_lowercase()))
        .map_err(|_| format!("'{s}' is not a column type: string, bigint, double, date, timestamp or boolean"))
}
