//! The process model: read processes from a procfs mount ([`FsSource`]),
//! follow each one across cycles ([`Tracker`]) and add them up per named group
//! ([`Grouper`]). This mirrors the `proc` package of process-exporter in Rust
//! idiom, with that package's known bugs fixed (see the tests named after them).
//!
//! The module is pure apart from [`FsSource`]: the tracker and grouper take the
//! current time as an argument and read processes through the [`Source`] and
//! [`Proc`] traits, so tests drive them with scripted in-memory processes
//! ([`IDInfo`], [`ScriptedSource`]).

mod error;
mod fs;
mod grouper;
mod names;
mod scripted;
mod tracker;
mod types;

pub use error::{ProcError, SourceError};
pub use fs::{FsProc, FsSource, FsSourceOptions, ReadStats, SystemFacts, raise_open_files_limit};
pub use grouper::{
    DEFAULT_MAX_GROUPS, DEFAULT_MAX_THREAD_NAMES, Grouper, GrouperOptions, OVERFLOW_NAME, Overflow,
};
pub use scripted::{IDInfo, ScriptedFailure, ScriptedSource};
pub use tracker::{MatchReason, Membership, Tracker, TrackerOptions, TrackerStats};
pub use types::*;

use std::time::SystemTime;

/// One process as seen by a [`Source`] during one cycle.
///
/// The methods are ordered by cost: [`Proc::id`] reads `stat` only,
/// [`Proc::static_info`] adds the cheap files that decide a group (cmdline,
/// status, cgroup), [`Proc::metrics`] and [`Proc::threads`] read the rest.
/// The tracker calls the expensive ones only for processes it tracks.
/// Any method may fail with [`ProcError::Gone`] when the process has exited.
pub trait Proc {
    /// The PID (from the directory name), without reading anything.
    fn pid(&self) -> i32;
    /// (pid, start time): the unique identity of the process.
    fn id(&mut self) -> Result<ID, ProcError>;
    /// The attributes that decide the process's group.
    fn static_info(&mut self) -> Result<Static, ProcError>;
    /// Counters and gauges. Optional files that fail are counted in
    /// [`Metrics::soft_errors`]; an error means the basics could not be read.
    fn metrics(&mut self) -> Result<Metrics, ProcError>;
    /// The tasks of the process (`task/`); only called when thread detail is
    /// wanted.
    fn threads(&mut self) -> Result<Vec<Thread>, ProcError>;

    /// The tasks, like [`Proc::threads`], for a caller that keeps what it
    /// was given for each task in the last cycle: a task the source knows
    /// has not run since may come back as [`TaskRead::Unchanged`] instead of
    /// being read again. The default reads every task.
    fn tasks(&mut self) -> Result<Vec<TaskRead>, ProcError> {
        Ok(self.threads()?.into_iter().map(TaskRead::Read).collect())
    }
}

/// A source of processes: all processes present at this moment.
pub trait Source {
    /// The per-process handle.
    type Proc: Proc;
    /// Lists the processes present now. An error means the listing itself
    /// failed (the cycle produces nothing), not that one process did.
    fn all_procs(&mut self) -> Result<Vec<Self::Proc>, SourceError>;
    /// Gives the handles of this cycle back, so that a source can keep
    /// per-process resources (open files, buffers) until the next cycle.
    fn recycle(&mut self, procs: Vec<Self::Proc>) {
        drop(procs);
    }
    /// Says, before a cycle, whether [`Proc::threads`] will be called on
    /// the processes whose [`Proc::metrics`] are read, so that a source can
    /// share work between the two. A source must answer every call
    /// correctly whatever it was told; without thread detail it must not
    /// read per-thread data in [`Proc::metrics`].
    fn expect_threads(&mut self, wanted: bool) {
        let _ = wanted;
    }
}

/// The attributes a [`MatchNamer`] decides a new process's group from.
#[derive(Debug, Clone, Copy)]
pub struct ProcAttributes<'a> {
    /// comm.
    pub name: &'a str,
    /// argv.
    pub cmdline: &'a [String],
    /// cgroup paths.
    pub cgroups: &'a [String],
    /// Effective uid (the namer resolves user names itself, when it needs them).
    pub uid: u32,
    /// PID.
    pub pid: i32,
    /// Wall-clock start time.
    pub start_time: SystemTime,
}

/// Why a [`MatchNamer`] tracks or ignores a process, for diagnostics (the
/// status API, debug logs). Deciding is [`MatchNamer::match_and_name`]'s job;
/// this only says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The group, when the process is tracked.
    pub group: Option<String>,
    /// Index of the rule that matched, for namers with numbered rules.
    pub rule: Option<usize>,
    /// The matched rule's name template, as written.
    pub template: Option<String>,
    /// Human-readable reasoning: the rule that matched, or why none did.
    pub detail: String,
}

/// Decides whether a new process is tracked, and under which group name.
pub trait MatchNamer: Send + Sync {
    /// `Some(group name)` to track the process, `None` to ignore it.
    fn match_and_name(&self, attrs: &ProcAttributes<'_>) -> Option<String>;

    /// The same decision with its reasons. Slower than
    /// [`MatchNamer::match_and_name`]; meant for diagnostics only.
    fn explain(&self, attrs: &ProcAttributes<'_>) -> Explanation {
        let group = self.match_and_name(attrs);
        Explanation {
            detail: if group.is_some() {
                "tracked"
            } else {
                "not tracked"
            }
            .to_string(),
            group,
            rule: None,
            template: None,
        }
    }

    /// One line per rule, in evaluation order, for `--check-config` and the
    /// status API. Empty when the namer has no describable rules.
    fn describe(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A namer for tests: tracks a process when its comm is in the set, under
/// its comm (the process-exporter test namer).
#[derive(Debug, Clone, Default)]
pub struct CommSetNamer {
    names: std::collections::HashSet<String>,
}

impl CommSetNamer {
    /// Tracks exactly these comms.
    pub fn new<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        CommSetNamer {
            names: names.into_iter().map(Into::into).collect(),
        }
    }
}

impl MatchNamer for CommSetNamer {
    fn match_and_name(&self, attrs: &ProcAttributes<'_>) -> Option<String> {
        self.names
            .contains(attrs.name)
            .then(|| attrs.name.to_string())
    }
}
