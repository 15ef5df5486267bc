//! The raw configuration layers as serde sees them, before validation, and
//! the figment providers that feed them: built-in defaults, the YAML file,
//! `PROCGROUPS_*` variables and the flags that were given.
//!
//! Every struct here denies unknown keys, so a typo (`cmdlines:`) is an error
//! instead of a silently ignored selector. Values stay close to what the
//! user wrote (durations are still text, lists may still be comma-joined);
//! [`super::compile`] turns them into a [`super::Config`].

use std::fmt;
use std::path::PathBuf;

use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::defaults::{
    DEFAULT_HEALTH_EXPORT_INTERVALS, DEFAULT_K8S_LOG_ROOT, DEFAULT_MAX_GROUPS,
    DEFAULT_MAX_THREAD_NAMES, default_socket_path_in,
};
use crate::cli::{Cli, ExitAccounting, LogFormat, MetricNames};

/// Keys that may be set through `PROCGROUPS_*` variables and flags.
/// `process_names` is only accepted from the file: rules do not fit in a
/// variable.
pub const SETTING_KEYS: &[&str] = &[
    "procfs",
    "procnames",
    "namemapping",
    "children",
    "threads",
    "gather_smaps",
    "recheck",
    "recheck_with_time_limit",
    "remove_empty_groups",
    "empty_group_ttl",
    "interval",
    "log_format",
    "metric_names",
    "exit_accounting",
    "max_groups",
    "max_thread_names",
    "status_socket",
    "health_export_intervals",
    "k8s_log_root",
    "container_attributes",
];

/// Prefix of the environment variables.
pub const ENV_PREFIX: &str = "PROCGROUPS_";

/// Every setting, merged from all layers but not yet validated.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    /// procfs mount point.
    pub procfs: PathBuf,
    /// Legacy comm list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub procnames: Option<Tokens>,
    /// Legacy name,regex pairs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namemapping: Option<Tokens>,
    /// Children join their ancestor's group.
    #[serde(deserialize_with = "flag")]
    pub children: bool,
    /// Thread detail.
    #[serde(deserialize_with = "flag")]
    pub threads: bool,
    /// smaps_rollup.
    #[serde(deserialize_with = "flag")]
    pub gather_smaps: bool,
    /// Re-name untracked processes.
    #[serde(deserialize_with = "flag")]
    pub recheck: bool,
    /// Recheck only processes younger than this.
    pub recheck_with_time_limit: Text,
    /// Forget empty groups.
    #[serde(deserialize_with = "flag")]
    pub remove_empty_groups: bool,
    /// Forget a group empty for this long (`never`: keep it).
    pub empty_group_ttl: Text,
    /// Collection interval.
    pub interval: Text,
    /// Log format.
    pub log_format: LogFormat,
    /// Metric names.
    pub metric_names: MetricNames,
    /// Exit accounting mode.
    pub exit_accounting: ExitAccounting,
    /// Group cap.
    pub max_groups: u64,
    /// Thread-name cap per group.
    pub max_thread_names: u64,
    /// Status socket path.
    pub status_socket: PathBuf,
    /// Export intervals without success before NOT_SERVING.
    pub health_export_intervals: u64,
    /// The kubelet's log root, for container names.
    pub k8s_log_root: PathBuf,
    /// Split every group by container, with its container attributes.
    #[serde(deserialize_with = "flag")]
    pub container_attributes: bool,
    /// The naming rules, process-exporter's format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_names: Option<Vec<RawRule>>,
}

impl RawSettings {
    /// The built-in defaults. The status socket depends on the user and on
    /// `TMPDIR`, taken from `env`.
    pub fn defaults(env: &[(String, String)]) -> RawSettings {
        RawSettings {
            procfs: PathBuf::from("/proc"),
            procnames: None,
            namemapping: None,
            children: true,
            threads: true,
            gather_smaps: false,
            recheck: false,
            recheck_with_time_limit: Text("0s".into()),
            remove_empty_groups: false,
            empty_group_ttl: Text("5m".into()),
            interval: Text("15s".into()),
            log_format: LogFormat::Text,
            metric_names: MetricNames::Otel,
            exit_accounting: ExitAccounting::Auto,
            max_groups: DEFAULT_MAX_GROUPS as u64,
            max_thread_names: DEFAULT_MAX_THREAD_NAMES as u64,
            status_socket: default_status_socket(env),
            health_export_intervals: u64::from(DEFAULT_HEALTH_EXPORT_INTERVALS),
            k8s_log_root: PathBuf::from(DEFAULT_K8S_LOG_ROOT),
            container_attributes: false,
            process_names: None,
        }
    }
}

