//! What the recorder and the replayer do to a tracee in exactly the same way,
//! so that both see the same address space: the fixed page, the auxiliary
//! vector edits, and syscalls injected on the tracer's behalf.
//!
//! Recorder and replayer each call [`prepare_after_exec`] at the exec stop;
//! any difference here between record and replay would be a divergence.

pub mod filter_site;
pub mod host;
pub mod interp;
pub mod loop_exit;
pub mod syscallbuf;
pub mod trap_mask;
pub mod vdso;
pub mod words;

#[cfg(test)]
mod patch_exec_tests;

use std::io;

use rrtest_abi::{entry, fixed_page_code, FIXED_PAGE_ADDR, FIXED_PAGE_SIZE};

use rrtest_sys::ptrace::{self, Regs, WaitEvent};
use rrtest_sys::RemoteMem;
use rrtest_trace::{ExecPoint, PointDigest, POINT_REGS};

const AT_NULL: u64 = 0;
const AT_IGNORE: u64 = 1;
const AT_RANDOM: u64 = 25;
const AT_EXECFN: u64 = 31;
const AT_SYSINFO_EHDR: u64 = 33;

/// A syscall injected into a stopped thread failed to run as expected.
fn unexpected(what: &str, ev: WaitEvent) -> io::Error {
    io::Error::other(format!("injected syscall {what}: unexpected stop {ev:?}"))
}

/// Signals that arrived while a syscall was injected, by thread: taken out
/// of the thread's way (their delivery stop was suppressed) for the tracer
/// to deliver later ([`take_stashed_signals`]).
type Stash = Vec<(i32, i32, [u8; ptrace::SIGINFO_SIZE])>;
static STASHED: std::sync::Mutex<Stash> = std::sync::Mutex::new(Vec::new());

/// The signals injected syscalls met since the last call, as (thread,
/// signal, siginfo), oldest first. A signal pending at the stop where a
/// syscall is injected stops the thread before that syscall runs; it is
/// an asynchronous signal (no program code ran), so the recorder holds it
/// back like any other.
pub fn take_stashed_signals() -> Stash {
    std::mem::take(&mut *STASHED.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Executes syscall `nr(args)` in thread `tid`, which must be stopped at a
/// stop that is not a syscall entry (an exec stop, a syscall-exit stop, a
/// signal stop), using the `syscall` instruction at `insn`. All registers
/// are restored afterwards. Returns the syscall's result. A signal that
/// stops the thread first is stashed ([`take_stashed_signals`]).
pub fn inject_syscall(tid: i32, insn: u64, nr: i64, args: [u64; 6]) -> io::Result<i64> {
    let saved = ptrace::getregs(tid)?;
    let mut regs: Regs = saved;
    regs.rip = insn;
    regs.rax = nr as u64;
    regs.orig_rax = u64::MAX;
    ptrace::set_syscall_args(&mut regs, &args);
    ptrace::setregs(tid, &regs)?;
    // Stop at the syscall's entry, then at its exit; a seccomp stop may
    // come between them (the filter traces most syscalls, not all).
    let mut syscall_stops = 0;
    while syscall_stops < 2 {
        ptrace::syscall(tid, 0)?;
        match ptrace::wait_tid(tid)? {
            WaitEvent::SyscallStop { .. } => syscall_stops += 1,
            WaitEvent::Event { event, .. } if event == libc::PTRACE_EVENT_SECCOMP => {}
            WaitEvent::Signal { signo, .. } if syscall_stops == 0 => {
                let info = ptrace::getsiginfo(tid)?;
                STASHED
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((tid, signo, info));
            }
            ev => return Err(unexpected(&format!("{nr}"), ev)),
        }
    }
    let ret = ptrace::getregs(tid)?.rax as i64;
    ptrace::setregs(tid, &saved)?;
    Ok(ret)
}

/// The arguments of an anonymous private `mmap` of `len` bytes at exactly
/// `addr` (`MAP_FIXED_NOREPLACE`), with protection `prot`.
pub fn anon_mmap_args(addr: u64, len: u64, prot: i32) -> [u64; 6] {
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE;
    [addr, len, prot as u64, flags as u64, u64::MAX, 0]
}

/// Whether the syscall `tid` is stopped at the entry or exit of (its `rip`
/// right after the instruction) was made with `int $0x80`: one
/// `process_vm_readv` of the two bytes before it.
pub fn is_int80(tid: i32, rip: u64) -> bool {
    let mut insn = [0u8; 2];
    RemoteMem::new(tid)
        .read_exact(rip.wrapping_sub(2), &mut insn)
        .is_ok()
        && insn == rrtest_syscalls::INT80
}

/// The trace's number of the syscall `tid` is stopped at the entry of
/// (`regs` its registers), where replay expects `nr` (replay's check): as recorded, a
/// 32-bit call under its own number. The i386 `restart_syscall` that
/// resumes an emulated 32-bit call may come in with the x86-64 number
/// (219): the kernel picks the restart number from the restart block the
/// call would have set, and the emulated call set none, so it is taken
/// for the i386 `restart_syscall` it stands for (both are emulated).
pub fn seen_nr(tid: i32, regs: &Regs, nr: i64) -> i64 {
    if !(rrtest_syscalls::is_compat(nr) && is_int80(tid, regs.rip)) {
        return regs.orig_rax as i64;
    }
    let seen = rrtest_syscalls::compat_nr(regs.orig_rax);
    if nr == rrtest_syscalls::COMPAT_RESTART_SYSCALL
        && regs.orig_rax as i64 == libc::SYS_restart_syscall
    {
        return nr;
    }
    seen
}

/// Executes a syscall through the fixed page's privileged entry point (the
/// page must be mapped).
pub fn inject_via_fixed_page(tid: i32, nr: i64, args: [u64; 6]) -> io::Result<i64> {
    inject_syscall(tid, FIXED_PAGE_ADDR + entry::PRIVILEGED, nr, args)
}

/// Facts about the fresh image, read at the exec stop.
#[derive(Debug, Clone, Copy)]
pub struct ExecFacts {
    /// Initial stack pointer.
    pub sp: u64,
    /// Entry instruction pointer.
    pub ip: u64,
    /// Address of the 16 `AT_RANDOM` bytes.
    pub at_random_addr: u64,
    /// Their value.
    pub at_random: [u8; 16],
    /// Address of the filename string the program was exec'd with.
    pub execfn_addr: u64,
    /// Where the copy of the recorder's vDSO was mapped ([`map_image_copy`]),
    /// if one was.
    pub vdso_copy: Option<u64>,
}

impl ExecFacts {
    /// The images of the recorder's own vDSO mapped with a stub page for
    /// their sites ([`vdso::Placed`]) by [`prepare_after_exec`] under this
    /// thread's [`VdsoMode`]: the syscall buffer's space puts their stubs
    /// there (`syscallbuf::Space::new`).
    pub fn vdso_images(&self) -> Vec<vdso::Placed> {
        if vdso_mode() != VdsoMode::Own {
            return Vec::new();
        }
        std::iter::once(vdso::Placed::main())
            .chain(self.vdso_copy.map(vdso::Placed::copy))
            .collect()
    }
}

/// What [`prepare_after_exec`] does with the vDSO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VdsoMode {
    /// The kernel's vDSO and vvar pages are unmapped and the recorder's
    /// own ([`vdso`]) is mapped at [`vdso::VDSO_ADDR`], with the stub page
    /// for its sites right after it ([`vdso::Placed`]); `AT_SYSINFO_EHDR`
    /// names it. Its functions make ordinary syscalls, which are recorded,
    /// and the address space is the same on any kernel, but for a copy of
    /// the image (and its stub page) where the recording kernel's vDSO was
    /// ([`map_image_copy`]).
    Own,
    /// Format version 3 traces: as [`VdsoMode::Own`], but the images are
    /// mapped without their stub pages (the first patch of a site in one
    /// mapped a stub page of its own, recorded with the patch), and the
    /// copy goes where the replaying kernel's vDSO is.
    OwnV3,
    /// Traces from before the recorder's own vDSO: the kernel's stays
    /// mapped, and `AT_SYSINFO_EHDR` becomes `AT_IGNORE`, so the program
    /// finds no vDSO and makes real syscalls.
    Hidden,
}

impl VdsoMode {
    /// The mode of a trace of format version `version` whose header's
    /// `own_vdso` is `own`.
    pub fn of_trace(own: bool, version: u32) -> VdsoMode {
        match (own, version) {
            (false, _) => VdsoMode::Hidden,
            (true, ..=3) => VdsoMode::OwnV3,
            (true, _) => VdsoMode::Own,
        }
    }

    /// Whether the recorder's own vDSO replaces the kernel's.
    pub fn own(self) -> bool {
        self != VdsoMode::Hidden
    }
}

/// Where [`prepare_after_exec`] maps the copy of the recorder's vDSO for
/// programs that read the kernel's copy of the auxiliary vector
/// ([`map_image_copy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VdsoCopyAt {
    /// Where this kernel put its `[vdso]`, if that place can take it: a
    /// recording, and a replay of a trace that did not record the place
    /// (format version 3).
    Kernel,
    /// At this address, the recording's (a replay): an error if it
    /// cannot be mapped there.
    Recorded(u64),
    /// Nowhere: a replay of a recording that mapped none.
    Nowhere,
}

