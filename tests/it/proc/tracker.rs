//! The tracker, driven cycle by cycle with scripted processes: the cases of
//! process-exporter's `tracker_test.go` (expectations changed only where the
//! old behaviour was a bug, said so on each test), then one test per fixed
//! bug, then recheck, children and status lookups.

use std::collections::BTreeMap;
use std::time::Duration;

use procgroups::proc::{
    CollectErrors, Delta, ID, IDInfo, MatchReason, Membership, ScriptedFailure, ScriptedSource,
    Source, SourceError, States, Thread, ThreadUpdate, Tracker, TrackerOptions, TrackerStats,
    Update,
};

use super::scenario::{
    ScriptedExt, UpdateExt, c, cycle_time, d, mem, p, play_updates, thread, tracker, upd,
    with_threads,
};

/// Plays one cycle of `procs` at cycle time `n`.
fn run(
    tr: &mut Tracker,
    src: &mut ScriptedSource,
    n: u64,
    procs: Vec<IDInfo>,
) -> (CollectErrors, Vec<Update>) {
    src.push(procs);
    tr.update(src, cycle_time(n)).expect("scripted listing")
}

fn by_group(mut v: Vec<Update>) -> Vec<Update> {
    v.sort_by(|a, b| a.group_name.cmp(&b.group_name));
    v
}

fn states(f: impl FnOnce(&mut States)) -> States {
    let mut s = States::default();
    f(&mut s);
    s
}

fn sorted_threads(mut v: Vec<ThreadUpdate>) -> Vec<ThreadUpdate> {
    v.sort_by_key(|t| (t.thread_name.clone(), format!("{:?}", t.latest)));
    v
}

fn tu(name: &str, latest: Delta) -> ThreadUpdate {
    ThreadUpdate {
        thread_name: name.to_string(),
        latest,
    }
}

fn only(updates: Vec<Update>) -> Update {
    assert_eq!(updates.len(), 1, "expected exactly one update: {updates:?}");
    updates.into_iter().next().expect("one update")
}

// ---------------------------------------------------------------------------
// The reference cases.

/// Tracks or ignores by name, and tells apart two processes holding the same
/// pid at different times.
#[test]
fn tracker_basic() {
    let mut tr = tracker(&["g1", "g2", "g4"], TrackerOptions::default());
    let named = IDInfo::named;
    let table = vec![
        (
            vec![named(1, "g1", 1), named(3, "g3", 1)],
            vec![upd("g1", 1)],
        ),
        // p3 (ignored) has exited and p2 has appeared.
        (
            vec![named(1, "g1", 1), named(2, "g2", 2)],
            vec![upd("g1", 1), upd("g2", 2)],
        ),
        // p1 has exited and a new process with another name holds its pid.
        (
            vec![named(1, "g4", 3), named(2, "g2", 2)],
            vec![upd("g2", 2), upd("g4", 3)],
        ),
    ];
    play_updates(&mut tr, table);
    assert_eq!(tr.group_of(1), Some("g4"));
}

/// With children on, a process the namer does not want joins its tracked
/// parent's group.
#[test]
fn tracker_children() {
    let opts = TrackerOptions {
        children: true,
        ..TrackerOptions::default()
    };
    let mut tr = tracker(&["g2"], opts);
    let table = vec![
        (
            vec![p(1, "g1").parent(0), p(2, "g2").parent(1)],
            vec![upd("g2", 0)],
        ),
        (
            vec![
                p(1, "g1").parent(0),
                p(2, "g2").parent(1),
                p(3, "g3").parent(2),
            ],
            vec![upd("g2", 0), upd("g2", 0)],
        ),
    ];
    play_updates(&mut tr, table);
    assert_eq!(tr.group_of(3), Some("g2"));
    assert_eq!(tr.group_of(1), None);
}

/// The update carries the increase of the counters and the current gauges.
#[test]
fn tracker_metrics() {
    let mut tr = tracker(&["g1"], TrackerOptions::default());
    #[rustfmt::skip]
    let table = vec![
        (
            vec![p(1, "g1").counts(c([1, 2, 3, 4, 5, 6, 0, 0])).mem(7, 8).fds(1, 10).num_threads(9).state("S")],
            vec![upd("g1", 0).mem(7, 8).fds(1, 10).threads(9).in_states("S")],
        ),
        (
            vec![p(1, "g1").counts(c([2, 3, 4, 5, 6, 7, 0, 0])).mem(1, 2).fds(2, 20).num_threads(1).state("R")],
            vec![upd("g1", 0).latest(d([1, 1, 1, 1, 1, 1, 0, 0])).mem(1, 2).fds(2, 20).threads(1).in_states("R")],
        ),
    ];
    play_updates(&mut tr, table);
}

