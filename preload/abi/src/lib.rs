//! The contract between the `cargo-rrtest` recorder/replayer and the preload
//! library injected into every tracee.
//!
//! Everything both sides must agree on lives here and nowhere else: the fixed
//! page's address and the offsets of its entry points, the magic syscall
//! numbers of the initialization handshake, the per-thread locals, the
//! syscall buffer's header and record layouts, the extended jump patch's fixed
//! byte sequences, and the protocol version that is written into every trace
//! header. This crate is `no_std`, has no dependencies, and holds only plain
//! constants and `#[repr(C)]` types (each with a compile-time size check).
//! The narrative version, with the handshake and the stub layout, is
//! `docs/syscall-buffer.md`.
//!
//! # The fixed page
//!
//! One page at [`FIXED_PAGE_ADDR`] is mapped into every tracee address space
//! right after each `execve`, by the recorder (and identically by the
//! replayer). It holds tiny `syscall; ret` entry points. The seccomp filter
//! lets a syscall through untraced only when its instruction pointer is the
//! address just after the `syscall` instruction of [`entry::UNTRACED`]; every
//! other syscall stops in the recorder.
//!
//! ```text
//!  FIXED_PAGE_ADDR
//!  +0x000  0f 05 c3   syscall; ret        entry::TRACED   (always stops)
//!  +0x010  0f 05 c3   syscall; ret        entry::UNTRACED (seccomp ALLOW)
//!  +0x020  0f 05 c3   syscall; ret        entry::PRIVILEGED (recorder-injected
//!                                         syscalls; traced so the recorder sees them)
//!  +0x030  cc         int3                entry::TRAP
//!  +0x040  48 89 d1   mov rcx, rdx        entry::COPY: the preload's copy of
//!          f3 a4      rep movsb           program memory (`copy`); a fault at
//!          48 89 c8   mov rax, rcx        the `rep movsb` resumes after it
//!          c3         ret                 (`copy::FAULT_IP`, `copy::RESUME_IP`)
//!  +0x050  0f b6 07   movzx eax, [rdi]    entry::PROBE: whether a byte of the
//!          88 07      mov [rdi], al       program's can be written (`copy`); a
//!          31 c0      xor eax, eax        fault at either access resumes at
//!          c3         ret                 the `mov eax, 1`: 1, it cannot
//!          b8 01 00 00 00 c3  mov eax, 1; ret
//!
//!  THREAD_LOCALS_ADDR = FIXED_PAGE_ADDR + 0x1000   (read-write, one page)
//!  +0x000  ThreadLocals of the thread that runs now (the recorder swaps the
//!          contents at every thread switch; only one thread runs at a time)
//! ```
#![no_std]

/// Version of the recorder <-> preload protocol. Written into every trace
/// header; a replayer refuses a trace whose protocol it does not speak.
///
/// 2: writes to the program's output are buffered (the output table of
/// [`locals::OUTPUT_FDS`] names fd 1 and 2 too, with their streams, and
/// [`RecordHeader::flags`] marks their records).
pub const PROTOCOL_VERSION: u32 = 2;

/// Address of the fixed page in every tracee (below the default mmap base,
/// above typical non-PIE executables; rr uses the same address).
pub const FIXED_PAGE_ADDR: u64 = 0x7000_0000;

/// Size of the fixed page.
pub const FIXED_PAGE_SIZE: u64 = 0x1000;

/// Address of the recorder's own vDSO in every tracee (it replaces the
/// kernel's: `cargo-rrtest`'s `tracee::vdso`): right below the fixed page,
/// in the [`VDSO_MAX_SIZE`] bytes reserved for it. The page right after
/// its image, mapped with it, holds the stubs of its patched syscall sites.
pub const VDSO_ADDR: u64 = FIXED_PAGE_ADDR - VDSO_MAX_SIZE;

/// The most bytes the recorder's own vDSO may take (it maps its image
/// rounded up to pages).
pub const VDSO_MAX_SIZE: u64 = 0x4000;

/// Length of the x86-64 `syscall` instruction (`0f 05`).
pub const SYSCALL_INSN_LEN: u64 = 2;

/// Offsets of the fixed page's entry points.
pub mod entry {
    /// `syscall; ret`: an ordinary, traced syscall.
    pub const TRACED: u64 = 0x000;
    /// `syscall; ret`: allowed through the seccomp filter without a stop.
    pub const UNTRACED: u64 = 0x010;
    /// `syscall; ret`: used by the recorder and replayer to inject their own
    /// syscalls into a stopped tracee (mmap of the page excepted).
    pub const PRIVILEGED: u64 = 0x020;
    /// `int3`: a return address for injected calls.
    pub const TRAP: u64 = 0x030;
    /// The fault-tolerant copy ([`copy`](super::copy)): every access of the
    /// preload to memory the program named goes through it.
    pub const COPY: u64 = 0x040;
    /// The fault-tolerant probe of a byte's writability ([`copy`](super::copy)).
    pub const PROBE: u64 = 0x050;
}

