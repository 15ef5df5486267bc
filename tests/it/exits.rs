//! Taskstats exit records: parsing of records captured from a real kernel
//! (and of versions derived from them, see tests/fixtures/taskstats/README.md),
//! and live records of children this test starts and measures.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::procs::stat_fields;
use procgroups::exits::{
    ExitListener, ExitRecord, ListenerConfig, ParseError, Scope, parse_datagram,
};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/taskstats")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn only_record(name: &str) -> ExitRecord {
    let mut records = parse_datagram(&fixture(name)).unwrap();
    assert_eq!(records.len(), 1, "{name}: {records:?}");
    records.remove(0)
}

#[test]
fn single_threaded_process_exit_v16() {
    let r = only_record("single_thread_v16.bin");
    assert_eq!(r.scope, Scope::Task);
    assert_eq!((r.version, r.struct_len), (16, 560));
    assert_eq!(
        (r.id, r.pid, r.tgid, r.ppid),
        (9785, 9785, Some(9785), 9783)
    );
    assert_eq!(r.comm, "tsfixture");
    assert_eq!((r.uid, r.gid, r.exit_code), (0, 0, 0));
    assert_eq!(r.closes_group(), Some(true));
    assert_eq!(r.begin_time_secs, 1_796_013_931);
    assert_eq!(r.elapsed, Duration::from_micros(130_813));
    assert_eq!(r.group_elapsed, Some(Duration::from_micros(130_813)));
    assert_eq!(r.user_time, Duration::from_micros(56_000));
    assert_eq!(r.system_time, Duration::from_micros(4_000));
    assert_eq!((r.minor_faults, r.major_faults), (715, 1));
    assert_eq!((r.read_bytes, r.write_bytes), (36_864, 0));
    assert_eq!((r.voluntary_switches, r.involuntary_switches), (1, 46));
    // The scheduler's exact run time is there, and the adjusted split
    // sums to it, as /proc/PID/stat's does.
    assert!(r.run_time > Duration::ZERO);
    let (user, system) = r.cpu_adjusted();
    assert_eq!(user + system, r.run_time);
    assert!(user > system);
    let (dev, inode) = r.exe.unwrap();
    assert!(dev != 0 && inode != 0);
}

#[test]
fn thread_exit_does_not_close_its_group() {
    let r = only_record("thread_v16.bin");
    assert_eq!(r.scope, Scope::Task);
    assert_eq!((r.pid, r.tgid), (9599, Some(9596)));
    assert_eq!(r.comm, "tsworker");
    assert_eq!(r.closes_group(), Some(false));
    assert_eq!(r.user_time, Duration::from_micros(27_711));
}

#[test]
fn last_thread_carries_the_group_aggregate() {
    let records = parse_datagram(&fixture("group_last_v16.bin")).unwrap();
    assert_eq!(records.len(), 2, "{records:?}");
    let (task, group) = (&records[0], &records[1]);
    assert_eq!(task.scope, Scope::Task);
    assert_eq!(
        (task.pid, task.tgid, task.comm.as_str()),
        (9598, Some(9596), "tsworker")
    );
    assert_eq!(task.closes_group(), Some(true));
    assert_eq!(group.scope, Scope::ThreadGroup);
    assert_eq!((group.id, group.pid, group.tgid), (9596, 9596, Some(9596)));
    assert_eq!(group.closes_group(), Some(true));
    // Linux 6.18 sums CPU and context switches of the exited threads
    // (27,711 + 31,676 + 0 µs) and leaves identity and faults empty.
    assert_eq!(group.user_time, Duration::from_micros(59_387));
    assert_eq!(
        (group.voluntary_switches, group.involuntary_switches),
        (5, 23)
    );
    assert_eq!(group.comm, "");
    assert_eq!((group.minor_faults, group.ppid), (0, 0));
}

#[test]
fn older_version_lacks_later_fields() {
    let r = only_record("single_thread_v9.bin");
    assert_eq!((r.version, r.struct_len), (9, 344));
    assert_eq!((r.pid, r.ppid, r.comm.as_str()), (9785, 9783, "tsfixture"));
    assert_eq!(r.user_time, Duration::from_micros(56_000));
    assert_eq!((r.voluntary_switches, r.involuntary_switches), (1, 46));
    // ac_btime (32-bit) stands in for ac_btime64; no tgid, no AGROUP.
    assert_eq!(r.begin_time_secs, 1_796_013_931);
    assert_eq!((r.tgid, r.group_elapsed, r.exe), (None, None, None));
    assert_eq!(r.closes_group(), None);
}

