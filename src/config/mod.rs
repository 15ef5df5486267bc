//! Configuration: built-in defaults → YAML file → `PROCGROUPS_*` environment
//! → command-line flags, merged with figment and validated in one place into
//! a [`Config`], with the naming rules compiled into a [`MatchNamer`].
//!
//! The file may be a process-exporter configuration unchanged
//! (`process_names:` with `name`, `comm`, `exe`, `cmdline`); the same keys as
//! the flags (`interval: 30s`, `threads: false`, ...) may sit beside it. The
//! variable of a setting is `PROCGROUPS_` + its key in upper case; the file
//! itself comes from `--config` or `PROCGROUPS_CONFIG`. OTLP export settings
//! are not here: the standard `OTEL_*` variables rule them.
//!
//! Which namer is used:
//! - `process_names` rules ([`RuleSet`]), when the file has them;
//! - otherwise the legacy `procnames`/`namemapping` ([`LegacyNamer`]);
//! - with neither, every process with a non-empty command line, grouped by
//!   comm (process-exporter's packaged `all.yaml`).
//!
//! Giving both rules and a legacy setting is an error, as in process-exporter.
//! Every error names its source, the setting or rule, and the field
//! ([`ConfigError`]); nothing invalid is silently ignored.

pub mod defaults;
mod error;
mod figment_error;
mod file;
mod otlp;
mod rule_compile;
mod rules;
mod template;
mod users;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use figment::error::Kind;
use figment::providers::{Format, Serialized, Yaml};
use figment::value::Value;
use figment::{Figment, Metadata, Profile};
use regex::Regex;

/// Shortest collection interval. Below it cycles run back to back on a busy
/// node, the liveness probe (two intervals without a cycle) fails, and a
/// typo such as `15ms` for `15s` would burn a CPU.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
pub use error::{ConfigError, Origin};
pub use file::{
    BOOL_WORDS, ENV_PREFIX, RawRule, RawSettings, SETTING_KEYS, not_a_bool, parse_bool,
};
pub use otlp::{OTLP_ENDPOINT_VARS, check_otlp_endpoints};
pub use rule_compile::default_rules;
pub use rules::{ExeEntry, K8sSelectors, LegacyNamer, Rule, RuleSet};
pub use template::{DEFAULT_TEMPLATE, Field, Rfc3339, Template, TemplateError};
pub use users::UserNames;

use figment_error::{from_figment, origin_of};
use rule_compile::compile_namer;

use crate::cli::{Cli, ExitAccounting, LogFormat, MetricNames, OutputFormat};
use crate::containers::{ContainerSplit, NameResolver};
use crate::proc::MatchNamer;
use file::{EnvSettings, FlagSettings, Named, Text, TextList, Tokens, layer};

/// The kernel keeps at most this many bytes of a command name (comm).
pub const COMM_MAX_BYTES: usize = 15;

/// How long an empty group is kept by default: long enough to bridge a
/// restart or a cron job's gap, short enough that a node running many
/// short commands does not report hundreds of empty groups for ever.
pub const DEFAULT_EMPTY_GROUP_TTL: Duration = Duration::from_secs(300);

/// Delay between the two cycles of `--once` when `--once-delay` is absent.
pub const DEFAULT_ONCE_DELAY: Duration = Duration::from_secs(1);

