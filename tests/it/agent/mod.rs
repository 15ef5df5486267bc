//! The agent binary end to end: what it exports for live processes, its
//! `--once` output, settings, lifecycle, running unprivileged, churn,
//! empty groups forgotten after their time to live.

mod accounting;
mod coverage;
mod empty_groups;
mod export;
mod lifecycle;
mod not_root;
mod once;
mod reload;
mod settings;
mod soak;
