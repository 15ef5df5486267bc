//! The agent's lifecycle against the in-process receiver: a collector that
//! is down or stalled never stops collection and is logged once per outage;
//! the next successful export carries the right cumulative values; SIGTERM
//! ends the agent with exit 0 within 6 s, after a final export. Every
//! cycle runs on the one collection thread.

use std::time::{Duration, Instant};

use crate::support::otlp::{select, value};
use crate::support::procs::{Agent, Workload, agent_command, free_port, run_once, unique_name};
use crate::support::receiver::{Mode, Receiver};
use procgroups::telemetry::catalogue as cat;

const WAIT: Duration = Duration::from_secs(20);

fn agent(endpoint: &str, name: &str, env: &[(&str, &str)]) -> Agent {
    let mut cmd = agent_command();
    cmd.args([
        "--procnames",
        name,
        "--interval",
        "500ms",
        "--threads",
        "false",
    ])
    .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    .env("RUST_LOG", "procgroups=debug");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Agent::spawn(cmd)
}

fn cycles_logged(agent: &Agent) -> usize {
    agent.log().matches("cycle done").count()
}

fn outage_warnings(agent: &Agent) -> usize {
    agent
        .log()
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("metrics export failed"))
        .count()
}

#[test]
fn a_collector_that_is_down_never_stops_collection_and_gets_the_totals_later() {
    let name = unique_name("pgdn");
    let workload = Workload::spawn(&["--name", &name, "--threads", "1", "--spin"]);
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut agent = agent(&endpoint, &name, &[]);

    // Nobody listens: cycles go on, exports fail, one warning for the outage.
    let deadline = Instant::now() + WAIT;
    while cycles_logged(&agent) < 6 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(cycles_logged(&agent) >= 6, "{}", agent.log());
    assert!(agent.is_running());
    assert!(
        agent.wait_for_log("metrics export failed", WAIT),
        "{}",
        agent.log()
    );
    let log = agent.log();
    assert!(
        log.contains(&endpoint),
        "the warning names the endpoint: {log}"
    );
    assert!(
        log.contains("Unavailable"),
        "the warning gives the cause: {log}"
    );

    // What the workload burns over one second, measured independently.
    let once = run_once(&[
        "--procnames",
        &name,
        "--threads",
        "false",
        "--output",
        "json",
        "--once-delay",
        "1s",
    ]);
    assert!(once.status.success(), "{once:?}");
    let json: serde_json::Value = serde_json::from_slice(&once.stdout).unwrap();
    let g = &json["groups"][&name];
    let once_cpu =
        g["cpu_user_seconds"].as_f64().unwrap() + g["cpu_system_seconds"].as_f64().unwrap();
    assert!(once_cpu > 0.0, "{json}");
    assert_eq!(
        outage_warnings(&agent),
        1,
        "one warning per outage: {}",
        agent.log()
    );

    // The collector comes up on that port: exports resume by themselves and
    // carry the totals since the agent started.
    let receiver = Receiver::start_on(format!("127.0.0.1:{port}").parse().unwrap());
    let group = [("procgroup.name", name.as_str())];
    let points = receiver
        .wait_for_points(WAIT, |p| value(p, cat::PROCESSES.name, &group) == Some(1.0))
        .unwrap_or_else(|| panic!("no export after the collector came up: {}", agent.log()));
    let cpu: f64 = select(&points, cat::CPU_TIME.name, &group)
        .iter()
        .map(|p| p.value)
        .sum();
    // Both are sums of floating-point increments: allow a few ulps.
    assert!(
        cpu + 1e-9 >= once_cpu,
        "cumulative CPU {cpu} < the {once_cpu} --once measured in a shorter window"
    );
    assert!(agent.wait_for_log("recovered", WAIT), "{}", agent.log());
    assert_eq!(outage_warnings(&agent), 1, "{}", agent.log());
    assert!(agent.is_running());
    workload.stop();
}

#[test]
fn a_stalled_collector_does_not_delay_the_cycles() {
    let name = unique_name("pgst");
    let receiver = Receiver::start();
    receiver.set_mode(Mode::Stall);
    let agent = agent(
        &receiver.endpoint(),
        &name,
        &[("OTEL_EXPORTER_OTLP_TIMEOUT", "10000")],
    );
    // The first export hangs (10 s timeout); meanwhile cycles continue.
    let deadline = Instant::now() + WAIT;
    while receiver.attempts() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(receiver.attempts() >= 1, "{}", agent.log());
    let before = cycles_logged(&agent);
    std::thread::sleep(Duration::from_secs(3));
    let after = cycles_logged(&agent);
    assert!(
        after >= before + 3,
        "cycles while the export hangs: {before} -> {after}\n{}",
        agent.log()
    );
    assert!(receiver.received().is_empty());
}

