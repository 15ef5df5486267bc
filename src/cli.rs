//! The command line, as clap parses it. Every option is optional here so
//! that an absent flag does not override the lower configuration layers
//! (so the defaults are written in the help text, not given to clap as
//! `default_value`); [`crate::config`] merges and validates. Each setting
//! can also come from the YAML file (key = flag name with `_`) or from
//! `PROCGROUPS_<KEY>`; a flag wins over both.
//!
//! Booleans take an optional value (`--threads`, `--threads=false`,
//! `--threads false`, with the words of [`crate::config::BOOL_WORDS`]),
//! and there are no positional arguments, so a stray
//! word is an error instead of silently ending the flags as it did in
//! process-exporter.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// A boolean flag's value, read with the same words as the variables and
/// the file ([`crate::config::BOOL_WORDS`]).
fn bool_value(text: &str) -> Result<bool, String> {
    crate::config::parse_bool(text).ok_or_else(|| crate::config::not_a_bool(text))
}

/// Output format of `--once`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// Aligned table, human units.
    Table,
    /// One JSON object: the groups, with stable keys, and the error counts.
    Json,
}

/// Which names the group metrics are exported under.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum MetricNames {
    /// `procgroup.*`, in the OpenTelemetry semantic-convention style.
    #[default]
    Otel,
    /// Names, units, kinds and attributes that the Collector's Prometheus
    /// exporter turns into process-exporter's `namedprocess_*` series.
    ProcessExporter,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable text.
    Text,
    /// One JSON object per line.
    Json,
}

/// How the work of processes that exit between two samples is counted.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ExitAccounting {
    /// Exit records (taskstats) when the agent may receive them, else the
    /// reaped-children totals.
    #[default]
    Auto,
    /// The reaped-children totals only, even where exit records would work.
    Children,
}

impl ExitAccounting {
    /// The setting's value as written.
    pub fn as_str(self) -> &'static str {
        match self {
            ExitAccounting::Auto => "auto",
            ExitAccounting::Children => "children",
        }
    }
}