impl VdsoCopyAt {
    /// Where a replay maps the copy for an exec recorded with `copy`.
    pub fn replaying(copy: rrtest_trace::VdsoCopy) -> VdsoCopyAt {
        match copy {
            rrtest_trace::VdsoCopy::Unrecorded => VdsoCopyAt::Kernel,
            rrtest_trace::VdsoCopy::Absent => VdsoCopyAt::Nowhere,
            rrtest_trace::VdsoCopy::At(addr) => VdsoCopyAt::Recorded(addr),
        }
    }
}

/// How an exec's copy of the vDSO goes into its trace: where it was
/// mapped, under this thread's [`VdsoMode`] (only [`VdsoMode::Own`]
/// records it; the older modes write what older recorders wrote).
pub fn vdso_copy_to_record(facts: &ExecFacts) -> rrtest_trace::VdsoCopy {
    match (vdso_mode(), facts.vdso_copy) {
        (VdsoMode::Own, Some(addr)) => rrtest_trace::VdsoCopy::At(addr),
        (VdsoMode::Own, None) => rrtest_trace::VdsoCopy::Absent,
        _ => rrtest_trace::VdsoCopy::Unrecorded,
    }
}

thread_local! {
    /// The vDSO mode [`prepare_after_exec`] applies on this OS thread: the
    /// recorder's ([`VdsoMode::Own`]) unless a replay of an older trace
    /// said otherwise (per thread, like [`POINT_DIGEST`]).
    static VDSO_MODE: std::cell::Cell<VdsoMode> = const { std::cell::Cell::new(VdsoMode::Own) };
}

/// Makes [`prepare_after_exec`] on this thread treat the vDSO as `mode`
/// says: a recording sets [`VdsoMode::Own`] (and says so in its header), a
/// replay the mode its trace's header names.
pub fn set_vdso_mode(mode: VdsoMode) {
    VDSO_MODE.with(|m| m.set(mode));
}

/// The vDSO mode of this thread ([`set_vdso_mode`]).
pub fn vdso_mode() -> VdsoMode {
    VDSO_MODE.with(std::cell::Cell::get)
}

/// The kernel's vDSO and vvar mappings in `maps` (the text of
/// `/proc/PID/maps`): start and end of each line named `[vdso]`, `[vvar]`
/// or `[vvar_vclock]` (newer kernels split the vvar pages in two: 6.18
/// does).
pub fn kernel_vdso_ranges(maps: &str) -> Vec<(u64, u64)> {
    maps.lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(5)
                .is_some_and(|name| matches!(name, "[vdso]" | "[vvar]" | "[vvar_vclock]"))
        })
        .filter_map(|l| {
            let (a, b) = l.split_whitespace().next()?.split_once('-')?;
            Some((
                u64::from_str_radix(a, 16).ok()?,
                u64::from_str_radix(b, 16).ok()?,
            ))
        })
        .collect()
}

/// The bytes [`replace_vdso`] reserves where the kernel's vDSO and vvar
/// pages were: their size differs between kernels (32 KiB on this 6.18
/// kernel: `[vvar]` 16 KiB, `[vvar_vclock]` and `[vdso]` 8 KiB each; less
/// where there is no `[vvar_vclock]`), and the hole they leave, next to
/// the loader, is where the loader's first small mappings would go,
/// kernel by kernel.
pub const KERNEL_VDSO_HOLE: u64 = 0x1_0000;

/// The mapping of `placed`, a copy of the vDSO image, under `mode`: with
/// its stub page ([`VdsoMode::Own`]), or the image alone.
fn image_mapping(placed: vdso::Placed, mode: VdsoMode) -> (u64, u64) {
    if mode == VdsoMode::Own {
        placed.mapping()
    } else {
        (placed.base, vdso::mapped_len())
    }
}

