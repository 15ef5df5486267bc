//! Fake procfs trees for tests and benchmarks: a process described by the
//! values its files carry ([`FakeProc`]), written into a directory in the
//! kernel's formats, so that `FsSource` can read it like `/proc`.
//!
//! It lives in the library, not in `tests/` or `benches/`, because both the
//! integration tests and the benchmarks need the same writer and cargo gives
//! those targets no other place to share code: a file included by each would
//! be compiled twice and kept in step by hand. It is small, has no
//! dependencies and is never called by the agent itself.
//!
//! Every writer returns the I/O error it met; the callers are tests, which
//! fail on it.

use std::io;
use std::path::{Path, PathBuf};

/// One file of a process directory that `FsSource` reads, of those that
/// tests may damage one at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcFile {
    /// `stat`: identity, state, counters.
    Stat,
    /// `status`: name, user, memory, context switches.
    Status,
    /// `io`: bytes read and written.
    Io,
    /// `cmdline`: the arguments, NUL-terminated.
    Cmdline,
    /// `limits`: the open-files limit.
    Limits,
    /// `cgroup`: the control group.
    Cgroup,
}

impl ProcFile {
    /// Every kind, in the order they are written.
    pub const ALL: [ProcFile; 6] = [
        ProcFile::Stat,
        ProcFile::Status,
        ProcFile::Io,
        ProcFile::Cmdline,
        ProcFile::Limits,
        ProcFile::Cgroup,
    ];

    /// The file's name in the process directory.
    pub fn name(self) -> &'static str {
        match self {
            ProcFile::Stat => "stat",
            ProcFile::Status => "status",
            ProcFile::Io => "io",
            ProcFile::Cmdline => "cmdline",
            ProcFile::Limits => "limits",
            ProcFile::Cgroup => "cgroup",
        }
    }
}

/// One fake process (or, inside [`FakeProc::tasks`], one of its threads):
/// every value its files carry. Fields are public so that a test sets what
/// it is about and leaves the rest to [`FakeProc::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeProc {
    /// PID (a thread's TID).
    pub pid: i32,
    /// Thread group: the PID of the process a thread belongs to; the PID
    /// itself for a process.
    pub tgid: i32,
    /// The comm, any bytes (the kernel allows `)`, newlines, non-UTF-8).
    pub comm: Vec<u8>,
    /// State letter (`S`, `R`, `Z`...).
    pub state: u8,
    /// Parent PID.
    pub ppid: i32,
    /// Minor faults.
    pub minflt: u64,
    /// Major faults.
    pub majflt: u64,
    /// User CPU, in ticks.
    pub utime: u64,
    /// System CPU, in ticks.
    pub stime: u64,
    /// Threads of the process.
    pub num_threads: u64,
    /// Start time, in ticks after boot.
    pub starttime: u64,
    /// Virtual memory, bytes.
    pub vsize: u64,
    /// Resident memory, pages.
    pub rss: u64,
    /// Real, effective, saved and file-system user (and group) id.
    pub uid: u32,
    /// Voluntary context switches.
    pub voluntary: u64,
    /// Involuntary context switches.
    pub nonvoluntary: u64,
    /// Swapped memory, KiB.
    pub swap_kb: u64,
    /// Bytes read from storage.
    pub read_bytes: u64,
    /// Bytes written to storage.
    pub write_bytes: u64,
    /// Open descriptors (entries of `fd/`, links to `/dev/null`).
    pub fds: u32,
    /// Soft limit of open files.
    pub max_open: u64,
    /// The `cmdline` file, as is.
    pub cmdline: Vec<u8>,
    /// The `cgroup` file, as is.
    pub cgroup: Vec<u8>,
    /// The `wchan` file, as is.
    pub wchan: Vec<u8>,
    /// The threads, written under `task/` (with the main thread first, as
    /// the kernel lists it); no `task/` directory when empty.
    pub tasks: Vec<FakeProc>,
}

impl FakeProc {
    /// A sleeping single-threaded process whose counters all derive from its
    /// PID, so that every process of a tree carries different values.
    pub fn new(pid: i32, comm: &str) -> FakeProc {
        let k = u64::from(pid.unsigned_abs());
        FakeProc {
            pid,
            tgid: pid,
            comm: comm.as_bytes().to_vec(),
            state: b'S',
            ppid: 1,
            minflt: 1000 + k,
            majflt: 10 + k,
            utime: 500 + k,
            stime: 200 + k,
            num_threads: 1,
            starttime: 1000 + k,
            vsize: 10_000_000 + k,
            rss: 2000 + k,
            uid: 1000,
            voluntary: 50 + k,
            nonvoluntary: 5 + k,
            swap_kb: 4,
            read_bytes: 1 << 20,
            write_bytes: 1 << 16,
            fds: 4,
            max_open: 1024,
            cmdline: format!("/usr/bin/{comm}\0--serve\0").into_bytes(),
            cgroup: b"0::/system.slice/app.service\n".to_vec(),
            wchan: b"0".to_vec(),
            tasks: Vec::new(),
        }
    }

