//! `FsSource` with the taskstats group probe on the live `/proc`: a
//! process of several threads none of which has run is answered from
//! memory, and that answer is what a full reading gives; when a thread
//! other than the main one runs, the process is read again and its CPU
//! shows; a main thread that ran is read with the probe's counters, the
//! same as its files'; threads on, the tasks are asked too, and no task
//! file is kept. Needs what the probe needs (`CAP_NET_ADMIN`):
//! says "skipped" without it, except under `CI`, where it fails.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use procgroups::exits::GroupQuery;
use procgroups::proc::{
    FsSource, FsSourceOptions, GroupActivity, GroupProbe, Metrics, Proc, ReadStats, Source,
    TaskActivity, TaskRead,
};

use crate::support::procs::{spawn_worker, stop_workload, task_run_ns, wake_worker};
use crate::support::tools::skip;

/// The probe, or `None` (skipped) where this process may not ask.
pub(crate) fn group_query() -> Option<GroupQuery> {
    match GroupQuery::open() {
        Ok(q) => Some(q),
        Err(e) if e.is_not_permitted() && std::env::var_os("CI").is_none() => {
            skip(&format!("thread-group queries not permitted here: {e}"));
            None
        }
        Err(e) => panic!("opening the thread-group query: {e}"),
    }
}

/// A live source; with `kept_files` 0, as on a host too large for the
/// kept-file budget, where the probe is asked.
fn source(threads: bool, kept_files: u64) -> FsSource {
    let options = FsSourceOptions {
        threads,
        kept_files,
        ..FsSourceOptions::default()
    };
    FsSource::new("/proc", options).unwrap()
}

/// One cycle reading `pid` only (id, metrics and, with threads, tasks), as
/// the tracker does; the cycle's read statistics.
fn cycle(src: &mut FsSource, pid: i32) -> (Metrics, Vec<TaskRead>, ReadStats) {
    let mut procs = src.all_procs().unwrap();
    let p = procs.iter_mut().find(|p| p.pid() == pid).unwrap();
    p.id().unwrap();
    let m = p.metrics().unwrap();
    let tasks = if src.options().threads {
        p.tasks().unwrap()
    } else {
        Vec::new()
    };
    src.recycle(procs);
    (m, tasks, src.read_stats())
}

/// A full reading by a source that remembers nothing.
fn full(pid: i32) -> Metrics {
    cycle(&mut source(false, 0), pid).0
}

fn unchanged(tasks: &[TaskRead]) -> usize {
    tasks
        .iter()
        .filter(|t| matches!(t, TaskRead::Unchanged(_)))
        .count()
}

fn cpu(m: &Metrics) -> f64 {
    m.counts.cpu_user_time + m.counts.cpu_system_time
}

#[test]
fn a_still_thread_group_is_answered_from_memory_and_a_worker_s_run_is_read() {
    still_group_then_worker(false);
}

#[test]
fn with_threads_a_still_group_s_tasks_are_unchanged_and_the_worker_is_read() {
    still_group_then_worker(true);
}

