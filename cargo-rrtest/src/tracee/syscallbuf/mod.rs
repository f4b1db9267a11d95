//! The syscall buffer as the recorder and the replayer drive it, in exactly
//! the same way (docs/syscall-buffer.md; layouts in `rrtest_abi`).
//!
//! - [`init`]: the preload library's handshake. The thread-locals page and
//!   the buffer area are mapped, with one `mmap`, at their fixed addresses.
//! - [`Space`]: what the tracer knows of one address space's buffer: the
//!   hook, the stub pages, and the patched sites with their stubs.
//! - [`plan_patch`] / [`apply_patch`]: patching a syscall site. The recorder
//!   plans the patch; replay plans it again from the same code and checks
//!   that it gets the recorded bytes.
//! - [`pending_records`], [`read_records`], [`mark_flushed`],
//!   [`parse_records`]: the buffer's committed records, as the recorder
//!   flushes them and as replay reads them back.
//! - [`deliver_signal`], [`fix_sigreturn`]: a signal handler never sees a
//!   stub address in its frame. A signal delivered to a thread in a stub
//!   gets the frame's saved ip rewritten to the equivalent original address;
//!   `rt_sigreturn` maps an original address that lies inside a patched
//!   region back to the stub.
//!
//! - [`open_desched`], [`set_desched_and_flags`]: a thread's desched event (a
//!   software context-switch counter that signals the thread when it is
//!   switched out inside a may-block buffered syscall), and the locals'
//!   `desched_fd` that tells the hook whether to arm it.
//!
//! One buffer serves every thread of a process: the recorder runs one thread
//! at a time and never switches away from a thread inside the buffer code,
//! and it writes the records before each event of the thread that made
//! them.

use std::collections::HashSet;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use rrtest_abi::{
    area, header, locals, record_flags, record_size, BufferHeader, InitParams, OutputFd,
    RecordHeader, ThreadLocals, AREA_ADDR, BUFFER_MAGIC, DESCHED_POLLED, FIXED_PAGE_ADDR,
    PROTOCOL_VERSION, THREAD_LOCALS_ADDR, THREAD_LOCALS_SIZE,
};

use rrtest_sys::perf;
use rrtest_sys::ptrace::{self, Regs, WaitEvent};
use rrtest_sys::RemoteMem;
use rrtest_syscalls::patch::{self, Anchor, PatchSite, Refusal, Stub, StubIp};
use rrtest_trace::PatchEvent;

/// Buffer slots in the area: one, shared by all threads (see the module doc).
const SLOTS: u64 = 1;
/// The buffer's address.
pub const BUFFER_ADDR: u64 = area::buffer(AREA_ADDR, 0);
/// Bytes mapped at a time for stubs.
const STUB_CHUNK: u64 = 0x1_0000;
/// Bytes of code read after a syscall to analyze its site.
const WINDOW: u64 = 64;
/// Offset of the saved `rip` in a signal frame, from the stack pointer at
/// `rt_sigreturn`'s entry (which points at the `ucontext`): `uc_mcontext`
/// is at 40, and `rip` is the 17th word of the `sigcontext`.
const FRAME_RIP_AT_SIGRETURN: u64 = 40 + 16 * 8;

/// The buffer state of one address space.
#[derive(Debug, Clone, Default)]
pub struct Space {
    /// The preload library's hook entry (the stubs call it).
    pub hook_entry: u64,
    /// The patched sites' stubs, in patching order.
    pub stubs: Vec<Stub>,
    /// The stub page being filled: (address, length).
    page: Option<(u64, u64)>,
    /// Its next free byte.
    next_stub: u64,
    /// Syscall instructions never to try again (refused, or out of range).
    pub refused: HashSet<u64>,
    /// The address space is another process's (a vfork child before its
    /// exec): use the buffer, never patch.
    pub borrowed: bool,
    /// The output table: the descriptors that write to the recorder's
    /// stdout or stderr, with their stream (recording only; see
    /// `rrtest_abi::locals::OUTPUT_FDS`).
    pub output_fds: Vec<OutputFd>,
    /// The table in the process's memory is not `output_fds`: a vfork
    /// child, which shares the memory, wrote its own; the recorder writes
    /// it again when this thread (the one that made the vfork, which the
    /// child's exec or exit releases) finishes a traced syscall (recording
    /// only).
    pub output_fds_stale: Option<i32>,
    /// The table last written to the process's memory, not yet in the
    /// trace: the recorder writes it (an output-table record) right after
    /// the event it changed at (recording only).
    pub pending_table: Option<Vec<OutputFd>>,
    /// The buffer's records already in the trace (recording only).
    pub flushed: Flushed,
    /// The locals' `desched_fd` as last written (recording only): a
    /// thread's desched event while it runs with arming on, else
    /// [`DESCHED_POLLED`].
    pub desched_now: i32,
    /// The locals' `flags` as last written (recording only).
    pub flags_now: u32,
    /// An rdtsc site is patched: flushed records may hold the synthesized
    /// TSC's clock reads, which the stats count (recording only).
    pub rdtsc_sites: bool,
}

/// How much of a buffer is already in the trace: its first `records`
/// records, `bytes` bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flushed {
    /// Bytes.
    pub bytes: u32,
    /// Records.
    pub records: u32,
}

impl Space {
    /// A fresh space after the handshake.
    pub fn new(hook_entry: u64) -> Space {
        Space {
            hook_entry,
            desched_now: DESCHED_POLLED,
            ..Space::default()
        }
    }

    /// The stub whose code contains `ip`.
    pub fn stub_at(&self, ip: u64) -> Option<&Stub> {
        self.stubs
            .iter()
            .find(|s| ip >= s.addr && ip < s.layout.end)
    }

