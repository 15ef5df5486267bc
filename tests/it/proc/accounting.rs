//! Exit accounting and regrouping in the tracker, on scripted processes:
//! the reaped-children totals (unprivileged mode), exit records closing
//! accounts (privileged mode), and a program change after `exec`. Every
//! scenario checks the group totals, so a figure counted twice or lost
//! shows.

use procgroups::proc::{
    Counts, Grouper, IDInfo, MatchReason, Membership, ProcExit, ScriptedSource, TrackerOptions,
};

use super::scenario::{T0, at, cycle_time, grouper, p};

fn cpu(secs: u64) -> Counts {
    Counts {
        cpu_user_time: secs as f64,
        ..Counts::default()
    }
}

fn children_mode() -> TrackerOptions {
    TrackerOptions {
        children: true,
        children_accounting: true,
        ..TrackerOptions::default()
    }
}

/// With exit records the children totals reconcile them (the agent's
/// setting in both modes).
fn exit_mode() -> TrackerOptions {
    children_mode()
}

/// A process born `secs` after the first cycle (so counted whole).
fn young(pid: i32, name: &str, secs: u64) -> IDInfo {
    IDInfo::named(pid, name, T0 + secs).started_at(at(T0 + secs))
}

/// An exit record of `pid` started at tick `start`, with these totals.
fn exit(pid: i32, name: &str, start: u64, parent: i32, totals: Counts) -> ProcExit {
    ProcExit {
        pid,
        parent_pid: parent,
        name: name.into(),
        uid: 1000,
        start_ticks: (start.saturating_sub(1), start + 1),
        start_time: at(start),
        totals,
    }
}

/// Runs cycle `n` over `procs`; the CPU (user) total of `group`.
fn run(gr: &mut Grouper, n: u64, procs: Vec<IDInfo>, group: &str) -> f64 {
    let mut src = ScriptedSource::new(vec![procs]);
    let (_, groups) = gr.update(&mut src, cycle_time(n)).unwrap();
    groups.get(group).map_or(0.0, |g| g.counts.cpu_user_time)
}

#[test]
fn reaped_children_count_once_minus_what_tracked_children_counted() {
    let mut gr = grouper(&["sh"], children_mode(), false);
    // The shell started before the agent: its earlier children are a
    // baseline, not counted.
    assert_eq!(
        run(&mut gr, 0, vec![p(1, "sh").children(cpu(10))], "sh"),
        0.0
    );
    // A child, tracked through its parent, born after the start: all of
    // its 2 s count.
    let child = || young(2, "worker", 5).parent(1);
    let cycle1 = vec![p(1, "sh").children(cpu(10)), child().counts(cpu(2))];
    assert_eq!(run(&mut gr, 1, cycle1, "sh"), 2.0);
    // The child exited (3 s in all) and was reaped, as was an untracked
    // one of 2 s: cutime grew by 5, of which 2 were already counted.
    assert_eq!(
        run(&mut gr, 2, vec![p(1, "sh").children(cpu(15))], "sh"),
        5.0
    );
    // Nothing new: nothing more.
    assert_eq!(
        run(&mut gr, 3, vec![p(1, "sh").children(cpu(15))], "sh"),
        5.0
    );
}

#[test]
fn a_child_gone_before_its_parent_shows_the_growth_is_not_counted_twice() {
    let mut gr = grouper(&["sh"], children_mode(), false);
    run(&mut gr, 0, vec![p(1, "sh")], "sh");
    let child = young(2, "worker", 5).parent(1).counts(cpu(4));
    assert_eq!(run(&mut gr, 1, vec![p(1, "sh"), child], "sh"), 4.0);
    // The child left /proc, but the parent read before the reap: no growth.
    assert_eq!(run(&mut gr, 2, vec![p(1, "sh")], "sh"), 4.0);
    // The reap shows a cycle later: 4 owed, 1 new.
    assert_eq!(
        run(&mut gr, 3, vec![p(1, "sh").children(cpu(5))], "sh"),
        5.0
    );
    // The owed part is used up: later growth counts whole.
    assert_eq!(
        run(&mut gr, 4, vec![p(1, "sh").children(cpu(7))], "sh"),
        7.0
    );
}

