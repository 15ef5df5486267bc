//! Malformed `/proc`: `FsSource` over procfs trees generated in temp dirs,
//! run through the `Grouper` (and so the `Tracker`), with one process whose
//! files are truncated, garbled, huge, not UTF-8, missing, unreadable or
//! vanishing. Whatever the damage, nothing panics, the damaged process is
//! either read or counted as a read or partial error, and the other
//! processes of the same cycle come out exactly as they do over an intact
//! tree.
//!
//! The property tests damage one file at a time (`stat`, `status`, `io`,
//! `cmdline`, `limits`, `cgroup`, `fd/`), either from the first cycle (the
//! process is new) or from the second (it is already tracked). The named
//! tests cover shapes a real kernel produces: a comm with `)` and newlines,
//! an empty cmdline, an `io` the agent may not read, a zombie, and a process
//! whose files vanish between `stat` and `status`.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use proptest::sample::Index;

use procgroups::proc::{
    CollectErrors, FsProc, FsSource, FsSourceOptions, Group, GroupByName, Grouper, GrouperOptions,
    ID, MatchNamer, Metrics, Proc, ProcAttributes, ProcError, Source, SourceError, Static,
    SystemFacts, Thread, TrackerOptions,
};
use procgroups::testkit::{FakeProc, ProcFile, write_tree};

/// Boot time of every generated tree.
const BTIME: u64 = 1_700_000_000;
/// The most bytes `FsSource` reads of one file (1 MiB): huge files are made
/// around and beyond it.
const READ_LIMIT: usize = 1 << 20;
/// Processes that are never damaged.
const HEALTHY: [i32; 2] = [100, 200];
/// The process whose files are damaged.
const VICTIM: i32 = 300;

fn facts() -> SystemFacts {
    SystemFacts {
        boot_time_secs: BTIME,
        ticks_per_second: 100,
        page_size: 4096,
    }
}

/// Wall-clock time of cycle `n` (0-based): long after every generated
/// process started, so the first cycle sets baselines and the second counts
/// increases.
fn cycle_time(n: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(BTIME + 100_000 + 15 * n)
}

fn source(root: &Path) -> FsSource {
    FsSource::with_facts(root, facts(), FsSourceOptions::default())
}

/// Tracks every process, each in a group of its own named by its PID, so
/// that a comm garbled into something else cannot move a process to another
/// group.
struct ByPid;

impl MatchNamer for ByPid {
    fn match_and_name(&self, attrs: &ProcAttributes<'_>) -> Option<String> {
        Some(group_of(attrs.pid))
    }
}

fn group_of(pid: i32) -> String {
    format!("pid-{pid}")
}

/// Tracks every process under its comm, and remembers what it was shown.
#[derive(Default)]
struct ByComm {
    seen: Mutex<Vec<(i32, String, Vec<String>)>>,
}

impl MatchNamer for ByComm {
    fn match_and_name(&self, attrs: &ProcAttributes<'_>) -> Option<String> {
        self.seen
            .lock()
            .unwrap()
            .push((attrs.pid, attrs.name.to_string(), attrs.cmdline.to_vec()));
        Some(attrs.name.to_string())
    }
}

fn grouper(namer: Arc<dyn MatchNamer>, tracker: TrackerOptions) -> Grouper {
    Grouper::new(
        namer,
        GrouperOptions {
            tracker,
            ..GrouperOptions::default()
        },
    )
}

/// When the victim's file is damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    /// Before the first cycle: the process is new when first read damaged.
    FromStart,
    /// Before the second cycle: the process is already tracked.
    Later,
}

/// What each of the two cycles produced.
#[derive(Debug)]
struct Outcome {
    cycles: Vec<(CollectErrors, GroupByName)>,
}

/// Damages the victim: given its directory and its intact values.
type DamageFn<'a> = &'a dyn Fn(&Path, &FakeProc);

