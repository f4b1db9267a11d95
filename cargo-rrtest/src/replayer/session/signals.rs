//! Signals and execution points in replay: each recorded signal is
//! delivered at the same place it was while recording (a syscall's exit, the
//! entry of the syscall it was held back to, or an execution point found by
//! breakpoint: [`Session::run_to_point`], with the in-program filter of
//! `point_filter.rs` for hot loops), and the temporary signal masks of
//! emulated `rt_sigsuspend`-like calls are swapped in as the kernel would.
//!
//! Mirrors the recorder's `session/signals.rs`. It must not deliver a signal
//! the recording does not have: signals the replay itself causes are
//! discarded in [`Session::resume_to_stop`].

use tracing::{debug, trace};

use super::{perr, point_filter, Session, State};
use crate::recorder::syscalls;
use crate::replayer::inject;
use crate::replayer::{Error, ReplayError};
use crate::sys::ptrace::{self, Regs, WaitEvent};
use crate::sys::RemoteMem;
use crate::trace::{ExecPoint, SignalEvent, SignalKind, Tid};

impl Session {
    pub(super) fn signal(&mut self, s: SignalEvent) -> Result<(), ReplayError> {
        if s.signo == libc::SIGKILL {
            // The recorder killed the program here (a timeout, an
            // interrupt): kill it at the same point.
            for t in self.tasks.values_mut() {
                let _ = ptrace::tgkill(t.real_pid, t.real, libc::SIGKILL);
                t.state = State::Exiting;
            }
            return Ok(());
        }
        let tid = s.tid;
        let task = self.task(tid)?;
        let (real, real_pid) = (task.real, task.real_pid);
        match s.kind {
            SignalKind::Synchronous { .. } => {}
            SignalKind::AtSyscallExit => {
                // The kernel restarts an interrupted syscall as it delivers.
                if let Some(t) = self.tasks.get_mut(&tid) {
                    t.restart_pending = None;
                }
                ptrace::tgkill(real_pid, real, s.signo).map_err(perr("tgkill", real))?;
            }
            SignalKind::AtPoint(point) => {
                self.run_to_point(tid, &point)?;
                ptrace::tgkill(real_pid, real, s.signo).map_err(perr("tgkill", real))?;
            }
            SignalKind::BeforeSyscall { nr } => {
                // Held back to the thread's next syscall: stop it there, skip
                // the syscall and back up to its instruction, then deliver.
                let (real, ev) = self.resume_to_stop(tid, None)?;
                let mut regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
                let at_entry = matches!(
                    ev,
                    WaitEvent::Event {
                        event: libc::PTRACE_EVENT_SECCOMP,
                        ..
                    }
                );
                if !at_entry || regs.orig_rax as i64 != nr {
                    let seen = self.describe_stop(real, &ev);
                    return Err(self.diverged(
                        tid,
                        format!("signal {} before {}", s.signo, syscalls::name(nr)),
                        format!("entry of {}", syscalls::name(nr)),
                        seen,
                    ));
                }
                regs.rip -= rrtest_abi::SYSCALL_INSN_LEN;
                regs.rax = regs.orig_rax;
                regs.orig_rax = u64::MAX;
                ptrace::setregs(real, &regs).map_err(perr("PTRACE_SETREGS", real))?;
                ptrace::tgkill(real_pid, real, s.signo).map_err(perr("tgkill", real))?;
            }
            SignalKind::Asynchronous { ip } => {
                return Err(Error::NotReplayable(vec![format!(
                    "signal {} delivered asynchronously at {ip:#x} (execution points are issue 4)",
                    s.signo
                )])
                .into())
            }
        }
        let (real, ev) = self.resume_to_stop(tid, Some(s.signo))?;
        match ev {
            WaitEvent::Signal { signo, .. } if signo == s.signo => {
                if let Ok(info) = <[u8; ptrace::SIGINFO_SIZE]>::try_from(s.siginfo.as_slice()) {
                    ptrace::setsiginfo(real, &info).map_err(perr("PTRACE_SETSIGINFO", real))?;
                }
                self.set_state(tid, State::Idle { deliver: s.signo });
                Ok(())
            }
            ev => {
                let seen = self.describe_stop(real, &ev);
                Err(self.diverged(tid, "signal", format!("signal {}", s.signo), seen))
            }
        }
    }