#[test]
fn a_new_reaper_counts_its_children_totals_whole_and_faults_too() {
    let mut gr = grouper(&["make"], children_mode(), false);
    run(&mut gr, 0, vec![], "make");
    let totals = Counts {
        cpu_system_time: 1.0,
        minor_page_faults: 300,
        major_page_faults: 2,
        ..cpu(3)
    };
    let mut src = ScriptedSource::new(vec![vec![young(7, "make", 3).children(totals)]]);
    let (_, groups) = gr.update(&mut src, cycle_time(1)).unwrap();
    assert_eq!(groups["make"].counts, totals);
}

#[test]
fn an_unnamed_child_of_a_tracked_parent_counts_once_from_the_parents_totals() {
    let mut gr = grouper(&["sh"], exit_mode(), false);
    run(&mut gr, 0, vec![p(1, "sh")], "sh");
    // The record's sampled CPU (3 s) is short of the exact 3.5 s the
    // parent's cutime shows; its I/O is nowhere else.
    let record = Counts {
        read_bytes: 100,
        ..cpu(3)
    };
    gr.tracker_mut()
        .queue_exits([exit(60, "awk", T0 + 2, 1, record)]);
    let exact = Counts {
        cpu_user_time: 3.5,
        ..Counts::default()
    };
    let mut src = ScriptedSource::new(vec![vec![p(1, "sh").children(exact)]]);
    let (_, groups) = gr.update(&mut src, cycle_time(1)).unwrap();
    assert_eq!(groups["sh"].counts.cpu_user_time, 3.5);
    assert_eq!(groups["sh"].counts.read_bytes, 100);
    assert_eq!(gr.tracker().unattributed_exits(), Counts::default());
}

#[test]
fn a_child_a_rule_names_is_owed_to_its_parents_children_totals() {
    let mut gr = grouper(&["sh", "web"], exit_mode(), false);
    run(&mut gr, 0, vec![p(1, "sh")], "sh");
    gr.tracker_mut()
        .queue_exits([exit(61, "web", T0 + 2, 1, cpu(2))]);
    let mut src = ScriptedSource::new(vec![vec![p(1, "sh").children(cpu(2))]]);
    let (_, groups) = gr.update(&mut src, cycle_time(1)).unwrap();
    assert_eq!(groups["web"].counts.cpu_user_time, 2.0);
    assert_eq!(groups["sh"].counts.cpu_user_time, 0.0);
}

#[test]
fn what_records_counted_below_an_unseen_process_is_owed_by_its_reaper() {
    let mut gr = grouper(&["sh", "web"], exit_mode(), false);
    run(&mut gr, 0, vec![p(1, "sh")], "sh");
    // sh -> make (never sampled, no rule) -> web (a rule): web's 2 s are
    // in make's cutime, and so in sh's when sh reaps make.
    gr.tracker_mut().queue_exits([
        exit(62, "web", T0 + 3, 70, cpu(2)),
        exit(70, "make", T0 + 2, 1, cpu(1)),
    ]);
    let mut src = ScriptedSource::new(vec![vec![p(1, "sh").children(cpu(3))]]);
    let (_, groups) = gr.update(&mut src, cycle_time(1)).unwrap();
    assert_eq!(groups["web"].counts.cpu_user_time, 2.0);
    assert_eq!(groups["sh"].counts.cpu_user_time, 1.0);
}

