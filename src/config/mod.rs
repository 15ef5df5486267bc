//! Configuration: built-in defaults → YAML file → `PROCGROUPS_*` environment
//! → command-line flags, merged with figment and validated in one place into
//! a [`Config`], with the naming rules compiled into a [`crate::proc::MatchNamer`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::{Cli, LogFormat, OutputFormat};
use crate::proc::MatchNamer;

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
    /// Re-name untracked processes each cycle.
    pub recheck: bool,
    /// Recheck only younger processes (zero: all).
    pub recheck_time_limit: Duration,
    /// Forget empty groups.
    pub remove_empty_groups: bool,
    /// Collection interval.
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
    /// The status socket and its health policy.
    pub status: crate::status::StatusConfig,
}

/// A configuration that cannot be used; exits with code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Anything else.
    #[error("{0}")]
    Invalid(String),
}

/// Builds the configuration from the command line and the process environment.
pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
    let _ = cli;
    unimplemented!()
}
