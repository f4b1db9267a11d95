//! The syscall buffer, recorder side: the preload library's handshake,
//! flushing a thread's buffered records into the trace, the output table,
//! `force_bail` requests at rdtsc traps, and desched events (unwinding a
//! buffered syscall that blocked while others wait).
//!
//! Must not: decide scheduling (it asks `others_ready`) or patch sites
//! (`patching`); the buffer's memory layout is `tracee::syscallbuf`'s.

use std::io;

use tracing::{debug, trace, warn};

use super::process::inherited_output_fds;
use super::{ptrace_err, Error, Session, State};
use crate::tracee::syscallbuf::{self, Space};
use rrtest_sys::ptrace::{self, Regs};
use rrtest_trace::{Event, Tid};

/// The recording's desched-event state (each thread's event is in its
/// `Task`).
pub(super) struct Desched {
    /// Use desched events (else every blocked buffered syscall is found by
    /// polling).
    enabled: bool,
    /// The kernel refused a desched event (the errno): poll from then on.
    refused: Option<i32>,
    /// Arming was wanted for the current thread when last looked at.
    was_wanted: bool,
}

impl Desched {
    pub(super) fn new(enabled: bool) -> Self {
        Desched {
            enabled,
            refused: None,
            was_wanted: false,
        }
    }
}

impl Session {
    /// Writes the syscalls `tid` made through its buffer that are not in
    /// the trace yet; `reset`: and empties the buffer.
    pub(super) fn flush(&mut self, tid: Tid, reset: bool) -> Result<(), Error> {
        let Some(task) = self.tasks.get(&tid) else {
            return Ok(());
        };
        if task.state == State::Unborn {
            return Ok(());
        }
        let pid = task.pid;
        let mut futex_call = false;
        let Some(space) = self.spaces.get_mut(&pid) else {
            return Ok(());
        };
        // The held waits' words come with the header, for the pick that
        // follows (`futex::ReadWords`).
        let words = &mut self.read_words;
        words.begin(
            self.tasks
                .values()
                .filter(|t| t.pid == pid)
                .filter_map(|t| t.futex.map(|p| p.uaddr())),
        );
        let (addrs, slots) = words.slots();
        // A buffered futex call (a wake) matters to the held waits (and to
        // the one being held: `futex_woken` looks for them).
        let watch_futex = !addrs.is_empty();
        let pending =
            syscallbuf::pending_records(tid, &mut space.flushed, &mut self.head, addrs, slots)
                .map_err(ptrace_err("reading the syscall buffer", tid))?;
        words.done(pid, pending.words_read);
        if pending.records > 0 {
            // The records go from the program's memory into the trace's
            // batch, with no copy in between: a full buffer is a megabyte.
            let mut failed = None;
            let mut rdtsc = 0;
            let count_rdtsc = space.rdtsc_sites;
            let pushed =
                self.writer.push_buffered(
                    tid,
                    pending.len,
                    |out| match syscallbuf::read_records(tid, &pending, out) {
                        Ok(()) => {
                            if count_rdtsc {
                                rdtsc = syscallbuf::synthetic_tsc_records(out);
                            }
                            if watch_futex {
                                futex_call =
                                    syscallbuf::has_record(out, rrtest_abi::buffered::nr::FUTEX);
                            }
                            true
                        }
                        Err(e) => {
                            failed = Some(e);
                            false
                        }
                    },
                )?;
            if !pushed {
                let e = failed.unwrap_or_else(|| io::Error::other("no records read"));
                return Err(ptrace_err("reading the syscall buffer", tid)(e));
            }
            trace!(
                tid,
                records = pending.records,
                bytes = pending.len,
                "buffered"
            );
            self.stats.buffered_syscalls += u64::from(pending.records);
            self.stats.rdtsc_buffered += rdtsc;
        }
        let space = self.spaces.get_mut(&pid).expect("looked up above");
        syscallbuf::mark_flushed(tid, &mut space.flushed, &pending, reset)
            .map_err(ptrace_err("emptying the syscall buffer", tid))?;
        if futex_call {
            self.futex_woken(pid);
        }
        Ok(())
    }

