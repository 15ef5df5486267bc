//! Matching and naming: process-exporter's ConfigBasic and
//! ConfigTemplates cases, first match, selectors, captures, the
//! `--procnames` and `--namemapping` flags and the default rules.

use super::*;

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
