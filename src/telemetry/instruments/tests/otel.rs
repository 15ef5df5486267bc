//! The OpenTelemetry names: every metric of the table with its unit, value,
//! kind and attributes; what is left out when options are off; what an
//! emptied group, a first cycle and a huge value report.

use super::*;

/// One export of the `web` group with every optional instrument on.
fn full_export() -> Export {
    let h = Harness::new(InstrumentOptions {
        threads: true,
        smaps: true,
        ..InstrumentOptions::default()
    });
    h.export(snapshot_with(&[("web", web_group())]))
}

/// The `web` group's attributes with one more.
fn with(k: &'static str, v: &'static str) -> [(&'static str, &'static str); 2] {
    [("procgroup.name", "web"), (k, v)]
}

/// The `web` group's `io` threads' attributes with one more.
fn io_thread(k: &'static str, v: &'static str) -> [(&'static str, &'static str); 3] {
    [("procgroup.name", "web"), ("thread.name", "io"), (k, v)]
}

const WEB: [(&str, &str); 1] = [("procgroup.name", "web")];

#[test]
fn every_metric_of_the_table_is_observed_with_its_unit_and_attributes() {
    let out = full_export();
    for spec in cat::GROUP_METRICS.iter().chain(cat::SELF_METRICS.iter()) {
        let points = out
            .get(spec.name)
            .unwrap_or_else(|| panic!("{} missing", spec.name));
        assert!(points.iter().all(|p| p.unit == spec.unit), "{}", spec.name);
    }
}

#[test]
fn group_counters_carry_the_group_s_totals_split_by_their_attribute() {
    let out = full_export();
    assert_eq!(value(&out, "procgroup.processes", &WEB), Some(3.0));
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
}

#[test]
fn group_gauges_carry_the_group_s_memory_descriptors_and_start() {
    let out = full_export();
    let g = WEB;
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
}

#[test]
fn states_and_wait_channels_count_by_their_attribute() {
    let out = full_export();
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
}

#[test]
fn thread_name_metrics_carry_the_thread_s_counts() {
    let out = full_export();
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
            &io_thread("cpu.mode", "user")
        ),
        Some(1.25)
    );
    assert_eq!(
        value(
            &out,
            "procgroup.thread_name.disk.io",
            &io_thread("disk.io.direction", "write")
        ),
        Some(64.0)
    );
    assert_eq!(
        value(
            &out,
            "procgroup.thread_name.paging.faults",
            &io_thread("system.paging.fault.type", "major")
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &out,
            "procgroup.thread_name.context_switches",
            &io_thread("process.context_switch.type", "voluntary")
        ),
        Some(9.0)
    );
}

#[test]
fn self_metrics_carry_the_cycle_s_duration_errors_and_node_cpu() {
    let out = full_export();
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
}

#[test]
fn each_metric_has_the_kind_of_the_table() {
    let out = full_export();
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
