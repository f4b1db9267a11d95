//! Syscall-site and rdtsc-site patches in replay: the patch is planned
//! again from the replayed code, checked to be the recorded one, and
//! applied at the same event.
//!
//! Mirrors the recorder's `session/patching.rs`. It must not choose a patch
//! of its own: a plan other than the recorded one is a divergence.

use super::{perr, Session, State};
use crate::replayer::{Error, ReplayError};
use crate::tracee::syscallbuf;
use rrtest_sys::ptrace::{self, Regs, WaitEvent};
use rrtest_sys::RemoteMem;
use rrtest_syscalls as syscalls;
use rrtest_trace::PatchEvent;

impl Session {
    /// Runs the thread of patch `e` to the entry of the syscall whose site
    /// the recorder patched there; returns its real tid and registers.
    pub(super) fn run_to_patched_syscall(
        &mut self,
        e: &PatchEvent,
    ) -> Result<(i32, Regs), ReplayError> {
        let (real, ev) = self.resume_to_stop(e.tid, None)?;
        let regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
        let at_entry = matches!(
            ev,
            WaitEvent::Event {
                event: libc::PTRACE_EVENT_SECCOMP,
                ..
            }
        ) && regs.orig_rax as i64 == e.nr;
        if !at_entry {
            let seen = self.describe_stop(real, &ev);
            return Err(self.diverged(
                e.tid,
                format!("patch at {}", syscalls::name(e.nr)),
                format!("entry of {}", syscalls::name(e.nr)),
                seen,
            ));
        }
        Ok((real, regs))
    }

    /// Runs the thread of rdtsc-site patch `e` to the trap (`SIGSEGV`) of
    /// the `rdtsc` the recorder patched there; returns its real tid and
    /// registers.
    pub(super) fn run_to_patched_rdtsc(
        &mut self,
        e: &PatchEvent,
    ) -> Result<(i32, Regs), ReplayError> {
        let (real, ev) = self.resume_to_stop(e.tid, Some(libc::SIGSEGV))?;
        let regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
        let trapped = matches!(
            ev,
            WaitEvent::Signal {
                signo: libc::SIGSEGV,
                ..
            }
        ) && crate::tracee::decode_rdtsc(&RemoteMem::new(real), regs.rip)
            == Some((false, 2));
        if !trapped {
            let seen = self.describe_stop(real, &ev);
            return Err(self.diverged(e.tid, "rdtsc-site patch", "an rdtsc's trap", seen));
        }
        Ok((real, regs))
    }

    /// A syscall (or rdtsc) site the recorder patched: plan the same patch
    /// from the replayed code, check it is the recorded one, and apply it.
    /// The thread is at the site's syscall entry (or rdtsc trap), or, for a
    /// patch made `ahead`, still at the buffer's handshake.
    pub(super) fn patch(&mut self, e: PatchEvent) -> Result<(), ReplayError> {
        let (real, at_site) = match e.ahead {
            Some(_) => (self.task(e.tid)?.real, None),
            None if e.rdtsc => {
                let (real, regs) = self.run_to_patched_rdtsc(&e)?;
                (real, Some(regs))
            }
            None => {
                let (real, regs) = self.run_to_patched_syscall(&e)?;
                (real, Some(regs))
            }
        };
        let real_pid = self.task(e.tid)?.real_pid;
        let Some(space) = self.spaces.get(&real_pid) else {
            return Err(Error::Malformed {
                index: self.index,
                reason: format!("a patch in thread {} without a syscall buffer", e.tid),
            }
            .into());
        };
        let stub = match syscallbuf::replan(real, space, &e) {
            Ok(stub) => stub,
            Err(why) => {
                return Err(self.diverged(
                    e.tid,
                    "syscall-site patch",
                    format!("the recorded patch of {:#x}", e.site),
                    why,
                ))
            }
        };
        let applied = match &at_site {
            Some(regs) if e.rdtsc => syscallbuf::apply_rdtsc(real, regs, &e),
            Some(regs) => syscallbuf::apply_patch(real, regs, &e).map(drop),
            None => syscallbuf::apply_ahead(real, &e),
        };
        applied.map_err(perr("patching a syscall site", real))?;
        if let Some(space) = self.spaces.get_mut(&real_pid) {
            syscallbuf::note_patch(space, &e, stub);
        }
        self.set_state(e.tid, State::Idle { deliver: 0 });
        Ok(())
    }
}
