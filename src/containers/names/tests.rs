//! The name map on fixture log roots laid out as the kubelet does, with
//! links to host paths that do not exist here (they are read, not
//! followed), odd names, missing and unreadable directories.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::sync::{Arc as StdArc, Mutex};

use super::*;

const CART_ID: &str = "3c1f5f8ad8a41d0f16f5a8e6f8a3bd97c0d1f1aa3c9c4b0e5a6d7e8f9a0b1c2d";
const PROXY_ID: &str = "9ec39b91f3d70e1beff50a308f77067065ea6be0d91a3378375056cd4422cf3d";
const API_ID: &str = "4f797c539e6c745de61a93ca3ff892358ecbcaccd8414d5db545c38428142970";
const PAUSE_ID: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";
const CART_UID: &str = "8a1f4e3b-5d3c-4a2b-9f7e-1c2d3e4f5a6b";
const API_UID: &str = "5d3e4f0a9b8c7d6e5f4a3b2c1d0e9f8a";
const WEB_UID: &str = "11111111-2222-3333-4444-555555555555";

fn cid(s: &str) -> ContainerId {
    ContainerId::parse(s).unwrap()
}

fn uid(s: &str) -> PodUid {
    PodUid::parse(s).unwrap()
}

fn identity(container: Option<&str>, pod: Option<&str>) -> CgroupIdentity {
    CgroupIdentity {
        container_id: container.map(cid),
        pod_uid: pod.map(uid),
    }
}

fn named(info: &ContainerInfo) -> (Option<&str>, Option<&str>, Option<&str>) {
    (
        info.namespace.as_deref(),
        info.pod_name.as_deref(),
        info.container_name.as_deref(),
    )
}

