//! The agent binary end to end: what it exports for live processes, its
//! `--once` output, settings, lifecycle, running unprivileged, churn.

mod accounting;
mod export;
mod lifecycle;
mod not_root;
mod once;
mod settings;
mod soak;
