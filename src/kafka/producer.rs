//! Replay's produce path: record batches ticklake encodes itself and sends on rskafka's connections
//! (`wire`), with Kafka's idempotent producer when the broker has it.
//!
//! Idempotence (KIP-98): `InitProducerId` gives a producer id and epoch; every batch to a partition carries them
//! and the sequence number of its first record, counted per partition from 0. The broker keeps the last five
//! batches' sequences per producer and partition: a batch sent again after a lost answer (a dropped connection, a
//! timeout, a leader move) has the sequence it already stored and is answered `DUPLICATE_SEQUENCE_NUMBER`, not
//! stored twice. Batches go out in order (`in_flight`; one in flight per partition for now): a failed batch makes
//! the later ones of its flight fail too, and they are sent again in order. `OUT_OF_ORDER_SEQUENCE_NUMBER` for a
//! batch sent again alone, every earlier one stored, can only mean the broker lost what it had acknowledged: a
//! clear error naming the partition, never a silent gap. `acks=all`, as idempotence requires.
//!
//! Every attempt after the first is counted (`Counters::retries` in replay): the summary's retries are every
//! resend on the wire, which rskafka's own produce retried unseen.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{InitProducerIdRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::batch;
use super::produce_errors::{code, is_retriable, refusal};
use super::wire::{self, Conn};
use super::{Compression, Error, KafkaConfig, Record};

/// `--idempotence`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Idempotence {
    /// On when the broker grants a producer id; said once either way.
    #[default]
    Auto,
    On,
    Off,
}

/// The producer id and epoch the broker granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerId {
    pub id: i64,
    pub epoch: i16,
}

/// Where a topic's partitions are led, and one connection per broker.
#[derive(Default)]
struct Routes {
    brokers: HashMap<i32, String>,
    leaders: HashMap<i32, i32>,
    conns: HashMap<i32, Conn>,
}

/// The topic's producer: its id (if idempotent) and its connections. Shared by the partitions' workers.
pub struct Producer {
    cfg: KafkaConfig,
    topic: String,
    pub id: Option<ProducerId>,
    /// The `ticklake.source` header every record gets with its `ticklake.line` (`replay::resume`); `None`: none.
    source: Option<Vec<u8>>,
    routes: tokio::sync::Mutex<Routes>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").field("topic", &self.topic).field("id", &self.id).finish()
    }
}

impl Producer {
    /// Connects to the bootstrap brokers, reads the topic's leaders, and (unless `Off`) asks for a producer id.
    /// With `source`, every record carries it as `ticklake.source` and its CSV line as `ticklake.line`.
    pub async fn start(
        cfg: &KafkaConfig,
        topic: &str,
        mode: Idempotence,
        source: Option<String>,
    ) -> Result<Producer, Error> {
        let mut p = Producer {
            cfg: cfg.clone(),
            topic: topic.to_string(),
            id: None,
            source: source.map(String::into_bytes),
            routes: tokio::sync::Mutex::new(Routes::default()),
        };
        p.refresh().await.map_err(|reason| p.unreachable(reason))?;
        if mode == Idempotence::Off {
            tracing::info!("idempotence off (--idempotence off): a batch resent after a lost answer is stored twice");
            return Ok(p);
        }
        match p.init_producer_id().await {
            Ok(id) => {
                tracing::info!(
                    producer_id = id.id,
                    epoch = id.epoch,
                    "idempotent producer: a resent batch is stored once"
                );
                p.id = Some(id);
            }
            Err(reason) if mode == Idempotence::Auto => {
                tracing::warn!(
                    "idempotence off: the broker did not grant a producer id ({reason}); a batch resent after a lost answer may be stored twice"
                );
            }
            Err(reason) => {
                return Err(Error::Refused {
                    op: "InitProducerId",
                    topic: topic.into(),
                    partition: -1,
                    reason: format!("{reason} (--idempotence on; pass --idempotence auto or off to send without it)"),
                });
            }
        }
        Ok(p)
    }

