//! [`TraceReader`]: reads a trace directory back.
//!
//! `open` reads and checks `header.json` (its `format_version` first, so a
//! trace from another version gets [`Error::VersionMismatch`] rather than a
//! parse error) and the event stream's own magic and version; `next_event`
//! then streams the events, checking the framing as it goes and the
//! checksum and end record when it reaches them, and checking that every
//! `files/<id>` an event names is a regular file of the trace.
//! [`TraceReader::check_stream`] checks the whole stream (framing, checksum,
//! end record) without decoding it; [`TraceReader::read_ahead`], which
//! replay uses, does that before it hands out a single event, because
//! replay acts on events as they come and stops at the program's exit,
//! before the end record. Every problem is an [`Error`] naming the file,
//! the offset and what was wrong; nothing in a trace can make the reader
//! panic, loop, block (only regular files are opened:
//! [`super::open_regular`]), or allocate much more than the trace holds.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::event::{Event, FileId, SyscallEvent, SyscallExtra};
use super::header::Header;
use super::stream::{StreamError, StreamReader};
use super::{Error, EVENTS_FILE, FILES_DIR, FORMAT_VERSION, HEADER_FILE, OLDEST_FORMAT_VERSION};

/// `header.json` larger than this is not a header. A real one is a few
/// kilobytes, plus about 50 bytes per execution point a verification
/// counted (`verification.point_hits`), which the reader must not refuse:
/// this leaves room for a million of them.
pub const MAX_HEADER_LEN: u64 = 64 << 20;

type Source = BufReader<zstd::stream::read::Decoder<'static, BufReader<At>>>;

/// Reads a shared open file from an offset of its own (`pread`): the
/// stream check and the event reader read the same open file, so the file
/// checked is the file replayed, even if the trace's `events.zst` is
/// replaced in between.
#[derive(Debug)]
struct At {
    file: Arc<File>,
    pos: u64,
}

impl Read for At {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Reads one trace directory.
pub struct TraceReader {
    dir: PathBuf,
    events_path: PathBuf,
    header: Header,
    events_file: Arc<File>,
    stream: StreamReader<Source>,
    /// The `files/<id>` already found to be regular files.
    files_seen: HashSet<FileId>,
}

impl std::fmt::Debug for TraceReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceReader")
            .field("dir", &self.dir)
            .field("stream_offset", &self.stream.offset())
            .field("events_read", &self.stream.events())
            .finish_non_exhaustive()
    }
}

