//! `--metric-names process-exporter` against process-exporter itself:
//! Debian's `prometheus-process-exporter` and the agent watch the same
//! workload with the same rules file; the agent pushes through the upstream
//! Collector running the shipped `otel-collector.yaml`, whose Prometheus
//! exporter translates with its default settings. Both endpoints are
//! scraped and compared series by series: every family and label set that
//! process-exporter gives for the workload's group is in the Collector's
//! output with the same `# TYPE`; the process, thread and descriptor counts
//! are equal, memory is within a few percent.
//!
//! The programs are looked up as in `upstream_collector.rs`
//! (`$PROCESS_EXPORTER`, then `PATH`); a missing one skips the test with a
//! message, or fails it under CI.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use super::upstream_collector::{Collector, Sample, http_get, otelcol, parse_exposition};
use crate::support::procs::{Agent, Workload, agent_command, free_port, unique_name};
use crate::support::tools::{self, PROCESS_EXPORTER};

/// Labels that the Collector adds to every series and process-exporter
/// does not have: the agent's resource attributes (the shipped file turns
/// on `resource_to_telemetry_conversion`), `job`/`instance` from
/// `service.name`/`service.instance.id`, the SDK's `telemetry.sdk.*`, and
/// the instrumentation scope.
const ADDED_LABEL_PREFIXES: [&str; 7] = [
    "telemetry_sdk_",
    "host_",
    "service_",
    "otel_scope_",
    "job",
    "instance",
    "k8s_",
];

/// Debian's process-exporter on a free port; killed when dropped.
struct ProcessExporter {
    child: Child,
    port: u16,
}

