//! Reconciliation of a process's tasks across listings: tasks appearing,
//! vanishing, a tid reused, counters going backwards, tasks reported
//! unchanged.

use super::*;
use crate::proc::{Counts, Thread};

fn id(tid: i32, start: u64) -> ThreadID {
    ThreadID {
        tid,
        start_time_ticks: start,
    }
}

/// A running task with `vol` voluntary switches and `user` CPU seconds.
fn task(id: ThreadID, name: &str, vol: u64, user: f64) -> TaskRead {
    let mut th = Thread::new(
        id,
        name,
        Counts {
            cpu_user_time: user,
            ctx_switch_voluntary: vol,
            ..Counts::default()
        },
    );
    th.states = States::from_letter('R');
    TaskRead::Read(th)
}

/// The update of the task named `name`.
fn latest<'a>(r: &'a Reconciled, name: &str) -> &'a Delta {
    &r.updates
        .iter()
        .find(|u| u.thread_name == name)
        .unwrap_or_else(|| panic!("no update for {name}: {:?}", r.updates))
        .latest
}

#[test]
fn a_thread_appearing_in_a_known_process_counts_from_its_first_sighting() {
    let mut names = Names::default();
    let mut threads = Threads::default();
    let r = threads.reconcile(vec![task(id(10, 1), "main", 5, 1.0)], 1, false, &mut names);
    assert_eq!(r.switches, (0, 0));
    assert_eq!(*latest(&r, "main"), Delta::default());

    let r = threads.reconcile(
        vec![
            task(id(10, 1), "main", 8, 1.5),
            task(id(11, 50), "worker", 40, 3.0),
        ],
        2,
        false,
        &mut names,
    );
    assert_eq!(threads.len(), 2);
    assert_eq!(latest(&r, "main").ctx_switch_voluntary, 3);
    assert_eq!(latest(&r, "main").cpu_user_time, 0.5);
    // Its past cannot be placed against the last cycle: nothing yet.
    assert_eq!(*latest(&r, "worker"), Delta::default());
    assert_eq!(r.switches, (3, 0));
    assert_eq!(r.states.running, 2);

    let r = threads.reconcile(
        vec![
            task(id(10, 1), "main", 8, 1.5),
            task(id(11, 50), "worker", 41, 3.0),
        ],
        3,
        false,
        &mut names,
    );
    assert_eq!(latest(&r, "worker").ctx_switch_voluntary, 1);
    assert_eq!(r.switches, (1, 0));
}

#[test]
fn a_thread_of_a_process_born_since_the_start_counts_whole() {
    let mut names = Names::default();
    let mut threads = Threads::default();
    let r = threads.reconcile(vec![task(id(20, 7), "new", 6, 0.25)], 1, true, &mut names);
    assert_eq!(latest(&r, "new").ctx_switch_voluntary, 6);
    assert_eq!(latest(&r, "new").cpu_user_time, 0.25);
    assert_eq!(r.switches, (6, 0));
}

#[test]
fn a_thread_that_vanishes_is_dropped_and_takes_nothing_away() {
    let mut names = Names::default();
    let mut threads = Threads::default();
    threads.reconcile(
        vec![
            task(id(10, 1), "main", 5, 0.0),
            task(id(11, 2), "w", 100, 0.0),
        ],
        1,
        false,
        &mut names,
    );
    assert_eq!(threads.len(), 2);
    let r = threads.reconcile(vec![task(id(10, 1), "main", 7, 0.0)], 2, false, &mut names);
    assert_eq!(threads.len(), 1);
    assert!(threads.contains(&id(10, 1)));
    assert!(!threads.contains(&id(11, 2)));
    // Only the survivor's increase: the exited task's 100 switches are not
    // subtracted.
    assert_eq!(r.switches, (2, 0));
    assert_eq!(r.updates.len(), 1);
}

#[test]
fn a_reused_tid_is_a_new_thread() {
    let mut names = Names::default();
    let mut threads = Threads::default();
    threads.reconcile(vec![task(id(10, 1), "old", 500, 9.0)], 1, false, &mut names);
    // Same tid, later start: another task, with smaller counters.
    let r = threads.reconcile(vec![task(id(10, 900), "new", 3, 0.5)], 2, false, &mut names);
    assert_eq!(threads.len(), 1);
    assert!(threads.contains(&id(10, 900)));
    assert!(!threads.contains(&id(10, 1)));
    assert_eq!(*latest(&r, "new"), Delta::default());
    assert_eq!(r.switches, (0, 0));

    let r = threads.reconcile(
        vec![task(id(10, 900), "new", 10, 0.75)],
        3,
        false,
        &mut names,
    );
    assert_eq!(latest(&r, "new").ctx_switch_voluntary, 7);
    assert_eq!(latest(&r, "new").cpu_user_time, 0.25);
}

#[test]
fn counters_going_backwards_never_give_a_negative_increase() {
    let mut names = Names::default();
    let mut threads = Threads::default();
    threads.reconcile(vec![task(id(10, 1), "main", 50, 5.0)], 1, false, &mut names);
    let r = threads.reconcile(vec![task(id(10, 1), "main", 40, 4.0)], 2, false, &mut names);
    assert_eq!(*latest(&r, "main"), Delta::default());
    assert_eq!(r.switches, (0, 0));
    // The lower reading is the new baseline.
    let r = threads.reconcile(vec![task(id(10, 1), "main", 45, 4.5)], 3, false, &mut names);
    assert_eq!(latest(&r, "main").ctx_switch_voluntary, 5);
    assert_eq!(latest(&r, "main").cpu_user_time, 0.5);
}

#[test]
fn an_unchanged_task_counts_its_last_state_and_wchan_with_no_increase() {
    let mut names = Names::default();
    let mut threads = Threads::default();
    let TaskRead::Read(mut th) = task(id(10, 1), "main", 5, 1.0) else {
        unreachable!()
    };
    th.states = States::from_letter('S');
    th.wchan = "futex_wait".into();
    threads.reconcile(vec![TaskRead::Read(th)], 1, false, &mut names);

    let r = threads.reconcile(vec![TaskRead::Unchanged(id(10, 1))], 2, false, &mut names);
    assert_eq!(threads.len(), 1);
    assert_eq!(*latest(&r, "main"), Delta::default());
    assert_eq!(r.states.sleeping, 1);
    assert_eq!(r.wchans.get("futex_wait"), Some(&1));
    assert_eq!(threads.unchanged().len(), 1);

    // Not listed at all: gone.
    threads.reconcile(vec![task(id(12, 3), "other", 0, 0.0)], 3, false, &mut names);
    assert!(!threads.contains(&id(10, 1)));
}
