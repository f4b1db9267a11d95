//! `cargo rrtest replay DIR`: re-executes a recording deterministically to
//! its end, writing what the program wrote to stdout/stderr while recorded,
//! and exits with the recorded exit status. A divergence exits with
//! `exit_codes::DIVERGENCE` and a message naming the event.

use std::path::PathBuf;
use std::process::ExitCode;

use super::record::exit_code_of;
use crate::errors::{Error, Result};
use crate::replayer::{self, ReplayError, ReplayOptions};

/// Options of `cargo rrtest replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The trace directory.
    pub trace: PathBuf,
    /// Do not write the recorded output.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs `cargo rrtest replay`.
pub fn exec(args: ReplayArgs) -> Result<ExitCode> {
    let opts = ReplayOptions {
        trace_dir: args.trace,
        echo_output: !args.quiet,
    };
    match replayer::replay(&opts) {
        Ok(done) => Ok(ExitCode::from(exit_code_of(done.status))),
        Err(ReplayError::Divergence(d)) => Err(Error::Divergence(d)),
        Err(ReplayError::Other(replayer::Error::Trace(e))) => Err(Error::Trace(e)),
        Err(ReplayError::Other(e)) => Err(Error::Replayer(e)),
    }
}
