//! The replayer: re-executes a recording deterministically and checks every
//! event against it (DESIGN.md §8). It mirrors the recorder file for file:
//!
//! | recorder            | replayer             |
//! |---------------------|----------------------|
//! | `session.rs`        | `session.rs`         |
//! | `capture.rs`        | `inject.rs`          |
//! | (spawn: `sys`)      | `exe.rs` (same-length program path) |
//!
//! Syscalls that shape the address space or create threads are executed;
//! all others are skipped and their recorded results and memory writes
//! injected, so replay has no effect outside the tracee.

mod exe;
mod gate;
mod inject;
mod session;
mod watchdog;

use std::path::PathBuf;

pub use session::{replay, Replayed};
pub use watchdog::{interrupt, interrupted};

/// Errors of the replayer other than divergence.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Replay made no progress for too long (see `replayer/watchdog.rs`).
    #[error("replay stalled at event {index}: no progress for {secs} s; the tracees were killed")]
    Stalled {
        /// The event it was on.
        index: u64,
        /// How long it waited.
        secs: u64,
    },
    /// The trace says it cannot be replayed.
    #[error("this trace cannot be replayed: {}", .0.join("; "))]
    NotReplayable(Vec<String>),
    /// The trace's structure is wrong (not a divergence of the program).
    #[error("malformed trace at event {index}: {reason}")]
    Malformed {
        /// Event index.
        index: u64,
        /// What was wrong.
        reason: String,
    },
    /// Starting the replay tracee failed.
    #[error("cannot start the replay of {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// A ptrace or memory operation failed.
    #[error("{op} (thread {tid}): {source}")]
    Ptrace {
        /// What we were doing.
        op: &'static str,
        /// The (replay) thread.
        tid: i32,
        /// The error.
        source: std::io::Error,
    },
    /// Reading the trace failed.
    #[error(transparent)]
    Trace(#[from] rrtest_trace::Error),
}

/// Replay stopped matching the recording.
#[derive(Debug, thiserror::Error)]
#[error("replay diverged at event {index} (thread {tid}, {what}): expected {expected}, saw {seen}")]
pub struct Divergence {
    /// Index of the event in the stream.
    pub index: u64,
    /// The recorded thread id.
    pub tid: i32,
    /// What was being checked, e.g. `syscall write`.
    pub what: String,
    /// What the recording says.
    pub expected: String,
    /// What replay saw.
    pub seen: String,
}

/// What went wrong in a replay.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The program did something else than recorded.
    #[error(transparent)]
    Divergence(Box<Divergence>),
    /// Anything else.
    #[error(transparent)]
    Other(#[from] Error),
}

impl From<Divergence> for ReplayError {
    fn from(d: Divergence) -> Self {
        ReplayError::Divergence(Box::new(d))
    }
}

impl From<rrtest_trace::Error> for ReplayError {
    fn from(e: rrtest_trace::Error) -> Self {
        ReplayError::Other(Error::Trace(e))
    }
}

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The trace directory.
    pub trace_dir: PathBuf,
    /// Write the recorded stdout/stderr bytes to our own.
    pub echo_output: bool,
}
