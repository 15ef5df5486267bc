//! Shared by the benchmarks: how big to make things (criterion's test mode,
//! which `cargo test --all-targets` uses, runs every benchmark once, so the
//! inputs shrink to keep that run to a few seconds). The synthetic procfs
//! tree is `procgroups::testkit::synthetic_tree`, shared with the tests.

/// True unless the binary was started by `cargo bench` (which passes
/// `--bench`) without `--test`: in test mode every benchmark runs once,
/// so the inputs are kept small.
pub fn quick() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    let test = args.iter().any(|a| a == "--test");
    !bench || test
}

/// `full` normally, `small` in quick mode.
pub fn size(full: usize, small: usize) -> usize {
    if quick() { small } else { full }
}
