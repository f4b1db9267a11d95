//! Trace archives: one self-contained `.tar.zst` per trace, for CI artifacts.
//!
//! [`pack`] writes a trace directory (header, events, `files/` with the
//! executable and every mapped library) as a POSIX ustar archive compressed
//! with zstd, under one top-level directory, [`ARCHIVE_ROOT`]. The archive
//! is created owner-only (0600) and appears atomically (written under a
//! temporary name, then renamed). Entries carry no owner and a zero mtime, so
//! the same trace packs to the same bytes. `tar --zstd -xf` reads it.
//!
//! [`unpack`] is the reader, written for untrusted input (an artifact anyone
//! could have uploaded): it accepts only regular files and directories, only
//! relative paths without `.`/`..` components, creates nothing outside the
//! destination (which must be a fresh, empty directory: with no links
//! accepted, nothing inside it can point out), never overwrites (a duplicate
//! entry is an error), creates files 0600/0700 and directories 0700, verifies
//! every header checksum, and caps the number of entries, the bytes of each
//! file and of all, and how far the archive may expand, and leaves free
//! space on the destination ([`Limits`], docs/threat-model.md). It opens
//! the archive only if it is a regular file. Every error names the archive
//! offset; a failed write (a full disk) is an I/O error, not corruption.
//!
//! The tar writer and reader are ours (ustar is simple, and a reader we wrote
//! for exactly these two entry types has no surprising features to disable).
//! The reader also takes the long names of PAX extended headers (`path`,
//! `size`) and GNU `L` entries, as other tar programs write them; it
//! ignores other PAX keys and refuses GNU long link names.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// The top-level directory inside every archive; the trace is `ARCHIVE_ROOT/`.
pub const ARCHIVE_ROOT: &str = "rrtest-trace";

/// The file name suffix of trace archives.
pub const ARCHIVE_SUFFIX: &str = ".tar.zst";

const BLOCK: usize = 512;

/// zstd level for archives: a little slower than the event stream's level,
/// since archives are written only for kept traces and then uploaded.
const ARCHIVE_ZSTD_LEVEL: i32 = 3;

/// Errors packing or unpacking an archive.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error on `path`.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: String,
        /// The error.
        source: io::Error,
    },
    /// The archive is not a valid ustar stream.
    #[error("archive {archive}: corrupt at offset {offset}: {reason}")]
    Corrupt {
        /// The archive.
        archive: String,
        /// Byte offset in the decompressed tar stream.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// The archive holds an entry we refuse to extract.
    #[error("archive {archive}: refusing entry `{entry}` at offset {offset}: {reason}")]
    Unsafe {
        /// The archive.
        archive: String,
        /// The entry's name as stored.
        entry: String,
        /// Byte offset of its header in the decompressed tar stream.
        offset: u64,
        /// Why.
        reason: String,
    },
    /// A path in the trace cannot be stored in ustar.
    #[error("{path}: cannot be stored in the archive: {reason}")]
    Unstorable {
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
}

impl From<Error> for super::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io { path, source } => super::Error::Io { path, source },
            Error::Corrupt {
                archive,
                offset,
                reason,
            } => super::Error::Corrupt {
                path: archive,
                what: "archive",
                offset,
                reason,
            },
            Error::Unsafe {
                archive,
                entry,
                offset,
                reason,
            } => super::Error::Corrupt {
                path: archive,
                what: "archive",
                offset,
                reason: format!("refusing entry `{entry}`: {reason}"),
            },
            Error::Unstorable { path, reason } => super::Error::Corrupt {
                path,
                what: "archive",
                offset: 0,
                reason,
            },
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// What [`pack`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackStats {
    /// Entries (files and directories).
    pub entries: u64,
    /// Bytes of file contents before compression.
    pub content_bytes: u64,
    /// Bytes of the compressed archive.
    pub archive_bytes: u64,
}

