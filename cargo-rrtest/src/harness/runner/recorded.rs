//! A recorded attempt: sending it to the worker's recorder server
//! ([`run_served`]), and deciding afterwards what its trace says
//! ([`settle_recording`]): the test's exit status from the trace header, or
//! a recorder error.
//!
//! It must not keep or delete kept traces by policy (`retries.rs` does);
//! it removes only a trace that is no trace (a failed or killed recording).

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use rrtest_report::AttemptOutcome;
use rrtest_trace as trace;

use super::watch::{watch, Kill, Running};
use super::watch::{Ended, Finished};
use super::{AttemptResult, AttemptSpec, RecordSpec, TERM_GRACE};
use crate::harness::record;
use crate::harness::server::{self, RecorderServer, ServerSlot};
use crate::harness::signals::signal_name;

/// Sends the recorded attempt to the worker's recorder server; None when
/// no server can take it (then it runs as a process of its own).
pub(super) fn run_served(
    spec: &AttemptSpec,
    r: &RecordSpec,
    slot: &mut ServerSlot,
    deadline: Option<Instant>,
    cancel: &AtomicBool,
    result: &mut AttemptResult,
) -> Option<Finished> {
    let server = slot.get(&r.recorder)?;
    let (out_r, out_w) = std::io::pipe().ok()?;
    let (err_r, err_w) = std::io::pipe().ok()?;
    let opts = crate::recorder::RecordOptions {
        program: spec.program.clone(),
        argv: std::iter::once(spec.program.clone().into_os_string())
            .chain(spec.args.iter().cloned())
            .collect(),
        env: server::resulting_env(&spec.env_remove, &spec.env),
        cwd: spec.cwd.clone(),
        trace_dir: r.trace_dir.clone(),
        syscallbuf: r.syscallbuf,
        cpu: r.cpu,
        discard_if_passed: r.discard_if_passed,
        // The protocol carries no such flag: a server always uses them.
        desched_events: true,
        env_removed: spec.env_remove.clone(),
        hide_paths: r.hide_paths.clone(),
        chaos: r.chaos,
        prescribed: None,
    };
    match server.submit(&opts, out_w.as_fd(), err_w.as_fd()) {
        Ok(()) => {}
        // Too large for a message: a `record` process takes it.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => return None,
        Err(e) => {
            tracing::warn!(error = %e, "the recorder server is gone");
            slot.discard(false);
            return None;
        }
    }
    // The server and the program hold the write ends now.
    drop((out_w, err_w));
    let mut running = Running::Served {
        server,
        reply: None,
    };
    let killed = watch(
        &mut running,
        Some(File::from(OwnedFd::from(out_r))),
        Some(File::from(OwnedFd::from(err_r))),
        deadline,
        cancel,
        true,
        result,
    );
    let Running::Served { reply, .. } = running else {
        unreachable!("built as Served above")
    };
    let reply =
        reply.unwrap_or_else(|| Err(std::io::Error::other("the recorder server did not answer")));
    let mut killed = killed;
    if reply.is_err() {
        // Killed by us (SIGKILL, at the end of a timeout's grace period or
        // on cancellation), or died on its own: then the attempt is a
        // recorder error, not a timeout, whatever the time.
        let status = server_status(slot);
        let by_us = killed.is_some() && status.is_none_or(|s| s.signal() == Some(libc::SIGKILL));
        if !by_us {
            let how = match status {
                Some(s) => match (s.code(), s.signal()) {
                    (Some(code), _) => format!("with exit status {code}"),
                    (_, Some(sig)) => format!("killed by {}", signal_name(sig)),
                    _ => format!("({s})"),
                },
                None => "(its status is unknown)".to_string(),
            };
            let said = record::stderr_reason(&result.stderr.text());
            result.recorder_error = Some(format!(
                "the recorder server exited during the attempt, {how}{}",
                if said.is_empty() {
                    String::new()
                } else {
                    format!(": {said}")
                }
            ));
            killed = None;
        }
        slot.discard(by_us);
    }
    let status = reply
        .map(|r| {
            if r.discarded {
                Ended::Discarded
            } else {
                Ended::Code(r.code)
            }
        })
        .map_err(|e| match killed {
            // We killed it: say why, not that it "exited".
            Some(Kill::Timeout) => std::io::Error::other(format!(
                "the recorder did not end the recording within {} s of the timeout; its server was killed",
                TERM_GRACE.as_secs()
            )),
            _ => std::io::Error::new(e.kind(), format!("the recorder server: {e}")),
        });
    Some((status, killed))
}

/// How the worker's recorder server ended, if it did.
fn server_status(slot: &mut ServerSlot) -> Option<std::process::ExitStatus> {
    slot.current().and_then(RecorderServer::exit_status)
}

/// Decides what a recorded attempt's trace says: the test's own exit status
/// comes from the header; no finished trace (or recorder exit 105) is a
/// recorder error, except after a timeout or cancellation, where the trace
/// is just dropped.
pub(super) fn settle_recording(r: &RecordSpec, killed: Option<Kill>, result: &mut AttemptResult) {
    let header = record::finished_outcome(&r.trace_dir);
    let failure = match header {
        // A test may exit 105 itself: then its finished trace says so.
        Ok(trace::Outcome::Exited { code })
            if i32::from(crate::errors::exit_codes::RECORDER_FAILED) == code =>
        {
            header
        }
        _ if record::is_recorder_failure(result.exit_code) => Err(format!(
            "the recorder failed (exit {}): {}",
            crate::errors::exit_codes::RECORDER_FAILED,
            record::stderr_reason(&result.stderr.text())
        )),
        _ => header,
    };
    match failure {
        Ok(trace::Outcome::Exited { code }) => {
            result.exit_code = Some(code);
            result.signal = None;
            result.trace = Some(r.trace_dir.clone());
        }
        Ok(trace::Outcome::Signaled { signo }) => {
            result.exit_code = None;
            result.signal = Some(signal_name(signo));
            result.trace = Some(r.trace_dir.clone());
        }
        Err(_) if killed.is_some() => {
            let _ = record::remove_if_present(&r.trace_dir);
        }
        Err(why) => {
            let why = if let Some(server) = result.recorder_error.take() {
                format!("{server} ({why})")
            } else if why.starts_with("the recorder failed") {
                why
            } else {
                let said = record::stderr_reason(&result.stderr.text());
                format!(
                    "{why} (recorder exit {}){}",
                    result.exit_code.map_or_else(
                        || result.signal.clone().unwrap_or_default(),
                        |c| c.to_string()
                    ),
                    if said.is_empty() {
                        String::new()
                    } else {
                        format!(": {said}")
                    }
                )
            };
            let _ = record::remove_if_present(&r.trace_dir);
            result.outcome = AttemptOutcome::RecorderError;
            result.recorder_error = Some(why);
        }
    }
}
