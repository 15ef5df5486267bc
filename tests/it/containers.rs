//! Container identity on this machine's real cgroup filesystem: as root,
//! a `sleep` is moved into cgroups laid out as the kubelet's systemd and
//! cgroupfs drivers and Docker lay them out, its `/proc/PID/cgroup` (which
//! the kernel writes) is parsed, and its names are looked up in a fake
//! kubelet log root. Skipped, with a message, where cgroups cannot be
//! created (and failed under `CI`).

use crate::support::cgroups;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::support::procs::{Workload, unique_name};
use procgroups::containers::{LogRootNames, identity_from_cgroup, read_identity};
use procgroups::testkit::KubeletLog;

/// A container ID and pod UID no real runtime on this machine uses.
fn fresh_ids(salt: u32) -> (String, String) {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let seed = format!("{:08x}{:08x}{nanos:016x}", std::process::id(), salt);
    let id = seed.repeat(2);
    let uid = format!(
        "{}-{}-{}-{}-{}",
        &seed[..8],
        &seed[8..12],
        &seed[12..16],
        &seed[16..20],
        &seed[20..32]
    );
    (id, uid)
}

/// A sleeping child, killed and reaped on drop.
struct Sleeper(Child);

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The kubelet's log layout for container `cart` of pod
/// `shop/cart-7d9f8b6c5-x2x4z`, with the given IDs.
fn cart<'a>(id: &'a str, uid: &'a str) -> KubeletLog<'a> {
    KubeletLog {
        namespace: "shop",
        pod: "cart-7d9f8b6c5-x2x4z",
        uid,
        container: "cart",
        id,
    }
}

/// Moves a `sleep` into `relative` in every usable hierarchy and checks what
/// the parser and the names make of the kernel's `/proc/PID/cgroup`.
fn check_layout(salt: u32, layout: impl Fn(&str, &str) -> String, in_pod: bool) {
    let hierarchies = cgroups::hierarchies();
    let (id, uid) = fresh_ids(salt);
    let relative = layout(&id, &uid);
    let guard = match cgroups::CgroupGuard::create(&hierarchies, &relative) {
        Ok(guard) => guard,
        Err(e) => {
            cgroups::skip(&format!("cannot create cgroups here: {e}"));
            return;
        }
    };
    let sleeper = Sleeper(Command::new("sleep").arg("60").spawn().unwrap());
    let pid = sleeper.0.id();
    guard.enter(pid).unwrap();

    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    println!("{relative} in {hierarchies:?}:\n{text}");
    let identity = identity_from_cgroup(&text)
        .unwrap_or_else(|| panic!("no identity in the cgroup file of {pid}:\n{text}"));
    assert_eq!(
        identity.container_id.as_ref().unwrap().as_str(),
        id,
        "{text}"
    );
    assert_eq!(
        identity.pod_uid.as_ref().map(|u| u.as_str()),
        in_pod.then_some(uid.as_str()),
        "{text}"
    );
    // The reader's entry point gives the same.
    assert_eq!(
        read_identity(Path::new("/proc"), pid as i32).unwrap(),
        Some(identity.clone())
    );

    let logs = tempfile::tempdir().unwrap();
    cart(&id, &uid).write(logs.path()).unwrap();
    let mut names = LogRootNames::new(logs.path());
    let info = names.resolve(&identity, 1);
    assert_eq!(info.namespace.as_deref(), Some("shop"));
    assert_eq!(info.pod_name.as_deref(), Some("cart-7d9f8b6c5-x2x4z"));
    assert_eq!(info.container_name.as_deref(), Some("cart"));
    assert_eq!(
        info.container_id.as_ref().map(|c| c.as_str()),
        Some(id.as_str())
    );
    assert_eq!(
        info.pod_uid.as_ref().map(|u| u.as_str()),
        Some(uid.as_str())
    );

    // Out of the container, the process has no identity any more.
    drop(sleeper);
    drop(guard);
    for h in &hierarchies {
        assert!(!h.mount.join(&relative).exists(), "{relative} left behind");
    }
}

