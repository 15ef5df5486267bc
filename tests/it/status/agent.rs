//! The real agent binary with its status socket, asked by the real client
//! commands: `status` shows the live workload's group with its process
//! count, `explain` names the rule that matched the workload (and the parent
//! a child inherited its group from), `health` follows the collector going
//! down and coming back; the socket is owner-only, a second agent on it is
//! refused with exit code 2, and a socket left by a killed agent is
//! replaced; with export off (`OTEL_METRICS_EXPORTER=none`) health
//! follows collection alone and status says that export is disabled.
//! `status` names the exit accounting the startup log names, and with
//! `--exit-accounting children` says why exit records are not used.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use crate::support::procs::status_client as client;
use crate::support::procs::{Agent, Workload, agent_command, stat_fields, unique_name};
use crate::support::receiver::Receiver;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);
const INTERVAL_MS: u64 = 200;
const EXPORT_INTERVALS: u64 = 3;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `f` until it returns `Some`, or fails after [`WAIT`] with `what`.
fn wait_until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn health(socket: &Path) -> (Option<i32>, String) {
    let out = client(socket, &["health"]);
    (out.status.code(), text(&out.stdout) + &text(&out.stderr))
}

/// Parent PIDs from `/proc/PID/stat`, to find the workload's children.
fn children_of(pid: u32) -> Vec<u32> {
    let mut kids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if stat_fields(child, [4]) == Some([u64::from(pid)]) {
            kids.push(child);
        }
    }
    kids
}

struct Setup {
    /// Holds the directory of the socket and the rules for the test's time.
    _dir: tempfile::TempDir,
    socket: PathBuf,
    config: PathBuf,
}

/// A temp dir with a rules file tracking the comm `name` and a socket path.
fn setup(name: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("procgroups.yaml");
    std::fs::write(
        &config,
        format!("process_names:\n  - name: \"{{{{.Comm}}}}\"\n    comm: [{name}]\n"),
    )
    .unwrap();
    let socket = dir.path().join("run/status.sock");
    Setup {
        _dir: dir,
        socket,
        config,
    }
}

fn agent(s: &Setup, endpoint: &str) -> Agent {
    agent_with(s, endpoint, &[])
}

/// [`agent`] with `extra` arguments.
fn agent_with(s: &Setup, endpoint: &str, extra: &[&str]) -> Agent {
    let mut cmd = agent_command();
    cmd.arg("--config")
        .arg(&s.config)
        .args([
            "--interval",
            &format!("{INTERVAL_MS}ms"),
            "--threads",
            "false",
        ])
        .arg("--status-socket")
        .arg(&s.socket)
        .args(["--health-export-intervals", &EXPORT_INTERVALS.to_string()])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("RUST_LOG", "procgroups=info")
        .args(extra);
    Agent::spawn(cmd)
}

/// The startup log line that names the exit accounting.
const ACCOUNTING_LOG: &str = "exit accounting: ";

/// The `exits:` line of a `status` table.
fn exits_line(table: &str) -> &str {
    table
        .lines()
        .find(|l| l.starts_with("exits:"))
        .unwrap_or_else(|| panic!("no exits line:\n{table}"))
}

/// What the client commands said of one live agent over a workload with two
/// children: the agent and the workload are stopped once it is captured,
/// and each test reads it alone.
struct LiveStatus {
    /// The workload's comm, which names its group.
    name: String,
    /// The comm of its children, which match no rule.
    child_name: String,
    workload_pid: u32,
    /// The receiver's endpoint the agent was given.
    endpoint: String,
    /// `status --output json` once the group held all three processes.
    snapshot: Value,
    /// `status` as a table, right after.
    table: Output,
    /// `explain PID` of the workload.
    explained: Output,
    /// `explain PID --output json` of a child.
    explained_child: Output,
    /// The agent's log, once it has said which exit accounting it uses.
    log: String,
}

/// The shared run, captured by whichever test reads it first.
fn live() -> &'static LiveStatus {
    static LIVE: LazyLock<LiveStatus> = LazyLock::new(capture_live_status);
    &LIVE
}

