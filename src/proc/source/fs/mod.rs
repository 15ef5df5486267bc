//! [`FsSource`]: the only part of the process layer that touches a real
//! procfs. It reads a mount point given at construction (`/proc`, or
//! `/host/proc` in a container), with boot time from `<mount>/stat` and the
//! clock tick rate and page size from the system.
//!
//! Each cycle opens the mount point once; every process file is then opened
//! relative to a directory descriptor ([`read`]) and parsed by small byte
//! parsers ([`parse`](super::parse)) out of one reused buffer. A [`FsProc`] keeps what it
//! has read (`stat`, `status`, `wchan`) until the tracker's last call on it
//! in the cycle, so that [`Proc::id`], [`Proc::static_info`],
//! [`Proc::metrics`] and [`Proc::tasks`] read each file at most once.
//!
//! On a real procfs the source also remembers processes between cycles
//! ([`known`]): each keeps a path-only descriptor of its directory (identity
//! without reading `stat`, shorter lookups), and a process whose tasks have
//! not run since its last full reading is answered from that reading plus
//! the few values that change without it running. Whether a process of
//! several threads has run is told by its threads' `schedstat` when threads
//! are read, or, with a [`GroupProbe`], by one question to the kernel
//! about the whole group; the probe, asked about every remembered process
//! at once before the cycle reads anything, also answers for the main
//! thread's `schedstat` and context switches, and, with threads, for
//! every other task of a process whose group has run. Within a budget of
//! kernel memory ([`FsSourceOptions::kept_files`]) it also keeps the files
//! read every cycle (`schedstat`, or `statm` with a probe; then `stat`
//! and `io`) open and re-reads them with `pread`, and, with threads, the
//! directories of the tasks that run, first. The handles given back
//! by [`Source::recycle`] carry that state to the next cycle. Only file
//! contents the kernel defines are relied on this way; any other tree (a
//! fixture, a copy) is read in full every cycle.
//!
//! Error policy, which fixes process-exporter's (reference §1.10, §9):
//! - a file that vanishes (ENOENT/ESRCH) while the process's `stat` is gone
//!   too means the process exited: [`ProcError::Gone`], not an error;
//! - the files that decide identity and group (`stat`, `status`, `cmdline`)
//!   are required; the others (`io`, `fd/`, `limits`, `wchan`, smaps) are
//!   optional: when one fails the value is unknown (`io_known = false`,
//!   `open = None`, `limit = None`, empty wchan) and [`Metrics::soft_errors`]
//!   counts it; `cgroup` that fails is an empty list;
//! - `task/` is opened by [`Proc::threads`], and by [`Proc::metrics`] only
//!   when the source was built with thread detail
//!   ([`FsSourceOptions::threads`]).

mod files;
mod known;
mod metrics;
mod process;
use self::process::counts;
mod read;
mod tasks;

use std::cell::RefCell;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{Dir, Mode, OFlags};
use rustix::io::Errno;

use self::known::{
    Full, KeptFile, KeptStat, Known, KnownTask, RESERVED_FDS, TaskFd, TaskIo, refresh_due,
};
pub(super) use self::read::open_files_limit;
use self::read::{End, RelPath};
use super::parse::{self, ParseError, Schedstat, SmapsSum, StatFields, StatusFields};
use super::system::SystemFacts;
use crate::proc::names::Names;
use crate::proc::{
    Counts, FastMap, Filedesc, ID, Memory, Metrics, Proc, ProcError, Source, SourceError, States,
    Static, TaskRead, Thread, ThreadID,
};

/// The most bytes read from one file. procfs files are far smaller (a long
/// `cmdline` is a few hundred KiB); the cap only keeps a broken tree from
/// exhausting memory. A longer file is cut, which can only fail its parse.
pub(super) const READ_LIMIT: usize = 1 << 20;

/// How many processes the probe is asked about at a time: the answers of
/// one chunk are held at once, not those of every process.
const PROBE_CHUNK: usize = 256;

/// How many tasks (threads other than the main one) the probe is asked
/// about at a time, at most, whatever the number of threads per process.
const PROBE_TASKS: usize = 1024;

/// Per-process buffers larger than this are not kept for the next cycle.
const KEEP_LIMIT: usize = 64 << 10;

/// What an [`FsSource`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsSourceOptions {
    /// Read `smaps_rollup` for proportional memory (expensive; off by default).
    pub gather_smaps: bool,
    /// Whether [`Proc::threads`] or [`Proc::tasks`] will be called on the
    /// processes whose [`Proc::metrics`] are read, so that the two can
    /// share work (the tasks' `schedstat` read to tell whether a process is
    /// quiet). Every call is answered correctly either way; without it,
    /// [`Proc::metrics`] reads no per-thread file.
    pub threads: bool,
    /// How many procfs files may be kept open between cycles at most (a
    /// remembered process's `schedstat`, or its `statm` where a probe
    /// answers for `schedstat`; with threads and no probe, its other
    /// tasks' `schedstat` when the budget covers them all; then its `stat`
    /// and its `io` likewise), re-read with `pread`: each holds about 4.4
    /// KiB of kernel memory charged to the agent, so this is a
    /// kernel-memory budget. Within it, the source keeps only as many as
    /// fit in [`FsSourceOptions::kept_kernel_bytes`] beside the path-only
    /// directories it holds (with threads, every task's too when they fit
    /// beside all three files of every process). 0 keeps none.
    pub kept_files: u64,
    /// The kernel memory that kept files and path-only directories may
    /// hold together ([`FsSourceOptions::KEPT_KERNEL_BYTES`] by default).
    /// The files kept depend on how many processes the host lists; a
    /// larger bound keeps more on a large host.
    pub kept_kernel_bytes: u64,
}

impl FsSourceOptions {
    /// The default cap of kept files (about 14.6 MiB of kernel memory):
    /// three per process on a host of about 1,100 processes.
    pub const DEFAULT_KEPT_FILES: u64 = 3_400;

    /// The kernel memory that kept files and kept path-only directories
    /// may hold together: under 16 MiB with room for the agent's own
    /// (about 0.3 MiB more, measured through the memory cgroup).
    pub const KEPT_KERNEL_BYTES: u64 = 15 << 20;

    /// Kernel memory held by one kept procfs file: its `struct file`, its
    /// `seq_file` and the one-page buffer allocated at the first read
    /// (measured through the memory cgroup: 4,470 bytes).
    const FILE_BYTES: u64 = 4_480;

    /// Kernel memory held by one path-only directory descriptor (measured:
    /// 200 to 211 bytes); a remembered process holds up to two (its
    /// directory and `fd/`), and with threads one per task when they fit.
    const DIR_BYTES: u64 = 208;

