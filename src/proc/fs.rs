//! [`FsSource`]: the only part of the process layer that touches a real
//! procfs. It reads a mount point given at construction (`/proc`, or
//! `/host/proc` in a container), with boot time from `<mount>/stat` and the
//! clock tick rate and page size from the system.
//!
//! Each cycle opens the mount point once; every process file is then opened
//! relative to a directory descriptor ([`read`]) and parsed by small byte
//! parsers ([`parse`]) out of one reused buffer. A [`FsProc`] keeps what it
//! has read (`stat`, `status`, `wchan`) until the tracker's last call on it
//! in the cycle, so that [`Proc::id`], [`Proc::static_info`],
//! [`Proc::metrics`] and [`Proc::tasks`] read each file at most once.
//!
//! On a real procfs the source also remembers processes between cycles
//! ([`known`]): each keeps a path-only descriptor of its directory (identity
//! without reading `stat`, shorter lookups), and a process whose tasks have
//! not run since its last full reading is answered from that reading plus
//! the few values that change without it running. The handles given back
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
//!   when the source was told that threads are wanted
//!   ([`Source::expect_threads`]).

mod known;
mod parse;
mod read;

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{Dir, Mode, OFlags};
use rustix::io::Errno;

use self::known::{Full, KeptStat, Known, KnownTask, RESERVED_FDS, refresh_due};
use self::parse::{ParseError, Schedstat, SmapsSum, StatFields, StatusFields};
use self::read::{End, RelPath};
use super::names::Names;
use super::{
    Counts, Filedesc, ID, Memory, Metrics, Proc, ProcError, Source, SourceError, States, Static,
    TaskRead, Thread, ThreadID,
};

/// The most bytes read from one file. procfs files are far smaller (a long
/// `cmdline` is a few hundred KiB); the cap only keeps a broken tree from
/// exhausting memory. A longer file is cut, which can only fail its parse.
const READ_LIMIT: usize = 1 << 20;

/// Per-process buffers larger than this are not kept for the next cycle.
const KEEP_LIMIT: usize = 64 << 10;

/// Facts about the system that turn raw `/proc` values into seconds and bytes.
/// Passed in, never assumed, so fixture trees can be read with known values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemFacts {
    /// `btime` of `<mount>/stat`, Unix seconds.
    pub boot_time_secs: u64,
    /// sysconf(_SC_CLK_TCK).
    pub ticks_per_second: u64,
    /// sysconf(_SC_PAGESIZE).
    pub page_size: u64,
}

impl SystemFacts {
    /// The boot time of the procfs at `root` with this system's tick rate and
    /// page size. The boot time comes from `root` and never from the host's
    /// own `/proc`: in a container the two are the same kernel, but a fixture
    /// tree has its own.
    pub fn read(root: impl AsRef<Path>) -> Result<SystemFacts, SourceError> {
        Ok(SystemFacts {
            boot_time_secs: SystemFacts::read_boot_time(root)?,
            ticks_per_second: rustix::param::clock_ticks_per_second(),
            page_size: u64::try_from(rustix::param::page_size()).unwrap_or(4096),
        })
    }

    /// `btime` of `<root>/stat`. A directory without a readable, parsable
    /// `stat` is not a procfs ([`SourceError::NotProcfs`]).
    ///
    /// Only the `btime` line is read: procfs-core's parser of the whole file
    /// reports a file without its `cpu` line as an internal bug of its own
    /// (a multi-line message asking to report it), which is no way to tell
    /// someone that a directory is not a procfs.
    pub fn read_boot_time(root: impl AsRef<Path>) -> Result<u64, SourceError> {
        use std::io::Read as _;
        let root = root.as_ref();
        let stat = root.join("stat");
        let not_procfs = |reason: String| SourceError::NotProcfs {
            path: root.to_path_buf(),
            reason,
        };
        let mut text = Vec::new();
        std::fs::File::open(&stat)
            .and_then(|f| f.take(READ_LIMIT as u64).read_to_end(&mut text))
            .map_err(|e| not_procfs(format!("cannot read {}: {e}", stat.display())))?;
        parse::parse_btime(&text).map_err(|e| {
            not_procfs(format!(
                "{} is not a kernel statistics file: {e}",
                stat.display()
            ))
        })
    }

    /// Clock ticks as seconds.
    fn seconds(&self, ticks: u64) -> f64 {
        ticks as f64 / self.ticks_per_second.max(1) as f64
    }

    /// Wall-clock time of `ticks` after boot, with sub-second precision;
    /// `None` when out of range (garbage in `stat`).
    fn after_boot(&self, ticks: u64) -> Option<SystemTime> {
        let tps = self.ticks_per_second.max(1);
        let nanos = u128::from(ticks % tps) * 1_000_000_000 / u128::from(tps);
        let since_boot = Duration::new(ticks / tps, u32::try_from(nanos).unwrap_or(0));
        UNIX_EPOCH
            .checked_add(Duration::from_secs(self.boot_time_secs))?
            .checked_add(since_boot)
    }
}

