//! `FsSource` with the taskstats group probe on the live `/proc`: a
//! process of several threads none of which has run is answered from
//! memory, and that answer is what a full reading gives; when a thread
//! other than the main one runs, the process is read again and its CPU
//! shows; while the budget keeps the files that tell (a small host), the
//! probe is not asked. Needs what the probe needs (`CAP_NET_ADMIN`): says "skipped"
//! without it, except under `CI`, where it fails.

use std::time::Duration;

use procgroups::exits::GroupQuery;
use procgroups::proc::{FsSource, FsSourceOptions, Metrics, Proc, ReadStats, Source, TaskRead};

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
fn the_probe_is_not_asked_while_the_files_that_tell_are_kept() {
    if group_query().is_none() {
        return;
    }
    let (child, pid) = spawn_worker();
    for threads in [false, true] {
        // This host's processes fit the default budget with every tier.
        let mut src = source(threads, FsSourceOptions::DEFAULT_KEPT_FILES);
        src.set_group_probe(Box::new(GroupQuery::open().unwrap()));
        let mut quiet = 0;
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(50));
            let (_, _, stats) = cycle(&mut src, pid);
            assert_eq!(stats.groups_still, 0, "threads {threads}: {stats:?}");
            quiet += stats.quiet;
        }
        // With threads the tasks' kept `schedstat` tell it is quiet.
        assert!(!threads || quiet > 0, "never quiet");
    }
    stop_workload(child);
}
