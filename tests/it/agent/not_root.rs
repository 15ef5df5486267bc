//! The agent run as an unprivileged user (nobody, uid 65534, through
//! util-linux's `setpriv` when the tests run as root) on the live `/proc`:
//! it starts, groups every process it can see, counts a partial error for
//! each process whose `io` and `fd/` only their owner may read, and logs one
//! line saying which capabilities would give the full picture.
//!
//! Two workloads show the difference: one owned by root (the agent sees its
//! stat, status and cmdline but not its descriptors or its I/O) and one
//! owned by nobody (read in full). I/O that could not be read is unknown:
//! `null` in the JSON, `-` in the table, and no disk I/O series exported.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::otlp::{select, value};
use crate::support::procs::{Agent, Workload, agent_command, unique_name};
use crate::support::receiver::Receiver;
use procgroups::telemetry::catalogue as cat;

const NOBODY: u32 = 65534;
const WAIT: Duration = Duration::from_secs(20);

/// The test binaries, copied where nobody may execute them (the build
/// directory may sit under a directory only root can enter).
struct Binaries {
    _dir: tempfile::TempDir,
    agent: PathBuf,
    workload: PathBuf,
}

fn binaries() -> Binaries {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = |from: &str| {
        let to = dir.path().join(Path::new(from).file_name().unwrap());
        std::fs::copy(from, &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
        to
    };
    Binaries {
        agent: copy(env!("CARGO_BIN_EXE_procgroups")),
        workload: copy(env!("CARGO_BIN_EXE_procgroups-workload")),
        _dir: dir,
    }
}

/// `program` as nobody: through `setpriv` when the tests run as root,
/// directly when they already run unprivileged.
fn as_nobody(program: &Path) -> Command {
    if rustix::process::geteuid().is_root() {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
        ])
        .arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

/// The agent command of `crate::support::procs`, for the copied binary, as nobody.
fn agent_as_nobody(bins: &Binaries) -> Command {
    let template = agent_command();
    let mut cmd = as_nobody(&bins.agent);
    for (k, v) in template.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    // The agent's working directory must be one nobody may enter.
    cmd.current_dir("/");
    cmd
}

/// A workload run as nobody; it exits when dropped.
fn nobody_workload(bins: &Binaries, name: &str) -> Workload {
    let mut cmd = as_nobody(&bins.workload);
    cmd.args(["--name", name, "--files", "2"]).current_dir("/");
    Workload::start(cmd)
}

/// (pid, start time, comm) of every process with a non-empty command line
/// now: what the default rules track.
fn processes_with_cmdline() -> BTreeSet<(i32, u64, String)> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let (Ok(stat), Ok(cmdline)) = (
            std::fs::read(format!("/proc/{pid}/stat")),
            std::fs::read(format!("/proc/{pid}/cmdline")),
        ) else {
            continue;
        };
        if cmdline.iter().all(|&b| b == 0) {
            continue;
        }
        let stat = String::from_utf8_lossy(&stat).into_owned();
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let start: u64 = stat[close + 1..]
            .split_whitespace()
            .nth(19)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        out.insert((pid, start, comm));
    }
    out
}

/// The lines of `log` that mention both capabilities.
fn capability_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("CAP_SYS_PTRACE") && l.contains("CAP_DAC_READ_SEARCH"))
        .collect()
}

#[test]
fn once_as_nobody_groups_what_it_sees_and_counts_what_it_cannot_read() {
    let bins = binaries();
    let root_name = unique_name("pgnrr");
    let nobody_name = unique_name("pgnrn");
    let root_workload = Workload::spawn(&["--name", &root_name, "--files", "2"]);
    let _nobody_workload = nobody_workload(&bins, &nobody_name);

    let before = processes_with_cmdline();
    let out = agent_as_nobody(&bins)
        .args(["--once", "--output", "json", "--once-delay", "300ms"])
        .output()
        .unwrap();
    let after = processes_with_cmdline();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let groups = json["groups"].as_object().unwrap();

    // Every process that lived through the run is in its group (the
    // default rules group every process with a command line by comm).
    let stable: BTreeSet<&String> = before
        .intersection(&after)
        .map(|(_, _, comm)| comm)
        .collect();
    let missing: Vec<&&String> = stable
        .iter()
        .filter(|c| !groups.contains_key(c.as_str()))
        .collect();
    assert!(missing.is_empty(), "not grouped: {missing:?}\n{json}");

    // Nothing was unreadable at the level that names a process...
    assert_eq!(json["errors"]["read"], 0, "{json}");
    // ...but every process of another user was read only in part.
    let partial = json["errors"]["partial"].as_u64().unwrap();
    assert!(partial >= 1, "{json}");

    // The root-owned workload is counted with what nobody may read: its
    // descriptors are counted from the size of its `fd/` (kernels since 6.2
    // give it without the right to list them), or unknown on older ones
    // (left out of the sum, never a made-up 0 for a known value).
    let g = &groups[&root_name];
    assert_eq!(g["procs"], 1, "{g}");
    let fds = g["open_fds"].as_u64().unwrap();
    assert!(
        fds == root_workload.open_fds() as u64 || fds == 0,
        "{fds} open fds for {}: {g}",
        root_workload.open_fds()
    );
    // Its I/O could not be read: unknown, not 0.
    assert!(g["read_bytes"].is_null(), "{g}");
    assert!(g["write_bytes"].is_null(), "{g}");
    let g = &groups[&nobody_name];
    assert_eq!(g["procs"], 1, "{g}");
    assert!(g["read_bytes"].is_u64(), "{g}");
    assert!(g["write_bytes"].is_u64(), "{g}");

    let lines = capability_lines(&stderr);
    assert_eq!(lines.len(), 1, "one capability line: {stderr}");
    assert!(lines[0].contains("WARN"), "{}", lines[0]);
    assert!(lines[0].contains("uid 65534"), "{}", lines[0]);
    assert!(!stderr.contains("panicked"), "{stderr}");
    root_workload.stop();
}