/// Two cycles over a tree of the healthy processes and the victim, with
/// `damage` applied to the victim's directory at `when` (none when `None`).
fn run_two_cycles(damage: Option<(When, DamageFn<'_>)>) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut procs: Vec<FakeProc> = HEALTHY
        .iter()
        .map(|&pid| FakeProc::new(pid, &format!("healthy{pid}")))
        .collect();
    procs.push(FakeProc::new(VICTIM, "victim"));
    write_tree(root, BTIME, &procs).unwrap();

    let mut gr = grouper(Arc::new(ByPid), TrackerOptions::default());
    let mut src = source(root);
    let mut cycles = Vec::new();
    for n in 0..2u64 {
        if n == 1 {
            for p in &mut procs {
                *p = p.later();
                p.write(root).unwrap();
            }
        }
        let victim = procs.last().unwrap();
        match damage {
            Some((When::FromStart, f)) => f(&victim.dir(root), victim),
            Some((When::Later, f)) if n == 1 => f(&victim.dir(root), victim),
            _ => {}
        }
        cycles.push(gr.update(&mut src, cycle_time(n)).unwrap());
    }
    Outcome { cycles }
}

/// The same two cycles over an intact tree.
fn baseline() -> &'static Outcome {
    static BASE: std::sync::OnceLock<Outcome> = std::sync::OnceLock::new();
    BASE.get_or_init(|| run_two_cycles(None))
}

/// How damage to a file of a process may show, by what the file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Identity and naming (`stat`, `status`): a bad one is a read error.
    Required,
    /// Optional values (`io`, `limits`, `fd/`): a bad one is a partial error.
    Optional,
    /// Free-form text (`cmdline`, `cgroup`): any bytes are acceptable.
    Free,
}

fn role(kind: ProcFile) -> Role {
    match kind {
        ProcFile::Stat | ProcFile::Status => Role::Required,
        ProcFile::Io | ProcFile::Limits => Role::Optional,
        ProcFile::Cmdline | ProcFile::Cgroup => Role::Free,
    }
}

/// Checks an outcome against the baseline: the healthy processes are as
/// over the intact tree in every cycle, only the victim ever errs, and it is
/// either grouped or counted, as its damaged file's role allows.
fn check_contained(file: &str, role: Role, when: When, out: &Outcome) -> Result<(), TestCaseError> {
    let base = baseline();
    let victim = group_of(VICTIM);
    let mut previous: Option<Group> = None;
    for (n, ((errors, groups), (_, base_groups))) in out.cycles.iter().zip(&base.cycles).enumerate()
    {
        let ctx = format!("{file} damaged {when:?}, cycle {n}: {errors:?}");
        for pid in HEALTHY {
            let g = group_of(pid);
            prop_assert_eq!(groups.get(&g), base_groups.get(&g), "{}: {}", ctx, g);
        }
        prop_assert!(errors.read <= 1 && errors.partial <= 1, "{}", ctx);
        let procs = groups.get(&victim).map_or(0, |g| g.procs);
        // The victim is the only process that can be missing from its group.
        prop_assert!(procs <= 1, "{}", ctx);
        match (role, when) {
            (Role::Required, When::FromStart) => {
                // Either read (perhaps with other values) or a read error.
                prop_assert!((procs == 1) != (errors.read == 1), "{}", ctx);
            }
            (Role::Required, When::Later) => {
                // A known process whose stat or status cannot be read keeps
                // its place in the group with its last values (an
                // unreadable stat is matched to it by pid); it is never
                // dropped and then counted again as new.
                prop_assert_eq!(procs, 1, "{}", ctx);
            }
            (Role::Optional, _) => {
                prop_assert_eq!(procs, 1, "{}", ctx);
                prop_assert_eq!(errors.read, 0, "{}", ctx);
            }
            (Role::Free, _) => {
                prop_assert_eq!(procs, 1, "{}", ctx);
                prop_assert_eq!(*errors, CollectErrors::default(), "{}", ctx);
            }
        }
        // The victim's counters never go down, whatever was read.
        let current = groups.get(&victim).cloned();
        if let (Some(before), Some(now)) = (&previous, &current) {
            let (b, c) = (before.counts, now.counts);
            prop_assert!(
                c.cpu_user_time >= b.cpu_user_time
                    && c.cpu_system_time >= b.cpu_system_time
                    && c.read_bytes >= b.read_bytes
                    && c.write_bytes >= b.write_bytes
                    && c.major_page_faults >= b.major_page_faults
                    && c.minor_page_faults >= b.minor_page_faults
                    && c.ctx_switch_voluntary >= b.ctx_switch_voluntary
                    && c.ctx_switch_nonvoluntary >= b.ctx_switch_nonvoluntary,
                "{}: counters went down: {:?} -> {:?}",
                ctx,
                b,
                c
            );
        }
        previous = current;
    }
    Ok(())
}

