//! What attempts and tests did: [`AttemptResult`], [`TestResult`], and
//! [`Captured`], the kept end of an output stream.
//!
//! Plain values: nothing here runs a process or reads a trace.

use std::path::PathBuf;
use std::time::Duration;

use rrtest_report::{AttemptOutcome, Outcome};

use super::CAPTURE_LIMIT;
use crate::harness::list::TestCase;
use crate::harness::record;

/// The end of a stream: at most [`CAPTURE_LIMIT`] bytes, and how many were cut.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    /// The kept bytes.
    pub bytes: Vec<u8>,
    /// Bytes dropped from the front.
    pub omitted: u64,
}

impl Captured {
    pub(super) fn push(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
        if self.bytes.len() > 2 * CAPTURE_LIMIT {
            let cut = self.bytes.len() - CAPTURE_LIMIT;
            self.bytes.drain(..cut);
            self.omitted += cut as u64;
        }
    }

    /// The kept bytes as lossy UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// What one attempt did.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    /// 1-based attempt number.
    pub attempt: u32,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// Wall time.
    pub duration: Duration,
    /// Exit code, if it exited.
    pub exit_code: Option<i32>,
    /// The killing signal's name, if killed.
    pub signal: Option<String>,
    /// Its stdout.
    pub stdout: Captured,
    /// Its stderr.
    pub stderr: Captured,
    /// The first panic it printed.
    pub panic: Option<rrtest_report::Panic>,
    /// It was stopped because the run was cancelled (Ctrl-C).
    pub cancelled: bool,
    /// It ran under the recorder.
    pub recorded: bool,
    /// Its kept trace (None when not recorded or not kept).
    pub trace: Option<PathBuf>,
    /// Why the recorder failed, for a `recorder_error` attempt.
    pub recorder_error: Option<String>,
    /// A recorded attempt that timed out (the test's last), run again
    /// without recording: how that ended.
    pub unrecorded_rerun: Option<rrtest_report::UnrecordedRerun>,
    /// Verification and packing of the kept trace (filled after the test).
    pub checked: Option<record::Checked>,
    /// The chaos seed it was recorded with (`--chaos`).
    pub chaos_seed: Option<u64>,
}

/// A test's result: its final outcome and every attempt.
#[derive(Debug, Clone)]
pub struct TestResult {
    /// The test.
    pub test: TestCase,
    /// The final outcome.
    pub outcome: Outcome,
    /// The attempts, in order (with [`super::Repeat`]: only the failing
    /// runs' and the run whose passing trace was kept).
    pub attempts: Vec<AttemptResult>,
    /// With [`super::Repeat`]: how many runs there were, and failed.
    pub runs: Option<RunCounts>,
    /// Where the failing and the passing recording first part ways, when
    /// both were recorded.
    pub first_difference: Option<rrtest_report::FirstDifference>,
}

/// How many times a test ran under [`super::Repeat`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunCounts {
    /// Runs that ended (passed, failed or timed out).
    pub runs: u64,
    /// Of which failed or timed out.
    pub failures: u64,
}

impl TestResult {
    /// Whether the run was cancelled while this test ran.
    pub fn cancelled(&self) -> bool {
        self.attempts.iter().any(|a| a.cancelled)
    }

    /// Total wall time of the attempts.
    pub fn duration(&self) -> Duration {
        self.attempts.iter().map(|a| a.duration).sum()
    }
}
