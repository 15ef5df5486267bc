//! From raw exit records to one [`ProcExit`] per exited process: the
//! records of a thread group's threads are summed until the record that
//! closes the group, whose totals are then those of the whole process (the
//! group record's CPU and context switches where the kernel sums them,
//! the faults and I/O summed from the thread records, which the group
//! record leaves zero). Threads that exit while their process lives are
//! never handed on: `/proc/PID/stat` of a live process already includes
//! them. Pure: the receipt times are passed in.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use super::record::{ExitRecord, Scope};
use crate::proc::{Counts, ProcExit};

/// Thread sums kept for processes still alive are dropped past this many
/// (records were lost, or processes churn threads forever): an undercount
/// of those processes' last faults and I/O, never an overcount.
const MAX_PENDING_GROUPS: usize = 65_536;

/// Assembles the records of successive batches into process exits.
#[derive(Debug)]
pub struct ExitAssembler {
    ticks_per_second: u64,
    slack: Duration,
    /// Sums of the thread records of groups not yet closed, by tgid.
    threads: HashMap<u32, Counts>,
}

impl ExitAssembler {
    /// An assembler matching start times in clock ticks of this length,
    /// tolerating `slack` of delivery delay (see
    /// [`ExitRecord::started_at_tick`]).
    pub fn new(ticks_per_second: u64, slack: Duration) -> Self {
        Self {
            ticks_per_second: ticks_per_second.max(1),
            slack,
            threads: HashMap::new(),
        }
    }

    /// Thread groups with thread records waiting for their last one.
    pub fn pending_groups(&self) -> usize {
        self.threads.len()
    }

    /// The process exits closed by the records of one datagram, received
    /// at `received_boottime` (boot-time clock) and `received_wall` (wall
    /// clock, the same moment).
    pub fn feed(
        &mut self,
        records: &[ExitRecord],
        received_boottime: Duration,
        received_wall: SystemTime,
    ) -> Vec<ProcExit> {
        let mut out = Vec::new();
        for r in records.iter().filter(|r| r.scope == Scope::Task) {
            let tgid = r.tgid.unwrap_or(r.pid);
            let closes = match r.closes_group() {
                Some(c) => c,
                // Kernels before struct version 12 do not say: the group
                // leader's record is taken as the process's end.
                None => r.pid == tgid,
            };
            let own = counts_of(r);
            if !closes {
                if self.threads.len() >= MAX_PENDING_GROUPS && !self.threads.contains_key(&tgid) {
                    tracing::debug!(
                        groups = self.threads.len(),
                        "too many thread groups pending; dropping their thread sums"
                    );
                    self.threads.clear();
                }
                *self.threads.entry(tgid).or_default() += own;
                continue;
            }
            let mut totals = self.threads.remove(&tgid).unwrap_or_default() + own;
            if let Some(g) = records
                .iter()
                .find(|g| g.scope == Scope::ThreadGroup && g.id == tgid)
            {
                let gc = counts_of(g);
                totals.cpu_user_time = totals.cpu_user_time.max(gc.cpu_user_time);
                totals.cpu_system_time = totals.cpu_system_time.max(gc.cpu_system_time);
                totals.ctx_switch_voluntary =
                    totals.ctx_switch_voluntary.max(gc.ctx_switch_voluntary);
                totals.ctx_switch_nonvoluntary = totals
                    .ctx_switch_nonvoluntary
                    .max(gc.ctx_switch_nonvoluntary);
            }
            // The process started when its leader did: the closing thread
            // may be another one, and `group_elapsed` says so.
            let lived = r.group_elapsed.unwrap_or(r.elapsed);
            let start = received_boottime.saturating_sub(lived);
            out.push(ProcExit {
                pid: i32::try_from(tgid).unwrap_or(i32::MAX),
                parent_pid: i32::try_from(r.ppid).unwrap_or(0),
                name: r.comm.clone(),
                uid: r.uid,
                start_ticks: self.tick_range(start),
                start_time: received_wall
                    .checked_sub(lived)
                    .unwrap_or(SystemTime::UNIX_EPOCH),
                totals,
            });
        }
        out
    }

