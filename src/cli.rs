//! The command line, as clap parses it. Every option is optional here so
//! that an absent flag does not override the lower configuration layers;
//! [`crate::config`] merges and validates. Each setting can also come from
//! the YAML file (key = flag name with `_`) or from `PROCGROUPS_<KEY>`;
//! a flag wins over both.
//!
//! Booleans take an optional value (`--threads`, `--threads=false`,
//! `--threads false`), and there are no positional arguments, so a stray
//! word is an error instead of silently ending the flags as it did in
//! process-exporter.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Output format of `--once`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// Aligned table, human units.
    Table,
    /// The JSON object of DESIGN.md.
    Json,
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

/// procgroups: group processes by name and push their metrics over OTLP/gRPC.
#[derive(Debug, Clone, Default, Parser)]
#[command(name = "procgroups", version, about)]
pub struct Cli {
    /// YAML configuration file (process-exporter `process_names` format
    /// accepted) [env: PROCGROUPS_CONFIG].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// procfs mount point to read.
    #[arg(long, value_name = "DIR")]
    pub procfs: Option<PathBuf>,
    /// Comma-separated comm names to track (legacy process-exporter flag).
    #[arg(long, value_name = "a,b,c")]
    pub procnames: Option<String>,
    /// name,regex pairs (legacy process-exporter flag).
    #[arg(long, value_name = "name,regex,...")]
    pub namemapping: Option<String>,
    /// Track children under their nearest tracked ancestor's group.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub children: Option<bool>,
    /// Read per-thread detail and export the thread-name metrics.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub threads: Option<bool>,
    /// Read smaps_rollup for proportional memory (expensive).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub gather_smaps: Option<bool>,
    /// Re-run the naming rules each cycle on processes not yet tracked.
    #[arg(long)]
    pub recheck: bool,
    /// Recheck only processes younger than this (e.g. 30s); implies --recheck.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub recheck_with_time_limit: Option<String>,
    /// Forget groups whose last process exited.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub remove_empty_groups: Option<bool>,
    /// Collection interval (e.g. 500ms, 15s, 1m).
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub interval: Option<String>,
    /// Run two cycles, print the second, exit; no collector needed.
    #[arg(long)]
    pub once: bool,
    /// Delay between the two cycles of --once.
    #[arg(
        long,
        value_name = "DURATION",
        requires = "once",
        allow_hyphen_values = true
    )]
    pub once_delay: Option<String>,
    /// Output format of --once.
    #[arg(long, value_enum, requires = "once")]
    pub output: Option<OutputFormat>,
    /// Load and validate the configuration, print the compiled rules, exit.
    #[arg(long)]
    pub check_config: bool,
    /// Log format.
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Keep at most this many groups (default 1000); the processes of
    /// further groups are added up in the group `procgroups.overflow`.
    #[arg(long, value_name = "N")]
    pub max_groups: Option<u64>,
    /// Keep at most this many thread names per group (default 100); further
    /// threads are added up under the thread name `procgroups.overflow`.
    #[arg(long, value_name = "N")]
    pub max_thread_names: Option<u64>,
    /// Unix socket of the status service.
    #[arg(long, value_name = "PATH")]
    pub status_socket: Option<PathBuf>,
}
