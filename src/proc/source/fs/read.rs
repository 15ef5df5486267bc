//! The system calls under [`FsSource`](super::FsSource). Every file is opened
//! relative to a directory descriptor (the procfs root, or a process's own
//! directory kept open across cycles), with a short relative path (`stat`,
//! `task/1240/io`, `1234/status`) built on the stack, and read into a buffer
//! the caller reuses: reading a file costs open, read, close and no
//! allocation once the buffer has grown to fit.

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, Dir, Mode, OFlags};
use rustix::io::Errno;

use crate::proc::source::parse::{parse_pid, parse_u64};

/// The longest relative path built: `<pid>/task/<tid>/smaps_rollup` is 39
/// bytes; file names are compile-time constants.
const REL_MAX: usize = 64;

/// A path relative to the procfs root, built without allocating.
#[derive(Clone, Copy)]
pub(super) struct RelPath {
    buf: [u8; REL_MAX],
    len: usize,
}

impl RelPath {
    const EMPTY: RelPath = RelPath {
        buf: [0; REL_MAX],
        len: 0,
    };

    /// `<pid>`.
    pub(super) fn pid(pid: i32) -> RelPath {
        let mut p = RelPath::EMPTY;
        p.push_num(pid);
        p
    }

    /// `name`, a file of a process directory.
    pub(super) fn file(name: &str) -> RelPath {
        let mut p = RelPath::EMPTY;
        p.push(name.as_bytes());
        p
    }

    /// `task/<tid>`, a task directory inside a process directory.
    pub(super) fn in_task(tid: i32) -> RelPath {
        let mut p = RelPath::file("task/");
        p.push_num(tid);
        p
    }

    /// `<pid>/self`: `self`, relative to a process directory, made relative
    /// to the procfs root.
    pub(super) fn under_pid(pid: i32, rel: &RelPath) -> RelPath {
        let mut p = RelPath::pid(pid);
        p.push(b"/");
        p.push(rel.as_bytes());
        p
    }

    /// `self/name`.
    pub(super) fn join(&self, name: &str) -> RelPath {
        let mut p = *self;
        p.push(b"/");
        p.push(name.as_bytes());
        p
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn push(&mut self, b: &[u8]) {
        // Only constant names and numbers are pushed, which always fit; a
        // path that did not fit would merely fail to open.
        let end = (self.len + b.len()).min(REL_MAX);
        let n = end - self.len;
        self.buf[self.len..end].copy_from_slice(&b[..n]);
        self.len = end;
    }

    fn push_num(&mut self, n: i32) {
        let mut digits = [0u8; 10];
        let mut i = digits.len();
        let mut v = n.unsigned_abs();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 || i == 0 {
                break;
            }
        }
        if n < 0 {
            self.push(b"-");
        }
        self.push(&digits[i..]);
    }
}

impl std::fmt::Debug for RelPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// How a file ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// At a read that returns nothing (any file).
    Zero,
    /// At a read that returns less than asked. True of the procfs files
    /// read here, which the kernel writes whole on the first read (or,
    /// for `cmdline`, copies until the buffer is full); this saves the
    /// final empty read, a system call per file.
    Short,
}

/// Reads at most `limit` bytes of `dir/rel` into `buf` (replacing its
/// content). procfs files report a size of 0, so the file is read until its
/// end rather than sized first.
pub(super) fn read_file(
    dir: BorrowedFd<'_>,
    rel: &RelPath,
    buf: &mut Vec<u8>,
    limit: usize,
    end: End,
) -> Result<(), Errno> {
    buf.clear();
    let fd = open_file(dir, rel)?;
    fill(fd.as_fd(), buf, limit, end, false)
}

/// Opens `dir/rel` for reading.
pub(super) fn open_file(dir: BorrowedFd<'_>, rel: &RelPath) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        rel.as_bytes(),
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
}

/// Reads at most `limit` bytes of the open file `fd` from its start, with
/// `pread` (the file's own offset is left alone), into `buf` (replacing its
/// content). A procfs file read this way is generated afresh: the kernel
/// starts over when asked for offset 0.
pub(super) fn pread_file(
    fd: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    limit: usize,
    end: End,
) -> Result<(), Errno> {
    buf.clear();
    fill(fd, buf, limit, end, true)
}

/// Appends the content of `fd` to `buf` until its end (or `limit`), by
/// `read`, or by `pread` at the offsets that follow what `buf` holds.
fn fill(
    fd: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    limit: usize,
    end: End,
    positional: bool,
) -> Result<(), Errno> {
    loop {
        if buf.capacity() - buf.len() < 512 {
            buf.reserve(buf.capacity().max(4096));
        }
        let asked = buf.capacity() - buf.len();
        let offset = buf.len() as u64;
        let spare = rustix::buffer::spare_capacity(&mut *buf);
        let got = if positional {
            rustix::io::pread(fd, spare, offset)
        } else {
            rustix::io::read(fd, spare)
        };
        let n = match got {
            Ok(0) => break,
            Ok(n) => n,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e),
        };
        if buf.len() >= limit {
            buf.truncate(limit);
            break;
        }
        if end == End::Short && n < asked {
            break;
        }
    }
    Ok(())
}

