//! The instruments read through the SDK: a snapshot published, a
//! collection forced, and the points the in-memory exporter received.

use super::*;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

use crate::proc::{Memory, States, Threads};

/// One exported point, flattened.
#[derive(Debug, Clone, PartialEq)]
struct Point {
    unit: String,
    kind: &'static str,
    attrs: BTreeMap<String, String>,
    value: f64,
}

/// One export: points by metric name.
type Export = BTreeMap<String, Vec<Point>>;

fn attrs<'a>(kvs: impl Iterator<Item = &'a KeyValue>) -> BTreeMap<String, String> {
    kvs.map(|kv| (kv.key.to_string(), kv.value.to_string()))
        .collect()
}

fn kind(monotonic: bool) -> &'static str {
    if monotonic { "counter" } else { "updown" }
}

/// One export of the SDK's in-memory exporter, flattened to points.
fn flatten(metrics: &ResourceMetrics) -> Export {
    let mut out: Export = BTreeMap::new();
    for scope in metrics.scope_metrics() {
        for m in scope.metrics() {
            let unit = m.unit().to_owned();
            let points = out.entry(m.name().to_owned()).or_default();
            let mut push = |kind, a, value| {
                points.push(Point {
                    unit: unit.clone(),
                    kind,
                    attrs: a,
                    value,
                })
            };
            match m.data() {
                AggregatedMetrics::F64(MetricData::Sum(s)) => {
                    for p in s.data_points() {
                        push(kind(s.is_monotonic()), attrs(p.attributes()), p.value());
                    }
                }
                AggregatedMetrics::U64(MetricData::Sum(s)) => {
                    for p in s.data_points() {
                        let v = p.value() as f64;
                        push(kind(s.is_monotonic()), attrs(p.attributes()), v);
                    }
                }
                AggregatedMetrics::I64(MetricData::Sum(s)) => {
                    for p in s.data_points() {
                        let v = p.value() as f64;
                        push(kind(s.is_monotonic()), attrs(p.attributes()), v);
                    }
                }
                AggregatedMetrics::F64(MetricData::Gauge(g)) => {
                    for p in g.data_points() {
                        push("gauge", attrs(p.attributes()), p.value());
                    }
                }
                other => panic!("unexpected data for {}: {other:?}", m.name()),
            }
        }
    }
    out
}

struct Harness {
    provider: SdkMeterProvider,
    exporter: InMemoryMetricExporter,
    cell: SnapshotCell,
}

impl Harness {
    fn new(options: InstrumentOptions) -> Self {
        let exporter = InMemoryMetricExporter::default();
        let reader = PeriodicReader::builder(exporter.clone())
            .with_interval(Duration::from_secs(3600))
            .build();
        let provider = SdkMeterProvider::builder().with_reader(reader).build();
        let cell = SnapshotCell::new();
        register(&provider.meter("test"), &cell, options);
        Harness {
            provider,
            exporter,
            cell,
        }
    }

    fn export(&self, snapshot: Snapshot) -> BTreeMap<String, Vec<Point>> {
        self.cell.publish(snapshot);
        self.provider.force_flush().unwrap();
        let exports = self.exporter.get_finished_metrics().unwrap();
        flatten(exports.last().unwrap())
    }
}

