//! ptrace requests and `waitpid`, as thin wrappers over libc.
//!
//! nix covers most of ptrace, but its `Signal` enum cannot carry real-time
//! signals, which tracees use; these wrappers take and return raw signal
//! numbers instead.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// The tracee's general registers (`struct user_regs_struct`).
pub type Regs = libc::user_regs_struct;

/// The fields of [`Regs`] in the kernel's order (`struct user_regs_struct`).
macro_rules! regs_fields {
    ($m:ident) => {
        $m!(
            r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rax, rcx, rdx, rsi, rdi, orig_rax, rip,
            cs, eflags, rsp, ss, fs_base, gs_base, ds, es, fs, gs
        )
    };
}

/// Bytes of a `struct user_regs_struct`.
pub const REGS_SIZE: usize = std::mem::size_of::<Regs>();

/// The registers as the kernel lays them out (what `PTRACE_GETREGS`
/// stores).
pub fn regs_to_bytes(regs: &Regs) -> [u8; REGS_SIZE] {
    let mut out = [0u8; REGS_SIZE];
    let mut at = 0;
    macro_rules! put {
        ($($f:ident),*) => {
            $(
                out[at..at + 8].copy_from_slice(&regs.$f.to_ne_bytes());
                at += 8;
            )*
        };
    }
    regs_fields!(put);
    debug_assert_eq!(at, REGS_SIZE);
    out
}

/// Registers from their kernel layout (what `PTRACE_SETREGS` reads); None
/// when `bytes` is not [`REGS_SIZE`] long.
pub fn regs_from_bytes(bytes: &[u8]) -> Option<Regs> {
    if bytes.len() != REGS_SIZE {
        return None;
    }
    // SAFETY: user_regs_struct is plain integers; all-zero is valid.
    let mut regs: Regs = unsafe { std::mem::zeroed() };
    let mut at = 0;
    macro_rules! get {
        ($($f:ident),*) => {
            $(
                regs.$f = u64::from_ne_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
                at += 8;
            )*
        };
    }
    regs_fields!(get);
    debug_assert_eq!(at, REGS_SIZE);
    Some(regs)
}

/// Size of a raw `siginfo_t`.
pub const SIGINFO_SIZE: usize = 128;

/// The options every tracee is seized with.
pub const OPTIONS: libc::c_int = libc::PTRACE_O_TRACESYSGOOD
    | libc::PTRACE_O_TRACECLONE
    | libc::PTRACE_O_TRACEFORK
    | libc::PTRACE_O_TRACEVFORK
    | libc::PTRACE_O_TRACEEXEC
    | libc::PTRACE_O_TRACESECCOMP
    | libc::PTRACE_O_EXITKILL;

/// What `waitpid` reported about one tracee thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitEvent {
    /// The thread exited (for a thread-group leader: the process exited).
    Exited {
        /// Thread id.
        tid: i32,
        /// Exit code.
        code: i32,
    },
    /// The thread was killed by a signal.
    Signaled {
        /// Thread id.
        tid: i32,
        /// The signal.
        signo: i32,
        /// Whether it dumped core.
        core: bool,
    },
    /// A syscall stop (`SIGTRAP | 0x80`, from `PTRACE_SYSCALL`).
    SyscallStop {
        /// Thread id.
        tid: i32,
    },
    /// A `PTRACE_EVENT_*` stop.
    Event {
        /// Thread id.
        tid: i32,
        /// The `PTRACE_EVENT_*` number.
        event: i32,
        /// The stop signal (for `PTRACE_EVENT_STOP`, which signal stopped it).
        sig: i32,
    },
    /// A signal-delivery-stop: `signo` is about to be delivered.
    Signal {
        /// Thread id.
        tid: i32,
        /// The signal.
        signo: i32,
    },
}

impl WaitEvent {
    /// The thread the event is about.
    pub fn tid(&self) -> i32 {
        match *self {
            WaitEvent::Exited { tid, .. }
            | WaitEvent::Signaled { tid, .. }
            | WaitEvent::SyscallStop { tid }
            | WaitEvent::Event { tid, .. }
            | WaitEvent::Signal { tid, .. } => tid,
        }
    }
}

