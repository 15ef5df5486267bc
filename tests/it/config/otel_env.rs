//! The standard `OTEL_*` variables, checked when the binary starts: an
//! endpoint with neither scheme nor port is refused (exit 2, naming the
//! variable).

use crate::support::procs::start_agent;

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
