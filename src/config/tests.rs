//! Rule-engine and loading tests: process-exporter's ConfigBasic and
//! ConfigTemplates cases, and the behaviours its bugs got wrong.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::proc::ProcAttributes;

/// A process as the namer sees it.
struct P {
    comm: &'static str,
    argv: Vec<String>,
    cgroups: Vec<String>,
    uid: u32,
    pid: i32,
    start: SystemTime,
}

fn p(comm: &'static str, argv: &[&str]) -> P {
    P {
        comm,
        argv: argv.iter().map(|s| s.to_string()).collect(),
        cgroups: Vec::new(),
        uid: 0,
        pid: 1,
        start: UNIX_EPOCH,
    }
}

impl P {
    fn attrs(&self) -> ProcAttributes<'_> {
        ProcAttributes {
            name: self.comm,
            cmdline: &self.argv,
            cgroups: &self.cgroups,
            uid: self.uid,
            pid: self.pid,
            start_time: self.start,
        }
    }
}

/// A procfs-looking directory (only `stat` is checked at load).
fn fake_procfs(root: &Path) -> PathBuf {
    let procfs = root.join("proc");
    std::fs::create_dir_all(&procfs).unwrap();
    std::fs::write(procfs.join("stat"), "btime 1508450329\n").unwrap();
    procfs
}

/// Loads `yaml` as the config file, with an empty environment.
fn load_yaml(yaml: &str) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    let cli = Cli {
        config: Some(path),
        procfs: Some(fake_procfs(dir.path())),
        ..Cli::default()
    };
    load_from(&cli, &[])
}

fn cli_with(f: impl FnOnce(&mut Cli)) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let mut cli = Cli {
        procfs: Some(fake_procfs(dir.path())),
        ..Cli::default()
    };
    f(&mut cli);
    load_from(&cli, &[])
}

fn name(c: &Config, proc_: &P) -> Option<String> {
    c.namer.match_and_name(&proc_.attrs())
}

fn rule_index(c: &Config, proc_: &P) -> Option<usize> {
    c.namer.explain(&proc_.attrs()).rule
}

#[test]
fn config_basic() {
    let c = load_yaml(
        "process_names:\n  - exe:\n    - bash\n  - exe:\n    - sh\n  - exe:\n    - /bin/ksh\n",
    )
    .unwrap();
    assert_eq!(c.namer.describe().len(), 3);
    let bash = p("bash", &["/bin/bash"]);
    let sh = p("sh", &["sh"]);
    let ksh = p("ksh", &["/bin/ksh"]);
    assert_eq!(rule_index(&c, &bash), Some(0));
    assert_eq!(name(&c, &bash).as_deref(), Some("bash"));
    assert_eq!(rule_index(&c, &sh), Some(1));
    assert_eq!(name(&c, &sh).as_deref(), Some("sh"));
    assert_eq!(rule_index(&c, &ksh), Some(2));
    assert_eq!(name(&c, &ksh).as_deref(), Some("ksh"));
    // The full-path entry is exact: another ksh does not match.
    assert_eq!(name(&c, &p("ksh", &["/usr/bin/ksh"])), None);
}

#[test]
fn config_templates() {
    let c = load_yaml(
        r#"
process_names:
  - exe:
    - postmaster
    cmdline:
    - "-D\\s+.+?(?P<Path>[^/]+)(?:$|\\s)"
    name: "{{.ExeBase}}:{{.Matches.Path}}"
  - exe:
    - prometheus
    name: "{{.ExeFull}}:{{.PID}}"
  - comm:
    - cat
    name: "{{.StartTime}}"
"#,
    )
    .unwrap();
    let pg = p("postmaster", &["/usr/bin/postmaster", "-D", "/data/pg"]);
    assert_eq!(name(&c, &pg).as_deref(), Some("postmaster:pg"));

    let mut prom = p("prometheus", &["/usr/local/bin/prometheus"]);
    prom.pid = 23;
    assert_eq!(
        name(&c, &prom).as_deref(),
        Some("/usr/local/bin/prometheus:23")
    );

    // StartTime: RFC 3339, UTC, fraction without trailing zeros (the
    // reference fixture's start, 2017-10-19 22:52:51.19 UTC).
    let mut cat = p("cat", &["/bin/cat"]);
    cat.start = UNIX_EPOCH + Duration::new(1_508_453_571, 190_000_000);
    assert_eq!(name(&c, &cat).as_deref(), Some("2017-10-19T22:52:51.19Z"));
    // And for "now", the same format as the documented formatter.
    let now = SystemTime::now();
    cat.start = now;
    assert_eq!(name(&c, &cat), Some(Rfc3339(now).to_string()));
    // The two templates that make one group per process are flagged.
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
}

