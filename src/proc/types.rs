//! Plain data shared by every stage of the pipeline: process identity, the
//! values read from `/proc`, the per-process updates the [`Tracker`] emits and
//! the per-group totals the [`Grouper`] folds them into. Nothing here does I/O.
//!
//! `Counts` holds totals since a process started; `Delta`, the difference of
//! two totals, is the same type under a name that says which one a value is.
//! A delta comes only from [`Counts::since`], which never goes negative, so a
//! counter only ever grows.
//!
//! [`Tracker`]: super::Tracker
//! [`Grouper`]: super::Grouper

use std::collections::BTreeMap;
use std::ops::{Add, AddAssign};
use std::time::SystemTime;

/// Unique identity of a process: a PID is reused over time, the pair of PID
/// and start time (in clock ticks since boot) is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ID {
    /// POSIX process id.
    pub pid: i32,
    /// Field 22 of `stat`: start time after boot, in clock ticks.
    pub start_time_ticks: u64,
}

/// Unique identity of a thread (a task of a process), same shape as [`ID`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ThreadID {
    /// Kernel task id.
    pub tid: i32,
    /// Start time of the task after boot, in clock ticks.
    pub start_time_ticks: u64,
}

/// What is read once, when a process is first seen, and decides its group.
#[derive(Debug, Clone, PartialEq)]
pub struct Static {
    /// comm (field 2 of `stat`, at most 15 bytes).
    pub name: String,
    /// argv, from `cmdline` split on NUL; empty for kernel threads and zombies.
    pub cmdline: Vec<String>,
    /// The path of each line of `cgroup`, in file order; empty when unreadable.
    pub cgroups: Vec<String>,
    /// Field 4 of `stat`.
    pub parent_pid: i32,
    /// Wall-clock start: boot time + start ticks / ticks per second.
    pub start_time: SystemTime,
    /// Effective uid, from the `Uid:` line of `status`.
    pub effective_uid: u32,
}

impl Static {
    /// What a namer is shown of the process `pid` read as `self`: one
    /// constructor, so that every place that names a process (first
    /// sight, after an `exec`, after a reload, `explain`) shows the rules
    /// the same attributes.
    pub fn attributes(&self, pid: i32) -> super::ProcAttributes<'_> {
        super::ProcAttributes {
            name: &self.name,
            cmdline: &self.cmdline,
            cgroups: &self.cgroups,
            uid: self.effective_uid,
            pid,
            start_time: self.start_time,
        }
    }
}

/// Counters common to threads, processes and groups: totals since start.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    /// utime, seconds.
    pub cpu_user_time: f64,
    /// stime, seconds.
    pub cpu_system_time: f64,
    /// `read_bytes` of `io`.
    pub read_bytes: u64,
    /// `write_bytes` of `io`.
    pub write_bytes: u64,
    /// majflt.
    pub major_page_faults: u64,
    /// minflt.
    pub minor_page_faults: u64,
    /// `voluntary_ctxt_switches`.
    pub ctx_switch_voluntary: u64,
    /// `nonvoluntary_ctxt_switches`.
    pub ctx_switch_nonvoluntary: u64,
}

/// The increase of [`Counts`] between two readings, the same fields as the
/// totals they are added to. Never negative: [`Counts::since`] clamps a
/// field that went down (a thread exited, a value became unreadable) at 0.
pub type Delta = Counts;

fn pos(x: f64) -> f64 {
    if x.is_finite() && x > 0.0 { x } else { 0.0 }
}

impl Counts {
    /// `self - earlier`, field by field, clamped at zero: a counter must never
    /// be fed a negative (or, in u64, wrapped) difference.
    pub fn since(&self, earlier: &Counts) -> Delta {
        Delta {
            cpu_user_time: pos(self.cpu_user_time - earlier.cpu_user_time),
            cpu_system_time: pos(self.cpu_system_time - earlier.cpu_system_time),
            read_bytes: self.read_bytes.saturating_sub(earlier.read_bytes),
            write_bytes: self.write_bytes.saturating_sub(earlier.write_bytes),
            major_page_faults: self
                .major_page_faults
                .saturating_sub(earlier.major_page_faults),
            minor_page_faults: self
                .minor_page_faults
                .saturating_sub(earlier.minor_page_faults),
            ctx_switch_voluntary: self
                .ctx_switch_voluntary
                .saturating_sub(earlier.ctx_switch_voluntary),
            ctx_switch_nonvoluntary: self
                .ctx_switch_nonvoluntary
                .saturating_sub(earlier.ctx_switch_nonvoluntary),
        }
    }

