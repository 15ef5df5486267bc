//! What loading refuses, naming the rule or setting, and what it fills in.

use super::*;

#[test]
fn rule_errors_name_the_rule_and_field() {
    let e = load_yaml("process_names:\n  - comm: [a]\n  - name: db\n    cmdline: ['ok', '(x']\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("config.yaml: process_names[1] (name \"db\"): cmdline[1]: bad regex"),
        "{e}"
    );

    let e = load_yaml("process_names:\n  - name: x\n    comm: [chromium-browser]\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("process_names[0] (name \"x\"): comm[0]:"), "{e}");
    assert!(e.contains("can never match"), "{e}");

    let e = load_yaml("process_names:\n  - name: lonely\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("process_names[0] (name \"lonely\"): no selector"),
        "{e}"
    );

    let e = load_yaml("process_names:\n  - name: '{{.Matches.P}}'\n    comm: [a]\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("process_names[0] (name \"{{.Matches.P}}\"): name:"),
        "{e}"
    );
}

#[test]
fn recheck_time_limit_implies_recheck() {
    let c = cli_with(|c| c.recheck_with_time_limit = Some("30s".into())).unwrap();
    assert!(c.recheck);
    assert_eq!(c.recheck_time_limit, Duration::from_secs(30));
    let c = cli_with(|_| {}).unwrap();
    assert!(!c.recheck);
}

#[test]
fn interval_must_be_positive() {
    for bad in ["0s", "0", "-1s", "15", "soon"] {
        let e = cli_with(|c| c.interval = Some(bad.into()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("flag --interval: interval:"), "{bad}: {e}");
    }
    let c = cli_with(|c| c.interval = Some("1m30s".into())).unwrap();
    assert_eq!(c.interval, Duration::from_secs(90));
}

#[test]
fn once_delay_defaults_to_one_second() {
    let c = cli_with(|c| c.once = true).unwrap();
    assert_eq!(c.once, Some(DEFAULT_ONCE_DELAY));
    let c = cli_with(|c| {
        c.once = true;
        c.once_delay = Some("250ms".into());
    })
    .unwrap();
    assert_eq!(c.once, Some(Duration::from_millis(250)));
    assert_eq!(cli_with(|_| {}).unwrap().once, None);
}

#[test]
fn procfs_without_stat_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli {
        procfs: Some(dir.path().to_path_buf()),
        ..Cli::default()
    };
    let e = load_from(&cli, &[]).unwrap_err().to_string();
    assert!(
        e.contains(&dir.path().join("stat").display().to_string()),
        "{e}"
    );
    assert!(e.starts_with("flag --procfs: procfs:"), "{e}");
}

#[test]
fn kubernetes_service_links_are_not_settings() {
    let env = vec![
        (
            "PROCGROUPS_SERVICE_HOST".to_string(),
            "10.0.0.1".to_string(),
        ),
        (
            "PROCGROUPS_PORT".to_string(),
            "tcp://10.0.0.1:80".to_string(),
        ),
        (
            "PROCGROUPS_PORT_80_TCP_ADDR".to_string(),
            "10.0.0.1".to_string(),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli {
        procfs: Some(fake_procfs(dir.path())),
        ..Cli::default()
    };
    assert!(load_from(&cli, &env).is_ok());
    let env = vec![("PROCGROUPS_INTERVALL".to_string(), "5s".to_string())];
    let e = load_from(&cli, &env).unwrap_err().to_string();
    assert!(e.contains("PROCGROUPS_INTERVALL"), "{e}");
}

#[test]
fn otlp_endpoints_must_be_http_urls_with_a_host() {
    let env = |var: &str, v: &str| vec![(var.to_string(), v.to_string())];
    for good in [
        "http://localhost:4317",
        "https://collector.example:4317",
        "http://127.0.0.1:4317/",
        "http://[::1]:4317",
        "HTTP://LOCALHOST:4317",
        " http://localhost:4317 ",
        "",
        // Completed by the exporter with https:// (or http:// when
        // OTEL_EXPORTER_OTLP_INSECURE is true).
        "localhost:4317",
    ] {
        for var in super::OTLP_ENDPOINT_VARS {
            super::check_otlp_endpoints(&env(var, good)).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
    }
    for (bad, why) in [
        ("localhost:99999", "port `99999`"),
        ("exa mple:4317", "not a URL"),
        ("ftp://localhost:4317", "scheme `ftp`"),
        ("grpc://localhost:4317", "scheme `grpc`"),
        ("http://", "not a URL"),
        ("http://exa mple:4317", "not a URL"),
        ("http://localhost:99999", "port `99999`"),
        ("http://localhost:", "port ``"),
        ("http://[::1]:70000", "port `70000`"),
        ("http://localhost:0", "port 0"),
        ("/v1/metrics", "not a URL"),
        (":4317", "no host"),
        // Would become https://collector.example:443.
        ("collector.example", "neither a scheme nor a port"),
        ("localhost", "`http://localhost:4317`"),
    ] {
        for var in super::OTLP_ENDPOINT_VARS {
            let e = super::check_otlp_endpoints(&env(var, bad))
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"))
                .to_string();
            assert!(
                e.starts_with(&format!("environment variable {var}: ")),
                "{e}"
            );
            assert!(e.contains(why), "{bad}: {e}");
            assert!(e.contains(bad.trim()), "{e}");
        }
    }
}
