//! The grouper, driven cycle by cycle with scripted processes: the cases of
//! process-exporter's `grouper_test.go` (expectations changed only where the
//! old behaviour was a bug, said so on each test), then the fixed bugs seen
//! at group level.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use procgroups::proc::{
    CommSetNamer, Counts, Group, GroupByName, Grouper, GrouperOptions, IDInfo, Memory,
    ScriptedFailure, ScriptedSource, States, Thread, ThreadID, Threads, TrackerOptions,
};

const T0: u64 = 1_000_000;

fn cycle_time(n: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0 + 15 * n)
}

fn epoch() -> SystemTime {
    UNIX_EPOCH
}

/// Counts in the reference order (cpu user, cpu system, read, write, majflt,
/// minflt, ctx voluntary, ctx nonvoluntary); cpu in whole seconds.
fn c(v: [u64; 8]) -> Counts {
    Counts {
        cpu_user_time: v[0] as f64,
        cpu_system_time: v[1] as f64,
        read_bytes: v[2],
        write_bytes: v[3],
        major_page_faults: v[4],
        minor_page_faults: v[5],
        ctx_switch_voluntary: v[6],
        ctx_switch_nonvoluntary: v[7],
    }
}

fn ones(n: u64) -> Counts {
    c([n, n, n, n, n, n, 0, 0])
}

fn mem(resident: u64, virt: u64) -> Memory {
    Memory {
        resident_bytes: resident,
        virtual_bytes: virt,
        ..Memory::default()
    }
}

/// A process in the reference shape: pid, comm, counts, memory, fds (open,
/// limit), num_threads and its own state letter (or none).
fn pi(
    pid: i32,
    name: &str,
    counts: [u64; 8],
    memory: (u64, u64),
    fds: (u64, u64),
    threads: u64,
    state: Option<char>,
) -> IDInfo {
    IDInfo::named(pid, name, 0)
        .counts(c(counts))
        .memory(mem(memory.0, memory.1))
        .filedesc(Some(fds.0), Some(fds.1))
        .num_threads(threads)
        .states(state.map(States::from_letter).unwrap_or_default())
}

/// A live group in the reference shape, started at the epoch.
#[allow(clippy::too_many_arguments)]
fn group(
    counts: Counts,
    states: States,
    procs: u64,
    memory: Memory,
    open_fds: u64,
    worst_fd_ratio: f64,
    num_threads: u64,
    threads: Vec<Threads>,
) -> Group {
    Group {
        counts,
        states,
        wchans: BTreeMap::new(),
        procs,
        memory,
        oldest_start_time: Some(epoch()),
        open_fds,
        worst_fd_ratio,
        num_threads,
        threads,
    }
}

fn st(letters: &str) -> States {
    let mut s = States::default();
    for l in letters.chars() {
        s += States::from_letter(l);
    }
    s
}

fn grouper(names: &[&str], tracker: TrackerOptions, remove_empty_groups: bool) -> Grouper {
    Grouper::new(
        Arc::new(CommSetNamer::new(names.iter().copied())),
        GrouperOptions {
            tracker,
            remove_empty_groups,
            ..GrouperOptions::default()
        },
    )
}

fn run(gr: &mut Grouper, src: &mut ScriptedSource, n: u64, procs: Vec<IDInfo>) -> GroupByName {
    src.push(procs);
    gr.update(src, cycle_time(n)).expect("scripted listing").1
}

fn gbn(groups: Vec<(&str, Group)>) -> GroupByName {
    groups
        .into_iter()
        .map(|(n, g)| (n.to_string(), g))
        .collect()
}

fn th(name: &str, num_threads: u64, counts: Counts) -> Threads {
    Threads {
        name: name.to_string(),
        num_threads,
        counts,
    }
}

// ---------------------------------------------------------------------------
// The reference cases.

