//! What several test modules share: an in-process OTLP receiver and the
//! flattening of its requests into points, the agent binary and the test
//! workload as child processes, a real collector (rotel) as a child
//! process, and the lookup of external programs with visible skips.

pub mod cgroups;
pub mod otlp;
pub mod procs;
pub mod receiver;
pub mod rotel;
pub mod tools;

use std::sync::{Mutex, MutexGuard};

/// Taken by the tests that load the CPU for long (scripted churn, spinning
/// workloads) and by the soak test, which counts the agent's cycles over a
/// minute: in one test binary they would otherwise run side by side on a
/// small machine, and the soak test's cycle rate would measure the others.
pub fn cpu_heavy() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    // A test that failed while holding it says so itself.
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
