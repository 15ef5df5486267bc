//! Accounts closed outside the sampling of `/proc`: what processes did
//! between their last sample and their exit, and what they did without ever
//! being sampled. Two sources feed it:
//!
//! - **Reaped children** (`children_accounting`, both modes): the kernel
//!   adds the CPU and faults of every child a process reaps with `wait` to
//!   its `cutime`/`cstime`/`cminflt`/`cmajflt`, measured as the scheduler's
//!   exact run time. The growth of those totals of a tracked process is
//!   attributed to its group, minus what was already counted for that
//!   subtree elsewhere: the last sample (own and children totals) of a
//!   tracked child when it leaves `/proc`, with what exit records counted
//!   below that child after its children totals were last read, and what
//!   exit records counted (below). The owed part is settled after the sweep of the same cycle,
//!   so a child reaped between two cycles is never counted twice, and
//!   nothing is ever negative. Alone (the unprivileged mode) its limits
//!   are: a parent that ignores `SIGCHLD` (auto-reaping) never gets the
//!   totals, nor does anyone; an orphan is reaped by init or a subreaper,
//!   counted only if that reaper is tracked; a reaper the rules ignore is
//!   not read, so its children's work is not counted; and the kernel sums
//!   no I/O or context switches of children.
//! - **Exit records** (the privileged mode, [`ProcExit`] from taskstats),
//!   queued with [`Tracker::queue_exits`] and drained at the start of the
//!   next cycle, before `/proc` is scanned. A record closes the account of
//!   the process it names (pid and start time): a tracked one gets its
//!   totals minus its last sample, then counts nothing more (a zombie still
//!   listed is reported with zero increases). One never sampled is named
//!   by the rules from its comm and uid, and all of it counts there; if no
//!   rule takes it and its parent is tracked, its CPU and faults are left
//!   to the parent's children totals (exact, where a record without delay
//!   accounting has only the tick-sampled CPU, about 10 % short for
//!   processes of a few ms) and only its I/O and context switches are
//!   taken from the record; otherwise, with `children`, a parent that
//!   exited gives its group, and what no rule takes is added to
//!   [`Tracker::unattributed_exits`]. Every amount a record counts is owed
//!   to the reaper's children totals (or, while the reaper is not tracked,
//!   held under its pid until its own record passes it on). Recently swept
//!   processes are remembered for [`GONE_CYCLES`] cycles, so a record
//!   arriving after its process vanished from `/proc` is matched to its
//!   last sample instead of being counted whole a second time. One race is
//!   left: a child that a rule names, reaped after the cycle drained the
//!   records but before its parent was read, is counted in both groups
//!   until later children of that parent use up what is owed.
//!
//! **Whose children totals.** What a tracked process counted is owed to
//! the process that reaps it, which is its parent at its exit: not always
//! the parent it was first seen under (which decides its group when it
//! inherits one, and stays so). A process whose parent exits first is
//! re-parented to init or the nearest subreaper (`systemd --user`,
//! `containerd-shim`, `tini`): every job a shell left running, every
//! daemon that double-forks. So each reading carries the parent `stat`
//! names now, and a process owes its reaper as of its last reading. A
//! quiet process (one that has not run since its last full reading, whose
//! `stat` the source skips) repeats an earlier parent; when that parent
//! leaves `/proc`, such a child's parent is read afresh from `stat` in the
//! same cycle. An exit record names the parent at the exit itself, and
//! overrides the last reading. What remains, in the unprivileged mode: a
//! process re-parented *and* reaped between the same two listings (its
//! parent and it exiting in one interval), or a quiet one whose old parent
//! the tracker did not remember (unnamed under `recheck`) and that exits
//! before its next full reading, still owes its old parent, who is gone:
//! its new reaper counts what it counted a second time. A tracked
//! process that `exec`s into a program no rule takes (or that new rules
//! leave out) is ignored from then on, and no longer read: what it counted
//! while tracked is owed, when it leaves, to its parent at that moment
//! (not followed further: adopted after it, it is counted again). One
//! similar leak is not covered: a tracked process below an ignored one (a
//! rule names the child, not the parent, with `children` off) owes that
//! ignored parent, which is not read, so when it in turn is reaped by a
//! tracked process the child's totals count again there (what a swept
//! child owes is paid only to a tracked parent, and an ignored entry does
//! not keep its own parent to pass it on to).