/// The validated, compiled configuration. Everything downstream receives only this.
#[derive(Clone)]
pub struct Config {
    /// procfs mount point.
    pub procfs: PathBuf,
    /// Children join their nearest tracked ancestor's group.
    pub children: bool,
    /// Per-thread detail and thread-name metrics.
    pub threads: bool,
    /// Read smaps_rollup.
    pub gather_smaps: bool,
    /// Re-name untracked processes each cycle (forced on by a non-zero
    /// `recheck_time_limit`).
    pub recheck: bool,
    /// Recheck only younger processes (zero: all).
    pub recheck_time_limit: Duration,
    /// Forget empty groups.
    pub remove_empty_groups: bool,
    /// Forget a group once it has been empty this long (`None`: never).
    /// Zero is `remove_empty_groups`.
    pub empty_group_ttl: Option<Duration>,
    /// `empty_group_ttl` was set by the user, not left at its default: a
    /// default gives way (to keeping empty groups) where a setting would be
    /// refused, under delta temporality.
    pub empty_group_ttl_explicit: bool,
    /// Collection interval (never zero).
    pub interval: Duration,
    /// `--once`: delay between the two cycles, when set.
    pub once: Option<Duration>,
    /// Output of `--once`.
    pub output: OutputFormat,
    /// Log format.
    pub log_format: LogFormat,
    /// Names of the exported metrics.
    pub metric_names: MetricNames,
    /// How exited processes are accounted for (see [`ExitAccounting`]).
    pub exit_accounting: ExitAccounting,
    /// The compiled naming rules.
    pub namer: Arc<dyn MatchNamer>,
    /// Where the configuration file came from, if any.
    pub source_file: Option<PathBuf>,
    /// At most this many groups are kept (at least 1).
    pub max_groups: usize,
    /// At most this many thread names per group (at least 1).
    pub max_thread_names: usize,
    /// Unix socket of the status service.
    pub status_socket: PathBuf,
    /// Valid but doubtful settings (high-cardinality templates, rules that
    /// track nothing). The binary logs them once logging is set up.
    pub warnings: Vec<String>,
    /// Export intervals without a successful export before the health
    /// service reports NOT_SERVING (at least 1).
    pub health_export_intervals: u32,
    /// The kubelet's log root, which names containers.
    pub k8s_log_root: PathBuf,
    /// The container names the rules ask for, from `k8s_log_root`.
    pub containers: Arc<NameResolver>,
    /// Groups split by container, their points carrying its attributes
    /// (the namer is wrapped in a [`crate::containers::ContainerSplit`]).
    pub container_attributes: bool,
}

