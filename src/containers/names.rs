//! Namespace, pod and container names from the kubelet's log directories,
//! which every Kubernetes node keeps and log shippers rely on, so that no
//! access to the Kubernetes API is needed:
//!
//! - `<root>/pods/<namespace>_<pod>_<pod uid>/<container>/<restart>.log`
//!   names each pod of the node by its UID;
//! - `<root>/containers/<pod>_<namespace>_<container>-<container id>.log`,
//!   a symlink to the log file in `pods/`, names each container by its ID.
//!
//! Namespace and pod names are DNS-1123 names and container names DNS-1123
//! labels, none of which may contain `_`; the symlink's target is still
//! preferred to the link's own name, because it separates the fields with
//! `/` and carries the pod UID. Only the link is read, never followed: the
//! target's path is the host's, which need not exist where the agent runs.
//!
//! [`LogRootNames`] keeps the map and rescans the directories only when asked
//! about an ID it does not know, at most once per cycle, and gives up
//! rescanning for an ID that stays unknown (a pod's sandbox container has no
//! log) after a few cycles.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::cgroup::{CgroupIdentity, ContainerId, PodUid};

/// How many rescans an ID that stays unknown may cause: the kubelet creates
/// a container's log symlink just after starting it, so a process seen in
/// between finds it on a later cycle; a container that never has a log (the
/// pod's sandbox) stops causing rescans.
const RESCANS_PER_UNKNOWN_ID: u32 = 3;

/// Unknown IDs remembered at most; beyond this the memory is cleared (which
/// costs at most a few rescans), so that churn cannot grow it for ever.
const MAX_REMEMBERED_UNKNOWN: usize = 4096;

/// A pod's names, from its directory in `pods/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNames {
    pub namespace: Arc<str>,
    pub pod: Arc<str>,
}

/// A container's names, from its symlink in `containers/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerNames {
    pub namespace: Arc<str>,
    pub pod: Arc<str>,
    pub container: Arc<str>,
    /// Known when the link points into `pods/`, or its pod's directory is
    /// there.
    pub pod_uid: Option<PodUid>,
}

/// Everything known about a process's container: the IDs from its cgroup,
/// and whatever names the log directories gave for them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerInfo {
    pub container_id: Option<ContainerId>,
    pub pod_uid: Option<PodUid>,
    pub namespace: Option<Arc<str>>,
    pub pod_name: Option<Arc<str>>,
    pub container_name: Option<Arc<str>>,
}

/// The names found by one scan of a log root.
#[derive(Debug, Clone, Default)]
pub struct NameIndex {
    containers: HashMap<ContainerId, ContainerNames>,
    pods: HashMap<PodUid, PodNames>,
}

/// Why a scan found nothing.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// Neither `pods/` nor `containers/` exists: not a Kubernetes node, or
    /// the directories are not mounted.
    #[error("{0}: no pods/ or containers/ directory (not a Kubernetes node, or not mounted)")]
    NoLogDirectories(PathBuf),
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
}

/// Splits `<a>_<b>_<c>` at its first and last `_`; the middle may not be empty.
fn three_fields(s: &str) -> Option<(&str, &str, &str)> {
    let (first, rest) = s.split_once('_')?;
    let (middle, last) = rest.rsplit_once('_')?;
    (!first.is_empty() && !middle.is_empty() && !last.is_empty()).then_some((first, middle, last))
}

/// `<namespace>_<pod>_<uid>`, a directory name in `pods/`.
fn parse_pod_dir(name: &str) -> Option<(PodUid, PodNames)> {
    let (namespace, pod, uid) = three_fields(name)?;
    Some((
        PodUid::parse(uid)?,
        PodNames {
            namespace: namespace.into(),
            pod: pod.into(),
        },
    ))
}

/// `<pod>_<namespace>_<container>-<id>.log`, a link name in `containers/`.
fn parse_container_link_name(name: &str) -> Option<(ContainerId, ContainerNames)> {
    let (rest, id) = name.strip_suffix(".log")?.rsplit_once('-')?;
    let id = ContainerId::parse(id)?;
    let (pod, namespace, container) = three_fields(rest)?;
    Some((
        id,
        ContainerNames {
            namespace: namespace.into(),
            pod: pod.into(),
            container: container.into(),
            pod_uid: None,
        },
    ))
}

