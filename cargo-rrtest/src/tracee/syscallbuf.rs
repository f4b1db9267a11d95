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
//! - [`take_records`], [`parse_records`]: the buffer's committed records, as
//!   the recorder flushes them and as replay reads them back.
//! - [`deliver_signal`], [`fix_sigreturn`]: a signal handler never sees a
//!   stub address in its frame. A signal delivered to a thread in a stub
//!   gets the frame's saved ip rewritten to the equivalent original address;
//!   `rt_sigreturn` maps an original address that lies inside a patched
//!   region back to the stub.
//!
//! One buffer serves every thread of a process: the recorder runs one thread
//! at a time and never switches away from a thread inside the buffer code,
//! and it writes the records before each event of the thread that made
//! them.

use std::collections::HashSet;
use std::io;

use rrtest_abi::{
    area, header, locals, record_size, BufferHeader, InitParams, RecordHeader, ThreadLocals,
    AREA_ADDR, BUFFER_MAGIC, DESCHED_POLLED, FIXED_PAGE_ADDR, PROTOCOL_VERSION, THREAD_LOCALS_ADDR,
    THREAD_LOCALS_SIZE,
};

use crate::recorder::patch::{self, PatchSite, Refusal, Stub, StubIp};
use crate::sys::ptrace::{self, Regs, WaitEvent};
use crate::sys::RemoteMem;
use crate::trace::PatchEvent;

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
    /// Descriptors other than 1 and 2 that write to the recorder's stdout
    /// or stderr (recording only; see `rrtest_abi::locals::OUTPUT_FDS`).
    pub output_fds: Vec<i32>,
    /// The buffer's records already in the trace (recording only).
    pub flushed: Flushed,
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
    let capacity = (area::BUFFER_SIZE - std::mem::size_of::<BufferHeader>() as u64) as u32;
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

/// Writes the locals page's list of output descriptors (at most
/// `OUTPUT_FDS_MAX`; the rest -1).
pub fn write_output_fds(tid: i32, fds: &[i32]) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(4 * locals::OUTPUT_FDS_MAX);
    for i in 0..locals::OUTPUT_FDS_MAX {
        bytes.extend_from_slice(&fds.get(i).copied().unwrap_or(-1).to_le_bytes());
    }
    RemoteMem::new(tid).write(THREAD_LOCALS_ADDR + locals::OUTPUT_FDS, &bytes)
}

/// Reads the committed records of the buffer in `tid`'s address space that
/// are not in the trace yet (`flushed` says how many are); `reset`: and
/// empties the buffer. Returns the record bytes and their count.
pub fn take_records(tid: i32, flushed: &mut Flushed, reset: bool) -> io::Result<(Vec<u8>, u32)> {
    let mem = RemoteMem::new(tid);
    let h: [u8; 32] = read_struct(&mem, BUFFER_ADDR)?;
    let (used, num) = (
        u32_at(&h, header::USED as usize),
        u32_at(&h, header::NUM_RECORDS as usize),
    );
    // A buffer emptied behind our back: start over.
    if used < flushed.bytes || num < flushed.records {
        *flushed = Flushed::default();
    }
    let new = num - flushed.records;
    let data = if new == 0 {
        Vec::new()
    } else {
        mem.read_vec(
            BUFFER_ADDR + std::mem::size_of::<BufferHeader>() as u64 + u64::from(flushed.bytes),
            (used - flushed.bytes) as usize,
        )?
    };
    if reset {
        if num != 0 {
            mem.write(BUFFER_ADDR + header::USED, &[0; 8])?;
        }
        *flushed = Flushed::default();
    } else {
        *flushed = Flushed {
            bytes: used,
            records: num,
        };
    }
    Ok((data, new))
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
/// gate, with a restart code or `-EINTR` as result.
pub fn in_interrupted_untraced(regs: &Regs) -> bool {
    const EINTR: i64 = -4;
    let ret = regs.rax as i64;
    regs.rip == rrtest_abi::syscall_ip(rrtest_abi::entry::UNTRACED)
        && (ret == EINTR || (-516..=-512).contains(&ret))
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

/// One buffered syscall, as replay reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The syscall.
    pub nr: i64,
    /// Its result.
    pub result: i64,
    /// What it wrote to its output argument.
    pub data: Vec<u8>,
}

/// Splits record bytes (an `Event::Buffered` payload) into records.
pub fn parse_records(bytes: &[u8]) -> Result<Vec<Record>, String> {
    const HDR: usize = std::mem::size_of::<RecordHeader>();
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if bytes.len() - at < HDR {
            return Err(format!("a record header cut short at offset {at}"));
        }
        let nr = u32_at(bytes, at);
        let out_len = u32_at(bytes, at + 4);
        let result = u64_at(bytes, at + 8) as i64;
        let size = record_size(out_len) as usize;
        if out_len as usize > bytes.len() - at - HDR {
            return Err(format!(
                "record at offset {at} claims {out_len} output bytes, more than remain"
            ));
        }
        out.push(Record {
            nr: i64::from(nr),
            result,
            data: bytes[at + HDR..at + HDR + out_len as usize].to_vec(),
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
    let nr = regs.orig_rax as i64;
    let syscall_addr = regs.rip - rrtest_abi::SYSCALL_INSN_LEN;
    if let Err(r) = patch::check_syscall(nr) {
        return Ok(Err(NotPatched::Refused(r.to_string())));
    }
    let site = match read_site(tid, syscall_addr, nr) {
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
        },
        stub,
    }))
}

