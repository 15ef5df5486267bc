//! [`Grouper`]: adds the tracker's per-process updates up per group name,
//! keeping counters that never decrease while processes come and go.

use std::sync::Arc;
use std::time::SystemTime;

use super::{CollectErrors, GroupByName, MatchNamer, Source, SourceError, Tracker, TrackerOptions};

/// How the grouper aggregates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GrouperOptions {
    /// Options of the inner tracker.
    pub tracker: TrackerOptions,
    /// Forget a group when its last process exits (its counters restart at 0
    /// if it comes back).
    pub remove_empty_groups: bool,
}

/// Aggregates tracked processes by group name.
pub struct Grouper {
    tracker: Tracker,
    options: GrouperOptions,
}

impl Grouper {
    /// A grouper naming new processes with `namer`.
    pub fn new(namer: Arc<dyn MatchNamer>, options: GrouperOptions) -> Self {
        Grouper {
            tracker: Tracker::new(namer, options.tracker),
            options,
        }
    }

    /// Runs one cycle: tracker update, then aggregation.
    pub fn update<S: Source>(
        &mut self,
        source: &mut S,
        now: SystemTime,
    ) -> Result<(CollectErrors, GroupByName), SourceError> {
        let _ = (source, now, self.options);
        unimplemented!()
    }

    /// The inner tracker.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }
}
