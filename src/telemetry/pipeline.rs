//! The OTLP pipeline: a tonic gRPC [`MetricExporter`] wrapped in an
//! [`ObservedExporter`], a [`PeriodicReader`], and the meter provider with
//! the resource and the instruments over the snapshot.
//!
//! Every exporter setting comes from the standard `OTEL_*` variables, read
//! by the SDK itself. The agent only fills in what the variables leave
//! unset, and never overrides one that is set:
//! - endpoint: never set in code (`OTEL_EXPORTER_OTLP[_METRICS]_ENDPOINT`,
//!   else the SDK default `http://localhost:4317`);
//! - compression: gzip unless `OTEL_EXPORTER_OTLP[_METRICS]_COMPRESSION`
//!   says `gzip` or `none` (another value is warned about and ignored);
//! - timeout: 4 s unless `OTEL_EXPORTER_OTLP[_METRICS]_TIMEOUT` is a number
//!   of milliseconds (another value is warned about and ignored), so that
//!   the final export fits in the shutdown budget;
//! - headers: `OTEL_EXPORTER_OTLP[_METRICS]_HEADERS` are checked to be
//!   `key=value` lists (the exporter would drop bad entries silently);
//! - export interval: `OTEL_METRIC_EXPORT_INTERVAL` (ms) when set, else the
//!   collection interval;
//! - temporality: `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`, else
//!   cumulative (the SDK's resolution);
//! - `OTEL_METRICS_EXPORTER=none`: no exporter at all (collection only, for
//!   measurements and dry runs); `otlp` or unset exports, anything else is
//!   warned about and exports over OTLP;
//! - TLS for `https://` endpoints with the system roots and the webpki
//!   roots, plus `OTEL_EXPORTER_OTLP[_METRICS]_CERTIFICATE` (CA file) and
//!   `..._CLIENT_CERTIFICATE`/`..._CLIENT_KEY` (mutual TLS) when set.
//!
//! The exporter holds a lazily connected tonic channel whose background
//! task runs on the tokio runtime: [`Telemetry::start`] must be called from
//! inside that runtime, and the runtime must outlive the provider.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::InstrumentationScope;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig, Identity};
use opentelemetry_otlp::{
    Compression, ExporterBuildError, MetricExporter, WithExportConfig, WithTonicConfig,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter as _;
use opentelemetry_sdk::metrics::{
    Instrument, PeriodicReader, SdkMeterProvider, Stream, Temporality,
};

use crate::snapshot::SnapshotCell;

use super::catalogue as cat;
use super::export::{ExportHealth, ObservedExporter};
use super::instruments::{self, InstrumentOptions};

/// Export timeout used when no `OTEL_EXPORTER_OTLP[_METRICS]_TIMEOUT` is set.
pub const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(4);
/// The SDK's endpoint when no variable names one (for logs and status).
pub const DEFAULT_ENDPOINT: &str = "http://localhost:4317";
/// Largest cardinality limit given to one metric stream. The SDK allocates
/// each stream's map up front at this size; beyond it, points fold into the
/// `otel.metric.overflow` series instead of growing memory without bound.
pub const MAX_STREAM_CARDINALITY: usize = 20_000;
/// The SDK's own default per-stream limit, kept as a floor.
const SDK_DEFAULT_CARDINALITY: usize = 2_000;

/// Why the pipeline could not be built: bad `OTEL_*` settings, so the
/// agent exits 2 like for any other bad configuration.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter rejected its configuration (bad endpoint, ...).
    #[error("cannot build the OTLP exporter")]
    Exporter(#[from] ExporterBuildError),
    /// A TLS file named by an `OTEL_*` variable cannot be read.
    #[error("cannot read {var} file {}", path.display())]
    TlsFile {
        /// The variable that names the file.
        var: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Only one of the client certificate and key is set.
    #[error("{0} is set without {1}; mutual TLS needs both")]
    HalfIdentity(&'static str, &'static str),
    /// A headers variable that is not a list of `key=value`.
    #[error("{var}: {why}; write `key=value,key2=value2` (values may be percent-encoded)")]
    Headers {
        /// The variable.
        var: &'static str,
        /// What is wrong.
        why: String,
    },
    /// Delta temporality together with `remove_empty_groups`.
    #[error(
        "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE asks for delta temporality, which \
         cannot be combined with remove_empty_groups: a group removed and recreated between \
         two exports would make its counters go backwards; use cumulative temporality or \
         keep empty groups"
    )]
    DeltaWithRemovedGroups,
    /// Delta temporality together with a configured `empty_group_ttl`.
    #[error(
        "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE asks for delta temporality, which \
         cannot be combined with empty_group_ttl: a forgotten group that came back would have \
         its whole total exported again; use cumulative temporality or empty_group_ttl never"
    )]
    DeltaWithForgottenGroups,
}

