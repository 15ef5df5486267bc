//! Naming ignored processes again, so that one that `exec`s into a program
//! the rules take is found: the wrapper script (`sh -c 'exec java ...'`)
//! seen as `sh` before its exec.
//!
//! An ignored process costs one identity check per cycle, and its comm is
//! not read (so a change of program shows nowhere by itself). Reading
//! every ignored process's attributes each cycle would cost what naming
//! costs, on every process the rules leave out. Instead the tracker names
//! again, from [`Proc::static_info`] (`stat`, `status`, `cmdline`,
//! `cgroup`):
//!
//! - every ignored process in its first [`YOUNG_CYCLES`] cycles after it
//!   was first seen: wrappers `exec` at once, so this catches them within
//!   a cycle of the exec; the cost is bounded by the processes born in the
//!   last few cycles;
//! - and, each cycle, one slice of the older ones, [`ROTATION`] slices in
//!   all, chosen by identity: every ignored process is named again once
//!   every [`ROTATION`] cycles, so the steady cost is 1/[`ROTATION`] of a
//!   naming of the ignored processes per cycle.
//!
//! A process the rules now take is tracked from now on (its past, under
//! the program it ran before, is not counted: it was not the new program's
//! work). With `recheck`, unmatched processes are named again anyway (they
//! are not remembered as ignored, or only once past its time limit), and
//! nothing here applies.

use super::*;

/// Cycles after its first sighting during which an ignored process is
/// named again every cycle.
pub(super) const YOUNG_CYCLES: u64 = 5;
/// Older ignored processes are named again once in this many cycles.
pub(super) const ROTATION: u64 = 64;

impl Tracker {
    /// Notes a process remembered as ignored in `cycle`.
    pub(super) fn note_ignored(&mut self, id: ID, cycle: u64) {
        if !self.options.recheck {
            self.young_ignored.insert(id, cycle);
        }
    }

    /// Forgets the ignored processes no longer young (and the gone ones).
    pub(super) fn age_ignored(&mut self, cycle: u64) {
        let entries = &self.entries;
        self.young_ignored
            .retain(|id, since| *since + YOUNG_CYCLES > cycle && entries.contains_key(id));
    }

    /// Whether the ignored process `id` is named again this cycle.
    fn recheck_due(&self, id: ID, cycle: u64) -> bool {
        if self
            .young_ignored
            .get(&id)
            .is_some_and(|since| cycle < since + YOUNG_CYCLES)
        {
            return true;
        }
        let slice = (u64::from(id.pid.unsigned_abs()) ^ id.start_time_ticks) % ROTATION;
        slice == cycle % ROTATION
    }

    /// Names the process `id`, known and ignored, again when it is due. When the
    /// rules now take it, it is tracked from now on and its first update is
    /// reported.
    pub(super) fn recheck_ignored<P: Proc>(
        &mut self,
        id: ID,
        proc: &mut P,
        (now, cycle): (SystemTime, u64),
        errors: &mut CollectErrors,
        sink: &mut impl FnMut(Update),
    ) {
        if self.options.recheck || !self.recheck_due(id, cycle) {
            return;
        }
        let Ok(s) = proc.static_info() else {
            return;
        };
        let Some(group) = self.namer.match_and_name(&s.attributes(id.pid)) else {
            return;
        };
        debug!(pid = id.pid, name = %s.name, group = %group, "an ignored process is now named by the rules");
        self.young_ignored.remove(&id);
        // Its past ran another program: it is baselined now.
        self.track_from_now(id, proc, (&s, &group), (now, cycle), errors, sink);
    }
}
