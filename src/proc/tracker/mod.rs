//! [`Tracker`]: follows every process across cycles by its (pid, start time)
//! identity, decides its group once (or inherits its ancestor's), and turns
//! successive readings into per-process [`Update`]s with non-negative deltas.
//!
//! The tracker owns all per-process state between cycles and nothing else:
//! which identities are tracked (and under which group, and why), which are
//! ignored, the pid → identity index used to find parents, and the last
//! reading of every tracked process and thread. Each cycle it reads as little
//! as it can: a process it already ignores costs one [`Proc::id`] (and a
//! naming now and then, to catch an `exec`: see [`ignored`]); a new one
//! adds [`Proc::static_info`] (enough to name it); only tracked processes are
//! read in full, and their tasks only when thread detail is on.
//!
//! Every identity, tracked or ignored, carries the number of the last cycle
//! that listed it, and everything not listed in a cycle is dropped at its end,
//! so the state is bounded by the processes alive now, whatever the churn.
//!
//! Reads that fail are handled so that no counter is ever fed a wrong
//! difference: a process that exits while being read is simply skipped; a
//! tracked process whose read fails for another reason keeps its record and
//! is reported with its last gauges and a zero increase (so its group neither
//! loses a member for one cycle nor counts its lifetime again afterwards); an
//! unreadable `io` keeps the last good byte counts; a failed `task/` listing
//! keeps the per-thread baselines for the next good one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::{debug, trace};

mod accounts;
mod ignored;
mod inherit;
mod observe;
mod reading;
mod rename;
mod threads;

pub use self::accounts::Rename;
use self::accounts::{Gone, HISTORY, Ledger};

use self::inherit::NewProc;
use self::observe::{Ctx, count_basic_error, first_sight, observe, without_deltas};

use self::reading::Reading;
use self::threads::Threads;
use super::FastMap;
use super::names::Names;
use super::{
    CollectErrors, Counts, Delta, Filedesc, ID, MatchNamer, Memory, Metrics, Proc, ProcAttributes,
    ProcError, ProcExit, Source, SourceError, States, TaskRead, Update,
};

/// The shared names no longer used are dropped once in this many cycles.
const NAMES_SWEEP_CYCLES: u64 = 16;

/// How the tracker follows processes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackerOptions {
    /// Untracked descendants join the group of their nearest tracked ancestor.
    pub children: bool,
    /// Read `task/` for per-thread detail.
    pub threads: bool,
    /// Re-run the namer on processes not yet tracked, each cycle.
    pub recheck: bool,
    /// With `recheck`, only for processes younger than this (zero: always).
    pub recheck_time_limit: Duration,
    /// Attribute the growth of a tracked process's reaped-children totals
    /// (`cutime`, `cstime`, `cminflt`, `cmajflt`) to its group, minus what
    /// was already counted for those children (from their samples or
    /// their exit records), so nothing counts twice. With exit records it
    /// reconciles them: a reaper's children totals hold the scheduler's
    /// exact run time, where a record (without delay accounting) holds
    /// only the tick-sampled split.
    pub children_accounting: bool,
}

/// Sizes of the tracker's internal maps (for tests and self-metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackerStats {
    /// Processes tracked in a group.
    pub tracked: usize,
    /// Processes remembered as ignored.
    pub ignored: usize,
    /// Entries of the pid → identity index.
    pub pids: usize,
    /// Threads remembered across all tracked processes.
    pub threads: usize,
}

/// Why a tracked process belongs to its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchReason {
    /// The namer matched the process itself.
    Namer,
    /// The namer did not match it; it inherited the group of this parent
    /// (its direct parent, which may itself have inherited it).
    Parent(ID),
}

/// What the tracker knows about a pid, for status reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership<'a> {
    /// The process is tracked in `group`.
    Tracked {
        /// Identity of the process now holding the pid.
        id: ID,
        /// Its group.
        group: &'a str,
        /// Why it is in that group.
        reason: MatchReason,
        /// Its changes of program (oldest first, the last few).
        history: &'a [Rename],
    },
    /// The process was examined and is not tracked; it is named again only
    /// now and then, to catch an `exec` into a program the rules take.
    Ignored {
        /// Identity of the process now holding the pid.
        id: ID,
    },
}

