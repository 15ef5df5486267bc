//! The agent's status service: what a running agent sees, asked over a Unix
//! domain socket instead of a network port, plus the standard
//! `grpc.health.v1` service for Kubernetes probes.
//!
//! The agent hands its state over through the [`StatusProvider`] trait, so the
//! server does not depend on how the agent stores its snapshot or tracks its
//! exports. [`health`] turns that state into a SERVING / NOT_SERVING verdict,
//! [`socket`] owns the socket file (owner-only mode, stale-socket removal,
//! refusal when another agent holds it), [`server`] serves both gRPC services
//! on it and [`client`] implements `procgroups status`, `explain` and
//! `health`. The service itself is `proto/procgroups/v1/status.proto`,
//! compiled at build time.

pub mod client;
pub mod convert;
pub mod health;

pub mod server;
pub mod socket;

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::exits::ListenerStats;
use crate::proc::{CollectErrors, GroupByName};
use crate::snapshot::{AccountingMode, NodeCpu};

pub use crate::config::defaults::{
    DEFAULT_HEALTH_EXPORT_INTERVALS, ROOT_SOCKET_PATH, default_socket_path, default_socket_path_in,
};
pub use health::{HealthPolicy, Verdict};

/// The `grpc.health.v1` service name whose status is the liveness verdict
/// (cycles run), beside `""` for readiness (cycles run and exports get
/// through). `procgroups health --liveness` asks for it.
pub const LIVENESS_SERVICE_NAME: &str = "liveness";

pub use server::{ServerHandle, serve};
pub use socket::{SocketError, StatusSocket};

/// The generated types and gRPC stubs of `procgroups.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("procgroups.v1");
}

/// Binds the configured status socket; `None` when it is switched off.
pub fn bind_configured(path: &Path) -> Result<Option<StatusSocket>, SocketError> {
    if socket_disabled(path) {
        tracing::info!("status socket disabled");
        return Ok(None);
    }
    StatusSocket::bind(path).map(Some)
}

/// True for the values that switch the status socket off.
pub fn socket_disabled(path: &Path) -> bool {
    path.as_os_str().is_empty() || path == Path::new("none")
}

/// The last completed collection cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct CycleInfo {
    /// When it finished.
    pub end_time: SystemTime,
    /// How long it took.
    pub duration: Duration,
    /// Cycles completed since the agent started.
    pub count: u64,
    /// Errors since the agent started.
    pub errors: CollectErrors,
    /// Processes tracked in a group.
    pub tracked_processes: u64,
    /// The node's CPU against the groups', since the first cycle.
    pub node_cpu: Option<NodeCpu>,
}

/// One finished export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportAttempt {
    /// When it finished.
    pub end_time: SystemTime,
    /// `None` on success, the error otherwise.
    pub error: Option<String>,
}

/// The state of the agent's metric export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportState {
    /// False when the agent exports nothing: health then ignores exports.
    pub enabled: bool,
    /// Where exports go.
    pub endpoint: String,
    /// Time between exports.
    pub interval: Duration,
    /// The last export, successful or not.
    pub last_attempt: Option<ExportAttempt>,
    /// When the last successful export finished.
    pub last_success: Option<SystemTime>,
    /// Failed exports since the agent started.
    pub failures_total: u64,
}

impl ExportState {
    /// No export configured.
    pub fn disabled() -> ExportState {
        ExportState {
            enabled: false,
            endpoint: String::new(),
            interval: Duration::ZERO,
            last_attempt: None,
            last_success: None,
            failures_total: 0,
        }
    }

    /// An enabled export, every `interval`, with no attempt yet.
    pub fn enabled(interval: Duration) -> ExportState {
        ExportState {
            enabled: true,
            interval,
            ..ExportState::disabled()
        }
    }

    /// Records a finished export.
    pub fn record(&mut self, end_time: SystemTime, result: Result<(), String>) {
        match result {
            Ok(()) => {
                self.last_success = Some(end_time);
                self.last_attempt = Some(ExportAttempt {
                    end_time,
                    error: None,
                });
            }
            Err(e) => {
                self.failures_total += 1;
                self.last_attempt = Some(ExportAttempt {
                    end_time,
                    error: Some(e),
                });
            }
        }
    }
}

/// The exit accounting in force, as `procgroups status` shows it: the mode
/// and why the better one is not (decided once at startup), with the exit
/// listener's counters as of the last cycle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExitAccountingState {
    /// The mode, and why taskstats exit records are not used.
    pub mode: AccountingMode,
    /// The listener's counters; `None` outside the taskstats mode and
    /// before the first cycle.
    pub listener: Option<ListenerStats>,
}

/// How the group of a process was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A naming rule matched the process itself.
    Matched,
    /// No rule matched; it is counted in a tracked ancestor's group.
    Inherited,
    /// No rule matched and no tracked ancestor: ignored.
    NotMatched,
    /// No such process.
    NotFound,
}

/// What identifies a process to a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessFacts {
    /// comm.
    pub name: String,
    /// argv.
    pub cmdline: Vec<String>,
    /// Effective uid.
    pub uid: u32,
}

/// How one process is grouped, as `procgroups explain PID` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidExplanation {
    /// The PID asked about.
    pub pid: i32,
    /// The process, when it exists.
    pub process: Option<ProcessFacts>,
    /// The group the agent counts it in.
    pub group: Option<String>,
    /// How that was decided.
    pub decision: Decision,
    /// The rule that matched, as the configuration states it.
    pub rule: Option<String>,
    /// In words: what matched, or why nothing did.
    pub reason: String,
    /// With [`Decision::Inherited`], the tracked ancestor.
    pub ancestor_pid: Option<i32>,
}

impl PidExplanation {
    /// The answer for a PID with no process behind it.
    pub fn not_found(pid: i32) -> PidExplanation {
        PidExplanation {
            pid,
            process: None,
            group: None,
            decision: Decision::NotFound,
            rule: None,
            reason: format!("no process with pid {pid}"),
            ancestor_pid: None,
        }
    }
}

/// What the agent exposes to the status server. Implementations must be
/// cheap and non-blocking except [`StatusProvider::explain`], which may read
/// `/proc` and is called off the async threads.
pub trait StatusProvider: Send + Sync + 'static {
    /// The last completed cycle, if any, with its groups (empty before the
    /// first one), taken together: a reply never pairs one cycle's groups
    /// with another cycle, or with none.
    fn last_cycle_groups(&self) -> (Option<CycleInfo>, GroupByName);
    /// The last completed cycle, if any.
    fn last_cycle(&self) -> Option<CycleInfo>;
    /// The export state.
    fn last_export(&self) -> ExportState;
    /// The exit accounting in force.
    fn exit_accounting(&self) -> ExitAccountingState;
    /// How the process `pid` is grouped now.
    fn explain(&self, pid: i32) -> PidExplanation;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_and_empty_disable_the_socket() {
        assert!(socket_disabled(Path::new("none")));
        assert!(socket_disabled(Path::new("")));
        assert!(!socket_disabled(Path::new("/run/none")));
    }

    #[test]
    fn export_state_records_success_and_failure() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let t1 = t0 + Duration::from_secs(10);
        let mut s = ExportState::enabled(Duration::from_secs(10));
        s.record(t0, Ok(()));
        s.record(t1, Err("unavailable".into()));
        assert_eq!(s.last_success, Some(t0));
        assert_eq!(s.failures_total, 1);
        let last = s.last_attempt.unwrap();
        assert_eq!(last.end_time, t1);
        assert_eq!(last.error.as_deref(), Some("unavailable"));
    }
}
