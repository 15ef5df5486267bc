//! The binary started (not `--check-config`: the way it starts on a node)
//! with a bad configuration or environment: an unreadable config file, YAML
//! that does not parse, an invalid `PROCGROUPS_*` value, an invalid OTLP
//! endpoint, a `--procfs` that is not a procfs, a zero or negative interval.
//! Each must exit with code 2 and one line on stderr that names the culprit
//! (the file, variable or flag, and the value), and never panic.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a bad configuration may take to be refused. Far more than
/// needed; a binary still running then has accepted the configuration.
const REFUSE_WITHIN: Duration = Duration::from_secs(20);

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `program args` with `env` added to an environment cleared of every
/// `PROCGROUPS_*` and `OTEL_*` variable of the caller (and the status socket
/// switched off), and kills it if it is still running after
/// [`REFUSE_WITHIN`].
fn run_with(program: &[&str], args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(program[0]);
    cmd.args(&program[1..]).args(args);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("PROCGROUPS_") || k.starts_with("OTEL_") {
            cmd.env_remove(&*k);
        }
    }
    // No status socket: a test must not take the machine's.
    cmd.env("PROCGROUPS_STATUS_SOCKET", "none")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + REFUSE_WITHIN;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    Run {
        code: status.and_then(|s| s.code()),
        stdout,
        stderr,
    }
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Run {
    run_with(&[env!("CARGO_BIN_EXE_procgroups")], args, env)
}

/// Whether `line` is a log record (they start with an RFC 3339 time), as
/// the agent may write a few while starting, before it finds the culprit.
fn is_log_record(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 20 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[10] == b'T'
}

/// The lines of stderr that are not log records: the error message.
fn message(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| !is_log_record(l)).collect()
}

/// Exit code 2, nothing on stdout, and one message on stderr: a procgroups
/// message (not a panic) whose first line names every `culprit`. Only a
/// quoted parser diagnostic (a regex error with its caret) may add lines
/// below it.
fn assert_refused(case: &str, r: &Run, culprits: &[&str]) {
    let ctx = format!(
        "{case}: exit {:?}\nstdout: {}\nstderr: {}",
        r.code, r.stdout, r.stderr
    );
    assert_eq!(r.code, Some(2), "{ctx}");
    assert!(r.stdout.is_empty(), "{ctx}");
    assert!(!r.stderr.contains("panicked"), "{ctx}");
    let message = message(&r.stderr);
    assert!(
        message
            .first()
            .is_some_and(|l| l.starts_with("procgroups: ")),
        "{ctx}"
    );
    assert_eq!(
        message
            .iter()
            .filter(|l| l.starts_with("procgroups: "))
            .count(),
        1,
        "{ctx}"
    );
    for c in culprits {
        assert!(
            message[0].contains(c),
            "{case}: {c:?} not named in {}",
            message[0]
        );
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn unreadable_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    let r = run(&["--config", path(&missing)], &[]);
    assert_refused("missing file", &r, &[path(&missing), "No such file"]);

    let r = run(&["--config", path(dir.path())], &[]);
    assert_refused("directory", &r, &[path(dir.path()), "cannot read"]);

    let r = run(&[], &[("PROCGROUPS_CONFIG", path(&missing))]);
    assert_refused("missing file from PROCGROUPS_CONFIG", &r, &[path(&missing)]);
}

#[test]
fn config_file_without_read_permission() {
    // Root reads any file, so the binary runs as nobody (uid 65534) when
    // the test runs as root.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.path().join("procgroups.yaml");
    std::fs::write(&file, "interval: 5s\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000)).unwrap();
    let r = if rustix::process::geteuid().is_root() {
        // A copy nobody may execute: the build directory may sit under a
        // directory only root can enter.
        let bin = dir.path().join("procgroups");
        std::fs::copy(env!("CARGO_BIN_EXE_procgroups"), &bin).unwrap();
        let setpriv = [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            path(&bin),
        ];
        run_with(&setpriv, &["--config", path(&file)], &[])
    } else {
        run(&["--config", path(&file)], &[])
    };
    assert_refused("mode 000", &r, &[path(&file), "Permission denied"]);
}

#[test]
fn yaml_syntax_error() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("flow.yaml", "process_names: [ {name: \"x\"\n", "line 2"),
        ("indent.yaml", "interval: 5s\n  threads: true\n", "line 2"),
        ("tab.yaml", "process_names:\n\t- name: x\n", "line 2"),
        ("binary.yaml", "interval: \u{0}\u{1}\u{2}\n", ""),
        ("not-a-map.yaml", "- just\n- a list\n", ""),
    ];
    for (name, text, position) in cases {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let r = run(&["--config", path(&file)], &[]);
        let mut culprits = vec![path(&file)];
        if !position.is_empty() {
            culprits.push(position);
        }
        assert_refused(name, &r, &culprits);
    }
    // Bytes that are not UTF-8.
    let file = dir.path().join("latin1.yaml");
    std::fs::write(&file, b"interval: 5s\n# caf\xe9\n").unwrap();
    let r = run(&["--config", path(&file)], &[]);
    assert_refused("latin1.yaml", &r, &[path(&file)]);
}

