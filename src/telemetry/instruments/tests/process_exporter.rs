//! The process-exporter table: the values of the OpenTelemetry names
//! under process-exporter's names, labels and kinds, and nothing under the
//! OpenTelemetry names.

use super::*;

/// One export of the `web` group under process-exporter's names, with
/// every optional instrument on.
fn full_export() -> Export {
    let h = Harness::new(InstrumentOptions {
        threads: true,
        smaps: true,
        table: &cat::PROCESS_EXPORTER,
    });
    h.export(snapshot_with(&[("web", web_group())]))
}

/// A metric of the group family.
fn pe(name: &str) -> String {
    format!("namedprocess_namegroup_{name}")
}

const WEB: [(&str, &str); 1] = [("groupname", "web")];

/// The `web` group's labels with one more.
fn with(k: &'static str, v: &'static str) -> [(&'static str, &'static str); 2] {
    [("groupname", "web"), (k, v)]
}

/// The `web` group's `io` threads' labels with one more.
fn io_thread(k: &'static str, v: &'static str) -> [(&'static str, &'static str); 3] {
    [("groupname", "web"), ("threadname", "io"), (k, v)]
}

#[test]
fn process_exporter_names_carry_the_same_values() {
    let out = full_export();
    let g = WEB;
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
}

#[test]
fn process_exporter_gauges_carry_the_same_memory_descriptors_and_states() {
    let out = full_export();
    let g = WEB;
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
}

#[test]
fn process_exporter_thread_names_carry_the_same_values() {
    let out = full_export();
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
            &io_thread("mode", "user")
        ),
        Some(1.25)
    );
    assert_eq!(
        value(
            &out,
            &pe("thread_io_bytes_total"),
            &io_thread("iomode", "write")
        ),
        Some(64.0)
    );
    assert_eq!(
        value(
            &out,
            &pe("thread_context_switches_total"),
            &io_thread("ctxswitchtype", "voluntary")
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
}

#[test]
fn process_exporter_scrape_errors_carry_the_cycle_s_errors() {
    let out = full_export();
    assert_eq!(
        value(&out, "namedprocess_scrape_procread_errors", &[]),
        Some(2.0)
    );
    assert_eq!(
        value(&out, "namedprocess_scrape_partial_errors", &[]),
        Some(7.0)
    );
}

#[test]
fn process_exporter_kinds_and_units_are_the_table_s_and_no_otel_name_is_left() {
    let out = full_export();
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
