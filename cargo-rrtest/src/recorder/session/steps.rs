//! Preemption after an exact number of instructions (the chaos policy's
//! short slices, [`super::schedule::SchedulePolicy::steps`]): the thread
//! is single-stepped that many instructions and preempted where it then
//! is, an execution point recorded as it stands (not moved to a cheaper
//! one: the point is the race window). Replay finds it like any other.
//!
//! Never inside the syscall-buffer code (DESIGN.md §5): a thread that
//! steps into it is let run instead (its untraced syscall could block on a
//! thread we hold), and one that starts there (after a stub's traced
//! syscall) is stepped out of it first, uncounted.
//!
//! Also [`Session::settle`]: before a chaos pick, waiting for the stops
//! that come without any thread running, so that the threads ready at a
//! decision do not depend on timing.
//!
//! Must not: decide how many instructions (the policy does) or handle a
//! stop other than a step's own (anything else goes to the session's
//! dispatch, and the stepping ends).

use tracing::trace;

use super::points::{blocks_trap, point_findable, reblock_trap, rep_string_end, Seek, COUNT_WALL};
use super::schedule::Steps;
use super::{jobctl, ptrace_err, Error, Pending, Session, State, Task};
use rrtest_sys::ptrace::{self, Regs, WaitEvent};
use rrtest_sys::RemoteMem;
use rrtest_trace::{Event, Tid};

/// The trap flag (rflags bit 8), set while a thread is single-stepped.
const TRAP_FLAG: u64 = 0x100;

/// The longest [`Session::settle`] waits for due stops.
const SETTLE_LIMIT: std::time::Duration = std::time::Duration::from_millis(50);

/// Steps taken inside the buffer code before giving up on a preemption.
const MAX_BUFFER_STEPS: u32 = 4096;

/// Steps taken, uncounted, in the system's code on the way to the
/// program's (no return address into it on the stack) before the thread
/// is let run instead.
const MAX_SYSTEM_STEPS: u32 = 2048;

