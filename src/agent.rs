//! The running agent: a tokio timer runs one collection cycle per interval
//! off the async threads, publishes an immutable snapshot that the
//! OpenTelemetry instruments read, and flushes on shutdown; `--once` prints
//! the second of two cycles instead of exporting.

use crate::config::Config;

/// Runs the agent until SIGTERM/SIGINT.
pub fn run(config: Config) -> anyhow::Result<()> {
    let _ = config;
    unimplemented!()
}
