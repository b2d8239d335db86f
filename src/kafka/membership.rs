//! Membership in a Kafka consumer group through the classic protocol (FindCoordinator, JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup), so that the broker's group coordinator spreads a topic's partitions over the sinks of
//! one `--group`.
//!
//! ```text
//!  find coordinator -> JoinGroup (MEMBER_ID_REQUIRED: again with the id) -> the leader assigns (range)
//!    -> SyncGroup: this member's partitions -> Assigned -> Heartbeat every interval
//!  Heartbeat REBALANCE_IN_PROGRESS    -> Revoke (workers commit what they have, leases released) -> JoinGroup
//!  Heartbeat UNKNOWN_MEMBER_ID/ILLEGAL_GENERATION, or no heartbeat answered for the session timeout
//!                                     -> Revoke { lost } (workers drop their buffers) -> JoinGroup anew
//!  NOT_COORDINATOR, a connection lost -> find the coordinator again, keep the session
//!  stop                               -> Revoke, LeaveGroup
//! ```
//!
//! The eager rebalance: every member gives every partition back before it rejoins, so no partition ever has two
//! owners by the group's word. The group only assigns work: the lake's fence (leases, conditional checkpoints,
//! the Iceberg table's offsets) decides what is written, so a member paused past its session cannot write twice.
//!
//! The protocol driver is generic over `Coordinator` (the requests) and talks to its owner through `Change`s:
//! the unit tests below run it against a scripted coordinator, without a network.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use crate::shutdown::Shutdown;

/// Kafka error codes the membership acts on (the coordinator's are shared with the producer's).
pub mod code {
    pub use crate::kafka::produce_errors::code::{
        COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NONE, NOT_COORDINATOR,
    };
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const FENCED_INSTANCE_ID: i16 = 82;
}

/// The protocol name of the assignment strategy: the consumer's `range`, which lag tools know how to show.
pub const STRATEGY: &str = "range";

/// A JoinGroup's answer.
#[derive(Debug, Clone)]
pub struct Joined {
    pub generation: i32,
    pub member_id: String,
    pub leader: String,
    /// Only for the leader: every member's id and the topics it subscribes to.
    pub members: Vec<(String, Vec<String>)>,
}

/// The requests of the classic group protocol, answered as error codes (`Err`: no answer: a connection or timeout).
pub trait Coordinator: Send {
    /// (Re)connects to the group's coordinator.
    fn find(&mut self) -> impl Future<Output = Result<(), String>> + Send;
    fn join(&mut self, member_id: &str) -> impl Future<Output = Result<Result<Joined, (i16, String)>, String>> + Send;
    /// The leader sends every member's partitions; the answer is this member's.
    fn sync(
        &mut self,
        generation: i32,
        member_id: &str,
        assignments: Vec<(String, Vec<i32>)>,
    ) -> impl Future<Output = Result<Result<Vec<i32>, i16>, String>> + Send;
    fn heartbeat(&mut self, generation: i32, member_id: &str) -> impl Future<Output = Result<i16, String>> + Send;
    fn leave(&mut self, member_id: &str) -> impl Future<Output = Result<i16, String>> + Send;
}

/// What the membership tells its owner.
#[derive(Debug)]
pub enum Change {
    /// These partitions are this member's now (after a `Revoke` of everything it had before).
    Assigned { generation: i32, partitions: Vec<i32> },
    /// Give these partitions back and say when done. `lost`: the session is gone (another member may own them
    /// already): stop at once, drop what is buffered.
    Revoke { partitions: Vec<i32>, lost: bool, done: oneshot::Sender<()> },
}

/// The member as the coordinator knows it (for group offset commits, which must carry it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Member {
    pub generation: i32,
    pub member_id: String,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub group: String,
    pub topic: String,
    /// Every partition of the topic (what the leader assigns).
    pub partitions: Vec<i32>,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
}

impl Settings {
    /// A tenth of the session (Kafka's consumer: 3 s of 45 s), between 0.5 and 3 s.
    pub fn heartbeat_interval(&self) -> Duration {
        (self.session_timeout / 10).clamp(Duration::from_millis(500), Duration::from_secs(3))
    }
}

/// A failure the membership cannot recover from (a refused protocol, an authorization): the sink stops.
#[derive(Debug, thiserror::Error)]
#[error("consumer group {group}: {what}")]
pub struct GroupError {
    pub group: String,
    pub what: String,
}

