//! Finding the external programs that some tests drive (a real
//! OpenTelemetry collector, rotel; kubectl; kubernetes-validate), and
//! skipping a test so that a normal `cargo test` run shows it.
//!
//! A program is looked up in this order: the environment variable named for
//! it (a path; empty counts as unset), then `PATH`, then the repository's
//! `.venv`, which `.ci/run` fills. When it is missing, a test fails under CI
//! (the `CI` variable is set), so that CI can never pass by skipping; on a
//! developer's machine the test writes a `skipped:` line naming itself, the
//! program and how to install it (at the version `.ci/run` pins), and
//! returns.
//!
//! The test harness captures what a test prints with `print!` and
//! `eprint!` and shows it only when the test fails, so a skip printed that
//! way is invisible in a run that passes. [`skip`] writes to the process's
//! standard error through a handle of its own, which the harness does not
//! capture; `harness_shows_a_skip_and_ci_refuses_it` checks that through
//! the real harness.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// An external program a test needs.
pub struct Tool {
    /// File name looked up in `PATH` and `.venv/bin`.
    pub program: &'static str,
    /// Environment variable that, when set, gives the program's path.
    pub env: &'static str,
    /// Other places under `.venv` where an install puts it; one `*` in a
    /// component matches any suffix (`lib/python*/...`).
    pub venv_paths: &'static [&'static str],
    /// How to install it; `{version}` is replaced by the version `.ci/run`
    /// pins in the variable [`Tool::pinned_by`].
    pub install: &'static str,
    /// The variable of `.ci/run` that pins its version, if any.
    pub pinned_by: Option<&'static str>,
    /// Where a build script of the repository writes it (relative to the
    /// repository root), looked at last.
    pub built_at: Option<&'static str>,
}

/// rotel, a real OpenTelemetry collector, from PyPI; the package carries
/// the `rotel-agent` binary, which `.ci/run` links into `.venv/bin`.
pub const ROTEL: Tool = Tool {
    program: "rotel-agent",
    env: "ROTEL_AGENT",
    venv_paths: &["lib/python*/site-packages/rotel/rotel-agent"],
    install: "bash .ci/run, or: python3 -m venv .venv && .venv/bin/pip install rotel=={version}",
    pinned_by: Some("ROTEL_VERSION"),
    built_at: None,
};

/// kubectl, for `kubectl kustomize`.
pub const KUBECTL: Tool = Tool {
    program: "kubectl",
    env: "KUBECTL",
    venv_paths: &[],
    install: "bash .ci/run, or: apt-get install kubernetes-client (Debian's kubectl)",
    pinned_by: None,
    built_at: None,
};

/// kubernetes-validate, which checks objects against the bundled Kubernetes
/// schemas.
pub const KUBERNETES_VALIDATE: Tool = Tool {
    program: "kubernetes-validate",
    env: "KUBERNETES_VALIDATE",
    venv_paths: &[],
    install: "bash .ci/run, or: python3 -m venv .venv && \
              .venv/bin/pip install kubernetes-validate=={version}",
    pinned_by: Some("KUBERNETES_VALIDATE_VERSION"),
    built_at: None,
};

/// The upstream OpenTelemetry Collector, built from its Go modules by
/// `tests/otelcol/build.sh`.
pub const OTELCOL: Tool = Tool {
    program: "otelcol-procgroups",
    env: "OTELCOL",
    venv_paths: &[],
    install: "bash .ci/run, or: tests/otelcol/build.sh (needs Go)",
    pinned_by: None,
    built_at: Some("tests/otelcol/otelcol-procgroups"),
};

/// Debian's Prometheus server.
pub const PROMETHEUS: Tool = Tool {
    program: "prometheus",
    env: "PROMETHEUS",
    venv_paths: &[],
    install: "bash .ci/run, or: apt-get install prometheus",
    pinned_by: None,
    built_at: None,
};

/// Debian's process-exporter, the program whose series
/// `--metric-names process-exporter` reproduces.
pub const PROCESS_EXPORTER: Tool = Tool {
    program: "prometheus-process-exporter",
    env: "PROCESS_EXPORTER",
    venv_paths: &[],
    install: "bash .ci/run, or: apt-get install prometheus-process-exporter",
    pinned_by: None,
    built_at: None,
};

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The value `.ci/run` gives to `variable` (a line `VARIABLE=value`).
pub fn pinned_version(variable: &str) -> Option<String> {
    let script = std::fs::read_to_string(repo_root().join(".ci/run")).ok()?;
    script.lines().find_map(|line| {
        let value = line.trim().strip_prefix(variable)?.strip_prefix('=')?;
        Some(value.trim_matches(['"', '\'']).to_owned())
    })
}

