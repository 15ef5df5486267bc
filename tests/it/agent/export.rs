//! The agent binary against the in-process OTLP receiver, with a live
//! workload of known shape: every metric of the table arrives with its
//! name, unit, kind, temporality, attributes and value (exact process,
//! thread and fd counts; CPU and page faults > 0 for a busy process), and
//! the resource describes the agent and the host.
//!
//! One agent run over one workload serves the tests of the table: it is
//! captured once (the export, and the kernel's own figures for the
//! workload at that moment), the processes are stopped, and each test
//! reads the capture alone.

use std::collections::BTreeSet;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::otlp::{Kind, Point, select, value};
use crate::support::procs::{
    Agent, Workload, agent_command, stat_fields, ticks_to_seconds, unique_name,
};
use crate::support::receiver::Receiver;
use opentelemetry_proto::tonic::metrics::v1::AggregationTemporality;
use procgroups::telemetry::catalogue as cat;

const WAIT: Duration = Duration::from_secs(20);
/// The comm of the workload's three worker threads.
const THREAD_NAME: &str = "pgexworker";
/// What the workload touches, page by page, on its main thread.
const TOUCHED_BYTES: f64 = 8.0 * 1024.0 * 1024.0;
/// 8 MiB in 4 KiB pages.
const TOUCHED_PAGES: f64 = 2048.0;

fn sum_of(points: &[Point], metric: &str, want: &[(&str, &str)]) -> f64 {
    select(points, metric, want).iter().map(|p| p.value).sum()
}

/// Soft "Max open files" of a process.
fn soft_fd_limit(pid: u32) -> f64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

/// utime and stime of a process so far, in seconds.
fn cpu_seconds_now(pid: u32) -> (f64, f64) {
    let [utime, stime] = stat_fields(pid, [14, 15]).unwrap();
    (ticks_to_seconds(utime), ticks_to_seconds(stime))
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn start_agent(receiver: &Receiver, name: &str, extra: &[&str]) -> Agent {
    let mut cmd = agent_command();
    cmd.args(["--procnames", name, "--interval", "500ms"])
        .args(extra)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint());
    Agent::spawn(cmd)
}

/// What one agent run (threads and smaps on) exported for a workload of
/// known shape, with what the kernel said of the workload at that moment.
struct LiveExport {
    /// The workload's comm, which is also its group's name.
    name: String,
    /// The first export that showed the workload whole.
    points: Vec<Point>,
    /// The workload's open descriptors.
    fds: f64,
    /// The workload's soft open-files limit.
    fd_limit: f64,
    /// The workload's utime and stime when the export had arrived.
    kernel_cpu: (f64, f64),
    /// Unix seconds when the run began and when the export had arrived.
    started: f64,
    captured: f64,
    /// The `grpc-encoding` of every export received by then.
    encodings: Vec<Option<String>>,
}

impl LiveExport {
    fn group(&self) -> [(&str, &str); 1] {
        [("procgroup.name", self.name.as_str())]
    }

    /// The group with one more attribute.
    fn with<'a>(&'a self, key: &'a str, value: &'a str) -> [(&'a str, &'a str); 2] {
        [("procgroup.name", self.name.as_str()), (key, value)]
    }

    fn value(&self, metric: &str, want: &[(&str, &str)]) -> Option<f64> {
        value(&self.points, metric, want)
    }
}

/// The shared run, captured by whichever test reads it first.
fn live() -> &'static LiveExport {
    static LIVE: LazyLock<LiveExport> = LazyLock::new(capture_live_export);
    &LIVE
}

