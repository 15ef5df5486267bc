//! The container names a namer asks for while a cycle names new processes:
//! a [`LogRootNames`] shared behind a lock, fed with the cgroup paths the
//! process reader already read when it first saw the process (the cgroup
//! file is never read twice, and never on the per-cycle path).
//!
//! The namer is called from inside a cycle and does not know the cycle's
//! number, so the resolver counts windows of time instead: an unknown ID
//! rescans the log root at most once per [`RESCAN_WINDOW`], which is never
//! more often than once per cycle of the shortest allowed interval.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::cgroup::identity_from_paths;
use super::names::{ContainerInfo, LogRootNames, ScanStats};

/// Shortest time between two rescans caused by unknown IDs.
pub const RESCAN_WINDOW: Duration = Duration::from_secs(1);

/// Names for the container identities of new processes, from one log root.
#[derive(Debug)]
pub struct NameResolver {
    root: PathBuf,
    started: Instant,
    names: Mutex<LogRootNames>,
}

impl NameResolver {
    /// Names from `log_root` (normally `/var/log`); nothing is read until a
    /// process in a container is named.
    pub fn new(log_root: impl Into<PathBuf>) -> Self {
        let root = log_root.into();
        Self {
            names: Mutex::new(LogRootNames::new(root.clone())),
            root,
            started: Instant::now(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The container and pod of a process with these cgroup paths, with the
    /// names the log root gives; `None` outside any container.
    pub fn info(&self, cgroups: &[String]) -> Option<ContainerInfo> {
        let identity = identity_from_paths(cgroups.iter().map(String::as_str))?;
        let window = self.started.elapsed().as_millis() / RESCAN_WINDOW.as_millis();
        let window = u64::try_from(window).unwrap_or(u64::MAX);
        Some(
            self.names
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .resolve(&identity, window),
        )
    }

    /// The log root's scans so far, and how many failed.
    pub fn stats(&self) -> ScanStats {
        self.names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testkit::SHOP_CART_API;

    const ID: &str = SHOP_CART_API.id;
    const UID: &str = SHOP_CART_API.uid;

    #[test]
    fn names_a_pod_container_from_its_cgroup_paths_and_the_log_root() {
        let root = tempfile::tempdir().unwrap();
        SHOP_CART_API.write(root.path()).unwrap();
        let resolver = NameResolver::new(root.path());
        let cgroups = vec!["/".to_string(), SHOP_CART_API.systemd_cgroup("burstable")];
        let info = resolver.info(&cgroups).unwrap();
        assert_eq!(info.container_id.unwrap().as_str(), ID);
        assert_eq!(info.pod_uid.unwrap().as_str(), UID);
        assert_eq!(info.namespace.as_deref(), Some("shop"));
        assert_eq!(info.pod_name.as_deref(), Some("cart-7d9f"));
        assert_eq!(info.container_name.as_deref(), Some("api"));
        assert_eq!(resolver.stats().scans, 1);
        // Known now: no further scan.
        resolver.info(&cgroups).unwrap();
        assert_eq!(resolver.stats().scans, 1);
        assert_eq!(resolver.info(&["/user.slice".to_string()]), None);
    }
}
