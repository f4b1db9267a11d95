//! The binary encoding of the event stream (docs/trace-format.md, "events.zst").
//!
//! The decompressed stream is a 12-byte stream header followed by records:
//!
//! ```text
//! +----------------+-----------+   +-----+-----------+---------------+
//! | "RRTEVNT\0"    | version   |   | tag | len       | payload       |  ...  | 0xFF | len | end payload |
//! | 8 bytes        | u32 LE    |   | u8  | uvarint   | `len` bytes   |
//! +----------------+-----------+   +-----+-----------+---------------+
//! ```
//!
//! Integers in payloads are LEB128 varints (`uvarint`), signed ones zigzag
//! encoded first (`ivarint`); byte strings are a `uvarint` length and the
//! bytes. Every record ends exactly where its length says: a decoder never
//! reads past a record, and leftover bytes in a record are corruption.
//!
//! This module is pure: [`encode_payload`] appends a record's payload to a
//! buffer, [`decode_payload`] parses one from a slice. Framing, the running
//! [`Checksum`] and I/O live in the writer and reader.

use super::event::{
    Event, ExecEvent, ExecPoint, ExitStatus, FileId, MemWrite, PatchEvent, PointWords, SignalEvent,
    SignalKind, SyscallEvent, SyscallExtra, SyscallResult, VdsoCopy, WriteKind, MAX_POINT_WORDS,
    POINT_REGS,
};

/// The first 8 bytes of the decompressed event stream.
pub const STREAM_MAGIC: [u8; 8] = *b"RRTEVNT\0";
/// The event stream's own version, after the magic (u32, little endian).
///
/// Compatibility rule: a reader accepts exactly the versions it knows (only 1
/// today) and rejects any other with [`super::Error::VersionMismatch`]. Any
/// change to a record's layout, a new tag, or a new variant byte value
/// needs a new version; unknown tags are corruption, not something to skip.
/// (Version 1 is not released: tags 0x0c-0x10 were added to it.)
pub const STREAM_VERSION: u32 = 1;
/// Bytes of the stream header: magic and version.
pub const STREAM_HEADER_LEN: usize = 12;

/// Record tags (the first byte of each record). 0x00 is never a tag, so a
/// stretch of zeros is caught at once.
pub mod tag {
    /// [`super::Event::Exec`].
    pub const EXEC: u8 = 0x01;
    /// [`super::Event::Syscall`].
    pub const SYSCALL: u8 = 0x02;
    /// [`super::Event::SyscallEntry`].
    pub const SYSCALL_ENTRY: u8 = 0x03;
    /// [`super::Event::SyscallExit`].
    pub const SYSCALL_EXIT: u8 = 0x04;
    /// [`super::Event::Rdtsc`].
    pub const RDTSC: u8 = 0x05;
    /// [`super::Event::Signal`].
    pub const SIGNAL: u8 = 0x06;
    /// [`super::Event::NewTask`].
    pub const NEW_TASK: u8 = 0x07;
    /// [`super::Event::ThreadExit`].
    pub const THREAD_EXIT: u8 = 0x08;
    /// [`super::Event::ProcessExit`].
    pub const PROCESS_EXIT: u8 = 0x09;
    /// [`super::Event::Unsupported`].
    pub const UNSUPPORTED: u8 = 0x0a;
    /// [`Event::Preempt`](crate::Event::Preempt).
    pub const PREEMPT: u8 = 0x0b;
    /// [`Event::BufferInit`](crate::Event::BufferInit).
    pub const BUFFER_INIT: u8 = 0x0c;
    /// [`Event::Buffered`](crate::Event::Buffered).
    pub const BUFFERED: u8 = 0x0d;
    /// [`Event::BufferAbort`](crate::Event::BufferAbort).
    pub const BUFFER_ABORT: u8 = 0x0e;
    /// [`Event::Patch`](crate::Event::Patch).
    pub const PATCH: u8 = 0x0f;
    /// [`Event::TraceeWrite`](crate::Event::TraceeWrite).
    pub const TRACEE_WRITE: u8 = 0x10;
    /// The end record: the event count and the stream checksum. Written by
    /// `TraceWriter::finish`; a stream without it was cut short.
    pub const END: u8 = 0xff;
}

