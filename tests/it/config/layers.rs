//! The configuration layers override each other in the documented order:
//! built-in default < YAML file < `PROCGROUPS_*` variable < flag. Each
//! setting is checked at every step, so a layer that is read but ignored (or
//! applied in the wrong order) shows up as a wrong value. Booleans read
//! the same words in every layer.

use std::path::PathBuf;
use std::time::Duration;

use procgroups::cli::{LogFormat, MetricNames};
use procgroups::config::Config;

use super::{fake_procfs, try_load};
use crate::support::procs::check_config;

fn load(args: &[&str], env: &[(&str, &str)]) -> Config {
    try_load(args, env).unwrap()
}

/// Three fake procfs roots, one per layer that names one, and a YAML file
/// that sets every layered setting to a value of its own.
struct Layers {
    dir: tempfile::TempDir,
    p_file: PathBuf,
    p_env: PathBuf,
    p_flag: PathBuf,
}

impl Layers {
    fn new() -> Layers {
        let dir = tempfile::tempdir().unwrap();
        let p_file = fake_procfs(dir.path(), "file-proc");
        let p_env = fake_procfs(dir.path(), "env-proc");
        let p_flag = fake_procfs(dir.path(), "flag-proc");
        std::fs::write(
            dir.path().join("c.yaml"),
            format!(
                "procfs: {}\ninterval: 10s\nthreads: false\nmax_groups: 10\nlog_format: json\n\
                 status_socket: /file.sock\nrecheck_with_time_limit: 1m\nmax_thread_names: 7\n\
                 metric_names: process-exporter\n",
                p_file.display()
            ),
        )
        .unwrap();
        Layers {
            dir,
            p_file,
            p_env,
            p_flag,
        }
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("c.yaml")
    }

    /// Variables for every layered setting but `max_thread_names`.
    fn env(&self) -> [(&'static str, &str); 7] {
        [
            ("PROCGROUPS_PROCFS", self.p_env.to_str().unwrap()),
            ("PROCGROUPS_INTERVAL", "20s"),
            ("PROCGROUPS_THREADS", "true"),
            ("PROCGROUPS_MAX_GROUPS", "20"),
            ("PROCGROUPS_LOG_FORMAT", "text"),
            ("PROCGROUPS_STATUS_SOCKET", "/env.sock"),
            ("PROCGROUPS_METRIC_NAMES", "otel"),
        ]
    }
}

#[test]
fn defaults_apply_without_file_variables_or_flags() {
    let layers = Layers::new();
    let c = load(&["--procfs", layers.p_flag.to_str().unwrap()], &[]);
    assert_eq!(c.interval, Duration::from_secs(15));
    assert!(c.threads);
    assert_eq!(c.max_groups, 1000);
    assert_eq!(c.max_thread_names, 100);
    assert_eq!(c.log_format, LogFormat::Text);
    assert_eq!(c.metric_names, MetricNames::Otel);
    assert!(!c.recheck);
}

#[test]
fn the_file_overrides_the_defaults() {
    let layers = Layers::new();
    let file = layers.file();
    let c = load(&["--config", file.to_str().unwrap()], &[]);
    assert_eq!(c.procfs, layers.p_file);
    assert_eq!(c.interval, Duration::from_secs(10));
    assert!(!c.threads);
    assert_eq!(c.max_groups, 10);
    assert_eq!(c.max_thread_names, 7);
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.status_socket, PathBuf::from("/file.sock"));
    assert_eq!(c.metric_names, MetricNames::ProcessExporter);
    assert_eq!(c.recheck_time_limit, Duration::from_secs(60));
    assert!(c.recheck, "a recheck time limit implies recheck");
    assert_eq!(c.source_file.as_deref(), Some(file.as_path()));
}

#[test]
fn the_environment_overrides_the_file_and_keeps_what_it_does_not_set() {
    let layers = Layers::new();
    let c = load(
        &["--config", layers.file().to_str().unwrap()],
        &layers.env(),
    );
    assert_eq!(c.procfs, layers.p_env);
    assert_eq!(c.interval, Duration::from_secs(20));
    assert!(c.threads);
    assert_eq!(c.max_groups, 20);
    assert_eq!(c.log_format, LogFormat::Text);
    assert_eq!(c.status_socket, PathBuf::from("/env.sock"));
    assert_eq!(c.metric_names, MetricNames::Otel);
    assert_eq!(c.max_thread_names, 7, "file value kept");
}

/// Flags override the environment; absent flags override nothing.
#[test]
fn file_then_environment_then_flag() {
    let layers = Layers::new();
    let c = load(
        &[
            "--config",
            layers.file().to_str().unwrap(),
            "--procfs",
            layers.p_flag.to_str().unwrap(),
            "--interval",
            "30s",
            "--threads=false",
            "--max-groups",
            "30",
            "--log-format",
            "json",
            "--metric-names",
            "process-exporter",
        ],
        &layers.env(),
    );
    assert_eq!(c.procfs, layers.p_flag);
    assert_eq!(c.interval, Duration::from_secs(30));
    assert!(!c.threads);
    assert_eq!(c.max_groups, 30);
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.metric_names, MetricNames::ProcessExporter);
    assert_eq!(
        c.status_socket,
        PathBuf::from("/env.sock"),
        "env value kept"
    );
    assert_eq!(c.max_thread_names, 7, "file value kept");
}

