//! The standard `OTEL_*` variables, checked when the binary starts, as the
//! OpenTelemetry specification says for each: an endpoint with neither
//! scheme nor port and malformed headers are refused (exit 2, naming the
//! variable); a compression or timeout that cannot be used and a malformed
//! resource attribute list are ignored with one warning each.

use std::time::Duration;

use crate::support::otlp::attr_map;
use crate::support::procs::{Agent, agent_command, start_agent};
use crate::support::receiver::Receiver;

const WAIT: Duration = Duration::from_secs(20);

/// Starting with `env` exits 2 with a message naming `var` and containing
/// every one of `says`.
fn assert_refused(env: &[(&str, &str)], var: &str, says: &[&str]) {
    let (code, log) = start_agent(&[], env);
    assert_eq!(code, Some(2), "{env:?} was not refused:\n{log}");
    assert!(
        log.contains(var),
        "{env:?}: the message must name {var}:\n{log}"
    );
    for s in says {
        assert!(
            log.contains(s),
            "{env:?}: the message must say {s:?}:\n{log}"
        );
    }
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn an_endpoint_without_scheme_or_port_is_refused() {
    for var in [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    ] {
        assert_refused(
            &[(var, "localhost")],
            var,
            &["`localhost`", "http://localhost:4317"],
        );
    }
    // `host:port` stays accepted (completed with https:// by the exporter).
    let (code, log) = start_agent(&[], &[("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4317")]);
    assert_eq!(code, None, "{log}");
}

/// The log lines that mention `var`.
fn lines_naming<'a>(log: &'a str, var: &str) -> Vec<&'a str> {
    log.lines()
        .filter(|l| {
            l.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .any(|w| w == var)
        })
        .collect()
}

#[test]
fn malformed_headers_are_refused() {
    for var in [
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
    ] {
        assert_refused(&[(var, "novalue")], var, &["`novalue`", "key=value"]);
        assert_refused(&[(var, "a=b,=c")], var, &["key=value"]);
    }
}

#[test]
fn unusable_otel_values_are_ignored_with_one_warning_each() {
    let receiver = Receiver::start();
    let mut cmd = agent_command();
    cmd.args(["--interval", "200ms", "--threads", "false"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
        // Numbers and enumerations the exporter cannot use are ignored, as
        // the specification says: gzip and the 4 s timeout stay.
        .env("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "zstd")
        .env("OTEL_EXPORTER_OTLP_COMPRESSION", "bogus")
        .env("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "abc")
        .env("OTEL_EXPORTER_OTLP_TIMEOUT", "-5")
        // A malformed resource list is discarded as a whole.
        .env("OTEL_RESOURCE_ATTRIBUTES", "team=a,broken")
        .env("RUST_LOG", "procgroups=info");
    let agent = Agent::spawn(cmd);
    let received = receiver
        .wait_for(WAIT, |r| (r.len() >= 3).then(|| r.to_vec()))
        .unwrap_or_else(|| panic!("no exports:\n{}", agent.log()));
    for r in &received {
        assert_eq!(r.encoding.as_deref(), Some("gzip"), "{}", agent.log());
        for rm in &r.request.resource_metrics {
            let attrs = attr_map(&rm.resource.as_ref().unwrap().attributes);
            assert!(!attrs.contains_key("team"), "{attrs:?}");
            assert_eq!(
                attrs.get("service.name").map(String::as_str),
                Some("procgroups")
            );
        }
    }
    let log = agent.log();
    for var in [
        "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
        "OTEL_EXPORTER_OTLP_COMPRESSION",
        "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "OTEL_RESOURCE_ATTRIBUTES",
    ] {
        let lines = lines_naming(&log, var);
        assert_eq!(lines.len(), 1, "{var}: one warning, not {lines:#?}");
        assert!(
            lines[0].contains("WARN") || lines[0].contains("ERROR"),
            "{}",
            lines[0]
        );
    }
}