/// What an [`FsSource`] reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsSourceOptions {
    /// Read `smaps_rollup` for proportional memory (expensive; off by default).
    pub gather_smaps: bool,
}

/// Raises the soft limit on open descriptors to the hard limit and returns
/// the new soft limit. An [`FsSource`] on a real procfs keeps one
/// path-only descriptor per process it remembers, up to the soft limit less
/// a reserve; processes beyond that are read by path, which costs more CPU.
/// Meant to be called once at startup, before other threads start processes
/// (children inherit the limit).
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit)?;
    }
    Ok(read::open_files_limit())
}

/// What one cycle of an [`FsSource`] read, for diagnostics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Processes remembered for the next cycle (one descriptor each).
    pub remembered: usize,
    /// Processes whose metrics came from their last reading (quiet).
    pub quiet: u64,
    /// Processes whose files were read for their metrics.
    pub read: u64,
    /// Tasks that came from their last reading.
    pub tasks_kept: u64,
    /// Tasks whose files were read.
    pub tasks_read: u64,
}

/// Counters of one cycle, shared by its handles.
#[derive(Debug, Default)]
struct Counters {
    quiet: AtomicU64,
    read: AtomicU64,
    tasks_kept: AtomicU64,
    tasks_read: AtomicU64,
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
    /// How many processes the last listing had.
    listed: usize,
    /// Processes remembered from the last cycle, by PID (real procfs only).
    known: HashMap<i32, Box<Known>>,
    /// Shared thread names and wait channels of the remembered tasks.
    names: Arc<Mutex<Names>>,
    /// Whether [`Proc::threads`] will be called this cycle.
    threads_wanted: bool,
    /// Cycles started.
    cycles: u64,
    /// The counters of the cycle in progress, and the last cycle's totals.
    counters: Arc<Counters>,
    stats: ReadStats,
}

impl FsSource {
    /// On a real procfs, every process is read in full at least once in
    /// this many cycles, even when it has not run: the bound on how long a
    /// change made to it from outside (a limit set with `prlimit`, a thread
    /// renamed by another thread) can go unseen.
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
            listed: 0,
            known: HashMap::new(),
            names: Arc::default(),
            threads_wanted: false,
            cycles: 0,
            counters: Arc::default(),
            stats: ReadStats::default(),
        }
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
}

impl Source for FsSource {
    type Proc = FsProc;