/// Packs the trace directory `dir` into `archive` (created 0600, replaced
/// atomically if it exists). Symbolic links inside the trace are refused.
pub fn pack(dir: &Path, archive: &Path) -> Result<PackStats, Error> {
    let mut entries: Vec<(PathBuf, String)> = Vec::new();
    collect(dir, ARCHIVE_ROOT, &mut entries)?;
    let tmp = archive.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    let result = (|| {
        let enc = zstd::stream::write::Encoder::new(BufWriter::new(file), ARCHIVE_ZSTD_LEVEL)
            .map_err(io_err(&tmp))?;
        let mut tar = TarWriter::new(enc);
        let mut stats = PackStats {
            entries: 0,
            content_bytes: 0,
            archive_bytes: 0,
        };
        for (path, name) in &entries {
            let meta = std::fs::symlink_metadata(path).map_err(io_err(path))?;
            if meta.is_dir() {
                tar.dir(name).map_err(io_err(&tmp))?;
            } else {
                let exec = meta.permissions().mode() & 0o111 != 0;
                let mode = if exec { 0o700 } else { 0o600 };
                let mut f = File::open(path).map_err(io_err(path))?;
                tar.file(name, mode, meta.len(), &mut f)
                    .map_err(io_err(path))?;
                stats.content_bytes += meta.len();
            }
            stats.entries += 1;
        }
        let enc = tar.finish().map_err(io_err(&tmp))?;
        let mut buf = enc.finish().map_err(io_err(&tmp))?;
        buf.flush().map_err(io_err(&tmp))?;
        let file = buf.into_inner().map_err(|e| io_err(&tmp)(e.into_error()))?;
        file.sync_all().map_err(io_err(&tmp))?;
        stats.archive_bytes = file.metadata().map_err(io_err(&tmp))?.len();
        std::fs::rename(&tmp, archive).map_err(io_err(archive))?;
        Ok(stats)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Lists `dir` depth first, sorted, as (path, archive name) pairs.
fn collect(dir: &Path, name: &str, out: &mut Vec<(PathBuf, String)>) -> Result<(), Error> {
    out.push((dir.to_path_buf(), name.to_string()));
    let mut children: Vec<_> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .collect::<Result<_, _>>()
        .map_err(io_err(dir))?;
    children.sort_by_key(|e| e.file_name());
    for child in children {
        let path = child.path();
        let file_name = child.file_name();
        let Some(file_name) = file_name.to_str() else {
            return Err(Error::Unstorable {
                path: path.display().to_string(),
                reason: "the name is not UTF-8".into(),
            });
        };
        let child_name = format!("{name}/{file_name}");
        let kind = child.file_type().map_err(io_err(&path))?;
        if kind.is_dir() {
            collect(&path, &child_name, out)?;
        } else if kind.is_file() {
            out.push((path, child_name));
        } else {
            return Err(Error::Unstorable {
                path: path.display().to_string(),
                reason: "only regular files and directories are packed".into(),
            });
        }
    }
    Ok(())
}

/// A minimal ustar writer: directories and regular files.
struct TarWriter<W: Write> {
    out: W,
}

impl<W: Write> TarWriter<W> {
    fn new(out: W) -> Self {
        TarWriter { out }
    }

    fn dir(&mut self, name: &str) -> io::Result<()> {
        let header = header(&format!("{name}/"), 0o700, 0, b'5')?;
        self.out.write_all(&header)
    }

    fn file(&mut self, name: &str, mode: u32, size: u64, data: &mut dyn Read) -> io::Result<()> {
        let header = header(name, mode, size, b'0')?;
        self.out.write_all(&header)?;
        let copied = io::copy(&mut data.take(size), &mut self.out)?;
        if copied != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the file shrank while being packed ({copied} of {size} bytes)"),
            ));
        }
        let pad = (BLOCK - (size as usize % BLOCK)) % BLOCK;
        self.out.write_all(&[0u8; BLOCK][..pad])
    }

    fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        Ok(self.out)
    }
}

/// A ustar header block.
fn header(name: &str, mode: u32, size: u64, kind: u8) -> io::Result<[u8; BLOCK]> {
    let mut h = [0u8; BLOCK];
    let bytes = name.as_bytes();
    // Split long names at a '/' into prefix (155) and name (100).
    let (prefix, rest) = if bytes.len() <= 100 {
        (&b""[..], bytes)
    } else {
        let split = bytes
            .iter()
            .enumerate()
            .filter(|&(i, &b)| b == b'/' && i <= 155 && bytes.len() - i - 1 <= 100)
            .map(|(i, _)| i)
            .next_back()
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("name too long for ustar: {name}"),
                )
            })?;
        (&bytes[..split], &bytes[split + 1..])
    };
    h[..rest.len()].copy_from_slice(rest);
    octal(&mut h[100..108], u64::from(mode));
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    if size >= 1 << 33 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "file larger than 8 GiB",
        ));
    }
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 0);
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    octal(&mut h[329..337], 0);
    octal(&mut h[337..345], 0);
    h[345..345 + prefix.len()].copy_from_slice(prefix);
    let sum = checksum(&h);
    // Six octal digits, NUL, space.
    let digits = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(digits.as_bytes());
    Ok(h)
}

/// Writes `value` as zero-padded octal filling the field but its last byte (NUL).
fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let text = format!("{value:0width$o}");
    field[..width].copy_from_slice(text.as_bytes());
    field[width] = 0;
}