    /// How many files may be kept when `listed` processes are remembered,
    /// beside `task_dirs` task directories: the configured cap, or fewer
    /// when the kernel memory of the directories and the files together
    /// would exceed [`FsSourceOptions::kept_kernel_bytes`].
    fn file_budget(&self, listed: u64, task_dirs: u64) -> u64 {
        let dirs = (2 * listed + task_dirs) * Self::DIR_BYTES;
        let fit = self.kept_kernel_bytes.saturating_sub(dirs) / Self::FILE_BYTES;
        self.kept_files.min(fit)
    }
}

impl Default for FsSourceOptions {
    fn default() -> Self {
        FsSourceOptions {
            gather_smaps: false,
            threads: false,
            kept_files: FsSourceOptions::DEFAULT_KEPT_FILES,
            kept_kernel_bytes: FsSourceOptions::KEPT_KERNEL_BYTES,
        }
    }
}

/// What the kernel says a whole thread group has run so far: the
/// scheduler's run time and the context switches summed over its live
/// threads. Two answers equal a cycle apart mean that none of its threads
/// has run in between: a thread that ran moved the run time, and a thread
/// starts or exits only by running (or with its whole group).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupActivity {
    pub run_ns: u64,
    pub switches: u64,
}

/// What the kernel says one task has run so far: the first and third
/// numbers of its `schedstat` (run time in ns, times scheduled in) and the
/// context switches of its `status`, the same counters those files print.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskActivity {
    pub run_ns: u64,
    pub slices: u64,
    pub ctx_voluntary: u64,
    pub ctx_nonvoluntary: u64,
}

impl TaskActivity {
    fn schedstat(&self) -> Schedstat {
        Schedstat {
            run_ns: self.run_ns,
            slices: self.slices,
        }
    }
}

/// Answers, for many tasks or thread groups at once, what the kernel
/// reports of them ([`TaskActivity`], [`GroupActivity`]), without a file
/// opened or kept open. Without it the source learns whether a process has
/// run from its main thread's `schedstat` (one file per process, opened or
/// kept open) and whether its other threads have from one `schedstat` per
/// thread, which it reads only when threads are wanted (otherwise it
/// rereads the whole process). Given to a source with
/// [`FsSource::set_group_probe`]; implemented over taskstats by
/// [`GroupQuery`](crate::exits::GroupQuery), which needs privilege and the
/// procfs's own pid namespace, and answers many questions per system call.
pub trait GroupProbe: Send + std::fmt::Debug {
    /// Fills `out` with one answer per task of `tids`, in order; `None`
    /// where unknown (the task exited, or the kernel did not answer): that
    /// process is then read from its files.
    fn tasks(&mut self, tids: &[i32], out: &mut Vec<Option<TaskActivity>>);
    /// Fills `out` with one answer per thread group of `tgids`, in order;
    /// `None` where unknown.
    fn groups(&mut self, tgids: &[i32], out: &mut Vec<Option<GroupActivity>>);
}

/// A probe shared by the source and the handles of its cycles.
type SharedProbe = Arc<Mutex<Box<dyn GroupProbe>>>;

/// What the probe said of a remembered process this cycle, asked before
/// any of its files was read: whatever runs after the answer shows in the
/// next one.
#[derive(Debug, Clone, Copy)]
struct Probed {
    /// Its main thread's context switches (its `schedstat` numbers are the
    /// handle's `leader_sched`).
    ctx: (u64, u64),
    /// Whether none of its other threads has run since its last full
    /// reading (asked only while the main thread has not either).
    group_still: bool,
    /// Whether the process was confirmed to be the one remembered (see
    /// [`FsProc::probed_leader`]).
    confirmed: bool,
    /// Whether every remembered task other than the main thread was asked
    /// about too (threads wanted, and the group not found still): each
    /// one's [`KnownTask::still`] says whether it ran, and what the ones
    /// that ran answered is kept ([`Cycle::ran_answer`]).
    tasks: bool,
}

/// What one cycle of an [`FsSource`] read, for diagnostics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Processes remembered for the next cycle (one descriptor each).
    pub remembered: usize,
    /// Files kept open for the next cycle (within
    /// [`FsSourceOptions::kept_files`]).
    pub kept_files: u64,
    /// Task directories kept open for the next cycle (path-only, for the
    /// tasks that run: see [`FsSource`]).
    pub task_dirs: u64,
    /// Processes whose metrics came from their last reading (quiet).
    pub quiet: u64,
    /// Processes whose files were read for their metrics.
    pub read: u64,
    /// Tasks that came from their last reading.
    pub tasks_kept: u64,
    /// Tasks whose files were read.
    pub tasks_read: u64,
    /// Tasks read whose `io` was not: the process's own had not moved
    /// since their last reading.
    pub task_io_kept: u64,
    /// Thread groups the probe was asked about ([`FsSource::set_group_probe`]).
    pub groups_asked: u64,
    /// Processes of several threads found quiet by the group probe,
    /// counted in `quiet` too.
    pub groups_still: u64,
    /// Thread groups asked about before their main thread, having been
    /// quiet for a few cycles (counted in `groups_asked` too).
    pub groups_first: u64,
    /// Processes whose main thread's `schedstat` and context switches the
    /// probe gave (no file read for them).
    pub probed: u64,
    /// Tasks read with the probe's context switches in place of their
    /// `status`.
    pub tasks_probed: u64,
}

/// Counters of one cycle, shared by its handles.
#[derive(Debug, Default)]
struct Counters {
    quiet: AtomicU64,
    read: AtomicU64,
    tasks_kept: AtomicU64,
    tasks_read: AtomicU64,
    task_io_kept: AtomicU64,
    groups_asked: AtomicU64,
    groups_still: AtomicU64,
    groups_first: AtomicU64,
    probed: AtomicU64,
    tasks_probed: AtomicU64,
    /// Tasks that ran again and would have had their directory kept, had
    /// the cycle's allowance not run out: the next cycle's is larger.
    task_dirs_wanted: AtomicU64,
}

impl Counters {
    fn add(n: &AtomicU64, by: u64) {
        n.fetch_add(by, Ordering::Relaxed);
    }
}

