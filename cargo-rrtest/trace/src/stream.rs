//! Framing of the decoded event stream: the stream header, records with
//! their tag and length, the running checksum and the end record.
//!
//! [`StreamWriter`] and [`StreamReader`] work on any byte sink or source; the
//! trace writer and reader put zstd between them and the file. Keeping the
//! framing apart from compression lets tests corrupt the decoded stream
//! directly.

use std::io::{self, BufRead, Read, Write};

use super::codec::{self, Checksum, DecodeError, EncodeError, Record};
use super::event::{Event, Tid};

/// Writes the stream header, then one record per [`StreamWriter::push`].
#[derive(Debug)]
pub struct StreamWriter<W: Write> {
    out: W,
    /// Reused payload buffer: no allocation per event once it has grown.
    buf: Vec<u8>,
    checksum: Checksum,
    events: u64,
    offset: u64,
}

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The event cannot be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// Writing failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl<W: Write> StreamWriter<W> {
    /// Writes the stream header to `out`.
    pub fn new(mut out: W) -> io::Result<Self> {
        let header = codec::stream_header();
        out.write_all(&header)?;
        let mut checksum = Checksum::default();
        checksum.update(&header);
        Ok(StreamWriter {
            out,
            buf: Vec::with_capacity(4096),
            checksum,
            events: 0,
            offset: header.len() as u64,
        })
    }

    /// Appends one event.
    pub fn push(&mut self, event: &Event) -> Result<(), PushError> {
        self.buf.clear();
        let tag = match codec::encode_payload(&mut self.buf, event) {
            Ok(tag) => tag,
            Err(e) => {
                self.buf.clear();
                return Err(e.into());
            }
        };
        self.write_record(tag)?;
        self.events += 1;
        Ok(())
    }

    fn write_record(&mut self, tag: u8) -> io::Result<()> {
        let (prefix, n) = record_prefix(tag, self.buf.len());
        let prefix = &prefix[..n];
        self.out.write_all(prefix)?;
        self.out.write_all(&self.buf)?;
        self.checksum.update(prefix);
        self.checksum.update(&self.buf);
        self.offset += (prefix.len() + self.buf.len()) as u64;
        Ok(())
    }

    /// Appends the records of `batch`, framed elsewhere ([`Batch::push`]):
    /// the same bytes and checksum as pushing its events here one by one.
    pub fn write_batch(&mut self, batch: &Batch) -> io::Result<()> {
        let mut at = 0;
        for &(prefix, payload) in &batch.records {
            let mid = at + usize::from(prefix);
            let end = mid + payload;
            self.checksum.update(&batch.bytes[at..mid]);
            self.checksum.update(&batch.bytes[mid..end]);
            at = end;
        }
        self.out.write_all(&batch.bytes)?;
        self.events += batch.records.len() as u64;
        self.offset += batch.bytes.len() as u64;
        Ok(())
    }

    /// Events pushed so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Bytes of the decoded stream written so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The sink.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// The sink.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Writes the end record and returns the sink.
    pub fn finish(mut self) -> io::Result<W> {
        self.buf.clear();
        codec::encode_end(&mut self.buf, self.events, self.checksum.value());
        self.write_record(codec::tag::END)?;
        Ok(self.out)
    }
}

/// A record's tag and payload length, as they precede its payload; the
/// second value is how many bytes of the array they take.
fn record_prefix(tag: u8, payload_len: usize) -> ([u8; 1 + codec::MAX_VARINT_LEN], usize) {
    let mut prefix = [0u8; 1 + codec::MAX_VARINT_LEN];
    prefix[0] = tag;
    let mut len = [0u8; codec::MAX_VARINT_LEN];
    let n = codec::uvarint_into(&mut len, payload_len as u64);
    prefix[1..1 + n].copy_from_slice(&len[..n]);
    (prefix, 1 + n)
}

/// Records framed away from their [`StreamWriter`], which writes them with
/// [`StreamWriter::write_batch`]: the trace writer encodes and frames events
/// on the recorder's thread, and checksums and compresses them on another.
#[derive(Debug, Default)]
pub struct Batch {
    /// The framed records, back to back.
    bytes: Vec<u8>,
    /// Each record's prefix and payload lengths, in order.
    records: Vec<(u8, usize)>,
}

