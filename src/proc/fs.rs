//! [`FsSource`]: the only part of the process layer that touches a real
//! procfs. It reads a mount point given at construction (`/proc`, or
//! `/host/proc` in a container), with boot time from `<mount>/stat` and the
//! clock tick rate and page size from the system.

use std::path::{Path, PathBuf};

use super::{ID, Metrics, Proc, ProcError, Source, SourceError, Static, Thread};

/// Facts about the system that turn raw `/proc` values into seconds and bytes.
/// Passed in, never assumed, so fixture trees can be read with known values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemFacts {
    /// `btime` of `<mount>/stat`, Unix seconds.
    pub boot_time_secs: u64,
    /// sysconf(_SC_CLK_TCK).
    pub ticks_per_second: u64,
    /// sysconf(_SC_PAGESIZE).
    pub page_size: u64,
}

/// What an [`FsSource`] reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsSourceOptions {
    /// Read `smaps_rollup` for proportional memory (expensive; off by default).
    pub gather_smaps: bool,
}

/// A [`Source`] over a procfs mount point.
#[derive(Debug)]
pub struct FsSource {
    root: PathBuf,
    facts: SystemFacts,
    options: FsSourceOptions,
}

impl FsSource {
    /// Opens `root`, reading its boot time from `root/stat`.
    pub fn new(root: impl AsRef<Path>, options: FsSourceOptions) -> Result<Self, SourceError> {
        let _ = (root, options);
        unimplemented!("FsSource::new")
    }

    /// Opens `root` with explicit system facts (for fixture trees).
    pub fn with_facts(
        root: impl AsRef<Path>,
        facts: SystemFacts,
        options: FsSourceOptions,
    ) -> Self {
        FsSource {
            root: root.as_ref().to_path_buf(),
            facts,
            options,
        }
    }

    /// The mount point read.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The system facts in use.
    pub fn facts(&self) -> SystemFacts {
        self.facts
    }

    /// What this source reads.
    pub fn options(&self) -> FsSourceOptions {
        self.options
    }
}

/// One process under an [`FsSource`].
#[derive(Debug)]
pub struct FsProc {
    pid: i32,
}

impl Proc for FsProc {
    fn pid(&self) -> i32 {
        self.pid
    }
    fn id(&mut self) -> Result<ID, ProcError> {
        unimplemented!()
    }
    fn static_info(&mut self) -> Result<Static, ProcError> {
        unimplemented!()
    }
    fn metrics(&mut self) -> Result<Metrics, ProcError> {
        unimplemented!()
    }
    fn threads(&mut self) -> Result<Vec<Thread>, ProcError> {
        unimplemented!()
    }
}

impl Source for FsSource {
    type Proc = FsProc;
    fn all_procs(&mut self) -> Result<Vec<FsProc>, SourceError> {
        unimplemented!()
    }
}
