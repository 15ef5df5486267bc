//! One collection cycle (`Grouper::update` over an `FsSource`: list, read,
//! track, name, sum) with the packaged default rules (every process by comm),
//! threads on and off:
//! - over a synthetic procfs tree of 1,000 and 5,000 processes (about 3
//!   tasks each), which measures the agent's own work on regular files;
//! - over the live `/proc`, whatever runs on the machine.
//!
//! Each measured iteration is a steady-state cycle: criterion's warm-up has
//! already run the first cycles, which name and remember every process.
//! In test mode (`cargo test --all-targets`) the tree has 50 processes and
//! every benchmark runs once.

#![allow(clippy::unwrap_used)] // benchmark setup: a failure is a broken bench

mod support;

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use criterion::{BenchmarkId, Criterion, Throughput};
use procgroups::config::default_rules;
use procgroups::proc::{
    FsSource, FsSourceOptions, Grouper, GrouperOptions, SystemFacts, TrackerOptions,
};

fn grouper(procfs: &Path, threads: bool) -> Grouper {
    let namer = Arc::new(default_rules(procfs).unwrap());
    Grouper::new(
        namer,
        GrouperOptions {
            tracker: TrackerOptions {
                children: true,
                threads,
                ..TrackerOptions::default()
            },
            ..GrouperOptions::default()
        },
    )
}

fn cycles(c: &mut Criterion, group_name: &str, root: &Path, facts: SystemFacts, procs: usize) {
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(procs as u64));
    for threads in [false, true] {
        let options = FsSourceOptions {
            threads,
            ..FsSourceOptions::default()
        };
        let mut source = FsSource::with_facts(root, facts, options);
        let mut grouper = grouper(root, threads);
        // The first cycle names every process; the bench measures the
        // cycles after it.
        grouper.update(&mut source, SystemTime::now()).unwrap();
        let id = BenchmarkId::new(if threads { "threads" } else { "no-threads" }, procs);
        group.bench_function(id, |b| {
            b.iter(|| {
                let (errors, groups) = grouper.update(&mut source, SystemTime::now()).unwrap();
                black_box((errors, groups.len()))
            })
        });
    }
    group.finish();
}

fn synthetic(c: &mut Criterion) {
    let sizes = if support::quick() {
        vec![50]
    } else {
        vec![1000, 5000]
    };
    for n in sizes {
        let dir = tempfile::tempdir().unwrap();
        procgroups::testkit::synthetic_tree(dir.path(), n).unwrap();
        let facts = SystemFacts {
            boot_time_secs: SystemFacts::read_boot_time(dir.path()).unwrap(),
            ticks_per_second: 100,
            page_size: 4096,
        };
        cycles(c, "cycle/synthetic", dir.path(), facts, n);
    }
}

fn live(c: &mut Criterion) {
    let root = Path::new("/proc");
    let facts = SystemFacts::read(root).unwrap();
    let procs = std::fs::read_dir(root)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        })
        .count();
    cycles(c, "cycle/live_proc", root, facts, procs);
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(support::size(20, 10))
        .configure_from_args();
    synthetic(&mut c);
    live(&mut c);
    c.final_summary();
}
