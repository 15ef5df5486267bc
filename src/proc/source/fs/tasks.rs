//! The tasks (`task/`) of one process: listing them, reading each, and
//! answering a task that has not run since its last reading from that.
use super::*;

impl FsProc {
    /// Reads one task; `Ok(None)` when it exited while being read. On a real
    /// procfs the main thread's `status` and `wchan` are the process's own
    /// (the same task), so when those were read this cycle they are reused,
    /// and so are its context switches when the probe gave them.
    /// `ctx`, the task's context switches from the probe, stands in for
    /// its `status`; `ran` says that it ran since its last reading.
    pub(super) fn read_task(
        &mut self,
        tid: i32,
        ctx: Option<(u64, u64)>,
        ran: bool,
    ) -> Result<Option<Thread>, ProcError> {
        let facts = self.cycle.facts;
        let main = self.cycle.procfs && tid == self.pid;
        let gone = |e: &ProcError| matches!(e, ProcError::Gone { .. });

        // stat and status are required: a task that lacks them exited.
        self.keep_task_dir(tid, ran);
        let mut name = String::new();
        let Some(stat) = self.read_in_task(tid, "stat", |b| parse::parse_stat(b, &mut name))?
        else {
            return Ok(None);
        };
        let ctx = match self.main_ctx().filter(|_| main).or(ctx) {
            Some(c) => c,
            None => match self.read_in_task(tid, "status", parse::parse_status)? {
                Some(s) => (s.ctx_voluntary, s.ctx_nonvoluntary),
                None => return Ok(None),
            },
        };

        // io and wchan are optional: unknown io is flagged, not zeroed.
        let io = match self.still_io(tid) {
            Some(io) => {
                Counters::add(&self.cycle.counters.task_io_kept, 1);
                Some(io)
            }
            None => match self.read_in_task(tid, "io", parse::parse_io) {
                Ok(io) => io,
                Err(e) if gone(&e) => return Err(e),
                Err(_) => None,
            },
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
                .read_in_task(tid, "wchan", |b| Ok(parse::parse_wchan(b)))
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
            counts: counts(&facts, &stat, ctx, read_bytes, write_bytes),
            io_known: io.is_some(),
            wchan,
            states: States::from_letter(char::from(stat.state)),
        }))
    }

    /// The remembered `read_bytes` and `write_bytes` of task `tid`, when
    /// they still hold: the task is known not to have run since its last
    /// reading (only a task itself moves its counters), or the process's
    /// own, read this cycle, are those of its last full reading. They are
    /// the sum over its tasks (live ones, and what exited ones left to the
    /// process), each only ever growing, and a task not yet born then
    /// starts at zero, so an unchanged sum means that no task has done I/O
    /// since; what a task read since its own last reading would have moved
    /// the sum too. The sum is not relied on in the refresh cycle, which
    /// reads every task that may have run.
    fn still_io(&self, tid: i32) -> Option<(u64, u64)> {
        let k = self.known.as_ref()?;
        let known_still = tid != self.pid
            && k.checked_at == self.cycle.stamp()
            && k.task(tid).is_some_and(|t| t.still);
        if !known_still
            && (!self.now.as_ref()?.io_still || refresh_due(self.cycle.number, self.pid))
        {
            return None;
        }
        k.task_io(tid)
    }

    /// The TIDs in `task/`, in directory order.
    pub(super) fn list_tasks(&self) -> Result<Vec<i32>, ProcError> {
        let rel = RelPath::file("task");
        let (dir, at) = self.at(&rel);
        let listing = read::open_dir(dir, &at).map_err(|e| self.io_error(e, &rel))?;
        let mut tids = Vec::new();
        read::for_each_id(listing, |tid| tids.push(tid)).map_err(|e| self.io_error(e, &rel))?;
        Ok(tids)
    }

    /// The TIDs of the process, each with its `schedstat` of this cycle
    /// when the tasks are remembered (read before the task's files: a run
    /// after it shows next cycle): the remembered tasks when they are known
    /// to be all of them ([`FsProc::same_tasks`]), else a listing of
    /// `task/` in directory order.
    fn task_ids(&mut self, remember: bool) -> Result<Vec<(i32, Option<Schedstat>)>, ProcError> {
        if let Some(same) = self.same_tasks() {
            return Ok(same);
        }
        let tids = self.list_tasks()?;
        Ok(tids
            .into_iter()
            .map(|tid| (tid, remember.then(|| self.task_sched(tid)).flatten()))
            .collect())
    }

    /// The remembered tasks, in TID order, with their `schedstat` of this
    /// cycle, when they are all the process's tasks, so that `task/` need
    /// not be listed: on a real procfs, outside the process's refresh
    /// cycle, when the `stat` read this cycle counts as many threads as are
    /// remembered and every remembered task's `schedstat` reads. A task
    /// that exited fails to read; one created since changes the count,
    /// unless another exited in between, whose `schedstat` then fails.
    fn same_tasks(&mut self) -> Option<Vec<(i32, Option<Schedstat>)>> {
        let k = self.known.as_ref()?;
        let stat = self.now.as_ref()?.stat?;
        let count = k.tasks.len();
        if !self.cycle.procfs
            || refresh_due(self.cycle.number, self.pid)
            || count == 0
            || stat.state == b'Z'
            || stat.num_threads != count as u64
        {
            return None;
        }
        let mut same = Vec::with_capacity(count);
        for i in 0..count {
            let tid = self.known.as_ref()?.tasks.get(i)?.tid;
            same.push((tid, Some(self.task_sched(tid)?)));
        }
        Some(same)
    }

    /// The `schedstat` of task `tid` this cycle: already read or answered
    /// by the probe, or read now; `None` when unreadable.
    pub(super) fn task_sched(&mut self, tid: i32) -> Option<Schedstat> {
        if tid == self.pid {
            return self.leader_sched;
        }
        if let Some(k) = &self.known
            && k.checked_at == self.cycle.stamp()
        {
            if let Some(t) = k.task(tid).filter(|t| t.still) {
                return Some(t.sched);
            }
            if let Some(a) = self.ran_answer(tid) {
                return Some(a.schedstat());
            }
        }
        if let Some((_, now)) = self
            .now
            .as_ref()
            .and_then(|n| n.ran)
            .filter(|(t, _)| *t == tid)
        {
            return Some(now);
        }
        self.read_task_sched(tid).ok()
    }

    /// Every remembered task as unchanged, when the whole process was found
    /// quiet this cycle (none of its tasks has run): `task/` is not listed.
    fn quiet_tasks(&self) -> Option<Vec<TaskRead>> {
        let k = self
            .known
            .as_ref()
            .filter(|k| self.quiet && !k.tasks.is_empty())?;
        Counters::add(&self.cycle.counters.tasks_kept, k.tasks.len() as u64);
        Some(
            k.tasks
                .iter()
                .map(|t| {
                    TaskRead::Unchanged(ThreadID {
                        tid: t.tid,
                        start_time_ticks: t.start_ticks,
                    })
                })
                .collect(),
        )
    }

    /// The tasks, read in directory order; with `unchanged`, those known
    /// not to have run since their last reading come back unread. Either
    /// way, what tells that next cycle is remembered.
    pub(super) fn task_list(&mut self, unchanged: bool) -> Result<Vec<TaskRead>, ProcError> {
        if unchanged && let Some(list) = self.quiet_tasks() {
            return Ok(list);
        }
        let remember = self.known.is_some();
        let tids = self.task_ids(remember)?;
        let refresh = refresh_due(self.cycle.number, self.pid);
        let answers = self.ask_ran_tasks(&tids, unchanged && !refresh);
        let mut list = Vec::with_capacity(tids.len());
        let mut tasks = Vec::with_capacity(if remember { tids.len() } else { 0 });
        // The io of remembered tasks that is neither unknown nor zero.
        let mut io = Vec::new();
        let (mut kept_n, mut read_n) = (0, 0);
        for (tid, sched) in tids {
            let kept = self.unchanged_task(tid, sched, unchanged && !refresh);
            if let Some(t) = kept {
                kept_n += 1;
                if t.io == TaskIo::Other
                    && let Some((r, w)) = self.known.as_ref().and_then(|k| k.task_io(tid))
                {
                    io.push((tid, [r, w]));
                }
                tasks.push(t);
                list.push(TaskRead::Unchanged(ThreadID {
                    tid,
                    start_time_ticks: t.start_ticks,
                }));
                continue;
            }
            read_n += 1;
            let ctx = answers
                .binary_search_by_key(&tid, |&(t, _)| t)
                .ok()
                .and_then(|i| answers.get(i))
                .map(|&(_, c)| c);
            let ran = self
                .known
                .as_ref()
                .and_then(|k| k.task(tid))
                .is_some_and(|t| sched.is_some_and(|now| !t.unchanged(&now)));
            let Some(thread) = self.read_task(tid, ctx, ran)? else {
                continue;
            };
            if remember {
                let read = thread
                    .io_known
                    .then_some((thread.counts.read_bytes, thread.counts.write_bytes));
                let tag = TaskIo::of(read);
                if tag == TaskIo::Other
                    && let Some((r, w)) = read
                {
                    io.push((tid, [r, w]));
                }
                tasks.push(KnownTask {
                    tid,
                    // Only whether it is running matters to what is remembered.
                    state: thread.states.letter(),
                    still: false,
                    start_ticks: thread.id.start_time_ticks,
                    sched: sched.unwrap_or_default(),
                    io: tag,
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
            io.sort_unstable_by_key(|&(tid, _)| tid);
            let (files, dirs) = k.set_tasks(tasks, io);
            self.cycle.release_files(files);
            self.cycle.release_slots(dirs);
        }
        Ok(list)
    }

    /// The remembered task `tid`, when it stands as last read: `may_stand`
    /// and its `schedstat` of this cycle (`sched`) unchanged.
    fn unchanged_task(
        &self,
        tid: i32,
        sched: Option<Schedstat>,
        may_stand: bool,
    ) -> Option<KnownTask> {
        let t = self.known.as_ref()?.task(tid)?;
        (may_stand && sched.is_some_and(|now| t.unchanged(&now))).then_some(*t)
    }

    /// What the probe answered at the start of the cycle about task `tid`,
    /// when it ran (see [`FsSource::ask_probe`]).
    fn ran_answer(&self, tid: i32) -> Option<TaskActivity> {
        if !self.probed.is_some_and(|p| p.tasks) {
            return None;
        }
        self.cycle.ran_answer(self.pid, tid)
    }

    /// The context switches, by TID (sorted), of the tasks other than the
    /// main thread about to be read, from the probe: its answers stand in
    /// for their `status`, the dearest file of a task to read. Those it
    /// gave at the start of the cycle are taken; the others (tasks not
    /// remembered, or not asked about then) are asked about all at once
    /// now. Empty without a probe.
    fn ask_ran_tasks(
        &self,
        tids: &[(i32, Option<Schedstat>)],
        may_stand: bool,
    ) -> Vec<(i32, (u64, u64))> {
        let Some(probe) = &self.cycle.probe else {
            return Vec::new();
        };
        let mut ctx = Vec::new();
        let mut ask = Vec::new();
        for &(tid, sched) in tids {
            if tid == self.pid || self.unchanged_task(tid, sched, may_stand).is_some() {
                continue;
            }
            match self.ran_answer(tid) {
                Some(a) => ctx.push((tid, (a.ctx_voluntary, a.ctx_nonvoluntary))),
                None => ask.push(tid),
            }
        }
        if !ask.is_empty() {
            let mut answers = Vec::new();
            probe
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .tasks(&ask, &mut answers);
            ctx.extend(
                ask.iter()
                    .zip(answers)
                    .filter_map(|(&tid, a)| Some((tid, (a?.ctx_voluntary, a?.ctx_nonvoluntary)))),
            );
        }
        ctx.sort_unstable_by_key(|&(tid, _)| tid);
        Counters::add(&self.cycle.counters.tasks_probed, ctx.len() as u64);
        ctx
    }

    /// Drops what was read this cycle once the tracker is done with the
    /// process (after [`Proc::metrics`] when no threads are wanted), so a
    /// cycle over thousands of new processes does not hold all of it until
    /// the handles are given back. A later call reads again.
    pub(super) fn done_unless_threads(&mut self) {
        if !self.cycle.threads_wanted {
            self.release_now();
        }
    }

    /// Lets go of this cycle's reads, keeping only the comm (if `stat` was
    /// read), which tells the tracker about an `exec`.
    pub(super) fn release_now(&mut self) {
        if let Some(now) = self.now.take()
            && now.stat.is_some()
        {
            self.comm = Some(now.comm);
        }
    }
}
