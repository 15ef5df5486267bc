//! OpenTelemetry side: the metric catalogue, observable instruments over the
//! latest snapshot, the resource, and the OTLP/gRPC pipeline configured by the
//! standard `OTEL_*` variables.
//!
//! - [`catalogue`]: every metric name, unit and attribute key, once.
//! - [`instruments`]: callbacks that read the snapshot and observe it.
//! - [`resource`]: `service.*`, `host.*`, `k8s.node.name`, `OTEL_RESOURCE_ATTRIBUTES`.
//! - [`export`]: records each export's outcome, logs once per outage.
//! - [`pipeline`]: exporter, reader and provider from the `OTEL_*` variables.

pub mod catalogue;
pub mod export;
pub mod instruments;
pub mod pipeline;
pub mod resource;

pub use export::{ExportHealth, ExportStatus, ObservedExporter};
pub use instruments::InstrumentOptions;
pub use pipeline::{CardinalityLimits, ExportSettings, PipelineOptions, Telemetry, TelemetryError};
pub use resource::HostFacts;
