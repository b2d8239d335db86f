//! `membership::Coordinator` over the wire: the classic group requests to the group's coordinator, on the
//! connections `wire` opens (the same TLS and SASL as every other connection of ticklake).
//!
//! The member subscribes with the consumer protocol (`protocol_type` "consumer", the `range` strategy, Kafka's
//! `ConsumerProtocolSubscription`/`Assignment` encodings), so `kafka-consumer-groups.sh --describe`, Redpanda
//! Console and the other lag tools show the members and which partitions each one holds.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedPartitions;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, GroupId, HeartbeatRequest, JoinGroupRequest,
    LeaveGroupRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::KafkaConfig;
use super::membership::{Coordinator, Joined, STRATEGY, Settings};
use super::wire::{self, Conn};

/// The version of the consumer protocol's subscription and assignment ticklake writes (1: with owned partitions).
const CONSUMER_PROTOCOL_VERSION: i16 = 1;

pub struct WireCoordinator {
    cfg: KafkaConfig,
    settings: Settings,
    conn: Option<Conn>,
}

impl WireCoordinator {
    pub fn new(cfg: KafkaConfig, settings: Settings) -> Self {
        WireCoordinator { cfg, settings, conn: None }
    }

    fn conn(&self) -> Result<&Conn, String> {
        self.conn.as_ref().ok_or_else(|| "not connected to the group coordinator".to_string())
    }

    fn group_id(&self) -> GroupId {
        GroupId(StrBytes::from_string(self.settings.group.clone()))
    }

    /// A request's outcome; a failed one drops the connection (the next `find` opens another).
    fn keep<A>(&mut self, r: Result<A, String>) -> Result<A, String> {
        if r.is_err() {
            self.conn = None;
        }
        r
    }
}

/// `ConsumerProtocolSubscription` as the consumer protocol frames it: the version, then the body.
pub fn subscription(topic: &str) -> Bytes {
    let body = ConsumerProtocolSubscription::default().with_topics(vec![StrBytes::from_string(topic.to_string())]);
    framed(&body, CONSUMER_PROTOCOL_VERSION)
}

/// `ConsumerProtocolAssignment` of `partitions` of `topic`.
pub fn assignment(topic: &str, partitions: &[i32]) -> Bytes {
    let body = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
        AssignedPartitions::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(partitions.to_vec()),
    ]);
    framed(&body, CONSUMER_PROTOCOL_VERSION)
}

fn framed<T: Encodable>(body: &T, version: i16) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    body.encode(&mut buf, version).expect("a consumer protocol message encodes");
    buf.freeze()
}

/// The topics a member's subscription names (empty if it cannot be read: that member gets nothing).
pub fn subscribed_topics(mut bytes: Bytes) -> Vec<String> {
    if bytes.remaining() < 2 {
        return vec![];
    }
    // Newer versions only add fields: read as the newest this crate knows.
    let version = bytes.get_i16().clamp(0, 3);
    ConsumerProtocolSubscription::decode(&mut bytes, version)
        .map(|s| s.topics.iter().map(|t| t.to_string()).collect())
        .unwrap_or_default()
}

/// The partitions of `topic` in an assignment (empty when there is none).
pub fn assigned_partitions(mut bytes: Bytes, topic: &str) -> Result<Vec<i32>, String> {
    if bytes.remaining() < 2 {
        return Ok(vec![]);
    }
    let version = bytes.get_i16().clamp(0, 3);
    let a = ConsumerProtocolAssignment::decode(&mut bytes, version)
        .map_err(|e| format!("the group's assignment cannot be read: {e}"))?;
    let mut ps: Vec<i32> =
        a.assigned_partitions.iter().filter(|t| t.topic.as_str() == topic).flat_map(|t| t.partitions.clone()).collect();
    ps.sort_unstable();
    Ok(ps)
}

impl Coordinator for WireCoordinator {
    async fn find(&mut self) -> Result<(), String> {
        self.conn = None;
        self.conn = Some(super::group_offsets::coordinator(&self.cfg, &self.settings.group).await?);
        Ok(())
    }

