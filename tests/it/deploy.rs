//! The deployment artefacts as a user meets them: the kustomize base renders
//! into objects that pass the Kubernetes schemas and carry the agent's
//! security settings; the Collector configuration wires only components it
//! defines and receives what the agents send; the rules shipped in the
//! ConfigMap and shown in the README pass `--check-config`; the README
//! documents every flag the binary has; the systemd unit is hardened and
//! loads; the container image runs the binary where the probes expect it.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;
use serde_yaml::Value;

use crate::support::tools::{self, KUBECTL, KUBERNETES_VALIDATE, repo_root};

const AGENT_BIN: &str = env!("CARGO_BIN_EXE_procgroups");
const BASE: &str = "deploy/kubernetes/base";
/// The Kubernetes versions the objects are validated against: an old one
/// still in use, and the newest the pinned kubernetes-validate knows.
const K8S_VERSIONS: [&str; 2] = ["1.29.0", "1.37.0"];

fn read(relative: &str) -> String {
    let path = repo_root().join(relative);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn yaml_documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|doc| !doc.is_null())
        .collect()
}

fn str_of(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, found {v:?}"))
}

fn seq(v: &Value) -> &[Value] {
    v.as_sequence()
        .map(Vec::as_slice)
        .unwrap_or_else(|| panic!("expected a list, found {v:?}"))
}

fn strings(v: &Value) -> Vec<String> {
    seq(v).iter().map(|s| str_of(s).to_owned()).collect()
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"))
}

/// The base rendered by `kubectl kustomize`, or `None` when kubectl is not
/// installed (outside CI).
fn render_base() -> Option<Vec<Value>> {
    render_text(BASE).map(|text| yaml_documents(&text))
}

/// A kustomization (the base or an overlay) rendered by `kubectl kustomize`.
fn render_text(dir: &str) -> Option<String> {
    let kubectl = tools::require(&KUBECTL)?;
    let out = run(Command::new(kubectl)
        .arg("kustomize")
        .arg(repo_root().join(dir)));
    assert!(
        out.status.success(),
        "kubectl kustomize {dir} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("the rendered base has no {kind} {name}"))
}

/// A ConfigMap whose name kustomize has suffixed with a content hash.
fn generated_config_map<'a>(objects: &'a [Value], name: &str) -> &'a Value {
    let prefix = format!("{name}-");
    objects
        .iter()
        .find(|o| {
            o["kind"] == "ConfigMap"
                && o["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(&prefix))
        })
        .unwrap_or_else(|| panic!("the rendered base has no ConfigMap generated as {name}"))
}

fn env_var<'a>(container: &'a Value, name: &str) -> &'a Value {
    seq(&container["env"])
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| {
            panic!(
                "container {} has no env {name}",
                container["name"].as_str().unwrap_or("?")
            )
        })
}

fn mount<'a>(container: &'a Value, path: &str) -> &'a Value {
    seq(&container["volumeMounts"])
        .iter()
        .find(|m| m["mountPath"] == path)
        .unwrap_or_else(|| panic!("nothing is mounted at {path}"))
}

fn volume<'a>(pod: &'a Value, name: &str) -> &'a Value {
    seq(&pod["volumes"])
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("the pod has no volume {name}"))
}

/// The value following `flag` in an argument list (`--flag value` or `--flag=value`).
fn flag_value(args: &[String], flag: &str) -> Option<String> {
    let with_eq = format!("{flag}=");
    args.iter().enumerate().find_map(|(i, a)| {
        if a == flag {
            args.get(i + 1).cloned()
        } else {
            a.strip_prefix(&with_eq).map(str::to_owned)
        }
    })
}

/// The `resources:` block that BENCHMARKS.md recommends: the YAML code
/// block of its sizing section.
fn benchmarked_resources() -> Value {
    let text = read("BENCHMARKS.md");
    let block = text
        .split("```yaml\n")
        .skip(1)
        .filter_map(|rest| rest.split_once("```").map(|(block, _)| block))
        .find(|block| block.starts_with("resources:"))
        .expect("BENCHMARKS.md has a ```yaml block starting with resources:");
    let doc: Value = serde_yaml::from_str(block).unwrap();
    doc["resources"].clone()
}

fn the_container(pod: &Value) -> &Value {
    let containers = seq(&pod["containers"]);
    assert_eq!(containers.len(), 1, "expected one container");
    &containers[0]
}

