//! The on-disk trace format (docs/trace-format.md).
//!
//! A trace is a directory:
//! ```text
//! trace-dir/
//!   header.json    Header: versions, command, env, cwd, kernel, CPUID, outcome
//!   events.zst     the event stream: zstd-compressed, versioned binary records
//!   files/         content-addressed copies of mapped files (hard links if possible)
//! ```
//! [`TraceWriter`] writes one while recording; [`TraceReader`] reads it back,
//! rejecting unknown versions and reporting corruption with its offset.

mod event;
mod header;

pub use event::*;
pub use header::*;

/// The trace format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Errors reading or writing a trace.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The trace was written by an incompatible version.
    #[error("trace {path} has format version {found}, but this cargo-rrtest ({ours}) reads version {expected}; replay it with cargo-rrtest {writer} (the version that recorded it)")]
    VersionMismatch {
        /// The trace.
        path: String,
        /// Its version.
        found: u32,
        /// Ours.
        expected: u32,
        /// Our tool version.
        ours: String,
        /// The recorder version named in the trace.
        writer: String,
    },
    /// The trace is damaged.
    #[error("trace {path} is corrupt at {what} offset {offset}: {reason}")]
    Corrupt {
        /// The file inside the trace.
        path: String,
        /// Which part (e.g. "event stream").
        what: &'static str,
        /// Byte offset in the (decompressed) stream, or in the file.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// An I/O error.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}