#[test]
fn config_path_from_the_environment_and_flag() {
    let dir = tempfile::tempdir().unwrap();
    let procfs = fake_procfs(dir.path(), "proc");
    let a = dir.path().join("a.yaml");
    let b = dir.path().join("b.yaml");
    std::fs::write(&a, format!("procfs: {}\ninterval: 11s\n", procfs.display())).unwrap();
    std::fs::write(&b, format!("procfs: {}\ninterval: 12s\n", procfs.display())).unwrap();
    let c = load(&[], &[("PROCGROUPS_CONFIG", a.to_str().unwrap())]);
    assert_eq!(c.interval, Duration::from_secs(11));
    let c = load(
        &["--config", b.to_str().unwrap()],
        &[("PROCGROUPS_CONFIG", a.to_str().unwrap())],
    );
    assert_eq!(c.interval, Duration::from_secs(12));
}

#[test]
fn boolean_flags_take_an_optional_value() {
    let dir = tempfile::tempdir().unwrap();
    let procfs = fake_procfs(dir.path(), "proc");
    let p = procfs.to_str().unwrap();
    let env = [
        ("PROCGROUPS_GATHER_SMAPS", "false"),
        ("PROCGROUPS_CHILDREN", "off"),
    ];
    let c = load(&["--procfs", p], &env);
    assert!(!c.gather_smaps);
    assert!(!c.children);
    let c = load(
        &["--procfs", p, "--gather-smaps", "--children", "true"],
        &env,
    );
    assert!(c.gather_smaps);
    assert!(c.children);
    let c = load(&["--procfs", p, "--recheck"], &[]);
    assert!(c.recheck);
    let c = load(&["--procfs", p], &[("PROCGROUPS_RECHECK", "yes")]);
    assert!(c.recheck);
}

#[test]
fn empty_variables_count_as_unset() {
    let dir = tempfile::tempdir().unwrap();
    let procfs = fake_procfs(dir.path(), "proc");
    let c = load(
        &["--procfs", procfs.to_str().unwrap()],
        &[("PROCGROUPS_INTERVAL", ""), ("PROCGROUPS_CONFIG", "")],
    );
    assert_eq!(c.interval, Duration::from_secs(15));
    assert_eq!(c.source_file, None);
}

#[test]
fn booleans_read_the_same_words_in_flags_variables_and_the_file() {
    let accepted = [
        ("true", true),
        ("True", true),
        ("TRUE", true),
        ("t", true),
        ("T", true),
        ("1", true),
        ("yes", true),
        ("on", true),
        ("false", false),
        ("False", false),
        ("F", false),
        ("0", false),
        ("no", false),
        ("Off", false),
    ];
    for (word, value) in accepted {
        let flag = format!("--threads={word}");
        let yaml = format!("threads: {word}\n");
        for (layer, run) in [
            ("flag", check_config(&["--threads", word], &[], None)),
            ("flag=", check_config(&[&flag], &[], None)),
            (
                "variable",
                check_config(&[], &[("PROCGROUPS_THREADS", word)], None),
            ),
            ("file", check_config(&[], &[], Some(&yaml))),
        ] {
            let (code, stdout, stderr) = run;
            assert_eq!(code, 0, "{layer} {word:?}: {stderr}");
            assert!(
                stdout.contains(&format!("\nthreads: {value}\n")),
                "{layer} {word:?}: {stdout}"
            );
        }
    }
    for word in ["enabled", "2", "tru", "y", "nein"] {
        let yaml = format!("threads: {word}\n");
        for (layer, names, run) in [
            (
                "flag",
                "--threads",
                check_config(&["--threads", word], &[], None),
            ),
            (
                "variable",
                "PROCGROUPS_THREADS",
                check_config(&[], &[("PROCGROUPS_THREADS", word)], None),
            ),
            (
                "file",
                "procgroups.yaml",
                check_config(&[], &[], Some(&yaml)),
            ),
        ] {
            let (code, _, stderr) = run;
            assert_eq!(code, 2, "{layer} {word:?} accepted");
            assert!(stderr.contains(names), "{layer} {word:?}: {stderr}");
            assert!(
                stderr.contains(&format!("`{word}` is not a boolean")),
                "{layer} {word:?}: {stderr}"
            );
        }
    }
}

#[test]
fn exit_accounting_from_file_environment_and_flag() {
    use procgroups::cli::ExitAccounting;
    let dir = tempfile::tempdir().unwrap();
    let procfs = fake_procfs(dir.path(), "proc");
    let p = procfs.to_str().unwrap();
    let file = dir.path().join("c.yaml");
    std::fs::write(&file, "exit_accounting: children\n").unwrap();
    let f = file.to_str().unwrap();
    assert_eq!(
        load(&["--procfs", p], &[]).exit_accounting,
        ExitAccounting::Auto
    );
    assert_eq!(
        load(&["--procfs", p, "--config", f], &[]).exit_accounting,
        ExitAccounting::Children
    );
    let env = [("PROCGROUPS_EXIT_ACCOUNTING", "auto")];
    assert_eq!(
        load(&["--procfs", p, "--config", f], &env).exit_accounting,
        ExitAccounting::Auto
    );
    assert_eq!(
        load(&["--procfs", p, "--exit-accounting", "children"], &env).exit_accounting,
        ExitAccounting::Children
    );
    // A value that is no mode is refused, naming the setting.
    let bad = [("PROCGROUPS_EXIT_ACCOUNTING", "taskstats")];
    let err = try_load(&["--procfs", p], &bad).unwrap_err().to_string();
    assert!(err.contains("exit_accounting"), "{err}");
}