/// The fault-tolerant copy at [`entry::COPY`], with which the preload
/// touches the program's memory (a name, an array the kernel reads, the
/// output it copies back), as the kernel's `copy_from_user` does: a
/// pointer the kernel would answer with `EFAULT` must not kill the program.
///
/// A SysV function `fn(dst, src, len) -> usize` answering the bytes it did
/// NOT copy (0: all). A fault (`SIGSEGV` or `SIGBUS` raised by the
/// instruction, `si_code` > 0) with the ip at [`copy::FAULT_IP`] is the
/// tracer's to fix up, never the program's: it moves the ip to
/// [`copy::RESUME_IP`] and resumes the thread without the signal. `rcx`
/// then holds the bytes left, as `rep movsb` leaves it at a fault. The
/// recorder and the replayer do the same at the same point (the memory is
/// the same), so the fault is not recorded.
///
/// Its sibling at [`entry::PROBE`], `fn(addr) -> u32`, reads the byte at
/// `addr` and writes it back: 0, or 1 when either access faulted (the
/// tracer moves the ip from [`copy::PROBE_LOAD_IP`] or
/// [`copy::PROBE_STORE_IP`] to [`copy::PROBE_FAILED_IP`]). Two plain moves
/// cost a few cycles where a one-byte `rep movsb` costs its start-up
/// (about 13 ns here). [`copy::resume_ip`] is the whole rule.
pub mod copy {
    use super::{entry, FIXED_PAGE_ADDR};

    /// The routine's bytes.
    pub const CODE: [u8; 11] = [
        0x48, 0x89, 0xd1, // mov rcx, rdx
        0xf3, 0xa4, // rep movsb
        0x48, 0x89, 0xc8, // mov rax, rcx
        0xc3, // ret
        0xcc, 0xcc,
    ];
    /// Offset of its `rep movsb` in [`CODE`].
    pub const FAULT_OFFSET: u64 = 3;
    /// Length of `rep movsb`.
    pub const FAULT_INSN_LEN: u64 = 2;
    /// Where the routine's `rep movsb` is in every tracee.
    pub const FAULT_IP: u64 = FIXED_PAGE_ADDR + entry::COPY + FAULT_OFFSET;
    /// Where a thread that faulted at [`FAULT_IP`] goes on.
    pub const RESUME_IP: u64 = FAULT_IP + FAULT_INSN_LEN;

    /// The probe's bytes.
    pub const PROBE_CODE: [u8; 14] = [
        0x0f, 0xb6, 0x07, // movzx eax, byte ptr [rdi]
        0x88, 0x07, // mov [rdi], al
        0x31, 0xc0, // xor eax, eax
        0xc3, // ret
        0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1
        0xc3, // ret
    ];
    /// The probe's load, its store, and where a fault at either goes on.
    pub const PROBE_LOAD_IP: u64 = FIXED_PAGE_ADDR + entry::PROBE;
    /// See [`PROBE_LOAD_IP`].
    pub const PROBE_STORE_IP: u64 = PROBE_LOAD_IP + 3;
    /// See [`PROBE_LOAD_IP`].
    pub const PROBE_FAILED_IP: u64 = PROBE_LOAD_IP + 8;

    /// Where a thread that faulted at `ip` goes on, when `ip` is one of the
    /// routines' accesses of the program's memory.
    pub const fn resume_ip(ip: u64) -> Option<u64> {
        match ip {
            FAULT_IP => Some(RESUME_IP),
            PROBE_LOAD_IP | PROBE_STORE_IP => Some(PROBE_FAILED_IP),
            _ => None,
        }
    }
}

/// Offset of the per-thread locals area from [`FIXED_PAGE_ADDR`]: its own
/// read-write page right after the (read-execute) fixed page.
pub const LOCALS_OFFSET: u64 = FIXED_PAGE_SIZE;

/// Address of the thread-locals page ([`ThreadLocals`] at its start). Below
/// 2 GiB, so stubs reach its fields with a 32-bit absolute address.
pub const THREAD_LOCALS_ADDR: u64 = FIXED_PAGE_ADDR + LOCALS_OFFSET;

/// Size of the thread-locals page.
pub const THREAD_LOCALS_SIZE: u64 = 0x1000;

// The stubs address the locals with a sign-extended 32-bit absolute
// address: the page must stay below 2 GiB.
const _: () = assert!(THREAD_LOCALS_ADDR + THREAD_LOCALS_SIZE <= 0x8000_0000);

/// The code bytes of one `syscall; ret` entry point.
pub const SYSCALL_RET: [u8; 3] = [0x0f, 0x05, 0xc3];

/// Builds the fixed page's contents (code only; the rest is zero).
pub const fn fixed_page_code() -> [u8; 0x60] {
    let mut page = [0xccu8; 0x60];
    let entries = [entry::TRACED, entry::UNTRACED, entry::PRIVILEGED];
    let mut i = 0;
    while i < entries.len() {
        let at = entries[i] as usize;
        page[at] = SYSCALL_RET[0];
        page[at + 1] = SYSCALL_RET[1];
        page[at + 2] = SYSCALL_RET[2];
        i += 1;
    }
    let mut j = 0;
    while j < copy::CODE.len() {
        page[entry::COPY as usize + j] = copy::CODE[j];
        j += 1;
    }
    let mut k = 0;
    while k < copy::PROBE_CODE.len() {
        page[entry::PROBE as usize + k] = copy::PROBE_CODE[k];
        k += 1;
    }
    page
}

/// The instruction pointer the kernel reports (and seccomp sees) for a
/// syscall issued from the entry point at `offset`: the address right after
/// its `syscall` instruction.
pub const fn syscall_ip(offset: u64) -> u64 {
    FIXED_PAGE_ADDR + offset + SYSCALL_INSN_LEN
}

