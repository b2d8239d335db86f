//! Kafka at the edge: connecting with deadlines, topic metadata and admin, partition clients.
//!
//! Foundation layer, over rskafka 0.6. rskafka has no connect or request timeouts and its default backoff retries
//! forever (`BackoffConfig::deadline: None`, see rskafka `src/backoff.rs`), so a wrong address or a broker that
//! advertises an unreachable host name would hang a command forever. Here every call runs under a deadline and
//! comes back as a typed error that names the address and what to check.
//!
//! rskafka has no consumer groups and no offset commits, by design; the sink keeps offsets in the lake.

pub mod batch;
mod connect;
pub mod coordinator;
pub mod group_offsets;
pub mod in_flight;
pub mod membership;
pub mod metadata;
pub mod msk_iam;
pub mod partitioner;
pub mod produce_errors;
pub mod producer;
pub mod security;
pub mod wire;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rskafka::client::Client;
use rskafka::client::error::{Error as RsError, ProtocolError};
use rskafka::client::partition::{OffsetAt, PartitionClient, UnknownTopicHandling};

use connect::is_auth_error;
pub use connect::{TcpFailure, root_cause, tcp_probe};
pub use partitioner::partition_for_key;
pub use rskafka::client::partition::Compression;
pub use rskafka::record::{Record, RecordAndOffset};

/// How long one Kafka operation (connect, metadata, produce, fetch) may take before it is an error.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_BROKERS: &str = "127.0.0.1:9092";

/// Validated connection settings.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// Bootstrap `host:port` addresses.
    pub brokers: Vec<String>,
    /// Deadline for each operation, retries included.
    pub timeout: Duration,
    pub client_id: String,
    /// TLS and SASL (`Debug` masks the password).
    pub security: security::Security,
}

impl KafkaConfig {
    pub fn new(brokers: &str, timeout: Duration) -> Result<Self> {
        let list: Vec<String> = brokers.split(',').map(str::trim).filter(|b| !b.is_empty()).map(String::from).collect();
        if list.is_empty() {
            return Err(Error::Config("no broker address given: pass --brokers host:port or set KAFKA_BROKERS".into()));
        }
        for b in &list {
            let ok = b.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !ok {
                return Err(Error::Config(format!(
                    "broker address '{b}' is not host:port (for example 127.0.0.1:9092); check --brokers / KAFKA_BROKERS"
                )));
            }
        }
        Ok(KafkaConfig {
            brokers: list,
            timeout,
            client_id: format!("ticklake/{}", env!("CARGO_PKG_VERSION")),
            security: security::Security::default(),
        })
    }

    fn addr(&self) -> String {
        self.brokers.join(",")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(String),
    #[error(
        "cannot reach Kafka at {brokers}: {reason}.\n  Check that the broker is running and listening on that address, that --brokers / KAFKA_BROKERS is right, that a firewall or security group allows the port, and that the broker's advertised.listeners names an address this machine can reach (`ticklake doctor` checks each step)"
    )]
    Unreachable { brokers: String, timeout: Duration, reason: String },
    #[error(
        "Kafka at {brokers} refused our credentials: {reason}. Check --sasl-mechanism, --sasl-username and the password (KAFKA_SASL_PASSWORD or --sasl-password-file)"
    )]
    AuthRefused { brokers: String, reason: String },
    #[error(
        "TLS with Kafka at {brokers} failed: {reason}. If the broker's certificate is signed by a private CA, pass it with --ca-file; check that the broker's address matches its certificate, and that the port is a TLS listener"
    )]
    Tls { brokers: String, reason: String },
    /// `hint` is the command's own advice (its flags), set with `with_topic_hint`.
    #[error("topic '{topic}' does not exist on {brokers}. {hint}")]
    TopicMissing { topic: String, brokers: String, hint: String },
    #[error("topic '{topic}' already exists on {brokers}")]
    TopicExists { topic: String, brokers: String },
    #[error(
        "{op} on {topic}/{partition} did not finish within {timeout:?} (broker {brokers}); the broker may be overloaded or unreachable, or advertise an address this machine cannot reach (`ticklake doctor` shows it)"
    )]
    Timeout { op: &'static str, topic: String, partition: i32, timeout: Duration, brokers: String },
    #[error(
        "fetching {topic}/{partition} at offset {offset} failed: {source}. (A CRC or decoding error means the broker returned a corrupt batch: check its logs and disks. A consumer restarted here reads from this offset again.)"
    )]
    Fetch {
        topic: String,
        partition: i32,
        offset: i64,
        #[source]
        source: Box<RsError>,
    },
    /// The broker refused the request for a reason a retry cannot change (say, record timestamps outside what it
    /// accepts).
    #[error("{op} on {topic}/{partition} refused by the broker: {reason}")]
    Refused { op: &'static str, topic: String, partition: i32, reason: String },
    /// A fetch below the partition's earliest offset (retention deleted it) or past its end.
    #[error("fetching {topic}/{partition} at offset {offset}: the broker no longer (or not yet) has that offset")]
    OffsetOutOfRange { topic: String, partition: i32, offset: i64 },
    #[error("{op} on {topic}/{partition} failed: {source}")]
    Request {
        op: &'static str,
        topic: String,
        partition: i32,
        #[source]
        source: Box<RsError>,
    },
}