/// `…/<namespace>_<pod>_<uid>/<container>/<file>`, a link's target.
fn parse_link_target(target: &Path) -> Option<ContainerNames> {
    let mut parts = target.iter().rev().skip(1);
    let container = parts.next()?.to_str()?;
    let (uid, pod) = parse_pod_dir(parts.next()?.to_str()?)?;
    (!container.is_empty()).then(|| ContainerNames {
        namespace: pod.namespace,
        pod: pod.pod,
        container: container.into(),
        pod_uid: Some(uid),
    })
}

/// The entry names of a directory; `Ok(None)` when it does not exist.
fn entries(dir: &Path) -> Result<Option<Vec<(String, PathBuf)>>, ScanError> {
    let read_err = |source| ScanError::Read {
        path: dir.to_owned(),
        source,
    };
    let iter = match std::fs::read_dir(dir) {
        Ok(iter) => iter,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_err(e)),
    };
    let mut out = Vec::new();
    for entry in iter {
        let entry = entry.map_err(read_err)?;
        // Names that are not UTF-8 are no Kubernetes names.
        if let Ok(name) = entry.file_name().into_string() {
            out.push((name, entry.path()));
        }
    }
    Ok(Some(out))
}

impl NameIndex {
    /// Reads `<log_root>/pods` and `<log_root>/containers`. Entries that do
    /// not parse are skipped; a directory that cannot be read fails the scan.
    pub fn scan(log_root: &Path) -> Result<Self, ScanError> {
        let pod_dirs = entries(&log_root.join("pods"))?;
        let links = entries(&log_root.join("containers"))?;
        if pod_dirs.is_none() && links.is_none() {
            return Err(ScanError::NoLogDirectories(log_root.to_owned()));
        }
        let mut index = NameIndex::default();
        for (name, _) in pod_dirs.unwrap_or_default() {
            if let Some((uid, names)) = parse_pod_dir(&name) {
                index.pods.insert(uid, names);
            }
        }
        // For links whose target does not name the pod (Docker's old
        // layout pointed into /var/lib/docker): the UID by pod and namespace.
        let uid_by_name: HashMap<(Arc<str>, Arc<str>), PodUid> = index
            .pods
            .iter()
            .map(|(uid, p)| ((p.namespace.clone(), p.pod.clone()), uid.clone()))
            .collect();
        for (name, path) in links.unwrap_or_default() {
            let Some((id, from_name)) = parse_container_link_name(&name) else {
                continue;
            };
            let names = std::fs::read_link(&path)
                .ok()
                .and_then(|target| parse_link_target(&target))
                .unwrap_or_else(|| ContainerNames {
                    pod_uid: uid_by_name
                        .get(&(from_name.namespace.clone(), from_name.pod.clone()))
                        .cloned(),
                    ..from_name
                });
            index.containers.insert(id, names);
        }
        Ok(index)
    }

    pub fn container(&self, id: &ContainerId) -> Option<&ContainerNames> {
        self.containers.get(id)
    }

    pub fn pod(&self, uid: &PodUid) -> Option<&PodNames> {
        self.pods.get(uid)
    }

    /// Containers and pods known.
    pub fn len(&self) -> (usize, usize) {
        (self.containers.len(), self.pods.len())
    }

    /// What the index says about an identity; the IDs are kept whatever it
    /// knows. A container's link wins over its pod's directory.
    pub fn info(&self, identity: &CgroupIdentity) -> ContainerInfo {
        let mut info = ContainerInfo {
            container_id: identity.container_id.clone(),
            pod_uid: identity.pod_uid.clone(),
            ..ContainerInfo::default()
        };
        if let Some(names) = identity
            .container_id
            .as_ref()
            .and_then(|id| self.container(id))
        {
            info.namespace = Some(names.namespace.clone());
            info.pod_name = Some(names.pod.clone());
            info.container_name = Some(names.container.clone());
            if info.pod_uid.is_none() {
                info.pod_uid = names.pod_uid.clone();
            }
        } else if let Some(pod) = identity.pod_uid.as_ref().and_then(|uid| self.pod(uid)) {
            info.namespace = Some(pod.namespace.clone());
            info.pod_name = Some(pod.pod.clone());
        }
        info
    }

