//! The replayer: re-executes a recording deterministically and checks every
//! event against it (DESIGN.md §8). It mirrors the recorder file for file:
//!
//! | recorder                  | replayer                    | concern |
//! |---------------------------|-----------------------------|---------|
//! | `session/mod.rs`          | `session/mod.rs`            | the session, its threads, the event loop |
//! | `session/schedule.rs`     | (none: the trace's order)   | which thread runs next |
//! | `session/syscall.rs`      | `session/syscall.rs`        | syscall entries and results |
//! | `session/signals.rs`      | `session/signals.rs`        | signal delivery, temporary masks |
//! | `session/points.rs`       | `session/points.rs`         | execution points (hot loops: `point_filter.rs`) |
//! | `session/syscallbuf.rs`   | `session/syscallbuf.rs`     | buffered syscalls (answered by `gate.rs`) |
//! | `session/patching.rs`     | `session/patching.rs`       | syscall- and rdtsc-site patches |
//! | `session/rdtsc.rs`        | `session/rdtsc.rs`          | trapped `rdtsc` |
//! | `session/process.rs`      | `session/process.rs`        | start, exec, clone and fork |
//! | `capture.rs`              | `inject.rs`                 | a syscall's effects: read / written back |
//! | (spawn: `sys`)            | `exe.rs`                    | the program under a same-length path |
//!
//! Syscalls that shape the address space or create threads are executed;
//! all others are skipped and their recorded results and memory writes
//! injected, so replay has no effect outside the tracee.
//!
//! `gate.rs` (the untraced gate answering buffered syscalls) and
//! `watchdog.rs` (a stalled replay ends) have no recorder counterpart.
//!
//! The public API: [`Replay`], a replay stopped between two events that a
//! driver (a debugger) steps one event at a time, reading threads,
//! registers and memory at each stop; and [`replay`], which runs one to
//! its end for `verify` and `cargo rrtest replay`. This module must not
//! expose the session's internals: drivers see positions, threads,
//! registers and memory, never the per-thread replay states.

pub mod debug;
mod exe;
mod gate;
pub mod gdb;
mod inject;
mod session;
mod watchdog;

use std::path::PathBuf;

pub use debug::{Debugger, Direction, FpRegs, Interrupter, Resume, Stop, WatchKind};
pub use session::{replay, Position, Replay, Replayed, Step, Thread};
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
    /// A [`Replay`] was asked to go on after its end (the program's exit,
    /// or an event that failed).
    #[error("the replay ended at event {index} ({why}): it cannot go on")]
    Ended {
        /// The event it ended at.
        index: u64,
        /// Why it ended.
        why: String,
    },
    /// A [`Replay`] was asked about a thread that is not a live, stopped
    /// thread of the replay.
    #[error("thread {tid} is not a live thread of the replay (live: {live:?})")]
    NoSuchThread {
        /// The recorded thread id asked for.
        tid: rrtest_trace::Tid,
        /// The recorded ids of the live threads.
        live: Vec<rrtest_trace::Tid>,
    },
    /// A debugger's request that cannot be done (a watchpoint of a length
    /// the hardware has not, a breakpoint that is not set, ...).
    #[error("{0}")]
    Debugger(String),
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