use super::*;

/// How many cycles a swept process is remembered for late exit records.
pub(super) const GONE_CYCLES: u64 = 2;
/// How many cycles what was counted below a process not tracked waits for
/// that process's own exit record.
const PENDING_CYCLES: u64 = 8;

/// The CPU and fault fields of `c`: what a reaper's children totals hold.
fn cpu_and_faults(c: &Counts) -> Counts {
    Counts {
        cpu_user_time: c.cpu_user_time,
        cpu_system_time: c.cpu_system_time,
        minor_page_faults: c.minor_page_faults,
        major_page_faults: c.major_page_faults,
        ..Counts::default()
    }
}

/// Whether the exit record `e` is of the process `id` found under its pid:
/// a start time within the record's range, since the start estimated from
/// a record is known only to a few ticks.
fn record_of(e: &ProcExit, id: &ID) -> bool {
    (e.start_ticks.0..=e.start_ticks.1).contains(&id.start_time_ticks)
}

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
    /// Its parent's pid.
    pub(super) parent_pid: i32,
    /// The cycle it was swept in.
    pub(super) cycle: u64,
}

/// A tracked process's part in the accounting of reaped children and exit
/// records. All zero for most processes (those that reap no child and get
/// no exit record), so it is boxed apart and allocated only once one of
/// its values is not: four totals inline would more than double the size
/// of every tracked process.
#[derive(Debug, Default)]
pub(super) struct Ledger {
    /// Its reaped-children totals as last read (children accounting).
    pub(super) children_seen: Counts,
    /// Their growth this cycle, settled after the sweep.
    pub(super) children_growth: Counts,
    /// What was already counted for tracked children it reaped, not yet
    /// seen in its children totals.
    pub(super) owed: Counts,
    /// Once closed: the CPU and faults of its exit record, and what was
    /// counted below it from other records (owed to its reaper when it is
    /// swept, in place of its last sample).
    pub(super) record_tail: Counts,
}

impl TrackedProc {
    /// Its reaped-children totals as last read; `None` before the first
    /// reading.
    pub(super) fn children_seen(&self) -> Option<Counts> {
        self.children_read.then(|| {
            self.ledger
                .as_ref()
                .map(|l| l.children_seen)
                .unwrap_or_default()
        })
    }

    /// Its ledger, allocated on first use.
    pub(super) fn ledger_mut(&mut self) -> &mut Ledger {
        self.ledger.get_or_insert_with(Box::default)
    }

    /// Adds `c` to what it is owed (nothing is allocated for zero).
    fn add_owed(&mut self, c: Counts) {
        if c != Counts::default() {
            self.ledger_mut().owed += c;
        }
    }
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

    /// Closes the account of one exit record: of a process listed in the
    /// last cycle, of one swept recently, or of one never sampled.
    fn close(&mut self, e: ProcExit, first: SystemTime) {
        // What of this process's subtree was counted here by other exit
        // records: its reaper's children totals will hold it too.
        let below = self
            .pending
            .remove(&e.pid)
            .map(|(c, _)| c)
            .unwrap_or_default();
        if self.close_listed(&e, below, first) || self.close_gone(&e, below) {
            return;
        }
        if e.start_time < first {
            // It ran before the first sample and was never seen: not part
            // of what the tracker accounts for.
            return;
        }
        self.close_unseen(e, below);
    }