#[test]
fn newer_version_keeps_known_fields_and_skips_the_tail() {
    let new = only_record("single_thread_v99.bin");
    let base = only_record("single_thread_v16.bin");
    assert_eq!((new.version, new.struct_len), (99, 624));
    let same_as_base = ExitRecord {
        version: 99,
        struct_len: 624,
        ..base
    };
    assert_eq!(new, same_as_base);
}

#[test]
fn truncated_struct_is_an_error() {
    assert_eq!(
        parse_datagram(&fixture("truncated_struct.bin")),
        Err(ParseError::Truncated {
            len: 200,
            need: 288
        })
    );
}

#[test]
fn truncated_datagram_is_an_error() {
    let err = parse_datagram(&fixture("truncated_datagram.bin")).unwrap_err();
    assert!(matches!(err, ParseError::Framing(_)), "{err:?}");
}

#[test]
fn every_prefix_and_corruption_parses_without_panic() {
    for name in [
        "single_thread_v16.bin",
        "group_last_v16.bin",
        "single_thread_v9.bin",
    ] {
        let bytes = fixture(name);
        for end in 0..bytes.len() {
            let _ = parse_datagram(&bytes[..end]);
        }
        for at in 0..bytes.len() {
            let mut b = bytes.clone();
            b[at] ^= 0xff;
            let _ = parse_datagram(&b);
        }
    }
}

// ---- live records (root with CAP_NET_ADMIN in the host namespaces) ----

/// Opens a listener, or returns `None` after a skip line when this process
/// may not (fails instead under `CI`, whose machine runs tests as root).
fn listener(config: ListenerConfig) -> Option<ExitListener> {
    match ExitListener::open(&config) {
        Ok(l) => {
            l.set_timeout(Some(Duration::from_millis(200))).unwrap();
            Some(l)
        }
        Err(e) if e.is_not_permitted() && std::env::var_os("CI").is_none() => {
            crate::support::tools::skip(&format!("taskstats listener not permitted here: {e}"));
            None
        }
        Err(e) => panic!("opening the taskstats listener: {e}"),
    }
}

struct Stat {
    ppid: u32,
    cpu_ticks: u64,
    start_ticks: u64,
}

/// Fields 4, 14 + 15 and 22 of /proc/PID/stat.
fn stat(pid: u32) -> Stat {
    let [ppid, utime, stime, start_ticks] = stat_fields(pid, [4, 14, 15, 22]).unwrap();
    Stat {
        ppid: u32::try_from(ppid).unwrap(),
        cpu_ticks: utime + stime,
        start_ticks,
    }
}

/// Starts the workload with `args`, waits for `ready`, returns the child.
fn workload(args: &[&str]) -> (std::process::Child, u32) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_procgroups-workload"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pid = line.trim().strip_prefix("ready ").unwrap().parse().unwrap();
    (child, pid)
}

/// Receives until `done` says the records so far are complete.
fn collect(
    l: &mut ExitListener,
    tgid: u32,
    done: impl Fn(&[(ExitRecord, Duration)]) -> bool,
) -> Vec<(ExitRecord, Duration)> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut mine = Vec::new();
    while !done(&mine) {
        assert!(Instant::now() < deadline, "records so far: {mine:#?}");
        if let Some(batch) = l.recv().unwrap() {
            for r in batch.records {
                if r.tgid.unwrap_or(r.pid) == tgid || r.id == tgid {
                    mine.push((r, batch.received_boottime));
                }
            }
        }
    }
    mine
}

fn ticks_to_duration(ticks: u64, hz: u64) -> Duration {
    Duration::from_nanos(ticks * 1_000_000_000 / hz)
}

