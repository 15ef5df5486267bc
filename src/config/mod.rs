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
mod file;
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
pub use file::{ENV_PREFIX, RawRule, RawSettings, SETTING_KEYS};
pub use rules::{ExeEntry, LegacyNamer, Rule, RuleSet};
pub use template::{DEFAULT_TEMPLATE, Field, Rfc3339, Template, TemplateError};
pub use users::UserNames;

use crate::cli::{Cli, LogFormat, OutputFormat};
use crate::proc::MatchNamer;
use file::{EnvSettings, FlagSettings, Named, Text, TextList, Tokens, layer};

/// The kernel keeps at most this many bytes of a command name (comm).
pub const COMM_MAX_BYTES: usize = 15;

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
    /// Collection interval (never zero).
    pub interval: Duration,
    /// `--once`: delay between the two cycles, when set.
    pub once: Option<Duration>,
    /// Output of `--once`.
    pub output: OutputFormat,
    /// Log format.
    pub log_format: LogFormat,
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
            interval: Duration::from_secs(15),
            once: None,
            output: OutputFormat::Table,
            log_format: LogFormat::Text,
            namer,
            source_file: None,
            max_groups: defaults::DEFAULT_MAX_GROUPS,
            max_thread_names: defaults::DEFAULT_MAX_THREAD_NAMES,
            status_socket: file::default_status_socket(&[]),
            warnings: Vec::new(),
            health_export_intervals: defaults::DEFAULT_HEALTH_EXPORT_INTERVALS,
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
            .field("interval", &self.interval)
            .field("once", &self.once)
            .field("output", &self.output)
            .field("log_format", &self.log_format)
            .field("namer", &self.namer.describe())
            .field("source_file", &self.source_file)
            .field("max_groups", &self.max_groups)
            .field("max_thread_names", &self.max_thread_names)
            .field("status_socket", &self.status_socket)
            .field("warnings", &self.warnings)
            .field("health_export_intervals", &self.health_export_intervals)
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

/// The variables that name the OTLP collector, most specific first.
pub const OTLP_ENDPOINT_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// Checks that every set OTLP endpoint variable is an `http://` or
/// `https://` URL with a host, or a bare `host[:port]`, which the exporter
/// completes with `https://` (`http://` when `OTEL_EXPORTER_OTLP_INSECURE`
/// is true). The exporter would otherwise fail only when it is built, or
/// only when it first connects and then on every export, far from the
/// setting that is wrong.
pub fn check_otlp_endpoints(env: &[(String, String)]) -> Result<(), ConfigError> {
    for var in OTLP_ENDPOINT_VARS {
        let Some((_, value)) = env.iter().rev().find(|(k, _)| k == var) else {
            continue;
        };
        let value = value.trim();
        // Empty means unset, as the OpenTelemetry specification says.
        if value.is_empty() {
            continue;
        }
        check_otlp_endpoint(value)
            .map_err(|why| ConfigError::invalid(Origin::Env(var.to_string()), "", why))?;
    }
    Ok(())
}