    /// A record of a process the tracker knows now: a tracked one is
    /// counted from its last sample and closed (nothing more counts); an
    /// ignored one born since the start is unattributed. `false` when the
    /// record is of no process known now.
    fn close_listed(&mut self, e: &ProcExit, below: Counts, first: SystemTime) -> bool {
        let Some(id) = self.pids.get(&e.pid).copied() else {
            return false;
        };
        if !record_of(e, &id) {
            return false;
        }
        let Some(slot) = self.entries.get_mut(&id) else {
            return false;
        };
        match &mut slot.entry {
            Entry::Tracked(t) => {
                if std::mem::replace(&mut t.closed, true) {
                    return true;
                }
                let d = match &t.reading {
                    Some(r) => e.totals.since(r.counts()),
                    None if t.start > first => e.totals.as_delta(),
                    None => Delta::default(),
                };
                trace!(pid = e.pid, group = %t.group, "exit record closes a tracked process");
                // Owed to its reaper, instead of its last sample, when
                // it is swept; the record names the parent it had at its
                // exit, even one it got after its last reading.
                let tail = cpu_and_faults(&e.totals) + below;
                if tail != Counts::default() || t.ledger.is_some() {
                    t.ledger_mut().record_tail = tail;
                }
                if e.parent_pid > 0 {
                    t.parent_pid = e.parent_pid;
                }
                self.closed.push((t.group.clone(), d));
            }
            Entry::Ignored => {
                if e.start_time > first {
                    // The record owes its reaper all of it.
                    self.exec_debts.remove(&id);
                    self.unattributed += e.totals.as_delta();
                    self.owe(e.parent_pid, cpu_and_faults(&e.totals) + below);
                }
            }
        }
        true
    }

    /// A late record of a process swept recently: counted from its last
    /// sample, in its group (or unattributed), so that it is not counted
    /// whole a second time. `false` when no such process is remembered.
    fn close_gone(&mut self, e: &ProcExit, below: Counts) -> bool {
        let Some(g) = self.gone.get_mut(&e.pid) else {
            return false;
        };
        if !record_of(e, &g.id) {
            return false;
        }
        if std::mem::replace(&mut g.closed, true) {
            return true;
        }
        let d = e.totals.since(&g.last);
        // Its parent at exit, which reaps it (the sweep owed its last
        // sample to its parent at that reading: the same one unless it
        // was re-parented in between).
        let parent = if e.parent_pid > 0 {
            e.parent_pid
        } else {
            g.parent_pid
        };
        match &g.group {
            Some(group) => self.closed.push((group.clone(), d)),
            None if g.born_since_start => self.unattributed += d,
            None => return true,
        }
        self.owe(parent, cpu_and_faults(&d) + below);
        true
    }

    /// A record of a process born since the start and never sampled: named
    /// by the rules from its comm and uid; else left to its tracked
    /// reaper's children totals but for what they never hold; else, with
    /// `children`, in the group of a parent that exited; else unattributed.
    fn close_unseen(&mut self, e: ProcExit, below: Counts) {
        let named = self.namer.match_and_name(&ProcAttributes {
            name: &e.name,
            cmdline: &[],
            cgroups: &[],
            uid: e.uid,
            pid: e.pid,
            start_time: e.start_time,
        });
        if let Some(g) = named {
            let g = self.names.get(&g);
            trace!(pid = e.pid, group = %g, "exit record of a process never sampled");
            self.closed.push((g, e.totals.as_delta()));
            self.owe(e.parent_pid, cpu_and_faults(&e.totals) + below);
            return;
        }
        if let Some(parent) = self.live_tracked(e.parent_pid) {
            // Its reaper is tracked, and its children totals will hold this
            // process's CPU and faults, and its subtree's, exactly (the
            // scheduler's run time, where a record without delay accounting
            // has only the sampled split). Only what they never hold, I/O
            // and context switches, is taken from the record.
            trace!(pid = e.pid, group = %parent, "exit record of a tracked process's child");
            let rest = e.totals.since(&cpu_and_faults(&e.totals));
            self.closed.push((parent, rest));
            self.owe(e.parent_pid, below);
            return;
        }
        match self.gone.get(&e.parent_pid).and_then(|g| g.group.clone()) {
            Some(g) if self.options.children => {
                self.closed.push((g, e.totals.as_delta()));
            }
            _ => {
                self.unattributed += e.totals.as_delta();
                self.owe(e.parent_pid, cpu_and_faults(&e.totals) + below);
            }
        }
    }

