//! The protobuf conversions of the status service, both ways: the
//! provider's state and the groups onto the wire for the server, and the
//! groups back for the client, which renders them like `--once`. One module
//! so that the client does not depend on the server and a field added to the
//! wire is converted in both directions in the same place.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::health::HealthPolicy;
use super::pb;
use super::{Decision, ExitAccountingState, PidExplanation, StatusProvider};
use crate::exits::ListenerStats;
use crate::proc::{CollectErrors, Counts, Group, Memory, States, Threads};
use crate::snapshot::{AccountingMode, ExitMode, NodeCpu};

/// The whole `GetSnapshot` answer at `now`.
pub fn snapshot_response(
    provider: &dyn StatusProvider,
    policy: &HealthPolicy,
    now: SystemTime,
) -> pb::GetSnapshotResponse {
    let (cycle, groups) = provider.last_cycle_groups();
    let export = provider.last_export();
    let health = policy.evaluate(now, cycle.as_ref(), &export);
    pb::GetSnapshotResponse {
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        agent_start_time_unix_nano: unix_nanos(Some(policy.start_time)),
        interval_nanos: nanos(policy.interval),
        last_cycle: cycle.map(|c| pb::Cycle {
            end_time_unix_nano: unix_nanos(Some(c.end_time)),
            duration_nanos: nanos(c.duration),
            count: c.count,
            errors: Some(errors_to_pb(c.errors)),
            tracked_processes: c.tracked_processes,
            node_cpu: c.node_cpu.as_ref().map(node_cpu_to_pb),
        }),
        export: Some(pb::Export {
            enabled: export.enabled,
            interval_nanos: nanos(export.interval),
            last_attempt_time_unix_nano: unix_nanos(
                export.last_attempt.as_ref().map(|a| a.end_time),
            ),
            last_attempt_ok: export
                .last_attempt
                .as_ref()
                .is_some_and(|a| a.error.is_none()),
            last_error: export
                .last_attempt
                .and_then(|a| a.error)
                .unwrap_or_default(),
            last_success_time_unix_nano: unix_nanos(export.last_success),
            failures_total: export.failures_total,
            endpoint: export.endpoint,
        }),
        health: Some(pb::Health {
            serving: health.serving,
            reason: health.reason,
        }),
        groups: groups
            .iter()
            .map(|(name, g)| group_to_pb(name, g))
            .collect(),
        exit_accounting: Some(exit_accounting_to_pb(&provider.exit_accounting())),
    }
}

/// The exit accounting on the wire.
pub fn exit_accounting_to_pb(a: &ExitAccountingState) -> pb::ExitAccounting {
    use pb::exit_accounting::Mode;
    let mode = match a.mode.mode {
        ExitMode::Taskstats => Mode::Taskstats,
        ExitMode::Children => Mode::Children,
    };
    pb::ExitAccounting {
        mode: mode as i32,
        reason: a.mode.reason.clone().unwrap_or_default(),
        listener: a.listener.map(|l| pb::ExitListener {
            records: l.records,
            overflows: l.overflows,
            outages: l.outages,
            malformed: l.malformed,
        }),
    }
}

/// The exit accounting back from the wire (for the client); `None` when
/// the mode is not one this client knows (an agent that did not say).
pub fn exit_accounting_from_pb(a: &pb::ExitAccounting) -> Option<ExitAccountingState> {
    use pb::exit_accounting::Mode;
    let mode = match a.mode() {
        Mode::Taskstats => ExitMode::Taskstats,
        Mode::Children => ExitMode::Children,
        Mode::Unspecified => return None,
    };
    Some(ExitAccountingState {
        mode: AccountingMode {
            mode,
            reason: (!a.reason.is_empty()).then(|| a.reason.clone()),
        },
        listener: a.listener.map(|l| ListenerStats {
            records: l.records,
            overflows: l.overflows,
            outages: l.outages,
            malformed: l.malformed,
        }),
    })
}

fn node_cpu_to_pb(n: &NodeCpu) -> pb::NodeCpu {
    pb::NodeCpu {
        node_seconds_total: n.node_seconds_total,
        attributed_seconds_total: n.attributed_seconds_total,
        unattributed_seconds_total: n.unattributed_seconds_total,
        overshoot_cycles: n.overshoot_cycles,
    }
}

