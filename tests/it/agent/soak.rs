//! Soak under process churn: the agent runs for more than a minute at a
//! 100 ms interval, exporting to the in-process receiver, while the test
//! starts and reaps thousands of short-lived processes (trees of
//! `procgroups-workload`, bounded in count and in time), then hands a freed
//! PID from one tracked process to another, then lets the machine go quiet.
//!
//! Checked: the agent never fails; the tracker's and grouper's state (the
//! identities, PIDs and threads it remembers, and its groups) comes back to
//! what is alive once the churn stops; its RSS at the end is within 10% of
//! its RSS after warm-up; no counter of any group ever decreases from one
//! export to the next; and a process that takes a just-freed PID is counted
//! in its own group, not in the group of the PID's previous holder.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::otlp::{counters, points_of, value};
use crate::support::procs::{Agent, Workload, agent_command, log_field, unique_name};
use crate::support::receiver::{Received, Receiver};
use procgroups::telemetry::catalogue as cat;

/// How long the agent runs at least.
const SOAK: Duration = Duration::from_secs(62);
/// How long the churn lasts at most.
const CHURN_TIME: Duration = Duration::from_secs(40);
/// How many short-lived processes the churn starts at most.
const CHURN_COUNT: usize = 5000;
/// Processes per churn tree: a workload and its children.
const TREE: usize = 10;
/// Warm-up before the RSS reference is taken: ten seconds into the churn.
const WARM_UP: Duration = Duration::from_secs(13);
const WAIT: Duration = Duration::from_secs(20);

/// One `tracker state` line of the agent's debug log.
#[derive(Debug, Clone, Copy, Default)]
struct State {
    cycle: u64,
    tracked: u64,
    ignored: u64,
    pids: u64,
    threads: u64,
    groups: u64,
}

fn states(log: &str) -> Vec<State> {
    log.lines()
        .filter(|l| l.contains("tracker state"))
        .filter_map(|l| {
            let field = |key: &str| -> Option<u64> { log_field(l, key)?.parse().ok() };
            Some(State {
                cycle: field("cycle=")?,
                tracked: field("tracked=")?,
                ignored: field("ignored=")?,
                pids: field("pids=")?,
                threads: field("threads=")?,
                groups: field("groups=")?,
            })
        })
        .collect()
}

/// Processes in /proc now.
fn live_processes() -> u64 {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .count() as u64
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Starts short-lived process trees from `threads` threads until `stop`,
/// [`CHURN_TIME`] or [`CHURN_COUNT`]; returns the number of processes.
fn churn(name: &str, threads: usize, stop: &AtomicBool) -> usize {
    let started = AtomicUsize::new(0);
    let deadline = Instant::now() + CHURN_TIME;
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed)
                    && Instant::now() < deadline
                    && started.fetch_add(TREE, Ordering::SeqCst) + TREE <= CHURN_COUNT
                {
                    let w = Workload::named(name).children(TREE - 1, name).spawn();
                    // Closing its stdin ends the tree; stop() reaps it.
                    w.stop();
                    // At most ~125 processes a second in all.
                    std::thread::sleep(Duration::from_millis(150));
                }
            });
        }
    });
    started.load(Ordering::SeqCst).min(CHURN_COUNT)
}

/// Starts a workload named `name` with PID `pid`, by setting the kernel's
/// last allocated PID just below it. `None` when the kernel does not let
/// this process do that, or another process keeps taking the PID first.
fn spawn_with_pid(name: &str, pid: u32) -> Option<Workload> {
    for _ in 0..50 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).ok()?;
        let w = Workload::named(name).spawn();
        if w.pid == pid {
            return Some(w);
        }
        w.stop();
    }
    None
}

/// The names of the soak's groups: the churn, a long-lived workload, and
/// the two holders of a reused PID.
struct Names {
    churn: String,
    long: String,
    a: String,
    b: String,
}