fn io_err(path: &Path, source: io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The version of this cargo-rrtest.
fn our_version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

/// Byte offset of a 1-based `line`/`column` in `text`.
fn offset_of(text: &[u8], line: usize, column: usize) -> u64 {
    let mut start = 0usize;
    for _ in 1..line {
        match text[start..].iter().position(|b| *b == b'\n') {
            Some(i) => start += i + 1,
            None => break,
        }
    }
    (start + column.saturating_sub(1)).min(text.len()) as u64
}

/// Reads and checks `dir/header.json`.
pub fn read_header(dir: &Path) -> Result<Header, Error> {
    let path = dir.join(HEADER_FILE);
    let display = path.display().to_string();
    let text =
        super::read_regular_bounded(&path, MAX_HEADER_LEN, "the trace header").map_err(|e| {
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) {
                io_err(dir, missing_header(dir, e.kind()))
            } else {
                io_err(&path, e)
            }
        })?;
    let corrupt = |offset: u64, reason: String| Error::Corrupt {
        path: display.clone(),
        what: "header",
        offset,
        reason,
    };
    // The version first, from a generic parse: a future header may not
    // deserialize as ours.
    let value: serde_json::Value = serde_json::from_slice(&text).map_err(|e| {
        corrupt(
            offset_of(&text, e.line(), e.column()),
            format!("not JSON: {e}"),
        )
    })?;
    let Some(obj) = value.as_object() else {
        return Err(corrupt(0, "not a JSON object".into()));
    };
    let version = obj
        .get("format_version")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| corrupt(0, "no numeric \"format_version\" field".into()))?;
    if !(u64::from(OLDEST_FORMAT_VERSION)..=u64::from(FORMAT_VERSION)).contains(&version) {
        let writer = obj
            .get("recorder_version")
            .and_then(|v| v.as_str())
            .unwrap_or("(unknown: the header does not say)")
            .to_owned();
        return Err(Error::VersionMismatch {
            path: dir.display().to_string(),
            found: u32::try_from(version).unwrap_or(u32::MAX),
            expected: FORMAT_VERSION,
            ours: our_version(),
            writer,
        });
    }
    let header = serde_json::from_value::<Header>(value)
        .map_err(|e| corrupt(0, format!("not a version {version} trace header: {e}")))?;
    if header.point_digest_kind().is_none() {
        return Err(Error::UnknownDigest {
            path: dir.display().to_string(),
            found: header.point_digest.clone().unwrap_or_default(),
            writer: header.recorder_version.clone(),
        });
    }
    // Names of `files/` entries: a path (`../../bin/sh`) would make replay
    // run a file from outside the trace.
    let loaders = header.loaders.iter().enumerate().flat_map(|(i, l)| {
        [
            ("loaders", i, "exe_file", &l.exe_file),
            ("loaders", i, "file", &l.file),
        ]
    });
    let interpreters = header.interpreters.iter().enumerate().flat_map(|(i, c)| {
        [
            ("interpreters", i, "script_file", &c.script_file),
            ("interpreters", i, "file", &c.file),
        ]
    });
    for (list, i, field, id) in loaders.chain(interpreters) {
        if super::codec::file_id_bytes(&FileId(id.clone())).is_none() {
            return Err(corrupt(
                0,
                format!("{list}[{i}].{field} {id:?} is not a file id (32 lowercase hex digits)"),
            ));
        }
    }
    Ok(header)
}

/// Why there is no header in `dir`: it does not exist, is not a
/// directory, or holds no header.
fn missing_header(dir: &Path, kind: io::ErrorKind) -> io::Error {
    let why = match std::fs::metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            "no such directory: the trace directory does not exist".to_owned()
        }
        Ok(m) if !m.is_dir() => {
            "not a directory: give the trace's directory (unpack an archive with `cargo rrtest replay ARCHIVE`)".to_owned()
        }
        _ => format!("no {HEADER_FILE} here: not a cargo-rrtest trace directory"),
    };
    io::Error::new(kind, why)
}

/// The event stream of `dir` read from the start of `file`: its header
/// checked.
fn stream_of(
    dir: &Path,
    events_path: &Path,
    header: &Header,
    file: &Arc<File>,
) -> Result<StreamReader<Source>, Error> {
    let at = At {
        file: Arc::clone(file),
        pos: 0,
    };
    let decoder = zstd::stream::read::Decoder::new(at).map_err(|e| Error::Corrupt {
        path: events_path.display().to_string(),
        what: "compressed event stream",
        offset: 0,
        reason: e.to_string(),
    })?;
    let source = BufReader::with_capacity(128 * 1024, decoder);
    StreamReader::new(source).map_err(|e| map_stream_error(dir, events_path, header, e))
}

impl TraceReader {
    /// Opens the trace in `dir`: reads and checks `header.json`, then the
    /// event stream's magic and version.
    pub fn open(dir: &Path) -> Result<TraceReader, Error> {
        let header = read_header(dir)?;
        let events_path = dir.join(EVENTS_FILE);
        let file = super::open_regular(&events_path, "the event stream")
            .map_err(|e| io_err(&events_path, e))?;
        let events_file = Arc::new(file);
        let stream = stream_of(dir, &events_path, &header, &events_file)?;
        Ok(TraceReader {
            dir: dir.to_owned(),
            events_path,
            header,
            events_file,
            stream,
            files_seen: HashSet::new(),
        })
    }

