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
    let header = group_header(containers, smaps);
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for (name, g) in groups {
        rows.push(group_row(name, g, (containers, smaps), now));
    }
    // The names (group, and container) read left-aligned, the numbers
    // right-aligned.
    align(&rows, if containers { 2 } else { 1 })
}

/// The column titles: the CONTAINER column only when some group is split by
/// container, and the PSS columns only when some group has them (they are
/// read only with `gather_smaps`), so that a plain run shows no empty
/// columns.
fn group_header(containers: bool, smaps: bool) -> Vec<&'static str> {
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
    header
}

/// One group's cells, in the order of [`group_header`] with the same
/// `(containers, smaps)` choices. A group with no process now shows a
/// descriptor use of zero and no age: its last values would describe
/// processes that are gone.
fn group_row(
    name: &str,
    g: &Group,
    (containers, smaps): (bool, bool),
    now: Option<SystemTime>,
) -> Vec<String> {
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
    row
}

/// Lays `rows` out in columns as wide as their widest cell, two spaces
/// apart: the first `left` columns left-aligned, the others right-aligned;
/// no trailing spaces.
fn align(rows: &[Vec<String>], left: usize) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i == 0 {
                let _ = write!(line, "{cell:<w$}", w = widths[i]);
            } else if i < left {
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
mod tests;