fn decode(tid: i32, status: libc::c_int) -> WaitEvent {
    if libc::WIFEXITED(status) {
        WaitEvent::Exited {
            tid,
            code: libc::WEXITSTATUS(status),
        }
    } else if libc::WIFSIGNALED(status) {
        WaitEvent::Signaled {
            tid,
            signo: libc::WTERMSIG(status),
            core: libc::WCOREDUMP(status),
        }
    } else {
        let sig = libc::WSTOPSIG(status);
        let event = (status >> 16) & 0xff;
        if sig == (libc::SIGTRAP | 0x80) {
            WaitEvent::SyscallStop { tid }
        } else if event != 0 {
            WaitEvent::Event { tid, event, sig }
        } else {
            WaitEvent::Signal { tid, signo: sig }
        }
    }
}

/// Nanoseconds from [`EVENT_EPOCH`] to the last event a wait returned
/// (0: none yet).
static LAST_EVENT_NS: AtomicU64 = AtomicU64::new(0);
static EVENT_EPOCH: OnceLock<Instant> = OnceLock::new();

fn note_event() {
    let epoch = *EVENT_EPOCH.get_or_init(Instant::now);
    let ns = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
    LAST_EVENT_NS.store(ns.max(1), Ordering::Relaxed);
}

/// When one of this module's waits last returned an event of a tracee,
/// whichever wait it was (None: none yet). A tracer that takes some stops
/// in loops of its own (single steps, injected syscalls) as well as in its
/// main wait sees all of them here, for a watchdog that must tell a
/// stalled tracer from a busy one. Process-wide: meant for a process with
/// one tracer at a time (`record` runs one recording session).
pub fn last_event() -> Option<Instant> {
    let ns = LAST_EVENT_NS.load(Ordering::Relaxed);
    let epoch = EVENT_EPOCH.get()?;
    (ns != 0).then(|| *epoch + std::time::Duration::from_nanos(ns))
}

fn wait_raw(pid: i32, flags: libc::c_int) -> io::Result<Option<WaitEvent>> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer for the duration of the call.
        let r = unsafe { libc::waitpid(pid, &mut status, flags | libc::__WALL) };
        if r > 0 {
            note_event();
            return Ok(Some(decode(r, status)));
        }
        if r == 0 {
            return Ok(None);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Waits for the next event of any tracee; `None` when a signal handler ran
/// (see `sys::signals`).
pub fn wait_any_interruptible() -> io::Result<Option<WaitEvent>> {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer for the duration of the call.
    let r = unsafe { libc::waitpid(-1, &mut status, libc::__WALL) };
    if r > 0 {
        note_event();
        return Ok(Some(decode(r, status)));
    }
    let e = io::Error::last_os_error();
    if e.kind() == io::ErrorKind::Interrupted {
        return Ok(None);
    }
    Err(e)
}

/// Waits for the next event of any tracee.
pub fn wait_any() -> io::Result<WaitEvent> {
    wait_raw(-1, 0).map(|e| e.expect("blocking waitpid returned no child"))
}

/// Returns the next event of thread `tid`, if one is ready.
pub fn wait_tid_nohang(tid: i32) -> io::Result<Option<WaitEvent>> {
    wait_raw(tid, libc::WNOHANG)
}

/// Whether thread `tid` is in a syscall stop (`SIGTRAP | 0x80`) that was
/// not reported yet. The report is left where it is (`WNOWAIT`): the next
/// wait for `tid` takes it.
pub fn syscall_stop_waiting(tid: i32) -> io::Result<bool> {
    Ok(stop_waiting(libc::P_PID, tid as libc::id_t)?
        .is_some_and(|(pid, status)| pid == tid && status == (libc::SIGTRAP | 0x80)))
}

/// Whether any tracee is in a stop that was not reported yet (left where
/// it is, as [`syscall_stop_waiting`] leaves it): one call that tells
/// there is nothing to look for.
pub fn any_stop_waiting() -> io::Result<bool> {
    Ok(stop_waiting(libc::P_ALL, 0)?.is_some())
}

/// The thread id and stop status of a stop (`CLD_TRAPPED`) of `id` not
/// reported yet, left to be taken (`WNOWAIT`).
fn stop_waiting(idtype: libc::idtype_t, id: libc::id_t) -> io::Result<Option<(i32, i32)>> {
    // SAFETY: an all-zero `siginfo_t` is a valid value of the type.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `info` is a valid out-pointer for the duration of the call.
        let r = unsafe {
            libc::waitid(
                idtype,
                id,
                &mut info,
                libc::WSTOPPED | libc::WNOHANG | libc::WNOWAIT | libc::__WALL,
            )
        };
        if r == 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            continue;
        }
        // No child at all: nothing waits.
        if e.raw_os_error() == Some(libc::ECHILD) {
            return Ok(None);
        }
        return Err(e);
    }
    // SAFETY: waitid filled the CLD_* fields (or left them zero: no report).
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    Ok((pid != 0 && info.si_code == libc::CLD_TRAPPED).then_some((pid, status)))
}

