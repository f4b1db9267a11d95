//! The buffer's committed records: which are not in the trace yet
//! ([`pending_records`]), reading them and noting them flushed (the
//! recorder), and splitting an `Event::Buffered` payload back into
//! [`Record`]s that share its bytes (replay); with them, what a buffered
//! write asks to write ([`output_asked`]) and where the record in flight
//! puts its data ([`record_data_address`]).
//!
//! The buffer lives in the tracee's memory, which the program can write
//! over: nothing here may trust a size it reads without checking it.

use std::io;

use rrtest_abi::{area, header, record_flags, record_size, BufferHeader, RecordHeader, AREA_ADDR};
use rrtest_sys::RemoteMem;

use super::output::OUTPUT_TABLE_NR;
use super::{read_struct, u32_at, u64_at, Flushed, BUFFER_ADDR};

/// Bytes of records a thread's buffer holds (after its header).
pub(super) const RECORDS_CAPACITY: u64 =
    area::BUFFER_SIZE - std::mem::size_of::<BufferHeader>() as u64;

/// Bytes at the buffer's start read with its header, in one
/// `process_vm_readv`: the records of most flushes (the few syscalls a
/// thread buffered since its last event) come with it, and need no read
/// of their own. A page: the buffer is page-aligned, and always larger.
const HEAD_READ: usize = 4096;
const _: () = assert!(HEAD_READ as u64 <= area::BUFFER_SIZE);

/// Room for a buffer's first [`HEAD_READ`] bytes, which
/// [`pending_records`] reads into: the caller keeps it from one flush to
/// the next, so that a flush (one at nearly every stop) neither clears nor
/// copies a page of its own.
pub struct HeadBuf(Box<[u8; HEAD_READ]>);

impl Default for HeadBuf {
    fn default() -> Self {
        HeadBuf(Box::new([0; HEAD_READ]))
    }
}

impl std::fmt::Debug for HeadBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeadBuf")
    }
}

/// The committed records of the buffer in `tid`'s address space that are
/// not in the trace yet ([`pending_records`]); [`read_records`] reads them,
/// [`mark_flushed`] notes them written.
#[derive(Clone)]
pub struct Pending<'a> {
    /// Where their bytes start.
    pub addr: u64,
    /// Their bytes.
    pub len: usize,
    /// How many.
    pub records: u32,
    /// Whether the words asked for were read with the header.
    pub words_read: bool,
    /// The buffer header's `used` and `num_records` now.
    used: u32,
    num: u32,
    /// The buffer's first [`HEAD_READ`] bytes, header included, as read
    /// with the header.
    head: &'a [u8; HEAD_READ],
}

impl std::fmt::Debug for Pending<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("addr", &self.addr)
            .field("len", &self.len)
            .field("records", &self.records)
            .field("words_read", &self.words_read)
            .field("used", &self.used)
            .field("num", &self.num)
            .finish_non_exhaustive()
    }
}

/// Reads the buffer header in `tid`'s address space: which committed
/// records are not in the trace yet (`flushed` says how many are), with
/// the buffer's first bytes read into `head`; in the same read, the 4-byte
/// words at `addrs` into `words` (the recorder's held futex waits': one
/// syscall at a stop instead of two). `Pending::words_read` says whether
/// they were read.
pub fn pending_records<'a>(
    tid: i32,
    flushed: &mut Flushed,
    head: &'a mut HeadBuf,
    addrs: &[u64],
    words: &mut [u32],
) -> io::Result<Pending<'a>> {
    let words_read =
        RemoteMem::new(tid).read_exact_and_words(BUFFER_ADDR, &mut head.0[..], addrs, words)?;
    let head = &*head.0;
    let (used, num) = (
        u32_at(head, header::USED as usize),
        u32_at(head, header::NUM_RECORDS as usize),
    );
    // The program can write over its buffer's header like over any of its
    // memory: never trust it for a size.
    if u64::from(used) > RECORDS_CAPACITY {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the syscall buffer's header says {used} bytes are used, more than its {RECORDS_CAPACITY}: the program wrote over it"),
        ));
    }
    // A buffer emptied behind our back: start over.
    if used < flushed.bytes || num < flushed.records {
        *flushed = Flushed::default();
    }
    Ok(Pending {
        addr: BUFFER_ADDR + std::mem::size_of::<BufferHeader>() as u64 + u64::from(flushed.bytes),
        len: (used - flushed.bytes) as usize,
        records: num - flushed.records,
        words_read,
        used,
        num,
        head,
    })
}

