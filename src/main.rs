//! The `procgroups` binary: parse the command line, load the configuration,
//! set up logging, run, and map the outcome to an exit code (0 success,
//! 2 bad configuration or usage, 1 any other failure). clap itself exits
//! with 2 on a usage error.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::Parser;
use procgroups::cli::Cli;
use procgroups::config::{self, ConfigError};

fn main() -> ExitCode {
    // First of all: SIGHUP must never end the agent (its default action
    // would, with no last export). The running agent reloads on it.
    let hangup = Arc::new(AtomicBool::new(false));
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGHUP, hangup.clone()) {
        eprintln!("procgroups: cannot install the SIGHUP handler: {e}");
        return ExitCode::from(1);
    }
    let cli = Cli::parse();
    if let Some(command) = &cli.command {
        return procgroups::status::client::run(command);
    }
    let config = match config::load(&cli) {
        Ok(c) => c,
        Err(e) => return report_config_error(&e),
    };
    if cli.check_config {
        for w in &config.warnings {
            eprintln!("procgroups: warning: {w}");
        }
        // A closed stdout (`| head`) is not a configuration problem.
        let _ = write!(std::io::stdout().lock(), "{config}");
        return ExitCode::SUCCESS;
    }
    procgroups::logging::init(config.log_format);
    for w in &config.warnings {
        tracing::warn!(warning = %w, "configuration");
    }
    let reloader = procgroups::agent::Reloader::new(cli.clone(), config.clone(), hangup);
    match procgroups::agent::run_with(config, Some(reloader)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("procgroups: {e:#}");
            // Unusable OTEL_* settings are bad configuration too, and so are
            // a status socket that another agent holds and a --procfs that
            // is not a procfs.
            let usage = e.chain().any(|c| {
                c.is::<procgroups::telemetry::TelemetryError>()
                    || c.downcast_ref::<procgroups::status::SocketError>()
                        .is_some_and(procgroups::status::SocketError::is_usage)
                    || matches!(
                        c.downcast_ref::<procgroups::proc::SourceError>(),
                        Some(procgroups::proc::SourceError::NotProcfs { .. })
                    )
            });
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

fn report_config_error(e: &ConfigError) -> ExitCode {
    eprintln!("procgroups: {e}");
    ExitCode::from(2)
}