/// A kustomization rendered, its objects, and kubernetes-validate to check
/// them with; `None` when either tool is missing (outside CI).
fn render_for_validation(dir: &str) -> Option<(String, Vec<Value>, PathBuf)> {
    let rendered = render_text(dir)?;
    let validate = tools::require(&KUBERNETES_VALIDATE)?;
    let objects = yaml_documents(&rendered);
    Some((rendered, objects, validate))
}

/// Each object's kind and name; generated ConfigMaps without the content
/// hash kustomize appends to their name.
fn kinds_and_names(objects: &[Value]) -> BTreeSet<(String, String)> {
    objects
        .iter()
        .map(|o| {
            let name = str_of(&o["metadata"]["name"]);
            let name = match o["kind"].as_str() {
                Some("ConfigMap") => name.rsplit_once('-').map_or(name, |(n, _)| n),
                _ => name,
            };
            (str_of(&o["kind"]).to_owned(), name.to_owned())
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    list.iter()
        .map(|(k, n)| ((*k).to_owned(), (*n).to_owned()))
        .collect()
}

/// The objects of the base, by kind and name: the agent and the bundled
/// Collector.
const BASE_OBJECTS: [(&str, &str); 7] = [
    ("Namespace", "procgroups"),
    ("ServiceAccount", "procgroups"),
    ("ConfigMap", "procgroups-rules"),
    ("ConfigMap", "otel-collector-config"),
    ("DaemonSet", "procgroups"),
    ("Deployment", "otel-collector"),
    ("Service", "otel-collector"),
];

#[test]
fn kustomize_base_renders_objects_that_pass_the_kubernetes_schemas() {
    let Some((rendered, objects, validate)) = render_for_validation(BASE) else {
        return;
    };

    assert_eq!(kinds_and_names(&objects), pairs(&BASE_OBJECTS));
    for o in objects.iter().filter(|o| o["kind"] != "Namespace") {
        assert_eq!(o["metadata"]["namespace"], "procgroups", "{o:?}");
    }

    assert_passes_kubernetes_validate(validate, &rendered, &objects, BASE, &K8S_VERSIONS);
}

/// Validates the very text kubectl rendered, against each version, with
/// unknown fields rejected.
fn assert_passes_kubernetes_validate(
    validate: PathBuf,
    rendered: &str,
    objects: &[Value],
    what: &str,
    versions: &[&str],
) {
    // A file, not stdin: kubernetes-validate reads its input once per version.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rendered.yaml");
    fs::write(&file, rendered).unwrap();
    let mut cmd = Command::new(validate);
    cmd.arg("--strict");
    for v in versions {
        cmd.args(["-k", v]);
    }
    let out = run(cmd.arg(&file));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kubernetes-validate rejected {what}:\n{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // kubernetes-validate only warns (and exits 0) for a kind it has no
    // schema for, so insist on a "passed" line for every object and version.
    assert!(
        !report.contains("WARN") && !report.contains("ERROR"),
        "{report}"
    );
    for o in objects {
        for v in versions {
            let minor = v.rsplit_once('.').unwrap().0;
            let line = format!(
                "passed for resource {}/{} against version {minor}",
                str_of(&o["kind"]).to_lowercase(),
                str_of(&o["metadata"]["name"])
            );
            assert!(report.contains(&line), "no `{line}` in:\n{report}");
        }
    }
}

/// The rendered base, for the tests of its DaemonSet.
struct Base {
    objects: Vec<Value>,
}

impl Base {
    /// `None` (the test skipped) where the base cannot be rendered.
    fn render() -> Option<Base> {
        render_base().map(|objects| Base { objects })
    }

    /// The DaemonSet's pod spec.
    fn pod(&self) -> &Value {
        &object(&self.objects, "DaemonSet", "procgroups")["spec"]["template"]["spec"]
    }

    /// The agent's container.
    fn agent(&self) -> &Value {
        the_container(self.pod())
    }
}

#[test]
fn daemonset_reads_host_proc_with_two_capabilities_and_nothing_else() {
    let Some(base) = Base::render() else { return };
    let (pod, c) = (base.pod(), base.agent());
    let args = strings(&c["args"]);

    // Host /proc, read-only, is what the agent reads.
    assert_eq!(flag_value(&args, "--procfs").as_deref(), Some("/host/proc"));
    let proc_mount = mount(c, "/host/proc");
    assert_eq!(proc_mount["readOnly"], true);
    let proc_volume = volume(pod, str_of(&proc_mount["name"]));
    assert_eq!(proc_volume["hostPath"]["path"], "/proc");

    // Host user names, read-only.
    let passwd_mount = mount(c, "/host/etc/passwd");
    assert_eq!(passwd_mount["readOnly"], true);
    let passwd_volume = volume(pod, str_of(&passwd_mount["name"]));
    assert_eq!(passwd_volume["hostPath"]["path"], "/etc/passwd");
    assert_eq!(passwd_volume["hostPath"]["type"], "File");

    // No host namespaces: the /proc mount alone shows the host's processes.
    for key in ["hostPID", "hostNetwork", "hostIPC"] {
        assert_ne!(pod[key], true, "{key} is set");
    }

    // Root inside the container with exactly two capabilities.
    let sc = &c["securityContext"];
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    let added: BTreeSet<String> = strings(&sc["capabilities"]["add"]).into_iter().collect();
    let wanted: BTreeSet<String> = ["SYS_PTRACE", "DAC_READ_SEARCH"].map(String::from).into();
    assert_eq!(added, wanted);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_ne!(sc["privileged"], true);
    // Capabilities granted to a non-root user are not effective in Kubernetes.
    assert_eq!(sc["runAsUser"], 0);

    // The Namespace admits host paths and added capabilities.
    let ns = object(&base.objects, "Namespace", "procgroups");
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "privileged"
    );
}

#[test]
fn daemonset_has_the_benchmarked_budget_and_runs_on_every_node() {
    let Some(base) = Base::render() else { return };
    let (pod, c) = (base.pod(), base.agent());

    // Budget: both requests and limits, exactly the sizing that
    // BENCHMARKS.md derives from its measurements.
    let res = &c["resources"];
    for key in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(res[key][resource].is_string(), "no {key}.{resource}");
        }
    }
    assert_eq!(res, &benchmarked_resources());

    // Every node, whatever its taints.
    assert!(
        seq(&pod["tolerations"])
            .iter()
            .any(|t| t["operator"] == "Exists" && t["key"].is_null() && t["effect"].is_null()),
        "no toleration matches every taint: {:?}",
        pod["tolerations"]
    );

    // The node name from the downward API.
    assert_eq!(
        env_var(c, "K8S_NODE_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "spec.nodeName"
    );
}

#[test]
fn daemonset_probes_ask_the_agent_s_health_on_a_writable_socket() {
    let Some(base) = Base::render() else { return };
    let (pod, c) = (base.pod(), base.agent());

    // Probes run `procgroups health`; liveness judges only the cycles, so
    // that a collector outage makes the pod unready but never restarts it.
    for (probe, args) in [
        ("livenessProbe", &["health", "--liveness"][..]),
        ("readinessProbe", &["health"][..]),
    ] {
        let command = strings(&c[probe]["exec"]["command"]);
        assert!(
            Path::new(&command[0]).file_name() == Some("procgroups".as_ref()),
            "{probe}: {command:?}"
        );
        assert_eq!(&command[1..], args, "{probe}");
    }
    // Their socket is on a writable volume, since the root filesystem is not.
    let socket = PathBuf::from(str_of(&env_var(c, "PROCGROUPS_STATUS_SOCKET")["value"]));
    let run_dir = socket.parent().unwrap().to_str().unwrap();
    let run_volume = volume(pod, str_of(&mount(c, run_dir)["name"]));
    assert!(run_volume["emptyDir"].is_mapping(), "{run_volume:?}");
}

#[test]
fn daemonset_reads_the_kubelets_log_directories_read_only() {
    let Some(base) = Base::render() else { return };
    let (pod, c) = (base.pod(), base.agent());
    // At the host's own paths, under the default log root /var/log, so that
    // the links in containers/ (absolute paths into pods/) resolve.
    for path in ["/var/log/pods", "/var/log/containers"] {
        let m = mount(c, path);
        assert_eq!(m["readOnly"], true, "{path}");
        let v = volume(pod, str_of(&m["name"]));
        assert_eq!(v["hostPath"]["path"], path);
        assert_eq!(v["hostPath"]["type"], "Directory");
    }
    // And nothing else of the node's logs.
    for m in seq(&c["volumeMounts"]) {
        let path = str_of(&m["mountPath"]);
        assert!(
            !path.starts_with("/var/log")
                || path.starts_with("/var/log/pods")
                || path.starts_with("/var/log/containers"),
            "{path} is mounted"
        );
    }
    let args = strings(&c["args"]);
    assert_eq!(
        flag_value(&args, "--k8s-log-root"),
        None,
        "the default is /var/log"
    );
}

const OVERLAY: &str = "deploy/kubernetes/overlays/external-collector";

#[test]
fn example_overlay_renders_objects_that_pass_the_kubernetes_schemas() {
    let Some((rendered, objects, validate)) = render_for_validation(OVERLAY) else {
        return;
    };
    // The base without its Collector.
    assert_eq!(
        kinds_and_names(&objects),
        pairs(&[
            ("Namespace", "procgroups"),
            ("ServiceAccount", "procgroups"),
            ("ConfigMap", "procgroups-rules"),
            ("DaemonSet", "procgroups"),
        ])
    );
    assert_passes_kubernetes_validate(validate, &rendered, &objects, OVERLAY, &K8S_VERSIONS);
}

#[test]
fn example_overlay_changes_the_image_and_endpoint_and_nothing_else_of_the_agent() {
    let (Some(base), Some(overlay)) = (render_base(), render_text(OVERLAY)) else {
        return;
    };
    let overlay = yaml_documents(&overlay);
    let base_ds = object(&base, "DaemonSet", "procgroups");
    let mut ds = object(&overlay, "DaemonSet", "procgroups").clone();
    let c = &mut ds["spec"]["template"]["spec"]["containers"][0];

    assert_eq!(
        the_container(&base_ds["spec"]["template"]["spec"])["image"],
        "procgroups:0.1.0"
    );
    let image = str_of(&c["image"]);
    assert!(
        image.contains('/') && !image.starts_with("procgroups"),
        "the overlay does not set a registry image: {image}"
    );
    let endpoint = str_of(&env_var(c, "OTEL_EXPORTER_OTLP_ENDPOINT")["value"]).to_owned();
    assert!(
        endpoint.starts_with("http://") && !endpoint.contains("//otel-collector:"),
        "the overlay still pushes to the bundled Collector: {endpoint}"
    );

    // With those two put back, the DaemonSet is the base's: the same
    // mounts, capabilities and probes.
    c["image"] = "procgroups:0.1.0".into();
    for e in c["env"].as_sequence_mut().unwrap() {
        if e["name"] == "OTEL_EXPORTER_OTLP_ENDPOINT" {
            e["value"] = "http://otel-collector:4317".into();
        }
    }
    // A strategic merge patch moves the entries it sets to the front.
    let by_name = |ds: &mut Value| {
        let env = ds["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_sequence_mut()
            .unwrap();
        env.sort_by(|a, b| str_of(&a["name"]).cmp(str_of(&b["name"])));
    };
    let mut base_ds = base_ds.clone();
    by_name(&mut ds);
    by_name(&mut base_ds);
    // The rules ConfigMap's generated name is the same in both.
    assert_eq!(ds, base_ds);
}

const EXIT_ACCOUNTING: &str = "deploy/kubernetes/overlays/exit-accounting";

#[test]
fn exit_accounting_overlay_renders_objects_that_pass_the_kubernetes_schemas() {
    let Some((rendered, objects, validate)) = render_for_validation(EXIT_ACCOUNTING) else {
        return;
    };
    // The whole base, the bundled Collector included.
    assert_eq!(kinds_and_names(&objects), pairs(&BASE_OBJECTS));
    assert_passes_kubernetes_validate(
        validate,
        &rendered,
        &objects,
        EXIT_ACCOUNTING,
        &K8S_VERSIONS,
    );
}

/// What the kernel needs to deliver exit records to a container: the host's
/// pid and network namespaces and CAP_NET_ADMIN (the `exits` module says
/// why). Nothing else of the DaemonSet changes.
#[test]
fn exit_accounting_overlay_adds_host_namespaces_and_net_admin_and_nothing_else() {
    let (Some(base), Some(overlay)) = (render_base(), render_text(EXIT_ACCOUNTING)) else {
        return;
    };
    let overlay = yaml_documents(&overlay);
    let mut ds = object(&overlay, "DaemonSet", "procgroups").clone();
    let pod = &mut ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"], true);
    assert_eq!(pod["hostNetwork"], true);
    // The Collector's Service name must still resolve from the host network.
    assert_eq!(pod["dnsPolicy"], "ClusterFirstWithHostNet");
    assert_ne!(pod["hostIPC"], true);
    let sc = &the_container(pod)["securityContext"];
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(
        strings(&sc["capabilities"]["add"]),
        ["SYS_PTRACE", "DAC_READ_SEARCH", "NET_ADMIN"]
    );
    assert_ne!(sc["privileged"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);

    // Without those, the DaemonSet is the base's.
    let map = pod.as_mapping_mut().unwrap();
    for key in ["hostPID", "hostNetwork", "dnsPolicy"] {
        map.remove(key);
    }
    let add = pod["containers"][0]["securityContext"]["capabilities"]["add"]
        .as_sequence_mut()
        .unwrap();
    add.retain(|c| c != "NET_ADMIN");
    assert_eq!(&ds, object(&base, "DaemonSet", "procgroups"));
}

#[test]
fn readme_apparmor_patch_renders_and_validates() {
    let blocks = code_blocks(&read("README.md"));
    let patch = blocks
        .iter()
        .find(|(info, body)| info == "yaml" && body.contains("appArmorProfile"))
        .map(|(_, body)| body)
        .expect("README.md shows the AppArmor patch");
    // The README's block, as the `patches:` of an overlay of the base
    // (which kustomize wants named by a relative path).
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let overlay = dir.path().join("apparmor");
    fs::create_dir(&overlay).unwrap();
    let base = repo_root().join(BASE);
    let common = overlay
        .ancestors()
        .find(|a| base.starts_with(a))
        .unwrap()
        .to_owned();
    let up = overlay.strip_prefix(&common).unwrap().components().count();
    let relative = Path::new(&"../".repeat(up)).join(base.strip_prefix(&common).unwrap());
    fs::write(
        overlay.join("kustomization.yaml"),
        format!("resources:\n  - {}\n{patch}", relative.display()),
    )
    .unwrap();
    let Some((rendered, objects, validate)) = render_for_validation(overlay.to_str().unwrap())
    else {
        return;
    };
    let ds = object(&objects, "DaemonSet", "procgroups");
    let c = the_container(&ds["spec"]["template"]["spec"]);
    assert_eq!(
        c["securityContext"]["appArmorProfile"]["type"],
        "Unconfined"
    );
    // The capabilities stay those of the base.
    assert_eq!(
        strings(&c["securityContext"]["capabilities"]["drop"]),
        ["ALL"]
    );
    // The field exists from Kubernetes 1.30 on.
    assert_passes_kubernetes_validate(
        validate,
        &rendered,
        &objects,
        "the AppArmor patch",
        &["1.37.0"],
    );
}

#[test]
fn daemonset_loads_the_rules_configmap_and_pushes_to_the_collector_service() {
    let Some(base) = Base::render() else { return };
    let (pod, c) = (base.pod(), base.agent());
    let args = strings(&c["args"]);

    // --config names a key of the rules ConfigMap, whose content is the
    // procgroups.yaml that daemonset_rules_pass_check_config checks.
    let config = PathBuf::from(flag_value(&args, "--config").expect("no --config"));
    let dir = config.parent().unwrap().to_str().unwrap();
    let key = config.file_name().unwrap().to_str().unwrap();
    let rules_volume = volume(pod, str_of(&mount(c, dir)["name"]));
    let rules = generated_config_map(&base.objects, "procgroups-rules");
    assert_eq!(rules_volume["configMap"]["name"], rules["metadata"]["name"]);
    assert_eq!(
        str_of(&rules["data"][key]),
        read(&format!("{BASE}/procgroups.yaml"))
    );

    // OTEL_EXPORTER_OTLP_ENDPOINT → the Service → the Collector's gRPC port →
    // the OTLP gRPC receiver in otel-collector.yaml.
    let endpoint = str_of(&env_var(c, "OTEL_EXPORTER_OTLP_ENDPOINT")["value"]);
    let authority = endpoint
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("{endpoint}: expected plain http:// inside the cluster"));
    let (host, port) = authority.trim_end_matches('/').rsplit_once(':').unwrap();
    let port: u64 = port.parse().unwrap();
    let service_name = host.split('.').next().unwrap();
    let service = object(&base.objects, "Service", service_name);
    let service_port = seq(&service["spec"]["ports"])
        .iter()
        .find(|p| p["port"] == port)
        .unwrap_or_else(|| panic!("Service {service_name} has no port {port}"));

    let collector = object(&base.objects, "Deployment", "otel-collector");
    let cpod = &collector["spec"]["template"];
    for (k, v) in service["spec"]["selector"].as_mapping().unwrap() {
        assert_eq!(&cpod["metadata"]["labels"][k], v, "selector {k:?}");
    }
    let cc = the_container(&cpod["spec"]);
    let target = &service_port["targetPort"];
    let container_port = seq(&cc["ports"])
        .iter()
        .find(|p| &p["name"] == target || &p["containerPort"] == target)
        .unwrap_or_else(|| panic!("no collector container port {target:?}"));
    let collector_config: Value = serde_yaml::from_str(&read("otel-collector.yaml")).unwrap();
    let grpc = str_of(&collector_config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]);
    assert_eq!(
        grpc.rsplit_once(':').unwrap().1,
        container_port["containerPort"]
            .as_u64()
            .unwrap()
            .to_string(),
        "the Service's gRPC port does not reach the OTLP gRPC receiver"
    );

    // The Collector runs the top-level otel-collector.yaml.
    let generated = generated_config_map(&base.objects, "otel-collector-config");
    let config_arg = strings(&cc["args"])
        .iter()
        .find_map(|a| a.strip_prefix("--config=").map(PathBuf::from))
        .expect("the collector has no --config=");
    let cdir = config_arg.parent().unwrap().to_str().unwrap();
    let ckey = config_arg.file_name().unwrap().to_str().unwrap();
    assert_eq!(
        volume(&cpod["spec"], str_of(&mount(cc, cdir)["name"]))["configMap"]["name"],
        generated["metadata"]["name"]
    );
    assert_eq!(
        str_of(&generated["data"][ckey]),
        read("otel-collector.yaml")
    );
    let csc = &cc["securityContext"];
    assert_eq!(csc["readOnlyRootFilesystem"], true);
    assert_eq!(csc["allowPrivilegeEscalation"], false);
    assert_eq!(strings(&csc["capabilities"]["drop"]), ["ALL"]);
}

/// The top-level file and the one kustomize reads are one file.
#[test]
fn top_level_collector_config_is_the_deployed_one() {
    let root = repo_root();
    assert_eq!(
        fs::canonicalize(root.join("otel-collector.yaml")).unwrap(),
        fs::canonicalize(root.join(BASE).join("otel-collector.yaml")).unwrap()
    );
}

#[test]
fn collector_pipelines_use_only_defined_components() {
    let config: Value = serde_yaml::from_str(&read("otel-collector.yaml")).unwrap();
    let defined = |section: &str| -> BTreeSet<String> {
        config[section]
            .as_mapping()
            .map(|m| m.keys().map(|k| str_of(k).to_owned()).collect())
            .unwrap_or_default()
    };
    let connectors = defined("connectors");
    let mut used: BTreeSet<(String, String)> = BTreeSet::new();

    let pipelines = config["service"]["pipelines"].as_mapping().unwrap();
    assert!(!pipelines.is_empty());
    for (name, pipeline) in pipelines {
        let name = str_of(name);
        for (role, section) in [
            ("receivers", "receivers"),
            ("processors", "processors"),
            ("exporters", "exporters"),
        ] {
            let ids = if pipeline[role].is_null() {
                Vec::new()
            } else {
                strings(&pipeline[role])
            };
            if role != "processors" {
                assert!(!ids.is_empty(), "pipeline {name} has no {role}");
            }
            for id in ids {
                // A connector is both an exporter and a receiver.
                let known = defined(section).contains(&id)
                    || (role != "processors" && connectors.contains(&id));
                assert!(
                    known,
                    "pipeline {name} uses {role} {id}, which is not defined"
                );
                used.insert((section.to_owned(), id));
            }
        }
    }
    for id in strings(&config["service"]["extensions"]) {
        assert!(
            defined("extensions").contains(&id),
            "service uses extension {id}, which is not defined"
        );
        used.insert(("extensions".to_owned(), id));
    }
    // And nothing is defined for nothing.
    for section in ["receivers", "processors", "exporters", "extensions"] {
        for id in defined(section) {
            assert!(
                used.contains(&(section.to_owned(), id.clone())),
                "{section} {id} is defined but used nowhere"
            );
        }
    }

    // What the agents need: OTLP in over gRPC and HTTP, memory_limiter first,
    // batch last, Prometheus with node labels, debug.
    let metrics = &config["service"]["pipelines"]["metrics"];
    assert!(strings(&metrics["receivers"]).contains(&"otlp".to_owned()));
    let protocols = &config["receivers"]["otlp"]["protocols"];
    assert!(protocols["grpc"]["endpoint"].is_string());
    assert!(protocols["http"]["endpoint"].is_string());
    let processors = strings(&metrics["processors"]);
    assert_eq!(
        processors.first().map(String::as_str),
        Some("memory_limiter")
    );
    assert_eq!(processors.last().map(String::as_str), Some("batch"));
    let exporters = strings(&metrics["exporters"]);
    assert!(exporters.contains(&"prometheus".to_owned()));
    assert!(exporters.contains(&"debug".to_owned()));
    assert_eq!(
        config["exporters"]["prometheus"]["resource_to_telemetry_conversion"]["enabled"],
        true
    );
}

fn check_config(file: &Path) -> Output {
    run(Command::new(AGENT_BIN)
        .arg("--check-config")
        .arg("--config")
        .arg(file))
}

fn assert_config_ok(file: &Path, what: &str) {
    let out = check_config(file);
    assert!(
        out.status.success(),
        "{what}: procgroups --check-config --config {} exited {:?}\nstdout:\n{}\nstderr:\n{}",
        file.display(),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn daemonset_rules_pass_check_config() {
    let rules = repo_root().join(BASE).join("procgroups.yaml");
    assert_config_ok(&rules, "the DaemonSet's rules");

    // --check-config really checks: the same rules with a misspelt key are
    // refused with exit code 2 and a message naming the key.
    let broken =
        read(&format!("{BASE}/procgroups.yaml")).replace("comm: [kubelet]", "comms: [kubelet]");
    assert!(broken.contains("comms:"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.yaml");
    fs::write(&file, broken).unwrap();
    let out = check_config(&file);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("comms"),
        "the error does not name the unknown key: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The fenced code blocks of a Markdown text, with their info strings.
fn code_blocks(markdown: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start().strip_prefix("```")) {
            (None, Some(info)) => current = Some((info.trim().to_owned(), String::new())),
            (Some(_), Some(_)) => blocks.extend(current.take()),
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    blocks
}

#[test]
fn readme_quick_start_is_the_two_commands_ci_runs() {
    let blocks = code_blocks(&read("README.md"));
    let commands: Vec<&str> = blocks.iter().take(2).map(|(_, b)| b.trim()).collect();
    assert_eq!(
        commands,
        ["cargo run -- --once", "cargo test --all-targets"]
    );
}

#[test]
fn readme_rule_examples_pass_check_config() {
    let readme = read("README.md");
    let examples: Vec<String> = code_blocks(&readme)
        .into_iter()
        .filter(|(info, body)| info == "yaml" && body.contains("process_names:"))
        .map(|(_, body)| body)
        .collect();
    assert!(
        examples.len() >= 4,
        "expected the README's rule examples, found {}",
        examples.len()
    );
    let dir = tempfile::tempdir().unwrap();
    for (i, example) in examples.iter().enumerate() {
        let file = dir.path().join(format!("example-{i}.yaml"));
        fs::write(&file, example).unwrap();
        assert_config_ok(&file, &format!("README rule example {i}:\n{example}"));
    }
}

#[test]
fn readme_documents_every_flag_and_command() {
    let readme = read("README.md");
    let out = run(Command::new(AGENT_BIN).arg("--help"));
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();

    let mut flags = BTreeSet::new();
    let mut commands = BTreeSet::new();
    let mut in_commands = false;
    for line in help.lines() {
        if line.ends_with(':') && !line.starts_with(' ') {
            in_commands = line == "Commands:";
            continue;
        }
        let word = line.split_whitespace().next().unwrap_or("");
        let entry = line.starts_with("  ") && !line.starts_with("   ");
        if in_commands && entry && !word.is_empty() && word != "help" {
            commands.insert(word.to_owned());
        }
        for token in line.split([' ', ',', '=', '[', '<']) {
            if let Some(flag) = token.strip_prefix("--")
                && line.trim_start().starts_with('-')
                && !flag.is_empty()
                && flag.chars().all(|ch| ch.is_ascii_lowercase() || ch == '-')
                && !["help", "version"].contains(&flag)
            {
                flags.insert(flag.to_owned());
            }
        }
    }
    assert!(
        flags.len() >= 10,
        "could not read the flags from --help:\n{help}"
    );
    for flag in &flags {
        assert!(
            readme.contains(&format!("`--{flag}")),
            "README does not document --{flag}"
        );
    }
    for command in &commands {
        assert!(
            readme.contains(&format!("procgroups {command}")),
            "README does not document `procgroups {command}`"
        );
    }
    // Every setting that has a variable is documented under its variable.
    let no_variable = ["once", "once-delay", "output", "check-config"];
    for flag in flags.iter().filter(|f| !no_variable.contains(&f.as_str())) {
        let var = format!("PROCGROUPS_{}", flag.replace('-', "_").to_uppercase());
        assert!(readme.contains(&var), "README does not name {var}");
    }
}

/// The unit's `Key=value` settings (later lines of a key are appended).
fn unit_settings(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

#[test]
fn systemd_unit_is_hardened_and_loads() {
    let unit = read("deploy/systemd/procgroups.service");
    let settings = unit_settings(&unit);
    let get = |key: &str| -> Vec<&str> {
        settings
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let caps = |key: &str| -> BTreeSet<String> {
        get(key)
            .iter()
            .flat_map(|v| v.split_whitespace())
            .map(String::from)
            .collect()
    };
    let two: BTreeSet<String> = ["CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH"]
        .map(String::from)
        .into();
    assert_eq!(caps("CapabilityBoundingSet"), two);
    assert_eq!(caps("AmbientCapabilities"), two);
    assert_eq!(get("NoNewPrivileges"), ["yes"]);
    assert_eq!(get("ProtectSystem"), ["strict"]);
    // Not root: a dynamic user or a named one.
    assert!(
        get("DynamicUser") == ["yes"] || get("User").iter().any(|u| *u != "root" && *u != "0"),
        "the unit runs as root"
    );
    // Nothing may hide other users' processes from the agent.
    assert!(get("ProtectProc").iter().all(|v| *v == "default"));
    assert!(get("PrivateUsers").iter().all(|v| *v == "no"));

    // The DaemonSet's limits: systemd's M is a MiB, and 100% is one CPU.
    let limits = &benchmarked_resources()["limits"];
    let memory = str_of(&limits["memory"]).strip_suffix("Mi").unwrap();
    let millicores: u32 = str_of(&limits["cpu"])
        .strip_suffix('m')
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(get("MemoryMax"), [format!("{memory}M")]);
    assert_eq!(get("CPUQuota"), [format!("{}%", millicores / 10)]);

    let exec = get("ExecStart");
    assert_eq!(exec.len(), 1);
    let exec_path = exec[0].split_whitespace().next().unwrap();
    let dockerfile = read("deploy/Dockerfile");
    assert!(
        dockerfile.contains(exec_path),
        "the unit and the image install the binary in different places"
    );

    // systemd itself reads the unit, when it is installed; the binary is
    // swapped for the one just built because verify checks it exists.
    let Some(analyze) = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
    else {
        println!("systemd-analyze not installed: the unit was checked by reading only");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("procgroups.service");
    fs::write(&file, unit.replace(exec_path, AGENT_BIN)).unwrap();
    let out = run(Command::new(analyze).arg("verify").arg(&file));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    assert!(
        !stderr.contains("procgroups.service"),
        "systemd-analyze verify complained: {stderr}"
    );
}

#[test]
fn container_image_runs_the_binary_where_the_probes_expect_it() {
    let dockerfile = read("deploy/Dockerfile");
    let final_stage = dockerfile
        .rsplit_once("\nFROM ")
        .map(|(_, stage)| stage)
        .expect("a multi-stage Dockerfile");
    assert!(
        dockerfile.matches("\nFROM ").count() >= 2,
        "not multi-stage"
    );
    assert!(dockerfile.contains("cargo build --release"));
    let entrypoint_line = final_stage
        .lines()
        .find(|l| l.starts_with("ENTRYPOINT"))
        .expect("no ENTRYPOINT in the runtime stage");
    let entrypoint: Vec<String> =
        serde_json::from_str(entrypoint_line.trim_start_matches("ENTRYPOINT").trim()).unwrap();
    // The DaemonSet grants its capabilities to root only.
    let user = final_stage
        .lines()
        .filter_map(|l| l.strip_prefix("USER "))
        .next_back()
        .map(str::trim);
    assert!(
        matches!(user, Some("0") | Some("0:0") | Some("root")),
        "USER {user:?}"
    );

    let daemonset = yaml_documents(&read(&format!("{BASE}/daemonset.yaml")));
    let c = the_container(&daemonset[0]["spec"]["template"]["spec"]);
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(
            strings(&c[probe]["exec"]["command"])[0],
            entrypoint[0],
            "{probe}"
        );
    }
    assert!(
        c["command"].is_null(),
        "the DaemonSet overrides the image's entrypoint"
    );
}

/// The Collector image the base deploys is the release the tests build and
/// run (`tests/otelcol/go.mod`), so the deployed config is the tested one
/// on the tested version.
#[test]
fn the_deployed_collector_is_the_tested_release() {
    let objects = yaml_documents(&read(&format!("{BASE}/collector.yaml")));
    let deployment = object(&objects, "Deployment", "otel-collector");
    let image = str_of(&the_container(&deployment["spec"]["template"]["spec"])["image"]);
    let (_, tag) = image.rsplit_once(':').unwrap();
    let go_mod = read("tests/otelcol/go.mod");
    let tested = go_mod
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("go.opentelemetry.io/collector/otelcol v")
        })
        .expect("tests/otelcol/go.mod requires go.opentelemetry.io/collector/otelcol");
    assert_eq!(tag, tested, "{image} deployed, Collector v{tested} tested");
}
