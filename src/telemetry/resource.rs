//! The resource every export carries: which agent (`service.name`,
//! `service.version`) on which node (`host.name`, `host.id`,
//! `k8s.node.name`), plus `OTEL_RESOURCE_ATTRIBUTES`.
//!
//! The host facts are read through the procfs mount the agent reads
//! processes from, so that in a DaemonSet with the node's `/proc` at
//! `/host/proc` they describe the node, not the agent's container.
//!
//! `host.name`: on `/proc`, `/proc/sys/kernel/hostname`, else uname. On a
//! host mount, `<procfs>/sys/kernel/hostname` is not enough: that sysctl
//! shows the UTS namespace of the *reader* (the pod's hostname unless the
//! pod shares the node's), so the node's own file is tried first through
//! its init process (`<procfs>/1/root/etc/hostname`, readable with
//! `CAP_SYS_PTRACE`), then the node name from the downward API, then the
//! sysctl and uname.
//!
//! `host.id`: the machine-id. On `/proc`, `/etc/machine-id`; on a host
//! mount, only the node's: beside the mount (`/host/etc/machine-id` for
//! `/host/proc`) or through its init process. The container's own
//! machine-id identifies no node and is never used there.

use std::path::{Path, PathBuf};

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::resource::{
    EnvResourceDetector, ResourceDetector, TelemetryResourceDetector,
};

use super::catalogue::resource as key;

/// Standard variable with extra resource attributes, `key=value,...`.
pub const OTEL_RESOURCE_ATTRIBUTES_ENV: &str = "OTEL_RESOURCE_ATTRIBUTES";
/// Variable the DaemonSet sets from the downward API (`spec.nodeName`).
pub const K8S_NODE_NAME_ENV: &str = "K8S_NODE_NAME";
/// Standard variable naming the service.
pub const OTEL_SERVICE_NAME_ENV: &str = "OTEL_SERVICE_NAME";

/// The values the resource is made of, gathered before it is built so that
/// they can be checked without an SDK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// `OTEL_SERVICE_NAME`, when set: the `service.name`, even over one in
    /// `OTEL_RESOURCE_ATTRIBUTES` (as the OpenTelemetry specification
    /// says); `procgroups` otherwise.
    pub service_name: Option<String>,
    /// `host.name`.
    pub host_name: Option<String>,
    /// `host.id`.
    pub host_id: Option<String>,
    /// `k8s.node.name`.
    pub k8s_node_name: Option<String>,
    /// Why `OTEL_RESOURCE_ATTRIBUTES` cannot be read, when it cannot: the
    /// specification says to discard the entire value then and report an
    /// error, rather than keep the entries that happen to parse.
    pub resource_attributes_problem: Option<String>,
}

impl HostFacts {
    /// Reads the facts for a procfs mounted at `procfs`, with `env` giving
    /// environment variables.
    pub fn gather(procfs: &Path, env: impl Fn(&str) -> Option<String>) -> Self {
        let non_empty =
            |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        HostFacts {
            service_name: non_empty(env(OTEL_SERVICE_NAME_ENV)),
            host_name: host_name(procfs, non_empty(env(K8S_NODE_NAME_ENV))),
            host_id: machine_id_paths(procfs)
                .iter()
                .find_map(|p| read_trimmed(p)),
            k8s_node_name: non_empty(env(K8S_NODE_NAME_ENV)),
            resource_attributes_problem: non_empty(env(OTEL_RESOURCE_ATTRIBUTES_ENV))
                .and_then(|v| check_resource_attributes(&v).err()),
        }
    }

    /// The attributes these facts contribute.
    pub fn attributes(&self) -> Vec<KeyValue> {
        let mut kvs = vec![
            KeyValue::new(
                key::SERVICE_NAME,
                self.service_name
                    .clone()
                    .unwrap_or_else(|| key::DEFAULT_SERVICE_NAME.to_owned()),
            ),
            KeyValue::new(key::SERVICE_VERSION, env!("CARGO_PKG_VERSION")),
        ];
        let optional = [
            (key::HOST_NAME, &self.host_name),
            (key::HOST_ID, &self.host_id),
            (key::K8S_NODE_NAME, &self.k8s_node_name),
        ];
        for (k, v) in optional {
            if let Some(v) = v {
                kvs.push(KeyValue::new(k, v.clone()));
            }
        }
        kvs
    }
}

