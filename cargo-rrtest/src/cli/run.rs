//! `cargo rrtest [run]`: build, list, run and report the workspace's tests.
//!
//! The options map onto [`crate::harness::RunOptions`]; the pipeline lives in
//! [`crate::harness::run`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::errors::{Error, Result};
use crate::harness::{
    self, libtest_json::MessageFormat, output::ColorChoice, runner::RunnerConfig, KeepPolicy,
    NoTests, Partition, RunIgnored, TestFilter,
};

/// Options of `cargo rrtest run`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Every attempt is recorded (unless --no-record); traces of failed, timed-out and \
flaky tests are kept under TARGET_DIR/rrtest/traces, verified, and packed into \
TARGET_DIR/rrtest/archives/**/*.tar.zst. Variables that look like credentials (by name or by \
value) are removed from the tests' environment (--pass-env NAME keeps one); files the tests read \
are recorded (--hide-path hides one, as root). See docs/secrets.md.\n\n\
Exit codes: 0 all passed, 2 usage error, 4 no tests (with --no-tests fail), \
100 tests failed, 101 build failed, 102 internal error, 130 interrupted (docs/exit-codes.md)."
)]
pub struct RunArgs {
    /// Run only tests whose name contains one of these filters (the whole name with --exact).
    #[arg(value_name = "FILTERS")]
    pub filters: Vec<String>,

    /// Filters match whole test names.
    #[arg(long, help_heading = "Test selection")]
    pub exact: bool,
    /// Leave out tests whose name contains PATTERN (repeatable).
    #[arg(long, value_name = "PATTERN", help_heading = "Test selection")]
    pub skip: Vec<String>,
    /// Run only #[ignore]d tests.
    #[arg(
        long,
        conflicts_with = "include_ignored",
        help_heading = "Test selection"
    )]
    pub ignored: bool,
    /// Run #[ignore]d tests too.
    #[arg(long, help_heading = "Test selection")]
    pub include_ignored: bool,
    /// Run one shard: `hash:M/N` (stable hash of binary id and name) or `count:M/N`.
    #[arg(long, value_name = "KIND:M/N", help_heading = "Test selection")]
    pub partition: Option<Partition>,

    /// Tests to run at once [default: number of CPUs].
    #[arg(short = 'j', long, value_name = "N", help_heading = "Runner")]
    pub jobs: Option<usize>,
    /// Kill a test (its whole process group) still running after SECONDS; it is reported `timed_out`.
    #[arg(long, value_name = "SECONDS", help_heading = "Runner")]
    pub timeout: Option<f64>,
    /// Run a failed or timed-out test again, up to N more times (fail then pass = flaky) [default: 0].
    #[arg(
        long,
        value_name = "N",
        allow_negative_numbers = true,
        value_parser = parse_retries,
        help_heading = "Runner"
    )]
    pub retries: Option<u32>,
    /// Take retries, the terminating slow-timeout and test-threads from this profile of
    /// .config/nextest.toml (flags given here win; docs/nextest.md).
    #[arg(long, value_name = "NAME", help_heading = "Runner")]
    pub nextest_profile: Option<String>,
    /// Whether a flaky test passes or fails the run.
    #[arg(long, value_enum, default_value_t = FlakyResult::Pass, help_heading = "Runner")]
    pub flaky_result: FlakyResult,
    /// Run the tests without recording them.
    #[arg(long, help_heading = "Recording")]
    pub no_record: bool,
    /// Record without the syscall buffer (every syscall stops in the recorder: slower).
    #[arg(long, help_heading = "Recording")]
    pub no_syscallbuf: bool,
    /// Which traces to keep: of failed and timed-out attempts (so of flaky tests too), all, or none.
    #[arg(long, value_enum, default_value_t = KeepPolicy::Failed, help_heading = "Recording")]
    pub keep: KeepPolicy,
    /// Pass this variable to the tests although its name looks like a credential (repeatable).
    #[arg(long, value_name = "NAME", help_heading = "Recording")]
    pub pass_env: Vec<std::ffi::OsString>,
    /// Make this file or directory read as empty for recorded tests (repeatable; needs root).
    #[arg(long, value_name = "PATH", help_heading = "Recording")]
    pub hide_path: Vec<std::path::PathBuf>,
    /// Hide the well-known credential files under the home directory from recorded tests
    /// (~/.netrc, ~/.git-credentials, ~/.aws, ~/.ssh, ...; needs root; see docs/secrets.md).
    #[arg(long, help_heading = "Recording")]
    pub hide_credential_files: bool,
    /// The chaos scheduler (`--chaos [--seed SEED]`).
    #[command(flatten, next_help_heading = "Recording")]
    pub chaos: super::record::ChaosArgs,
    /// Name of the CI artifact the archives are uploaded as; replay commands in the report and the
    /// GitHub step summary then refer to it.
    #[arg(
        long,
        value_name = "NAME",
        env = "RRTEST_ARTIFACT_NAME",
        help_heading = "Recording"
    )]
    pub artifact_name: Option<String>,
    /// The recorder executable (testing aid: another build, or a stand-in that fails).
    #[arg(long, value_name = "PATH", hide = true)]
    pub recorder_path: Option<PathBuf>,
    /// Start a `record` process for every attempt rather than one recorder
    /// server per worker (for comparison).
    #[arg(long, hide = true)]
    pub no_record_server: bool,
    /// What to do when no test is selected.
    #[arg(long, value_enum, default_value_t = NoTests::Warn, help_heading = "Runner")]
    pub no_tests: NoTests,

    /// Where to write the JSON report [default: TARGET_DIR/rrtest/report.json].
    #[arg(long, value_name = "PATH", help_heading = "Reports")]
    pub report: Option<PathBuf>,
    /// Also write JUnit XML here.
    #[arg(long, value_name = "PATH", help_heading = "Reports")]
    pub junit: Option<PathBuf>,
    /// Colour the output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, help_heading = "Reports")]
    pub color: ColorChoice,
    /// What stdout carries: the human lines, or test events as libtest's JSON lines for IDEs
    /// and tools (the human lines then go to stderr; docs/harness.md).
    #[arg(long, value_enum, default_value_t = MessageFormat::Human, help_heading = "Reports")]
    pub message_format: MessageFormat,

    #[command(flatten)]
    pub cargo: harness::CargoOptions,
}

