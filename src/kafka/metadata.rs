//! A raw Kafka Metadata request (API key 3, version 4), for `doctor`.
//!
//! rskafka connects to the brokers that metadata *advertises* and does not tell us what they are, so when the
//! advertised address is wrong (the classic "Timed out waiting for a node assignment" on EC2) it can only time out.
//! Doctor asks the bootstrap address itself and prints what the cluster advertises. Version 4 is in every Kafka
//! since 1.0, in Kafka 4's baseline (KIP-896), and in Redpanda and Tansu; it is not a "flexible" version, so the
//! encoding is the classic one: big-endian ints, int16-length strings, int32-length arrays (null = -1).
//! Spec: <https://kafka.apache.org/protocol#The_Messages_Metadata>.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const API_METADATA: i16 = 3;
const VERSION: i16 = 4;
/// Largest metadata response accepted (a cluster with many thousands of partitions stays well below).
const MAX_RESPONSE: usize = 64 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddr {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMeta {
    pub error_code: i16,
    pub name: String,
    /// (partition, leader node id; -1 = no leader).
    pub partitions: Vec<(i32, i32)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub brokers: Vec<BrokerAddr>,
    pub controller_id: i32,
    pub topics: Vec<TopicMeta>,
}

/// The request frame (length prefix included). `topics: None` asks for every topic.
pub fn encode_request(correlation_id: i32, client_id: &str, topics: Option<&[&str]>) -> Vec<u8> {
    let mut b = Vec::with_capacity(64);
    b.extend_from_slice(&API_METADATA.to_be_bytes());
    b.extend_from_slice(&VERSION.to_be_bytes());
    b.extend_from_slice(&correlation_id.to_be_bytes());
    put_str(&mut b, client_id);
    match topics {
        None => b.extend_from_slice(&(-1i32).to_be_bytes()),
        Some(ts) => {
            b.extend_from_slice(&(ts.len() as i32).to_be_bytes());
            for t in ts {
                put_str(&mut b, t);
            }
        }
    }
    b.push(0); // allow_auto_topic_creation = false: doctor must not create what it checks
    let mut frame = (b.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&b);
    frame
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as i16).to_be_bytes());
    b.extend_from_slice(s.as_bytes());
}

/// A cursor over a response body; every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len()).ok_or_else(|| {
            format!("metadata response truncated at byte {} (wanted {n} more of {})", self.pos, self.buf.len())
        })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn i8(&mut self) -> Result<i8, String> {
        Ok(self.take(1)?[0] as i8)
    }
    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn nullable_str(&mut self) -> Result<Option<String>, String> {
        let n = self.i16()?;
        if n < 0 {
            return Ok(None);
        }
        Ok(Some(String::from_utf8_lossy(self.take(n as usize)?).into_owned()))
    }
    fn str(&mut self) -> Result<String, String> {
        Ok(self.nullable_str()?.unwrap_or_default())
    }
    /// An array length; null (-1) is empty. Each element takes at least `min_elem` bytes, which bounds the
    /// length by what is left, so a hostile count cannot make us allocate.
    fn len(&mut self, min_elem: usize) -> Result<usize, String> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(0);
        }
        let n = n as usize;
        if n.saturating_mul(min_elem) > self.buf.len() - self.pos {
            return Err(format!("metadata response claims {n} entries at byte {}, more than it holds", self.pos));
        }
        Ok(n)
    }
}

/// Parses a response body (after the length prefix), checking the correlation id.
pub fn decode_response(body: &[u8], correlation_id: i32) -> Result<Metadata, String> {
    let mut r = Reader { buf: body, pos: 0 };
    let got = r.i32()?;
    if got != correlation_id {
        return Err(format!("metadata response for request {got}, expected {correlation_id}"));
    }
    let _throttle = r.i32()?;
    let mut brokers = Vec::new();
    for _ in 0..r.len(12)? {
        let node_id = r.i32()?;
        let host = r.str()?;
        let port = r.i32()?;
        let _rack = r.nullable_str()?;
        brokers.push(BrokerAddr { node_id, host, port });
    }
    let _cluster_id = r.nullable_str()?;
    let controller_id = r.i32()?;
    let mut topics = Vec::new();
    for _ in 0..r.len(9)? {
        let error_code = r.i16()?;
        let name = r.str()?;
        let _internal = r.i8()?;
        let mut partitions = Vec::new();
        for _ in 0..r.len(18)? {
            let _err = r.i16()?;
            let index = r.i32()?;
            let leader = r.i32()?;
            for _ in 0..2 {
                // replica and in-sync replica node ids
                let n = r.len(4)?;
                r.take(n * 4)?;
            }
            partitions.push((index, leader));
        }
        partitions.sort_unstable();
        topics.push(TopicMeta { error_code, name, partitions });
    }
    Ok(Metadata { brokers, controller_id, topics })
}

/// What an answer that no Kafka broker would give is called (an HTTP server's `HTTP/1.1 400`, read as a length).
pub const NOT_KAFKA: &str = "this does not look like a Kafka broker";