impl Session {
    /// Runs `tid` (just made current, stopped) for `steps` instructions and
    /// preempts it there, if another thread is then ready.
    pub(super) fn run_steps(&mut self, tid: Tid, plan: Steps) -> Result<(), Error> {
        let mut left = plan.steps;
        let rest = |left: u32| Steps {
            steps: left.max(1),
            count: plan.count,
        };
        // The thread's registers as it stands: read once per step (each
        // step is a stop, and each read a syscall of ours).
        let mut regs = ptrace::getregs(tid).map_err(ptrace_err("PTRACE_GETREGS", tid))?;
        // Where the thread's last event left it: never its next point. A
        // point at the ip a thread resumes at is found by replay's counted
        // breakpoint one pass late (the resume skips the breakpoint there).
        let start_ip = regs.rip;
        // The mask stays as it is while stepping (the steps end at any
        // syscall or signal), but for what each step's trap does to it.
        let trap_blocked = blocks_trap(tid)?;
        let pid = self.tasks.get(&tid).map_or(tid, |t| t.pid);
        let mut sampled: Vec<u64> = Vec::new();
        let mut in_buffer_steps = 0;
        let mut was_in_buffer = self.in_buffer_code(tid, &regs);
        // Only the program's instructions count, and a cut never lands in
        // the system's code (`code`): a thread there runs at full speed
        // back to the program where its stack shows a return address into
        // it, or is stepped, uncounted, until it gets there.
        let mut system_steps = 0;
        let mut was_system = !was_in_buffer && self.code.is_system(pid, tid, regs.rip);
        if was_system {
            if let Some(back) = self.code.return_into_program(pid, tid, regs.rsp) {
                return self.run_to(tid, back, rest(left));
            }
        }
        loop {
            if left == 0 && !was_in_buffer && !was_system {
                let ip = regs.rip;
                if plan.count.is_none() {
                    if let Some(end) = rep_string_end(tid, ip) {
                        return self.cut_after_rep(tid, ip, end, Some(start_ip));
                    }
                }
                if (ip != start_ip || plan.count.is_some()) && point_findable(tid) {
                    break;
                }
                left = 1;
            }
            if was_in_buffer {
                in_buffer_steps += 1;
                if in_buffer_steps > MAX_BUFFER_STEPS {
                    return self.let_run(tid);
                }
            }
            if was_system {
                system_steps += 1;
                if system_steps > MAX_SYSTEM_STEPS {
                    trace!(tid, "long in the system's code: letting it run");
                    return self.let_run(tid);
                }
            }
            let code = next_code(tid, &regs);
            let leak = code.as_ref().and_then(leak_of);
            ptrace::singlestep(tid, 0).map_err(ptrace_err("PTRACE_SINGLESTEP", tid))?;
            match ptrace::wait_tid(tid).map_err(ptrace_err("waitpid", tid))? {
                // The program's own int3 (a debugger's breakpoint, written
                // by its emulated ptrace): its signal, not the step's trap.
                ev @ WaitEvent::Signal {
                    signo: libc::SIGTRAP,
                    ..
                } if code.is_some_and(|c| c[0] == INT3) => {
                    trace!(tid, left, "the program's int3 ended the steps");
                    return self.handle(ev);
                }
                ev @ WaitEvent::Signal {
                    signo: libc::SIGTRAP,
                    ..
                } => {
                    if trap_blocked {
                        reblock_trap(tid)?;
                    }
                    match leak {
                        Some(FlagLeak::Pushf) => self.clear_pushed_trap_flag(tid)?,
                        Some(FlagLeak::Syscall) => self.clear_trap_flag_in_r11(tid)?,
                        None => {}
                    }
                    if self.program_slot_hit(tid) {
                        // The step also hit a hardware breakpoint of the
                        // program's (a tracee's): its signal ends the steps.
                        trace!(
                            tid,
                            left,
                            "the program's hardware breakpoint ended the steps"
                        );
                        return self.handle(ev);
                    }
                }
                // A trapped rdtsc: emulated, which completes the step.
                WaitEvent::Signal {
                    signo: libc::SIGSEGV,
                    ..
                } if self.emulate_trapped_rdtsc(tid)? => {}
                // The thread's part in a group stop: held there
                // (`jobctl`), not taken for a late interrupt and stepped on.
                ev @ WaitEvent::Event {
                    event: libc::PTRACE_EVENT_STOP,
                    sig,
                    ..
                } if jobctl::is_stop_signal(sig)
                    && self.tasks.get(&tid).is_some_and(|t| t.traced.is_none()) =>
                {
                    trace!(tid, sig, left, "a group stop ended the steps");
                    return self.handle(ev);
                }
                ev if self.took_late_interrupt(tid, &ev) => {
                    regs = ptrace::getregs(tid).map_err(ptrace_err("PTRACE_GETREGS", tid))?;
                    continue;
                }
                // A syscall entered while stepping: the `syscall`
                // instruction copied rflags, trap flag included, into r11,
                // where the program can see it (and a clone's child
                // inherits it). Replay runs it without the flag.
                ev @ WaitEvent::Event {
                    event: libc::PTRACE_EVENT_SECCOMP,
                    ..
                } => {
                    self.clear_trap_flag_in_r11(tid)?;
                    trace!(tid, left, "a syscall interrupted the steps");
                    // If the thread goes on after it, so do the steps (a
                    // syscall the policy does not switch at is no end of a
                    // slice): else a thread past its last syscall would
                    // run to its end unpreempted.
                    self.tasks.get_mut(&tid).expect("task exists").steps_left = Some(rest(left));
                    return self.handle(ev);
                }
                // A syscall, a signal, an exit: the session handles it as
                // at any stop, and the thread goes on from there.
                ev => {
                    trace!(tid, ?ev, left, "a stop ended the steps");
                    return self.handle(ev);
                }
            }
            regs = ptrace::getregs(tid).map_err(ptrace_err("PTRACE_GETREGS", tid))?;
            let in_buffer = self.in_buffer_code(tid, &regs);
            if in_buffer && !was_in_buffer {
                return self.run_through_buffer(tid, rest(left));
            }
            was_in_buffer = in_buffer;
            if in_buffer {
                continue;
            }
            let system = self.code.is_system(pid, tid, regs.rip);
            if system && !was_system {
                // A call into the system's code: at full speed to its
                // return.
                if let Some(back) = self.code.return_into_program(pid, tid, regs.rsp) {
                    return self.run_to(tid, back, rest(left));
                }
            }
            was_system = system;
            if system {
                continue;
            }
            left = left.saturating_sub(1);
            if plan.count.is_some() && regs.rip != start_ip {
                sampled.push(regs.rip);
            }
        }
        if plan.count.is_some() {
            // No arrivals counted at a rep string instruction: resumed
            // between two iterations (after a step), the thread meets a
            // breakpoint there again, an arrival replay's search (which
            // runs the instruction unstepped, one pass) does not see.
            sampled.retain(|&ip| rep_string_end(tid, ip).is_none());
        }
        if let Some((pick, hits)) = plan.count.filter(|_| !sampled.is_empty()) {
            let target = sampled[pick as usize % sampled.len()];
            trace!(tid, target, hits, "counting arrivals");
            let task = self.tasks.get_mut(&tid).expect("task exists");
            task.seeking = Some(Seek::count(
                target,
                hits,
                super::schedule::cpu_time(tid),
                std::time::Instant::now() + COUNT_WALL,
            ));
            return self.step_then_continue(tid, target);
        }
        if let Some(end) = rep_string_end(tid, regs.rip) {
            return self.cut_after_rep(tid, regs.rip, end, Some(start_ip));
        }
        self.preempt_here(tid)
    }

