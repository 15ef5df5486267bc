//! End to end with a real collector: rotel (`pip install rotel`, binary
//! `rotel-agent`) receives the agent's OTLP/gRPC export on a loopback port
//! and prints it with its debug log; the test finds `procgroup.cpu.time` and
//! `procgroup.processes` for the workload's group, with the right count.
//!
//! rotel is looked up in `$ROTEL_AGENT`, then `PATH`, then the repository's
//! `.venv` (`.ci/run` creates it). Without it the test is skipped, or fails
//! when `CI` is set.

use std::time::{Duration, Instant};

use crate::support::procs::{Agent, Workload, agent_command, free_port, unique_name};
use crate::support::rotel::{DebugPoint, Rotel, parse_exports, strip_ansi};
use crate::support::tools::{ROTEL, require};

/// Every point of every export printed so far, in order.
fn parse_debug_log(text: &str) -> Vec<DebugPoint> {
    parse_exports(text).into_iter().flatten().collect()
}

#[test]
fn rotel_receives_the_group_metrics() {
    let Some(rotel_bin) = require(&ROTEL) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let rotel = Rotel::start(&rotel_bin, port, dir.path());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !rotel.output().contains("Starting Rotel") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }

    let name = unique_name("pgrt");
    let workload = Workload::spawn(&["--name", &name, "--children", "2", "--child-name", &name]);
    let mut cmd = agent_command();
    cmd.args(["--procnames", &name, "--interval", "500ms"]).env(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        format!("http://127.0.0.1:{port}"),
    );
    let agent = Agent::spawn(cmd);

    let has = |points: &[DebugPoint], metric: &str| {
        points
            .iter()
            .filter(|p| p.metric == metric)
            .filter(|p| {
                p.attrs
                    .iter()
                    .any(|(k, v)| k == "procgroup.name" && v == &name)
            })
            .cloned()
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let (processes, cpu) = loop {
        let points = parse_debug_log(&rotel.output());
        let processes = has(&points, "procgroup.processes");
        let cpu = has(&points, "procgroup.cpu.time");
        if processes.iter().any(|p| p.value == Some(3.0)) && !cpu.is_empty() {
            break (processes, cpu);
        }
        assert!(
            Instant::now() < deadline,
            "rotel printed no procgroup.processes = 3 for {name}\nrotel:\n{}\nagent:\n{}",
            rotel.output(),
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        processes.iter().all(|p| p.value == Some(3.0)),
        "{processes:?}"
    );
    let modes: Vec<&str> = cpu
        .iter()
        .flat_map(|p| p.attrs.iter())
        .filter(|(k, _)| k == "cpu.mode")
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(
        modes.contains(&"user") && modes.contains(&"system"),
        "{cpu:?}"
    );
    assert!(
        cpu.iter().all(|p| p.value.is_some_and(|v| v >= 0.0)),
        "{cpu:?}"
    );
    let text = rotel.output();
    assert!(text.contains("service.name: Str(procgroups)"), "{text}");
    workload.stop();
}

#[test]
fn the_debug_log_parser_reads_points_and_attributes() {
    let text = "Metric #0\nDescriptor:\n     -> Name: procgroup.cpu.time\n     -> Unit: s\n\
NumberDataPoints #0\nData point attributes:\n     -> cpu.mode: Str(user)\n     -> procgroup.name: Str(web)\n\
StartTimestamp: 1\nTimestamp: 2\nValue: 1.5\nMetric #1\nDescriptor:\n     -> Name: procgroup.processes\n\
NumberDataPoints #0\nData point attributes:\n     -> procgroup.name: Str(web)\nValue: 3\n";
    let text = format!("ResourceMetrics #0\n{text}");
    let points = parse_debug_log(&text);
    assert_eq!(points.len(), 2, "{points:?}");
    assert_eq!(points[0].metric, "procgroup.cpu.time");
    assert_eq!(points[0].value, Some(1.5));
    assert!(
        points[0]
            .attrs
            .contains(&("cpu.mode".into(), "user".into()))
    );
    assert_eq!(points[1].metric, "procgroup.processes");
    assert_eq!(points[1].value, Some(3.0));
    assert_eq!(strip_ansi("\u{1b}[2mab\u{1b}[0mc"), "abc");
}
