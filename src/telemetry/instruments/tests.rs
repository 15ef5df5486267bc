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

#[test]
fn every_metric_of_the_table_is_observed_with_its_unit_and_attributes() {
    let h = Harness::new(InstrumentOptions {
        threads: true,
        smaps: true,
        ..InstrumentOptions::default()
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
    assert_eq!(value(&out, "procgroups.node.cpu.time", &[]), Some(40.0));
    assert_eq!(
        value(&out, "procgroups.unattributed.cpu.time", &[]),
        Some(9.5)
    );
    assert_eq!(
        value(
            &out,
            "procgroups.accounting.mode",
            &[("procgroups.accounting.mode", "children")]
        ),
        Some(1.0)
    );
    assert_eq!(value(&out, "procgroups.exits.records", &[]), Some(1234.0));
    assert_eq!(value(&out, "procgroups.exits.overflows", &[]), Some(5.0));
    assert_eq!(value(&out, "procgroups.exits.outages", &[]), Some(2.0));
    assert_eq!(value(&out, "procgroups.exits.malformed", &[]), Some(1.0));

    let kind = |name: &str| out[name][0].kind;
    assert_eq!(kind("procgroups.node.cpu.time"), "counter");
    assert_eq!(kind("procgroups.unattributed.cpu.time"), "counter");
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
        ..InstrumentOptions::default()
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
    assert!(!out.contains_key("procgroups.unattributed.cpu.time"));
    // No listener (the children mode, or no cycle yet): no exit counters.
    assert!(!out.contains_key("procgroups.exits.records"));
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

/// The label set of one family of process-exporter's real output.
#[derive(Debug, Default, PartialEq)]
struct Labels {
    keys: std::collections::BTreeSet<String>,
    /// Values of each key other than the group, thread and wait channel.
    values: BTreeMap<String, std::collections::BTreeSet<String>>,
}

/// Families (`# TYPE` name → kind) and their labels from the output of
/// Debian's `prometheus-process-exporter` kept in the fixtures.
fn process_exporter_families() -> BTreeMap<String, (String, Labels)> {
    let text = include_str!("../../../tests/fixtures/process-exporter/metrics.txt");
    let mut out: BTreeMap<String, (String, Labels)> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE namedprocess_") {
            let (name, kind) = rest.split_once(' ').unwrap();
            out.insert(
                format!("namedprocess_{name}"),
                (kind.into(), Labels::default()),
            );
        } else if line.starts_with("namedprocess_") {
            let series = line.rsplit_once(' ').unwrap().0;
            let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
            let entry = &mut out.get_mut(name).unwrap().1;
            for pair in labels
                .trim_end_matches('}')
                .split(',')
                .filter(|p| !p.is_empty())
            {
                let (k, v) = pair.split_once('=').unwrap();
                entry.keys.insert(k.into());
                if !["groupname", "threadname", "wchan"].contains(&k) {
                    let v = v.trim_matches('"').to_owned();
                    entry.values.entry(k.into()).or_default().insert(v);
                }
            }
        }
    }
    out
}

/// What a table says of each of its metrics: the Prometheus kind the
/// Collector gives it and its labels.
fn table_families(t: &MetricTable) -> BTreeMap<String, (String, Labels)> {
    let mut out = BTreeMap::new();
    let mut add =
        |family: &[MetricSpec], split: Option<(&str, &[&str])>, base: &[&str], kind: &str| {
            for spec in family {
                let mut labels = Labels::default();
                labels.keys.extend(base.iter().map(|k| k.to_string()));
                if let Some((key, values)) = split {
                    labels.keys.insert(key.into());
                    labels
                        .values
                        .insert(key.into(), values.iter().map(|v| v.to_string()).collect());
                }
                let old = out.insert(spec.name.to_owned(), (kind.to_owned(), labels));
                assert!(old.is_none(), "{} twice in the table", spec.name);
            }
        };
    fn parts<const N: usize>(
        f: &Family<N>,
    ) -> (Vec<MetricSpec>, Option<(&'static str, &[&'static str])>) {
        match f {
            Family::Split { spec, key, values } => (vec![*spec], Some((*key, values.as_slice()))),
            Family::Separate(specs) => (specs.to_vec(), None),
        }
    }
    let group = [t.group_name];
    let thread = [t.group_name, t.thread_name];
    add(
        &[t.processes, t.fd_count, t.thread_count],
        None,
        &group,
        "gauge",
    );
    add(
        &[t.fd_limit_utilization, t.oldest_start_time],
        None,
        &group,
        "gauge",
    );
    let (specs, split) = parts(&t.cpu_time);
    add(&specs, split, &group, "counter");
    for f in [t.disk_io, t.paging_faults, t.context_switches] {
        let (specs, split) = parts(&f);
        add(&specs, split, &group, "counter");
    }
    for f in [t.memory, t.states] {
        let (specs, split) = parts(&f);
        add(&specs, split, &group, "gauge");
    }
    add(&[t.wchan.0], None, &[t.group_name, t.wchan.1], "gauge");
    add(&[t.thread_name_count], None, &thread, "gauge");
    let (specs, split) = parts(&t.thread_name_cpu_time);
    add(&specs, split, &thread, "counter");
    for f in [
        t.thread_name_disk_io,
        t.thread_name_paging_faults,
        t.thread_name_context_switches,
    ] {
        let (specs, split) = parts(&f);
        add(&specs, split, &thread, "counter");
    }
    let (specs, split) = parts(&t.errors);
    let kind = match t.errors_kind {
        Kind::Counter => "counter",
        Kind::UpDown => "gauge",
    };
    add(&specs, split, &[], kind);
    out
}

