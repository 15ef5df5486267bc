//! Which container and pod a process belongs to, from what the node itself
//! knows: the process's cgroup path gives its container ID and pod UID
//! ([`cgroup`]), and the kubelet's log directories give the names of the
//! namespace, pod and container ([`names`]). No Kubernetes API is involved.
//!
//! The parser is pure; the name cache does its own directory scans, but is
//! told the cycle it runs in, so that it rescans at most once per cycle and
//! only when asked about something it does not know. [`resolver`] shares
//! the cache with the namer, which asks while naming new processes.
//! [`split`] splits groups by container for `--container-attributes`.

pub mod cgroup;
pub mod names;
pub mod resolver;
pub mod split;

pub use cgroup::{
    CgroupIdentity, ContainerId, PodUid, identity_from_cgroup, identity_from_paths, read_identity,
};
pub use names::{ContainerInfo, ContainerNames, LogRootNames, NameIndex, PodNames, ScanStats};
pub use resolver::NameResolver;
pub use split::{ContainerAttrs, ContainerSplit};