    /// The numeric entries of the mount point, in directory order.
    fn all_procs(&mut self) -> Result<Vec<FsProc>, SourceError> {
        let list_error = |e: Errno| SourceError::List {
            path: self.root.to_path_buf(),
            source: e.into(),
        };
        let dir = rustix::fs::open(
            &*self.root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(list_error)?;
        let listing = Dir::read_from(&dir).map_err(list_error)?;
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
        self.counters = Arc::default();
        let cycle = Arc::new(Cycle {
            procfs,
            root: Arc::clone(&self.root),
            dir,
            facts: self.facts,
            options: self.options,
            number: self.cycles,
            threads_wanted: self.threads_wanted,
            swap_in_use,
            free_slots: AtomicU64::new(budget.saturating_sub(self.known.len() as u64)),
            counters: Arc::clone(&self.counters),
            names: Arc::clone(&self.names),
        });
        let mut procs = std::mem::take(&mut self.spare_list);
        procs.clear();
        // About as many as last time: no doubling slack on a large host.
        procs.reserve_exact(self.listed + self.listed / 32 + 16);
        let known = &mut self.known;
        read::for_each_id(listing, |pid| {
            procs.push(FsProc {
                pid,
                cycle: Arc::clone(&cycle),
                now: None,
                known: if procfs { known.remove(&pid) } else { None },
                tried_dir: false,
                leader_sched: None,
                quiet: false,
            });
        })
        .map_err(list_error)?;
        self.listed = procs.len();
        // Whatever was not listed has exited: close its directory.
        self.known.clear();
        if self.cycles.is_multiple_of(known::REFRESH_CYCLES) {
            self.names
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .sweep();
        }
        Ok(procs)
    }

    fn recycle(&mut self, mut procs: Vec<FsProc>) {
        for p in procs.drain(..) {
            if let Some(k) = p.known
                && k.start_ticks.is_some()
            {
                self.known.insert(p.pid, k);
            }
        }
        // Keep room for about as many as this time, no more.
        procs.shrink_to(self.listed + self.listed / 32 + 16);
        self.spare_list = procs;
        let c = &self.counters;
        self.stats = ReadStats {
            remembered: self.known.len(),
            quiet: c.quiet.load(Ordering::Relaxed),
            read: c.read.load(Ordering::Relaxed),
            tasks_kept: c.tasks_kept.load(Ordering::Relaxed),
            tasks_read: c.tasks_read.load(Ordering::Relaxed),
        };
    }

    fn expect_threads(&mut self, wanted: bool) {
        self.threads_wanted = wanted;
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
    /// How many more process directories may be kept open.
    free_slots: AtomicU64,
    counters: Arc<Counters>,
    names: Arc<Mutex<Names>>,
}

impl Cycle {
    /// The shared strings (one cycle runs on one thread: never contended).
    fn names(&self) -> std::sync::MutexGuard<'_, Names> {
        self.names.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes one slot for a kept directory, if any is left.
    fn take_slot(&self) -> bool {
        self.free_slots
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }
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
    BUF.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            let r = read_in(dir, rel, &mut buf, procfs).map(|()| f(&buf));
            if buf.capacity() > KEEP_LIMIT {
                *buf = Vec::new();
            }
            r
        }
        // Only if `f` itself reads, which none does.
        Err(_) => {
            let mut buf = Vec::new();
            read_in(dir, rel, &mut buf, procfs).map(|()| f(&buf))
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
    /// The main thread's `schedstat`, read before anything else this cycle.
    leader_sched: Option<Schedstat>,
    /// The files read this cycle; `None` while nothing but `schedstat` has
    /// been (a quiet process).
    now: Option<Box<ReadNow>>,
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

impl FsProc {
    /// The process directory, when kept: every path is then relative to it.
    fn dir(&self) -> Option<BorrowedFd<'_>> {
        self.known.as_ref().map(|k| k.dir.as_fd())
    }

    /// Where `rel` (a path inside the process directory) is opened from.
    fn at(&self, rel: &RelPath) -> (BorrowedFd<'_>, RelPath) {
        match self.dir() {
            Some(d) => (d, *rel),
            None => (self.cycle.dir.as_fd(), RelPath::under_pid(self.pid, rel)),
        }
    }

    /// The full path of `rel`, for messages.
    fn path(&self, rel: &RelPath) -> PathBuf {
        self.cycle.root.join(OsStr::from_bytes(
            RelPath::under_pid(self.pid, rel).as_bytes(),
        ))
    }

    /// Whether the process still has a `stat`.
    fn alive(&self) -> bool {
        let (dir, rel) = self.at(&RelPath::file("stat"));
        read::exists(dir, &rel)
    }

    /// Classifies a failure on `rel`: a file that is missing because the
    /// process exited is churn; one missing in a live process is an error.
    fn io_error(&self, e: Errno, rel: &RelPath) -> ProcError {
        match e {
            Errno::NOENT | Errno::SRCH if !self.alive() => ProcError::Gone { pid: self.pid },
            Errno::ACCESS | Errno::PERM => ProcError::PermissionDenied {
                path: self.path(rel),
            },
            e => ProcError::Io {
                path: self.path(rel),
                source: e.into(),
            },
        }
    }

    fn parse_error(&self, rel: &RelPath, e: ParseError) -> ProcError {
        ProcError::Parse {
            path: self.path(rel),
            reason: e.to_string(),
        }
    }

    /// Reads `rel` (inside the process directory) and parses it.
    fn read<T>(
        &self,
        rel: &RelPath,
        parse: impl FnOnce(&[u8]) -> Result<T, ParseError>,
    ) -> Result<T, ProcError> {
        let (dir, at) = self.at(rel);
        match read_with(dir, &at, self.cycle.procfs, parse) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.parse_error(rel, e)),
            Err(e) => Err(self.io_error(e, rel)),
        }
    }

    /// Reads a file of a task and parses it: `Ok(None)` when the task is
    /// gone (the file or the task vanished), an error for anything else.
    fn read_task_file<T>(
        &self,
        rel: &RelPath,
        parse: impl FnOnce(&[u8]) -> Result<T, ParseError>,
    ) -> Result<Option<T>, ProcError> {
        let (dir, at) = self.at(rel);
        match read_with(dir, &at, self.cycle.procfs, parse) {
            Ok(Ok(v)) => Ok(Some(v)),
            Ok(Err(e)) => Err(self.parse_error(rel, e)),
            Err(Errno::NOENT | Errno::SRCH) => Ok(None),
            Err(e) => Err(self.io_error(e, rel)),
        }
    }

    /// Reads and parses `name`, for an optional file: a failure other than
    /// the process being gone is counted in `soft` and gives `None`.
    fn optional<T>(
        &mut self,
        name: &'static str,
        soft: &mut u32,
        parse: impl FnOnce(&[u8]) -> Result<T, ParseError>,
    ) -> Result<Option<T>, ProcError> {
        let r = self.read(&RelPath::file(name), parse);
        self.soften(r, name, soft)
    }

