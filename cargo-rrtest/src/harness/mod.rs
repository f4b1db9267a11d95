//! The test harness: build, list, filter, partition, run, retry, report.
//!
//! [`run`] is the whole `cargo rrtest run` pipeline:
//! [`build`] (cargo test --no-run) -> [`list`] (`--list --format terse`) ->
//! [`filter`] and [`partition`] -> [`runner`] (one process per attempt, a job
//! pool, timeouts, retries; each attempt recorded as set up by [`record`],
//! with credentials removed from its environment by [`secrets`]) -> the
//! report ([`rrtest_report`]) and the human output ([`output`]).

pub mod build;
pub mod filter;
pub mod libtest_json;
pub mod list;
pub mod minimize;
pub mod output;
pub mod panic;
pub mod partition;
pub mod record;
pub mod runner;
pub mod secrets;
pub mod server;
pub mod signals;
pub mod tracediff;

use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::errors::{exit_codes, Result};
use rrtest_report::{self as report, json::output_tail, Report};

pub use build::CargoOptions;
pub use filter::{RunIgnored, TestFilter};
pub use partition::Partition;
pub use record::KeepPolicy;

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
    /// Record the tests (not `--no-record`).
    pub record: bool,
    /// Record with the syscall buffer (not `--no-syscallbuf`).
    pub syscallbuf: bool,
    /// Which traces to keep.
    pub keep: KeepPolicy,
    /// The recorder executable (default: this cargo-rrtest).
    pub recorder_path: Option<PathBuf>,
    /// Start a `record` process per attempt instead of sending attempts to
    /// one recorder server per worker (for comparison).
    pub no_record_server: bool,
    /// Credential-looking variables to pass to tests anyway.
    pub pass_env: Vec<OsString>,
    /// The CI artifact the archives are uploaded as (for replay commands).
    pub artifact_name: Option<String>,
    /// Record under the chaos scheduler, each attempt with a seed derived
    /// from this one (`--chaos`, `--seed`; `record::attempt_seed`).
    pub chaos: Option<u64>,
    /// `cargo rrtest stress`: run each test again and again
    /// ([`runner::run_repeated`]) instead of once with retries.
    pub stress: Option<runner::Repeat>,
    /// What stdout carries (`--message-format`).
    pub message_format: libtest_json::MessageFormat,
}

