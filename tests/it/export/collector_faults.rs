//! Collector faults, with the in-process OTLP receiver and with a real
//! collector (rotel): absent when the agent starts, killed mid-run and
//! restarted on the same port, refusing exports with `UNAVAILABLE`, and
//! stalling longer than the export timeout (the receiver never answers;
//! rotel is stopped with SIGSTOP).
//!
//! In every case the agent keeps its timer (each cycle starts less than one
//! interval off its slot on the schedule), its memory stays
//! bounded, each outage is logged once with the endpoint and the cause, and
//! the first export after recovery carries cumulative values no lower than
//! the last export before the outage, and high enough to include the outage.
//!
//! The agent tracks itself: it runs under a comm of its own (a symlink to
//! the binary), so its group has exactly one process whose CPU time the
//! test reads from `/proc` independently. Its CPU counter counts from the
//! first cycle, so in an export made from a cycle that read the agent's CPU
//! after the test read `B` ticks of it, it is at least `B - A`, where `A` was
//! read just after the first cycle was logged.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use crate::support::otlp::{Point, counters, points_of};
use crate::support::procs::{Agent, agent_command, free_port, log_field, unique_name};
use crate::support::receiver::{Mode, Receiver};
use crate::support::rotel::{DebugPoint, Rotel};
use procgroups::telemetry::catalogue as cat;

/// Collection interval of the agents under test.
const INTERVAL: Duration = Duration::from_millis(200);
/// Export interval (ms): exports as often as cycles.
const EXPORT_INTERVAL_MS: &str = "200";
/// Export timeout (ms): a stall longer than this is a failed export.
const EXPORT_TIMEOUT_MS: u64 = 500;
/// How long each outage lasts: several failed exports.
const OUTAGE: Duration = Duration::from_millis(1500);
const WAIT: Duration = Duration::from_secs(20);

/// One agent under test, tracking itself.
struct Subject {
    agent: Agent,
    comm: String,
    endpoint: String,
    pid: u32,
    /// Agent CPU ticks read just after its first cycle was logged.
    cpu_after_first_cycle: u64,
    /// RSS (KiB) after warm-up.
    rss_warm: u64,
    /// When the warm-up ended.
    warm: SystemTime,
    /// Highest RSS (KiB) seen during the outages.
    rss_outage: u64,
    /// RSS (KiB) when the first export after an outage was seen: the
    /// reference for the end when no export had succeeded before (the
    /// export path then allocates its buffers for the first time).
    rss_recovered: Option<u64>,
    _dir: tempfile::TempDir,
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 1..];
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 of stat; the list starts at field 3.
    fields[11] + fields[12]
}

/// VmRSS of `pid`, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn ticks_to_seconds(ticks: u64) -> f64 {
    ticks as f64 / rustix::param::clock_ticks_per_second() as f64
}