/// Replaces the kernel's vDSO in thread `tid`'s fresh image (at its exec
/// stop, the fixed page mapped) by the recorder's own, as `mode` says:
/// unmaps the kernel's vDSO and vvar pages, reserves the place they took
/// as [`KERNEL_VDSO_HOLE`] bytes of `PROT_NONE` ([`reserve_hole`]), maps a
/// copy of the image where `copy_at` says ([`map_image_copy`]), and maps
/// [`vdso::image`] at [`vdso::VDSO_ADDR`] (read-only and executable; with
/// its stub page after it under [`VdsoMode::Own`]). Returns the address
/// for `AT_SYSINFO_EHDR` and where the copy went.
fn replace_vdso(tid: i32, mode: VdsoMode, copy_at: VdsoCopyAt) -> io::Result<(u64, Option<u64>)> {
    let maps = std::fs::read_to_string(format!("/proc/{tid}/maps"))?;
    let mut ranges = kernel_vdso_ranges(&maps);
    for &(start, end) in &ranges {
        let r = inject_via_fixed_page(tid, libc::SYS_munmap, [start, end - start, 0, 0, 0, 0])?;
        if r != 0 {
            return Err(io::Error::other(format!(
                "could not unmap the kernel's vDSO or vvar pages at {start:#x}-{end:#x}: munmap returned {r}"
            )));
        }
    }
    ranges.sort_unstable();
    let mut reserved = None;
    if let Some(&(lo, _)) = ranges.first() {
        let contiguous = ranges.windows(2).all(|w| w[0].1 == w[1].0);
        let hi = ranges.last().map_or(lo, |r| r.1);
        if contiguous && hi - lo <= KERNEL_VDSO_HOLE {
            reserved = reserve_hole(tid, lo, hi)?;
        }
    }
    let copy = match copy_at {
        VdsoCopyAt::Kernel => match kernel_vdso_start(&maps) {
            Some(at) => map_image_copy(tid, at, reserved, mode)?.ok(),
            None => None,
        },
        VdsoCopyAt::Recorded(at) => match map_image_copy(tid, at, reserved, mode)? {
            Ok(at) => Some(at),
            Err(got) => {
                let (start, len) = image_mapping(vdso::Placed::copy(at), mode);
                return Err(io::Error::other(format!(
                    "the recording mapped its copy of the vDSO at {at:#x} (where the \
                     recording kernel's vDSO was), but {start:#x}-{:#x} is taken here (mmap \
                     returned {got}): this kernel lays out the program's memory otherwise \
                     (docs/portability.md)",
                    start + len
                )));
            }
        },
        VdsoCopyAt::Nowhere => None,
    };
    let (start, len) = image_mapping(vdso::Placed::main(), mode);
    let mapped = inject_via_fixed_page(
        tid,
        libc::SYS_mmap,
        anon_mmap_args(start, len, libc::PROT_READ | libc::PROT_EXEC),
    )?;
    if mapped as u64 != start {
        return Err(io::Error::other(format!(
            "could not map the recorder's vDSO at {start:#x} ({len} bytes): mmap returned {mapped}"
        )));
    }
    RemoteMem::new(tid).write(vdso::VDSO_ADDR, vdso::image())?;
    Ok((vdso::VDSO_ADDR, copy))
}

/// The auxiliary vector as [`prepare_after_exec`] left it for the program,
/// from the kernel's copy `kernel` (`/proc/PID/auxv`, which keeps what the
/// kernel wrote): under [`VdsoMode::Own`] (this thread's), the
/// `AT_SYSINFO_EHDR` entry names the recorder's own vDSO, the kernel's
/// being gone. Under [`VdsoMode::Hidden`] it is left as it is: the
/// kernel's vDSO stays mapped there, and a debugger may read it.
pub fn auxv_as_seen(kernel: &[u8]) -> Vec<u8> {
    let mut auxv = kernel.to_vec();
    if vdso_mode().own() {
        for pair in auxv.chunks_exact_mut(16) {
            if pair[..8] == AT_SYSINFO_EHDR.to_le_bytes() {
                pair[8..].copy_from_slice(&vdso::VDSO_ADDR.to_le_bytes());
            }
        }
    }
    auxv
}

/// Reserves [`KERNEL_VDSO_HOLE`] bytes (`PROT_NONE`) over the place
/// `lo..hi` the kernel's vDSO and vvar pages took, now free: ending at `hi`
/// if the space below is free (the kernel maps top-down, and put them
/// right below the loader, whose place replay checks), else starting at
/// `lo` if the space above is (bottom-up, right above the loader); else
/// nothing. Later mappings then fall where they fall on any kernel.
/// Returns the range reserved.
fn reserve_hole(tid: i32, lo: u64, hi: u64) -> io::Result<Option<(u64, u64)>> {
    for at in [hi - KERNEL_VDSO_HOLE, lo] {
        let r = inject_via_fixed_page(
            tid,
            libc::SYS_mmap,
            anon_mmap_args(at, KERNEL_VDSO_HOLE, libc::PROT_NONE),
        )?;
        if r as u64 == at {
            return Ok(Some((at, at + KERNEL_VDSO_HOLE)));
        }
    }
    Ok(None)
}

/// Where the kernel's `[vdso]` mapping starts in `maps` (the text of
/// `/proc/PID/maps`).
pub fn kernel_vdso_start(maps: &str) -> Option<u64> {
    let line = maps
        .lines()
        .find(|l| l.split_whitespace().nth(5) == Some("[vdso]"))?;
    u64::from_str_radix(line.split('-').next()?, 16).ok()
}

/// Maps a copy of the recorder's vDSO image (read-only, executable) at
/// `at`, where the recording kernel's vDSO was, with its stub page right
/// below it under [`VdsoMode::Own`] (where the kernel's vvar pages were),
/// over the recorder's own reservation `reserved` when it covers the
/// mapping, else only where nothing is mapped. The kernel's copy of the
/// auxiliary vector (`/proc/self/auxv`, and `prctl(PR_GET_AUXV)`) still
/// names that address: rustix, with its default features, reads it there
/// and looks at the ELF header it points to, which it would find unmapped
/// (`SIGSEGV`); it finds this copy, whose functions are recorded syscalls
/// like the image's at `VDSO_ADDR`. Replay maps it at the recorded address
/// (`VdsoCopyAt::Recorded`) whatever its kernel's layout, and says so if
/// it cannot. Returns `at`, or what `mmap` returned if the place is taken
/// (a kernel vDSO smaller than the image, with a mapping right after it).
fn map_image_copy(
    tid: i32,
    at: u64,
    reserved: Option<(u64, u64)>,
    mode: VdsoMode,
) -> io::Result<Result<u64, i64>> {
    let (start, len) = image_mapping(vdso::Placed::copy(at), mode);
    let inside = reserved.is_some_and(|(lo, hi)| lo <= start && start + len <= hi);
    let mut args = anon_mmap_args(start, len, libc::PROT_READ | libc::PROT_EXEC);
    if inside {
        // Over our own PROT_NONE reservation, which nothing else uses.
        args[3] = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED) as u64;
    }
    let r = inject_via_fixed_page(tid, libc::SYS_mmap, args)?;
    if r as u64 != start {
        return Ok(Err(r));
    }
    RemoteMem::new(tid).write(at, vdso::image())?;
    Ok(Ok(at))
}

