//! [`TraceReader`]: reads a trace directory back.
//!
//! `open` reads and checks `header.json` (its `format_version` first, so a
//! trace from another version gets [`Error::VersionMismatch`] rather than a
//! parse error) and the event stream's own magic and version; `next_event`
//! then streams the events. Every problem is an [`Error`] naming the file,
//! the offset and what was wrong; nothing in a trace can make the reader
//! panic, loop, or allocate much more than the trace holds.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use super::event::{Event, FileId};
use super::header::Header;
use super::stream::{StreamError, StreamReader};
use super::{Error, EVENTS_FILE, FILES_DIR, FORMAT_VERSION, HEADER_FILE};

/// `header.json` larger than this is not a header.
const MAX_HEADER_LEN: u64 = 64 << 20;

type Source = BufReader<zstd::stream::read::Decoder<'static, BufReader<File>>>;

/// Reads one trace directory.
pub struct TraceReader {
    dir: PathBuf,
    events_path: PathBuf,
    header: Header,
    stream: StreamReader<Source>,
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
    let file = File::open(&path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            let why = format!("no {HEADER_FILE} here: not a cargo-rrtest trace directory");
            io_err(dir, io::Error::new(e.kind(), why))
        } else {
            io_err(&path, e)
        }
    })?;
    let mut text = Vec::new();
    file.take(MAX_HEADER_LEN + 1)
        .read_to_end(&mut text)
        .map_err(|e| io_err(&path, e))?;
    let corrupt = |offset: u64, reason: String| Error::Corrupt {
        path: display.clone(),
        what: "header",
        offset,
        reason,
    };
    if text.len() as u64 > MAX_HEADER_LEN {
        return Err(corrupt(
            MAX_HEADER_LEN,
            format!("larger than {MAX_HEADER_LEN} bytes"),
        ));
    }
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
    if version != u64::from(FORMAT_VERSION) {
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
    serde_json::from_value::<Header>(value).map_err(|e| {
        corrupt(
            0,
            format!("not a version {FORMAT_VERSION} trace header: {e}"),
        )
    })
}

impl TraceReader {
    /// Opens the trace in `dir`: reads and checks `header.json`, then the
    /// event stream's magic and version.
    pub fn open(dir: &Path) -> Result<TraceReader, Error> {
        let header = read_header(dir)?;
        let events_path = dir.join(EVENTS_FILE);
        let file = File::open(&events_path).map_err(|e| io_err(&events_path, e))?;
        let decoder = zstd::stream::read::Decoder::new(file).map_err(|e| Error::Corrupt {
            path: events_path.display().to_string(),
            what: "compressed event stream",
            offset: 0,
            reason: e.to_string(),
        })?;
        let source = BufReader::with_capacity(128 * 1024, decoder);
        let stream = match StreamReader::new(source) {
            Ok(s) => s,
            Err(e) => return Err(map_stream_error(dir, &events_path, &header, e)),
        };
        Ok(TraceReader {
            dir: dir.to_owned(),
            events_path,
            header,
            stream,
        })
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
        self.stream
            .next_event()
            .map_err(|e| map_stream_error(&self.dir, &self.events_path, &self.header, e))
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
