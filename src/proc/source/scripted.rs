//! In-memory processes for tests and benchmarks: an [`IDInfo`] holds every
//! value a [`Proc`] would read, and a [`ScriptedSource`] plays a list of
//! cycles, one `Vec<IDInfo>` each. Every read is logged, so tests can assert
//! what the tracker did *not* read (ignored processes, `task/`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::proc::{
    Counts, Filedesc, ID, Memory, Metrics, Proc, ProcError, Source, SourceError, States, Static,
    Thread,
};

/// What a scripted read should fail with.
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
    /// When set, `id()` fails this way.
    pub fail_id: Option<ScriptedFailure>,
    /// When set, `static_info()` fails this way.
    pub fail_static: Option<ScriptedFailure>,
    /// When set, `threads()` fails this way.
    pub fail_threads: Option<ScriptedFailure>,
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
            fail_id: None,
            fail_static: None,
            fail_threads: None,
            log: None,
        }
    }

    /// A process in the shape the process-exporter tests use: comm `name`,
    /// start time `start_ticks` ticks after boot and, as a wall-clock time,
    /// `start_ticks` seconds after the Unix epoch (so long before any tracker
    /// started, unless [`IDInfo::started_at`] says otherwise); parent 0,
    /// uid 1000, no cmdline, zero counters with readable io.
    pub fn named(pid: i32, name: &str, start_ticks: u64) -> Self {
        IDInfo::new(
            ID {
                pid,
                start_time_ticks: start_ticks,
            },
            Static {
                name: name.to_string(),
                cmdline: Vec::new(),
                cgroups: Vec::new(),
                parent_pid: 0,
                start_time: SystemTime::UNIX_EPOCH + Duration::from_secs(start_ticks),
                effective_uid: 1000,
            },
            Metrics {
                io_known: true,
                ..Metrics::default()
            },
        )
    }

    /// The same process with these tasks.
    pub fn with_threads(mut self, threads: Vec<Thread>) -> Self {
        self.threads = threads;
        self
    }

    /// The same process with this parent pid.
    pub fn parent(mut self, ppid: i32) -> Self {
        self.static_info.parent_pid = ppid;
        self.metrics.parent_pid = ppid;
        self
    }

    /// The same process with its metrics still naming `ppid` as its
    /// parent, as a reading that skipped `stat` repeats the parent of an
    /// earlier one, while `stat` (its static attributes) names the one
    /// set by [`IDInfo::parent`] (called before this).
    pub fn stale_parent(mut self, ppid: i32) -> Self {
        self.metrics.parent_pid = ppid;
        self
    }

    /// The same process with this wall-clock start time.
    pub fn started_at(mut self, start: SystemTime) -> Self {
        self.static_info.start_time = start;
        self
    }

    /// The same process with this argv.
    pub fn cmdline(mut self, argv: &[&str]) -> Self {
        self.static_info.cmdline = argv.iter().map(|a| a.to_string()).collect();
        self
    }

    /// The same process with these counters.
    pub fn counts(mut self, counts: Counts) -> Self {
        self.metrics.counts = counts;
        self
    }

    /// The same process with these reaped-children totals.
    pub fn children(mut self, counts: Counts) -> Self {
        self.metrics.children = counts;
        self
    }

    /// The same process with this comm (as after an `exec`).
    pub fn renamed(mut self, name: &str) -> Self {
        self.static_info.name = name.to_string();
        self
    }

    /// The same process with these memory gauges.
    pub fn memory(mut self, memory: Memory) -> Self {
        self.metrics.memory = memory;
        self
    }

    /// The same process with this fd usage.
    pub fn filedesc(mut self, open: Option<u64>, limit: Option<u64>) -> Self {
        self.metrics.filedesc = Filedesc { open, limit };
        self
    }

    /// The same process with this `num_threads`.
    pub fn num_threads(mut self, n: u64) -> Self {
        self.metrics.num_threads = n;
        self
    }

    /// The same process with these states (of its own task).
    pub fn states(mut self, states: States) -> Self {
        self.metrics.states = states;
        self
    }

    /// The same process waiting in `wchan`.
    pub fn wchan(mut self, wchan: &str) -> Self {
        self.metrics.wchan = wchan.to_string();
        self
    }

    /// The same process with `io` unreadable (its byte counts then mean
    /// nothing).
    pub fn io_unknown(mut self) -> Self {
        self.metrics.io_known = false;
        self
    }

    /// The same process with this many optional files failing to read.
    pub fn soft_errors(mut self, n: u32) -> Self {
        self.metrics.soft_errors = n;
        self
    }

    /// The same process whose `metrics()` fails this way.
    pub fn metrics_fail(mut self, how: ScriptedFailure) -> Self {
        self.fail_metrics = Some(how);
        self
    }

    /// The same process whose `id()` fails this way.
    pub fn id_fail(mut self, how: ScriptedFailure) -> Self {
        self.fail_id = Some(how);
        self
    }

    /// The same process whose `static_info()` fails this way.
    pub fn static_fail(mut self, how: ScriptedFailure) -> Self {
        self.fail_static = Some(how);
        self
    }

    /// The same process whose `threads()` fails this way.
    pub fn threads_fail(mut self, how: ScriptedFailure) -> Self {
        self.fail_threads = Some(how);
        self
    }

    fn failure(&self, how: Option<ScriptedFailure>, file: &str) -> Result<(), ProcError> {
        match how {
            None => Ok(()),
            Some(ScriptedFailure::Gone) => Err(ProcError::Gone { pid: self.id.pid }),
            Some(ScriptedFailure::Read) => Err(ProcError::Io {
                path: format!("/proc/{}/{file}", self.id.pid).into(),
                source: std::io::Error::other("scripted read failure"),
            }),
        }
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
        self.failure(self.fail_id, "stat")?;
        Ok(self.id)
    }

    fn static_info(&mut self) -> Result<Static, ProcError> {
        self.note("static");
        self.failure(self.fail_static, "status")?;
        Ok(self.static_info.clone())
    }

    fn metrics(&mut self) -> Result<Metrics, ProcError> {
        self.note("metrics");
        self.failure(self.fail_metrics, "stat")?;
        Ok(self.metrics.clone())
    }

    fn threads(&mut self) -> Result<Vec<Thread>, ProcError> {
        self.note("threads");
        self.failure(self.fail_threads, "task")?;
        Ok(self.threads.clone())
    }

    fn comm(&self) -> Option<&str> {
        Some(&self.static_info.name)
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

    /// The kinds of read made so far on `pid`, in call order.
    pub fn reads_of(&self, pid: i32) -> Vec<&'static str> {
        self.reads()
            .into_iter()
            .filter(|(p, _)| *p == pid)
            .map(|(_, what)| what)
            .collect()
    }

    /// Cycles not yet played.
    pub fn pending(&self) -> usize {
        self.cycles.len()
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