/// Prepares a thread stopped at its exec stop: maps the fixed page, and
/// replaces the kernel's vDSO by the recorder's own (its copy where
/// `copy_at` says) or hides it, as this thread's [`VdsoMode`] says (either
/// way time reads are syscalls, which are recorded).
pub fn prepare_after_exec(tid: i32, copy_at: VdsoCopyAt) -> io::Result<ExecFacts> {
    let regs = ptrace::getregs(tid)?;
    let mem = RemoteMem::new(tid);

    // Map the fixed page, borrowing the entry point's first two bytes for a
    // `syscall` instruction.
    let mut saved = [0u8; 2];
    mem.read_exact(regs.rip, &mut saved)?;
    mem.write(regs.rip, &[0x0f, 0x05])?;
    let mapped = inject_syscall(
        tid,
        regs.rip,
        libc::SYS_mmap,
        anon_mmap_args(
            FIXED_PAGE_ADDR,
            FIXED_PAGE_SIZE,
            libc::PROT_READ | libc::PROT_EXEC,
        ),
    );
    mem.write(regs.rip, &saved)?;
    let mapped = mapped?;
    if mapped as u64 != FIXED_PAGE_ADDR {
        return Err(io::Error::other(format!(
            "could not map the fixed page at {FIXED_PAGE_ADDR:#x}: mmap returned {mapped}"
        )));
    }
    mem.write(FIXED_PAGE_ADDR, &fixed_page_code())?;
    let (own_vdso, vdso_copy) = match vdso_mode() {
        VdsoMode::Hidden => (None, None),
        mode => {
            let (ehdr, copy) = replace_vdso(tid, mode, copy_at)?;
            (Some(ehdr), copy)
        }
    };

    // Walk the initial stack to the auxiliary vector.
    let sp = regs.rsp;
    let argc = read_u64(&mem, sp)?;
    let mut p = sp + 8 + (argc + 1) * 8;
    while read_u64(&mem, p)? != 0 {
        p += 8;
    }
    p += 8;
    let mut at_random_addr = 0;
    let mut execfn_addr = 0;
    loop {
        let key = read_u64(&mem, p)?;
        if key == AT_NULL {
            break;
        }
        match key {
            AT_SYSINFO_EHDR => match own_vdso {
                Some(addr) => mem.write(p + 8, &addr.to_le_bytes())?,
                None => mem.write(p, &AT_IGNORE.to_le_bytes())?,
            },
            AT_RANDOM => at_random_addr = read_u64(&mem, p + 8)?,
            AT_EXECFN => execfn_addr = read_u64(&mem, p + 8)?,
            _ => {}
        }
        p += 16;
    }
    let mut at_random = [0u8; 16];
    if at_random_addr != 0 {
        mem.read_exact(at_random_addr, &mut at_random)?;
    }
    Ok(ExecFacts {
        sp,
        ip: regs.rip,
        at_random_addr,
        at_random,
        execfn_addr,
        vdso_copy,
    })
}