/// The range assignment of Kafka's consumer: members sorted by id, each a contiguous run of partitions, the first
/// `n % members` one more.
pub fn range_assign(members: &[String], partitions: &[i32]) -> BTreeMap<String, Vec<i32>> {
    let mut ids: Vec<&String> = members.iter().collect();
    ids.sort();
    ids.dedup();
    let mut parts = partitions.to_vec();
    parts.sort_unstable();
    let mut out = BTreeMap::new();
    if ids.is_empty() {
        return out;
    }
    let (each, extra) = (parts.len() / ids.len(), parts.len() % ids.len());
    let mut at = 0;
    for (i, id) in ids.into_iter().enumerate() {
        let n = each + usize::from(i < extra);
        out.insert(id.clone(), parts[at..at + n].to_vec());
        at += n;
    }
    out
}

/// Runs the membership until `stop`: joins, reports `Change`s, heartbeats, rejoins; on `stop` gives everything
/// back and leaves the group.
pub async fn run<C: Coordinator>(
    mut coord: C,
    settings: Settings,
    changes: mpsc::Sender<Change>,
    member: watch::Sender<Member>,
    stop: Shutdown,
) -> Result<(), GroupError> {
    let group = settings.group.clone();
    let fatal = |what: String| GroupError { group: group.clone(), what };
    let mut member_id = String::new();
    let mut connected = false;
    let mut backoff = Backoff::default();
    'rejoin: loop {
        if stop.is_set() {
            break;
        }
        if !connected {
            match coord.find().await {
                Ok(()) => connected = true,
                Err(e) => {
                    backoff.wait(&group, &format!("finding the group coordinator: {e}"), &stop).await;
                    continue;
                }
            }
        }
        let answer = tokio::select! {
            a = coord.join(&member_id) => a,
            _ = stop.wait() => break,
        };
        let joined = match answer {
            Err(e) => {
                connected = false;
                backoff.wait(&group, &format!("JoinGroup: {e}"), &stop).await;
                continue;
            }
            Ok(Err((code::MEMBER_ID_REQUIRED, id))) => {
                member_id = id;
                continue;
            }
            Ok(Err((c, _))) => {
                match c {
                    code::UNKNOWN_MEMBER_ID => member_id.clear(),
                    code::NOT_COORDINATOR | code::COORDINATOR_NOT_AVAILABLE | code::COORDINATOR_LOAD_IN_PROGRESS => {
                        connected = false
                    }
                    code::REBALANCE_IN_PROGRESS | code::ILLEGAL_GENERATION => {}
                    c => return Err(fatal(format!("JoinGroup refused: {}", describe(c)))),
                }
                backoff.wait(&group, &format!("JoinGroup answered error code {c}"), &stop).await;
                continue;
            }
            Ok(Ok(j)) => j,
        };
        member_id = joined.member_id.clone();
        let assignments: Vec<(String, Vec<i32>)> = if joined.leader == member_id {
            let subscribed: Vec<String> = joined
                .members
                .iter()
                .filter(|(_, topics)| topics.contains(&settings.topic))
                .map(|(id, _)| id.clone())
                .collect();
            let plan = range_assign(&subscribed, &settings.partitions);
            tracing::info!(group = %group, generation = joined.generation, plan = ?plan, "this member leads the group: assigned the partitions");
            joined.members.iter().map(|(id, _)| (id.clone(), plan.get(id).cloned().unwrap_or_default())).collect()
        } else {
            Vec::new()
        };
        let mine = match coord.sync(joined.generation, &member_id, assignments).await {
            Err(e) => {
                connected = false;
                backoff.wait(&group, &format!("SyncGroup: {e}"), &stop).await;
                continue;
            }
            Ok(Err(c)) => {
                match c {
                    code::UNKNOWN_MEMBER_ID => member_id.clear(),
                    code::NOT_COORDINATOR | code::COORDINATOR_NOT_AVAILABLE => connected = false,
                    code::REBALANCE_IN_PROGRESS | code::ILLEGAL_GENERATION => {}
                    c => return Err(fatal(format!("SyncGroup refused: {}", describe(c)))),
                }
                continue;
            }
            Ok(Ok(mine)) => mine,
        };
        backoff = Backoff::default();
        let generation = joined.generation;
        member.send_replace(Member { generation, member_id: member_id.clone() });
        if changes.send(Change::Assigned { generation, partitions: mine.clone() }).await.is_err() {
            break;
        }
        // Stable: heartbeats until a rebalance, a lost session or a stop.
        let interval = settings.heartbeat_interval();
        let mut last_answer = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.wait() => {
                    revoke(&mut coord, &changes, mine, false, None, &stop).await;
                    break 'rejoin;
                }
            }
            let answer =
                if connected { coord.heartbeat(generation, &member_id).await } else { Err("reconnecting".into()) };
            let lost = match answer {
                Ok(code::NONE) => {
                    last_answer = tokio::time::Instant::now();
                    continue;
                }
                Ok(code::REBALANCE_IN_PROGRESS) => false,
                Ok(code::UNKNOWN_MEMBER_ID | code::ILLEGAL_GENERATION | code::FENCED_INSTANCE_ID) => true,
                Ok(c) if c != code::NOT_COORDINATOR && c != code::COORDINATOR_NOT_AVAILABLE => {
                    return Err(fatal(format!("Heartbeat refused: {}", describe(c))));
                }
                _ if last_answer.elapsed() < settings.session_timeout => {
                    tracing::warn!(group = %group, "heartbeat failed ({answer:?}): finding the coordinator again");
                    connected = coord.find().await.is_ok();
                    continue;
                }
                // No heartbeat answered for the whole session: the coordinator has dropped this member.
                _ => true,
            };
            if lost {
                tracing::warn!(group = %group, generation, "this member's session is gone (it was paused or cut off too long): giving its partitions up and joining again");
                member_id.clear();
                member.send_replace(Member::default());
                revoke(&mut coord, &changes, mine, true, None, &stop).await;
            } else {
                tracing::info!(group = %group, generation, "the group is rebalancing: giving this member's partitions back before joining again");
                revoke(&mut coord, &changes, mine, false, Some((generation, member_id.clone(), interval)), &stop).await;
            }
            continue 'rejoin;
        }
    }
    if !member_id.is_empty() && connected {
        match coord.leave(&member_id).await {
            Ok(code::NONE) => tracing::info!(group = %group, "left the consumer group"),
            other => tracing::debug!(group = %group, "LeaveGroup: {other:?}"),
        }
    }
    member.send_replace(Member::default());
    Ok(())
}

