//! The OTLP pipeline in-process, against the in-process receiver: the real
//! tonic exporter built by `Telemetry::start` from the `OTEL_*` variables
//! exports a known snapshot; the test checks what arrives on the wire
//! (names, units, kinds, temporality, attributes, values, resource, gzip)
//! and that a refusing collector is recorded and recovered from.
//!
//! Each test sets process environment variables, which is only sound
//! while no other thread reads them, so each runs its body in a child
//! process of this binary in which it is the only test.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::otlp::{Kind, Point, points_of, value};
use crate::support::receiver::{Mode, Receiver};
use opentelemetry_proto::tonic::metrics::v1::AggregationTemporality;
use procgroups::agent::{NodeCpu, Snapshot, SnapshotCell};
use procgroups::proc::{CollectErrors, Counts, Group, Memory, States, Threads};
use procgroups::telemetry::catalogue as cat;
use procgroups::telemetry::{
    CardinalityLimits, ExportSettings, HostFacts, InstrumentOptions, PipelineOptions, Telemetry,
};

fn group() -> Group {
    let mut g = Group {
        procs: 2,
        num_threads: 6,
        open_fds: 17,
        worst_fd_ratio: 0.5,
        oldest_start_time: Some(UNIX_EPOCH + Duration::from_secs(1_650_000_000)),
        memory: Memory {
            resident_bytes: 4096,
            virtual_bytes: 8192,
            swap_bytes: 0,
            proportional_bytes: 3000,
            proportional_swap_bytes: 0,
        },
        states: States {
            sleeping: 6,
            ..States::default()
        },
        counts: Counts {
            cpu_user_time: 3.25,
            cpu_system_time: 1.0,
            read_bytes: 10,
            write_bytes: 20,
            major_page_faults: 1,
            minor_page_faults: 99,
            ctx_switch_voluntary: 7,
            ctx_switch_nonvoluntary: 2,
        },
        threads: vec![Threads {
            name: "pool".into(),
            num_threads: 5,
            counts: Counts {
                cpu_user_time: 3.0,
                ..Counts::default()
            },
        }],
        // Measured I/O (an unknown one is not exported).
        io_known: true,
        ..Group::default()
    };
    g.wchans.insert("ep_poll".into(), 6);
    g
}

fn snapshot(cpu_user: f64) -> Snapshot {
    let mut g = group();
    g.counts.cpu_user_time = cpu_user;
    let mut s = Snapshot {
        errors: CollectErrors {
            read: 0,
            partial: 1,
        },
        cycle_duration: Duration::from_millis(12),
        tracked_processes: 2,
        taken_at: Some(SystemTime::now()),
        cycles: 1,
        node_cpu: Some(NodeCpu {
            node_seconds_total: 12.0,
            attributed_seconds_total: 10.0,
            unattributed_seconds_total: 2.0,
            overshoot_cycles: 0,
        }),
        // The taskstats mode, so that the exit listener's counters are
        // exported too.
        exit_listener: Some(procgroups::exits::ListenerStats {
            records: 40,
            ..procgroups::exits::ListenerStats::default()
        }),
        ..Snapshot::default()
    };
    s.groups.insert("svc".into(), g);
    s
}

/// Set in the child process that runs the test's body.
const IN_CHILD: &str = "PROCGROUPS_TEST_PIPELINE_CHILD";

