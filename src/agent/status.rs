//! [`AgentStatus`]: the [`StatusProvider`] of the running agent, over the
//! pieces the agent already shares: the snapshot cell swapped each cycle,
//! the export outcome record, and the collection whose tracker knows the
//! group of every process it has seen.
//!
//! The exit accounting mode is decided once, when the collection starts:
//! it is copied here; the exit listener's counters come with each
//! snapshot, as the self metrics export them.
//!
//! Reading the snapshot and the export record never waits. `explain` reads
//! the process from the procfs mount, asks the naming rules why they match
//! it or not, and asks the tracker (briefly locking the collection, so at
//! worst it waits for a running cycle) which group it counts it in.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::Collection;
use crate::proc::{
    Explanation, FsSource, FsSourceOptions, GroupByName, ID, MatchReason, Membership, Proc,
    ProcError, Rename, Source, Static,
};
use crate::snapshot::{AccountingMode, Snapshot, SnapshotCell};
use crate::telemetry::ExportHealth;

use crate::status::{
    CycleInfo, Decision, ExitAccountingState, ExportAttempt, ExportState, PidExplanation,
    ProcessFacts, StatusProvider,
};

/// The running agent as the status server sees it.
pub struct AgentStatus {
    cell: SnapshotCell,
    export: Arc<ExportHealth>,
    export_interval: Duration,
    collection: Arc<Mutex<Collection<FsSource>>>,
    procfs: PathBuf,
    /// The exit accounting the collection started with (it never changes).
    accounting: AccountingMode,
}

impl AgentStatus {
    /// A provider over the agent's shared state.
    pub fn new(
        cell: SnapshotCell,
        export: Arc<ExportHealth>,
        export_interval: Duration,
        collection: Arc<Mutex<Collection<FsSource>>>,
        procfs: PathBuf,
    ) -> AgentStatus {
        let accounting = collection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .accounting()
            .clone();
        AgentStatus {
            cell,
            export,
            export_interval,
            collection,
            procfs,
            accounting,
        }
    }

    /// What the tracker knows of `pid`, copied out of the collection's lock.
    fn membership(&self, pid: i32) -> Option<Known> {
        let collection = self
            .collection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Some(match collection.tracker().membership(pid)? {
            Membership::Tracked {
                id,
                group,
                reason,
                history,
            } => Known::Tracked {
                id,
                group: group.to_string(),
                history: naming_history(history),
                parent: match reason {
                    MatchReason::Namer => None,
                    MatchReason::Parent(parent) => Some(parent.pid),
                },
            },
            Membership::Ignored { id } => Known::Ignored { id },
        })
    }
}

/// The cycle `s` is the outcome of; `None` before the first one.
fn cycle_info(s: &Snapshot) -> Option<CycleInfo> {
    let taken_at = s.taken_at?;
    Some(CycleInfo {
        end_time: taken_at + s.cycle_duration,
        duration: s.cycle_duration,
        count: s.cycles,
        errors: s.errors,
        tracked_processes: s.tracked_processes,
        node_cpu: s.node_cpu,
    })
}

/// An owned [`Membership`].
enum Known {
    Tracked {
        id: ID,
        group: String,
        parent: Option<i32>,
        /// Its changes of program, as a sentence (empty: none).
        history: String,
    },
    Ignored {
        id: ID,
    },
}

impl StatusProvider for AgentStatus {
    fn last_cycle_groups(&self) -> (Option<CycleInfo>, GroupByName) {
        let s = self.cell.load();
        (cycle_info(&s), s.groups.clone())
    }

    fn last_cycle(&self) -> Option<CycleInfo> {
        cycle_info(&self.cell.load())
    }

    fn last_export(&self) -> ExportState {
        let s = self.export.status();
        if !s.enabled {
            return ExportState::disabled();
        }
        ExportState {
            enabled: true,
            endpoint: s.endpoint,
            interval: self.export_interval,
            last_attempt: s.last_attempt.map(|end_time| ExportAttempt {
                end_time,
                error: if s.last_ok == Some(false) {
                    Some(s.last_error.unwrap_or_else(|| "unknown error".into()))
                } else {
                    None
                },
            }),
            last_success: s.last_success,
            failures_total: s.failed,
        }
    }

    fn exit_accounting(&self) -> ExitAccountingState {
        ExitAccountingState {
            mode: self.accounting.clone(),
            listener: self.cell.load().exit_listener,
        }
    }