    /// Preempts the current thread `tid`, stopped outside the buffer code,
    /// where it is, if another thread is ready; else lets it run.
    fn preempt_here(&mut self, tid: Tid) -> Result<(), Error> {
        if self.sched.settles() {
            self.settle()?;
            if self.current != Some(tid) {
                return Ok(());
            }
        }
        if !self.others_ready(tid) {
            // Another thread may have stopped meanwhile (its syscall's
            // exit, a new thread's first stop): take those stops first.
            self.take_waiting_stops()?;
            if self.current != Some(tid) {
                return Ok(());
            }
        }
        if !self.others_ready(tid) {
            return self.let_run(tid);
        }
        let regs = ptrace::getregs(tid).map_err(ptrace_err("PTRACE_GETREGS", tid))?;
        let point = crate::tracee::exec_point(tid, &regs)
            .map_err(ptrace_err("reading an execution point", tid))?;
        trace!(tid, ip = regs.rip, "preempted where chaos cut its slice");
        self.stats.async_events += 1;
        self.emit(Event::Preempt { tid, point })?;
        let task = self.tasks.get_mut(&tid).expect("task exists");
        task.set_ready(Pending::Nothing);
        task.resumed_at = None;
        self.current = None;
        Ok(())
    }

    /// Handles the stops of other threads that are already there, without
    /// waiting (the current thread is stopped: none of them is its).
    fn take_waiting_stops(&mut self) -> Result<(), Error> {
        while let Some(ev) = ptrace::wait_any_nohang().map_err(ptrace_err("waitpid", -1))? {
            self.handle(ev)?;
            for (tid, signo, info) in crate::tracee::take_stashed_signals() {
                if !self.is_desched_signal(tid, signo, &info) {
                    self.hold_back(tid, signo, info);
                }
            }
        }
        Ok(())
    }

