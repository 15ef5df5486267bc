//! Configuration errors. Each one says where the bad value came from (the
//! file, the variable or the flag), where in it (the setting, or the rule's
//! index and name and the field), and what is wrong, because the person
//! reading it has to find and fix that one value.

use std::fmt;
use std::path::PathBuf;

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default.
    Default,
    /// The YAML file.
    File(PathBuf),
    /// An environment variable (its full name).
    Env(String),
    /// A command-line flag (as written, `--interval`).
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(p) => write!(f, "config {}", p.display()),
            Origin::Env(v) => write!(f, "environment variable {v}"),
            Origin::Flag(s) => write!(f, "flag {s}"),
        }
    }
}

/// A configuration that cannot be used. The binary prints it and exits
/// with code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file cannot be read.
    #[error("config {}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A value is invalid.
    #[error("{origin}: {}{message}", location_prefix(location))]
    Invalid {
        /// Where the value came from.
        origin: Origin,
        /// The setting, or `process_names[i] (name "x"): field[j]`; empty
        /// when the whole source is at fault (a YAML syntax error).
        location: String,
        /// What is wrong.
        message: String,
    },
    /// Two settings exclude each other.
    #[error("conflicting settings: {0}")]
    Conflict(String),
}

fn location_prefix(location: &str) -> String {
    if location.is_empty() {
        String::new()
    } else {
        format!("{location}: ")
    }
}

impl ConfigError {
    /// Shorthand for [`ConfigError::Invalid`].
    pub fn invalid(
        origin: Origin,
        location: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            origin,
            location: location.into(),
            message: message.into(),
        }
    }
}