/// The node's CPU accounting back from the wire (for the client).
pub fn node_cpu_from_pb(n: &pb::NodeCpu) -> NodeCpu {
    NodeCpu {
        node_seconds_total: n.node_seconds_total,
        attributed_seconds_total: n.attributed_seconds_total,
        unattributed_seconds_total: n.unattributed_seconds_total,
        overshoot_cycles: n.overshoot_cycles,
    }
}

fn errors_to_pb(e: CollectErrors) -> pb::CollectErrors {
    pb::CollectErrors {
        read: e.read,
        partial: e.partial,
    }
}

/// One group, with the fields of the `--once` JSON.
pub fn group_to_pb(name: &str, g: &Group) -> pb::Group {
    pb::Group {
        name: name.to_string(),
        procs: g.procs,
        threads: g.num_threads,
        cpu_user_seconds: g.counts.cpu_user_time,
        cpu_system_seconds: g.counts.cpu_system_time,
        read_bytes: g.counts.read_bytes,
        write_bytes: g.counts.write_bytes,
        major_page_faults: g.counts.major_page_faults,
        minor_page_faults: g.counts.minor_page_faults,
        voluntary_context_switches: g.counts.ctx_switch_voluntary,
        nonvoluntary_context_switches: g.counts.ctx_switch_nonvoluntary,
        resident_bytes: g.memory.resident_bytes,
        virtual_bytes: g.memory.virtual_bytes,
        swap_bytes: g.memory.swap_bytes,
        proportional_resident_bytes: g.memory.proportional_bytes,
        proportional_swap_bytes: g.memory.proportional_swap_bytes,
        open_fds: g.open_fds,
        worst_fd_ratio: g.worst_fd_ratio,
        oldest_start_time_unix_nano: unix_nanos(g.oldest_start_time),
        states: Some(pb::States {
            running: g.states.running,
            sleeping: g.states.sleeping,
            waiting: g.states.waiting,
            zombie: g.states.zombie,
            other: g.states.other,
        }),
        wchans: g.wchans.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        thread_names: g
            .threads
            .iter()
            .map(|t| pb::ThreadName {
                name: t.name.clone(),
                threads: t.num_threads,
                cpu_user_seconds: t.counts.cpu_user_time,
                cpu_system_seconds: t.counts.cpu_system_time,
                read_bytes: t.counts.read_bytes,
                write_bytes: t.counts.write_bytes,
                major_page_faults: t.counts.major_page_faults,
                minor_page_faults: t.counts.minor_page_faults,
                voluntary_context_switches: t.counts.ctx_switch_voluntary,
                nonvoluntary_context_switches: t.counts.ctx_switch_nonvoluntary,
            })
            .collect(),
        io_unknown: !g.io_known,
    }
}

/// The counters of a group or thread-name message, which carry them under
/// the same field names: a macro, since the two are distinct generated
/// types with no trait in common.
macro_rules! counts_from_pb {
    ($m:expr) => {
        Counts {
            cpu_user_time: $m.cpu_user_seconds,
            cpu_system_time: $m.cpu_system_seconds,
            read_bytes: $m.read_bytes,
            write_bytes: $m.write_bytes,
            major_page_faults: $m.major_page_faults,
            minor_page_faults: $m.minor_page_faults,
            ctx_switch_voluntary: $m.voluntary_context_switches,
            ctx_switch_nonvoluntary: $m.nonvoluntary_context_switches,
        }
    };
}

/// The group back from the wire: the inverse of [`group_to_pb`], so that
/// the client renders it with the `--once` functions.
pub fn group_from_pb(g: &pb::Group) -> (String, Group) {
    let states = g.states.unwrap_or_default();
    let group = Group {
        counts: counts_from_pb!(g),
        states: States {
            running: states.running,
            sleeping: states.sleeping,
            waiting: states.waiting,
            zombie: states.zombie,
            other: states.other,
        },
        wchans: g.wchans.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        procs: g.procs,
        memory: Memory {
            resident_bytes: g.resident_bytes,
            virtual_bytes: g.virtual_bytes,
            swap_bytes: g.swap_bytes,
            proportional_bytes: g.proportional_resident_bytes,
            proportional_swap_bytes: g.proportional_swap_bytes,
        },
        oldest_start_time: (g.oldest_start_time_unix_nano != 0)
            .then(|| UNIX_EPOCH + Duration::from_nanos(g.oldest_start_time_unix_nano)),
        open_fds: g.open_fds,
        worst_fd_ratio: g.worst_fd_ratio,
        num_threads: g.threads,
        io_known: !g.io_unknown,
        threads: g
            .thread_names
            .iter()
            .map(|t| Threads {
                name: t.name.clone(),
                num_threads: t.threads,
                counts: counts_from_pb!(t),
            })
            .collect(),
    };
    (g.name.clone(), group)
}