/// Counters grow by the members' increases; gauges are the current values.
#[test]
fn grouper_basic() {
    let mut gr = grouper(&["g1", "g2"], TrackerOptions::default(), false);
    let mut src = ScriptedSource::default();

    let got = run(
        &mut gr,
        &mut src,
        0,
        vec![
            pi(
                1,
                "g1",
                [1, 2, 3, 4, 5, 6, 0, 0],
                (7, 8),
                (4, 400),
                2,
                Some('X'),
            ),
            pi(
                2,
                "g2",
                [2, 3, 4, 5, 6, 7, 0, 0],
                (8, 9),
                (40, 400),
                3,
                Some('D'),
            ),
        ],
    );
    assert_eq!(
        got,
        gbn(vec![
            (
                "g1",
                group(Counts::default(), st("X"), 1, mem(7, 8), 4, 0.01, 2, vec![])
            ),
            (
                "g2",
                group(Counts::default(), st("D"), 1, mem(8, 9), 40, 0.1, 3, vec![])
            ),
        ])
    );

    let got = run(
        &mut gr,
        &mut src,
        1,
        vec![
            pi(
                1,
                "g1",
                [2, 3, 4, 5, 6, 7, 0, 0],
                (6, 7),
                (100, 400),
                4,
                Some('Z'),
            ),
            pi(
                2,
                "g2",
                [4, 5, 6, 7, 8, 9, 0, 0],
                (9, 8),
                (400, 400),
                2,
                Some('R'),
            ),
        ],
    );
    assert_eq!(
        got,
        gbn(vec![
            (
                "g1",
                group(ones(1), st("Z"), 1, mem(6, 7), 100, 0.25, 4, vec![])
            ),
            (
                "g2",
                group(ones(2), st("R"), 1, mem(9, 8), 400, 1.0, 2, vec![])
            ),
        ])
    );
}

/// A process joining a group adds its gauges at once and its counters from
/// its second sighting (it started before the grouper did).
#[test]
fn grouper_proc_join() {
    let mut gr = grouper(&["g1"], TrackerOptions::default(), false);
    let mut src = ScriptedSource::default();

    let got = run(
        &mut gr,
        &mut src,
        0,
        vec![pi(
            1,
            "g1",
            [1, 2, 3, 4, 5, 6, 0, 0],
            (3, 4),
            (4, 400),
            2,
            None,
        )],
    );
    assert_eq!(
        got,
        gbn(vec![(
            "g1",
            group(
                Counts::default(),
                States::default(),
                1,
                mem(3, 4),
                4,
                0.01,
                2,
                vec![]
            )
        )])
    );

    let got = run(
        &mut gr,
        &mut src,
        1,
        vec![
            pi(
                1,
                "g1",
                [3, 4, 5, 6, 7, 8, 0, 0],
                (3, 4),
                (4, 400),
                2,
                Some('R'),
            ),
            pi(
                2,
                "g1",
                [1, 1, 1, 1, 1, 1, 0, 0],
                (1, 2),
                (40, 400),
                3,
                Some('S'),
            ),
        ],
    );
    assert_eq!(
        got,
        gbn(vec![(
            "g1",
            group(ones(2), st("RS"), 2, mem(4, 6), 44, 0.1, 5, vec![])
        )])
    );

    let got = run(
        &mut gr,
        &mut src,
        2,
        vec![
            pi(
                1,
                "g1",
                [4, 5, 6, 7, 8, 9, 0, 0],
                (1, 5),
                (4, 400),
                2,
                Some('R'),
            ),
            pi(
                2,
                "g1",
                [2, 2, 2, 2, 2, 2, 0, 0],
                (2, 4),
                (40, 400),
                3,
                Some('R'),
            ),
        ],
    );
    assert_eq!(
        got,
        gbn(vec![(
            "g1",
            group(ones(4), st("RR"), 2, mem(3, 9), 44, 0.1, 5, vec![])
        )])
    );
}

