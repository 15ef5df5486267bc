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

use super::observe::{Ctx, first_sight};
use tracing::{debug, trace};

use super::{Entry, HISTORY, MatchReason, Rename, Slot, Tracker};
use crate::proc::{CollectErrors, ID, MatchNamer, Proc, Update};

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
        let parent_group = self.pids.get(&s.parent_pid).and_then(|parent| {
            match &self.entries.get(parent)?.entry {
                Entry::Tracked(t) => Some((t.group.clone(), *parent)),
                Entry::Ignored => None,
            }
        });
        let Some(slot) = self.entries.get_mut(&id) else {
            return false;
        };
        match (&mut slot.entry, named) {
            (Entry::Tracked(t), Some(group)) => {
                if *t.group != *group {
                    t.group = self.names.get(&group);
                }
                t.reason = MatchReason::Namer;
                false
            }
            (Entry::Tracked(t), None) => {
                match (t.reason, parent_group) {
                    (MatchReason::Parent(_), Some((group, parent))) if self.options.children => {
                        t.group = group;
                        t.reason = MatchReason::Parent(parent);
                    }
                    _ => slot.entry = Entry::Ignored,
                }
                false
            }
            (Entry::Ignored, Some(group)) => {
                let group = self.names.get(&group);
                let mut ctx = Ctx {
                    options: &self.options,
                    // Its past is not counted: it is baselined now.
                    first: now,
                    cycle,
                    errors,
                    names: &mut self.names,
                };
                match first_sight(
                    proc,
                    id,
                    (s.start_time, &s.name, s.parent_pid),
                    group,
                    MatchReason::Namer,
                    &mut ctx,
                    sink,
                ) {
                    Some(fresh) => *slot = fresh,
                    None => {
                        self.entries.remove(&id);
                    }
                }
                true
            }
            (Entry::Ignored, None) => false,
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
            None if self.options.children => {
                self.pids
                    .get(&s.parent_pid)
                    .copied()
                    .and_then(|pid| match self.entries.get(&pid) {
                        Some(Slot {
                            entry: Entry::Tracked(p),
                            ..
                        }) => Some((p.group.clone(), MatchReason::Parent(pid))),
                        _ => None,
                    })
            }
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
            None => slot.entry = Entry::Ignored,
        }
    }
}