fn capture_live_export() -> LiveExport {
    let receiver = Receiver::start();
    let name = unique_name("pgex");
    let agent = start_agent(&receiver, &name, &["--threads", "--gather-smaps"]);
    let started = unix_now();

    // The first export proves the first cycle ran; a process born clearly
    // after it (boot time has a resolution of one second) has all of its
    // consumption counted, so its CPU and page faults are above zero.
    assert!(
        receiver.wait_for_exports(1, WAIT),
        "no export: {}",
        agent.log()
    );
    std::thread::sleep(Duration::from_millis(1500));
    let workload = Workload::named(&name)
        .threads(3, THREAD_NAME)
        .files(5)
        .busy_ms(300)
        .touch_kib(8192)
        .spawn();
    assert_eq!(workload.threads(), 4);
    // stdin, stdout, stderr, 5 files, and what the test process passes on.
    let fds = (3 + 5 + workload.inherited_fds) as f64;
    assert_eq!(workload.open_fds() as f64, fds);

    let group = [("procgroup.name", name.as_str())];
    let points = receiver
        .wait_for_points(WAIT, |p| {
            value(p, cat::PROCESSES.name, &group) == Some(1.0)
                && value(p, cat::THREAD_COUNT.name, &group) == Some(4.0)
                && value(p, cat::FD_COUNT.name, &group) == Some(fds)
                && sum_of(p, cat::CPU_TIME.name, &group) > 0.0
        })
        .unwrap_or_else(|| panic!("no export with the workload: {}", agent.log()));
    let live = LiveExport {
        fd_limit: soft_fd_limit(workload.pid),
        kernel_cpu: cpu_seconds_now(workload.pid),
        captured: unix_now(),
        encodings: receiver
            .received()
            .into_iter()
            .map(|r| r.encoding)
            .collect(),
        name,
        points,
        fds,
        started,
    };
    workload.stop();
    live
}

#[test]
fn agent_exports_every_metric_of_the_table_for_a_live_workload() {
    let points = &live().points;
    // Every metric of the table, with its unit; sums cumulative.
    let names: BTreeSet<&str> = points.iter().map(|p| p.metric.as_str()).collect();
    // The exit listener's counters exist in the taskstats mode only.
    let taskstats = points.iter().any(|p| {
        p.metric == cat::ACCOUNTING_MODE.name
            && p.attrs.get(cat::attr::ACCOUNTING_MODE).map(String::as_str) == Some("taskstats")
    });
    for spec in cat::GROUP_METRICS.iter().chain(cat::SELF_METRICS.iter()) {
        if spec.name.starts_with("procgroups.exits.") {
            assert_eq!(names.contains(spec.name), taskstats, "{}", spec.name);
            continue;
        }
        assert!(
            names.contains(spec.name),
            "{} missing; got {names:?}",
            spec.name
        );
        for p in points.iter().filter(|p| p.metric == spec.name) {
            assert_eq!(p.unit, spec.unit, "{}", spec.name);
            if let Kind::Sum { temporality, .. } = p.kind {
                assert_eq!(
                    temporality,
                    AggregationTemporality::Cumulative,
                    "{}",
                    spec.name
                );
            }
        }
    }
}

#[test]
fn each_metric_has_the_kind_of_the_table() {
    let points = &live().points;
    let kind = |metric: &str| select(points, metric, &[])[0].kind;
    let counter = Kind::Sum {
        monotonic: true,
        temporality: AggregationTemporality::Cumulative,
    };
    let updown = Kind::Sum {
        monotonic: false,
        temporality: AggregationTemporality::Cumulative,
    };
    for metric in [
        cat::CPU_TIME,
        cat::DISK_IO,
        cat::PAGING_FAULTS,
        cat::CONTEXT_SWITCHES,
        cat::THREAD_NAME_CPU_TIME,
        cat::THREAD_NAME_DISK_IO,
        cat::THREAD_NAME_PAGING_FAULTS,
        cat::THREAD_NAME_CONTEXT_SWITCHES,
        cat::COLLECT_ERRORS,
        cat::NODE_CPU_TIME,
        cat::UNATTRIBUTED_CPU_TIME,
    ] {
        assert_eq!(kind(metric.name), counter, "{}", metric.name);
    }
    for metric in [
        cat::PROCESSES,
        cat::MEMORY_USAGE,
        cat::MEMORY_VIRTUAL,
        cat::MEMORY_SWAP,
        cat::MEMORY_PROPORTIONAL,
        cat::MEMORY_PROPORTIONAL_SWAP,
        cat::FD_COUNT,
        cat::THREAD_COUNT,
        cat::STATE_COUNT,
        cat::WCHAN_COUNT,
        cat::THREAD_NAME_COUNT,
        cat::TRACKED_PROCESSES,
        cat::GROUPS,
    ] {
        assert_eq!(kind(metric.name), updown, "{}", metric.name);
    }
    for metric in [
        cat::FD_LIMIT_UTILIZATION,
        cat::OLDEST_START_TIME,
        cat::COLLECT_DURATION,
    ] {
        assert_eq!(kind(metric.name), Kind::Gauge, "{}", metric.name);
    }
}

