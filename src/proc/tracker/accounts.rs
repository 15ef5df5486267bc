//! Accounts closed outside the sampling of `/proc`: what processes did
//! between their last sample and their exit, and what they did without ever
//! being sampled. Two sources feed it, never both at once:
//!
//! - **Exit records** (privileged mode, [`ProcExit`] from taskstats),
//!   queued with [`Tracker::queue_exits`] and drained at the start of the
//!   next cycle, before `/proc` is scanned. A record closes the account of
//!   the process it names (pid and start time): a tracked one gets its
//!   totals minus its last sample, then counts nothing more (a zombie still
//!   listed is reported with zero increases); one never sampled is named by
//!   the rules from its comm and uid, or given its parent's group with
//!   `children`, and all of it counts; what no rule takes is added to
//!   [`Tracker::unattributed_exits`]. Recently swept processes are
//!   remembered for [`GONE_CYCLES`] cycles, so a record arriving after its
//!   process vanished from `/proc` is still matched to its last sample
//!   instead of being counted whole a second time.
//! - **Reaped children** (unprivileged mode, `children_accounting`): the
//!   kernel adds the CPU and faults of every child a process reaps with
//!   `wait` to its `cutime`/`cstime`/`cminflt`/`cmajflt`. The growth of
//!   those totals of a tracked process is attributed to its group, minus
//!   what was already counted for tracked children that it reaped (their
//!   last sample of their own and their children's totals, owed when they
//!   leave `/proc`). The owed part is settled after the sweep of the same
//!   cycle, so a child reaped between two cycles is never counted twice,
//!   and nothing is ever negative. Limits: a parent that ignores `SIGCHLD`
//!   (auto-reaping) never gets the totals, nor does anyone; an orphan is
//!   reaped by init or a subreaper, which is counted only if that reaper
//!   is tracked; a reaper the rules ignore is not read, so its children's
//!   work is not counted; the I/O and context switches of children are not
//!   summed by the kernel at all.

use super::*;

/// How many cycles a swept process is remembered for late exit records.
pub(super) const GONE_CYCLES: u64 = 2;

/// What is remembered of a process swept from `/proc` recently.
#[derive(Debug)]
pub(super) struct Gone {
    pub(super) id: ID,
    /// Its group; `None` for an ignored process.
    pub(super) group: Option<Arc<str>>,
    /// Its last sampled totals (zero when never sampled).
    pub(super) last: Counts,
    /// Its account was already closed by a record.
    pub(super) closed: bool,
    /// Born after the tracker's first cycle.
    pub(super) born_since_start: bool,
    /// The cycle it was swept in.
    pub(super) cycle: u64,
}

/// One change of program of a tracked process, as `explain` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    /// When the change was seen.
    pub at: SystemTime,
    /// comm before and after.
    pub from_name: String,
    pub to_name: String,
    /// The group before; the group after (`None`: no longer tracked).
    pub from_group: String,
    pub to_group: Option<String>,
}

/// How many renames are kept per process.
pub(super) const HISTORY: usize = 4;

impl Tracker {
    /// Queues exit records for the next cycle, which closes their accounts
    /// before it scans `/proc`.
    pub fn queue_exits(&mut self, exits: impl IntoIterator<Item = ProcExit>) {
        self.exits.extend(exits);
    }

    /// What the last cycle attributed outside the per-process updates (exit
    /// records, reaped children), by group. Taken once: the grouper adds
    /// it to the group totals.
    pub fn take_closed(&mut self) -> Vec<(Arc<str>, Delta)> {
        std::mem::take(&mut self.closed)
    }

    /// Totals of exited processes that no rule took, since the tracker
    /// started (privileged mode only: without exit records they are not
    /// known at all). Part of what the node did that no group shows.
    pub fn unattributed_exits(&self) -> Counts {
        self.unattributed
    }

    /// Closes the accounts of the queued exit records.
    pub(super) fn close_exits(&mut self, first: SystemTime) {
        for e in std::mem::take(&mut self.exits) {
            self.close(e, first);
        }
    }