/// How many series each metric may have, from the configured bounds on
/// groups and on thread names per group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CardinalityLimits {
    /// Most groups reported.
    pub groups: usize,
    /// Most thread names reported per group.
    pub thread_names: usize,
}

impl Default for CardinalityLimits {
    fn default() -> Self {
        CardinalityLimits {
            groups: crate::proc::DEFAULT_MAX_GROUPS,
            thread_names: crate::proc::DEFAULT_MAX_THREAD_NAMES,
        }
    }
}

impl CardinalityLimits {
    /// The limit for the metric called `name`; `None` for metrics that are
    /// not ours (the SDK default applies).
    pub fn for_metric(&self, name: &str) -> Option<usize> {
        let fanout = |n: usize| n.saturating_mul(self.groups);
        let per_thread = |n: usize| fanout(n).saturating_mul(self.thread_names);
        let limit = match name {
            n if n == cat::STATE_COUNT.name => fanout(cat::attr::PROCESS_STATES.len()),
            // Wait channels are open-ended; a few per group is typical.
            n if n == cat::WCHAN_COUNT.name => fanout(16),
            n if n == cat::THREAD_NAME_COUNT.name => per_thread(1),
            n if n.starts_with("procgroup.thread_name.") => per_thread(2),
            n if n == cat::CPU_TIME.name
                || n == cat::DISK_IO.name
                || n == cat::PAGING_FAULTS.name
                || n == cat::CONTEXT_SWITCHES.name =>
            {
                fanout(2)
            }
            n if n.starts_with("procgroup.") => fanout(1),
            _ => return None,
        };
        // One more for the overflow series itself.
        Some(
            limit
                .saturating_add(1)
                .clamp(SDK_DEFAULT_CARDINALITY, MAX_STREAM_CARDINALITY),
        )
    }
}

/// The exporter settings the agent decides, after looking at the `OTEL_*`
/// variables (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSettings {
    /// False when `OTEL_METRICS_EXPORTER=none`: nothing is exported.
    pub enabled: bool,
    /// Where exports go, as the SDK will resolve it (for logs and status).
    pub endpoint: String,
    /// PeriodicReader interval.
    pub export_interval: Duration,
    /// Timeout to set in code; `None` when a variable sets it.
    pub timeout: Option<Duration>,
    /// Whether to ask for gzip in code (no variable chooses compression).
    pub gzip: bool,
    /// CA certificate file and the variable it came from.
    pub ca_file: Option<(&'static str, PathBuf)>,
    /// Client certificate and key files, for mutual TLS.
    pub client_identity: Option<(PathBuf, PathBuf)>,
}