/// Per-thread increases, keyed by thread identity.
///
/// A thread seen for the first time in a process already known counts from
/// that sighting on (zero increase), as in the reference: its start cannot be
/// placed against the previous cycle, and counting its whole total would
/// count again the work of a thread that was merely unlisted once. The
/// process-level counters (cpu, faults, io) come from the process itself and
/// include that work anyway.
#[test]
fn tracker_threads() {
    let mut tr = tracker(&["g1"], with_threads());
    let mut src = ScriptedSource::default();
    let proc = |threads: Vec<Thread>| {
        p(1, "g1")
            .fds(1, 1)
            .num_threads(threads.len().max(1) as u64)
            .with_threads(threads)
    };
    let zero = Delta::default();
    // Each cycle: the threads listed, then the process's thread count and
    // its threads' increases (sorted); the process's own increase is zero
    // throughout.
    #[rustfmt::skip]
    let table = vec![
        // No thread detail.
        (vec![], 1, vec![]),
        (vec![
            thread(1, "t1", [1, 2, 3, 4, 5, 6, 0, 0]),
            thread(2, "t2", [1, 1, 1, 1, 1, 1, 0, 0]),
        ], 2, vec![tu("t1", zero), tu("t2", zero)]),
        (vec![
            thread(1, "t1", [2, 3, 4, 5, 6, 7, 0, 0]),
            thread(2, "t2", [2, 2, 2, 2, 2, 2, 0, 0]),
            thread(3, "t2", [1, 1, 1, 1, 1, 1, 0, 0]),
        ], 3, vec![tu("t1", d([1, 1, 1, 1, 1, 1, 0, 0])), tu("t2", zero), tu("t2", d([1, 1, 1, 1, 1, 1, 0, 0]))]),
        (vec![
            thread(1, "t1", [2, 3, 4, 5, 6, 7, 0, 0]),
            thread(3, "t2", [1, 2, 3, 4, 5, 6, 0, 0]),
        ], 2, vec![tu("t1", zero), tu("t2", d([0, 1, 2, 3, 4, 5, 0, 0]))]),
    ];
    for (n, (threads, num_threads, thread_updates)) in table.into_iter().enumerate() {
        let mut got = only(run(&mut tr, &mut src, n as u64, vec![proc(threads)]).1);
        got.threads = sorted_threads(got.threads);
        let want = Update {
            threads: thread_updates,
            ..upd("g1", 0).fds(1, 1).threads(num_threads)
        };
        assert_eq!(got, want, "cycle {n}");
    }
    assert_eq!(tr.stats().threads, 2);
}

/// A source hands out its processes in order, and reading them gives back
/// exactly what was scripted.
#[test]
fn iterator() {
    use procgroups::proc::Proc;
    let a = IDInfo::named(1, "a", 1).counts(c([1, 0, 0, 0, 0, 0, 0, 0]));
    let b = IDInfo::named(2, "b", 2).memory(mem(5, 6));
    let mut src = ScriptedSource::new(vec![vec![a.clone(), b.clone()]]);
    let mut procs = src.all_procs().unwrap();
    assert_eq!(procs.len(), 2);
    for (p, want) in procs.iter_mut().zip([&a, &b]) {
        assert_eq!(p.pid(), want.id.pid);
        assert_eq!(p.id().unwrap(), want.id);
        assert_eq!(p.static_info().unwrap(), want.static_info);
        assert_eq!(p.metrics().unwrap(), want.metrics);
    }
    assert!(src.all_procs().unwrap().is_empty(), "script is exhausted");
}

// ---------------------------------------------------------------------------
// One test per fixed bug.

/// Bug 1: the process's context switches are the sum of per-thread
/// increases, so a thread exiting (taking its switches with it) neither lowers
/// the count nor wraps it around.
#[test]
fn thread_exit_never_lowers_or_wraps_context_switches() {
    let mut tr = tracker(&["g1"], with_threads());
    let mut src = ScriptedSource::default();
    // The process-level values are what the kernel reports for the main
    // thread; the tracker must not mix them with the per-thread sums.
    let proc = |ctx: u64, threads: Vec<Thread>| {
        IDInfo::named(1, "g1", 0)
            .counts(c([0, 0, 0, 0, 0, 0, ctx, ctx]))
            .num_threads(threads.len() as u64)
            .with_threads(threads)
    };

    run(
        &mut tr,
        &mut src,
        0,
        vec![proc(
            10,
            vec![
                thread(1, "main", [0, 0, 0, 0, 0, 0, 10, 10]),
                thread(2, "worker", [0, 0, 0, 0, 0, 0, 1000, 500]),
            ],
        )],
    );
    let got = only(
        run(
            &mut tr,
            &mut src,
            1,
            vec![proc(
                12,
                vec![
                    thread(1, "main", [0, 0, 0, 0, 0, 0, 12, 11]),
                    thread(2, "worker", [0, 0, 0, 0, 0, 0, 1100, 520]),
                ],
            )],
        )
        .1,
    );
    assert_eq!(got.latest.ctx_switch_voluntary, 2 + 100);
    assert_eq!(got.latest.ctx_switch_nonvoluntary, 1 + 20);

    // The busy worker exits: the sum over live threads drops from 1620 to 27.
    let got = only(
        run(
            &mut tr,
            &mut src,
            2,
            vec![proc(
                15,
                vec![thread(1, "main", [0, 0, 0, 0, 0, 0, 15, 12])],
            )],
        )
        .1,
    );
    assert_eq!(got.latest.ctx_switch_voluntary, 3);
    assert_eq!(got.latest.ctx_switch_nonvoluntary, 1);
    assert_eq!(got.threads, vec![tu("main", d([0, 0, 0, 0, 0, 0, 3, 1]))]);
    assert_eq!(tr.stats().threads, 1);

    // The thread's counters reset under the same identity (bogus data): no
    // wrap either.
    let got = only(
        run(
            &mut tr,
            &mut src,
            3,
            vec![proc(1, vec![thread(1, "main", [0, 0, 0, 0, 0, 0, 1, 1])])],
        )
        .1,
    );
    assert_eq!(got.latest, Delta::default());
}