/// A [`Source`] over a procfs mount point.
#[derive(Debug)]
pub struct FsSource {
    root: Arc<Path>,
    facts: SystemFacts,
    options: FsSourceOptions,
    /// The vector of the handles given back, reused for the next listing.
    spare_list: Vec<FsProc>,
    /// The PIDs of the last listing (reused for the next).
    spare_pids: Vec<i32>,
    /// How many processes the last listing had.
    listed: usize,
    /// Processes remembered from the last cycle, by PID (real procfs only).
    known: FastMap<i32, Box<Known>>,
    /// Descriptors and kept files `known` holds.
    held_fds: u64,
    held_files: u64,
    /// Tasks other than main threads that `known` remembers.
    other_tasks: u64,
    /// Task directories `known` holds, and how many more the last cycle
    /// would have kept (tasks that ran again with none left to keep).
    held_task_dirs: u64,
    task_dirs_wanted: u64,
    /// Shared thread names and wait channels of the remembered tasks.
    names: Arc<Mutex<Names>>,
    /// Cycles started.
    cycles: u64,
    /// The counters of the cycle in progress, and the last cycle's totals.
    counters: Arc<Counters>,
    stats: ReadStats,
    probe: Option<SharedProbe>,
    /// The probe's questions and answers of one chunk of processes,
    /// reused.
    asked: Vec<i32>,
    answered_at: Vec<usize>,
    tasks_answered: Vec<Option<TaskActivity>>,
    groups_answered: Vec<Option<GroupActivity>>,
    /// The groups of the chunk asked about first and found to have run,
    /// by index into the cycle's handles (ascending), with the answer.
    first_ran: Vec<(usize, GroupActivity)>,
    /// The answers about tasks that ran, gathered over a cycle's pre-pass
    /// for [`Cycle::ran_answer`].
    ran: Vec<(i32, i32, TaskActivity)>,
}

impl FsSource {
    /// On a real procfs, every process is read again at least once in this
    /// many cycles, even when it has not run (all but what only a run
    /// moves): the bound on how long a change made to it from outside (a
    /// limit set with `prlimit`, a thread renamed by another thread) can go
    /// unseen.
    pub const REFRESH_CYCLES: u64 = known::REFRESH_CYCLES;

    /// Opens `root`, reading its boot time from `root/stat` and the tick rate
    /// and page size from the system.
    pub fn new(root: impl AsRef<Path>, options: FsSourceOptions) -> Result<Self, SourceError> {
        let facts = SystemFacts::read(root.as_ref())?;
        Ok(FsSource::with_facts(root, facts, options))
    }

    /// Opens `root` with explicit system facts (for fixture trees).
    pub fn with_facts(
        root: impl AsRef<Path>,
        facts: SystemFacts,
        options: FsSourceOptions,
    ) -> Self {
        FsSource {
            root: Arc::from(root.as_ref()),
            facts,
            options,
            spare_list: Vec::new(),
            spare_pids: Vec::new(),
            listed: 0,
            known: FastMap::default(),
            held_fds: 0,
            held_files: 0,
            other_tasks: 0,
            held_task_dirs: 0,
            task_dirs_wanted: 0,
            names: Arc::default(),
            cycles: 0,
            counters: Arc::default(),
            stats: ReadStats::default(),
            probe: None,
            asked: Vec::new(),
            answered_at: Vec::new(),
            tasks_answered: Vec::new(),
            groups_answered: Vec::new(),
            first_ran: Vec::new(),
            ran: Vec::new(),
        }
    }

    /// Asks `probe`, on a real procfs, at the start of every cycle and
    /// before any file is read, what each remembered process's main thread
    /// has run (instead of reading its `schedstat`, and its context switches
    /// instead of reading `status`), and, for a process of several threads
    /// whose main thread has not run, whether any other has: one that has
    /// not is answered from memory like a single-threaded process that has
    /// not run. The kept-file budget then goes to `statm`, read for every
    /// process every cycle, rather than `schedstat`. The probe's pids must be
    /// this mount's.
    pub fn set_group_probe(&mut self, probe: Box<dyn GroupProbe>) {
        self.probe = Some(Arc::new(Mutex::new(probe)));
    }

    /// The mount point read.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The system facts in use.
    pub fn facts(&self) -> SystemFacts {
        self.facts
    }

    /// What this source reads.
    pub fn options(&self) -> FsSourceOptions {
        self.options
    }

    /// What the last cycle read, as of its [`Source::recycle`].
    pub fn read_stats(&self) -> ReadStats {
        self.stats
    }

    /// Counts a new cycle and sets up what its handles share, over the
    /// mount point `dir` opened for it.
    fn start_cycle(&mut self, dir: OwnedFd) -> Cycle {
        self.cycles += 1;
        let procfs = read::is_procfs(&dir);
        // With no swap area, no process has swapped memory: `status` need
        // not be read for it. Unknown counts as in use.
        let swap_in_use = !procfs || {
            let mut buf = Vec::new();
            read::read_file(
                dir.as_fd(),
                &RelPath::file("swaps"),
                &mut buf,
                READ_LIMIT,
                End::Short,
            )
            .map_or(true, |()| parse::swaps_in_use(&buf))
        };
        let budget = read::open_files_limit().saturating_sub(RESERVED_FDS);
        // This cycle's listing: what the budget allows depends on it.
        let listed = self.listed as u64;
        // With a probe the tasks are asked whether they ran: none of their
        // files is read every cycle, and the budget goes to the process's.
        let (files, tiers, task_dirs) = Tiers::plan(
            &self.options,
            listed,
            self.other_tasks,
            self.probe.is_some(),
            budget,
            self.held_task_dirs + self.task_dirs_wanted,
        );
        self.counters = Arc::default();
        Cycle {
            procfs,
            root: Arc::clone(&self.root),
            dir,
            facts: self.facts,
            options: self.options,
            number: self.cycles,
            threads_wanted: self.options.threads,
            swap_in_use,
            free_slots: AtomicU64::new(budget.saturating_sub(self.held_fds)),
            free_files: AtomicU64::new(files.saturating_sub(self.held_files)),
            excess_files: AtomicU64::new(self.held_files.saturating_sub(files)),
            keep_task_sched: tiers.task_sched,
            keep_stat: tiers.stat,
            keep_io: tiers.io,
            // Over the allowance (the host grew): all are closed, and kept
            // again from the next cycle on.
            keep_task_dirs: tiers.task_dirs && self.held_task_dirs <= task_dirs,
            free_task_dirs: AtomicU64::new(task_dirs.saturating_sub(self.held_task_dirs)),
            counters: Arc::clone(&self.counters),
            names: Arc::clone(&self.names),
            probe: self.probe.clone().filter(|_| procfs),
            pending: Mutex::default(),
            ran: OnceLock::new(),
        }
    }

