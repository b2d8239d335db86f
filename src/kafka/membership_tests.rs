//! The membership against a scripted coordinator: every answer it gets is queued by the test, every request it
//! makes is recorded.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::*;

#[derive(Default)]
struct Script {
    finds: u32,
    joins: VecDeque<Result<Joined, (i16, String)>>,
    /// Member ids the joins were sent with.
    joined_as: Vec<String>,
    syncs: VecDeque<Result<Vec<i32>, i16>>,
    /// What the leader sent.
    sent_assignments: Vec<Vec<(String, Vec<i32>)>>,
    heartbeats: VecDeque<Result<i16, String>>,
    left: Vec<String>,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<Script>>);

impl Coordinator for Fake {
    async fn find(&mut self) -> Result<(), String> {
        self.0.lock().unwrap().finds += 1;
        Ok(())
    }
    async fn join(&mut self, member_id: &str) -> Result<Result<Joined, (i16, String)>, String> {
        let next = {
            let mut s = self.0.lock().unwrap();
            s.joined_as.push(member_id.to_string());
            s.joins.pop_front()
        };
        match next {
            Some(a) => Ok(a),
            // Nothing scripted: the rebalance never completes (the test ends it with a stop).
            None => std::future::pending().await,
        }
    }
    async fn sync(&mut self, _: i32, _: &str, a: Vec<(String, Vec<i32>)>) -> Result<Result<Vec<i32>, i16>, String> {
        let mut s = self.0.lock().unwrap();
        s.sent_assignments.push(a);
        Ok(s.syncs.pop_front().expect("a scripted SyncGroup answer"))
    }
    async fn heartbeat(&mut self, _: i32, _: &str) -> Result<i16, String> {
        self.0.lock().unwrap().heartbeats.pop_front().unwrap_or(Ok(code::NONE))
    }
    async fn leave(&mut self, member_id: &str) -> Result<i16, String> {
        self.0.lock().unwrap().left.push(member_id.to_string());
        Ok(code::NONE)
    }
}

fn joined(generation: i32, me: &str, leader: &str, others: &[&str]) -> Result<Joined, (i16, String)> {
    let members = if me == leader {
        std::iter::once(me).chain(others.iter().copied()).map(|m| (m.to_string(), vec!["t".to_string()])).collect()
    } else {
        vec![]
    };
    Ok(Joined { generation, member_id: me.into(), leader: leader.into(), members })
}

struct Running {
    fake: Fake,
    changes: mpsc::Receiver<Change>,
    member: watch::Receiver<Member>,
    stop: Shutdown,
    task: tokio::task::JoinHandle<Result<(), GroupError>>,
}

fn start(script: Script) -> Running {
    let fake = Fake(Arc::new(Mutex::new(script)));
    let settings = Settings {
        group: "g".into(),
        topic: "t".into(),
        partitions: (0..6).collect(),
        session_timeout: Duration::from_secs(10),
        rebalance_timeout: Duration::from_secs(60),
    };
    let (tx, changes) = mpsc::channel(4);
    let (member_tx, member) = watch::channel(Member::default());
    let stop = Shutdown::new();
    let task = tokio::spawn(run(fake.clone(), settings, tx, member_tx, stop.clone()));
    Running { fake, changes, member, stop, task }
}

impl Running {
    async fn assigned(&mut self) -> (i32, Vec<i32>) {
        match self.changes.recv().await.expect("a change") {
            Change::Assigned { generation, partitions } => (generation, partitions),
            other => panic!("expected an assignment, got {other:?}"),
        }
    }
    async fn revoked(&mut self) -> (Vec<i32>, bool) {
        match self.changes.recv().await.expect("a change") {
            Change::Revoke { partitions, lost, done } => {
                done.send(()).unwrap();
                (partitions, lost)
            }
            other => panic!("expected a revocation, got {other:?}"),
        }
    }
    async fn stop(mut self) -> Script {
        self.stop.trigger(crate::shutdown::StopReason::Terminate);
        // A member that owns partitions gives them back before it leaves.
        while let Some(c) = self.changes.recv().await {
            if let Change::Revoke { done, .. } = c {
                done.send(()).unwrap();
            }
        }
        self.task.await.unwrap().unwrap();
        Arc::try_unwrap(self.fake.0).ok().expect("the driver is done").into_inner().unwrap()
    }
}

