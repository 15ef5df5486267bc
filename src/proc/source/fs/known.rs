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
//! shown sleeping). Every process is therefore read again once every
//! [`REFRESH_CYCLES`] cycles regardless, at a phase set by its PID so the
//! cost is spread evenly: its `stat` and its tasks' (state, names) and its
//! `limits`; only what a run alone moves is then taken from memory, for a
//! task known not to have run (its `io`; the main thread's context
//! switches and wait channel). A task last seen running, or whose
//! statistics are not kept (zero slices), is never taken as quiet.
//!
//! Each remembered process holds a path-only descriptor of its directory
//! (no buffer, a few hundred bytes of kernel memory): reads go through it,
//! and it makes identity cheap, since lookups under it fail once that
//! process is gone, even when a new process has taken its PID.
//!
//! Within a budget of files ([`KeptFiles`]), a remembered process also keeps
//! open the files read from it every cycle (`schedstat`, or `statm` where a
//! probe answers for `schedstat`; `stat` when the budget covers two per
//! process, and `io` when it covers three), re-read
//! with `pread` at offset 0: an
//! open and a close saved per file and cycle. Each such file holds a
//! one-page kernel buffer (about 4.3 KiB with its `struct file`) while it
//! is open, which is what the budget bounds. A kept file is bound to the
//! process it was opened on: once that process is gone it reads ESRCH,
//! even when its PID has been reused, and it is closed with the rest of
//! [`Known`]. With threads, a task that runs again after its first
//! reading keeps a path-only descriptor of its directory too (about 0.2
//! KiB each, taken from the bound before the files: see `Tiers::plan`):
//! its files are opened through it, without the lookup of `task/<tid>`,
//! and it is closed when the task is no longer listed or fails to read.

use std::sync::Arc;

use rustix::fd::OwnedFd;

use super::TaskActivity;
use crate::proc::source::parse::{Schedstat, StatFields};

/// Every process is read again at least once in this many cycles.
pub(super) const REFRESH_CYCLES: u64 = 16;

/// After how many quiet cycles in a row a process of several threads is
/// asked about as a group first ([`Known::still_group`]). Asked so, a
/// process that is still quiet costs one answer instead of two, and one
/// that ran costs two instead of one or two. One quiet cycle is not
/// enough: a process that wakes every other cycle (a one-second timer
/// under a 500 ms interval) would cost two answers every cycle, against
/// one and a half asked main thread first. With two, a process that runs
/// once in every four cycles costs the same either way, less beyond, and
/// an idle one one answer a cycle (but in the two cycles after its
/// refresh cycle, which reads it and starts the count again).
pub(super) const GROUP_FIRST_AFTER: u8 = 2;

/// Descriptors left for everything else the agent opens (sockets, logs,
/// the files of one cycle) when sizing how many process directories stay
/// open.
pub(super) const RESERVED_FDS: u64 = 256;

/// Whether cycle `cycle` is the one in [`REFRESH_CYCLES`] where the process
/// `pid` is read again whatever its `schedstat` says.
pub(super) fn refresh_due(cycle: u64, pid: i32) -> bool {
    cycle.wrapping_add(u64::from(pid.unsigned_abs())) % REFRESH_CYCLES == 0
}

/// A file of a process that may be kept open between cycles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeptFile {
    /// Read for every process every cycle: first in the budget.
    Schedstat = 0,
    /// Read for every process that ran: kept when the budget covers two
    /// files for every process.
    Stat = 1,
    /// Read for every process that ran, and for every process with other
    /// threads (any of them may have done I/O): kept when the budget covers
    /// three files for every process.
    Io = 2,
    /// Read for every process every cycle (its sizes change without it
    /// running). Kept first in place of `schedstat` where a probe answers
    /// for that (see [`super::FsSource::set_group_probe`]).
    Statm = 3,
}

impl KeptFile {
    /// The file's name in the process directory.
    pub(super) fn name(self) -> &'static str {
        match self {
            KeptFile::Schedstat => "schedstat",
            KeptFile::Stat => "stat",
            KeptFile::Io => "io",
            KeptFile::Statm => "statm",
        }
    }
}

