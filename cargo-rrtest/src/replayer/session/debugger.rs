//! The debugger engine's session side: the engine thread's loop ([`run`]),
//! and the stops *inside* an event that [`Session::resume_to_stop`] hands
//! here (a software breakpoint, a single step, a watchpoint, an interrupt).
//!
//! How a stop inside an event works: only the event's thread runs between
//! two events, always through `resume_to_stop`. When a debugger is attached
//! ([`Session::debug`]), that function resumes the thread through
//! [`Session::dbg_go`] (breakpoints written in, watchpoints in the debug
//! registers, `PTRACE_SINGLESTEP` for a step or to step over a breakpoint
//! at the ip) and shows every stop to [`Session::dbg_trap`] first. A stop
//! the debugger caused never reaches the event's logic and is never
//! delivered to the program: the engine reports it, answers requests
//! (registers, memory, breakpoint edits) on this same thread, and resumes
//! the thread as the next command says; the event then goes on as if the
//! thread had never stopped (gate queue bookkeeping and the execution-point
//! search happen around `resume_to_stop`, whose loop this stays inside). A
//! recorded `SIGTRAP` is not the debugger's (not at an inserted `int3`, not
//! a step or watch trap) and goes to the event as before.
//!
//! Breakpoints (`int3`) are in memory only while the thread runs: removed
//! at every stop before anything reads memory, so the program's view, the
//! execution-point digest, patch planning and the debugger's reads never
//! see them. Watchpoints use debug registers 1-3; register 0 stays the
//! execution-point search's ([`Session::point_breakpoint`]).
//!
//! A single step that enters a syscall-buffer stub (a patched syscall or
//! `rdtsc` site) runs on to the site's return address with a temporary
//! breakpoint: stepping over a patched site is one step, and no stop is
//! ever reported inside a stub, the hook or the gate. A step whose
//! instruction is a traced `syscall` (or a trapping `rdtsc`) ends at that
//! event's stop: the engine reports it once the event is replayed.
//!
//! It must not change what the replay does: only when threads stop, never
//! which events happen or what they write.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;

use super::debug_reverse::{Abandon, Act, Anchor, Goal, Here};

use super::{perr, Session};
use crate::replayer::debug::protocol::{
    Answer, FpRegs, Link, Request, Resume, Started, Stop, Watch,
};
use crate::replayer::debug::protocol::{Direction, WatchKind};
use crate::replayer::{Error, ReplayError, ReplayOptions, Thread};
use crate::tracee::syscallbuf::{self as buffer, FrameFix};
use rrtest_sys::ptrace::{self, WaitEvent};
use rrtest_sys::RemoteMem;
use rrtest_trace::Tid;

/// `si_code` of a `SIGTRAP` from `int3` (the kernel's `SI_KERNEL`).
const SI_KERNEL: i32 = 0x80;
/// `si_code` of a single-step trap.
const TRAP_TRACE: i32 = 2;
/// `si_code` of the trap at the exit of a single-stepped syscall.
const TRAP_BRKPT: i32 = 1;
/// EFLAGS.TF.
const TRAP_FLAG: u64 = 0x100;
/// The `int3` instruction.
const INT3: u8 = 0xcc;
/// Debug registers the watchpoints use (0 is the point search's).
const WATCH_SLOTS: [usize; 3] = [1, 2, 3];

/// The debugger's state inside a [`Session`].
pub(super) struct DebugCtl {
    link: Link,
    /// Software breakpoints, by address in the debugged process.
    breakpoints: BTreeSet<u64>,
    /// Watchpoints, at most one per slot of [`WATCH_SLOTS`].
    watches: Vec<Watch>,
    /// `int3`s in memory now: (real pid, address, original byte).
    inserted: Vec<(i32, u64, u8)>,
    /// The debugged process (recorded pid): the program's first, or the
    /// one `--process` names.
    process: Tid,
    /// How the last thread or process that exited ended (the debugged
    /// process's end, when it is not the program's first).
    pub(super) exited: Option<rrtest_trace::ExitStatus>,
    /// The debugged process (real pid; 0 before it exists).
    debugged: i32,
    /// The index of the first event after the debugged process exists
    /// (1 for the program's first): where reverse execution stops.
    pub(super) start_index: u64,
    /// The thread of the last stop.
    pub(super) current: Tid,
    /// A single step asked for this thread, not yet done.
    pub(super) step: Option<Tid>,
    /// The thread is single-stepped over the breakpoint at its ip (not a
    /// step of the user's: it goes on once the breakpoint is behind it).
    stepping_over: bool,
    /// The running thread was resumed by one single step of a step asked
    /// for (the user's, or a re-run's).
    stepping: bool,
    /// The watchpoint stop being reported is also the end of such a step
    /// (its instruction hit the watchpoint).
    watch_by_step: bool,
    /// A step entered a stub: run to this return address, then report.
    skip_to: Option<u64>,
    /// Single steps went through a stub's `pushf`/`popf`: the thread's
    /// flags may hold the trap flag (cleared at its next continue).
    flags_dirty: bool,
    /// A watchpoint hit (the hook copying a buffered syscall's output) or
    /// an interrupt inside buffer code: reported once single steps take
    /// the thread out.
    deferred: Option<Stop>,
    /// ... or to this one, the caller's, when the stub's displaced code
    /// ends with the wrapper's `ret`.
    skip_alt: Option<u64>,
    /// An interrupt deferred out of buffer code met an event's stop
    /// first: reported at the next boundary.
    interrupt_at_boundary: bool,
    /// The asked step ended at the stop of an event (a `syscall`): report
    /// it once the event is replayed.
    step_landed: Option<Tid>,
    /// DR7 as last written, per real thread.
    dr7: HashMap<i32, u64>,
    /// A command the engine's loop must carry out after unwinding the
    /// event in progress (a reverse resume, or the end of the session).
    pub(super) abandon: Option<Abandon>,
    /// What to replay again (reverse execution re-runs it).
    pub(super) opts: ReplayOptions,
    /// Where the last stop is (`debug_reverse.rs`).
    pub(super) here: Here,
    /// Internal breakpoints of a re-run (`debug_reverse.rs`), besides the
    /// user's.
    pub(super) probes: BTreeSet<u64>,
    /// A re-run's goal; `None` while the user drives.
    pub(super) goal: Option<Goal>,
    /// The last stop was the trap of our `int3` at this address.
    trapped_at: Option<u64>,
    /// The thread was single-stepped into a signal handler (the stop at
    /// the handler's first instruction is ours).
    entering_handler: bool,
    /// The thread (real id) single-stepped with a signal to deliver, whose
    /// next stop, at its handler's first instruction, changes the frame
    /// there as this says (`resume_to_stop`, [`Session::dbg_frame_at_stop`]).
    frame_fix_at_stop: Option<(i32, FrameFix)>,
    /// The thread whose blocked `SIGTRAP` was unblocked while it runs
    /// ([`DebugCtl::unblock_sigtrap`]).
    unblocked_trap: Option<i32>,
    /// Traps per anchor of the event in progress (`counted_in`): how
    /// positions are named across re-runs.
    counts: HashMap<Anchor, u64>,
    counted_in: u64,
}

