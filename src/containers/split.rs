//! Groups split by container: the group key a process is tracked under when
//! `--container-attributes` is on, and the [`MatchNamer`] decorator that
//! builds it.
//!
//! The key stays a plain `String`, so the tracker, the grouper, the
//! snapshot and the max-groups guard need no change: the inner namer's group
//! name, then a [`SEPARATOR`] and the container's five fields, each itself
//! after a [`SEPARATOR`] (empty when unknown). Rendered group names never
//! hold control characters (they are replaced by `?`), and the fields are
//! cleaned the same way here, so a key cannot be mistaken for another group
//! or for another container. Processes outside any container keep the bare
//! group name, which is also what every key is with the setting off. Keys
//! are decoded only where they are rendered ([`decode`]).

use std::sync::Arc;

use super::names::ContainerInfo;
use super::resolver::NameResolver;
use crate::proc::{Explanation, MatchNamer, ProcAttributes};

/// Separates a group name from its container fields, and the fields from
/// each other (ASCII unit separator).
pub const SEPARATOR: char = '\u{1f}';

/// Number of fields after the group name in a container key.
const FIELDS: usize = 5;

/// The OpenTelemetry semantic-convention attribute names, in key order.
pub const ATTRIBUTE_NAMES: [&str; FIELDS] = [
    "container.id",
    "k8s.pod.uid",
    "k8s.pod.name",
    "k8s.namespace.name",
    "k8s.container.name",
];

/// What a key says about a group's container: only the known fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerAttrs<'a> {
    pub container_id: Option<&'a str>,
    pub pod_uid: Option<&'a str>,
    pub pod_name: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub container_name: Option<&'a str>,
}

impl<'a> ContainerAttrs<'a> {
    /// The known fields as (OpenTelemetry attribute name, value) pairs, in
    /// [`ATTRIBUTE_NAMES`] order.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, &'a str)> {
        let values = [
            self.container_id,
            self.pod_uid,
            self.pod_name,
            self.namespace,
            self.container_name,
        ];
        ATTRIBUTE_NAMES
            .into_iter()
            .zip(values)
            .filter_map(|(name, v)| v.map(|v| (name, v)))
    }

    /// A short rendering for tables and logs: `namespace/pod/container`
    /// when the names are known, else the container ID or the pod UID.
    pub fn label(&self) -> String {
        match (self.namespace, self.pod_name, self.container_name) {
            (Some(ns), Some(pod), Some(c)) => format!("{ns}/{pod}/{c}"),
            (Some(ns), Some(pod), None) => format!("{ns}/{pod}"),
            _ => self
                .container_id
                .or(self.pod_uid)
                .unwrap_or_default()
                .to_string(),
        }
    }
}