/// Sends one Metadata request on a fresh connection to `addr` (over TLS when `tls` is given), within `timeout`.
pub async fn fetch(
    addr: &str,
    topics: Option<&[&str]>,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    timeout: Duration,
) -> Result<Metadata, String> {
    let run = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
        match tls {
            None => exchange(tcp, topics).await,
            Some(cfg) => {
                let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h).trim_matches(['[', ']']);
                let name = rustls::pki_types::ServerName::try_from(host.to_string())
                    .map_err(|e| format!("'{host}' is not a TLS server name: {e}"))?;
                let conn = tokio_rustls::TlsConnector::from(cfg)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS handshake: {e}"))?;
                exchange(conn, topics).await
            }
        }
    };
    tokio::time::timeout(timeout, run).await.unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
}

async fn exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut conn: S,
    topics: Option<&[&str]>,
) -> Result<Metadata, String> {
    let correlation_id = 1;
    // The client id ends in an empty line: a broker takes it as any other text, while an HTTP server (an S3 port
    // given as --brokers) sees the end of a malformed request and answers `HTTP/1.1 400` at once instead of waiting
    // for more bytes, so "not Kafka" is told in a round trip.
    let client_id = format!("ticklake-doctor/{}\r\n\r\n", env!("CARGO_PKG_VERSION"));
    let req = encode_request(correlation_id, &client_id, topics);
    conn.write_all(&req).await.map_err(|e| format!("send: {e}"))?;
    let mut len = [0u8; 4];
    conn.read_exact(&mut len).await.map_err(|e| format!("no answer (the port may not be Kafka): {e}"))?;
    let len = i32::from_be_bytes(len);
    if len < 0 || len as usize > MAX_RESPONSE {
        return Err(format!("answer of {len} bytes: {NOT_KAFKA} (TLS port?)"));
    }
    let mut body = vec![0u8; len as usize];
    conn.read_exact(&mut body).await.map_err(|e| format!("reading the answer: {e}"))?;
    decode_response(&body, correlation_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(b: &mut Vec<u8>, v: &str) {
        put_str(b, v);
    }

    /// A response as a broker would encode it: two brokers, one topic with two partitions.
    fn sample_response() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&7i32.to_be_bytes()); // correlation id
        b.extend_from_slice(&0i32.to_be_bytes()); // throttle
        b.extend_from_slice(&2i32.to_be_bytes());
        for (id, host, port) in [(1i32, "ip-10-0-0-5.ec2.internal", 9092i32), (2, "10.0.0.6", 9092)] {
            b.extend_from_slice(&id.to_be_bytes());
            s(&mut b, host);
            b.extend_from_slice(&port.to_be_bytes());
            b.extend_from_slice(&(-1i16).to_be_bytes()); // rack: null
        }
        s(&mut b, "cluster");
        b.extend_from_slice(&1i32.to_be_bytes()); // controller
        b.extend_from_slice(&1i32.to_be_bytes()); // one topic
        b.extend_from_slice(&0i16.to_be_bytes());
        s(&mut b, "ticks");
        b.push(0);
        b.extend_from_slice(&2i32.to_be_bytes());
        for (p, leader) in [(1i32, 2i32), (0, 1)] {
            b.extend_from_slice(&0i16.to_be_bytes());
            b.extend_from_slice(&p.to_be_bytes());
            b.extend_from_slice(&leader.to_be_bytes());
            for _ in 0..2 {
                b.extend_from_slice(&1i32.to_be_bytes());
                b.extend_from_slice(&leader.to_be_bytes());
            }
        }
        b
    }

    #[test]
    fn decodes_brokers_and_topics() {
        let m = decode_response(&sample_response(), 7).unwrap();
        assert_eq!(m.brokers[0], BrokerAddr { node_id: 1, host: "ip-10-0-0-5.ec2.internal".into(), port: 9092 });
        assert_eq!(m.brokers.len(), 2);
        assert_eq!(m.controller_id, 1);
        assert_eq!(m.topics, vec![TopicMeta { error_code: 0, name: "ticks".into(), partitions: vec![(0, 1), (1, 2)] }]);
    }

    #[test]
    fn truncated_or_hostile_responses_are_errors_not_panics() {
        let full = sample_response();
        for cut in 0..full.len() {
            assert!(decode_response(&full[..cut], 7).is_err(), "prefix of {cut} bytes");
        }
        assert!(decode_response(&full, 8).unwrap_err().contains("expected 8"));
        let mut huge = full[..8].to_vec();
        huge.extend_from_slice(&i32::MAX.to_be_bytes());
        assert!(decode_response(&huge, 7).unwrap_err().contains("more than it holds"));
    }

    #[test]
    fn request_frame_is_length_prefixed_metadata_v4() {
        let f = encode_request(1, "c", Some(&["t"]));
        assert_eq!(i32::from_be_bytes(f[..4].try_into().unwrap()) as usize, f.len() - 4);
        assert_eq!(&f[4..8], &[0, 3, 0, 4]);
        assert_eq!(*f.last().unwrap(), 0, "no auto topic creation");
        let all = encode_request(1, "c", None);
        assert_eq!(&all[all.len() - 5..all.len() - 1], &(-1i32).to_be_bytes());
    }
}