/// What [`Session::serve`] returns: the next resume, or the end.
pub(super) enum Command {
    Forward(Resume),
    Reverse(Resume),
    Quit,
}

/// The engine thread: starts the replay, tells the [`crate::replayer::Debugger`]
/// it started (or why not), and serves its requests until it is dropped.
pub(crate) fn run(
    opts: ReplayOptions,
    process: Option<Tid>,
    link: Link,
    started: Sender<Result<Started, ReplayError>>,
) {
    let mut session = match Session::spawn(&opts) {
        Ok(s) => s,
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    };
    session.peek();
    let process = process.unwrap_or(session.leader);
    let exe = trace_exe(&opts).unwrap_or_default();
    session.debug = Some(Box::new(DebugCtl {
        link,
        breakpoints: BTreeSet::new(),
        watches: Vec::new(),
        inserted: Vec::new(),
        process,
        exited: None,
        debugged: 0,
        start_index: 1,
        current: 0,
        step: None,
        stepping_over: false,
        stepping: false,
        watch_by_step: false,
        skip_to: None,
        skip_alt: None,
        deferred: None,
        interrupt_at_boundary: false,
        flags_dirty: false,
        step_landed: None,
        dr7: HashMap::new(),
        abandon: None,
        opts,
        here: Here::Boundary(1),
        probes: BTreeSet::new(),
        goal: None,
        counts: HashMap::new(),
        counted_in: 0,
        trapped_at: None,
        entering_handler: false,
        frame_fix_at_stop: None,
        unblocked_trap: None,
    }));
    session.reset_debug_run();
    if let Err(e) = session.run_to_debugged() {
        let _ = started.send(Err(e));
        return;
    }
    let real_pid = session.ctl().debugged;
    if started.send(Ok(Started { real_pid, exe })).is_err() {
        return;
    }
    let mut ended = false;
    let mut failed = false;
    let mut pending = None;
    loop {
        let command = pending.take().unwrap_or_else(|| session.serve());
        let result = match command {
            Command::Quit => return,
            Command::Forward(_) if failed => Err(ended_error(&session, "the replay failed")),
            Command::Forward(_) if ended => Err(ended_error(&session, "the program exited")),
            Command::Reverse(_) if failed => Err(ended_error(&session, "the replay failed")),
            Command::Forward(how) => session.forward(Some(how)),
            Command::Reverse(how) => session.reverse(how),
        };
        match result {
            Ok(stop) => {
                ended = matches!(stop, Stop::Exited(_));
                if ended {
                    session.ctl().here = Here::End;
                }
                session.answer(Answer::Stopped(Ok(stop)));
            }
            Err(e) => match session.debug.as_mut().and_then(|c| c.abandon.take()) {
                Some(Abandon::Quit) => return,
                // Asked at a stop inside an event: answered by the re-run.
                Some(Abandon::Reverse(how)) => {
                    ended = false;
                    pending = Some(Command::Reverse(how));
                }
                Some(Abandon::GoalDone) | None => {
                    failed = true;
                    if session.debug.is_none() {
                        // A re-run that could not start: nothing to serve.
                        return;
                    }
                    session.answer(Answer::Stopped(Err(e)));
                }
            },
        }
    }
}

/// The trace's copy of the program the recording started with: what gdb
/// loads symbols from (the replay runs it under a temporary name, new at
/// every re-run).
fn trace_exe(opts: &ReplayOptions) -> Option<PathBuf> {
    let mut reader = rrtest_trace::TraceReader::open(&opts.trace_dir).ok()?;
    match reader.next_event().ok()?? {
        rrtest_trace::Event::Exec(e) => Some(reader.file_path(&e.exe_file)),
        _ => None,
    }
}

fn ended_error(session: &Session, why: &str) -> ReplayError {
    Error::Ended {
        index: session.index,
        why: why.into(),
    }
    .into()
}

impl Session {
    pub(super) fn ctl(&mut self) -> &mut DebugCtl {
        self.debug
            .as_mut()
            .expect("debugger state: set before the engine serves")
    }

    pub(super) fn answer(&mut self, a: Answer) {
        let _ = self.ctl().link.answers.send(a);
    }

    /// Answers requests at a stop until the next resume (or the end).
    pub(super) fn serve(&mut self) -> Command {
        self.watchdog.busy.store(false, Ordering::SeqCst);
        let command = loop {
            let Ok(req) = self.ctl().link.requests.recv() else {
                break Command::Quit;
            };
            let answer = match req {
                Request::Resume(how, Direction::Forward) => break Command::Forward(how),
                Request::Resume(how, Direction::Reverse) => break Command::Reverse(how),
                Request::Threads => Answer::Threads(self.debug_threads()),
                Request::Current => Answer::Current(self.ctl().current),
                Request::RealPid => Answer::Current(self.ctl().debugged),
                Request::Registers(tid) => Answer::Registers(self.shown_registers(tid)),
                Request::FpRegisters(tid) => {
                    Answer::FpRegisters(self.thread_real(tid).and_then(fp_registers).map(Box::new))
                }
                Request::Read { tid, addr, len } => {
                    Answer::Memory(self.thread_real(tid).and_then(|real| {
                        let mut bytes = RemoteMem::new(real)
                            .read_vec(addr, len)
                            .map_err(perr("reading the program's memory", real))?;
                        // Patched sites read as the original code.
                        let pid = self
                            .tasks
                            .values()
                            .find(|t| t.real == real)
                            .map(|t| t.real_pid);
                        if let Some(space) = pid.and_then(|p| self.spaces.get(&p)) {
                            space.unpatch(addr, &mut bytes);
                        }
                        Ok(bytes)
                    }))
                }
                Request::SetBreakpoint(addr) => {
                    self.ctl().breakpoints.insert(addr);
                    Answer::Done(Ok(()))
                }
                Request::RemoveBreakpoint(addr) => {
                    Answer::Done(if self.ctl().breakpoints.remove(&addr) {
                        Ok(())
                    } else {
                        Err(bad_request(format!("no breakpoint at {addr:#x}")))
                    })
                }
                Request::SetWatchpoint(w) => Answer::Done(self.ctl().add_watch(w)),
                Request::RemoveWatchpoint(w) => {
                    let ctl = self.ctl();
                    let before = ctl.watches.len();
                    ctl.watches.retain(|x| *x != w);
                    Answer::Done(if ctl.watches.len() < before {
                        Ok(())
                    } else {
                        Err(bad_request(format!(
                            "no {:?} watchpoint of {} bytes at {:#x}",
                            w.kind, w.len, w.addr
                        )))
                    })
                }
            };
            self.answer(answer);
        };
        self.watchdog.busy.store(true, Ordering::SeqCst);
        command
    }