    /// Checks the whole event stream, from its start, without decoding its
    /// events: its framing, the checksum of every byte and the end record
    /// (so a stream edited anywhere, or cut anywhere, even at a zstd frame
    /// boundary, fails here). Reads the same open file as the events, on
    /// its own; returns the number of events. Costs a decompression of the
    /// stream (docs/trace-format.md has the numbers).
    pub fn check_stream(&self) -> Result<u64, Error> {
        let mut stream = stream_of(
            &self.dir,
            &self.events_path,
            &self.header,
            &self.events_file,
        )?;
        stream
            .check_to_end()
            .map_err(|e| map_stream_error(&self.dir, &self.events_path, &self.header, e))
    }

    /// Checks that each `files/<id>` that `event` names is a regular file
    /// (not missing, not a link, FIFO or device: replay maps it into the
    /// program, and opening a FIFO would block forever).
    fn check_files(&mut self, event: &Event, at: u64) -> Result<(), Error> {
        let id = match event {
            Event::Exec(e) => {
                // And what the header keeps for it, which replay runs: a
                // script's interpreters (a chain: the kernel follows at most
                // 4 that are scripts), and the loader of each.
                let mut programs = vec![e.exe_file.0.clone()];
                while programs.len() <= 5 {
                    let last = programs.last().expect("not empty");
                    match self
                        .header
                        .interpreters
                        .iter()
                        .find(|i| &i.script_file == last)
                    {
                        Some(i) => programs.push(i.file.clone()),
                        None => break,
                    }
                }
                let kept: Vec<FileId> = programs[1..]
                    .iter()
                    .cloned()
                    .chain(
                        self.header
                            .loaders
                            .iter()
                            .filter(|l| programs.contains(&l.exe_file))
                            .map(|l| l.file.clone()),
                    )
                    .map(FileId)
                    .collect();
                for file in &kept {
                    self.check_file(file, event, at)?;
                }
                &e.exe_file
            }
            Event::Syscall(SyscallEvent { result, .. }) | Event::SyscallExit { result, .. } => {
                match &result.extra {
                    SyscallExtra::MappedFile { file, .. } => file,
                    _ => return Ok(()),
                }
            }
            _ => return Ok(()),
        };
        self.check_file(id, event, at)
    }

