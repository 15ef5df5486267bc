//! The status server over a real Unix socket, with a provider whose state the
//! tests set, asked by the real `procgroups status|explain|health` binary.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crate::support::procs::status_client;
use procgroups::exits::ListenerStats;
use procgroups::proc::{CollectErrors, Counts, Group, GroupByName, Memory, States, Threads};
use procgroups::snapshot::{AccountingMode, ExitMode};
use procgroups::status::{
    CycleInfo, Decision, ExitAccountingState, ExportState, HealthPolicy, PidExplanation,
    ProcessFacts, SocketError, StatusProvider, StatusSocket,
};
use serde_json::Value;

const INTERVAL: Duration = Duration::from_secs(10);

#[derive(Default)]
struct State {
    groups: GroupByName,
    cycle: Option<CycleInfo>,
    export: Option<ExportState>,
    accounting: ExitAccountingState,
    explanations: BTreeMap<i32, PidExplanation>,
}

#[derive(Default)]
struct FakeProvider(Mutex<State>);

impl FakeProvider {
    fn set(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.0.lock().unwrap());
    }
}

impl StatusProvider for FakeProvider {
    fn last_cycle_groups(&self) -> (Option<CycleInfo>, GroupByName) {
        let state = self.0.lock().unwrap();
        (state.cycle.clone(), state.groups.clone())
    }
    fn last_cycle(&self) -> Option<CycleInfo> {
        self.0.lock().unwrap().cycle.clone()
    }
    fn last_export(&self) -> ExportState {
        self.0
            .lock()
            .unwrap()
            .export
            .clone()
            .unwrap_or_else(ExportState::disabled)
    }
    fn exit_accounting(&self) -> ExitAccountingState {
        self.0.lock().unwrap().accounting.clone()
    }
    fn explain(&self, pid: i32) -> PidExplanation {
        self.0
            .lock()
            .unwrap()
            .explanations
            .get(&pid)
            .cloned()
            .unwrap_or_else(|| PidExplanation::not_found(pid))
    }
}

/// A status server on its own runtime thread, stopped on drop.
struct TestServer {
    path: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    fn start(provider: Arc<FakeProvider>) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.sock");
        let socket = StatusSocket::bind(&path).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let policy = HealthPolicy {
            interval: INTERVAL,
            export_intervals: 3,
            start_time: SystemTime::now(),
        };
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(procgroups::status::serve(socket, provider, policy, async {
                let _ = stopped.await;
            }))
            .unwrap();
        });
        TestServer {
            path,
            stop: Some(stop),
            thread: Some(thread),
            _dir: dir,
        }
    }

    fn client(&self, args: &[&str]) -> Output {
        status_client(&self.path, args)
    }

    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ago(d: Duration) -> SystemTime {
    SystemTime::now() - d
}

fn web_group() -> Group {
    Group {
        counts: Counts {
            cpu_user_time: 1.5,
            cpu_system_time: 0.25,
            read_bytes: 4096,
            ctx_switch_voluntary: 12,
            ..Counts::default()
        },
        states: States {
            sleeping: 6,
            running: 1,
            ..States::default()
        },
        wchans: BTreeMap::from([("do_epoll_wait".to_string(), 6)]),
        procs: 3,
        memory: Memory {
            resident_bytes: 3 * 1024 * 1024,
            virtual_bytes: 300 * 1024 * 1024,
            ..Memory::default()
        },
        oldest_start_time: Some(ago(Duration::from_secs(3600))),
        io_known: true,
        open_fds: 30,
        worst_fd_ratio: 0.01,
        num_threads: 7,
        threads: vec![Threads {
            name: "worker".into(),
            num_threads: 4,
            counts: Counts {
                cpu_user_time: 1.0,
                ..Counts::default()
            },
        }],
    }
}