    /// The live threads, stopped, by recorded id.
    fn debug_threads(&self) -> Vec<Thread> {
        let mut out: Vec<Thread> = self
            .tasks
            .iter()
            .filter(|(_, t)| {
                Some(t.real_pid) == self.debug.as_ref().map(|c| c.debugged)
                    && super::handle::is_stopped(t.state)
                    && super::handle::in_trace_stop(t.real)
            })
            .map(|(&recorded, t)| Thread {
                recorded,
                real: t.real,
                real_pid: t.real_pid,
            })
            .collect();
        out.sort_by_key(|t| t.recorded);
        out
    }

    /// The registers of `tid` as the debugger shows them: a thread stopped
    /// in a syscall-buffer stub at a point equivalent to one of the
    /// original code (its traced `syscall`, displaced code, the jump back;
    /// the stack is the original one there) is shown at that original
    /// address, so that backtraces and `info threads` show the program's
    /// frames, never a stub. (A thread stopped only ever stops there
    /// between events: steps never end in a stub.)
    fn shown_registers(&self, tid: Tid) -> Result<rrtest_sys::ptrace::Regs, ReplayError> {
        let real = self.thread_real(tid)?;
        let mut regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
        let space = self
            .tasks
            .get(&tid)
            .and_then(|t| self.spaces.get(&t.real_pid));
        if let Some(stub) = space.and_then(|s| s.stub_at(regs.rip)) {
            if let rrtest_syscalls::patch::StubIp::Original(orig) = stub.stub_to_original(regs.rip)
            {
                regs.rip = orig;
            }
        }
        Ok(regs)
    }

    fn thread_real(&self, tid: Tid) -> Result<i32, ReplayError> {
        let threads = self.debug_threads();
        match threads.iter().find(|t| t.recorded == tid) {
            Some(t) => Ok(t.real),
            None => Err(Error::NoSuchThread {
                tid,
                live: threads.iter().map(|t| t.recorded).collect(),
            }
            .into()),
        }
    }

    /// Replays forward from a stop between events until the next stop
    /// (`how`: the user's resume; `None` in a re-run, which its goal drives).
    pub(super) fn forward(&mut self, how: Option<Resume>) -> Result<Stop, ReplayError> {
        if let Some(how) = how {
            self.ctl().set_resume(how);
        }
        loop {
            if self.ctl().goal.is_some() && self.take_interrupt() {
                // Ctrl-C during a reverse resume: the re-run stops here,
                // an earlier position than the one it started from.
                self.drop_goal();
                let tid = self.ctl().current;
                self.ctl().here = Here::Boundary(self.index);
                return Ok(Stop::Interrupted { tid });
            }
            if self.ctl().goal.is_some() {
                match self.goal_at_boundary()? {
                    Act::Resume => {}
                    Act::Serve(stop) => return Ok(stop),
                    Act::Abandon => return Err(self.abandon(Abandon::GoalDone)),
                }
            } else if self.take_interrupt() {
                let tid = self.ctl().current;
                self.ctl().here = Here::Boundary(self.index);
                return Ok(Stop::Interrupted { tid });
            }
            let signal = self.upcoming_signal();
            let done = self.replay_next();
            self.peek();
            if let Some(status) = done? {
                return Ok(Stop::Exited(status));
            }
            self.sync_debugged();
            if self.debugged_ended() {
                let status = self
                    .ctl()
                    .exited
                    .unwrap_or(rrtest_trace::ExitStatus::Exited(0));
                return Ok(Stop::Exited(status));
            }
            if let Some((tid, signo)) = signal.filter(|&(tid, signo)| self.signal_stops(tid, signo))
            {
                // A recorded signal is about to be delivered to a thread of
                // the debugged process: gdb decides whether it stops
                // (`handle`); the next resume delivers it, as recorded.
                let index = self.index;
                let ctl = self.ctl();
                ctl.step = None;
                ctl.step_landed = None;
                ctl.current = tid;
                ctl.here = Here::Boundary(index);
                return Ok(Stop::Signal { tid, signo });
            }
            let Some(tid) = self.ctl().step_landed.take() else {
                continue;
            };
            // A step into the thread's exit: no stop to show (the end,
            // or other threads, come next).
            if !self
                .tasks
                .get(&tid)
                .is_some_and(|t| super::handle::is_stopped(t.state))
            {
                self.ctl().step = None;
                continue;
            }
            // The event may have moved the thread into a stub (a syscall
            // site patched there): the step ends at the site's return.
            if self.step_lands_in_stub(tid)? {
                continue;
            }
            if self.ctl().goal.is_some() {
                match self.goal_step(tid)? {
                    Act::Resume => continue,
                    Act::Serve(stop) => return Ok(stop),
                    Act::Abandon => return Err(self.abandon(Abandon::GoalDone)),
                }
            }
            let index = self.index;
            let ctl = self.ctl();
            ctl.step = None;
            ctl.current = tid;
            ctl.here = Here::Boundary(index);
            return Ok(Stop::Stepped { tid });
        }
    }

    /// Replays (nothing armed: the process is not there yet) until the
    /// debugged process exists; it stops at its first instruction. For
    /// the program's first process, at once.
    pub(super) fn run_to_debugged(&mut self) -> Result<(), ReplayError> {
        let process = self.ctl().process;
        while !self.tasks.contains_key(&process) {
            let done = self.replay_next();
            self.peek();
            if done?.is_some() {
                return Err(Error::Debugger(format!(
                    "the recording has no process {process} (the replay ended without it)"
                ))
                .into());
            }
        }
        let pid = self.tasks.get(&process).map_or(0, |t| t.real_pid);
        let index = self.index;
        let ctl = self.ctl();
        ctl.debugged = pid;
        ctl.current = process;
        ctl.here = Here::Boundary(index);
        ctl.start_index = index;
        Ok(())
    }

    /// In a re-run, the debugged process (not the program's first) gets
    /// its real pid once it exists: from then on its breakpoints and
    /// watchpoints are armed, as in the run the positions were named in.
    fn sync_debugged(&mut self) {
        let ctl = self.ctl();
        if ctl.debugged != 0 {
            return;
        }
        let process = ctl.process;
        if let Some(pid) = self.tasks.get(&process).map(|t| t.real_pid) {
            self.ctl().debugged = pid;
        }
    }

    /// Whether the debugged process, not the program's first, has just
    /// ended (its last thread exited): the end of the session's program.
    fn debugged_ended(&self) -> bool {
        let Some(ctl) = self.debug.as_ref() else {
            return false;
        };
        ctl.process != self.leader
            && ctl.debugged != 0
            && !self.tasks.values().any(|t| t.real_pid == ctl.debugged)
    }

    /// Takes the interrupt asked for (Ctrl-C), if any.
    fn take_interrupt(&mut self) -> bool {
        let ctl = self.ctl();
        std::mem::take(&mut ctl.interrupt_at_boundary)
            | ctl.link.shared.interrupt.swap(false, Ordering::SeqCst)
    }

    /// Ends the re-run in progress: the user drives from its next stop.
    pub(super) fn drop_goal(&mut self) {
        let ctl = self.ctl();
        ctl.goal = None;
        ctl.probes.clear();
        ctl.step = None;
        ctl.skip_to = None;
        ctl.skip_alt = None;
    }

