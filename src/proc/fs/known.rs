//! What an [`FsSource`](super::FsSource) on a real procfs remembers about a
//! process from one cycle to the next, and the rules that let a cycle skip
//! reading what cannot have changed.
//!
//! The premise is the kernel's: a task's own counters (CPU time, page
//! faults, context switches, I/O bytes), its open descriptors, its threads,
//! its wait channel and its name can only change while the task runs, and
//! every time a task runs its `schedstat` changes (nanoseconds on the CPU,
//! and the count of times it was scheduled in). So a task whose `schedstat`
//! reads the same as at its last full reading has not run since, and that
//! reading still holds; a process all of whose tasks are in that case is
//! *quiet*. What can change without the process running is read every
//! cycle anyway: resident and virtual size (memory reclaim), swapped memory
//! (when the system has swap), and proportional memory (other processes
//! mapping the same pages).
//!
//! A few things can change without the task running and are not caught by
//! that check: a thread renamed by another thread, limits changed with
//! `prlimit`, and a task that has been woken but not yet scheduled (still
//! shown sleeping). Every process is therefore read in full once every
//! [`REFRESH_CYCLES`] cycles regardless, at a phase set by its PID so the
//! cost is spread evenly; a task last seen running, or whose statistics are
//! not kept (zero slices), is never taken as quiet.
//!
//! Each remembered process holds a path-only descriptor of its directory
//! (no buffer, a few hundred bytes of kernel memory): reads go through it,
//! and it makes identity cheap, since lookups under it fail once that
//! process is gone, even when a new process has taken its PID.

use std::sync::Arc;

use rustix::fd::OwnedFd;

use super::parse::{Schedstat, StatFields, StatusFields};
use crate::proc::names::Names;
use crate::proc::{Counts, States, Thread, ThreadID};

/// Every process is read in full at least once in this many cycles.
pub(super) const REFRESH_CYCLES: u64 = 16;

/// Descriptors left for everything else the agent opens (sockets, logs,
/// the files of one cycle) when sizing how many process directories stay
/// open.
pub(super) const RESERVED_FDS: u64 = 256;

/// Whether cycle `cycle` is the one in [`REFRESH_CYCLES`] where the process
/// `pid` is read in full whatever its `schedstat` says.
pub(super) fn refresh_due(cycle: u64, pid: i32) -> bool {
    cycle.wrapping_add(u64::from(pid.unsigned_abs())) % REFRESH_CYCLES == 0
}

/// One remembered process.
#[derive(Debug)]
pub(super) struct Known {
    /// The process's directory, opened path-only.
    pub dir: OwnedFd,
    /// Start time, once `stat` has been read through `dir`.
    pub start_ticks: Option<u64>,
    /// The last full reading, replayed while the process is quiet.
    pub full: Option<Full>,
    /// The last reading of the soft open-files limit (`None` inside: the
    /// file could not be read), with the cycle it was read in.
    pub limit: Option<(Option<u64>, u64)>,
    /// The tasks as of the last `task/` listing, sorted by TID; empty until
    /// threads have been read.
    pub tasks: Vec<KnownTask>,
    /// The cycle in which [`KnownTask::still`] was last set.
    pub checked_at: u64,
}

impl Known {
    pub(super) fn new(dir: OwnedFd) -> Self {
        Known {
            dir,
            start_ticks: None,
            full: None,
            limit: None,
            tasks: Vec::new(),
            checked_at: 0,
        }
    }

    /// The remembered task `tid`.
    pub(super) fn task(&self, tid: i32) -> Option<&KnownTask> {
        self.tasks
            .binary_search_by_key(&tid, |t| t.tid)
            .ok()
            .and_then(|i| self.tasks.get(i))
    }
}

/// The process-level values of a full reading.
#[derive(Debug, Clone)]
pub(super) struct Full {
    pub stat: StatFields,
    pub status: StatusFields,
    /// `None`: unreadable (as for the next two).
    pub io: Option<(u64, u64)>,
    pub open_fds: Option<u64>,
    pub wchan: Option<Arc<str>>,
    /// The main thread's `schedstat`, read before everything else.
    pub leader: Schedstat,
}

impl Full {
    /// Optional files among io, fd/ and wchan that could not be read.
    pub(super) fn soft_errors(&self) -> u32 {
        u32::from(self.io.is_none())
            + u32::from(self.open_fds.is_none())
            + u32::from(self.wchan.is_none())
    }