/// Damage done to the content of one file.
#[derive(Debug, Clone)]
enum Damage {
    /// Cut after some byte.
    Truncate(Index),
    /// Some bytes overwritten.
    Garble(Vec<(Index, u8)>),
    /// Bytes that are not UTF-8 inserted somewhere.
    NotUtf8(Index, Vec<u8>),
    /// Replaced with arbitrary bytes.
    Replace(Vec<u8>),
    /// The content repeated (or padded with one byte) up to a size around
    /// and beyond what is read of a file.
    Huge { len: usize, pad: Option<u8> },
}

impl Damage {
    fn apply(&self, valid: &[u8]) -> Vec<u8> {
        match self {
            Damage::Truncate(at) => valid[..at.index(valid.len() + 1)].to_vec(),
            Damage::Garble(edits) => {
                let mut v = valid.to_vec();
                if !v.is_empty() {
                    for (at, b) in edits {
                        let i = at.index(v.len());
                        v[i] = *b;
                    }
                }
                v
            }
            Damage::NotUtf8(at, bytes) => {
                let mut v = valid.to_vec();
                let i = at.index(v.len() + 1);
                v.splice(i..i, bytes.iter().copied());
                v
            }
            Damage::Replace(bytes) => bytes.clone(),
            Damage::Huge { len, pad } => {
                let mut v = valid.to_vec();
                match pad {
                    Some(b) => v.resize(*len, *b),
                    None => {
                        while v.len() < *len && !valid.is_empty() {
                            v.extend_from_slice(valid);
                        }
                        v.truncate(*len);
                    }
                }
                v
            }
        }
    }
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        4 => any::<Index>().prop_map(Damage::Truncate),
        4 => prop::collection::vec((any::<Index>(), any::<u8>()), 1..8).prop_map(Damage::Garble),
        3 => (any::<Index>(), prop::collection::vec(0x80u8..=0xff, 1..6))
            .prop_map(|(at, b)| Damage::NotUtf8(at, b)),
        2 => prop::collection::vec(any::<u8>(), 0..600).prop_map(Damage::Replace),
        1 => (
            prop::sample::select(vec![READ_LIMIT - 1, READ_LIMIT, READ_LIMIT + 1, 3 * READ_LIMIT]),
            prop::option::of(any::<u8>()),
        )
            .prop_map(|(len, pad)| Damage::Huge { len, pad }),
    ]
}

fn when() -> impl Strategy<Value = When> {
    prop_oneof![Just(When::FromStart), Just(When::Later)]
}

/// Damages `kind` of the victim as `damage` says and checks containment.
fn file_damage_is_contained(
    kind: ProcFile,
    damage: &Damage,
    when: When,
) -> Result<(), TestCaseError> {
    let apply = |dir: &Path, victim: &FakeProc| {
        std::fs::write(dir.join(kind.name()), damage.apply(&victim.file(kind))).unwrap();
    };
    let out = run_two_cycles(Some((when, &apply)));
    check_contained(kind.name(), role(kind), when, &out)
}

/// Damage done to the `fd/` directory.
#[derive(Debug, Clone)]
enum FdDamage {
    /// No `fd/` at all.
    Missing,
    /// `fd` is a regular file with this content.
    NotADir(Vec<u8>),
    /// `fd/` holds entries with these names (any bytes but `/` and NUL).
    Names(Vec<Vec<u8>>),
    /// `fd/` holds this many descriptors.
    Many(u32),
    /// `fd` is a symbolic link to itself.
    Loop,
}