fn still_group_then_worker(threads: bool) {
    let Some(q) = group_query() else {
        return;
    };
    let (mut child, pid) = spawn_worker();
    let mut src = source(threads, 0);
    src.set_group_probe(Box::new(q));

    // Python's start settles within a few cycles; from then on the group
    // is still, and its answer from memory is a full reading's.
    let mut still = 0;
    let mut last = None;
    for _ in 0..60 {
        std::thread::sleep(Duration::from_millis(50));
        let (m, tasks, stats) = cycle(&mut src, pid);
        if stats.groups_still == 1 {
            assert_eq!(stats.quiet, 1, "{stats:?}");
            assert_eq!(m, full(pid), "answered from memory");
            // No task file is read: every task stands as last read.
            assert_eq!(unchanged(&tasks), tasks.len(), "{tasks:?}");
            assert_eq!(tasks.len(), if threads { 3 } else { 0 });
            still += 1;
            if still == 3 {
                last = Some(m);
                break;
            }
        }
    }
    let before = last.unwrap_or_else(|| panic!("the group was never found still ({still})"));

    // The worker runs, the main thread does not: the main thread's
    // `schedstat` alone would not tell.
    let leader = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap();
    let ran_before = task_run_ns(pid);
    wake_worker(&mut child, pid);
    // The task that ran: the worker.
    let worker_tid = task_run_ns(pid)
        .into_iter()
        .max_by_key(|(tid, ns)| ns - ran_before.get(tid).copied().unwrap_or(0))
        .map(|(tid, _)| tid)
        .unwrap();
    assert_ne!(worker_tid, pid);
    let (m, tasks, stats) = cycle(&mut src, pid);
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap(),
        leader,
        "the main thread ran"
    );
    assert_eq!((stats.groups_still, stats.read), (0, 1), "{stats:?}");
    assert!(
        cpu(&m) >= cpu(&before) + 0.03,
        "60 ms of the worker's CPU not seen: {} then {}",
        cpu(&before),
        cpu(&m)
    );
    if threads {
        // The worker alone is read again, the two others stand; except on
        // the process's refresh cycle (one in `FsSource::REFRESH_CYCLES`),
        // where all are read.
        assert_eq!(tasks.len(), 3, "{tasks:?}");
        assert!(matches!(unchanged(&tasks), 0 | 2), "{tasks:?}");
        let worker = tasks.iter().find_map(|t| match t {
            TaskRead::Read(t) if t.id.tid == worker_tid => Some(t),
            _ => None,
        });
        let worker = worker.unwrap_or_else(|| panic!("the worker was not read: {tasks:?}"));
        assert!(
            worker.counts.cpu_user_time + worker.counts.cpu_system_time >= 0.03,
            "{worker:?}"
        );
        // The tasks read other than the main thread had their context
        // switches from the probe's answers at the start of the cycle, in
        // place of their `status`: at most what it says after.
        let probed = if unchanged(&tasks) == 2 { 1 } else { 2 };
        assert_eq!(stats.tasks_probed, probed, "{stats:?}");
        let after = status_ctx(&format!("/proc/{pid}/task/{worker_tid}/status"));
        let read = (
            worker.counts.ctx_switch_voluntary,
            worker.counts.ctx_switch_nonvoluntary,
        );
        assert!(
            read.0 > 0 && read.0 <= after.0 && read.1 <= after.1,
            "{read:?} then {after:?}"
        );
    }
    // Still again once the worker has blocked on its input again (it may
    // have had its last milliseconds to burn at that reading).
    let again = (0..10).find(|_| {
        std::thread::sleep(Duration::from_millis(50));
        cycle(&mut src, pid).2.groups_still == 1
    });
    assert!(again.is_some(), "never still again");
    stop_workload(child);
}

#[test]
fn with_the_probe_no_task_file_is_kept_and_the_group_is_asked_with_threads_too() {
    if group_query().is_none() {
        return;
    }
    let (child, pid) = spawn_worker();
    for threads in [false, true] {
        // A budget that covers every tier whatever the host's size (only
        // the one process read keeps files).
        let options = FsSourceOptions {
            threads,
            kept_files: u64::MAX,
            kept_kernel_bytes: u64::MAX,
            ..FsSourceOptions::default()
        };
        let mut src = FsSource::new("/proc", options).unwrap();
        src.set_group_probe(Box::new(GroupQuery::open().unwrap()));
        let (mut quiet, mut groups_still, mut kept) = (0, 0, 0);
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(50));
            let (_, _, stats) = cycle(&mut src, pid);
            quiet += stats.quiet;
            groups_still += stats.groups_still;
            kept = kept.max(stats.kept_files);
        }
        assert!(quiet > 0, "threads {threads}: never quiet");
        // The group's answer tells, threads or not: no task's `schedstat`
        // is read, or kept (the process's `statm`, `stat` and `io` are).
        // With threads, the first time the group is asked (nothing to
        // compare with yet) the tasks' answers tell, and the group's is
        // recorded.
        assert!(
            groups_still <= quiet && quiet - groups_still <= u64::from(threads),
            "threads {threads}: {quiet} quiet, {groups_still} by the group"
        );
        assert!(kept <= 3, "threads {threads}: {kept} files kept");
    }
    stop_workload(child);
}