    /// The thread and signal of the next event when it is a signal's
    /// delivery (not the recorder's final `SIGKILL`).
    fn upcoming_signal(&self) -> Option<(Tid, i32)> {
        match self.upcoming() {
            Some(rrtest_trace::Event::Signal(s)) if s.signo != libc::SIGKILL => {
                Some((s.tid, s.signo))
            }
            _ => None,
        }
    }

    /// Whether the delivery of `signo` to `tid`, just replayed up to its
    /// delivery, is a stop to report: the user drives (not a re-run), and
    /// the thread is the debugged process's, waiting to be given it.
    fn signal_stops(&self, tid: Tid, signo: i32) -> bool {
        let Some(ctl) = self.debug.as_ref() else {
            return false;
        };
        ctl.goal.is_none()
            && self.tasks.get(&tid).is_some_and(|t| {
                t.real_pid == ctl.debugged && t.state == super::State::Idle { deliver: signo }
            })
    }

    /// A fresh run's debugger state: the leader is current and debugged,
    /// nothing in memory or debug registers yet.
    pub(super) fn reset_debug_run(&mut self) {
        let process = self.ctl().process;
        let pid = self.tasks.get(&process).map_or(0, |t| t.real_pid);
        let index = self.index;
        let ctl = self.ctl();
        ctl.debugged = pid;
        ctl.current = process;
        ctl.exited = None;
        ctl.inserted.clear();
        ctl.dr7.clear();
        ctl.step = None;
        ctl.stepping_over = false;
        ctl.stepping = false;
        ctl.watch_by_step = false;
        ctl.skip_to = None;
        ctl.skip_alt = None;
        ctl.deferred = None;
        ctl.interrupt_at_boundary = false;
        ctl.flags_dirty = false;
        ctl.step_landed = None;
        ctl.counts.clear();
        ctl.counted_in = 0;
        ctl.trapped_at = None;
        ctl.unblocked_trap = None;
        ctl.entering_handler = false;
        ctl.frame_fix_at_stop = None;
        ctl.abandon = None;
        ctl.here = Here::Boundary(index);
    }

    /// Whether thread `tid`, whose step ended at an event, is in a stub or
    /// other buffer code now; then its step goes on to the patched site's
    /// return (or, outside a stub, on by single steps).
    fn step_lands_in_stub(&mut self, tid: Tid) -> Result<bool, ReplayError> {
        let Some(task) = self.tasks.get(&tid) else {
            return Ok(false);
        };
        let (real, real_pid) = (task.real, task.real_pid);
        let Some(space) = self.spaces.get(&real_pid) else {
            return Ok(false);
        };
        let Ok(regs) = ptrace::getregs(real) else {
            return Ok(false);
        };
        let exits = space
            .stub_at(regs.rip)
            .map(|s| stub_exits(s, real, regs.rsp));
        if exits.is_none() && !space.in_buffer_code(regs.rip, regs.rsp) {
            return Ok(false);
        }
        let ctl = self.ctl();
        ctl.skip_to = exits.map(|e| e.0);
        ctl.skip_alt = exits.and_then(|e| e.1);
        ctl.step = Some(tid);
        Ok(true)
    }

    /// Unwinds the event in progress: the engine's loop does `why`.
    pub(super) fn abandon(&mut self, why: Abandon) -> ReplayError {
        self.ctl().abandon = Some(why);
        ended_error(self, "the debugger re-runs the replay")
    }

    /// Resumes thread `tid` (real `real`, of process `real_pid`), stopped in
    /// `resume_to_stop`, as the debugger's state says: breakpoints written
    /// in, watchpoints armed, single-stepped for a step of the user's or
    /// over a breakpoint at its ip, `deliver` delivered (its frame changed
    /// as `fix` says).
    pub(super) fn dbg_go(
        &mut self,
        tid: Tid,
        real: i32,
        real_pid: i32,
        deliver: i32,
        fix: FrameFix,
    ) -> Result<(), ReplayError> {
        // Nothing armed, nothing to deliver: a plain resume (what a
        // continue to the end costs over a plain replay).
        let ctl = self.ctl();
        let quiet = deliver == 0
            && ctl.breakpoints.is_empty()
            && ctl.probes.is_empty()
            && ctl.watches.is_empty()
            && ctl.step.is_none()
            && ctl.skip_to.is_none()
            && ctl.deferred.is_none()
            && !ctl.flags_dirty
            && ctl
                .dr7
                .get(&real)
                .is_none_or(|d| d & !ptrace::dr7_slot_mask(0) == 0);
        ctl.stepping = false;
        if quiet {
            ctl.stepping_over = false;
            ctl.note_running(real_pid, real);
            ptrace::cont(real, 0).map_err(perr("PTRACE_CONT", real))?;
            return Ok(());
        }
        let space_has_stub = {
            let regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
            (
                regs,
                self.spaces
                    .get(&real_pid)
                    .is_some_and(|s| s.stub_at(regs.rip).is_some()),
            )
        };
        let (regs, in_stub) = space_has_stub;
        let space = self.spaces.get(&real_pid);
        let frame_at_stop = (deliver != 0
            && buffer::frame_needs_fix(real, regs.rip, deliver, space, fix))
        .then_some((real, fix));
        // Addresses strictly inside a patched syscall region hold the jump
        // to the stub: an `int3` there would break it, and the original
        // instruction there never runs. Its copy in the stub does: the
        // breakpoint goes there (none when no copy is equivalent).
        let moved: Vec<(u64, Option<u64>)> = match (self.spaces.get(&real_pid), self.debug.as_ref())
        {
            (Some(space), Some(ctl)) => ctl
                .breakpoints
                .iter()
                .chain(ctl.probes.iter())
                .copied()
                .filter(|&a| inside_patched_region(space, a))
                .map(|a| (a, space.inside_patched(a)))
                .collect(),
            _ => Vec::new(),
        };
        let key = self.breakpoint_key(real_pid, regs.rip);
        let dog = std::sync::Arc::clone(&self.watchdog);
        let ctl = self.ctl();
        let ours = real_pid == ctl.debugged;
        // An `int3` of ours at the ip is stepped over, or the thread would
        // trap there again at once. In a re-run, only one that just
        // trapped: a thread that stopped there otherwise (a step, a
        // watchpoint) traps on it first, so that every pass through an
        // anchor counts, however the thread arrived (`debug_reverse.rs`).
        let at_int3 = ctl.breakpoints.contains(&key) || ctl.probes.contains(&key);
        let over = ours && at_int3 && (ctl.goal.is_none() || ctl.trapped_at == Some(key));
        let user_step = ctl.step == Some(tid) && ctl.skip_to.is_none();
        if ours {
            ctl.insert_breakpoints(real, real_pid, over.then_some(key), &moved)?;
            ctl.arm_watches(real)?;
        }
        ctl.stepping_over = over && !user_step && ctl.deferred.is_none();
        if ours && (user_step || over || !ctl.inserted.is_empty() || !ctl.watches.is_empty()) {
            ctl.unblock_sigtrap(real);
        }
        ctl.note_running(real_pid, real);
        let armed = user_step || over || !ctl.inserted.is_empty() || !ctl.watches.is_empty();
        if deliver != 0 && ours && armed && !in_stub {
            // Into the handler first, one stop: its frame blocks signals
            // (`SIGTRAP` among them, in a `SIGTRAP` handler) that the
            // next resume unblocks while traps are armed.
            ctl.stepping_over = false;
            ctl.entering_handler = true;
            ctl.frame_fix_at_stop = frame_at_stop;
            ptrace::singlestep(real, deliver).map_err(perr("PTRACE_SINGLESTEP", real))?;
        } else if user_step || over || ctl.deferred.is_some() {
            ctl.stepping = user_step;
            ctl.frame_fix_at_stop = frame_at_stop;
            // A reverse step's counting re-run may single-step one event
            // for minutes: progress, not a stall.
            dog.steps.fetch_add(1, Ordering::Relaxed);
            ptrace::singlestep(real, deliver).map_err(perr("PTRACE_SINGLESTEP", real))?;
        } else {
            let mut regs = regs;
            if std::mem::take(&mut ctl.flags_dirty) && regs.eflags & TRAP_FLAG != 0 {
                // Single steps through a stub's `pushf`/`popf` (a deferred
                // watchpoint) leave the trap flag set: clear it, or the
                // thread traps after every instruction.
                regs.eflags &= !TRAP_FLAG;
                ptrace::setregs(real, &regs).map_err(perr("PTRACE_SETREGS", real))?;
            }
            let space = self.spaces.get(&real_pid);
            let fixed = buffer::deliver_signal(real, &regs, deliver, space, fix)
                .map_err(perr("delivering a signal", real))?;
            if fixed {
                self.frame_fixed(tid, fix);
            }
        }
        Ok(())
    }