/// Bug 2: when `io` cannot be read, its zeros never feed a difference: the
/// cycle has no io increase, and the next readable value is differenced from
/// the last good one.
#[test]
fn unreadable_io_never_produces_a_delta() {
    let mut tr = tracker(&["g1"], TrackerOptions::default());
    let mut src = ScriptedSource::default();
    let io = |r: u64, w: u64| c([0, 0, r, w, 0, 0, 0, 0]);

    run(
        &mut tr,
        &mut src,
        0,
        vec![IDInfo::named(1, "g1", 0).counts(io(100, 50))],
    );
    // Unreadable: the source reports zeros, which must not count.
    let got = only(
        run(
            &mut tr,
            &mut src,
            1,
            vec![IDInfo::named(1, "g1", 0).counts(io(0, 0)).io_unknown()],
        )
        .1,
    );
    assert_eq!(got.latest, Delta::default());
    // Readable again: the increase since the last good value, once.
    let got = only(
        run(
            &mut tr,
            &mut src,
            2,
            vec![IDInfo::named(1, "g1", 0).counts(io(180, 60))],
        )
        .1,
    );
    assert_eq!(got.latest, d([0, 0, 80, 10, 0, 0, 0, 0]));

    // A process whose io was never readable takes its first readable value as
    // the baseline instead of counting its whole lifetime then.
    run(
        &mut tr,
        &mut src,
        3,
        vec![IDInfo::named(2, "g1", 0).counts(io(7, 7)).io_unknown()],
    );
    let got = only(
        run(
            &mut tr,
            &mut src,
            4,
            vec![IDInfo::named(2, "g1", 0).counts(io(5000, 4000))],
        )
        .1,
    );
    assert_eq!(got.latest, Delta::default());
    let got = only(
        run(
            &mut tr,
            &mut src,
            5,
            vec![IDInfo::named(2, "g1", 0).counts(io(5001, 4002))],
        )
        .1,
    );
    assert_eq!(got.latest, d([0, 0, 1, 2, 0, 0, 0, 0]));
}

/// Bug 2, per thread: a thread whose io turns unreadable contributes no
/// increase, and resumes from its last good value.
#[test]
fn unreadable_thread_io_never_produces_a_delta() {
    let mut tr = tracker(&["g1"], with_threads());
    let mut src = ScriptedSource::default();
    let proc = |w: u64, known: bool| {
        let mut t = thread(2, "w", [0, 0, 0, w, 0, 0, 0, 0]);
        t.io_known = known;
        IDInfo::named(1, "g1", 0).with_threads(vec![thread(1, "main", [0; 8]), t])
    };
    run(&mut tr, &mut src, 0, vec![proc(100, true)]);
    let got = only(run(&mut tr, &mut src, 1, vec![proc(0, false)]).1);
    assert_eq!(
        sorted_threads(got.threads),
        vec![tu("main", Delta::default()), tu("w", Delta::default())]
    );
    let got = only(run(&mut tr, &mut src, 2, vec![proc(130, true)]).1);
    assert_eq!(
        sorted_threads(got.threads),
        vec![
            tu("main", Delta::default()),
            tu("w", d([0, 0, 0, 30, 0, 0, 0, 0]))
        ]
    );
}

/// Pid 7 of group g1, born 5 s after the tracker's first cycle (so its
/// whole life counts once), with counters `v` and 40/80 bytes of memory.
fn born_after_start(v: [u64; 8]) -> IDInfo {
    IDInfo::named(7, "g1", 5)
        .started_at(cycle_time(0) + Duration::from_secs(5))
        .counts(c(v))
        .memory(mem(40, 80))
        .num_threads(1)
}

