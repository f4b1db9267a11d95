//! `cargo rrtest replay DIR`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::errors::{Error, Result};

/// Options of `cargo rrtest replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The trace directory.
    pub trace: PathBuf,
}

/// Runs `cargo rrtest replay`.
pub fn exec(_args: ReplayArgs) -> Result<ExitCode> {
    Err(Error::Other(
        "`cargo rrtest replay` is being built (issue 3)".into(),
    ))
}