/// Why `value` is not a usable OTLP/gRPC endpoint.
fn check_otlp_endpoint(value: &str) -> Result<(), String> {
    let example = "write e.g. `http://localhost:4317` or `https://collector.example:4317`";
    // A scheme as the exporter recognises one: text before `://` that is
    // not part of a path, query or fragment.
    let has_scheme = value
        .split_once("://")
        .is_some_and(|(scheme, _)| !scheme.contains(['/', '?', '#']));
    let url = if has_scheme {
        value.to_string()
    } else {
        format!("https://{value}")
    };
    let uri: tonic::codegen::http::Uri = url
        .parse()
        .map_err(|e| format!("`{value}` is not a URL ({e}); {example}"))?;
    match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") => {}
        Some(s) => {
            return Err(format!(
                "`{value}` has scheme `{s}`; OTLP/gRPC needs http or https; {example}"
            ));
        }
        None => return Err(format!("`{value}` is not a URL; {example}")),
    }
    let authority = match uri.authority() {
        Some(a) if !a.host().is_empty() => a,
        _ => return Err(format!("`{value}` has no host; {example}")),
    };
    // The URL parser keeps a port it cannot read as a number (`:99999`,
    // `:`) and reports none; the text after the host's last `:` tells.
    let port_text = authority
        .as_str()
        .rsplit_once(':')
        .map(|(_, p)| p)
        .filter(|p| !p.contains(']'));
    match (authority.port_u16(), port_text) {
        (Some(0), _) => Err(format!("`{value}` has port 0; {example}")),
        (None, Some(p)) => Err(format!(
            "`{value}` has port `{p}`, which is not a number from 1 to 65535; {example}"
        )),
        _ => Ok(()),
    }
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

    let procfs = raw.procfs;
    let stat = procfs.join("stat");
    let stat_problem = match std::fs::metadata(&stat) {
        Ok(m) if m.is_file() => None,
        Ok(_) => Some("not a file".to_string()),
        Err(e) => Some(e.to_string()),
    };
    if let Some(why) = stat_problem {
        return Err(ConfigError::invalid(
            origin("procfs"),
            "procfs",
            format!(
                "{} is not a procfs mount: cannot read {}: {why}",
                procfs.display(),
                stat.display()
            ),
        ));
    }

    let interval = parse_duration(&raw.interval, "interval", &origin("interval"))?;
    if interval < MIN_INTERVAL {
        return Err(ConfigError::invalid(
            origin("interval"),
            "interval",
            format!(
                "must be at least {} (a shorter one reads /proc back to back), got `{}`",
                humantime::format_duration(MIN_INTERVAL),
                raw.interval.0
            ),
        ));
    }
    let recheck_time_limit = parse_duration(
        &raw.recheck_with_time_limit,
        "recheck_with_time_limit",
        &origin("recheck_with_time_limit"),
    )?;
    let recheck = raw.recheck || !recheck_time_limit.is_zero();

    let max_groups = positive(raw.max_groups, "max_groups", &origin("max_groups"))?;
    let max_thread_names = positive(
        raw.max_thread_names,
        "max_thread_names",
        &origin("max_thread_names"),
    )?;
    let health_export_intervals = positive(
        raw.health_export_intervals,
        "health_export_intervals",
        &origin("health_export_intervals"),
    )
    .and_then(|n| {
        u32::try_from(n).map_err(|_| {
            ConfigError::invalid(
                origin("health_export_intervals"),
                "health_export_intervals",
                "too large",
            )
        })
    })?;

    let once = match (cli.once, &cli.once_delay) {
        (false, _) => None,
        (true, None) => Some(DEFAULT_ONCE_DELAY),
        (true, Some(d)) => Some(parse_duration(
            &Text(d.clone()),
            "once_delay",
            &Origin::Flag("--once-delay".into()),
        )?),
    };

    let legacy = raw.procnames.is_some() || raw.namemapping.is_some();
    let namer: Arc<dyn MatchNamer> = match (raw.process_names, legacy) {
        (Some(_), true) => {
            let which = if raw.procnames.is_some() {
                "procnames"
            } else {
                "namemapping"
            };
            return Err(ConfigError::Conflict(format!(
                "process_names (from {}) cannot be combined with {which} (from {}); \
                 use the rules or the legacy setting, not both",
                origin("process_names"),
                origin(which)
            )));
        }
        (Some(items), false) => {
            let rules_origin = origin("process_names");
            let mut rules = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let rule = compile_rule(item).map_err(|(field, message)| {
                    ConfigError::invalid(
                        rules_origin.clone(),
                        rule_location(i, item, &field),
                        message,
                    )
                })?;
                if rule.name.uses(Field::Pid) || rule.name.uses(Field::StartTime) {
                    warnings.push(format!(
                        "process_names[{i}]: name {:?} uses .PID or .StartTime: one group per \
                         process (high cardinality){}",
                        rule.name.source(),
                        if raw.remove_empty_groups {
                            ""
                        } else {
                            "; without remove_empty_groups those groups are kept forever"
                        }
                    ));
                }
                rules.push(rule);
            }
            if rules.is_empty() {
                warnings.push("process_names is empty: no process will be tracked".into());
            }
            Arc::new(RuleSet::new(rules, UserNames::for_procfs(&procfs)))
        }
        (None, true) => Arc::new(compile_legacy(
            raw.procnames.as_ref(),
            raw.namemapping.as_ref(),
            &origin,
        )?),
        (None, false) => Arc::new(default_rules(&procfs)?),
    };

    Ok(Config {
        procfs,
        children: raw.children,
        threads: raw.threads,
        gather_smaps: raw.gather_smaps,
        recheck,
        recheck_time_limit,
        remove_empty_groups: raw.remove_empty_groups,
        interval,
        once,
        output: cli.output.unwrap_or(OutputFormat::Table),
        log_format: raw.log_format,
        namer,
        source_file,
        max_groups,
        max_thread_names,
        status_socket: raw.status_socket,
        warnings,
        health_export_intervals,
    })
}