/// Bug 3: a tracked process born after the tracker started counts its whole
/// lifetime once, on first sight; a read failure in a later cycle keeps its
/// record (an update with zero increase and its last gauges, plus one read
/// error), and when it reads again only the new increase counts.
#[test]
fn transient_read_failure_never_counts_lifetime_twice() {
    let mut tr = tracker(&["g1"], TrackerOptions::default());
    let mut src = ScriptedSource::default();
    let proc = born_after_start;

    run(&mut tr, &mut src, 0, vec![]);
    let (errs, got) = run(
        &mut tr,
        &mut src,
        1,
        vec![proc([10, 5, 100, 50, 2, 30, 7, 3])],
    );
    assert_eq!(errs, CollectErrors::default());
    let first = only(got);
    assert_eq!(first.latest, d([10, 5, 100, 50, 2, 30, 7, 3]));

    let (errs, got) = run(
        &mut tr,
        &mut src,
        2,
        vec![proc([11, 5, 100, 50, 2, 30, 7, 3]).metrics_fail(ScriptedFailure::Read)],
    );
    assert_eq!(
        errs,
        CollectErrors {
            read: 1,
            partial: 0
        }
    );
    let stale = only(got);
    assert_eq!(stale.latest, Delta::default());
    assert_eq!(stale.memory, mem(40, 80));
    assert_eq!(tr.group_of(7), Some("g1"));

    let (errs, got) = run(
        &mut tr,
        &mut src,
        3,
        vec![proc([12, 6, 110, 50, 2, 31, 8, 3])],
    );
    assert_eq!(errs, CollectErrors::default());
    assert_eq!(only(got).latest, d([2, 1, 10, 0, 0, 1, 1, 0]));
}

/// Bug 3, identity: a known process whose `stat` cannot be read for a
/// reason other than its exit keeps its place and reports its last values
/// with no increase; read again, it is not new, so a process born after the
/// agent does not have its whole life counted twice.
#[test]
fn failed_identity_read_keeps_the_process() {
    let mut tr = tracker(&["g1"], TrackerOptions::default());
    let mut src = ScriptedSource::default();
    let proc = born_after_start;

    run(&mut tr, &mut src, 0, vec![]);
    let got = only(run(&mut tr, &mut src, 1, vec![proc([10, 0, 0, 0, 0, 0, 0, 0])]).1);
    assert_eq!(got.latest, d([10, 0, 0, 0, 0, 0, 0, 0]));

    let (errs, got) = run(
        &mut tr,
        &mut src,
        2,
        vec![proc([11, 0, 0, 0, 0, 0, 0, 0]).id_fail(ScriptedFailure::Read)],
    );
    assert_eq!(errs.read, 1);
    let stale = only(got);
    assert_eq!(stale.latest, Delta::default());
    assert_eq!(stale.memory, mem(40, 80));
    assert_eq!(tr.stats().tracked, 1);

    let got = only(run(&mut tr, &mut src, 3, vec![proc([12, 0, 0, 0, 0, 0, 0, 0])]).1);
    assert_eq!(got.latest, d([2, 0, 0, 0, 0, 0, 0, 0]));
}

/// Bug 3, first sighting: a new process whose first metrics read fails is
/// remembered as tracked without a baseline; its first good read then counts
/// its lifetime, once.
#[test]
fn failed_first_read_counts_lifetime_once() {
    let mut tr = tracker(&["g1"], TrackerOptions::default());
    let mut src = ScriptedSource::default();
    let born = cycle_time(0) + Duration::from_secs(1);
    let proc = |v: [u64; 8]| IDInfo::named(7, "g1", 1).started_at(born).counts(c(v));

    run(&mut tr, &mut src, 0, vec![]);
    let (errs, got) = run(
        &mut tr,
        &mut src,
        1,
        vec![proc([3, 0, 0, 0, 0, 0, 0, 0]).metrics_fail(ScriptedFailure::Read)],
    );
    assert_eq!(errs.read, 1);
    assert!(got.is_empty());
    assert_eq!(tr.stats().tracked, 1);

    let got = only(run(&mut tr, &mut src, 2, vec![proc([4, 0, 0, 0, 0, 0, 0, 0])]).1);
    assert_eq!(got.latest, d([4, 0, 0, 0, 0, 0, 0, 0]));
    let got = only(run(&mut tr, &mut src, 3, vec![proc([5, 0, 0, 0, 0, 0, 0, 0])]).1);
    assert_eq!(got.latest, d([1, 0, 0, 0, 0, 0, 0, 0]));
    // It was named once: the failures did not make it new again.
    assert_eq!(
        src.reads_of(7)
            .iter()
            .filter(|what| **what == "static")
            .count(),
        1
    );
}

