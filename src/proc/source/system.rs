//! System facts read rarely, from the procfs mount and the system: the boot
//! time, tick rate and page size that turn raw values into seconds, bytes
//! and wall-clock times; the node's CPU time totals; and the open-files
//! limit that bounds how many process directories the reader keeps open.
//!
//! Files read once or rarely and system-wide are parsed with procfs-core
//! where its parser is safe for them; the per-process files, read for every
//! process every cycle, keep their own parsers ([`super::parse`] says why).

use std::io::Read as _;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use procfs_core::{CpuTime, ExplicitSystemInfo, FromBufReadSI as _, KernelStats};

use super::fs::READ_LIMIT;
use crate::proc::SourceError;

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

impl SystemFacts {
    /// The boot time of the procfs at `root` with this system's tick rate and
    /// page size. The boot time comes from `root` and never from the host's
    /// own `/proc`: in a container the two are the same kernel, but a fixture
    /// tree has its own.
    pub fn read(root: impl AsRef<Path>) -> Result<SystemFacts, SourceError> {
        Ok(SystemFacts {
            boot_time_secs: SystemFacts::read_boot_time(root)?,
            ticks_per_second: rustix::param::clock_ticks_per_second(),
            page_size: u64::try_from(rustix::param::page_size()).unwrap_or(4096),
        })
    }

    /// `btime` of `<root>/stat`. A directory without a readable, parsable
    /// `stat` is not a procfs ([`SourceError::NotProcfs`]).
    ///
    /// Only the `btime` line is read: procfs-core's parser of the whole file
    /// reports a file without its `cpu` line as an internal bug of its own
    /// (a multi-line message asking to report it), which is no way to tell
    /// someone that a directory is not a procfs.
    pub fn read_boot_time(root: impl AsRef<Path>) -> Result<u64, SourceError> {
        use std::io::Read as _;
        let root = root.as_ref();
        let stat = root.join("stat");
        let not_procfs = |reason: String| SourceError::NotProcfs {
            path: root.to_path_buf(),
            reason,
        };
        let mut text = Vec::new();
        std::fs::File::open(&stat)
            .and_then(|f| f.take(READ_LIMIT as u64).read_to_end(&mut text))
            .map_err(|e| not_procfs(format!("cannot read {}: {e}", stat.display())))?;
        super::parse::parse_btime(&text).map_err(|e| {
            not_procfs(format!(
                "{} is not a kernel statistics file: {e}",
                stat.display()
            ))
        })
    }

    /// Clock ticks as seconds.
    pub(crate) fn seconds(&self, ticks: u64) -> f64 {
        ticks as f64 / self.ticks_per_second.max(1) as f64
    }

    /// Wall-clock time of `ticks` after boot, with sub-second precision;
    /// `None` when out of range (garbage in `stat`).
    pub(crate) fn after_boot(&self, ticks: u64) -> Option<SystemTime> {
        let tps = self.ticks_per_second.max(1);
        let nanos = u128::from(ticks % tps) * 1_000_000_000 / u128::from(tps);
        let since_boot = Duration::new(ticks / tps, u32::try_from(nanos).unwrap_or(0));
        UNIX_EPOCH
            .checked_add(Duration::from_secs(self.boot_time_secs))?
            .checked_add(since_boot)
    }
}

/// Reads `<root>/stat` whole (at most [`READ_LIMIT`] bytes); a directory
/// without it is not a procfs.
fn read_kernel_stat(root: &Path) -> Result<Vec<u8>, SourceError> {
    let stat = root.join("stat");
    let mut text = Vec::new();
    std::fs::File::open(&stat)
        .and_then(|f| f.take(READ_LIMIT as u64).read_to_end(&mut text))
        .map_err(|e| SourceError::NotProcfs {
            path: root.to_path_buf(),
            reason: format!("cannot read {}: {e}", stat.display()),
        })?;
    Ok(text)
}

