//! Export outcome tracking: a [`PushMetricExporter`] wrapper that records
//! whether each export reached the collector, and logs once per outage
//! (when exports start failing, with the endpoint and the cause, and when
//! they recover), instead of once per failed export.
//!
//! The recorded [`ExportStatus`] is what health and status reporting read:
//! the outcome of the last export and the time of the last success. A
//! failed export loses nothing with cumulative temporality: the next
//! successful one carries the totals.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;

/// What is known about the exports so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportStatus {
    /// False when nothing is exported (`OTEL_METRICS_EXPORTER=none`):
    /// health and status must then not wait for, or report, exports.
    pub enabled: bool,
    /// The collector endpoint exports go to.
    pub endpoint: String,
    /// Outcome of the last export; `None` before the first one.
    pub last_ok: Option<bool>,
    /// When the last export finished, whatever its outcome.
    pub last_attempt: Option<SystemTime>,
    /// When an export last succeeded.
    pub last_success: Option<SystemTime>,
    /// Why the last failed export failed.
    pub last_error: Option<String>,
    /// Failed exports since the last success (0 when healthy).
    pub consecutive_failures: u64,
    /// When the current outage began (first failure after a success or at start).
    pub failing_since: Option<SystemTime>,
    /// Successful exports since start.
    pub succeeded: u64,
    /// Failed exports since start.
    pub failed: u64,
    /// The agent is shutting down: the final export's outcome is reported
    /// by the shutdown itself, not as the start of an outage.
    pub stopping: bool,
}

/// Shared record of export outcomes; cheap to read from any thread.
#[derive(Debug, Default)]
pub struct ExportHealth {
    status: Mutex<ExportStatus>,
}

impl ExportHealth {
    /// A record for exports to `endpoint`.
    pub fn new(endpoint: impl Into<String>) -> Self {
        ExportHealth {
            status: Mutex::new(ExportStatus {
                enabled: true,
                endpoint: endpoint.into(),
                ..ExportStatus::default()
            }),
        }
    }

    /// The record of an agent that exports nothing: no endpoint, never an
    /// attempt.
    pub fn disabled() -> Self {
        ExportHealth::default()
    }

    /// A copy of the current status.
    pub fn status(&self) -> ExportStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Marks the start of shutdown: failures from now on are not outages.
    pub fn mark_stopping(&self) {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stopping = true;
    }

    /// Records a successful export at `now`; logs the end of an outage.
    pub fn record_success(&self, now: SystemTime) {
        let mut s = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        match s.last_ok {
            None => tracing::info!(endpoint = %s.endpoint, "first metrics export succeeded"),
            Some(false) => {
                let outage = s
                    .failing_since
                    .and_then(|since| now.duration_since(since).ok())
                    .unwrap_or(Duration::ZERO);
                tracing::info!(
                    endpoint = %s.endpoint,
                    failed_exports = s.consecutive_failures,
                    outage = %humantime::format_duration(round_to_ms(outage)),
                    "metrics export recovered; this export carries the totals"
                );
            }
            Some(true) => {}
        }
        s.last_ok = Some(true);
        s.last_attempt = Some(now);
        s.last_success = Some(now);
        s.consecutive_failures = 0;
        s.failing_since = None;
        s.succeeded += 1;
    }

    /// Records a failed export at `now`; logs the start of an outage.
    pub fn record_failure(&self, now: SystemTime, error: &str) {
        let mut s = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        if s.stopping {
            tracing::debug!(endpoint = %s.endpoint, error, "metrics export failed during shutdown");
        } else if s.last_ok != Some(false) {
            tracing::warn!(
                endpoint = %s.endpoint,
                error,
                "metrics export failed; collection continues and the next successful export \
                 carries the totals (logged once per outage)"
            );
            s.failing_since = Some(now);
        } else {
            tracing::debug!(endpoint = %s.endpoint, error, "metrics export failed again");
        }
        s.last_ok = Some(false);
        s.last_attempt = Some(now);
        s.last_error = Some(error.to_owned());
        s.consecutive_failures += 1;
        s.failed += 1;
    }
}

