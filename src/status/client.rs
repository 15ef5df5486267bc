//! The client commands `procgroups status`, `procgroups explain PID` and
//! `procgroups health`: connect to a running agent's status socket, ask, and
//! print a table or JSON. Exit codes: 0 when answered (for `health`: when
//! SERVING; for `explain`: when the process exists), 1 otherwise, including
//! when the agent cannot be reached.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tonic::transport::{Channel, Endpoint, Uri};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::ExitAccountingState;
use super::convert::{exit_accounting_from_pb, group_from_pb, node_cpu_from_pb};
use super::health::{fmt as fmt_duration, fmt_age};
use super::pb;
use super::pb::status_client::StatusClient;
use crate::cli::{Command, OutputFormat, SocketArg};
use crate::containers::split;
use crate::output;
use crate::proc::GroupByName;
use crate::snapshot::ExitMode;

/// How long a client command waits for the agent, connecting and answering.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Why a client command could not get its answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket is switched off by configuration.
    #[error("the status socket is disabled (--socket none)")]
    Disabled,
    /// The agent could not be reached.
    #[error(
        "cannot reach the agent at {}: {reason} (is it running? point to its socket with --socket or PROCGROUPS_STATUS_SOCKET)",
        .path.display()
    )]
    Connect {
        /// The socket path tried.
        path: PathBuf,
        /// The underlying error, with its causes.
        reason: String,
    },
    /// The agent answered with an error.
    #[error("the agent answered: {0}")]
    Rpc(#[from] tonic::Status),
    /// The async runtime could not start.
    #[error("starting the client runtime: {0}")]
    Runtime(#[from] io::Error),
}

/// Runs one client command and returns the process exit code.
pub fn run(command: &Command) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(&ClientError::Runtime(e)),
    };
    let result = runtime.block_on(async {
        match command {
            Command::Status { socket, output } => status(socket, *output).await,
            Command::Explain {
                pid,
                socket,
                output,
            } => explain(socket, *pid, *output).await,
            Command::Health { socket, liveness } => health(socket, *liveness).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => fail(&e),
    }
}

fn fail(e: &ClientError) -> ExitCode {
    eprintln!("procgroups: {e}");
    ExitCode::from(1)
}

/// The socket a client command talks to.
pub fn socket_path(arg: &SocketArg) -> Result<PathBuf, ClientError> {
    match &arg.socket {
        Some(p) if super::socket_disabled(p) => Err(ClientError::Disabled),
        Some(p) => Ok(p.clone()),
        None => Ok(super::default_socket_path()),
    }
}

/// Opens a gRPC channel over the Unix socket at `path`.
pub async fn connect(path: &Path) -> Result<Channel, ClientError> {
    let target = path.to_path_buf();
    let connector = tower::service_fn(move |_: Uri| {
        let target = target.clone();
        async move {
            let stream = tokio::net::UnixStream::connect(target).await?;
            Ok::<_, io::Error>(TokioIo::new(stream))
        }
    });
    // The URI is required by the HTTP/2 layer and otherwise unused: the
    // connector ignores it and dials the socket.
    Endpoint::from_static("http://localhost")
        .connect_timeout(TIMEOUT)
        .timeout(TIMEOUT)
        .connect_with_connector(connector)
        .await
        .map_err(|e| ClientError::Connect {
            path: path.to_path_buf(),
            reason: error_chain(&e),
        })
}

/// `e: cause: cause`, skipping causes that repeat their parent's text.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut last = out.clone();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !last.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        last = text;
        source = s.source();
    }
    out
}

/// Largest answer the client accepts. A snapshot at the default caps
/// (1,000 groups of up to 100 thread names each) is about 8 MB, over
/// tonic's default of 4 MiB.
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

fn status_client(channel: Channel) -> StatusClient<Channel> {
    StatusClient::new(channel).max_decoding_message_size(MAX_ANSWER_BYTES)
}

