//! The Kafka requests rskafka does not make (InitProducerId, a produce request with a producer id and sequence
//! numbers, FindCoordinator and OffsetCommit for the sink's group offsets), on the same connections rskafka makes.
//!
//! Message types and the record-batch encoder come from the `kafka-protocol` crate (every request of Apache Kafka's
//! JSON schemas, pure Rust). The connection is rskafka's own `Messenger` (framing, correlation ids, pipelined
//! requests, ApiVersions negotiation, SASL PLAIN/SCRAM/OAUTHBEARER with MSK IAM), reached through rskafka's
//! `unstable-fuzzing` feature, which makes its messenger and protocol traits public: one place for TLS and SASL,
//! not a second SASL implementation. rskafka is pinned to the exact version, since that API carries no semver
//! promise. `Wire<T>` bridges a `kafka-protocol` request into rskafka's request traits: the header (and its
//! flexible version) is rskafka's, the body `kafka-protocol`'s.

use std::io::{Cursor, Read};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::{Decodable, Encodable};
use rskafka::messenger::Messenger;
use rskafka::protocol::api_key::ApiKey;
use rskafka::protocol::api_version::{ApiVersion, ApiVersionRange};
use rskafka::protocol::messages::{
    ReadVersionedError, ReadVersionedType, RequestBody, WriteVersionedError, WriteVersionedType,
};
use rskafka::protocol::primitives::Int16;
use rskafka::protocol::traits::{ReadError, WriteError};
use tokio::io::{AsyncRead, AsyncWrite, BufStream};
use tokio::net::TcpStream;

use super::KafkaConfig;

/// Largest answer accepted on these connections (rskafka's own default).
const MAX_MESSAGE: usize = 100 * 1024 * 1024;

/// A request body of `kafka-protocol` as rskafka's messenger sends it.
pub struct Wire<T>(pub T);
/// Its answer.
pub struct WireAnswer<T>(pub T);

impl<T: Encodable> WriteVersionedType<Vec<u8>> for Wire<T> {
    fn write_versioned(&self, writer: &mut Vec<u8>, version: ApiVersion) -> Result<(), WriteVersionedError> {
        let mut buf = BytesMut::new();
        self.0
            .encode(&mut buf, version.0.0)
            .map_err(|e| WriteVersionedError::WriteError(WriteError::Malformed(e.into())))?;
        writer.extend_from_slice(&buf);
        Ok(())
    }
}

impl<T: Decodable> ReadVersionedType<Cursor<Vec<u8>>> for WireAnswer<T> {
    fn read_versioned(reader: &mut Cursor<Vec<u8>>, version: ApiVersion) -> Result<Self, ReadVersionedError> {
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).map_err(|e| ReadVersionedError::ReadError(ReadError::IO(e)))?;
        let mut bytes = Bytes::from(rest);
        let body = T::decode(&mut bytes, version.0.0)
            .map_err(|e| ReadVersionedError::ReadError(ReadError::Malformed(e.into())))?;
        if !bytes.is_empty() {
            return Err(ReadVersionedError::ReadError(ReadError::Malformed(
                format!("{} byte(s) after the answer", bytes.len()).into(),
            )));
        }
        Ok(WireAnswer(body))
    }
}

const fn v(n: i16) -> ApiVersion {
    ApiVersion(Int16(n))
}

/// Which versions ticklake speaks of a request, and from which one it is "flexible" (tagged fields, KIP-482).
macro_rules! wire_request {
    ($req:ty, $resp:ty, $key:expr, $min:expr, $max:expr, $flexible:expr) => {
        impl RequestBody for Wire<$req> {
            type ResponseBody = WireAnswer<$resp>;
            const API_KEY: ApiKey = $key;
            const API_VERSION_RANGE: ApiVersionRange = ApiVersionRange::new(v($min), v($max));
            const FIRST_TAGGED_FIELD_IN_REQUEST_VERSION: ApiVersion = v($flexible);
        }
    };
}

use kafka_protocol::messages::{
    FindCoordinatorRequest, FindCoordinatorResponse, HeartbeatRequest, HeartbeatResponse, InitProducerIdRequest,
    InitProducerIdResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
    MetadataRequest, MetadataResponse, OffsetCommitRequest, OffsetCommitResponse, ProduceRequest, ProduceResponse,
    SyncGroupRequest, SyncGroupResponse,
};
// Produce v3 is the oldest Apache Kafka 4 takes (KIP-896) and the first with record batches (v2 format);
// v13 names topics by id, so up to v12. Metadata v4-v12 (v13 adds nothing needed).
wire_request!(ProduceRequest, ProduceResponse, ApiKey::Produce, 3, 12, 9);
wire_request!(InitProducerIdRequest, InitProducerIdResponse, ApiKey::InitProducerId, 0, 5, 2);
wire_request!(MetadataRequest, MetadataResponse, ApiKey::Metadata, 4, 12, 9);
// One key per request (v4 batches keys); OffsetCommit v2 is the oldest Kafka 4 takes.
wire_request!(FindCoordinatorRequest, FindCoordinatorResponse, ApiKey::FindCoordinator, 1, 3, 3);
wire_request!(OffsetCommitRequest, OffsetCommitResponse, ApiKey::OffsetCommit, 2, 9, 8);
// The classic group protocol (`kafka::membership`); JoinGroup v2 is the oldest Kafka 4 takes (KIP-896).
wire_request!(JoinGroupRequest, JoinGroupResponse, ApiKey::JoinGroup, 2, 9, 6);
wire_request!(SyncGroupRequest, SyncGroupResponse, ApiKey::SyncGroup, 0, 5, 4);
wire_request!(HeartbeatRequest, HeartbeatResponse, ApiKey::Heartbeat, 0, 4, 4);
wire_request!(LeaveGroupRequest, LeaveGroupResponse, ApiKey::LeaveGroup, 0, 5, 4);

