//! One shutdown handle for the whole process.
//!
//! Ctrl-C and SIGTERM set it; every loop checks it (async loops with `wait()` in `select!`, the blocking CSV
//! reader thread with `is_set()` per row), so a stop means "stop taking new input, finish what is in flight".
//! Tests trigger it directly instead of sending signals.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::sync::Notify;

/// Why the process was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Interrupt,
    Terminate,
}

impl StopReason {
    pub fn kind(self) -> crate::exit::Kind {
        match self {
            StopReason::Interrupt => crate::exit::Kind::Interrupted,
            StopReason::Terminate => crate::exit::Kind::Terminated,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    /// 0 = running, 1 = interrupt, 2 = terminate.
    state: Arc<AtomicU8>,
    notify: Arc<Notify>,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn trigger(&self, reason: StopReason) {
        let code = match reason {
            StopReason::Interrupt => 1,
            StopReason::Terminate => 2,
        };
        let _ = self.state.compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn is_set(&self) -> bool {
        self.state.load(Ordering::Relaxed) != 0
    }

    pub fn reason(&self) -> Option<StopReason> {
        match self.state.load(Ordering::SeqCst) {
            1 => Some(StopReason::Interrupt),
            2 => Some(StopReason::Terminate),
            _ => None,
        }
    }

    /// Resolves once a stop was asked for.
    pub async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_set() {
                return;
            }
            notified.await;
        }
    }

    /// Installs the Ctrl-C and SIGTERM handlers (call once, inside the runtime).
    pub fn listen_for_signals(&self) {
        let me = self.clone();
        tokio::spawn(async move {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{SignalKind, signal};
                let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
                else {
                    tracing::warn!("cannot install signal handlers; Ctrl-C will stop the process without a flush");
                    return;
                };
                tokio::select! {
                    _ = int.recv() => me.trigger(StopReason::Interrupt),
                    _ = term.recv() => me.trigger(StopReason::Terminate),
                }
            }
            #[cfg(not(unix))]
            {
                let _ = tokio::signal::ctrl_c().await;
                me.trigger(StopReason::Interrupt);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_reason_wins_and_waiters_wake() {
        let s = Shutdown::new();
        let waiter = tokio::spawn({
            let s = s.clone();
            async move { s.wait().await }
        });
        s.trigger(StopReason::Terminate);
        s.trigger(StopReason::Interrupt);
        waiter.await.unwrap();
        assert_eq!(s.reason(), Some(StopReason::Terminate));
        assert_eq!(crate::exit::code(s.reason().unwrap().kind()), 143);
    }
}