#[test]
fn every_group_point_names_the_only_tracked_group() {
    let live = live();
    for p in live
        .points
        .iter()
        .filter(|p| p.metric.starts_with("procgroup."))
    {
        assert_eq!(p.attrs["procgroup.name"], live.name, "{p:?}");
    }
}

#[test]
fn process_thread_and_fd_counts_are_the_workload_s() {
    let live = live();
    let group = live.group();
    assert_eq!(live.value(cat::PROCESSES.name, &group), Some(1.0));
    assert_eq!(live.value(cat::THREAD_COUNT.name, &group), Some(4.0));
    assert_eq!(live.value(cat::FD_COUNT.name, &group), Some(live.fds));
    let utilization = live.value(cat::FD_LIMIT_UTILIZATION.name, &group).unwrap();
    let expected = live.fds / live.fd_limit;
    assert!(
        (utilization - expected).abs() < 1e-9,
        "{utilization} vs {expected}"
    );
}

#[test]
fn split_counters_carry_both_attribute_values_and_the_consumption() {
    let live = live();
    let user = live
        .value(cat::CPU_TIME.name, &live.with("cpu.mode", "user"))
        .unwrap();
    let system = live
        .value(cat::CPU_TIME.name, &live.with("cpu.mode", "system"))
        .unwrap();
    // Born after the first cycle, the whole consumption counts: above zero,
    // and at most what the kernel reported for the process by then.
    let (utime, stime) = live.kernel_cpu;
    assert!(
        user > 0.0 && user <= utime + 1e-9,
        "user {user}, kernel {utime}"
    );
    assert!(system <= stime + 1e-9, "system {system}, kernel {stime}");
    for dir in ["read", "write"] {
        let v = live.value(cat::DISK_IO.name, &live.with("disk.io.direction", dir));
        assert!(v.is_some_and(|v| v >= 0.0), "disk.io {dir}");
    }
    let fault = |kind| {
        live.value(
            cat::PAGING_FAULTS.name,
            &live.with("system.paging.fault.type", kind),
        )
    };
    let minor = fault("minor").unwrap();
    assert!(
        minor >= TOUCHED_PAGES,
        "8 MiB touched page by page: {minor} minor faults"
    );
    assert!(fault("major").is_some());
    let group = live.group();
    let switches = sum_of(&live.points, cat::CONTEXT_SWITCHES.name, &group);
    assert!(switches > 0.0, "context switches {switches}");
    assert_eq!(
        select(&live.points, cat::CONTEXT_SWITCHES.name, &group).len(),
        2
    );
}

#[test]
fn memory_holds_the_touched_mebibytes_resident_and_proportional() {
    let live = live();
    let group = live.group();
    let rss = live.value(cat::MEMORY_USAGE.name, &group).unwrap();
    let vsz = live.value(cat::MEMORY_VIRTUAL.name, &group).unwrap();
    assert!(rss >= TOUCHED_BYTES, "rss {rss}");
    assert!(vsz > rss, "virtual {vsz} rss {rss}");
    assert!(
        live.value(cat::MEMORY_SWAP.name, &group)
            .is_some_and(|v| v >= 0.0)
    );
    // PSS with smaps on.
    let pss = live.value(cat::MEMORY_PROPORTIONAL.name, &group).unwrap();
    assert!(pss >= TOUCHED_BYTES && pss <= rss, "pss {pss} rss {rss}");
    assert!(
        live.value(cat::MEMORY_PROPORTIONAL_SWAP.name, &group)
            .is_some()
    );
}

#[test]
fn the_oldest_start_time_falls_within_the_run() {
    let live = live();
    let start = live
        .value(cat::OLDEST_START_TIME.name, &live.group())
        .unwrap();
    let (t0, now) = (live.started, live.captured);
    assert!(
        start >= t0 - 2.0 && start <= now + 1.0,
        "start {start}, test {t0}..{now}"
    );
}

