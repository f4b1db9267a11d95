//! A tracee's clones, forks and vforks (`PTRACE_O_TRACECLONE`, `_FORK`,
//! `_VFORK`): the new thread or process traced by the same tracer, held in
//! its first stop, and the vfork parent held at its event stop inside the
//! call. Must not: answer waits (`wait.rs`).

use super::*;

impl Session {
    /// At a clone, fork or vfork event of `parent` (new thread or process
    /// `child`, clone `flags`): when `parent` is a tracee whose options ask
    /// for this kind of event (the kernel's rule: `CLONE_VFORK` is a
    /// vfork, an exit signal other than `SIGCHLD` a clone, else a fork;
    /// none with `CLONE_UNTRACED`), `child` is traced by the same tracer
    /// with the same options, starts held in its first stop (`SIGSTOP`, or
    /// `PTRACE_EVENT_STOP` when seized), and `parent` owes the event stop
    /// at the syscall's exit ([`Session::step_over_syscall_done`]); a
    /// vfork's parent is held in its event stop now, here, at the
    /// recorder's own event stop ([`Session::held_in_vfork`]: it is not
    /// resumed until its tracer resumes it). A traced vfork parent owes
    /// `PTRACE_EVENT_VFORK_DONE` at the exit, if its options ask for it
    /// then. Returns whether `child` is traced.
    pub(in crate::recorder::session) fn traced_clone(
        &mut self,
        parent: Tid,
        child: Tid,
        flags: u64,
    ) -> bool {
        let Some(tr) = self.tasks.get(&parent).and_then(|t| t.traced.clone()) else {
            return false;
        };
        let vfork = flags & libc::CLONE_VFORK as u64 != 0;
        if vfork {
            // (The kernel reports VFORK_DONE whatever CLONE_UNTRACED says.)
            if let Some(t) = self.traced_mut(parent) {
                t.vfork_child = Some(child);
            }
        }
        if flags & libc::CLONE_UNTRACED as u64 != 0 {
            return false;
        }
        let (event, option) = if vfork {
            (libc::PTRACE_EVENT_VFORK, PTRACE_O_TRACEVFORK)
        } else if flags & 0xff != libc::SIGCHLD as u64 {
            (libc::PTRACE_EVENT_CLONE, PTRACE_O_TRACECLONE)
        } else {
            (libc::PTRACE_EVENT_FORK, PTRACE_O_TRACEFORK)
        };
        if tr.options & option == 0 {
            return false;
        }
        let thread = flags & libc::CLONE_THREAD as u64 != 0;
        // A process made with CLONE_PARENT is the tracer's own child.
        let child_of_tracer = !thread && parent_of(child) == Some(tr.tracer);
        let first = if tr.seized {
            EmuStop::notify(libc::SIGTRAP | (libc::PTRACE_EVENT_STOP << 8), child, None)
        } else {
            // A SIGSTOP the kernel queued, without a sender.
            EmuStop::delivery(libc::SIGSTOP, user_siginfo(libc::SIGSTOP, 0))
        };
        tracing::debug!(parent, child, event, tracer = tr.tracer, "a new tracee");
        if let Some(task) = self.tasks.get_mut(&child) {
            task.traced = Some(Traced {
                tracer: tr.tracer,
                thread: tr.thread,
                seized: tr.seized,
                options: tr.options,
                stop: Some(first),
                exit_stopped: false,
                child: child_of_tracer,
                clone_event: None,
                vfork_held: false,
                vfork_child: None,
                sysemu: false,
                debug: DebugRegs::default(),
            });
        }
        if vfork {
            // Held at the recorder's event stop, inside the call, before
            // the kernel waits for the child: the tracer sees it stopped
            // there, and may resume the child first.
            let tgid = self.tasks.get(&parent).map_or(parent, |t| t.pid);
            let code = libc::SIGTRAP | (event << 8);
            let stop = EmuStop::notify(code, tgid, u64::try_from(child).ok());
            if let Some(t) = self.traced_mut(parent) {
                t.stop = Some(stop);
                t.vfork_held = true;
            }
            if self.current == Some(parent) {
                self.current = None;
            }
        } else if let Some(t) = self.traced_mut(parent) {
            t.clone_event = Some((event, child));
        }
        true
    }

    /// Whether `tid` is held in its vfork's event stop (at the recorder's
    /// own event stop, not resumed: [`Session::traced_clone`]).
    pub(in crate::recorder::session) fn held_in_vfork(&self, tid: Tid) -> bool {
        self.tasks
            .get(&tid)
            .and_then(|t| t.traced.as_ref())
            .is_some_and(|t| t.vfork_held)
    }

    /// Resumes vfork parent `tid`, let go from its event stop (by its
    /// tracer, or as its tracer is gone), into the kernel's wait for its
    /// child: it is in the syscall, and its exit stop comes when the child
    /// execs or exits. One killed meanwhile is passed over (its exit is
    /// reported).
    pub(super) fn release_vfork_parent(&mut self, tid: Tid) -> Result<(), Error> {
        match self.resume_in_syscall(tid) {
            Err(Error::Ptrace { source, .. }) if source.raw_os_error() == Some(libc::ESRCH) => {
                Ok(())
            }
            other => other,
        }
    }
}
