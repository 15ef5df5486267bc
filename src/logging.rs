//! Log setup: tracing-subscriber with a `RUST_LOG`-style filter, text or
//! JSON lines on stderr, and the transport internals (tonic, h2, hyper) quiet
//! unless asked for.
//!
//! The quiet defaults come first and `RUST_LOG` is applied on top of them,
//! so `RUST_LOG=debug` raises the agent's own level without flooding the log
//! with HTTP/2 frames, while `RUST_LOG=h2=trace` still turns them on.
//! The SDK's per-export error (`PeriodicReader.ExportError`) is always
//! dropped: the exporter wrapper reports the same failure once per outage,
//! with the endpoint, instead of once per export interval.

use std::io::IsTerminal as _;

use tracing_subscriber::filter::{EnvFilter, FilterExt as _, filter_fn};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer as _, fmt};

use crate::cli::LogFormat;

/// Directives applied before `RUST_LOG`: the agent at `info`, transport and
/// SDK internals at `warn` (the OTLP exporter's per-attempt retry warnings at
/// `error`, since outages are reported once by the agent).
pub const DEFAULT_DIRECTIVES: &str = "info,h2=warn,hyper=warn,hyper_util=warn,tonic=warn,\
tower=warn,rustls=warn,opentelemetry=warn,opentelemetry_sdk=warn,opentelemetry-otlp=error";

/// SDK events that repeat on every export while a collector is down.
const REPEATED_SDK_EVENTS: [&str; 1] = ["PeriodicReader.ExportError"];

/// The filter for `rust_log` (the value of `RUST_LOG`), and the reason it
/// was ignored when it does not parse.
pub fn build_filter(rust_log: Option<&str>) -> (EnvFilter, Option<String>) {
    let default = || EnvFilter::new(DEFAULT_DIRECTIVES);
    match rust_log.map(str::trim).filter(|s| !s.is_empty()) {
        None => (default(), None),
        Some(user) => match EnvFilter::try_new(format!("{DEFAULT_DIRECTIVES},{user}")) {
            Ok(f) => (f, None),
            Err(e) => (default(), Some(format!("ignoring RUST_LOG={user:?}: {e}"))),
        },
    }
}

fn keep_event(meta: &tracing::Metadata<'_>) -> bool {
    !(meta.target() == "opentelemetry_sdk" && REPEATED_SDK_EVENTS.contains(&meta.name()))
}

/// Installs the global subscriber. Safe to call once; later calls do nothing.
pub fn init(format: LogFormat) {
    let (filter, problem) = build_filter(std::env::var("RUST_LOG").ok().as_deref());
    let filter = filter.and(filter_fn(keep_event));
    let layer = match format {
        LogFormat::Text => fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
    };
    if tracing_subscriber::registry()
        .with(layer)
        .try_init()
        .is_ok()
        && let Some(problem) = problem
    {
        tracing::warn!("{problem}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Emits a fixed set of events under `RUST_LOG=rust_log` and returns what
    /// was written.
    fn emitted(rust_log: Option<&str>) -> String {
        let buf = Buffer::default();
        let (filter, _) = build_filter(rust_log);
        let writer = buf.clone();
        let layer = fmt::layer()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .with_filter(filter.and(filter_fn(keep_event)));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::callsite::rebuild_interest_cache();
            tracing::info!(target: "procgroups::agent", "agent-info");
            tracing::debug!(target: "procgroups::agent", "agent-debug");
            tracing::debug!(target: "h2::codec", "h2-debug");
            tracing::warn!(target: "h2::codec", "h2-warn");
            tracing::info!(target: "tonic::transport", "tonic-info");
            tracing::warn!(target: "opentelemetry-otlp", "otlp-warn");
            tracing::error!(name: "PeriodicReader.ExportError", target: "opentelemetry_sdk", "sdk-export-error");
            tracing::error!(name: "PeriodicReader.WorkerThreadTerminated", target: "opentelemetry_sdk", "sdk-worker-gone");
        });
        let out = buf.0.lock().unwrap().clone();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn transport_internals_are_quiet_by_default() {
        let out = emitted(None);
        assert!(out.contains("agent-info"), "{out}");
        assert!(!out.contains("agent-debug"), "{out}");
        assert!(!out.contains("h2-debug"), "{out}");
        assert!(out.contains("h2-warn"), "{out}");
        assert!(!out.contains("tonic-info"), "{out}");
        assert!(!out.contains("otlp-warn"), "{out}");
        assert!(!out.contains("sdk-export-error"), "{out}");
        assert!(out.contains("sdk-worker-gone"), "{out}");
    }

    #[test]
    fn rust_log_raises_the_agent_without_unmuting_transports() {
        let out = emitted(Some("debug"));
        assert!(out.contains("agent-debug"), "{out}");
        assert!(!out.contains("h2-debug"), "{out}");
    }

    #[test]
    fn rust_log_can_unmute_a_transport_explicitly() {
        let out = emitted(Some("h2=debug"));
        assert!(out.contains("h2-debug"), "{out}");
        assert!(!out.contains("agent-debug"), "{out}");
    }

    #[test]
    fn an_invalid_rust_log_falls_back_to_the_defaults() {
        let (_, problem) = build_filter(Some("foo=notalevel"));
        assert!(problem.unwrap().contains("foo=notalevel"));
        let out = emitted(Some("foo=notalevel"));
        assert!(out.contains("agent-info"), "{out}");
    }
}