#[test]
fn live_exit_of_a_measured_child() {
    let Some(mut l) = listener(ListenerConfig::default()) else {
        return;
    };
    // Root may force the buffer past net.core.rmem_max (the kernel reports
    // twice the size set).
    assert!(l.receive_buffer() >= ListenerConfig::default().receive_buffer);
    println!("receive buffer granted: {} bytes", l.receive_buffer());
    let hz = rustix::param::clock_ticks_per_second();
    let (mut child, pid) = workload(&["--name", "pgexitlive", "--busy-ms", "150"]);
    let before = stat(pid);
    assert_eq!(before.ppid, std::process::id());
    assert!(before.cpu_ticks > 0, "the child burned no CPU");
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());

    let got = collect(&mut l, pid, |rs| rs.iter().any(|(r, _)| r.pid == pid));
    let (r, received) = got.iter().find(|(r, _)| r.pid == pid).unwrap();
    assert_eq!(r.scope, Scope::Task);
    assert_eq!(r.comm, "pgexitlive");
    assert_eq!((r.tgid, r.ppid), (Some(pid), std::process::id()));
    assert_eq!(r.uid, rustix::process::getuid().as_raw());
    assert_eq!(r.closes_group(), Some(true));
    let (user, system) = r.cpu_adjusted();
    let measured = ticks_to_duration(before.cpu_ticks, hz);
    assert!(
        user + system >= measured,
        "record CPU {:?} < {measured:?} the child had used",
        user + system
    );
    // The start estimate is late by the delivery delay only.
    let start = ticks_to_duration(before.start_ticks, hz);
    let estimate = r.estimated_start(*received);
    println!(
        "start from /proc {start:?}, estimated from the record {estimate:?} (late by {:?})",
        estimate.saturating_sub(start)
    );
    assert!(r.started_at_tick(
        before.start_ticks,
        hz,
        *received,
        Duration::from_millis(500)
    ));
    assert!(!r.started_at_tick(
        before.start_ticks + hz,
        hz,
        *received,
        Duration::from_millis(500)
    ));
}

#[test]
fn live_exit_of_a_thread_group() {
    let Some(mut l) = listener(ListenerConfig::default()) else {
        return;
    };
    let hz = rustix::param::clock_ticks_per_second();
    let (mut child, pid) = workload(&[
        "--name",
        "pgexitgrp",
        "--threads",
        "2",
        "--thread-name",
        "pgexitthr",
        "--spin",
    ]);
    std::thread::sleep(Duration::from_millis(300));
    let before = stat(pid);
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());

    let got = collect(&mut l, pid, |rs| {
        rs.iter().any(|(r, _)| r.scope == Scope::ThreadGroup)
            && rs.iter().filter(|(r, _)| r.scope == Scope::Task).count() == 3
    });
    let tasks: Vec<&ExitRecord> = got
        .iter()
        .map(|(r, _)| r)
        .filter(|r| r.scope == Scope::Task)
        .collect();
    let group = got
        .iter()
        .map(|(r, _)| r)
        .find(|r| r.scope == Scope::ThreadGroup)
        .unwrap();
    assert_eq!(group.id, pid);
    let mut comms: Vec<&str> = tasks.iter().map(|r| r.comm.as_str()).collect();
    comms.sort_unstable();
    assert_eq!(comms, ["pgexitgrp", "pgexitthr", "pgexitthr"]);
    assert!(tasks.iter().all(|r| r.tgid == Some(pid)));
    assert_eq!(
        tasks
            .iter()
            .filter(|r| r.closes_group() == Some(true))
            .count(),
        1,
        "exactly one task record closes the group: {tasks:#?}"
    );
    // The threads' own records add up to at least what the group had used.
    let sum: Duration = tasks
        .iter()
        .map(|r| {
            let (u, s) = r.cpu_adjusted();
            u + s
        })
        .sum();
    let measured = ticks_to_duration(before.cpu_ticks, hz);
    assert!(
        sum >= measured,
        "Σ task CPU {sum:?} < {measured:?} measured"
    );
    // Where the kernel sums utime/stime into the group record (6.18 does),
    // it is the sum of the task records.
    let sampled: Duration = tasks.iter().map(|r| r.user_time + r.system_time).sum();
    let group_sampled = group.user_time + group.system_time;
    if group_sampled > Duration::ZERO {
        assert_eq!(group_sampled, sampled);
    } else {
        println!("this kernel does not sum utime/stime into the group record");
    }
}