    /// The group of `pid` when a tracked process listed in the last cycle
    /// holds it.
    fn live_tracked(&self, pid: i32) -> Option<Arc<str>> {
        let id = self.pids.get(&pid)?;
        match self.entries.get(id) {
            Some(Slot {
                entry: Entry::Tracked(t),
                last_seen,
            }) if *last_seen == self.cycle || *last_seen + 1 == self.cycle => Some(t.group.clone()),
            _ => None,
        }
    }

    /// Notes that `c` of the CPU and faults the reaper `ppid` will find in
    /// its children totals was already counted: on the reaper when it is
    /// tracked, else held under its pid for its own exit record, which
    /// passes it on to its reaper in turn.
    fn owe(&mut self, ppid: i32, c: Counts) {
        if !self.options.children_accounting || c == Counts::default() || ppid < 1 {
            return;
        }
        if let Some(id) = self.pids.get(&ppid)
            && let Some(Slot {
                entry: Entry::Tracked(p),
                ..
            }) = self.entries.get_mut(id)
        {
            p.add_owed(c);
            return;
        }
        let cycle = self.cycle;
        let slot = self
            .pending
            .entry(ppid)
            .or_insert((Counts::default(), cycle));
        slot.0 += c;
        slot.1 = cycle;
    }

    /// Moves the entries this cycle did not list to the recently gone, and
    /// owes what a tracked one did to its tracked parent (children mode).
    pub(super) fn sweep<P: Proc>(&mut self, cycle: u64, first: SystemTime, procs: &mut [P]) {
        let (owed, left) = self.move_unlisted(cycle, first);
        self.gone.retain(|_, g| g.cycle + GONE_CYCLES > cycle);
        self.pending
            .retain(|_, (_, at)| *at + PENDING_CYCLES > cycle);
        self.pay_owed(owed, cycle);
        if self.options.children_accounting {
            if !left.is_empty() {
                self.follow_adoptions(&left, procs, cycle);
            }
            self.settle_children_growth();
        }
    }

    /// Moves the entries this cycle did not list to the recently gone, for
    /// late exit records; returns what each tracked one owes its parent
    /// (children mode), and the pids that left.
    fn move_unlisted(
        &mut self,
        cycle: u64,
        first: SystemTime,
    ) -> (Vec<(i32, Counts)>, HashSet<i32>) {
        let mut owed: Vec<(i32, Counts)> = Vec::new();
        let mut left = HashSet::new();
        let children_accounting = self.options.children_accounting;
        let gone = &mut self.gone;
        let exec_debts = &mut self.exec_debts;
        self.entries.retain(|id, slot| {
            if slot.last_seen == cycle {
                return true;
            }
            let (g, o) = leaving(*id, &slot.entry, (first, cycle), children_accounting);
            owed.extend(o);
            if let Some(debt) = exec_debts.remove(id) {
                owed.push(debt);
            }
            gone.insert(id.pid, g);
            if children_accounting {
                left.insert(id.pid);
            }
            false
        });
        (owed, left)
    }