/// The OTLP exporter reads its endpoint from the process environment, so
/// a test sets variables, which is sound only while no other thread reads
/// the environment. The other tests of this binary do, so the body of test
/// `name` (this module's) runs in a child process of this binary in which
/// it is the only test: true in that child, false in the parent once the
/// child has passed.
fn in_own_process(name: &str) -> bool {
    if std::env::var_os(IN_CHILD).is_some() {
        return true;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &format!("export::pipeline::{name}"),
            "--test-threads",
            "1",
        ])
        .env(IN_CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

/// The real pipeline, built from the environment, pushing to an
/// in-process receiver.
struct Pipeline {
    receiver: Receiver,
    rt: tokio::runtime::Runtime,
    cell: SnapshotCell,
    facts: HostFacts,
    telemetry: Telemetry,
}

impl Pipeline {
    /// Sets the variables (only in a process of its own: see
    /// [`in_own_process`]) and starts the pipeline.
    fn start() -> Pipeline {
        let receiver = Receiver::start();
        // SAFETY: this process runs this test alone (see in_own_process),
        // and sets the variables before starting any thread that reads the
        // environment.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint());
            std::env::set_var(
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment.name=test,host.name=override-host",
            );
            std::env::remove_var("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT");
            std::env::remove_var("OTEL_EXPORTER_OTLP_COMPRESSION");
            std::env::remove_var("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE");
        }
        let rt = tokio::runtime::Runtime::new().unwrap();
        let cell = SnapshotCell::new();
        let env = |k: &str| std::env::var(k).ok();
        let facts = HostFacts::gather(std::path::Path::new("/proc"), |k| std::env::var(k).ok());
        let options = PipelineOptions {
            export: ExportSettings::from_env(&env, Duration::from_secs(3600)).unwrap(),
            instruments: InstrumentOptions {
                threads: true,
                smaps: true,
                ..InstrumentOptions::default()
            },
            limits: CardinalityLimits::default(),
            remove_empty_groups: false,
        };
        let telemetry = {
            let _guard = rt.enter();
            Telemetry::start(
                &options,
                procgroups::telemetry::resource::build(&facts),
                &cell,
            )
            .unwrap()
        };
        Pipeline {
            receiver,
            rt,
            cell,
            facts,
            telemetry,
        }
    }

    /// Publishes the snapshot with `cpu_user` seconds and forces an export.
    fn export(&self, cpu_user: f64) -> Result<(), String> {
        self.cell.publish(snapshot(cpu_user));
        let t = self.telemetry.clone();
        self.rt
            .block_on(self.rt.spawn_blocking(move || t.force_flush()))
            .unwrap()
            .map_err(|e| e.to_string())
    }

    /// The first export, which the receiver accepted.
    fn first_export(&self) -> Vec<Point> {
        self.export(3.25).unwrap();
        assert!(self.receiver.wait_for_exports(1, Duration::from_secs(5)));
        points_of(&self.receiver.received()[0].request)
    }

    fn shutdown(self) {
        let t = self.telemetry.clone();
        self.rt
            .block_on(self.rt.spawn_blocking(move || t.shutdown()))
            .unwrap()
            .unwrap();
    }
}

const CPU_USER: [(&str, &str); 2] = [("procgroup.name", "svc"), ("cpu.mode", "user")];