/// The gauges of the last update emitted for a process, replayed with zero
/// increases when a later read fails, so the group keeps the member (and
/// its gauges) for that cycle. Refilled in place each cycle.
#[derive(Debug, Default)]
struct LastGauges {
    memory: Memory,
    filedesc: Filedesc,
    num_threads: u64,
    /// running, sleeping, waiting, zombie, other (see [`States`]).
    states: [u32; 5],
    /// Threads per wait channel, in name order (as in the update's map);
    /// an exact-size slice, replaced only when the update's differs.
    wchans: Box<[(Arc<str>, u64)]>,
}

impl LastGauges {
    fn record(&mut self, u: &Update, names: &mut Names) {
        self.memory = u.memory;
        self.filedesc = u.filedesc;
        self.num_threads = u.num_threads;
        let s = &u.states;
        let narrow = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        self.states = [s.running, s.sleeping, s.waiting, s.zombie, s.other].map(narrow);
        let same = self.wchans.len() == u.wchans.len()
            && self
                .wchans
                .iter()
                .zip(&u.wchans)
                .all(|((a, m), (b, n))| **a == **b && m == n);
        if !same {
            self.wchans = u.wchans.iter().map(|(w, n)| (names.get(w), *n)).collect();
        }
    }
}

/// Everything remembered about one tracked process.
#[derive(Debug)]
struct TrackedProc {
    /// Shared with the other members of the group.
    group: Arc<str>,
    reason: MatchReason,
    start: SystemTime,
    /// The last successful reading; `None` until the first one succeeds (a
    /// process whose first metrics read failed is tracked, but has no
    /// baseline yet).
    reading: Option<Reading>,
    /// Its tasks.
    threads: Threads,
    /// The gauges of the last update emitted; `None` before the first.
    last: Option<LastGauges>,
    /// comm when it was (last) named: a different one means an `exec`.
    name: Box<str>,
    /// Its parent as of its last reading (or its exit record): whom it owes
    /// its totals when it leaves, since that parent reaps it. It starts as
    /// the parent at first sight and follows a re-parenting (the parent
    /// exited first, and init or a subreaper adopted it). Naming does not
    /// look at it: inheritance takes the parent at first sight.
    parent_pid: i32,
    /// Whether its reaped-children totals have been read (children
    /// accounting): until then their growth cannot be told.
    children_read: bool,
    /// An exit record closed its account: nothing more is counted.
    closed: bool,
    /// Its children totals and what is owed against them; `None` while
    /// all of it is zero.
    ledger: Option<Box<Ledger>>,
    /// Its changes of program.
    history: Vec<Rename>,
}

#[derive(Debug)]
enum Entry {
    Tracked(Box<TrackedProc>),
    Ignored,
}

#[derive(Debug)]
struct Slot {
    /// The number of the last cycle that listed this identity.
    last_seen: u64,
    entry: Entry,
}

/// What a cycle's helpers share: when the tracker started, the cycle's
/// number, and its error counts.
struct CycleState<'a> {
    first: SystemTime,
    /// The cycle's time.
    now: SystemTime,
    cycle: u64,
    errors: &'a mut CollectErrors,
    /// Tracked processes whose comm changed (listing index, identity).
    renamed: Vec<(usize, ID)>,
}

/// What `task/` gave for a tracked process this cycle.
enum ThreadRead {
    /// Thread detail is off.
    Off,
    /// The tasks were listed (possibly none: no thread detail).
    Listed(Vec<TaskRead>),
    /// The listing failed; the thread state is kept for the next cycle.
    Failed,
}

