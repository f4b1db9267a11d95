//! Signals in replay: each recorded signal is delivered at the same place
//! it was while recording (a syscall's exit, the entry of the syscall it was
//! held back to, or an execution point: [`Session::run_to_point`] in
//! `points.rs`), and the temporary signal masks of emulated
//! `rt_sigsuspend`-like calls are swapped in as the kernel would.
//!
//! Mirrors the recorder's `session/signals.rs`. It must not deliver a signal
//! the recording does not have: signals the replay itself causes are
//! discarded in [`Session::resume_to_stop`].

use super::{perr, Session, State};
use crate::replayer::inject;
use crate::replayer::{Error, ReplayError};
use crate::tracee::syscallbuf::FrameFix;
use rrtest_sys::ptrace::{self, WaitEvent};
use rrtest_sys::RemoteMem;
use rrtest_syscalls as syscalls;
use rrtest_trace::{ExitStatus, SignalEvent, SignalKind, Tid};

impl Session {
    pub(super) fn signal(&mut self, s: SignalEvent) -> Result<(), ReplayError> {
        if s.signo == libc::SIGKILL {
            // The recorder killed the program here (a timeout, an
            // interrupt): kill it at the same point.
            for t in self.tasks.values_mut() {
                let _ = ptrace::tgkill(t.real_pid, t.real, libc::SIGKILL);
                t.state = State::Exiting { killed: true };
            }
            return Ok(());
        }
        let tid = s.tid;
        let task = self.task(tid)?;
        let (real, real_pid) = (task.real, task.real_pid);
        match s.kind {
            SignalKind::Synchronous { .. } => {}
            SignalKind::AtSyscallExit => {
                // Also the next of several signals one return to user space
                // delivers (the recorder's `deliver_here`): the thread is
                // then at the previous signal's delivery stop, and resuming
                // it with that signal (stepped into its handler to fix its
                // frame, or continued) builds that frame and stops for this
                // one, sent now, at the handler's first instruction, before
                // the handler runs, as the recording's kernel did.
                // The kernel restarts an interrupted syscall as it delivers.
                if let Some(t) = self.tasks.get_mut(&tid) {
                    t.restart_pending = None;
                }
                self.send(real_pid, real, s.signo)?;
            }
            SignalKind::AtPoint(point) => {
                self.run_to_point(tid, &point)?;
                self.send(real_pid, real, s.signo)?;
            }
            SignalKind::BeforeSyscall { nr } => {
                // Held back to the thread's next syscall: stop it there, skip
                // the syscall and back up to its instruction, then deliver.
                let (real, ev) = self.resume_to_stop(tid, None)?;
                let at_entry = matches!(
                    ev,
                    WaitEvent::Event {
                        event: libc::PTRACE_EVENT_SECCOMP,
                        ..
                    }
                );
                if at_entry {
                    // What its tracer changed at this entry while
                    // recording: the call made again after the handler.
                    self.apply_entry_writes(tid, real)?;
                }
                let mut regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
                if !at_entry || crate::tracee::seen_nr(real, &regs, nr) != nr {
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
                self.send(real_pid, real, s.signo)?;
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
                let clear = self.traps_cleared;
                if let Some(t) = self.tasks.get_mut(&tid) {
                    let recorded = FrameFix::for_signal(&s.kind);
                    t.frame_fix = FrameFix {
                        clear_trap: clear && recorded.clear_trap,
                        saved_mask: t.mask_after_handler,
                    };
                }
                Ok(())
            }
            ev => {
                let seen = self.describe_stop(real, &ev);
                Err(self.diverged(tid, "signal", format!("signal {}", s.signo), seen))
            }
        }
    }

    /// Sends the recorded signal `signo` to replay's thread `real` of
    /// process `real_pid`. A `SIGCONT` traps every other thread of the
    /// process once (see [`super::Task::sigcont_notice`]).
    fn send(&mut self, real_pid: i32, real: i32, signo: i32) -> Result<(), ReplayError> {
        if signo == libc::SIGCONT {
            for t in self.tasks.values_mut() {
                if t.real_pid == real_pid && t.real != real {
                    t.sigcont_notice = true;
                }
            }
        }
        ptrace::tgkill(real_pid, real, signo).map_err(perr("tgkill", real))?;
        Ok(())
    }

    /// The frame of the signal delivered to `tid` was changed as `fix`
    /// says, at its handler's entry: a mask it saves is the one
    /// `rt_sigreturn` restores, which replay need not restore itself.
    pub(super) fn frame_fixed(&mut self, tid: Tid, fix: FrameFix) {
        if fix.saved_mask.is_some() {
            if let Some(t) = self.tasks.get_mut(&tid) {
                t.mask_after_handler = None;
            }
        }
    }

    /// An emulated `rt_sigsuspend` (or `ppoll`, `pselect6`, `epoll_pwait`
    /// with a mask) did not swap in its temporary signal mask,
    /// but the signal that ended it while recording was delivered under that
    /// mask (and may be blocked under the thread's own). Swap it in now, at
    /// the syscall's exit stop; the thread's own mask goes into the frame of
    /// the signal's handler ([`Session::frame_fixed`]), whose return puts it
    /// back, as the kernel's does.
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
/// `epoll_pwait2`, `io_pgetevents`, and the 32-bit calls that mean them
/// (`nr` is the trace's number: matched by its `row_nr`). None when the
/// call has no mask.
pub(super) fn temporary_mask(tid: i32, nr: i64, args: &[u64; 6]) -> Option<u64> {
    let ptr = match syscalls::row_nr(nr) {
        libc::SYS_rt_sigsuspend => args[0],
        libc::SYS_ppoll => args[3],
        libc::SYS_epoll_pwait | libc::SYS_epoll_pwait2 => args[4],
        // A pointer to { const sigset_t *ss; size_t ss_len; }: two 32-bit
        // values for a 32-bit caller (struct compat_sigset_argpack, and
        // io_pgetevents' struct __compat_aio_sigset).
        libc::SYS_pselect6 | syscalls::SYS_IO_PGETEVENTS
            if args[5] != 0 && syscalls::is_compat(nr) =>
        {
            let mut raw = [0u8; 4];
            RemoteMem::new(tid).read_exact(args[5], &mut raw).ok()?;
            u64::from(u32::from_le_bytes(raw))
        }
        libc::SYS_pselect6 | syscalls::SYS_IO_PGETEVENTS if args[5] != 0 => {
            let mut raw = [0u8; 8];
            RemoteMem::new(tid).read_exact(args[5], &mut raw).ok()?;
            u64::from_le_bytes(raw)
        }
        _ => 0,
    };
    (ptr != 0).then_some(ptr)
}

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

/// Whether delivering `signo` to replay's thread `real` ends its process,
/// at a recorded death whose status, for a process, is `recorded`: the
/// signal the process is recorded dying of; for a thread alone (a
/// `ThreadExit`), a signal whose action is death (its default action
/// terminates or dumps core, and the process neither catches nor ignores
/// it: `SigCgt`, `SigIgn` in its /proc status, which replay's real
/// `rt_sigaction`s set as the recording's did). A stop signal, one handled
/// or ignored does not end it.
pub(super) fn signal_ends(real: i32, signo: i32, recorded: Option<ExitStatus>) -> bool {
    match recorded {
        Some(ExitStatus::Signaled { signo: died, .. }) => died == signo,
        Some(ExitStatus::Exited(_)) => false,
        None => {
            if signo == libc::SIGKILL {
                return true;
            }
            let default_not_fatal = matches!(
                signo,
                libc::SIGCHLD
                    | libc::SIGCONT
                    | libc::SIGURG
                    | libc::SIGWINCH
                    | libc::SIGSTOP
                    | libc::SIGTSTP
                    | libc::SIGTTIN
                    | libc::SIGTTOU
            );
            let status =
                std::fs::read_to_string(format!("/proc/{real}/status")).unwrap_or_default();
            !default_not_fatal
                && !in_signal_set(&status, "SigCgt:", signo)
                && !in_signal_set(&status, "SigIgn:", signo)
        }
    }
}

/// Whether `signo` is in the set of line `field` (`SigCgt:`, ...) of a
/// /proc status text (64 bits in hex; false when the line is missing).
fn in_signal_set(status: &str, field: &str, signo: i32) -> bool {
    (1..=64).contains(&signo)
        && status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .is_some_and(|set| set & (1u64 << (signo - 1)) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_sets_are_read_from_status_text() {
        // SIGINT (2) and SIGTERM (15) caught, SIGPIPE (13) ignored.
        let status = "Name:\tx\nSigIgn:\t0000000000001000\nSigCgt:\t0000000000004002\n";
        assert!(in_signal_set(status, "SigCgt:", libc::SIGINT));
        assert!(in_signal_set(status, "SigCgt:", libc::SIGTERM));
        assert!(!in_signal_set(status, "SigCgt:", libc::SIGPIPE));
        assert!(in_signal_set(status, "SigIgn:", libc::SIGPIPE));
        assert!(!in_signal_set(status, "SigIgn:", 0));
        assert!(!in_signal_set(status, "SigIgn:", 65));
        assert!(!in_signal_set("Name:\tx\n", "SigCgt:", libc::SIGINT));
    }

    #[test]
    fn a_recorded_status_says_which_signal_ends_the_process() {
        let killed = |signo| Some(ExitStatus::Signaled { signo, core: false });
        // The thread is only read when the status is not known.
        assert!(signal_ends(-1, libc::SIGTERM, killed(libc::SIGTERM)));
        assert!(!signal_ends(-1, libc::SIGSTOP, killed(libc::SIGKILL)));
        assert!(!signal_ends(-1, libc::SIGTERM, Some(ExitStatus::Exited(0))));
    }

    #[test]
    fn stop_handled_and_ignored_signals_do_not_end_a_thread() {
        // A shell that handles SIGUSR1, ignores SIGUSR2 and leaves SIGTERM
        // to its default action, waiting in a sleep.
        let mut sh = std::process::Command::new("sh")
            .args(["-c", "trap 'exit 3' USR1; trap '' USR2; sleep 10"])
            .spawn()
            .expect("sh runs");
        let pid = sh.id() as i32;
        let usr1 = |s: &str| in_signal_set(s, "SigCgt:", libc::SIGUSR1);
        let mut ready = false;
        for _ in 0..200 {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            if usr1(&status) {
                ready = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let ends = |signo| signal_ends(pid, signo, None);
        let seen = [
            ends(libc::SIGUSR1),
            ends(libc::SIGUSR2),
            ends(libc::SIGSTOP),
            ends(libc::SIGTSTP),
            ends(libc::SIGCHLD),
            ends(libc::SIGCONT),
            ends(libc::SIGTERM),
            ends(libc::SIGKILL),
        ];
        let _ = sh.kill();
        let _ = sh.wait();
        assert!(ready, "the shell never set its SIGUSR1 trap");
        assert_eq!(seen, [false, false, false, false, false, false, true, true]);
    }
}
