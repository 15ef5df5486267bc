//! The CPU list a taskstats listener registers for. The kernel sends an
//! exit record only to listeners registered on the CPU the task exits on,
//! and rejects a mask naming a CPU that is not possible; so the agent
//! registers for exactly the possible CPUs (`/sys/devices/system/cpu/possible`,
//! whose path is given, so that a container can point at the host's sysfs),
//! which also covers CPUs brought online later.

use std::path::Path;

/// Why a CPU list could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CpuListError {
    #[error("reading {path}: {message}")]
    Read { path: String, message: String },
    #[error("CPU list {0:?} is not a list of CPU numbers and ranges like \"0-3,8\"")]
    Syntax(String),
}

/// Validates a kernel CPU list (`0`, `0-7`, `0-3,8-11`) and returns it
/// normalised (trimmed), as the kernel's `cpulist_parse` expects it in
/// `TASKSTATS_CMD_ATTR_REGISTER_CPUMASK`.
pub fn parse_cpu_list(text: &str) -> Result<String, CpuListError> {
    let list = text.trim();
    let bad = || CpuListError::Syntax(list.to_owned());
    if list.is_empty() {
        return Err(bad());
    }
    for part in list.split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let lo: u32 = lo.parse().map_err(|_| bad())?;
        let hi: u32 = hi.parse().map_err(|_| bad())?;
        if lo > hi {
            return Err(bad());
        }
    }
    Ok(list.to_owned())
}

/// Reads and validates the CPU list at `path` (normally
/// `/sys/devices/system/cpu/possible`).
pub fn read_cpu_list(path: &Path) -> Result<String, CpuListError> {
    let text = std::fs::read_to_string(path).map_err(|e| CpuListError::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    parse_cpu_list(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kernel_lists() {
        assert_eq!(parse_cpu_list("0-1\n"), Ok("0-1".to_owned()));
        assert_eq!(parse_cpu_list("0"), Ok("0".to_owned()));
        assert_eq!(parse_cpu_list("0-3,8-11,16"), Ok("0-3,8-11,16".to_owned()));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "\n", "a", "0-", "3-1", "0,,1", "-1", "0-1 2"] {
            assert!(parse_cpu_list(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn reads_from_a_given_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("possible");
        std::fs::write(&path, "0-63\n").expect("write");
        assert_eq!(read_cpu_list(&path), Ok("0-63".to_owned()));
        assert!(matches!(
            read_cpu_list(&dir.path().join("missing")),
            Err(CpuListError::Read { .. })
        ));
    }
}
