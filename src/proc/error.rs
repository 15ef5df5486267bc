//! Errors of the process layer. The split matters to the tracker: a process
//! that is [`ProcError::Gone`] exited while being read (normal churn, not an
//! error); [`ProcError::PermissionDenied`] is expected when not root and
//! counts as a partial read; everything else is a read error.

use std::path::PathBuf;

/// Why one process could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// The process exited (ENOENT/ESRCH while reading its files).
    #[error("process {pid} no longer exists")]
    Gone {
        /// The PID that vanished.
        pid: i32,
    },
    /// The agent lacks the privilege to read a file of this process.
    #[error("permission denied reading {}", path.display())]
    PermissionDenied {
        /// The file that could not be read.
        path: PathBuf,
    },
    /// Some other I/O failure.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file was read but its content makes no sense.
    #[error("cannot parse {}: {reason}", path.display())]
    Parse {
        /// The file that could not be parsed.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

impl ProcError {
    /// True when the process has exited: not an error, just churn.
    pub fn is_gone(&self) -> bool {
        matches!(self, ProcError::Gone { .. })
    }
}

/// Why a whole source could not be listed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The procfs mount point cannot be listed.
    #[error("cannot list processes in {}: {source}", path.display())]
    List {
        /// The mount point.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The directory is not a procfs (e.g. no readable `stat` with `btime`).
    #[error("{} is not a procfs mount: {reason}", path.display())]
    NotProcfs {
        /// The directory given.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
}
