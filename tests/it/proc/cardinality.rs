//! The grouper's cardinality guard, driven with scripted processes: a rule
//! that makes one group per process cannot grow the groups (or the thread
//! names of a group) beyond the configured caps; what does not fit is added
//! up in `procgroups.overflow`, nothing is lost from the totals, counters
//! never decrease, and one warning names the rule that caused it.

use std::io::Write;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use clap::Parser;
use procgroups::cli::Cli;
use procgroups::proc::{
    Counts, Explanation, GroupByName, Grouper, GrouperOptions, IDInfo, MatchNamer, OVERFLOW_NAME,
    ProcAttributes, ScriptedSource, Thread, ThreadID, TrackerOptions,
};

use super::scenario::cycle_time;
use crate::support::procs::{Workload, run_once};

fn cpu(user: f64) -> Counts {
    Counts {
        cpu_user_time: user,
        minor_page_faults: 10,
        ..Counts::default()
    }
}

/// One group per process, `p<pid>`, like a `{{.PID}}` template; processes
/// whose comm is `fixed` all go to group `fixed`.
struct PerPid;

impl MatchNamer for PerPid {
    fn match_and_name(&self, attrs: &ProcAttributes<'_>) -> Option<String> {
        self.explain(attrs).group
    }

    fn explain(&self, attrs: &ProcAttributes<'_>) -> Explanation {
        if attrs.name == "fixed" {
            return Explanation {
                group: Some("fixed".into()),
                rule: Some(0),
                template: Some("{{.Comm}}".into()),
                detail: "rule 0 matched".into(),
            };
        }
        Explanation {
            group: Some(format!("p{:05}", attrs.pid)),
            rule: Some(1),
            template: Some("p{{.PID}}".into()),
            detail: "rule 1 matched".into(),
        }
    }
}

fn grouper(max_groups: usize, max_thread_names: usize, remove_empty_groups: bool) -> Grouper {
    Grouper::new(
        Arc::new(PerPid),
        GrouperOptions {
            tracker: TrackerOptions {
                threads: true,
                ..TrackerOptions::default()
            },
            remove_empty_groups,
            max_groups,
            max_thread_names,
            empty_group_ttl: None,
        },
    )
}

/// A process born after the grouper started (its whole usage counts), with
/// `user` seconds of CPU.
fn proc(pid: i32, user: f64) -> IDInfo {
    IDInfo::named(pid, "worker", 1)
        .started_at(cycle_time(0) + Duration::from_secs(3600))
        .counts(cpu(user))
}

fn sum_procs(groups: &GroupByName) -> u64 {
    groups.values().map(|g| g.procs).sum()
}

fn sum_cpu(groups: &GroupByName) -> f64 {
    groups.values().map(|g| g.counts.cpu_user_time).sum()
}

fn named(groups: &GroupByName) -> usize {
    groups.keys().filter(|k| *k != OVERFLOW_NAME).count()
}

/// Every counter of every group that was reported before is at least what
/// it was.
fn assert_non_decreasing(before: &GroupByName, after: &GroupByName) {
    for (name, b) in before {
        let a = after
            .get(name)
            .unwrap_or_else(|| panic!("group {name} disappeared"));
        let (b, a) = (b.counts, a.counts);
        assert!(a.cpu_user_time >= b.cpu_user_time, "{name}: {b:?} -> {a:?}");
        assert!(a.minor_page_faults >= b.minor_page_faults, "{name}");
    }
}

#[test]
fn groups_beyond_the_cap_are_added_up_in_one_overflow_group() {
    let mut gr = grouper(5, 100, false);
    let mut src = ScriptedSource::default();
    src.push((1..=12).map(|pid| proc(pid, 1.0)).collect());
    let (_, groups) = gr.update(&mut src, cycle_time(1)).unwrap();

    // The first five names are kept; the other seven processes are counted
    // in the overflow group, so nothing is lost from the totals.
    let names: Vec<&str> = groups.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "p00001",
            "p00002",
            "p00003",
            "p00004",
            "p00005",
            OVERFLOW_NAME
        ]
    );
    assert_eq!(groups[OVERFLOW_NAME].procs, 7);
    assert_eq!(groups[OVERFLOW_NAME].counts.cpu_user_time, 7.0);
    assert_eq!(sum_procs(&groups), 12);
    assert_eq!(sum_cpu(&groups), 12.0);

    let o = gr.overflow();
    assert_eq!(o.groups, 7);
    assert_eq!(o.example_group.as_deref(), Some("p00006"));
    let cause = o.cause.as_ref().unwrap();
    assert_eq!(cause.rule, Some(1));
    assert_eq!(cause.template.as_deref(), Some("p{{.PID}}"));
}