    fn close(&mut self, e: ProcExit, first: SystemTime) {
        let matches = |id: &ID| (e.start_ticks.0..=e.start_ticks.1).contains(&id.start_time_ticks);
        if let Some(id) = self.pids.get(&e.pid).copied()
            && matches(&id)
            && let Some(slot) = self.entries.get_mut(&id)
        {
            match &mut slot.entry {
                Entry::Tracked(t) => {
                    if std::mem::replace(&mut t.closed, true) {
                        return;
                    }
                    let d = match &t.reading {
                        Some(r) => e.totals.since(r.counts()),
                        None if t.start > first => e.totals.as_delta(),
                        None => Delta::default(),
                    };
                    trace!(pid = e.pid, group = %t.group, "exit record closes a tracked process");
                    self.closed.push((t.group.clone(), d));
                }
                Entry::Ignored => {
                    if e.start_time > first {
                        self.unattributed += e.totals.as_delta();
                    }
                }
            }
            return;
        }
        if let Some(g) = self.gone.get_mut(&e.pid)
            && matches(&g.id)
        {
            if std::mem::replace(&mut g.closed, true) {
                return;
            }
            let d = e.totals.since(&g.last);
            match &g.group {
                Some(group) => self.closed.push((group.clone(), d)),
                None if g.born_since_start => self.unattributed += d,
                None => {}
            }
            return;
        }
        if e.start_time < first {
            // It ran before the first sample and was never seen: not part
            // of what the tracker accounts for.
            return;
        }
        let named = self.namer.match_and_name(&ProcAttributes {
            name: &e.name,
            cmdline: &[],
            cgroups: &[],
            uid: e.uid,
            pid: e.pid,
            start_time: e.start_time,
        });
        let group = match named {
            Some(g) => Some(self.names.get(&g)),
            None if self.options.children => self.group_of_parent(e.parent_pid),
            None => None,
        };
        match group {
            Some(g) => {
                trace!(pid = e.pid, group = %g, "exit record of a process never sampled");
                self.closed.push((g, e.totals.as_delta()));
            }
            None => self.unattributed += e.totals.as_delta(),
        }
    }

    /// The group of the tracked process `ppid` (alive or just swept).
    fn group_of_parent(&self, ppid: i32) -> Option<Arc<str>> {
        if let Some(id) = self.pids.get(&ppid)
            && let Some(Slot {
                entry: Entry::Tracked(t),
                ..
            }) = self.entries.get(id)
        {
            return Some(t.group.clone());
        }
        self.gone.get(&ppid).and_then(|g| g.group.clone())
    }

    /// Moves the entries this cycle did not list to the recently gone, and
    /// owes what a tracked one did to its tracked parent (children mode).
    pub(super) fn sweep(&mut self, cycle: u64, first: SystemTime) {
        let mut owed: Vec<(i32, Counts)> = Vec::new();
        let children_accounting = self.options.children_accounting;
        let remember = !self.options.children_accounting;
        let gone = &mut self.gone;
        self.entries.retain(|id, slot| {
            if slot.last_seen == cycle {
                return true;
            }
            let (group, last, closed, born) = match &slot.entry {
                Entry::Tracked(t) => {
                    let last = t.reading.as_ref().map(|r| *r.counts()).unwrap_or_default();
                    if children_accounting {
                        let mut o = Counts {
                            cpu_user_time: last.cpu_user_time,
                            cpu_system_time: last.cpu_system_time,
                            minor_page_faults: last.minor_page_faults,
                            major_page_faults: last.major_page_faults,
                            ..Counts::default()
                        };
                        o += t.children_seen.unwrap_or_default();
                        owed.push((t.parent_pid, o));
                    }
                    (Some(t.group.clone()), last, t.closed, t.start > first)
                }
                Entry::Ignored => (None, Counts::default(), false, false),
            };
            if remember {
                gone.insert(
                    id.pid,
                    Gone {
                        id: *id,
                        group,
                        last,
                        closed,
                        born_since_start: born,
                        cycle,
                    },
                );
            }
            false
        });
        self.gone.retain(|_, g| g.cycle + GONE_CYCLES > cycle);
        for (ppid, o) in owed {
            if let Some(id) = self.pids.get(&ppid)
                && let Some(Slot {
                    entry: Entry::Tracked(p),
                    last_seen,
                }) = self.entries.get_mut(id)
                && *last_seen == cycle
            {
                p.owed += o;
            }
        }
        if children_accounting {
            for slot in self.entries.values_mut() {
                if let Entry::Tracked(t) = &mut slot.entry {
                    let growth = std::mem::take(&mut t.children_growth);
                    if growth == Counts::default() {
                        continue;
                    }
                    let credit = growth.since(&t.owed);
                    t.owed = t.owed.since(&growth);
                    if credit != Counts::default() {
                        self.closed.push((t.group.clone(), credit));
                    }
                }
            }
        }
    }
}