#[test]
fn first_match_wins() {
    let c = load_yaml(
        "process_names:\n  - name: first\n    comm: [bash]\n  - name: second\n    exe: [bash]\n",
    )
    .unwrap();
    let bash = p("bash", &["/bin/bash"]);
    assert_eq!(name(&c, &bash).as_deref(), Some("first"));
    assert_eq!(rule_index(&c, &bash), Some(0));
    // A process only the second matches still gets there.
    let renamed = p("login-bash", &["/bin/bash"]);
    assert_eq!(name(&c, &renamed).as_deref(), Some("second"));
}

#[test]
fn selectors_of_one_item_are_anded() {
    let c = load_yaml(
        "process_names:\n  - name: web\n    comm: [python3]\n    exe: [/usr/bin/python3]\n    cmdline: ['manage\\.py', 'runserver']\n",
    )
    .unwrap();
    let all = p("python3", &["/usr/bin/python3", "manage.py", "runserver"]);
    assert_eq!(name(&c, &all).as_deref(), Some("web"));
    for miss in [
        p(
            "python3.11",
            &["/usr/bin/python3", "manage.py", "runserver"],
        ),
        p("python3", &["/opt/bin/python3", "manage.py", "runserver"]),
        p("python3", &["/usr/bin/python3", "manage.py", "migrate"]),
        p("python3", &["/usr/bin/python3", "app.py", "runserver"]),
    ] {
        assert_eq!(name(&c, &miss), None, "{:?}", miss.argv);
    }
}

#[test]
fn exe_entries_sharing_a_basename_all_apply() {
    // process-exporter keyed exe entries by basename: the later one replaced
    // the earlier, so /usr/bin/python3 was never matched.
    let c = load_yaml(
        "process_names:\n  - name: py\n    exe: [/usr/bin/python3, /opt/bin/python3]\n  - name: bare\n    exe: [node, /usr/local/bin/node]\n",
    )
    .unwrap();
    assert_eq!(
        name(&c, &p("python3", &["/usr/bin/python3"])).as_deref(),
        Some("py")
    );
    assert_eq!(
        name(&c, &p("python3", &["/opt/bin/python3"])).as_deref(),
        Some("py")
    );
    assert_eq!(name(&c, &p("python3", &["/bin/python3"])), None);
    // A bare name matches any path; the full path keeps working beside it.
    assert_eq!(
        name(&c, &p("node", &["/usr/bin/node"])).as_deref(),
        Some("bare")
    );
    assert_eq!(
        name(&c, &p("node", &["/usr/local/bin/node"])).as_deref(),
        Some("bare")
    );
    assert_eq!(name(&c, &p("node", &["node"])).as_deref(), Some("bare"));
    // No command line, no exe match.
    assert_eq!(name(&c, &p("node", &[])), None);
}

#[test]
fn named_captures_from_two_regexes() {
    let c = load_yaml(
        r#"
process_names:
  - name: "{{.Matches.App}}@{{.Matches.Env}}"
    cmdline:
    - '--app[= ](?P<App>\S+)'
    - '--env[= ](?P<Env>\S+)'
"#,
    )
    .unwrap();
    let a = p("java", &["java", "--env=prod", "--app", "billing"]);
    assert_eq!(name(&c, &a).as_deref(), Some("billing@prod"));
    // Captures belong to the call: a second process gets its own values,
    // and nothing of the first leaks into it.
    let b = p("java", &["java", "--app=search", "--env", "dev"]);
    assert_eq!(name(&c, &b).as_deref(), Some("search@dev"));
    assert_eq!(name(&c, &a).as_deref(), Some("billing@prod"));
    // Both regexes must match.
    assert_eq!(name(&c, &p("java", &["java", "--app=x"])), None);
}

