//! procgroups: a Linux node agent that groups processes by name and pushes
//! the group metrics to an OpenTelemetry Collector over OTLP/gRPC.
//!
//! Data flow, one module per arrow (`ARCHITECTURE.md` has the whole map):
//!
//! ```text
//! /proc ─► proc::FsSource ─► proc::Tracker ─► proc::Grouper ─► snapshot ─► telemetry ─► OTLP/gRPC
//!          read              per-process       per-group        Arc swapped  observable
//!                            deltas            totals           each cycle   instruments
//! ```
//!
//! Each module imports only from the ones below it in this list:
//!
//! - [`proc`] reads processes ([`proc`]'s `source/`), follows them across
//!   cycles (`tracker/`) and adds them up per group (`grouper`); pure but
//!   for the procfs reader.
//! - [`config`] turns defaults, the YAML file, `PROCGROUPS_*` variables and
//!   flags into one validated [`config::Config`], including the naming rules.
//! - [`snapshot`] holds the result of one cycle and publishes it to readers.
//! - [`telemetry`] maps a snapshot onto OpenTelemetry instruments and builds
//!   the OTLP pipeline from the standard `OTEL_*` variables; [`output`]
//!   renders a snapshot for `--once`; [`status`] serves what the running
//!   agent sees, and its health, on a Unix socket, and implements the
//!   `status`, `explain` and `health` client commands.
//! - [`agent`] is the composition root: it wires all of the above, runs the
//!   cycle on a timer, publishes snapshots, handles shutdown and `--once`.
//! - [`exits`] receives the kernel's exit records (taskstats), so that what
//!   a process did after its last sample, or between two samples, is counted.
//! - [`containers`] tells a process's container and pod from its cgroup, and
//!   their names from the kubelet's log directories.
//! - [`testkit`] writes fake procfs trees for the integration tests and the
//!   benchmarks; the agent never calls it.

pub mod agent;
pub mod cli;
pub mod config;
pub mod containers;
pub mod exits;
pub mod logging;
pub mod output;
pub mod proc;
pub mod snapshot;
pub mod status;
pub mod telemetry;
pub mod testkit;
