//! The vocabulary of the tracker and grouper scenarios: scripted processes
//! and expected groups built by name, and scenarios written as tables of
//! cycles (the processes listed in each cycle, and what that cycle must
//! give), in the style of process-exporter's `tracker_test.go` and
//! `grouper_test.go`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use procgroups::proc::{
    CommSetNamer, Counts, Delta, Filedesc, Group, GroupByName, Grouper, GrouperOptions, IDInfo,
    Memory, ScriptedSource, States, Thread, ThreadID, Threads, Tracker, TrackerOptions, Update,
};

/// When the first cycle runs: long after the scripted processes' default
/// start times (seconds after the epoch), so they count from their first
/// sighting on, as in the reference tests.
pub const T0: u64 = 1_000_000;

/// `secs` seconds after the epoch.
pub fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// The `now` of cycle `n` (0-based), 15 s apart.
pub fn cycle_time(n: u64) -> SystemTime {
    at(T0 + 15 * n)
}

/// Counts in the reference order (cpu user, cpu system, read, write, majflt,
/// minflt, ctx voluntary, ctx nonvoluntary); cpu in whole seconds.
pub fn c(v: [u64; 8]) -> Counts {
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

/// `n` in each of the first six counters.
pub fn ones(n: u64) -> Counts {
    c([n, n, n, n, n, n, 0, 0])
}

/// Resident and virtual memory, nothing else.
pub fn mem(resident: u64, virt: u64) -> Memory {
    Memory {
        resident_bytes: resident,
        virtual_bytes: virt,
        ..Memory::default()
    }
}

/// The states of one task per letter.
pub fn st(letters: &str) -> States {
    let mut s = States::default();
    for l in letters.chars() {
        s += States::from_letter(l);
    }
    s
}

/// Thread `tid` (started at tick 0) named `name`, with these counts.
pub fn thread(tid: i32, name: &str, counts: [u64; 8]) -> Thread {
    Thread::new(
        ThreadID {
            tid,
            start_time_ticks: 0,
        },
        name,
        c(counts),
    )
}

/// A scripted process `pid` with comm `name`, started at tick 0.
pub fn p(pid: i32, name: &str) -> IDInfo {
    IDInfo::named(pid, name, 0)
}

/// Short names for the scripted values of the reference tables.
pub trait ScriptedExt {
    /// Resident and virtual memory.
    fn mem(self, resident: u64, virt: u64) -> Self;
    /// Open descriptors and their limit, both known.
    fn fds(self, open: u64, limit: u64) -> Self;
    /// Its state letter(s).
    fn state(self, letters: &str) -> Self;
}

impl ScriptedExt for IDInfo {
    fn mem(self, resident: u64, virt: u64) -> Self {
        self.memory(mem(resident, virt))
    }
    fn fds(self, open: u64, limit: u64) -> Self {
        self.filedesc(Some(open), Some(limit))
    }
    fn state(self, letters: &str) -> Self {
        self.states(st(letters))
    }
}

/// An expected live group of `procs` members started at the epoch, with
/// every other value empty but its io known (the scripted source reads io
/// unless told otherwise); the [`GroupExt`] methods fill in the rest.
pub fn group(procs: u64) -> Group {
    Group {
        procs,
        oldest_start_time: Some(UNIX_EPOCH),
        io_known: true,
        ..Group::default()
    }
}

/// Builders of an expected [`Group`], by field.
pub trait GroupExt {
    /// Its counters.
    fn counted(self, counts: Counts) -> Self;
    /// Its members' states.
    fn in_states(self, letters: &str) -> Self;
    /// Its memory.
    fn mem(self, resident: u64, virt: u64) -> Self;
    /// Its open descriptors and the worst ratio to a limit.
    fn fds(self, open: u64, worst_ratio: f64) -> Self;
    /// Its live threads.
    fn threads(self, n: u64) -> Self;
    /// Its threads by name.
    fn thread_names(self, names: Vec<Threads>) -> Self;
}

impl GroupExt for Group {
    fn counted(self, counts: Counts) -> Self {
        Group { counts, ..self }
    }
    fn in_states(self, letters: &str) -> Self {
        Group {
            states: st(letters),
            ..self
        }
    }
    fn mem(self, resident: u64, virt: u64) -> Self {
        Group {
            memory: mem(resident, virt),
            ..self
        }
    }
    fn fds(self, open: u64, worst_ratio: f64) -> Self {
        Group {
            open_fds: open,
            worst_fd_ratio: worst_ratio,
            ..self
        }
    }
    fn threads(self, n: u64) -> Self {
        Group {
            num_threads: n,
            ..self
        }
    }
    fn thread_names(self, threads: Vec<Threads>) -> Self {
        Group { threads, ..self }
    }
}

/// The threads named `name`: `live` of them, with these counters.
pub fn th(name: &str, live: u64, counts: Counts) -> Threads {
    Threads {
        name: name.to_string(),
        num_threads: live,
        counts,
    }
}

/// A grouper over a comm-set namer of `names`.
pub fn grouper(names: &[&str], tracker: TrackerOptions, remove_empty_groups: bool) -> Grouper {
    Grouper::new(
        Arc::new(CommSetNamer::new(names.iter().copied())),
        GrouperOptions {
            tracker,
            remove_empty_groups,
            ..GrouperOptions::default()
        },
    )
}

/// A tracker over a comm-set namer of `names`.
pub fn tracker(names: &[&str], options: TrackerOptions) -> Tracker {
    Tracker::new(Arc::new(CommSetNamer::new(names.iter().copied())), options)
}

/// Options with per-thread tracking on.
pub fn with_threads() -> TrackerOptions {
    TrackerOptions {
        threads: true,
        ..TrackerOptions::default()
    }
}

/// One cycle of a table: the processes listed, and what the cycle must give.
pub type Cycle<W> = (Vec<IDInfo>, W);

/// Plays a grouper table from cycle 0 on: each cycle lists its processes
/// and must give exactly the groups of its row. Returns the last result.
pub fn play_groups(gr: &mut Grouper, table: Vec<Cycle<Vec<(&str, Group)>>>) -> GroupByName {
    let mut src = ScriptedSource::default();
    let mut last = GroupByName::new();
    for (n, (procs, want)) in table.into_iter().enumerate() {
        src.push(procs);
        let (_, got) = gr
            .update(&mut src, cycle_time(n as u64))
            .expect("scripted listing");
        let want: GroupByName = want
            .into_iter()
            .map(|(name, g)| (name.to_string(), g))
            .collect();
        assert_eq!(got, want, "cycle {n}");
        last = got;
    }
    last
}

/// Plays a tracker table from cycle 0 on: each cycle lists its processes
/// and must give exactly the updates of its row (in group order), with no
/// error.
pub fn play_updates(tr: &mut Tracker, table: Vec<Cycle<Vec<Update>>>) {
    let mut src = ScriptedSource::default();
    for (n, (procs, want)) in table.into_iter().enumerate() {
        src.push(procs);
        let (errors, mut got) = tr
            .update(&mut src, cycle_time(n as u64))
            .expect("scripted listing");
        assert_eq!(errors, Default::default(), "cycle {n}");
        got.sort_by(|a, b| a.group_name.cmp(&b.group_name));
        assert_eq!(got, want, "cycle {n}");
    }
}

/// The update of a process of `group` that started `start` seconds after the
/// epoch, with every other field empty.
pub fn upd(group: &str, start: u64) -> Update {
    Update {
        group_name: group.to_string(),
        latest: Default::default(),
        memory: Memory::default(),
        filedesc: Default::default(),
        start: at(start),
        num_threads: 0,
        states: States::default(),
        wchans: BTreeMap::new(),
        threads: Vec::new(),
        // The scripted source reads io unless told otherwise.
        io_known: true,
    }
}

/// Builders of an expected [`Update`], by field.
pub trait UpdateExt {
    /// How much the counters grew since the last cycle.
    fn latest(self, latest: Delta) -> Self;
    /// Resident and virtual memory.
    fn mem(self, resident: u64, virt: u64) -> Self;
    /// Open descriptors and their limit, both known.
    fn fds(self, open: u64, limit: u64) -> Self;
    /// Its threads.
    fn threads(self, n: u64) -> Self;
    /// Its state letter(s).
    fn in_states(self, letters: &str) -> Self;
}

impl UpdateExt for Update {
    fn latest(self, latest: Delta) -> Self {
        Update { latest, ..self }
    }
    fn mem(self, resident: u64, virt: u64) -> Self {
        Update {
            memory: mem(resident, virt),
            ..self
        }
    }
    fn fds(self, open: u64, limit: u64) -> Self {
        Update {
            filedesc: Filedesc {
                open: Some(open),
                limit: Some(limit),
            },
            ..self
        }
    }
    fn threads(self, n: u64) -> Self {
        Update {
            num_threads: n,
            ..self
        }
    }
    fn in_states(self, letters: &str) -> Self {
        Update {
            states: st(letters),
            ..self
        }
    }
}

/// Counts as an increase, in the reference order of [`c`].
pub fn d(v: [u64; 8]) -> Delta {
    c(v).as_delta()
}