fn read_u64(mem: &RemoteMem, addr: u64) -> io::Result<u64> {
    let mut b = [0u8; 8];
    mem.read_exact(addr, &mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Decodes an `rdtsc` (`0f 31`) or `rdtscp` (`0f 01 f9`) at `ip`: returns
/// `(is_rdtscp, length)`.
pub fn decode_rdtsc(mem: &RemoteMem, ip: u64) -> Option<(bool, u64)> {
    let mut b = [0u8; 3];
    mem.read_exact(ip, &mut b[..2]).ok()?;
    if b[..2] == [0x0f, 0x31] {
        return Some((false, 2));
    }
    mem.read_exact(ip, &mut b).ok()?;
    (b == [0x0f, 0x01, 0xf9]).then_some((true, 3))
}

/// Whether the 7 bytes before a return address end with a call
/// instruction: `call rel32` (e8), or `call r/m64` (ff /2) of 2, 3, 6 or 7
/// bytes. How a word on a stack is told to be a return address without
/// unwind tables.
pub fn ends_with_call(before: &[u8; 7]) -> bool {
    let reg2 = |modrm: u8| modrm & 0x38 == 0x10;
    before[2] == 0xe8
        || (before[5] == 0xff && reg2(before[6]))
        || (before[4] == 0xff && reg2(before[5]))
        || (before[1] == 0xff && reg2(before[2]))
        || (before[0] == 0xff && reg2(before[1]))
}

/// The registers of an execution point, in [`ExecPoint::regs`] order
/// (rflags without the trap and resume flags, which the stops set).
pub fn point_regs(r: &Regs) -> [u64; POINT_REGS] {
    const TRAP_AND_RESUME_FLAGS: u64 = 0x100 | 0x1_0000;
    [
        r.rax,
        r.rbx,
        r.rcx,
        r.rdx,
        r.rsi,
        r.rdi,
        r.rbp,
        r.rsp,
        r.r8,
        r.r9,
        r.r10,
        r.r11,
        r.r12,
        r.r13,
        r.r14,
        r.r15,
        r.eflags & !TRAP_AND_RESUME_FLAGS,
        r.fs_base,
        r.gs_base,
    ]
}

/// The execution point thread `tid`, stopped with registers `r`, is at
/// (its digest of the kind [`point_digest`] says).
pub fn exec_point(tid: i32, r: &Regs) -> io::Result<ExecPoint> {
    Ok(ExecPoint {
        ip: r.rip,
        regs: point_regs(r),
        digest: state_digest(tid, r.rsp)?,
        words: rrtest_trace::PointWords::NONE,
    })
}

thread_local! {
    /// The digest kind [`exec_point`] computes on this OS thread: the
    /// recorder's ([`PointDigest::CURRENT`]) unless a replay of an older
    /// trace said otherwise. Per thread because ptrace is: the recorder or
    /// replay that reads a tracee's points is the one thread tracing it.
    static POINT_DIGEST: std::cell::Cell<PointDigest> =
        const { std::cell::Cell::new(PointDigest::CURRENT) };
}

/// The digest kind [`exec_point`] and [`state_digest`] use on this thread.
pub fn point_digest() -> PointDigest {
    POINT_DIGEST.with(std::cell::Cell::get)
}

/// Makes [`exec_point`] and [`state_digest`] on this thread compute
/// digests of `kind`: a recording sets [`PointDigest::CURRENT`] (and
/// writes it in its header), a replay the kind its trace's header names.
pub fn set_point_digest(kind: PointDigest) {
    POINT_DIGEST.with(|k| k.set(kind));
}

/// Bytes of stack hashed above the stack pointer (below it: the 128-byte
/// red zone).
pub(crate) const STACK_WINDOW: u64 = 64 << 10;
pub(crate) const RED_ZONE: u64 = 128;

/// A digest of what an execution point's registers do not show: the
/// FPU/SSE registers, the stack from the red zone to 64 KiB above the
/// stack pointer, and the writable memory of mapped files (`.data`,
/// `.bss`) and the heap ([`digest_ranges`]), hashed as [`point_digest`]
/// says ([`state_digest_as`]).
pub fn state_digest(tid: i32, rsp: u64) -> io::Result<u64> {
    state_digest_as(point_digest(), tid, rsp)
}

/// [`state_digest`] with a digest of kind `kind`. Every kind hashes the
/// FPU area, then for each range that could be read, its start address (8
/// bytes, little-endian) and its bytes. A range that cannot be read (a file
/// mapping past the file's end) is left out, start and all. The kinds
/// differ in the hash and in the main thread's stack window
/// ([`digest_ranges_as`]).
pub fn state_digest_as(kind: PointDigest, tid: i32, rsp: u64) -> io::Result<u64> {
    let fpregs = ptrace::getfpregs(tid)?;
    let maps = std::fs::read_to_string(format!("/proc/{tid}/maps"))?;
    let (ranges, zeros) = digest_ranges_as(kind, &maps, rsp);
    let mut buf = Vec::new();
    let read = read_ranges(tid, &ranges, &mut buf);
    let digest = hash_state_with(kind, &fpregs, &read, &buf, zeros);
    KEPT_RANGES.with(|k| {
        let mut k = k.borrow_mut();
        k.token += 1;
        k.kept = Some((tid, rsp, ranges));
        k.maps = Some((tid, maps));
    });
    Ok(digest)
}

/// The text of `/proc/TID/maps` the last digest this OS thread computed
/// from it read, if that digest was thread `tid`'s. Stale where a mapping
/// changed since (the seccomp filter lets anonymous `mmap` and `munmap`
/// through without a stop): for a reader that tolerates that
/// ([`words::Snapshot::take`]), it saves reading the maps again (about
/// 60 µs of a snapshot's 80 µs here).
pub fn kept_maps(tid: i32) -> Option<String> {
    KEPT_RANGES.with(|k| {
        k.borrow()
            .maps
            .as_ref()
            .filter(|(t, _)| *t == tid)
            .map(|(_, maps)| maps.clone())
    })
}

/// The ranges of the last digest this OS thread computed from
/// `/proc/TID/maps` ([`state_digest_as`]), for [`exec_point_again`]: the
/// thread, its stack pointer, the ranges; and a count of such digests.
#[derive(Default)]
struct KeptRanges {
    token: u64,
    kept: Option<Kept>,
    /// The thread and the maps text of that digest ([`kept_maps`]).
    maps: Option<(i32, String)>,
}

/// A thread, its stack pointer, and the ranges of its digest.
type Kept = (i32, u64, Vec<(u64, u64)>);

thread_local! {
    static KEPT_RANGES: std::cell::RefCell<KeptRanges> = std::cell::RefCell::default();
}

/// A token for the ranges of the digest this OS thread computed last (by
/// [`exec_point`] or [`state_digest`]): [`exec_point_again`] reads the same
/// ranges while no other digest came between.
pub fn ranges_token() -> u64 {
    KEPT_RANGES.with(|k| k.borrow().token)
}

/// [`exec_point`] at a later stop of the same thread, reading the memory
/// ranges of the digest that `token` ([`ranges_token`]) names instead of
/// reading and parsing `/proc/TID/maps` again (about 70 of a digest's 80
/// µs): the same digest, provided no mapping of the process changed in
/// between, which the caller guarantees: no syscall of any of its threads
/// ran between the two stops (a spin probe's passes, which a syscall, traced
/// or buffered, ends). Growth of the stack mapping needs no syscall: the
/// ranges are reused only when the stack range was not cut at the
/// mapping's start, and for the same stack pointer. Otherwise, or when
/// another digest came after `token`'s, the maps are read as usual.
pub fn exec_point_again(tid: i32, r: &Regs, token: u64) -> io::Result<ExecPoint> {
    let ranges = KEPT_RANGES.with(|k| {
        let k = k.borrow();
        match &k.kept {
            Some((t, rsp, ranges))
                if k.token == token
                    && *t == tid
                    && *rsp == r.rsp
                    && ranges.iter().any(|&(lo, hi)| {
                        lo == r.rsp.saturating_sub(RED_ZONE) && (lo..hi).contains(&r.rsp)
                    }) =>
            {
                Some(ranges.clone())
            }
            _ => None,
        }
    });
    let Some(ranges) = ranges else {
        return exec_point(tid, r);
    };
    let fpregs = ptrace::getfpregs(tid)?;
    let mut buf = Vec::new();
    let read = read_ranges(tid, &ranges, &mut buf);
    Ok(ExecPoint {
        ip: r.rip,
        regs: point_regs(r),
        digest: hash_state(point_digest(), &fpregs, &read, &buf),
        words: rrtest_trace::PointWords::NONE,
    })
}

/// The memory ranges a digest covers, in the order of `maps` (the text of
/// `/proc/TID/maps`) for a thread whose stack pointer is `rsp`: the stack
/// from the red zone to 64 KiB above `rsp`, and the writable private
/// mappings of files (`.data`, `.bss`) and `[heap]`. Other anonymous
/// memory (thread stacks, large allocations) is left out to keep the cost
/// bounded; DESIGN.md §6 asks for all writable memory, and this is the part
/// of it that holds globals and most of the program's heap. The stack
/// window as digests of [`PointDigest::Sha256`] and [`PointDigest::Xxh3`]
/// take it: cut at the start of the mapping `rsp` is in, and none where
/// `rsp` is in no mapping.
pub fn digest_ranges(maps: &str, rsp: u64) -> Vec<(u64, u64)> {
    ranges_of(&digest_mappings(maps), rsp, false).0
}

/// The part of the stack window a digest hashes as zeros: from `lo` (the
/// window's start, the address hashed) to `from` (the start of the
/// `[stack]` mapping, where the range read begins).
pub type StackZeros = (u64, u64);

/// [`digest_ranges`] for a digest of kind `kind`: the ranges to read, and
/// for a kind that hashes the main thread's stack window below its
/// `[stack]` mapping as zeros ([`PointDigest::stack_zeros`]) that part.
/// The kernel grows that mapping down a page at a time, as the thread
/// touches pages below it: an execution point taken while a fault that
/// grew it was being handled (the thread interrupted before its
/// instruction ran again) has the same registers and memory as one taken
/// before the fault, but a mapping one page longer. Pages the growth adds
/// are zeros, so hashing the window below the mapping as zeros gives both
/// the same digest. Replay, stopping at the point's ip before the fault,
/// did not find such points (a deep recursion interrupted under load).
pub fn digest_ranges_as(
    kind: PointDigest,
    maps: &str,
    rsp: u64,
) -> (Vec<(u64, u64)>, Option<StackZeros>) {
    ranges_of(&digest_mappings(maps), rsp, kind.stack_zeros())
}

/// A mapping as a digest sees it.
struct Mapping {
    start: u64,
    end: u64,
    /// Hashed whole: a writable private mapping of a file, or `[heap]`.
    whole: bool,
    /// The main thread's stack, which the kernel grows down (`[stack]`).
    stack: bool,
}

/// One line of `/proc/TID/maps`: the fields an execution point's digest
/// and its words ([`words`]) read.
pub(crate) struct MapsLine<'a> {
    pub start: u64,
    pub end: u64,
    pub perms: &'a str,
    pub inode: &'a str,
    pub name: &'a str,
}

impl MapsLine<'_> {
    /// A private mapping the program may write (`rw?p`).
    pub fn writable_private(&self) -> bool {
        self.perms.starts_with("rw") && self.perms.ends_with('p')
    }

    /// Not a file's (inode 0): anonymous memory, `[heap]`, stacks.
    pub fn anonymous(&self) -> bool {
        self.inode == "0"
    }
}

/// The lines of `maps` (the text of `/proc/TID/maps`) that parse, in order.
pub(crate) fn maps_lines(maps: &str) -> impl Iterator<Item = MapsLine<'_>> {
    maps.lines().filter_map(|line| {
        let mut parts = line.split_whitespace();
        let (range, perms) = (parts.next()?, parts.next()?);
        let ((a, b), inode) = (range.split_once('-')?, parts.nth(2)?);
        Some(MapsLine {
            start: u64::from_str_radix(a, 16).ok()?,
            end: u64::from_str_radix(b, 16).ok()?,
            perms,
            inode,
            name: parts.next().unwrap_or(""),
        })
    })
}

