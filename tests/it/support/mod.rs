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