/// The header checksum: the byte sum with the checksum field read as spaces.
fn checksum(h: &[u8; BLOCK]) -> u64 {
    h.iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                u64::from(b' ')
            } else {
                u64::from(b)
            }
        })
        .sum()
}

/// Caps on what [`unpack`] writes. An archive is refused, with a message
/// naming the cap, as soon as it would pass one: nothing after that entry is
/// extracted (and the caller removes its temporary directory).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most entries.
    pub max_entries: u64,
    /// Most bytes of file contents in all.
    pub max_total_bytes: u64,
    /// Most bytes of one file.
    pub max_file_bytes: u64,
    /// Most bytes written per byte of the compressed archive read, once
    /// more than [`Limits::ratio_after`] bytes are written: a trace's event
    /// stream is compressed already and its executables compress a few
    /// times, so a far higher ratio is an archive made to fill the disk
    /// (gigabytes of zeros in a megabyte).
    pub max_ratio: u64,
    /// Bytes written before [`Limits::max_ratio`] applies.
    pub ratio_after: u64,
    /// Bytes of the destination's file system left free, at least: an
    /// entry that would leave less is refused before it is written.
    pub keep_free: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 100_000,
            max_total_bytes: 16 << 30,
            max_file_bytes: 8 << 30,
            max_ratio: 200,
            ratio_after: 64 << 20,
            keep_free: 64 << 20,
        }
    }
}

/// Counts the bytes read through it (the compressed archive's).
struct Counted<R> {
    inner: R,
    count: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Unpacks `archive` into `dest`, which must be an existing empty directory
/// (make it private: the caller's temporary directory, mode 0700), and
/// returns the trace directory inside it.
pub fn unpack(archive: &Path, dest: &Path, limits: Limits) -> Result<PathBuf, Error> {
    let file = super::open_regular(archive, "a trace archive").map_err(io_err(archive))?;
    let count = std::rc::Rc::new(std::cell::Cell::new(0));
    let counted = Counted {
        inner: file,
        count: std::rc::Rc::clone(&count),
    };
    let dec = zstd::stream::read::Decoder::new(BufReader::new(counted)).map_err(io_err(archive))?;
    let name = archive.display().to_string();
    unpack_tar(dec, &name, dest, limits, Some(&count))?;
    let root = dest.join(ARCHIVE_ROOT);
    if !root.join(super::HEADER_FILE).is_file() {
        return Err(Error::Corrupt {
            archive: name,
            offset: 0,
            reason: format!(
                "no {ARCHIVE_ROOT}/{} inside: not a cargo-rrtest trace archive",
                super::HEADER_FILE
            ),
        });
    }
    Ok(root)
}

/// Bytes free for us on the file system of `dir`.
fn free_bytes(dir: &Path) -> io::Result<u64> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(io::Error::from)?;
    Ok((st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64))
}

/// What a PAX or GNU extension header says about the next entry.
#[derive(Debug, Default)]
struct Extension {
    /// Its name (PAX `path`, GNU `L`).
    name: Option<String>,
    /// Its size (PAX `size`).
    size: Option<u64>,
}

/// The most bytes of a PAX extended header or a GNU long name we read.
const MAX_EXTENSION: u64 = 64 * 1024;

/// Parses PAX extended header records (`LEN key=value\n`): keeps `path`
/// and `size`, ignores the rest (times, owners, charsets: nothing we use).
fn parse_pax(data: &[u8], ext: &mut Extension) -> Result<(), String> {
    let mut rest = data;
    while !rest.is_empty() {
        let space = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or("a PAX record without its length")?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or("a PAX record with an unreadable length")?;
        if len <= space + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err("a PAX record whose length does not match it".into());
        }
        let record = &rest[space + 1..len - 1];
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or("a PAX record without `=`")?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        match key {
            b"path" => {
                let v = std::str::from_utf8(value).map_err(|_| "a PAX path that is not UTF-8")?;
                ext.name = Some(v.to_owned());
            }
            b"size" => {
                let v = std::str::from_utf8(value)
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .ok_or("an unreadable PAX size")?;
                ext.size = Some(v);
            }
            _ => {}
        }
        rest = &rest[len..];
    }
    Ok(())
}

