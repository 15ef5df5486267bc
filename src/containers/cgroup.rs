//! Container identity from the text of `/proc/PID/cgroup`: the container ID
//! (64 hexadecimal digits) and, inside Kubernetes, the pod UID.
//!
//! The file has one line per hierarchy, `ID:CONTROLLERS:PATH`: a single
//! `0::PATH` line on cgroup v2, one line per controller on v1, both on a
//! hybrid system. The path is what the container runtime and the kubelet
//! named, in one of a few well-known layouts:
//!
//! - the kubelet's systemd driver: `/kubepods.slice/kubepods-burstable.slice/
//!   kubepods-burstable-pod<uid with _ for ->.slice/cri-containerd-<id>.scope`
//!   (`crio-<id>.scope` for CRI-O, `docker-<id>.scope` for cri-dockerd;
//!   guaranteed pods have no QoS slice: `kubepods-pod<uid>.slice`);
//! - the kubelet's cgroupfs driver: `/kubepods/burstable/pod<uid>/<id>` or
//!   `/kubepods/pod<uid>/<id>` (`.../pod<uid>/crio-<id>` with CRI-O);
//! - Docker, Podman and nerdctl outside Kubernetes: `/docker/<id>`,
//!   `/system.slice/docker-<id>.scope`, `/machine.slice/libpod-<id>.scope`,
//!   `/system.slice/nerdctl-<id>.scope`, `/default/<id>`,
//!   `/libpod_parent/libpod-<id>`.
//!
//! Runtimes nest (kind runs a whole node inside a Docker container), so the
//! innermost container on the path is the process's own. Conmon, which CRI-O
//! and Podman run beside each container in `crio-conmon-<id>.scope` or
//! `libpod-conmon-<id>.scope`, is not inside the container and gets no
//! identity. The parser is pure and cheap: it runs once per new process.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// A container's ID as the runtime gives it: 64 lowercase hexadecimal digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerId(Arc<str>);