    /// The whole total as an increase since zero (a process seen for the first
    /// time that started while the agent was running).
    pub fn as_delta(&self) -> Delta {
        self.since(&Counts::default())
    }
}

impl AddAssign for Counts {
    fn add_assign(&mut self, d: Delta) {
        self.cpu_user_time += d.cpu_user_time;
        self.cpu_system_time += d.cpu_system_time;
        self.read_bytes = self.read_bytes.saturating_add(d.read_bytes);
        self.write_bytes = self.write_bytes.saturating_add(d.write_bytes);
        self.major_page_faults = self.major_page_faults.saturating_add(d.major_page_faults);
        self.minor_page_faults = self.minor_page_faults.saturating_add(d.minor_page_faults);
        self.ctx_switch_voluntary = self
            .ctx_switch_voluntary
            .saturating_add(d.ctx_switch_voluntary);
        self.ctx_switch_nonvoluntary = self
            .ctx_switch_nonvoluntary
            .saturating_add(d.ctx_switch_nonvoluntary);
    }
}

impl Add<Delta> for Counts {
    type Output = Counts;
    fn add(mut self, d: Delta) -> Counts {
        self += d;
        self
    }
}

/// Memory of a process (or the sum over a group), in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// rss pages × page size.
    pub resident_bytes: u64,
    /// vsize.
    pub virtual_bytes: u64,
    /// `VmSwap` of `status`.
    pub swap_bytes: u64,
    /// `Pss` of `smaps_rollup` (only when smaps gathering is on).
    pub proportional_bytes: u64,
    /// `SwapPss` of `smaps_rollup` (only when smaps gathering is on).
    pub proportional_swap_bytes: u64,
}

impl AddAssign for Memory {
    fn add_assign(&mut self, m: Memory) {
        self.resident_bytes = self.resident_bytes.saturating_add(m.resident_bytes);
        self.virtual_bytes = self.virtual_bytes.saturating_add(m.virtual_bytes);
        self.swap_bytes = self.swap_bytes.saturating_add(m.swap_bytes);
        self.proportional_bytes = self.proportional_bytes.saturating_add(m.proportional_bytes);
        self.proportional_swap_bytes = self
            .proportional_swap_bytes
            .saturating_add(m.proportional_swap_bytes);
    }
}

/// File descriptor usage of a process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filedesc {
    /// Open descriptors; `None` when `fd/` could not be read (it then counts
    /// neither in sums nor in ratios, instead of pretending to be 0).
    pub open: Option<u64>,
    /// Soft "Max open files" limit; `u64::MAX` for unlimited, `None` when
    /// `limits` could not be read.
    pub limit: Option<u64>,
}

impl Filedesc {
    /// open / soft limit, when both are known and the limit is a real number
    /// (not 0, not unlimited).
    pub fn ratio(&self) -> Option<f64> {
        match (self.open, self.limit) {
            (Some(open), Some(limit)) if limit > 0 && limit != u64::MAX => {
                Some(open as f64 / limit as f64)
            }
            (Some(_), Some(u64::MAX)) => Some(0.0),
            _ => None,
        }
    }
}

/// Scheduler states, by count of threads (or processes without thread detail).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct States {
    /// R.
    pub running: u64,
    /// S.
    pub sleeping: u64,
    /// D (uninterruptible wait).
    pub waiting: u64,
    /// Z.
    pub zombie: u64,
    /// Every other letter (T, t, X, I, P, W, K…).
    pub other: u64,
}

impl States {
    /// One task in the state given by its `stat` letter.
    pub fn from_letter(c: char) -> States {
        let mut s = States::default();
        match c {
            'R' => s.running = 1,
            'S' => s.sleeping = 1,
            'D' => s.waiting = 1,
            'Z' => s.zombie = 1,
            _ => s.other = 1,
        }
        s
    }