    /// Asks the probe about the process of every handle that has a full
    /// reading (see [`FsSource::set_group_probe`]), [`PROBE_CHUNK`] at a
    /// time: what each main thread has run, and for a process of several
    /// threads whose main thread has not, what the others have (with
    /// threads wanted, only where that one answer may spare those about
    /// each task: [`skip_group`]), and, with threads wanted, what each task
    /// has run where the group was not found still
    /// ([`FsSource::ask_tasks`]). The answers go to the handles; what
    /// the other threads have run, when it is not what is remembered, to
    /// the cycle ([`Cycle::pending`]). A process of several threads quiet
    /// for a few cycles is asked about as a group first
    /// ([`Known::still_group`]): one answer when it is still quiet, as it
    /// mostly is; the usual two when it is not.
    fn ask_probe(&mut self, cycle: &Cycle, procs: &mut [FsProc]) {
        let Some(shared) = &cycle.probe else {
            return;
        };
        let mut probe = shared.lock().unwrap_or_else(PoisonError::into_inner);
        let mut pending = Vec::new();
        let remembered = |p: &FsProc| p.known.as_ref().is_some_and(|k| k.full.is_some());
        let mut first = Vec::new();
        let mut at = 0;
        while at < procs.len() {
            // The next chunk of remembered processes: those quiet for a
            // few cycles asked about as groups, the others by main thread.
            let start = at;
            self.asked.clear();
            self.answered_at.clear();
            first.clear();
            self.first_ran.clear();
            while at < procs.len() && self.asked.len() + first.len() < PROBE_CHUNK {
                let p = &procs[at];
                if remembered(p) {
                    match p.known.as_ref().and_then(|k| k.still_group()) {
                        Some(still) => first.push((at, still)),
                        None => {
                            self.asked.push(p.pid);
                            self.answered_at.push(at);
                        }
                    }
                }
                at += 1;
            }
            if self.asked.is_empty() && first.is_empty() {
                break;
            }
            if !first.is_empty() {
                self.ask_groups_first(&mut **probe, cycle, &first, procs);
            }
            if self.asked.is_empty() {
                continue;
            }
            probe.tasks(&self.asked, &mut self.tasks_answered);
            // Groups to ask about: those whose main thread has not run,
            // compacted to the front of the chunk's vectors.
            let mut groups = 0;
            for j in 0..self.asked.len() {
                let (Some(Some(leader)), Some(&i)) =
                    (self.tasks_answered.get(j).copied(), self.answered_at.get(j))
                else {
                    continue;
                };
                let p = &mut procs[i];
                p.leader_sched = Some(leader.schedstat());
                p.probed = Some(Probed {
                    ctx: (leader.ctx_voluntary, leader.ctx_nonvoluntary),
                    group_still: false,
                    confirmed: false,
                    tasks: false,
                });
                let Some(k) = &p.known else {
                    continue;
                };
                let group_wanted = !k.single_task()
                    && leader.schedstat().is_counting()
                    && k.full
                        .as_ref()
                        .is_some_and(|f| f.leader == leader.schedstat());
                let earlier = self
                    .first_ran
                    .binary_search_by_key(&i, |&(at, _)| at)
                    .ok()
                    .and_then(|x| self.first_ran.get(x));
                if let Some(&(_, group)) = earlier {
                    // Asked about first and found to have run; its main
                    // thread has not, so another thread has: what they
                    // had run then is the record, not asked for again.
                    if group_wanted {
                        pending.push((p.pid, others_than(group, leader)));
                    }
                } else if group_wanted && !(cycle.threads_wanted && skip_group(k)) {
                    self.asked[groups] = p.pid;
                    self.answered_at[groups] = i;
                    self.tasks_answered[groups] = Some(leader);
                    groups += 1;
                }
            }
            if groups > 0 {
                self.ask_groups(&mut **probe, cycle, groups, procs, &mut pending);
            }
            if cycle.threads_wanted {
                self.ask_tasks(&mut **probe, cycle, &mut procs[start..at]);
            }
        }
        pending.sort_unstable_by_key(|&(pid, _)| pid);
        pending.shrink_to_fit();
        *cycle.pending.lock().unwrap_or_else(PoisonError::into_inner) = pending;
        let mut ran = std::mem::take(&mut self.ran);
        ran.sort_unstable_by_key(|&(pid, tid, _)| (pid, tid));
        ran.shrink_to_fit();
        let _ = cycle.ran.set(ran);
    }

    /// Asks about the groups of the processes at `first` (indices into
    /// `procs`, each with what its group says while still: see
    /// [`Known::still_group`]). One still quiet is answered in full: its
    /// main thread as at its last reading, its tasks still. The others
    /// join the chunk's main-thread question (`asked`), as if they had not
    /// been asked about.
    fn ask_groups_first(
        &mut self,
        probe: &mut dyn GroupProbe,
        cycle: &Cycle,
        first: &[(usize, GroupActivity)],
        procs: &mut [FsProc],
    ) {
        let pids: Vec<i32> = first.iter().map(|&(i, _)| procs[i].pid).collect();
        probe.groups(&pids, &mut self.groups_answered);
        Counters::add(&cycle.counters.groups_asked, pids.len() as u64);
        Counters::add(&cycle.counters.groups_first, pids.len() as u64);
        for (j, &(i, still_answer)) in first.iter().enumerate() {
            let p = &mut procs[i];
            let answer = self.groups_answered.get(j).copied().flatten();
            let still = match &mut p.known {
                Some(k) if answer == Some(still_answer) => {
                    k.others_ran = false;
                    k.all_tasks_still(cycle.stamp());
                    k.full.as_ref().map(|f| (f.leader, f.ctx))
                }
                _ => None,
            };
            match still {
                Some((leader, ctx)) => {
                    p.leader_sched = Some(leader);
                    p.probed = Some(Probed {
                        ctx,
                        group_still: true,
                        confirmed: false,
                        tasks: false,
                    });
                }
                None => {
                    self.asked.push(p.pid);
                    self.answered_at.push(i);
                    if let Some(group) = answer {
                        self.first_ran.push((i, group));
                    }
                }
            }
        }
    }

    /// Asks about the first `groups` thread groups of the chunk (see
    /// [`FsSource::ask_probe`]).
    fn ask_groups(
        &mut self,
        probe: &mut dyn GroupProbe,
        cycle: &Cycle,
        groups: usize,
        procs: &mut [FsProc],
        pending: &mut Vec<(i32, GroupActivity)>,
    ) {
        probe.groups(&self.asked[..groups], &mut self.groups_answered);
        Counters::add(&cycle.counters.groups_asked, groups as u64);
        for (j, answer) in self.groups_answered.iter().enumerate() {
            let (Some(group), Some(&i), Some(Some(leader))) =
                (answer, self.answered_at.get(j), self.tasks_answered.get(j))
            else {
                continue;
            };
            let p = &mut procs[i];
            let (Some(k), Some(probed)) = (&mut p.known, &mut p.probed) else {
                continue;
            };
            let others = others_than(*group, *leader);
            if k.activity == Some(others) {
                probed.group_still = true;
                k.others_ran = false;
                // No task has run since its last reading: said now, for
                // the refresh cycle too (which reads them anyway).
                k.all_tasks_still(cycle.stamp());
            } else {
                pending.push((p.pid, others));
            }
        }
    }