/// Without the probe, with threads, the kept `schedstat` of each task
/// tells whether the process ran.
#[test]
fn without_the_probe_the_tasks_kept_schedstat_tell() {
    let (child, pid) = spawn_worker();
    let options = FsSourceOptions {
        threads: true,
        kept_files: u64::MAX,
        kept_kernel_bytes: u64::MAX,
        ..FsSourceOptions::default()
    };
    let mut src = FsSource::new("/proc", options).unwrap();
    let (mut quiet, mut kept) = (0, 0);
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(50));
        let (_, _, stats) = cycle(&mut src, pid);
        assert_eq!(stats.groups_still, 0, "{stats:?}");
        quiet += stats.quiet;
        kept = kept.max(stats.kept_files);
    }
    assert!(quiet > 0, "never quiet");
    // The process's `schedstat`, `stat` and `io`, and the two other tasks'
    // `schedstat`.
    assert_eq!(kept, 5);
    stop_workload(child);
}

/// A process whose main thread ran is read with the probe's context
/// switches and `schedstat` in place of its files': the same values.
#[test]
fn a_main_thread_that_ran_is_read_with_the_probe_s_counters() {
    let Some(q) = group_query() else {
        return;
    };
    let (child, pid) = spawn_worker();
    for threads in [false, true] {
        let mut src = source(threads, FsSourceOptions::DEFAULT_KEPT_FILES);
        src.set_group_probe(Box::new(GroupQuery::open().unwrap()));
        // Remembered, then stopped: stopping runs every thread (each takes
        // the stop), and a stopped process stays as it is while read.
        cycle(&mut src, pid);
        cycle(&mut src, pid);
        let leader = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap();
        stop(pid);
        assert_ne!(
            std::fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap(),
            leader,
            "stopping did not run the main thread"
        );
        let (m, tasks, stats) = cycle(&mut src, pid);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        // Every thread ran (each took the stop) and was read, with the
        // probe's context switches for the two that are not the main one.
        let task_ctx: Vec<_> = tasks
            .iter()
            .map(|t| match t {
                TaskRead::Read(t) => (
                    (
                        t.counts.ctx_switch_voluntary,
                        t.counts.ctx_switch_nonvoluntary,
                    ),
                    status_ctx(&format!("/proc/{pid}/task/{}/status", t.id.tid)),
                ),
                TaskRead::Unchanged(id) => panic!("task {} not read", id.tid),
            })
            .collect();
        signal(pid, "CONT");
        assert_eq!(task_ctx.len(), if threads { 3 } else { 0 });
        assert_eq!(stats.tasks_probed, if threads { 2 } else { 0 }, "{stats:?}");
        for (read, file) in task_ctx {
            assert_eq!(read, file, "a task's context switches");
        }
        assert_eq!((stats.probed, stats.read), (1, 1), "{stats:?}");
        let ctx = |key: &str| -> u64 {
            let line = status.lines().find(|l| l.starts_with(key)).unwrap();
            line.split_whitespace().nth(1).unwrap().parse().unwrap()
        };
        assert!(m.counts.ctx_switch_voluntary > 0);
        assert_eq!(
            (
                m.counts.ctx_switch_voluntary,
                m.counts.ctx_switch_nonvoluntary
            ),
            (
                ctx("voluntary_ctxt_switches"),
                ctx("nonvoluntary_ctxt_switches")
            ),
            "threads {threads}"
        );
        wait_for(|| state(pid) != 'T');
    }
    // The same as a source without the probe reads, once still again.
    let mut src = source(false, FsSourceOptions::DEFAULT_KEPT_FILES);
    src.set_group_probe(Box::new(q));
    stop(pid);
    let (with_probe, _, _) = cycle(&mut src, pid);
    assert_eq!(with_probe, full(pid));
    let (with_probe, _, stats) = cycle(&mut src, pid);
    assert_eq!(stats.probed, 1, "{stats:?}");
    assert_eq!(with_probe, full(pid));
    signal(pid, "CONT");
    stop_workload(child);
}

