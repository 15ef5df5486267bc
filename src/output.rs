//! Rendering of a snapshot for `--once`: the JSON object of the design
//! (stable keys, numbers, counters as totals since the agent started) for
//! scripts, and an aligned table with human units for people. The status
//! client renders its groups with the same functions.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::containers::split;
use crate::proc::{Counts, Group, GroupByName};
use crate::snapshot::{self, NodeCpu, Snapshot};

#[derive(Serialize)]
struct JsonSnapshot<'a> {
    groups: BTreeMap<String, JsonGroup<'a>>,
    errors: JsonErrors,
    #[serde(skip_serializing_if = "Option::is_none")]
    coverage: Option<JsonCoverage>,
}

/// The share of the node's CPU the groups account for, over the interval
/// the snapshot covers (between the two samples of `--once`).
#[derive(Serialize)]
struct JsonCoverage {
    node_cpu_seconds: f64,
    attributed_cpu_seconds: f64,
    unattributed_cpu_seconds: f64,
    /// `1 - unattributed / node`; `null` while the node used no CPU.
    ratio: Option<f64>,
}

impl From<&NodeCpu> for JsonCoverage {
    fn from(n: &NodeCpu) -> Self {
        JsonCoverage {
            node_cpu_seconds: n.node_seconds_total,
            attributed_cpu_seconds: n.attributed_seconds_total,
            unattributed_cpu_seconds: n.unattributed_seconds_total,
            ratio: n.coverage(),
        }
    }
}

#[derive(Serialize)]
struct JsonErrors {
    read: u64,
    partial: u64,
}

#[derive(Serialize)]
struct JsonGroup<'a> {
    procs: u64,
    threads: u64,
    cpu_user_seconds: f64,
    cpu_system_seconds: f64,
    /// `null` when no member's io could be read: unknown, not zero.
    read_bytes: Option<u64>,
    write_bytes: Option<u64>,
    major_page_faults: u64,
    minor_page_faults: u64,
    voluntary_context_switches: u64,
    nonvoluntary_context_switches: u64,
    resident_bytes: u64,
    virtual_bytes: u64,
    swap_bytes: u64,
    proportional_resident_bytes: u64,
    proportional_swap_bytes: u64,
    open_fds: u64,
    worst_fd_ratio: f64,
    oldest_start_time_seconds: Option<f64>,
    states: JsonStates,
    wchans: &'a BTreeMap<String, u64>,
    thread_names: BTreeMap<&'a str, JsonThread>,
    /// The container's attributes, for a group split by container.
    #[serde(skip_serializing_if = "Option::is_none")]
    container: Option<BTreeMap<&'static str, &'a str>>,
}

#[derive(Serialize)]
struct JsonStates {
    running: u64,
    sleeping: u64,
    waiting: u64,
    zombie: u64,
    other: u64,
}

#[derive(Serialize)]
struct JsonThread {
    threads: u64,
    cpu_user_seconds: f64,
    cpu_system_seconds: f64,
    read_bytes: Option<u64>,
    write_bytes: Option<u64>,
    major_page_faults: u64,
    minor_page_faults: u64,
    voluntary_context_switches: u64,
    nonvoluntary_context_switches: u64,
}

/// A finite, non-negative number (JSON has no NaN; counters are never negative).
fn finite(x: f64) -> f64 {
    if x.is_finite() && x > 0.0 { x } else { 0.0 }
}

/// `value` when the group's io is known, `None` (unknown) when it is not.
fn io(io_known: bool, value: u64) -> Option<u64> {
    io_known.then_some(value)
}

fn json_thread(threads: u64, c: &Counts, io_known: bool) -> JsonThread {
    JsonThread {
        threads,
        cpu_user_seconds: finite(c.cpu_user_time),
        cpu_system_seconds: finite(c.cpu_system_time),
        read_bytes: io(io_known, c.read_bytes),
        write_bytes: io(io_known, c.write_bytes),
        major_page_faults: c.major_page_faults,
        minor_page_faults: c.minor_page_faults,
        voluntary_context_switches: c.ctx_switch_voluntary,
        nonvoluntary_context_switches: c.ctx_switch_nonvoluntary,
    }
}

