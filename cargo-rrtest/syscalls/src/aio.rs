//! Linux native AIO (`io_setup` .. `io_cancel`), the synchronous case.
//!
//! `io_setup` maps a completion ring into the program (`[aio]` in its
//! maps) and stores the ring's address in `*ctxp`: the ring is recorded as
//! a mapping with its contents, as `shmat` records a segment, and replay
//! maps anonymous read-write memory there and writes them
//! (`replayer/inject.rs`); `io_destroy` unmaps it. The ring starts with a
//! 32-byte `struct aio_ring` header (`id`, `nr`, `head`, `tail`, `magic`,
//! ...), followed by `nr` 32-byte `struct io_event`s; the mapping is
//! exactly the pages those take. Programs (libaio) read `head` and `tail`
//! and the events in place, so every call that changes them records the
//! bytes it changed.
//!
//! Reads and writes of regular files without `O_DIRECT` complete inside
//! `io_submit`: their events are in the ring, and their read buffers
//! filled, when it returns, so replay can write what the recording saw.
//! An iocb still in flight when `io_submit` returns (`O_DIRECT`, a pipe or
//! socket that blocks, `IOCB_CMD_POLL`) would complete behind the
//! recorder's back: refused, named, as is `IOCB_FLAG_RESFD` (the kernel
//! signals an eventfd of the program's).
//!
//! `io_pgetevents` is `io_getevents` with a signal mask swapped in while
//! it waits: the same outputs (the mask is only read).
//!
//! The 32-bit calls (`int $0x80`) share this code, the ABI's differences
//! given by an [`Abi`]: `compat_sys_io_setup` stores the ring's address
//! as a 32-bit value (the kernel maps the ring below 4 GiB for a 32-bit
//! call), and `compat_sys_io_submit` reads an array of 32-bit iocb
//! pointers; `struct iocb` and `struct io_event` are one fixed layout for
//! both ABIs (an event's `obj` is the iocb's address zero-extended), and
//! a 32-bit `PREADV`'s iovecs are `compat_iovec`s, which [`scatter`]
//! reads by the call's number.

use super::outputs::{push, read_u32, read_u64, scatter};
use super::{Call, MemReader, Region, Unsupported};

/// `io_pgetevents`' x86-64 number (the `libc` crate has none).
pub const SYS_IO_PGETEVENTS: i64 = 333;

/// `struct aio_ring`'s size, and where its fields are.
pub(crate) const RING_HEADER: u64 = 32;
const RING_NR: u64 = 4;
const RING_TAIL: u64 = 12;
const RING_MAGIC: u64 = 16;
/// `AIO_RING_MAGIC`.
pub(crate) const AIO_RING_MAGIC: u32 = 0xa10a_10a1;
/// `struct io_event`'s size; its `obj` (the iocb's address) at 8, `res` at 16.
pub(crate) const IO_EVENT: u64 = 32;
const EVENT_DATA: u64 = 0;
const EVENT_OBJ: u64 = 8;
const EVENT_RES: u64 = 16;
/// `struct iocb`'s fields: `aio_data` at 0, `aio_key` (which
/// `io_submit` sets to 0) at 8.
const IOCB_DATA: u64 = 0;
const IOCB_KEY: u64 = 8;
const IOCB_OPCODE: u64 = 16;
const IOCB_BUF: u64 = 24;
const IOCB_NBYTES: u64 = 32;
const IOCB_FLAGS: u64 = 56;
/// `aio_lio_opcode`s.
pub(crate) const IOCB_CMD_PREAD: u16 = 0;
pub(crate) const IOCB_CMD_PWRITE: u16 = 1;
pub(crate) const IOCB_CMD_FSYNC: u16 = 2;
pub(crate) const IOCB_CMD_FDSYNC: u16 = 3;
pub(crate) const IOCB_CMD_PREADV: u16 = 7;
pub(crate) const IOCB_CMD_PWRITEV: u16 = 8;
/// `aio_flags`: notify an eventfd at completion.
pub(crate) const IOCB_FLAG_RESFD: u32 = 1;
/// Rings larger than this are not copied into the trace.
const MAX_RING: u64 = 64 << 20;

/// What the AIO calls of one ABI read and store differently: the size of
/// the context `io_setup` stores at `*ctxp` and of each pointer in
/// `io_submit`'s iocb array (8 bytes for x86-64, 4 for a 32-bit caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Abi {
    word: u64,
}

/// The x86-64 calls: an 8-byte `aio_context_t`, 8-byte iocb pointers.
pub(crate) const X86_64: Abi = Abi { word: 8 };
/// The 32-bit calls (`compat_sys_io_setup`, `compat_sys_io_submit`): a
/// 4-byte context, 4-byte `compat_uptr_t` iocb pointers.
pub(crate) const I386: Abi = Abi { word: 4 };