#[test]
fn an_exit_record_closes_a_tracked_process_with_its_last_interval() {
    let mut gr = grouper(&["web"], exit_mode(), false);
    run(&mut gr, 0, vec![p(3, "web").counts(cpu(1))], "web");
    assert_eq!(
        run(&mut gr, 1, vec![p(3, "web").counts(cpu(3))], "web"),
        2.0
    );
    // It exited with 4 s in all: the 1 s since the last sample counts.
    gr.tracker_mut().queue_exits([exit(3, "web", 0, 1, cpu(4))]);
    assert_eq!(run(&mut gr, 2, vec![], "web"), 3.0);
    assert_eq!(run(&mut gr, 3, vec![], "web"), 3.0);
    assert_eq!(gr.tracker().unattributed_exits(), Counts::default());
}

#[test]
fn a_zombie_sampled_in_the_cycle_of_its_exit_record_is_not_counted_twice() {
    let mut gr = grouper(&["web"], exit_mode(), false);
    run(&mut gr, 0, vec![p(3, "web").counts(cpu(1))], "web");
    gr.tracker_mut().queue_exits([exit(3, "web", 0, 1, cpu(4))]);
    // Still listed (not reaped yet), its stat showing the final totals.
    let zombie = || p(3, "web").counts(cpu(4));
    assert_eq!(run(&mut gr, 1, vec![zombie()], "web"), 3.0);
    assert_eq!(run(&mut gr, 2, vec![zombie()], "web"), 3.0);
}

#[test]
fn a_record_arriving_after_its_process_left_proc_counts_only_the_rest() {
    let mut gr = grouper(&["web"], exit_mode(), false);
    run(&mut gr, 0, vec![p(3, "web").counts(cpu(1))], "web");
    assert_eq!(
        run(&mut gr, 1, vec![p(3, "web").counts(cpu(3))], "web"),
        2.0
    );
    assert_eq!(run(&mut gr, 2, vec![], "web"), 2.0);
    gr.tracker_mut().queue_exits([exit(3, "web", 0, 1, cpu(4))]);
    assert_eq!(run(&mut gr, 3, vec![], "web"), 3.0);
    // The same record again (it cannot happen, but must not count twice).
    gr.tracker_mut().queue_exits([exit(3, "web", 0, 1, cpu(4))]);
    assert_eq!(run(&mut gr, 4, vec![], "web"), 3.0);
}

#[test]
fn exits_never_sampled_are_named_by_rules_by_parent_or_left_unattributed() {
    let mut gr = grouper(&["web", "sh"], exit_mode(), false);
    run(&mut gr, 0, vec![p(1, "sh")], "sh");
    let born = T0 + 3;
    gr.tracker_mut().queue_exits([
        // Its comm matches a rule.
        exit(50, "web", born, 999, cpu(2)),
        // No rule: its parent is tracked, whose children totals show it.
        exit(51, "awk", born, 1, cpu(3)),
        // No rule, an unknown parent: the remainder.
        exit(52, "cron", born, 777, cpu(5)),
        // Started before the first cycle and never seen: not counted.
        exit(53, "web", T0 - 100, 999, cpu(11)),
    ]);
    let mut src = ScriptedSource::new(vec![vec![p(1, "sh").children(cpu(3))]]);
    let (_, groups) = gr.update(&mut src, cycle_time(1)).unwrap();
    assert_eq!(groups["web"].counts.cpu_user_time, 2.0);
    assert_eq!(groups["web"].procs, 0);
    assert_eq!(groups["sh"].counts.cpu_user_time, 3.0);
    assert_eq!(gr.tracker().unattributed_exits(), cpu(5));
}

#[test]
fn a_record_of_an_earlier_holder_of_the_pid_does_not_close_the_new_one() {
    let mut gr = grouper(&["web", "db"], exit_mode(), false);
    run(&mut gr, 0, vec![p(3, "db").counts(cpu(1))], "db");
    // A record for pid 3 whose start is not the tracked process's.
    gr.tracker_mut()
        .queue_exits([exit(3, "web", T0 + 2, 1, cpu(6))]);
    let mut src = ScriptedSource::new(vec![vec![p(3, "db").counts(cpu(2))]]);
    let (_, groups) = gr.update(&mut src, cycle_time(1)).unwrap();
    assert_eq!(groups["db"].counts.cpu_user_time, 1.0);
    assert_eq!(groups["web"].counts.cpu_user_time, 6.0);
}