/// Reads a ustar stream, extracting into `dest`. `compressed` counts the
/// compressed bytes read so far, for [`Limits::max_ratio`].
fn unpack_tar(
    mut input: impl Read,
    archive: &str,
    dest: &Path,
    limits: Limits,
    compressed: Option<&std::cell::Cell<u64>>,
) -> Result<(), Error> {
    let corrupt = |offset: u64, reason: String| Error::Corrupt {
        archive: archive.to_string(),
        offset,
        reason,
    };
    let mut offset = 0u64;
    let mut entries = 0u64;
    let mut total = 0u64;
    let mut block = [0u8; BLOCK];
    let mut ext = Extension::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match read_block(&mut input, &mut block) {
            Ok(true) => {}
            Ok(false) => {
                return Err(corrupt(
                    offset,
                    "truncated: the archive ends without its end-of-archive blocks".into(),
                ))
            }
            Err(e) => return Err(corrupt(offset, format!("reading: {e}"))),
        }
        if block.iter().all(|&b| b == 0) {
            if ext.name.is_some() || ext.size.is_some() {
                return Err(corrupt(
                    offset,
                    "the archive ends after an extension header, without its entry".into(),
                ));
            }
            return Ok(());
        }
        let at = offset;
        offset += BLOCK as u64;
        let stored = parse_octal(&block[148..156])
            .ok_or_else(|| corrupt(at, "unreadable header checksum".into()))?;
        if stored != checksum(&block) {
            return Err(corrupt(at, "header checksum mismatch".into()));
        }
        if &block[257..262] != b"ustar" {
            return Err(corrupt(
                at,
                "not a ustar header (only POSIX ustar archives, with PAX or GNU long names, are read)".into(),
            ));
        }
        let kind = block[156];
        let name = match (kind, ext.name.take()) {
            (b'x' | b'g' | b'L' | b'K', _) => entry_name(&block),
            (_, Some(long)) => long,
            (_, None) => entry_name(&block),
        };
        let refuse = |reason: &str| Error::Unsafe {
            archive: archive.to_string(),
            entry: name.clone(),
            offset: at,
            reason: reason.to_string(),
        };
        let header_size = if block[124] & 0x80 != 0 {
            return Err(refuse(
                "its size is in GNU base-256 form (a file of 8 GiB or more), larger than a trace's files may be",
            ));
        } else {
            parse_octal(&block[124..136])
                .ok_or_else(|| corrupt(at, "unreadable entry size".into()))?
        };
        let size = match kind {
            b'x' | b'g' | b'L' | b'K' => header_size,
            _ => ext.size.take().unwrap_or(header_size),
        };
        entries += 1;
        if entries > limits.max_entries {
            return Err(refuse(&format!("more than {} entries", limits.max_entries)));
        }
        // Extension headers: their data describes the next entry.
        if matches!(kind, b'x' | b'g' | b'L' | b'K') {
            let what = match kind {
                b'x' => "PAX extended header",
                b'g' => "PAX global header",
                b'L' => "GNU long name",
                _ => "GNU long link name",
            };
            if kind == b'K' {
                return Err(refuse(&format!("a {what}: links are not accepted")));
            }
            if size > MAX_EXTENSION {
                return Err(refuse(&format!(
                    "a {what} of {size} bytes, more than the {MAX_EXTENSION} read"
                )));
            }
            let padded = size.div_ceil(BLOCK as u64) * BLOCK as u64;
            let mut data = vec![0u8; padded as usize];
            input
                .read_exact(&mut data)
                .map_err(|e| corrupt(offset, format!("reading a {what}: {e}")))?;
            data.truncate(size as usize);
            offset += padded;
            match kind {
                b'L' => {
                    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
                    let long = std::str::from_utf8(&data[..end])
                        .map_err(|_| refuse(&format!("a {what} that is not UTF-8")))?;
                    ext.name = Some(long.to_owned());
                }
                b'x' => parse_pax(&data, &mut ext)
                    .map_err(|why| corrupt(at, format!("in a {what}: {why}")))?,
                // Global: applies to every entry after it; `path` and
                // `size` make no sense there, and the rest is unused.
                _ => {
                    let mut global = Extension::default();
                    parse_pax(&data, &mut global)
                        .map_err(|why| corrupt(at, format!("in a {what}: {why}")))?;
                    if global.name.is_some() || global.size.is_some() {
                        return Err(refuse(&format!(
                            "a {what} that sets a path or size for every entry"
                        )));
                    }
                }
            }
            continue;
        }
        let rel = safe_relative(&name).map_err(|why| refuse(&why))?;
        let target = dest.join(&rel);
        match kind {
            b'5' => {
                if size != 0 {
                    return Err(corrupt(at, "a directory with contents".into()));
                }
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&target)
                    .map_err(io_err(&target))?;
            }
            b'0' | 0 => {
                if size > limits.max_file_bytes {
                    return Err(refuse(&format!(
                        "a file of {} ({size} bytes), more than the {} one file of a trace may have",
                        super::human_bytes(size),
                        super::human_bytes(limits.max_file_bytes)
                    )));
                }
                total = total.saturating_add(size);
                if total > limits.max_total_bytes {
                    return Err(refuse(&format!(
                        "the archive holds more than {} bytes ({}) of files",
                        limits.max_total_bytes,
                        super::human_bytes(limits.max_total_bytes)
                    )));
                }
                let free = free_bytes(dest).map_err(io_err(dest))?;
                if size.saturating_add(limits.keep_free) > free {
                    // Not the archive's fault: an I/O error, not corruption.
                    return Err(Error::Io {
                        path: dest.display().to_string(),
                        source: io::Error::new(
                            io::ErrorKind::StorageFull,
                            format!(
                                "not enough free space to unpack {archive}: its entry `{name}` needs {}, {} is free (and {} is kept free); make room, or set TMPDIR to a larger file system",
                                super::human_bytes(size),
                                super::human_bytes(free),
                                super::human_bytes(limits.keep_free)
                            ),
                        ),
                    });
                }
                if let Some(parent) = target.parent() {
                    DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(parent)
                        .map_err(io_err(parent))?;
                }
                let exec = parse_octal(&block[100..108]).unwrap_or(0) & 0o111 != 0;
                let mut out = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(if exec { 0o700 } else { 0o600 })
                    .open(&target)
                    .map_err(|e| {
                        if e.kind() == io::ErrorKind::AlreadyExists {
                            refuse("a second entry with the same path")
                        } else {
                            io_err(&target)(e)
                        }
                    })?;
                // Read and write apart: a failed read is a damaged archive,
                // a failed write (a full disk) is not.
                let mut left = size;
                while left > 0 {
                    let want = left.min(buf.len() as u64) as usize;
                    let got = match input.read(&mut buf[..want]) {
                        Ok(0) => {
                            let copied = size - left;
                            return Err(corrupt(
                                offset,
                                format!("truncated inside `{name}` ({copied} of {size} bytes)"),
                            ));
                        }
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            return Err(corrupt(offset, format!("reading contents: {e}")));
                        }
                    };
                    out.write_all(&buf[..got]).map_err(|e| Error::Io {
                        path: target.display().to_string(),
                        source: io::Error::new(
                            e.kind(),
                            format!("writing the unpacked trace failed: {e}"),
                        ),
                    })?;
                    left -= got as u64;
                    offset += got as u64;
                    // Bytes of files written so far, this one's included.
                    let written = total - left;
                    if let Some(read) = compressed.map(std::cell::Cell::get) {
                        if written > limits.ratio_after
                            && written > limits.max_ratio.saturating_mul(read)
                        {
                            return Err(refuse(&format!(
                                "the archive expands more than {} times: {} of files from {} of it; refusing what looks like a decompression bomb",
                                limits.max_ratio,
                                super::human_bytes(written),
                                super::human_bytes(read)
                            )));
                        }
                    }
                }
                let pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
                let mut skip = [0u8; BLOCK];
                input
                    .read_exact(&mut skip[..pad as usize])
                    .map_err(|e| corrupt(offset, format!("reading padding: {e}")))?;
                offset += pad;
            }
            b'1' | b'2' => return Err(refuse("links are not accepted")),
            b'3' | b'4' | b'6' => return Err(refuse("devices and FIFOs are not accepted")),
            other => {
                return Err(refuse(&format!(
                    "entry type `{}` is not accepted (only files and directories)",
                    other.escape_ascii()
                )))
            }
        }
    }
}

