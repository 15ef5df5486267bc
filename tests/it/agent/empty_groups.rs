//! Empty groups are forgotten after their time to live: the real agent
//! and an in-process receiver see the group's series disappear and come
//! back under the same start time with a value not below the last one;
//! under delta temporality, where a resumed total would be sent again, an
//! explicit time to live is refused and the default gives way.

use std::time::Duration;

use crate::support::otlp::{Point, points_of};
use crate::support::procs::{Agent, Workload, agent_command, start_agent, unique_name};
use crate::support::receiver::Receiver;

const WAIT: Duration = Duration::from_secs(20);

/// The user-mode CPU point of group `name` in `points`.
fn cpu_user<'a>(points: &'a [Point], name: &str) -> Option<&'a Point> {
    points.iter().find(|p| {
        p.metric == "procgroup.cpu.time"
            && p.attrs.get("procgroup.name").map(String::as_str) == Some(name)
            && p.attrs.get("cpu.mode").map(String::as_str) == Some("user")
    })
}

/// The points of group `name` in the last export so far.
fn last_of_group(receiver: &Receiver, name: &str) -> Vec<Point> {
    let last = receiver.received();
    points_of(&last.last().unwrap().request)
        .into_iter()
        .filter(|p| p.attrs.get("procgroup.name").map(String::as_str) == Some(name))
        .collect()
}

/// The agent with rules naming the comm `name` and a time to live of one
/// second for empty groups, started and logging; its config lives in `dir`.
fn agent_with_a_ttl(dir: &std::path::Path, name: &str, receiver: &Receiver) -> Agent {
    let config = dir.join("procgroups.yaml");
    std::fs::write(
        &config,
        format!(
            "empty_group_ttl: 1s\nprocess_names:\n  - name: \"{{{{.Comm}}}}\"\n    comm: [{name}]\n"
        ),
    )
    .unwrap();
    let mut cmd = agent_command();
    cmd.arg("--config")
        .arg(&config)
        .args(["--interval", "200ms", "--threads", "false"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
        .env("RUST_LOG", "procgroups=info");
    let agent = Agent::spawn(cmd);
    assert!(
        agent.wait_for_log("procgroups started", WAIT),
        "{}",
        agent.log()
    );
    agent
}

/// Waits for an export without group `name` at all.
fn wait_until_forgotten(receiver: &Receiver, name: &str, agent: &Agent) {
    let gone = receiver.wait_for(WAIT, |r| {
        let last = points_of(&r.last()?.request);
        let has_group = last
            .iter()
            .any(|p| p.attrs.get("procgroup.name").map(String::as_str) == Some(name));
        // (The agent's own metrics are always there.)
        let exporting = !last.is_empty();
        (exporting && !has_group).then_some(())
    });
    if gone.is_none() {
        let mine: Vec<_> = last_of_group(receiver, name)
            .into_iter()
            .map(|p| (p.metric, p.attrs, p.value))
            .collect();
        panic!("{name} never forgotten: {mine:#?}\n{}", agent.log());
    }
}

#[test]
fn an_empty_group_is_forgotten_after_its_ttl_and_resumes_its_counters() {
    let name = unique_name("pgttl");
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let agent = agent_with_a_ttl(dir.path(), &name, &receiver);

    // Start times are reckoned from the boot time, which /proc gives in
    // whole seconds: more than a second after the first cycle, the
    // workload is surely born after it, and its CPU burnt before ready
    // counts.
    std::thread::sleep(Duration::from_millis(1500));
    let workload = Workload::named(&name).busy_ms(300).spawn();
    let before = receiver
        .wait_for_points(WAIT, |p| cpu_user(p, &name).is_some_and(|p| p.value > 0.0))
        .unwrap_or_else(|| {
            let mine = last_of_group(&receiver, &name);
            panic!("no CPU for {name}: {mine:#?}\n{}", agent.log())
        });
    let before = cpu_user(&before, &name).unwrap().clone();
    workload.stop();

    // Empty, then forgotten: an export without the group at all.
    wait_until_forgotten(&receiver, &name, &agent);

    // Back: the counter goes on from where it was, under the same start
    // time, so no point ever goes backwards (restarting from zero, this
    // shorter burn would give a lower value).
    let workload = Workload::named(&name).busy_ms(50).spawn();
    let after = receiver
        .wait_for_points(WAIT, |p| {
            cpu_user(p, &name).is_some_and(|p| p.time_unix_nano > before.time_unix_nano)
        })
        .unwrap_or_else(|| panic!("{name} never came back:\n{}", agent.log()));
    let after = cpu_user(&after, &name).unwrap();
    assert_eq!(after.start_time_unix_nano, before.start_time_unix_nano);
    assert!(
        after.value >= before.value,
        "went backwards: {} then {}",
        before.value,
        after.value
    );
    workload.stop();
}

#[test]
fn under_delta_temporality_empty_groups_are_kept() {
    let delta = ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta");
    // Set by the user: refused, as a forgotten group that came back would
    // be sent its whole total again.
    let (code, log) = start_agent(&["--empty-group-ttl", "10m"], &[delta]);
    assert_eq!(code, Some(2), "{log}");
    assert!(log.contains("empty_group_ttl"), "{log}");
    // `never` and the default are fine; the default gives way.
    let (code, log) = start_agent(&["--empty-group-ttl", "never"], &[delta]);
    assert_eq!(code, None, "{log}");
    let (code, log) = start_agent(&[], &[delta]);
    assert_eq!(code, None, "{log}");
    assert!(log.contains("empty groups are kept"), "{log}");
}
