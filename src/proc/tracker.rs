//! [`Tracker`]: follows every process across cycles by its (pid, start time)
//! identity, decides its group once (or inherits its ancestor's), and turns
//! successive readings into per-process [`Update`]s with non-negative deltas.
//!
//! The tracker owns all per-process state between cycles and nothing else:
//! which identities are tracked (and under which group, and why), which are
//! ignored, the pid → identity index used to find parents, and the last
//! reading of every tracked process and thread. Each cycle it reads as little
//! as it can: a process it already ignores costs one [`Proc::id`]; a new one
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

use super::{
    CollectErrors, Counts, Delta, ID, MatchNamer, Metrics, Proc, ProcAttributes, ProcError, Source,
    SourceError, States, Static, Thread, ThreadID, ThreadUpdate, Update,
};

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
    },
    /// The process was examined and is not tracked; it is not read again
    /// until it exits.
    Ignored {
        /// Identity of the process now holding the pid.
        id: ID,
    },
}

/// The last reading of one set of counters. `io` is kept apart because it can
/// be unreadable in one cycle and readable in the next: it holds the last
/// *good* (read_bytes, write_bytes), so that an unreadable cycle neither feeds
/// a zero into a difference nor loses what happened meanwhile.
#[derive(Debug, Clone, Copy)]
struct Reading {
    counts: Counts,
    io: Option<(u64, u64)>,
}

impl Reading {
    fn first(counts: &Counts, io_known: bool) -> Reading {
        Reading {
            counts: *counts,
            io: io_known.then_some((counts.read_bytes, counts.write_bytes)),
        }
    }

    /// The whole of `counts` as an increase (first sight of something born
    /// while the tracker runs); io counts only when it is known.
    fn whole(counts: &Counts, io_known: bool) -> Delta {
        let mut d = counts.as_delta();
        if !io_known {
            d.read_bytes = 0;
            d.write_bytes = 0;
        }
        d
    }

    /// The increase since the stored reading, which `counts` then replaces.
    /// io is differenced from the last good value, or not at all this cycle
    /// when it is unknown now (or has never been known: the first known value
    /// becomes the baseline).
    fn advance(&mut self, counts: &Counts, io_known: bool) -> Delta {
        let mut d = counts.since(&self.counts);
        (d.read_bytes, d.write_bytes) = match (io_known, self.io) {
            (true, Some((read, write))) => (
                counts.read_bytes.saturating_sub(read),
                counts.write_bytes.saturating_sub(write),
            ),
            _ => (0, 0),
        };
        self.counts = *counts;
        if io_known {
            self.io = Some((counts.read_bytes, counts.write_bytes));
        }
        d
    }
}

/// One task of a tracked process.
#[derive(Debug)]
struct TrackedThread {
    name: String,
    reading: Reading,
}