#[test]
fn captures_are_per_call_across_threads() {
    let c = load_yaml(
        "process_names:\n  - name: \"{{.Matches.N}}\"\n    cmdline: ['-n (?P<N>\\d+)']\n",
    )
    .unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let c = &c;
            s.spawn(move || {
                for i in 0..200 {
                    let n = (t * 1000 + i).to_string();
                    let proc_ = p("w", &["w", "-n", &n]);
                    assert_eq!(name(c, &proc_), Some(n));
                }
            });
        }
    });
}

#[test]
fn later_regex_overwrites_an_equal_capture_name() {
    let c = load_yaml(
        "process_names:\n  - name: \"{{.Matches.X}}\"\n    cmdline: ['a=(?P<X>\\w+)', 'b=(?P<X>\\w+)|(?P<Y>zzz)']\n",
    )
    .unwrap();
    assert_eq!(
        name(&c, &p("t", &["t", "a=1", "b=2"])).as_deref(),
        Some("2")
    );
    // The later group did not take part: empty, as in process-exporter.
    assert_eq!(name(&c, &p("t", &["t", "a=1", "zzz"])).as_deref(), Some(""));
}

#[test]
fn procnames_flag() {
    let c = cli_with(|c| c.procnames = Some("bash,,sshd".into())).unwrap();
    assert_eq!(name(&c, &p("bash", &["-bash"])).as_deref(), Some("bash"));
    assert_eq!(name(&c, &p("sshd", &[])).as_deref(), Some("sshd"));
    assert_eq!(name(&c, &p("zsh", &["zsh"])), None);
    assert_eq!(c.namer.describe().len(), 2);
}

#[test]
fn namemapping_flag() {
    let c = cli_with(|c| {
        c.procnames = Some("bash".into());
        c.namemapping = Some(r"python2,([^/]+)\.py,java,-jar\s+([^/]+).jar".into());
    })
    .unwrap();
    let py = p("python2", &["python2", "/srv/tool.py", "-v"]);
    assert_eq!(name(&c, &py).as_deref(), Some("python2:tool"));
    let java = p("java", &["java", "-jar", "app.jar"]);
    assert_eq!(name(&c, &java).as_deref(), Some("java:app"));
    // A mapped comm whose regex does not capture is not tracked.
    assert_eq!(name(&c, &p("java", &["java", "-version"])), None);
    // Procnames still work beside the mappings.
    assert_eq!(name(&c, &p("bash", &["bash"])).as_deref(), Some("bash"));
    assert_eq!(name(&c, &p("perl", &["perl"])), None);
}

#[test]
fn namemapping_without_procnames_is_active() {
    let c = cli_with(|c| c.namemapping = Some("upstart,(--user)".into())).unwrap();
    assert_eq!(
        name(&c, &p("upstart", &["/sbin/upstart", "--user"])).as_deref(),
        Some("upstart:--user")
    );
    assert_eq!(name(&c, &p("upstart", &["/sbin/upstart"])), None);
}

#[test]
fn procnames_may_list_mapped_group_names() {
    // process-exporter's README lists the mapped name among the procnames.
    let c = cli_with(|c| {
        c.namemapping = Some("upstart,(--user)".into());
        c.procnames = Some("bash,upstart:--user-session-long".into());
    })
    .unwrap();
    assert_eq!(name(&c, &p("bash", &["bash"])).as_deref(), Some("bash"));
}

#[test]
fn no_rule_default_groups_every_process_with_a_cmdline_by_comm() {
    let c = cli_with(|_| {}).unwrap();
    assert_eq!(
        name(&c, &p("bash", &["/bin/bash", "-l"])).as_deref(),
        Some("bash")
    );
    // comm, not argv[0]: a process that rewrote its argv keeps its comm.
    assert_eq!(
        name(&c, &p("postgres", &["postgres: writer process"])).as_deref(),
        Some("postgres")
    );
    // Kernel threads and zombies have no command line.
    assert_eq!(name(&c, &p("kworker/0:1", &[])), None);
}

#[test]
fn default_name_is_exebase() {
    let c =
        load_yaml("process_names:\n  - comm: [node]\n  - name: ''\n    comm: [deno]\n").unwrap();
    assert_eq!(
        name(&c, &p("node", &["/usr/local/bin/node", "x.js"])).as_deref(),
        Some("node")
    );
    assert_eq!(
        name(&c, &p("deno", &["/opt/deno"])).as_deref(),
        Some("deno")
    );
    // With no command line ExeBase falls back to comm.
    assert_eq!(name(&c, &p("node", &[])).as_deref(), Some("node"));
}