    fn unreachable(&self, reason: String) -> Error {
        Error::Unreachable { brokers: self.cfg.brokers.join(","), timeout: self.cfg.timeout, reason }
    }

    /// A new connection to the first bootstrap address that answers.
    async fn bootstrap(&self) -> Result<Conn, String> {
        Ok(wire::connect_bootstrap(&self.cfg).await?.0)
    }

    /// Drops every connection (one broke, or a leader moved: a broken connection cannot be told from a healthy
    /// one until a request fails on it) and reads the topic's leaders again on a new one.
    async fn refresh(&self) -> Result<(), String> {
        self.routes.lock().await.conns.clear();
        let conn = self.bootstrap().await?;
        let (brokers, leaders) = wire::leaders(&self.cfg, &conn, &self.topic).await?;
        let mut r = self.routes.lock().await;
        r.brokers = brokers;
        r.leaders = leaders;
        Ok(())
    }

    async fn init_producer_id(&self) -> Result<ProducerId, String> {
        let deadline = tokio::time::Instant::now() + self.cfg.timeout;
        loop {
            let conn = self.bootstrap().await?;
            let req = InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(-1)
                .with_producer_id(kafka_protocol::messages::ProducerId(-1))
                .with_producer_epoch(-1);
            let a = wire::request(&self.cfg, &conn, req).await?;
            match a.error_code {
                code::NONE => return Ok(ProducerId { id: a.producer_id.0, epoch: a.producer_epoch }),
                c if is_retriable(c) && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                c => return Err(format!("InitProducerId: {}", refusal(c, &self.topic, -1))),
            }
        }
    }

    /// The connection to `partition`'s leader, opened if needed.
    async fn leader(&self, partition: i32) -> Result<Conn, String> {
        let mut r = self.routes.lock().await;
        let node = *r.leaders.get(&partition).ok_or_else(|| format!("no leader known for partition {partition}"))?;
        if node < 0 {
            return Err(format!("partition {partition} has no leader right now"));
        }
        if let Some(c) = r.conns.get(&node) {
            return Ok(c.clone());
        }
        let addr = r.brokers.get(&node).cloned().ok_or_else(|| format!("leader {node} not among the brokers"))?;
        let c = wire::connect(&self.cfg, &addr).await?;
        r.conns.insert(node, c.clone());
        Ok(c)
    }

    /// A partition's sender, its sequence starting at 0 (the producer id is new).
    pub fn partition(self: &Arc<Self>, partition: i32) -> PartitionSender {
        PartitionSender { producer: self.clone(), partition, next_sequence: 0 }
    }
}

/// How one attempt at a batch ended.
#[derive(Debug)]
pub(crate) enum Attempt {
    Stored,
    /// The broker had it already (a resend after a lost answer).
    Duplicate,
    Retry(String),
    /// OUT_OF_ORDER_SEQUENCE_NUMBER: sent again once in order (`in_flight`); a refusal if it comes back then.
    OutOfOrder(String),
    Refused(String),
}

/// Encodes one partition's batches (its sequence numbers); `in_flight` sends them (on a clone).
#[derive(Clone)]
pub struct PartitionSender {
    producer: Arc<Producer>,
    partition: i32,
    next_sequence: i32,
}

impl PartitionSender {
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The record batch for `records` (from CSV `lines`): producer id, epoch and base sequence when idempotent,
    /// the source and line headers when the producer has a source.
    /// The next batch's sequence starts after this one's records.
    pub fn encode(&mut self, records: &[Record], lines: &[u64], compression: Compression) -> Result<Bytes, Error> {
        let producer = match self.producer.id {
            Some(p) => batch::Producer { id: p.id, epoch: p.epoch, base_sequence: self.next_sequence },
            None => batch::Producer::NONE,
        };
        let headers = self.producer.source.as_deref().map(|s| batch::LineHeaders {
            source: (crate::replay::resume::H_SOURCE, s),
            line_name: crate::replay::resume::H_LINE,
            lines,
        });
        let encoded = batch::encode(records, headers, producer, compression).map_err(|reason| self.refused(reason))?;
        if self.producer.id.is_some() {
            self.next_sequence = self.next_sequence.wrapping_add(records.len() as i32) & i32::MAX;
        }
        Ok(encoded)
    }