fn fd_damage() -> impl Strategy<Value = FdDamage> {
    let name = prop::collection::vec(1u8..=255, 1..24).prop_map(|mut n| {
        for b in &mut n {
            if *b == b'/' {
                *b = b'_';
            }
        }
        if n == b"." || n == b".." {
            n.push(b'x');
        }
        n
    });
    prop_oneof![
        1 => Just(FdDamage::Missing),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(FdDamage::NotADir),
        4 => prop::collection::vec(name, 0..40).prop_map(FdDamage::Names),
        1 => (1000u32..4000).prop_map(FdDamage::Many),
        1 => Just(FdDamage::Loop),
    ]
}

/// The descriptors `FsSource` counts in a directory of these names: those
/// that are decimal numbers.
fn numeric_names(names: &[Vec<u8>]) -> u64 {
    let distinct: BTreeSet<&Vec<u8>> = names.iter().collect();
    distinct
        .into_iter()
        .filter(|n| {
            n.iter().all(u8::is_ascii_digit)
                && std::str::from_utf8(n).unwrap().parse::<u64>().is_ok()
        })
        .count() as u64
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn damaged_stat_is_contained(d in damage(), w in when()) {
        file_damage_is_contained(ProcFile::Stat, &d, w)?;
    }

    #[test]
    fn damaged_status_is_contained(d in damage(), w in when()) {
        file_damage_is_contained(ProcFile::Status, &d, w)?;
    }

    #[test]
    fn damaged_io_is_contained(d in damage(), w in when()) {
        file_damage_is_contained(ProcFile::Io, &d, w)?;
    }

    #[test]
    fn damaged_cmdline_is_contained(d in damage(), w in when()) {
        file_damage_is_contained(ProcFile::Cmdline, &d, w)?;
    }

    #[test]
    fn damaged_limits_is_contained(d in damage(), w in when()) {
        file_damage_is_contained(ProcFile::Limits, &d, w)?;
    }

    #[test]
    fn damaged_cgroup_is_contained(d in damage(), w in when()) {
        file_damage_is_contained(ProcFile::Cgroup, &d, w)?;
    }

    #[test]
    fn damaged_fd_dir_is_contained(d in fd_damage(), w in when()) {
        let apply = |dir: &Path, _: &FakeProc| {
            let fd = dir.join("fd");
            std::fs::remove_dir_all(&fd).unwrap();
            match &d {
                FdDamage::Missing => {}
                FdDamage::NotADir(content) => std::fs::write(&fd, content).unwrap(),
                FdDamage::Names(names) => {
                    std::fs::create_dir(&fd).unwrap();
                    for n in names {
                        std::fs::write(fd.join(OsStr::from_bytes(n)), b"").unwrap();
                    }
                }
                FdDamage::Many(n) => {
                    std::fs::create_dir(&fd).unwrap();
                    for i in 0..*n {
                        std::fs::write(fd.join(i.to_string()), b"").unwrap();
                    }
                }
                FdDamage::Loop => std::os::unix::fs::symlink("fd", &fd).unwrap(),
            }
        };
        let out = run_two_cycles(Some((w, &apply)));
        check_contained("fd/", Role::Optional, w, &out)?;
        // What is known of the descriptors is exact; what is not is a
        // partial error and adds nothing.
        let (errors, groups) = out.cycles.last().unwrap();
        let g = &groups[&group_of(VICTIM)];
        match &d {
            FdDamage::Missing | FdDamage::NotADir(_) | FdDamage::Loop => {
                prop_assert_eq!(errors.partial, 1);
                prop_assert_eq!(g.open_fds, 0);
            }
            FdDamage::Names(names) => {
                prop_assert_eq!(errors.partial, 0);
                prop_assert_eq!(g.open_fds, numeric_names(names));
            }
            FdDamage::Many(n) => {
                prop_assert_eq!(errors.partial, 0);
                prop_assert_eq!(g.open_fds, u64::from(*n));
            }
        }
    }

    /// A `stat` cut anywhere before the end of field 24 (rss) can be
    /// neither identified nor named: always a read error, never a guess.
    #[test]
    fn stat_cut_before_rss_is_a_read_error(at in any::<Index>()) {
        let victim = FakeProc::new(VICTIM, "victim");
        let full = victim.file(ProcFile::Stat);
        let rss = format!(" {} ", victim.rss);
        let needed = full
            .windows(rss.len())
            .position(|w| w == rss.as_bytes())
            .unwrap()
            + rss.len()
            - 1;
        let cut = at.index(needed);
        let apply = |dir: &Path, v: &FakeProc| {
            std::fs::write(dir.join("stat"), &v.file(ProcFile::Stat)[..cut]).unwrap();
        };
        let out = run_two_cycles(Some((When::FromStart, &apply)));
        for (errors, groups) in &out.cycles {
            prop_assert_eq!(errors.read, 1, "cut at {}", cut);
            prop_assert!(!groups.contains_key(&group_of(VICTIM)));
        }
    }

    /// An `io` whose byte counts are not numbers is a partial error, and
    /// the process's counters keep the last good byte counts.
    #[test]
    fn io_with_garbage_counts_is_partial(junk in "[^0-9\n ][^\n]{0,20}") {
        let apply = |dir: &Path, v: &FakeProc| {
            let text = String::from_utf8(v.file(ProcFile::Io)).unwrap().replace(
                &format!("read_bytes: {}", v.read_bytes),
                &format!("read_bytes: {junk}"),
            );
            std::fs::write(dir.join("io"), text).unwrap();
        };
        let out = run_two_cycles(Some((When::Later, &apply)));
        let (errors, groups) = &out.cycles[1];
        prop_assert_eq!(*errors, CollectErrors { read: 0, partial: 1 });
        let g = &groups[&group_of(VICTIM)];
        prop_assert_eq!(g.procs, 1);
        // No increase is made up from an unknown value.
        prop_assert_eq!(g.counts.read_bytes, 0);
        prop_assert_eq!(g.counts.write_bytes, 0);
        // The values that were readable still count.
        prop_assert!(g.counts.cpu_user_time > 0.0);
    }
}

