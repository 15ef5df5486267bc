//! The integration tests, as one test binary: each module is a topic, in
//! the order data flows through the agent, and `support` holds what several
//! of them share. One binary links tokio, tonic and OpenTelemetry once,
//! where a binary per file would link them for each.
//!
//! - `proc`: reading procfs (a fixture tree, generated broken trees, the
//!   live `/proc`), tracking and grouping.
//! - `config`: layers of settings, `check-config`, refused configurations.
//! - `agent`: the agent binary end to end against an in-process receiver:
//!   what it exports, `--once`, its lifecycle, running unprivileged, churn.
//! - `export`: the OTLP pipeline, a real collector (rotel), collector faults.
//! - `status`: the status socket, its client commands and settings.
//! - `containers`: container identity from real kubepods-style cgroups.
//! - `exits`: taskstats exit records, captured and live.
//! - `deploy`: the Kubernetes manifests and the README's commands.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod agent;
mod config;
mod containers;
mod deploy;
mod exits;
mod export;
mod proc;
mod status;
mod support;