/// What a digest needs of `/proc/TID/maps` (its text `maps`): each
/// mapping, in order.
fn digest_mappings(maps: &str) -> Vec<Mapping> {
    maps_lines(maps)
        .map(|m| Mapping {
            start: m.start,
            end: m.end,
            whole: m.writable_private() && (!m.anonymous() || m.name == "[heap]"),
            stack: m.name == "[stack]",
        })
        .collect()
}

/// The ranges a digest covers ([`digest_ranges_as`]) given the mappings
/// ([`digest_mappings`]) and the stack pointer `rsp`; with `stack_zeros`,
/// the window of a stack pointer in the `[stack]` mapping or in no mapping
/// below it is read from that mapping's start and hashed from the window's
/// start, the part below read as zeros.
fn ranges_of(
    mappings: &[Mapping],
    rsp: u64,
    stack_zeros: bool,
) -> (Vec<(u64, u64)>, Option<StackZeros>) {
    let mut out = Vec::new();
    let mut zeros = None;
    // Whether `rsp` is in a mapping: asked only where it is below the
    // `[stack]` mapping, not at every digest.
    let in_one = || mappings.iter().any(|m| (m.start..m.end).contains(&rsp));
    let lo = rsp.saturating_sub(RED_ZONE);
    for m in mappings {
        if stack_zeros && m.stack && rsp < m.end && (rsp >= m.start || !in_one()) {
            let hi = rsp.saturating_add(STACK_WINDOW).min(m.end);
            let from = m.start.clamp(lo, hi);
            out.push((from, hi));
            if from > lo {
                zeros = Some((lo, from));
            }
        } else if (m.start..m.end).contains(&rsp) {
            out.push((lo.max(m.start), rsp.saturating_add(STACK_WINDOW).min(m.end)));
        } else if m.whole {
            out.push((m.start, m.end));
        }
    }
    (out, zeros)
}

/// The most ranges one `process_vm_readv` takes (`IOV_MAX`).
const IOV_MAX: usize = 1024;

/// Reads `ranges` of thread `tid`'s memory into `buf`, back to back, with
/// one `process_vm_readv` per [`IOV_MAX`] ranges rather than one per
/// range. Returns each range read, as its start address and where its
/// bytes are in `buf`. A range the batch stops at (unreadable, in part or
/// whole) is read alone as [`RemoteMem::read_exact`] reads (which falls
/// back to `/proc/PID/mem`), and left out if that fails too: the ranges
/// returned are exactly those a read per range would return.
pub fn read_ranges(
    tid: i32,
    ranges: &[(u64, u64)],
    buf: &mut Vec<u8>,
) -> Vec<(u64, std::ops::Range<usize>)> {
    use nix::sys::uio::{process_vm_readv, RemoteIoVec};
    let total: usize = ranges.iter().map(|&(lo, hi)| (hi - lo) as usize).sum();
    // Zeroed by the allocator (`calloc`): a `resize` writes the bytes one
    // by one in an unoptimized build, about 1 ms for a digest's 170 KB.
    *buf = vec![0; total];
    let mut out = Vec::with_capacity(ranges.len());
    let (mut i, mut at) = (0, 0);
    while i < ranges.len() {
        let batch = &ranges[i..ranges.len().min(i + IOV_MAX)];
        let len: usize = batch.iter().map(|&(lo, hi)| (hi - lo) as usize).sum();
        let remote: Vec<RemoteIoVec> = batch
            .iter()
            .map(|&(lo, hi)| RemoteIoVec {
                base: lo as usize,
                len: (hi - lo) as usize,
            })
            .collect();
        let n = if len == 0 {
            0
        } else {
            process_vm_readv(
                nix::unistd::Pid::from_raw(tid),
                &mut [io::IoSliceMut::new(&mut buf[at..at + len])],
                &remote,
            )
            .unwrap_or(0)
        };
        let mut done = 0;
        for &(lo, hi) in batch {
            let size = (hi - lo) as usize;
            if done + size > n && size > 0 {
                break;
            }
            out.push((lo, at + done..at + done + size));
            done += size;
            i += 1;
        }
        at += done;
        if let Some(&(lo, hi)) = ranges.get(i).filter(|_| done < len) {
            let size = (hi - lo) as usize;
            if RemoteMem::new(tid)
                .read_exact(lo, &mut buf[at..at + size])
                .is_ok()
            {
                out.push((lo, at..at + size));
            }
            at += size;
            i += 1;
        }
    }
    out
}

/// The digest of kind `kind` of the FPU area `fpregs` and the ranges
/// `read` (start address, bytes in `buf`), in order.
pub fn hash_state(
    kind: PointDigest,
    fpregs: &[u8],
    read: &[(u64, std::ops::Range<usize>)],
    buf: &[u8],
) -> u64 {
    hash_state_with(kind, fpregs, read, buf, None)
}

/// [`hash_state`], the range read from `zeros`' `from` hashed as starting
/// at its `lo`, the bytes in between zeros ([`digest_ranges_as`]).
fn hash_state_with(
    kind: PointDigest,
    fpregs: &[u8],
    read: &[(u64, std::ops::Range<usize>)],
    buf: &[u8],
    zeros: Option<StackZeros>,
) -> u64 {
    /// Hashes the ranges into `h` through `update`.
    fn feed<H>(
        h: &mut H,
        update: fn(&mut H, &[u8]),
        read: &[(u64, std::ops::Range<usize>)],
        buf: &[u8],
        zeros: Option<StackZeros>,
    ) {
        const ZEROS: [u8; 4096] = [0; 4096];
        for (lo, r) in read {
            match zeros {
                Some((start, from)) if *lo == from => {
                    update(h, &start.to_le_bytes());
                    let mut left = (from - start) as usize;
                    while left > 0 {
                        let n = left.min(ZEROS.len());
                        update(h, &ZEROS[..n]);
                        left -= n;
                    }
                }
                _ => update(h, &lo.to_le_bytes()),
            }
            update(h, &buf[r.clone()]);
        }
    }
    match kind {
        PointDigest::Sha256 => {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            h.update(fpregs);
            feed(&mut h, |h, b| h.update(b), read, buf, zeros);
            let out = h.finalize();
            u64::from_le_bytes(out[..8].try_into().expect("32 bytes"))
        }
        PointDigest::Xxh3 | PointDigest::Xxh3StackZeros => {
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            h.update(fpregs);
            feed(&mut h, |h, b| h.update(b), read, buf, zeros);
            h.digest()
        }
    }
}

