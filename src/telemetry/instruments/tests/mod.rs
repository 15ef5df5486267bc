//! The instruments read through the SDK: a snapshot published, a
//! collection forced, and the points the in-memory exporter received.
//!
//! - `otel`: the OpenTelemetry names, their values, units, kinds and
//!   attributes, and what an empty group or a first cycle reports.
//! - `process_exporter`: the same values under process-exporter's names.
//! - `families`: both tables against the families and labels of the real
//!   process-exporter's output.
//! - `containers`: a group split by container, labelled in both tables.

mod containers;
mod families;
mod otel;
mod process_exporter;

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
        io_known: true,
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
        node_cpu: Some(crate::snapshot::NodeCpu {
            node_seconds_total: 40.0,
            attributed_seconds_total: 30.5,
            unattributed_seconds_total: 9.5,
            overshoot_cycles: 0,
        }),
        exit_listener: Some(crate::exits::ListenerStats {
            records: 1234,
            overflows: 5,
            outages: 2,
            malformed: 1,
        }),
        ..Snapshot::default()
    }
}