fn round_to_ms(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Wraps an exporter and records the outcome of each export in an
/// [`ExportHealth`].
#[derive(Debug)]
pub struct ObservedExporter<E> {
    inner: E,
    health: Arc<ExportHealth>,
}

impl<E> ObservedExporter<E> {
    /// Wraps `inner`, recording into `health`.
    pub fn new(inner: E, health: Arc<ExportHealth>) -> Self {
        ObservedExporter { inner, health }
    }
}

impl<E: PushMetricExporter> PushMetricExporter for ObservedExporter<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        match &result {
            Ok(()) => self.health.record_success(SystemTime::now()),
            Err(e) => self
                .health
                .record_failure(SystemTime::now(), &e.to_string()),
        }
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn an_outage_is_recorded_from_its_first_failure_until_the_next_success() {
        let h = ExportHealth::new("http://collector:4317");
        assert_eq!(h.status().last_ok, None);

        h.record_success(at(10));
        h.record_failure(at(20), "Unavailable: connection refused");
        h.record_failure(at(30), "Unavailable: connection refused");
        let s = h.status();
        assert_eq!(s.last_ok, Some(false));
        assert_eq!(s.last_success, Some(at(10)));
        assert_eq!(s.failing_since, Some(at(20)));
        assert_eq!(s.consecutive_failures, 2);
        assert_eq!(
            s.last_error.as_deref(),
            Some("Unavailable: connection refused")
        );

        h.record_success(at(40));
        let s = h.status();
        assert_eq!(s.last_ok, Some(true));
        assert_eq!(s.last_success, Some(at(40)));
        assert_eq!(s.failing_since, None);
        assert_eq!(s.consecutive_failures, 0);
        assert_eq!((s.succeeded, s.failed), (2, 2));
        assert_eq!(s.endpoint, "http://collector:4317");
    }

    #[test]
    fn failures_during_shutdown_are_recorded_but_not_reported_as_an_outage() {
        let h = ExportHealth::new("http://c:4317");
        let out = logged(|| {
            h.record_success(at(1));
            h.mark_stopping();
            h.record_failure(at(2), "runtime dropped the dispatch task");
        });
        assert!(!out.contains("WARN"), "{out}");
        let s = h.status();
        assert!(s.stopping);
        assert_eq!(s.last_ok, Some(false));
        assert_eq!(s.failed, 1);
    }

    #[test]
    fn failing_from_the_start_is_an_outage_too() {
        let h = ExportHealth::new("x");
        h.record_failure(at(5), "refused");
        let s = h.status();
        assert_eq!(s.failing_since, Some(at(5)));
        assert_eq!(s.last_success, None);
        assert_eq!(s.last_attempt, Some(at(5)));
    }

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(f: impl FnOnce()) -> String {
        let buf = Buffer::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            // Other tests register callsites concurrently without a
            // subscriber; make sure ours are enabled for this one.
            tracing::callsite::rebuild_interest_cache();
            f()
        });
        let out = buf.0.lock().unwrap().clone();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn each_outage_is_logged_once_with_endpoint_and_cause() {
        let h = ExportHealth::new("http://127.0.0.1:4317");
        let out = logged(|| {
            h.record_success(at(1));
            for i in 0..5 {
                h.record_failure(
                    at(2 + i),
                    "Unavailable: tcp connect error: Connection refused",
                );
            }
            h.record_success(at(10));
            h.record_success(at(11));
            h.record_failure(at(12), "DeadlineExceeded");
            h.record_failure(at(13), "DeadlineExceeded");
        });
        let warns: Vec<&str> = out.lines().filter(|l| l.contains("WARN")).collect();
        assert_eq!(warns.len(), 2, "{out}");
        assert!(warns[0].contains("http://127.0.0.1:4317"), "{out}");
        assert!(warns[0].contains("Connection refused"), "{out}");
        assert!(warns[1].contains("DeadlineExceeded"), "{out}");
        let recovered: Vec<&str> = out.lines().filter(|l| l.contains("recovered")).collect();
        assert_eq!(recovered.len(), 1, "{out}");
        assert!(recovered[0].contains("failed_exports=5"), "{out}");
        assert!(recovered[0].contains("outage=8s"), "{out}");
    }

    /// An inner exporter that fails while `down` is set.
    struct Flaky {
        down: Arc<std::sync::atomic::AtomicBool>,
    }

    impl PushMetricExporter for Flaky {
        async fn export(&self, _: &ResourceMetrics) -> OTelSdkResult {
            if self.down.load(std::sync::atomic::Ordering::SeqCst) {
                Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure(
                    "export failed with gRPC code: Unavailable".into(),
                ))
            } else {
                Ok(())
            }
        }
        fn force_flush(&self) -> OTelSdkResult {
            Ok(())
        }
        fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
            Ok(())
        }
        fn temporality(&self) -> Temporality {
            Temporality::Cumulative
        }
    }

    #[test]
    fn the_wrapper_records_what_the_inner_exporter_returns() {
        let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let health = Arc::new(ExportHealth::new("e"));
        let exporter = ObservedExporter::new(Flaky { down: down.clone() }, health.clone());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let metrics = ResourceMetrics::default();

        assert!(rt.block_on(exporter.export(&metrics)).is_err());
        let s = health.status();
        assert_eq!(s.last_ok, Some(false));
        assert!(s.last_error.unwrap().contains("Unavailable"));

        down.store(false, std::sync::atomic::Ordering::SeqCst);
        assert!(rt.block_on(exporter.export(&metrics)).is_ok());
        let s = health.status();
        assert_eq!(s.last_ok, Some(true));
        assert!(s.last_success.is_some());
        assert_eq!(exporter.temporality(), Temporality::Cumulative);
    }
}
