//! The snapshot: the immutable result of one collection cycle, and the cell
//! that publishes it. The timer task builds a new [`Snapshot`] each cycle and
//! swaps it into the [`SnapshotCell`]; metric callbacks, `--once` and any
//! status reader only load the latest `Arc`, so a reader never waits for a
//! cycle and never sees half of one.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

use crate::exits::ListenerStats;
use crate::proc::{CollectErrors, Counts, GroupByName};

/// How the work of processes that exit between two samples is counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExitMode {
    /// Exit records from the kernel (taskstats): every exit, named or not.
    Taskstats,
    /// The reaped-children totals of tracked processes (`cutime` and kin).
    #[default]
    Children,
}

impl ExitMode {
    /// `taskstats` or `children`, as logs, status and metrics say it.
    pub fn as_str(self) -> &'static str {
        match self {
            ExitMode::Taskstats => "taskstats",
            ExitMode::Children => "children",
        }
    }
}

/// The exit accounting in force, and why the better mode is not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountingMode {
    pub mode: ExitMode,
    /// Why exit records are not used (`None` when they are).
    pub reason: Option<String>,
}

/// What one collection cycle produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// The groups, sorted by name, with counters that are totals since the
    /// agent started.
    pub groups: GroupByName,
    /// Collection errors summed over every cycle since the agent started.
    pub errors: CollectErrors,
    /// How long the cycle that produced this snapshot took.
    pub cycle_duration: Duration,
    /// Processes tracked in some group after the cycle.
    pub tracked_processes: u64,
    /// When the cycle ran; `None` for the empty snapshot published before the
    /// first cycle.
    pub taken_at: Option<SystemTime>,
    /// Cycles run so far (this one included).
    pub cycles: u64,
    /// The node's CPU time and the part of it the groups account for, since
    /// the first cycle; `None` when the node's totals could not be read (a
    /// source that is not a procfs mount).
    pub node_cpu: Option<NodeCpu>,
    /// The exit accounting in force.
    pub accounting: AccountingMode,
    /// Totals of exited processes that no rule took, since the agent
    /// started: part of the node's work that no group shows. Known only
    /// with exit records (zero in the children mode, where such exits are
    /// not seen at all).
    pub unattributed_exits: Counts,
    /// The exit listener's counters (records, overflows, outages,
    /// malformed datagrams) since it started; `None` outside the taskstats
    /// mode.
    pub exit_listener: Option<ListenerStats>,
}

/// The node's CPU time against what the groups account for, in seconds,
/// cumulative from the agent's first cycle. Built by
/// the agent (its `NodeCpuAccount`), which feeds the snapshot.
///
/// The node's CPU is `user + nice + system` of `/proc/stat`'s `cpu` line:
/// the time CPUs spent running tasks, which is what the tasks' own `utime`
/// and `stime` add up to. Guest time is part of `user` (and guest-nice of
/// `nice`) on Linux, so a virtual machine run by a process counts for that
/// process. `irq`, `softirq` and `steal` are left out: the kernel charges
/// them to no process (with IRQ time accounting), and steal is time the
/// hypervisor gave to others; no rule could ever account for them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NodeCpu {
    /// CPU the node used (user + nice + system) since the first cycle.
    pub node_seconds_total: f64,
    /// The increase of every group's CPU (user + system) since the first
    /// cycle, summed.
    pub attributed_seconds_total: f64,
    /// What no group accounts for: the node's CPU less the groups', never
    /// negative and never decreasing (the agent's `NodeCpuAccount` keeps it so).
    pub unattributed_seconds_total: f64,
    /// Cycles in which the groups' CPU grew by more than the node's: the
    /// node's figure is sampled at each clock tick, the processes' is exact,
    /// so over a short interval the groups may lead by a few ticks.
    pub overshoot_cycles: u64,
}

impl NodeCpu {
    /// The share of the node's CPU that the groups account for, in `0..=1`:
    /// `1 - unattributed / node`; `None` before any node CPU was used.
    pub fn coverage(&self) -> Option<f64> {
        (self.node_seconds_total > 0.0).then(|| {
            (1.0 - self.unattributed_seconds_total / self.node_seconds_total).clamp(0.0, 1.0)
        })
    }
}

impl Snapshot {
    /// Number of groups reported.
    pub fn group_count(&self) -> u64 {
        self.groups.len() as u64
    }
}

/// Shared holder of the latest [`Snapshot`]. Cloning shares the same cell.
#[derive(Debug, Clone, Default)]
pub struct SnapshotCell {
    inner: Arc<ArcSwap<Snapshot>>,
}

impl SnapshotCell {
    /// A cell holding an empty snapshot (no cycle run yet).
    pub fn new() -> Self {
        Self::default()
    }

    /// The latest snapshot. Lock-free; cheap enough for every metric callback.
    pub fn load(&self) -> Arc<Snapshot> {
        self.inner.load_full()
    }

    /// Replaces the published snapshot.
    pub fn publish(&self, snapshot: Snapshot) {
        self.inner.store(Arc::new(snapshot));
    }
}

/// Unix seconds of a time (a process start time); `None` before the epoch
/// (never on Linux).
pub fn unix_seconds(t: SystemTime) -> Option<f64> {
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs_f64())
}

/// `now - then`, zero when the clock went backwards.
pub fn age(now: SystemTime, then: SystemTime) -> Duration {
    now.duration_since(then).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proc::Group;

    #[test]
    fn readers_keep_their_snapshot_while_a_new_one_is_published() {
        let cell = SnapshotCell::new();
        assert_eq!(cell.load().cycles, 0);
        assert!(cell.load().taken_at.is_none());

        let mut first = Snapshot {
            cycles: 1,
            ..Snapshot::default()
        };
        first.groups.insert("a".into(), Group::default());
        cell.publish(first);
        let held = cell.load();

        let reader = cell.clone();
        cell.publish(Snapshot {
            cycles: 2,
            ..Snapshot::default()
        });
        assert_eq!(held.cycles, 1);
        assert_eq!(held.group_count(), 1);
        assert_eq!(reader.load().cycles, 2);
        assert_eq!(reader.load().group_count(), 0);
    }
}
