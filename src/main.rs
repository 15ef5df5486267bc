//! The `procgroups` binary: parse the command line, set up logging, run, and
//! map the outcome to an exit code (0 success, 2 bad configuration or usage,
//! 1 any other failure).

use std::process::ExitCode;

use clap::Parser;
use procgroups::cli::{Cli, LogFormat};
use procgroups::config::{self, ConfigError};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(command) = &cli.command {
        return procgroups::status::client::run(command);
    }
    procgroups::logging::init(cli.log_format.unwrap_or(LogFormat::Text));
    let config = match config::load(&cli) {
        Ok(c) => c,
        Err(e) => return report_config_error(&e),
    };
    match procgroups::agent::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("procgroups: {e:#}");
            let usage = e
                .downcast_ref::<procgroups::status::SocketError>()
                .is_some_and(|e| e.is_usage());
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

fn report_config_error(e: &ConfigError) -> ExitCode {
    eprintln!("procgroups: {e}");
    ExitCode::from(2)
}