/// procgroups: group processes by name and push their metrics over OTLP/gRPC.
#[derive(Debug, Clone, Default, Parser)]
#[command(name = "procgroups", version, about)]
pub struct Cli {
    /// YAML configuration file (process-exporter `process_names` format
    /// accepted) [env: PROCGROUPS_CONFIG].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// procfs mount point to read [default: /proc].
    #[arg(long, value_name = "DIR")]
    pub procfs: Option<PathBuf>,
    /// Comma-separated comm names to track (legacy process-exporter flag).
    #[arg(long, value_name = "a,b,c")]
    pub procnames: Option<String>,
    /// name,regex pairs (legacy process-exporter flag).
    #[arg(long, value_name = "name,regex,...")]
    pub namemapping: Option<String>,
    /// Track children under their nearest tracked ancestor's group
    /// [default: true].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", value_parser = bool_value)]
    pub children: Option<bool>,
    /// Read per-thread detail and export the thread-name metrics
    /// [default: true].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", value_parser = bool_value)]
    pub threads: Option<bool>,
    /// Read smaps_rollup for proportional memory (expensive) [default: false].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", value_parser = bool_value)]
    pub gather_smaps: Option<bool>,
    /// Re-run the naming rules each cycle on processes not yet tracked.
    #[arg(long)]
    pub recheck: bool,
    /// Recheck only processes younger than this (e.g. 30s); implies --recheck
    /// [default: 0s, off].
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub recheck_with_time_limit: Option<String>,
    /// Forget groups whose last process exited [default: false].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", value_parser = bool_value)]
    pub remove_empty_groups: Option<bool>,
    /// Forget a group once it has had no process for this long (e.g. 5m;
    /// `never` keeps it, as process-exporter does; 0 is
    /// --remove-empty-groups) [default: 5m].
    #[arg(long, value_name = "DURATION|never", allow_hyphen_values = true)]
    pub empty_group_ttl: Option<String>,
    /// Collection interval (e.g. 500ms, 15s, 1m) [default: 15s].
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub interval: Option<String>,
    /// Run two cycles, print the second, exit; no collector needed.
    #[arg(long)]
    pub once: bool,
    /// Delay between the two cycles of --once [default: 1s].
    #[arg(
        long,
        value_name = "DURATION",
        requires = "once",
        allow_hyphen_values = true
    )]
    pub once_delay: Option<String>,
    /// Output format of --once [default: table].
    #[arg(long, value_enum, requires = "once")]
    pub output: Option<OutputFormat>,
    /// Load and validate the configuration, print the compiled rules, exit.
    #[arg(long)]
    pub check_config: bool,
    /// Log format [default: text].
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Metric names: `otel` (procgroup.*) or `process-exporter`
    /// (namedprocess_namegroup_* once through a Collector's Prometheus
    /// exporter) [default: otel].
    #[arg(long, value_enum)]
    pub metric_names: Option<MetricNames>,
    /// How the work of exited processes is counted: `auto` (exit records
    /// where permitted, else reaped-children totals) or `children`
    /// [default: auto].
    #[arg(long, value_enum, value_name = "MODE")]
    pub exit_accounting: Option<ExitAccounting>,
    /// Keep at most this many groups [default: 1000]; the processes of
    /// further groups are added up in the group `procgroups.overflow`.
    #[arg(long, value_name = "N")]
    pub max_groups: Option<u64>,
    /// Keep at most this many thread names per group [default: 100]; further
    /// threads are added up under the thread name `procgroups.overflow`.
    #[arg(long, value_name = "N")]
    pub max_thread_names: Option<u64>,
    /// Unix socket of the status and health service (`none` disables it);
    /// default /run/procgroups/status.sock for root, else
    /// procgroups-$UID/status.sock under $XDG_RUNTIME_DIR or the temp dir.
    #[arg(long, value_name = "PATH")]
    pub status_socket: Option<PathBuf>,
    /// Report NOT_SERVING once no export has succeeded for this many export
    /// intervals [default: 3].
    #[arg(long, value_name = "N")]
    pub health_export_intervals: Option<u64>,
    /// Directory holding the kubelet's `pods/` and `containers/` log
    /// directories, which name the namespace, pod and container of a
    /// process's container (default /var/log).
    #[arg(long, value_name = "DIR")]
    pub k8s_log_root: Option<PathBuf>,
    /// Split every group by container, and give its data points the
    /// container.id and k8s.* attributes of its container [default: false].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", value_parser = bool_value)]
    pub container_attributes: Option<bool>,
    /// A client command for a running agent; without one, run the agent.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Client commands that ask a running agent over its status socket.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Show what the running agent sees: groups, errors, last cycle and export.
    Status {
        /// Status socket of the agent.
        #[command(flatten)]
        socket: SocketArg,
        /// Output format: table or json.
        #[arg(long, value_enum, default_value = "table", hide_possible_values = true)]
        output: OutputFormat,
    },
    /// Show how the agent groups one process: its name, the rule that
    /// matched it (or why none did), and its group.
    Explain {
        /// The process.
        #[arg(value_parser = clap::value_parser!(i32).range(1..))]
        pid: i32,
        /// Status socket of the agent.
        #[command(flatten)]
        socket: SocketArg,
        /// Output format: table or json.
        #[arg(long, value_enum, default_value = "table", hide_possible_values = true)]
        output: OutputFormat,
    },
    /// Exit 0 when the agent reports SERVING, 1 otherwise (for probes).
    Health {
        /// Status socket of the agent.
        #[command(flatten)]
        socket: SocketArg,
        /// Judge only whether collection cycles run, not whether exports
        /// get through (for a liveness probe: a collector outage should not
        /// restart the agent).
        #[arg(long)]
        liveness: bool,
    },
}

/// `--socket PATH` of the client commands.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SocketArg {
    /// Status socket of the agent (default: the agent's default).
    #[arg(long, value_name = "PATH", env = "PROCGROUPS_STATUS_SOCKET")]
    pub socket: Option<PathBuf>,
}
