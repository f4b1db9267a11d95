//! Traced syscalls: the entry (deliver a held-back signal before it, patch
//! its site, decide whether it splits so that others may run) and the exit
//! (capture what it did, write its event).
//!
//! Must not: pick the next thread (`schedule`) or handle clone and exec
//! events (`process`).

use std::io;

use tracing::{debug, warn};

use super::futex;
use super::tracer::WaitAnswer;
use super::{ptrace_err, Entered, Error, Pending, Session, State};
use crate::recorder::capture::capture;
use crate::tracee::syscallbuf;
use rrtest_sys::ptrace::{self, Regs, WaitEvent};
use rrtest_syscalls::{self as syscalls, Call, ReplayAction};
use rrtest_trace::{Event, ExitStatus, SignalKind, SyscallEvent, SyscallResult, Tid};

impl Session {
    /// A traced syscall's entry (its seccomp stop).
    pub(super) fn syscall_entry(&mut self, tid: Tid) -> Result<(), Error> {
        let mut regs = ptrace::getregs(tid).map_err(ptrace_err("PTRACE_GETREGS", tid))?;
        // A 32-bit call (`int $0x80`) is carried under a number of its own,
        // with the i386 argument registers (see `rrtest_syscalls::compat`).
        let compat =
            !self.made_by_our_syscall(tid, regs.rip) && crate::tracee::is_int80(tid, regs.rip);
        let (nr, args) = if compat {
            (
                syscalls::compat_nr(regs.orig_rax),
                syscalls::compat_args(&regs),
            )
        } else {
            (regs.orig_rax as i64, ptrace::syscall_args(&regs))
        };
        if self.restarts(tid, nr, regs.rip) {
            // The kernel restarting the call our interrupt broke
            // (`syscall_exit`): the same call goes on.
            return ptrace::syscall(tid, 0).map_err(ptrace_err("PTRACE_SYSCALL", tid));
        }
        // A 32-bit call whose arguments are in memory (`socketcall`, the
        // old `mmap`): the words the kernel reads now, kept in its
        // arguments until its exit describes it; and `io_submit`'s ring
        // tail before it.
        let args = if compat || nr == libc::SYS_io_submit {
            syscalls::entry_args(&rrtest_sys::RemoteMem::new(tid), nr, args)
        } else {
            args
        };
        // A syscall is a better point than the return address being sought.
        let mut seek_ended = false;
        // Chaos steps that go on at its exit, if the thread goes on there.
        let mut steps_left = None;
        if let Some(task) = self.tasks.get_mut(&tid) {
            steps_left = task.steps_left.take();
            // A thread checked for a spin that makes a syscall does not
            // spin: the check is over, unless its interrupt's stop is still
            // to come (it is a spin check there too).
            task.kicked = false;
            let spin_check = task.spin_check;
            if !task.interrupt_requested {
                task.spin_check = false;
            }
            if let Some(seek) = task.seeking.take() {
                ptrace::exec_breakpoint(tid, None)
                    .map_err(ptrace_err("clearing a breakpoint", tid))?;
                match seek.steps_left() {
                    // A stub's traced syscall, on the way back to stepping.
                    Some(left) => steps_left = Some(left),
                    // It stops here only if it would have anyway.
                    None => seek_ended = !spin_check,
                }
            }
        }
        self.step_into_syscall(tid)?;
        let inside = self
            .tasks
            .get_mut(&tid)
            .and_then(|t| t.signal_in_syscall.take())
            .and_then(|signo| self.take_pending(tid, signo));
        if let Some((signo, info)) = inside {
            // The call a signal interrupted while it was buffered, made
            // again traced: the signal is sent again now, pending when the
            // call starts, so that the kernel interrupts it (or completes
            // it) and delivers the signal at its exit, with the original
            // siginfo (`signal`).
            let pid = self.tasks[&tid].pid;
            ptrace::tgkill(pid, tid, signo).map_err(ptrace_err("tgkill", tid))?;
            self.tasks.get_mut(&tid).expect("task exists").redeliver = Some((signo, info));
        } else if let Some((signo, info)) = self.take_deliverable(tid) {
            // Deliver a held-back signal as if it came just before this
            // syscall: skip the syscall, back up to its instruction (it runs
            // again after the handler), and deliver.
            regs.rip -= rrtest_abi::SYSCALL_INSN_LEN;
            regs.rax = regs.orig_rax;
            regs.orig_rax = u64::MAX;
            ptrace::setregs(tid, &regs).map_err(ptrace_err("PTRACE_SETREGS", tid))?;
            return self.deliver_now(tid, signo, info, SignalKind::BeforeSyscall { nr });
        }
        let pid = self.tasks.get(&tid).map(|t| t.pid).unwrap_or(tid);
        if regs.orig_rax == rrtest_abi::magic::INIT {
            return self.buffer_init(tid, pid, &regs);
        }
        if self.sysemu_entry(tid, nr, &args)? {
            // PTRACE_SYSEMU: skipped, its tracer plays the kernel.
            return Ok(());
        }
        // (A 32-bit exit or exit_group by its x86-64 number.)
        if self.syscall_entry_stop(tid, syscalls::row_nr(nr), &args) {
            // PTRACE_SYSCALL: its tracer sees the entry first.
            return Ok(());
        }
        if let (Some(space), false) = (self.spaces.get(&pid), compat) {
            if nr == libc::SYS_rt_sigreturn {
                // Best effort: a frame we cannot read, the kernel cannot
                // either (the program gets its SIGSEGV from rt_sigreturn).
                let _ = syscallbuf::fix_sigreturn(tid, &regs, space);
            } else if !self.watches_syscalls(tid)
                && !self.has_tracer(tid)
                && self.try_patch(tid, pid, &regs)?
            {
                // (Not under a tracee's single step or PTRACE_SYSCALL: the
                // stub would run its syscall untraced, unseen. Not in a
                // tracee at all: see `has_tracer`.)
                return Ok(());
            }
        }
        // Asked to bail (`force_bail`), or its hook bailed because the
        // slice's budget of buffered syscalls is spent.
        // Or resumed in a hand-off (`futex`): any traced syscall lets
        // others run.
        let handoff_stop = self
            .tasks
            .get_mut(&tid)
            .is_some_and(|t| std::mem::take(&mut t.handoff_stop));
        let bailed = handoff_stop
            || self.tasks.get(&tid).is_some_and(|t| t.bailed.is_some())
            || self.budget_spent(tid, pid);
        if self.futex_entry(tid, nr, &args, compat, &regs)? {
            return Ok(());
        }
        if nr == libc::SYS_futex && !compat && futex::private_wait(nr, &args).is_none() {
            // A wake, a requeue, ...: a held wait's word may change.
            self.futex_woken(pid);
        }
        self.stats.traced_syscalls += 1;
        if self.current != Some(tid) {
            warn!(tid, current = ?self.current, nr, "syscall entry of a thread that is not current");
        }
        // A number the table lacks runs as it is: the kernel answers an
        // invalid one with ENOSYS, which is recorded and replayed like any
        // result; any other result makes the trace unreplayable (`capture`).
        let desc = syscalls::lookup(nr);
        // rseq: the kernel would write the rseq area behind our back; make
        // registration fail as if the kernel lacked it.
        let mut forced_ret = None;
        let wait = self.emulated_wait(tid, pid, nr, &args)?;
        if wait == WaitAnswer::Park {
            // A tracer's wait for a tracee the kernel's wait does not know
            // of: held here until something is to report.
            self.park_wait(tid, nr, args);
            return Ok(());
        }
        if nr == libc::SYS_rseq {
            regs.orig_rax = u64::MAX;
            ptrace::setregs(tid, &regs).map_err(ptrace_err("PTRACE_SETREGS", tid))?;
            forced_ret = Some(-(libc::ENOSYS as i64));
        } else if let Some(call) = absent_feature(nr) {
            // Not recordable: answered as a kernel built without it, so
            // that the program takes the path it has for such kernels.
            if self.features_denied.insert(call) {
                warn!(
                    tid,
                    "{call}: answered ENOSYS under the recorder, as a kernel built without it answers (the kernel would work behind the recorder's back); the program may take another path than it does natively"
                );
            }
            regs.orig_rax = u64::MAX;
            ptrace::setregs(tid, &regs).map_err(ptrace_err("PTRACE_SETREGS", tid))?;
            forced_ret = Some(-(libc::ENOSYS as i64));
        } else if nr == libc::SYS_ptrace {
            // The program is traced already (by us): the kernel would
            // refuse its requests. Between processes of the recording they
            // are emulated (`tracer`); one naming a process outside it
            // fails with EPERM (it could change what that process does,
            // unseen). Recorded, and so in replay.
            regs.orig_rax = u64::MAX;
            ptrace::setregs(tid, &regs).map_err(ptrace_err("PTRACE_SETREGS", tid))?;
            forced_ret = Some(self.emulate_ptrace(tid, pid, &args)?);
        } else if let WaitAnswer::Now(ret) = wait {
            // A tracer's wait for the emulated stop of its tracee.
            regs.orig_rax = u64::MAX;
            ptrace::setregs(tid, &regs).map_err(ptrace_err("PTRACE_SETREGS", tid))?;
            forced_ret = Some(ret);
        } else if nr == libc::SYS_sched_setaffinity
            && self.writer.header_mut().tracee_cpu.is_some()
            && (args[0] == 0 || self.tasks.contains_key(&(args[0] as Tid)))
        {
            // The program stays on the CPU it is bound to (see `record`):
            // pretend the move succeeded, as rr does.
            regs.orig_rax = u64::MAX;
            ptrace::setregs(tid, &regs).map_err(ptrace_err("PTRACE_SETREGS", tid))?;
            forced_ret = Some(0);
        }
        let action = desc.map(|d| d.replay);
        if action == Some(ReplayAction::Execve) {
            // The buffer goes with the old image.
            self.flush(tid, true)?;
            self.note_exec_file(tid, nr, &args)?;
        }
        if action == Some(ReplayAction::Exit) {
            // It does not return: the thread (or process) ends.
            self.emit(Event::SyscallEntry { tid, nr, args })?;
            ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))?;
            let leader = self.tasks.get(&tid).is_none_or(|t| t.pid == tid);
            // A process alone in an address space it shares (`CLONE_VM`
            // without `CLONE_THREAD`, a vfork child) clears its
            // `CLONE_CHILD_CLEARTID` word in the other's memory as it
            // goes, like a thread.
            let alone_sharing = leader
                && self.spaces.get(&pid).is_some_and(|s| s.borrowed)
                && !self
                    .tasks
                    .iter()
                    .any(|(&t, task)| t != tid && task.pid == pid);
            // A thread's exit: the x86-64 call's or the i386 one's.
            let thread_exit = syscalls::row_nr(nr) == libc::SYS_exit;
            if (thread_exit && !leader) || alone_sharing {
                // A thread's exit clears its `CLONE_CHILD_CLEARTID` word and
                // wakes a thread joining it. Nobody else runs until it is
                // gone, so that no thread sees it half-exited: replay makes
                // the same exit complete at the same point.
                return match ptrace::wait_tid(tid).map_err(ptrace_err("waitpid", tid))? {
                    WaitEvent::Exited { code, .. } => self.task_gone(tid, ExitStatus::Exited(code)),
                    WaitEvent::Signaled { signo, core, .. } => {
                        self.task_gone(tid, ExitStatus::Signaled { signo, core })
                    }
                    ev => Err(Error::Ptrace {
                        op: "waiting for a thread's exit",
                        tid,
                        source: io::Error::other(format!("unexpected stop {ev:?}")),
                    }),
                };
            }
            if thread_exit
                && self
                    .tasks
                    .iter()
                    .any(|(&t, task)| t != tid && task.pid == pid)
            {
                // The main thread's own exit while others of its process
                // live: a zombie the kernel reports when the process ends
                // (or never, when another thread execs and takes its id).
                // It will not stop again: the others run meanwhile. (It
                // stayed the current thread, and a thread waiting for it,
                // such as one about to exec, never ran: a stall.)
                if let Some(task) = self.tasks.get_mut(&tid) {
                    task.state = State::InSyscall {
                        entered: Entered {
                            nr,
                            args,
                            forced_ret: None,
                            output: None,
                            ip: regs.rip,
                            switch_after: false,
                        },
                        split: true,
                    };
                }
                if self.current == Some(tid) {
                    self.current = None;
                }
            }
            return Ok(());
        }
        let others = self.tasks.len() > 1;
        if syscalls::row_nr(nr) == libc::SYS_sched_yield {
            // A thread that yields waits for another: one held in a futex
            // wait may be free to go (its word changed by a store, or a
            // buffered wake, since the last look), and run now.
            self.release_futex_waits(false)?;
        }
        // Give others a turn where the policy says (at sched_yield, after a
        // long run of quick syscalls, where the recorder wanted the thread
        // stopped).
        let timeout = (others && self.sched.pauses_at_timeouts())
            .then(|| super::timeouts::wait_timeout(tid, nr, &args))
            .flatten();
        let yield_now = self.sched.switch_at_syscall(
            syscalls::row_nr(nr),
            seek_ended || bailed,
            others,
            timeout,
        ) && self.others_ready_settled(tid)?;
        if yield_now && syscalls::row_nr(nr) == libc::SYS_sched_yield {
            self.stats.schedule.yields += 1;
        }
        // A write to our stdout/stderr is never split either: replay echoes
        // output at the syscall's exit event, so the exit must follow the
        // entry before another thread writes, or the echoed order would
        // differ from the order the kernel wrote in. (The reader of those
        // streams is outside the recording, so the write cannot wait on a
        // thread we hold.) Nor is execve: the thread stays current until its
        // exec event, so a vfork parent the exec releases cannot run (and
        // write its syscall's exit) before the exec is in the trace.
        let output = self.outputs.target(tid, nr, &args);
        let splittable = action != Some(ReplayAction::Execve) && output.is_none() && others;
        // (A call that does not block by the table may wait all the same,
        // for a fanotify listener, say: a tick splits it late,
        // `schedule::LATE_SPLIT`.)
        let may_block = desc.map(|d| d.may_block).unwrap_or(true);
        // A wake of a thread last preempted spinning (traced by the locals'
        // `TRACE_WAKE`): it gives way at the wake's exit, when it woke
        // someone (the syscall stop is where the switch costs nothing; the
        // spin the thread would go back to costs a spin check). A wake does
        // not block: not split.
        let spinner_wake = futex::wake(nr, &args)
            && self.wake_switching
            && self.sched.switches_at_spinner_wakes()
            && self.tasks.get(&tid).is_some_and(|t| t.spun);
        let split =
            action == Some(ReplayAction::Clone) || (splittable && may_block && !spinner_wake);
        // A switch at a syscall that does not block happens at its exit
        // (`Entered::switch_after`), not by splitting it.
        let switch_after = splittable && (yield_now || spinner_wake) && !split;
        if split {
            self.sched.split();
            self.emit(Event::SyscallEntry { tid, nr, args })?;
            // A fork copies the process's memory while the kernel runs it:
            // no other thread of the process may run (and write) until the
            // copy is taken, or replay's child, forked with the others
            // held, would start from other memory. The thread stays current
            // until its exit stop (the copy is done by its fork event). A
            // vfork or a thread shares the memory and waits on others.
            if action != Some(ReplayAction::Clone) || !copies_memory(tid, nr, &args) {
                self.current = None;
            }
        }
        let entered = Entered {
            nr,
            args,
            forced_ret,
            output,
            ip: regs.rip,
            switch_after,
        };
        let task = self.tasks.get_mut(&tid).expect("task exists");
        task.state = State::InSyscall { entered, split };
        task.in_kernel_since = Some(std::time::Instant::now());
        task.steps_left = steps_left.filter(|_| !split && !switch_after);
        ptrace::syscall(tid, 0).map_err(ptrace_err("PTRACE_SYSCALL", tid))
    }

    /// A traced syscall's exit stop: writes its `Syscall` event, or, for a
    /// split syscall (or one of a thread not current), leaves the thread
    /// ready with its `SyscallExit` pending.
    pub(super) fn syscall_exit(&mut self, tid: Tid) -> Result<(), Error> {
        let settles = self.sched.settles();
        let Some(task) = self.tasks.get_mut(&tid) else {
            return Ok(());
        };
        let State::InSyscall { entered, split } = task.state else {
            warn!(tid, state = ?task.state, "syscall stop outside a syscall");
            return ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid));
        };
        task.restarting = false;
        // Only where the schedule must not depend on the clock (chaos,
        // prescribed): a signal that comes between this stop and the
        // restart is held back, and the restarted call, not seen as a new
        // one, is not where it is delivered (a `pause` would wait on).
        // The default policy records the restart as a call of its own.
        if settles
            && task.interrupt_requested
            && task.pending_signals.is_empty()
            && task.traced.is_none()
            && entered.forced_ret.is_none()
        {
            let ret = ptrace::getregs(tid)
                .map_err(ptrace_err("PTRACE_GETREGS", tid))?
                .rax as i64;
            if crate::tracee::is_restart_code(ret)
                && crate::tracee::no_signal_pending(tid).unwrap_or(false)
            {
                // Our interrupt (a tick's, sent as the thread sat in this
                // call's entry stop, still pending when it went into the
                // kernel) broke a call that waits: with no signal to
                // deliver, the kernel restarts it. Not its exit: the call
                // goes on, its restart's entry stop is not a new syscall
                // (`syscall_entry`), and the interrupt is spent (this stop
                // cleared it). Taken for an exit, it made the thread ready
                // early and the schedule depend on when the tick came.
                debug!(
                    tid,
                    nr = entered.nr,
                    ret,
                    "our interrupt broke the call: it restarts"
                );
                task.interrupt_requested = false;
                task.interrupt_outstanding = None;
                task.spin_check = false;
                task.restarting = true;
                return self.resume_in_syscall(tid);
            }
        }
        if split || self.current != Some(tid) {
            task.set_ready(Pending::Exit(entered));
            if self.current == Some(tid) {
                self.current = None;
            }
            return Ok(());
        }
        let Entered {
            nr,
            args,
            forced_ret,
            output,
            switch_after,
            ..
        } = entered;
        let regs = self.finish_syscall_regs(tid, forced_ret)?;
        let call = Call {
            nr,
            args,
            ret: regs.rax as i64,
        };
        if syscalls::lookup(nr).map(|d| d.replay) == Some(ReplayAction::Execve) {
            self.exec_failed(tid);
        }
        let result = self.capture(tid, &call, output)?;
        self.emit(Event::Syscall(SyscallEvent {
            tid,
            nr,
            args,
            result,
        }))?;
        if self.step_over_syscall_done(tid) {
            // A tracee stepped over it: it stops for its tracer.
            return Ok(());
        }
        if switch_after && futex::wake(nr, &args) {
            // A spinner's wake (see `syscall_entry`): the thread it woke
            // in the kernel is on its way to its exit stop, one held at its
            // entry waits for its word to be read. Both are taken now, so
            // that it is ready for the switch. (Waited for: the threads of
            // its process in a futex wait on that word.)
            if call.ret > 0 {
                let (pid, uaddr) = (self.tasks[&tid].pid, args[0]);
                self.settle_where(|_, t| {
                    t.pid == pid
                        && matches!(t.state, State::InSyscall { entered, .. }
                            if futex::wait_word(entered.nr, &entered.args)
                                .is_some_and(|(a, _)| a == uaddr))
                })?;
                if !self.tasks.contains_key(&tid) {
                    // Killed meanwhile (a SIGKILL from outside): its exit
                    // was taken.
                    return Ok(());
                }
            }
            self.release_futex_waits(false)?;
            if self.others_ready(tid) {
                self.stats.schedule.wake_switches += 1;
            }
        }
        if switch_after && self.others_ready_settled(tid)? {
            // The scheduler's switch at this syscall: here, its effects
            // and its event done.
            let task = self.tasks.get_mut(&tid).expect("task exists");
            task.set_ready(Pending::Nothing);
            task.resumed_at = None;
            self.current = None;
            return Ok(());
        }
        let task = self.tasks.get_mut(&tid).expect("task exists");
        task.state = State::Running;
        task.resumed_at = Some(regs);
        if let Some(left) = task.steps_left.take() {
            return self.run_steps(tid, left);
        }
        ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))
    }

    /// Resumes `tid`, stopped inside a traced syscall (not at its entry),
    /// towards the syscall's exit stop: with `PTRACE_SYSCALL`, or, when the
    /// kernel is to restart the call, with `PTRACE_CONT` (its restart then
    /// stops at its seccomp stop only, not also at a syscall-entry stop
    /// that would be taken for its exit).
    pub(super) fn resume_in_syscall(&mut self, tid: Tid) -> Result<(), Error> {
        if self.tasks.get(&tid).is_some_and(|t| t.restarting) {
            ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))
        } else {
            ptrace::syscall(tid, 0).map_err(ptrace_err("PTRACE_SYSCALL", tid))
        }
    }

    /// Whether `tid`, at the entry stop of syscall `nr` made at `ip`, is the
    /// kernel restarting the call it is in (see `Task::restarting`): the
    /// same call, or `restart_syscall`, made at the same place.
    fn restarts(&mut self, tid: Tid, nr: i64, ip: u64) -> bool {
        let Some(task) = self.tasks.get_mut(&tid) else {
            return false;
        };
        if !std::mem::take(&mut task.restarting) {
            return false;
        }
        let State::InSyscall { entered, .. } = task.state else {
            return false;
        };
        let same = ip == entered.ip && (nr == entered.nr || syscalls::is_restart_syscall(nr));
        if !same {
            warn!(
                tid,
                nr,
                ip,
                entered = entered.nr,
                "a restarted call was not made again"
            );
        }
        same
    }

    /// Captures a finished syscall's effects, tracking restart blocks.
    pub(super) fn capture(
        &mut self,
        tid: Tid,
        call: &Call,
        output: Option<i32>,
    ) -> Result<SyscallResult, Error> {
        const ERESTART_RESTARTBLOCK: i64 = 516;
        let task = self.tasks.get_mut(&tid).expect("task exists");
        let restarted = if syscalls::is_restart_syscall(call.nr) {
            task.restart_block.take()
        } else {
            None
        };
        if call.ret == -ERESTART_RESTARTBLOCK {
            // A `restart_syscall` interrupted again (a `SIGSTOP` and then
            // the `SIGCONT` that ends it) leaves the kernel's restart block
            // as it was: the next one still resumes the original call.
            task.restart_block = if syscalls::is_restart_syscall(call.nr) {
                restarted
            } else {
                Some(*call)
            };
        }
        self.track_output_fds(tid, call)?;
        let mut problems = Vec::new();
        let foreign_vm_write = call.nr == libc::SYS_process_vm_writev
            && call.ret > 0
            && self
                .tasks
                .get(&(call.args[0] as Tid))
                .map_or(call.args[0] as Tid, |t| t.pid)
                != self.tasks[&tid].pid;
        if foreign_vm_write {
            // The table describes a write into the caller's own memory;
            // another process's is written there by replay.
            match remote_ranges(tid, call) {
                Ok(ranges) => self.foreign_write(
                    tid,
                    call.args[0] as i32,
                    &ranges,
                    "process_vm_writev",
                    &mut problems,
                )?,
                Err(e) => problems.push(format!(
                    "process_vm_writev into process {}: its remote iovecs cannot be read: {e}",
                    call.args[0] as i32
                )),
            }
        }
        self.track_shm(tid, call, &mut problems);
        if call.nr == libc::SYS_clone3 && call.ret > 0 {
            if let Some(n) = clone3_set_tid_size(tid, call) {
                // Replay makes the clone again: the pid it names may be in
                // use there, or need a privilege replay does not have.
                problems.push(format!(
                    "clone3 with set_tid ({n} chosen id(s); the child got {}) is not recorded: replay cannot give the child the pid it chose",
                    call.ret
                ));
            }
        }
        // The table's outputs of a `process_vm_writev` are the caller's own
        // memory at the remote iovecs: another process's are none of its.
        let described = if foreign_vm_write {
            let mut args = call.args;
            args[4] = 0;
            Call { args, ..*call }
        } else {
            *call
        };
        let mut result = capture(
            tid,
            &described,
            restarted.as_ref(),
            output,
            &mut self.writer,
            &mut self.mapped,
            &mut problems,
        );
        // A 32-bit `open` or `mmap2` as the x86-64 call it means.
        let meant = syscalls::x86_64_call(call);
        self.track_shared(tid, &meant, &mut result, &mut problems)?;
        self.note_permission_group(tid, &meant);
        for p in problems {
            self.unsupported(tid, p)?;
        }
        Ok(result)
    }

    /// Keeps [`Session::shm_attached`] across a finished `shmat` or
    /// `shmdt`, and refuses a segment attached while it is attached
    /// already (in this process or another one of the recording, not by
    /// inheritance): replay maps each attach as memory of its own, so two
    /// would not see each other's writes. The 32-bit calls by their
    /// meaning ([`syscalls::shm_op`]): `shmat` and `shmdt` of their own
    /// numbers, and `ipc`'s `SHMAT`, whose address is the 32-bit word it
    /// stored, and `SHMDT`.
    fn track_shm(&mut self, tid: Tid, call: &Call, problems: &mut Vec<String>) {
        let pid = self.tasks[&tid].pid;
        match syscalls::shm_op(call.nr, &call.args) {
            Some(syscalls::ShmOp::Attach {
                shmid, stored_at, ..
            }) if call.ret >= 0 => {
                let at = match stored_at {
                    None => call.ret as u64,
                    Some(word) => {
                        let mut w = [0u8; 4];
                        if syscalls::MemReader::read(&rrtest_sys::RemoteMem::new(tid), word, &mut w)
                            .is_err()
                        {
                            // The outputs' description refuses it, named.
                            return;
                        }
                        u64::from(u32::from_le_bytes(w))
                    }
                };
                if let Some(&(p, addr)) = self.shm_attached.get(&shmid) {
                    if self.tasks.values().any(|t| t.pid == p) {
                        problems.push(format!(
                            "shmat: segment {shmid} attached again (it is at {addr:#x} in process {p}): two attaches of one segment are not recorded"
                        ));
                    }
                }
                self.shm_attached.insert(shmid, (pid, at));
            }
            Some(syscalls::ShmOp::Detach { addr: at }) if call.ret == 0 => {
                self.shm_attached
                    .retain(|_, &mut (p, addr)| (p, addr) != (pid, at));
            }
            _ => {}
        }
    }

    /// Keeps the output table of `tid`'s process (which descriptors write
    /// to our stdout or stderr: the hook buffers their writes with their
    /// bytes) exact across a finished traced syscall: a `dup`-style syscall
    /// lists or unlists its new descriptor, a `close` (the hook bails those
    /// of listed descriptors) or `close_range` unlists, and the table a
    /// vfork child shared is written again when the vfork returns.
    fn track_output_fds(&mut self, tid: Tid, call: &Call) -> Result<(), Error> {
        let Some(space) = self.spaces.get_mut(&self.tasks[&tid].pid) else {
            return Ok(());
        };
        // A 32-bit `dup`, `dup2` or `close` by its x86-64 number.
        let nr = syscalls::row_nr(call.nr);
        let dup = matches!(nr, libc::SYS_dup | libc::SYS_dup2 | libc::SYS_dup3)
            || (nr == libc::SYS_fcntl
                && matches!(call.args[1] as i32, libc::F_DUPFD | libc::F_DUPFD_CLOEXEC));
        let mut changed = space.output_fds_stale == Some(tid) && !space.borrowed;
        if changed {
            space.output_fds_stale = None;
        }
        if dup && call.ret >= 0 {
            let fd = call.ret as i32;
            changed |= space.set_output_fd(fd, self.outputs.stream(tid, fd));
        } else if nr == libc::SYS_close && call.ret != -(libc::EBADF as i64) {
            changed |= space.forget_output_fd(call.args[0] as i32);
        } else if nr == libc::SYS_close_range
            && call.ret == 0
            && call.args[2] & libc::CLOSE_RANGE_CLOEXEC as u64 == 0
        {
            changed |= space.forget_output_fds(call.args[0] as u32, call.args[1] as u32);
        }
        if changed {
            syscallbuf::update_output_table(tid, space)
                .map_err(ptrace_err("writing the output descriptors", tid))?;
        }
        Ok(())
    }

    /// Writes the `SyscallExit` of the call `tid` is stopped at the exit of
    /// (`entered`): its result and what it wrote. Returns the registers it
    /// leaves the thread with.
    pub(super) fn write_exit(&mut self, tid: Tid, entered: Entered) -> Result<Regs, Error> {
        let regs = self.finish_syscall_regs(tid, entered.forced_ret)?;
        let call = Call {
            nr: entered.nr,
            args: entered.args,
            ret: regs.rax as i64,
        };
        self.note_wait_exit(tid, &entered, call.ret);
        let result = self.capture(tid, &call, entered.output)?;
        self.emit(Event::SyscallExit {
            tid,
            nr: entered.nr,
            result,
        })?;
        Ok(regs)
    }

    /// Before an execution point of `tid` (its memory digest): writes the
    /// exits of the calls other threads of its process are stopped at the
    /// exit of, not scheduled yet. The kernel wrote what such a call wrote
    /// (a blocked `read`'s buffer, `rt_sigtimedwait`'s siginfo) as soon as
    /// the call ended, and the digest hashes it; replay writes it at the
    /// `SyscallExit`, which must therefore come before the point. Written
    /// when the thread was scheduled, it came after, and the trace did not
    /// verify (`blocked_wait_outputs`). An exit stop that came and was not
    /// taken yet is taken first. A thread whose tracer (ptrace emulated)
    /// may see the exit stop is left as it is. Returns whether it wrote
    /// one.
    pub(super) fn write_due_exits(&mut self, tid: Tid) -> Result<bool, Error> {
        let Some(pid) = self.tasks.get(&tid).map(|t| t.pid) else {
            return Ok(false);
        };
        // Calls that ended, their exit stops not taken yet (the loop takes
        // one stop at a time): taken now, as the loop would. (One call
        // when no stop waits at all, the usual case; a wait held at its
        // entry has no stop to come.)
        let any_waiting = ptrace::any_stop_waiting().unwrap_or(true);
        let ended: Vec<Tid> = self
            .tasks
            .iter()
            .filter(|(&t, task)| {
                any_waiting
                    && t != tid
                    && task.pid == pid
                    && task.traced.is_none()
                    && task.futex.is_none()
                    && matches!(task.state, State::InSyscall { split: true, .. })
            })
            .map(|(&t, _)| t)
            .filter(|&t| ptrace::syscall_stop_waiting(t).unwrap_or(false))
            .collect();
        for t in ended {
            debug!(
                tid = t,
                point_of = tid,
                "an ended call's exit stop taken before a point"
            );
            let ev = ptrace::wait_tid(t).map_err(ptrace_err("waitpid", t))?;
            self.last_stop = std::time::Instant::now();
            self.stats.schedule.stops += 1;
            self.handle(ev)?;
        }
        let due: Vec<(Tid, Entered)> = self
            .tasks
            .iter()
            .filter(|(&t, task)| t != tid && task.pid == pid && task.traced.is_none())
            .filter_map(|(&t, task)| match task.state {
                State::Ready(Pending::Exit(entered)) => Some((t, entered)),
                _ => None,
            })
            .collect();
        for &(t, entered) in &due {
            let regs = self.write_exit(t, entered)?;
            if let Some(task) = self.tasks.get_mut(&t) {
                task.state = State::Ready(Pending::ExitWritten(entered.nr, regs));
            }
        }
        Ok(!due.is_empty())
    }

    /// The registers at a syscall's exit, with the result the recorder
    /// imposes (`forced_ret`) written in.
    pub(super) fn finish_syscall_regs(
        &mut self,
        tid: Tid,
        forced_ret: Option<i64>,
    ) -> Result<Regs, Error> {
        // (Cleared when it leaves the stop: `resume`.)
        let skipped = self.tasks.get(&tid).and_then(|t| t.skip_at_entry);
        let mut regs = match skipped {
            // Still at its entry stop (nothing changed its registers since):
            // the kernel skips the call.
            Some(mut at_entry) => {
                at_entry.orig_rax = u64::MAX;
                at_entry
            }
            None => ptrace::getregs(tid).map_err(ptrace_err("PTRACE_GETREGS", tid))?,
        };
        if let Some(ret) = forced_ret {
            regs.rax = ret as u64;
            ptrace::setregs(tid, &regs).map_err(ptrace_err("PTRACE_SETREGS", tid))?;
        }
        Ok(regs)
    }
}