    /// Whether a thread at `ip` with stack pointer `rsp` is inside buffer
    /// code, where it must not be interrupted, preempted or given a signal:
    /// a stub between its setup and its traced `syscall`, the hook (it runs
    /// on the alt stack), or the fixed page (the untraced gate).
    pub fn in_buffer_code(&self, ip: u64, rsp: u64) -> bool {
        const ALT_STACK: std::ops::Range<u64> =
            AREA_ADDR + area::GUARD_SIZE..AREA_ADDR + area::ALT_STACK_TOP + 1;
        if (FIXED_PAGE_ADDR..FIXED_PAGE_ADDR + 0x1000).contains(&ip) || ALT_STACK.contains(&rsp) {
            return true;
        }
        matches!(
            self.stub_at(ip).map(|s| s.stub_to_original(ip)),
            Some(StubIp::InBuffer)
        )
    }

    /// The stub equivalent of `ip` when it lies strictly inside a patched
    /// region (where the original code is gone). The region starts at the
    /// first instruction displaced from before the `syscall` (`mov eax, NR`),
    /// if any, so the `syscall` itself is then inside.
    pub fn inside_patched(&self, ip: u64) -> Option<u64> {
        self.stubs.iter().find_map(|s| {
            let start = region_start(s);
            (ip > start && ip < s.return_addr)
                .then(|| s.original_to_stub(ip))
                .flatten()
        })
    }

    /// Sets the output table's entry for `fd`, given the stream it writes
    /// to (1 or 2) if it is output: that stream; for fd 1 or 2 writing
    /// elsewhere `OutputFd::NOT_OUTPUT` (their writes are then buffered,
    /// not bailed); otherwise no entry. Returns whether the table changed.
    /// A full table drops the new entry (see docs/syscall-buffer.md,
    /// Limits).
    pub fn set_output_fd(&mut self, fd: i32, output: Option<i32>) -> bool {
        let before = self.output_fds.clone();
        self.output_fds.retain(|e| e.fd != fd);
        let stream = output.or((fd == 1 || fd == 2).then_some(OutputFd::NOT_OUTPUT));
        if let Some(stream) = stream {
            if self.output_fds.len() < locals::OUTPUT_FDS_MAX {
                self.output_fds.push(OutputFd { fd, stream });
            }
        }
        self.output_fds != before
    }

    /// Drops the table's entries for descriptors `lo..=hi` (a
    /// `close_range`). Returns whether the table changed.
    pub fn forget_output_fds(&mut self, lo: u32, hi: u32) -> bool {
        let n = self.output_fds.len();
        self.output_fds
            .retain(|e| !(lo..=hi).contains(&(e.fd as u32)));
        self.output_fds.len() != n
    }

    /// Drops `fd`'s entry (it was closed). Returns whether the table
    /// changed.
    pub fn forget_output_fd(&mut self, fd: i32) -> bool {
        let n = self.output_fds.len();
        self.output_fds.retain(|e| e.fd != fd);
        self.output_fds.len() != n
    }

    /// Whether `fd` is in the output table.
    pub fn is_output_fd(&self, fd: i32) -> bool {
        self.output_fds.iter().any(|e| e.fd == fd)
    }

    /// The table as the hook must see it: in a borrowed address space (a
    /// vfork child, which shares its parent's memory and so its table) every
    /// write to a listed descriptor bails (stream 0), so that neither
    /// process buffers output by the other's table; the parent's is written
    /// again when the vfork returns (`output_fds_stale`).
    pub fn output_table(&self) -> Vec<OutputFd> {
        self.output_fds
            .iter()
            .map(|e| OutputFd {
                fd: e.fd,
                stream: if self.borrowed { 0 } else { e.stream },
            })
            .collect()
    }

    /// Where the next stub of `len` bytes goes, if the current page has room.
    fn room_for(&self, len: u64) -> Option<u64> {
        let (addr, size) = self.page?;
        let at = self.next_stub.next_multiple_of(16);
        (at + len <= addr + size).then_some(at)
    }
}

/// Where the patched region of `stub` starts in the original code.
fn region_start(stub: &Stub) -> u64 {
    stub.layout
        .before
        .first()
        .map(|&(orig, _)| orig)
        .unwrap_or(stub.syscall_addr)
}

