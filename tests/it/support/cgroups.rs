//! Real cgroups for the tests: finds the hierarchies this machine lets root
//! create cgroups in (cgroup v2, and cgroup v1's `name=systemd`, which holds
//! no resource controller), creates a path such as a container runtime would
//! in each, moves a test process in, and removes everything it created on
//! drop. v1 resource controllers (memory, cpu, ...) are left alone: moving a
//! process there would take it out of the limits the test runner is under.

// Each test crate includes this file and uses only what it needs.

use std::io;
use std::path::{Path, PathBuf};

/// A cgroup filesystem mounted here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub mount: PathBuf,
    /// `true` for cgroup v2, `false` for v1's `name=systemd`.
    pub v2: bool,
}

/// The cgroup v2 mounts and v1 `name=systemd` mounts of `/proc/self/mounts`.
pub fn hierarchies() -> Vec<Hierarchy> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut found: Vec<Hierarchy> = Vec::new();
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, mount, fstype, options, ..] = fields.as_slice() else {
            continue;
        };
        let v2 = *fstype == "cgroup2";
        let named_systemd = *fstype == "cgroup" && options.split(',').any(|o| o == "name=systemd");
        let mount = PathBuf::from(mount);
        if (v2 || named_systemd) && !found.iter().any(|h| h.mount == mount) {
            found.push(Hierarchy { mount, v2 });
        }
    }
    found
}

/// One cgroup path created in several hierarchies; removed on drop, with
/// any process still inside moved back to the hierarchy's root first.
pub struct CgroupGuard {
    /// Per hierarchy: its root and the directories created, outermost first.
    created: Vec<(PathBuf, Vec<PathBuf>)>,
    leaves: Vec<PathBuf>,
}

impl CgroupGuard {
    /// Creates `relative` (e.g. `kubepods.slice/.../x.scope`) in every
    /// hierarchy given. Directories that already exist are used and kept.
    pub fn create(hierarchies: &[Hierarchy], relative: &str) -> io::Result<Self> {
        let mut guard = CgroupGuard {
            created: Vec::new(),
            leaves: Vec::new(),
        };
        for h in hierarchies {
            let mut made = Vec::new();
            let mut dir = h.mount.clone();
            for part in relative.split('/').filter(|p| !p.is_empty()) {
                dir.push(part);
                match std::fs::create_dir(&dir) {
                    Ok(()) => made.push(dir.clone()),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => {
                        guard.created.push((h.mount.clone(), made));
                        return Err(io::Error::new(
                            e.kind(),
                            format!("mkdir {}: {e}", dir.display()),
                        ));
                    }
                }
            }
            guard.created.push((h.mount.clone(), made));
            guard.leaves.push(dir);
        }
        Ok(guard)
    }

    /// Moves process `pid` into the cgroup in every hierarchy.
    pub fn enter(&self, pid: u32) -> io::Result<()> {
        for leaf in &self.leaves {
            write_pid(&leaf.join("cgroup.procs"), pid)?;
        }
        Ok(())
    }
}

fn write_pid(procs: &Path, pid: u32) -> io::Result<()> {
    std::fs::write(procs, pid.to_string()).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("writing {pid} to {}: {e}", procs.display()),
        )
    })
}

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        for (root, made) in &self.created {
            for dir in made.iter().rev() {
                // A cgroup with processes cannot be removed.
                let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                for pid in procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
                    let _ = write_pid(&root.join("cgroup.procs"), pid);
                }
                if let Err(e) = std::fs::remove_dir(dir) {
                    eprintln!("could not remove cgroup {}: {e}", dir.display());
                }
            }
        }
    }
}

/// Why cgroups cannot be created here, or `None` when they can: the caller
/// skips the test with this reason (and fails under `CI`).
pub fn unavailable() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("creating cgroups needs root".to_owned());
    }
    if hierarchies().is_empty() {
        return Some("no cgroup v2 or v1 name=systemd hierarchy is mounted".to_owned());
    }
    None
}

/// Skips with a visible `skipped:` line (see [`super::tools::skip`]) or,
/// under `CI`, fails: CI must never pass by skipping.
pub fn skip(reason: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("cgroups are required in CI: {reason}");
    }
    super::tools::skip(reason);
}
