//! [`Grouper`]: adds the tracker's per-process updates up per group name,
//! keeping counters that never decrease while processes come and go.
//!
//! The grouper owns the history of every group: its counters since the agent
//! started and, per thread name, the counters of the threads of that name.
//! A group's counters are that history plus the increases reported this
//! cycle, so a member exiting takes nothing away. A thread name keeps its
//! history as long as its group exists, even in cycles where no live thread
//! carries it (it is then reported with zero threads), so a name that comes
//! and goes never restarts from zero.
//!
//! It also guards cardinality. A rule whose template makes one group per
//! process (`{{.PID}}`, `{{.StartTime}}`) would otherwise grow the history,
//! and every exported metric, without bound. At most
//! [`GrouperOptions::max_groups`] named groups are kept: a group is admitted
//! when it first appears while there is room (in name order within a cycle)
//! and keeps its place as long as it is remembered; the members of any
//! further group are added up in the one group [`OVERFLOW_NAME`]. Likewise a
//! group keeps at most [`GrouperOptions::max_thread_names`] thread names and
//! adds further threads up under the thread name [`OVERFLOW_NAME`]. A place
//! is freed only when a group is forgotten (`remove_empty_groups`), so an
//! admitted group's counters never move to the overflow group; a group that
//! was folded may get a place later and then counts from there on.
//! The first time a cap is hit the grouper logs one warning naming the group
//! and, when the namer can say (see [`MatchNamer::explain`]), the rule that
//! made it; [`Grouper::overflow`] reports the folding of the last cycle.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use super::{
    CollectErrors, Counts, Delta, Explanation, Group, GroupByName, MatchNamer, ProcAttributes,
    Source, SourceError, Threads, Tracker, TrackerOptions, Update,
};

/// The group that takes the processes of every group beyond
/// [`GrouperOptions::max_groups`], and the thread name that takes the
/// threads of every name beyond [`GrouperOptions::max_thread_names`].
pub const OVERFLOW_NAME: &str = "procgroups.overflow";

/// Default of [`GrouperOptions::max_groups`].
pub const DEFAULT_MAX_GROUPS: usize = 1000;

/// Default of [`GrouperOptions::max_thread_names`].
pub const DEFAULT_MAX_THREAD_NAMES: usize = 100;

/// How the grouper aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrouperOptions {
    /// Options of the inner tracker.
    pub tracker: TrackerOptions,
    /// Forget a group when its last process exits (its counters restart at 0
    /// if it comes back).
    pub remove_empty_groups: bool,
    /// At most this many named groups are reported (the overflow group comes
    /// on top); the members of further groups are added up in
    /// [`OVERFLOW_NAME`].
    pub max_groups: usize,
    /// At most this many thread names are reported per group (the overflow
    /// name comes on top); further threads are added up under
    /// [`OVERFLOW_NAME`].
    pub max_thread_names: usize,
    /// Without `remove_empty_groups`: forget a group once it has had no
    /// process for this long (`None`: keep it for ever, as
    /// process-exporter does). A forgotten group is no longer reported;
    /// its totals are set aside (for at most `max_groups` groups, the
    /// longest forgotten go first) and resume if it comes back, so that a
    /// cumulative counter, whose start time is the agent's, never goes
    /// backwards.
    pub empty_group_ttl: Option<Duration>,
}

impl Default for GrouperOptions {
    fn default() -> Self {
        GrouperOptions {
            tracker: TrackerOptions::default(),
            remove_empty_groups: false,
            max_groups: DEFAULT_MAX_GROUPS,
            max_thread_names: DEFAULT_MAX_THREAD_NAMES,
            empty_group_ttl: None,
        }
    }
}

/// What the caps folded into [`OVERFLOW_NAME`] in the last cycle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overflow {
    /// Group names whose processes were added up in the overflow group.
    pub groups: usize,
    /// The first of them, in name order.
    pub example_group: Option<String>,
    /// Why the namer made a group that did not fit: its rule and template,
    /// when the namer can say. Kept from the first time it was known.
    pub cause: Option<Explanation>,
    /// Thread names (summed over groups) whose threads were added up under
    /// the overflow thread name.
    pub thread_names: usize,
    /// The first group, in name order, that had thread names folded.
    pub example_thread_group: Option<String>,
}

impl Overflow {
    /// True when nothing was folded.
    pub fn is_empty(&self) -> bool {
        self.groups == 0 && self.thread_names == 0
    }
}