/// The layouts share parent cgroups (`kubepods.slice`), which one test
/// would remove under another: they take turns.
static TURNS: Mutex<()> = Mutex::new(());

/// The test's turn, or `None` when it is skipped.
fn ready() -> Option<MutexGuard<'static, ()>> {
    if let Some(reason) = cgroups::unavailable() {
        cgroups::skip(&reason);
        return None;
    }
    Some(
        TURNS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
    )
}

#[test]
fn systemd_driver_burstable_pod() {
    let Some(_turn) = ready() else { return };
    check_layout(
        1,
        |id, uid| {
            let uid = uid.replace('-', "_");
            format!(
                "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice/cri-containerd-{id}.scope"
            )
        },
        true,
    );
}

#[test]
fn systemd_driver_guaranteed_pod_under_cri_o() {
    let Some(_turn) = ready() else { return };
    check_layout(
        2,
        |id, uid| {
            let uid = uid.replace('-', "_");
            format!("kubepods.slice/kubepods-pod{uid}.slice/crio-{id}.scope")
        },
        true,
    );
}

#[test]
fn cgroupfs_driver_besteffort_pod() {
    let Some(_turn) = ready() else { return };
    check_layout(
        3,
        |id, uid| format!("kubepods/besteffort/pod{uid}/{id}"),
        true,
    );
}

#[test]
fn docker_outside_kubernetes() {
    let Some(_turn) = ready() else { return };
    // The names still come from the link, and with them the pod UID.
    check_layout(4, |id, _| format!("system.slice/docker-{id}.scope"), false);
}

/// Two workloads of one comm, one moved into a fresh kubepods-style cgroup
/// (systemd driver, burstable pod) before any agent sees it, and a fake
/// kubelet log root naming its container `shop/cart-7d9f8b6c5-x2x4z/cart`.
/// Dropped, the workloads stop, then the cgroup goes, then the turn.
struct LiveContainer {
    comm: String,
    id: String,
    uid: String,
    logs: tempfile::TempDir,
    /// Where [`LiveContainer::config`] writes.
    config_dir: tempfile::TempDir,
    _inside: Workload,
    _outside: Workload,
    _guard: cgroups::CgroupGuard,
    _turn: MutexGuard<'static, ()>,
}

impl LiveContainer {
    /// The container with IDs from `salt` and a comm tagged `tag`; `None`
    /// (with the skip said) where cgroups cannot be created.
    fn start(salt: u32, tag: &str) -> Option<LiveContainer> {
        let turn = ready()?;
        let hierarchies = cgroups::hierarchies();
        let (id, uid) = fresh_ids(salt);
        let layout = cart(&id, &uid);
        let relative = layout.systemd_cgroup("burstable");
        let guard = match cgroups::CgroupGuard::create(&hierarchies, &relative[1..]) {
            Ok(guard) => guard,
            Err(e) => {
                cgroups::skip(&format!("cannot create cgroups here: {e}"));
                return None;
            }
        };
        let comm = unique_name(tag);
        let inside = Workload::spawn(&["--name", &comm]);
        let outside = Workload::spawn(&["--name", &comm]);
        guard.enter(inside.pid).unwrap();
        let logs = tempfile::tempdir().unwrap();
        layout.write(logs.path()).unwrap();
        Some(LiveContainer {
            comm,
            id,
            uid,
            logs,
            config_dir: tempfile::tempdir().unwrap(),
            _inside: inside,
            _outside: outside,
            _guard: guard,
            _turn: turn,
        })
    }

    /// Writes a configuration with the fake log root and the rules
    /// `process_names` (YAML list items), and returns its path.
    fn config(&self, process_names: &str) -> PathBuf {
        let config = self.config_dir.path().join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "k8s_log_root: {}\nprocess_names:\n{process_names}",
                self.logs.path().display()
            ),
        )
        .unwrap();
        config
    }
}

