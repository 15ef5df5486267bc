//! The agent binary end to end: what it exports for live processes, its
//! `--once` output, settings, lifecycle, running unprivileged, churn.

mod export;
mod lifecycle;
mod not_root;
mod once;
mod reload;
mod settings;
mod soak;
