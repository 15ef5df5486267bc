//! The resource every export carries: which agent (`service.name`,
//! `service.version`) on which node (`host.name`, `host.id`,
//! `k8s.node.name`), plus `OTEL_RESOURCE_ATTRIBUTES`.
//!
//! The host facts are read through the procfs mount the agent reads
//! processes from, so that in a DaemonSet with the node's `/proc` at
//! `/host/proc` they describe the node, not the agent's container:
//! `host.name` comes from `<procfs>/sys/kernel/hostname` (falling back to
//! uname), `host.id` from the machine-id next to that mount
//! (`/host/etc/machine-id` beside `/host/proc`, else `/etc/machine-id`).

use std::path::{Path, PathBuf};

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::resource::{
    EnvResourceDetector, ResourceDetector, TelemetryResourceDetector,
};

use super::catalogue::resource as key;

/// Variable the DaemonSet sets from the downward API (`spec.nodeName`).
pub const K8S_NODE_NAME_ENV: &str = "K8S_NODE_NAME";
/// Standard variable naming the service.
pub const OTEL_SERVICE_NAME_ENV: &str = "OTEL_SERVICE_NAME";

/// The values the resource is made of, gathered before it is built so that
/// they can be checked without an SDK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// `service.name`: `OTEL_SERVICE_NAME`, else `procgroups`.
    pub service_name: String,
    /// `host.name`.
    pub host_name: Option<String>,
    /// `host.id`.
    pub host_id: Option<String>,
    /// `k8s.node.name`.
    pub k8s_node_name: Option<String>,
}

impl HostFacts {
    /// Reads the facts for a procfs mounted at `procfs`, with `env` giving
    /// environment variables.
    pub fn gather(procfs: &Path, env: impl Fn(&str) -> Option<String>) -> Self {
        let non_empty =
            |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        HostFacts {
            service_name: non_empty(env(OTEL_SERVICE_NAME_ENV))
                .unwrap_or_else(|| key::DEFAULT_SERVICE_NAME.to_owned()),
            host_name: read_trimmed(&procfs.join("sys/kernel/hostname")).or_else(uname_nodename),
            host_id: machine_id_paths(procfs)
                .iter()
                .find_map(|p| read_trimmed(p)),
            k8s_node_name: non_empty(env(K8S_NODE_NAME_ENV)),
        }
    }

    /// The attributes these facts contribute.
    pub fn attributes(&self) -> Vec<KeyValue> {
        let mut kvs = vec![
            KeyValue::new(key::SERVICE_NAME, self.service_name.clone()),
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
/// detected value).
pub fn build(facts: &HostFacts) -> Resource {
    let telemetry: Box<dyn ResourceDetector> = Box::new(TelemetryResourceDetector);
    let env: Box<dyn ResourceDetector> = Box::new(EnvResourceDetector::new());
    Resource::builder_empty()
        .with_detectors(&[telemetry])
        .with_attributes(facts.attributes())
        .with_detectors(&[env])
        .build()
}

/// Where the machine-id of the node behind `procfs` may be. For `/proc`, the
/// usual places; for any other mount only beside it (`/host/etc/machine-id`
/// for `/host/proc`): the agent's own `/etc` would be the container image's,
/// which identifies no node.
fn machine_id_paths(procfs: &Path) -> Vec<PathBuf> {
    let base = match procfs.parent() {
        Some(parent) if parent != Path::new("/") && parent != Path::new("") => parent,
        _ => Path::new("/"),
    };
    vec![
        base.join("etc/machine-id"),
        base.join("var/lib/dbus/machine-id"),
    ]
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

    #[test]
    fn host_facts_come_from_the_mount_and_its_sibling_etc() {
        let root = tempfile::tempdir().unwrap();
        let procfs = root.path().join("proc");
        std::fs::create_dir_all(procfs.join("sys/kernel")).unwrap();
        std::fs::write(procfs.join("sys/kernel/hostname"), "node-7\n").unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/machine-id"), "0123abcd\n").unwrap();

        let facts = HostFacts::gather(
            &procfs,
            env_of(&[
                ("K8S_NODE_NAME", "node-7"),
                ("OTEL_SERVICE_NAME", "pg-east"),
            ]),
        );
        assert_eq!(facts.host_name.as_deref(), Some("node-7"));
        assert_eq!(facts.host_id.as_deref(), Some("0123abcd"));
        assert_eq!(facts.k8s_node_name.as_deref(), Some("node-7"));
        assert_eq!(facts.service_name, "pg-east");
    }

    #[test]
    fn missing_hostname_file_falls_back_to_uname_and_defaults_apply() {
        let root = tempfile::tempdir().unwrap();
        let facts = HostFacts::gather(&root.path().join("proc"), env_of(&[("K8S_NODE_NAME", " ")]));
        assert_eq!(facts.host_name, uname_nodename());
        assert_eq!(facts.k8s_node_name, None);
        assert_eq!(facts.service_name, "procgroups");
    }

    #[test]
    fn resource_carries_the_facts() {
        let facts = HostFacts {
            service_name: "procgroups".into(),
            host_name: Some("h".into()),
            host_id: Some("id".into()),
            k8s_node_name: None,
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
}