#[test]
fn no_overflow_group_while_everything_fits() {
    let mut gr = grouper(5, 100, false);
    let mut src = ScriptedSource::default();
    src.push((1..=5).map(|pid| proc(pid, 1.0)).collect());
    let (_, groups) = gr.update(&mut src, cycle_time(1)).unwrap();
    assert_eq!(groups.len(), 5);
    assert!(!groups.contains_key(OVERFLOW_NAME));
    assert!(gr.overflow().is_empty());
}

#[test]
fn kept_groups_keep_their_place_and_their_counters() {
    let mut gr = grouper(3, 100, false);
    let mut src = ScriptedSource::default();
    src.push(vec![proc(20, 1.0), proc(30, 1.0), proc(40, 1.0)]);
    let (_, first) = gr.update(&mut src, cycle_time(1)).unwrap();
    assert_eq!(named(&first), 3);
    assert!(!first.contains_key(OVERFLOW_NAME));

    // p00020 exits; a new process whose name sorts first arrives. The place
    // is not given away: the exited group stays with its totals (counters
    // must not restart), the newcomer is counted in the overflow group.
    src.push(vec![proc(10, 2.0), proc(30, 1.5), proc(40, 1.5)]);
    let (_, second) = gr.update(&mut src, cycle_time(2)).unwrap();
    assert_non_decreasing(&first, &second);
    assert_eq!(second["p00020"].procs, 0);
    assert_eq!(second["p00020"].counts.cpu_user_time, 1.0);
    assert_eq!(second[OVERFLOW_NAME].procs, 1);
    assert_eq!(second[OVERFLOW_NAME].counts.cpu_user_time, 2.0);
    assert_eq!(second["p00030"].counts.cpu_user_time, 1.5);
    assert!(!second.contains_key("p00010"));
}

#[test]
fn removing_empty_groups_frees_their_places() {
    let mut gr = grouper(2, 100, true);
    let mut src = ScriptedSource::default();
    src.push(vec![proc(1, 1.0), proc(2, 1.0), proc(3, 1.0)]);
    let (_, first) = gr.update(&mut src, cycle_time(1)).unwrap();
    assert_eq!(named(&first), 2);
    assert_eq!(first[OVERFLOW_NAME].procs, 1);

    // p00001 and p00002 exit and are forgotten in this very cycle, so their
    // places are free for this cycle's groups, in name order. p00003 was
    // never kept (its process was folded), so it is a new group and takes
    // the first place; what it used before stays in the overflow totals.
    src.push(vec![proc(3, 2.0), proc(4, 1.0), proc(5, 1.0), proc(6, 1.0)]);
    let (_, second) = gr.update(&mut src, cycle_time(2)).unwrap();
    let names: Vec<&str> = second.keys().map(String::as_str).collect();
    assert_eq!(names, ["p00003", "p00004", OVERFLOW_NAME]);
    assert_eq!(second["p00003"].counts.cpu_user_time, 1.0);
    assert_eq!(second[OVERFLOW_NAME].procs, 2);
    assert_eq!(second[OVERFLOW_NAME].counts.cpu_user_time, 1.0 + 2.0);
}

