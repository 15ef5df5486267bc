//! `FsSource` on the live `/proc` across cycles: a process whose tasks have
//! not run since their last reading is answered from that reading (and a
//! fresh `statm`), with its tasks reported unchanged by `Proc::tasks`, and
//! that answer must be what a full reading gives; a busy process is read
//! every cycle, one that wakes on a timer after each wake; changes made from outside show within
//! `FsSource::REFRESH_CYCLES`; a PID taken over by a new process is never
//! confused with the remembered one.
//!
//! The processes are `procgroups-workload` children of known shape. The
//! PID-reuse test needs root (it steers the next PID through
//! `/proc/sys/kernel/ns_last_pid`) and says "skipped" otherwise.

use std::collections::HashMap;
use std::process::Child;
use std::time::Duration;

use procgroups::proc::{
    FsSource, FsSourceOptions, Metrics, Proc, ReadStats, Source, TaskRead, Thread, ThreadID,
};

use crate::support::procs::{spawn_workload, start_workload_command, stop_workload as stop};

/// A live source built with thread detail, as the tracker builds it when
/// threads are on.
fn live_with_threads() -> FsSource {
    let options = FsSourceOptions {
        threads: true,
        ..FsSourceOptions::default()
    };
    FsSource::new("/proc", options).unwrap()
}

/// What one cycle read about one process.
#[derive(Debug, Clone, PartialEq)]
struct Reading {
    start_ticks: u64,
    metrics: Metrics,
    threads: Vec<Thread>,
}

/// A source read cycle after cycle the way the tracker reads it, keeping
/// the last reading of every task it was given, as the tracker does.
struct Follower {
    src: FsSource,
    tasks: HashMap<ThreadID, Thread>,
}

impl Follower {
    fn new() -> Self {
        Follower {
            src: live_with_threads(),
            tasks: HashMap::new(),
        }
    }

    /// One cycle reading `pid` only (id, metrics, tasks), then giving the
    /// handles back. A task reported unchanged must be one given before and
    /// stands for that reading. `None` when `pid` is not listed or has
    /// exited.
    fn cycle(&mut self, pid: i32) -> Option<Reading> {
        let mut procs = self.src.all_procs().unwrap();
        let reading = procs.iter_mut().find(|p| p.pid() == pid).and_then(|p| {
            let id = p.id().ok()?;
            let metrics = p.metrics().ok()?;
            let mut threads: Vec<Thread> = p
                .tasks()
                .ok()?
                .into_iter()
                .map(|t| match t {
                    TaskRead::Read(t) => t,
                    TaskRead::Unchanged(id) => self
                        .tasks
                        .get(&id)
                        .unwrap_or_else(|| panic!("unchanged task {id:?} was never given"))
                        .clone(),
                })
                .collect();
            threads.sort_by_key(|t| t.id.tid);
            self.tasks = threads.iter().map(|t| (t.id, t.clone())).collect();
            Some(Reading {
                start_ticks: id.start_time_ticks,
                metrics,
                threads,
            })
        });
        self.src.recycle(procs);
        reading
    }

    fn stats(&self) -> ReadStats {
        self.src.read_stats()
    }
}

/// A full reading by a source that remembers nothing, through
/// `Proc::threads`.
fn full_reading(pid: i32) -> Reading {
    let mut src = live_with_threads();
    let mut procs = src.all_procs().unwrap();
    let p = procs.iter_mut().find(|p| p.pid() == pid).unwrap();
    let id = p.id().unwrap();
    let metrics = p.metrics().unwrap();
    let mut threads = p.threads().unwrap();
    threads.sort_by_key(|t| t.id.tid);
    Reading {
        start_ticks: id.start_time_ticks,
        metrics,
        threads,
    }
}

/// Waits until `pid` has settled (two full readings 50 ms apart agree: its
/// threads have started and gone to sleep), for at most 5 s.
fn settle(pid: i32) {
    let mut last = full_reading(pid);
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(50));
        let now = full_reading(pid);
        if now == last {
            return;
        }
        last = now;
    }
    panic!("process {pid} never settled: {last:?}");
}

fn cpu(m: &Metrics) -> f64 {
    m.counts.cpu_user_time + m.counts.cpu_system_time
}

#[test]
fn an_idle_process_reads_the_same_from_memory_as_in_full() {
    let (child, pid) = spawn_workload(&["--name", "pgquiet", "--threads", "3", "--files", "2"]);
    settle(pid);
    let mut src = Follower::new();
    let mut totals = ReadStats::default();
    for n in 0..(2 * FsSource::REFRESH_CYCLES + 2) {
        let remembered = src.cycle(pid).unwrap();
        let stats = src.stats();
        totals.quiet += stats.quiet;
        totals.read += stats.read;
        totals.tasks_kept += stats.tasks_kept;
        totals.tasks_read += stats.tasks_read;
        assert_eq!(stats.remembered, 1, "cycle {n}");
        let full = full_reading(pid);
        assert_eq!(remembered, full, "cycle {n}: {stats:?}");
        assert_eq!(remembered.threads.len(), 4);
    }
    // Most cycles came from memory: the first reading and the refreshes
    // (one in REFRESH_CYCLES, plus what the process may have done).
    assert!(totals.quiet >= FsSource::REFRESH_CYCLES, "{totals:?}");
    assert!(totals.read >= 3, "{totals:?}");
    assert!(
        totals.tasks_kept >= 4 * FsSource::REFRESH_CYCLES,
        "{totals:?}"
    );
    stop(child);
}