/// Largest record payload a reader accepts (and a writer writes): 4 GiB, above
/// the most one syscall can transfer (Linux caps reads at 2 GiB - 4 KiB).
pub const MAX_RECORD_LEN: u64 = 1 << 32;
/// Longest string field (paths, messages).
pub const MAX_STRING_LEN: usize = 1 << 20;
/// Most memory-write ranges in one syscall result.
pub const MAX_MEM_WRITES: usize = 1 << 20;
/// Longest stub or patch (a stub is well under 256 bytes).
pub const MAX_PATCH_LEN: usize = 4096;
/// Longest `siginfo` (the kernel's is 128 bytes).
pub const MAX_SIGINFO_LEN: usize = 1024;
/// Bytes of a [`FileId`] in the stream (it is their lowercase hex).
pub const FILE_ID_LEN: usize = 16;

/// Longest encoding of a `u64` as a LEB128 varint.
pub const MAX_VARINT_LEN: usize = 10;

/// Why an event cannot be encoded (a caller bug or an absurd event).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode {kind} event: {reason}")]
pub struct EncodeError {
    /// The event's kind.
    pub kind: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// Why a payload cannot be decoded: where in the payload, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Offset inside the payload.
    pub pos: usize,
    /// What was wrong.
    pub reason: String,
}

// ---------------------------------------------------------------------------
// Primitive encoders.

/// Appends `v` as an unsigned LEB128 varint.
#[inline]
pub fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Writes `v` as a varint into `out`, returning the number of bytes used.
#[inline]
pub fn uvarint_into(out: &mut [u8; MAX_VARINT_LEN], mut v: u64) -> usize {
    let mut n = 0;
    while v >= 0x80 {
        out[n] = (v as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    out[n] = v as u8;
    n + 1
}

/// Zigzag: small negative numbers become small unsigned ones.
#[inline]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Inverse of [`zigzag`].
#[inline]
pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[inline]
fn put_ivarint(buf: &mut Vec<u8>, v: i64) {
    put_uvarint(buf, zigzag(v));
}

#[inline]
fn put_point(buf: &mut Vec<u8>, point: &ExecPoint) {
    put_uvarint(buf, point.ip);
    for &r in &point.regs {
        put_uvarint(buf, r);
    }
    buf.extend_from_slice(&point.digest.to_le_bytes());
    // Its words, only where it has some: the point is the last field of
    // each record that holds one, so a point without words is encoded as
    // in format versions before 8.
    if !point.words.is_empty() {
        put_uvarint(buf, point.words.len() as u64);
        for &(addr, value) in point.words.as_slice() {
            put_uvarint(buf, addr);
            buf.extend_from_slice(&value.to_le_bytes());
        }
    }
}

fn put_bytes(buf: &mut Vec<u8>, data: &[u8]) {
    put_uvarint(buf, data.len() as u64);
    buf.extend_from_slice(data);
}

/// Six syscall arguments: a byte whose bit `i` says argument `i` is nonzero,
/// then the nonzero ones as uvarints (unused argument registers are often 0).
#[inline]
fn put_args(buf: &mut Vec<u8>, args: &[u64; 6]) {
    let mut mask = 0u8;
    for (i, a) in args.iter().enumerate() {
        if *a != 0 {
            mask |= 1 << i;
        }
    }
    buf.push(mask);
    for a in args.iter().filter(|a| **a != 0) {
        put_uvarint(buf, *a);
    }
}

/// Parses a canonical file id (32 lowercase hex digits) into its 16 bytes.
pub fn file_id_bytes(id: &FileId) -> Option<[u8; FILE_ID_LEN]> {
    let s = id.0.as_bytes();
    if s.len() != 2 * FILE_ID_LEN {
        return None;
    }
    let mut out = [0u8; FILE_ID_LEN];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        let hi = hex_digit(pair[0])?;
        let lo = hex_digit(pair[1])?;
        out[i] = (hi << 4) | lo;
    }
    Some(out)
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// The [`FileId`] (lowercase hex) of 16 bytes.
pub fn file_id_from_bytes(bytes: &[u8; FILE_ID_LEN]) -> FileId {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 * FILE_ID_LEN);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 0xf) as usize] as char);
    }
    FileId(s)
}

struct Enc<'a> {
    buf: &'a mut Vec<u8>,
    kind: &'static str,
}