/// A pod directory with one log per container, as the kubelet lays it out.
fn pod_dir(root: &Path, namespace: &str, pod: &str, uid: &str, containers: &[&str]) {
    for c in containers {
        let dir = root.join(format!("pods/{namespace}_{pod}_{uid}/{c}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("0.log"), "").unwrap();
    }
}

/// A `containers/` link pointing where the kubelet points it on the host.
fn link(root: &Path, namespace: &str, pod: &str, uid: &str, container: &str, id: &str) {
    std::fs::create_dir_all(root.join("containers")).unwrap();
    symlink(
        format!("/var/log/pods/{namespace}_{pod}_{uid}/{container}/0.log"),
        root.join(format!("containers/{pod}_{namespace}_{container}-{id}.log")),
    )
    .unwrap();
}

/// A node with a Deployment's pod (app and sidecar), a static pod and a
/// StatefulSet pod with a dotted name.
fn node() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    pod_dir(
        root,
        "shop",
        "cart-7d9f8b6c5-x2x4z",
        CART_UID,
        &["cart", "istio-proxy"],
    );
    link(
        root,
        "shop",
        "cart-7d9f8b6c5-x2x4z",
        CART_UID,
        "cart",
        CART_ID,
    );
    link(
        root,
        "shop",
        "cart-7d9f8b6c5-x2x4z",
        CART_UID,
        "istio-proxy",
        PROXY_ID,
    );
    pod_dir(
        root,
        "kube-system",
        "kube-apiserver-node-1.example.com",
        API_UID,
        &["kube-apiserver"],
    );
    link(
        root,
        "kube-system",
        "kube-apiserver-node-1.example.com",
        API_UID,
        "kube-apiserver",
        API_ID,
    );
    pod_dir(root, "web", "web.v2-0", WEB_UID, &["nginx"]);
    dir
}

#[test]
fn scan_maps_containers_and_pods_to_their_names() {
    let dir = node();
    let index = NameIndex::scan(dir.path()).unwrap();
    assert_eq!(index.len(), (3, 3));

    let cart = index.container(&cid(CART_ID)).unwrap();
    assert_eq!(
        (&*cart.namespace, &*cart.pod, &*cart.container),
        ("shop", "cart-7d9f8b6c5-x2x4z", "cart")
    );
    assert_eq!(cart.pod_uid, Some(uid(CART_UID)));
    assert_eq!(
        &*index.container(&cid(PROXY_ID)).unwrap().container,
        "istio-proxy"
    );
    let api = index.container(&cid(API_ID)).unwrap();
    assert_eq!(&*api.pod, "kube-apiserver-node-1.example.com");
    assert_eq!(api.pod_uid, Some(uid(API_UID)));

    let web = index.pod(&uid(WEB_UID)).unwrap();
    assert_eq!((&*web.namespace, &*web.pod), ("web", "web.v2-0"));
}

#[test]
fn info_keeps_the_ids_and_adds_what_is_known() {
    let dir = node();
    let index = NameIndex::scan(dir.path()).unwrap();

    let info = index.info(&identity(Some(CART_ID), Some(CART_UID)));
    assert_eq!(
        named(&info),
        (Some("shop"), Some("cart-7d9f8b6c5-x2x4z"), Some("cart"))
    );
    assert_eq!(info.container_id, Some(cid(CART_ID)));
    assert_eq!(info.pod_uid, Some(uid(CART_UID)));

    // The sandbox (pause) container has no log: its pod still names it.
    let info = index.info(&identity(Some(PAUSE_ID), Some(CART_UID)));
    assert_eq!(
        named(&info),
        (Some("shop"), Some("cart-7d9f8b6c5-x2x4z"), None)
    );
    assert_eq!(info.container_id, Some(cid(PAUSE_ID)));

    // A container the link knows gets its pod UID from it (a cgroup layout
    // without one, such as Docker's).
    let info = index.info(&identity(Some(API_ID), None));
    assert_eq!(info.pod_uid, Some(uid(API_UID)));

    // Unknown everywhere: IDs only.
    let unknown = "ffffffff-2222-3333-4444-555555555555";
    let info = index.info(&identity(Some(PAUSE_ID), Some(unknown)));
    assert_eq!(named(&info), (None, None, None));
    assert_eq!(info.container_id, Some(cid(PAUSE_ID)));
    assert_eq!(info.pod_uid, Some(uid(unknown)));
}

#[test]
fn link_targets_outside_pods_fall_back_to_the_link_name() {
    let dir = node();
    let root = dir.path();
    // Docker's former layout pointed the link at Docker's own log file.
    let id = "aa".repeat(32);
    symlink(
        format!("/var/lib/docker/containers/{id}/{id}-json.log"),
        root.join(format!("containers/web.v2-0_web_nginx-{id}.log")),
    )
    .unwrap();
    // A plain file rather than a link.
    let id2 = "bb".repeat(32);
    std::fs::write(
        root.join(format!("containers/web.v2-0_web_nginx-{id2}.log")),
        "",
    )
    .unwrap();

    let index = NameIndex::scan(root).unwrap();
    for id in [id, id2] {
        let c = index.container(&cid(&id)).unwrap();
        assert_eq!(
            (&*c.namespace, &*c.pod, &*c.container),
            ("web", "web.v2-0", "nginx")
        );
        // The UID comes from the pod's directory.
        assert_eq!(c.pod_uid, Some(uid(WEB_UID)), "{id}");
    }
}

#[test]
fn entries_that_are_not_the_kubelets_are_skipped() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    let dir = node();
    let root = dir.path();
    let junk_dirs = [
        "README".to_owned(),
        "shop_cart".to_owned(),
        format!("shop__{CART_UID}"),
        format!("_cart_{CART_UID}"),
        "shop_cart_not-a-uid".to_owned(),
    ];
    for name in &junk_dirs {
        std::fs::create_dir_all(root.join("pods").join(name)).unwrap();
    }
    let junk_links = [
        "README".to_owned(),
        format!("cart_shop_cart-{}.log", &CART_ID[..63]),
        format!("cart_shop_cart-{CART_ID}.txt"),
        format!("cartshopcart-{CART_ID}.log"),
        format!("cart_shop_-{CART_ID}.log"),
        format!("-{CART_ID}.log"),
    ];
    for name in &junk_links {
        std::fs::write(root.join("containers").join(name), "").unwrap();
    }
    std::fs::write(
        root.join("containers")
            .join(OsStr::from_bytes(b"\xff\xfe.log")),
        "",
    )
    .unwrap();
    // A link whose target is nonsense, and whose own name parses.
    let id = "cc".repeat(32);
    symlink("..", root.join(format!("containers/p_ns_c-{id}.log"))).unwrap();

    let index = NameIndex::scan(root).unwrap();
    assert_eq!(index.len(), (4, 3));
    let c = index.container(&cid(&id)).unwrap();
    assert_eq!((&*c.namespace, &*c.pod, &*c.container), ("ns", "p", "c"));
    assert_eq!(c.pod_uid, None);
    assert_eq!(&*index.container(&cid(CART_ID)).unwrap().container, "cart");
}

#[test]
fn either_directory_alone_is_enough() {
    let dir = tempfile::tempdir().unwrap();
    pod_dir(dir.path(), "web", "web.v2-0", WEB_UID, &["nginx"]);
    assert_eq!(NameIndex::scan(dir.path()).unwrap().len(), (0, 1));

    let dir = tempfile::tempdir().unwrap();
    link(dir.path(), "web", "web.v2-0", WEB_UID, "nginx", CART_ID);
    let index = NameIndex::scan(dir.path()).unwrap();
    assert_eq!(index.len(), (1, 0));
    assert_eq!(
        index.container(&cid(CART_ID)).unwrap().pod_uid,
        Some(uid(WEB_UID))
    );
}

