//! Signal frames, which the kernel writes at each delivery while recording
//! and again in replay, must hold the same bytes in both:
//!
//! - a signal handler never sees a stub address in its frame: a signal
//!   delivered to a thread in a stub gets the frame's saved ip rewritten to
//!   the equivalent original address ([`deliver_signal`]); `rt_sigreturn`
//!   maps an original address that lies inside a patched region back to the
//!   stub ([`fix_sigreturn`]);
//! - the fields that tell the thread's last trap (`err`, `trapno`, `cr2`)
//!   are cleared in the frame of a signal no instruction raised: they hold
//!   whatever trap the tracer caused last (a single step, a breakpoint, a
//!   trapped `rdtsc`), which differs between recording and replay; and the
//!   mask the frame saves is set to the one the recording's kernel saved
//!   where replay made the thread's mask itself ([`FrameFix`]).
//!
//! It must not decide whether or when a signal is delivered: the
//! recorder's and the replayer's sessions do.

use std::io;

use rrtest_sys::ptrace::{self, Regs, WaitEvent};
use rrtest_sys::RemoteMem;
use rrtest_syscalls::patch::StubIp;
use rrtest_trace::SignalKind;

use super::{read_struct, Space};

/// Offset of the `ucontext` in a signal frame from the stack pointer at
/// the handler's entry (past the return address the kernel pushed).
const UCONTEXT_AT_HANDLER: u64 = 8;
/// Offset of `uc_mcontext` (the `sigcontext`) in the `ucontext`, past
/// `uc_flags`, `uc_link` and `uc_stack`.
const MCONTEXT: u64 = 40;
/// Offsets in the `sigcontext`: the saved `rip` (the 17th word), the trap
/// fields `err`, `trapno`, and `oldmask` then `cr2`.
const SC_RIP: u64 = 16 * 8;
const SC_ERR: u64 = 19 * 8;
const SC_TRAPNO: u64 = 20 * 8;
const SC_OLDMASK: u64 = 21 * 8;
const SC_CR2: u64 = 22 * 8;
/// Offset of `uc_sigmask` in the `ucontext`: past the 256-byte `sigcontext`.
const UC_SIGMASK: u64 = MCONTEXT + 256;

/// Offset of the saved `rip` in a signal frame, from the stack pointer at
/// `rt_sigreturn`'s entry (which points at the `ucontext`).
const FRAME_RIP_AT_SIGRETURN: u64 = MCONTEXT + SC_RIP;

/// What [`deliver_signal`] writes into a handler's frame besides the stub
/// address, so that it holds what the recording's did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameFix {
    /// Clear `err`, `trapno` and `cr2`: the signal was sent (by a thread,
    /// a process, the kernel's timer), not raised by the instruction at
    /// the thread's ip, so those fields tell only which trap the tracer
    /// last caused. A fault's frame keeps them: the fault recurs in
    /// replay, with the same values.
    pub clear_trap: bool,
    /// The signal mask the frame saves (`uc_sigmask`, and its first word in
    /// `oldmask`), which `rt_sigreturn` restores. Replay sets it where it
    /// swapped in a call's temporary mask itself (an emulated `ppoll` or
    /// `rt_sigsuspend` that a signal ended), whose frame must save the mask
    /// from before the call, as the kernel's did while recording.
    pub saved_mask: Option<u64>,
}

impl FrameFix {
    /// The fix for a signal delivered as `kind` says: the trap fields are
    /// cleared unless the thread's instruction raised it.
    pub fn for_signal(kind: &SignalKind) -> FrameFix {
        FrameFix {
            clear_trap: !matches!(kind, SignalKind::Synchronous { .. }),
            saved_mask: None,
        }
    }

    fn is_empty(&self) -> bool {
        !self.clear_trap && self.saved_mask.is_none()
    }
}