impl Enc<'_> {
    fn err(&self, reason: impl Into<String>) -> EncodeError {
        EncodeError {
            kind: self.kind,
            reason: reason.into(),
        }
    }

    fn str(&mut self, field: &str, s: &str) -> Result<(), EncodeError> {
        if s.len() > MAX_STRING_LEN {
            return Err(self.err(format!(
                "{field} is {} bytes long, more than the {MAX_STRING_LEN} the format allows",
                s.len()
            )));
        }
        put_bytes(self.buf, s.as_bytes());
        Ok(())
    }

    fn file_id(&mut self, field: &str, id: &FileId) -> Result<(), EncodeError> {
        let bytes = file_id_bytes(id).ok_or_else(|| {
            self.err(format!(
                "{field} {:?} is not a file id (32 lowercase hex digits)",
                id.0
            ))
        })?;
        self.buf.extend_from_slice(&bytes);
        Ok(())
    }

    fn result(&mut self, r: &SyscallResult) -> Result<(), EncodeError> {
        put_ivarint(self.buf, r.ret);
        if r.writes.len() > MAX_MEM_WRITES {
            return Err(self.err(format!(
                "{} memory writes, more than the {MAX_MEM_WRITES} the format allows",
                r.writes.len()
            )));
        }
        put_uvarint(self.buf, r.writes.len() as u64);
        for w in &r.writes {
            put_uvarint(self.buf, w.addr);
            put_bytes(self.buf, &w.data);
        }
        match &r.extra {
            SyscallExtra::None => self.buf.push(0),
            SyscallExtra::MappedFile { file, path } => {
                self.buf.push(1);
                self.file_id("mapped file id", file)?;
                self.str("mapped file path", path)?;
            }
            SyscallExtra::Output { fd, data } => {
                self.buf.push(2);
                put_ivarint(self.buf, i64::from(*fd));
                put_bytes(self.buf, data);
            }
        }
        Ok(())
    }
}

