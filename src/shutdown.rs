//! One shutdown handle for the whole process.
//!
//! Ctrl-C and SIGTERM set it; every loop checks it (async loops with `wait()` in `select!`, the blocking CSV
//! reader thread with `is_set()` per row), so a stop means "stop taking new input, finish what is in flight".
//! Tests trigger it directly instead of sending signals.
//!
//! Waits between retries (`crate::backoff`) end on a stop too: at once while a command is still starting (nothing
//! is in flight: an unreachable endpoint must not hold Ctrl-C for minutes), and on a second signal once it runs
//! (the first one lets in-flight work finish, retries included). What those waits watch is the process's handle,
//! `Shutdown::process()`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

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
    /// The command is past its start-up (work is in flight that a first signal lets finish).
    running: Arc<AtomicBool>,
    /// A second signal came: stop waiting for anything.
    forced: Arc<AtomicBool>,
    /// The stop came from a signal (Ctrl-C, SIGTERM), not from the command itself (a sink stops its other
    /// partitions when one fails): only then does a failure exit with 130/143.
    signalled: Arc<AtomicBool>,
}

static PROCESS: std::sync::OnceLock<Shutdown> = std::sync::OnceLock::new();

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// The process's handle: the one the signal handlers set and the retry waits watch.
    pub fn process() -> &'static Shutdown {
        PROCESS.get_or_init(Shutdown::new)
    }

    /// Why a signal stopped the process, if one did (an internal stop, such as a failed partition's, is not one).
    pub fn signal(&self) -> Option<StopReason> {
        if self.signalled.load(Ordering::SeqCst) { self.reason() } else { None }
    }

    /// Marks the end of start-up: from now on a first signal lets in-flight work (and its retries) finish.
    pub fn mark_running(&self) {
        self.running.store(true, Ordering::SeqCst);
    }

    /// Whether a wait for a retry should end now.
    pub fn cancels_waits(&self) -> bool {
        self.forced.load(Ordering::SeqCst) || (self.is_set() && !self.running.load(Ordering::SeqCst))
    }

    /// Resolves once waits should end (see `cancels_waits`).
    pub async fn waits_cancelled(&self) {
        self.until(Shutdown::cancels_waits).await
    }

    /// Resolves once `state` holds; every change of state notifies.
    async fn until(&self, state: impl Fn(&Shutdown) -> bool) {
        loop {
            let notified = self.notify.notified();
            if state(self) {
                return;
            }
            notified.await;
        }
    }

    fn force(&self) {
        self.forced.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
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
        self.until(Shutdown::is_set).await
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
                loop {
                    let reason = tokio::select! {
                        _ = int.recv() => StopReason::Interrupt,
                        _ = term.recv() => StopReason::Terminate,
                    };
                    if me.signalled.swap(true, Ordering::SeqCst) {
                        tracing::warn!("second stop signal: no longer waiting for retries");
                        me.force();
                    } else {
                        me.trigger(reason);
                    }
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

    #[tokio::test]
    async fn a_stop_ends_waits_at_once_while_starting_and_on_a_second_signal_once_running() {
        let starting = Shutdown::new();
        assert!(!starting.cancels_waits());
        starting.trigger(StopReason::Interrupt);
        starting.waits_cancelled().await;
        let running = Shutdown::new();
        running.mark_running();
        running.trigger(StopReason::Interrupt);
        assert!(!running.cancels_waits(), "in-flight work finishes after a first signal");
        running.force();
        running.waits_cancelled().await;
    }
}