    /// With threads wanted, asks about every remembered task other than the
    /// main thread of the processes of `procs` whose group was not found
    /// still, [`PROBE_TASKS`] at a time: what tells whether each ran, as
    /// its `schedstat` would, and the context switches its `status` would
    /// give when it did. No task file is then read to learn that, and the
    /// budget that kept each task's `schedstat` keeps the process's `stat`
    /// and `io` instead, read for every process with a task that ran.
    fn ask_tasks(&mut self, probe: &mut dyn GroupProbe, cycle: &Cycle, procs: &mut [FsProc]) {
        let mut i = 0;
        while i < procs.len() {
            self.asked.clear();
            self.answered_at.clear();
            while i < procs.len() && self.asked.len() < PROBE_TASKS {
                let p = &mut procs[i];
                if let (Some(probed), Some(k)) = (&mut p.probed, &mut p.known)
                    && !probed.group_still
                {
                    probed.tasks = true;
                    k.others_ran = false;
                    k.checked_at = cycle.stamp();
                    for t in k.tasks.iter().filter(|t| t.tid != p.pid) {
                        self.asked.push(t.tid);
                        self.answered_at.push(i);
                    }
                }
                i += 1;
            }
            if self.asked.is_empty() {
                continue;
            }
            probe.tasks(&self.asked, &mut self.tasks_answered);
            for (j, &tid) in self.asked.iter().enumerate() {
                let answer = self.tasks_answered.get(j).copied().flatten();
                if let Some(p) = self.answered_at.get(j).and_then(|&at| procs.get_mut(at))
                    && let Some(k) = p.known.as_mut()
                    && let Some(a) = k.take_answer(tid, answer)
                {
                    self.ran.push((p.pid, tid, a));
                }
            }
        }
    }

    /// One handle per listed PID, each taking what is remembered of its
    /// PID; whatever was remembered and not listed has exited and is
    /// dropped (its directory closed).
    fn handles(&mut self, pids: &[i32], cycle: &Arc<Cycle>) -> Vec<FsProc> {
        let mut procs = std::mem::take(&mut self.spare_list);
        procs.clear();
        // Exactly as many as listed: no doubling slack on a large host.
        procs.reserve_exact(pids.len());
        for &pid in pids {
            let mut known = if cycle.procfs {
                self.known.remove(&pid)
            } else {
                None
            };
            if !cycle.keep_task_dirs
                && let Some(k) = &mut known
            {
                cycle.release_slots(k.close_task_dirs());
            }
            procs.push(FsProc {
                pid,
                cycle: Arc::clone(cycle),
                now: None,
                known,
                tried_dir: false,
                leader_sched: None,
                probed: None,
                quiet: false,
                comm: None,
            });
        }
        self.known.clear();
        procs
    }
}

impl Source for FsSource {
    type Proc = FsProc;

    /// The numeric entries of the mount point, in directory order.
    fn all_procs(&mut self) -> Result<Vec<FsProc>, SourceError> {
        let root = Arc::clone(&self.root);
        let list_error = |e: Errno| SourceError::List {
            path: root.to_path_buf(),
            source: e.into(),
        };
        let dir = rustix::fs::open(
            &*self.root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(list_error)?;
        let listing = Dir::read_from(&dir).map_err(list_error)?;
        let mut pids = std::mem::take(&mut self.spare_pids);
        pids.clear();
        read::for_each_id(listing, |pid| pids.push(pid)).map_err(list_error)?;
        self.listed = pids.len();
        let cycle = Arc::new(self.start_cycle(dir));
        let mut procs = self.handles(&pids, &cycle);
        self.ask_probe(&cycle, &mut procs);
        self.spare_pids = pids;
        if self.cycles.is_multiple_of(known::REFRESH_CYCLES) {
            self.names
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .sweep();
        }
        Ok(procs)
    }

    fn recycle(&mut self, mut procs: Vec<FsProc>) {
        (self.held_fds, self.held_files, self.other_tasks) = (0, 0, 0);
        self.held_task_dirs = 0;
        for p in procs.drain(..) {
            if let Some(k) = p.known
                && k.start_ticks.is_some()
            {
                self.held_fds += k.fds();
                self.held_files += k.file_count();
                self.held_task_dirs += k.task_dir_count();
                self.other_tasks += k.tasks.len().saturating_sub(1) as u64;
                self.known.insert(p.pid, k);
            }
        }
        // Keep room for about as many as this time, no more.
        procs.shrink_to(self.listed + self.listed / 32 + 16);
        self.spare_list = procs;
        let c = &self.counters;
        self.task_dirs_wanted = c.task_dirs_wanted.load(Ordering::Relaxed);
        self.stats = ReadStats {
            remembered: self.known.len(),
            kept_files: self.held_files,
            task_dirs: self.held_task_dirs,
            quiet: c.quiet.load(Ordering::Relaxed),
            read: c.read.load(Ordering::Relaxed),
            tasks_kept: c.tasks_kept.load(Ordering::Relaxed),
            tasks_read: c.tasks_read.load(Ordering::Relaxed),
            task_io_kept: c.task_io_kept.load(Ordering::Relaxed),
            groups_asked: c.groups_asked.load(Ordering::Relaxed),
            groups_still: c.groups_still.load(Ordering::Relaxed),
            groups_first: c.groups_first.load(Ordering::Relaxed),
            probed: c.probed.load(Ordering::Relaxed),
            tasks_probed: c.tasks_probed.load(Ordering::Relaxed),
        };
    }
}

/// What every handle of one cycle shares.
#[derive(Debug)]
struct Cycle {
    root: Arc<Path>,
    /// The mount point, opened once per cycle.
    dir: OwnedFd,
    /// True on a real procfs: the kernel's own rules about its files can be
    /// relied on (see [`known`]), and the `fd/` directory reports its count.
    procfs: bool,
    facts: SystemFacts,
    options: FsSourceOptions,
    /// The source's cycle count, for the refresh schedule.
    number: u64,
    threads_wanted: bool,
    /// Whether the system has a swap area (always true off procfs).
    swap_in_use: bool,
    /// How many more descriptors (process directories, kept files) may be
    /// kept open.
    free_slots: AtomicU64,
    /// How many more files may be kept open (the kernel-memory budget).
    free_files: AtomicU64,
    /// How many kept files to close because the host grew and the budget
    /// shrank below what is held.
    excess_files: AtomicU64,
    /// Whether the `schedstat` of tasks other than the main thread is kept
    /// (never with a probe, which tells whether they ran).
    keep_task_sched: bool,
    /// Whether `stat` is kept too, not only `schedstat`.
    keep_stat: bool,
    /// Whether `io` is kept too.
    keep_io: bool,
    /// Whether the tasks' directories are kept (path-only), and how many
    /// more may be.
    keep_task_dirs: bool,
    free_task_dirs: AtomicU64,
    counters: Arc<Counters>,
    names: Arc<Mutex<Names>>,
    /// The source's probe, on a real procfs only: asked at the start of
    /// the cycle, and then about the tasks that ran (their context
    /// switches); `statm` is kept rather than `schedstat`.
    probe: Option<SharedProbe>,
    /// What the threads other than the main one have run, by process,
    /// sorted: asked this cycle and not what is remembered (see
    /// [`Known::activity`]), remembered once the process is read in full.
    pending: Mutex<Vec<(i32, GroupActivity)>>,
    /// The probe's answers of this cycle about the tasks other than main
    /// threads that ran, by process and task, sorted: held once for the
    /// whole cycle rather than in each process's record (at 5,000 processes
    /// whose threads all wake, several thousand answers are held between
    /// the probe's pre-pass and the reading of their processes).
    ran: OnceLock<Vec<(i32, i32, TaskActivity)>>,
}

impl Cycle {
    /// The cycle's number as [`Known::checked_at`] keeps it (truncated:
    /// only compared with the current one, and 2^32 cycles apart at the
    /// least).
    fn stamp(&self) -> u32 {
        self.number as u32
    }