#[test]
fn no_log_directories_is_an_error_naming_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let err = NameIndex::scan(dir.path()).unwrap_err();
    assert!(matches!(err, ScanError::NoLogDirectories(_)), "{err:?}");
    assert!(err.to_string().contains(&dir.path().display().to_string()));
    let err = NameIndex::scan(&dir.path().join("absent")).unwrap_err();
    assert!(matches!(err, ScanError::NoLogDirectories(_)), "{err:?}");
}

#[test]
fn a_directory_that_cannot_be_read_fails_the_scan() {
    let dir = tempfile::tempdir().unwrap();
    pod_dir(dir.path(), "web", "web.v2-0", WEB_UID, &["nginx"]);
    std::fs::write(dir.path().join("containers"), "not a directory").unwrap();
    let err = NameIndex::scan(dir.path()).unwrap_err();
    assert!(
        matches!(&err, ScanError::Read { path, .. } if path.ends_with("containers")),
        "{err:?}"
    );
}

#[test]
fn a_directory_without_permission_fails_the_scan() {
    let dir = node();
    let pods = dir.path().join("pods");
    std::fs::set_permissions(&pods, std::fs::Permissions::from_mode(0o000)).unwrap();
    // Root reads anything: scan from a thread without the two capabilities
    // that override permissions (capabilities belong to each thread).
    let root = dir.path().to_owned();
    let result = std::thread::spawn(move || {
        use rustix::thread::{CapabilitySet, capabilities, set_capabilities};
        let mut caps = capabilities(None).unwrap();
        caps.effective -= CapabilitySet::DAC_OVERRIDE | CapabilitySet::DAC_READ_SEARCH;
        set_capabilities(None, caps).unwrap();
        NameIndex::scan(&root)
    })
    .join()
    .unwrap();
    std::fs::set_permissions(&pods, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = result.unwrap_err();
    assert!(
        matches!(&err, ScanError::Read { path, source } if path == &pods && source.kind() == io::ErrorKind::PermissionDenied),
        "{err:?}"
    );
}

#[test]
fn resolve_rescans_for_an_unknown_id_at_most_once_per_cycle() {
    let dir = node();
    let root = dir.path();
    let mut names = LogRootNames::new(root);
    assert_eq!(names.stats().scans, 0, "nothing is read before it is asked");

    // Cycle 1: the first question scans; known IDs never rescan.
    let info = names.resolve(&identity(Some(CART_ID), Some(CART_UID)), 1);
    assert_eq!(named(&info).2, Some("cart"));
    assert_eq!(names.stats().scans, 1);
    for cycle in 1..5 {
        names.resolve(&identity(Some(PROXY_ID), Some(CART_UID)), cycle);
        names.resolve(&identity(None, Some(WEB_UID)), cycle);
    }
    assert_eq!(names.stats().scans, 1);

    // A container started after the scan: unknown in this cycle (already
    // scanned), found in the next, with one more scan.
    let new_id = "dd".repeat(32);
    link(root, "web", "web.v2-0", WEB_UID, "nginx", &new_id);
    let new = identity(Some(&new_id), Some(WEB_UID));
    let info = names.resolve(&new, 1);
    assert_eq!(named(&info), (Some("web"), Some("web.v2-0"), None));
    assert_eq!(info.container_id, Some(cid(&new_id)));
    assert_eq!(names.stats().scans, 1);
    let info = names.resolve(&new, 2);
    assert_eq!(named(&info), (Some("web"), Some("web.v2-0"), Some("nginx")));
    assert_eq!(names.stats().scans, 2);
    // Several unknown IDs in one cycle: still one scan.
    for i in 0..10 {
        names.resolve(&identity(Some(&format!("{i:064x}")), None), 3);
    }
    assert_eq!(names.stats().scans, 3);
    assert_eq!(names.stats().errors, 0);
}

#[test]
fn an_id_that_stays_unknown_stops_causing_rescans() {
    let dir = node();
    let mut names = LogRootNames::new(dir.path());
    let pause = identity(Some(PAUSE_ID), Some(CART_UID));
    for cycle in 0..20 {
        let info = names.resolve(&pause, cycle);
        assert_eq!(
            named(&info),
            (Some("shop"), Some("cart-7d9f8b6c5-x2x4z"), None)
        );
    }
    assert_eq!(names.stats().scans, u64::from(RESCANS_PER_UNKNOWN_ID));
    // Another unknown ID still rescans, and then knows what appeared since.
    let late = "ee".repeat(32);
    link(
        dir.path(),
        "shop",
        "cart-7d9f8b6c5-x2x4z",
        CART_UID,
        "cart",
        &late,
    );
    let info = names.resolve(&identity(Some(&late), None), 20);
    assert_eq!(named(&info).2, Some("cart"));
    assert_eq!(info.pod_uid, Some(uid(CART_UID)));
    assert_eq!(names.stats().scans, u64::from(RESCANS_PER_UNKNOWN_ID) + 1);
}

/// Log lines written while `f` runs.
fn logged(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Buf(StdArc<Mutex<Vec<u8>>>);
    impl io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = buf.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn a_missing_log_root_gives_ids_only_and_one_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("var/log");
    let mut names = LogRootNames::new(&root);
    let log = logged(|| {
        for cycle in 0..50u64 {
            let id = format!("{cycle:064x}");
            let info = names.resolve(&identity(Some(&id), Some(CART_UID)), cycle);
            assert_eq!(info.container_id, Some(cid(&id)));
            assert_eq!(info.pod_uid, Some(uid(CART_UID)));
            assert_eq!(named(&info), (None, None, None));
        }
    });
    assert_eq!(names.stats().scans, 50);
    assert_eq!(names.stats().errors, 50);
    assert_eq!(log.lines().count(), 1, "{log}");
    assert!(
        log.contains("WARN") && log.contains("container names unavailable"),
        "{log}"
    );
    assert!(log.contains(&root.display().to_string()), "{log}");

    // When the directories appear, one line says so and names come back.
    pod_dir(&root, "web", "web.v2-0", WEB_UID, &["nginx"]);
    link(&root, "web", "web.v2-0", WEB_UID, "nginx", CART_ID);
    let log = logged(|| {
        let info = names.resolve(&identity(Some(CART_ID), None), 50);
        assert_eq!(named(&info), (Some("web"), Some("web.v2-0"), Some("nginx")));
    });
    assert_eq!(log.lines().count(), 1, "{log}");
    assert!(log.contains("readable again"), "{log}");
}

#[test]
fn a_failed_rescan_keeps_the_names_already_known() {
    let dir = node();
    let mut names = LogRootNames::new(dir.path());
    assert_eq!(
        named(&names.resolve(&identity(Some(CART_ID), None), 1)).2,
        Some("cart")
    );
    std::fs::remove_dir_all(dir.path().join("containers")).unwrap();
    std::fs::remove_dir_all(dir.path().join("pods")).unwrap();
    names.resolve(&identity(Some(PAUSE_ID), None), 2);
    assert_eq!(
        names.stats(),
        ScanStats {
            scans: 2,
            errors: 1
        }
    );
    assert_eq!(
        named(&names.resolve(&identity(Some(CART_ID), None), 2)).2,
        Some("cart")
    );
}

proptest::proptest! {
    #[test]
    fn arbitrary_entry_names_never_panic(name in "\\PC{0,120}", target in "\\PC{0,120}") {
        let _ = parse_pod_dir(&name);
        let _ = parse_container_link_name(&name);
        let _ = parse_link_target(Path::new(&target));
    }

    #[test]
    fn kubernetes_names_round_trip(
        namespace in "[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?",
        pod in "[a-z0-9]([-.a-z0-9]{0,40}[a-z0-9])?",
        container in "[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?",
    ) {
        let (uid, names) = parse_pod_dir(&format!("{namespace}_{pod}_{CART_UID}")).unwrap();
        proptest::prop_assert_eq!(uid.as_str(), CART_UID);
        proptest::prop_assert_eq!(&*names.namespace, namespace.as_str());
        proptest::prop_assert_eq!(&*names.pod, pod.as_str());

        let link = format!("{pod}_{namespace}_{container}-{CART_ID}.log");
        let (id, names) = parse_container_link_name(&link).unwrap();
        proptest::prop_assert_eq!(id.as_str(), CART_ID);
        proptest::prop_assert_eq!(&*names.namespace, namespace.as_str());
        proptest::prop_assert_eq!(&*names.pod, pod.as_str());
        proptest::prop_assert_eq!(&*names.container, container.as_str());

        let target = format!("/var/log/pods/{namespace}_{pod}_{CART_UID}/{container}/0.log");
        let names = parse_link_target(Path::new(&target)).unwrap();
        proptest::prop_assert_eq!(&*names.container, container.as_str());
        proptest::prop_assert_eq!(names.pod_uid, Some(uid));
    }
}
