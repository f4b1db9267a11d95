//! [`Replay`], the public handle on a replay in progress: what `verify`,
//! `cargo rrtest replay` ([`super::replay`], a thin client that runs it to
//! the end) and a debugger drive.
//!
//! A replay stands *between two events*: every live thread is stopped, the
//! events before [`Position::next_event`] are replayed, and none after. From
//! there a driver can replay one more event ([`Replay::step`]) or all the
//! rest ([`Replay::run_to_end`]), list the threads (recorded id and the
//! replay's real id), and read a stopped thread's registers and its
//! process's memory. [`Replay::end`] (or dropping the handle) kills and
//! reaps every tracee.
//!
//! What is seen at a stop is the replayed program as it runs under replay:
//! its memory holds, besides the program's own, the fixed page, the syscall
//! buffer and the replay's queue region and gate (`gate.rs`); a thread
//! stopped at a syscall entry (an event that split a syscall into entry and
//! exit) shows the entry's registers; a thread whose syscall is to be
//! restarted shows them before the restart.
//!
//! Not here yet: single-stepping or running to a breakpoint *inside* the
//! code between two events. Stopping a thread in the middle of its next
//! event is possible with ptrace, but the next event's matching would then
//! start from that stop rather than from the previous event, and three
//! things depend on the latter: (1) `resume_to_stop` loads the thread's
//! buffered syscalls into the gate's queue and resets the syscall buffer
//! before every resume, and syncs what the gate consumed after every stop,
//! so each intermediate stop needs the same bookkeeping (and a gate stop in
//! the middle of a single-step must be answered, not reported);
//! (2) execution points (`Preempt`, signals at a point) are found by
//! counting the passes through an ip *since the thread's last event* (a
//! debug-register breakpoint, or
//! the in-program filter of `point_filter.rs`): a driver's stop after some
//! passes must carry the count over, and a driver's own breakpoint must not
//! share the debug register the search uses; (3) a stop the driver caused
//! (`SIGTRAP` of a step or breakpoint) must never be delivered to the
//! program, while a recorded synchronous `SIGTRAP` must be. A debugger
//! needs, next: a per-thread "partial progress" record (passes counted so
//! far for the next event's point, queue loaded or not), `resume_to_stop`
//! split into "prepare thread" / "resume with this request" / "classify the
//! stop", and a breakpoint table kept apart from the point search's debug
//! register (software breakpoints, hidden from the execution-point digest
//! and from reads of the program's memory). Until then a debugger stops
//! only at event boundaries.
//!
//! This file must not replay anything itself: it calls the core's one-event
//! step ([`Session::replay_next`]) and reads stopped threads; it must not be
//! used from more than one OS thread (ptrace requests must come from the
//! thread that spawned the tracees, so [`Replay`] is not `Send`).

use std::marker::PhantomData;

use super::{Session, State};
use crate::replayer::{Error, ReplayError, ReplayOptions, Replayed};
use rrtest_sys::ptrace::{self, Regs};
use rrtest_sys::RemoteMem;
use rrtest_trace::{Event, ExitStatus, Tid};

/// A replay in progress, stopped between two events. See the module doc.
pub struct Replay {
    session: Session,
    phase: Phase,
    /// ptrace ties the tracees to the OS thread that spawned them.
    _one_thread: PhantomData<*const ()>,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("phase", &self.phase)
            .field("position", &self.position())
            .field("threads", &self.threads())
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Stopped between events.
    Stopped,
    /// The program ended, as recorded.
    Exited(ExitStatus),
    /// An event failed (a divergence, a stall, a bad trace): the tracees'
    /// state is no longer the recording's.
    Failed,
}

/// Where a replay stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The index of the next event to replay: every event before it has
    /// been replayed (the exec, event 0, by [`Replay::start`]). Once the
    /// program ended, the number of events in the recording.
    pub next_event: u64,
    /// The recorded thread the next event belongs to (the creating thread
    /// for a new thread, the process for a process exit); `None` once the
    /// replay ended, failed, or the trace has no readable next event (the
    /// next [`Replay::step`] says why).
    pub thread: Option<Tid>,
}

/// What [`Replay::step`] did.
#[derive(Debug, Clone)]
pub enum Step {
    /// The event was replayed; the replay is stopped before the next one.
    Stopped(Position),
    /// The event was the program's end: the replay is complete, and the
    /// status equals the recorded one.
    Exited(Replayed),
}

/// A live, stopped thread of the replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thread {
    /// Its id as recorded (what the program saw, and the trace's events name).
    pub recorded: Tid,
    /// Its real id in this replay.
    pub real: i32,
    /// The real id of its process.
    pub real_pid: i32,
}