    /// Whether the cycle has a probe.
    fn probing(&self) -> bool {
        self.probe.is_some()
    }

    /// What the probe answered this cycle about task `tid` of `pid`, when
    /// it ran (see [`FsSource::ask_tasks`]).
    fn ran_answer(&self, pid: i32, tid: i32) -> Option<TaskActivity> {
        let ran = self.ran.get()?;
        let i = ran
            .binary_search_by_key(&(pid, tid), |&(p, t, _)| (p, t))
            .ok()?;
        ran.get(i).map(|&(_, _, a)| a)
    }

    /// What the other threads of `pid` have run, when asked this cycle and
    /// not what is remembered.
    fn pending_others(&self, pid: i32) -> Option<GroupActivity> {
        let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let i = pending.binary_search_by_key(&pid, |&(p, _)| p).ok()?;
        pending.get(i).map(|&(_, o)| o)
    }

    /// The shared strings (one cycle runs on one thread: never contended).
    fn names(&self) -> std::sync::MutexGuard<'_, Names> {
        self.names.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes one slot for a kept directory, if any is left.
    fn take_slot(&self) -> bool {
        take_one(&self.free_slots)
    }

    /// Takes one place in the task-directory allowance and one descriptor
    /// slot, if both are left; else counts the directory as wanted.
    fn take_task_dir(&self) -> bool {
        if take_one(&self.free_task_dirs) {
            if self.take_slot() {
                return true;
            }
            self.free_task_dirs.fetch_add(1, Ordering::Relaxed);
        }
        Counters::add(&self.counters.task_dirs_wanted, 1);
        false
    }

