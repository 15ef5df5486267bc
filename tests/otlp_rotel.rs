//! End to end with a real collector: rotel (`pip install rotel`, binary
//! `rotel-agent`) receives the agent's OTLP/gRPC export on a loopback port
//! and prints it with its debug log; the test finds `procgroup.cpu.time` and
//! `procgroup.processes` for the workload's group, with the right count.
//!
//! rotel is looked up in `$ROTEL_AGENT`, then `PATH`, then the repository's
//! `.venv` (`.ci/run` creates it). Without it the test is skipped, or fails
//! when `CI` is set.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::procs::{
    Agent, Workload, agent_command, find_tool, free_port, missing_tool, unique_name,
};

const INSTALL: &str = "python3 -m venv .venv && .venv/bin/pip install rotel";

/// One data point of rotel's detailed debug log.
#[derive(Debug, Default, Clone)]
struct DebugPoint {
    metric: String,
    attrs: Vec<(String, String)>,
    value: Option<f64>,
}

/// Parses rotel's `--debug-log-verbosity detailed` output (the collector's
/// debug exporter format): `Metric #`, `-> Name: X`, `NumberDataPoints #`,
/// `-> key: Str(value)`, `Value: N`.
fn parse_debug_log(text: &str) -> Vec<DebugPoint> {
    let mut points = Vec::new();
    let mut metric = String::new();
    let mut current: Option<DebugPoint> = None;
    for raw in text.lines() {
        let line = raw.trim();
        if line.starts_with("Metric #") || line.starts_with("ResourceMetrics #") {
            points.extend(current.take());
        } else if let Some(name) = line.strip_prefix("-> Name: ") {
            metric = name.to_owned();
        } else if line.starts_with("NumberDataPoints #") {
            points.extend(current.take());
            current = Some(DebugPoint {
                metric: metric.clone(),
                ..DebugPoint::default()
            });
        } else if let Some(v) = line.strip_prefix("Value: ") {
            if let Some(p) = current.as_mut() {
                p.value = v.trim().parse().ok();
            }
        } else if let (Some(kv), Some(p)) = (line.strip_prefix("-> "), current.as_mut())
            && let Some((k, v)) = kv.split_once(": ")
        {
            let v = v
                .strip_prefix("Str(")
                .and_then(|v| v.strip_suffix(')'))
                .unwrap_or(v);
            p.attrs.push((k.to_owned(), v.to_owned()));
        }
    }
    points.extend(current);
    points
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

struct Rotel {
    child: Child,
    out: Arc<Mutex<String>>,
}

impl Rotel {
    fn start(binary: &std::path::Path, grpc_port: u16, dir: &std::path::Path) -> Rotel {
        let http_port = free_port();
        let mut child = Command::new(binary)
            .args([
                "start",
                "--otlp-grpc-endpoint",
                &format!("127.0.0.1:{grpc_port}"),
                "--otlp-http-endpoint",
                &format!("127.0.0.1:{http_port}"),
                "--exporter",
                "blackhole",
                "--debug-log",
                "metrics",
                "--debug-log-verbosity",
                "detailed",
            ])
            .arg("--pid-file")
            .arg(dir.join("rotel.pid"))
            .arg("--log-file")
            .arg(dir.join("rotel.log"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting rotel-agent");
        let out = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let sink = out.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let mut o = sink.lock().unwrap();
                    o.push_str(&strip_ansi(&line));
                    o.push('\n');
                }
            });
        }
        Rotel { child, out }
    }

    fn output(&self) -> String {
        self.out.lock().unwrap().clone()
    }
}

impl Drop for Rotel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn rotel_receives_the_group_metrics() {
    let Some(rotel_bin) = find_tool(
        "rotel-agent",
        "ROTEL_AGENT",
        &["lib/python*/site-packages/rotel/rotel-agent"],
    ) else {
        return missing_tool("rotel", INSTALL);
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
    let points = parse_debug_log(text);
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
