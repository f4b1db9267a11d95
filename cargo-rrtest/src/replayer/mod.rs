//! The replayer: re-executes a recording deterministically and checks every
//! event against it.

/// Errors of the replayer other than divergence.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system facility failed.
    #[error("{0}")]
    Sys(String),
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
