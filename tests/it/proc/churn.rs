//! Process churn: a thousand cycles in which processes (tracked and
//! ignored, with threads, children and reused pids) appear, exit and fail to
//! read. The tracker's state must follow the processes alive now and return
//! to its baseline when they are gone; group counters must never decrease.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use procgroups::proc::{
    CommSetNamer, Counts, GroupByName, Grouper, GrouperOptions, ID, IDInfo, ScriptedFailure,
    ScriptedSource, Thread, ThreadID, Tracker, TrackerOptions, TrackerStats,
};

const CYCLES: u64 = 1_000;
const FIRST_PID: i32 = 100;
const SLOTS: i32 = 300;

/// A small deterministic generator (64-bit LCG), so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    /// True with probability `percent` %.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
}

#[derive(Clone)]
struct SimThread {
    tid: i32,
    start: u64,
    name: &'static str,
    counts: Counts,
}

#[derive(Clone)]
struct SimProc {
    id: ID,
    name: &'static str,
    ppid: i32,
    started: SystemTime,
    counts: Counts,
    threads: Vec<SimThread>,
}

/// The simulated machine: pid 1 plus a pool of pid slots.
struct World {
    rng: Rng,
    slots: Vec<Option<SimProc>>,
    next_start: u64,
    next_tid: i32,
}

const NAMES: &[&str] = &["svc", "db", "sh", "cat", "other", "kworker"];
const THREAD_NAMES: &[&str] = &["main", "worker", "io", "gc"];

fn time(n: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_000_000 + 10 * n)
}

fn init() -> IDInfo {
    IDInfo::named(1, "init", 0).parent(0)
}

impl World {
    fn new(seed: u64) -> World {
        World {
            rng: Rng(seed),
            slots: vec![None; SLOTS as usize],
            next_start: 1,
            next_tid: 10_000,
        }
    }