    /// Whether the process can be quiet: its main thread was not running
    /// and is counted by the scheduler statistics.
    pub(super) fn may_rest(&self) -> bool {
        self.stat.state != b'R' && self.leader.is_counting()
    }

    /// Whether the main thread is the only task (a process whose main
    /// thread has exited while others run shows as a zombie).
    pub(super) fn single_task(&self) -> bool {
        self.stat.num_threads == 1 && self.stat.state != b'Z'
    }
}

/// One remembered task: its last reading, compactly (a host can have tens
/// of thousands), with names and wait channels shared.
#[derive(Debug, Clone)]
pub(super) struct KnownTask {
    pub tid: i32,
    /// The `stat` state letter.
    pub state: u8,
    pub io_known: bool,
    /// Set when checked this cycle (see [`Known::checked_at`]) and found
    /// not to have run.
    pub still: bool,
    pub start_ticks: u64,
    /// Its `schedstat` when it was read (or last confirmed).
    pub sched: Schedstat,
    pub counts: Counts,
    pub name: Arc<str>,
    /// `None`: no wait channel.
    pub wchan: Option<Arc<str>>,
}

impl KnownTask {
    /// The record of `t`, read when its `schedstat` was `sched`.
    pub(super) fn new(t: &Thread, sched: Schedstat, names: &mut Names) -> Self {
        KnownTask {
            tid: t.id.tid,
            state: state_letter(&t.states),
            io_known: t.io_known,
            still: false,
            start_ticks: t.id.start_time_ticks,
            sched,
            counts: t.counts,
            name: names.get(&t.name),
            wchan: (!t.wchan.is_empty()).then(|| names.get(&t.wchan)),
        }
    }

    /// The task as last read.
    pub(super) fn thread(&self) -> Thread {
        Thread {
            id: ThreadID {
                tid: self.tid,
                start_time_ticks: self.start_ticks,
            },
            name: self.name.to_string(),
            counts: self.counts,
            io_known: self.io_known,
            wchan: self.wchan.as_deref().unwrap_or_default().to_string(),
            states: States::from_letter(char::from(self.state)),
        }
    }

    /// Whether `now` shows that the task has not run since its reading.
    pub(super) fn unchanged(&self, now: &Schedstat) -> bool {
        now.is_counting() && *now == self.sched && self.state != b'R'
    }
}

/// A representative letter of a single task's states (as counted by
/// [`States::from_letter`]).
fn state_letter(s: &States) -> u8 {
    match () {
        _ if s.running > 0 => b'R',
        _ if s.sleeping > 0 => b'S',
        _ if s.waiting > 0 => b'D',
        _ if s.zombie > 0 => b'Z',
        _ => b'?',
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_record_gives_back_its_thread() {
        let mut names = Names::default();
        let mut t = Thread::new(
            ThreadID {
                tid: 7,
                start_time_ticks: 99,
            },
            "worker",
            Counts {
                minor_page_faults: 3,
                ..Counts::default()
            },
        );
        t.wchan = "futex_wait".into();
        t.io_known = false;
        for letter in ['R', 'S', 'D', 'Z', 'T'] {
            t.states = States::from_letter(letter);
            let k = KnownTask::new(&t, Schedstat::default(), &mut names);
            assert_eq!(k.thread(), t);
        }
        t.wchan.clear();
        assert_eq!(
            KnownTask::new(&t, Schedstat::default(), &mut names).thread(),
            t
        );
        // One shared copy of each string, dropped once unused.
        assert_eq!(names.len(), 2);
        names.sweep();
        assert_eq!(names.len(), 0);
    }

    #[test]
    fn every_pid_is_refreshed_once_per_period() {
        for pid in [1, 2, 15, 16, 4_000_000, i32::MAX] {
            let due = (1..=REFRESH_CYCLES * 3)
                .filter(|&c| refresh_due(c, pid))
                .count();
            assert_eq!(due, 3, "pid {pid}");
        }
        // Consecutive PIDs are spread over different cycles.
        let at_one: usize = (1..=64).filter(|&pid| refresh_due(7, pid)).count();
        assert_eq!(at_one as u64, 64 / REFRESH_CYCLES);
    }
}