/// Wraps the namer to learn why it named what it named, while that may be
/// needed: when the group cap may be reached in this cycle and it has not
/// been reported yet. Disarmed, it costs one atomic load per new process.
struct Witness {
    inner: Arc<dyn MatchNamer>,
    armed: AtomicBool,
    /// The first explanation of each group named since the last `take`.
    seen: Mutex<HashMap<String, Explanation>>,
}

impl Witness {
    /// A disarmed witness of `inner`.
    fn around(inner: Arc<dyn MatchNamer>) -> Arc<Self> {
        Arc::new(Witness {
            inner,
            armed: AtomicBool::new(false),
            seen: Mutex::new(HashMap::new()),
        })
    }

    fn arm(&self, on: bool) {
        self.armed.store(on, Ordering::Relaxed);
    }

    fn take(&self) -> HashMap<String, Explanation> {
        std::mem::take(&mut *self.seen.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl MatchNamer for Witness {
    fn match_and_name(&self, attrs: &ProcAttributes<'_>) -> Option<String> {
        if !self.armed.load(Ordering::Relaxed) {
            return self.inner.match_and_name(attrs);
        }
        let e = self.inner.explain(attrs);
        let group = e.group.clone();
        if let Some(g) = &group {
            self.seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(g.clone())
                .or_insert(e);
        }
        group
    }

    fn explain(&self, attrs: &ProcAttributes<'_>) -> Explanation {
        self.inner.explain(attrs)
    }

    fn describe(&self) -> Vec<String> {
        self.inner.describe()
    }
}

/// What is remembered about a group between cycles.
#[derive(Debug, Default)]
struct History {
    /// Totals since the group first appeared.
    counts: Counts,
    /// Totals per thread name.
    threads: BTreeMap<String, Counts>,
    /// Since when the group has had no process (`None` while it has one).
    empty_since: Option<SystemTime>,
    /// Some member's io has been readable: the io totals are measurements
    /// from then on, whoever the members are later.
    io_known: bool,
}

impl History {
    /// Every thread name the group has had, with its totals and the number
    /// of its threads alive now (`live`; absent names have none).
    fn thread_rows(&self, live: &BTreeMap<String, u64>) -> Vec<Threads> {
        self.threads
            .iter()
            .map(|(name, counts)| Threads {
                name: name.clone(),
                num_threads: live.get(name).copied().unwrap_or(0),
                counts: *counts,
            })
            .collect()
    }
}

/// One group being summed in the current cycle.
#[derive(Default)]
struct Sum {
    group: Group,
    latest: Delta,
    /// Per thread name: live threads and their increases.
    threads: BTreeMap<String, (u64, Delta)>,
}

impl Sum {
    fn add(&mut self, u: Update) {
        let g = &mut self.group;
        g.procs += 1;
        g.io_known |= u.io_known;
        g.memory += u.memory;
        if let Some(open) = u.filedesc.open {
            g.open_fds = g.open_fds.saturating_add(open);
        }
        if let Some(ratio) = u.filedesc.ratio()
            && ratio > g.worst_fd_ratio
        {
            g.worst_fd_ratio = ratio;
        }
        g.num_threads = g.num_threads.saturating_add(u.num_threads);
        g.states += u.states;
        g.oldest_start_time = Some(match g.oldest_start_time {
            Some(t) if t <= u.start => t,
            _ => u.start,
        });
        for (wchan, n) in u.wchans {
            *g.wchans.entry(wchan).or_insert(0) += n;
        }
        self.latest += u.latest;
        for th in u.threads {
            let (n, d) = self.threads.entry(th.thread_name).or_default();
            *n += 1;
            *d += th.latest;
        }
    }

    /// Adds another group's sum into this one (a group folded into the
    /// overflow group).
    fn merge(&mut self, other: Sum) {
        let g = &mut self.group;
        let o = other.group;
        g.procs += o.procs;
        g.io_known |= o.io_known;
        g.memory += o.memory;
        g.open_fds = g.open_fds.saturating_add(o.open_fds);
        g.worst_fd_ratio = g.worst_fd_ratio.max(o.worst_fd_ratio);
        g.num_threads = g.num_threads.saturating_add(o.num_threads);
        g.states += o.states;
        g.oldest_start_time = match (g.oldest_start_time, o.oldest_start_time) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        for (wchan, n) in o.wchans {
            *g.wchans.entry(wchan).or_insert(0) += n;
        }
        self.latest += other.latest;
        for (name, (n, d)) in other.threads {
            let (tn, td) = self.threads.entry(name).or_default();
            *tn += n;
            *td += d;
        }
    }
}

/// Aggregates tracked processes by group name.
pub struct Grouper {
    tracker: Tracker,
    options: GrouperOptions,
    history: HashMap<String, History>,
    /// Groups forgotten after [`GrouperOptions::empty_group_ttl`], with
    /// when they were forgotten: their totals resume if they come back.
    dormant: HashMap<String, (SystemTime, History)>,
    witness: Arc<Witness>,
    overflow: Overflow,
    /// The group cap was hit once without knowing why; the next cycle
    /// reports it whatever it learns.
    cause_pending: bool,
    warned_groups: bool,
    warned_threads: bool,
    cycles: u64,
}

impl std::fmt::Debug for Grouper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grouper")
            .field("tracker", &self.tracker)
            .field("options", &self.options)
            .field("groups", &self.history.len())
            .field("overflow", &self.overflow)
            .finish_non_exhaustive()
    }
}

impl Grouper {
    /// A grouper naming new processes with `namer`.
    pub fn new(namer: Arc<dyn MatchNamer>, options: GrouperOptions) -> Self {
        let witness = Witness::around(namer);
        Grouper {
            tracker: Tracker::new(witness.clone(), options.tracker),
            options,
            history: HashMap::new(),
            dormant: HashMap::new(),
            witness,
            overflow: Overflow::default(),
            cause_pending: false,
            warned_groups: false,
            warned_threads: false,
            cycles: 0,
        }
    }

