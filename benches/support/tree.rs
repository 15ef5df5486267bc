//! A synthetic procfs tree, written once into a temporary directory: N
//! processes with about 20 comms, on average three tasks each, a few open
//! descriptors, and every file the agent reads, in the kernel's format.
//! The content is static, so every cycle over it does the same work.

use std::fmt::Write as _;
use std::path::Path;

/// The comms used, cycled through.
pub const NAMES: [&str; 20] = [
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

/// Extra threads per process, cycled through: 2 on average, so 3 tasks.
pub const EXTRA_THREADS: [usize; 6] = [0, 0, 1, 2, 4, 5];

/// The PID of the i-th process; tasks take the following numbers.
pub fn pid_of(i: usize) -> i32 {
    1000 + 8 * i as i32
}

/// Writes a tree of `n` processes under `root` and returns the number of
/// tasks written.
pub fn write(root: &Path, n: usize) -> std::io::Result<usize> {
    std::fs::create_dir_all(root)?;
    std::fs::write(
        root.join("stat"),
        "cpu  1 0 1 100 0 0 0 0 0 0\nctxt 1000\nbtime 1700000000\nprocesses 5000\n",
    )?;
    let mut tasks = 0;
    for i in 0..n {
        let pid = pid_of(i);
        let name = NAMES[i % NAMES.len()];
        let extra = EXTRA_THREADS[i % EXTRA_THREADS.len()];
        let dir = root.join(pid.to_string());
        std::fs::create_dir_all(dir.join("fd"))?;
        let nthreads = extra + 1;
        let start = 1000 + i as u64;
        std::fs::write(dir.join("stat"), stat(pid, name, 1, nthreads, start, i))?;
        std::fs::write(dir.join("status"), status(pid, name, 1, nthreads, i))?;
        std::fs::write(dir.join("io"), io(i))?;
        std::fs::write(
            dir.join("cmdline"),
            format!("/usr/bin/{name}\0--config\0/etc/{name}/{i}.conf\0"),
        )?;
        std::fs::write(
            dir.join("cgroup"),
            format!("0::/system.slice/{name}.service\n"),
        )?;
        std::fs::write(dir.join("limits"), LIMITS)?;
        std::fs::write(dir.join("wchan"), "do_epoll_wait")?;
        for fd in 0..3 + i % 7 {
            std::os::unix::fs::symlink("/dev/null", dir.join("fd").join(fd.to_string()))?;
        }
        for t in 0..nthreads {
            let tid = pid + t as i32;
            let tname = if t == 0 { name } else { "worker" };
            let tdir = dir.join("task").join(tid.to_string());
            std::fs::create_dir_all(&tdir)?;
            std::fs::write(
                tdir.join("stat"),
                stat(tid, tname, 1, nthreads, start, i + t),
            )?;
            std::fs::write(
                tdir.join("status"),
                status(tid, tname, pid, nthreads, i + t),
            )?;
            std::fs::write(tdir.join("io"), io(i + t))?;
            std::fs::write(tdir.join("wchan"), "futex_wait_queue")?;
            std::fs::write(
                tdir.join("schedstat"),
                format!("{} {} {}\n", 1000 * (i + t), 10 * (i + t), i + t),
            )?;
            tasks += 1;
        }
    }
    Ok(tasks)
}

fn stat(pid: i32, comm: &str, ppid: i32, threads: usize, start: u64, seed: usize) -> String {
    format!(
        "{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 {minflt} 0 {majflt} 0 {utime} {stime} 0 0 20 0 {threads} 0 {start} {vsize} {rss} 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
        minflt = 1000 + seed,
        majflt = seed % 13,
        utime = 100 + seed,
        stime = 50 + seed,
        vsize = 100_000_000 + 4096 * seed,
        rss = 2000 + seed,
    )
}

fn status(pid: i32, name: &str, tgid: i32, threads: usize, seed: usize) -> String {
    let tgid = if tgid == 1 { pid } else { tgid };
    let mut s = String::with_capacity(1600);
    let _ = write!(
        s,
        "Name:\t{name}\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t{tgid}\nNgid:\t0\nPid:\t{pid}\nPPid:\t1\n\
TracerPid:\t0\nUid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nFDSize:\t64\nGroups:\t1000 \n\
NStgid:\t{tgid}\nNSpid:\t{pid}\nNSpgid:\t{tgid}\nNSsid:\t{tgid}\nKthread:\t0\nVmPeak:\t  102400 kB\n\
VmSize:\t  102400 kB\nVmLck:\t       0 kB\nVmPin:\t       0 kB\nVmHWM:\t   10240 kB\nVmRSS:\t   10240 kB\n\
RssAnon:\t    2048 kB\nRssFile:\t    8192 kB\nRssShmem:\t       0 kB\nVmData:\t    4096 kB\nVmStk:\t     132 kB\n\
VmExe:\t      20 kB\nVmLib:\t    1528 kB\nVmPTE:\t      44 kB\nVmSwap:\t    {swap} kB\nHugetlbPages:\t       0 kB\n\
CoreDumping:\t0\nTHP_enabled:\t1\nuntag_mask:\t0xffffffffffffffff\nThreads:\t{threads}\nSigQ:\t0/96364\n\
SigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000001000\n\
SigCgt:\t0000000000000440\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n\
CapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\nNoNewPrivs:\t0\nSeccomp:\t0\nSeccomp_filters:\t0\n\
Speculation_Store_Bypass:\tvulnerable\nSpeculationIndirectBranch:\talways enabled\nCpus_allowed:\t3\n\
Cpus_allowed_list:\t0-1\nMems_allowed:\t00000000,00000001\nMems_allowed_list:\t0\n\
voluntary_ctxt_switches:\t{vol}\nnonvoluntary_ctxt_switches:\t{nvol}\n",
        swap = seed % 5,
        vol = 10 + seed,
        nvol = seed % 7,
    );
    s
}

fn io(seed: usize) -> String {
    format!(
        "rchar: {}\nwchar: {}\nsyscr: {}\nsyscw: {}\nread_bytes: {}\nwrite_bytes: {}\ncancelled_write_bytes: 0\n",
        10_000 + seed,
        5_000 + seed,
        100 + seed,
        50 + seed,
        4096 * (seed % 11),
        4096 * (seed % 3)
    )
}

const LIMITS: &str = "Limit                     Soft Limit           Hard Limit           Units     \n\
Max cpu time              unlimited            unlimited            seconds   \n\
Max file size             unlimited            unlimited            bytes     \n\
Max data size             unlimited            unlimited            bytes     \n\
Max stack size            8388608              unlimited            bytes     \n\
Max core file size        0                    unlimited            bytes     \n\
Max resident set          unlimited            unlimited            bytes     \n\
Max processes             96364                96364                processes \n\
Max open files            1024                 524288               files     \n\
Max locked memory         8388608              8388608              bytes     \n\
Max address space         unlimited            unlimited            bytes     \n\
Max file locks            unlimited            unlimited            locks     \n\
Max pending signals       96364                96364                signals   \n\
Max msgqueue size         819200               819200               bytes     \n\
Max nice priority         0                    0                    \n\
Max realtime priority     0                    0                    \n\
Max realtime timeout      unlimited            unlimited            us        \n";
