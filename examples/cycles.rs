//! Runs a fixed number of collection cycles (`Grouper::update` over an
//! `FsSource`, the packaged default rules) over a procfs mount, an interval
//! apart, and prints what each cycle read. Made for deterministic counts
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
//! `FsSourceOptions::DEFAULT_KEPT_FILES`; 0 opens every file every cycle).

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
    for n in 0..cycles {
        let (errors, groups) = grouper.update(&mut source, SystemTime::now())?;
        let s = source.read_stats();
        println!(
            "cycle {n}: {} groups, {errors:?} errors, {s:?}",
            groups.len()
        );
        std::thread::sleep(Duration::from_millis(interval));
    }
    Ok(())
}
