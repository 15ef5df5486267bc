//! Flattening of OTLP metric requests into one row per data point, so that
//! tests can look points up by metric name and attributes.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, NumberDataPoint, metric, number_data_point,
};

/// The kind of metric a point belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A Sum (counter when monotonic, up-down counter otherwise).
    Sum {
        /// Counter (true) or up-down counter (false).
        monotonic: bool,
        /// Cumulative or delta.
        temporality: AggregationTemporality,
    },
    /// A Gauge.
    Gauge,
    /// Anything else (histograms...).
    Other,
}

/// One data point with its metric and resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Metric name.
    pub metric: String,
    /// Metric unit.
    pub unit: String,
    /// Metric kind.
    pub kind: Kind,
    /// Point attributes, values rendered as strings.
    pub attrs: BTreeMap<String, String>,
    /// Resource attributes.
    pub resource: BTreeMap<String, String>,
    /// The value (ints converted).
    pub value: f64,
    /// Whether the value was an int (vs a double) on the wire.
    pub is_int: bool,
    /// Start of the aggregation, ns since the epoch.
    pub start_time_unix_nano: u64,
    /// Time of the point, ns since the epoch.
    pub time_unix_nano: u64,
}

fn render(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

/// Attributes as a map of strings.
pub fn attr_map(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), render(&kv.value)))
        .collect()
}

/// Every data point of a request.
pub fn points_of(request: &ExportMetricsServiceRequest) -> Vec<Point> {
    let mut out = Vec::new();
    for rm in &request.resource_metrics {
        let resource = rm
            .resource
            .as_ref()
            .map(|r| attr_map(&r.attributes))
            .unwrap_or_default();
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                let (kind, points): (Kind, &[NumberDataPoint]) = match &m.data {
                    Some(metric::Data::Sum(s)) => (
                        Kind::Sum {
                            monotonic: s.is_monotonic,
                            temporality: AggregationTemporality::try_from(
                                s.aggregation_temporality,
                            )
                            .unwrap_or(AggregationTemporality::Unspecified),
                        },
                        &s.data_points,
                    ),
                    Some(metric::Data::Gauge(g)) => (Kind::Gauge, &g.data_points),
                    _ => (Kind::Other, &[]),
                };
                for p in points {
                    let (value, is_int) = match p.value {
                        Some(number_data_point::Value::AsDouble(d)) => (d, false),
                        Some(number_data_point::Value::AsInt(i)) => (i as f64, true),
                        None => (f64::NAN, false),
                    };
                    out.push(Point {
                        metric: m.name.clone(),
                        unit: m.unit.clone(),
                        kind,
                        attrs: attr_map(&p.attributes),
                        resource: resource.clone(),
                        value,
                        is_int,
                        start_time_unix_nano: p.start_time_unix_nano,
                        time_unix_nano: p.time_unix_nano,
                    });
                }
            }
        }
    }
    out
}

/// The points of `metric` whose attributes include all of `want`.
pub fn select<'a>(points: &'a [Point], metric: &str, want: &[(&str, &str)]) -> Vec<&'a Point> {
    points
        .iter()
        .filter(|p| p.metric == metric)
        .filter(|p| {
            want.iter()
                .all(|(k, v)| p.attrs.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

/// The value of the one point of `metric` with exactly the attributes
/// `want`; `None` when there is none.
pub fn value(points: &[Point], metric: &str, want: &[(&str, &str)]) -> Option<f64> {
    points
        .iter()
        .find(|p| {
            p.metric == metric
                && p.attrs.len() == want.len()
                && want
                    .iter()
                    .all(|(k, v)| p.attrs.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|p| p.value)
}

/// The counters (monotonic sums) among `points`, by metric and attributes
/// (one key a series).
pub fn counters<'a>(points: impl IntoIterator<Item = &'a Point>) -> BTreeMap<String, f64> {
    points
        .into_iter()
        .filter(|p| {
            matches!(
                p.kind,
                Kind::Sum {
                    monotonic: true,
                    ..
                }
            )
        })
        .map(|p| (format!("{} {:?}", p.metric, p.attrs), p.value))
        .collect()
}