    /// The `stat` letter of a single task's state, as far as these counts
    /// tell: the inverse of [`States::from_letter`] up to `other` (`?`).
    pub fn letter(&self) -> u8 {
        match () {
            _ if self.running > 0 => b'R',
            _ if self.sleeping > 0 => b'S',
            _ if self.waiting > 0 => b'D',
            _ if self.zombie > 0 => b'Z',
            _ => b'?',
        }
    }

    /// Total number of tasks counted.
    pub fn total(&self) -> u64 {
        self.running + self.sleeping + self.waiting + self.zombie + self.other
    }
}

impl AddAssign for States {
    fn add_assign(&mut self, s: States) {
        self.running += s.running;
        self.sleeping += s.sleeping;
        self.waiting += s.waiting;
        self.zombie += s.zombie;
        self.other += s.other;
    }
}

/// Everything read from a process each cycle.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    /// Cumulative counters. With thread detail, the context switches are
    /// replaced by the tracker with per-thread deltas.
    pub counts: Counts,
    /// False when `io` could not be read: `read_bytes`/`write_bytes` are then
    /// meaningless and must not feed a delta (the tracker keeps the last good
    /// value instead).
    pub io_known: bool,
    /// Current memory.
    pub memory: Memory,
    /// Current fd usage.
    pub filedesc: Filedesc,
    /// Field 20 of `stat`.
    pub num_threads: u64,
    /// The process's own state (one task).
    pub states: States,
    /// Content of `wchan`; empty when not waiting or unknown.
    pub wchan: String,
    /// How many optional files (io, fd, limits, wchan, smaps) failed to read.
    pub soft_errors: u32,
    /// What the kernel added to this process for its children that it
    /// reaped (`cutime`, `cstime`, `cminflt`, `cmajflt` of `stat`): CPU
    /// and faults only; the other fields are zero. Totals since it started.
    pub children: Counts,
    /// Field 4 of `stat`: its parent now, which changes when the parent
    /// exits first (the process is re-parented to init or the nearest
    /// subreaper, who will reap it). A reading that skipped `stat` (a
    /// quiet process, see [`FsSource`](super::FsSource)) repeats the value
    /// of the last one that read it.
    pub parent_pid: i32,
}

/// A process whose exit the kernel reported (taskstats): who it was and
/// its lifetime totals, for the tracker to close its account. Built by the
/// exit listener's side from the raw records; the tracker only matches and
/// attributes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcExit {
    /// Its pid (the thread group id).
    pub pid: i32,
    /// Its parent's pid at exit.
    pub parent_pid: i32,
    /// comm at exit.
    pub name: String,
    /// Effective uid.
    pub uid: u32,
    /// The range of `stat` start times (clock ticks after boot, inclusive)
    /// that a process seen under `pid` must have to be this one: the start
    /// estimated from the record is known only to a few ticks.
    pub start_ticks: (u64, u64),
    /// Estimated wall-clock start, for rules that look at it.
    pub start_time: SystemTime,
    /// Everything the process did over its life, its exited threads
    /// included; `read_bytes`/`write_bytes` as `io` reports them.
    pub totals: Counts,
}

/// One thread (task) of a process.
#[derive(Debug, Clone, PartialEq)]
pub struct Thread {
    /// Identity of the task.
    pub id: ThreadID,
    /// comm of the task.
    pub name: String,
    /// Counters of the task alone.
    pub counts: Counts,
    /// See [`Metrics::io_known`].
    pub io_known: bool,
    /// `wchan` of the task; empty when none.
    pub wchan: String,
    /// The task's single state.
    pub states: States,
}

impl Thread {
    /// A task with these counters, readable io, no wchan and no state counted
    /// (set the fields to add them).
    pub fn new(id: ThreadID, name: impl Into<String>, counts: Counts) -> Self {
        Thread {
            id,
            name: name.into(),
            counts,
            io_known: true,
            wchan: String::new(),
            states: States::default(),
        }
    }
}

/// One task as [`Proc::tasks`] gives it.
///
/// [`Proc::tasks`]: super::Proc::tasks
#[derive(Debug, Clone, PartialEq)]
pub enum TaskRead {
    /// Read this cycle.
    Read(Thread),
    /// Known not to have run since the caller was last given this task:
    /// every value of it is as then, so it was not read again.
    Unchanged(ThreadID),
}

