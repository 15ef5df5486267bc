//! Observable instruments over the latest snapshot: one per metric of the
//! catalogue. Each callback loads the current `Arc<Snapshot>` and observes
//! it; nothing else. The callbacks run on the SDK's reader thread, where I/O
//! would delay every export and a panic would stop exports for good, so they
//! do no I/O, take no lock that is held across I/O, and use no operation that
//! can panic (numbers are converted with saturation).
//!
//! Counters are observed as the grouper's totals (cumulative since the agent
//! started, never decreasing); every known group is observed on every
//! collection, including groups that have become empty, so that the SDK never
//! forgets a series and a delta exporter never double-counts.

use opentelemetry::KeyValue;
use opentelemetry::metrics::{AsyncInstrument, Meter};

use crate::proc::{Counts, Group};
use crate::snapshot::{Snapshot, SnapshotCell, unix_seconds};

use super::catalogue::{self as cat, MetricSpec, attr};

/// Which optional instruments to register.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstrumentOptions {
    /// Register the `procgroup.thread_name.*` metrics (thread detail is on).
    pub threads: bool,
    /// Register the `procgroup.memory.proportional*` metrics (smaps is on).
    pub smaps: bool,
}

/// One counter split in two by an attribute (user/system, read/write, ...).
struct Split<T: 'static> {
    key: &'static str,
    values: fn(&Counts) -> [(&'static str, T); 2],
}

const CPU: Split<f64> = Split {
    key: attr::CPU_MODE,
    values: |c| {
        [
            (attr::CPU_MODE_USER, c.cpu_user_time),
            (attr::CPU_MODE_SYSTEM, c.cpu_system_time),
        ]
    },
};

const DISK: Split<u64> = Split {
    key: attr::DISK_IO_DIRECTION,
    values: |c| {
        [
            (attr::DISK_IO_READ, c.read_bytes),
            (attr::DISK_IO_WRITE, c.write_bytes),
        ]
    },
};

const FAULTS: Split<u64> = Split {
    key: attr::PAGING_FAULT_TYPE,
    values: |c| {
        [
            (attr::PAGING_FAULT_MAJOR, c.major_page_faults),
            (attr::PAGING_FAULT_MINOR, c.minor_page_faults),
        ]
    },
};

const SWITCHES: Split<u64> = Split {
    key: attr::CONTEXT_SWITCH_TYPE,
    values: |c| {
        [
            (attr::CONTEXT_SWITCH_VOLUNTARY, c.ctx_switch_voluntary),
            (attr::CONTEXT_SWITCH_INVOLUNTARY, c.ctx_switch_nonvoluntary),
        ]
    },
};

/// Registers every instrument of the catalogue that `options` asks for, plus
/// the agent's own metrics, all reading `cell`. The callbacks live as long as
/// the meter provider.
pub fn register(meter: &Meter, cell: &SnapshotCell, options: InstrumentOptions) {
    updown(meter, cat::PROCESSES, cell, |g| g.procs);
    f64_split(meter, cat::CPU_TIME, cell, CPU, Per::Group);
    u64_split(meter, cat::DISK_IO, cell, DISK, Per::Group);
    u64_split(meter, cat::PAGING_FAULTS, cell, FAULTS, Per::Group);
    u64_split(meter, cat::CONTEXT_SWITCHES, cell, SWITCHES, Per::Group);
    updown(meter, cat::MEMORY_USAGE, cell, |g| g.memory.resident_bytes);
    updown(meter, cat::MEMORY_VIRTUAL, cell, |g| g.memory.virtual_bytes);
    updown(meter, cat::MEMORY_SWAP, cell, |g| g.memory.swap_bytes);
    if options.smaps {
        updown(meter, cat::MEMORY_PROPORTIONAL, cell, |g| {
            g.memory.proportional_bytes
        });
        updown(meter, cat::MEMORY_PROPORTIONAL_SWAP, cell, |g| {
            g.memory.proportional_swap_bytes
        });
    }
    updown(meter, cat::FD_COUNT, cell, |g| g.open_fds);
    fd_utilization(meter, cell);
    updown(meter, cat::THREAD_COUNT, cell, |g| g.num_threads);
    oldest_start_time(meter, cell);
    states(meter, cell);
    wchans(meter, cell);
    if options.threads {
        thread_counts(meter, cell);
        let per = Per::ThreadName;
        f64_split(meter, cat::THREAD_NAME_CPU_TIME, cell, CPU, per);
        u64_split(meter, cat::THREAD_NAME_DISK_IO, cell, DISK, per);
        u64_split(meter, cat::THREAD_NAME_PAGING_FAULTS, cell, FAULTS, per);
        u64_split(
            meter,
            cat::THREAD_NAME_CONTEXT_SWITCHES,
            cell,
            SWITCHES,
            per,
        );
    }
    self_metrics(meter, cell);
}

/// `u64` → `i64` for up-down counters, saturating instead of wrapping.
fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn group_attr(name: &str) -> KeyValue {
    KeyValue::new(attr::GROUP_NAME, name.to_owned())
}

/// Calls `f` with each group of the latest snapshot and its name attribute.
fn each_group(cell: &SnapshotCell, mut f: impl FnMut(&Group, KeyValue)) {
    let snapshot = cell.load();
    for (name, group) in &snapshot.groups {
        f(group, group_attr(name));
    }
}

fn updown(meter: &Meter, spec: MetricSpec, cell: &SnapshotCell, value: fn(&Group) -> u64) {
    let cell = cell.clone();
    meter
        .i64_observable_up_down_counter(spec.name)
        .with_unit(spec.unit)
        .with_description(spec.description)
        .with_callback(move |obs| {
            each_group(&cell, |g, name| obs.observe(signed(value(g)), &[name]));
        })
        .build();
}

fn observe_split<T: Copy>(
    obs: &dyn AsyncInstrument<T>,
    split: &Split<T>,
    counts: &Counts,
    base: &[KeyValue],
) {
    for (value_name, v) in (split.values)(counts) {
        let mut attrs = base.to_vec();
        attrs.push(KeyValue::new(split.key, value_name));
        obs.observe(v, &attrs);
    }
}

/// Whose counts a split counter observes.
#[derive(Clone, Copy)]
enum Per {
    /// Each group's.
    Group,
    /// Each thread name's within each group.
    ThreadName,
}

/// The callback of a counter split by `split`, per group or per thread name.
fn split_callback<T: Copy + Send + Sync + 'static>(
    cell: &SnapshotCell,
    split: Split<T>,
    per: Per,
) -> impl Fn(&dyn AsyncInstrument<T>) + Send + Sync + 'static {
    let cell = cell.clone();
    move |obs| {
        each_group(&cell, |g, name| match per {
            Per::Group => observe_split(obs, &split, &g.counts, &[name]),
            Per::ThreadName => {
                for t in &g.threads {
                    let base = [
                        name.clone(),
                        KeyValue::new(attr::THREAD_NAME, t.name.clone()),
                    ];
                    observe_split(obs, &split, &t.counts, &base);
                }
            }
        });
    }
}