    /// An emulated `rt_sigsuspend` (or `ppoll`, `pselect6`, `epoll_pwait`
    /// with a mask) did not swap in its temporary signal mask,
    /// but the signal that ended it while recording was delivered under that
    /// mask (and may be blocked under the thread's own). Swap it in now, at
    /// the syscall's exit stop, and put the thread's own mask back when the
    /// handler returns, as the kernel does.
    pub(super) fn sigsuspend_mask(
        &mut self,
        tid: Tid,
        real: i32,
        mask_ptr: u64,
    ) -> Result<(), ReplayError> {
        let mut raw = [0u8; 8];
        RemoteMem::new(real)
            .read_exact(mask_ptr, &mut raw)
            .map_err(perr("reading sigsuspend's mask", real))?;
        let old =
            crate::tracee::blocked_signals(real).map_err(perr("reading the signal mask", real))?;
        set_signal_mask(real, u64::from_le_bytes(raw))
            .map_err(perr("setting sigsuspend's mask", real))?;
        if let Some(t) = self.tasks.get_mut(&tid) {
            t.mask_after_handler = Some(old);
        }
        Ok(())
    }

    /// Runs `tid` to the first time since its last event that it is about
    /// to execute `point.ip` with `point`'s registers: an execution
    /// breakpoint at the ip, and a comparison at each hit.
    pub(super) fn run_to_point(&mut self, tid: Tid, point: &ExecPoint) -> Result<(), ReplayError> {
        /// How long replay searches before it gives up: a point deep in a
        /// hot loop costs a stop per turn, and the recording is then not
        /// replayable in practice; verification says so.
        const SEARCH_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);
        let started = std::time::Instant::now();
        let real = self.task(tid)?.real;
        let known = self.known_hits.get(&self.index).copied();
        if let Some(known) = known.filter(|&k| k < point_filter::FILTER_AFTER) {
            match crate::sys::perf::BreakpointCounter::arm(real, point.ip, known + 1) {
                Ok(counter) => return self.run_to_counted_point(tid, point, known, counter),
                // perf_event_open refused (a container's seccomp policy,
                // perf_event_paranoid): search instead, one stop per pass.
                Err(e) => debug!(tid, error = %e, "no counted breakpoint: searching"),
            }
        }
        ptrace::exec_breakpoint(real, Some(point.ip))
            .map_err(perr("setting a breakpoint", real))?;
        let mut hits = 0u64;
        loop {
            let (real, ev) = self.resume_to_stop(tid, Some(libc::SIGTRAP))?;
            let regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
            if !trapped_at(&ev, &regs, point.ip) {
                let _ = ptrace::exec_breakpoint(real, None);
                let seen = self.describe_stop(real, &ev);
                return Err(self.diverged(
                    tid,
                    "execution point",
                    format!("reaching ip {:#x}", point.ip),
                    seen,
                ));
            }
            if crate::tracee::point_regs(&regs) == point.regs
                && crate::tracee::exec_point(real, &regs)
                    .map_err(perr("reading an execution point", real))?
                    == *point
            {
                ptrace::exec_breakpoint(real, None).map_err(perr("clearing a breakpoint", real))?;
                self.set_state(tid, State::Idle { deliver: 0 });
                trace!(tid, hits, "reached the execution point");
                self.point_hits.push([self.index, hits]);
                return Ok(());
            }
            hits += 1;
            // Many passes: a hot loop. Search on inside the program, then
            // check a count known from the verification.
            if hits == point_filter::FILTER_AFTER
                && self.filtered_search(tid, point, hits, started + SEARCH_LIMIT)?
            {
                return self.check_known_hits(tid, point, known);
            }
            if hits.is_multiple_of(1024) && started.elapsed() >= SEARCH_LIMIT {
                let _ = ptrace::exec_breakpoint(real, None);
                return Err(self.diverged(
                    tid,
                    "execution point",
                    format!("registers {:x?} at ip {:#x}", point.regs, point.ip),
                    format!(
                        "{hits} passes through ip in {} s without them (a point inside a hot loop: too costly to find)",
                        SEARCH_LIMIT.as_secs()
                    ),
                ));
            }
            // Go on past the instruction: the resume flag suppresses the
            // breakpoint for exactly one instruction, so no single-step
            // stop is needed.
            let mut regs = regs;
            regs.eflags |= RESUME_FLAG;
            ptrace::setregs(real, &regs).map_err(perr("PTRACE_SETREGS", real))?;
            self.set_state(tid, State::Idle { deliver: 0 });
        }
    }

    /// [`Session::run_to_point`] with the hit count a verification found:
    /// `counter`, armed by the caller, stops the thread at the `hits + 1`th
    /// execution of the ip, where the state must match (one stop instead of
    /// one per hit).
    pub(super) fn run_to_counted_point(
        &mut self,
        tid: Tid,
        point: &ExecPoint,
        hits: u64,
        counter: crate::sys::perf::BreakpointCounter,
    ) -> Result<(), ReplayError> {
        let (real, ev) = self.resume_to_stop(tid, Some(crate::sys::perf::OVERFLOW_SIGNAL))?;
        drop(counter);
        let regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
        let stopped = matches!(ev, WaitEvent::Signal { signo, .. } if signo == crate::sys::perf::OVERFLOW_SIGNAL);
        let matches = stopped
            && regs.rip == point.ip
            && crate::tracee::point_regs(&regs) == point.regs
            && crate::tracee::exec_point(real, &regs)
                .map_err(perr("reading an execution point", real))?
                == *point;
        if !matches {
            let seen = if stopped {
                format!(
                    "ip {:#x} after {} hits with other state",
                    regs.rip,
                    hits + 1
                )
            } else {
                self.describe_stop(real, &ev)
            };
            return Err(self.diverged(
                tid,
                "execution point",
                format!("reaching ip {:#x}", point.ip),
                seen,
            ));
        }
        // The overflow signal is not delivered: the thread just stops here.
        self.set_state(tid, State::Idle { deliver: 0 });
        self.point_hits.push([self.index, hits]);
        Ok(())
    }
}

