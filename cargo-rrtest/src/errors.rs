//! The top-level, user-facing error type and the documented exit codes.
//!
//! Every layer has its own error enum; they convert into [`Error`] here, and
//! [`Error::exit_code`] maps each to a stable code (docs/exit-codes.md).

use std::process::ExitCode;

/// Stable process exit codes of `cargo rrtest` (documented in docs/exit-codes.md).
pub mod exit_codes {
    /// Everything passed (flaky tests count as passing unless `--flaky-result fail`).
    pub const SUCCESS: u8 = 0;
    /// Command-line usage error (clap's own code).
    pub const USAGE: u8 = 2;
    /// No tests matched the filters (only with `--no-tests fail`).
    pub const NO_TESTS: u8 = 4;
    /// At least one test failed, timed out, or could not be recorded.
    pub const TESTS_FAILED: u8 = 100;
    /// `cargo` failed to build the test binaries.
    pub const BUILD_FAILED: u8 = 101;
    /// An internal error of cargo-rrtest (a bug, an I/O error, a setup problem).
    pub const INTERNAL: u8 = 102;
    /// Replay diverged from the recording.
    pub const DIVERGENCE: u8 = 103;
    /// The trace is unreadable: corrupt, or written by an incompatible version.
    pub const BAD_TRACE: u8 = 104;
    /// The recorder itself failed (not the program it recorded).
    pub const RECORDER_FAILED: u8 = 105;
    /// This host cannot replay the trace (its CPU differs in what the
    /// program can observe); `replay --force` tries anyway.
    pub const OTHER_HOST: u8 = 106;
}

/// Errors that end a `cargo rrtest` command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad command-line arguments that clap could not catch.
    #[error("{0}")]
    Usage(String),
    /// The build of the test binaries failed.
    #[error("build failed: {0}")]
    Build(String),
    /// A trace could not be read.
    #[error(transparent)]
    Trace(#[from] rrtest_trace::Error),
    /// Replay diverged from the recording.
    #[error(transparent)]
    Divergence(Box<crate::replayer::Divergence>),
    /// The recorder failed.
    #[error("recorder: {0}")]
    Recorder(#[from] crate::recorder::Error),
    /// The replayer failed for a reason other than divergence.
    #[error("replayer: {0}")]
    Replayer(#[from] crate::replayer::Error),
    /// An I/O error with what we were doing.
    #[error("{context}: {source}")]
    Io {
        /// What failed.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// This host cannot replay the trace (`cli/host_check.rs`).
    #[error("{0}")]
    OtherHost(String),
    /// Anything else: a message that says what failed and what to do.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// Wraps an I/O error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The documented exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => exit_codes::USAGE,
            Error::Build(_) => exit_codes::BUILD_FAILED,
            Error::Trace(_) => exit_codes::BAD_TRACE,
            Error::Divergence(_) => exit_codes::DIVERGENCE,
            Error::Recorder(_) => exit_codes::RECORDER_FAILED,
            Error::OtherHost(_) => exit_codes::OTHER_HOST,
            Error::Replayer(crate::replayer::Error::NotReplayable(_)) => exit_codes::BAD_TRACE,
            Error::Replayer(_) | Error::Io { .. } | Error::Other(_) => exit_codes::INTERNAL,
        }
    }

    /// Prints the error and turns it into the process exit code.
    pub fn report(&self) -> ExitCode {
        eprintln!("error: {self}");
        ExitCode::from(self.exit_code())
    }
}

/// Reading or merging report files: bad input files are the user's to fix.
impl From<rrtest_report::Error> for Error {
    fn from(e: rrtest_report::Error) -> Self {
        match e {
            rrtest_report::Error::Io { path, source } => {
                Error::io(path.display().to_string(), source)
            }
            // Bad input files are the user's to fix: a usage error.
            other => Error::Usage(other.to_string()),
        }
    }
}

/// Result alias for the command layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// A trace of another format version is refused by `rrtest-trace`; the
    /// command layer maps that to BAD_TRACE.
    #[test]
    fn a_trace_version_mismatch_exits_with_bad_trace() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("t");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(
            dir.join(rrtest_trace::HEADER_FILE),
            format!(
                r#"{{"format_version": {}, "recorder_version": "9.9.9"}}"#,
                rrtest_trace::FORMAT_VERSION + 1
            ),
        )
        .expect("write");
        let err = rrtest_trace::TraceReader::open(&dir).expect_err("a newer version");
        assert!(
            matches!(err, rrtest_trace::Error::VersionMismatch { .. }),
            "{err:?}"
        );
        assert_eq!(Error::from(err).exit_code(), exit_codes::BAD_TRACE);
    }
}
