//! OTLP export: the pipeline against an in-process receiver, a real
//! collector, and collectors that fail.

mod collector_faults;
mod pipeline;
mod rotel;