/// Reads one block; `Ok(false)` at a clean end of input.
fn read_block(input: &mut impl Read, block: &mut [u8; BLOCK]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < BLOCK {
        match input.read(&mut block[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "a partial header block",
                ))
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// `prefix/name` from a header (each NUL-terminated or full width).
fn entry_name(h: &[u8; BLOCK]) -> String {
    let field = |b: &[u8]| {
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        String::from_utf8_lossy(&b[..end]).into_owned()
    };
    let name = field(&h[..100]);
    let prefix = field(&h[345..500]);
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    }
}

/// An octal field (spaces and NULs around the digits allowed).
fn parse_octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?;
    let digits = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(digits, 8).ok()
}

/// The entry's path as a relative path of normal components, or why not.
fn safe_relative(name: &str) -> Result<PathBuf, String> {
    if name.is_empty() {
        return Err("an empty name".into());
    }
    if name.contains('\\') {
        return Err("a backslash in the name".into());
    }
    let path = Path::new(name.trim_end_matches('/'));
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::Prefix(_) => {
                return Err("an absolute path".into());
            }
            Component::ParentDir => return Err("a `..` component".into()),
            Component::CurDir => return Err("a `.` component".into()),
        }
    }
    if out.as_os_str().is_empty() {
        return Err("an empty name".into());
    }
    // Path::components drops interior `.` and repeated slashes silently.
    if name
        .trim_end_matches('/')
        .split('/')
        .any(|p| p.is_empty() || p == ".")
    {
        return Err("an empty or `.` component".into());
    }
    if !out.starts_with(ARCHIVE_ROOT) {
        return Err(format!("outside the archive's `{ARCHIVE_ROOT}/` directory"));
    }
    Ok(out)
}