    /// Runs one cycle: tracker update, then aggregation.
    ///
    /// Every group that has members now is reported with its gauges and its
    /// counters since it first appeared. A group whose members have all
    /// exited is reported with its counters only (no processes, no start
    /// time), or dropped with its history when `remove_empty_groups` is set.
    pub fn update<S: Source>(
        &mut self,
        source: &mut S,
        now: SystemTime,
    ) -> Result<(CollectErrors, GroupByName), SourceError> {
        self.arm_witness();
        let mut sums: BTreeMap<String, Sum> = BTreeMap::new();
        let result = self.sum_cycle(source, now, &mut sums);
        let seen = self.witness.take();
        let errors = result?;
        self.cycles += 1;

        let folded = self.admit(&mut sums, now);
        let (mut groups, folded_threads, example_thread_group) = self.report(sums);
        self.note_overflow(folded, &seen, folded_threads, example_thread_group);
        self.report_empty(&mut groups);
        Ok((errors, groups))
    }

    /// Learning why groups are named costs an explanation per new
    /// process: the witness is armed only while the cap may be reached and
    /// was not yet reported (the first cycle sees every process at once).
    fn arm_witness(&self) {
        let named = named_len(self.history.len(), self.history.contains_key(OVERFLOW_NAME));
        self.witness.arm(
            !self.warned_groups
                && (self.cycles == 0
                    || self.cause_pending
                    || named >= self.options.max_groups - self.options.max_groups / 10),
        );
    }

    /// Runs the tracker's cycle into `sums`: each update is folded into its
    /// group's sum as soon as it is made, so the updates of every process
    /// are never held at once; then what exits and reaped children added,
    /// outside the members' updates.
    fn sum_cycle<S: Source>(
        &mut self,
        source: &mut S,
        now: SystemTime,
        sums: &mut BTreeMap<String, Sum>,
    ) -> Result<CollectErrors, SourceError> {
        let errors =
            self.tracker
                .update_with(source, now, |mut u| match sums.get_mut(&u.group_name) {
                    Some(sum) => sum.add(u),
                    None => sums
                        .entry(std::mem::take(&mut u.group_name))
                        .or_default()
                        .add(u),
                })?;
        for (group, d) in self.tracker.take_closed() {
            match sums.get_mut(&*group) {
                Some(sum) => sum.latest += d,
                None => sums.entry(group.to_string()).or_default().latest += d,
            }
        }
        Ok(errors)
    }

    /// Admission, in name order: groups already kept, then new ones while
    /// there is room; the rest are folded into the overflow group, and
    /// returned (in name order). Groups that are to be forgotten because
    /// they emptied give their places to this cycle's newcomers first.
    fn admit(&mut self, sums: &mut BTreeMap<String, Sum>, now: SystemTime) -> Vec<String> {
        if self.options.remove_empty_groups {
            self.history
                .retain(|name, _| name == OVERFLOW_NAME || sums.contains_key(name.as_str()));
        } else if let Some(ttl) = self.options.empty_group_ttl {
            self.forget_expired(sums, now, ttl);
        }
        let named = named_len(self.history.len(), self.history.contains_key(OVERFLOW_NAME));
        let mut room = self.options.max_groups.saturating_sub(named);
        let mut folded: Vec<String> = Vec::new();
        for name in sums.keys() {
            if name == OVERFLOW_NAME || self.history.contains_key(name) {
                continue;
            }
            if room > 0 {
                room -= 1;
            } else {
                folded.push(name.clone());
            }
        }
        for name in &folded {
            if let Some(sum) = sums.remove(name) {
                sums.entry(OVERFLOW_NAME.to_string())
                    .or_default()
                    .merge(sum);
            }
        }
        folded
    }

