//! Command-line entry point: parses `cargo rrtest ...` and dispatches to one
//! file per verb.
//!
//! Cargo runs an external subcommand as `cargo-rrtest rrtest ARGS...`; running
//! the binary directly as `cargo-rrtest ARGS...` works too.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod artifact;
mod diff;
mod gdb;
mod host_check;
mod info;
mod merge;
mod nextest_profile;
mod record;
mod replay;
mod run;
mod select;
mod stress;
mod tempdirs;
mod verify;
mod wrap;

pub use diff::DiffArgs;
pub use info::InfoArgs;
pub use merge::MergeArgs;
pub use record::RecordArgs;
pub use replay::ReplayArgs;
pub use run::RunArgs;
pub use stress::StressArgs;
pub use verify::{verify, VerifyArgs};
pub use wrap::WrapArgs;

/// `cargo`, as clap sees it when cargo runs us.
#[derive(Debug, Parser)]
#[command(name = "cargo", bin_name = "cargo", styles = clap::builder::Styles::default())]
enum CargoCli {
    /// Run tests under a record-and-replay recorder; keep traces of failures.
    Rrtest(RrtestCli),
}

/// `cargo rrtest`.
#[derive(Debug, clap::Args)]
#[command(
    version,
    about = "Run tests under a record-and-replay recorder; keep traces of failed and flaky tests",
    args_conflicts_with_subcommands = true,
    subcommand_precedence_over_arg = true
)]
pub struct RrtestCli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

/// The verbs of `cargo rrtest`.
// Parsed once per process: the size of the `run` options does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Build and run the workspace's tests (the default verb).
    Run(RunArgs),
    /// Run tests again and again, each run recorded; keep the failures' traces and one passing
    /// trace per test.
    Stress(StressArgs),
    /// Where two recordings of the same test part ways.
    Diff(DiffArgs),
    /// Record any command, like `rr record`.
    Record(RecordArgs),
    /// Replay a recording deterministically.
    Replay(ReplayArgs),
    /// Describe a recording.
    Info(InfoArgs),
    /// Replay a recording quietly and record in it whether it replays.
    Verify(VerifyArgs),
    /// Merge the JSON reports of several shards into one.
    MergeReports(MergeArgs),
    /// Record one test as a nextest wrapper script, keeping its trace if it
    /// fails (docs/nextest.md).
    Wrap(WrapArgs),
    /// Record the programs the harness sends over fd 0, one at a time
    /// (internal: see `recorder::server`).
    #[command(hide = true)]
    RecordServer,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    // `cargo-rrtest ARGS` (run directly) is `cargo rrtest ARGS`.
    if args.get(1).map(|a| a != "rrtest").unwrap_or(true) {
        args.insert(1, "rrtest".into());
    }
    let CargoCli::Rrtest(cli) = match CargoCli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    // A recorder server's warnings (a timeout's "termination requested", a
    // file it could not copy) are about one test's recording, which the
    // report describes; on the run's terminal they would be noise. It logs
    // errors only, unless RRTEST_LOG asks for more.
    init_logging(if matches!(cli.command, Some(Command::RecordServer)) {
        "error"
    } else {
        "warn"
    });
    let result = match cli.command {
        None => run::exec(cli.run),
        Some(Command::Run(args)) => run::exec(args),
        Some(Command::Stress(args)) => stress::exec(args),
        Some(Command::Diff(args)) => diff::exec(args),
        Some(Command::Record(args)) => record::exec(args),
        Some(Command::Replay(args)) => replay::exec(args),
        Some(Command::Info(args)) => info::exec(args),
        Some(Command::Verify(args)) => verify::exec(args),
        Some(Command::MergeReports(args)) => merge::exec(args),
        Some(Command::Wrap(args)) => wrap::exec(args),
        Some(Command::RecordServer) => crate::recorder::server::serve()
            .map(|()| ExitCode::SUCCESS)
            .map_err(|e| crate::errors::Error::io("serving recordings", e)),
    };
    match result {
        Ok(code) => code,
        Err(e) => e.report(),
    }
}

/// Refuses an output directory that cannot be created because a part of
/// its path is an existing file (`-o regular_file/sub`), or that is itself
/// an existing file, with a message that names that part, instead of the
/// bare `File exists` or `Not a directory` the creation would give.
/// `shown` is the path the user gave (the directory, or a file in it).
pub(crate) fn check_output_dir(
    flag: &str,
    shown: &std::path::Path,
    dir: &std::path::Path,
) -> crate::errors::Result<()> {
    for part in dir.ancestors() {
        match std::fs::metadata(part) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) if part == shown => {
                return Err(crate::errors::Error::Usage(format!(
                    "{flag} {}: this is an existing file, not a directory; choose another path",
                    shown.display()
                )))
            }
            Ok(_) => {
                return Err(crate::errors::Error::Usage(format!(
                    "{flag} {}: cannot create it: {} is a file, not a directory",
                    shown.display(),
                    part.display()
                )))
            }
            // Not there yet (it will be created), or unreadable (the
            // creation will say why).
            Err(_) => {}
        }
    }
    Ok(())
}

/// One tracing subscriber for the process, filtered by `RRTEST_LOG`
/// (e.g. `RRTEST_LOG=cargo_rrtest::recorder=debug`; else `default`), writing to stderr (a
/// recorder server: to its own stderr, not the recorded test's; see
/// `util::set_log_file`).
fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RRTEST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::util::log_writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_dir_under_a_file_names_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("regular_file");
        std::fs::write(&file, b"x").unwrap();
        let sub = file.join("sub/deeper");
        let err = check_output_dir("-o", &sub, &sub).unwrap_err().to_string();
        assert!(
            err.contains(&format!("{} is a file, not a directory", file.display())),
            "{err}"
        );
        let err = check_output_dir("-o", &file, &file)
            .unwrap_err()
            .to_string();
        assert!(err.contains("existing file, not a directory"), "{err}");
        let report = file.join("r.json");
        let err = check_output_dir("--report", &report, &file)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is a file, not a directory"), "{err}");
        let new = tmp.path().join("new/dir");
        assert!(check_output_dir("-o", &new, &new).is_ok());
    }
}