/// The per-thread locals, at [`THREAD_LOCALS_ADDR`].
///
/// The page holds the locals of the thread that runs now. Because the
/// recorder runs one thread at a time and never switches away from a thread
/// whose ip is inside the syscall-buffer code, it can keep every thread's
/// copy itself and write the incoming thread's copy at each switch (rr does
/// the same with its thread-locals page).
///
/// ```text
///  THREAD_LOCALS_ADDR
///  +0x00  saved_rsp      u64   the stub saves the user rsp here
///  +0x08  alt_stack_top  u64   the stub switches rsp to this (16-byte aligned)
///  +0x10  buffer         u64   this thread's BufferHeader; 0: every hook call bails
///  +0x18  buffer_size    u64   bytes at `buffer`, header included
///  +0x20  desched_fd     i32   perf event fd the hook enables around a
///                              may-block syscall; -1: none (they bail);
///                              DESCHED_POLLED: buffer them unarmed, the
///                              recorder watches for blocked ones itself.
///                              The recorder writes the running thread's
///                              event here only while arming is worth its
///                              cost (another thread waits to run), else
///                              DESCHED_POLLED
///  +0x24  flags          u32   locals_flags: TRACE_YIELD, TRACE_FILE_WRITES,
///                              TRACE_WAKE, TRACE_ALL
///  +0x28  bail_after     u32   the hook bails once the buffer holds this
///                              many records (buffered syscalls since the
///                              thread's last event); 0: no such limit.
///                              Written with desched_fd and flags, under a
///                              policy whose slices end by counts (chaos)
///  +0x2c  reserved32     u32
///  +0x30  reserved       [u64; 2]
/// ```
///
/// Invariant the recorder keeps: once any site is patched, every thread's
/// copy has a valid `alt_stack_top` (one alt stack can serve all threads,
/// since at most one thread is ever inside the buffer code).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThreadLocals {
    /// The user rsp, saved by the stub's stack setup.
    pub saved_rsp: u64,
    /// The alt stack's top; the stub's stack setup loads it into rsp.
    pub alt_stack_top: u64,
    /// Address of this thread's [`BufferHeader`], or 0 (no buffer: bail).
    pub buffer: u64,
    /// Size in bytes of the buffer at `buffer`, header included.
    pub buffer_size: u64,
    /// File descriptor of the desched perf event, or -1.
    pub desched_fd: i32,
    /// [`locals_flags`] bits, written by the recorder.
    pub flags: u32,
    /// The records the buffer may hold before every syscall bails
    /// ([`budget_spent`]); 0: no limit. The recorder writes it for a
    /// thread whose slice ends after a count of syscalls, so that the
    /// count, not the moment a timer looks, decides where the slice ends.
    /// Replay leaves it 0: a bail comes right after a thread's last
    /// record, where replay forces one.
    pub bail_after: u32,
    /// Reserved, 0.
    pub reserved32: u32,
    /// Reserved, 0.
    pub reserved: [u64; 2],
}
const _: () = assert!(core::mem::size_of::<ThreadLocals>() == 64);

/// Bits of [`ThreadLocals::flags`].
pub mod locals_flags {
    /// Another thread waits to run: `sched_yield` bails, so that the
    /// recorder sees it and lets that thread run. Clear, `sched_yield` is
    /// buffered: there is no one to yield to (the kernel still gives the
    /// processor to other processes). Replay needs no such flag: a bail
    /// comes right after a thread's last record, where replay forces one.
    pub const TRACE_YIELD: u32 = 1;
    /// A file is mapped `MAP_SHARED` somewhere in the recording, or a
    /// process opened a `/proc/PID/mem`: the calls that change a file
    /// (`write`, `pwrite64`, `writev`, `pwritev`, `ftruncate`) bail, so that
    /// the recorder sees each one and records what it did to mapped memory
    /// (a write through `/proc/self/mem`, the new contents of a file that a
    /// shared mapping shows).
    pub const TRACE_FILE_WRITES: u32 = 2;
    /// The running thread was last preempted spinning: its `FUTEX_WAKE`s
    /// (the only futex op the buffer takes) bail, so that the recorder
    /// sees each one and lets the thread it woke run at once. A spinner
    /// that wakes a thread usually spins next for what that thread does
    /// (a hand-off through a lock or a rendezvous channel), and cannot
    /// get it before the recorder finds the spin and preempts it.
    pub const TRACE_WAKE: u32 = 4;
    /// A process of the recording made a fanotify group of a permission
    /// class: every syscall bails. A buffered syscall that meets a
    /// permission event (an `open` or a `read` of a marked file) sleeps in
    /// the kernel until the group's listener answers, in a sleep no signal
    /// but a fatal one ends, so it can be neither unwound nor switched
    /// away from inside the buffer code, and the listener, another thread
    /// of the recording, never ran: the recording stalled. Traced, such a
    /// call blocks as any traced syscall does, while the others run.
    pub const TRACE_ALL: u32 = 8;
}

/// Whether a buffer holding `num_records` records has spent the locals'
/// `bail_after` budget (0: no budget): then every syscall bails.
pub const fn budget_spent(num_records: u32, bail_after: u32) -> bool {
    bail_after != 0 && num_records >= bail_after
}

/// Whether the hook bails syscall `nr` because of the locals' `flags`.
pub const fn flags_bail(nr: u64, flags: u32) -> bool {
    use buffered::nr;
    if flags & locals_flags::TRACE_ALL != 0 {
        return true;
    }
    match nr {
        nr::SCHED_YIELD => flags & locals_flags::TRACE_YIELD != 0,
        nr::FUTEX => flags & locals_flags::TRACE_WAKE != 0,
        nr::WRITE | nr::PWRITE64 | nr::WRITEV | nr::PWRITEV | nr::FTRUNCATE => {
            flags & locals_flags::TRACE_FILE_WRITES != 0
        }
        _ => false,
    }
}