#[test]
fn states_and_wait_channels_count_each_thread_once() {
    let live = live();
    let group = live.group();
    let states = select(&live.points, cat::STATE_COUNT.name, &group);
    let state_names: BTreeSet<&str> = states
        .iter()
        .map(|p| p.attrs["process.state"].as_str())
        .collect();
    assert_eq!(
        state_names,
        BTreeSet::from(["other", "running", "sleeping", "waiting", "zombie"])
    );
    assert_eq!(states.iter().map(|p| p.value).sum::<f64>(), 4.0);
    let wchans = select(&live.points, cat::WCHAN_COUNT.name, &group);
    assert!(!wchans.is_empty(), "sleeping threads have a wait channel");
    assert!(
        wchans
            .iter()
            .all(|p| !p.attrs["procgroup.wchan"].is_empty())
    );
    let waiting: f64 = wchans.iter().map(|p| p.value).sum();
    assert!((1.0..=4.0).contains(&waiting), "wchan threads {waiting}");
}

#[test]
fn thread_names_count_the_workers_and_the_main_thread() {
    let live = live();
    let points = &live.points;
    // The main thread is named like the process.
    let main_thread = live.name.as_str();
    let thread = |t| live.with("thread.name", t);
    assert_eq!(
        live.value(cat::THREAD_NAME_COUNT.name, &thread(THREAD_NAME)),
        Some(3.0)
    );
    assert_eq!(
        live.value(cat::THREAD_NAME_COUNT.name, &thread(main_thread)),
        Some(1.0)
    );
    let main_cpu = sum_of(points, cat::THREAD_NAME_CPU_TIME.name, &thread(main_thread));
    assert!(main_cpu > 0.0, "the main thread burnt 300 ms: {main_cpu}");
    for metric in [
        cat::THREAD_NAME_CPU_TIME,
        cat::THREAD_NAME_DISK_IO,
        cat::THREAD_NAME_PAGING_FAULTS,
        cat::THREAD_NAME_CONTEXT_SWITCHES,
    ] {
        for t in [THREAD_NAME, main_thread] {
            assert_eq!(
                select(points, metric.name, &thread(t)).len(),
                2,
                "{}",
                metric.name
            );
        }
    }
    let main_minor = live
        .value(
            cat::THREAD_NAME_PAGING_FAULTS.name,
            &[
                ("procgroup.name", live.name.as_str()),
                ("thread.name", main_thread),
                ("system.paging.fault.type", "minor"),
            ],
        )
        .unwrap();
    assert!(
        main_minor >= TOUCHED_PAGES,
        "the main thread touched 8 MiB: {main_minor}"
    );
}

#[test]
fn the_agent_reports_its_own_metrics() {
    let live = live();
    assert_eq!(live.value(cat::GROUPS.name, &[]), Some(1.0));
    assert_eq!(live.value(cat::TRACKED_PROCESSES.name, &[]), Some(1.0));
    assert!(
        live.value(cat::COLLECT_DURATION.name, &[])
            .is_some_and(|d| d > 0.0)
    );
    for t in ["read", "partial"] {
        assert!(
            live.value(cat::COLLECT_ERRORS.name, &[("error.type", t)])
                .is_some(),
            "{t}"
        );
    }
}

#[test]
fn the_resource_describes_the_agent_and_the_host() {
    let resource = &live().points[0].resource;
    assert_eq!(resource["service.name"], "procgroups");
    assert_eq!(resource["service.version"], env!("CARGO_PKG_VERSION"));
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(resource["host.name"], hostname.trim());
    if let Ok(id) = std::fs::read_to_string("/etc/machine-id") {
        assert_eq!(resource["host.id"], id.trim());
    }
    assert!(!resource.contains_key("k8s.node.name"));
}

#[test]
fn exports_are_gzipped_by_default() {
    let encodings = &live().encodings;
    assert!(!encodings.is_empty());
    assert!(encodings.iter().all(|e| e.as_deref() == Some("gzip")));
}

