//! Appending records to the running thread's syscall buffer.
//!
//! [`buffer_syscall`] is the whole record protocol (layouts in `rrtest_abi`):
//!
//! 1. bail if the recorder asked for it (`force_bail`); look the syscall up
//!    in [`crate::table`]; bail if it is not buffered, if it closes a
//!    descriptor of the output table (the recorder keeps the table), if it
//!    may block and the locals say no desched (-1), or if its output
//!    pointer is null. A write to a descriptor of the output table is
//!    program output ([`buffer_output`]); one to fd 1 or 2 when they are not
//!    in the table bails (the recorder decides at the traced write);
//! 2. reserve the largest record it can produce; bail if it does not fit;
//! 3. set `in_flight`, redirect the output pointer into the record, perform
//!    the syscall through the untraced gate (bracketed by the desched
//!    event's enable/disable ioctls when it may block);
//! 4. if the recorder set `abort_commit` meanwhile (it unwound the thread),
//!    discard the record and bail: the stub re-issues the syscall traced;
//! 5. otherwise write the record header, copy the output to the user's
//!    pointer, commit (`used`, `num_records`), clear `in_flight`.
//!
//! It is generic over [`Kernel`] so that tests run it against a fake kernel.

use core::ptr::{addr_of_mut, read_volatile, write_volatile};

use rrtest_abi::{
    record_flags, record_size, BufferHeader, OutputFd, RecordHeader, ThreadLocals, BUFFER_MAGIC,
};

use crate::gate::Kernel;
use crate::table::{
    args_ok, nr, output_write, plan_for, writes_to_fd, OutputWrite, OUTPUT_WRITE_MAX,
};
use crate::user;

/// `PERF_EVENT_IOC_ENABLE`.
pub const PERF_EVENT_IOC_ENABLE: u64 = 0x2400;
/// `PERF_EVENT_IOC_DISABLE`.
pub const PERF_EVENT_IOC_DISABLE: u64 = 0x2401;

const HEADER_SIZE: u64 = core::mem::size_of::<BufferHeader>() as u64;
const RECORD_HEADER_SIZE: u64 = core::mem::size_of::<RecordHeader>() as u64;

/// Why the hook bailed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BailReason {
    /// The recorder set `force_bail`: it wants the thread at a syscall stop.
    Forced,
    /// The syscall is not in the buffered set.
    NotBuffered,
    /// A write to fd 1 or 2 that the output table does not name, or one to
    /// a listed descriptor the hook does not buffer (`sendto`, `sendmsg`,
    /// stream 0, too many iovecs): the recorder captures it traced. Or a
    /// `close` of a listed descriptor: the recorder updates the table.
    ProgramOutput,
    /// It may block and there is no desched event to unwind it.
    MayBlockUnarmed,
    /// Its output can never fit in a buffer.
    TooLarge,
    /// The buffer has no room left (the traced syscall flushes it).
    Full,
    /// The recorder aborted the record (unwinding).
    Aborted,
    /// A read into the record failed with EINVAL: a descriptor opened with
    /// `O_DIRECT` needs the buffer aligned as the program's is and the
    /// record's is not. The failed attempt is committed (replay's gate
    /// answers it the same way), and the stub issues the call again, traced,
    /// on the program's own buffer.
    Misaligned,
    /// Memory the program named cannot be read (a name, an array, iovecs,
    /// a message header) or its output cannot be written (its first or
    /// last byte): the kernel answers `EFAULT`, traced, doing exactly what
    /// it would have done natively (a pipe's bytes are not consumed).
    BadAddress,
}

/// The hook's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Performed and recorded; the syscall's result.
    Done(i64),
    /// Not performed; run it traced.
    Bail(BailReason),
}

/// A syscall buffer in memory: a [`BufferHeader`] and its records.
#[derive(Debug)]
pub struct Buffer {
    header: *mut BufferHeader,
    /// Record bytes available after the header.
    capacity: u64,
}

impl Buffer {
    /// The buffer the locals name, if any and well-formed.
    ///
    /// # Safety
    /// `tl.buffer`, when not 0, must point to `tl.buffer_size` writable
    /// bytes, 8-byte aligned, that nothing else writes while the hook runs.
    pub unsafe fn from_locals(tl: &ThreadLocals) -> Option<Buffer> {
        if tl.buffer == 0 || !tl.buffer.is_multiple_of(8) || tl.buffer_size < HEADER_SIZE {
            return None;
        }
        let header = tl.buffer as *mut BufferHeader;
        // SAFETY: the caller vouches for the memory.
        let (magic, capacity) = unsafe {
            (
                read_volatile(addr_of_mut!((*header).magic)),
                read_volatile(addr_of_mut!((*header).capacity)),
            )
        };
        if magic != BUFFER_MAGIC {
            return None;
        }
        let capacity = u64::from(capacity).min(tl.buffer_size - HEADER_SIZE);
        Some(Buffer { header, capacity })
    }

    /// Whether the locals' `bail_after` budget (0: none) is spent: the
    /// buffer holds that many records (the thread's buffered syscalls
    /// since its last event). Then every syscall bails.
    pub fn budget_spent(&self, bail_after: u32) -> bool {
        // SAFETY: `Buffer` guarantees the header is valid memory.
        let n = unsafe { read_volatile(addr_of_mut!((*self.header).num_records)) };
        rrtest_abi::budget_spent(n, bail_after)
    }

    fn records(&self) -> *mut u8 {
        // SAFETY (of later uses): records follow the header.
        (self.header as *mut u8).wrapping_add(HEADER_SIZE as usize)
    }
}