/// Stops `pid` and waits until every thread has switched out (its state
/// shows stopped a little before its last context switch).
fn stop(pid: i32) {
    signal(pid, "STOP");
    wait_for(|| state(pid) == 'T');
    let mut last = task_run_ns(pid);
    wait_for(|| {
        std::thread::sleep(Duration::from_millis(20));
        let now = task_run_ns(pid);
        std::mem::replace(&mut last, now) == last
    });
}

/// The voluntary and involuntary context switches of a `status` file.
fn status_ctx(path: &str) -> (u64, u64) {
    let status = std::fs::read_to_string(path).unwrap();
    let ctx = |key: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(key)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    (
        ctx("voluntary_ctxt_switches"),
        ctx("nonvoluntary_ctxt_switches"),
    )
}

fn signal(pid: i32, name: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{name} {pid}");
}

/// The state letter of `pid`'s `stat`.
fn state(pid: i32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.chars().next().unwrap()
}

fn wait_for(mut ok: impl FnMut() -> bool) {
    for _ in 0..200 {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out");
}

/// On the process's refresh cycle every task is read again (for what can
/// change without it running: its state, its name), but a task the probe
/// says has not run keeps its io, and a main thread that has not run its
/// context switches and wait channel: the reading is still a full one's.
#[test]
fn the_refresh_cycle_reads_what_can_change_without_running() {
    let Some(q) = group_query() else {
        return;
    };
    let (child, pid) = spawn_worker();
    let mut src = source(true, FsSourceOptions::DEFAULT_KEPT_FILES);
    src.set_group_probe(Box::new(q));
    let mut still = 0;
    let mut refreshed = None;
    for _ in 0..3 * FsSource::REFRESH_CYCLES {
        std::thread::sleep(Duration::from_millis(30));
        let (m, tasks, stats) = cycle(&mut src, pid);
        if stats.groups_still == 1 {
            still += 1;
        } else if still >= 2 && stats.read == 1 && unchanged(&tasks) == 0 {
            // Found still before, and now every task read: the refresh
            // (or a run, which the io read then shows).
            refreshed = Some((m, tasks, stats));
            break;
        }
    }
    let (m, tasks, stats) = refreshed.unwrap_or_else(|| panic!("no refresh cycle ({still} still)"));
    assert_eq!(tasks.len(), 3, "{tasks:?}");
    assert_eq!(stats.task_io_kept, 2, "{stats:?}");
    assert_eq!(m, full(pid));
    stop_workload(child);
}

/// A Python process of two tasks: one waits for ever, the main thread
/// reads stdin to its end and exits (status 0).
const PAIR: &str = r#"
import os, sys, threading
threading.Thread(target=threading.Event().wait, daemon=True).start()
print("ready", os.getpid(), flush=True)
sys.stdin.read()
os._exit(0)
"#;

/// Threads on, the group is asked about only where its one answer can
/// spare the answers about each task: not for a process of two tasks (the
/// answer about the other tells as much), and not in the cycle after one
/// of the other threads was found to have run (it most likely has again).
#[test]
fn with_threads_the_group_is_asked_only_where_it_spares_answers() {
    if group_query().is_none() {
        return;
    }
    let mut python = std::process::Command::new("python3");
    python.args(["-c", PAIR]);
    let (pair, pid) = crate::support::procs::start_workload_command(python);
    let mut src = source(true, 0);
    src.set_group_probe(Box::new(GroupQuery::open().unwrap()));
    let (mut quiet, mut asked) = (0, 0);
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(50));
        let (_, _, stats) = cycle(&mut src, pid);
        quiet += stats.quiet;
        asked += stats.groups_asked;
    }
    assert!(quiet > 0, "never quiet");
    assert_eq!(asked, 0, "{quiet} quiet");
    stop_workload(pair);

    // Three tasks: the group is asked while they sleep.
    let (mut child, pid) = spawn_worker();
    let mut src = source(true, 0);
    src.set_group_probe(Box::new(GroupQuery::open().unwrap()));
    let still = (0..60).find(|_| {
        std::thread::sleep(Duration::from_millis(50));
        cycle(&mut src, pid).2.groups_still == 1
    });
    assert!(still.is_some(), "the group was never found still");
    // The worker runs: the group is asked (once, whether before the main
    // thread or after), then its tasks.
    wake_worker(&mut child, pid);
    let (_, _, stats) = cycle(&mut src, pid);
    assert_eq!(
        (stats.groups_asked, stats.groups_still),
        (1, 0),
        "{stats:?}"
    );
    // The next cycle asks about the tasks straight away.
    let (_, _, stats) = cycle(&mut src, pid);
    assert_eq!(stats.groups_asked, 0, "{stats:?}");
    stop_workload(child);
}