/// The default status socket ([`default_socket_path_in`]),
/// with `XDG_RUNTIME_DIR` and `TMPDIR` taken from `env`.
pub fn default_status_socket(env: &[(String, String)]) -> PathBuf {
    default_socket_path_in(|key| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()))
}

/// One `process_names` item, exactly as process-exporter reads it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// Group-name template; `{{.ExeBase}}` when absent or empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Text>,
    /// comm values (OR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comm: Option<TextList>,
    /// argv\[0\] values (OR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<TextList>,
    /// Regexes over the joined arguments (AND).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<TextList>,
    /// Regexes over the pod's namespace (OR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<TextList>,
    /// Regexes over the pod's name (OR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<TextList>,
    /// Regexes over the container's name (OR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<TextList>,
}

/// The words a boolean setting accepts, in every layer (flags, variables,
/// file), in any case: process-exporter's flags (Go's `true`/`false`/`t`/
/// `f`/`1`/`0`) and the YAML 1.1 words (`yes`/`no`/`on`/`off`) that
/// existing files and manifests use.
pub const BOOL_WORDS: &str = "true/false, yes/no, on/off, t/f or 1/0";

/// A boolean setting's value, from any layer; `None` when `text` is none
/// of [`BOOL_WORDS`].
pub fn parse_bool(text: &str) -> Option<bool> {
    const TRUE: [&str; 5] = ["true", "t", "yes", "on", "1"];
    const FALSE: [&str; 5] = ["false", "f", "no", "off", "0"];
    let t = text.trim();
    if TRUE.iter().any(|w| w.eq_ignore_ascii_case(t)) {
        Some(true)
    } else if FALSE.iter().any(|w| w.eq_ignore_ascii_case(t)) {
        Some(false)
    } else {
        None
    }
}

/// Why `text` is not a boolean, for every layer's error message.
pub fn not_a_bool(text: &str) -> String {
    format!("`{text}` is not a boolean: write {BOOL_WORDS}")
}

/// Deserializes a boolean setting through [`parse_bool`]: a YAML or JSON
/// boolean, the numbers 0 and 1, or one of [`BOOL_WORDS`] as text (the
/// variables' values are always text).
fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a boolean ({BOOL_WORDS})")
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
            Ok(v)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
            parse_bool(v).ok_or_else(|| E::custom(not_a_bool(v)))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
            self.visit_str(&v.to_string())
        }
    }
    d.deserialize_any(V)
}

/// A scalar read as text: YAML and variables give numbers and booleans where
/// a string was meant (`comm: [123]`, `interval: 15`), and the validating
/// step, not serde, is the place to explain what is wrong with them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor)
    }
}

struct TextVisitor;