/// Signals raised by the instruction a thread executes: they recur by
/// themselves in replay and must match the recording.
pub(super) fn is_synchronous(signo: i32) -> bool {
    matches!(
        signo,
        libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGTRAP | libc::SIGSYS
    )
}

/// Where a syscall that waits under a temporary signal mask (its own
/// argument) has it: `rt_sigsuspend`, `ppoll`, `pselect6`, `epoll_pwait`,
/// `epoll_pwait2`. None when the call has no mask.
pub(super) fn temporary_mask(tid: i32, nr: i64, args: &[u64; 6]) -> Option<u64> {
    let ptr = match nr {
        libc::SYS_rt_sigsuspend => args[0],
        libc::SYS_ppoll => args[3],
        libc::SYS_epoll_pwait | libc::SYS_epoll_pwait2 => args[4],
        // A pointer to { const sigset_t *ss; size_t ss_len; }.
        libc::SYS_pselect6 if args[5] != 0 => {
            let mut raw = [0u8; 8];
            RemoteMem::new(tid).read_exact(args[5], &mut raw).ok()?;
            u64::from_le_bytes(raw)
        }
        _ => 0,
    };
    (ptr != 0).then_some(ptr)
}

/// Whether a stop is a `SIGTRAP` with the thread at `ip` (a breakpoint or a
/// trap instruction there).
pub(super) fn trapped_at(ev: &WaitEvent, regs: &Regs, ip: u64) -> bool {
    matches!(
        ev,
        WaitEvent::Signal {
            signo: libc::SIGTRAP,
            ..
        }
    ) && regs.rip == ip
}

/// EFLAGS.RF: the next instruction does not raise an instruction breakpoint.
pub(super) const RESUME_FLAG: u64 = 1 << 16;

/// Sets stopped thread `tid`'s signal mask with an injected rt_sigprocmask
/// (the thread must be at a stop other than a syscall entry).
pub(super) fn set_signal_mask(tid: i32, mask: u64) -> std::io::Result<()> {
    let scratch = rrtest_abi::FIXED_PAGE_ADDR + inject::SCRATCH_OFFSET;
    RemoteMem::new(tid).write(scratch, &mask.to_le_bytes())?;
    let ret = crate::tracee::inject_via_fixed_page(
        tid,
        libc::SYS_rt_sigprocmask,
        [libc::SIG_SETMASK as u64, scratch, 0, 8, 0, 0],
    )?;
    if ret < 0 {
        return Err(std::io::Error::from_raw_os_error(-ret as i32));
    }
    Ok(())
}