#[test]
fn username_comes_from_the_procfs_hosts_passwd() {
    let dir = tempfile::tempdir().unwrap();
    let procfs = fake_procfs(dir.path());
    std::fs::create_dir(dir.path().join("etc")).unwrap();
    std::fs::write(
        dir.path().join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\nhostonly:x:4321:4321::/:/bin/sh\n",
    )
    .unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        "process_names:\n  - name: '{{.Comm}}-{{.Username}}'\n    cmdline: ['.+']\n",
    )
    .unwrap();
    let cli = Cli {
        config: Some(path),
        procfs: Some(procfs),
        ..Cli::default()
    };
    let c = load_from(&cli, &[]).unwrap();
    let mut x = p("x", &["x"]);
    x.uid = 4321;
    assert_eq!(name(&c, &x).as_deref(), Some("x-hostonly"));
    x.uid = 999;
    assert_eq!(name(&c, &x).as_deref(), Some("x-999"));
}

#[test]
fn cgroups_are_joined_with_commas() {
    let c = load_yaml("process_names:\n  - name: '{{.Cgroups}}'\n    comm: [x]\n").unwrap();
    let mut x = p("x", &["x"]);
    x.cgroups = vec!["/system.slice/a.service".into(), "/user.slice".into()];
    assert_eq!(
        name(&c, &x).as_deref(),
        Some("/system.slice/a.service,/user.slice")
    );
    x.cgroups.clear();
    assert_eq!(name(&c, &x).as_deref(), Some(""));
}

#[test]
fn empty_process_names_tracks_nothing_and_warns() {
    let c = load_yaml("process_names: []\n").unwrap();
    assert_eq!(name(&c, &p("bash", &["bash"])), None);
    assert!(c.warnings.iter().any(|w| w.contains("no process")));
}

#[test]
fn rule_errors_name_the_rule_and_field() {
    let e = load_yaml("process_names:\n  - comm: [a]\n  - name: db\n    cmdline: ['ok', '(x']\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("config.yaml: process_names[1] (name \"db\"): cmdline[1]: bad regex"),
        "{e}"
    );

    let e = load_yaml("process_names:\n  - name: x\n    comm: [chromium-browser]\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("process_names[0] (name \"x\"): comm[0]:"), "{e}");
    assert!(e.contains("can never match"), "{e}");

    let e = load_yaml("process_names:\n  - name: lonely\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("process_names[0] (name \"lonely\"): no selector"),
        "{e}"
    );

    let e = load_yaml("process_names:\n  - name: '{{.Matches.P}}'\n    comm: [a]\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("process_names[0] (name \"{{.Matches.P}}\"): name:"),
        "{e}"
    );
}

#[test]
fn recheck_time_limit_implies_recheck() {
    let c = cli_with(|c| c.recheck_with_time_limit = Some("30s".into())).unwrap();
    assert!(c.recheck);
    assert_eq!(c.recheck_time_limit, Duration::from_secs(30));
    let c = cli_with(|_| {}).unwrap();
    assert!(!c.recheck);
}

#[test]
fn interval_must_be_positive() {
    for bad in ["0s", "0", "-1s", "15", "soon"] {
        let e = cli_with(|c| c.interval = Some(bad.into()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("flag --interval: interval:"), "{bad}: {e}");
    }
    let c = cli_with(|c| c.interval = Some("1m30s".into())).unwrap();
    assert_eq!(c.interval, Duration::from_secs(90));
}

#[test]
fn once_delay_defaults_to_one_second() {
    let c = cli_with(|c| c.once = true).unwrap();
    assert_eq!(c.once, Some(DEFAULT_ONCE_DELAY));
    let c = cli_with(|c| {
        c.once = true;
        c.once_delay = Some("250ms".into());
    })
    .unwrap();
    assert_eq!(c.once, Some(Duration::from_millis(250)));
    assert_eq!(cli_with(|_| {}).unwrap().once, None);
}

#[test]
fn procfs_without_stat_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli {
        procfs: Some(dir.path().to_path_buf()),
        ..Cli::default()
    };
    let e = load_from(&cli, &[]).unwrap_err().to_string();
    assert!(
        e.contains(&dir.path().join("stat").display().to_string()),
        "{e}"
    );
    assert!(e.starts_with("flag --procfs: procfs:"), "{e}");
}