/// The files a remembered process keeps open, by [`KeptFile`].
#[derive(Debug, Default)]
pub(super) struct KeptFiles([Option<OwnedFd>; 4]);

impl KeptFiles {
    pub(super) fn get(&self, f: KeptFile) -> Option<&OwnedFd> {
        self.0[f as usize].as_ref()
    }

    pub(super) fn set(&mut self, f: KeptFile, fd: OwnedFd) {
        self.0[f as usize] = Some(fd);
    }

    /// Closes `f`; whether it was open.
    pub(super) fn close(&mut self, f: KeptFile) -> bool {
        self.0[f as usize].take().is_some()
    }

    /// How many are open.
    pub(super) fn count(&self) -> u64 {
        self.0.iter().filter(|f| f.is_some()).count() as u64
    }
}

/// One remembered process.
#[derive(Debug)]
pub(super) struct Known {
    /// The process's directory, opened path-only.
    pub dir: OwnedFd,
    /// Its files kept open, within the source's budget.
    pub files: KeptFiles,
    /// Its `fd/` directory, opened path-only (no buffer, like `dir`): its
    /// size, the count of open descriptors, is taken by `fstat` without a
    /// lookup.
    pub fd_dir: Option<OwnedFd>,
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
    /// What is kept of the tasks beyond `tasks`; boxed, and only while
    /// not empty, since most processes on a large host need none of it.
    pub extras: Option<Box<TaskExtras>>,
    /// The cycle in which [`KnownTask::still`] was last set.
    pub checked_at: u32,
    /// What the threads other than the main one had run at some moment
    /// no later than the last full reading, by the probe (see
    /// [`super::GroupProbe`]): while it holds, none of them has run since.
    pub activity: Option<super::GroupActivity>,
    /// Whether a task other than the main thread had run when the probe
    /// was last asked about each (see [`super::FsSource::ask_probe`]).
    pub others_ran: bool,
    /// In how many cycles in a row, up to the last that asked for its
    /// metrics, the process was answered from its last full reading
    /// (saturating): from [`GROUP_FIRST_AFTER`] on, the probe is asked
    /// about its whole group first (see [`Known::still_group`]).
    pub quiet_cycles: u8,
}

impl Known {
    pub(super) fn new(dir: OwnedFd) -> Self {
        Known {
            dir,
            files: KeptFiles::default(),
            fd_dir: None,
            start_ticks: None,
            full: None,
            limit: None,
            tasks: Vec::new(),
            extras: None,
            checked_at: 0,
            activity: None,
            others_ran: false,
            quiet_cycles: 0,
        }
    }

    /// Says that none of the tasks has run since its last reading, as
    /// found in the cycle of `stamp` (see [`KnownTask::still`]).
    pub(super) fn all_tasks_still(&mut self, stamp: u32) {
        self.checked_at = stamp;
        for t in &mut self.tasks {
            t.still = true;
        }
    }

    /// What the probe says of the whole thread group when none of its
    /// threads has run since the last full reading, for a process of
    /// several threads that has been quiet for a while: the other
    /// threads' record ([`Known::activity`]) plus what the main thread had
    /// run at that reading. An answer equal to it tells that the process
    /// is still quiet, main thread included, in one answer where asking
    /// about the main thread first and then the group takes two. The sums
    /// only grow while the threads live, so an equal answer cannot hide a
    /// run (a thread that exits takes its share with it only where the
    /// kernel keeps no group record, and then the sum falls: no match).
    /// `None` where there is no record, or the process has been quiet
    /// for fewer than [`GROUP_FIRST_AFTER`] cycles.
    pub(super) fn still_group(&self) -> Option<super::GroupActivity> {
        if self.quiet_cycles < GROUP_FIRST_AFTER || self.single_task() {
            return None;
        }
        let full = self.full.as_ref()?;
        let others = self.activity?;
        Some(super::GroupActivity {
            run_ns: others.run_ns.wrapping_add(full.leader.run_ns),
            switches: others
                .switches
                .wrapping_add(full.ctx.0)
                .wrapping_add(full.ctx.1),
        })
    }