#[test]
fn invalid_procgroups_variables() {
    let cases = [
        ("PROCGROUPS_INTERVAL", "fast", "fast"),
        ("PROCGROUPS_INTERVAL", "15", "15"),
        ("PROCGROUPS_THREADS", "maybe", "maybe"),
        ("PROCGROUPS_CHILDREN", "2", "2"),
        ("PROCGROUPS_MAX_GROUPS", "-5", "-5"),
        ("PROCGROUPS_MAX_GROUPS", "0", "at least 1"),
        ("PROCGROUPS_MAX_THREAD_NAMES", "many", "many"),
        ("PROCGROUPS_LOG_FORMAT", "xml", "xml"),
        ("PROCGROUPS_METRIC_NAMES", "prometheus", "prometheus"),
        ("PROCGROUPS_RECHECK_WITH_TIME_LIMIT", "soon", "soon"),
        ("PROCGROUPS_NAMEMAPPING", "web,(unclosed", "unclosed"),
        ("PROCGROUPS_INTERVALL", "15s", "unknown setting"),
    ];
    for (var, value, detail) in cases {
        let r = run(&[], &[(var, value)]);
        assert_refused(&format!("{var}={value}"), &r, &[var, detail]);
    }
}

#[test]
fn invalid_otlp_endpoint() {
    let cases = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:99999"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "/v1/metrics"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://localhost:4317"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:99999"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://exa mple:4317"),
        (
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "grpc://collector:4317",
        ),
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "collector:"),
    ];
    for (var, value) in cases {
        let r = run(&[], &[(var, value)]);
        assert_refused(&format!("{var}={value}"), &r, &[var, value]);
    }
    // The specific variable is checked even when the general one is fine.
    let r = run(
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4317"),
            (
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                "ftp://localhost:4318",
            ),
        ],
    );
    assert_refused(
        "metrics endpoint",
        &r,
        &[
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "ftp://localhost:4318",
        ],
    );
}

/// A group removed and recreated between two exports would make a delta
/// counter go backwards: the combination is refused at start.
#[test]
fn delta_temporality_with_remove_empty_groups() {
    let delta = [("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")];
    let r = run(&["--remove-empty-groups"], &delta);
    assert_refused(
        "delta with --remove-empty-groups",
        &r,
        &[
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
            "remove_empty_groups",
        ],
    );
}

#[test]
fn procfs_that_is_not_a_procfs() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let r = run(&["--procfs", path(&empty)], &[]);
    assert_refused("no stat", &r, &["--procfs", path(&empty), "stat"]);

    let r = run(&[], &[("PROCGROUPS_PROCFS", path(&empty))]);
    assert_refused(
        "from the environment",
        &r,
        &["PROCGROUPS_PROCFS", path(&empty)],
    );

    let file = dir.path().join("file");
    std::fs::write(&file, "not a directory").unwrap();
    let r = run(&["--procfs", path(&file)], &[]);
    assert_refused("a file", &r, &["--procfs", path(&file)]);

    let missing = dir.path().join("missing");
    let r = run(&["--procfs", path(&missing)], &[]);
    assert_refused("missing", &r, &["--procfs", path(&missing)]);

    // A `stat` that is not the kernel's: refused when the procfs is
    // opened, still as bad configuration, in one line.
    for (name, stat) in [("no-btime", "cpu 1 2 3\n"), ("garbage", "\u{0}\u{1}binary")] {
        let fake = dir.path().join(name);
        std::fs::create_dir(&fake).unwrap();
        std::fs::write(fake.join("stat"), stat).unwrap();
        for once in [false, true] {
            let args = [
                &["--procfs", path(&fake)][..],
                if once { &["--once"] } else { &[] },
            ]
            .concat();
            let r = run(&args, &[]);
            assert_refused(name, &r, &[path(&fake), "not a procfs", "btime"]);
            assert_eq!(message(&r.stderr).len(), 1, "{}", r.stderr);
        }
    }

    let stat_dir = dir.path().join("stat-is-a-dir");
    std::fs::create_dir_all(stat_dir.join("stat")).unwrap();
    let r = run(&["--procfs", path(&stat_dir)], &[]);
    assert_refused("stat is a directory", &r, &["--procfs", path(&stat_dir)]);
}

#[test]
fn zero_or_negative_interval() {
    for value in ["0s", "0", "0ms", "-1s", "-15s"] {
        let r = run(&["--interval", value], &[]);
        assert_refused(&format!("--interval {value}"), &r, &["--interval", value]);
        let r = run(&[], &[("PROCGROUPS_INTERVAL", value)]);
        assert_refused(
            &format!("PROCGROUPS_INTERVAL={value}"),
            &r,
            &["PROCGROUPS_INTERVAL", value],
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.yaml");
    std::fs::write(&file, "interval: 0s\n").unwrap();
    let r = run(&["--config", path(&file)], &[]);
    assert_refused("interval in the file", &r, &[path(&file), "interval"]);
}