/// The resource: SDK telemetry attributes, then the host facts, then
/// `OTEL_RESOURCE_ATTRIBUTES` (which wins, so an operator can override any
/// detected value), then `OTEL_SERVICE_NAME` (which the specification puts
/// above `service.name` in `OTEL_RESOURCE_ATTRIBUTES`).
///
/// A malformed `OTEL_RESOURCE_ATTRIBUTES` is discarded as a whole and
/// logged once as an error.
pub fn build(facts: &HostFacts) -> Resource {
    let telemetry: Box<dyn ResourceDetector> = Box::new(TelemetryResourceDetector);
    let mut builder = Resource::builder_empty()
        .with_detectors(&[telemetry])
        .with_attributes(facts.attributes());
    match &facts.resource_attributes_problem {
        None => {
            let env: Box<dyn ResourceDetector> = Box::new(EnvResourceDetector::new());
            builder = builder.with_detectors(&[env]);
        }
        Some(why) => tracing::error!(
            variable = OTEL_RESOURCE_ATTRIBUTES_ENV,
            "{OTEL_RESOURCE_ATTRIBUTES_ENV}: {why}; the whole value is discarded \
             (write `key=value,key2=value2`)"
        ),
    }
    match &facts.service_name {
        Some(name) => builder.with_service_name(name.clone()),
        None => builder,
    }
    .build()
}

/// Why `value` is not a `key=value,...` list: an entry without `=` or with
/// an empty key. (Empty entries, as after a trailing comma, are allowed.)
fn check_resource_attributes(value: &str) -> Result<(), String> {
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        match entry.split_once('=') {
            Some((key, _)) if !key.trim().is_empty() => {}
            _ => return Err(format!("`{entry}` is not `key=value`")),
        }
    }
    Ok(())
}

/// True for the agent's own procfs (`/proc`), false for a host mount.
fn is_own_procfs(procfs: &Path) -> bool {
    procfs == Path::new("/proc") || procfs == Path::new("/proc/")
}

fn host_name(procfs: &Path, k8s_node_name: Option<String>) -> Option<String> {
    let sysctl = || read_trimmed(&procfs.join("sys/kernel/hostname"));
    if is_own_procfs(procfs) {
        return sysctl().or_else(uname_nodename);
    }
    read_trimmed(&procfs.join("1/root/etc/hostname"))
        .or(k8s_node_name)
        .or_else(sysctl)
        .or_else(uname_nodename)
}

/// Where the machine-id of the node behind `procfs` may be (see the module
/// documentation).
fn machine_id_paths(procfs: &Path) -> Vec<PathBuf> {
    if is_own_procfs(procfs) {
        return vec![
            PathBuf::from("/etc/machine-id"),
            PathBuf::from("/var/lib/dbus/machine-id"),
        ];
    }
    let mut paths = Vec::new();
    if let Some(parent) = procfs.parent()
        && parent != Path::new("/")
        && parent != Path::new("")
    {
        paths.push(parent.join("etc/machine-id"));
        paths.push(parent.join("var/lib/dbus/machine-id"));
    }
    paths.push(procfs.join("1/root/etc/machine-id"));
    paths
}

fn read_trimmed(path: &Path) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