fn json_group(g: &Group) -> JsonGroup<'_> {
    let c = &g.counts;
    JsonGroup {
        procs: g.procs,
        threads: g.num_threads,
        cpu_user_seconds: finite(c.cpu_user_time),
        cpu_system_seconds: finite(c.cpu_system_time),
        read_bytes: io(g.io_known, c.read_bytes),
        write_bytes: io(g.io_known, c.write_bytes),
        major_page_faults: c.major_page_faults,
        minor_page_faults: c.minor_page_faults,
        voluntary_context_switches: c.ctx_switch_voluntary,
        nonvoluntary_context_switches: c.ctx_switch_nonvoluntary,
        resident_bytes: g.memory.resident_bytes,
        virtual_bytes: g.memory.virtual_bytes,
        swap_bytes: g.memory.swap_bytes,
        proportional_resident_bytes: g.memory.proportional_bytes,
        proportional_swap_bytes: g.memory.proportional_swap_bytes,
        open_fds: g.open_fds,
        worst_fd_ratio: if g.procs == 0 {
            0.0
        } else {
            finite(g.worst_fd_ratio)
        },
        oldest_start_time_seconds: if g.procs == 0 {
            None
        } else {
            g.oldest_start_time.and_then(snapshot::unix_seconds)
        },
        states: JsonStates {
            running: g.states.running,
            sleeping: g.states.sleeping,
            waiting: g.states.waiting,
            zombie: g.states.zombie,
            other: g.states.other,
        },
        wchans: &g.wchans,
        thread_names: g
            .threads
            .iter()
            .map(|t| {
                (
                    t.name.as_str(),
                    json_thread(t.num_threads, &t.counts, g.io_known),
                )
            })
            .collect(),
        container: None,
    }
}

/// One group under its JSON key: a group split by container is listed
/// under [`split::display_name`], with a `container` object holding the
/// container's OpenTelemetry attributes (those known).
fn json_entry<'a>(key: &'a str, g: &'a Group) -> (String, JsonGroup<'a>) {
    let mut group = json_group(g);
    group.container = split::decode(key).1.map(|c| c.pairs().collect());
    (split::display_name(key), group)
}

/// One group under its key as the JSON value of the design (see
/// `json_entry`): the same keys and units in `--once` and in
/// `procgroups status --output json`.
pub fn keyed_group_value(key: &str, g: &Group) -> (String, serde_json::Value) {
    let (name, group) = json_entry(key, g);
    // Plain structs of numbers and string-keyed maps always serialize.
    (name, serde_json::to_value(group).unwrap_or_default())
}

/// The node's CPU accounting as the `coverage` value of the design: the
/// same keys in `--once` and in `procgroups status --output json`.
pub fn coverage_value(n: &NodeCpu) -> serde_json::Value {
    serde_json::to_value(JsonCoverage::from(n)).unwrap_or_default()
}

/// The coverage line under the table: how much of the node's CPU the groups
/// account for, and how much is left.
pub fn coverage_line(n: &NodeCpu) -> String {
    match n.coverage() {
        Some(ratio) => format!(
            "coverage: {:.1} % of the node's CPU ({:.2} s of {:.2} s unattributed)",
            ratio * 100.0,
            n.unattributed_seconds_total,
            n.node_seconds_total,
        ),
        None => "coverage: - (the node has used no CPU since the first sample)".to_owned(),
    }
}

/// The snapshot as the JSON object of the design, pretty-printed.
pub fn json(snapshot: &Snapshot) -> String {
    let doc = JsonSnapshot {
        groups: snapshot
            .groups
            .iter()
            .map(|(name, g)| json_entry(name, g))
            .collect(),
        errors: JsonErrors {
            read: snapshot.errors.read,
            partial: snapshot.errors.partial,
        },
        coverage: snapshot.node_cpu.as_ref().map(JsonCoverage::from),
    };
    // Serializing plain structs of numbers, strings and maps with string
    // keys cannot fail; an empty object is still valid JSON if it ever did.
    serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".to_owned())
}

