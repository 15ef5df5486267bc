//! Finding the external programs that some integration tests drive: a real
//! OpenTelemetry collector (rotel), kubectl, kubernetes-validate and Debian's
//! prometheus-process-exporter.
//!
//! A program is looked up in this order: the environment variable named for
//! it (a path; empty counts as unset), then `PATH`, then `.venv/bin` at the repository root, which
//! `.ci/run` fills. When it is missing, a test fails under CI (the `CI`
//! variable is set), so that CI can never pass by skipping; on a developer's
//! machine the test prints a `skipped:` line saying how to install the
//! program, and returns.

// Each test crate includes this file and uses only the tools it needs.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// An external program a test needs.
pub struct Tool {
    /// File name looked up in `PATH` and `.venv/bin`.
    pub program: &'static str,
    /// Environment variable that, when set, gives the program's path.
    pub env: &'static str,
    /// How to install it, for the failure or skip message.
    pub install: &'static str,
}

/// rotel, a real OpenTelemetry collector, from PyPI.
pub const ROTEL: Tool = Tool {
    program: "rotel-agent",
    env: "ROTEL_AGENT",
    install: "bash .ci/run (it installs rotel into .venv and links .venv/bin/rotel-agent)",
};

/// kubectl, for `kubectl kustomize`.
pub const KUBECTL: Tool = Tool {
    program: "kubectl",
    env: "KUBECTL",
    install: "apt-get install kubernetes-client (Debian's kubectl)",
};

/// kubernetes-validate, which checks objects against the bundled Kubernetes schemas.
pub const KUBERNETES_VALIDATE: Tool = Tool {
    program: "kubernetes-validate",
    env: "KUBERNETES_VALIDATE",
    install: "python3 -m venv .venv && .venv/bin/pip install kubernetes-validate (or bash .ci/run)",
};

/// The Go process-exporter procgroups is compared with.
pub const PROCESS_EXPORTER: Tool = Tool {
    program: "prometheus-process-exporter",
    env: "PROCESS_EXPORTER",
    install: "apt-get install prometheus-process-exporter",
};

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
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
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(std::iter::once(repo_root().join(".venv").join("bin")))
        .map(|dir| dir.join(tool.program))
        .find(|candidate| is_executable(candidate))
}

/// Looks the program up for a test: its path, or `None` after printing a
/// `skipped:` line (outside CI). Under CI a missing program fails the test.
pub fn require(tool: &Tool) -> Option<PathBuf> {
    if let Some(path) = find(tool) {
        return Some(path);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{} is not installed (looked at ${}, PATH and .venv/bin); install it with: {}",
            tool.program, tool.env, tool.install
        );
    }
    println!(
        "skipped: {} not installed (install it with: {})",
        tool.program, tool.install
    );
    None
}