fn healthy_provider() -> Arc<FakeProvider> {
    let p = Arc::new(FakeProvider::default());
    p.set(|s| {
        s.groups.insert("web".into(), web_group());
        s.groups.insert("idle".into(), Group::default());
        s.cycle = Some(CycleInfo {
            end_time: ago(Duration::from_secs(1)),
            duration: Duration::from_millis(12),
            count: 42,
            errors: CollectErrors {
                read: 1,
                partial: 9,
            },
            tracked_processes: 3,
            node_cpu: Some(procgroups::snapshot::NodeCpu {
                node_seconds_total: 40.0,
                attributed_seconds_total: 30.0,
                unattributed_seconds_total: 10.0,
                overshoot_cycles: 1,
            }),
        });
        let mut e = ExportState::enabled(INTERVAL);
        e.record(ago(Duration::from_secs(2)), Ok(()));
        s.export = Some(e);
    });
    p
}

#[test]
fn status_shows_the_exit_accounting_mode_with_its_counters_or_its_reason() {
    let p = healthy_provider();
    p.set(|s| {
        s.accounting = ExitAccountingState {
            mode: AccountingMode {
                mode: ExitMode::Taskstats,
                reason: None,
            },
            listener: Some(ListenerStats {
                records: 1234,
                overflows: 3,
                outages: 1,
                malformed: 2,
            }),
        };
    });
    let server = TestServer::start(p.clone());
    let out = server.client(&["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out)
            .contains("\nexits:   taskstats (records 1234, overflows 3, outages 1, malformed 2)\n"),
        "{}",
        stdout(&out)
    );
    let out = server.client(&["status", "--output", "json"]);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        v["exit_accounting"],
        serde_json::json!({
            "mode": "taskstats",
            "reason": null,
            "listener": {"records": 1234, "overflows": 3, "outages": 1, "malformed": 2},
        })
    );

    let reason = "opening the taskstats socket: Operation not permitted";
    p.set(|s| {
        s.accounting = ExitAccountingState {
            mode: AccountingMode {
                mode: ExitMode::Children,
                reason: Some(reason.into()),
            },
            listener: None,
        };
    });
    let out = server.client(&["status"]);
    assert!(
        stdout(&out).contains(&format!(
            "\nexits:   children (reaped-children totals); taskstats not used: {reason}\n"
        )),
        "{}",
        stdout(&out)
    );
    let out = server.client(&["status", "--output", "json"]);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["exit_accounting"]["mode"], "children");
    assert_eq!(v["exit_accounting"]["reason"], reason);
    assert!(v["exit_accounting"]["listener"].is_null(), "{v}");
}