#[test]
fn live_overflow_is_counted_and_receiving_carries_on() {
    // The smallest buffer the kernel allows holds a few records only.
    let config = ListenerConfig {
        receive_buffer: 1,
        ..ListenerConfig::default()
    };
    let Some(mut l) = listener(config) else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    // Under load (other tests run in parallel) the buffer may already have
    // overflowed during setup. The first receive hands out what setup kept
    // aside; a later non-empty batch came from a datagram, which ends any
    // outage, so the next overflow starts a new one.
    l.recv().unwrap();
    std::thread::spawn(|| ()).join().unwrap();
    while l.recv().unwrap().is_none_or(|b| b.records.is_empty()) {
        assert!(Instant::now() < deadline, "no record: {:?}", l.stats());
    }
    let base = l.stats();
    for _ in 0..200 {
        std::thread::spawn(|| ()).join().unwrap();
    }
    // Some of those records were dropped: the next receive reports it.
    while l.stats().overflows == base.overflows {
        assert!(Instant::now() < deadline, "no overflow: {:?}", l.stats());
        l.recv().unwrap();
    }
    assert_eq!(l.stats().outages, base.outages + 1);
    // Records flow again after it, and a later overflow is a new outage
    // only after data came in between.
    let after = l.stats().records;
    std::thread::spawn(|| ()).join().unwrap();
    while l.stats().records == after {
        assert!(Instant::now() < deadline, "no record after the overflow");
        l.recv().unwrap();
    }
    assert!(l.stats().outages <= l.stats().overflows);
}

#[test]
fn live_group_query_tells_a_still_group_from_one_that_ran() {
    let Some(mut q) = crate::proc::live_group::group_query() else {
        return;
    };
    let own = q.query(std::process::id()).unwrap().unwrap();
    assert!(own.run_ns > 0, "{own:?}");

    let (mut child, pid) = crate::support::procs::spawn_worker();
    let tgid = pid as u32;
    // Two answers 100 ms apart agree once the interpreter has settled.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = q.query(tgid).unwrap().unwrap();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = q.query(tgid).unwrap().unwrap();
        if now == last {
            break;
        }
        assert!(Instant::now() < deadline, "never still: {last:?} {now:?}");
        last = now;
    }
    crate::support::procs::wake_worker(&mut child, pid);
    let ran = q.query(tgid).unwrap().unwrap();
    assert!(
        ran.run_ns >= last.run_ns + 55_000_000,
        "60 ms of run time not summed: {last:?} then {ran:?}"
    );
    crate::support::procs::stop_workload(child);
    // Reaped: no such group any more.
    assert_eq!(q.query(tgid).unwrap(), None);
}

/// Many tasks asked at once (more than one datagram of requests): every
/// live one is answered, each with its own `schedstat` numbers and
/// `status` context switches, and one that does not exist is not.
#[test]
fn live_task_queries_in_batches_answer_each_task_with_its_own_counters() {
    use procgroups::proc::GroupProbe;
    let Some(mut q) = crate::proc::live_group::group_query() else {
        return;
    };
    // 300 sleeping processes: three datagrams of requests.
    let mut children: Vec<_> = (0..300)
        .map(|_| {
            Command::new("sleep")
                .arg("60")
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut pids: Vec<i32> = children.iter().map(|c| c.id() as i32).collect();
    // Each has gone to sleep once its schedstat stops moving.
    let schedstat = |pid: i32| std::fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut before: Vec<String> = pids.iter().map(|&p| schedstat(p)).collect();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now: Vec<String> = pids.iter().map(|&p| schedstat(p)).collect();
        if now == before {
            break;
        }
        assert!(Instant::now() < deadline, "the sleeps never settled");
        before = now;
    }
    pids.push(i32::MAX); // no such task
    let mut answers = Vec::new();
    q.tasks(&pids, &mut answers);
    assert_eq!(answers.len(), pids.len());
    assert_eq!(answers.last(), Some(&None));
    for (&pid, answer) in pids.iter().zip(&answers).take(300) {
        let a = answer.unwrap_or_else(|| panic!("{pid} not answered"));
        let sched: Vec<u64> = schedstat(pid)
            .split_whitespace()
            .map(|w| w.parse().unwrap())
            .collect();
        assert_eq!((a.run_ns, a.slices), (sched[0], sched[2]), "{pid}");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let ctx = |key: &str| -> u64 {
            let line = status.lines().find(|l| l.starts_with(key)).unwrap();
            line.split_whitespace().nth(1).unwrap().parse().unwrap()
        };
        assert_eq!(
            (a.ctx_voluntary, a.ctx_nonvoluntary),
            (
                ctx("voluntary_ctxt_switches"),
                ctx("nonvoluntary_ctxt_switches")
            ),
            "{pid}"
        );
    }
    for c in &mut children {
        c.kill().unwrap();
        c.wait().unwrap();
    }
}