impl ProcessExporter {
    fn start(binary: &Path, rules: &Path) -> ProcessExporter {
        let port = free_port();
        let child = Command::new(binary)
            .arg("-config.path")
            .arg(rules)
            .args(["-threads=true", "-gather-smaps=true"])
            .arg("-web.listen-address")
            .arg(format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let exporter = ProcessExporter { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while http_get(port, "/metrics").map(|(status, _)| status) != Some(200) {
            assert!(
                Instant::now() < deadline,
                "process-exporter does not answer"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        exporter
    }

    fn scrape(&self) -> String {
        http_get(self.port, "/metrics").unwrap().1
    }
}

impl Drop for ProcessExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A series: name and labels, the added ones left out.
type Series = (String, BTreeMap<String, String>);

fn is_added(label: &str) -> bool {
    ADDED_LABEL_PREFIXES.iter().any(|p| label.starts_with(p))
}

fn series(s: &Sample) -> Series {
    let labels = s
        .labels
        .iter()
        .filter(|(k, _)| !is_added(k))
        .cloned()
        .collect();
    (s.name.clone(), labels)
}

/// The samples of group `name` (and the group-less scrape error counts),
/// by series, and the `# TYPE` of every family.
fn of_group(body: &str, name: &str) -> (BTreeMap<Series, f64>, BTreeMap<String, String>) {
    let (samples, types) = parse_exposition(body);
    let values = samples
        .iter()
        .filter(|s| {
            s.name.starts_with("namedprocess_")
                && (s.label("groupname") == Some(name)
                    || s.name.starts_with("namedprocess_scrape_"))
        })
        .map(|s| (series(s), s.value))
        .collect();
    (values, types.into_iter().collect())
}

fn value(values: &BTreeMap<Series, f64>, family: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let key = (
        family.to_owned(),
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    values.get(&key).copied()
}

/// Both scrapes of one workload (two processes, named threads, open files,
/// touched memory): the Collector's, once the group was complete there,
/// and process-exporter's right after; captured once, the programs
/// stopped, for the tests below. `None` where a program is missing.
struct Compared {
    name: String,
    /// The Collector's scrape, whole and as the group's series and types.
    body: String,
    ours: BTreeMap<Series, f64>,
    our_types: BTreeMap<String, String>,
    /// process-exporter's scrape, likewise.
    theirs_body: String,
    theirs: BTreeMap<Series, f64>,
    their_types: BTreeMap<String, String>,
}

impl Compared {
    fn group(&self) -> [(&str, &str); 1] {
        [("groupname", self.name.as_str())]
    }
}

fn compared() -> Option<&'static Compared> {
    static RUN: LazyLock<Option<Compared>> = LazyLock::new(scrape_both);
    RUN.as_ref()
}

fn scrape_both() -> Option<Compared> {
    let otelcol = otelcol()?;
    let exporter_bin = tools::require(&PROCESS_EXPORTER)?;
    let dir = tempfile::tempdir().unwrap();
    let name = unique_name("pgpe");
    // Two processes (the workload and a child of the same name), named
    // threads, open files, touched memory; nothing spins, so the gauges
    // hold still between the two scrapes.
    let workload = Workload::named(&name)
        .threads(3, "pgpethread")
        .files(4)
        .touch_kib(8192)
        .children(1, &name)
        .spawn();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(
        &rules,
        format!("process_names:\n  - name: \"{{{{.Comm}}}}\"\n    comm:\n      - {name}\n"),
    )
    .unwrap();

    let exporter = ProcessExporter::start(&exporter_bin, &rules);
    let collector = Collector::start(&otelcol);
    let mut cmd = agent_command();
    cmd.arg("--config")
        .arg(&rules)
        .args(["--interval", "500ms"])
        .args(["--metric-names", "process-exporter"])
        .args(["--threads", "true", "--gather-smaps", "true"])
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{}", collector.grpc),
        );
    let agent = Agent::spawn(cmd);

    // The shipped batch processor holds points up to 5 s; wait until the
    // group is complete (its per-thread-name families included).
    let deadline = Instant::now() + Duration::from_secs(30);
    let (ours, our_types, body) = loop {
        let body = http_get(collector.prometheus, "/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default();
        let (values, types) = of_group(&body, &name);
        let procs = value(
            &values,
            "namedprocess_namegroup_num_procs",
            &[("groupname", &name)],
        );
        let threads = values
            .keys()
            .any(|(family, _)| family == "namedprocess_namegroup_thread_count");
        if procs == Some(2.0) && threads {
            break (values, types, body);
        }
        assert!(
            Instant::now() < deadline,
            "no complete group {name} at the Collector:\n{body}\ncollector:\n{}\nagent:\n{}",
            collector.log(),
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let theirs_body = exporter.scrape();
    let (theirs, their_types) = of_group(&theirs_body, &name);
    assert!(
        value(
            &theirs,
            "namedprocess_namegroup_num_procs",
            &[("groupname", &name)]
        ) == Some(2.0),
        "process-exporter does not see the workload:\n{theirs_body}"
    );
    drop(agent);
    workload.stop();
    Some(Compared {
        name,
        body,
        ours,
        our_types,
        theirs_body,
        theirs,
        their_types,
    })
}

#[test]
fn process_exporter_names_through_the_collector_match_process_exporter() {
    let Some(c) = compared() else { return };
    let (ours, theirs, body) = (&c.ours, &c.theirs, &c.body);

    // Every series of process-exporter for the group is at the Collector,
    // with the same type; the scrape error counts keep their names but are
    // gauges (the Collector would add `_total` to a counter).
    let mut missing = Vec::new();
    for (series, _) in theirs.iter() {
        let (family, labels) = series;
        // A wait channel is where a thread sleeps at the moment of reading:
        // compared as a total below, not channel by channel.
        // The general scrape error count has no counterpart (checked below).
        if family == "namedprocess_namegroup_threads_wchan"
            || family == "namedprocess_scrape_errors"
        {
            continue;
        }
        if !ours.contains_key(series) {
            missing.push(format!("{family}{labels:?}"));
        }
        let (want, got) = (c.their_types.get(family), c.our_types.get(family));
        if family.starts_with("namedprocess_scrape_") {
            assert_eq!(
                (want.map(String::as_str), got.map(String::as_str)),
                (Some("counter"), Some("gauge")),
                "{family}"
            );
        } else {
            assert_eq!(want, got, "# TYPE of {family}");
        }
    }
    assert!(
        missing.is_empty(),
        "series of process-exporter missing at the Collector: {missing:#?}\ncollector:\n{body}\nprocess-exporter:\n{}",
        c.theirs_body
    );
    // ...except the general scrape error count, which has no counterpart.
    let families = |v: &BTreeMap<Series, f64>| -> BTreeSet<String> {
        v.keys().map(|(f, _)| f.clone()).collect()
    };
    let only_theirs: Vec<String> = families(theirs)
        .difference(&families(ours))
        .cloned()
        .collect();
    assert_eq!(only_theirs, ["namedprocess_scrape_errors"], "{body}");

    // What a user sees that process-exporter does not give: the labels the
    // Collector adds, on every series.
    let (samples, types) = parse_exposition(body);
    let added: BTreeSet<&str> = samples
        .iter()
        .filter(|s| s.label("groupname") == Some(c.name.as_str()))
        .flat_map(|s| s.labels.iter().map(|(k, _)| k.as_str()))
        .filter(|k| is_added(k))
        .collect();
    let others: BTreeSet<&str> = types
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| !n.starts_with("namedprocess_"))
        .collect();
    println!("labels added by the Collector: {added:?}");
    println!("other families at the Collector: {others:?}");
}

#[test]
fn process_thread_and_descriptor_counts_through_the_collector_equal_process_exporter_s() {
    let Some(c) = compared() else { return };
    let (ours, theirs, name) = (&c.ours, &c.theirs, c.name.as_str());
    let g = c.group();
    for family in [
        "namedprocess_namegroup_num_procs",
        "namedprocess_namegroup_num_threads",
        "namedprocess_namegroup_open_filedesc",
    ] {
        assert_eq!(
            value(ours, family, &g),
            value(theirs, family, &g),
            "{family}"
        );
    }
    // Thread names: process-exporter leaves single-threaded processes out
    // of its per-thread-name families; the agent counts them. The child is
    // single-threaded, so the main thread's name counts one more here.
    let family = "namedprocess_namegroup_thread_count";
    let t = |thread_name: &'static str| [("groupname", name), ("threadname", thread_name)];
    assert_eq!(value(ours, family, &t("pgpethread")), Some(3.0));
    assert_eq!(value(theirs, family, &t("pgpethread")), Some(3.0));
    let main = [("groupname", name), ("threadname", name)];
    assert_eq!(value(theirs, family, &main), Some(1.0));
    assert_eq!(value(ours, family, &main), Some(2.0));
}

#[test]
fn threads_by_wait_channel_through_the_collector_count_each_thread_once() {
    let Some(c) = compared() else { return };
    let (ours, theirs) = (&c.ours, &c.theirs);
    let wchan_total = |v: &BTreeMap<Series, f64>| -> f64 {
        v.iter()
            .filter(|((f, _), _)| f == "namedprocess_namegroup_threads_wchan")
            .map(|(_, n)| n)
            .sum()
    };
    let wchans = |v: &BTreeMap<Series, f64>| -> Vec<String> {
        v.iter()
            .filter(|((f, _), _)| f == "namedprocess_namegroup_threads_wchan")
            .map(|((_, l), n)| format!("{}={n}", l["wchan"]))
            .collect()
    };
    // process-exporter counts the wait channel of a multi-threaded
    // process's main thread twice (as the process's and as a thread's); the
    // agent counts every thread once. One process here has threads.
    let threads = value(ours, "namedprocess_namegroup_num_threads", &c.group()).unwrap();
    assert_eq!(
        (wchan_total(ours), wchan_total(theirs)),
        (threads, threads + 1.0),
        "threads by wchan: {:?} at the Collector, {:?} from process-exporter",
        wchans(ours),
        wchans(theirs)
    );
}

#[test]
fn memory_through_the_collector_is_within_a_few_percent_of_process_exporter_s() {
    let Some(c) = compared() else { return };
    for memtype in ["resident", "virtual", "proportionalResident"] {
        let m = [("groupname", c.name.as_str()), ("memtype", memtype)];
        let family = "namedprocess_namegroup_memory_bytes";
        let (a, b) = (
            value(&c.ours, family, &m).unwrap(),
            value(&c.theirs, family, &m).unwrap(),
        );
        assert!(
            b > 0.0 && (a - b).abs() <= 0.05 * b,
            "{memtype}: {a} at the Collector, {b} from process-exporter"
        );
    }
}
