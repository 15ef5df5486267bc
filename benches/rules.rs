//! The rule engine: 10,000 new processes named against a 20-rule
//! configuration (comm lists, exe entries, cmdline regexes with captures,
//! templates), most of them falling through to the last, catch-all rule as
//! on a busy host. This is the cost of naming a fleet of new processes, paid
//! once per process (the tracker remembers the decision).
//!
//! In test mode (`cargo test --all-targets`) 200 processes are named once.

#![allow(clippy::unwrap_used)] // benchmark setup: a failure is a broken bench

mod support;

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, Throughput};
use procgroups::cli::Cli;
use procgroups::proc::ProcAttributes;

/// Twenty rules in the shapes process-exporter configurations use.
const RULES: &str = r#"
process_names:
  - comm: [nginx]
  - comm: [haproxy, envoy, traefik]
    name: "proxy-{{.Comm}}"
  - exe: [postgres, /usr/lib/postgresql/16/bin/postgres]
    cmdline: ['-D\s+\S*?(?P<cluster>[^/\s]+)(?:\s|$)']
    name: "postgres:{{.Matches.cluster}}"
  - exe: [redis-server]
  - exe: [/usr/bin/memcached]
  - comm: [java]
    cmdline: ['-jar\s+(?:\S*/)?(?P<app>[^/\s]+)\.jar']
    name: "java:{{.Matches.app}}"
  - comm: [java]
    cmdline: ['(?P<main>org\.[a-z]+\.[A-Za-z.]+)']
    name: "java:{{.Matches.main}}"
  - comm: [python3, python]
    cmdline: ['(?:^|\s)(?:-m\s+)?(?P<mod>celery|gunicorn|uvicorn)(?:\s|$)']
    name: "py:{{.Matches.mod}}"
  - exe: [node]
    cmdline: ['(?P<script>[\w-]+)\.js']
    name: "node:{{.Matches.script}}"
  - comm: [sshd]
    name: "{{.Comm}}:{{.Username}}"
  - cmdline: ['^/usr/sbin/(?P<daemon>cron|atd|rsyslogd)']
    name: "{{.Matches.daemon}}"
  - comm: [containerd, dockerd, containerd-shim]
    name: "containers"
  - exe: [kubelet, kube-proxy]
    name: "k8s:{{.ExeBase}}"
  - cmdline: ['etcd\s+--name\s+(?P<member>\S+)']
    name: "etcd:{{.Matches.member}}"
  - comm: [mysqld, mariadbd]
    name: "mysql"
  - exe: [php-fpm8.2, php-fpm]
    cmdline: ['pool\s+(?P<pool>\w+)']
    name: "php:{{.Matches.pool}}"
  - cmdline: ['/opt/(?P<vendor>[a-z]+)/bin/']
    name: "opt:{{.Matches.vendor}}"
  - comm: [grafana, prometheus, alertmanager]
    name: "monitoring"
  - cmdline: ['--cgroup-parent=(?P<parent>\S+)']
    name: "cg:{{.Matches.parent}}"
  - name: "{{.Comm}}"
    cmdline: ['.+']
"#;

/// One synthetic process: (comm, argv, cgroups, uid).
type Attrs = (String, Vec<String>, Vec<String>, u32);

fn processes(n: usize) -> Vec<Attrs> {
    let shapes: [(&str, &[&str]); 16] = [
        ("nginx", &["nginx: worker process"]),
        (
            "postgres",
            &[
                "/usr/lib/postgresql/16/bin/postgres",
                "-D",
                "/var/lib/postgresql/16/main",
            ],
        ),
        (
            "java",
            &[
                "/usr/bin/java",
                "-Xmx2g",
                "-jar",
                "/srv/app/billing-service.jar",
            ],
        ),
        (
            "java",
            &[
                "/usr/bin/java",
                "-cp",
                "/srv/lib/*",
                "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            ],
        ),
        (
            "python3",
            &["/usr/bin/python3", "-m", "celery", "worker", "-A", "tasks"],
        ),
        (
            "python3",
            &["/usr/bin/python3", "/srv/scripts/report.py", "--daily"],
        ),
        ("node", &["node", "/srv/web/server.js", "--port", "3000"]),
        ("sshd", &["sshd: alice [priv]"]),
        ("bash", &["-bash"]),
        ("kworker/0:1", &[]),
        (
            "containerd-shim",
            &[
                "/usr/bin/containerd-shim-runc-v2",
                "-namespace",
                "k8s.io",
                "-id",
                "0123456789abcdef",
            ],
        ),
        ("php-fpm8.2", &["php-fpm: pool www"]),
        (
            "vector",
            &[
                "/opt/vector/bin/vector",
                "--config",
                "/etc/vector/vector.yaml",
            ],
        ),
        ("sleep", &["sleep", "3600"]),
        ("systemd-journal", &["/lib/systemd/systemd-journald"]),
        ("rg", &["rg", "--files", "/home/alice/src"]),
    ];
    (0..n)
        .map(|i| {
            let (comm, argv) = shapes[i % shapes.len()];
            let mut argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
            if !argv.is_empty() {
                argv.push(format!("--instance={i}"));
            }
            let cgroups = vec![format!("/system.slice/{comm}.service")];
            (comm.to_string(), argv, cgroups, 1000 + (i % 3) as u32)
        })
        .collect()
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(support::size(30, 10))
        .configure_from_args();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.yaml");
    std::fs::write(&path, RULES).unwrap();
    let cli = Cli {
        config: Some(path),
        ..Cli::default()
    };
    let config = procgroups::config::load_from(&cli, &[]).unwrap();
    assert_eq!(config.namer.describe().len(), 20);

    let n = support::size(10_000, 200);
    let procs = processes(n);
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);

    let mut group = c.benchmark_group("rules");
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function(format!("20-rules/{n}-procs"), |b| {
        b.iter(|| {
            let mut tracked = 0usize;
            for (pid, (comm, argv, cgroups, uid)) in procs.iter().enumerate() {
                let attrs = ProcAttributes {
                    name: comm,
                    cmdline: argv,
                    cgroups,
                    uid: *uid,
                    pid: pid as i32 + 1,
                    start_time: start,
                };
                if let Some(group) = config.namer.match_and_name(&attrs) {
                    tracked += 1;
                    black_box(group);
                }
            }
            tracked
        })
    });
    group.finish();
    c.final_summary();
}