    /// Descriptors held: the directories (the process's, `fd/`, its
    /// tasks') and the kept files.
    pub(super) fn fds(&self) -> u64 {
        1 + u64::from(self.fd_dir.is_some()) + self.file_count() + self.task_dir_count()
    }

    /// Task directories kept.
    pub(super) fn task_dir_count(&self) -> u64 {
        self.extras.as_ref().map_or(0, |e| e.dirs.len() as u64)
    }

    /// Closes every kept task directory; how many there were.
    pub(super) fn close_task_dirs(&mut self) -> u64 {
        let Some(e) = &mut self.extras else {
            return 0;
        };
        let n = e.dirs.len() as u64;
        e.dirs = Vec::new();
        self.drop_empty_extras();
        n
    }

    /// Files kept, the process's own and its tasks'.
    pub(super) fn file_count(&self) -> u64 {
        self.files.count() + self.extras.as_ref().map_or(0, |e| e.files.len() as u64)
    }

    /// The kept descriptor `kind` of task `tid`.
    pub(super) fn task_fd(&self, kind: TaskFd, tid: i32) -> Option<&OwnedFd> {
        let fds = kind.of(self.extras.as_ref()?);
        let i = fds.binary_search_by_key(&tid, |(t, _)| *t).ok()?;
        fds.get(i).map(|(_, fd)| fd)
    }

    /// Keeps `fd` as task `tid`'s descriptor `kind`.
    pub(super) fn keep_task_fd(&mut self, kind: TaskFd, tid: i32, fd: OwnedFd) {
        let fds = kind.of_mut(self.extras.get_or_insert_with(Box::default));
        let at = fds.partition_point(|(t, _)| *t < tid);
        fds.insert(at, (tid, fd));
    }

    /// Closes the kept descriptor `kind` of task `tid`; whether there was
    /// one.
    pub(super) fn close_task_fd(&mut self, kind: TaskFd, tid: i32) -> bool {
        let Some(e) = &mut self.extras else {
            return false;
        };
        let fds = kind.of_mut(e);
        let Ok(i) = fds.binary_search_by_key(&tid, |(t, _)| *t) else {
            return false;
        };
        fds.remove(i);
        self.drop_empty_extras();
        true
    }

    /// The remembered `read_bytes` and `write_bytes` of task `tid`, when
    /// known.
    pub(super) fn task_io(&self, tid: i32) -> Option<(u64, u64)> {
        match self.task(tid)?.io {
            TaskIo::Unknown => None,
            TaskIo::Zero => Some((0, 0)),
            TaskIo::Other => {
                let io = &self.extras.as_ref()?.io;
                let i = io.binary_search_by_key(&tid, |(t, _)| *t).ok()?;
                io.get(i).map(|&(_, [r, w])| (r, w))
            }
        }
    }

    /// Replaces the tasks with `tasks` and the io that is neither unknown
    /// nor zero with `io` (both sorted by TID), closes the kept files and
    /// directories of tasks no longer there (how many of each were
    /// closed).
    pub(super) fn set_tasks(
        &mut self,
        tasks: Vec<KnownTask>,
        io: Vec<(i32, [u64; 2])>,
    ) -> (u64, u64) {
        self.tasks = tasks;
        let mut closed = (0, 0);
        if !io.is_empty() || self.extras.is_some() {
            let e = self.extras.get_or_insert_with(Box::default);
            e.io = io;
            let tasks = &self.tasks;
            let listed = |tid: &i32| tasks.binary_search_by_key(tid, |t| t.tid).is_ok();
            let (files, dirs) = (e.files.len(), e.dirs.len());
            e.files.retain(|(tid, _)| listed(tid));
            e.dirs.retain(|(tid, _)| listed(tid));
            closed = ((files - e.files.len()) as u64, (dirs - e.dirs.len()) as u64);
        }
        self.drop_empty_extras();
        closed
    }

