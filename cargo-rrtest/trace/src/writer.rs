//! [`TraceWriter`]: writes a trace directory while recording.
//!
//! `create` makes the directory (0700) with `header.json` (outcome `None`),
//! `files/` and `events.zst`; `push` (and `push_buffered`, for a flush's
//! records read in place) appends events to the stream, which another
//! thread checksums and compresses (`pipeline.rs`); `finish` writes the end
//! record, ends the
//! zstd frame, and replaces `header.json` atomically with the final one. A
//! writer dropped without `finish` (an error path) flushes what it has, so
//! the trace reads as its complete events followed by a truncation error;
//! its header keeps outcome `None`.
//!
//! Most traces are deleted right after they are written (their test
//! passed), so the writer fsyncs nothing and leaves `files/` as hard links
//! to the originals (see `files.rs`). Whoever keeps a trace calls [`keep`],
//! which makes it self-contained (private, checked copies of the files) and
//! durable.
//!
//! A *deferred* writer ([`TraceWriter::create_deferred`], for a recording
//! that is dropped if its program passes) goes further: it writes nothing
//! until it must. The compressed stream grows in memory and mapped files
//! are only noted (kept open); [`TraceWriter::discard`] then drops it all,
//! with no directory ever made. It materializes (the directory, the
//! header, the stream so far, the files noted) at [`TraceWriter::finish`],
//! when a file must be copied now, or when the stream passes
//! [`MEMORY_LIMIT`].

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::event::{Event, FileId, Tid};
use super::files::{self, create_private_dir, FileStore, IdCache, KeepError, Kept, Stored};
use super::header::Header;
use super::pipeline::{Pipeline, Spill};
use super::stream::PushError;
use super::{Error, EVENTS_FILE, FILES_DIR, HEADER_FILE};

/// How much compressed stream a deferred writer holds in memory before it
/// writes the trace directory.
pub const MEMORY_LIMIT: usize = 8 << 20;

/// Writes one trace directory.
pub struct TraceWriter {
    dir: PathBuf,
    events_path: PathBuf,
    header: Header,
    /// `None` once finished (or after a write error).
    stream: Option<Pipeline>,
    files: FileStore,
    /// Nothing is on disk yet (see the module doc).
    deferred: bool,
    /// [`MEMORY_LIMIT`], except in tests.
    memory_limit: usize,
}

impl std::fmt::Debug for TraceWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceWriter")
            .field("dir", &self.dir)
            .field("events", &self.events())
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

fn io_err(path: &Path, source: io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Rewrites the header of the finished trace in `dir` (atomically), e.g. to
/// add its verification.
pub fn rewrite_header(dir: &Path, header: &Header) -> Result<(), Error> {
    let bytes = serde_json::to_vec_pretty(header).map_err(|e| Error::Io {
        path: dir.join(super::HEADER_FILE).display().to_string(),
        source: std::io::Error::other(e),
    })?;
    write_atomic(&dir.join(super::HEADER_FILE), &bytes)
}

/// Makes the trace in `dir` fit to keep: self-contained (every hard link in
/// `files/` replaced by a private copy, every copy checked against its
/// content id) and durable (files, `events.zst`, `header.json`, `files/`,
/// the trace directory and its parent fsynced, the fsyncs concurrently: see
/// [`files::keep`]). Cheap for what it is: it costs a copy of the mapped
/// files, and only kept traces pay it.
///
/// A `files/` entry whose bytes are not the ones recorded (the original was
/// rewritten in place after the recording) is removed and reported as
/// [`Error::Corrupt`]: the trace then cannot replay, rather than replay
/// wrong bytes.
pub fn keep(dir: &Path) -> Result<Kept, Error> {
    let (events, header) = (dir.join(EVENTS_FILE), dir.join(HEADER_FILE));
    let optional = |path| files::AlsoSync {
        path,
        may_be_missing: true,
    };
    let required = |path| files::AlsoSync {
        path,
        may_be_missing: false,
    };
    let mut also = vec![optional(&events), optional(&header), required(dir)];
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        // The trace's own directory entry.
        also.push(required(parent));
    }
    files::keep(&dir.join(FILES_DIR), &also).map_err(|e| match e {
        KeepError::Io((p, e)) => io_err(&p, e),
        KeepError::Mismatch { path, found } => Error::Corrupt {
            path: path.display().to_string(),
            what: "file copy",
            offset: 0,
            reason: format!(
                "its bytes have content id {}, not the recorded one: the original file was \
                 changed in place after the recording; the copy was removed",
                found.0
            ),
        },
    })
}

/// Writes `bytes` to `path` atomically: a temporary file (0600) beside it,
/// fsynced, renamed over `path`, and the directory fsynced.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    write_replacing(path, bytes, true)
}

/// Writes `bytes` to `path` atomically (a temporary file renamed over it),
/// fsyncing the file and the directory if `durable`: without, a reader sees
/// the old or the new content, never half of one, but a machine crash may
/// lose both.
fn write_replacing(path: &Path, bytes: &[u8], durable: bool) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        if durable {
            f.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        if durable {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err(path, e)
    })
}