    /// Whether batches carry a producer id and sequence numbers.
    pub fn idempotent(&self) -> bool {
        self.producer.id.is_some()
    }

    /// One attempt at `batch`, as a future that owns what it needs (several are in flight at once).
    pub(crate) fn attempt_owned(&self, batch: Bytes) -> impl std::future::Future<Output = Attempt> + Send + 'static {
        let (p, partition) = (self.producer.clone(), self.partition);
        async move { attempt(&p, partition, &batch).await }
    }

    /// The error for a refusal of this partition's batch.
    pub fn refused(&self, reason: String) -> Error {
        Error::Refused { op: "produce", topic: self.producer.topic.clone(), partition: self.partition, reason }
    }

    /// Sends `batch` again until the broker stored it (or had it already), the very same bytes, for up to
    /// `retry_for` (`crate::backoff`'s policy), reading the leaders again before each attempt. Returns the attempts.
    pub(crate) async fn resend(&self, batch: &Bytes, retry_for: Duration) -> Result<u64, Error> {
        let p = self.producer.clone();
        let what = format!("produce to {}/{}", p.topic, self.partition);
        let mut resends = 0;
        let outcome = crate::backoff::retry(
            &what,
            retry_for,
            MAX_BACKOFF,
            |e: &Attempt| matches!(e, Attempt::Retry(_)),
            |n| {
                resends = n as u64 + 1;
                let p = &p;
                async move {
                    if let Err(e) = p.refresh().await {
                        return Err(Attempt::Retry(format!("metadata refresh: {e}")));
                    }
                    match attempt(p, self.partition, batch).await {
                        a @ (Attempt::Stored | Attempt::Duplicate) => Ok(a),
                        other => Err(other),
                    }
                }
            },
        )
        .await;
        match outcome {
            Ok(Attempt::Duplicate) => {
                tracing::info!(
                    partition = self.partition,
                    "the broker had this batch already (a resend after a lost answer): stored once"
                );
                Ok(resends)
            }
            Ok(_) => Ok(resends),
            Err(Attempt::Refused(reason) | Attempt::OutOfOrder(reason)) => Err(self.refused(reason)),
            Err(other) => Err(Error::Timeout {
                op: "produce",
                topic: p.topic.clone(),
                partition: self.partition,
                timeout: retry_for,
                brokers: format!("{}; last: {other}", p.cfg.brokers.join(",")),
            }),
        }
    }
}

/// One produce request for `batch` to `partition`'s leader.
async fn attempt(p: &Producer, partition: i32, batch: &Bytes) -> Attempt {
    let conn = match p.leader(partition).await {
        Ok(c) => c,
        Err(e) => return Attempt::Retry(e),
    };
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(p.cfg.timeout.as_millis().min(i32::MAX as u128) as i32)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(p.topic.clone())))
                .with_partition_data(vec![
                    PartitionProduceData::default().with_index(partition).with_records(Some(batch.clone())),
                ]),
        ]);
    let answer = match wire::request(&p.cfg, &conn, req).await {
        Ok(a) => a,
        Err(e) => return Attempt::Retry(e),
    };
    let code = answer
        .responses
        .iter()
        .flat_map(|t| t.partition_responses.iter())
        .find(|r| r.index == partition)
        .map(|r| r.error_code);
    match code {
        Some(code::NONE) => Attempt::Stored,
        Some(code::DUPLICATE_SEQUENCE_NUMBER) if p.id.is_some() => Attempt::Duplicate,
        Some(code::OUT_OF_ORDER_SEQUENCE_NUMBER) => {
            Attempt::OutOfOrder(refusal(code::OUT_OF_ORDER_SEQUENCE_NUMBER, &p.topic, partition))
        }
        Some(c) if is_retriable(c) => Attempt::Retry(format!("error code {c}")),
        Some(c) => Attempt::Refused(refusal(c, &p.topic, partition)),
        None => Attempt::Retry("the answer does not name the partition".into()),
    }
}