    fn drop_empty_extras(&mut self) {
        if self
            .extras
            .as_ref()
            .is_some_and(|e| e.files.is_empty() && e.dirs.is_empty() && e.io.is_empty())
        {
            self.extras = None;
        }
    }

    /// Whether the process was last read with its main thread as its only
    /// task.
    pub(super) fn single_task(&self) -> bool {
        self.full.as_ref().is_some_and(Full::single_task) && self.tasks.len() <= 1
    }

    /// The remembered task `tid`.
    pub(super) fn task(&self, tid: i32) -> Option<&KnownTask> {
        self.tasks
            .binary_search_by_key(&tid, |t| t.tid)
            .ok()
            .and_then(|i| self.tasks.get(i))
    }

    /// Takes the probe's answer about the remembered task `tid` (`None`:
    /// no answer, it may have exited): whether it ran since its last
    /// reading, in [`KnownTask::still`]. The answer, when it ran, for the
    /// cycle to keep (see [`super::Cycle::ran_answer`]).
    pub(super) fn take_answer(
        &mut self,
        tid: i32,
        answer: Option<TaskActivity>,
    ) -> Option<TaskActivity> {
        let i = self.tasks.binary_search_by_key(&tid, |t| t.tid).ok()?;
        let t = self.tasks.get_mut(i)?;
        t.still = answer.is_some_and(|a| t.unchanged(&a.schedstat()));
        self.others_ran |= !t.still;
        answer.filter(|_| !t.still)
    }
}

/// What a remembered process keeps of its tasks beyond [`KnownTask`].
#[derive(Debug, Default)]
pub(super) struct TaskExtras {
    /// The `schedstat` of tasks other than the main thread, kept open
    /// within the budget when threads are read without a probe, sorted by
    /// TID (only tasks in [`Known::tasks`]).
    pub files: Vec<(i32, OwnedFd)>,
    /// The task directories, opened path-only, kept for the tasks that run
    /// within the cycle's allowance (see `Tiers::plan`), sorted by TID: a
    /// task's files opened through it skip the lookup of `task/<tid>` (a
    /// few microseconds each). Bound to the task like the process's own
    /// directory.
    pub dirs: Vec<(i32, OwnedFd)>,
    /// `read_bytes` and `write_bytes` of the tasks whose [`KnownTask::io`]
    /// is [`TaskIo::Other`], sorted by TID.
    pub io: Vec<(i32, [u64; 2])>,
}

/// A descriptor a task may keep ([`TaskExtras`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TaskFd {
    /// Its `schedstat`.
    Sched,
    /// Its directory, path-only.
    Dir,
}

impl TaskFd {
    fn of(self, e: &TaskExtras) -> &Vec<(i32, OwnedFd)> {
        match self {
            TaskFd::Sched => &e.files,
            TaskFd::Dir => &e.dirs,
        }
    }

    fn of_mut(self, e: &mut TaskExtras) -> &mut Vec<(i32, OwnedFd)> {
        match self {
            TaskFd::Sched => &mut e.files,
            TaskFd::Dir => &mut e.dirs,
        }
    }
}

/// What is remembered of a task's `io`: most tasks never do block I/O,
/// so its two counters are kept aside only when they are not zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TaskIo {
    /// Unreadable, or not read.
    Unknown,
    /// Both zero.
    Zero,
    /// In [`TaskExtras::io`].
    Other,
}

impl TaskIo {
    /// How `io` (`None`: unreadable) is remembered.
    pub(super) fn of(io: Option<(u64, u64)>) -> TaskIo {
        match io {
            None => TaskIo::Unknown,
            Some((0, 0)) => TaskIo::Zero,
            Some(_) => TaskIo::Other,
        }
    }
}