#[test]
fn sigterm_exits_zero_within_six_seconds_after_a_final_export() {
    let name = unique_name("pgtm");
    let workload = Workload::spawn(&["--name", &name, "--threads", "2"]);
    let receiver = Receiver::start();
    // Periodic exports only every minute: whatever arrives within this test
    // is the final export of the shutdown.
    let mut agent = agent(
        &receiver.endpoint(),
        &name,
        &[("OTEL_METRIC_EXPORT_INTERVAL", "60000")],
    );
    let deadline = Instant::now() + WAIT;
    while cycles_logged(&agent) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(cycles_logged(&agent) >= 2, "{}", agent.log());
    assert_eq!(receiver.attempts(), 0);

    let sent = Instant::now();
    agent.terminate();
    let status = agent
        .wait_timeout(Duration::from_secs(6))
        .unwrap_or_else(|| panic!("still running 6 s after SIGTERM: {}", agent.log()));
    let took = sent.elapsed();
    assert!(status.success(), "{status:?}: {}", agent.log());
    assert!(took <= Duration::from_secs(6), "{took:?}");

    let received = receiver.received();
    assert_eq!(received.len(), 1, "exactly the final export");
    let points = crate::support::otlp::points_of(&received[0].request);
    assert_eq!(
        value(
            &points,
            cat::PROCESSES.name,
            &[("procgroup.name", name.as_str())]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &points,
            cat::THREAD_COUNT.name,
            &[("procgroup.name", name.as_str())]
        ),
        Some(3.0)
    );
    workload.stop();
}

#[test]
fn sigterm_with_a_stalled_collector_still_exits_in_time() {
    let name = unique_name("pgts");
    let receiver = Receiver::start();
    receiver.set_mode(Mode::Stall);
    let mut agent = agent(
        &receiver.endpoint(),
        &name,
        &[("OTEL_EXPORTER_OTLP_TIMEOUT", "30000")],
    );
    let deadline = Instant::now() + WAIT;
    while receiver.attempts() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(receiver.attempts() >= 1, "{}", agent.log());
    let sent = Instant::now();
    agent.terminate();
    let status = agent
        .wait_timeout(Duration::from_secs(6))
        .unwrap_or_else(|| panic!("still running 6 s after SIGTERM: {}", agent.log()));
    assert!(status.success(), "{status:?}: {}", agent.log());
    assert!(sent.elapsed() <= Duration::from_secs(6));
}

#[test]
fn sigterm_with_no_collector_exits_zero_and_says_why_the_final_export_failed() {
    let name = unique_name("pgtn");
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let mut agent = agent(&endpoint, &name, &[]);
    let deadline = Instant::now() + WAIT;
    while cycles_logged(&agent) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(cycles_logged(&agent) >= 2, "{}", agent.log());
    agent.terminate();
    let status = agent
        .wait_timeout(Duration::from_secs(6))
        .unwrap_or_else(|| panic!("still running 6 s after SIGTERM: {}", agent.log()));
    assert!(status.success(), "{status:?}: {}", agent.log());
    let log = agent.log();
    let line = log
        .lines()
        .find(|l| l.contains("final export failed"))
        .unwrap_or_else(|| panic!("no final export warning: {log}"));
    // The exporter's cause, not the SDK's bare "Failed to shutdown".
    assert!(line.contains(&endpoint), "{line}");
    assert!(
        ["refused", "Unavailable"].iter().any(|c| line.contains(c)),
        "{line}"
    );
}

/// The names of the agent's threads (their comm).
fn thread_names(pid: u32) -> Vec<String> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/task")).expect("listing the agent's tasks");
    dir.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .map(|c| c.trim_end().to_string())
        .collect()
}

#[test]
fn every_cycle_runs_on_the_one_collection_thread_and_none_on_a_pool() {
    // The shortest interval, over the whole host with threads on: on a
    // busy machine the next cycle is due when one ends, when a pool of
    // blocking threads may start another thread for it. A pool's threads
    // would be named like the runtime's workers.
    let mut cmd = agent_command();
    cmd.args(["--interval", "100ms", "--threads", "true"])
        .env("OTEL_METRICS_EXPORTER", "none")
        .env("RUST_LOG", "procgroups=debug");
    let agent = Agent::spawn(cmd);
    let deadline = Instant::now() + WAIT;
    while cycles_logged(&agent) < 20 {
        assert!(
            Instant::now() < deadline,
            "20 cycles in {WAIT:?}:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let names = thread_names(agent.pid());
    let count = |n: &str| names.iter().filter(|t| *t == n).count();
    assert_eq!(count("procgroups-scan"), 1, "{names:?}");
    // The runtime's two workers, and no thread of its blocking pool.
    assert_eq!(count("procgroups-rt"), 2, "{names:?}");
}
