//! The agent's error type.

use std::path::PathBuf;

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A `LAGSCOPE_*` environment variable holds a value that cannot be used.
    #[error("environment variable {var}={value:?} is invalid: {reason}")]
    InvalidEnv {
        /// The variable's name.
        var: &'static str,
        /// The value found.
        value: String,
        /// What a valid value looks like.
        reason: String,
    },
    /// A builder option holds a value that cannot be used.
    #[error("invalid lagscope option `{option}`: {reason}")]
    InvalidConfig {
        /// The option's name.
        option: &'static str,
        /// What a valid value looks like.
        reason: String,
    },
    /// Two runtimes were registered under the same name.
    #[error("a runtime named {0:?} is already registered; give each runtime its own name")]
    DuplicateRuntime(String),
    /// Poll hooks were attached to a runtime name that was never registered.
    #[error("poll hooks were attached to runtime {0:?}, which is not registered")]
    UnknownRuntime(String),
    /// A file the agent was configured with (JSON-lines output, CA certificate)
    /// could not be opened.
    #[error("cannot open {path}: {source}")]
    File {
        /// The file's path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The OS refused to start one of the agent's threads.
    #[error("cannot start the {thread} thread: {source}")]
    Thread {
        /// The thread's name.
        thread: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
}
