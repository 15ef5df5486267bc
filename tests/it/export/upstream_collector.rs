//! The OpenTelemetry Collector that users run, built from the upstream
//! modules (`tests/otelcol/`, `tests/otelcol/build.sh`), with the
//! configuration the repository ships:
//!
//! - `otelcol validate` accepts every collector configuration the
//!   repository ships (the file at the top, and the ConfigMap that kustomize
//!   renders from `deploy/kubernetes/base/`), and refuses a broken one;
//! - `otel-collector.yaml`, run as shipped with only its listening
//!   addresses moved to free loopback ports, receives the agent's push and
//!   exposes the workload's group on its Prometheus endpoint;
//! - Debian's Prometheus server scrapes that endpoint, and a PromQL `rate()`
//!   over the group's CPU counter gives a plausible value for a workload
//!   that keeps a thread spinning.
//!
//! The Collector is looked up in `$OTELCOL`, then `PATH`, then the build
//! output `tests/otelcol/otelcol-procgroups`; Prometheus in `$PROMETHEUS`,
//! then `PATH`. A missing program skips the test with a message, or fails it
//! when `CI` is set (`.ci/run` installs and builds both).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::procs::{
    Agent, Workload, agent_command, free_port, stat_fields, ticks_to_seconds, unique_name,
};
use crate::support::tools::{self, KUBECTL, OTELCOL, PROMETHEUS, repo_root};
use serde::Deserialize;
use serde_yaml::Value;

/// The shipped Collector configuration, at the top of the repository.
const SHIPPED_CONFIG: &str = "otel-collector.yaml";

/// The upstream Collector build, or `None` after a skip message.
pub(super) fn otelcol() -> Option<PathBuf> {
    tools::require(&OTELCOL)
}

/// Debian's Prometheus server, or `None` after a skip message.
fn prometheus() -> Option<PathBuf> {
    tools::require(&PROMETHEUS)
}

fn validate(otelcol: &Path, config: &Path) -> Output {
    Command::new(otelcol)
        .arg("validate")
        .arg(format!("--config={}", config.display()))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn describe(out: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Whether a YAML document is a Collector configuration: it has
/// `receivers`, `exporters` and `service.pipelines` at the top.
fn is_collector_config(doc: &Value) -> bool {
    doc.get("receivers").is_some()
        && doc.get("exporters").is_some()
        && doc
            .get("service")
            .and_then(|s| s.get("pipelines"))
            .is_some()
}

/// Every YAML file in the repository outside build outputs, as (path, text).
fn repository_yaml_files() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if !name.starts_with('.') && name != "target" {
                    walk(&path, out);
                }
            } else if name.ends_with(".yaml") || name.ends_with(".yml") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path, text));
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo_root(), &mut out);
    out
}

/// The documents of a YAML stream, up to the first that does not parse (the
/// repository holds deliberately broken files; after an error serde_yaml's
/// document iterator repeats it forever).
fn yaml_documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map_while(|doc| Value::deserialize(doc).ok())
        .filter(|doc| !doc.is_null())
        .collect()
}

/// The Collector configurations held in the data of `doc` when it is a
/// ConfigMap: (key, text) pairs.
fn collector_configs_in_config_map(doc: &Value) -> Vec<(String, String)> {
    if doc.get("kind").and_then(Value::as_str) != Some("ConfigMap") {
        return Vec::new();
    }
    doc.get("data")
        .and_then(Value::as_mapping)
        .into_iter()
        .flatten()
        .filter_map(|(key, value)| {
            let text = value.as_str()?;
            yaml_documents(text)
                .iter()
                .any(is_collector_config)
                .then(|| (key.as_str().unwrap_or_default().to_owned(), text.to_owned()))
        })
        .collect()
}