#[test]
fn the_process_exporter_table_has_every_family_and_label_of_the_real_exporter() {
    let real = process_exporter_families();
    let ours = table_families(&cat::PROCESS_EXPORTER);
    // Every table metric once (checked while building), each one of
    // process-exporter's families, with its label keys and fixed values.
    for (name, (kind, labels)) in &ours {
        let (real_kind, real_labels) = real
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not one of process-exporter's families"));
        assert_eq!(labels, real_labels, "labels of {name}");
        // The error counts keep their names as gauges (see the table).
        if !name.starts_with("namedprocess_scrape_") {
            assert_eq!(kind, real_kind, "kind of {name}");
        } else {
            assert_eq!((kind.as_str(), real_kind.as_str()), ("gauge", "counter"));
        }
    }
    // Every family of process-exporter but the general scrape error count,
    // which has no counterpart (a failed cycle is logged, not counted).
    let missing: Vec<&String> = real.keys().filter(|n| !ours.contains_key(*n)).collect();
    assert_eq!(missing, ["namedprocess_scrape_errors"]);
    // The translation of the Collector adds no suffix: units only where the
    // name already ends in them, annotations (dropped) elsewhere.
    for spec in cat::PROCESS_EXPORTER.specs() {
        let bare = spec.name.trim_end_matches("_total");
        match spec.unit {
            "s" => assert!(bare.ends_with("_seconds"), "{}", spec.name),
            "By" => assert!(bare.ends_with("_bytes"), "{}", spec.name),
            "1" => assert!(bare.ends_with("_ratio"), "{}", spec.name),
            unit => assert!(
                unit.starts_with('{') && unit.ends_with('}'),
                "{}",
                spec.name
            ),
        }
    }
}

#[test]
fn the_otel_table_keeps_the_catalogue_names_once_each() {
    let names: Vec<&str> = cat::OTEL.specs().iter().map(|s| s.name).collect();
    let mut want: Vec<&str> = cat::GROUP_METRICS.iter().map(|s| s.name).collect();
    want.push(cat::COLLECT_ERRORS.name);
    assert_eq!(names, want);
    let families = table_families(&cat::OTEL);
    assert_eq!(families.len(), names.len());
    assert_eq!(
        families["procgroup.cpu.time"].1.keys,
        ["cpu.mode", "procgroup.name"].map(String::from).into()
    );
}

