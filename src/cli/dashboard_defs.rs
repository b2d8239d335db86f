//! `ticklake dashboard`'s flags, and their turning into the dashboard's config.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::defs::{IcebergTableArgs, KafkaArgs, LakeArgs};
use super::values::parse_duration;
use crate::dashboard::DashboardConfig;

#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// The topic to show.
    #[arg(long, short, env = "TICKLAKE_TOPIC")]
    pub topic: String,
    /// Also show the lake the sink writes: s3://bucket/prefix or a local folder (with --table and --catalog, the
    /// Iceberg table's warehouse).
    #[arg(long)]
    pub to: Option<String>,
    #[command(flatten)]
    pub iceberg: IcebergTableArgs,
    /// S3 endpoint for MinIO or a test server; unset for AWS [default: $AWS_ENDPOINT_URL].
    #[arg(long = "s3-endpoint")]
    pub s3_endpoint: Option<String>,
    /// AWS region of the bucket [default: $AWS_REGION, then $AWS_DEFAULT_REGION].
    #[arg(long)]
    pub region: Option<String>,
    /// Address to serve on. Anything but a loopback address needs a token.
    #[arg(long, env = "TICKLAKE_DASHBOARD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// A file whose first line is the token every request must bring (at least 16 characters).
    #[arg(long, env = "TICKLAKE_DASHBOARD_TOKEN_FILE")]
    pub auth_token_file: Option<PathBuf>,
    /// Records per Kafka partition shown from before the page opened.
    #[arg(long, default_value_t = 500)]
    pub history: i64,
    /// How often the lake is read again (bounded reads: a listing, checkpoints, new files' footers).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub lake_every: Duration,
    /// A running replay's or sink's metrics address (`http://HOST:PORT/metrics`, from its `--metrics-addr`), shown as
    /// values and rates; repeat for each.
    #[arg(long = "metrics")]
    pub metrics: Vec<String>,
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

impl TryFrom<&DashboardArgs> for DashboardConfig {
    type Error = crate::Error;

    fn try_from(a: &DashboardArgs) -> Result<Self, Self::Error> {
        let token = match &a.auth_token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| crate::Error::Usage(format!("--auth-token-file {}: {e}", path.display())))?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            ),
            None => std::env::var("TICKLAKE_DASHBOARD_TOKEN").ok().filter(|t| !t.trim().is_empty()),
        };
        let lake = match &a.to {
            Some(to) => {
                let args = LakeArgs { to: to.clone(), s3_endpoint: a.s3_endpoint.clone(), region: a.region.clone() };
                Some((args.url()?, args.s3(), a.iceberg.table()?))
            }
            None if a.iceberg.table.is_some() => {
                return Err(crate::Error::Usage(
                    "--table needs --to, the table's warehouse (s3://bucket/prefix)".into(),
                ));
            }
            None => None,
        };
        let cfg = DashboardConfig {
            topic: a.topic.clone(),
            lake,
            listen: a.listen,
            token,
            history: a.history.max(0),
            lake_every: a.lake_every.max(Duration::from_millis(500)),
            metrics: a.metrics.clone(),
        };
        crate::dashboard::check(&cfg)?;
        Ok(cfg)
    }
}
