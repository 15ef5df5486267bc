//! `FsSource` over the fixture procfs tree in `tests/fixtures/proc/`, read
//! with known system facts (100 ticks per second, 4 KiB pages, the tree's own
//! boot time), checking every value read; and over copies of that tree that
//! are broken on purpose (a process vanishing, garbage files, a `task/` that
//! must not be touched).
//!
//! The tree holds process-exporter's ReadFixture process (14804) with its
//! values, a multi-threaded process (2000), a zombie (3000), a kernel thread
//! (42) and two processes whose comm has parentheses and spaces (1234 is
//! `(sd-pam)`, 5001 is `a) b`).

use std::collections::BTreeMap;
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use procgroups::proc::{
    Counts, Filedesc, FsSource, FsSourceOptions, ID, Memory, Metrics, Proc, ProcError, Source,
    SourceError, States, Static, SystemFacts, Thread, ThreadID,
};

/// The per-process handle of [`FsSource`].
type FsProc = <FsSource as Source>::Proc;

const BTIME: u64 = 1508450329;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/proc")
}

fn facts(root: &Path) -> SystemFacts {
    SystemFacts {
        boot_time_secs: SystemFacts::read_boot_time(root).unwrap(),
        ticks_per_second: 100,
        page_size: 4096,
    }
}

fn source(root: &Path, gather_smaps: bool) -> FsSource {
    FsSource::with_facts(
        root,
        facts(root),
        FsSourceOptions {
            gather_smaps,
            ..FsSourceOptions::default()
        },
    )
}

/// The processes of one cycle by PID.
fn procs(src: &mut FsSource) -> BTreeMap<i32, FsProc> {
    src.all_procs()
        .unwrap()
        .into_iter()
        .map(|p| (p.pid(), p))
        .collect()
}

fn proc_of(root: &Path, gather_smaps: bool, pid: i32) -> FsProc {
    procs(&mut source(root, gather_smaps))
        .remove(&pid)
        .unwrap_or_else(|| panic!("no process {pid} under {}", root.display()))
}

fn at(secs: u64, nanos: u32) -> SystemTime {
    UNIX_EPOCH + Duration::new(secs, nanos)
}

/// Threads sorted by tid (directory order is the filesystem's).
fn sorted_threads(p: &mut FsProc) -> Vec<Thread> {
    let mut t = p.threads().unwrap();
    t.sort_by_key(|t| t.id.tid);
    t
}

/// Copies a tree, keeping symlinks as symlinks.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let ty = entry.file_type().unwrap();
        if ty.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), target).unwrap();
        } else if ty.is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn fixture_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture(), dir.path());
    dir
}

#[test]
fn lists_the_numeric_entries_only() {
    let pids: Vec<i32> = procs(&mut source(&fixture(), false)).into_keys().collect();
    // `self`, `stat` and `uptime` are not processes.
    assert_eq!(pids, [42, 1234, 2000, 3000, 5001, 14804]);
}

#[test]
fn new_reads_boot_time_from_the_tree() {
    let src = FsSource::new(fixture(), FsSourceOptions::default()).unwrap();
    assert_eq!(src.facts().boot_time_secs, BTIME);
    assert_eq!(
        src.facts().ticks_per_second,
        rustix::param::clock_ticks_per_second()
    );
    assert_eq!(src.facts().page_size, rustix::param::page_size() as u64);
    assert_eq!(src.root(), fixture());
}

#[test]
fn new_on_a_directory_without_stat_is_not_procfs() {
    let dir = tempfile::tempdir().unwrap();
    match FsSource::new(dir.path(), FsSourceOptions::default()) {
        Err(SourceError::NotProcfs { path, reason }) => {
            assert_eq!(path, dir.path());
            assert!(reason.contains("stat"), "{reason}");
        }
        other => panic!("expected NotProcfs, got {other:?}"),
    }
}

