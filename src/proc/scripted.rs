//! In-memory processes for tests and benchmarks: an [`IDInfo`] holds every
//! value a [`Proc`] would read, and a [`ScriptedSource`] plays a list of
//! cycles, one `Vec<IDInfo>` each. Every read is logged, so tests can assert
//! what the tracker did *not* read (ignored processes, `task/`).

use std::sync::{Arc, Mutex};

use super::{ID, Metrics, Proc, ProcError, Source, SourceError, Static, Thread};

/// What a scripted [`IDInfo::metrics`] call should fail with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptedFailure {
    /// The process exits between `stat` and the other files.
    Gone,
    /// A real read error (e.g. EIO).
    Read,
}

/// One process with all of its values given up front.
#[derive(Debug, Clone)]
pub struct IDInfo {
    /// Identity.
    pub id: ID,
    /// Naming attributes.
    pub static_info: Static,
    /// Counters and gauges.
    pub metrics: Metrics,
    /// Tasks (empty: no thread detail).
    pub threads: Vec<Thread>,
    /// When set, `metrics()` fails this way.
    pub fail_metrics: Option<ScriptedFailure>,
    log: Option<ReadLog>,
}

/// The reads made on scripted processes: (pid, what) in call order.
pub type ReadLog = Arc<Mutex<Vec<(i32, &'static str)>>>;

impl IDInfo {
    /// A process with these values and no thread detail.
    pub fn new(id: ID, static_info: Static, metrics: Metrics) -> Self {
        IDInfo {
            id,
            static_info,
            metrics,
            threads: Vec::new(),
            fail_metrics: None,
            log: None,
        }
    }

    /// The same process with these tasks.
    pub fn with_threads(mut self, threads: Vec<Thread>) -> Self {
        self.threads = threads;
        self
    }

    fn note(&self, what: &'static str) {
        if let Some(log) = &self.log
            && let Ok(mut v) = log.lock()
        {
            v.push((self.id.pid, what));
        }
    }
}

impl Proc for IDInfo {
    fn pid(&self) -> i32 {
        self.id.pid
    }

    fn id(&mut self) -> Result<ID, ProcError> {
        self.note("id");
        Ok(self.id)
    }

    fn static_info(&mut self) -> Result<Static, ProcError> {
        self.note("static");
        Ok(self.static_info.clone())
    }

    fn metrics(&mut self) -> Result<Metrics, ProcError> {
        self.note("metrics");
        match self.fail_metrics {
            Some(ScriptedFailure::Gone) => Err(ProcError::Gone { pid: self.id.pid }),
            Some(ScriptedFailure::Read) => Err(ProcError::Io {
                path: format!("/proc/{}/stat", self.id.pid).into(),
                source: std::io::Error::other("scripted read failure"),
            }),
            None => Ok(self.metrics.clone()),
        }
    }

    fn threads(&mut self) -> Result<Vec<Thread>, ProcError> {
        self.note("threads");
        Ok(self.threads.clone())
    }
}

/// A [`Source`] that returns the next scripted cycle on each call, and an
/// empty list once the script is exhausted.
#[derive(Debug, Default)]
pub struct ScriptedSource {
    cycles: std::collections::VecDeque<Vec<IDInfo>>,
    log: ReadLog,
}

impl ScriptedSource {
    /// A source that plays these cycles in order.
    pub fn new(cycles: Vec<Vec<IDInfo>>) -> Self {
        ScriptedSource {
            cycles: cycles.into(),
            log: ReadLog::default(),
        }
    }

    /// Appends one more cycle.
    pub fn push(&mut self, cycle: Vec<IDInfo>) {
        self.cycles.push_back(cycle);
    }

    /// The reads made so far.
    pub fn reads(&self) -> Vec<(i32, &'static str)> {
        self.log.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Forgets the reads made so far.
    pub fn clear_reads(&self) {
        if let Ok(mut v) = self.log.lock() {
            v.clear();
        }
    }
}

impl Source for ScriptedSource {
    type Proc = IDInfo;

    fn all_procs(&mut self) -> Result<Vec<IDInfo>, SourceError> {
        let mut cycle = self.cycles.pop_front().unwrap_or_default();
        for p in &mut cycle {
            p.log = Some(self.log.clone());
        }
        Ok(cycle)
    }
}
