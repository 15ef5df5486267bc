//! Defaults that several parts of the agent share, defined once: the
//! cardinality limits, the health threshold and the status socket path that
//! the agent binds and the client commands connect to.

use std::path::PathBuf;

pub use crate::proc::{DEFAULT_MAX_GROUPS, DEFAULT_MAX_THREAD_NAMES};

/// How many export intervals may pass without a successful export before the
/// agent reports NOT_SERVING, unless configured.
pub const DEFAULT_HEALTH_EXPORT_INTERVALS: u32 = 3;

/// Where the kubelet keeps `pods/` and `containers/`, the log directories
/// that name a process's namespace, pod and container.
pub const DEFAULT_K8S_LOG_ROOT: &str = "/var/log";

/// Socket path used by an agent running as root.
pub const ROOT_SOCKET_PATH: &str = "/run/procgroups/status.sock";

/// The default status socket: [`ROOT_SOCKET_PATH`] for root, otherwise
/// `procgroups-<uid>/status.sock` under `$XDG_RUNTIME_DIR`, or under the
/// temporary directory (`$TMPDIR`, else `/tmp`) when that is unset. Agent
/// and clients compute the same path, so neither needs a flag in the common
/// case.
pub fn default_socket_path() -> PathBuf {
    default_socket_path_in(|key| std::env::var(key).ok())
}

/// [`default_socket_path`] with the environment read through `var`.
pub fn default_socket_path_in(var: impl Fn(&str) -> Option<String>) -> PathBuf {
    socket_path_for(rustix::process::geteuid().as_raw(), var)
}

fn socket_path_for(uid: u32, var: impl Fn(&str) -> Option<String>) -> PathBuf {
    if uid == 0 {
        return PathBuf::from(ROOT_SOCKET_PATH);
    }
    let absolute = |key: &str| var(key).map(PathBuf::from).filter(|p| p.is_absolute());
    let base = absolute("XDG_RUNTIME_DIR")
        .or_else(|| absolute("TMPDIR"))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    base.join(format!("procgroups-{uid}")).join("status.sock")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn default_socket_prefers_the_runtime_dir_then_the_temp_dir() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == k)
                    .map(|(_, v)| (*v).to_string())
            }
        };
        let both = env(&[("XDG_RUNTIME_DIR", "/xdg"), ("TMPDIR", "/t")]);
        assert_eq!(socket_path_for(0, both), Path::new(ROOT_SOCKET_PATH));
        assert_eq!(
            socket_path_for(1000, both),
            Path::new("/xdg/procgroups-1000/status.sock")
        );
        let relative_xdg = env(&[("XDG_RUNTIME_DIR", "rel"), ("TMPDIR", "/t")]);
        assert_eq!(
            socket_path_for(1000, relative_xdg),
            Path::new("/t/procgroups-1000/status.sock")
        );
        assert_eq!(
            socket_path_for(1000, env(&[])),
            Path::new("/tmp/procgroups-1000/status.sock")
        );
    }

    #[test]
    fn agent_and_clients_agree_on_the_default() {
        assert_eq!(
            default_socket_path(),
            default_socket_path_in(|k| std::env::var(k).ok())
        );
        assert_eq!(default_socket_path().file_name().unwrap(), "status.sock");
    }
}
