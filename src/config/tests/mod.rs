//! Rule-engine and loading tests: process-exporter's ConfigBasic and
//! ConfigTemplates cases, and the behaviours its bugs got wrong.
//!
//! - `rules`: matching and naming, the flags that make rules, defaults.
//! - `loading`: what loading refuses or fills in (rule errors, intervals,
//!   procfs, Kubernetes variables, OTLP endpoints).
//! - `containers`: the container selectors and attributes.

mod containers;
mod loading;
mod rules;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::proc::ProcAttributes;

/// A process as the namer sees it.
struct P {
    comm: &'static str,
    argv: Vec<String>,
    cgroups: Vec<String>,
    uid: u32,
    pid: i32,
    start: SystemTime,
}

fn p(comm: &'static str, argv: &[&str]) -> P {
    P {
        comm,
        argv: argv.iter().map(|s| s.to_string()).collect(),
        cgroups: Vec::new(),
        uid: 0,
        pid: 1,
        start: UNIX_EPOCH,
    }
}

impl P {
    fn attrs(&self) -> ProcAttributes<'_> {
        ProcAttributes {
            name: self.comm,
            cmdline: &self.argv,
            cgroups: &self.cgroups,
            uid: self.uid,
            pid: self.pid,
            start_time: self.start,
        }
    }
}

/// A procfs-looking directory (only `stat` is checked at load).
fn fake_procfs(root: &Path) -> PathBuf {
    let procfs = root.join("proc");
    std::fs::create_dir_all(&procfs).unwrap();
    std::fs::write(procfs.join("stat"), "btime 1508450329\n").unwrap();
    procfs
}

/// Loads `yaml` as the config file, with an empty environment.
fn load_yaml(yaml: &str) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    let cli = Cli {
        config: Some(path),
        procfs: Some(fake_procfs(dir.path())),
        ..Cli::default()
    };
    load_from(&cli, &[])
}

fn cli_with(f: impl FnOnce(&mut Cli)) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let mut cli = Cli {
        procfs: Some(fake_procfs(dir.path())),
        ..Cli::default()
    };
    f(&mut cli);
    load_from(&cli, &[])
}

fn name(c: &Config, proc_: &P) -> Option<String> {
    c.namer.match_and_name(&proc_.attrs())
}

fn rule_index(c: &Config, proc_: &P) -> Option<usize> {
    c.namer.explain(&proc_.attrs()).rule
}