impl Subject {
    /// Starts an agent exporting to `endpoint` and waits for its warm-up.
    fn start(endpoint: &str) -> Subject {
        let dir = tempfile::tempdir().unwrap();
        let comm = unique_name("pgcf");
        let exe: PathBuf = dir.path().join(&comm);
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_procgroups"), &exe).unwrap();
        let template = agent_command();
        let mut cmd = Command::new(&exe);
        for (k, v) in template.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd.args([
            "--procnames",
            &comm,
            "--interval",
            &format!("{}ms", INTERVAL.as_millis()),
            "--threads",
            "false",
        ])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_METRIC_EXPORT_INTERVAL", EXPORT_INTERVAL_MS)
        .env("OTEL_EXPORTER_OTLP_TIMEOUT", EXPORT_TIMEOUT_MS.to_string())
        .env("RUST_LOG", "procgroups=debug");
        let agent = Agent::spawn(cmd);
        let pid = agent.pid();
        assert!(
            agent.wait_for_log("cycle done", WAIT),
            "no cycle: {}",
            agent.log()
        );
        let cpu_after_first_cycle = cpu_ticks(pid);
        // Warm: a second after the first export attempt, whatever its
        // outcome, so that the exporter has built what it keeps.
        let deadline = Instant::now() + WAIT;
        while !["first metrics export succeeded", "metrics export failed"]
            .iter()
            .any(|m| agent.log().contains(m))
        {
            assert!(Instant::now() < deadline, "no export: {}", agent.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_secs(1));
        let rss_warm = rss_kib(pid);
        let warm = SystemTime::now();
        Subject {
            warm,
            agent,
            comm,
            endpoint: endpoint.to_string(),
            pid,
            cpu_after_first_cycle,
            rss_warm,
            rss_outage: rss_warm,
            rss_recovered: None,
            _dir: dir,
        }
    }

    /// Notes the RSS now, during an outage.
    fn sample(&mut self) {
        self.rss_outage = self.rss_outage.max(rss_kib(self.pid));
    }

    /// Notes the RSS once the first export after an outage was seen.
    fn recovered(&mut self) {
        self.rss_recovered.get_or_insert_with(|| rss_kib(self.pid));
    }

    /// Waits through an outage already under way: until it is logged, then
    /// for the rest of [`OUTAGE`], sampling memory. Returns the agent's CPU
    /// ticks read long enough before it returns (two intervals and an export
    /// timeout) that any export that succeeds after the collector comes back
    /// was taken from a cycle that read the agent's CPU later: a cycle may
    /// run late, and an export may wait for its connection after taking its
    /// values.
    fn sit_out_outage(&mut self, outages_so_far: usize) -> u64 {
        let began = Instant::now();
        let deadline = began + WAIT;
        while self.outage_warnings().len() <= outages_so_far {
            assert!(
                Instant::now() < deadline,
                "outage not logged: {}",
                self.agent.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        while began.elapsed() < OUTAGE {
            self.sample();
            std::thread::sleep(Duration::from_millis(100));
        }
        let cpu = cpu_ticks(self.pid);
        std::thread::sleep(INTERVAL * 2 + Duration::from_millis(EXPORT_TIMEOUT_MS));
        cpu
    }

    /// The lower bound of the group's CPU seconds in any export made after
    /// [`Subject::sit_out_outage`] returned `cpu_before_recovery`.
    ///
    /// Less a nanosecond: the exported total is a sum of per-cycle
    /// increments in floating point, which can fall a few ulps short of the
    /// same ticks converted at once (0.07999999999999999 against 0.08).
    fn cpu_floor(&self, cpu_before_recovery: u64) -> f64 {
        ticks_to_seconds(cpu_before_recovery.saturating_sub(self.cpu_after_first_cycle)) - 1e-9
    }

    fn outage_warnings(&self) -> Vec<String> {
        self.agent
            .log()
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("metrics export failed"))
            .map(str::to_string)
            .collect()
    }

    /// The checks every scenario ends with: the timer kept its interval,
    /// memory stayed bounded, `outages` outages were each logged once with
    /// the endpoint and a cause, and the agent stops cleanly.
    fn finish(mut self, outages: usize, cause: &[&str]) {
        // The agent logs the recovery once the collector has answered, which
        // may be just after the collector showed the export to the test.
        let deadline = Instant::now() + WAIT;
        while self.agent.log().matches("metrics export recovered").count() < outages
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let rss_end = rss_kib(self.pid);
        let log = self.agent.log();

        // The timer keeps its interval through the outages: each cycle is
        // due one interval after the previous one started or, if that one
        // overran the interval (a slow, loaded host; the timer then skips
        // the slots it covered), as soon as it ended; it must start less
        // than one interval off that. An export that held up the loop (a
        // stall waits up to the export timeout) pushes the next cycle
        // further than that. (Slots reckoned from the first cycle alone
        // would misplace a cycle that ended within the few milliseconds
        // the first one started after its slot.)
        let cycles = cycles(&log);
        assert!(cycles.len() >= 10, "{} cycles: {log}", cycles.len());
        for pair in cycles.windows(2).filter(|w| w[0].start >= self.warm) {
            let (a, b) = (&pair[0], &pair[1]);
            assert_eq!(b.n, a.n + 1, "cycles missing from the log\n{log}");
            let due = (a.start + INTERVAL).max(a.start + a.took);
            let drift = match b.start.duration_since(due) {
                Ok(late) => late,
                Err(early) => early.duration(),
            };
            assert!(
                drift < INTERVAL,
                "cycle {} started {drift:?} off its slot (cycle {} took {:?})\n{log}",
                b.n,
                a.n,
                a.took
            );
        }

        // Bounded memory: an outage holds at most a few buffers (within
        // 10% + 2 MiB of the warm RSS), not a queue of every failed export,
        // and nothing keeps growing once exports succeed again.
        let bound = |reference: u64| reference + reference / 10 + 2048;
        assert!(
            self.rss_outage <= bound(self.rss_warm),
            "RSS grew from {} KiB after warm-up to {} KiB during the outage",
            self.rss_warm,
            self.rss_outage
        );
        let reference = self.rss_warm.max(self.rss_recovered.unwrap());
        assert!(
            rss_end <= bound(reference),
            "RSS {rss_end} KiB at the end, {reference} KiB after warm-up and recovery"
        );

        let warnings = self.outage_warnings();
        assert_eq!(warnings.len(), outages, "one warning per outage: {log}");
        for w in &warnings {
            assert!(w.contains(&self.endpoint), "no endpoint in {w}");
            assert!(
                cause.iter().any(|c| w.contains(c)),
                "no cause among {cause:?} in {w}"
            );
        }
        assert!(
            log.matches("metrics export recovered").count() >= outages,
            "{log}"
        );
        assert!(!log.contains("panicked"), "{log}");

        assert!(self.agent.is_running(), "{log}");
        self.agent.terminate();
        let status = self.agent.wait_timeout(Duration::from_secs(6)).unwrap();
        assert!(status.success(), "{status:?}: {}", self.agent.log());
    }
}

/// One cycle as the agent logged it.
struct LoggedCycle {
    n: u64,
    start: SystemTime,
    took: Duration,
}

/// Every cycle the agent logged, in order.
fn cycles(log: &str) -> Vec<LoggedCycle> {
    log.lines()
        .filter(|l| l.contains("cycle done"))
        .filter_map(|l| {
            let field = |key: &str| log_field(l, key);
            Some(LoggedCycle {
                n: field("cycle=")?.parse().ok()?,
                start: humantime::parse_rfc3339(field("started=")?).ok()?,
                took: Duration::from_secs_f64(field("duration_ms=")?.parse::<f64>().ok()? / 1e3),
            })
        })
        .collect()
}

/// The counters (monotonic sums) of the subject's group in one export,
/// by metric and attributes.
fn group_counters(points: &[Point], comm: &str) -> BTreeMap<String, f64> {
    counters(
        points
            .iter()
            .filter(|p| p.attrs.get("procgroup.name").map(String::as_str) == Some(comm)),
    )
}

fn cpu_seconds(counters: &BTreeMap<String, f64>) -> f64 {
    counters
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{} ", cat::CPU_TIME.name)))
        .map(|(_, v)| v)
        .sum()
}

/// Every counter of `before` is present in `after` with at least its value.
fn assert_no_lower(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) {
    assert!(!before.is_empty());
    for (series, b) in before {
        let a = after
            .get(series)
            .unwrap_or_else(|| panic!("{series} missing after the outage: {after:?}"));
        assert!(a >= b, "{series}: {b} before the outage, {a} after");
    }
}

/// The counters of the subject in the receiver's accepted exports, in order.
fn received_counters(receiver: &Receiver, comm: &str) -> Vec<BTreeMap<String, f64>> {
    receiver
        .received()
        .iter()
        .map(|r| group_counters(&points_of(&r.request), comm))
        .filter(|c| !c.is_empty())
        .collect()
}

/// Waits for the `n`th accepted export (counting from 1) that has the
/// subject's group, and returns its counters.
fn nth_export(receiver: &Receiver, comm: &str, n: usize, agent: &Agent) -> BTreeMap<String, f64> {
    receiver
        .wait_for(WAIT, |r| {
            r.iter()
                .map(|x| group_counters(&points_of(&x.request), comm))
                .filter(|c| !c.is_empty())
                .nth(n - 1)
        })
        .unwrap_or_else(|| panic!("no export #{n}: {}", agent.log()))
}

const REFUSED: &[&str] = &["Unavailable", "onnect", "refused"];
const TIMED_OUT: &[&str] = &["imeout", "imed out", "eadline", "DeadlineExceeded"];

#[test]
fn receiver_absent_at_start() {
    let port = free_port();
    let mut s = Subject::start(&format!("http://127.0.0.1:{port}"));
    let cpu = s.sit_out_outage(0);
    let receiver = Receiver::start_on(format!("127.0.0.1:{port}").parse().unwrap());
    let first = nth_export(&receiver, &s.comm, 1, &s.agent);
    s.recovered();
    assert!(
        cpu_seconds(&first) >= s.cpu_floor(cpu),
        "first export {} s of CPU, the agent used {} s before the collector came",
        cpu_seconds(&first),
        s.cpu_floor(cpu)
    );
    // The series began before the outage ended: cumulative since the agent
    // started, not since the collector appeared.
    let points = points_of(&receiver.received()[0].request);
    let started = points
        .iter()
        .find(|p| p.metric == cat::CPU_TIME.name)
        .map(|p| p.start_time_unix_nano)
        .unwrap();
    let recovered = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    assert!(started + 1_000_000_000 < recovered, "{started} {recovered}");
    receiver.wait_for_exports(3, WAIT);
    s.finish(1, REFUSED);
}

#[test]
fn receiver_killed_and_restarted_twice() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut receiver = Receiver::start_on(addr);
    let mut s = Subject::start(&receiver.endpoint());
    for outage in 0..2 {
        nth_export(&receiver, &s.comm, 2, &s.agent);
        let before = received_counters(&receiver, &s.comm).pop().unwrap();
        drop(receiver);
        let cpu = s.sit_out_outage(outage);
        receiver = Receiver::start_on(addr);
        let after = nth_export(&receiver, &s.comm, 1, &s.agent);
        s.recovered();
        assert_no_lower(&before, &after);
        assert!(cpu_seconds(&after) >= s.cpu_floor(cpu), "{after:?}");
        assert!(cpu_seconds(&after) > cpu_seconds(&before), "{after:?}");
    }
    nth_export(&receiver, &s.comm, 3, &s.agent);
    s.finish(2, REFUSED);
}

#[test]
fn receiver_answering_unavailable() {
    let receiver = Receiver::start();
    let mut s = Subject::start(&receiver.endpoint());
    nth_export(&receiver, &s.comm, 2, &s.agent);
    receiver.set_mode(Mode::Unavailable);
    // An export in flight when the mode changed may still be accepted.
    std::thread::sleep(INTERVAL * 2);
    let accepted = received_counters(&receiver, &s.comm);
    let before = accepted.last().unwrap().clone();
    let cpu = s.sit_out_outage(0);
    let refused = receiver.attempts();
    receiver.set_mode(Mode::Accept);
    let after = nth_export(&receiver, &s.comm, accepted.len() + 1, &s.agent);
    s.recovered();
    assert!(refused > accepted.len() + 3, "few exports were refused");
    assert_no_lower(&before, &after);
    assert!(cpu_seconds(&after) >= s.cpu_floor(cpu), "{after:?}");
    nth_export(&receiver, &s.comm, accepted.len() + 3, &s.agent);
    s.finish(1, &["Unavailable", "refuse"]);
}

#[test]
fn receiver_stalling_longer_than_the_export_timeout() {
    let receiver = Receiver::start();
    let mut s = Subject::start(&receiver.endpoint());
    nth_export(&receiver, &s.comm, 2, &s.agent);
    receiver.set_mode(Mode::Stall);
    std::thread::sleep(INTERVAL * 2);
    let accepted = received_counters(&receiver, &s.comm);
    let before = accepted.last().unwrap().clone();
    let cpu = s.sit_out_outage(0);
    let recovered = Instant::now();
    receiver.set_mode(Mode::Accept);
    // Exports released from the stall were given up by the agent long ago;
    // the first one made after the recovery is what counts.
    let after = receiver
        .wait_for(WAIT, |r| {
            r.iter()
                .filter(|x| x.at > recovered)
                .map(|x| group_counters(&points_of(&x.request), &s.comm))
                .find(|c| !c.is_empty() && cpu_seconds(c) >= s.cpu_floor(cpu))
        })
        .unwrap_or_else(|| panic!("no export after the stall: {}", s.agent.log()));
    s.recovered();
    assert_no_lower(&before, &after);
    // Every export accepted after the stall, whenever it was made, is at
    // least what was accepted before it.
    for c in received_counters(&receiver, &s.comm)
        .iter()
        .skip(accepted.len())
    {
        assert_no_lower(&before, c);
    }
    nth_export(&receiver, &s.comm, accepted.len() + 3, &s.agent);
    s.finish(1, TIMED_OUT);
}

/// The subject's counters in each export rotel printed.
fn rotel_counters(exports: &[Vec<DebugPoint>], comm: &str) -> Vec<BTreeMap<String, f64>> {
    exports
        .iter()
        .map(|points| {
            points
                .iter()
                .filter(|p| p.has("procgroup.name", comm))
                .filter(|p| {
                    [
                        cat::CPU_TIME.name,
                        cat::PAGING_FAULTS.name,
                        cat::CONTEXT_SWITCHES.name,
                        cat::DISK_IO.name,
                    ]
                    .contains(&p.metric.as_str())
                })
                .filter_map(|p| {
                    let mut attrs = p.attrs.clone();
                    attrs.sort();
                    Some((format!("{} {attrs:?}", p.metric), p.value?))
                })
                .collect::<BTreeMap<_, _>>()
        })
        .filter(|c| !c.is_empty())
        .collect()
}

fn rotel_binary() -> Option<PathBuf> {
    crate::support::tools::require(&crate::support::tools::ROTEL)
}

/// Waits until rotel has printed `n` exports with the subject's group.
fn rotel_exports(rotel: &Rotel, comm: &str, n: usize, s: &Subject) -> Vec<BTreeMap<String, f64>> {
    assert!(
        rotel.wait_for(WAIT, |e| rotel_counters(e, comm).len() >= n),
        "rotel printed fewer than {n} exports\nrotel:\n{}\nagent:\n{}",
        rotel.output(),
        s.agent.log()
    );
    rotel_counters(&rotel.exports(), comm)
}

#[test]
fn rotel_absent_at_start() {
    let Some(bin) = rotel_binary() else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut s = Subject::start(&format!("http://127.0.0.1:{port}"));
    let cpu = s.sit_out_outage(0);
    let rotel = Rotel::start(&bin, port, dir.path());
    let first = rotel_exports(&rotel, &s.comm, 1, &s)[0].clone();
    s.recovered();
    assert!(cpu_seconds(&first) >= s.cpu_floor(cpu), "{first:?}");
    rotel_exports(&rotel, &s.comm, 3, &s);
    s.finish(1, REFUSED);
}

#[test]
fn rotel_killed_and_restarted() {
    let Some(bin) = rotel_binary() else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let rotel = Rotel::start(&bin, port, dir.path());
    let mut s = Subject::start(&format!("http://127.0.0.1:{port}"));
    let before = rotel_exports(&rotel, &s.comm, 2, &s).pop().unwrap();
    rotel.kill();
    let cpu = s.sit_out_outage(0);
    let rotel = Rotel::start(&bin, port, dir.path());
    let after = rotel_exports(&rotel, &s.comm, 1, &s)[0].clone();
    s.recovered();
    assert_no_lower(&before, &after);
    assert!(cpu_seconds(&after) >= s.cpu_floor(cpu), "{after:?}");
    rotel_exports(&rotel, &s.comm, 3, &s);
    s.finish(1, REFUSED);
}

#[test]
fn rotel_stopped_longer_than_the_export_timeout() {
    let Some(bin) = rotel_binary() else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let rotel = Rotel::start(&bin, port, dir.path());
    let mut s = Subject::start(&format!("http://127.0.0.1:{port}"));
    let printed = rotel_exports(&rotel, &s.comm, 2, &s);
    rotel.stop();
    let before = printed.last().unwrap().clone();
    let cpu = s.sit_out_outage(0);
    rotel.cont();
    // Requests the agent gave up may still be printed once rotel runs
    // again; every export printed after the stop is at least the last one
    // before it, and one made after the recovery includes the outage.
    let floor = s.cpu_floor(cpu);
    assert!(
        rotel.wait_for(WAIT, |e| {
            rotel_counters(e, &s.comm)
                .iter()
                .any(|c| cpu_seconds(c) >= floor)
        }),
        "no export with {floor} s of CPU after the stall\nrotel:\n{}\nagent:\n{}",
        rotel.output(),
        s.agent.log()
    );
    s.recovered();
    let all = rotel_counters(&rotel.exports(), &s.comm);
    for c in &all[printed.len()..] {
        assert_no_lower(&before, c);
    }
    s.finish(1, TIMED_OUT);
}
