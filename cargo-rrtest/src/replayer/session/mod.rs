//! The replay session's core: the [`Session`] with its threads ([`Task`],
//! [`State`]), the event loop's turn and its dispatch
//! ([`Session::replay_next`], [`Session::step`]), and the stops every
//! concern shares: resuming a
//! thread to its next stop ([`Session::resume_to_stop`]), waiting for a
//! thread to be gone, describing a stop, reporting a divergence.
//!
//! Every replay thread is stopped between events. To replay an event, the
//! loop resumes that thread alone until the stop the event describes (a
//! syscall entry, a signal, an rdtsc trap), checks it against the
//! recording, and applies the recorded effects.
//!
//! The replayer has no scheduler: the recorder's `session/schedule.rs`
//! decided which thread ran, and each decision is the order of the events
//! in the trace (a `Preempt` event where it switched threads at an
//! execution point, [`Session::run_to_point`]). Replay runs the thread of
//! the next event, and only it, to that event's stop.
//!
//! The concerns, each an `impl Session` in a file of its own, mirroring the
//! recorder's `session/`:
//! - `syscall.rs`: syscall entries and applying recorded results;
//! - `signals.rs`: signal delivery and temporary masks;
//! - `points.rs`: execution points (with `point_filter.rs`, the
//!   in-program search for hot loops);
//! - `syscallbuf.rs`: buffered syscalls answered by the untraced gate;
//! - `patching.rs`: syscall- and rdtsc-site patches;
//! - `rdtsc.rs`: the trapped `rdtsc`;
//! - `process.rs`: spawn, start, exec, new threads and processes, and
//!   killing them all at the end;
//! - `handle.rs`: [`Replay`], the public handle that drives the loop one
//!   event at a time (a debugger) or to the end ([`replay`]).
//!
//! This file must not grow a concern's logic: it dispatches events and owns
//! what all of them share.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;

use tracing::trace;

use super::exe::ExecDir;
use super::inject;
use super::{Divergence, Error, ReplayError, ReplayOptions};
use crate::tracee::syscallbuf::{self as buffer, FrameFix, Space};
use rrtest_sys::ptrace::{self, WaitEvent};
use rrtest_sys::RemoteMem;
use rrtest_syscalls::{self as syscalls, ReplayAction};
use rrtest_trace::{Event, ExitStatus, ReadAhead, Tid, WriteKind};

mod patching;
mod point_filter;
mod points;
mod process;
mod rdtsc;
mod signals;
mod syscall;
mod syscallbuf;
mod xstate;

mod debug_reverse;
pub(super) mod debugger;
mod handle;
pub use handle::{Position, Replay, Step, Thread};

use points::{trapped_at, RESUME_FLAG};
use signals::is_synchronous;
use syscallbuf::Buffered;

/// The result of a replay that reached the end of the recording.
#[derive(Debug, Clone)]
pub struct Replayed {
    /// How the program ended (equal to the recorded status).
    pub status: ExitStatus,
    /// Events replayed.
    pub events: u64,
    /// (event index, hits before the match) of every execution point, as
    /// found by scanning or known beforehand.
    pub point_hits: Vec<[u64; 2]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Stopped between events; `deliver` is a signal to deliver on resume.
    Idle { deliver: i32 },
    /// Stopped at a syscall entry, the rest of the syscall comes later.
    AtEntry { nr: i64, args: [u64; 6] },
    /// A clone-family syscall stopped at its clone event; `flags` is the
    /// recorded flags argument of a `clone` that replay made without its
    /// namespace flags (`process::without_namespaces`), put back at the exit.
    InClone { nr: i64, flags: Option<u64> },
    /// Going to its death: in an exit syscall, resumed with a signal that
    /// ends it, or (`killed`) sent a `SIGKILL` by replay. It will not stop
    /// again for anything of its own; unless `killed`, a stop that shows it
    /// living on (a group stop, a syscall, an exec, a clone) is a divergence.
    Exiting { killed: bool },
    /// A thread other than its process's leader that made `exit`: already
    /// gone, reaped at its syscall entry, with this status.
    Gone(ExitStatus),
}

