//! Signals: classifying a signal at its delivery stop, holding
//! asynchronous signals back and delivering them at a syscall or an
//! execution point (DESIGN.md §6), and writing signal events.
//!
//! Must not: choose where an interruption lands (`points`) or when a
//! thread is stopped for a held-back signal (`schedule`'s tick).

use std::io;
use std::time::{Duration, Instant};

use tracing::{debug, trace};

use super::{ptrace_err, Error, Session, State};
use crate::tracee::syscallbuf::{self, FrameFix};
use rrtest_sys::ptrace::{self, Regs, WaitEvent};
use rrtest_sys::RemoteMem;
use rrtest_trace::{Event, SignalEvent, SignalKind, Tid};

/// How long a held-back asynchronous signal may wait for the thread's next
/// syscall before the recorder delivers it at an execution point.
pub(super) const SIGNAL_DELAY: Duration = Duration::from_millis(5);

/// Whether a signal with siginfo code `code` is the kernel's for a fault
/// of the instruction the thread is at (synchronous): sent by the kernel
/// (`code` > 0), of a fault's kind. SIGSYS: a seccomp filter's
/// `SECCOMP_RET_TRAP` (`SYS_SECCOMP`).
pub(super) fn is_fault(signo: i32, code: i32) -> bool {
    code > 0
        && matches!(
            signo,
            libc::SIGSEGV
                | libc::SIGBUS
                | libc::SIGILL
                | libc::SIGFPE
                | libc::SIGTRAP
                | libc::SIGSYS
        )
}

