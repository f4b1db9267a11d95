//! `rdtsc`/`rdtscp` in replay: the instruction traps (as while recording)
//! and the recorded counter value is written into the registers.
//!
//! Mirrors the recorder's `session/rdtsc.rs`. It must not read the real
//! counter: the value is the recording's.

use super::{perr, Session, RESUME_FLAG};
use crate::replayer::ReplayError;
use rrtest_sys::ptrace::{self, WaitEvent};
use rrtest_sys::RemoteMem;
use rrtest_trace::Tid;

impl Session {
    pub(super) fn rdtsc(
        &mut self,
        tid: Tid,
        ip: u64,
        tsc: u64,
        aux: Option<u32>,
    ) -> Result<(), ReplayError> {
        let (real, ev) = self.resume_to_stop(tid, Some(libc::SIGSEGV))?;
        let mut regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
        let decoded = crate::tracee::decode_rdtsc(&RemoteMem::new(real), regs.rip);
        match (ev, decoded) {
            (
                WaitEvent::Signal {
                    signo: libc::SIGSEGV,
                    ..
                },
                Some((is_rdtscp, len)),
            ) if regs.rip == ip && is_rdtscp == aux.is_some() => {
                regs.rax = tsc & 0xffff_ffff;
                regs.rdx = tsc >> 32;
                if let Some(aux) = aux {
                    regs.rcx = u64::from(aux);
                }
                regs.rip += len;
                // As the recorder does: the fault's resume flag must not
                // hide an execution point at the next instruction.
                regs.eflags &= !RESUME_FLAG;
                ptrace::setregs(real, &regs).map_err(perr("PTRACE_SETREGS", real))?;
                Ok(())
            }
            (ev, _) => {
                let seen = self.describe_stop(real, &ev);
                Err(self.diverged(tid, "rdtsc", format!("rdtsc at ip {ip:#x}"), seen))
            }
        }
    }
}
