//! The sink's checkpoints, committed to a Kafka consumer group for the tools Kafka operators watch: lag in
//! `kafka-consumer-groups.sh --describe`, Redpanda Console, Kafka UI, Burrow, MSK's `SumOffsetLag`.
//!
//! Visibility only. The lake's checkpoint (or the Iceberg table's snapshot offsets) stays the one source of truth;
//! a group offset is never read back. So a failed commit here never stops or slows the sink: it is logged (once
//! per minute at most) and the next checkpoint tries again. Without `--group`, commits are the "simple consumer" kind
//! (generation -1, no member id), which a group without members accepts; each sink commits only its own
//! partitions. A member of a `--group` commits with its generation and member id, only the partitions it holds.
//!
//! A background task takes the newest checkpoint of each partition and commits what changed, at most once a
//! second: a live feed's thousands of cuts a day cost a few small requests, not one each.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::{FindCoordinatorRequest, GroupId, OffsetCommitRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::watch;

use super::KafkaConfig;
use super::membership::Member;
use super::wire::{self, Conn};

/// What ends up in `committed_metadata`: who committed, so an operator can tell.
const METADATA: &str = "ticklake sink: the lake's checkpoint (not read back)";

/// The group a sink commits to unless told otherwise.
pub fn default_group(topic: &str) -> String {
    format!("ticklake-{topic}")
}

/// Hands checkpoints to the committing task.
pub struct GroupOffsets {
    tx: std::sync::Mutex<Option<watch::Sender<BTreeMap<i32, i64>>>>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl GroupOffsets {
    /// `member`: the sink is a member of `group` (`--group`), whose commits must carry its generation and id;
    /// `None`: commits without membership.
    pub fn start(
        cfg: KafkaConfig,
        group: String,
        topic: String,
        member: Option<watch::Receiver<Member>>,
    ) -> GroupOffsets {
        let (tx, rx) = watch::channel(BTreeMap::new());
        let task = tokio::spawn(run(cfg, group, topic, rx, member));
        GroupOffsets { tx: std::sync::Mutex::new(Some(tx)), task: std::sync::Mutex::new(Some(task)) }
    }

    /// `partition`'s checkpoint moved to `next_offset`.
    pub fn publish(&self, partition: i32, next_offset: i64) {
        if let Some(tx) = self.tx.lock().expect("not poisoned").as_ref() {
            tx.send_modify(|m| {
                let e = m.entry(partition).or_insert(next_offset);
                *e = (*e).max(next_offset);
            });
        }
    }

    /// `partition` went to another member: its offsets are that member's to commit now.
    pub fn forget(&self, partition: i32) {
        if let Some(tx) = self.tx.lock().expect("not poisoned").as_ref() {
            tx.send_modify(|m| {
                m.remove(&partition);
            });
        }
    }

    /// Commits what is pending, then stops the task; at most `within`.
    pub async fn finish(&self, within: Duration) {
        drop(self.tx.lock().expect("not poisoned").take());
        let task = self.task.lock().expect("not poisoned").take();
        if let Some(t) = task {
            let _ = tokio::time::timeout(within, t).await;
        }
    }
}

async fn run(
    cfg: KafkaConfig,
    group: String,
    topic: String,
    mut rx: watch::Receiver<BTreeMap<i32, i64>>,
    member: Option<watch::Receiver<Member>>,
) {
    let mut committed: BTreeMap<i32, i64> = BTreeMap::new();
    let mut conn: Option<Conn> = None;
    let mut last_warning: Option<Instant> = None;
    let mut next_commit = tokio::time::Instant::now();
    // A failed commit is tried again a second later without waiting for a new checkpoint (a broker that just
    // started answers COORDINATOR_NOT_AVAILABLE until its offsets topic exists), and at close until `finish` gives up.
    let mut failed = false;
    let mut open = true;
    loop {
        if !failed {
            open = rx.changed().await.is_ok();
        } else if !open {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Coalesce: at most one commit a second, but a closing sink's last checkpoints go at once.
        while open {
            tokio::select! {
                _ = tokio::time::sleep_until(next_commit) => break,
                changed = rx.changed() => open = changed.is_ok(),
            }
        }
        let want = rx.borrow_and_update().clone();
        let changed: BTreeMap<i32, i64> = want.into_iter().filter(|(p, o)| committed.get(p) != Some(o)).collect();
        if !changed.is_empty() {
            next_commit = tokio::time::Instant::now() + Duration::from_secs(1);
            let me = member.as_ref().map(|m| m.borrow().clone());
            let result = match &me {
                // Between two generations: the coordinator would refuse; the next try carries the new one.
                Some(m) if m.member_id.is_empty() => Err("this member is (re)joining the group".to_string()),
                _ => commit(&cfg, &mut conn, &group, &topic, &changed, me.as_ref()).await,
            };
            match result {
                Ok(()) => {
                    tracing::debug!(group = %group, offsets = ?changed, "checkpoints committed to the consumer group");
                    committed.extend(changed);
                    failed = false;
                }
                Err(e) => {
                    conn = None;
                    failed = true;
                    if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                        last_warning = Some(Instant::now());
                        tracing::warn!(
                            group = %group,
                            "committing the lake's checkpoints to the consumer group failed (lag tools show older offsets; the lake is unaffected): {e}"
                        );
                    }
                }
            }
        }
        if !open && !failed {
            return;
        }
    }
}

/// Finds the group's coordinator (on any bootstrap broker) and connects to it.
pub(crate) async fn coordinator(cfg: &KafkaConfig, group: &str) -> Result<Conn, String> {
    let (bootstrap, addr) = wire::connect_bootstrap(cfg).await?;
    let req = FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.to_string())).with_key_type(0);
    let a = wire::request(cfg, &bootstrap, req).await?;
    if a.error_code != 0 {
        return Err(format!("FindCoordinator for group {group}: error code {}", a.error_code));
    }
    let at = format!("{}:{}", a.host.as_str(), a.port);
    if at == addr { Ok(bootstrap) } else { wire::connect(cfg, &at).await }
}

async fn commit(
    cfg: &KafkaConfig,
    conn: &mut Option<Conn>,
    group: &str,
    topic: &str,
    offsets: &BTreeMap<i32, i64>,
    member: Option<&Member>,
) -> Result<(), String> {
    let c = match conn {
        Some(c) => c.clone(),
        None => {
            let c = coordinator(cfg, group).await?;
            *conn = Some(c.clone());
            c
        }
    };
    let partitions = offsets
        .iter()
        .map(|(&p, &o)| {
            OffsetCommitRequestPartition::default()
                .with_partition_index(p)
                .with_committed_offset(o)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(StrBytes::from_static_str(METADATA)))
        })
        .collect();
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id_or_member_epoch(member.map_or(-1, |m| m.generation))
        .with_member_id(StrBytes::from_string(member.map(|m| m.member_id.clone()).unwrap_or_default()))
        .with_retention_time_ms(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(partitions),
        ]);
    let a = wire::request(cfg, &c, req).await?;
    let errors: Vec<String> = a
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .filter(|p| p.error_code != 0)
        .map(|p| format!("partition {}: error code {}", p.partition_index, p.error_code))
        .collect();
    if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
}
