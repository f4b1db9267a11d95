//! The recorder: runs a program under ptrace, serializes its threads, and
//! writes every nondeterministic input to a trace.

pub mod syscalls;

/// Errors of the recorder itself (not of the program it records).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system facility failed.
    #[error("{0}")]
    Sys(String),
}