/// Returns the next event of any tracee, if one is ready.
pub fn wait_any_nohang() -> io::Result<Option<WaitEvent>> {
    wait_raw(-1, libc::WNOHANG)
}

/// Waits for the next event of thread `tid`.
pub fn wait_tid(tid: i32) -> io::Result<WaitEvent> {
    wait_raw(tid, 0).map(|e| e.expect("blocking waitpid returned no child"))
}

/// How many resume requests ([`cont`], [`syscall`], [`singlestep`]) this
/// process has made, for a caller that keeps what it read of a tracee's
/// memory only while no tracee has run since ([`resumes`]).
static RESUMES: AtomicU64 = AtomicU64::new(0);

/// The number of resume requests made so far: two equal readings mean no
/// tracee was resumed (by these functions) in between.
pub fn resumes() -> u64 {
    RESUMES.load(Ordering::Relaxed)
}

fn req(request: libc::c_uint, tid: i32, addr: usize, data: usize) -> io::Result<libc::c_long> {
    // SAFETY: every request issued through this function passes either a
    // plain integer or a pointer to a live, correctly sized buffer as `data`
    // (see the callers), and the kernel validates `tid`.
    let r = unsafe {
        libc::ptrace(
            request,
            tid,
            addr as *mut libc::c_void,
            data as *mut libc::c_void,
        )
    };
    if r == -1 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(0) {
            return Err(e);
        }
    }
    Ok(r)
}

/// `PTRACE_SEIZE` with [`OPTIONS`].
pub fn seize(tid: i32) -> io::Result<()> {
    req(libc::PTRACE_SEIZE, tid, 0, OPTIONS as usize).map(drop)
}

/// Resumes the thread until its next stop (seccomp stops included), delivering `sig` (0 for none).
pub fn cont(tid: i32, sig: i32) -> io::Result<()> {
    RESUMES.fetch_add(1, Ordering::Relaxed);
    req(libc::PTRACE_CONT, tid, 0, sig as usize).map(drop)
}

/// Resumes the thread until its next syscall stop, delivering `sig` (0 for none).
pub fn syscall(tid: i32, sig: i32) -> io::Result<()> {
    RESUMES.fetch_add(1, Ordering::Relaxed);
    req(libc::PTRACE_SYSCALL, tid, 0, sig as usize).map(drop)
}

/// Executes one instruction.
pub fn singlestep(tid: i32, sig: i32) -> io::Result<()> {
    RESUMES.fetch_add(1, Ordering::Relaxed);
    req(libc::PTRACE_SINGLESTEP, tid, 0, sig as usize).map(drop)
}

/// Stops a running thread (`PTRACE_INTERRUPT`).
pub fn interrupt(tid: i32) -> io::Result<()> {
    req(libc::PTRACE_INTERRUPT, tid, 0, 0).map(drop)
}

/// Reads the general registers.
pub fn getregs(tid: i32) -> io::Result<Regs> {
    // SAFETY: user_regs_struct is plain integers; all-zero is valid.
    let mut regs: Regs = unsafe { std::mem::zeroed() };
    req(
        libc::PTRACE_GETREGS,
        tid,
        0,
        &mut regs as *mut Regs as usize,
    )?;
    Ok(regs)
}

/// Reads the FPU/SSE registers (`struct user_fpregs_struct`, 512 bytes) as bytes.
pub fn getfpregs(tid: i32) -> io::Result<[u8; 512]> {
    let mut buf = [0u8; 512];
    req(libc::PTRACE_GETFPREGS, tid, 0, buf.as_mut_ptr() as usize)?;
    Ok(buf)
}

