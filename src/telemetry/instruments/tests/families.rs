//! Both tables against what process-exporter really exports: the family
//! names, their Prometheus kinds and their label keys and values, read
//! from the output of Debian's `prometheus-process-exporter` kept in the
//! fixtures.

use super::*;

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
    let text = include_str!("../../../../tests/fixtures/process-exporter/metrics.txt");
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