/// Reads the bytes of `pending`'s records into `out` (`pending.len`
/// bytes): from what was read with the header where they all lie in it.
pub fn read_records(tid: i32, pending: &Pending, out: &mut [u8]) -> io::Result<()> {
    let start = pending.addr.wrapping_sub(BUFFER_ADDR) as usize;
    match start
        .checked_add(out.len())
        .and_then(|end| pending.head.get(start..end))
    {
        Some(bytes) => {
            out.copy_from_slice(bytes);
            Ok(())
        }
        None => RemoteMem::new(tid).read_exact(pending.addr, out),
    }
}

/// Notes `pending`'s records written to the trace; `reset`: and empties
/// the buffer.
pub fn mark_flushed(
    tid: i32,
    flushed: &mut Flushed,
    pending: &Pending,
    reset: bool,
) -> io::Result<()> {
    if reset {
        if pending.num != 0 {
            RemoteMem::new(tid).write(BUFFER_ADDR + header::USED, &[0; 8])?;
        }
        *flushed = Flushed::default();
    } else {
        *flushed = Flushed {
            bytes: pending.used,
            records: pending.num,
        };
    }
    Ok(())
}

/// How many records the buffer in `tid`'s address space holds now (the
/// buffered syscalls since the thread's last event; it may be running).
pub fn committed_records(tid: i32) -> io::Result<u32> {
    let mut n = [0u8; 4];
    RemoteMem::new(tid).read_exact(BUFFER_ADDR + header::NUM_RECORDS, &mut n)?;
    Ok(u32::from_le_bytes(n))
}

/// Bytes of one record, shared with the other records of its event: the
/// records of a full buffer are hundreds of thousands, and replay reads them
/// without an allocation each.
#[derive(Clone, Default)]
pub struct RecordData {
    event: std::sync::Arc<Vec<u8>>,
    range: std::ops::Range<usize>,
}

impl std::ops::Deref for RecordData {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // In range: `parse_records` checked it against the event's bytes.
        self.event.get(self.range.clone()).unwrap_or_default()
    }
}

impl From<Vec<u8>> for RecordData {
    fn from(bytes: Vec<u8>) -> Self {
        RecordData {
            range: 0..bytes.len(),
            event: std::sync::Arc::new(bytes),
        }
    }
}

impl PartialEq for RecordData {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for RecordData {}

impl std::fmt::Debug for RecordData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

/// One buffered syscall, as replay reads it back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// The syscall.
    pub nr: i64,
    /// Its result.
    pub result: i64,
    /// What it wrote to its output argument; for program output, the bytes
    /// it wrote to `output`.
    pub data: RecordData,
    /// Program output: the recorder's stream (1 or 2) it wrote `data` to.
    pub output: Option<Output>,
}

/// A buffered write to the program's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    /// 1 (stdout) or 2 (stderr).
    pub stream: i32,
    /// The bytes the program asked to write (the record's data are the
    /// ones written, `result` of them).
    pub asked: u64,
}

/// The bytes a write-family syscall `nr(args)` of the process behind
/// `mem` asks to write: its length argument, or its iovecs' total.
pub fn output_asked(mem: &RemoteMem, nr: i64, args: &[u64; 6]) -> io::Result<u64> {
    if nr == libc::SYS_write || nr == libc::SYS_pwrite64 {
        return Ok(args[2]);
    }
    // The hook buffers at most 64 iovecs.
    if args[2] > 64 {
        return Err(io::Error::other("too many iovecs"));
    }
    let mut total: u64 = 0;
    for i in 0..args[2] {
        let len = u64::from_le_bytes(read_struct(mem, args[1] + 16 * i + 8)?);
        total = total
            .checked_add(len)
            .ok_or_else(|| io::Error::other("iovec lengths overflow"))?;
    }
    Ok(total)
}

