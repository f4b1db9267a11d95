//! Reading input files safely: only regular files (a FIFO or a device in
//! place of a trace file or a report must not block or stream forever), and
//! no more than a stated size. Every reader of a trace or a report opens
//! files through here (docs/threat-model.md); it holds no policy on what
//! the limits are.

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
