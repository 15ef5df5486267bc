//! How the agent binary honours its settings that concern export and logs:
//! the standard temporality variable, `--log-format json`, and unusable
//! `OTEL_*` values (exit code 2).

use std::time::Duration;

use crate::support::otlp::{Kind, select, value};
use crate::support::procs::{Agent, Workload, agent_command, unique_name};
use crate::support::receiver::Receiver;
use opentelemetry_proto::tonic::metrics::v1::AggregationTemporality;
use procgroups::telemetry::catalogue as cat;

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn delta_temporality_preference_is_honoured() {
    let name = unique_name("pgdl");
    let workload = Workload::spawn(&["--name", &name]);
    let receiver = Receiver::start();
    let mut cmd = agent_command();
    cmd.args(["--procnames", &name, "--interval", "500ms"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
        .env("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta");
    let agent = Agent::spawn(cmd);
    let group = [("procgroup.name", name.as_str())];
    let points = receiver
        .wait_for_points(WAIT, |p| value(p, cat::PROCESSES.name, &group) == Some(1.0))
        .unwrap_or_else(|| panic!("no export: {}", agent.log()));
    // Counters become delta; up-down counters stay cumulative (the SDK's
    // mapping of the delta preference).
    assert_eq!(
        select(&points, cat::CPU_TIME.name, &group)[0].kind,
        Kind::Sum {
            monotonic: true,
            temporality: AggregationTemporality::Delta
        }
    );
    assert_eq!(
        select(&points, cat::PROCESSES.name, &group)[0].kind,
        Kind::Sum {
            monotonic: false,
            temporality: AggregationTemporality::Cumulative
        }
    );
    workload.stop();
}

#[test]
fn log_format_json_writes_one_json_object_per_line() {
    let receiver = Receiver::start();
    let mut cmd = agent_command();
    cmd.args([
        "--procnames",
        "pgnothing",
        "--interval",
        "500ms",
        "--log-format",
        "json",
    ])
    .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint());
    let mut agent = Agent::spawn(cmd);
    assert!(
        agent.wait_for_log("procgroups started", WAIT),
        "{}",
        agent.log()
    );
    agent.terminate();
    assert!(
        agent
            .wait_timeout(Duration::from_secs(6))
            .unwrap()
            .success()
    );
    let log = agent.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    let started = lines
        .iter()
        .find(|l| l["message"] == "procgroups started")
        .unwrap();
    assert_eq!(started["level"], "INFO");
    assert_eq!(started["interval"], "500ms");
    assert!(started["timestamp"].is_string());
}

#[test]
fn an_unusable_otlp_endpoint_is_a_configuration_error() {
    let out = agent_command()
        .args(["--procnames", "pgnothing"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://not a host:4317")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{err}");
    assert!(err.contains("not a host"), "{err}");
}