/// With no rules at all: every process with a non-empty command line,
/// grouped by comm (process-exporter's packaged `all.yaml`).
pub fn default_rules(procfs: &Path) -> Result<RuleSet, ConfigError> {
    let bad = |m: String| ConfigError::invalid(Origin::Default, "process_names", m);
    let rule = Rule {
        name: Template::parse("{{.Comm}}", &[]).map_err(|e| bad(e.0))?,
        comm: None,
        exe: None,
        cmdline: Some(vec![Regex::new(".+").map_err(|e| bad(e.to_string()))?]),
    };
    Ok(RuleSet::new(vec![rule], UserNames::for_procfs(procfs)))
}

fn rule_location(i: usize, item: &RawRule, field: &str) -> String {
    let name = match &item.name {
        Some(n) if !n.0.is_empty() => format!("name {:?}", n.0),
        _ => "no name".to_string(),
    };
    if field.is_empty() {
        format!("process_names[{i}] ({name})")
    } else {
        format!("process_names[{i}] ({name}): {field}")
    }
}

/// Compiles one item; `Err((field, message))`.
fn compile_rule(item: &RawRule) -> Result<Rule, (String, String)> {
    let never = |field: &str| {
        (
            field.to_string(),
            "empty list: remove the key or give at least one entry".to_string(),
        )
    };
    let entries = |field: &str, list: &TextList| -> Result<Vec<String>, (String, String)> {
        if list.0.is_empty() {
            return Err(never(field));
        }
        for (j, e) in list.0.iter().enumerate() {
            if e.is_empty() {
                return Err((
                    format!("{field}[{j}]"),
                    "empty entry can never match".to_string(),
                ));
            }
        }
        Ok(list.0.clone())
    };

    let comm = match &item.comm {
        None => None,
        Some(list) => {
            let comms = entries("comm", list)?;
            for (j, c) in comms.iter().enumerate() {
                check_comm_len(c).map_err(|m| (format!("comm[{j}]"), m))?;
            }
            Some(comms)
        }
    };
    let exe = match &item.exe {
        None => None,
        Some(list) => Some(
            entries("exe", list)?
                .iter()
                .map(|e| ExeEntry::new(e))
                .collect(),
        ),
    };
    let cmdline = match &item.cmdline {
        None => None,
        Some(list) => {
            let mut regexes = Vec::new();
            for (j, src) in entries("cmdline", list)?.iter().enumerate() {
                let re = Regex::new(src)
                    .map_err(|e| (format!("cmdline[{j}]"), format!("bad regex {src:?}: {e}")))?;
                regexes.push(re);
            }
            Some(regexes)
        }
    };
    if comm.is_none() && exe.is_none() && cmdline.is_none() {
        return Err((
            String::new(),
            "no selector: give at least one of comm, exe or cmdline".to_string(),
        ));
    }

    let mut captures: Vec<String> = Vec::new();
    for re in cmdline.iter().flatten() {
        for n in re.capture_names().flatten() {
            if !captures.iter().any(|c| c == n) {
                captures.push(n.to_string());
            }
        }
    }
    let source = match &item.name {
        Some(n) if !n.0.is_empty() => n.0.as_str(),
        _ => DEFAULT_TEMPLATE,
    };
    let name = Template::parse(source, &captures).map_err(|e| ("name".to_string(), e.0))?;
    Ok(Rule {
        name,
        comm,
        exe,
        cmdline,
    })
}