    /// Takes one descriptor slot and one file of the budget for a kept
    /// file, if both are left.
    fn take_file(&self) -> bool {
        if !take_one(&self.free_files) {
            return false;
        }
        if !take_one(&self.free_slots) {
            self.free_files.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Whether one more kept file is to be closed (over the budget); its
    /// descriptor slot is given back, not its place in the budget.
    fn shed_file(&self) -> bool {
        if !take_one(&self.excess_files) {
            return false;
        }
        self.free_slots.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Gives back what `files` kept files held.
    fn release_files(&self, files: u64) {
        self.free_files.fetch_add(files, Ordering::Relaxed);
        self.free_slots.fetch_add(files, Ordering::Relaxed);
    }

    /// Gives back the descriptor slots of `n` closed directories.
    fn release_slots(&self, n: u64) {
        self.free_slots.fetch_add(n, Ordering::Relaxed);
    }

    /// Gives back everything a remembered process held.
    fn release(&self, k: &Known) {
        self.free_files.fetch_add(k.file_count(), Ordering::Relaxed);
        self.free_slots.fetch_add(k.fds(), Ordering::Relaxed);
    }
}

/// Which files are kept beyond every process's `schedstat`, in the order
/// of how often a cycle reads them, each tier only when the budget covers
/// it for every listed process (with some slack for processes that start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tiers {
    /// With threads and no probe, the `schedstat` of every other task: read
    /// every cycle, as the process's own is, to tell whether the task ran.
    task_sched: bool,
    /// `stat`: read for every process that ran (threads off: also for every
    /// process with other threads).
    stat: bool,
    /// `io`: as `stat`.
    io: bool,
    /// With threads, a path-only directory for the tasks that run (see
    /// [`Tiers::plan`]).
    task_dirs: bool,
}

impl Tiers {
    /// Room left for processes that start before the next cycle.
    fn slack(listed: u64) -> u64 {
        listed / 32 + 16
    }

    /// How many files a cycle may keep, which tiers, and how many task
    /// directories, for `listed` processes that had `other_tasks` tasks
    /// besides their main threads at the last cycle, with or without a
    /// probe, `slots` descriptors to keep them in, and `wanted_dirs` task
    /// directories held or asked for by the last cycle.
    ///
    /// With threads, the directories of the tasks that run come out of the
    /// kernel-memory bound before the files: a kept directory (about 208
    /// bytes) saves a path walk of a few microseconds on every file of its
    /// task opened, two or more each time the task runs, where a kept file
    /// (about 4,480 bytes, its buffer) saves an open a cycle: per byte, a
    /// directory pays several times more even for a task that runs one
    /// cycle in five. Only tasks that ran again after their first reading
    /// ask for one ([`FsProc::keep_task_dir`]), so a host whose threads
    /// sleep keeps none and its files as before. At most half of what the
    /// process directories leave goes to them, and only where the
    /// descriptors of every process's files leave room.
    fn plan(
        options: &FsSourceOptions,
        listed: u64,
        other_tasks: u64,
        probing: bool,
        slots: u64,
        wanted_dirs: u64,
    ) -> (u64, Tiers, u64) {
        let task_sched = (options.threads && !probing).then_some(other_tasks);
        let dirs = if options.threads {
            let room = options
                .kept_kernel_bytes
                .saturating_sub(2 * listed * FsSourceOptions::DIR_BYTES)
                / 2
                / FsSourceOptions::DIR_BYTES;
            // The descriptors the processes would hold: a directory and
            // `fd/` each, and as many files as the bound allows, up to
            // three each and the tasks' `schedstat` where kept.
            let slack = Tiers::slack(listed);
            let files = options
                .file_budget(listed, 0)
                .min(3 * listed + slack + task_sched.unwrap_or(0));
            let held = 2 * listed + slack + files;
            wanted_dirs
                .min(listed + other_tasks + Tiers::slack(listed))
                .min(room)
                .min(slots.saturating_sub(held))
        } else {
            0
        };
        let files = options.file_budget(listed, dirs);
        let tiers = Tiers {
            task_dirs: options.threads,
            ..Tiers::of(files, listed, task_sched)
        };
        (files, tiers, dirs)
    }

    /// The tiers that `files` cover for `listed` processes and, when
    /// threads are read without a probe, the `other_tasks` they had at
    /// the last cycle (task directories aside: see [`Tiers::plan`]).
    fn of(files: u64, listed: u64, other_tasks: Option<u64>) -> Tiers {
        let slack = Tiers::slack(listed);
        let others = other_tasks.unwrap_or(0);
        let task_sched = others > 0 && files >= listed + others + slack;
        let first = listed + if task_sched { others } else { 0 };
        Tiers {
            task_sched,
            stat: files >= first + listed + 2 * slack,
            io: files >= first + 2 * listed + 16,
            task_dirs: false,
        }
    }
}

/// The sums of `group` less its main thread's own (`leader`, asked no
/// earlier): what the other threads have run, comparable with an answer
/// taken while the main thread had run less. Where the main thread ran in
/// between the two answers, the difference is less than what the others
/// had run (or wraps), and matches no later answer: the process is then
/// read again, never wrongly taken for quiet.
fn others_than(group: GroupActivity, leader: TaskActivity) -> GroupActivity {
    GroupActivity {
        run_ns: group.run_ns.wrapping_sub(leader.run_ns),
        switches: group
            .switches
            .wrapping_sub(leader.ctx_voluntary)
            .wrapping_sub(leader.ctx_nonvoluntary),
    }
}

/// Whether, with threads wanted, the group of `k` is better not asked
/// about, its tasks being asked about straight away (see
/// [`FsSource::ask_tasks`]): where one answer about its only other task
/// tells as much, or where some other task had run when last asked (then
/// most likely again, and the group's answer would only add to the
/// answers about each task). A group found still is asked again next
/// time: a process whose other threads sleep costs one answer a cycle.
fn skip_group(k: &Known) -> bool {
    k.tasks.len() <= 2 || k.others_ran
}

/// Takes one from `n` unless it is 0.
fn take_one(n: &AtomicU64) -> bool {
    n.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
}

thread_local! {
    /// The read buffer of the cycles run on this thread. Files are read and
    /// parsed one at a time, so one buffer serves every process.
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Reads `rel` under `dir` and hands its content to `f`.
fn read_with<T>(
    dir: BorrowedFd<'_>,
    rel: &RelPath,
    procfs: bool,
    f: impl FnOnce(&[u8]) -> T,
) -> Result<T, Errno> {
    with_buf(|buf| read_in(dir, rel, buf, procfs), f)
}

/// Re-reads the kept file `fd` from its start and hands its content to `f`.
fn pread_with<T>(fd: BorrowedFd<'_>, procfs: bool, f: impl FnOnce(&[u8]) -> T) -> Result<T, Errno> {
    let end = if procfs { End::Short } else { End::Zero };
    with_buf(|buf| read::pread_file(fd, buf, READ_LIMIT, end), f)
}

/// Fills the thread's read buffer with `fill` and hands its content to `f`.
fn with_buf<T>(
    fill: impl FnOnce(&mut Vec<u8>) -> Result<(), Errno>,
    f: impl FnOnce(&[u8]) -> T,
) -> Result<T, Errno> {
    BUF.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            let r = fill(&mut buf).map(|()| f(&buf));
            if buf.capacity() > KEEP_LIMIT {
                *buf = Vec::new();
            }
            r
        }
        // Only if `f` itself reads, which none does.
        Err(_) => {
            let mut buf = Vec::new();
            fill(&mut buf).map(|()| f(&buf))
        }
    })
}

/// One process under an [`FsSource`], valid for one cycle. Kept small:
/// a cycle holds one per process.
#[derive(Debug)]
pub struct FsProc {
    pid: i32,
    /// Whether opening the process directory was tried this cycle.
    tried_dir: bool,
    /// Set by [`Proc::metrics`] when the process was found quiet.
    quiet: bool,
    cycle: Arc<Cycle>,
    /// What is remembered across cycles (real procfs only).
    known: Option<Box<Known>>,
    /// The main thread's `schedstat`, read (or answered by the probe)
    /// before anything else this cycle.
    leader_sched: Option<Schedstat>,
    /// What the probe said of the process this cycle.
    probed: Option<Probed>,
    /// The files read this cycle; `None` while nothing but `schedstat` has
    /// been (a quiet process).
    now: Option<Box<ReadNow>>,
    /// The comm of this cycle's `stat`, kept when `now` is let go after
    /// the last read (for [`Proc::comm`]).
    comm: Option<String>,
}

/// What a handle has read in its cycle, kept for the other calls.
#[derive(Debug, Default)]
struct ReadNow {
    /// The comm, from `stat`.
    comm: String,
    stat: Option<StatFields>,
    status: Option<StatusFields>,
    /// The process's own wchan.
    wchan: Option<String>,
    /// The first task found to have run, with its `schedstat`, when
    /// [`Proc::metrics`] looked at the tasks.
    ran: Option<(i32, Schedstat)>,
    /// The process's `read_bytes` and `write_bytes` read this cycle are
    /// those of its last full reading: no task has done I/O since.
    io_still: bool,
}

/// How much of a remembered reading holds this cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stillness {
    /// Nothing: read everything.
    None,
    /// The main thread has not run: its own values hold.
    MainThread,
    /// No task has run: everything but memory holds.
    Process,
}