/// The agent at a 100 ms interval with debug logs, tracking the four
/// groups of `names`.
fn soak_agent(names: &Names, receiver: &Receiver) -> Agent {
    let mut cmd = agent_command();
    cmd.args([
        "--procnames",
        &format!("{},{},{},{}", names.churn, names.long, names.a, names.b),
        "--interval",
        "100ms",
    ])
    .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
    .env("OTEL_METRIC_EXPORT_INTERVAL", "500")
    .env("RUST_LOG", "procgroups=debug");
    Agent::spawn(cmd)
}

/// Churns, and returns the agent's RSS taken [`WARM_UP`] after `started`
/// (ten seconds into the churn); checks that the churn was large and seen.
fn churn_with_warm_rss(agent: &Agent, churn_name: &str, started: Instant) -> u64 {
    let stop = Arc::new(AtomicBool::new(false));
    let rss_warm = std::thread::scope(|s| {
        let churner = s.spawn(|| churn(churn_name, 2, &stop));
        while started.elapsed() < WARM_UP {
            std::thread::sleep(Duration::from_millis(100));
        }
        let rss = rss_kib(agent.pid());
        let spawned = churner.join().unwrap();
        assert!(spawned >= 2000, "only {spawned} processes were started");
        eprintln!("churn: {spawned} processes");
        rss
    });
    let peak = states(&agent.log())
        .iter()
        .map(|s| s.tracked)
        .max()
        .unwrap();
    assert!(peak > 1, "the churn was never seen: {peak}");
    rss_warm
}

/// PID reuse: A's PID goes to B, then back to a new A, each time within
/// about one cycle; each holder must be counted in its own group.
fn pid_reuse_is_counted_in_the_holder_s_group(receiver: &Receiver, agent: &Agent, names: &Names) {
    let (a_name, b_name) = (&names.a, &names.b);
    let expect = |holder: &str, other: &str, pid: u32| {
        let h = [("procgroup.name", holder)];
        let o = [("procgroup.name", other)];
        let since = receiver.received().len();
        receiver
            .wait_for(WAIT, |r| {
                r.iter().skip(since).find(|x| {
                    let p = points_of(&x.request);
                    value(&p, cat::PROCESSES.name, &h) == Some(1.0)
                        && value(&p, cat::PROCESSES.name, &o).unwrap_or(0.0) == 0.0
                })?;
                Some(())
            })
            .unwrap_or_else(|| {
                panic!(
                    "pid {pid} held by {holder} is not counted as {holder} alone\n{}",
                    agent.log()
                )
            });
    };
    let a = Workload::named(a_name).spawn();
    let reused = a.pid;
    expect(a_name, b_name, reused);
    a.stop();
    match spawn_with_pid(b_name, reused) {
        Some(b) => {
            expect(b_name, a_name, reused);
            b.stop();
            let a2 = spawn_with_pid(a_name, reused).expect("pid reused a second time");
            expect(a_name, b_name, reused);
            a2.stop();
            let log = agent.log();
            for n in [a_name, b_name] {
                assert!(
                    log.contains(&format!("pid={reused} group={n}")),
                    "{n} never tracked at pid {reused}"
                );
            }
        }
        None if std::env::var_os("CI").is_some() => {
            panic!("cannot set /proc/sys/kernel/ns_last_pid to reuse a PID (needs root)")
        }
        None => crate::support::tools::skip(
            "PID reuse not checked (cannot set /proc/sys/kernel/ns_last_pid)",
        ),
    }
}