    /// The groups with members this cycle: each sum added to its group's
    /// history, which gives the reported counters. Also returns how many
    /// thread names were folded, and the first group that had some.
    fn report(&mut self, sums: BTreeMap<String, Sum>) -> (GroupByName, usize, Option<String>) {
        let mut groups = GroupByName::new();
        let mut folded_threads = 0usize;
        let mut example_thread_group = None;
        for (name, sum) in sums {
            let history = self.history.entry(name.clone()).or_default();
            let mut group = sum.group;
            history.counts += sum.latest;
            group.counts = history.counts;
            history.io_known |= group.io_known;
            group.io_known = history.io_known;
            let (live, folded) =
                fold_thread_names(history, sum.threads, self.options.max_thread_names);
            if folded > 0 {
                folded_threads += folded;
                example_thread_group.get_or_insert_with(|| name.clone());
            }
            group.threads = history.thread_rows(&live);
            groups.insert(name, group);
        }
        (groups, folded_threads, example_thread_group)
    }

    /// The groups with no member this cycle: forgotten with
    /// `remove_empty_groups`, otherwise reported with their counters only.
    /// Their thread-name totals go on being reported too: a delta exporter
    /// forgets a series that is not observed, and would send its whole
    /// total again when the group came back.
    fn report_empty(&mut self, groups: &mut GroupByName) {
        if self.options.remove_empty_groups {
            self.history.retain(|name, _| groups.contains_key(name));
            return;
        }
        for (name, history) in &self.history {
            if !groups.contains_key(name) {
                groups.insert(
                    name.clone(),
                    Group {
                        counts: history.counts,
                        threads: history.thread_rows(&BTreeMap::new()),
                        io_known: history.io_known,
                        ..Group::default()
                    },
                );
            }
        }
    }

    /// Marks the groups that have no process in this cycle's `sums` as
    /// empty, sets aside those empty for `ttl` or longer, and brings back
    /// the totals of set-aside groups that have processes again (while
    /// there is room under the group cap; otherwise they stay aside and
    /// their processes are folded like any new group's).
    fn forget_expired(&mut self, sums: &BTreeMap<String, Sum>, now: SystemTime, ttl: Duration) {
        let mut expired = Vec::new();
        for (name, h) in &mut self.history {
            if name == OVERFLOW_NAME || sums.contains_key(name) {
                h.empty_since = None;
                continue;
            }
            let since = *h.empty_since.get_or_insert(now);
            if now.duration_since(since).unwrap_or(Duration::ZERO) >= ttl {
                expired.push(name.clone());
            }
        }
        for name in expired {
            if let Some(h) = self.history.remove(&name) {
                self.dormant.insert(name, (now, h));
            }
        }
        while self.dormant.len() > self.options.max_groups {
            let oldest = self
                .dormant
                .iter()
                .min_by_key(|(name, (at, _))| (*at, (*name).clone()))
                .map(|(name, _)| name.clone());
            match oldest {
                Some(name) => self.dormant.remove(&name),
                None => break,
            };
        }
        for name in sums.keys() {
            if self.history.contains_key(name) {
                continue;
            }
            let named = named_len(self.history.len(), self.history.contains_key(OVERFLOW_NAME));
            if named >= self.options.max_groups {
                break;
            }
            if let Some((_, h)) = self.dormant.remove(name) {
                self.history.insert(name.clone(), h);
            }
        }
    }

    /// Keeps empty groups for ever from now on (no time to live).
    pub fn keep_empty_groups(&mut self) {
        self.options.empty_group_ttl = None;
    }

    /// Groups remembered between cycles (the overflow group included): the
    /// size of the grouper's own state.
    pub fn groups_remembered(&self) -> usize {
        self.history.len()
    }

    /// What the caps folded into [`OVERFLOW_NAME`] in the last cycle.
    pub fn overflow(&self) -> &Overflow {
        &self.overflow
    }

