//! Reloading the configuration while the agent runs: on SIGHUP, and when
//! the configuration file changes, including the way a mounted ConfigMap
//! changes (the kubelet writes a new directory and swaps the `..data`
//! symlink the file resolves through).
//!
//! The file is watched by polling, once per cycle, the path it resolves to
//! and that file's modification time, size and inode: a few system calls,
//! no thread, and it sees a swapped symlink as well as an edit in place.
//!
//! What a reload changes: the naming rules (with their container names'
//! log root). Other settings are read at start only; a reload that changes
//! them says so in its log line. An invalid new file is refused with one
//! log line and counted, and the agent keeps the rules it had.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::SystemTime;

use crate::cli::Cli;
use crate::config::{self, Config};

/// What identifies one version of the configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    resolved: PathBuf,
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let resolved = std::fs::canonicalize(path).ok()?;
    let meta = std::fs::metadata(&resolved).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
        resolved,
    })
}

/// Counts of reloads, for logs and tests.
#[derive(Debug, Default)]
pub struct ReloadCounts {
    /// Reloads that replaced the rules.
    pub done: AtomicU64,
    /// Reloads refused because the new configuration was invalid.
    pub failed: AtomicU64,
}

/// Decides when to reload, and loads the new configuration.
#[derive(Debug)]
pub struct Reloader {
    cli: Cli,
    hangup: Arc<AtomicBool>,
    file: Option<PathBuf>,
    last: Option<Stamp>,
    counts: Arc<ReloadCounts>,
    /// The configuration in force.
    current: Config,
}

impl Reloader {
    /// A reloader for the configuration `config` was loaded from with
    /// `cli`; `hangup` is set by the SIGHUP handler.
    pub fn new(cli: Cli, config: Config, hangup: Arc<AtomicBool>) -> Self {
        let file = config.source_file.clone();
        let last = file.as_deref().and_then(stamp);
        Self {
            cli,
            hangup,
            file,
            last,
            counts: Arc::default(),
            current: config,
        }
    }

    pub fn counts(&self) -> Arc<ReloadCounts> {
        self.counts.clone()
    }

    /// A new configuration when SIGHUP arrived or the file changed since the
    /// last look, and it is valid; `None` otherwise (an invalid one is
    /// logged and counted here).
    pub fn poll(&mut self) -> Option<Config> {
        let hangup = self.hangup.swap(false, Ordering::Relaxed);
        let now = self.file.as_deref().and_then(stamp);
        let changed = now.is_some() && now != self.last;
        if !hangup && !changed {
            return None;
        }
        self.last = now;
        let why = if hangup { "SIGHUP" } else { "file changed" };
        match config::load(&self.cli) {
            Ok(new) => {
                self.counts.done.fetch_add(1, Ordering::Relaxed);
                let restart = restart_needed(&self.current, &new);
                tracing::info!(
                    trigger = why,
                    rules = new.namer.describe().len(),
                    needs_restart = restart.join(","),
                    "configuration reloaded: new naming rules in force"
                );
                for w in &new.warnings {
                    tracing::warn!(warning = %w, "configuration");
                }
                self.current = new.clone();
                Some(new)
            }
            Err(e) => {
                let failed = self.counts.failed.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::error!(
                    trigger = why,
                    error = %e,
                    failed_reloads = failed,
                    "configuration reload refused; keeping the current rules"
                );
                None
            }
        }
    }
}

/// The settings that differ but only take effect at start.
fn restart_needed(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |differs: bool, name| {
        if differs {
            out.push(name);
        }
    };
    check(old.procfs != new.procfs, "procfs");
    check(old.interval != new.interval, "interval");
    check(old.threads != new.threads, "threads");
    check(old.gather_smaps != new.gather_smaps, "gather_smaps");
    check(old.children != new.children, "children");
    check(old.max_groups != new.max_groups, "max_groups");
    check(old.status_socket != new.status_socket, "status_socket");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_swapped_symlink_and_an_edit_are_both_changes() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = dir.path().join("v1");
        let v2 = dir.path().join("v2");
        for v in [&v1, &v2] {
            std::fs::create_dir(v).unwrap();
            std::fs::write(v.join("config.yaml"), "threads: false\n").unwrap();
        }
        let data = dir.path().join("..data");
        std::os::unix::fs::symlink(&v1, &data).unwrap();
        let file = dir.path().join("config.yaml");
        std::os::unix::fs::symlink(data.join("config.yaml"), &file).unwrap();
        let first = stamp(&file).unwrap();
        assert_eq!(stamp(&file), Some(first.clone()));
        // The kubelet's swap: a new link renamed over `..data`.
        let tmp = dir.path().join("..data_tmp");
        std::os::unix::fs::symlink(&v2, &tmp).unwrap();
        std::fs::rename(&tmp, &data).unwrap();
        let second = stamp(&file).unwrap();
        assert_ne!(first, second);
        std::fs::write(v2.join("config.yaml"), "threads: true\nchildren: false\n").unwrap();
        assert_ne!(stamp(&file), Some(second));
        assert_eq!(stamp(&dir.path().join("missing")), None);
    }
}
