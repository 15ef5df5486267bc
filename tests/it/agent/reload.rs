//! Reloading the rules while the agent runs: on SIGHUP, and when a mounted
//! ConfigMap swaps its `..data` symlink. The groups change within two
//! cycles, a group that survives keeps one series whose CPU counter never
//! goes down, an invalid file keeps the old rules (and says so), and the
//! agent is alive after each.

use std::path::PathBuf;
use std::time::Duration;

use crate::support::otlp::{Point, points_of};
use crate::support::procs::{Agent, Workload, agent_command, status_client, unique_name};
use crate::support::receiver::Receiver;
use procgroups::telemetry::catalogue as cat;

const WAIT: Duration = Duration::from_secs(20);

/// A directory laid out as the kubelet mounts a ConfigMap:
/// `config.yaml -> ..data/config.yaml`, `..data -> <version dir>`.
struct ConfigMapDir {
    dir: tempfile::TempDir,
    versions: usize,
}

impl ConfigMapDir {
    fn new(yaml: &str) -> ConfigMapDir {
        let mut c = ConfigMapDir {
            dir: tempfile::tempdir().unwrap(),
            versions: 0,
        };
        let version = c.version(yaml);
        std::os::unix::fs::symlink(&version, c.dir.path().join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/config.yaml", c.file()).unwrap();
        c
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("config.yaml")
    }

    fn version(&mut self, yaml: &str) -> PathBuf {
        self.versions += 1;
        let v = self.dir.path().join(format!("..v{}", self.versions));
        std::fs::create_dir(&v).unwrap();
        std::fs::write(v.join("config.yaml"), yaml).unwrap();
        v
    }

    /// The kubelet's update: a new version directory, then a new `..data`
    /// link renamed over the old one (atomic).
    fn swap(&mut self, yaml: &str) {
        let version = self.version(yaml);
        let tmp = self.dir.path().join("..data_tmp");
        std::os::unix::fs::symlink(&version, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.path().join("..data")).unwrap();
    }

    /// Rewrites the current version in place without changing its size,
    /// inode or modification time, so that only a SIGHUP can reveal it.
    fn rewrite_unnoticed(&self, yaml: &str) {
        let path = std::fs::canonicalize(self.file()).unwrap();
        let before = std::fs::metadata(&path).unwrap();
        assert_eq!(before.len(), yaml.len() as u64, "same size");
        std::fs::write(&path, yaml).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(before.modified().unwrap())
            .unwrap();
    }
}

fn rules(keep: &str, moving: &str, stage: &str) -> String {
    format!(
        "process_names:\n  - name: keep\n    comm: [{keep}]\n  - name: {stage}\n    comm: [{moving}]\n"
    )
}

fn group_names(points: &[Point]) -> Vec<String> {
    let mut names: Vec<String> = points
        .iter()
        .filter(|p| p.metric == cat::CPU_TIME.name)
        .filter_map(|p| p.attrs.get(cat::attr::GROUP_NAME).cloned())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Whether `group` had processes in the export (it may linger with its
/// counters after its members left).
fn has_members(points: &[Point], group: &str) -> bool {
    points.iter().any(|p| {
        p.metric == cat::PROCESSES.name
            && p.attrs.get(cat::attr::GROUP_NAME).map(String::as_str) == Some(group)
            && p.value > 0.0
    })
}

fn wait_members(receiver: &Receiver, group: &str) -> bool {
    receiver
        .wait_for_points(WAIT, |points| has_members(points, group))
        .is_some()
}

fn sighup(agent: &Agent) {
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(agent.pid() as i32).unwrap(),
        rustix::process::Signal::HUP,
    )
    .unwrap();
}

/// The CPU counter of `group` (user + system) in every export, in order,
/// with the start time of its series.
fn cpu_series(receiver: &Receiver, group: &str) -> Vec<(f64, u64)> {
    receiver
        .received()
        .iter()
        .filter_map(|r| {
            let points = points_of(&r.request);
            let cpu: Vec<&Point> = points
                .iter()
                .filter(|p| {
                    p.metric == cat::CPU_TIME.name
                        && p.attrs.get(cat::attr::GROUP_NAME).map(String::as_str) == Some(group)
                })
                .collect();
            (!cpu.is_empty()).then(|| {
                (
                    cpu.iter().map(|p| p.value).sum(),
                    cpu[0].start_time_unix_nano,
                )
            })
        })
        .collect()
}

/// Cycles the agent finished between the log offset `from` and the `nth`
/// reload line after it. The reload runs at the start of the first cycle
/// after the trigger, so at most the cycle in flight when the trigger came
/// (and one line still in the log pipe) may come before it.
fn cycles_before_reload(agent: &Agent, from: usize, nth: usize) -> usize {
    let needle = "configuration reloaded";
    assert!(
        agent.wait_for_log(needle, WAIT) && {
            let deadline = std::time::Instant::now() + WAIT;
            loop {
                if agent.log()[from..].matches(needle).count() >= nth
                    || std::time::Instant::now() > deadline
                {
                    break true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        },
        "{}",
        agent.log()
    );
    let log = agent.log();
    let after = &log[from..];
    let mut end = 0;
    for _ in 0..nth {
        end += after[end..].find(needle).expect("a reload line") + needle.len();
    }
    let last_reload = after[..end].rfind(needle).unwrap();
    after[..last_reload].matches("cycle done").count()
}

fn alive(agent: &mut Agent) {
    assert!(agent.is_running(), "the agent died:\n{}", agent.log());
}

fn wait_cycles_past(receiver: &Receiver, exports: usize) {
    let now = receiver.received().len();
    assert!(receiver.wait_for_exports(now + exports, WAIT));
}

/// The agent running over a ConfigMap directory of rules, with a spinning
/// workload whose group survives every reload and one that moves from
/// group to group with the stages.
struct ReloadRun {
    keep: String,
    moving: String,
    keeper: Workload,
    mover: Workload,
    receiver: Receiver,
    configmap: ConfigMapDir,
    socket: PathBuf,
    agent: Agent,
}

impl ReloadRun {
    /// Starts the agent on the rules of `stage-1` and waits for both groups.
    fn start() -> ReloadRun {
        let keep = unique_name("pgrk");
        let moving = unique_name("pgrm");
        let keeper = Workload::named(&keep).threads(1, "worker").spin().spawn();
        let mover = Workload::named(&moving).spawn();
        let receiver = Receiver::start();
        let configmap = ConfigMapDir::new(&rules(&keep, &moving, "stage-1"));
        let socket = configmap.dir.path().join("status.sock");
        let mut cmd = agent_command();
        cmd.arg("--config")
            .arg(configmap.file())
            .arg("--status-socket")
            .arg(&socket)
            .args(["--interval", "300ms"])
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
            .env("OTEL_METRIC_EXPORT_INTERVAL", "300")
            .env("RUST_LOG", "info,procgroups::agent=debug");
        let agent = Agent::spawn(cmd);
        assert!(wait_members(&receiver, "stage-1"), "{}", agent.log());
        assert!(has_members(
            &receiver
                .wait_for_points(WAIT, |p| has_members(p, "keep"))
                .unwrap(),
            "keep"
        ));
        ReloadRun {
            keep,
            moving,
            keeper,
            mover,
            receiver,
            configmap,
            socket,
            agent,
        }
    }

    fn rules(&self, stage: &str) -> String {
        rules(&self.keep, &self.moving, stage)
    }

    /// Waits for the group `stage`, which `change` brings, and checks that
    /// it came within two cycles of the change.
    fn reloads_to(&mut self, stage: &str, change: impl FnOnce(&mut ReloadRun)) {
        std::thread::sleep(Duration::from_millis(100));
        let from = self.agent.log().len();
        change(self);
        assert!(wait_members(&self.receiver, stage), "{}", self.agent.log());
        let cycles = cycles_before_reload(&self.agent, from, 1);
        assert!(
            cycles <= 2,
            "{cycles} cycles before the reload:\n{}",
            self.agent.log()
        );
    }

    /// SIGHUP: the file changed in a way only a reload can see.
    fn sighup_reloads(&mut self) {
        let stage_2 = self.rules("stage-2");
        self.configmap.rewrite_unnoticed(&stage_2);
        wait_cycles_past(&self.receiver, 2);
        let points = self.receiver.received();
        let last = points_of(&points.last().unwrap().request);
        assert!(has_members(&last, "stage-1"), "no reload without SIGHUP");
        self.reloads_to("stage-2", |run| sighup(&run.agent));
        let points = self
            .receiver
            .wait_for_points(WAIT, |p| has_members(p, "stage-2"))
            .unwrap();
        assert!(
            !has_members(&points, "stage-1"),
            "{:?}",
            group_names(&points)
        );
        alive(&mut self.agent);
        assert!(
            self.agent.log().contains("configuration reloaded"),
            "{}",
            self.agent.log()
        );
    }

    /// The ConfigMap's swap, seen without any signal; `explain` answers
    /// with the rules in force.
    fn configmap_swap_reloads(&mut self) {
        let stage_3 = self.rules("stage-3");
        self.reloads_to("stage-3", |run| run.configmap.swap(&stage_3));
        alive(&mut self.agent);
        let out = status_client(&self.socket, &["explain", &self.mover.pid.to_string()]);
        let explained = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{explained}");
        assert!(explained.contains("group:     stage-3"), "{explained}");
        assert!(explained.contains("name \"stage-3\""), "{explained}");
    }

    /// An invalid version: refused, on the swap and on SIGHUP, counted, and
    /// the rules stay.
    fn invalid_rules_are_refused(&mut self) {
        self.configmap
            .swap("process_names:\n  - name: broken\n    cmdline: ['(unclosed']\n");
        assert!(
            self.agent
                .wait_for_log("configuration reload refused", WAIT),
            "{}",
            self.agent.log()
        );
        sighup(&self.agent);
        // Refused again, and counted.
        assert!(
            self.agent.wait_for_log("failed_reloads=2", WAIT),
            "{}",
            self.agent.log()
        );
        wait_cycles_past(&self.receiver, 3);
        alive(&mut self.agent);
        let last = points_of(&self.receiver.received().last().unwrap().request);
        assert!(has_members(&last, "stage-3"), "{:?}", group_names(&last));
        assert!(!group_names(&last).contains(&"broken".to_string()));
    }

    /// The surviving group: one series, never going down, still counting.
    fn the_surviving_group_kept_one_series(&self) {
        let series = cpu_series(&self.receiver, "keep");
        assert!(series.len() > 5, "{series:?}");
        for pair in series.windows(2) {
            assert!(pair[1].0 >= pair[0].0, "CPU went down: {series:?}");
            assert_eq!(pair[1].1, pair[0].1, "start time changed: {series:?}");
        }
        assert!(series.last().unwrap().0 > series[0].0, "{series:?}");
    }

    fn stop(mut self) {
        self.agent.terminate();
        assert!(
            self.agent
                .wait_timeout(Duration::from_secs(10))
                .unwrap()
                .success()
        );
        self.keeper.stop();
        self.mover.stop();
    }
}

/// One run through the stages in order: each reload is checked on the
/// same agent, and the surviving group's series across all of them.
#[test]
fn sighup_and_a_configmap_swap_reload_the_rules_and_keep_the_counters() {
    let _cpu = crate::support::cpu_heavy();
    let mut run = ReloadRun::start();
    run.sighup_reloads();
    run.configmap_swap_reloads();
    run.invalid_rules_are_refused();
    run.the_surviving_group_kept_one_series();
    run.stop();
}
