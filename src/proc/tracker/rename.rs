//! Naming known processes again, in two cases: after the namer was
//! replaced (a reload of the rules), when in the first cycle after
//! [`Tracker::set_namer`] every process the tracker already knows is named
//! by the new namer; and after a tracked process changed its program (an
//! `exec`, seen as a new comm), when that process alone is named again.
//!
//! After a reload, what a process did before stays where it was counted: a tracked process
//! that changes group keeps its last reading, so only what it does from now
//! on goes to its new group; an ignored process that the new rules track is
//! baselined now, as if the tracker had started now, so its past goes
//! nowhere; a tracked process the new rules do not name keeps the group of
//! its parent when it inherited one, and is ignored otherwise.

use std::sync::Arc;
use std::time::SystemTime;

use super::observe::first_sight;
use tracing::{debug, trace};

use super::accounts::owed_at_exit;
use super::{Entry, HISTORY, MatchReason, Rename, TrackedProc, Tracker};
use crate::proc::names::Names;
use crate::proc::{CollectErrors, ID, MatchNamer, Proc, Static, Update};

impl Tracker {
    /// Replaces the namer. Processes seen for the first time are named by
    /// it at once, and every known process is named again in the next
    /// cycle.
    pub fn set_namer(&mut self, namer: Arc<dyn MatchNamer>) {
        self.namer = namer;
        self.rename_pending = true;
    }

    /// The namer in force (the latest, after a reload).
    pub fn namer(&self) -> &Arc<dyn MatchNamer> {
        &self.namer
    }

    /// Names the known process `id` again. `true` when it was started
    /// afresh (an ignored process now tracked), which already reported its
    /// first update: the caller observes it no further in this cycle.
    pub(super) fn rename_known<P: Proc>(
        &mut self,
        id: ID,
        proc: &mut P,
        now: SystemTime,
        cycle: u64,
        errors: &mut CollectErrors,
        sink: &mut impl FnMut(Update),
    ) -> bool {
        let Ok(s) = proc.static_info() else {
            // Unreadable now: it keeps its group until it is gone.
            return false;
        };
        let named = self.namer.match_and_name(&s.attributes(id.pid));
        // Parents are usually listed first, so this is the parent's group
        // under the new rules already.
        let parent_group = self.tracked_parent(s.parent_pid);
        let Some(slot) = self.entries.get_mut(&id) else {
            return false;
        };
        match (&mut slot.entry, named) {
            (Entry::Tracked(t), named) => {
                let children = self.options.children;
                if !regroup(t, named.as_deref(), parent_group, children, &mut self.names) {
                    if self.options.children_accounting {
                        let last = t.reading.map(|r| *r.counts()).unwrap_or_default();
                        let debt = owed_at_exit(t, last);
                        self.exec_debts.insert(id, (t.parent_pid, debt));
                    }
                    slot.entry = Entry::Ignored;
                }
                false
            }
            (Entry::Ignored, Some(group)) => {
                // Its past is not counted: it is baselined now.
                self.track_from_now(id, proc, (&s, &group), (now, cycle), errors, sink);
                true
            }
            (Entry::Ignored, None) => false,
        }
    }

    /// Tracks `id`, known until now as ignored, under `group`, now that
    /// the rules name it (after an `exec`, or under new rules): baselined
    /// at `now`, since what it did before ran under another name, with its
    /// first update reported; forgotten when that first reading finds it
    /// gone.
    pub(super) fn track_from_now<P: Proc>(
        &mut self,
        id: ID,
        proc: &mut P,
        (s, group): (&Static, &str),
        (now, cycle): (SystemTime, u64),
        errors: &mut CollectErrors,
        sink: &mut impl FnMut(Update),
    ) {
        let group = self.names.get(group);
        let mut ctx = self.ctx(now, cycle, errors);
        match first_sight(
            proc,
            id,
            (s.start_time, &s.name, s.parent_pid),
            group,
            MatchReason::Namer,
            &mut ctx,
            sink,
        ) {
            Some(slot) => {
                self.entries.insert(id, slot);
            }
            None => {
                self.entries.remove(&id);
            }
        }
    }

    /// Names a tracked process again after its comm changed (an `exec`):
    /// this cycle's update went to the old group; from now on it counts in
    /// the group the rules give now (or its parent's, with `children`), or
    /// is ignored when none takes it.
    pub(super) fn rename<P: Proc>(&mut self, proc: &mut P, id: ID, now: SystemTime) {
        let s = match proc.static_info() {
            Ok(s) => s,
            Err(e) => {
                trace!(pid = id.pid, error = %e, "cannot name a process again after exec");
                return;
            }
        };
        let named = self.namer.match_and_name(&s.attributes(id.pid));
        let decision = match named {
            Some(g) => Some((self.names.get(&g), MatchReason::Namer)),
            None if self.options.children => self
                .tracked_parent(s.parent_pid)
                .map(|(group, pid)| (group, MatchReason::Parent(pid))),
            None => None,
        };
        let Some(slot) = self.entries.get_mut(&id) else {
            return;
        };
        let Entry::Tracked(t) = &mut slot.entry else {
            return;
        };
        let rename = Rename {
            at: now,
            from_name: t.name.to_string(),
            to_name: s.name.clone(),
            from_group: t.group.to_string(),
            to_group: decision.as_ref().map(|(g, _)| g.to_string()),
        };
        debug!(pid = id.pid, from = %rename.from_name, to = %rename.to_name,
            from_group = %rename.from_group, to_group = ?rename.to_group, "program changed");
        match decision {
            Some((group, reason)) => {
                t.group = group;
                t.reason = reason;
                t.name = s.name.into();
                if t.history.len() >= HISTORY {
                    t.history.remove(0);
                }
                t.history.push(rename);
            }
            None => {
                if self.options.children_accounting {
                    // Its reaper's children totals will hold what it
                    // counted while tracked.
                    let last = t.reading.map(|r| *r.counts()).unwrap_or_default();
                    let debt = owed_at_exit(t, last);
                    self.exec_debts.insert(id, (t.parent_pid, debt));
                }
                slot.entry = Entry::Ignored;
            }
        }
    }

    /// The group and identity of the process holding `ppid`, when it is
    /// tracked: the group a process inherits with `children`.
    fn tracked_parent(&self, ppid: i32) -> Option<(Arc<str>, ID)> {
        let parent = self.pids.get(&ppid)?;
        match &self.entries.get(parent)?.entry {
            Entry::Tracked(t) => Some((t.group.clone(), *parent)),
            Entry::Ignored => None,
        }
    }
}

/// A tracked process under new rules: moved to the group they name
/// (`named`), or, when they name none, kept in its parent's group if it
/// inherited one and `children` is on. `false` when it is to be ignored
/// from now on. What it counted so far stays in its old group: its
/// reading is kept, so only what it does from now on counts in the new.
fn regroup(
    t: &mut TrackedProc,
    named: Option<&str>,
    parent_group: Option<(Arc<str>, ID)>,
    children: bool,
    names: &mut Names,
) -> bool {
    match named {
        Some(group) => {
            if *t.group != *group {
                t.group = names.get(group);
            }
            t.reason = MatchReason::Namer;
            true
        }
        None => match (t.reason, parent_group) {
            (MatchReason::Parent(_), Some((group, parent))) if children => {
                t.group = group;
                t.reason = MatchReason::Parent(parent);
                true
            }
            _ => false,
        },
    }
}