impl Abi {
    /// The `word`-sized value at `at`, zero-extended.
    fn read(self, c: &Call, mem: &dyn MemReader, at: u64, what: &str) -> Result<u64, Unsupported> {
        if self.word == 4 {
            read_u32(c, mem, at, what).map(u64::from)
        } else {
            read_u64(c, mem, at, what)
        }
    }
}

/// Set in `io_submit`'s fourth argument register (which it does not use)
/// when its ring's tail was read at the call's entry ([`io_submit_entry`]):
/// the tail is in the low 32 bits.
pub(crate) const TAIL_READ: u64 = 1 << 32;

/// `io_submit(ctx, nr, iocbpp)`'s arguments with the tail of the ring at
/// `ctx` as the call begins, read at its entry, in the fourth register
/// (`TAIL_READ` set): the exit then knows where the call's events start.
/// Its registers as they are where the ring cannot be read.
pub(crate) fn io_submit_entry(mem: &dyn MemReader, args: [u64; 6]) -> [u64; 6] {
    let mut tail = [0u8; 4];
    match mem.read(args[0] + RING_TAIL, &mut tail) {
        Ok(()) => {
            let mut with = args;
            with[3] = TAIL_READ | u64::from(u32::from_le_bytes(tail));
            with
        }
        Err(_) => args,
    }
}

/// The ring at `ctx`: its `nr` (events it holds), checked against its magic.
fn ring_nr(c: &Call, mem: &dyn MemReader, ctx: u64) -> Result<u64, Unsupported> {
    let magic = read_u32(c, mem, ctx + RING_MAGIC, "the AIO ring's magic")?;
    if magic != AIO_RING_MAGIC {
        return Err(Unsupported(format!(
            "{}: the AIO ring at {ctx:#x} has magic {magic:#x}, not {AIO_RING_MAGIC:#x}",
            super::name(c.nr)
        )));
    }
    let nr = u64::from(read_u32(c, mem, ctx + RING_NR, "the AIO ring's size")?);
    if nr == 0 || RING_HEADER + nr * IO_EVENT > MAX_RING {
        return Err(Unsupported(format!(
            "{}: an AIO ring of {nr} events is not recorded",
            super::name(c.nr)
        )));
    }
    Ok(nr)
}

/// `io_setup(nr_events, ctxp)`: `*ctxp`, and the whole ring it names (the
/// mapping: its header and `nr` events fill whole pages).
pub(crate) fn io_setup(
    c: &Call,
    mem: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    setup(c, mem, out, X86_64)
}

/// The 32-bit `io_setup(nr_events, ctx32p)`: as [`io_setup`], the context
/// a 32-bit value.
pub(crate) fn io_setup32(
    c: &Call,
    mem: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    setup(c, mem, out, I386)
}

/// [`io_setup`] of ABI `abi`: the context at `ctxp` (`abi`'s size) and
/// the whole ring it names.
fn setup(
    c: &Call,
    mem: &dyn MemReader,
    out: &mut Vec<Region>,
    abi: Abi,
) -> Result<(), Unsupported> {
    if c.ret < 0 {
        return Ok(());
    }
    push(out, c.args[1], abi.word);
    let ctx = abi.read(c, mem, c.args[1], "the AIO context")?;
    let nr = ring_nr(c, mem, ctx)?;
    push(out, ctx, RING_HEADER + nr * IO_EVENT);
    Ok(())
}

/// The ring's events in slots `from .. from + n` (modulo `nr`), as one or
/// two regions (the second when they wrap).
fn ring_slots(out: &mut Vec<Region>, ctx: u64, nr: u64, from: u64, n: u64) {
    let first = n.min(nr - from);
    push(out, ctx + RING_HEADER + from * IO_EVENT, first * IO_EVENT);
    push(out, ctx + RING_HEADER, (n - first) * IO_EVENT);
}

/// `io_submit(ctx, nr, iocbpp)`: the first `ret` iocbs were accepted. Each
/// must have completed, its event (its `obj` the iocb's address, its
/// `data` the iocb's `aio_data`) among the `ret` the ring's tail moved
/// past, in order; the ring's header, those events, each iocb's `aio_key`
/// (the kernel zeroes it) and each read's buffers (as many bytes as its
/// event's `res`) are the outputs.
///
/// Without the tail from before the call, an event left in the ring by an
/// earlier submit of the same iocb with the same `aio_data`, sitting just
/// where this submit's event would be, is not told from a new one.
pub(crate) fn io_submit(
    c: &Call,
    mem: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    submit(c, mem, out, X86_64)
}

/// The 32-bit `io_submit(ctx, nr, iocbpp)`: as [`io_submit`], `iocbpp` an
/// array of 32-bit iocb pointers.
pub(crate) fn io_submit32(
    c: &Call,
    mem: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    submit(c, mem, out, I386)
}