/// The first `len` bytes a write-family syscall (`write`, `pwrite64`,
/// `writev`, `pwritev`, `pwritev2`) with arguments `args` writes: the
/// recorder keeps them as the program's output, and the replayer checks
/// that the replayed program writes the same. `nr` is the trace's number:
/// a 32-bit call's iovecs are 32-bit ones (`rrtest_syscalls::read_iovec`).
pub fn written_bytes(mem: &RemoteMem, nr: i64, args: &[u64; 6], len: usize) -> io::Result<Vec<u8>> {
    let traced = nr;
    let nr = rrtest_syscalls::row_nr(nr);
    if nr == libc::SYS_write || nr == libc::SYS_pwrite64 {
        return mem.read_vec(args[1], len);
    }
    let (iov, cnt) = (args[1], args[2]);
    let mut out = Vec::with_capacity(len);
    for i in 0..cnt.min(1024) {
        if out.len() >= len {
            break;
        }
        let (base, n) = rrtest_syscalls::read_iovec(mem, traced, iov, i)?;
        let take = (n as usize).min(len - out.len());
        out.extend(mem.read_vec(base, take)?);
    }
    Ok(out)
}

/// Whether thread `tid`, stopped, is at a quiet place to inject syscalls
/// that are none of the program's business: no signal pending (for it or
/// its process), and not in the exit of a syscall the kernel is to restart
/// (its `rax` a restart code: the restart happens on the way out only if
/// the signal that interrupted it is still pending, and an injection would
/// take that signal out of the way).
pub fn quiet_for_injection(tid: i32) -> io::Result<bool> {
    let ret = ptrace::getregs(tid)?.rax as i64;
    if is_restart_code(ret) {
        return Ok(false);
    }
    no_signal_pending(tid)
}

/// Whether `ret` is one of the kernel's restart codes (`-ERESTARTSYS`,
/// `-ERESTARTNOINTR`, `-ERESTARTNOHAND`, `-ERESTART_RESTARTBLOCK`; 515 is
/// unused): a syscall interrupted by a pending signal or stop, which the
/// kernel restarts on the way out unless a handler runs.
pub fn is_restart_code(ret: i64) -> bool {
    (-516..=-512).contains(&ret)
}

/// Thread `tid`'s scheduling state as /proc shows it (`R` running or
/// runnable, `S` sleeping, `D` in an uninterruptible wait, `t` in a ptrace
/// stop, ...), or None if it cannot be read.
pub fn kernel_state(tid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{tid}/stat")).ok()?;
    stat_state(&stat)
}

/// The state field of a /proc `stat` line: `TID (COMM) STATE ...`, where
/// COMM may hold anything but ends at the last `)`.
fn stat_state(stat: &str) -> Option<char> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().next()?.chars().next()
}

/// Whether no signal is pending for thread `tid` or its process (its
/// `SigPnd` and `ShdPnd` sets in /proc are empty).
pub fn no_signal_pending(tid: i32) -> io::Result<bool> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status"))?;
    let pending = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    };
    Ok(pending("SigPnd:") == Some(0) && pending("ShdPnd:") == Some(0))
}

/// The signals thread `tid` blocks: its `SigBlk` mask in /proc.
pub fn blocked_signals(tid: i32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .ok_or_else(|| io::Error::other("no SigBlk line in /proc/TID/status"))
}

/// Where a clone-family syscall made the kernel store the new thread's id:
/// `(address, in the child's address space)`.
pub fn clone_tid_fields(tid: i32, nr: i64, args: &[u64; 6]) -> Vec<(u64, bool)> {
    let (flags, child_tid, parent_tid) = match nr {
        libc::SYS_clone => (args[0], args[3], args[2]),
        libc::SYS_clone3 => {
            let mem = RemoteMem::new(tid);
            let mut raw = [0u8; 32];
            if mem.read_exact(args[0], &mut raw).is_err() {
                return Vec::new();
            }
            let word =
                |i: usize| u64::from_le_bytes(raw[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
            (word(0), word(2), word(3))
        }
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    if flags & libc::CLONE_PARENT_SETTID as u64 != 0 && parent_tid != 0 {
        out.push((parent_tid, false));
    }
    if flags & libc::CLONE_CHILD_SETTID as u64 != 0 && child_tid != 0 {
        out.push((child_tid, true));
    }
    out
}

#[cfg(test)]
mod call_tests {
    use super::ends_with_call;

    #[test]
    fn the_call_forms_before_a_return_address_are_recognised() {
        // call rel32: e8 and four bytes.
        assert!(ends_with_call(&[0x90, 0x90, 0xe8, 1, 2, 3, 4]));
        // call *%rax (ff d0), call *0x8(%rax) (ff 50 08), call *disp32(%rip) (ff 15 + 4).
        assert!(ends_with_call(&[0, 0, 0, 0, 0, 0xff, 0xd0]));
        assert!(ends_with_call(&[0, 0, 0, 0, 0xff, 0x50, 0x08]));
        assert!(ends_with_call(&[0, 0xff, 0x15, 1, 2, 3, 4]));
        // jmp *%rax (ff e0, /4) and plain data are not calls.
        assert!(!ends_with_call(&[0, 0, 0, 0, 0, 0xff, 0xe0]));
        assert!(!ends_with_call(&[0; 7]));
    }
}

#[cfg(test)]
mod stat_tests {
    use super::{is_restart_code, kernel_state, stat_state};

    #[test]
    fn the_state_follows_the_last_parenthesis() {
        assert_eq!(stat_state("42 (race) R 1 42 42 0"), Some('R'));
        // A command name with spaces and parentheses of its own.
        assert_eq!(stat_state("43 (a) t (b)) t 1 43"), Some('t'));
        assert_eq!(stat_state("44 (x"), None);
        assert_eq!(stat_state("45 (x)"), None);
        // A child asleep in the kernel (once it got there), and one gone.
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("spawning sleep");
        let pid = child.id() as i32;
        let asleep = (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(5));
            kernel_state(pid) == Some('S')
        });
        child.kill().expect("killing sleep");
        child.wait().expect("reaping sleep");
        assert!(asleep, "sleep never seen sleeping: {:?}", kernel_state(pid));
        assert_eq!(kernel_state(pid), None);
    }

    #[test]
    fn restart_codes_are_512_to_516() {
        assert!(is_restart_code(-512) && is_restart_code(-514) && is_restart_code(-516));
        assert!(!is_restart_code(-4) && !is_restart_code(-517) && !is_restart_code(512));
    }
}

/// For tests on a real stopped process.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// Runs `check` on a `sleep 30` child, seized and stopped by an
    /// interrupt (its tid given), then kills it and fails on `check`'s
    /// error; skipped, with a line saying so, where sleep(1) cannot run.
    pub(crate) fn with_stopped_sleeper(check: impl FnOnce(i32) -> io::Result<()>) {
        let Ok(mut child) = std::process::Command::new("sleep").arg("30").spawn() else {
            eprintln!("skipped: no sleep(1) to run");
            return;
        };
        let tid = child.id() as i32;
        let checked = (|| -> io::Result<()> {
            ptrace::seize(tid)?;
            ptrace::interrupt(tid)?;
            ptrace::wait_tid(tid)?;
            check(tid)
        })();
        let _ = child.kill();
        let _ = child.wait();
        checked.expect("reading the stopped process");
    }

    /// The start of `tid`'s `[stack]` mapping.
    pub(crate) fn stack_start(tid: i32) -> u64 {
        let maps = std::fs::read_to_string(format!("/proc/{tid}/maps")).expect("maps");
        let line = maps
            .lines()
            .find(|l| l.ends_with("[stack]"))
            .expect("a [stack] mapping");
        u64::from_str_radix(line.split('-').next().expect("a range"), 16).expect("hex")
    }
}