    fn explain(&self, pid: i32) -> PidExplanation {
        let (id, st) = match read_process(&self.procfs, pid) {
            Ok(Some(p)) => p,
            Ok(None) => return PidExplanation::not_found(pid),
            Err(e) => {
                return PidExplanation {
                    reason: format!("cannot read pid {pid} under {}: {e}", self.procfs.display()),
                    ..PidExplanation::not_found(pid)
                };
            }
        };
        // The rules in force, which a reload may have replaced.
        let namer = self
            .collection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tracker()
            .namer()
            .clone();
        let rules = namer.explain(&st.attributes(pid));
        let rule = rules
            .rule
            .and_then(|i| namer.describe().into_iter().nth(i))
            .or_else(|| rules.template.as_ref().map(|t| format!("name {t:?}")));
        let base = PidExplanation {
            pid,
            process: Some(ProcessFacts {
                name: st.name.clone(),
                cmdline: st.cmdline.clone(),
                uid: st.effective_uid,
            }),
            group: None,
            decision: Decision::NotMatched,
            rule: None,
            reason: rules.detail.clone(),
            ancestor_pid: None,
        };
        // The tracker's record counts only if it is about this very process,
        // not an earlier one that held the same pid.
        match self.membership(pid) {
            Some(known) if known.id() == id => explain_known(known, rules, rule, base),
            _ => explain_unseen(rules, rule, base),
        }
    }
}

impl Known {
    /// The identity of the process the record is about.
    fn id(&self) -> ID {
        match self {
            Known::Tracked { id, .. } | Known::Ignored { id } => *id,
        }
    }
}

/// The answer for a process the tracker has seen: its group, and whether
/// it was named by the rules (which may no longer match it, after a reload
/// or an `exec`: it keeps the group it was named into) or inherited its
/// parent's group. `rules` is what the rules say now, `rule` the rule that
/// matched, `base` the answer when not tracked.
fn explain_known(
    known: Known,
    rules: Explanation,
    rule: Option<String>,
    base: PidExplanation,
) -> PidExplanation {
    match known {
        Known::Tracked {
            group,
            parent: None,
            history,
            ..
        } => {
            let reason = if rules.group.is_some() {
                rules.detail
            } else {
                format!(
                    "named when first seen; the rules no longer match it ({})",
                    rules.detail
                )
            } + &history;
            PidExplanation {
                group: Some(group),
                decision: Decision::Matched,
                rule,
                reason,
                ..base
            }
        }
        Known::Tracked {
            group,
            parent: Some(parent),
            history,
            ..
        } => PidExplanation {
            reason: format!(
                "{}; counted in the group of its parent, pid {parent}{history}",
                rules.detail
            ),
            group: Some(group),
            decision: Decision::Inherited,
            ancestor_pid: Some(parent),
            ..base
        },
        Known::Ignored { .. } => base,
    }
}

/// The answer for a process no cycle has seen yet: what the rules say
/// now, marked as pending, since the tracker has not counted it anywhere.
fn explain_unseen(
    rules: Explanation,
    rule: Option<String>,
    base: PidExplanation,
) -> PidExplanation {
    let pending = "not seen by a collection cycle yet";
    match rules.group {
        Some(group) => PidExplanation {
            group: Some(group),
            decision: Decision::Matched,
            rule,
            reason: format!("{} ({pending})", rules.detail),
            ..base
        },
        None => PidExplanation {
            reason: format!("{} ({pending})", rules.detail),
            ..base
        },
    }
}

/// A tracked process's changes of program, as `explain` appends them to
/// its reason: `; named again after exec: sh (group "a") -> java (group
/// "b") at 2026-…` (empty when it never changed).
fn naming_history(history: &[Rename]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for r in history {
        let to_group = match &r.to_group {
            Some(g) => format!("group {g:?}"),
            None => "no group".to_string(),
        };
        let at = humantime::format_rfc3339_seconds(r.at);
        let _ = write!(
            out,
            "; named again after exec: {} (group {:?}) -> {} ({to_group}) at {at}",
            r.from_name, r.from_group, r.to_name
        );
    }
    out
}

/// The identity and naming attributes of `pid`, `None` when it does not
/// exist (or exits while being read).
fn read_process(procfs: &Path, pid: i32) -> Result<Option<(ID, Static)>, String> {
    let mut source =
        FsSource::new(procfs, FsSourceOptions::default()).map_err(|e| e.to_string())?;
    let procs = source.all_procs().map_err(|e| e.to_string())?;
    let Some(mut p) = procs.into_iter().find(|p| p.pid() == pid) else {
        return Ok(None);
    };
    let read = |p: &mut crate::proc::FsProc| -> Result<(ID, Static), ProcError> {
        Ok((p.id()?, p.static_info()?))
    };
    match read(&mut p) {
        Ok(found) => Ok(Some(found)),
        Err(ProcError::Gone { .. }) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}
