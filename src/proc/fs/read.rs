//! The system calls under [`FsSource`](super::FsSource). Every file is opened
//! relative to one descriptor of the procfs root, with a short relative path
//! (`1234/stat`, `1234/task/1240/io`) built on the stack, and read into a
//! buffer the caller reuses: reading a file costs open, read, close and no
//! allocation once the buffer has grown to fit.

use rustix::fd::{AsFd, BorrowedFd};
use rustix::fs::{AtFlags, Dir, Mode, OFlags};
use rustix::io::Errno;

use super::parse::{parse_pid, parse_u64};

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
    /// `<pid>`.
    pub(super) fn pid(pid: i32) -> RelPath {
        let mut p = RelPath {
            buf: [0; REL_MAX],
            len: 0,
        };
        p.push_num(pid);
        p
    }

    /// `<pid>/task/<tid>`.
    pub(super) fn task(pid: i32, tid: i32) -> RelPath {
        let mut p = RelPath::pid(pid);
        p.push(b"/task/");
        p.push_num(tid);
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

/// Reads at most `limit` bytes of `root/rel` into `buf` (replacing its
/// content). procfs files report a size of 0, so the file is read until end
/// of file rather than sized first.
pub(super) fn read_file(
    root: BorrowedFd<'_>,
    rel: &RelPath,
    buf: &mut Vec<u8>,
    limit: usize,
) -> Result<(), Errno> {
    buf.clear();
    let fd = rustix::fs::openat(
        root,
        rel.as_bytes(),
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )?;
    loop {
        if buf.capacity() - buf.len() < 512 {
            buf.reserve(buf.capacity().max(4096));
        }
        match rustix::io::read(&fd, rustix::buffer::spare_capacity(buf)) {
            Ok(0) => break,
            Ok(_) => {}
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e),
        }
        if buf.len() >= limit {
            buf.truncate(limit);
            break;
        }
    }
    Ok(())
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
            RelPath::task(i32::MAX, 1).join("smaps_rollup").as_bytes(),
            b"2147483647/task/1/smaps_rollup"
        );
        assert_eq!(RelPath::pid(0).as_bytes(), b"0");
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
