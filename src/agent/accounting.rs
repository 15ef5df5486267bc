//! Choosing the exit accounting at startup, and running the exit listener.
//!
//! With `exit_accounting: auto`, the agent opens a taskstats
//! [`ExitListener`]; if that works (privilege, namespaces, and a probe exit
//! actually delivered), the listener runs on its own thread, blocking on
//! the socket with a short timeout so that it notices shutdown, turns each
//! datagram into process exits ([`ExitAssembler`]) and sends them down a
//! channel; each cycle drains the channel into the tracker before scanning
//! `/proc`. Otherwise, or with `exit_accounting: children`, the tracker
//! attributes the growth of the reaped-children totals instead. The two
//! are never both on: they would count the same work twice.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crate::cli::ExitAccounting;
use crate::exits::{ExitAssembler, ExitListener, GroupQuery, ListenerConfig, ListenerStats};
use crate::proc::ProcExit;
use crate::snapshot::{AccountingMode, ExitMode};

/// How long a receive blocks before the thread looks at the stop flag.
const RECV_TIMEOUT: Duration = Duration::from_millis(200);
/// Delivery delay tolerated when matching an exit to a sampled process.
/// The start a record gives is estimated from when the listener thread
/// received it, so it is late by however long that thread waited for a
/// CPU: on a saturated node, with 250 ms, sampled processes went
/// unmatched and were counted a second time as never sampled (23 % too
/// much for a churning group). Two seconds is far below the time the
/// kernel takes to hand the same pid out again (it allocates pids in
/// turn, up to `pid_max`: 40,000 forks at the least).
const START_SLACK: Duration = Duration::from_secs(2);

/// The running listener thread; stopped and joined on drop.
pub struct ExitFeed {
    rx: Receiver<Vec<ProcExit>>,
    /// The listener's counters, copied by its thread after each receive.
    stats: Arc<Mutex<ListenerStats>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ExitFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExitFeed").finish_non_exhaustive()
    }
}

impl ExitFeed {
    /// Every exit received since the last call.
    pub fn drain(&self) -> impl Iterator<Item = ProcExit> + '_ {
        self.rx.try_iter().flatten()
    }

    /// The listener's counters as of its last receive.
    pub fn stats(&self) -> ListenerStats {
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for ExitFeed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the exit accounting `wanted` asks for, as far as this process
/// may: the mode in force (with why the better one is not) and, in the
/// taskstats mode, the running feed. Logs the outcome once.
pub fn start(wanted: ExitAccounting, ticks_per_second: u64) -> (AccountingMode, Option<ExitFeed>) {
    let (mode, feed) = match wanted {
        ExitAccounting::Children => (
            AccountingMode {
                mode: ExitMode::Children,
                reason: Some("exit_accounting is set to children".into()),
            },
            None,
        ),
        ExitAccounting::Auto => match open(ticks_per_second) {
            Ok(feed) => (
                AccountingMode {
                    mode: ExitMode::Taskstats,
                    reason: None,
                },
                Some(feed),
            ),
            Err(reason) => (
                AccountingMode {
                    mode: ExitMode::Children,
                    reason: Some(reason),
                },
                None,
            ),
        },
    };
    match &mode.reason {
        None => tracing::info!(
            mode = mode.mode.as_str(),
            "exit accounting: every exit is counted from taskstats exit records"
        ),
        Some(reason) => tracing::info!(
            mode = mode.mode.as_str(),
            reason = %reason,
            "exit accounting: the reaped children of tracked processes are counted \
             (taskstats exit records are not used)"
        ),
    }
    (mode, feed)
}

/// A thread-group probe for the process source ([`GroupQuery`]), when this
/// process may ask the kernel (`CAP_NET_ADMIN`, the host network
/// namespace, a kernel that sums a group's run time) and `procfs` numbers
/// processes as this process does (its `self` is this process's pid, so
/// the mount is of this pid namespace). Otherwise `None`, and why is
/// logged: the source then reads each process's `schedstat` and `status`,
/// and each thread's `schedstat` or the whole process again, to learn what
/// the probe would have said.
pub fn group_probe(procfs: &Path) -> Option<GroupQuery> {
    let own = std::process::id().to_string();
    match std::fs::read_link(procfs.join("self")) {
        Ok(p) if p.as_os_str() == own.as_str() => {}
        _ => {
            tracing::info!(
                procfs = %procfs.display(),
                "thread groups are not asked about through taskstats: the procfs is of another pid namespace"
            );
            return None;
        }
    }
    match GroupQuery::open() {
        Ok(q) => {
            tracing::info!(
                "thread groups are asked about through taskstats: a process whose threads have not run is not reread, and none reads schedstat"
            );
            Some(q)
        }
        Err(e) => {
            tracing::info!(
                reason = %e,
                "thread groups are not asked about through taskstats (needs CAP_NET_ADMIN and hostNetwork)"
            );
            None
        }
    }
}

fn open(ticks_per_second: u64) -> Result<ExitFeed, String> {
    let listener = ExitListener::open(&ListenerConfig::default()).map_err(|e| {
        if e.is_not_permitted() {
            format!("{e} (needs CAP_NET_ADMIN, hostPID and hostNetwork)")
        } else {
            e.to_string()
        }
    })?;
    listener
        .set_timeout(Some(RECV_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let (tx, rx) = channel();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let stats = Arc::new(Mutex::new(listener.stats()));
    let shared = stats.clone();
    let thread = std::thread::Builder::new()
        .name("procgroups-exits".into())
        .spawn(move || {
            listen(
                listener,
                ExitAssembler::new(ticks_per_second, START_SLACK),
                &tx,
                &shared,
                &flag,
            )
        })
        .map_err(|e| format!("starting the exit listener thread: {e}"))?;
    Ok(ExitFeed {
        rx,
        stats,
        stop,
        thread: Some(thread),
    })
}

fn listen(
    mut listener: ExitListener,
    mut assembler: ExitAssembler,
    tx: &Sender<Vec<ProcExit>>,
    stats: &Mutex<ListenerStats>,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        let received = listener.recv();
        *stats.lock().unwrap_or_else(PoisonError::into_inner) = listener.stats();
        match received {
            Ok(Some(batch)) => {
                let exits =
                    assembler.feed(&batch.records, batch.received_boottime, SystemTime::now());
                if !exits.is_empty() && tx.send(exits).is_err() {
                    return;
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "exit records stopped; exits are no longer counted");
                return;
            }
        }
    }
}