impl Session {
    /// A signal-delivery stop: a fault of the hook's copy, a desched
    /// event's signal, a breakpoint of an execution-point search, a trapped
    /// rdtsc, or a real signal, which
    /// is classified (DESIGN.md §6) and delivered or held back.
    pub(super) fn signal(&mut self, tid: Tid, signo: i32) -> Result<(), Error> {
        let regs = ptrace::getregs(tid).map_err(ptrace_err("PTRACE_GETREGS", tid))?;
        let mut info = ptrace::getsiginfo(tid).map_err(ptrace_err("PTRACE_GETSIGINFO", tid))?;
        // The hook's copy met a bad pointer of the program's: not a
        // signal of the program's; it recurs in replay at the same point,
        // so nothing is recorded.
        if syscallbuf::copy_fault_fixup(tid, &regs, signo, &info)
            .map_err(ptrace_err("fixing up a fault of the hook's copy", tid))?
        {
            debug!(tid, signo, "a fault in the hook's copy: fixed up");
            // It ran since any syscall exit it resumed from: a signal at
            // its next stop is not one at that exit.
            if let Some(task) = self.tasks.get_mut(&tid) {
                task.resumed_at = None;
            }
            return self.go_on(tid);
        }
        if self.is_desched_signal(tid, signo, &info) {
            return self.desched_signal(tid, &regs);
        }
        if let Some(chld) = self.sigchld_info(tid, signo, &info) {
            // A tracer's SIGCHLD for its tracee's emulated stop: with the
            // siginfo the kernel would give it.
            ptrace::setsiginfo(tid, &chld).map_err(ptrace_err("PTRACE_SETSIGINFO", tid))?;
            info = chld;
        }
        if let Some(task) = self.tasks.get_mut(&tid) {
            if task.redeliver.is_some_and(|(s, _)| s == signo) {
                // A signal that interrupted a buffered syscall, sent again
                // into the traced call (see `syscall_entry`): it comes with
                // the siginfo it first had.
                let (_, original) = task.redeliver.take().expect("checked");
                ptrace::setsiginfo(tid, &original).map_err(ptrace_err("PTRACE_SETSIGINFO", tid))?;
                info = original;
            }
        }
        let mut code = ptrace::siginfo_code(&info);
        let program_trap = if signo == libc::SIGTRAP {
            // One of the program's own hardware breakpoints (a tracee's,
            // ptrace emulated): its tracer's, before any of the recorder's.
            self.program_hw_trap(tid, &regs, code)?
        } else {
            None
        };
        if let Some(trap) = program_trap {
            info = trap;
            code = ptrace::siginfo_code(&info);
        } else if signo == libc::SIGTRAP {
            if let Some(seek) = self.tasks.get(&tid).and_then(|t| t.seeking) {
                if regs.rip == seek.target {
                    return self.seek_hit(tid, &regs, seek);
                }
            }
            if code == ptrace::TRAP_HWBKPT {
                // A debug-register breakpoint's trap with no search there
                // (a search that just ended, its hit already pending): the
                // recorder's (none of the program's slots fired), so never
                // delivered.
                trace!(tid, ip = regs.rip, "a stray breakpoint trap: ignored");
                return self.go_on(tid);
            }
        }
        let mem = RemoteMem::new(tid);
        if signo == libc::SIGSEGV && code == 0x80 {
            if let Some((is_rdtscp, len)) = crate::tracee::decode_rdtsc(&mem, regs.rip) {
                if self.steps_for_tracer(tid) {
                    // The instruction its tracer asked to step: emulated,
                    // the step ends after it.
                    self.emulate_rdtsc_here(tid, regs, is_rdtscp, len)?;
                    return self.end_step_emulated(tid, regs.rip + len);
                }
                let bailed = self.tasks.get(&tid).is_some_and(|t| t.bailed.is_some());
                if bailed && self.others_ready(tid) {
                    return self.yield_at_rdtsc(tid, regs, is_rdtscp, len);
                }
                self.keep_bail_request(tid)?;
                if !is_rdtscp && !self.has_tracer(tid) && self.try_patch_rdtsc(tid, &regs)? {
                    return Ok(());
                }
                return self.emulate_rdtsc(tid, regs, is_rdtscp, len);
            }
        }
        // A trap of a debug register a tracer left armed in a thread it no
        // longer traces (ptrace emulated): the program's own SIGTRAP, which
        // replay (never setting the program's debug registers) delivers at
        // this execution point.
        let kept_slot_point = match program_trap {
            Some(_) if !self.is_emulated_tracee(tid) => Some(
                crate::tracee::exec_point(tid, &regs)
                    .map_err(ptrace_err("reading an execution point", tid))?,
            ),
            _ => None,
        };
        let Some(task) = self.tasks.get_mut(&tid) else {
            return Ok(());
        };
        let kind = if let Some(point) = kept_slot_point {
            SignalKind::AtPoint(point)
        } else if task
            .resumed_at
            .as_ref()
            .map(|r| regs_eq(r, &regs))
            .unwrap_or(false)
        {
            SignalKind::AtSyscallExit
        } else if is_fault(signo, code) {
            SignalKind::Synchronous { ip: regs.rip }
        } else {
            SignalKind::Asynchronous { ip: regs.rip }
        };
        task.resumed_at = None;
        let pid = task.pid;
        if let SignalKind::Asynchronous { .. } = kind {
            // It interrupted a blocked buffered syscall? Holding it back
            // would let the kernel restart that call, which may then wait
            // for ever for what the handler was to do. Unwind the call now
            // (the stub issues it again, traced) and send the signal again
            // at that call's entry (`syscall_entry`), so that it interrupts
            // it as it did this one: `EINTR`, or a restart under
            // `SA_RESTART`, as the kernel decides.
            let unwound = if self.spaces.contains_key(&pid) {
                self.unwind_interrupted(tid, &regs)?
            } else {
                None
            };
            if let Some(nr) = unwound {
                trace!(tid, signo, nr, "a signal interrupted a buffered syscall");
                self.hold_back(tid, signo, info);
                if let Some(task) = self.tasks.get_mut(&tid) {
                    task.signal_in_syscall = Some(signo);
                }
                return ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid));
            }
            // Hold it back: deliver it at the thread's next syscall, or at an
            // execution point if none comes soon (DESIGN.md §6).
            self.hold_back(tid, signo, info);
            return self.go_on(tid);
        }
        if kind == SignalKind::AtSyscallExit && self.signal_stop(tid, signo, &info, kind) {
            // A tracee's signal: its tracer sees it (ptrace emulated).
            return Ok(());
        }
        if matches!(kind, SignalKind::Synchronous { .. })
            && signo != libc::SIGKILL
            && self.is_emulated_tracee(tid)
        {
            // A tracee's fault: it stops before the faulting instruction
            // for its tracer (ptrace emulated), a point replay runs it to
            // (the fault does not change the registers); a signal its
            // tracer resumes it with is delivered there.
            self.end_step(tid, signo)?;
            let point = crate::tracee::exec_point(tid, &regs)
                .map_err(ptrace_err("reading an execution point", tid))?;
            self.emit(Event::Preempt { tid, point })?;
            self.signal_stop(tid, signo, &info, SignalKind::AtSyscallExit);
            return Ok(());
        }
        self.emit_signal(tid, signo, &info, kind)?;
        self.deliver_here(tid, &regs, signo, FrameFix::for_signal(&kind))
    }

    /// Resumes `tid`, stopped with `regs` at the delivery stop of `signo`,
    /// delivering it. A signal with a handler is stepped into (the kernel
    /// builds its frame and stops at the handler's first instruction),
    /// where its frame is fixed up as [`syscallbuf::fix_frame`] says and
    /// the registers are kept as `resumed_at`: when the same return to
    /// user space makes another signal deliverable (several unblocked
    /// together), the kernel stops for it right there, before the handler
    /// runs, and that signal is delivered there too, as at a syscall's
    /// exit, its frame on top of this one (so the handler of the signal
    /// delivered last starts first, as natively). A fault's signal is
    /// stepped into too (it was continued before 2026-12-06). Replay
    /// resumes its thread with the signal (stepping into the handler where
    /// the frame needs a fix) and makes the next delivery there.
    fn deliver_here(
        &mut self,
        tid: Tid,
        regs: &Regs,
        signo: i32,
        fix: FrameFix,
    ) -> Result<(), Error> {
        if signo == 0 || !syscallbuf::catches(tid, signo) {
            return syscallbuf::deliver_signal(tid, regs, signo, None, fix)
                .map(drop)
                .map_err(ptrace_err("delivering a signal", tid));
        }
        ptrace::singlestep(tid, signo).map_err(ptrace_err("PTRACE_SINGLESTEP", tid))?;
        match ptrace::wait_tid(tid).map_err(ptrace_err("waitpid", tid))? {
            WaitEvent::Signal {
                signo: libc::SIGTRAP,
                ..
            } => {}
            // No frame was built (the kernel could not write it, and
            // forces a SIGSEGV: its delivery stop), or the thread died:
            // the stop is handled as any other.
            ev => return self.handle(ev),
        }
        let handler = ptrace::getregs(tid).map_err(ptrace_err("PTRACE_GETREGS", tid))?;
        let pid = self.tasks.get(&tid).map(|t| t.pid);
        let space = pid.and_then(|pid| self.spaces.get(&pid));
        syscallbuf::fix_frame(tid, &handler, space, fix)
            .map_err(ptrace_err("fixing a signal frame", tid))?;
        if let Some(task) = self.tasks.get_mut(&tid) {
            task.resumed_at = Some(handler);
        }
        ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))
    }

    /// Holds back an asynchronous signal (suppressed at its delivery stop).
    pub(super) fn hold_back(&mut self, tid: Tid, signo: i32, info: [u8; ptrace::SIGINFO_SIZE]) {
        let Some(task) = self.tasks.get_mut(&tid) else {
            return;
        };
        // Standard signals do not queue: a second one merges with the first.
        if signo >= libc::SIGRTMIN() || !task.pending_signals.iter().any(|&(s, _)| s == signo) {
            task.pending_signals.push((signo, info));
        }
        task.pending_since.get_or_insert_with(Instant::now);
        trace!(tid, signo, "holding back an asynchronous signal");
        // Ask the hook to bail: the thread stops at its next syscall, where
        // the signal is delivered.
        if self.spaces.contains_key(&task.pid)
            && task.bail_requested.is_none()
            && syscallbuf::set_force_bail(tid, true).is_ok()
        {
            task.bail_requested = Some(Instant::now());
            self.stats.schedule.bail_requests += 1;
        }
    }

    /// Takes held-back signal `signo` (the first of them) if the thread
    /// does not block it now.
    pub(super) fn take_pending(
        &mut self,
        tid: Tid,
        signo: i32,
    ) -> Option<(i32, [u8; ptrace::SIGINFO_SIZE])> {
        self.take_first_unblocked(tid, |s| s == signo)
    }

    /// Takes the first held-back signal the thread does not block now.
    pub(super) fn take_deliverable(
        &mut self,
        tid: Tid,
    ) -> Option<(i32, [u8; ptrace::SIGINFO_SIZE])> {
        self.take_first_unblocked(tid, |_| true)
    }

    /// Takes the first held-back signal `wanted` accepts that the thread
    /// does not block now.
    fn take_first_unblocked(
        &mut self,
        tid: Tid,
        wanted: impl Fn(i32) -> bool,
    ) -> Option<(i32, [u8; ptrace::SIGINFO_SIZE])> {
        let task = self.tasks.get_mut(&tid)?;
        if !task.pending_signals.iter().any(|&(signo, _)| wanted(signo)) {
            return None;
        }
        // Unknown: treat everything as blocked, so that nothing is delivered
        // against the program's will.
        let blocked = crate::tracee::blocked_signals(tid).unwrap_or(u64::MAX);
        let i = task
            .pending_signals
            .iter()
            .position(|&(signo, _)| wanted(signo) && blocked & (1u64 << (signo - 1)) == 0)?;
        let taken = task.pending_signals.remove(i);
        if task.pending_signals.is_empty() {
            task.pending_since = None;
        } else {
            task.pending_since = Some(Instant::now());
        }
        Some(taken)
    }

    /// Delivers a held-back signal to `tid`, stopped where no user code
    /// will run before the delivery: queue it, resume, and at its delivery
    /// stop restore the original siginfo and record the event.
    pub(super) fn deliver_now(
        &mut self,
        tid: Tid,
        signo: i32,
        info: [u8; ptrace::SIGINFO_SIZE],
        kind: SignalKind,
    ) -> Result<(), Error> {
        if matches!(
            kind,
            SignalKind::BeforeSyscall { .. } | SignalKind::AtSyscallExit
        ) && self.signal_stop(tid, signo, &info, kind)
        {
            // A tracee's signal: its tracer sees it (ptrace emulated); the
            // thread stays where it is, ready to deliver it if resumed
            // with it.
            return Ok(());
        }
        self.deliver_signal_now(tid, signo, info, kind)
    }

    /// [`Session::deliver_now`], to a tracee too.
    pub(super) fn deliver_signal_now(
        &mut self,
        tid: Tid,
        signo: i32,
        info: [u8; ptrace::SIGINFO_SIZE],
        kind: SignalKind,
    ) -> Result<(), Error> {
        let pid = self.tasks[&tid].pid;
        ptrace::tgkill(pid, tid, signo).map_err(ptrace_err("tgkill", tid))?;
        loop {
            ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))?;
            match ptrace::wait_tid(tid).map_err(ptrace_err("waitpid", tid))? {
                WaitEvent::Signal { signo: got, .. } if got == signo => break,
                // A desched signal still pending from the armed syscall
                // the thread left: dropped.
                WaitEvent::Signal { signo: got, .. }
                    if ptrace::getsiginfo(tid)
                        .is_ok_and(|info| self.is_desched_signal(tid, got, &info)) => {}
                ev if self.took_late_interrupt(tid, &ev) => {}
                ev => {
                    return Err(Error::Ptrace {
                        op: "delivering a held-back signal",
                        tid,
                        source: io::Error::other(format!("unexpected stop {ev:?}")),
                    })
                }
            }
        }
        ptrace::setsiginfo(tid, &info).map_err(ptrace_err("PTRACE_SETSIGINFO", tid))?;
        self.emit_signal(tid, signo, &info, kind)?;
        let task = self.tasks.get_mut(&tid).expect("task exists");
        task.state = State::Running;
        task.resumed_at = None;
        self.current = Some(tid);
        self.sched.restart_slice();
        let regs = ptrace::getregs(tid).map_err(ptrace_err("PTRACE_GETREGS", tid))?;
        self.deliver_here(tid, &regs, signo, FrameFix::for_signal(&kind))
    }

    /// Records the delivery of `signo` to `tid` (counted in the stats).
    fn emit_signal(
        &mut self,
        tid: Tid,
        signo: i32,
        info: &[u8; ptrace::SIGINFO_SIZE],
        kind: SignalKind,
    ) -> Result<(), Error> {
        self.stats.signals += 1;
        self.emit(Event::Signal(SignalEvent {
            tid,
            signo,
            siginfo: info.to_vec(),
            kind,
        }))
    }

    /// Whether `ev`, a stop of `tid` met while the recorder drives it
    /// somewhere (delivering a held-back signal, stepping over a
    /// breakpoint), is the stop of a `PTRACE_INTERRUPT` a tick sent before
    /// the thread stopped for another reason: then it is done with.
    pub(super) fn took_late_interrupt(&mut self, tid: Tid, ev: &WaitEvent) -> bool {
        let late = matches!(
            ev,
            WaitEvent::Event {
                event: libc::PTRACE_EVENT_STOP,
                ..
            }
        );
        if late {
            if let Some(task) = self.tasks.get_mut(&tid) {
                task.interrupt_requested = false;
            }
        }
        late
    }
}

fn regs_eq(a: &Regs, b: &Regs) -> bool {
    a.rip == b.rip
        && a.rsp == b.rsp
        && a.rax == b.rax
        && a.rbx == b.rbx
        && a.rcx == b.rcx
        && a.rdx == b.rdx
        && a.rsi == b.rsi
        && a.rdi == b.rdi
        && a.rbp == b.rbp
        && a.r8 == b.r8
        && a.r9 == b.r9
        && a.r10 == b.r10
        && a.r11 == b.r11
        && a.r12 == b.r12
        && a.r13 == b.r13
        && a.r14 == b.r14
        && a.r15 == b.r15
        && a.eflags == b.eflags
}