fn first_set(
    env: &dyn Fn(&str) -> Option<String>,
    vars: [&'static str; 2],
) -> Option<(&'static str, String)> {
    vars.into_iter().find_map(|v| {
        env(v)
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .map(|s| (v, s))
    })
}

/// Whether one of `vars` (most specific first) holds a value that `valid`
/// accepts. Each set value it refuses is logged once with `problem`.
fn usable(
    env: &dyn Fn(&str) -> Option<String>,
    vars: [&'static str; 2],
    valid: impl Fn(&str) -> bool,
    problem: &str,
) -> bool {
    for var in vars {
        let Some(value) = env(var).map(|s| s.trim().to_owned()) else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        if valid(&value) {
            return true;
        }
        tracing::warn!(variable = var, value = %value, "{var}: {problem}");
    }
    false
}

/// Why `value` is not a list of `key=value` headers, as the exporter reads
/// `OTEL_EXPORTER_OTLP_HEADERS` (values may be percent-encoded).
fn check_headers(value: &str) -> Result<(), String> {
    use tonic::codegen::http::{HeaderName, HeaderValue};
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((key, val)) = entry.split_once('=') else {
            return Err(format!("`{entry}` is not `key=value`"));
        };
        let (key, val) = (key.trim(), val.trim());
        if HeaderName::from_bytes(key.as_bytes()).is_err() {
            return Err(format!("`{key}` in `{entry}` is not a header name"));
        }
        if val.is_empty() || HeaderValue::from_str(val).is_err() {
            return Err(format!("`{entry}` has no usable value"));
        }
    }
    Ok(())
}

/// `OTEL_METRIC_EXPORT_INTERVAL` (milliseconds). Without it, or when it
/// is not a positive number (warned), exports follow the collection
/// interval, so that each export carries a fresh snapshot.
fn export_interval(
    env: &dyn Fn(&str) -> Option<String>,
    collection_interval: Duration,
) -> Duration {
    match env("OTEL_METRIC_EXPORT_INTERVAL") {
        Some(raw) => match raw.trim().parse::<u64>() {
            Ok(ms) if ms > 0 => Duration::from_millis(ms),
            _ => {
                tracing::warn!(
                    value = %raw,
                    "OTEL_METRIC_EXPORT_INTERVAL is not a positive number of milliseconds; \
                     exporting at the collection interval"
                );
                collection_interval
            }
        },
        None => collection_interval,
    }
}

/// Refuses malformed OTLP header variables. Authentication usually travels
/// in the headers: a malformed entry that the exporter would drop without
/// a word turns into refused exports far from the cause, so it is refused
/// here.
fn check_header_vars(env: &dyn Fn(&str) -> Option<String>) -> Result<(), TelemetryError> {
    for var in [
        "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
        "OTEL_EXPORTER_OTLP_HEADERS",
    ] {
        if let Some(value) = env(var).filter(|v| !v.trim().is_empty()) {
            check_headers(&value).map_err(|why| TelemetryError::Headers { var, why })?;
        }
    }
    Ok(())
}

/// Warns when the variables ask for another protocol than gRPC, the only
/// one this build exports with, so that the choice is not silently lost.
fn warn_other_protocol(env: &dyn Fn(&str) -> Option<String>) {
    if let Some((var, protocol)) = first_set(
        env,
        [
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ],
    ) && protocol != "grpc"
    {
        tracing::warn!(
            variable = var,
            value = %protocol,
            "procgroups exports over OTLP/gRPC only; ignoring the requested protocol"
        );
    }
}

/// The client certificate and key for mutual TLS. One without the other
/// is refused at startup, naming the variable that is missing, rather than
/// exporting without the identity the operator meant to give.
fn client_identity(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<(PathBuf, PathBuf)>, TelemetryError> {
    let cert = first_set(
        env,
        [
            "OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
        ],
    );
    let key = first_set(
        env,
        [
            "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY",
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
        ],
    );
    match (cert, key) {
        (Some((_, c)), Some((_, k))) => Ok(Some((PathBuf::from(c), PathBuf::from(k)))),
        (Some((var, _)), None) => Err(TelemetryError::HalfIdentity(
            var,
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
        )),
        (None, Some((var, _))) => Err(TelemetryError::HalfIdentity(
            var,
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
        )),
        (None, None) => Ok(None),
    }
}

/// `OTEL_METRICS_EXPORTER`: `none` turns exporting off; any other value
/// than `otlp` is warned about and exports over OTLP anyway, since that is
/// all this build can do.
fn exporter_enabled(env: &dyn Fn(&str) -> Option<String>) -> bool {
    match env("OTEL_METRICS_EXPORTER").as_deref().map(str::trim) {
        Some("none") => false,
        None | Some("" | "otlp") => true,
        Some(other) => {
            tracing::warn!(
                value = %other,
                "OTEL_METRICS_EXPORTER: procgroups exports over OTLP or not at all (none); \
                 exporting over OTLP"
            );
            true
        }
    }
}

impl ExportSettings {
    /// Decides the settings from the variables `env` returns and the
    /// collection interval.
    pub fn from_env(
        env: &dyn Fn(&str) -> Option<String>,
        collection_interval: Duration,
    ) -> Result<Self, TelemetryError> {
        let endpoint = first_set(env, crate::config::OTLP_ENDPOINT_VARS)
            .map(|(_, v)| v)
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());

        let export_interval = export_interval(env, collection_interval);

        // A timeout (milliseconds) or a compression the exporter cannot use
        // is ignored with a warning, as the OpenTelemetry specification
        // says for numbers and enumerations; the exporter then goes on to
        // the general variable, and so does the decision here.
        let timeout_set = usable(
            env,
            [
                "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
                "OTEL_EXPORTER_OTLP_TIMEOUT",
            ],
            |v| v.parse::<u64>().is_ok(),
            "not a number of milliseconds; ignored",
        );
        // Only gzip is built in (no zstd).
        let compression_set = usable(
            env,
            [
                "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
                "OTEL_EXPORTER_OTLP_COMPRESSION",
            ],
            |v| v.eq_ignore_ascii_case("gzip") || v.eq_ignore_ascii_case("none"),
            "not a compression this build supports (gzip, none); ignored",
        );
        check_header_vars(env)?;
        warn_other_protocol(env);

        let ca_file = first_set(
            env,
            [
                "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE",
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
            ],
        )
        .map(|(var, v)| (var, PathBuf::from(v)));
        let client_identity = client_identity(env)?;
        let enabled = exporter_enabled(env);

        Ok(ExportSettings {
            enabled,
            endpoint,
            export_interval,
            timeout: (!timeout_set).then_some(DEFAULT_EXPORT_TIMEOUT),
            gzip: !compression_set,
            ca_file,
            client_identity,
        })
    }

    /// The OTLP/gRPC exporter with the settings decided in code: TLS from
    /// the certificate variables, gzip and the timeout only when no
    /// variable chooses them (the exporter reads those variables itself).
    fn exporter(&self) -> Result<MetricExporter, TelemetryError> {
        let mut builder = MetricExporter::builder()
            .with_tonic()
            .with_tls_config(self.tls_config()?);
        if self.gzip {
            builder = builder.with_compression(Compression::Gzip);
        }
        if let Some(timeout) = self.timeout {
            builder = builder.with_timeout(timeout);
        }
        Ok(builder.build()?)
    }

    fn tls_config(&self) -> Result<ClientTlsConfig, TelemetryError> {
        let mut tls = ClientTlsConfig::new().with_enabled_roots();
        if let Some((var, path)) = &self.ca_file {
            tls = tls.ca_certificate(Certificate::from_pem(read_file(var, path)?));
        }
        if let Some((cert, key)) = &self.client_identity {
            tls = tls.identity(Identity::from_pem(
                read_file("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", cert)?,
                read_file("OTEL_EXPORTER_OTLP_CLIENT_KEY", key)?,
            ));
        }
        Ok(tls)
    }
}

fn read_file(var: &'static str, path: &Path) -> Result<Vec<u8>, TelemetryError> {
    std::fs::read(path).map_err(|source| TelemetryError::TlsFile {
        var,
        path: path.to_owned(),
        source,
    })
}

/// What is exported besides the exporter settings.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Exporter settings.
    pub export: ExportSettings,
    /// Optional instruments.
    pub instruments: InstrumentOptions,
    /// Series bounds.
    pub limits: CardinalityLimits,
    /// Groups are forgotten when they empty (`remove_empty_groups`).
    pub remove_empty_groups: bool,
}