/// The questions a [`Counting`] probe passed on: task ids, then group ids.
type Questions = Arc<Mutex<(Vec<i32>, Vec<i32>)>>;

/// The kernel's probe, noting every question asked of it.
#[derive(Debug)]
struct Counting {
    inner: GroupQuery,
    asked: Questions,
}

impl GroupProbe for Counting {
    fn tasks(&mut self, tids: &[i32], out: &mut Vec<Option<TaskActivity>>) {
        self.asked.lock().unwrap().0.extend_from_slice(tids);
        self.inner.tasks(tids, out);
    }

    fn groups(&mut self, tgids: &[i32], out: &mut Vec<Option<GroupActivity>>) {
        self.asked.lock().unwrap().1.extend_from_slice(tgids);
        self.inner.groups(tgids, out);
    }
}

/// A process of several threads found quiet two cycles in a row is asked
/// about as a group first from then on: that one question answers it, main thread
/// included, as a full reading would. Once a thread other than the main
/// one has run, the main thread is asked about too, the group not again,
/// and the process is read.
#[test]
fn a_group_quiet_for_a_while_is_asked_about_first_and_once() {
    for threads in [false, true] {
        let Some(q) = group_query() else {
            return;
        };
        let (mut child, pid) = spawn_worker();
        let asked = Questions::default();
        let mut src = source(threads, 0);
        src.set_group_probe(Box::new(Counting {
            inner: q,
            asked: Arc::clone(&asked),
        }));
        let take = || std::mem::take(&mut *asked.lock().unwrap());
        // Only `pid` is read, so only it is asked about.
        let found = (0..60).find_map(|_| {
            std::thread::sleep(Duration::from_millis(50));
            take();
            let (m, tasks, stats) = cycle(&mut src, pid);
            (stats.groups_first == 1 && stats.groups_still == 1).then_some((m, tasks, stats))
        });
        let (before, tasks, stats) = found
            .unwrap_or_else(|| panic!("threads {threads}: never found still when asked first"));
        assert_eq!((stats.quiet, stats.groups_asked), (1, 1), "{stats:?}");
        assert_eq!(
            take(),
            (vec![], vec![pid]),
            "threads {threads}: one question"
        );
        assert_eq!(before, full(pid), "threads {threads}: answered from memory");
        assert_eq!(unchanged(&tasks), tasks.len(), "{tasks:?}");

        wake_worker(&mut child, pid);
        let (m, _, stats) = cycle(&mut src, pid);
        assert_eq!(
            (stats.groups_first, stats.groups_asked, stats.read),
            (1, 1, 1),
            "threads {threads}: {stats:?}"
        );
        let (tids, tgids) = take();
        assert_eq!(tgids, vec![pid], "threads {threads}: the group asked once");
        assert!(tids.contains(&pid), "threads {threads}: {tids:?}");
        assert!(
            cpu(&m) >= cpu(&before) + 0.03,
            "threads {threads}: 60 ms of the worker's CPU not seen: {} then {}",
            cpu(&before),
            cpu(&m)
        );
        stop_workload(child);
    }
}
