//! The parser on the layouts real nodes produce (lines as found on
//! containerd, CRI-O, cri-dockerd, Docker, Podman, nerdctl and kind hosts),
//! and on garbage.

use proptest::prelude::*;

use super::*;

const ID: &str = "3c1f5f8ad8a41d0f16f5a8e6f8a3bd97c0d1f1aa3c9c4b0e5a6d7e8f9a0b1c2d";
const ID2: &str = "9ec39b91f3d70e1beff50a308f77067065ea6be0d91a3378375056cd4422cf3d";
const UID: &str = "8a1f4e3b-5d3c-4a2b-9f7e-1c2d3e4f5a6b";
const UID_SYSTEMD: &str = "8a1f4e3b_5d3c_4a2b_9f7e_1c2d3e4f5a6b";

fn ids(text: &str) -> (Option<String>, Option<String>) {
    match identity_from_cgroup(text) {
        Some(i) => (
            i.container_id.map(|c| c.as_str().to_owned()),
            i.pod_uid.map(|p| p.as_str().to_owned()),
        ),
        None => (None, None),
    }
}

fn both(id: &str, uid: &str) -> (Option<String>, Option<String>) {
    (Some(id.to_owned()), Some(uid.to_owned()))
}

fn container_only(id: &str) -> (Option<String>, Option<String>) {
    (Some(id.to_owned()), None)
}

const NONE: (Option<String>, Option<String>) = (None, None);

#[test]
fn systemd_driver_on_cgroup_v2_for_each_runtime_and_qos_class() {
    for runtime in ["cri-containerd", "crio", "docker"] {
        for qos in ["burstable", "besteffort"] {
            let text = format!(
                "0::/kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{UID_SYSTEMD}.slice/{runtime}-{ID}.scope\n"
            );
            assert_eq!(ids(&text), both(ID, UID), "{text}");
        }
        // Guaranteed pods have no QoS slice.
        let text =
            format!("0::/kubepods.slice/kubepods-pod{UID_SYSTEMD}.slice/{runtime}-{ID}.scope\n");
        assert_eq!(ids(&text), both(ID, UID), "{text}");
    }
}

#[test]
fn systemd_driver_on_cgroup_v1_every_controller_line_agrees() {
    let path = format!(
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_SYSTEMD}.slice/cri-containerd-{ID}.scope"
    );
    let text = [
        "12:hugetlb",
        "11:memory",
        "10:cpu,cpuacct",
        "9:pids",
        "8:net_cls,net_prio",
        "7:devices",
        "6:blkio",
        "5:freezer",
        "4:perf_event",
        "3:cpuset",
        "2:rdma",
        "1:name=systemd",
    ]
    .iter()
    .map(|h| format!("{h}:{path}\n"))
    .collect::<String>();
    assert_eq!(ids(&text), both(ID, UID));
}

#[test]
fn cgroupfs_driver_with_and_without_qos_class() {
    let text = format!(
        "11:memory:/kubepods/burstable/pod{UID}/{ID}\n10:cpu,cpuacct:/kubepods/burstable/pod{UID}/{ID}\n1:name=systemd:/kubepods/burstable/pod{UID}/{ID}\n"
    );
    assert_eq!(ids(&text), both(ID, UID));
    let text = format!("0::/kubepods/besteffort/pod{UID}/{ID}\n");
    assert_eq!(ids(&text), both(ID, UID));
    let text = format!("0::/kubepods/pod{UID}/{ID}\n");
    assert_eq!(ids(&text), both(ID, UID));
}

#[test]
fn cgroupfs_driver_under_cri_o_names_the_container_but_not_conmon() {
    let text = format!("0::/kubepods/besteffort/pod{UID}/crio-{ID}\n");
    assert_eq!(ids(&text), both(ID, UID));
    let text = format!("0::/kubepods/besteffort/pod{UID}/crio-conmon-{ID}\n");
    assert_eq!(ids(&text), (None, Some(UID.to_owned())));
}

#[test]
fn hybrid_cgroupfs_driver_takes_the_v1_lines_over_the_runtime_service_on_v2() {
    // On a hybrid host the cgroupfs driver leaves the unified hierarchy to
    // systemd, where the process still shows in the runtime's service.
    let text = format!(
        "12:memory:/kubepods/burstable/pod{UID}/{ID}\n\
         1:name=systemd:/system.slice/containerd.service\n\
         0::/system.slice/containerd.service\n"
    );
    assert_eq!(ids(&text), both(ID, UID));
    // And the systemd driver on a hybrid host, v2 line last.
    let path = format!(
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_SYSTEMD}.slice/crio-{ID}.scope"
    );
    let text = format!("4:memory:{path}\n1:name=systemd:{path}\n0::{path}\n");
    assert_eq!(ids(&text), both(ID, UID));
}