/// Whether the hook bails `open` or `openat` (`nr`) with `args` because of
/// the locals' `flags`: one that truncates (`O_TRUNC`) while writes are
/// traced ([`locals_flags::TRACE_FILE_WRITES`]): it changes a file as a
/// write does.
pub const fn open_flags_bail(nr: u64, args: &[u64; 6], flags: u32) -> bool {
    const O_TRUNC: u64 = 0o1000;
    if flags & locals_flags::TRACE_FILE_WRITES == 0 {
        return false;
    }
    match nr {
        buffered::nr::OPEN => args[1] & O_TRUNC != 0,
        buffered::nr::OPENAT => args[2] & O_TRUNC != 0,
        _ => false,
    }
}

/// Whether the hook bails an `open` or `openat` of `path` (its first
/// bytes, as many as the caller could read up to 6): a name under
/// `/proc/`, where `/proc/PID/mem` is, whose writes change memory. The
/// recorder sees such an open traced, and then traces the process's
/// writes ([`locals_flags::TRACE_FILE_WRITES`]).
pub const fn open_bails(path: &[u8]) -> bool {
    matches!(path, [b'/', b'p', b'r', b'o', b'c', b'/', ..])
}

/// `desched_fd` value: may-block syscalls are buffered without a perf event;
/// the recorder notices a thread blocked in one (its ticks read
/// `/proc/TID/syscall`) and unwinds it.
pub const DESCHED_POLLED: i32 = -2;

/// The buffer area's fixed address: right after the thread-locals page, so
/// that the recorder maps both with one `mmap`.
pub const AREA_ADDR: u64 = THREAD_LOCALS_ADDR + THREAD_LOCALS_SIZE;

/// Offsets of the [`ThreadLocals`] fields the stubs address directly, and
/// of what follows the locals in their page.
pub mod locals {
    /// `ThreadLocals::saved_rsp`.
    pub const SAVED_RSP: u64 = 0x00;
    /// `ThreadLocals::alt_stack_top`.
    pub const ALT_STACK_TOP: u64 = 0x08;
    /// `ThreadLocals::buffer`.
    pub const BUFFER: u64 = 0x10;
    /// `ThreadLocals::buffer_size`.
    pub const BUFFER_SIZE: u64 = 0x18;
    /// `ThreadLocals::desched_fd`.
    pub const DESCHED_FD: u64 = 0x20;
    /// `ThreadLocals::flags` (right after `desched_fd`: the recorder writes
    /// both at once).
    pub const FLAGS: u64 = 0x24;
    /// `ThreadLocals::bail_after` (right after `flags`: written with them).
    pub const BAIL_AFTER: u64 = 0x28;
    /// After the [`super::ThreadLocals`]: `[OutputFd; OUTPUT_FDS_MAX]`
    /// (see [`super::OutputFd`]), the output table: the descriptors that
    /// write to the recorder's own stdout or stderr, fd 1 and 2 included
    /// when they do. The hook buffers writes to them with their bytes in the
    /// record; writes to fd 1 or 2 when they are not in the table bail.
    pub const OUTPUT_FDS: u64 = 0x40;
    /// Entries of the `OUTPUT_FDS` array.
    pub const OUTPUT_FDS_MAX: usize = 16;
    /// 256 bytes the recorder writes syscall arguments to for syscalls it
    /// injects (the desched event's `perf_event_attr`); the preload never
    /// reads them.
    pub const RECORDER_SCRATCH: u64 = 0x800;
}

/// One entry of the thread-locals page's output table
/// ([`locals::OUTPUT_FDS`]).
///
/// ```text
///  +0x00  fd      i32  the descriptor; -1: an unused entry
///  +0x04  stream  i32  1 or 2: writes to `fd` reach the recorder's stdout
///                      or stderr: the hook buffers them with their bytes
///                      (`record_flags`); 0: they may, the hook bails (the
///                      recorder decides at the traced write);
///                      OutputFd::NOT_OUTPUT: fd 1 or 2 writing elsewhere
///                      (/dev/null, a file): ordinary buffered writes
/// ```
///
/// Writes to fd 1 or 2 when the table does not list them bail. The hook
/// also bails a `close` of a listed descriptor, so that the recorder sees
/// every change of the table's descriptors (the others are `dup2`-style
/// syscalls, always traced); a descriptor to the recorder's output that
/// the program opens by path is unlisted, which for fd 1 and 2 is safe.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputFd {
    /// The descriptor, or -1.
    pub fd: i32,
    /// The stream: 1, 2, 0 (bail), or [`OutputFd::NOT_OUTPUT`].
    pub stream: i32,
}
const _: () = assert!(core::mem::size_of::<OutputFd>() == 8);
const _: () = assert!(
    locals::OUTPUT_FDS + (locals::OUTPUT_FDS_MAX * core::mem::size_of::<OutputFd>()) as u64
        <= locals::RECORDER_SCRATCH
);
const _: () = assert!(locals::RECORDER_SCRATCH + 256 <= THREAD_LOCALS_SIZE);

impl OutputFd {
    /// An unused entry.
    pub const NONE: OutputFd = OutputFd { fd: -1, stream: 0 };
    /// `stream` of fd 1 or 2 when they do not write to the recorder's
    /// stdout or stderr: their writes are buffered like any other.
    pub const NOT_OUTPUT: i32 = 3;
}
const _: () = assert!(core::mem::offset_of!(ThreadLocals, saved_rsp) as u64 == locals::SAVED_RSP);
const _: () =
    assert!(core::mem::offset_of!(ThreadLocals, alt_stack_top) as u64 == locals::ALT_STACK_TOP);
const _: () = assert!(core::mem::offset_of!(ThreadLocals, buffer) as u64 == locals::BUFFER);
const _: () =
    assert!(core::mem::offset_of!(ThreadLocals, buffer_size) as u64 == locals::BUFFER_SIZE);