fn default_topic_hint(topic: &str) -> String {
    format!("Check the name (`ticklake topic list`), or create it: `ticklake topic create {topic} --partitions N`")
}

use crate::exit::Kind;

impl Error {
    /// A missing topic's advice in the words of the command that met it (each command has its own flags).
    pub fn with_topic_hint(self, hint: &str) -> Error {
        match self {
            Error::TopicMissing { topic, brokers, .. } => Error::TopicMissing { topic, brokers, hint: hint.into() },
            e => e,
        }
    }

    /// Worth retrying: the broker was unreachable, slow, or failed a request (a broker restart, a leader moving).
    /// Refused credentials, a missing topic and bad configuration are not.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unreachable { .. } | Error::Timeout { .. } | Error::Request { .. } | Error::Fetch { .. })
    }

    /// Process exit code for this error (see `crate::exit`).
    pub fn kind(&self) -> Kind {
        match self {
            Error::Config(_) => Kind::Usage,
            Error::Unreachable { .. } | Error::Timeout { .. } => Kind::Unreachable,
            Error::AuthRefused { .. } | Error::Tls { .. } => Kind::Auth,
            Error::TopicMissing { .. } => Kind::TopicMissing,
            Error::TopicExists { .. }
            | Error::Request { .. }
            | Error::Fetch { .. }
            | Error::Refused { .. }
            | Error::OffsetOutOfRange { .. } => Kind::Failure,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A connected cluster client. Cheap to clone.
#[derive(Clone)]
pub struct Kafka {
    client: Arc<Client>,
    cfg: KafkaConfig,
}

impl std::fmt::Debug for Kafka {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kafka").field("brokers", &self.cfg.brokers).finish()
    }
}

/// A topic's name and partition ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub partitions: Vec<i32>,
}

/// Offsets of one partition: the earliest kept and the high watermark (the offset the next record gets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub earliest: i64,
    pub high_watermark: i64,
}

impl Kafka {
    /// Connects and fetches metadata, within `cfg.timeout` (see `connect`).
    pub async fn connect(cfg: KafkaConfig) -> Result<Self> {
        let client = connect::client(&cfg).await?;
        Ok(Kafka { client: Arc::new(client), cfg })
    }

    pub fn config(&self) -> &KafkaConfig {
        &self.cfg
    }

