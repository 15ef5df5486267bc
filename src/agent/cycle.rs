//! One collection cycle: the [`Collector`] owns the process source and the
//! grouper (and through it the tracker's per-process state), runs
//! `Grouper::update` and turns the result into a [`Snapshot`]. It is plain
//! blocking code; the timer task runs it off the async threads.

use std::time::{Instant, SystemTime};

use crate::config::Config;
use crate::proc::{
    CollectErrors, FsSource, FsSourceOptions, Grouper, GrouperOptions, Source, SourceError,
    TrackerOptions,
};

use super::Snapshot;

/// Runs cycles over one source, keeping the state that spans cycles.
pub struct Collector<S: Source> {
    source: S,
    grouper: Grouper,
    errors: CollectErrors,
    cycles: u64,
}

impl Collector<FsSource> {
    /// A collector over the procfs mount and rules of `config`.
    pub fn from_config(config: &Config) -> Result<Self, SourceError> {
        let source = FsSource::new(
            &config.procfs,
            FsSourceOptions {
                gather_smaps: config.gather_smaps,
            },
        )?;
        Ok(Collector::new(
            source,
            Grouper::new(config.namer.clone(), grouper_options(config)),
        ))
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
        },
        remove_empty_groups: config.remove_empty_groups,
    }
}

impl<S: Source> Collector<S> {
    /// A collector over `source` aggregating with `grouper`.
    pub fn new(source: S, grouper: Grouper) -> Self {
        Collector {
            source,
            grouper,
            errors: CollectErrors::default(),
            cycles: 0,
        }
    }

    /// Runs one cycle at wall-clock time `now`. An error means the source
    /// could not even be listed; the caller keeps the previous snapshot and
    /// tries again next cycle (the per-process state is untouched).
    pub fn cycle(&mut self, now: SystemTime) -> Result<Snapshot, SourceError> {
        let started = Instant::now();
        let (errors, groups) = self.grouper.update(&mut self.source, now)?;
        self.errors += errors;
        self.cycles += 1;
        Ok(Snapshot {
            groups,
            errors: self.errors,
            cycle_duration: started.elapsed(),
            tracked_processes: self.grouper.tracker().stats().tracked as u64,
            taken_at: Some(now),
            cycles: self.cycles,
        })
    }

    /// The source (for tests that script it between cycles).
    pub fn source_mut(&mut self) -> &mut S {
        &mut self.source
    }
}
