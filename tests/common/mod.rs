//! Helpers shared by the integration tests: an in-process OTLP receiver,
//! OTLP point flattening, and handles on the agent binary and the test
//! workload as child processes.
#![allow(dead_code, clippy::unwrap_used)]

pub mod otlp;
pub mod procs;
pub mod receiver;