/// Runs the tests and returns the exit code.
pub fn run(options: &RunOptions) -> Result<u8> {
    let started = Instant::now();
    let started_at = crate::util::rfc3339_now();
    let cancel = signals::cancel_flag();

    // The preflight recording runs while cargo builds and the tests are listed.
    let preflight = options.record.then(|| {
        let recorder = recorder_path(options);
        let syscallbuf = options.syscallbuf;
        std::thread::spawn(move || recorder.and_then(|r| record::preflight(&r, syscallbuf)))
    });
    let prepared = build::build(&options.cargo)
        .map_err(crate::errors::Error::from)
        .and_then(|built| {
            let listed = list::list_all(built.binaries.clone(), options.runner.jobs)?;
            Ok((built, listed))
        });
    let (built, listed) = match prepared {
        Ok(x) => x,
        Err(e) => {
            // Let the preflight finish (and remove its temporary trace).
            if let Some(p) = preflight {
                let _ = p.join();
            }
            return Err(e);
        }
    };
    let binaries = built.binaries.len();
    // One run at a time uses TARGET/rrtest (traces, archives, the default
    // report); a run that uses none of it (`--no-record` with `--report`
    // elsewhere) needs no lock.
    let uses_rrtest_dir = options.record || options.report.is_none();
    let lock = if uses_rrtest_dir {
        lock_rrtest_dir(&built.target_dir.join("rrtest"), cancel).map(|l| l.map(Some))
    } else {
        Ok(Some(None))
    };
    let _lock = match lock {
        Ok(Some(lock)) => lock,
        Ok(None) => {
            if let Some(p) = preflight {
                let _ = p.join();
            }
            return Ok(signals::exit_code());
        }
        Err(e) => {
            eprintln!(
                "cargo-rrtest: warning: cannot lock {}: {e}; another run in this target directory would interfere",
                built.target_dir.join("rrtest").display()
            );
            None
        }
    };

    let listed_count = listed.len();
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
    let filtered_out = listed_count - to_run.len() - ignored.len();
    let to_run: Vec<list::TestCase> = to_run.into_iter().map(|(t, _)| t).collect();
    let ignored: Vec<list::TestCase> = ignored.into_iter().map(|(t, _)| t).collect();

    let github = report::github::is_github_actions();
    let token = github.then(report::github::stop_token);
    let mut reporter = output::Reporter::new(options.color, token);
    let json = libtest_json::LibtestJson::new(options.message_format);
    if json.is_some() {
        reporter = reporter.on_stderr();
    }

    let mut runner_config = options.runner.clone();
    let inherited: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    runner_config.env_remove = secrets::to_remove(
        inherited
            .iter()
            .map(|(k, v)| (k.as_os_str(), v.as_os_str())),
        &options.pass_env,
    )
    .into_iter()
    .map(|r| r.name)
    .collect();
    let checked = preflight
        .map(|p| {
            p.join()
                .unwrap_or_else(|_| Err("the preflight check panicked".into()))
        })
        .unwrap_or(Ok(None));
    let mut disabled_reason = None;
    if !options.record {
        disabled_reason = Some("--no-record".to_string());
    } else if !to_run.is_empty() {
        let set_up = checked.and_then(|no_buffer| {
            let mut recording = setup_recording(options, &built.target_dir)?;
            if let Some(why) = no_buffer {
                reporter.warn(&format!(
                    "the syscall buffer is not usable here: {why}; recording without it (slower, as with --no-syscallbuf)"
                ));
                recording.syscallbuf = false;
            }
            Ok(recording)
        });
        match set_up {
            Ok(recording) => runner_config.recording = Some(Arc::new(recording)),
            Err(why) => {
                reporter.warn(&format!(
                    "recording is not possible here: {why}; running the tests without recording (as with --no-record)"
                ));
                disabled_reason = Some(why);
            }
        }
    }
    reporter.start(to_run.len(), binaries, ignored.len());
    if let Some(repeat) = &options.stress {
        reporter.start_stress(to_run.len(), repeat);
    }
    if let Some(json) = &json {
        json.suite_started(to_run.len() + ignored.len());
    }

    let on_event = |e: runner::RunEvent<'_>| {
        if let Some(json) = &json {
            json.event(&e);
        }
        reporter.event(e)
    };
    let mut results = match options.stress {
        None => runner::run_tests(&to_run, &runner_config, cancel, on_event),
        Some(repeat) => runner::run_repeated(&to_run, &runner_config, repeat, cancel, on_event),
    };
    if options.stress.is_some() {
        for r in &mut results {
            r.first_difference = stress_difference(r);
        }
    }
    if let Some(json) = &json {
        for t in &ignored {
            json.ignored(t);
        }
    }
    let cancelled = cancel.load(std::sync::atomic::Ordering::Relaxed);
    // Tests that were running when a signal came are listed as interrupted.
    let results: Vec<runner::TestResult> = results;

    let replay = ReplayHint {
        artifact_name: options.artifact_name.clone(),
        archives_dir: runner_config
            .recording
            .as_ref()
            .map(|r| r.archives_dir.clone()),
    };
    let mut tests: Vec<report::TestReport> =
        results.iter().map(|r| test_report(r, &replay)).collect();
    tests.extend(ignored.iter().map(|t| report::TestReport {
        binary_id: t.binary.binary_id.clone(),
        name: t.name.clone(),
        package: t.binary.package.clone(),
        outcome: report::Outcome::Ignored,
        duration_ms: 0,
        attempts: Vec::new(),
        trace: None,
        archive: None,
        archive_bytes: None,
        replay_command: None,
        verified: None,
        verification_failure: None,
        runs: None,
        failures: None,
        first_difference: None,
    }));
    let elapsed = started.elapsed();
    let mut report = Report::new(
        started_at,
        millis(elapsed),
        options.partition.map(|p| p.to_string()),
        runner_config.recording.is_some(),
        tests,
    );
    report.recording_disabled_reason = disabled_reason;
    report.stress = options.stress.map(|r| report::StressSettings {
        count: r.count,
        duration_ms: r.duration.map(millis),
        keep_going: r.keep_going,
    });
    report.env_removed = runner_config
        .env_remove
        .iter()
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    if runner_config.recording.is_some() {
        report.hidden_paths = runner_config
            .hide_paths
            .iter()
            .map(|p| p.display().to_string())
            .collect();
    }
    if cancelled {
        report.interrupted = true;
        report.interrupted_by = signals::received().map(|s| s.as_str().to_string());
    }
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
        report::json::write_atomically(junit, report::junit::render(&report).as_bytes())?;
    }
    reporter.finish(&results, &report, elapsed, cancelled);
    if let Some(json) = &json {
        json.suite_finished(&report.summary, filtered_out, elapsed);
    }
    // With --message-format, stdout has the JSON lines only.
    let mut human: Box<dyn std::io::Write> = if json.is_some() {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    };
    if github {
        let paths = report::github::PathContext {
            workspace_root: built.workspace_root.clone(),
            github_workspace: std::env::var_os("GITHUB_WORKSPACE").map(PathBuf::from),
        };
        let _ = write!(human, "{}", report::github::annotations(&report, &paths));
        if let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|s| !s.is_empty()) {
            let summary = PathBuf::from(summary);
            let artifact = report::github::ArtifactContext::from_env(options.artifact_name.clone());
            report::github::append_step_summary(&report, &summary, &artifact)
                .map_err(|e| crate::errors::Error::io(summary.display().to_string(), e))?;
        }
    }
    // Writes to a closed stdout (`| head`) are ignored, not a panic.
    let _ = writeln!(human, "{:>12} {}", "Report", report_path.display());

    if cancelled {
        return Ok(signals::exit_code());
    }
    // A stress run that found a failure fails, flaky or not.
    let flaky_fails = options.flaky_fails || options.stress.is_some();
    if report
        .tests
        .iter()
        .any(|t| t.outcome.fails_run(flaky_fails))
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