/// How many of the records in `bytes` (an `Event::Buffered` payload) are
/// an rdtsc site's synthesized TSC (`rrtest_abi::tsc`): `clock_gettime`
/// records whose output went to the alt stack, where only the hook's own
/// `timespec` lives (the program's clock reads write to its memory).
pub fn synthetic_tsc_records(bytes: &[u8]) -> u64 {
    const HDR: usize = std::mem::size_of::<RecordHeader>();
    const ALT_STACK: std::ops::Range<u64> =
        AREA_ADDR + area::GUARD_SIZE..AREA_ADDR + area::ALT_STACK_TOP;
    let mut n = 0;
    let mut at = 0;
    while bytes.len().saturating_sub(at) >= HDR {
        let nr = u16::from_le_bytes([bytes[at], bytes[at + 1]]);
        let out_len = u32_at(bytes, at + 4);
        if out_len as usize > bytes.len() - at - HDR {
            // Malformed (the tracee's memory): `parse_records` says so.
            break;
        }
        if u64::from(nr) == rrtest_abi::buffered::nr::CLOCK_GETTIME
            && ALT_STACK.contains(&u64_at(bytes, at + 16))
        {
            n += 1;
        }
        at += record_size(out_len) as usize;
    }
    n
}

/// Whether record bytes (as read from a buffer) hold a record of syscall
/// `nr`.
pub fn has_record(bytes: &[u8], nr: u64) -> bool {
    const HDR: usize = std::mem::size_of::<RecordHeader>();
    let mut at = 0;
    while bytes.len().saturating_sub(at) >= HDR {
        if u64::from(u16::from_le_bytes([bytes[at], bytes[at + 1]])) == nr {
            return true;
        }
        let out_len = u32_at(bytes, at + 4);
        if out_len as usize > bytes.len() - at - HDR {
            break;
        }
        at += record_size(out_len) as usize;
    }
    false
}

/// Splits record bytes (an `Event::Buffered` payload) into records, which
/// share them.
pub fn parse_records(records: Vec<u8>) -> Result<Vec<Record>, String> {
    const HDR: usize = std::mem::size_of::<RecordHeader>();
    let event = std::sync::Arc::new(records);
    let bytes = event.as_slice();
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if bytes.len() - at < HDR {
            return Err(format!("a record header cut short at offset {at}"));
        }
        let nr = u16::from_le_bytes([bytes[at], bytes[at + 1]]);
        let flags = u16::from_le_bytes([bytes[at + 2], bytes[at + 3]]);
        if nr == OUTPUT_TABLE_NR {
            return Err(format!("an output table among records, at offset {at}"));
        }
        let out_len = u32_at(bytes, at + 4);
        let result = u64_at(bytes, at + 8) as i64;
        let size = record_size(out_len) as usize;
        if out_len as usize > bytes.len() - at - HDR {
            return Err(format!(
                "record at offset {at} claims {out_len} output bytes, more than remain"
            ));
        }
        let output = match (flags, record_flags::stream(flags)) {
            (0, _) => None,
            (_, Some(stream)) => Some(Output {
                stream,
                asked: u64_at(bytes, at + 16),
            }),
            (_, None) => {
                return Err(format!(
                    "record at offset {at} has unknown flags {flags:#x}"
                ))
            }
        };
        out.push(Record {
            nr: i64::from(nr),
            result,
            data: RecordData {
                event: std::sync::Arc::clone(&event),
                range: at + HDR..at + HDR + out_len as usize,
            },
            output,
        });
        at = (at + size).min(bytes.len());
    }
    Ok(out)
}