struct Task {
    /// Real (replay) thread id.
    real: i32,
    /// Real process id.
    real_pid: i32,
    state: State,
    /// The thread's last syscall returned a restart code (-ERESTART*) that
    /// the kernel acted on while recording without delivering a signal to
    /// it (another thread took the signal): replay does the restart itself
    /// when the thread next runs, unless a signal is delivered there.
    /// With the result, the call's trace number (a 32-bit call resumes
    /// with the i386 `restart_syscall`).
    restart_pending: Option<(i64, i64)>,
    /// The mask from before an emulated `rt_sigsuspend` (or `ppoll`...)
    /// that a signal ended (see [`Session::sigsuspend_mask`]): the frame of
    /// that signal's handler saves it, so that the handler's return
    /// restores it; replay restores it itself at the next `rt_sigreturn`
    /// when no frame took it.
    mask_after_handler: Option<u64>,
    /// What to change in the frame of the signal `State::Idle`'s
    /// `deliver` is to deliver, at its handler's entry (taken there).
    frame_fix: FrameFix,
    /// A `SIGCONT` that replay sent to another thread of this process
    /// raises a trap (`PTRACE_EVENT_STOP`, `SIGTRAP`) in every thread of it
    /// (the kernel notifies each seized thread of a `SIGCONT`); this one's
    /// has not been seen yet, and is run through when it comes. The
    /// recorder saw it there too, as a stop that changed nothing but
    /// interrupting a blocked syscall, which the trace has as that
    /// syscall's result.
    sigcont_notice: bool,
    /// What the program's tracer wrote into it at a syscall-entry stop
    /// (`WriteKind::RegsAtEntry`, `WriteKind::MemoryAtEntry`: a call
    /// changed or skipped), in order: applied when it reaches that
    /// syscall's entry ([`Session::apply_entry_writes`]).
    entry_writes: Vec<(WriteKind, u64, Vec<u8>)>,
}

struct Session {
    reader: ReadAhead,
    tasks: HashMap<Tid, Task>,
    index: u64,
    echo: bool,
    exec_dir: ExecDir,
    /// Hit counts of execution points from an earlier verification.
    known_hits: HashMap<u64, u64>,
    /// Hit counts found (or used) by this replay.
    point_hits: Vec<[u64; 2]>,
    /// Ends a replay that stops making progress.
    watchdog: std::sync::Arc<super::watchdog::Watchdog>,
    /// The syscall buffer of each replayed process that has one, by real pid.
    spaces: HashMap<i32, Space>,
    /// The images of the recorder's own vDSO with their stub pages
    /// (`tracee::ExecFacts::vdso_images`) of each process exec'd and not
    /// yet through the buffer's handshake, by real process id.
    vdso_images: HashMap<i32, Vec<crate::tracee::vdso::Placed>>,
    /// Each thread's buffered syscalls still to come, in order.
    buffered: HashMap<Tid, VecDeque<Buffered>>,
    /// A thread in a `clone3` that replay makes without its namespace
    /// flags: the address of its `clone_args` and the recorded flags, put
    /// back when the new task appears (`process::without_namespaces`).
    clone3_flags: HashMap<Tid, (u64, u64)>,
    /// Threads whose queue region holds records: where each record ends.
    loaded: HashMap<Tid, VecDeque<usize>>,
    /// The ip of a stop in the gate routine's slow path.
    gate_stop_ip: u64,
    /// The next event, read ahead so that a [`Replay`]'s driver can see
    /// whose it is (or the error reading it, returned when it is replayed).
    upcoming: Option<Result<Event, ReplayError>>,
    /// The program's first process (recorded id), and how it ended: the
    /// replay's result, also when processes it left behind end after it
    /// (killed by the recorder at the end of the recording).
    leader: Tid,
    leader_status: Option<ExitStatus>,
    /// The debugger's state, when a [`crate::replayer::Debugger`] drives
    /// this session (`debugger.rs`).
    debug: Option<Box<debugger::DebugCtl>>,
    /// The digest of the trace's execution points (its header's
    /// `point_digest`): what `tracee::exec_point` computes on this thread
    /// while the session replays (set again at each event, for a thread
    /// that drives more than one replay).
    point_digest: rrtest_trace::PointDigest,
    /// The recorder cleared the trap fields of the frames of the signals it
    /// sent (the header's `signal_traps_cleared`): replay does too.
    traps_cleared: bool,
    /// What the recorder did with the vDSO at each exec (the header's
    /// `own_vdso`): what `tracee::prepare_after_exec` does on this thread
    /// while the session replays (set again at each event, as
    /// `point_digest` is).
    vdso: crate::tracee::VdsoMode,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.kill_all();
    }
}

fn perr(op: &'static str, tid: i32) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Ptrace { op, tid, source }
}

/// Whether stop `ev` of a thread that should be dying shows it living on:
/// a group stop, a traced syscall, an exec, a clone or fork.
fn lives_on(ev: &WaitEvent) -> bool {
    matches!(
        ev,
        WaitEvent::SyscallStop { .. }
            | WaitEvent::Event {
                event: libc::PTRACE_EVENT_STOP
                    | libc::PTRACE_EVENT_SECCOMP
                    | libc::PTRACE_EVENT_EXEC
                    | libc::PTRACE_EVENT_CLONE
                    | libc::PTRACE_EVENT_FORK
                    | libc::PTRACE_EVENT_VFORK,
                ..
            }
    )
}

