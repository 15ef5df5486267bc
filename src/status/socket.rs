//! [`StatusSocket`]: the Unix socket file the status service listens on.
//!
//! Only the owner may connect (mode 0600, set through the umask at bind time
//! so that the socket is never reachable by others, even for an instant).
//! One agent per socket: a lock file beside it (`<socket>.lock`, holding the
//! owner's PID) is locked with `flock` for the agent's lifetime, so a second
//! agent on the same path fails at once with [`SocketError::InUse`], while a
//! socket left behind by an agent that died is recognised as stale (nobody
//! holds the lock, nobody accepts on it) and replaced. The lock file itself
//! stays: removing it would let two agents lock two different files.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, Mode, flock};

/// Longest socket path the kernel accepts (`sun_path` is 108 bytes with the
/// terminating NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// Why the status socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// Another live agent serves on this path.
    #[error(
        "another procgroups agent{} is already serving the status socket {}; stop it, or give this agent another --status-socket",
        .pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
        .path.display()
    )]
    InUse {
        /// The socket path.
        path: PathBuf,
        /// The PID recorded in the lock file, when readable.
        pid: Option<i32>,
    },
    /// Something that is not a socket is in the way; it is not ours to delete.
    #[error("{} exists and is not a socket; refusing to replace it (choose another --status-socket)", .path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// The path does not fit in a socket address.
    #[error("status socket path {} is {len} bytes long; the limit is {MAX_SOCKET_PATH}", .path.display())]
    TooLong {
        /// The path.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
    },
    /// The private directory of the default socket is not private.
    #[error("status socket directory {} {reason}; refusing to use it", .dir.display())]
    UnsafeDir {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A system call failed.
    #[error("{action} {}: {source}", .path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl SocketError {
    /// True for errors that are the user's to fix by configuration (exit code
    /// 2), false for other failures (exit code 1).
    pub fn is_usage(&self) -> bool {
        !matches!(self, SocketError::Io { .. })
    }

    fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SocketError + 'a {
        move |source| SocketError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A bound, owner-only status socket, removed when dropped.
#[derive(Debug)]
pub struct StatusSocket {
    path: PathBuf,
    listener: UnixListener,
    /// (device, inode) of the socket file we created, so that drop removes
    /// only our own file.
    identity: (u64, u64),
    /// Held for the lifetime of the socket; closing it releases the lock.
    _lock: File,
}

/// Removes a socket left at `path` by an agent that is gone (nothing
/// answers on it), so that a crash does not keep the next agent from
/// starting. A socket that answers is another agent's; anything else at
/// the path is not ours to remove.
fn remove_stale(path: &Path) -> Result<(), SocketError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match UnixStream::connect(path) {
            Ok(_) => Err(SocketError::InUse {
                path: path.to_path_buf(),
                pid: None,
            }),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path)
                    .map_err(SocketError::io("removing stale socket", path))?;
                tracing::info!(path = %path.display(), "removed stale status socket");
                Ok(())
            }
            Err(e) => Err(SocketError::io("probing existing socket", path)(e)),
        },
        Ok(_) => Err(SocketError::NotASocket {
            path: path.to_path_buf(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SocketError::io("inspecting", path)(e)),
    }
}