impl Batch {
    /// Frames `event` after the records already here. An event that cannot
    /// be encoded adds nothing.
    pub fn push(&mut self, event: &Event) -> Result<(), EncodeError> {
        // The payload goes after room for the longest prefix, and is moved
        // back once its length, so its prefix, is known: no second buffer
        // (an event can be hundreds of megabytes).
        const ROOM: usize = 1 + codec::MAX_VARINT_LEN;
        let start = self.bytes.len();
        self.bytes.resize(start + ROOM, 0);
        let tag = match codec::encode_payload(&mut self.bytes, event) {
            Ok(tag) => tag,
            Err(e) => {
                self.bytes.truncate(start);
                return Err(e);
            }
        };
        let payload = self.bytes.len() - start - ROOM;
        let (prefix, n) = record_prefix(tag, payload);
        self.bytes[start..start + n].copy_from_slice(&prefix[..n]);
        self.bytes.copy_within(start + ROOM.., start + n);
        self.bytes.truncate(start + n + payload);
        self.records.push((n as u8, payload));
        Ok(())
    }

    /// Frames an [`Event::Buffered`] of thread `tid` with `len` bytes of
    /// records, which `fill` writes into the slice it is given (the
    /// recorder reads them there straight from the program's buffer: no
    /// copy is made of them). The same bytes as pushing the event. When
    /// `fill` answers false (it could not), nothing is added and the answer
    /// is false.
    pub fn push_buffered(
        &mut self,
        tid: Tid,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> bool,
    ) -> Result<bool, EncodeError> {
        let mut head = Vec::with_capacity(2 * codec::MAX_VARINT_LEN);
        codec::buffered_payload_head(&mut head, tid, len);
        let payload = head.len() + len;
        if payload as u64 > codec::MAX_RECORD_LEN {
            return Err(EncodeError {
                kind: "buffered",
                reason: format!(
                    "its record is {payload} bytes, more than the {} the format allows",
                    codec::MAX_RECORD_LEN
                ),
            });
        }
        let (prefix, n) = record_prefix(codec::tag::BUFFERED, payload);
        let start = self.bytes.len();
        self.bytes.extend_from_slice(&prefix[..n]);
        self.bytes.extend_from_slice(&head);
        let records = self.bytes.len();
        self.bytes.resize(records + len, 0);
        if !fill(&mut self.bytes[records..]) {
            self.bytes.truncate(start);
            return Ok(false);
        }
        self.records.push((n as u8, payload));
        Ok(true)
    }

    /// Bytes framed.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Records framed.
    pub fn events(&self) -> usize {
        self.records.len()
    }

    /// Empties it, keeping its memory for the next records, unless a huge
    /// event (a syscall that read hundreds of megabytes) made it grow past
    /// [`Batch::RETAINED`]: batches are reused, and would otherwise hold
    /// such memory for the rest of the recording.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.records.clear();
        if self.bytes.capacity() > Self::RETAINED {
            self.bytes = Vec::new();
        }
    }

    /// The most memory a buffer of an emptied batch keeps: more than a full
    /// syscall buffer's records (1 MiB), which every flush frames.
    pub const RETAINED: usize = 4 << 20;

    /// The memory its framed bytes hold.
    pub fn capacity(&self) -> usize {
        self.bytes.capacity()
    }
}

/// Why reading the stream stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamError {
    /// The stream is damaged at `offset` (of the decoded stream).
    Corrupt {
        /// Where.
        offset: u64,
        /// What.
        reason: String,
        /// Whether the stream simply stops: every record before `offset` was
        /// complete, and there is no end record (a recorder that was killed).
        truncated: bool,
    },
    /// The stream header names another version.
    Version(u32),
    /// The byte source failed (for a zstd source: the compressed data is
    /// damaged, or the file could not be read).
    Source {
        /// Decoded-stream offset where it failed.
        offset: u64,
        /// The error.
        message: String,
        /// Whether the source ended early.
        eof: bool,
    },
}