/// A fault of the preload's fault-tolerant copy or probe
/// (`rrtest_abi::copy`): the program passed a syscall a pointer the kernel
/// would answer with `EFAULT`, and the hook met it. Not the program's
/// signal: when `signo` is `SIGSEGV` or `SIGBUS` raised by an instruction
/// (`si_code` > 0: not sent by a process) and the thread, stopped with
/// `regs`, is at one of the routines' accesses of memory, its ip is moved
/// where the routine answers the failure (past the copy's `rep movsb`,
/// where `rcx` holds the bytes left; to the probe's `mov eax, 1`), and
/// true is returned: the caller resumes the thread without the signal and
/// records nothing. The recorder and the replayer apply this same rule at
/// the same stop (the fault recurs in replay: the same access of the same
/// memory).
pub fn copy_fault_fixup(
    tid: i32,
    regs: &Regs,
    signo: i32,
    info: &[u8; ptrace::SIGINFO_SIZE],
) -> io::Result<bool> {
    let Some(resume) = copy_fault_resume(regs.rip, signo, ptrace::siginfo_code(info)) else {
        return Ok(false);
    };
    let mut fixed = *regs;
    fixed.rip = resume;
    ptrace::setregs(tid, &fixed)?;
    Ok(true)
}

/// The rule of [`copy_fault_fixup`], on the ip, the signal and its
/// `si_code`: where the thread goes on, if it is such a fault.
fn copy_fault_resume(ip: u64, signo: i32, code: i32) -> Option<u64> {
    if !matches!(signo, libc::SIGSEGV | libc::SIGBUS) || code <= 0 {
        return None;
    }
    rrtest_abi::copy::resume_ip(ip)
}

/// The thread group (process) of thread `tid`, from its `/proc` status.
fn thread_group(tid: i32) -> io::Result<i32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::other(format!("no Tgid in /proc/{tid}/status")))
}

/// Whether thread `tid` has a handler for `signo` (its `SigCgt` mask).
pub fn catches(tid: i32, signo: i32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{tid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|m| signo > 0 && m & (1u64 << (signo - 1)) != 0)
}

/// Whether delivering `signo` to thread `tid`, stopped at `ip`, needs a
/// stop at its handler's entry to change the frame there: the thread has
/// a handler, and is in a stub or `fix` asks for a change.
pub fn frame_needs_fix(
    tid: i32,
    ip: u64,
    signo: i32,
    space: Option<&Space>,
    fix: FrameFix,
) -> bool {
    let in_stub = space.is_some_and(|s| s.stub_at(ip).is_some());
    signo != 0 && (in_stub || !fix.is_empty()) && catches(tid, signo)
}

/// Resumes thread `tid`, stopped with `regs`, delivering `signo`. When
/// the frame needs a change ([`frame_needs_fix`]), steps into the handler
/// first and makes it there ([`fix_frame`]). Returns whether it did.
pub fn deliver_signal(
    tid: i32,
    regs: &Regs,
    signo: i32,
    space: Option<&Space>,
    fix: FrameFix,
) -> io::Result<bool> {
    if !frame_needs_fix(tid, regs.rip, signo, space, fix) {
        ptrace::cont(tid, signo)?;
        return Ok(false);
    }
    ptrace::singlestep(tid, signo)?;
    match ptrace::wait_tid(tid)? {
        WaitEvent::Signal {
            signo: libc::SIGTRAP,
            ..
        } => {}
        WaitEvent::Signal {
            signo: libc::SIGSEGV,
            ..
        } => {
            // The kernel could not write the frame (the handler's stack
            // unwritable) and forced a SIGSEGV, its handler reset to the
            // default, instead: no frame to fix. That signal, taken off
            // its queue by this stop, is sent again and the thread resumed,
            // so that it stops for it as a fault's signal, where the
            // recording has it (the recorder's step met it the same way).
            let tgid = thread_group(tid)?;
            ptrace::tgkill(tgid, tid, libc::SIGSEGV)?;
            ptrace::cont(tid, 0)?;
            return Ok(false);
        }
        ev => {
            return Err(io::Error::other(format!(
                "stepping into a signal handler: unexpected stop {ev:?}"
            )))
        }
    }
    let handler = ptrace::getregs(tid)?;
    fix_frame(tid, &handler, space, fix)?;
    ptrace::cont(tid, 0)?;
    Ok(true)
}

