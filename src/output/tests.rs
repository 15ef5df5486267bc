//! The table and JSON renderings of fixed snapshots.

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