impl Config {
    /// The built-in defaults with the given namer, for tests and embedders
    /// that build a configuration without the layers:
    /// `Config { threads: false, ..Config::with_namer(namer) }`.
    pub fn with_namer(namer: Arc<dyn MatchNamer>) -> Config {
        Config {
            procfs: PathBuf::from("/proc"),
            children: true,
            threads: true,
            gather_smaps: false,
            recheck: false,
            recheck_time_limit: Duration::ZERO,
            remove_empty_groups: false,
            empty_group_ttl: Some(DEFAULT_EMPTY_GROUP_TTL),
            empty_group_ttl_explicit: false,
            interval: Duration::from_secs(15),
            once: None,
            output: OutputFormat::Table,
            log_format: LogFormat::Text,
            metric_names: MetricNames::Otel,
            exit_accounting: ExitAccounting::Auto,
            namer,
            source_file: None,
            max_groups: defaults::DEFAULT_MAX_GROUPS,
            max_thread_names: defaults::DEFAULT_MAX_THREAD_NAMES,
            status_socket: file::default_status_socket(&[]),
            warnings: Vec::new(),
            health_export_intervals: defaults::DEFAULT_HEALTH_EXPORT_INTERVALS,
            k8s_log_root: PathBuf::from(defaults::DEFAULT_K8S_LOG_ROOT),
            containers: Arc::new(NameResolver::new(defaults::DEFAULT_K8S_LOG_ROOT)),
            container_attributes: false,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("procfs", &self.procfs)
            .field("children", &self.children)
            .field("threads", &self.threads)
            .field("gather_smaps", &self.gather_smaps)
            .field("recheck", &self.recheck)
            .field("recheck_time_limit", &self.recheck_time_limit)
            .field("remove_empty_groups", &self.remove_empty_groups)
            .field("empty_group_ttl", &self.empty_group_ttl)
            .field("interval", &self.interval)
            .field("once", &self.once)
            .field("output", &self.output)
            .field("log_format", &self.log_format)
            .field("metric_names", &self.metric_names)
            .field("exit_accounting", &self.exit_accounting)
            .field("namer", &self.namer.describe())
            .field("source_file", &self.source_file)
            .field("max_groups", &self.max_groups)
            .field("max_thread_names", &self.max_thread_names)
            .field("status_socket", &self.status_socket)
            .field("warnings", &self.warnings)
            .field("health_export_intervals", &self.health_export_intervals)
            .field("k8s_log_root", &self.k8s_log_root)
            .field("container_attributes", &self.container_attributes)
            .finish()
    }
}

/// The `--check-config` report: every setting and the compiled rules in
/// evaluation order.
impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dur = |d: Duration| humantime::format_duration(d).to_string();
        match &self.source_file {
            Some(p) => writeln!(f, "config: {}", p.display())?,
            None => writeln!(f, "config: (none)")?,
        }
        writeln!(f, "procfs: {}", self.procfs.display())?;
        writeln!(f, "interval: {}", dur(self.interval))?;
        writeln!(f, "children: {}", self.children)?;
        writeln!(f, "threads: {}", self.threads)?;
        writeln!(f, "gather_smaps: {}", self.gather_smaps)?;
        writeln!(f, "recheck: {}", self.recheck)?;
        writeln!(
            f,
            "recheck_with_time_limit: {}",
            dur(self.recheck_time_limit)
        )?;
        writeln!(f, "remove_empty_groups: {}", self.remove_empty_groups)?;
        match self.empty_group_ttl {
            Some(ttl) => writeln!(f, "empty_group_ttl: {}", dur(ttl))?,
            None => writeln!(f, "empty_group_ttl: never")?,
        }
        writeln!(f, "exit_accounting: {}", self.exit_accounting.as_str())?;
        writeln!(f, "max_groups: {}", self.max_groups)?;
        writeln!(f, "max_thread_names: {}", self.max_thread_names)?;
        writeln!(f, "status_socket: {}", self.status_socket.display())?;
        writeln!(
            f,
            "health_export_intervals: {}",
            self.health_export_intervals
        )?;
        let log = match self.log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        writeln!(f, "log_format: {log}")?;
        let names = match self.metric_names {
            MetricNames::Otel => "otel",
            MetricNames::ProcessExporter => "process-exporter",
        };
        writeln!(f, "metric_names: {names}")?;
        writeln!(f, "k8s_log_root: {}", self.k8s_log_root.display())?;
        writeln!(f, "container_attributes: {}", self.container_attributes)?;
        let rules = self.namer.describe();
        writeln!(f, "rules ({}):", rules.len())?;
        for r in rules {
            writeln!(f, "  {r}")?;
        }
        Ok(())
    }
}

/// Builds the configuration from the command line and the process environment.
pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
    let env: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    load_from(cli, &env)
}

