//! `cargo rrtest merge-reports A.json B.json ... -o all.json`: merge the JSON
//! reports of the shards of a partitioned run into one (see
//! [`rrtest_report::Report::merge`] for the rules).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::errors::{exit_codes, Error, Result};
use rrtest_report::Report;

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
pub fn exec(args: MergeArgs) -> Result<ExitCode> {
    let mut reports = Vec::with_capacity(args.reports.len());
    for path in args.reports {
        // An input that cannot be read (missing, not a regular file, too
        // large, not a report) is the caller's to fix: a usage error, as
        // docs/exit-codes.md says; writing the output is ours (102).
        let report = Report::read(&path).map_err(|e| Error::Usage(e.to_string()))?;
        reports.push((path, report));
    }
    let merged = Report::merge(reports)?;
    merged.write(&args.output)?;
    let s = &merged.summary;
    let _ = writeln!(
        std::io::stdout(),
        "merged {} tests ({} passed, {} failed, {} flaky, {} timed out, {} ignored) into {}",
        s.total,
        s.passed,
        s.failed,
        s.flaky,
        s.timed_out,
        s.ignored,
        args.output.display()
    );
    Ok(ExitCode::from(exit_codes::SUCCESS))
}
