//! The OTLP endpoint variables, named once, and the check that a set one is
//! a usable OTLP/gRPC endpoint, so that a bad value fails at startup beside
//! its name instead of at the first export.

use super::*;

/// The variables that name the OTLP collector, most specific first.
pub const OTLP_ENDPOINT_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// Checks that every set OTLP endpoint variable is an `http://` or
/// `https://` URL with a host, or a bare `host:port`, which the exporter
/// completes with `https://` (`http://` when `OTEL_EXPORTER_OTLP_INSECURE`
/// is true). A bare host without a port is refused: the exporter would
/// quietly connect to port 443. The exporter would otherwise fail only when it is built, or
/// only when it first connects and then on every export, far from the
/// setting that is wrong.
pub fn check_otlp_endpoints(env: &[(String, String)]) -> Result<(), ConfigError> {
    for var in OTLP_ENDPOINT_VARS {
        let Some((_, value)) = env.iter().rev().find(|(k, _)| k == var) else {
            continue;
        };
        let value = value.trim();
        // Empty means unset, as the OpenTelemetry specification says.
        if value.is_empty() {
            continue;
        }
        check_otlp_endpoint(value)
            .map_err(|why| ConfigError::invalid(Origin::Env(var.to_string()), "", why))?;
    }
    Ok(())
}

/// Why `value` is not a usable OTLP/gRPC endpoint.
fn check_otlp_endpoint(value: &str) -> Result<(), String> {
    let example = "write e.g. `http://localhost:4317` or `https://collector.example:4317`";
    // A scheme as the exporter recognises one: text before `://` that is
    // not part of a path, query or fragment.
    let has_scheme = value
        .split_once("://")
        .is_some_and(|(scheme, _)| !scheme.contains(['/', '?', '#']));
    let url = if has_scheme {
        value.to_string()
    } else {
        format!("https://{value}")
    };
    let uri: tonic::codegen::http::Uri = url
        .parse()
        .map_err(|e| format!("`{value}` is not a URL ({e}); {example}"))?;
    match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") => {}
        Some(s) => {
            return Err(format!(
                "`{value}` has scheme `{s}`; OTLP/gRPC needs http or https; {example}"
            ));
        }
        None => return Err(format!("`{value}` is not a URL; {example}")),
    }
    let authority = match uri.authority() {
        Some(a) if !a.host().is_empty() => a,
        _ => return Err(format!("`{value}` has no host; {example}")),
    };
    // The URL parser keeps a port it cannot read as a number (`:99999`,
    // `:`) and reports none; the text after the host's last `:` tells.
    let port_text = authority
        .as_str()
        .rsplit_once(':')
        .map(|(_, p)| p)
        .filter(|p| !p.contains(']'));
    match (authority.port_u16(), port_text) {
        // A bare host would become `https://host` on port 443, never an
        // OTLP/gRPC port: the specification wants a URL with a scheme, and
        // the only shorthand kept is `host:port`.
        (None, None) if !has_scheme => Err(format!(
            "`{value}` has neither a scheme nor a port; OTLP/gRPC listens on port 4317: \
             write `http://{value}:4317` (plain text) or `https://{value}:4317` (TLS)"
        )),
        (Some(0), _) => Err(format!("`{value}` has port 0; {example}")),
        (None, Some(p)) => Err(format!(
            "`{value}` has port `{p}`, which is not a number from 1 to 65535; {example}"
        )),
        _ => Ok(()),
    }
}