#[test]
fn without_threads_or_smaps_their_metrics_are_not_exported() {
    let receiver = Receiver::start();
    let name = unique_name("pgnt");
    let workload = Workload::spawn(&["--name", &name, "--threads", "2"]);
    let mut cmd = agent_command();
    cmd.args([
        "--procnames",
        &name,
        "--interval",
        "500ms",
        "--threads",
        "false",
    ])
    .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
    .env(
        "OTEL_RESOURCE_ATTRIBUTES",
        "deployment.environment.name=ci,service.name=from-attributes",
    )
    .env("OTEL_SERVICE_NAME", "pg-test")
    .env("K8S_NODE_NAME", "node-a");
    let agent = Agent::spawn(cmd);
    let group = [("procgroup.name", name.as_str())];
    let points = receiver
        .wait_for_points(WAIT, |p| value(p, cat::PROCESSES.name, &group) == Some(1.0))
        .unwrap_or_else(|| panic!("no export: {}", agent.log()));
    assert!(
        points
            .iter()
            .all(|p| !p.metric.starts_with("procgroup.thread_name."))
    );
    assert!(
        points
            .iter()
            .all(|p| !p.metric.starts_with("procgroup.memory.proportional"))
    );
    // Without thread detail the thread count still comes from stat.
    assert_eq!(value(&points, cat::THREAD_COUNT.name, &group), Some(3.0));
    let resource = &points[0].resource;
    // OTEL_SERVICE_NAME wins over service.name in OTEL_RESOURCE_ATTRIBUTES.
    assert_eq!(resource["service.name"], "pg-test");
    assert_eq!(resource["k8s.node.name"], "node-a");
    assert_eq!(resource["deployment.environment.name"], "ci");
    workload.stop();
}

/// Runs a busy workload under an agent, lets it exit, and returns the
/// points of an export taken while it ran and of one taken after the exit.
fn export_after_exit(
    name: &str,
    extra: &[&str],
    after_exit: impl Fn(&[Point]) -> bool,
) -> (Vec<Point>, Vec<Point>) {
    let receiver = Receiver::start();
    let agent = start_agent(&receiver, name, extra);
    assert!(
        receiver.wait_for_exports(1, WAIT),
        "no export: {}",
        agent.log()
    );
    std::thread::sleep(Duration::from_millis(1500));
    let workload = Workload::spawn(&["--name", name, "--busy-ms", "200"]);
    let group = [("procgroup.name", name)];
    let running = receiver
        .wait_for_points(WAIT, |p| {
            value(p, cat::PROCESSES.name, &group) == Some(1.0)
                && sum_of(p, cat::CPU_TIME.name, &group) > 0.0
        })
        .unwrap_or_else(|| panic!("no export with the workload: {}", agent.log()));
    workload.stop();
    let exited = receiver
        .wait_for_points(WAIT, after_exit)
        .unwrap_or_else(|| panic!("no export after the exit: {}", agent.log()));
    (running, exited)
}

#[test]
fn an_emptied_group_keeps_its_counters_and_loses_its_start_time() {
    let name = unique_name("pgem");
    let group = [("procgroup.name", name.as_str())];
    let (running, points) = export_after_exit(&name, &[], |p| {
        value(p, cat::PROCESSES.name, &group) == Some(0.0)
    });
    let before = sum_of(&running, cat::CPU_TIME.name, &group);
    let after = sum_of(&points, cat::CPU_TIME.name, &group);
    assert!(
        before > 0.0 && after >= before,
        "CPU {before} while running, {after} after"
    );
    assert_eq!(value(&points, cat::THREAD_COUNT.name, &group), Some(0.0));
    assert_eq!(value(&points, cat::MEMORY_USAGE.name, &group), Some(0.0));
    assert_eq!(value(&points, cat::FD_COUNT.name, &group), Some(0.0));
    assert_eq!(
        value(&points, cat::FD_LIMIT_UTILIZATION.name, &group),
        Some(0.0)
    );
    assert_eq!(value(&points, cat::OLDEST_START_TIME.name, &group), None);
    assert_eq!(value(&points, cat::GROUPS.name, &[]), Some(1.0));
}

#[test]
fn with_remove_empty_groups_an_emptied_group_disappears() {
    let name = unique_name("pgrm");
    let (_, points) = export_after_exit(&name, &["--remove-empty-groups"], |p| {
        value(p, cat::GROUPS.name, &[]) == Some(0.0)
    });
    assert!(
        points
            .iter()
            .all(|p| p.attrs.get("procgroup.name") != Some(&name)),
        "{points:?}"
    );
}