/// Whether the clone-family syscall `tid` entered makes a process with a
/// copy of the caller's memory (a fork), which the caller does not wait
/// on (not `CLONE_VFORK`).
fn copies_memory(tid: Tid, nr: i64, args: &[u64; 6]) -> bool {
    let (flags, _) = super::process::clone_flags(tid, nr, args);
    flags & (libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_THREAD) as u64 == 0
}

impl Session {
    /// Whether the syscall `tid` is stopped at the entry of (`rip` right
    /// after its instruction) was made by a `syscall` instruction the
    /// recorder wrote itself: a gate of the fixed page or a patched site's
    /// stub, in a process with a syscall buffer. Most traced syscalls of
    /// such a process are, and need no look at their instruction
    /// ([`crate::tracee::is_int80`], one `process_vm_readv` a stop).
    fn made_by_our_syscall(&self, tid: Tid, rip: u64) -> bool {
        self.tasks
            .get(&tid)
            .and_then(|t| self.spaces.get(&t.pid))
            .is_some_and(|space| space.our_syscall_before(rip))
    }
}

/// Whether the syscall `tid` is stopped at the entry of (`rip` right after
/// its instruction) was made with `int $0x80`, the 32-bit entry. A site we
/// cannot read is taken for a `syscall` instruction (the kernel just ran it).
/// The (address, length) ranges of the other process's memory that a
/// `process_vm_writev` (`call`, made by `tid`) wrote: its remote iovecs in
/// order, up to the `call.ret` bytes it wrote.
fn remote_ranges(tid: Tid, call: &Call) -> io::Result<Vec<(u64, u64)>> {
    let (iov, count) = (call.args[3], call.args[4].min(1024));
    let bytes = rrtest_sys::RemoteMem::new(tid).read_vec(iov, count as usize * 16)?;
    let mut left = call.ret as u64;
    let mut ranges = Vec::new();
    for pair in bytes.chunks_exact(16) {
        if left == 0 {
            break;
        }
        let word = |i: usize| u64::from_ne_bytes(pair[i..i + 8].try_into().expect("8 bytes"));
        let take = word(8).min(left);
        ranges.push((word(0), take));
        left -= take;
    }
    Ok(ranges)
}

