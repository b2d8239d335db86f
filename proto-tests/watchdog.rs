//! A hang is a failure, not a wait: every test's `TestEnv` starts a watchdog. A test still running after
//! `TICKLAKE_TEST_LIMIT` seconds (600 unless set; the longest test takes about 150 s) stops the whole run with the
//! evidence: the test's name, what it was running, the last lines of each of its processes and of each server's
//! log. Then every process the tests started is killed, so CI ends with a failure instead of its own timeout.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

type Lines = (Mutex<Vec<String>>, Condvar);

/// What the running tests started: (test, command line, its stderr lines while they are alive).
static PROCESSES: Mutex<Vec<(String, String, Weak<Lines>)>> = Mutex::new(Vec::new());
/// The command each test runs to completion right now.
static RUNNING: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// Ends with the test (dropping it ends the watchdog's wait).
#[derive(Debug)]
pub struct Watch {
    _done: mpsc::Sender<()>,
}

fn test_name() -> String {
    std::thread::current().name().unwrap_or("a test").to_string()
}

pub fn start() -> Arc<Watch> {
    let limit = std::env::var("TICKLAKE_TEST_LIMIT").ok().and_then(|s| s.parse().ok()).unwrap_or(600u64);
    let test = test_name();
    let (done, wait) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(RecvTimeoutError::Timeout) = wait.recv_timeout(Duration::from_secs(limit)) {
            give_up(&test, limit);
        }
    });
    Arc::new(Watch { _done: done })
}

/// A process whose stderr the watchdog shows if its test hangs.
pub fn watch_process(cmd: &std::process::Command, lines: &Arc<Lines>) {
    let mut all = PROCESSES.lock().unwrap();
    all.retain(|(_, _, l)| l.strong_count() > 0);
    all.push((test_name(), format!("{cmd:?}"), Arc::downgrade(lines)));
}

/// The command the current test now runs to completion (`None`: it returned).
pub fn running(cmd: Option<&std::process::Command>) {
    let test = test_name();
    let mut all = RUNNING.lock().unwrap();
    all.retain(|(t, _)| *t != test);
    if let Some(cmd) = cmd {
        all.push((test, format!("{cmd:?}")));
    }
}

/// Straight to the test binary's stderr: libtest captures what `eprintln!` prints, and a test that is stopped
/// never shows it.
fn say(text: String) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{text}");
}

fn tail(lines: &[String], n: usize) -> String {
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The last `n` lines of a process's stderr, a run of lines that differ only in their numbers (a stats line every
/// half second) shown as its last line and a count, so what happened before the hang stays in view.
fn story(lines: &[String], n: usize) -> String {
    let shape = |l: &str| l.chars().filter(|c| !c.is_ascii_digit()).collect::<String>();
    let mut runs: Vec<(String, usize)> = Vec::new();
    for l in lines {
        match runs.last_mut() {
            Some((last, count)) if shape(last) == shape(l) => {
                *last = l.clone();
                *count += 1;
            }
            _ => runs.push((l.clone(), 1)),
        }
    }
    let shown: Vec<String> =
        runs.into_iter().map(|(l, count)| if count > 1 { format!("{l}   [x{count}]") } else { l }).collect();
    tail(&shown, n)
}

fn give_up(test: &str, limit: u64) -> ! {
    // One report, however many of the run's watchdogs fire.
    static ONCE: Mutex<()> = Mutex::new(());
    let _one = ONCE.lock().unwrap();
    say(format!("\nproto-tests: `{test}` is still running after {limit} s: a hang; stopping every test."));
    for (t, cmd) in RUNNING.lock().unwrap().iter() {
        say(format!("proto-tests: `{t}` is running (to completion): {cmd}"));
    }
    for (t, cmd, lines) in PROCESSES.lock().unwrap().iter() {
        let Some(lines) = lines.upgrade() else { continue };
        let lines = lines.0.lock().unwrap();
        if t == test {
            say(format!("--- {cmd}: {} stderr lines, the last 80 kinds\n{}", lines.len(), story(&lines, 80)));
        }
    }
    if let Ok(state) = std::env::var("TICKLAKE_SERVERS_LOGS") {
        for log in server_logs(std::path::Path::new(&state)) {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            say(format!("--- {}: last 15 lines\n{}", log.display(), tail(&lines, 15)));
        }
    }
    let _ = std::process::Command::new("pkill").args(["-KILL", "-P", &std::process::id().to_string()]).status();
    std::process::exit(1)
}

/// `*.log` in the servers' state folder and one level below.
fn server_logs(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let entries = |d: &std::path::Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(d).map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default()
    };
    let mut logs: Vec<_> = entries(dir)
        .into_iter()
        .flat_map(|p| if p.is_dir() { entries(&p) } else { vec![p] })
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs
}