/// Every file in the repository that is a Collector configuration, and
/// every Collector configuration held in a ConfigMap of a manifest (written
/// to `dir`), each with how to name it.
fn repository_collector_configs(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut configs: Vec<(String, PathBuf)> = Vec::new();
    for (path, text) in repository_yaml_files() {
        let shown = path
            .strip_prefix(repo_root())
            .unwrap()
            .display()
            .to_string();
        for (i, doc) in yaml_documents(&text).iter().enumerate() {
            if is_collector_config(doc) {
                configs.push((shown.clone(), path.clone()));
            }
            for (key, embedded) in collector_configs_in_config_map(doc) {
                let file = dir.join(format!("configmap-{}-{i}.yaml", configs.len()));
                std::fs::write(&file, embedded).unwrap();
                configs.push((format!("{shown} ConfigMap key {key}"), file));
            }
        }
    }
    configs
}

/// The Collector configurations of the ConfigMaps kustomize renders from
/// deploy/kubernetes/base/, as deployed (written to `dir`); `None` where
/// kubectl is missing.
fn kustomized_collector_configs(dir: &Path) -> Option<Vec<(String, PathBuf)>> {
    let kubectl = tools::require(&KUBECTL)?;
    let out = Command::new(kubectl)
        .args(["kustomize", "deploy/kubernetes/base"])
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl kustomize: {}",
        describe(&out)
    );
    let rendered = String::from_utf8(out.stdout).unwrap();
    let mut configs = Vec::new();
    for doc in yaml_documents(&rendered) {
        let name = doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        for (key, text) in collector_configs_in_config_map(&doc) {
            let file = dir.join(format!("rendered-{}.yaml", configs.len()));
            std::fs::write(&file, text).unwrap();
            configs.push((format!("kustomize ConfigMap {name} key {key}"), file));
        }
    }
    assert!(
        !configs.is_empty(),
        "kubectl kustomize deploy/kubernetes/base rendered no ConfigMap holding a Collector configuration:\n{rendered}"
    );
    Some(configs)
}

#[test]
fn validate_accepts_every_shipped_collector_config() {
    let Some(otelcol) = otelcol() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut configs = repository_collector_configs(dir.path());
    assert!(
        configs.iter().any(|(shown, _)| shown == SHIPPED_CONFIG),
        "{SHIPPED_CONFIG} is not recognised as a Collector configuration: {configs:?}"
    );
    configs.extend(kustomized_collector_configs(dir.path()).unwrap_or_default());

    for (shown, path) in &configs {
        let out = validate(&otelcol, path);
        assert!(
            out.status.success(),
            "otelcol validate {shown}: {}",
            describe(&out)
        );
        println!("otelcol validate {shown}: ok");
    }
}

#[test]
fn validate_refuses_a_broken_config() {
    let Some(otelcol) = otelcol() else { return };
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(repo_root().join(SHIPPED_CONFIG)).unwrap();
    // The shipped file itself passes (so what fails below is the damage).
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, &shipped).unwrap();
    let out = validate(&otelcol, &good);
    assert!(out.status.success(), "{}", describe(&out));

    let cases = [
        // A misspelt setting of the prometheus exporter.
        ("endpoint: 0.0.0.0:8889", "endpont: 0.0.0.0:8889", "endpont"),
        // A pipeline naming an exporter that is not defined.
        (
            "exporters: [prometheus, debug]",
            "exporters: [prometheus, debug, otlp/missing]",
            "otlp/missing",
        ),
        // A component type this distribution does not have.
        (
            "  debug:\n",
            "  kafka:\n    brokers: [localhost:9092]\n  debug:\n",
            "kafka",
        ),
    ];
    for (from, to, named) in cases {
        assert!(
            shipped.contains(from),
            "{SHIPPED_CONFIG} no longer contains {from:?}"
        );
        let broken = dir.path().join("broken.yaml");
        std::fs::write(&broken, shipped.replacen(from, to, 1)).unwrap();
        let out = validate(&otelcol, &broken);
        assert!(
            !out.status.success(),
            "validate passed with {to:?}: {}",
            describe(&out)
        );
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            said.contains(named),
            "the error does not name {named:?}: {said}"
        );
    }
}

/// A running Collector; killed when dropped.
pub(super) struct Collector {
    child: Child,
    log: Arc<Mutex<String>>,
    /// OTLP/gRPC port on 127.0.0.1.
    pub(super) grpc: u16,
    /// Prometheus exporter port on 127.0.0.1.
    pub(super) prometheus: u16,
}