fn f64_split(meter: &Meter, spec: MetricSpec, cell: &SnapshotCell, split: Split<f64>, per: Per) {
    meter
        .f64_observable_counter(spec.name)
        .with_unit(spec.unit)
        .with_description(spec.description)
        .with_callback(split_callback(cell, split, per))
        .build();
}

fn u64_split(meter: &Meter, spec: MetricSpec, cell: &SnapshotCell, split: Split<u64>, per: Per) {
    meter
        .u64_observable_counter(spec.name)
        .with_unit(spec.unit)
        .with_description(spec.description)
        .with_callback(split_callback(cell, split, per))
        .build();
}

fn thread_counts(meter: &Meter, cell: &SnapshotCell) {
    let cell = cell.clone();
    let spec = cat::THREAD_NAME_COUNT;
    meter
        .i64_observable_up_down_counter(spec.name)
        .with_unit(spec.unit)
        .with_description(spec.description)
        .with_callback(move |obs| {
            each_group(&cell, |g, name| {
                for t in &g.threads {
                    obs.observe(
                        signed(t.num_threads),
                        &[
                            name.clone(),
                            KeyValue::new(attr::THREAD_NAME, t.name.clone()),
                        ],
                    );
                }
            });
        })
        .build();
}

fn fd_utilization(meter: &Meter, cell: &SnapshotCell) {
    let cell = cell.clone();
    let spec = cat::FD_LIMIT_UTILIZATION;
    meter
        .f64_observable_gauge(spec.name)
        .with_unit(spec.unit)
        .with_description(spec.description)
        .with_callback(move |obs| {
            each_group(&cell, |g, name| {
                let ratio = if g.procs == 0 || !g.worst_fd_ratio.is_finite() {
                    0.0
                } else {
                    g.worst_fd_ratio
                };
                obs.observe(ratio, &[name]);
            });
        })
        .build();
}

fn oldest_start_time(meter: &Meter, cell: &SnapshotCell) {
    let cell = cell.clone();
    let spec = cat::OLDEST_START_TIME;
    meter
        .f64_observable_gauge(spec.name)
        .with_unit(spec.unit)
        .with_description(spec.description)
        .with_callback(move |obs| {
            each_group(&cell, |g, name| {
                // An empty group has no oldest process: no point at all,
                // rather than a misleading 0 (1970) or a stale time.
                if g.procs > 0
                    && let Some(secs) = g.oldest_start_time.and_then(unix_seconds)
                {
                    obs.observe(secs, &[name]);
                }
            });
        })
        .build();
}