impl ContainerId {
    /// The ID when `s` is 64 hexadecimal digits (upper case is folded).
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(s.to_ascii_lowercase().into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A pod's UID as the kubelet writes it in `/var/log/pods`: a UUID with
/// dashes, or, for a static pod, the 32 hexadecimal digits of the hash the
/// kubelet derives from its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodUid(Arc<str>);

impl PodUid {
    /// The UID from its form in a cgroup or directory name. The systemd
    /// driver writes a UUID's dashes as underscores, since a dash separates
    /// the levels of a slice name; they are restored here.
    pub fn parse(s: &str) -> Option<Self> {
        let uid = s.replace('_', "-").to_ascii_lowercase();
        let hex = |part: &str, len: usize| {
            part.len() == len && part.bytes().all(|b| b.is_ascii_hexdigit())
        };
        let parts: Vec<&str> = uid.split('-').collect();
        let is_uuid = matches!(parts.as_slice(), [a, b, c, d, e]
            if hex(a, 8) && hex(b, 4) && hex(c, 4) && hex(d, 4) && hex(e, 12));
        (is_uuid || hex(&uid, 32)).then(|| Self(uid.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PodUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a process runs: at least one of the two is known.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CgroupIdentity {
    /// The container, when the process is inside one.
    pub container_id: Option<ContainerId>,
    /// The Kubernetes pod, when the container (or the process, in a pod's
    /// cgroup but outside its containers) belongs to one.
    pub pod_uid: Option<PodUid>,
}

/// The runtimes' prefixes: `<prefix>-<id>.scope` under systemd, and
/// `<prefix>-<id>` for CRI-O and Podman under cgroupfs.
const SCOPE_PREFIXES: [&str; 5] = ["cri-containerd", "crio", "docker", "libpod", "nerdctl"];

/// A container ID named by one path component, if it names one: a bare ID
/// (cgroupfs drivers), a runtime's systemd scope, or the same name without
/// `.scope` (CRI-O's and Podman's cgroupfs drivers: `crio-<id>`,
/// `libpod-<id>`). Conmon's (`crio-conmon-<id>.scope`,
/// `libpod-conmon-<id>`) give none, since their prefix is not a runtime's.
fn container_in(component: &str) -> Option<ContainerId> {
    if let Some(id) = ContainerId::parse(component) {
        return Some(id);
    }
    let stem = component.strip_suffix(".scope").unwrap_or(component);
    let (prefix, id) = stem.rsplit_once('-')?;
    if SCOPE_PREFIXES.contains(&prefix) {
        ContainerId::parse(id)
    } else {
        None
    }
}

/// A pod UID named by one path component under a `kubepods` component:
/// `pod<uid>` (cgroupfs driver) or `…kubepods[-<qos>]-pod<uid>.slice`
/// (systemd driver, whose slices repeat their parents' names, and which kind
/// prefixes with `kubelet-`).
fn pod_in(component: &str) -> Option<PodUid> {
    if let Some(uid) = component.strip_prefix("pod") {
        return PodUid::parse(uid);
    }
    let stem = component.strip_suffix(".slice")?;
    let (parents, uid) = stem.rsplit_once("-pod")?;
    if parents.ends_with("kubepods")
        || parents.ends_with("kubepods-burstable")
        || parents.ends_with("kubepods-besteffort")
        || parents.ends_with("kubepods-guaranteed")
    {
        PodUid::parse(uid)
    } else {
        None
    }
}

fn is_kubepods(component: &str) -> bool {
    component == "kubepods"
        || component == "kubepods.slice"
        || component.ends_with("-kubepods.slice")
}

/// The identity one cgroup path gives: the innermost container on it, and
/// the pod of the innermost `kubepods` tree holding that container.
fn identity_of_path(path: &str) -> Option<CgroupIdentity> {
    // Cgroup v2 marks a removed cgroup (a process exiting in it).
    let path = path.strip_suffix(" (deleted)").unwrap_or(path);
    let mut in_kubepods = false;
    let mut pod_uid = None;
    let mut container_id = None;
    for component in path.split('/').filter(|c| !c.is_empty()) {
        if let Some(id) = container_in(component) {
            container_id = Some(id);
            // What follows belongs to this container (a runtime nested in
            // it starts its own kubepods tree).
            in_kubepods = false;
        } else if is_kubepods(component) {
            in_kubepods = true;
            pod_uid = None;
            container_id = None;
        } else if in_kubepods && let Some(uid) = pod_in(component) {
            pod_uid = Some(uid);
        }
    }
    (container_id.is_some() || pod_uid.is_some()).then_some(CgroupIdentity {
        container_id,
        pod_uid,
    })
}

/// The container identity of a process from the text of its
/// `/proc/PID/cgroup`, or `None` when it runs outside any container (or the
/// text is not a cgroup file).
///
/// Every hierarchy is looked at, since on a hybrid system the kubelet's
/// cgroupfs driver places containers in the v1 controllers while the v2 line
/// still shows the runtime's service. The first line naming a container wins
/// (v1 controllers agree with each other); failing that, the first naming a
/// pod.
pub fn identity_from_cgroup(text: &str) -> Option<CgroupIdentity> {
    identity_from_paths(text.lines().filter_map(|line| {
        let mut fields = line.splitn(3, ':');
        match (fields.next(), fields.next(), fields.next()) {
            (Some(_hierarchy), Some(_controllers), Some(path)) => Some(path),
            _ => None,
        }
    }))
}

/// [`identity_from_cgroup`] over the paths of the file's lines, already
/// split off (the process reader keeps them for `{{.Cgroups}}`, so the
/// file is read once).
pub fn identity_from_paths<'a>(paths: impl IntoIterator<Item = &'a str>) -> Option<CgroupIdentity> {
    let mut pod_only = None;
    for path in paths {
        match identity_of_path(path) {
            Some(identity) if identity.container_id.is_some() => return Some(identity),
            Some(identity) => {
                pod_only.get_or_insert(identity);
            }
            None => {}
        }
    }
    pod_only
}

/// Reads `<procfs>/<pid>/cgroup` and parses it. `Ok(None)` for a process
/// outside containers; the error is the read's (`NotFound` when the process
/// has exited).
pub fn read_identity(procfs: &Path, pid: i32) -> io::Result<Option<CgroupIdentity>> {
    let text = std::fs::read_to_string(procfs.join(pid.to_string()).join("cgroup"))?;
    Ok(identity_from_cgroup(&text))
}

#[cfg(test)]
mod tests;