/// Follows processes across cycles.
pub struct Tracker {
    namer: Arc<dyn MatchNamer>,
    /// Shared group names, thread names and wait channels.
    names: Names,
    options: TrackerOptions,
    entries: FastMap<ID, Slot>,
    pids: FastMap<i32, ID>,
    first_update_at: Option<SystemTime>,
    cycle: u64,
    /// The namer was replaced: known processes are named again next cycle.
    rename_pending: bool,
    /// Exit records waiting for the next cycle.
    exits: Vec<ProcExit>,
    /// Attributions of the last cycle outside the updates.
    closed: Vec<(Arc<str>, Delta)>,
    /// Exits no rule took, since the start.
    unattributed: Counts,
    /// Processes swept in the last few cycles, for late exit records.
    gone: FastMap<i32, Gone>,
    /// CPU and faults counted from exit records below a process that is
    /// not tracked, by its pid, with the cycle of the last addition.
    pending: FastMap<i32, (Counts, u64)>,
    /// Ignored processes first seen in the last few cycles, with that
    /// cycle: named again each cycle (see [`ignored`]).
    young_ignored: FastMap<ID, u64>,
    /// Processes ignored since an `exec` into a program no rule takes
    /// (children mode): their parent, and the CPU and faults they counted
    /// while tracked, owed to that parent when they leave.
    exec_debts: FastMap<ID, (i32, Counts)>,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("options", &self.options)
            .field("stats", &self.stats())
            .field("first_update_at", &self.first_update_at)
            .field("cycle", &self.cycle)
            .finish_non_exhaustive()
    }
}