    /// After a stepped `pushf`: the flags it pushed carry the trap flag,
    /// which the program would not have seen unstepped (nor in replay).
    pub(super) fn clear_pushed_trap_flag(&mut self, tid: Tid) -> Result<(), Error> {
        let regs = ptrace::getregs(tid).map_err(ptrace_err("PTRACE_GETREGS", tid))?;
        let mem = RemoteMem::new(tid);
        let mut low = [0u8; 2];
        mem.read_exact(regs.rsp, &mut low)
            .map_err(ptrace_err("reading pushed flags", tid))?;
        let flags = u16::from_le_bytes(low);
        if u64::from(flags) & TRAP_FLAG != 0 {
            let fixed = (flags & !(TRAP_FLAG as u16)).to_le_bytes();
            mem.write(regs.rsp, &fixed)
                .map_err(ptrace_err("writing pushed flags", tid))?;
        }
        Ok(())
    }

    /// After a stepped `syscall` (one the filter lets through untraced, or
    /// at the entry stop of a traced one): the instruction copied rflags,
    /// trap flag included, into r11, where the program can see it (and a
    /// clone's child inherits it); replay runs it without the flag.
    pub(super) fn clear_trap_flag_in_r11(&mut self, tid: Tid) -> Result<(), Error> {
        let mut regs = ptrace::getregs(tid).map_err(ptrace_err("PTRACE_GETREGS", tid))?;
        if regs.r11 & TRAP_FLAG != 0 {
            regs.r11 &= !TRAP_FLAG;
            ptrace::setregs(tid, &regs).map_err(ptrace_err("PTRACE_SETREGS", tid))?;
        }
        Ok(())
    }

    /// Waits (up to [`SETTLE_LIMIT`]) for the stops that are due while no
    /// thread runs the program's code (none, or the current one stopped
    /// where the recorder decides): a new thread's first stop, the exit of
    /// a split syscall that waits for no other thread (a `clone` that is
    /// not a vfork, or a syscall the policy switched at), and the exit of
    /// one that waited and is waiting no more: its thread is running in
    /// the kernel (woken by a thread that ran before this decision: a
    /// futex wake, a thread's exit that a join waits for, a write to a
    /// pipe it reads). Then which threads are ready at a decision does not
    /// depend on how soon the kernel ran the woken one.
    pub(super) fn settle(&mut self) -> Result<(), Error> {
        self.settle_where(|_, _| true)
    }

    /// [`Session::settle`] for the threads `which` picks only: the others'
    /// stops are taken if they come, not waited for (each thread waited
    /// for costs a look at its kernel state while it is due).
    pub(super) fn settle_where(&mut self, which: impl Fn(Tid, &Task) -> bool) -> Result<(), Error> {
        let current = self.current;
        let deadline = std::time::Instant::now() + SETTLE_LIMIT;
        loop {
            // Looked at before the queue is: a thread stopped ('t') then
            // has its stop in the queue (the kernel queues it as the thread
            // stops), so only one seen running may still be on its way.
            let due = self.tasks.iter().any(|(&tid, t)| {
                Some(tid) != current
                    && which(tid, t)
                    && match due_soon(tid, t.state) {
                        Due::Yes => true,
                        Due::IfRunning => crate::tracee::kernel_state(tid) == Some('R'),
                        Due::No => false,
                    }
            });
            let mut took = false;
            while let Some(ev) = queued_stop()? {
                self.handle_settling(ev)?;
                took = true;
                if self.current != current {
                    return Ok(());
                }
            }
            if took {
                continue;
            }
            if !due {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                trace!("settling: a due stop did not come in time");
                return Ok(());
            }
            if let Some(ev) = ptrace::wait_any_interruptible().map_err(ptrace_err("waitpid", -1))? {
                self.handle_settling(ev)?;
                if self.current != current {
                    return Ok(());
                }
            }
        }
    }

    /// Whether a thread other than the current one `tid` is ready, once
    /// the stops due are taken when the policy settles (see
    /// [`Session::settle`]): what a switch or a preemption of `tid` by the
    /// policy depends on.
    pub(super) fn others_ready_settled(&mut self, tid: Tid) -> Result<bool, Error> {
        if self.sched.settles() {
            self.settle()?;
        }
        Ok(self.others_ready(tid))
    }