const _: () = assert!(core::mem::offset_of!(ThreadLocals, desched_fd) as u64 == locals::DESCHED_FD);
const _: () = assert!(core::mem::offset_of!(ThreadLocals, flags) as u64 == locals::FLAGS);
const _: () = assert!(core::mem::offset_of!(ThreadLocals, bail_after) as u64 == locals::BAIL_AFTER);

/// Magic syscall numbers: far above any real syscall, so a kernel that sees
/// one (no recorder) answers `-ENOSYS`; the recorder intercepts them (they
/// are issued through [`entry::TRACED`]) and answers itself.
pub mod magic {
    /// The preload's initialization handshake.
    ///
    /// Arguments: `rdi` = address of the preload's [`InitParams`](super::InitParams),
    /// `rsi` = [`PROTOCOL_VERSION`](super::PROTOCOL_VERSION), `rdx` =
    /// `size_of::<InitParams>()`. The recorder fills the `reply_*` fields and
    /// makes the syscall return 0 (buffering enabled) or a negative errno
    /// (disabled: the preload never buffers). `-ENOSYS` means no recorder.
    pub const INIT: u64 = 0x7272_0001;
}

/// The structure the preload passes in the [`magic::INIT`] handshake. It
/// lives in the preload's writable data; the recorder reads the request
/// fields and writes the reply fields with remote memory writes.
///
/// ```text
///  +0x00  protocol_version  u32  PROTOCOL_VERSION            (preload)
///  +0x04  size              u32  size_of::<InitParams>()      (preload)
///  +0x08  hook_entry        u64  address stubs call           (preload)
///  +0x10  syscall_hook      u64  the Rust hook, for diagnostics (preload)
///  +0x18  reply_area        u64  SyscallbufArea address, 0: none (recorder)
///  +0x20  reply_area_size   u64  its size                     (recorder)
///  +0x28  reply_flags       u64  reserved, 0                  (recorder)
/// ```
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InitParams {
    /// [`PROTOCOL_VERSION`] as the preload was built with it.
    pub protocol_version: u32,
    /// `size_of::<InitParams>()`, so that the layout can grow.
    pub size: u32,
    /// Address of the preload's assembly hook entry: what the stubs call.
    pub hook_entry: u64,
    /// Address of the Rust `syscall_hook` function (diagnostics only).
    pub syscall_hook: u64,
    /// Reply: address of the syscall-buffer area the recorder mapped.
    pub reply_area: u64,
    /// Reply: size of that area.
    pub reply_area_size: u64,
    /// Reply: reserved, 0.
    pub reply_flags: u64,
}
const _: () = assert!(core::mem::size_of::<InitParams>() == 48);

/// Layout of the syscall-buffer area the recorder maps (read-write, private
/// anonymous) when it answers the handshake, and names in
/// [`InitParams::reply_area`].
///
/// ```text
///  area + 0x0000               guard page (PROT_NONE): alt stack overflow faults
///  area + 0x1000 .. +0x9000    alt stack (ALT_STACK_SIZE), top at +0x9000
///  area + BUFFERS_OFFSET       buffer slot 0: BufferHeader, then records
///  area + BUFFERS_OFFSET + BUFFER_SIZE * i   buffer slot i (one per thread)
/// ```
pub mod area {
    /// Size of the alt stack's guard page.
    pub const GUARD_SIZE: u64 = 0x1000;
    /// Size of the alt stack (the hook needs well under 4 KiB).
    pub const ALT_STACK_SIZE: u64 = 0x8000;
    /// Offset of the alt stack's top (the value for `alt_stack_top`).
    pub const ALT_STACK_TOP: u64 = GUARD_SIZE + ALT_STACK_SIZE;
    /// Offset of buffer slot 0.
    pub const BUFFERS_OFFSET: u64 = ALT_STACK_TOP;
    /// Size of one thread's buffer, header included: 1 MiB, so that a
    /// tight loop of buffered syscalls stops to be flushed about every
    /// 30,000 syscalls (the area is mapped lazily: untouched pages cost
    /// nothing).
    pub const BUFFER_SIZE: u64 = 0x10_0000;

    /// Size of an area with `slots` buffers.
    pub const fn size(slots: u64) -> u64 {
        BUFFERS_OFFSET + BUFFER_SIZE * slots
    }

    /// Address of buffer slot `slot` in the area at `area`.
    pub const fn buffer(area: u64, slot: u64) -> u64 {
        area + BUFFERS_OFFSET + BUFFER_SIZE * slot
    }
}

/// `BufferHeader::magic`: "RRSB" little-endian.
pub const BUFFER_MAGIC: u32 = u32::from_le_bytes(*b"RRSB");

/// The header at the start of each per-thread syscall buffer; committed
/// records follow it back to back.
///
/// ```text
///  +0x00  magic         u32  BUFFER_MAGIC                      (recorder)
///  +0x04  capacity      u32  record bytes after the header     (recorder)
///  +0x08  used          u32  bytes of committed records        (preload; recorder resets)
///  +0x0c  num_records   u32  committed records                 (preload; recorder resets)
///  +0x10  in_flight     u32  1 while the hook builds a record  (preload)
///  +0x14  abort_commit  u32  1: discard the in-flight record and bail (recorder)
///  +0x18  aborted       u32  records discarded because of abort_commit (preload)
///  +0x1c  force_bail    u32  (recorder) non-zero: bail at once, so that the
///                           thread stops at its next syscall
///  +0x20  records ...
/// ```
///
/// Flushing: at every recorded event the recorder copies `used` bytes of
/// records into the trace and sets `used` and `num_records` to 0. The hook
/// bails when a record would not fit, so the traced syscall that follows is
/// itself such an event.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BufferHeader {
    /// [`BUFFER_MAGIC`].
    pub magic: u32,
    /// Bytes available for records after this header.
    pub capacity: u32,
    /// Bytes of committed records.
    pub used: u32,
    /// Number of committed records.
    pub num_records: u32,
    /// 1 while the hook builds a record (between reserving and committing).
    pub in_flight: u32,
    /// Set by the recorder to abort the in-flight record (unwinding).
    pub abort_commit: u32,
    /// Records the hook discarded because of `abort_commit`.
    pub aborted: u32,
    /// Reserved, 0.
    pub force_bail: u32,
}