/// A member exiting takes nothing from the counters; a group whose members
/// have all exited keeps its counters and reports nothing else.
///
/// Changed from the reference (bug 12): the empty group's oldest start time
/// is `None` instead of the zero time (which was exported as
/// -62135596800), and its wchans are an empty map rather than nil (the two
/// are the same thing here).
#[test]
fn grouper_non_decreasing() {
    let mut gr = grouper(&["g1"], TrackerOptions::default(), false);
    let mut src = ScriptedSource::default();

    let got = run(
        &mut gr,
        &mut src,
        0,
        vec![
            pi(1, "g1", [3, 4, 5, 6, 7, 8, 0, 0], (3, 4), (4, 400), 2, None),
            pi(
                2,
                "g1",
                [1, 1, 1, 1, 1, 1, 0, 0],
                (1, 2),
                (40, 400),
                3,
                None,
            ),
        ],
    );
    assert_eq!(
        got,
        gbn(vec![(
            "g1",
            group(
                Counts::default(),
                States::default(),
                2,
                mem(4, 6),
                44,
                0.1,
                5,
                vec![]
            )
        )])
    );

    let got = run(
        &mut gr,
        &mut src,
        1,
        vec![pi(
            1,
            "g1",
            [4, 5, 6, 7, 8, 9, 0, 0],
            (1, 5),
            (4, 400),
            2,
            None,
        )],
    );
    assert_eq!(
        got,
        gbn(vec![(
            "g1",
            group(ones(1), States::default(), 1, mem(1, 5), 4, 0.01, 2, vec![])
        )])
    );

    let got = run(&mut gr, &mut src, 2, vec![]);
    assert_eq!(
        got,
        gbn(vec![(
            "g1",
            Group {
                counts: ones(1),
                ..Group::default()
            }
        )])
    );
    assert_eq!(got["g1"].oldest_start_time, None);
}

/// With `remove_empty_groups`, a group disappears with its last member.
#[test]
fn grouper_remove_empty_groups() {
    let mut gr = grouper(&["g1", "g2"], TrackerOptions::default(), true);
    let mut src = ScriptedSource::default();

    let got = run(
        &mut gr,
        &mut src,
        0,
        vec![
            pi(1, "g1", [3, 4, 5, 6, 7, 8, 0, 0], (3, 4), (4, 400), 2, None),
            pi(
                2,
                "g2",
                [1, 1, 1, 1, 1, 1, 0, 0],
                (1, 2),
                (40, 400),
                3,
                None,
            ),
        ],
    );
    assert_eq!(
        got,
        gbn(vec![
            (
                "g1",
                group(
                    Counts::default(),
                    States::default(),
                    1,
                    mem(3, 4),
                    4,
                    0.01,
                    2,
                    vec![]
                )
            ),
            (
                "g2",
                group(
                    Counts::default(),
                    States::default(),
                    1,
                    mem(1, 2),
                    40,
                    0.1,
                    3,
                    vec![]
                )
            ),
        ])
    );

    let got = run(
        &mut gr,
        &mut src,
        1,
        vec![pi(
            1,
            "g1",
            [4, 5, 6, 7, 8, 9, 0, 0],
            (1, 5),
            (4, 400),
            2,
            None,
        )],
    );
    assert_eq!(
        got,
        gbn(vec![(
            "g1",
            group(ones(1), States::default(), 1, mem(1, 5), 4, 0.01, 2, vec![])
        )])
    );

    let got = run(&mut gr, &mut src, 2, vec![]);
    assert_eq!(got, GroupByName::new());
}

fn thread(tid: i32, name: &str, counts: [u64; 8]) -> Thread {
    Thread::new(
        ThreadID {
            tid,
            start_time_ticks: 0,
        },
        name,
        c(counts),
    )
}