/// Opens the directory `root/rel` as a path-only descriptor: it reads
/// nothing and holds no buffer, but lookups relative to it reach the same
/// directory even after another one takes its name. On procfs, a process
/// directory opened this way stays bound to that process: once the process
/// is gone, every lookup under it fails with ENOENT, even if its PID has
/// been reused.
pub(super) fn open_path_dir(root: BorrowedFd<'_>, rel: &RelPath) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        root,
        rel.as_bytes(),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// The soft limit on open descriptors (`u64::MAX` when unlimited).
pub(crate) fn open_files_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX)
}

/// Opens the directory `root/rel` for listing.
pub(super) fn open_dir(root: BorrowedFd<'_>, rel: &RelPath) -> Result<Dir, Errno> {
    let fd = rustix::fs::openat(
        root,
        rel.as_bytes(),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Dir::new(fd)
}

/// Calls `f` with every positive numeric entry of `dir` (PIDs, TIDs, fds),
/// in directory order.
pub(super) fn for_each_id(mut dir: Dir, mut f: impl FnMut(i32)) -> Result<(), Errno> {
    while let Some(entry) = dir.read() {
        if let Some(id) = parse_pid(entry?.file_name().to_bytes()) {
            f(id);
        }
    }
    Ok(())
}

/// Numeric entries of the directory `root/rel` (0 included): open
/// descriptors, when `rel` is an `fd` directory. Other names (such as a
/// placeholder in a fixture tree) are not descriptors and are not counted.
pub(super) fn count_fds(root: BorrowedFd<'_>, rel: &RelPath) -> Result<u64, Errno> {
    let mut dir = open_dir(root, rel)?;
    let mut n = 0u64;
    while let Some(entry) = dir.read() {
        if parse_u64(entry?.file_name().to_bytes()).is_some() {
            n += 1;
        }
    }
    Ok(n)
}

/// `st_size` of `root/rel` (on procfs since Linux 6.2, the number of open
/// descriptors of an `fd` directory).
pub(super) fn size_of(root: BorrowedFd<'_>, rel: &RelPath) -> Result<u64, Errno> {
    let st = rustix::fs::statat(root, rel.as_bytes(), AtFlags::empty())?;
    Ok(u64::try_from(st.st_size).unwrap_or(0))
}

/// Whether `root/rel` exists (any error but "no such file/process" counts
/// as existing: the question is only whether something vanished).
pub(super) fn exists(root: BorrowedFd<'_>, rel: &RelPath) -> bool {
    !matches!(
        rustix::fs::statat(root, rel.as_bytes(), AtFlags::empty()),
        Err(Errno::NOENT | Errno::SRCH)
    )
}

/// Whether the directory behind `fd` is a procfs mount.
pub(super) fn is_procfs(fd: impl AsFd) -> bool {
    rustix::fs::fstatfs(fd).is_ok_and(|s| s.f_type == rustix::fs::PROC_SUPER_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(RelPath::pid(14804).join("stat").as_bytes(), b"14804/stat");
        assert_eq!(
            RelPath::under_pid(i32::MAX, &RelPath::in_task(1).join("smaps_rollup")).as_bytes(),
            b"2147483647/task/1/smaps_rollup"
        );
        assert_eq!(RelPath::pid(0).as_bytes(), b"0");
        assert_eq!(RelPath::in_task(7).join("io").as_bytes(), b"task/7/io");
        assert_eq!(
            RelPath::under_pid(12, &RelPath::in_task(13).join("stat")).as_bytes(),
            b"12/task/13/stat"
        );
        assert_eq!(RelPath::file("stat").as_bytes(), b"stat");
    }

    #[test]
    fn short_reads_end_procfs_files() {
        let root =
            rustix::fs::open("/proc", OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        let rel = RelPath::file("self/status");
        let (mut whole, mut short) = (Vec::new(), Vec::new());
        read_file(root.as_fd(), &rel, &mut whole, 1 << 20, End::Zero).unwrap();
        read_file(root.as_fd(), &rel, &mut short, 1 << 20, End::Short).unwrap();
        // Same lines (values such as VmRSS may move in between).
        let keys = |b: &[u8]| -> Vec<Vec<u8>> {
            b.split(|&c| c == b'\n')
                .map(|l| l.split(|&c| c == b':').next().unwrap_or_default().to_vec())
                .collect()
        };
        assert_eq!(keys(&whole), keys(&short));
        assert!(short.ends_with(b"\n"));
    }

    #[test]
    fn procfs_is_recognised() {
        let open = |p: &str| {
            rustix::fs::open(p, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap()
        };
        assert!(is_procfs(open("/proc")));
        assert!(!is_procfs(open(env!("CARGO_MANIFEST_DIR"))));
    }
}
