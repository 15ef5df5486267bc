//! The exporter settings decided from fixed `OTEL_*` variables, the
//! pipeline without an exporter, and the cardinality limits per metric.

use super::*;
use std::collections::HashMap;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[test]
fn exporter_none_means_no_export() {
    let none = ExportSettings::from_env(
        &env_of(&[("OTEL_METRICS_EXPORTER", "none")]),
        Duration::from_secs(15),
    )
    .unwrap();
    assert!(!none.enabled);
    for v in ["otlp", "", "prometheus"] {
        let s = ExportSettings::from_env(
            &env_of(&[("OTEL_METRICS_EXPORTER", v)]),
            Duration::from_secs(15),
        )
        .unwrap();
        assert!(s.enabled, "{v:?}");
    }
    // No exporter, no reader: no runtime is needed, and stopping has
    // nothing to flush.
    let options = PipelineOptions {
        export: none,
        instruments: InstrumentOptions::default(),
        limits: CardinalityLimits::default(),
        remove_empty_groups: false,
    };
    let t = Telemetry::start(&options, Resource::builder().build(), &SnapshotCell::new()).unwrap();
    let status = t.health().status();
    assert!(!status.enabled);
    assert_eq!(status.endpoint, "");
    assert_eq!(status.last_success, None);
    t.shutdown().unwrap();
}

#[test]
fn unset_variables_get_the_agent_defaults() {
    let s = ExportSettings::from_env(&env_of(&[]), Duration::from_secs(15)).unwrap();
    assert!(s.enabled);
    assert_eq!(s.endpoint, DEFAULT_ENDPOINT);
    assert_eq!(s.export_interval, Duration::from_secs(15));
    assert_eq!(s.timeout, Some(DEFAULT_EXPORT_TIMEOUT));
    assert!(s.gzip);
    assert_eq!(s.ca_file, None);
    assert_eq!(s.client_identity, None);
}

#[test]
fn set_variables_are_never_overridden() {
    let env = env_of(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4317"),
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://metrics:4317"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "30000"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "9000"),
        ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "none"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ca.pem"),
    ]);
    let s = ExportSettings::from_env(&env, Duration::from_secs(15)).unwrap();
    assert_eq!(s.endpoint, "http://metrics:4317");
    assert_eq!(s.export_interval, Duration::from_secs(30));
    assert_eq!(s.timeout, None);
    assert!(!s.gzip);
    assert_eq!(
        s.ca_file,
        Some((
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            PathBuf::from("/etc/ca.pem")
        ))
    );
}

#[test]
fn a_bad_export_interval_falls_back_to_the_collection_interval() {
    for bad in ["0", "15s", "-1", ""] {
        let env = env_of(&[("OTEL_METRIC_EXPORT_INTERVAL", bad)]);
        let s = ExportSettings::from_env(&env, Duration::from_millis(500)).unwrap();
        assert_eq!(s.export_interval, Duration::from_millis(500), "{bad:?}");
    }
}

#[test]
fn unusable_timeouts_and_compressions_fall_through_to_the_general_variable() {
    let s = ExportSettings::from_env(
        &env_of(&[
            ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "abc"),
            ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "zstd"),
        ]),
        Duration::from_secs(1),
    )
    .unwrap();
    assert_eq!(s.timeout, Some(DEFAULT_EXPORT_TIMEOUT));
    assert!(s.gzip);
    let s = ExportSettings::from_env(
        &env_of(&[
            ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "abc"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "9000"),
            ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "bogus"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "none"),
        ]),
        Duration::from_secs(1),
    )
    .unwrap();
    assert_eq!(s.timeout, None);
    assert!(!s.gzip);
}

#[test]
fn headers_must_be_key_value_pairs() {
    for good in ["a=b", "authorization=Bearer%20x, x-team = ops", "a=b,"] {
        check_headers(good).unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    for bad in ["novalue", "a=b,novalue", "=v", "a=", "bad key=v"] {
        assert!(check_headers(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_client_certificate_without_a_key_is_refused() {
    let env = env_of(&[("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/c.pem")]);
    let err = ExportSettings::from_env(&env, Duration::from_secs(1)).unwrap_err();
    assert!(
        err.to_string().contains("OTEL_EXPORTER_OTLP_CLIENT_KEY"),
        "{err}"
    );
}

#[test]
fn a_missing_ca_file_names_the_variable_and_the_path() {
    let env = env_of(&[("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem")]);
    let s = ExportSettings::from_env(&env, Duration::from_secs(1)).unwrap();
    let err = s.tls_config().unwrap_err().to_string();
    assert!(err.contains("OTEL_EXPORTER_OTLP_CERTIFICATE"), "{err}");
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
}

#[test]
fn cardinality_limits_follow_the_fanout_of_each_metric() {
    let l = CardinalityLimits {
        groups: 1500,
        thread_names: 4,
    };
    assert_eq!(l.for_metric("procgroup.processes"), Some(2_000));
    assert_eq!(l.for_metric("procgroup.cpu.time"), Some(3_001));
    assert_eq!(l.for_metric("procgroup.state.count"), Some(7_501));
    assert_eq!(l.for_metric("procgroup.thread_name.count"), Some(6_001));
    assert_eq!(l.for_metric("procgroup.thread_name.cpu.time"), Some(12_001));
    assert_eq!(
        CardinalityLimits::default().for_metric("procgroup.thread_name.cpu.time"),
        Some(MAX_STREAM_CARDINALITY)
    );
    assert_eq!(l.for_metric("procgroups.groups"), None);
    assert_eq!(l.for_metric("http.server.duration"), None);
}