    async fn join(&mut self, member_id: &str) -> Result<Result<Joined, (i16, String)>, String> {
        let s = &self.settings;
        let req = JoinGroupRequest::default()
            .with_group_id(self.group_id())
            .with_session_timeout_ms(s.session_timeout.as_millis() as i32)
            .with_rebalance_timeout_ms(s.rebalance_timeout.as_millis() as i32)
            .with_member_id(StrBytes::from_string(member_id.to_string()))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str(STRATEGY))
                    .with_metadata(subscription(&s.topic)),
            ])
            .with_reason(Some(StrBytes::from_static_str("ticklake sink joining")));
        // The coordinator answers once every member rejoined, or after the rebalance timeout.
        let within = s.rebalance_timeout + self.cfg.timeout;
        let a = wire::request_within(within, self.conn()?, req).await;
        let a = self.keep(a)?;
        if a.error_code != 0 {
            return Ok(Err((a.error_code, a.member_id.to_string())));
        }
        Ok(Ok(Joined {
            generation: a.generation_id,
            member_id: a.member_id.to_string(),
            leader: a.leader.to_string(),
            members: a.members.into_iter().map(|m| (m.member_id.to_string(), subscribed_topics(m.metadata))).collect(),
        }))
    }

    async fn sync(
        &mut self,
        generation: i32,
        member_id: &str,
        assignments: Vec<(String, Vec<i32>)>,
    ) -> Result<Result<Vec<i32>, i16>, String> {
        let topic = self.settings.topic.clone();
        let req = SyncGroupRequest::default()
            .with_group_id(self.group_id())
            .with_generation_id(generation)
            .with_member_id(StrBytes::from_string(member_id.to_string()))
            .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
            .with_protocol_name(Some(StrBytes::from_static_str(STRATEGY)))
            .with_assignments(
                assignments
                    .into_iter()
                    .map(|(m, ps)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(StrBytes::from_string(m))
                            .with_assignment(assignment(&topic, &ps))
                    })
                    .collect(),
            );
        let within = self.settings.rebalance_timeout + self.cfg.timeout;
        let a = wire::request_within(within, self.conn()?, req).await;
        let a = self.keep(a)?;
        if a.error_code != 0 {
            return Ok(Err(a.error_code));
        }
        assigned_partitions(a.assignment, &topic).map(Ok)
    }

    async fn heartbeat(&mut self, generation: i32, member_id: &str) -> Result<i16, String> {
        let req = HeartbeatRequest::default()
            .with_group_id(self.group_id())
            .with_generation_id(generation)
            .with_member_id(StrBytes::from_string(member_id.to_string()));
        let a = wire::request(&self.cfg, self.conn()?, req).await;
        Ok(self.keep(a)?.error_code)
    }

    async fn leave(&mut self, member_id: &str) -> Result<i16, String> {
        let id = StrBytes::from_string(member_id.to_string());
        let req =
            LeaveGroupRequest::default().with_group_id(self.group_id()).with_member_id(id.clone()).with_members(vec![
                MemberIdentity::default()
                    .with_member_id(id)
                    .with_reason(Some(StrBytes::from_static_str("ticklake sink stopping"))),
            ]);
        let a = wire::request(&self.cfg, self.conn()?, req).await;
        let a = self.keep(a)?;
        Ok(if a.error_code != 0 { a.error_code } else { a.members.first().map_or(0, |m| m.error_code) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_consumer_protocol_round_trips() {
        assert_eq!(subscribed_topics(subscription("indices")), vec!["indices".to_string()]);
        assert_eq!(assigned_partitions(assignment("indices", &[5, 3]), "indices").unwrap(), vec![3, 5]);
        assert_eq!(assigned_partitions(assignment("indices", &[5]), "other").unwrap(), Vec::<i32>::new());
        assert_eq!(assigned_partitions(Bytes::new(), "indices").unwrap(), Vec::<i32>::new());
        // Java's consumer writes version 3 (with generation and rack); its topics still read.
        let v3 = framed(
            &ConsumerProtocolSubscription::default()
                .with_topics(vec![StrBytes::from_static_str("a")])
                .with_generation_id(4)
                .with_rack_id(Some(StrBytes::from_static_str("r1"))),
            3,
        );
        assert_eq!(subscribed_topics(v3), vec!["a".to_string()]);
    }
}