/// Where the hook of thread `tid` has pointed the output of the buffered
/// syscall it is making: the data of the record it is writing, after the
/// buffer's committed records (for `readv` too, whose output the hook
/// scatters afterwards).
pub fn record_data_address(tid: i32) -> io::Result<u64> {
    let mut used = [0u8; 4];
    RemoteMem::new(tid).read_exact(BUFFER_ADDR + header::USED, &mut used)?;
    Ok(BUFFER_ADDR
        + std::mem::size_of::<BufferHeader>() as u64
        + u64::from(u32::from_le_bytes(used))
        + std::mem::size_of::<RecordHeader>() as u64)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::tracee::syscallbuf) fn record(nr: u32, result: i64, data: &[u8]) -> Vec<u8> {
        flagged(nr, 0, 0, result, data)
    }

    fn flagged(nr: u32, flags: u16, asked: u64, result: i64, data: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&(nr as u16).to_le_bytes());
        b.extend_from_slice(&flags.to_le_bytes());
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(&result.to_le_bytes());
        b.extend_from_slice(&asked.to_le_bytes());
        b.extend_from_slice(data);
        while b.len() % 8 != 0 {
            b.push(0);
        }
        b
    }

    #[test]
    fn records_read_with_the_header_come_from_it() {
        // No such thread: only what was read with the header can answer.
        let nobody = i32::MAX - 7;
        let mut head = [0u8; HEAD_READ];
        let first = BUFFER_ADDR + std::mem::size_of::<BufferHeader>() as u64;
        let rec = record(202, 0, &[5; 8]);
        head[32..32 + rec.len()].copy_from_slice(&rec);
        let pending = Pending {
            addr: first,
            len: rec.len(),
            records: 1,
            words_read: false,
            used: rec.len() as u32,
            num: 1,
            head: &head,
        };
        let mut out = vec![0u8; rec.len()];
        read_records(nobody, &pending, &mut out).expect("from the header's read");
        assert_eq!(out, rec);
        // Records reaching past it are read from the thread's memory.
        let past = Pending {
            addr: BUFFER_ADDR + HEAD_READ as u64 - 8,
            len: 16,
            ..pending
        };
        let mut out = vec![0u8; 16];
        assert!(read_records(nobody, &past, &mut out).is_err());
    }

    #[test]
    fn synthesized_tsc_records_are_clock_reads_into_the_alt_stack() {
        let alt_stack = AREA_ADDR + area::ALT_STACK_TOP - 0x100;
        let program = 0x7ffc_0000_1000;
        // `out_addr` is the user pointer for ordinary records.
        let mut bytes = flagged(228, 0, alt_stack, 0, &[1; 16]);
        bytes.extend(flagged(228, 0, program, 0, &[2; 16]));
        bytes.extend(flagged(0, 0, alt_stack, 3, b"abc"));
        bytes.extend(flagged(228, 0, alt_stack, 0, &[3; 16]));
        bytes.extend(flagged(
            228,
            0,
            AREA_ADDR + area::ALT_STACK_TOP,
            0,
            &[4; 16],
        ));
        assert_eq!(synthetic_tsc_records(&bytes), 2);
        assert_eq!(synthetic_tsc_records(&[]), 0);
        // A cut-short record is not counted (nor read past), nor one that
        // claims more output than there is.
        assert_eq!(synthetic_tsc_records(&bytes[..20]), 0);
        let mut huge = flagged(228, 0, alt_stack, 0, &[]);
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(synthetic_tsc_records(&huge), 0);
    }

    #[test]
    fn records_parse_back() {
        let mut bytes = record(39, 1234, &[]);
        bytes.extend(record(0, 3, b"abc"));
        bytes.extend(record(228, 0, &[7; 16]));
        let recs = parse_records(bytes.clone()).expect("well-formed");
        assert_eq!(
            recs,
            vec![
                Record {
                    nr: 39,
                    result: 1234,
                    ..Record::default()
                },
                Record {
                    nr: 0,
                    result: 3,
                    data: b"abc".to_vec().into(),
                    output: None,
                },
                Record {
                    nr: 228,
                    result: 0,
                    data: vec![7; 16].into(),
                    output: None,
                },
            ]
        );
    }

    #[test]
    fn output_records_parse_back_with_their_stream() {
        let mut bytes = flagged(1, record_flags::STDOUT, 12, 5, b"hello");
        bytes.extend(flagged(20, record_flags::STDERR, 3, -32, &[]));
        let recs = parse_records(bytes.clone()).expect("well-formed");
        assert_eq!(
            recs[0].output,
            Some(Output {
                stream: 1,
                asked: 12
            })
        );
        assert_eq!((recs[0].nr, &recs[0].data[..]), (1, &b"hello"[..]));
        assert_eq!(
            recs[1].output,
            Some(Output {
                stream: 2,
                asked: 3
            })
        );
        assert!(parse_records(flagged(1, 0x40, 1, 1, b"x")).is_err());
    }

    #[test]
    fn malformed_records_are_errors() {
        let good = record(0, 3, b"abc");
        assert!(parse_records(good[..10].to_vec()).is_err());
        let mut lying = good.clone();
        lying[4..8].copy_from_slice(&100u32.to_le_bytes());
        assert!(parse_records(lying.clone()).is_err());
        assert_eq!(parse_records(Vec::new()).expect("empty"), vec![]);
    }
}
