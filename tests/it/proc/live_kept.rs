//! The files `FsSource` keeps open between cycles on the live `/proc`
//! (`FsSourceOptions::kept_files`): never more than the budget, each bound
//! to its process and closed when that process goes, and, with no budget
//! left, the same readings through files opened every cycle.
//!
//! What is kept is seen from outside, as the kernel shows it: the links in
//! `/proc/self/fd` that name a workload's `schedstat`, `stat`, `io`, a
//! task's `schedstat` (threads on), its `fd` (its descriptor directory,
//! kept path-only outside the budget of files) or, threads on, a task's
//! directory (`task/<tid>`, path-only). Tests run in parallel in this
//! process, so only the links to their own workloads' files are counted.

use procgroups::proc::{FsSource, FsSourceOptions, Metrics, Proc, ReadStats, Source};

use crate::support::procs::{spawn_workload, stop_workload as stop};

/// A live source keeping at most `kept_files` files, with no bound on
/// their kernel memory, so that what it keeps does not depend on how many
/// processes the host runs (the bound itself is checked on its own in the
/// source's unit tests).
fn source(kept_files: u64) -> FsSource {
    FsSource::new("/proc", unbounded(kept_files, false)).unwrap()
}

fn unbounded(kept_files: u64, threads: bool) -> FsSourceOptions {
    FsSourceOptions {
        kept_files,
        kept_kernel_bytes: u64::MAX,
        threads,
        ..FsSourceOptions::default()
    }
}

/// One cycle reading `pids` only (identity and metrics, in that order),
/// then giving the handles back; the metrics of those still present.
fn cycle(src: &mut FsSource, pids: &[i32]) -> Vec<(i32, Metrics)> {
    let mut procs = src.all_procs().unwrap();
    let mut read = Vec::new();
    for &pid in pids {
        if let Some(p) = procs.iter_mut().find(|p| p.pid() == pid)
            && p.id().is_ok()
            && let Ok(m) = p.metrics()
        {
            read.push((pid, m));
        }
    }
    src.recycle(procs);
    read
}

/// The files of process `pid` this test process has open (`schedstat`,
/// `stat`, `fd`: the names after `/proc/<pid>/`), sorted.
fn open_files_of(pid: i32) -> Vec<String> {
    let prefix = format!("/proc/{pid}/");
    let mut names: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| Some(l.to_str()?.strip_prefix(&prefix)?.to_string()))
        .collect();
    names.sort();
    names
}

/// The metrics that do not move while a process sleeps (memory sizes may
/// be reclaimed; the rest must agree between two readers).
fn steady(m: &Metrics) -> (u64, u64, u64, Option<u64>, u64) {
    (
        m.counts.ctx_switch_voluntary,
        m.counts.minor_page_faults,
        m.num_threads,
        m.filedesc.open,
        (m.counts.cpu_user_time + m.counts.cpu_system_time).to_bits(),
    )
}

#[test]
fn kept_files_stay_within_the_budget() {
    let (a, pa) = spawn_workload(&["--name", "pgkepta"]);
    let (b, pb) = spawn_workload(&["--name", "pgkeptb"]);
    let mut src = source(1);
    for _ in 0..3 {
        assert_eq!(cycle(&mut src, &[pa, pb]).len(), 2);
        let stats: ReadStats = src.read_stats();
        assert_eq!(stats.remembered, 2, "{stats:?}");
        assert_eq!(stats.kept_files, 1, "{stats:?}");
        // The one file goes to the first process read; the other is read
        // by opening its files each cycle. Both keep their `fd/`, which
        // holds no buffer.
        assert_eq!(open_files_of(pa), ["fd", "schedstat"]);
        assert_eq!(open_files_of(pb), ["fd"]);
    }
    // A budget that covers three files per listed process keeps `stat`
    // and `io` too.
    let mut roomy = source(100_000);
    cycle(&mut roomy, &[pa, pb]);
    cycle(&mut roomy, &[pa, pb]);
    assert_eq!(roomy.read_stats().kept_files, 6);
    assert_eq!(
        open_files_of(pa),
        ["fd", "fd", "io", "schedstat", "schedstat", "stat"]
    );
    assert_eq!(open_files_of(pb), ["fd", "fd", "io", "schedstat", "stat"]);
    drop((src, roomy));
    assert!(open_files_of(pa).is_empty());
    stop(a);
    stop(b);
}

