//! The grouper, driven cycle by cycle with scripted processes: the cases of
//! process-exporter's `grouper_test.go` (expectations changed only where the
//! old behaviour was a bug, said so on each test), then the fixed bugs seen
//! at group level.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use procgroups::proc::{
    Counts, Group, GroupByName, Grouper, IDInfo, ScriptedFailure, ScriptedSource, Thread,
    TrackerOptions,
};

use super::scenario::{
    GroupExt, ScriptedExt, c, cycle_time, group, grouper, mem, ones, p, play_groups, th, thread,
    with_threads,
};

fn run(gr: &mut Grouper, src: &mut ScriptedSource, n: u64, procs: Vec<IDInfo>) -> GroupByName {
    src.push(procs);
    gr.update(src, cycle_time(n)).expect("scripted listing").1
}

// ---------------------------------------------------------------------------
// The reference cases: each a table of cycles, the processes listed and the
// groups expected.

/// Counters grow by the members' increases; gauges are the current values.
#[test]
fn grouper_basic() {
    #[rustfmt::skip]
    let table = vec![
        (vec![
            p(1, "g1").counts(c([1, 2, 3, 4, 5, 6, 0, 0])).mem(7, 8).fds(4, 400).num_threads(2).state("X"),
            p(2, "g2").counts(c([2, 3, 4, 5, 6, 7, 0, 0])).mem(8, 9).fds(40, 400).num_threads(3).state("D"),
        ], vec![
            ("g1", group(1).in_states("X").mem(7, 8).fds(4, 0.01).threads(2)),
            ("g2", group(1).in_states("D").mem(8, 9).fds(40, 0.1).threads(3)),
        ]),
        (vec![
            p(1, "g1").counts(c([2, 3, 4, 5, 6, 7, 0, 0])).mem(6, 7).fds(100, 400).num_threads(4).state("Z"),
            p(2, "g2").counts(c([4, 5, 6, 7, 8, 9, 0, 0])).mem(9, 8).fds(400, 400).num_threads(2).state("R"),
        ], vec![
            ("g1", group(1).counted(ones(1)).in_states("Z").mem(6, 7).fds(100, 0.25).threads(4)),
            ("g2", group(1).counted(ones(2)).in_states("R").mem(9, 8).fds(400, 1.0).threads(2)),
        ]),
    ];
    play_groups(
        &mut grouper(&["g1", "g2"], TrackerOptions::default(), false),
        table,
    );
}

