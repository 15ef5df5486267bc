//! User names for `{{.Username}}`, read from the passwd file of the host
//! whose procfs is being read, and cached.
//!
//! In a container the agent's own `/etc/passwd` knows nothing of the host's
//! users, so the file is looked up next to the procfs mount:
//! `--procfs /host/proc` reads `/host/etc/passwd`, `--procfs /proc` reads
//! `/etc/passwd`. The OS user database (NSS, LDAP, SSSD) is not consulted:
//! it would describe the container, not the host. A uid with no entry is
//! shown as its decimal number, the same fallback process-exporter's static
//! builds give.
//!
//! The file is read on the first lookup. A later miss re-reads it only when
//! its modification time changed, so users created after the agent started
//! are found without re-reading the file for every unknown uid.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// A cache of uid → user name over one passwd file.
#[derive(Debug)]
pub struct UserNames {
    path: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    loaded: bool,
    mtime: Option<SystemTime>,
    names: HashMap<u32, String>,
}

impl UserNames {
    /// A cache over the passwd file of the host whose procfs is mounted at
    /// `procfs`: `<parent of procfs>/etc/passwd`.
    pub fn for_procfs(procfs: &Path) -> UserNames {
        let root = procfs.parent().unwrap_or_else(|| Path::new("/"));
        UserNames::new(root.join("etc/passwd"))
    }

    /// A cache over the passwd file at `path`. Nothing is read yet.
    pub fn new(path: PathBuf) -> UserNames {
        UserNames {
            path,
            state: Mutex::new(State::default()),
        }
    }

    /// The passwd file this cache reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The user name of `uid`, or `uid` in decimal when the file has no entry
    /// for it (or cannot be read).
    pub fn name(&self, uid: u32) -> String {
        // A poisoned lock only means another thread panicked mid-update; the
        // map is still a valid cache.
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !st.loaded {
            self.reload(&mut st);
        }
        if let Some(n) = st.names.get(&uid) {
            return n.clone();
        }
        let mtime = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        if mtime != st.mtime {
            self.reload(&mut st);
            if let Some(n) = st.names.get(&uid) {
                return n.clone();
            }
        }
        uid.to_string()
    }

    fn reload(&self, st: &mut State) {
        st.loaded = true;
        st.mtime = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        match std::fs::read_to_string(&self.path) {
            Ok(text) => st.names = parse_passwd(&text),
            Err(e) => {
                tracing::debug!(path = %self.path.display(), error = %e,
                    "passwd file unreadable; user names shown as numeric uids");
                st.names.clear();
            }
        }
    }
}

/// Parses passwd lines `name:password:uid:gid:gecos:home:shell`. Malformed
/// lines and comments are skipped; the first entry of a uid wins, as with
/// `getpwuid`.
fn parse_passwd(text: &str) -> HashMap<u32, String> {
    let mut names = HashMap::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut fields = line.split(':');
        let (Some(name), Some(_), Some(uid)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        if let Ok(uid) = uid.parse::<u32>() {
            names.entry(uid).or_insert_with(|| name.to_string());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_passwd_next_to_procfs() {
        let u = UserNames::for_procfs(Path::new("/host/proc"));
        assert_eq!(u.path(), Path::new("/host/etc/passwd"));
        let u = UserNames::for_procfs(Path::new("/proc"));
        assert_eq!(u.path(), Path::new("/etc/passwd"));
    }

    #[test]
    fn names_from_file_and_numeric_fallback() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::create_dir(dir.path().join("proc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "# comment\nroot:x:0:0:root:/root:/bin/sh\nbroken\npg:x:70:70::/var/lib/pg:/bin/sh\ndup:x:70:70::/:/bin/sh\n",
        )
        .unwrap();
        let u = UserNames::for_procfs(&dir.path().join("proc"));
        assert_eq!(u.name(0), "root");
        assert_eq!(u.name(70), "pg");
        assert_eq!(u.name(4242), "4242");
    }

    #[test]
    fn missing_file_gives_numbers() {
        let u = UserNames::new(PathBuf::from("/nonexistent/etc/passwd"));
        assert_eq!(u.name(0), "0");
    }

    #[test]
    fn a_user_added_later_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        std::fs::write(&path, "root:x:0:0::/:/bin/sh\n").unwrap();
        let u = UserNames::new(path.clone());
        assert_eq!(u.name(1000), "1000");
        std::fs::write(
            &path,
            "root:x:0:0::/:/bin/sh\nalice:x:1000:1000::/:/bin/sh\n",
        )
        .unwrap();
        // Make sure the modification time differs even on coarse clocks.
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_eq!(u.name(1000), "alice");
    }
}
