//! One collection cycle: the [`Collection`] owns the process source and the
//! grouper (and through it the tracker's per-process state), runs
//! `Grouper::update` and turns the result into a [`Snapshot`]. It is plain
//! blocking code; the timer task runs it off the async threads.
//!
//! Each cycle also reads the node's CPU totals, when the source is a procfs
//! mount, for the remainder ([`super::remainder`]).
//!
//! It also says once, the first time some process could be read only in
//! part, when the agent lacks the capabilities that would let it read every
//! process in full (see [`capability_hint`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::config::Config;
use crate::proc::{
    CollectErrors, FsSource, FsSourceOptions, Grouper, GrouperOptions, MatchNamer, Source,
    SourceError, SystemFacts, Tracker, TrackerOptions, read_cpu_totals,
};

use super::Snapshot;
use super::accounting::{self, ExitFeed};
use super::remainder::{NodeCpuAccount, node_busy_ticks};
use crate::snapshot::AccountingMode;

/// The capabilities that let an agent that is not root read every process
/// in full: `CAP_SYS_PTRACE` for another user's `io` (and the ptrace access
/// check of `fd/`), `CAP_DAC_READ_SEARCH` for the directories and files
/// only their owner may read.
pub const READ_CAPABILITIES: [&str; 2] = ["CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH"];

/// Runs cycles over one source, keeping the state that spans cycles.
pub struct Collection<S: Source> {
    source: S,
    grouper: Grouper,
    errors: CollectErrors,
    cycles: u64,
    /// The capability hint was considered (it is logged at most once).
    capabilities_checked: bool,
    /// Where the node's CPU totals are read from; `None` for a source that
    /// is not a procfs mount (no remainder then).
    node_stat: Option<NodeStat>,
    account: NodeCpuAccount,
    /// The exit accounting in force.
    accounting: AccountingMode,
    /// Exit records, in the taskstats mode.
    exits: Option<ExitFeed>,
}

/// The procfs mount whose `stat` gives the node's CPU totals, and the tick
/// rate that turns them into seconds.
struct NodeStat {
    root: PathBuf,
    facts: SystemFacts,
    /// A failed read was logged (once until a read succeeds again).
    failing: bool,
}

impl NodeStat {
    /// The node's busy CPU in seconds since boot; `None` (logged once until
    /// it recovers) when `stat` cannot be read or parsed.
    fn read(&mut self) -> Option<f64> {
        match read_cpu_totals(&self.root, &self.facts) {
            Ok(totals) => {
                self.failing = false;
                Some(self.facts.seconds(node_busy_ticks(&totals)))
            }
            Err(e) => {
                if !std::mem::replace(&mut self.failing, true) {
                    tracing::warn!(
                        error = %e,
                        "cannot read the node's CPU totals; the remainder waits (logged once until it recovers)"
                    );
                }
                None
            }
        }
    }
}

impl Collection<FsSource> {
    /// A collection over the procfs mount and rules of `config`.
    /// Exit records are used when `exit_accounting` allows it and this
    /// process may receive them; the listener starts before the first
    /// cycle, so that nothing exiting after it is missed.
    pub fn from_config(config: &Config) -> Result<Self, SourceError> {
        let mut source = FsSource::new(
            &config.procfs,
            FsSourceOptions {
                gather_smaps: config.gather_smaps,
                threads: config.threads,
                ..FsSourceOptions::default()
            },
        )?;
        if let Some(probe) = accounting::group_probe(&config.procfs) {
            source.set_group_probe(Box::new(probe));
        }
        let (root, facts) = (source.root().to_path_buf(), source.facts());
        let (mode, feed) = accounting::start(config.exit_accounting, facts.ticks_per_second);
        let mut c = Collection::new(
            source,
            Grouper::new(config.namer.clone(), grouper_options(config)),
        )
        .with_node_stat(root, facts);
        c.accounting = mode;
        c.exits = feed;
        Ok(c)
    }
}

/// The grouper and tracker options a configuration asks for.
pub fn grouper_options(config: &Config) -> GrouperOptions {
    GrouperOptions {
        tracker: TrackerOptions {
            children: config.children,
            threads: config.threads,
            recheck: config.recheck,
            recheck_time_limit: config.recheck_time_limit,
            // In both modes: alone, or reconciling the exit records.
            children_accounting: true,
        },
        remove_empty_groups: config.remove_empty_groups,
        max_groups: config.max_groups,
        max_thread_names: config.max_thread_names,
        empty_group_ttl: config.empty_group_ttl,
    }
}

impl<S: Source> Collection<S> {
    /// Keeps empty groups for ever from now on, whatever the configured
    /// time to live (see [`GrouperOptions::empty_group_ttl`]).
    pub fn keep_empty_groups(&mut self) {
        self.grouper.keep_empty_groups();
    }