/// Replays the trace in `opts.trace_dir` to its end: a [`Replay`] started,
/// run to its end, and ended.
///
/// Waits only for its own tracees, by thread id (the handle, dropped at the
/// end of the closure, kills and reaps them wherever the replay stopped),
/// never for any child: a `waitpid(-1)` here would take the stops of
/// another replay driven from another thread of the same process.
pub fn replay(opts: &ReplayOptions) -> Result<Replayed, ReplayError> {
    Replay::start(opts).and_then(|mut replay| replay.run_to_end())
}

impl Session {
    fn diverged(
        &self,
        tid: Tid,
        what: impl Into<String>,
        expected: impl Into<String>,
        seen: impl Into<String>,
    ) -> ReplayError {
        Divergence {
            index: self.index,
            tid,
            what: what.into(),
            expected: expected.into(),
            seen: seen.into(),
        }
        .into()
    }

    /// Replays the next event of the trace: one turn of the event loop,
    /// which [`Replay`] drives one event at a time or to the end. Returns
    /// the exit status when the recorded program ended there.
    fn replay_next(&mut self) -> Result<Option<ExitStatus>, ReplayError> {
        let ev = match self.upcoming.take() {
            Some(ev) => ev?,
            None => self.read_next()?,
        };
        trace!(index = self.index, ?ev, "replay");
        crate::tracee::set_point_digest(self.point_digest);
        crate::tracee::set_vdso_mode(self.vdso);
        self.watchdog.index.store(self.index, Ordering::SeqCst);
        let stepped = self.watched(|s| s.step(ev));
        if self.watchdog.fired.load(Ordering::SeqCst) {
            return Err(Error::Stalled {
                index: self.index,
                secs: super::watchdog::STALL_LIMIT.as_secs(),
            }
            .into());
        }
        let status = stepped?;
        if status.is_none() {
            self.index += 1;
        }
        Ok(status)
    }