#[test]
fn range_assignment_gives_each_member_a_contiguous_run() {
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let plan = range_assign(&ids(&["c", "a", "b"]), &(0..12).rev().collect::<Vec<_>>());
    assert_eq!(plan["a"], vec![0, 1, 2, 3]);
    assert_eq!(plan["b"], vec![4, 5, 6, 7]);
    assert_eq!(plan["c"], vec![8, 9, 10, 11]);
    let plan = range_assign(&ids(&["a", "b"]), &[0, 1, 2, 3, 4]);
    assert_eq!((plan["a"].clone(), plan["b"].clone()), (vec![0, 1, 2], vec![3, 4]));
    // More members than partitions: the last ones get none; every partition exactly once.
    let plan = range_assign(&ids(&["a", "b", "c"]), &[7]);
    assert_eq!(plan.values().flatten().collect::<Vec<_>>(), vec![&7]);
    assert!(range_assign(&[], &[1, 2]).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_leader_joins_with_the_id_the_broker_gives_and_assigns_every_member() {
    let mut r = start(Script {
        joins: VecDeque::from([Err((code::MEMBER_ID_REQUIRED, "m-1".into())), joined(3, "m-1", "m-1", &["m-2"])]),
        syncs: VecDeque::from([Ok(vec![0, 1, 2])]),
        ..Script::default()
    });
    assert_eq!(r.assigned().await, (3, vec![0, 1, 2]));
    assert_eq!(*r.member.borrow(), Member { generation: 3, member_id: "m-1".into() });
    let s = r.stop().await;
    assert_eq!(s.joined_as, vec!["".to_string(), "m-1".to_string()]);
    let sent = &s.sent_assignments[0];
    assert_eq!(sent.len(), 2);
    assert!(sent.contains(&("m-1".into(), vec![0, 1, 2])) && sent.contains(&("m-2".into(), vec![3, 4, 5])));
    assert_eq!(s.left, vec!["m-1".to_string()]);
}

#[tokio::test(start_paused = true)]
async fn a_rebalance_revokes_everything_before_the_member_joins_again() {
    let mut r = start(Script {
        joins: VecDeque::from([joined(1, "m", "other", &[]), joined(2, "m", "other", &[])]),
        syncs: VecDeque::from([Ok(vec![4, 5]), Ok(vec![5])]),
        heartbeats: VecDeque::from([Ok(code::NONE), Ok(code::REBALANCE_IN_PROGRESS)]),
        ..Script::default()
    });
    assert_eq!(r.assigned().await, (1, vec![4, 5]));
    // The follower sent no assignment.
    assert_eq!(r.fake.0.lock().unwrap().sent_assignments[0], vec![]);
    let joins_before = r.fake.0.lock().unwrap().joined_as.len();
    assert_eq!(r.revoked().await, (vec![4, 5], false));
    assert_eq!(r.assigned().await, (2, vec![5]));
    let s = r.stop().await;
    // The second join came after the revocation, with the same member id (the session was kept).
    assert_eq!(joins_before, 1);
    assert_eq!(s.joined_as, vec!["".to_string(), "m".to_string()]);
}

#[tokio::test(start_paused = true)]
async fn a_lost_session_drops_the_partitions_and_joins_as_a_new_member() {
    for refusal in [code::UNKNOWN_MEMBER_ID, code::ILLEGAL_GENERATION, code::FENCED_INSTANCE_ID] {
        let mut r = start(Script {
            joins: VecDeque::from([joined(7, "m", "m", &[]), joined(9, "m2", "m2", &[])]),
            syncs: VecDeque::from([Ok(vec![0, 1, 2, 3, 4, 5]), Ok(vec![0, 1, 2, 3, 4, 5])]),
            heartbeats: VecDeque::from([Ok(refusal)]),
            ..Script::default()
        });
        assert_eq!(r.assigned().await, (7, (0..6).collect()));
        assert_eq!(r.revoked().await, ((0..6).collect(), true), "code {refusal}");
        assert_eq!(*r.member.borrow(), Member::default(), "no commits under the old generation");
        assert_eq!(r.assigned().await.0, 9);
        let s = r.stop().await;
        assert_eq!(s.joined_as, vec!["".to_string(), "".to_string()], "code {refusal}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_moved_coordinator_is_found_again_without_giving_partitions_up() {
    let mut r = start(Script {
        joins: VecDeque::from([joined(1, "m", "m", &[])]),
        syncs: VecDeque::from([Ok(vec![0, 1])]),
        heartbeats: VecDeque::from([Ok(code::NOT_COORDINATOR), Err("connection reset".into()), Ok(code::NONE)]),
        ..Script::default()
    });
    assert_eq!(r.assigned().await, (1, vec![0, 1]));
    // Let the heartbeats above run out; no change may arrive meanwhile.
    while !r.fake.0.lock().unwrap().heartbeats.is_empty() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(r.changes.try_recv().is_err());
    let s = r.stop().await;
    assert_eq!(s.finds, 3, "found once at start and again after each failed heartbeat");
}

#[tokio::test(start_paused = true)]
async fn no_heartbeat_answered_for_the_session_counts_as_lost() {
    let mut r = start(Script {
        joins: VecDeque::from([joined(1, "m", "m", &[])]),
        syncs: VecDeque::from([Ok(vec![3])]),
        heartbeats: (0..40).map(|_| Err("no answer".to_string())).collect(),
        ..Script::default()
    });
    assert_eq!(r.assigned().await, (1, vec![3]));
    assert_eq!(r.revoked().await, (vec![3], true));
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_refused_protocol_stops_the_member_with_the_reason() {
    let r = start(Script {
        joins: VecDeque::from([Err((23, String::new()))]), // INCONSISTENT_GROUP_PROTOCOL
        ..Script::default()
    });
    let e = r.task.await.unwrap().unwrap_err();
    assert!(e.to_string().contains("consumer group g") && e.to_string().contains("23"), "{e}");
}