    /// Handles a stop taken while settling, and the signals it stashed.
    fn handle_settling(&mut self, ev: WaitEvent) -> Result<(), Error> {
        self.handle(ev)?;
        for (tid, signo, info) in crate::tracee::take_stashed_signals() {
            if !self.is_desched_signal(tid, signo, &info) {
                self.hold_back(tid, signo, info);
            }
        }
        Ok(())
    }

    /// Whether `tid`, stopped with `regs`, is in its process's
    /// syscall-buffer code.
    fn in_buffer_code(&self, tid: Tid, regs: &Regs) -> bool {
        self.tasks
            .get(&tid)
            .and_then(|t| self.spaces.get(&t.pid))
            .is_some_and(|space| space.in_buffer_code(regs.rip, regs.rsp))
    }

    /// A stepped thread went into the buffer code (a patched site's stub):
    /// it runs at full speed through it (its untraced syscall could block
    /// on a thread we hold) to where the stub returns to the program, and
    /// the steps `left` go on from there ([`Seek::resume`]). Entered any
    /// other way, it runs on unstepped.
    fn run_through_buffer(&mut self, tid: Tid, left: Steps) -> Result<(), Error> {
        let regs = ptrace::getregs(tid).map_err(ptrace_err("PTRACE_GETREGS", tid))?;
        let back = self
            .tasks
            .get(&tid)
            .and_then(|t| self.spaces.get(&t.pid))
            .and_then(|space| space.stub_at(regs.rip))
            .map(|stub| stub.return_addr);
        let Some(target) = back else {
            trace!(tid, "stepped into the buffer code: letting it run");
            return self.let_run(tid);
        };
        trace!(
            tid,
            target,
            "stepped into a stub: stepping on at its return"
        );
        self.run_to(tid, target, left)
    }

    /// Lets `tid` run at full speed to `target` (a return address), where
    /// the steps `left` go on ([`Seek::resume`]).
    fn run_to(&mut self, tid: Tid, target: u64, left: Steps) -> Result<(), Error> {
        ptrace::exec_breakpoint(tid, Some(target))
            .map_err(ptrace_err("setting a breakpoint", tid))?;
        let seek = Seek::resume(target, left, super::schedule::cpu_time(tid));
        self.tasks.get_mut(&tid).expect("task exists").seeking =
            Some(seek.trap_blocked(blocks_trap(tid)?));
        self.let_run(tid)
    }

    /// The stepped thread runs on as usual (its slice from now).
    pub(super) fn let_run(&mut self, tid: Tid) -> Result<(), Error> {
        self.sched.restart_slice();
        ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))
    }
}

/// An instruction that lets the program see the trap flag of stepping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FlagLeak {
    /// `pushf`: the flags on the stack (the low 16 bits hold the flag
    /// whatever the operand size).
    Pushf,
    /// `syscall`: the flags in r11.
    Syscall,
}

/// Whether the instruction at the ip of `tid` (stopped with `regs`) leaks
/// the trap flag. Prefixes
/// other than operand size and REX are not expected before either.
pub(super) fn leaks_flags(tid: Tid, regs: &Regs) -> Option<FlagLeak> {
    next_code(tid, regs).as_ref().and_then(leak_of)
}

/// `int3`: executed while stepped, it traps as the program's own
/// breakpoint (`SI_KERNEL`), not as the step.
const INT3: u8 = 0xcc;

/// The first bytes of the instruction `tid` executes next (fewer may be
/// mapped: then none).
fn next_code(tid: Tid, regs: &Regs) -> Option<[u8; 4]> {
    let mut code = [0u8; 4];
    RemoteMem::new(tid).read_exact(regs.rip, &mut code).ok()?;
    Some(code)
}