/// Takes the lock of `rrtest` (an exclusive flock on `rrtest/lock`, held
/// until the returned file is dropped, or the process ends). Another run
/// holding it is waited for, with a message printed once; None when the
/// run was cancelled while waiting.
fn lock_rrtest_dir(
    rrtest: &Path,
    cancel: &std::sync::atomic::AtomicBool,
) -> std::io::Result<Option<std::fs::File>> {
    std::fs::create_dir_all(rrtest)?;
    let path = rrtest.join("lock");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)?;
    let mut told = false;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        if !told {
            eprintln!(
                "{:>12} waiting for file lock on {} (another cargo rrtest run in this target directory)",
                "Blocking",
                path.display()
            );
            told = true;
        }
        if cancel.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The recorder executable: `--recorder-path`, else this cargo-rrtest.
fn recorder_path(options: &RunOptions) -> std::result::Result<PathBuf, String> {
    match &options.recorder_path {
        Some(p) => Ok(p.clone()),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find the cargo-rrtest executable: {e}")),
    }
}

/// Sets up the trace directories (after a successful preflight).
fn setup_recording(
    options: &RunOptions,
    target_dir: &Path,
) -> std::result::Result<record::Recording, String> {
    let me = std::env::current_exe()
        .map_err(|e| format!("cannot find the cargo-rrtest executable: {e}"))?;
    let recorder = recorder_path(options)?;
    let rrtest = target_dir.join("rrtest");
    let recording = record::Recording {
        recorder,
        verifier: me,
        traces_dir: rrtest.join("traces"),
        archives_dir: rrtest.join("archives"),
        keep: options.keep,
        syscallbuf: options.syscallbuf,
        // A stand-in recorder (`--recorder-path`) speaks only `record`.
        serve: options.recorder_path.is_none() && !options.no_record_server,
        chaos: options.chaos,
    };
    for dir in [&recording.traces_dir, &recording.archives_dir] {
        record::create_private_dir(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    Ok(recording)
}

/// What replay commands are built from.
struct ReplayHint {
    /// The CI artifact holding the archives, if named.
    artifact_name: Option<String>,
    /// `TARGET/rrtest/archives`, when recording.
    archives_dir: Option<PathBuf>,
}

/// A word for a shell command line: as is when safe, else single-quoted.
pub fn shell_word(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '_' | '-' | '.' | '/' | ':' | '=' | '@' | '+' | ',')
        });
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The report entry of a finished test.
fn test_report(r: &runner::TestResult, replay: &ReplayHint) -> report::TestReport {
    let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    let attempts: Vec<report::Attempt> = r
        .attempts
        .iter()
        .map(|a| {
            let (stdout, stdout_omitted_bytes) = output_tail(&a.stdout.bytes, a.stdout.omitted);
            let (stderr, stderr_omitted_bytes) = output_tail(&a.stderr.bytes, a.stderr.omitted);
            let checked = a.checked.clone().unwrap_or_default();
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
                recorded: a.recorded,
                recorder_error: a.recorder_error.clone(),
                unrecorded_rerun: a.unrecorded_rerun,
                trace: path(&a.trace),
                archive: path(&checked.archive),
                verified: a.trace.as_ref().and(checked.verified),
                verification_failure: checked.failure,
                chaos_seed: a.chaos_seed,
            }
        })
        .collect();
    // The test's trace: the last failing attempt's, else (--keep all) the last one's.
    let primary = attempts
        .iter()
        .rev()
        .find(|a| a.trace.is_some() && !a.outcome.is_pass())
        .or_else(|| {
            // Under stress a passing trace is kept to compare with, not
            // as the test's trace.
            (r.runs.is_none())
                .then(|| attempts.iter().rev().find(|a| a.trace.is_some()))
                .flatten()
        });
    let replay_command = primary.map(|a| {
        let local = format!(
            "cargo rrtest replay {}",
            shell_word(&format!("{}::{}", r.test.binary.binary_id, r.test.name))
        );
        match (&replay.artifact_name, &replay.archives_dir, &a.archive) {
            (Some(name), Some(dir), Some(archive)) => {
                // The artifact as downloaded (`NAME.zip`, or the folder `NAME`
                // from `gh run download`: replay reads both), and the test; its
                // path in the artifact when a later attempt's archive is there
                // too (the name would pick the latest).
                let later = attempts
                    .iter()
                    .any(|b| b.attempt > a.attempt && b.archive.is_some());
                let pick = if later {
                    Path::new(archive)
                        .strip_prefix(dir)
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|_| archive.clone())
                } else {
                    format!("{}::{}", r.test.binary.binary_id, r.test.name)
                };
                format!(
                    "cargo rrtest replay {} {}",
                    shell_word(&format!("{name}.zip")),
                    shell_word(&pick)
                )
            }
            _ => local,
        }
    });
    report::TestReport {
        binary_id: r.test.binary.binary_id.clone(),
        name: r.test.name.clone(),
        package: r.test.binary.package.clone(),
        outcome: r.outcome,
        duration_ms: millis(r.duration()),
        trace: primary.and_then(|a| a.trace.clone()),
        archive: primary.and_then(|a| a.archive.clone()),
        archive_bytes: primary
            .and_then(|a| a.archive.as_ref())
            .and_then(|p| std::fs::metadata(p).ok())
            .map(|m| m.len()),
        replay_command,
        verified: primary.and_then(|a| a.verified),
        verification_failure: primary.and_then(|a| a.verification_failure.clone()),
        attempts,
        runs: r.runs.map(|c| c.runs),
        failures: r.runs.map(|c| c.failures),
        first_difference: r.first_difference.clone(),
    }
}

/// Under stress, the first difference between a test's first kept failing
/// trace and its kept passing one, if it has both.
fn stress_difference(r: &runner::TestResult) -> Option<report::FirstDifference> {
    let failing = r
        .attempts
        .iter()
        .find(|a| a.trace.is_some() && !a.outcome.is_pass())?;
    let passing = r
        .attempts
        .iter()
        .find(|a| a.trace.is_some() && a.outcome.is_pass())?;
    let (fd, pd) = (failing.trace.as_ref()?, passing.trace.as_ref()?);
    let command = tracediff::diff_command(fd, pd);
    Some(match tracediff::compare(fd, pd) {
        Ok(diff) => tracediff::summary(&diff, failing.attempt, passing.attempt, Some(command)),
        Err(e) => tracediff::failed_summary(failing.attempt, passing.attempt, e.to_string()),
    })
}