/// Bug 4: a process that exits while being read is churn, not an error,
/// whichever read loses the race.
#[test]
fn vanishing_mid_read_is_not_an_error() {
    let mut tr = tracker(&["g1"], with_threads());
    let mut src = ScriptedSource::default();

    run(&mut tr, &mut src, 0, vec![IDInfo::named(1, "g1", 0)]);
    let (errs, got) = run(
        &mut tr,
        &mut src,
        1,
        vec![
            // Known and tracked: gone before its metrics.
            IDInfo::named(1, "g1", 0).metrics_fail(ScriptedFailure::Gone),
            // New and wanted: gone before its metrics.
            IDInfo::named(2, "g1", 0).metrics_fail(ScriptedFailure::Gone),
            // Gone before its stat, or its status.
            IDInfo::named(3, "g1", 0).id_fail(ScriptedFailure::Gone),
            IDInfo::named(4, "g1", 0).static_fail(ScriptedFailure::Gone),
            // Gone before its task/ listing: still reported.
            IDInfo::named(5, "g1", 0).threads_fail(ScriptedFailure::Gone),
        ],
    );
    assert_eq!(errs, CollectErrors::default());
    assert_eq!(got.len(), 1, "only pid 5 was read in full: {got:?}");
    assert_eq!(tr.group_of(2), None, "a vanished new process is not kept");

    // Next cycle none of them is listed: everything is forgotten.
    let (errs, got) = run(&mut tr, &mut src, 2, vec![]);
    assert_eq!(errs, CollectErrors::default());
    assert!(got.is_empty());
    assert_eq!(tr.stats(), TrackerStats::default());

    // Real read errors, by contrast, are counted.
    let (errs, _) = run(
        &mut tr,
        &mut src,
        3,
        vec![
            IDInfo::named(3, "g1", 0).id_fail(ScriptedFailure::Read),
            IDInfo::named(4, "g1", 0).static_fail(ScriptedFailure::Read),
        ],
    );
    assert_eq!(errs.read, 2);
}

/// Bugs 6 and 7: with children off, an unmatched process is remembered as
/// ignored; it is named from its cheap data only (no metrics), and later
/// cycles read nothing but its identity.
/// An ignored process is never read for metrics or threads; only its
/// naming attributes are read again, in its first five cycles and then
/// once in 64 (to catch an `exec`), its identity alone otherwise.
#[test]
fn children_off_remembers_unmatched_and_never_reads_its_metrics() {
    for children in [false, true] {
        let opts = TrackerOptions {
            children,
            threads: true,
            ..TrackerOptions::default()
        };
        let mut tr = tracker(&["g1"], opts);
        let mut src = ScriptedSource::default();
        let other = || IDInfo::named(9, "other", 0).with_threads(vec![thread(9, "o", [0; 8])]);

        run(
            &mut tr,
            &mut src,
            0,
            vec![IDInfo::named(1, "g1", 0), other()],
        );
        assert_eq!(src.reads_of(9), vec!["id", "static"], "children={children}");
        assert_eq!(
            src.reads_of(1),
            vec!["id", "static", "metrics", "threads"],
            "children={children}"
        );
        src.clear_reads();

        // Young (cycles 2 to 5): named again each cycle.
        for n in 1..5 {
            run(
                &mut tr,
                &mut src,
                n,
                vec![IDInfo::named(1, "g1", 0), other()],
            );
        }
        assert_eq!(
            src.reads_of(9),
            ["id", "static"].repeat(4),
            "children={children}"
        );
        src.clear_reads();
        // Older (cycles 6 to 8, outside its slice of the rotation, 9):
        // its identity only.
        for n in 5..8 {
            run(
                &mut tr,
                &mut src,
                n,
                vec![IDInfo::named(1, "g1", 0), other()],
            );
        }
        assert_eq!(
            src.reads_of(9),
            vec!["id", "id", "id"],
            "children={children}"
        );
        assert_eq!(
            tr.stats(),
            TrackerStats {
                tracked: 1,
                ignored: 1,
                pids: 2,
                threads: 0,
            }
        );
        assert_eq!(
            tr.membership(9),
            Some(Membership::Ignored { id: other().id })
        );
    }
}

/// Bug 5: with thread detail off, `task/` is never read, and the update
/// carries no threads (states and wchan are the process's own).
#[test]
fn threads_off_never_reads_tasks() {
    let mut tr = tracker(&["g1"], TrackerOptions::default());
    let mut src = ScriptedSource::default();
    let p = || {
        IDInfo::named(1, "g1", 0)
            .states(States::from_letter('S'))
            .wchan("do_select")
            .num_threads(2)
            .with_threads(vec![thread(1, "main", [0; 8]), thread(2, "worker", [0; 8])])
    };
    for n in 0..3 {
        let got = only(run(&mut tr, &mut src, n, vec![p()]).1);
        assert!(got.threads.is_empty());
        assert_eq!(got.states, States::from_letter('S'));
        assert_eq!(got.wchans, BTreeMap::from([("do_select".to_string(), 1)]));
        assert_eq!(got.num_threads, 2);
    }
    assert!(
        !src.reads().iter().any(|(_, what)| *what == "threads"),
        "{:?}",
        src.reads()
    );
    assert_eq!(tr.stats().threads, 0);
}