impl Collector {
    /// Runs `otel-collector.yaml` as shipped, with only the addresses it
    /// listens on moved to free loopback ports (`--set`, which the Collector
    /// merges over the file): parallel tests, and other users of the
    /// machine, must not compete for 4317, 4318, 8889, 13133 and the
    /// Collector's own telemetry port 8888, which `service.telemetry`
    /// cannot move with `--set`, so its own metrics are turned off.
    pub(super) fn start(otelcol: &Path) -> Collector {
        let (grpc, http, prometheus, health) = (free_port(), free_port(), free_port(), free_port());
        let sets = [
            format!("receivers::otlp::protocols::grpc::endpoint=127.0.0.1:{grpc}"),
            format!("receivers::otlp::protocols::http::endpoint=127.0.0.1:{http}"),
            format!("exporters::prometheus::endpoint=127.0.0.1:{prometheus}"),
            format!("extensions::health_check::endpoint=127.0.0.1:{health}"),
            "service::telemetry::metrics::level=none".to_owned(),
        ];
        let mut cmd = Command::new(otelcol);
        cmd.arg(format!(
            "--config={}",
            repo_root().join(SHIPPED_CONFIG).display()
        ));
        for set in &sets {
            cmd.arg(format!("--set={set}"));
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let sink = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let mut l = sink.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let collector = Collector {
            child,
            log,
            grpc,
            prometheus,
        };
        // Ready when the health check says so: every pipeline has started.
        let deadline = Instant::now() + Duration::from_secs(20);
        while http_get(health, "/").map(|(status, _)| status) != Some(200) {
            assert!(
                Instant::now() < deadline,
                "the Collector did not become healthy:\n{}",
                collector.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        collector
    }

    pub(super) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.0 GET on 127.0.0.1: (status, body), or `None` when the
/// connection fails.
pub(super) fn http_get(port: u16, path_and_query: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {path_and_query} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// Percent-encodes a URL query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One sample of the Prometheus text format.
#[derive(Debug, Clone)]
pub(super) struct Sample {
    pub(super) name: String,
    pub(super) labels: Vec<(String, String)>,
    pub(super) value: f64,
}

impl Sample {
    pub(super) fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the Prometheus text exposition format (the samples; `# HELP`
/// and `# TYPE` lines are returned apart as (name, type)).
pub(super) fn parse_exposition(text: &str) -> (Vec<Sample>, Vec<(String, String)>) {
    let mut samples = Vec::new();
    let mut types = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some((name, kind)) = rest.split_once(' ') {
                types.push((name.to_owned(), kind.to_owned()));
            }
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.strip_suffix('}').unwrap()),
            None => (series, ""),
        };
        let mut parsed = Vec::new();
        let mut rest = labels;
        while let Some((key, after)) = rest.split_once("=\"") {
            // Values escape `"` and `\` with a backslash.
            let mut value = String::new();
            let mut chars = after.char_indices();
            let mut end = after.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, e)) = chars.next() {
                            value.push(if e == 'n' { '\n' } else { e });
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            parsed.push((key.trim_start_matches(',').to_owned(), value));
            rest = &after[end..];
        }
        samples.push(Sample {
            name: name.to_owned(),
            labels: parsed,
            value: value.parse().unwrap(),
        });
    }
    (samples, types)
}

/// The workload of the end-to-end tests: a process whose one extra thread
/// spins (burns CPU) and one child of the same name, so the group has two
/// processes and a CPU counter that grows.
fn spinning_workload(name: &str) -> Workload {
    Workload::named(name)
        .threads(1, "worker")
        .spin()
        .children(1, name)
        .spawn()
}

/// The agent pushing to `collector` every 500 ms, with a rules file that
/// names the workload's group after its comm.
fn agent_for(collector: &Collector, name: &str, dir: &Path) -> Agent {
    let rules = dir.join("rules.yaml");
    std::fs::write(
        &rules,
        format!("process_names:\n  - name: \"{{{{.Comm}}}}\"\n    comm:\n      - {name}\n"),
    )
    .unwrap();
    let mut cmd = agent_command();
    cmd.arg("--config")
        .arg(&rules)
        .args(["--interval", "500ms"])
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{}", collector.grpc),
        );
    Agent::spawn(cmd)
}

/// Scrapes the Collector's Prometheus endpoint until `check` holds for the
/// samples of group `name`; returns the last scrape.
fn wait_for_group(
    collector: &Collector,
    agent: &Agent,
    name: &str,
    timeout: Duration,
    check: impl Fn(&[Sample]) -> bool,
) -> (Vec<Sample>, Vec<(String, String)>, String) {
    let deadline = Instant::now() + timeout;
    loop {
        let body = http_get(collector.prometheus, "/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default();
        let (samples, types) = parse_exposition(&body);
        let group: Vec<Sample> = samples
            .into_iter()
            .filter(|s| s.label("procgroup_name") == Some(name))
            .collect();
        if check(&group) {
            return (group, types, body);
        }
        assert!(
            Instant::now() < deadline,
            "the Collector's Prometheus endpoint has no complete group {name}:\n{body}\ncollector:\n{}\nagent:\n{}",
            collector.log(),
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn the_shipped_config_exposes_the_pushed_groups_to_prometheus() {
    let Some(otelcol) = otelcol() else { return };
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(&otelcol);
    let name = unique_name("pgoc");
    let workload = spinning_workload(&name);
    let agent = agent_for(&collector, &name, dir.path());

    // The shipped batch processor holds points up to 5 s.
    let (group, types, body) =
        wait_for_group(&collector, &agent, &name, Duration::from_secs(30), |g| {
            g.iter()
                .any(|s| s.name == "procgroup_processes" && s.value == 2.0)
                && g.iter()
                    .any(|s| s.name == "procgroup_cpu_time_seconds_total")
        });
    let kind = |family: &str| {
        types
            .iter()
            .find(|(n, _)| n == family)
            .map(|(_, k)| k.as_str())
    };
    assert_eq!(kind("procgroup_processes"), Some("gauge"), "{body}");
    assert_eq!(
        kind("procgroup_cpu_time_seconds_total"),
        Some("counter"),
        "{body}"
    );
    let cpu: Vec<&Sample> = group
        .iter()
        .filter(|s| s.name == "procgroup_cpu_time_seconds_total")
        .collect();
    let modes: Vec<&str> = cpu.iter().filter_map(|s| s.label("cpu_mode")).collect();
    assert!(
        modes.contains(&"user") && modes.contains(&"system"),
        "{cpu:?}"
    );
    // The spinning thread has burnt CPU by now; the counters never go below 0.
    assert!(cpu.iter().all(|s| s.value >= 0.0), "{cpu:?}");
    assert!(cpu.iter().map(|s| s.value).sum::<f64>() > 0.0, "{cpu:?}");
    // resource_to_telemetry_conversion in the shipped file: the node's
    // resource attributes are labels; service.name becomes `job`.
    let processes = group
        .iter()
        .find(|s| s.name == "procgroup_processes")
        .unwrap();
    assert!(
        processes.label("host_name").is_some_and(|h| !h.is_empty()),
        "{processes:?}"
    );
    assert_eq!(processes.label("job"), Some("procgroups"), "{processes:?}");
    let families: std::collections::BTreeSet<&str> =
        group.iter().map(|s| s.name.as_str()).collect();
    println!("series of group {name}: {families:?}");
    println!("labels of procgroup_processes: {:?}", processes.labels);
    drop(agent);
    workload.stop();
}

/// A running Prometheus server scraping one target every second; killed
/// when dropped.
struct Prometheus {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Prometheus {
    fn start(binary: &Path, target_port: u16, dir: &Path) -> Prometheus {
        let port = free_port();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: otelcol\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
            ),
        )
        .unwrap();
        let log = dir.join("prometheus.log");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("prometheus.out")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let prometheus = Prometheus { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        while http_get(port, "/-/ready").map(|(status, _)| status) != Some(200) {
            assert!(
                Instant::now() < deadline,
                "Prometheus did not become ready:\n{}",
                prometheus.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        prometheus
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// An instant PromQL query: the result vector as (labels, value).
    fn query(&self, promql: &str) -> Vec<(serde_json::Value, f64)> {
        let (status, body) = http_get(
            self.port,
            &format!("/api/v1/query?query={}", encode(promql)),
        )
        .unwrap_or_else(|| panic!("Prometheus does not answer:\n{}", self.log()));
        assert_eq!(status, 200, "{promql}: {body}");
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answer["status"], "success", "{promql}: {body}");
        answer["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let value = r["value"][1].as_str().unwrap().parse().unwrap();
                (r["metric"].clone(), value)
            })
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds (user + system) the process `pid` and its threads have used.
fn cpu_seconds(pid: u32) -> f64 {
    let [utime, stime] = stat_fields(pid, [14, 15]).unwrap();
    ticks_to_seconds(utime + stime)
}

#[test]
fn prometheus_scrapes_the_collector_and_rates_the_group_cpu() {
    let Some(otelcol) = otelcol() else { return };
    let Some(prometheus_bin) = prometheus() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(&otelcol);
    let prometheus = Prometheus::start(&prometheus_bin, collector.prometheus, dir.path());
    let name = unique_name("pgpr");
    let workload = spinning_workload(&name);
    let agent = agent_for(&collector, &name, dir.path());

    let promql = format!(
        "sum by (procgroup_name) (rate(procgroup_cpu_time_seconds_total{{procgroup_name=\"{name}\"}}[1m]))"
    );
    let deadline = Instant::now() + Duration::from_secs(45);
    let rate = loop {
        let result = prometheus.query(&promql);
        // rate() needs two samples with different values: two batches of
        // the shipped batch processor (5 s apart).
        if let Some((labels, rate)) = result.first() {
            assert_eq!(result.len(), 1, "{result:?}");
            assert_eq!(labels["procgroup_name"], name.as_str(), "{result:?}");
            if *rate > 0.0 {
                break *rate;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no rate for {name} from Prometheus: {result:?}\nscrape targets: {:?}\nprometheus:\n{}\ncollector:\n{}\nagent:\n{}",
            http_get(prometheus.port, "/api/v1/targets"),
            prometheus.log(),
            collector.log(),
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    // One thread spins: at most every core of the machine, and clearly more
    // than an idle process (a unit error of 1000 either way fails one side).
    let cores = std::thread::available_parallelism().unwrap().get() as f64;
    assert!(
        rate > 0.01 && rate <= cores * 1.05,
        "rate {rate} for {name} on {cores} cores"
    );

    // The counter Prometheus holds is at most what the kernel counts for
    // the workload (the agent counts from its own start, and lags).
    let stored = prometheus.query(&format!(
        "sum(procgroup_cpu_time_seconds_total{{procgroup_name=\"{name}\"}})"
    ));
    let stored = stored.first().map(|(_, v)| *v).unwrap();
    let child_pids: Vec<u32> = std::fs::read_to_string(format!(
        "/proc/{}/task/{}/children",
        workload.pid, workload.pid
    ))
    .unwrap()
    .split_whitespace()
    .map(|p| p.parse().unwrap())
    .collect();
    let kernel: f64 = std::iter::once(workload.pid)
        .chain(child_pids)
        .map(cpu_seconds)
        .sum();
    assert!(
        stored > 0.0 && stored <= kernel + 0.05,
        "Prometheus holds {stored} CPU seconds for {name}, the kernel counts {kernel}"
    );
    // The series as a Prometheus user sees them.
    let series = prometheus.query(&format!("{{procgroup_name=\"{name}\"}}"));
    let mut names: Vec<String> = series
        .iter()
        .map(|(labels, _)| labels["__name__"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names.dedup();
    println!("rate {rate} CPU s/s; series of group {name} in Prometheus: {names:?}");
    println!("labels: {}", series[0].0);
    drop(agent);
    workload.stop();
}