    /// Thread `tid` named `comm` of this process, with the process's values
    /// (a test changes what it needs); add it to [`FakeProc::tasks`].
    pub fn thread(&self, tid: i32, comm: &str) -> FakeProc {
        FakeProc {
            pid: tid,
            tgid: self.pid,
            comm: comm.as_bytes().to_vec(),
            tasks: Vec::new(),
            ..self.clone()
        }
    }

    /// The same process one cycle later: every counter has grown (its
    /// threads' as well).
    pub fn later(&self) -> FakeProc {
        FakeProc {
            minflt: self.minflt + 7,
            majflt: self.majflt + 1,
            utime: self.utime + 150,
            stime: self.stime + 30,
            voluntary: self.voluntary + 9,
            nonvoluntary: self.nonvoluntary + 2,
            read_bytes: self.read_bytes + 4096,
            write_bytes: self.write_bytes + 512,
            tasks: self.tasks.iter().map(FakeProc::later).collect(),
            ..self.clone()
        }
    }

    /// The content of `file`, in the kernel's format.
    pub fn file(&self, file: ProcFile) -> Vec<u8> {
        match file {
            ProcFile::Stat => self.stat(),
            ProcFile::Status => self.status(),
            ProcFile::Io => self.io(),
            ProcFile::Cmdline => self.cmdline.clone(),
            ProcFile::Limits => self.limits(),
            ProcFile::Cgroup => self.cgroup.clone(),
        }
    }

    /// The process's directory under `root`.
    pub fn dir(&self, root: &Path) -> PathBuf {
        root.join(self.pid.to_string())
    }

    /// Writes the process's directory under `root`, replacing what was
    /// there.
    pub fn write(&self, root: &Path) -> io::Result<()> {
        let dir = self.dir(root);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(dir.join("fd"))?;
        for file in ProcFile::ALL {
            std::fs::write(dir.join(file.name()), self.file(file))?;
        }
        std::fs::write(dir.join("wchan"), &self.wchan)?;
        for fd in 0..self.fds {
            std::os::unix::fs::symlink("/dev/null", dir.join("fd").join(fd.to_string()))?;
        }
        for task in &self.tasks {
            let tdir = dir.join("task").join(task.pid.to_string());
            std::fs::create_dir_all(&tdir)?;
            std::fs::write(tdir.join("stat"), task.stat())?;
            std::fs::write(tdir.join("status"), task.status())?;
            std::fs::write(tdir.join("io"), task.io())?;
            std::fs::write(tdir.join("wchan"), &task.wchan)?;
            std::fs::write(
                tdir.join("schedstat"),
                format!(
                    "{} {} {}\n",
                    task.utime * 10_000_000,
                    task.voluntary * 1000,
                    task.voluntary
                ),
            )?;
        }
        Ok(())
    }

    fn stat(&self) -> Vec<u8> {
        let mut v = format!("{} (", self.pid).into_bytes();
        v.extend_from_slice(&self.comm);
        v.extend_from_slice(
            format!(
                ") {} {} {} {} 0 -1 4194560 {} 0 {} 0 {} {} 0 0 20 0 {} 0 {} {} {} \
                 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n",
                char::from(self.state),
                self.ppid,
                self.tgid,
                self.tgid,
                self.minflt,
                self.majflt,
                self.utime,
                self.stime,
                self.num_threads,
                self.starttime,
                self.vsize,
                self.rss,
            )
            .as_bytes(),
        );
        v
    }