#[test]
fn new_on_a_stat_without_btime_is_not_procfs() {
    let dir = tempfile::tempdir().unwrap();
    let stat = std::fs::read_to_string(fixture().join("stat")).unwrap();
    let without: String = stat
        .lines()
        .filter(|l| !l.starts_with("btime"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.path().join("stat"), without).unwrap();
    match FsSource::new(dir.path(), FsSourceOptions::default()) {
        Err(SourceError::NotProcfs { reason, .. }) => assert!(reason.contains("btime"), "{reason}"),
        other => panic!("expected NotProcfs, got {other:?}"),
    }
    std::fs::write(dir.path().join("stat"), "btime soon\n").unwrap();
    assert!(matches!(
        FsSource::new(dir.path(), FsSourceOptions::default()),
        Err(SourceError::NotProcfs { .. })
    ));
}

#[test]
fn listing_a_missing_root_is_a_list_error() {
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("nothing");
    let mut src = FsSource::with_facts(&gone, facts(&fixture()), FsSourceOptions::default());
    match src.all_procs() {
        Err(SourceError::List { path, source }) => {
            assert_eq!(path, gone);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected a List error, got {other:?}"),
    }
}

/// process-exporter's ReadFixture (reference §7 item 10), adapted where §9
/// says the old behaviour was a bug:
/// - `Filedesc.open` is `Some(5)` (the old `Open: 5` as an i64 that used -1
///   for "unknown");
/// - the missing `wchan` file is a counted soft error (`soft_errors: 1`),
///   which the old test ignored;
/// - `io_known` says the io values are real rather than soft-failure zeros;
/// - the fixture has no `task/`, so `threads()` is an error, not a silent
///   empty list (the old reader returned nil for fewer than 2 tasks).
#[test]
fn read_fixture_process_exporter_14804() {
    let mut p = proc_of(&fixture(), false, 14804);
    assert_eq!(p.pid(), 14804);
    assert_eq!(
        p.id().unwrap(),
        ID {
            pid: 14804,
            start_time_ticks: 0x4f27b,
        }
    );
    assert_eq!(
        p.static_info().unwrap(),
        Static {
            name: "process-exporte".into(),
            cmdline: vec![
                "./process-exporter".into(),
                "-procnames".into(),
                "bash".into()
            ],
            cgroups: vec![
                "/system.slice/docker-8dde0b0d6e919baef8d635cd9399b22639ed1e400eaec1b1cb94ff3b216cf3c3.scope"
                    .into()
            ],
            parent_pid: 10884,
            // 2017-10-19T22:52:51.19Z
            start_time: at(1508453571, 190_000_000),
            effective_uid: 1000,
        }
    );
    assert_eq!(
        p.metrics().unwrap(),
        Metrics {
            counts: Counts {
                cpu_user_time: 0.1,
                cpu_system_time: 0.04,
                read_bytes: 1814455,
                write_bytes: 0,
                major_page_faults: 767,
                minor_page_faults: 1603,
                ctx_switch_voluntary: 72,
                ctx_switch_nonvoluntary: 6,
            },
            io_known: true,
            children: Counts::default(),
            parent_pid: 10884,
            memory: Memory {
                resident_bytes: 8065024,
                virtual_bytes: 17174528,
                swap_bytes: 10240,
                proportional_bytes: 0,
                proportional_swap_bytes: 0,
            },
            filedesc: Filedesc {
                open: Some(5),
                limit: Some(1024),
            },
            num_threads: 7,
            states: States {
                sleeping: 1,
                ..States::default()
            },
            wchan: String::new(),
            soft_errors: 1,
        }
    );
    match p.threads() {
        Err(ProcError::Io { path, source }) => {
            assert_eq!(path, fixture().join("14804/task"));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected an Io error for the missing task/, got {other:?}"),
    }
}

#[test]
fn smaps_that_cannot_be_read_is_a_soft_error() {
    // 14804 has neither smaps_rollup nor smaps: Pss stays 0 and one more
    // soft error is counted.
    let m = proc_of(&fixture(), true, 14804).metrics().unwrap();
    assert_eq!(m.memory.proportional_bytes, 0);
    assert_eq!(m.memory.proportional_swap_bytes, 0);
    assert_eq!(m.soft_errors, 2);
}

#[test]
fn multi_threaded_process_identity_and_static_info() {
    let mut p = proc_of(&fixture(), false, 2000);
    assert_eq!(
        p.id().unwrap(),
        ID {
            pid: 2000,
            start_time_ticks: 5000
        }
    );
    assert_eq!(
        p.static_info().unwrap(),
        Static {
            name: "pgmulti".into(),
            cmdline: vec![
                "/usr/bin/pgmulti".into(),
                "--serve".into(),
                "--port=8080".into()
            ],
            // cgroup v1: one line per hierarchy, paths may repeat and contain ':'.
            cgroups: vec![
                "/user.slice/user-1000.slice/session-2.scope".into(),
                "/user.slice".into(),
                "/user.slice/app:main".into(),
                "/user.slice/app:main".into(),
            ],
            parent_pid: 1,
            start_time: at(BTIME + 50, 0),
            // The second of the four Uid numbers.
            effective_uid: 1001,
        }
    );
}

/// The metrics of process 2000 (three threads) without smaps.
fn multi_threaded_metrics() -> Metrics {
    Metrics {
        counts: Counts {
            cpu_user_time: 2.5,
            cpu_system_time: 1.2,
            read_bytes: 409600,
            write_bytes: 8192,
            major_page_faults: 12,
            minor_page_faults: 4000,
            ctx_switch_voluntary: 20,
            ctx_switch_nonvoluntary: 3,
        },
        io_known: true,
        children: Counts::default(),
        parent_pid: 1,
        memory: Memory {
            resident_bytes: 2560 * 4096,
            virtual_bytes: 104857600,
            swap_bytes: 512 * 1024,
            proportional_bytes: 0,
            proportional_swap_bytes: 0,
        },
        filedesc: Filedesc {
            open: Some(4),
            // "unlimited"
            limit: Some(u64::MAX),
        },
        num_threads: 3,
        states: States {
            sleeping: 1,
            ..States::default()
        },
        wchan: "do_epoll_wait".into(),
        soft_errors: 0,
    }
}

#[test]
fn multi_threaded_process_metrics() {
    let mut p = proc_of(&fixture(), false, 2000);
    assert_eq!(p.metrics().unwrap(), multi_threaded_metrics());
}

#[test]
fn multi_threaded_process_threads() {
    let mut p = proc_of(&fixture(), false, 2000);
    assert_eq!(
        sorted_threads(&mut p),
        vec![
            Thread {
                id: ThreadID {
                    tid: 2000,
                    start_time_ticks: 5000
                },
                name: "pgmulti".into(),
                counts: Counts {
                    cpu_user_time: 1.0,
                    cpu_system_time: 0.5,
                    read_bytes: 400000,
                    write_bytes: 8192,
                    major_page_faults: 10,
                    minor_page_faults: 3000,
                    ctx_switch_voluntary: 20,
                    ctx_switch_nonvoluntary: 3,
                },
                io_known: true,
                wchan: "futex_wait_queue".into(),
                states: States {
                    sleeping: 1,
                    ..States::default()
                },
            },
            Thread {
                id: ThreadID {
                    tid: 2001,
                    start_time_ticks: 5010
                },
                name: "io-worker".into(),
                counts: Counts {
                    cpu_user_time: 1.2,
                    cpu_system_time: 0.6,
                    read_bytes: 9600,
                    write_bytes: 0,
                    major_page_faults: 2,
                    minor_page_faults: 900,
                    ctx_switch_voluntary: 7,
                    ctx_switch_nonvoluntary: 1,
                },
                io_known: true,
                // wchan "0": running, not waiting.
                wchan: String::new(),
                states: States {
                    running: 1,
                    ..States::default()
                },
            },
            Thread {
                id: ThreadID {
                    tid: 2002,
                    start_time_ticks: 5020
                },
                name: "gc (thread)".into(),
                counts: Counts {
                    cpu_user_time: 0.3,
                    cpu_system_time: 0.1,
                    read_bytes: 0,
                    write_bytes: 0,
                    major_page_faults: 0,
                    minor_page_faults: 100,
                    ctx_switch_voluntary: 3,
                    ctx_switch_nonvoluntary: 0,
                },
                // No io file for this task: unknown, not zero.
                io_known: false,
                wchan: String::new(),
                states: States {
                    waiting: 1,
                    ..States::default()
                },
            },
        ]
    );
}

#[test]
fn multi_threaded_process_proportional_memory_from_smaps_rollup() {
    let expected = multi_threaded_metrics();
    // With smaps gathering, Pss and SwapPss come from smaps_rollup.
    let with_smaps = proc_of(&fixture(), true, 2000).metrics().unwrap();
    assert_eq!(
        with_smaps,
        Metrics {
            memory: Memory {
                proportional_bytes: 1234 * 1024,
                proportional_swap_bytes: 56 * 1024,
                ..expected.memory
            },
            ..expected
        }
    );
}

#[test]
fn zombie() {
    let expected_static = Static {
        name: "defunct".into(),
        cmdline: vec![],
        cgroups: vec!["/user.slice".into()],
        parent_pid: 2000,
        start_time: at(BTIME + 60, 0),
        effective_uid: 1000,
    };
    let expected = Metrics {
        counts: Counts {
            cpu_user_time: 0.01,
            cpu_system_time: 0.02,
            read_bytes: 0,
            write_bytes: 0,
            major_page_faults: 0,
            minor_page_faults: 97,
            ctx_switch_voluntary: 2,
            ctx_switch_nonvoluntary: 0,
        },
        io_known: true,
        children: Counts::default(),
        parent_pid: 2000,
        memory: Memory::default(),
        filedesc: Filedesc {
            open: Some(0),
            limit: Some(1024),
        },
        num_threads: 1,
        states: States {
            zombie: 1,
            ..States::default()
        },
        wchan: String::new(),
        soft_errors: 0,
    };
    for gather_smaps in [false, true] {
        let mut p = proc_of(&fixture(), gather_smaps, 3000);
        assert_eq!(
            p.id().unwrap(),
            ID {
                pid: 3000,
                start_time_ticks: 6000
            }
        );
        assert_eq!(p.static_info().unwrap(), expected_static);
        // A zombie has no memory map: smaps is not read, so no soft error.
        assert_eq!(p.metrics().unwrap(), expected);
    }
}

#[test]
fn kernel_thread() {
    let expected_static = Static {
        name: "kworker/0:1-events".into(),
        cmdline: vec![],
        cgroups: vec!["/".into()],
        parent_pid: 2,
        start_time: at(BTIME, 230_000_000),
        effective_uid: 0,
    };
    let expected = Metrics {
        counts: Counts {
            cpu_user_time: 0.0,
            cpu_system_time: 0.37,
            read_bytes: 0,
            write_bytes: 0,
            major_page_faults: 0,
            minor_page_faults: 0,
            ctx_switch_voluntary: 1500,
            ctx_switch_nonvoluntary: 2,
        },
        io_known: true,
        children: Counts::default(),
        parent_pid: 2,
        memory: Memory::default(),
        filedesc: Filedesc {
            open: Some(0),
            limit: Some(1024),
        },
        num_threads: 1,
        // 'I' (idle) is "other".
        states: States {
            other: 1,
            ..States::default()
        },
        wchan: "worker_thread".into(),
        soft_errors: 0,
    };
    for gather_smaps in [false, true] {
        let mut p = proc_of(&fixture(), gather_smaps, 42);
        assert_eq!(
            p.id().unwrap(),
            ID {
                pid: 42,
                start_time_ticks: 23
            }
        );
        assert_eq!(p.static_info().unwrap(), expected_static);
        // PF_KTHREAD: no memory map, smaps is not read.
        assert_eq!(p.metrics().unwrap(), expected);
    }
}

#[test]
fn comm_with_parentheses_sd_pam() {
    let mut p = proc_of(&fixture(), false, 1234);
    assert_eq!(
        p.id().unwrap(),
        ID {
            pid: 1234,
            start_time_ticks: 1500
        }
    );
    assert_eq!(
        p.static_info().unwrap(),
        Static {
            name: "(sd-pam)".into(),
            cmdline: vec!["(sd-pam)".into()],
            cgroups: vec!["/user.slice/user-1000.slice/user@1000.service/init.scope".into()],
            parent_pid: 1233,
            start_time: at(BTIME + 15, 0),
            effective_uid: 1000,
        }
    );
    assert_eq!(
        p.metrics().unwrap(),
        Metrics {
            counts: Counts {
                minor_page_faults: 40,
                ctx_switch_voluntary: 5,
                ..Counts::default()
            },
            io_known: true,
            children: Counts::default(),
            parent_pid: 1233,
            memory: Memory {
                resident_bytes: 1024 * 4096,
                virtual_bytes: 21004288,
                ..Memory::default()
            },
            filedesc: Filedesc {
                open: Some(3),
                limit: Some(1024),
            },
            num_threads: 1,
            states: States {
                sleeping: 1,
                ..States::default()
            },
            wchan: "do_sigtimedwait".into(),
            soft_errors: 0,
        }
    );
}

#[test]
fn comm_with_a_closing_parenthesis_and_smaps_without_rollup() {
    let expected_static = Static {
        name: "a) b".into(),
        // Extra trailing NULs trimmed; the byte 0xff replaced.
        cmdline: vec!["./a) b".into(), "--opt=\u{fffd}".into()],
        cgroups: vec!["/system.slice/odd.service".into()],
        parent_pid: 1,
        start_time: at(BTIME + 70, 0),
        effective_uid: 0,
    };
    let expected = Metrics {
        counts: Counts {
            cpu_user_time: 0.07,
            cpu_system_time: 0.03,
            read_bytes: 4096,
            write_bytes: 512,
            major_page_faults: 1,
            minor_page_faults: 250,
            ctx_switch_voluntary: 0,
            ctx_switch_nonvoluntary: 9,
        },
        io_known: true,
        children: Counts::default(),
        parent_pid: 1,
        memory: Memory {
            resident_bytes: 300 * 4096,
            virtual_bytes: 8192000,
            swap_bytes: 4096,
            proportional_bytes: 0,
            proportional_swap_bytes: 0,
        },
        filedesc: Filedesc {
            open: Some(4),
            limit: Some(4096),
        },
        num_threads: 1,
        states: States {
            running: 1,
            ..States::default()
        },
        // "0\n"
        wchan: String::new(),
        soft_errors: 0,
    };
    let mut p = proc_of(&fixture(), false, 5001);
    assert_eq!(
        p.id().unwrap(),
        ID {
            pid: 5001,
            start_time_ticks: 7000
        }
    );
    assert_eq!(p.static_info().unwrap(), expected_static);
    assert_eq!(p.metrics().unwrap(), expected);

    // No smaps_rollup (kernel < 4.14): Pss and SwapPss summed over smaps.
    let with_smaps = proc_of(&fixture(), true, 5001).metrics().unwrap();
    assert_eq!(
        with_smaps,
        Metrics {
            memory: Memory {
                proportional_bytes: (100 + 20) * 1024,
                proportional_swap_bytes: 4 * 1024,
                ..expected.memory
            },
            ..expected
        }
    );
}

#[test]
fn a_second_cycle_with_recycled_handles_reads_the_same() {
    let mut src = source(&fixture(), true);
    let read_cycle = |src: &mut FsSource| {
        let procs = src.all_procs().unwrap();
        let mut out = BTreeMap::new();
        let mut handles = Vec::new();
        for mut p in procs {
            let v = (
                p.id().unwrap(),
                p.static_info().unwrap(),
                p.metrics().unwrap(),
            );
            out.insert(p.pid(), v);
            handles.push(p);
        }
        src.recycle(handles);
        out
    };
    let first = read_cycle(&mut src);
    let second = read_cycle(&mut src);
    assert_eq!(first.len(), 6);
    assert_eq!(first, second);
}

/// Watches `task/` and every `task/<tid>/` of a copy of process 2000, and
/// reports whether anything there was opened or read.
struct TaskWatch {
    inotify: rustix::fd::OwnedFd,
}

impl TaskWatch {
    fn new(task: &Path) -> TaskWatch {
        use rustix::fs::inotify::{CreateFlags, WatchFlags, add_watch, init};
        let inotify = init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC).unwrap();
        let flags = WatchFlags::OPEN | WatchFlags::ACCESS;
        // Listed before watching, or the listing itself would be seen.
        let tasks: Vec<PathBuf> = std::fs::read_dir(task)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        add_watch(&inotify, task, flags).unwrap();
        for t in tasks {
            add_watch(&inotify, &t, flags).unwrap();
        }
        TaskWatch { inotify }
    }

    fn events(&self) -> usize {
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        let mut reader = rustix::fs::inotify::Reader::new(&self.inotify, &mut buf);
        let mut n = 0;
        loop {
            match reader.next() {
                Ok(_) => n += 1,
                Err(rustix::io::Errno::WOULDBLOCK) => return n,
                Err(e) => panic!("reading inotify events: {e}"),
            }
        }
    }
}

#[test]
fn task_dir_is_not_touched_unless_threads_is_called() {
    let tree = fixture_copy();
    let watch = TaskWatch::new(&tree.path().join("2000/task"));
    let mut src = source(tree.path(), true);
    let mut procs = procs(&mut src);
    for p in procs.values_mut() {
        p.id().unwrap();
        p.static_info().unwrap();
        p.metrics().unwrap();
    }
    assert_eq!(watch.events(), 0, "task/ was read without threads()");

    // The watch does see reads of task/ when they happen.
    let threads = procs.get_mut(&2000).unwrap().threads().unwrap();
    assert_eq!(threads.len(), 3);
    assert!(watch.events() > 0);
}

#[test]
fn task_that_is_not_a_directory_fails_threads_only() {
    let tree = fixture_copy();
    let task = tree.path().join("2000/task");
    std::fs::remove_dir_all(&task).unwrap();
    std::fs::write(&task, "not a directory").unwrap();
    let mut p = proc_of(tree.path(), false, 2000);
    p.id().unwrap();
    p.static_info().unwrap();
    let m = p.metrics().unwrap();
    assert_eq!(m.soft_errors, 0);
    assert_eq!(m.num_threads, 3);
    match p.threads() {
        Err(ProcError::Io { path, .. }) => assert_eq!(path, task),
        other => panic!("expected an Io error, got {other:?}"),
    }
}

#[test]
fn a_process_that_vanishes_is_gone_not_an_error() {
    let tree = fixture_copy();
    let mut src = source(tree.path(), false);
    let mut procs = procs(&mut src);

    // Gone before anything was read.
    std::fs::remove_dir_all(tree.path().join("3000")).unwrap();
    let p = procs.get_mut(&3000).unwrap();
    assert!(p.id().unwrap_err().is_gone());

    // Gone after stat was read: every later read says so.
    let p = procs.get_mut(&2000).unwrap();
    p.id().unwrap();
    std::fs::remove_dir_all(tree.path().join("2000")).unwrap();
    assert!(p.static_info().unwrap_err().is_gone());
    assert!(p.metrics().unwrap_err().is_gone());
    assert!(p.threads().unwrap_err().is_gone());

    // Gone after stat and status were read: the first optional file tells.
    let p = procs.get_mut(&1234).unwrap();
    p.static_info().unwrap();
    std::fs::remove_dir_all(tree.path().join("1234")).unwrap();
    assert!(p.metrics().unwrap_err().is_gone());
}

#[test]
fn a_required_file_missing_from_a_live_process_is_an_error() {
    let tree = fixture_copy();
    std::fs::remove_file(tree.path().join("1234/status")).unwrap();
    std::fs::remove_file(tree.path().join("5001/cgroup")).unwrap();
    let mut p = proc_of(tree.path(), false, 1234);
    p.id().unwrap();
    match p.static_info() {
        Err(ProcError::Io { path, source }) => {
            assert_eq!(path, tree.path().join("1234/status"));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected an Io error, got {other:?}"),
    }
    // cgroup is not required: unreadable gives an empty list.
    let s = proc_of(tree.path(), false, 5001).static_info().unwrap();
    assert!(s.cgroups.is_empty());
}

/// A tree with the fixture's `stat` and one process made of these files.
fn tree_with(pid: i32, files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture().join("stat"), dir.path().join("stat")).unwrap();
    let p = dir.path().join(pid.to_string());
    std::fs::create_dir_all(p.join("fd")).unwrap();
    for (name, content) in files {
        std::fs::write(p.join(name), content).unwrap();
    }
    dir
}

const GOOD_STAT: &[u8] = b"7 (ok) S 1 7 7 0 -1 0 5 0 1 0 10 20 0 0 20 0 1 0 100 4096 2 0 0\n";
const GOOD_STATUS: &[u8] =
    b"Name:\tok\nUid:\t5\t6\t7\t8\nvoluntary_ctxt_switches:\t1\nnonvoluntary_ctxt_switches:\t2\n";

#[test]
fn garbled_files_are_errors_not_panics() {
    for stat in [
        &b""[..],
        b"7 (truncated",
        b"7 (ok) S 1 7 7 0",
        b"7 (ok) S 1 7 7 0 -1 0 5 0 1 0 10 20 0 0 20 0 1 0 100 4096 2",
        b"\xff\xfe\x00 garbage ) ( \n\n",
        b"7 (ok) S 1 7 7 0 -1 0 5 0 1 0 10 20 0 0 20 0 1 0 18446744073709551616 4096 2 0\n",
    ] {
        let tree = tree_with(7, &[("stat", stat)]);
        match proc_of(tree.path(), false, 7).id() {
            Err(ProcError::Parse { path, .. }) => assert_eq!(path, tree.path().join("7/stat")),
            other => panic!("{stat:?}: expected a Parse error, got {other:?}"),
        }
    }

    let tree = tree_with(
        7,
        &[
            ("stat", GOOD_STAT),
            ("status", b"Name:\tok\nUid:\tnobody\n"),
            ("cmdline", b"ok\0"),
        ],
    );
    let mut p = proc_of(tree.path(), false, 7);
    p.id().unwrap();
    assert!(matches!(p.static_info(), Err(ProcError::Parse { .. })));
    assert!(matches!(p.metrics(), Err(ProcError::Parse { .. })));

    // A start time beyond what SystemTime holds (at 1 tick per second) is
    // garbage too.
    let tree = tree_with(
        7,
        &[
            (
                "stat",
                b"7 (ok) S 1 7 7 0 -1 0 5 0 1 0 10 20 0 0 20 0 1 0 18446744073709551615 4096 2 0\n",
            ),
            ("status", GOOD_STATUS),
            ("cmdline", b"ok\0"),
        ],
    );
    let one_tick = SystemFacts {
        ticks_per_second: 1,
        ..facts(tree.path())
    };
    let mut src = FsSource::with_facts(tree.path(), one_tick, FsSourceOptions::default());
    let mut p = procs(&mut src).remove(&7).unwrap();
    assert!(matches!(p.static_info(), Err(ProcError::Parse { .. })));
}

#[test]
fn garbled_optional_files_are_soft_errors() {
    let tree = tree_with(
        7,
        &[
            ("stat", GOOD_STAT),
            ("status", GOOD_STATUS),
            ("cmdline", b"ok\0"),
            ("io", b"read_bytes: lots\nwrite_bytes: 0\n"),
            (
                "limits",
                b"Max open files            many         many       files\n",
            ),
            ("wchan", b"\xffwait"),
            ("smaps_rollup", b"Pss: twelve kB\n"),
        ],
    );
    let m = proc_of(tree.path(), true, 7).metrics().unwrap();
    assert!(!m.io_known);
    assert_eq!((m.counts.read_bytes, m.counts.write_bytes), (0, 0));
    assert_eq!(
        m.filedesc,
        Filedesc {
            open: Some(0),
            limit: None
        }
    );
    assert_eq!(m.wchan, "\u{fffd}wait");
    assert_eq!(m.memory.proportional_bytes, 0);
    // io, limits and smaps.
    assert_eq!(m.soft_errors, 3);
    assert_eq!(m.counts.cpu_user_time, 0.1);
    assert_eq!(m.counts.ctx_switch_nonvoluntary, 2);
}

#[test]
fn huge_files_are_cut_not_loaded_whole() {
    // 3 MiB of arguments: read up to the 1 MiB cap, no panic, no error.
    let mut cmdline = Vec::new();
    while cmdline.len() < 3 << 20 {
        cmdline.extend_from_slice(b"argument-of-some-length\0");
    }
    let tree = tree_with(
        7,
        &[
            ("stat", GOOD_STAT),
            ("status", GOOD_STATUS),
            ("cmdline", &cmdline),
        ],
    );
    let s = proc_of(tree.path(), false, 7).static_info().unwrap();
    // The bytes read: the arguments and the NULs between them.
    let total: usize = s.cmdline.iter().map(|a| a.len()).sum::<usize>() + s.cmdline.len() - 1;
    assert!(total <= 1 << 20, "{total}");
    assert!(total > 1 << 19, "{total}");
    assert_eq!(s.cmdline[0], "argument-of-some-length");
    assert_eq!(s.effective_uid, 6);
}