#[test]
fn exported_points_arrive_gzipped_with_resource() {
    if !in_own_process("exported_points_arrive_gzipped_with_resource") {
        return;
    }
    let pipeline = Pipeline::start();
    let points = pipeline.first_export();
    let first = &pipeline.receiver.received()[0];
    assert_eq!(first.encoding.as_deref(), Some("gzip"));

    // Resource: ours, with OTEL_RESOURCE_ATTRIBUTES on top.
    let resource = &points[0].resource;
    assert_eq!(resource["service.name"], "procgroups");
    assert_eq!(resource["service.version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(resource["host.name"], "override-host");
    assert_eq!(resource["deployment.environment.name"], "test");
    if let Some(id) = &pipeline.facts.host_id {
        assert_eq!(&resource["host.id"], id);
    }
    pipeline.shutdown();
}

#[test]
fn exported_points_carry_the_table_s_units_kinds_and_values() {
    if !in_own_process("exported_points_carry_the_table_s_units_kinds_and_values") {
        return;
    }
    let pipeline = Pipeline::start();
    let points = pipeline.first_export();

    // Every metric of the table, with its unit; counters cumulative and
    // monotonic, up-down counters cumulative and not monotonic.
    let cumulative = AggregationTemporality::Cumulative;
    for spec in cat::GROUP_METRICS.iter().chain(cat::SELF_METRICS.iter()) {
        let of: Vec<_> = points.iter().filter(|p| p.metric == spec.name).collect();
        assert!(!of.is_empty(), "{} missing", spec.name);
        for p in &of {
            assert_eq!(p.unit, spec.unit, "{}", spec.name);
            if spec.name.starts_with("procgroup.") {
                assert_eq!(p.attrs["procgroup.name"], "svc", "{}", spec.name);
            }
        }
        let expected = match spec.name {
            "procgroup.unix.file_descriptor.limit_utilization"
            | "procgroup.oldest_start_time"
            | "procgroups.collect.duration"
            | "procgroups.accounting.mode" => Kind::Gauge,
            "procgroup.cpu.time"
            | "procgroup.disk.io"
            | "procgroup.paging.faults"
            | "procgroup.context_switches"
            | "procgroup.thread_name.cpu.time"
            | "procgroup.thread_name.disk.io"
            | "procgroup.thread_name.paging.faults"
            | "procgroup.thread_name.context_switches"
            | "procgroups.collect.errors"
            | "procgroups.node.cpu.time"
            | "procgroups.unattributed.cpu.time"
            | "procgroups.exits.records"
            | "procgroups.exits.overflows"
            | "procgroups.exits.outages"
            | "procgroups.exits.malformed" => Kind::Sum {
                monotonic: true,
                temporality: cumulative,
            },
            _ => Kind::Sum {
                monotonic: false,
                temporality: cumulative,
            },
        };
        assert_eq!(of[0].kind, expected, "{}", spec.name);
    }
    let svc = [("procgroup.name", "svc")];
    assert_eq!(value(&points, "procgroup.processes", &svc), Some(2.0));
    assert_eq!(value(&points, "procgroup.cpu.time", &CPU_USER), Some(3.25));
    assert_eq!(
        value(
            &points,
            "procgroup.wchan.count",
            &[("procgroup.name", "svc"), ("procgroup.wchan", "ep_poll")]
        ),
        Some(6.0)
    );
    assert_eq!(
        value(
            &points,
            "procgroup.thread_name.count",
            &[("procgroup.name", "svc"), ("thread.name", "pool")]
        ),
        Some(5.0)
    );
    assert_eq!(
        value(&points, "procgroup.oldest_start_time", &svc),
        Some(1_650_000_000.0)
    );
    assert_eq!(
        value(
            &points,
            "procgroups.collect.errors",
            &[("error.type", "partial")]
        ),
        Some(1.0)
    );
    assert_eq!(pipeline.telemetry.health().status().last_ok, Some(true));
    pipeline.shutdown();
}

#[test]
fn exported_points_recover_after_refusal() {
    if !in_own_process("exported_points_recover_after_refusal") {
        return;
    }
    let pipeline = Pipeline::start();
    let points = pipeline.first_export();
    let (receiver, telemetry) = (&pipeline.receiver, &pipeline.telemetry);
    assert_eq!(telemetry.health().status().last_ok, Some(true));

    // The collector refuses: the failure is recorded, nothing is stored.
    receiver.set_mode(Mode::Unavailable);
    assert!(pipeline.export(5.5).is_err());
    let status = telemetry.health().status();
    assert_eq!(status.last_ok, Some(false));
    assert!(status.last_error.unwrap().contains("Unavailable"));
    assert_eq!(status.endpoint, receiver.endpoint());
    assert_eq!(receiver.received().len(), 1);

    // It comes back: the next export carries the current totals, with the
    // same start time as before (one cumulative series, no reset).
    receiver.set_mode(Mode::Accept);
    pipeline.export(7.75).unwrap();
    assert!(receiver.wait_for_exports(2, Duration::from_secs(5)));
    let second = points_of(&receiver.received()[1].request);
    assert_eq!(value(&second, "procgroup.cpu.time", &CPU_USER), Some(7.75));
    let start = |ps: &[Point]| {
        ps.iter()
            .find(|p| p.metric == "procgroup.cpu.time")
            .unwrap()
            .start_time_unix_nano
    };
    assert_eq!(start(&points), start(&second));
    let status = telemetry.health().status();
    assert_eq!(status.last_ok, Some(true));
    assert_eq!((status.succeeded, status.failed), (2, 1));
    pipeline.shutdown();
}
