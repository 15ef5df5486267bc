//! The process model: read processes from a procfs mount ([`FsSource`]),
//! follow each one across cycles ([`Tracker`]) and add them up per named group
//! ([`Grouper`]). This mirrors the `proc` package of process-exporter in Rust
//! idiom, with that package's known bugs fixed (see the tests named after them).
//!
//! The module is pure apart from [`FsSource`]: the tracker and grouper take the
//! current time as an argument and read processes through the [`Source`] and
//! [`Proc`] traits, so tests drive them with scripted in-memory processes
//! ([`IDInfo`], [`ScriptedSource`]).
//!
//! Layout, in the order data flows: `source/` reads (the traits, the procfs
//! reader, the parsers, the system facts, the scripted source), `tracker/`
//! follows processes and their tasks, `grouper` adds them up; `types` holds
//! the data they pass on. Everything public is re-exported here.

mod error;
mod grouper;
mod names;
mod source;
mod tracker;
mod types;

pub use error::{ProcError, SourceError};
pub use grouper::{
    DEFAULT_MAX_GROUPS, DEFAULT_MAX_THREAD_NAMES, Grouper, GrouperOptions, OVERFLOW_NAME, Overflow,
};
pub use source::{
    FsProc, FsSource, FsSourceOptions, GroupActivity, GroupProbe, IDInfo, Proc, ReadStats,
    ScriptedFailure, ScriptedSource, Source, SystemFacts, TaskActivity, parse_cpu_totals,
    raise_open_files_limit, read_cpu_totals,
};
pub use tracker::{MatchReason, Membership, Rename, Tracker, TrackerOptions, TrackerStats};
pub use types::*;

use std::time::SystemTime;

/// A map keyed by PID or identity, looked up several times per process
/// and cycle: hashed with foldhash rather than SipHash, several times
/// faster on integer keys. The keys are the kernel's PIDs and start
/// times, not input an attacker chooses freely; the seed is still random.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// The attributes a [`MatchNamer`] decides a new process's group from.
#[derive(Debug, Clone, Copy)]
pub struct ProcAttributes<'a> {
    /// comm.
    pub name: &'a str,
    /// argv.
    pub cmdline: &'a [String],
    /// cgroup paths.
    pub cgroups: &'a [String],
    /// Effective uid (the namer resolves user names itself, when it needs them).
    pub uid: u32,
    /// PID.
    pub pid: i32,
    /// Wall-clock start time.
    pub start_time: SystemTime,
}

/// Why a [`MatchNamer`] tracks or ignores a process, for diagnostics (the
/// status API, debug logs). Deciding is [`MatchNamer::match_and_name`]'s job;
/// this only says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The group, when the process is tracked.
    pub group: Option<String>,
    /// Index of the rule that matched, for namers with numbered rules.
    pub rule: Option<usize>,
    /// The matched rule's name template, as written.
    pub template: Option<String>,
    /// Human-readable reasoning: the rule that matched, or why none did.
    pub detail: String,
}

/// Decides whether a new process is tracked, and under which group name.
pub trait MatchNamer: Send + Sync {
    /// `Some(group name)` to track the process, `None` to ignore it.
    fn match_and_name(&self, attrs: &ProcAttributes<'_>) -> Option<String>;

    /// The same decision with its reasons. Slower than
    /// [`MatchNamer::match_and_name`]; meant for diagnostics only.
    fn explain(&self, attrs: &ProcAttributes<'_>) -> Explanation {
        let group = self.match_and_name(attrs);
        Explanation {
            detail: if group.is_some() {
                "tracked"
            } else {
                "not tracked"
            }
            .to_string(),
            group,
            rule: None,
            template: None,
        }
    }

    /// One line per rule, in evaluation order, for `--check-config` and the
    /// status API. Empty when the namer has no describable rules.
    fn describe(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A namer for tests: tracks a process when its comm is in the set, under
/// its comm (the process-exporter test namer).
#[derive(Debug, Clone, Default)]
pub struct CommSetNamer {
    names: std::collections::HashSet<String>,
}

impl CommSetNamer {
    /// Tracks exactly these comms.
    pub fn new<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        CommSetNamer {
            names: names.into_iter().map(Into::into).collect(),
        }
    }
}

impl MatchNamer for CommSetNamer {
    fn match_and_name(&self, attrs: &ProcAttributes<'_>) -> Option<String> {
        self.names
            .contains(attrs.name)
            .then(|| attrs.name.to_string())
    }
}