/// The tracker's state at the end comes back to what is alive: only the
/// long-lived workload tracked, with its three threads, the four named
/// groups, and every remembered identity a process alive now (give or
/// take the few that came or went in between), as before the churn.
fn state_came_back_to_what_is_alive(
    end: State,
    baseline: State,
    baseline_live: u64,
    live: (u64, u64),
) {
    assert_eq!(end.tracked, 1, "{end:?}");
    assert_eq!(end.threads, 3, "{end:?}");
    assert_eq!(end.groups, 4, "{end:?}");
    let remembered = end.tracked + end.ignored;
    let (low, high) = (live.0.min(live.1), live.0.max(live.1));
    assert!(
        remembered + 10 >= low && remembered <= high + 10,
        "{remembered} identities remembered, {low}..{high} processes alive: {end:?}"
    );
    assert!(end.pids <= remembered, "{end:?}");
    assert!(
        remembered <= (baseline.tracked + baseline.ignored) + baseline_live / 10 + 20,
        "baseline {baseline:?} ({baseline_live} alive), end {end:?}"
    );
    assert!(end.cycle >= 500, "{} cycles in a minute", end.cycle);
}

/// No counter of any group ever went down between two exports, and the
/// churn's processes, which live for milliseconds (too short for a clock
/// tick of CPU) but each fault in its pages, were all counted.
fn counters_never_went_down(exports: &[Received], churn_name: &str) {
    assert!(exports.len() >= 60, "{} exports", exports.len());
    let mut last: BTreeMap<String, f64> = BTreeMap::new();
    for (i, e) in exports.iter().enumerate() {
        for (series, v) in counters(&points_of(&e.request)) {
            if let Some(before) = last.get(&series) {
                assert!(
                    v >= *before,
                    "{series} went from {before} to {v} at export {i}"
                );
            }
            last.insert(series, v);
        }
    }
    let churn_faults = last
        .iter()
        .find(|(k, _)| {
            k.starts_with(cat::PAGING_FAULTS.name) && k.contains(churn_name) && k.contains("minor")
        })
        .map(|(_, v)| *v)
        .unwrap_or(0.0);
    assert!(churn_faults >= 1000.0, "churn page faults: {churn_faults}");
}

#[test]
fn agent_survives_a_minute_of_churn_with_bounded_state_and_memory() {
    let _cpu = crate::support::cpu_heavy();
    let names = Names {
        churn: unique_name("pgsc"),
        long: unique_name("pgsl"),
        a: unique_name("pgra"),
        b: unique_name("pgrb"),
    };
    let long = Workload::named(&names.long).threads(2, "worker").spawn();
    let receiver = Receiver::start();
    let started = Instant::now();
    let mut agent = soak_agent(&names, &receiver);
    assert!(agent.wait_for_log("tracker state", WAIT), "{}", agent.log());
    std::thread::sleep(Duration::from_secs(3));
    let baseline = *states(&agent.log()).last().unwrap();
    let baseline_live = live_processes();

    let rss_warm = churn_with_warm_rss(&agent, &names.churn, started);
    pid_reuse_is_counted_in_the_holder_s_group(&receiver, &agent, &names);

    // Quiet: the state comes back to what is alive.
    while started.elapsed() < SOAK {
        std::thread::sleep(Duration::from_millis(200));
    }
    let live_before = live_processes();
    std::thread::sleep(Duration::from_millis(500));
    let end = *states(&agent.log()).last().unwrap();
    let live_after = live_processes();
    let rss_end = rss_kib(agent.pid());
    assert!(agent.is_running(), "{}", agent.log());
    let log = agent.log();
    state_came_back_to_what_is_alive(end, baseline, baseline_live, (live_before, live_after));
    assert!(
        rss_end * 10 <= rss_warm * 11,
        "RSS {rss_end} KiB at the end, {rss_warm} KiB after warm-up"
    );
    let exports = receiver.received();
    counters_never_went_down(&exports, &names.churn);
    eprintln!(
        "soak: {} cycles, {} exports, state {baseline:?} -> {end:?}, RSS {rss_warm} -> {rss_end} KiB",
        end.cycle,
        exports.len()
    );

    assert!(!log.contains("panicked"), "{log}");
    agent.terminate();
    let status = agent.wait_timeout(Duration::from_secs(6)).unwrap();
    assert!(status.success(), "{status:?}");
    long.stop();
}