fn capture_live_status() -> LiveStatus {
    let name = unique_name("pgst");
    let child_name = unique_name("pgsk");
    let workload = Workload::named(&name).children(2, &child_name).spawn();
    let kids = children_of(workload.pid);
    assert_eq!(kids.len(), 2, "{kids:?}");

    let receiver = Receiver::start();
    let s = setup(&name);
    let agent = agent(&s, &receiver.endpoint());
    let snapshot: Value = wait_until("the workload's group in `status`", || {
        let out = client(&s.socket, &["status", "--output", "json"]);
        if !out.status.success() {
            return None;
        }
        let v: Value = serde_json::from_str(&text(&out.stdout)).unwrap();
        (v["groups"][&name]["procs"] == 3).then_some(v)
    });
    assert!(
        agent.wait_for_log(ACCOUNTING_LOG, WAIT),
        "no exit accounting in the log: {}",
        agent.log()
    );
    LiveStatus {
        log: agent.log(),
        table: client(&s.socket, &["status"]),
        explained: client(&s.socket, &["explain", &workload.pid.to_string()]),
        explained_child: client(
            &s.socket,
            &["explain", &kids[0].to_string(), "--output", "json"],
        ),
        endpoint: receiver.endpoint(),
        workload_pid: workload.pid,
        snapshot,
        name,
        child_name,
    }
}

#[test]
fn status_shows_the_workload_group_with_its_children() {
    let live = live();
    let (name, snapshot) = (&live.name, &live.snapshot);
    // The workload's group with its three processes (the children match no
    // rule and join their parent's group).
    assert_eq!(
        snapshot["groups"].as_object().unwrap().len(),
        1,
        "{snapshot}"
    );
    assert!(snapshot["groups"][&live.child_name].is_null());
    assert!(snapshot["cycle"]["count"].as_u64().unwrap() >= 1);
    assert_eq!(snapshot["agent"]["interval_seconds"], 0.2);
    assert_eq!(snapshot["export"]["endpoint"], live.endpoint);

    let out = &live.table;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let row = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name.as_str()))
        .unwrap_or_else(|| panic!("no row for {name}:\n{table}"));
    assert_eq!(row.split_whitespace().nth(1), Some("3"), "{table}");
}

#[test]
fn status_names_the_exit_accounting_the_agent_started_with() {
    let live = live();
    let v = &live.snapshot["exit_accounting"];
    let mode = v["mode"].as_str().unwrap_or_else(|| panic!("no mode: {v}"));
    // As root this may be either: exit records also need the host's
    // network namespace. Whichever it is, status and the log agree.
    assert!(
        live.log.contains(&format!("mode=\"{mode}\"")),
        "status says {mode}; the log: {}",
        live.log
    );
    let table = text(&live.table.stdout);
    let line = exits_line(&table);
    match mode {
        "taskstats" => {
            assert!(v["reason"].is_null(), "{v}");
            // Every exit on the node is a record, from the first cycle on.
            let listener = &v["listener"];
            assert!(listener["records"].is_u64(), "{v}");
            assert!(listener["malformed"].is_u64(), "{v}");
            assert!(line.starts_with("exits:   taskstats (records "), "{table}");
        }
        "children" => {
            let reason = v["reason"].as_str().unwrap_or_else(|| panic!("{v}"));
            assert!(!reason.is_empty(), "{v}");
            assert!(live.log.contains(reason), "{reason:?} not in {}", live.log);
            assert!(v["listener"].is_null(), "{v}");
            assert_eq!(
                line,
                format!("exits:   children (reaped-children totals); taskstats not used: {reason}")
            );
        }
        other => panic!("unknown mode {other:?}: {v}"),
    }
}

#[test]
fn with_children_accounting_status_says_children_and_why() {
    let name = unique_name("pgsc");
    let s = setup(&name);
    let receiver = Receiver::start();
    let agent = agent_with(&s, &receiver.endpoint(), &["--exit-accounting", "children"]);
    let v: Value = wait_until("the status service", || {
        let out = client(&s.socket, &["status", "--output", "json"]);
        out.status
            .success()
            .then(|| serde_json::from_str(&text(&out.stdout)).unwrap())
    });
    let reason = "exit_accounting is set to children";
    assert_eq!(
        v["exit_accounting"],
        serde_json::json!({"mode": "children", "reason": reason, "listener": null}),
        "{v}"
    );
    let out = client(&s.socket, &["status"]);
    let table = text(&out.stdout);
    assert_eq!(
        exits_line(&table),
        format!("exits:   children (reaped-children totals); taskstats not used: {reason}")
    );
    assert!(
        agent.wait_for_log("mode=\"children\"", WAIT),
        "{}",
        agent.log()
    );
}

#[test]
fn explain_names_the_rule_that_matched_the_workload() {
    let live = live();
    let name = &live.name;
    let out = &live.explained;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let explained = text(&out.stdout);
    assert!(
        explained.contains(&format!("name:      {name}")),
        "{explained}"
    );
    assert!(
        explained.contains(&format!("group:     {name}")),
        "{explained}"
    );
    assert!(explained.contains("decision:  matched"), "{explained}");
    assert!(
        explained.contains(&format!(
            r#"rule:      [0] name "{{{{.Comm}}}}", comm in ["{name}"]"#
        )),
        "{explained}"
    );
}

