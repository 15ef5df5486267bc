//! Container selectors (namespace, pod, container) resolved through a
//! kubelet log root, and container attributes from each layer.

use super::*;

use crate::testkit::SHOP_CART_API;

const POD_UID: &str = SHOP_CART_API.uid;

/// A kubelet log root naming one container: `shop/cart-7d9f/api`.
fn fake_log_root(root: &Path) -> PathBuf {
    let log_root = root.join("log");
    SHOP_CART_API.write(&log_root).unwrap();
    log_root
}

/// A process in the container of [`fake_log_root`] (systemd driver, v2).
fn in_container(comm: &'static str) -> P {
    P {
        cgroups: vec![SHOP_CART_API.systemd_cgroup("besteffort")],
        ..p(comm, &[comm])
    }
}

#[test]
fn namespace_selectors_name_by_container() {
    let dir = tempfile::tempdir().unwrap();
    let log_root = fake_log_root(dir.path());
    let yaml = format!(
        "k8s_log_root: {}\nprocess_names:\n  \
         - name: '{{{{.Namespace}}}}/{{{{.PodName}}}}/{{{{.ContainerName}}}}'\n    \
           namespace: ['^shop$']\n    container: ['^api$', '^web$']\n  \
         - name: 'other:{{{{.Namespace}}}}{{{{.ContainerID}}}}:{{{{.Comm}}}}'\n    cmdline: ['.+']\n",
        log_root.display()
    );
    let c = load_yaml(&yaml).unwrap();
    assert_eq!(c.k8s_log_root, log_root);
    assert_eq!(
        name(&c, &in_container("java")).as_deref(),
        Some("shop/cart-7d9f/api")
    );
    // Outside any container the selectors do not match and the fields are
    // empty.
    let host = p("java", &["java"]);
    assert_eq!(name(&c, &host).as_deref(), Some("other::java"));
    assert_eq!(c.namer.explain(&host.attrs()).rule, Some(1));
    // A container the log root does not know keeps its ID, without names.
    let unknown = P {
        cgroups: vec![format!("/docker/{}", "ab".repeat(32))],
        ..p("nginx", &["nginx"])
    };
    assert_eq!(
        name(&c, &unknown),
        Some(format!("other:{}:nginx", "ab".repeat(32)))
    );
    assert!(c.namer.describe()[0].contains("namespace matches one of [/^shop$/]"));
}

#[test]
fn pod_selector_is_anded_with_comm() {
    let dir = tempfile::tempdir().unwrap();
    let log_root = fake_log_root(dir.path());
    let yaml = format!(
        "k8s_log_root: {}\nprocess_names:\n  - name: '{{{{.PodUID}}}}'\n    comm: [java]\n    pod: ['^cart-']\n",
        log_root.display()
    );
    let c = load_yaml(&yaml).unwrap();
    assert_eq!(name(&c, &in_container("java")).as_deref(), Some(POD_UID));
    assert_eq!(name(&c, &in_container("python")), None);
    let e = c.namer.explain(&p("java", &["java"]).attrs());
    assert!(
        e.detail
            .contains("rule 0: pod: the process has no known pod name"),
        "{}",
        e.detail
    );
    let e = c.namer.explain(&in_container("java").attrs());
    assert_eq!(e.rule, Some(0));
}

#[test]
fn bad_container_selectors_name_the_rule() {
    let e = load_yaml("process_names:\n  - name: shop\n    namespace: ['(shop']\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("process_names[0] (name \"shop\"): namespace[0]: bad regex"),
        "{e}"
    );
    let e = load_yaml("process_names:\n  - name: x\n    comm: [a]\n    container: []\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("process_names[0] (name \"x\"): container"),
        "{e}"
    );
    let e = load_yaml("process_names:\n  - name: '{{.PodNam}}'\n    pod: [a]\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("PodName"), "{e}");
}

#[test]
fn k8s_log_root_from_each_layer() {
    let c = cli_with(|_| {}).unwrap();
    assert_eq!(c.k8s_log_root, Path::new("/var/log"));
    let c = cli_with(|c| c.k8s_log_root = Some("/host/var/log".into())).unwrap();
    assert_eq!(c.k8s_log_root, Path::new("/host/var/log"));
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli {
        procfs: Some(fake_procfs(dir.path())),
        ..Cli::default()
    };
    let env = [(
        "PROCGROUPS_K8S_LOG_ROOT".to_string(),
        "/env/log".to_string(),
    )];
    assert_eq!(
        load_from(&cli, &env).unwrap().k8s_log_root,
        Path::new("/env/log")
    );
}

#[test]
fn container_attributes_from_each_layer_split_the_groups() {
    let c = cli_with(|_| {}).unwrap();
    assert!(!c.container_attributes);
    let c = cli_with(|c| c.container_attributes = Some(true)).unwrap();
    assert!(c.container_attributes);
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli {
        procfs: Some(fake_procfs(dir.path())),
        ..Cli::default()
    };
    let env = [(
        "PROCGROUPS_CONTAINER_ATTRIBUTES".to_string(),
        "on".to_string(),
    )];
    assert!(load_from(&cli, &env).unwrap().container_attributes);

    let logs = tempfile::tempdir().unwrap();
    let c = load_yaml(&format!(
        "container_attributes: yes\nk8s_log_root: {}\nprocess_names:\n  - name: '{{{{.Comm}}}}'\n    comm: [nginx]\n",
        logs.path().display()
    ))
    .unwrap();
    assert!(c.container_attributes);
    assert!(c.to_string().contains("container_attributes: true"), "{c}");
    let id = "4c1fd3e3b4a4e3a1b2f8a6e8d59a0c1f2e3d4c5b6a7980123456789abcdef012";
    let in_container = vec![format!("/system.slice/docker-{id}.scope")];
    let outside = vec!["/user.slice".to_string()];
    let attrs = |cgroups| crate::proc::ProcAttributes {
        name: "nginx",
        cmdline: &[],
        cgroups,
        uid: 0,
        pid: 1,
        start_time: std::time::SystemTime::UNIX_EPOCH,
    };
    let key = c.namer.match_and_name(&attrs(&in_container)).unwrap();
    let (group, container) = crate::containers::split::decode(&key);
    assert_eq!(group, "nginx");
    assert_eq!(container.unwrap().container_id, Some(id));
    assert_eq!(
        c.namer.match_and_name(&attrs(&outside)).as_deref(),
        Some("nginx")
    );

    let e = load_yaml("container_attributes: maybe\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("maybe"), "{e}");
}