impl StatusSocket {
    /// Binds `path`: creates its directory when missing (mode 0700), takes
    /// the lock, removes a stale socket, binds with mode 0600. The listener is
    /// non-blocking, ready for tokio.
    pub fn bind(path: &Path) -> Result<StatusSocket, SocketError> {
        let len = path.as_os_str().len();
        if len > MAX_SOCKET_PATH {
            return Err(SocketError::TooLong {
                path: path.to_path_buf(),
                len,
            });
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        prepare_dir(&dir, path == super::default_socket_path())?;

        let mut lock_name = path.as_os_str().to_owned();
        lock_name.push(".lock");
        let lock_path = PathBuf::from(lock_name);
        let lock = take_lock(&lock_path, path)?;

        remove_stale(path)?;

        // The umask is process-wide, but it only narrows permissions, and
        // for the few instructions it is set nothing else creates files.
        let old = rustix::process::umask(Mode::from_raw_mode(0o177));
        let bound = UnixListener::bind(path);
        rustix::process::umask(old);
        let listener = bound.map_err(SocketError::io("binding", path))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(SocketError::io("setting the mode of", path))?;
        listener
            .set_nonblocking(true)
            .map_err(SocketError::io("configuring", path))?;
        let meta = std::fs::symlink_metadata(path).map_err(SocketError::io("inspecting", path))?;
        Ok(StatusSocket {
            path: path.to_path_buf(),
            listener,
            identity: (meta.dev(), meta.ino()),
            _lock: lock,
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A handle on the listening socket (the same socket, another fd).
    pub fn listener(&self) -> io::Result<UnixListener> {
        self.listener.try_clone()
    }
}

impl Drop for StatusSocket {
    fn drop(&mut self) {
        if let Ok(meta) = std::fs::symlink_metadata(&self.path)
            && (meta.dev(), meta.ino()) == self.identity
            && let Err(e) = std::fs::remove_file(&self.path)
        {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove the status socket");
        }
    }
}

/// Creates `dir` (0700) when missing. The default socket's own directory
/// lives in a shared place (the temporary directory), so it must belong to
/// us and be writable by nobody else: otherwise another user could have
/// planted it to receive our clients' connections.
fn prepare_dir(dir: &Path, private: bool) -> Result<(), SocketError> {
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => {
            return Err(SocketError::UnsafeDir {
                dir: dir.to_path_buf(),
                reason: "is not a directory".to_string(),
            });
        }
        Ok(meta) => {
            if private {
                let euid = rustix::process::geteuid().as_raw();
                if meta.uid() != euid {
                    return Err(SocketError::UnsafeDir {
                        dir: dir.to_path_buf(),
                        reason: format!("belongs to uid {}, not to uid {euid}", meta.uid()),
                    });
                }
                if meta.mode() & 0o022 != 0 {
                    return Err(SocketError::UnsafeDir {
                        dir: dir.to_path_buf(),
                        reason: format!("is writable by others (mode {:o})", meta.mode() & 0o7777),
                    });
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(SocketError::io("creating directory", dir))?;
            // The mode given at creation passes through the umask, which is
            // process-wide: another thread binding a socket (see `bind`) may
            // have it narrowed at this very moment. A chmod does not.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(SocketError::io("setting the mode of", dir))?;
        }
        Err(e) => return Err(SocketError::io("inspecting", dir)(e)),
    }
    Ok(())
}

/// Opens and locks the lock file, and records our PID in it.
fn take_lock(lock_path: &Path, socket: &Path) -> Result<File, SocketError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(lock_path)
        .map_err(SocketError::io("opening lock file", lock_path))?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => {
            let mut text = String::new();
            let pid = file
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| text.trim().parse().ok());
            return Err(SocketError::InUse {
                path: socket.to_path_buf(),
                pid,
            });
        }
        Err(e) => return Err(SocketError::io("locking", lock_path)(e.into())),
    }
    let record = |f: &mut File| -> io::Result<()> {
        f.set_len(0)?;
        f.rewind()?;
        writeln!(f, "{}", std::process::id())
    };
    record(&mut file).map_err(SocketError::io("writing lock file", lock_path))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_owner_only_and_removes_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let sock = StatusSocket::bind(&path).unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.mode() & 0o777, 0o600);
        drop(sock);
        assert!(!path.exists(), "socket removed on drop");
    }

    #[test]
    fn second_bind_on_the_same_path_is_refused_with_the_holder_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let _first = StatusSocket::bind(&path).unwrap();
        let err = StatusSocket::bind(&path).unwrap_err();
        assert!(err.is_usage());
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("(pid {})", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains("already serving"), "{msg}");
    }

    #[test]
    fn a_stale_socket_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        // A socket nobody accepts on, as a crashed agent leaves it.
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let sock = StatusSocket::bind(&path).unwrap();
        UnixStream::connect(sock.path()).unwrap();
    }

    #[test]
    fn a_live_foreign_socket_is_not_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let _other = UnixListener::bind(&path).unwrap();
        let err = StatusSocket::bind(&path).unwrap_err();
        assert!(matches!(err, SocketError::InUse { pid: None, .. }), "{err}");
    }

    #[test]
    fn a_regular_file_is_not_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        std::fs::write(&path, "data").unwrap();
        let err = StatusSocket::bind(&path).unwrap_err();
        assert!(matches!(err, SocketError::NotASocket { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "data");
    }

    #[test]
    fn missing_directories_are_created_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/s.sock");
        let _s = StatusSocket::bind(&path).unwrap();
        let mode = std::fs::metadata(dir.path().join("a/b")).unwrap().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn an_overlong_path_is_a_usage_error() {
        let path = PathBuf::from(format!("/tmp/{}/s.sock", "x".repeat(120)));
        let err = StatusSocket::bind(&path).unwrap_err();
        assert!(matches!(err, SocketError::TooLong { .. }), "{err}");
        assert!(err.is_usage());
    }

    #[test]
    fn a_shared_private_dir_must_not_be_writable_by_others() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = prepare_dir(dir.path(), true).unwrap_err();
        assert!(err.to_string().contains("writable by others"), "{err}");
        prepare_dir(dir.path(), false).unwrap();
    }
}