/// Everything remembered about one tracked process.
#[derive(Debug)]
struct TrackedProc {
    group: String,
    reason: MatchReason,
    start: SystemTime,
    /// The last successful reading; `None` until the first one succeeds (a
    /// process whose first metrics read failed is tracked, but has no
    /// baseline yet).
    reading: Option<Reading>,
    threads: HashMap<ThreadID, TrackedThread>,
    /// The last update emitted, replayed with zero deltas when a later read
    /// fails, so the group keeps the member (and its gauges) for that cycle.
    last: Option<Update>,
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

/// A process seen for the first time this cycle, before naming.
struct NewProc {
    /// Position in this cycle's listing.
    index: usize,
    id: ID,
    static_info: Static,
}

/// What naming decided for a new process.
#[derive(Debug, Clone)]
enum Decision {
    Track(String, MatchReason),
    Ignore,
}

/// What `task/` gave for a tracked process this cycle.
enum ThreadRead {
    /// Thread detail is off.
    Off,
    /// The tasks were listed (possibly none: no thread detail).
    Listed(Vec<Thread>),
    /// The listing failed; the thread state is kept for the next cycle.
    Failed,
}

/// Follows processes across cycles.
pub struct Tracker {
    namer: Arc<dyn MatchNamer>,
    options: TrackerOptions,
    entries: HashMap<ID, Slot>,
    pids: HashMap<i32, ID>,
    first_update_at: Option<SystemTime>,
    cycle: u64,
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
    /// A tracker naming new processes with `namer`.
    pub fn new(namer: Arc<dyn MatchNamer>, options: TrackerOptions) -> Self {
        Tracker {
            namer,
            options,
            entries: HashMap::new(),
            pids: HashMap::new(),
            first_update_at: None,
            cycle: 0,
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
        let first = *self.first_update_at.get_or_insert(now);
        let mut procs = source.all_procs()?;
        self.cycle += 1;
        let cycle = self.cycle;
        let mut errors = CollectErrors::default();
        let mut updates = Vec::new();
        let mut fresh = Vec::new();

        // Scan: known processes are refreshed in place, new ones only get
        // the cheap reads that naming needs.
        for (index, proc) in procs.iter_mut().enumerate() {
            let id = match proc.id() {
                Ok(id) => id,
                Err(e) => {
                    count_basic_error(&e, proc.pid(), &mut errors);
                    continue;
                }
            };
            if let Some(old) = self.pids.get(&id.pid).copied()
                && old != id
            {
                // The pid was reused: whatever we knew about the previous
                // holder (tracked or ignored) is gone with it.
                self.entries.remove(&old);
                self.pids.remove(&id.pid);
            }
            if let Some(slot) = self.entries.get_mut(&id) {
                slot.last_seen = cycle;
                if let Entry::Tracked(t) = &mut slot.entry
                    && let Some(u) = observe(t, proc, &self.options, first, &mut errors)
                {
                    updates.push(u);
                }
                continue;
            }
            match proc.static_info() {
                Ok(static_info) => {
                    self.pids.insert(id.pid, id);
                    fresh.push(NewProc {
                        index,
                        id,
                        static_info,
                    });
                }
                Err(e) => count_basic_error(&e, id.pid, &mut errors),
            }
        }

        // Naming, after the scan so that children can look at parents that
        // appeared in this same cycle.
        let decisions = self.name_new(&fresh);

        for np in fresh {
            match decisions.get(&np.id) {
                Some(Decision::Track(group, reason)) => {
                    debug!(pid = np.id.pid, group = %group, ?reason, "tracking new process");
                    let mut t = Box::new(TrackedProc {
                        group: group.clone(),
                        reason: *reason,
                        start: np.static_info.start_time,
                        reading: None,
                        threads: HashMap::new(),
                        last: None,
                    });
                    let Some(proc) = procs.get_mut(np.index) else {
                        continue;
                    };
                    match proc.metrics() {
                        // Exited since it was listed: nothing to remember.
                        Err(e) if e.is_gone() => continue,
                        Err(e) => {
                            // Tracked without a baseline: the next good read is
                            // its first sighting, so nothing is counted twice.
                            count_metrics_error(&e, np.id.pid, &mut errors);
                        }
                        Ok(metrics) => {
                            updates.push(observe_metrics(
                                &mut t,
                                metrics,
                                proc,
                                &self.options,
                                first,
                                &mut errors,
                            ));
                        }
                    }
                    self.entries.insert(
                        np.id,
                        Slot {
                            last_seen: cycle,
                            entry: Entry::Tracked(t),
                        },
                    );
                }
                Some(Decision::Ignore) | None => {
                    if self.remember_ignored(np.static_info.start_time, now) {
                        trace!(pid = np.id.pid, "ignoring new process");
                        self.entries.insert(
                            np.id,
                            Slot {
                                last_seen: cycle,
                                entry: Entry::Ignored,
                            },
                        );
                    }
                }
            }
        }

        // Sweep: whatever this cycle did not list has exited.
        self.entries.retain(|_, slot| slot.last_seen == cycle);
        let entries = &self.entries;
        self.pids.retain(|_, id| entries.contains_key(id));

        source.recycle(procs);
        Ok((errors, updates))
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

    /// Decides the group of every new process: the namer first, then (with
    /// `children`) the nearest tracked ancestor.
    fn name_new(&self, fresh: &[NewProc]) -> HashMap<ID, Decision> {
        let mut decisions = HashMap::with_capacity(fresh.len());
        for np in fresh {
            let s = &np.static_info;
            let attrs = ProcAttributes {
                name: &s.name,
                cmdline: &s.cmdline,
                cgroups: &s.cgroups,
                uid: s.effective_uid,
                pid: np.id.pid,
                start_time: s.start_time,
            };
            if let Some(group) = self.namer.match_and_name(&attrs) {
                decisions.insert(np.id, Decision::Track(group, MatchReason::Namer));
            }
        }
        if self.options.children {
            let by_id: HashMap<ID, usize> =
                fresh.iter().enumerate().map(|(i, np)| (np.id, i)).collect();
            for i in 0..fresh.len() {
                if !decisions.contains_key(&fresh[i].id) {
                    self.inherit(i, fresh, &by_id, &mut decisions);
                }
            }
        }
        decisions
    }

    /// Walks up from `fresh[start]` through parents that are new and not yet
    /// decided, until an ancestor whose fate is known: a tracked one gives
    /// its group to the whole chain, anything else (ignored, unknown, pid 0,
    /// a loop in bogus data) leaves the chain ignored. Iterative, so a long
    /// chain of new processes cannot exhaust the stack.
    fn inherit(
        &self,
        start: usize,
        fresh: &[NewProc],
        by_id: &HashMap<ID, usize>,
        decisions: &mut HashMap<ID, Decision>,
    ) {
        let mut chain = vec![start];
        let mut on_chain = HashSet::from([fresh[start].id]);
        let found = loop {
            let Some(&last) = chain.last() else {
                break None;
            };
            let ppid = fresh[last].static_info.parent_pid;
            if ppid < 1 {
                break None;
            }
            let Some(parent) = self.pids.get(&ppid).copied() else {
                break None;
            };
            if let Some(d) = decisions.get(&parent) {
                break match d {
                    Decision::Track(group, _) => Some((group.clone(), parent)),
                    Decision::Ignore => None,
                };
            }
            if let Some(slot) = self.entries.get(&parent) {
                break match &slot.entry {
                    Entry::Tracked(t) => Some((t.group.clone(), parent)),
                    Entry::Ignored => None,
                };
            }
            match by_id.get(&parent) {
                Some(&i) if on_chain.insert(parent) => chain.push(i),
                _ => break None,
            }
        };
        match found {
            Some((group, mut parent)) => {
                for &i in chain.iter().rev() {
                    let id = fresh[i].id;
                    decisions.insert(
                        id,
                        Decision::Track(group.clone(), MatchReason::Parent(parent)),
                    );
                    parent = id;
                }
            }
            None => {
                for &i in &chain {
                    decisions.insert(fresh[i].id, Decision::Ignore);
                }
            }
        }
    }

    /// Whether an unmatched process is remembered as ignored, or left to be
    /// named again next cycle (recheck, within the time limit if any).
    fn remember_ignored(&self, start: SystemTime, now: SystemTime) -> bool {
        if !self.options.recheck {
            return true;
        }
        if self.options.recheck_time_limit.is_zero() {
            return false;
        }
        match start.checked_add(self.options.recheck_time_limit) {
            Some(deadline) => deadline <= now,
            None => false,
        }
    }
}

/// `id()` or `static_info()` failed: an exited process is churn; a denied
/// read of an untracked process is expected when not root; anything else
/// is a read error.
fn count_basic_error(e: &ProcError, pid: i32, errors: &mut CollectErrors) {
    match e {
        ProcError::Gone { .. } | ProcError::PermissionDenied { .. } => {
            trace!(pid, error = %e, "skipping process");
        }
        ProcError::Io { .. } | ProcError::Parse { .. } => {
            debug!(pid, error = %e, "cannot read process");
            errors.read += 1;
        }
    }
}

/// `metrics()` of a tracked process failed for a reason other than its exit.
fn count_metrics_error(e: &ProcError, pid: i32, errors: &mut CollectErrors) {
    debug!(pid, error = %e, "cannot read process metrics");
    if matches!(e, ProcError::PermissionDenied { .. }) {
        errors.partial += 1;
    } else {
        errors.read += 1;
    }
}

/// Reads a known tracked process and returns its update for this cycle:
/// `None` when it exited while being read (or has never been read
/// successfully and fails again), the last update with zero deltas when the
/// read failed for another reason.
fn observe<P: Proc>(
    t: &mut TrackedProc,
    proc: &mut P,
    options: &TrackerOptions,
    first: SystemTime,
    errors: &mut CollectErrors,
) -> Option<Update> {
    match proc.metrics() {
        Ok(metrics) => Some(observe_metrics(t, metrics, proc, options, first, errors)),
        Err(e) if e.is_gone() => None,
        Err(e) => {
            count_metrics_error(&e, proc.pid(), errors);
            t.last.as_ref().map(without_deltas)
        }
    }
}

/// An update carrying the same gauges and zero increases.
fn without_deltas(u: &Update) -> Update {
    let mut u = u.clone();
    u.latest = Delta::default();
    for th in &mut u.threads {
        th.latest = Delta::default();
    }
    u
}

/// Folds a successful metrics reading (and the tasks, when wanted) into the
/// process's state and builds its update.
fn observe_metrics<P: Proc>(
    t: &mut TrackedProc,
    metrics: Metrics,
    proc: &mut P,
    options: &TrackerOptions,
    first: SystemTime,
    errors: &mut CollectErrors,
) -> Update {
    let mut soft_error = metrics.soft_errors > 0;
    let thread_read = if options.threads {
        match proc.threads() {
            Ok(list) => ThreadRead::Listed(list),
            Err(e) if e.is_gone() => ThreadRead::Failed,
            Err(e) => {
                debug!(pid = proc.pid(), error = %e, "cannot read process threads");
                soft_error = true;
                ThreadRead::Failed
            }
        }
    } else {
        ThreadRead::Off
    };
    if soft_error {
        errors.partial += 1;
    }

    // A process seen for the first time that was born while the tracker runs
    // has all its consumption (and its threads') counted now; an older one
    // counts from here on.
    let born_since_start = t.reading.is_none() && t.start > first;
    let mut latest = match &mut t.reading {
        Some(r) => r.advance(&metrics.counts, metrics.io_known),
        None => {
            t.reading = Some(Reading::first(&metrics.counts, metrics.io_known));
            if born_since_start {
                Reading::whole(&metrics.counts, metrics.io_known)
            } else {
                Delta::default()
            }
        }
    };

    let mut states = States::default();
    let mut wchans = BTreeMap::new();
    let mut thread_updates = Vec::new();
    match thread_read {
        ThreadRead::Listed(list) if !list.is_empty() => {
            // Context switches are summed from per-thread increases, so a
            // thread that exits takes nothing away; each thread counts once
            // in states and wchans.
            let mut ctx = (0u64, 0u64);
            let mut next = HashMap::with_capacity(list.len());
            for th in list {
                let d = match t.threads.remove(&th.id) {
                    Some(mut tt) => {
                        let d = tt.reading.advance(&th.counts, th.io_known);
                        tt.name.clone_from(&th.name);
                        next.insert(th.id, tt);
                        d
                    }
                    None => {
                        next.insert(
                            th.id,
                            TrackedThread {
                                name: th.name.clone(),
                                reading: Reading::first(&th.counts, th.io_known),
                            },
                        );
                        // A thread new in a known process counts from its first
                        // sighting: its start cannot be placed against the last
                        // cycle. The threads of a process born since the start
                        // are counted whole, like the process itself.
                        if born_since_start {
                            Reading::whole(&th.counts, th.io_known)
                        } else {
                            Delta::default()
                        }
                    }
                };
                ctx.0 = ctx.0.saturating_add(d.ctx_switch_voluntary);
                ctx.1 = ctx.1.saturating_add(d.ctx_switch_nonvoluntary);
                states += th.states;
                if !th.wchan.is_empty() {
                    *wchans.entry(th.wchan).or_insert(0) += 1;
                }
                thread_updates.push(ThreadUpdate {
                    thread_name: th.name,
                    latest: d,
                });
            }
            t.threads = next;
            latest.ctx_switch_voluntary = ctx.0;
            latest.ctx_switch_nonvoluntary = ctx.1;
        }
        ThreadRead::Failed => {
            if !t.threads.is_empty() {
                // The per-thread baselines are kept, so the next good listing
                // covers this cycle; the process-level values would count the
                // main thread twice.
                latest.ctx_switch_voluntary = 0;
                latest.ctx_switch_nonvoluntary = 0;
                thread_updates = t
                    .threads
                    .values()
                    .map(|tt| ThreadUpdate {
                        thread_name: tt.name.clone(),
                        latest: Delta::default(),
                    })
                    .collect();
            }
            states = metrics.states;
            own_wchan(&metrics.wchan, &mut wchans);
        }
        ThreadRead::Off | ThreadRead::Listed(_) => {
            t.threads.clear();
            states = metrics.states;
            own_wchan(&metrics.wchan, &mut wchans);
        }
    }

    let update = Update {
        group_name: t.group.clone(),
        latest,
        memory: metrics.memory,
        filedesc: metrics.filedesc,
        start: t.start,
        num_threads: metrics.num_threads,
        states,
        wchans,
        threads: thread_updates,
    };
    t.last = Some(update.clone());
    update
}

fn own_wchan(wchan: &str, wchans: &mut BTreeMap<String, u64>) {
    if !wchan.is_empty() {
        wchans.insert(wchan.to_string(), 1);
    }
}
