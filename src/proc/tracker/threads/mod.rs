//! [`Threads`]: the tasks of one tracked process between cycles, and their
//! reconciliation with a new listing. A task is known by its identity (tid
//! and start time), so a tid the kernel reuses is a new task; a task the
//! listing no longer shows is dropped; each task's counters advance from its
//! own last reading, so a task that exits takes nothing away from its
//! process and a counter that goes backwards gives a zero increase.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::reading::Reading;
use crate::proc::names::Names;
use crate::proc::{Delta, States, TaskRead, ThreadID, ThreadUpdate};

/// One task of a tracked process.
#[derive(Debug)]
struct TrackedThread {
    /// Shared with the other threads of that name.
    name: Arc<str>,
    reading: Reading,
    /// The number of the last cycle that listed the task (truncated: only
    /// compared with the current one).
    last_seen: u32,
    /// Its state letter and wait channel at the last reading, counted
    /// again while the source reports it unchanged.
    state: u8,
    wchan: Option<Arc<str>>,
}

/// The tasks of one process, sorted by identity (a vector: a handful per
/// process).
#[derive(Debug, Default)]
pub(super) struct Threads {
    list: Vec<(ThreadID, TrackedThread)>,
}

/// What one listing of a process's tasks adds up to.
#[derive(Debug, Default)]
pub(super) struct Reconciled {
    /// (voluntary, nonvoluntary) context switches: the sum of the tasks'
    /// increases, which replaces the process-level difference.
    pub(super) switches: (u64, u64),
    /// Each listed task's state, counted once.
    pub(super) states: States,
    /// Tasks per wait channel.
    pub(super) wchans: BTreeMap<String, u64>,
    /// One update per listed task.
    pub(super) updates: Vec<ThreadUpdate>,
}

impl Threads {
    /// How many tasks are kept.
    pub(super) fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether no task is kept.
    pub(super) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether the task `id` is kept.
    pub(super) fn contains(&self, id: &ThreadID) -> bool {
        self.list.binary_search_by_key(id, |(i, _)| *i).is_ok()
    }

    /// Forgets every task (thread detail off, or no tasks listed).
    pub(super) fn clear(&mut self) {
        self.list.clear();
    }

    /// An update with no increase for every kept task (a cycle whose
    /// listing failed, or a process whose read failed).
    pub(super) fn unchanged(&self) -> Vec<ThreadUpdate> {
        self.list
            .iter()
            .map(|(_, tt)| ThreadUpdate {
                thread_name: tt.name.to_string(),
                latest: Delta::default(),
            })
            .collect()
    }

    /// Folds this cycle's listing into the kept tasks, which are then
    /// exactly the listed ones. `mark` is the cycle number (truncated: only
    /// compared for equality); a task new to a process born since the
    /// tracker started is counted whole, like the process itself.
    pub(super) fn reconcile(
        &mut self,
        list: Vec<TaskRead>,
        mark: u32,
        born_since_start: bool,
        names: &mut Names,
    ) -> Reconciled {
        let mut r = Reconciled {
            updates: Vec::with_capacity(list.len()),
            ..Reconciled::default()
        };
        let known = self.list.len();
        if known == 0 {
            self.list.reserve_exact(list.len());
        }
        for item in list {
            match item {
                TaskRead::Read(th) => {
                    let state = th.states.letter();
                    let d = self.advance(&th, state, known, mark, born_since_start, names);
                    r.switches.0 = r.switches.0.saturating_add(d.ctx_switch_voluntary);
                    r.switches.1 = r.switches.1.saturating_add(d.ctx_switch_nonvoluntary);
                    r.states += th.states;
                    if !th.wchan.is_empty() {
                        *r.wchans.entry(th.wchan).or_insert(0) += 1;
                    }
                    r.updates.push(ThreadUpdate {
                        thread_name: th.name,
                        latest: d,
                    });
                }
                TaskRead::Unchanged(id) => self.replay(&id, known, mark, &mut r),
            }
        }
        self.list.retain(|(_, tt)| tt.last_seen == mark);
        if !self.list.is_sorted_by_key(|(id, _)| *id) {
            self.list.sort_unstable_by_key(|(id, _)| *id);
        }
        r
    }

    /// A task the source reports unchanged: as last cycle, no increase, the
    /// same state and wait channel.
    fn replay(&mut self, id: &ThreadID, known: usize, mark: u32, r: &mut Reconciled) {
        let at = self.list[..known].binary_search_by_key(id, |(i, _)| *i);
        if let Some((_, tt)) = at.ok().and_then(|i| self.list.get_mut(i)) {
            tt.last_seen = mark;
            r.states += States::from_letter(char::from(tt.state));
            if let Some(w) = &tt.wchan {
                *r.wchans.entry(w.to_string()).or_insert(0) += 1;
            }
            r.updates.push(ThreadUpdate {
                thread_name: tt.name.to_string(),
                latest: Delta::default(),
            });
        }
    }

    /// The increase of one task read this cycle, which then becomes its
    /// reading. The first `known` entries are sorted (kept from the last
    /// cycle); the rest were added in this one.
    fn advance(
        &mut self,
        th: &crate::proc::Thread,
        state: u8,
        known: usize,
        mark: u32,
        born_since_start: bool,
        names: &mut Names,
    ) -> Delta {
        let found = match self.list[..known].binary_search_by_key(&th.id, |(id, _)| *id) {
            Ok(i) => Some(i),
            Err(_) => self.list[known..]
                .iter()
                .position(|(id, _)| *id == th.id)
                .map(|i| known + i),
        };
        if let Some((_, tt)) = found.and_then(|i| self.list.get_mut(i)) {
            let d = tt.reading.advance(&th.counts, th.io_known);
            names.update(&mut tt.name, &th.name);
            tt.last_seen = mark;
            tt.state = state;
            match (&mut tt.wchan, th.wchan.is_empty()) {
                (w, true) => *w = None,
                (Some(w), false) => names.update(w, &th.wchan),
                (w, false) => *w = Some(names.get(&th.wchan)),
            }
            return d;
        }
        self.list.push((
            th.id,
            TrackedThread {
                name: names.get(&th.name),
                reading: Reading::first(&th.counts, th.io_known),
                last_seen: mark,
                state,
                wchan: (!th.wchan.is_empty()).then(|| names.get(&th.wchan)),
            },
        ));
        // A thread new in a known process counts from its first sighting:
        // its start cannot be placed against the last cycle. The threads of
        // a process born since the start are counted whole, like the
        // process itself.
        if born_since_start {
            Reading::whole(&th.counts, th.io_known)
        } else {
            Delta::default()
        }
    }
}

#[cfg(test)]
mod tests;
