//! `rrtest-trace`: the on-disk trace format (docs/trace-format.md): its
//! types, the writer and reader, the event codec and stream, `files/`, and
//! `.tar.zst` archives (pack/unpack).
//!
//! It depends on `rrtest-sys` (the threads of the stream pipeline leave the
//! recorder's CPU and keep signals away; the per-user cache directories; the
//! CPUID leaf type) and `rrtest-abi` only: never on the recorder, the
//! replayer, the harness or the reports, which all build on it.
//!
//!
//! A trace is a directory:
//! ```text
//! trace-dir/
//!   header.json    Header: versions, command, env, cwd, kernel, CPUID, outcome
//!   events.zst     the event stream: zstd-compressed, versioned binary records
//!   files/         content-addressed copies of mapped files (hard links until kept)
//! ```
//! [`TraceWriter`] writes one while recording; [`TraceReader`] reads it back,
//! rejecting unknown versions and reporting corruption with its offset.

#![forbid(unsafe_code)]

pub mod codec;
pub mod diff;
mod event;
mod files;
mod header;
pub mod pack;
mod pipeline;
mod reader;
pub mod stream;
mod writer;

#[cfg(test)]
mod tests;

/// Generators of headers and events for tests: this crate's own (as
/// `tests::gen`) and other crates' (feature `test-support`).
#[cfg(any(test, feature = "test-support"))]
#[doc(hidden)]
#[path = "tests/gen.rs"]
pub mod test_support;

pub use event::*;
pub use files::{file_id_of, IdCache, Kept, Stored};
pub use header::*;
pub use pipeline::ZSTD_LEVEL;
pub use reader::{read_header, ReadAhead, TraceReader};
pub use writer::{keep, rewrite_header, TraceWriter};

/// The trace format version this build writes (`format_version` in
/// `header.json`); it reads [`OLDEST_FORMAT_VERSION`] to this.
///
/// Compatibility rule (docs/trace-format.md): a reader accepts only the
/// versions it knows and rejects any other with [`Error::VersionMismatch`],
/// which names the version and the cargo-rrtest that wrote the trace. Any
/// change an older reader would misread (a header field's meaning, a
/// record layout, a new record tag) needs a new version; fields added to
/// `header.json` with a default are compatible.
///
/// Version 2: execution-point digests are XXH3-64, said by the header's
/// `point_digest` (version 1: SHA-256, and no such field). A version 1
/// reader would check them as SHA-256 and report every point as a
/// divergence, so it must refuse them instead.
///
/// Version 3: the recorder replaces the kernel's vDSO by its own at each
/// exec, said by the header's `own_vdso`. A version 2 reader would replay
/// the program with the vDSO hidden instead, and the program would take
/// other paths than it took while recording (a divergence, not a clear
/// refusal), so it must refuse them instead.
///
/// Version 4: the own vDSO's image is mapped with a stub page for its
/// sites right below it, and each `Exec` record ends with the address of
/// the copy of the image mapped where the recording kernel's vDSO was
/// ([`VdsoCopy`]); replay maps both the same way. Version 3 traces (the
/// stub page mapped at the first patch of a site in the image, the copy
/// where the replaying kernel's vDSO is) are still replayed so. A
/// version 3 reader would find bytes after an `Exec` record's last field
/// (corruption to it, not a clear refusal).
///
/// Version 5: a [`Event::TraceeWrite`]'s kind byte (once a registers
/// flag, 0 or 1) may also say the x87/SSE registers (2), the blocked
/// signal mask (3) or the extended state (4) ([`WriteKind`]). A version 4
/// reader would stop at such a record as corruption (not a clear
/// refusal); traces of versions 1 to 4 have only the first two kinds and
/// are read as before.
///
/// Version 6: a [`Event::Syscall`] whose result is -ENOSYS is a call the
/// kernel did not run, which replay skips whatever the call but
/// `rt_sigreturn` (whose result is the rax it restores: the recorder
/// refuses a skipped one): a call a tracee under the program's own
/// `PTRACE_SYSEMU` had skipped (the recorder emulates it) may be one
/// replay otherwise runs again (`rt_sigprocmask`, `exit_group`). A
/// version 5 reader would run it: a divergence, not a clear refusal. The
/// layout is unchanged, and older traces, where such a result only came
/// from a kernel that lacked the call, are read and replayed under the
/// same rule.
///
/// Version 7: a [`Event::TraceeWrite`] may be of the kinds
/// [`WriteKind::RegsAtEntry`] (5) and [`WriteKind::MemoryAtEntry`] (6): a
/// write the program's tracer made at its tracee's syscall-entry stop (a
/// call changed or skipped), which replay applies when that tracee reaches
/// the syscall's entry, not where the record is (its thread is not there
/// yet: the code it runs to get there may use the registers and the
/// memory). A version 6 reader would stop at such a record as corruption
/// (a kind byte above 4), not with a clear refusal: hence the new version.
/// The layout is unchanged; traces of versions 1 to 6 have none of them
/// and are read as before.
///
/// Version 8: an execution point (the last field of a `Preempt` record
/// and of a signal delivered at a point) may end with up to eight memory
/// words ([`PointWords`]) that replay compares with the registers: a count
/// and each word's address and value. A version 7 reader would find bytes
/// after the record's last field (corruption to it, not a clear refusal).
/// Points without words are encoded as before, and older traces are read
/// as before.
pub const FORMAT_VERSION: u32 = 8;

/// The oldest trace format version this build reads.
pub const OLDEST_FORMAT_VERSION: u32 = 1;

/// The header's file name in a trace directory.
pub const HEADER_FILE: &str = "header.json";
/// The event stream's file name.
pub const EVENTS_FILE: &str = "events.zst";
/// The directory of file copies.
pub const FILES_DIR: &str = "files";

/// Errors reading or writing a trace.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The trace was written by an incompatible version.
    #[error("trace {path} has format version {found}, but this cargo-rrtest ({ours}) reads versions {OLDEST_FORMAT_VERSION} to {expected}; replay it with cargo-rrtest {writer} (the version that recorded it)")]
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
    /// The trace's execution points carry a digest this build cannot
    /// compute (a newer recorder's), so replay could not confirm them.
    #[error("trace {path} checks its execution points with the digest \"{found}\", which this cargo-rrtest ({ours}) does not know (it knows {known}); replay it with cargo-rrtest {writer} (the version that recorded it)", ours = env!("CARGO_PKG_VERSION"), known = PointDigest::KNOWN.map(|k| k.name()).join(", "))]
    UnknownDigest {
        /// The trace.
        path: String,
        /// The digest's name in the header.
        found: String,
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

pub use rrtest_sys::bounded::{human_bytes, open_regular, read_regular_bounded};