/// A one-cycle grouper run over `root`.
fn one_cycle(gr: &mut Grouper, root: &Path) -> (CollectErrors, GroupByName) {
    gr.update(&mut source(root), cycle_time(0)).unwrap()
}

#[test]
fn huge_files_are_cut_not_fatal() {
    for kind in ProcFile::ALL {
        for when in [When::FromStart, When::Later] {
            let damage = Damage::Huge {
                len: 4 * READ_LIMIT,
                pad: None,
            };
            file_damage_is_contained(kind, &damage, when)
                .unwrap_or_else(|e| panic!("huge {kind:?} {when:?}: {e}"));
        }
    }
}

#[test]
fn huge_cmdline_is_read_up_to_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = FakeProc::new(VICTIM, "java");
    let arg = vec![b'x'; 100_000];
    p.cmdline.clear();
    for _ in 0..30 {
        p.cmdline.extend_from_slice(&arg);
        p.cmdline.push(0);
    }
    write_tree(dir.path(), BTIME, &[p]).unwrap();
    let namer = Arc::new(ByComm::default());
    let mut gr = grouper(namer.clone(), TrackerOptions::default());
    let (errors, groups) = one_cycle(&mut gr, dir.path());
    assert_eq!(errors, CollectErrors::default());
    assert_eq!(groups["java"].procs, 1);
    let seen = namer.seen.lock().unwrap();
    let argv = &seen[0].2;
    // 1 MiB of 100,001-byte arguments: ten whole ones and a cut eleventh.
    assert_eq!(argv.len(), 11);
    assert!(argv[..10].iter().all(|a| a.len() == 100_000));
    assert_eq!(argv[10].len(), READ_LIMIT - 10 * 100_001);
}

