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
//! every header checksum, and caps the number of entries and the bytes
//! written ([`Limits`]). Every error names the archive offset.
//!
//! The tar writer and reader are ours (ustar is simple, and a reader we wrote
//! for exactly these two entry types has no surprising features to disable).

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

/// Caps on what [`unpack`] writes.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most entries.
    pub max_entries: u64,
    /// Most bytes of file contents in all.
    pub max_total_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 100_000,
            max_total_bytes: 16 << 30,
        }
    }
}

/// Unpacks `archive` into `dest`, which must be an existing empty directory
/// (make it private: the caller's temporary directory, mode 0700), and
/// returns the trace directory inside it.
pub fn unpack(archive: &Path, dest: &Path, limits: Limits) -> Result<PathBuf, Error> {
    let file = File::open(archive).map_err(io_err(archive))?;
    let dec = zstd::stream::read::Decoder::new(BufReader::new(file)).map_err(io_err(archive))?;
    let name = archive.display().to_string();
    unpack_tar(dec, &name, dest, limits)?;
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

/// Reads a ustar stream, extracting into `dest`.
fn unpack_tar(
    mut input: impl Read,
    archive: &str,
    dest: &Path,
    limits: Limits,
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
            return Err(corrupt(at, "not a ustar header".into()));
        }
        let name = entry_name(&block);
        let refuse = |reason: &str| Error::Unsafe {
            archive: archive.to_string(),
            entry: name.clone(),
            offset: at,
            reason: reason.to_string(),
        };
        let size = parse_octal(&block[124..136])
            .ok_or_else(|| corrupt(at, "unreadable entry size".into()))?;
        let kind = block[156];
        entries += 1;
        if entries > limits.max_entries {
            return Err(refuse(&format!("more than {} entries", limits.max_entries)));
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
                total = total.saturating_add(size);
                if total > limits.max_total_bytes {
                    return Err(refuse(&format!(
                        "the archive holds more than {} bytes",
                        limits.max_total_bytes
                    )));
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
                let copied = io::copy(&mut (&mut input).take(size), &mut out)
                    .map_err(|e| corrupt(offset, format!("reading contents: {e}")))?;
                if copied != size {
                    return Err(corrupt(
                        offset + copied,
                        format!("truncated inside `{name}` ({copied} of {size} bytes)"),
                    ));
                }
                offset += size;
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
        unpack_tar(&tar[..], "x", dest.path(), Limits::default()).expect("unpack");
        assert_eq!(std::fs::read(dest.path().join(&name)).unwrap(), b"abc");
    }

    fn refused(tar: &[u8]) -> String {
        let dest = scratch();
        match unpack_tar(tar, "evil.tar", dest.path(), Limits::default()) {
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
            (format!("{root}/pax"), b'x', "entry type"),
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
        };
        let big = tar_of(&[(raw(&name, b'0', 5), b"12345")]);
        let err = unpack_tar(&big[..], "big", dest.path(), limits).unwrap_err();
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
}