#[test]
fn status_json_shows_groups_errors_cycle_and_export() {
    let server = TestServer::start(healthy_provider());
    let out = server.client(&["status", "--output", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let web = &v["groups"]["web"];
    assert_eq!(web["procs"], 3);
    assert_eq!(web["threads"], 7);
    assert_eq!(web["cpu_user_seconds"], 1.5);
    assert_eq!(web["read_bytes"], 4096);
    assert_eq!(web["resident_bytes"], 3 * 1024 * 1024);
    assert_eq!(web["states"]["sleeping"], 6);
    assert_eq!(web["wchans"]["do_epoll_wait"], 6);
    assert_eq!(web["thread_names"]["worker"]["threads"], 4);
    assert!(web["oldest_start_time_seconds"].as_f64().unwrap() > 0.0);
    assert!(v["groups"]["idle"]["oldest_start_time_seconds"].is_null());
    assert_eq!(v["errors"]["read"], 1);
    assert_eq!(v["errors"]["partial"], 9);
    assert_eq!(v["cycle"]["count"], 42);
    assert_eq!(v["cycle"]["duration_seconds"], 0.012);
    assert_eq!(
        v["coverage"],
        serde_json::json!({
            "node_cpu_seconds": 40.0,
            "attributed_cpu_seconds": 30.0,
            "unattributed_cpu_seconds": 10.0,
            "ratio": 0.75,
        })
    );
    assert_eq!(v["export"]["enabled"], true);
    assert_eq!(v["export"]["last_attempt_ok"], true);
    assert!(v["export"]["last_error"].is_null());
    assert_eq!(v["health"]["serving"], true);
    assert_eq!(v["agent"]["interval_seconds"], 10.0);
    assert_eq!(v["agent"]["version"], env!("CARGO_PKG_VERSION"));
}

/// At the default caps (1,000 groups, 100 thread names each) a snapshot is
/// about 8 MB on the wire, more than gRPC's usual 4 MiB limit.
#[test]
fn status_answers_a_snapshot_at_the_default_caps() {
    let provider = healthy_provider();
    provider.set(|s| {
        for g in 0..1000 {
            let threads = (0..100)
                .map(|t| Threads {
                    // As long as a comm gets, every counter busy.
                    name: format!("worker-pool-{t:03}"),
                    num_threads: 1,
                    counts: Counts {
                        cpu_user_time: 1.25,
                        cpu_system_time: 0.75,
                        read_bytes: 1 << 40,
                        write_bytes: 1 << 40,
                        major_page_faults: 1 << 30,
                        minor_page_faults: 1 << 30,
                        ctx_switch_voluntary: 1 << 30,
                        ctx_switch_nonvoluntary: 1 << 30,
                    },
                })
                .collect();
            let group = Group {
                procs: 1,
                threads,
                ..web_group()
            };
            s.groups.insert(format!("group-{g:04}"), group);
        }
    });
    let server = TestServer::start(provider);
    let out = server.client(&["status", "--output", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["groups"].as_object().unwrap().len(), 1002);
    let last = &v["groups"]["group-0999"]["thread_names"];
    assert_eq!(last.as_object().unwrap().len(), 100);
    assert_eq!(last["worker-pool-099"]["read_bytes"], 1u64 << 40);
}

#[test]
fn status_table_lists_each_group_with_its_process_count() {
    let server = TestServer::start(healthy_provider());
    let out = server.client(&["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("health:  SERVING"), "{text}");
    assert!(text.contains("#42"), "{text}");
    assert!(
        text.contains("coverage: 75.0 % of the node's CPU (10.00 s of 40.00 s unattributed)"),
        "{text}"
    );
    let header = text.lines().find(|l| l.starts_with("GROUP")).unwrap();
    assert!(header.split_whitespace().nth(1) == Some("PROCS"), "{text}");
    let web = text.lines().find(|l| l.starts_with("web ")).unwrap();
    let cells: Vec<&str> = web.split_whitespace().collect();
    assert_eq!(cells[1], "3", "{web}");
    assert_eq!(cells[2], "7", "{web}");
    let idle = text.lines().find(|l| l.starts_with("idle ")).unwrap();
    assert!(
        idle.ends_with('-'),
        "an empty group has no oldest start: {idle}"
    );
}

#[test]
fn explain_names_the_rule_or_says_why_not() {
    let provider = healthy_provider();
    provider.set(|s| {
        s.explanations.insert(
            4242,
            PidExplanation {
                pid: 4242,
                process: Some(ProcessFacts {
                    name: "nginx".into(),
                    cmdline: vec!["nginx".into(), "-g".into(), "daemon off;".into()],
                    uid: 33,
                }),
                group: Some("web".into()),
                decision: Decision::Matched,
                rule: Some("rule 1: name web, comm [nginx]".into()),
                reason: "comm nginx is listed".into(),
                ancestor_pid: None,
            },
        );
    });
    let server = TestServer::start(provider);

    let out = server.client(&["explain", "4242"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("group:     web"), "{text}");
    assert!(
        text.contains("rule:      rule 1: name web, comm [nginx]"),
        "{text}"
    );
    assert!(text.contains("cmdline:   nginx -g daemon off;"), "{text}");

    let out = server.client(&["explain", "4242", "--output", "json"]);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["decision"], "matched");
    assert_eq!(v["group"], "web");
    assert_eq!(v["uid"], 33);
    assert!(v["ancestor_pid"].is_null());

    let out = server.client(&["explain", "777"]);
    assert_eq!(out.status.code(), Some(1), "a missing process is a failure");
    assert!(
        stdout(&out).contains("no process with pid 777"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn explain_rejects_a_pid_that_is_not_positive() {
    let server = TestServer::start(healthy_provider());
    let out = server.client(&["explain", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn health_follows_exports_and_recovers() {
    let provider = healthy_provider();
    let server = TestServer::start(Arc::clone(&provider));

    let out = server.client(&["health"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(stdout(&out).trim(), "SERVING");

    // The collector has been down for longer than 3 export intervals.
    provider.set(|s| {
        let mut e = ExportState::enabled(INTERVAL);
        e.record(ago(INTERVAL * 4), Ok(()));
        e.record(
            ago(Duration::from_secs(1)),
            Err("connection refused".into()),
        );
        s.export = Some(e);
    });
    let out = server.client(&["health"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("NOT_SERVING: no successful export for"),
        "{text}"
    );
    assert!(text.contains("connection refused"), "{text}");

    let out = server.client(&["status", "--output", "json"]);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["health"]["serving"], false);
    assert_eq!(v["export"]["last_attempt_ok"], false);
    assert_eq!(v["export"]["last_error"], "connection refused");
    assert_eq!(v["export"]["failures_total"], 1);

    // It is back.
    provider.set(|s| {
        if let Some(e) = s.export.as_mut() {
            e.record(SystemTime::now(), Ok(()));
        }
    });
    let out = server.client(&["health"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn health_fails_when_cycles_stop() {
    let provider = healthy_provider();
    provider.set(|s| {
        if let Some(c) = s.cycle.as_mut() {
            c.end_time = ago(INTERVAL * 3);
        }
    });
    let server = TestServer::start(provider);
    let out = server.client(&["health"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("no cycle completed for"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn the_socket_is_owner_only_single_and_removed_at_shutdown() {
    let mut server = TestServer::start(healthy_provider());
    let meta = std::fs::symlink_metadata(&server.path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.mode() & 0o777, 0o600);

    let err = StatusSocket::bind(&server.path).unwrap_err();
    assert!(matches!(err, SocketError::InUse { .. }), "{err}");
    assert!(err.is_usage());

    server.stop();
    assert!(!server.path.exists(), "removed at shutdown");
    // The next agent on the same path starts normally.
    StatusSocket::bind(&server.path).unwrap();
}

#[test]
fn clients_report_an_unreachable_agent() {
    let dir = tempfile::tempdir().unwrap();
    let missing: &Path = &dir.path().join("nothing.sock");
    for args in [&["status"][..], &["health"], &["explain", "1"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_procgroups"))
            .args(args)
            .arg("--socket")
            .arg(missing)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains("cannot reach the agent at"), "{err}");
        assert!(err.contains(&missing.display().to_string()), "{err}");
    }
}

#[test]
fn the_socket_can_come_from_the_environment() {
    let server = TestServer::start(healthy_provider());
    let out = Command::new(env!("CARGO_BIN_EXE_procgroups"))
        .arg("health")
        .env("PROCGROUPS_STATUS_SOCKET", &server.path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn health_watchers_see_the_verdict_change() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let provider = healthy_provider();
    let server = TestServer::start(Arc::clone(&provider));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let channel = procgroups::status::client::connect(&server.path)
            .await
            .unwrap();
        let mut health = HealthClient::new(channel);
        let check = |service: &str| HealthCheckRequest {
            service: service.to_string(),
        };

        // Our service is registered under its own name too; others are not.
        let ours = procgroups::status::server::STATUS_SERVICE_NAME;
        assert_eq!(ours, "procgroups.v1.Status");
        let r = health.check(check(ours)).await.unwrap().into_inner();
        assert_eq!(r.status(), ServingStatus::Serving);
        let err = health.check(check("other.Service")).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);

        let mut watch = health.watch(check("")).await.unwrap().into_inner();
        let first = watch.message().await.unwrap().unwrap();
        assert_eq!(first.status(), ServingStatus::Serving);

        // Exports stop getting through; no client asks, the watcher is told.
        provider.set(|s| {
            let mut e = ExportState::enabled(INTERVAL);
            e.record(ago(INTERVAL * 5), Ok(()));
            s.export = Some(e);
        });
        let next = tokio::time::timeout(Duration::from_secs(20), watch.message())
            .await
            .expect("no health update within 20s")
            .unwrap()
            .unwrap();
        assert_eq!(next.status(), ServingStatus::NotServing);
    });
}
