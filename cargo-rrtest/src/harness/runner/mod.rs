//! Running tests: a pool of `jobs` worker threads, each running one test at a
//! time, every attempt in its own process.
//!
//! An attempt is first described as a value, [`AttemptSpec`] (program, args,
//! cwd, env, attempt number, and the trace directory when recorded), and
//! turned into a process by one function, [`AttemptSpec::to_command`], which
//! wraps a recorded attempt as `<recorder> record --no-verify --disposable -o
//! TRACE -- <bin> <args>` (the recorder passes the test's output through).
//!
//! A recorded attempt is checked afterwards ([`super::record`]): a recorder
//! failure (exit 105, or no finished trace) makes it a `recorder_error`, and
//! the same attempt runs again without recording so its verdict is known.
//! Traces the keep policy does not keep are deleted as soon as the attempt
//! ends (`--disposable` made them cheap: no file content hashed or copied,
//! nothing fsynced); kept ones are made self-contained and durable at once
//! ([`record::keep_trace`](super::record::keep_trace)), then verified and
//! packed by the same worker threads, which take verification jobs before
//! new tests, so verification shares the job limit and overlaps the rest of
//! the run.
//!
//! Each attempt runs with null stdin, in its own process group, with stdout and
//! stderr on pipes. The worker waits with poll(2) on the pipes (so full pipes
//! never block the test), checking the child with `waitid(WNOWAIT)` and the
//! deadline at each wake-up; at the timeout or on cancellation it kills the
//! whole process group with SIGKILL (a recorded attempt at its timeout first
//! gets SIGTERM to the recorder, which kills the test and closes the trace,
//! and [`TERM_GRACE`] to exit). After the child exits, any processes left
//! in its group are killed before the child is reaped (while it is a zombie
//! its pid, which is the group id, cannot be reused).
//!
//! The code is split by concern, one file each; this file holds the
//! configuration, the limits the others share, and the public names
//! (re-exported, so callers name `runner::X`):
//!
//! | file | owns |
//! | --- | --- |
//! | `pool.rs` | [`run_tests`]: the worker threads, the queue of tests and verification jobs, progress events |
//! | `retries.rs` | one test's attempts: retries, the native rerun after a recorder error, keeping or dropping each trace, the test's outcome (flaky when a retry passed) |
//! | `spec.rs` | [`AttemptSpec`]/[`RecordSpec`]: an attempt as a value, and the command it becomes |
//! | `attempt.rs` | [`run_attempt`]: one attempt's process, from spawn to its [`AttemptResult`] |
//! | `recorded.rs` | a recorded attempt: sending it to the worker's recorder server, and what its trace says afterwards |
//! | `watch.rs` | reading an attempt's pipes while it runs, and killing it at the timeout or on cancellation |
//! | `result.rs` | [`AttemptResult`], [`TestResult`], [`Captured`] output |
//!
//! The runner must not write the report or show progress: progress goes
//! to the caller's `on_event`, results are returned (its only output of its
//! own is a warning on stderr when a test's trace directory cannot be
//! prepared).

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::record::Recording;

mod attempt;
mod pool;
mod recorded;
mod result;
mod retries;
mod spec;
mod watch;

#[cfg(test)]
mod tests;

pub use attempt::{run_attempt, run_attempt_with};
pub use pool::{run_repeated, run_tests, Repeat, RunEvent};
pub use result::{AttemptResult, Captured, RunCounts, TestResult};
pub use spec::{AttemptSpec, RecordSpec};

/// How much of each stream is kept in memory per attempt (the end of it).
pub const CAPTURE_LIMIT: usize = 1024 * 1024;

/// Longest sleep between checks of the deadline and the cancel flag.
const MAX_TICK: Duration = Duration::from_millis(100);

/// How long a recorder gets to close the trace after SIGTERM at a timeout
/// before its process group is killed.
pub const TERM_GRACE: Duration = Duration::from_secs(2);

/// How the runner runs tests.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Worker threads (tests run at once).
    pub jobs: usize,
    /// Per-attempt timeout.
    pub timeout: Option<Duration>,
    /// Extra attempts for a failed or timed-out test.
    pub retries: u32,
    /// How to record attempts; None runs them natively (`--no-record`).
    pub recording: Option<Arc<Recording>>,
    /// Inherited variables removed from tests' environments (credentials).
    pub env_remove: Vec<OsString>,
    /// Paths recorded tests see as empty (`--hide-path`; absolute).
    pub hide_paths: Vec<PathBuf>,
}