    /// Records the last cycle's folding and warns the first time each cap
    /// is hit.
    fn note_overflow(
        &mut self,
        folded: Vec<String>,
        seen: &HashMap<String, Explanation>,
        folded_threads: usize,
        example_thread_group: Option<String>,
    ) {
        if self.overflow.cause.is_none() {
            self.overflow.cause = folded.iter().find_map(|g| seen.get(g)).cloned();
        }
        self.overflow.groups = folded.len();
        self.overflow.example_group = folded.into_iter().next();
        self.overflow.thread_names = folded_threads;
        self.overflow.example_thread_group = example_thread_group;
        self.warn_groups_once();
        self.warn_threads_once();
    }

    /// Warns once that the group cap was hit, naming the rule and template
    /// that made the folded group. The warning waits one cycle for that
    /// explanation when the folded groups were named before the witness
    /// was armed; without it then, it lists the rules.
    fn warn_groups_once(&mut self) {
        if let Some(group) = &self.overflow.example_group
            && !self.warned_groups
        {
            match &self.overflow.cause {
                Some(cause) => {
                    tracing::warn!(
                        max_groups = self.options.max_groups,
                        overflow_group = OVERFLOW_NAME,
                        group = %group,
                        rule = %cause.rule.map_or_else(|| "-".to_string(), |r| r.to_string()),
                        template = %cause.template.as_deref().unwrap_or("-"),
                        reason = %cause.detail,
                        "too many groups: processes of further groups are added up in the \
                         overflow group; the rule's name template makes too many groups \
                         (raise max_groups or change the rule; logged once)"
                    );
                    self.warned_groups = true;
                }
                None if self.cause_pending => {
                    tracing::warn!(
                        max_groups = self.options.max_groups,
                        overflow_group = OVERFLOW_NAME,
                        group = %group,
                        rules = ?self.witness.describe(),
                        "too many groups: processes of further groups are added up in the \
                         overflow group; one of the rules makes too many groups \
                         (raise max_groups or change the rule; logged once)"
                    );
                    self.warned_groups = true;
                }
                None => self.cause_pending = true,
            }
        }
        if self.warned_groups {
            self.cause_pending = false;
        }
    }

    /// Warns once that a group's thread names were folded.
    fn warn_threads_once(&mut self) {
        if let Some(group) = &self.overflow.example_thread_group
            && !self.warned_threads
        {
            tracing::warn!(
                max_thread_names = self.options.max_thread_names,
                overflow_thread_name = OVERFLOW_NAME,
                group = %group,
                "too many thread names in a group: further threads are added up under the \
                 overflow thread name (raise max_thread_names; logged once)"
            );
            self.warned_threads = true;
        }
    }

    /// Replaces the namer (a reload of the rules). Groups keep their
    /// counters: a group whose name the new rules still give goes on as the
    /// same series; every known process is named again in the next cycle
    /// (see [`Tracker::set_namer`]).
    pub fn set_namer(&mut self, namer: Arc<dyn MatchNamer>) {
        let witness = Witness::around(namer);
        self.tracker.set_namer(witness.clone());
        self.witness = witness;
    }

    /// The inner tracker.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// The inner tracker, to queue exit records for the next cycle.
    pub fn tracker_mut(&mut self) -> &mut Tracker {
        &mut self.tracker
    }

    /// The options in force.
    pub fn options(&self) -> GrouperOptions {
        self.options
    }
}

/// Adds a group's thread sums to its `history`: under their own names when
/// the group already has them or has room for them (at most `max` names),
/// otherwise under the overflow name, so a group's thread names stay
/// bounded. Returns the live threads per reported thread name, after
/// folding, and how many names were folded.
fn fold_thread_names(
    history: &mut History,
    threads: BTreeMap<String, (u64, Delta)>,
    max: usize,
) -> (BTreeMap<String, u64>, usize) {
    let mut live: BTreeMap<String, u64> = BTreeMap::new();
    let mut folded = 0usize;
    let mut room = max.saturating_sub(named_len(
        history.threads.len(),
        history.threads.contains_key(OVERFLOW_NAME),
    ));
    for (thread_name, (n, d)) in threads {
        let key = if thread_name == OVERFLOW_NAME || history.threads.contains_key(&thread_name) {
            thread_name
        } else if room > 0 {
            room -= 1;
            thread_name
        } else {
            folded += 1;
            OVERFLOW_NAME.to_string()
        };
        *history.threads.entry(key.clone()).or_default() += d;
        *live.entry(key).or_default() += n;
    }
    (live, folded)
}

/// Entries of a map keyed by name, the overflow entry not counted.
fn named_len(len: usize, has_overflow: bool) -> usize {
    len - usize::from(has_overflow)
}

#[cfg(test)]
mod tests;
