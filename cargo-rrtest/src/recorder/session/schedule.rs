//! Who runs next and for how long: picking the next ready thread, resuming
//! it (writing the exit of the syscall it waited in), the timer's ticks
//! that preempt a thread running too long or stop it for a held-back
//! signal.
//!
//! Must not: deliver signals or read the syscall buffer's records itself
//! (it asks `signals`, `points` and `syscallbuf`), or write events other
//! than a resumed thread's `SyscallExit`.

use std::time::{Duration, Instant};

use tracing::debug;

use super::signals::SIGNAL_DELAY;
use super::{ptrace_err, Error, Pending, Session, State};
use crate::recorder::syscalls::Call;
use crate::sys::ptrace;
use crate::sys::signals as sys_signals;
use crate::trace::{Event, Tid};
use crate::tracee::syscallbuf;

/// After this many consecutive syscalls of one thread, the scheduler lets
/// another runnable thread run.
pub(super) const SLICE_SYSCALLS: u32 = 64;

/// How often the recorder checks on the running thread.
pub(super) const TICK: Duration = Duration::from_millis(1);

/// The tick while a lone thread runs with no signal held back for it:
/// nothing for a tick to do (no one to preempt it for, nothing to deliver),
/// so the recorder wakes less often on the program's CPU. Not stopped, as
/// a safety net.
const LONE_TICK: Duration = Duration::from_millis(10);

/// How long a thread may run user code without a syscall while another
/// thread waits, before the recorder preempts it at an execution point.
const TIMESLICE: Duration = Duration::from_millis(20);

/// How long a thread of a process with a syscall buffer may run while
/// another waits before the recorder asks its hook to bail (so it yields at
/// its next syscall, a cheap place; the buffer hides its syscalls).
const BAIL_SLICE: Duration = Duration::from_millis(5);

impl Session {
    /// Picks the next runnable thread, round robin, and resumes it.
    pub(super) fn schedule(&mut self) -> Result<(), Error> {
        for _ in 0..self.run_queue.len() {
            let Some(tid) = self.run_queue.pop_front() else {
                break;
            };
            if !self.tasks.contains_key(&tid) {
                continue;
            }
            self.run_queue.push_back(tid);
            if let State::Ready(pending) = self.tasks[&tid].state {
                self.resume(tid, pending)?;
                return Ok(());
            }
        }
        Ok(())
    }

    /// Makes `tid` the current thread, writing the exit of the syscall it is
    /// stopped in, if any.
    fn resume(&mut self, tid: Tid, pending: Pending) -> Result<(), Error> {
        self.current = Some(tid);
        self.slice_syscalls = 0;
        self.slice_started = Instant::now();
        let from_exit;
        if let Pending::Exit(entered) = pending {
            let regs = self.finish_syscall_regs(tid, entered.forced_ret)?;
            let call = Call {
                nr: entered.nr,
                args: entered.args,
                ret: regs.rax as i64,
            };
            let result = self.capture(tid, &call, entered.output)?;
            self.emit(Event::SyscallExit {
                tid,
                nr: entered.nr,
                result,
            })?;
            from_exit = Some(regs);
        } else {
            from_exit = ptrace::getregs(tid).ok();
        }
        let task = self.tasks.get_mut(&tid).expect("scheduled task exists");
        task.state = State::Running;
        task.resumed_at = from_exit;
        self.update_desched(tid, true)?;
        ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))
    }

    /// Whether a thread other than `tid` is ready to run (waits for it).
    pub(super) fn others_ready(&self, tid: Tid) -> bool {
        self.tasks
            .iter()
            .any(|(&t, task)| t != tid && matches!(task.state, State::Ready(_)))
    }

    /// Runs the timer at [`LONE_TICK`] while the recording has one thread
    /// and no signal is held back, at [`TICK`] otherwise.
    pub(super) fn update_tick(&mut self) {
        let lone = self.tasks.len() == 1
            && self
                .tasks
                .values()
                .all(|t| t.pending_signals.is_empty() && t.seeking.is_none());
        let want = if lone { LONE_TICK } else { TICK };
        if want != self.tick {
            self.tick = want;
            sys_signals::start_ticks(want);
        }
    }

    /// Checks on the running thread: preempts it, or stops it to deliver a
    /// held-back signal, when it has run user code for too long.
    pub(super) fn tick(&mut self) -> Result<(), Error> {
        let Some(tid) = self.current else {
            return Ok(());
        };
        let others_wait = self.others_ready(tid);
        let elapsed = self.slice_started.elapsed();
        let Some(task) = self.tasks.get_mut(&tid) else {
            return Ok(());
        };
        if task.state != State::Running || task.interrupt_requested {
            return Ok(());
        }
        if let Some(seek) = task.seeking {
            if Instant::now() >= seek.deadline {
                debug!(
                    tid,
                    "no return to the chosen address in time: interrupting where it is"
                );
                task.interrupt_requested = true;
                ptrace::interrupt(tid).map_err(ptrace_err("PTRACE_INTERRUPT", tid))?;
            }
            return Ok(());
        }
        let signal_due = task
            .pending_since
            .map(|t| t.elapsed() >= SIGNAL_DELAY)
            .unwrap_or(false);
        let buffered = self.spaces.contains_key(&task.pid);
        let slice = if buffered { BAIL_SLICE } else { TIMESLICE };
        // A run of quick buffered syscalls counts like one of traced ones
        // (`SLICE_SYSCALLS`): a thread polling through its buffer must not
        // keep the thread it waits for from running for a whole slice.
        let busy_polling = buffered
            && others_wait
            && task.bail_requested.is_none()
            && syscallbuf::committed_records(tid).is_ok_and(|n| n >= SLICE_SYSCALLS);
        if buffered && (others_wait || signal_due) && syscallbuf::blocked_in_untraced(tid) {
            // A buffered syscall blocked while others could run (or a signal
            // waits): unwind it (it is issued again, traced, and may block as
            // a split syscall). A `force_bail` cannot reach a thread that is
            // not calling the hook.
            debug!(tid, "blocked in a buffered syscall: unwinding it");
            task.interrupt_requested = true;
            return ptrace::interrupt(tid).map_err(ptrace_err("PTRACE_INTERRUPT", tid));
        }
        if signal_due || busy_polling || (others_wait && elapsed >= slice) {
            if buffered {
                // First ask the hook to bail: the thread then stops at its
                // next syscall, a cheaper place than an execution point.
                // Only a thread that makes none for a whole timeslice (or
                // keeps a signal waiting) is interrupted.
                match task.bail_requested {
                    None => {
                        task.bail_requested = Some(Instant::now());
                        return syscallbuf::set_force_bail(tid, true)
                            .map_err(ptrace_err("setting the buffer's force_bail", tid));
                    }
                    Some(since) if since.elapsed() < SIGNAL_DELAY => return Ok(()),
                    Some(_) if !signal_due && elapsed < TIMESLICE => return Ok(()),
                    Some(_) => {}
                }
            }
            debug!(tid, signal_due, ?elapsed, "interrupting the running thread");
            task.interrupt_requested = true;
            ptrace::interrupt(tid).map_err(ptrace_err("PTRACE_INTERRUPT", tid))?;
        }
        Ok(())
    }
}