    /// The start times in ticks that [`ExitRecord::started_at_tick`]
    /// accepts for an estimated start `estimate` (boot-time clock).
    fn tick_range(&self, estimate: Duration) -> (u64, u64) {
        let tick = 1_000_000_000u128 / u128::from(self.ticks_per_second);
        let est = estimate.as_nanos();
        let lo = est
            .saturating_sub(self.slack.as_nanos() + tick)
            .div_ceil(tick);
        let hi = (est + tick) / tick;
        let narrow = |n: u128| u64::try_from(n).unwrap_or(u64::MAX);
        (narrow(lo), narrow(hi))
    }
}

/// A record's counters in the units of `/proc`.
fn counts_of(r: &ExitRecord) -> Counts {
    let (user, system) = r.cpu_adjusted();
    Counts {
        cpu_user_time: user.as_secs_f64(),
        cpu_system_time: system.as_secs_f64(),
        read_bytes: r.read_bytes,
        write_bytes: r.write_bytes,
        major_page_faults: r.major_faults,
        minor_page_faults: r.minor_faults,
        ctx_switch_voluntary: r.voluntary_switches,
        ctx_switch_nonvoluntary: r.involuntary_switches,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exits::record::FLAG_GROUP_DEAD;

    fn task(pid: u32, tgid: u32, closes: bool, cpu_ms: u64, minflt: u64) -> ExitRecord {
        ExitRecord {
            scope: Scope::Task,
            id: pid,
            version: 14,
            struct_len: 400,
            pid,
            tgid: Some(tgid),
            ppid: 1,
            comm: "worker".into(),
            uid: 0,
            gid: 0,
            exit_code: 0,
            flags: if closes { FLAG_GROUP_DEAD } else { 0 },
            begin_time_secs: 0,
            elapsed: Duration::from_millis(500),
            group_elapsed: Some(Duration::from_secs(2)),
            user_time: Duration::from_millis(cpu_ms),
            system_time: Duration::ZERO,
            run_time: Duration::ZERO,
            run_time_sampled: Duration::ZERO,
            cpu_count: 0,
            minor_faults: minflt,
            major_faults: 0,
            read_bytes: 0,
            write_bytes: 0,
            cancelled_write_bytes: 0,
            voluntary_switches: 1,
            involuntary_switches: 0,
            exe: None,
        }
    }

    #[test]
    fn thread_records_are_summed_into_the_closing_one_and_never_handed_on() {
        let mut a = ExitAssembler::new(100, Duration::from_millis(100));
        let boot = Duration::from_secs(1000);
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(5000);
        assert!(
            a.feed(&[task(11, 10, false, 100, 5)], boot, wall)
                .is_empty()
        );
        assert_eq!(a.pending_groups(), 1);
        let group = ExitRecord {
            scope: Scope::ThreadGroup,
            id: 10,
            user_time: Duration::from_millis(450),
            ..task(10, 10, true, 0, 0)
        };
        let out = a.feed(&[task(12, 10, true, 300, 7), group], boot, wall);
        assert_eq!(out.len(), 1);
        let e = &out[0];
        assert_eq!(e.pid, 10);
        // Faults from the threads; CPU from the group record (it covers
        // threads whose records this assembler never saw).
        assert_eq!(e.totals.minor_page_faults, 12);
        assert!((e.totals.cpu_user_time - 0.45).abs() < 1e-9, "{e:?}");
        // Started when the leader did: 2 s before receipt, ±ticks.
        assert!(
            e.start_ticks.0 <= 99_800 && 99_800 <= e.start_ticks.1,
            "{e:?}"
        );
        assert!(e.start_ticks.1 - e.start_ticks.0 <= 12, "{e:?}");
        assert_eq!(e.start_time, wall - Duration::from_secs(2));
        assert_eq!(a.pending_groups(), 0);
    }

    #[test]
    fn the_tick_range_is_what_started_at_tick_accepts() {
        let a = ExitAssembler::new(100, Duration::from_millis(50));
        let received = Duration::from_millis(123_456_789);
        let r = task(5, 5, true, 1, 1);
        let est = r.estimated_start(received);
        let (lo, hi) = a.tick_range(est);
        for t in lo.saturating_sub(3)..hi + 3 {
            let ours = (lo..=hi).contains(&t);
            // `started_at_tick` uses `elapsed`; the range was built from it.
            assert_eq!(
                ours,
                r.started_at_tick(t, 100, received, Duration::from_millis(50)),
                "tick {t}"
            );
        }
    }
}