#[test]
fn process_exporter_names_carry_the_same_values() {
    let h = Harness::new(InstrumentOptions {
        threads: true,
        smaps: true,
        table: &cat::PROCESS_EXPORTER,
    });
    let out = h.export(snapshot_with(&[("web", web_group())]));
    let g = [("groupname", "web")];
    let with = |k: &'static str, v: &'static str| [("groupname", "web"), (k, v)];
    let thread =
        |k: &'static str, v: &'static str| [("groupname", "web"), ("threadname", "io"), (k, v)];
    let pe = |name: &str| format!("namedprocess_namegroup_{name}");
    assert_eq!(value(&out, &pe("num_procs"), &g), Some(3.0));
    assert_eq!(
        value(&out, &pe("cpu_seconds_total"), &with("mode", "user")),
        Some(2.5)
    );
    assert_eq!(
        value(&out, &pe("cpu_seconds_total"), &with("mode", "system")),
        Some(0.5)
    );
    assert_eq!(value(&out, &pe("read_bytes_total"), &g), Some(100.0));
    assert_eq!(value(&out, &pe("write_bytes_total"), &g), Some(200.0));
    assert_eq!(value(&out, &pe("major_page_faults_total"), &g), Some(3.0));
    assert_eq!(value(&out, &pe("minor_page_faults_total"), &g), Some(300.0));
    let switches = pe("context_switches_total");
    assert_eq!(
        value(&out, &switches, &with("ctxswitchtype", "voluntary")),
        Some(50.0)
    );
    assert_eq!(
        value(&out, &switches, &with("ctxswitchtype", "nonvoluntary")),
        Some(5.0)
    );
    let memory = pe("memory_bytes");
    for (memtype, v) in [
        ("resident", 1000.0),
        ("virtual", 5000.0),
        ("swapped", 20.0),
        ("proportionalResident", 900.0),
        ("proportionalSwapped", 10.0),
    ] {
        assert_eq!(
            value(&out, &memory, &with("memtype", memtype)),
            Some(v),
            "{memtype}"
        );
    }
    assert_eq!(value(&out, &pe("open_filedesc"), &g), Some(40.0));
    assert_eq!(value(&out, &pe("worst_fd_ratio"), &g), Some(0.125));
    assert_eq!(value(&out, &pe("num_threads"), &g), Some(7.0));
    assert_eq!(
        value(&out, &pe("oldest_start_time_seconds"), &g),
        Some(1_600_000_000.0)
    );
    assert_eq!(
        value(&out, &pe("states"), &with("state", "Sleeping")),
        Some(5.0)
    );
    assert_eq!(
        value(&out, &pe("states"), &with("state", "Zombie")),
        Some(0.0)
    );
    assert_eq!(
        value(
            &out,
            &pe("threads_wchan"),
            &with("wchan", "futex_wait_queue")
        ),
        Some(4.0)
    );
    assert_eq!(
        value(
            &out,
            &pe("thread_count"),
            &[("groupname", "web"), ("threadname", "io")]
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &out,
            &pe("thread_cpu_seconds_total"),
            &thread("mode", "user")
        ),
        Some(1.25)
    );
    assert_eq!(
        value(
            &out,
            &pe("thread_io_bytes_total"),
            &thread("iomode", "write")
        ),
        Some(64.0)
    );
    assert_eq!(
        value(
            &out,
            &pe("thread_context_switches_total"),
            &thread("ctxswitchtype", "voluntary")
        ),
        Some(9.0)
    );
    assert_eq!(
        value(
            &out,
            &pe("thread_major_page_faults_total"),
            &[("groupname", "web"), ("threadname", "io")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(&out, "namedprocess_scrape_procread_errors", &[]),
        Some(2.0)
    );
    assert_eq!(
        value(&out, "namedprocess_scrape_partial_errors", &[]),
        Some(7.0)
    );

    // Kinds and units, as the table gives them; nothing under the OTel names.
    for spec in cat::PROCESS_EXPORTER.specs() {
        let points = out
            .get(spec.name)
            .unwrap_or_else(|| panic!("{} missing", spec.name));
        assert!(points.iter().all(|p| p.unit == spec.unit), "{}", spec.name);
        let want = if spec.name.ends_with("_total") {
            "counter"
        } else if spec.name.ends_with("worst_fd_ratio")
            || spec.name.ends_with("oldest_start_time_seconds")
        {
            "gauge"
        } else {
            "updown"
        };
        assert!(
            points.iter().all(|p| p.kind == want),
            "{}: {points:?}",
            spec.name
        );
    }
    assert!(!out.keys().any(|k| k.starts_with("procgroup.")), "{out:?}");
}

#[test]
fn process_exporter_names_without_smaps_leave_out_the_proportional_memory() {
    let h = Harness::new(InstrumentOptions {
        table: &cat::PROCESS_EXPORTER,
        ..InstrumentOptions::default()
    });
    let out = h.export(snapshot_with(&[("web", web_group())]));
    let mut memtypes: Vec<&str> = out["namedprocess_namegroup_memory_bytes"]
        .iter()
        .map(|p| p.attrs["memtype"].as_str())
        .collect();
    memtypes.sort_unstable();
    assert_eq!(memtypes, ["resident", "swapped", "virtual"]);
    assert!(!out.keys().any(|k| k.contains("thread_")), "{out:?}");
}

#[test]
fn a_group_split_by_container_carries_its_container_attributes_in_both_tables() {
    use crate::containers::{ContainerId, ContainerInfo, PodUid, split};
    const ID: &str = "4c1fd3e3b4a4e3a1b2f8a6e8d59a0c1f2e3d4c5b6a7980123456789abcdef012";
    const UID: &str = "0b7e1c3a-5d2f-4e6a-9b8c-7d6e5f4a3b2c";
    let info = ContainerInfo {
        container_id: ContainerId::parse(ID),
        pod_uid: PodUid::parse(UID),
        namespace: Some("shop".into()),
        pod_name: Some("cart-7d9f".into()),
        container_name: Some("api".into()),
    };
    let key = split::encode("web", &info);
    let want = [
        ("container.id", ID),
        ("k8s.pod.uid", UID),
        ("k8s.pod.name", "cart-7d9f"),
        ("k8s.namespace.name", "shop"),
        ("k8s.container.name", "api"),
    ];
    for (table, group_key) in [
        (&cat::OTEL, "procgroup.name"),
        (&cat::PROCESS_EXPORTER, "groupname"),
    ] {
        let h = Harness::new(InstrumentOptions {
            threads: true,
            smaps: true,
            table,
        });
        let out = h.export(snapshot_with(&[
            (key.as_str(), web_group()),
            ("plain", web_group()),
        ]));
        let mut split_points = 0;
        let mut plain_points = 0;
        for (metric, points) in &out {
            for p in points {
                match p.attrs.get(group_key).map(String::as_str) {
                    Some("web") => {
                        split_points += 1;
                        for (k, v) in want {
                            assert_eq!(p.attrs.get(k).map(String::as_str), Some(v), "{metric}");
                        }
                    }
                    Some("plain") => {
                        plain_points += 1;
                        for (k, _) in want {
                            assert!(!p.attrs.contains_key(k), "{metric}: {:?}", p.attrs);
                        }
                    }
                    Some(other) => panic!("{metric}: unexpected group {other:?}"),
                    None => {}
                }
            }
        }
        assert!(split_points > 20, "{split_points}");
        assert_eq!(split_points, plain_points);
    }
}