/// [`leaks_flags`] of the instruction that starts with `code`.
fn leak_of(code: &[u8; 4]) -> Option<FlagLeak> {
    if let [0x0f, 0x05, ..] = code {
        return Some(FlagLeak::Syscall);
    }
    for &b in code {
        match b {
            0x66 | 0x40..=0x4f => {}
            0x9c => return Some(FlagLeak::Pushf),
            _ => return None,
        }
    }
    None
}

/// A stop already queued, if any (none either when no tracee is left: the
/// recording's last thread is gone).
fn queued_stop() -> Result<Option<WaitEvent>, Error> {
    match ptrace::wait_any_nohang() {
        Err(e) if e.raw_os_error() == Some(libc::ECHILD) => Ok(None),
        other => other.map_err(ptrace_err("waitpid", -1)),
    }
}

/// Whether a thread will stop by itself, with no other thread running
/// (see [`Session::settle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    Yes,
    /// If the kernel runs it (its /proc state is `R`): a syscall that may
    /// block, which then no longer waits.
    IfRunning,
    No,
}

/// Whether thread `tid`, in `state`, will stop soon by itself.
fn due_soon(tid: Tid, state: State) -> Due {
    const CLONE_VFORK: u64 = 0x4000;
    let due = |yes: bool| if yes { Due::Yes } else { Due::IfRunning };
    match state {
        State::Unborn => Due::Yes,
        State::InSyscall {
            entered,
            split: true,
        } => match entered.nr {
            libc::SYS_fork => Due::Yes,
            // The parent waits for its child's exec or exit.
            libc::SYS_vfork => Due::IfRunning,
            libc::SYS_clone => due(entered.args[0] & CLONE_VFORK == 0),
            libc::SYS_clone3 => {
                // `struct clone_args` starts with the flags.
                let mut flags = [0u8; 8];
                due(RemoteMem::new(tid)
                    .read_exact(entered.args[0], &mut flags)
                    .is_ok_and(|()| u64::from_le_bytes(flags) & CLONE_VFORK == 0))
            }
            nr => due(rrtest_syscalls::lookup(nr).is_some_and(|d| !d.may_block)),
        },
        _ => Due::No,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::session::Entered;

    fn in_syscall(nr: i64, arg0: u64, split: bool) -> State {
        State::InSyscall {
            entered: Entered {
                nr,
                args: [arg0, 0, 0, 0, 0, 0],
                forced_ret: None,
                output: None,
                ip: 0,
                switch_after: false,
            },
            split,
        }
    }

    #[test]
    fn due_stops_are_a_new_thread_a_call_that_does_not_wait_and_a_woken_one() {
        // (The tid is only read for clone3's flags.)
        let tid = std::process::id() as Tid;
        let due = |state| due_soon(tid, state);
        assert_eq!(due(State::Unborn), Due::Yes);
        // A split call that does not wait for others ends by itself.
        assert_eq!(due(in_syscall(libc::SYS_getpid, 0, true)), Due::Yes);
        assert_eq!(due(in_syscall(libc::SYS_fork, 0, true)), Due::Yes);
        let thread = (libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND) as u64;
        assert_eq!(due(in_syscall(libc::SYS_clone, thread, true)), Due::Yes);
        // One that waits: once the kernel runs its thread again.
        assert_eq!(due(in_syscall(libc::SYS_futex, 0, true)), Due::IfRunning);
        assert_eq!(due(in_syscall(libc::SYS_read, 0, true)), Due::IfRunning);
        assert_eq!(due(in_syscall(libc::SYS_vfork, 0, true)), Due::IfRunning);
        let vfork = (libc::CLONE_VM | libc::CLONE_VFORK) as u64;
        assert_eq!(
            due(in_syscall(libc::SYS_clone, vfork, true)),
            Due::IfRunning
        );
        // Not split (its thread is the current one), or not in the kernel.
        assert_eq!(due(in_syscall(libc::SYS_futex, 0, false)), Due::No);
        assert_eq!(due(State::Ready(Pending::Nothing)), Due::No);
        assert_eq!(due(State::Running), Due::No);
        assert_eq!(due(State::JobStopped), Due::No);
    }
}