#[test]
fn a_busy_process_is_read_every_cycle() {
    let _cpu = crate::support::cpu_heavy();
    let (child, pid) = spawn_workload(&["--name", "pgbusy", "--threads", "2", "--spin"]);
    let mut src = Follower::new();
    let mut last = src.cycle(pid).unwrap();
    for n in 0..6 {
        std::thread::sleep(Duration::from_millis(120));
        let now = src.cycle(pid).unwrap();
        let stats = src.stats();
        assert_eq!((stats.quiet, stats.read), (0, 1), "cycle {n}");
        assert!(cpu(&now.metrics) > cpu(&last.metrics), "cycle {n}");
        // The two spinning threads are read again and have used more CPU.
        let busier = now
            .threads
            .iter()
            .filter(|t| t.name == "worker")
            .filter(|t| {
                let before = last.threads.iter().find(|b| b.id == t.id).unwrap();
                t.counts.cpu_user_time + t.counts.cpu_system_time
                    > before.counts.cpu_user_time + before.counts.cpu_system_time
            })
            .count();
        assert_eq!(busier, 2, "cycle {n}: {:?}", now.threads);
        last = now;
    }
    stop(child);
}

/// `size` and `resident` of `/proc/<pid>/statm`, in bytes.
fn statm_bytes(pid: i32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap();
    let page = rustix::param::page_size() as u64;
    let mut pages = text.split_whitespace().map(|v| v.parse::<u64>().unwrap());
    (pages.next().unwrap() * page, pages.next().unwrap() * page)
}

#[test]
fn a_process_that_wakes_is_read_after_its_wakes_and_quiet_in_between() {
    let (child, pid) = spawn_workload(&[
        "--name",
        "pgwake",
        "--threads",
        "2",
        "--touch-kib",
        "2048",
        "--wake-every-ms",
        "300",
    ]);
    let mut src = Follower::new();
    let first = src.cycle(pid).unwrap();
    let (mut quiet, mut read, mut checked) = (0, 0, 0);
    let mut last = first.clone();
    // 40 cycles 50 ms apart: about 7 wakes of the main thread.
    for n in 0..40 {
        std::thread::sleep(Duration::from_millis(50));
        let before = statm_bytes(pid);
        let now = src.cycle(pid).unwrap();
        let stats = src.stats();
        quiet += stats.quiet;
        read += stats.read;
        // Whichever file they came from (status when the process was read
        // in full, statm when it was quiet), the sizes are statm's counts.
        if statm_bytes(pid) == before {
            checked += 1;
            let m = &now.metrics.memory;
            assert_eq!((m.virtual_bytes, m.resident_bytes), before, "cycle {n}");
        }
        assert!(
            now.metrics.counts.ctx_switch_voluntary >= last.metrics.counts.ctx_switch_voluntary,
            "cycle {n}"
        );
        last = now;
    }
    assert!(
        checked >= 30,
        "memory moved in {} cycles of 40",
        40 - checked
    );
    assert!(read >= 5, "read in full {read} times in 40 cycles");
    assert!(quiet >= 10, "quiet {quiet} times in 40 cycles");
    // Each wake is a sleep ended: the main thread's voluntary switches.
    assert!(
        last.metrics.counts.ctx_switch_voluntary >= first.metrics.counts.ctx_switch_voluntary + 5,
        "{:?} then {:?}",
        first.metrics.counts,
        last.metrics.counts
    );
    stop(child);
}

#[test]
fn a_limit_changed_from_outside_shows_within_the_refresh_period() {
    use rustix::process::{Pid, Resource, Rlimit, getrlimit, prlimit};
    let (child, pid) = spawn_workload(&["--name", "pglimit", "--threads", "1"]);
    let mut src = Follower::new();
    let before = src.cycle(pid).unwrap().metrics.filedesc.limit;
    let current = getrlimit(Resource::Nofile);
    let lower = current.current.unwrap_or(4096).min(4096) - 7;
    prlimit(
        Pid::from_raw(pid),
        Resource::Nofile,
        Rlimit {
            current: Some(lower),
            maximum: current.maximum,
        },
    )
    .unwrap();
    assert_ne!(before, Some(lower));
    let seen = (0..FsSource::REFRESH_CYCLES)
        .position(|_| src.cycle(pid).unwrap().metrics.filedesc.limit == Some(lower));
    assert!(seen.is_some(), "limit not seen within the refresh period");
    stop(child);
}

