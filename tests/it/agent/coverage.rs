//! The remainder in `--once`: the node's CPU against what the groups
//! account for, while a workload keeps both CPUs of a small machine busy.
//! With a rule that takes every process, kernel threads included, nearly
//! all of the node's CPU lands in a group; with a rule that takes only the
//! workload, the rest of the machine shows as the remainder.

use std::io::Write as _;

use crate::support::procs::{Workload, run_once, unique_name};

/// `--once --once-delay 3s --output json` with `args`; the `coverage`
/// object and the groups.
fn coverage(args: &[&str]) -> (serde_json::Value, serde_json::Value) {
    let mut all = vec!["--once-delay", "3s", "--output", "json"];
    all.extend_from_slice(args);
    let out = run_once(&all);
    assert!(out.status.success(), "{out:?}");
    let mut v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    (v["coverage"].take(), v["groups"].take())
}

fn num(v: &serde_json::Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number: {v}"))
}

/// A workload spinning two threads (the machine's two CPUs' worth).
fn busy_workload(tag: &str) -> (String, Workload) {
    let name = unique_name(tag);
    let w = Workload::spawn(&["--name", &name, "--threads", "2", "--spin"]);
    (name, w)
}

#[test]
fn a_rule_for_every_process_accounts_for_nearly_all_of_the_node_cpu() {
    let _cpu = crate::support::cpu_heavy();
    let (_, workload) = busy_workload("pgcov");
    // An empty command line (a kernel thread's) matches `.*` too.
    let mut rules = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        rules,
        "process_names:\n  - name: everything\n    cmdline: ['.*']"
    )
    .unwrap();
    let path = rules.path().to_str().unwrap();
    let (c, groups) = coverage(&["--config", path]);
    workload.stop();

    let node = num(&c, "node_cpu_seconds");
    let attributed = num(&c, "attributed_cpu_seconds");
    let unattributed = num(&c, "unattributed_cpu_seconds");
    let ratio = num(&c, "ratio");
    // Two spinning threads for 3 s: at least 4 s of the node's CPU.
    assert!(node > 4.0, "{c}");
    let everything = &groups["everything"];
    assert!(
        everything["procs"].as_u64().unwrap() > 10,
        "kernel threads included: {everything}"
    );
    assert!(ratio >= 0.9, "coverage {ratio}: {c}");
    assert!((ratio - (1.0 - unattributed / node)).abs() < 1e-9, "{c}");
    // Nothing counted twice: the groups do not exceed the node by more
    // than the tick rounding of a few seconds.
    assert!(attributed <= node * 1.1, "{c}");
}

#[test]
fn a_rule_for_one_workload_leaves_the_rest_of_the_node_in_the_remainder() {
    let _cpu = crate::support::cpu_heavy();
    let (name, workload) = busy_workload("pgrem");
    let (c, groups) = coverage(&["--procnames", &name]);
    workload.stop();

    let node = num(&c, "node_cpu_seconds");
    let attributed = num(&c, "attributed_cpu_seconds");
    let unattributed = num(&c, "unattributed_cpu_seconds");
    let ratio = num(&c, "ratio");
    let g = &groups[&name];
    let workload_cpu = num(g, "cpu_user_seconds") + num(g, "cpu_system_seconds");
    // The only group is the workload's: it is all that is attributed.
    assert_eq!(groups.as_object().unwrap().len(), 1, "{groups}");
    assert!((attributed - workload_cpu).abs() < 1e-9, "{c} {g}");
    assert!(workload_cpu > 1.0, "{g}");
    // The agent itself, the kernel threads and everything else the machine
    // runs are in no group: a visible remainder.
    assert!(unattributed > 0.0 && ratio < 1.0, "{c}");
    assert!(
        unattributed >= node - attributed - 1e-9,
        "remainder below node − groups: {c}"
    );
}
