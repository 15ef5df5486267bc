//! The `procgroups` binary: parse the command line, set up logging, run, and
//! map the outcome to an exit code (0 success, 2 bad configuration or usage,
//! 1 any other failure).

use std::process::ExitCode;

use clap::Parser;
use procgroups::cli::Cli;
use procgroups::config::{self, ConfigError};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match config::load(&cli) {
        Ok(c) => c,
        Err(e) => return report_config_error(&e),
    };
    procgroups::logging::init(config.log_format);
    match procgroups::agent::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("procgroups: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn report_config_error(e: &ConfigError) -> ExitCode {
    eprintln!("procgroups: {e}");
    ExitCode::from(2)
}
