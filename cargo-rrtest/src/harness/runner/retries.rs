//! One test's attempts ([`run_test`]): up to `retries + 1` of them until
//! one passes; after a recorder error the same attempt again, natively, so
//! the verdict is known; each attempt's trace kept or dropped by the keep
//! policy; and the test's outcome from its attempts (a pass after a
//! failure is flaky).
//!
//! It must not spawn or watch processes (`attempt.rs` does) nor verify
//! kept traces (the pool queues that).

use std::sync::atomic::AtomicBool;

use rrtest_report::{AttemptOutcome, Outcome};

use super::{
    run_attempt, run_attempt_with, AttemptResult, AttemptSpec, RecordSpec, RunnerConfig, TestResult,
};
use crate::harness::list::TestCase;
use crate::harness::record;
use crate::harness::server::ServerSlot;

/// Runs every attempt of one test.
pub(super) fn run_test(
    test: &TestCase,
    config: &RunnerConfig,
    cpu: Option<usize>,
    servers: &mut ServerSlot,
    total_attempts: u32,
    cancel: &AtomicBool,
    mut on_retry: impl FnMut(&AttemptResult),
) -> TestResult {
    let mut attempts: Vec<AttemptResult> = Vec::new();
    let binary_id = &test.binary.binary_id;
    let mut recording = config.recording.as_deref();
    if let Some(rec) = recording {
        if let Err(e) = rec.prepare_test(binary_id, &test.name) {
            eprintln!(
                "cargo-rrtest: warning: cannot prepare the trace directory of {binary_id} {}: {e}; running it without recording",
                test.name
            );
            recording = None;
        }
    }
    for n in 1..=total_attempts {
        let mut spec = AttemptSpec::new(test, n, total_attempts);
        spec.env_remove = config.env_remove.clone();
        spec.record = recording.map(|rec| RecordSpec {
            recorder: rec.recorder.clone(),
            trace_dir: rec.attempt_trace(binary_id, &test.name, n),
            syscallbuf: rec.syscallbuf,
            cpu,
            serve: rec.serve,
            discard_if_passed: !rec.keep.keeps(true),
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
        if let (Some(rec), Some(dir)) = (recording, &result.trace) {
            if result.cancelled || !rec.keep.keeps(result.outcome.is_pass()) {
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
        let done = result.outcome.is_pass() || result.cancelled || n == total_attempts;
        if !done {
            on_retry(&result);
        }
        attempts.push(result);
        if done {
            break;
        }
    }
    if let Some(rec) = recording {
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
    }
}