/// Replay: plans the recorded patch again, from the replayed program's code,
/// and returns the stub when the bytes match the recording's.
pub fn replan(tid: i32, space: &Space, e: &PatchEvent) -> Result<Stub, String> {
    let regs = ptrace::getregs(tid).map_err(|e| e.to_string())?;
    let syscall_addr = regs.rip - rrtest_abi::SYSCALL_INSN_LEN;
    let site = read_site(tid, syscall_addr, e.nr).map_err(|r| r.to_string())?;
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

fn read_site(tid: i32, syscall_addr: u64, nr: i64) -> Result<PatchSite, Refusal> {
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
    let forward = patch::analyze(&code, syscall_addr, syscall_addr);
    if !matches!(forward, Err(Refusal::TooShort { .. })) {
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
        let got = replace_syscall(
            tid,
            regs,
            libc::SYS_mmap,
            super::anon_mmap_args(addr, len, libc::PROT_READ | libc::PROT_EXEC),
        )?;
        if got as u64 != addr {
            return Err(io::Error::other(format!(
                "mapping a stub page at {addr:#x}: mmap returned {got:#x}"
            )));
        }
        at_exit = true;
    }
    mem.write(e.stub_addr, &e.stub)?;
    mem.write(e.site, &e.site_bytes)?;
    let mut r = *regs;
    r.rip = e.resume;
    r.rax = e.nr as u64;
    if !at_exit {
        r.orig_rax = u64::MAX;
    }
    ptrace::setregs(tid, &r)?;
    Ok(at_exit)
}

/// Records a planned patch in `space`.
pub fn note_patch(space: &mut Space, e: &PatchEvent, stub: Stub) {
    if let Some(page) = e.new_page {
        space.page = Some(page);
    }
    space.next_stub = e.stub_addr + e.stub.len() as u64;
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
        let mut b = Vec::new();
        b.extend_from_slice(&nr.to_le_bytes());
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(&result.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(data);
        while b.len() % 8 != 0 {
            b.push(0);
        }
        b
    }

    #[test]
    fn records_parse_back() {
        let mut bytes = record(39, 1234, &[]);
        bytes.extend(record(0, 3, b"abc"));
        bytes.extend(record(228, 0, &[7; 16]));
        let recs = parse_records(&bytes).expect("well-formed");
        assert_eq!(
            recs,
            vec![
                Record {
                    nr: 39,
                    result: 1234,
                    data: vec![]
                },
                Record {
                    nr: 0,
                    result: 3,
                    data: b"abc".to_vec()
                },
                Record {
                    nr: 228,
                    result: 0,
                    data: vec![7; 16]
                },
            ]
        );
    }

    #[test]
    fn malformed_records_are_errors() {
        let good = record(0, 3, b"abc");
        assert!(parse_records(&good[..10]).is_err());
        let mut lying = good.clone();
        lying[4..8].copy_from_slice(&100u32.to_le_bytes());
        assert!(parse_records(&lying).is_err());
        assert_eq!(parse_records(&[]).expect("empty"), vec![]);
    }
}