impl Tracker {
    /// What observing a process needs from this cycle, for a process that
    /// is not in `entries` yet (a known one is observed while its entry is
    /// borrowed, and builds its `Ctx` from the fields).
    fn ctx<'a>(
        &'a mut self,
        first: SystemTime,
        cycle: u64,
        errors: &'a mut CollectErrors,
    ) -> Ctx<'a> {
        Ctx {
            options: &self.options,
            first,
            cycle,
            errors,
            names: &mut self.names,
        }
    }

    /// A tracker naming new processes with `namer`.
    pub fn new(namer: Arc<dyn MatchNamer>, options: TrackerOptions) -> Self {
        Tracker {
            namer,
            options,
            entries: FastMap::default(),
            pids: FastMap::default(),
            first_update_at: None,
            cycle: 0,
            names: Names::default(),
            rename_pending: false,
            exits: Vec::new(),
            closed: Vec::new(),
            unattributed: Counts::default(),
            gone: FastMap::default(),
            pending: FastMap::default(),
            young_ignored: FastMap::default(),
            exec_debts: FastMap::default(),
        }
    }

    /// The options in force.
    pub fn options(&self) -> TrackerOptions {
        self.options
    }

    /// The `now` of the first call to [`Tracker::update`]. A process that
    /// started after it has all of its consumption counted on first sight;
    /// one that started before counts from its first sighting on.
    pub fn first_update_at(&self) -> Option<SystemTime> {
        self.first_update_at
    }

    /// Runs one cycle over the processes of `source` at time `now`.
    ///
    /// Returns one [`Update`] per tracked process listed in this cycle (in no
    /// particular order) and the non-fatal errors met. An error means the
    /// listing itself failed: nothing was read and no state changed.
    pub fn update<S: Source>(
        &mut self,
        source: &mut S,
        now: SystemTime,
    ) -> Result<(CollectErrors, Vec<Update>), SourceError> {
        let mut updates = Vec::new();
        let errors = self.update_into(source, now, &mut updates)?;
        Ok((errors, updates))
    }

    /// [`Tracker::update`] appending the updates to `updates`, so that a
    /// caller running cycle after cycle can reuse one vector.
    pub fn update_into<S: Source>(
        &mut self,
        source: &mut S,
        now: SystemTime,
        updates: &mut Vec<Update>,
    ) -> Result<CollectErrors, SourceError> {
        self.update_with(source, now, |u| updates.push(u))
    }

    /// [`Tracker::update`] handing each update to `sink` as soon as it is
    /// made, so that a caller that folds them (the grouper) never holds the
    /// updates of every process at once.
    pub fn update_with<S: Source>(
        &mut self,
        source: &mut S,
        now: SystemTime,
        mut sink: impl FnMut(Update),
    ) -> Result<CollectErrors, SourceError> {
        let first = *self.first_update_at.get_or_insert(now);
        let mut procs = source.all_procs()?;
        self.cycle += 1;
        let cycle = self.cycle;
        let mut errors = CollectErrors::default();
        let mut fresh = Vec::new();
        self.closed.clear();
        // Exits first: a record closes the account of the last sample.
        self.close_exits(first);

        // Scan: known processes are refreshed in place; new ones get the
        // cheap reads that naming needs, and the rest only if the namer
        // tracks them. Unmatched ones wait for the inheritance pass.
        let mut cycle_ctx = CycleState {
            first,
            now,
            cycle,
            errors: &mut errors,
            renamed: Vec::new(),
        };
        for (index, proc) in procs.iter_mut().enumerate() {
            self.scan(index, proc, &mut cycle_ctx, &mut fresh, &mut sink);
        }

        // Inheritance, after the scan so that children can look at parents
        // that appeared in this same cycle.
        self.settle_new(&mut procs, fresh, now, &mut cycle_ctx, &mut sink);
        self.rename_pending = false;

        // Programs changed by an exec are named again.
        for (index, id) in std::mem::take(&mut cycle_ctx.renamed) {
            if let Some(proc) = procs.get_mut(index) {
                self.rename(proc, id, now);
            }
        }

        // Sweep: whatever this cycle did not list has exited.
        self.sweep(cycle, first, &mut procs);
        self.age_ignored(cycle);
        if cycle.is_multiple_of(NAMES_SWEEP_CYCLES) {
            self.names.sweep();
        }
        let entries = &self.entries;
        self.pids.retain(|_, id| entries.contains_key(id));
        if !self.exec_debts.is_empty() {
            // A debt lives as long as its process stays ignored.
            self.exec_debts.retain(|id, _| {
                matches!(
                    entries.get(id),
                    Some(Slot {
                        entry: Entry::Ignored,
                        ..
                    })
                )
            });
        }

        source.recycle(procs);
        Ok(errors)
    }

    /// One process of the listing: a known one is observed, a new one is
    /// named (and tracked from its first sighting) or left for the
    /// inheritance pass in `fresh`.
    fn scan<P: Proc>(
        &mut self,
        index: usize,
        proc: &mut P,
        state: &mut CycleState<'_>,
        fresh: &mut Vec<NewProc>,
        sink: &mut impl FnMut(Update),
    ) {
        let id = match proc.id() {
            Ok(id) => id,
            Err(e) => {
                self.keep_unreadable(proc.pid(), &e, state, sink);
                return;
            }
        };
        self.forget_reused_pid(id);
        if self.rename_pending
            && self.entries.contains_key(&id)
            && self.rename_known(id, proc, state.now, state.cycle, state.errors, sink)
        {
            return;
        }
        if self.observe_known(index, id, proc, state, sink) {
            return;
        }
        self.meet(index, id, proc, state, fresh, sink);
    }

    /// `pid` could not even be identified this cycle. Still there but
    /// unreadable this time, a known process keeps its place and reports
    /// its last values with no increase, as when its metrics fail: swept,
    /// it would be new next cycle and, born after the agent, have its
    /// whole life counted a second time.
    fn keep_unreadable(
        &mut self,
        pid: i32,
        e: &ProcError,
        state: &mut CycleState<'_>,
        sink: &mut impl FnMut(Update),
    ) {
        count_basic_error(e, pid, state.errors);
        if !e.is_gone()
            && let Some(slot) = self.pids.get(&pid).and_then(|id| self.entries.get_mut(id))
        {
            slot.last_seen = state.cycle;
            if let Entry::Tracked(t) = &slot.entry
                && let Some(u) = without_deltas(t)
            {
                sink(u);
            }
        }
    }

    /// Drops what was known about an earlier holder of `id`'s pid (tracked
    /// or ignored): a reused pid is another process, which must not
    /// inherit its predecessor's group or readings.
    fn forget_reused_pid(&mut self, id: ID) {
        if let Some(old) = self.pids.get(&id.pid).copied()
            && old != id
        {
            self.entries.remove(&old);
            self.pids.remove(&id.pid);
        }
    }

    /// Observes `id` when the tracker already knows it: a tracked process
    /// is read and reported (and queued for naming again when its comm
    /// changed), an ignored one marked as listed and named again when it
    /// is due (see [`ignored`]). `false` when `id` is new, so that the
    /// caller names it. One lookup for a tracked process, the common case.
    fn observe_known<P: Proc>(
        &mut self,
        index: usize,
        id: ID,
        proc: &mut P,
        state: &mut CycleState<'_>,
        sink: &mut impl FnMut(Update),
    ) -> bool {
        let Some(slot) = self.entries.get_mut(&id) else {
            return false;
        };
        slot.last_seen = state.cycle;
        if let Entry::Ignored = slot.entry {
            self.recheck_ignored(id, proc, (state.now, state.cycle), state.errors, sink);
            return true;
        }
        if let Entry::Tracked(t) = &mut slot.entry
            && let Some(u) = observe(
                t,
                proc,
                &mut Ctx {
                    options: &self.options,
                    first: state.first,
                    cycle: state.cycle,
                    errors: state.errors,
                    names: &mut self.names,
                },
            )
        {
            sink(u);
            if let Some(comm) = proc.comm()
                && *comm != *t.name
            {
                state.renamed.push((index, id));
            }
        }
        true
    }

    /// A process seen for the first time: the cheap reads that naming
    /// needs, then, when the namer tracks it, its first full reading; an
    /// unmatched one waits in `fresh` for the inheritance pass.
    fn meet<P: Proc>(
        &mut self,
        index: usize,
        id: ID,
        proc: &mut P,
        state: &mut CycleState<'_>,
        fresh: &mut Vec<NewProc>,
        sink: &mut impl FnMut(Update),
    ) {
        let s = match proc.static_info() {
            Ok(s) => s,
            Err(e) => {
                count_basic_error(&e, id.pid, state.errors);
                return;
            }
        };
        self.pids.insert(id.pid, id);
        match self.namer.match_and_name(&s.attributes(id.pid)) {
            Some(group) => {
                let group = self.names.get(&group);
                let mut ctx = self.ctx(state.first, state.cycle, state.errors);
                if let Some(slot) = first_sight(
                    proc,
                    id,
                    (s.start_time, &s.name, s.parent_pid),
                    group,
                    MatchReason::Namer,
                    &mut ctx,
                    sink,
                ) {
                    self.entries.insert(id, slot);
                }
            }
            None => fresh.push(NewProc {
                index,
                id,
                parent_pid: s.parent_pid,
                start_time: s.start_time,
                name: s.name,
            }),
        }
    }

    /// Sizes of the internal maps.
    pub fn stats(&self) -> TrackerStats {
        let mut stats = TrackerStats {
            pids: self.pids.len(),
            ..TrackerStats::default()
        };
        for slot in self.entries.values() {
            match &slot.entry {
                Entry::Tracked(t) => {
                    stats.tracked += 1;
                    stats.threads += t.threads.len();
                }
                Entry::Ignored => stats.ignored += 1,
            }
        }
        stats
    }

    /// What the tracker knows about the process holding `pid` (as of the
    /// last cycle): tracked in a group (and why), ignored, or `None` when it
    /// is unknown.
    pub fn membership(&self, pid: i32) -> Option<Membership<'_>> {
        let id = *self.pids.get(&pid)?;
        match &self.entries.get(&id)?.entry {
            Entry::Tracked(t) => Some(Membership::Tracked {
                id,
                group: &t.group,
                reason: t.reason,
                history: &t.history,
            }),
            Entry::Ignored => Some(Membership::Ignored { id }),
        }
    }

    /// The group of the process holding `pid`, when it is tracked.
    pub fn group_of(&self, pid: i32) -> Option<&str> {
        match self.membership(pid)? {
            Membership::Tracked { group, .. } => Some(group),
            Membership::Ignored { .. } => None,
        }
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// A host of 5,000 processes keeps 5,000 of these: the accounting
    /// totals, zero for most processes, stay out of line (inline they
    /// made it 584 bytes on x86-64).
    #[test]
    fn a_tracked_process_keeps_its_ledger_out_of_line() {
        let size = size_of::<TrackedProc>();
        assert!(size < 400, "TrackedProc is {size} bytes");
    }
}
