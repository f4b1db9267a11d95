//! One test's attempts ([`run_test`]): up to `retries + 1` of them until
//! one passes; after a recorder error the same attempt again, natively, so
//! the verdict is known; after a last recorded attempt that timed out, the
//! same again natively, so the report tells a slow recording from a hang; each attempt's trace kept or dropped by the keep
//! policy; and the test's outcome from its attempts (a pass after a
//! failure is flaky).
//!
//! It must not spawn or watch processes (`attempt.rs` does) nor verify
//! kept traces (the pool queues that).

use std::sync::atomic::AtomicBool;

use rrtest_report::{AttemptOutcome, Outcome, UnrecordedRerun};

use super::{
    run_attempt, run_attempt_with, AttemptResult, AttemptSpec, RecordSpec, RunnerConfig, TestResult,
};
use crate::harness::list::TestCase;
use crate::harness::record;
use crate::harness::server::ServerSlot;
use crate::harness::tracediff;

/// Which attempts one call of [`run_test`] makes, and what it keeps.
#[derive(Debug, Clone, Copy)]
pub(super) struct TestPlan {
    /// The first attempt's number.
    pub first: u32,
    /// The last attempt's number (a pass ends earlier).
    pub last: u32,
    /// Empty the test's trace directories before, and remove them after
    /// if empty: false when other workers run the same test at once (the
    /// pool prepares them then).
    pub own_dirs: bool,
    /// Keep the trace of a passing attempt too (stress keeps one).
    pub keep_passing: bool,
}

impl TestPlan {
    /// A test's attempts in `cargo rrtest run`: 1 to `total`.
    pub(super) fn retries(total: u32) -> Self {
        TestPlan {
            first: 1,
            last: total,
            own_dirs: true,
            keep_passing: false,
        }
    }
}

/// Runs every attempt of one test.
pub(super) fn run_test(
    test: &TestCase,
    config: &RunnerConfig,
    cpu: Option<usize>,
    servers: &mut ServerSlot,
    plan: TestPlan,
    cancel: &AtomicBool,
    mut on_retry: impl FnMut(&AttemptResult),
) -> TestResult {
    let total_attempts = plan.last;
    let mut attempts: Vec<AttemptResult> = Vec::new();
    let mut first_difference = None;
    let binary_id = &test.binary.binary_id;
    let mut recording = config.recording.as_deref();
    if let (Some(rec), true) = (recording, plan.own_dirs) {
        if let Err(e) = rec.prepare_test(binary_id, &test.name) {
            eprintln!(
                "cargo-rrtest: warning: cannot prepare the trace directory of {binary_id} {}: {e}; running it without recording",
                test.name
            );
            recording = None;
        }
    }
    for n in plan.first..=plan.last {
        // A retry after a failure with a kept trace is recorded to the
        // end even if it passes, to compare with that trace (and then
        // deleted, unless kept anyway).
        let failed_before = attempts
            .iter()
            .rev()
            .find(|a| a.trace.is_some() && !a.outcome.is_pass())
            .map(|a| (a.attempt, a.trace.clone().unwrap_or_default()));
        let mut spec = AttemptSpec::new(test, n, total_attempts);
        spec.env_remove = config.env_remove.clone();
        spec.record = recording.map(|rec| RecordSpec {
            recorder: rec.recorder.clone(),
            trace_dir: rec.attempt_trace(binary_id, &test.name, n),
            syscallbuf: rec.syscallbuf,
            cpu,
            serve: rec.serve,
            discard_if_passed: !rec.keep.keeps(true)
                && !plan.keep_passing
                && failed_before.is_none(),
            hide_paths: config.hide_paths.clone(),
            chaos: rec
                .chaos
                .map(|seed| record::attempt_seed(seed, binary_id, &test.name, n)),
        });
        let mut result = run_attempt_with(&spec, config.timeout, cancel, Some(&mut *servers));
        if result.outcome == AttemptOutcome::RecorderError && !result.cancelled {
            // The user still learns the test's verdict: the same attempt, natively.
            spec.record = None;
            let native = run_attempt(&spec, config.timeout, cancel);
            attempts.push(result);
            result = native;
        }
        if let (Some((failing, failing_dir)), Some(dir), true) =
            (&failed_before, &result.trace, result.outcome.is_pass())
        {
            // Both stay only when the keep policy keeps passing traces.
            let command = recording
                .is_some_and(|rec| rec.keep.keeps(true))
                .then(|| tracediff::diff_command(failing_dir, dir));
            first_difference = Some(match tracediff::compare(failing_dir, dir) {
                Ok(diff) => tracediff::summary(&diff, *failing, n, command),
                Err(e) => tracediff::failed_summary(*failing, n, e.to_string()),
            });
        }
        let passing_kept = plan.keep_passing && result.outcome.is_pass();
        if let (Some(rec), Some(dir)) = (recording, &result.trace) {
            if result.cancelled || !(rec.keep.keeps(result.outcome.is_pass()) || passing_kept) {
                let _ = record::remove_if_present(dir);
                result.trace = None;
            } else if let Err(why) = record::keep_trace(dir) {
                // Not replayable as it is: say why instead of verifying it.
                result.checked = Some(record::Checked {
                    verified: Some(false),
                    failure: Some(why),
                    archive: None,
                });
            }
        }
        let done = result.outcome.is_pass() || result.cancelled || n == plan.last;
        if done && result.recorded && result.outcome == AttemptOutcome::TimedOut {
            // The timeout may be the recording's (threads that wait for
            // each other record slower): the same attempt without it tells
            // the user whether the test itself hangs.
            spec.record = None;
            let native = run_attempt(&spec, config.timeout, cancel);
            if !native.cancelled {
                result.unrecorded_rerun = Some(UnrecordedRerun {
                    outcome: native.outcome,
                    duration_ms: u64::try_from(native.duration.as_millis()).unwrap_or(u64::MAX),
                });
            }
        }
        if !done {
            on_retry(&result);
        }
        attempts.push(result);
        if done {
            break;
        }
    }
    if let (Some(rec), true) = (recording, plan.own_dirs) {
        // An empty directory is no kept trace (remove_dir leaves non-empty ones).
        let dir = rec.test_traces(binary_id, &test.name);
        if std::fs::remove_dir(&dir).is_ok() {
            if let Some(parent) = dir.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
    }
    let last = attempts.last().expect("at least one attempt").outcome;
    let outcome = if last == AttemptOutcome::Interrupted {
        Outcome::Interrupted
    } else if attempts
        .iter()
        .any(|a| a.outcome == AttemptOutcome::RecorderError)
    {
        Outcome::RecorderError
    } else {
        let runs = attempts.len();
        match last {
            AttemptOutcome::Passed if runs == 1 => Outcome::Passed,
            AttemptOutcome::Passed => Outcome::Flaky,
            AttemptOutcome::Failed => Outcome::Failed,
            AttemptOutcome::TimedOut => Outcome::TimedOut,
            AttemptOutcome::RecorderError => Outcome::RecorderError,
            AttemptOutcome::Interrupted => Outcome::Interrupted,
        }
    };
    TestResult {
        test: test.clone(),
        outcome,
        attempts,
        runs: None,
        first_difference,
    }
}