#[test]
fn churn_of_one_group_per_process_stays_bounded_and_monotonic() {
    const CAP: usize = 50;
    for remove_empty_groups in [false, true] {
        let mut gr = grouper(CAP, 100, remove_empty_groups);
        let mut src = ScriptedSource::default();
        let mut previous = GroupByName::new();
        let mut next_pid = 1;
        let mut alive: Vec<(i32, f64)> = Vec::new();
        let mut total_cpu = 0.0;
        for n in 1..=60u64 {
            // 30 processes per cycle, each living 3 cycles, using 1 s of CPU
            // per cycle.
            alive.retain(|(pid, _)| *pid >= next_pid - 60);
            for _ in 0..30 {
                alive.push((next_pid, 0.0));
                next_pid += 1;
            }
            for (_, used) in &mut alive {
                *used += 1.0;
            }
            total_cpu += alive.len() as f64;
            src.push(alive.iter().map(|&(pid, used)| proc(pid, used)).collect());
            let (_, groups) = gr.update(&mut src, cycle_time(n)).unwrap();

            assert!(named(&groups) <= CAP, "cycle {n}: {} groups", groups.len());
            assert_eq!(sum_procs(&groups), alive.len() as u64, "cycle {n}");
            if !remove_empty_groups {
                // Nothing is ever lost from the totals (with removal, the
                // totals of forgotten groups are gone by design).
                assert!((sum_cpu(&groups) - total_cpu).abs() < 1e-6, "cycle {n}");
                assert_non_decreasing(&previous, &groups);
            } else {
                for (name, g) in &groups {
                    if let Some(b) = previous.get(name) {
                        assert!(g.counts.cpu_user_time >= b.counts.cpu_user_time, "{name}");
                    }
                }
            }
            previous = groups;
        }
        assert!(gr.tracker().stats().tracked <= 90);
    }
}

fn thread(tid: i32, name: &str, user: f64) -> Thread {
    Thread::new(
        ThreadID {
            tid,
            start_time_ticks: 1,
        },
        name,
        cpu(user),
    )
}

#[test]
fn thread_names_beyond_the_cap_fold_into_one_thread_name() {
    let mut gr = grouper(10, 3, false);
    let mut src = ScriptedSource::default();
    let threads = |user: f64| -> Vec<Thread> {
        (0..8)
            .map(|i| thread(100 + i, &format!("t{i}"), user))
            .chain([thread(200, "t0", user)])
            .collect()
    };
    let p = |user: f64| {
        IDInfo::named(100, "fixed", 1)
            .started_at(cycle_time(0) + Duration::from_secs(3600))
            .counts(cpu(9.0 * user))
            .num_threads(9)
            .with_threads(threads(user))
    };
    src.push(vec![p(1.0)]);
    let (_, first) = gr.update(&mut src, cycle_time(1)).unwrap();
    let g = &first["fixed"];
    let names: Vec<(&str, u64, f64)> = g
        .threads
        .iter()
        .map(|t| (t.name.as_str(), t.num_threads, t.counts.cpu_user_time))
        .collect();
    assert_eq!(
        names,
        [
            (OVERFLOW_NAME, 5, 5.0),
            ("t0", 2, 2.0),
            ("t1", 1, 1.0),
            ("t2", 1, 1.0)
        ]
    );
    let o = gr.overflow();
    assert_eq!(o.thread_names, 5);
    assert_eq!(o.example_thread_group.as_deref(), Some("fixed"));
    assert_eq!(o.groups, 0);

    // Next cycle: the same names keep their places, the totals keep going.
    src.push(vec![p(3.0)]);
    let (_, second) = gr.update(&mut src, cycle_time(2)).unwrap();
    let g = &second["fixed"];
    assert_eq!(g.threads.len(), 4);
    let total: f64 = g.threads.iter().map(|t| t.counts.cpu_user_time).sum();
    assert_eq!(total, 27.0);
    assert_eq!(g.threads[0].name, OVERFLOW_NAME);
    assert_eq!(g.threads[0].counts.cpu_user_time, 15.0);
}

/// Collects what `tracing` writes, for asserting on log lines.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn with_captured_logs<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let out = tracing::subscriber::with_default(subscriber, || {
        // Tests without a subscriber may have registered the grouper's
        // callsites concurrently as uninteresting; look again.
        tracing::callsite::rebuild_interest_cache();
        f()
    });
    (out, captured.lines())
}