/// A fresh private (0700) temporary directory for unpacking, removed on drop.
#[derive(Debug)]
pub struct PrivateTempDir {
    path: PathBuf,
}

impl PrivateTempDir {
    /// Creates `$TMPDIR/cargo-rrtest-<what>-<pid>-<n>`, failing if it exists.
    pub fn new(what: &str) -> Result<Self, Error> {
        let base = std::env::temp_dir();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        for n in 0..100u32 {
            let path = base.join(format!(
                "cargo-rrtest-{what}-{}-{nanos:x}-{n}",
                std::process::id()
            ));
            match DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(PrivateTempDir { path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err(&path)(e)),
            }
        }
        Err(Error::Io {
            path: base.display().to_string(),
            source: io::Error::new(io::ErrorKind::AlreadyExists, "no free temporary name"),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PrivateTempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> tempfile::TempDir {
        tempfile::tempdir().expect("tempdir")
    }

    fn tar_of(entries: &[([u8; BLOCK], &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (h, data) in entries {
            out.extend_from_slice(h);
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
        }
        out.extend_from_slice(&[0u8; 2 * BLOCK]);
        out
    }

    fn raw(name: &str, kind: u8, size: u64) -> [u8; BLOCK] {
        header(name, 0o600, size, kind).expect("header")
    }

    #[test]
    fn pack_then_unpack_round_trips() {
        let src = scratch();
        let trace = src.path().join("t");
        std::fs::create_dir_all(trace.join("files")).unwrap();
        std::fs::write(trace.join("header.json"), b"{}").unwrap();
        let big: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        std::fs::write(trace.join("events.zst"), &big).unwrap();
        let exe = trace.join("files").join("0123456789abcdef0123456789abcdef");
        std::fs::write(&exe, b"\x7fELF").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(trace.join("files").join("empty"), b"").unwrap();
        let archive = src.path().join("t.tar.zst");
        let stats = pack(&trace, &archive).expect("pack");
        assert_eq!(stats.entries, 6);
        assert_eq!(stats.content_bytes, 100_000 + 2 + 4);
        let mode = std::fs::metadata(&archive).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Same trace, same bytes.
        let again = src.path().join("t2.tar.zst");
        pack(&trace, &again).unwrap();
        assert_eq!(
            std::fs::read(&archive).unwrap(),
            std::fs::read(&again).unwrap()
        );

        let dest = scratch();
        let root = unpack(&archive, dest.path(), Limits::default()).expect("unpack");
        assert_eq!(root, dest.path().join(ARCHIVE_ROOT));
        assert_eq!(std::fs::read(root.join("events.zst")).unwrap(), big);
        let copy = root.join("files").join("0123456789abcdef0123456789abcdef");
        assert_eq!(std::fs::read(&copy).unwrap(), b"\x7fELF");
        assert_eq!(
            std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(
            std::fs::metadata(root.join("header.json"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        assert!(root.join("files").join("empty").is_file());
    }

    #[test]
    fn long_names_use_the_prefix() {
        let name = format!("{ARCHIVE_ROOT}/{}/{}", "d".repeat(80), "f".repeat(90));
        let tar = tar_of(&[(raw(&name, b'0', 3), b"abc")]);
        let dest = scratch();
        unpack_tar(&tar[..], "x", dest.path(), Limits::default(), None).expect("unpack");
        assert_eq!(std::fs::read(dest.path().join(&name)).unwrap(), b"abc");
    }

    fn refused(tar: &[u8]) -> String {
        let dest = scratch();
        match unpack_tar(tar, "evil.tar", dest.path(), Limits::default(), None) {
            Ok(()) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn refuses_traversal_absolute_links_and_devices() {
        let root = ARCHIVE_ROOT;
        for (name, kind, why) in [
            (format!("{root}/../../etc/x"), b'0', "`..`"),
            ("/etc/passwd".to_string(), b'0', "absolute"),
            (format!("{root}/./x"), b'0', "`.`"),
            (format!("{root}//x"), b'0', "empty"),
            ("elsewhere/x".to_string(), b'0', "outside"),
            (format!("{root}/link"), b'2', "links"),
            (format!("{root}/hard"), b'1', "links"),
            (format!("{root}/dev"), b'3', "devices"),
            (format!("{root}/fifo"), b'6', "FIFOs"),
            (format!("{root}/sparse"), b'S', "entry type"),
        ] {
            let msg = refused(&tar_of(&[(raw(&name, kind, 0), b"")]));
            assert!(msg.contains(why), "{name}: {msg}");
            assert!(msg.contains("offset 0"), "{msg}");
        }
    }

    #[test]
    fn refuses_duplicates_and_caps_sizes() {
        let name = format!("{ARCHIVE_ROOT}/a");
        let dup = tar_of(&[(raw(&name, b'0', 1), b"x"), (raw(&name, b'0', 1), b"y")]);
        assert!(refused(&dup).contains("same path"));
        let dest = scratch();
        let limits = Limits {
            max_entries: 10,
            max_total_bytes: 4,
            ..Limits::default()
        };
        let big = tar_of(&[(raw(&name, b'0', 5), b"12345")]);
        let err = unpack_tar(&big[..], "big", dest.path(), limits, None).unwrap_err();
        assert!(err.to_string().contains("more than 4 bytes"), "{err}");
    }

    #[test]
    fn reports_corruption_with_offsets() {
        let name = format!("{ARCHIVE_ROOT}/a");
        let mut tar = tar_of(&[(raw(&name, b'0', 600), &[7u8; 600])]);
        tar[10] ^= 1; // break the first header's checksum
        let msg = refused(&tar);
        assert!(
            msg.contains("checksum") && msg.contains("offset 0"),
            "{msg}"
        );
        let good = tar_of(&[(raw(&name, b'0', 600), &[7u8; 600])]);
        let msg = refused(&good[..BLOCK + 100]);
        assert!(msg.contains("truncated"), "{msg}");
        let msg = refused(&good[..BLOCK * 3]);
        assert!(msg.contains("end-of-archive"), "{msg}");
    }

    /// A PAX record `LEN key=value\n` (LEN counts itself).
    fn pax_record(key: &str, value: &str) -> String {
        let body = format!(" {key}={value}\n");
        let mut len = body.len() + 1;
        while format!("{len}{body}").len() != len {
            len += 1;
        }
        format!("{len}{body}")
    }

    /// Regression: PAX and GNU long-name entries were refused as an
    /// unknown entry type; a name longer than ustar holds now extracts.
    #[test]
    fn pax_and_gnu_long_names_are_read() {
        // Over ustar's 100 + 155 bytes, and no `/` to split it at.
        let long = format!("{ARCHIVE_ROOT}/files/{}", "n".repeat(250));
        let pax = pax_record("path", &long) + &pax_record("mtime", "1700000000.5");
        let tar = tar_of(&[
            (
                raw("././@PaxHeader", b'x', pax.len() as u64),
                pax.as_bytes(),
            ),
            (raw(&format!("{ARCHIVE_ROOT}/short"), b'0', 3), b"pax"),
        ]);
        let dest = scratch();
        unpack_tar(&tar[..], "pax", dest.path(), Limits::default(), None).expect("pax");
        assert_eq!(std::fs::read(dest.path().join(&long)).unwrap(), b"pax");
        assert!(!dest.path().join(ARCHIVE_ROOT).join("short").exists());

        let mut gnu_name = long.clone().into_bytes();
        gnu_name.push(0);
        let tar = tar_of(&[
            (raw("././@LongLink", b'L', gnu_name.len() as u64), &gnu_name),
            (raw(&format!("{ARCHIVE_ROOT}/short"), b'0', 3), b"gnu"),
        ]);
        let dest = scratch();
        unpack_tar(&tar[..], "gnu", dest.path(), Limits::default(), None).expect("gnu");
        assert_eq!(std::fs::read(dest.path().join(&long)).unwrap(), b"gnu");

        // A PAX size overrides the header's.
        let pax = pax_record("size", "5");
        let tar = tar_of(&[
            (raw("pax", b'x', pax.len() as u64), pax.as_bytes()),
            (raw(&format!("{ARCHIVE_ROOT}/sized"), b'0', 0), b"12345"),
        ]);
        let dest = scratch();
        unpack_tar(&tar[..], "size", dest.path(), Limits::default(), None).expect("size");
        let got = std::fs::read(dest.path().join(ARCHIVE_ROOT).join("sized")).unwrap();
        assert_eq!(got, b"12345");

        // What stays refused says why, plainly; a long name is checked as
        // any other.
        let evil = pax_record("path", "../../etc/passwd");
        let tar = tar_of(&[
            (raw("pax", b'x', evil.len() as u64), evil.as_bytes()),
            (raw(&format!("{ARCHIVE_ROOT}/x"), b'0', 0), b""),
        ]);
        assert!(refused(&tar).contains("`..`"));
        let global = pax_record("path", "x");
        let tar = tar_of(&[(raw("g", b'g', global.len() as u64), global.as_bytes())]);
        assert!(refused(&tar).contains("for every entry"));
        let tar = tar_of(&[(raw("k", b'K', 4), b"abc\0")]);
        assert!(refused(&tar).contains("links are not accepted"));
        let bad = "9 path=x\n"; // its length says 9, it is 9: fine; now break it
        let broken = bad.replace('9', "7");
        let tar = tar_of(&[(raw("pax", b'x', broken.len() as u64), broken.as_bytes())]);
        assert!(refused(&tar).contains("PAX record"));
    }

    #[test]
    fn a_file_over_the_per_file_cap_is_refused() {
        let name = format!("{ARCHIVE_ROOT}/big");
        let tar = tar_of(&[(raw(&name, b'0', 10), b"0123456789")]);
        let dest = scratch();
        let limits = Limits {
            max_file_bytes: 9,
            ..Limits::default()
        };
        let err = unpack_tar(&tar[..], "big", dest.path(), limits, None).unwrap_err();
        assert!(
            err.to_string().contains("more than the 9 bytes one file"),
            "{err}"
        );
        assert!(!dest.path().join(&name).exists(), "written anyway");
    }

    #[test]
    fn a_file_that_would_fill_the_disk_is_refused_before_writing() {
        let name = format!("{ARCHIVE_ROOT}/f");
        let tar = tar_of(&[(raw(&name, b'0', 3), b"abc")]);
        let dest = scratch();
        let limits = Limits {
            keep_free: u64::MAX / 4,
            ..Limits::default()
        };
        let err = unpack_tar(&tar[..], "full", dest.path(), limits, None).unwrap_err();
        assert!(!dest.path().join(&name).exists(), "written anyway");
        // Regression: a full disk was reported as a corrupt trace.
        let err = super::super::Error::from(err);
        let msg = err.to_string();
        assert!(msg.contains("not enough free space"), "{msg}");
        assert!(!msg.contains("corrupt"), "{msg}");
        assert!(
            matches!(&err, super::super::Error::Io { source, .. } if source.kind() == io::ErrorKind::StorageFull),
            "{err:?}"
        );
    }

    /// Writes a `.tar.zst` holding one file of `size` zeros, streamed.
    fn zero_bomb(path: &Path, size: u64) {
        let file = File::create(path).unwrap();
        let mut enc = zstd::stream::write::Encoder::new(file, 3).unwrap();
        let name = format!("{ARCHIVE_ROOT}/events.zst");
        enc.write_all(&header(&name, 0o600, size, b'0').unwrap())
            .unwrap();
        io::copy(&mut io::repeat(0).take(size), &mut enc).unwrap();
        let pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        enc.write_all(&vec![0u8; pad as usize + 2 * BLOCK]).unwrap();
        enc.finish().unwrap();
    }

    /// Regression: a megabyte-sized archive holding gigabytes of zeros was
    /// extracted in full. It stops soon after it passes the ratio.
    #[test]
    fn a_decompression_bomb_is_refused() {
        let src = scratch();
        let archive = src.path().join("bomb.tar.zst");
        let size = 100 << 20;
        zero_bomb(&archive, size);
        assert!(std::fs::metadata(&archive).unwrap().len() < size / 200);
        let dest = scratch();
        let err = unpack(&archive, dest.path(), Limits::default()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("decompression bomb"), "{msg}");
        let written = std::fs::metadata(dest.path().join(ARCHIVE_ROOT).join("events.zst"))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(written < size, "{written} bytes written");
        // With the ratio check off, the same archive extracts: the ratio
        // is what stopped it.
        let dest = scratch();
        let lax = Limits {
            max_ratio: u64::MAX,
            ..Limits::default()
        };
        unpack(&archive, dest.path(), lax).unwrap_err(); // no header.json
        let written = std::fs::metadata(dest.path().join(ARCHIVE_ROOT).join("events.zst"))
            .unwrap()
            .len();
        assert_eq!(written, size);
    }

    /// Regression: a FIFO given as the archive blocked `replay` forever.
    #[test]
    fn a_fifo_archive_is_refused_without_blocking() {
        let src = scratch();
        let fifo = src.path().join("t.tar.zst");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let dest = scratch();
        let err = unpack(&fifo, dest.path(), Limits::default()).unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");
    }
}