/// Longest wait between two attempts at a batch.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl std::fmt::Display for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Attempt::Stored => f.write_str("stored"),
            Attempt::Duplicate => f.write_str("stored before (duplicate sequence)"),
            Attempt::Retry(r) | Attempt::OutOfOrder(r) | Attempt::Refused(r) => f.write_str(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::RecordBatchDecoder;

    fn record(i: u8) -> Record {
        Record {
            key: Some(vec![b'k', i]),
            value: Some(vec![b'v', i]),
            headers: Default::default(),
            timestamp: chrono::DateTime::from_timestamp_millis(1_700_000_000_000 + i as i64).unwrap(),
        }
    }

    fn sender(id: Option<ProducerId>, next_sequence: i32, source: Option<&str>) -> PartitionSender {
        let cfg = KafkaConfig::new("127.0.0.1:1", Duration::from_secs(1)).unwrap();
        let source = source.map(|s| s.as_bytes().to_vec());
        let producer = Producer { cfg, topic: "t".into(), id, source, routes: Default::default() };
        PartitionSender { producer: Arc::new(producer), partition: 3, next_sequence }
    }

    #[test]
    fn an_idempotent_batch_carries_the_producer_its_base_sequence_and_the_lines() {
        for compression in [Compression::NoCompression, Compression::Zstd, Compression::Lz4] {
            let mut s = sender(Some(ProducerId { id: 4242, epoch: 7 }), 100, Some("ab:9:3"));
            let mut bytes = s.encode(&[record(1), record(2), record(3)], &[2, 3, 5], compression).unwrap();
            assert_eq!(batches(bytes.clone()), [(4242, 100, 3)]);
            let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
            assert_eq!(set.records.len(), 3);
            for (i, r) in set.records.iter().enumerate() {
                assert_eq!((r.producer_id, r.producer_epoch, r.sequence), (4242, 7, 100 + i as i32));
                assert_eq!(r.key.as_deref(), Some(&[b'k', i as u8 + 1][..]));
                assert_eq!(r.timestamp, 1_700_000_000_001 + i as i64);
                let h = |n: &'static str| r.headers[&StrBytes::from_static_str(n)].clone().unwrap();
                assert_eq!(&h("ticklake.source")[..], b"ab:9:3");
                assert_eq!(&h("ticklake.line")[..], [b"2", b"3", b"5"][i]);
            }
        }
    }

    /// The first record's sequence is the batch's base sequence (the only one on the wire).
    fn batches(mut bytes: Bytes) -> Vec<(i64, i32, usize)> {
        RecordBatchDecoder::decode_batch_info(&mut bytes)
            .unwrap()
            .iter()
            .map(|b| (b.producer_id, b.base_sequence, b.record_count as usize))
            .collect()
    }

    #[test]
    fn one_batch_per_request_idempotent_or_not_even_where_sequences_wrap() {
        let mut s = sender(Some(ProducerId { id: 1, epoch: 0 }), i32::MAX, None);
        let bytes = s.encode(&[record(1), record(2), record(3)], &[0, 0, 0], Compression::NoCompression).unwrap();
        assert_eq!(batches(bytes), [(1, i32::MAX, 3)]);
        // The next batch's sequence follows, wrapped past i32::MAX to 0 as Kafka counts.
        let bytes = s.encode(&[record(4)], &[0], Compression::NoCompression).unwrap();
        assert_eq!(batches(bytes), [(1, 2, 1)]);
        let mut plain = sender(None, 0, None);
        let mut bytes = plain.encode(&[record(1), record(2)], &[0, 0], Compression::Zstd).unwrap();
        assert_eq!(batches(bytes.clone()), [(-1, -1, 2)], "no producer, no sequence, one batch");
        assert!(RecordBatchDecoder::decode(&mut bytes).unwrap().records[0].headers.is_empty(), "no source, no headers");
    }
}