    /// A collection over `source` aggregating with `grouper`.
    pub fn new(source: S, grouper: Grouper) -> Self {
        Collection {
            source,
            grouper,
            errors: CollectErrors::default(),
            cycles: 0,
            capabilities_checked: false,
            node_stat: None,
            account: NodeCpuAccount::new(),
            accounting: AccountingMode::default(),
            exits: None,
        }
    }

    /// Reads the node's CPU totals from `<root>/stat` each cycle (in ticks
    /// of `facts`), so that snapshots carry the remainder.
    pub fn with_node_stat(mut self, root: impl Into<PathBuf>, facts: SystemFacts) -> Self {
        self.node_stat = Some(NodeStat {
            root: root.into(),
            facts,
            failing: false,
        });
        self
    }

    /// The exit accounting in force.
    pub fn accounting(&self) -> &AccountingMode {
        &self.accounting
    }

    /// Runs one cycle at wall-clock time `now`. An error means the source
    /// could not even be listed; the caller keeps the previous snapshot and
    /// tries again next cycle (the per-process state is untouched).
    pub fn cycle(&mut self, now: SystemTime) -> Result<Snapshot, SourceError> {
        let started = Instant::now();
        if let Some(feed) = &self.exits {
            let exits = feed.drain();
            self.grouper.tracker_mut().queue_exits(exits);
        }
        // The node's baseline is read before the first cycle, not after
        // it: that cycle counts whole every process born since it began,
        // and a first cycle that names every process can take seconds on a
        // busy node, so a baseline read at its end would leave out of the
        // node's side what the groups count (a coverage above 100 %).
        // Reading first makes the figure err low by what running processes
        // did while the first cycle read them, never high.
        if let Some(stat) = self.node_stat.as_mut()
            && !self.account.has_baseline()
        {
            let node = stat.read();
            self.account.update(node, &crate::proc::GroupByName::new());
        }
        let (errors, groups) = self.grouper.update(&mut self.source, now)?;
        // Read right after the processes, so both cover the same interval.
        let node_cpu = self.node_stat.as_mut().map(|stat| {
            let node = stat.read();
            self.account.update(node, &groups)
        });
        self.errors += errors;
        self.cycles += 1;
        if errors.partial > 0 && !std::mem::replace(&mut self.capabilities_checked, true) {
            let euid = rustix::process::geteuid().as_raw();
            if let Some(hint) = capability_hint(errors.partial, euid, &missing_capabilities()) {
                tracing::warn!(uid = euid, "{hint}");
            }
        }
        let stats = self.grouper.tracker().stats();
        tracing::debug!(
            cycle = self.cycles,
            tracked = stats.tracked,
            ignored = stats.ignored,
            pids = stats.pids,
            threads = stats.threads,
            groups = self.grouper.groups_remembered(),
            "tracker state"
        );
        Ok(Snapshot {
            groups,
            errors: self.errors,
            cycle_duration: started.elapsed(),
            tracked_processes: self.grouper.tracker().stats().tracked as u64,
            taken_at: Some(now),
            cycles: self.cycles,
            node_cpu,
            accounting: self.accounting.clone(),
            unattributed_exits: self.grouper.tracker().unattributed_exits(),
            exit_listener: self.exits.as_ref().map(|feed| feed.stats()),
        })
    }

    /// Names with `namer` from the next cycle on (a reload of the rules).
    pub fn set_namer(&mut self, namer: Arc<dyn MatchNamer>) {
        self.grouper.set_namer(namer);
    }

    /// The grouper (for tests that look at its state between cycles).
    pub fn grouper(&self) -> &Grouper {
        &self.grouper
    }

    /// The source (for tests that script it between cycles).
    pub fn source_mut(&mut self) -> &mut S {
        &mut self.source
    }

    /// The tracker, which knows the group of every process it has seen
    /// (for `procgroups explain`).
    pub fn tracker(&self) -> &Tracker {
        self.grouper.tracker()
    }
}

/// Which of [`READ_CAPABILITIES`] this thread lacks in its effective set
/// (all of them when the set cannot be read).
pub fn missing_capabilities() -> Vec<&'static str> {
    use rustix::thread::CapabilitySet;
    let wanted = [CapabilitySet::SYS_PTRACE, CapabilitySet::DAC_READ_SEARCH];
    match rustix::thread::capabilities(None) {
        Ok(sets) => READ_CAPABILITIES
            .iter()
            .zip(wanted)
            .filter(|(_, cap)| !sets.effective.contains(*cap))
            .map(|(name, _)| *name)
            .collect(),
        Err(_) => READ_CAPABILITIES.to_vec(),
    }
}