#[test]
fn after_exec_the_old_group_keeps_its_count_and_the_new_one_gets_the_rest() {
    let mut gr = grouper(&["sh", "java"], TrackerOptions::default(), false);
    run(&mut gr, 0, vec![p(4, "sh").counts(cpu(1))], "sh");
    assert_eq!(run(&mut gr, 1, vec![p(4, "sh").counts(cpu(2))], "sh"), 1.0);
    // Same pid and start, new program: this cycle's increase is the old
    // program's (it ran up to the exec), so it goes to the old group.
    let execd = || p(4, "sh").renamed("java");
    let mut src = ScriptedSource::new(vec![vec![execd().counts(cpu(5))]]);
    let (_, groups) = gr.update(&mut src, cycle_time(2)).unwrap();
    assert_eq!(groups["sh"].counts.cpu_user_time, 4.0);
    assert!(!groups.contains_key("java"));
    match gr.tracker().membership(4) {
        Some(Membership::Tracked {
            group,
            reason,
            history,
            ..
        }) => {
            assert_eq!((group, reason), ("java", MatchReason::Namer));
            assert_eq!(history.len(), 1);
            let r = &history[0];
            assert_eq!((r.from_name.as_str(), r.to_name.as_str()), ("sh", "java"));
            assert_eq!(r.from_group, "sh");
            assert_eq!(r.to_group.as_deref(), Some("java"));
            assert_eq!(r.at, cycle_time(2));
        }
        other => panic!("not tracked: {other:?}"),
    }
    let mut src = ScriptedSource::new(vec![vec![execd().counts(cpu(9))]]);
    let (_, groups) = gr.update(&mut src, cycle_time(3)).unwrap();
    assert_eq!(groups["sh"].counts.cpu_user_time, 4.0);
    assert_eq!(groups["sh"].procs, 0);
    assert_eq!(groups["java"].counts.cpu_user_time, 4.0);
    assert_eq!(groups["java"].procs, 1);
}

#[test]
fn after_exec_into_a_program_no_rule_takes_the_process_is_ignored() {
    let mut gr = grouper(&["sh"], TrackerOptions::default(), false);
    run(&mut gr, 0, vec![p(4, "sh").counts(cpu(1))], "sh");
    let execd = || p(4, "sh").renamed("cat");
    assert_eq!(run(&mut gr, 1, vec![execd().counts(cpu(2))], "sh"), 1.0);
    assert!(matches!(
        gr.tracker().membership(4),
        Some(Membership::Ignored { .. })
    ));
    assert_eq!(run(&mut gr, 2, vec![execd().counts(cpu(8))], "sh"), 1.0);
}

#[test]
fn what_records_counted_after_a_reapers_last_read_is_owed_on_up_when_it_exits() {
    // harness -> loop -> short children that no cycle samples, each closed
    // by its exit record (named by the "loop" rule). The harness reaps loop,
    // and its children totals then hold loop's whole subtree: loop's group
    // must hold all of it, the harness's none.
    let mut gr = grouper(&["harness", "loop"], exit_mode(), false);
    run(&mut gr, 0, vec![p(1, "harness")], "harness");
    let looper = || young(2, "loop", 5).parent(1);
    run(&mut gr, 1, vec![p(1, "harness"), looper()], "loop");
    // Three children of 1 s each, reaped by loop before its read.
    gr.tracker_mut()
        .queue_exits((100..103).map(|pid| exit(pid, "loop", T0 + 6, 2, cpu(1))));
    let l2 = run(
        &mut gr,
        2,
        vec![p(1, "harness"), looper().children(cpu(3))],
        "loop",
    );
    assert_eq!(l2, 3.0);
    // Two more, reaped after loop's last read; then loop exits (no CPU of
    // its own) and the harness reaps it.
    gr.tracker_mut().queue_exits(
        (103..105)
            .map(|pid| exit(pid, "loop", T0 + 7, 2, cpu(1)))
            .chain([exit(2, "loop", T0 + 5, 1, Counts::default())]),
    );
    let mut src = ScriptedSource::new(vec![vec![p(1, "harness").children(cpu(5))]]);
    let (_, groups) = gr.update(&mut src, cycle_time(3)).unwrap();
    assert_eq!(groups["loop"].counts.cpu_user_time, 5.0);
    assert_eq!(groups["harness"].counts.cpu_user_time, 0.0);
}

