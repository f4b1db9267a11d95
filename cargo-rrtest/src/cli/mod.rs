//! Command-line entry point: parses `cargo rrtest ...` and dispatches to one
//! file per verb.
//!
//! Cargo runs an external subcommand as `cargo-rrtest rrtest ARGS...`; running
//! the binary directly as `cargo-rrtest ARGS...` works too.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod info;
mod merge;
mod record;
mod replay;
mod run;
mod verify;

pub use info::InfoArgs;
pub use merge::MergeArgs;
pub use record::RecordArgs;
pub use replay::ReplayArgs;
pub use run::RunArgs;
pub use verify::{verify, VerifyArgs};

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
    /// Record the programs the harness sends over fd 0, one at a time
    /// (internal: see `recorder::server`).
    #[command(hide = true)]
    RecordServer,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    init_logging();
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
    let result = match cli.command {
        None => run::exec(cli.run),
        Some(Command::Run(args)) => run::exec(args),
        Some(Command::Record(args)) => record::exec(args),
        Some(Command::Replay(args)) => replay::exec(args),
        Some(Command::Info(args)) => info::exec(args),
        Some(Command::Verify(args)) => verify::exec(args),
        Some(Command::MergeReports(args)) => merge::exec(args),
        Some(Command::RecordServer) => crate::recorder::server::serve()
            .map(|()| ExitCode::SUCCESS)
            .map_err(|e| crate::errors::Error::io("serving recordings", e)),
    };
    match result {
        Ok(code) => code,
        Err(e) => e.report(),
    }
}

/// One tracing subscriber for the process, filtered by `RRTEST_LOG`
/// (e.g. `RRTEST_LOG=cargo_rrtest::recorder=debug`), writing to stderr (a
/// recorder server: to its own stderr, not the recorded test's; see
/// `util::set_log_file`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RRTEST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::util::log_writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