/// The line to log when `partial` processes could be read only in part and
/// the agent (effective uid `euid`) lacks the capabilities in `missing`;
/// `None` when it lacks none, since then capabilities would not help.
pub fn capability_hint(partial: u64, euid: u32, missing: &[&str]) -> Option<String> {
    if missing.is_empty() {
        return None;
    }
    let who = if euid == 0 {
        "root without the capabilities".to_string()
    } else {
        format!("uid {euid} (not root)")
    };
    Some(format!(
        "{partial} processes could be read only in part (their io, fd or limits are \
         readable only by their owner): the agent runs as {who} and lacks {}; \
         grant {} and {} (or run as root) for the full picture (logged once)",
        missing.join(" and "),
        READ_CAPABILITIES[0],
        READ_CAPABILITIES[1],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proc::{CommSetNamer, Counts, IDInfo, ScriptedFailure, ScriptedSource};
    use std::sync::Arc;
    use std::time::Duration;

    fn cpu(user: f64) -> Counts {
        Counts {
            cpu_user_time: user,
            ..Counts::default()
        }
    }

    #[test]
    fn capability_hint_names_what_is_missing_and_what_gives_the_full_picture() {
        assert_eq!(capability_hint(3, 65534, &[]), None);
        let hint = capability_hint(12, 65534, &READ_CAPABILITIES).unwrap();
        assert!(
            hint.starts_with("12 processes could be read only in part"),
            "{hint}"
        );
        assert!(hint.contains("uid 65534 (not root)"), "{hint}");
        assert!(
            hint.contains("lacks CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH"),
            "{hint}"
        );
        assert!(
            hint.contains("grant CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH"),
            "{hint}"
        );
        let hint = capability_hint(1, 0, &["CAP_DAC_READ_SEARCH"]).unwrap();
        assert!(hint.contains("root without the capabilities"), "{hint}");
        assert!(hint.contains("lacks CAP_DAC_READ_SEARCH;"), "{hint}");
    }

    #[test]
    fn the_test_process_has_the_read_capabilities_as_root() {
        if rustix::process::geteuid().is_root() {
            // Tests run as root with full capabilities, as in CI.
            assert_eq!(missing_capabilities(), Vec::<&str>::new());
        }
    }

    #[test]
    fn grouper_options_carry_the_configured_caps() {
        let config = Config {
            max_groups: 7,
            max_thread_names: 3,
            remove_empty_groups: true,
            ..Config::with_namer(Arc::new(CommSetNamer::new(["web"])))
        };
        let o = grouper_options(&config);
        assert_eq!((o.max_groups, o.max_thread_names), (7, 3));
        assert!(o.remove_empty_groups);
    }

    fn collection(cycles: Vec<Vec<IDInfo>>) -> Collection<ScriptedSource> {
        let namer = Arc::new(CommSetNamer::new(["web", "db"]));
        Collection::new(
            ScriptedSource::new(cycles),
            Grouper::new(namer, GrouperOptions::default()),
        )
    }

    #[test]
    fn snapshots_carry_totals_errors_and_counts_across_cycles() {
        let broken = || IDInfo::named(9, "web", 9).metrics_fail(ScriptedFailure::Read);
        let mut c = collection(vec![
            vec![
                IDInfo::named(1, "web", 1).counts(cpu(1.0)),
                IDInfo::named(2, "db", 2),
                broken(),
            ],
            vec![IDInfo::named(1, "web", 1).counts(cpu(3.0)), broken()],
        ]);
        let t1 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let first = c.cycle(t1).unwrap();
        assert_eq!(first.cycles, 1);
        assert_eq!(first.taken_at, Some(t1));
        assert!(first.tracked_processes >= 2, "{}", first.tracked_processes);
        assert_eq!(first.group_count(), 2);
        assert!(first.errors.read >= 1, "{:?}", first.errors);

        let t2 = t1 + Duration::from_secs(15);
        let second = c.cycle(t2).unwrap();
        assert_eq!(second.cycles, 2);
        assert_eq!(second.taken_at, Some(t2));
        // db exited.
        assert_eq!(second.tracked_processes, first.tracked_processes - 1);
        // Errors are totals since start: the same failure, counted twice.
        assert_eq!(second.errors.read, 2 * first.errors.read);
        // The web process was running before the first cycle: only its
        // increase since then counts.
        assert_eq!(second.groups["web"].counts.cpu_user_time, 2.0);
        // The db group emptied but is still reported, with no start time.
        let db = &second.groups["db"];
        assert_eq!(db.procs, 0);
        assert_eq!(db.oldest_start_time, None);
    }
}
