//! The grouper's memory of empty groups: forgotten after their time to
//! live with their totals set aside, resumed when they come back, and
//! bounded by the group cap.

use super::*;
use crate::proc::{CommSetNamer, IDInfo, ScriptedSource};

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
}

fn busy(pid: i32, name: &str, user_secs: f64) -> IDInfo {
    IDInfo::named(pid, name, 0).counts(Counts {
        cpu_user_time: user_secs,
        ..Counts::default()
    })
}

#[test]
fn an_empty_group_is_forgotten_after_the_ttl_and_resumes_its_totals() {
    let mut gr = Grouper::new(
        Arc::new(CommSetNamer::new(["web", "db"])),
        GrouperOptions {
            empty_group_ttl: Some(Duration::from_secs(60)),
            ..GrouperOptions::default()
        },
    );
    let mut src = ScriptedSource::default();
    let mut cycle = |gr: &mut Grouper, secs: u64, procs: Vec<IDInfo>| {
        src.push(procs);
        gr.update(&mut src, at(secs)).unwrap().1
    };
    cycle(&mut gr, 0, vec![busy(1, "web", 1.0), busy(2, "db", 1.0)]);
    let g = cycle(&mut gr, 15, vec![busy(1, "web", 3.0), busy(2, "db", 1.0)]);
    assert_eq!(g["web"].counts.cpu_user_time, 2.0);
    // web empties at 30 s; it is kept, with its totals, for 60 s.
    for secs in [30, 60, 89] {
        let g = cycle(&mut gr, secs, vec![busy(2, "db", 1.0)]);
        assert_eq!(g["web"].procs, 0, "at {secs}s");
        assert_eq!(g["web"].counts.cpu_user_time, 2.0, "at {secs}s");
    }
    // From 90 s it is no longer reported; db, never empty, stays.
    let g = cycle(&mut gr, 90, vec![busy(2, "db", 1.0)]);
    assert!(!g.contains_key("web"), "{g:?}");
    assert!(g.contains_key("db"));
    assert_eq!(gr.groups_remembered(), 1);
    // Back (a process older than the agent: its first reading is a
    // baseline): the counters go on from 2 s, never below what was
    // reported.
    let g = cycle(&mut gr, 300, vec![busy(3, "web", 0.5), busy(2, "db", 1.0)]);
    assert_eq!(g["web"].counts.cpu_user_time, 2.0);
    let g = cycle(&mut gr, 315, vec![busy(3, "web", 1.5), busy(2, "db", 1.0)]);
    assert_eq!(g["web"].procs, 1);
    assert_eq!(g["web"].counts.cpu_user_time, 3.0);
}

#[test]
fn without_a_ttl_empty_groups_are_kept_for_ever() {
    let mut gr = Grouper::new(
        Arc::new(CommSetNamer::new(["web"])),
        GrouperOptions::default(),
    );
    let mut src = ScriptedSource::default();
    src.push(vec![busy(1, "web", 1.0)]);
    gr.update(&mut src, at(0)).unwrap();
    src.push(vec![]);
    let g = gr.update(&mut src, at(1_000_000)).unwrap().1;
    assert_eq!(g["web"].procs, 0);
}

#[test]
fn set_aside_groups_are_bounded_by_the_group_cap() {
    let mut gr = Grouper::new(
        Arc::new(CommSetNamer::new(["a", "b", "c"])),
        GrouperOptions {
            empty_group_ttl: Some(Duration::ZERO),
            max_groups: 2,
            ..GrouperOptions::default()
        },
    );
    let mut src = ScriptedSource::default();
    src.push(vec![busy(1, "a", 1.0), busy(2, "b", 1.0)]);
    gr.update(&mut src, at(0)).unwrap();
    src.push(vec![busy(3, "c", 1.0)]);
    gr.update(&mut src, at(1)).unwrap();
    src.push(vec![]);
    gr.update(&mut src, at(2)).unwrap();
    assert_eq!(gr.groups_remembered(), 0);
    assert!(gr.dormant.len() <= 2, "{:?}", gr.dormant.keys());
}