/// `--flaky-result`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FlakyResult {
    /// Flaky tests count as passing (as in cargo-nextest).
    Pass,
    /// Flaky tests fail the run.
    Fail,
}

/// Runs `cargo rrtest run`.
pub fn exec(args: RunArgs) -> Result<ExitCode> {
    harness::run(&options(args)?).map(ExitCode::from)
}

/// The harness's options for `args` (shared with `cargo rrtest stress`,
/// which sets its own on top).
pub(super) fn options(args: RunArgs) -> Result<harness::RunOptions> {
    // Before the build: a report that could not be written is known now.
    for (flag, path) in [("--report", &args.report), ("--junit", &args.junit)] {
        if let Some(path) = path.as_deref() {
            match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => {
                    super::check_output_dir(flag, path, dir)?
                }
                _ => {}
            }
        }
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Command line > the nextest profile > cargo rrtest's defaults.
    let profile = match &args.nextest_profile {
        None => super::nextest_profile::ProfileSettings::default(),
        Some(name) => {
            let root = super::nextest_profile::workspace_root(args.cargo.manifest_path.as_deref())?;
            let path = super::nextest_profile::config_path(&root);
            let settings = super::nextest_profile::load(&path, name, cpus)?;
            // What the profile decides: what the command line leaves open.
            let used: Vec<&str> = [
                settings
                    .retries
                    .as_ref()
                    .filter(|_| args.retries.is_none())
                    .map(|s| &s.shown),
                settings
                    .timeout
                    .as_ref()
                    .filter(|_| args.timeout.is_none())
                    .map(|s| &s.shown),
                settings
                    .jobs
                    .as_ref()
                    .filter(|_| args.jobs.is_none())
                    .map(|s| &s.shown),
            ]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
            eprintln!(
                "{:>12} nextest profile {name} ({}): {}",
                "Config",
                path.display(),
                if used.is_empty() {
                    "nothing the command line does not set".to_string()
                } else {
                    used.join(", ")
                }
            );
            settings
        }
    };
    let timeout = match args.timeout {
        None => profile.timeout(),
        Some(s) if s.is_finite() && s > 0.0 => Some(
            Duration::try_from_secs_f64(s)
                .map_err(|_| Error::Usage(format!("--timeout {s}: out of range")))?,
        ),
        Some(s) => {
            return Err(Error::Usage(format!(
                "--timeout {s}: expected a positive number of seconds"
            )))
        }
    };
    if args.chaos.chaos && args.no_record {
        return Err(Error::Usage(
            "--chaos schedules recorded tests: drop --no-record (or --chaos)".into(),
        ));
    }
    let chaos = args.chaos.seed();
    if let Some(seed) = chaos {
        eprintln!("cargo-rrtest: recording under the chaos scheduler, seed {seed} (--chaos --seed {seed} runs the same schedules again)");
    }
    let jobs = match args.jobs {
        Some(0) => return Err(Error::Usage("--jobs must be at least 1".into())),
        Some(n) => n,
        None => profile.jobs().unwrap_or(cpus),
    };
    let cwd = std::env::current_dir().map_err(|e| Error::io("current directory", e))?;
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let (hide_paths, missing) = harness::secrets::paths_to_hide(
        &args.hide_path,
        args.hide_credential_files,
        &cwd,
        home.as_deref(),
        harness::secrets::running_as_root(),
    )
    .map_err(Error::Usage)?;
    for p in missing {
        eprintln!(
            "cargo-rrtest: note: --hide-path {}: no such file or directory, nothing to hide",
            p.display()
        );
    }
    let options = harness::RunOptions {
        cargo: args.cargo,
        filter: TestFilter {
            patterns: args.filters,
            exact: args.exact,
            skip: args.skip,
            run_ignored: if args.ignored {
                RunIgnored::Only
            } else if args.include_ignored {
                RunIgnored::All
            } else {
                RunIgnored::Default
            },
        },
        partition: args.partition,
        runner: RunnerConfig {
            jobs,
            timeout,
            retries: args.retries.or(profile.retries()).unwrap_or(0),
            recording: None,
            env_remove: Vec::new(),
            hide_paths,
        },
        flaky_fails: args.flaky_result == FlakyResult::Fail,
        report: args.report,
        junit: args.junit,
        color: args.color,
        no_tests: args.no_tests,
        record: !args.no_record,
        syscallbuf: !args.no_syscallbuf,
        keep: args.keep,
        recorder_path: args
            .recorder_path
            .map(|p| std::path::absolute(&p).unwrap_or(p)),
        no_record_server: args.no_record_server,
        pass_env: args.pass_env,
        artifact_name: args.artifact_name.filter(|n| !n.is_empty()),
        chaos,
        stress: None,
        message_format: args.message_format,
    };
    Ok(options)
}

/// `--retries N`: a whole number >= 0. Negative numbers are parsed (not
/// taken for a flag, which would suggest `-- -1`, a test filter) and refused.
fn parse_retries(s: &str) -> std::result::Result<u32, String> {
    s.trim()
        .parse::<u32>()
        .map_err(|_| format!("--retries takes a whole number >= 0, not `{s}`"))
}
