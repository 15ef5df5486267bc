//! New processes the namer did not match, settled after the scan of a
//! cycle: with `children`, each joins the group of its nearest tracked
//! ancestor (parents that appeared in the same cycle included, which is why
//! this waits for the whole listing); the others are remembered as ignored,
//! or, with recheck, left to be named again in a later cycle.

use super::*;

/// A process seen for the first time this cycle, before naming.
/// A new process the namer did not match, waiting for the inheritance pass.
/// Only what that pass needs is kept: the process's attributes (command
/// line, cgroups) are not, so a cycle full of new processes does not hold
/// them all at once.
pub(super) struct NewProc {
    /// Position in this cycle's listing.
    pub(super) index: usize,
    pub(super) id: ID,
    pub(super) parent_pid: i32,
    pub(super) start_time: SystemTime,
    pub(super) name: String,
}

/// What naming decided for a new process.
#[derive(Debug, Clone)]
pub(super) enum Decision {
    Track(String, MatchReason),
    Ignore,
}

impl Tracker {
    /// The new processes the namer did not match: tracked when an ancestor
    /// is, otherwise remembered as ignored (or not at all, with recheck).
    pub(super) fn settle_new<P: Proc>(
        &mut self,
        procs: &mut [P],
        fresh: Vec<NewProc>,
        now: SystemTime,
        state: &mut CycleState<'_>,
        sink: &mut impl FnMut(Update),
    ) {
        let (first, cycle) = (state.first, state.cycle);
        let errors = &mut *state.errors;
        let decisions = self.name_new(&fresh);

        for np in fresh {
            match decisions.get(&np.id) {
                Some(Decision::Track(group, reason)) => {
                    let Some(proc) = procs.get_mut(np.index) else {
                        continue;
                    };
                    let group = self.names.get(group);
                    let mut ctx = self.ctx(first, cycle, errors);
                    if let Some(slot) = first_sight(
                        proc,
                        np.id,
                        (np.start_time, &np.name, np.parent_pid),
                        group,
                        *reason,
                        &mut ctx,
                        sink,
                    ) {
                        self.entries.insert(np.id, slot);
                    }
                }
                Some(Decision::Ignore) | None => {
                    if self.remember_ignored(np.start_time, now) {
                        trace!(pid = np.id.pid, "ignoring new process");
                        self.entries.insert(
                            np.id,
                            Slot {
                                last_seen: cycle,
                                entry: Entry::Ignored,
                            },
                        );
                        self.note_ignored(np.id, cycle);
                    }
                }
            }
        }
    }
    /// Decides the group of the new processes the namer did not match: with
    /// `children`, the group of their nearest tracked ancestor.
    fn name_new(&self, fresh: &[NewProc]) -> HashMap<ID, Decision> {
        let mut decisions = HashMap::with_capacity(fresh.len());
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
            let ppid = fresh[last].parent_pid;
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
                    Entry::Tracked(t) => Some((t.group.to_string(), parent)),
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