    /// `status` with the lines a 6.x kernel writes, so that a reader parses
    /// as much as it would on a real machine; a zombie has no memory lines.
    fn status(&self) -> Vec<u8> {
        // The kernel escapes a newline of the comm in `status`.
        let mut v = b"Name:\t".to_vec();
        for &b in &self.comm {
            match b {
                b'\n' => v.extend_from_slice(b"\\n"),
                b'\\' => v.extend_from_slice(b"\\\\"),
                b => v.push(b),
            }
        }
        let vm = if self.state == b'Z' {
            String::new()
        } else {
            let size = self.vsize / 1024;
            let rss = self.rss * 4;
            format!(
                "VmPeak:\t{size} kB\nVmSize:\t{size} kB\nVmLck:\t       0 kB\nVmPin:\t       0 kB\n\
                 VmHWM:\t{rss} kB\nVmRSS:\t{rss} kB\nRssAnon:\t{anon} kB\nRssFile:\t{file} kB\n\
                 RssShmem:\t       0 kB\nVmData:\t    4096 kB\nVmStk:\t     132 kB\n\
                 VmExe:\t      20 kB\nVmLib:\t    1528 kB\nVmPTE:\t      44 kB\n\
                 VmSwap:\t{swap} kB\nHugetlbPages:\t       0 kB\nCoreDumping:\t0\nTHP_enabled:\t1\n\
                 untag_mask:\t0xffffffffffffffff\n",
                anon = rss / 4,
                file = rss - rss / 4,
                swap = self.swap_kb,
            )
        };
        v.extend_from_slice(
            format!(
                "\nUmask:\t0022\nState:\t{state} (x)\nTgid:\t{tgid}\nNgid:\t0\nPid:\t{pid}\n\
                 PPid:\t{ppid}\nTracerPid:\t0\n\
                 Uid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t{uid}\t{uid}\t{uid}\t{uid}\n\
                 FDSize:\t64\nGroups:\t\nNStgid:\t{tgid}\nNSpid:\t{pid}\nNSpgid:\t{tgid}\n\
                 NSsid:\t{tgid}\nKthread:\t0\n{vm}Threads:\t{threads}\nSigQ:\t0/96364\n\
                 SigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\n\
                 SigBlk:\t0000000000000000\nSigIgn:\t0000000000001000\n\
                 SigCgt:\t0000000000000440\nCapInh:\t0000000000000000\n\
                 CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n\
                 CapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\nNoNewPrivs:\t0\n\
                 Seccomp:\t0\nSeccomp_filters:\t0\nSpeculation_Store_Bypass:\tvulnerable\n\
                 SpeculationIndirectBranch:\talways enabled\nCpus_allowed:\t3\n\
                 Cpus_allowed_list:\t0-1\nMems_allowed:\t00000000,00000001\n\
                 Mems_allowed_list:\t0\n\
                 voluntary_ctxt_switches:\t{vol}\nnonvoluntary_ctxt_switches:\t{nvol}\n",
                state = char::from(self.state),
                tgid = self.tgid,
                pid = self.pid,
                ppid = self.ppid,
                uid = self.uid,
                threads = self.num_threads,
                vol = self.voluntary,
                nvol = self.nonvoluntary,
            )
            .as_bytes(),
        );
        v
    }

    fn io(&self) -> Vec<u8> {
        format!(
            "rchar: {}\nwchar: {}\nsyscr: 10\nsyscw: 5\nread_bytes: {}\nwrite_bytes: {}\n\
             cancelled_write_bytes: 0\n",
            self.read_bytes * 2,
            self.write_bytes * 2,
            self.read_bytes,
            self.write_bytes
        )
        .into_bytes()
    }

    fn limits(&self) -> Vec<u8> {
        format!(
            "Limit                     Soft Limit           Hard Limit           Units     \n\
             Max cpu time              unlimited            unlimited            seconds   \n\
             Max stack size            8388608              unlimited            bytes     \n\
             Max processes             96364                96364                processes \n\
             Max open files            {:<20} 524288               files     \n\
             Max locked memory         8388608              8388608              bytes     \n\
             Max pending signals       96364                96364                signals   \n",
            self.max_open
        )
        .into_bytes()
    }
}

/// Writes the system-wide `stat` of a tree, with boot time `btime` (Unix
/// seconds), which `FsSource` and `SystemFacts` read.
pub fn write_system_stat(root: &Path, btime: u64) -> io::Result<()> {
    std::fs::create_dir_all(root)?;
    std::fs::write(
        root.join("stat"),
        format!("cpu  1 2 3 4 5 6 7 0 0 0\nctxt 1000\nbtime {btime}\nprocesses 400\n"),
    )
}

/// Writes a whole tree: the system `stat` with boot time `btime`, and
/// `procs`.
pub fn write_tree(root: &Path, btime: u64, procs: &[FakeProc]) -> io::Result<()> {
    write_system_stat(root, btime)?;
    procs.iter().try_for_each(|p| p.write(root))
}

/// Boot time of [`synthetic_tree`].
pub const SYNTHETIC_BTIME: u64 = 1_700_000_000;

/// The comms of [`synthetic_tree`], cycled through.
const SYNTHETIC_NAMES: [&str; 20] = [
    "nginx",
    "postgres",
    "redis-server",
    "java",
    "python3",
    "node",
    "ruby",
    "php-fpm",
    "sshd",
    "cron",
    "rsyslogd",
    "containerd",
    "dockerd",
    "kubelet",
    "etcd",
    "haproxy",
    "memcached",
    "mysqld",
    "envoy",
    "grafana",
];

/// Extra threads per process of [`synthetic_tree`], cycled through: 2 on
/// average, so 3 tasks.
const SYNTHETIC_EXTRA_THREADS: [usize; 6] = [0, 0, 1, 2, 4, 5];