fn header_json(header: &Header) -> Vec<u8> {
    // A `Header` is plain data: serializing it cannot fail.
    let mut v = serde_json::to_vec_pretty(header).unwrap_or_default();
    v.push(b'\n');
    v
}

impl TraceWriter {
    /// Creates `dir` (mode 0700; an error if it exists and is not empty),
    /// writes `header.json` (with `outcome: None` whatever `header` says)
    /// and opens `events.zst`. Missing parent directories are created, mode
    /// 0700.
    pub fn create(dir: &Path, header: Header) -> Result<TraceWriter, Error> {
        let mut writer = TraceWriter::create_deferred(dir, header)?;
        writer.materialize()?;
        Ok(writer)
    }

    /// A writer that writes nothing until it must (see the module doc): to
    /// [`TraceWriter::discard`] if the program passes. `dir` and missing
    /// parents are created when it materializes.
    pub fn create_deferred(dir: &Path, mut header: Header) -> Result<TraceWriter, Error> {
        header.stats.events = 0;
        let events_path = dir.join(EVENTS_FILE);
        let stream =
            Pipeline::new(Spill::Memory(Vec::new())).map_err(|e| io_err(&events_path, e))?;
        Ok(TraceWriter {
            dir: dir.to_owned(),
            events_path,
            header,
            stream: Some(stream),
            files: FileStore::deferred(dir.join(FILES_DIR)),
            deferred: true,
            memory_limit: MEMORY_LIMIT,
        })
    }

    /// Whether nothing is on disk yet.
    pub fn is_deferred(&self) -> bool {
        self.deferred
    }

    /// Uses `limit` instead of [`MEMORY_LIMIT`] (tests).
    #[cfg(test)]
    pub(crate) fn set_memory_limit(&mut self, limit: usize) {
        self.memory_limit = limit;
    }