/// An error code as Kafka names it, with its code.
fn describe(c: i16) -> String {
    match kafka_protocol::error::ResponseError::try_from_code(c) {
        Some(e) => format!("{e:?} (error code {c}): {e}"),
        None => format!("error code {c}"),
    }
}

/// Has the owner give `partitions` back and waits until it did. With `heartbeat`, keeps the session alive in the
/// meantime (a rebalance waits for this member's JoinGroup up to the rebalance timeout, its session meanwhile
/// still needs heartbeats).
async fn revoke<C: Coordinator>(
    coord: &mut C,
    changes: &mpsc::Sender<Change>,
    partitions: Vec<i32>,
    lost: bool,
    heartbeat: Option<(i32, String, Duration)>,
    stop: &Shutdown,
) {
    let (done, acked) = oneshot::channel();
    if changes.send(Change::Revoke { partitions, lost, done }).await.is_err() {
        return;
    }
    let mut acked = std::pin::pin!(acked);
    match heartbeat {
        None => {
            let _ = acked.await;
        }
        Some((generation, member_id, every)) => loop {
            tokio::select! {
                _ = &mut acked => return,
                _ = tokio::time::sleep(every) => { let _ = coord.heartbeat(generation, &member_id).await; }
                _ = stop.waits_cancelled() => return,
            }
        },
    }
}

/// Waits between failed attempts: 100 ms doubling to 5 s; warns once the waits pass 5 s in a row.
#[derive(Default)]
struct Backoff {
    attempts: u32,
}

impl Backoff {
    async fn wait(&mut self, group: &str, why: &str, stop: &Shutdown) {
        self.attempts += 1;
        let d = Duration::from_millis(100u64 << self.attempts.min(6)).min(Duration::from_secs(5));
        if self.attempts >= 6 {
            tracing::warn!(group = %group, attempts = self.attempts, "{why}; trying again");
        } else {
            tracing::debug!(group = %group, "{why}; trying again");
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = stop.wait() => {}
        }
    }
}

#[cfg(test)]
#[path = "membership_tests.rs"]
mod tests;