#[test]
fn overflow_is_warned_once_naming_the_rule_from_the_configuration() {
    // A real configuration: the second rule makes one group per process.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("procgroups.yaml");
    std::fs::write(
        &file,
        "process_names:\n  - name: \"{{.Comm}}\"\n    comm: [fixed]\n  \
         - name: \"{{.Comm}}-{{.PID}}\"\n    cmdline: [\".+\"]\n",
    )
    .unwrap();
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/proc");
    let cli = Cli::try_parse_from([
        "procgroups",
        "--config",
        file.to_str().unwrap(),
        "--procfs",
        fixture,
    ])
    .unwrap();
    let config = procgroups::config::load_from(&cli, &[]).unwrap();
    let mut gr = Grouper::new(
        config.namer.clone(),
        GrouperOptions {
            max_groups: 4,
            ..GrouperOptions::default()
        },
    );
    let p = |pid: i32| proc(pid, 1.0).cmdline(&["/usr/bin/worker", "--job"]);

    let (groups, lines) = with_captured_logs(|| {
        let mut src = ScriptedSource::default();
        let mut last = GroupByName::new();
        for n in 1..=5u64 {
            let first = i32::try_from(n).unwrap() * 10;
            src.push((first..first + 6).map(p).collect());
            last = gr.update(&mut src, cycle_time(n)).unwrap().1;
        }
        last
    });
    assert_eq!(named(&groups), 4);
    assert_eq!(groups[OVERFLOW_NAME].procs, 6);

    let warnings: Vec<&String> = lines.iter().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{lines:#?}");
    let w = warnings[0];
    assert!(w.contains("too many groups"), "{w}");
    assert!(w.contains("max_groups=4"), "{w}");
    assert!(w.contains(OVERFLOW_NAME), "{w}");
    assert!(w.contains("rule=1"), "{w}");
    assert!(w.contains("{{.Comm}}-{{.PID}}"), "{w}");
    assert!(w.contains("group=worker-14"), "{w}");
    assert_eq!(gr.overflow().cause.as_ref().unwrap().rule, Some(1));
}

#[test]
fn overflow_that_builds_up_is_explained_by_the_next_new_process() {
    // The cap is crossed in a cycle where the namer was not being asked
    // why: the warning waits for the next cycle's new processes to say.
    let mut gr = grouper(20, 100, false);
    let (_, lines) = with_captured_logs(|| {
        let mut src = ScriptedSource::default();
        src.push((1..=5).map(|pid| proc(pid, 1.0)).collect());
        gr.update(&mut src, cycle_time(1)).unwrap();
        let crossing: Vec<IDInfo> = (1..=30).map(|pid| proc(pid, 1.0)).collect();
        src.push(crossing.clone());
        gr.update(&mut src, cycle_time(2)).unwrap();
        assert_eq!(gr.overflow().groups, 10);
        assert!(gr.overflow().cause.is_none());
        let mut next = crossing;
        next.push(proc(31, 1.0));
        src.push(next);
        gr.update(&mut src, cycle_time(3)).unwrap();
    });
    let warnings: Vec<&String> = lines.iter().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{lines:#?}");
    assert!(warnings[0].contains("rule=1"), "{}", warnings[0]);
    assert_eq!(gr.overflow().cause.as_ref().unwrap().rule, Some(1));
}

#[test]
fn overflow_without_any_explanation_is_still_warned_once() {
    // No new process after the crossing: the warning comes one cycle later
    // with the rules listed instead of the one that matched.
    let mut gr = grouper(20, 100, false);
    let (_, lines) = with_captured_logs(|| {
        let mut src = ScriptedSource::default();
        src.push((1..=5).map(|pid| proc(pid, 1.0)).collect());
        gr.update(&mut src, cycle_time(1)).unwrap();
        for n in 2..=6 {
            src.push((1..=30).map(|pid| proc(pid, 1.0)).collect());
            gr.update(&mut src, cycle_time(n)).unwrap();
        }
    });
    let warnings: Vec<&String> = lines.iter().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{lines:#?}");
    assert!(warnings[0].contains("too many groups"), "{}", warnings[0]);
    assert!(warnings[0].contains("group=p00021"), "{}", warnings[0]);
}

#[test]
fn thread_name_overflow_is_warned_once() {
    let mut gr = grouper(10, 2, false);
    let (_, lines) = with_captured_logs(|| {
        let mut src = ScriptedSource::default();
        for n in 1..=3 {
            let threads: Vec<Thread> = (0..5)
                .map(|i| thread(i + 1, &format!("w{i}"), 1.0))
                .collect();
            src.push(vec![IDInfo::named(1, "fixed", 1).with_threads(threads)]);
            gr.update(&mut src, cycle_time(n)).unwrap();
        }
    });
    let warnings: Vec<&String> = lines.iter().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{lines:#?}");
    assert!(
        warnings[0].contains("too many thread names"),
        "{}",
        warnings[0]
    );
    assert!(
        warnings[0].contains("max_thread_names=2"),
        "{}",
        warnings[0]
    );
    assert!(warnings[0].contains("group=fixed"), "{}", warnings[0]);
}

#[test]
fn defaults_are_the_documented_caps() {
    let o = GrouperOptions::default();
    assert_eq!(o.max_groups, 1000);
    assert_eq!(o.max_thread_names, 100);
    assert_eq!(OVERFLOW_NAME, "procgroups.overflow");
}

/// What `--once` printed (JSON) and logged on a busy host: forty processes
/// with command lines, each its own group under a `{{.PID}}` template,
/// with at most 25 groups and 3 thread names each; captured once for the
/// tests below.
struct CappedRun {
    json: serde_json::Value,
    stderr: String,
}

impl CappedRun {
    fn groups(&self) -> &serde_json::Map<String, serde_json::Value> {
        self.json["groups"].as_object().unwrap()
    }
}

fn capped_run() -> &'static CappedRun {
    static RUN: LazyLock<CappedRun> = LazyLock::new(|| {
        let name = format!("pgcg{}", std::process::id() % 100_000);
        let busy = Workload::named(&name)
            .children(39, &name)
            .threads(2, "worker")
            .spawn();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("per-pid.yaml");
        std::fs::write(
            &file,
            "process_names:\n  - name: \"{{.Comm}}:{{.PID}}\"\n    cmdline: [\".+\"]\n",
        )
        .unwrap();
        let out = run_once(&[
            "--output",
            "json",
            "--once-delay",
            "200ms",
            "--config",
            file.to_str().unwrap(),
            "--max-groups",
            "25",
            "--max-thread-names",
            "3",
        ]);
        busy.stop();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        CappedRun {
            json: serde_json::from_slice(&out.stdout).unwrap(),
            stderr,
        }
    });
    &RUN
}

#[test]
fn live_pid_template_is_capped_in_the_agent_output() {
    let groups = capped_run().groups();
    // Twenty-five groups of one process each (none when that process exited
    // between the two cycles), and the rest added up.
    assert_eq!(groups.len(), 26, "{:?}", groups.keys().collect::<Vec<_>>());
    let overflow = &groups[OVERFLOW_NAME];
    let procs: u64 = groups.values().map(|g| g["procs"].as_u64().unwrap()).sum();
    assert!(procs >= 40, "{procs} processes in all");
    let named: Vec<(&String, u64)> = groups
        .iter()
        .filter(|(k, _)| *k != OVERFLOW_NAME)
        .map(|(k, g)| (k, g["procs"].as_u64().unwrap()))
        .collect();
    // Each named process is alone in its group, but for this test binary:
    // the workloads other tests start between the two cycles are its
    // children, which join its group (children follow their parent).
    let me = format!(":{}", std::process::id());
    assert!(
        named.iter().all(|(k, n)| k.ends_with(&me) || *n <= 1),
        "{named:?}"
    );
    let named: Vec<u64> = named.into_iter().map(|(_, n)| n).collect();
    let in_overflow = overflow["procs"].as_u64().unwrap();
    assert_eq!(in_overflow, procs - named.iter().sum::<u64>());
    assert!(in_overflow >= 15, "{in_overflow}");
}

#[test]
fn live_thread_names_are_capped_in_the_agent_output() {
    let groups = capped_run().groups();
    // At most three per group, the rest under the overflow name (the
    // overflow group holds many processes' names).
    for (k, g) in groups {
        let names = g["thread_names"].as_object().unwrap();
        let named = names.keys().filter(|n| *n != OVERFLOW_NAME).count();
        assert!(named <= 3, "{k}: {names:?}");
    }
    let overflow = &groups[OVERFLOW_NAME];
    assert!(
        overflow["thread_names"][OVERFLOW_NAME]["threads"]
            .as_u64()
            .unwrap()
            > 0,
        "{overflow}"
    );
}

#[test]
fn live_caps_warn_once_for_groups_naming_the_rule_and_once_for_thread_names() {
    let stderr = &capped_run().stderr;
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("WARN")).collect();
    let groups_warning: Vec<&&str> = warnings
        .iter()
        .filter(|l| l.contains("too many groups"))
        .collect();
    assert_eq!(groups_warning.len(), 1, "{stderr}");
    assert!(groups_warning[0].contains("rule=0"), "{stderr}");
    assert!(
        groups_warning[0].contains("template={{.Comm}}:{{.PID}}"),
        "{stderr}"
    );
    assert_eq!(
        warnings
            .iter()
            .filter(|l| l.contains("too many thread names"))
            .count(),
        1,
        "{stderr}"
    );
}
