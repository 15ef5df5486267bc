//! OTLP export: the pipeline against an in-process receiver, real
//! collectors (rotel, and the upstream OpenTelemetry Collector with
//! Prometheus behind it), and collectors that fail.

mod collector_faults;
mod pipeline;
mod rotel;
mod upstream_collector;
