//! `FsSource` on the live `/proc`: this test process itself, and
//! `procgroups-workload` children of known shape (comm, threads, open files)
//! that appear when started and disappear when reaped.

use std::time::{Duration, Instant, SystemTime};

use procgroups::proc::{FsSource, FsSourceOptions, Proc, Source, Thread};

use crate::support::procs::{
    WORKLOAD, inherited_fds, spawn_workload, stop_workload as stop, unique_name,
};

/// The per-process handle of [`FsSource`].
type FsProc = <FsSource as Source>::Proc;

fn live() -> FsSource {
    FsSource::new("/proc", FsSourceOptions::default()).unwrap()
}

fn find(src: &mut FsSource, pid: i32) -> Option<FsProc> {
    src.all_procs()
        .unwrap()
        .into_iter()
        .find(|p| p.pid() == pid)
}

/// PIDs of the processes whose comm is `name`. Processes that exit while
/// being read are skipped.
fn named(src: &mut FsSource, name: &str) -> Vec<i32> {
    src.all_procs()
        .unwrap()
        .into_iter()
        .filter_map(|mut p| {
            let s = p.static_info().ok()?;
            (s.name == name).then_some(p.pid())
        })
        .collect()
}

fn nofile_soft_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX)
}

#[test]
fn all_procs_sees_this_test_process() {
    // A named thread of our own, so that there are at least two threads
    // whatever the harness does.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let helper = std::thread::Builder::new()
        .name("live-helper".into())
        .spawn(move || {
            let _ = rx.recv();
        })
        .unwrap();
    let helper_tid = {
        // The thread names itself when it starts; wait until it has.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let found = std::fs::read_dir("/proc/self/task")
                .unwrap()
                .filter_map(|e| {
                    let tid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
                    let comm =
                        std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).ok()?;
                    (comm.trim_end() == "live-helper").then_some(tid)
                })
                .next();
            if let Some(tid) = found {
                break tid;
            }
            assert!(
                Instant::now() < deadline,
                "helper thread never named itself"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };

    let mut src = live();
    let procs = src.all_procs().unwrap();
    assert!(procs.len() > 1);
    let me = std::process::id() as i32;
    let mut p = procs.into_iter().find(|p| p.pid() == me).unwrap();

    assert_eq!(p.id().unwrap().pid, me);
    let s = p.static_info().unwrap();
    assert_eq!(s.parent_pid, std::os::unix::process::parent_id() as i32);
    assert_eq!(s.effective_uid, rustix::process::geteuid().as_raw());
    assert_eq!(s.cmdline, std::env::args().collect::<Vec<_>>());

    let m = p.metrics().unwrap();
    assert!(m.memory.resident_bytes > 0);
    assert!(m.memory.virtual_bytes >= m.memory.resident_bytes);
    assert!(m.num_threads >= 2, "{}", m.num_threads);
    assert_eq!(m.states.total(), 1);
    assert!(m.io_known);
    assert!(m.filedesc.open.is_some_and(|n| n >= 3));
    assert_eq!(m.filedesc.limit, Some(nofile_soft_limit()));
    assert_eq!(m.soft_errors, 0);

    let threads = p.threads().unwrap();
    assert!(threads.len() >= 2, "{threads:?}");
    assert!(threads.iter().any(|t| t.id.tid == me));
    let helper_thread = threads.iter().find(|t| t.id.tid == helper_tid).unwrap();
    assert_eq!(helper_thread.name, "live-helper");
    assert!(helper_thread.io_known);
    assert_eq!(helper_thread.states.total(), 1);

    tx.send(()).unwrap();
    helper.join().unwrap();
}

#[test]
fn all_procs_sees_a_child_come_and_go() {
    let name = unique_name("s");
    let mut src = live();
    assert_eq!(named(&mut src, &name), Vec::<i32>::new());

    let (child, pid) = spawn_workload(&["--name", &name]);
    assert_eq!(named(&mut src, &name), vec![pid]);

    stop(child);
    assert_eq!(named(&mut src, &name), Vec::<i32>::new());
    assert!(find(&mut src, pid).is_none_or(|mut p| p.id().is_err()));
}

/// Reads the threads until the three workers have named themselves (the
/// workload reports ready once its threads exist, and each names itself as
/// it starts), for at most 5 s; returns the last reading.
fn settled_threads(pid: i32, name: &str) -> Vec<Thread> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut src = live();
        let mut threads = find(&mut src, pid).unwrap().threads().unwrap();
        threads.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.tid.cmp(&b.id.tid)));
        let workers = threads.iter().filter(|t| t.name == "worker").count();
        if workers == 3 && threads.len() == 4 || Instant::now() > deadline {
            return threads;
        }
        assert!(threads.iter().all(|t| t.name == "worker" || t.name == name));
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn workload_of_known_shape() {
    let name = unique_name("t");
    let inherited = inherited_fds();
    let before = SystemTime::now();
    let (child, pid) = spawn_workload(&["--name", &name, "--threads", "3", "--files", "5"]);
    let after = SystemTime::now();

    let mut src = live();
    let mut p = find(&mut src, pid).unwrap();
    let id = p.id().unwrap();
    let s = p.static_info().unwrap();
    assert_eq!(s.name, name);
    assert_eq!(
        s.cmdline,
        [WORKLOAD, "--name", &name, "--threads", "3", "--files", "5"]
    );
    assert_eq!(s.parent_pid, std::process::id() as i32);
    assert_eq!(s.effective_uid, rustix::process::geteuid().as_raw());
    // Boot time has whole-second resolution in /proc/stat.
    let margin = Duration::from_secs(5);
    assert!(
        s.start_time >= before - margin,
        "{:?} {before:?}",
        s.start_time
    );
    assert!(
        s.start_time <= after + margin,
        "{:?} {after:?}",
        s.start_time
    );

    let m = p.metrics().unwrap();
    assert_eq!(m.num_threads, 4);
    // stdin and stdout (pipes), stderr, 5 × /dev/null, and whatever this
    // process itself passes on to every child.
    assert_eq!(
        m.filedesc.open,
        Some(3 + 5 + inherited.len() as u64),
        "inherited from the test process: {inherited:?}"
    );
    // And those are the workload's own five files.
    let own: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let fd: u32 = e.file_name().to_str()?.parse().ok()?;
            (fd > 2 && !inherited.contains(&fd))
                .then(|| std::fs::read_link(e.path()).unwrap().display().to_string())
        })
        .collect();
    assert_eq!(own, vec!["/dev/null"; 5]);
    assert_eq!(m.filedesc.limit, Some(nofile_soft_limit()));
    assert!(m.memory.resident_bytes > 0);
    assert!(m.io_known);
    assert_eq!(m.states.total(), 1);
    assert_eq!(m.soft_errors, 0);

    let threads = settled_threads(pid, &name);
    let names: Vec<&str> = threads.iter().map(|t| t.name.as_str()).collect();
    let mut expected = vec!["worker", "worker", "worker", name.as_str()];
    expected.sort();
    assert_eq!(names, expected);
    let main = threads.iter().find(|t| t.name == name).unwrap();
    assert_eq!(main.id.tid, pid);
    assert_eq!(main.id.start_time_ticks, id.start_time_ticks);
    for t in &threads {
        assert!(t.id.start_time_ticks >= id.start_time_ticks);
        assert_eq!(t.states.total(), 1);
        assert!(t.io_known);
    }

    stop(child);
}