/// [`io_submit`] of ABI `abi`: `iocbpp` holds `abi`-sized pointers.
fn submit(
    c: &Call,
    mem: &dyn MemReader,
    out: &mut Vec<Region>,
    abi: Abi,
) -> Result<(), Unsupported> {
    if c.ret <= 0 {
        return Ok(());
    }
    let name = super::name(c.nr);
    let (ctx, n, iocbpp) = (c.args[0], c.ret as u64, c.args[2]);
    let nr = ring_nr(c, mem, ctx)?;
    let tail = u64::from(read_u32(c, mem, ctx + RING_TAIL, "the AIO ring's tail")?);
    if tail >= nr || n > nr {
        return Err(Unsupported(format!(
            "{name}: the AIO ring's tail {tail} or the {n} iocbs accepted do not fit its {nr} events"
        )));
    }
    // Where the call's events start: at the tail read at its entry (the
    // tail it must have moved by one event per accepted iocb: checked
    // below), or, where that could not be read, the last `n` before the
    // tail.
    let before = (c.args[3] & TAIL_READ != 0).then_some(u64::from(c.args[3] as u32));
    let from = match before {
        Some(b) if b < nr => b,
        Some(b) => {
            return Err(Unsupported(format!(
                "{name}: the AIO ring's tail was {b} at the call's entry, past its {nr} events"
            )))
        }
        None => (tail + nr - n) % nr,
    };
    let mut reads = Vec::new();
    for i in 0..n {
        let iocb = abi.read(c, mem, iocbpp + abi.word * i, "an iocb pointer")?;
        let mut op = [0; 2];
        mem.read(iocb + IOCB_OPCODE, &mut op).map_err(|e| {
            Unsupported(format!(
                "{name}: cannot read the iocb at {iocb:#x} after the call: {e}"
            ))
        })?;
        let opcode = u16::from_le_bytes(op);
        let flags = read_u32(c, mem, iocb + IOCB_FLAGS, "an iocb's flags")?;
        if flags & IOCB_FLAG_RESFD != 0 {
            return Err(Unsupported(format!(
                "{name} with IOCB_FLAG_RESFD (an eventfd notified at completion) is not recorded"
            )));
        }
        let slot = ctx + RING_HEADER + (from + i) % nr * IO_EVENT;
        let obj = read_u64(c, mem, slot + EVENT_OBJ, "an AIO event")?;
        let data = read_u64(c, mem, slot + EVENT_DATA, "an AIO event")?;
        let want = read_u64(c, mem, iocb + IOCB_DATA, "an iocb's aio_data")?;
        if obj != iocb || data != want {
            return Err(Unsupported(format!(
                "{name}: iocb {i} of {n} (opcode {opcode}) had not completed when io_submit returned (O_DIRECT, a pipe, a socket or a poll complete later): asynchronous AIO completions are not recorded"
            )));
        }
        let res = read_u64(c, mem, slot + EVENT_RES, "an AIO event's result")? as i64;
        match opcode {
            IOCB_CMD_PREAD | IOCB_CMD_PREADV if res > 0 => reads.push((iocb, opcode, res as u64)),
            IOCB_CMD_PREAD | IOCB_CMD_PREADV | IOCB_CMD_PWRITE | IOCB_CMD_PWRITEV
            | IOCB_CMD_FSYNC | IOCB_CMD_FDSYNC => {}
            op => {
                return Err(Unsupported(format!(
                    "{name}: iocb opcode {op} is not recorded"
                )))
            }
        }
    }
    if let Some(b) = before.filter(|&b| (b + n) % nr != tail) {
        // Each iocb's event is in its place, and yet the tail moved by
        // more: an earlier submission completed during the call.
        return Err(Unsupported(format!(
            "{name}: the AIO ring's tail went from {b} to {tail} for the {n} iocbs accepted: events of earlier submissions came during the call (asynchronous AIO completions are not recorded)"
        )));
    }
    push(out, ctx, RING_HEADER);
    ring_slots(out, ctx, nr, from, n);
    for i in 0..n {
        let iocb = abi.read(c, mem, iocbpp + abi.word * i, "an iocb pointer")?;
        push(out, iocb + IOCB_KEY, 4);
    }
    for (iocb, opcode, res) in reads {
        let buf = read_u64(c, mem, iocb + IOCB_BUF, "an iocb's buffer")?;
        let len = read_u64(c, mem, iocb + IOCB_NBYTES, "an iocb's length")?;
        if opcode == IOCB_CMD_PREAD {
            push(out, buf, res.min(len));
        } else {
            scatter(c, mem, buf, len, res, out)?;
        }
    }
    Ok(())
}

/// `io_getevents(ctx, min_nr, nr, events, timeout)`: `ret` events copied
/// out, and the ring's header (its head moved). So for `io_pgetevents`
/// (its sixth argument, a signal mask and its size, only read) and the
/// 32-bit calls (a 32-bit or 64-bit timespec and a 32-bit mask pointer,
/// only read; the same `io_event`s).
pub(crate) fn io_getevents(
    c: &Call,
    _: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret < 0 {
        return Ok(());
    }
    push(out, c.args[3], (c.ret as u64).saturating_mul(IO_EVENT));
    push(out, c.args[0], RING_HEADER);
    Ok(())
}