    /// Turns a failure of an optional read into a counted soft error.
    fn soften<T>(
        &self,
        r: Result<T, ProcError>,
        what: &'static str,
        soft: &mut u32,
    ) -> Result<Option<T>, ProcError> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_gone() => Err(e),
            Err(e) => {
                *soft += 1;
                tracing::debug!(pid = self.pid, file = what, error = %e, "optional process file unreadable");
                Ok(None)
            }
        }
    }

    /// On a real procfs, opens the process directory to read through (once
    /// per handle, and only while descriptors are left for it).
    fn open_dir(&mut self) {
        if self.tried_dir || self.known.is_some() || !self.cycle.procfs {
            return;
        }
        self.tried_dir = true;
        if !self.cycle.take_slot() {
            return;
        }
        match read::open_path_dir(self.cycle.dir.as_fd(), &RelPath::pid(self.pid)) {
            Ok(dir) => {
                self.known = Some(Box::new(Known::new(dir)));
                // Before anything else is read: a later change shows as a
                // different schedstat next cycle.
                self.leader_sched = self.schedstat(&RelPath::file("schedstat")).ok();
            }
            Err(e) => {
                self.cycle.free_slots.fetch_add(1, Ordering::Relaxed);
                tracing::trace!(pid = self.pid, error = %e, "process directory not kept");
            }
        }
    }

    /// `schedstat` at `rel` (inside the process directory).
    fn schedstat(&self, rel: &RelPath) -> Result<Schedstat, ProcError> {
        self.read(rel, parse::parse_schedstat)
    }

    fn stat(&mut self) -> Result<StatFields, ProcError> {
        if let Some(s) = self.now.as_ref().and_then(|n| n.stat) {
            return Ok(s);
        }
        self.open_dir();
        let mut comm = String::new();
        let s = self.read(&RelPath::file("stat"), |b| parse::parse_stat(b, &mut comm))?;
        let now = self.now.get_or_insert_with(Box::default);
        now.comm = comm;
        now.stat = Some(s);
        if let Some(k) = &mut self.known {
            k.start_ticks = Some(s.starttime);
        }
        Ok(s)
    }

    fn status(&mut self) -> Result<StatusFields, ProcError> {
        if let Some(s) = self.now.as_ref().and_then(|n| n.status) {
            return Ok(s);
        }
        let s = self.read(&RelPath::file("status"), parse::parse_status)?;
        self.now.get_or_insert_with(Box::default).status = Some(s);
        Ok(s)
    }

    /// Open descriptors: the `st_size` of `fd/` on a procfs that reports it
    /// (Linux 6.2+), else the number of entries.
    fn open_fds(&self) -> Result<u64, ProcError> {
        let rel = RelPath::file("fd");
        let (dir, at) = self.at(&rel);
        if self.cycle.procfs {
            match read::size_of(dir, &at) {
                Ok(n) if n > 0 => return Ok(n),
                Ok(_) => {}
                Err(e) => return Err(self.io_error(e, &rel)),
            }
        }
        read::count_fds(dir, &at).map_err(|e| self.io_error(e, &rel))
    }

    /// The soft open-files limit: read every cycle off procfs; on procfs
    /// when first seen and then on the refresh schedule (another process
    /// can change it, but rarely does).
    fn limit(&mut self, soft: &mut u32) -> Result<Option<u64>, ProcError> {
        let number = self.cycle.number;
        if let Some(k) = &self.known
            && let Some((limit, _)) = k.limit
            && !refresh_due(number, self.pid)
        {
            *soft += u32::from(limit.is_none());
            return Ok(limit);
        }
        let limit = self.optional("limits", soft, parse::parse_max_open_files)?;
        if let Some(k) = &mut self.known {
            k.limit = Some((limit, number));
        }
        Ok(limit)
    }

    /// Pss and SwapPss from `smaps_rollup`, or summed over `smaps` on kernels
    /// without the rollup (before 4.14).
    fn smaps(&mut self) -> Result<SmapsSum, ProcError> {
        let rollup = RelPath::file("smaps_rollup");
        let (dir, at) = self.at(&rollup);
        match read_with(dir, &at, self.cycle.procfs, SmapsSum::parse) {
            Ok(sum) => return sum.map_err(|e| self.parse_error(&rollup, e)),
            Err(Errno::NOENT) if self.alive() => {}
            // The process lost its memory map since `stat` was read (it is
            // exiting): there is nothing to measure.
            Err(Errno::SRCH) if self.alive() => return Ok(SmapsSum::default()),
            Err(e) => return Err(self.io_error(e, &rollup)),
        }
        // The full smaps can be many MiB: stream it line by line.
        let full = RelPath::file("smaps");
        let (dir, at) = self.at(&full);
        let fd = rustix::fs::openat(
            dir,
            at.as_bytes(),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.io_error(e, &full))?;
        let mut reader = std::io::BufReader::new(std::fs::File::from(fd));
        let mut sum = SmapsSum::default();
        let line = &mut Vec::new();
        loop {
            line.clear();
            match std::io::BufRead::read_until(&mut reader, b'\n', line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    let errno = e.raw_os_error().map_or(Errno::IO, Errno::from_raw_os_error);
                    return Err(self.io_error(errno, &full));
                }
            }
            if let Err(e) = sum.add_line(line) {
                return Err(self.parse_error(&full, e));
            }
        }
        Ok(sum)
    }

    /// Proportional memory when enabled: read every cycle, since other
    /// processes change it.
    fn proportional(&mut self, stat: &StatFields, soft: &mut u32) -> Result<SmapsSum, ProcError> {
        if self.cycle.options.gather_smaps && stat.has_memory_map() {
            let r = self.smaps();
            Ok(self.soften(r, "smaps_rollup", soft)?.unwrap_or_default())
        } else {
            Ok(SmapsSum::default())
        }
    }

    /// How much of the remembered reading still holds (see [`known`]):
    /// nothing, when the process is new, due for a refresh, or its main
    /// thread has run; its main thread's own values (context switches,
    /// wait channel) when only that thread is known not to have run; all of
    /// it when none of its tasks has. Tasks other than the main thread are
    /// looked at only when threads are wanted; their `schedstat` is kept
    /// for [`Proc::threads`].
    fn stillness(&mut self) -> Stillness {
        let (Some(k), Some(leader)) = (&self.known, self.leader_sched) else {
            return Stillness::None;
        };
        let Some(full) = &k.full else {
            return Stillness::None;
        };
        if refresh_due(self.cycle.number, self.pid) || !full.may_rest() || leader != full.leader {
            return Stillness::None;
        }
        if full.single_task() && k.tasks.len() <= 1 {
            return Stillness::Process;
        }
        if !self.cycle.threads_wanted || k.tasks.is_empty() {
            return Stillness::MainThread;
        }
        let count = k.tasks.len();
        if let Some(k) = &mut self.known {
            k.checked_at = self.cycle.number;
            for t in &mut k.tasks {
                t.still = false;
            }
        }
        for i in 0..count {
            let tid = match self.known.as_ref().and_then(|k| k.tasks.get(i)) {
                Some(t) if t.tid != self.pid => t.tid,
                _ => continue,
            };
            let Ok(now) = self.schedstat(&RelPath::in_task(tid).join("schedstat")) else {
                return Stillness::MainThread;
            };
            let Some(t) = self.known.as_mut().and_then(|k| k.tasks.get_mut(i)) else {
                return Stillness::MainThread;
            };
            t.still = t.unchanged(&now);
            if !t.still {
                self.now.get_or_insert_with(Box::default).ran = Some((tid, now));
                return Stillness::MainThread;
            }
        }
        Stillness::Process
    }

    /// Resident and virtual size in bytes. On a real procfs they come from
    /// `status` when it was read this cycle (the kernel prints its `VmRSS`
    /// and `VmSize` from the same memory counters as `statm`'s resident and
    /// size, so a second file would only repeat them), else from `statm`,
    /// the cheapest file that has them.
    /// Either way they are the kernel's exact counts, where `stat` gives an
    /// estimate, so a process read in full and one answered from memory
    /// report the same sizes. Elsewhere they come from `stat`.
    fn sizes(&mut self, stat: &StatFields) -> Result<(u64, u64), ProcError> {
        let page = self.cycle.facts.page_size;
        if !self.cycle.procfs {
            return Ok((stat.rss.saturating_mul(page), stat.vsize));
        }
        if let Some(s) = self.now.as_ref().and_then(|n| n.status) {
            return Ok((
                s.vm_rss_kb.saturating_mul(1024),
                s.vm_size_kb.saturating_mul(1024),
            ));
        }
        let (size, resident) = self.read(&RelPath::file("statm"), parse::parse_statm)?;
        Ok((resident.saturating_mul(page), size.saturating_mul(page)))
    }

    /// Metrics from the remembered reading and the values that change
    /// without the process running.
    fn quiet_metrics(&mut self, full: &Full) -> Result<Metrics, ProcError> {
        let facts = self.cycle.facts;
        let mut soft = full.soft_errors();
        let stat = full.stat.fields();
        // Before the sizes: with swap, `status` gives them too.
        let swap_kb = if self.cycle.swap_in_use {
            self.status()?.vm_swap_kb
        } else {
            0
        };
        let (resident, virtual_bytes) = self.sizes(&stat)?;
        let limit = self.limit(&mut soft)?;
        let smaps = self.proportional(&stat, &mut soft)?;
        let (read_bytes, write_bytes) = full.io.unwrap_or_default();
        Ok(Metrics {
            counts: counts(&facts, &stat, &full.status(), read_bytes, write_bytes),
            io_known: full.io.is_some(),
            memory: Memory {
                resident_bytes: resident,
                virtual_bytes,
                swap_bytes: swap_kb.saturating_mul(1024),
                proportional_bytes: smaps.pss_kb.saturating_mul(1024),
                proportional_swap_bytes: smaps.swap_pss_kb.saturating_mul(1024),
            },
            filedesc: Filedesc {
                open: full.open_fds,
                limit,
            },
            num_threads: stat.num_threads,
            states: States::from_letter(char::from(stat.state)),
            wchan: full.wchan.as_deref().unwrap_or_default().to_string(),
            soft_errors: soft,
        })
    }

    /// Reads the process's files. With `main` (a reading whose main thread
    /// has not run since), that thread's own values are taken from it: its
    /// context switches (unless `status` is needed for swap anyway) and
    /// its wait channel.
    fn full_metrics(&mut self, main: Option<&Full>) -> Result<Metrics, ProcError> {
        let stat = self.stat()?;
        let status = match main {
            Some(m) if !self.cycle.swap_in_use => m.status(),
            _ => self.status()?,
        };
        let facts = self.cycle.facts;
        let mut soft = 0u32;

        let io = self.optional("io", &mut soft, parse::parse_io)?;
        let open = self.soften(self.open_fds(), "fd", &mut soft)?;
        // A running task has no wait channel: the kernel prints 0.
        let wchan = if self.cycle.procfs && stat.state == b'R' {
            Some(String::new())
        } else if let Some(m) = main {
            soft += u32::from(m.wchan.is_none());
            m.wchan.as_deref().map(str::to_string)
        } else {
            self.optional("wchan", &mut soft, |b| Ok(parse::parse_wchan(b)))?
        };
        let limit = self.limit(&mut soft)?;
        let smaps = self.proportional(&stat, &mut soft)?;
        let (resident, virtual_bytes) = self.sizes(&stat)?;

        let leader = self.leader_sched.unwrap_or_default();
        if let Some(k) = &mut self.known {
            k.full = Some(Full {
                stat: KeptStat::of(&stat),
                ctx: (status.ctx_voluntary, status.ctx_nonvoluntary),
                io,
                open_fds: open,
                wchan: wchan.as_deref().map(|w| self.cycle.names().get(w)),
                leader,
            });
        }
        let wchan = wchan.unwrap_or_default();
        self.now.get_or_insert_with(Box::default).wchan = Some(wchan.clone());

        let (read_bytes, write_bytes) = io.unwrap_or_default();
        Ok(Metrics {
            counts: counts(&facts, &stat, &status, read_bytes, write_bytes),
            io_known: io.is_some(),
            memory: Memory {
                resident_bytes: resident,
                virtual_bytes,
                swap_bytes: status.vm_swap_kb.saturating_mul(1024),
                proportional_bytes: smaps.pss_kb.saturating_mul(1024),
                proportional_swap_bytes: smaps.swap_pss_kb.saturating_mul(1024),
            },
            filedesc: Filedesc { open, limit },
            num_threads: stat.num_threads,
            states: States::from_letter(char::from(stat.state)),
            wchan,
            soft_errors: soft,
        })
    }

    /// Reads one task; `Ok(None)` when it exited while being read. On a real
    /// procfs the main thread's `status` and `wchan` are the process's own
    /// (the same task), so when those were read this cycle they are reused.
    fn read_task(&mut self, tid: i32) -> Result<Option<Thread>, ProcError> {
        let base = RelPath::in_task(tid);
        let facts = self.cycle.facts;
        let main = self.cycle.procfs && tid == self.pid;
        let gone = |e: &ProcError| matches!(e, ProcError::Gone { .. });

        // stat and status are required: a task that lacks them exited.
        let mut name = String::new();
        let Some(stat) =
            self.read_task_file(&base.join("stat"), |b| parse::parse_stat(b, &mut name))?
        else {
            return Ok(None);
        };
        let status = match self.now.as_ref().and_then(|n| n.status).filter(|_| main) {
            Some(s) => s,
            None => match self.read_task_file(&base.join("status"), parse::parse_status)? {
                Some(s) => s,
                None => return Ok(None),
            },
        };

        // io and wchan are optional: unknown io is flagged, not zeroed.
        let io = match self.read_task_file(&base.join("io"), parse::parse_io) {
            Ok(io) => io,
            Err(e) if gone(&e) => return Err(e),
            Err(_) => None,
        };
        let wchan = match self
            .now
            .as_ref()
            .and_then(|n| n.wchan.as_ref())
            .filter(|_| main)
        {
            Some(w) => w.clone(),
            None if self.cycle.procfs && stat.state == b'R' => String::new(),
            None => self
                .read_task_file(&base.join("wchan"), |b| Ok(parse::parse_wchan(b)))
                .ok()
                .flatten()
                .unwrap_or_default(),
        };

        let (read_bytes, write_bytes) = io.unwrap_or_default();
        Ok(Some(Thread {
            id: ThreadID {
                tid,
                start_time_ticks: stat.starttime,
            },
            name,
            counts: counts(&facts, &stat, &status, read_bytes, write_bytes),
            io_known: io.is_some(),
            wchan,
            states: States::from_letter(char::from(stat.state)),
        }))
    }

    /// The TIDs in `task/`, in directory order.
    fn list_tasks(&self) -> Result<Vec<i32>, ProcError> {
        let rel = RelPath::file("task");
        let (dir, at) = self.at(&rel);
        let listing = read::open_dir(dir, &at).map_err(|e| self.io_error(e, &rel))?;
        let mut tids = Vec::new();
        read::for_each_id(listing, |tid| tids.push(tid)).map_err(|e| self.io_error(e, &rel))?;
        Ok(tids)
    }

    /// The `schedstat` of task `tid` this cycle: already read, or read now;
    /// `None` when unreadable.
    fn task_sched(&self, tid: i32) -> Option<Schedstat> {
        if tid == self.pid {
            return self.leader_sched;
        }
        if let Some(k) = &self.known
            && k.checked_at == self.cycle.number
            && let Some(t) = k.task(tid).filter(|t| t.still)
        {
            return Some(t.sched);
        }
        if let Some((_, now)) = self
            .now
            .as_ref()
            .and_then(|n| n.ran)
            .filter(|(t, _)| *t == tid)
        {
            return Some(now);
        }
        self.schedstat(&RelPath::in_task(tid).join("schedstat"))
            .ok()
    }

    /// The tasks, read in directory order; with `unchanged`, those known
    /// not to have run since their last reading come back unread. Either
    /// way, what tells that next cycle is remembered.
    fn task_list(&mut self, unchanged: bool) -> Result<Vec<TaskRead>, ProcError> {
        if unchanged
            && self.quiet
            && let Some(k) = &self.known
            && !k.tasks.is_empty()
        {
            Counters::add(&self.cycle.counters.tasks_kept, k.tasks.len() as u64);
            return Ok(k
                .tasks
                .iter()
                .map(|t| {
                    TaskRead::Unchanged(ThreadID {
                        tid: t.tid,
                        start_time_ticks: t.start_ticks,
                    })
                })
                .collect());
        }
        let tids = self.list_tasks()?;
        let remember = self.known.is_some();
        let refresh = refresh_due(self.cycle.number, self.pid);
        let mut list = Vec::with_capacity(tids.len());
        let mut tasks = Vec::with_capacity(if remember { tids.len() } else { 0 });
        let (mut kept_n, mut read_n) = (0, 0);
        for tid in tids {
            // Before the task's files: a run after this shows next cycle.
            let sched = if remember { self.task_sched(tid) } else { None };
            let kept = match (sched, self.known.as_ref().and_then(|k| k.task(tid))) {
                (Some(now), Some(t)) if unchanged && !refresh && t.unchanged(&now) => Some(*t),
                _ => None,
            };
            if let Some(t) = kept {
                kept_n += 1;
                tasks.push(t);
                list.push(TaskRead::Unchanged(ThreadID {
                    tid,
                    start_time_ticks: t.start_ticks,
                }));
                continue;
            }
            read_n += 1;
            let Some(thread) = self.read_task(tid)? else {
                continue;
            };
            if remember {
                tasks.push(KnownTask {
                    tid,
                    // Only whether it is running matters to what is remembered.
                    state: thread.states.letter(),
                    still: false,
                    start_ticks: thread.id.start_time_ticks,
                    sched: sched.unwrap_or_default(),
                });
            }
            list.push(TaskRead::Read(thread));
        }
        Counters::add(&self.cycle.counters.tasks_kept, kept_n);
        Counters::add(&self.cycle.counters.tasks_read, read_n);
        if list.is_empty() && !self.alive() {
            return Err(ProcError::Gone { pid: self.pid });
        }
        if let Some(k) = &mut self.known {
            tasks.sort_unstable_by_key(|t| t.tid);
            k.tasks = tasks;
        }
        // The last read the tracker makes of this process this cycle.
        self.now = None;
        Ok(list)
    }

    /// Drops what was read this cycle once the tracker is done with the
    /// process (after [`Proc::metrics`] when no threads are wanted), so a
    /// cycle over thousands of new processes does not hold all of it until
    /// the handles are given back. A later call reads again.
    fn done_unless_threads(&mut self) {
        if !self.cycle.threads_wanted {
            self.now = None;
        }
    }
}