    /// A stop of `real` (`ev`) that ends a single step with a signal to
    /// deliver ([`Session::dbg_go`]): at the handler's first instruction,
    /// the frame is changed as the delivery's fix says.
    pub(super) fn dbg_frame_at_stop(
        &mut self,
        tid: Tid,
        real: i32,
        real_pid: i32,
        ev: &WaitEvent,
    ) -> Result<(), ReplayError> {
        let Some((at, fix)) = self.ctl().frame_fix_at_stop.take() else {
            return Ok(());
        };
        let into_handler = matches!(
            ev,
            WaitEvent::Signal {
                signo: libc::SIGTRAP,
                ..
            }
        );
        if at != real || !into_handler {
            return Ok(());
        }
        let regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
        buffer::fix_frame(real, &regs, self.spaces.get(&real_pid), fix)
            .map_err(perr("changing a signal frame", real))?;
        self.frame_fixed(tid, fix);
        Ok(())
    }

    /// Looks at a stop of `tid` in `resume_to_stop` first: a stop the
    /// debugger caused is handled here (reported, and the thread resumed
    /// as the next command says) and `true` returned; any other stop is
    /// the event's (`false`), with the breakpoints out of memory.
    pub(super) fn dbg_trap(
        &mut self,
        tid: Tid,
        real: i32,
        real_pid: i32,
        ev: &WaitEvent,
    ) -> Result<bool, ReplayError> {
        self.ctl().reblock_sigtrap(real);
        let ctl = self.ctl();
        ctl.link.shared.running.store(0, Ordering::SeqCst);
        ctl.trapped_at = None;
        let stop = match *ev {
            WaitEvent::Signal {
                signo: libc::SIGSTOP,
                ..
            } if self.ctl().link.shared.stops_sent.load(Ordering::SeqCst) > 0 => {
                let shared = &self.ctl().link.shared;
                shared.stops_sent.fetch_sub(1, Ordering::SeqCst);
                if !shared.interrupt.swap(false, Ordering::SeqCst) {
                    None
                } else if real_pid != self.ctl().debugged {
                    // Another process's thread: gdb does not know it. The
                    // interrupt is reported at the next boundary.
                    self.ctl().interrupt_at_boundary = true;
                    None
                } else if self.in_buffer_code(real, real_pid)? {
                    // Inside the syscall buffer's code (the hook, the
                    // gate, a stub on the alternate stack): gdb must not
                    // see it. Single steps take the thread out, to the
                    // original code, where the interrupt is reported.
                    let ctl = self.ctl();
                    ctl.deferred = Some(Stop::Interrupted { tid });
                    ctl.stepping_over = false;
                    None
                } else {
                    Some(Stop::Interrupted { tid })
                }
            }
            WaitEvent::Signal {
                signo: libc::SIGTRAP,
                ..
            } => match self.classify_trap(tid, real, real_pid)? {
                Trap::Report(stop) => Some(stop),
                Trap::Resume => None,
                Trap::NotOurs => {
                    self.ctl().lift_breakpoints();
                    return Ok(false);
                }
            },
            _ => {
                let ctl = self.ctl();
                ctl.entering_handler = false;
                ctl.lift_breakpoints();
                if let Some(Stop::Interrupted { .. }) = ctl.deferred {
                    // Stepping out of buffer code reached an event's stop
                    // (a traced syscall): the interrupt is reported at the
                    // next boundary instead, where no thread shows a stub.
                    ctl.deferred = None;
                    ctl.interrupt_at_boundary = true;
                }
                if ctl.step == Some(tid) && ctl.skip_to.is_none() && !ctl.stepping_over {
                    // A step into a syscall (or a trapping rdtsc): done
                    // once its event is.
                    ctl.step_landed = Some(tid);
                }
                return Ok(false);
            }
        };
        if let Some(stop) = stop {
            self.report(tid, real, stop)?;
        }
        self.dbg_go(tid, real, real_pid, 0, FrameFix::default())?;
        Ok(true)
    }

    /// The breakpoint an `int3` at `at` in process `real_pid` stands for:
    /// `at` itself, or, at a stub's copy of an instruction from inside its
    /// patched region, that instruction's original address when a
    /// breakpoint (or probe) is set there.
    fn breakpoint_key(&self, real_pid: i32, at: u64) -> u64 {
        let (Some(space), Some(ctl)) = (self.spaces.get(&real_pid), self.debug.as_ref()) else {
            return at;
        };
        let Some(stub) = space.stub_at(at) else {
            return at;
        };
        match stub.stub_to_original(at) {
            rrtest_syscalls::patch::StubIp::Original(orig)
                if space.inside_patched(orig) == Some(at)
                    && (ctl.breakpoints.contains(&orig) || ctl.probes.contains(&orig)) =>
            {
                orig
            }
            _ => at,
        }
    }

    /// Whether thread `real` of `real_pid`, stopped, is where gdb must not
    /// see it: in the syscall buffer's hook, its gate, or a stub at a
    /// point that is not equivalent to one of the original code.
    fn in_buffer_code(&self, real: i32, real_pid: i32) -> Result<bool, ReplayError> {
        let Some(space) = self.spaces.get(&real_pid) else {
            return Ok(false);
        };
        let regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
        let stub_only = space.stub_at(regs.rip).is_some_and(|s| {
            !matches!(
                s.stub_to_original(regs.rip),
                rrtest_syscalls::patch::StubIp::Original(_)
            )
        });
        Ok(stub_only
            || space.in_buffer_code(regs.rip, regs.rsp)
            || same_file_mapping(real, space.hook_entry, regs.rip))
    }