#[test]
fn static_pods_have_a_hash_for_uid() {
    let hash = "5d3e4f0a9b8c7d6e5f4a3b2c1d0e9f8a";
    let text = format!(
        "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{hash}.slice/cri-containerd-{ID}.scope\n"
    );
    assert_eq!(ids(&text), both(ID, hash));
    let text = format!("3:cpuset:/kubepods/burstable/pod{hash}/{ID}\n");
    assert_eq!(ids(&text), both(ID, hash));
}

#[test]
fn kind_node_inside_docker_gives_the_innermost_container() {
    // kind: a node is a Docker container whose kubelet uses kubelet.slice.
    let text = format!(
        "0::/system.slice/docker-{ID2}.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UID_SYSTEMD}.slice/cri-containerd-{ID}.scope\n"
    );
    assert_eq!(ids(&text), both(ID, UID));
    // The node's own processes are in the outer container only.
    let text = format!("0::/system.slice/docker-{ID2}.scope/kubelet.slice/kubelet.service\n");
    assert_eq!(ids(&text), container_only(ID2));
}

#[test]
fn docker_outside_kubernetes() {
    // cgroupfs driver on v1 (Debian's default before cgroup v2).
    let text = format!(
        "10:net_prio:/docker/{ID}\n9:perf_event:/docker/{ID}\n4:memory:/docker/{ID}\n1:name=systemd:/docker/{ID}\n"
    );
    assert_eq!(ids(&text), container_only(ID));
    // systemd driver, v1 and v2.
    let text = format!(
        "8:memory:/system.slice/docker-{ID}.scope\n1:name=systemd:/system.slice/docker-{ID}.scope\n"
    );
    assert_eq!(ids(&text), container_only(ID));
    let text = format!("0::/system.slice/docker-{ID}.scope\n");
    assert_eq!(ids(&text), container_only(ID));
}

#[test]
fn podman_rootful_and_rootless_but_not_conmon() {
    let text = format!("0::/machine.slice/libpod-{ID}.scope\n");
    assert_eq!(ids(&text), container_only(ID));
    // crun puts the payload in a `container` child when systemd runs inside.
    let text = format!("0::/machine.slice/libpod-{ID}.scope/container\n");
    assert_eq!(ids(&text), container_only(ID));
    let text =
        format!("0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope\n");
    assert_eq!(ids(&text), container_only(ID));
    // Podman's cgroupfs manager (cgroup v1 hosts).
    let text =
        format!("4:memory:/libpod_parent/libpod-{ID}\n1:name=systemd:/libpod_parent/libpod-{ID}\n");
    assert_eq!(ids(&text), container_only(ID));
    let text = format!("1:name=systemd:/libpod_parent/libpod-conmon-{ID}\n");
    assert_eq!(ids(&text), NONE);
    // conmon watches the container from outside it.
    let text = format!("0::/machine.slice/libpod-conmon-{ID}.scope\n");
    assert_eq!(ids(&text), NONE);
    let text = format!(
        "0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-conmon-{ID}.scope\n"
    );
    assert_eq!(ids(&text), NONE);
}

#[test]
fn crio_conmon_is_in_the_pod_but_not_the_container() {
    let text = format!(
        "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_SYSTEMD}.slice/crio-conmon-{ID}.scope\n"
    );
    assert_eq!(ids(&text), (None, Some(UID.to_owned())));
}

#[test]
fn containerd_without_kubernetes() {
    // nerdctl, systemd driver.
    let text = format!("0::/system.slice/nerdctl-{ID}.scope\n");
    assert_eq!(ids(&text), container_only(ID));
    // nerdctl or ctr, cgroupfs driver: the containerd namespace, then the ID.
    let text = format!("0::/default/{ID}\n");
    assert_eq!(ids(&text), container_only(ID));
}

#[test]
fn a_removed_cgroup_still_names_its_container() {
    let text = format!(
        "0::/kubepods.slice/kubepods-pod{UID_SYSTEMD}.slice/cri-containerd-{ID}.scope (deleted)\n"
    );
    assert_eq!(ids(&text), both(ID, UID));
}

#[test]
fn upper_case_ids_are_folded() {
    let text = format!("0::/docker/{}\n", ID.to_uppercase());
    assert_eq!(ids(&text), container_only(ID));
}