#[cfg(test)]
mod digest_tests {
    use super::*;

    /// The SHA-256 digest as recorders before format version 2 computed it:
    /// one read per range, each hashed after its start address.
    fn sha256_as_before(tid: i32, rsp: u64) -> u64 {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(ptrace::getfpregs(tid).expect("fpregs"));
        let mem = RemoteMem::new(tid);
        let maps = std::fs::read_to_string(format!("/proc/{tid}/maps")).expect("maps");
        for (lo, hi) in digest_ranges(&maps, rsp) {
            let mut buf = vec![0u8; (hi - lo) as usize];
            if mem.read_exact(lo, &mut buf).is_ok() {
                h.update(lo.to_le_bytes());
                h.update(&buf);
            }
        }
        u64::from_le_bytes(h.finalize()[..8].try_into().expect("32 bytes"))
    }

    /// On a real stopped process: the batched reads give the SHA-256 digest
    /// older recorders wrote (so version 1 traces still verify), the XXH3
    /// digest is another, both are stable while the process stays stopped,
    /// and `exec_point_again` with the token of the last digest gives the
    /// digest a fresh read of the maps gives.
    #[test]
    fn sha256_digests_are_the_ones_older_recorders_wrote() {
        test_support::with_stopped_sleeper(|tid| {
            let regs = ptrace::getregs(tid)?;
            let sha = state_digest_as(PointDigest::Sha256, tid, regs.rsp)?;
            assert_eq!(sha, sha256_as_before(tid, regs.rsp));
            let xxh3 = state_digest_as(PointDigest::Xxh3, tid, regs.rsp)?;
            assert_ne!(sha, xxh3);
            assert_eq!(xxh3, state_digest_as(PointDigest::Xxh3, tid, regs.rsp)?);

            set_point_digest(PointDigest::Xxh3);
            let first = exec_point(tid, &regs)?;
            let token = ranges_token();
            assert_eq!(first.digest, xxh3);
            assert_eq!(exec_point_again(tid, &regs, token)?, first);
            // Not the token of the last digest: the maps are read again.
            assert_eq!(exec_point_again(tid, &regs, token + 7)?, first);
            Ok(())
        });
    }
}

#[cfg(test)]
mod stack_window_tests {
    use super::test_support::{stack_start, with_stopped_sleeper};
    use super::*;

    /// Grows `tid`'s `[stack]` mapping down to `addr`'s page: a read
    /// through `/proc/PID/mem` does (the kernel grows a stack for it).
    fn grow_to(tid: i32, addr: u64) {
        use std::os::unix::fs::FileExt;
        let mem = std::fs::File::open(format!("/proc/{tid}/mem")).expect("/proc/PID/mem");
        let mut byte = [0u8; 1];
        let _ = mem.read_at(&mut byte, addr);
    }

    /// Synthetic maps: the stack at `start`, no other mapping near it.
    fn ranges(kind: PointDigest, start: u64, rsp: u64) -> (Vec<(u64, u64)>, Option<StackZeros>) {
        let maps = format!(
            "555555554000-555555556000 r-xp 00000000 fe:00 1 /bin/x\n\
             {start:x}-7ffffffff000 rw-p 00000000 00:00 0 [stack]\n"
        );
        digest_ranges_as(kind, &maps, rsp)
    }

    /// The window hashed from `rsp - 128` whatever the mapping's start; the
    /// range read from the start when it is above; the old kinds cut it
    /// there, and have no window for a stack pointer below it.
    #[test]
    fn the_window_starts_at_the_red_zone_however_far_the_stack_grew() {
        let top = 0x7ffffffff000u64;
        let start = top - 0x10000;
        // Well inside: the same for every kind.
        let rsp = start + 0x800;
        let old = ranges(PointDigest::Xxh3, start, rsp);
        assert_eq!(old, (vec![(rsp - 128, top)], None));
        assert_eq!(ranges(PointDigest::Xxh3StackZeros, start, rsp), old);
        // The red zone below the start.
        let rsp = start + 64;
        assert_eq!(ranges(PointDigest::Xxh3, start, rsp).0, vec![(start, top)]);
        assert_eq!(
            ranges(PointDigest::Xxh3StackZeros, start, rsp),
            (vec![(start, top)], Some((rsp - 128, start)))
        );
        // The stack pointer below the start (a frame not touched yet).
        let rsp = start - 0x1010;
        assert_eq!(ranges(PointDigest::Xxh3, start, rsp).0, vec![]);
        assert_eq!(
            ranges(PointDigest::Xxh3StackZeros, start, rsp),
            (vec![(start, rsp + STACK_WINDOW)], Some((rsp - 128, start)))
        );
        // So far below that the window ends before the mapping: all zeros.
        let rsp = start - 0x20000;
        assert_eq!(
            ranges(PointDigest::Xxh3StackZeros, start, rsp),
            (
                vec![(rsp + STACK_WINDOW, rsp + STACK_WINDOW)],
                Some((rsp - 128, rsp + STACK_WINDOW))
            )
        );
        // In another mapping (a thread's stack): not the main stack's window.
        let maps = format!(
            "7ffff0000000-7ffff0100000 rw-p 00000000 00:00 0\n\
             {start:x}-7ffffffff000 rw-p 00000000 00:00 0 [stack]\n"
        );
        let rsp = 0x7ffff0080000;
        assert_eq!(
            digest_ranges_as(PointDigest::Xxh3StackZeros, &maps, rsp),
            (vec![(rsp - 128, rsp + STACK_WINDOW)], None)
        );
    }

    /// On a real stopped process: a digest taken with the stack pointer in
    /// or below the `[stack]` mapping's first page is the same after the
    /// kernel grew the mapping by pages of zeros, where the XXH3 digest of
    /// format versions 2 to 7 changed.
    #[test]
    fn a_grown_stack_mapping_leaves_the_digest_as_it_was() {
        with_stopped_sleeper(|tid| {
            // In the first page, then below the mapping grown by the first.
            for below in [-64i64, 0x1010] {
                let start = stack_start(tid);
                let rsp = start.wrapping_add_signed(-below);
                let zeros = state_digest_as(PointDigest::Xxh3StackZeros, tid, rsp)?;
                let old = state_digest_as(PointDigest::Xxh3, tid, rsp)?;
                grow_to(tid, rsp - 0x2000);
                let grown = stack_start(tid);
                if grown == start {
                    eprintln!("skipped: this kernel does not grow a stack for /proc/PID/mem");
                    return Ok(());
                }
                assert!(grown <= rsp - 0x2000, "{grown:#x}");
                assert_eq!(
                    state_digest_as(PointDigest::Xxh3StackZeros, tid, rsp)?,
                    zeros,
                    "rsp {rsp:#x}: the mapping grew from {start:#x} to {grown:#x}"
                );
                assert_ne!(state_digest_as(PointDigest::Xxh3, tid, rsp)?, old);
            }
            Ok(())
        });
    }
}