    /// Writes a deferred trace's directory: `header.json` (outcome `None`),
    /// `files/` with the files noted, and `events.zst` with the stream so
    /// far; later events go to the file. Nothing to do otherwise.
    pub fn materialize(&mut self) -> Result<(), Error> {
        if !self.deferred {
            return Ok(());
        }
        let dir = &self.dir;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            // Missing parents owner-only too (a test's directory under
            // `rrtest/traces/`, made when its first trace is).
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| io_err(parent, e))?;
        }
        create_private_dir(dir).map_err(|e| io_err(dir, e))?;
        // On disk, until `finish`, the recording has no outcome.
        let outcome = self.header.outcome.take();
        let written = write_replacing(&dir.join(HEADER_FILE), &header_json(&self.header), false);
        self.header.outcome = outcome;
        written?;
        self.files.materialize().map_err(|(p, e)| io_err(&p, e))?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&self.events_path)
            .map_err(|e| io_err(&self.events_path, e))?;
        self.deferred = false;
        if let Some(stream) = self.stream.as_mut() {
            if let Err(e) = stream.spill_to(file) {
                self.stream = None;
                return Err(io_err(&self.events_path, e));
            }
        }
        Ok(())
    }

    /// Drops the trace: a deferred writer leaves nothing behind; one that
    /// materialized removes its directory.
    pub fn discard(mut self) -> Result<(), Error> {
        self.stream = None;
        if self.deferred {
            return Ok(());
        }
        match fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(&self.dir, e)),
            _ => Ok(()),
        }
    }

    fn stream(&mut self) -> Result<&mut Pipeline, Error> {
        match self.stream.as_mut() {
            Some(s) => Ok(s),
            None => Err(io_err(
                &self.events_path,
                io::Error::other("the event stream was closed by an earlier write error"),
            )),
        }
    }

    /// Appends `event` to the stream (buffered; no allocation per event once
    /// the buffer has grown to the largest event).
    ///
    /// An event the format cannot hold (a malformed [`FileId`], a field over
    /// the limits in docs/trace-format.md) is refused with an `InvalidInput`
    /// I/O error and nothing is written. After a write error the stream is
    /// closed: later pushes fail, and the trace reads as truncated there.
    pub fn push(&mut self, event: &Event) -> Result<(), Error> {
        let result = self.stream()?.push(event);
        self.pushed(result)
    }

    /// Appends an `Event::Buffered` of thread `tid` with `len` bytes of
    /// records that `fill` writes into the slice it is given, in place: the
    /// recorder reads a program's buffer there without copying it again.
    /// When `fill` answers false (it could not read them), nothing is
    /// pushed and the answer is false.
    pub fn push_buffered(
        &mut self,
        tid: Tid,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> bool,
    ) -> Result<bool, Error> {
        let result = self.stream()?.push_buffered(tid, len, fill);
        self.pushed(result)
    }

    /// What a push gave: spills a deferred trace past its memory limit;
    /// an encoding error refuses the event; a write error closes the
    /// stream.
    fn pushed<T>(&mut self, result: Result<T, PushError>) -> Result<T, Error> {
        match result {
            Ok(v) => {
                if self.deferred {
                    let held = self.stream()?.held();
                    if held > self.memory_limit {
                        self.materialize()?;
                    }
                }
                Ok(v)
            }
            Err(PushError::Encode(e)) => Err(io_err(
                &self.events_path,
                io::Error::new(io::ErrorKind::InvalidInput, e),
            )),
            Err(PushError::Io(e)) => {
                self.stream = None;
                Err(io_err(&self.events_path, e))
            }
        }
    }

    /// Makes every event pushed so far readable from `events.zst` even if
    /// this process dies next (ends the current zstd block). Costs some
    /// compression; call it at natural pauses, not per event.
    pub fn flush(&mut self) -> Result<(), Error> {
        let result = self.stream()?.flush();
        result.map_err(|e| {
            self.stream = None;
            io_err(&self.events_path, e)
        })
    }

    /// Events pushed so far.
    pub fn events(&self) -> u64 {
        self.stream.as_ref().map(|s| s.events()).unwrap_or(0)
    }

    /// Stores the file at `path` in `files/` and returns its id: a hard link
    /// when possible, else a copy; content-addressed, so the same content is
    /// stored once; a file whose identity (device, inode, size, mtime) was
    /// hashed before, by this process or (through the persistent
    /// id cache) another one, is not read again. [`keep`] turns the links
    /// into copies when the trace is kept.
    pub fn add_file(&mut self, path: &Path) -> Result<FileId, Error> {
        if let Some(id) = self.note_file(path, false)? {
            return Ok(id);
        }
        self.add_file_with(path).map(|(id, _)| id)
    }

    /// In a deferred writer, notes `path` (see `FileStore::note`); None when
    /// it must be stored now (the writer has then materialized).
    fn note_file(&mut self, path: &Path, unless_modified: bool) -> Result<Option<FileId>, Error> {
        if !self.deferred {
            return Ok(None);
        }
        match self.files.note(path, unless_modified) {
            Ok(id) => Ok(Some(id)),
            Err(files::NoteError::Io((p, e))) => Err(io_err(&p, e)),
            Err(files::NoteError::NeedsDir) => {
                self.materialize()?;
                Ok(None)
            }
        }
    }

    /// Stores a private copy of the file at `path` in `files/`, never a
    /// link: for a file the program may still write to (its later content
    /// must not show through the trace's copy).
    pub fn add_file_copy(&mut self, path: &Path) -> Result<FileId, Error> {
        // Its content now, not at the end: the program may change it.
        self.materialize()?;
        self.files
            .add_copy(path)
            .map(|(id, _)| id)
            .map_err(|(p, e)| io_err(&p, e))
    }

    /// Stores the file at `path` like [`TraceWriter::add_file`] if it was
    /// last modified before the recording started (the writer's creation),
    /// else a private copy like [`TraceWriter::add_file_copy`]: for a data
    /// file the program mapped from a read-only descriptor.
    pub fn add_file_unless_modified(&mut self, path: &Path) -> Result<FileId, Error> {
        if let Some(id) = self.note_file(path, true)? {
            return Ok(id);
        }
        self.files
            .add_unless_modified(path)
            .map(|(id, _)| id)
            .map_err(|(p, e)| io_err(&p, e))
    }

    /// [`TraceWriter::add_file`], also telling how the file was stored.
    pub fn add_file_with(&mut self, path: &Path) -> Result<(FileId, Stored), Error> {
        if let Some(id) = self.note_file(path, false)? {
            return Ok((id, Stored::Deferred));
        }
        self.files.add(path).map_err(|(p, e)| io_err(&p, e))
    }

    /// Uses `cache` (None: none) as the persistent id cache instead of the
    /// user's.
    pub fn set_id_cache(&mut self, cache: Option<IdCache>) {
        self.files.set_id_cache(cache);
    }

    /// The header, to fill in the outcome, `unreplayable` and stats before
    /// [`TraceWriter::finish`]. `stats.events` is set by the writer.
    pub fn header_mut(&mut self) -> &mut Header {
        &mut self.header
    }

    /// The trace directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes read so far to hash files for this trace (a measure of what
    /// `add_file` cost).
    pub fn files_hashed_bytes(&self) -> u64 {
        self.files.hashed_bytes
    }

    /// The path of a stored file.
    pub fn file_path(&self, id: &FileId) -> PathBuf {
        self.files.dir().join(&id.0)
    }

    /// Ends the stream (end record, zstd frame) and replaces `header.json`
    /// atomically with the final header. Nothing is fsynced: see [`keep`].
    pub fn finish(mut self) -> Result<(), Error> {
        self.materialize()?;
        let stream = self.stream.take().ok_or_else(|| {
            io_err(
                &self.events_path,
                io::Error::other("the event stream was already closed"),
            )
        })?;
        let events = stream.events();
        stream.finish().map_err(|e| io_err(&self.events_path, e))?;
        self.header.stats.events = events;
        write_replacing(
            &self.dir.join(HEADER_FILE),
            &header_json(&self.header),
            false,
        )
    }
}

impl Drop for TraceWriter {
    fn drop(&mut self) {
        // Not finished (nor discarded): keep what was pushed readable (see
        // the module doc), on disk.
        if self.stream.is_some() {
            let _ = self.materialize();
        }
        if let Some(mut s) = self.stream.take() {
            let _ = s.flush();
        }
    }
}
