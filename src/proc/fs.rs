//! [`FsSource`]: the only part of the process layer that touches a real
//! procfs. It reads a mount point given at construction (`/proc`, or
//! `/host/proc` in a container), with boot time from `<mount>/stat` and the
//! clock tick rate and page size from the system.
//!
//! Each cycle opens the mount point once; every process file is then opened
//! relative to that descriptor ([`read`]) and parsed by small byte parsers
//! ([`parse`]). A [`FsProc`] caches what it has read (`stat`, `status`), so
//! that [`Proc::id`], [`Proc::static_info`] and [`Proc::metrics`] read each
//! file at most once per cycle, and holds no descriptor between calls, so a
//! cycle over thousands of processes never runs into the open-files limit.
//!
//! Error policy, which fixes process-exporter's (reference §1.10, §9):
//! - a file that vanishes (ENOENT/ESRCH) while the process's `stat` is gone
//!   too means the process exited: [`ProcError::Gone`], not an error;
//! - the files that decide identity and group (`stat`, `status`, `cmdline`)
//!   are required; the others (`io`, `fd/`, `limits`, `wchan`, smaps) are
//!   optional: when one fails the value is unknown (`io_known = false`,
//!   `open = None`, `limit = None`, empty wchan) and [`Metrics::soft_errors`]
//!   counts it; `cgroup` that fails is an empty list;
//! - `task/` is opened by [`Proc::threads`] only.

mod parse;
mod read;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{Dir, Mode, OFlags};
use rustix::io::Errno;

use self::parse::{ParseError, SmapsSum, StatFields, StatusFields};
use self::read::RelPath;
use super::{
    Counts, Filedesc, ID, Memory, Metrics, Proc, ProcError, Source, SourceError, States, Static,
    Thread, ThreadID,
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

/// A [`Source`] over a procfs mount point.
#[derive(Debug)]
pub struct FsSource {
    root: Arc<Path>,
    facts: SystemFacts,
    options: FsSourceOptions,
    /// Buffers of the handles given back by [`Source::recycle`], reused by
    /// the next cycle's handles.
    spare: Vec<Buffers>,
}

impl FsSource {
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
            spare: Vec::new(),
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
        let cycle = Arc::new(Cycle {
            procfs: read::is_procfs(&dir),
            root: Arc::clone(&self.root),
            dir,
            facts: self.facts,
            options: self.options,
        });
        let mut procs = Vec::with_capacity(self.spare.len().max(64));
        read::for_each_id(listing, |pid| {
            procs.push(FsProc {
                pid,
                cycle: Arc::clone(&cycle),
                bufs: self.spare.pop().unwrap_or_default(),
                stat: None,
                status: None,
            });
        })
        .map_err(list_error)?;
        Ok(procs)
    }

    fn recycle(&mut self, procs: Vec<FsProc>) {
        self.spare.clear();
        self.spare.extend(
            procs
                .into_iter()
                .map(|p| p.bufs)
                .filter(|b| b.buf.capacity() <= KEEP_LIMIT),
        );
    }
}

/// What every handle of one cycle shares.
#[derive(Debug)]
struct Cycle {
    root: Arc<Path>,
    /// The mount point, opened once per cycle.
    dir: OwnedFd,
    /// True on a real procfs (where the `fd/` directory reports its count).
    procfs: bool,
    facts: SystemFacts,
    options: FsSourceOptions,
}

/// Allocations a handle reuses: one read buffer and the comm.
#[derive(Default)]
struct Buffers {
    buf: Vec<u8>,
    comm: String,
}

impl std::fmt::Debug for Buffers {
    /// Sizes only: the content is whatever file was read last.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buffers")
            .field("buf_capacity", &self.buf.capacity())
            .field("comm", &self.comm)
            .finish()
    }
}

/// One process under an [`FsSource`], valid for one cycle.
#[derive(Debug)]
pub struct FsProc {
    pid: i32,
    cycle: Arc<Cycle>,
    bufs: Buffers,
    /// `stat`, once read this cycle (the comm is in `bufs.comm`).
    stat: Option<StatFields>,
    /// `status`, once read this cycle.
    status: Option<StatusFields>,
}

impl FsProc {
    fn path(&self, rel: &RelPath) -> PathBuf {
        self.cycle.root.join(OsStr::from_bytes(rel.as_bytes()))
    }