    fn live(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    fn spawn(&mut self, slot: usize, now: SystemTime) -> SimProc {
        let pid = FIRST_PID + slot as i32;
        let live: Vec<i32> = self.slots.iter().flatten().map(|p| p.id.pid).collect();
        let ppid = if !live.is_empty() && self.rng.chance(60) {
            live[(self.rng.next() % live.len() as u64) as usize]
        } else {
            1
        };
        self.next_start += 1;
        let name = self.rng.pick(NAMES);
        let mut p = SimProc {
            id: ID {
                pid,
                start_time_ticks: self.next_start,
            },
            name,
            ppid,
            started: now - Duration::from_secs(1),
            counts: Counts::default(),
            threads: Vec::new(),
        };
        for _ in 0..(self.rng.next() % 4) {
            let t = self.new_thread();
            p.threads.push(t);
        }
        p
    }

    fn new_thread(&mut self) -> SimThread {
        self.next_tid += 1;
        let name = self.rng.pick(THREAD_NAMES);
        SimThread {
            tid: self.next_tid,
            start: self.next_start,
            name,
            counts: Counts::default(),
        }
    }

    /// Moves the world on by one cycle: exits, births (some reusing a pid
    /// freed in this very cycle), thread churn and work.
    fn step(&mut self, now: SystemTime) {
        for slot in 0..self.slots.len() {
            match self.slots[slot].take() {
                Some(mut p) => {
                    if self.rng.chance(8) {
                        // Exit; sometimes the pid is taken at once.
                        if self.rng.chance(30) {
                            self.slots[slot] = Some(self.spawn(slot, now));
                        }
                        continue;
                    }
                    let w = self.rng.next() % 50;
                    p.counts.cpu_user_time += w as f64 / 10.0;
                    p.counts.read_bytes += w * 100;
                    p.counts.minor_page_faults += w;
                    if !p.threads.is_empty() && self.rng.chance(10) {
                        let i = (self.rng.next() % p.threads.len() as u64) as usize;
                        p.threads.remove(i);
                    }
                    if self.rng.chance(10) {
                        let t = self.new_thread();
                        p.threads.push(t);
                    }
                    for t in &mut p.threads {
                        t.counts.ctx_switch_voluntary += self.rng.next() % 20;
                        t.counts.cpu_system_time += 0.5;
                    }
                    p.counts.ctx_switch_voluntary = p
                        .threads
                        .first()
                        .map_or(0, |t| t.counts.ctx_switch_voluntary);
                    self.slots[slot] = Some(p);
                }
                None => {
                    if self.rng.chance(8) {
                        self.slots[slot] = Some(self.spawn(slot, now));
                    }
                }
            }
        }
    }

    /// The listing of this cycle; with `failures`, some reads fail.
    fn listing(&mut self, failures: bool) -> Vec<IDInfo> {
        let mut out = vec![init()];
        for p in self.slots.iter().flatten() {
            let threads = p
                .threads
                .iter()
                .map(|t| {
                    Thread::new(
                        ThreadID {
                            tid: t.tid,
                            start_time_ticks: t.start,
                        },
                        t.name,
                        t.counts,
                    )
                })
                .collect();
            let mut info = IDInfo::named(p.id.pid, p.name, p.id.start_time_ticks)
                .parent(p.ppid)
                .started_at(p.started)
                .counts(p.counts)
                .num_threads(p.threads.len().max(1) as u64)
                .with_threads(threads);
            if failures {
                match self.rng.next() % 100 {
                    0 => info = info.metrics_fail(ScriptedFailure::Read),
                    1 => info = info.metrics_fail(ScriptedFailure::Gone),
                    2 => info = info.id_fail(ScriptedFailure::Gone),
                    3 => info = info.static_fail(ScriptedFailure::Read),
                    4 => info = info.threads_fail(ScriptedFailure::Read),
                    5 => info = info.io_unknown(),
                    _ => {}
                }
            }
            out.push(info);
        }
        out
    }
}

fn option_sets() -> Vec<TrackerOptions> {
    vec![
        TrackerOptions {
            children: true,
            threads: true,
            ..TrackerOptions::default()
        },
        TrackerOptions::default(),
        TrackerOptions {
            children: true,
            threads: true,
            recheck: true,
            recheck_time_limit: Duration::from_secs(30),
            children_accounting: true,
        },
    ]
}

fn namer() -> Arc<CommSetNamer> {
    Arc::new(CommSetNamer::new(["svc", "db"]))
}

#[test]
fn tracker_state_follows_live_processes_through_churn() {
    let _cpu = crate::support::cpu_heavy();
    for (k, options) in option_sets().into_iter().enumerate() {
        let mut tr = Tracker::new(namer(), options);
        let mut src = ScriptedSource::default();

        src.push(vec![init()]);
        tr.update(&mut src, time(0)).unwrap();
        let baseline = tr.stats();
        assert_eq!(
            baseline,
            TrackerStats {
                tracked: 0,
                ignored: 1,
                pids: 1,
                threads: 0
            }
        );

        let mut world = World::new(0x5eed + k as u64);
        let mut peak = 0;
        let mut peak_tracked = 0;
        for n in 1..=CYCLES {
            world.step(time(n));
            // Every 50th cycle reads cleanly, so the tracker must know
            // exactly the processes listed.
            let quiet = n % 50 == 0;
            let listing = world.listing(!quiet);
            let listed = listing.len();
            let threads_listed: usize = listing.iter().map(|p| p.threads.len()).sum();
            src.push(listing);
            tr.update(&mut src, time(n)).unwrap();
            src.clear_reads();

            let s = tr.stats();
            assert_eq!(
                s.pids,
                s.tracked + s.ignored,
                "options {k}, cycle {n}: {s:?}"
            );
            assert!(
                s.tracked + s.ignored <= listed,
                "options {k}, cycle {n}: {s:?}"
            );
            assert!(s.threads <= threads_listed, "options {k}, cycle {n}: {s:?}");
            if quiet && !options.recheck {
                assert_eq!(s.tracked + s.ignored, listed, "options {k}, cycle {n}");
            }
            peak = peak.max(s.tracked + s.ignored);
            peak_tracked = peak_tracked.max(s.tracked);
        }
        assert!(world.live() > 0);
        assert!(peak <= SLOTS as usize + 1);
        assert!(
            peak_tracked > 0 && peak_tracked < peak,
            "both kinds were seen"
        );

        // Everything but init exits.
        src.push(vec![init()]);
        tr.update(&mut src, time(CYCLES + 1)).unwrap();
        assert_eq!(tr.stats(), baseline, "options {k}");
        src.push(vec![]);
        tr.update(&mut src, time(CYCLES + 2)).unwrap();
        assert_eq!(tr.stats(), TrackerStats::default(), "options {k}");
    }
}

#[test]
fn group_counters_never_decrease_through_churn() {
    let _cpu = crate::support::cpu_heavy();
    for remove_empty_groups in [false, true] {
        for options in option_sets() {
            let mut gr = Grouper::new(
                namer(),
                GrouperOptions {
                    tracker: options,
                    remove_empty_groups,
                    ..GrouperOptions::default()
                },
            );
            let mut src = ScriptedSource::default();
            let mut world = World::new(42);
            let mut previous = GroupByName::new();
            let mut saw_threads = false;
            for n in 0..=CYCLES / 2 {
                world.step(time(n));
                src.push(world.listing(true));
                let (_, groups) = gr.update(&mut src, time(n)).unwrap();
                src.clear_reads();
                for (name, g) in &groups {
                    let procs_here = g.procs;
                    if procs_here == 0 {
                        assert!(!remove_empty_groups, "{name} reported empty");
                        assert_eq!(g.oldest_start_time, None);
                    }
                    saw_threads |= !g.threads.is_empty();
                    let Some(before) = previous.get(name) else {
                        continue;
                    };
                    let (a, b) = (&before.counts, &g.counts);
                    assert!(b.cpu_user_time >= a.cpu_user_time, "{name} cycle {n}");
                    assert!(b.cpu_system_time >= a.cpu_system_time, "{name} cycle {n}");
                    assert!(b.read_bytes >= a.read_bytes, "{name} cycle {n}");
                    assert!(
                        b.minor_page_faults >= a.minor_page_faults,
                        "{name} cycle {n}"
                    );
                    assert!(
                        b.ctx_switch_voluntary >= a.ctx_switch_voluntary,
                        "{name} cycle {n}"
                    );
                    assert!(b.ctx_switch_voluntary < u64::MAX / 2, "{name} wrapped");
                    for t in &g.threads {
                        if let Some(old) = before.threads.iter().find(|o| o.name == t.name) {
                            assert!(
                                t.counts.ctx_switch_voluntary >= old.counts.ctx_switch_voluntary,
                                "{name}/{} cycle {n}",
                                t.name
                            );
                        }
                    }
                }
                if !remove_empty_groups {
                    for name in previous.keys() {
                        assert!(groups.contains_key(name), "{name} vanished");
                    }
                }
                previous = groups;
            }
            assert_eq!(saw_threads, options.threads);
            src.push(vec![]);
            let (_, groups) = gr.update(&mut src, time(CYCLES)).unwrap();
            assert_eq!(groups.is_empty(), remove_empty_groups);
            assert_eq!(gr.tracker().stats(), TrackerStats::default());
        }
    }
}