/// Bytes in IEC units: `512 B`, `1.5 KiB`, `23.4 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// An I/O amount in the table: `-` when the group's io is unknown (no
/// member's io could be read), which `0 B` would pass off as no I/O.
fn io_cell(io_known: bool, n: u64) -> String {
    if io_known {
        human_bytes(n)
    } else {
        "-".to_owned()
    }
}

/// Seconds: `0.25s`, `12.50s`, `3m05s`, `2h03m`, `5d02h`.
pub fn human_seconds(s: f64) -> String {
    let s = finite(s);
    if s < 60.0 {
        return format!("{s:.2}s");
    }
    let whole = s as u64;
    let (d, h, m, sec) = (
        whole / 86_400,
        whole / 3600 % 24,
        whole / 60 % 60,
        whole % 60,
    );
    if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else {
        format!("{m}m{sec:02}s")
    }
}

/// Counts: `999`, `1.2k`, `3.4M`, `5.6G`.
pub fn human_count(n: u64) -> String {
    const UNITS: [(f64, &str); 4] = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")];
    for (size, unit) in UNITS {
        if n as f64 >= size {
            return format!("{:.1}{unit}", n as f64 / size);
        }
    }
    n.to_string()
}

fn age(now: Option<SystemTime>, start: Option<SystemTime>) -> String {
    match (now, start) {
        (Some(now), Some(start)) => human_seconds(snapshot::age(now, start).as_secs_f64()),
        _ => "-".to_owned(),
    }
}

/// The snapshot as an aligned table, one row per group sorted by name, with
/// human units, followed by a summary line.
pub fn table(snapshot: &Snapshot) -> String {
    let mut out = group_table(&snapshot.groups, snapshot.taken_at);
    let _ = writeln!(
        out,
        "\n{}, {} tracked; errors: {} read, {} partial; cycle took {}",
        counted(snapshot.group_count(), "group", "groups"),
        counted(snapshot.tracked_processes, "process", "processes"),
        snapshot.errors.read,
        snapshot.errors.partial,
        humantime::format_duration(Duration::from_millis(
            u64::try_from(snapshot.cycle_duration.as_millis()).unwrap_or(u64::MAX)
        )),
    );
    if let Some(n) = &snapshot.node_cpu {
        let _ = writeln!(out, "{}", coverage_line(n));
    }
    if snapshot.groups.values().any(|g| !g.io_known) {
        out.push_str(
            "READ, WRITE `-`: unknown, the processes' I/O could not be read \
             (another user's processes need root or CAP_SYS_PTRACE)\n",
        );
    }
    out
}

/// What the counter columns of `--once` hold: the counters start at the
/// first of its two samples, so they are the amounts between the samples,
/// `delay` apart, not totals since the processes started.
pub fn once_window_note(delay: Duration) -> String {
    format!(
        "CPU USER, CPU SYS, READ, WRITE, MAJFLT, MINFLT, CTXSW: amounts during the {} \
         between the two samples, not totals since start\n",
        humantime::format_duration(delay)
    )
}