/// A connection's byte stream: TCP, or TLS over TCP.
pub trait Transport: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Transport for T {}

pub type Conn = Arc<Messenger<BufStream<Box<dyn Transport>>>>;

/// Opens a connection to `addr` as rskafka opens one: TLS and SASL per `cfg`, versions negotiated.
pub async fn connect(cfg: &KafkaConfig, addr: &str) -> Result<Conn, String> {
    // A broker that takes the connection but never answers (overloaded, a proxy in the way) is a failure within
    // the timeout like any unanswered request, never a wait with no end.
    match tokio::time::timeout(cfg.timeout, connect_unbounded(cfg, addr)).await {
        Ok(done) => done,
        Err(_) => Err(format!("connect to {addr}: no answer within {:?}", cfg.timeout)),
    }
}

async fn connect_unbounded(cfg: &KafkaConfig, addr: &str) -> Result<Conn, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| format!("connect to {addr}: {e}"))?;
    tcp.set_nodelay(true).ok();
    let transport: Box<dyn Transport> = match &cfg.security.tls {
        None => Box::new(tcp),
        Some(tls) => {
            let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h).trim_matches(['[', ']']);
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| format!("'{host}' is not a TLS server name: {e}"))?;
            let conn = tokio_rustls::TlsConnector::from(tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake with {addr}: {e}"))?;
            Box::new(conn)
        }
    };
    let mut messenger = Messenger::new(BufStream::new(transport), MAX_MESSAGE, Arc::from(cfg.client_id.as_str()));
    messenger.sync_versions().await.map_err(|e| format!("ApiVersions with {addr}: {e}"))?;
    if let Some(sasl) = cfg.security.sasl_config() {
        messenger.do_sasl(sasl).await.map_err(|e| format!("SASL with {addr}: {e}"))?;
    }
    Ok(Arc::new(messenger))
}

/// A connection to the first bootstrap address that answers, and that address; else every address's reason.
pub async fn connect_bootstrap(cfg: &KafkaConfig) -> Result<(Conn, &str), String> {
    let mut reasons = Vec::new();
    for addr in &cfg.brokers {
        match connect(cfg, addr).await {
            Ok(c) => return Ok((c, addr)),
            Err(e) => reasons.push(e),
        }
    }
    Err(reasons.join("; "))
}

/// Sends `req` on `conn` within `cfg.timeout`.
pub async fn request<T, A>(cfg: &KafkaConfig, conn: &Conn, req: T) -> Result<A, String>
where
    Wire<T>: RequestBody<ResponseBody = WireAnswer<A>> + WriteVersionedType<Vec<u8>> + Send,
    A: Decodable,
{
    request_within(cfg.timeout, conn, req).await
}

/// Sends `req` on `conn` within `timeout` (a JoinGroup is answered only when the rebalance completes).
pub async fn request_within<T, A>(timeout: std::time::Duration, conn: &Conn, req: T) -> Result<A, String>
where
    Wire<T>: RequestBody<ResponseBody = WireAnswer<A>> + WriteVersionedType<Vec<u8>> + Send,
    A: Decodable,
{
    match tokio::time::timeout(timeout, conn.request(Wire(req))).await {
        Err(_) => Err(format!("no answer within {timeout:?}")),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(WireAnswer(a))) => Ok(a),
    }
}

/// The brokers and partition leaders of `topic`, asked on `conn`.
pub async fn leaders(
    cfg: &KafkaConfig,
    conn: &Conn,
    topic: &str,
) -> Result<(std::collections::HashMap<i32, String>, std::collections::HashMap<i32, i32>), String> {
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default()
                .with_name(Some(TopicName(kafka_protocol::protocol::StrBytes::from_string(topic.to_string())))),
        ]))
        .with_allow_auto_topic_creation(false);
    let answer = request(cfg, conn, req).await?;
    let brokers = answer.brokers.iter().map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port))).collect();
    let mut leaders = std::collections::HashMap::new();
    for t in &answer.topics {
        if t.error_code != 0 {
            return Err(format!("metadata of topic {topic}: error code {}", t.error_code));
        }
        for p in &t.partitions {
            leaders.insert(p.partition_index, p.leader_id.0);
        }
    }
    Ok((brokers, leaders))
}