/// What changed for a thread since the last cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadUpdate {
    /// comm of the thread.
    pub thread_name: String,
    /// Increase since the last cycle.
    pub latest: Delta,
}

/// The tracker's report on one tracked process for one cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    /// Group the process belongs to.
    pub group_name: String,
    /// Increase of the counters since the last cycle (the whole total on the
    /// first sighting of a process born after the tracker started).
    pub latest: Delta,
    /// Current memory.
    pub memory: Memory,
    /// Current fd usage.
    pub filedesc: Filedesc,
    /// When the process started.
    pub start: SystemTime,
    /// Number of threads.
    pub num_threads: u64,
    /// States of its threads, each thread counted once.
    pub states: States,
    /// Threads per non-empty wchan, each thread counted once.
    pub wchans: BTreeMap<String, u64>,
    /// Per-thread increases, when thread detail is on.
    pub threads: Vec<ThreadUpdate>,
    /// Whether the process's io has ever been readable (it needs
    /// `CAP_SYS_PTRACE`-level access to another user's process): until then
    /// its io increases are zero because nothing is known, not because it
    /// did no io.
    pub io_known: bool,
}

/// Aggregate of the threads of one name inside a group.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Threads {
    /// Thread name (comm of the task).
    pub name: String,
    /// Live threads with this name.
    pub num_threads: u64,
    /// Totals since the agent started, never decreasing.
    pub counts: Counts,
}

/// The metrics of one group.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Group {
    /// Totals since the agent started; never decrease while the group exists.
    pub counts: Counts,
    /// Thread states.
    pub states: States,
    /// Threads per wchan.
    pub wchans: BTreeMap<String, u64>,
    /// Number of processes.
    pub procs: u64,
    /// Sum of memory.
    pub memory: Memory,
    /// Start of the oldest member; `None` for an empty group.
    pub oldest_start_time: Option<SystemTime>,
    /// Sum of known open fds.
    pub open_fds: u64,
    /// Highest open/limit ratio over the members (0 when none is known).
    pub worst_fd_ratio: f64,
    /// Sum of `num_threads`.
    pub num_threads: u64,
    /// Per thread name, sorted by name; empty without thread detail.
    pub threads: Vec<Threads>,
    /// Whether the io counters are measurements: some member's io has been
    /// readable, now or while it was in the group. When false the group's
    /// `read_bytes` and `write_bytes` are zero for want of access and are
    /// shown as unknown, never as "no io".
    pub io_known: bool,
}

/// Groups by name, sorted.
pub type GroupByName = BTreeMap<String, Group>;

/// Non-fatal errors found during one cycle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CollectErrors {
    /// Processes whose basic data (stat, status) could not be read, for a
    /// reason other than the process having exited.
    pub read: u64,
    /// Tracked processes for which some optional data (io, fd, limits,
    /// wchan, smaps, task/) could not be read; at most one per process.
    pub partial: u64,
}

impl AddAssign for CollectErrors {
    fn add_assign(&mut self, e: CollectErrors) {
        self.read += e.read;
        self.partial += e.partial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_never_goes_negative() {
        let a = Counts {
            ctx_switch_voluntary: 10,
            cpu_user_time: 2.0,
            ..Counts::default()
        };
        let b = Counts {
            ctx_switch_voluntary: 4,
            cpu_user_time: 1.0,
            ..Counts::default()
        };
        let d = b.since(&a);
        assert_eq!(d.ctx_switch_voluntary, 0);
        assert_eq!(d.cpu_user_time, 0.0);
        assert_eq!(a.since(&b).ctx_switch_voluntary, 6);
    }

    #[test]
    fn ratio_skips_unknown_and_degenerate_limits() {
        assert_eq!(
            Filedesc {
                open: None,
                limit: Some(10)
            }
            .ratio(),
            None
        );
        assert_eq!(
            Filedesc {
                open: Some(1),
                limit: Some(0)
            }
            .ratio(),
            None
        );
        assert_eq!(
            Filedesc {
                open: Some(1),
                limit: Some(u64::MAX)
            }
            .ratio(),
            Some(0.0)
        );
        assert_eq!(
            Filedesc {
                open: Some(5),
                limit: Some(10)
            }
            .ratio(),
            Some(0.5)
        );
    }
}