/// The node's CPU time since boot, summed over every CPU: the `cpu` line of
/// `<root>/stat`, in clock ticks of `facts` (`user`, `nice`, `system`,
/// `idle`, and the fields later kernels added). The denominator for a
/// group's share of the node's CPU.
pub fn read_cpu_totals(
    root: impl AsRef<Path>,
    facts: &SystemFacts,
) -> Result<CpuTime, SourceError> {
    let root = root.as_ref();
    let text = read_kernel_stat(root)?;
    parse_cpu_totals(&text, facts).map_err(|reason| SourceError::NotProcfs {
        path: root.to_path_buf(),
        reason: format!("{}: {reason}", root.join("stat").display()),
    })
}

/// The `cpu` line of a kernel statistics file, parsed by procfs-core.
pub fn parse_cpu_totals(text: &[u8], facts: &SystemFacts) -> Result<CpuTime, String> {
    let info = ExplicitSystemInfo {
        boot_time_secs: facts.boot_time_secs,
        // procfs-core divides by the tick rate in its conversions.
        ticks_per_second: facts.ticks_per_second.max(1),
        page_size: facts.page_size,
        is_little_endian: cfg!(target_endian = "little"),
    };
    // Its parser calls a file without a `cpu` line an internal bug of its
    // own; say what is missing instead.
    if !text.split(|b| *b == b'\n').any(|l| l.starts_with(b"cpu ")) {
        return Err("no `cpu` line".to_owned());
    }
    KernelStats::from_buf_read(text, &info)
        .map(|stats| stats.total)
        .map_err(|e| e.to_string())
}

/// Raises the soft limit on open descriptors to the hard limit and returns
/// the new soft limit. An [`FsSource`](super::FsSource) on a real procfs keeps one
/// path-only descriptor per process it remembers, up to the soft limit less
/// a reserve; processes beyond that are read by path, which costs more CPU.
/// Meant to be called once at startup, before other threads start processes
/// (children inherit the limit).
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit)?;
    }
    Ok(super::fs::open_files_limit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_keeps_sub_second_ticks() {
        let facts = SystemFacts {
            boot_time_secs: 1508450329,
            ticks_per_second: 100,
            page_size: 4096,
        };
        assert_eq!(
            facts.after_boot(324219),
            Some(UNIX_EPOCH + Duration::new(1508453571, 190_000_000))
        );
        assert_eq!(facts.seconds(10), 0.1);
        // A tick rate of 0 (bad facts) must not divide by zero.
        let zero = SystemFacts {
            ticks_per_second: 0,
            ..facts
        };
        assert_eq!(zero.seconds(3), 3.0);
        assert!(zero.after_boot(u64::MAX).is_none());
    }

    const STAT: &[u8] = b"cpu  10132153 290696 3084719 46828483 16683 0 25195 0 175628 0
cpu0 1393280 32966 572056 13343292 6130 0 17875 0 23933 0
intr 1462898 0 0
ctxt 2000000
btime 1508450329
processes 26442
procs_running 2
procs_blocked 0
";

    #[test]
    fn cpu_totals_are_the_cpu_line_in_ticks() {
        let facts = SystemFacts {
            boot_time_secs: 1508450329,
            ticks_per_second: 100,
            page_size: 4096,
        };
        let t = parse_cpu_totals(STAT, &facts).unwrap();
        assert_eq!(
            (t.user, t.nice, t.system, t.idle),
            (10132153, 290696, 3084719, 46828483)
        );
        assert_eq!(t.iowait, Some(16683));
        assert_eq!(t.softirq, Some(25195));
        assert_eq!(t.guest, Some(175628));

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("stat"), STAT).unwrap();
        assert_eq!(read_cpu_totals(dir.path(), &facts).unwrap().user, 10132153);
    }

    #[test]
    fn a_stat_file_without_cpu_totals_is_a_clear_error() {
        let facts = SystemFacts {
            boot_time_secs: 0,
            ticks_per_second: 100,
            page_size: 4096,
        };
        assert_eq!(
            parse_cpu_totals(b"btime 1\n", &facts).unwrap_err(),
            "no `cpu` line"
        );
        let e = parse_cpu_totals(b"cpu  1 x 3 4\n", &facts).unwrap_err();
        assert!(!e.is_empty());
        let missing = tempfile::tempdir().unwrap();
        assert!(matches!(
            read_cpu_totals(missing.path(), &facts),
            Err(SourceError::NotProcfs { .. })
        ));
    }
}