/// Bug 10: with thread detail, states and wchans count each thread once (the
/// main thread is not counted again for the process); without it, the
/// process's own state and wchan count once.
#[test]
fn states_and_wchans_count_each_thread_once() {
    let with_threads = TrackerOptions {
        threads: true,
        ..TrackerOptions::default()
    };
    let p = || {
        let main = thread(1, "main", [0; 8]);
        let mut w1 = thread(2, "w", [0; 8]);
        let mut w2 = thread(3, "w", [0; 8]);
        let main = Thread {
            states: States::from_letter('R'),
            ..main
        };
        w1.states = States::from_letter('S');
        w1.wchan = "futex_wait_queue".to_string();
        w2.states = States::from_letter('S');
        w2.wchan = "futex_wait_queue".to_string();
        IDInfo::named(1, "g1", 0)
            .states(States::from_letter('R'))
            .num_threads(3)
            .with_threads(vec![main, w1, w2])
    };

    let mut tr = tracker(&["g1"], with_threads);
    let mut src = ScriptedSource::default();
    let got = only(run(&mut tr, &mut src, 0, vec![p()]).1);
    assert_eq!(
        got.states,
        states(|s| {
            s.running = 1;
            s.sleeping = 2;
        })
    );
    assert_eq!(got.states.total(), got.num_threads);
    assert_eq!(
        got.wchans,
        BTreeMap::from([("futex_wait_queue".to_string(), 2)])
    );

    // A process waiting itself, with thread detail: its wchan is the main
    // thread's, counted once through the thread.
    let mut waiting = p().wchan("do_select");
    waiting.threads[0].wchan = "do_select".to_string();
    let mut tr = tracker(&["g1"], with_threads);
    let got = only(run(&mut tr, &mut src, 0, vec![waiting.clone()]).1);
    assert_eq!(
        got.wchans,
        BTreeMap::from([
            ("do_select".to_string(), 1),
            ("futex_wait_queue".to_string(), 2)
        ])
    );

    let mut tr = tracker(&["g1"], TrackerOptions::default());
    let got = only(run(&mut tr, &mut src, 0, vec![waiting]).1);
    assert_eq!(got.states, States::from_letter('R'));
    assert_eq!(got.wchans, BTreeMap::from([("do_select".to_string(), 1)]));
}

/// Bug 8: ignored processes (and their pid index entries) are forgotten when
/// they exit, as tracked ones are.
#[test]
fn ignored_processes_are_forgotten_when_they_exit() {
    let mut tr = tracker(&["g1"], TrackerOptions::default());
    let mut src = ScriptedSource::default();
    let ignored: Vec<IDInfo> = (10..20).map(|pid| IDInfo::named(pid, "other", 0)).collect();
    let mut all = ignored.clone();
    all.push(IDInfo::named(1, "g1", 0));

    run(&mut tr, &mut src, 0, all);
    assert_eq!(
        tr.stats(),
        TrackerStats {
            tracked: 1,
            ignored: 10,
            pids: 11,
            threads: 0,
        }
    );
    run(&mut tr, &mut src, 1, ignored[..3].to_vec());
    assert_eq!(
        tr.stats(),
        TrackerStats {
            tracked: 0,
            ignored: 3,
            pids: 3,
            threads: 0,
        }
    );
    assert_eq!(tr.membership(15), None);
    run(&mut tr, &mut src, 2, vec![]);
    assert_eq!(tr.stats(), TrackerStats::default());
}

/// A pid that held an ignored process is reused by a process the namer
/// wants: the new identity is named afresh and tracked.
#[test]
fn pid_reuse_of_an_ignored_pid_by_a_matching_process() {
    let mut tr = tracker(&["g1"], TrackerOptions::default());
    let mut src = ScriptedSource::default();

    run(&mut tr, &mut src, 0, vec![IDInfo::named(5, "other", 1)]);
    assert!(matches!(tr.membership(5), Some(Membership::Ignored { .. })));

    // Same pid, later start: a different process, listed in the very next
    // cycle (the old one was never seen to exit).
    let (_, got) = run(&mut tr, &mut src, 1, vec![IDInfo::named(5, "g1", 2)]);
    assert_eq!(got, vec![upd("g1", 2)]);
    assert_eq!(
        tr.membership(5),
        Some(Membership::Tracked {
            id: ID {
                pid: 5,
                start_time_ticks: 2
            },
            group: "g1",
            reason: MatchReason::Namer,
            history: &[],
        })
    );
    assert_eq!(
        tr.stats(),
        TrackerStats {
            tracked: 1,
            ignored: 0,
            pids: 1,
            threads: 0,
        }
    );

    // And back: a tracked pid reused by an unwanted process.
    let (_, got) = run(&mut tr, &mut src, 2, vec![IDInfo::named(5, "other", 3)]);
    assert!(got.is_empty());
    assert_eq!(tr.stats().tracked, 0);
    assert_eq!(tr.stats().ignored, 1);
}

/// Soft errors count at most once per tracked process and cycle, and never
/// for processes that are not tracked (process-exporter counted them for
/// every process not yet ignored).
#[test]
fn partial_errors_only_for_tracked_processes_once_each() {
    let mut tr = tracker(&["g1"], with_threads());
    let mut src = ScriptedSource::default();
    let procs = || {
        vec![
            IDInfo::named(1, "g1", 0)
                .soft_errors(3)
                .threads_fail(ScriptedFailure::Read),
            IDInfo::named(2, "g1", 0).soft_errors(1),
            IDInfo::named(3, "other", 0)
                .soft_errors(2)
                .threads_fail(ScriptedFailure::Read),
        ]
    };
    for n in 0..2 {
        let (errs, got) = run(&mut tr, &mut src, n, procs());
        assert_eq!(
            errs,
            CollectErrors {
                read: 0,
                partial: 2
            }
        );
        assert_eq!(got.len(), 2);
    }
}

