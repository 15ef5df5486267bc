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

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use super::{
    CollectErrors, Counts, Delta, Group, GroupByName, MatchNamer, Source, SourceError, Threads,
    Tracker, TrackerOptions, Update,
};

/// How the grouper aggregates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GrouperOptions {
    /// Options of the inner tracker.
    pub tracker: TrackerOptions,
    /// Forget a group when its last process exits (its counters restart at 0
    /// if it comes back).
    pub remove_empty_groups: bool,
}

/// What is remembered about a group between cycles.
#[derive(Debug, Default)]
struct History {
    /// Totals since the group first appeared.
    counts: Counts,
    /// Totals per thread name.
    threads: BTreeMap<String, Counts>,
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
}

/// Aggregates tracked processes by group name.
#[derive(Debug)]
pub struct Grouper {
    tracker: Tracker,
    options: GrouperOptions,
    history: HashMap<String, History>,
}

impl Grouper {
    /// A grouper naming new processes with `namer`.
    pub fn new(namer: Arc<dyn MatchNamer>, options: GrouperOptions) -> Self {
        Grouper {
            tracker: Tracker::new(namer, options.tracker),
            options,
            history: HashMap::new(),
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
        // Each update is folded into its group's sum as soon as it is made.
        let mut sums: BTreeMap<String, Sum> = BTreeMap::new();
        let errors =
            self.tracker
                .update_with(source, now, |mut u| match sums.get_mut(&u.group_name) {
                    Some(sum) => sum.add(u),
                    None => sums
                        .entry(std::mem::take(&mut u.group_name))
                        .or_default()
                        .add(u),
                })?;

        let mut groups = GroupByName::new();
        for (name, sum) in sums {
            let history = self.history.entry(name.clone()).or_default();
            let mut group = sum.group;
            history.counts += sum.latest;
            group.counts = history.counts;
            for (thread_name, (_, d)) in &sum.threads {
                *history.threads.entry(thread_name.clone()).or_default() += *d;
            }
            group.threads = history
                .threads
                .iter()
                .map(|(thread_name, counts)| Threads {
                    name: thread_name.clone(),
                    num_threads: sum.threads.get(thread_name).map_or(0, |(n, _)| *n),
                    counts: *counts,
                })
                .collect();
            groups.insert(name, group);
        }

        if self.options.remove_empty_groups {
            self.history.retain(|name, _| groups.contains_key(name));
        } else {
            for (name, history) in &self.history {
                if !groups.contains_key(name) {
                    groups.insert(
                        name.clone(),
                        Group {
                            counts: history.counts,
                            ..Group::default()
                        },
                    );
                }
            }
        }
        Ok((errors, groups))
    }

    /// The inner tracker.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// The options in force.
    pub fn options(&self) -> GrouperOptions {
        self.options
    }
}
