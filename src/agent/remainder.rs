//! The remainder: the node's CPU time that no group accounts for. Each cycle
//! the agent reads the node's CPU totals (the `cpu` line of `<procfs>/stat`)
//! and the groups' CPU counters, and [`NodeCpuAccount`] turns the two into
//! the cumulative [`NodeCpu`] of the snapshot. The arithmetic is pure: the
//! caller reads the file and passes the numbers in.

use std::collections::BTreeMap;

use procfs_core::CpuTime;

use crate::proc::GroupByName;
use crate::snapshot::NodeCpu;

/// The node's busy CPU, in clock ticks: `user + nice + system` (see
/// [`NodeCpu`] for why `irq`, `softirq` and `steal` are left out; guest time
/// is already inside `user` and `nice`).
pub fn node_busy_ticks(totals: &CpuTime) -> u64 {
    totals
        .user
        .saturating_add(totals.nice)
        .saturating_add(totals.system)
}

/// The CPU (user + system) a group has used since the agent started.
fn group_cpu(g: &crate::proc::Group) -> f64 {
    g.counts.cpu_user_time + g.counts.cpu_system_time
}

/// Keeps the last readings of the node's and the groups' CPU between cycles
/// and the running totals.
///
/// The remainder is kept as the running maximum of `node − groups`, both
/// cumulative, rather than as a sum of per-cycle differences clamped at
/// zero: the node's figure is counted in whole ticks when the timer fires,
/// the processes' from the scheduler's exact runtime, so over one interval
/// either may lead by a few ticks. Clamping every cycle would add up the
/// cycles where the node leads and drop those where the groups lead, a
/// remainder that grows with time even when every process is in a group.
/// The running maximum never decreases (it is exported as a counter) and
/// does not accumulate that noise. The cycles where the groups lead are
/// counted in [`NodeCpu::overshoot_cycles`].
#[derive(Debug, Default, Clone)]
pub struct NodeCpuAccount {
    /// The node's busy CPU at the last reading, seconds since boot.
    last_node: Option<f64>,
    /// Each group's CPU at the last reading.
    last_groups: BTreeMap<String, f64>,
    totals: NodeCpu,
}

impl NodeCpuAccount {
    /// An account with no reading yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one cycle's readings: the node's busy CPU in seconds since boot
    /// (`None` when it could not be read this cycle) and the groups after
    /// the cycle. Returns the totals since the first reading.
    ///
    /// A cycle without the node's reading changes nothing, so the next
    /// reading covers both intervals for the node and the groups alike. A
    /// group that disappears (emptied and removed) is forgotten, so that one
    /// that comes back with counters from zero is counted from zero.
    pub fn update(&mut self, node_seconds: Option<f64>, groups: &GroupByName) -> NodeCpu {
        let Some(node) = node_seconds.filter(|s| s.is_finite()) else {
            return self.totals;
        };
        let increase: f64 = groups
            .iter()
            .map(|(name, g)| {
                let now = group_cpu(g);
                let before = self.last_groups.get(name).copied().unwrap_or(0.0);
                (now - before).max(0.0)
            })
            .sum();
        self.last_groups = groups
            .iter()
            .map(|(name, g)| (name.clone(), group_cpu(g)))
            .collect();
        let Some(last) = self.last_node.replace(node) else {
            // The first reading is the baseline: the groups' counters start
            // at the first cycle too (what a process did before it is not
            // counted), so nothing is attributed or used yet.
            return self.totals;
        };
        let used = (node - last).max(0.0);
        let t = &mut self.totals;
        t.node_seconds_total += used;
        t.attributed_seconds_total += increase;
        if increase > used {
            t.overshoot_cycles += 1;
        }
        t.unattributed_seconds_total = t
            .unattributed_seconds_total
            .max(t.node_seconds_total - t.attributed_seconds_total);
        self.totals
    }

    /// Whether the first reading (the baseline) was taken.
    pub fn has_baseline(&self) -> bool {
        self.last_node.is_some()
    }