/// Offsets of [`BufferHeader`]'s fields (the recorder writes them remotely).
#[allow(missing_docs)]
pub mod header {
    pub const USED: u64 = 0x08;
    pub const NUM_RECORDS: u64 = 0x0c;
    pub const IN_FLIGHT: u64 = 0x10;
    pub const ABORT_COMMIT: u64 = 0x14;
    pub const ABORTED: u64 = 0x18;
    pub const FORCE_BAIL: u64 = 0x1c;
}
const _: () = assert!(core::mem::offset_of!(BufferHeader, used) as u64 == header::USED);
const _: () =
    assert!(core::mem::offset_of!(BufferHeader, num_records) as u64 == header::NUM_RECORDS);
const _: () = assert!(core::mem::offset_of!(BufferHeader, in_flight) as u64 == header::IN_FLIGHT);
const _: () =
    assert!(core::mem::offset_of!(BufferHeader, abort_commit) as u64 == header::ABORT_COMMIT);
const _: () = assert!(core::mem::offset_of!(BufferHeader, aborted) as u64 == header::ABORTED);
const _: () = assert!(core::mem::offset_of!(BufferHeader, force_bail) as u64 == header::FORCE_BAIL);
const _: () = assert!(core::mem::size_of::<BufferHeader>() == 32);

/// One buffered syscall. Its output bytes (`out_len` of them) follow the
/// header; the next record starts at the next multiple of 8.
///
/// ```text
///  +0x00  nr        u16  syscall number
///  +0x02  flags     u16  record_flags: 0, or the stream of program output
///  +0x04  out_len   u32  output bytes following this header
///  +0x08  result    i64  the syscall's return value
///  +0x10  out_addr  u64  user address the output was copied to (0: none);
///                        for program output: the bytes the program asked
///                        to write
///  +0x18  out bytes ...  padded to 8
/// ```
///
/// The untraced syscall writes its output into the record, and the preload
/// copies it to `out_addr`: in replay the replayer fills the record and the
/// same copy reproduces the memory write with identical control flow.
///
/// A write to the program's output ([`record_flags::STDOUT`],
/// [`record_flags::STDERR`]) is the other way round: its bytes are input,
/// the ones the kernel took (`result` of them), copied from the program's
/// buffers into the record after the syscall; replay writes them to its own
/// stdout or stderr.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordHeader {
    /// The syscall number.
    pub nr: u16,
    /// [`record_flags`].
    pub flags: u16,
    /// Output bytes following this header.
    pub out_len: u32,
    /// The syscall's return value.
    pub result: i64,
    /// Where the output bytes were copied to in the tracee (0: none).
    pub out_addr: u64,
}
const _: () = assert!(core::mem::size_of::<RecordHeader>() == 24);

/// [`RecordHeader::flags`].
pub mod record_flags {
    /// The data are bytes written to the recorder's stdout (program output).
    pub const STDOUT: u16 = 1;
    /// The data are bytes written to the recorder's stderr.
    pub const STDERR: u16 = 2;

    /// The flag of output stream `stream` (1 or 2), 0 for any other.
    pub const fn of_stream(stream: i32) -> u16 {
        match stream {
            1 => STDOUT,
            2 => STDERR,
            _ => 0,
        }
    }

    /// The output stream (1 or 2) a record with `flags` wrote to, if any.
    pub const fn stream(flags: u16) -> Option<i32> {
        match flags {
            STDOUT => Some(1),
            STDERR => Some(2),
            _ => None,
        }
    }
}

/// Size of a record with `out_len` output bytes, padding included.
pub const fn record_size(out_len: u32) -> u32 {
    (core::mem::size_of::<RecordHeader>() as u32 + out_len + 7) & !7
}

/// Fixed byte sequences of the extended jump patch (the stub) that the
/// preload's hook entry relies on. See `docs/syscall-buffer.md`.
///
/// ```text
///  <displaced code before the syscall>
///  setup:   mov [saved_rsp], rsp          48 89 24 25 <locals+0x00>
///           mov rsp, [alt_stack_top]      48 8b 24 25 <locals+0x08>
///           pushfq                        9c
///           cld                           fc
///           call [rip+hook_slot]          ff 15 <rel32>
///  bail:    popfq                         9d
///           mov rsp, [saved_rsp]          48 8b 24 25 <locals+0x00>
///           syscall                       0f 05   (traced)
///  resume:  <displaced code after the syscall>
///           jmp return_addr               e9 <rel32>
///  hook_slot: .quad hook_entry            (8-aligned)
/// ```
///
/// The hook entry returns to `bail` to bail; otherwise it performs the
/// stack restore itself and jumps to `bail + BAIL_TO_RESUME` with rax = the
/// result.
pub mod buffered;

pub mod stub {
    use super::{locals, THREAD_LOCALS_ADDR};

    const fn abs32(field: u64) -> [u8; 4] {
        ((THREAD_LOCALS_ADDR + field) as u32).to_le_bytes()
    }

    const fn mov_abs(op: u8, field: u64) -> [u8; 8] {
        let a = abs32(field);
        [0x48, op, 0x24, 0x25, a[0], a[1], a[2], a[3]]
    }