/// Appends the payload of `event`'s record to `buf` and returns its tag.
///
/// On error `buf` may hold part of a payload; the caller clears it.
pub fn encode_payload(buf: &mut Vec<u8>, event: &Event) -> Result<u8, EncodeError> {
    let start = buf.len();
    let mut e = Enc {
        buf,
        kind: event.kind(),
    };
    let tag = match event {
        Event::Exec(x) => {
            put_ivarint(e.buf, i64::from(x.tid));
            e.str("exe", &x.exe)?;
            e.file_id("exe file id", &x.exe_file)?;
            e.buf.extend_from_slice(&x.at_random);
            put_uvarint(e.buf, x.sp);
            put_uvarint(e.buf, x.ip);
            // Format version 4: the copy's address last, 0 for none;
            // absent in older records (and for traces written as older
            // recorders wrote them).
            match x.vdso_copy {
                VdsoCopy::Unrecorded => {}
                VdsoCopy::Absent => put_uvarint(e.buf, 0),
                VdsoCopy::At(0) => return Err(e.err("a vDSO copy at address 0")),
                VdsoCopy::At(addr) => put_uvarint(e.buf, addr),
            }
            tag::EXEC
        }
        Event::Syscall(x) => {
            put_ivarint(e.buf, i64::from(x.tid));
            put_ivarint(e.buf, x.nr);
            put_args(e.buf, &x.args);
            e.result(&x.result)?;
            tag::SYSCALL
        }
        Event::SyscallEntry { tid, nr, args } => {
            put_ivarint(e.buf, i64::from(*tid));
            put_ivarint(e.buf, *nr);
            put_args(e.buf, args);
            tag::SYSCALL_ENTRY
        }
        Event::SyscallExit { tid, nr, result } => {
            put_ivarint(e.buf, i64::from(*tid));
            put_ivarint(e.buf, *nr);
            e.result(result)?;
            tag::SYSCALL_EXIT
        }
        Event::Rdtsc { tid, ip, tsc, aux } => {
            put_ivarint(e.buf, i64::from(*tid));
            put_uvarint(e.buf, *ip);
            put_uvarint(e.buf, *tsc);
            match aux {
                None => e.buf.push(0),
                Some(a) => {
                    e.buf.push(1);
                    put_uvarint(e.buf, u64::from(*a));
                }
            }
            tag::RDTSC
        }
        Event::Signal(x) => {
            put_ivarint(e.buf, i64::from(x.tid));
            put_ivarint(e.buf, i64::from(x.signo));
            if x.siginfo.len() > MAX_SIGINFO_LEN {
                return Err(e.err(format!(
                    "siginfo is {} bytes, more than the {MAX_SIGINFO_LEN} the format allows",
                    x.siginfo.len()
                )));
            }
            put_bytes(e.buf, &x.siginfo);
            match x.kind {
                SignalKind::Synchronous { ip } => {
                    e.buf.push(0);
                    put_uvarint(e.buf, ip);
                }
                SignalKind::AtSyscallExit => e.buf.push(1),
                SignalKind::Asynchronous { ip } => {
                    e.buf.push(2);
                    put_uvarint(e.buf, ip);
                }
                SignalKind::BeforeSyscall { nr } => {
                    e.buf.push(3);
                    put_ivarint(e.buf, nr);
                }
                SignalKind::AtPoint(point) => {
                    e.buf.push(4);
                    put_point(e.buf, &point);
                }
            }
            tag::SIGNAL
        }
        Event::Preempt { tid, point } => {
            put_ivarint(e.buf, i64::from(*tid));
            put_point(e.buf, point);
            tag::PREEMPT
        }
        Event::BufferInit { tid, hook_entry } => {
            put_ivarint(e.buf, i64::from(*tid));
            put_uvarint(e.buf, *hook_entry);
            tag::BUFFER_INIT
        }
        Event::Buffered { tid, records } => {
            buffered_payload_head(e.buf, *tid, records.len());
            e.buf.extend_from_slice(records);
            tag::BUFFERED
        }
        Event::BufferAbort { tid, nr } => {
            put_ivarint(e.buf, i64::from(*tid));
            put_ivarint(e.buf, *nr);
            tag::BUFFER_ABORT
        }
        Event::Patch(p) => {
            put_ivarint(e.buf, i64::from(p.tid));
            put_ivarint(e.buf, p.nr);
            // Flags: bit 0, a new stub page follows; bit 1, an ahead
            // address follows it; bit 2, an rdtsc site.
            e.buf.push(
                u8::from(p.new_page.is_some())
                    | u8::from(p.ahead.is_some()) << 1
                    | u8::from(p.rdtsc) << 2,
            );
            if let Some((addr, len)) = p.new_page {
                put_uvarint(e.buf, addr);
                put_uvarint(e.buf, len);
            }
            if let Some(addr) = p.ahead {
                put_uvarint(e.buf, addr);
            }
            put_uvarint(e.buf, p.stub_addr);
            put_bytes(e.buf, &p.stub);
            put_uvarint(e.buf, p.site);
            put_bytes(e.buf, &p.site_bytes);
            put_uvarint(e.buf, p.resume);
            tag::PATCH
        }
        Event::TraceeWrite {
            tid,
            target,
            kind,
            addr,
            bytes,
        } => {
            if *kind == WriteKind::XState
                && !(WriteKind::MIN_XSTATE_LEN..=WriteKind::MAX_XSTATE_LEN).contains(&bytes.len())
            {
                return Err(e.err(format!(
                    "{} of {} bytes, not {} to {}",
                    kind.name(),
                    bytes.len(),
                    WriteKind::MIN_XSTATE_LEN,
                    WriteKind::MAX_XSTATE_LEN
                )));
            }
            if let Some(size) = kind.size().filter(|&n| n != bytes.len()) {
                return Err(e.err(format!(
                    "{} of {} bytes, not {size}",
                    kind.name(),
                    bytes.len()
                )));
            }
            put_ivarint(e.buf, i64::from(*tid));
            put_ivarint(e.buf, i64::from(*target));
            e.buf.push(*kind as u8);
            put_uvarint(e.buf, *addr);
            put_bytes(e.buf, bytes);
            tag::TRACEE_WRITE
        }
        Event::NewTask {
            parent,
            child,
            flags,
        } => {
            put_ivarint(e.buf, i64::from(*parent));
            put_ivarint(e.buf, i64::from(*child));
            put_uvarint(e.buf, *flags);
            tag::NEW_TASK
        }
        Event::ThreadExit { tid } => {
            put_ivarint(e.buf, i64::from(*tid));
            tag::THREAD_EXIT
        }
        Event::ProcessExit { pid, status } => {
            put_ivarint(e.buf, i64::from(*pid));
            match status {
                ExitStatus::Exited(code) => {
                    e.buf.push(0);
                    put_ivarint(e.buf, i64::from(*code));
                }
                ExitStatus::Signaled { signo, core } => {
                    e.buf.push(1);
                    put_ivarint(e.buf, i64::from(*signo));
                    e.buf.push(u8::from(*core));
                }
            }
            tag::PROCESS_EXIT
        }
        Event::Unsupported { tid, what } => {
            put_ivarint(e.buf, i64::from(*tid));
            e.str("what", what)?;
            tag::UNSUPPORTED
        }
    };
    let len = e.buf.len() - start;
    if len as u64 > MAX_RECORD_LEN {
        return Err(e.err(format!(
            "its record is {len} bytes, more than the {MAX_RECORD_LEN} the format allows"
        )));
    }
    Ok(tag)
}

