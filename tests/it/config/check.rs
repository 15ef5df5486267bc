//! `procgroups --check-config` on every file under `tests/configs/`:
//! each `valid/*.yaml` loads (exit 0) and prints as many compiled rules as
//! its `# rules: N` line says; each `invalid/*.yaml` exits with 2 and an
//! error that names the file and contains the text of its
//! `# error: <substring>` first line. `--help` shows the defaults that
//! `--check-config` resolves.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::procs::{self, agent_command};

fn configs(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/configs")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no configs in {}", dir.display());
    files
}

/// Runs the binary with only the given flags: no `PROCGROUPS_*` variable of
/// the calling environment leaks in.
fn check_config(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_procgroups"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PROCGROUPS_") {
            cmd.env_remove(k);
        }
    }
    cmd.arg("--check-config").args(args).output().unwrap()
}

/// The value of the first `# key: value` comment line.
fn header(text: &str, key: &str) -> Option<String> {
    let prefix = format!("# {key}: ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
}

#[test]
fn valid_configs_load() {
    let mut failures = Vec::new();
    for file in configs("valid") {
        let text = std::fs::read_to_string(&file).unwrap();
        let out = check_config(&["--config", file.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(0) {
            failures.push(format!(
                "{}: exit {:?}: {stderr}",
                file.display(),
                out.status
            ));
            continue;
        }
        assert!(
            stdout.contains(&format!("config: {}", file.display())),
            "{}: {stdout}",
            file.display()
        );
        let want = header(&text, "rules")
            .unwrap_or_else(|| panic!("{} has no `# rules: N` line", file.display()));
        if !stdout.contains(&format!("rules ({want}):")) {
            failures.push(format!(
                "{}: expected {want} rules in:\n{stdout}",
                file.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn invalid_configs_fail_with_their_message() {
    let mut failures = Vec::new();
    for file in configs("invalid") {
        let text = std::fs::read_to_string(&file).unwrap();
        let want = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# error: "))
            .unwrap_or_else(|| panic!("{} lacks a `# error: ` first line", file.display()))
            .to_string();
        let out = check_config(&["--config", file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(2) {
            failures.push(format!(
                "{}: exit {:?}, want 2: {stderr}",
                file.display(),
                out.status
            ));
        } else if !stderr.contains(&want) {
            failures.push(format!("{}: want {want:?} in: {stderr}", file.display()));
        } else if !stderr.contains(&file.display().to_string()) {
            failures.push(format!(
                "{}: message does not name the file: {stderr}",
                file.display()
            ));
        }
        if !out.stdout.is_empty() {
            failures.push(format!(
                "{}: printed a config for an invalid file",
                file.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn settings_file_values_are_compiled() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/valid/settings.yaml");
    let out = check_config(&["--config", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in [
        "interval: 30s",
        "children: false",
        "threads: false",
        "gather_smaps: true",
        "recheck: true",
        "recheck_with_time_limit: 1m",
        "remove_empty_groups: true",
        "max_groups: 50",
        "max_thread_names: 10",
        "status_socket: /tmp/procgroups-test/status.sock",
        "log_format: json",
        "metric_names: process-exporter",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "missing {line:?} in:\n{stdout}"
        );
    }
}

#[test]
fn config_file_from_the_environment() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/valid/readme-home.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_procgroups"))
        .arg("--check-config")
        .env("PROCGROUPS_CONFIG", &file)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("name \"upstart:-user\""), "{stdout}");
}

#[test]
fn usage_and_flag_errors_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        // A stray word no longer ends the flags silently (process-exporter #152).
        (
            &["--threads", "false", "stray"],
            "unrecognized subcommand 'stray'",
        ),
        (
            &["--interval", "0s"],
            "flag --interval: interval: must be at least 100ms",
        ),
        (
            &["--interval", "-1s"],
            "flag --interval: interval: must not be negative",
        ),
        (&["--procfs", "/nonexistent/proc"], "/nonexistent/proc/stat"),
        (
            &["--namemapping", "java,("],
            "flag --namemapping: namemapping[0] (name \"java\"): bad regex",
        ),
        (
            &["--procnames", "chromium-browser"],
            "flag --procnames: procnames[0]",
        ),
        (
            &["--config", "/nonexistent/procgroups.yaml"],
            "config /nonexistent/procgroups.yaml: cannot read",
        ),
    ];
    for (args, want) in cases {
        let out = check_config(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: want {want:?} in {stderr}");
    }
}

#[test]
fn legacy_flags_conflict_with_rules() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/valid/all.yaml");
    let out = check_config(&["--config", file.to_str().unwrap(), "--procnames", "bash"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("conflicting settings"), "{stderr}");
    assert!(stderr.contains("flag --procnames"), "{stderr}");
}

#[test]
fn help_shows_the_defaults_that_apply() {
    let help = String::from_utf8_lossy(&agent_command().arg("--help").output().unwrap().stdout)
        .into_owned();
    // The defaults as the configuration really resolves them.
    let (code, resolved, stderr) = procs::check_config(&[], &[], None);
    assert_eq!(code, 0, "{stderr}");
    let value = |key: &str| {
        resolved
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}: ")))
            .unwrap_or_else(|| panic!("no {key} in {resolved}"))
            .to_owned()
    };
    for (flag, key) in [
        ("--procfs", "procfs"),
        ("--children", "children"),
        ("--threads", "threads"),
        ("--gather-smaps", "gather_smaps"),
        ("--remove-empty-groups", "remove_empty_groups"),
        ("--empty-group-ttl", "empty_group_ttl"),
        ("--interval", "interval"),
        ("--log-format", "log_format"),
        ("--max-groups", "max_groups"),
        ("--max-thread-names", "max_thread_names"),
        ("--health-export-intervals", "health_export_intervals"),
    ] {
        // The flag's entry: from its line to the next flag's.
        let start = help
            .find(&format!("  {flag} "))
            .or_else(|| help.find(&format!("  {flag}\n")))
            .unwrap_or_else(|| panic!("{flag} not in {help}"));
        let rest = &help[start + 2..];
        let entry = &rest[..rest.find("\n  -").unwrap_or(rest.len())];
        let entry = entry.split_whitespace().collect::<Vec<_>>().join(" ");
        let want = format!("[default: {}", value(key));
        assert!(entry.contains(&want), "{flag}: want {want:?} in {entry:?}");
    }
    // A default in the help text overrides nothing: a value from the
    // environment still wins when the flag is absent.
    let (_, resolved, _) = procs::check_config(&[], &[("PROCGROUPS_INTERVAL", "30s")], None);
    assert!(resolved.contains("\ninterval: 30s\n"), "{resolved}");
}