    /// `mov [saved_rsp], rsp; mov rsp, [alt_stack_top]; pushfq; cld`.
    pub const SETUP: [u8; 18] = {
        let save = mov_abs(0x89, locals::SAVED_RSP);
        let load = mov_abs(0x8b, locals::ALT_STACK_TOP);
        let mut out = [0u8; 18];
        let mut i = 0;
        while i < 8 {
            out[i] = save[i];
            out[8 + i] = load[i];
            i += 1;
        }
        out[16] = 0x9c;
        out[17] = 0xfc;
        out
    };

    /// `popfq; mov rsp, [saved_rsp]`: the stack restore at the bail label.
    pub const RESTORE: [u8; 9] = {
        let load = mov_abs(0x8b, locals::SAVED_RSP);
        let mut out = [0u8; 9];
        out[0] = 0x9d;
        let mut i = 0;
        while i < 8 {
            out[1 + i] = load[i];
            i += 1;
        }
        out
    };

    /// Bytes from the bail label (the hook's return address) to the resume
    /// label: the stack restore and the traced `syscall`.
    pub const BAIL_TO_RESUME: u64 = RESTORE.len() as u64 + super::SYSCALL_INSN_LEN;

    /// `rdtsc` (`0f 31`): the trapping instruction of an rdtsc site's stub,
    /// where a syscall site's stub has its traced `syscall`.
    pub const RDTSC: [u8; 2] = [0x0f, 0x31];

    /// Offset from the bail label of a stub's trapping instruction (the
    /// traced `syscall`, or `rdtsc`): the hook entry reads the two bytes
    /// there to tell an rdtsc site's stub from a syscall site's.
    pub const BAIL_TO_TRAP: u64 = RESTORE.len() as u64;

    /// `jmp short` over the [`RESTORE`] that follows it: in an rdtsc site's
    /// stub, after the (trapped, emulated) `rdtsc` of the bail path.
    pub const RDTSC_SKIP: [u8; 2] = [0xeb, RESTORE.len() as u8];

    /// In an rdtsc site's stub, bytes from the bail label to the done label
    /// (a second [`RESTORE`], then the displaced code after the `rdtsc`):
    /// where the hook entry returns with `edx:eax` = the synthesized TSC.
    ///
    /// ```text
    ///  bail:   popfq; mov rsp, [saved_rsp]     RESTORE
    ///          rdtsc                           0f 31   (traps: emulated)
    ///          jmp short resume                eb 09
    ///  done:   popfq; mov rsp, [saved_rsp]     RESTORE
    ///  resume: <displaced code after the rdtsc>
    /// ```
    pub const RDTSC_BAIL_TO_DONE: u64 =
        RESTORE.len() as u64 + RDTSC.len() as u64 + RDTSC_SKIP.len() as u64;
}

/// The synthesized TSC that patched `rdtsc` sites return and the recorder's
/// trap emulation of `rdtsc`/`rdtscp` answers: `CLOCK_MONOTONIC_RAW` in
/// nanoseconds, a 1 GHz counter, monotonic across sites, threads and
/// processes. The preload reads the clock with a buffered `clock_gettime`
/// (replay answers it from the record like any other).
pub mod tsc {
    /// `CLOCK_MONOTONIC_RAW`.
    pub const CLOCK: u64 = 4;