fn read_struct<const N: usize>(mem: &RemoteMem, addr: u64) -> io::Result<[u8; N]> {
    let mut b = [0u8; N];
    mem.read_exact(addr, &mut b)?;
    Ok(b)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// Runs syscall `nr(args)` in place of the syscall thread `tid` is stopped
/// at the entry of (a seccomp stop), to its exit stop. Returns its result;
/// the thread stays at the exit stop with the program's registers restored
/// from `entry` (the caller sets `rip`/`rax` as it needs).
fn replace_syscall(tid: i32, entry: &Regs, nr: i64, args: [u64; 6]) -> io::Result<i64> {
    let mut regs = *entry;
    regs.orig_rax = nr as u64;
    ptrace::set_syscall_args(&mut regs, &args);
    ptrace::setregs(tid, &regs)?;
    ptrace::syscall(tid, 0)?;
    match ptrace::wait_tid(tid)? {
        WaitEvent::SyscallStop { .. } => {}
        ev => {
            return Err(io::Error::other(format!(
                "replacing a syscall with {nr}: unexpected stop {ev:?}"
            )))
        }
    }
    let ret = ptrace::getregs(tid)?.rax as i64;
    let mut back = *entry;
    back.rax = ret as u64;
    ptrace::setregs(tid, &back)?;
    Ok(ret)
}

/// The handshake, at the seccomp stop of `magic::INIT` (`regs`): checks the
/// library's `InitParams`, maps the locals page and the area, writes the
/// buffer header, the locals and the reply, and answers 0 (or `-EPROTO`
/// for a library of another protocol). Leaves the thread at the syscall's
/// exit stop. Returns the hook entry when the buffer is on.
pub fn init(tid: i32, regs: &Regs) -> io::Result<Option<u64>> {
    let mem = RemoteMem::new(tid);
    let params_addr = regs.rdi;
    let raw: [u8; 48] = read_struct(&mem, params_addr)?;
    let version = u32_at(&raw, 0);
    let size = u32_at(&raw, 4);
    let hook_entry = u64_at(&raw, 8);
    let supported = version == PROTOCOL_VERSION
        && size as usize == std::mem::size_of::<InitParams>()
        && hook_entry != 0;
    let len = THREAD_LOCALS_SIZE + area::size(SLOTS);
    let mapped = if supported {
        replace_syscall(
            tid,
            regs,
            libc::SYS_mmap,
            super::anon_mmap_args(THREAD_LOCALS_ADDR, len, libc::PROT_READ | libc::PROT_WRITE),
        )?
    } else {
        replace_syscall(tid, regs, libc::SYS_getpid, [0; 6])?;
        -1
    };
    let mut exit = ptrace::getregs(tid)?;
    if mapped as u64 != THREAD_LOCALS_ADDR {
        exit.rax = -(libc::EPROTO as i64) as u64;
        ptrace::setregs(tid, &exit)?;
        return Ok(None);
    }
    // The alt stack's guard page.
    super::inject_via_fixed_page(
        tid,
        libc::SYS_mprotect,
        [AREA_ADDR, area::GUARD_SIZE, libc::PROT_NONE as u64, 0, 0, 0],
    )?;
    let capacity = RECORDS_CAPACITY as u32;
    mem.write(BUFFER_ADDR, &BUFFER_MAGIC.to_le_bytes())?;
    mem.write(BUFFER_ADDR + 4, &capacity.to_le_bytes())?;
    let tl = ThreadLocals {
        alt_stack_top: AREA_ADDR + area::ALT_STACK_TOP,
        buffer: BUFFER_ADDR,
        buffer_size: area::BUFFER_SIZE,
        desched_fd: DESCHED_POLLED,
        ..ThreadLocals::default()
    };
    let mut bytes = Vec::with_capacity(64);
    for v in [tl.saved_rsp, tl.alt_stack_top, tl.buffer, tl.buffer_size] {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes.extend_from_slice(&tl.desched_fd.to_le_bytes());
    debug_assert_eq!(bytes.len() as u64, locals::DESCHED_FD + 4);
    mem.write(THREAD_LOCALS_ADDR, &bytes)?;
    write_output_fds(tid, &[])?;
    // InitParams: reply_area at 24, reply_area_size at 32.
    mem.write(params_addr + 24, &AREA_ADDR.to_le_bytes())?;
    mem.write(params_addr + 32, &area::size(SLOTS).to_le_bytes())?;
    exit.rax = 0;
    ptrace::setregs(tid, &exit)?;
    Ok(Some(hook_entry))
}

/// Writes `space`'s output table (as the hook must see it,
/// [`Space::output_table`]) into the memory of `tid`'s process, and keeps
/// it in `pending_table` for the trace ([`output_table_record`]).
pub fn update_output_table(tid: i32, space: &mut Space) -> io::Result<()> {
    let table = space.output_table();
    write_output_fds(tid, &table)?;
    space.pending_table = Some(table);
    Ok(())
}

/// `RecordHeader::nr` of an output-table record: no syscall has it.
const OUTPUT_TABLE_NR: u16 = u16::MAX;

/// The payload of an `Event::Buffered` that carries no syscalls but the
/// output table the recorder just wrote into the process's memory (after
/// the handshake, a `dup2`-style syscall, a `close` of a listed descriptor,
/// a vfork): one record with number `0xffff` whose data is the table as
/// the locals page holds it. Replay writes the same table at the same
/// point, so that the hook takes the recording's path for every write.
pub fn output_table_record(table: &[OutputFd]) -> Vec<u8> {
    let data = output_table_bytes(table);
    let mut b = Vec::with_capacity(std::mem::size_of::<RecordHeader>() + data.len());
    b.extend_from_slice(&OUTPUT_TABLE_NR.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(&0i64.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&data);
    b
}

/// Whether an `Event::Buffered` payload is an output-table record
/// ([`output_table_record`]) rather than syscall records.
pub fn is_output_table(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && u16::from_le_bytes([bytes[0], bytes[1]]) == OUTPUT_TABLE_NR
}

/// The output table of an output-table record ([`is_output_table`]).
pub fn parse_output_table(bytes: &[u8]) -> Result<Vec<OutputFd>, String> {
    const HDR: usize = std::mem::size_of::<RecordHeader>();
    let want = HDR + 8 * locals::OUTPUT_FDS_MAX;
    if !is_output_table(bytes) || bytes.len() != want || u32_at(bytes, 4) as usize != want - HDR {
        return Err(format!(
            "not an output-table record of {want} bytes ({} bytes)",
            bytes.len()
        ));
    }
    Ok(bytes[HDR..]
        .chunks_exact(8)
        .map(|e| OutputFd {
            fd: u32_at(e, 0) as i32,
            stream: u32_at(e, 4) as i32,
        })
        .filter(|e| e.fd >= 0)
        .collect())
}

/// Writes the locals page's output table (at most `OUTPUT_FDS_MAX`
/// entries; the rest unused).
pub fn write_output_fds(tid: i32, fds: &[OutputFd]) -> io::Result<()> {
    RemoteMem::new(tid).write(
        THREAD_LOCALS_ADDR + locals::OUTPUT_FDS,
        &output_table_bytes(fds),
    )
}

fn output_table_bytes(fds: &[OutputFd]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(8 * locals::OUTPUT_FDS_MAX);
    for i in 0..locals::OUTPUT_FDS_MAX {
        let e = fds.get(i).copied().unwrap_or(OutputFd::NONE);
        bytes.extend_from_slice(&e.fd.to_le_bytes());
        bytes.extend_from_slice(&e.stream.to_le_bytes());
    }
    bytes
}

/// Bytes of records a thread's buffer holds (after its header).
const RECORDS_CAPACITY: u64 = area::BUFFER_SIZE - std::mem::size_of::<BufferHeader>() as u64;

/// The committed records of the buffer in `tid`'s address space that are
/// not in the trace yet ([`pending_records`]); [`read_records`] reads them,
/// [`mark_flushed`] notes them written.
#[derive(Debug, Clone, Copy)]
pub struct Pending {
    /// Where their bytes start.
    pub addr: u64,
    /// Their bytes.
    pub len: usize,
    /// How many.
    pub records: u32,
    /// The buffer header's `used` and `num_records` now.
    used: u32,
    num: u32,
}

/// Reads the buffer header in `tid`'s address space: which committed
/// records are not in the trace yet (`flushed` says how many are).
pub fn pending_records(tid: i32, flushed: &mut Flushed) -> io::Result<Pending> {
    let h: [u8; 32] = read_struct(&RemoteMem::new(tid), BUFFER_ADDR)?;
    let (used, num) = (
        u32_at(&h, header::USED as usize),
        u32_at(&h, header::NUM_RECORDS as usize),
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
        used,
        num,
    })
}

/// Reads the bytes of `pending`'s records into `out` (`pending.len`
/// bytes).
pub fn read_records(tid: i32, pending: &Pending, out: &mut [u8]) -> io::Result<()> {
    RemoteMem::new(tid).read_exact(pending.addr, out)
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

/// Writes the buffer header's `force_bail` (non-zero: the hook bails at
/// once, so the thread stops at its next syscall).
pub fn set_force_bail(tid: i32, on: bool) -> io::Result<()> {
    RemoteMem::new(tid).write(
        BUFFER_ADDR + header::FORCE_BAIL,
        &u32::from(on).to_le_bytes(),
    )
}

/// Writes the locals' `desched_fd` (the running thread's desched event,
/// which the hook arms around may-block syscalls, or [`DESCHED_POLLED`])
/// and `flags`, adjacent, at once.
pub fn set_desched_and_flags(tid: i32, fd: i32, flags: u32) -> io::Result<()> {
    let mut words = [0u8; 8];
    words[..4].copy_from_slice(&fd.to_le_bytes());
    words[4..].copy_from_slice(&flags.to_le_bytes());
    RemoteMem::new(tid).write(THREAD_LOCALS_ADDR + locals::DESCHED_FD, &words)
}

/// The lowest descriptor number a desched event takes in the tracee, out
/// of the way of the descriptors programs number themselves (rr keeps its
/// own above a floor too). Below it only when the limit is lower.
const DESCHED_FD_FLOOR: u64 = 800;

/// A thread's desched event: a software context-switch counter on the
/// thread, open in its process (the hook enables it around may-block
/// buffered syscalls) and in the recorder, whose copy makes the counter
/// signal the thread with [`perf::DESCHED_SIGNAL`].
#[derive(Debug)]
pub struct DeschedEvent {
    /// The descriptor in the tracee.
    pub fd: i32,
    /// The recorder's copy: the `si_fd` of its signals; disables it.
    pub ours: OwnedFd,
}

impl DeschedEvent {
    /// Whether a signal `signo` with `info` is this event's.
    pub fn sent(&self, signo: i32, info: &[u8; ptrace::SIGINFO_SIZE]) -> bool {
        // siginfo: si_code at 8; for SIGPOLL, si_band at 16, si_fd at 24.
        let code = i32::from_le_bytes(info[8..12].try_into().expect("4 bytes"));
        let fd = i32::from_le_bytes(info[24..28].try_into().expect("4 bytes"));
        signo == perf::DESCHED_SIGNAL && code == perf::POLL_IN && fd == self.ours.as_raw_fd()
    }
}

/// What opening a desched event for a thread gave.
#[derive(Debug)]
pub enum DeschedSetup {
    /// The event, open in the thread's process.
    Opened(DeschedEvent),
    /// The kernel refused a step (the errno): `perf_event_open` refuses
    /// kernel-side counting to unprivileged users when
    /// `kernel.perf_event_paranoid` is 2 or more, or seccomp forbids it.
    Refused(i32),
}

/// Opens a desched event for thread `tid` of process `pid`, stopped at a
/// stop that allows injecting syscalls (not a syscall entry): the thread
/// opens it itself (injected `perf_event_open` through the fixed page),
/// moves it to a descriptor at or above [`DESCHED_FD_FLOOR`]
/// (close-on-exec), and the recorder takes a copy and points its signals
/// at the thread. Nothing the program sees runs: the injected syscalls
/// are not program syscalls and are not recorded; replay never arms.
pub fn open_desched(tid: i32, pid: i32) -> io::Result<DeschedSetup> {
    let scratch = THREAD_LOCALS_ADDR + locals::RECORDER_SCRATCH;
    RemoteMem::new(tid).write(scratch, &perf::desched_attr())?;
    const PERF_FLAG_FD_CLOEXEC: u64 = 8;
    let opened = super::inject_via_fixed_page(
        tid,
        libc::SYS_perf_event_open,
        [scratch, 0, u64::MAX, u64::MAX, PERF_FLAG_FD_CLOEXEC, 0],
    )?;
    if opened < 0 {
        return Ok(DeschedSetup::Refused(-opened as i32));
    }
    let mut fd = opened;
    let high = super::inject_via_fixed_page(
        tid,
        libc::SYS_fcntl,
        [
            opened as u64,
            libc::F_DUPFD_CLOEXEC as u64,
            DESCHED_FD_FLOOR,
            0,
            0,
            0,
        ],
    )?;
    if high >= 0 {
        super::inject_via_fixed_page(tid, libc::SYS_close, [opened as u64, 0, 0, 0, 0, 0])?;
        fd = high;
    }
    let ours = perf::take_fd(pid, fd as i32).and_then(|ours| {
        perf::signal_thread(&ours, tid)?;
        Ok(ours)
    });
    match ours {
        Ok(ours) => Ok(DeschedSetup::Opened(DeschedEvent {
            fd: fd as i32,
            ours,
        })),
        Err(e) => {
            super::inject_via_fixed_page(tid, libc::SYS_close, [fd as u64, 0, 0, 0, 0, 0])?;
            Ok(DeschedSetup::Refused(e.raw_os_error().unwrap_or(libc::EIO)))
        }
    }
}

/// Replay: empties the buffer before the thread runs (the recorder took the
/// records at each stop), and sets `force_bail`.
pub fn reset_for_replay(tid: i32, force_bail: bool) -> io::Result<()> {
    let mem = RemoteMem::new(tid);
    mem.write(BUFFER_ADDR + header::USED, &[0; 8])?;
    set_force_bail(tid, force_bail)
}

/// Whether running thread `tid` sleeps in a syscall made through the
/// untraced gate (a buffered syscall that blocked): `/proc/TID/syscall`
/// names the gate as its user-space pc.
pub fn blocked_in_untraced(tid: i32) -> bool {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{tid}/syscall")) else {
        return false;
    };
    s.split_whitespace()
        .last()
        .and_then(|pc| u64::from_str_radix(pc.trim_start_matches("0x"), 16).ok())
        == Some(rrtest_abi::syscall_ip(rrtest_abi::entry::UNTRACED))
}

/// Sets `abort_commit`: the hook discards the record in flight and bails.
pub fn set_abort_commit(tid: i32) -> io::Result<()> {
    RemoteMem::new(tid).write(BUFFER_ADDR + header::ABORT_COMMIT, &1u32.to_le_bytes())
}

/// Whether a thread stopped with `regs` is inside a buffered syscall that
/// the kernel interrupted and would restart (it blocked): the untraced
/// gate, with a restart code or `-EINTR` as result, and still the syscall's
/// number in `orig_rax` ([`abort_untraced`] clears it: a second stop there,
/// a desched signal and an interrupt for the same block, finds it done).
pub fn in_interrupted_untraced(regs: &Regs) -> bool {
    const EINTR: i64 = -4;
    let ret = regs.rax as i64;
    regs.rip == rrtest_abi::syscall_ip(rrtest_abi::entry::UNTRACED)
        && (ret == EINTR || (-516..=-512).contains(&ret))
        && (regs.orig_rax as i64) >= 0
}

/// Unwinds a thread stopped inside an interrupted buffered syscall (see
/// [`in_interrupted_untraced`]): the syscall returns `-EINTR` instead of
/// restarting and the hook discards its record, so the stub issues it again,
/// traced.
pub fn abort_untraced(tid: i32, regs: &Regs) -> io::Result<()> {
    set_abort_commit(tid)?;
    let mut r = *regs;
    r.rax = -(libc::EINTR as i64) as u64;
    r.orig_rax = u64::MAX;
    ptrace::setregs(tid, &r)
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

/// Why a site is not patched now.
#[derive(Debug)]
pub enum NotPatched {
    /// Never: remember the syscall address.
    Refused(String),
    /// Not now: a thread's ip lies inside the region.
    Busy,
}

/// A planned patch: the event to record and the stub.
#[derive(Debug)]
pub struct Planned {
    /// What [`apply_patch`] does.
    pub event: PatchEvent,
    /// The stub, for ip mapping.
    pub stub: Stub,
}

/// Plans the patch of the syscall that thread `tid` is stopped at the
/// entry of (`regs`): analyzes the site, builds the stub (in the current
/// stub page, or a new one near the site), and the `jmp`. `busy`: other
/// threads' ips (a region containing one is not patched now).
pub fn plan_patch(
    tid: i32,
    regs: &Regs,
    space: &Space,
    busy: &[u64],
) -> io::Result<Result<Planned, NotPatched>> {
    let syscall_addr = regs.rip - rrtest_abi::SYSCALL_INSN_LEN;
    let nr = regs.orig_rax as i64;
    plan_site(tid, syscall_addr, Anchor::Syscall, nr, space, busy, false)
}

/// Plans the patch of the `rdtsc` at `rdtsc_addr` that thread `tid` is
/// stopped at (its trap's `SIGSEGV`): as [`plan_patch`], the event marked
/// `rdtsc` (its `nr` is 0), the thread to resume at the stub's setup.
pub fn plan_rdtsc(
    tid: i32,
    rdtsc_addr: u64,
    space: &Space,
    busy: &[u64],
) -> io::Result<Result<Planned, NotPatched>> {
    plan_site(tid, rdtsc_addr, Anchor::Rdtsc, 0, space, busy, false)
}

/// Plans, for thread `tid` stopped at the buffer's handshake, the patch of
/// the `syscall` at `syscall_addr` (syscall `nr` when an earlier recording
/// patched it): as [`plan_patch`], the event marked `ahead`. `busy`: the
/// ips of the process's threads.
pub fn plan_ahead(
    tid: i32,
    syscall_addr: u64,
    nr: i64,
    space: &Space,
    busy: &[u64],
) -> io::Result<Result<Planned, NotPatched>> {
    plan_site(tid, syscall_addr, Anchor::Syscall, nr, space, busy, true)
}

fn plan_site(
    tid: i32,
    syscall_addr: u64,
    anchor: Anchor,
    nr: i64,
    space: &Space,
    busy: &[u64],
    ahead: bool,
) -> io::Result<Result<Planned, NotPatched>> {
    if anchor == Anchor::Syscall {
        if let Err(r) = patch::check_syscall(nr) {
            return Ok(Err(NotPatched::Refused(r.to_string())));
        }
    }
    let site = match read_site(tid, syscall_addr, anchor, nr) {
        Ok(s) => s,
        Err(r) => return Ok(Err(NotPatched::Refused(r.to_string()))),
    };
    if busy.iter().any(|&ip| site.contains_inside(ip)) {
        return Ok(Err(NotPatched::Busy));
    }
    // The stub's length does not depend on where it goes, except through
    // relocated branches; leave room for the difference.
    let probe = match patch::build_stub(&site, syscall_addr, space.hook_entry, site.end()) {
        Ok(s) => s,
        Err(r) => return Ok(Err(NotPatched::Refused(r.to_string()))),
    };
    let need = probe.code.len() as u64 + 32;
    let (stub_addr, new_page) = match space.room_for(need) {
        Some(at) if in_range(at, syscall_addr) => (at, None),
        _ => match find_stub_page(tid, syscall_addr)? {
            Some(page) => (page, Some((page, STUB_CHUNK))),
            None => {
                return Ok(Err(NotPatched::Refused(
                    "no free address for a stub within ±2 GiB".into(),
                )))
            }
        },
    };
    let planned = match plan_at(&site, space.hook_entry, stub_addr) {
        Ok(p) => p,
        Err(r) => return Ok(Err(NotPatched::Refused(r.to_string()))),
    };
    let (stub, site_bytes, resume) = planned;
    Ok(Ok(Planned {
        event: PatchEvent {
            tid,
            nr,
            new_page,
            stub_addr,
            stub: stub.code.clone(),
            site: site.start,
            site_bytes,
            resume,
            ahead: ahead.then_some(syscall_addr),
            rdtsc: anchor == Anchor::Rdtsc,
        },
        stub,
    }))
}

/// Replay: plans the recorded patch again, from the replayed program's code,
/// and returns the stub when the bytes match the recording's.
pub fn replan(tid: i32, space: &Space, e: &PatchEvent) -> Result<Stub, String> {
    let anchor = if e.rdtsc {
        Anchor::Rdtsc
    } else {
        Anchor::Syscall
    };
    let syscall_addr = match e.ahead {
        Some(addr) => addr,
        None => {
            let regs = ptrace::getregs(tid).map_err(|e| e.to_string())?;
            match anchor {
                // Stopped at the rdtsc's trap: rip is the rdtsc.
                Anchor::Rdtsc => regs.rip,
                Anchor::Syscall => regs.rip - rrtest_abi::SYSCALL_INSN_LEN,
            }
        }
    };
    let site = read_site(tid, syscall_addr, anchor, e.nr).map_err(|r| r.to_string())?;
    let (stub, site_bytes, resume) =
        plan_at(&site, space.hook_entry, e.stub_addr).map_err(|r| r.to_string())?;
    if site.start != e.site
        || stub.code != e.stub
        || site_bytes != e.site_bytes
        || resume != e.resume
    {
        return Err(format!(
            "the site at {syscall_addr:#x} patches differently (stub of {} bytes at {:#x}, resume {resume:#x})",
            stub.code.len(),
            e.stub_addr
        ));
    }
    Ok(stub)
}

fn read_site(tid: i32, syscall_addr: u64, anchor: Anchor, nr: i64) -> Result<PatchSite, Refusal> {
    let mem = RemoteMem::new(tid);
    // Up to WINDOW bytes, not across the end of the page run.
    let mut len = WINDOW;
    let mut code = vec![0u8; len as usize];
    while mem.read_exact(syscall_addr, &mut code).is_err() {
        len = (syscall_addr | 0xfff) + 1 - syscall_addr;
        if (code.len() as u64) == len || len < 2 {
            return Err(Refusal::OutsideWindow { addr: syscall_addr });
        }
        code.truncate(len as usize);
    }
    let options = patch::AnalyzeOptions {
        boundary: None,
        anchor,
    };
    let forward = patch::analyze_with(&code, syscall_addr, syscall_addr, &options);
    if anchor == Anchor::Rdtsc || !matches!(forward, Err(Refusal::TooShort { .. })) {
        return forward;
    }
    // `mov eax, NR; syscall; ret` (glibc's getpid and friends): the `mov`
    // that loads this very syscall's number starts the region. A branch to
    // the `syscall` itself would need eax loaded elsewhere; the analyzer
    // still refuses any branch into the region it can see.
    let mut mov = [0u8; 5];
    let loads_nr = syscall_addr >= 5
        && mem.read_exact(syscall_addr - 5, &mut mov).is_ok()
        && mov[0] == 0xb8
        && i64::from(u32::from_le_bytes([mov[1], mov[2], mov[3], mov[4]])) == nr;
    if !loads_nr {
        return forward;
    }
    let mut window = mov.to_vec();
    window.extend_from_slice(&code);
    patch::analyze_with(
        &window,
        syscall_addr - 5,
        syscall_addr,
        &patch::AnalyzeOptions {
            boundary: Some(syscall_addr - 5),
            anchor,
        },
    )
}

fn plan_at(
    site: &PatchSite,
    hook_entry: u64,
    stub_addr: u64,
) -> Result<(Stub, Vec<u8>, u64), Refusal> {
    let stub = patch::build_stub(site, stub_addr, hook_entry, site.end())?;
    let bytes = patch::patch_bytes(site, stub_addr)?;
    let resume = stub
        .original_to_stub(site.syscall_addr)
        .ok_or(Refusal::NotASyscall {
            addr: site.syscall_addr,
        })?;
    Ok((stub, bytes, resume))
}

fn in_range(a: u64, b: u64) -> bool {
    const LIMIT: u64 = (1 << 31) - (1 << 20);
    a.abs_diff(b) < LIMIT
}

/// A free, page-aligned address for a stub page near `site`: the free gap
/// between mappings closest to it, within ±2 GiB.
fn find_stub_page(tid: i32, site: u64) -> io::Result<Option<u64>> {
    const LOW: u64 = 0x1_0000_0000;
    const HIGH: u64 = 0x7fff_f000_0000;
    let maps = std::fs::read_to_string(format!("/proc/{tid}/maps"))?;
    let mut ranges: Vec<(u64, u64)> = maps
        .lines()
        .filter_map(|l| {
            let (a, b) = l.split_once(' ')?.0.split_once('-')?;
            Some((
                u64::from_str_radix(a, 16).ok()?,
                u64::from_str_radix(b, 16).ok()?,
            ))
        })
        .collect();
    ranges.sort_unstable();
    let mut best: Option<u64> = None;
    let mut consider = |at: u64| {
        if in_range(at, site)
            && in_range(at + STUB_CHUNK, site)
            && best.is_none_or(|b| at.abs_diff(site) < b.abs_diff(site))
        {
            best = Some(at);
        }
    };
    let mut prev_end = LOW;
    // A guard page on either side of the stub page.
    for &(start, end) in ranges.iter().chain(std::iter::once(&(HIGH, HIGH))) {
        let (lo, hi) = (
            prev_end.max(LOW) + 0x1000,
            start.min(HIGH).saturating_sub(0x1000),
        );
        if hi > lo && hi - lo >= STUB_CHUNK {
            consider(hi - STUB_CHUNK);
            consider(lo);
        }
        prev_end = prev_end.max(end);
    }
    Ok(best)
}

/// Applies a patch to thread `tid`, stopped at the seccomp entry of the
/// site's syscall (`regs`): maps the new stub page (in place of that
/// syscall), writes the stub and the site, and moves the thread to the
/// stub with `rax` = the syscall number, the syscall skipped. Returns the
/// stop the thread is left at: `true` for an exit stop, `false` for the
/// entry stop.
pub fn apply_patch(tid: i32, regs: &Regs, e: &PatchEvent) -> io::Result<bool> {
    let mem = RemoteMem::new(tid);
    let mut at_exit = false;
    if let Some((addr, len)) = e.new_page {
        stub_page_mapped(
            addr,
            replace_syscall(tid, regs, libc::SYS_mmap, stub_page_args(addr, len))?,
        )?;
        at_exit = true;
    }
    write_patch(&mem, e)?;
    let mut r = *regs;
    r.rip = e.resume;
    r.rax = e.nr as u64;
    if !at_exit {
        r.orig_rax = u64::MAX;
    }
    ptrace::setregs(tid, &r)?;
    Ok(at_exit)
}

/// Applies an rdtsc site's patch ([`plan_rdtsc`]) to thread `tid`, stopped
/// at the trap (`SIGSEGV`) of that `rdtsc` (`regs`): maps its new stub page
/// if it has one (through the fixed page's privileged entry), writes the
/// stub and the `jmp`, and moves the thread to the stub's setup, so that
/// this rdtsc goes through the hook too. The caller resumes the thread
/// without the signal.
pub fn apply_rdtsc(tid: i32, regs: &Regs, e: &PatchEvent) -> io::Result<()> {
    apply_ahead(tid, e)?;
    let mut r = *regs;
    r.rip = e.resume;
    // Not the faulting instruction any more: drop the fault's resume flag
    // (it would hide an execution breakpoint at the stub's first one).
    r.eflags &= !(1 << 16);
    ptrace::setregs(tid, &r)
}

/// Applies a patch planned `ahead` ([`plan_ahead`]) to the process of
/// `tid`, stopped at the buffer's handshake (a syscall's exit stop): maps
/// its new stub page if it has one, writes the stub and the `jmp`. The
/// thread's registers are left alone.
pub fn apply_ahead(tid: i32, e: &PatchEvent) -> io::Result<()> {
    if let Some((addr, len)) = e.new_page {
        stub_page_mapped(
            addr,
            super::inject_via_fixed_page(tid, libc::SYS_mmap, stub_page_args(addr, len))?,
        )?;
    }
    write_patch(&RemoteMem::new(tid), e)
}

/// The `mmap` arguments of a stub page: `len` bytes at exactly `addr`, r-x.
fn stub_page_args(addr: u64, len: u64) -> [u64; 6] {
    super::anon_mmap_args(addr, len, libc::PROT_READ | libc::PROT_EXEC)
}

/// Checks that the stub page's `mmap` returned `addr`.
fn stub_page_mapped(addr: u64, got: i64) -> io::Result<()> {
    if got as u64 != addr {
        return Err(io::Error::other(format!(
            "mapping a stub page at {addr:#x}: mmap returned {got:#x}"
        )));
    }
    Ok(())
}

/// Writes a patch's stub and the `jmp` at its site.
fn write_patch(mem: &RemoteMem, e: &PatchEvent) -> io::Result<()> {
    mem.write_code(&[(e.stub_addr, &e.stub), (e.site, &e.site_bytes)])
}

/// Records a planned patch in `space`.
pub fn note_patch(space: &mut Space, e: &PatchEvent, stub: Stub) {
    if let Some(page) = e.new_page {
        space.page = Some(page);
    }
    space.next_stub = e.stub_addr + e.stub.len() as u64;
    space.rdtsc_sites |= e.rdtsc;
    space.stubs.push(stub);
}

/// Whether thread `tid` has a handler for `signo` (its `SigCgt` mask).
fn catches(tid: i32, signo: i32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{tid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|m| m & (1u64 << (signo - 1)) != 0)
}

/// Resumes thread `tid`, stopped with `regs`, delivering `signo`. When the
/// thread is in a stub and has a handler, steps into the handler first and
/// rewrites the frame's saved ip to the original code's equivalent, so that
/// no unwinder sees a stub.
pub fn deliver_signal(tid: i32, regs: &Regs, signo: i32, space: Option<&Space>) -> io::Result<()> {
    let Some(space) = space.filter(|s| s.stub_at(regs.rip).is_some()) else {
        return ptrace::cont(tid, signo);
    };
    if signo == 0 || !catches(tid, signo) {
        return ptrace::cont(tid, signo);
    }
    ptrace::singlestep(tid, signo)?;
    match ptrace::wait_tid(tid)? {
        WaitEvent::Signal {
            signo: libc::SIGTRAP,
            ..
        } => {}
        ev => {
            return Err(io::Error::other(format!(
                "stepping into a signal handler: unexpected stop {ev:?}"
            )))
        }
    }
    let handler = ptrace::getregs(tid)?;
    // At the handler's entry the return address is at rsp; the ucontext
    // follows. The saved ip is where the thread stopped, or, for a syscall
    // the kernel restarts after the handler, its `syscall` instruction.
    let slot = handler.rsp + 8 + FRAME_RIP_AT_SIGRETURN;
    let mem = RemoteMem::new(tid);
    let saved = u64::from_le_bytes(read_struct(&mem, slot)?);
    let original = space
        .stub_at(saved)
        .map(|stub| stub.stub_to_original(saved));
    if let Some(StubIp::Original(orig)) = original {
        mem.write(slot, &orig.to_le_bytes())?;
    }
    ptrace::cont(tid, 0)
}

/// At `rt_sigreturn`'s entry (`regs`): when the frame returns strictly
/// inside a patched region (a frame [`deliver_signal`] rewrote), returns to
/// the stub's equivalent instead.
pub fn fix_sigreturn(tid: i32, regs: &Regs, space: &Space) -> io::Result<()> {
    let mem = RemoteMem::new(tid);
    let slot = regs.rsp + FRAME_RIP_AT_SIGRETURN;
    let saved = u64::from_le_bytes(read_struct(&mem, slot)?);
    if let Some(stub_ip) = space.inside_patched(saved) {
        mem.write(slot, &stub_ip.to_le_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(nr: u32, result: i64, data: &[u8]) -> Vec<u8> {
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
    fn the_output_table() {
        let mut space = Space::default();
        assert!(space.set_output_fd(1, Some(1)));
        assert!(space.set_output_fd(7, Some(2)));
        assert!(!space.set_output_fd(7, Some(2)));
        assert!(space.is_output_fd(7));
        // dup2 of a file over fd 1: no longer output, but listed (its
        // close must bail); any other descriptor is unlisted.
        assert!(space.set_output_fd(1, None));
        assert_eq!(
            space
                .output_fds
                .iter()
                .find(|e| e.fd == 1)
                .map(|e| e.stream),
            Some(OutputFd::NOT_OUTPUT)
        );
        assert!(space.forget_output_fd(1));
        assert!(!space.is_output_fd(1));
        assert!(!space.set_output_fd(8, None));
        assert!(space.forget_output_fds(3, u32::MAX));
        assert!(space.output_fds.is_empty());
        for fd in 0..40 {
            space.set_output_fd(fd, Some(1));
        }
        assert_eq!(space.output_fds.len(), locals::OUTPUT_FDS_MAX);
        // A vfork child's table: every listed write bails.
        space.borrowed = true;
        assert!(space.output_table().iter().all(|e| e.stream == 0));
        let bytes = output_table_bytes(&[OutputFd { fd: 1, stream: 1 }]);
        assert_eq!(bytes.len(), 8 * locals::OUTPUT_FDS_MAX);
        assert_eq!(
            &bytes[..12],
            &[1, 0, 0, 0, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]
        );
    }

    #[test]
    fn output_table_records_round_trip() {
        let table = [OutputFd { fd: 1, stream: 1 }, OutputFd { fd: 9, stream: 2 }];
        let rec = output_table_record(&table);
        assert!(is_output_table(&rec));
        assert_eq!(
            parse_output_table(&rec).expect("well-formed"),
            table.to_vec()
        );
        // Not a table: ordinary records; a table among them is an error.
        assert!(!is_output_table(&record(1, 3, b"abc")));
        assert!(parse_output_table(&record(1, 3, b"abc")).is_err());
        let mut mixed = record(1, 3, b"abc");
        mixed.extend(&rec);
        assert!(parse_records(mixed.clone()).is_err());
        assert!(parse_output_table(&rec[..40]).is_err());
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
