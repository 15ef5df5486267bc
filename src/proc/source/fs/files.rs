//! How a [`FsProc`] opens and reads one of its files: relative to its kept
//! directory descriptor or by path, into the cycle's shared buffer, and how
//! a failure becomes [`ProcError::Gone`], an error, or a soft error.
use super::*;

impl FsProc {
    /// The process directory, when kept: every path is then relative to it.
    pub(super) fn dir(&self) -> Option<BorrowedFd<'_>> {
        self.known.as_ref().map(|k| k.dir.as_fd())
    }

    /// Where `rel` (a path inside the process directory) is opened from.
    pub(super) fn at(&self, rel: &RelPath) -> (BorrowedFd<'_>, RelPath) {
        match self.dir() {
            Some(d) => (d, *rel),
            None => (self.cycle.dir.as_fd(), RelPath::under_pid(self.pid, rel)),
        }
    }

    /// The full path of `rel`, for messages.
    pub(super) fn path(&self, rel: &RelPath) -> PathBuf {
        self.cycle.root.join(OsStr::from_bytes(
            RelPath::under_pid(self.pid, rel).as_bytes(),
        ))
    }

    /// Whether the process still has a `stat`.
    pub(super) fn alive(&self) -> bool {
        let (dir, rel) = self.at(&RelPath::file("stat"));
        read::exists(dir, &rel)
    }

    /// Classifies a failure on `rel`: a file that is missing because the
    /// process exited is churn; one missing in a live process is an error.
    pub(super) fn io_error(&self, e: Errno, rel: &RelPath) -> ProcError {
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

    pub(super) fn parse_error(&self, rel: &RelPath, e: ParseError) -> ProcError {
        ProcError::Parse {
            path: self.path(rel),
            reason: e.to_string(),
        }
    }

    /// Reads `rel` (inside the process directory) and parses it.
    pub(super) fn read<T>(
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
    pub(super) fn read_task_file<T>(
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

    /// Reads the file `name` of task `tid` as [`FsProc::read_task_file`]
    /// does, through the task's kept directory when there is one. A kept
    /// directory that no longer reads (its task exited, and the TID may be
    /// another task's now) is closed, and the file read by its path.
    pub(super) fn read_in_task<T>(
        &mut self,
        tid: i32,
        name: &str,
        parse: impl FnOnce(&[u8]) -> Result<T, ParseError>,
    ) -> Result<Option<T>, ProcError> {
        // The path from the process's directory: to read by, without a
        // kept task directory, and for messages.
        let rel = || RelPath::in_task(tid).join(name);
        let Some(dir) = self
            .known
            .as_ref()
            .and_then(|k| k.task_fd(TaskFd::Dir, tid))
        else {
            return self.read_task_file(&rel(), parse);
        };
        let mut parse = Some(parse);
        let r = read_with(dir.as_fd(), &RelPath::file(name), self.cycle.procfs, |b| {
            parse.take().map(|p| p(b))
        });
        match r {
            Ok(Some(Ok(v))) => Ok(Some(v)),
            Ok(Some(Err(e))) => Err(self.parse_error(&rel(), e)),
            Ok(None) => Ok(None),
            Err(e) => {
                tracing::trace!(pid = self.pid, tid, error = %e, "task directory let go");
                if let Some(k) = &mut self.known
                    && k.close_task_fd(TaskFd::Dir, tid)
                {
                    self.cycle.release_slots(1);
                }
                match parse {
                    Some(p) => self.read_task_file(&rel(), p),
                    None => Ok(None),
                }
            }
        }
    }

    /// Keeps a path-only descriptor of task `tid`'s directory when the
    /// task `ran` since its last reading (a task read for the first time,
    /// or again on the refresh schedule, may never run again) and the
    /// cycle's allowance and a descriptor are left, or closes a kept one
    /// when the cycle keeps none.
    pub(super) fn keep_task_dir(&mut self, tid: i32, ran: bool) {
        let Some(k) = &mut self.known else {
            return;
        };
        if !self.cycle.keep_task_dirs {
            if k.close_task_fd(TaskFd::Dir, tid) {
                self.cycle.release_slots(1);
            }
            return;
        }
        if !ran || k.task_fd(TaskFd::Dir, tid).is_some() || !self.cycle.take_task_dir() {
            return;
        }
        match read::open_path_dir(k.dir.as_fd(), &RelPath::in_task(tid)) {
            Ok(fd) => k.keep_task_fd(TaskFd::Dir, tid, fd),
            Err(e) => {
                self.cycle.release_slots(1);
                tracing::trace!(pid = self.pid, tid, error = %e, "task directory not kept");
            }
        }
    }

    /// Reads and parses `name`, for an optional file: a failure other than
    /// the process being gone is counted in `soft` and gives `None`.
    pub(super) fn optional<T>(
        &mut self,
        name: &'static str,
        soft: &mut u32,
        parse: impl FnOnce(&[u8]) -> Result<T, ParseError>,
    ) -> Result<Option<T>, ProcError> {
        let r = self.read(&RelPath::file(name), parse);
        self.soften(r, name, soft)
    }

    /// Turns a failure of an optional read into a counted soft error.
    pub(super) fn soften<T>(
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
    pub(super) fn open_dir(&mut self) {
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
                self.leader_sched = self
                    .kept_read(KeptFile::Schedstat, parse::parse_schedstat)
                    .ok();
            }
            Err(e) => {
                self.cycle.free_slots.fetch_add(1, Ordering::Relaxed);
                tracing::trace!(pid = self.pid, error = %e, "process directory not kept");
            }
        }
    }

    /// Reads and parses the file `f` of the process through its kept
    /// descriptor, opening and keeping one when the budget allows (a
    /// remembered process only), else by opening it as any other file.
    /// A kept `stat` is closed once the budget no longer covers it for
    /// every process, and a kept file that fails to read is closed.
    pub(super) fn kept_read<T>(
        &mut self,
        f: KeptFile,
        parse: impl FnOnce(&[u8]) -> Result<T, ParseError>,
    ) -> Result<T, ProcError> {
        let rel = RelPath::file(f.name());
        if let Err(e) = self.keep(f, &rel) {
            // The file cannot be opened for a reason other than the
            // descriptors: opening it again to read would fail the same way.
            return Err(self.io_error(e, &rel));
        }
        let Some(fd) = self.known.as_ref().and_then(|k| k.files.get(f)) else {
            return self.read(&rel, parse);
        };
        let e = match pread_with(fd.as_fd(), self.cycle.procfs, parse) {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => return Err(self.parse_error(&rel, e)),
            Err(e) => e,
        };
        if let Some(k) = &mut self.known
            && k.files.close(f)
        {
            self.cycle.release_files(1);
        }
        Err(self.io_error(e, &rel))
    }

    /// Reads the `schedstat` of task `tid` (not the main thread) through its
    /// kept descriptor, keeping one when the cycle keeps the other tasks'
    /// `schedstat` and the budget allows, as [`FsProc::kept_read`] does for
    /// the process's own files. Opened through the process directory, the
    /// descriptor is bound to that task: once it exits (or its TID is
    /// reused) the read fails and the descriptor is closed.
    pub(super) fn read_task_sched(&mut self, tid: i32) -> Result<Schedstat, ProcError> {
        let rel = RelPath::in_task(tid).join("schedstat");
        self.keep_task_sched(tid, &rel);
        let Some(fd) = self
            .known
            .as_ref()
            .and_then(|k| k.task_fd(TaskFd::Sched, tid))
        else {
            return self.schedstat(&rel);
        };
        let e = match pread_with(fd.as_fd(), self.cycle.procfs, parse::parse_schedstat) {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => return Err(self.parse_error(&rel, e)),
            Err(e) => e,
        };
        if let Some(k) = &mut self.known
            && k.close_task_fd(TaskFd::Sched, tid)
        {
            self.cycle.release_files(1);
        }
        Err(self.io_error(e, &rel))
    }

    /// Opens task `tid`'s `schedstat` to keep, or closes it, as the cycle
    /// says (see [`FsProc::keep`]).
    fn keep_task_sched(&mut self, tid: i32, rel: &RelPath) {
        let Some(k) = &mut self.known else {
            return;
        };
        let held = k.task_fd(TaskFd::Sched, tid).is_some();
        if held && self.cycle.shed_file() {
            k.close_task_fd(TaskFd::Sched, tid);
            return;
        }
        if !self.cycle.keep_task_sched {
            if k.close_task_fd(TaskFd::Sched, tid) {
                self.cycle.release_files(1);
            }
            return;
        }
        if held || !self.cycle.take_file() {
            return;
        }
        match read::open_file(k.dir.as_fd(), rel) {
            Ok(fd) => k.keep_task_fd(TaskFd::Sched, tid, fd),
            Err(e) => {
                self.cycle.release_files(1);
                tracing::trace!(pid = self.pid, tid, error = %e, "task schedstat not kept");
            }
        }
    }

    /// Opens `f` to keep, or closes it, as the budget says. An error only
    /// when the file could not be opened for a reason that opening it
    /// again would meet too (permission denied: `io` of another user's
    /// process without `CAP_SYS_PTRACE`), so that it is not tried twice.
    fn keep(&mut self, f: KeptFile, rel: &RelPath) -> Result<(), Errno> {
        let wanted = match f {
            KeptFile::Schedstat => !self.cycle.probing(),
            KeptFile::Statm => self.cycle.probing(),
            KeptFile::Stat => self.cycle.keep_stat,
            KeptFile::Io => self.cycle.keep_io,
        };
        let Some(k) = &mut self.known else {
            return Ok(());
        };
        if k.files.get(f).is_some() && self.cycle.shed_file() {
            k.files.close(f);
            return Ok(());
        }
        if !wanted {
            if k.files.close(f) {
                self.cycle.release_files(1);
            }
            return Ok(());
        }
        if k.files.get(f).is_some() || !self.cycle.take_file() {
            return Ok(());
        }
        match read::open_file(k.dir.as_fd(), rel) {
            Ok(fd) => k.files.set(f, fd),
            Err(e) => {
                self.cycle.release_files(1);
                tracing::trace!(pid = self.pid, file = f.name(), error = %e, "file not kept");
                if matches!(e, Errno::ACCESS | Errno::PERM) {
                    return Err(e);
                }
                // EMFILE, or the process is gone: read by opening, which
                // reports what happened.
            }
        }
        Ok(())
    }
}