    fn classify_trap(&mut self, tid: Tid, real: i32, real_pid: i32) -> Result<Trap, ReplayError> {
        if std::mem::take(&mut self.ctl().entering_handler) {
            let rip = ptrace::getregs(real)
                .map_err(perr("PTRACE_GETREGS", real))?
                .rip;
            let ctl = self.ctl();
            if real_pid == ctl.debugged
                && (ctl.breakpoints.contains(&rip) || ctl.probes.contains(&rip))
            {
                // At a breakpoint, not yet trapped: as if it had.
                ctl.lift_breakpoints();
                ctl.trapped_at = Some(rip);
                return Ok(Trap::Report(Stop::Breakpoint { tid, addr: rip }));
            }
            if ctl.step == Some(tid) && ctl.skip_to.is_none() {
                ctl.lift_breakpoints();
                return Ok(Trap::Report(Stop::Stepped { tid }));
            }
            return Ok(Trap::Resume);
        }
        let info = ptrace::getsiginfo(real).map_err(perr("PTRACE_GETSIGINFO", real))?;
        let code = ptrace::siginfo_code(&info);
        let mut regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
        if code == SI_KERNEL {
            let at = regs.rip.wrapping_sub(1);
            // A breakpoint moved into a stub traps at the copy: it is the
            // original address's (the thread shows there, see
            // `shown_registers`).
            let addr = self.breakpoint_key(real_pid, at);
            let ctl = self.ctl();
            if !ctl
                .inserted
                .iter()
                .any(|&(p, a, _)| p == real_pid && a == at)
            {
                return Ok(Trap::NotOurs);
            }
            ctl.lift_breakpoints();
            ctl.trapped_at = Some(addr);
            regs.rip = at;
            ptrace::setregs(real, &regs).map_err(perr("PTRACE_SETREGS", real))?;
            if ctl.skip_to.is_some() && (ctl.skip_to == Some(at) || ctl.skip_alt == Some(at)) {
                ctl.skip_to = None;
                ctl.skip_alt = None;
                if ctl.step == Some(tid) {
                    return Ok(Trap::Report(Stop::Stepped { tid }));
                }
                if !ctl.breakpoints.contains(&addr) && !ctl.probes.contains(&addr) {
                    return Ok(Trap::Resume);
                }
            }
            return Ok(Trap::Report(Stop::Breakpoint { tid, addr }));
        }
        let ctl = self.ctl();
        let dr6 = if ctl.watches.is_empty() {
            0
        } else {
            let v = ptrace::get_debugreg(real, 6).map_err(perr("reading DR6", real))?;
            ptrace::set_debugreg(real, 6, 0).map_err(perr("clearing DR6", real))?;
            v
        };
        let hit = WATCH_SLOTS
            .iter()
            .zip(ctl.watches.iter())
            .find(|(&slot, _)| dr6 & (1 << slot) != 0)
            .map(|(_, w)| *w);
        let in_buffer = |s: &Self| {
            s.spaces.get(&real_pid).is_some_and(|space| {
                space.stub_at(regs.rip).is_some()
                    || space.in_buffer_code(regs.rip, regs.rsp)
                    || same_file_mapping(real, space.hook_entry, regs.rip)
            })
        };
        if let Some(w) = hit {
            let stop = Stop::Watchpoint {
                tid,
                addr: w.addr,
                kind: w.kind,
            };
            if in_buffer(self) {
                // Not in the hook: out of it first.
                let ctl = self.ctl();
                ctl.deferred = Some(stop);
                ctl.stepping_over = false;
                return Ok(Trap::Resume);
            }
            let ctl = self.ctl();
            ctl.lift_breakpoints();
            ctl.stepping_over = false;
            ctl.watch_by_step = ctl.stepping;
            return Ok(Trap::Report(stop));
        }
        // A step over a syscall the filter lets through ends with a
        // TRAP_BRKPT trap at its exit instead.
        if code != TRAP_TRACE && code != TRAP_BRKPT {
            return Ok(Trap::NotOurs);
        }
        if self.ctl().deferred.is_some() {
            if in_buffer(self) {
                return Ok(Trap::Resume);
            }
            let ctl = self.ctl();
            ctl.lift_breakpoints();
            ctl.flags_dirty = true;
            return Ok(Trap::Report(
                ctl.deferred.take().unwrap_or(Stop::Stepped { tid }),
            ));
        }
        let ctl = self.ctl();
        if ctl.stepping_over {
            ctl.stepping_over = false;
            return Ok(Trap::Resume);
        }
        if ctl.step != Some(tid) || ctl.skip_to.is_some() {
            return Ok(Trap::NotOurs);
        }
        // A step of the user's. Into a stub: run on to its site's return;
        // from a patched `syscall` or `rdtsc` itself (the region's jump is
        // there, nothing displaced before it) to the copy of the first
        // instruction displaced after it, shown at its original address:
        // one step over the original instruction, not over those the patch
        // displaced with it. Only the user's steps: a re-run's counted
        // steps keep the whole region as one (applied to them, a reverse
        // watchpoint stop in the hook landed after the write).
        let user = self.ctl().goal.is_none();
        if let Some(space) = self.spaces.get(&real_pid) {
            if let Some(stub) = space.stub_at(regs.rip) {
                let l = &stub.layout;
                let at_site = l.before.is_empty() && !l.after.is_empty();
                let (back, alt) = if user && at_site && regs.rip == l.setup {
                    (l.resume, None)
                } else {
                    stub_exits(stub, real, regs.rsp)
                };
                let ctl = self.ctl();
                ctl.skip_to = Some(back);
                ctl.skip_alt = alt;
                return Ok(Trap::Resume);
            }
            if space.in_buffer_code(regs.rip, regs.rsp) {
                return Ok(Trap::Resume);
            }
        }
        self.ctl().lift_breakpoints();
        Ok(Trap::Report(Stop::Stepped { tid }))
    }

