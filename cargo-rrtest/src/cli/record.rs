//! `cargo rrtest record [-o DIR] -- PROGRAM [ARGS...]`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::errors::{Error, Result};

/// Options of `cargo rrtest record`.
#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// The trace directory to write (default: target/rrtest/traces/NAME-N in a
    /// cargo project, else a cache directory; a `latest` link points to it).
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
    /// The program to record and its arguments.
    #[arg(required = true, last = true)]
    pub command: Vec<OsString>,
}

/// Runs `cargo rrtest record`.
pub fn exec(_args: RecordArgs) -> Result<ExitCode> {
    Err(Error::Other(
        "`cargo rrtest record` is being built (issue 3)".into(),
    ))
}