/// At a signal handler's first instruction (`handler`: the thread's
/// registers there, the kernel's frame just written above the stack
/// pointer), rewrites a stub address saved in the frame to the original
/// code's equivalent and makes the changes `fix` asks for.
pub fn fix_frame(tid: i32, handler: &Regs, space: Option<&Space>, fix: FrameFix) -> io::Result<()> {
    let mem = RemoteMem::new(tid);
    let uc = handler.rsp + UCONTEXT_AT_HANDLER;
    let sc = uc + MCONTEXT;
    if let Some(space) = space {
        // The saved ip is where the thread stopped, or, for a syscall the
        // kernel restarts after the handler, its `syscall` instruction.
        let slot = sc + SC_RIP;
        let saved = u64::from_le_bytes(read_struct(&mem, slot)?);
        let original = space
            .stub_at(saved)
            .map(|stub| stub.stub_to_original(saved));
        if let Some(StubIp::Original(orig)) = original {
            mem.write(slot, &orig.to_le_bytes())?;
        }
    }
    if fix.clear_trap {
        const _: () = assert!(SC_TRAPNO == SC_ERR + 8, "err and trapno are adjacent");
        mem.write(sc + SC_ERR, &[0; 16])?;
        mem.write(sc + SC_CR2, &[0; 8])?;
    }
    if let Some(mask) = fix.saved_mask {
        mem.write(sc + SC_OLDMASK, &mask.to_le_bytes())?;
        mem.write(uc + UC_SIGMASK, &mask.to_le_bytes())?;
    }
    Ok(())
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
    use std::mem::offset_of;

    #[test]
    fn only_a_fault_at_the_copy_routine_is_fixed_up() {
        use rrtest_abi::copy::{
            FAULT_IP, PROBE_FAILED_IP, PROBE_LOAD_IP, PROBE_STORE_IP, RESUME_IP,
        };
        let at = FAULT_IP;
        // SEGV_MAPERR, SEGV_ACCERR, BUS_ADRERR, and SI_KERNEL (a general
        // protection fault: a non-canonical address).
        for (signo, code) in [
            (libc::SIGSEGV, 1),
            (libc::SIGSEGV, 2),
            (libc::SIGBUS, 2),
            (libc::SIGSEGV, 0x80),
        ] {
            assert_eq!(
                copy_fault_resume(at, signo, code),
                Some(RESUME_IP),
                "{signo} {code}"
            );
        }
        // Sent by a process (SI_USER, SI_TKILL, SI_QUEUE): the program's.
        for code in [0, -6, -1] {
            assert_eq!(copy_fault_resume(at, libc::SIGSEGV, code), None);
        }
        assert_eq!(copy_fault_resume(at, libc::SIGILL, 2), None);
        assert_eq!(copy_fault_resume(at, libc::SIGTRAP, 1), None);
        // The probe's load and store.
        for ip in [PROBE_LOAD_IP, PROBE_STORE_IP] {
            assert_eq!(
                copy_fault_resume(ip, libc::SIGSEGV, 2),
                Some(PROBE_FAILED_IP)
            );
            assert_eq!(copy_fault_resume(ip, libc::SIGSEGV, 0), None);
        }
        for ip in [
            RESUME_IP,
            rrtest_abi::FIXED_PAGE_ADDR + rrtest_abi::entry::COPY,
            PROBE_FAILED_IP,
            0x40_1000,
        ] {
            assert_eq!(copy_fault_resume(ip, libc::SIGSEGV, 1), None, "{ip:#x}");
        }
    }

    /// The frame's offsets are the C library's `ucontext_t`'s (which
    /// mirrors the kernel's frame): its `uc_mcontext.gregs` and
    /// `uc_sigmask`, and the `REG_*` indexes of the fields changed.
    #[test]
    fn frame_offsets_are_the_c_librarys() {
        assert_eq!(offset_of!(libc::ucontext_t, uc_mcontext) as u64, MCONTEXT);
        assert_eq!(offset_of!(libc::mcontext_t, gregs), 0);
        assert_eq!(offset_of!(libc::ucontext_t, uc_sigmask) as u64, UC_SIGMASK);
        let reg = |r: libc::c_int| r as u64 * 8;
        assert_eq!(reg(libc::REG_RIP), SC_RIP);
        assert_eq!(reg(libc::REG_ERR), SC_ERR);
        assert_eq!(reg(libc::REG_TRAPNO), SC_TRAPNO);
        assert_eq!(reg(libc::REG_OLDMASK), SC_OLDMASK);
        assert_eq!(reg(libc::REG_CR2), SC_CR2);
    }

    #[test]
    fn only_sent_signals_clear_the_trap_fields() {
        let sent = [
            SignalKind::AtSyscallExit,
            SignalKind::BeforeSyscall { nr: 0 },
            SignalKind::Asynchronous { ip: 1 },
        ];
        for kind in sent {
            assert!(FrameFix::for_signal(&kind).clear_trap, "{kind:?}");
        }
        let fault = FrameFix::for_signal(&SignalKind::Synchronous { ip: 1 });
        assert!(fault.is_empty());
    }
}