impl StreamError {
    /// Whether the stream was cut short (as opposed to damaged).
    pub fn is_truncation(&self) -> bool {
        match self {
            StreamError::Corrupt { truncated, .. } => *truncated,
            StreamError::Source { eof, .. } => *eof,
            StreamError::Version(_) => false,
        }
    }

    /// The decoded-stream offset where reading stopped.
    pub fn offset(&self) -> u64 {
        match self {
            StreamError::Corrupt { offset, .. } | StreamError::Source { offset, .. } => *offset,
            StreamError::Version(_) => 8,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Reading,
    Ended,
    Failed(StreamError),
}

/// Reads records back, checking the framing, the checksum and the end record.
#[derive(Debug)]
pub struct StreamReader<R: BufRead> {
    input: R,
    buf: Vec<u8>,
    checksum: Checksum,
    events: u64,
    offset: u64,
    state: State,
}

/// How much of a payload to read at a time: a corrupt length can only make
/// the reader allocate as much as the input really holds.
const READ_CHUNK: u64 = 1 << 20;

impl<R: BufRead> StreamReader<R> {
    /// Reads and checks the stream header.
    pub fn new(mut input: R) -> Result<Self, StreamError> {
        let mut header = [0u8; codec::STREAM_HEADER_LEN];
        let got = read_full(&mut input, &mut header).map_err(|e| StreamError::Source {
            offset: 0,
            eof: e.kind() == io::ErrorKind::UnexpectedEof,
            message: e.to_string(),
        })?;
        if got < 8 || header[..8] != codec::STREAM_MAGIC {
            return Err(StreamError::Corrupt {
                offset: 0,
                reason: format!(
                    "the stream does not start with the magic bytes {:?}",
                    String::from_utf8_lossy(&codec::STREAM_MAGIC)
                ),
                truncated: false,
            });
        }
        if got < codec::STREAM_HEADER_LEN {
            return Err(StreamError::Corrupt {
                offset: got as u64,
                reason: "the stream ends inside its header".into(),
                truncated: true,
            });
        }
        let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        if version != codec::STREAM_VERSION {
            return Err(StreamError::Version(version));
        }
        let mut checksum = Checksum::default();
        checksum.update(&header);
        Ok(StreamReader {
            input,
            buf: Vec::new(),
            checksum,
            events: 0,
            offset: codec::STREAM_HEADER_LEN as u64,
            state: State::Reading,
        })
    }

    /// Offset in the decoded stream of the next record.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Events read so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The error that stopped the reader, if one did.
    pub fn error(&self) -> Option<&StreamError> {
        match &self.state {
            State::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// The next event; `Ok(None)` after a valid end record. After an error,
    /// every call returns the same error.
    pub fn next_event(&mut self) -> Result<Option<Event>, StreamError> {
        match &self.state {
            State::Reading => {}
            State::Ended => return Ok(None),
            State::Failed(e) => return Err(e.clone()),
        }
        match self.read_record() {
            Ok(ev) => {
                if ev.is_none() {
                    self.state = State::Ended;
                }
                Ok(ev)
            }
            Err(e) => {
                self.state = State::Failed(e.clone());
                Err(e)
            }
        }
    }

    fn corrupt(&self, offset: u64, reason: String, truncated: bool) -> StreamError {
        StreamError::Corrupt {
            offset,
            reason,
            truncated,
        }
    }

    fn source_error(&self, offset: u64, e: io::Error) -> StreamError {
        StreamError::Source {
            offset,
            eof: e.kind() == io::ErrorKind::UnexpectedEof,
            message: e.to_string(),
        }
    }

    /// Reads a record's tag and length: `(tag, prefix bytes, prefix
    /// length, payload length)`.
    #[allow(clippy::type_complexity)]
    fn read_prefix(
        &mut self,
    ) -> Result<(u8, [u8; 1 + codec::MAX_VARINT_LEN], usize, u64), StreamError> {
        let start = self.offset;
        let mut prefix = [0u8; 1 + codec::MAX_VARINT_LEN];
        // The tag.
        let tag = match read_byte(&mut self.input) {
            Ok(Some(t)) => t,
            Ok(None) => {
                return Err(self.corrupt(
                    start,
                    format!(
                        "the stream stops after {} complete events, without its end record (the recording was cut short, or the file was cut)",
                        self.events
                    ),
                    true,
                ))
            }
            Err(e) => return Err(self.source_error(start, e)),
        };
        if !codec::is_known_tag(tag) {
            return Err(self.corrupt(start, format!("unknown record tag {tag:#04x}"), false));
        }
        prefix[0] = tag;
        // The payload length.
        let mut len: u64 = 0;
        let mut n = 0;
        loop {
            let at = start + 1 + n as u64;
            let b = match read_byte(&mut self.input) {
                Ok(Some(b)) => b,
                Ok(None) => {
                    return Err(self.corrupt(
                        at,
                        format!(
                            "the stream stops inside a record's length after {} complete events (the recording was cut short)",
                            self.events
                        ),
                        true,
                    ))
                }
                Err(e) => return Err(self.source_error(at, e)),
            };
            prefix[1 + n] = b;
            len |= u64::from(b & 0x7f) << (7 * n);
            n += 1;
            if b & 0x80 == 0 {
                break;
            }
            if n == 5 {
                // 5 varint bytes hold 35 bits, well above MAX_RECORD_LEN.
                return Err(self.corrupt(
                    start + 1,
                    "record length does not fit in 35 bits".into(),
                    false,
                ));
            }
        }
        if len > codec::MAX_RECORD_LEN {
            return Err(self.corrupt(
                start + 1,
                format!(
                    "record length {len} is more than the {} the format allows",
                    codec::MAX_RECORD_LEN
                ),
                false,
            ));
        }
        Ok((tag, prefix, n, len))
    }

    /// Reads the rest of the stream without decoding its events: the
    /// framing, the checksum and the end record are checked as
    /// [`StreamReader::next_event`] checks them (the same errors, at the
    /// same offsets, but for a payload that does not decode), at the cost of
    /// decompressing and hashing only. Returns the number of events.
    pub fn check_to_end(&mut self) -> Result<u64, StreamError> {
        match &self.state {
            State::Reading => {}
            State::Ended => return Ok(self.events),
            State::Failed(e) => return Err(e.clone()),
        }
        let result = self.skim();
        match &result {
            Ok(_) => self.state = State::Ended,
            Err(e) => self.state = State::Failed(e.clone()),
        }
        result
    }

    fn skim(&mut self) -> Result<u64, StreamError> {
        // A multiple of 8: the checksum folds a payload read in pieces of
        // this size exactly as it folds the whole payload.
        const PIECE: usize = 64 * 1024;
        let mut piece = vec![0u8; PIECE];
        loop {
            let start = self.offset;
            let (tag, prefix, n, len) = self.read_prefix()?;
            let payload_at = start + 1 + n as u64;
            if tag == codec::tag::END {
                // The end record is not in the checksum it carries.
                // Decoded as by `next_event`, which checks it.
                self.skim_end(start, n, len)?;
                return Ok(self.events);
            }
            self.checksum.update(&prefix[..1 + n]);
            let mut left = len;
            while left > 0 {
                let want = left.min(PIECE as u64) as usize;
                let got = read_full(&mut self.input, &mut piece[..want])
                    .map_err(|e| self.source_error(payload_at + (len - left), e))?;
                if got < want {
                    return Err(self.corrupt(
                        payload_at + (len - left) + got as u64,
                        format!(
                            "the stream stops inside a {len}-byte record that starts at offset {start}, after {} complete events (the recording was cut short, or the file was cut)",
                            self.events
                        ),
                        true,
                    ));
                }
                self.checksum.update(&piece[..want]);
                left -= want as u64;
            }
            self.offset = payload_at + len;
            self.events += 1;
        }
    }

    /// Checks the end record whose prefix [`Self::skim`] read.
    fn skim_end(&mut self, start: u64, n: usize, len: u64) -> Result<(), StreamError> {
        // An end record is a few bytes: a longer one is corrupt, and must
        // not make us allocate.
        let payload_at = start + 1 + n as u64;
        if len > 64 {
            return Err(self.corrupt(
                payload_at,
                format!("an end record of {len} bytes (it has two numbers)"),
                false,
            ));
        }
        let mut buf = [0u8; 64];
        let got = read_full(&mut self.input, &mut buf[..len as usize])
            .map_err(|e| self.source_error(payload_at, e))?;
        if got < len as usize {
            return Err(self.corrupt(
                payload_at + got as u64,
                "the stream stops inside its end record".into(),
                true,
            ));
        }
        match codec::decode_payload(codec::tag::END, &buf[..len as usize]) {
            Ok(Record::End { events, checksum }) => {
                self.check_end(payload_at, len, events, checksum)
            }
            Ok(Record::Event(_)) => Err(self.corrupt(
                start,
                "an end record that decodes as an event".into(),
                false,
            )),
            Err(DecodeError { pos, reason }) => Err(self.corrupt(
                payload_at + pos as u64,
                format!("in the end record at offset {start}: {reason}"),
                false,
            )),
        }
    }

    /// The end record's counts against the stream's, and nothing after it.
    fn check_end(
        &mut self,
        payload_at: u64,
        len: u64,
        events: u64,
        checksum: u64,
    ) -> Result<(), StreamError> {
        if events != self.events {
            return Err(self.corrupt(
                payload_at,
                format!(
                    "the end record counts {events} events, but the stream holds {}",
                    self.events
                ),
                false,
            ));
        }
        if checksum != self.checksum.value() {
            return Err(self.corrupt(
                payload_at,
                format!(
                    "checksum mismatch: the end record says {checksum:#018x}, the stream hashes to {:#018x} (the events were changed after recording)",
                    self.checksum.value()
                ),
                false,
            ));
        }
        self.offset = payload_at + len;
        // Nothing may follow the end record.
        match read_byte(&mut self.input) {
            Ok(None) => Ok(()),
            Ok(Some(_)) => {
                Err(self.corrupt(self.offset, "data after the end record".into(), false))
            }
            Err(e) => Err(self.source_error(self.offset, e)),
        }
    }

    fn read_record(&mut self) -> Result<Option<Event>, StreamError> {
        let start = self.offset;
        let (tag, prefix, n, len) = self.read_prefix()?;
        let payload_at = start + 1 + n as u64;
        // The payload: straight from the input's buffer when it holds all of
        // it (the common, small record), else a chunk at a time.
        self.buf.clear();
        let mut want = len;
        match self.input.fill_buf() {
            Ok(avail) if avail.len() as u64 >= len => {
                self.buf.extend_from_slice(&avail[..len as usize]);
                self.input.consume(len as usize);
                want = 0;
            }
            Ok(_) => {}
            Err(e) => return Err(self.source_error(payload_at, e)),
        }
        while want > 0 {
            let chunk = want.min(READ_CHUNK);
            let got = match (&mut self.input).take(chunk).read_to_end(&mut self.buf) {
                Ok(got) => got as u64,
                Err(e) => {
                    return Err(self.source_error(payload_at + self.buf.len() as u64, e));
                }
            };
            if got < chunk {
                return Err(self.corrupt(
                    payload_at + self.buf.len() as u64,
                    format!(
                        "the stream stops inside a {len}-byte record that starts at offset {start}, after {} complete events (the recording was cut short)",
                        self.events
                    ),
                    true,
                ));
            }
            want -= got;
        }
        let record =
            codec::decode_payload(tag, &self.buf).map_err(|DecodeError { pos, reason }| {
                self.corrupt(
                    payload_at + pos as u64,
                    format!("in the record at offset {start}: {reason}"),
                    false,
                )
            })?;
        match record {
            Record::Event(ev) => {
                self.checksum.update(&prefix[..1 + n]);
                self.checksum.update(&self.buf);
                self.offset = payload_at + len;
                self.events += 1;
                Ok(Some(ev))
            }
            Record::End { events, checksum } => {
                self.check_end(payload_at, len, events, checksum)?;
                Ok(None)
            }
        }
    }
}

/// One byte, `None` at end of input.
fn read_byte<R: BufRead>(input: &mut R) -> io::Result<Option<u8>> {
    loop {
        match input.fill_buf() {
            Ok([]) => return Ok(None),
            Ok(buf) => {
                let b = buf[0];
                input.consume(1);
                return Ok(Some(b));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Fills `buf` as far as the input goes; returns how much it read.
fn read_full<R: Read>(input: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