    /// Whether the process still has a `stat`.
    fn alive(&self) -> bool {
        read::exists(self.cycle.dir.as_fd(), &RelPath::pid(self.pid).join("stat"))
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

    /// Reads `rel` into the handle's buffer.
    fn read(&mut self, rel: &RelPath) -> Result<(), ProcError> {
        read::read_file(self.cycle.dir.as_fd(), rel, &mut self.bufs.buf, READ_LIMIT)
            .map_err(|e| self.io_error(e, rel))
    }

    /// Reads and parses `<pid>/<name>`, for an optional file: a failure other
    /// than the process being gone is counted in `soft` and gives `None`.
    fn optional<T>(
        &mut self,
        name: &'static str,
        soft: &mut u32,
        parse: impl FnOnce(&[u8]) -> Result<T, ParseError>,
    ) -> Result<Option<T>, ProcError> {
        let rel = RelPath::pid(self.pid).join(name);
        let r = self
            .read(&rel)
            .and_then(|()| parse(&self.bufs.buf).map_err(|e| self.parse_error(&rel, e)));
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

    fn stat(&mut self) -> Result<StatFields, ProcError> {
        if let Some(s) = self.stat {
            return Ok(s);
        }
        let rel = RelPath::pid(self.pid).join("stat");
        self.read(&rel)?;
        let s = parse::parse_stat(&self.bufs.buf, &mut self.bufs.comm)
            .map_err(|e| self.parse_error(&rel, e))?;
        self.stat = Some(s);
        Ok(s)
    }

    fn status(&mut self) -> Result<StatusFields, ProcError> {
        if let Some(s) = self.status {
            return Ok(s);
        }
        let rel = RelPath::pid(self.pid).join("status");
        self.read(&rel)?;
        let s = parse::parse_status(&self.bufs.buf).map_err(|e| self.parse_error(&rel, e))?;
        self.status = Some(s);
        Ok(s)
    }

    /// Open descriptors: the `st_size` of `fd/` on a procfs that reports it
    /// (Linux 6.2+), else the number of entries.
    fn open_fds(&self) -> Result<u64, ProcError> {
        let rel = RelPath::pid(self.pid).join("fd");
        let dir = self.cycle.dir.as_fd();
        if self.cycle.procfs {
            match read::size_of(dir, &rel) {
                Ok(n) if n > 0 => return Ok(n),
                Ok(_) => {}
                Err(e) => return Err(self.io_error(e, &rel)),
            }
        }
        read::count_fds(dir, &rel).map_err(|e| self.io_error(e, &rel))
    }

    /// Pss and SwapPss from `smaps_rollup`, or summed over `smaps` on kernels
    /// without the rollup (before 4.14).
    fn smaps(&mut self) -> Result<SmapsSum, ProcError> {
        let base = RelPath::pid(self.pid);
        let rollup = base.join("smaps_rollup");
        match read::read_file(
            self.cycle.dir.as_fd(),
            &rollup,
            &mut self.bufs.buf,
            READ_LIMIT,
        ) {
            Ok(()) => {
                return SmapsSum::parse(&self.bufs.buf).map_err(|e| self.parse_error(&rollup, e));
            }
            Err(Errno::NOENT) if self.alive() => {}
            // The process lost its memory map since `stat` was read (it is
            // exiting): there is nothing to measure.
            Err(Errno::SRCH) if self.alive() => return Ok(SmapsSum::default()),
            Err(e) => return Err(self.io_error(e, &rollup)),
        }
        // The full smaps can be many MiB: stream it line by line.
        let full = base.join("smaps");
        let fd = rustix::fs::openat(
            self.cycle.dir.as_fd(),
            full.as_bytes(),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.io_error(e, &full))?;
        let mut reader = std::io::BufReader::new(std::fs::File::from(fd));
        let mut sum = SmapsSum::default();
        let line = &mut self.bufs.buf;
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

    /// Reads one task; `Ok(None)` when it exited while being read.
    fn read_task(&self, tid: i32, buf: &mut Vec<u8>) -> Result<Option<Thread>, ProcError> {
        let base = RelPath::task(self.pid, tid);
        let dir = self.cycle.dir.as_fd();
        let facts = self.cycle.facts;

        // stat and status are required: a task that lacks them exited.
        let rel = base.join("stat");
        match read::read_file(dir, &rel, buf, READ_LIMIT) {
            Ok(()) => {}
            Err(Errno::NOENT | Errno::SRCH) => return Ok(None),
            Err(e) => return Err(self.io_error(e, &rel)),
        }
        let mut name = String::new();
        let stat = parse::parse_stat(buf, &mut name).map_err(|e| self.parse_error(&rel, e))?;
        let rel = base.join("status");
        match read::read_file(dir, &rel, buf, READ_LIMIT) {
            Ok(()) => {}
            Err(Errno::NOENT | Errno::SRCH) => return Ok(None),
            Err(e) => return Err(self.io_error(e, &rel)),
        }
        let status = parse::parse_status(buf).map_err(|e| self.parse_error(&rel, e))?;

        // io and wchan are optional: unknown io is flagged, not zeroed.
        let io = read::read_file(dir, &base.join("io"), buf, READ_LIMIT)
            .ok()
            .and_then(|()| parse::parse_io(buf).ok());
        let wchan = match read::read_file(dir, &base.join("wchan"), buf, READ_LIMIT) {
            Ok(()) => parse::parse_wchan(buf),
            Err(_) => String::new(),
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

    /// Reads `stat` (kept for the other calls of this cycle).
    fn id(&mut self) -> Result<ID, ProcError> {
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
                &RelPath::pid(self.pid).join("stat"),
                ParseError("field 22 (starttime) is out of range"),
            )
        })?;

        let rel = RelPath::pid(self.pid).join("cmdline");
        self.read(&rel)?;
        let cmdline = parse::parse_cmdline(&self.bufs.buf);

        let rel = RelPath::pid(self.pid).join("cgroup");
        let cgroups = match self.read(&rel) {
            Ok(()) => parse::parse_cgroup(&self.bufs.buf),
            Err(e) => {
                tracing::debug!(pid = self.pid, error = %e, "cgroup unreadable");
                Vec::new()
            }
        };

        Ok(Static {
            name: self.bufs.comm.clone(),
            cmdline,
            cgroups,
            parent_pid: stat.ppid,
            start_time,
            effective_uid: status.euid,
        })
    }

    /// Reads `io`, `fd/`, `limits`, `wchan` and, when enabled, smaps (and
    /// `stat`/`status` if not yet read).
    fn metrics(&mut self) -> Result<Metrics, ProcError> {
        let stat = self.stat()?;
        let status = self.status()?;
        let facts = self.cycle.facts;
        let mut soft = 0u32;

        let io = self.optional("io", &mut soft, parse::parse_io)?;
        let open = self.soften(self.open_fds(), "fd", &mut soft)?;
        let limit = self.optional("limits", &mut soft, parse::parse_max_open_files)?;
        let wchan = self
            .optional("wchan", &mut soft, |b| Ok(parse::parse_wchan(b)))?
            .unwrap_or_default();
        let smaps = if self.cycle.options.gather_smaps && stat.has_memory_map() {
            let r = self.smaps();
            self.soften(r, "smaps_rollup", &mut soft)?
                .unwrap_or_default()
        } else {
            SmapsSum::default()
        };

        let (read_bytes, write_bytes) = io.unwrap_or_default();
        Ok(Metrics {
            counts: counts(&facts, &stat, &status, read_bytes, write_bytes),
            io_known: io.is_some(),
            memory: Memory {
                resident_bytes: stat.rss.saturating_mul(facts.page_size),
                virtual_bytes: stat.vsize,
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

    /// Reads `stat`, `status`, `io` and `wchan` of every task in `task/`, in
    /// directory order, including the main thread. Tasks that exit while
    /// being read are left out.
    fn threads(&mut self) -> Result<Vec<Thread>, ProcError> {
        let rel = RelPath::pid(self.pid).join("task");
        let dir =
            read::open_dir(self.cycle.dir.as_fd(), &rel).map_err(|e| self.io_error(e, &rel))?;
        let mut tids = Vec::new();
        read::for_each_id(dir, |tid| tids.push(tid)).map_err(|e| self.io_error(e, &rel))?;
        let mut threads = Vec::with_capacity(tids.len());
        let mut buf = std::mem::take(&mut self.bufs.buf);
        let read = tids.into_iter().try_for_each(|tid| {
            if let Some(t) = self.read_task(tid, &mut buf)? {
                threads.push(t);
            }
            Ok::<(), ProcError>(())
        });
        self.bufs.buf = buf;
        read?;
        if threads.is_empty() && !self.alive() {
            return Err(ProcError::Gone { pid: self.pid });
        }
        Ok(threads)
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