#[test]
fn explain_names_the_parent_a_child_inherited_its_group_from() {
    let live = live();
    let out = &live.explained_child;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(v["name"], live.child_name.as_str());
    assert_eq!(v["decision"], "inherited");
    assert_eq!(v["group"], live.name.as_str());
    assert_eq!(v["ancestor_pid"], live.workload_pid);
    assert!(v["rule"].is_null(), "{v}");
    assert!(
        v["reason"].as_str().unwrap().contains("no rule matched"),
        "{v}"
    );
}

#[test]
fn health_follows_the_collector_going_down_and_coming_back() {
    let name = unique_name("pgsh");
    let _workload = Workload::spawn(&["--name", &name]);
    let receiver = Receiver::start();
    let addr = receiver.addr();
    let s = setup(&name);
    let mut agent = agent(&s, &receiver.endpoint());

    // SERVING once exports get through ...
    wait_until("a successful export", || {
        let out = client(&s.socket, &["status", "--output", "json"]);
        let v: Value = serde_json::from_str(&text(&out.stdout)).ok()?;
        (v["export"]["last_attempt_ok"] == true).then_some(())
    });
    let said = wait_until("health to report SERVING", || {
        let (code, said) = health(&s.socket);
        (code == Some(0)).then_some(said)
    });
    assert_eq!(said.trim(), "SERVING");

    // ... NOT_SERVING once the collector has been down for more than
    // EXPORT_INTERVALS export intervals ...
    drop(receiver);
    let down = Instant::now();
    // (Under a heavy load a late cycle could also fail it; wait for the
    // export's verdict.)
    let said = wait_until("health to report NOT_SERVING for the export", || {
        let (code, out) = health(&s.socket);
        (code == Some(1) && out.contains("no successful export for")).then_some(out)
    });
    let waited = down.elapsed();
    assert!(said.starts_with("NOT_SERVING: "), "{said}");
    // The last success came at most one export interval before the
    // collector went away, so the verdict cannot change sooner than this.
    let earliest = Duration::from_millis(INTERVAL_MS * (EXPORT_INTERVALS - 1));
    assert!(
        waited >= earliest,
        "NOT_SERVING after {waited:?}, before {EXPORT_INTERVALS} intervals"
    );
    assert!(
        agent.is_running(),
        "the agent keeps running: {}",
        agent.log()
    );
    // The liveness verdict only asks whether cycles run: a collector
    // outage must not get the agent restarted.
    let alive = client(&s.socket, &["health", "--liveness"]);
    assert_eq!(
        alive.status.code(),
        Some(0),
        "liveness during the outage: {}",
        text(&alive.stdout) + &text(&alive.stderr)
    );

    // ... and SERVING again when it is back.
    let receiver = Receiver::start_on(addr);
    wait_until("health to report SERVING again", || {
        (health(&s.socket).0 == Some(0)).then_some(())
    });
    assert!(receiver.attempts() > 0);

    // At exit the agent removes its socket.
    agent.terminate();
    let status = agent.wait_timeout(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{status:?}: {}", agent.log());
    assert!(!s.socket.exists(), "the socket is removed at exit");
}

#[test]
fn the_socket_is_owner_only_and_held_by_one_agent() {
    let name = unique_name("pgso");
    let s = setup(&name);
    let receiver = Receiver::start();
    let first = agent(&s, &receiver.endpoint());
    wait_until("the first agent's status service", || {
        client(&s.socket, &["status"])
            .status
            .success()
            .then_some(())
    });

    let meta = std::fs::symlink_metadata(&s.socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.mode() & 0o777, 0o600, "mode {:o}", meta.mode() & 0o777);
    assert_eq!(meta.uid(), rustix::process::geteuid().as_raw());

    // A second agent on the same socket stops at once, saying why.
    let mut second = agent(&s, &receiver.endpoint());
    let status = second
        .wait_timeout(WAIT)
        .expect("the second agent did not exit");
    assert_eq!(status.code(), Some(2), "{}", second.log());
    let log = second.log();
    assert!(
        log.contains(&format!(
            "another procgroups agent (pid {}) is already serving the status socket {}",
            first.pid(),
            s.socket.display()
        )),
        "{log}"
    );
    // The first one is untouched.
    assert!(client(&s.socket, &["health"]).status.success());
    drop(first);
}

#[test]
fn a_socket_left_by_a_killed_agent_is_replaced() {
    let name = unique_name("pgsr");
    let s = setup(&name);
    let receiver = Receiver::start();
    let killed = agent(&s, &receiver.endpoint());
    wait_until("the first agent's status service", || {
        client(&s.socket, &["status"])
            .status
            .success()
            .then_some(())
    });
    // SIGKILL: no chance to remove the socket.
    drop(killed);
    assert!(s.socket.exists(), "a killed agent leaves its socket");
    let out = client(&s.socket, &["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot reach the agent"));

    let mut next = agent(&s, &receiver.endpoint());
    wait_until("the next agent's status service", || {
        client(&s.socket, &["status"])
            .status
            .success()
            .then_some(())
    });
    assert!(next.is_running());
    assert!(
        next.log().contains("removed stale status socket"),
        "{}",
        next.log()
    );
}

#[test]
fn explain_tells_ignored_processes_from_those_not_seen_yet() {
    let name = unique_name("pgsy");
    let other = unique_name("pgsn");
    let ignored = Workload::spawn(&["--name", &other]);
    let s = setup(&name);
    let receiver = Receiver::start();
    // One cycle at the start, the next one an hour later.
    let mut cmd = agent_command();
    cmd.arg("--config")
        .arg(&s.config)
        .args(["--interval", "1h", "--threads", "false"])
        .arg("--status-socket")
        .arg(&s.socket)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint());
    let _agent = Agent::spawn(cmd);
    wait_until("the first cycle", || {
        let out = client(&s.socket, &["status", "--output", "json"]);
        let v: Value = serde_json::from_str(&text(&out.stdout)).ok()?;
        (v["cycle"]["count"] == 1).then_some(())
    });

    let out = client(
        &s.socket,
        &["explain", &ignored.pid.to_string(), "--output", "json"],
    );
    let v: Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(v["decision"], "not_matched", "{v}");
    assert!(v["group"].is_null(), "{v}");
    assert!(!v["reason"].as_str().unwrap().contains("not seen"), "{v}");
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("comm {other:?} is not one of")),
        "{v}"
    );

    let fresh = Workload::spawn(&["--name", &name]);
    let out = client(
        &s.socket,
        &["explain", &fresh.pid.to_string(), "--output", "json"],
    );
    let v: Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(v["decision"], "matched", "{v}");
    assert_eq!(v["group"], name.as_str());
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .ends_with("(not seen by a collection cycle yet)"),
        "{v}"
    );
}