/// Writes the x87 and SSE registers (`PTRACE_SETFPREGS`: the 512-byte
/// `struct user_fpregs_struct`, the FXSAVE layout). The kernel refuses an
/// `mxcsr` with bits the CPU does not have (EINVAL).
pub fn setfpregs(tid: i32, fp: &[u8; 512]) -> io::Result<()> {
    req(libc::PTRACE_SETFPREGS, tid, 0, fp.as_ptr() as usize).map(drop)
}

/// `PTRACE_SETREGSET` of note type `note` from `bytes`: how many bytes the
/// kernel took (it shortens the length to its register set's size; EINVAL
/// for a note type it lacks, a length that is not a multiple of the set's
/// unit, or one its set does not take).
pub fn setregset(tid: i32, note: u64, bytes: &[u8]) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    req(
        libc::PTRACE_SETREGSET,
        tid,
        note as usize,
        &mut iov as *mut libc::iovec as usize,
    )?;
    Ok(iov.iov_len.min(bytes.len()))
}

/// Writes the general registers.
pub fn setregs(tid: i32, regs: &Regs) -> io::Result<()> {
    req(libc::PTRACE_SETREGS, tid, 0, regs as *const Regs as usize).map(drop)
}

/// `PTRACE_GETEVENTMSG`: e.g. the new thread's id at a clone event.
pub fn geteventmsg(tid: i32) -> io::Result<u64> {
    let mut msg: libc::c_ulong = 0;
    req(
        libc::PTRACE_GETEVENTMSG,
        tid,
        0,
        &mut msg as *mut libc::c_ulong as usize,
    )?;
    Ok(msg)
}

/// The raw `siginfo_t` of the signal the thread is stopped for.
pub fn getsiginfo(tid: i32) -> io::Result<[u8; SIGINFO_SIZE]> {
    let mut buf = [0u8; SIGINFO_SIZE];
    req(libc::PTRACE_GETSIGINFO, tid, 0, buf.as_mut_ptr() as usize)?;
    Ok(buf)
}

/// Replaces the `siginfo_t` of the signal the thread is stopped for.
pub fn setsiginfo(tid: i32, info: &[u8; SIGINFO_SIZE]) -> io::Result<()> {
    req(libc::PTRACE_SETSIGINFO, tid, 0, info.as_ptr() as usize).map(drop)
}

/// Sends `sig` to thread `tid` of process `pid` (from the recorder/replayer).
pub fn tgkill(pid: i32, tid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: a plain syscall with integer arguments.
    let r = unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, sig) };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `si_code` of a `SIGTRAP` raised by a debug-register breakpoint or
/// watchpoint.
pub const TRAP_HWBKPT: i32 = 4;

/// `si_code` of a raw siginfo.
pub fn siginfo_code(info: &[u8; SIGINFO_SIZE]) -> i32 {
    i32::from_ne_bytes([info[8], info[9], info[10], info[11]])
}

/// Syscall argument registers in order (rdi, rsi, rdx, r10, r8, r9).
pub fn syscall_args(regs: &Regs) -> [u64; 6] {
    [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9]
}

/// Sets the syscall argument registers.
pub fn set_syscall_args(regs: &mut Regs, args: &[u64; 6]) {
    regs.rdi = args[0];
    regs.rsi = args[1];
    regs.rdx = args[2];
    regs.r10 = args[3];
    regs.r8 = args[4];
    regs.r9 = args[5];
}

/// Offset of `u_debugreg` in `struct user` (x86-64).
const DEBUGREG_OFFSET: usize = 848;

/// Writes hardware debug register `n` (0-3 addresses, 7 control).
pub fn set_debugreg(tid: i32, n: usize, value: u64) -> io::Result<()> {
    req(
        libc::PTRACE_POKEUSER,
        tid,
        DEBUGREG_OFFSET + n * 8,
        value as usize,
    )
    .map(drop)
}

/// The x86 resume flag in rflags: the instruction breakpoint at the next
/// instruction does not fire. The kernel sets it in the registers of a
/// thread stopped by an execution breakpoint's trap, so that resumed, the
/// thread runs the instruction there once without trapping again, the
/// breakpoint left armed.
pub const RESUME_FLAG: u64 = 1 << 16;

