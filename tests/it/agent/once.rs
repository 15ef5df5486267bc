//! `procgroups --once`: two cycles, the second printed as the JSON object of
//! the design (exactly its keys) or as an aligned table, with a note that
//! its counters cover the window between the two samples; no collector.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use crate::support::procs::{Workload, run_once, unique_name};

fn keys(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The counters of a group and of each of its thread names.
const COUNTER_KEYS: [&str; 8] = [
    "cpu_user_seconds",
    "cpu_system_seconds",
    "read_bytes",
    "write_bytes",
    "major_page_faults",
    "minor_page_faults",
    "voluntary_context_switches",
    "nonvoluntary_context_switches",
];

/// What `--once --output json` printed for a workload of known shape (one
/// process, 3 named worker threads, 4 files), with the workload's open
/// descriptors; captured once, the workload stopped, for each test to read.
struct OnceJson {
    name: String,
    doc: serde_json::Value,
    fds: usize,
}

impl OnceJson {
    fn group(&self) -> &serde_json::Value {
        &self.doc["groups"][&self.name]
    }
}

fn once_json() -> &'static OnceJson {
    static RUN: LazyLock<OnceJson> = LazyLock::new(|| {
        let name = unique_name("pgoj");
        let workload = Workload::named(&name)
            .threads(3, "pgojworker")
            .files(4)
            .spawn();
        let out = run_once(&[
            "--procnames",
            &name,
            "--threads",
            "true",
            "--output",
            "json",
            "--once-delay",
            "200ms",
        ]);
        assert!(out.status.success(), "{out:?}");
        let doc = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
        let fds = 3 + 4 + workload.inherited_fds;
        assert_eq!(workload.open_fds(), fds);
        workload.stop();
        OnceJson { name, doc, fds }
    });
    &RUN
}

#[test]
fn once_json_has_exactly_the_documented_keys() {
    let run = once_json();
    let v = &run.doc;
    assert_eq!(keys(v), set(&["groups", "errors", "coverage"]));
    assert_eq!(keys(&v["errors"]), set(&["read", "partial"]));
    assert_eq!(
        keys(&v["coverage"]),
        set(&[
            "node_cpu_seconds",
            "attributed_cpu_seconds",
            "unattributed_cpu_seconds",
            "ratio",
        ])
    );
    assert_eq!(keys(&v["groups"]), set(&[&run.name]));
}

#[test]
fn once_json_groups_and_thread_names_have_exactly_the_documented_keys() {
    let run = once_json();
    let g = run.group();
    let mut group_keys = set(&["procs", "threads"]);
    group_keys.extend(set(&COUNTER_KEYS));
    group_keys.extend(set(&[
        "resident_bytes",
        "virtual_bytes",
        "swap_bytes",
        "proportional_resident_bytes",
        "proportional_swap_bytes",
        "open_fds",
        "worst_fd_ratio",
        "oldest_start_time_seconds",
        "states",
        "wchans",
        "thread_names",
    ]));
    assert_eq!(keys(g), group_keys);
    assert_eq!(
        keys(&g["states"]),
        set(&["running", "sleeping", "waiting", "zombie", "other"])
    );
    let mut thread_keys = set(&["threads"]);
    thread_keys.extend(set(&COUNTER_KEYS));
    assert_eq!(keys(&g["thread_names"]), set(&["pgojworker", &run.name]));
    for t in g["thread_names"].as_object().unwrap().values() {
        assert_eq!(keys(t), thread_keys);
    }
}

#[test]
fn once_json_has_the_workload_shape() {
    let run = once_json();
    let g = run.group();
    assert_eq!(g["procs"], 1);
    assert_eq!(g["threads"], 4);
    assert_eq!(g["open_fds"], run.fds);
    assert_eq!(g["thread_names"]["pgojworker"]["threads"], 3);
    assert_eq!(g["thread_names"][&run.name]["threads"], 1);
    let states: u64 = g["states"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(states, 4);
    assert!(g["resident_bytes"].as_u64().unwrap() > 0);
    assert!(g["oldest_start_time_seconds"].as_f64().unwrap() > 1.6e9);
    assert!(g["worst_fd_ratio"].as_f64().unwrap() > 0.0);
}

#[test]
fn once_prints_an_aligned_table() {
    let a = unique_name("pgta");
    let b = unique_name("pgtb");
    let wa = Workload::spawn(&["--name", &a, "--threads", "2"]);
    let wb = Workload::spawn(&["--name", &b]);
    let out = run_once(&["--procnames", &format!("{b},{a}"), "--once-delay", "100ms"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("GROUP"), "{text}");
    // Sorted by name.
    assert!(lines[1].starts_with(&a), "{text}");
    assert!(lines[2].starts_with(&b), "{text}");
    // Right-aligned columns: PROCS and THREADS end where their headers end.
    let end = |line: &str, col: usize| {
        let mut ends = Vec::new();
        let mut prev = ' ';
        for (i, c) in line.char_indices() {
            if c == ' ' && prev != ' ' {
                ends.push(i);
            }
            prev = c;
        }
        ends.push(line.len());
        ends[col]
    };
    let header_threads_end = lines[0].find("THREADS").unwrap() + "THREADS".len();
    assert_eq!(end(lines[1], 2), header_threads_end, "{text}");
    assert_eq!(end(lines[2], 2), header_threads_end, "{text}");
    let cols_a: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        &cols_a[1..3],
        ["1", "3"],
        "procs and threads of {a}: {text}"
    );
    assert!(text.contains("2 groups"), "{text}");
    assert!(
        // Under the summary, among the notes that follow the table.
        lines
            .iter()
            .skip_while(|l| !l.contains("2 groups"))
            // A percentage, or `-` when the node used no CPU in the window
            // (100 ms on an idle machine can be under one clock tick).
            .any(|l| {
                l.starts_with("coverage: ")
                    && (l.contains("% of the node's CPU") || l.contains("used no CPU"))
            }),
        "{text}"
    );
    wa.stop();
    wb.stop();
}

#[test]
fn once_says_its_counters_cover_the_window_and_counts_in_the_singular() {
    let name = unique_name("pgwin");
    // CPU burnt before the first sample, then idle.
    let workload = Workload::spawn(&["--name", &name, "--busy-ms", "400"]);
    let out = run_once(&["--procnames", &name, "--threads", "false"]);
    workload.stop();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("amounts during the 1s between the two samples"),
        "{table}"
    );
    assert!(table.contains("\n1 group, 1 process tracked;"), "{table}");
    // The 400 ms burnt before the window are not in it.
    let row = table
        .lines()
        .find(|l| l.starts_with(&name))
        .unwrap_or_else(|| panic!("no row for {name}:\n{table}"));
    let cpu_user: f64 = row
        .split_whitespace()
        .nth(3)
        .and_then(|c| c.strip_suffix('s'))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no CPU USER in {row}"));
    assert!(
        cpu_user < 0.2,
        "CPU USER {cpu_user}s includes time before the window:\n{table}"
    );
}