/// The processes of [`synthetic_tree`]: `n` of them with 20 comms, on
/// average three tasks each and 3 to 9 open descriptors. The content is
/// static, so every cycle over it does the same work.
pub fn synthetic_procs(n: usize) -> Vec<FakeProc> {
    (0..n)
        .map(|i| {
            // Room for the largest thread count between two PIDs.
            let pid = 1000 + 8 * i as i32;
            let name = SYNTHETIC_NAMES[i % SYNTHETIC_NAMES.len()];
            let extra = SYNTHETIC_EXTRA_THREADS[i % SYNTHETIC_EXTRA_THREADS.len()];
            let mut p = FakeProc::new(pid, name);
            p.num_threads = extra as u64 + 1;
            p.fds = 3 + (i % 7) as u32;
            p.cmdline = format!("/usr/bin/{name}\0--config\0/etc/{name}/{i}.conf\0").into_bytes();
            p.cgroup = format!("0::/system.slice/{name}.service\n").into_bytes();
            p.wchan = b"do_epoll_wait".to_vec();
            let mut main = p.thread(pid, name);
            main.wchan = b"futex_wait_queue".to_vec();
            p.tasks.push(main);
            for t in 1..=extra as i32 {
                let mut thread = p.thread(pid + t, "worker");
                thread.wchan = b"futex_wait_queue".to_vec();
                p.tasks.push(thread);
            }
            p
        })
        .collect()
}

/// Writes a synthetic tree of `n` processes (see [`synthetic_procs`]) under
/// `root`, for benchmarks, and returns the number of tasks written.
pub fn synthetic_tree(root: &Path, n: usize) -> io::Result<usize> {
    let procs = synthetic_procs(n);
    write_tree(root, SYNTHETIC_BTIME, &procs)?;
    Ok(procs.iter().map(|p| p.tasks.len()).sum())
}

/// One container as the kubelet lays out its logs under a log root: a
/// directory `pods/<namespace>_<pod>_<uid>/<container>/` holding `0.log`,
/// and a link `containers/<pod>_<namespace>_<container>-<id>.log` pointing
/// where the kubelet points it on the host (`/var/log/pods/...`), which the
/// container names are read from but never followed.
#[derive(Debug, Clone, Copy)]
pub struct KubeletLog<'a> {
    /// The pod's namespace.
    pub namespace: &'a str,
    /// The pod's name.
    pub pod: &'a str,
    /// The pod's UID, with dashes.
    pub uid: &'a str,
    /// The container's name.
    pub container: &'a str,
    /// The container's 64-hex-digit ID.
    pub id: &'a str,
}

impl KubeletLog<'_> {
    /// Writes the container's log directory and link under `root`.
    pub fn write(&self, root: &Path) -> io::Result<()> {
        let KubeletLog {
            namespace,
            pod,
            uid,
            container,
            id,
        } = *self;
        let pod_dir = format!("{namespace}_{pod}_{uid}");
        let dir = root.join("pods").join(&pod_dir).join(container);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("0.log"), "")?;
        std::fs::create_dir_all(root.join("containers"))?;
        std::os::unix::fs::symlink(
            format!("/var/log/pods/{pod_dir}/{container}/0.log"),
            root.join(format!("containers/{pod}_{namespace}_{container}-{id}.log")),
        )
    }

    /// Everything the container's names say of it, as resolved from its
    /// cgroup and this layout.
    pub fn info(&self) -> crate::containers::ContainerInfo {
        crate::containers::ContainerInfo {
            container_id: crate::containers::ContainerId::parse(self.id),
            pod_uid: crate::containers::PodUid::parse(self.uid),
            namespace: Some(self.namespace.into()),
            pod_name: Some(self.pod.into()),
            container_name: Some(self.container.into()),
        }
    }

    /// The container's cgroup under the systemd driver with containerd, in
    /// the pod slice of quality-of-service class `qos` (`burstable`,
    /// `besteffort`).
    pub fn systemd_cgroup(&self, qos: &str) -> String {
        format!(
            "/kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{}.slice/cri-containerd-{}.scope",
            self.uid.replace('-', "_"),
            self.id
        )
    }
}

/// The container the unit tests of container naming share:
/// `shop/cart-7d9f/api`.
pub const SHOP_CART_API: KubeletLog<'static> = KubeletLog {
    namespace: "shop",
    pod: "cart-7d9f",
    uid: "0b7e1c3a-5d2f-4e6a-9b8c-7d6e5f4a3b2c",
    container: "api",
    id: "4c1fd3e3b4a4e3a1b2f8a6e8d59a0c1f2e3d4c5b6a7980123456789abcdef012",
};