#[test]
fn comm_with_parentheses_and_newlines_names_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let odd = [
        &b"a) (b"[..],
        b"two\nlines)",
        b") R 1 2 3 (",
        b"x\xffy",
        b"",
    ];
    let procs: Vec<FakeProc> = odd
        .iter()
        .enumerate()
        .map(|(i, comm)| {
            let mut p = FakeProc::new(100 + i32::try_from(i).unwrap(), "x");
            p.comm = comm.to_vec();
            p
        })
        .collect();
    write_tree(dir.path(), BTIME, &procs).unwrap();
    let mut gr = grouper(Arc::new(ByComm::default()), TrackerOptions::default());
    let (errors, groups) = one_cycle(&mut gr, dir.path());
    assert_eq!(errors, CollectErrors::default());
    let names: BTreeSet<&str> = groups.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from(["", ") R 1 2 3 (", "a) (b", "two\nlines)", "x\u{fffd}y"])
    );
    // The fields after the comm were found in spite of it.
    let g = &groups["two\nlines)"];
    assert_eq!(g.procs, 1);
    assert_eq!(g.memory.resident_bytes, (2000 + 101) * 4096);
    assert_eq!(g.memory.virtual_bytes, 10_000_101);
    assert_eq!(g.states.sleeping, 1);
}

#[test]
fn empty_cmdline_is_tracked_with_no_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let mut kthread = FakeProc::new(2, "kworker/0:1");
    kthread.cmdline.clear();
    let mut only_nuls = FakeProc::new(3, "nuls");
    only_nuls.cmdline = b"\0\0\0".to_vec();
    write_tree(dir.path(), BTIME, &[kthread, only_nuls]).unwrap();
    let namer = Arc::new(ByComm::default());
    let mut gr = grouper(namer.clone(), TrackerOptions::default());
    let (errors, groups) = one_cycle(&mut gr, dir.path());
    assert_eq!(errors, CollectErrors::default());
    assert_eq!(groups["kworker/0:1"].procs, 1);
    assert_eq!(groups["nuls"].procs, 1);
    let mut seen = namer.seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        [
            (2, "kworker/0:1".to_string(), vec![]),
            (3, "nuls".to_string(), vec![])
        ]
    );
}

/// Runs `f` on a thread without the capabilities that bypass file
/// permissions, so that a root test process is refused files as an
/// unprivileged agent would be. Capabilities belong to a thread, so the rest
/// of the test process keeps them.
fn without_dac_override<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            use rustix::thread::{CapabilitySet, capabilities, set_capabilities};
            let mut caps = capabilities(None).unwrap();
            caps.effective
                .remove(CapabilitySet::DAC_OVERRIDE | CapabilitySet::DAC_READ_SEARCH);
            set_capabilities(None, caps).unwrap();
            f()
        })
        .join()
        .unwrap()
    })
}

#[test]
fn io_denied_by_permission_is_a_partial_error() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let procs: Vec<FakeProc> = [100, 200]
        .iter()
        .map(|&p| FakeProc::new(p, "app"))
        .collect();
    write_tree(dir.path(), BTIME, &procs).unwrap();
    let io = procs[1].dir(dir.path()).join("io");
    std::fs::set_permissions(&io, std::fs::Permissions::from_mode(0o000)).unwrap();

    let mut gr = grouper(Arc::new(ByPid), TrackerOptions::default());
    let (errors, groups) = without_dac_override(|| {
        // The file is really refused on this thread.
        let denied = std::fs::read(&io).unwrap_err();
        assert_eq!(denied.kind(), std::io::ErrorKind::PermissionDenied);
        gr.update(&mut source(dir.path()), cycle_time(0)).unwrap()
    });
    assert_eq!(
        errors,
        CollectErrors {
            read: 0,
            partial: 1
        }
    );
    assert_eq!(groups[&group_of(100)].procs, 1);
    assert_eq!(groups[&group_of(200)].procs, 1);

    // The same read through the handle names the file and the reason.
    let metrics = without_dac_override(|| {
        let mut src = source(dir.path());
        let mut p = src
            .all_procs()
            .unwrap()
            .into_iter()
            .find(|p| p.pid() == 200)
            .unwrap();
        p.metrics().unwrap()
    });
    assert!(!metrics.io_known);
    assert_eq!(metrics.soft_errors, 1);
}