#[test]
fn an_ignored_process_that_execs_into_a_program_a_rule_takes_is_tracked_from_then_on() {
    let mut gr = grouper(&["java"], TrackerOptions::default(), false);
    run(&mut gr, 0, vec![p(4, "sh").counts(cpu(1))], "java");
    assert!(matches!(
        gr.tracker().membership(4),
        Some(Membership::Ignored { .. })
    ));
    // The exec, a cycle later: named again while young, and baselined
    // (what it did as the shell is not java's work).
    let execd = || p(4, "sh").renamed("java");
    assert_eq!(run(&mut gr, 1, vec![execd().counts(cpu(3))], "java"), 0.0);
    assert_eq!(gr.tracker().group_of(4), Some("java"));
    assert_eq!(run(&mut gr, 2, vec![execd().counts(cpu(5))], "java"), 2.0);
}

#[test]
fn an_old_ignored_process_is_named_again_within_a_rotation() {
    let mut gr = grouper(&["java"], TrackerOptions::default(), false);
    // Ignored long past its young cycles.
    for n in 0..10 {
        run(&mut gr, n, vec![p(4, "sh")], "java");
    }
    let execd = || p(4, "sh").renamed("java");
    let mut found = None;
    for n in 10..10 + 64 {
        run(&mut gr, n, vec![execd()], "java");
        if gr.tracker().group_of(4) == Some("java") {
            found = Some(n);
            break;
        }
    }
    assert!(found.is_some(), "not named again within 64 cycles");
}

#[test]
fn with_recheck_an_unmatched_process_is_named_again_every_cycle_as_before() {
    let options = TrackerOptions {
        recheck: true,
        ..TrackerOptions::default()
    };
    let mut gr = grouper(&["java"], options, false);
    run(&mut gr, 0, vec![p(4, "sh")], "java");
    assert_eq!(gr.tracker().membership(4), None);
    run(&mut gr, 1, vec![p(4, "sh").renamed("java")], "java");
    assert_eq!(gr.tracker().group_of(4), Some("java"));
}

/// The sum of the CPU (user) of every group.
fn all_groups(gr: &mut Grouper, n: u64, procs: Vec<IDInfo>) -> f64 {
    let mut src = ScriptedSource::new(vec![procs]);
    let (_, groups) = gr.update(&mut src, cycle_time(n)).unwrap();
    groups.values().map(|g| g.counts.cpu_user_time).sum()
}

#[test]
fn an_orphan_is_owed_to_the_subreaper_that_adopted_and_reaped_it() {
    // shim (a subreaper) -> sh -> worker, the worker tracked through sh.
    let mut gr = grouper(&["shim", "sh"], children_mode(), false);
    all_groups(&mut gr, 0, vec![]);
    let shim = || young(10, "shim", 1);
    let sh = young(20, "sh", 2).parent(10).counts(cpu(1));
    let worker = || young(30, "worker", 3);
    let cycle1 = vec![shim(), sh, worker().parent(20).counts(cpu(2))];
    assert_eq!(all_groups(&mut gr, 1, cycle1), 3.0);
    // sh exited first and shim reaped it (1 s); the worker, adopted by
    // shim, ran 2 s more.
    let cycle2 = vec![shim().children(cpu(1)), worker().parent(10).counts(cpu(4))];
    assert_eq!(all_groups(&mut gr, 2, cycle2), 5.0);
    // The worker exited with 5 s in all and shim reaped it: only its last
    // second is new, in shim's group.
    assert_eq!(all_groups(&mut gr, 3, vec![shim().children(cpu(6))]), 6.0);
    let groups = gr
        .update(
            &mut ScriptedSource::new(vec![vec![shim().children(cpu(6))]]),
            cycle_time(4),
        )
        .unwrap()
        .1;
    assert_eq!(groups["sh"].counts.cpu_user_time, 5.0);
    assert_eq!(groups["shim"].counts.cpu_user_time, 1.0);
}

