//! Reading processes: the [`Source`] and [`Proc`] traits the tracker reads
//! through, the real procfs reader ([`FsSource`], in `fs/`), the parsers of
//! the per-process files ([`parse`]), the system facts read rarely
//! ([`system`]), and the scripted in-memory source for tests and benchmarks
//! ([`ScriptedSource`]). Nothing above this module reads `/proc`.

mod fs;
mod parse;
mod scripted;
mod system;

pub use fs::{
    FsProc, FsSource, FsSourceOptions, GroupActivity, GroupProbe, ReadStats, TaskActivity,
};
pub use scripted::{IDInfo, ScriptedFailure, ScriptedSource};
pub use system::{SystemFacts, parse_cpu_totals, raise_open_files_limit, read_cpu_totals};

use crate::proc::{ID, Metrics, ProcError, SourceError, Static, TaskRead, Thread};

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
    /// The comm as of this cycle, when the source has read it anyway (after
    /// [`Proc::metrics`]); `None` when it was not read this cycle, because
    /// the process has not run since its last reading and so cannot have
    /// `exec`ed. Lets the tracker notice a program change at no extra cost.
    fn comm(&self) -> Option<&str> {
        None
    }
    /// The parent now (field 4 of `stat`), read afresh when this cycle
    /// has not read `stat` yet. The tracker asks only for a tracked
    /// process whose parent left `/proc` in this cycle: it was re-parented,
    /// and a [`Proc::metrics`] that skipped `stat` (a quiet process)
    /// repeated the parent it had before. The default names it again.
    fn parent_pid(&mut self) -> Result<i32, ProcError> {
        self.static_info().map(|s| s.parent_pid)
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
}