    fn knows(&self, identity: &CgroupIdentity) -> bool {
        match (&identity.container_id, &identity.pod_uid) {
            (Some(id), _) => self.containers.contains_key(id),
            (None, Some(uid)) => self.pods.contains_key(uid),
            (None, None) => true,
        }
    }
}

/// Counters for status and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Scans done, successful or not.
    pub scans: u64,
    /// Scans that failed.
    pub errors: u64,
}

/// An ID that stayed unknown after a rescan it caused.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum UnknownKey {
    Container(ContainerId),
    Pod(PodUid),
}

/// The names of one log root, rescanned on demand.
///
/// The reader calls [`LogRootNames::resolve`] when it first sees a process
/// (with the identity parsed from its cgroup) and passes the number of the
/// cycle it runs in; nothing is needed per cycle otherwise.
#[derive(Debug)]
pub struct LogRootNames {
    root: PathBuf,
    index: NameIndex,
    /// The cycle of the last scan; `None` before the first.
    scanned_in: Option<u64>,
    /// Rescans caused by each ID still unknown.
    unknown: HashMap<UnknownKey, u32>,
    /// The last scan's failure, so that a failure is logged when it starts
    /// or changes, not on every scan.
    failing: Option<String>,
    stats: ScanStats,
}

impl LogRootNames {
    /// Names from `root` (normally `/var/log`); nothing is read until the
    /// first [`resolve`](Self::resolve).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            index: NameIndex::default(),
            scanned_in: None,
            unknown: HashMap::new(),
            failing: None,
            stats: ScanStats::default(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn stats(&self) -> ScanStats {
        self.stats
    }

    pub fn index(&self) -> &NameIndex {
        &self.index
    }

    /// The names of a process's container and pod. When the identity is not
    /// in the map, the log root is rescanned first, unless it was already
    /// scanned in this `cycle` or this ID has caused enough rescans already.
    pub fn resolve(&mut self, identity: &CgroupIdentity, cycle: u64) -> ContainerInfo {
        if !self.index.knows(identity) && self.scanned_in != Some(cycle) {
            let key = match (&identity.container_id, &identity.pod_uid) {
                (Some(id), _) => Some(UnknownKey::Container(id.clone())),
                (None, Some(uid)) => Some(UnknownKey::Pod(uid.clone())),
                (None, None) => None,
            };
            let tries = key.as_ref().and_then(|k| self.unknown.get(k)).copied();
            if tries.unwrap_or(0) < RESCANS_PER_UNKNOWN_ID {
                self.rescan(cycle);
                if let Some(key) = key.filter(|_| !self.index.knows(identity)) {
                    if self.unknown.len() >= MAX_REMEMBERED_UNKNOWN {
                        self.unknown.clear();
                    }
                    *self.unknown.entry(key).or_insert(0) += 1;
                }
            }
        }
        self.index.info(identity)
    }

    fn rescan(&mut self, cycle: u64) {
        self.scanned_in = Some(cycle);
        self.stats.scans += 1;
        match NameIndex::scan(&self.root) {
            Ok(index) => {
                if self.failing.take().is_some() {
                    tracing::info!(log_root = %self.root.display(), "container names readable again");
                }
                let (containers, pods) = index.len();
                tracing::debug!(log_root = %self.root.display(), containers, pods, "container names rescanned");
                self.index = index;
                let index = &self.index;
                self.unknown.retain(|key, _| match key {
                    UnknownKey::Container(id) => index.container(id).is_none(),
                    UnknownKey::Pod(uid) => index.pod(uid).is_none(),
                });
            }
            Err(e) => {
                self.stats.errors += 1;
                let message = e.to_string();
                if self.failing.as_deref() != Some(message.as_str()) {
                    tracing::warn!(
                        log_root = %self.root.display(),
                        error = %message,
                        "container names unavailable: processes in containers keep their IDs only"
                    );
                    self.failing = Some(message);
                }
                // What was known stays known: a transient error does not
                // unname every container.
            }
        }
    }
}

#[cfg(test)]
mod tests;
