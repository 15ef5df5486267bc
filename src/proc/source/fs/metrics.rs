//! The metrics of one process: the files read for them, and when a
//! remembered reading stands in for a process that has not run since.
use super::*;

impl FsProc {
    /// `schedstat` at `rel` (inside the process directory).
    pub(super) fn schedstat(&self, rel: &RelPath) -> Result<Schedstat, ProcError> {
        self.read(rel, parse::parse_schedstat)
    }

    pub(super) fn stat(&mut self) -> Result<StatFields, ProcError> {
        if let Some(s) = self.now.as_ref().and_then(|n| n.stat) {
            return Ok(s);
        }
        self.open_dir();
        let mut comm = String::new();
        let s = self.kept_read(KeptFile::Stat, |b| parse::parse_stat(b, &mut comm))?;
        let now = self.now.get_or_insert_with(Box::default);
        now.comm = comm;
        now.stat = Some(s);
        if let Some(k) = &mut self.known {
            k.start_ticks = Some(s.starttime);
        }
        Ok(s)
    }

    /// Confirms the probe's answer about the main thread, already taken as
    /// this cycle's `schedstat`; `None` when there is none. `Some(false)`
    /// when the process is not the one remembered: an answer that differs
    /// from the last full reading's may be another process's that took the
    /// PID, so then `stat` (needed anyway for a process that ran) is read
    /// through the kept directory, which fails once the remembered process
    /// is gone.
    pub(super) fn probed_leader(&mut self) -> Option<bool> {
        self.probed?;
        let sched = self.leader_sched?;
        let same = self
            .known
            .as_ref()
            .and_then(|k| k.full.as_ref())
            .is_some_and(|f| f.leader == sched);
        if same || self.stat().is_ok() {
            if let Some(p) = &mut self.probed {
                p.confirmed = true;
            }
            Counters::add(&self.cycle.counters.probed, 1);
            return Some(true);
        }
        self.leader_sched = None;
        self.probed = None;
        Some(false)
    }

    /// The main thread's context switches this cycle when known without a
    /// read: from `status` if it was read, else from the probe.
    pub(super) fn main_ctx(&self) -> Option<(u64, u64)> {
        if let Some(s) = self.now.as_ref().and_then(|n| n.status) {
            return Some((s.ctx_voluntary, s.ctx_nonvoluntary));
        }
        self.probed.map(|p| p.ctx)
    }

    pub(super) fn status(&mut self) -> Result<StatusFields, ProcError> {
        if let Some(s) = self.now.as_ref().and_then(|n| n.status) {
            return Ok(s);
        }
        let s = self.read(&RelPath::file("status"), parse::parse_status)?;
        self.now.get_or_insert_with(Box::default).status = Some(s);
        Ok(s)
    }

