//! Observing one tracked process in a cycle: its first sighting, each later
//! reading folded into its state (with its tasks, through [`Threads`]), and
//! the replay of its last gauges when a read fails.
//!
//! [`Threads`]: super::threads::Threads

use super::*;
use crate::proc::ThreadUpdate;

/// `id()` or `static_info()` failed: an exited process is churn; a denied
/// read of an untracked process is expected when not root; anything else
/// is a read error.
pub(super) fn count_basic_error(e: &ProcError, pid: i32, errors: &mut CollectErrors) {
    match e {
        ProcError::Gone { .. } | ProcError::PermissionDenied { .. } => {
            trace!(pid, error = %e, "skipping process");
        }
        ProcError::Io { .. } | ProcError::Parse { .. } => {
            debug!(pid, error = %e, "cannot read process");
            errors.read += 1;
        }
    }
}

/// `metrics()` of a tracked process failed for a reason other than its exit.
pub(super) fn count_metrics_error(e: &ProcError, pid: i32, errors: &mut CollectErrors) {
    debug!(pid, error = %e, "cannot read process metrics");
    if matches!(e, ProcError::PermissionDenied { .. }) {
        errors.partial += 1;
    } else {
        errors.read += 1;
    }
}

/// Starts tracking a new process: its first metrics (and threads) are read
/// and its update emitted. `None` when it exited meanwhile (nothing to
/// remember); a process whose first read fails otherwise is tracked
/// without a baseline, so the next good read is its first sighting and
/// nothing is counted twice.
pub(super) fn first_sight<P: Proc>(
    proc: &mut P,
    id: ID,
    (start, name, parent_pid): (SystemTime, &str, i32),
    group: Arc<str>,
    reason: MatchReason,
    ctx: &mut Ctx<'_>,
    sink: &mut impl FnMut(Update),
) -> Option<Slot> {
    debug!(pid = id.pid, group = %group, ?reason, "tracking new process");
    let mut t = Box::new(TrackedProc {
        group,
        reason,
        start,
        reading: None,
        threads: Threads::default(),
        last: None,
        name: name.into(),
        parent_pid,
        children_read: false,
        closed: false,
        ledger: None,
        history: Vec::new(),
    });
    match proc.metrics() {
        Err(e) if e.is_gone() => return None,
        Err(e) => count_metrics_error(&e, id.pid, ctx.errors),
        Ok(metrics) => sink(observe_metrics(&mut t, metrics, proc, ctx)),
    }
    Some(Slot {
        last_seen: ctx.cycle,
        entry: Entry::Tracked(t),
    })
}

/// What observing one process needs from the cycle.
pub(super) struct Ctx<'a> {
    pub(super) options: &'a TrackerOptions,
    /// The tracker's first cycle.
    pub(super) first: SystemTime,
    /// This cycle's number.
    pub(super) cycle: u64,
    pub(super) errors: &'a mut CollectErrors,
    pub(super) names: &'a mut Names,
}

/// Reads a known tracked process and returns its update for this cycle:
/// `None` when it exited while being read (or has never been read
/// successfully and fails again), the last update with zero deltas when the
/// read failed for another reason.
pub(super) fn observe<P: Proc>(
    t: &mut TrackedProc,
    proc: &mut P,
    ctx: &mut Ctx<'_>,
) -> Option<Update> {
    match proc.metrics() {
        Ok(metrics) => Some(observe_metrics(t, metrics, proc, ctx)),
        Err(e) if e.is_gone() => None,
        Err(e) => {
            count_metrics_error(&e, proc.pid(), ctx.errors);
            without_deltas(t)
        }
    }
}

/// The last update again, with the same gauges and zero increases; `None`
/// when no update was ever emitted.
pub(super) fn without_deltas(t: &TrackedProc) -> Option<Update> {
    let last = t.last.as_ref()?;
    Some(Update {
        group_name: t.group.to_string(),
        latest: Delta::default(),
        memory: last.memory,
        filedesc: last.filedesc,
        start: t.start,
        num_threads: last.num_threads,
        states: {
            let [running, sleeping, waiting, zombie, other] = last.states.map(u64::from);
            States {
                running,
                sleeping,
                waiting,
                zombie,
                other,
            }
        },
        wchans: last
            .wchans
            .iter()
            .map(|(w, n)| (w.to_string(), *n))
            .collect(),
        threads: t.threads.unchanged(),
        io_known: t.reading.as_ref().is_some_and(Reading::io_seen),
    })
}