/// The running pipeline: the meter provider and the export health record.
#[derive(Debug, Clone)]
pub struct Telemetry {
    provider: SdkMeterProvider,
    health: Arc<ExportHealth>,
    /// The exporter asks for delta temporality.
    delta: bool,
}

impl Telemetry {
    /// Builds the exporter, the reader and the provider with `resource`, and
    /// registers the instruments over `cell`. Must run inside a tokio runtime.
    pub fn start(
        options: &PipelineOptions,
        resource: Resource,
        cell: &SnapshotCell,
    ) -> Result<Self, TelemetryError> {
        let settings = &options.export;
        if !settings.enabled {
            return Ok(Telemetry::without_export(resource));
        }
        let exporter = settings.exporter()?;
        let health = Arc::new(ExportHealth::new(settings.endpoint.clone()));
        // A group that empties is forgotten, and starts again from zero if it
        // comes back. When both happen between two collections, the SDK sees
        // the same series with a lower total, and its delta is a
        // subtraction that wraps (or panics the reader thread in a debug
        // build). Cumulative export only shows a reset.
        let delta = exporter.temporality() == Temporality::Delta;
        if options.remove_empty_groups && delta {
            return Err(TelemetryError::DeltaWithRemovedGroups);
        }

        let reader = PeriodicReader::builder(ObservedExporter::new(exporter, health.clone()))
            .with_interval(settings.export_interval)
            .build();
        let limits = options.limits;
        let provider = SdkMeterProvider::builder()
            .with_resource(resource)
            .with_reader(reader)
            .with_view(move |i: &Instrument| {
                limits
                    .for_metric(i.name())
                    .and_then(|n| Stream::builder().with_cardinality_limit(n).build().ok())
            })
            .build();
        let meter = provider.meter_with_scope(
            InstrumentationScope::builder("procgroups")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        );
        instruments::register(&meter, cell, options.instruments);
        tracing::info!(
            endpoint = %settings.endpoint,
            export_interval = %humantime::format_duration(settings.export_interval),
            "exporting metrics over OTLP/gRPC"
        );
        Ok(Telemetry {
            provider,
            health,
            delta,
        })
    }