/// Counters from `stat`, `status` and `io` (0 when `io` is unknown).
fn counts(
    facts: &SystemFacts,
    stat: &StatFields,
    status: &StatusFields,
    read_bytes: u64,
    write_bytes: u64,
) -> Counts {
    Counts {
        cpu_user_time: facts.seconds(stat.utime),
        cpu_system_time: facts.seconds(stat.stime),
        read_bytes,
        write_bytes,
        major_page_faults: stat.majflt,
        minor_page_faults: stat.minflt,
        ctx_switch_voluntary: status.ctx_voluntary,
        ctx_switch_nonvoluntary: status.ctx_nonvoluntary,
    }
}

impl Proc for FsProc {
    fn pid(&self) -> i32 {
        self.pid
    }

    /// Reads `stat` (kept for the other calls of this cycle); for a process
    /// remembered from the last cycle, only its main thread's `schedstat`,
    /// through the kept directory, which fails once that process is gone.
    fn id(&mut self) -> Result<ID, ProcError> {
        if let Some(s) = self.now.as_ref().and_then(|n| n.stat) {
            return Ok(ID {
                pid: self.pid,
                start_time_ticks: s.starttime,
            });
        }
        if let Some(start) = self.known.as_ref().and_then(|k| k.start_ticks) {
            if self.leader_sched.is_some() {
                return Ok(ID {
                    pid: self.pid,
                    start_time_ticks: start,
                });
            }
            match self.schedstat(&RelPath::file("schedstat")) {
                Ok(s) => {
                    self.leader_sched = Some(s);
                    return Ok(ID {
                        pid: self.pid,
                        start_time_ticks: start,
                    });
                }
                Err(e) => {
                    // The remembered process is gone (its PID may have been
                    // reused) or cannot be checked: start afresh.
                    tracing::trace!(pid = self.pid, error = %e, "remembered process not confirmed");
                    self.known = None;
                    self.cycle.free_slots.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let s = self.stat()?;
        Ok(ID {
            pid: self.pid,
            start_time_ticks: s.starttime,
        })
    }

    /// Reads `status`, `cmdline` and `cgroup` (and `stat` if not yet read).
    fn static_info(&mut self) -> Result<Static, ProcError> {
        let stat = self.stat()?;
        let status = self.status()?;
        let start_time = self.cycle.facts.after_boot(stat.starttime).ok_or_else(|| {
            self.parse_error(
                &RelPath::file("stat"),
                ParseError("field 22 (starttime) is out of range"),
            )
        })?;

        let cmdline = self.read(&RelPath::file("cmdline"), |b| Ok(parse::parse_cmdline(b)))?;

        let cgroups = match self.read(&RelPath::file("cgroup"), |b| Ok(parse::parse_cgroup(b))) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(pid = self.pid, error = %e, "cgroup unreadable");
                Vec::new()
            }
        };

        Ok(Static {
            name: self
                .now
                .as_ref()
                .map(|n| n.comm.clone())
                .unwrap_or_default(),
            cmdline,
            cgroups,
            parent_pid: stat.ppid,
            start_time,
            effective_uid: status.euid,
        })
    }

    /// Reads `io`, `fd/`, `limits`, `wchan` and, when enabled, smaps (and
    /// `stat`/`status` if not yet read; the sizes come from `status`, or
    /// from `statm` when `status` was not needed). For a quiet process
    /// (none of its tasks has run since it was last read, see
    /// [`FsSource`]), only `statm` (`status` instead when the system has
    /// swap) and smaps when enabled.
    fn metrics(&mut self) -> Result<Metrics, ProcError> {
        let stillness = if self.now.as_ref().is_none_or(|n| n.stat.is_none()) {
            self.stillness()
        } else {
            Stillness::None
        };
        let full = match stillness {
            Stillness::None => None,
            _ => self.known.as_ref().and_then(|k| k.full.clone()),
        };
        if let (Stillness::Process, Some(full)) = (stillness, &full) {
            match self.quiet_metrics(full) {
                Ok(m) => {
                    self.quiet = true;
                    Counters::add(&self.cycle.counters.quiet, 1);
                    self.done_unless_threads();
                    return Ok(m);
                }
                Err(e) if e.is_gone() => return Err(e),
                // Read everything, which reports the failure properly.
                Err(_) => {}
            }
        }
        Counters::add(&self.cycle.counters.read, 1);
        let m = self.full_metrics(full.as_ref());
        self.done_unless_threads();
        m
    }

    /// Reads `stat`, `status`, `io` and `wchan` of every task in `task/`, in
    /// directory order, including the main thread. Tasks that exit while
    /// being read are left out.
    fn threads(&mut self) -> Result<Vec<Thread>, ProcError> {
        Ok(self
            .task_list(false)?
            .into_iter()
            .filter_map(|t| match t {
                TaskRead::Read(t) => Some(t),
                TaskRead::Unchanged(_) => None,
            })
            .collect())
    }

    /// Like [`Proc::threads`]; on a real procfs, a task that has not run
    /// since it was last read (its `schedstat` is unchanged) is not read
    /// again, and none is when the whole process is quiet.
    fn tasks(&mut self) -> Result<Vec<TaskRead>, ProcError> {
        self.task_list(true)
    }
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

    #[test]
    fn start_time_keeps_sub_second_ticks() {
        let facts = SystemFacts {
            boot_time_secs: 1508450329,
            ticks_per_second: 100,
            page_size: 4096,
        };
        assert_eq!(
            facts.after_boot(324219),
            Some(UNIX_EPOCH + Duration::new(1508453571, 190_000_000))
        );
        assert_eq!(facts.seconds(10), 0.1);
        // A tick rate of 0 (bad facts) must not divide by zero.
        let zero = SystemFacts {
            ticks_per_second: 0,
            ..facts
        };
        assert_eq!(zero.seconds(3), 3.0);
        assert!(zero.after_boot(u64::MAX).is_none());
    }
}