/// Threads are summed per name: live threads of that name, and counters
/// since the grouper started.
///
/// Changed from the reference (bug 11): in the last cycle `t1` has no live
/// thread but keeps its counters, reported with zero threads, instead of
/// vanishing and restarting from zero if a `t1` thread appears again.
#[test]
fn grouper_threads() {
    let opts = TrackerOptions {
        threads: true,
        ..TrackerOptions::default()
    };
    let mut gr = grouper(&["g1"], opts, false);
    let mut src = ScriptedSource::default();
    let p = |threads: Vec<Thread>| {
        IDInfo::named(1, "g1", 0)
            .filedesc(Some(1), Some(1))
            .num_threads(threads.len() as u64)
            .with_threads(threads)
    };

    let got = run(
        &mut gr,
        &mut src,
        0,
        vec![p(vec![
            thread(1, "t1", [1, 2, 3, 4, 5, 6, 0, 0]),
            thread(2, "t2", [1, 1, 1, 1, 1, 1, 0, 0]),
        ])],
    );
    assert_eq!(
        got,
        gbn(vec![(
            "g1",
            group(
                Counts::default(),
                States::default(),
                1,
                Memory::default(),
                1,
                1.0,
                2,
                vec![
                    th("t1", 1, Counts::default()),
                    th("t2", 1, Counts::default())
                ]
            )
        )])
    );

    let got = run(
        &mut gr,
        &mut src,
        1,
        vec![p(vec![
            thread(1, "t1", [2, 3, 4, 5, 6, 7, 0, 0]),
            thread(2, "t2", [2, 2, 2, 2, 2, 2, 0, 0]),
            thread(3, "t2", [1, 1, 1, 1, 1, 1, 0, 0]),
        ])],
    );
    assert_eq!(
        got,
        gbn(vec![(
            "g1",
            group(
                Counts::default(),
                States::default(),
                1,
                Memory::default(),
                1,
                1.0,
                3,
                vec![th("t1", 1, ones(1)), th("t2", 2, ones(1))]
            )
        )])
    );

    let got = run(
        &mut gr,
        &mut src,
        2,
        vec![p(vec![
            thread(2, "t2", [4, 4, 4, 4, 4, 4, 0, 0]),
            thread(3, "t2", [2, 3, 4, 5, 6, 7, 0, 0]),
        ])],
    );
    assert_eq!(
        got,
        gbn(vec![(
            "g1",
            group(
                Counts::default(),
                States::default(),
                1,
                Memory::default(),
                1,
                1.0,
                2,
                vec![
                    th("t1", 0, ones(1)),
                    th("t2", 2, c([4, 5, 6, 7, 8, 9, 0, 0]))
                ]
            )
        )])
    );
}

// ---------------------------------------------------------------------------
// Fixed bugs, at group level.

/// Bug 12: a group with no members has no oldest start time (`None`, not a
/// zero time), and no gauges.
#[test]
fn empty_group_has_no_oldest_start_time() {
    let mut gr = grouper(&["g1"], TrackerOptions::default(), false);
    let mut src = ScriptedSource::default();
    let started = UNIX_EPOCH + Duration::from_secs(500);
    let got = run(
        &mut gr,
        &mut src,
        0,
        vec![
            IDInfo::named(1, "g1", 900).started_at(started + Duration::from_secs(400)),
            IDInfo::named(2, "g1", 500).started_at(started),
        ],
    );
    assert_eq!(got["g1"].oldest_start_time, Some(started));
    let got = run(&mut gr, &mut src, 1, vec![]);
    let g = &got["g1"];
    assert_eq!(g.oldest_start_time, None);
    assert_eq!((g.procs, g.num_threads, g.open_fds), (0, 0, 0));
    assert_eq!(g.worst_fd_ratio, 0.0);
    assert_eq!(g.states.total(), 0);
    assert!(g.wchans.is_empty());
}

/// Bug 11: a thread name absent for a cycle keeps its counters; when a
/// thread of that name appears again, it adds to them.
#[test]
fn thread_name_missing_for_a_cycle_keeps_its_history() {
    let opts = TrackerOptions {
        threads: true,
        ..TrackerOptions::default()
    };
    let mut gr = grouper(&["g1"], opts, false);
    let mut src = ScriptedSource::default();
    let p = |threads: Vec<Thread>| IDInfo::named(1, "g1", 0).with_threads(threads);

    run(
        &mut gr,
        &mut src,
        0,
        vec![p(vec![
            thread(1, "main", [0; 8]),
            thread(2, "flush", [5, 0, 0, 0, 0, 0, 0, 0]),
        ])],
    );
    let got = run(
        &mut gr,
        &mut src,
        1,
        vec![p(vec![
            thread(1, "main", [0; 8]),
            thread(2, "flush", [8, 0, 0, 0, 0, 0, 0, 0]),
        ])],
    );
    assert_eq!(
        got["g1"].threads[0],
        th("flush", 1, c([3, 0, 0, 0, 0, 0, 0, 0]))
    );
    // The flusher exits.
    let got = run(
        &mut gr,
        &mut src,
        2,
        vec![p(vec![thread(1, "main", [0; 8])])],
    );
    assert_eq!(
        got["g1"].threads[0],
        th("flush", 0, c([3, 0, 0, 0, 0, 0, 0, 0]))
    );
    // A new flusher: first sighting in a known process adds nothing, then
    // its increases add to the name's history.
    run(
        &mut gr,
        &mut src,
        3,
        vec![p(vec![
            thread(1, "main", [0; 8]),
            thread(3, "flush", [1, 0, 0, 0, 0, 0, 0, 0]),
        ])],
    );
    let got = run(
        &mut gr,
        &mut src,
        4,
        vec![p(vec![
            thread(1, "main", [0; 8]),
            thread(3, "flush", [3, 0, 0, 0, 0, 0, 0, 0]),
        ])],
    );
    assert_eq!(
        got["g1"].threads[0],
        th("flush", 1, c([5, 0, 0, 0, 0, 0, 0, 0]))
    );
}

