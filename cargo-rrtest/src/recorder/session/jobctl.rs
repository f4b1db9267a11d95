//! Job control: a group stop (`SIGSTOP`, `SIGTSTP`, `SIGTTIN`, `SIGTTOU`)
//! holds the process's threads until a `SIGCONT` comes, as the kernel does.
//!
//! Under `PTRACE_SEIZE` each thread reports its part in a group stop as a
//! `PTRACE_EVENT_STOP` whose signal is the stop signal; a tracer that
//! resumes it there lets it run on although the kernel (and the parent's
//! `waitpid`) consider the process stopped. So the recorder leaves such a
//! thread in that stop ([`State::JobStopped`]) and schedules the others.
//! The thread stays in a ptrace stop (not `PTRACE_LISTEN`, under which
//! every other request on it fails with `ESRCH`), so the kernel does not
//! wake it for the `SIGCONT`: the recorder looks for one instead, after
//! every stop it handles and at every tick while a thread is held: a
//! `SIGCONT` is queued for a traced process even when it is ignored, and
//! stays pending while every thread of the process is held (none runs to
//! take it), so a `SIGCONT` bit in the pending sets of the process
//! (`ShdPnd`) or of one of its threads (`SigPnd`) in `/proc` means it was
//! continued. The held threads become ready; resumed, each stops once more
//! at once (the kernel's notice of the continue, a `PTRACE_EVENT_STOP` with
//! `SIGTRAP`, run through), then takes the `SIGCONT` as any other signal.
//!
//! Nothing of this is in the trace: the threads' events are as they were,
//! and replay runs them in order (where it runs through the group stops
//! that replayed stop signals make).

use tracing::debug;

use super::{ptrace_err, Error, Session, State};
use rrtest_sys::ptrace;
use rrtest_trace::Tid;

/// Whether `sig`, the signal of a `PTRACE_EVENT_STOP`, says a group stop.
pub(super) fn is_stop_signal(sig: i32) -> bool {
    matches!(
        sig,
        libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
    )
}

impl Session {
    /// `tid` stopped for its process's group stop (signal `sig`): held
    /// there, unless it is inside the syscall buffer's code (not a place
    /// to leave a thread while others run), when it runs on as before.
    /// A thread stopped inside a blocked buffered syscall is unwound first,
    /// so that the call is made again traced when it goes on.
    pub(super) fn group_stop(&mut self, tid: Tid, sig: i32) -> Result<(), Error> {
        let Some(task) = self.tasks.get(&tid) else {
            return Ok(());
        };
        let pid = task.pid;
        let regs = ptrace::getregs(tid).map_err(ptrace_err("PTRACE_GETREGS", tid))?;
        if let Some(in_buffer_code) = self
            .spaces
            .get(&pid)
            .map(|space| space.in_buffer_code(regs.rip, regs.rsp))
        {
            if let Some(nr) = self.unwind_interrupted(tid, &regs)? {
                debug!(tid, nr, "group stop in a buffered syscall: unwound");
            } else if in_buffer_code {
                debug!(
                    tid,
                    sig,
                    ip = regs.rip,
                    "group stop in buffer code: run through"
                );
                return ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid));
            }
        }
        debug!(tid, sig, "group stop: held until SIGCONT");
        if self.current == Some(tid) {
            self.current = None;
        }
        let task = self.tasks.get_mut(&tid).expect("checked");
        if task.seeking.take().is_some() {
            ptrace::exec_breakpoint(tid, None).map_err(ptrace_err("clearing a breakpoint", tid))?;
        }
        task.state = State::JobStopped;
        task.steps_left = None;
        task.spin_check = false;
        task.interrupt_requested = false;
        // It may have been continued already (its stop came late).
        self.release_continued()
    }

    /// Makes ready the held threads of every process that got a `SIGCONT`.
    pub(super) fn release_continued(&mut self) -> Result<(), Error> {
        // (Tracees listening in a stop of their tracer's are trapped again.)
        self.wake_listeners();
        let held: Vec<(Tid, Tid)> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.state == State::JobStopped)
            .map(|(&tid, t)| (tid, t.pid))
            .collect();
        if held.is_empty() {
            return Ok(());
        }
        let mut pids: Vec<Tid> = held.iter().map(|&(_, pid)| pid).collect();
        pids.sort_unstable();
        pids.dedup();
        for pid in pids {
            let threads: Vec<Tid> = self
                .tasks
                .iter()
                .filter(|(_, t)| t.pid == pid)
                .map(|(&tid, _)| tid)
                .collect();
            if !sigcont_pending(pid, &threads) {
                continue;
            }
            for &(tid, p) in &held {
                if p == pid {
                    debug!(tid, "continued: ready");
                    if let Some(task) = self.tasks.get_mut(&tid) {
                        task.set_ready(super::Pending::Nothing);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Whether a `SIGCONT` is pending for process `pid`: in its shared set or
/// in the set of one of `threads`.
pub(super) fn sigcont_pending(pid: Tid, threads: &[Tid]) -> bool {
    let bit = 1u64 << (libc::SIGCONT - 1);
    let has = |path: String, field: &str| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| pending_field(&s, field))
            .is_some_and(|set| set & bit != 0)
    };
    has(format!("/proc/{pid}/status"), "ShdPnd:")
        || threads
            .iter()
            .any(|tid| has(format!("/proc/{pid}/task/{tid}/status"), "SigPnd:"))
}

/// The signal set of line `field` (e.g. `ShdPnd:`) of a `/proc` status
/// file: 64 bits in hex.
pub(super) fn pending_field(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    u64::from_str_radix(line[field.len()..].trim(), 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_sets_are_read_from_status_text() {
        let status = "Name:\tx\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000020000\n";
        assert_eq!(pending_field(status, "ShdPnd:"), Some(1 << 17));
        assert_eq!(pending_field(status, "SigPnd:"), Some(0));
        assert_eq!(pending_field(status, "SigBlk:"), None);
        assert_eq!(1u64 << (libc::SIGCONT - 1), 1 << 17);
    }

    #[test]
    fn stop_signals_are_the_four_job_control_ones() {
        for sig in [libc::SIGSTOP, libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU] {
            assert!(is_stop_signal(sig));
        }
        assert!(!is_stop_signal(libc::SIGTRAP));
        assert!(!is_stop_signal(libc::SIGCONT));
    }

    #[test]
    fn a_pending_sigcont_of_this_thread_is_seen() {
        use nix::sys::signal::{SigSet, Signal};
        // SIGCONT blocked in this thread and sent to it alone: it stays
        // pending in the thread's set until taken.
        let mut set = SigSet::empty();
        set.add(Signal::SIGCONT);
        set.thread_block().expect("blocking SIGCONT");
        let pid = std::process::id() as Tid;
        let tid = nix::unistd::gettid().as_raw();
        let before = sigcont_pending(pid, &[tid]);
        rrtest_sys::ptrace::tgkill(pid, tid, libc::SIGCONT).expect("tgkill");
        let seen = sigcont_pending(pid, &[tid]);
        let taken = set.wait();
        set.thread_unblock().expect("unblocking SIGCONT");
        assert!(!before);
        assert!(seen);
        assert_eq!(taken.ok(), Some(Signal::SIGCONT));
    }
}