    /// A stop of `tid` inside an event: counted (its anchor), given to
    /// a re-run's goal, or reported to the user, who sends the next
    /// command. An `Err` when the event in progress must be abandoned (see
    /// [`Abandon`]).
    fn report(&mut self, tid: Tid, real: i32, stop: Stop) -> Result<(), ReplayError> {
        let anchor = match stop {
            Stop::Breakpoint { addr, .. } => Some(Anchor::Breakpoint(addr)),
            Stop::Watchpoint { addr, kind, .. } => {
                let ctl = self.ctl();
                ctl.watches
                    .iter()
                    .find(|w| w.addr == addr && w.kind == kind)
                    .map(|w| Anchor::Watch(*w))
            }
            _ => None,
        };
        let index = self.index;
        let ctl = self.ctl();
        ctl.lift_breakpoints();
        let nth = anchor.map(|a| ctl.count(index, a));
        let stepped = std::mem::take(&mut ctl.watch_by_step);
        if matches!(stop, Stop::Interrupted { .. }) && ctl.goal.is_some() {
            // Ctrl-C during a reverse resume: the re-run stops here (see
            // `forward`), and the user drives from this stop.
            self.drop_goal();
        }
        let stop = if self.ctl().goal.is_some() {
            match self.goal_trap(tid, real, stop, anchor.zip(nth), stepped)? {
                Act::Resume => return Ok(()),
                Act::Abandon => return Err(self.abandon(Abandon::GoalDone)),
                Act::Serve(stop) => stop,
            }
        } else {
            stop
        };
        // A breakpoint the user removed while a re-run used it: not a stop.
        if let Stop::Breakpoint { addr, .. } = stop {
            if !self.ctl().breakpoints.contains(&addr) && self.ctl().goal.is_none() {
                return Ok(());
            }
        }
        let ctl = self.ctl();
        ctl.current = tid;
        ctl.here = Here::Inside { event: index, tid };
        if matches!(stop, Stop::Stepped { .. }) {
            ctl.step = None;
        }
        self.answer(Answer::Stopped(Ok(stop)));
        match self.serve() {
            Command::Forward(how) => {
                self.ctl().set_resume(how);
                Ok(())
            }
            Command::Reverse(how) => Err(self.abandon(Abandon::Reverse(how))),
            Command::Quit => Err(self.abandon(Abandon::Quit)),
        }
    }

    /// Arms (`Some`) or disarms the execution-point search's breakpoint in
    /// debug register 0 of `real`, keeping the debugger's watchpoints.
    pub(super) fn point_breakpoint(&mut self, real: i32, ip: Option<u64>) -> std::io::Result<()> {
        let Some(ctl) = self.debug.as_mut() else {
            return ptrace::exec_breakpoint(real, ip);
        };
        let old = ctl.dr7.get(&real).copied().unwrap_or(0);
        let mut dr7 = old & !ptrace::dr7_slot_mask(0);
        if let Some(ip) = ip {
            ptrace::set_debugreg(real, 0, ip)?;
            dr7 |= ptrace::dr7_slot(0, 0, 1);
        }
        ptrace::set_debugreg(real, 7, dr7)?;
        ctl.dr7.insert(real, dr7);
        Ok(())
    }

    /// Whether the fast execution-point search (the in-program filter) may
    /// run (it resumes the thread without `resume_to_stop`, where no
    /// debugger stop can happen), and a point's pass is checked against the
    /// verification's (nothing of the debugger's stops the thread between).
    pub(super) fn fast_point_search(&self) -> bool {
        self.debug
            .as_ref()
            .is_none_or(|c| c.breakpoints.is_empty() && c.watches.is_empty() && c.step.is_none())
    }
}

/// What a `SIGTRAP` was.
enum Trap {
    /// The debugger's: report this.
    Report(Stop),
    /// The debugger's, nothing to report: resume.
    Resume,
    /// The program's (or the point search's).
    NotOurs,
}