fn check_comm_len(c: &str) -> Result<(), String> {
    if c.len() <= COMM_MAX_BYTES {
        return Ok(());
    }
    let mut cut = COMM_MAX_BYTES;
    while !c.is_char_boundary(cut) {
        cut -= 1;
    }
    Err(format!(
        "{c:?} is {} bytes long but the kernel truncates comm to {COMM_MAX_BYTES} ({:?}), \
         so it can never match",
        c.len(),
        &c[..cut]
    ))
}

/// Splits a legacy value into tokens: a joined string on commas, a YAML
/// list as it is.
fn tokens(t: &Tokens) -> Vec<String> {
    match t {
        Tokens::Joined(s) => s.split(',').map(str::to_string).collect(),
        Tokens::List(l) => l.clone(),
    }
}

fn compile_legacy(
    procnames: Option<&Tokens>,
    namemapping: Option<&Tokens>,
    origin: &dyn Fn(&str) -> Origin,
) -> Result<LegacyNamer, ConfigError> {
    let mut mappings: Vec<(String, Regex)> = Vec::new();
    if let Some(nm) = namemapping {
        let bad = |loc: String, m: String| ConfigError::invalid(origin("namemapping"), loc, m);
        let toks = tokens(nm);
        if toks.len() % 2 == 1 {
            return Err(bad(
                "namemapping".into(),
                format!(
                    "odd number of tokens ({}): expected name,regex pairs (a regex cannot \
                     contain a comma here; use a YAML list or process_names rules)",
                    toks.len()
                ),
            ));
        }
        for (j, pair) in toks.chunks(2).enumerate() {
            let (name, src) = (&pair[0], &pair[1]);
            let loc = format!("namemapping[{j}] (name {name:?})");
            if name.is_empty() {
                return Err(bad(loc, "empty name".into()));
            }
            if src.is_empty() {
                return Err(bad(loc, "empty regex".into()));
            }
            check_comm_len(name).map_err(|m| bad(loc.clone(), m))?;
            if mappings.iter().any(|(n, _)| n == name) {
                return Err(bad(loc, format!("{name:?} is mapped twice")));
            }
            let re =
                Regex::new(src).map_err(|e| bad(loc.clone(), format!("bad regex {src:?}: {e}")))?;
            if re.captures_len() < 2 {
                return Err(bad(
                    loc,
                    format!(
                        "regex {src:?} has no capture group, so it can never name a process \
                         (the group is \"{name}:\" + the first non-empty capture)"
                    ),
                ));
            }
            mappings.push((name.clone(), re));
        }
    }

    let mut names = Vec::new();
    if let Some(pn) = procnames {
        for (j, name) in tokens(pn).into_iter().filter(|t| !t.is_empty()).enumerate() {
            // process-exporter's README has users list mapped group names
            // (`java:app`) here too; they are harmless, the mapping applies
            // anyway.
            let mapped = mappings.iter().any(|(m, _)| {
                name.strip_prefix(m.as_str())
                    .is_some_and(|r| r.starts_with(':'))
            });
            if !mapped {
                check_comm_len(&name).map_err(|m| {
                    ConfigError::invalid(origin("procnames"), format!("procnames[{j}]"), m)
                })?;
            }
            names.push(name);
        }
    }
    Ok(LegacyNamer::new(names, mappings))
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

/// Where the value of a top-level key came from.
fn origin_of(fig: &Figment, key: &str) -> Origin {
    match fig.find_metadata(key) {
        Some(md) => origin_from_metadata(md, &[key]),
        None => Origin::Default,
    }
}

fn origin_from_metadata<K: AsRef<str>>(md: &Metadata, path: &[K]) -> Origin {
    match md.name.as_ref() {
        layer::FILE => match md.source.as_ref().and_then(|s| s.file_path()) {
            Some(p) => Origin::File(p.to_path_buf()),
            None => Origin::File(PathBuf::from("?")),
        },
        layer::ENV => Origin::Env(md.interpolate(&Profile::Default, path)),
        layer::FLAGS => Origin::Flag(md.interpolate(&Profile::Default, path)),
        _ => Origin::Default,
    }
}

/// Turns figment's first error into one that names the source, the rule
/// and the key.
fn from_figment(e: figment::Error, fig: &Figment, file: Option<&Path>) -> ConfigError {
    let more = e.count().saturating_sub(1);
    let Some(first) = e.into_iter().next() else {
        return ConfigError::invalid(Origin::Default, "", "invalid configuration");
    };
    let origin = match &first.metadata {
        Some(md) => origin_from_metadata(md, &first.path),
        // Errors raised while reading a provider (YAML syntax) carry no
        // metadata; only the file can produce them.
        None => file.map_or(Origin::Default, |p| Origin::File(p.to_path_buf())),
    };
    let mut path = first.path.clone();
    if let Kind::UnknownField(found, _) = &first.kind {
        // The path ends with the unknown key itself; the message names it.
        if path.last() == Some(found) {
            path.pop();
        }
    }
    let mut location = path_location(&path, fig);
    let mut message = match &first.kind {
        Kind::UnknownField(found, expected) => {
            format!(
                "unknown key `{found}` (expected one of: {})",
                expected.join(", ")
            )
        }
        Kind::UnknownVariant(found, expected) => {
            format!(
                "unknown value `{found}` (expected one of: {})",
                expected.join(", ")
            )
        }
        Kind::Message(m) if path.is_empty() && matches!(origin, Origin::File(_)) => {
            format!("invalid YAML: {m}")
        }
        // serde names the Rust type it expected; say what it means instead.
        k => k
            .to_string()
            .replace(
                "struct RawRule",
                "a rule (a map of name, comm, exe, cmdline)",
            )
            .replace("struct RawSettings", "a map of settings"),
    };
    if location.is_empty()
        && let Kind::MissingField(f) = &first.kind
    {
        location = f.to_string();
    }
    if more > 0 {
        message.push_str(&format!(" (and {more} more error(s))"));
    }
    ConfigError::invalid(origin, location, message)
}

/// `["process_names", "2", "cmdline", "0"]` →
/// `process_names[2] (name "db"): cmdline[0]`.
fn path_location(path: &[String], fig: &Figment) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < path.len() {
        let seg = &path[i];
        let index = path.get(i + 1).and_then(|s| s.parse::<usize>().ok());
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(seg);
        if let Some(idx) = index {
            out.push_str(&format!("[{idx}]"));
            if i == 0 && seg == "process_names" {
                let name = fig
                    .find_value("process_names")
                    .ok()
                    .and_then(|v| match v {
                        Value::Array(_, items) => items.get(idx).cloned(),
                        _ => None,
                    })
                    .and_then(|item| item.into_dict())
                    .and_then(|d| d.get("name").and_then(|n| n.as_str().map(str::to_string)));
                match name {
                    Some(n) if !n.is_empty() => out.push_str(&format!(" (name {n:?})")),
                    _ => out.push_str(" (no name)"),
                }
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests;