fn states(meter: &Meter, cell: &SnapshotCell) {
    let cell = cell.clone();
    let spec = cat::STATE_COUNT;
    meter
        .i64_observable_up_down_counter(spec.name)
        .with_unit(spec.unit)
        .with_description(spec.description)
        .with_callback(move |obs| {
            each_group(&cell, |g, name| {
                let s = &g.states;
                let values = [s.running, s.sleeping, s.waiting, s.zombie, s.other];
                for (state, v) in attr::PROCESS_STATES.iter().zip(values) {
                    obs.observe(
                        signed(v),
                        &[name.clone(), KeyValue::new(attr::PROCESS_STATE, *state)],
                    );
                }
            });
        })
        .build();
}

fn wchans(meter: &Meter, cell: &SnapshotCell) {
    let cell = cell.clone();
    let spec = cat::WCHAN_COUNT;
    meter
        .i64_observable_up_down_counter(spec.name)
        .with_unit(spec.unit)
        .with_description(spec.description)
        .with_callback(move |obs| {
            each_group(&cell, |g, name| {
                for (wchan, n) in &g.wchans {
                    obs.observe(
                        signed(*n),
                        &[name.clone(), KeyValue::new(attr::WCHAN, wchan.clone())],
                    );
                }
            });
        })
        .build();
}

fn self_metrics(meter: &Meter, cell: &SnapshotCell) {
    let c = cell.clone();
    let spec = cat::COLLECT_DURATION;
    meter
        .f64_observable_gauge(spec.name)
        .with_unit(spec.unit)
        .with_description(spec.description)
        .with_callback(move |obs| {
            let snapshot = c.load();
            if snapshot.taken_at.is_some() {
                obs.observe(snapshot.cycle_duration.as_secs_f64(), &[]);
            }
        })
        .build();

    let c = cell.clone();
    let spec = cat::COLLECT_ERRORS;
    meter
        .u64_observable_counter(spec.name)
        .with_unit(spec.unit)
        .with_description(spec.description)
        .with_callback(move |obs| {
            let snapshot = c.load();
            obs.observe(
                snapshot.errors.read,
                &[KeyValue::new(attr::ERROR_TYPE, attr::ERROR_READ)],
            );
            obs.observe(
                snapshot.errors.partial,
                &[KeyValue::new(attr::ERROR_TYPE, attr::ERROR_PARTIAL)],
            );
        })
        .build();

    self_updown(meter, cat::TRACKED_PROCESSES, cell, |s| s.tracked_processes);
    self_updown(meter, cat::GROUPS, cell, Snapshot::group_count);
}

fn self_updown(meter: &Meter, spec: MetricSpec, cell: &SnapshotCell, value: fn(&Snapshot) -> u64) {
    let cell = cell.clone();
    meter
        .i64_observable_up_down_counter(spec.name)
        .with_unit(spec.unit)
        .with_description(spec.description)
        .with_callback(move |obs| obs.observe(signed(value(&cell.load())), &[]))
        .build();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
    use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
    use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};

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

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<Export>>>);

    fn attrs<'a>(kvs: impl Iterator<Item = &'a KeyValue>) -> BTreeMap<String, String> {
        kvs.map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect()
    }

    impl PushMetricExporter for Capture {
        async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
            let mut out: BTreeMap<String, Vec<Point>> = BTreeMap::new();
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
                            let kind = if s.is_monotonic() {
                                "counter"
                            } else {
                                "updown"
                            };
                            for p in s.data_points() {
                                push(kind, attrs(p.attributes()), p.value());
                            }
                        }
                        AggregatedMetrics::U64(MetricData::Sum(s)) => {
                            let kind = if s.is_monotonic() {
                                "counter"
                            } else {
                                "updown"
                            };
                            for p in s.data_points() {
                                push(kind, attrs(p.attributes()), p.value() as f64);
                            }
                        }
                        AggregatedMetrics::I64(MetricData::Sum(s)) => {
                            let kind = if s.is_monotonic() {
                                "counter"
                            } else {
                                "updown"
                            };
                            for p in s.data_points() {
                                push(kind, attrs(p.attributes()), p.value() as f64);
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
            self.0.lock().unwrap().push(out);
            Ok(())
        }
        fn force_flush(&self) -> OTelSdkResult {
            Ok(())
        }
        fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
            Ok(())
        }
        fn temporality(&self) -> Temporality {
            Temporality::Cumulative
        }
    }

    struct Harness {
        provider: SdkMeterProvider,
        capture: Capture,
        cell: SnapshotCell,
    }

    impl Harness {
        fn new(options: InstrumentOptions) -> Self {
            let capture = Capture::default();
            let reader = PeriodicReader::builder(capture.clone())
                .with_interval(Duration::from_secs(3600))
                .build();
            let provider = SdkMeterProvider::builder().with_reader(reader).build();
            let cell = SnapshotCell::new();
            register(&provider.meter("test"), &cell, options);
            Harness {
                provider,
                capture,
                cell,
            }
        }

        fn export(&self, snapshot: Snapshot) -> BTreeMap<String, Vec<Point>> {
            self.cell.publish(snapshot);
            self.provider.force_flush().unwrap();
            self.capture.0.lock().unwrap().last().cloned().unwrap()
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
}