impl Replay {
    /// Spawns the recorded program from the trace in `opts.trace_dir`,
    /// replays its exec (event 0), and stops before event 1.
    pub fn start(opts: &ReplayOptions) -> Result<Replay, ReplayError> {
        let mut session = Session::spawn(opts)?;
        session.peek();
        Ok(Replay {
            session,
            phase: Phase::Stopped,
            _one_thread: PhantomData,
        })
    }

    /// Where the replay stands.
    pub fn position(&self) -> Position {
        match self.phase {
            Phase::Stopped => Position {
                next_event: self.session.index,
                thread: self.session.upcoming().map(Event::tid),
            },
            Phase::Exited(_) => Position {
                next_event: self.session.index + 1,
                thread: None,
            },
            Phase::Failed => Position {
                next_event: self.session.index,
                thread: None,
            },
        }
    }

    /// The recorded event [`Replay::step`] replays next, when it is readable.
    pub fn next_event(&self) -> Option<&Event> {
        match self.phase {
            Phase::Stopped => self.session.upcoming(),
            _ => None,
        }
    }

    /// Replays exactly one recorded event and stops. An error (a
    /// divergence, a stall, a malformed trace) ends the replay: later
    /// calls return [`Error::Ended`].
    pub fn step(&mut self) -> Result<Step, ReplayError> {
        self.check_stopped()?;
        match self.session.replay_next() {
            Ok(Some(status)) => {
                self.phase = Phase::Exited(status);
                Ok(Step::Exited(Replayed {
                    status,
                    events: self.session.index + 1,
                    point_hits: std::mem::take(&mut self.session.point_hits),
                }))
            }
            Ok(None) => {
                self.session.peek();
                Ok(Step::Stopped(self.position()))
            }
            Err(e) => {
                self.phase = Phase::Failed;
                Err(e)
            }
        }
    }

    /// Replays every remaining event; the result of the last [`Replay::step`].
    pub fn run_to_end(&mut self) -> Result<Replayed, ReplayError> {
        loop {
            if let Step::Exited(done) = self.step()? {
                return Ok(done);
            }
        }
    }

    /// The live threads, stopped between events, by recorded id. (A thread
    /// on its way out, past its exit syscall or killed by a sibling's
    /// `exit_group` before the recording says it is gone, is not listed.)
    pub fn threads(&self) -> Vec<Thread> {
        let mut out: Vec<Thread> = self
            .session
            .tasks
            .iter()
            .filter(|(_, t)| {
                self.phase == Phase::Stopped && is_stopped(t.state) && in_trace_stop(t.real)
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

    /// The general-purpose registers of recorded thread `tid` at the current stop.
    pub fn registers(&self, tid: Tid) -> Result<Regs, ReplayError> {
        let real = self.stopped_thread(tid)?.real;
        ptrace::getregs(real).map_err(|source| {
            Error::Ptrace {
                op: "PTRACE_GETREGS",
                tid: real,
                source,
            }
            .into()
        })
    }

    /// Reads `len` bytes at `addr` in the address space of recorded thread
    /// `tid`, at the current stop.
    pub fn read_memory(&self, tid: Tid, addr: u64, len: usize) -> Result<Vec<u8>, ReplayError> {
        let real = self.stopped_thread(tid)?.real;
        RemoteMem::new(real).read_vec(addr, len).map_err(|source| {
            Error::Ptrace {
                op: "reading the program's memory",
                tid: real,
                source,
            }
            .into()
        })
    }

    /// Ends the replay wherever it stands: kills every tracee and reaps it,
    /// so that no process of the replay is left behind. Dropping the handle
    /// does the same.
    pub fn end(self) {
        drop(self);
    }

    fn check_stopped(&self) -> Result<(), ReplayError> {
        match self.phase {
            Phase::Stopped => Ok(()),
            Phase::Exited(_) => Err(Error::Ended {
                index: self.session.index,
                why: "the program exited".into(),
            }
            .into()),
            Phase::Failed => Err(Error::Ended {
                index: self.session.index,
                why: "that event failed".into(),
            }
            .into()),
        }
    }

    fn stopped_thread(&self, tid: Tid) -> Result<Thread, ReplayError> {
        self.check_stopped()?;
        let threads = self.threads();
        match threads.iter().find(|t| t.recorded == tid) {
            Some(t) => Ok(*t),
            None => Err(Error::NoSuchThread {
                tid,
                live: threads.iter().map(|t| t.recorded).collect(),
            }
            .into()),
        }
    }
}

/// Whether a thread in `state` is stopped (so its registers can be read).
pub(super) fn is_stopped(state: State) -> bool {
    matches!(
        state,
        State::Idle { .. } | State::AtEntry { .. } | State::InClone { .. }
    )
}

/// Whether thread `tid` is in a ptrace stop, as the kernel says (`t` in its
/// /proc `stat`): not a thread that a sibling's `exit_group` has killed
/// while the session still holds it stopped.
pub(super) fn in_trace_stop(tid: i32) -> bool {
    crate::tracee::kernel_state(tid) == Some('t')
}