impl Visitor<'_> for TextVisitor {
    type Value = Text;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
        Ok(Text(v.to_string()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
        Ok(Text(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
        Ok(Text(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
        Ok(Text(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
        Ok(Text(v.to_string()))
    }
    fn visit_char<E: de::Error>(self, v: char) -> Result<Text, E> {
        Ok(Text(v.to_string()))
    }
}

/// A list of texts; a single scalar counts as a one-element list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TextList(pub Vec<String>);

impl<'de> Deserialize<'de> for TextList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Tokens::deserialize(d)? {
            Tokens::Joined(s) => Ok(TextList(vec![s])),
            Tokens::List(v) => Ok(TextList(v)),
        }
    }
}

/// `procnames`/`namemapping`: a comma-joined string (the flag's and the
/// variable's form) or a YAML list (whose entries may then contain commas).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tokens {
    /// `a,b,c`, split on commas when compiled.
    Joined(String),
    /// One token per entry.
    List(Vec<String>),
}

impl Serialize for Tokens {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Tokens::Joined(j) => s.serialize_str(j),
            Tokens::List(l) => l.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Tokens {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Tokens;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Tokens, E> {
                Ok(Tokens::Joined(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Tokens, E> {
                Ok(Tokens::Joined(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Tokens, E> {
                Ok(Tokens::Joined(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Tokens, E> {
                Ok(Tokens::Joined(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Tokens, E> {
                Ok(Tokens::Joined(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tokens, A::Error> {
                let mut out = Vec::new();
                while let Some(t) = seq.next_element::<Text>()? {
                    out.push(t.0);
                }
                Ok(Tokens::List(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// The flags that were given, and only those, so that an absent flag does not
/// hide a value from the file or the environment.
#[derive(Debug, Default, Serialize)]
pub struct FlagSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    procfs: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    procnames: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    namemapping: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    children: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    threads: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gather_smaps: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recheck: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recheck_with_time_limit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remove_empty_groups: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    empty_group_ttl: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log_format: Option<LogFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metric_names: Option<MetricNames>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_accounting: Option<ExitAccounting>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_groups: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_thread_names: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_socket: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    health_export_intervals: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    k8s_log_root: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container_attributes: Option<bool>,
}

impl From<&Cli> for FlagSettings {
    fn from(cli: &Cli) -> Self {
        FlagSettings {
            procfs: cli.procfs.clone(),
            procnames: cli.procnames.clone(),
            namemapping: cli.namemapping.clone(),
            children: cli.children,
            threads: cli.threads,
            gather_smaps: cli.gather_smaps,
            // A plain switch: given means true, absent leaves lower layers.
            recheck: cli.recheck.then_some(true),
            recheck_with_time_limit: cli.recheck_with_time_limit.clone(),
            remove_empty_groups: cli.remove_empty_groups,
            empty_group_ttl: cli.empty_group_ttl.clone(),
            interval: cli.interval.clone(),
            log_format: cli.log_format,
            metric_names: cli.metric_names,
            exit_accounting: cli.exit_accounting,
            max_groups: cli.max_groups,
            max_thread_names: cli.max_thread_names,
            status_socket: cli.status_socket.clone(),
            health_export_intervals: cli.health_export_intervals,
            k8s_log_root: cli.k8s_log_root.clone(),
            container_attributes: cli.container_attributes,
        }
    }
}

/// Metadata names of the layers; [`super::error::Origin`] is derived from them.
pub mod layer {
    /// Built-in defaults.
    pub const DEFAULT: &str = "default";
    /// The YAML file.
    pub const FILE: &str = "config file";
    /// `PROCGROUPS_*` variables.
    pub const ENV: &str = "environment";
    /// Command-line flags.
    pub const FLAGS: &str = "flags";
}

/// A provider with a name and an interpolater of our choosing, so that
/// errors can say "flag --interval" rather than a Rust type name.
pub struct Named<P> {
    inner: P,
    metadata: Metadata,
}

impl<P: Provider> Named<P> {
    /// The defaults layer.
    pub fn defaults(inner: P) -> Self {
        Named {
            inner,
            metadata: Metadata::named(layer::DEFAULT),
        }
    }

    /// The YAML file layer.
    pub fn file(inner: P, path: &std::path::Path) -> Self {
        Named {
            inner,
            metadata: Metadata::named(layer::FILE).source(path),
        }
    }

    /// The flags layer: keys read back as `--flag-name`.
    pub fn flags(inner: P) -> Self {
        Named {
            inner,
            metadata: Metadata::named(layer::FLAGS).interpolater(|_: &Profile, k: &[&str]| {
                format!(
                    "--{}",
                    k.first().copied().unwrap_or_default().replace('_', "-")
                )
            }),
        }
    }
}

impl<P: Provider> Provider for Named<P> {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }
    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.inner.data()
    }
}

/// `PROCGROUPS_*` variables from an explicit list (the process environment in
/// production, a literal list in tests). Values stay strings; the lossy
/// extraction reads `true`/`false`/numbers out of them where a boolean or a
/// number is expected. Empty values count as unset, as Kubernetes manifests
/// often blank a variable to disable it.
pub struct EnvSettings {
    dict: Dict,
}

impl EnvSettings {
    /// Picks the setting variables out of `env`. `Err(variable)` names the
    /// first `PROCGROUPS_*` variable that is no setting.
    pub fn new(env: &[(String, String)]) -> Result<EnvSettings, String> {
        let mut dict = Dict::new();
        for (k, v) in env {
            let Some(rest) = k.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if rest == "CONFIG" || is_service_link(rest) || v.is_empty() {
                continue;
            }
            let key = rest.to_ascii_lowercase();
            if !SETTING_KEYS.contains(&key.as_str()) {
                return Err(k.clone());
            }
            dict.insert(key, Value::from(v.clone()));
        }
        Ok(EnvSettings { dict })
    }
}

/// Kubernetes injects `<SERVICE>_SERVICE_HOST`, `<SERVICE>_PORT`,
/// `<SERVICE>_PORT_<n>_TCP...` into pods for every Service in the namespace;
/// a Service named `procgroups` must not break the agent's configuration.
fn is_service_link(rest: &str) -> bool {
    rest.starts_with("SERVICE_") || rest == "PORT" || rest.starts_with("PORT_")
}

impl Provider for EnvSettings {
    fn metadata(&self) -> Metadata {
        Metadata::named(layer::ENV).interpolater(|_: &Profile, k: &[&str]| {
            format!(
                "{ENV_PREFIX}{}",
                k.first().copied().unwrap_or_default().to_ascii_uppercase()
            )
        })
    }
    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}