/// The agent end to end on a real cgroup: a workload moved into a
/// kubepods-style cgroup, a fake kubelet log root, and a rule grouping
/// every process of namespace `shop` by pod and container. `--once --output
/// json` shows the group with the workload in it; a rule for the same
/// namespace does not take processes outside the container.
#[test]
fn once_groups_a_live_container_by_namespace_pod_and_container() {
    use crate::support::procs::run_once;

    let Some(live) = LiveContainer::start(7, "pgk8s") else {
        return;
    };
    let comm = &live.comm;
    let config = live.config(&format!(
        "  - name: '{{{{.Namespace}}}}/{{{{.PodName}}}}/{{{{.ContainerName}}}}'\n    \
             namespace: ['^shop$']\n    comm: [{comm}]\n  \
           - name: 'host:{{{{.Comm}}}}{{{{.ContainerID}}}}'\n    comm: [{comm}]\n"
    ));
    let out = run_once(&[
        "--config",
        config.to_str().unwrap(),
        "--output",
        "json",
        "--once-delay",
        "200ms",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let groups = &doc["groups"];
    let pod_group = &groups["shop/cart-7d9f8b6c5-x2x4z/cart"];
    assert_eq!(pod_group["procs"], 1, "{groups:#}");
    let host_group = &groups[format!("host:{comm}")];
    assert_eq!(host_group["procs"], 1, "{groups:#}");
}

/// The process count of group `comm`, split by container (the point with
/// container attributes) or not.
fn processes(
    points: &[crate::support::otlp::Point],
    comm: &str,
    in_container: bool,
) -> Option<f64> {
    points
        .iter()
        .find(|p| {
            p.metric == "procgroup.processes"
                && p.attrs.get("procgroup.name").map(String::as_str) == Some(comm)
                && p.attrs.contains_key("container.id") == in_container
        })
        .map(|p| p.value)
}

#[test]
fn container_attributes_split_a_group_and_label_its_points() {
    use crate::support::otlp::{Point, points_of};
    use crate::support::procs::{Agent, agent_command};
    use crate::support::receiver::Receiver;
    use std::time::Duration;

    const WAIT: Duration = Duration::from_secs(20);
    const KEYS: [&str; 5] = [
        "container.id",
        "k8s.pod.uid",
        "k8s.pod.name",
        "k8s.namespace.name",
        "k8s.container.name",
    ];

    // In its cgroup before the agent first names it.
    let Some(live) = LiveContainer::start(11, "pgattr") else {
        return;
    };
    let comm = &live.comm;
    let config = live.config(&format!("  - name: '{{{{.Comm}}}}'\n    comm: [{comm}]\n"));
    let receiver = Receiver::start();
    let mut cmd = agent_command();
    cmd.arg("--config")
        .arg(&config)
        .args(["--container-attributes", "--interval", "200ms"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
        .env("RUST_LOG", "procgroups=info");
    let agent = Agent::spawn(cmd);

    let procs = |points: &[Point], in_container: bool| processes(points, comm, in_container);
    let points = receiver
        .wait_for_points(WAIT, |p| {
            procs(p, true).is_some() && procs(p, false).is_some()
        })
        .unwrap_or_else(|| {
            let last = receiver.received();
            let mine: Vec<_> = last
                .last()
                .map(|r| points_of(&r.request))
                .unwrap_or_default()
                .into_iter()
                .filter(|p| p.attrs.get("procgroup.name") == Some(comm))
                .collect();
            panic!("no split groups for {comm}: {mine:#?}\n{}", agent.log())
        });
    assert_eq!(procs(&points, true), Some(1.0));
    assert_eq!(procs(&points, false), Some(1.0));

    let want = [
        live.id.as_str(),
        live.uid.as_str(),
        "cart-7d9f8b6c5-x2x4z",
        "shop",
        "cart",
    ];
    let mine: Vec<&Point> = points
        .iter()
        .filter(|p| p.attrs.get("procgroup.name") == Some(comm))
        .collect();
    assert!(mine.len() > 10, "{mine:#?}");
    for p in &mine {
        if p.attrs.contains_key("container.id") {
            for (k, v) in KEYS.iter().zip(want) {
                assert_eq!(p.attrs.get(*k).map(String::as_str), Some(v), "{p:#?}");
            }
        } else {
            for k in KEYS {
                assert!(!p.attrs.contains_key(k), "{p:#?}");
            }
        }
    }

    agent.terminate();
}