/// An explanation on the wire.
pub fn explanation_to_pb(e: PidExplanation) -> pb::ExplainResponse {
    use pb::explain_response::Decision as D;
    let decision = match e.decision {
        Decision::Matched => D::Matched,
        Decision::Inherited => D::Inherited,
        Decision::NotMatched => D::NotMatched,
        Decision::NotFound => D::NotFound,
    };
    let (found, name, cmdline, uid) = match e.process {
        Some(p) => (true, p.name, p.cmdline, p.uid),
        None => (false, String::new(), Vec::new(), 0),
    };
    pb::ExplainResponse {
        pid: e.pid,
        found,
        name,
        cmdline,
        uid,
        group: e.group.unwrap_or_default(),
        decision: decision as i32,
        rule: e.rule.unwrap_or_default(),
        reason: e.reason,
        ancestor_pid: e.ancestor_pid.unwrap_or(0),
    }
}

/// Unix nanoseconds, 0 for unknown (or before 1970).
fn unix_nanos(t: Option<SystemTime>) -> u64 {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, nanos)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_survives_the_wire_unchanged() {
        let mut g = Group {
            counts: Counts {
                cpu_user_time: 1.5,
                cpu_system_time: 0.25,
                read_bytes: 1,
                write_bytes: 2,
                major_page_faults: 3,
                minor_page_faults: 4,
                ctx_switch_voluntary: 5,
                ctx_switch_nonvoluntary: 6,
            },
            states: States {
                running: 1,
                sleeping: 2,
                waiting: 3,
                zombie: 4,
                other: 5,
            },
            procs: 2,
            memory: Memory {
                resident_bytes: 7,
                virtual_bytes: 8,
                swap_bytes: 9,
                proportional_bytes: 10,
                proportional_swap_bytes: 11,
            },
            oldest_start_time: Some(UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789)),
            open_fds: 12,
            worst_fd_ratio: 0.5,
            num_threads: 13,
            threads: vec![
                Threads {
                    name: "a".into(),
                    num_threads: 1,
                    counts: Counts {
                        cpu_user_time: 0.5,
                        read_bytes: 14,
                        ..Counts::default()
                    },
                },
                Threads {
                    name: "b".into(),
                    num_threads: 12,
                    counts: Counts {
                        ctx_switch_nonvoluntary: 15,
                        ..Counts::default()
                    },
                },
            ],
            ..Group::default()
        };
        g.wchans.insert("futex_wait".into(), 2);
        g.wchans.insert("do_epoll_wait".into(), 11);
        assert_eq!(
            group_from_pb(&group_to_pb("web", &g)),
            ("web".to_owned(), g)
        );

        let empty = Group::default();
        assert_eq!(
            group_from_pb(&group_to_pb("idle", &empty)),
            ("idle".to_owned(), empty)
        );
    }

    #[test]
    fn the_node_cpu_accounting_survives_the_wire_unchanged() {
        let n = NodeCpu {
            node_seconds_total: 15.2,
            attributed_seconds_total: 14.79,
            unattributed_seconds_total: 0.41,
            overshoot_cycles: 3,
        };
        assert_eq!(node_cpu_from_pb(&node_cpu_to_pb(&n)), n);
    }

    #[test]
    fn the_exit_accounting_survives_the_wire_unchanged() {
        let taskstats = ExitAccountingState {
            mode: AccountingMode {
                mode: ExitMode::Taskstats,
                reason: None,
            },
            listener: Some(ListenerStats {
                records: 1234,
                overflows: 5,
                outages: 2,
                malformed: 1,
            }),
        };
        let children = ExitAccountingState {
            mode: AccountingMode {
                mode: ExitMode::Children,
                reason: Some("exit_accounting is set to children".into()),
            },
            listener: None,
        };
        let before_first_cycle = ExitAccountingState {
            listener: None,
            ..taskstats.clone()
        };
        for a in [taskstats, children, before_first_cycle] {
            assert_eq!(exit_accounting_from_pb(&exit_accounting_to_pb(&a)), Some(a));
        }
        // An agent that does not say: no mode, rather than a wrong one.
        assert_eq!(
            exit_accounting_from_pb(&pb::ExitAccounting::default()),
            None
        );
    }
}
