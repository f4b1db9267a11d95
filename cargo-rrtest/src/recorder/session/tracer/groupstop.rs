//! Group stops of a tracee, as its tracer sees them (the kernel's
//! `do_signal_stop` and `do_jobctl_trap`): a stop signal its tracer
//! resumes it with at the signal's delivery stop is not delivered to the
//! real thread, but makes the job-control trap its tracer's wait reports
//! (`PTRACE_EVENT_STOP` with the signal for a seized tracee, a plain stop
//! with it for another), held as the other emulated stops are. Resumed
//! from there, it runs on, as the kernel lets a traced thread run in its
//! group stop; a seized one continued meanwhile (a `SIGCONT`) traps once
//! more first (`PTRACE_EVENT_STOP` with `SIGTRAP`), then takes the
//! `SIGCONT` as any signal (a signal-delivery stop). `PTRACE_LISTEN` at a
//! `PTRACE_EVENT_STOP` keeps it held but out of reach of requests (ESRCH)
//! and waits, until a `SIGCONT` (in the real thread's or its process's
//! pending set, as `jobctl.rs` finds one) or `PTRACE_INTERRUPT` traps it
//! again ([`Session::wake_listeners`]).
//!
//! Not emulated (EIO, named): `SIGTSTP`, `SIGTTIN`, `SIGTTOU` with their
//! default action (a group stop, unless the process group is orphaned,
//! which is not looked at), and a group stop of a tracee whose process has
//! other threads (natively they all stop).

use tracing::warn;

use super::*;
use crate::recorder::session::jobctl;

impl Session {
    /// A resume request `request` with signal `signo` for tracee `target`
    /// (`traced`, held in a stop): the group stop's trap when `signo` is a
    /// stop signal delivered at a signal-delivery stop, or the trap of a
    /// seized tracee continued while in one; Some(the request's result)
    /// when it is handled here, None when the request goes on as any (a
    /// `SIGCONT` left to its default action then taken out of `signo`).
    pub(super) fn group_stop_resume(
        &mut self,
        target: Tid,
        request: i32,
        signo: &mut i64,
        traced: &Traced,
    ) -> Result<Option<i64>, Error> {
        let Some(stop) = traced.stop.as_ref() else {
            return Ok(None);
        };
        if request == req::DETACH {
            // (Delivered untraced: the recorder's own group stop.)
            return Ok(None);
        }
        let pid = self.tasks[&target].pid;
        if stop.group.is_some() && jobctl::is_stop_signal(stop.signal()) {
            if traced.seized && jobctl::sigcont_pending(pid, &[target]) {
                self.hold_stopped(target, EmuStop::group_trap(libc::SIGTRAP, true, pid, 0));
                return Ok(Some(0));
            }
            return Ok(None);
        }
        if *signo == i64::from(libc::SIGCONT)
            && stop.takes_signal()
            && default_action(pid, libc::SIGCONT)
        {
            // Its default action does nothing (the continue was made
            // when it was sent): not sent again, which would take back a
            // stop signal sent since, as a new SIGCONT does.
            *signo = 0;
            return Ok(None);
        }
        let signo = *signo as i32;
        if signo == 0 || !jobctl::is_stop_signal(signo) || !stop.takes_signal() {
            return Ok(None);
        }
        if signo != libc::SIGSTOP {
            if !default_action(pid, signo) {
                // Caught or ignored: delivered as any signal.
                return Ok(None);
            }
            warn!(
                "{} with signal {signo} (a stop signal other than SIGSTOP, default action): the recorder does not emulate its group stop (the program gets EIO)",
                request_name(request)
            );
            return Ok(Some(neg(libc::EIO)));
        }
        if self
            .tasks
            .iter()
            .any(|(&t, task)| task.pid == pid && t != target)
        {
            warn!(
                "{} with SIGSTOP for a thread whose process has other threads: the recorder does not emulate that group stop (the program gets EIO)",
                request_name(request)
            );
            return Ok(Some(neg(libc::EIO)));
        }
        self.hold_stopped(
            target,
            EmuStop::group_trap(signo, traced.seized, pid, signo),
        );
        Ok(Some(0))
    }

    /// Traps again each tracee listening (`PTRACE_LISTEN`) that was
    /// continued: its `SIGCONT` pending makes the kernel's notify trap, a
    /// `PTRACE_EVENT_STOP` with `SIGTRAP` its tracer's wait reports.
    pub(in crate::recorder::session) fn wake_listeners(&mut self) {
        if !self.emulating_ptrace {
            return;
        }
        let listening: Vec<(Tid, Tid)> = self
            .tasks
            .iter()
            .filter(|(_, t)| {
                t.traced
                    .as_ref()
                    .and_then(|tr| tr.stop.as_ref())
                    .is_some_and(|s| s.listening)
            })
            .map(|(&tid, t)| (tid, t.pid))
            .collect();
        for (tid, pid) in listening {
            if jobctl::sigcont_pending(pid, &[tid]) {
                if let Some(t) = self.traced_mut(tid) {
                    t.stop = Some(EmuStop::group_trap(libc::SIGTRAP, true, pid, 0));
                }
            }
        }
    }
}

/// Whether process `pid` leaves signal `signo` to its default action
/// (neither caught nor ignored, as its `/proc` status says).
fn default_action(pid: Tid, signo: i32) -> bool {
    let bit = 1u64 << (signo - 1);
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return true;
    };
    ["SigCgt:", "SigIgn:"]
        .iter()
        .all(|f| jobctl::pending_field(&status, f).is_none_or(|set| set & bit == 0))
}