async fn status(socket: &SocketArg, output: OutputFormat) -> Result<ExitCode, ClientError> {
    let channel = connect(&socket_path(socket)?).await?;
    let snapshot = status_client(channel)
        .get_snapshot(pb::GetSnapshotRequest {})
        .await?
        .into_inner();
    let text = match output {
        OutputFormat::Table => snapshot_table(&snapshot, SystemTime::now()),
        OutputFormat::Json => pretty(&snapshot_json(&snapshot)),
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

async fn explain(
    socket: &SocketArg,
    pid: i32,
    output: OutputFormat,
) -> Result<ExitCode, ClientError> {
    let channel = connect(&socket_path(socket)?).await?;
    let answer = status_client(channel)
        .explain(pb::ExplainRequest { pid })
        .await?
        .into_inner();
    let text = match output {
        OutputFormat::Table => explain_table(&answer),
        OutputFormat::Json => pretty(&explain_json(&answer)),
    };
    print!("{text}");
    Ok(if answer.found {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn health(socket: &SocketArg, liveness: bool) -> Result<ExitCode, ClientError> {
    let channel = connect(&socket_path(socket)?).await?;
    let service = if liveness {
        super::LIVENESS_SERVICE_NAME
    } else {
        ""
    };
    let status = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: service.to_string(),
        })
        .await?
        .into_inner()
        .status();
    if status == ServingStatus::Serving {
        println!("SERVING");
        return Ok(ExitCode::SUCCESS);
    }
    // The reason is for the person reading a failed probe; the verdict
    // stands even when it cannot be fetched.
    let reason = status_client(channel)
        .get_snapshot(pb::GetSnapshotRequest {})
        .await
        .ok()
        .and_then(|r| r.into_inner().health)
        .map(|h| format!(": {}", h.reason))
        .unwrap_or_default();
    println!("{}{reason}", status.as_str_name());
    Ok(ExitCode::from(1))
}

fn pretty(v: &Value) -> String {
    let mut s =
        serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}

/// Unix nanoseconds on the wire → seconds, `None` for 0 (unknown).
fn secs(unix_nano: u64) -> Option<f64> {
    (unix_nano != 0).then(|| unix_nano as f64 / 1e9)
}

fn time(unix_nano: u64) -> Option<SystemTime> {
    (unix_nano != 0).then(|| UNIX_EPOCH + Duration::from_nanos(unix_nano))
}

fn ago(now: SystemTime, unix_nano: u64) -> String {
    match time(unix_nano) {
        Some(t) => format!(
            "{} ago",
            fmt_age(now.duration_since(t).unwrap_or(Duration::ZERO))
        ),
        None => "never".to_string(),
    }
}

fn errors_json(e: Option<&pb::CollectErrors>) -> Value {
    let e = e.copied().unwrap_or_default();
    json!({"read": e.read, "partial": e.partial})
}

/// The `status --output json` document: the `groups` and `errors` of the
/// `--once` JSON (errors summed since the agent started), plus the agent's
/// own state.
pub fn snapshot_json(s: &pb::GetSnapshotResponse) -> Value {
    let groups: Map<String, Value> = s
        .groups
        .iter()
        .map(|g| {
            let (name, group) = group_from_pb(g);
            output::keyed_group_value(&name, &group)
        })
        .collect();
    let cycle = s.last_cycle.as_ref().map_or(Value::Null, |c| {
        json!({
            "end_time_seconds": secs(c.end_time_unix_nano),
            "duration_seconds": c.duration_nanos as f64 / 1e9,
            "count": c.count,
            "tracked_processes": c.tracked_processes,
        })
    });
    let coverage = s
        .last_cycle
        .as_ref()
        .and_then(|c| c.node_cpu.as_ref())
        .map_or(Value::Null, |n| {
            output::coverage_value(&node_cpu_from_pb(n))
        });
    let export = s.export.clone().unwrap_or_default();
    let attempted = export.last_attempt_time_unix_nano != 0;
    let health = s.health.clone().unwrap_or_default();
    json!({
        "agent": {
            "version": s.agent_version,
            "start_time_seconds": secs(s.agent_start_time_unix_nano),
            "interval_seconds": s.interval_nanos as f64 / 1e9,
        },
        "health": {"serving": health.serving, "reason": health.reason},
        "cycle": cycle,
        "export": {
            "enabled": export.enabled,
            "endpoint": (!export.endpoint.is_empty()).then_some(export.endpoint.clone()),
            "interval_seconds": export.interval_nanos as f64 / 1e9,
            "last_attempt_time_seconds": secs(export.last_attempt_time_unix_nano),
            "last_attempt_ok": attempted.then_some(export.last_attempt_ok),
            "last_error": (!export.last_error.is_empty()).then_some(export.last_error),
            "last_success_time_seconds": secs(export.last_success_time_unix_nano),
            "failures_total": export.failures_total,
        },
        "exit_accounting": exit_accounting_json(accounting(s).as_ref()),
        "groups": groups,
        "errors": errors_json(s.last_cycle.as_ref().and_then(|c| c.errors.as_ref())),
        "coverage": coverage,
    })
}

/// The exit accounting an agent reported, `None` when it did not say.
fn accounting(s: &pb::GetSnapshotResponse) -> Option<ExitAccountingState> {
    s.exit_accounting.as_ref().and_then(exit_accounting_from_pb)
}

/// `{"mode", "reason", "listener"}`: `reason` is why taskstats exit
/// records are not used (null when they are), `listener` the exit
/// listener's counters (null outside the taskstats mode and before the
/// first cycle); null altogether from an agent that did not say.
fn exit_accounting_json(a: Option<&ExitAccountingState>) -> Value {
    let Some(a) = a else {
        return Value::Null;
    };
    json!({
        "mode": a.mode.mode.as_str(),
        "reason": a.mode.reason,
        "listener": a.listener.map(|l| json!({
            "records": l.records,
            "overflows": l.overflows,
            "outages": l.outages,
            "malformed": l.malformed,
        })),
    })
}

/// The `status` table: the agent's state, then one row per group.
pub fn snapshot_table(s: &pb::GetSnapshotResponse, now: SystemTime) -> String {
    let mut out = String::new();
    let up = ago(now, s.agent_start_time_unix_nano);
    let _ = writeln!(
        out,
        "agent:   procgroups {}, started {up}, interval {}",
        s.agent_version,
        fmt_duration(Duration::from_nanos(s.interval_nanos))
    );
    let health = s.health.clone().unwrap_or_default();
    let _ = writeln!(
        out,
        "health:  {} ({})",
        if health.serving {
            "SERVING"
        } else {
            "NOT_SERVING"
        },
        health.reason
    );
    cycle_lines(&mut out, s.last_cycle.as_ref(), now);
    export_line(&mut out, &s.export.clone().unwrap_or_default(), now);
    if let Some(a) = accounting(s) {
        let _ = writeln!(out, "exits:   {}", exit_accounting_text(&a));
    }
    out.push('\n');

    let groups: GroupByName = s.groups.iter().map(group_from_pb).collect();
    out.push_str(&output::group_table(&groups, Some(now)));
    out
}

/// The last cycle: when it ended, how long it took, what it tracked and
/// the errors so far, then the node's CPU coverage when the agent measures
/// it (the same line as `--once` prints).
fn cycle_lines(out: &mut String, cycle: Option<&pb::Cycle>, now: SystemTime) {
    let Some(c) = cycle else {
        let _ = writeln!(out, "cycle:   none completed yet");
        return;
    };
    let e = c.errors.unwrap_or_default();
    let _ = writeln!(
        out,
        "cycle:   #{} ended {}, took {}, {} processes tracked; errors since start: read {}, partial {}",
        c.count,
        ago(now, c.end_time_unix_nano),
        fmt_duration(Duration::from_nanos(c.duration_nanos)),
        c.tracked_processes,
        e.read,
        e.partial
    );
    if let Some(n) = &c.node_cpu {
        let _ = writeln!(out, "{}", output::coverage_line(&node_cpu_from_pb(n)));
    }
}

/// Where exports go and how the last one went: a failure shows its error
/// and when the last success was, which is what an operator needs first.
fn export_line(out: &mut String, export: &pb::Export, now: SystemTime) {
    if !export.enabled {
        let _ = writeln!(out, "export:  disabled");
        return;
    }
    let last = if export.last_attempt_time_unix_nano == 0 {
        "no export yet".to_string()
    } else if export.last_attempt_ok {
        format!("last ok {}", ago(now, export.last_attempt_time_unix_nano))
    } else {
        format!(
            "last FAILED {}: {}; last success {}",
            ago(now, export.last_attempt_time_unix_nano),
            export.last_error,
            ago(now, export.last_success_time_unix_nano)
        )
    };
    let _ = writeln!(
        out,
        "export:  to {} every {}, {last}, {} failures since start",
        export.endpoint,
        fmt_duration(Duration::from_nanos(export.interval_nanos)),
        export.failures_total
    );
}

/// The exit accounting in words: the mode with the listener's counters,
/// or the reaped-children mode with why exit records are not used (which
/// is what an operator who expected them needs).
fn exit_accounting_text(a: &ExitAccountingState) -> String {
    match (a.mode.mode, a.listener) {
        (ExitMode::Children, _) => format!(
            "children (reaped-children totals); taskstats not used: {}",
            a.mode.reason.as_deref().unwrap_or("no reason given")
        ),
        (ExitMode::Taskstats, Some(l)) => format!(
            "taskstats (records {}, overflows {}, outages {}, malformed {})",
            l.records, l.overflows, l.outages, l.malformed
        ),
        (ExitMode::Taskstats, None) => "taskstats (no counts before the first cycle)".into(),
    }
}

fn decision_word(d: pb::explain_response::Decision) -> &'static str {
    use pb::explain_response::Decision as D;
    match d {
        D::Matched => "matched",
        D::Inherited => "inherited",
        D::NotMatched => "not matched",
        D::NotFound => "not found",
        D::Unspecified => "unknown",
    }
}

/// The `explain --output json` document.
pub fn explain_json(e: &pb::ExplainResponse) -> Value {
    let nonempty = |s: &String| (!s.is_empty()).then(|| s.clone());
    json!({
        "pid": e.pid,
        "found": e.found,
        "name": e.found.then(|| e.name.clone()),
        "cmdline": e.found.then(|| e.cmdline.clone()),
        "uid": e.found.then_some(e.uid),
        "group": nonempty(&e.group).map(|g| split::decode(&g).0.to_string()),
        "container": split::decode(&e.group).1.map(|c| {
            c.pairs().map(|(k, v)| (k.to_string(), Value::from(v))).collect::<Map<String, Value>>()
        }),
        "decision": decision_word(e.decision()).replace(' ', "_"),
        "rule": nonempty(&e.rule),
        "reason": e.reason,
        "ancestor_pid": (e.ancestor_pid != 0).then_some(e.ancestor_pid),
    })
}

/// `s` with every control character shown as `?`.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The `explain` text.
pub fn explain_table(e: &pb::ExplainResponse) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "pid:       {}", e.pid);
    if e.found {
        // Any user chooses their process's comm and argv: no terminal
        // escapes or newlines reach the reader's terminal.
        let _ = writeln!(out, "name:      {}", printable(&e.name));
        let _ = writeln!(out, "cmdline:   {}", printable(&e.cmdline.join(" ")));
        let _ = writeln!(out, "uid:       {}", e.uid);
    }
    let (group, container) = split::decode(&e.group);
    let _ = writeln!(
        out,
        "group:     {}",
        if group.is_empty() { "(none)" } else { group }
    );
    if let Some(c) = container {
        for (k, v) in c.pairs() {
            let _ = writeln!(out, "{:<10} {v}", format!("{k}:"));
        }
    }
    let _ = writeln!(out, "decision:  {}", decision_word(e.decision()));
    if !e.rule.is_empty() {
        let _ = writeln!(out, "rule:      {}", e.rule);
    }
    if e.ancestor_pid != 0 {
        let _ = writeln!(out, "ancestor:  {}", e.ancestor_pid);
    }
    let _ = writeln!(out, "reason:    {}", e.reason);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proc::{Counts, Group, Threads};
    use crate::snapshot::Snapshot;
    use crate::status::convert::group_to_pb;

    #[test]
    fn status_shows_a_group_exactly_as_once_does() {
        let busy = Group {
            procs: 2,
            num_threads: 3,
            oldest_start_time: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            counts: Counts {
                cpu_user_time: 1.25,
                read_bytes: 4096,
                ..Counts::default()
            },
            threads: vec![Threads {
                name: "worker".into(),
                num_threads: 2,
                counts: Counts::default(),
            }],
            ..Group::default()
        };
        let mut snapshot = Snapshot::default();
        snapshot.groups.insert("busy".into(), busy.clone());
        snapshot.groups.insert("idle".into(), Group::default());
        let response = pb::GetSnapshotResponse {
            groups: vec![
                group_to_pb("busy", &busy),
                group_to_pb("idle", &Group::default()),
            ],
            ..Default::default()
        };

        let once: Value = serde_json::from_str(&output::json(&snapshot)).unwrap();
        assert_eq!(snapshot_json(&response)["groups"], once["groups"]);
        assert!(once["groups"]["idle"]["oldest_start_time_seconds"].is_null());

        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_060);
        let status = snapshot_table(&response, now);
        let groups = output::group_table(&snapshot.groups, Some(now));
        assert!(status.ends_with(&groups), "{status}\n---\n{groups}");
        assert!(
            groups.lines().nth(1).unwrap().ends_with("1m00s"),
            "{groups}"
        );
    }

    #[test]
    fn explain_text_shows_no_control_characters() {
        let e = pb::ExplainResponse {
            pid: 7,
            found: true,
            name: "evil\u{1b}[2J".into(),
            cmdline: vec!["a\nb".into(), "c".into()],
            ..Default::default()
        };
        let text = explain_table(&e);
        assert!(text.contains("name:      evil?[2J\n"), "{text}");
        assert!(text.contains("cmdline:   a?b c\n"), "{text}");
    }

    #[test]
    fn explain_shows_the_group_and_its_container_apart() {
        use crate::containers::{ContainerInfo, PodUid};
        let info = ContainerInfo {
            pod_uid: PodUid::parse("0b7e1c3a-5d2f-4e6a-9b8c-7d6e5f4a3b2c"),
            namespace: Some("shop".into()),
            ..ContainerInfo::default()
        };
        let e = pb::ExplainResponse {
            pid: 7,
            found: true,
            group: split::encode("java", &info),
            ..Default::default()
        };
        let text = explain_table(&e);
        assert!(text.contains("group:     java\n"), "{text}");
        assert!(
            text.contains("k8s.pod.uid: 0b7e1c3a-5d2f-4e6a-9b8c-7d6e5f4a3b2c\n"),
            "{text}"
        );
        assert!(text.contains("k8s.namespace.name: shop\n"), "{text}");
        assert!(!text.contains('\u{1f}'), "{text}");
        let v = explain_json(&e);
        assert_eq!(v["group"], "java");
        assert_eq!(v["container"]["k8s.namespace.name"], "shop");
        assert!(v["container"].get("container.id").is_none(), "{v}");
    }

    #[test]
    fn error_chain_keeps_distinct_causes() {
        #[derive(Debug, thiserror::Error)]
        #[error("transport error")]
        struct Outer(#[source] io::Error);
        let inner = io::Error::new(io::ErrorKind::ConnectionRefused, "connection refused");
        assert_eq!(
            error_chain(&Outer(inner)),
            "transport error: connection refused"
        );
        #[derive(Debug, thiserror::Error)]
        #[error("dial: connection refused")]
        struct Repeating(#[source] io::Error);
        let inner = io::Error::new(io::ErrorKind::ConnectionRefused, "connection refused");
        assert_eq!(error_chain(&Repeating(inner)), "dial: connection refused");
    }
}