/// The process-level values of a full reading.
#[derive(Debug, Clone)]
pub(super) struct Full {
    /// What is used of `stat`.
    pub stat: KeptStat,
    /// `voluntary_ctxt_switches` and `nonvoluntary_ctxt_switches` of
    /// `status` (or the probe's same counters).
    pub ctx: (u64, u64),
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

/// The fields of `stat` a quiet process is answered with (the sizes come
/// from `statm` and the identity from [`Known`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct KeptStat {
    pub state: u8,
    pub has_memory_map: bool,
    pub num_threads: u32,
    pub minflt: u64,
    pub majflt: u64,
    pub utime: u64,
    pub stime: u64,
    /// The children totals: a quiet process has reaped no child since (a
    /// reap runs in the reaper), so they still hold.
    pub cminflt: u64,
    pub cmajflt: u64,
    pub cutime: u64,
    pub cstime: u64,
    /// The parent at that reading. It can change while the process is
    /// quiet (its parent exits), so a quiet reading may repeat a parent
    /// that is gone; the next full reading corrects it.
    pub ppid: i32,
}

impl KeptStat {
    pub(super) fn of(s: &StatFields) -> Self {
        KeptStat {
            state: s.state,
            has_memory_map: s.has_memory_map(),
            num_threads: u32::try_from(s.num_threads).unwrap_or(u32::MAX),
            minflt: s.minflt,
            majflt: s.majflt,
            utime: s.utime,
            stime: s.stime,
            cminflt: s.cminflt,
            cmajflt: s.cmajflt,
            cutime: s.cutime,
            cstime: s.cstime,
            ppid: s.ppid,
        }
    }

    /// Back as `stat` fields (the ones not kept are zero, the memory map
    /// shown through the state and flags).
    pub(super) fn fields(&self) -> StatFields {
        StatFields {
            state: self.state,
            flags: if self.has_memory_map {
                0
            } else {
                super::parse::PF_KTHREAD
            },
            minflt: self.minflt,
            majflt: self.majflt,
            utime: self.utime,
            stime: self.stime,
            cminflt: self.cminflt,
            cmajflt: self.cmajflt,
            cutime: self.cutime,
            cstime: self.cstime,
            num_threads: u64::from(self.num_threads),
            ppid: self.ppid,
            ..StatFields::default()
        }
    }
}

/// One remembered task: what tells whether it has run since it was last
/// read (a host can have tens of thousands, so nothing else is kept: the
/// caller of [`Proc::tasks`](crate::proc::Proc::tasks) keeps the values).
#[derive(Debug, Clone, Copy)]
pub(super) struct KnownTask {
    pub tid: i32,
    /// The `stat` state letter at that reading.
    pub state: u8,
    /// Set when checked this cycle (see [`Known::checked_at`]) and found
    /// not to have run.
    pub still: bool,
    pub start_ticks: u64,
    /// Its `schedstat` when it was read (or last confirmed).
    pub sched: Schedstat,
    /// Its `read_bytes` and `write_bytes` when it was read (see
    /// [`Known::task_io`]). They still hold while the process's own (the
    /// sum over its tasks) has not moved: see [`FsProc::read_task`].
    pub io: TaskIo,
}

impl KnownTask {
    /// Whether `now` shows that the task has not run since its reading.
    pub(super) fn unchanged(&self, now: &Schedstat) -> bool {
        now.is_counting() && *now == self.sched && self.state != b'R'
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_that_ran_or_runs_is_not_unchanged() {
        let sched = Schedstat {
            run_ns: 5,
            slices: 2,
        };
        let t = KnownTask {
            tid: 1,
            state: b'S',
            still: false,
            start_ticks: 1,
            sched,
            io: TaskIo::Unknown,
        };
        assert!(t.unchanged(&sched));
        assert!(!t.unchanged(&Schedstat { slices: 3, ..sched }));
        assert!(!KnownTask { state: b'R', ..t }.unchanged(&sched));
        // Without scheduler statistics nothing can be told.
        let zero = Schedstat::default();
        assert!(!KnownTask { sched: zero, ..t }.unchanged(&zero));
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