#[test]
fn io_missing_is_a_partial_error() {
    let dir = tempfile::tempdir().unwrap();
    let procs: Vec<FakeProc> = [100, 200]
        .iter()
        .map(|&p| FakeProc::new(p, "app"))
        .collect();
    write_tree(dir.path(), BTIME, &procs).unwrap();
    std::fs::remove_file(procs[0].dir(dir.path()).join("io")).unwrap();
    let mut gr = grouper(Arc::new(ByPid), TrackerOptions::default());
    let (errors, groups) = one_cycle(&mut gr, dir.path());
    assert_eq!(
        errors,
        CollectErrors {
            read: 0,
            partial: 1
        }
    );
    assert_eq!(groups.len(), 2);
    assert!(groups.values().all(|g| g.procs == 1));
}

#[test]
fn unreadable_status_of_a_new_process_is_skipped_when_denied() {
    use std::os::unix::fs::PermissionsExt;
    // An agent that is not root is refused whole processes of other users
    // on hardened systems (hidepid): that is expected, not a read error.
    let dir = tempfile::tempdir().unwrap();
    let procs: Vec<FakeProc> = [100, 200]
        .iter()
        .map(|&p| FakeProc::new(p, "app"))
        .collect();
    write_tree(dir.path(), BTIME, &procs).unwrap();
    let status = procs[0].dir(dir.path()).join("status");
    std::fs::set_permissions(&status, std::fs::Permissions::from_mode(0o000)).unwrap();
    let mut gr = grouper(Arc::new(ByPid), TrackerOptions::default());
    let (errors, groups) =
        without_dac_override(|| gr.update(&mut source(dir.path()), cycle_time(0)).unwrap());
    assert_eq!(errors, CollectErrors::default());
    assert!(!groups.contains_key(&group_of(100)));
    assert_eq!(groups[&group_of(200)].procs, 1);
}

#[test]
fn zombie_is_grouped_and_counted_as_zombie() {
    let dir = tempfile::tempdir().unwrap();
    let parent = FakeProc::new(100, "server");
    let mut zombie = FakeProc::new(101, "server-child");
    zombie.state = b'Z';
    zombie.ppid = 100;
    zombie.cmdline.clear();
    zombie.fds = 0;
    zombie.rss = 0;
    zombie.vsize = 0;
    write_tree(dir.path(), BTIME, &[parent, zombie]).unwrap();

    /// Tracks only the parent, by name: the zombie joins as its child.
    struct Server;
    impl MatchNamer for Server {
        fn match_and_name(&self, attrs: &ProcAttributes<'_>) -> Option<String> {
            (attrs.name == "server").then(|| "server".to_string())
        }
    }
    let mut gr = grouper(
        Arc::new(Server),
        TrackerOptions {
            children: true,
            ..TrackerOptions::default()
        },
    );
    let (errors, groups) = one_cycle(&mut gr, dir.path());
    assert_eq!(errors, CollectErrors::default());
    let g = &groups["server"];
    assert_eq!(g.procs, 2);
    assert_eq!(g.states.zombie, 1);
    assert_eq!(g.states.sleeping, 1);
    assert_eq!(g.open_fds, 4);
    assert_eq!(g.memory.resident_bytes, (2000 + 100) * 4096);
}

/// How a process vanishes between its `stat` and the rest.
#[derive(Debug, Clone, Copy)]
enum Vanish {
    /// The whole directory, as when the process exits and is reaped.
    Process,
    /// Only `status`, while `stat` stays: not an exit but a broken tree.
    StatusOnly,
}

/// An `FsSource` whose victim loses its files right after its `stat` was
/// read: the window in which a real process exits under the reader.
struct VanishingSource {
    inner: FsSource,
    victim: PathBuf,
    how: Vanish,
}

struct VanishingProc {
    inner: FsProc,
    /// The victim's directory, while it has not vanished yet.
    pending: Option<(PathBuf, Vanish)>,
}

