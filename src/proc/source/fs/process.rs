//! [`Proc`] for [`FsProc`]: identity, the static attributes, the metrics and
//! the tasks of one process, each read at most once per cycle.
use super::*;

/// Counters from `stat`, the main thread's context switches (`status`'s,
/// or the probe's) and `io` (0 when `io` is unknown).
pub(super) fn counts(
    facts: &SystemFacts,
    stat: &StatFields,
    (ctx_voluntary, ctx_nonvoluntary): (u64, u64),
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
        ctx_switch_voluntary: ctx_voluntary,
        ctx_switch_nonvoluntary: ctx_nonvoluntary,
    }
}

/// The reaped children's totals from `stat` (CPU and faults only).
pub(super) fn children(facts: &SystemFacts, stat: &StatFields) -> Counts {
    Counts {
        cpu_user_time: facts.seconds(stat.cutime),
        cpu_system_time: facts.seconds(stat.cstime),
        major_page_faults: stat.cmajflt,
        minor_page_faults: stat.cminflt,
        ..Counts::default()
    }
}

impl Proc for FsProc {
    fn pid(&self) -> i32 {
        self.pid
    }

    /// Reads `stat` (kept for the other calls of this cycle); for a process
    /// remembered from the last cycle, only its main thread's `schedstat`,
    /// through the kept directory, which fails once that process is gone,
    /// or nothing when the probe answered for it (then `stat` when the
    /// answer says its main thread ran, which confirms that the process
    /// is still the one remembered).
    fn id(&mut self) -> Result<ID, ProcError> {
        if let Some(s) = self.now.as_ref().and_then(|n| n.stat) {
            return Ok(ID {
                pid: self.pid,
                start_time_ticks: s.starttime,
            });
        }
        if let Some(start) = self.known.as_ref().and_then(|k| k.start_ticks) {
            if self.leader_sched.is_some() && self.probed.is_none_or(|p| p.confirmed) {
                return Ok(ID {
                    pid: self.pid,
                    start_time_ticks: start,
                });
            }
            let confirmed = match self.probed_leader() {
                Some(confirmed) => confirmed,
                None => match self.kept_read(KeptFile::Schedstat, parse::parse_schedstat) {
                    Ok(s) => {
                        self.leader_sched = Some(s);
                        true
                    }
                    Err(e) => {
                        tracing::trace!(pid = self.pid, error = %e, "remembered process not confirmed");
                        false
                    }
                },
            };
            if confirmed {
                return Ok(ID {
                    pid: self.pid,
                    start_time_ticks: start,
                });
            }
            // The remembered process is gone (its PID may have been reused)
            // or cannot be checked: start afresh.
            if let Some(k) = self.known.take() {
                self.cycle.release(&k);
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
        let quiet_cycles = self
            .known
            .as_mut()
            .map_or(0, |k| std::mem::take(&mut k.quiet_cycles));
        if let (Stillness::Process, Some(full)) = (stillness, &full) {
            match self.quiet_metrics(full) {
                Ok(m) => {
                    self.quiet = true;
                    if let Some(k) = &mut self.known {
                        k.quiet_cycles = quiet_cycles.saturating_add(1);
                    }
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
    /// directory order (in TID order when the remembered tasks are known to
    /// be all of them and `task/` is not listed), including the main
    /// thread. Tasks that exit while being read are left out. What was
    /// read of the process this cycle is let go after, as by
    /// [`Proc::tasks`].
    fn threads(&mut self) -> Result<Vec<Thread>, ProcError> {
        let list = self.task_list(false);
        self.release_now();
        Ok(list?
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
    ///
    /// What was read of the process this cycle is let go after, whatever
    /// the outcome (a quiet process, a failed listing): the tracker is
    /// done with it. A later call reads again.
    fn tasks(&mut self) -> Result<Vec<TaskRead>, ProcError> {
        let list = self.task_list(true);
        self.release_now();
        list
    }

    /// `stat` only (kept for the rest of the cycle).
    fn parent_pid(&mut self) -> Result<i32, ProcError> {
        self.stat().map(|s| s.ppid)
    }

    /// The comm of the `stat` read this cycle, if it was read.
    fn comm(&self) -> Option<&str> {
        self.now
            .as_ref()
            .filter(|n| n.stat.is_some())
            .map(|n| n.comm.as_str())
            .or(self.comm.as_deref())
    }
}
