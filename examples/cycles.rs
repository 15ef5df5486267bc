//! Runs a fixed number of collection cycles (`Grouper::update` over an
//! `FsSource`, the packaged default rules) over a procfs mount, starting an
//! interval apart, and prints what each cycle read. Made for deterministic counts
//! of a cycle's cost on a live host (instructions under
//! `valgrind --tool=callgrind`, system calls under `strace -c`), where
//! timings are too noisy to compare two versions:
//!
//! ```sh
//! cargo build --release --example cycles
//! valgrind --tool=callgrind target/release/examples/cycles 12 500 off
//! ```
//!
//! Arguments: cycles (default 10), interval in ms (default 500), threads
//! `on` or `off` (default `off`), mount point (default `/proc`), how many
//! files may be kept open between cycles (default
//! `FsSourceOptions::DEFAULT_KEPT_FILES`; 0 opens every file every cycle),
//! and the thread-group probe, `probe` (the default: used when this
//! process may, as the agent does) or `noprobe`.
//!
//! Each cycle's line ends with the process's user and system CPU time for
//! that cycle (from its own `stat`, in clock ticks), and the last line
//! gives their averages over every cycle but the first (which names every
//! process and is not what a steady cycle costs).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use procgroups::config::default_rules;
use procgroups::proc::{FsSource, FsSourceOptions, Grouper, GrouperOptions, TrackerOptions};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cycles: u32 = args
        .first()
        .map_or(Ok(10), |a| a.parse())
        .context("cycles")?;
    let interval: u64 = args
        .get(1)
        .map_or(Ok(500), |a| a.parse())
        .context("interval")?;
    let threads = args.get(2).is_some_and(|a| a == "on");
    let root = PathBuf::from(args.get(3).map_or("/proc", String::as_str));
    let kept_files: u64 = args
        .get(4)
        .map_or(Ok(FsSourceOptions::DEFAULT_KEPT_FILES), |a| a.parse())
        .context("kept files")?;
    let probe = args.get(5).is_none_or(|a| a != "noprobe");

    let namer = Arc::new(default_rules(&root)?);
    let mut grouper = Grouper::new(
        namer,
        GrouperOptions {
            tracker: TrackerOptions {
                children: true,
                threads,
                ..TrackerOptions::default()
            },
            ..GrouperOptions::default()
        },
    );
    let options = FsSourceOptions {
        threads,
        kept_files,
        ..FsSourceOptions::default()
    };
    let mut source = FsSource::new(&root, options)?;
    if probe {
        // As the agent decides (its log says why not, at info).
        match procgroups::agent::accounting::group_probe(&root) {
            Some(q) => source.set_group_probe(Box::new(q)),
            None => eprintln!("no thread-group probe"),
        }
    }
    let tick_ms = 1000.0 / rustix::param::clock_ticks_per_second() as f64;
    let mut steady = (0, 0);
    // Cycles start an interval apart, as the agent's do, whatever each
    // takes: how many processes have run since the last one depends on it.
    let start = std::time::Instant::now();
    for n in 0..cycles {
        let before = cpu_ticks()?;
        let (errors, groups) = grouper.update(&mut source, SystemTime::now())?;
        let after = cpu_ticks()?;
        let (user, system) = (after.0 - before.0, after.1 - before.1);
        if n > 0 {
            steady = (steady.0 + user, steady.1 + system);
        }
        let s = source.read_stats();
        println!(
            "cycle {n}: {} groups, {errors:?} errors, {s:?}, user {:.0} ms, system {:.0} ms",
            groups.len(),
            user as f64 * tick_ms,
            system as f64 * tick_ms,
        );
        let next = start + Duration::from_millis(interval) * (n + 1);
        std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
    }
    if cycles > 1 {
        let per = |t: u64| t as f64 * tick_ms / f64::from(cycles - 1);
        println!(
            "per cycle after the first: user {:.1} ms, system {:.1} ms, total {:.1} ms",
            per(steady.0),
            per(steady.1),
            per(steady.0 + steady.1)
        );
    }
    Ok(())
}

/// This process's user and system CPU time so far, in clock ticks (fields
/// 14 and 15 of `/proc/self/stat`, after the parenthesised comm).
fn cpu_ticks() -> anyhow::Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("/proc/self/stat")?;
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("/proc/self/stat has no comm")?;
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let mut next = |what: &str| -> anyhow::Result<u64> {
        fields
            .next()
            .with_context(|| format!("/proc/self/stat has no {what}"))?
            .parse()
            .with_context(|| format!("/proc/self/stat {what}"))
    };
    Ok((next("utime")?, next("stime")?))
}