#[test]
fn kubernetes_service_links_are_not_settings() {
    let env = vec![
        (
            "PROCGROUPS_SERVICE_HOST".to_string(),
            "10.0.0.1".to_string(),
        ),
        (
            "PROCGROUPS_PORT".to_string(),
            "tcp://10.0.0.1:80".to_string(),
        ),
        (
            "PROCGROUPS_PORT_80_TCP_ADDR".to_string(),
            "10.0.0.1".to_string(),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli {
        procfs: Some(fake_procfs(dir.path())),
        ..Cli::default()
    };
    assert!(load_from(&cli, &env).is_ok());
    let env = vec![("PROCGROUPS_INTERVALL".to_string(), "5s".to_string())];
    let e = load_from(&cli, &env).unwrap_err().to_string();
    assert!(e.contains("PROCGROUPS_INTERVALL"), "{e}");
}

#[test]
fn otlp_endpoints_must_be_http_urls_with_a_host() {
    let env = |var: &str, v: &str| vec![(var.to_string(), v.to_string())];
    for good in [
        "http://localhost:4317",
        "https://collector.example:4317",
        "http://127.0.0.1:4317/",
        "http://[::1]:4317",
        "HTTP://LOCALHOST:4317",
        " http://localhost:4317 ",
        "",
        // Completed by the exporter with https:// (or http:// when
        // OTEL_EXPORTER_OTLP_INSECURE is true).
        "localhost:4317",
    ] {
        for var in super::OTLP_ENDPOINT_VARS {
            super::check_otlp_endpoints(&env(var, good)).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
    }
    for (bad, why) in [
        ("localhost:99999", "port `99999`"),
        ("exa mple:4317", "not a URL"),
        ("ftp://localhost:4317", "scheme `ftp`"),
        ("grpc://localhost:4317", "scheme `grpc`"),
        ("http://", "not a URL"),
        ("http://exa mple:4317", "not a URL"),
        ("http://localhost:99999", "port `99999`"),
        ("http://localhost:", "port ``"),
        ("http://[::1]:70000", "port `70000`"),
        ("http://localhost:0", "port 0"),
        ("/v1/metrics", "not a URL"),
        (":4317", "no host"),
        // Would become https://collector.example:443.
        ("collector.example", "neither a scheme nor a port"),
        ("localhost", "`http://localhost:4317`"),
    ] {
        for var in super::OTLP_ENDPOINT_VARS {
            let e = super::check_otlp_endpoints(&env(var, bad))
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"))
                .to_string();
            assert!(
                e.starts_with(&format!("environment variable {var}: ")),
                "{e}"
            );
            assert!(e.contains(why), "{bad}: {e}");
            assert!(e.contains(bad.trim()), "{e}");
        }
    }
}

const CONTAINER_ID: &str = "9f2c4e1a7b3d5f6e8a0c2b4d6f8e0a1c3b5d7f9e1a2c4b6d8f0e1a3c5b7d9f0e";
const POD_UID: &str = "5c3e9a1b-2d4f-4a6b-8c0d-1e2f3a4b5c6d";

/// A kubelet log root naming one container: `shop/cart-7d9f/api`.
fn fake_log_root(root: &Path) -> PathBuf {
    let log_root = root.join("log");
    let pod_dir = log_root.join(format!("pods/shop_cart-7d9f_{POD_UID}/api"));
    std::fs::create_dir_all(&pod_dir).unwrap();
    std::fs::write(pod_dir.join("0.log"), "").unwrap();
    std::fs::create_dir_all(log_root.join("containers")).unwrap();
    std::os::unix::fs::symlink(
        pod_dir.join("0.log"),
        log_root.join(format!("containers/cart-7d9f_shop_api-{CONTAINER_ID}.log")),
    )
    .unwrap();
    log_root
}

/// A process in the container of [`fake_log_root`] (systemd driver, v2).
fn in_container(comm: &'static str) -> P {
    P {
        cgroups: vec![format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/cri-containerd-{CONTAINER_ID}.scope",
            POD_UID.replace('-', "_")
        )],
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