    /// The totals so far.
    pub fn totals(&self) -> NodeCpu {
        self.totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proc::{Counts, Group, SystemFacts, parse_cpu_totals};

    const FACTS: SystemFacts = SystemFacts {
        boot_time_secs: 1_700_000_000,
        ticks_per_second: 100,
        page_size: 4096,
    };

    /// A `/proc/stat` with the given `cpu` line fields (user nice system
    /// idle iowait irq softirq steal guest guest_nice).
    fn stat(fields: [u64; 10]) -> Vec<u8> {
        let line: Vec<String> = fields.iter().map(u64::to_string).collect();
        format!(
            "cpu  {}\ncpu0 {}\nintr 1 0\nctxt 2\nbtime 1700000000\nprocesses 3\n",
            line.join(" "),
            line.join(" ")
        )
        .into_bytes()
    }

    fn node_seconds(fields: [u64; 10]) -> f64 {
        let t = parse_cpu_totals(&stat(fields), &FACTS).unwrap();
        node_busy_ticks(&t) as f64 / FACTS.ticks_per_second as f64
    }

    fn groups(cpu: &[(&str, f64, f64)]) -> GroupByName {
        cpu.iter()
            .map(|(name, user, system)| {
                let g = Group {
                    counts: Counts {
                        cpu_user_time: *user,
                        cpu_system_time: *system,
                        ..Counts::default()
                    },
                    ..Group::default()
                };
                (name.to_string(), g)
            })
            .collect()
    }

    #[test]
    fn node_cpu_is_user_nice_system_without_irq_steal_or_double_counted_guest() {
        // user 1000, nice 200, system 300; idle, iowait, irq 7, softirq 9,
        // steal 11 and guest 400 (already inside user) are not added.
        let s = node_seconds([1000, 200, 300, 5000, 50, 7, 9, 11, 400, 0]);
        assert_eq!(s, 15.0);
    }

    #[test]
    fn the_remainder_is_the_node_cpu_no_group_accounts_for() {
        let mut a = NodeCpuAccount::new();
        let first = a.update(
            Some(node_seconds([1000, 0, 500, 9000, 0, 0, 0, 0, 0, 0])),
            &groups(&[("web", 0.0, 0.0)]),
        );
        assert_eq!(first, NodeCpu::default());
        assert_eq!(first.coverage(), None);

        // 15 s later: the node used 8 s + 2 s = 10 s; web 6 s, db (new) 1.5 s.
        let second = a.update(
            Some(node_seconds([1800, 0, 700, 9000, 0, 0, 0, 0, 0, 0])),
            &groups(&[("web", 4.0, 2.0), ("db", 1.0, 0.5)]),
        );
        assert_eq!(second.node_seconds_total, 10.0);
        assert_eq!(second.attributed_seconds_total, 7.5);
        assert_eq!(second.unattributed_seconds_total, 2.5);
        assert_eq!(second.overshoot_cycles, 0);
        assert_eq!(second.coverage(), Some(0.75));

        // Only the increase of each group counts: web +1 s, db +0 s; node +4 s.
        let third = a.update(
            Some(node_seconds([2100, 0, 800, 9000, 0, 0, 0, 0, 0, 0])),
            &groups(&[("web", 5.0, 2.0), ("db", 1.0, 0.5)]),
        );
        assert_eq!(third.node_seconds_total, 14.0);
        assert_eq!(third.attributed_seconds_total, 8.5);
        assert_eq!(third.unattributed_seconds_total, 5.5);
        assert_eq!(a.totals(), third);
    }

    #[test]
    fn groups_leading_the_node_by_a_tick_neither_go_negative_nor_inflate_the_remainder() {
        let mut a = NodeCpuAccount::new();
        let busy = |ticks: u64| Some(node_seconds([ticks, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
        a.update(busy(1000), &groups(&[("all", 0.0, 0.0)]));
        // The node counted 1.00 s, the group 1.02 s: clamped, and counted.
        let lead = a.update(busy(1100), &groups(&[("all", 1.02, 0.0)]));
        assert_eq!(lead.unattributed_seconds_total, 0.0);
        assert_eq!(lead.overshoot_cycles, 1);
        assert_eq!(lead.coverage(), Some(1.0));
        // Next interval the node catches up (1.00 s against 0.98 s): over
        // both intervals the group accounts for everything, so the
        // remainder stays at zero instead of growing by 0.02 s.
        let caught_up = a.update(busy(1200), &groups(&[("all", 2.0, 0.0)]));
        assert!(caught_up.unattributed_seconds_total.abs() < 1e-9);
        assert_eq!(caught_up.overshoot_cycles, 1);
        // A real remainder then shows, and the counter never goes down.
        let rest = a.update(busy(1300), &groups(&[("all", 2.5, 0.0)]));
        assert!((rest.unattributed_seconds_total - 0.5).abs() < 1e-9);
        let again = a.update(busy(1300), &groups(&[("all", 3.0, 0.0)]));
        assert!((again.unattributed_seconds_total - 0.5).abs() < 1e-9);
    }

    #[test]
    fn an_unreadable_node_reading_defers_both_sides_to_the_next_cycle() {
        let mut a = NodeCpuAccount::new();
        let busy = |ticks: u64| Some(node_seconds([ticks, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
        a.update(busy(0), &groups(&[("g", 0.0, 0.0)]));
        let skipped = a.update(None, &groups(&[("g", 0.5, 0.0)]));
        assert_eq!(skipped, NodeCpu::default());
        let t = a.update(busy(200), &groups(&[("g", 1.5, 0.0)]));
        assert_eq!(t.node_seconds_total, 2.0);
        assert_eq!(t.attributed_seconds_total, 1.5);
        assert_eq!(t.unattributed_seconds_total, 0.5);
        // A NaN is no reading either.
        assert_eq!(a.update(Some(f64::NAN), &groups(&[("g", 9.0, 0.0)])), t);
    }

    #[test]
    fn a_baseline_taken_before_the_first_cycle_covers_what_that_cycle_counts() {
        // Read before the first cycle, with no group yet: what the first
        // cycle counts (processes born while it ran, counted whole) is
        // set against the node's CPU over that same cycle.
        let mut a = NodeCpuAccount::new();
        let busy = |ticks: u64| Some(node_seconds([ticks, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
        assert!(!a.has_baseline());
        a.update(busy(1000), &groups(&[]));
        assert!(a.has_baseline());
        let t = a.update(busy(1400), &groups(&[("new", 3.0, 0.5)]));
        assert_eq!(t.node_seconds_total, 4.0);
        assert_eq!(t.attributed_seconds_total, 3.5);
        assert_eq!(t.overshoot_cycles, 0);
    }

    #[test]
    fn a_removed_group_that_returns_counts_from_zero() {
        let mut a = NodeCpuAccount::new();
        let busy = |ticks: u64| Some(node_seconds([ticks, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
        a.update(busy(0), &groups(&[("job", 0.0, 0.0)]));
        a.update(busy(300), &groups(&[("job", 3.0, 0.0)]));
        // Emptied and removed, then back with new counters.
        a.update(busy(300), &groups(&[]));
        let t = a.update(busy(500), &groups(&[("job", 2.0, 0.0)]));
        assert_eq!(t.attributed_seconds_total, 5.0);
        assert_eq!(t.node_seconds_total, 5.0);
        assert_eq!(t.unattributed_seconds_total, 0.0);
    }
}