/// A failed `task/` listing keeps the per-thread baselines: the next good
/// listing counts the whole interval once, and the failed cycle adds nothing.
#[test]
fn failed_thread_listing_keeps_thread_baselines() {
    let mut tr = tracker(&["g1"], with_threads());
    let mut src = ScriptedSource::default();
    let p = |ctx: u64| {
        IDInfo::named(1, "g1", 0)
            .counts(c([0, 0, 0, 0, 0, 0, ctx, 0]))
            .with_threads(vec![
                thread(1, "main", [0, 0, 0, 0, 0, 0, ctx, 0]),
                thread(2, "w", [0, 0, 0, 0, 0, 0, 2 * ctx, 0]),
            ])
    };
    run(&mut tr, &mut src, 0, vec![p(10)]);
    let (errs, got) = run(
        &mut tr,
        &mut src,
        1,
        vec![p(20).threads_fail(ScriptedFailure::Read)],
    );
    assert_eq!(errs.partial, 1);
    let got = only(got);
    assert_eq!(got.latest.ctx_switch_voluntary, 0);
    assert_eq!(
        sorted_threads(got.threads),
        vec![tu("main", Delta::default()), tu("w", Delta::default())]
    );
    let got = only(run(&mut tr, &mut src, 2, vec![p(30)]).1);
    assert_eq!(got.latest.ctx_switch_voluntary, 20 + 40);
}

/// A process born after the tracker started counts its whole consumption at
/// first sight, its threads' included; an older one counts nothing then.
#[test]
fn newborn_process_counts_its_whole_lifetime() {
    let mut tr = tracker(&["g1"], with_threads());
    let mut src = ScriptedSource::default();
    run(&mut tr, &mut src, 0, vec![]);

    let newborn = IDInfo::named(2, "g1", 9)
        .started_at(cycle_time(0) + Duration::from_secs(1))
        .counts(c([3, 1, 10, 20, 1, 50, 9, 9]))
        .with_threads(vec![
            thread(2, "main", [2, 1, 10, 0, 1, 40, 4, 1]),
            thread(3, "w", [1, 0, 0, 20, 0, 10, 3, 2]),
        ]);
    let old = IDInfo::named(3, "g1", 9).counts(c([3, 1, 10, 20, 1, 50, 9, 9]));
    let got = by_group(run(&mut tr, &mut src, 1, vec![newborn, old]).1);
    let mut got = got.into_iter();
    let newborn = got.next().unwrap();
    let old = got.next().unwrap();
    // Context switches come from the threads: 4 + 3 and 1 + 2.
    assert_eq!(newborn.latest, d([3, 1, 10, 20, 1, 50, 7, 3]));
    assert_eq!(
        sorted_threads(newborn.threads),
        vec![
            tu("main", d([2, 1, 10, 0, 1, 40, 4, 1])),
            tu("w", d([1, 0, 0, 20, 0, 10, 3, 2]))
        ]
    );
    assert_eq!(old.latest, Delta::default());
}

/// `recheck` without a time limit names an unmatched process again every
/// cycle, so one that execs into a wanted program is picked up.
#[test]
fn recheck_renames_unmatched_processes_each_cycle() {
    let opts = TrackerOptions {
        recheck: true,
        ..TrackerOptions::default()
    };
    let mut tr = tracker(&["g1"], opts);
    let mut src = ScriptedSource::default();

    run(&mut tr, &mut src, 0, vec![IDInfo::named(4, "sh", 0)]);
    run(&mut tr, &mut src, 1, vec![IDInfo::named(4, "sh", 0)]);
    assert_eq!(src.reads_of(4), vec!["id", "static", "id", "static"]);
    assert_eq!(tr.stats().ignored, 0);
    assert_eq!(tr.stats().pids, 0, "nothing remembered about it");

    // Same identity, new comm after exec.
    let (_, got) = run(&mut tr, &mut src, 2, vec![IDInfo::named(4, "g1", 0)]);
    assert_eq!(got, vec![upd("g1", 0)]);
}

/// With a time limit, an unmatched process is named again only while it is
/// younger than the limit; then it is remembered as ignored.
#[test]
fn recheck_with_time_limit_stops_at_the_limit() {
    let opts = TrackerOptions {
        recheck: true,
        recheck_time_limit: Duration::from_secs(20),
        ..TrackerOptions::default()
    };
    let mut tr = tracker(&["g1"], opts);
    let mut src = ScriptedSource::default();
    let young = || IDInfo::named(4, "sh", 7).started_at(cycle_time(0));

    run(&mut tr, &mut src, 0, vec![young()]); // age 0 s
    run(&mut tr, &mut src, 1, vec![young()]); // age 15 s
    assert_eq!(tr.stats().ignored, 0);
    run(&mut tr, &mut src, 2, vec![young()]); // age 30 s: remembered
    assert_eq!(tr.stats().ignored, 1);
    run(&mut tr, &mut src, 3, vec![young()]);
    assert_eq!(
        src.reads_of(4),
        vec!["id", "static", "id", "static", "id", "static", "id"]
    );
}

