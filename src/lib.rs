//! procgroups: a Linux node agent that groups processes by name and pushes
//! the group metrics to an OpenTelemetry Collector over OTLP/gRPC.
//!
//! Data flow, one module per arrow:
//!
//! ```text
//! /proc ─► proc::FsSource ─► proc::Tracker ─► proc::Grouper ─► agent::Snapshot ─► telemetry ─► OTLP/gRPC
//!          read              per-process       per-group         Arc swapped        observable
//!                            deltas            totals            each cycle         instruments
//! ```
//!
//! - [`proc`] reads processes and keeps their state between cycles (pure but
//!   for `FsSource`).
//! - [`config`] turns defaults, the YAML file, `PROCGROUPS_*` variables and
//!   flags into one validated [`config::Config`], including the naming rules.
//! - [`telemetry`] maps a snapshot onto OpenTelemetry instruments and builds
//!   the OTLP pipeline from the standard `OTEL_*` variables.
//! - [`agent`] runs the cycle on a timer, publishes snapshots, handles
//!   shutdown and `--once`; [`output`] renders a snapshot for `--once`.
//! - [`status`] serves what the running agent sees, and its health, on a
//!   Unix socket, and implements the `status`, `explain` and `health`
//!   client commands.
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