/// Control characters in a field would break the key's framing; they are
/// shown as `?`, as in group names.
fn clean(field: &str) -> String {
    field
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The key for `group` split by `info`'s container.
pub fn encode(group: &str, info: &ContainerInfo) -> String {
    let fields: [Option<&str>; FIELDS] = [
        info.container_id.as_ref().map(|c| c.as_str()),
        info.pod_uid.as_ref().map(|p| p.as_str()),
        info.pod_name.as_deref(),
        info.namespace.as_deref(),
        info.container_name.as_deref(),
    ];
    let mut key = String::with_capacity(group.len() + 128);
    key.push_str(group);
    for field in fields {
        key.push(SEPARATOR);
        if let Some(f) = field {
            key.push_str(&clean(f));
        }
    }
    key
}

/// The group name and, for a container key, the container's attributes.
/// A key without a [`SEPARATOR`] (any key with the setting off) is its own
/// group name; a malformed key is shown whole, as a name with no container.
pub fn decode(key: &str) -> (&str, Option<ContainerAttrs<'_>>) {
    fn known(s: &str) -> Option<&str> {
        (!s.is_empty()).then_some(s)
    }
    let Some((group, rest)) = key.split_once(SEPARATOR) else {
        return (key, None);
    };
    let parts: Vec<&str> = rest.split(SEPARATOR).collect();
    let &[id, uid, pod, ns, container] = parts.as_slice() else {
        return (key, None);
    };
    let attrs = ContainerAttrs {
        container_id: known(id),
        pod_uid: known(uid),
        pod_name: known(pod),
        namespace: known(ns),
        container_name: known(container),
    };
    (group, Some(attrs))
}

/// How a key is shown where groups are listed by name (`--once` JSON,
/// `status`): the group name, and for a container group a short
/// identification of its container in brackets: the first 12 characters of
/// its ID (as container runtimes show it), else its pod's UID.
pub fn display_name(key: &str) -> String {
    match decode(key) {
        (group, Some(c)) => {
            let id = c
                .container_id
                .map(|id| id.get(..12).unwrap_or(id))
                .or(c.pod_uid)
                .unwrap_or_default();
            format!("{group} [{id}]")
        }
        (group, None) => group.to_string(),
    }
}

/// Wraps a namer so that each group is split by container: a process in a
/// container is tracked under [`encode`]'s key, any other under the inner
/// namer's name unchanged.
pub struct ContainerSplit {
    inner: Arc<dyn MatchNamer>,
    containers: Arc<NameResolver>,
}

impl ContainerSplit {
    pub fn new(inner: Arc<dyn MatchNamer>, containers: Arc<NameResolver>) -> Self {
        Self { inner, containers }
    }

    fn split(&self, group: String, attrs: &ProcAttributes<'_>) -> String {
        match self.containers.info(attrs.cgroups) {
            Some(info) => encode(&group, &info),
            None => group,
        }
    }
}

impl MatchNamer for ContainerSplit {
    fn match_and_name(&self, attrs: &ProcAttributes<'_>) -> Option<String> {
        let group = self.inner.match_and_name(attrs)?;
        Some(self.split(group, attrs))
    }

    fn explain(&self, attrs: &ProcAttributes<'_>) -> Explanation {
        let mut explanation = self.inner.explain(attrs);
        explanation.group = explanation.group.map(|g| self.split(g, attrs));
        explanation
    }

    fn describe(&self) -> Vec<String> {
        self.inner.describe()
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::containers::ContainerId;
    use crate::proc::CommSetNamer;

    use crate::testkit::SHOP_CART_API;

    const ID: &str = SHOP_CART_API.id;
    const UID: &str = SHOP_CART_API.uid;

    fn full_info() -> ContainerInfo {
        SHOP_CART_API.info()
    }

    #[test]
    fn a_key_decodes_to_its_group_and_the_five_attributes() {
        let key = encode("nginx", &full_info());
        assert_ne!(key, "nginx");
        let (group, attrs) = decode(&key);
        assert_eq!(group, "nginx");
        let attrs = attrs.unwrap();
        let pairs: Vec<_> = attrs.pairs().collect();
        assert_eq!(
            pairs,
            vec![
                ("container.id", ID),
                ("k8s.pod.uid", UID),
                ("k8s.pod.name", "cart-7d9f"),
                ("k8s.namespace.name", "shop"),
                ("k8s.container.name", "api"),
            ]
        );
        assert_eq!(attrs.label(), "shop/cart-7d9f/api");
    }

    #[test]
    fn unknown_fields_are_left_out() {
        let info = ContainerInfo {
            container_id: ContainerId::parse(ID),
            ..ContainerInfo::default()
        };
        let key = encode("g", &info);
        let (group, attrs) = decode(&key);
        assert_eq!(group, "g");
        let attrs = attrs.unwrap();
        assert_eq!(
            attrs.pairs().collect::<Vec<_>>(),
            vec![("container.id", ID)]
        );
        assert_eq!(attrs.label(), ID);
    }

    #[test]
    fn a_plain_name_or_a_malformed_key_has_no_container() {
        assert_eq!(decode("nginx"), ("nginx", None));
        let odd = format!("a{SEPARATOR}b");
        assert_eq!(decode(&odd), (odd.as_str(), None));
    }

    #[test]
    fn control_characters_in_names_cannot_shift_fields() {
        let mut info = full_info();
        info.pod_name = Some(format!("evil{SEPARATOR}x").into());
        let key = encode("g", &info);
        let (_, attrs) = decode(&key);
        let attrs = attrs.unwrap();
        assert_eq!(attrs.pod_name, Some("evil?x"));
        assert_eq!(attrs.namespace, Some("shop"));
        assert_eq!(attrs.container_name, Some("api"));
    }

    fn attrs_of<'a>(name: &'a str, cgroups: &'a [String]) -> ProcAttributes<'a> {
        ProcAttributes {
            name,
            cmdline: &[],
            cgroups,
            uid: 0,
            pid: 1,
            start_time: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn the_wrapper_splits_container_processes_and_leaves_the_rest() {
        let root = tempfile::tempdir().unwrap();
        SHOP_CART_API.write(root.path()).unwrap();
        let inner: Arc<dyn MatchNamer> = Arc::new(CommSetNamer::new(["nginx"]));
        let namer = ContainerSplit::new(inner, Arc::new(NameResolver::new(root.path())));
        let in_pod = vec![SHOP_CART_API.systemd_cgroup("burstable")];
        let outside = vec!["/user.slice/user-0.slice/session-1.scope".to_string()];

        let key = namer.match_and_name(&attrs_of("nginx", &in_pod)).unwrap();
        assert_eq!(key, encode("nginx", &full_info()));
        assert_eq!(
            namer.explain(&attrs_of("nginx", &in_pod)).group.as_deref(),
            Some(key.as_str())
        );
        assert_eq!(
            namer
                .match_and_name(&attrs_of("nginx", &outside))
                .as_deref(),
            Some("nginx")
        );
        assert_eq!(namer.match_and_name(&attrs_of("bash", &in_pod)), None);
    }
}