/// Folds a successful metrics reading (and the tasks, when wanted) into the
/// process's state and builds its update.
fn observe_metrics<P: Proc>(
    t: &mut TrackedProc,
    mut metrics: Metrics,
    proc: &mut P,
    ctx: &mut Ctx<'_>,
) -> Update {
    // Thread marks hold the cycle number truncated: only equality matters.
    let mark = ctx.cycle as u32;
    let (thread_read, thread_error) = read_tasks(&t.threads, proc, ctx.options.threads);
    if metrics.soft_errors > 0 || thread_error {
        ctx.errors.partial += 1;
    }

    // A process seen for the first time that was born while the tracker runs
    // has all its consumption (and its threads') counted now; an older one
    // counts from here on.
    let born_since_start = t.reading.is_none() && t.start > ctx.first;
    let mut latest = advance_reading(t, &metrics, born_since_start);
    if ctx.options.children_accounting {
        note_children_growth(t, metrics.children, born_since_start);
    }
    // Its reaper, should it exit before the next reading.
    t.parent_pid = metrics.parent_pid;
    // Moved into the update's map when the process's own wait channel is
    // reported, rather than copied.
    let wchan = std::mem::take(&mut metrics.wchan);
    let (states, wchans, thread_updates) = fold_tasks(
        t,
        wchan,
        thread_read,
        &metrics,
        &mut latest,
        (mark, born_since_start),
        ctx.names,
    );

    if t.closed {
        // An exit record already counted everything (a zombie still listed).
        latest = Delta::default();
    }
    let update = Update {
        group_name: t.group.to_string(),
        latest,
        memory: metrics.memory,
        filedesc: metrics.filedesc,
        start: t.start,
        num_threads: metrics.num_threads,
        states,
        wchans,
        threads: thread_updates,
        io_known: t.reading.as_ref().is_some_and(Reading::io_seen),
    };
    t.last
        .get_or_insert_with(LastGauges::default)
        .record(&update, ctx.names);
    update
}

/// The tasks of a tracked process, when thread detail is on; with `true`
/// when the listing failed for another reason than the process's exit (a
/// partial read, counted by the caller). A task said to be unchanged must
/// be one kept in `threads`; if one is not (another caller was given it),
/// every task is read instead.
fn read_tasks<P: Proc>(threads: &Threads, proc: &mut P, wanted: bool) -> (ThreadRead, bool) {
    if !wanted {
        return (ThreadRead::Off, false);
    }
    let mut read = proc.tasks();
    if let Ok(list) = &read
        && list.iter().any(|r| match r {
            TaskRead::Unchanged(id) => !threads.contains(id),
            TaskRead::Read(_) => false,
        })
    {
        read = proc
            .threads()
            .map(|l| l.into_iter().map(TaskRead::Read).collect());
    }
    match read {
        Ok(list) => (ThreadRead::Listed(list), false),
        Err(e) if e.is_gone() => (ThreadRead::Failed, false),
        Err(e) => {
            debug!(pid = proc.pid(), error = %e, "cannot read process threads");
            (ThreadRead::Failed, true)
        }
    }
}

/// The increase of the process's own counters since its last reading,
/// which becomes the new last reading. On the first reading the increase
/// is everything for a process `born_since_start`, nothing otherwise (a
/// baseline): what it did before the tracker started is not this agent's
/// to count.
fn advance_reading(t: &mut TrackedProc, metrics: &Metrics, born_since_start: bool) -> Delta {
    match &mut t.reading {
        Some(r) => r.advance(&metrics.counts, metrics.io_known),
        None => {
            t.reading = Some(Reading::first(&metrics.counts, metrics.io_known));
            if born_since_start {
                Reading::whole(&metrics.counts, metrics.io_known)
            } else {
                Delta::default()
            }
        }
    }
}

/// Adds the growth of the process's reaped-children totals to what is
/// settled after the sweep (children accounting): settled there, not here,
/// because what its children already counted is known only once the
/// cycle has seen which of them left.
fn note_children_growth(t: &mut TrackedProc, now: Counts, born_since_start: bool) {
    let growth = match t.children_seen() {
        Some(prev) => now.since(&prev),
        None if born_since_start => now.as_delta(),
        None => Delta::default(),
    };
    t.children_read = true;
    if now != Counts::default() || t.ledger.is_some() {
        t.ledger_mut().children_seen = now;
    }
    if growth != Delta::default() {
        t.ledger_mut().children_growth += growth;
    }
}

/// The states, wait channels and per-thread updates of the process from
/// its tasks: reconciled when listed, so that `latest`'s context switches
/// are the threads' sum; when the listing failed, the process's own
/// values with the thread baselines kept (and no context switches, which
/// the next good listing covers); without thread detail, the process's
/// own values.
fn fold_tasks(
    t: &mut TrackedProc,
    wchan: String,
    thread_read: ThreadRead,
    metrics: &Metrics,
    latest: &mut Delta,
    (mark, born_since_start): (u32, bool),
    names: &mut Names,
) -> (States, BTreeMap<String, u64>, Vec<ThreadUpdate>) {
    let own = move || {
        let mut wchans = BTreeMap::new();
        own_wchan(wchan, &mut wchans);
        (metrics.states, wchans)
    };
    match thread_read {
        ThreadRead::Listed(list) if !list.is_empty() => {
            let r = t.threads.reconcile(list, mark, born_since_start, names);
            latest.ctx_switch_voluntary = r.switches.0;
            latest.ctx_switch_nonvoluntary = r.switches.1;
            (r.states, r.wchans, r.updates)
        }
        ThreadRead::Failed => {
            let mut thread_updates = Vec::new();
            if !t.threads.is_empty() {
                // The per-thread baselines are kept, so the next good listing
                // covers this cycle; the process-level values would count the
                // main thread twice.
                latest.ctx_switch_voluntary = 0;
                latest.ctx_switch_nonvoluntary = 0;
                thread_updates = t.threads.unchanged();
            }
            let (states, wchans) = own();
            (states, wchans, thread_updates)
        }
        ThreadRead::Off | ThreadRead::Listed(_) => {
            t.threads.clear();
            let (states, wchans) = own();
            (states, wchans, Vec::new())
        }
    }
}

fn own_wchan(wchan: String, wchans: &mut BTreeMap<String, u64>) {
    if !wchan.is_empty() {
        wchans.insert(wchan, 1);
    }
}