#[test]
fn nobody_reading_only_its_own_processes_has_nothing_to_report() {
    let bins = binaries();
    let name = unique_name("pgnro");
    let _workload = nobody_workload(&bins, &name);
    let out = agent_as_nobody(&bins)
        .args(["--once", "--output", "json", "--once-delay", "200ms"])
        .args(["--procnames", &name])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["errors"]["read"], 0, "{json}");
    assert_eq!(json["errors"]["partial"], 0, "{json}");
    let g = &json["groups"][&name];
    assert_eq!(g["procs"], 1, "{g}");
    // Its own descriptors: 3 standard, 2 files, and whatever it inherited.
    assert!(g["open_fds"].as_u64().unwrap() >= 5, "{g}");
    assert!(g["worst_fd_ratio"].as_f64().unwrap() > 0.0, "{g}");
    assert_eq!(capability_lines(&stderr), Vec::<&str>::new(), "{stderr}");
}

#[test]
fn running_agent_as_nobody_exports_and_says_once_what_it_lacks() {
    let bins = binaries();
    let root_name = unique_name("pgnra");
    let root_workload = Workload::spawn(&["--name", &root_name, "--threads", "2"]);
    let receiver = Receiver::start();
    let mut cmd = agent_as_nobody(&bins);
    cmd.args([
        "--procnames",
        &root_name,
        "--interval",
        "200ms",
        "--threads",
        "false",
    ])
    .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
    .env("OTEL_METRIC_EXPORT_INTERVAL", "300");
    let mut agent = Agent::spawn(cmd);

    // The only tracked process is root's: every partial error is its io.
    let group = [("procgroup.name", root_name.as_str())];
    let partial = [(cat::attr::ERROR_TYPE, cat::attr::ERROR_PARTIAL)];
    let points = receiver
        .wait_for_points(WAIT, |p| {
            value(p, cat::PROCESSES.name, &group) == Some(1.0)
                && value(p, cat::COLLECT_ERRORS.name, &partial).is_some_and(|v| v >= 3.0)
        })
        .unwrap_or_else(|| {
            panic!(
                "no export with the group and partial errors: {}",
                agent.log()
            )
        });
    // What nobody may read of a root process is missing, what it may read
    // is exact.
    assert_eq!(value(&points, cat::THREAD_COUNT.name, &group), Some(3.0));
    let fds = value(&points, cat::FD_COUNT.name, &group).unwrap();
    assert!(
        fds == root_workload.open_fds() as f64 || fds == 0.0,
        "{fds} open fds for {}",
        root_workload.open_fds()
    );
    // Its I/O is unknown: not exported as a made-up 0 (its other series,
    // above, are).
    let io = select(&points, cat::DISK_IO.name, &group);
    assert!(io.is_empty(), "disk I/O exported for unreadable io: {io:?}");
    assert!(
        agent.log().contains("procgroups started"),
        "{}",
        agent.log()
    );
    // Several cycles with partial errors, one line.
    assert_eq!(capability_lines(&agent.log()).len(), 1, "{}", agent.log());

    agent.terminate();
    let status = agent.wait_timeout(Duration::from_secs(6)).unwrap();
    assert!(status.success(), "{status:?}: {}", agent.log());
    assert_eq!(capability_lines(&agent.log()).len(), 1, "{}", agent.log());
    root_workload.stop();
}

#[test]
fn once_table_as_nobody_shows_unreadable_io_as_unknown() {
    let bins = binaries();
    let root_name = unique_name("pgnrt");
    let nobody_name = unique_name("pgnru");
    let root_workload = Workload::spawn(&["--name", &root_name]);
    let _nobody_workload = nobody_workload(&bins, &nobody_name);
    let out = agent_as_nobody(&bins)
        .args(["--once", "--once-delay", "300ms", "--threads", "false"])
        .args(["--procnames", &format!("{root_name},{nobody_name}")])
        .output()
        .unwrap();
    root_workload.stop();
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8_lossy(&out.stdout);
    let header: Vec<&str> = table.lines().next().unwrap().split("  ").collect();
    let header: Vec<&str> = header
        .iter()
        .map(|h| h.trim())
        .filter(|h| !h.is_empty())
        .collect();
    let read = header.iter().position(|h| *h == "READ").unwrap();
    let write = header.iter().position(|h| *h == "WRITE").unwrap();
    // The cells of a row: columns are separated by two spaces or more, and
    // the byte amounts hold one space (`0 B`), so split on the header's.
    let cells = |name: &str| -> Vec<String> {
        let row = table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{table}"));
        row.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let root = cells(&root_name);
    assert_eq!(
        (root[read].as_str(), root[write].as_str()),
        ("-", "-"),
        "{table}"
    );
    let own = cells(&nobody_name);
    assert!(
        own[read].ends_with('B') && own[write].ends_with('B'),
        "{table}"
    );
    assert!(table.contains("READ, WRITE `-`: unknown"), "{table}");
}