/// The `set_tid_size` of a successful `clone3`'s `clone_args`, when it is
/// there (a struct of 80 bytes or more) and not 0.
fn clone3_set_tid_size(tid: Tid, call: &Call) -> Option<u64> {
    use rrtest_syscalls::clone_args;
    if call.args[1] < clone_args::SET_TID_SIZE + 8 {
        return None;
    }
    let mut word = [0u8; 8];
    rrtest_sys::RemoteMem::new(tid)
        .read_exact(call.args[0] + clone_args::SET_TID_SIZE, &mut word)
        .ok()?;
    Some(u64::from_le_bytes(word)).filter(|&n| n != 0)
}

/// A call the recorder cannot record and answers -ENOSYS at its entry, as
/// a kernel built without the feature answers (its name, for the warning;
/// docs/breadth.md): `io_uring_setup` (the kernel would read and write the
/// rings behind the recorder's back; libraries fall back to plain
/// syscalls), `userfaultfd` (another thread, or the kernel, would fill the
/// program's pages unseen) and `memfd_secret` (memory no other process,
/// the recorder included, can read). The x86-64 and the i386 numbers.
pub(super) fn absent_feature(nr: i64) -> Option<&'static str> {
    const I386_USERFAULTFD: i64 = 374;
    let i386 = syscalls::is_compat(nr).then_some(nr & 0xffff_ffff);
    match (nr, i386) {
        (libc::SYS_io_uring_setup, None) | (_, Some(425)) => Some("io_uring_setup"),
        (libc::SYS_userfaultfd, None) | (_, Some(I386_USERFAULTFD)) => Some("userfaultfd"),
        (libc::SYS_memfd_secret, None) | (_, Some(447)) => Some("memfd_secret"),
        _ => None,
    }
}
