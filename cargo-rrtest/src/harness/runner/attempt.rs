//! One attempt, to completion, timeout or cancellation ([`run_attempt`]):
//! spawning its process (the test, or `record` wrapping it) or handing it
//! to the recorder server, and turning how it ended into an
//! [`AttemptResult`].
//!
//! It must not retry or keep traces (`retries.rs` does); the waiting and
//! killing are `watch.rs`'s, a recorded attempt's trace `recorded.rs`'s.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use nix::unistd::Pid;
use rrtest_report::AttemptOutcome;

use super::recorded::{run_served, settle_recording};
use super::watch::{watch, Ended, Finished, Kill, Running};
use super::{AttemptResult, AttemptSpec, Captured};
use crate::harness::panic::parse_first_panic;
use crate::harness::record;
use crate::harness::server::ServerSlot;
use crate::harness::signals::signal_name;

/// Runs one attempt to completion, timeout, or cancellation. A recorded
/// attempt takes its exit status from the trace's header; a recorder failure
/// makes it [`AttemptOutcome::RecorderError`] (the partial trace removed).
pub fn run_attempt(
    spec: &AttemptSpec,
    timeout: Option<Duration>,
    cancel: &AtomicBool,
) -> AttemptResult {
    run_attempt_with(spec, timeout, cancel, None)
}

/// [`run_attempt`], sending a recorded attempt whose spec says `serve` to
/// the recorder server in `servers` (started if need be).
pub fn run_attempt_with(
    spec: &AttemptSpec,
    timeout: Option<Duration>,
    cancel: &AtomicBool,
    servers: Option<&mut ServerSlot>,
) -> AttemptResult {
    let start = Instant::now();
    let mut result = AttemptResult {
        attempt: spec.attempt,
        outcome: AttemptOutcome::Failed,
        duration: Duration::ZERO,
        exit_code: None,
        signal: None,
        stdout: Captured::default(),
        stderr: Captured::default(),
        panic: None,
        cancelled: false,
        recorded: spec.record.is_some(),
        trace: None,
        recorder_error: None,
        unrecorded_rerun: None,
        checked: None,
        chaos_seed: spec.record.as_ref().and_then(|r| r.chaos),
    };
    if let Some(r) = &spec.record {
        // A trace directory left by an earlier run must not be mistaken for this one.
        let _ = record::remove_if_present(&r.trace_dir);
    }
    let deadline = timeout.map(|t| start + t);
    let served = match (&spec.record, servers) {
        (Some(r), Some(slot)) if r.serve => Some((r, slot)),
        _ => None,
    };
    let status =
        match served.map(|(r, slot)| run_served(spec, r, slot, deadline, cancel, &mut result)) {
            Some(Some(status)) => status,
            // No server (or the request could not go to it): a process of its own.
            _ => match run_process(spec, deadline, cancel, &mut result) {
                Some(status) => status,
                None => {
                    result.duration = start.elapsed();
                    return result;
                }
            },
        };
    result.duration = start.elapsed();
    let (status, killed) = status;
    let discarded = matches!(status, Ok(Ended::Discarded));
    let passed = match status {
        Ok(Ended::Discarded) => {
            result.exit_code = Some(0);
            true
        }
        Ok(Ended::Code(code)) => {
            result.exit_code = Some(code);
            code == 0
        }
        Ok(Ended::Signal(sig)) => {
            result.signal = Some(signal_name(sig));
            false
        }
        // A recorder server that died: `recorder_error` says so (not the
        // test's stderr).
        Err(_) if result.recorder_error.is_some() => false,
        Err(e) => {
            result
                .stderr
                .push(format!("cargo-rrtest: waiting for the test: {e}\n").as_bytes());
            false
        }
    };
    result.outcome = if killed == Some(Kill::Timeout) {
        AttemptOutcome::TimedOut
    } else if passed {
        AttemptOutcome::Passed
    } else {
        AttemptOutcome::Failed
    };
    result.cancelled = killed == Some(Kill::Cancel);
    if result.cancelled {
        result.outcome = AttemptOutcome::Interrupted;
    }
    if let (Some(r), false) = (&spec.record, discarded) {
        settle_recording(r, killed, &mut result);
    }
    result.panic = parse_first_panic(&result.stderr.text());
    result
}

/// Runs the attempt as a process of its own; None when it could not start
/// (`result` says why).
fn run_process(
    spec: &AttemptSpec,
    deadline: Option<Instant>,
    cancel: &AtomicBool,
    result: &mut AttemptResult,
) -> Option<Finished> {
    let mut child = match rrtest_sys::spawn::with_empty_signal_mask(&mut spec.to_command()).spawn()
    {
        Ok(child) => child,
        Err(e) => {
            let program = spec.record.as_ref().map_or(&spec.program, |r| &r.recorder);
            let message = format!("could not start {}: {e}", program.display());
            result
                .stderr
                .push(format!("cargo-rrtest: {message}\n").as_bytes());
            if spec.record.is_some() {
                result.outcome = AttemptOutcome::RecorderError;
                result.recorder_error = Some(message);
            }
            return None;
        }
    };
    let out = child.stdout.take().map(|p| File::from(OwnedFd::from(p)));
    let err = child.stderr.take().map(|p| File::from(OwnedFd::from(p)));
    let pid = Pid::from_raw(child.id() as i32);
    let pidfd = rrtest_sys::fdpass::pidfd_open(pid.as_raw()).ok();
    let killed = watch(
        &mut Running::Process { pid, pidfd },
        out,
        err,
        deadline,
        cancel,
        spec.record.is_some(),
        result,
    );
    let status = child.wait().map(|status| match status.signal() {
        Some(sig) => Ended::Signal(sig),
        None => Ended::Code(status.code().unwrap_or(-1)),
    });
    Some((status, killed))
}