fn uname_nodename() -> Option<String> {
    let uname = rustix::system::uname();
    let name = uname.nodename().to_string_lossy().trim().to_owned();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    /// A host mount at `<tmp>/proc` with the given files.
    fn host_mount(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let p = root.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        let procfs = root.path().join("proc");
        std::fs::create_dir_all(&procfs).unwrap();
        (root, procfs)
    }

    #[test]
    fn host_facts_come_from_the_node_behind_the_mount() {
        let (_root, procfs) = host_mount(&[
            ("proc/sys/kernel/hostname", "the-pod\n"),
            ("proc/1/root/etc/hostname", "node-7\n"),
            ("etc/machine-id", "0123abcd\n"),
            ("proc/1/root/etc/machine-id", "not-this-one\n"),
        ]);
        let facts = HostFacts::gather(
            &procfs,
            env_of(&[
                ("K8S_NODE_NAME", "k8s-node-7"),
                ("OTEL_SERVICE_NAME", "pg-east"),
            ]),
        );
        assert_eq!(facts.host_name.as_deref(), Some("node-7"));
        assert_eq!(facts.host_id.as_deref(), Some("0123abcd"));
        assert_eq!(facts.k8s_node_name.as_deref(), Some("k8s-node-7"));
        assert_eq!(facts.service_name.as_deref(), Some("pg-east"));
    }

    #[test]
    fn without_the_node_files_the_node_name_beats_the_reader_s_hostname() {
        let (_root, procfs) = host_mount(&[
            ("proc/sys/kernel/hostname", "the-pod\n"),
            ("proc/1/root/etc/machine-id", "init-machine-id\n"),
        ]);
        let facts = HostFacts::gather(&procfs, env_of(&[("K8S_NODE_NAME", "node-9")]));
        assert_eq!(facts.host_name.as_deref(), Some("node-9"));
        assert_eq!(facts.host_id.as_deref(), Some("init-machine-id"));

        let facts = HostFacts::gather(&procfs, env_of(&[]));
        assert_eq!(facts.host_name.as_deref(), Some("the-pod"));
    }

    #[test]
    fn a_bare_host_mount_falls_back_to_uname_and_has_no_host_id() {
        let (_root, procfs) = host_mount(&[]);
        let facts = HostFacts::gather(&procfs, env_of(&[("K8S_NODE_NAME", " ")]));
        assert_eq!(facts.host_name, uname_nodename());
        assert_eq!(facts.host_id, None, "never the container's own machine-id");
        assert_eq!(facts.k8s_node_name, None);
        assert_eq!(facts.service_name, None);
    }

    #[test]
    fn on_the_own_proc_the_facts_are_the_running_system_s() {
        let facts = HostFacts::gather(Path::new("/proc"), env_of(&[]));
        let sysctl = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(facts.host_name.as_deref(), Some(sysctl.trim()));
        let id = std::fs::read_to_string("/etc/machine-id")
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        assert_eq!(facts.host_id, id);
    }

    #[test]
    fn resource_carries_the_facts() {
        let facts = HostFacts {
            service_name: None,
            host_name: Some("h".into()),
            host_id: Some("id".into()),
            k8s_node_name: None,
            resource_attributes_problem: None,
        };
        let r = build(&facts);
        let get = |k: &'static str| {
            r.get(&opentelemetry::Key::from_static_str(k))
                .map(|v| v.to_string())
        };
        assert_eq!(get("service.name").as_deref(), Some("procgroups"));
        assert_eq!(
            get("service.version").as_deref(),
            Some(env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(get("host.name").as_deref(), Some("h"));
        assert_eq!(get("host.id").as_deref(), Some("id"));
        assert_eq!(get("k8s.node.name"), None);
        assert_eq!(get("telemetry.sdk.language").as_deref(), Some("rust"));
    }

    #[test]
    fn malformed_resource_attributes_are_reported() {
        for (value, problem) in [
            ("team=a, zone = b,", None),
            ("broken", Some("`broken`")),
            ("team=a,broken", Some("`broken`")),
            ("=a", Some("`=a`")),
        ] {
            let facts = HostFacts::gather(
                Path::new("/proc"),
                env_of(&[(OTEL_RESOURCE_ATTRIBUTES_ENV, value)]),
            );
            match (problem, &facts.resource_attributes_problem) {
                (None, None) => {}
                (Some(want), Some(got)) => assert!(got.contains(want), "{value}: {got}"),
                (want, got) => panic!("{value}: wanted {want:?}, got {got:?}"),
            }
        }
    }
}
