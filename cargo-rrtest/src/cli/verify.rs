//! `cargo rrtest verify DIR`: replays a finished trace without echoing its
//! output, on the machine that recorded it, and writes the result into the
//! trace's header (`verification`), where `info` and reports read it.
//!
//! SIGINT, SIGTERM and SIGHUP stop it at once (as `replay`): the tracees
//! are killed, nothing is written into the header, and it exits 128 + the
//! signal.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use crate::errors::{exit_codes, Error, Result};
use crate::harness::signals;
use crate::replayer::{self, ReplayError, ReplayOptions};
use rrtest_trace::{self as trace, Verification};

/// Options of `cargo rrtest verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The trace directory.
    pub trace: PathBuf,
}

/// Runs `cargo rrtest verify`.
pub fn exec(args: VerifyArgs) -> Result<ExitCode> {
    super::replay::interruptible();
    let verification = replay_check(&args.trace);
    if super::replay::interrupted(verification.as_ref().map_or(true, |v| !v.verified)) {
        return Ok(ExitCode::from(signals::exit_code()));
    }
    let v = match verification {
        Ok(v) => v,
        Err(Error::Trace(e)) => return Err(unverified(&args.trace, e)),
        Err(e) => return Err(e),
    };
    save(&args.trace, &v)?;
    if v.verified {
        println!(
            "verified: {} replays to its end ({} ms)",
            args.trace.display(),
            v.replay_ms
        );
        Ok(ExitCode::SUCCESS)
    } else {
        let why = v.reason.unwrap_or_default();
        eprintln!("verification failed: {why}");
        Ok(ExitCode::from(exit_codes::DIVERGENCE))
    }
}

/// Verifies the trace in `dir` and records the result in its header.
/// Errors only when the trace cannot be read or its header written.
pub fn verify(dir: &Path) -> Result<Verification> {
    let verification = match replay_check(dir) {
        Ok(v) => v,
        Err(Error::Trace(e)) => return Err(unverified(dir, e)),
        Err(e) => return Err(e),
    };
    save(dir, &verification)?;
    Ok(verification)
}

/// The trace in `dir` cannot be read now (a changed or cut stream):
/// whatever an earlier verification said no longer holds, so its header
/// says `verified: false` with `e` (best effort: the header itself may be
/// what is unreadable). Returns `e`.
fn unverified(dir: &Path, e: trace::Error) -> Error {
    let failed = Verification {
        verified: false,
        reason: Some(e.to_string()),
        verified_at: crate::util::rfc3339_now(),
        replay_ms: 0,
        point_hits: Vec::new(),
    };
    let _ = save(dir, &failed);
    Error::Trace(e)
}

/// Replays the trace in `dir` without echoing its output: [`verify`]
/// without recording the result. Errors only when the trace cannot be read.
pub fn replay_check(dir: &Path) -> Result<Verification> {
    let started = Instant::now();
    let opts = ReplayOptions {
        trace_dir: dir.to_path_buf(),
        echo_output: false,
    };
    let outcome = replayer::replay(&opts);
    let replay_ms = started.elapsed().as_millis() as u64;
    let mut point_hits = Vec::new();
    let reason = match outcome {
        Ok(done) => {
            point_hits = done.point_hits;
            None
        }
        Err(ReplayError::Other(replayer::Error::Trace(e))) => return Err(Error::Trace(e)),
        Err(e) => Some(e.to_string()),
    };
    Ok(Verification {
        verified: reason.is_none(),
        reason,
        verified_at: crate::util::rfc3339_now(),
        replay_ms,
        point_hits,
    })
}

/// Records `verification` in the header of the trace in `dir` (atomically
/// and durably).
pub fn save(dir: &Path, verification: &Verification) -> Result<()> {
    let mut header = trace::read_header(dir)?;
    header.verification = Some(verification.clone());
    trace::rewrite_header(dir, &header)?;
    Ok(())
}