    /// The tracked processes listed in this cycle whose parent (as last
    /// read) `left` `/proc` in it were re-parented when that parent
    /// exited; a quiet one's reading repeated the old parent, so its
    /// parent is read afresh (`stat` alone, once per re-parenting): the
    /// reaper it will owe its totals to, should it exit before a full
    /// reading.
    fn follow_adoptions<P: Proc>(&mut self, left: &HashSet<i32>, procs: &mut [P], cycle: u64) {
        for (id, slot) in &mut self.entries {
            let Entry::Tracked(t) = &mut slot.entry else {
                continue;
            };
            if slot.last_seen != cycle || !left.contains(&t.parent_pid) {
                continue;
            }
            // The listing is in pid order on a procfs; not assumed.
            let index = procs
                .binary_search_by_key(&id.pid, |p| p.pid())
                .ok()
                .or_else(|| procs.iter().position(|p| p.pid() == id.pid));
            let Some(proc) = index.and_then(|i| procs.get_mut(i)) else {
                continue;
            };
            match proc.parent_pid() {
                Ok(ppid) => {
                    trace!(pid = id.pid, from = t.parent_pid, to = ppid, "re-parented");
                    t.parent_pid = ppid;
                }
                Err(e) => trace!(pid = id.pid, error = %e, "parent not read after adoption"),
            }
        }
    }

    /// Adds to each tracked parent listed in this cycle what its swept
    /// children owe it: their totals will appear in its children totals,
    /// where they must not count again.
    fn pay_owed(&mut self, owed: Vec<(i32, Counts)>, cycle: u64) {
        for (ppid, o) in owed {
            if let Some(id) = self.pids.get(&ppid)
                && let Some(Slot {
                    entry: Entry::Tracked(p),
                    last_seen,
                }) = self.entries.get_mut(id)
                && *last_seen == cycle
            {
                p.add_owed(o);
            }
        }
    }

    /// Credits each tracked process's group with the growth of its
    /// children totals this cycle, minus what was already counted for
    /// those children (settled here, after the sweep, so that a child
    /// reaped between two cycles is never counted twice).
    fn settle_children_growth(&mut self) {
        for slot in self.entries.values_mut() {
            if let Entry::Tracked(t) = &mut slot.entry
                && let Some(l) = &mut t.ledger
            {
                let growth = std::mem::take(&mut l.children_growth);
                if growth == Counts::default() {
                    continue;
                }
                let credit = growth.since(&l.owed);
                l.owed = l.owed.since(&growth);
                if credit != Counts::default() {
                    self.closed.push((t.group.clone(), credit));
                }
            }
        }
    }
}

/// What the reaper of the tracked process `t`, last read as `last`, will
/// find of it in its children totals that was already counted: its own
/// CPU and faults (its exit record's when one closed it) and its children
/// totals at its exit: what they held when last read, and what exit
/// records counted below it since (still owed here, as it was never seen
/// in them).
pub(super) fn owed_at_exit(t: &TrackedProc, last: Counts) -> Counts {
    let l = t.ledger.as_deref();
    let own = if t.closed {
        l.map(|l| l.record_tail).unwrap_or_default()
    } else {
        cpu_and_faults(&last)
    };
    match l {
        Some(l) => own + l.children_seen + l.owed,
        None => own,
    }
}

/// What is remembered of the process `id` swept in `cycle`, and, for a
/// tracked one in children mode, what it owes its parent: its own CPU and
/// faults (its exit record's when one closed it) and its children totals,
/// all of which the parent's children totals will hold once it reaps it.
fn leaving(
    id: ID,
    entry: &Entry,
    (first, cycle): (SystemTime, u64),
    children_accounting: bool,
) -> (Gone, Option<(i32, Counts)>) {
    let mut owed = None;
    let (group, last, closed, born, parent_pid) = match entry {
        Entry::Tracked(t) => {
            let last = t.reading.as_ref().map(|r| *r.counts()).unwrap_or_default();
            if children_accounting {
                owed = Some((t.parent_pid, owed_at_exit(t, last)));
            }
            (
                Some(t.group.clone()),
                last,
                t.closed,
                t.start > first,
                t.parent_pid,
            )
        }
        Entry::Ignored => (None, Counts::default(), false, false, 0),
    };
    let gone = Gone {
        id,
        group,
        last,
        closed,
        born_since_start: born,
        parent_pid,
        cycle,
    };
    (gone, owed)
}