    /// Runs `f` with the watchdog on: time spent between events, while the
    /// driver of a [`Replay`] looks at a stop, is not a stall.
    fn watched<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        self.watchdog.busy.store(true, Ordering::SeqCst);
        let out = f(self);
        self.watchdog.busy.store(false, Ordering::SeqCst);
        out
    }

    fn read_next(&mut self) -> Result<Event, ReplayError> {
        match self.reader.next_event()? {
            Some(ev) => Ok(ev),
            None => Err(Error::Malformed {
                index: self.index,
                reason: "the event stream ended before the program's exit".into(),
            }
            .into()),
        }
    }

    /// Reads the next event ahead, unless it is read already (an error
    /// reading it is kept for [`Session::replay_next`] to return).
    fn peek(&mut self) {
        if self.upcoming.is_none() {
            self.upcoming = Some(self.read_next());
        }
    }

    /// The event read ahead, if it was read and is well-formed.
    fn upcoming(&self) -> Option<&Event> {
        self.upcoming.as_ref()?.as_ref().ok()
    }

    fn task(&self, tid: Tid) -> Result<&Task, ReplayError> {
        self.tasks.get(&tid).ok_or_else(|| {
            Error::Malformed {
                index: self.index,
                reason: format!("event for unknown thread {tid}"),
            }
            .into()
        })
    }

    fn set_state(&mut self, tid: Tid, state: State) {
        if let Some(t) = self.tasks.get_mut(&tid) {
            t.state = state;
        }
    }

    /// Replays one event; returns the exit status when the recorded program ended.
    fn step(&mut self, ev: Event) -> Result<Option<ExitStatus>, ReplayError> {
        match ev {
            Event::Syscall(e) => {
                let mut regs = self.run_to_entry(e.tid, e.nr, &e.args)?;
                self.apply(e.tid, e.nr, &e.args, &mut regs, &e.result, false)?;
            }
            Event::SyscallEntry { tid, nr, args } => {
                let regs = self.run_to_entry(tid, nr, &args)?;
                let real = self.task(tid)?.real;
                if let Some(stripped) = process::without_namespaces(real, nr, regs)? {
                    self.clone3_flags.insert(tid, stripped);
                }
                if syscalls::lookup(nr).map(|d| d.replay) == Some(ReplayAction::Exit) {
                    ptrace::cont(real, 0).map_err(perr("PTRACE_CONT", real))?;
                    self.set_state(tid, State::Exiting { killed: false });
                    let real_pid = self.task(tid)?.real_pid;
                    // As the recorder does: a process alone in an address
                    // space it shares (`CLONE_VM`, a vfork child) too.
                    let alone_sharing = real == real_pid
                        && self.spaces.get(&real_pid).is_some_and(|s| s.borrowed)
                        && !self
                            .tasks
                            .iter()
                            .any(|(&t, task)| t != tid && task.real_pid == real_pid);
                    // (A 32-bit thread exit by its x86-64 number.)
                    let thread_exit = syscalls::row_nr(nr) == libc::SYS_exit;
                    if (thread_exit && real != real_pid) || alone_sharing {
                        // Gone before anything else runs: its exit clears
                        // its `CLONE_CHILD_CLEARTID` word and wakes the
                        // futex on it, which a thread joining it may meet
                        // at its very next step (it did while recording:
                        // the recorder resumed no one in between).
                        let status = self.wait_gone(tid, real, None)?;
                        self.set_state(tid, State::Gone(status));
                    }
                } else {
                    self.set_state(tid, State::AtEntry { nr, args });
                }
            }
            Event::SyscallExit { tid, nr, result } => {
                let task = self.task(tid)?;
                let real = task.real;
                match task.state {
                    State::AtEntry { nr: entered, args } if entered == nr => {
                        let mut regs =
                            ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
                        self.apply(tid, nr, &args, &mut regs, &result, true)?;
                    }
                    State::InClone { nr: entered, flags } if entered == nr => {
                        let mut regs = inject::run_to_exit(real)?;
                        if let Some(flags) = flags {
                            regs.rdi = flags;
                        }
                        inject::write_back(real, &result)?;
                        inject::set_ret(real, regs, result.ret)?;
                        self.set_state(tid, State::Idle { deliver: 0 });
                    }
                    other => {
                        return Err(Error::Malformed {
                            index: self.index,
                            reason: format!(
                                "exit of {} for thread {tid} in state {other:?}",
                                syscalls::name(nr)
                            ),
                        }
                        .into())
                    }
                }
            }
            Event::NewTask {
                parent,
                child,
                flags,
            } => self.new_task(parent, child, flags)?,
            Event::Rdtsc { tid, ip, tsc, aux } => self.rdtsc(tid, ip, tsc, aux)?,
            Event::Preempt { tid, point } => self.run_to_point(tid, &point)?,
            Event::Signal(s) => self.signal(s)?,
            Event::ThreadExit { tid } => {
                let real = self.task(tid)?.real;
                let status = self.wait_gone(tid, real, None)?;
                if let Some(ctl) = self.debug.as_mut() {
                    ctl.exited = Some(status);
                }
                self.tasks.remove(&tid);
                self.no_buffered_left(tid)?;
            }
            Event::ProcessExit { pid, status } => {
                let real = self.task(pid)?.real;
                self.run_into_filter_kill(pid, real, status)?;
                let seen = self.wait_gone(pid, real, Some(status))?;
                self.tasks.remove(&pid);
                self.no_buffered_left(pid)?;
                self.spaces.remove(&real);
                self.vdso_images.remove(&real);
                // Whether a core was dumped depends on the machine, not the program.
                let same = match (seen, status) {
                    (
                        ExitStatus::Signaled { signo: a, .. },
                        ExitStatus::Signaled { signo: b, .. },
                    ) => a == b,
                    (a, b) => a == b,
                };
                if !same {
                    return Err(self.diverged(
                        pid,
                        "process exit",
                        format!("{status:?}"),
                        format!("{seen:?}"),
                    ));
                }
                if pid == self.leader {
                    self.leader_status = Some(status);
                }
                if let Some(ctl) = self.debug.as_mut() {
                    ctl.exited = Some(status);
                }
                if self.tasks.is_empty() {
                    return Ok(Some(self.leader_status.unwrap_or(status)));
                }
            }
            Event::Exec(e) => self.exec(e)?,
            Event::BufferInit { tid, hook_entry } => self.buffer_init(tid, hook_entry)?,
            Event::Buffered { tid, records } if buffer::is_output_table(&records) => {
                self.output_table(tid, &records)?;
            }
            Event::Buffered { tid, records } => {
                let records =
                    buffer::parse_records(records).map_err(|reason| Error::Malformed {
                        index: self.index,
                        reason: format!("buffered records of thread {tid}: {reason}"),
                    })?;
                self.buffered
                    .entry(tid)
                    .or_default()
                    .extend(records.into_iter().map(Buffered::Done));
            }
            Event::BufferAbort { tid, nr } => {
                self.buffered
                    .entry(tid)
                    .or_default()
                    .push_back(Buffered::Aborted { nr });
            }
            Event::Patch(p) => self.patch(p)?,
            Event::TraceeWrite {
                target,
                kind,
                addr,
                bytes,
                ..
            } => self.tracee_write(target, kind, addr, &bytes)?,
            Event::Unsupported { what, .. } => return Err(Error::NotReplayable(vec![what]).into()),
        }
        Ok(None)
    }

    /// What the program's emulated ptrace changed in a thread its tracer
    /// holds stopped (`PTRACE_POKEDATA`, `PTRACE_SETREGS`,
    /// `PTRACE_SETFPREGS`, `PTRACE_SETSIGMASK`, `PTRACE_SETREGSET` of
    /// `NT_X86_XSTATE`): the same change, at the same point, made with the
    /// same request on the real thread (the extended state only where its
    /// layout is the recording host's, else a clear refusal).
    fn tracee_write(
        &mut self,
        target: Tid,
        kind: WriteKind,
        addr: u64,
        bytes: &[u8],
    ) -> Result<(), ReplayError> {
        let real = self.task(target)?.real;
        let malformed = |index| Error::Malformed {
            index,
            reason: format!("tracee {} of {} bytes", kind.name(), bytes.len()),
        };
        if kind.at_entry() {
            // Made at a syscall-entry stop, where this thread is not yet:
            // kept for that entry.
            if kind.size().is_some_and(|n| n != bytes.len()) {
                return Err(malformed(self.index).into());
            }
            if let Some(t) = self.tasks.get_mut(&target) {
                t.entry_writes.push((kind, addr, bytes.to_vec()));
            }
            return Ok(());
        }
        match kind {
            WriteKind::Regs => {
                let Some(mut new) = ptrace::regs_from_bytes(bytes) else {
                    return Err(malformed(self.index).into());
                };
                // A syscall replay emulates waits at its entry with the number
                // -1, which makes the kernel skip it: the recorded number (the
                // tracee was at the syscall's exit) would run it again.
                let now = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
                if now.orig_rax == u64::MAX {
                    new.orig_rax = u64::MAX;
                }
                ptrace::setregs(real, &new).map_err(perr("PTRACE_SETREGS", real))?;
            }
            WriteKind::FpRegs => {
                let Ok(fp) = <&[u8; 512]>::try_from(bytes) else {
                    return Err(malformed(self.index).into());
                };
                ptrace::setfpregs(real, fp).map_err(perr("PTRACE_SETFPREGS", real))?;
            }
            WriteKind::SigMask => {
                // The mask as the kernel set it while recording: the
                // program's, none of replay's own bits (replay blocks
                // nothing of its own in a thread held stopped).
                let Ok(mask) = <[u8; 8]>::try_from(bytes) else {
                    return Err(malformed(self.index).into());
                };
                ptrace::setsigmask(real, u64::from_ne_bytes(mask))
                    .map_err(perr("PTRACE_SETSIGMASK", real))?;
            }
            WriteKind::XState => {
                // The layout is the CPU's: applied only where it is the
                // recording host's (xstate.rs).
                xstate::apply(real, bytes)
                    .map_err(perr("PTRACE_SETREGSET of NT_X86_XSTATE", real))?
                    .map_err(|why| Error::NotReplayable(vec![why]))?;
            }
            WriteKind::Memory => {
                RemoteMem::new(real)
                    .write(addr, bytes)
                    .map_err(perr("writing a tracee's memory", real))?;
            }
            WriteKind::RegsAtEntry | WriteKind::MemoryAtEntry => {
                unreachable!("kept for the syscall's entry above")
            }
        }
        Ok(())
    }

    /// Thread `tid` (real thread `real`) stopped at a syscall's entry (its
    /// seccomp stop): what its tracer wrote into it at the syscall-entry
    /// stop it made there while recording is written now, in order, before
    /// the call is looked at, so that the call it makes is the one
    /// recorded (another number, other arguments, or none: `orig_rax` -1).
    fn apply_entry_writes(&mut self, tid: Tid, real: i32) -> Result<(), ReplayError> {
        let Some(task) = self.tasks.get_mut(&tid) else {
            return Ok(());
        };
        for (kind, addr, bytes) in std::mem::take(&mut task.entry_writes) {
            if kind == WriteKind::MemoryAtEntry {
                RemoteMem::new(real)
                    .write(addr, &bytes)
                    .map_err(perr("writing a tracee's memory", real))?;
                continue;
            }
            let regs = ptrace::regs_from_bytes(&bytes).ok_or_else(|| Error::Malformed {
                index: self.index,
                reason: format!("tracee {} of {} bytes", kind.name(), bytes.len()),
            })?;
            ptrace::setregs(real, &regs).map_err(perr("PTRACE_SETREGS", real))?;
        }
        Ok(())
    }

    /// Waits until thread `real` has exited; returns how. `recorded`: the
    /// recorded exit status of its process, at the main thread's
    /// `ProcessExit`.
    ///
    /// The rule (docs/design.md, "Deaths in replay"): the thread dies here,
    /// where the recording says it did. One stopped with a signal to take
    /// is resumed with it when that signal ends it
    /// ([`signals::signal_ends`]); one already on its way out (an exit
    /// syscall, its process's exit) is waited for; any other (one held in a
    /// group stop, or stopped to take a signal that would stop it, be
    /// handled or ignored) died of a `SIGKILL` from another process, whose
    /// `kill()` replay emulates: replay sends that `SIGKILL`. A thread that
    /// shows it lives on meanwhile is a divergence, reported at once.
    fn wait_gone(
        &mut self,
        tid: Tid,
        real: i32,
        recorded: Option<ExitStatus>,
    ) -> Result<ExitStatus, ReplayError> {
        let state = self.task(tid)?.state;
        let mut early = None;
        match state {
            State::Gone(status) => return Ok(status),
            // A thread dying of a signal we stopped it for dies once resumed with it.
            State::Idle { deliver }
                if deliver != 0 && signals::signal_ends(real, deliver, recorded) =>
            {
                ptrace::cont(real, deliver).map_err(perr("PTRACE_CONT", real))?;
                self.set_state(tid, State::Exiting { killed: false });
            }
            State::Exiting { .. } => {}
            // It died without an exit of its own or a signal that ends it:
            // a sibling's exit_group (then it is already gone or going), or
            // a SIGKILL from another process, whose kill() replay emulates
            // (also one that came while the recorder held the thread in a
            // group stop, or before it took a signal it was stopped for):
            // kill it here, where the recording says it died.
            _ => {
                let real_pid = self.task(tid)?.real_pid;
                // A sibling stopped for a signal that ends the process
                // (recorded delivered to it, then its threads' deaths,
                // then the process's): delivered now, it kills this
                // thread as it did in the recording. A SIGKILL of ours
                // would kill the process first, of the wrong signal.
                let fatal = self.tasks.iter().find_map(|(&t, task)| match task.state {
                    State::Idle { deliver }
                        if t != tid
                            && task.real_pid == real_pid
                            && deliver != 0
                            && signals::signal_ends(task.real, deliver, None) =>
                    {
                        Some((t, task.real, deliver))
                    }
                    _ => None,
                });
                if let Some((sibling, sibling_real, signo)) = fatal {
                    trace!(
                        tid,
                        sibling,
                        signo,
                        "recorded death: the process's fatal signal delivered"
                    );
                    ptrace::cont(sibling_real, signo).map_err(perr("PTRACE_CONT", sibling_real))?;
                    self.set_state(sibling, State::Exiting { killed: false });
                    self.set_state(tid, State::Exiting { killed: false });
                }
                let group_exiting = self
                    .tasks
                    .values()
                    .any(|t| t.real_pid == real_pid && matches!(t.state, State::Exiting { .. }));
                early = ptrace::wait_tid_nohang(real).map_err(perr("waitpid", real))?;
                if early.is_none() && !group_exiting {
                    trace!(tid, ?state, "recorded death: killing it");
                    let _ = ptrace::tgkill(real_pid, real, libc::SIGKILL);
                    self.set_state(tid, State::Exiting { killed: true });
                }
            }
        }
        loop {
            let ev = match early.take() {
                Some(ev) => ev,
                None => ptrace::wait_tid(real).map_err(perr("waitpid", real))?,
            };
            match ev {
                WaitEvent::Exited { code, .. } => return Ok(ExitStatus::Exited(code)),
                WaitEvent::Signaled { signo, core, .. } => {
                    return Ok(ExitStatus::Signaled { signo, core })
                }
                // A stop that came before its death (a signal the replay
                // caused, one from before a SIGKILL): run through. Anything
                // else, for a thread not killed by replay, shows it lives on.
                ev => {
                    if let State::Exiting { killed } = self.task(tid)?.state {
                        if killed || !lives_on(&ev) {
                            ptrace::cont(real, 0).map_err(perr("PTRACE_CONT", real))?;
                            continue;
                        }
                    }
                    let seen = self.describe_stop(real, &ev);
                    // Not left running: it is not in the recording any more.
                    let real_pid = self.task(tid)?.real_pid;
                    let _ = ptrace::tgkill(real_pid, real, libc::SIGKILL);
                    self.set_state(tid, State::Exiting { killed: true });
                    return Err(self.diverged(tid, "thread exit", "the thread to exit", seen));
                }
            }
        }
    }

    /// Resumes `tid` to its next stop, delivering its pending signal.
    /// `expect_signal`: the signal the next event says arrives.
    fn resume_to_stop(
        &mut self,
        tid: Tid,
        expect_signal: Option<i32>,
    ) -> Result<(i32, WaitEvent), ReplayError> {
        let task = self.task(tid)?;
        let (real, real_pid) = (task.real, task.real_pid);
        let State::Idle { deliver } = task.state else {
            return Err(Error::Malformed {
                index: self.index,
                reason: format!("thread {tid} must run, but is in state {:?}", task.state),
            }
            .into());
        };
        if let Some((ret, nr)) = self
            .tasks
            .get_mut(&tid)
            .and_then(|t| t.restart_pending.take())
        {
            // What the kernel's signal code does with no handler to run:
            // back up to the syscall instruction, and run the syscall again
            // (or restart_syscall, for -ERESTART_RESTARTBLOCK: the i386 one,
            // 0, after an `int $0x80`).
            let mut regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
            regs.rax = if ret == -516 {
                syscalls::restart_syscall_rax(nr)
            } else {
                regs.orig_rax
            };
            regs.rip -= rrtest_abi::SYSCALL_INSN_LEN;
            ptrace::setregs(real, &regs).map_err(perr("PTRACE_SETREGS", real))?;
        }
        if self.spaces.contains_key(&real_pid) {
            let none_left = self.buffered.get(&tid).is_none_or(|q| q.is_empty());
            buffer::reset_for_replay(real, none_left)
                .map_err(perr("resetting the syscall buffer", real))?;
            self.load_queue(tid, real)?;
        }
        let fix = self
            .tasks
            .get_mut(&tid)
            .map(|t| std::mem::take(&mut t.frame_fix))
            .unwrap_or_default();
        if self.debug.is_some() {
            // A debugger decides how the thread runs (`debugger.rs`).
            self.dbg_go(tid, real, real_pid, deliver, fix)?;
        } else if deliver != 0 {
            // Its frame must not show a stub, and must hold what the
            // recording's did.
            let regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
            let space = self.spaces.get(&real_pid);
            let fixed = buffer::deliver_signal(real, &regs, deliver, space, fix)
                .map_err(perr("delivering a signal", real))?;
            if fixed {
                self.frame_fixed(tid, fix);
            }
        } else {
            ptrace::cont(real, 0).map_err(perr("PTRACE_CONT", real))?;
        }
        self.set_state(tid, State::Idle { deliver: 0 });
        let gate = self.gate_stop_ip;
        loop {
            let ev = ptrace::wait_tid(real).map_err(perr("waitpid", real))?;
            self.sync_loaded_queue(tid, real)?;
            // A stop the debugger caused is handled (and the thread
            // resumed) there, never seen here.
            if self.debug.is_some() {
                self.dbg_frame_at_stop(tid, real, real_pid, &ev)?;
            }
            if self.debug.is_some() && self.dbg_trap(tid, real, real_pid, &ev)? {
                continue;
            }
            match ev {
                WaitEvent::Event {
                    event: libc::PTRACE_EVENT_SECCOMP,
                    ..
                } if self.spaces.contains_key(&real_pid)
                    && ptrace::getregs(real).map(|r| r.rip).ok() == Some(gate) =>
                {
                    // The gate's slow path: the queue region ran out, or
                    // its next record is not this syscall.
                    self.replay_buffered(tid, real)?;
                    self.load_queue(tid, real)?;
                    self.resume_again(tid, real, real_pid)?;
                }
                // A debug-register breakpoint's trap no search waits for
                // (one that ended as its hit was pending): replay's own,
                // never the program's (replay never sets the debug
                // registers a program's tracer wrote: their traps replay
                // as execution points; and the recorder delivers no trap
                // of its own).
                WaitEvent::Signal {
                    signo: libc::SIGTRAP,
                    ..
                } if expect_signal != Some(libc::SIGTRAP)
                    && ptrace::getsiginfo(real)
                        .is_ok_and(|i| ptrace::siginfo_code(&i) == ptrace::TRAP_HWBKPT) =>
                {
                    trace!(tid, "discarding a stray breakpoint trap");
                    self.resume_again(tid, real, real_pid)?;
                }
                // The hook's copy met a bad pointer of the program's, as
                // it did while recording, where nothing was recorded
                // either: fixed up the same way.
                WaitEvent::Signal { signo, .. } if self.copy_fault(real, signo)? => {
                    trace!(tid, signo, "a fault in the hook's copy: fixed up");
                    self.resume_again(tid, real, real_pid)?;
                }
                // Signals the replay itself causes (SIGCHLD when a replayed
                // child really exits): every signal the program got is in the
                // recording, and replay delivers exactly those, at their events.
                WaitEvent::Signal { signo, .. }
                    if Some(signo) != expect_signal && !is_synchronous(signo) =>
                {
                    trace!(tid, signo, "discarding a signal the replay caused");
                    self.resume_again(tid, real, real_pid)?;
                }
                // A group stop (a replayed SIGSTOP, SIGTSTP, ...): the
                // recorder let the thread run on through it, and so does
                // replay (docs/breadth.md, job control).
                WaitEvent::Event {
                    event: libc::PTRACE_EVENT_STOP,
                    sig: libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU,
                    ..
                } => {
                    trace!(tid, "group stop");
                    ptrace::cont(real, 0).map_err(perr("PTRACE_CONT", real))?;
                }
                // The trap a SIGCONT sent to a process that was group-stopped
                // (and run through) raises in each of its threads, as it did
                // while recording: in the one the signal is delivered to,
                // before the delivery, and in every other one the next time
                // it runs (replay sends a recorded SIGCONT for real, with
                // `tgkill`, and the kernel marks every thread of the
                // process: `sigcont_notice`). It changes nothing in the
                // thread. (Any other such stop is returned: a late stop of
                // replay's own PTRACE_INTERRUPT, in `point_filter`, must
                // not be run through.)
                WaitEvent::Event {
                    event: libc::PTRACE_EVENT_STOP,
                    sig: libc::SIGTRAP,
                    ..
                } if expect_signal == Some(libc::SIGCONT)
                    || self.tasks.get(&tid).is_some_and(|t| t.sigcont_notice) =>
                {
                    if let Some(t) = self.tasks.get_mut(&tid) {
                        t.sigcont_notice = false;
                    }
                    trace!(tid, "SIGCONT's trap");
                    ptrace::cont(real, 0).map_err(perr("PTRACE_CONT", real))?;
                }
                ev => return Ok((real, ev)),
            }
        }
    }

    /// Whether `real`'s stop with `signo` was a fault of the hook's copy,
    /// which is then fixed up ([`buffer::copy_fault_fixup`], the recorder's
    /// rule) for the caller to resume the thread without it.
    pub(super) fn copy_fault(&self, real: i32, signo: i32) -> Result<bool, ReplayError> {
        if !matches!(signo, libc::SIGSEGV | libc::SIGBUS) {
            return Ok(false);
        }
        let regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
        let info = ptrace::getsiginfo(real).map_err(perr("PTRACE_GETSIGINFO", real))?;
        Ok(buffer::copy_fault_fixup(real, &regs, signo, &info)
            .map_err(perr("fixing up a fault of the hook's copy", real))?)
    }

    /// Resumes `tid` again after a stop [`Session::resume_to_stop`] handled
    /// itself (as the debugger says, when there is one).
    fn resume_again(&mut self, tid: Tid, real: i32, real_pid: i32) -> Result<(), ReplayError> {
        if self.debug.is_some() {
            return self.dbg_go(tid, real, real_pid, 0, FrameFix::default());
        }
        ptrace::cont(real, 0).map_err(perr("PTRACE_CONT", real))?;
        Ok(())
    }

    fn describe_stop(&self, real: i32, ev: &WaitEvent) -> String {
        match *ev {
            WaitEvent::Event { event, .. } if event == libc::PTRACE_EVENT_SECCOMP => {
                match ptrace::getregs(real) {
                    Ok(r) => format!(
                        "{} at ip {:#x}",
                        syscalls::describe_entry(r.orig_rax as i64, &ptrace::syscall_args(&r)),
                        r.rip
                    ),
                    Err(_) => "a syscall".into(),
                }
            }
            WaitEvent::Signal { signo, .. } => {
                let ip = ptrace::getregs(real).map(|r| r.rip).unwrap_or(0);
                format!("signal {signo} at ip {ip:#x}")
            }
            WaitEvent::SyscallStop { tid } => match ptrace::getregs(real) {
                // Its number and result: a failed call's error names why
                // (an exec that failed in replay, say).
                Ok(r) => format!(
                    "a syscall stop of thread {tid}: {} returning {} at ip {:#x}",
                    syscalls::name(r.orig_rax as i64),
                    r.rax as i64,
                    r.rip
                ),
                Err(_) => format!("a syscall stop of thread {tid}"),
            },
            WaitEvent::Exited { code, .. } => format!("the thread exited with {code}"),
            WaitEvent::Signaled { signo, .. } => format!("the thread was killed by signal {signo}"),
            ref other => format!("{other:?}"),
        }
    }
}