    /// The pipeline under `OTEL_METRICS_EXPORTER=none`. No reader: the
    /// instruments are never collected, and the record says so, so that
    /// health does not wait for an export.
    fn without_export(resource: Resource) -> Self {
        let health = Arc::new(ExportHealth::disabled());
        let provider = SdkMeterProvider::builder().with_resource(resource).build();
        tracing::info!("OTEL_METRICS_EXPORTER=none: collecting without exporting");
        Telemetry {
            provider,
            health,
            delta: false,
        }
    }

    /// True when the exporter sends deltas: a group that is forgotten and
    /// comes back would then be sent its whole total again (the SDK forgets
    /// what it last reported for a series that is not observed), so groups
    /// must not be forgotten.
    pub fn is_delta(&self) -> bool {
        self.delta
    }

    /// The export health record (last outcome, last success).
    pub fn health(&self) -> Arc<ExportHealth> {
        self.health.clone()
    }

    /// Collects and exports now. Blocking: call from a blocking thread.
    pub fn force_flush(&self) -> OTelSdkResult {
        self.provider.force_flush()
    }

    /// Runs the final collection and export and stops the reader. Blocking
    /// (at most about 5 s inside the SDK): call from a blocking thread.
    pub fn shutdown(&self) -> OTelSdkResult {
        self.provider.shutdown()
    }
}

#[cfg(test)]
mod tests;