#[test]
fn a_process_that_exits_is_forgotten() {
    let (child, pid) = spawn_workload(&["--name", "pggone", "--threads", "2"]);
    let mut src = Follower::new();
    src.cycle(pid).unwrap();
    src.cycle(pid).unwrap();
    assert_eq!(src.stats().remembered, 1);
    stop(child);
    assert!(src.cycle(pid).is_none());
    assert_eq!(src.stats().remembered, 0);
}

/// Spawns the workload as `name` with the PID `want`, by setting the last
/// PID handed out; `None` when another process took it first.
fn spawn_with_pid(want: i32, name: &str) -> Option<(Child, i32)> {
    for _ in 0..20 {
        if std::fs::write("/proc/sys/kernel/ns_last_pid", (want - 1).to_string()).is_err() {
            return None;
        }
        let (child, pid) = spawn_workload(&["--name", name]);
        if pid == want {
            return Some((child, pid));
        }
        stop(child);
    }
    None
}

#[test]
fn a_reused_pid_is_a_new_process() {
    if !rustix::process::geteuid().is_root() {
        crate::support::tools::skip("steering PIDs through ns_last_pid needs root");
        return;
    }
    let (first, pid) = spawn_workload(&["--name", "pgfirst", "--threads", "1"]);
    let mut src = Follower::new();
    let old = src.cycle(pid).unwrap();
    src.cycle(pid).unwrap();
    stop(first);
    let Some((second, same)) = spawn_with_pid(pid, "pgsecond") else {
        crate::support::tools::skip(&format!("PID {pid} could not be taken again"));
        return;
    };
    assert_eq!(same, pid);
    settle(pid);
    let new = src.cycle(pid).unwrap();
    // Not the remembered process: the new one's own threads and values
    // (the two may have started in the same clock tick, so the start time
    // alone does not tell them apart).
    assert_eq!(old.threads.len(), 2);
    assert_eq!(new.threads.len(), 1);
    assert_eq!(new.threads[0].name, "pgsecond");
    assert_eq!(new, full_reading(pid));
    stop(second);
}

/// A Python process whose main thread waits on stdin while one thread
/// appends 64 KiB to a file on disk every 150 ms and another wakes every
/// 40 ms without doing I/O; `ready <pid>` once both run, and exits when
/// its stdin closes.
const WRITER: &str = r#"
import os, sys, threading, time
def write():
    with open(sys.argv[1], "ab") as f:
        while True:
            time.sleep(0.15)
            f.write(b"x" * 65536)
            f.flush()
def tick():
    while True:
        time.sleep(0.04)
threading.Thread(target=write, daemon=True).start()
threading.Thread(target=tick, daemon=True).start()
print("ready", os.getpid(), flush=True)
sys.stdin.read()
"#;

/// `write_bytes` of every task of `pid`, read directly.
fn task_writes(pid: u32) -> HashMap<i32, u64> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|e| {
            let tid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let io = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/io")).ok()?;
            let line = io.lines().find(|l| l.starts_with("write_bytes:"))?;
            Some((tid, line.split_whitespace().nth(1)?.parse().ok()?))
        })
        .collect()
}

#[test]
fn a_task_s_io_is_read_again_when_the_process_s_moved_and_only_then() {
    // On disk: the page cache accounts dirtied pages to `write_bytes`
    // there, where a tmpfs does not.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut python = std::process::Command::new("python3");
    python.args(["-c", WRITER]).arg(dir.path().join("out"));
    let (child, pid) = start_workload_command(python);
    let pid = pid as u32;
    let start: u64 = task_writes(pid).values().sum();
    let mut src = Follower::new();
    let mut kept = 0;
    for n in 0..60 {
        std::thread::sleep(Duration::from_millis(50));
        let before = task_writes(pid);
        let now = src.cycle(pid as i32).unwrap();
        kept += src.stats().task_io_kept;
        let after = task_writes(pid);
        // Whether read or taken from memory, each task's bytes are those
        // of this moment: no fewer than just before the cycle.
        for t in &now.threads {
            let tid = t.id.tid;
            let (Some(&lo), Some(&hi)) = (before.get(&tid), after.get(&tid)) else {
                panic!("cycle {n}: task {tid} not in {before:?} and {after:?}");
            };
            assert!(
                (lo..=hi).contains(&t.counts.write_bytes),
                "cycle {n}, task {tid}: {} not within {lo}..={hi}",
                t.counts.write_bytes
            );
        }
        assert_eq!(now.threads.len(), 3, "cycle {n}");
    }
    let end: u64 = task_writes(pid).values().sum();
    assert!(
        end >= start + 10 * 65536,
        "the writer wrote {} bytes: does this file system account writes?",
        end - start
    );
    // The ticking thread ran between most cycles, and in many of them the
    // writer had not written: its io (and the main thread's) stood.
    assert!(kept >= 10, "task io kept {kept} times in 60 cycles");
    stop(child);
}