#[test]
fn a_kept_file_is_closed_when_its_process_exits() {
    let (child, pid) = spawn_workload(&["--name", "pgkeptgone", "--threads", "1"]);
    let mut src = source(100_000);
    cycle(&mut src, &[pid]);
    cycle(&mut src, &[pid]);
    assert_eq!(open_files_of(pid), ["fd", "io", "schedstat", "stat"]);
    stop(child);
    assert!(cycle(&mut src, &[pid]).is_empty());
    assert!(open_files_of(pid).is_empty(), "{:?}", open_files_of(pid));
    assert_eq!(src.read_stats().remembered, 0);
}

#[test]
fn a_process_read_through_kept_files_reads_as_without_them() {
    let (child, pid) = spawn_workload(&["--name", "pgkeptsame", "--threads", "2"]);
    // Started: its threads have gone to sleep.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mut kept = source(100_000);
    let mut none = source(0);
    for n in 0..(FsSource::REFRESH_CYCLES + 2) {
        let with = cycle(&mut kept, &[pid]);
        let without = cycle(&mut none, &[pid]);
        let (with, without) = (&with[0].1, &without[0].1);
        assert_eq!(steady(with), steady(without), "cycle {n}");
        assert_eq!(with.wchan, without.wchan, "cycle {n}");
        assert_eq!(none.read_stats().kept_files, 0);
        assert_eq!(none.read_stats().remembered, 1);
        assert_eq!(kept.read_stats().kept_files, 3);
    }
    stop(child);
}

/// The TIDs of `pid`'s tasks other than its main thread, sorted.
fn other_tids(pid: i32) -> Vec<i32> {
    let mut tids: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&t| t != pid)
        .collect();
    tids.sort();
    tids
}