#[test]
fn with_export_off_health_follows_collection_alone() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("status.sock");
    let mut cmd = agent_command();
    // Cycles every second (health allows two), exports (if any) every
    // 200 ms, and NOT_SERVING after one export interval without one.
    cmd.args(["--interval", "1s", "--threads", "false"])
        .args(["--health-export-intervals", "1"])
        .arg("--status-socket")
        .arg(&socket)
        .env("OTEL_METRICS_EXPORTER", "none")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "200")
        .env("RUST_LOG", "procgroups=info");
    let mut agent = Agent::spawn(cmd);

    wait_until("a second cycle", || {
        let out = client(&socket, &["status", "--output", "json"]);
        let v: Value = serde_json::from_str(&text(&out.stdout)).ok()?;
        (v["cycle"]["count"].as_u64()? >= 2).then_some(())
    });
    // Well past one export interval: an agent waiting for an export would
    // be NOT_SERVING for it by now. (On a loaded machine a cycle may be
    // late, which is another verdict; the export must never be the reason.)
    let mut verdicts = Vec::new();
    for _ in 0..10 {
        let out = client(&socket, &["health"]);
        verdicts.push((out.status.code(), text(&out.stdout) + &text(&out.stderr)));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        verdicts.iter().all(|(_, said)| !said.contains("export")),
        "{verdicts:#?}"
    );
    assert!(
        verdicts
            .iter()
            .any(|(code, said)| *code == Some(0) && said.trim() == "SERVING"),
        "{verdicts:#?}"
    );

    let out = client(&socket, &["status", "--output", "json"]);
    let v: Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(v["export"]["enabled"], false, "{v}");
    assert!(v["export"]["endpoint"].is_null(), "{v}");
    let out = client(&socket, &["status"]);
    assert!(
        text(&out.stdout).contains("export:  disabled"),
        "{}",
        text(&out.stdout)
    );

    agent.terminate();
    let status = agent.wait_timeout(WAIT).unwrap();
    assert!(status.success(), "{}", agent.log());
    let log = agent.log();
    assert!(!log.contains("final export done"), "{log}");
    assert!(log.contains("nothing to export; stopped"), "{log}");
}