impl Proc for VanishingProc {
    fn pid(&self) -> i32 {
        self.inner.pid()
    }
    fn id(&mut self) -> Result<ID, ProcError> {
        let id = self.inner.id();
        match self.pending.take() {
            Some((dir, Vanish::Process)) => std::fs::remove_dir_all(dir).unwrap(),
            Some((dir, Vanish::StatusOnly)) => std::fs::remove_file(dir.join("status")).unwrap(),
            None => {}
        }
        id
    }
    fn static_info(&mut self) -> Result<Static, ProcError> {
        self.inner.static_info()
    }
    fn metrics(&mut self) -> Result<Metrics, ProcError> {
        self.inner.metrics()
    }
    fn threads(&mut self) -> Result<Vec<Thread>, ProcError> {
        self.inner.threads()
    }
}

impl Source for VanishingSource {
    type Proc = VanishingProc;
    fn all_procs(&mut self) -> Result<Vec<VanishingProc>, SourceError> {
        let victim = self.victim.clone();
        let how = self.how;
        Ok(self
            .inner
            .all_procs()?
            .into_iter()
            .map(|p| VanishingProc {
                pending: (p.pid() == VICTIM).then(|| (victim.clone(), how)),
                inner: p,
            })
            .collect())
    }
    fn recycle(&mut self, procs: Vec<VanishingProc>) {
        self.inner
            .recycle(procs.into_iter().map(|p| p.inner).collect());
    }
}

fn vanishing_run(how: Vanish) -> (CollectErrors, GroupByName) {
    let dir = tempfile::tempdir().unwrap();
    let procs: Vec<FakeProc> = [100, VICTIM, 200]
        .iter()
        .map(|&p| FakeProc::new(p, "app"))
        .collect();
    write_tree(dir.path(), BTIME, &procs).unwrap();
    let mut src = VanishingSource {
        inner: source(dir.path()),
        victim: procs[1].dir(dir.path()),
        how,
    };
    let mut gr = grouper(Arc::new(ByPid), TrackerOptions::default());
    gr.update(&mut src, cycle_time(0)).unwrap()
}

#[test]
fn process_vanishing_between_stat_and_status_is_churn_not_an_error() {
    let (errors, groups) = vanishing_run(Vanish::Process);
    assert_eq!(errors, CollectErrors::default());
    assert!(!groups.contains_key(&group_of(VICTIM)));
    assert_eq!(groups[&group_of(100)].procs, 1);
    assert_eq!(groups[&group_of(200)].procs, 1);
}

#[test]
fn status_missing_while_stat_remains_is_a_read_error() {
    let (errors, groups) = vanishing_run(Vanish::StatusOnly);
    assert_eq!(
        errors,
        CollectErrors {
            read: 1,
            partial: 0
        }
    );
    assert!(!groups.contains_key(&group_of(VICTIM)));
    assert_eq!(groups[&group_of(100)].procs, 1);
    assert_eq!(groups[&group_of(200)].procs, 1);
}

#[test]
fn baseline_reads_every_process_exactly() {
    // The reference the property tests compare with is itself right.
    let base = baseline();
    assert_eq!(base.cycles.len(), 2);
    for (errors, groups) in &base.cycles {
        assert_eq!(*errors, CollectErrors::default());
        assert_eq!(groups.len(), 3);
    }
    let (_, groups) = &base.cycles[1];
    let g = &groups[&group_of(VICTIM)];
    // The increases between the two cycles, in seconds, bytes and counts.
    assert!((g.counts.cpu_user_time - 1.5).abs() < 1e-9);
    assert!((g.counts.cpu_system_time - 0.3).abs() < 1e-9);
    assert_eq!(g.counts.read_bytes, 4096);
    assert_eq!(g.counts.write_bytes, 512);
    assert_eq!(g.counts.minor_page_faults, 7);
    assert_eq!(g.counts.major_page_faults, 1);
    assert_eq!(g.counts.ctx_switch_voluntary, 9);
    assert_eq!(g.counts.ctx_switch_nonvoluntary, 2);
    assert_eq!(g.open_fds, 4);
    assert_eq!(g.worst_fd_ratio, 4.0 / 1024.0);
    assert_eq!(g.memory.swap_bytes, 4 * 1024);
}
