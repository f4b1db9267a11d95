//! A signal handler never sees a stub address in its frame: a signal
//! delivered to a thread in a stub gets the frame's saved ip rewritten to
//! the equivalent original address ([`deliver_signal`]); `rt_sigreturn`
//! maps an original address that lies inside a patched region back to the
//! stub ([`fix_sigreturn`]).
//!
//! It must not decide whether or when a signal is delivered: the
//! recorder's and the replayer's sessions do.

use std::io;

use rrtest_sys::ptrace::{self, Regs, WaitEvent};
use rrtest_sys::RemoteMem;
use rrtest_syscalls::patch::StubIp;

use super::{read_struct, Space};

/// Offset of the saved `rip` in a signal frame, from the stack pointer at
/// `rt_sigreturn`'s entry (which points at the `ucontext`): `uc_mcontext`
/// is at 40, and `rip` is the 17th word of the `sigcontext`.
const FRAME_RIP_AT_SIGRETURN: u64 = 40 + 16 * 8;

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