    /// After traced syscall `call` of `tid`: a `fanotify_init` that made a
    /// group of a permission class (`FAN_CLASS_CONTENT`,
    /// `FAN_CLASS_PRE_CONTENT`) makes every syscall of every process of
    /// the recording bail from each one's next resume on (`TRACE_ALL`):
    /// an `open` or a `read` its marks cover sleeps in the kernel until the
    /// group's listener answers, and a buffered one could be neither
    /// unwound nor switched away from (nix's `test_fanotify` stalled the
    /// recording so: its file thread's buffered `open` waited for the test
    /// thread, which the recorder never ran). For good: closing the group
    /// is not followed.
    pub(super) fn note_permission_group(&mut self, tid: Tid, call: &rrtest_syscalls::Call) {
        const FAN_CLASS_MASK: u64 = 0x0c;
        if call.nr == libc::SYS_fanotify_init
            && call.ret >= 0
            && call.args[0] & FAN_CLASS_MASK != 0
            && !self.trace_all_syscalls
        {
            debug!(
                tid,
                "a fanotify group of a permission class: every syscall is traced from now on"
            );
            self.trace_all_syscalls = true;
        }
    }

    /// Writes the output table the process of `tid` got since its last
    /// event (`Space::pending_table`), right after the event that changed
    /// it: replay writes it at the same point.
    pub(super) fn emit_output_table(&mut self, tid: Tid) -> Result<(), Error> {
        let Some(pid) = self.tasks.get(&tid).map(|t| t.pid) else {
            return Ok(());
        };
        let Some(table) = self
            .spaces
            .get_mut(&pid)
            .and_then(|s| s.pending_table.take())
        else {
            return Ok(());
        };
        self.emit_unflushed(Event::Buffered {
            tid,
            records: syscallbuf::output_table_record(&table),
        })
    }