/// Appends what precedes the records in the payload of an
/// [`Event::Buffered`] of thread `tid` with `len` bytes of records (its
/// tid, their length): the trace writer puts the records after it without
/// an intermediate copy ([`super::stream::Batch::push_buffered`]).
pub fn buffered_payload_head(buf: &mut Vec<u8>, tid: crate::Tid, len: usize) {
    put_ivarint(buf, i64::from(tid));
    put_uvarint(buf, len as u64);
}

/// Appends the end record's payload: the event count and the checksum of
/// everything before the end record.
pub fn encode_end(buf: &mut Vec<u8>, events: u64, checksum: u64) {
    put_uvarint(buf, events);
    buf.extend_from_slice(&checksum.to_le_bytes());
}

// ---------------------------------------------------------------------------
// Decoding.

/// A bounds-checked cursor over one record's payload.
#[derive(Debug)]
pub struct Dec<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Dec<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Dec { data, pos: 0 }
    }

    fn err<T>(&self, pos: usize, reason: impl Into<String>) -> Result<T, DecodeError> {
        Err(DecodeError {
            pos,
            reason: reason.into(),
        })
    }

    fn left(&self) -> usize {
        self.data.len() - self.pos
    }

    /// One byte.
    pub fn byte(&mut self, what: &str) -> Result<u8, DecodeError> {
        match self.data.get(self.pos) {
            Some(b) => {
                self.pos += 1;
                Ok(*b)
            }
            None => self.err(self.pos, format!("record ends before its {what}")),
        }
    }

    /// A byte that must be below `limit` (a variant selector).
    fn variant(&mut self, what: &str, limit: u8) -> Result<u8, DecodeError> {
        let at = self.pos;
        let b = self.byte(what)?;
        if b >= limit {
            return self.err(at, format!("{what} is {b}, not one of 0..{limit}"));
        }
        Ok(b)
    }

    /// `N` raw bytes.
    fn fixed<const N: usize>(&mut self, what: &str) -> Result<[u8; N], DecodeError> {
        if self.left() < N {
            return self.err(
                self.pos,
                format!("record ends inside its {what} ({N} bytes)"),
            );
        }
        let mut out = [0u8; N];
        out.copy_from_slice(&self.data[self.pos..self.pos + N]);
        self.pos += N;
        Ok(out)
    }

    /// An unsigned LEB128 varint.
    fn point(&mut self) -> Result<ExecPoint, DecodeError> {
        let ip = self.uvarint("execution point ip")?;
        let mut regs = [0u64; POINT_REGS];
        for r in &mut regs {
            *r = self.uvarint("execution point register")?;
        }
        let digest = u64::from_le_bytes(self.fixed::<8>("execution point digest")?);
        // Words follow where the record goes on (the point is its last
        // field): format version 8.
        let mut words = PointWords::NONE;
        if self.left() > 0 {
            let start = self.pos;
            let n = self.uvarint("execution point word count")?;
            if n == 0 || n > MAX_POINT_WORDS as u64 {
                return self.err(
                    start,
                    format!("execution point with {n} words (1 to {MAX_POINT_WORDS})"),
                );
            }
            for _ in 0..n {
                let addr = self.uvarint("execution point word address")?;
                let value = u64::from_le_bytes(self.fixed::<8>("execution point word")?);
                words.push(addr, value);
            }
        }
        Ok(ExecPoint {
            ip,
            regs,
            digest,
            words,
        })
    }

    pub fn uvarint(&mut self, what: &str) -> Result<u64, DecodeError> {
        let start = self.pos;
        let mut v: u64 = 0;
        for i in 0..MAX_VARINT_LEN {
            let Some(&b) = self.data.get(self.pos) else {
                return self.err(self.pos, format!("record ends inside its {what}"));
            };
            self.pos += 1;
            if i == MAX_VARINT_LEN - 1 && b > 1 {
                return self.err(start, format!("{what} does not fit in 64 bits"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        self.err(start, format!("{what} does not fit in 64 bits"))
    }

    fn ivarint(&mut self, what: &str) -> Result<i64, DecodeError> {
        self.uvarint(what).map(unzigzag)
    }

    fn i32(&mut self, what: &str) -> Result<i32, DecodeError> {
        let at = self.pos;
        let v = self.ivarint(what)?;
        i32::try_from(v).or_else(|_| self.err(at, format!("{what} {v} does not fit in 32 bits")))
    }

    fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        let at = self.pos;
        let v = self.uvarint(what)?;
        u32::try_from(v).or_else(|_| self.err(at, format!("{what} {v} does not fit in 32 bits")))
    }

    fn bool(&mut self, what: &str) -> Result<bool, DecodeError> {
        Ok(self.variant(what, 2)? == 1)
    }

    /// A length-prefixed byte string of at most `max` bytes.
    fn bytes(&mut self, what: &str, max: usize) -> Result<&'a [u8], DecodeError> {
        let at = self.pos;
        let len = self.uvarint(what)?;
        if len > max as u64 {
            return self.err(
                at,
                format!("{what} length {len} is more than the {max} the format allows"),
            );
        }
        let len = len as usize;
        if len > self.left() {
            return self.err(
                at,
                format!(
                    "{what} length {len} is more than the {} bytes left in the record",
                    self.left()
                ),
            );
        }
        let s = &self.data[self.pos..self.pos + len];
        self.pos += len;
        Ok(s)
    }

    fn string(&mut self, what: &str) -> Result<String, DecodeError> {
        let at = self.pos;
        let b = self.bytes(what, MAX_STRING_LEN)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => self.err(at, format!("{what} is not UTF-8: {e}")),
        }
    }

    fn file_id(&mut self, what: &str) -> Result<FileId, DecodeError> {
        Ok(file_id_from_bytes(&self.fixed::<FILE_ID_LEN>(what)?))
    }

    fn args(&mut self) -> Result<[u64; 6], DecodeError> {
        let at = self.pos;
        let mask = self.byte("argument mask")?;
        if mask >> 6 != 0 {
            return self.err(at, format!("argument mask {mask:#04x} has bits above 5"));
        }
        let mut args = [0u64; 6];
        for (i, a) in args.iter_mut().enumerate() {
            if mask & (1 << i) != 0 {
                let at = self.pos;
                *a = self.uvarint("argument")?;
                if *a == 0 {
                    return self.err(at, format!("argument {i} is 0 but its mask bit is set"));
                }
            }
        }
        Ok(args)
    }

    fn result(&mut self) -> Result<SyscallResult, DecodeError> {
        let ret = self.ivarint("return value")?;
        let at = self.pos;
        let n = self.uvarint("memory write count")?;
        // Each write takes at least two bytes (address and length).
        if n > MAX_MEM_WRITES as u64 || n > (self.left() / 2) as u64 {
            return self.err(
                at,
                format!(
                    "memory write count {n} is impossible (at most {MAX_MEM_WRITES}, and {} bytes left)",
                    self.left()
                ),
            );
        }
        let mut writes = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let addr = self.uvarint("memory write address")?;
            let data = self.bytes("memory write", usize::MAX)?.to_vec();
            writes.push(MemWrite { addr, data });
        }
        let extra = match self.variant("syscall extra kind", 3)? {
            0 => SyscallExtra::None,
            1 => SyscallExtra::MappedFile {
                file: self.file_id("mapped file id")?,
                path: self.string("mapped file path")?,
            },
            _ => SyscallExtra::Output {
                fd: self.i32("output fd")?,
                data: self.bytes("output", usize::MAX)?.to_vec(),
            },
        };
        Ok(SyscallResult { ret, writes, extra })
    }

    /// Fails unless the whole payload was consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.left() != 0 {
            return self.err(
                self.pos,
                format!("{} unexpected bytes at the end of the record", self.left()),
            );
        }
        Ok(())
    }
}