/// Arms (or, with `None`, disarms) an execution breakpoint at `ip` in debug
/// register 0, keeping what DR7 says of slots 1-3 (the program's own
/// breakpoints under emulated ptrace, a replay debugger's watchpoints).
pub fn exec_breakpoint(tid: i32, ip: Option<u64>) -> io::Result<()> {
    let old = get_debugreg(tid, 7)?;
    match ip {
        Some(ip) => {
            set_debugreg(tid, 0, ip)?;
            // L0 enabled, R/W0 = 00 (execution), LEN0 = 00.
            set_debugreg(tid, 7, dr7_with_slot0(old, 1))
        }
        None if old & dr7_slot_mask(0) == 0 => Ok(()),
        None => set_debugreg(tid, 7, dr7_with_slot0(old, 0)),
    }
}

/// DR7 `old` with slot 0's bits (enable bits and condition) made `slot0`,
/// the other slots' kept.
pub fn dr7_with_slot0(old: u64, slot0: u64) -> u64 {
    (old & !dr7_slot_mask(0)) | (slot0 & dr7_slot_mask(0))
}

/// Reads hardware debug register `n` (0-3 addresses, 6 status, 7 control).
pub fn get_debugreg(tid: i32, n: usize) -> io::Result<u64> {
    // PTRACE_PEEKUSER returns the word itself; `req` tells a -1 word from
    // an error by errno.
    req(libc::PTRACE_PEEKUSER, tid, DEBUGREG_OFFSET + n * 8, 0).map(|w| w as u64)
}

/// DR7 bits for slot `n`: enabled locally, with condition `rw` (0 execute,
/// 1 write, 3 read or write) over `len` bytes (1, 2, 4 or 8).
pub fn dr7_slot(n: usize, rw: u64, len: u64) -> u64 {
    let len_bits = match len {
        1 => 0,
        2 => 1,
        8 => 2,
        _ => 3,
    };
    (1 << (2 * n)) | (((rw & 3) | (len_bits << 2)) << (16 + 4 * n))
}

/// The DR7 bits that belong to slot `n` (enable bits and condition).
pub fn dr7_slot_mask(n: usize) -> u64 {
    (3 << (2 * n)) | (0xf << (16 + 4 * n))
}

/// The size of the x86 XSAVE area `PTRACE_GETREGSET` reads at most.
pub const XSTATE_MAX: usize = 4096;

/// Reads the thread's extended state (`NT_X86_XSTATE`: the XSAVE layout,
/// whose first 512 bytes are the legacy FPU/SSE area and whose AVX upper
/// halves follow at the offset `cpuid` gives, 576 on every x86-64 CPU).
pub fn getxstate(tid: i32) -> io::Result<Vec<u8>> {
    const NT_X86_XSTATE: u64 = 0x202;
    getregset(tid, NT_X86_XSTATE, XSTATE_MAX)
}

/// `PTRACE_GETREGSET` of note type `note` into a buffer of `len` bytes:
/// the bytes the kernel wrote (it shortens the length to its register
/// set's size; EINVAL for a note type it lacks, or a length that is not a
/// multiple of the set's unit).
pub fn getregset(tid: i32, note: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    req(
        libc::PTRACE_GETREGSET,
        tid,
        note as usize,
        &mut iov as *mut libc::iovec as usize,
    )?;
    buf.truncate(iov.iov_len.min(len));
    Ok(buf)
}

/// The thread's blocked-signal mask (`PTRACE_GETSIGMASK`), bit `n - 1`
/// for signal `n`.
pub fn getsigmask(tid: i32) -> io::Result<u64> {
    let mut mask: u64 = 0;
    req(
        libc::PTRACE_GETSIGMASK,
        tid,
        8,
        &mut mask as *mut u64 as usize,
    )?;
    Ok(mask)
}

/// Up to `nr` of the thread's pending signals from the `off`th on
/// (`PTRACE_PEEKSIGINFO`): of its own queue, or with `shared` of its
/// process's, in the kernel's order.
pub fn peek_siginfo(
    tid: i32,
    off: u64,
    shared: bool,
    nr: usize,
) -> io::Result<Vec<[u8; SIGINFO_SIZE]>> {
    #[repr(C)]
    struct Args {
        off: u64,
        flags: u32,
        nr: i32,
    }
    let args = Args {
        off,
        flags: u32::from(shared),
        nr: i32::try_from(nr).unwrap_or(i32::MAX),
    };
    let mut buf = vec![[0u8; SIGINFO_SIZE]; nr];
    let n = req(
        0x4209, // PTRACE_PEEKSIGINFO
        tid,
        &args as *const Args as usize,
        buf.as_mut_ptr() as usize,
    )?;
    buf.truncate(usize::try_from(n).unwrap_or(0).min(nr));
    Ok(buf)
}