    /// [`TraceReader::check_files`] for one `files/<id>`.
    fn check_file(&mut self, id: &FileId, event: &Event, at: u64) -> Result<(), Error> {
        if self.files_seen.contains(id) {
            return Ok(());
        }
        let path = self.file_path(id);
        let problem = match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_file() => None,
            Ok(m) => Some(format!(
                "{FILES_DIR}/{} is not a regular file (it is {})",
                id.0,
                kind_name(&m.file_type())
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Some(format!("{FILES_DIR}/{} is missing", id.0))
            }
            Err(e) => return Err(io_err(&path, e)),
        };
        if let Some(problem) = problem {
            return Err(Error::Corrupt {
                path: self.dir.display().to_string(),
                what: "event stream",
                offset: at,
                reason: format!(
                    "{problem}: the event there ({}) needs that copy of a file the program executed or mapped; the trace is incomplete: record it again",
                    event.kind()
                ),
            });
        }
        self.files_seen.insert(id.clone());
        Ok(())
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The trace directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the copy of file `id` is (`files/<id>`).
    pub fn file_path(&self, id: &FileId) -> PathBuf {
        self.dir.join(FILES_DIR).join(&id.0)
    }

    /// The next event, or `Ok(None)` after the last one of a complete
    /// stream. A damaged stream gives [`Error::Corrupt`] with the offset in
    /// the decompressed stream; a stream that was cut short (the recorder was
    /// killed) gives all its complete events, then `Corrupt` at the
    /// truncation point, and [`TraceReader::is_truncated`] says so. Once it
    /// has failed, the reader returns the same error again.
    pub fn next_event(&mut self) -> Result<Option<Event>, Error> {
        let at = self.stream.offset();
        let event = self
            .stream
            .next_event()
            .map_err(|e| map_stream_error(&self.dir, &self.events_path, &self.header, e))?;
        if let Some(event) = &event {
            self.check_files(event, at)?;
        }
        Ok(event)
    }

    /// Offset in the decompressed stream of the next record to read (after an
    /// error: of the record that failed).
    pub fn stream_offset(&self) -> u64 {
        self.stream.offset()
    }

    /// Events read so far.
    pub fn events_read(&self) -> u64 {
        self.stream.events()
    }

    /// Whether reading stopped because the stream was cut short rather than
    /// damaged: every event before it was complete.
    pub fn is_truncated(&self) -> bool {
        self.stream.error().is_some_and(StreamError::is_truncation)
    }
}

/// What [`ReadAhead`]'s thread hands over at once: events, in order, the
/// last of them the stream's end or error if it is there.
type Chunk = Vec<Result<Option<Event>, Error>>;

/// Events in a chunk, at most. Handing events over one by one cost a
/// wake-up of the other thread, across CPUs, for each (a quarter more time
/// replaying a trace of traced syscalls); one per chunk does not show.
const CHUNK_EVENTS: usize = 256;

/// Bytes of buffered records after which a chunk is handed over, however
/// few its events (a full syscall buffer's are a megabyte).
const CHUNK_RECORDS: usize = 1 << 20;

/// Chunks decoded before they are asked for, at most.
const READ_AHEAD: usize = 2;

impl TraceReader {
    /// This reader on a thread of its own, which decompresses, checks and
    /// decodes the events ahead of their use ([`ReadAhead`]). First checks
    /// the whole stream ([`TraceReader::check_stream`]): its user acts on
    /// each event as it comes and may stop before the end record (replay
    /// stops at the program's exit), so a changed or cut stream must fail
    /// before the first event is handed out, not after.
    pub fn read_ahead(mut self) -> Result<ReadAhead, Error> {
        self.check_stream()?;
        let (dir, events_path, header) = (
            self.dir.clone(),
            self.events_path.clone(),
            self.header.clone(),
        );
        let (tx, events) = std::sync::mpsc::sync_channel(READ_AHEAD);
        let thread = rrtest_sys::signals::spawn_without_signals("rrtest-read", move || {
            // Only a cost if it fails: the thread then shares the CPU.
            let _ = rrtest_sys::cpu::leave_bound_cpu();
            loop {
                let mut chunk: Chunk = Vec::with_capacity(CHUNK_EVENTS);
                let mut records = 0;
                let last = loop {
                    let event = self.next_event();
                    let last = !matches!(event, Ok(Some(_)));
                    if let Ok(Some(Event::Buffered { records: r, .. })) = &event {
                        records += r.len();
                    }
                    chunk.push(event);
                    if last || chunk.len() == CHUNK_EVENTS || records >= CHUNK_RECORDS {
                        break last;
                    }
                };
                if tx.send(chunk).is_err() || last {
                    break;
                }
            }
        })
        .map_err(|e| io_err(&events_path, e))?;
        Ok(ReadAhead {
            dir,
            events_path,
            header,
            chunks: events,
            chunk: Vec::new().into_iter(),
            thread: Some(thread),
            ended: None,
        })
    }
}

/// A [`TraceReader`] that reads ahead on a thread of its own: the events
/// are decompressed, checksummed and decoded there, in chunks, while the
/// replayer's thread (which shares one CPU with the program it replays)
/// replays the ones before them. The same events and errors, in the same
/// order.
pub struct ReadAhead {
    dir: PathBuf,
    events_path: PathBuf,
    header: Header,
    chunks: std::sync::mpsc::Receiver<Chunk>,
    /// The rest of the chunk being read.
    chunk: std::vec::IntoIter<Result<Option<Event>, Error>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// How the stream ended, once it has: `None` (its end) or the error.
    ended: Option<Option<Error>>,
}

impl std::fmt::Debug for ReadAhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAhead")
            .field("dir", &self.dir)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl ReadAhead {
    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Where the copy of file `id` is (`files/<id>`).
    pub fn file_path(&self, id: &FileId) -> PathBuf {
        self.dir.join(FILES_DIR).join(&id.0)
    }

    /// [`TraceReader::next_event`]: after the end, `Ok(None)` again; after
    /// an error, the same error again.
    pub fn next_event(&mut self) -> Result<Option<Event>, Error> {
        if let Some(ended) = &self.ended {
            return match ended {
                None => Ok(None),
                Some(e) => Err(same_error(e)),
            };
        }
        let event = match self.chunk.next() {
            Some(event) => event,
            None => match self.chunks.recv() {
                Ok(chunk) => {
                    self.chunk = chunk.into_iter();
                    // A chunk is never empty.
                    self.chunk.next().unwrap_or(Ok(None))
                }
                Err(_) => Err(io_err(
                    &self.events_path,
                    io::Error::other("the trace's reading thread is gone"),
                )),
            },
        };
        match &event {
            Ok(Some(_)) => {}
            Ok(None) => self.ended = Some(None),
            Err(e) => self.ended = Some(Some(same_error(e))),
        }
        event
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        // The thread stops at its next send, which fails once nobody
        // receives: drop the receiving end first.
        let (_, dead) = std::sync::mpsc::sync_channel(0);
        drop(std::mem::replace(&mut self.chunks, dead));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A copy of `e` (an I/O error is copied as its kind and message).
fn same_error(e: &Error) -> Error {
    match e {
        Error::VersionMismatch {
            path,
            found,
            expected,
            ours,
            writer,
        } => Error::VersionMismatch {
            path: path.clone(),
            found: *found,
            expected: *expected,
            ours: ours.clone(),
            writer: writer.clone(),
        },
        Error::UnknownDigest {
            path,
            found,
            writer,
        } => Error::UnknownDigest {
            path: path.clone(),
            found: found.clone(),
            writer: writer.clone(),
        },
        Error::Corrupt {
            path,
            what,
            offset,
            reason,
        } => Error::Corrupt {
            path: path.clone(),
            what,
            offset: *offset,
            reason: reason.clone(),
        },
        Error::Io { path, source } => Error::Io {
            path: path.clone(),
            source: io::Error::new(source.kind(), source.to_string()),
        },
    }
}

/// A file type in words, for messages.
fn kind_name(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

impl Iterator for TraceReader {
    type Item = Result<Event, Error>;

    /// Events until the end; an error is yielded once, then iteration stops.
    fn next(&mut self) -> Option<Self::Item> {
        if self.stream.error().is_some() {
            return None;
        }
        self.next_event().transpose()
    }
}

fn map_stream_error(dir: &Path, events_path: &Path, header: &Header, e: StreamError) -> Error {
    let path = events_path.display().to_string();
    match e {
        StreamError::Corrupt { offset, reason, .. } => Error::Corrupt {
            path,
            what: "event stream",
            offset,
            reason,
        },
        StreamError::Version(v) => Error::VersionMismatch {
            path: dir.display().to_string(),
            found: v,
            expected: super::codec::STREAM_VERSION,
            ours: our_version(),
            writer: header.recorder_version.clone(),
        },
        StreamError::Source {
            offset,
            message,
            eof,
        } => {
            Error::Corrupt {
                path,
                what: "compressed event stream",
                offset,
                reason: if eof {
                    format!("the compressed stream stops early (the recording was cut short): {message}")
                } else {
                    format!("cannot decompress: {message}")
                },
            }
        }
    }
}
