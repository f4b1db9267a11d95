//! The on-disk trace format (docs/trace-format.md).
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

pub mod codec;
mod event;
mod files;
mod header;
pub mod pack;
mod pipeline;
mod reader;
pub mod stream;
mod writer;

#[cfg(test)]
pub(crate) mod tests;

pub use event::*;
pub use files::{file_id_of, IdCache, Kept, Stored};
pub use header::*;
pub use pipeline::ZSTD_LEVEL;
pub use reader::{read_header, ReadAhead, TraceReader};
pub use writer::{keep, rewrite_header, TraceWriter};

/// The trace format version this build writes and reads (`format_version` in
/// `header.json`).
///
/// Compatibility rule (docs/trace-format.md): a reader accepts only the
/// versions it knows and rejects any other with [`Error::VersionMismatch`],
/// which names the version and the cargo-rrtest that wrote the trace. Any
/// change a version-1 reader would misread (a header field's meaning, a
/// record layout, a new record tag) needs a new version; fields added to
/// `header.json` with a default are compatible.
pub const FORMAT_VERSION: u32 = 1;

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

/// Opens `path` for reading only if it is a regular file.
///
/// The open itself cannot block: it is made with `O_NONBLOCK` (a FIFO put in
/// place of a trace file would otherwise wait for a writer forever) and
/// `O_NOCTTY`, then `fstat` decides; anything but a regular file (a FIFO, a
/// device such as `/dev/zero`, a socket, a directory) is refused with an
/// [`std::io::ErrorKind::InvalidInput`] error that names its kind, and
/// `what` ("the trace header", "a report"). `O_NONBLOCK` does nothing to
/// reads of a regular file, so the file is returned as opened.
pub fn open_regular(path: &std::path::Path, what: &str) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if kind.is_file() {
        return Ok(file);
    }
    let is = if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    };
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("{what} must be a regular file, but this is {is}; refusing to read it"),
    ))
}

/// Reads all of the regular file `path` ([`open_regular`]), refusing one
/// larger than `limit` bytes with an [`std::io::ErrorKind::FileTooLarge`]
/// error that says so (and the limit), before reading it: no input makes
/// a reader hold more than `limit` bytes (plus one, for a file that grows
/// while it is read).
pub fn read_regular_bounded(
    path: &std::path::Path,
    limit: u64,
    what: &str,
) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let file = open_regular(path, what)?;
    let too_large = |size: u64| {
        std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!(
                "{what} is {size} bytes, over the limit of {}; refusing to read it",
                human_bytes(limit)
            ),
        )
    };
    let size = file.metadata()?.len();
    if size > limit {
        return Err(too_large(size));
    }
    let mut out = Vec::with_capacity(size as usize);
    file.take(limit + 1).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(too_large(out.len() as u64));
    }
    Ok(out)
}

/// `n` bytes in binary units, for messages (`256 MiB`, `1.5 GiB`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut unit = 0;
    while unit + 1 < UNITS.len() && n >= 1024u64 << (10 * (unit + 1)) {
        unit += 1;
    }
    let scale = 1024u64 << (10 * unit);
    if n.is_multiple_of(scale) {
        format!("{} {}", n / scale, UNITS[unit])
    } else {
        format!("{:.1} {}", n as f64 / scale as f64, UNITS[unit])
    }
}