/// The thread's TLS descriptor `idx` in the GDT (`PTRACE_GET_THREAD_AREA`):
/// a `struct user_desc`, 16 bytes (`entry_number`, `base_addr`, `limit`,
/// the flags word), as the kernel fills it; EINVAL for an index outside
/// the TLS entries, EIO for a negative one.
pub fn get_thread_area(tid: i32, idx: u32) -> io::Result<[u8; 16]> {
    let mut desc = [0u8; 16];
    req(
        25, // PTRACE_GET_THREAD_AREA (<sys/ptrace.h>; not in the libc crate)
        tid,
        idx as usize,
        desc.as_mut_ptr() as usize,
    )?;
    Ok(desc)
}

/// Replaces the thread's blocked-signal mask (`PTRACE_SETSIGMASK`).
pub fn setsigmask(tid: i32, mask: u64) -> io::Result<()> {
    req(
        libc::PTRACE_SETSIGMASK,
        tid,
        8,
        &mask as *const u64 as usize,
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn registers_go_to_the_kernel_layout_and_back() {
        // SAFETY: user_regs_struct is plain integers; all-zero is valid.
        let mut regs: Regs = unsafe { std::mem::zeroed() };
        regs.r15 = 1;
        regs.rip = 0x1234;
        regs.gs = 27;
        let bytes = regs_to_bytes(&regs);
        assert_eq!(bytes[..8], 1u64.to_ne_bytes());
        // rip is the 17th word, gs the last.
        assert_eq!(bytes[16 * 8..17 * 8], 0x1234u64.to_ne_bytes());
        assert_eq!(bytes[REGS_SIZE - 8..], 27u64.to_ne_bytes());
        let back = regs_from_bytes(&bytes).expect("216 bytes");
        assert_eq!(regs_to_bytes(&back), bytes);
        assert!(regs_from_bytes(&bytes[1..]).is_none());
    }

    #[test]
    fn a_syscall_stop_is_seen_waiting_and_left_to_the_wait() {
        // SAFETY: the child makes raw syscalls only, all async-signal-safe.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: plain syscalls in the forked child, which then ends.
            unsafe {
                libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
                libc::raise(libc::SIGSTOP);
                libc::syscall(libc::SYS_getppid);
                libc::_exit(0);
            }
        }
        assert!(pid > 0, "fork: {}", io::Error::last_os_error());
        let ev = wait_tid(pid).expect("waitpid");
        assert!(
            matches!(
                ev,
                WaitEvent::Signal {
                    signo: libc::SIGSTOP,
                    ..
                }
            ),
            "unexpected {ev:?}"
        );
        // A signal-delivery stop, taken: nothing waits.
        assert!(!syscall_stop_waiting(pid).expect("waitid"));
        req(
            libc::PTRACE_SETOPTIONS,
            pid,
            0,
            libc::PTRACE_O_TRACESYSGOOD as usize,
        )
        .expect("PTRACE_SETOPTIONS");
        syscall(pid, 0).expect("PTRACE_SYSCALL");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !syscall_stop_waiting(pid).expect("waitid") {
            assert!(Instant::now() < deadline, "no syscall stop came");
            std::thread::sleep(Duration::from_millis(1));
        }
        // Seen, not taken: seen again, and the wait gets it.
        assert!(syscall_stop_waiting(pid).expect("waitid"));
        assert!(any_stop_waiting().expect("waitid"));
        let ev = wait_tid(pid).expect("waitpid");
        assert!(
            matches!(ev, WaitEvent::SyscallStop { .. }),
            "unexpected {ev:?}"
        );
        assert!(!syscall_stop_waiting(pid).expect("waitid"));
        // SAFETY: killing and reaping our own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), libc::__WALL);
        }
    }

    #[test]
    fn dr7_with_slot0_keeps_the_other_slots() {
        let others = dr7_slot(1, 1, 4) | dr7_slot(3, 3, 8) | 0x100;
        assert_eq!(dr7_with_slot0(others, 1), others | 1);
        assert_eq!(dr7_with_slot0(others | dr7_slot(0, 1, 8), 0), others);
        assert_eq!(dr7_with_slot0(0, 1), 1);
    }

    #[test]
    fn exec_breakpoint_keeps_slots_1_to_3_of_a_real_thread() {
        // SAFETY: the child only makes raw syscalls (ptrace, kill, _exit).
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: async-signal-safe calls in the forked child.
            unsafe {
                libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
                libc::kill(libc::getpid(), libc::SIGSTOP);
                libc::_exit(0);
            }
        }
        assert!(pid > 0, "fork: {}", io::Error::last_os_error());
        let ev = wait_tid(pid).expect("waitpid");
        assert!(matches!(ev, WaitEvent::Signal { .. }), "unexpected {ev:?}");
        let var = 0u64;
        let watch = dr7_slot(2, 1, 8);
        set_debugreg(pid, 2, &var as *const u64 as u64).expect("DR2");
        set_debugreg(pid, 7, watch).expect("DR7");
        exec_breakpoint(pid, Some(0x1000)).expect("arming");
        assert_eq!(get_debugreg(pid, 7).expect("DR7"), watch | 1);
        exec_breakpoint(pid, None).expect("disarming");
        assert_eq!(get_debugreg(pid, 7).expect("DR7"), watch);
        set_debugreg(pid, 7, 0).expect("DR7");
        req(libc::PTRACE_KILL, pid, 0, 0).expect("PTRACE_KILL");
        let _ = wait_tid(pid);
    }

    /// A function the breakpoint test's child calls (a volatile write
    /// each, so that the calls stay).
    #[inline(never)]
    fn breakpoint_target(word: &mut u64) {
        // SAFETY: a valid, exclusive reference.
        unsafe { std::ptr::write_volatile(word, 1) };
    }

    #[test]
    fn a_breakpoint_trap_sets_the_resume_flag_and_a_continue_passes_it_once() {
        let target = breakpoint_target as *const () as u64;
        // SAFETY: the child makes raw syscalls and calls a plain function.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: async-signal-safe calls in the forked child.
            unsafe {
                libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
                libc::kill(libc::getpid(), libc::SIGSTOP);
                let mut word = 0u64;
                for _ in 0..3 {
                    breakpoint_target(&mut word);
                }
                libc::_exit(0);
            }
        }
        assert!(pid > 0, "fork: {}", io::Error::last_os_error());
        let ev = wait_tid(pid).expect("waitpid");
        assert!(matches!(ev, WaitEvent::Signal { .. }), "unexpected {ev:?}");
        exec_breakpoint(pid, Some(target)).expect("arming");
        let mut traps = 0;
        loop {
            cont(pid, 0).expect("PTRACE_CONT");
            match wait_tid(pid).expect("waitpid") {
                WaitEvent::Signal {
                    signo: libc::SIGTRAP,
                    ..
                } => {
                    let regs = getregs(pid).expect("PTRACE_GETREGS");
                    assert_eq!(regs.rip, target);
                    assert_ne!(regs.eflags & RESUME_FLAG, 0, "no RF at trap {traps}");
                    traps += 1;
                }
                WaitEvent::Exited { code, .. } => {
                    assert_eq!(code, 0);
                    break;
                }
                ev => panic!("unexpected {ev:?}"),
            }
        }
        // One trap a call: each continue ran the instruction once.
        assert_eq!(traps, 3);
    }

    #[test]
    fn last_event_is_the_time_of_the_last_wait_that_returned_one() {
        let before = Instant::now();
        // SAFETY: the child only calls `_exit`, which is async-signal-safe.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: ends the forked child at once.
            unsafe { libc::_exit(7) };
        }
        assert!(pid > 0, "fork: {}", io::Error::last_os_error());
        let ev = wait_tid(pid).expect("waitpid");
        assert!(
            matches!(ev, WaitEvent::Exited { code: 7, .. }),
            "unexpected {ev:?}"
        );
        let at = last_event().expect("an event was waited for");
        assert!(at >= before && at <= Instant::now());
    }
}