impl Tool {
    /// The install hint, with the pinned version filled in.
    pub fn install_hint(&self) -> String {
        let version = self
            .pinned_by
            .map(|var| pinned_version(var).unwrap_or_else(|| panic!("{var} not found in .ci/run")))
            .unwrap_or_default();
        self.install.replace("{version}", &version)
    }
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The paths under `dir` that `pattern` names, a component ending in `*`
/// matching every entry that starts with what comes before it.
fn expand(dir: &Path, pattern: &str) -> Vec<PathBuf> {
    let mut found = vec![dir.to_path_buf()];
    for part in pattern.split('/') {
        found = found
            .iter()
            .flat_map(|d| match part.strip_suffix('*') {
                Some(prefix) => std::fs::read_dir(d)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                    .map(|e| e.path())
                    .collect(),
                None => vec![d.join(part)],
            })
            .collect();
    }
    found
}

/// Looks the program up without any policy: `None` when it is not installed.
///
/// Panics when the override variable is set to something that is not an
/// executable file: that is a mistake to report, not a reason to skip.
pub fn find(tool: &Tool) -> Option<PathBuf> {
    if let Some(value) = std::env::var_os(tool.env).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(value);
        assert!(
            is_executable(&path),
            "{}={} is not an executable file",
            tool.env,
            path.display()
        );
        return Some(path);
    }
    let venv = repo_root().join(".venv");
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(std::iter::once(venv.join("bin")))
        .map(|dir| dir.join(tool.program))
        .chain(tool.venv_paths.iter().flat_map(|p| expand(&venv, p)))
        .chain(tool.built_at.map(|p| repo_root().join(p)))
        .find(|candidate| is_executable(candidate))
}

/// Looks the program up for a test: its path, or `None` after a visible
/// [`skip`] (outside CI). Under CI a missing program fails the test.
pub fn require(tool: &Tool) -> Option<PathBuf> {
    if let Some(path) = find(tool) {
        return Some(path);
    }
    let hint = tool.install_hint();
    if std::env::var_os("CI").is_some() {
        panic!(
            "{} is not installed (looked at ${}, PATH and .venv); install it with: {hint}",
            tool.program, tool.env
        );
    }
    skip(&format!(
        "{} not installed (install it with: {hint})",
        tool.program
    ));
    None
}

/// Says that the running test skips its checks, and why, on the process's
/// standard error where the harness does not capture it: the line shows in
/// a normal `cargo test` run, next to the test's `ok`. The test names
/// itself through its thread, which the harness names after it.
pub fn skip(reason: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let line = format!("skipped: {test}: {reason}\n");
    // `eprint!` would go to the harness's capture; this handle does not.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// A program that is never installed, for the probe below.
const NOWHERE: Tool = Tool {
    program: "procgroups-test-no-such-tool",
    env: "PROCGROUPS_TEST_NO_SUCH_TOOL",
    venv_paths: &[],
    install: "nothing to install: this tool never exists",
    pinned_by: None,
    built_at: None,
};

/// Needs a program that is never there; run only by the test below, in a
/// child test process, to see what a run that skips shows.
#[test]
#[ignore = "run by harness_shows_a_skip_and_ci_refuses_it"]
fn probe_a_missing_tool() {
    if let Some(path) = require(&NOWHERE) {
        panic!("{} found at {}", NOWHERE.program, path.display());
    }
}

/// Runs `probe_a_missing_tool` in this test binary, the way `cargo test`
/// runs it (output captured), with `CI` unset and then set.
#[test]
fn harness_shows_a_skip_and_ci_refuses_it() {
    let probe = "support::tools::probe_a_missing_tool";
    let run = |ci: bool| {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args(["--ignored", "--exact", probe])
            .env_remove("CI")
            .env_remove(NOWHERE.env)
            .env_remove("RUST_TEST_NOCAPTURE");
        if ci {
            cmd.env("CI", "true");
        }
        let out = cmd.output().unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    };

    let (ok, stdout, stderr) = run(false);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "{stdout}");
    let line = format!(
        "skipped: {probe}: {} not installed (install it with: {})",
        NOWHERE.program, NOWHERE.install
    );
    assert!(stderr.contains(&line), "no {line:?} in:\n{stderr}");

    let (ok, stdout, stderr) = run(true);
    assert!(!ok, "passed under CI:\n{stdout}\n{stderr}");
    assert!(stdout.contains("1 failed"), "{stdout}");
    assert!(
        stdout.contains(&format!("{} is not installed", NOWHERE.program)),
        "{stdout}"
    );
    assert!(!stderr.contains("skipped:"), "{stderr}");
}

#[test]
fn install_hints_name_the_versions_ci_pins() {
    for (tool, package) in [
        (&ROTEL, "rotel"),
        (&KUBERNETES_VALIDATE, "kubernetes-validate"),
    ] {
        let version = pinned_version(tool.pinned_by.unwrap()).unwrap();
        assert!(!version.is_empty());
        let hint = tool.install_hint();
        assert!(hint.contains(&format!("{package}=={version}")), "{hint}");
    }
}