/// A process joining a group adds its gauges at once and its counters from
/// its second sighting (it started before the grouper did).
#[test]
fn grouper_proc_join() {
    #[rustfmt::skip]
    let table = vec![
        (vec![
            p(1, "g1").counts(c([1, 2, 3, 4, 5, 6, 0, 0])).mem(3, 4).fds(4, 400).num_threads(2),
        ], vec![
            ("g1", group(1).mem(3, 4).fds(4, 0.01).threads(2)),
        ]),
        (vec![
            p(1, "g1").counts(c([3, 4, 5, 6, 7, 8, 0, 0])).mem(3, 4).fds(4, 400).num_threads(2).state("R"),
            p(2, "g1").counts(c([1, 1, 1, 1, 1, 1, 0, 0])).mem(1, 2).fds(40, 400).num_threads(3).state("S"),
        ], vec![
            ("g1", group(2).counted(ones(2)).in_states("RS").mem(4, 6).fds(44, 0.1).threads(5)),
        ]),
        (vec![
            p(1, "g1").counts(c([4, 5, 6, 7, 8, 9, 0, 0])).mem(1, 5).fds(4, 400).num_threads(2).state("R"),
            p(2, "g1").counts(c([2, 2, 2, 2, 2, 2, 0, 0])).mem(2, 4).fds(40, 400).num_threads(3).state("R"),
        ], vec![
            ("g1", group(2).counted(ones(4)).in_states("RR").mem(3, 9).fds(44, 0.1).threads(5)),
        ]),
    ];
    play_groups(
        &mut grouper(&["g1"], TrackerOptions::default(), false),
        table,
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
    #[rustfmt::skip]
    let table = vec![
        (vec![
            p(1, "g1").counts(c([3, 4, 5, 6, 7, 8, 0, 0])).mem(3, 4).fds(4, 400).num_threads(2),
            p(2, "g1").counts(c([1, 1, 1, 1, 1, 1, 0, 0])).mem(1, 2).fds(40, 400).num_threads(3),
        ], vec![
            ("g1", group(2).mem(4, 6).fds(44, 0.1).threads(5)),
        ]),
        (vec![
            p(1, "g1").counts(c([4, 5, 6, 7, 8, 9, 0, 0])).mem(1, 5).fds(4, 400).num_threads(2),
        ], vec![
            ("g1", group(1).counted(ones(1)).mem(1, 5).fds(4, 0.01).threads(2)),
        ]),
        (vec![], vec![
            ("g1", Group { counts: ones(1), io_known: true, ..Group::default() }),
        ]),
    ];
    let last = play_groups(
        &mut grouper(&["g1"], TrackerOptions::default(), false),
        table,
    );
    assert_eq!(last["g1"].oldest_start_time, None);
}

/// With `remove_empty_groups`, a group disappears with its last member.
#[test]
fn grouper_remove_empty_groups() {
    #[rustfmt::skip]
    let table = vec![
        (vec![
            p(1, "g1").counts(c([3, 4, 5, 6, 7, 8, 0, 0])).mem(3, 4).fds(4, 400).num_threads(2),
            p(2, "g2").counts(c([1, 1, 1, 1, 1, 1, 0, 0])).mem(1, 2).fds(40, 400).num_threads(3),
        ], vec![
            ("g1", group(1).mem(3, 4).fds(4, 0.01).threads(2)),
            ("g2", group(1).mem(1, 2).fds(40, 0.1).threads(3)),
        ]),
        (vec![
            p(1, "g1").counts(c([4, 5, 6, 7, 8, 9, 0, 0])).mem(1, 5).fds(4, 400).num_threads(2),
        ], vec![
            ("g1", group(1).counted(ones(1)).mem(1, 5).fds(4, 0.01).threads(2)),
        ]),
        (vec![], vec![]),
    ];
    play_groups(
        &mut grouper(&["g1", "g2"], TrackerOptions::default(), true),
        table,
    );
}

/// Threads are summed per name: live threads of that name, and counters
/// since the grouper started.
///
/// Changed from the reference (bug 11): in the last cycle `t1` has no live
/// thread but keeps its counters, reported with zero threads, instead of
/// vanishing and restarting from zero if a `t1` thread appears again.
#[test]
fn grouper_threads() {
    let p = |threads: Vec<Thread>| {
        p(1, "g1")
            .fds(1, 1)
            .num_threads(threads.len() as u64)
            .with_threads(threads)
    };
    let zero = Counts::default();
    #[rustfmt::skip]
    let table = vec![
        (vec![p(vec![
            thread(1, "t1", [1, 2, 3, 4, 5, 6, 0, 0]),
            thread(2, "t2", [1, 1, 1, 1, 1, 1, 0, 0]),
        ])], vec![
            ("g1", group(1).fds(1, 1.0).threads(2).thread_names(vec![th("t1", 1, zero), th("t2", 1, zero)])),
        ]),
        (vec![p(vec![
            thread(1, "t1", [2, 3, 4, 5, 6, 7, 0, 0]),
            thread(2, "t2", [2, 2, 2, 2, 2, 2, 0, 0]),
            thread(3, "t2", [1, 1, 1, 1, 1, 1, 0, 0]),
        ])], vec![
            ("g1", group(1).fds(1, 1.0).threads(3).thread_names(vec![th("t1", 1, ones(1)), th("t2", 2, ones(1))])),
        ]),
        (vec![p(vec![
            thread(2, "t2", [4, 4, 4, 4, 4, 4, 0, 0]),
            thread(3, "t2", [2, 3, 4, 5, 6, 7, 0, 0]),
        ])], vec![
            ("g1", group(1).fds(1, 1.0).threads(2)
                .thread_names(vec![th("t1", 0, ones(1)), th("t2", 2, c([4, 5, 6, 7, 8, 9, 0, 0]))])),
        ]),
    ];
    play_groups(&mut grouper(&["g1"], with_threads(), false), table);
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
    let mut gr = grouper(&["g1"], with_threads(), false);
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
    let mut gr = grouper(&["g1"], with_threads(), false);
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
    let mut gr = grouper(&["g1"], with_threads(), false);
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

/// A new namer (a reload of the rules) names every known process again:
/// a surviving group goes on counting from where it was, a group the new
/// rules no longer give keeps its total, and a process the old rules
/// ignored is counted from the reload on only, even if it started after
/// the grouper (its past was never counted anywhere and goes nowhere).
#[test]
fn a_new_namer_renames_known_processes_without_moving_their_past() {
    use std::sync::Arc;
    let mut gr = grouper(&["a", "b"], TrackerOptions::default(), false);
    let mut src = ScriptedSource::new(Vec::new());
    let late = cycle_time(1).duration_since(UNIX_EPOCH).unwrap().as_secs() + 5;
    let procs = |n: u64| {
        vec![
            p(1, "a").counts(c([n, 0, 0, 0, 0, 0, 0, 0])),
            p(2, "b").counts(c([n, 0, 0, 0, 0, 0, 0, 0])),
            IDInfo::named(3, "c", late).counts(c([10 * n, 0, 0, 0, 0, 0, 0, 0])),
        ]
    };
    run(&mut gr, &mut src, 1, procs(1));
    let g = run(&mut gr, &mut src, 2, procs(2));
    assert_eq!(g["a"].counts.cpu_user_time, 1.0);
    assert_eq!(g["b"].counts.cpu_user_time, 1.0);
    assert!(!g.contains_key("c"));

    gr.set_namer(Arc::new(procgroups::proc::CommSetNamer::new(["a", "c"])));
    let g = run(&mut gr, &mut src, 3, procs(3));
    assert_eq!(g["a"].counts.cpu_user_time, 2.0, "a goes on counting");
    assert_eq!(g["b"].counts.cpu_user_time, 1.0, "b keeps its total");
    assert_eq!(g["b"].procs, 0);
    assert_eq!(g["c"].procs, 1);
    assert_eq!(g["c"].counts.cpu_user_time, 0.0, "c's past is not counted");
    let g = run(&mut gr, &mut src, 4, procs(4));
    assert_eq!(g["a"].counts.cpu_user_time, 3.0);
    assert_eq!(g["b"].counts.cpu_user_time, 1.0);
    assert_eq!(g["c"].counts.cpu_user_time, 10.0);
}

/// A group's io is unknown while none of its members' io has ever been
/// readable (its zeros are not measurements), known once one member's is,
/// and stays known when only unreadable members remain, since its totals
/// then hold measured io.
#[test]
fn io_is_unknown_until_a_member_s_io_is_readable() {
    let mut gr = grouper(&["g1"], TrackerOptions::default(), false);
    let mut src = ScriptedSource::default();
    let io = |bytes: u64| Counts {
        read_bytes: bytes,
        write_bytes: bytes,
        ..Counts::default()
    };
    let unreadable = p(1, "g1").counts(io(0)).io_unknown();
    let groups = run(&mut gr, &mut src, 0, vec![unreadable.clone()]);
    assert!(!groups["g1"].io_known, "{:?}", groups["g1"]);
    let groups = run(&mut gr, &mut src, 1, vec![unreadable.clone()]);
    assert!(!groups["g1"].io_known, "{:?}", groups["g1"]);

    // A second member whose io is readable: known from its first reading
    // (its baseline), measured from the next.
    let readable = p(2, "g1").counts(io(500));
    let groups = run(&mut gr, &mut src, 2, vec![unreadable.clone(), readable]);
    assert!(groups["g1"].io_known, "{:?}", groups["g1"]);
    let readable = p(2, "g1").counts(io(800));
    let groups = run(&mut gr, &mut src, 3, vec![unreadable.clone(), readable]);
    assert_eq!(groups["g1"].counts.read_bytes, 300);

    // It exits: what it did is still in the totals, known.
    let groups = run(&mut gr, &mut src, 4, vec![unreadable]);
    assert!(groups["g1"].io_known, "{:?}", groups["g1"]);
    assert_eq!(groups["g1"].counts.read_bytes, 300);
    // Empty, the group keeps it too.
    let groups = run(&mut gr, &mut src, 5, vec![]);
    assert!(groups["g1"].io_known, "{:?}", groups["g1"]);
}