impl DebugCtl {
    /// Notes that thread `real` of `real_pid` runs (for an interrupt), and
    /// stops it at once when an interrupt was asked while none ran.
    fn note_running(&mut self, real_pid: i32, real: i32) {
        let shared = &self.link.shared;
        shared.running.store(
            (i64::from(real_pid) << 32) | i64::from(real as u32),
            Ordering::SeqCst,
        );
        if shared.interrupt.load(Ordering::SeqCst) {
            shared.stops_sent.fetch_add(1, Ordering::SeqCst);
            if ptrace::tgkill(real_pid, real, libc::SIGSTOP).is_err() {
                shared.stops_sent.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// A trap of ours (`int3`, a step, a watchpoint) raises `SIGTRAP` the
    /// kernel forces on the thread: when the program has `SIGTRAP` blocked
    /// (inside its own `SIGTRAP` handler), forcing it resets the program's
    /// handler to the default, and its next recorded `SIGTRAP` would kill
    /// it. So `SIGTRAP` is unblocked while the thread runs with traps armed
    /// and blocked again at its next stop ([`DebugCtl::reblock_sigtrap`]).
    fn unblock_sigtrap(&mut self, real: i32) {
        const BIT: u64 = 1 << (libc::SIGTRAP - 1);
        if let Ok(mask) = ptrace::getsigmask(real) {
            if mask & BIT != 0 && ptrace::setsigmask(real, mask & !BIT).is_ok() {
                self.unblocked_trap = Some(real);
            }
        }
    }

    /// Blocks `SIGTRAP` again in `real`, stopped, when
    /// [`DebugCtl::unblock_sigtrap`] unblocked it.
    fn reblock_sigtrap(&mut self, real: i32) {
        const BIT: u64 = 1 << (libc::SIGTRAP - 1);
        if self.unblocked_trap == Some(real) {
            self.unblocked_trap = None;
            if let Ok(mask) = ptrace::getsigmask(real) {
                let _ = ptrace::setsigmask(real, mask | BIT);
            }
        }
    }

    /// Forgets the inserted `int3`s without writing (their process is
    /// about to be killed).
    pub(super) fn forget_inserted(&mut self) {
        self.inserted.clear();
    }

    /// Whether `addr` is a breakpoint of the user's (not a probe).
    pub(super) fn is_user_breakpoint(&self, addr: u64) -> bool {
        self.breakpoints.contains(&addr)
    }

    /// Counts one trap of `anchor` in event `index`; returns its number
    /// (1 for the first in the event).
    fn count(&mut self, index: u64, anchor: Anchor) -> u64 {
        if self.counted_in != index {
            self.counts.clear();
            self.counted_in = index;
        }
        let n = self.counts.entry(anchor).or_insert(0);
        *n += 1;
        *n
    }

    pub(super) fn set_resume(&mut self, how: Resume) {
        self.step = match how {
            Resume::Continue => None,
            Resume::Step(tid) => Some(tid),
        };
        self.skip_to = None;
        self.skip_alt = None;
        self.step_landed = None;
    }

    fn add_watch(&mut self, w: Watch) -> Result<(), ReplayError> {
        if ![1, 2, 4, 8].contains(&w.len) || !w.addr.is_multiple_of(w.len) {
            return Err(bad_request(format!(
                "a hardware watchpoint covers 1, 2, 4 or 8 bytes aligned to its length, not {} bytes at {:#x}",
                w.len, w.addr
            )));
        }
        if self.watches.contains(&w) {
            return Ok(());
        }
        if self.watches.len() >= WATCH_SLOTS.len() {
            return Err(bad_request(format!(
                "at most {} hardware watchpoints at once",
                WATCH_SLOTS.len()
            )));
        }
        self.watches.push(w);
        Ok(())
    }

    /// Writes `int3` at every breakpoint (and the temporary one) in process
    /// `real_pid`, through thread `real`, except at `skip`. A breakpoint
    /// in `moved` (inside a patched syscall region, where the original code
    /// is gone) is written at its stub copy instead, or nowhere when it
    /// has none.
    fn insert_breakpoints(
        &mut self,
        real: i32,
        real_pid: i32,
        skip: Option<u64>,
        moved: &[(u64, Option<u64>)],
    ) -> Result<(), ReplayError> {
        let mem = RemoteMem::new(real);
        let wanted: Vec<u64> = self
            .breakpoints
            .iter()
            .copied()
            .chain(self.probes.iter().copied())
            .chain(self.skip_to)
            .chain(self.skip_alt)
            .filter(|&a| Some(a) != skip)
            .filter_map(|a| match moved.iter().find(|m| m.0 == a) {
                Some(&(_, to)) => to,
                None => Some(a),
            })
            .collect();
        // One out of place (the one at the ip being stepped over): back.
        let mut i = 0;
        while i < self.inserted.len() {
            let (p, a, orig) = self.inserted[i];
            if p == real_pid && !wanted.contains(&a) {
                let _ = mem.write_code(&[(a, &[orig])]);
                self.inserted.swap_remove(i);
            } else {
                i += 1;
            }
        }
        for a in wanted {
            if self
                .inserted
                .iter()
                .any(|&(p, x, _)| p == real_pid && x == a)
            {
                continue;
            }
            let mut orig = [0u8];
            // An address that is not mapped (yet): the breakpoint waits.
            if mem.read_exact(a, &mut orig).is_err() {
                continue;
            }
            if mem.write_code(&[(a, &[INT3])]).is_ok() {
                self.inserted.push((real_pid, a, orig[0]));
            }
        }
        Ok(())
    }

    /// Puts back the original bytes of every inserted `int3`.
    fn lift_breakpoints(&mut self) {
        for (pid, a, orig) in self.inserted.drain(..) {
            let _ = RemoteMem::new(pid).write_code(&[(a, &[orig])]);
        }
    }

    /// Writes the watchpoints into `real`'s debug registers 1-3 (when they
    /// changed since the last time), keeping register 0's breakpoint.
    fn arm_watches(&mut self, real: i32) -> Result<(), ReplayError> {
        let old = self.dr7.get(&real).copied().unwrap_or(0);
        let mut dr7 = old;
        for (i, &slot) in WATCH_SLOTS.iter().enumerate() {
            dr7 &= !ptrace::dr7_slot_mask(slot);
            if let Some(w) = self.watches.get(i) {
                let rw = match w.kind {
                    WatchKind::Write => 1,
                    WatchKind::Read | WatchKind::Access => 3,
                };
                dr7 |= ptrace::dr7_slot(slot, rw, w.len);
            }
        }
        if dr7 == old && (self.watches.is_empty() || self.dr7.contains_key(&real)) {
            if dr7 == old && !self.watches.is_empty() {
                // Same control bits; the addresses may have changed.
                for (i, &slot) in WATCH_SLOTS.iter().enumerate() {
                    if let Some(w) = self.watches.get(i) {
                        ptrace::set_debugreg(real, slot, w.addr)
                            .map_err(perr("setting a watchpoint", real))?;
                    }
                }
            }
            return Ok(());
        }
        // Disable first: the kernel checks each address against DR7.
        ptrace::set_debugreg(real, 7, old & ptrace::dr7_slot_mask(0))
            .map_err(perr("setting a watchpoint", real))?;
        for (i, &slot) in WATCH_SLOTS.iter().enumerate() {
            if let Some(w) = self.watches.get(i) {
                ptrace::set_debugreg(real, slot, w.addr)
                    .map_err(perr("setting a watchpoint", real))?;
            }
        }
        ptrace::set_debugreg(real, 7, dr7).map_err(perr("setting a watchpoint", real))?;
        self.dr7.insert(real, dr7);
        Ok(())
    }
}

/// Where a thread in `stub` (with stack pointer `rsp`, before the stub
/// switched stacks) comes back to the original code: the patched site's
/// return address, and, when the displaced code after the syscall holds a
/// `ret` (a whole syscall wrapper was displaced), the caller's return
/// address on the stack.
fn stub_exits(stub: &rrtest_syscalls::patch::Stub, real: i32, rsp: u64) -> (u64, Option<u64>) {
    let has_ret = stub
        .layout
        .after
        .iter()
        .any(|&(_, at)| stub.code.get(at.wrapping_sub(stub.addr) as usize) == Some(&0xc3));
    let alt = has_ret
        .then(|| {
            let mut b = [0u8; 8];
            RemoteMem::new(real).read_exact(rsp, &mut b).ok()?;
            Some(u64::from_le_bytes(b))
        })
        .flatten();
    (stub.return_addr, alt)
}

/// Whether `ip` lies in a mapping of the file mapped at `at` (the preload
/// library, for the hook's entry) in thread `real`'s address space.
fn same_file_mapping(real: i32, at: u64, ip: u64) -> bool {
    let Ok(maps) = std::fs::read_to_string(format!("/proc/{real}/maps")) else {
        return false;
    };
    let entries: Vec<(std::ops::Range<u64>, &str)> = maps
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (a, b) = f.next()?.split_once('-')?;
            let path = f.nth(4)?;
            let range = u64::from_str_radix(a, 16).ok()?..u64::from_str_radix(b, 16).ok()?;
            Some((range, path))
        })
        .collect();
    let file = entries.iter().find(|(r, _)| r.contains(&at)).map(|e| e.1);
    file.is_some_and(|file| {
        entries
            .iter()
            .any(|(r, path)| *path == file && r.contains(&ip))
    })
}

/// Whether `addr` lies strictly inside a patched syscall region of
/// `space`: after its first byte (the jump to the stub), before the
/// site's return address. (`Space::inside_patched` answers for
/// instruction boundaries of the original code only.)
fn inside_patched_region(space: &crate::tracee::syscallbuf::Space, addr: u64) -> bool {
    space.stubs.iter().any(|s| {
        let start = s
            .layout
            .before
            .first()
            .map_or(s.syscall_addr, |&(orig, _)| orig);
        addr > start && addr < s.return_addr
    })
}

/// The FPU/SSE registers of `real`, with the AVX upper halves when the
/// kernel gives the XSAVE state.
fn fp_registers(real: i32) -> Result<FpRegs, ReplayError> {
    let fxsave = ptrace::getfpregs(real).map_err(perr("PTRACE_GETFPREGS", real))?;
    // XSAVE header at 512: XSTATE_BV bit 2 says the AVX state is live;
    // the upper halves are at 576 in the standard (non-compacted) format.
    let ymm_hi = ptrace::getxstate(real).ok().and_then(|x| {
        let bv = u64::from_le_bytes(x.get(512..520)?.try_into().ok()?);
        let area = x.get(576..576 + 256)?;
        let mut out = [[0u8; 16]; 16];
        if bv & 4 != 0 {
            for (i, r) in out.iter_mut().enumerate() {
                r.copy_from_slice(&area[16 * i..16 * i + 16]);
            }
        }
        Some(out)
    });
    Ok(FpRegs { fxsave, ymm_hi })
}

fn bad_request(reason: String) -> ReplayError {
    Error::Debugger(reason).into()
}