    /// The preload library's handshake (`tid` is at the entry of
    /// `magic::INIT`): map and fill the buffer, answer, and record it.
    pub(super) fn buffer_init(&mut self, tid: Tid, pid: Tid, regs: &Regs) -> Result<(), Error> {
        let hook =
            syscallbuf::init(tid, regs).map_err(ptrace_err("the syscall-buffer handshake", tid))?;
        match hook {
            Some(h) => {
                debug!(tid, hook = h, "syscall buffer on");
                let images = self.vdso_images.remove(&pid).unwrap_or_default();
                let mut space = Space::new(h, &images);
                space.output_fds = inherited_output_fds(tid, &self.outputs);
                syscallbuf::update_output_table(tid, &mut space)
                    .map_err(ptrace_err("writing the output descriptors", tid))?;
                self.spaces.insert(pid, space);
                if self.shared.trace_writes {
                    // Before its first buffered write.
                    self.trace_file_writes(tid)?;
                }
            }
            None => warn!(
                tid,
                "the preload library speaks another protocol: no syscall buffer"
            ),
        }
        self.emit(Event::BufferInit {
            tid,
            hook_entry: hook.unwrap_or(0),
        })?;
        if hook.is_some() && pid == self.leader {
            self.patch_ahead(tid, pid, regs)?;
        }
        let task = self.tasks.get_mut(&tid).expect("task exists");
        task.state = State::Running;
        task.resumed_at = ptrace::getregs(tid).ok();
        ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))
    }

    /// At an rdtsc's trap: a `force_bail` this stop cleared was not served
    /// (the recorder wants the thread at a syscall stop, and a patched
    /// rdtsc site bails to a trap, not a syscall): set it again, with its
    /// first request's time, so that the tick still interrupts the thread
    /// when no syscall comes (a thread spinning on rdtsc).
    pub(super) fn keep_bail_request(&mut self, tid: Tid) -> Result<(), Error> {
        let Some(task) = self.tasks.get_mut(&tid) else {
            return Ok(());
        };
        if let Some(since) = task.bailed.take() {
            task.bail_requested = Some(since);
            syscallbuf::set_force_bail(tid, true)
                .map_err(ptrace_err("setting the buffer's force_bail", tid))?;
        }
        Ok(())
    }

    /// Whether arming `tid`'s desched event around its may-block buffered
    /// syscalls is worth its cost (two `ioctl`s, about 2 µs here) now:
    /// another thread waits to run, or a held-back signal waits for this
    /// one. Otherwise a blocked buffered syscall stalls nobody, and the
    /// ticks' polling finds it if that changes.
    fn desched_wanted(&self, tid: Tid) -> bool {
        self.tasks
            .get(&tid)
            .is_some_and(|t| !t.pending_signals.is_empty())
            || self.others_ready(tid)
    }

    /// The running thread's budget of buffered syscalls, for its hook to
    /// count (the locals' `bail_after`; 0: none): the slice's, under a
    /// policy whose slices end by counts, while the recording has other
    /// threads (that one of them may run where the budget is spent).
    /// Counted by a timer instead (the tick's `busy_polling`), where the
    /// slice ended would depend on when the timer looked.
    fn hook_budget(&self) -> u32 {
        match self.sched.hook_budget() {
            Some(budget) if self.tasks.len() > 1 => budget,
            _ => 0,
        }
    }

    /// Whether thread `tid` of process `pid`, at a traced syscall's entry,
    /// spent the budget its hook counts ([`Self::hook_budget`]): then its
    /// hook bailed this syscall, and the slice ends here, as the tick's
    /// `force_bail` would have ended it.
    pub(super) fn budget_spent(&self, tid: Tid, pid: Tid) -> bool {
        let Some(space) = self.spaces.get(&pid) else {
            return false;
        };
        let budget = space.controls_now.bail_after;
        budget != 0
            && syscallbuf::committed_records(tid).is_ok_and(|n| rrtest_abi::budget_spent(n, budget))
    }

    /// Keeps the running thread `tid` unwindable while others wait for it
    /// to block, and its `sched_yield` a stop only then (the locals'
    /// `TRACE_YIELD` flag), and gives its hook its budget
    /// ([`Self::hook_budget`]):
    /// - a thread of a process with a buffer that was once found blocked
    ///   in a buffered syscall while others waited gets a desched event at
    ///   its next stop (`stopped`: one that allows injecting syscalls).
    ///   Only then: the kernel's first per-thread perf event costs several
    ///   milliseconds (it turns its scheduler hooks on, which
    ///   [`rrtest_sys::perf::keep_hooks_on`] then keeps on), and most
    ///   threads of a test never block in a buffered syscall;
    /// - the locals' `desched_fd` names the thread's event while arming is
    ///   wanted ([`Self::desched_wanted`]), else `DESCHED_POLLED`;
    /// - when arming becomes wanted while the thread runs, it may already
    ///   sleep in an unarmed buffered syscall: it is interrupted and
    ///   unwound now (as a tick would, up to 1 ms later).
    pub(super) fn update_desched(&mut self, tid: Tid, stopped: bool) -> Result<(), Error> {
        let Some(task) = self.tasks.get(&tid) else {
            return Ok(());
        };
        let pid = task.pid;
        // A vfork child shares its parent's memory: it polls.
        if self.spaces.get(&pid).is_none_or(|s| s.borrowed) {
            return Ok(());
        }
        if stopped
            && self.desched.enabled
            && task.blocked_buffered
            && task.desched.is_none()
            && !task.desched_refused
            && self.desched.refused.is_none()
            // At the entry stop of a call it skips (a held futex wait let
            // go): an injected call would make that call again. Later.
            && task.skip_at_entry.is_none()
            // Unreadable (a thread killed under our feet): not now.
            && crate::tracee::quiet_for_injection(tid).unwrap_or(false)
        {
            self.open_desched(tid, pid)?;
        }
        let wanted = self.desched_wanted(tid);
        let was_wanted = std::mem::replace(&mut self.desched.was_wanted, wanted);
        let became_wanted = wanted && !was_wanted;
        let task = &self.tasks[&tid];
        let fd = match (&task.desched, wanted) {
            (Some(ev), true) => ev.fd,
            _ => rrtest_abi::DESCHED_POLLED,
        };
        let check_blocked = became_wanted
            && !stopped
            && task.state == State::Running
            && !task.interrupt_requested
            && task.seeking.is_none();
        // The same condition makes `sched_yield` bail: someone to yield to;
        // or a futex wait held in its process, which the yield may be
        // waiting for (its word is read at the yield's stop: `futex`).
        // (Looked for only when no thread is ready: this runs at every stop.)
        let yields_stop = wanted
            || self
                .tasks
                .values()
                .any(|t| t.pid == pid && t.futex.is_some());
        let mut flags = if yields_stop {
            rrtest_abi::locals_flags::TRACE_YIELD
        } else {
            0
        };
        if self.shared.trace_writes {
            flags |= rrtest_abi::locals_flags::TRACE_FILE_WRITES;
        }
        if self.trace_all_syscalls {
            flags |= rrtest_abi::locals_flags::TRACE_ALL;
        }
        // A spinner's wakes stop, so that it gives way to the thread it
        // woke (`syscall.rs`: `Entered::switch_after`).
        if self.wake_switching && self.sched.switches_at_spinner_wakes() && self.tasks[&tid].spun {
            flags |= rrtest_abi::locals_flags::TRACE_WAKE;
        }
        let controls = syscallbuf::Controls {
            desched_fd: fd,
            flags,
            bail_after: self.hook_budget(),
        };
        let space = self.spaces.get_mut(&pid).expect("checked above");
        if space.controls_now != controls {
            match syscallbuf::write_controls(tid, controls) {
                Ok(()) => space.controls_now = controls,
                // The thread runs on, but its address space is no longer
                // the one with the buffer: it is inside an `execve` past
                // the point of no return (the new image has no fixed page
                // until its exec stop), or its process is being torn down.
                // Its exec or exit stop comes next, and drops the space.
                Err(e) if address_space_gone(&e) => {
                    debug!(tid, error = %e, "the thread's buffer is gone: it execs or exits");
                    return Ok(());
                }
                Err(e) => return Err(ptrace_err("writing the desched descriptor", tid)(e)),
            }
        }
        if check_blocked && syscallbuf::blocked_in_untraced(tid) {
            debug!(
                tid,
                "others wait, and it sleeps in a buffered syscall: unwinding it"
            );
            self.tasks
                .get_mut(&tid)
                .expect("task exists")
                .interrupt_requested = true;
            ptrace::interrupt(tid).map_err(ptrace_err("PTRACE_INTERRUPT", tid))?;
        }
        Ok(())
    }

    /// Opens `tid`'s desched event (`tid` stopped, injectable).
    fn open_desched(&mut self, tid: Tid, pid: Tid) -> Result<(), Error> {
        rrtest_sys::perf::keep_hooks_on();
        let setup = syscallbuf::open_desched(tid, pid)
            .map_err(ptrace_err("opening a desched event", tid))?;
        let task = self.tasks.get_mut(&tid).expect("task exists");
        match setup {
            syscallbuf::DeschedSetup::Opened(ev) => {
                debug!(tid, fd = ev.fd, "desched event open");
                task.desched = Some(ev);
            }
            syscallbuf::DeschedSetup::Refused(errno)
                if matches!(errno, libc::EMFILE | libc::ENFILE | libc::ENOMEM) =>
            {
                debug!(tid, errno, "no desched event for this thread: it polls");
                task.desched_refused = true;
            }
            syscallbuf::DeschedSetup::Refused(errno) => {
                debug!(
                    errno,
                    "the kernel refuses desched events: blocked buffered syscalls are polled for"
                );
                self.desched.refused = Some(errno);
            }
        }
        Ok(())
    }

    /// Whether `signo` with `info`, stopping `tid`, is its desched event's.
    pub(super) fn is_desched_signal(
        &self,
        tid: Tid,
        signo: i32,
        info: &[u8; ptrace::SIGINFO_SIZE],
    ) -> bool {
        self.tasks
            .get(&tid)
            .and_then(|t| t.desched.as_ref())
            .is_some_and(|ev| ev.sent(signo, info))
    }

    /// `tid` stopped for its desched event's signal: it was switched out
    /// inside an armed buffered syscall. The signal is never delivered.
    /// The counter is disabled at once (each ptrace stop is a switch too,
    /// which would signal again); the hook disables it again, harmlessly.
    /// If the syscall blocked (the kernel interrupted it), it is unwound:
    /// the hook discards its record and the stub issues it again, traced,
    /// where it may block while other threads run. A switch that did not
    /// block (a preemption) leaves it be.
    pub(super) fn desched_signal(&mut self, tid: Tid, regs: &Regs) -> Result<(), Error> {
        self.stats.desched_signals += 1;
        if let Some(ev) = self.tasks.get(&tid).and_then(|t| t.desched.as_ref()) {
            if let Err(e) = rrtest_sys::perf::disable(&ev.ours) {
                debug!(tid, error = %e, "could not disable a desched event");
            }
        }
        if let Some(nr) = self.unwind_interrupted(tid, regs)? {
            debug!(tid, nr, "desched: unwound a blocked buffered syscall");
            self.stats.desched_events += 1;
        }
        ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))
    }

    /// If `tid`, stopped with `regs`, is inside a buffered syscall that
    /// the kernel interrupted (it blocked), unwinds it: the hook discards
    /// its record and the stub issues it again, traced, when the thread
    /// goes on. Counted and written as a `BufferAbort`; returns the
    /// syscall's number (None: not in one).
    pub(super) fn unwind_interrupted(
        &mut self,
        tid: Tid,
        regs: &Regs,
    ) -> Result<Option<i64>, Error> {
        if !syscallbuf::in_interrupted_untraced(regs) {
            return Ok(None);
        }
        let nr = regs.orig_rax as i64;
        syscallbuf::abort_untraced(tid, regs)
            .map_err(ptrace_err("unwinding a buffered syscall", tid))?;
        self.stats.aborted_records += 1;
        self.emit(Event::BufferAbort { tid, nr })?;
        Ok(Some(nr))
    }
}

/// Whether writing a thread's locals failed because its address space no
/// longer holds them: EIO (the fixed page is not mapped there: an exec
/// replaced the memory), or nothing written (the memory was released: the
/// process exits). ESRCH (the thread is gone) is the run loop's: it marks
/// the thread dying.
fn address_space_gone(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EIO) || e.kind() == io::ErrorKind::WriteZero
}