/// Children of new parents are decided after the whole listing, whatever
/// order it comes in; a chain inherits through parents new in the same cycle;
/// the reason names the direct parent.
#[test]
fn children_inherit_through_new_parents_in_any_order() {
    let opts = TrackerOptions {
        children: true,
        ..TrackerOptions::default()
    };
    let mut tr = tracker(&["svc"], opts);
    let mut src = ScriptedSource::default();
    // Listed child first, then its parent, then the tracked grandparent.
    let (_, got) = run(
        &mut tr,
        &mut src,
        0,
        vec![
            IDInfo::named(30, "sh", 3).parent(20),
            IDInfo::named(20, "worker", 2).parent(10),
            IDInfo::named(10, "svc", 1).parent(1),
            IDInfo::named(1, "init", 0).parent(0),
            IDInfo::named(40, "other", 4).parent(1),
        ],
    );
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|u| u.group_name == "svc"));
    assert_eq!(
        tr.membership(30),
        Some(Membership::Tracked {
            id: ID {
                pid: 30,
                start_time_ticks: 3
            },
            group: "svc",
            reason: MatchReason::Parent(ID {
                pid: 20,
                start_time_ticks: 2
            }),
            history: &[],
        })
    );
    assert!(matches!(
        tr.membership(10),
        Some(Membership::Tracked {
            reason: MatchReason::Namer,
            ..
        })
    ));
    assert_eq!(tr.group_of(40), None);
    assert!(matches!(tr.membership(1), Some(Membership::Ignored { .. })));

    // A child appearing later under a tracked parent; one under an ignored
    // one; one whose parent is unknown.
    let (_, got) = run(
        &mut tr,
        &mut src,
        1,
        vec![
            IDInfo::named(30, "sh", 3).parent(20),
            IDInfo::named(20, "worker", 2).parent(10),
            IDInfo::named(10, "svc", 1).parent(1),
            IDInfo::named(1, "init", 0).parent(0),
            IDInfo::named(40, "other", 4).parent(1),
            IDInfo::named(31, "cat", 5).parent(30),
            IDInfo::named(41, "cat", 5).parent(40),
            IDInfo::named(51, "cat", 5).parent(999),
        ],
    );
    assert_eq!(got.len(), 4);
    assert_eq!(tr.group_of(31), Some("svc"));
    assert_eq!(tr.group_of(41), None);
    assert_eq!(tr.group_of(51), None);
    assert_eq!(tr.stats().ignored, 4);
}

/// Bogus parent data (a loop of new processes, a process its own parent)
/// ends the walk instead of hanging.
#[test]
fn parent_loops_are_ignored() {
    let opts = TrackerOptions {
        children: true,
        ..TrackerOptions::default()
    };
    let mut tr = tracker(&["svc"], opts);
    let mut src = ScriptedSource::default();
    let (_, got) = run(
        &mut tr,
        &mut src,
        0,
        vec![
            IDInfo::named(2, "a", 0).parent(3),
            IDInfo::named(3, "b", 0).parent(2),
            IDInfo::named(4, "c", 0).parent(4),
        ],
    );
    assert!(got.is_empty());
    assert_eq!(tr.stats().ignored, 3);
}

struct BrokenSource;

impl Source for BrokenSource {
    type Proc = IDInfo;
    fn all_procs(&mut self) -> Result<Vec<IDInfo>, SourceError> {
        Err(SourceError::List {
            path: "/nonexistent".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })
    }
}

/// A failed listing is an error of the cycle and changes no state: known
/// processes are not swept as if they had exited.
#[test]
fn failed_listing_changes_nothing() {
    let mut tr = tracker(&["g1"], TrackerOptions::default());
    let mut src = ScriptedSource::default();
    run(
        &mut tr,
        &mut src,
        0,
        vec![IDInfo::named(1, "g1", 0).counts(c([1, 0, 0, 0, 0, 0, 0, 0]))],
    );
    let before = tr.stats();
    assert!(tr.update(&mut BrokenSource, cycle_time(1)).is_err());
    assert_eq!(tr.stats(), before);
    let got = only(
        run(
            &mut tr,
            &mut src,
            2,
            vec![IDInfo::named(1, "g1", 0).counts(c([3, 0, 0, 0, 0, 0, 0, 0]))],
        )
        .1,
    );
    assert_eq!(got.latest, d([2, 0, 0, 0, 0, 0, 0, 0]));
}

/// The agent runs cycles off the async threads: the tracker and the grouper
/// must move between threads.
#[test]
fn tracker_and_grouper_are_send() {
    fn send<T: Send>() {}
    send::<Tracker>();
    send::<procgroups::proc::Grouper>();
}
