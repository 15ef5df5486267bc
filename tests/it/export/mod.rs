//! OTLP export: the pipeline against an in-process receiver, real
//! collectors (rotel, and the upstream OpenTelemetry Collector with
//! Prometheus behind it), process-exporter's series through that
//! Collector, and collectors that fail.

mod collector_faults;
mod pipeline;
mod process_exporter_compat;
mod rotel;
mod upstream_collector;
