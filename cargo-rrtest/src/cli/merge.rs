//! `cargo rrtest merge-reports`: merge shard reports into one.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::errors::{Error, Result};

/// Options of `cargo rrtest merge-reports`.
#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// The shard reports to merge.
    #[arg(required = true)]
    pub reports: Vec<PathBuf>,
    /// Where to write the merged report.
    #[arg(short = 'o', long)]
    pub output: PathBuf,
}

/// Runs `cargo rrtest merge-reports`.
pub fn exec(_args: MergeArgs) -> Result<ExitCode> {
    Err(Error::Other(
        "`cargo rrtest merge-reports` is being built (issue 2)".into(),
    ))
}