#[test]
fn host_processes_have_no_identity() {
    for text in [
        "0::/init.scope\n",
        "0::/system.slice/containerd.service\n",
        "0::/system.slice/kubelet.service\n",
        "0::/user.slice/user-1000.slice/session-3.scope\n",
        "0::/\n",
        // A sandbox's own memory cgroup named with 32 hex digits.
        "9:name=systemd:/\n4:memory:/process_api/2a74264a5c0571f489c34ef61ed030cb\n0::/\n",
        // The kubelet's pod-level slices, without a container or a pod.
        "0::/kubepods.slice\n",
        "0::/kubepods.slice/kubepods-burstable.slice\n",
        "0::/kubepods/burstable\n",
    ] {
        assert_eq!(ids(text), NONE, "{text}");
    }
}

#[test]
fn near_misses_are_not_identities() {
    let short = &ID[..63];
    let long = format!("{ID}0");
    let not_hex = format!("{}g", &ID[..63]);
    for text in [
        format!("0::/docker/{short}\n"),
        format!("0::/docker/{long}\n"),
        format!("0::/docker/{not_hex}\n"),
        format!("0::/system.slice/docker-{short}.scope\n"),
        format!("0::/system.slice/runc-{ID}.scope\n"),
        format!("0::/system.slice/docker-{ID}.service\n"),
        // A pod UID outside any kubepods tree means nothing.
        format!("0::/pod{UID}/\n"),
        // A malformed UID.
        "0::/kubepods/burstable/pod8a1f4e3b-5d3c-4a2b-9f7e/\n".to_owned(),
        format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_SYSTEMD}x.slice\n"
        ),
        // No path field.
        format!("docker-{ID}.scope\n"),
        format!("0:{ID}\n"),
    ] {
        assert_eq!(ids(&text), NONE, "{text}");
    }
}

#[test]
fn garbage_has_no_identity() {
    for text in [
        "",
        "\n\n",
        ":::",
        "0::",
        "not a cgroup file",
        "\u{0}\u{ffff}::/\u{1F600}/-.scope",
    ] {
        assert_eq!(ids(text), NONE, "{text:?}");
    }
}

#[test]
fn pod_uid_forms() {
    assert_eq!(
        PodUid::parse(UID_SYSTEMD).map(|u| u.to_string()).as_deref(),
        Some(UID)
    );
    assert_eq!(
        PodUid::parse(&UID.to_uppercase())
            .map(|u| u.to_string())
            .as_deref(),
        Some(UID)
    );
    assert!(PodUid::parse("8a1f4e3b5d3c4a2b9f7e1c2d3e4f5a6b").is_some());
    assert!(PodUid::parse("8a1f4e3b-5d3c-4a2b-9f7e1c2d3e4f5a6b").is_none());
    assert!(PodUid::parse("").is_none());
    assert!(PodUid::parse("zzzzzzzz-5d3c-4a2b-9f7e-1c2d3e4f5a6b").is_none());
}

#[test]
fn reads_the_cgroup_file_of_a_process() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("42")).unwrap();
    std::fs::write(dir.path().join("42/cgroup"), format!("0::/docker/{ID}\n")).unwrap();
    let identity = read_identity(dir.path(), 42).unwrap().unwrap();
    assert_eq!(identity.container_id.unwrap().as_str(), ID);
    let gone = read_identity(dir.path(), 43).unwrap_err();
    assert_eq!(gone.kind(), io::ErrorKind::NotFound);
}

#[test]
fn reads_this_process_without_error() {
    // Whatever this machine runs the tests in, its own file parses.
    let self_text = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let _ = identity_from_cgroup(&self_text);
    assert!(read_identity(Path::new("/proc"), std::process::id() as i32).is_ok());
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = identity_from_cgroup(&text);
    }

    #[test]
    fn arbitrary_paths_never_panic_and_identities_are_well_formed(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("kubepods".to_owned()),
                Just("kubepods.slice".to_owned()),
                Just(format!("kubepods-burstable-pod{UID_SYSTEMD}.slice")),
                Just(format!("pod{UID}")),
                Just(format!("crio-{ID}.scope")),
                Just(format!("libpod-conmon-{ID}.scope")),
                Just(ID.to_owned()),
                "[a-z0-9_.:-]{0,70}",
            ],
            0..8,
        ),
    ) {
        let text = format!("0::/{}\n", parts.join("/"));
        if let Some(identity) = identity_from_cgroup(&text) {
            prop_assert!(identity.container_id.is_some() || identity.pod_uid.is_some());
            if let Some(id) = identity.container_id {
                prop_assert!(ContainerId::parse(id.as_str()).as_ref() == Some(&id));
            }
            if let Some(uid) = identity.pod_uid {
                prop_assert!(PodUid::parse(uid.as_str()).as_ref() == Some(&uid));
            }
        }
    }
}
