//! `cargo rrtest info`: describe a recording.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::errors::{Error, Result};

/// Options of `cargo rrtest info`.
#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// The trace directory.
    pub trace: PathBuf,
}

/// Runs `cargo rrtest info`.
pub fn exec(_args: InfoArgs) -> Result<ExitCode> {
    Err(Error::Other(
        "`cargo rrtest info` is being built (issue 3)".into(),
    ))
}