/// Reads `rel` under `dir` into `buf`.
fn read_in(
    dir: BorrowedFd<'_>,
    rel: &RelPath,
    buf: &mut Vec<u8>,
    procfs: bool,
) -> Result<(), Errno> {
    let end = if procfs { End::Short } else { End::Zero };
    read::read_file(dir, rel, buf, READ_LIMIT, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_and_handles_can_move_to_a_blocking_thread() {
        fn send<T: Send + 'static>() {}
        send::<FsSource>();
        send::<FsProc>();
    }

    /// Kernel memory of `files` kept files and the directories of `listed`
    /// processes, as the budget counts it.
    fn held(files: u64, listed: u64) -> u64 {
        files * FsSourceOptions::FILE_BYTES + 2 * listed * FsSourceOptions::DIR_BYTES
    }

    const _: () = assert!(FsSourceOptions::KEPT_KERNEL_BYTES < 16 << 20);

    #[test]
    fn kept_files_go_first_to_what_every_cycle_reads() {
        let tiers = |task_sched, stat, io| Tiers {
            task_sched,
            stat,
            io,
            task_dirs: false,
        };
        // Threads off: schedstat, then stat, then io, each for everyone.
        assert_eq!(Tiers::of(3_400, 1_100, None), tiers(false, true, true));
        assert_eq!(Tiers::of(3_000, 1_100, None), tiers(false, true, false));
        assert_eq!(Tiers::of(2_000, 1_100, None), tiers(false, false, false));
        // Threads on: the other tasks' schedstat, read every cycle, before
        // stat and io, read only for processes that ran.
        assert_eq!(
            Tiers::of(3_400, 1_100, Some(2_000)),
            tiers(true, false, false)
        );
        assert_eq!(
            Tiers::of(3_400, 1_000, Some(1_000)),
            tiers(true, true, false)
        );
        assert_eq!(
            Tiers::of(6_000, 1_000, Some(1_000)),
            tiers(true, true, true)
        );
        // Too many tasks for all of them: none, and the process files
        // as without threads.
        assert_eq!(
            Tiers::of(3_400, 1_100, Some(4_000)),
            Tiers::of(3_400, 1_100, None)
        );
        // No other task yet (first cycle, or single-threaded processes).
        assert_eq!(
            Tiers::of(3_400, 1_100, Some(0)),
            Tiers::of(3_400, 1_100, None)
        );
    }

    #[test]
    fn task_directories_of_the_tasks_that_run_come_before_files() {
        let threads = FsSourceOptions {
            threads: true,
            ..FsSourceOptions::default()
        };
        let fits = |files: u64, listed: u64, dirs: u64| {
            held(files, listed) + dirs * FsSourceOptions::DIR_BYTES
                <= FsSourceOptions::KEPT_KERNEL_BYTES
        };
        // About 1,070 processes and 2,010 other tasks that all run (the
        // waking workload at 1,000): every task's directory and every
        // process's three files, within the bound.
        let (files, t, dirs) = Tiers::plan(&threads, 1_070, 2_010, true, 1 << 20, 3_080);
        assert!(t.stat && t.io && t.task_dirs, "{t:?}");
        assert_eq!(dirs, 3_080);
        assert!(fits(files, 1_070, dirs));
        // None asked for (threads asleep, or the first cycles): the files
        // as without threads.
        let (alone, _, none) = Tiers::plan(&threads, 1_070, 2_010, true, 1 << 20, 0);
        assert_eq!(none, 0);
        assert_eq!(alone, FsSourceOptions::default().file_budget(1_070, 0));
        assert!(alone > files);
        // Without threads, none: no task file is read.
        let (_, t, dirs) = Tiers::plan(
            &FsSourceOptions::default(),
            1_070,
            2_010,
            true,
            1 << 20,
            3_080,
        );
        assert!(t.io && !t.task_dirs && dirs == 0, "{t:?}");
        // At 5,100 processes whose 20,000 tasks all run: a directory for
        // each, fewer files, the whole within the bound.
        let (files, _, dirs) = Tiers::plan(&threads, 5_100, 15_000, true, 1 << 20, 30_000);
        assert_eq!(dirs, 5_100 + 15_000 + Tiers::slack(5_100));
        assert!(files < FsSourceOptions::default().file_budget(5_100, 0));
        assert!(fits(files, 5_100, dirs));
        // On a host too large for all of them, at most half of what the
        // process directories leave.
        let (files, _, dirs) = Tiers::plan(&threads, 30_000, 90_000, true, 1 << 20, 120_000);
        assert!(dirs > 0 && dirs < 120_000, "{dirs}");
        assert!(fits(files, 30_000, dirs));
        assert!(files > 0);
        // Where the limit of open files is low, only what the processes'
        // descriptors leave: 8,000 less two directories and three files
        // each, and the slack for both.
        let slack = Tiers::slack(1_070);
        let (_, t, dirs) = Tiers::plan(&threads, 1_070, 2_010, true, 8_000, 3_080);
        assert!(t.io, "{t:?}");
        assert_eq!(dirs, 8_000 - 5 * 1_070 - 2 * slack);
        // Without the probe, the tasks' `schedstat` take descriptors too,
        // up to what the bound allows.
        let (_, _, dirs) = Tiers::plan(&threads, 1_070, 2_010, false, 8_000, 3_080);
        let alone = threads.file_budget(1_070, 0);
        assert!(alone < 3 * 1_070 + slack + 2_010);
        assert_eq!(dirs, 8_000 - 2 * 1_070 - slack - alone);
        // At 5,100 processes with 20,000 descriptors (a hard limit seen on
        // some hosts), the files the bound allows are fewer than three a
        // process: the directories get what they leave.
        let (files, _, dirs) = Tiers::plan(&threads, 5_100, 15_000, true, 20_000, 20_000);
        let alone = FsSourceOptions::default().file_budget(5_100, 0);
        assert_eq!(dirs, 20_000 - 2 * 5_100 - Tiers::slack(5_100) - alone);
        assert!(files < alone && dirs > 5_000, "{files} {dirs}");
    }

    #[test]
    fn the_file_budget_keeps_the_kernel_memory_under_its_bound() {
        let o = FsSourceOptions::default();
        // A host of about 1,100 processes: three files each fit.
        let small = o.file_budget(1_100, 0);
        assert!(small >= 3 * 1_100 + 16, "{small}");
        // Larger hosts: fewer files, the directories and files together
        // within the bound, under 16 MiB.
        for listed in [2_000, 5_100, 10_000, 30_000] {
            let files = o.file_budget(listed, 0);
            assert!(files < 3 * listed, "{listed}: {files}");
            assert!(held(files, listed) <= FsSourceOptions::KEPT_KERNEL_BYTES);
        }
        // Where the directories alone exceed it, no file is kept.
        assert_eq!(o.file_budget(40_000, 0), 0);
        // The configured cap wins when it is lower.
        let capped = FsSourceOptions {
            kept_files: 10,
            ..o
        };
        assert_eq!(capped.file_budget(1_100, 0), 10);
        // A larger bound keeps more on a large host, up to the cap.
        let roomy = FsSourceOptions {
            kept_kernel_bytes: 64 << 20,
            ..o
        };
        assert!(roomy.file_budget(5_100, 0) > o.file_budget(5_100, 0));
        assert_eq!(roomy.file_budget(5_100, 0), o.kept_files);
    }
}