/// What a record decodes to.
// An event with an execution point is the large variant: one record at a
// time.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// An event.
    Event(Event),
    /// The end record.
    End {
        /// Events before it.
        events: u64,
        /// Checksum of the stream before it.
        checksum: u64,
    },
}

/// Decodes the payload of a record with tag `tag`.
pub fn decode_payload(tag: u8, payload: &[u8]) -> Result<Record, DecodeError> {
    let mut d = Dec::new(payload);
    let rec = match tag {
        tag::EXEC => Record::Event(Event::Exec(ExecEvent {
            tid: d.i32("tid")?,
            exe: d.string("exe")?,
            exe_file: d.file_id("exe file id")?,
            at_random: d.fixed::<16>("AT_RANDOM bytes")?,
            sp: d.uvarint("sp")?,
            ip: d.uvarint("ip")?,
            vdso_copy: if d.left() == 0 {
                VdsoCopy::Unrecorded
            } else {
                match d.uvarint("vDSO copy address")? {
                    0 => VdsoCopy::Absent,
                    addr => VdsoCopy::At(addr),
                }
            },
        })),
        tag::SYSCALL => Record::Event(Event::Syscall(SyscallEvent {
            tid: d.i32("tid")?,
            nr: d.ivarint("syscall number")?,
            args: d.args()?,
            result: d.result()?,
        })),
        tag::SYSCALL_ENTRY => Record::Event(Event::SyscallEntry {
            tid: d.i32("tid")?,
            nr: d.ivarint("syscall number")?,
            args: d.args()?,
        }),
        tag::SYSCALL_EXIT => Record::Event(Event::SyscallExit {
            tid: d.i32("tid")?,
            nr: d.ivarint("syscall number")?,
            result: d.result()?,
        }),
        tag::RDTSC => Record::Event(Event::Rdtsc {
            tid: d.i32("tid")?,
            ip: d.uvarint("ip")?,
            tsc: d.uvarint("tsc")?,
            aux: if d.bool("rdtscp flag")? {
                Some(d.u32("rdtscp aux")?)
            } else {
                None
            },
        }),
        tag::SIGNAL => Record::Event(Event::Signal(SignalEvent {
            tid: d.i32("tid")?,
            signo: d.i32("signal number")?,
            siginfo: d.bytes("siginfo", MAX_SIGINFO_LEN)?.to_vec(),
            kind: match d.variant("signal kind", 5)? {
                0 => SignalKind::Synchronous {
                    ip: d.uvarint("ip")?,
                },
                1 => SignalKind::AtSyscallExit,
                2 => SignalKind::Asynchronous {
                    ip: d.uvarint("ip")?,
                },
                3 => SignalKind::BeforeSyscall {
                    nr: d.ivarint("syscall number")?,
                },
                _ => SignalKind::AtPoint(d.point()?),
            },
        })),
        tag::PREEMPT => Record::Event(Event::Preempt {
            tid: d.i32("tid")?,
            point: d.point()?,
        }),
        tag::BUFFER_INIT => Record::Event(Event::BufferInit {
            tid: d.i32("tid")?,
            hook_entry: d.uvarint("hook entry")?,
        }),
        tag::BUFFERED => Record::Event(Event::Buffered {
            tid: d.i32("tid")?,
            records: d.bytes("buffer records", usize::MAX)?.to_vec(),
        }),
        tag::BUFFER_ABORT => Record::Event(Event::BufferAbort {
            tid: d.i32("tid")?,
            nr: d.ivarint("syscall number")?,
        }),
        tag::PATCH => {
            let tid = d.i32("tid")?;
            let nr = d.ivarint("syscall number")?;
            let flags = d.variant("patch flags", 8)?;
            let new_page = if flags & 1 != 0 {
                Some((d.uvarint("stub page")?, d.uvarint("stub page length")?))
            } else {
                None
            };
            let ahead = if flags & 2 != 0 {
                Some(d.uvarint("ahead address")?)
            } else {
                None
            };
            Record::Event(Event::Patch(PatchEvent {
                tid,
                nr,
                new_page,
                stub_addr: d.uvarint("stub address")?,
                stub: d.bytes("stub", MAX_PATCH_LEN)?.to_vec(),
                site: d.uvarint("patch site")?,
                site_bytes: d.bytes("patch bytes", MAX_PATCH_LEN)?.to_vec(),
                resume: d.uvarint("resume address")?,
                ahead,
                rdtsc: flags & 4 != 0,
            }))
        }
        tag::TRACEE_WRITE => {
            let tid = d.i32("tid")?;
            let target = d.i32("target tid")?;
            let kind =
                WriteKind::from_byte(d.variant("tracee write kind", WriteKind::ALL.len() as u8)?)
                    .expect("a variant below the count");
            let addr = d.uvarint("address")?;
            let at = d.pos;
            let max = if kind == WriteKind::XState {
                WriteKind::MAX_XSTATE_LEN
            } else {
                MAX_PATCH_LEN
            };
            let bytes = d.bytes("bytes written", max)?.to_vec();
            if kind == WriteKind::XState && bytes.len() < WriteKind::MIN_XSTATE_LEN {
                return d.err(
                    at,
                    format!(
                        "tracee {} of {} bytes, fewer than {}",
                        kind.name(),
                        bytes.len(),
                        WriteKind::MIN_XSTATE_LEN
                    ),
                );
            }
            if let Some(size) = kind.size().filter(|&n| n != bytes.len()) {
                return d.err(
                    at,
                    format!(
                        "tracee {} of {} bytes, not {size}",
                        kind.name(),
                        bytes.len()
                    ),
                );
            }
            Record::Event(Event::TraceeWrite {
                tid,
                target,
                kind,
                addr,
                bytes,
            })
        }
        tag::NEW_TASK => Record::Event(Event::NewTask {
            parent: d.i32("parent tid")?,
            child: d.i32("child tid")?,
            flags: d.uvarint("clone flags")?,
        }),
        tag::THREAD_EXIT => Record::Event(Event::ThreadExit { tid: d.i32("tid")? }),
        tag::PROCESS_EXIT => Record::Event(Event::ProcessExit {
            pid: d.i32("pid")?,
            status: match d.variant("exit status kind", 2)? {
                0 => ExitStatus::Exited(d.i32("exit code")?),
                _ => ExitStatus::Signaled {
                    signo: d.i32("signal number")?,
                    core: d.bool("core dump flag")?,
                },
            },
        }),
        tag::UNSUPPORTED => Record::Event(Event::Unsupported {
            tid: d.i32("tid")?,
            what: d.string("what")?,
        }),
        tag::END => Record::End {
            events: d.uvarint("event count")?,
            checksum: u64::from_le_bytes(d.fixed::<8>("checksum")?),
        },
        other => {
            return Err(DecodeError {
                pos: 0,
                reason: format!("unknown record tag {other:#04x}"),
            })
        }
    };
    d.finish()?;
    Ok(rec)
}