#[test]
fn an_orphan_adopted_after_its_last_reading_is_owed_to_the_parent_its_record_names() {
    let mut gr = grouper(&["shim", "sh"], exit_mode(), false);
    all_groups(&mut gr, 0, vec![]);
    let shim = || young(10, "shim", 1);
    let sh = young(20, "sh", 2).parent(10).counts(cpu(1));
    let worker = young(30, "worker", 3).parent(20).counts(cpu(2));
    assert_eq!(all_groups(&mut gr, 1, vec![shim(), sh, worker]), 3.0);
    // Between two cycles sh exited, shim adopted the worker, the worker
    // exited (5 s in all) and shim reaped both: the records say so.
    gr.tracker_mut().queue_exits([
        exit(20, "sh", T0 + 2, 10, cpu(1)),
        exit(30, "worker", T0 + 3, 10, cpu(5)),
    ]);
    assert_eq!(all_groups(&mut gr, 2, vec![shim().children(cpu(6))]), 6.0);
    assert_eq!(all_groups(&mut gr, 3, vec![shim().children(cpu(6))]), 6.0);
}

#[test]
fn a_quiet_orphan_is_owed_to_its_new_parent_read_when_the_old_one_leaves() {
    let mut gr = grouper(&["shim", "sh"], children_mode(), false);
    all_groups(&mut gr, 0, vec![]);
    let shim = || young(10, "shim", 1);
    let sh = young(20, "sh", 2).parent(10).counts(cpu(1));
    let worker = || young(30, "worker", 3).counts(cpu(2));
    assert_eq!(
        all_groups(&mut gr, 1, vec![shim(), sh, worker().parent(20)]),
        3.0
    );
    // sh exited and shim reaped it; the worker, adopted by shim, did not
    // run: its reading skipped `stat` and still names sh.
    let quiet = worker().parent(10).stale_parent(20);
    assert_eq!(
        all_groups(&mut gr, 2, vec![shim().children(cpu(1)), quiet]),
        3.0
    );
    // It then ran 3 s more, exited and shim reaped it.
    assert_eq!(all_groups(&mut gr, 3, vec![shim().children(cpu(6))]), 6.0);
}

#[test]
fn what_a_process_counted_before_an_exec_into_no_rule_is_owed_to_its_reaper() {
    // Each rule names its own process; children inherit nothing.
    let options = TrackerOptions {
        children_accounting: true,
        ..TrackerOptions::default()
    };
    let mut gr = grouper(&["make", "sh"], options, false);
    all_groups(&mut gr, 0, vec![]);
    let make = || young(10, "make", 1);
    let sh = || young(20, "sh", 2).parent(10);
    assert_eq!(
        all_groups(&mut gr, 1, vec![make(), sh().counts(cpu(2))]),
        2.0
    );
    // It execs into a program no rule takes: ignored from now on.
    let awk = sh().renamed("awk").counts(cpu(3));
    assert_eq!(all_groups(&mut gr, 2, vec![make(), awk]), 3.0);
    // It exits with 5 s in all and make reaps it: the 3 s counted in sh's
    // group are not counted again in make's.
    assert_eq!(all_groups(&mut gr, 3, vec![make().children(cpu(5))]), 5.0);
}
