//! What a produce or InitProducerId error code means: whether resending the same batch can get past it, and, when
//! it cannot, what to tell the user (<https://kafka.apache.org/protocol#protocol_error_codes>).

/// Kafka error codes this path acts on (<https://kafka.apache.org/protocol#protocol_error_codes>).
pub mod code {
    pub const NONE: i16 = 0;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const REQUEST_TIMED_OUT: i16 = 7;
    pub const NETWORK_EXCEPTION: i16 = 13;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const NOT_ENOUGH_REPLICAS: i16 = 19;
    pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
    pub const INVALID_TIMESTAMP: i16 = 32;
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    pub const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    pub const UNKNOWN_PRODUCER_ID: i16 = 59;
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
    pub const OFFSET_NOT_AVAILABLE: i16 = 78;
    pub const THROTTLING_QUOTA_EXCEEDED: i16 = 89;
}

/// An error code a resend of the same batch can get past (a leader moving, replicas catching up, a slow broker).
pub fn is_retriable(c: i16) -> bool {
    use code::*;
    matches!(
        c,
        UNKNOWN_TOPIC_OR_PARTITION
            | LEADER_NOT_AVAILABLE
            | NOT_LEADER_OR_FOLLOWER
            | REQUEST_TIMED_OUT
            | NETWORK_EXCEPTION
            | COORDINATOR_LOAD_IN_PROGRESS
            | COORDINATOR_NOT_AVAILABLE
            | NOT_COORDINATOR
            | NOT_ENOUGH_REPLICAS
            | NOT_ENOUGH_REPLICAS_AFTER_APPEND
            | KAFKA_STORAGE_ERROR
            | FENCED_LEADER_EPOCH
            | UNKNOWN_LEADER_EPOCH
            | OFFSET_NOT_AVAILABLE
            | THROTTLING_QUOTA_EXCEEDED
    )
}

/// What a produce error code means for the user, when a resend cannot help.
pub fn refusal(c: i16, topic: &str, partition: i32) -> String {
    match c {
        code::OUT_OF_ORDER_SEQUENCE_NUMBER => format!(
            "OUT_OF_ORDER_SEQUENCE_NUMBER: the broker expected another sequence number on {topic}/{partition}, so it \
             no longer holds a batch it acknowledged (an unclean leader election, a truncated log) or the producer \
             state expired. Nothing was written out of order; check the topic's replication (min.insync.replicas, \
             unclean.leader.election.enable) and rerun with --resume to send what the topic lacks"
        ),
        code::INVALID_PRODUCER_EPOCH | code::UNKNOWN_PRODUCER_ID => format!(
            "{}: the broker no longer knows this producer on {topic}/{partition} (its state expired after \
             producer.id.expiration.ms of silence, or another producer took over); rerun with --resume",
            if c == code::INVALID_PRODUCER_EPOCH { "INVALID_PRODUCER_EPOCH" } else { "UNKNOWN_PRODUCER_ID" }
        ),
        code::INVALID_TIMESTAMP => "InvalidTimestamp: the record timestamps are outside what the broker accepts \
             (Apache Kafka 4 takes timestamps at most message.timestamp.after.max.ms ahead, 1 h by default, and at most \
             message.timestamp.before.max.ms old). Pass --timestamp now to send the send time, or raise the topic's limits"
            .to_string(),
        10 => "MESSAGE_TOO_LARGE: a batch exceeds the topic's max.message.bytes; lower --batch-bytes".to_string(),
        29 => format!("TOPIC_AUTHORIZATION_FAILED: this principal may not write to {topic}"),
        31 => "CLUSTER_AUTHORIZATION_FAILED: the idempotent producer needs IDEMPOTENT_WRITE on the cluster (Kafka \
             before 3.0) or WRITE on the topic; grant it, or pass --idempotence off"
            .to_string(),
        other => format!("error code {other} (see https://kafka.apache.org/protocol#protocol_error_codes)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_a_resend_can_fix_is_retried() {
        assert!(is_retriable(code::NOT_LEADER_OR_FOLLOWER));
        assert!(is_retriable(code::NOT_ENOUGH_REPLICAS_AFTER_APPEND));
        assert!(!is_retriable(code::OUT_OF_ORDER_SEQUENCE_NUMBER));
        assert!(!is_retriable(code::DUPLICATE_SEQUENCE_NUMBER));
        assert!(refusal(code::OUT_OF_ORDER_SEQUENCE_NUMBER, "t", 2).contains("t/2"));
    }
}