fn value(out: &BTreeMap<String, Vec<Point>>, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    out.get(name)?
        .iter()
        .find(|p| {
            want.len() == p.attrs.len()
                && want
                    .iter()
                    .all(|(k, v)| p.attrs.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|p| p.value)
}

fn web_group() -> Group {
    let mut g = Group {
        procs: 3,
        num_threads: 7,
        open_fds: 40,
        worst_fd_ratio: 0.125,
        oldest_start_time: Some(UNIX_EPOCH + Duration::from_secs(1_600_000_000)),
        memory: Memory {
            resident_bytes: 1000,
            virtual_bytes: 5000,
            swap_bytes: 20,
            proportional_bytes: 900,
            proportional_swap_bytes: 10,
        },
        states: States {
            running: 1,
            sleeping: 5,
            waiting: 1,
            ..States::default()
        },
        counts: Counts {
            cpu_user_time: 2.5,
            cpu_system_time: 0.5,
            read_bytes: 100,
            write_bytes: 200,
            major_page_faults: 3,
            minor_page_faults: 300,
            ctx_switch_voluntary: 50,
            ctx_switch_nonvoluntary: 5,
        },
        threads: vec![Threads {
            name: "io".into(),
            num_threads: 2,
            counts: Counts {
                cpu_user_time: 1.25,
                write_bytes: 64,
                ctx_switch_voluntary: 9,
                ..Counts::default()
            },
        }],
        ..Group::default()
    };
    g.wchans.insert("futex_wait_queue".into(), 4);
    g
}

fn snapshot_with(groups: &[(&str, Group)]) -> Snapshot {
    Snapshot {
        groups: groups
            .iter()
            .map(|(n, g)| (n.to_string(), g.clone()))
            .collect(),
        cycle_duration: Duration::from_millis(250),
        tracked_processes: 3,
        taken_at: Some(SystemTime::now()),
        cycles: 1,
        errors: crate::proc::CollectErrors {
            read: 2,
            partial: 7,
        },
        ..Snapshot::default()
    }
}

#[test]
fn every_metric_of_the_table_is_observed_with_its_unit_and_attributes() {
    let h = Harness::new(InstrumentOptions {
        threads: true,
        smaps: true,
    });
    let out = h.export(snapshot_with(&[("web", web_group())]));

    for spec in cat::GROUP_METRICS.iter().chain(cat::SELF_METRICS.iter()) {
        let points = out
            .get(spec.name)
            .unwrap_or_else(|| panic!("{} missing", spec.name));
        assert!(points.iter().all(|p| p.unit == spec.unit), "{}", spec.name);
    }
    let g = [("procgroup.name", "web")];
    let with = |k: &'static str, v: &'static str| [("procgroup.name", "web"), (k, v)];
    let t = |k: &'static str, v: &'static str| {
        [("procgroup.name", "web"), ("thread.name", "io"), (k, v)]
    };
    assert_eq!(value(&out, "procgroup.processes", &g), Some(3.0));
    assert_eq!(
        value(&out, "procgroup.cpu.time", &with("cpu.mode", "user")),
        Some(2.5)
    );
    assert_eq!(
        value(&out, "procgroup.cpu.time", &with("cpu.mode", "system")),
        Some(0.5)
    );
    assert_eq!(
        value(
            &out,
            "procgroup.disk.io",
            &with("disk.io.direction", "write")
        ),
        Some(200.0)
    );
    assert_eq!(
        value(
            &out,
            "procgroup.paging.faults",
            &with("system.paging.fault.type", "minor")
        ),
        Some(300.0)
    );
    assert_eq!(
        value(
            &out,
            "procgroup.context_switches",
            &with("process.context_switch.type", "involuntary")
        ),
        Some(5.0)
    );
    assert_eq!(value(&out, "procgroup.memory.usage", &g), Some(1000.0));
    assert_eq!(value(&out, "procgroup.memory.virtual", &g), Some(5000.0));
    assert_eq!(value(&out, "procgroup.memory.swap", &g), Some(20.0));
    assert_eq!(
        value(&out, "procgroup.memory.proportional", &g),
        Some(900.0)
    );
    assert_eq!(
        value(&out, "procgroup.memory.proportional_swap", &g),
        Some(10.0)
    );
    assert_eq!(
        value(&out, "procgroup.unix.file_descriptor.count", &g),
        Some(40.0)
    );
    assert_eq!(
        value(&out, "procgroup.unix.file_descriptor.limit_utilization", &g),
        Some(0.125)
    );
    assert_eq!(value(&out, "procgroup.thread.count", &g), Some(7.0));
    assert_eq!(
        value(&out, "procgroup.oldest_start_time", &g),
        Some(1_600_000_000.0)
    );
    assert_eq!(
        value(
            &out,
            "procgroup.state.count",
            &with("process.state", "sleeping")
        ),
        Some(5.0)
    );
    assert_eq!(
        value(
            &out,
            "procgroup.state.count",
            &with("process.state", "zombie")
        ),
        Some(0.0)
    );
    assert_eq!(out["procgroup.state.count"].len(), 5);
    assert_eq!(
        value(
            &out,
            "procgroup.wchan.count",
            &with("procgroup.wchan", "futex_wait_queue")
        ),
        Some(4.0)
    );
    assert_eq!(
        value(
            &out,
            "procgroup.thread_name.count",
            &with("thread.name", "io")
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &out,
            "procgroup.thread_name.cpu.time",
            &t("cpu.mode", "user")
        ),
        Some(1.25)
    );
    assert_eq!(
        value(
            &out,
            "procgroup.thread_name.disk.io",
            &t("disk.io.direction", "write")
        ),
        Some(64.0)
    );
    assert_eq!(
        value(
            &out,
            "procgroup.thread_name.paging.faults",
            &t("system.paging.fault.type", "major")
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &out,
            "procgroup.thread_name.context_switches",
            &t("process.context_switch.type", "voluntary")
        ),
        Some(9.0)
    );

    assert_eq!(value(&out, "procgroups.collect.duration", &[]), Some(0.25));
    assert_eq!(
        value(&out, "procgroups.collect.errors", &[("error.type", "read")]),
        Some(2.0)
    );
    assert_eq!(
        value(
            &out,
            "procgroups.collect.errors",
            &[("error.type", "partial")]
        ),
        Some(7.0)
    );
    assert_eq!(value(&out, "procgroups.tracked.processes", &[]), Some(3.0));
    assert_eq!(value(&out, "procgroups.groups", &[]), Some(1.0));
    assert_eq!(
        value(
            &out,
            "procgroups.accounting.mode",
            &[("procgroups.accounting.mode", "children")]
        ),
        Some(1.0)
    );

    let kind = |name: &str| out[name][0].kind;
    assert_eq!(kind("procgroup.cpu.time"), "counter");
    assert_eq!(kind("procgroup.disk.io"), "counter");
    assert_eq!(kind("procgroup.processes"), "updown");
    assert_eq!(kind("procgroup.memory.usage"), "updown");
    assert_eq!(kind("procgroup.oldest_start_time"), "gauge");
    assert_eq!(
        kind("procgroup.unix.file_descriptor.limit_utilization"),
        "gauge"
    );
    assert_eq!(kind("procgroups.collect.errors"), "counter");
}

#[test]
fn optional_metrics_are_absent_when_off() {
    let h = Harness::new(InstrumentOptions::default());
    let out = h.export(snapshot_with(&[("web", web_group())]));
    assert!(out.contains_key("procgroup.cpu.time"));
    for name in out.keys() {
        assert!(!name.starts_with("procgroup.thread_name."), "{name}");
        assert!(!name.starts_with("procgroup.memory.proportional"), "{name}");
    }
}

#[test]
fn an_empty_group_keeps_its_counters_reports_zero_gauges_and_no_start_time() {
    let h = Harness::new(InstrumentOptions {
        threads: true,
        smaps: false,
    });
    h.export(snapshot_with(&[("web", web_group())]));
    let gone = Group {
        counts: web_group().counts,
        worst_fd_ratio: 0.5,
        oldest_start_time: Some(UNIX_EPOCH),
        threads: vec![Threads {
            name: "io".into(),
            num_threads: 0,
            counts: web_group().threads[0].counts,
        }],
        ..Group::default()
    };
    let out = h.export(snapshot_with(&[("web", gone)]));
    let g = [("procgroup.name", "web")];
    assert_eq!(value(&out, "procgroup.processes", &g), Some(0.0));
    assert_eq!(value(&out, "procgroup.memory.usage", &g), Some(0.0));
    assert_eq!(value(&out, "procgroup.thread.count", &g), Some(0.0));
    assert_eq!(
        value(&out, "procgroup.unix.file_descriptor.limit_utilization", &g),
        Some(0.0)
    );
    assert_eq!(
        value(
            &out,
            "procgroup.cpu.time",
            &[("procgroup.name", "web"), ("cpu.mode", "user")]
        ),
        Some(2.5)
    );
    assert_eq!(
        value(
            &out,
            "procgroup.thread_name.cpu.time",
            &[
                ("procgroup.name", "web"),
                ("thread.name", "io"),
                ("cpu.mode", "user")
            ]
        ),
        Some(1.25)
    );
    assert!(!out.contains_key("procgroup.oldest_start_time"), "{out:?}");
}

#[test]
fn nothing_but_self_metrics_before_the_first_cycle() {
    let h = Harness::new(InstrumentOptions::default());
    let out = h.export(Snapshot::default());
    assert!(out.keys().all(|k| k.starts_with("procgroups.")), "{out:?}");
    assert!(!out.contains_key("procgroups.collect.duration"));
    assert_eq!(value(&out, "procgroups.groups", &[]), Some(0.0));
}

#[test]
fn huge_values_saturate_instead_of_wrapping() {
    let h = Harness::new(InstrumentOptions::default());
    let g = Group {
        procs: 1,
        memory: Memory {
            virtual_bytes: u64::MAX,
            ..Memory::default()
        },
        ..Group::default()
    };
    let out = h.export(snapshot_with(&[("big", g)]));
    assert_eq!(
        value(
            &out,
            "procgroup.memory.virtual",
            &[("procgroup.name", "big")]
        ),
        Some(i64::MAX as f64)
    );
}
