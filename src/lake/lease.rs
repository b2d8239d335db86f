//! One writer per Kafka partition: a lease object per partition, `_ticklake/leases/<topic>/<partition>.json`, held
//! by the sink that writes the partition and renewed while it runs (conditional writes: a lease only replaces the
//! version its holder last wrote). The lease says who holds it, so a second sink can name the first.
//!
//! A lease is free when it was released (a clean stop), when its holder ran on this host and is gone (a crash and
//! a restart on the same machine), or when it was not renewed for its TTL as seen by the newcomer's own clock (a
//! dead or paused holder elsewhere; no clock is compared across hosts).

use serde::{Deserialize, Serialize};

use super::state::STATE_PREFIX;

pub fn lease_key(topic: &str, partition: i32) -> String {
    format!("{STATE_PREFIX}/leases/{topic}/{partition}.json")
}

/// Who holds a partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// A random id per sink process.
    pub writer: String,
    pub host: String,
    pub pid: u32,
    /// When the holder started (RFC 3339, its clock).
    pub started_at: String,
    /// Renewals so far: every renewal changes the object, which is what a waiting newcomer watches.
    pub renewals: u64,
    /// The holder renews at a third of this; a newcomer waits this long without a renewal before taking over.
    pub ttl_ms: u64,
    #[serde(default)]
    pub released: bool,
    /// `sink --group`: the consumer group the holder is a member of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl Lease {
    pub fn describe(&self) -> String {
        let group = self.group.as_ref().map_or(String::new(), |g| format!(", member of consumer group {g}"));
        format!("writer {} on host {} (pid {}), started {}{group}", self.writer, self.host, self.pid, self.started_at)
    }

    /// Free without waiting: released, or held by a process of this host that no longer runs.
    pub fn free_now(&self, my_host: &str, pid_alive: impl Fn(u32) -> bool) -> bool {
        self.released || (self.host == my_host && !pid_alive(self.pid))
    }
}

/// This machine's name, for leases and messages.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

/// Whether process `pid` of this host still runs ticklake (a stopped process counts as running).
pub fn pid_runs_ticklake(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.windows(8).any(|w| w == b"ticklake"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_free_when_released_or_its_local_holder_is_gone() {
        let l = Lease {
            writer: "w1".into(),
            host: "h".into(),
            pid: 7,
            started_at: "2026-12-02T00:00:00Z".into(),
            renewals: 0,
            ttl_ms: 30_000,
            released: false,
            group: None,
        };
        assert!(!l.free_now("h", |_| true), "held by a running local process");
        assert!(l.free_now("h", |_| false), "its local holder is gone");
        assert!(!l.free_now("other", |_| false), "another host's holder: wait for the TTL");
        assert!(Lease { released: true, ..l.clone() }.free_now("other", |_| true));
        assert!(l.describe().contains("host h (pid 7), started 2026-12-02T00:00:00Z"));
        let back: Lease = serde_json::from_str(&serde_json::to_string(&l).unwrap()).unwrap();
        assert_eq!(back, l);
        assert!(
            pid_runs_ticklake(std::process::id())
                || !std::env::current_exe().unwrap().to_string_lossy().contains("ticklake")
        );
    }
}
