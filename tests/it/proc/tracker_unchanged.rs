//! The tracker with a source that reports some tasks unchanged
//! (`Proc::tasks` giving `TaskRead::Unchanged`, as `FsSource` does for a
//! task that has not run since it was read): such a task counts no increase
//! and keeps the name, state and wait channel it had; a task reported
//! unchanged that the tracker never kept makes it read every task instead.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use procgroups::proc::{
    CommSetNamer, Counts, ID, IDInfo, Metrics, Proc, ProcError, Source, SourceError, States,
    Static, TaskRead, Thread, ThreadID, Tracker, TrackerOptions, Update,
};

/// A scripted process whose listed tasks in `unchanged` come back unread.
struct QuietProc {
    inner: IDInfo,
    unchanged: HashSet<ThreadID>,
    full_reads: Arc<AtomicUsize>,
}

impl Proc for QuietProc {
    fn pid(&self) -> i32 {
        self.inner.pid()
    }
    fn id(&mut self) -> Result<ID, ProcError> {
        self.inner.id()
    }
    fn static_info(&mut self) -> Result<Static, ProcError> {
        self.inner.static_info()
    }
    fn metrics(&mut self) -> Result<Metrics, ProcError> {
        self.inner.metrics()
    }
    fn threads(&mut self) -> Result<Vec<Thread>, ProcError> {
        self.full_reads.fetch_add(1, Ordering::Relaxed);
        self.inner.threads()
    }
    fn tasks(&mut self) -> Result<Vec<TaskRead>, ProcError> {
        Ok(self
            .inner
            .threads()?
            .into_iter()
            .map(|t| {
                if self.unchanged.contains(&t.id) {
                    TaskRead::Unchanged(t.id)
                } else {
                    TaskRead::Read(t)
                }
            })
            .collect())
    }
}

/// Plays one cycle after another: the processes and the tasks to report
/// unchanged.
#[derive(Default)]
struct QuietSource {
    cycles: VecDeque<(Vec<IDInfo>, HashSet<ThreadID>)>,
    full_reads: Arc<AtomicUsize>,
}

impl Source for QuietSource {
    type Proc = QuietProc;
    fn all_procs(&mut self) -> Result<Vec<QuietProc>, SourceError> {
        let (procs, unchanged) = self.cycles.pop_front().unwrap();
        Ok(procs
            .into_iter()
            .map(|inner| QuietProc {
                inner,
                unchanged: unchanged.clone(),
                full_reads: self.full_reads.clone(),
            })
            .collect())
    }
}

fn tid(tid: i32) -> ThreadID {
    ThreadID {
        tid,
        start_time_ticks: 5,
    }
}

fn thread(id: i32, name: &str, user: f64, state: char, wchan: &str) -> Thread {
    let mut t = Thread::new(
        tid(id),
        name,
        Counts {
            cpu_user_time: user,
            ctx_switch_voluntary: (user * 10.0) as u64,
            ..Counts::default()
        },
    );
    t.states = States::from_letter(state);
    t.wchan = wchan.to_string();
    t
}

fn process(threads: Vec<Thread>) -> IDInfo {
    IDInfo::named(1, "svc", 1)
        .num_threads(threads.len() as u64)
        .with_threads(threads)
}

fn cycle(tr: &mut Tracker, src: &mut QuietSource, n: u64) -> Update {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + n);
    let (_, mut updates) = tr.update(src, now).unwrap();
    assert_eq!(updates.len(), 1);
    updates.pop().unwrap()
}

fn tracker() -> Tracker {
    Tracker::new(
        Arc::new(CommSetNamer::new(["svc"])),
        TrackerOptions {
            threads: true,
            ..TrackerOptions::default()
        },
    )
}

#[test]
fn an_unchanged_task_counts_nothing_and_keeps_what_it_had() {
    let mut src = QuietSource::default();
    src.cycles.push_back((
        vec![process(vec![
            thread(11, "main", 1.0, 'S', "do_epoll_wait"),
            thread(12, "worker", 1.0, 'S', "futex_wait"),
        ])],
        HashSet::new(),
    ));
    // Task 12 is reported unchanged: what the source would have read for
    // it (another name, state, wchan and more CPU) must not be used.
    src.cycles.push_back((
        vec![process(vec![
            thread(11, "main", 3.0, 'R', ""),
            thread(12, "renamed", 9.0, 'D', "io_schedule"),
        ])],
        HashSet::from([tid(12)]),
    ));
    let mut tr = tracker();
    cycle(&mut tr, &mut src, 0);
    let u = cycle(&mut tr, &mut src, 1);

    let mut threads: Vec<(String, f64)> = u
        .threads
        .iter()
        .map(|t| (t.thread_name.clone(), t.latest.cpu_user_time))
        .collect();
    threads.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        threads,
        [("main".to_string(), 2.0), ("worker".to_string(), 0.0)]
    );
    // One running (read), one still sleeping in futex_wait (kept).
    assert_eq!(u.states.running, 1);
    assert_eq!(u.states.sleeping, 1);
    assert_eq!(u.states.waiting, 0);
    assert_eq!(u.wchans, BTreeMap::from([("futex_wait".to_string(), 1)]));
    // Context switches come from the read task only.
    assert_eq!(u.latest.ctx_switch_voluntary, 20);
    assert_eq!(src.full_reads.load(Ordering::Relaxed), 0);
    assert_eq!(tr.stats().threads, 2);
}

#[test]
fn an_unchanged_task_never_kept_makes_every_task_read() {
    let mut src = QuietSource::default();
    src.cycles.push_back((
        vec![process(vec![thread(11, "main", 1.0, 'S', "")])],
        HashSet::new(),
    ));
    // Task 13 is new to the tracker, yet reported unchanged.
    src.cycles.push_back((
        vec![process(vec![
            thread(11, "main", 2.0, 'S', ""),
            thread(13, "late", 4.0, 'S', "pipe_read"),
        ])],
        HashSet::from([tid(11), tid(13)]),
    ));
    let mut tr = tracker();
    cycle(&mut tr, &mut src, 0);
    let u = cycle(&mut tr, &mut src, 1);

    assert_eq!(src.full_reads.load(Ordering::Relaxed), 1);
    let mut names: Vec<&str> = u.threads.iter().map(|t| t.thread_name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["late", "main"]);
    // Read in full: main's increase counts, the late task starts from here.
    let main = u.threads.iter().find(|t| t.thread_name == "main").unwrap();
    assert_eq!(main.latest.cpu_user_time, 1.0);
    assert_eq!(u.wchans, BTreeMap::from([("pipe_read".to_string(), 1)]));
}