/// `n` and the noun for it: `1 group`, `2 groups`.
fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The groups as an aligned table, one row per group sorted by name, with
/// human units; the age of the oldest member is taken at `now`. Shared by
/// `--once` and `procgroups status`, so both show the same columns.
pub fn group_table(groups: &GroupByName, now: Option<SystemTime>) -> String {
    let smaps = groups
        .values()
        .any(|g| g.memory.proportional_bytes > 0 || g.memory.proportional_swap_bytes > 0);
    // A CONTAINER column only when some group is split by container.
    let containers = groups.keys().any(|k| split::decode(k).1.is_some());
    let mut header = vec!["GROUP"];
    if containers {
        header.push("CONTAINER");
    }
    header.extend([
        "PROCS", "THREADS", "CPU USER", "CPU SYS", "READ", "WRITE", "RSS", "VIRT", "SWAP",
    ]);
    if smaps {
        header.extend(["PSS", "SWAP PSS"]);
    }
    header.extend([
        "FDS",
        "FD USE",
        "MAJFLT",
        "MINFLT",
        "CTXSW VOL",
        "CTXSW INV",
        "OLDEST",
    ]);

    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for (name, g) in groups {
        let c = &g.counts;
        let (group, container) = split::decode(name);
        let mut row = vec![group.to_string()];
        if containers {
            row.push(container.map_or_else(|| "-".to_owned(), |c| c.label()));
        }
        row.extend([
            g.procs.to_string(),
            g.num_threads.to_string(),
            human_seconds(c.cpu_user_time),
            human_seconds(c.cpu_system_time),
            io_cell(g.io_known, c.read_bytes),
            io_cell(g.io_known, c.write_bytes),
            human_bytes(g.memory.resident_bytes),
            human_bytes(g.memory.virtual_bytes),
            human_bytes(g.memory.swap_bytes),
        ]);
        if smaps {
            row.push(human_bytes(g.memory.proportional_bytes));
            row.push(human_bytes(g.memory.proportional_swap_bytes));
        }
        let ratio = if g.procs == 0 {
            0.0
        } else {
            finite(g.worst_fd_ratio)
        };
        row.extend([
            g.open_fds.to_string(),
            format!("{:.1}%", ratio * 100.0),
            human_count(c.major_page_faults),
            human_count(c.minor_page_faults),
            human_count(c.ctx_switch_voluntary),
            human_count(c.ctx_switch_nonvoluntary),
            if g.procs == 0 {
                "-".to_owned()
            } else {
                age(now, g.oldest_start_time)
            },
        ]);
        rows.push(row);
    }

    let columns = rows[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i == 0 {
                let _ = write!(line, "{cell:<w$}", w = widths[i]);
            } else if containers && i == 1 {
                let _ = write!(line, "  {cell:<w$}", w = widths[i]);
            } else {
                let _ = write!(line, "  {cell:>w$}", w = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proc::{CollectErrors, Memory, States, Threads};
    use std::time::UNIX_EPOCH;

    fn sample() -> Snapshot {
        let mut busy = Group {
            procs: 2,
            num_threads: 5,
            open_fds: 12,
            worst_fd_ratio: 0.25,
            oldest_start_time: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            memory: Memory {
                resident_bytes: 3 * 1024 * 1024,
                virtual_bytes: 10 * 1024 * 1024 * 1024,
                ..Memory::default()
            },
            states: States {
                running: 1,
                sleeping: 4,
                ..States::default()
            },
            counts: Counts {
                cpu_user_time: 1.5,
                cpu_system_time: 0.25,
                read_bytes: 4096,
                minor_page_faults: 1234,
                ..Counts::default()
            },
            io_known: true,
            threads: vec![Threads {
                name: "worker".into(),
                num_threads: 4,
                counts: Counts {
                    cpu_user_time: 1.0,
                    ..Counts::default()
                },
            }],
            ..Group::default()
        };
        busy.wchans.insert("do_epoll_wait".into(), 3);
        let empty = Group {
            counts: Counts {
                cpu_user_time: 7.0,
                ..Counts::default()
            },
            worst_fd_ratio: 0.9,
            oldest_start_time: Some(UNIX_EPOCH),
            io_known: true,
            ..Group::default()
        };
        let mut s = Snapshot {
            errors: CollectErrors {
                read: 1,
                partial: 2,
            },
            tracked_processes: 2,
            taken_at: Some(UNIX_EPOCH + Duration::from_secs(1_700_003_600)),
            cycles: 2,
            node_cpu: Some(NodeCpu {
                node_seconds_total: 15.2,
                attributed_seconds_total: 14.79,
                unattributed_seconds_total: 0.41,
                overshoot_cycles: 0,
            }),
            ..Snapshot::default()
        };
        s.groups.insert("zeta".into(), busy);
        s.groups.insert("alpha".into(), empty);
        s
    }

    fn keys(v: &serde_json::Value) -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    }

    #[test]
    fn json_has_exactly_the_documented_keys_and_values() {
        let v: serde_json::Value = serde_json::from_str(&json(&sample())).unwrap();
        assert_eq!(keys(&v), ["coverage", "errors", "groups"]);
        assert_eq!(v["errors"], serde_json::json!({"read": 1, "partial": 2}));
        assert_eq!(
            keys(&v["coverage"]),
            [
                "attributed_cpu_seconds",
                "node_cpu_seconds",
                "ratio",
                "unattributed_cpu_seconds"
            ]
        );
        assert_eq!(v["coverage"]["node_cpu_seconds"], 15.2);
        assert_eq!(v["coverage"]["unattributed_cpu_seconds"], 0.41);
        let ratio = v["coverage"]["ratio"].as_f64().unwrap();
        assert!((ratio - (1.0 - 0.41 / 15.2)).abs() < 1e-12, "{ratio}");
        // Without the node's totals there is no coverage key.
        let without = Snapshot {
            node_cpu: None,
            ..sample()
        };
        let v: serde_json::Value = serde_json::from_str(&json(&without)).unwrap();
        assert_eq!(keys(&v), ["errors", "groups"]);

        let g = &v["groups"]["zeta"];
        let mut expected = vec![
            "procs",
            "threads",
            "cpu_user_seconds",
            "cpu_system_seconds",
            "read_bytes",
            "write_bytes",
            "major_page_faults",
            "minor_page_faults",
            "voluntary_context_switches",
            "nonvoluntary_context_switches",
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
        ];
        expected.sort();
        assert_eq!(keys(g), expected);
        assert_eq!(
            keys(&g["states"]),
            ["other", "running", "sleeping", "waiting", "zombie"]
        );
        let mut thread_keys = vec![
            "threads",
            "cpu_user_seconds",
            "cpu_system_seconds",
            "read_bytes",
            "write_bytes",
            "major_page_faults",
            "minor_page_faults",
            "voluntary_context_switches",
            "nonvoluntary_context_switches",
        ];
        thread_keys.sort();
        assert_eq!(keys(&g["thread_names"]["worker"]), thread_keys);

        assert_eq!(g["procs"], 2);
        assert_eq!(g["threads"], 5);
        assert_eq!(g["cpu_user_seconds"], 1.5);
        assert_eq!(g["resident_bytes"], 3 * 1024 * 1024);
        assert_eq!(g["oldest_start_time_seconds"], 1_700_000_000.0);
        assert_eq!(g["wchans"]["do_epoll_wait"], 3);
        assert_eq!(g["thread_names"]["worker"]["threads"], 4);
        assert_eq!(g["states"]["sleeping"], 4);
    }

    #[test]
    fn unknown_io_is_null_in_json_and_a_dash_in_the_table() {
        let mut s = sample();
        let Some(busy) = s.groups.get_mut("zeta") else {
            panic!("no zeta in the sample");
        };
        busy.io_known = false;
        let v: serde_json::Value = serde_json::from_str(&json(&s)).unwrap();
        let g = &v["groups"]["zeta"];
        assert!(g["read_bytes"].is_null(), "{g}");
        assert!(g["write_bytes"].is_null(), "{g}");
        assert!(g["thread_names"]["worker"]["read_bytes"].is_null(), "{g}");
        let t = table(&s);
        let row = t.lines().find(|l| l.starts_with("zeta")).unwrap();
        let cells: Vec<&str> = row
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        // GROUP PROCS THREADS CPU USER CPU SYS READ WRITE
        assert_eq!((cells[5], cells[6]), ("-", "-"), "{t}");
        assert!(t.contains("READ, WRITE `-`: unknown"), "{t}");
        // Known, the same group shows its bytes and no note.
        let t = table(&sample());
        assert!(
            t.lines()
                .find(|l| l.starts_with("zeta"))
                .unwrap()
                .contains("4.0 KiB"),
            "{t}"
        );
        assert!(!t.contains("READ, WRITE `-`"), "{t}");
    }

    #[test]
    fn an_empty_group_keeps_its_counters_but_has_no_start_time() {
        let v: serde_json::Value = serde_json::from_str(&json(&sample())).unwrap();
        let g = &v["groups"]["alpha"];
        assert_eq!(g["procs"], 0);
        assert_eq!(g["cpu_user_seconds"], 7.0);
        assert!(g["oldest_start_time_seconds"].is_null());
        assert_eq!(g["worst_fd_ratio"], 0.0);
    }

    #[test]
    fn table_is_sorted_aligned_and_in_human_units() {
        let t = table(&sample());
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("GROUP"), "{t}");
        assert!(lines[1].starts_with("alpha"), "{t}");
        assert!(lines[2].starts_with("zeta"), "{t}");
        // Right-aligned columns end at the same offset on every row.
        let end_of = |line: &str, needle: &str| line.find(needle).unwrap() + needle.len();
        assert_eq!(end_of(lines[0], "RSS"), end_of(lines[2], "3.0 MiB"), "{t}");
        assert_eq!(
            end_of(lines[0], "VIRT"),
            end_of(lines[2], "10.0 GiB"),
            "{t}"
        );
        assert_eq!(end_of(lines[0], "FD USE"), end_of(lines[2], "25.0%"), "{t}");
        assert_eq!(end_of(lines[0], "OLDEST"), end_of(lines[2], "1h00m"), "{t}");
        assert!(lines[2].contains("1.50s"), "{t}");
        assert!(lines[2].contains("1.2k"), "{t}");
        assert!(lines[1].ends_with('-'), "empty group has no age: {t}");
        assert!(
            !t.contains("PSS"),
            "no smaps columns without smaps data: {t}"
        );
        assert!(
            t.contains("2 groups, 2 processes tracked; errors: 1 read, 2 partial"),
            "{t}"
        );
        assert_eq!(
            lines.last(),
            Some(&"coverage: 97.3 % of the node's CPU (0.41 s of 15.20 s unattributed)"),
            "{t}"
        );
        let idle = NodeCpu::default();
        assert_eq!(
            coverage_line(&idle),
            "coverage: - (the node has used no CPU since the first sample)"
        );
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
        assert_eq!(human_seconds(0.256), "0.26s");
        assert_eq!(human_seconds(185.0), "3m05s");
        assert_eq!(human_seconds(7380.0), "2h03m");
        assert_eq!(human_seconds(93_600.0), "1d02h");
        assert_eq!(human_seconds(f64::NAN), "0.00s");
        assert_eq!(human_count(999), "999");
        assert_eq!(human_count(1234), "1.2k");
        assert_eq!(human_count(3_400_000), "3.4M");
    }

    fn split_sample() -> (Snapshot, String) {
        use crate::containers::{ContainerId, ContainerInfo};
        let mut s = sample();
        let busy = s.groups.remove("zeta").unwrap();
        let info = ContainerInfo {
            container_id: ContainerId::parse(
                "4c1fd3e3b4a4e3a1b2f8a6e8d59a0c1f2e3d4c5b6a7980123456789abcdef012",
            ),
            namespace: Some("shop".into()),
            pod_name: Some("cart-7d9f".into()),
            container_name: Some("api".into()),
            ..ContainerInfo::default()
        };
        let key = split::encode("zeta", &info);
        s.groups.insert(key.clone(), busy);
        (s, key)
    }

    #[test]
    fn json_lists_a_container_group_with_its_container_object() {
        let (s, _) = split_sample();
        let v: serde_json::Value = serde_json::from_str(&json(&s)).unwrap();
        let g = &v["groups"]["zeta [4c1fd3e3b4a4]"];
        assert_eq!(g["procs"], 2, "{v}");
        assert_eq!(
            g["container"],
            serde_json::json!({
                "container.id": "4c1fd3e3b4a4e3a1b2f8a6e8d59a0c1f2e3d4c5b6a7980123456789abcdef012",
                "k8s.namespace.name": "shop",
                "k8s.pod.name": "cart-7d9f",
                "k8s.container.name": "api",
            })
        );
        assert!(v["groups"]["alpha"].get("container").is_none(), "{v}");
    }

    #[test]
    fn table_shows_a_container_column_only_when_groups_are_split() {
        assert!(!table(&sample()).contains("CONTAINER"));
        let (s, _) = split_sample();
        let t = table(&s);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("GROUP  CONTAINER"), "{t}");
        assert!(lines[1].starts_with("alpha  -"), "{t}");
        assert!(lines[2].starts_with("zeta   shop/cart-7d9f/api"), "{t}");
        assert!(!t.contains('\u{1f}'), "{t}");
    }
}