/// [`load`] with an explicit environment instead of the process's, so tests
/// need not change global state.
pub fn load_from(cli: &Cli, env: &[(String, String)]) -> Result<Config, ConfigError> {
    let config_path = cli.config.clone().or_else(|| {
        env.iter()
            .find(|(k, v)| k == "PROCGROUPS_CONFIG" && !v.is_empty())
            .map(|(_, v)| PathBuf::from(v))
    });

    let env_layer = EnvSettings::new(env).map_err(|var| {
        let hint = if var == "PROCGROUPS_PROCESS_NAMES" {
            "naming rules (process_names) are read only from the config file".to_string()
        } else {
            format!(
                "unknown setting; known: PROCGROUPS_CONFIG, {}",
                SETTING_KEYS
                    .iter()
                    .map(|k| format!("{ENV_PREFIX}{}", k.to_ascii_uppercase()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        ConfigError::invalid(Origin::Env(var), "", hint)
    })?;

    let mut fig = Figment::from(Named::defaults(Serialized::defaults(
        RawSettings::defaults(env),
    )));
    if let Some(path) = &config_path {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        // An empty (or comment-only) file is an empty configuration, not a
        // YAML document of the wrong type.
        let has_content = text
            .lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
        if has_content {
            fig = fig.merge(Named::file(Yaml::string(&text), path));
        }
    }
    fig = fig
        .merge(env_layer)
        .merge(Named::flags(Serialized::defaults(FlagSettings::from(cli))));

    let raw: RawSettings = fig
        .extract_lossy()
        .map_err(|e| from_figment(e, &fig, config_path.as_deref()))?;
    let config = compile(raw, &fig, cli, config_path)?;
    check_otlp_endpoints(env)?;
    Ok(config)
}

/// Validates the merged settings and compiles the rules.
fn compile(
    raw: RawSettings,
    fig: &Figment,
    cli: &Cli,
    source_file: Option<PathBuf>,
) -> Result<Config, ConfigError> {
    let origin = |key: &str| origin_of(fig, key);
    let mut warnings = Vec::new();

    let procfs = raw.procfs.clone();
    check_procfs(&procfs, origin("procfs"))?;

    let interval = interval(&raw.interval, origin("interval"))?;
    let (recheck, recheck_time_limit) = recheck_policy(&raw, &origin)?;
    let (empty_group_ttl, remove_empty_groups) = group_lifetime(&raw, &origin)?;
    let empty_group_ttl_explicit = origin("empty_group_ttl") != Origin::Default;
    let (max_groups, max_thread_names) = caps(&raw, &origin)?;
    let health_export_intervals = health_export_intervals(
        raw.health_export_intervals,
        origin("health_export_intervals"),
    )?;

    let once = once_delay(cli)?;

    let forgets_groups = remove_empty_groups || empty_group_ttl.is_some();
    let containers = Arc::new(NameResolver::new(raw.k8s_log_root.clone()));
    let namer = compile_namer(
        &raw,
        &procfs,
        &containers,
        &origin,
        forgets_groups,
        &mut warnings,
    )?;

    Ok(Config {
        procfs,
        children: raw.children,
        threads: raw.threads,
        gather_smaps: raw.gather_smaps,
        recheck,
        recheck_time_limit,
        remove_empty_groups,
        empty_group_ttl,
        empty_group_ttl_explicit,
        interval,
        once,
        output: cli.output.unwrap_or(OutputFormat::Table),
        log_format: raw.log_format,
        metric_names: raw.metric_names,
        exit_accounting: raw.exit_accounting,
        namer,
        source_file,
        max_groups,
        max_thread_names,
        status_socket: raw.status_socket,
        warnings,
        health_export_intervals,
        k8s_log_root: raw.k8s_log_root,
        containers,
        container_attributes: raw.container_attributes,
    })
}

/// Whether unmatched processes are named again each cycle, and for how
/// long after they start: a time limit implies recheck, so that setting
/// the limit alone turns it on.
fn recheck_policy(
    raw: &RawSettings,
    origin: &dyn Fn(&str) -> Origin,
) -> Result<(bool, Duration), ConfigError> {
    let limit = parse_duration(
        &raw.recheck_with_time_limit,
        "recheck_with_time_limit",
        &origin("recheck_with_time_limit"),
    )?;
    Ok((raw.recheck || !limit.is_zero(), limit))
}

/// How long an empty group is kept, and whether it is forgotten as soon as
/// it empties: `never` keeps it for ever, and a time to live of zero is
/// the same as `remove_empty_groups`.
fn group_lifetime(
    raw: &RawSettings,
    origin: &dyn Fn(&str) -> Origin,
) -> Result<(Option<Duration>, bool), ConfigError> {
    let ttl = if raw.empty_group_ttl.0.trim().eq_ignore_ascii_case("never") {
        None
    } else {
        Some(parse_duration(
            &raw.empty_group_ttl,
            "empty_group_ttl",
            &origin("empty_group_ttl"),
        )?)
    };
    Ok((ttl, raw.remove_empty_groups || ttl == Some(Duration::ZERO)))
}

/// The cardinality caps (`max_groups`, `max_thread_names`): zero would
/// fold every group or thread into the overflow one, so it is refused.
fn caps(raw: &RawSettings, origin: &dyn Fn(&str) -> Origin) -> Result<(usize, usize), ConfigError> {
    let max_groups = positive(raw.max_groups, "max_groups", &origin("max_groups"))?;
    let max_thread_names = positive(
        raw.max_thread_names,
        "max_thread_names",
        &origin("max_thread_names"),
    )?;
    Ok((max_groups, max_thread_names))
}

/// A procfs mount has a `stat` file: checked here, so that a wrong
/// `procfs` fails at startup beside its setting.
fn check_procfs(procfs: &Path, origin: Origin) -> Result<(), ConfigError> {
    let stat = procfs.join("stat");
    let stat_problem = match std::fs::metadata(&stat) {
        Ok(m) if m.is_file() => None,
        Ok(_) => Some("not a file".to_string()),
        Err(e) => Some(e.to_string()),
    };
    match stat_problem {
        None => Ok(()),
        Some(why) => Err(ConfigError::invalid(
            origin,
            "procfs",
            format!(
                "{} is not a procfs mount: cannot read {}: {why}",
                procfs.display(),
                stat.display()
            ),
        )),
    }
}

/// The collection interval, at least [`MIN_INTERVAL`].
fn interval(text: &Text, origin: Origin) -> Result<Duration, ConfigError> {
    let interval = parse_duration(text, "interval", &origin)?;
    if interval < MIN_INTERVAL {
        return Err(ConfigError::invalid(
            origin,
            "interval",
            format!(
                "must be at least {} (a shorter one reads /proc back to back), got `{}`",
                humantime::format_duration(MIN_INTERVAL),
                text.0
            ),
        ));
    }
    Ok(interval)
}

/// `health_export_intervals`: positive and within `u32`.
fn health_export_intervals(v: u64, origin: Origin) -> Result<u32, ConfigError> {
    let key = "health_export_intervals";
    let n = positive(v, key, &origin)?;
    u32::try_from(n).map_err(|_| ConfigError::invalid(origin, key, "too large"))
}

/// The delay of `--once`, `None` without `--once`.
fn once_delay(cli: &Cli) -> Result<Option<Duration>, ConfigError> {
    Ok(match (cli.once, &cli.once_delay) {
        (false, _) => None,
        (true, None) => Some(DEFAULT_ONCE_DELAY),
        (true, Some(d)) => Some(parse_duration(
            &Text(d.clone()),
            "once_delay",
            &Origin::Flag("--once-delay".into()),
        )?),
    })
}

fn positive(v: u64, key: &str, origin: &Origin) -> Result<usize, ConfigError> {
    if v == 0 {
        return Err(ConfigError::invalid(
            origin.clone(),
            key,
            "must be at least 1",
        ));
    }
    usize::try_from(v).map_err(|_| ConfigError::invalid(origin.clone(), key, "too large"))
}

/// Parses a human duration (`15s`, `1m`, `1m30s`, `500ms`, `0`).
fn parse_duration(text: &Text, key: &str, origin: &Origin) -> Result<Duration, ConfigError> {
    let s = text.0.trim();
    let bad = |m: String| ConfigError::invalid(origin.clone(), key, m);
    if s.starts_with('-') {
        return Err(bad(format!("must not be negative, got `{s}`")));
    }
    if s != "0" && s.parse::<f64>().is_ok() {
        return Err(bad(format!(
            "`{s}` has no unit: write e.g. `{s}s` (units: ms, s, m, h)"
        )));
    }
    humantime::parse_duration(s).map_err(|e| {
        bad(format!(
            "`{s}` is not a duration ({e}); write e.g. `15s`, `1m`, `500ms`"
        ))
    })
}

#[cfg(test)]
mod tests;