    /// Open descriptors: the `st_size` of `fd/` on a procfs that reports it
    /// (Linux 6.2+), through the process's kept path-only `fd/` when it is
    /// remembered, else the number of entries.
    pub(super) fn open_fds(&mut self) -> Result<u64, ProcError> {
        let rel = RelPath::file("fd");
        if self.cycle.procfs
            && let Some(n) = self.kept_fd_size(&rel)?
        {
            return Ok(n);
        }
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

    /// The size of the kept path-only `fd/` (opened now when descriptors
    /// are left for it); `None` when there is none or it reports 0.
    fn kept_fd_size(&mut self, rel: &RelPath) -> Result<Option<u64>, ProcError> {
        let Some(k) = &mut self.known else {
            return Ok(None);
        };
        if k.fd_dir.is_none() && self.cycle.take_slot() {
            match read::open_path_dir(k.dir.as_fd(), rel) {
                Ok(fd) => k.fd_dir = Some(fd),
                Err(_) => {
                    self.cycle.free_slots.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let Some(fd) = &k.fd_dir else {
            return Ok(None);
        };
        match rustix::fs::fstat(fd) {
            Ok(st) => Ok(u64::try_from(st.st_size).ok().filter(|&n| n > 0)),
            Err(e) => {
                k.fd_dir = None;
                self.cycle.free_slots.fetch_add(1, Ordering::Relaxed);
                Err(self.io_error(e, rel))
            }
        }
    }

    /// The soft open-files limit: read every cycle off procfs; on procfs
    /// when first seen and then on the refresh schedule (another process
    /// can change it, but rarely does).
    pub(super) fn limit(&mut self, soft: &mut u32) -> Result<Option<u64>, ProcError> {
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
    pub(super) fn smaps(&mut self) -> Result<SmapsSum, ProcError> {
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
    pub(super) fn proportional(
        &mut self,
        stat: &StatFields,
        soft: &mut u32,
    ) -> Result<SmapsSum, ProcError> {
        if self.cycle.options.gather_smaps && stat.has_memory_map() {
            let r = self.smaps();
            Ok(self.soften(r, "smaps_rollup", soft)?.unwrap_or_default())
        } else {
            Ok(SmapsSum::default())
        }
    }

    /// How much of the remembered reading still holds (see [`known`]):
    /// nothing, when the process is new or its main thread has run; its
    /// main thread's own values (context switches, wait channel) when only
    /// that thread is known not to have run, or on the process's refresh
    /// cycle; all of it when none of its tasks has. That none has is known from the
    /// group probe's answer when what the other threads have run equals
    /// the record taken no later than the last full reading (see
    /// [`FsSource::set_group_probe`]); else tasks other than the main
    /// thread are looked at only when threads are wanted: through the
    /// probe's answers about each when it gave them, else their
    /// `schedstat`, kept for [`Proc::threads`].
    pub(super) fn stillness(&mut self) -> Stillness {
        let group_still = self.probed.is_some_and(|p| p.group_still);
        let (Some(k), Some(leader)) = (&mut self.known, self.leader_sched) else {
            return Stillness::None;
        };
        let Some(full) = &k.full else {
            return Stillness::None;
        };
        if !full.may_rest() || leader != full.leader {
            return Stillness::None;
        }
        if refresh_due(self.cycle.number, self.pid) {
            // What may change without the process running is read (`stat`
            // for its state and names, `limits`); a main thread that has
            // not run has neither switched nor moved its wait channel (a
            // woken one shows running, and then has none).
            return Stillness::MainThread;
        }
        if k.single_task() {
            return Stillness::Process;
        }
        if group_still {
            k.all_tasks_still(self.cycle.stamp());
            Counters::add(&self.cycle.counters.groups_still, 1);
            return Stillness::Process;
        }
        if !self.cycle.threads_wanted || k.tasks.is_empty() {
            return Stillness::MainThread;
        }
        if self.probed.is_some_and(|p| p.tasks) {
            // Every task was asked about before the cycle read anything.
            let pid = self.pid;
            if !k.tasks.iter().all(|t| t.tid == pid || t.still) {
                return Stillness::MainThread;
            }
            // None has run since the last full reading: what the others
            // have run now is what they had then, a record for the group's
            // answer from now on.
            if let Some(others) = self.cycle.pending_others(pid) {
                k.activity = Some(others);
            }
            return Stillness::Process;
        }
        let count = k.tasks.len();
        if let Some(k) = &mut self.known {
            k.checked_at = self.cycle.stamp();
            for t in &mut k.tasks {
                t.still = false;
            }
        }
        for i in 0..count {
            let tid = match self.known.as_ref().and_then(|k| k.tasks.get(i)) {
                Some(t) if t.tid != self.pid => t.tid,
                _ => continue,
            };
            let Ok(now) = self.read_task_sched(tid) else {
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
    /// the cheapest file that has them (kept open where a probe answers
    /// for `schedstat`).
    /// Either way they are the kernel's exact counts, where `stat` gives an
    /// estimate, so a process read in full and one answered from memory
    /// report the same sizes. Elsewhere they come from `stat`.
    pub(super) fn sizes(&mut self, stat: &StatFields) -> Result<(u64, u64), ProcError> {
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
        let (size, resident) = self.kept_read(KeptFile::Statm, parse::parse_statm)?;
        Ok((resident.saturating_mul(page), size.saturating_mul(page)))
    }

    /// Metrics from the remembered reading and the values that change
    /// without the process running.
    pub(super) fn quiet_metrics(&mut self, full: &Full) -> Result<Metrics, ProcError> {
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
            counts: counts(&facts, &stat, full.ctx, read_bytes, write_bytes),
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
            children: process::children(&facts, &stat),
            parent_pid: stat.ppid,
        })
    }

    /// Reads the process's files. With `main` (a reading whose main thread
    /// has not run since), that thread's own values are taken from it: its
    /// context switches (unless `status` is needed for swap anyway) and
    /// its wait channel. Without, the context switches are the probe's
    /// when it gave them, and `status` is read only for swap.
    pub(super) fn full_metrics(&mut self, main: Option<&Full>) -> Result<Metrics, ProcError> {
        let stat = self.stat()?;
        let known_ctx = match main {
            Some(m) => Some(m.ctx),
            None => self.main_ctx(),
        };
        let (ctx, swap_kb) = match known_ctx {
            Some(ctx) if !self.cycle.swap_in_use => (ctx, 0),
            _ => {
                let s = self.status()?;
                ((s.ctx_voluntary, s.ctx_nonvoluntary), s.vm_swap_kb)
            }
        };
        let facts = self.cycle.facts;
        let mut soft = 0u32;

        let io = self.kept_read(KeptFile::Io, parse::parse_io);
        let io = self.soften(io, "io", &mut soft)?;
        let open = self.open_fds();
        let open = self.soften(open, "fd", &mut soft)?;
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
        // Compared before the reading is replaced: equal sums of monotonic
        // per-task counters mean no task has moved.
        let io_still = io.is_some()
            && self
                .known
                .as_ref()
                .and_then(|k| k.full.as_ref())
                .is_some_and(|f| f.io == io);
        let others = self.cycle.pending_others(self.pid);
        if let Some(k) = &mut self.known {
            // Taken before this reading: it holds from now on.
            if others.is_some() {
                k.activity = others;
            }
            k.full = Some(Full {
                stat: KeptStat::of(&stat),
                ctx,
                io,
                open_fds: open,
                wchan: wchan.as_deref().map(|w| self.cycle.names().get(w)),
                leader,
            });
        }
        let wchan = wchan.unwrap_or_default();
        // For the tasks, when they are read next; without them this
        // cycle's reads are let go right after.
        if self.cycle.threads_wanted {
            let now = self.now.get_or_insert_with(Box::default);
            now.wchan = Some(wchan.clone());
            now.io_still = io_still;
        }

        let (read_bytes, write_bytes) = io.unwrap_or_default();
        Ok(Metrics {
            counts: counts(&facts, &stat, ctx, read_bytes, write_bytes),
            io_known: io.is_some(),
            memory: Memory {
                resident_bytes: resident,
                virtual_bytes,
                swap_bytes: swap_kb.saturating_mul(1024),
                proportional_bytes: smaps.pss_kb.saturating_mul(1024),
                proportional_swap_bytes: smaps.swap_pss_kb.saturating_mul(1024),
            },
            filedesc: Filedesc { open, limit },
            num_threads: stat.num_threads,
            states: States::from_letter(char::from(stat.state)),
            wchan,
            soft_errors: soft,
            children: process::children(&facts, &stat),
            parent_pid: stat.ppid,
        })
    }
}
