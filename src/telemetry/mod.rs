//! OpenTelemetry side: the metric catalogue, observable instruments over the
//! latest snapshot, the resource, and the OTLP/gRPC pipeline configured by the
//! standard `OTEL_*` variables.