    /// Runs `fut` under the operation deadline.
    pub async fn deadline<T>(
        &self,
        op: &'static str,
        topic: &str,
        partition: i32,
        fut: impl Future<Output = Result<T, RsError>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.cfg.timeout, fut).await {
            Err(_) => Err(Error::Timeout {
                op,
                topic: topic.into(),
                partition,
                timeout: self.cfg.timeout,
                brokers: self.cfg.addr(),
            }),
            Ok(Err(e)) => Err(self.classify(op, topic, partition, e)),
            Ok(Ok(v)) => Ok(v),
        }
    }

    fn classify(&self, op: &'static str, topic: &str, partition: i32, e: RsError) -> Error {
        match &e {
            RsError::ServerError { protocol_error: ProtocolError::UnknownTopicOrPartition, .. } => {
                Error::TopicMissing { topic: topic.into(), brokers: self.cfg.addr(), hint: default_topic_hint(topic) }
            }
            RsError::ServerError { protocol_error: ProtocolError::TopicAlreadyExists, .. } => {
                Error::TopicExists { topic: topic.into(), brokers: self.cfg.addr() }
            }
            _ if is_auth_error(&e) => Error::AuthRefused { brokers: self.cfg.addr(), reason: e.to_string() },
            RsError::ServerError { protocol_error: ProtocolError::InvalidTimestamp, .. } => Error::Refused {
                op,
                topic: topic.into(),
                partition,
                reason: "InvalidTimestamp: the record timestamps are outside what the broker accepts (Apache Kafka 4 \
                         takes timestamps at most message.timestamp.after.max.ms ahead, 1 h by default, and at most \
                         message.timestamp.before.max.ms old). Pass --timestamp now to send the send time, or raise \
                         the topic's limits"
                    .into(),
            },
            RsError::ServerError {
                protocol_error: ProtocolError::MessageTooLarge | ProtocolError::RecordListTooLarge,
                ..
            } => Error::Refused {
                op,
                topic: topic.into(),
                partition,
                reason: "the batch is larger than the broker takes (message.max.bytes, or the topic's \
                         max.message.bytes): lower --batch-bytes"
                    .into(),
            },
            RsError::ServerError { protocol_error: ProtocolError::OffsetOutOfRange, .. } => {
                Error::OffsetOutOfRange { topic: topic.into(), partition, offset: -1 }
            }
            RsError::Connection(_) | RsError::RetryFailed(_) => Error::Unreachable {
                brokers: self.cfg.addr(),
                timeout: self.cfg.timeout,
                reason: format!("{op} on {topic}/{partition} failed within {:?}: {}", self.cfg.timeout, root_cause(&e)),
            },
            _ => Error::Request { op, topic: topic.into(), partition, source: Box::new(e) },
        }
    }

    pub async fn list_topics(&self) -> Result<Vec<TopicInfo>> {
        let topics = self.deadline("list topics", "*", -1, self.client.list_topics()).await?;
        let mut out: Vec<TopicInfo> = topics
            .into_iter()
            .map(|t| TopicInfo { name: t.name, partitions: t.partitions.into_iter().collect() })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The topic's partition ids, or `TopicMissing`.
    pub async fn topic(&self, topic: &str) -> Result<TopicInfo> {
        self.list_topics().await?.into_iter().find(|t| t.name == topic).ok_or_else(|| Error::TopicMissing {
            topic: topic.into(),
            brokers: self.cfg.addr(),
            hint: default_topic_hint(topic),
        })
    }

    pub async fn create_topic(&self, topic: &str, partitions: i32, replication: i16) -> Result<()> {
        let controller = self.client.controller_client().map_err(|e| self.classify("create topic", topic, -1, e))?;
        let timeout_ms = self.cfg.timeout.as_millis().min(i32::MAX as u128) as i32;
        self.deadline("create topic", topic, -1, controller.create_topic(topic, partitions, replication, timeout_ms))
            .await?;
        // Metadata propagates asynchronously on multi-broker clusters: wait until the topic is visible.
        let until = tokio::time::Instant::now() + self.cfg.timeout;
        loop {
            match self.topic(topic).await {
                Ok(t) if t.partitions.len() as i32 >= partitions => return Ok(()),
                Ok(_) | Err(Error::TopicMissing { .. }) if tokio::time::Instant::now() < until => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Ok(_) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    pub async fn delete_topic(&self, topic: &str) -> Result<()> {
        let controller = self.client.controller_client().map_err(|e| self.classify("delete topic", topic, -1, e))?;
        let timeout_ms = self.cfg.timeout.as_millis().min(i32::MAX as u128) as i32;
        self.deadline("delete topic", topic, -1, controller.delete_topic(topic, timeout_ms)).await
    }

    /// A client bound to one partition's leader.
    pub async fn partition(&self, topic: &str, partition: i32) -> Result<Arc<PartitionClient>> {
        let fut = self.client.partition_client(topic, partition, UnknownTopicHandling::Error);
        self.deadline("connect to partition leader", topic, partition, fut).await.map(Arc::new)
    }

    /// Earliest offset and high watermark. The high watermark comes from a fetch response, which is right on
    /// every broker (Tansu 0.6 answers ListOffsets(Latest) with the last batch's base offset + 1). The fetch waits
    /// 10 ms: Tansu 0.6 answers `max_wait_ms = 0` with an empty response (no topic), which rskafka rejects.
    pub async fn offsets(&self, pc: &PartitionClient) -> Result<PartitionOffsets> {
        let (topic, p) = (pc.topic(), pc.partition());
        let earliest = self.deadline("list offsets", topic, p, pc.get_offset(OffsetAt::Earliest)).await?;
        let (_, high_watermark) = self.fetch(pc, earliest, 1024, 10).await?;
        Ok(PartitionOffsets { earliest, high_watermark })
    }

    /// Records from `offset` on (at most about `max_bytes`), and the high watermark, under the deadline. A failure
    /// names the partition and the offset: a corrupt batch (CRC) is an error there, never a crash.
    pub async fn fetch(
        &self,
        pc: &PartitionClient,
        offset: i64,
        max_bytes: i32,
        max_wait_ms: i32,
    ) -> Result<(Vec<RecordAndOffset>, i64)> {
        let (topic, p) = (pc.topic(), pc.partition());
        match self.deadline("fetch", topic, p, pc.fetch_records(offset, 1..max_bytes, max_wait_ms)).await {
            Err(Error::OffsetOutOfRange { topic, partition, .. }) => {
                Err(Error::OffsetOutOfRange { topic, partition, offset })
            }
            Err(Error::Request { source, .. }) => {
                Err(Error::Fetch { topic: topic.to_string(), partition: p, offset, source })
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_lists_are_checked_once() {
        let c = KafkaConfig::new(" a:1 , b:2 ", DEFAULT_TIMEOUT).unwrap();
        assert_eq!(c.brokers, vec!["a:1", "b:2"]);
        assert!(KafkaConfig::new("", DEFAULT_TIMEOUT).unwrap_err().to_string().contains("KAFKA_BROKERS"));
        assert!(KafkaConfig::new("localhost", DEFAULT_TIMEOUT).unwrap_err().to_string().contains("host:port"));
        assert!(KafkaConfig::new("h:99999", DEFAULT_TIMEOUT).is_err());
    }
}
