//! Trapped `rdtsc`/`rdtscp`: emulation with the synthesized TSC, recorded
//! as an event, and yielding to another thread at one.
//!
//! Must not: patch rdtsc sites (`patching`).

use tracing::debug;

use super::{ptrace_err, Error, Pending, Session};
use rrtest_sys::ptrace::{self, Regs};
use rrtest_sys::{cpu, RemoteMem};
use rrtest_trace::{Event, Tid};

/// `RF` in rflags: suppresses an instruction breakpoint for one instruction.
const RESUME_FLAG: u64 = 1 << 16;

impl Session {
    /// A thread the recorder asked to stop, so that another runs, bailed
    /// from a patched rdtsc site to its trap (a stub's bail path has an
    /// `rdtsc`, not a `syscall`): the emulated rdtsc is an event, a place
    /// replay reaches exactly, so the switch happens here, as at a syscall.
    /// Otherwise a thread spinning on rdtsc would only be preempted at an
    /// execution point, deep in a hot loop, which replay may take longer
    /// to find than it allows itself.
    pub(super) fn yield_at_rdtsc(
        &mut self,
        tid: Tid,
        regs: Regs,
        is_rdtscp: bool,
        len: u64,
    ) -> Result<(), Error> {
        self.emulate_rdtsc_here(tid, regs, is_rdtscp, len)?;
        // This stop cleared `force_bail` (`note_stop`): the request is served.
        let task = self.tasks.get_mut(&tid).expect("task exists");
        task.bailed = None;
        task.set_ready(Pending::Nothing);
        task.resumed_at = None;
        if self.current == Some(tid) {
            self.current = None;
        }
        debug!(tid, "yielded at an rdtsc trap");
        Ok(())
    }

    /// `tid` stopped at a `SIGSEGV`: when it is an `rdtsc`/`rdtscp` trap,
    /// emulates it and leaves the thread stopped after it (true).
    pub(super) fn emulate_trapped_rdtsc(&mut self, tid: Tid) -> Result<bool, Error> {
        let info = ptrace::getsiginfo(tid).map_err(ptrace_err("PTRACE_GETSIGINFO", tid))?;
        if ptrace::siginfo_code(&info) != 0x80 {
            return Ok(false);
        }
        let regs = ptrace::getregs(tid).map_err(ptrace_err("PTRACE_GETREGS", tid))?;
        let Some((is_rdtscp, len)) = crate::tracee::decode_rdtsc(&RemoteMem::new(tid), regs.rip)
        else {
            return Ok(false);
        };
        self.emulate_rdtsc_here(tid, regs, is_rdtscp, len)?;
        Ok(true)
    }

    /// Emulates the trapped rdtsc at `regs` and lets the thread go on.
    pub(super) fn emulate_rdtsc(
        &mut self,
        tid: Tid,
        regs: Regs,
        is_rdtscp: bool,
        len: u64,
    ) -> Result<(), Error> {
        self.emulate_rdtsc_here(tid, regs, is_rdtscp, len)?;
        ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))
    }

    /// Emulates the trapped rdtsc (rdtscp) of `len` bytes at `regs.rip` and
    /// records it; the thread stays stopped.
    pub(super) fn emulate_rdtsc_here(
        &mut self,
        tid: Tid,
        mut regs: Regs,
        is_rdtscp: bool,
        len: u64,
    ) -> Result<(), Error> {
        // The synthesized TSC (rrtest_abi::tsc), as patched sites read it;
        // rdtscp's aux is the recorder's own.
        let tsc = cpu::synthetic_tsc();
        let aux = if is_rdtscp { cpu::rdtsc(true).1 } else { None };
        let ip = regs.rip;
        regs.rax = tsc & 0xffff_ffff;
        regs.rdx = tsc >> 32;
        if let Some(aux) = aux {
            regs.rcx = u64::from(aux);
        }
        regs.rip += len;
        // The trap (a fault) set the resume flag for the faulting
        // instruction; the next one must see an execution breakpoint.
        regs.eflags &= !RESUME_FLAG;
        ptrace::setregs(tid, &regs).map_err(ptrace_err("PTRACE_SETREGS", tid))?;
        self.stats.rdtsc += 1;
        if let Some(t) = self.tasks.get_mut(&tid) {
            t.resumed_at = Some(regs);
        }
        self.emit(Event::Rdtsc { tid, ip, tsc, aux })
    }
}