/// A group whose members have all exited goes on reporting its thread
/// names, with no live threads and their totals, so that every counter of
/// the group stays observed (a delta exporter would otherwise forget the
/// series and send the whole total again when the group comes back).
#[test]
fn an_emptied_group_keeps_reporting_its_thread_names() {
    let opts = TrackerOptions {
        threads: true,
        ..TrackerOptions::default()
    };
    let mut gr = grouper(&["g1"], opts, false);
    let mut src = ScriptedSource::default();
    let p = |pid, threads: Vec<Thread>| IDInfo::named(pid, "g1", 0).with_threads(threads);

    run(
        &mut gr,
        &mut src,
        0,
        vec![p(
            1,
            vec![
                thread(1, "main", [0; 8]),
                thread(2, "io", [2, 0, 0, 0, 0, 0, 0, 0]),
            ],
        )],
    );
    let got = run(
        &mut gr,
        &mut src,
        1,
        vec![p(
            1,
            vec![
                thread(1, "main", [0; 8]),
                thread(2, "io", [6, 0, 0, 0, 0, 0, 0, 0]),
            ],
        )],
    );
    let io = c([4, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        got["g1"].threads,
        vec![th("io", 1, io), th("main", 1, c([0; 8]))]
    );

    let got = run(&mut gr, &mut src, 2, vec![]);
    assert_eq!(got["g1"].procs, 0);
    assert_eq!(
        got["g1"].threads,
        vec![th("io", 0, io), th("main", 0, c([0; 8]))]
    );
}

/// Bug 1 at group level: the group's context-switch counter never goes
/// down when a busy thread exits.
#[test]
fn group_context_switches_never_decrease_when_threads_exit() {
    let opts = TrackerOptions {
        threads: true,
        ..TrackerOptions::default()
    };
    let mut gr = grouper(&["g1"], opts, false);
    let mut src = ScriptedSource::default();
    let ctx = |v: u64| [0, 0, 0, 0, 0, 0, v, v];
    let p = |threads: Vec<Thread>| IDInfo::named(1, "g1", 0).with_threads(threads);

    let mut last = 0;
    let script = vec![
        vec![thread(1, "m", ctx(10)), thread(2, "w", ctx(900))],
        vec![thread(1, "m", ctx(11)), thread(2, "w", ctx(950))],
        vec![thread(1, "m", ctx(12))],
        vec![thread(1, "m", ctx(13)), thread(3, "w", ctx(5))],
        vec![thread(1, "m", ctx(14)), thread(3, "w", ctx(9))],
    ];
    let mut seen = Vec::new();
    for (n, threads) in script.into_iter().enumerate() {
        let got = run(&mut gr, &mut src, n as u64, vec![p(threads)]);
        let v = got["g1"].counts.ctx_switch_voluntary;
        assert!(v >= last, "cycle {n}: {v} < {last}");
        last = v;
        seen.push(v);
    }
    // 0; +1 +50; +1 (w exits); +1 (new w, first sight); +1 +4.
    assert_eq!(seen, vec![0, 51, 52, 53, 58]);
}

/// With `remove_empty_groups`, a group that comes back restarts from zero;
/// without, it continues from its history.
#[test]
fn returning_group_restarts_only_when_removed() {
    for remove in [false, true] {
        let mut gr = grouper(&["g1"], TrackerOptions::default(), remove);
        let mut src = ScriptedSource::default();
        let p = |pid: i32, start: u64, cpu: u64| {
            IDInfo::named(pid, "g1", start).counts(c([cpu, 0, 0, 0, 0, 0, 0, 0]))
        };
        run(&mut gr, &mut src, 0, vec![p(1, 1, 10)]);
        run(&mut gr, &mut src, 1, vec![p(1, 1, 13)]);
        let got = run(&mut gr, &mut src, 2, vec![]);
        assert_eq!(got.contains_key("g1"), !remove);
        // A new member, born after the grouper started: counted whole.
        let born = p(2, 2, 4).started_at(cycle_time(2) + Duration::from_secs(1));
        let got = run(&mut gr, &mut src, 3, vec![born]);
        let want = if remove { 4.0 } else { 3.0 + 4.0 };
        assert_eq!(got["g1"].counts.cpu_user_time, want, "remove={remove}");
    }
}

/// Unknown fd counts are skipped in the sum (not counted as zero or -1),
/// and the worst ratio ignores members whose ratio is unknown or whose limit
/// is unlimited or zero (bug 18).
#[test]
fn fd_sums_and_ratios_skip_unknown_values() {
    let mut gr = grouper(&["g1"], TrackerOptions::default(), false);
    let mut src = ScriptedSource::default();
    let got = run(
        &mut gr,
        &mut src,
        0,
        vec![
            IDInfo::named(1, "g1", 0).filedesc(Some(10), Some(100)),
            IDInfo::named(2, "g1", 0).filedesc(None, Some(4)),
            IDInfo::named(3, "g1", 0).filedesc(Some(7), Some(u64::MAX)),
            IDInfo::named(4, "g1", 0).filedesc(Some(3), Some(0)),
            IDInfo::named(5, "g1", 0).filedesc(Some(5), None),
        ],
    );
    let g = &got["g1"];
    assert_eq!(g.open_fds, 10 + 7 + 3 + 5);
    assert_eq!(g.worst_fd_ratio, 0.1);
    assert!(g.worst_fd_ratio.is_finite());
}

/// A transient read failure of a group's only member neither drops the
/// group (even with `remove_empty_groups`) nor counts anything twice.
#[test]
fn transient_read_failure_keeps_the_group() {
    let mut gr = grouper(&["g1"], TrackerOptions::default(), true);
    let mut src = ScriptedSource::default();
    let p = |cpu: u64| {
        IDInfo::named(1, "g1", 5)
            .started_at(cycle_time(0) + Duration::from_secs(5))
            .counts(c([cpu, 0, 0, 0, 0, 0, 0, 0]))
            .memory(mem(100, 200))
    };
    run(&mut gr, &mut src, 0, vec![]);
    let got = run(&mut gr, &mut src, 1, vec![p(20)]);
    assert_eq!(got["g1"].counts.cpu_user_time, 20.0);
    src.push(vec![p(25).metrics_fail(ScriptedFailure::Read)]);
    let (errs, got) = gr.update(&mut src, cycle_time(2)).unwrap();
    assert_eq!(errs.read, 1);
    assert_eq!(got["g1"].procs, 1);
    assert_eq!(got["g1"].memory, mem(100, 200));
    assert_eq!(got["g1"].counts.cpu_user_time, 20.0);
    let got = run(&mut gr, &mut src, 3, vec![p(26)]);
    assert_eq!(got["g1"].counts.cpu_user_time, 26.0);
}

/// Wchans of all members add up per wchan; thread names are sorted.
#[test]
fn wchans_add_up_across_members() {
    let mut gr = grouper(&["g1"], TrackerOptions::default(), false);
    let mut src = ScriptedSource::default();
    let got = run(
        &mut gr,
        &mut src,
        0,
        vec![
            IDInfo::named(1, "g1", 0).wchan("do_select"),
            IDInfo::named(2, "g1", 0).wchan("do_select"),
            IDInfo::named(3, "g1", 0).wchan("pipe_read"),
            IDInfo::named(4, "g1", 0),
        ],
    );
    assert_eq!(
        got["g1"].wchans,
        BTreeMap::from([("do_select".to_string(), 2), ("pipe_read".to_string(), 1)])
    );
}