/// Copies `len` bytes without calling `memcpy` (which would be a libc
/// import): `rep movsb`, fast on every current x86-64.
///
/// # Safety
/// Both ranges valid for `len` bytes and not overlapping.
pub unsafe fn copy_bytes(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: forwarded contract; DF is clear (the stub executes `cld`, and
    // the SysV ABI guarantees it elsewhere).
    unsafe {
        core::arch::asm!(
            "rep movsb",
            inout("rdi") dst => _,
            inout("rsi") src => _,
            inout("rcx") len => _,
            options(nostack, preserves_flags)
        );
    }
}

/// Performs and records syscall `nr` with `args` in `buf` (see the module
/// doc), issuing syscalls through `kernel`.
pub fn buffer_syscall_with<K: Kernel>(
    buf: &Buffer,
    nr: u64,
    args: [u64; 6],
    kernel: &mut K,
    desched_fd: i32,
    output_fds: &[OutputFd],
) -> Outcome {
    let h = buf.header;
    // SAFETY: `Buffer` guarantees the header is valid memory.
    if unsafe { read_volatile(addr_of_mut!((*h).force_bail)) } != 0 {
        return Outcome::Bail(BailReason::Forced);
    }
    let Some(plan) = plan_for(nr) else {
        return Outcome::Bail(BailReason::NotBuffered);
    };
    if !args_ok(nr, &args) {
        return Outcome::Bail(BailReason::NotBuffered);
    }
    if plan.may_block && desched_fd == -1 {
        return Outcome::Bail(BailReason::MayBlockUnarmed);
    }
    if writes_to_fd(nr) || nr == nr::CLOSE {
        // The descriptor's stream, if the output table lists it.
        let listed = output_fds
            .iter()
            .find(|e| e.fd >= 0 && e.fd as u64 == args[0])
            .map(|e| e.stream);
        match (listed, output_write(nr)) {
            (Some(OutputFd::NOT_OUTPUT), _) if nr != nr::CLOSE => {}
            (Some(stream), Some(shape)) if record_flags::of_stream(stream) != 0 => {
                let flags = record_flags::of_stream(stream);
                let out = OutputTarget { shape, flags };
                return buffer_output(buf, nr, args, kernel, desched_fd, out);
            }
            // Another write to it (stream 0, sendto, sendmsg), or its close.
            (Some(_), _) => return Outcome::Bail(BailReason::ProgramOutput),
            (None, _) if nr != nr::CLOSE && (args[0] == 1 || args[0] == 2) => {
                return Outcome::Bail(BailReason::ProgramOutput)
            }
            (None, _) => {}
        }
    }
    // A null output pointer means no output: none at all for a nullable
    // one (`time(NULL)`), else the kernel's EFAULT (Rust's standard library
    // probes `statx` so) with nothing written. The syscall gets the null
    // pointer, not the record.
    let output = plan
        .output
        .filter(|o| args.get(o.ptr_arg).copied().unwrap_or(0) != 0);
    // readv and recvmsg: the output is scattered over the program's
    // iovecs; the kernel reads into the record through one iovec of ours
    // (for recvmsg, a message header of ours at the record's start, whose
    // flags the kernel fills), and the hook scatters the bytes.
    let vectored = match nr {
        nr::READV => match Iovecs::read(args[1], args[2]) {
            Ok(iovecs) => Some(Vectored {
                iovecs,
                prefix: 0,
                msg: 0,
            }),
            Err(why) => return Outcome::Bail(why),
        },
        nr::RECVMSG => match recvmsg_iovecs(args[1]) {
            Ok(iovecs) => Some(Vectored {
                iovecs,
                prefix: MSG_PREFIX,
                msg: args[1],
            }),
            Err(why) => return Outcome::Bail(why),
        },
        _ => None,
    };
    let (max_out, user_ptr) = match (output, vectored) {
        (None, Some(v)) => (v.prefix.saturating_add(v.iovecs.total), args[1]),
        (output, _) => match output {
            None => (0u64, 0u64),
            Some(o) => {
                let len = o.len.max(&args);
                let ptr = args.get(o.ptr_arg).copied().unwrap_or(0);
                (len, ptr)
            }
        },
    };
    if max_out > buf.capacity.saturating_sub(RECORD_HEADER_SIZE) {
        return Outcome::Bail(BailReason::TooLarge);
    }
    // SAFETY: `Buffer` guarantees the header is valid memory.
    let used = u64::from(unsafe { read_volatile(addr_of_mut!((*h).used)) });
    let need = u64::from(record_size(max_out as u32));
    if used > buf.capacity || need > buf.capacity - used {
        return Outcome::Bail(BailReason::Full);
    }
    let record = buf.records().wrapping_add(used as usize) as *mut RecordHeader;
    let data = (record as *mut u8).wrapping_add(RECORD_HEADER_SIZE as usize);

    // Where the kernel would fail to read or write the program's memory,
    // it answers EFAULT: traced, so that it does exactly what it would have
    // done (consumes nothing, changes nothing).
    if let Some(o) = output {
        // SAFETY: the record has room for `max_out` bytes (checked above);
        // the program's array may be bad.
        if o.in_out && unsafe { user::copy(data, user_ptr as *const u8, max_out as usize) } != 0 {
            return Outcome::Bail(BailReason::BadAddress);
        }
        if !user::ends_writable(user_ptr, max_out) {
            return Outcome::Bail(BailReason::BadAddress);
        }
    }
    if let Some(v) = &vectored {
        // recvmsg writes its header's flags and control length back.
        let header_ok = v.msg == 0
            || user::ends_writable(
                v.msg.wrapping_add(MSG_CONTROLLEN as u64),
                (MSG_FLAGS + 4 - MSG_CONTROLLEN) as u64,
            );
        if !header_ok || !v.iovecs.ends_writable() {
            return Outcome::Bail(BailReason::BadAddress);
        }
    }

    // SAFETY: header fields of a valid buffer.
    unsafe { write_volatile(addr_of_mut!((*h).in_flight), 1) };
    let mut sys_args = args;
    let ours: [u64; 2] = [data as u64, max_out];
    match &vectored {
        Some(v) if v.prefix == 0 => {
            sys_args[1] = ours.as_ptr() as u64;
            sys_args[2] = 1;
        }
        Some(v) => {
            // SAFETY: the record has room for the prefix (reserved and
            // checked above: `max_out` includes it).
            unsafe { write_msg_prefix(data, v.iovecs.total) };
            sys_args[1] = data as u64;
        }
        None => {}
    }
    if let Some(o) = output {
        if let Some(slot) = sys_args.get_mut(o.ptr_arg) {
            *slot = data as u64;
        }
    }
    let fd = desched_fd as u64;
    let armed = plan.may_block && desched_fd >= 0;
    if armed {
        kernel.untraced(nr::IOCTL, [fd, PERF_EVENT_IOC_ENABLE, 0, 0, 0, 0]);
    }
    let result = kernel.untraced(nr, sys_args);
    if armed {
        kernel.untraced(nr::IOCTL, [fd, PERF_EVENT_IOC_DISABLE, 0, 0, 0, 0]);
    }

    if take_abort(buf) {
        return Outcome::Bail(BailReason::Aborted);
    }

    let copied = match (output, &vectored) {
        // readv: the bytes read; recvmsg: the header (with its flags) too,
        // even for an empty message.
        (None, Some(v)) if result > 0 || (result == 0 && v.prefix > 0) => {
            v.prefix + (result as u64).min(v.iovecs.total)
        }
        (None, _) => 0,
        (Some(o), _) => o.len.written(result, max_out),
    };
    // SAFETY: the record lies within the reserved space (`need` bytes at
    // `record`, checked above).
    unsafe {
        write_volatile(
            record,
            RecordHeader {
                nr: nr as u16,
                flags: 0,
                out_len: copied as u32,
                result,
                out_addr: if copied > 0 { user_ptr } else { 0 },
            },
        );
    }
    // The output to the program's memory. A fault (a hole between its first
    // and last byte, which the checks above passed) makes the answer
    // EFAULT, as the kernel's failed copy to the user would; the bytes
    // before the fault are written. The record keeps the kernel's result
    // and output: replay's hook gets them again, makes the same copy, meets
    // the same fault and answers the same.
    let delivered = match (&vectored, copied > 0) {
        (_, false) => true,
        (Some(v), true) => {
            let mut ok = true;
            if v.prefix > 0 {
                // The flags the kernel wrote in our header, and no control
                // data, as it would have written them in the program's.
                // SAFETY: the prefix lies within the record.
                let flags = unsafe { read_volatile(data.wrapping_add(MSG_FLAGS) as *const u32) };
                ok = user::write_bytes(
                    user_ptr.wrapping_add(MSG_FLAGS as u64),
                    &flags.to_le_bytes(),
                ) && user::write_bytes(
                    user_ptr.wrapping_add(MSG_CONTROLLEN as u64),
                    &0u64.to_le_bytes(),
                );
            }
            ok && v
                .iovecs
                .scatter(data.wrapping_add(v.prefix as usize), copied - v.prefix)
        }
        // SAFETY: the record holds `copied` bytes at `data`; the program's
        // side may be bad.
        (None, true) => unsafe { user::copy(user_ptr as *mut u8, data, copied as usize) == 0 },
    };
    commit(buf, used, copied);
    if !delivered {
        return Outcome::Done(-EFAULT);
    }
    if result == -EINVAL && redirects_read(nr) {
        return Outcome::Bail(BailReason::Misaligned);
    }
    Outcome::Done(result)
}

/// `EFAULT`, as a syscall returns it negated.
const EFAULT: i64 = 14;

/// `EINVAL`, as a syscall returns it negated.
const EINVAL: i64 = 22;

/// Whether the hook reads into its record rather than the program's
/// buffer for `nr`: a file read, which `O_DIRECT` refuses with EINVAL when
/// the record is not aligned as the device needs.
fn redirects_read(nr: u64) -> bool {
    matches!(nr, nr::READ | nr::PREAD64 | nr::READV)
}

/// If the recorder set `abort_commit` (it unwound the thread while in the
/// syscall): clears it, counts it in `aborted`, clears `in_flight`, and
/// returns true (the record is discarded; the hook bails).
fn take_abort(buf: &Buffer) -> bool {
    let h = buf.header;
    // SAFETY: header fields of a valid buffer.
    unsafe {
        if read_volatile(addr_of_mut!((*h).abort_commit)) == 0 {
            return false;
        }
        write_volatile(addr_of_mut!((*h).abort_commit), 0);
        let aborted = read_volatile(addr_of_mut!((*h).aborted));
        write_volatile(addr_of_mut!((*h).aborted), aborted.wrapping_add(1));
        write_volatile(addr_of_mut!((*h).in_flight), 0);
    }
    true
}

/// Commits the record at `used` with `out_len` bytes of data (its header
/// written): bumps `used` and `num_records`, clears `in_flight`.
fn commit(buf: &Buffer, used: u64, out_len: u64) {
    let h = buf.header;
    // SAFETY: header fields of a valid buffer.
    unsafe {
        let committed = used + u64::from(record_size(out_len as u32));
        write_volatile(addr_of_mut!((*h).used), committed as u32);
        let n = read_volatile(addr_of_mut!((*h).num_records));
        write_volatile(addr_of_mut!((*h).num_records), n.wrapping_add(1));
        write_volatile(addr_of_mut!((*h).in_flight), 0);
    }
}

/// Where a write to the program's output goes, as the output table says.
#[derive(Debug, Clone, Copy)]
struct OutputTarget {
    /// How the syscall passes its bytes.
    shape: OutputWrite,
    /// The record's flags: the stream.
    flags: u16,
}

/// A write to the program's output (a descriptor of the output table that
/// reaches the recorder's stdout or stderr): performed on the program's
/// own buffers, then the bytes the kernel took (the result, at most the
/// length asked for) are copied into the record, which is flagged with the
/// stream and keeps the length asked for in `out_addr`. Replay writes them
/// to its own stdout or stderr.
///
/// Copying after the syscall rather than before: the kernel has read those
/// bytes, so the copy cannot fault (a bad pointer is the kernel's `EFAULT`,
/// as without the hook). A partial write (a signal, a full pipe the
/// recorder interrupts) records what was written; a write that blocked
/// before writing anything is unwound like any may-block syscall
/// (`abort_commit`) and issued again, traced.
fn buffer_output<K: Kernel>(
    buf: &Buffer,
    nr: u64,
    args: [u64; 6],
    kernel: &mut K,
    desched_fd: i32,
    out: OutputTarget,
) -> Outcome {
    let iovecs = match out.shape {
        OutputWrite::Contiguous => None,
        OutputWrite::Vectored => match Iovecs::read(args[1], args[2]) {
            Ok(iovecs) => Some(iovecs),
            Err(BailReason::NotBuffered) => return Outcome::Bail(BailReason::ProgramOutput),
            Err(why) => return Outcome::Bail(why),
        },
    };
    let total = iovecs.as_ref().map_or(args[2], |v| v.total);
    if total > OUTPUT_WRITE_MAX || total > buf.capacity.saturating_sub(RECORD_HEADER_SIZE) {
        return Outcome::Bail(BailReason::TooLarge);
    }
    let h = buf.header;
    // SAFETY: `Buffer` guarantees the header is valid memory.
    let used = u64::from(unsafe { read_volatile(addr_of_mut!((*h).used)) });
    let need = u64::from(record_size(total as u32));
    if used > buf.capacity || need > buf.capacity - used {
        return Outcome::Bail(BailReason::Full);
    }
    let record = buf.records().wrapping_add(used as usize) as *mut RecordHeader;
    let data = (record as *mut u8).wrapping_add(RECORD_HEADER_SIZE as usize);
    // SAFETY: header fields of a valid buffer.
    unsafe { write_volatile(addr_of_mut!((*h).in_flight), 1) };
    let armed = plan_for(nr).is_some_and(|p| p.may_block) && desched_fd >= 0;
    let fd = desched_fd as u64;
    if armed {
        kernel.untraced(nr::IOCTL, [fd, PERF_EVENT_IOC_ENABLE, 0, 0, 0, 0]);
    }
    let result = kernel.untraced(nr, args);
    if armed {
        kernel.untraced(nr::IOCTL, [fd, PERF_EVENT_IOC_DISABLE, 0, 0, 0, 0]);
    }
    if take_abort(buf) {
        return Outcome::Bail(BailReason::Aborted);
    }
    let written = if result > 0 {
        (result as u64).min(total)
    } else {
        0
    };
    // SAFETY: the record lies within the reserved space (`need` bytes at
    // `record`, checked above, `written` <= `total`); the program's buffers
    // hold at least `written` readable bytes: the kernel just read them.
    unsafe {
        match &iovecs {
            None => copy_bytes(data, args[1] as *const u8, written as usize),
            Some(v) => v.gather(data, written),
        }
        write_volatile(
            record,
            RecordHeader {
                nr: nr as u16,
                flags: out.flags,
                out_len: written as u32,
                result,
                out_addr: total,
            },
        );
    }
    commit(buf, used, written);
    Outcome::Done(result)
}

/// Most iovecs a buffered `readv`, `recvmsg` or output `writev` may have.
const MAX_IOVECS: u64 = 64;

/// A `readv` or `recvmsg` whose bytes the hook scatters.
#[derive(Debug, Clone, Copy)]
struct Vectored {
    /// The program's iovecs.
    iovecs: Iovecs,
    /// Bytes of the record before the data: recvmsg's header and iovec.
    prefix: u64,
    /// recvmsg: the program's message header (0 for readv).
    msg: u64,
}

/// The program's iovecs. Every read of them goes through the
/// fault-tolerant copy, one iovec at a time (no large array on the alt
/// stack: copying one would need `memcpy`).
#[derive(Debug, Clone, Copy)]
struct Iovecs {
    /// Where they are.
    iov: u64,
    /// How many.
    cnt: u64,
    /// Their total length.
    total: u64,
}

impl Iovecs {
    /// The `cnt` iovecs at `iov`. `NotBuffered`: none, too many, or an
    /// absurd total; `BadAddress`: the array cannot be read (the kernel's
    /// EFAULT).
    fn read(iov: u64, cnt: u64) -> Result<Iovecs, BailReason> {
        if iov == 0 || cnt == 0 || cnt > MAX_IOVECS {
            return Err(BailReason::NotBuffered);
        }
        let mut total: u64 = 0;
        for i in 0..cnt {
            let [_, len] =
                user::read_words::<2>(iov.wrapping_add(16 * i)).ok_or(BailReason::BadAddress)?;
            total = total.checked_add(len).ok_or(BailReason::NotBuffered)?;
        }
        Ok(Iovecs { iov, cnt, total })
    }

    /// Calls `piece(base, offset, n)` for each iovec in order over their
    /// first `len` bytes, while it answers true: `n` bytes at the iovec's
    /// `base` are bytes `offset..offset + n` of the whole. False: a piece
    /// answered false, or an iovec could not be read.
    fn each_piece(&self, len: u64, mut piece: impl FnMut(u64, u64, u64) -> bool) -> bool {
        let mut done = 0u64;
        for i in 0..self.cnt {
            if done >= len {
                break;
            }
            let Some([base, size]) = user::read_words::<2>(self.iov.wrapping_add(16 * i)) else {
                return false;
            };
            let n = size.min(len - done);
            if !piece(base, done, n) {
                return false;
            }
            done += n;
        }
        true
    }

    /// Whether the first and last byte of every non-empty iovec can be
    /// written ([`user::ends_writable`]).
    fn ends_writable(&self) -> bool {
        self.each_piece(self.total, |base, _, n| user::ends_writable(base, n))
    }

    /// Copies `len` bytes from `data` over the iovecs, in order; false if
    /// the program's memory faulted (the bytes before the fault are
    /// copied).
    fn scatter(&self, data: *const u8, len: u64) -> bool {
        self.each_piece(len, |base, at, n| {
            // SAFETY: `data` holds `len` bytes (the record's output); the
            // program's side may be bad.
            unsafe { user::copy(base as *mut u8, data.wrapping_add(at as usize), n as usize) == 0 }
        })
    }

    /// Copies the first `len` bytes of the iovecs, in order, to `data`.
    ///
    /// # Safety
    /// The iovecs' first `len` bytes are readable (the kernel just read
    /// them for a writev), and `data` has room for `len` bytes.
    unsafe fn gather(&self, data: *mut u8, len: u64) {
        self.each_piece(len, |base, at, n| {
            // SAFETY: forwarded contract; each piece lies in an iovec's
            // buffer and within `data`'s `len` bytes.
            unsafe {
                copy_bytes(
                    data.wrapping_add(at as usize),
                    base as *const u8,
                    n as usize,
                )
            };
            true
        });
    }
}

/// `struct msghdr` (56 bytes) and one `struct iovec` (16) at the start of
/// a buffered recvmsg's record.
const MSG_PREFIX: u64 = 72;
/// Offsets in `struct msghdr`.
const MSG_NAME: usize = 0;
const MSG_IOV: usize = 16;
const MSG_IOVLEN: usize = 24;
const MSG_CONTROL: usize = 32;
const MSG_CONTROLLEN: usize = 40;
const MSG_FLAGS: usize = 48;

/// The iovecs of the program's `recvmsg` header at `msg`, when the hook
/// takes it: no address and no control data (`NotBuffered` otherwise;
/// `BadAddress` if the header or its iovecs cannot be read).
fn recvmsg_iovecs(msg: u64) -> Result<Iovecs, BailReason> {
    if msg == 0 {
        return Err(BailReason::NotBuffered);
    }
    let header = user::read_words::<7>(msg).ok_or(BailReason::BadAddress)?;
    let word = |off: usize| header.get(off / 8).copied().unwrap_or(0);
    if word(MSG_NAME) != 0 || (word(MSG_CONTROL) != 0 && word(MSG_CONTROLLEN) != 0) {
        return Err(BailReason::NotBuffered);
    }
    Iovecs::read(word(MSG_IOV), word(MSG_IOVLEN))
}

/// Writes, at `data`, a message header with one iovec (right after it)
/// over the `total` bytes that follow.
///
/// # Safety
/// `data` is 8-aligned with room for [`MSG_PREFIX`] bytes.
unsafe fn write_msg_prefix(data: *mut u8, total: u64) {
    let words: [u64; 9] = [
        0,                        // msg_name
        0,                        // msg_namelen
        data as u64 + 56,         // msg_iov
        1,                        // msg_iovlen
        0,                        // msg_control
        0,                        // msg_controllen
        0,                        // msg_flags
        data as u64 + MSG_PREFIX, // iov_base
        total,                    // iov_len
    ];
    for (i, w) in words.iter().enumerate() {
        // SAFETY: forwarded contract.
        unsafe { write_volatile((data as *mut u64).wrapping_add(i), *w) };
    }
}

/// The synthesized TSC ([`rrtest_abi::tsc`]) for an rdtsc site's stub:
/// `clock_gettime(CLOCK_MONOTONIC_RAW)` through the buffer, into a
/// `timespec` on the hook's stack (the record's `out_addr` is therefore on
/// the alt stack, which is how the recorder tells these records from the
/// program's own clock reads). `None`: the hook bailed or the read failed
/// (a committed failure replays the same way); the stub's `rdtsc` traps.
pub fn synthetic_tsc<K: Kernel>(buf: &Buffer, kernel: &mut K, desched_fd: i32) -> Option<u64> {
    let mut ts = [0i64; 2];
    let args = [rrtest_abi::tsc::CLOCK, ts.as_mut_ptr() as u64, 0, 0, 0, 0];
    match buffer_syscall_with(buf, nr::CLOCK_GETTIME, args, kernel, desched_fd, &[]) {
        Outcome::Done(0) => {
            // SAFETY: the hook wrote the record's output to `ts` through a
            // raw pointer; read it as such.
            let [sec, nsec] = unsafe { read_volatile(&ts) };
            Some(rrtest_abi::tsc::from_timespec(sec, nsec))
        }
        _ => None,
    }
}

/// [`buffer_syscall_with`] with an empty output table.
#[cfg(test)]
pub fn buffer_syscall<K: Kernel>(
    buf: &Buffer,
    nr: u64,
    args: [u64; 6],
    kernel: &mut K,
    desched_fd: i32,
) -> Outcome {
    buffer_syscall_with(buf, nr, args, kernel, desched_fd, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake kernel: remembers calls, answers from a script, and lets a
    /// test act on the call (write output, set abort_commit).
    struct Fake<F: FnMut(u64, [u64; 6]) -> i64> {
        calls: Vec<(u64, [u64; 6])>,
        answer: F,
    }

    impl<F: FnMut(u64, [u64; 6]) -> i64> Kernel for Fake<F> {
        fn untraced(&mut self, nr: u64, args: [u64; 6]) -> i64 {
            self.calls.push((nr, args));
            (self.answer)(nr, args)
        }
    }

    fn fake<F: FnMut(u64, [u64; 6]) -> i64>(answer: F) -> Fake<F> {
        Fake {
            calls: Vec::new(),
            answer,
        }
    }

    /// Backing memory for a buffer of `size` bytes (8-aligned).
    struct Mem(Vec<u64>);

    impl Mem {
        fn new(size: usize) -> Mem {
            let mut m = Mem(vec![0; size / 8]);
            let capacity = (size as u64 - HEADER_SIZE) as u32;
            let h = m.header();
            // SAFETY: `h` points into the vector.
            unsafe {
                (*h).magic = BUFFER_MAGIC;
                (*h).capacity = capacity;
            }
            m
        }
        fn header(&mut self) -> *mut BufferHeader {
            self.0.as_mut_ptr() as *mut BufferHeader
        }
        fn hdr(&mut self) -> BufferHeader {
            // SAFETY: points into the vector.
            unsafe { *self.header() }
        }
        fn buffer(&mut self) -> Buffer {
            let tl = ThreadLocals {
                buffer: self.0.as_mut_ptr() as u64,
                buffer_size: (self.0.len() * 8) as u64,
                desched_fd: -1,
                ..ThreadLocals::default()
            };
            // SAFETY: the vector outlives every use in these tests.
            unsafe { Buffer::from_locals(&tl) }.expect("well-formed buffer")
        }
        fn record(&mut self, offset: usize) -> (RecordHeader, Vec<u8>) {
            let base = self.0.as_ptr() as *const u8;
            // SAFETY: tests read records they just committed.
            unsafe {
                let r = *(base.add(HEADER_SIZE as usize + offset) as *const RecordHeader);
                let data = core::slice::from_raw_parts(
                    base.add(HEADER_SIZE as usize + offset + RECORD_HEADER_SIZE as usize),
                    r.out_len as usize,
                );
                (r, data.to_vec())
            }
        }
    }

    #[test]
    fn getpid_is_recorded_without_output() {
        let mut m = Mem::new(4096);
        let mut k = fake(|_, _| 4242);
        let out = buffer_syscall(&m.buffer(), nr::GETPID, [0; 6], &mut k, -1);
        assert_eq!(out, Outcome::Done(4242));
        assert_eq!(k.calls, vec![(nr::GETPID, [0; 6])]);
        let h = m.hdr();
        assert_eq!((h.used, h.num_records, h.in_flight), (24, 1, 0));
        let (r, data) = m.record(0);
        assert_eq!(
            r,
            RecordHeader {
                nr: 39,
                flags: 0,
                out_len: 0,
                result: 4242,
                out_addr: 0
            }
        );
        assert!(data.is_empty());
    }

    #[test]
    fn pread_output_goes_through_the_record_to_the_user() {
        let mut m = Mem::new(4096);
        let mut user = [0u8; 10];
        let user_ptr = user.as_mut_ptr() as u64;
        let mut seen_ptr = 0;
        let mut k = fake(|_, a| {
            seen_ptr = a[1];
            // The kernel writes 7 bytes of the 10 asked for (a short read).
            // SAFETY: a[1] points into the reserved record.
            unsafe { core::ptr::copy_nonoverlapping(b"abcdefg".as_ptr(), a[1] as *mut u8, 7) };
            7
        });
        let out = buffer_syscall(
            &m.buffer(),
            nr::PREAD64,
            [3, user_ptr, 10, 100, 0, 0],
            &mut k,
            -1,
        );
        assert_eq!(out, Outcome::Done(7));
        assert_ne!(seen_ptr, user_ptr, "output redirected into the record");
        assert_eq!(&user, b"abcdefg\0\0\0");
        let (r, data) = m.record(0);
        assert_eq!(
            r,
            RecordHeader {
                nr: 17,
                flags: 0,
                out_len: 7,
                result: 7,
                out_addr: user_ptr
            }
        );
        assert_eq!(data, b"abcdefg");
        assert_eq!(m.hdr().used, record_size(7));
        // A second record follows the first, 8-aligned.
        let mut k = fake(|_, _| 0);
        assert_eq!(
            buffer_syscall(&m.buffer(), nr::CLOSE, [3, 0, 0, 0, 0, 0], &mut k, -1),
            Outcome::Done(0)
        );
        let (r, _) = m.record(record_size(7) as usize);
        assert_eq!((r.nr, r.result), (3, 0));
        assert_eq!(m.hdr().num_records, 2);
    }

    #[test]
    fn failed_syscalls_copy_nothing() {
        let mut m = Mem::new(4096);
        let mut ts = [0xffu8; 16];
        let mut k = fake(|_, _| -22);
        let out = buffer_syscall(
            &m.buffer(),
            nr::CLOCK_GETTIME,
            [99, ts.as_mut_ptr() as u64, 0, 0, 0, 0],
            &mut k,
            -1,
        );
        assert_eq!(out, Outcome::Done(-22));
        assert_eq!(ts, [0xff; 16]);
        let (r, _) = m.record(0);
        assert_eq!((r.out_len, r.out_addr, r.result), (0, 0, -22));
    }

    #[test]
    fn a_read_failing_with_einval_is_committed_and_bails() {
        // O_DIRECT: the kernel refuses the record's alignment.
        let mut m = Mem::new(4096);
        let mut user = [0xffu8; 512];
        let mut k = fake(|_, _| -22);
        let out = buffer_syscall(
            &m.buffer(),
            nr::PREAD64,
            [3, user.as_mut_ptr() as u64, 512, 0, 0, 0],
            &mut k,
            -1,
        );
        assert_eq!(out, Outcome::Bail(BailReason::Misaligned));
        assert_eq!(user, [0xff; 512]);
        let (r, _) = m.record(0);
        assert_eq!((r.nr, r.out_len, r.result), (17, 0, -22));
        assert_eq!((m.hdr().num_records, m.hdr().in_flight), (1, 0));
        // Another call failing with EINVAL is not retried.
        let mut k = fake(|_, _| -22);
        let out = buffer_syscall(&m.buffer(), nr::LSEEK, [3, 0, 99, 0, 0, 0], &mut k, -1);
        assert_eq!(out, Outcome::Done(-22));
    }

    #[test]
    fn fixed_size_output_is_copied_on_success() {
        let mut m = Mem::new(4096);
        let mut ts = [0u8; 16];
        let mut k = fake(|_, a| {
            // SAFETY: a[1] points into the reserved record.
            unsafe { core::ptr::write_bytes(a[1] as *mut u8, 0x5a, 16) };
            0
        });
        let out = buffer_syscall(
            &m.buffer(),
            nr::CLOCK_GETTIME,
            [1, ts.as_mut_ptr() as u64, 0, 0, 0, 0],
            &mut k,
            -1,
        );
        assert_eq!(out, Outcome::Done(0));
        assert_eq!(ts, [0x5a; 16]);
        assert_eq!(m.record(0).0.out_len, 16);
    }

    #[test]
    fn may_block_syscalls_need_the_desched_event() {
        let mut m = Mem::new(4096);
        let mut k = fake(|_, _| 5);
        let args = [7, 0x1000, 5, 0, 0, 0];
        assert_eq!(
            buffer_syscall(&m.buffer(), nr::WRITE, args, &mut k, -1),
            Outcome::Bail(BailReason::MayBlockUnarmed)
        );
        assert!(k.calls.is_empty());
        assert_eq!(
            buffer_syscall(&m.buffer(), nr::WRITE, args, &mut k, 9),
            Outcome::Done(5)
        );
        assert_eq!(
            k.calls,
            vec![
                (nr::IOCTL, [9, PERF_EVENT_IOC_ENABLE, 0, 0, 0, 0]),
                (nr::WRITE, args),
                (nr::IOCTL, [9, PERF_EVENT_IOC_DISABLE, 0, 0, 0, 0]),
            ]
        );
    }

    #[test]
    fn poll_reads_its_array_from_the_record_and_writes_it_back() {
        let mut m = Mem::new(4096);
        // Two pollfds: fd 3 and fd 4, events POLLIN (1), revents 0.
        let mut user: [u8; 16] = [3, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0];
        let user_ptr = user.as_mut_ptr() as u64;
        let mut k = fake(|_, a| {
            // SAFETY: a[0] points at the 16 bytes reserved in the record.
            let arr = unsafe { core::slice::from_raw_parts_mut(a[0] as *mut u8, 16) };
            assert_eq!(arr[0], 3, "the kernel sees the program's array");
            assert_eq!(arr[8], 4);
            arr[6] = 1; // fd 3 is readable
            1
        });
        let out = buffer_syscall(&m.buffer(), nr::POLL, [user_ptr, 2, 0, 0, 0, 0], &mut k, -2);
        assert_eq!(out, Outcome::Done(1));
        assert_eq!(user[6], 1);
        assert_eq!(user[14], 0);
        assert_eq!(m.record(0).0.out_len, 16);
    }

    #[test]
    fn readv_reads_into_the_record_and_scatters() {
        let mut m = Mem::new(4096);
        let (mut a, mut b) = ([0u8; 3], [0u8; 4]);
        let iov: [u64; 4] = [a.as_mut_ptr() as u64, 3, b.as_mut_ptr() as u64, 4];
        let mut k = fake(|_, args| {
            // One iovec of the hook's, over the record's 7 bytes.
            assert_eq!(args[2], 1);
            // SAFETY: args[1] points at the hook's iovec, which points into
            // the record.
            unsafe {
                let ours = args[1] as *const u64;
                assert_eq!(*ours.add(1), 7);
                core::ptr::copy_nonoverlapping(b"abcde".as_ptr(), *ours as *mut u8, 5);
            }
            5
        });
        let out = buffer_syscall(
            &m.buffer(),
            nr::READV,
            [3, iov.as_ptr() as u64, 2, 0, 0, 0],
            &mut k,
            -2,
        );
        assert_eq!(out, Outcome::Done(5));
        assert_eq!(&a, b"abc");
        assert_eq!(&b, b"de\0\0");
        assert_eq!(m.record(0).1, b"abcde");
        // Too many iovecs: traced.
        let out = buffer_syscall(
            &m.buffer(),
            nr::READV,
            [3, iov.as_ptr() as u64, 65, 0, 0, 0],
            &mut k,
            -2,
        );
        assert_eq!(out, Outcome::Bail(BailReason::NotBuffered));
    }

    #[test]
    fn recvmsg_reads_header_and_bytes_into_the_record() {
        let mut m = Mem::new(4096);
        let (mut a, mut b) = ([0u8; 2], [0u8; 8]);
        let iov: [u64; 4] = [a.as_mut_ptr() as u64, 2, b.as_mut_ptr() as u64, 8];
        // struct msghdr: no name, two iovecs, no control, flags 0.
        let mut msg: [u64; 7] = [0, 0, iov.as_ptr() as u64, 2, 0, 0, 0];
        let mut k = fake(|_, args| {
            // SAFETY: args[1] points at the hook's header in the record,
            // whose iovec points at the record's data.
            unsafe {
                let hdr = args[1] as *mut u64;
                assert_eq!(*hdr, 0, "no address asked for");
                assert_eq!(*hdr.add(3), 1, "one iovec");
                let ours = *hdr.add(2) as *const u64;
                assert_eq!(*ours.add(1), 10);
                core::ptr::copy_nonoverlapping(b"hello".as_ptr(), *ours as *mut u8, 5);
                *(hdr as *mut u8).add(48).cast::<u32>() = 0x20; // MSG_TRUNC
            }
            5
        });
        let out = buffer_syscall(
            &m.buffer(),
            nr::RECVMSG,
            [3, msg.as_mut_ptr() as u64, 0, 0, 0, 0],
            &mut k,
            -2,
        );
        assert_eq!(out, Outcome::Done(5));
        assert_eq!(&a, b"he");
        assert_eq!(&b[..3], b"llo");
        assert_eq!(msg[6] as u32, 0x20, "the flags reach the program's header");
        assert_eq!(m.record(0).0.out_len, 72 + 5);
        // With an address to fill: traced.
        let mut named: [u64; 7] = [0x1000, 16, iov.as_ptr() as u64, 2, 0, 0, 0];
        let out = buffer_syscall(
            &m.buffer(),
            nr::RECVMSG,
            [3, named.as_mut_ptr() as u64, 0, 0, 0, 0],
            &mut k,
            -2,
        );
        assert_eq!(out, Outcome::Bail(BailReason::NotBuffered));
    }

    use crate::user::tests_support::{clear_bad, set_bad};

    /// `[at, at + len)` as a bad range.
    fn bad(at: *const u8, len: u64) -> core::ops::Range<u64> {
        at as u64..at as u64 + len
    }

    #[test]
    fn unreadable_arguments_bail_before_the_call() {
        let mut m = Mem::new(4096);
        let mut k = fake(|_, _| 0);
        let pollfds = [0u8; 16];
        let mut buf = [0u8; 8];
        let iov: [u64; 2] = [buf.as_mut_ptr() as u64, 8];
        let msg: [u64; 7] = [0, 0, iov.as_ptr() as u64, 1, 0, 0, 0];
        let cases: [(u64, [u64; 6], core::ops::Range<u64>); 5] = [
            // poll's array, the last entry's last byte unreadable.
            (
                nr::POLL,
                [pollfds.as_ptr() as u64, 2, 0, 0, 0, 0],
                bad(pollfds.as_ptr().wrapping_add(15), 1),
            ),
            // readv's iovecs: the second word (a length).
            (
                nr::READV,
                [3, iov.as_ptr() as u64, 1, 0, 0, 0],
                bad(iov.as_ptr().wrapping_add(1) as *const u8, 1),
            ),
            // recvmsg's header, and its iovecs.
            (
                nr::RECVMSG,
                [3, msg.as_ptr() as u64, 0, 0, 0, 0],
                bad(msg.as_ptr() as *const u8, 1),
            ),
            (
                nr::RECVMSG,
                [3, msg.as_ptr() as u64, 0, 0, 0, 0],
                bad(iov.as_ptr() as *const u8, 16),
            ),
            // An output writev's iovecs.
            (
                nr::WRITEV,
                [1, iov.as_ptr() as u64, 1, 0, 0, 0],
                bad(iov.as_ptr() as *const u8, 16),
            ),
        ];
        for (n, args, range) in cases {
            set_bad(range);
            assert_eq!(
                buffer_syscall_with(&m.buffer(), n, args, &mut k, -2, &STDOUT_1),
                Outcome::Bail(BailReason::BadAddress),
                "syscall {n}"
            );
        }
        clear_bad();
        assert!(k.calls.is_empty(), "no call made");
        let h = m.hdr();
        assert_eq!((h.used, h.num_records, h.in_flight), (0, 0, 0));
    }

    #[test]
    fn unwritable_output_ends_bail_before_the_call() {
        let mut m = Mem::new(4096);
        let mut k = fake(|_, _| 8);
        let mut out = [0u8; 16];
        let mut base = [0u8; 8];
        let iov: [u64; 2] = [base.as_mut_ptr() as u64, 8];
        let mut msg: [u64; 7] = [0, 0, iov.as_ptr() as u64, 1, 0, 0, 0];
        let msg_flags = (msg.as_mut_ptr() as *const u8).wrapping_add(MSG_FLAGS);
        let cases: [(u64, [u64; 6], core::ops::Range<u64>); 6] = [
            // read: its first byte, its last.
            (
                nr::READ,
                [3, out.as_mut_ptr() as u64, 16, 0, 0, 0],
                bad(out.as_ptr(), 1),
            ),
            (
                nr::READ,
                [3, out.as_mut_ptr() as u64, 16, 0, 0, 0],
                bad(out.as_ptr().wrapping_add(15), 1),
            ),
            // clock_gettime's timespec.
            (
                nr::CLOCK_GETTIME,
                [1, out.as_mut_ptr() as u64, 0, 0, 0, 0],
                bad(out.as_ptr().wrapping_add(8), 8),
            ),
            // readv's base, recvmsg's base and its header's flags.
            (
                nr::READV,
                [3, iov.as_ptr() as u64, 1, 0, 0, 0],
                bad(base.as_ptr(), 1),
            ),
            (
                nr::RECVMSG,
                [3, msg.as_mut_ptr() as u64, 0, 0, 0, 0],
                bad(base.as_ptr().wrapping_add(7), 1),
            ),
            (
                nr::RECVMSG,
                [3, msg.as_mut_ptr() as u64, 0, 0, 0, 0],
                bad(msg_flags, 4),
            ),
        ];
        for (n, args, range) in cases {
            set_bad(range);
            assert_eq!(
                buffer_syscall(&m.buffer(), n, args, &mut k, -2),
                Outcome::Bail(BailReason::BadAddress),
                "syscall {n}"
            );
        }
        clear_bad();
        assert!(k.calls.is_empty(), "no call made");
        assert_eq!(out, [0; 16], "the probes change nothing");
        assert_eq!(m.hdr().num_records, 0);
    }

    #[test]
    fn an_output_copy_that_faults_answers_efault_and_keeps_the_record() {
        let mut m = Mem::new(4096);
        let mut user = [0u8; 10];
        let user_ptr = user.as_mut_ptr() as u64;
        let mut k = fake(|_, a| {
            // SAFETY: a[1] points into the reserved record.
            unsafe { core::ptr::copy_nonoverlapping(b"abcdefghij".as_ptr(), a[1] as *mut u8, 10) };
            10
        });
        // A hole in the middle: the first and last bytes are writable.
        set_bad(bad(user.as_ptr().wrapping_add(4), 2));
        let out = buffer_syscall(
            &m.buffer(),
            nr::READ,
            [3, user_ptr, 10, 0, 0, 0],
            &mut k,
            -2,
        );
        clear_bad();
        assert_eq!(out, Outcome::Done(-EFAULT));
        assert_eq!(k.calls.len(), 1);
        assert_eq!(&user, b"abcd\0\0\0\0\0\0", "copied up to the fault");
        // The record keeps what the kernel answered: replay's hook gets
        // it again and meets the same fault.
        let (r, data) = m.record(0);
        assert_eq!((r.result, r.out_len, r.out_addr), (10, 10, user_ptr));
        assert_eq!(data, b"abcdefghij");
        let h = m.hdr();
        assert_eq!((h.num_records, h.in_flight), (1, 0));

        // readv: a hole in the second iovec's middle.
        let (mut a, mut b) = ([0u8; 2], [0u8; 6]);
        let iov: [u64; 4] = [a.as_mut_ptr() as u64, 2, b.as_mut_ptr() as u64, 6];
        let mut k = fake(|_, args| {
            // SAFETY: args[1] points at the hook's iovec over the record.
            unsafe {
                let ours = args[1] as *const u64;
                core::ptr::copy_nonoverlapping(b"12345678".as_ptr(), *ours as *mut u8, 8);
            }
            8
        });
        set_bad(bad(b.as_ptr().wrapping_add(3), 1));
        let out = buffer_syscall(
            &m.buffer(),
            nr::READV,
            [3, iov.as_ptr() as u64, 2, 0, 0, 0],
            &mut k,
            -2,
        );
        clear_bad();
        assert_eq!(out, Outcome::Done(-EFAULT));
        assert_eq!((&a, &b), (b"12", b"345\0\0\0"));
        assert_eq!(m.hdr().num_records, 2);
    }

    #[test]
    fn time_writes_through_a_pointer_only_when_given_one() {
        let mut m = Mem::new(4096);
        let mut k = fake(|_, a| {
            if a[0] != 0 {
                // SAFETY: a[0] points at the 8 bytes reserved in the record.
                unsafe { *(a[0] as *mut i64) = 1_700_000_000 };
            }
            1_700_000_000
        });
        let out = buffer_syscall(&m.buffer(), nr::TIME, [0; 6], &mut k, -1);
        assert_eq!(out, Outcome::Done(1_700_000_000));
        assert_eq!(m.record(0).0.out_len, 0);
        assert_eq!(k.calls[0].1[0], 0, "time(NULL) stays NULL");
        let mut t: i64 = 0;
        let args = [&mut t as *mut i64 as u64, 0, 0, 0, 0, 0];
        let out = buffer_syscall(&m.buffer(), nr::TIME, args, &mut k, -1);
        assert_eq!(out, Outcome::Done(1_700_000_000));
        assert_eq!(t, 1_700_000_000);
    }

    #[test]
    fn a_null_output_pointer_is_passed_on_and_nothing_is_copied() {
        // Rust's standard library probes statx with null pointers.
        let mut m = Mem::new(4096);
        let mut k = fake(|_, _| -14);
        let args = [0, 0, 0, 0xfff, 0, 0];
        let out = buffer_syscall(&m.buffer(), nr::STATX, args, &mut k, -1);
        assert_eq!(out, Outcome::Done(-14));
        assert_eq!(k.calls, vec![(nr::STATX, args)], "the pointer stays null");
        let (h, _) = m.record(0);
        assert_eq!((h.result, h.out_len, h.out_addr), (-14, 0, 0));
        let out = buffer_syscall(&m.buffer(), nr::GETRANDOM, [0, 8, 0, 0, 0, 0], &mut k, -1);
        assert_eq!(out, Outcome::Done(-14));
        assert_eq!(m.hdr().num_records, 2);
    }

    #[test]
    fn the_budget_is_spent_at_its_count_of_records() {
        let mut m = Mem::new(4096);
        let mut k = fake(|_, _| 5);
        let buf = m.buffer();
        for budget in [0, 1, 2] {
            assert!(!buf.budget_spent(budget), "no record yet");
        }
        for _ in 0..2 {
            assert_eq!(
                buffer_syscall(&buf, nr::GETPID, [0; 6], &mut k, -1),
                Outcome::Done(5)
            );
        }
        assert!(buf.budget_spent(1));
        assert!(buf.budget_spent(2));
        assert!(!buf.budget_spent(3));
        assert!(!buf.budget_spent(0), "0 is no budget");
    }

    #[test]
    fn polled_desched_buffers_may_block_syscalls_without_ioctls() {
        let mut m = Mem::new(4096);
        let mut k = fake(|_, _| 5);
        let args = [7, 0x1000, 5, 0, 0, 0];
        assert_eq!(
            buffer_syscall(
                &m.buffer(),
                nr::WRITE,
                args,
                &mut k,
                rrtest_abi::DESCHED_POLLED
            ),
            Outcome::Done(5)
        );
        assert_eq!(k.calls, vec![(nr::WRITE, args)]);
        assert_eq!(m.hdr().num_records, 1);
    }

    #[test]
    fn program_output_and_forced_bails() {
        let mut m = Mem::new(4096);
        let mut k = fake(|_, _| 5);
        for fd in [1, 2] {
            for n in [nr::WRITE, nr::PWRITE64] {
                assert_eq!(
                    buffer_syscall(&m.buffer(), n, [fd, 0x1000, 5, 0, 0, 0], &mut k, 9),
                    Outcome::Bail(BailReason::ProgramOutput)
                );
            }
        }
        // A listed descriptor with stream 0 (a vfork child's table), and
        // sendto to a listed one: traced.
        let table = [
            OutputFd { fd: 7, stream: 1 },
            OutputFd { fd: 40, stream: 0 },
        ];
        for (n, fd) in [(nr::WRITE, 40), (nr::SENDTO, 7)] {
            assert_eq!(
                buffer_syscall_with(&m.buffer(), n, [fd, 0x1000, 5, 0, 0, 0], &mut k, 9, &table),
                Outcome::Bail(BailReason::ProgramOutput)
            );
        }
        assert!(k.calls.is_empty());
        let h = m.header();
        // SAFETY: points into the vector.
        unsafe { (*h).force_bail = 1 };
        assert_eq!(
            buffer_syscall(&m.buffer(), nr::GETPID, [0; 6], &mut k, 9),
            Outcome::Bail(BailReason::Forced)
        );
        assert!(k.calls.is_empty());
        // SAFETY: points into the vector.
        unsafe { (*h).force_bail = 0 };
        assert_eq!(
            buffer_syscall(&m.buffer(), nr::GETPID, [0; 6], &mut k, 9),
            Outcome::Done(5)
        );
    }

    #[test]
    fn bails_without_touching_anything() {
        let mut m = Mem::new(256);
        let mut k = fake(|_, _| 0);
        let cases = [
            (
                nr::GETRANDOM,
                [0x1000, 1 << 20, 0, 0, 0, 0],
                BailReason::TooLarge,
            ),
            (
                nr::PREAD64,
                [0, 0x1000, u64::MAX, 0, 0, 0],
                BailReason::TooLarge,
            ),
            (56, [0; 6], BailReason::NotBuffered),
            (59, [0; 6], BailReason::NotBuffered),
        ];
        for (n, args, why) in cases {
            assert_eq!(
                buffer_syscall(&m.buffer(), n, args, &mut k, -1),
                Outcome::Bail(why),
                "syscall {n}"
            );
        }
        assert!(k.calls.is_empty());
        assert_eq!(m.hdr().used, 0);
    }

    #[test]
    fn a_full_buffer_bails() {
        // 256 bytes: 32 of header, 224 of records = 9 getpid records (24 each).
        let mut m = Mem::new(256);
        let mut k = fake(|_, _| 1);
        for _ in 0..9 {
            assert_eq!(
                buffer_syscall(&m.buffer(), nr::GETPID, [0; 6], &mut k, -1),
                Outcome::Done(1)
            );
        }
        assert_eq!(
            buffer_syscall(&m.buffer(), nr::GETPID, [0; 6], &mut k, -1),
            Outcome::Bail(BailReason::Full)
        );
        assert_eq!(k.calls.len(), 9);
        let h = m.hdr();
        assert_eq!((h.used, h.num_records), (216, 9));
        // A recorder flush resets the counters; buffering resumes.
        // SAFETY: the test owns the memory.
        unsafe {
            (*m.header()).used = 0;
            (*m.header()).num_records = 0;
        }
        assert_eq!(
            buffer_syscall(&m.buffer(), nr::GETPID, [0; 6], &mut k, -1),
            Outcome::Done(1)
        );
    }

    #[test]
    fn an_aborted_record_is_discarded() {
        let mut m = Mem::new(4096);
        let header = m.header();
        let mut k = fake(|n, _| {
            if n == nr::READ {
                // The recorder unwinds the thread while it is in the syscall.
                // SAFETY: the test owns the memory.
                unsafe {
                    assert_eq!((*header).in_flight, 1);
                    (*header).abort_commit = 1;
                }
                -4
            } else {
                0
            }
        });
        let mut user = [0u8; 4];
        let out = buffer_syscall(
            &m.buffer(),
            nr::READ,
            [0, user.as_mut_ptr() as u64, 4, 0, 0, 0],
            &mut k,
            7,
        );
        assert_eq!(out, Outcome::Bail(BailReason::Aborted));
        let h = m.hdr();
        assert_eq!(
            (
                h.used,
                h.num_records,
                h.in_flight,
                h.abort_commit,
                h.aborted
            ),
            (0, 0, 0, 0, 1)
        );
        // The disarming ioctl is the one syscall after the may-block one.
        assert_eq!(k.calls.last().map(|c| c.0), Some(nr::IOCTL));
    }

    #[test]
    fn malformed_locals_give_no_buffer() {
        let mut m = Mem::new(256);
        assert_eq!(m.buffer().capacity, 256 - HEADER_SIZE);
        let base = m.0.as_mut_ptr() as u64;
        for tl in [
            ThreadLocals {
                buffer: 0,
                buffer_size: 256,
                ..ThreadLocals::default()
            },
            ThreadLocals {
                buffer: base + 4,
                buffer_size: 256,
                ..ThreadLocals::default()
            },
            ThreadLocals {
                buffer: base,
                buffer_size: 16,
                ..ThreadLocals::default()
            },
        ] {
            // SAFETY: the memory is valid wherever it is read.
            assert!(unsafe { Buffer::from_locals(&tl) }.is_none());
        }
        // SAFETY: as above.
        unsafe { (*m.header()).magic = 0 };
        let tl = ThreadLocals {
            buffer: base,
            buffer_size: 256,
            ..ThreadLocals::default()
        };
        // SAFETY: as above.
        assert!(unsafe { Buffer::from_locals(&tl) }.is_none());
    }

    const STDOUT_1: [OutputFd; 1] = [OutputFd { fd: 1, stream: 1 }];

    #[test]
    fn output_writes_record_the_bytes_written() {
        let mut m = Mem::new(4096);
        let line = *b"hello, world\n";
        // The kernel takes 5 of the 13 bytes (a partial write).
        let mut k = fake(|_, _| 5);
        let args = [1, line.as_ptr() as u64, 13, 0, 0, 0];
        let out = buffer_syscall_with(&m.buffer(), nr::WRITE, args, &mut k, -2, &STDOUT_1);
        assert_eq!(out, Outcome::Done(5));
        assert_eq!(k.calls, vec![(nr::WRITE, args)], "the program's own buffer");
        let (r, data) = m.record(0);
        assert_eq!(
            r,
            RecordHeader {
                nr: 1,
                flags: record_flags::STDOUT,
                out_len: 5,
                result: 5,
                out_addr: 13
            }
        );
        assert_eq!(data, b"hello");
        assert_eq!(line, *b"hello, world\n", "nothing copied back");
        // A failed write records no bytes.
        let mut k = fake(|_, _| -32);
        let table = [OutputFd { fd: 9, stream: 2 }];
        let args = [9, line.as_ptr() as u64, 13, 7, 0, 0];
        let out = buffer_syscall_with(&m.buffer(), nr::PWRITE64, args, &mut k, -2, &table);
        assert_eq!(out, Outcome::Done(-32));
        let (r, data) = m.record(record_size(5) as usize);
        assert_eq!(
            (r.nr, r.flags, r.out_len, r.result, r.out_addr),
            (18, record_flags::STDERR, 0, -32, 13)
        );
        assert!(data.is_empty());
        assert_eq!(m.hdr().num_records, 2);
    }

    #[test]
    fn output_writev_gathers_the_bytes_written() {
        let mut m = Mem::new(4096);
        let (a, b, c) = (*b"abc", *b"", *b"defgh");
        let iov: [u64; 6] = [
            a.as_ptr() as u64,
            3,
            b.as_ptr() as u64,
            0,
            c.as_ptr() as u64,
            5,
        ];
        let args = [1, iov.as_ptr() as u64, 3, 0, 0, 0];
        for (taken, want) in [(8, &b"abcdefgh"[..]), (4, &b"abcd"[..])] {
            let mut k = fake(|_, _| taken);
            let before = m.hdr().used as usize;
            let out = buffer_syscall_with(&m.buffer(), nr::WRITEV, args, &mut k, -2, &STDOUT_1);
            assert_eq!(out, Outcome::Done(taken));
            assert_eq!(
                k.calls,
                vec![(nr::WRITEV, args)],
                "the program's own iovecs"
            );
            let (r, data) = m.record(before);
            assert_eq!((r.nr, r.flags, r.out_addr), (20, record_flags::STDOUT, 8));
            assert_eq!(data, want);
        }
        // More iovecs than the hook reads: traced.
        let mut k = fake(|_, _| 0);
        let args = [1, iov.as_ptr() as u64, 65, 0, 0, 0];
        assert_eq!(
            buffer_syscall_with(&m.buffer(), nr::WRITEV, args, &mut k, -2, &STDOUT_1),
            Outcome::Bail(BailReason::ProgramOutput)
        );
    }

    #[test]
    fn output_writes_that_cannot_be_buffered_bail() {
        let mut m = Mem::new(256);
        let mut k = fake(|_, _| 0);
        let table = [OutputFd { fd: 5, stream: 1 }];
        let cases = [
            // Larger than the cap, larger than this small buffer.
            (
                nr::WRITE,
                [5, 0x1000, OUTPUT_WRITE_MAX + 1, 0, 0, 0],
                -2,
                BailReason::TooLarge,
            ),
            (
                nr::WRITE,
                [5, 0x1000, 300, 0, 0, 0],
                -2,
                BailReason::TooLarge,
            ),
            // May block, and no desched.
            (
                nr::WRITE,
                [5, 0x1000, 3, 0, 0, 0],
                -1,
                BailReason::MayBlockUnarmed,
            ),
            // Closing a listed descriptor: the recorder updates the table.
            (nr::CLOSE, [5, 0, 0, 0, 0, 0], -2, BailReason::ProgramOutput),
            // fd 1 is not in this table: traced, the recorder decides.
            (
                nr::WRITE,
                [1, 0x1000, 3, 0, 0, 0],
                -2,
                BailReason::ProgramOutput,
            ),
        ];
        for (n, args, desched, why) in cases {
            assert_eq!(
                buffer_syscall_with(&m.buffer(), n, args, &mut k, desched, &table),
                Outcome::Bail(why),
                "syscall {n} {args:?}"
            );
        }
        assert!(k.calls.is_empty());
        // Closing fd 1 when it is not output, and writing to an unlisted
        // descriptor: ordinary buffered syscalls without bytes.
        let line = *b"xyz";
        for (n, args) in [
            (nr::CLOSE, [1, 0, 0, 0, 0, 0]),
            (nr::WRITE, [6, line.as_ptr() as u64, 3, 0, 0, 0]),
        ] {
            assert_eq!(
                buffer_syscall_with(&m.buffer(), n, args, &mut k, -2, &table),
                Outcome::Done(0)
            );
        }
        let (r, _) = m.record(24);
        assert_eq!((r.nr, r.flags, r.out_len), (1, 0, 0));
        // fd 2 to /dev/null: listed as not output; its writes are ordinary,
        // its close bails.
        let null2 = [OutputFd {
            fd: 2,
            stream: OutputFd::NOT_OUTPUT,
        }];
        let args = [2, line.as_ptr() as u64, 3, 0, 0, 0];
        assert_eq!(
            buffer_syscall_with(&m.buffer(), nr::WRITE, args, &mut k, -2, &null2),
            Outcome::Done(0)
        );
        assert_eq!(m.record(48).0.flags, 0);
        assert_eq!(
            buffer_syscall_with(
                &m.buffer(),
                nr::CLOSE,
                [2, 0, 0, 0, 0, 0],
                &mut k,
                -2,
                &null2
            ),
            Outcome::Bail(BailReason::ProgramOutput)
        );
        // The buffer's remaining room: 224 - 72 used = 152; a 140-byte
        // write needs 168.
        let big = [0u8; 140];
        let args = [5, big.as_ptr() as u64, 140, 0, 0, 0];
        assert_eq!(
            buffer_syscall_with(&m.buffer(), nr::WRITE, args, &mut k, -2, &table),
            Outcome::Bail(BailReason::Full)
        );
    }

    #[test]
    fn an_aborted_output_write_records_nothing() {
        let mut m = Mem::new(4096);
        let header = m.header();
        let mut k = fake(|_, _| {
            // Blocked on a full pipe, unwound by the recorder.
            // SAFETY: the test owns the memory.
            unsafe { (*header).abort_commit = 1 };
            -4
        });
        let line = *b"abc";
        let args = [1, line.as_ptr() as u64, 3, 0, 0, 0];
        assert_eq!(
            buffer_syscall_with(&m.buffer(), nr::WRITE, args, &mut k, -2, &STDOUT_1),
            Outcome::Bail(BailReason::Aborted)
        );
        let h = m.hdr();
        assert_eq!(
            (h.used, h.num_records, h.in_flight, h.aborted),
            (0, 0, 0, 1)
        );
    }

    #[test]
    fn the_synthesized_tsc_is_a_buffered_clock_read() {
        let mut m = Mem::new(4096);
        let mut k = fake(|_, args| {
            // SAFETY: the hook points the output at its record.
            unsafe { *(args[1] as *mut [i64; 2]) = [3, 250] };
            0
        });
        assert_eq!(synthetic_tsc(&m.buffer(), &mut k, -2), Some(3_000_000_250));
        assert_eq!(k.calls.len(), 1);
        assert_eq!(k.calls[0].0, nr::CLOCK_GETTIME);
        assert_eq!(k.calls[0].1[0], 4, "CLOCK_MONOTONIC_RAW");
        let (r, data) = m.record(0);
        assert_eq!((r.nr, r.flags, r.result, r.out_len), (228, 0, 0, 16));
        assert_eq!(data[..8], 3i64.to_le_bytes());
        assert_eq!(data[8..], 250i64.to_le_bytes());
        assert_eq!(m.hdr().num_records, 1);
    }

    #[test]
    fn the_synthesized_tsc_bails_as_the_hook_does() {
        let mut m = Mem::new(4096);
        let h = m.header();
        // SAFETY: the test owns the memory.
        unsafe { (*h).force_bail = 1 };
        let mut k = fake(|_, _| 0);
        assert_eq!(synthetic_tsc(&m.buffer(), &mut k, -2), None);
        assert!(k.calls.is_empty());
        // SAFETY: as above.
        unsafe { (*h).force_bail = 0 };
        // A failed read is committed (replay answers it the same) but
        // gives no value: the stub's rdtsc traps.
        let mut k = fake(|_, _| -22);
        assert_eq!(synthetic_tsc(&m.buffer(), &mut k, -2), None);
        assert_eq!(m.hdr().num_records, 1);
        // No room: bail.
        let mut small = Mem::new(32 + 24);
        let mut k = fake(|_, _| 0);
        assert_eq!(synthetic_tsc(&small.buffer(), &mut k, -2), None);
        assert!(k.calls.is_empty());
    }

    #[test]
    fn copy_bytes_copies() {
        let src = *b"0123456789abcdef_";
        let mut dst = [0u8; 17];
        // SAFETY: both arrays are 17 bytes.
        unsafe { copy_bytes(dst.as_mut_ptr(), src.as_ptr(), 17) };
        assert_eq!(dst, src);
    }
}