    /// The counter's value for a `timespec` read from [`CLOCK`].
    pub const fn from_timespec(sec: i64, nsec: i64) -> u64 {
        (sec as u64)
            .wrapping_mul(1_000_000_000)
            .wrapping_add(nsec as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sched_yield_bails_on_trace_yield() {
        let y = buffered::nr::SCHED_YIELD;
        assert!(flags_bail(y, locals_flags::TRACE_YIELD));
        assert!(!flags_bail(y, 0));
        assert!(buffered::plan_for(y).is_some());
        for nr in [
            buffered::nr::GETPID,
            buffered::nr::WRITE,
            buffered::nr::READ,
        ] {
            assert!(!flags_bail(nr, locals_flags::TRACE_YIELD));
        }
    }

    #[test]
    fn trace_all_bails_every_buffered_call() {
        let mut bailed = 0;
        for nr in 0..512 {
            if buffered::plan_for(nr).is_some() {
                assert!(flags_bail(nr, locals_flags::TRACE_ALL), "{nr}");
                bailed += 1;
            }
        }
        // open, openat and read among them: the calls a permission event
        // blocks.
        assert!(bailed > 40, "{bailed}");
        for nr in [buffered::nr::OPEN, buffered::nr::OPENAT, buffered::nr::READ] {
            assert!(!flags_bail(nr, 0), "{nr}");
        }
    }

    #[test]
    fn only_futex_bails_on_trace_wake() {
        let w = locals_flags::TRACE_WAKE;
        assert!(flags_bail(buffered::nr::FUTEX, w));
        assert!(!flags_bail(buffered::nr::FUTEX, 0));
        assert!(!flags_bail(
            buffered::nr::FUTEX,
            locals_flags::TRACE_YIELD | locals_flags::TRACE_FILE_WRITES
        ));
        for nr in [
            buffered::nr::SCHED_YIELD,
            buffered::nr::WRITE,
            buffered::nr::READ,
            buffered::nr::GETPID,
        ] {
            assert!(!flags_bail(nr, w), "{nr}");
        }
    }

    #[test]
    fn trace_file_writes_bails_the_calls_that_change_files() {
        let f = locals_flags::TRACE_FILE_WRITES;
        for nr in [
            buffered::nr::WRITE,
            buffered::nr::PWRITE64,
            buffered::nr::WRITEV,
            buffered::nr::PWRITEV,
            buffered::nr::FTRUNCATE,
        ] {
            assert!(flags_bail(nr, f), "{nr}");
            assert!(!flags_bail(nr, 0), "{nr}");
            assert!(!flags_bail(nr, locals_flags::TRACE_YIELD), "{nr}");
        }
        for nr in [
            buffered::nr::READ,
            buffered::nr::PREAD64,
            buffered::nr::SCHED_YIELD,
        ] {
            assert!(!flags_bail(nr, f), "{nr}");
        }
    }

    #[test]
    fn truncating_opens_bail_while_writes_are_traced() {
        let f = locals_flags::TRACE_FILE_WRITES;
        let trunc = 0o1000 | 0o2;
        let open = [0, trunc, 0, 0, 0, 0];
        let openat = [0, 0, trunc, 0, 0, 0];
        assert!(open_flags_bail(buffered::nr::OPEN, &open, f));
        assert!(open_flags_bail(buffered::nr::OPENAT, &openat, f));
        assert!(!open_flags_bail(buffered::nr::OPENAT, &openat, 0));
        assert!(!open_flags_bail(
            buffered::nr::OPENAT,
            &[0, 0, 0o2, 0, 0, 0],
            f
        ));
        assert!(!open_flags_bail(buffered::nr::READ, &open, f));
    }

    #[test]
    fn opens_under_proc_bail() {
        assert!(open_bails(b"/proc/"));
        assert!(open_bails(b"/proc/self/mem"));
        assert!(!open_bails(b"/proc"));
        assert!(!open_bails(b"/tmp/x"));
        assert!(!open_bails(b"proc/s"));
        assert!(!open_bails(b""));
    }

    #[test]
    fn entry_points_hold_syscall_ret() {
        let code = fixed_page_code();
        for off in [entry::TRACED, entry::UNTRACED, entry::PRIVILEGED] {
            assert_eq!(&code[off as usize..off as usize + 3], &SYSCALL_RET);
        }
        assert_eq!(code[entry::TRAP as usize], 0xcc);
        let at = entry::COPY as usize;
        assert_eq!(&code[at..at + copy::CODE.len()], &copy::CODE);
        let rep = at + copy::FAULT_OFFSET as usize;
        assert_eq!(&code[rep..rep + 2], &[0xf3, 0xa4], "rep movsb");
        assert_eq!(copy::FAULT_IP, 0x7000_0043);
        assert_eq!(copy::RESUME_IP, 0x7000_0045);
        let probe = entry::PROBE as usize;
        assert_eq!(&code[probe..probe + 14], &copy::PROBE_CODE);
        assert_eq!(code[probe + 3], 0x88, "the store");
        assert_eq!(code[probe + 8], 0xb8, "mov eax, 1");
        assert_eq!(copy::resume_ip(0x7000_0043), Some(0x7000_0045));
        assert_eq!(copy::resume_ip(0x7000_0050), Some(0x7000_0058));
        assert_eq!(copy::resume_ip(0x7000_0053), Some(0x7000_0058));
        assert_eq!(copy::resume_ip(0x7000_0055), None);
        assert_eq!(copy::resume_ip(0x7000_0040), None);
        assert_eq!(syscall_ip(entry::UNTRACED), 0x7000_0012);
    }

    #[test]
    fn stub_sequences_address_the_locals_page() {
        // 0x70001000 and 0x70001008 as disp32 with a SIB "no base, no index".
        assert_eq!(
            stub::SETUP,
            [
                0x48, 0x89, 0x24, 0x25, 0x00, 0x10, 0x00, 0x70, 0x48, 0x8b, 0x24, 0x25, 0x08, 0x10,
                0x00, 0x70, 0x9c, 0xfc
            ]
        );
        assert_eq!(
            stub::RESTORE,
            [0x9d, 0x48, 0x8b, 0x24, 0x25, 0x00, 0x10, 0x00, 0x70]
        );
        assert_eq!(stub::BAIL_TO_RESUME, 11);
        assert_eq!(stub::BAIL_TO_TRAP, 9);
        assert_eq!(stub::RDTSC_SKIP, [0xeb, 0x09]);
        assert_eq!(stub::RDTSC_BAIL_TO_DONE, 13);
    }

    #[test]
    fn the_synthesized_tsc_counts_nanoseconds() {
        assert_eq!(tsc::from_timespec(0, 0), 0);
        assert_eq!(tsc::from_timespec(2, 5), 2_000_000_005);
        assert_eq!(tsc::from_timespec(86_400, 999_999_999), 86_400_999_999_999);
    }

    #[test]
    fn record_sizes_are_padded_to_eight() {
        assert_eq!(record_size(0), 24);
        assert_eq!(record_size(1), 32);
        assert_eq!(record_size(8), 32);
        assert_eq!(record_size(9), 40);
    }

    #[test]
    fn record_flags_name_the_streams() {
        assert_eq!(record_flags::stream(record_flags::of_stream(1)), Some(1));
        assert_eq!(record_flags::stream(record_flags::of_stream(2)), Some(2));
        assert_eq!(record_flags::of_stream(0), 0);
        assert_eq!(record_flags::stream(0), None);
        // The flags share the old `nr: u32`'s high half: records without
        // them read the same.
        assert_eq!(core::mem::offset_of!(RecordHeader, flags), 2);
        assert_eq!(core::mem::offset_of!(RecordHeader, out_len), 4);
    }

    #[test]
    fn area_layout_is_page_aligned() {
        assert_eq!(area::ALT_STACK_TOP % 0x1000, 0);
        assert_eq!(
            area::buffer(0x10_0000, 2),
            0x10_0000 + 0x9000 + 2 * 0x10_0000
        );
        assert_eq!(area::size(1) % 0x1000, 0);
    }
}