#[test]
fn with_threads_the_other_tasks_schedstat_is_kept_and_closed_with_them() {
    let (child, pid) = spawn_workload(&["--name", "pgkepttask", "--threads", "2"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let options = unbounded(u64::MAX, true);
    let mut src = FsSource::new("/proc", options).unwrap();
    let mut unchanged = 0;
    for _ in 0..4 {
        let mut procs = src.all_procs().unwrap();
        let p = procs.iter_mut().find(|p| p.pid() == pid).unwrap();
        p.id().unwrap();
        p.metrics().unwrap();
        unchanged += p
            .tasks()
            .unwrap()
            .iter()
            .filter(|t| matches!(t, procgroups::proc::TaskRead::Unchanged(_)))
            .count();
        src.recycle(procs);
    }
    // From the second cycle on (the first tells how many tasks there are),
    // each sleeping task's schedstat is read through a kept descriptor and
    // found unchanged. No task ran again: none has its directory kept.
    let mut want: Vec<String> = other_tids(pid)
        .iter()
        .map(|t| format!("task/{t}/schedstat"))
        .collect();
    want.sort();
    let kept: Vec<String> = open_files_of(pid)
        .into_iter()
        .filter(|f| f.starts_with("task/"))
        .collect();
    assert_eq!(kept, want);
    assert!(unchanged >= 6, "{unchanged} tasks unchanged in 4 cycles");
    stop(child);
    let procs = src.all_procs().unwrap();
    assert!(procs.iter().all(|p| p.pid() != pid));
    src.recycle(procs);
    assert!(open_files_of(pid).is_empty(), "{:?}", open_files_of(pid));
}

/// A Python process of three tasks: one wakes every 2 ms for ever, one
/// wakes every 2 ms until a line comes on stdin and then exits, and the
/// main thread, asleep in reading that line, waits for it, then for the
/// end of stdin, and exits (status 0).
const RUNNERS: &str = r#"
import os, sys, threading, time
go = threading.Event()
def wake():
    while True:
        time.sleep(0.002)
def leave():
    while not go.is_set():
        time.sleep(0.002)
threading.Thread(target=wake, daemon=True).start()
leaver = threading.Thread(target=leave)
leaver.start()
print("ready", os.getpid(), flush=True)
sys.stdin.readline()
go.set()
leaver.join()
sys.stdin.read()
os._exit(0)
"#;

/// The tasks read in one cycle of `src` over `pid` (after its identity and
/// metrics, as the tracker reads them).
fn tasks_of(src: &mut FsSource, pid: i32) -> Vec<procgroups::proc::TaskRead> {
    let mut procs = src.all_procs().unwrap();
    let p = procs.iter_mut().find(|p| p.pid() == pid).unwrap();
    p.id().unwrap();
    p.metrics().unwrap();
    let tasks = p.tasks().unwrap();
    src.recycle(procs);
    tasks
}

/// What a task read says that does not move while it sleeps.
fn read_task(t: &procgroups::proc::TaskRead) -> Option<(i32, String, u64, u64, u64)> {
    match t {
        procgroups::proc::TaskRead::Read(t) => Some((
            t.id.tid,
            t.name.clone(),
            t.id.start_time_ticks,
            t.counts.minor_page_faults,
            (t.counts.cpu_user_time + t.counts.cpu_system_time).to_bits(),
        )),
        procgroups::proc::TaskRead::Unchanged(_) => None,
    }
}

#[test]
fn with_threads_the_directory_of_each_task_that_runs_is_kept_and_closed_with_it() {
    let mut python = std::process::Command::new("python3");
    python.args(["-c", RUNNERS]);
    let (mut child, pid) = crate::support::procs::start_workload_command(python);
    std::thread::sleep(std::time::Duration::from_millis(300));
    // A budget that covers everything; and one that keeps nothing, read
    // by path.
    let mut kept = FsSource::new("/proc", unbounded(u64::MAX, true)).unwrap();
    let mut none = FsSource::new("/proc", unbounded(0, true)).unwrap();
    let dirs = |pid: i32| -> Vec<String> {
        open_files_of(pid)
            .into_iter()
            .filter(|f| f.starts_with("task/") && !f.ends_with("schedstat"))
            .collect()
    };
    // The first cycle reads every task by its path; the second finds the
    // two that woke run again and asks for their directories; the third
    // keeps them. The main thread, asleep, has none.
    for n in 0..3 {
        assert_eq!(dirs(pid), Vec::<String>::new(), "cycle {n}");
        tasks_of(&mut kept, pid);
        std::thread::sleep(std::time::Duration::from_millis(30));
    }
    let runners = other_tids(pid);
    assert_eq!(runners.len(), 2);
    let mut want: Vec<String> = runners.iter().map(|t| format!("task/{t}")).collect();
    want.sort();
    assert_eq!(dirs(pid), want);
    assert_eq!(kept.read_stats().task_dirs, 2);
    // Read through them, the tasks that ran read as by their paths (the
    // main thread, still, is not read).
    let names = |tasks: &[procgroups::proc::TaskRead]| {
        let mut r: Vec<_> = tasks
            .iter()
            .filter_map(read_task)
            .map(|(tid, name, start, _, _)| (tid, name, start))
            .collect();
        r.sort();
        r
    };
    let with = tasks_of(&mut kept, pid);
    let without = tasks_of(&mut none, pid);
    let (with, without) = (names(&with), names(&without));
    // This is `kept`'s fourth cycle: if it is the process's refresh cycle
    // (one in `FsSource::REFRESH_CYCLES`, where the cycle's number plus
    // the PID is a multiple of it), every task is read, the main thread
    // too.
    let refresh = (4 + u64::from(pid.unsigned_abs())) % FsSource::REFRESH_CYCLES == 0;
    assert_eq!(with.len(), if refresh { 3 } else { 2 }, "{with:?}");
    assert_eq!(without.len(), 3, "{without:?}");
    assert!(
        with.iter().all(|t| without.contains(t)),
        "{with:?} {without:?}"
    );
    assert_eq!(dirs(pid), want);

    // One task exits: its directory is closed with the next listing of
    // the tasks, the other's stays.
    {
        use std::io::Write;
        let stdin = child.stdin.as_mut().unwrap();
        stdin.write_all(b"go\n").unwrap();
        stdin.flush().unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while other_tids(pid).len() == runners.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "the thread never left"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let after = other_tids(pid);
    let leaver = *runners
        .iter()
        .find(|t| !after.contains(t))
        .expect("the thread that left");
    let tasks = tasks_of(&mut kept, pid);
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    want.retain(|t| *t != format!("task/{leaver}"));
    assert_eq!(dirs(pid), want);
    assert_eq!(kept.read_stats().task_dirs, 1);
    drop(none);
    stop(child);
    let procs = kept.all_procs().unwrap();
    kept.recycle(procs);
    assert!(open_files_of(pid).is_empty(), "{:?}", open_files_of(pid));
}
