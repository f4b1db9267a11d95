//! The test harness: build, list, filter, partition, run, retry, report.
//!
//! [`run`] is the whole `cargo rrtest run` pipeline:
//! [`build`] (cargo test --no-run) -> [`list`] (`--list --format terse`) ->
//! [`filter`] and [`partition`] -> [`runner`] (one process per attempt, a job
//! pool, timeouts, retries) -> the report ([`crate::report`]) and the human
//! output ([`output`]).

pub mod build;
pub mod filter;
pub mod list;
pub mod output;
pub mod panic;
pub mod partition;
pub mod runner;
pub mod signals;

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::errors::{exit_codes, Result};
use crate::report::{self, json::output_tail, Report};

pub use build::CargoOptions;
pub use filter::{RunIgnored, TestFilter};
pub use partition::Partition;

/// What to do when no test is selected (`--no-tests`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum NoTests {
    /// Exit 0 silently.
    Pass,
    /// Exit 0 with a warning.
    #[default]
    Warn,
    /// Exit 4.
    Fail,
}

/// Everything `cargo rrtest run` needs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Cargo flags.
    pub cargo: CargoOptions,
    /// Test selection.
    pub filter: TestFilter,
    /// Shard of the tests.
    pub partition: Option<Partition>,
    /// Runner settings.
    pub runner: runner::RunnerConfig,
    /// Flaky tests fail the run.
    pub flaky_fails: bool,
    /// The JSON report (default: TARGET/rrtest/report.json).
    pub report: Option<PathBuf>,
    /// JUnit XML output.
    pub junit: Option<PathBuf>,
    /// Colour choice.
    pub color: output::ColorChoice,
    /// What no selected tests means.
    pub no_tests: NoTests,
}

/// Runs the tests and returns the exit code.
pub fn run(options: &RunOptions) -> Result<u8> {
    let started = Instant::now();
    let started_at = report::json::now_rfc3339();
    let cancel = signals::cancel_flag();

    let built = build::build(&options.cargo)?;
    let binaries = built.binaries.len();
    let listed = list::list_all(built.binaries.clone(), options.runner.jobs)?;

    let selected: Vec<(list::TestCase, filter::Selection)> = listed
        .into_iter()
        .filter_map(|t| match options.filter.select(&t) {
            filter::Selection::Exclude => None,
            s => Some((t, s)),
        })
        .enumerate()
        .filter(|(i, (t, _))| {
            options
                .partition
                .is_none_or(|p| p.contains(*i, &t.binary.binary_id, &t.name))
        })
        .map(|(_, x)| x)
        .collect();
    let (to_run, ignored): (Vec<_>, Vec<_>) = selected
        .into_iter()
        .partition(|(_, s)| *s == filter::Selection::Run);
    let to_run: Vec<list::TestCase> = to_run.into_iter().map(|(t, _)| t).collect();
    let ignored: Vec<list::TestCase> = ignored.into_iter().map(|(t, _)| t).collect();

    let github = report::github::is_github_actions();
    let token = github.then(report::github::stop_token);
    let mut reporter = output::Reporter::new(options.color, token);
    reporter.start(to_run.len(), binaries, ignored.len());

    let results = runner::run_tests(&to_run, &options.runner, cancel, |e| reporter.event(e));
    let cancelled = cancel.load(std::sync::atomic::Ordering::Relaxed);
    let results: Vec<runner::TestResult> = results.into_iter().filter(|r| !r.cancelled()).collect();

    let mut tests: Vec<report::TestReport> = results.iter().map(test_report).collect();
    tests.extend(ignored.iter().map(|t| report::TestReport {
        binary_id: t.binary.binary_id.clone(),
        name: t.name.clone(),
        package: t.binary.package.clone(),
        outcome: report::Outcome::Ignored,
        duration_ms: 0,
        attempts: Vec::new(),
        trace: None,
    }));
    let elapsed = started.elapsed();
    let report = Report::new(
        started_at,
        millis(elapsed),
        options.partition.map(|p| p.to_string()),
        false,
        tests,
    );
    let report_path = options
        .report
        .clone()
        .unwrap_or_else(|| built.target_dir.join("rrtest").join("report.json"));
    report.write(&report_path)?;
    if let Some(junit) = &options.junit {
        if let Some(dir) = junit.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| crate::errors::Error::io(dir.display().to_string(), e))?;
        }
        std::fs::write(junit, report::junit::render(&report))
            .map_err(|e| crate::errors::Error::io(junit.display().to_string(), e))?;
    }
    reporter.finish(&results, &report, elapsed, cancelled);
    if github {
        let paths = report::github::PathContext {
            workspace_root: built.workspace_root.clone(),
            github_workspace: std::env::var_os("GITHUB_WORKSPACE").map(PathBuf::from),
        };
        let _ = write!(
            std::io::stdout(),
            "{}",
            report::github::annotations(&report, &paths)
        );
        if let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|s| !s.is_empty()) {
            let summary = PathBuf::from(summary);
            report::github::append_step_summary(&report, &summary)
                .map_err(|e| crate::errors::Error::io(summary.display().to_string(), e))?;
        }
    }
    // Writes to a closed stdout (`| head`) are ignored, not a panic.
    let _ = writeln!(
        std::io::stdout(),
        "{:>12} {}",
        "Report",
        report_path.display()
    );

    if cancelled {
        return Ok(signals::INTERRUPTED_EXIT);
    }
    if report
        .tests
        .iter()
        .any(|t| t.outcome.fails_run(options.flaky_fails))
    {
        return Ok(exit_codes::TESTS_FAILED);
    }
    if to_run.is_empty() {
        match options.no_tests {
            NoTests::Pass => {}
            NoTests::Warn => reporter.note("no tests to run"),
            NoTests::Fail => {
                eprintln!("error: no tests to run (--no-tests fail)");
                return Ok(exit_codes::NO_TESTS);
            }
        }
    }
    Ok(exit_codes::SUCCESS)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The report entry of a finished test.
fn test_report(r: &runner::TestResult) -> report::TestReport {
    report::TestReport {
        binary_id: r.test.binary.binary_id.clone(),
        name: r.test.name.clone(),
        package: r.test.binary.package.clone(),
        outcome: r.outcome,
        duration_ms: millis(r.duration()),
        attempts: r
            .attempts
            .iter()
            .map(|a| {
                let (stdout, stdout_omitted_bytes) = output_tail(&a.stdout.bytes, a.stdout.omitted);
                let (stderr, stderr_omitted_bytes) = output_tail(&a.stderr.bytes, a.stderr.omitted);
                report::Attempt {
                    attempt: a.attempt,
                    outcome: a.outcome,
                    duration_ms: millis(a.duration),
                    exit_code: a.exit_code,
                    signal: a.signal.clone(),
                    stdout,
                    stdout_omitted_bytes,
                    stderr,
                    stderr_omitted_bytes,
                    panic: a.panic.clone(),
                }
            })
            .collect(),
        trace: None,
    }
}
