//! Configuration: its layers, the status settings, `check-config`, and what
//! is refused.

use std::path::{Path, PathBuf};

use clap::Parser;
use procgroups::cli::Cli;
use procgroups::config::{Config, ConfigError, load_from};

mod check;
mod layers;
mod otel_env;
mod refused;
mod status_settings;

/// A directory `root/name` that passes for a procfs mount (only `stat` is
/// checked).
fn fake_procfs(root: &Path, name: &str) -> PathBuf {
    let p = root.join(name);
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("stat"), "btime 1\n").unwrap();
    p
}

/// The configuration that `procgroups ARGS` with environment `env` loads.
fn try_load(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let cli =
        Cli::try_parse_from(std::iter::once("procgroups").chain(args.iter().copied())).unwrap();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    load_from(&cli, &env)
}