/// Whether `tag` is a record tag of this version.
pub fn is_known_tag(t: u8) -> bool {
    matches!(t, tag::EXEC..=tag::TRACEE_WRITE | tag::END)
}

// ---------------------------------------------------------------------------
// The stream checksum.

/// The running checksum of the stream: a 64-bit multiply-rotate hash over the
/// stream header and every record (its tag and length bytes, then its
/// payload), stored in the end record.
///
/// Each [`Checksum::update`] folds its input 8 bytes at a time, little endian,
/// with `h = (rotl(h, 5) ^ w) * 0x517cc1b727220a95`; a final partial word
/// carries its byte count in its top byte. Every step is a bijection of `h`,
/// so any single changed word changes the result. It is not cryptographic;
/// zstd's frame checksum guards the compressed file, this guards the decoded
/// stream and the end of the recording.
#[derive(Debug, Clone, Copy)]
pub struct Checksum(u64);

impl Default for Checksum {
    fn default() -> Self {
        Checksum(0xcbf2_9ce4_8422_2325)
    }
}

const CHECKSUM_MUL: u64 = 0x517c_c1b7_2722_0a95;

impl Checksum {
    #[inline]
    fn step(h: u64, w: u64) -> u64 {
        (h.rotate_left(5) ^ w).wrapping_mul(CHECKSUM_MUL)
    }

    /// Folds `data` in.
    #[inline]
    pub fn update(&mut self, data: &[u8]) {
        let mut h = self.0;
        let mut chunks = data.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h = Self::step(h, u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            w[7] = rest.len() as u8;
            h = Self::step(h, u64::from_le_bytes(w));
        }
        self.0 = h;
    }

    /// The value so far.
    pub fn value(&self) -> u64 {
        self.0
    }
}

/// The stream header bytes.
pub fn stream_header() -> [u8; STREAM_HEADER_LEN] {
    let mut h = [0u8; STREAM_HEADER_LEN];
    h[..8].copy_from_slice(&STREAM_MAGIC);
    h[8..].copy_from_slice(&STREAM_VERSION.to_le_bytes());
    h
}
